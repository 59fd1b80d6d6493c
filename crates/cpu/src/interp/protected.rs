//! Protected-mode control transfers: interrupt and exception delivery
//! through the IDT, far JMP/CALL/RET through code segments, call gates and
//! task gates, IRET in all its forms (same level, outer level, to V86, task
//! return), and hardware task switching. References are to the Intel SDM
//! Vol. 3A (chapters 5-7) and the instruction pages of Vol. 2.

use super::Cpu;
use crate::bus::Bus;
use crate::fault::{vector, Exec, Fault};
use crate::flags::{self, IF, NT, TF};
use crate::state::{attr, reg, SegReg, Segment};

/// EFLAGS.RF, VM, VIF, VIP.
const RF: u32 = 1 << 16;
/// EFLAGS.RF for other modules.
pub(super) const RF_BIT: u32 = RF;
const VM: u32 = 1 << 17;
const VIF: u32 = 1 << 19;
const VIP: u32 = 1 << 20;

/// A raw 8-byte descriptor.
#[derive(Clone, Copy, Debug)]
pub struct Descriptor {
    /// Low dword.
    pub lo: u32,
    /// High dword.
    pub hi: u32,
}

impl Descriptor {
    /// S bit: code/data (true) or system (false).
    pub fn is_code_data(&self) -> bool {
        self.hi & (1 << 12) != 0
    }
    /// Type field (4 bits).
    pub fn typ(&self) -> u32 {
        (self.hi >> 8) & 0xF
    }
    /// Descriptor privilege level.
    pub fn dpl(&self) -> u8 {
        ((self.hi >> 13) & 3) as u8
    }
    /// Present bit.
    pub fn present(&self) -> bool {
        self.hi & (1 << 15) != 0
    }
    /// Code segment (code/data with the executable bit).
    pub fn is_code(&self) -> bool {
        self.is_code_data() && self.hi & (1 << 11) != 0
    }
    /// Conforming code segment.
    pub fn conforming(&self) -> bool {
        self.is_code() && self.hi & (1 << 10) != 0
    }
    /// Gate target selector.
    pub fn gate_selector(&self) -> u16 {
        (self.lo >> 16) as u16
    }
    /// Gate target offset (32-bit gates use the high word too).
    pub fn gate_offset(&self) -> u32 {
        if self.typ() & 8 != 0 {
            (self.lo & 0xFFFF) | (self.hi & 0xFFFF_0000)
        } else {
            self.lo & 0xFFFF
        }
    }
    /// The segment cache this descriptor loads.
    pub fn segment(&self, selector: u16) -> Segment {
        let base = (self.lo >> 16) | ((self.hi & 0xFF) << 16) | (self.hi & 0xFF00_0000);
        let mut limit = (self.lo & 0xFFFF) | (self.hi & 0x000F_0000);
        let attr = ((self.hi >> 8) & 0xF0FF) as u16;
        if attr & attr::G != 0 {
            limit = (limit << 12) | 0xFFF;
        }
        Segment {
            base,
            limit,
            selector,
            attr,
        }
    }
}

/// Why a task switch happens (SDM Vol. 3A Table 7-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskSource {
    /// JMP to a TSS or task gate.
    Jmp,
    /// CALL to a TSS or task gate.
    Call,
    /// Interrupt or exception through a task gate.
    Int,
    /// IRET with NT set.
    Iret,
}

/// What kind of event is being delivered through the IDT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// INT n, INT3, INTO: the gate's DPL is checked.
    Software,
    /// An exception raised by the CPU.
    Exception,
    /// A hardware interrupt (and NMI).
    External,
}

fn gp(sel: u16, ext: u32) -> Fault {
    Fault::with_error(vector::GP, u32::from(sel & !3) | ext)
}

impl Cpu {
    /// Reads the descriptor for `sel` from the GDT or LDT; #GP(sel) beyond the table.
    pub(super) fn descriptor<B: Bus>(
        &mut self,
        bus: &mut B,
        sel: u16,
        ext: u32,
    ) -> Exec<Descriptor> {
        let (base, limit) = if sel & 4 != 0 {
            if self.state.ldtr.selector & !3 == 0 {
                return Err(gp(sel, ext));
            }
            (self.state.ldtr.base, self.state.ldtr.limit)
        } else {
            (self.state.gdtr.base, self.state.gdtr.limit)
        };
        let off = u32::from(sel & !7);
        if off + 7 > limit {
            return Err(gp(sel, ext));
        }
        let a = base.wrapping_add(off);
        Ok(Descriptor {
            lo: self.sys_read(bus, a, 4)?,
            hi: self.sys_read(bus, a.wrapping_add(4), 4)?,
        })
    }

    /// Writes the high dword of the descriptor for `sel` (busy and accessed bits).
    fn write_descriptor_hi<B: Bus>(&mut self, bus: &mut B, sel: u16, hi: u32) -> Exec {
        let base = if sel & 4 != 0 {
            self.state.ldtr.base
        } else {
            self.state.gdtr.base
        };
        self.sys_write(bus, base.wrapping_add(u32::from(sel & !7) + 4), 4, hi)
    }

    /// Pushes `vals` (each `size` bytes) below `esp` on stack segment `ss`,
    /// checking the segment limit (#SS(ss) on overflow); returns the new ESP.
    /// `user` selects user-mode paging checks.
    fn push_on<B: Bus>(
        &mut self,
        bus: &mut B,
        ss: &Segment,
        mut esp: u32,
        size: u32,
        vals: &[u32],
        ext: u32,
    ) -> Exec<u32> {
        let stack32 = ss.is_32();
        let user = ss.selector & 3 == 3;
        for &v in vals {
            esp = esp.wrapping_sub(size);
            if !stack32 {
                esp &= 0xFFFF;
            }
            let fault = Fault::with_error(
                vector::SS,
                if ss.selector == self.state.segs[SegReg::Ss as usize].selector {
                    0
                } else {
                    u32::from(ss.selector & !3) | ext
                },
            );
            let expand_down = ss.attr & attr::DC != 0;
            let top = if stack32 { 0xFFFF_FFFF } else { 0xFFFF };
            let ok = if expand_down {
                esp > ss.limit && esp.wrapping_add(size - 1) <= top
            } else {
                esp.wrapping_add(size - 1) <= ss.limit && esp <= ss.limit
            };
            if !ok {
                return Err(fault);
            }
            self.lin_write(bus, ss.base.wrapping_add(esp), size, v, user)?;
        }
        Ok(esp)
    }

    /// Reads a value at `esp + off` on the current stack.
    fn stack_peek<B: Bus>(&mut self, bus: &mut B, off: u32, size: u32) -> Exec<u32> {
        let sp = self.sp();
        self.stack_read(bus, sp, off, size)
    }

    /// The inner-level stack pointer for `dpl` from the current TSS.
    fn tss_stack<B: Bus>(&mut self, bus: &mut B, dpl: u8, ext: u32) -> Exec<(u16, u32)> {
        let tr = self.state.tr;
        let ts = Fault::with_error(vector::TS, u32::from(tr.selector & !3) | ext);
        let tss32 = (tr.attr & 0xF) as u32 & 8 != 0;
        let d = u32::from(dpl);
        if tss32 {
            let off = 4 + d * 8;
            if off + 5 > tr.limit {
                return Err(ts);
            }
            let esp = self.sys_read(bus, tr.base.wrapping_add(off), 4)?;
            let ss = self.sys_read(bus, tr.base.wrapping_add(off + 4), 2)? as u16;
            Ok((ss, esp))
        } else {
            let off = 2 + d * 4;
            if off + 3 > tr.limit {
                return Err(ts);
            }
            let sp = self.sys_read(bus, tr.base.wrapping_add(off), 2)?;
            let ss = self.sys_read(bus, tr.base.wrapping_add(off + 2), 2)? as u16;
            Ok((ss, sp))
        }
    }

    /// Validates a new stack segment for privilege level `cpl` during a
    /// privilege change (#TS on a bad selector, #SS when not present).
    fn check_new_ss<B: Bus>(
        &mut self,
        bus: &mut B,
        ss: u16,
        cpl: u8,
        ext: u32,
    ) -> Exec<(Segment, Descriptor)> {
        let ts = Fault::with_error(vector::TS, u32::from(ss & !3) | ext);
        if ss & !3 == 0 || (ss & 3) as u8 != cpl {
            return Err(ts);
        }
        let d = self.descriptor(bus, ss, ext).map_err(|_| ts)?;
        let writable_data = d.is_code_data() && !d.is_code() && d.hi & (1 << 9) != 0;
        if !writable_data || d.dpl() != cpl {
            return Err(ts);
        }
        if !d.present() {
            return Err(Fault::with_error(vector::SS, u32::from(ss & !3) | ext));
        }
        Ok((d.segment(ss), d))
    }

    /// Switches to the inner stack `ss` after a privilege change pushed its
    /// frame: `esp` is the TSS value, `new_esp` the pointer below the frame.
    fn commit_inner_stack<B: Bus>(
        &mut self,
        bus: &mut B,
        ss_sel: u16,
        ssd: &Descriptor,
        ss: Segment,
        esp: u32,
        new_esp: u32,
    ) {
        self.mark_accessed(bus, ss_sel, ssd);
        self.state.segs[SegReg::Ss as usize] = Segment {
            attr: ss.attr | attr::ACCESSED,
            ..ss
        };
        self.state.regs[reg::ESP] = if ss.is_32() {
            new_esp
        } else {
            (esp & 0xFFFF_0000) | (new_esp & 0xFFFF)
        };
    }

    /// Sets the accessed bit of a descriptor that was just loaded.
    fn mark_accessed<B: Bus>(&mut self, bus: &mut B, sel: u16, d: &Descriptor) {
        if d.is_code_data() && d.hi & (1 << 8) == 0 {
            // A fault here would be a fault on a descriptor table we just read; ignore it.
            let _ = self.write_descriptor_hi(bus, sel, d.hi | (1 << 8));
        }
    }

    /// Delivers interrupt/exception `vec` in protected or virtual-8086 mode
    /// (SDM Vol. 3A §6.12). EIP holds the return address.
    pub(super) fn interrupt_pm<B: Bus>(
        &mut self,
        bus: &mut B,
        vec: u8,
        error: Option<u32>,
        event: Event,
    ) -> Exec {
        let ext = u32::from(event != Event::Software);
        let idt_err = Fault::with_error(vector::GP, u32::from(vec) * 8 + 2 + ext);
        let off = u32::from(vec) * 8;
        if off + 7 > self.state.idtr.limit {
            return Err(idt_err);
        }
        let a = self.state.idtr.base.wrapping_add(off);
        let gate = Descriptor {
            lo: self.sys_read(bus, a, 4)?,
            hi: self.sys_read(bus, a.wrapping_add(4), 4)?,
        };
        let typ = gate.typ();
        if gate.is_code_data() || !matches!(typ, 0x5 | 0x6 | 0x7 | 0xE | 0xF) {
            return Err(idt_err);
        }
        if event == Event::Software && gate.dpl() < self.state.cpl() {
            return Err(Fault::with_error(vector::GP, u32::from(vec) * 8 + 2));
        }
        if !gate.present() {
            return Err(Fault::with_error(vector::NP, u32::from(vec) * 8 + 2 + ext));
        }
        if typ == 0x5 {
            return self.task_switch(bus, gate.gate_selector(), TaskSource::Int, error, ext);
        }
        let gate32 = typ & 8 != 0;
        let size = if gate32 { 4 } else { 2 };
        let sel = gate.gate_selector();
        if sel & !3 == 0 {
            return Err(Fault::with_error(vector::GP, ext));
        }
        let cd = self.descriptor(bus, sel, ext)?;
        let cpl = self.state.cpl();
        if !cd.is_code() || cd.dpl() > cpl {
            return Err(gp(sel, ext));
        }
        if !cd.present() {
            return Err(Fault::with_error(vector::NP, u32::from(sel & !3) | ext));
        }
        let target = gate.gate_offset();
        let mut code = cd.segment((sel & !3) | u16::from(cd.dpl()));
        let vm = self.state.eflags & VM != 0;
        let old_flags = self.state.eflags;
        let old_cs = u32::from(self.state.segs[SegReg::Cs as usize].selector);
        let old_eip = self.state.eip;
        if !cd.conforming() && cd.dpl() < cpl {
            // Inter-privilege: switch to the inner stack from the TSS.
            if vm && cd.dpl() != 0 {
                return Err(gp(sel, ext));
            }
            let new_cpl = cd.dpl();
            let (ss_sel, esp) = self.tss_stack(bus, new_cpl, ext)?;
            let (ss, ssd) = self.check_new_ss(bus, ss_sel, new_cpl, ext)?;
            let old_ss = u32::from(self.state.segs[SegReg::Ss as usize].selector);
            let old_esp = self.state.regs[reg::ESP];
            let mut vals: Vec<u32> = Vec::with_capacity(10);
            if vm {
                for s in [SegReg::Gs, SegReg::Fs, SegReg::Ds, SegReg::Es] {
                    vals.push(u32::from(self.state.segs[s as usize].selector));
                }
            }
            vals.extend([old_ss, old_esp, old_flags, old_cs, old_eip]);
            if let Some(e) = error {
                vals.push(e);
            }
            if !gate32 {
                for v in &mut vals {
                    *v &= 0xFFFF;
                }
            }
            let new_esp = self.push_on(bus, &ss, esp, size, &vals, ext)?;
            if target > code.limit {
                return Err(Fault::with_error(vector::GP, ext));
            }
            // Commit.
            self.mark_accessed(bus, sel, &cd);
            self.commit_inner_stack(bus, ss_sel, &ssd, ss, esp, new_esp);
            if vm {
                for s in [SegReg::Es, SegReg::Ds, SegReg::Fs, SegReg::Gs] {
                    self.state.segs[s as usize] = Segment::default();
                }
            }
        } else if cd.conforming() || cd.dpl() == cpl {
            if vm {
                return Err(gp(sel, ext));
            }
            code.selector = (sel & !3) | u16::from(cpl);
            let mut vals = vec![old_flags, old_cs, old_eip];
            if let Some(e) = error {
                vals.push(e);
            }
            if !gate32 {
                for v in &mut vals {
                    *v &= 0xFFFF;
                }
            }
            let ss = self.state.segs[SegReg::Ss as usize];
            let new_esp = self.push_on(bus, &ss, self.state.regs[reg::ESP], size, &vals, ext)?;
            if target > code.limit {
                return Err(Fault::with_error(vector::GP, ext));
            }
            self.mark_accessed(bus, sel, &cd);
            self.set_sp(new_esp);
        } else {
            return Err(gp(sel, ext));
        }
        self.state.segs[SegReg::Cs as usize] = Segment {
            attr: code.attr | attr::ACCESSED,
            ..code
        };
        self.state.eip = target;
        self.delivered_interrupt = event == Event::Software;
        self.state.eflags &= !(TF | NT | RF | VM);
        if typ & 1 == 0 {
            self.state.eflags &= !IF;
        }
        self.state.halted = false;
        Ok(())
    }

    /// Far JMP or CALL in protected mode (SDM Vol. 2 JMP/CALL).
    pub(super) fn far_transfer_pm<B: Bus>(
        &mut self,
        bus: &mut B,
        sel: u16,
        off: u32,
        op32: bool,
        call: bool,
        next: u32,
    ) -> Exec {
        if sel & !3 == 0 {
            return Err(Fault::GP0);
        }
        let d = self.descriptor(bus, sel, 0)?;
        let cpl = self.state.cpl();
        let rpl = (sel & 3) as u8;
        if d.is_code_data() {
            if !d.is_code() {
                return Err(gp(sel, 0));
            }
            if d.conforming() {
                if d.dpl() > cpl {
                    return Err(gp(sel, 0));
                }
            } else if rpl > cpl || d.dpl() != cpl {
                return Err(gp(sel, 0));
            }
            if !d.present() {
                return Err(Fault::with_error(vector::NP, u32::from(sel & !3)));
            }
            let seg = d.segment((sel & !3) | u16::from(cpl));
            let off = if op32 { off } else { off & 0xFFFF };
            if off > seg.limit {
                return Err(Fault::GP0);
            }
            if call {
                let size = if op32 { 4 } else { 2 };
                let cs = u32::from(self.state.segs[SegReg::Cs as usize].selector);
                let ss = self.state.segs[SegReg::Ss as usize];
                let esp =
                    self.push_on(bus, &ss, self.state.regs[reg::ESP], size, &[cs, next], 0)?;
                self.set_sp(esp);
            }
            self.mark_accessed(bus, sel, &d);
            self.state.segs[SegReg::Cs as usize] = Segment {
                attr: seg.attr | attr::ACCESSED,
                ..seg
            };
            self.state.eip = off;
            return Ok(());
        }
        match d.typ() {
            0x4 | 0xC => self.through_call_gate(bus, sel, d, call, next),
            0x5 => {
                if d.dpl() < cpl || d.dpl() < rpl {
                    return Err(gp(sel, 0));
                }
                if !d.present() {
                    return Err(Fault::with_error(vector::NP, u32::from(sel & !3)));
                }
                let src = if call {
                    TaskSource::Call
                } else {
                    TaskSource::Jmp
                };
                self.state.eip = next;
                self.task_switch(bus, d.gate_selector(), src, None, 0)
            }
            0x1 | 0x9 => {
                if d.dpl() < cpl || d.dpl() < rpl {
                    return Err(gp(sel, 0));
                }
                let src = if call {
                    TaskSource::Call
                } else {
                    TaskSource::Jmp
                };
                self.state.eip = next;
                self.task_switch(bus, sel, src, None, 0)
            }
            _ => Err(gp(sel, 0)),
        }
    }

    fn through_call_gate<B: Bus>(
        &mut self,
        bus: &mut B,
        sel: u16,
        gate: Descriptor,
        call: bool,
        next: u32,
    ) -> Exec {
        let cpl = self.state.cpl();
        let rpl = (sel & 3) as u8;
        if gate.dpl() < cpl || gate.dpl() < rpl {
            return Err(gp(sel, 0));
        }
        if !gate.present() {
            return Err(Fault::with_error(vector::NP, u32::from(sel & !3)));
        }
        let tsel = gate.gate_selector();
        if tsel & !3 == 0 {
            return Err(Fault::GP0);
        }
        let cd = self.descriptor(bus, tsel, 0)?;
        if !cd.is_code() || cd.dpl() > cpl {
            return Err(gp(tsel, 0));
        }
        if !cd.present() {
            return Err(Fault::with_error(vector::NP, u32::from(tsel & !3)));
        }
        let gate32 = gate.typ() == 0xC;
        let size = if gate32 { 4 } else { 2 };
        let target = gate.gate_offset();
        let old_cs = u32::from(self.state.segs[SegReg::Cs as usize].selector);
        if call && !cd.conforming() && cd.dpl() < cpl {
            // More privileged: new stack, copy parameters (SDM Vol. 3A §5.8.5).
            let new_cpl = cd.dpl();
            let (ss_sel, esp) = self.tss_stack(bus, new_cpl, 0)?;
            let (ss, ssd) = self.check_new_ss(bus, ss_sel, new_cpl, 0)?;
            let params = gate.hi & 0x1F;
            let old_ss = u32::from(self.state.segs[SegReg::Ss as usize].selector);
            let old_esp = self.state.regs[reg::ESP];
            let mut vals = vec![old_ss, old_esp];
            for k in (0..params).rev() {
                vals.push(self.stack_peek(bus, k * size, size)?);
            }
            vals.push(old_cs);
            vals.push(next);
            let code = cd.segment((tsel & !3) | u16::from(new_cpl));
            let new_esp = self.push_on(bus, &ss, esp, size, &vals, 0)?;
            if target > code.limit {
                return Err(Fault::GP0);
            }
            self.mark_accessed(bus, tsel, &cd);
            self.commit_inner_stack(bus, ss_sel, &ssd, ss, esp, new_esp);
            self.state.segs[SegReg::Cs as usize] = Segment {
                attr: code.attr | attr::ACCESSED,
                ..code
            };
            self.state.eip = target;
            return Ok(());
        }
        // Same privilege (JMP never changes privilege).
        if !cd.conforming() && cd.dpl() != cpl {
            return Err(gp(tsel, 0));
        }
        let code = cd.segment((tsel & !3) | u16::from(cpl));
        if target > code.limit {
            return Err(Fault::GP0);
        }
        if call {
            let ss = self.state.segs[SegReg::Ss as usize];
            let esp = self.push_on(
                bus,
                &ss,
                self.state.regs[reg::ESP],
                size,
                &[old_cs, next],
                0,
            )?;
            self.set_sp(esp);
        }
        self.mark_accessed(bus, tsel, &cd);
        self.state.segs[SegReg::Cs as usize] = Segment {
            attr: code.attr | attr::ACCESSED,
            ..code
        };
        self.state.eip = target;
        Ok(())
    }

    /// After a return to an outer level, data segment registers the new CPL
    /// may not use are nulled (SDM Vol. 2 RET, IRET).
    fn null_inaccessible_segments(&mut self) {
        let cpl = self.state.cpl();
        for s in [SegReg::Es, SegReg::Ds, SegReg::Fs, SegReg::Gs] {
            let seg = self.state.segs[s as usize];
            let data_or_nc = seg.attr & attr::CODE == 0 || seg.attr & attr::DC == 0;
            if seg.selector & !3 != 0 && data_or_nc && seg.dpl() < cpl {
                self.state.segs[s as usize] = Segment::default();
            } else if seg.selector & !3 == 0 {
                self.state.segs[s as usize] = Segment {
                    selector: seg.selector,
                    ..Segment::default()
                };
            }
        }
    }

    /// Validates the code segment a RET/IRET returns to.
    fn return_code_segment<B: Bus>(
        &mut self,
        bus: &mut B,
        sel: u16,
    ) -> Exec<(Segment, Descriptor)> {
        if sel & !3 == 0 {
            return Err(Fault::GP0);
        }
        let cpl = self.state.cpl();
        let rpl = (sel & 3) as u8;
        if rpl < cpl {
            return Err(gp(sel, 0));
        }
        let d = self.descriptor(bus, sel, 0)?;
        if !d.is_code() || (d.conforming() && d.dpl() > rpl) || (!d.conforming() && d.dpl() != rpl)
        {
            return Err(gp(sel, 0));
        }
        if !d.present() {
            return Err(Fault::with_error(vector::NP, u32::from(sel & !3)));
        }
        Ok((d.segment(sel), d))
    }

    /// Far RET in protected mode, with `imm` bytes of parameters to release.
    pub(super) fn retf_pm<B: Bus>(&mut self, bus: &mut B, op32: bool, imm: u32) -> Exec {
        let size = if op32 { 4 } else { 2 };
        let off = self.stack_peek(bus, 0, size)?;
        let sel = self.stack_peek(bus, size, 2)? as u16;
        let (code, cd) = self.return_code_segment(bus, sel)?;
        let off = if op32 { off } else { off & 0xFFFF };
        if off > code.limit {
            return Err(Fault::GP0);
        }
        let cpl = self.state.cpl();
        if (sel & 3) as u8 > cpl {
            let esp = self.stack_peek(bus, 2 * size + imm, size)?;
            let ss_sel = self.stack_peek(bus, 3 * size + imm, 2)? as u16;
            let (ss, ssd) = self
                .check_new_ss(bus, ss_sel, (sel & 3) as u8, 0)
                .map_err(|f| {
                    if f.vector == vector::TS {
                        gp(ss_sel, 0)
                    } else {
                        f
                    }
                })?;
            self.mark_accessed(bus, sel, &cd);
            self.mark_accessed(bus, ss_sel, &ssd);
            self.state.segs[SegReg::Cs as usize] = Segment {
                attr: code.attr | attr::ACCESSED,
                ..code
            };
            self.state.segs[SegReg::Ss as usize] = Segment {
                attr: ss.attr | attr::ACCESSED,
                ..ss
            };
            let esp = esp.wrapping_add(imm);
            if ss.is_32() {
                self.state.regs[reg::ESP] = esp;
            } else {
                self.set_reg(reg::ESP as u8, 2, esp);
            }
            self.state.eip = off;
            self.null_inaccessible_segments();
            return Ok(());
        }
        self.mark_accessed(bus, sel, &cd);
        self.state.segs[SegReg::Cs as usize] = Segment {
            attr: code.attr | attr::ACCESSED,
            ..code
        };
        self.state.eip = off;
        let sp = self.sp();
        self.set_sp(self.sp_add(sp, (2 * size + imm) as i32));
        Ok(())
    }

    /// IRET in protected mode (SDM Vol. 2 IRET, "PROTECTED-MODE").
    pub(super) fn iret_pm<B: Bus>(&mut self, bus: &mut B, op32: bool) -> Exec {
        if self.state.eflags & NT != 0 {
            let tr = self.state.tr;
            let link = self.sys_read(bus, tr.base, 2)? as u16;
            return self.task_switch(bus, link, TaskSource::Iret, None, 0);
        }
        let size = if op32 { 4 } else { 2 };
        let eip = self.stack_peek(bus, 0, size)?;
        let sel = self.stack_peek(bus, size, 2)? as u16;
        let fl = self.stack_peek(bus, 2 * size, size)?;
        let cpl = self.state.cpl();
        if op32 && fl & VM != 0 && cpl == 0 {
            // Return to virtual-8086 mode.
            let esp = self.stack_peek(bus, 12, 4)?;
            let ss = self.stack_peek(bus, 16, 4)? as u16;
            let es = self.stack_peek(bus, 20, 4)? as u16;
            let ds = self.stack_peek(bus, 24, 4)? as u16;
            let fs = self.stack_peek(bus, 28, 4)? as u16;
            let gs = self.stack_peek(bus, 32, 4)? as u16;
            self.state.eflags = self.fix_flags(fl) | VM;
            for (s, v) in [
                (SegReg::Cs, sel),
                (SegReg::Ss, ss),
                (SegReg::Es, es),
                (SegReg::Ds, ds),
                (SegReg::Fs, fs),
                (SegReg::Gs, gs),
            ] {
                self.state.segs[s as usize] = Segment::real(
                    v,
                    if s == SegReg::Cs {
                        attr::REAL_CODE
                    } else {
                        attr::REAL_DATA
                    } | (3 << 5),
                );
            }
            self.state.regs[reg::ESP] = esp;
            self.state.eip = eip & 0xFFFF;
            return Ok(());
        }
        let (code, cd) = self.return_code_segment(bus, sel)?;
        let eip = if op32 { eip } else { eip & 0xFFFF };
        if eip > code.limit {
            return Err(Fault::GP0);
        }
        let rpl = (sel & 3) as u8;
        let outer = if rpl > cpl {
            let esp = self.stack_peek(bus, 3 * size, size)?;
            let ss_sel = self.stack_peek(bus, 4 * size, 2)? as u16;
            let (ss, ssd) = self.check_new_ss(bus, ss_sel, rpl, 0).map_err(|f| {
                if f.vector == vector::TS {
                    gp(ss_sel, 0)
                } else {
                    f
                }
            })?;
            Some((esp, ss_sel, ss, ssd))
        } else {
            None
        };
        // Flags are merged under the privilege rules of the *current* CPL.
        self.write_flags(fl, size, true);
        self.mark_accessed(bus, sel, &cd);
        self.state.segs[SegReg::Cs as usize] = Segment {
            attr: code.attr | attr::ACCESSED,
            ..code
        };
        self.state.eip = eip;
        match outer {
            Some((esp, ss_sel, ss, ssd)) => {
                self.mark_accessed(bus, ss_sel, &ssd);
                self.state.segs[SegReg::Ss as usize] = Segment {
                    attr: ss.attr | attr::ACCESSED,
                    ..ss
                };
                if ss.is_32() {
                    self.state.regs[reg::ESP] = esp;
                } else {
                    self.set_reg(reg::ESP as u8, 2, esp);
                }
                self.null_inaccessible_segments();
            }
            None => {
                let sp = self.sp();
                self.set_sp(self.sp_add(sp, (3 * size) as i32));
            }
        }
        Ok(())
    }

    /// Hardware task switch to the TSS selected by `sel` (SDM Vol. 3A §7.3).
    /// EIP holds the address the old task resumes at.
    pub(super) fn task_switch<B: Bus>(
        &mut self,
        bus: &mut B,
        sel: u16,
        src: TaskSource,
        error: Option<u32>,
        ext: u32,
    ) -> Exec {
        let ts = |s: u16| Fault::with_error(vector::TS, u32::from(s & !3) | ext);
        if sel & 4 != 0 {
            return Err(if src == TaskSource::Iret {
                ts(sel)
            } else {
                gp(sel, ext)
            });
        }
        let nd = self.descriptor(bus, sel, ext)?;
        let typ = nd.typ();
        let busy = typ & 2 != 0;
        if nd.is_code_data() || !matches!(typ, 0x1 | 0x3 | 0x9 | 0xB) {
            return Err(if src == TaskSource::Iret {
                ts(sel)
            } else {
                gp(sel, ext)
            });
        }
        if src == TaskSource::Iret && !busy {
            return Err(ts(sel));
        }
        if src != TaskSource::Iret && busy {
            return Err(gp(sel, ext));
        }
        if !nd.present() {
            return Err(Fault::with_error(vector::NP, u32::from(sel & !3) | ext));
        }
        let new = nd.segment(sel);
        let new32 = typ & 8 != 0;
        if new.limit < if new32 { 0x67 } else { 0x2B } {
            return Err(ts(sel));
        }
        // Save the outgoing task.
        let old = self.state.tr;
        let old32 = old.attr & 8 != 0;
        let mut old_flags = self.state.eflags;
        if src == TaskSource::Iret {
            old_flags &= !NT;
        }
        let segs: Vec<u32> = SegReg::ALL
            .iter()
            .map(|&s| u32::from(self.state.segs[s as usize].selector))
            .collect();
        if old32 {
            self.sys_write(bus, old.base + 0x20, 4, self.state.eip)?;
            self.sys_write(bus, old.base + 0x24, 4, old_flags)?;
            for r in 0..8 {
                self.sys_write(bus, old.base + 0x28 + 4 * r as u32, 4, self.state.regs[r])?;
            }
            for (k, v) in segs.iter().enumerate() {
                self.sys_write(bus, old.base + 0x48 + 4 * k as u32, 2, *v)?;
            }
        } else {
            self.sys_write(bus, old.base + 0x0E, 2, self.state.eip)?;
            self.sys_write(bus, old.base + 0x10, 2, old_flags)?;
            for r in 0..8 {
                self.sys_write(bus, old.base + 0x12 + 2 * r as u32, 2, self.state.regs[r])?;
            }
            for (k, v) in segs.iter().take(4).enumerate() {
                self.sys_write(bus, old.base + 0x22 + 2 * k as u32, 2, *v)?;
            }
        }
        // Read the incoming task.
        let b = new.base;
        let (eip, mut eflags, regs, sels, ldt, cr3) = if new32 {
            let mut regs = [0u32; 8];
            for (r, v) in regs.iter_mut().enumerate() {
                *v = self.sys_read(bus, b + 0x28 + 4 * r as u32, 4)?;
            }
            let mut sels = [0u16; 6];
            for (k, v) in sels.iter_mut().enumerate() {
                *v = self.sys_read(bus, b + 0x48 + 4 * k as u32, 2)? as u16;
            }
            (
                self.sys_read(bus, b + 0x20, 4)?,
                self.sys_read(bus, b + 0x24, 4)?,
                regs,
                sels,
                self.sys_read(bus, b + 0x60, 2)? as u16,
                Some(self.sys_read(bus, b + 0x1C, 4)?),
            )
        } else {
            let mut regs = [0u32; 8];
            for (r, v) in regs.iter_mut().enumerate() {
                *v = 0xFFFF_0000 | self.sys_read(bus, b + 0x12 + 2 * r as u32, 2)?;
            }
            let mut sels = [0u16; 6];
            for (k, v) in sels.iter_mut().take(4).enumerate() {
                *v = self.sys_read(bus, b + 0x22 + 2 * k as u32, 2)? as u16;
            }
            (
                self.sys_read(bus, b + 0x0E, 2)?,
                0xFFFF_0000 | self.sys_read(bus, b + 0x10, 2)?,
                regs,
                sels,
                self.sys_read(bus, b + 0x2A, 2)? as u16,
                None,
            )
        };
        let t_bit = if new32 {
            self.sys_read(bus, b + 0x64, 2)? & 1 != 0
        } else {
            false
        };
        // Busy bits and the back link.
        if matches!(src, TaskSource::Jmp | TaskSource::Iret) {
            let od = self.descriptor(bus, old.selector, ext)?;
            self.write_descriptor_hi(bus, old.selector, od.hi & !(2 << 8))?;
        }
        if src != TaskSource::Iret {
            self.write_descriptor_hi(bus, sel, nd.hi | (2 << 8))?;
        }
        if matches!(src, TaskSource::Call | TaskSource::Int) {
            self.sys_write(bus, b, 2, u32::from(old.selector))?;
            eflags |= NT;
        }
        // Switch: from here on, faults belong to the new task.
        self.state.tr = Segment {
            attr: new.attr | 2,
            ..new
        };
        self.state.cr0 |= 8; // TS
        if let Some(cr3) = cr3 {
            if self.paging() {
                let old = self.state.cr3;
                self.state.cr3 = cr3;
                self.switch_address_space(old);
            }
        }
        if !new32 {
            eflags &= 0xFFFF;
        }
        self.state.eflags = self.fix_flags(eflags);
        self.state.eip = if new32 { eip } else { eip & 0xFFFF };
        // A 16-bit TSS holds no upper register halves; they read as zero here.
        self.state.regs = if new32 {
            regs
        } else {
            regs.map(|r| r & 0xFFFF)
        };
        // Selectors first (as the CPU does), then descriptors with checks.
        for (k, s) in SegReg::ALL.iter().enumerate() {
            self.state.segs[*s as usize].selector = sels[k];
        }
        self.state.ldtr.selector = ldt;
        self.load_task_segments(bus, sels, ldt, ext)?;
        if let Some(e) = error {
            let size = if new32 { 4 } else { 2 };
            let ss = self.state.segs[SegReg::Ss as usize];
            let esp = self.push_on(bus, &ss, self.state.regs[reg::ESP], size, &[e], ext)?;
            self.set_sp(esp);
        }
        let cs_limit = self.state.segs[SegReg::Cs as usize].limit;
        if self.state.eip > cs_limit {
            return Err(Fault::with_error(vector::GP, ext));
        }
        if t_bit {
            self.pending_debug_trap |= 1 << 15; // DR6.BT
        }
        Ok(())
    }

    fn load_task_segments<B: Bus>(
        &mut self,
        bus: &mut B,
        sels: [u16; 6],
        ldt: u16,
        ext: u32,
    ) -> Exec {
        let ts = |s: u16| Fault::with_error(vector::TS, u32::from(s & !3) | ext);
        // LDT.
        if ldt & !3 == 0 {
            self.state.ldtr = Segment {
                selector: ldt,
                ..Segment::default()
            };
        } else {
            if ldt & 4 != 0 {
                return Err(ts(ldt));
            }
            let d = self.descriptor(bus, ldt, ext).map_err(|_| ts(ldt))?;
            if d.is_code_data() || d.typ() != 2 {
                return Err(ts(ldt));
            }
            if !d.present() {
                return Err(ts(ldt));
            }
            self.state.ldtr = d.segment(ldt);
        }
        if self.state.eflags & VM != 0 {
            for (k, s) in SegReg::ALL.iter().enumerate() {
                let a = if *s == SegReg::Cs {
                    attr::REAL_CODE
                } else {
                    attr::REAL_DATA
                };
                self.state.segs[*s as usize] = Segment::real(sels[k], a | (3 << 5));
            }
            return Ok(());
        }
        // CS determines the new CPL.
        let cs = sels[SegReg::Cs as usize];
        if cs & !3 == 0 {
            return Err(ts(cs));
        }
        let cd = self.descriptor(bus, cs, ext).map_err(|_| ts(cs))?;
        let rpl = (cs & 3) as u8;
        if !cd.is_code()
            || (!cd.conforming() && cd.dpl() != rpl)
            || (cd.conforming() && cd.dpl() > rpl)
        {
            return Err(ts(cs));
        }
        if !cd.present() {
            return Err(Fault::with_error(vector::NP, u32::from(cs & !3) | ext));
        }
        self.state.segs[SegReg::Cs as usize] = cd.segment(cs);
        let cpl = rpl;
        let ss = sels[SegReg::Ss as usize];
        let (sseg, _) = self.check_new_ss(bus, ss, cpl, ext)?;
        self.state.segs[SegReg::Ss as usize] = sseg;
        for s in [SegReg::Es, SegReg::Ds, SegReg::Fs, SegReg::Gs] {
            let v = sels[s as usize];
            if v & !3 == 0 {
                self.state.segs[s as usize] = Segment {
                    selector: v,
                    ..Segment::default()
                };
                continue;
            }
            let d = self.descriptor(bus, v, ext).map_err(|_| ts(v))?;
            let readable = d.is_code_data() && (!d.is_code() || d.hi & (1 << 9) != 0);
            let rpl = (v & 3) as u8;
            if !readable || (!d.conforming() && (d.dpl() < cpl || d.dpl() < rpl)) {
                return Err(ts(v));
            }
            if !d.present() {
                return Err(Fault::with_error(vector::NP, u32::from(v & !3) | ext));
            }
            self.state.segs[s as usize] = d.segment(v);
        }
        Ok(())
    }

    /// I/O permission check: CPL <= IOPL passes (outside V86); otherwise every
    /// bit for `port..port+size` in the TSS I/O bitmap must be clear.
    pub(super) fn io_allowed<B: Bus>(&mut self, bus: &mut B, port: u16, size: u32) -> Exec {
        if !self.state.protected_mode() {
            return Ok(());
        }
        let vm = self.state.eflags & VM != 0;
        if !vm && u32::from(self.state.cpl()) <= self.iopl() {
            return Ok(());
        }
        let tr = self.state.tr;
        if tr.attr & 8 == 0 || tr.limit < 0x67 {
            return Err(Fault::GP0);
        }
        let base = self.sys_read(bus, tr.base + 0x66, 2)?;
        let byte = base + u32::from(port) / 8;
        if byte + 1 > tr.limit {
            return Err(Fault::GP0);
        }
        let bits = self.sys_read(bus, tr.base + byte, 2)?;
        let mask = ((1u32 << size) - 1) << (port & 7);
        if bits & mask != 0 {
            return Err(Fault::GP0);
        }
        Ok(())
    }

    /// SYSENTER (SDM Vol. 2).
    pub(super) fn sysenter(&mut self) -> Exec {
        let cs = self.state.sysenter_cs as u16;
        if !self.state.protected_mode() || cs & 0xFFFC == 0 {
            return Err(Fault::GP0);
        }
        self.state.eflags &= !(VM | IF | RF);
        self.state.segs[SegReg::Cs as usize] = Segment {
            base: 0,
            limit: 0xFFFF_FFFF,
            selector: cs & 0xFFFC,
            attr: attr::REAL_CODE | attr::DB | attr::G,
        };
        self.state.segs[SegReg::Ss as usize] = Segment {
            base: 0,
            limit: 0xFFFF_FFFF,
            selector: (cs & 0xFFFC) + 8,
            attr: attr::REAL_DATA | attr::DB | attr::G,
        };
        self.state.regs[reg::ESP] = self.state.sysenter_esp;
        self.state.eip = self.state.sysenter_eip;
        Ok(())
    }

    /// SYSEXIT (SDM Vol. 2).
    pub(super) fn sysexit(&mut self) -> Exec {
        let cs = self.state.sysenter_cs as u16;
        if !self.state.protected_mode() || cs & 0xFFFC == 0 || self.state.cpl() != 0 {
            return Err(Fault::GP0);
        }
        let dpl3 = 3 << 5;
        self.state.segs[SegReg::Cs as usize] = Segment {
            base: 0,
            limit: 0xFFFF_FFFF,
            selector: ((cs & 0xFFFC) + 16) | 3,
            attr: attr::REAL_CODE | attr::DB | attr::G | dpl3,
        };
        self.state.segs[SegReg::Ss as usize] = Segment {
            base: 0,
            limit: 0xFFFF_FFFF,
            selector: ((cs & 0xFFFC) + 24) | 3,
            attr: attr::REAL_DATA | attr::DB | attr::G | dpl3,
        };
        self.state.regs[reg::ESP] = self.state.regs[reg::ECX];
        self.state.eip = self.state.regs[reg::EDX];
        Ok(())
    }

    /// True when virtual-8086 mode extensions apply (V86 with CR4.VME).
    pub(super) fn vme(&self) -> bool {
        self.state.eflags & VM != 0 && self.state.cr4 & 1 != 0
    }

    /// True when protected-mode virtual interrupts apply (CPL 3, CR4.PVI).
    pub(super) fn pvi(&self) -> bool {
        self.state.protected_mode()
            && self.state.eflags & VM == 0
            && self.state.cpl() == 3
            && self.state.cr4 & 2 != 0
    }

    /// Constants for other modules.
    pub(super) const VIF: u32 = VIF;
    /// VIP.
    pub(super) const VIP: u32 = VIP;
    /// VM.
    pub(super) const VM: u32 = VM;
    /// RF.
    pub(super) const RF: u32 = RF;
    /// IOPL field.
    pub(super) const IOPL_MASK: u32 = flags::IOPL;
}
