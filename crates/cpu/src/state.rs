//! Architectural CPU state.
//!
//! `CpuState` is `#[repr(C)]` with the hot fields first: the JIT addresses
//! registers, EIP, EFLAGS and the segment caches at fixed offsets from one
//! base pointer, so field order is part of the contract (see `offsets`).

use serde::{Deserialize, Serialize};

/// General-purpose register numbers in x86 encoding order.
pub mod reg {
    /// EAX / AX / AL.
    pub const EAX: usize = 0;
    /// ECX / CX / CL.
    pub const ECX: usize = 1;
    /// EDX / DX / DL.
    pub const EDX: usize = 2;
    /// EBX / BX / BL.
    pub const EBX: usize = 3;
    /// ESP / SP (AH in 8-bit encodings).
    pub const ESP: usize = 4;
    /// EBP / BP (CH in 8-bit encodings).
    pub const EBP: usize = 5;
    /// ESI / SI (DH in 8-bit encodings).
    pub const ESI: usize = 6;
    /// EDI / DI (BH in 8-bit encodings).
    pub const EDI: usize = 7;
}

/// Segment registers in x86 encoding order (the `reg` field of MOV Sreg).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum SegReg {
    /// Extra segment.
    Es = 0,
    /// Code segment.
    Cs = 1,
    /// Stack segment.
    Ss = 2,
    /// Data segment.
    Ds = 3,
    /// FS (80386+).
    Fs = 4,
    /// GS (80386+).
    Gs = 5,
}

impl SegReg {
    /// All six segment registers in encoding order.
    pub const ALL: [SegReg; 6] = [
        SegReg::Es,
        SegReg::Cs,
        SegReg::Ss,
        SegReg::Ds,
        SegReg::Fs,
        SegReg::Gs,
    ];

    /// The register for an encoding number 0..=5.
    pub fn from_index(i: usize) -> Option<SegReg> {
        Self::ALL.get(i).copied()
    }
}

/// Descriptor attribute bits kept in [`Segment::attr`] (the descriptor's
/// access byte in bits 0..8 and its flags nibble in bits 12..16, as in the
/// descriptor's bytes 5 and 6).
pub mod attr {
    /// Accessed.
    pub const ACCESSED: u16 = 1 << 0;
    /// Readable (code) / writable (data).
    pub const RW: u16 = 1 << 1;
    /// Conforming (code) / expand-down (data).
    pub const DC: u16 = 1 << 2;
    /// Executable (code segment).
    pub const CODE: u16 = 1 << 3;
    /// Code or data (not a system descriptor).
    pub const S: u16 = 1 << 4;
    /// Present.
    pub const PRESENT: u16 = 1 << 7;
    /// Default operand size / big (32-bit).
    pub const DB: u16 = 1 << 14;
    /// Granularity (limit in 4 KiB units).
    pub const G: u16 = 1 << 15;
    /// A present, writable, accessed data segment as real mode leaves it.
    pub const REAL_DATA: u16 = PRESENT | S | RW | ACCESSED;
    /// A present, readable code segment as real mode leaves it.
    pub const REAL_CODE: u16 = PRESENT | S | CODE | RW | ACCESSED;
}

/// A segment register with its hidden descriptor cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[repr(C)]
pub struct Segment {
    /// Linear base address.
    pub base: u32,
    /// Effective limit in bytes (already scaled by granularity).
    pub limit: u32,
    /// Visible selector.
    pub selector: u16,
    /// Descriptor attributes (see [`attr`]).
    pub attr: u16,
}

impl Segment {
    /// A real-mode segment: base = selector * 16, 64 KiB limit.
    pub fn real(selector: u16, attr: u16) -> Segment {
        Segment {
            base: u32::from(selector) << 4,
            limit: 0xFFFF,
            selector,
            attr,
        }
    }

    /// Descriptor privilege level.
    pub fn dpl(&self) -> u8 {
        ((self.attr >> 5) & 3) as u8
    }

    /// True when the descriptor's D/B bit is set (32-bit segment).
    pub fn is_32(&self) -> bool {
        self.attr & attr::DB != 0
    }
}

/// GDTR / IDTR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[repr(C)]
pub struct TableReg {
    /// Linear base.
    pub base: u32,
    /// Limit in bytes.
    pub limit: u32,
}

/// The complete architectural state of one x86 CPU.
///
/// Plain data: it can be copied, compared and serialized (snapshots).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(C)]
pub struct CpuState {
    /// General registers, indexed by [`reg`].
    pub regs: [u32; 8],
    /// Instruction pointer (offset in CS).
    pub eip: u32,
    /// EFLAGS (see [`crate::flags::Eflags`]); always kept materialised.
    pub eflags: u32,
    /// ES, CS, SS, DS, FS, GS with their descriptor caches.
    pub segs: [Segment; 6],
    /// CR0 (MSW in its low 16 bits on the 80286).
    pub cr0: u32,
    /// CR2: page-fault linear address.
    pub cr2: u32,
    /// CR3: page-directory base.
    pub cr3: u32,
    /// CR4.
    pub cr4: u32,
    /// DR0..DR7 (DR4/DR5 alias DR6/DR7).
    pub dr: [u32; 8],
    /// Global descriptor table register.
    pub gdtr: TableReg,
    /// Interrupt descriptor table register.
    pub idtr: TableReg,
    /// Local descriptor table register.
    pub ldtr: Segment,
    /// Task register.
    pub tr: Segment,
    /// Time-stamp counter.
    pub tsc: u64,
    /// IA32_SYSENTER_CS.
    pub sysenter_cs: u32,
    /// IA32_SYSENTER_ESP.
    pub sysenter_esp: u32,
    /// IA32_SYSENTER_EIP.
    pub sysenter_eip: u32,
    /// IA32_APIC_BASE: base 0xFEE00000, enabled, bootstrap processor.
    pub apic_base: u64,
    /// IA32_BIOS_SIGN_ID (microcode revision in the high dword).
    pub bios_sign_id: u64,
    /// PERFCTR0, PERFCTR1, EVNTSEL0, EVNTSEL1.
    pub perf: [u64; 4],
    /// Set by HLT; cleared by an interrupt or reset.
    pub halted: bool,
    /// The x87 FPU.
    pub fpu: crate::fpu::FpuState,
}

impl Default for CpuState {
    fn default() -> Self {
        Self::reset()
    }
}

impl CpuState {
    /// The power-on state: CS:IP = F000:FFF0 with CS base 0xFFFF0000.
    pub fn reset() -> CpuState {
        let mut segs = [Segment::real(0, attr::REAL_DATA); 6];
        segs[SegReg::Cs as usize] = Segment {
            base: 0xFFFF_0000,
            limit: 0xFFFF,
            selector: 0xF000,
            attr: attr::REAL_CODE,
        };
        CpuState {
            regs: [0; 8],
            eip: 0xFFF0,
            eflags: 0x2,
            segs,
            cr0: 0x6000_0010,
            cr2: 0,
            cr3: 0,
            cr4: 0,
            dr: [0, 0, 0, 0, 0, 0, 0xFFFF_0FF0, 0x400],
            gdtr: TableReg {
                base: 0,
                limit: 0xFFFF,
            },
            idtr: TableReg {
                base: 0,
                limit: 0x3FF,
            },
            ldtr: Segment::default(),
            tr: Segment::default(),
            tsc: 0,
            sysenter_cs: 0,
            sysenter_esp: 0,
            sysenter_eip: 0,
            apic_base: 0xFEE0_0900,
            bios_sign_id: 0,
            perf: [0; 4],
            halted: false,
            fpu: crate::fpu::FpuState::default(),
        }
    }

    /// A segment register's cache.
    #[inline]
    pub fn seg(&self, s: SegReg) -> &Segment {
        &self.segs[s as usize]
    }

    /// Loads a segment register the real-mode way (base = selector << 4).
    pub fn load_seg_real(&mut self, s: SegReg, selector: u16) {
        let seg = &mut self.segs[s as usize];
        seg.selector = selector;
        seg.base = u32::from(selector) << 4;
    }

    /// EFLAGS as typed flags.
    #[inline]
    pub fn flags(&self) -> crate::flags::Eflags {
        crate::flags::Eflags::from_bits_retain(self.eflags)
    }

    /// CR0.PE: protected mode enabled.
    #[inline]
    pub fn protected_mode(&self) -> bool {
        self.cr0 & 1 != 0
    }

    /// Current privilege level (CS.RPL in protected mode, 0 in real mode).
    #[inline]
    pub fn cpl(&self) -> u8 {
        if self.eflags & crate::flags::Eflags::VM.bits() != 0 {
            3
        } else if self.protected_mode() {
            (self.segs[SegReg::Cs as usize].selector & 3) as u8
        } else {
            0
        }
    }

    /// Puts the CPU into flat 32-bit protected mode (ring 3 unless `ring0`):
    /// every segment has base 0 and a 4 GiB limit. Used by tests and the host
    /// oracle, whose Linux user segments look exactly like this.
    pub fn set_flat32(&mut self, ring0: bool) {
        let rpl: u16 = if ring0 { 0 } else { 3 };
        let dpl = rpl << 5;
        self.cr0 |= 1;
        for (i, s) in self.segs.iter_mut().enumerate() {
            let code = i == SegReg::Cs as usize;
            *s = Segment {
                base: 0,
                limit: 0xFFFF_FFFF,
                selector: if code { 0x08 } else { 0x10 } | rpl,
                attr: if code {
                    attr::REAL_CODE
                } else {
                    attr::REAL_DATA
                } | attr::DB
                    | attr::G
                    | dpl,
            };
        }
    }
}

/// Byte offsets of the hot `CpuState` fields, for the JIT.
pub mod offsets {
    use super::CpuState;
    use core::mem::offset_of;
    /// Offset of `regs`.
    pub const REGS: usize = offset_of!(CpuState, regs);
    /// Offset of `eip`.
    pub const EIP: usize = offset_of!(CpuState, eip);
    /// Offset of `eflags`.
    pub const EFLAGS: usize = offset_of!(CpuState, eflags);
    /// Offset of `segs`.
    pub const SEGS: usize = offset_of!(CpuState, segs);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_fields_come_first() {
        assert_eq!(offsets::REGS, 0);
        assert_eq!(offsets::EIP, 32);
        assert_eq!(offsets::EFLAGS, 36);
        assert_eq!(offsets::SEGS, 40);
        assert_eq!(core::mem::size_of::<Segment>(), 12);
    }

    #[test]
    fn reset_vector() {
        let s = CpuState::reset();
        assert_eq!(s.seg(SegReg::Cs).base + s.eip, 0xFFFF_FFF0);
    }
}
