//! The legacy memory window (0xA0000-0xBFFFF): how CPU accesses reach the
//! four planes.
//!
//! Video memory keeps the planes interleaved, as QEMU's VGA does: byte
//! `4 * a + p` is plane `p`'s byte at address `a`. So a latched access to
//! address `a` reads or writes one aligned dword, chain 4 addresses the
//! memory bytewise (pixel `x` of mode 13h is byte `x`, which is plane
//! `x & 3` at address `x >> 2`, just where unchained Mode X finds it), and
//! a VBE linear framebuffer is the memory itself.
//!
//! The graphics controller's memory map select decides which part of the
//! window answers (128 KiB at 0xA0000, 64 KiB at 0xA0000 plus the VBE bank,
//! 32 KiB at 0xB0000 or at 0xB8000); the rest reads all ones and ignores
//! writes. Then, in this order:
//! * chain 4 (sequencer memory mode bit 3): byte `a` of memory, written
//!   when the map mask enables plane `a & 3`;
//! * odd/even (graphics mode bit 4): plane `(read map select & 2) | (a & 1)`
//!   at address `a & !1`, as text modes use it (character in plane 0,
//!   attribute in plane 1, font in plane 2);
//! * otherwise the latched access: a read loads all four planes into the
//!   latches and returns plane `read map select` (read mode 0) or the
//!   colour-compare result (read mode 1); a write combines the CPU byte,
//!   set/reset, rotation, the logical function, the bit mask and the
//!   latches by write mode 0-3, and stores the planes the map mask enables.

use super::regs::{
    GC_BIT_MASK, GC_COMPARE, GC_DONT_CARE, GC_ENABLE_SR, GC_MISC, GC_MODE, GC_READ_MAP, GC_ROTATE,
    GC_SET_RESET, SEQ_MAP_MASK, SEQ_MEMORY,
};
use super::Vga;
use morph86_memory::VideoRam;

/// A byte per enabled plane: bit n of `planes` selects byte n.
#[inline]
fn expand(planes: u8) -> u32 {
    let mut m = 0;
    for p in 0..4 {
        if planes >> p & 1 != 0 {
            m |= 0xFF << (8 * p);
        }
    }
    m
}

#[inline]
fn replicate(b: u8) -> u32 {
    u32::from(b) * 0x0101_0101
}

impl Vga {
    /// The video memory address of window offset `addr` (0..0x20000 from
    /// 0xA0000) by the memory map select, if that part of the window is
    /// mapped.
    fn window_address(&self, addr: u32) -> Option<u32> {
        let addr = addr & 0x1_FFFF;
        match (self.regs.gc[GC_MISC] >> 2) & 3 {
            0 => Some(addr),
            1 => (addr < 0x1_0000).then(|| addr + self.vbe.bank_offset),
            2 => addr.checked_sub(0x1_0000).filter(|&a| a < 0x8000),
            _ => addr.checked_sub(0x1_8000).filter(|&a| a < 0x8000),
        }
    }

    /// True when CPU accesses go through chain 4.
    #[inline]
    fn chain4(&self) -> bool {
        self.regs.seq[SEQ_MEMORY] & 0x08 != 0
    }

    /// True when CPU accesses go through odd/even addressing.
    #[inline]
    fn odd_even(&self) -> bool {
        self.regs.gc[GC_MODE] & 0x10 != 0
    }

    /// Reads the byte at window offset `addr` (0..0x20000 from 0xA0000).
    pub fn window_read(&mut self, vram: &VideoRam, addr: u32) -> u8 {
        let Some(a) = self.window_address(addr) else {
            return 0xFF;
        };
        if self.chain4() {
            return vram.read_u8(a);
        }
        if self.odd_even() {
            let plane = (self.regs.gc[GC_READ_MAP] & 2) | (a & 1) as u8;
            return vram.read_u8(((a & !1) << 1) | u32::from(plane));
        }
        self.regs.latch = a.checked_mul(4).map_or(u32::MAX, |o| vram.read(o, 4));
        let gc = &self.regs.gc;
        if gc[GC_MODE] & 0x08 == 0 {
            (self.regs.latch >> (8 * (gc[GC_READ_MAP] & 3))) as u8
        } else {
            // Read mode 1: a 1 where every plane that matters matches.
            let diff = (self.regs.latch ^ expand(gc[GC_COMPARE])) & expand(gc[GC_DONT_CARE]);
            let any = diff | diff >> 16;
            !((any | any >> 8) as u8)
        }
    }

    /// Writes the byte at window offset `addr`. The pages written become
    /// dirty; a write that reaches plane 2 may change the font.
    pub fn window_write(&mut self, vram: &mut VideoRam, addr: u32, v: u8) {
        let Some(a) = self.window_address(addr) else {
            return;
        };
        let map_mask = self.regs.seq[SEQ_MAP_MASK] & 0x0F;
        if self.chain4() {
            if map_mask >> (a & 3) & 1 != 0 {
                self.store(vram, a, v);
                if a & 3 == 2 {
                    self.font_written = true;
                }
            }
            return;
        }
        if self.odd_even() {
            let plane = (self.regs.gc[GC_READ_MAP] & 2) | (a & 1) as u8;
            if map_mask >> plane & 1 != 0 {
                self.store(vram, ((a & !1) << 1) | u32::from(plane), v);
                if plane == 2 {
                    self.font_written = true;
                }
            }
            return;
        }
        let gc = self.regs.gc;
        let latch = self.regs.latch;
        let rotate = |b: u8| b.rotate_right(u32::from(gc[GC_ROTATE] & 7));
        let (value, bit_mask) = match gc[GC_MODE] & 3 {
            0 => {
                let sr_enable = expand(gc[GC_ENABLE_SR]);
                let v = replicate(rotate(v));
                (
                    (v & !sr_enable) | (expand(gc[GC_SET_RESET]) & sr_enable),
                    gc[GC_BIT_MASK],
                )
            }
            // Write mode 1: the latches as they are.
            1 => return self.store_planes(vram, a, latch, map_mask),
            2 => (expand(v & 0x0F), gc[GC_BIT_MASK]),
            _ => (expand(gc[GC_SET_RESET]), gc[GC_BIT_MASK] & rotate(v)),
        };
        let value = match gc[GC_ROTATE] >> 3 & 3 {
            0 => value,
            1 => value & latch,
            2 => value | latch,
            _ => value ^ latch,
        };
        let bits = replicate(bit_mask);
        self.store_planes(vram, a, (value & bits) | (latch & !bits), map_mask);
    }

    /// Stores a byte of video memory and marks its page dirty.
    fn store(&mut self, vram: &mut VideoRam, at: u32, v: u8) {
        let at = at as usize;
        if let Some(b) = vram.bytes_mut().get_mut(at) {
            *b = v;
            vram.mark_dirty(at, 1);
        }
    }

    /// Stores the planes of `value` that `map_mask` enables at address `a`.
    fn store_planes(&mut self, vram: &mut VideoRam, a: u32, value: u32, map_mask: u8) {
        let Some(at) = (a as usize).checked_mul(4) else {
            return;
        };
        let Some(dst) = vram.bytes_mut().get_mut(at..at + 4) else {
            return;
        };
        let keep = !expand(map_mask);
        let old = u32::from_le_bytes([dst[0], dst[1], dst[2], dst[3]]);
        dst.copy_from_slice(&((old & keep) | (value & !keep)).to_le_bytes());
        vram.mark_dirty(at, 4);
        if map_mask & 4 != 0 {
            self.font_written = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::regs::*;
    use super::super::Vga;
    use morph86_memory::VideoRam;

    fn planar() -> (Vga, VideoRam) {
        let mut v = Vga::new(None);
        // Mode 12h's memory setup: planar, 128 KiB window, all planes.
        v.regs.seq[SEQ_MEMORY] = 0x06;
        v.regs.seq[SEQ_MAP_MASK] = 0x0F;
        v.regs.gc = [0, 0, 0, 0, 0, 0x00, 0x05, 0x0F, 0xFF];
        (v, VideoRam::new(1 << 20))
    }

    fn planes(vram: &VideoRam, a: u32) -> [u8; 4] {
        let b = vram.bytes();
        let at = a as usize * 4;
        [b[at], b[at + 1], b[at + 2], b[at + 3]]
    }

    #[test]
    fn write_mode_0_set_reset_rotate_function_and_bit_mask() {
        let (mut v, mut vram) = planar();
        v.window_write(&mut vram, 10, 0xA5);
        assert_eq!(planes(&vram, 10), [0xA5; 4], "plain write: every plane");
        // Map mask: planes 1 and 3 only.
        v.regs.seq[SEQ_MAP_MASK] = 0x0A;
        v.window_write(&mut vram, 11, 0x3C);
        assert_eq!(planes(&vram, 11), [0, 0x3C, 0, 0x3C]);
        v.regs.seq[SEQ_MAP_MASK] = 0x0F;
        // Set/reset on planes 0 and 2 with value 0b0101: those planes get
        // 0xFF (plane 0) and 0xFF (plane 2) whatever the CPU byte.
        v.regs.gc[GC_SET_RESET] = 0x05;
        v.regs.gc[GC_ENABLE_SR] = 0x05;
        v.window_write(&mut vram, 12, 0x12);
        assert_eq!(planes(&vram, 12), [0xFF, 0x12, 0xFF, 0x12]);
        v.regs.gc[GC_ENABLE_SR] = 0;
        // Rotate right by 4.
        v.regs.gc[GC_ROTATE] = 0x04;
        v.window_write(&mut vram, 13, 0x12);
        assert_eq!(planes(&vram, 13), [0x21; 4]);
        // XOR with the latches, under a bit mask.
        v.regs.gc[GC_ROTATE] = 0x18;
        let _ = v.window_read(&vram, 10); // latches = A5 x4
        v.regs.gc[GC_BIT_MASK] = 0xF0;
        v.window_write(&mut vram, 14, 0xFF);
        assert_eq!(planes(&vram, 14), [0x55; 4], "(FF ^ A5) & F0 | A5 & 0F");
        // AND and OR.
        v.regs.gc[GC_BIT_MASK] = 0xFF;
        v.regs.gc[GC_ROTATE] = 0x08;
        v.window_write(&mut vram, 15, 0x0F);
        assert_eq!(planes(&vram, 15), [0x05; 4]);
        v.regs.gc[GC_ROTATE] = 0x10;
        v.window_write(&mut vram, 15, 0x0F);
        assert_eq!(planes(&vram, 15), [0xAF; 4]);
    }

    #[test]
    fn write_modes_1_2_3_and_latches() {
        let (mut v, mut vram) = planar();
        v.regs.seq[SEQ_MAP_MASK] = 0x01;
        v.window_write(&mut vram, 0, 0x11);
        v.regs.seq[SEQ_MAP_MASK] = 0x02;
        v.window_write(&mut vram, 0, 0x22);
        v.regs.seq[SEQ_MAP_MASK] = 0x04;
        v.window_write(&mut vram, 0, 0x33);
        v.regs.seq[SEQ_MAP_MASK] = 0x08;
        v.window_write(&mut vram, 0, 0x44);
        v.regs.seq[SEQ_MAP_MASK] = 0x0F;
        // Write mode 1 copies the latches (a screen-to-screen copy).
        v.regs.gc[GC_MODE] = 0x01;
        let _ = v.window_read(&vram, 0);
        assert_eq!(v.regs.latch, 0x4433_2211);
        v.window_write(&mut vram, 5, 0xEE);
        assert_eq!(planes(&vram, 5), [0x11, 0x22, 0x33, 0x44]);
        // Write mode 2: the CPU byte's low nibble is a colour, one bit per
        // plane, under the bit mask.
        v.regs.gc[GC_MODE] = 0x02;
        v.regs.gc[GC_BIT_MASK] = 0x81;
        v.window_write(&mut vram, 5, 0x09);
        assert_eq!(planes(&vram, 5), [0x91, 0x22, 0x32, 0xC5]);
        // Write mode 3: set/reset is the colour, the rotated CPU byte ANDs
        // the bit mask.
        v.regs.gc[GC_MODE] = 0x03;
        v.regs.gc[GC_SET_RESET] = 0x06;
        v.regs.gc[GC_BIT_MASK] = 0xFF;
        v.regs.gc[GC_ROTATE] = 0x01;
        let _ = v.window_read(&vram, 6); // latches = 0
        v.window_write(&mut vram, 6, 0x0F); // rotated: 0x87
        assert_eq!(planes(&vram, 6), [0x00, 0x87, 0x87, 0x00]);
    }

    #[test]
    fn read_modes_0_and_1() {
        let (mut v, mut vram) = planar();
        vram.bytes_mut()[40..44].copy_from_slice(&[0xF0, 0xCC, 0xAA, 0x0F]);
        v.regs.gc[GC_READ_MAP] = 2;
        assert_eq!(v.window_read(&vram, 10), 0xAA);
        // Read mode 1: which pixels have colour 0b0101 (planes 0 and 2 set,
        // 1 and 3 clear)? bit 7: planes 1,1,1,0 -> colour 0111: no.
        v.regs.gc[GC_MODE] = 0x08;
        v.regs.gc[GC_COMPARE] = 0x05;
        v.regs.gc[GC_DONT_CARE] = 0x0F;
        let want = (0..8).fold(0u8, |acc, bit| {
            let px = [0xF0u8, 0xCC, 0xAA, 0x0F]
                .iter()
                .enumerate()
                .fold(0, |c, (p, b)| c | ((b >> bit) & 1) << p);
            acc | u8::from(px == 5) << bit
        });
        assert_eq!(v.window_read(&vram, 10), want);
        // Don't care on every plane: every pixel matches.
        v.regs.gc[GC_DONT_CARE] = 0;
        assert_eq!(v.window_read(&vram, 10), 0xFF);
    }

    #[test]
    fn chain4_odd_even_and_memory_maps() {
        let (mut v, mut vram) = planar();
        v.regs.seq[SEQ_MEMORY] = 0x0E; // chain 4
        v.regs.gc[GC_MISC] = 0x05; // A0000, 64 KiB
        for x in 0..8 {
            v.window_write(&mut vram, x, 0x10 + x as u8);
        }
        // Byte x is plane x & 3 at address x >> 2.
        assert_eq!(planes(&vram, 0), [0x10, 0x11, 0x12, 0x13]);
        assert_eq!(planes(&vram, 1), [0x14, 0x15, 0x16, 0x17]);
        assert_eq!(v.window_read(&vram, 6), 0x16);
        // Map mask disables plane 2: bytes 2, 6 ... stay.
        v.regs.seq[SEQ_MAP_MASK] = 0x0B;
        v.window_write(&mut vram, 6, 0xEE);
        assert_eq!(v.window_read(&vram, 6), 0x16);
        assert_eq!(v.window_read(&vram, 0x1_0000), 0xFF, "outside 64 KiB");
        // Text: odd/even, B8000.
        v.regs.seq[SEQ_MEMORY] = 0x02;
        v.regs.seq[SEQ_MAP_MASK] = 0x03;
        v.regs.gc[GC_MODE] = 0x10;
        v.regs.gc[GC_MISC] = 0x0E;
        v.window_write(&mut vram, 0x1_8000, b'H');
        v.window_write(&mut vram, 0x1_8001, 0x1F);
        v.window_write(&mut vram, 0x1_8002, b'i');
        assert_eq!(planes(&vram, 0)[..2], [b'H', 0x1F]);
        assert_eq!(planes(&vram, 1)[0], b'i', "cell 1 at address 2: plane 0");
        assert_eq!(v.window_read(&vram, 0x1_8001), 0x1F);
        assert_eq!(v.window_read(&vram, 0), 0xFF, "A0000 is not mapped");
        v.window_write(&mut vram, 0x1_0000, 0x55);
        assert_eq!(planes(&vram, 0)[0], b'H', "B0000 is not mapped either");
        // B0000 for 32 KiB (mono text).
        v.regs.gc[GC_MISC] = 0x0A;
        assert_eq!(v.window_read(&vram, 0x1_0000), b'H');
        assert_eq!(v.window_read(&vram, 0x1_8000), 0xFF);
    }

    #[test]
    fn window_writes_mark_pages_dirty() {
        let (mut v, mut vram) = planar();
        vram.take_dirty();
        v.window_write(&mut vram, 0x1400, 1); // address 0x1400 -> bytes 0x5000..
        let d = vram.take_dirty();
        assert!(d.page(5) && d.count() == 1);
        let _ = v.window_read(&vram, 0x1400);
        assert!(vram.dirty().is_empty(), "reads leave pages clean");
    }
}
