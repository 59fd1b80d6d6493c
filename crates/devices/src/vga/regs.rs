//! The VGA's register file and its ports (0x3B0-0x3DF): miscellaneous
//! output, sequencer, CRT controller, graphics controller, attribute
//! controller and DAC.
//!
//! The CRTC index/data pair and input status 1 answer at 0x3B4/0x3B5/0x3BA
//! or at 0x3D4/0x3D5/0x3DA, as the miscellaneous output register's I/O
//! address select (bit 0) says; the other pair reads all ones and ignores
//! writes. Reading input status 1 resets the attribute controller's
//! index/data flip-flop. Register bits that do not exist read as 0 (the
//! masks below), as on the IBM part.

use serde::{Deserialize, Serialize};

/// Sequencer register count.
pub const SEQ_REGS: usize = 8;
/// CRT controller register count (0x00-0x18).
pub const CRTC_REGS: usize = 0x19;
/// Graphics controller register count (0x00-0x08).
pub const GC_REGS: usize = 9;
/// Attribute controller register count (0x00-0x14).
pub const AC_REGS: usize = 0x15;

/// Bits that exist in each sequencer register.
const SEQ_MASK: [u8; SEQ_REGS] = [0x03, 0x3D, 0x0F, 0x3F, 0x0E, 0x00, 0x00, 0x00];
/// Bits that exist in each graphics controller register.
const GC_MASK: [u8; GC_REGS] = [0x0F, 0x0F, 0x0F, 0x1F, 0x03, 0x7B, 0x0F, 0x0F, 0xFF];

/// Sequencer: clocking mode.
pub const SEQ_CLOCK: usize = 1;
/// Sequencer: map mask (planes CPU writes reach).
pub const SEQ_MAP_MASK: usize = 2;
/// Sequencer: character map select.
pub const SEQ_CHARMAP: usize = 3;
/// Sequencer: memory mode (bit 3 chain 4, bit 2 odd/even disable).
pub const SEQ_MEMORY: usize = 4;

/// CRTC registers by name.
pub mod crtc {
    /// Horizontal display end (characters - 1).
    pub const H_DISP_END: usize = 0x01;
    /// Vertical total (low 8 bits).
    pub const V_TOTAL: usize = 0x06;
    /// Overflow (high bits of vertical values).
    pub const OVERFLOW: usize = 0x07;
    /// Preset row scan (bits 0-4) and byte panning (bits 5-6).
    pub const PRESET_ROW: usize = 0x08;
    /// Maximum scan line (bits 0-4), line compare bit 9 (bit 6), double scan (bit 7).
    pub const MAX_SCAN: usize = 0x09;
    /// Cursor start (bit 5: cursor off).
    pub const CURSOR_START: usize = 0x0A;
    /// Cursor end.
    pub const CURSOR_END: usize = 0x0B;
    /// Start address high.
    pub const START_HI: usize = 0x0C;
    /// Start address low.
    pub const START_LO: usize = 0x0D;
    /// Cursor location high.
    pub const CURSOR_HI: usize = 0x0E;
    /// Cursor location low.
    pub const CURSOR_LO: usize = 0x0F;
    /// Vertical retrace end (bit 7 protects registers 0-7).
    pub const V_SYNC_END: usize = 0x11;
    /// Vertical display end (low 8 bits).
    pub const V_DISP_END: usize = 0x12;
    /// Offset (logical line width in words).
    pub const OFFSET: usize = 0x13;
    /// CRTC mode control.
    pub const MODE: usize = 0x17;
    /// Line compare (low 8 bits).
    pub const LINE_COMPARE: usize = 0x18;
}

/// Graphics controller: set/reset.
pub const GC_SET_RESET: usize = 0;
/// Graphics controller: enable set/reset.
pub const GC_ENABLE_SR: usize = 1;
/// Graphics controller: color compare.
pub const GC_COMPARE: usize = 2;
/// Graphics controller: data rotate and function select.
pub const GC_ROTATE: usize = 3;
/// Graphics controller: read map select.
pub const GC_READ_MAP: usize = 4;
/// Graphics controller: graphics mode (write mode, read mode, odd/even, shift).
pub const GC_MODE: usize = 5;
/// Graphics controller: miscellaneous (graphics, chain odd/even, memory map).
pub const GC_MISC: usize = 6;
/// Graphics controller: color don't care.
pub const GC_DONT_CARE: usize = 7;
/// Graphics controller: bit mask.
pub const GC_BIT_MASK: usize = 8;

/// Attribute controller: mode control.
pub const AC_MODE: usize = 0x10;
/// Attribute controller: color plane enable.
pub const AC_PLANE_ENABLE: usize = 0x12;
/// Attribute controller: horizontal pixel panning.
pub const AC_PANNING: usize = 0x13;
/// Attribute controller: color select.
pub const AC_COLOR_SELECT: usize = 0x14;

/// The DAC: 256 entries of red, green and blue, and its index machinery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dac {
    /// 768 bytes: red, green, blue of each entry (6 bits used unless the
    /// DAC is in 8-bit mode).
    pub palette: Vec<u8>,
    /// The entry the next data write completes (0x3C8).
    pub write_index: u8,
    /// The entry the next data read comes from (0x3C7).
    pub read_index: u8,
    /// Which component (0-2) the next data access is.
    pub component: u8,
    /// 0x3C7's read-back: 0 after a write index was set, 3 after a read index.
    pub state: u8,
    /// The components written so far to the entry at `write_index`.
    pub pending: [u8; 3],
    /// The pixel mask (0x3C6).
    pub pel_mask: u8,
    /// Components are 8 bits wide (VBE's 8-bit DAC), not 6.
    pub eight_bit: bool,
}

impl Default for Dac {
    fn default() -> Dac {
        Dac {
            palette: vec![0; 768],
            write_index: 0,
            read_index: 0,
            component: 0,
            state: 0,
            pending: [0; 3],
            pel_mask: 0xFF,
            eight_bit: false,
        }
    }
}

impl Dac {
    /// Entry `i` as `0x00RRGGBB`, 6-bit components widened to 8 bits.
    pub fn rgb(&self, i: u8) -> u32 {
        let at = usize::from(i) * 3;
        let c = |k: usize| {
            let v = self.palette.get(at + k).copied().unwrap_or(0);
            u32::from(if self.eight_bit { v } else { widen6(v) })
        };
        c(0) << 16 | c(1) << 8 | c(2)
    }

    fn write_data(&mut self, v: u8) {
        self.pending[usize::from(self.component.min(2))] = v;
        self.component += 1;
        if self.component >= 3 {
            let at = usize::from(self.write_index) * 3;
            self.palette[at..at + 3].copy_from_slice(&self.pending);
            self.component = 0;
            self.write_index = self.write_index.wrapping_add(1);
        }
    }

    fn read_data(&mut self) -> u8 {
        let at = usize::from(self.read_index) * 3 + usize::from(self.component.min(2));
        let v = self.palette[at];
        self.component += 1;
        if self.component >= 3 {
            self.component = 0;
            self.read_index = self.read_index.wrapping_add(1);
        }
        if self.eight_bit {
            v
        } else {
            v & 0x3F
        }
    }
}

/// A 6-bit DAC component as 8 bits: full scale stays full scale (0x3F is
/// 0xFF), and the low bits repeat bit 0, as QEMU's VGA widens them.
#[inline]
pub fn widen6(v: u8) -> u8 {
    let v = v & 0x3F;
    let b = v & 1;
    v << 2 | b << 1 | b
}

/// The register file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VgaRegs {
    /// Miscellaneous output (0x3C2 write, 0x3CC read).
    pub misc: u8,
    /// Feature control (0x3BA/0x3DA write, 0x3CA read).
    pub feature: u8,
    /// Video subsystem enable (0x3C3).
    pub enable: u8,
    /// Sequencer index.
    pub seq_index: u8,
    /// Sequencer registers.
    pub seq: [u8; SEQ_REGS],
    /// CRTC index.
    pub crtc_index: u8,
    /// CRTC registers.
    pub crtc: [u8; CRTC_REGS],
    /// Graphics controller index.
    pub gc_index: u8,
    /// Graphics controller registers.
    pub gc: [u8; GC_REGS],
    /// Attribute controller index, with the palette address source (bit 5:
    /// the screen shows; clear while the guest programs the palette).
    pub ac_index: u8,
    /// The attribute controller's flip-flop: the next 0x3C0 write is data.
    pub ac_data_next: bool,
    /// Attribute controller registers.
    pub ac: [u8; AC_REGS],
    /// The DAC.
    pub dac: Dac,
    /// The four planes' bytes as the last latched read left them (plane n
    /// in bits 8n..8n+7).
    pub latch: u32,
}

impl Default for VgaRegs {
    fn default() -> VgaRegs {
        VgaRegs {
            misc: 0,
            feature: 0,
            enable: 0,
            seq_index: 0,
            seq: [0; SEQ_REGS],
            crtc_index: 0,
            crtc: [0; CRTC_REGS],
            gc_index: 0,
            gc: [0; GC_REGS],
            ac_index: 0,
            ac_data_next: false,
            ac: [0; AC_REGS],
            dac: Dac::default(),
            latch: 0,
        }
    }
}

impl VgaRegs {
    /// True when the CRTC answers at 0x3Dx (colour), false at 0x3Bx (mono).
    #[inline]
    pub fn color_io(&self) -> bool {
        self.misc & 1 != 0
    }

    /// A CRTC register (0 for indexes that do not exist).
    #[inline]
    pub fn cr(&self, i: usize) -> u8 {
        self.crtc.get(i).copied().unwrap_or(0)
    }

    /// The vertical display end: lines shown - 1 (10 bits).
    pub fn vertical_display_end(&self) -> u32 {
        let o = u32::from(self.crtc[crtc::OVERFLOW]);
        u32::from(self.crtc[crtc::V_DISP_END]) | (o & 0x02) << 7 | (o & 0x40) << 3
    }

    /// The line compare value (10 bits).
    pub fn line_compare(&self) -> u32 {
        u32::from(self.crtc[crtc::LINE_COMPARE])
            | (u32::from(self.crtc[crtc::OVERFLOW]) & 0x10) << 4
            | (u32::from(self.crtc[crtc::MAX_SCAN]) & 0x40) << 3
    }

    /// The start address (in character clocks / memory words).
    pub fn start_address(&self) -> u32 {
        u32::from(self.crtc[crtc::START_HI]) << 8 | u32::from(self.crtc[crtc::START_LO])
    }

    /// The cursor location.
    pub fn cursor_address(&self) -> u32 {
        u32::from(self.crtc[crtc::CURSOR_HI]) << 8 | u32::from(self.crtc[crtc::CURSOR_LO])
    }

    /// True when the screen shows graphics (GC misc bit 0) rather than text.
    pub fn graphics(&self) -> bool {
        self.gc[GC_MISC] & 1 != 0
    }

    /// True when the attribute controller passes video through (palette
    /// address source set).
    pub fn video_on(&self) -> bool {
        self.ac_index & 0x20 != 0
    }

    /// Reads one port of 0x3B0-0x3DF. `retrace` is input status 1 as the
    /// beam is now (bits 0 and 3).
    pub fn read_port(&mut self, port: u16, retrace: u8) -> u8 {
        let mono_port = (0x3B0..0x3C0).contains(&port);
        let color_port = (0x3D0..0x3E0).contains(&port);
        if (mono_port && self.color_io()) || (color_port && !self.color_io()) {
            return 0xFF;
        }
        match port {
            0x3C0 => self.ac_index,
            0x3C1 => {
                let i = usize::from(self.ac_index & 0x1F);
                self.ac.get(i).copied().unwrap_or(0)
            }
            // Input status 0: no switch sense, no CRT interrupt.
            0x3C2 => 0x00,
            0x3C3 => self.enable,
            0x3C4 => self.seq_index,
            0x3C5 => self
                .seq
                .get(usize::from(self.seq_index))
                .copied()
                .unwrap_or(0),
            0x3C6 => self.dac.pel_mask,
            0x3C7 => self.dac.state,
            0x3C8 => self.dac.write_index,
            0x3C9 => self.dac.read_data(),
            0x3CA => self.feature,
            0x3CC => self.misc,
            0x3CE => self.gc_index,
            0x3CF => self
                .gc
                .get(usize::from(self.gc_index))
                .copied()
                .unwrap_or(0),
            0x3B4 | 0x3D4 => self.crtc_index,
            0x3B5 | 0x3D5 => self.cr(usize::from(self.crtc_index)),
            0x3BA | 0x3DA => {
                self.ac_data_next = false;
                retrace & 0x09
            }
            _ => 0xFF,
        }
    }

    /// Writes one port of 0x3B0-0x3DF.
    pub fn write_port(&mut self, port: u16, v: u8) {
        let mono_port = (0x3B0..0x3C0).contains(&port);
        let color_port = (0x3D0..0x3E0).contains(&port);
        if (mono_port && self.color_io()) || (color_port && !self.color_io()) {
            return;
        }
        match port {
            0x3C0 => {
                if self.ac_data_next {
                    let i = usize::from(self.ac_index & 0x1F);
                    let v = match i {
                        0x00..=0x0F => v & 0x3F,
                        AC_MODE => v & !0x10,
                        0x11 => v,
                        AC_PLANE_ENABLE => v & 0x3F,
                        AC_PANNING | AC_COLOR_SELECT => v & 0x0F,
                        _ => v,
                    };
                    if let Some(r) = self.ac.get_mut(i) {
                        *r = v;
                    }
                } else {
                    self.ac_index = v & 0x3F;
                }
                self.ac_data_next = !self.ac_data_next;
            }
            0x3C2 => self.misc = v,
            0x3C3 => self.enable = v & 1,
            0x3C4 => self.seq_index = v & 7,
            0x3C5 => {
                let i = usize::from(self.seq_index);
                self.seq[i] = v & SEQ_MASK[i];
            }
            0x3C6 => self.dac.pel_mask = v,
            0x3C7 => {
                self.dac.read_index = v;
                self.dac.component = 0;
                self.dac.state = 3;
            }
            0x3C8 => {
                self.dac.write_index = v;
                self.dac.component = 0;
                self.dac.state = 0;
            }
            0x3C9 => self.dac.write_data(v),
            0x3CE => self.gc_index = v & 0x0F,
            0x3CF => {
                let i = usize::from(self.gc_index);
                if let Some(r) = self.gc.get_mut(i) {
                    *r = v & GC_MASK[i];
                }
            }
            0x3B4 | 0x3D4 => self.crtc_index = v,
            0x3B5 | 0x3D5 => {
                let i = usize::from(self.crtc_index);
                if i >= CRTC_REGS {
                    return;
                }
                // CR11 bit 7 protects CR0-CR7, but CR7's line compare bit 8.
                if self.crtc[crtc::V_SYNC_END] & 0x80 != 0 && i <= crtc::OVERFLOW {
                    if i == crtc::OVERFLOW {
                        self.crtc[i] = (self.crtc[i] & !0x10) | (v & 0x10);
                    }
                    return;
                }
                self.crtc[i] = v;
            }
            0x3BA | 0x3DA => self.feature = v & 0x0B,
            _ => {}
        }
    }
}

/// The standard VGA register values of a BIOS mode (IBM's tables).
pub struct ModeTable {
    /// Miscellaneous output.
    pub misc: u8,
    /// Sequencer 0-4.
    pub seq: [u8; 5],
    /// CRTC 0-0x18.
    pub crtc: [u8; CRTC_REGS],
    /// Graphics controller 0-8.
    pub gc: [u8; GC_REGS],
    /// Attribute controller 0-0x14.
    pub ac: [u8; AC_REGS],
}

/// Mode 3: 80x25 text, 9x16 character cells, 720x400.
pub const MODE_03: ModeTable = ModeTable {
    misc: 0x67,
    seq: [0x03, 0x00, 0x03, 0x00, 0x02],
    crtc: [
        0x5F, 0x4F, 0x50, 0x82, 0x55, 0x81, 0xBF, 0x1F, 0x00, 0x4F, 0x0D, 0x0E, 0x00, 0x00, 0x00,
        0x00, 0x9C, 0x8E, 0x8F, 0x28, 0x1F, 0x96, 0xB9, 0xA3, 0xFF,
    ],
    gc: [0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x0E, 0x00, 0xFF],
    ac: [
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x14, 0x07, 0x38, 0x39, 0x3A, 0x3B, 0x3C, 0x3D, 0x3E,
        0x3F, 0x0C, 0x00, 0x0F, 0x08, 0x00,
    ],
};

/// Mode 12h: 640x480, 16 colours in four planes.
pub const MODE_12: ModeTable = ModeTable {
    misc: 0xE3,
    seq: [0x03, 0x01, 0x0F, 0x00, 0x06],
    crtc: [
        0x5F, 0x4F, 0x50, 0x82, 0x54, 0x80, 0x0B, 0x3E, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0xEA, 0x8C, 0xDF, 0x28, 0x00, 0xE7, 0x04, 0xE3, 0xFF,
    ],
    gc: [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x0F, 0xFF],
    ac: [
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x14, 0x07, 0x38, 0x39, 0x3A, 0x3B, 0x3C, 0x3D, 0x3E,
        0x3F, 0x01, 0x00, 0x0F, 0x00, 0x00,
    ],
};

/// Mode 13h: 320x200, 256 colours, chain 4.
pub const MODE_13: ModeTable = ModeTable {
    misc: 0x63,
    seq: [0x03, 0x01, 0x0F, 0x00, 0x0E],
    crtc: [
        0x5F, 0x4F, 0x50, 0x82, 0x54, 0x80, 0xBF, 0x1F, 0x00, 0x41, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x9C, 0x8E, 0x8F, 0x28, 0x40, 0x96, 0xB9, 0xA3, 0xFF,
    ],
    gc: [0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x05, 0x0F, 0xFF],
    ac: [
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E,
        0x0F, 0x41, 0x00, 0x0F, 0x00, 0x00,
    ],
};

impl VgaRegs {
    /// Loads a mode's registers (the DAC is left alone) and turns the
    /// screen on, as a BIOS mode set does.
    pub fn load_mode(&mut self, t: &ModeTable) {
        self.misc = t.misc;
        self.seq[..5].copy_from_slice(&t.seq);
        self.crtc = t.crtc;
        self.gc = t.gc;
        self.ac = t.ac;
        self.ac_index = 0x20;
        self.ac_data_next = false;
    }

    /// The BIOS's 64-entry EGA-compatible DAC table (entries 64-255 black):
    /// bit 2/5 red, 1/4 green, 0/3 blue, the first of each pair worth
    /// two thirds of full scale and the second one third.
    pub fn load_ega_palette(&mut self) {
        self.dac.palette.iter_mut().for_each(|b| *b = 0);
        for i in 0..64usize {
            let c = |hi: usize, lo: usize| (((i >> hi) & 1) * 0x2A + ((i >> lo) & 1) * 0x15) as u8;
            self.dac.palette[i * 3..i * 3 + 3].copy_from_slice(&[c(2, 5), c(1, 4), c(0, 3)]);
        }
        self.dac.pel_mask = 0xFF;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dac_indexes_auto_increment() {
        let mut r = VgaRegs::default();
        r.write_port(0x3C8, 0xFE);
        for v in [1, 2, 3, 4, 5, 6, 7] {
            r.write_port(0x3C9, v);
        }
        // Entries 0xFE and 0xFF took six components; the seventh waits.
        assert_eq!(&r.dac.palette[0xFE * 3..], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(r.read_port(0x3C8, 0), 0x00, "the write index wrapped");
        assert_eq!(r.read_port(0x3C7, 0), 0, "DAC state: writing");
        r.write_port(0x3C7, 0xFF);
        assert_eq!(r.read_port(0x3C7, 0), 3, "DAC state: reading");
        let got: Vec<u8> = (0..4).map(|_| r.read_port(0x3C9, 0)).collect();
        assert_eq!(got, vec![4, 5, 6, 0], "entry 0xFF, then entry 0");
        // 6-bit components read back masked; the 8-bit DAC keeps them.
        r.write_port(0x3C8, 9);
        for v in [0xFF, 0x41, 0x80] {
            r.write_port(0x3C9, v);
        }
        r.write_port(0x3C7, 9);
        assert_eq!(r.read_port(0x3C9, 0), 0x3F);
        assert_eq!(r.dac.rgb(9), 0xFF_0700);
        r.dac.eight_bit = true;
        assert_eq!(r.dac.rgb(9), 0xFF_4180);
        assert_eq!(widen6(0x3F), 0xFF);
        assert_eq!(widen6(0x20), 0x80);
        assert_eq!(widen6(0), 0);
    }

    #[test]
    fn attribute_flip_flop_resets_on_input_status_read() {
        let mut r = VgaRegs {
            misc: 1,
            ..Default::default()
        };
        r.write_port(0x3C0, 0x05); // index 5
        r.write_port(0x3C0, 0x3F); // data
        assert_eq!(r.ac[5], 0x3F);
        r.write_port(0x3C0, 0x06); // index 6
                                   // A read of 0x3DA in between: the next write is an index again.
        r.read_port(0x3DA, 0);
        r.write_port(0x3C0, 0x07);
        assert_eq!(r.ac[6], 0, "0x07 went to the index, not register 6");
        assert_eq!(r.read_port(0x3C0, 0), 0x07);
        r.write_port(0x3C0, 0x11);
        assert_eq!(r.ac[7], 0x11);
        // The palette address source bit is kept with the index.
        r.write_port(0x3C0, 0x20);
        assert!(r.video_on());
        r.read_port(0x3DA, 0);
        // The mono port is dead while the CRTC sits at 0x3Dx.
        r.write_port(0x3C0, 0x10);
        r.read_port(0x3BA, 0);
        assert_eq!(r.read_port(0x3BA, 0), 0xFF);
        r.write_port(0x3C0, 0x01);
        assert_eq!(r.ac[AC_MODE], 0x01, "0x3BA did not reset the flip-flop");
    }

    #[test]
    fn crtc_protection_and_io_select() {
        let mut r = VgaRegs {
            misc: 1,
            ..Default::default()
        };
        r.write_port(0x3D4, 0x11);
        r.write_port(0x3D5, 0x80);
        r.write_port(0x3D4, 0x01);
        r.write_port(0x3D5, 0x4F);
        assert_eq!(r.crtc[1], 0, "CR1 protected");
        r.write_port(0x3D4, 0x07);
        r.write_port(0x3D5, 0xFF);
        assert_eq!(r.crtc[7], 0x10, "only the line compare bit gets through");
        r.write_port(0x3B4, 0x0C);
        assert_eq!(r.crtc_index, 0x07, "mono ports ignored in colour mode");
        r.write_port(0x3C2, 0x66);
        r.write_port(0x3B4, 0x0C);
        r.write_port(0x3B5, 0x12);
        assert_eq!(r.crtc[0x0C], 0x12);
        assert_eq!(r.read_port(0x3D5, 0), 0xFF);
        assert_eq!(r.read_port(0x3CC, 0), 0x66);
        // Bits that do not exist read as zero.
        r.write_port(0x3C4, 0x04);
        r.write_port(0x3C5, 0xFF);
        assert_eq!(r.read_port(0x3C5, 0), 0x0E);
        r.write_port(0x3CE, 0x05);
        r.write_port(0x3CF, 0xFF);
        assert_eq!(r.read_port(0x3CF, 0), 0x7B);
    }
}
