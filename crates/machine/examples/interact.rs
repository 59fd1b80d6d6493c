//! Debug aid: boots a bzImage to its shell prompt, then types each LINE in
//! turn, running until the prompt comes back (or a budget of instructions
//! runs out), and prints the output with instruction counts and wall time.
//! `interact BZIMAGE INITRD LINE...`
use morph86_devices::{SerialBackend, SharedBuffer};
use morph86_machine::{Machine, MachineConfig, RunExit, RunLimits};
use std::time::Instant;

const PROMPT: &str = "morph86# ";
const BUDGET: u64 = 40_000_000_000;

/// Runs in slices until `done` holds for the output after `from`.
fn run_until(m: &mut Machine, out: &SharedBuffer, from: usize, budget: u64) -> Option<RunExit> {
    let end = m.cpu.icount + budget;
    while m.cpu.icount < end {
        if String::from_utf8_lossy(&out.contents()[from..]).contains(PROMPT) {
            return None;
        }
        let e = m.run(RunLimits {
            max_insns: Some(m.cpu.icount + 100_000_000),
            timeout: None,
        });
        if e != RunExit::InstructionLimit {
            return Some(e);
        }
    }
    Some(RunExit::InstructionLimit)
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 3 {
        eprintln!("usage: interact BZIMAGE INITRD LINE...");
        return;
    }
    let kernel = std::fs::read(&a[1]).unwrap_or_default();
    let initrd = std::fs::read(&a[2]).ok();
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
    let t0 = Instant::now();
    if let Some(e) = run_until(&mut m, &out, 0, BUDGET) {
        println!("stopped before the prompt: {e}\n{}", out.text());
        return;
    }
    println!(
        "prompt at {} insns, {:.1} s",
        m.cpu.icount,
        t0.elapsed().as_secs_f64()
    );
    for line in &a[3..] {
        let from = out.contents().len();
        for b in line.bytes().chain([b'\n']) {
            let _ = tx.send(b);
        }
        let (i0, t) = (m.cpu.icount, Instant::now());
        let e = run_until(&mut m, &out, from, BUDGET);
        println!(
            "== {line:?}: {} insns, {:.1} s{}\n{}",
            m.cpu.icount - i0,
            t.elapsed().as_secs_f64(),
            e.map(|e| format!(", stopped: {e}")).unwrap_or_default(),
            String::from_utf8_lossy(&out.contents()[from..])
        );
        if e.is_some() {
            let s = &m.cpu.state;
            println!(
                "eip {:08x} if {} halted {}",
                s.eip,
                s.eflags >> 9 & 1,
                s.halted
            );
            return;
        }
    }
}
