//! The x87 floating-point unit: architectural state and its memory images.
//!
//! # Exactness strategy
//!
//! Every x87 instruction that computes (arithmetic, conversions, compares,
//! transcendentals, FCMOVcc, even register moves) is executed by the *host's*
//! own x87 unit on an image of the guest state (see [`host`]). That makes the
//! 80-bit results bit-exact by construction in every precision and rounding
//! mode, including Intel's FSIN/FCOS/FPTAN/FPATAN/F2XM1/FYL2X(P1) results,
//! denormal/unnormal/pseudo-NaN handling and masked and unmasked exception
//! responses, which a soft-float would have to replicate bit for bit. The
//! guest-visible *machinery* is ours: the state lives here, the interpreter
//! (`interp/x87.rs`) decides which instructions are waiting, raises #NM/#MF,
//! accesses guest memory (faults are precise: the state is only committed
//! after the memory access succeeded), keeps the instruction/operand
//! pointers and opcode, and implements the control instructions (FLDCW,
//! FNSTCW, FNSTSW, FNCLEX, FNINIT, FLDENV, FNSTENV, FRSTOR, FNSAVE, FXSAVE,
//! FXRSTOR) and the environment layouts in Rust.
//!
//! The backend boundary is one function ([`host::exec`]); on hosts other than
//! x86-64 it reports "unsupported" and the computing instructions raise #UD
//! until a soft-float backend is added behind the same function.
//!
//! # Registers and tags
//!
//! Registers are kept as raw 80-bit images in *physical* order (R0..R7),
//! little-endian: 8 bytes of significand (explicit integer bit 63), then the
//! sign and 15-bit exponent. Like the P6, we keep only the *abridged* tag
//! (empty / not empty per register); the full two-bit tags that FSTENV and
//! FSAVE show are computed from the register contents, and FLDENV/FRSTOR
//! only take "empty" from the tags they load.
//!
//! # FERR# / IRQ13 (CR0.NE = 0)
//!
//! When a waiting x87 instruction finds an unmasked exception pending
//! (SW.ES) and CR0.NE is 0, the interpreter does not raise #MF: it sets
//! [`FpuState::ferr`] (the FERR# output) and lets the instruction proceed,
//! as a PC with IGNNE# wiring does. The platform raises IRQ13 while `ferr` is
//! set and clears it when software writes port F0h (or acknowledges the
//! interrupt); FNCLEX, FNINIT and a reload of a state without pending
//! exceptions clear it too.

pub mod format;
pub mod host;

use serde::{Deserialize, Serialize};

/// Status-word bits.
pub mod sw {
    /// Invalid operation.
    pub const IE: u16 = 1 << 0;
    /// Denormal operand.
    pub const DE: u16 = 1 << 1;
    /// Zero divide.
    pub const ZE: u16 = 1 << 2;
    /// Overflow.
    pub const OE: u16 = 1 << 3;
    /// Underflow.
    pub const UE: u16 = 1 << 4;
    /// Precision (inexact).
    pub const PE: u16 = 1 << 5;
    /// Stack fault.
    pub const SF: u16 = 1 << 6;
    /// Error summary.
    pub const ES: u16 = 1 << 7;
    /// Condition code C0.
    pub const C0: u16 = 1 << 8;
    /// Condition code C1.
    pub const C1: u16 = 1 << 9;
    /// Condition code C2.
    pub const C2: u16 = 1 << 10;
    /// Condition code C3.
    pub const C3: u16 = 1 << 14;
    /// Busy (mirrors ES on the 387 and later).
    pub const B: u16 = 1 << 15;
    /// The six exception flags.
    pub const EXCEPTIONS: u16 = 0x3F;
    /// Sticky flags: the exception flags and SF.
    pub const STICKY: u16 = 0x7F;
    /// TOP field shift.
    pub const TOP_SHIFT: u32 = 11;
}

/// Control word after FNINIT.
pub const CW_INIT: u16 = 0x037F;
/// Control word after RESET.
pub const CW_RESET: u16 = 0x0040;

/// x87 register file and control/status state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FpuState {
    /// Physical registers R0..R7 as raw 80-bit little-endian images.
    pub regs: [[u8; 10]; 8],
    /// Control word.
    pub cw: u16,
    /// Status word, TOP included (bits 11..13).
    pub sw: u16,
    /// Abridged tag: bit i set when physical register i is not empty.
    pub tag: u8,
    /// Last instruction pointer (offset).
    pub fip: u32,
    /// Last instruction's CS selector.
    pub fcs: u16,
    /// Last opcode: low 3 bits of the escape byte << 8 | ModRM.
    pub fop: u16,
    /// Last data (operand) pointer (offset).
    pub fdp: u32,
    /// Last data pointer's segment selector.
    pub fds: u16,
    /// FERR# output (see the module doc: IRQ13 when CR0.NE = 0).
    pub ferr: bool,
}

impl Default for FpuState {
    /// The state after RESET: CW 0040h, SW 0, all registers +0.0 and valid
    /// (full tag word 5555h).
    fn default() -> Self {
        FpuState {
            regs: [[0; 10]; 8],
            cw: CW_RESET,
            sw: 0,
            tag: 0xFF,
            fip: 0,
            fcs: 0,
            fop: 0,
            fdp: 0,
            fds: 0,
            ferr: false,
        }
    }
}

impl FpuState {
    /// TOP: the physical register that is ST(0).
    #[inline]
    pub fn top(&self) -> usize {
        usize::from((self.sw >> sw::TOP_SHIFT) & 7)
    }

    /// Sets TOP.
    #[inline]
    pub fn set_top(&mut self, top: usize) {
        self.sw = (self.sw & !(7 << sw::TOP_SHIFT)) | ((top as u16 & 7) << sw::TOP_SHIFT);
    }

    /// Physical register number of ST(i).
    #[inline]
    pub fn phys(&self, i: usize) -> usize {
        (self.top() + i) & 7
    }

    /// ST(i)'s raw value.
    pub fn st(&self, i: usize) -> [u8; 10] {
        self.regs[self.phys(i)]
    }

    /// True when physical register `p` is empty.
    #[inline]
    pub fn is_empty(&self, p: usize) -> bool {
        self.tag & (1 << p) == 0
    }

    /// Recomputes ES and B from the exception flags and masks; clears FERR#
    /// when nothing is pending any more.
    pub fn update_summary(&mut self) {
        if self.sw & !self.cw & sw::EXCEPTIONS != 0 {
            self.sw |= sw::ES | sw::B;
        } else {
            self.sw &= !(sw::ES | sw::B);
            self.ferr = false;
        }
    }

    /// True when an unmasked exception is pending (SW.ES).
    #[inline]
    pub fn pending(&self) -> bool {
        self.sw & sw::ES != 0
    }

    /// The FSAVE image (32-bit protected-mode layout) the backend
    /// ([`host`]) starts from: the control word, the status word without
    /// the sticky exception flags and ES/B (so nothing is pending on the
    /// host), full tags computed from the contents, registers in ST order.
    /// The pointers are left zero: the guest's stay here.
    pub fn host_image(&self) -> [u8; host::IMAGE_LEN] {
        let mut img = [0u8; host::IMAGE_LEN];
        let sw = self.sw & !(sw::STICKY | sw::ES | sw::B);
        img[0..2].copy_from_slice(&self.cw.to_le_bytes());
        img[4..6].copy_from_slice(&sw.to_le_bytes());
        img[8..10].copy_from_slice(&self.full_tag_word().to_le_bytes());
        for k in 0..8 {
            img[28 + 10 * k..38 + 10 * k].copy_from_slice(&self.st(k));
        }
        img
    }

    /// Takes the backend's state after it ran from [`FpuState::host_image`]:
    /// registers back in physical order, the empty tags, the status word
    /// with this state's sticky flags merged back and the summary
    /// recomputed. The control word and the pointers are not touched.
    pub fn take_host_image(&mut self, img: &[u8; host::IMAGE_LEN]) {
        let new_sw = u16::from_le_bytes([img[4], img[5]]);
        let new_top = usize::from((new_sw >> sw::TOP_SHIFT) & 7);
        let tw = u16::from_le_bytes([img[8], img[9]]);
        for k in 0..8 {
            self.regs[(new_top + k) & 7].copy_from_slice(&img[28 + 10 * k..38 + 10 * k]);
        }
        self.tag = (0..8).fold(0u8, |t, p| {
            if (tw >> (2 * p)) & 3 == 3 {
                t
            } else {
                t | (1 << p)
            }
        });
        self.sw = (new_sw & !(sw::ES | sw::B)) | (self.sw & sw::STICKY);
        self.update_summary();
    }

    /// Loads the control word (reserved bits as the P6 keeps them).
    pub fn set_cw(&mut self, cw: u16) {
        self.cw = format::normalize_cw(cw);
        self.update_summary();
    }

    /// FNINIT: default control word, empty stack, cleared status and pointers.
    pub fn init(&mut self) {
        self.cw = CW_INIT;
        self.sw = 0;
        self.tag = 0;
        self.fip = 0;
        self.fcs = 0;
        self.fop = 0;
        self.fdp = 0;
        self.fds = 0;
        self.ferr = false;
    }

    /// FNCLEX: clears the exception flags, SF, ES and B.
    pub fn clear_exceptions(&mut self) {
        self.sw &= !(sw::STICKY | sw::ES | sw::B);
        self.ferr = false;
    }

    /// The full tag word (two bits per physical register) as FSTENV shows it.
    pub fn full_tag_word(&self) -> u16 {
        (0..8).fold(0u16, |tw, p| {
            let t = if self.is_empty(p) {
                3
            } else {
                format::tag_of(&self.regs[p])
            };
            tw | (t << (2 * p))
        })
    }

    /// Loads the abridged tag from a full tag word (only "empty" counts).
    pub fn set_full_tag_word(&mut self, tw: u16) {
        self.tag = (0..8).fold(0u8, |t, p| {
            if (tw >> (2 * p)) & 3 == 3 {
                t
            } else {
                t | (1 << p)
            }
        });
    }

    /// The x87 environment as FSTENV stores it: 14 bytes (16-bit operand
    /// size) or 28 bytes (32-bit), real-mode or protected-mode layout.
    /// Reserved halves of the 32-bit format read as FFFFh.
    pub fn env_image(&self, op32: bool, real: bool) -> Vec<u8> {
        let tw = self.full_tag_word();
        let mut v = Vec::with_capacity(28);
        let ip_lin = (u32::from(self.fcs) << 4).wrapping_add(self.fip);
        let dp_lin = (u32::from(self.fds) << 4).wrapping_add(self.fdp);
        let fop = u32::from(self.fop & 0x7FF);
        if op32 {
            let mut d = |x: u32| v.extend_from_slice(&x.to_le_bytes());
            d(0xFFFF_0000 | u32::from(self.cw));
            d(0xFFFF_0000 | u32::from(self.sw));
            d(0xFFFF_0000 | u32::from(tw));
            if real {
                d(0xFFFF_0000 | (ip_lin & 0xFFFF));
                d(((ip_lin >> 16) << 12) | fop);
                d(0xFFFF_0000 | (dp_lin & 0xFFFF));
                d((dp_lin >> 16) << 12);
            } else {
                d(self.fip);
                d(u32::from(self.fcs) | (fop << 16));
                d(self.fdp);
                d(0xFFFF_0000 | u32::from(self.fds));
            }
        } else {
            let mut w = |x: u32| v.extend_from_slice(&(x as u16).to_le_bytes());
            w(u32::from(self.cw));
            w(u32::from(self.sw));
            w(u32::from(tw));
            if real {
                w(ip_lin);
                w(((ip_lin >> 16) << 12) | fop);
                w(dp_lin);
                w((dp_lin >> 16) << 12);
            } else {
                w(self.fip);
                w(u32::from(self.fcs));
                w(self.fdp);
                w(u32::from(self.fds));
            }
        }
        v
    }

    /// Loads an environment stored by [`FpuState::env_image`] (FLDENV).
    pub fn load_env(&mut self, b: &[u8], op32: bool, real: bool) {
        let (cw, sw, tw, rest): (u16, u16, u16, [u32; 4]) = if op32 {
            let d =
                |k: usize| u32::from_le_bytes([b[4 * k], b[4 * k + 1], b[4 * k + 2], b[4 * k + 3]]);
            (
                d(0) as u16,
                d(1) as u16,
                d(2) as u16,
                [d(3), d(4), d(5), d(6)],
            )
        } else {
            let w = |k: usize| u32::from(u16::from_le_bytes([b[2 * k], b[2 * k + 1]]));
            (
                w(0) as u16,
                w(1) as u16,
                w(2) as u16,
                [w(3), w(4), w(5), w(6)],
            )
        };
        self.cw = format::normalize_cw(cw);
        self.sw = sw;
        self.set_full_tag_word(tw);
        if real {
            let hi = |x: u32| {
                if op32 {
                    (x >> 12) & 0xFFFF
                } else {
                    (x >> 12) & 0xF
                }
            };
            self.fip = (rest[0] & 0xFFFF) | (hi(rest[1]) << 16);
            self.fop = (rest[1] & 0x7FF) as u16;
            self.fcs = 0;
            self.fdp = (rest[2] & 0xFFFF) | (hi(rest[3]) << 16);
            self.fds = 0;
        } else {
            self.fip = rest[0];
            self.fcs = rest[1] as u16;
            if op32 {
                self.fop = ((rest[1] >> 16) & 0x7FF) as u16;
            }
            self.fdp = rest[2];
            self.fds = rest[3] as u16;
        }
        self.update_summary();
    }

    /// The first 160 bytes of an FXSAVE image (legacy x87 part, 32-bit
    /// format); the MXCSR fields are zero (no SSE on this model).
    pub fn fxsave_image(&self) -> [u8; 160] {
        let mut b = [0u8; 160];
        b[0..2].copy_from_slice(&self.cw.to_le_bytes());
        b[2..4].copy_from_slice(&self.sw.to_le_bytes());
        b[4] = self.tag;
        b[6..8].copy_from_slice(&(self.fop & 0x7FF).to_le_bytes());
        b[8..12].copy_from_slice(&self.fip.to_le_bytes());
        b[12..14].copy_from_slice(&self.fcs.to_le_bytes());
        b[16..20].copy_from_slice(&self.fdp.to_le_bytes());
        b[20..22].copy_from_slice(&self.fds.to_le_bytes());
        for k in 0..8 {
            b[32 + 16 * k..42 + 16 * k].copy_from_slice(&self.st(k));
        }
        b
    }

    /// Loads the legacy x87 part of an FXSAVE image (FXRSTOR); `b` must
    /// hold at least 160 bytes.
    pub fn load_fxsave(&mut self, b: &[u8]) {
        self.cw = format::normalize_cw(u16::from_le_bytes([b[0], b[1]]));
        self.sw = u16::from_le_bytes([b[2], b[3]]);
        self.tag = b[4];
        self.fop = u16::from_le_bytes([b[6], b[7]]) & 0x7FF;
        self.fip = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
        self.fcs = u16::from_le_bytes([b[12], b[13]]);
        self.fdp = u32::from_le_bytes([b[16], b[17], b[18], b[19]]);
        self.fds = u16::from_le_bytes([b[20], b[21]]);
        let top = self.top();
        for k in 0..8 {
            let mut r = [0u8; 10];
            r.copy_from_slice(&b[32 + 16 * k..42 + 16 * k]);
            self.regs[(top + k) & 7] = r;
        }
        self.update_summary();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_and_tags() {
        let mut f = FpuState::default();
        assert_eq!(f.full_tag_word(), 0x5555);
        f.init();
        assert_eq!(f.cw, 0x037F);
        assert_eq!(f.full_tag_word(), 0xFFFF);
        f.set_full_tag_word(0x3FFC);
        assert_eq!(f.tag, 0x81);
    }

    #[test]
    fn env_round_trip() {
        let mut f = FpuState::default();
        f.init();
        f.sw = 0x3800 | sw::C1 | sw::PE;
        f.tag = 0x80;
        f.regs[7] = format::ONE;
        f.fip = 0x1234_5678;
        f.fcs = 0x23;
        f.fop = 0x5C1;
        f.fdp = 0x9ABC_DEF0;
        f.fds = 0x2B;
        for op32 in [false, true] {
            let img = f.env_image(op32, false);
            assert_eq!(img.len(), if op32 { 28 } else { 14 });
            let mut g = FpuState::default();
            g.load_env(&img, op32, false);
            assert_eq!(g.cw, f.cw);
            assert_eq!(g.sw, f.sw);
            assert_eq!(g.tag, f.tag);
            assert_eq!(g.fds, f.fds);
        }
        let img = f.env_image(true, false);
        assert_eq!(&img[0..4], &[0x7F, 0x03, 0xFF, 0xFF]);
        assert_eq!(
            u32::from_le_bytes(img[8..12].try_into().unwrap()),
            0xFFFF_3FFF
        );
        assert_eq!(
            u32::from_le_bytes(img[16..20].try_into().unwrap()),
            0x05C1_0023
        );
    }

    #[test]
    fn summary_follows_masks() {
        let mut f = FpuState::default();
        f.init();
        f.sw |= sw::ZE;
        f.update_summary();
        assert!(!f.pending());
        f.set_cw(0x037B);
        assert!(f.pending());
        assert_eq!(f.sw & sw::B, sw::B);
        f.clear_exceptions();
        assert!(!f.pending());
    }
}
