//! Measures TLB refills per address-space switch on the Linux guest with two
//! processes taking turns (`yes | cat > /dev/null`: a pipe ping-pong), with
//! cached address spaces and with a plain TLB, in the same run. Refills
//! into emptied slots are the ones a switch causes (a plain TLB empties
//! the non-global slots on every switch); the rest are conflict misses of
//! the direct-mapped TLB, the same either way.
//! `tlb_switches BZIMAGE INITRD [WINDOW_INSNS]`
use morph86_cpu::mmu::{Tlb, DEFAULT_SPACES};
use morph86_devices::{SerialBackend, SharedBuffer};
use morph86_machine::{Machine, MachineConfig, RunExit, RunLimits};

fn run_until(m: &mut Machine, out: &SharedBuffer, pat: &str, from: usize) {
    for _ in 0..2000 {
        if out.text()[from..].contains(pat) {
            return;
        }
        let e = m.run(RunLimits {
            max_insns: Some(m.cpu.icount + 20_000_000),
            timeout: None,
        });
        if e != RunExit::InstructionLimit {
            eprintln!("guest stopped: {e}");
            std::process::exit(1);
        }
    }
    eprintln!("never saw {pat:?}");
    std::process::exit(1);
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
    let kernel = std::fs::read(&a[1]).unwrap_or_default();
    let initrd = std::fs::read(&a[2]).ok();
    let w: u64 = a.get(3).and_then(|v| v.parse().ok()).unwrap_or(200_000_000);
    let out = SharedBuffer::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let Ok(mut m) = Machine::new(MachineConfig {
        no_reboot: true,
        serial: SerialBackend::buffer(out.clone(), Some(rx)),
        ..Default::default()
    }) else {
        return;
    };
    if let Err(e) = m.boot_linux(kernel, initrd, "console=ttyS0") {
        eprintln!("{e}");
        return;
    }
    run_until(&mut m, &out, "morph86# ", 0);
    let from = out.contents().len();
    for b in "yes | cat > /dev/null &\n".bytes() {
        let _ = tx.send(b);
    }
    run_until(&mut m, &out, "morph86# ", from);
    // Warm up, then alternate measurement windows.
    window(&mut m, DEFAULT_SPACES, w / 4);
    for round in 0..2 {
        for spaces in [DEFAULT_SPACES, 1] {
            let r = window(&mut m, spaces, w);
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
