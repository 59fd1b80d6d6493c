//! What the CPU sees of the machine: physical memory and I/O ports.
//!
//! The interpreter is generic over [`Bus`], so a concrete machine's accesses
//! are monomorphised and inlined. Addresses here are physical; segmentation
//! (and, later, paging) happen in the CPU before a call reaches the bus.

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

    /// Marks the 4 KiB physical page `page` as holding decoded code, so that a
    /// later write to it bumps [`Bus::code_epoch`].
    fn mark_code_page(&mut self, page: u32);
    /// A counter that changes whenever memory holding decoded code is written.
    /// The decode cache trusts an entry only while this value is unchanged.
    fn code_epoch(&self) -> u64;
}

/// Flat RAM from address 0, with code-page tracking. Addresses beyond the
/// end read as 0xFF and ignore writes (an open bus).
#[derive(Clone, Debug)]
pub struct FlatRam {
    ram: Vec<u8>,
    code_pages: Vec<u64>,
    any_code: bool,
    epoch: u64,
}

impl FlatRam {
    /// RAM of `size` bytes, zero-filled.
    pub fn new(size: usize) -> FlatRam {
        let pages = size.div_ceil(4096);
        FlatRam {
            ram: vec![0; size],
            code_pages: vec![0; pages.div_ceil(64)],
            any_code: false,
            epoch: 0,
        }
    }

    /// The RAM contents.
    pub fn bytes(&self) -> &[u8] {
        &self.ram
    }

    /// Mutable RAM contents. Writing through this forgets every decoded
    /// instruction, as if the page had been written by the CPU.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.invalidate_code();
        &mut self.ram
    }

    /// Forgets all code-page marks and bumps the epoch.
    pub fn invalidate_code(&mut self) {
        if self.any_code {
            self.code_pages.iter_mut().for_each(|w| *w = 0);
            self.any_code = false;
        }
        self.epoch += 1;
    }

    #[inline]
    fn note_write(&mut self, addr: u32, len: u32) {
        if !self.any_code {
            return;
        }
        let first = addr >> 12;
        let last = addr.wrapping_add(len - 1) >> 12;
        for page in [first, last] {
            let (w, b) = ((page / 64) as usize, page % 64);
            if let Some(word) = self.code_pages.get(w) {
                if word & (1 << b) != 0 {
                    self.invalidate_code();
                    return;
                }
            }
        }
    }
}

impl Bus for FlatRam {
    #[inline]
    fn read_u8(&mut self, addr: u32) -> u8 {
        self.ram.get(addr as usize).copied().unwrap_or(0xFF)
    }
    #[inline]
    fn write_u8(&mut self, addr: u32, value: u8) {
        self.note_write(addr, 1);
        if let Some(b) = self.ram.get_mut(addr as usize) {
            *b = value;
        }
    }
    #[inline]
    fn read_u16(&mut self, addr: u32) -> u16 {
        let a = addr as usize;
        match self.ram.get(a..a + 2) {
            Some(s) => u16::from_le_bytes([s[0], s[1]]),
            None => {
                u16::from(self.read_u8(addr)) | u16::from(self.read_u8(addr.wrapping_add(1))) << 8
            }
        }
    }
    #[inline]
    fn read_u32(&mut self, addr: u32) -> u32 {
        let a = addr as usize;
        match self.ram.get(a..a + 4) {
            Some(s) => u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
            None => {
                u32::from(self.read_u16(addr))
                    | u32::from(self.read_u16(addr.wrapping_add(2))) << 16
            }
        }
    }
    #[inline]
    fn write_u16(&mut self, addr: u32, value: u16) {
        self.note_write(addr, 2);
        let a = addr as usize;
        match self.ram.get_mut(a..a + 2) {
            Some(s) => s.copy_from_slice(&value.to_le_bytes()),
            None => {
                self.write_u8(addr, value as u8);
                self.write_u8(addr.wrapping_add(1), (value >> 8) as u8);
            }
        }
    }
    #[inline]
    fn write_u32(&mut self, addr: u32, value: u32) {
        self.note_write(addr, 4);
        let a = addr as usize;
        match self.ram.get_mut(a..a + 4) {
            Some(s) => s.copy_from_slice(&value.to_le_bytes()),
            None => {
                self.write_u16(addr, value as u16);
                self.write_u16(addr.wrapping_add(2), (value >> 16) as u16);
            }
        }
    }
    fn mark_code_page(&mut self, page: u32) {
        let (w, b) = ((page / 64) as usize, page % 64);
        if let Some(word) = self.code_pages.get_mut(w) {
            *word |= 1 << b;
            self.any_code = true;
        }
    }
    #[inline]
    fn code_epoch(&self) -> u64 {
        self.epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_to_code_page_bumps_epoch() {
        let mut ram = FlatRam::new(0x10000);
        let e0 = ram.code_epoch();
        ram.write_u8(0x1000, 1);
        assert_eq!(ram.code_epoch(), e0, "no code marked yet");
        ram.mark_code_page(1);
        ram.write_u8(0x2000, 1);
        assert_eq!(ram.code_epoch(), e0);
        ram.write_u16(0x1FFF, 1);
        assert_ne!(ram.code_epoch(), e0);
    }

    #[test]
    fn open_bus_beyond_ram() {
        let mut ram = FlatRam::new(16);
        assert_eq!(ram.read_u32(14), 0xFFFF_0000);
        ram.write_u32(14, 0x1234_5678);
        assert_eq!(ram.read_u16(14), 0x5678);
    }
}
