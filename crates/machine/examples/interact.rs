//! Debug aid: boots a bzImage to its shell prompt, then types each LINE in
//! turn, running until the prompt comes back (or a budget of instructions
//! runs out), and prints the output with instruction counts, wall time,
//! the external interrupts taken (by vector) and a profile of CS:EIP
//! sampled every 20,000 instructions.
//! With `STEP_UNTIL=TEXT`, the last line runs one instruction at a time
//! until TEXT appears, and the last user-mode steps are printed.
//! `interact BZIMAGE INITRD LINE...`
use morph86_cpu::SegReg;
use morph86_devices::{SerialBackend, SharedBuffer};
use morph86_machine::{Machine, MachineConfig, RunExit, RunLimits};
use std::collections::HashMap;
use std::time::Instant;

const PROMPT: &str = "morph86# ";
const BUDGET: u64 = 40_000_000_000;

/// Instructions between EIP samples (the profile of each typed line).
const SAMPLE: u64 = 20_000;

/// Runs in slices until the prompt appears in the output after `from`,
/// sampling CPL:EIP into `profile`.
fn run_until(
    m: &mut Machine,
    out: &SharedBuffer,
    from: usize,
    budget: u64,
    profile: &mut HashMap<(u16, u32), u64>,
) -> Option<RunExit> {
    let end = m.cpu.icount + budget;
    let mut n = 0u64;
    while m.cpu.icount < end {
        if n.is_multiple_of(1000)
            && String::from_utf8_lossy(&out.contents()[from..]).contains(PROMPT)
        {
            return None;
        }
        n += 1;
        let e = m.run(RunLimits {
            max_insns: Some(m.cpu.icount + SAMPLE),
            timeout: None,
        });
        let s = &m.cpu.state;
        *profile
            .entry((s.seg(SegReg::Cs).selector, s.eip))
            .or_default() += 1;
        if e != RunExit::InstructionLimit {
            return Some(e);
        }
    }
    Some(RunExit::InstructionLimit)
}

/// Runs one instruction at a time until `pat` appears in the output after
/// `from`, keeping the last user-mode (CPL 3) steps, and prints them: the
/// way to find the instruction behind a guest process's crash.
fn step_trace(m: &mut Machine, out: &SharedBuffer, from: usize, pat: &str) {
    let mut ring = std::collections::VecDeque::new();
    for n in 0..60_000_000u64 {
        if n.is_multiple_of(100_000)
            && String::from_utf8_lossy(&out.contents()[from..]).contains(pat)
        {
            break;
        }
        let s = &m.cpu.state;
        if s.seg(SegReg::Cs).selector & 3 == 3 {
            if ring.len() == 64 {
                ring.pop_front();
            }
            ring.push_back((m.cpu.icount, s.eip, s.regs, s.cr3));
        }
        let _ = m.run(RunLimits {
            max_insns: Some(m.cpu.icount + 1),
            timeout: None,
        });
    }
    for (i, eip, r, cr3) in ring {
        println!("{i} cr3 {cr3:08x} eip {eip:08x} regs {r:08x?}");
    }
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
    if let Some(e) = run_until(&mut m, &out, 0, BUDGET, &mut HashMap::new()) {
        println!("stopped before the prompt: {e}\n{}", out.text());
        return;
    }
    println!("{}", out.text());
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
        let irq0 = *m.interrupt_counts();
        let mut profile = HashMap::new();
        if let Ok(pat) = std::env::var("STEP_UNTIL") {
            if std::ptr::eq(line, a.last().unwrap_or(line)) {
                step_trace(&mut m, &out, from, &pat);
            }
        }
        let e = run_until(&mut m, &out, from, BUDGET, &mut profile);
        println!(
            "== {line:?}: {} insns, {:.1} s{}\n{}",
            m.cpu.icount - i0,
            t.elapsed().as_secs_f64(),
            e.map(|e| format!(", stopped: {e}")).unwrap_or_default(),
            String::from_utf8_lossy(&out.contents()[from..])
        );
        let irqs: Vec<String> = m
            .interrupt_counts()
            .iter()
            .zip(irq0.iter())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(v, (a, b))| format!("{v:#04x}:{}", a - b))
            .collect();
        println!("interrupts by vector: {}", irqs.join(" "));
        let mut top: Vec<_> = profile.into_iter().collect();
        top.sort_by_key(|t| std::cmp::Reverse(t.1));
        let total: u64 = top.iter().map(|t| t.1).sum();
        for ((cs, eip), k) in top.iter().take(60) {
            println!(
                "  {:5.1} %  {cs:04x}:{eip:08x}",
                100.0 * *k as f64 / total.max(1) as f64
            );
        }
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
