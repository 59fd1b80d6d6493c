//! The board: what the CPU's [`Bus`] reaches — RAM and the I/O bus.

use morph86_cpu::{Bus, FlatRam};
use morph86_devices::IoBus;

/// RAM plus the I/O bus, as the CPU sees them.
///
/// This is the `Bus` the machine hands to `Cpu::step`; it is a separate
/// struct from [`crate::Machine`] so that the CPU and the bus can be
/// borrowed at the same time.
pub struct Board {
    /// Guest RAM from physical address 0.
    pub ram: FlatRam,
    /// Port (and later memory-mapped) devices.
    pub io: IoBus,
    /// Set by every port write; the run loop clears it and then checks the
    /// devices that can stop the machine, so it only looks when something
    /// could have changed.
    pub(crate) io_written: bool,
}

impl Board {
    /// A board with `ram_bytes` of RAM and no devices.
    pub fn new(ram_bytes: usize) -> Board {
        Board {
            ram: FlatRam::new(ram_bytes),
            io: IoBus::new(),
            io_written: false,
        }
    }
}

impl Bus for Board {
    #[inline]
    fn read_u8(&mut self, addr: u32) -> u8 {
        Bus::read_u8(&mut self.ram, addr)
    }
    #[inline]
    fn write_u8(&mut self, addr: u32, value: u8) {
        Bus::write_u8(&mut self.ram, addr, value)
    }
    #[inline]
    fn read_u16(&mut self, addr: u32) -> u16 {
        Bus::read_u16(&mut self.ram, addr)
    }
    #[inline]
    fn read_u32(&mut self, addr: u32) -> u32 {
        Bus::read_u32(&mut self.ram, addr)
    }
    #[inline]
    fn write_u16(&mut self, addr: u32, value: u16) {
        Bus::write_u16(&mut self.ram, addr, value)
    }
    #[inline]
    fn write_u32(&mut self, addr: u32, value: u32) {
        Bus::write_u32(&mut self.ram, addr, value)
    }
    fn io_read(&mut self, port: u16, size: u8) -> u32 {
        self.io.pio_read(port, size)
    }
    fn io_write(&mut self, port: u16, size: u8, value: u32) {
        self.io_written = true;
        self.io.pio_write(port, size, value)
    }
    #[inline]
    fn page_ptr(&mut self, page: u32, write: bool) -> Option<*mut u8> {
        Bus::page_ptr(&mut self.ram, page, write)
    }
    #[inline]
    fn map_epoch(&self) -> u64 {
        Bus::map_epoch(&self.ram)
    }
    #[inline]
    fn mark_code_page(&mut self, page: u32) {
        Bus::mark_code_page(&mut self.ram, page)
    }
    #[inline]
    fn code_epoch(&self) -> u64 {
        Bus::code_epoch(&self.ram)
    }
}
