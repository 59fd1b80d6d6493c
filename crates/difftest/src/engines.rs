//! `difftest engines`: the JIT against the reference interpreter, in
//! lockstep.
//!
//! Each case is a seeded random program in 32-bit flat protected mode
//! (ring 0, paging on or off) mixing the forms the translator
//! takes with ones it leaves to the interpreter: ALU, shifts, LEA, byte
//! ops, MOVZX/MOVSX, memory operands in every addressing form (aligned,
//! misaligned, beyond RAM, into the code's own page), PUSH/POP, calls,
//! forward branches, flag reads, self-modifying stores into code that runs
//! later, and unmapped pages (#PF, delivered through an IDT to a handler
//! that skips the instruction). Both engines run the same program on their
//! own copy of the machine, in slices of random budgets; after every slice
//! the whole CPU state and instruction count must agree, and at the end the
//! whole RAM.

use morph86_cpu::{Cpu, CpuModel, Engine, EngineExit, FlatRam, Interpreter, RunRequest};
use morph86_jit::JitEngine;

/// RAM of each case.
const RAM: usize = 0x20_0000;
/// Where the program starts.
const CODE: u32 = 0x1_0000;
/// The data window the memory operands use (ESI points into it).
const DATA: u32 = 0x3_0000;
/// A page that paging leaves unmapped (its accesses fault).
const HOLE: u32 = 0x5_0000;
/// The #PF handler: it resumes at the address the program left in EBP
/// (the instruction after the one that faulted).
const HANDLER: u32 = 0x8000;

use morph86_cpu::robustness::Xorshift as Rng;

/// Registers a random op may write (never ESP, ESI, EDI, EBP).
const FREE: [u8; 4] = [0, 1, 2, 3];

/// Appends one random instruction (or a short group) to `p`.
fn instruction(rng: &mut Rng, p: &mut Vec<u8>, code_at: u32) {
    let r = FREE[rng.below(4) as usize];
    let s = rng.below(8) as u8;
    let imm = (rng.next() as u32).to_le_bytes();
    // [esi + disp32] with the displacement picked for a purpose.
    let disp = |rng: &mut Rng| -> u32 {
        match rng.below(10) {
            0 => 0xFFF0_0000,                                        // beyond RAM
            1 => 1 + 4 * rng.below(64) as u32,                       // misaligned
            2 => HOLE.wrapping_sub(DATA) + 4 * rng.below(16) as u32, // unmapped when paging
            _ => 4 * rng.below(256) as u32,
        }
    };
    match rng.below(20) {
        0 => p.extend([0x89, 0xC0 | s << 3 | r]),
        1 => {
            p.push(0xB8 + r);
            p.extend(imm);
        }
        2 | 3 => {
            let op = [0x01, 0x11, 0x19, 0x21, 0x09, 0x29, 0x31, 0x39, 0x85];
            p.extend([op[rng.below(9) as usize], 0xC0 | s << 3 | r]);
        }
        4 => p.extend([0x83, 0xC0 | (rng.below(8) as u8) << 3 | r, imm[0]]),
        5 => p.extend([
            0xC1,
            0xC0 | [4u8, 5, 7][rng.below(3) as usize] << 3 | r,
            imm[0],
        ]),
        6 => {
            p.extend([
                0x8D,
                0x84 | r << 3,
                (rng.below(4) as u8) << 6 | (s & 3) << 3 | 6,
            ]);
            p.extend(imm);
        }
        7 | 8 => {
            let op = [0x8B, 0x89, 0x03, 0x01, 0x2B, 0x29, 0x33, 0x3B, 0x85, 0x13];
            p.extend([op[rng.below(10) as usize], 0x86 | r << 3]);
            p.extend(disp(rng).to_le_bytes());
        }
        9 => {
            let op = [0x88u8, 0x8A, 0x00, 0x02, 0x28, 0x30, 0x38, 0x84];
            p.extend([op[rng.below(8) as usize], 0x86 | (rng.below(8) as u8) << 3]);
            p.extend(disp(rng).to_le_bytes());
        }
        10 => {
            p.extend([
                0x0F,
                [0xB6, 0xB7, 0xBE, 0xBF][rng.below(4) as usize],
                0x86 | r << 3,
            ]);
            p.extend(disp(rng).to_le_bytes());
        }
        11 => p.extend([0x50 + r, 0x58 + FREE[rng.below(4) as usize]]),
        12 => p.extend([0x9C, 0x58 + r]), // pushfd; pop r: the flags
        13 => p.extend([0x40 + r]),
        14 => p.extend([0xD1, 0xE0 | r, 0x90]),
        15 => {
            // A forward Jcc over the next op.
            let mut next = Vec::new();
            instruction(rng, &mut next, code_at);
            if next.len() < 120 {
                p.extend([0x70 + rng.below(16) as u8, next.len() as u8]);
                p.extend(next);
            }
        }
        16 => {
            // Self-modifying: rewrite the immediate of a `mov eax, imm32`
            // a few bytes ahead, then run it.
            let at = code_at + p.len() as u32 + 10 + 1;
            p.extend([0xC7, 0x05]);
            p.extend(at.to_le_bytes());
            p.extend(imm);
            p.extend([0xB8, 0, 0, 0, 0]);
        }
        17 => p.extend([0x0F, 0xAF, 0xC0 | r << 3 | s & 3]), // imul (interpreted)
        18 => {
            // A call to the next instruction, and a pop of its address.
            p.extend([0xE8, 0, 0, 0, 0, 0x58 + r]);
        }
        _ => p.extend([0x9F, 0x9E]), // lahf; sahf
    }
}

/// One case's machine (ring 0): RAM with the program, a flat GDT, an IDT
/// whose #PF gate goes to a handler that resumes at EBP, optional paging
/// with a hole, and random registers.
fn machine(rng: &mut Rng, program: &[u8], paging: bool) -> (Cpu, FlatRam) {
    let mut ram = FlatRam::new(RAM);
    let bytes = ram.bytes_mut();
    bytes[CODE as usize..CODE as usize + program.len()].copy_from_slice(program);
    for k in 0..0x1000 {
        bytes[DATA as usize + k] = rng.next() as u8;
    }
    // GDT at 0x1000: null, ring-0 code 0x08, ring-0 data 0x10, ring-3 code
    // 0x1B, ring-3 data 0x23, all flat.
    let gdt: [u64; 5] = [
        0,
        0x00CF_9A00_0000_FFFF,
        0x00CF_9200_0000_FFFF,
        0x00CF_FA00_0000_FFFF,
        0x00CF_F200_0000_FFFF,
    ];
    for (k, d) in gdt.iter().enumerate() {
        bytes[0x1000 + 8 * k..0x1008 + 8 * k].copy_from_slice(&d.to_le_bytes());
    }
    // IDT at 0x2000: #PF (14) -> HANDLER, a ring-0 interrupt gate.
    let gate = |off: u32| -> u64 {
        u64::from(off & 0xFFFF) | 0x08 << 16 | 0x8E00u64 << 32 | u64::from(off >> 16) << 48
    };
    bytes[0x2000 + 14 * 8..0x2000 + 15 * 8].copy_from_slice(&gate(HANDLER).to_le_bytes());
    // The handler: drop the error code, resume at EBP: add esp,4; mov
    // [esp], ebp; iretd.
    bytes[HANDLER as usize..HANDLER as usize + 8]
        .copy_from_slice(&[0x83, 0xC4, 0x04, 0x89, 0x2C, 0x24, 0xCF, 0x90]);
    // Page tables: identity for the first 4 MiB but HOLE, user-accessible.
    if paging {
        let (pd, pt) = (0x6000usize, 0x7000usize);
        bytes[pd..pd + 4].copy_from_slice(&(pt as u32 | 7).to_le_bytes());
        for k in 0..1024u32 {
            let e = if k << 12 == HOLE { 0 } else { k << 12 | 7 };
            let at = pt + 4 * k as usize;
            bytes[at..at + 4].copy_from_slice(&e.to_le_bytes());
        }
    }
    let mut cpu = Cpu::new(CpuModel::P6);
    cpu.state.set_flat32(true);
    cpu.state.gdtr.base = 0x1000;
    cpu.state.gdtr.limit = 0x27;
    cpu.state.idtr.base = 0x2000;
    cpu.state.idtr.limit = 0x7FF;
    if paging {
        cpu.state.cr3 = 0x6000;
        cpu.state.cr0 |= 0x8000_0000;
    }
    cpu.state.eip = CODE;
    for r in 0..8 {
        cpu.state.regs[r] = rng.next() as u32;
    }
    cpu.state.regs[4] = 0x4_0000; // ESP
    cpu.state.regs[6] = DATA; // ESI
    cpu.state.regs[7] = rng.below(4) as u32; // EDI (an index)
    cpu.state.eflags = 0x2 | (rng.next() as u32 & 0x8D5);
    (cpu, ram)
}

/// What went wrong in a case.
#[derive(Debug)]
pub struct Mismatch {
    /// The case number.
    pub case: u64,
    /// What differed.
    pub what: String,
}

/// The outcome of a run.
#[derive(Debug, Default)]
pub struct Report {
    /// Cases whose runs agreed.
    pub passed: u64,
    /// Cases that did not.
    pub failed: u64,
    /// The first failures.
    pub failures: Vec<Mismatch>,
    /// Instructions the JIT ran translated, and in all.
    pub native: u64,
    /// All instructions the JIT engine ran.
    pub total: u64,
}

/// Runs `count` cases from `seed`, keeping up to `show` failures.
pub fn run(count: u64, seed: u64, show: usize) -> Report {
    let mut rep = Report::default();
    let mut jit = JitEngine::default();
    for case in 0..count {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ case.wrapping_add(1) | 1);
        match one(&mut rng, &mut jit, case) {
            Ok(()) => rep.passed += 1,
            Err(what) => {
                rep.failed += 1;
                if rep.failures.len() < show {
                    rep.failures.push(Mismatch { case, what });
                }
            }
        }
    }
    rep.native = jit.stats.native_insns;
    rep.total = jit.stats.native_insns + jit.stats.interp_insns;
    rep
}

fn one(rng: &mut Rng, jit: &mut JitEngine, case: u64) -> Result<(), String> {
    let paging = rng.below(2) == 0;
    let mut program = Vec::new();
    // EBP: where the #PF handler resumes, set before each group.
    while program.len() < 400 {
        let mut insn = Vec::new();
        instruction(rng, &mut insn, CODE + program.len() as u32 + 5);
        let resume = CODE + program.len() as u32 + 5 + insn.len() as u32;
        program.push(0xBD); // mov ebp, resume
        program.extend(resume.to_le_bytes());
        program.extend(insn);
    }
    program.push(0xF4);
    let state_seed = rng.next();
    let (mut a, mut ram_a) = machine(&mut Rng(state_seed | 1), &program, paging);
    let (mut b, mut ram_b) = machine(&mut Rng(state_seed | 1), &program, paging);
    for slice in 0..10_000 {
        let budget = 1 + rng.below(60);
        let req = RunRequest {
            budget,
            interrupt_pending: false,
        };
        let ea = Interpreter.run(&mut a, &mut ram_a, req);
        let eb = jit.run(&mut b, &mut ram_b, req);
        if ea != eb || a.icount != b.icount || a.state != b.state {
            return Err(format!(
                "case {case}, slice {slice}: interpreter {ea:?} at {} eip {:08x}, jit {eb:?} at {} eip {:08x}\n  interp regs {:08x?} eflags {:08x}\n  jit    regs {:08x?} eflags {:08x}",
                a.icount, a.state.eip, b.icount, b.state.eip, a.state.regs, a.state.eflags,
                b.state.regs, b.state.eflags
            ));
        }
        if matches!(ea, EngineExit::Halted | EngineExit::Shutdown(_)) {
            break;
        }
    }
    if ram_a.bytes() != ram_b.bytes() {
        let at = ram_a
            .bytes()
            .iter()
            .zip(ram_b.bytes())
            .position(|(x, y)| x != y)
            .unwrap_or(0);
        return Err(format!("case {case}: RAM differs at {at:#x}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_agree_on_a_sample() {
        let rep = run(300, 1, 3);
        assert_eq!(rep.failed, 0, "{:#?}", rep.failures);
        assert!(
            rep.native * 4 > rep.total,
            "{} of {}",
            rep.native,
            rep.total
        );
    }
}
