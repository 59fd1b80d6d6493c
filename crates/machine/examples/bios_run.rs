//! Debugging aid for the BIOS: powers a machine on through morph86's BIOS
//! and prints the debug port (0xE9) and where the CPU stopped.
//!
//! `cargo run -p morph86-machine --example bios_run -- [INSNS [OPTION_ROM [MODE]]]`
//! maps OPTION_ROM (a flat binary; its size byte and checksum are fixed
//! up, byte 6 set to MODE) at 0xC8000. Environment: `EVLOG=FILE` writes
//! the event log; `WATCH=HEXADDR` single-steps 400 k instructions and
//! prints each change of the dword there; `STEP=N` prints CS:IP for N
//! single steps at the end.

use morph86_cpu::{Bus, SegReg};
use morph86_devices::{OutputSink, SharedBuffer};
use morph86_machine::bios::DEFAULT_BOOT_ORDER;
use morph86_machine::{EventLog, Machine, MachineConfig, RunLimits};

fn step(m: &mut Machine) {
    m.run(RunLimits {
        max_insns: Some(m.cpu.icount + 1),
        timeout: None,
    });
}

fn here(m: &Machine) -> String {
    let s = &m.cpu.state;
    format!(
        "{:04x}:{:04x} ss:esp {:04x}:{:08x}",
        s.seg(SegReg::Cs).selector,
        s.eip,
        s.seg(SegReg::Ss).selector,
        s.regs[4]
    )
}

fn main() {
    let mut args = std::env::args().skip(1);
    let insns: u64 = args.next().map_or(5_000_000, |s| s.parse().expect("INSNS"));
    let e9 = SharedBuffer::new();
    let mut m = Machine::new(MachineConfig {
        memory_mib: 32,
        debugcon: Some(OutputSink::Buffer(e9.clone())),
        no_reboot: true,
        ..Default::default()
    })
    .expect("machine");
    if let Some(p) = args.next() {
        let mut r = std::fs::read(&p).expect("option ROM");
        r.resize((r.len() + 1).div_ceil(512) * 512, 0);
        r[2] = (r.len() / 512) as u8;
        r[6] = args.next().map_or(0, |s| s.parse().expect("MODE"));
        let sum = r.iter().fold(0u8, |s, &b| s.wrapping_add(b));
        let last = r.len() - 1;
        r[last] = r[last].wrapping_sub(sum);
        m.map_option_rom(0xC_8000, r).expect("option ROM placement");
    }
    if let Ok(p) = std::env::var("EVLOG") {
        m.set_event_log(EventLog::create(std::path::Path::new(&p)).expect("event log"));
    }
    m.boot_bios(None, &DEFAULT_BOOT_ORDER).expect("BIOS boot");
    let r = m.run(RunLimits {
        max_insns: Some(insns),
        timeout: None,
    });
    if let Ok(a) = std::env::var("WATCH") {
        let a = u32::from_str_radix(&a, 16).expect("WATCH address");
        let mut last = m.board.read_u32(a);
        for _ in 0..400_000 {
            let at = here(&m);
            step(&mut m);
            let v = m.board.read_u32(a);
            if v != last {
                println!("{at}: {last:08x} -> {v:08x} at {}", m.cpu.icount);
                last = v;
            }
        }
    }
    if let Ok(n) = std::env::var("STEP") {
        for _ in 0..n.parse::<u32>().expect("STEP") {
            println!("{}", here(&m));
            step(&mut m);
        }
    }
    m.finish_event_log().expect("event log");
    println!("exit: {r} after {} instructions", m.cpu.icount);
    println!("--- port 0xE9 ---\n{}", e9.text());
    println!("{} PAM {:02x?}", here(&m), m.board.upper.pam());
}
