//! The display adapter on the board: the VGA's video memory, the legacy
//! window and the linear framebuffer in the physical map, and what the
//! machine does with the screen (render it, read its text, watch it).
//!
//! Video memory belongs to the board, like RAM, because the CPU reaches it
//! like RAM: the linear framebuffer at the VGA's BAR0 is plain memory to
//! the TLB, which gets host pointers to it ([`Board::page_ptr`] via
//! [`Video::page_ptr`]). Writes there are tracked by the memory's dirty
//! pages (see `morph86_memory::VideoRam`): a clean page's first write
//! takes the slow path and marks it dirty; rendering takes the dirty set
//! and the pages' write pointers are revoked through the same report as
//! code pages' ([`Bus::take_new_flags`]). The legacy window
//! 0xA0000-0xBFFFF is device memory: every access goes to the VGA (planes,
//! latches, memory map select), which marks what it writes.
//!
//! When the framebuffer moves (the guest reprograms BAR0, or turns memory
//! decoding off), the map epoch changes, so every host pointer into it is
//! dropped.
//!
//! [`Board::page_ptr`]: morph86_cpu::Bus::page_ptr
//! [`Bus::take_new_flags`]: morph86_cpu::Bus::take_new_flags

use crate::board::Board;
use crate::event_log::Access;
use crate::machine::{Machine, MachineError, RunExit};
use morph86_devices::lines::MemBarMove;
use morph86_devices::vga::{self, DirtyRect, Frame, TextScreen, Vga};
use morph86_devices::{DeviceId, PciHost};
use morph86_memory::{VideoRam, VRAM_PAGE};

/// The VGA's part of the board.
pub struct Video {
    /// The VGA device on the bus (its ports).
    pub id: DeviceId<Vga>,
    /// Video memory.
    pub vram: VideoRam,
    /// Where the linear framebuffer is decoded, if it is.
    pub lfb: Option<u32>,
    /// Bumped whenever the framebuffer moves: host pointers into it go.
    epoch: u64,
    /// The screen as last rendered.
    pub frame: Frame,
    /// `--exit-on-screen`: the pattern and the text last matched against.
    watch: Option<(regex::Regex, String)>,
    /// `--screenshot-at`: the virtual time, and the frame taken then.
    shot_at: Option<u64>,
    shot: Option<Frame>,
}

impl Video {
    /// The VGA at `id` with `vram_bytes` of video memory.
    pub fn new(id: DeviceId<Vga>, vram_bytes: usize) -> Result<Video, morph86_memory::VramError> {
        Ok(Video {
            id,
            vram: VideoRam::try_new(vram_bytes)?,
            lfb: None,
            epoch: 0,
            frame: Frame::default(),
            watch: None,
            shot_at: None,
            shot: None,
        })
    }

    /// A counter that changes whenever pointers into video memory may have
    /// become stale.
    #[inline]
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The framebuffer offset of physical `addr`, if the framebuffer
    /// decodes it.
    #[inline]
    fn lfb_offset(&self, addr: u32) -> Option<u32> {
        let base = self.lfb?;
        let off = addr.wrapping_sub(base);
        ((off as usize) < self.vram.len() && addr >= base).then_some(off)
    }

    /// Host pointer to the framebuffer page at physical `addr` (see
    /// `VideoRam::page_ptr`).
    fn page_ptr(&self, addr: u32, write: bool) -> Option<*mut u8> {
        let off = self.lfb_offset(addr)?;
        self.vram.page_ptr(off / VRAM_PAGE as u32, write)
    }

    /// Moves the pages whose write pointers must go into `out`, as
    /// physical page numbers.
    #[inline]
    fn take_revoked(&mut self, out: &mut Vec<u32>) {
        let from = out.len();
        self.vram.take_revoked(out);
        if out.len() == from {
            return;
        }
        match self.lfb {
            Some(base) => out[from..]
                .iter_mut()
                .for_each(|p| *p = (base >> 12).wrapping_add(*p)),
            // Not decoded: nothing can point there (the move bumped the epoch).
            None => out.truncate(from),
        }
    }
}

/// Fits the VGA on `board`: its ports, its PCI function on `pci`'s bus
/// (BAR0 unassigned until a reset places it) and 16 MiB of video memory.
pub(crate) fn fit_vga(board: &mut Board, pci: DeviceId<PciHost>) -> Result<Video, MachineError> {
    let dev = Vga::new(Some(board.time.clone()));
    let id = board.io.register(vga::VGA_PORT, vga::VGA_PORTS, dev)?;
    board.io.map_ports(id, vga::VBE_PORT, vga::VBE_PORTS)?;
    board
        .io
        .get_mut(pci)
        .add_function(vga::pci_function(vga::PCI_BDF, 0));
    Ok(Video::new(id, vga::VRAM_SIZE)?)
}

/// Fills a Linux `boot_params.screen_info` at `zero_page` for the text
/// mode the VGA is in at reset (mode 3, 80x25, 16-line font, cursor at the
/// top left), so that the kernel's VGA console (vgacon) takes the screen
/// on a boot without a BIOS, as it would after one.
pub fn write_screen_info(ram: &mut [u8], zero_page: u32) {
    let z = zero_page as usize;
    let Some(si) = ram.get_mut(z..z + 0x12) else {
        return;
    };
    si[0] = 0; // orig_x
    si[1] = 0; // orig_y
    si[4..6].copy_from_slice(&0u16.to_le_bytes()); // orig_video_page
    si[6] = 3; // orig_video_mode
    si[7] = 80; // orig_video_cols
    si[0x0A..0x0C].copy_from_slice(&0u16.to_le_bytes()); // orig_video_ega_bx: not CGA
    si[0x0E] = 25; // orig_video_lines
    si[0x0F] = 1; // orig_video_isVGA
    si[0x10..0x12].copy_from_slice(&16u16.to_le_bytes()); // orig_video_points
}

impl Board {
    /// True when physical `addr` is the framebuffer's: beyond RAM, below
    /// the ROM mirror and not a device's memory window (those come first).
    #[inline]
    fn lfb_claims(&self, addr: u32) -> Option<u32> {
        let v = self.video.as_ref()?;
        let off = v.lfb_offset(addr)?;
        (addr as usize >= self.ram.len()
            && addr < crate::board::ROM_MIRROR
            && !self.io.claims_mmio(u64::from(addr)))
        .then_some(off)
    }

    /// A byte of the framebuffer, if it decodes `addr`.
    pub(crate) fn lfb_read_u8(&self, addr: u32) -> Option<u8> {
        let off = self.lfb_claims(addr)?;
        self.video.as_ref().map(|v| v.vram.read_u8(off))
    }

    /// Writes a byte of the framebuffer if it decodes `addr` (marking its
    /// page dirty); false otherwise.
    pub(crate) fn lfb_write_u8(&mut self, addr: u32, v: u8) -> bool {
        let Some(off) = self.lfb_claims(addr) else {
            return false;
        };
        if let Some(video) = &mut self.video {
            video.vram.write_u8(off, v);
        }
        true
    }

    /// Host pointer to the framebuffer page at physical address `addr`.
    #[inline]
    pub(crate) fn lfb_page_ptr(&self, addr: u32, write: bool) -> Option<*mut u8> {
        self.lfb_claims(addr)?;
        self.video.as_ref()?.page_ptr(addr, write)
    }

    /// The framebuffer page at physical page `page`, if it decodes it: its
    /// index in video memory.
    #[inline]
    fn lfb_page(&self, page: u32) -> Option<u32> {
        if (page as usize) < self.ram.len() >> 12 {
            return None;
        }
        self.lfb_claims(page << 12)
            .map(|off| off / VRAM_PAGE as u32)
    }

    /// Marks a framebuffer page as holding decoded code (see
    /// `VideoRam::mark_code`); false if `page` is not the framebuffer's.
    pub(crate) fn mark_video_code(&mut self, page: u32) -> bool {
        match (self.lfb_page(page), &mut self.video) {
            (Some(p), Some(v)) => {
                v.vram.mark_code(p);
                true
            }
            _ => false,
        }
    }

    /// The code generation of a framebuffer page, if `page` is one.
    pub(crate) fn video_code_generation(&self, page: u32) -> Option<u32> {
        let p = self.lfb_page(page)?;
        self.video.as_ref().map(|v| v.vram.code_generation(p))
    }

    /// Video memory's part of the map epoch.
    #[inline]
    pub(crate) fn video_epoch(&self) -> u64 {
        self.video.as_ref().map_or(0, Video::epoch)
    }

    /// Video memory's part of [`morph86_cpu::Bus::take_new_flags`].
    #[inline]
    pub(crate) fn take_video_revoked(&mut self, out: &mut Vec<u32>) {
        if let Some(v) = &mut self.video {
            v.take_revoked(out);
        }
    }

    /// A byte of the legacy window (0xA0000 + `offset`), through the VGA;
    /// open bus without one.
    pub(crate) fn vga_window_read(&mut self, addr: u32) -> u8 {
        let Some(v) = &mut self.video else {
            return 0xFF;
        };
        let (id, offset) = (v.id, addr - vga::WINDOW_BASE);
        let b = self.io.get_mut(id).window_read(&v.vram, offset);
        self.note_device_access(Access::Read, addr, u64::from(b));
        b
    }

    /// Writes a byte of the legacy window through the VGA.
    pub(crate) fn vga_window_write(&mut self, addr: u32, b: u8) {
        let Some(v) = &mut self.video else {
            return;
        };
        let (id, offset) = (v.id, addr - vga::WINDOW_BASE);
        self.io.get_mut(id).window_write(&mut v.vram, offset, b);
        self.note_device_access(Access::Write, addr, u64::from(b));
    }

    /// After a port access: the VGA's pending work on video memory.
    #[inline]
    pub(crate) fn after_port_write(&mut self, port: u16) {
        let vbe = vga::VBE_PORT..vga::VBE_PORT + vga::VBE_PORTS as u16;
        if vbe.contains(&port) {
            if let Some(v) = &mut self.video {
                self.io.get_mut(v.id).sync_memory(&mut v.vram);
            }
        }
    }

    /// Puts the VGA where a BIOS leaves it (mode 3, font loaded); the
    /// framebuffer is decoded nowhere until the PCI host says where.
    pub(crate) fn reset_video(&mut self) {
        if let Some(v) = &mut self.video {
            let len = v.vram.len();
            let dev = self.io.get_mut(v.id);
            dev.set_vram_len(len);
            dev.bios_text_mode(&mut v.vram);
            v.vram.mark_all_dirty();
            if v.lfb.take().is_some() {
                v.epoch += 1;
            }
        }
    }

    /// Follows a memory BAR the guest moved: the VGA's framebuffer.
    pub(crate) fn move_memory_window(&mut self, m: MemBarMove) {
        let vga_devfn = vga::PCI_BDF.device << 3 | vga::PCI_BDF.function;
        match &mut self.video {
            Some(v) if m.devfn == vga_devfn && m.register == 0x10 => {
                if v.lfb != m.base {
                    v.lfb = m.base;
                    v.epoch += 1;
                }
            }
            _ => tracing::debug!(?m, "memory window move with no device behind it"),
        }
    }
}

impl Machine {
    /// True when the machine has a display adapter.
    pub fn has_display(&self) -> bool {
        self.board.video.is_some()
    }

    /// Renders the screen as it is now into [`Machine::frame`]; returns
    /// the part that changed since the last render.
    pub fn update_display(&mut self) -> Option<DirtyRect> {
        let now = self.now();
        let board = &mut self.board;
        let v = board.video.as_mut()?;
        board
            .io
            .get_mut(v.id)
            .render(&mut v.vram, now, &mut v.frame)
    }

    /// The screen as last rendered ([`Machine::update_display`]).
    pub fn frame(&self) -> Option<&Frame> {
        self.board.video.as_ref().map(|v| &v.frame)
    }

    /// Renders the screen and returns a copy of it (a screenshot).
    pub fn screenshot(&mut self) -> Option<Frame> {
        self.update_display();
        self.frame().cloned()
    }

    /// The text screen, when the VGA shows a text mode.
    pub fn screen_text(&self) -> Option<TextScreen> {
        let v = self.board.video.as_ref()?;
        self.board.io.get(v.id).text_screen(&v.vram)
    }

    /// Ends [`Machine::run`] with [`RunExit::ScreenMatch`] once the text
    /// screen matches `pattern` (checked at the host check points, so a
    /// run ends at the same instruction every time).
    pub fn watch_screen(&mut self, pattern: regex::Regex) {
        if let Some(v) = &mut self.board.video {
            v.watch = Some((pattern, String::new()));
        }
    }

    /// Takes a screenshot at the first host check point at or after
    /// virtual time `ns` (see [`Machine::take_timed_screenshot`]).
    pub fn screenshot_at(&mut self, ns: u64) {
        if let Some(v) = &mut self.board.video {
            v.shot_at = Some(ns);
            v.shot = None;
        }
    }

    /// The screenshot [`Machine::screenshot_at`] asked for, once taken.
    pub fn take_timed_screenshot(&mut self) -> Option<Frame> {
        self.board.video.as_mut()?.shot.take()
    }

    /// The display's part of the host check points: the timed screenshot
    /// and the screen watch.
    pub(crate) fn display_checks(&mut self) -> Option<RunExit> {
        let v = self.board.video.as_ref()?;
        if v.watch.is_none() && v.shot_at.is_none() {
            return None;
        }
        let now = self.now();
        if self
            .board
            .video
            .as_ref()
            .and_then(|v| v.shot_at)
            .is_some_and(|t| now >= t)
        {
            let shot = self.screenshot();
            if let Some(v) = &mut self.board.video {
                v.shot = shot;
                v.shot_at = None;
            }
        }
        let text = self
            .screen_text()
            .map(|t| t.to_string())
            .unwrap_or_default();
        let v = self.board.video.as_mut()?;
        let (re, seen) = v.watch.as_mut()?;
        if *seen != text {
            let hit = re.is_match(&text);
            *seen = text;
            if hit {
                return Some(RunExit::ScreenMatch);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use crate::clock::ClockMode;
    use crate::machine::{Machine, MachineConfig, RunExit};
    use morph86_cpu::Bus;
    use morph86_devices::vga::{self, vbe};

    fn machine() -> Machine {
        Machine::new(MachineConfig {
            memory_mib: 8,
            no_reboot: true,
            clock: ClockMode::Virtual,
            ..Default::default()
        })
        .expect("machine")
    }

    fn pci_write(m: &mut Machine, reg: u8, size: u8, v: u32) {
        m.board
            .io_write(0xCF8, 4, 0x8000_1000 | u32::from(reg & 0xFC));
        m.board.io_write(0xCFC + u16::from(reg & 3), size, v);
    }

    fn pci_read(m: &mut Machine, reg: u8) -> u32 {
        m.board.io_write(0xCF8, 4, 0x8000_1000 | u32::from(reg));
        m.board.io_read(0xCFC, 4)
    }

    /// Lets the machine take the devices' signals (BAR moves).
    fn settle(m: &mut Machine) {
        let _ = m.service_devices();
    }

    #[test]
    fn the_vga_sits_at_00_02_0_with_its_framebuffer_at_bar0() {
        let mut m = machine();
        settle(&mut m);
        assert_eq!(pci_read(&mut m, 0x00), 0x1111_1234);
        assert_eq!(pci_read(&mut m, 0x08) >> 8, 0x03_00_00);
        assert_eq!(pci_read(&mut m, 0x10), vga::DEFAULT_LFB_BASE | 0x08);
        assert_eq!(pci_read(&mut m, 0x2C), 0x1100_1AF4);
        let lfb = vga::DEFAULT_LFB_BASE;
        m.board.write_u32(lfb + 0x1000, 0xDEAD_BEEF);
        assert_eq!(m.board.read_u32(lfb + 0x1000), 0xDEAD_BEEF);
        // The text screen is the power-on one; the framebuffer is memory.
        assert_eq!(m.screen_text().unwrap().rows, 25);
        // Move the BAR: the old place is open bus, the new one the memory.
        pci_write(&mut m, 0x10, 4, 0xE000_0000);
        settle(&mut m);
        assert_eq!(m.board.read_u32(lfb + 0x1000), 0xFFFF_FFFF);
        assert_eq!(m.board.read_u32(0xE000_1000), 0xDEAD_BEEF);
        // Memory decoding off: gone.
        pci_write(&mut m, 0x04, 2, 0);
        settle(&mut m);
        assert_eq!(m.board.read_u32(0xE000_1000), 0xFFFF_FFFF);
    }

    #[test]
    fn framebuffer_writes_mark_pages_and_rendering_collects_them() {
        let mut m = machine();
        settle(&mut m);
        let lfb = vga::DEFAULT_LFB_BASE;
        m.update_display();
        let page = (lfb >> 12) + 3;
        let v = m.board.video.as_ref().unwrap();
        assert!(v.vram.dirty().is_empty());
        assert!(
            m.board.page_ptr(page, true).is_none(),
            "clean: no write pointer"
        );
        assert!(m.board.page_ptr(page, false).is_some());
        // The slow path marks the page; now it may take writes directly.
        m.board.write_u8(lfb + 3 * 4096 + 5, 1);
        assert!(m.board.video.as_ref().unwrap().vram.dirty().page(3));
        assert!(m.board.page_ptr(page, true).is_some());
        // Rendering collects the page: its pointers must go.
        m.update_display();
        let mut revoked = Vec::new();
        m.board.take_new_flags(&mut revoked);
        assert!(revoked.contains(&page), "{revoked:x?}");
        assert!(m.board.page_ptr(page, true).is_none());
        m.board.write_u8(lfb + 3 * 4096 + 6, 1);
        assert!(
            m.board.page_ptr(page, true).is_some(),
            "a second write re-marks"
        );
    }

    use crate::multiboot::test_kernel as kernel;

    #[test]
    fn the_screen_watch_and_timed_screenshot() {
        let mut m = machine();
        // Spin 300,000 instructions, then put "OK" on the screen and spin.
        let code = [
            0xB9, 0xE0, 0x93, 0x04, 0x00, // mov ecx, 300000
            0xE2, 0xFE, // loop $
            0xC7, 0x05, 0x00, 0x80, 0x0B, 0x00, b'O', 0x1F, b'K', 0x1F, // mov [0xb8000], ...
            0xEB, 0xFE, // jmp $
        ];
        m.boot_multiboot(kernel(&code), "", vec![]).unwrap();
        m.watch_screen(regex::Regex::new("^OK").unwrap());
        m.screenshot_at(100_000);
        let r = m.run(crate::machine::RunLimits {
            max_insns: Some(2_000_000),
            timeout: None,
        });
        assert_eq!(r, RunExit::ScreenMatch);
        assert_eq!(r.status(), 0);
        // Stopped at the first check point after the write: deterministic.
        assert_eq!(m.cpu.icount % crate::machine::CHECK_INTERVAL, 0);
        assert!(
            m.cpu.icount > 300_000 && m.cpu.icount < 300_000 + 2 * crate::machine::CHECK_INTERVAL
        );
        // The timed screenshot shows the blank screen of before, with the
        // cursor in the first cell.
        let shot = m.take_timed_screenshot().expect("taken at 100 us");
        assert_eq!((shot.width, shot.height), (720, 400));
        let lit: Vec<usize> = (0..shot.pixels.len())
            .filter(|&i| shot.pixels[i] != 0)
            .collect();
        assert_eq!(lit.len(), 2 * 9, "two cursor lines of 9 pixels");
        assert!(lit
            .iter()
            .all(|&i| i % 720 < 9 && (13..15).contains(&(i / 720))));
        let now = m.screenshot().unwrap();
        assert_ne!(now.pixels, shot.pixels, "now the text shows");
        assert_eq!(m.screen_text().unwrap().row(0), "OK");
    }

    /// Code run from the framebuffer, rewritten and run again: both
    /// engines see the new code (the page is tracked as a code page).
    #[test]
    fn code_in_the_framebuffer_stays_coherent() {
        let lfb = vga::DEFAULT_LFB_BASE.to_le_bytes();
        let mut code = vec![0xBC, 0x00, 0x00, 0x09, 0x00]; // mov esp, 0x90000
        code.extend([0xBF, lfb[0], lfb[1], lfb[2], lfb[3]]); // mov edi, lfb
        code.extend([0xC7, 0x07, 0xB8, 0x01, 0x00, 0x00]); // mov dword [edi], ..
        code.extend([0xC6, 0x47, 0x04, 0x00, 0xC6, 0x47, 0x05, 0xC3]); // "mov eax, 1; ret"
        code.extend([0xFF, 0xD7, 0x89, 0xC3]); // call edi; mov ebx, eax
        code.extend([0xC6, 0x47, 0x01, 0x02]); // now "mov eax, 2; ret"
        code.extend([0xFF, 0xD7, 0xC1, 0xE3, 0x04, 0x09, 0xD8]); // call; eax |= ebx << 4
        code.extend([0xE6, 0xF4, 0xF4]); // out 0xf4, al; hlt
        for engine in [
            crate::machine::EngineKind::Interp,
            crate::machine::EngineKind::Jit,
        ] {
            let mut m = Machine::new(MachineConfig {
                memory_mib: 8,
                no_reboot: true,
                exit_port: Some(crate::machine::EXIT_PORT),
                engine,
                ..Default::default()
            })
            .unwrap();
            m.boot_multiboot(kernel(&code), "", vec![]).unwrap();
            let r = m.run(crate::machine::RunLimits {
                max_insns: Some(10_000),
                timeout: None,
            });
            assert_eq!(r, RunExit::ExitDevice(0x12 << 1 | 1), "{engine:?}");
        }
    }

    /// Seeded random traffic on the VGA's ports, its legacy window (every
    /// size), the framebuffer and the VGA's BAR, with renders in between,
    /// never panics; the machine still renders afterwards.
    #[test]
    fn random_vga_traffic_on_the_board_never_panics() {
        let mut m = machine();
        settle(&mut m);
        let mut x: u64 = 0x1234_5678_9ABC_DEF1;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..100_000u32 {
            let r = next();
            let size = [1u8, 2, 4][(r >> 60) as usize % 3];
            match r % 8 {
                0 | 1 => {
                    let port = [0x3B0u16, 0x1CE][(r >> 8) as usize & 1] + (r >> 16) as u16 % 0x30;
                    m.board.io_write(port, size, (r >> 24) as u32);
                }
                2 => {
                    let port = 0x3B0 + (r >> 16) as u16 % 0x30;
                    let _ = m.board.io_read(port, size);
                }
                3 | 4 => {
                    let a = 0xA_0000 + (r >> 8) as u32 % 0x2_0000;
                    match size {
                        1 => m.board.write_u8(a, r as u8),
                        2 => m.board.write_u16(a, r as u16),
                        _ => m.board.write_u32(a, r as u32),
                    }
                    let _ = m.board.read_u32(a);
                }
                5 => {
                    let a = vga::DEFAULT_LFB_BASE.wrapping_add((r >> 8) as u32 % (17 << 20));
                    m.board.write_u32(a, (r >> 32) as u32);
                    let _ = m.board.read_u16(a);
                }
                6 if i % 64 == 6 => {
                    // Move or switch off the framebuffer now and then.
                    let bar = [vga::DEFAULT_LFB_BASE, 0xE000_0000, 0xFEC0_0000, 0x0080_0000]
                        [(r >> 8) as usize % 4];
                    pci_write(&mut m, 0x10, 4, bar);
                    pci_write(&mut m, 0x04, 2, (r >> 16) as u32 & 3);
                    settle(&mut m);
                }
                _ => {
                    if i % 1024 == 7 {
                        m.update_display();
                        let _ = m.screen_text();
                    }
                }
            }
        }
        m.update_display();
        assert!(m.frame().is_some());
    }

    #[test]
    fn the_legacy_window_reaches_the_vga() {
        let mut m = machine();
        settle(&mut m);
        // Text at B8000, as the power-on mode has it.
        for (k, b) in b"OK".iter().enumerate() {
            m.board.write_u8(0xB_8000 + 2 * k as u32, *b);
        }
        assert_eq!(m.board.read_u16(0xB_8000), u16::from(b'O') | 0x0700);
        assert_eq!(m.screen_text().unwrap().row(0), "OK");
        assert!(m.board.page_ptr(0xB8, false).is_none(), "device memory");
        // VBE through the ports, and its pixels through the framebuffer.
        for (i, v) in [
            (vbe::INDEX_XRES, 64),
            (vbe::INDEX_YRES, 32),
            (vbe::INDEX_BPP, 32),
            (vbe::INDEX_ENABLE, vbe::ENABLED | vbe::LFB_ENABLED),
        ] {
            m.board.io_write(0x1CE, 2, u32::from(i));
            m.board.io_write(0x1CF, 2, u32::from(v));
        }
        m.board
            .write_u32(vga::DEFAULT_LFB_BASE + 4 * 65, 0x0012_3456);
        let f = m.screenshot().unwrap();
        assert_eq!((f.width, f.height), (64, 32));
        assert_eq!(f.pixel(1, 1), Some(0x12_3456));
        assert!(m.screen_text().is_none());
    }
}
