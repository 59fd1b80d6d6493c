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
/// FPU (0), VME (1), DE (2), PSE (3), TSC (4), MSR (5), CX8 (8), SEP (11), PGE (13),
/// CMOV (15), FXSR (24).
pub const CPUID_FEATURES_EDX: u32 = 1
    | (1 << 1)
    | (1 << 2)
    | (1 << 3)
    | (1 << 4)
    | (1 << 5)
    | (1 << 8)
    | (1 << 11)
    | (1 << 13)
    | (1 << 15)
    | (1 << 24);
/// CPUID leaf 1 EAX: family 6, model 5, stepping 2 (a Pentium II "Deschutes";
/// a model-1 signature would make Linux distrust SEP).
pub const CPUID_SIGNATURE: u32 = 0x0000_0652;

/// CR4 bits the CPU implements: VME, PVI, TSD, DE, PSE, PGE, OSFXSR, OSXMMEXCPT.
const CR4_SUPPORTED: u32 = 0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x80 | 0x200 | 0x400;

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
    /// IA32_PLATFORM_ID (read by microcode loaders).
    pub const PLATFORM_ID: u32 = 0x17;
    /// IA32_APIC_BASE.
    pub const APIC_BASE: u32 = 0x1B;
    /// EBL_CR_POWERON (P6 power-on configuration).
    pub const EBL_CR_POWERON: u32 = 0x2A;
    /// IA32_BIOS_SIGN_ID (microcode revision).
    pub const BIOS_SIGN_ID: u32 = 0x8B;
    /// P6 performance counter 0 (counter 1 follows).
    pub const PERFCTR0: u32 = 0xC1;
    /// PERFCTR1.
    pub const PERFCTR1: u32 = 0xC2;
    /// P6 event select 0 (select 1 follows).
    pub const EVNTSEL0: u32 = 0x186;
    /// EVNTSEL1.
    pub const EVNTSEL1: u32 = 0x187;
}

impl Cpu {
    /// Loads a data or stack segment register (MOV/POP Sreg, LDS...) with
    /// the checks of SDM Vol. 2 MOV ("Operation", protected mode).
    pub(super) fn load_segment<B: Bus>(&mut self, bus: &mut B, s: SegReg, sel: u16) -> Exec {
        if !self.state.protected_mode() || self.state.eflags & Self::VM != 0 {
            self.state.load_seg_real(s, sel);
            return Ok(());
        }
        let err = Fault::with_error(vector::GP, u32::from(sel & !3));
        if sel & !3 == 0 {
            if s == SegReg::Ss {
                return Err(Fault::GP0);
            }
            // A null selector loads; using it faults later.
            self.state.segs[s as usize] = Segment {
                selector: sel,
                ..Segment::default()
            };
            return Ok(());
        }
        let d = self.descriptor(bus, sel, 0)?;
        let cpl = self.state.cpl();
        let rpl = (sel & 3) as u8;
        let dpl = d.dpl();
        if !d.is_code_data() {
            return Err(err);
        }
        if s == SegReg::Ss {
            let writable_data = !d.is_code() && d.hi & (1 << 9) != 0;
            if !writable_data || rpl != cpl || dpl != cpl {
                return Err(err);
            }
            if !d.present() {
                return Err(Fault::with_error(vector::SS, u32::from(sel & !3)));
            }
        } else {
            let readable = !d.is_code() || d.hi & (1 << 9) != 0;
            if !readable || (!d.conforming() && (rpl > dpl || cpl > dpl)) {
                return Err(err);
            }
            if !d.present() {
                return Err(Fault::with_error(vector::NP, u32::from(sel & !3)));
            }
        }
        let seg = d.segment(sel);
        if d.hi & (1 << 8) == 0 {
            let base = if sel & 4 != 0 {
                self.state.ldtr.base
            } else {
                self.state.gdtr.base
            };
            self.sys_write(
                bus,
                base.wrapping_add(u32::from(sel & !7) + 5),
                1,
                ((d.hi >> 8) & 0xFF) | 1,
            )?;
        }
        self.state.segs[s as usize] = Segment {
            attr: seg.attr | attr::ACCESSED,
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

    /// MOV to or from CRn / DRn (SDM Vol. 2 MOV—Move to/from Control/Debug Registers).
    pub(super) fn mov_system<B: Bus>(&mut self, _bus: &mut B, d: &Decoded) -> Exec {
        if !self.model.is_386_plus() {
            return Err(Fault::UD);
        }
        let i = &d.insn;
        let (r0, r1) = (i.op0_register(), i.op1_register());
        let cr0 = Register::CR0 as u32;
        let dr0 = Register::DR0 as u32;
        let is_dr = |r: Register| (dr0..dr0 + 8).contains(&(r as u32));
        let dr_index = |cpu: &Cpu, r: Register| -> Exec<usize> {
            let n = (r as u32 - dr0) as usize;
            match n {
                4 | 5 if cpu.state.cr4 & 8 != 0 => Err(Fault::UD),
                4 | 5 => Ok(n + 2),
                _ => Ok(n),
            }
        };
        if (is_dr(r0) || is_dr(r1)) && self.state.dr[7] & (1 << 13) != 0 {
            // DR7.GD: the access traps before it happens, with DR6.BD.
            self.state.dr[7] &= !(1 << 13);
            self.state.dr[6] |= 1 << 13;
            return Err(Fault::new(vector::DB));
        }
        if self.state.cpl() != 0 {
            return Err(Fault::GP0);
        }
        if let Some((idx, _)) = gpr(r0) {
            let v = r1 as u32;
            let val = if (cr0..cr0 + 16).contains(&v) {
                match v - cr0 {
                    0 => self.state.cr0,
                    2 => self.state.cr2,
                    3 => self.state.cr3,
                    4 => self.state.cr4,
                    _ => return Err(Fault::UD),
                }
            } else if is_dr(r1) {
                self.state.dr[dr_index(self, r1)?]
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
                    // PG without PE, or NW without CD, is #GP(0).
                    if (src & 0x8000_0000 != 0 && src & 1 == 0)
                        || (src & 0x2000_0000 != 0 && src & 0x4000_0000 == 0)
                    {
                        return Err(Fault::GP0);
                    }
                    let old = self.state.cr0;
                    self.state.cr0 = (src & 0xE005_003F) | 0x10;
                    if (old ^ self.state.cr0) & 0x8001_0001 != 0 {
                        self.tlb.flush(false);
                        self.flush_decode_cache();
                    }
                }
                2 => self.state.cr2 = src,
                3 => {
                    let old = self.state.cr3;
                    self.state.cr3 = src & 0xFFFF_F018;
                    self.switch_address_space(old);
                }
                4 => {
                    if src & !CR4_SUPPORTED != 0 {
                        return Err(Fault::GP0);
                    }
                    let old = self.state.cr4;
                    self.state.cr4 = src;
                    // PSE or PGE changes invalidate every translation, global ones too.
                    if (old ^ src) & 0x90 != 0 {
                        self.tlb.flush(false);
                    }
                }
                _ => return Err(Fault::UD),
            }
        } else if is_dr(r0) {
            match dr_index(self, r0)? {
                n @ 0..=3 => self.state.dr[n] = src,
                6 => self.state.dr[6] = (src & 0x0000_E00F) | 0xFFFF_0FF0,
                _ => self.state.dr[7] = (src & 0xFFFF_2BFF) | 0x400,
            }
        } else {
            return Err(Fault::UD);
        }
        Ok(())
    }

    /// Reads a selector operand for LAR/LSL/VERR/VERW and its descriptor, if
    /// it is visible at the current privilege (SDM Vol. 2 LAR).
    fn visible_descriptor<B: Bus>(
        &mut self,
        bus: &mut B,
        sel: u16,
        ok_type: fn(&super::protected::Descriptor) -> bool,
    ) -> Exec<Option<super::protected::Descriptor>> {
        if sel & !3 == 0 {
            return Ok(None);
        }
        let d = match self.descriptor(bus, sel, 0) {
            Ok(d) => d,
            Err(f) if f.vector == vector::GP => return Ok(None),
            Err(f) => return Err(f),
        };
        if !ok_type(&d) {
            return Ok(None);
        }
        let (cpl, rpl) = (self.state.cpl(), (sel & 3) as u8);
        if !d.conforming() && (d.dpl() < cpl || d.dpl() < rpl) {
            return Ok(None);
        }
        Ok(Some(d))
    }

    fn descriptor_instruction<B: Bus>(&mut self, bus: &mut B, d: &Decoded) -> Exec {
        use super::protected::Descriptor;
        let i = &d.insn;
        let m = i.mnemonic();
        let zf = crate::flags::ZF;
        match m {
            Mnemonic::Sldt | Mnemonic::Str => {
                let v = u32::from(if m == Mnemonic::Sldt {
                    self.state.ldtr.selector
                } else {
                    self.state.tr.selector
                });
                let loc = self.loc(d, 0);
                let size = if matches!(loc, super::Loc::Mem(..)) {
                    2
                } else {
                    Self::op_size(d, 0)
                };
                self.write_loc(bus, loc, size, v)
            }
            Mnemonic::Lldt | Mnemonic::Ltr => {
                self.require_cpl0()?;
                let loc = self.loc(d, 0);
                let sel = self.read_loc(bus, loc, 2)? as u16;
                if m == Mnemonic::Lldt && sel & !3 == 0 {
                    self.state.ldtr = Segment {
                        selector: sel,
                        ..Segment::default()
                    };
                    return Ok(());
                }
                if sel & !3 == 0 {
                    return Err(Fault::GP0);
                }
                let err = Fault::with_error(vector::GP, u32::from(sel & !3));
                if sel & 4 != 0 {
                    return Err(err);
                }
                let desc = self.descriptor(bus, sel, 0)?;
                let ok = !desc.is_code_data()
                    && if m == Mnemonic::Lldt {
                        desc.typ() == 2
                    } else {
                        matches!(desc.typ(), 1 | 9)
                    };
                if !ok {
                    return Err(err);
                }
                if !desc.present() {
                    return Err(Fault::with_error(vector::NP, u32::from(sel & !3)));
                }
                if m == Mnemonic::Lldt {
                    self.state.ldtr = desc.segment(sel);
                } else {
                    // LTR marks the TSS busy.
                    let base = self.state.gdtr.base.wrapping_add(u32::from(sel & !7) + 4);
                    self.sys_write(bus, base, 4, desc.hi | (2 << 8))?;
                    let seg = desc.segment(sel);
                    self.state.tr = Segment {
                        attr: seg.attr | 2,
                        ..seg
                    };
                }
                Ok(())
            }
            Mnemonic::Lar | Mnemonic::Lsl => {
                let sel = {
                    let loc = self.loc(d, 1);
                    self.read_loc(bus, loc, 2)? as u16
                };
                let lar = m == Mnemonic::Lar;
                let ok: fn(&Descriptor) -> bool = if lar {
                    |d| d.is_code_data() || matches!(d.typ(), 1 | 2 | 3 | 4 | 5 | 9 | 0xB | 0xC)
                } else {
                    |d| d.is_code_data() || matches!(d.typ(), 1 | 2 | 3 | 9 | 0xB)
                };
                match self.visible_descriptor(bus, sel, ok)? {
                    None => {
                        self.state.eflags &= !zf;
                        Ok(())
                    }
                    Some(desc) => {
                        let size = Self::op_size(d, 0);
                        let v = if lar {
                            desc.hi & 0x00F0_FF00
                        } else {
                            desc.segment(sel).limit
                        };
                        let loc = self.loc(d, 0);
                        self.write_loc(bus, loc, size, v)?;
                        self.state.eflags |= zf;
                        Ok(())
                    }
                }
            }
            Mnemonic::Verr | Mnemonic::Verw => {
                let sel = {
                    let loc = self.loc(d, 0);
                    self.read_loc(bus, loc, 2)? as u16
                };
                let ok: fn(&Descriptor) -> bool = if m == Mnemonic::Verr {
                    |d| d.is_code_data() && (!d.is_code() || d.hi & (1 << 9) != 0)
                } else {
                    |d| d.is_code_data() && !d.is_code() && d.hi & (1 << 9) != 0
                };
                let r = self.visible_descriptor(bus, sel, ok)?;
                self.set_flag(zf, r.is_some());
                Ok(())
            }
            _ => {
                // ARPL r/m16, r16.
                let loc = self.loc(d, 0);
                let dst = self.read_loc(bus, loc, 2)?;
                let src = self.read_op_public(bus, d, 1, 2)?;
                if dst & 3 < src & 3 {
                    self.write_loc(bus, loc, 2, (dst & !3) | (src & 3))?;
                    self.state.eflags |= zf;
                } else {
                    self.state.eflags &= !zf;
                }
                Ok(())
            }
        }
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
                    _ => {
                        // The APIC bit follows the machine: set only when a
                        // local APIC is wired and enabled in IA32_APIC_BASE.
                        let apic = if self.apic_present && self.state.apic_base & (1 << 11) != 0 {
                            1 << 9
                        } else {
                            0
                        };
                        (CPUID_SIGNATURE, 0, 0, CPUID_FEATURES_EDX | apic)
                    }
                };
                self.state.regs[reg::EAX] = a;
                self.state.regs[reg::EBX] = b;
                self.state.regs[reg::ECX] = c;
                self.state.regs[reg::EDX] = dx;
                Ok(())
            }
            Mnemonic::Rdtsc if p6 => self.rdtsc(0),
            Mnemonic::Rdpmc if p6 => {
                // CR4.PCE lets other rings read the counters (SDM Vol. 2B
                // RDPMC); the P6 has two 40-bit counters, 0 and 1.
                if self.state.cr4 & 0x100 == 0 && self.state.cpl() != 0 {
                    return Err(Fault::GP0);
                }
                let n = self.state.regs[reg::ECX];
                if n > 1 {
                    return Err(Fault::GP0);
                }
                let v = self.state.perf[n as usize];
                self.state.regs[reg::EAX] = v as u32;
                self.state.regs[reg::EDX] = (v >> 32) as u32 & 0xFF;
                Ok(())
            }
            Mnemonic::Rdmsr if p6 => {
                self.require_cpl0()?;
                let v: u64 = match self.state.regs[reg::ECX] {
                    msr::TSC => self.tsc(),
                    msr::SYSENTER_CS => u64::from(self.state.sysenter_cs),
                    msr::SYSENTER_ESP => u64::from(self.state.sysenter_esp),
                    msr::SYSENTER_EIP => u64::from(self.state.sysenter_eip),
                    msr::PLATFORM_ID | msr::EBL_CR_POWERON => 0,
                    msr::APIC_BASE if self.apic_present => self.state.apic_base,
                    msr::BIOS_SIGN_ID => self.state.bios_sign_id,
                    msr::PERFCTR0 | msr::PERFCTR1 => {
                        self.state.perf[(self.state.regs[reg::ECX] - msr::PERFCTR0) as usize]
                    }
                    msr::EVNTSEL0 | msr::EVNTSEL1 => {
                        self.state.perf[2 + (self.state.regs[reg::ECX] - msr::EVNTSEL0) as usize]
                    }
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
                    msr::APIC_BASE if self.apic_present => {
                        // Base (bits 12-35, 32-bit physical here), enable (11), BSP (8, read-only).
                        if v & !0xFFFF_F900 != 0 {
                            return Err(Fault::GP0);
                        }
                        self.state.apic_base = (v & 0xFFFF_F800) | (self.state.apic_base & 0x100);
                    }
                    // Writing 0 before CPUID latches the microcode revision (reads as 0 here).
                    msr::BIOS_SIGN_ID => self.state.bios_sign_id = 0,
                    msr::EBL_CR_POWERON => {}
                    // The P6 performance counters are storage only: they do
                    // not count events (no PMU interrupts are generated).
                    msr::PERFCTR0 | msr::PERFCTR1 => {
                        self.state.perf[(self.state.regs[reg::ECX] - msr::PERFCTR0) as usize] =
                            v & 0xFF_FFFF_FFFF
                    }
                    msr::EVNTSEL0 | msr::EVNTSEL1 => {
                        self.state.perf[2 + (self.state.regs[reg::ECX] - msr::EVNTSEL0) as usize] =
                            v & 0xFFFF_FFFF
                    }
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
                let seg = self.state.segs[Self::mem_seg(d) as usize];
                let lin = seg.base.wrapping_add(self.effective_address(d));
                self.tlb.flush_page(lin);
                Ok(())
            }
            Mnemonic::Sysenter if p6 => self.sysenter(),
            Mnemonic::Sysexit if p6 => self.sysexit(),
            Mnemonic::Sldt
            | Mnemonic::Str
            | Mnemonic::Lldt
            | Mnemonic::Ltr
            | Mnemonic::Lar
            | Mnemonic::Lsl
            | Mnemonic::Verr
            | Mnemonic::Verw
            | Mnemonic::Arpl
                if !self.state.protected_mode() || self.state.eflags & Self::VM != 0 =>
            {
                // Not recognised in real mode or virtual-8086 mode.
                Err(Fault::UD)
            }
            Mnemonic::Sldt
            | Mnemonic::Str
            | Mnemonic::Lldt
            | Mnemonic::Ltr
            | Mnemonic::Lar
            | Mnemonic::Lsl
            | Mnemonic::Verr
            | Mnemonic::Verw
            | Mnemonic::Arpl => self.descriptor_instruction(bus, d),
            _ => Err(Fault::UD),
        }
    }

    /// The time-stamp counter: instructions retired plus the software offset.
    fn tsc(&self) -> u64 {
        self.state.tsc.wrapping_add(self.icount)
    }

    /// RDTSC, for an instruction `ahead` instructions past `icount` (a
    /// translated block adds its count at its end): #GP(0) under CR4.TSD
    /// outside ring 0, else EDX:EAX := the virtual time-stamp counter.
    fn rdtsc(&mut self, ahead: u64) -> Exec {
        if self.state.cr4 & 4 != 0 && self.state.cpl() != 0 {
            return Err(Fault::GP0);
        }
        let t = self.tsc().wrapping_add(ahead);
        self.state.regs[reg::EAX] = t as u32;
        self.state.regs[reg::EDX] = (t >> 32) as u32;
        Ok(())
    }

    /// RDTSC as a helper of translated code, as the instruction `ahead`
    /// places into its block: false, with nothing changed, when it would
    /// fault (the block then leaves before it, and the interpreter runs it).
    pub fn native_rdtsc(&mut self, ahead: u64) -> bool {
        self.rdtsc(ahead).is_ok()
    }
}
