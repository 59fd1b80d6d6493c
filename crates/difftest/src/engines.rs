//! `difftest engines`: the JIT against the reference interpreter, in
//! lockstep.
//!
//! Each case is a seeded random program that starts in 32-bit flat
//! protected mode (ring 0, paging on or off), built from groups of
//! instructions ([`Kind`]): the forms the translator takes and the ones it
//! leaves to the interpreter — ALU, shifts and rotates (by immediates, 1 and
//! CL), IMUL/MUL/DIV, NOT/NEG, SETcc, CMOVcc, LEA, byte and 16-bit
//! operations, MOVZX/MOVSX, memory operands in every addressing form
//! (aligned, misaligned, beyond RAM, unmapped, into the code's own page),
//! PUSH/POP, calls, forward branches, flag reads, string instructions (with
//! REP, both directions), segment-register loads (flat, non-flat, faulting),
//! self-modifying code (immediates, opcodes and branch displacements ahead,
//! REP STOSB over the next instruction, stores through a second linear
//! mapping of the code page, patches inside hot loops), page-table changes
//! (remapped, read-only, supervisor and absent data pages, with and without
//! INVLPG or a CR3 reload; paging switched off and on), mode switches (to
//! ring 3 by IRET, at IOPL 0 or 3, and back by a gate; far jumps into a
//! 16-bit code segment and back), software interrupts and exceptions
//! (INT n through DPL-3 and DPL-0 gates, absent gates, INT3, INT1, UD2,
//! #DE), and external interrupts the harness injects whenever both engines
//! stop at an interrupt window. Every exception goes to a handler that
//! resumes at the address the program keeps in EBP (set before each
//! instruction), in the ring it came from.
//!
//! Both engines run the same program on their own copy of the machine, in
//! slices of random budgets; after every slice the whole CPU state, the
//! instruction count and the exit must agree, and so must the memory where
//! the program's code, data, page tables and stacks live; at the end, the whole
//! RAM. A case is a [`Case`]: a list of groups, each a kind and a seed, so
//! that a failing case can be shrunk to the few groups that matter
//! ([`shrink`]); the proptest target in this module's tests does the same
//! from proptest's side.

use morph86_cpu::{Cpu, CpuModel, Engine, EngineExit, FlatRam, Interpreter, RunRequest};
use morph86_jit::JitEngine;

/// RAM of each case.
const RAM: usize = 0x20_0000;
/// Where the program starts (also the base of the 16-bit code segment).
const CODE: u32 = 0x1_0000;
/// The data window the memory operands use (ESI points into it).
const DATA: u32 = 0x3_0000;
/// A loop counter and an accumulator, on the page after the data window.
const CNT: u32 = 0x3_1000;
const ACC: u32 = 0x3_1004;
/// A page that paging leaves unmapped (its accesses fault).
const HOLE: u32 = 0x5_0000;
/// A physical page data-page remaps point to.
const OTHER: u32 = 0x6_0000;
/// A linear page that page-table groups map onto the code (an alias).
const ALIAS: u32 = 0x7_0000;
/// The GDT, IDT, TSS, page directory and page table.
const GDT: u32 = 0x1000;
const IDT: u32 = 0x2000;
const TSS: u32 = 0x3000;
const PD: u32 = 0x6000;
const PT: u32 = 0x7000;
/// Exception and interrupt handlers.
const H_ERR: u32 = 0x8000;
const H_NOERR: u32 = 0x8010;
const H_IRET: u32 = 0x8020;
const H_RING0: u32 = 0x8040;
/// Stacks: ring 0 (initial), ring 0 from the TSS, ring 3.
const STACK0: u32 = 0x4_0000;
const STACK_TSS: u32 = 0x4_8000;
const STACK3: u32 = 0x4_4000;
/// The vector the harness injects as an external interrupt.
const EXT_VECTOR: u8 = 0x90;

/// Selectors of the GDT each case gets.
mod sel {
    pub const CODE0: u16 = 0x08;
    pub const CODE3: u16 = 0x1B;
    pub const DATA3: u16 = 0x23;
    pub const TSS: u16 = 0x28;
    pub const CODE16: u16 = 0x30;
    /// Data, base DATA, limit 0xFFFF, DPL 3 (not flat).
    pub const SMALL: u16 = 0x3B;
    /// Read-only flat data, DPL 3.
    pub const RO: u16 = 0x43;
    /// Not present.
    pub const ABSENT: u16 = 0x4B;
    /// Beyond the GDT's limit.
    pub const BEYOND: u16 = 0x58;
    /// Ring-0 data, flat.
    pub const DATA0: u16 = 0x10;
}

use morph86_cpu::robustness::Xorshift as Rng;

/// Registers a random op may write (never ESP, ESI, EDI, EBP).
const FREE: [u8; 4] = [0, 1, 2, 3];

/// What a group of instructions does (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One simple instruction (ALU, memory, shifts, IMUL, SETcc, CMOVcc,
    /// 16-bit, byte, flag reads...), maybe skipped by a forward Jcc.
    Simple,
    /// A string instruction over the data window, maybe with REP, in either
    /// direction.
    String,
    /// A segment register loaded with a flat, non-flat or faulting
    /// selector, used by a memory access, then made flat again.
    SegLoad,
    /// Self-modifying code: an immediate, an opcode or a branch
    /// displacement ahead rewritten by a store, or REP STOSB over the next
    /// instruction.
    Smc,
    /// A store through a second linear mapping of the code page into an
    /// instruction ahead.
    AliasSmc,
    /// A loop of simple instructions that patches an instruction of its own
    /// block on every iteration.
    Loop,
    /// A data-page mapping changed (remapped, read-only, supervisor,
    /// absent, restored), with or without INVLPG or a CR3 reload.
    PageTable,
    /// Paging switched off or on, a simple instruction, and back.
    TogglePaging,
    /// To ring 3 by IRET (IOPL 0 or 3).
    EnterRing3,
    /// Back to ring 0 through a DPL-3 gate.
    LeaveRing3,
    /// A far jump to 16-bit code and back.
    Code16,
    /// INT n, INT3, INT1, UD2, division faults.
    Interrupt,
    /// CLI, STI, or POPF setting IF: windows for injected interrupts.
    InterruptFlag,
    /// x87 instructions: computing forms on registers and on memory (all
    /// operand sizes, at the displacements of the simple kind), FCOMI and
    /// FCMOVcc, FNSTSW AX, FLDCW with masked or unmasked exceptions,
    /// FNINIT, FNCLEX.
    X87,
}

/// A kind from a random number, simple instructions the most likely.
pub fn kind_of(n: u64) -> Kind {
    match n % 40 {
        0..=15 => Kind::Simple,
        16 | 17 => Kind::X87,
        18 | 19 => Kind::String,
        20 | 21 => Kind::SegLoad,
        22..=24 => Kind::Smc,
        25 => Kind::AliasSmc,
        26..=28 => Kind::Loop,
        29 | 30 => Kind::PageTable,
        31 => Kind::TogglePaging,
        32 | 33 => Kind::EnterRing3,
        34 | 35 => Kind::LeaveRing3,
        36 => Kind::Code16,
        37 | 38 => Kind::Interrupt,
        _ => Kind::InterruptFlag,
    }
}

/// One test case: everything a run depends on.
#[derive(Clone, Debug)]
pub struct Case {
    /// Paging on at the start.
    pub paging: bool,
    /// The program: groups of a kind, each built from its own seed.
    pub groups: Vec<(Kind, u64)>,
    /// Registers, flags and data.
    pub state_seed: u64,
    /// Slice budgets and interrupt requests.
    pub slice_seed: u64,
    /// The JIT's code cache in bytes (small ones force flushes).
    pub cache: usize,
}

impl Case {
    /// The case `rng` describes (as `difftest engines` draws them).
    pub fn random(rng: &mut Rng) -> Case {
        let paging = rng.below(2) == 0;
        let n = 30 + rng.below(50) as usize;
        let groups = (0..n)
            .map(|_| (kind_of(rng.next()), rng.next() | 1))
            .collect();
        Case {
            paging,
            groups,
            state_seed: rng.next() | 1,
            slice_seed: rng.next() | 1,
            cache: if rng.below(8) == 0 {
                8 << 10
            } else {
                morph86_jit::DEFAULT_CACHE_BYTES
            },
        }
    }
}

/// The program under construction.
struct Gen {
    p: Vec<u8>,
}

impl Gen {
    /// The guest address of the next byte.
    fn here(&self) -> u32 {
        CODE + self.p.len() as u32
    }

    fn bytes(&mut self, b: &[u8]) {
        self.p.extend_from_slice(b);
    }

    fn u32(&mut self, v: u32) {
        self.p.extend(v.to_le_bytes());
    }

    /// Emits `mov ebp, <placeholder>` and returns where its immediate is.
    fn resume_placeholder(&mut self) -> usize {
        self.p.push(0xBD);
        self.p.extend([0; 4]);
        self.p.len() - 4
    }

    /// Points the `mov ebp` at `at` to the next byte.
    fn resume_here(&mut self, at: usize) {
        let here = self.here();
        self.p[at..at + 4].copy_from_slice(&here.to_le_bytes());
    }

    /// Emits `body` so that an exception in it resumes right after it.
    fn guarded(&mut self, body: impl FnOnce(&mut Gen)) {
        let at = self.resume_placeholder();
        body(self);
        self.resume_here(at);
    }
}

/// `[esi + disp32]` with the displacement picked for a purpose.
fn disp(rng: &mut Rng) -> u32 {
    match rng.below(10) {
        0 => 0xFFF0_0000,                                        // beyond RAM
        1 => 1 + 4 * rng.below(64) as u32,                       // misaligned
        2 => HOLE.wrapping_sub(DATA) + 4 * rng.below(16) as u32, // unmapped when paging
        _ => 4 * rng.below(256) as u32,
    }
}

/// Appends a few x87 instructions (see [`Kind::X87`]) to `p`.
fn x87(rng: &mut Rng, p: &mut Vec<u8>) {
    if rng.below(3) == 0 {
        p.extend([0xDB, 0xE3]); // fninit: every exception masked
    }
    for _ in 0..1 + rng.below(6) {
        match rng.below(10) {
            // op [esi + disp32], sometimes ES-relative (FDS then records
            // ES's selector, which a segment-load group may have changed)
            0..=3 => {
                let (op, modrm) = rng.x87_form(Some(0x86));
                if rng.below(3) == 0 {
                    p.push(0x26);
                }
                p.extend([op, modrm]);
                p.extend(disp(rng).to_le_bytes());
            }
            // op st(i)
            4..=6 => p.extend(<[u8; 2]>::from(rng.x87_form(None))),
            // fcmovcc st0,st(i); fucomip st0,st1; setb al
            7 => {
                let cc = rng.below(8) as u8;
                p.extend([0xDA + (cc >> 2), 0xC0 | (cc & 3) << 3 | rng.below(8) as u8]);
                p.extend([0xDF, 0xE9, 0x0F, 0x92, 0xC0]);
            }
            8 => p.extend([0xDF, 0xE0]), // fnstsw ax
            // mov word [esi+0x10],cw; fldcw [esi+0x10] (often all masked)
            _ => {
                let cw: u16 = if rng.below(3) == 0 {
                    rng.next() as u16
                } else {
                    0x037F | (rng.next() as u16 & 0x0C00)
                };
                p.extend([0x66, 0xC7, 0x46, 0x10]);
                p.extend(cw.to_le_bytes());
                p.extend([0xD9, 0x6E, 0x10]);
                if rng.below(2) == 0 {
                    p.extend([0xDB, 0xE2]); // fnclex
                }
            }
        }
    }
}

/// Appends one simple instruction (or a short group that keeps the
/// reserved registers) to `p`. `nested` bars the forms that contain
/// another instruction.
fn simple(rng: &mut Rng, p: &mut Vec<u8>, nested: bool) {
    let r = FREE[rng.below(4) as usize];
    let s = rng.below(8) as u8;
    let imm = (rng.next() as u32).to_le_bytes();
    let reg_or_mem = |rng: &mut Rng, p: &mut Vec<u8>, reg: u8| {
        if rng.below(2) == 0 {
            p.push(0xC0 | reg << 3 | FREE[rng.below(4) as usize]);
        } else {
            p.push(0x86 | reg << 3);
            p.extend(disp(rng).to_le_bytes());
        }
    };
    match rng.below(34) {
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
        15 if !nested => {
            // A forward Jcc over the next op.
            let mut next = Vec::new();
            simple(rng, &mut next, true);
            p.extend([0x70 + rng.below(16) as u8, next.len() as u8]);
            p.extend(next);
        }
        16 => {
            // IMUL r, r/m (reg or memory); IMUL r, r/m, imm8 / imm32.
            match rng.below(3) {
                0 => p.extend([0x0F, 0xAF]),
                1 => p.push(0x6B),
                _ => p.push(0x69),
            }
            let form = p[p.len() - 1];
            reg_or_mem(rng, p, r);
            match form {
                0x6B => p.push(imm[0]),
                0x69 => p.extend(imm),
                _ => {}
            }
        }
        17 => {
            // SETcc r/m8.
            p.extend([0x0F, 0x90 + rng.below(16) as u8]);
            reg_or_mem(rng, p, 0);
        }
        18 => {
            // CMOVcc r, r/m.
            p.extend([0x0F, 0x40 + rng.below(16) as u8]);
            reg_or_mem(rng, p, r);
        }
        19 => {
            // NOT, NEG, MUL, IMUL, DIV, IDIV (the divisions fault often).
            p.push(0xF7);
            let op = 2 + rng.below(6) as u8;
            reg_or_mem(rng, p, op);
        }
        20 => {
            // Rotates and shifts by an immediate (32 or 8 bits).
            let op = rng.below(8) as u8;
            p.push(if rng.below(3) == 0 { 0xC0 } else { 0xC1 });
            reg_or_mem(rng, p, op);
            p.push(imm[0] & 0x3F);
        }
        21 => {
            // Rotates and shifts by 1 or by CL (32 or 8 bits).
            let op = rng.below(8) as u8;
            p.push([0xD1, 0xD3, 0xD0, 0xD2][rng.below(4) as usize]);
            reg_or_mem(rng, p, op);
        }
        22 => {
            // 16-bit ALU on registers.
            let op = [0x01, 0x11, 0x19, 0x21, 0x09, 0x29, 0x31, 0x39, 0x85, 0x89];
            p.extend([0x66, op[rng.below(10) as usize], 0xC0 | s << 3 | r]);
        }
        23 => {
            // 16-bit immediate forms.
            match rng.below(3) {
                0 => p.extend([0x66, 0xB8 + r, imm[0], imm[1]]),
                1 => p.extend([
                    0x66,
                    0x81,
                    0xC0 | (rng.below(8) as u8) << 3 | r,
                    imm[0],
                    imm[1],
                ]),
                _ => p.extend([0x66, 0x83, 0xC0 | (rng.below(8) as u8) << 3 | r, imm[0]]),
            }
        }
        24 => {
            // 16-bit memory forms.
            let op = [0x8B, 0x89, 0x03, 0x01, 0x29, 0x31, 0x3B, 0x85];
            p.extend([0x66, op[rng.below(8) as usize], 0x86 | r << 3]);
            p.extend(disp(rng).to_le_bytes());
        }
        25 => {
            // 16-bit NOT, NEG, MUL, IMUL; shifts and rotates by 1 and CL.
            let (opcode, op) = match rng.below(3) {
                0 => (0xF7, 2 + rng.below(4) as u8),
                1 => (0xD1, rng.below(8) as u8),
                _ => (0xD3, rng.below(8) as u8),
            };
            p.extend([0x66, opcode, 0xC0 | op << 3 | r]);
        }
        26 => {
            // Byte ALU with immediates, registers AL..BH.
            p.extend([0x80, 0xC0 | (rng.below(8) as u8) << 3 | s, imm[0]]);
        }
        27 => {
            // XCHG, BSWAP, CDQ, CWDE, MOVSX from a register.
            match rng.below(4) {
                0 => p.extend([0x87, 0xC0 | FREE[rng.below(4) as usize] << 3 | r]),
                1 => p.extend([0x0F, 0xC8 + r]),
                2 => p.push([0x99, 0x98][rng.below(2) as usize]),
                _ => p.extend([0x0F, 0xBE, 0xC0 | r << 3 | s]),
            }
        }
        28 => {
            // BT, BTS, BTR, BTC by an immediate; BSF, BSR.
            if rng.below(2) == 0 {
                p.extend([0x0F, 0xBA, 0xC0 | (4 + rng.below(4) as u8) << 3 | r, imm[0]]);
            } else {
                p.extend([0x0F, [0xBC, 0xBD][rng.below(2) as usize]]);
                reg_or_mem(rng, p, r);
            }
        }
        29 => p.push([0xF5, 0xF8, 0xF9][rng.below(3) as usize]), // CMC, CLC, STC
        30 => {
            // A call to the next instruction, and a pop of its address.
            p.extend([0xE8, 0, 0, 0, 0, 0x58 + r]);
        }
        31 => p.extend([0x0F, 0xAF, 0xC0 | r << 3 | s & 3]), // imul r, r
        32 => {
            // ADC / SBB with memory, and immediates to memory.
            p.extend([
                [0x81, 0x83][rng.below(2) as usize],
                0x86 | (rng.below(8) as u8) << 3,
            ]);
            let form = p[p.len() - 2];
            p.extend(disp(rng).to_le_bytes());
            if form == 0x81 {
                p.extend(imm);
            } else {
                p.push(imm[0]);
            }
        }
        _ => p.extend([0x9F, 0x9E]), // lahf; sahf
    }
}

/// Appends group `kind`, built from `seed`, to the program.
fn group(g: &mut Gen, kind: Kind, seed: u64) {
    let rng = &mut Rng(seed | 1);
    match kind {
        Kind::Simple => g.guarded(|g| simple(rng, &mut g.p, false)),
        Kind::X87 => {
            // push es; push 0x23; pop es: a flat data selector that differs
            // from DS in ring 0, for the ES-relative forms' FDS. The old ES
            // comes back where a fault resumes too.
            g.bytes(&[0x06, 0x6A, sel::DATA3 as u8, 0x07]);
            g.guarded(|g| x87(rng, &mut g.p));
            g.bytes(&[0x07]);
        }
        Kind::String => {
            // push esi; push edi; mov esi, a; mov edi, b; mov ecx, n; [std];
            // [rep] op; then, where a fault resumes: cld; pop edi; pop esi.
            let back = rng.below(2) == 0;
            let a = DATA + 0x100 + rng.below(0x200) as u32;
            let b = DATA + 0x100 + rng.below(0x200) as u32;
            let n = rng.below(24) as u32;
            let op = [0xA4u8, 0xA5, 0xAA, 0xAB, 0xAC, 0xAD, 0xA6, 0xA7, 0xAE, 0xAF]
                [rng.below(10) as usize];
            let prefix = [None, Some(0xF3u8), Some(0xF3), Some(0xF2)][rng.below(4) as usize];
            let at = g.resume_placeholder();
            g.bytes(&[0x56, 0x57, 0xBE]);
            g.u32(a);
            g.p.push(0xBF);
            g.u32(b);
            g.p.push(0xB9);
            g.u32(n);
            if back {
                g.p.push(0xFD);
            }
            if let Some(x) = prefix {
                g.p.push(x);
            }
            g.p.push(op);
            g.resume_here(at);
            g.bytes(&[0xFC, 0x5F, 0x5E]);
        }
        Kind::SegLoad => {
            let s = [
                sel::DATA3,
                sel::DATA0,
                sel::SMALL,
                sel::SMALL,
                sel::RO,
                sel::ABSENT,
                0,
                sel::BEYOND,
            ][rng.below(8) as usize];
            let reg = rng.below(4) as u8; // ES, (CS: no), SS: no; DS, FS, GS
            let (sreg, prefix) = [(0u8, 0x26u8), (3, 0x3E), (4, 0x64), (5, 0x65)][reg as usize];
            let at = g.resume_placeholder();
            g.bytes(&[0x66, 0xB8]);
            g.p.extend(s.to_le_bytes());
            g.bytes(&[0x8E, 0xC0 | sreg << 3]);
            // A load or a store through it.
            g.bytes(&[prefix, [0x8B, 0x89][rng.below(2) as usize], 0x86]);
            g.u32(disp(rng));
            g.resume_here(at);
            // Flat again (DPL 3: loadable in either ring).
            g.bytes(&[0x66, 0xB8, sel::DATA3 as u8, 0, 0x8E, 0xD8, 0x8E, 0xC0]);
        }
        Kind::Smc => match rng.below(4) {
            0 => {
                // mov dword [T+1], imm; T: mov eax, imm32
                let t = g.here() + 5 + 10;
                g.guarded(|g| {
                    g.bytes(&[0xC7, 0x05]);
                    g.u32(t + 1);
                    g.u32(rng.next() as u32);
                });
                g.bytes(&[0xB8, 0, 0, 0, 0]);
            }
            1 => {
                // mov byte [T], 01 or 29; T: add/sub ebx, edx
                let t = g.here() + 5 + 7;
                g.guarded(|g| {
                    g.bytes(&[0xC6, 0x05]);
                    g.u32(t);
                    g.p.push([0x01, 0x29, 0x31, 0x21][rng.below(4) as usize]);
                });
                g.bytes(&[0x01, 0xD3]);
            }
            2 => {
                // mov byte [T+1], d; T: jmp +0; inc eax x4
                let t = g.here() + 5 + 7;
                g.guarded(|g| {
                    g.bytes(&[0xC6, 0x05]);
                    g.u32(t + 1);
                    g.p.push(rng.below(5) as u8);
                });
                g.bytes(&[0xEB, 0x00, 0x40, 0x40, 0x40, 0x40]);
            }
            _ => {
                // push edi; mov edi, T+1; mov ecx, 4; mov al, x; rep stosb;
                // pop edi; T: mov edx, imm32
                let start = g.here();
                let t = start + 5 + 1 + 5 + 5 + 2 + 2 + 1;
                g.guarded(|g| {
                    g.p.push(0x57);
                    g.p.push(0xBF);
                    g.u32(t + 1);
                    g.p.push(0xB9);
                    g.u32(4);
                    g.bytes(&[0xB0, rng.next() as u8, 0xF3, 0xAA]);
                });
                g.p.push(0x5F);
                debug_assert_eq!(g.here(), t);
                g.bytes(&[0xBA, 0, 0, 0, 0]);
            }
        },
        Kind::AliasSmc => {
            // Map ALIAS onto the page of T, INVLPG it, store into T's
            // immediate through it; T: mov ecx, 0.
            let t = g.here() + 15 + 12 + 15;
            let page = t & !0xFFF;
            g.guarded(|g| {
                g.bytes(&[0xC7, 0x05]);
                g.u32(PT + 4 * (ALIAS >> 12));
                g.u32(page | 7);
            });
            g.guarded(|g| {
                g.bytes(&[0x0F, 0x01, 0x3D]);
                g.u32(ALIAS);
            });
            g.guarded(|g| {
                g.bytes(&[0xC7, 0x05]);
                g.u32(ALIAS + ((t + 1) & 0xFFF));
                g.u32(rng.next() as u32);
            });
            debug_assert_eq!(g.here(), t);
            g.bytes(&[0xB9, 0, 0, 0, 0]);
        }
        Kind::Loop => {
            // mov dword [CNT], n
            // L: body (guarded simple ops)
            //    mov ecx, [CNT]; mov [T+1], ecx   (patch T with the counter)
            //    [and ecx, 1; imul ecx, ecx, 0x28; add ecx, 1; mov [T2], cl]
            // T: mov edx, imm32
            // T2: add ebx, edx (or sub)
            //    add [ACC], edx; dec dword [CNT]; jnz L
            let n = 1 + rng.below(24) as u32;
            g.bytes(&[0xC7, 0x05]);
            g.u32(CNT);
            g.u32(n);
            let l = g.here();
            for _ in 0..1 + rng.below(4) {
                g.guarded(|g| simple(rng, &mut g.p, true));
            }
            let opcode = rng.below(2) == 0;
            let t = g.here() + 12 + if opcode { 16 } else { 0 };
            g.bytes(&[0x8B, 0x0D]);
            g.u32(CNT);
            g.bytes(&[0x89, 0x0D]);
            g.u32(t + 1);
            if opcode {
                g.bytes(&[
                    0x83, 0xE1, 0x01, 0x6B, 0xC9, 0x28, 0x83, 0xC1, 0x01, 0x88, 0x0D,
                ]);
                g.u32(t + 5);
                g.bytes(&[0x90]);
            }
            debug_assert_eq!(g.here(), t);
            g.bytes(&[0xBA, 0, 0, 0, 0, 0x01, 0xD3, 0x01, 0x15]);
            g.u32(ACC);
            g.bytes(&[0xFF, 0x0D]);
            g.u32(CNT);
            let rel = l.wrapping_sub(g.here() + 6);
            g.bytes(&[0x0F, 0x85]);
            g.u32(rel);
        }
        Kind::PageTable => {
            let entry = PT + 4 * (DATA >> 12);
            let value =
                [DATA | 7, OTHER | 7, OTHER | 5, DATA | 3, 0, DATA | 7][rng.below(6) as usize];
            g.guarded(|g| {
                g.bytes(&[0xC7, 0x05]);
                g.u32(entry);
                g.u32(value);
            });
            match rng.below(3) {
                0 => g.guarded(|g| g.bytes(&[0x0F, 0x01, 0x3E])), // invlpg [esi]
                1 => g.guarded(|g| g.bytes(&[0x0F, 0x20, 0xD8, 0x0F, 0x22, 0xD8])),
                _ => {}
            }
        }
        Kind::TogglePaging => {
            // mov eax, cr0; xor eax, 0x80000000; mov cr0, eax; an op; and
            // the same toggle again.
            let toggle = [0x0F, 0x20, 0xC0, 0x35, 0, 0, 0, 0x80, 0x0F, 0x22, 0xC0];
            g.guarded(|g| g.bytes(&toggle));
            g.guarded(|g| simple(rng, &mut g.p, true));
            g.guarded(|g| g.bytes(&toggle));
        }
        Kind::EnterRing3 => {
            // push 0x23; pop ds; push 0x23; pop es; push 0x23; push STACK3;
            // pushfd; [or dword [esp], 0x3000]; push 0x1B; push N; iretd; N:
            let iopl3 = rng.below(3) == 0;
            let len = 6 + 2 + 5 + 1 + if iopl3 { 7 } else { 0 } + 2 + 5 + 1;
            let at = g.resume_placeholder();
            let next = g.here() + len;
            g.bytes(&[0x6A, 0x23, 0x1F, 0x6A, 0x23, 0x07, 0x6A, 0x23, 0x68]);
            g.u32(STACK3);
            g.p.push(0x9C);
            if iopl3 {
                g.bytes(&[0x81, 0x0C, 0x24, 0x00, 0x30, 0, 0]);
            }
            g.bytes(&[0x6A, sel::CODE3 as u8, 0x68]);
            g.u32(next);
            g.p.push(0xCF);
            g.resume_here(at);
        }
        Kind::LeaveRing3 => g.guarded(|g| g.bytes(&[0xCD, 0x80])),
        Kind::Code16 => {
            // jmp 0x30:T16; T16: 16-bit register ops; jmp far 0x08:back
            let at = g.resume_placeholder();
            let t16 = g.here() + 7;
            g.p.push(0xEA);
            g.u32(t16 - CODE);
            g.p.extend(sel::CODE16.to_le_bytes());
            for _ in 0..1 + rng.below(5) {
                let r = FREE[rng.below(4) as usize];
                match rng.below(4) {
                    0 => {
                        g.p.push(0xB8 + r);
                        g.p.extend((rng.next() as u16).to_le_bytes());
                    }
                    1 => g.bytes(&[0x01, 0xC0 | (rng.below(4) as u8) << 3 | r]),
                    2 => g.p.push(0x40 + r),
                    _ => g.bytes(&[0xD1, 0xE0 | r]),
                }
            }
            let back = g.here() + 8;
            g.bytes(&[0x66, 0xEA]);
            g.u32(back);
            g.p.extend(sel::CODE0.to_le_bytes());
            g.resume_here(at);
        }
        Kind::Interrupt => g.guarded(|g| match rng.below(9) {
            0 | 1 => g.bytes(&[0xCD, 0x81]),         // DPL-3 trap gate
            2 => g.bytes(&[0xCD, 0x82]),             // DPL-0 gate: #GP from ring 3
            3 => g.bytes(&[0xCD, 0x83]),             // absent gate: #NP
            4 => g.p.push(0xCC),                     // INT3
            5 => g.p.push(0xF1),                     // INT1
            6 => g.bytes(&[0x0F, 0x0B]),             // UD2
            7 => g.bytes(&[0x31, 0xC9, 0xF7, 0xF1]), // xor ecx, ecx; div ecx
            _ => g.bytes(&[0x0F, 0x31]),             // RDTSC
        }),
        Kind::InterruptFlag => g.guarded(|g| match rng.below(3) {
            0 => g.p.push(0xFB),
            1 => g.p.push(0xFA),
            _ => g.bytes(&[0x9C, 0x81, 0x0C, 0x24, 0x00, 0x02, 0, 0, 0x9D]),
        }),
    }
}

/// The program of a case: LTR, the groups, then back to ring 0 and HLT.
pub fn program(case: &Case) -> Vec<u8> {
    let mut g = Gen { p: Vec::new() };
    // mov ax, TSS; ltr ax
    g.bytes(&[0x66, 0xB8, sel::TSS as u8, 0, 0x0F, 0x00, 0xD8]);
    for &(kind, seed) in &case.groups {
        group(&mut g, kind, seed);
        if g.p.len() > 0xE000 {
            break;
        }
    }
    // mov ebp, E; int 0x80; E: hlt
    let end = g.here() + 7;
    g.p.push(0xBD);
    g.u32(end);
    g.bytes(&[0xCD, 0x80, 0xF4]);
    g.p
}

/// One case's machine (ring 0): RAM with the program, the GDT, an IDT
/// whose gates go to handlers that resume at EBP, a TSS, page tables
/// (identity but HOLE, all user-accessible; paging on or off) and random
/// registers.
fn machine(case: &Case, program: &[u8]) -> (Cpu, FlatRam) {
    let rng = &mut Rng(case.state_seed | 1);
    let mut ram = FlatRam::new(RAM);
    let bytes = ram.bytes_mut();
    let put = |bytes: &mut [u8], at: u32, data: &[u8]| {
        bytes[at as usize..at as usize + data.len()].copy_from_slice(data);
    };
    put(bytes, CODE, program);
    for k in 0..0x1000 {
        bytes[(DATA + k) as usize] = rng.next() as u8;
        bytes[(OTHER + k) as usize] = rng.next() as u8;
    }
    // A descriptor: base, limit, access byte, flags nibble (G, D/B).
    let desc = |base: u32, limit: u32, access: u8, flags: u8| -> u64 {
        u64::from(limit & 0xFFFF)
            | u64::from(base & 0xFF_FFFF) << 16
            | u64::from(access) << 40
            | u64::from((limit >> 16) & 0xF) << 48
            | u64::from(flags & 0xF0) << 48
            | u64::from(base >> 24) << 56
    };
    let gdt = [
        0,
        desc(0, 0xFFFFF, 0x9A, 0xC0),   // 0x08 ring-0 code
        desc(0, 0xFFFFF, 0x92, 0xC0),   // 0x10 ring-0 data
        desc(0, 0xFFFFF, 0xFA, 0xC0),   // 0x18 ring-3 code
        desc(0, 0xFFFFF, 0xF2, 0xC0),   // 0x20 ring-3 data
        desc(TSS, 0x67, 0x89, 0),       // 0x28 TSS
        desc(CODE, 0xFFFF, 0x9A, 0),    // 0x30 16-bit code
        desc(DATA, 0xFFFF, 0xF2, 0x40), // 0x38 small data, DPL 3
        desc(0, 0xFFFFF, 0xF0, 0xC0),   // 0x40 read-only data, DPL 3
        desc(0, 0xFFFFF, 0x72, 0xC0),   // 0x48 not present
    ];
    for (k, d) in gdt.iter().enumerate() {
        put(bytes, GDT + 8 * k as u32, &d.to_le_bytes());
    }
    // IDT: exceptions resume at EBP; 0x80 returns to ring 0; 0x81 (DPL 3,
    // trap gate), 0x82 (DPL 0), 3 (DPL 3) and the external vector count
    // and IRET; 0x83 is absent.
    let gate = |off: u32, access: u8| -> u64 {
        u64::from(off & 0xFFFF)
            | u64::from(sel::CODE0) << 16
            | u64::from(access) << 40
            | u64::from(off >> 16) << 48
    };
    for v in 0..32u32 {
        let err = matches!(v, 8 | 10..=14 | 17);
        let g = gate(if err { H_ERR } else { H_NOERR }, 0x8E);
        put(bytes, IDT + 8 * v, &g.to_le_bytes());
    }
    for (v, off, access) in [
        (3u32, H_IRET, 0xEFu8),
        (0x80, H_RING0, 0xEE),
        (0x81, H_IRET, 0xEF),
        (0x82, H_IRET, 0x8E),
        (u32::from(EXT_VECTOR), H_IRET, 0x8E),
    ] {
        put(bytes, IDT + 8 * v, &gate(off, access).to_le_bytes());
    }
    // TSS: ESP0, SS0; the I/O map base beyond the limit.
    put(bytes, TSS + 4, &STACK_TSS.to_le_bytes());
    put(bytes, TSS + 8, &u32::from(sel::DATA0).to_le_bytes());
    put(bytes, TSS + 102, &104u16.to_le_bytes());
    // Handlers. H_ERR: add esp, 4; mov [esp], ebp; iretd.
    put(bytes, H_ERR, &[0x83, 0xC4, 0x04, 0x89, 0x2C, 0x24, 0xCF]);
    // H_NOERR: mov [esp], ebp; iretd.
    put(bytes, H_NOERR, &[0x89, 0x2C, 0x24, 0xCF]);
    // H_IRET: inc dword ss:[ACC + 4]; iretd.
    let mut h = vec![0x36, 0xFF, 0x05];
    h.extend((ACC + 4).to_le_bytes());
    h.push(0xCF);
    put(bytes, H_IRET, &h);
    // H_RING0: from ring 3, continue in ring 0 at EBP on the ring-3 stack;
    // from ring 0, drop the frame and continue at EBP.
    // test byte [esp+4], 3; jz s; mov esp, [esp+12]; jmp ebp;
    // s: add esp, 12; jmp ebp
    put(
        bytes,
        H_RING0,
        &[
            0xF6, 0x44, 0x24, 0x04, 0x03, 0x74, 0x06, 0x8B, 0x64, 0x24, 0x0C, 0xFF, 0xE5, 0x83,
            0xC4, 0x0C, 0xFF, 0xE5,
        ],
    );
    // Page tables: identity for the first 4 MiB but HOLE, user-accessible.
    put(bytes, PD, &(PT | 7).to_le_bytes());
    for k in 0..1024u32 {
        let e = if k << 12 == HOLE { 0 } else { k << 12 | 7 };
        put(bytes, PT + 4 * k, &e.to_le_bytes());
    }
    let mut cpu = Cpu::new(CpuModel::P6);
    cpu.state.set_flat32(true);
    cpu.state.gdtr.base = GDT;
    cpu.state.gdtr.limit = 8 * gdt.len() as u32 - 1;
    cpu.state.idtr.base = IDT;
    cpu.state.idtr.limit = 0x7FF;
    cpu.state.cr3 = PD;
    if case.paging {
        cpu.state.cr0 |= 0x8000_0000;
    }
    cpu.state.eip = CODE;
    for r in 0..8 {
        cpu.state.regs[r] = rng.next() as u32;
    }
    cpu.state.regs[4] = STACK0; // ESP
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
    /// What differed, the case's groups after shrinking, and how to
    /// reproduce it.
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

/// The case `difftest engines --seed seed` runs as number `case`.
pub fn case_for(seed: u64, case: u64) -> Case {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ case.wrapping_add(1) | 1);
    Case::random(&mut rng)
}

/// Runs `count` cases from `seed`, keeping up to `show` failures (each
/// shrunk to the groups that still make it fail).
pub fn run(count: u64, seed: u64, show: usize) -> Report {
    run_jobs(count, seed, show, 1)
}

/// [`run`] on `jobs` threads, each with its own engines and every
/// `jobs`-th case: the same cases, and the same report (failures in case
/// order), as one thread.
pub fn run_jobs(count: u64, seed: u64, show: usize, jobs: usize) -> Report {
    let jobs = jobs.max(1) as u64;
    let parts: Vec<Report> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..jobs)
            .map(|j| scope.spawn(move || run_cases((j..count).step_by(jobs as usize), seed, show)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a difftest thread panicked"))
            .collect()
    });
    let mut rep = Report::default();
    for part in parts {
        rep.passed += part.passed;
        rep.failed += part.failed;
        rep.native += part.native;
        rep.total += part.total;
        rep.failures.extend(part.failures);
    }
    rep.failures.sort_by_key(|f| f.case);
    rep.failures.truncate(show);
    rep
}

/// Runs the cases numbered `cases` from `seed` (see [`run`]).
fn run_cases(cases: impl Iterator<Item = u64>, seed: u64, show: usize) -> Report {
    let mut rep = Report::default();
    let mut jit = JitEngine::default();
    let mut small = JitEngine::new(8 << 10);
    for n in cases {
        let case = case_for(seed, n);
        let engine = if case.cache < morph86_jit::DEFAULT_CACHE_BYTES {
            &mut small
        } else {
            &mut jit
        };
        match run_case(engine, &case) {
            Ok(()) => rep.passed += 1,
            Err(what) => {
                rep.failed += 1;
                if rep.failures.len() < show {
                    let small = shrink(&case);
                    rep.failures.push(Mismatch {
                        case: n,
                        what: format!(
                            "case {n} of seed {seed}: {what}\n  shrunk to {} of {} groups ({}):\n{}",
                            small.groups.len(),
                            case.groups.len(),
                            run_case(&mut JitEngine::new(small.cache), &small)
                                .err()
                                .unwrap_or_default(),
                            describe(&small)
                        ),
                    });
                }
            }
        }
    }
    for e in [&jit, &small] {
        rep.native += e.stats.native_insns;
        rep.total += e.stats.native_insns + e.stats.interp_insns;
    }
    rep
}

/// The groups of a case, each with its bytes and guest address.
pub fn describe(case: &Case) -> String {
    let mut out = format!(
        "  paging {}, state seed {:#x}, slice seed {:#x}, cache {} KiB\n",
        case.paging,
        case.state_seed,
        case.slice_seed,
        case.cache >> 10
    );
    let mut g = Gen { p: Vec::new() };
    g.bytes(&[0x66, 0xB8, sel::TSS as u8, 0, 0x0F, 0x00, 0xD8]);
    for &(kind, seed) in &case.groups {
        let at = g.here();
        let start = g.p.len();
        group(&mut g, kind, seed);
        out += &format!(
            "  {at:#07x} {kind:?} seed {seed:#x}: {:02x?}\n",
            &g.p[start..]
        );
    }
    out
}

/// Removes groups from a failing case while it still fails (each try on a
/// fresh engine): the groups left are a small reproducer.
pub fn shrink(case: &Case) -> Case {
    let fails = |c: &Case| run_case(&mut JitEngine::new(c.cache), c).is_err();
    let mut best = case.clone();
    if !fails(&best) {
        return best; // fails only after earlier cases: keep it whole
    }
    let mut chunk = best.groups.len().div_ceil(2).max(1);
    loop {
        let mut i = 0;
        let mut removed = false;
        while i < best.groups.len() {
            let mut t = best.clone();
            t.groups.drain(i..(i + chunk).min(t.groups.len()));
            if fails(&t) {
                best = t;
                removed = true;
            } else {
                i += chunk;
            }
        }
        if chunk == 1 && !removed {
            return best;
        }
        chunk = (chunk / 2).max(1);
    }
}

/// Guest memory compared after every slice besides the code: the data
/// window, the loop counters and the handlers' counter, the page tables,
/// the stacks.
const WATCHED: [(u32, u32); 3] = [
    (DATA, DATA + 0x2000),
    (PD, PT + 0x1000),
    (STACK0 - 0x1000, STACK_TSS),
];

/// Runs one case on both engines in lockstep.
pub fn run_case(jit: &mut JitEngine, case: &Case) -> Result<(), String> {
    let program = program(case);
    let (mut a, mut ram_a) = machine(case, &program);
    let (mut b, mut ram_b) = machine(case, &program);
    let rng = &mut Rng(case.slice_seed | 1);
    for slice in 0..10_000 {
        let req = RunRequest {
            budget: 1 + rng.below(60),
            interrupt_pending: rng.below(6) == 0,
        };
        let ea = Interpreter.run(&mut a, &mut ram_a, req);
        let eb = jit.run(&mut b, &mut ram_b, req);
        let mismatch = |what: &str, a: &Cpu, b: &Cpu| {
            format!(
                "slice {slice}: {what}: interpreter {ea:?} at {} eip {:08x}, jit {eb:?} at {} eip {:08x}\n  interp regs {:08x?} eflags {:08x} cs {:04x}\n  jit    regs {:08x?} eflags {:08x} cs {:04x}",
                a.icount,
                a.state.eip,
                b.icount,
                b.state.eip,
                a.state.regs,
                a.state.eflags,
                a.state.segs[1].selector,
                b.state.regs,
                b.state.eflags,
                b.state.segs[1].selector,
            )
        };
        if ea != eb || a.icount != b.icount || a.state != b.state {
            return Err(mismatch("state", &a, &b));
        }
        let code = (CODE, CODE + program.len() as u32);
        for (lo, hi) in std::iter::once(code).chain(WATCHED) {
            let (x, y) = (
                &ram_a.bytes()[lo as usize..hi as usize],
                &ram_b.bytes()[lo as usize..hi as usize],
            );
            if x != y {
                let at = lo as usize + x.iter().zip(y).position(|(p, q)| p != q).unwrap_or(0);
                return Err(mismatch(&format!("memory at {at:#x}"), &a, &b));
            }
        }
        match ea {
            EngineExit::Halted | EngineExit::Shutdown(_) => break,
            EngineExit::InterruptWindow => {
                let oa = a.inject_interrupt(&mut ram_a, EXT_VECTOR);
                let ob = b.inject_interrupt(&mut ram_b, EXT_VECTOR);
                if oa != ob || a.state != b.state {
                    return Err(mismatch("interrupt delivery", &a, &b));
                }
            }
            _ => {}
        }
    }
    if ram_a.bytes() != ram_b.bytes() {
        let at = ram_a
            .bytes()
            .iter()
            .zip(ram_b.bytes())
            .position(|(x, y)| x != y)
            .unwrap_or(0);
        return Err(format!("RAM differs at {at:#x} at the end"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{
        Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner,
    };

    /// The fuzz target: proptest draws cases (groups of every kind, paging
    /// on or off, slices, a 4 KiB or 1 MiB code cache), each run on a fresh
    /// JIT in lockstep with the interpreter; any disagreement or panic is
    /// shrunk to the fewest, simplest groups and reported with their bytes.
    /// Seeded, so every run draws the same cases.
    #[test]
    fn fuzz_jit_against_the_interpreter() {
        let group = (0..40u64, any::<u64>()).prop_map(|(k, s)| (kind_of(k), s | 1));
        let case = (
            any::<bool>(),
            prop::collection::vec(group, 1..60),
            any::<u64>(),
            any::<u64>(),
            any::<bool>(),
        )
            .prop_map(|(paging, groups, state, slices, tiny)| Case {
                paging,
                groups,
                state_seed: state | 1,
                slice_seed: slices | 1,
                cache: if tiny { 4 << 10 } else { 1 << 20 },
            });
        let config = Config {
            cases: 256,
            failure_persistence: None,
            max_shrink_iters: 256,
            ..Config::default()
        };
        let mut runner = TestRunner::new_with_rng(
            config,
            TestRng::from_seed(RngAlgorithm::ChaCha, &[0x86; 32]),
        );
        let result = runner.run(&case, |c| {
            let mut jit = JitEngine::new(c.cache);
            run_case(&mut jit, &c).map_err(TestCaseError::fail)
        });
        match result {
            Ok(()) => {}
            Err(TestError::Fail(why, c)) => {
                // Proptest's shrinking leaves seeds small; dropping whole
                // groups is what makes the reproducer short.
                let small = shrink(&c);
                let again = run_case(&mut JitEngine::new(small.cache), &small);
                panic!(
                    "{why}\nshrunk to {} groups: {}\n{}",
                    small.groups.len(),
                    again.err().unwrap_or_default(),
                    describe(&small)
                );
            }
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn engines_agree_on_a_sample() {
        let rep = run(100, 1, 3);
        assert_eq!(rep.failed, 0, "{:#?}", rep.failures);
        assert!(
            rep.native * 5 > rep.total,
            "{} of {}",
            rep.native,
            rep.total
        );
    }
}
