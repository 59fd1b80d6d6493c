//! Debug aid: boots a Multiboot kernel and prints the CPU state every time
//! EIP reaches the given address. `trace_at KERNEL HEXADDR [MAX_HITS]`
use morph86_cpu::StepOutcome;
mod common;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 3 {
        eprintln!("usage: trace_at KERNEL HEXADDR [MAX_HITS]");
        std::process::exit(2);
    }
    let at = u32::from_str_radix(a[2].trim_start_matches("0x"), 16).unwrap_or(0);
    let max: u32 = a.get(3).and_then(|v| v.parse().ok()).unwrap_or(10);
    let mut m = match common::boot(&a[1], None, "") {
        Ok(g) => g.m,
        Err(e) => return eprintln!("{e}"),
    };
    let mut hits = 0;
    for _ in 0..50_000_000u64 {
        let s = &m.cpu.state;
        if s.eip == at {
            hits += 1;
            println!(
                "hit {hits}: regs {:08x?} eflags {:08x} es {:?}",
                s.regs, s.eflags, s.segs[0]
            );
            if hits >= max {
                return;
            }
        }
        match m.cpu.step(&mut m.board) {
            StepOutcome::Halted | StepOutcome::TripleFault(_) => return,
            StepOutcome::Exception(f) => println!("  exception {f} -> eip {:08x}", m.cpu.state.eip),
            _ => {}
        }
    }
}
