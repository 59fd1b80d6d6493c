//! Arithmetic, logic, shifts, multiply/divide and BCD with their flags.
//!
//! Flags are computed eagerly. Where the SDM leaves a flag undefined, the
//! value chosen here follows what the chips were seen to do where that is
//! known, and is masked by every comparison otherwise.

use super::operand::{mask, sign_bit};
use super::Cpu;
use crate::fault::{Exec, Fault};
use crate::flags::{parity, AF, CF, OF, PF, SF, ZF};
use crate::model::CpuModel;
use crate::state::reg;

/// The eight ALU operations of opcodes 00-3F, in encoding order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AluOp {
    /// ADD
    Add,
    /// OR
    Or,
    /// ADC
    Adc,
    /// SBB
    Sbb,
    /// AND
    And,
    /// SUB
    Sub,
    /// XOR
    Xor,
    /// CMP
    Cmp,
}

/// Rotates and shifts in ModRM.reg order of opcodes C0/C1/D0-D3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShiftOp {
    /// ROL
    Rol,
    /// ROR
    Ror,
    /// RCL
    Rcl,
    /// RCR
    Rcr,
    /// SHL/SAL
    Shl,
    /// SHR
    Shr,
    /// SETMO (8086, /6): all ones.
    Setmo,
    /// SAR
    Sar,
}

#[inline]
fn szp(r: u32, size: u32) -> u32 {
    let r = r & mask(size);
    let mut f = 0;
    if r == 0 {
        f |= ZF;
    }
    if r & sign_bit(size) != 0 {
        f |= SF;
    }
    if parity(r) {
        f |= PF;
    }
    f
}

impl Cpu {
    /// ALU operation on two `size`-byte values; returns the result (CMP returns `a`).
    pub(super) fn alu(&mut self, op: AluOp, a: u32, b: u32, size: u32) -> u32 {
        let cf_in = u32::from(self.flag(CF));
        match op {
            AluOp::Add => self.add(a, b, 0, size),
            AluOp::Adc => self.add(a, b, cf_in, size),
            AluOp::Sub => self.sub(a, b, 0, size),
            AluOp::Sbb => self.sub(a, b, cf_in, size),
            AluOp::Cmp => {
                self.sub(a, b, 0, size);
                a
            }
            AluOp::And => self.logic(a & b, size),
            AluOp::Or => self.logic(a | b, size),
            AluOp::Xor => self.logic(a ^ b, size),
        }
    }

    /// ADD/ADC flags and result.
    pub(super) fn add(&mut self, a: u32, b: u32, c: u32, size: u32) -> u32 {
        let m = mask(size);
        let (a, b) = (a & m, b & m);
        let wide = u64::from(a) + u64::from(b) + u64::from(c);
        let r = (wide as u32) & m;
        let mut f = szp(r, size);
        if wide > u64::from(m) {
            f |= CF;
        }
        if (a ^ b ^ r) & 0x10 != 0 {
            f |= AF;
        }
        if (a ^ r) & (b ^ r) & sign_bit(size) != 0 {
            f |= OF;
        }
        self.set_status(f);
        r
    }

    /// SUB/SBB/CMP/NEG flags and result.
    pub(super) fn sub(&mut self, a: u32, b: u32, c: u32, size: u32) -> u32 {
        let m = mask(size);
        let (a, b) = (a & m, b & m);
        let r = a.wrapping_sub(b).wrapping_sub(c) & m;
        let mut f = szp(r, size);
        if u64::from(a) < u64::from(b) + u64::from(c) {
            f |= CF;
        }
        if (a ^ b ^ r) & 0x10 != 0 {
            f |= AF;
        }
        if (a ^ b) & (a ^ r) & sign_bit(size) != 0 {
            f |= OF;
        }
        self.set_status(f);
        r
    }

    /// AND/OR/XOR/TEST flags: CF = OF = AF = 0.
    pub(super) fn logic(&mut self, r: u32, size: u32) -> u32 {
        let r = r & mask(size);
        self.set_status(szp(r, size));
        r
    }

    /// INC/DEC: like ADD/SUB 1 but CF is preserved.
    pub(super) fn inc_dec(&mut self, a: u32, dec: bool, size: u32) -> u32 {
        let cf = self.state.eflags & CF;
        let r = if dec {
            self.sub(a, 1, 0, size)
        } else {
            self.add(a, 1, 0, size)
        };
        self.state.eflags = (self.state.eflags & !CF) | cf;
        r
    }

    /// One rotate/shift by `count` (already masked as the model masks it).
    pub(super) fn shift(&mut self, op: ShiftOp, v: u32, count: u32, size: u32) -> u32 {
        let m = mask(size);
        let sb = sign_bit(size);
        let mut v = v & m;
        if op == ShiftOp::Setmo {
            if count == 0 {
                return v;
            }
            let r = m;
            self.set_status(szp(r, size));
            return r;
        }
        if count == 0 {
            return v;
        }
        let mut cf = self.flag(CF);
        let af = self.flag(AF);
        let mut of = false;
        // Walk the count one bit at a time, as the microcode of the 8086 and
        // 80286 does; counts are at most 31 on later chips (255 on the 8086).
        for _ in 0..count {
            let old = v;
            match op {
                ShiftOp::Rol => {
                    cf = v & sb != 0;
                    v = ((v << 1) | u32::from(cf)) & m;
                    of = ((v & sb) != 0) ^ cf;
                }
                ShiftOp::Ror => {
                    cf = v & 1 != 0;
                    v = (v >> 1) | if cf { sb } else { 0 };
                    of = ((v ^ (v << 1)) & sb) != 0;
                }
                ShiftOp::Rcl => {
                    let c = u32::from(cf);
                    cf = v & sb != 0;
                    v = ((v << 1) | c) & m;
                    of = ((v & sb) != 0) ^ cf;
                }
                ShiftOp::Rcr => {
                    let c = cf;
                    of = ((v & sb) != 0) ^ c;
                    cf = v & 1 != 0;
                    v = (v >> 1) | if c { sb } else { 0 };
                }
                ShiftOp::Shl => {
                    cf = v & sb != 0;
                    v = (v << 1) & m;
                    of = ((v & sb) != 0) ^ cf;
                }
                ShiftOp::Shr => {
                    cf = v & 1 != 0;
                    v >>= 1;
                    of = old & sb != 0;
                }
                ShiftOp::Sar => {
                    cf = v & 1 != 0;
                    v = (v >> 1) | (v & sb);
                    of = false;
                }
                ShiftOp::Setmo => {}
            }
        }
        let mut f = self.state.eflags & (SF | ZF | PF | AF);
        match op {
            ShiftOp::Rol | ShiftOp::Ror | ShiftOp::Rcl | ShiftOp::Rcr => {
                // Rotates leave SF, ZF, PF and AF alone.
                if af {
                    f |= AF;
                }
            }
            _ => {
                // AF is undefined after a shift; it is left set, as the
                // 8086 and 80286 captures agree with either value.
                f = szp(v, size) | AF;
            }
        }
        if cf {
            f |= CF;
        }
        if of {
            f |= OF;
        }
        self.set_status(f);
        v
    }

    /// SHLD/SHRD: shift `dst` by `count` (masked to 5 bits), filling from `src`.
    pub(super) fn shift_double(
        &mut self,
        left: bool,
        dst: u32,
        src: u32,
        count: u32,
        size: u32,
    ) -> u32 {
        let count = count & 31;
        if count == 0 {
            return dst;
        }
        let m = mask(size);
        let (dst, src) = (dst & m, src & m);
        // Work in 64 bits: for 16-bit operands a count above 16 takes bits
        // from the source again (undefined result; P6 behaves this way).
        let (r, cf) = if size == 4 {
            if left {
                let wide = (u64::from(dst) << 32) | u64::from(src);
                let r = (wide << count >> 32) as u32;
                (r, (dst >> (32 - count)) & 1 != 0)
            } else {
                let wide = (u64::from(src) << 32) | u64::from(dst);
                let r = (wide >> count) as u32;
                (r, (dst >> (count - 1)) & 1 != 0)
            }
        } else if left {
            let wide = (u64::from(dst) << 32) | (u64::from(src) << 16) | u64::from(dst);
            let r = ((wide << count) >> 32) as u32 & m;
            let cf = ((wide << (count - 1)) >> 47) & 1 != 0;
            (r, cf)
        } else {
            let w = (u64::from(dst)) | (u64::from(src) << 16) | (u64::from(dst) << 32);
            let r = (w >> count) as u32 & m;
            let cf = (w >> (count - 1)) & 1 != 0;
            (r, cf)
        };
        let mut f = szp(r, size) | AF;
        if cf {
            f |= CF;
        }
        let sb = sign_bit(size);
        if (r ^ dst) & sb != 0 {
            f |= OF;
        }
        self.set_status(f);
        r
    }

    /// MUL / one-operand IMUL on AL/AX/EAX, writing AX, DX:AX or EDX:EAX.
    pub(super) fn mul1(&mut self, src: u32, size: u32, signed: bool, negate: bool) {
        let a = self.get_reg(reg::EAX as u8, size as u8);
        let (lo, hi, overflow) = match (size, signed) {
            (1, false) => {
                let r = a * src;
                (r & 0xFF, (r >> 8) & 0xFF, r > 0xFF)
            }
            (2, false) => {
                let r = a * src;
                (r & 0xFFFF, r >> 16, r > 0xFFFF)
            }
            (_, false) => {
                let r = u64::from(a) * u64::from(src);
                (r as u32, (r >> 32) as u32, r > 0xFFFF_FFFF)
            }
            (1, true) => {
                let mut r = i32::from(a as u8 as i8) * i32::from(src as u8 as i8);
                if negate {
                    r = -r;
                }
                (
                    r as u32 & 0xFF,
                    (r as u32 >> 8) & 0xFF,
                    r != i32::from(r as i8),
                )
            }
            (2, true) => {
                let mut r = i32::from(a as u16 as i16) * i32::from(src as u16 as i16);
                if negate {
                    r = -r;
                }
                (
                    r as u32 & 0xFFFF,
                    (r as u32 >> 16) & 0xFFFF,
                    r != i32::from(r as i16),
                )
            }
            (_, true) => {
                let mut r = i64::from(a as i32) * i64::from(src as i32);
                if negate {
                    r = -r;
                }
                (r as u32, (r as u64 >> 32) as u32, r != i64::from(r as i32))
            }
        };
        if size == 1 {
            self.set_reg(reg::EAX as u8, 2, lo | (hi << 8));
        } else {
            self.set_reg(reg::EAX as u8, size as u8, lo);
            self.set_reg(reg::EDX as u8, size as u8, hi);
        }
        // SF/ZF/PF/AF are undefined; use the high half's sign and the low half.
        let result_for_flags = if size == 1 { lo | (hi << 8) } else { lo };
        let mut f = szp(result_for_flags, size) & !ZF;
        if overflow {
            f |= CF | OF;
        }
        self.set_status(f);
    }

    /// Two- and three-operand IMUL: `a * b` truncated to `size`.
    pub(super) fn imul2(&mut self, a: u32, b: u32, size: u32) -> u32 {
        let (r, overflow) = match size {
            2 => {
                let r = i32::from(a as u16 as i16) * i32::from(b as u16 as i16);
                (r as u32 & 0xFFFF, r != i32::from(r as i16))
            }
            _ => {
                let r = i64::from(a as i32) * i64::from(b as i32);
                (r as u32, r != i64::from(r as i32))
            }
        };
        let mut f = szp(r, size) & !ZF;
        if overflow {
            f |= CF | OF;
        }
        self.set_status(f);
        r
    }

    /// DIV / IDIV of AX, DX:AX or EDX:EAX by `src`.
    pub(super) fn div1(&mut self, src: u32, size: u32, signed: bool, negate: bool) -> Exec {
        if src & mask(size) == 0 {
            return Err(Fault::DE);
        }
        let m = mask(size);
        let (q, r) = if !signed {
            let dividend = match size {
                1 => u64::from(self.get_reg(reg::EAX as u8, 2)),
                2 => {
                    u64::from(self.get_reg(reg::EDX as u8, 2)) << 16
                        | u64::from(self.get_reg(reg::EAX as u8, 2))
                }
                _ => {
                    u64::from(self.state.regs[reg::EDX]) << 32
                        | u64::from(self.state.regs[reg::EAX])
                }
            };
            let d = u64::from(src & m);
            let q = dividend / d;
            if q > u64::from(m) {
                return Err(Fault::DE);
            }
            (q as u32, (dividend % d) as u32)
        } else {
            let dividend: i64 = match size {
                1 => i64::from(self.get_reg(reg::EAX as u8, 2) as u16 as i16),
                2 => i64::from(
                    ((self.get_reg(reg::EDX as u8, 2) << 16) | self.get_reg(reg::EAX as u8, 2))
                        as i32,
                ),
                _ => {
                    ((u64::from(self.state.regs[reg::EDX]) << 32)
                        | u64::from(self.state.regs[reg::EAX])) as i64
                }
            };
            let d: i64 = match size {
                1 => i64::from(src as u8 as i8),
                2 => i64::from(src as u16 as i16),
                _ => i64::from(src as i32),
            };
            let mut q = dividend.wrapping_div(d);
            let r = dividend.wrapping_rem(d);
            if dividend == i64::MIN && d == -1 {
                return Err(Fault::DE);
            }
            if negate {
                q = -q;
            }
            let bits = size * 8;
            let (lo, hi) = (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1);
            // The 8086 cannot produce the most negative quotient.
            let lo = if self.model == CpuModel::I8086 {
                lo + 1
            } else {
                lo
            };
            if q < lo || q > hi {
                return Err(Fault::DE);
            }
            (q as u32 & m, r as u32 & m)
        };
        if size == 1 {
            self.set_reg(reg::EAX as u8, 2, (q & 0xFF) | ((r & 0xFF) << 8));
        } else {
            self.set_reg(reg::EAX as u8, size as u8, q);
            self.set_reg(reg::EDX as u8, size as u8, r);
        }
        Ok(())
    }

    /// DAA / DAS.
    pub(super) fn daa_das(&mut self, sub: bool) {
        let al = self.get_reg(0, 1);
        let (old_cf, old_af) = (self.flag(CF), self.flag(AF));
        let mut new = al;
        let mut cf = false;
        let mut af = false;
        if (al & 0x0F) > 9 || old_af {
            // CF also takes the carry/borrow out of this first adjustment.
            if self.model != CpuModel::I8086 {
                cf = if sub { al < 6 } else { al + 6 > 0xFF };
            }
            new = if sub { new.wrapping_sub(6) } else { new + 6 } & 0xFF;
            af = true;
        }
        let threshold = if self.model == CpuModel::I8086 && old_af {
            0x9F
        } else {
            0x99
        };
        if al > threshold || old_cf {
            new = if sub {
                new.wrapping_sub(0x60)
            } else {
                new + 0x60
            } & 0xFF;
            cf = true;
        }
        self.set_reg(0, 1, new);
        let mut f = szp(new, 1);
        if cf {
            f |= CF;
        }
        if af {
            f |= AF;
        }
        // OF is undefined: the chips set it as for the ADD/SUB performed.
        if sub {
            if (al ^ new) & al & 0x80 != 0 {
                f |= OF;
            }
        } else if (al ^ new) & new & 0x80 != 0 {
            f |= OF;
        }
        self.set_status(f);
    }

    /// AAA / AAS.
    pub(super) fn aaa_aas(&mut self, sub: bool) {
        let ax = self.get_reg(0, 2);
        let al = ax & 0xFF;
        let adjust = (al & 0x0F) > 9 || self.flag(AF);
        let mut new_ax = ax;
        if adjust {
            if self.model == CpuModel::I8086 {
                let (nal, nah) = if sub {
                    (al.wrapping_sub(6) & 0xFF, (ax >> 8).wrapping_sub(1) & 0xFF)
                } else {
                    ((al + 6) & 0xFF, ((ax >> 8) + 1) & 0xFF)
                };
                new_ax = (nah << 8) | nal;
            } else if sub {
                new_ax = ax.wrapping_sub(6) & 0xFFFF;
                new_ax = (new_ax & 0xFF) | ((new_ax.wrapping_sub(0x100)) & 0xFF00);
            } else {
                new_ax = (ax + 0x106) & 0xFFFF;
            }
        }
        new_ax &= 0xFF0F;
        self.set_reg(0, 2, new_ax);
        // SF/ZF/PF/OF are undefined; reflect the adjusted AL as the 286 does.
        let mut f = szp(new_ax & 0xFF, 1);
        if adjust {
            f |= AF | CF;
        }
        self.set_status(f);
    }

    /// AAM imm8 (divide AL).
    pub(super) fn aam(&mut self, base: u32) -> Exec {
        let al = self.get_reg(0, 1);
        if base == 0 {
            // The divide error leaves FLAGS as the microcode had set them
            // (hardware captures): the 8086 as for a zero result, the 80286
            // as for AL taken as a 16-bit value (SF and ZF clear unless AL
            // is 0, PF of AL). Later chips leave them undefined.
            match self.model {
                CpuModel::I8086 => self.set_status(szp(0, 1)),
                CpuModel::I80286 => self.set_status(szp(al, 2)),
                CpuModel::P6 => {}
            }
            // They survive the fault's restoring of the registers.
            self.commit_regs();
            return Err(Fault::DE);
        }
        let (q, r) = (al / base, al % base);
        self.set_reg(0, 2, (q << 8) | r);
        self.set_status(szp(r, 1));
        Ok(())
    }

    /// AAD imm8 (AL = AH * base + AL).
    pub(super) fn aad(&mut self, base: u32) {
        let ax = self.get_reg(0, 2);
        let (al, ah) = (ax & 0xFF, ax >> 8);
        let prod = (ah * base) & 0xFF;
        // Flags as for the 8-bit ADD the microcode performs.
        let r = self.add(al, prod, 0, 1);
        self.set_reg(0, 2, r);
    }
}
