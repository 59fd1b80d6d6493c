//! Branches, calls, returns, interrupts and exception delivery.

use super::operand::mask;
use super::{Cpu, StepOutcome};
use crate::bus::Bus;
use crate::decode::Decoded;
use crate::fault::{vector, Exec, Fault};
use crate::flags::{IF, TF};
use crate::model::CpuModel;
use crate::state::{reg, SegReg};
use iced_x86::OpKind;

impl Cpu {
    /// Sets EIP, faulting with #GP(0) if it lies beyond the CS limit.
    pub(super) fn set_eip_checked(&mut self, eip: u32) -> Exec {
        if self.model != CpuModel::I8086 && eip > self.state.segs[SegReg::Cs as usize].limit {
            return Err(Fault::GP0);
        }
        self.state.eip = eip;
        Ok(())
    }

    /// Takes a relative near branch.
    pub(super) fn jump_near(&mut self, d: &Decoded) -> Exec {
        let rel = d.insn.near_branch_target() as u32;
        let t = self.start_eip.wrapping_add(rel);
        let t = if d.op32 { t } else { t & 0xFFFF };
        self.set_eip_checked(t)
    }

    /// Reads a far pointer (offset of `size` bytes, then a selector) from memory operand.
    fn far_pointer<B: Bus>(&mut self, bus: &mut B, d: &Decoded) -> Exec<(u16, u32)> {
        let size = if d.op32 { 4 } else { 2 };
        let seg = Self::mem_seg(d);
        let ea = self.effective_address(d);
        let off = self.read_mem(bus, seg, ea, size)?;
        let ea2 = if d.addr32 || self.model != CpuModel::I8086 {
            ea.wrapping_add(size)
        } else {
            (ea + size) & 0xFFFF
        };
        let sel = self.read_mem(bus, seg, ea2, 2)? as u16;
        Ok((sel, off))
    }

    /// Direct or indirect far target of a JMP/CALL.
    fn far_target<B: Bus>(&mut self, bus: &mut B, d: &Decoded) -> Exec<(u16, u32)> {
        let i = &d.insn;
        match i.op_kind(0) {
            OpKind::FarBranch16 => Ok((i.far_branch_selector(), u32::from(i.far_branch16()))),
            OpKind::FarBranch32 => Ok((i.far_branch_selector(), i.far_branch32())),
            OpKind::Memory => self.far_pointer(bus, d),
            _ => Err(Fault::UD),
        }
    }

    fn is_far(d: &Decoded) -> bool {
        matches!(d.insn.op_kind(0), OpKind::FarBranch16 | OpKind::FarBranch32)
            || matches!(
                d.insn.code(),
                iced_x86::Code::Jmp_m1616
                    | iced_x86::Code::Jmp_m1632
                    | iced_x86::Code::Call_m1616
                    | iced_x86::Code::Call_m1632
            )
    }

    /// Loads CS:EIP for a far transfer.
    fn far_jump_to(&mut self, bus: &mut impl Bus, sel: u16, off: u32, op32: bool) -> Exec {
        let off = if op32 { off } else { off & 0xFFFF };
        if self.state.protected_mode() && self.state.eflags & 0x0002_0000 == 0 {
            self.load_code_segment(bus, sel)?;
        } else {
            self.state.load_seg_real(SegReg::Cs, sel);
        }
        self.set_eip_checked(off)
    }

    pub(super) fn jmp<B: Bus>(&mut self, bus: &mut B, d: &Decoded) -> Exec {
        if Self::is_far(d) {
            let (sel, off) = self.far_target(bus, d)?;
            return self.far_jump_to(bus, sel, off, d.op32);
        }
        match d.insn.op_kind(0) {
            OpKind::NearBranch16 | OpKind::NearBranch32 => self.jump_near(d),
            _ => {
                let size = if d.op32 { 4 } else { 2 };
                let loc = self.loc(d, 0);
                let t = self.read_loc(bus, loc, size)?;
                self.set_eip_checked(t & mask(size))
            }
        }
    }

    pub(super) fn call<B: Bus>(&mut self, bus: &mut B, d: &Decoded, next: u32) -> Exec {
        let size = if d.op32 { 4 } else { 2 };
        if Self::is_far(d) {
            let (sel, off) = self.far_target(bus, d)?;
            let cs = u32::from(self.state.segs[SegReg::Cs as usize].selector);
            let sp = self.sp();
            let sp1 = self.sp_add(sp, -(size as i32));
            self.stack_write(bus, sp1, size, cs)?;
            let sp2 = self.sp_add(sp1, -(size as i32));
            self.stack_write(bus, sp2, size, next)?;
            self.far_jump_to(bus, sel, off, d.op32)?;
            self.set_sp(sp2);
            return Ok(());
        }
        let target = match d.insn.op_kind(0) {
            OpKind::NearBranch16 | OpKind::NearBranch32 => {
                let t = self
                    .start_eip
                    .wrapping_add(d.insn.near_branch_target() as u32);
                t & mask(size)
            }
            _ => {
                let loc = self.loc(d, 0);
                self.read_loc(bus, loc, size)?
            }
        };
        self.push(bus, size, next)?;
        self.set_eip_checked(target)
    }

    pub(super) fn retf<B: Bus>(&mut self, bus: &mut B, d: &Decoded) -> Exec {
        let size = if d.op32 { 4 } else { 2 };
        let sp = self.sp();
        let off = self.stack_read(bus, sp, 0, size)?;
        let sel = self.stack_read(bus, sp, size, 2)? as u16;
        let imm = if d.insn.op_count() > 0 {
            u32::from(d.insn.immediate16())
        } else {
            0
        };
        self.far_jump_to(bus, sel, off, d.op32)?;
        self.set_sp(self.sp_add(sp, (2 * size + imm) as i32));
        Ok(())
    }

    pub(super) fn iret<B: Bus>(&mut self, bus: &mut B, d: &Decoded) -> Exec {
        if self.state.protected_mode() {
            // Protected-mode IRET (privilege changes, tasks, V86) belongs to the
            // system-architecture work; only same-level returns are handled.
            if self.state.eflags & crate::flags::NT != 0 {
                return Err(Fault::GP0);
            }
        }
        let size = if d.op32 { 4 } else { 2 };
        let sp = self.sp();
        let off = self.stack_read(bus, sp, 0, size)?;
        let sel = self.stack_read(bus, sp, size, 2)? as u16;
        let fl = self.stack_read(bus, sp, 2 * size, size)?;
        self.far_jump_to(bus, sel, off, d.op32)?;
        self.set_sp(self.sp_add(sp, (3 * size) as i32));
        self.write_flags(fl, size);
        Ok(())
    }

    pub(super) fn enter<B: Bus>(&mut self, bus: &mut B, d: &Decoded) -> Exec {
        let size = if d.op32 { 4 } else { 2 };
        let alloc = u32::from(d.insn.immediate16());
        let level = u32::from(d.insn.immediate8_2nd()) & 31;
        let mut sp = self.sp();
        let bp_full = self.state.regs[reg::EBP];
        sp = self.sp_add(sp, -(size as i32));
        self.stack_write(bus, sp, size, bp_full & mask(size))?;
        let frame = sp;
        if level > 0 {
            let mut bp = if self.stack32() {
                bp_full
            } else {
                bp_full & 0xFFFF
            };
            for _ in 1..level {
                bp = self.sp_add(bp, -(size as i32));
                let v = self.read_mem(bus, SegReg::Ss, bp, size)?;
                sp = self.sp_add(sp, -(size as i32));
                self.stack_write(bus, sp, size, v)?;
            }
            sp = self.sp_add(sp, -(size as i32));
            self.stack_write(bus, sp, size, frame)?;
        }
        let new_sp = self.sp_add(sp, -(alloc as i32));
        // The 80286+ checks that the final stack pointer is addressable.
        if self.model != CpuModel::I8086 && alloc > 0 {
            self.seg_linear(SegReg::Ss, new_sp, 1, true)?;
        }
        self.set_reg(reg::EBP as u8, size as u8, frame);
        self.set_sp(new_sp);
        Ok(())
    }

    /// INT n / INT3 / INTO: deliver with the return address after the instruction.
    pub(super) fn software_interrupt<B: Bus>(&mut self, bus: &mut B, vec: u8) -> Exec {
        self.interrupt(bus, vec, None)
    }

    /// Delivers interrupt `vec` through the IVT (real mode).
    pub(super) fn interrupt<B: Bus>(&mut self, bus: &mut B, vec: u8, _error: Option<u32>) -> Exec {
        if self.state.protected_mode() {
            return Err(Fault::with_error(vector::GP, u32::from(vec) * 8 + 2));
        }
        let idt = self.state.idtr;
        let entry = u32::from(vec) * 4;
        if self.model != CpuModel::I8086 && entry + 3 > idt.limit {
            return Err(Fault::with_error(vector::GP, u32::from(vec) * 8 + 2));
        }
        let off = self.sys_read(bus, idt.base.wrapping_add(entry), 2)?;
        let sel = self.sys_read(bus, idt.base.wrapping_add(entry + 2), 2)? as u16;
        let sp = self.sp();
        let fl = self.state.eflags & 0xFFFF;
        let cs = u32::from(self.state.segs[SegReg::Cs as usize].selector);
        let ip = self.state.eip & 0xFFFF;
        let sp1 = self.sp_add(sp, -2);
        self.stack_write(bus, sp1, 2, fl)?;
        let sp2 = self.sp_add(sp1, -2);
        self.stack_write(bus, sp2, 2, cs)?;
        let sp3 = self.sp_add(sp2, -2);
        self.stack_write(bus, sp3, 2, ip)?;
        self.set_sp(sp3);
        self.state.eflags &= !(IF | TF | 0x0004_0000);
        self.state.load_seg_real(SegReg::Cs, sel);
        self.state.eip = off;
        Ok(())
    }

    /// Delivers an exception raised by an instruction: a second fault while
    /// delivering becomes #DF, and a fault delivering #DF shuts the CPU down.
    pub(super) fn deliver_exception<B: Bus>(
        &mut self,
        bus: &mut B,
        fault: Fault,
    ) -> Result<(), Fault> {
        if self.state.protected_mode() {
            // IDT delivery in protected mode is part of the system architecture.
            return Err(fault);
        }
        match self.interrupt(bus, fault.vector, fault.error) {
            Ok(()) => Ok(()),
            Err(_) if self.model != CpuModel::I8086 && fault.vector != vector::DF => self
                .interrupt(bus, vector::DF, Some(0))
                .map_err(|_| Fault::new(vector::DF)),
            Err(f) => Err(f),
        }
    }

    /// Maps a delivery failure to the step outcome.
    pub(super) fn shutdown_outcome(&self, f: Fault) -> StepOutcome {
        if self.state.protected_mode() {
            StepOutcome::Unhandled(f)
        } else {
            StepOutcome::TripleFault(f)
        }
    }
}
