//! Debug aid: boots a kernel (bzImage or Multiboot) and prints where the CPU
//! is every N instructions, plus every exception (first M).
//! `probe KERNEL [INITRD] [CMDLINE] [EVERY] [MAX_EXC] [TOTAL]`
mod common;

use morph86_cpu::{SegReg, StepOutcome};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 2 {
        eprintln!("usage: probe KERNEL [INITRD] [CMDLINE] [EVERY] [MAX_EXC] [TOTAL]");
        return;
    }
    let cmdline = a.get(3).cloned().unwrap_or_default();
    let every: u64 = a.get(4).and_then(|v| v.parse().ok()).unwrap_or(50_000_000);
    let max_exc: u32 = a.get(5).and_then(|v| v.parse().ok()).unwrap_or(30);
    let total: u64 = a.get(6).and_then(|v| v.parse().ok()).unwrap_or(500_000_000);
    let common::Session { mut m, out, .. } =
        match common::boot(&a[1], a.get(2).map(String::as_str), &cmdline) {
            Ok(g) => g,
            Err(e) => return eprintln!("{e}"),
        };
    let mut exc = 0;
    let mut printed = 0;
    while m.cpu.icount < total {
        m.board.time.set(m.cpu.icount);
        let o = m.cpu.step(&mut m.board);
        let s = &m.cpu.state;
        match o {
            StepOutcome::Exception(f) if exc < max_exc => {
                exc += 1;
                println!(
                    "[{}] exception {f} -> {:04x}:{:08x} cr2 {:08x}",
                    m.cpu.icount,
                    s.seg(SegReg::Cs).selector,
                    s.eip,
                    s.cr2
                );
            }
            StepOutcome::TripleFault(f) => {
                println!(
                    "[{}] triple fault {f} at {:04x}:{:08x}",
                    m.cpu.icount,
                    s.seg(SegReg::Cs).selector,
                    s.eip
                );
                break;
            }
            StepOutcome::Halted => {
                println!(
                    "[{}] halted at {:08x} IF={}",
                    m.cpu.icount,
                    s.eip,
                    s.eflags >> 9 & 1
                );
                break;
            }
            _ => {}
        }
        if m.cpu.icount % every == 0 {
            println!(
                "[{}] at {:04x}:{:08x} cr0 {:08x} cr3 {:08x} eflags {:08x}",
                m.cpu.icount,
                s.seg(SegReg::Cs).selector,
                s.eip,
                s.cr0,
                s.cr3,
                s.eflags
            );
        }
        let t = out.contents();
        if t.len() > printed {
            print!("{}", String::from_utf8_lossy(&t[printed..]));
            printed = t.len();
        }
    }
}
