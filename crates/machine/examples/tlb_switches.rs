//! Measures TLB refills per address-space switch on the Linux guest with two
//! processes taking turns (`yes | cat > /dev/null`: a pipe ping-pong), with
//! cached address spaces and with a plain TLB, in the same run. Refills
//! into emptied slots are the ones a switch causes (a plain TLB empties
//! the non-global slots on every switch); the rest are conflict misses of
//! the direct-mapped TLB, the same either way.
//! `tlb_switches BZIMAGE INITRD [WINDOW_INSNS]`
mod common;

use common::PROMPT;
use morph86_cpu::mmu::{Tlb, DEFAULT_SPACES};
use morph86_machine::{Machine, RunExit, RunLimits};

/// Runs until the prompt follows output byte `from`, or gives up.
fn to_prompt(g: &mut common::Session, from: usize) {
    if let Some(e) = g.run_until(from, PROMPT, 40_000_000_000, 20_000_000, |_| {}) {
        eprintln!("no prompt: {e}");
        std::process::exit(1);
    }
}

/// What one measurement window saw.
struct Window {
    misses: u64,
    cold: u64,
    switches: u64,
    reused: u64,
    write_drops: u64,
    accesses: u64,
}

fn window(m: &mut Machine, spaces: usize, insns: u64) -> Window {
    m.cpu.tlb = Tlb::with_spaces(spaces);
    let e = m.run(RunLimits {
        max_insns: Some(m.cpu.icount + insns),
        timeout: None,
    });
    assert_eq!(e, RunExit::InstructionLimit);
    let t = &m.cpu.tlb;
    Window {
        misses: t.misses,
        cold: t.cold_misses,
        switches: t.switches,
        reused: t.reused,
        write_drops: t.write_drops,
        accesses: t.hits + t.misses,
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 3 {
        eprintln!("usage: tlb_switches BZIMAGE INITRD [WINDOW_INSNS]");
        return;
    }
    let w: u64 = a.get(3).and_then(|v| v.parse().ok()).unwrap_or(200_000_000);
    let mut g = match common::boot(&a[1], Some(&a[2]), "console=ttyS0") {
        Ok(g) => g,
        Err(e) => return eprintln!("{e}"),
    };
    to_prompt(&mut g, 0);
    let from = g.type_line("yes | cat > /dev/null &");
    to_prompt(&mut g, from);
    let m = &mut g.m;
    // Warm up, then alternate measurement windows.
    window(m, DEFAULT_SPACES, w / 4);
    for round in 0..2 {
        for spaces in [DEFAULT_SPACES, 1] {
            let r = window(m, spaces, w);
            let per = |n: u64| n as f64 / r.switches.max(1) as f64;
            println!(
                "round {round}: {spaces} cached address space(s): {} CR3 switches; per switch {:.1} refills in all, {:.1} into emptied slots; \
                 hit rate {:.2} %; {} switches back to a cached space, {} spaces dropped by page-table writes",
                r.switches,
                per(r.misses),
                per(r.cold),
                100.0 * (1.0 - r.misses as f64 / r.accesses.max(1) as f64),
                r.reused,
                r.write_drops,
            );
        }
    }
}
