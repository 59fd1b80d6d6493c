//! The VGA as a guest sees it through its ports and window, and what it
//! renders.

use super::regs::{self, ModeTable};
use super::*;
use crate::bus::Device;

fn vga() -> (Vga, VideoRam) {
    let mut vram = VideoRam::new(VRAM_SIZE);
    let mut v = Vga::new(None);
    v.bios_text_mode(&mut vram);
    (v, vram)
}

fn out(v: &mut Vga, port: u16, value: u8) {
    v.pio_write(VGA_PORT, port - VGA_PORT, 1, u32::from(value));
}

fn inb(v: &mut Vga, port: u16) -> u8 {
    v.pio_read(VGA_PORT, port - VGA_PORT, 1) as u8
}

fn vbe(v: &mut Vga, index: u16, value: u16) {
    v.pio_write(VBE_PORT, 0, 2, u32::from(index));
    v.pio_write(VBE_PORT, 1, 2, u32::from(value));
}

fn vbe_read(v: &mut Vga, index: u16) -> u16 {
    v.pio_write(VBE_PORT, 0, 2, u32::from(index));
    v.pio_read(VBE_PORT, 1, 2) as u16
}

/// Programs a mode through the ports, as a guest without a BIOS does,
/// and clears the planes as a BIOS mode set would.
fn set_mode(v: &mut Vga, vram: &mut VideoRam, t: &ModeTable) {
    vram.bytes_mut()[..256 << 10].fill(0);
    vram.mark_dirty(0, 256 << 10);
    out(v, 0x3C2, t.misc);
    for (i, &s) in t.seq.iter().enumerate() {
        out(v, 0x3C4, i as u8);
        out(v, 0x3C5, s);
    }
    out(v, 0x3D4, 0x11);
    out(v, 0x3D5, 0);
    for (i, &c) in t.crtc.iter().enumerate() {
        out(v, 0x3D4, i as u8);
        out(v, 0x3D5, c);
    }
    for (i, &g) in t.gc.iter().enumerate() {
        out(v, 0x3CE, i as u8);
        out(v, 0x3CF, g);
    }
    inb(v, 0x3DA);
    for (i, &a) in t.ac.iter().enumerate() {
        out(v, 0x3C0, i as u8);
        out(v, 0x3C0, a);
    }
    out(v, 0x3C0, 0x20);
}

#[test]
fn power_on_text_mode_shows_a_blank_screen_with_the_font_in_plane_2() {
    let (v, vram) = vga();
    let t = v.text_screen(&vram).expect("text mode");
    assert_eq!((t.cols, t.rows), (80, 25));
    assert!(t.cells.iter().all(|&c| c == (b' ', 0x07)));
    assert_eq!(t.cursor, Some((0, 0)));
    assert_eq!(t.to_string(), "\n".repeat(25));
    // Glyph 'A' row 4 lies in plane 2 at 'A' * 32 + 4.
    let at = (usize::from(b'A') * 32 + 4) * 4 + 2;
    assert_eq!(vram.bytes()[at], FONT_8X16[usize::from(b'A') * 16 + 4]);
}

#[test]
fn a_text_cell_renders_its_glyph_from_plane_2() {
    let (mut v, mut vram) = vga();
    // "Hi" at row 3, column 2, yellow on blue, through the window (B8000).
    let cell = 3 * 80 + 2;
    for (k, &b) in [b'H', 0x1E, b'i', 0x1E].iter().enumerate() {
        v.window_write(&mut vram, 0x1_8000 + cell * 2 + k as u32, b);
    }
    // The cursor elsewhere and off, so the cell is the glyph alone.
    out(&mut v, 0x3D4, 0x0A);
    out(&mut v, 0x3D5, 0x20);
    let mut f = Frame::default();
    assert!(v.render(&mut vram, 0, &mut f).is_some());
    assert_eq!((f.width, f.height), (720, 400));
    // 6-bit DAC components widen as QEMU widens them: 0x2A -> 0xA8.
    let fg = 0xFF_FF57; // attribute E -> palette 3E -> DAC 3F,3F,15
    let bg = 0x00_00A8; // attribute 1 -> DAC 00,00,2A
    for (n, &ch) in [b'H', b'i'].iter().enumerate() {
        for y in 0..16u32 {
            let bits = FONT_8X16[usize::from(ch) * 16 + y as usize];
            for x in 0..9u32 {
                let want = if x < 8 && bits >> (7 - x) & 1 != 0 {
                    fg
                } else {
                    bg
                };
                let got = f.pixel((2 + n as u32) * 9 + x, 3 * 16 + y).unwrap();
                assert_eq!(got, want, "{} at ({x}, {y})", ch as char);
            }
        }
    }
    assert_eq!(
        v.text_screen(&vram).unwrap().row(3),
        "  Hi",
        "the text snapshot sees the same cells"
    );
    // Nothing changed: nothing to draw. One character changed: its cell.
    assert_eq!(v.render(&mut vram, 0, &mut f), None);
    v.window_write(&mut vram, 0x1_8000 + 2 * (24 * 80 + 79), b'!');
    assert_eq!(
        v.render(&mut vram, 0, &mut f),
        Some(DirtyRect {
            x: 79 * 9,
            y: 24 * 16,
            width: 9,
            height: 16
        })
    );
}

#[test]
fn the_cursor_blinks_with_virtual_time() {
    let (mut v, mut vram) = vga();
    out(&mut v, 0x3D4, 0x0E);
    out(&mut v, 0x3D5, 0x00);
    out(&mut v, 0x3D4, 0x0F);
    out(&mut v, 0x3D5, 81); // column 1, row 1
    assert_eq!(v.text_screen(&vram).unwrap().cursor, Some((1, 1)));
    let mut f = Frame::default();
    v.render(&mut vram, 0, &mut f);
    // Cursor lines 13-14 of the cell in the foreground colour (grey).
    let grey = 0xA8_A8A8;
    assert_eq!(f.pixel(9 + 3, 16 + 13), Some(grey));
    assert_eq!(f.pixel(9 + 8, 16 + 14), Some(grey), "ninth column too");
    assert_eq!(f.pixel(9 + 3, 16 + 12), Some(0));
    // Eight frames later it is off; only its cell is drawn again.
    let r = v.render(&mut vram, 8 * FRAME_NS, &mut f).unwrap();
    assert_eq!((r.x, r.y, r.width, r.height), (9, 16, 9, 16));
    assert_eq!(f.pixel(9 + 3, 16 + 13), Some(0));
}

#[test]
fn mode_13h_pixels_are_dac_colours_drawn_twice_each_way() {
    let (mut v, mut vram) = vga();
    set_mode(&mut v, &mut vram, &regs::MODE_13);
    out(&mut v, 0x3C8, 5);
    for c in [10, 20, 63] {
        out(&mut v, 0x3C9, c);
    }
    // Pixel (7, 3) is byte 3 * 320 + 7 of the window.
    v.window_write(&mut vram, 3 * 320 + 7, 5);
    let mut f = Frame::default();
    v.render(&mut vram, 0, &mut f);
    assert_eq!((f.width, f.height), (640, 400));
    let c = u32::from(regs::widen6(10)) << 16 | u32::from(regs::widen6(20)) << 8 | 0xFF;
    for (x, y) in [(14, 6), (15, 6), (14, 7), (15, 7)] {
        assert_eq!(f.pixel(x, y), Some(c), "({x}, {y})");
    }
    assert_eq!(f.pixel(16, 6), Some(0));
    assert_eq!(f.pixel(14, 8), Some(0));
    // One byte written: only its two lines are drawn again.
    v.window_write(&mut vram, 199 * 320, 5);
    let r = v.render(&mut vram, 0, &mut f).unwrap();
    assert!(r.y <= 398 && r.y + r.height >= 400, "{r:?}");
    assert_eq!(f.pixel(0, 399), Some(c));
    // A palette change redraws everything.
    out(&mut v, 0x3C8, 5);
    for c in [0, 0, 0] {
        out(&mut v, 0x3C9, c);
    }
    assert_eq!(
        v.render(&mut vram, 0, &mut f),
        Some(DirtyRect::full(640, 400))
    );
    assert_eq!(f.pixel(14, 6), Some(0));
}

#[test]
fn mode_x_unchained_planes_show_in_pixel_order() {
    let (mut v, mut vram) = vga();
    set_mode(&mut v, &mut vram, &regs::MODE_13);
    // Unchain (Mode X): sequencer memory mode without chain 4, CRTC byte mode.
    out(&mut v, 0x3C4, 4);
    out(&mut v, 0x3C5, 0x06);
    out(&mut v, 0x3D4, 0x14);
    out(&mut v, 0x3D5, 0x00);
    out(&mut v, 0x3D4, 0x17);
    out(&mut v, 0x3D5, 0xE3);
    out(&mut v, 0x3C8, 1);
    for c in [63, 0, 0] {
        out(&mut v, 0x3C9, c);
    }
    // Pixel x is plane x & 3 at address x / 4: pixel 6 of line 0.
    out(&mut v, 0x3C4, 2);
    out(&mut v, 0x3C5, 1 << 2);
    v.window_write(&mut vram, 1, 1);
    let mut f = Frame::default();
    v.render(&mut vram, 0, &mut f);
    assert_eq!(f.pixel(12, 0), Some(0xFF_0000));
    assert_eq!(f.pixel(10, 0), Some(0));
    assert_eq!(f.pixel(14, 0), Some(0));
}

#[test]
fn mode_12h_planes_make_16_colours() {
    let (mut v, mut vram) = vga();
    set_mode(&mut v, &mut vram, &regs::MODE_12);
    // Write mode 2, colour 9 under a bit mask of pixel 1 of the first byte.
    out(&mut v, 0x3CE, 5);
    out(&mut v, 0x3CF, 0x02);
    out(&mut v, 0x3CE, 8);
    out(&mut v, 0x3CF, 0x40);
    let _ = v.window_read(&vram, 80); // latch line 1's first byte
    v.window_write(&mut vram, 80, 9);
    let mut f = Frame::default();
    v.render(&mut vram, 0, &mut f);
    assert_eq!((f.width, f.height), (640, 480));
    // Attribute 9 -> palette 0x39 -> DAC (0x15, 0x15, 0x3F).
    assert_eq!(f.pixel(1, 1), Some(0x57_57FF));
    assert_eq!(f.pixel(0, 1), Some(0));
    assert_eq!(f.pixel(1, 0), Some(0));
}

#[test]
fn cga_mode_4_interleaves_lines_and_packs_two_bits_a_pixel() {
    let (mut v, mut vram) = vga();
    // IBM's mode 4 registers: odd/even at B8000, CGA addressing, 2 bits a
    // pixel, half dot clock, double scan.
    let mode4 = ModeTable {
        misc: 0x63,
        seq: [0x03, 0x09, 0x03, 0x00, 0x02],
        crtc: [
            0x2D, 0x27, 0x28, 0x90, 0x2B, 0x80, 0xBF, 0x1F, 0x00, 0xC1, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x9C, 0x8E, 0x8F, 0x14, 0x00, 0x96, 0xB9, 0xA2, 0xFF,
        ],
        gc: [0x00, 0x00, 0x00, 0x00, 0x00, 0x30, 0x0F, 0x00, 0xFF],
        ac: [
            0x00, 0x13, 0x15, 0x17, 0x02, 0x04, 0x06, 0x07, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
            0x16, 0x17, 0x01, 0x00, 0x03, 0x00, 0x00,
        ],
    };
    set_mode(&mut v, &mut vram, &mode4);
    // Line 0: colours 3, 2, 1, 0; line 1 (the second 8 KiB bank): 1, 1, 1, 1.
    v.window_write(&mut vram, 0x1_8000, 0b11_10_01_00);
    v.window_write(&mut vram, 0x1_8000 + 0x2000, 0b01_01_01_01);
    let mut f = Frame::default();
    v.render(&mut vram, 0, &mut f);
    assert_eq!((f.width, f.height), (640, 400));
    let colour = |c: usize| v.regs.dac.rgb(mode4.ac[c]);
    for (px, c) in [(0, 3), (1, 2), (2, 1), (3, 0)] {
        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            assert_eq!(
                f.pixel(2 * px + dx, dy),
                Some(colour(c)),
                "line 0 pixel {px}"
            );
        }
        assert_eq!(f.pixel(2 * px, 2), Some(colour(1)), "line 1 pixel {px}");
    }
    assert_eq!(f.pixel(8, 2), Some(colour(0)));
}

#[test]
fn vbe_through_the_ports() {
    let (mut v, mut vram) = vga();
    assert_eq!(vbe_read(&mut v, vbe::INDEX_ID), 0xB0C5);
    assert_eq!(vbe_read(&mut v, vbe::INDEX_VIDEO_MEMORY_64K), 256);
    vbe(&mut v, vbe::INDEX_ENABLE, 0);
    vbe(&mut v, vbe::INDEX_XRES, 320);
    vbe(&mut v, vbe::INDEX_YRES, 240);
    vbe(&mut v, vbe::INDEX_BPP, 32);
    vram.bytes_mut()[..8].fill(0x77);
    vbe(&mut v, vbe::INDEX_ENABLE, vbe::ENABLED | vbe::LFB_ENABLED);
    assert_eq!(vbe_read(&mut v, vbe::INDEX_ENABLE), 0x41);
    v.sync_memory(&mut vram);
    assert_eq!(vram.bytes()[..8], [0; 8], "switching on cleared the screen");
    assert!(v.text_screen(&vram).is_none(), "no text in a VBE mode");
    // Pixel (3, 2) in the linear framebuffer: B, G, R, x.
    let at = (2 * 320 + 3) * 4;
    vram.bytes_mut()[at..at + 4].copy_from_slice(&[0x30, 0x20, 0x10, 0]);
    vram.mark_dirty(at, 4);
    let mut f = Frame::default();
    v.render(&mut vram, 0, &mut f);
    assert_eq!((f.width, f.height), (320, 240));
    assert_eq!(f.pixel(3, 2), Some(0x10_2030));
    // The bank window: 64 KiB at A0000 shows bank 1's bytes.
    vbe(&mut v, vbe::INDEX_BANK, 1);
    vram.bytes_mut()[0x1_0005] = 0x99;
    assert_eq!(v.window_read(&vram, 5), 0x99);
    v.window_write(&mut vram, 6, 0x42);
    assert_eq!(vram.bytes()[0x1_0006], 0x42);
    // 16 bpp 5:6:5, and 8 bpp through the DAC.
    vbe(&mut v, vbe::INDEX_BPP, 16);
    vram.bytes_mut()[0..2].copy_from_slice(&0xF81Fu16.to_le_bytes());
    vram.mark_dirty(0, 2);
    v.render(&mut vram, 0, &mut f);
    assert_eq!(f.pixel(0, 0), Some(0xF8_00F8));
    vbe(&mut v, vbe::INDEX_BPP, 8);
    vram.bytes_mut()[0] = 3;
    vram.mark_dirty(0, 1);
    out(&mut v, 0x3C8, 3);
    for c in [0x3F, 0, 0x3F] {
        out(&mut v, 0x3C9, c);
    }
    v.render(&mut vram, 0, &mut f);
    assert_eq!(f.pixel(0, 0), Some(0xFF_00FF));
    // Off again: back to what the VGA registers say (the BIOS would reset them).
    vbe(&mut v, vbe::INDEX_ENABLE, 0);
    assert!(!v.vbe.enabled());
}

#[test]
fn word_writes_reach_index_and_data() {
    let (mut v, _) = vga();
    v.pio_write(VGA_PORT, 0x3C4 - VGA_PORT, 2, 0x0F02);
    assert_eq!(v.regs.seq[2], 0x0F);
    v.pio_write(VGA_PORT, 0x3D4 - VGA_PORT, 2, 0x2A0C);
    assert_eq!(v.regs.crtc[0x0C], 0x2A);
    assert_eq!(v.pio_read(VGA_PORT, 0x3D4 - VGA_PORT, 2), 0x2A0C);
}

#[test]
fn retrace_follows_virtual_time() {
    let mut seen = [0u32; 16];
    for t in (0..14_300_000u64).step_by(10_000) {
        seen[usize::from(retrace_bits(t))] += 1;
    }
    assert!(seen[0] > 0 && seen[1] > 0 && seen[9] > 0, "{seen:?}");
    assert_eq!(seen[8], 0, "retrace is always blanking");
    assert_eq!(retrace_bits(413 * 31_778), 9);
    assert_eq!(retrace_bits(0), 0);
}

/// Seeded random traffic on every VGA and VBE port and the whole legacy
/// window, with renders and text snapshots in between, never panics; the
/// device still sets up a text mode afterwards.
#[test]
fn random_traffic_never_panics() {
    let (mut v, mut vram) = vga();
    let mut x: u64 = 0x5EED_0F76_47A1_B2C3;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut f = Frame::default();
    let mut renders = 0;
    for i in 0..200_000u32 {
        let r = next();
        match r % 8 {
            0 | 1 => {
                let port = VGA_PORT + (r >> 8) as u16 % VGA_PORTS as u16;
                let size = [1u8, 2, 4][(r >> 20) as usize % 3];
                v.pio_write(VGA_PORT, port - VGA_PORT, size, (r >> 32) as u32);
            }
            2 => {
                let port = VGA_PORT + (r >> 8) as u16 % VGA_PORTS as u16;
                let _ = v.pio_read(
                    VGA_PORT,
                    port - VGA_PORT,
                    [1u8, 2, 4][(r >> 20) as usize % 3],
                );
            }
            3 => {
                // VBE: small values mostly, so modes really get set.
                let off = (r >> 8) as u16 % 3;
                let val = if r >> 12 & 1 == 0 {
                    (r >> 16) as u16 % 16
                } else {
                    (r >> 16) as u16
                };
                v.pio_write(
                    VBE_PORT,
                    off,
                    [1u8, 2][(r >> 40) as usize % 2],
                    u32::from(val),
                );
                let _ = v.pio_read(VBE_PORT, (r >> 44) as u16 % 3, 2);
                v.sync_memory(&mut vram);
            }
            4 | 5 => v.window_write(&mut vram, (r >> 8) as u32 % WINDOW_LEN, (r >> 40) as u8),
            6 => {
                let _ = v.window_read(&vram, (r >> 8) as u32 % WINDOW_LEN);
            }
            _ => {
                let _ = v.text_screen(&vram);
            }
        }
        if i % 4096 == 7 {
            let _ = v.render(&mut vram, u64::from(i) * 1000, &mut f);
            renders += 1;
        }
    }
    assert!(renders > 10);
    v.reset();
    v.bios_text_mode(&mut vram);
    assert_eq!(
        v.text_screen(&vram).map(|t| (t.cols, t.rows)),
        Some((80, 25))
    );
    let json = serde_json::to_string(&v).unwrap();
    let back: Vga = serde_json::from_str(&json).unwrap();
    assert_eq!(back.regs, v.regs);
}
