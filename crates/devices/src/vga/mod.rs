//! A VGA with the Bochs VBE extensions, as QEMU's `-vga std` (PCI
//! 1234:1111) presents it.
//!
//! * Ports 0x3B0-0x3DF: the register file ([`regs`]); 0x1CE-0x1D0: the VBE
//!   "DISPI" interface ([`vbe`]).
//! * The legacy window 0xA0000-0xBFFFF ([`Vga::window_read`],
//!   [`Vga::window_write`]): planes, latches and write modes ([`memory`]).
//! * 16 MiB of video memory ([`VideoRam`], owned by the board, not by this
//!   device): the four planes interleaved in its first 256 KiB, and the
//!   whole of it a linear framebuffer at the PCI function's BAR0, which the
//!   CPU reaches directly (the board maps it; writes are tracked by the
//!   memory's dirty pages, not by this device).
//! * Rendering into a [`Frame`] ([`Vga::render`]) and the text screen as
//!   characters ([`Vga::text_screen`]); the VGA never knows what shows them.
//!
//! The device's methods that touch video memory take it as an argument.
//! Port writes that would (switching a VBE mode on clears the screen)
//! leave the work for [`Vga::sync_memory`], which the board calls after
//! every access to the VBE ports.
//!
//! Input status 1's retrace bits follow virtual time (a 70 Hz frame of 449
//! lines at 31.778 µs; vertical retrace on lines 412-413), so a guest that
//! waits for retrace waits the same number of instructions every run.

pub mod display;
pub mod font;
mod memory;
pub mod regs;
mod render;
pub mod text;
pub mod vbe;

pub use display::{DirtyRect, Display, Frame};
pub use font::{FONT_8X14, FONT_8X16, FONT_8X8};
pub use render::FRAME_NS;
pub use text::{cp437_to_char, TextScreen};

use crate::clock::TimeSource;
use crate::pci::{Bdf, PciFunction};
use morph86_memory::VideoRam;
use regs::VgaRegs;
use render::RenderCache;
use serde::{Deserialize, Serialize};
use vbe::Vbe;

/// First port of the VGA's register window (0x3B0-0x3DF).
pub const VGA_PORT: u16 = 0x3B0;
/// Ports in the register window.
pub const VGA_PORTS: u32 = 0x30;
/// The VBE index port; data follows at 0x1CF (and 0x1D0).
pub const VBE_PORT: u16 = 0x1CE;
/// Ports of the VBE interface.
pub const VBE_PORTS: u32 = 3;
/// Start of the legacy memory window.
pub const WINDOW_BASE: u32 = 0xA_0000;
/// Length of the legacy memory window.
pub const WINDOW_LEN: u32 = 0x2_0000;
/// Video memory: 16 MiB, as QEMU's default.
pub const VRAM_SIZE: usize = 16 << 20;
/// Where firmware (the machine's reset, for direct boots) puts the linear
/// framebuffer: where SeaBIOS puts it on QEMU's `pc` machine.
pub const DEFAULT_LFB_BASE: u32 = 0xFD00_0000;
/// The PCI function's place on bus 0 (QEMU's slot for `-vga std`).
pub const PCI_BDF: Bdf = Bdf::new(0, 2, 0);
/// PCI vendor ID (the Bochs/QEMU VGA).
pub const PCI_VENDOR: u16 = 0x1234;
/// PCI device ID.
pub const PCI_DEVICE: u16 = 0x1111;

/// The PCI display function: 1234:1111, class 0300 (VGA), subsystem
/// 1AF4:1100 (QEMU), BAR0 the linear framebuffer (prefetchable memory, the
/// size of video memory) at `lfb`.
pub fn pci_function(bdf: Bdf, lfb: u32) -> PciFunction {
    let mut f = PciFunction::new(bdf, PCI_VENDOR, PCI_DEVICE, 0x03_00_00, 0x02);
    f.set_bar(0, VRAM_SIZE as u32, false, lfb);
    f.config[0x10] |= 0x08; // prefetchable
    f.config[0x2C..0x30].copy_from_slice(&[0xF4, 0x1A, 0x00, 0x11]);
    f
}

/// Vertical retrace, as input status 1 shows it at virtual time `now`:
/// bit 3 during lines 412-413 of a 449-line frame, bit 0 outside the
/// display (horizontal or vertical blanking).
pub fn retrace_bits(now: u64) -> u8 {
    const LINE_NS: u64 = 31_778;
    const LINES: u64 = 449;
    let t = now % (LINE_NS * LINES);
    let line = t / LINE_NS;
    let vretrace = (412..414).contains(&line);
    let blank = line >= 400 || t % LINE_NS >= 25_422;
    u8::from(vretrace) << 3 | u8::from(blank || vretrace)
}

/// The VGA device.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Vga {
    /// The register file.
    pub regs: VgaRegs,
    /// The VBE interface.
    pub vbe: Vbe,
    /// Plane 2 was written since the last render (the font may differ).
    #[serde(skip)]
    pub(crate) font_written: bool,
    /// What the screen showed last.
    #[serde(skip)]
    pub(crate) cache: RenderCache,
    /// Bytes at the start of video memory a VBE mode switch asked to clear.
    #[serde(skip)]
    pending_clear: Option<usize>,
    /// Virtual time, for the retrace bits.
    #[serde(skip)]
    time: Option<TimeSource>,
    /// Video memory's size (for VBE's fix-ups and memory size register).
    vram_len: usize,
}

impl Vga {
    /// A VGA in its power-on state (every register 0: no mode; see
    /// [`Vga::bios_text_mode`]), reading time from `time` (without it the
    /// retrace bits stand still).
    pub fn new(time: Option<TimeSource>) -> Vga {
        Vga {
            regs: VgaRegs::default(),
            vbe: Vbe::default(),
            font_written: false,
            cache: RenderCache::default(),
            pending_clear: None,
            time,
            vram_len: VRAM_SIZE,
        }
    }

    /// Puts the VGA in the state a PC BIOS leaves it in: mode 3 (80x25
    /// text in 9x16 cells at 0xB8000, colour I/O), the EGA-compatible
    /// palette, the 8x16 font in plane 2's first character map, a blank
    /// screen (light grey on black) with the cursor at the top left. The
    /// machine does this at reset for kernels booted without a BIOS, so
    /// that a text console (Linux's vgacon) finds what it expects.
    pub fn bios_text_mode(&mut self, vram: &mut VideoRam) {
        let time = self.time.take();
        *self = Vga::new(time);
        self.vram_len = vram.len();
        self.regs.load_mode(&regs::MODE_03);
        self.regs.load_ega_palette();
        let mem = vram.bytes_mut();
        let n = (256 * 1024).min(mem.len());
        mem[..n].fill(0);
        for (ch, glyph) in FONT_8X16.chunks(16).enumerate() {
            for (row, &bits) in glyph.iter().enumerate() {
                mem[(ch * 32 + row) * 4 + 2] = bits;
            }
        }
        // 80x25 cells of "space, light grey on black" (plane 0 character,
        // plane 1 attribute).
        for cell in 0..80 * 25 {
            mem[cell * 4] = b' ';
            mem[cell * 4 + 1] = 0x07;
        }
        vram.mark_dirty(0, n);
        self.cache.invalidate();
    }

    /// Sets video memory's size (a board with other than [`VRAM_SIZE`]).
    pub fn set_vram_len(&mut self, len: usize) {
        self.vram_len = len;
    }

    /// Does what port writes left for video memory (a VBE mode's clear).
    pub fn sync_memory(&mut self, vram: &mut VideoRam) {
        if let Some(n) = self.pending_clear.take() {
            let n = n.min(vram.len());
            vram.bytes_mut()[..n].fill(0);
            vram.mark_dirty(0, n);
        }
    }

    /// Makes the next [`Vga::render`] draw the whole screen.
    pub fn invalidate(&mut self) {
        self.cache.invalidate();
    }

    fn now(&self) -> u64 {
        self.time.as_ref().map_or(0, TimeSource::now)
    }

    fn vbe_read(&mut self, offset: u16, size: u8) -> u32 {
        let v = match offset {
            0 => self.vbe.index,
            _ => self.vbe.read_data(self.vram_len),
        };
        u32::from(if size == 1 { v & 0xFF } else { v })
    }

    fn vbe_write(&mut self, offset: u16, value: u16) {
        match offset {
            0 => self.vbe.index = value,
            // What changes the picture (size, depth, offsets, the DAC's
            // width) changes the layout or the palette the renderer
            // compares; the bank does not.
            _ => {
                if let Some(n) = self.vbe.write_data(value, &mut self.regs, self.vram_len) {
                    self.pending_clear = Some(n);
                }
            }
        }
    }
}

impl crate::bus::Device for Vga {
    fn name(&self) -> &str {
        "vga"
    }

    fn pio_read(&mut self, base: u16, offset: u16, size: u8) -> u32 {
        let port = base.wrapping_add(offset);
        if (VBE_PORT..VBE_PORT + VBE_PORTS as u16).contains(&port) {
            return self.vbe_read(port - VBE_PORT, size);
        }
        // Wider accesses reach consecutive ports, low byte first.
        let now = self.now();
        (0..u16::from(size.min(4))).fold(0, |v, k| {
            let b = self.regs.read_port(port.wrapping_add(k), retrace_bits(now));
            v | u32::from(b) << (8 * k)
        })
    }

    fn pio_write(&mut self, base: u16, offset: u16, size: u8, value: u32) {
        let port = base.wrapping_add(offset);
        if (VBE_PORT..VBE_PORT + VBE_PORTS as u16).contains(&port) {
            let v = if size == 1 {
                value & 0xFF
            } else {
                value & 0xFFFF
            };
            return self.vbe_write(port - VBE_PORT, v as u16);
        }
        for k in 0..u16::from(size.min(4)) {
            self.regs
                .write_port(port.wrapping_add(k), (value >> (8 * k)) as u8);
        }
    }

    fn reset(&mut self) {
        let time = self.time.take();
        let len = self.vram_len;
        *self = Vga::new(time);
        self.vram_len = len;
    }
}

#[cfg(test)]
mod tests;
