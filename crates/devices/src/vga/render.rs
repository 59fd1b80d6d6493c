//! Rendering: what the VGA shows, as a [`Frame`] of pixels.
//!
//! The screen's size and scan-out follow the CRT controller as QEMU's
//! `-vga std` reads it, so that screenshots of the two agree pixel for
//! pixel: a text mode is columns x character width by rows x character
//! height (720x400 for mode 3); a graphics mode is the CRTC's horizontal
//! display end x 8 (doubled by the sequencer's half dot clock) by its
//! vertical display end (mode 13h is 640x400: each of its 320x200 pixels
//! is drawn twice across and twice down, as a VGA monitor shows it); a VBE
//! mode is its resolution.
//!
//! Only what changed is drawn again: in text modes the cells whose
//! character, attribute, cursor or blink state changed; in graphics modes
//! the scan lines whose video memory pages were written since the last
//! render ([`VideoRam::take_dirty`]). A change of mode, palette, font,
//! start address or the like redraws everything.
//!
//! Text mode: glyphs come from plane 2, 32 bytes per character, in the
//! character map the sequencer selects (map A for attribute bit 3 set, map
//! B otherwise); the 9th column repeats the 8th for 0xC0-0xDF when the
//! attribute controller's line graphics bit is set; attribute bit 7 blinks
//! the character (on for 16 frames, off for 16) when the blink bit is set,
//! else selects a bright background; the cursor blinks every 8 frames.
//! Blinking follows virtual time (a 70 Hz frame), so a screenshot taken at
//! a given instruction is always the same.

use super::display::{grow, DirtyRect, Frame};
use super::regs::{crtc, AC_COLOR_SELECT, AC_MODE, AC_PANNING, AC_PLANE_ENABLE, GC_MODE};
use super::regs::{SEQ_CHARMAP, SEQ_CLOCK};
use super::Vga;
use morph86_memory::{DirtyPages, VideoRam};

/// One frame at the VGA's 70 Hz (text modes and mode 13h).
pub const FRAME_NS: u64 = 1_000_000_000 / 70;

/// The most pixels a frame may have (the largest VBE modes of 16 MiB).
const MAX_PIXELS: u64 = 16 << 20;

/// What the screen showed last time, to tell what changed.
#[derive(Clone, Debug, Default)]
pub(crate) struct RenderCache {
    /// The layout drawn last (`None`: nothing yet, or forced redraw).
    layout: Option<Layout>,
    /// The colours used last.
    palette: Vec<u32>,
    /// Text: what each cell showed (character, attribute, cursor, blink).
    cells: Vec<u32>,
}

impl RenderCache {
    /// Forgets everything: the next render draws the whole screen.
    pub(crate) fn invalidate(&mut self) {
        self.layout = None;
    }
}

/// How the screen is laid out: any change means a full redraw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    Blank {
        width: u32,
        height: u32,
    },
    Text {
        cols: u32,
        rows: u32,
        cw: u32,
        ch: u32,
        start: u32,
        line: u32,
        line_compare: u32,
        fonts: [u32; 2],
        ac_mode: u8,
        cursor_shape: (u8, u8),
    },
    Graphics(Scanout),
}

/// The parameters of a graphics scan-out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Scanout {
    /// Source pixels per line.
    width: u32,
    /// Lines.
    height: u32,
    /// Pixels per line in the frame (width, doubled by the half dot clock).
    disp_width: u32,
    /// The line drawer.
    kind: LineKind,
    /// Video memory offset of the first line.
    start: u32,
    /// Bytes from one line to the next.
    line_offset: u32,
    /// The line after which scan-out restarts at offset 0.
    line_compare: u32,
    /// Each memory line is shown this many extra times.
    multi_scan: u32,
    /// CRTC mode control (CGA addressing bits 0 and 1, bit 6).
    crtc_mode: u8,
    /// Plane enable mask (planar modes).
    plane_enable: u8,
    /// Pixel panning in frame pixels.
    pan: u32,
    /// Panning stops after the line compare (AC mode bit 5).
    pan_split: bool,
}

/// How bytes of video memory become pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LineKind {
    /// CGA 4-colour (interleaved shift: 2 bits per pixel), optionally doubled.
    Cga { double: bool },
    /// 16 colours from four planes, optionally doubled.
    Planar { double: bool },
    /// 256 colours, each pixel doubled (mode 13h, Mode X).
    Chunky8Double,
    /// 256 colours (VBE 8 bpp).
    Chunky8,
    /// VBE 15 bpp (5:5:5).
    Rgb15,
    /// VBE 16 bpp (5:6:5).
    Rgb16,
    /// VBE 24 bpp (B, G, R).
    Rgb24,
    /// VBE 32 bpp (B, G, R, x).
    Rgb32,
}

impl LineKind {
    /// Bits of memory per source pixel, as the dirty check counts them.
    fn bits(self) -> u32 {
        match self {
            LineKind::Cga { .. } | LineKind::Planar { .. } | LineKind::Chunky8Double => 4,
            LineKind::Chunky8 => 8,
            LineKind::Rgb15 | LineKind::Rgb16 => 16,
            LineKind::Rgb24 => 24,
            LineKind::Rgb32 => 32,
        }
    }

    /// True when the line uses the 16-entry attribute palette.
    fn palette16(self) -> bool {
        matches!(self, LineKind::Cga { .. } | LineKind::Planar { .. })
    }
}

/// Reads video memory with the address wrapped to its (power-of-two) size.
struct Mem<'a> {
    bytes: &'a [u8],
    mask: usize,
}

impl Mem<'_> {
    #[inline]
    fn byte(&self, at: u32) -> u8 {
        self.bytes
            .get(at as usize & self.mask)
            .copied()
            .unwrap_or(0)
    }

    #[inline]
    fn dword(&self, at: u32) -> u32 {
        u32::from_le_bytes([
            self.byte(at),
            self.byte(at.wrapping_add(1)),
            self.byte(at.wrapping_add(2)),
            self.byte(at.wrapping_add(3)),
        ])
    }
}

/// A byte per plane enabled in `mask`.
fn plane_mask(mask: u8) -> u32 {
    (0..4).fold(0, |m, p| {
        if mask >> p & 1 != 0 {
            m | 0xFF << (8 * p)
        } else {
            m
        }
    })
}

impl Vga {
    /// The 16 colours of text and planar modes: attribute palette, colour
    /// select and DAC.
    fn palette16(&self) -> Vec<u32> {
        let r = &self.regs;
        let sel = r.ac[AC_COLOR_SELECT];
        (0..16)
            .map(|i| {
                let v = r.ac[i];
                let v = if r.ac[AC_MODE] & 0x80 != 0 {
                    (sel & 0x0F) << 4 | (v & 0x0F)
                } else {
                    (sel & 0x0C) << 4 | (v & 0x3F)
                };
                r.dac.rgb(v & r.dac.pel_mask)
            })
            .collect()
    }

    /// The 256 colours of 8-bit modes: the DAC through the pixel mask.
    fn palette256(&self) -> Vec<u32> {
        let r = &self.regs;
        (0..=255u8).map(|i| r.dac.rgb(i & r.dac.pel_mask)).collect()
    }

    /// Renders the screen into `frame` at virtual time `now` (nanoseconds;
    /// it decides the blink phases). Takes video memory's dirty set.
    /// Returns the part of the frame that changed, if any.
    pub fn render(
        &mut self,
        vram: &mut VideoRam,
        now: u64,
        frame: &mut Frame,
    ) -> Option<DirtyRect> {
        let dirty = vram.take_dirty();
        if !self.regs.video_on() {
            return self.render_blank(frame);
        }
        if self.regs.graphics() || self.vbe.enabled() {
            self.render_graphics(vram, &dirty, frame)
        } else {
            self.render_text(vram, now, frame)
        }
    }

    /// The attribute controller has the screen off: black, at the size
    /// last shown.
    fn render_blank(&mut self, frame: &mut Frame) -> Option<DirtyRect> {
        let layout = Layout::Blank {
            width: frame.width,
            height: frame.height,
        };
        if self.cache.layout == Some(layout) {
            return None;
        }
        self.cache.layout = Some(layout);
        frame.pixels.iter_mut().for_each(|p| *p = 0);
        Some(DirtyRect::full(frame.width, frame.height))
    }

    fn render_text(&mut self, vram: &VideoRam, now: u64, frame: &mut Frame) -> Option<DirtyRect> {
        let (cols, rows, cw, ch) = self.text_geometry()?;
        let r = &self.regs;
        let sel = r.seq[SEQ_CHARMAP];
        let font = |bits: u8| (u32::from(bits) * 8192 * 4) + 2;
        // Map B (bits 4, 1-0) for attribute bit 3 clear, map A (5, 3-2) set.
        let fonts = [
            font((sel >> 4) & 1 | (sel << 1) & 6),
            font((sel >> 5) & 1 | (sel >> 1) & 6),
        ];
        let layout = Layout::Text {
            cols,
            rows,
            cw,
            ch,
            start: r.start_address(),
            line: u32::from(r.crtc[crtc::OFFSET]) * 8,
            line_compare: r.line_compare(),
            fonts,
            ac_mode: r.ac[AC_MODE],
            cursor_shape: (r.crtc[crtc::CURSOR_START], r.crtc[crtc::CURSOR_END]),
        };
        let palette = self.palette16();
        let mut full = self.cache.layout != Some(layout) || self.cache.palette != palette;
        full |= std::mem::take(&mut self.font_written);
        if frame.resize(cols * cw, rows * ch) {
            full = true;
        }
        let frame_no = now / FRAME_NS;
        let cursor_phase = (frame_no / 8).is_multiple_of(2);
        let blink_phase = (frame_no / 16).is_multiple_of(2);
        let blink = r.ac[AC_MODE] & 0x08 != 0;
        let dup9 = r.ac[AC_MODE] & 0x04 != 0;
        let cursor_addr = r.cursor_address().wrapping_mul(4);
        let cursor_on = r.crtc[crtc::CURSOR_START] & 0x20 == 0 && cursor_phase;
        let (cstart, cend) = (
            u32::from(r.crtc[crtc::CURSOR_START] & 0x1F),
            (u32::from(r.crtc[crtc::CURSOR_END] & 0x1F)).min(ch - 1),
        );
        let line_compare = r.line_compare();
        let line_offset = u32::from(r.crtc[crtc::OFFSET]) * 8;
        let cells = (cols * rows) as usize;
        if full || self.cache.cells.len() != cells {
            self.cache.cells = vec![u32::MAX; cells];
        }
        let mem = Mem {
            bytes: vram.bytes(),
            mask: vram.len().next_power_of_two() - 1,
        };
        let width = frame.width as usize;
        let mut changed = None;
        let mut offset = r.start_address().wrapping_mul(4);
        let mut line = 0;
        for cy in 0..rows {
            for cx in 0..cols {
                let at = offset.wrapping_add(cx * 4);
                let (chr, attr) = (mem.byte(at), mem.byte(at.wrapping_add(1)));
                let cursor_here = cursor_on && at == cursor_addr;
                let hidden = blink && attr & 0x80 != 0 && !blink_phase;
                let key = u32::from(chr)
                    | u32::from(attr) << 8
                    | u32::from(cursor_here) << 16
                    | u32::from(hidden) << 17;
                let idx = (cy * cols + cx) as usize;
                if self.cache.cells[idx] == key {
                    continue;
                }
                self.cache.cells[idx] = key;
                let bg = if blink {
                    palette[usize::from(attr >> 4 & 7)]
                } else {
                    palette[usize::from(attr >> 4)]
                };
                let fg = if hidden {
                    bg
                } else {
                    palette[usize::from(attr & 0x0F)]
                };
                let glyph = fonts[usize::from(attr >> 3 & 1)] + u32::from(chr) * 32 * 4;
                let line_graphics = dup9 && (0xC0..=0xDF).contains(&chr);
                for y in 0..ch {
                    let cursor_row = cursor_here && y >= cstart && y <= cend;
                    let bits = if cursor_row {
                        0xFF
                    } else {
                        mem.byte(glyph + y * 4)
                    };
                    let row = (cy * ch + y) as usize * width + (cx * cw) as usize;
                    let px = &mut frame.pixels[row..row + cw as usize];
                    match cw {
                        16 => {
                            for (x, p) in px.iter_mut().enumerate() {
                                *p = if bits >> (7 - x / 2) & 1 != 0 { fg } else { bg };
                            }
                        }
                        _ => {
                            for (x, p) in px.iter_mut().take(8).enumerate() {
                                *p = if bits >> (7 - x) & 1 != 0 { fg } else { bg };
                            }
                            if cw == 9 {
                                let ninth = (line_graphics || cursor_row) && bits & 1 != 0;
                                px[8] = if ninth { fg } else { bg };
                            }
                        }
                    }
                }
                grow(
                    &mut changed,
                    DirtyRect {
                        x: cx * cw,
                        y: cy * ch,
                        width: cw,
                        height: ch,
                    },
                );
            }
            offset = offset.wrapping_add(line_offset);
            let next = line + ch;
            if line < line_compare && next >= line_compare {
                offset = 0;
            }
            line = next;
        }
        self.cache.layout = Some(layout);
        self.cache.palette = palette;
        if full {
            return Some(DirtyRect::full(frame.width, frame.height));
        }
        changed
    }

    /// The graphics scan-out the registers describe.
    fn scanout(&self) -> Option<Scanout> {
        let r = &self.regs;
        let vbe = self.vbe.enabled();
        let (width, height) = if vbe {
            (
                u32::from(self.vbe.reg(super::vbe::INDEX_XRES)),
                u32::from(self.vbe.reg(super::vbe::INDEX_YRES)),
            )
        } else {
            (
                (u32::from(r.crtc[crtc::H_DISP_END]) + 1) * 8,
                r.vertical_display_end() + 1,
            )
        };
        let shift = (r.gc[GC_MODE] >> 5) & 3;
        let half_clock = r.seq[SEQ_CLOCK] & 0x08 != 0;
        let double_scan = u32::from(r.crtc[crtc::MAX_SCAN] >> 7);
        let multi_scan = if shift == 1 {
            double_scan
        } else {
            ((u32::from(r.crtc[crtc::MAX_SCAN] & 0x1F) + 1) << double_scan) - 1
        };
        let kind = match shift {
            0 => LineKind::Planar { double: half_clock },
            1 => LineKind::Cga { double: half_clock },
            _ if !vbe => LineKind::Chunky8Double,
            _ => match self.vbe.bpp() {
                8 => LineKind::Chunky8,
                15 => LineKind::Rgb15,
                16 => LineKind::Rgb16,
                24 => LineKind::Rgb24,
                32 => LineKind::Rgb32,
                _ => LineKind::Chunky8Double,
            },
        };
        let disp_width = if shift <= 1 && half_clock {
            width * 2
        } else {
            width
        };
        if width == 0 || height == 0 || u64::from(disp_width) * u64::from(height) > MAX_PIXELS {
            return None;
        }
        let (start, line_offset, line_compare) = if vbe {
            (self.vbe.start, self.vbe.line_offset, u32::MAX)
        } else {
            let byte_pan = u32::from(r.crtc[crtc::PRESET_ROW] >> 5 & 3);
            (
                (r.start_address() + byte_pan).wrapping_mul(4),
                u32::from(r.crtc[crtc::OFFSET]) * 8,
                r.line_compare(),
            )
        };
        let pan_reg = u32::from(r.ac[AC_PANNING] & 0x0F);
        let pan = match kind {
            LineKind::Planar { double } if pan_reg < 8 && !vbe => pan_reg << u32::from(double),
            LineKind::Chunky8Double if !vbe => pan_reg & 6,
            _ => 0,
        };
        Some(Scanout {
            width,
            height,
            disp_width,
            kind,
            start,
            line_offset,
            line_compare,
            multi_scan,
            crtc_mode: r.crtc[crtc::MODE],
            plane_enable: r.ac[AC_PLANE_ENABLE] & 0x0F,
            pan,
            pan_split: r.ac[AC_MODE] & 0x20 != 0,
        })
    }

    fn render_graphics(
        &mut self,
        vram: &VideoRam,
        dirty: &DirtyPages,
        frame: &mut Frame,
    ) -> Option<DirtyRect> {
        let s = self.scanout()?;
        let palette = match s.kind {
            k if k.palette16() => self.palette16(),
            LineKind::Chunky8 | LineKind::Chunky8Double => self.palette256(),
            _ => Vec::new(),
        };
        let mut full =
            self.cache.layout != Some(Layout::Graphics(s)) || self.cache.palette != palette;
        if frame.resize(s.disp_width, s.height) {
            full = true;
        }
        let mem = Mem {
            bytes: vram.bytes(),
            mask: vram.len().next_power_of_two() - 1,
        };
        let bwidth = (s.width * s.kind.bits()).div_ceil(8) + 4;
        let width = frame.width as usize;
        let mut line_buf = vec![0u32; width + 16];
        let mut changed: Option<(u32, u32)> = None;
        let mut addr1 = s.start;
        let mut y1 = 0u32;
        let mut multi_run = s.multi_scan;
        let mut pan = s.pan;
        for y in 0..s.height {
            let mut addr = addr1;
            if s.crtc_mode & 1 == 0 {
                // CGA compatibility: scan line bit 0 replaces address bit 13
                // (14 in byte mode), bit 1 replaces bit 14.
                let bit = 14 + u32::from(s.crtc_mode >> 6 & 1);
                addr = (addr & !(1 << bit)) | ((y1 & 1) << bit);
            }
            if s.crtc_mode & 2 == 0 {
                addr = (addr & !0x8000) | ((y1 & 2) << 14);
            }
            let update = full || dirty.range(addr as usize & mem.mask, bwidth as usize);
            if update {
                self.draw_line(&mem, &s, &palette, addr, &mut line_buf);
                let row = y as usize * width;
                let p = pan as usize;
                frame.pixels[row..row + width].copy_from_slice(&line_buf[p..p + width]);
                changed = Some(match changed {
                    Some((a, _)) => (a, y),
                    None => (y, y),
                });
            }
            if multi_run == 0 {
                let mask = u32::from(s.crtc_mode & 3) ^ 3;
                if y1 & mask == mask {
                    addr1 = addr1.wrapping_add(s.line_offset);
                }
                y1 += 1;
                multi_run = s.multi_scan;
            } else {
                multi_run -= 1;
            }
            if y == s.line_compare {
                addr1 = 0;
                if s.pan_split {
                    pan = 0;
                }
            }
        }
        self.cache.layout = Some(Layout::Graphics(s));
        self.cache.palette = palette;
        if full {
            return Some(DirtyRect::full(frame.width, frame.height));
        }
        changed.map(|(a, b)| DirtyRect {
            x: 0,
            y: a,
            width: frame.width,
            height: b - a + 1,
        })
    }

    /// Draws one line (plus up to 16 pixels for panning) into `out`.
    fn draw_line(&self, mem: &Mem, s: &Scanout, palette: &[u32], addr: u32, out: &mut [u32]) {
        let pal = |i: u32| palette.get(i as usize).copied().unwrap_or(0);
        let n = out.len();
        let mut put = |x: usize, v: u32| {
            if x < n {
                out[x] = v;
            }
        };
        let rgb = |r: u32, g: u32, b: u32| r << 16 | g << 8 | b;
        let w = s.width;
        match s.kind {
            LineKind::Planar { double } | LineKind::Cga { double } => {
                let pm = plane_mask(s.plane_enable);
                let d = usize::from(double) + 1;
                // One dword (four planes' bytes) per 8 pixels, plus the
                // next for panning.
                for k in 0..(w / 8 + 2) {
                    let data = mem.dword(addr.wrapping_add(4 * k)) & pm;
                    let plane = |p: u32| (data >> (8 * p)) & 0xFF;
                    for x in 0..8u32 {
                        let v = if matches!(s.kind, LineKind::Planar { .. }) {
                            (0..4).fold(0, |v, p| v | ((plane(p) >> (7 - x)) & 1) << p)
                        } else {
                            // Interleaved shift: pixels 0-3 from planes 0
                            // and 2, 4-7 from 1 and 3, two bits each.
                            let (lo, hi) = if x < 4 { (0, 2) } else { (1, 3) };
                            let sh = 6 - 2 * (x % 4);
                            ((plane(lo) >> sh) & 3) | ((plane(hi) >> sh) & 3) << 2
                        };
                        let c = pal(v);
                        for j in 0..d {
                            put(((k * 8 + x) as usize) * d + j, c);
                        }
                    }
                }
            }
            LineKind::Chunky8Double => {
                for x in 0..(w / 2 + 8) {
                    let c = pal(u32::from(mem.byte(addr.wrapping_add(x))));
                    put(2 * x as usize, c);
                    put(2 * x as usize + 1, c);
                }
            }
            LineKind::Chunky8 => {
                for x in 0..w {
                    put(x as usize, pal(u32::from(mem.byte(addr.wrapping_add(x)))));
                }
            }
            LineKind::Rgb15 | LineKind::Rgb16 => {
                for x in 0..w {
                    let at = addr.wrapping_add(2 * x);
                    let v = u32::from(mem.byte(at)) | u32::from(mem.byte(at.wrapping_add(1))) << 8;
                    let c = if s.kind == LineKind::Rgb15 {
                        rgb((v >> 7) & 0xF8, (v >> 2) & 0xF8, (v << 3) & 0xF8)
                    } else {
                        rgb((v >> 8) & 0xF8, (v >> 3) & 0xFC, (v << 3) & 0xF8)
                    };
                    put(x as usize, c);
                }
            }
            LineKind::Rgb24 | LineKind::Rgb32 => {
                let step = if s.kind == LineKind::Rgb24 { 3 } else { 4 };
                for x in 0..w {
                    let at = addr.wrapping_add(step * x);
                    let b = u32::from(mem.byte(at));
                    let g = u32::from(mem.byte(at.wrapping_add(1)));
                    let r = u32::from(mem.byte(at.wrapping_add(2)));
                    put(x as usize, rgb(r, g, b));
                }
            }
        }
    }
}
