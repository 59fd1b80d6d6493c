//! Debug aid: boots a bzImage twice, under the interpreter and under the
//! JIT, and runs both in lockstep from instruction FROM in slices of SLICE
//! instructions, comparing the CPU state after each slice; at the first
//! difference it boots both again and steps them one instruction at a time
//! through that slice to name the first instruction whose effect differs.
//! `lockstep KERNEL INITRD CMDLINE FROM SLICE`
mod common;

use morph86_machine::{EngineKind, Machine, RunLimits};

fn boot(a: &[String], engine: EngineKind) -> Machine {
    std::env::set_var(
        "MORPH86_ENGINE",
        if engine == EngineKind::Jit {
            "jit"
        } else {
            "interp"
        },
    );
    common::boot(&a[1], Some(&a[2]), &a[3])
        .unwrap_or_else(|e| panic!("{e}"))
        .m
}

fn run_to(m: &mut Machine, n: u64) {
    m.run(RunLimits {
        max_insns: Some(n),
        timeout: None,
    });
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 6 {
        return eprintln!("usage: lockstep KERNEL INITRD CMDLINE FROM SLICE");
    }
    let from: u64 = a[4].parse().expect("FROM");
    let slice: u64 = a[5].parse().expect("SLICE");
    let (mut i, mut j) = (boot(&a, EngineKind::Interp), boot(&a, EngineKind::Jit));
    run_to(&mut i, from);
    run_to(&mut j, from);
    let mut at = from;
    while i.cpu.state == j.cpu.state && i.cpu.icount == j.cpu.icount {
        at += slice;
        run_to(&mut i, at);
        run_to(&mut j, at);
        if at % 100_000_000 < slice {
            eprintln!("same at {at}");
        }
    }
    eprintln!("differ by {at}; stepping from {}", at - slice);
    let (mut i, mut j) = (boot(&a, EngineKind::Interp), boot(&a, EngineKind::Jit));
    let start = at - slice;
    run_to(&mut i, start);
    run_to(&mut j, start);
    for n in start + 1..=at {
        let s = i.cpu.state.clone();
        let lin = s.segs[1].base.wrapping_add(s.eip);
        run_to(&mut i, n);
        run_to(&mut j, n);
        if i.cpu.state != j.cpu.state || i.cpu.icount != j.cpu.icount {
            println!(
                "first difference after instruction {} at {:08x} (linear {lin:08x})",
                n - 1,
                s.eip
            );
            println!("before: regs {:08x?} eflags {:08x}", s.regs, s.eflags);
            for (name, m) in [("interp", &i), ("jit", &j)] {
                let t = &m.cpu.state;
                println!(
                    "{name}: icount {} eip {:08x} regs {:08x?} eflags {:08x} cr2 {:08x}",
                    m.cpu.icount, t.eip, t.regs, t.eflags, t.cr2
                );
            }
            return;
        }
    }
    println!("no single-step difference found in the slice");
}
