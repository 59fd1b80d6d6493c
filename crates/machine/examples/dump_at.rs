//! Debug aid: boots a bzImage under the full machine for N instructions,
//! then prints the CPU state and bytes at EIP (kernel direct map assumed
//! for addresses >= 0xC0000000) and the top of the stack.
//! `dump_at KERNEL INITRD CMDLINE N`
mod common;

use morph86_machine::RunLimits;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 5 {
        eprintln!("usage: dump_at KERNEL INITRD CMDLINE N");
        return;
    }
    let n: u64 = a[4].parse().unwrap_or(0);
    let common::Session { mut m, out, .. } = match common::boot(&a[1], Some(&a[2]), &a[3]) {
        Ok(g) => g,
        Err(e) => return eprintln!("{e}"),
    };
    let exit = m.run(RunLimits {
        max_insns: Some(n),
        timeout: None,
    });
    let s = &m.cpu.state;
    println!(
        "exit {exit:?} icount {} eip {:08x} esp {:08x} ebp {:08x} regs {:08x?} eflags {:08x}",
        m.cpu.icount, s.eip, s.regs[4], s.regs[5], s.regs, s.eflags
    );
    let ram = m.board.ram.bytes();
    let phys = |v: u32| v.wrapping_sub(0xC000_0000) as usize;
    let at = phys(s.eip & !0xF).wrapping_sub(0x40);
    if let Some(code) = ram.get(at..at + 0xA0) {
        println!("code at {:08x}: {:02x?}", (s.eip & !0xF) - 0x40, code);
    }
    let sp = phys(s.regs[4]);
    if let Some(st) = ram.get(sp..sp + 64) {
        println!("stack: {:02x?}", st);
    }
    let t = out.text();
    println!("--- last output ---\n{}", &t[t.len().saturating_sub(400)..]);
}
