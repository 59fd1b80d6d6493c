//! The board: what the CPU's [`Bus`] reaches — RAM and the device bus
//! (port windows, and memory windows such as the local APIC and I/O APIC).
//!
//! The physical map: RAM from 0; the legacy hole at 0xA0000-0xFFFFF (the
//! VGA window, the VGA's or an open bus; option ROMs and the BIOS area, ROM
//! or shadow RAM as the PAM registers say, see [`crate::upper_memory`]); the
//! BIOS image at the top of the 4 GiB space (without one, RAM's
//! 0xE0000-0xFFFFF mirrored at 0xFFFE0000); the I/O APIC at 0xFEC00000 and
//! the local APIC at 0xFEE00000; the VGA's linear framebuffer wherever its
//! BAR0 says (see [`crate::video`]).
//!
//! Port accesses hand the device bus a [`RamDma`] view of RAM, through
//! which bus-master devices (fw_cfg's DMA today) read and write guest
//! memory with the same code and page-table tracking as the CPU's writes.

use crate::clock::{ClockMode, MachineClock};
use crate::event_log::{Access, EventLog};
use crate::upper_memory::{UpperMemory, PAM_RE, PAM_WE, ROM_AREA};
use morph86_cpu::{Bus, CpuEvent, FlatRam};
use morph86_devices::{DmaMemory, IoBus, TimeSource, Wires};
use std::sync::Arc;

/// RAM plus the I/O bus and the APICs, as the CPU sees them.
///
/// This is the `Bus` the machine hands to `Cpu::step`; it is a separate
/// struct from [`crate::Machine`] so that the CPU and the bus can be
/// borrowed at the same time.
pub struct Board {
    /// Guest RAM from physical address 0.
    pub ram: FlatRam,
    /// Every device, with its port and memory windows.
    pub io: IoBus,
    /// The interrupt lines and system signals the devices drive.
    pub wires: Arc<Wires>,
    /// Virtual time as the devices see it.
    pub time: TimeSource,
    /// The machine's clock; the CPU reports its instruction count here.
    pub clock: MachineClock,
    /// Set by every access that reaches a device; engines return to the
    /// machine after such an instruction, which then re-evaluates interrupt
    /// lines and stop conditions.
    device_access: bool,
    /// The event log, if one is kept.
    pub log: Option<EventLog>,
    /// ROMs and PAM shadowing in 0xC0000-0xFFFFF, and the BIOS below 4 GiB.
    pub upper: UpperMemory,
    /// The display adapter's memory and place in the map, if one is fitted.
    pub video: Option<crate::video::Video>,
}

impl Board {
    /// A board with `ram_bytes` of RAM and no devices.
    pub fn new(ram_bytes: usize, clock: ClockMode) -> Board {
        Board {
            ram: FlatRam::new(ram_bytes),
            io: IoBus::new(),
            wires: Wires::new(),
            time: TimeSource::new(),
            clock: MachineClock::new(clock),
            device_access: false,
            log: None,
            upper: UpperMemory::default(),
            video: None,
        }
    }

    /// Marks a device access and publishes the time the device sees.
    #[inline]
    fn reach_device(&mut self) {
        self.device_access = true;
        self.time.set(self.clock.now());
    }

    #[inline]
    fn log_access(&mut self, kind: Access, addr: u32, size: u8, value: u64) {
        if let Some(log) = &mut self.log {
            let mask = morph86_devices::all_ones64(size);
            log.access(self.clock.icount, kind, addr, size, value & mask);
        }
    }

    /// A device memory access outside the MMIO windows (the VGA's legacy
    /// window): marks it and logs it.
    pub(crate) fn note_device_access(&mut self, kind: Access, addr: u32, value: u64) {
        self.reach_device();
        self.log_access(kind, addr, 1, value);
    }

    #[inline]
    fn beyond_ram(&self, addr: u32) -> bool {
        addr as usize >= self.ram.len()
    }

    fn mmio_read(&mut self, addr: u32, size: u8) -> Option<u32> {
        if !self.io.claims_mmio(u64::from(addr)) {
            return None;
        }
        self.reach_device();
        let v = self.io.mmio_read(u64::from(addr), size).unwrap_or(u64::MAX) as u32;
        self.log_access(Access::Read, addr, size, u64::from(v));
        Some(v)
    }

    fn mmio_write(&mut self, addr: u32, size: u8, v: u32) -> bool {
        if !self.io.claims_mmio(u64::from(addr)) {
            return false;
        }
        self.reach_device();
        self.log_access(Access::Write, addr, size, u64::from(v));
        self.io.mmio_write(u64::from(addr), size, u64::from(v))
    }
}

/// The legacy VGA window: the VGA's, or an open bus without one.
const VGA_WINDOW: std::ops::Range<u32> = 0xA_0000..0xC_0000;
/// Without a BIOS image, RAM's 0xE0000-0xFFFFF also appears here.
pub(crate) const ROM_MIRROR: u32 = 0xFFFE_0000;

impl Board {
    /// True when an access of `len` bytes at `addr` needs the byte-wise
    /// slow path: the legacy hole, the ROM mirror, MMIO or beyond RAM.
    #[inline]
    fn special(&self, addr: u32, len: u32) -> bool {
        let end = addr.wrapping_add(len - 1);
        (end as usize) >= self.ram.len()
            || end < addr
            || (addr < ROM_AREA.end && end >= VGA_WINDOW.start)
    }

    /// Where the BIOS (or, without one, the RAM mirror) starts below 4 GiB.
    #[inline]
    fn alias_start(&self) -> u32 {
        self.upper.high_alias_start().unwrap_or(ROM_MIRROR)
    }

    fn slow_read_u8(&mut self, addr: u32) -> u8 {
        if VGA_WINDOW.contains(&addr) {
            return match self.video {
                Some(_) => self.vga_window_read(addr),
                None => self.mmio_read(addr, 1).map_or(0xFF, |v| v as u8),
            };
        }
        if ROM_AREA.contains(&addr) && !self.upper.reads_ram(addr) {
            return self.upper.rom_byte(addr).unwrap_or(0xFF);
        }
        if addr >= self.alias_start() {
            return match self.upper.high_alias_start() {
                Some(_) => self.upper.high_byte(addr),
                None => Bus::read_u8(&mut self.ram, addr - ROM_MIRROR + 0xE_0000),
            };
        }
        if self.beyond_ram(addr) {
            if let Some(v) = self.mmio_read(addr, 1) {
                return v as u8;
            }
            if let Some(v) = self.lfb_read_u8(addr) {
                return v;
            }
        }
        Bus::read_u8(&mut self.ram, addr)
    }

    fn slow_write_u8(&mut self, addr: u32, v: u8) {
        if VGA_WINDOW.contains(&addr) {
            if self.video.is_some() {
                return self.vga_window_write(addr, v);
            }
            self.mmio_write(addr, 1, u32::from(v));
            return;
        }
        if (ROM_AREA.contains(&addr) && !self.upper.writes_ram(addr)) || addr >= self.alias_start()
        {
            return; // ROM ignores writes
        }
        if self.beyond_ram(addr)
            && (self.mmio_write(addr, 1, u32::from(v)) || self.lfb_write_u8(addr, v))
        {
            return;
        }
        Bus::write_u8(&mut self.ram, addr, v);
    }

    /// True when a multi-byte access at `addr` goes to a device whole.
    #[inline]
    fn device_window(&self, addr: u32) -> bool {
        VGA_WINDOW.contains(&addr) || (self.beyond_ram(addr) && addr < self.alias_start())
    }

    fn slow_read(&mut self, addr: u32, len: u32) -> u32 {
        if self.device_window(addr) {
            if let Some(v) = self.mmio_read(addr, len as u8) {
                return v;
            }
        }
        (0..len).fold(0, |v, k| {
            v | u32::from(self.slow_read_u8(addr.wrapping_add(k))) << (8 * k)
        })
    }

    fn slow_write(&mut self, addr: u32, len: u32, v: u32) {
        if self.device_window(addr) && self.mmio_write(addr, len as u8, v) {
            return;
        }
        for k in 0..len {
            self.slow_write_u8(addr.wrapping_add(k), (v >> (8 * k)) as u8);
        }
    }
}

/// Guest RAM as bus-master devices reach it: RAM outside the legacy hole,
/// and shadow RAM in the ROM area where the PAM registers send the
/// transfer's direction to RAM (as they route bus masters on the i440FX).
/// The VGA window, MMIO windows, the BIOS alias and anything beyond RAM
/// are not reachable. Writes go through the RAM's write tracking, so a
/// device writing decoded code or a page table is seen as the CPU's
/// writes are.
pub struct RamDma<'a> {
    /// Guest RAM.
    pub ram: &'a mut FlatRam,
    /// The PAM decoding of the ROM area.
    pub upper: &'a UpperMemory,
}

/// True when `addr..addr + len` and `r` share a byte.
fn touches(addr: u64, len: u64, r: &std::ops::Range<u32>) -> bool {
    len > 0 && addr < u64::from(r.end) && u64::from(r.start) < addr.saturating_add(len)
}

impl RamDma<'_> {
    /// True when a transfer over `addr..addr + len` may reach RAM in the
    /// direction `need` (PAM_RE for reads of memory, PAM_WE for writes).
    fn reachable(&self, addr: u64, len: u64, need: u8) -> bool {
        if touches(addr, len, &VGA_WINDOW) {
            return false;
        }
        if touches(addr, len, &ROM_AREA) {
            let first = addr.max(u64::from(ROM_AREA.start)) as u32;
            let last = (addr.saturating_add(len) - 1).min(u64::from(ROM_AREA.end) - 1) as u32;
            let mut a = first & !0x3FFF;
            while a <= last {
                if self.upper.pam_bits(a) & need == 0 {
                    return false;
                }
                a += 0x4000;
            }
        }
        true
    }
}

impl DmaMemory for RamDma<'_> {
    fn dma_read(&mut self, addr: u64, buf: &mut [u8]) -> bool {
        self.reachable(addr, buf.len() as u64, PAM_RE) && self.ram.read_bytes(addr, buf)
    }

    fn dma_write(&mut self, addr: u64, data: &[u8]) -> bool {
        self.reachable(addr, data.len() as u64, PAM_WE)
            && self.ram.write_bytes(addr, data).is_some()
    }

    fn dma_fill(&mut self, addr: u64, len: u64, byte: u8) -> bool {
        let Ok(n) = usize::try_from(len) else {
            return false;
        };
        self.reachable(addr, len, PAM_WE) && self.ram.fill_bytes(addr, n, byte).is_some()
    }
}

impl Bus for Board {
    #[inline]
    fn read_u8(&mut self, addr: u32) -> u8 {
        if self.special(addr, 1) {
            return self.slow_read_u8(addr);
        }
        Bus::read_u8(&mut self.ram, addr)
    }
    #[inline]
    fn write_u8(&mut self, addr: u32, value: u8) {
        if self.special(addr, 1) {
            return self.slow_write_u8(addr, value);
        }
        Bus::write_u8(&mut self.ram, addr, value)
    }
    #[inline]
    fn read_u16(&mut self, addr: u32) -> u16 {
        if self.special(addr, 2) {
            return self.slow_read(addr, 2) as u16;
        }
        Bus::read_u16(&mut self.ram, addr)
    }
    #[inline]
    fn read_u32(&mut self, addr: u32) -> u32 {
        if self.special(addr, 4) {
            return self.slow_read(addr, 4);
        }
        Bus::read_u32(&mut self.ram, addr)
    }
    #[inline]
    fn write_u16(&mut self, addr: u32, value: u16) {
        if self.special(addr, 2) {
            return self.slow_write(addr, 2, u32::from(value));
        }
        Bus::write_u16(&mut self.ram, addr, value)
    }
    #[inline]
    fn write_u32(&mut self, addr: u32, value: u32) {
        if self.special(addr, 4) {
            return self.slow_write(addr, 4, value);
        }
        Bus::write_u32(&mut self.ram, addr, value)
    }
    fn io_read(&mut self, port: u16, size: u8) -> u32 {
        // Reads change interrupt lines too (IIR, RBR, RTC register C...);
        // a port nobody claims, the POST latch (port 0x80, the kernel's I/O
        // delay) or a status read from the time (port 0x61) changes nothing
        // the machine must look at again.
        self.time.set(self.clock.now());
        if self.io.pio_reaches_machine(port, size, false) {
            self.device_access = true;
        }
        let mut mem = RamDma {
            ram: &mut self.ram,
            upper: &self.upper,
        };
        let v = self.io.pio_read_dma(port, size, &mut mem);
        self.log_access(Access::In, u32::from(port), size, u64::from(v));
        v
    }
    fn io_write(&mut self, port: u16, size: u8, value: u32) {
        self.time.set(self.clock.now());
        if self.io.pio_reaches_machine(port, size, true) {
            self.device_access = true;
        }
        self.log_access(Access::Out, u32::from(port), size, u64::from(value));
        let mut mem = RamDma {
            ram: &mut self.ram,
            upper: &self.upper,
        };
        self.io.pio_write_dma(port, size, value, &mut mem);
        self.after_port_write(port);
    }
    #[inline]
    fn take_device_access(&mut self) -> bool {
        std::mem::take(&mut self.device_access)
    }
    #[inline]
    fn set_icount(&mut self, icount: u64) {
        self.clock.icount = icount;
    }
    fn note_event(&mut self, event: CpuEvent) {
        if let Some(log) = &mut self.log {
            log.cpu_event(self.clock.icount, event);
        }
    }
    #[inline]
    fn page_ptr(&mut self, page: u32, write: bool) -> Option<*mut u8> {
        // The VGA window takes the slow path; in the ROM area, RAM pages
        // get pointers where the PAM registers send both directions (or,
        // for reads, reads) to RAM, and ROM pages read-only pointers;
        // pages beyond RAM (the APICs, the BIOS alias) never get pointers.
        let a = page << 12;
        if VGA_WINDOW.contains(&a) {
            return None;
        }
        if ROM_AREA.contains(&a) {
            let bits = self.upper.pam_bits(a);
            return match (write, bits & PAM_RE != 0) {
                (true, _) if bits != PAM_RE | PAM_WE => None,
                (false, false) => self.upper.rom_page_ptr(a).map(|p| p.cast_mut()),
                _ => Bus::page_ptr(&mut self.ram, page, write),
            };
        }
        Bus::page_ptr(&mut self.ram, page, write).or_else(|| self.lfb_page_ptr(a, write))
    }
    #[inline]
    fn map_epoch(&self) -> u64 {
        // ROM and shadow pointers go stale when PAM or the ROMs change, video
        // pointers when the framebuffer moves; every part only grows, so the
        // sum changes whenever one does.
        Bus::map_epoch(&self.ram)
            .wrapping_add(u64::from(self.upper.generation()))
            .wrapping_add(self.video_epoch())
    }
    #[inline]
    fn mark_page_table(&mut self, page: u32) {
        Bus::mark_page_table(&mut self.ram, page)
    }
    fn unmark_page_table(&mut self, page: u32) {
        Bus::unmark_page_table(&mut self.ram, page)
    }
    #[inline]
    fn take_pt_writes(&mut self, out: &mut Vec<u32>) {
        Bus::take_pt_writes(&mut self.ram, out)
    }
    #[inline]
    fn mark_code_page(&mut self, page: u32) {
        if !self.mark_video_code(page) {
            Bus::mark_code_page(&mut self.ram, page)
        }
    }
    #[inline]
    fn code_generation(&self, page: u32) -> u32 {
        if let Some(g) = self.video_code_generation(page) {
            return g;
        }
        // What the ROM area and the BIOS alias show changes with PAM.
        let g = Bus::code_generation(&self.ram, page);
        if (0xC0..0x100).contains(&page) || page >= self.alias_start() >> 12 {
            g.wrapping_add(self.upper.generation())
        } else {
            g
        }
    }
    #[inline]
    fn code_generation_ptr(&self, page: u32) -> Option<*const u32> {
        // The legacy hole's generations also follow PAM or the VGA, and
        // video memory keeps its own: no pointer into RAM's can stand for
        // them, so chains into those pages go through the engine.
        if (0xA0..0x100).contains(&page)
            || page >= self.alias_start() >> 12
            || self.video_code_generation(page).is_some()
        {
            return None;
        }
        Bus::code_generation_ptr(&self.ram, page)
    }
    #[inline]
    fn take_new_flags(&mut self, out: &mut Vec<u32>) {
        Bus::take_new_flags(&mut self.ram, out);
        self.take_video_revoked(out);
    }
}
