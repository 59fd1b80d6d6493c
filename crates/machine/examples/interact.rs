//! Debug aid: boots a bzImage to its shell prompt, then types each LINE in
//! turn, running until the prompt comes back (or a budget of instructions
//! runs out), and prints the output with instruction counts, wall time,
//! the external interrupts taken (by vector) and a profile of CS:EIP
//! sampled every 20,000 instructions.
//! With `STEP_UNTIL=TEXT`, the last line runs one instruction at a time
//! until TEXT appears, and the last user-mode steps are printed.
//! `interact BZIMAGE INITRD LINE...`
mod common;

use common::{Session, PROMPT};
use morph86_cpu::SegReg;
use morph86_machine::RunLimits;
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

const BUDGET: u64 = 40_000_000_000;
/// Instructions between CS:EIP samples.
const SAMPLE: u64 = 20_000;

/// Runs one instruction at a time until `pat` appears in the output after
/// `from`, keeping the last user-mode (CPL 3) steps, and prints them: the
/// way to find the instruction behind a guest process's crash.
fn step_trace(g: &mut Session, from: usize, pat: &str) {
    let mut ring = VecDeque::new();
    for n in 0..60_000_000u64 {
        if n.is_multiple_of(100_000)
            && String::from_utf8_lossy(&g.out.contents()[from..]).contains(pat)
        {
            break;
        }
        let s = &g.m.cpu.state;
        if s.seg(SegReg::Cs).selector & 3 == 3 {
            if ring.len() == 64 {
                ring.pop_front();
            }
            ring.push_back((g.m.cpu.icount, s.eip, s.regs, s.cr3));
        }
        let _ = g.m.run(RunLimits {
            max_insns: Some(g.m.cpu.icount + 1),
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
    let mut g = match common::boot(&a[1], Some(&a[2]), "console=ttyS0") {
        Ok(g) => g,
        Err(e) => return eprintln!("{e}"),
    };
    let t0 = Instant::now();
    if let Some(e) = g.run_until(0, PROMPT, BUDGET, 100_000_000, |_| {}) {
        println!("stopped before the prompt: {e}\n{}", g.out.text());
        return;
    }
    println!("{}", g.out.text());
    let (hits, misses) = g.m.cpu.cache_stats();
    let t = &g.m.cpu.tlb;
    println!(
        "prompt at {} insns, {:.1} s; decode cache {hits} hits, {misses} misses; TLB {} hits, {} misses, {} flushes, {} switches",
        g.m.cpu.icount,
        t0.elapsed().as_secs_f64(),
        t.hits,
        t.misses,
        t.flushes,
        t.switches
    );
    for line in &a[3..] {
        let from = g.type_line(line);
        let (i0, t) = (g.m.cpu.icount, Instant::now());
        let irq0 = *g.m.interrupt_counts();
        if let Ok(pat) = std::env::var("STEP_UNTIL") {
            if std::ptr::eq(line, a.last().unwrap_or(line)) {
                step_trace(&mut g, from, &pat);
            }
        }
        let mut profile: HashMap<(u16, u32), u64> = HashMap::new();
        let e = g.run_until(from, PROMPT, BUDGET, SAMPLE, |m| {
            let s = &m.cpu.state;
            *profile
                .entry((s.seg(SegReg::Cs).selector, s.eip))
                .or_default() += 1;
        });
        println!(
            "== {line:?}: {} insns, {:.1} s{}\n{}",
            g.m.cpu.icount - i0,
            t.elapsed().as_secs_f64(),
            e.map(|e| format!(", stopped: {e}")).unwrap_or_default(),
            String::from_utf8_lossy(&g.out.contents()[from..])
        );
        let irqs: Vec<String> =
            g.m.interrupt_counts()
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
            let s = &g.m.cpu.state;
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
