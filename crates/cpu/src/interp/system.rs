//! System instructions: segment loads, control registers, CPUID, MSRs.

use super::operand::gpr;
use super::Cpu;
use crate::bus::Bus;
use crate::decode::Decoded;
use crate::fault::{vector, Exec, Fault};
use crate::model::CpuModel;
use crate::state::{attr, reg, SegReg, Segment};
use iced_x86::{Mnemonic, OpKind, Register};

/// CPUID leaf 1 EDX: exactly the features implemented so far.
/// TSC (4), MSR (5), CX8 (8), CMOV (15).
pub const CPUID_FEATURES_EDX: u32 = (1 << 4) | (1 << 5) | (1 << 8) | (1 << 15);
/// CPUID leaf 1 EAX: family 6, model 1, stepping 9 (a Pentium Pro).
pub const CPUID_SIGNATURE: u32 = 0x0000_0619;

/// MSR numbers the CPU implements.
pub mod msr {
    /// IA32_TIME_STAMP_COUNTER.
    pub const TSC: u32 = 0x10;
    /// IA32_SYSENTER_CS.
    pub const SYSENTER_CS: u32 = 0x174;
    /// IA32_SYSENTER_ESP.
    pub const SYSENTER_ESP: u32 = 0x175;
    /// IA32_SYSENTER_EIP.
    pub const SYSENTER_EIP: u32 = 0x176;
}

impl Cpu {
    /// Reads the 8-byte descriptor for `sel` from the GDT or LDT.
    fn read_descriptor<B: Bus>(&mut self, bus: &mut B, sel: u16) -> Exec<(u32, u32)> {
        let table = if sel & 4 != 0 {
            let l = self.state.ldtr;
            (l.base, l.limit)
        } else {
            (self.state.gdtr.base, self.state.gdtr.limit)
        };
        let off = u32::from(sel & !7);
        if off + 7 > table.1 {
            return Err(Fault::with_error(vector::GP, u32::from(sel & !3)));
        }
        let a = table.0.wrapping_add(off);
        let lo = self.sys_read(bus, a, 4)?;
        let hi = self.sys_read(bus, a.wrapping_add(4), 4)?;
        Ok((lo, hi))
    }

    /// Builds a segment cache from descriptor words.
    fn segment_from(sel: u16, lo: u32, hi: u32) -> Segment {
        let base = (lo >> 16) | ((hi & 0xFF) << 16) | (hi & 0xFF00_0000);
        let mut limit = (lo & 0xFFFF) | (hi & 0x000F_0000);
        let attr = ((hi >> 8) & 0xF0FF) as u16;
        if attr & attr::G != 0 {
            limit = (limit << 12) | 0xFFF;
        }
        Segment {
            base,
            limit,
            selector: sel,
            attr,
        }
    }

    /// Loads a data or stack segment register (MOV/POP Sreg, LDS...).
    pub(super) fn load_segment<B: Bus>(&mut self, bus: &mut B, s: SegReg, sel: u16) -> Exec {
        if !self.state.protected_mode() || self.state.eflags & 0x0002_0000 != 0 {
            self.state.load_seg_real(s, sel);
            return Ok(());
        }
        if s == SegReg::Cs {
            return self.load_code_segment(bus, sel);
        }
        let err = Fault::with_error(vector::GP, u32::from(sel & !3));
        if sel & !3 == 0 {
            if s == SegReg::Ss {
                return Err(err);
            }
            // A null selector loads; using it faults later.
            self.state.segs[s as usize] = Segment {
                selector: sel,
                ..Segment::default()
            };
            return Ok(());
        }
        let (lo, hi) = self.read_descriptor(bus, sel)?;
        let seg = Self::segment_from(sel, lo, hi);
        let cpl = self.state.cpl();
        let rpl = (sel & 3) as u8;
        let dpl = seg.dpl();
        let a = seg.attr;
        if a & attr::S == 0 {
            return Err(err);
        }
        if s == SegReg::Ss {
            let writable_data = a & attr::CODE == 0 && a & attr::RW != 0;
            if !writable_data || rpl != cpl || dpl != cpl {
                return Err(err);
            }
            if a & attr::PRESENT == 0 {
                return Err(Fault::with_error(vector::SS, u32::from(sel & !3)));
            }
        } else {
            let readable = a & attr::CODE == 0 || a & attr::RW != 0;
            let conforming_code = a & attr::CODE != 0 && a & attr::DC != 0;
            if !readable || (!conforming_code && (rpl > dpl || cpl > dpl)) {
                return Err(err);
            }
            if a & attr::PRESENT == 0 {
                return Err(Fault::with_error(vector::NP, u32::from(sel & !3)));
            }
        }
        self.set_accessed(bus, sel, hi);
        self.state.segs[s as usize] = Segment {
            attr: a | attr::ACCESSED,
            ..seg
        };
        Ok(())
    }

    fn set_accessed<B: Bus>(&mut self, bus: &mut B, sel: u16, hi: u32) {
        if hi & (1 << 8) == 0 {
            let base = if sel & 4 != 0 {
                self.state.ldtr.base
            } else {
                self.state.gdtr.base
            };
            // A fault setting the accessed bit is ignored here; the load itself succeeded.
            let _ = self.sys_write(bus, base.wrapping_add(u32::from(sel & !7) + 5), 1, ((hi >> 8) & 0xFF) | 1);
        }
    }

    /// Loads CS for a far JMP/CALL/RET to a code segment at the same privilege.
    /// Gates and privilege changes come with the protected-mode work.
    pub(super) fn load_code_segment<B: Bus>(&mut self, bus: &mut B, sel: u16) -> Exec {
        let err = Fault::with_error(vector::GP, u32::from(sel & !3));
        if sel & !3 == 0 {
            return Err(Fault::GP0);
        }
        let (lo, hi) = self.read_descriptor(bus, sel)?;
        let seg = Self::segment_from(sel, lo, hi);
        let a = seg.attr;
        if a & attr::S == 0 || a & attr::CODE == 0 {
            return Err(err);
        }
        let cpl = self.state.cpl();
        let conforming = a & attr::DC != 0;
        if (conforming && seg.dpl() > cpl)
            || (!conforming && (seg.dpl() != cpl || (sel & 3) as u8 > cpl))
        {
            return Err(err);
        }
        if a & attr::PRESENT == 0 {
            return Err(Fault::with_error(vector::NP, u32::from(sel & !3)));
        }
        self.set_accessed(bus, sel, hi);
        let sel = (sel & !3) | u16::from(cpl);
        self.state.segs[SegReg::Cs as usize] = Segment {
            selector: sel,
            attr: a | attr::ACCESSED,
            ..seg
        };
        Ok(())
    }

    fn require_cpl0(&self) -> Exec {
        if self.state.cpl() != 0 {
            return Err(Fault::GP0);
        }
        Ok(())
    }

    /// MOV to or from CRn / DRn.
    pub(super) fn mov_system<B: Bus>(&mut self, _bus: &mut B, d: &Decoded) -> Exec {
        if !self.model.is_386_plus() {
            return Err(Fault::UD);
        }
        self.require_cpl0()?;
        let i = &d.insn;
        let (r0, r1) = (i.op0_register(), i.op1_register());
        let cr0 = Register::CR0 as u32;
        let dr0 = Register::DR0 as u32;
        if let Some((idx, _)) = gpr(r0) {
            // MOV r32, CRn / DRn
            let v = r1 as u32;
            let val = if (cr0..cr0 + 16).contains(&v) {
                match v - cr0 {
                    0 => self.state.cr0,
                    2 => self.state.cr2,
                    3 => self.state.cr3,
                    4 => self.state.cr4,
                    _ => return Err(Fault::UD),
                }
            } else if (dr0..dr0 + 16).contains(&v) {
                match v - dr0 {
                    n @ 0..=3 => self.state.dr[n as usize],
                    4 | 6 => self.state.dr[6],
                    5 | 7 => self.state.dr[7],
                    _ => return Err(Fault::UD),
                }
            } else {
                return Err(Fault::UD);
            };
            self.state.regs[idx as usize] = val;
            return Ok(());
        }
        let src = gpr(r1).map_or(0, |(idx, _)| self.state.regs[idx as usize]);
        let v = r0 as u32;
        if (cr0..cr0 + 16).contains(&v) {
            match v - cr0 {
                0 => {
                    if src & 0x8000_0000 != 0 && src & 1 == 0 {
                        return Err(Fault::GP0);
                    }
                    if src & 0x8000_0000 != 0 {
                        // Paging is not modelled yet: refuse rather than run
                        // with wrong translations.
                        return Err(Fault::GP0);
                    }
                    self.state.cr0 = src | 0x10;
                    self.cache_flush_on_mode_change();
                }
                2 => self.state.cr2 = src,
                3 => self.state.cr3 = src,
                4 => {
                    if src & !0x0000_0001 != 0 {
                        // Only VME-less, PSE-less CR4 = 0 is supported for now.
                        return Err(Fault::GP0);
                    }
                    self.state.cr4 = src;
                }
                _ => return Err(Fault::UD),
            }
        } else if (dr0..dr0 + 16).contains(&v) {
            match v - dr0 {
                n @ 0..=3 => self.state.dr[n as usize] = src,
                4 | 6 => self.state.dr[6] = (src & 0x0000_E00F) | 0xFFFF_0FF0,
                5 | 7 => self.state.dr[7] = (src & 0xFFFF_2BFF) | 0x400,
                _ => return Err(Fault::UD),
            }
        } else {
            return Err(Fault::UD);
        }
        Ok(())
    }

    fn cache_flush_on_mode_change(&mut self) {
        self.flush_decode_cache();
    }

    /// Instructions not handled by the main dispatch.
    pub(super) fn exec_system<B: Bus>(&mut self, bus: &mut B, d: &Decoded) -> Exec {
        let i = &d.insn;
        let p6 = self.model.is_386_plus();
        match i.mnemonic() {
            Mnemonic::Cpuid if p6 => {
                let leaf = self.state.regs[reg::EAX];
                let (a, b, c, dx) = match leaf {
                    0 => (
                        1,
                        u32::from_le_bytes(*b"Genu"),
                        u32::from_le_bytes(*b"ntel"),
                        u32::from_le_bytes(*b"ineI"),
                    ),
                    _ => (CPUID_SIGNATURE, 0, 0, CPUID_FEATURES_EDX),
                };
                self.state.regs[reg::EAX] = a;
                self.state.regs[reg::EBX] = b;
                self.state.regs[reg::ECX] = c;
                self.state.regs[reg::EDX] = dx;
                Ok(())
            }
            Mnemonic::Rdtsc if p6 => {
                if self.state.cr4 & 4 != 0 && self.state.cpl() != 0 {
                    return Err(Fault::GP0);
                }
                let t = self.tsc();
                self.state.regs[reg::EAX] = t as u32;
                self.state.regs[reg::EDX] = (t >> 32) as u32;
                Ok(())
            }
            Mnemonic::Rdmsr if p6 => {
                self.require_cpl0()?;
                let v: u64 = match self.state.regs[reg::ECX] {
                    msr::TSC => self.tsc(),
                    msr::SYSENTER_CS => u64::from(self.state.sysenter_cs),
                    msr::SYSENTER_ESP => u64::from(self.state.sysenter_esp),
                    msr::SYSENTER_EIP => u64::from(self.state.sysenter_eip),
                    _ => return Err(Fault::GP0),
                };
                self.state.regs[reg::EAX] = v as u32;
                self.state.regs[reg::EDX] = (v >> 32) as u32;
                Ok(())
            }
            Mnemonic::Wrmsr if p6 => {
                self.require_cpl0()?;
                let v = (u64::from(self.state.regs[reg::EDX]) << 32)
                    | u64::from(self.state.regs[reg::EAX]);
                match self.state.regs[reg::ECX] {
                    msr::TSC => self.state.tsc = v.wrapping_sub(self.icount),
                    msr::SYSENTER_CS => self.state.sysenter_cs = v as u32,
                    msr::SYSENTER_ESP => self.state.sysenter_esp = v as u32,
                    msr::SYSENTER_EIP => self.state.sysenter_eip = v as u32,
                    _ => return Err(Fault::GP0),
                }
                Ok(())
            }
            Mnemonic::Lgdt | Mnemonic::Lidt => {
                self.require_cpl0()?;
                if i.op_kind(0) != OpKind::Memory {
                    return Err(Fault::UD);
                }
                let seg = Self::mem_seg(d);
                let ea = self.effective_address(d);
                let limit = self.read_mem(bus, seg, ea, 2)?;
                let base = self.read_mem(bus, seg, ea.wrapping_add(2), 4)?;
                // A 16-bit operand (and the 80286) keeps 24 bits of base.
                let base = if d.op32 { base } else { base & 0x00FF_FFFF };
                let t = if i.mnemonic() == Mnemonic::Lgdt {
                    &mut self.state.gdtr
                } else {
                    &mut self.state.idtr
                };
                t.base = base;
                t.limit = limit;
                Ok(())
            }
            Mnemonic::Sgdt | Mnemonic::Sidt => {
                if i.op_kind(0) != OpKind::Memory {
                    return Err(Fault::UD);
                }
                let t = if i.mnemonic() == Mnemonic::Sgdt {
                    self.state.gdtr
                } else {
                    self.state.idtr
                };
                let seg = Self::mem_seg(d);
                let ea = self.effective_address(d);
                // The 80286 stores 0xFF in the base's unused top byte.
                let base = match self.model {
                    CpuModel::I80286 => t.base | 0xFF00_0000,
                    _ if !d.op32 => t.base & 0x00FF_FFFF,
                    _ => t.base,
                };
                self.write_mem(bus, seg, ea, 2, t.limit)?;
                self.write_mem(bus, seg, ea.wrapping_add(2), 4, base)
            }
            Mnemonic::Smsw => {
                let loc = self.loc(d, 0);
                let size = Self::op_size(d, 0);
                // The 80286 reads its reserved MSW bits as ones.
                let v = if self.model == CpuModel::I80286 {
                    self.state.cr0 | 0xFFF0
                } else {
                    self.state.cr0
                };
                let size = if matches!(loc, super::Loc::Mem(..)) {
                    2
                } else {
                    size
                };
                self.write_loc(bus, loc, size, v)
            }
            Mnemonic::Lmsw => {
                self.require_cpl0()?;
                let v = {
                    let loc = self.loc(d, 0);
                    self.read_loc(bus, loc, 2)?
                };
                // LMSW can set PE but never clear it; it touches only PE/MP/EM/TS.
                let pe = (self.state.cr0 | v) & 1;
                self.state.cr0 = (self.state.cr0 & !0xF) | (v & 0xE) | pe;
                Ok(())
            }
            Mnemonic::Clts => {
                self.require_cpl0()?;
                self.state.cr0 &= !8;
                Ok(())
            }
            Mnemonic::Invd | Mnemonic::Wbinvd if p6 => self.require_cpl0(),
            Mnemonic::Invlpg if p6 => {
                self.require_cpl0()?;
                if i.op_kind(0) != OpKind::Memory {
                    return Err(Fault::UD);
                }
                Ok(())
            }
            Mnemonic::Sldt
            | Mnemonic::Str
            | Mnemonic::Lldt
            | Mnemonic::Ltr
            | Mnemonic::Lar
            | Mnemonic::Lsl
            | Mnemonic::Verr
            | Mnemonic::Verw
            | Mnemonic::Arpl
                if !self.state.protected_mode() =>
            {
                // Not recognised in real mode.
                Err(Fault::UD)
            }
            _ => Err(Fault::UD),
        }
    }

    /// The time-stamp counter: instructions retired plus the software offset.
    fn tsc(&self) -> u64 {
        self.state.tsc.wrapping_add(self.icount)
    }
}
