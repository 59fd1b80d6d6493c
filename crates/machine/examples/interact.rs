//! Debug aid: boots a bzImage to its shell prompt, types a line, runs on
//! and prints the output and the serial/interrupt state.
//! `interact BZIMAGE INITRD LINE`
use morph86_devices::{SerialBackend, SharedBuffer};
use morph86_machine::{Machine, MachineConfig, RunLimits};

fn main() {
    let a: Vec<String> = std::env::args().collect();
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
    while !out.text().contains("morph86# ") {
        let e = m.run(RunLimits {
            max_insns: Some(m.cpu.icount + 50_000_000),
            timeout: None,
        });
        if e != morph86_machine::RunExit::InstructionLimit {
            println!("stopped: {e}");
            return;
        }
    }
    let from = out.contents().len();
    println!("prompt at icount {}", m.cpu.icount);
    for b in a[3].bytes().chain([b'\n']) {
        let _ = tx.send(b);
    }
    for i in 0..20 {
        let e = m.run(RunLimits {
            max_insns: Some(m.cpu.icount + 20_000_000),
            timeout: None,
        });
        let (ier, mcr, rxn) = {
            let u = &m.serial().state;
            (u.ier, u.mcr, u.rx.len())
        };
        let pin4 = m.board.ioapic.entry(4);
        let s = &m.cpu.state;
        println!(
            "{i}: {e} eip {:08x} halted {} if {} uart ier {:02x} mcr {:02x} rx {} | ioapic pin4 {:016x}",
            s.eip, s.halted, s.eflags >> 9 & 1, ier, mcr, rxn, pin4
        );
        let t = out.text();
        if t.len() > from {
            println!("output: {:?}", &t[from..]);
        }
    }
}
