//! Random x87 cases for the host-CPU oracle.
//!
//! A case is one x87 instruction. Its whole x87 state comes in through an
//! FXSAVE image (loaded by FXRSTOR in the native prologue and by
//! `FpuState::load_fxsave` in the interpreter), so the registers can hold
//! anything the hardware accepts: zeros of both signs, denormals,
//! pseudo-denormals, unnormals, infinities, pseudo-infinities, quiet and
//! signalling NaNs, pseudo-NaNs, huge and tiny exponents, in every precision
//! and rounding mode, with masked and unmasked exceptions, any TOP and any
//! tags (empty registers give stack overflow/underflow). Memory operands come
//! from the DATA window with the same bias towards special values.

use super::cases::{COMPARED_FLAGS, WINDOW};
use super::native::DATA_BASE;
use super::rng::Rng;

/// x87 instruction classes, for coverage reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum X87Class {
    /// FADD FMUL FSUB(R) FDIV(R) FCOM(P) with ST(i), and the P forms.
    X87Arith,
    /// The same with m32/m64 real and m16/m32 integer operands.
    X87ArithMem,
    /// FLD m32/m64/m80/ST(i), FILD m16/m32/m64, FBLD, the constants.
    X87Load,
    /// FST(P) m32/m64/m80/ST(i), FIST(P) m16/m32/m64, FBSTP.
    X87Store,
    /// FCOM FCOMP FCOMPP FUCOM* FICOM* FTST FXAM FCOMI* FUCOMI*.
    X87Compare,
    /// FSIN FCOS FSINCOS FPTAN FPATAN F2XM1 FYL2X FYL2XP1.
    X87Transcendental,
    /// FCHS FABS FSQRT FRNDINT FSCALE FXTRACT FPREM(1) FXCH FCMOVcc FFREE
    /// FINCSTP FDECSTP FNOP.
    X87Misc,
    /// FLDCW FNSTCW FNSTSW FNCLEX FNINIT FLDENV FNSTENV FRSTOR FNSAVE FWAIT.
    X87Control,
}

/// Every x87 class.
pub const ALL_X87_CLASSES: [X87Class; 8] = [
    X87Class::X87Arith,
    X87Class::X87ArithMem,
    X87Class::X87Load,
    X87Class::X87Store,
    X87Class::X87Compare,
    X87Class::X87Transcendental,
    X87Class::X87Misc,
    X87Class::X87Control,
];

/// One generated x87 case.
#[derive(Clone, Debug)]
pub struct X87Case {
    /// Class of the instruction.
    pub class: X87Class,
    /// Instruction bytes.
    pub code: Vec<u8>,
    /// Initial EAX..EDI.
    pub regs: [u32; 8],
    /// Initial status flags.
    pub eflags: u32,
    /// Initial DATA window.
    pub data: Vec<u8>,
    /// Initial x87 state as an FXSAVE image.
    pub fx: [u8; 512],
}

const EBX: usize = 3;
const ESP: usize = 4;

/// A random significand: full random, or only a few leading bits (exact
/// results), with the integer bit forced to `j`.
fn significand(rng: &mut Rng, j: bool) -> u64 {
    let r = rng.next_u64();
    let m = match rng.below(4) {
        0 => r & !((1u64 << (40 + rng.below(23))) - 1),
        1 => r & !((1u64 << (8 + rng.below(32))) - 1),
        _ => r,
    };
    if j {
        m | 1 << 63
    } else {
        m & !(1 << 63)
    }
}

/// Builds an 80-bit image.
fn join(sign: bool, exp: u16, man: u64) -> [u8; 10] {
    let mut r = [0u8; 10];
    r[..8].copy_from_slice(&man.to_le_bytes());
    r[8..].copy_from_slice(&((u16::from(sign) << 15) | (exp & 0x7FFF)).to_le_bytes());
    r
}

/// A random 80-bit value biased to special encodings.
pub fn f80(rng: &mut Rng) -> [u8; 10] {
    let sign = rng.coin();
    let (exp, man) = match rng.below(20) {
        0 => (0, 0),
        1 => (0, significand(rng, false) | 1),
        2 => (0, significand(rng, true)),
        3 => (0x7FFF, 1 << 63),
        4 => (0x7FFF, significand(rng, true) | 1 << 62),
        5 => (0x7FFF, (significand(rng, true) & !(1 << 62)) | 1),
        6 => (0x7FFF, 3 << 62),
        7 => (rng.u32() as u16 & 0x7FFF, significand(rng, false)),
        8 => (1 + rng.below(64) as u16, significand(rng, true)),
        9 => (0x7FFE - rng.below(64) as u16, significand(rng, true)),
        10 | 11 => (
            0x3FFF + rng.below(64) as u16,
            significand(rng, true) & !0xFFFF_FFFF,
        ),
        12 => (0x3FFF + rng.below(80) as u16, significand(rng, true)),
        13 => ((0x3FFF - 70) + rng.below(140) as u16, 1 << 63),
        14 => (
            0x3FFF - 0x3C00 + rng.below(0x80) as u16,
            significand(rng, true),
        ),
        15 => (
            0x3FFF + 0x3C00 - rng.below(0x80) as u16,
            significand(rng, true),
        ),
        _ => (
            (0x3FFF - 64) + rng.below(128) as u16,
            significand(rng, true),
        ),
    };
    join(sign, exp, man)
}

/// A random value for a memory operand of `size` bytes and `kind`
/// (0 real, 1 integer, 2 BCD).
fn mem_value(rng: &mut Rng, size: usize, kind: u32) -> Vec<u8> {
    match (kind, size) {
        (0, 10) => f80(rng).to_vec(),
        (0, 4) => {
            let sign = u32::from(rng.coin()) << 31;
            let frac = rng.u32() & 0x7F_FFFF;
            let v = match rng.below(10) {
                0 => 0,
                1 => frac | 1,
                2 => 0xFF << 23,
                3 => (0xFF << 23) | frac | 1,
                4 => (0xFF << 23) | 0x40_0000 | frac,
                5 => (1 + rng.below(4)) << 23 | frac,
                6 => (0xFE - rng.below(4)) << 23 | frac,
                7 => (127 + rng.below(40)) << 23 | (frac & !0xFFF),
                _ => (127 - 20 + rng.below(40)) << 23 | frac,
            };
            (v | sign).to_le_bytes().to_vec()
        }
        (0, 8) => {
            let sign = u64::from(rng.coin()) << 63;
            let frac = rng.next_u64() & ((1 << 52) - 1);
            let v = match rng.below(10) {
                0 => 0,
                1 => frac | 1,
                2 => 0x7FF << 52,
                3 => (0x7FF << 52) | frac | 1,
                4 => (0x7FF << 52) | 1 << 51 | frac,
                5 => u64::from(1 + rng.below(4)) << 52 | frac,
                6 => u64::from(0x7FE - rng.below(4)) << 52 | frac,
                7 => u64::from(1023 + rng.below(60)) << 52 | (frac & !0xFFFF_FFFF),
                8 => u64::from(1 + rng.below(0x7FE)) << 52 | frac,
                _ => u64::from(1023 - 40 + rng.below(80)) << 52 | frac,
            };
            (v | sign).to_le_bytes().to_vec()
        }
        (1, _) => {
            let r = rng.next_u64();
            let bits = 8 * size as u32;
            let v: u64 = match rng.below(8) {
                0 => 0,
                1 => 1,
                2 => u64::MAX,
                3 => 1 << (bits - 1),
                4 => (1 << (bits - 1)) - 1,
                5 => r & 0xFF,
                6 => (r & 0xFFFF) as i16 as i64 as u64,
                _ => r,
            };
            v.to_le_bytes()[..size].to_vec()
        }
        _ => {
            // Packed BCD: 18 digits and a sign byte, sometimes invalid nibbles.
            let mut b = vec![0u8; 10];
            let digits = rng.below(19) as usize;
            for (k, byte) in b.iter_mut().enumerate().take(9) {
                let lo = if 2 * k < digits { rng.below(10) } else { 0 };
                let hi = if 2 * k + 1 < digits { rng.below(10) } else { 0 };
                *byte = (hi << 4 | lo) as u8;
            }
            if rng.below(8) == 0 {
                let k = rng.below(9) as usize;
                b[k] = rng.u8();
            }
            b[9] = match rng.below(6) {
                0 => rng.u8(),
                1 | 2 => 0x80,
                _ => 0,
            };
            b
        }
    }
}

/// A random FXSAVE image: control word, status word, tags and registers.
fn fx_image(rng: &mut Rng) -> [u8; 512] {
    let mut fx = [0u8; 512];
    let masks = if rng.below(10) < 7 {
        0x3F
    } else {
        rng.below(64) as u16
    };
    let cw = 0x40
        | masks
        | (rng.below(4) as u16) << 8
        | (rng.below(4) as u16) << 10
        | (u16::from(rng.below(8) == 0) << 12);
    let top = rng.below(8) as u16;
    let cc = rng.u32() as u16 & 0x4700;
    let mut sticky = rng.u32() as u16 & masks & 0x3F;
    if rng.below(4) == 0 {
        sticky = 0;
    }
    if rng.below(8) == 0 {
        sticky |= 0x41 & masks;
    }
    let mut sw = (top << 11) | cc | sticky;
    if rng.below(25) == 0 && masks != 0x3F {
        // A pending unmasked exception.
        sw |= (!masks & 0x3F) & (1 << rng.below(6)) | 0x8080;
        if sw & 0x3F & !masks == 0 {
            sw &= !0x8080;
        }
    }
    let full = rng.below(6) == 0;
    let mut tag = 0u8;
    for p in 0..8 {
        if full || rng.below(100) < 85 {
            tag |= 1 << p;
        }
    }
    fx[0..2].copy_from_slice(&cw.to_le_bytes());
    fx[2..4].copy_from_slice(&sw.to_le_bytes());
    fx[4] = tag;
    fx[24..28].copy_from_slice(&0x1F80u32.to_le_bytes());
    for k in 0..8 {
        let v = f80(rng);
        fx[32 + 16 * k..42 + 16 * k].copy_from_slice(&v);
    }
    fx
}

struct Gen<'a> {
    rng: &'a mut Rng,
    code: Vec<u8>,
    regs: [u32; 8],
    data: Vec<u8>,
}

impl Gen<'_> {
    /// Emits `op` with a memory ModRM for `reg` addressing [EBX] or
    /// [EBX+disp8], and places `value` there.
    fn mem(&mut self, op: u8, reg: u8, value: &[u8]) {
        let ebx = DATA_BASE + 0x80 + self.rng.below(0x40);
        self.regs[EBX] = ebx;
        let mut at = ebx;
        self.code.push(op);
        if self.rng.coin() {
            self.code.push(reg << 3 | 3);
        } else {
            let d8 = self.rng.below(0x40) as u8;
            self.code.extend([0x43 | reg << 3, d8]);
            at += u32::from(d8);
        }
        let off = (at - DATA_BASE) as usize;
        self.data[off..off + value.len()].copy_from_slice(value);
    }

    fn reg(&mut self, op: u8, reg: u8) {
        let i = self.rng.below(8) as u8;
        self.code.extend([op, 0xC0 | reg << 3 | i]);
    }
}

/// Generates one x87 case of a random class.
pub fn generate(rng: &mut Rng) -> X87Case {
    let class = rng.pick(&ALL_X87_CLASSES);
    let mut regs = [0u32; 8];
    for r in &mut regs {
        *r = rng.interesting();
    }
    regs[ESP] = DATA_BASE + 0x1E0;
    let mut data = vec![0u8; WINDOW];
    for b in &mut data {
        *b = rng.u8();
    }
    let eflags = rng.u32() & COMPARED_FLAGS & !0x400;
    let fx = fx_image(rng);
    let mut g = Gen {
        rng,
        code: Vec::new(),
        regs,
        data,
    };
    emit(&mut g, class);
    X87Case {
        class,
        code: g.code,
        regs: g.regs,
        eflags,
        data: g.data,
        fx,
    }
}

fn emit(g: &mut Gen, class: X87Class) {
    match class {
        X87Class::X87Arith => {
            let op = g.rng.pick(&[0xD8u8, 0xDC, 0xDE]);
            let reg = g.rng.pick(&[0u8, 1, 4, 5, 6, 7, 0, 1, 2, 3]);
            if op == 0xDE && reg == 3 {
                g.code.extend([0xDE, 0xD9]);
            } else {
                g.reg(op, reg);
            }
        }
        X87Class::X87ArithMem => {
            let (op, size, kind) =
                g.rng
                    .pick(&[(0xD8u8, 4, 0), (0xDC, 8, 0), (0xDA, 4, 1), (0xDE, 2, 1)]);
            let reg = g.rng.below(8) as u8;
            let v = mem_value(g.rng, size, kind);
            g.mem(op, reg, &v);
        }
        X87Class::X87Load => match g.rng.below(10) {
            0 => g.reg(0xD9, 0),
            1 => {
                let k = g.rng.below(7) as u8;
                g.code.extend([0xD9, 0xE8 + k]);
            }
            _ => {
                let (op, reg, size, kind) = g.rng.pick(&[
                    (0xD9u8, 0u8, 4, 0),
                    (0xDD, 0, 8, 0),
                    (0xDB, 5, 10, 0),
                    (0xDF, 0, 2, 1),
                    (0xDB, 0, 4, 1),
                    (0xDF, 5, 8, 1),
                    (0xDF, 4, 10, 2),
                ]);
                let v = mem_value(g.rng, size, kind);
                g.mem(op, reg, &v);
            }
        },
        X87Class::X87Store => match g.rng.below(10) {
            0 => {
                let reg = g.rng.pick(&[2u8, 3]);
                g.reg(0xDD, reg);
            }
            _ => {
                let (op, reg, size) = g.rng.pick(&[
                    (0xD9u8, 2u8, 4),
                    (0xD9, 3, 4),
                    (0xDD, 2, 8),
                    (0xDD, 3, 8),
                    (0xDB, 7, 10),
                    (0xDF, 2, 2),
                    (0xDF, 3, 2),
                    (0xDB, 2, 4),
                    (0xDB, 3, 4),
                    (0xDF, 7, 8),
                    (0xDF, 6, 10),
                ]);
                let v: Vec<u8> = (0..size).map(|_| g.rng.u8()).collect();
                g.mem(op, reg, &v);
            }
        },
        X87Class::X87Compare => match g.rng.below(12) {
            0 => {
                let r = 2 + g.rng.below(2) as u8;
                g.reg(0xD8, r)
            }
            1 => {
                let r = 4 + g.rng.below(2) as u8;
                g.reg(0xDD, r)
            }
            2 => g.code.extend(g.rng.pick(&[[0xDEu8, 0xD9], [0xDA, 0xE9]])),
            3 => g.code.extend(g.rng.pick(&[[0xD9u8, 0xE4], [0xD9, 0xE5]])),
            4..=7 => {
                let op = g.rng.pick(&[0xDBu8, 0xDF]);
                let r = 5 + g.rng.below(2) as u8;
                g.reg(op, r);
            }
            _ => {
                let (op, size, kind) =
                    g.rng
                        .pick(&[(0xD8u8, 4, 0), (0xDC, 8, 0), (0xDA, 4, 1), (0xDE, 2, 1)]);
                let v = mem_value(g.rng, size, kind);
                let r = 2 + g.rng.below(2) as u8;
                g.mem(op, r, &v);
            }
        },
        X87Class::X87Transcendental => {
            let m = g
                .rng
                .pick(&[0xF0u8, 0xF1, 0xF2, 0xF3, 0xF9, 0xFE, 0xFF, 0xFB]);
            g.code.extend([0xD9, m]);
        }
        X87Class::X87Misc => match g.rng.below(10) {
            0 => g.reg(0xD9, 1),
            1 => {
                let op = g.rng.pick(&[0xDAu8, 0xDB]);
                let reg = g.rng.below(4) as u8;
                g.reg(op, reg);
            }
            2 => g.reg(0xDD, 0),
            _ => {
                let m = g.rng.pick(&[
                    0xE0u8, 0xE1, 0xFA, 0xFC, 0xFD, 0xF4, 0xF8, 0xF5, 0xF6, 0xF7, 0xD0,
                ]);
                g.code.extend([0xD9, m]);
            }
        },
        X87Class::X87Control => {
            if g.rng.below(8) == 0 {
                g.code.push(0x9B);
            }
            match g.rng.below(12) {
                0 => {
                    let cw = g.rng.u32().to_le_bytes();
                    g.mem(0xD9, 5, &cw[..2]);
                }
                1 => g.mem(0xD9, 7, &[]),
                2 => g.mem(0xDD, 7, &[]),
                3 => g.code.extend([0xDF, 0xE0]),
                4 => g.code.extend([0xDB, 0xE2]),
                5 => g.code.extend([0xDB, 0xE3]),
                6 | 7 => {
                    let o16 = g.rng.coin();
                    if o16 {
                        g.code.push(0x66);
                    }
                    let save = g.rng.coin();
                    g.mem(if save { 0xDD } else { 0xD9 }, 6, &[]);
                }
                _ => {
                    let o16 = g.rng.coin();
                    if o16 {
                        g.code.push(0x66);
                    }
                    let restore = g.rng.coin();
                    let mut img = Vec::new();
                    let w = if o16 { 2 } else { 4 };
                    let put =
                        |v: u32, img: &mut Vec<u8>| img.extend_from_slice(&v.to_le_bytes()[..w]);
                    let masks = if g.rng.coin() { 0x3F } else { g.rng.below(64) };
                    let cw = 0x40 | masks | g.rng.below(16) << 8 | g.rng.u32() & 0xF000;
                    put(cw, &mut img);
                    let sw = g.rng.u32() & 0x7F7F | (g.rng.u32() & 0x3F & masks);
                    put(sw, &mut img);
                    put(g.rng.u32(), &mut img);
                    for _ in 0..4 {
                        put(g.rng.u32(), &mut img);
                    }
                    if restore {
                        for _ in 0..8 {
                            img.extend_from_slice(&f80(g.rng));
                        }
                    }
                    g.mem(if restore { 0xDD } else { 0xD9 }, 4, &img);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_appears() {
        let mut rng = Rng::new(3);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..5000 {
            let c = generate(&mut rng);
            assert!(!c.code.is_empty() && c.code.len() <= 8);
            seen.insert(c.class);
        }
        assert_eq!(seen.len(), ALL_X87_CLASSES.len());
    }
}
