//! What the CPU sees of the machine: physical memory and I/O ports.
//!
//! The interpreter is generic over [`Bus`], so a concrete machine's accesses
//! are monomorphised and inlined. Addresses here are physical; segmentation
//! (and, later, paging) happen in the CPU before a call reaches the bus.

/// An interrupt or exception the CPU delivers, as reported to
/// [`Bus::note_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuEvent {
    /// An exception raised by an instruction (each attempt: a fault while
    /// delivering one is reported again, as #DF if it becomes one).
    Exception(u8),
    /// INT n, INT3 or INTO.
    Software(u8),
    /// A hardware interrupt or NMI from an interrupt controller.
    External(u8),
}

/// Physical memory and port I/O as seen from the CPU.
pub trait Bus {
    /// Reads a byte of physical memory.
    fn read_u8(&mut self, addr: u32) -> u8;
    /// Writes a byte of physical memory.
    fn write_u8(&mut self, addr: u32, value: u8);

    /// Reads a little-endian word; override for speed.
    #[inline]
    fn read_u16(&mut self, addr: u32) -> u16 {
        u16::from(self.read_u8(addr)) | u16::from(self.read_u8(addr.wrapping_add(1))) << 8
    }
    /// Reads a little-endian dword; override for speed.
    #[inline]
    fn read_u32(&mut self, addr: u32) -> u32 {
        u32::from(self.read_u16(addr)) | u32::from(self.read_u16(addr.wrapping_add(2))) << 16
    }
    /// Writes a little-endian word; override for speed.
    #[inline]
    fn write_u16(&mut self, addr: u32, value: u16) {
        self.write_u8(addr, value as u8);
        self.write_u8(addr.wrapping_add(1), (value >> 8) as u8);
    }
    /// Writes a little-endian dword; override for speed.
    #[inline]
    fn write_u32(&mut self, addr: u32, value: u32) {
        self.write_u16(addr, value as u16);
        self.write_u16(addr.wrapping_add(2), (value >> 16) as u16);
    }

    /// Reads an I/O port of `size` bytes (1, 2 or 4). Unclaimed ports read all ones.
    fn io_read(&mut self, port: u16, size: u8) -> u32 {
        let _ = port;
        match size {
            1 => 0xFF,
            2 => 0xFFFF,
            _ => 0xFFFF_FFFF,
        }
    }
    /// Writes an I/O port of `size` bytes (1, 2 or 4).
    fn io_write(&mut self, port: u16, size: u8, value: u32) {
        let _ = (port, size, value);
    }

    /// True (once) when an access since the last call reached a device: a
    /// port, or memory that is neither RAM nor ROM. Engines return to the
    /// machine right after such an instruction (see [`crate::engine`]).
    #[inline]
    fn take_device_access(&mut self) -> bool {
        false
    }

    /// The number of instructions retired before the one about to run, so
    /// that devices reached during it see the right time. Called by the CPU
    /// before every instruction and every injected event.
    #[inline]
    fn set_icount(&mut self, icount: u64) {
        let _ = icount;
    }

    /// An interrupt or exception is being delivered (for event logs).
    #[inline]
    fn note_event(&mut self, event: CpuEvent) {
        let _ = event;
    }

    /// A host pointer to physical page `page` (4 KiB) if it is plain RAM, for
    /// the TLB. For `write`, only pages whose writes need no tracking qualify.
    /// The pointer must stay valid while [`Bus::map_epoch`] is unchanged; a
    /// write pointer must be dropped once its page is reported by
    /// [`Bus::take_new_flags`].
    fn page_ptr(&mut self, page: u32, write: bool) -> Option<*mut u8> {
        let _ = (page, write);
        None
    }

    /// Changes whenever all pointers from [`Bus::page_ptr`] may have become
    /// stale. Must differ between bus instances that hand out pointers.
    fn map_epoch(&self) -> u64 {
        0
    }

    /// Marks physical page `page` as holding a page directory or table the
    /// MMU walked; later writes to it are reported by [`Bus::take_pt_writes`].
    fn mark_page_table(&mut self, page: u32) {
        let _ = page;
    }

    /// Physical page `page` is no longer a page table of any cached
    /// translation: writes to it need no tracking any more.
    fn unmark_page_table(&mut self, page: u32) {
        let _ = page;
    }

    /// Moves the marked page-table pages written since the last call into `out`.
    fn take_pt_writes(&mut self, out: &mut Vec<u32>) {
        let _ = out;
    }

    /// Moves the physical pages that gained a tracking flag (code or page
    /// table) since the last call into `out`: write pointers to them must be
    /// revoked, so that writes take the slow path and are seen.
    fn take_new_flags(&mut self, out: &mut Vec<u32>) {
        let _ = out;
    }

    /// Marks the 4 KiB physical page `page` as holding decoded code, so that a
    /// later write to it changes its [`Bus::code_generation`].
    fn mark_code_page(&mut self, page: u32);
    /// The code generation of physical page `page`: it changes whenever the
    /// page is written while it holds code. Decodings (and translations) of
    /// a page are trusted only at the generation they were made at, so a
    /// write invalidates that page's and nothing else.
    fn code_generation(&self, page: u32) -> u32;

    /// Where [`Bus::code_generation`] of `page` can be read directly, if it
    /// can: valid while [`Bus::map_epoch`] is unchanged. Translated code
    /// checks it before chaining into another page.
    fn code_generation_ptr(&self, page: u32) -> Option<*const u32> {
        let _ = page;
        None
    }
}

/// Flat RAM from address 0 with code-page tracking: the mapped guest RAM
/// of `morph86-memory`. Addresses beyond the end read as 0xFF and ignore writes.
pub type FlatRam = morph86_memory::GuestRam;

impl Bus for FlatRam {
    #[inline]
    fn read_u8(&mut self, addr: u32) -> u8 {
        morph86_memory::GuestRam::read_u8(self, addr)
    }
    #[inline]
    fn write_u8(&mut self, addr: u32, value: u8) {
        morph86_memory::GuestRam::write_u8(self, addr, value);
    }
    #[inline]
    fn read_u16(&mut self, addr: u32) -> u16 {
        morph86_memory::GuestRam::read_u16(self, addr)
    }
    #[inline]
    fn read_u32(&mut self, addr: u32) -> u32 {
        morph86_memory::GuestRam::read_u32(self, addr)
    }
    #[inline]
    fn write_u16(&mut self, addr: u32, value: u16) {
        morph86_memory::GuestRam::write_u16(self, addr, value);
    }
    #[inline]
    fn write_u32(&mut self, addr: u32, value: u32) {
        morph86_memory::GuestRam::write_u32(self, addr, value);
    }
    #[inline]
    fn page_ptr(&mut self, page: u32, write: bool) -> Option<*mut u8> {
        morph86_memory::GuestRam::page_ptr(self, page, write)
    }
    #[inline]
    fn map_epoch(&self) -> u64 {
        morph86_memory::GuestRam::map_epoch(self)
    }
    fn mark_code_page(&mut self, page: u32) {
        self.flag_page(page, morph86_memory::PageFlags::CODE);
    }
    #[inline]
    fn mark_page_table(&mut self, page: u32) {
        self.flag_page(page, morph86_memory::PageFlags::PAGE_TABLE);
    }
    fn unmark_page_table(&mut self, page: u32) {
        self.unflag_page(page, morph86_memory::PageFlags::PAGE_TABLE);
    }
    #[inline]
    fn take_pt_writes(&mut self, out: &mut Vec<u32>) {
        morph86_memory::GuestRam::take_pt_writes(self, out);
    }
    #[inline]
    fn take_new_flags(&mut self, out: &mut Vec<u32>) {
        morph86_memory::GuestRam::take_new_flags(self, out);
    }
    #[inline]
    fn code_generation(&self, page: u32) -> u32 {
        morph86_memory::GuestRam::code_generation(self, page)
    }
    #[inline]
    fn code_generation_ptr(&self, page: u32) -> Option<*const u32> {
        morph86_memory::GuestRam::code_generation_ptr(self, page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_to_code_page_changes_its_generation_only() {
        let mut ram = FlatRam::new(0x10000);
        let g1 = Bus::code_generation(&ram, 1);
        ram.write_u8(0x1000, 1);
        assert_eq!(Bus::code_generation(&ram, 1), g1, "no code marked yet");
        ram.mark_code_page(1);
        let g2 = Bus::code_generation(&ram, 2);
        ram.write_u8(0x2000, 1);
        assert_eq!(Bus::code_generation(&ram, 1), g1);
        ram.write_u16(0x1FFF, 1);
        assert_ne!(Bus::code_generation(&ram, 1), g1);
        assert_eq!(Bus::code_generation(&ram, 2), g2, "page 2 held no code");
    }

    #[test]
    fn open_bus_beyond_ram() {
        let mut ram = FlatRam::new(16);
        assert_eq!(ram.read_u32(14), 0xFFFF_0000);
        ram.write_u32(14, 0x1234_5678);
        assert_eq!(ram.read_u16(14), 0x5678);
    }
}
