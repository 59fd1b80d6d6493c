//! Operand access: registers, memory through segmentation, the stack.

use super::Cpu;
use crate::bus::Bus;
use crate::decode::Decoded;
use crate::fault::{Exec, Fault};
use crate::model::CpuModel;
use crate::state::{attr, reg, SegReg};
use iced_x86::{MemorySize, OpKind, Register};

/// Where an operand lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loc {
    /// A general register: index in encoding order and size (1 = AL..BH).
    Reg(u8, u8),
    /// Memory at segment:offset.
    Mem(SegReg, u32),
    /// An immediate value.
    Imm(u32),
}

/// Mask of an operand of `size` bytes.
#[inline]
pub fn mask(size: u32) -> u32 {
    match size {
        1 => 0xFF,
        2 => 0xFFFF,
        _ => 0xFFFF_FFFF,
    }
}

/// Sign bit of an operand of `size` bytes.
#[inline]
pub fn sign_bit(size: u32) -> u32 {
    1 << (size * 8 - 1)
}

/// Sign-extends a `size`-byte value to 32 bits.
#[inline]
pub fn sext(v: u32, size: u32) -> u32 {
    match size {
        1 => v as u8 as i8 as i32 as u32,
        2 => v as u16 as i16 as i32 as u32,
        _ => v,
    }
}

/// (encoding index, size in bytes) of a general register, or None.
#[inline]
pub fn gpr(r: Register) -> Option<(u8, u8)> {
    let v = r as u32;
    let (al, ax, eax) = (
        Register::AL as u32,
        Register::AX as u32,
        Register::EAX as u32,
    );
    if (al..al + 8).contains(&v) {
        Some(((v - al) as u8, 1))
    } else if (ax..ax + 8).contains(&v) {
        Some(((v - ax) as u8, 2))
    } else if (eax..eax + 8).contains(&v) {
        Some(((v - eax) as u8, 4))
    } else {
        None
    }
}

/// The segment register for an iced register, if it is one.
#[inline]
pub fn sreg(r: Register) -> Option<SegReg> {
    let v = r as u32;
    let es = Register::ES as u32;
    if (es..es + 6).contains(&v) {
        SegReg::from_index((v - es) as usize)
    } else {
        None
    }
}

/// Size in bytes of an integer memory operand, or 0 when not a plain integer.
#[inline]
pub fn mem_size(ms: MemorySize) -> u32 {
    match ms {
        MemorySize::UInt8 | MemorySize::Int8 => 1,
        MemorySize::UInt16 | MemorySize::Int16 | MemorySize::WordOffset => 2,
        MemorySize::UInt32 | MemorySize::Int32 | MemorySize::DwordOffset => 4,
        MemorySize::UInt64 | MemorySize::Int64 => 8,
        _ => 0,
    }
}

impl Cpu {
    /// Reads a general register of `size` bytes (8-bit indexes 4..8 are AH..BH).
    #[inline]
    pub fn get_reg(&self, idx: u8, size: u8) -> u32 {
        let i = idx as usize;
        match size {
            1 if i < 4 => self.state.regs[i] & 0xFF,
            1 => (self.state.regs[i - 4] >> 8) & 0xFF,
            2 => self.state.regs[i] & 0xFFFF,
            _ => self.state.regs[i],
        }
    }

    /// Writes a general register of `size` bytes, preserving the other bits.
    #[inline]
    pub fn set_reg(&mut self, idx: u8, size: u8, v: u32) {
        let i = idx as usize;
        match size {
            1 if i < 4 => self.state.regs[i] = (self.state.regs[i] & !0xFF) | (v & 0xFF),
            1 => self.state.regs[i - 4] = (self.state.regs[i - 4] & !0xFF00) | ((v & 0xFF) << 8),
            2 => self.state.regs[i] = (self.state.regs[i] & !0xFFFF) | (v & 0xFFFF),
            _ => self.state.regs[i] = v,
        }
    }

    /// Effective address (offset) of the instruction's memory operand.
    #[inline]
    pub(super) fn effective_address(&self, d: &Decoded) -> u32 {
        let i = &d.insn;
        let mut ea = i.memory_displacement32();
        let base = i.memory_base();
        if base != Register::None {
            if let Some((idx, _)) = gpr(base) {
                ea = ea.wrapping_add(self.state.regs[idx as usize]);
            }
        }
        let index = i.memory_index();
        if index != Register::None {
            if let Some((idx, _)) = gpr(index) {
                ea = ea.wrapping_add(
                    self.state.regs[idx as usize].wrapping_mul(i.memory_index_scale()),
                );
            }
        }
        if d.addr32 {
            ea
        } else {
            ea & 0xFFFF
        }
    }

    /// The segment a memory operand uses (override or default).
    #[inline]
    pub(super) fn mem_seg(d: &Decoded) -> SegReg {
        super::operand::sreg(d.insn.memory_segment()).unwrap_or(SegReg::Ds)
    }

    /// Locates operand `n`.
    #[inline]
    pub(super) fn loc(&self, d: &Decoded, n: u32) -> Loc {
        let i = &d.insn;
        match i.op_kind(n) {
            OpKind::Register => match gpr(i.op_register(n)) {
                Some((idx, size)) => Loc::Reg(idx, size),
                None => Loc::Imm(0),
            },
            OpKind::Memory => Loc::Mem(Self::mem_seg(d), self.effective_address(d)),
            OpKind::Immediate8 | OpKind::Immediate8_2nd => Loc::Imm(u32::from(i.immediate8())),
            OpKind::Immediate16 => Loc::Imm(u32::from(i.immediate16())),
            OpKind::Immediate32 => Loc::Imm(i.immediate32()),
            OpKind::Immediate8to16 => Loc::Imm(u32::from(i.immediate8to16() as u16)),
            OpKind::Immediate8to32 => Loc::Imm(i.immediate8to32() as u32),
            _ => Loc::Imm(0),
        }
    }

    /// Size in bytes of operand `n` (register or memory).
    #[inline]
    pub(super) fn op_size(d: &Decoded, n: u32) -> u32 {
        let i = &d.insn;
        match i.op_kind(n) {
            OpKind::Register => gpr(i.op_register(n)).map_or(2, |(_, s)| u32::from(s)),
            OpKind::Memory => match mem_size(i.memory_size()) {
                0 => {
                    if d.op32 {
                        4
                    } else {
                        2
                    }
                }
                s => s,
            },
            _ => {
                if d.op32 {
                    4
                } else {
                    2
                }
            }
        }
    }

    /// Reads an operand of `size` bytes.
    #[inline]
    pub(super) fn read_loc<B: Bus>(&mut self, bus: &mut B, loc: Loc, size: u32) -> Exec<u32> {
        match loc {
            Loc::Reg(idx, s) => Ok(self.get_reg(idx, s)),
            Loc::Mem(seg, off) => self.read_mem(bus, seg, off, size),
            Loc::Imm(v) => Ok(v & super::operand::mask(size)),
        }
    }

    /// Writes an operand of `size` bytes.
    #[inline]
    pub(super) fn write_loc<B: Bus>(&mut self, bus: &mut B, loc: Loc, size: u32, v: u32) -> Exec {
        match loc {
            Loc::Reg(idx, s) => {
                self.set_reg(idx, s, v);
                Ok(())
            }
            Loc::Mem(seg, off) => self.write_mem(bus, seg, off, size, v),
            Loc::Imm(_) => Err(Fault::UD),
        }
    }

    /// Checks a `size`-byte access at `seg:off` and returns the linear address.
    #[inline]
    pub(super) fn seg_linear(&self, seg: SegReg, off: u32, size: u32, write: bool) -> Exec<u32> {
        let s = &self.state.segs[seg as usize];
        if self.model == CpuModel::I8086 {
            return Ok(s.base.wrapping_add(off));
        }
        // The 80286 in real mode reports stack-limit violations as #GP too.
        let real286 = self.model == CpuModel::I80286 && !self.state.protected_mode();
        let fault = if seg == SegReg::Ss && !real286 {
            Fault::SS0
        } else {
            Fault::GP0
        };
        if self.state.protected_mode() {
            if s.selector & !3 == 0
                && seg != SegReg::Ss
                && seg != SegReg::Cs
                && s.attr & attr::PRESENT == 0
            {
                return Err(fault);
            }
            let a = s.attr;
            if a & attr::CODE != 0 {
                if write || a & attr::RW == 0 {
                    return Err(fault);
                }
            } else if write && a & attr::RW == 0 {
                return Err(fault);
            }
            if a & attr::CODE == 0 && a & attr::DC != 0 {
                // Expand-down: valid offsets are limit+1 ..= 0xFFFF or 0xFFFFFFFF.
                let top = if s.is_32() { 0xFFFF_FFFFu32 } else { 0xFFFF };
                if off <= s.limit
                    || off.wrapping_add(size - 1) > top
                    || off.wrapping_add(size - 1) < off
                {
                    return Err(fault);
                }
                return Ok(s.base.wrapping_add(off));
            }
        }
        let last = off.wrapping_add(size - 1);
        if off > s.limit || last > s.limit || last < off {
            return Err(fault);
        }
        Ok(s.base.wrapping_add(off))
    }

    /// Reads `size` bytes (1, 2 or 4) at `seg:off`.
    #[inline]
    pub(super) fn read_mem<B: Bus>(
        &mut self,
        bus: &mut B,
        seg: SegReg,
        off: u32,
        size: u32,
    ) -> Exec<u32> {
        if self.model == CpuModel::I8086 {
            // The 8086 wraps each byte's offset within the segment; no paging.
            let base = self.state.segs[seg as usize].base;
            let mut v = 0;
            for k in 0..size {
                let lin = base.wrapping_add(off.wrapping_add(k) & 0xFFFF);
                v |= u32::from(bus.read_u8(lin & self.a20_mask)) << (8 * k);
            }
            return Ok(v);
        }
        let lin = self.seg_linear(seg, off, size, false)?;
        let user = self.user();
        self.lin_read(bus, lin, size, user)
    }

    /// Writes `size` bytes (1, 2 or 4) at `seg:off`.
    #[inline]
    pub(super) fn write_mem<B: Bus>(
        &mut self,
        bus: &mut B,
        seg: SegReg,
        off: u32,
        size: u32,
        v: u32,
    ) -> Exec {
        if self.model == CpuModel::I8086 {
            let base = self.state.segs[seg as usize].base;
            for k in 0..size {
                let lin = base.wrapping_add(off.wrapping_add(k) & 0xFFFF);
                bus.write_u8(lin & self.a20_mask, (v >> (8 * k)) as u8);
            }
            return Ok(());
        }
        let lin = self.seg_linear(seg, off, size, true)?;
        let user = self.user();
        self.lin_write(bus, lin, size, v, user)
    }

    /// True when the stack is 32-bit (SS.B).
    #[inline]
    pub(super) fn stack32(&self) -> bool {
        self.state.segs[SegReg::Ss as usize].is_32()
    }

    /// Current stack pointer as the stack size sees it.
    #[inline]
    pub(super) fn sp(&self) -> u32 {
        let esp = self.state.regs[reg::ESP];
        if self.stack32() {
            esp
        } else {
            esp & 0xFFFF
        }
    }

    /// Sets the stack pointer, preserving ESP's high half on a 16-bit stack.
    #[inline]
    pub(super) fn set_sp(&mut self, v: u32) {
        if self.stack32() {
            self.state.regs[reg::ESP] = v;
        } else {
            self.state.regs[reg::ESP] = (self.state.regs[reg::ESP] & 0xFFFF_0000) | (v & 0xFFFF);
        }
    }

    /// `sp` moved by `delta` with the stack's wrap-around.
    #[inline]
    pub(super) fn sp_add(&self, sp: u32, delta: i32) -> u32 {
        let v = sp.wrapping_add(delta as u32);
        if self.stack32() {
            v
        } else {
            v & 0xFFFF
        }
    }

    /// Pushes a value of `size` bytes (2 or 4).
    pub(super) fn push<B: Bus>(&mut self, bus: &mut B, size: u32, v: u32) -> Exec {
        let sp = self.sp_add(self.sp(), -(size as i32));
        self.write_mem(bus, SegReg::Ss, sp, size, v)?;
        self.set_sp(sp);
        Ok(())
    }

    /// Pops a value of `size` bytes (2 or 4).
    pub(super) fn pop<B: Bus>(&mut self, bus: &mut B, size: u32) -> Exec<u32> {
        let sp = self.sp();
        let v = self.read_mem(bus, SegReg::Ss, sp, size)?;
        self.set_sp(self.sp_add(sp, size as i32));
        Ok(v)
    }

    /// Reads the stack at `sp + offset` without popping.
    pub(super) fn stack_read<B: Bus>(
        &mut self,
        bus: &mut B,
        sp: u32,
        offset: u32,
        size: u32,
    ) -> Exec<u32> {
        let a = self.sp_add(sp, offset as i32);
        self.read_mem(bus, SegReg::Ss, a, size)
    }

    /// Writes `v` to the stack at `sp - offset` (for multi-push sequences that
    /// commit SP only when every write succeeded).
    pub(super) fn stack_write<B: Bus>(&mut self, bus: &mut B, sp: u32, size: u32, v: u32) -> Exec {
        self.write_mem(bus, SegReg::Ss, sp, size, v)
    }
}
