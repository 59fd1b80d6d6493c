//! The Bochs VBE extensions ("DISPI"): an index port at 0x1CE and a data
//! port at 0x1CF (also answered at 0x1D0), 16 bits wide, through which a
//! BIOS or a driver (Linux's bochs-drm, a VBE BIOS under vesafb) sets a
//! linear-framebuffer mode of any size and depth the video memory holds.
//!
//! Values the memory cannot hold are brought to the nearest that it can,
//! as QEMU's `-vga std` does, since the interface has no way to report an
//! error: the width to a multiple of 8, the depth to 8 if unknown, the
//! height to what fits, the offsets to 0 when the view would run off the
//! end.

use super::regs::{self, crtc, VgaRegs};
use serde::{Deserialize, Serialize};

/// Index of the ID register (0xB0C0-0xB0C5).
pub const INDEX_ID: u16 = 0;
/// Index of the horizontal resolution.
pub const INDEX_XRES: u16 = 1;
/// Index of the vertical resolution.
pub const INDEX_YRES: u16 = 2;
/// Index of the depth in bits per pixel (4, 8, 15, 16, 24, 32).
pub const INDEX_BPP: u16 = 3;
/// Index of the enable register ([`ENABLED`], [`GETCAPS`], ...).
pub const INDEX_ENABLE: u16 = 4;
/// Index of the 64 KiB bank the 0xA0000 window shows.
pub const INDEX_BANK: u16 = 5;
/// Index of the virtual (scan line) width in pixels.
pub const INDEX_VIRT_WIDTH: u16 = 6;
/// Index of the virtual height (read-only: what the memory holds).
pub const INDEX_VIRT_HEIGHT: u16 = 7;
/// Index of the horizontal offset of the view.
pub const INDEX_X_OFFSET: u16 = 8;
/// Index of the vertical offset of the view.
pub const INDEX_Y_OFFSET: u16 = 9;
/// Index of the video memory size in 64 KiB units (read-only).
pub const INDEX_VIDEO_MEMORY_64K: u16 = 0xA;
/// Registers kept (0-9).
const REGS: usize = 10;

/// The newest interface version; the ID register's reset value.
pub const ID5: u16 = 0xB0C5;
/// The oldest interface version a guest may select.
pub const ID0: u16 = 0xB0C0;

/// ENABLE: the VBE mode is on.
pub const ENABLED: u16 = 0x01;
/// ENABLE: XRES, YRES and BPP read back their maximums.
pub const GETCAPS: u16 = 0x02;
/// ENABLE: the DAC takes 8-bit components.
pub const DAC_8BIT: u16 = 0x20;
/// ENABLE: the linear framebuffer is in use (informational: it is always
/// decoded at BAR0).
pub const LFB_ENABLED: u16 = 0x40;
/// ENABLE: keep video memory as it is when the mode is switched on.
pub const NOCLEARMEM: u16 = 0x80;

/// Largest horizontal resolution.
pub const MAX_XRES: u16 = 16000;
/// Largest vertical resolution.
pub const MAX_YRES: u16 = 12000;
/// Largest depth.
pub const MAX_BPP: u16 = 32;

/// The DISPI registers and what they make of the memory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vbe {
    /// The selected register.
    pub index: u16,
    /// Registers 0-9.
    pub regs: [u16; REGS],
    /// Bytes from one scan line to the next.
    pub line_offset: u32,
    /// Byte offset of the view's first pixel (a multiple of 4).
    pub start: u32,
    /// Byte offset the 0xA0000 window shows (BANK * 64 KiB).
    pub bank_offset: u32,
}

impl Default for Vbe {
    fn default() -> Vbe {
        let mut regs = [0; REGS];
        regs[usize::from(INDEX_ID)] = ID5;
        Vbe {
            index: 0,
            regs,
            line_offset: 0,
            start: 0,
            bank_offset: 0,
        }
    }
}

impl Vbe {
    /// True while a VBE mode is on.
    #[inline]
    pub fn enabled(&self) -> bool {
        self.regs[usize::from(INDEX_ENABLE)] & ENABLED != 0
    }

    /// Register `i`.
    #[inline]
    pub fn reg(&self, i: u16) -> u16 {
        self.regs.get(usize::from(i)).copied().unwrap_or(0)
    }

    /// The depth, as bits per pixel in memory (15 occupies 16).
    pub fn bpp(&self) -> u16 {
        self.reg(INDEX_BPP)
    }

    /// Reads the data port; `vram_len` is the video memory's size.
    pub fn read_data(&self, vram_len: usize) -> u16 {
        let caps = self.reg(INDEX_ENABLE) & GETCAPS != 0;
        match self.index {
            INDEX_XRES if caps => MAX_XRES,
            INDEX_YRES if caps => MAX_YRES,
            INDEX_BPP if caps => MAX_BPP,
            i if usize::from(i) < REGS => self.reg(i),
            INDEX_VIDEO_MEMORY_64K => (vram_len >> 16).min(0xFFFF) as u16,
            _ => 0,
        }
    }

    /// Writes the data port. Switching a mode on sets the VGA registers
    /// that describe it (graphics, chain 4 or planar, the CRTC's width,
    /// height and offset), as the interface's BIOS would. Returns the
    /// number of bytes at the start of video memory to clear (a mode
    /// switched on without [`NOCLEARMEM`]).
    pub fn write_data(&mut self, v: u16, vga: &mut VgaRegs, vram_len: usize) -> Option<usize> {
        match self.index {
            INDEX_ID if (ID0..=ID5).contains(&v) => self.regs[0] = v,
            INDEX_ID => {}
            INDEX_XRES | INDEX_YRES | INDEX_BPP | INDEX_VIRT_WIDTH | INDEX_X_OFFSET
            | INDEX_Y_OFFSET => {
                self.regs[usize::from(self.index)] = v;
                self.fixup(vram_len);
            }
            INDEX_BANK => {
                let banks = (vram_len >> 16).max(1) as u16;
                let mask = banks.next_power_of_two() - 1;
                let mask = if self.bpp() == 4 { mask >> 2 } else { mask };
                let v = v & mask;
                self.regs[usize::from(INDEX_BANK)] = v;
                self.bank_offset = u32::from(v) << 16;
            }
            INDEX_ENABLE => {
                let mut clear = None;
                if v & ENABLED != 0 && !self.enabled() {
                    for i in [INDEX_VIRT_WIDTH, INDEX_X_OFFSET, INDEX_Y_OFFSET] {
                        self.regs[usize::from(i)] = 0;
                    }
                    self.regs[usize::from(INDEX_ENABLE)] |= ENABLED;
                    self.fixup(vram_len);
                    if v & NOCLEARMEM == 0 {
                        let yres = u32::from(self.reg(INDEX_YRES));
                        clear = Some((yres * self.line_offset) as usize);
                    }
                    self.program_vga(vga);
                } else if v & ENABLED == 0 {
                    self.bank_offset = 0;
                }
                vga.dac.eight_bit = v & DAC_8BIT != 0;
                self.regs[usize::from(INDEX_ENABLE)] = v;
                return clear;
            }
            _ => {}
        }
        None
    }

    /// The VGA registers a VBE mode needs: graphics with the 0xA0000 window
    /// 64 KiB wide (the bank), no CGA addressing, the CRTC's width, height
    /// and offset, no line compare or double scan; chain 4 with all planes
    /// for depths of 8 and more (planar for 4).
    fn program_vga(&self, vga: &mut VgaRegs) {
        vga.gc[regs::GC_MISC] = (vga.gc[regs::GC_MISC] & !0x0C) | 0x04 | 0x01;
        vga.crtc[crtc::MODE] |= 3;
        vga.crtc[crtc::OFFSET] = (self.line_offset >> 3) as u8;
        vga.crtc[crtc::H_DISP_END] = ((self.reg(INDEX_XRES) >> 3).wrapping_sub(1)) as u8;
        let h = u32::from(self.reg(INDEX_YRES)).wrapping_sub(1);
        vga.crtc[crtc::V_DISP_END] = h as u8;
        vga.crtc[crtc::OVERFLOW] =
            (vga.crtc[crtc::OVERFLOW] & !0x42) | ((h >> 7) & 0x02) as u8 | ((h >> 3) & 0x40) as u8;
        vga.crtc[crtc::LINE_COMPARE] = 0xFF;
        vga.crtc[crtc::OVERFLOW] |= 0x10;
        vga.crtc[crtc::MAX_SCAN] |= 0x40;
        let shift = if self.bpp() == 4 {
            vga.seq[regs::SEQ_CLOCK] &= !0x08;
            0
        } else {
            vga.seq[regs::SEQ_MEMORY] |= 0x08;
            vga.seq[regs::SEQ_MAP_MASK] |= 0x0F;
            2
        };
        vga.gc[regs::GC_MODE] = (vga.gc[regs::GC_MODE] & !0x60) | shift << 5;
        vga.crtc[crtc::MAX_SCAN] &= !0x9F;
    }

    /// Brings the registers to values the memory can show (see the module
    /// docs) and derives the line offset and start.
    fn fixup(&mut self, vram_len: usize) {
        if !self.enabled() {
            return;
        }
        let r = &mut self.regs;
        let bits: u32 = match r[usize::from(INDEX_BPP)] {
            4 | 8 | 16 | 24 | 32 => u32::from(r[usize::from(INDEX_BPP)]),
            15 => 16,
            _ => {
                r[usize::from(INDEX_BPP)] = 8;
                8
            }
        };
        let x = usize::from(INDEX_XRES);
        r[x] &= !7;
        if r[x] == 0 {
            r[x] = 8;
        }
        r[x] = r[x].min(MAX_XRES);
        let vw = usize::from(INDEX_VIRT_WIDTH);
        r[vw] = (r[vw] & !7).min(MAX_XRES).max(r[x]);
        let line = u32::from(r[vw]) * bits / 8;
        let maxy = (vram_len as u64 / u64::from(line.max(1))).min(0xFFFF) as u16;
        let y = usize::from(INDEX_YRES);
        r[y] = r[y].clamp(1, MAX_YRES).min(maxy.max(1));
        let (xo, yo) = (usize::from(INDEX_X_OFFSET), usize::from(INDEX_Y_OFFSET));
        r[xo] = r[xo].min(MAX_XRES);
        r[yo] = r[yo].min(MAX_YRES);
        let yres = u64::from(r[y]);
        let fits = |xo: u16, yo: u16| {
            let off = u64::from(xo) * u64::from(bits) / 8 + u64::from(yo) * u64::from(line);
            (off + yres * u64::from(line) <= vram_len as u64).then_some(off)
        };
        let offset = match fits(r[xo], r[yo]) {
            Some(o) => o,
            None => {
                r[yo] = 0;
                match fits(r[xo], 0) {
                    Some(o) => o,
                    None => {
                        r[xo] = 0;
                        0
                    }
                }
            }
        };
        r[usize::from(INDEX_VIRT_HEIGHT)] = maxy;
        self.line_offset = line;
        self.start = (offset as u32) & !3;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VRAM: usize = 16 << 20;

    fn set(v: &mut Vbe, vga: &mut VgaRegs, i: u16, val: u16) -> Option<usize> {
        v.index = i;
        v.write_data(val, vga, VRAM)
    }

    #[test]
    fn id_caps_and_enable() {
        let (mut v, mut vga) = (Vbe::default(), VgaRegs::default());
        v.index = INDEX_ID;
        assert_eq!(v.read_data(VRAM), 0xB0C5);
        set(&mut v, &mut vga, INDEX_ID, 0xB0C2);
        assert_eq!(v.reg(INDEX_ID), 0xB0C2);
        set(&mut v, &mut vga, INDEX_ID, 0x1234);
        assert_eq!(v.reg(INDEX_ID), 0xB0C2, "unknown versions are refused");
        v.index = INDEX_VIDEO_MEMORY_64K;
        assert_eq!(v.read_data(VRAM), 256);
        set(&mut v, &mut vga, INDEX_ENABLE, GETCAPS);
        v.index = INDEX_XRES;
        assert_eq!(v.read_data(VRAM), MAX_XRES);
        v.index = INDEX_BPP;
        assert_eq!(v.read_data(VRAM), 32);
        set(&mut v, &mut vga, INDEX_ENABLE, 0);
        set(&mut v, &mut vga, INDEX_XRES, 1024);
        set(&mut v, &mut vga, INDEX_YRES, 768);
        set(&mut v, &mut vga, INDEX_BPP, 32);
        let clear = set(&mut v, &mut vga, INDEX_ENABLE, ENABLED | LFB_ENABLED);
        assert_eq!(
            clear,
            Some(1024 * 768 * 4),
            "switching on clears the screen"
        );
        assert!(v.enabled() && vga.graphics());
        assert_eq!(v.line_offset, 4096);
        assert_eq!(vga.seq[regs::SEQ_MEMORY] & 8, 8, "chain 4");
        assert_eq!(v.reg(INDEX_VIRT_HEIGHT), 4096);
        // Panning within the virtual screen, and beyond it.
        set(&mut v, &mut vga, INDEX_Y_OFFSET, 100);
        assert_eq!(v.start, 100 * 4096);
        set(&mut v, &mut vga, INDEX_Y_OFFSET, 4000);
        assert_eq!(v.reg(INDEX_Y_OFFSET), 0, "off the end: back to 0");
        // Already on: no second clear; NOCLEARMEM keeps the memory.
        assert_eq!(set(&mut v, &mut vga, INDEX_ENABLE, ENABLED), None);
        set(&mut v, &mut vga, INDEX_ENABLE, 0);
        assert!(!v.enabled());
        assert_eq!(
            set(&mut v, &mut vga, INDEX_ENABLE, ENABLED | NOCLEARMEM),
            None
        );
        set(&mut v, &mut vga, INDEX_ENABLE, ENABLED | DAC_8BIT);
        assert!(vga.dac.eight_bit);
    }

    #[test]
    fn fixups_and_banks() {
        let (mut v, mut vga) = (Vbe::default(), VgaRegs::default());
        set(&mut v, &mut vga, INDEX_ENABLE, ENABLED);
        set(&mut v, &mut vga, INDEX_BPP, 7);
        assert_eq!(v.bpp(), 8);
        set(&mut v, &mut vga, INDEX_XRES, 1023);
        assert_eq!(v.reg(INDEX_XRES), 1016);
        set(&mut v, &mut vga, INDEX_XRES, 0);
        assert_eq!(v.reg(INDEX_XRES), 8);
        set(&mut v, &mut vga, INDEX_XRES, 16000);
        set(&mut v, &mut vga, INDEX_BPP, 32);
        set(&mut v, &mut vga, INDEX_YRES, 12000);
        assert!(u32::from(v.reg(INDEX_YRES)) * v.line_offset <= VRAM as u32);
        assert_eq!(
            v.reg(INDEX_YRES),
            262,
            "16 MiB holds 262 lines of 64000 bytes"
        );
        set(&mut v, &mut vga, INDEX_BANK, 0xFFFF);
        assert_eq!(v.bank_offset, 255 << 16);
    }
}
