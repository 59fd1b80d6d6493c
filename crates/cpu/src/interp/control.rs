//! Branches, calls, returns, interrupts and exception delivery.

use super::operand::mask;
use super::protected::Event;
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
    pub(super) fn far_pointer<B: Bus>(&mut self, bus: &mut B, d: &Decoded) -> Exec<(u16, u32)> {
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

    /// True in protected mode outside virtual-8086 mode.
    #[inline]
    pub(super) fn pm(&self) -> bool {
        self.state.protected_mode() && self.state.eflags & Self::VM == 0
    }

    /// Loads CS:EIP for a far transfer in real or virtual-8086 mode.
    fn far_jump_real(&mut self, sel: u16, off: u32, op32: bool) -> Exec {
        let off = if op32 { off } else { off & 0xFFFF };
        if off > 0xFFFF && self.model != CpuModel::I8086 {
            return Err(Fault::GP0);
        }
        self.state.load_seg_real(SegReg::Cs, sel);
        self.state.eip = off;
        Ok(())
    }

    pub(super) fn jmp<B: Bus>(&mut self, bus: &mut B, d: &Decoded) -> Exec {
        if Self::is_far(d) {
            let (sel, off) = self.far_target(bus, d)?;
            if self.pm() {
                let next = self.state.eip;
                return self.far_transfer_pm(bus, sel, off, d.op32, false, next);
            }
            return self.far_jump_real(sel, off, d.op32);
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
            if self.pm() {
                return self.far_transfer_pm(bus, sel, off, d.op32, true, next);
            }
            let cs = u32::from(self.state.segs[SegReg::Cs as usize].selector);
            let sp = self.sp();
            let sp1 = self.sp_add(sp, -(size as i32));
            self.stack_write(bus, sp1, size, cs)?;
            let sp2 = self.sp_add(sp1, -(size as i32));
            self.stack_write(bus, sp2, size, next)?;
            self.far_jump_real(sel, off, d.op32)?;
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
        if self.pm() {
            return self.retf_pm(bus, d.op32, imm);
        }
        self.far_jump_real(sel, off, d.op32)?;
        self.set_sp(self.sp_add(sp, (2 * size + imm) as i32));
        Ok(())
    }

    pub(super) fn iret<B: Bus>(&mut self, bus: &mut B, d: &Decoded) -> Exec {
        if self.pm() {
            return self.iret_pm(bus, d.op32);
        }
        let v86 = self.state.eflags & Self::VM != 0;
        let size = if d.op32 { 4 } else { 2 };
        if v86 && self.iopl() < 3 && !(self.vme() && size == 2) {
            return Err(Fault::GP0);
        }
        let sp = self.sp();
        let off = self.stack_read(bus, sp, 0, size)?;
        let sel = self.stack_read(bus, sp, size, 2)? as u16;
        let fl = self.stack_read(bus, sp, 2 * size, size)?;
        if v86 && self.iopl() < 3 {
            // VME (SDM Vol. 3A §20.4.4): IF goes to VIF; TF or a pending
            // virtual interrupt that would be enabled raise #GP.
            if fl & TF != 0 || (fl & IF != 0 && self.state.eflags & Self::VIP != 0) {
                return Err(Fault::GP0);
            }
            self.far_jump_real(sel, off, d.op32)?;
            self.set_sp(self.sp_add(sp, 6));
            let keep = IF | Self::IOPL_MASK | 0xFFFF_0000;
            let mut nf = (self.state.eflags & keep) | (fl & !keep & 0xFFFF);
            nf = if fl & IF != 0 {
                nf | Self::VIF
            } else {
                nf & !Self::VIF
            };
            self.state.eflags = self.fix_flags(nf);
            return Ok(());
        }
        self.far_jump_real(sel, off, d.op32)?;
        self.set_sp(self.sp_add(sp, (3 * size) as i32));
        self.write_flags(fl, size, true);
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

    /// INT n (`int_n`), INT3 or INTO: delivered with the return address
    /// after the instruction.
    pub(super) fn software_interrupt<B: Bus>(&mut self, bus: &mut B, vec: u8, int_n: bool) -> Exec {
        bus.note_event(crate::bus::CpuEvent::Software(vec));
        if self.state.eflags & Self::VM != 0 && int_n {
            if self.vme() {
                // The redirection bitmap sits 32 bytes below the I/O map base.
                let tr = self.state.tr;
                let base = self.sys_read(bus, tr.base + 0x66, 2)?;
                let bit_byte = (base.wrapping_sub(32)).wrapping_add(u32::from(vec) / 8);
                let redirected =
                    self.sys_read(bus, tr.base.wrapping_add(bit_byte), 1)? & (1 << (vec & 7)) == 0;
                if redirected {
                    return self.interrupt_v86_redirected(bus, vec);
                }
            }
            if self.iopl() < 3 {
                return Err(Fault::GP0);
            }
        }
        if self.state.protected_mode() {
            return self.interrupt_pm(bus, vec, None, Event::Software);
        }
        self.interrupt_real(bus, vec)
    }

    /// VME: an INT n redirected to the virtual-8086 program's own IVT.
    fn interrupt_v86_redirected<B: Bus>(&mut self, bus: &mut B, vec: u8) -> Exec {
        let entry = u32::from(vec) * 4;
        let off = self.lin_read(bus, entry, 2, true)?;
        let sel = self.lin_read(bus, entry + 2, 2, true)? as u16;
        let mut fl = self.state.eflags & 0xFFFF;
        if self.iopl() < 3 {
            // The image shows VIF as IF and IOPL as 3.
            fl = (fl & !IF)
                | if self.state.eflags & Self::VIF != 0 {
                    IF
                } else {
                    0
                }
                | Self::IOPL_MASK;
        }
        self.push_real_frame(bus, fl)?;
        if self.iopl() < 3 {
            self.state.eflags &= !(Self::VIF | TF);
        } else {
            self.state.eflags &= !(IF | TF);
        }
        self.state.load_seg_real(SegReg::Cs, sel);
        self.state.eip = off;
        Ok(())
    }

    /// Pushes the 16-bit FLAGS image `fl`, CS and IP of a real-mode or
    /// virtual-8086 interrupt; SP moves only when all three writes succeed.
    fn push_real_frame<B: Bus>(&mut self, bus: &mut B, fl: u32) -> Exec {
        let cs = u32::from(self.state.segs[SegReg::Cs as usize].selector);
        let ip = self.state.eip & 0xFFFF;
        let mut sp = self.sp();
        for v in [fl, cs, ip] {
            sp = self.sp_add(sp, -2);
            self.stack_write(bus, sp, 2, v)?;
        }
        self.set_sp(sp);
        Ok(())
    }

    /// Delivers interrupt `vec` through the IVT (real mode).
    pub(super) fn interrupt_real<B: Bus>(&mut self, bus: &mut B, vec: u8) -> Exec {
        let idt = self.state.idtr;
        let entry = u32::from(vec) * 4;
        if self.model != CpuModel::I8086 && entry + 3 > idt.limit {
            return Err(Fault::with_error(vector::GP, u32::from(vec) * 8 + 2));
        }
        let off = self.sys_read(bus, idt.base.wrapping_add(entry), 2)?;
        let sel = self.sys_read(bus, idt.base.wrapping_add(entry + 2), 2)? as u16;
        self.push_real_frame(bus, self.state.eflags & 0xFFFF)?;
        self.state.eflags &= !(IF | TF | 0x0004_0000);
        self.state.load_seg_real(SegReg::Cs, sel);
        self.state.eip = off;
        self.state.halted = false;
        Ok(())
    }

    /// Delivers an event (exception or external interrupt) in any mode.
    pub(super) fn deliver_event<B: Bus>(
        &mut self,
        bus: &mut B,
        vec: u8,
        error: Option<u32>,
        event: Event,
    ) -> Exec {
        if self.state.protected_mode() {
            self.interrupt_pm(bus, vec, error, event)
        } else {
            self.interrupt_real(bus, vec)
        }
    }

    /// Delivers an exception raised by an instruction with the double-fault
    /// rules of SDM Vol. 3A Table 6-5: a contributory fault while delivering a
    /// contributory one (or any of those or #PF while delivering #PF) becomes
    /// #DF; a fault while delivering #DF shuts the CPU down.
    pub(super) fn deliver_exception<B: Bus>(
        &mut self,
        bus: &mut B,
        fault: Fault,
    ) -> Result<(), Fault> {
        fn class(v: u8) -> u8 {
            match v {
                0 | 10 | 11 | 12 | 13 => 1, // contributory
                14 => 2,                    // page fault
                8 => 3,                     // double fault
                _ => 0,                     // benign
            }
        }
        let mut current = fault;
        let real = !self.state.protected_mode();
        // Real-mode errors have no error code on the stack.
        loop {
            bus.note_event(crate::bus::CpuEvent::Exception(current.vector));
            let err = if real { None } else { current.error };
            let r = if self.model == CpuModel::I8086 {
                self.interrupt_real(bus, current.vector)
            } else {
                self.deliver_event(bus, current.vector, err, Event::Exception)
            };
            let second = match r {
                Ok(()) => return Ok(()),
                Err(f) => f,
            };
            self.state.regs = self.saved_regs;
            let (a, b) = (class(current.vector), class(second.vector));
            if a == 3 || self.model == CpuModel::I8086 {
                return Err(second);
            }
            current = if (a == 1 && b == 1) || (a == 2 && (b == 1 || b == 2)) {
                Fault::with_error(vector::DF, 0)
            } else {
                second
            };
        }
    }

    /// Maps a delivery failure to the step outcome.
    pub(super) fn shutdown_outcome(&self, f: Fault) -> StepOutcome {
        StepOutcome::TripleFault(f)
    }
}
