//! Measures TLB refills per address-space switch on the Linux guest with two
//! processes taking turns (`yes | cat > /dev/null`: a pipe ping-pong), with
//! cached address spaces and with a plain TLB, in the same run.
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

fn window(m: &mut Machine, spaces: usize, insns: u64) -> (u64, u64, u64) {
    m.cpu.tlb = Tlb::with_spaces(spaces);
    let e = m.run(RunLimits {
        max_insns: Some(m.cpu.icount + insns),
        timeout: None,
    });
    assert_eq!(e, RunExit::InstructionLimit);
    (m.cpu.tlb.misses, m.cpu.tlb.switches, m.cpu.tlb.reused)
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
            let (misses, switches, reused) = window(&mut m, spaces, w);
            println!(
                "round {round}: {spaces} cached address space(s): {misses} refills over {switches} CR3 switches = {:.1} per switch ({reused} switches reused a cached space)",
                misses as f64 / switches.max(1) as f64
            );
        }
    }
}
