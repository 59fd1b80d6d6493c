//! The board: what the CPU's [`Bus`] reaches — RAM and the device bus
//! (port windows, and memory windows such as the local APIC and I/O APIC).
//!
//! The physical map: RAM from 0; the legacy hole at 0xA0000-0xFFFFF (the
//! VGA window, open bus without a VGA; option ROMs and the BIOS area,
//! read-only, holding the firmware tables the machine writes); the BIOS's top
//! 128 KiB mirrored at 0xFFFE0000; the I/O APIC at 0xFEC00000 and the local
//! APIC at 0xFEE00000; the VGA's linear framebuffer wherever its BAR0 says
//! (see [`crate::video`]).
//!
//! Port accesses hand the device bus a [`RamDma`] view of RAM, through
//! which bus-master devices (fw_cfg's DMA today) read and write guest
//! memory with the same code and page-table tracking as the CPU's writes.

use crate::clock::{ClockMode, MachineClock};
use crate::event_log::{Access, EventLog};
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

/// The legacy VGA window: the VGA's, or open bus without one.
const VGA_WINDOW: std::ops::Range<u32> = 0xA_0000..0xC_0000;
/// Option ROMs and the BIOS: read-only.
const ROM_AREA: std::ops::Range<u32> = 0xC_0000..0x10_0000;
/// The VGA window and the ROM area: not writable RAM.
const LEGACY_HOLE: std::ops::Range<u32> = VGA_WINDOW.start..ROM_AREA.end;
/// The BIOS's top 128 KiB (0xE0000-0xFFFFF) also appears below 4 GiB.
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

    fn slow_read_u8(&mut self, addr: u32) -> u8 {
        if VGA_WINDOW.contains(&addr) {
            return self.vga_window_read(addr);
        }
        if addr >= ROM_MIRROR {
            return Bus::read_u8(&mut self.ram, addr - ROM_MIRROR + 0xE_0000);
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
            return self.vga_window_write(addr, v);
        }
        if ROM_AREA.contains(&addr) || addr >= ROM_MIRROR {
            return; // ROM ignores writes
        }
        if self.beyond_ram(addr)
            && (self.mmio_write(addr, 1, u32::from(v)) || self.lfb_write_u8(addr, v))
        {
            return;
        }
        Bus::write_u8(&mut self.ram, addr, v);
    }

    fn slow_read(&mut self, addr: u32, len: u32) -> u32 {
        if self.beyond_ram(addr) && addr < ROM_MIRROR {
            if let Some(v) = self.mmio_read(addr, len as u8) {
                return v;
            }
        }
        (0..len).fold(0, |v, k| {
            v | u32::from(self.slow_read_u8(addr.wrapping_add(k))) << (8 * k)
        })
    }

    fn slow_write(&mut self, addr: u32, len: u32, v: u32) {
        if self.beyond_ram(addr) && addr < ROM_MIRROR && self.mmio_write(addr, len as u8, v) {
            return;
        }
        for k in 0..len {
            self.slow_write_u8(addr.wrapping_add(k), (v >> (8 * k)) as u8);
        }
    }
}

/// Guest RAM as bus-master devices reach it: RAM outside the legacy hole.
/// The VGA window (no memory behind it yet) and, for writes, the ROM area
/// are not reachable; nor are MMIO windows, the ROM mirror and anything
/// beyond RAM. Writes go through the RAM's write tracking, so a device
/// writing decoded code or a page table is seen as the CPU's writes are.
pub struct RamDma<'a>(pub &'a mut FlatRam);

/// True when `addr..addr + len` and `r` share a byte.
fn touches(addr: u64, len: u64, r: &std::ops::Range<u32>) -> bool {
    len > 0 && addr < u64::from(r.end) && u64::from(r.start) < addr.saturating_add(len)
}

impl DmaMemory for RamDma<'_> {
    fn dma_read(&mut self, addr: u64, buf: &mut [u8]) -> bool {
        !touches(addr, buf.len() as u64, &VGA_WINDOW) && self.0.read_bytes(addr, buf)
    }

    fn dma_write(&mut self, addr: u64, data: &[u8]) -> bool {
        !touches(addr, data.len() as u64, &LEGACY_HOLE) && self.0.write_bytes(addr, data).is_some()
    }

    fn dma_fill(&mut self, addr: u64, len: u64, byte: u8) -> bool {
        let Ok(n) = usize::try_from(len) else {
            return false;
        };
        !touches(addr, len, &LEGACY_HOLE) && self.0.fill_bytes(addr, n, byte).is_some()
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
        // Reads change interrupt lines too (IIR, RBR, RTC register C...).
        self.reach_device();
        let v = self.io.pio_read_dma(port, size, &mut RamDma(&mut self.ram));
        self.log_access(Access::In, u32::from(port), size, u64::from(v));
        v
    }
    fn io_write(&mut self, port: u16, size: u8, value: u32) {
        self.reach_device();
        self.log_access(Access::Out, u32::from(port), size, u64::from(value));
        self.io
            .pio_write_dma(port, size, value, &mut RamDma(&mut self.ram));
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
        // The VGA window and, for writes, the ROM area take the slow path;
        // pages beyond RAM (the APICs, the ROM mirror) never get pointers.
        let a = page << 12;
        if VGA_WINDOW.contains(&a) || (write && ROM_AREA.contains(&a)) {
            return None;
        }
        Bus::page_ptr(&mut self.ram, page, write).or_else(|| self.lfb_page_ptr(a, write))
    }
    #[inline]
    fn map_epoch(&self) -> u64 {
        // Both only grow, so the sum changes whenever either does.
        Bus::map_epoch(&self.ram).wrapping_add(self.video_epoch())
    }
    #[inline]
    fn mark_page_table(&mut self, page: u32) {
        Bus::mark_page_table(&mut self.ram, page)
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
        self.video_code_generation(page)
            .unwrap_or_else(|| Bus::code_generation(&self.ram, page))
    }
    #[inline]
    fn take_new_flags(&mut self, out: &mut Vec<u32>) {
        Bus::take_new_flags(&mut self.ram, out);
        self.take_video_revoked(out);
    }
}
