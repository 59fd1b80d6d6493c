//! Random test cases for the host-CPU oracle, and the table of flags the
//! Intel SDM leaves undefined for each of them.
//!
//! Every case is one user-mode instruction (sometimes with a prefix) that
//! runs in flat 32-bit protected mode and touches memory only inside the
//! DATA window at [`DATA_BASE`]. Registers that address memory are set to
//! point into the window; everything else is random with a bias to edge values.

use super::native::DATA_BASE;
use super::rng::Rng;

/// Bytes of the DATA area each case uses (memory operands and stack).
pub const WINDOW: usize = 512;
/// Where ESP points for cases that use the stack.
pub const STACK_TOP: u32 = DATA_BASE + 0x1E0;

/// Instruction classes, for coverage reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// ADD OR ADC SBB AND SUB XOR CMP with r/m and register operands.
    Alu,
    /// The same with immediates (80/81/82/83, 04/05...).
    AluImm,
    /// INC / DEC.
    IncDec,
    /// NEG / NOT.
    NegNot,
    /// TEST.
    Test,
    /// ROL ROR RCL RCR SHL SHR SAL SAR by 1, CL and imm8.
    Shift,
    /// SHLD / SHRD.
    ShiftDouble,
    /// MUL IMUL DIV IDIV (one operand), including #DE.
    MulDiv,
    /// Two- and three-operand IMUL.
    Imul,
    /// DAA DAS AAA AAS AAM AAD.
    Bcd,
    /// BT BTS BTR BTC.
    BitTest,
    /// BSF BSR.
    BitScan,
    /// MOVS CMPS SCAS LODS STOS with and without REP/REPE/REPNE.
    String,
    /// CMPXCHG.
    Cmpxchg,
    /// XADD.
    Xadd,
    /// CMPXCHG8B.
    Cmpxchg8b,
    /// BSWAP.
    Bswap,
    /// CMOVcc.
    Cmov,
    /// SETcc.
    Setcc,
    /// MOV forms.
    Mov,
    /// MOVZX / MOVSX.
    MovExt,
    /// XCHG.
    Xchg,
    /// LEA.
    Lea,
    /// CBW CWDE CWD CDQ.
    Convert,
    /// CLC STC CMC CLD STD LAHF SAHF SALC.
    FlagOps,
    /// PUSH POP PUSHA POPA PUSHF POPF.
    Stack,
    /// Jcc (rel8, rel32), JECXZ.
    Branch,
    /// LOOP LOOPE LOOPNE.
    Loop,
    /// ENTER / LEAVE.
    EnterLeave,
    /// XLAT.
    Xlat,
}

/// Every class, in report order.
pub const ALL_CLASSES: [Class; 30] = [
    Class::Alu,
    Class::AluImm,
    Class::IncDec,
    Class::NegNot,
    Class::Test,
    Class::Shift,
    Class::ShiftDouble,
    Class::MulDiv,
    Class::Imul,
    Class::Bcd,
    Class::BitTest,
    Class::BitScan,
    Class::String,
    Class::Cmpxchg,
    Class::Xadd,
    Class::Cmpxchg8b,
    Class::Bswap,
    Class::Cmov,
    Class::Setcc,
    Class::Mov,
    Class::MovExt,
    Class::Xchg,
    Class::Lea,
    Class::Convert,
    Class::FlagOps,
    Class::Stack,
    Class::Branch,
    Class::Loop,
    Class::EnterLeave,
    Class::Xlat,
];

/// Flag bits.
mod fl {
    pub const CF: u32 = 1;
    pub const PF: u32 = 4;
    pub const AF: u32 = 0x10;
    pub const ZF: u32 = 0x40;
    pub const SF: u32 = 0x80;
    pub const OF: u32 = 0x800;
}
use fl::*;

/// Flags compared after every case: the six status flags and DF.
pub const COMPARED_FLAGS: u32 = CF | PF | AF | ZF | SF | OF | 0x400;

/// One generated case.
#[derive(Clone, Debug)]
pub struct Case {
    /// Class of the instruction.
    pub class: Class,
    /// Instruction bytes (one instruction, or a branch plus its target).
    pub code: Vec<u8>,
    /// Initial EAX..EDI.
    pub regs: [u32; 8],
    /// Initial status flags and DF.
    pub eflags: u32,
    /// Initial DATA window.
    pub data: Vec<u8>,
    /// Flags the SDM leaves undefined for this instruction and these inputs.
    pub undefined: u32,
}

/// Undefined flags by instruction, as the Intel SDM Vol. 2 states them
/// ("Flags Affected" of each instruction page).
pub mod sdm {
    use super::fl::*;
    /// AND, OR, XOR, TEST: "The state of the AF flag is undefined."
    pub const LOGIC: u32 = AF;
    /// MUL, IMUL: "The SF, ZF, AF, and PF flags are undefined."
    pub const MUL: u32 = SF | ZF | AF | PF;
    /// DIV, IDIV: "The CF, OF, SF, ZF, AF, and PF flags are undefined."
    pub const DIV: u32 = CF | OF | SF | ZF | AF | PF;
    /// DAA, DAS: "The OF flag is undefined."
    pub const DAA: u32 = OF;
    /// AAA, AAS: "The OF, SF, ZF, and PF flags are undefined."
    pub const AAA: u32 = OF | SF | ZF | PF;
    /// AAM, AAD: "The OF, AF, and CF flags are undefined."
    pub const AAM: u32 = OF | AF | CF;
    /// BT, BTS, BTR, BTC: "The ZF flag is unaffected. The OF, SF, AF, and PF flags are undefined."
    pub const BT: u32 = OF | SF | AF | PF;
    /// BSF, BSR: "The CF, OF, SF, AF, and PF flags are undefined."
    pub const BSF: u32 = CF | OF | SF | AF | PF;

    /// SAL/SAR/SHL/SHR: "The OF flag is affected only on 1-bit shifts. For
    /// left shifts [...] the OF flag is undefined [otherwise]. [...] If the
    /// count is 0, the flags are not affected. [...] The AF flag is undefined
    /// for a non-zero count. The CF flag [...] is undefined for SHL and SHR
    /// instructions where the count is greater than or equal to the size (in
    /// bits) of the destination operand."
    pub fn shift(masked_count: u32, bits: u32, shl_or_shr: bool) -> u32 {
        if masked_count == 0 {
            return 0;
        }
        let mut u = AF;
        if masked_count != 1 {
            u |= OF;
        }
        if shl_or_shr && masked_count >= bits {
            u |= CF;
        }
        u
    }

    /// ROL/ROR/RCL/RCR: "The OF flag is defined only for the 1-bit rotates;
    /// it is undefined in all other cases [...]. A zero-bit rotate does nothing."
    pub fn rotate(masked_count: u32) -> u32 {
        if masked_count == 0 || masked_count == 1 {
            0
        } else {
            OF
        }
    }

    /// SHLD/SHRD: "If the count is 1 or greater, [...] the AF flag is
    /// undefined [...]. For a 1-bit shift, the OF flag is set if a sign change
    /// occurred; otherwise, it is cleared. For shifts greater than 1 bit, the
    /// OF flag is undefined."
    pub fn shift_double(masked_count: u32) -> u32 {
        match masked_count {
            0 => 0,
            1 => AF,
            _ => AF | OF,
        }
    }
}

struct Gen<'a> {
    rng: &'a mut Rng,
    code: Vec<u8>,
    regs: [u32; 8],
    data: Vec<u8>,
    undefined: u32,
}

const EAX: usize = 0;
const ECX: usize = 1;
const EDX: usize = 2;
const EBX: usize = 3;
const ESP: usize = 4;
const EBP: usize = 5;
const ESI: usize = 6;
const EDI: usize = 7;

impl Gen<'_> {
    /// Operand size 1, 2 or 4, emitting 0x66 for 2.
    fn size(&mut self, allow8: bool) -> u32 {
        let s = if allow8 {
            self.rng.pick(&[1, 2, 4, 4])
        } else {
            self.rng.pick(&[2, 4, 4])
        };
        if s == 2 {
            self.code.push(0x66);
        }
        s
    }

    /// Emits ModRM (+SIB/displacement) for `reg` and a register or memory
    /// r/m. Memory forms address the window through EBX (and ESI as index),
    /// or an absolute address. Returns the linear address of a memory operand.
    fn modrm(&mut self, reg: u8, mem: bool) -> Option<u32> {
        let reg = (reg & 7) << 3;
        if !mem {
            let rm = self.rng.below(8) as u8;
            self.code.push(0xC0 | reg | rm);
            return None;
        }
        let form = self.rng.below(5);
        self.modrm_mem(reg >> 3, form)
    }

    fn modrm_mem(&mut self, reg: u8, form: u32) -> Option<u32> {
        let reg = (reg & 7) << 3;
        let ebx = DATA_BASE + 0x80 + self.rng.below(0x40);
        let esi = self.rng.below(16);
        let d8 = (self.rng.below(0x80) as i32 - 0x40) as u32;
        match form {
            0 => {
                self.regs[EBX] = ebx;
                self.code.push(reg | 3);
                Some(ebx)
            }
            1 => {
                self.regs[EBX] = ebx;
                self.code.extend([0x40 | reg | 3, d8 as u8]);
                Some(ebx.wrapping_add(d8))
            }
            2 => {
                self.regs[EBX] = ebx;
                self.code.push(0x80 | reg | 3);
                self.code.extend(d8.to_le_bytes());
                Some(ebx.wrapping_add(d8))
            }
            3 => {
                self.regs[EBX] = ebx;
                self.regs[ESI] = esi;
                let scale = self.rng.below(4);
                self.code
                    .extend([0x44 | reg, ((scale << 6) as u8) | (6 << 3) | 3, d8 as u8]);
                Some(ebx.wrapping_add(esi << scale).wrapping_add(d8))
            }
            _ => {
                let a = DATA_BASE + 0x40 + self.rng.below(0x100);
                self.code.push(reg | 5);
                self.code.extend(a.to_le_bytes());
                Some(a)
            }
        }
    }

    fn read_data(&self, addr: u32, size: u32) -> u32 {
        let off = (addr - DATA_BASE) as usize;
        (0..size as usize).fold(0, |v, k| v | u32::from(self.data[off + k]) << (8 * k))
    }

    fn write_data(&mut self, addr: u32, size: u32, v: u32) {
        let off = (addr - DATA_BASE) as usize;
        for k in 0..size as usize {
            self.data[off + k] = (v >> (8 * k)) as u8;
        }
    }

    fn imm(&mut self, size: u32) -> u32 {
        let v = self.rng.interesting();
        match size {
            1 => self.code.push(v as u8),
            2 => self.code.extend((v as u16).to_le_bytes()),
            _ => self.code.extend(v.to_le_bytes()),
        }
        v
    }

    /// The value of an r/m operand just generated (register or memory).
    fn rm_value(&self, modrm_at: usize, mem: Option<u32>, size: u32) -> u32 {
        match mem {
            Some(a) => self.read_data(a, size),
            None => {
                let rm = (self.code[modrm_at] & 7) as usize;
                reg_value(&self.regs, rm, size)
            }
        }
    }

    fn shift_count(&mut self, bits: u32) -> u32 {
        match self.rng.below(6) {
            0 => 0,
            1 => 1,
            2 => bits - 1,
            3 => bits,
            4 => bits + 1,
            _ => self.rng.below(256),
        }
    }
}

fn reg_value(regs: &[u32; 8], r: usize, size: u32) -> u32 {
    match size {
        1 if r < 4 => regs[r] & 0xFF,
        1 => (regs[r - 4] >> 8) & 0xFF,
        2 => regs[r] & 0xFFFF,
        _ => regs[r],
    }
}

/// Generates case number `index` of the stream for `rng`.
pub fn generate(rng: &mut Rng) -> Case {
    let class = rng.pick(&ALL_CLASSES);
    let mut regs = [0u32; 8];
    for r in &mut regs {
        *r = rng.interesting();
    }
    let mut data = vec![0u8; WINDOW];
    for b in &mut data {
        *b = rng.u8();
    }
    // Status flags and DF only (never TF).
    let eflags = rng.u32() & COMPARED_FLAGS;
    let mut g = Gen {
        rng,
        code: Vec::new(),
        regs,
        data,
        undefined: 0,
    };
    emit(&mut g, class);
    Case {
        class,
        code: g.code,
        regs: g.regs,
        eflags,
        data: g.data,
        undefined: g.undefined,
    }
}

fn emit(g: &mut Gen, class: Class) {
    let mem = g.rng.below(3) == 0;
    match class {
        Class::Alu => {
            let op = g.rng.below(8) as u8;
            let size = g.size(true);
            let dir = g.rng.below(2) as u8;
            g.code.push((op << 3) | (dir << 1) | u8::from(size != 1));
            let reg = g.rng.below(8) as u8;
            g.modrm(reg, mem);
            if matches!(op, 1 | 4 | 6) {
                g.undefined = sdm::LOGIC;
            }
        }
        Class::AluImm => {
            let op = g.rng.below(8) as u8;
            let size = g.size(true);
            match g.rng.below(3) {
                0 => {
                    // AL/AX/EAX, imm
                    g.code.push((op << 3) | 4 | u8::from(size != 1));
                    g.imm(size);
                }
                1 => {
                    let opc = if size == 1 {
                        g.rng.pick(&[0x80, 0x82])
                    } else {
                        0x81
                    };
                    g.code.push(opc);
                    g.modrm(op, mem);
                    g.imm(size);
                }
                _ => {
                    let opc = if size == 1 { 0x80 } else { 0x83 };
                    g.code.push(opc);
                    g.modrm(op, mem);
                    g.imm(1);
                }
            }
            if matches!(op, 1 | 4 | 6) {
                g.undefined = sdm::LOGIC;
            }
        }
        Class::IncDec => {
            if g.rng.coin() {
                let size = g.size(true);
                g.code.push(if size == 1 { 0xFE } else { 0xFF });
                let r = g.rng.below(2) as u8;
                g.modrm(r, mem);
            } else {
                g.size(false);
                g.code.push(0x40 + g.rng.below(16) as u8);
            }
        }
        Class::NegNot => {
            let size = g.size(true);
            g.code.push(if size == 1 { 0xF6 } else { 0xF7 });
            let r = 2 + g.rng.below(2) as u8;
            g.modrm(r, mem);
        }
        Class::Test => {
            let size = g.size(true);
            match g.rng.below(3) {
                0 => {
                    g.code.push(if size == 1 { 0x84 } else { 0x85 });
                    let r = g.rng.below(8) as u8;
                    g.modrm(r, mem);
                }
                1 => {
                    g.code.push(if size == 1 { 0xA8 } else { 0xA9 });
                    g.imm(size);
                }
                _ => {
                    g.code.push(if size == 1 { 0xF6 } else { 0xF7 });
                    let r = g.rng.below(2) as u8; // /1 is an alias of /0
                    g.modrm(r, mem);
                    g.imm(size);
                }
            }
            g.undefined = sdm::LOGIC;
        }
        Class::Shift => {
            let size = g.size(true);
            let bits = size * 8;
            let op = g.rng.below(8) as u8;
            let form = g.rng.below(3);
            let w = u8::from(size != 1);
            let count = match form {
                0 => {
                    g.code.push(0xD0 | w);
                    g.modrm(op, mem);
                    1
                }
                1 => {
                    g.code.push(0xD2 | w);
                    g.modrm(op, mem);
                    let c = g.shift_count(bits);
                    g.regs[ECX] = (g.regs[ECX] & !0xFF) | (c & 0xFF);
                    c
                }
                _ => {
                    g.code.push(0xC0 | w);
                    g.modrm(op, mem);
                    let c = g.shift_count(bits);
                    g.code.push(c as u8);
                    c
                }
            };
            // CL may also be the operand; the count is read before the shift.
            let masked = count & 31;
            g.undefined = match op {
                0..=3 => sdm::rotate(masked),
                4..=6 => sdm::shift(masked, bits, true),
                _ => sdm::shift(masked, bits, false),
            };
        }
        Class::ShiftDouble => {
            let size = g.size(false);
            let bits = size * 8;
            let left = g.rng.coin();
            let by_cl = g.rng.coin();
            g.code
                .extend([0x0F, if left { 0xA4 } else { 0xAC } | u8::from(by_cl)]);
            let r = g.rng.below(8) as u8;
            g.modrm(r, mem);
            // Counts above the operand size leave the result undefined: not generated.
            let count =
                g.rng.below(bits + 1) | if g.rng.coin() { 0 } else { 32 * g.rng.below(8) } & !31;
            let count = if size == 2 && (count & 31) > 16 {
                16
            } else {
                count
            };
            if by_cl {
                g.regs[ECX] = (g.regs[ECX] & !0xFF) | (count & 0xFF);
            } else {
                g.code.push(count as u8);
            }
            g.undefined = sdm::shift_double(count & 31);
        }
        Class::MulDiv => {
            let size = g.size(true);
            let op = 4 + g.rng.below(4) as u8;
            g.code.push(if size == 1 { 0xF6 } else { 0xF7 });
            let modrm_at = g.code.len();
            let m = g.modrm(op, mem);
            if op >= 6 && g.rng.coin() {
                // Keep the dividend small enough that many divisions succeed.
                let divisor = g.rm_value(modrm_at, m, size);
                match size {
                    1 => {
                        g.regs[EAX] =
                            (g.regs[EAX] & !0xFF00) | ((divisor >> 1) & 0x7F) << 8 & 0xFF00
                    }
                    2 => g.regs[EDX] = (g.regs[EDX] & !0xFFFF) | ((divisor >> 1) & 0x7FFF),
                    _ => g.regs[EDX] = (divisor >> 1) & 0x7FFF_FFFF,
                }
                if op == 7 && g.rng.coin() {
                    // Sign-extended dividends for IDIV.
                    match size {
                        1 => {
                            let al = g.regs[EAX] & 0xFF;
                            g.regs[EAX] =
                                (g.regs[EAX] & !0xFFFF) | (al as u8 as i8 as i16 as u16 as u32);
                        }
                        2 => {
                            g.regs[EDX] = (g.regs[EDX] & !0xFFFF)
                                | if g.regs[EAX] & 0x8000 != 0 { 0xFFFF } else { 0 }
                        }
                        _ => g.regs[EDX] = ((g.regs[EAX] as i32) >> 31) as u32,
                    }
                }
            }
            g.undefined = if op >= 6 { sdm::DIV } else { sdm::MUL };
        }
        Class::Imul => {
            let size = g.size(false);
            let r = g.rng.below(8) as u8;
            match g.rng.below(3) {
                0 => {
                    g.code.extend([0x0F, 0xAF]);
                    g.modrm(r, mem);
                }
                1 => {
                    g.code.push(0x69);
                    g.modrm(r, mem);
                    g.imm(size);
                }
                _ => {
                    g.code.push(0x6B);
                    g.modrm(r, mem);
                    g.imm(1);
                }
            }
            g.undefined = sdm::MUL;
        }
        Class::Bcd => match g.rng.below(6) {
            0 | 1 => {
                g.code.push(if g.rng.coin() { 0x27 } else { 0x2F });
                g.undefined = sdm::DAA;
            }
            2 | 3 => {
                g.code.push(if g.rng.coin() { 0x37 } else { 0x3F });
                g.undefined = sdm::AAA;
            }
            _ => {
                g.code.push(if g.rng.coin() { 0xD4 } else { 0xD5 });
                let base = if g.rng.below(8) == 0 {
                    0
                } else if g.rng.coin() {
                    10
                } else {
                    g.rng.u8()
                };
                g.code.push(base);
                g.undefined = sdm::AAM;
            }
        },
        Class::BitTest => {
            let size = g.size(false);
            let bits = size * 8;
            if g.rng.coin() {
                // BT r/m, r: a register bit offset, kept small so memory forms
                // stay inside the window (it is signed and may reach outside
                // the operand).
                let op = g.rng.pick(&[0xA3u8, 0xAB, 0xB3, 0xBB]);
                g.code.extend([0x0F, op]);
                let r = g.rng.pick(&[EAX, ECX, EDX, EBP, EDI]);
                let m = g.modrm(r as u8, mem);
                if m.is_some() {
                    let off = g.rng.below(512) as i32 - 256;
                    g.regs[r] = off as u32;
                    if size == 2 {
                        g.regs[r] = (g.regs[r] & 0xFFFF) | (g.rng.u32() & 0xFFFF_0000);
                    }
                }
            } else {
                g.code.extend([0x0F, 0xBA]);
                let r = 4 + g.rng.below(4) as u8;
                g.modrm(r, mem);
                g.code.push(g.rng.below(256) as u8);
            }
            let _ = bits;
            g.undefined = sdm::BT;
        }
        Class::BitScan => {
            g.size(false);
            g.code
                .extend([0x0F, if g.rng.coin() { 0xBC } else { 0xBD }]);
            let r = g.rng.below(8) as u8;
            let at = g.code.len();
            let m = g.modrm(r, mem);
            if g.rng.below(4) == 0 {
                // A zero source: ZF set, destination unchanged.
                match m {
                    Some(a) => g.write_data(a, 4, 0),
                    None => {
                        let rm = (g.code[at] & 7) as usize;
                        g.regs[rm] = 0;
                    }
                }
            }
            g.undefined = sdm::BSF;
        }
        Class::String => {
            let kind = g.rng.below(5);
            let size = if g.rng.coin() { 4 } else { g.rng.pick(&[1, 2]) };
            let rep = g.rng.below(3);
            if rep > 0 {
                g.code.push(if rep == 1 { 0xF3 } else { 0xF2 });
            }
            if size == 2 {
                g.code.push(0x66);
            }
            if g.rng.below(4) == 0 && matches!(kind, 0 | 1 | 3) {
                g.code.push(g.rng.pick(&[0x26, 0x2E, 0x36, 0x3E])); // segment override (flat)
            }
            let w = u8::from(size != 1);
            let op = match kind {
                0 => 0xA4,
                1 => 0xA6,
                2 => 0xAE,
                3 => 0xAC,
                _ => 0xAA,
            } | w;
            g.code.push(op);
            g.regs[ESI] = DATA_BASE + 0x40 + g.rng.below(0x80);
            g.regs[EDI] = DATA_BASE + 0x100 + g.rng.below(0x80);
            g.regs[ECX] = if rep > 0 {
                g.rng.below(17)
            } else {
                g.regs[ECX]
            };
            if kind == 1 || kind == 2 {
                // Make equal runs likely so REPE/REPNE stop at different places.
                let n = g.rng.below(16) as usize;
                let (s, d) = (
                    (g.regs[ESI] - DATA_BASE) as usize,
                    (g.regs[EDI] - DATA_BASE) as usize,
                );
                for k in 0..n.min(0x40) {
                    let v = if kind == 1 {
                        g.data[s + k]
                    } else {
                        g.regs[EAX] as u8
                    };
                    g.data[d + k] = v;
                    if kind == 1 && g.rng.below(4) == 0 {
                        g.data[s + k] = g.data[d + k];
                    }
                }
            }
        }
        Class::Cmpxchg => {
            let size = g.size(true);
            g.code.extend([0x0F, if size == 1 { 0xB0 } else { 0xB1 }]);
            let r = g.rng.below(8) as u8;
            let at = g.code.len();
            let m = g.modrm(r, mem);
            if g.rng.coin() {
                let v = g.rm_value(at, m, size);
                let m = match size {
                    1 => 0xFF,
                    2 => 0xFFFF,
                    _ => u32::MAX,
                };
                g.regs[EAX] = (g.regs[EAX] & !m) | (v & m);
            }
        }
        Class::Xadd => {
            let size = g.size(true);
            g.code.extend([0x0F, if size == 1 { 0xC0 } else { 0xC1 }]);
            let r = g.rng.below(8) as u8;
            g.modrm(r, mem);
        }
        Class::Cmpxchg8b => {
            g.code.extend([0x0F, 0xC7]);
            // Absolute address: EAX, EBX, ECX, EDX are all operands.
            let a = g.modrm_mem(1, 4).unwrap_or(DATA_BASE);
            if g.rng.coin() {
                g.regs[EAX] = g.read_data(a, 4);
                g.regs[EDX] = g.read_data(a + 4, 4);
            }
        }
        Class::Bswap => {
            g.code.extend([0x0F, 0xC8 + g.rng.below(8) as u8]);
        }
        Class::Cmov => {
            g.size(false);
            g.code.extend([0x0F, 0x40 + g.rng.below(16) as u8]);
            let r = g.rng.below(8) as u8;
            g.modrm(r, mem);
        }
        Class::Setcc => {
            g.code.extend([0x0F, 0x90 + g.rng.below(16) as u8]);
            g.modrm(0, mem);
        }
        Class::Mov => {
            let size = g.size(true);
            let w = u8::from(size != 1);
            match g.rng.below(3) {
                0 => {
                    g.code.push(0x88 | (g.rng.below(2) as u8) << 1 | w);
                    let r = g.rng.below(8) as u8;
                    g.modrm(r, mem);
                }
                1 => {
                    g.code.push(0xC6 | w);
                    g.modrm(0, mem);
                    g.imm(size);
                }
                _ => {
                    g.code
                        .push(if size == 1 { 0xB0 } else { 0xB8 } + g.rng.below(8) as u8);
                    g.imm(size);
                }
            }
        }
        Class::MovExt => {
            g.size(false);
            g.code.extend([0x0F, g.rng.pick(&[0xB6, 0xB7, 0xBE, 0xBF])]);
            let r = g.rng.below(8) as u8;
            g.modrm(r, mem);
        }
        Class::Xchg => {
            let size = g.size(true);
            if size != 1 && g.rng.coin() {
                g.code.push(0x90 + g.rng.below(8) as u8);
            } else {
                g.code.push(0x86 | u8::from(size != 1));
                let r = g.rng.below(8) as u8;
                g.modrm(r, mem);
            }
        }
        Class::Lea => {
            g.size(false);
            g.code.push(0x8D);
            let r = g.rng.below(8) as u8;
            let form = g.rng.below(5);
            g.modrm_mem(r, form);
        }
        Class::Convert => {
            g.size(false);
            g.code.push(if g.rng.coin() { 0x98 } else { 0x99 });
        }
        Class::FlagOps => {
            g.code.push(
                g.rng
                    .pick(&[0xF5, 0xF8, 0xF9, 0xFC, 0xFD, 0x9E, 0x9F, 0xD6]),
            );
        }
        Class::Stack => {
            g.regs[ESP] = STACK_TOP - g.rng.below(0x40);
            let sp = g.regs[ESP];
            let size = if g.rng.below(4) == 0 {
                g.code.push(0x66);
                2
            } else {
                4
            };
            match g.rng.below(9) {
                0 => g.code.push(0x50 + g.rng.below(8) as u8),
                1 => g.code.push(0x58 + g.rng.below(8) as u8),
                2 => {
                    g.code.push(0x6A);
                    g.imm(1);
                }
                3 => {
                    g.code.push(0x68);
                    g.imm(size);
                }
                4 => {
                    g.code.push(0xFF);
                    let form = g.rng.pick(&[1, 4]);
                    g.modrm_mem(6, form);
                }
                5 => {
                    g.code.push(0x8F);
                    let form = g.rng.pick(&[1, 4]);
                    g.modrm_mem(0, form);
                }
                6 => g.code.push(0x60),
                7 => {
                    // POPA/POPAD; ESP itself is skipped.
                    g.code.push(0x61);
                }
                _ => {
                    if g.rng.coin() {
                        g.code.push(0x9C);
                    } else {
                        // POPF: never pop TF or AC (they would trap).
                        g.code.push(0x9D);
                        let v = g.read_data(sp, 4) & !0x0004_0100;
                        g.write_data(sp, 4, v);
                    }
                }
            }
        }
        Class::Branch => {
            // The branch skips `lea eax,[eax+1]` when taken.
            match g.rng.below(3) {
                0 => g.code.extend([0x70 + g.rng.below(16) as u8, 3]),
                1 => g
                    .code
                    .extend([0x0F, 0x80 + g.rng.below(16) as u8, 3, 0, 0, 0]),
                _ => {
                    g.code.extend([0xE3, 3]);
                    if g.rng.coin() {
                        g.regs[ECX] = 0;
                    }
                }
            }
            g.code.extend([0x8D, 0x40, 0x01]);
        }
        Class::Loop => {
            g.code
                .extend([g.rng.pick(&[0xE0, 0xE1, 0xE2]), 3, 0x8D, 0x40, 0x01]);
            g.regs[ECX] = g.rng.pick(&[0, 1, 2, g.regs[ECX]]);
        }
        Class::EnterLeave => {
            g.regs[ESP] = STACK_TOP - g.rng.below(0x40);
            g.regs[EBP] = DATA_BASE + 0x100 + g.rng.below(0x80);
            if g.rng.coin() {
                g.code.push(0xC8);
                g.code.extend((g.rng.below(64) as u16).to_le_bytes());
                g.code.push(g.rng.below(4) as u8);
            } else {
                g.code.push(0xC9);
            }
        }
        Class::Xlat => {
            g.regs[EBX] = DATA_BASE + 0x40 + g.rng.below(0x40);
            g.code.push(0xD7);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_appears_and_code_is_short() {
        let mut rng = Rng::new(7);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..20_000 {
            let c = generate(&mut rng);
            assert!(!c.code.is_empty() && c.code.len() <= 16);
            assert_eq!(c.data.len(), WINDOW);
            seen.insert(c.class);
        }
        assert_eq!(seen.len(), ALL_CLASSES.len());
    }

    #[test]
    fn shift_table_follows_the_sdm() {
        assert_eq!(sdm::shift(0, 8, true), 0);
        assert_eq!(sdm::shift(1, 8, true), fl::AF);
        assert_eq!(sdm::shift(8, 8, true), fl::AF | fl::OF | fl::CF);
        assert_eq!(sdm::shift(8, 8, false), fl::AF | fl::OF);
        assert_eq!(sdm::rotate(1), 0);
        assert_eq!(sdm::rotate(9), fl::OF);
    }
}
