//! QEMU's firmware configuration device (fw_cfg), as QEMU's x86 machines
//! fit it: the way a BIOS (SeaBIOS, and the BIOS morph86 will have) learns
//! what the machine is.
//!
//! # Interface (QEMU's `docs/specs/fw_cfg.rst`)
//!
//! | port | access | what |
//! |---|---|---|
//! | 0x510 | 16-bit write | selector: picks an item and rewinds it to offset 0 |
//! | 0x510, 0x511 | 8-bit read | data: the next byte of the selected item (0 past its end) |
//! | 0x514 | 32-bit write | DMA descriptor address, high half (big-endian) |
//! | 0x518 | 32-bit write | DMA descriptor address, low half (big-endian); starts the transfer |
//! | 0x514..0x51C | read | the DMA signature "QEMU CFG" (0x51454d5520434647 big-endian) |
//!
//! As in QEMU 2.4 and later, 8-bit writes to the data port are ignored, and
//! a 16-bit read of 0x510 reads 0 and does nothing; 0x512 and 0x513 are
//! not decoded. (Wider accesses that run past 0x511 are split into byte
//! accesses by the bus, as for every device.) A DMA-window write of another size or place is
//! ignored, and unaligned DMA-window reads give 0. Values written to the
//! DMA ports are big-endian: a little-endian guest writes
//! `bswap32(addr >> 32)` to 0x514 and `bswap32(addr)` to 0x518.
//!
//! Selector bits: 0x8000 picks the architecture-local table, bits 0..13 the
//! item; bit 14 (the old write flag) is ignored. A selector at or above
//! [`MAX_ENTRY`] (in either table) selects nothing; nothing selected, a
//! free slot and an item read past its end all read as zeros, as in QEMU.
//!
//! # DMA
//!
//! The descriptor (16 bytes, big-endian) is `{be32 control, be32 length,
//! be64 address}`. Control bits: [`control::ERROR`], [`control::READ`],
//! [`control::SKIP`], [`control::SELECT`] (selector in bits 16..31, applied
//! first), [`control::WRITE`]; READ wins over WRITE, WRITE over SKIP. A
//! read copies the item from the current offset to `address`, zero-filling
//! past the item's end; SKIP moves the offset; WRITE fails (no item is
//! writable). On completion the device stores the control word back as 0,
//! or as ERROR when some part failed: any destination byte outside RAM
//! (beyond RAM, MMIO, the legacy VGA/ROM area, a range that wraps) fails
//! that part, and nothing is written there. A descriptor that cannot be
//! read is answered by storing ERROR at its address (if that is RAM).
//! Transfers complete within the triggering write, and go through the
//! [`DmaMemory`] the board passes, which tracks writes as CPU writes are.
//!
//! # Items
//!
//! The device itself always has [`key::SIGNATURE`] ("QEMU"), [`key::ID`]
//! (le32 3: traditional interface and DMA) and [`key::FILE_DIR`] (be32
//! count, then per file `{be32 size, be16 select, be16 reserved, char
//! name[56]}`, files sorted by name and numbered from [`key::FILE_FIRST`]
//! in that order, as QEMU numbers them). The board adds the rest with
//! [`FwCfg::set_item`] and [`FwCfg::add_file`]; for morph86's PC,
//! `morph86_machine::firmware::fw_cfg` lists them (RAM size, CPU counts,
//! `etc/e820`, `bootorder`, the ACPI, MP and SMBIOS tables).

use crate::dma::DmaMemory;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The selector port (16-bit writes); 8-bit reads here and at +1 read data.
pub const FW_CFG_PORT: u16 = 0x510;
/// Ports of the selector/data window.
pub const FW_CFG_PORTS: u32 = 2;
/// The DMA address port (high half; the low half is at +4).
pub const FW_CFG_DMA_PORT: u16 = 0x514;
/// Ports of the DMA window.
pub const FW_CFG_DMA_PORTS: u32 = 8;
/// What the DMA window reads as: "QEMU CFG", big-endian.
pub const DMA_SIGNATURE: u64 = 0x5145_4d55_2043_4647;
/// File slots (QEMU's default for current machine types).
pub const FILE_SLOTS: u16 = 0x20;
/// One past the highest item number of each table.
pub const MAX_ENTRY: u16 = key::FILE_FIRST + FILE_SLOTS;
/// Longest file name, without its terminating NUL.
pub const MAX_NAME: usize = 55;

/// Item numbers (selector values), as QEMU's `standard-headers/linux/qemu_fw_cfg.h`.
pub mod key {
    /// "QEMU".
    pub const SIGNATURE: u16 = 0x00;
    /// le32 feature bits: bit 0 traditional interface, bit 1 DMA.
    pub const ID: u16 = 0x01;
    /// 16-byte machine UUID.
    pub const UUID: u16 = 0x02;
    /// le64 RAM size in bytes.
    pub const RAM_SIZE: u16 = 0x03;
    /// le16: 1 when the machine has no graphical display.
    pub const NOGRAPHIC: u16 = 0x04;
    /// le16 CPUs at boot.
    pub const NB_CPUS: u16 = 0x05;
    /// le16: offer a boot menu.
    pub const BOOT_MENU: u16 = 0x0E;
    /// le16 limit of the CPUs' APIC IDs (QEMU's x86 "max CPUs").
    pub const MAX_CPUS: u16 = 0x0F;
    /// The file directory.
    pub const FILE_DIR: u16 = 0x19;
    /// The first file.
    pub const FILE_FIRST: u16 = 0x20;
    /// Selector bit of the architecture-local table.
    pub const ARCH_LOCAL: u16 = 0x8000;
    /// The item number bits of a selector.
    pub const ENTRY_MASK: u16 = 0x3FFF;
    /// x86: le32 1 when ISA IRQ 0 is routed to I/O APIC pin 2.
    pub const IRQ0_OVERRIDE: u16 = ARCH_LOCAL | 0x02;
}

/// DMA control bits.
pub mod control {
    /// The transfer failed (set by the device).
    pub const ERROR: u32 = 1;
    /// Copy item bytes to memory.
    pub const READ: u32 = 2;
    /// Move the item offset without copying.
    pub const SKIP: u32 = 4;
    /// Select the item in bits 16..31 first.
    pub const SELECT: u32 = 8;
    /// Copy memory into the item (refused: no item is writable).
    pub const WRITE: u32 = 0x10;
}

/// Why an item could not be added.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FwCfgError {
    /// The key is the device's own (signature, ID, directory) or a file
    /// slot, or is beyond the table.
    #[error("fw_cfg key {0:#06x} cannot be set directly")]
    ReservedKey(u16),
    /// The file name is empty, too long or holds a NUL.
    #[error("fw_cfg file name {0:?} is empty, holds a NUL or is longer than 55 bytes")]
    BadName(String),
    /// A file of that name exists.
    #[error("fw_cfg file {0:?} exists already")]
    Duplicate(String),
    /// Every file slot is taken.
    #[error("fw_cfg has no free file slot for {0:?}")]
    NoSlot(String),
    /// The item is larger than a 32-bit size can say.
    #[error("fw_cfg item of {0} bytes is too large")]
    TooLarge(usize),
}

/// One file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct File {
    name: String,
    data: Vec<u8>,
}

/// The fw_cfg device (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FwCfg {
    /// Items below [`key::FILE_FIRST`] of the generic table, by number.
    generic: Vec<Vec<u8>>,
    /// Items of the architecture-local table, by number (below FILE_FIRST).
    arch: Vec<Vec<u8>>,
    /// Files, sorted by name; file i is item FILE_FIRST + i.
    files: Vec<File>,
    /// The selector as written, or `None` when it selects nothing.
    selected: Option<u16>,
    /// Offset into the selected item.
    offset: u32,
    /// The DMA descriptor address being assembled.
    dma_addr: u64,
}

impl Default for FwCfg {
    fn default() -> Self {
        Self::new()
    }
}

impl FwCfg {
    /// A device with the signature, the ID and an empty file directory.
    pub fn new() -> FwCfg {
        let mut d = FwCfg {
            generic: vec![Vec::new(); usize::from(key::FILE_FIRST)],
            arch: vec![Vec::new(); usize::from(key::FILE_FIRST)],
            files: Vec::new(),
            selected: Some(key::SIGNATURE),
            offset: 0,
            dma_addr: 0,
        };
        d.generic[usize::from(key::SIGNATURE)] = b"QEMU".to_vec();
        d.generic[usize::from(key::ID)] = 3u32.to_le_bytes().to_vec();
        d.rebuild_directory();
        d
    }

    /// Sets item `k` (a generic or architecture-local item below
    /// [`key::FILE_FIRST`], other than the signature, ID and directory).
    pub fn set_item(&mut self, k: u16, data: Vec<u8>) -> Result<(), FwCfgError> {
        let n = k & key::ENTRY_MASK;
        let own = k == key::SIGNATURE || k == key::ID || k == key::FILE_DIR;
        if own || n >= key::FILE_FIRST || k & !(key::ARCH_LOCAL | key::ENTRY_MASK) != 0 {
            return Err(FwCfgError::ReservedKey(k));
        }
        if u32::try_from(data.len()).is_err() {
            return Err(FwCfgError::TooLarge(data.len()));
        }
        let table = if k & key::ARCH_LOCAL != 0 {
            &mut self.arch
        } else {
            &mut self.generic
        };
        table[usize::from(n)] = data;
        Ok(())
    }

    /// Sets item `k` to a little-endian 16-bit value.
    pub fn set_u16(&mut self, k: u16, v: u16) -> Result<(), FwCfgError> {
        self.set_item(k, v.to_le_bytes().to_vec())
    }

    /// Sets item `k` to a little-endian 32-bit value.
    pub fn set_u32(&mut self, k: u16, v: u32) -> Result<(), FwCfgError> {
        self.set_item(k, v.to_le_bytes().to_vec())
    }

    /// Sets item `k` to a little-endian 64-bit value.
    pub fn set_u64(&mut self, k: u16, v: u64) -> Result<(), FwCfgError> {
        self.set_item(k, v.to_le_bytes().to_vec())
    }

    /// Adds a file. Files are numbered in name order, so adding one may
    /// renumber those after it (as in QEMU, where all are added before the
    /// guest runs).
    pub fn add_file(&mut self, name: &str, data: Vec<u8>) -> Result<(), FwCfgError> {
        if name.is_empty() || name.len() > MAX_NAME || name.contains('\0') {
            return Err(FwCfgError::BadName(name.to_string()));
        }
        if u32::try_from(data.len()).is_err() {
            return Err(FwCfgError::TooLarge(data.len()));
        }
        let at = match self.files.binary_search_by(|f| f.name.as_str().cmp(name)) {
            Ok(_) => return Err(FwCfgError::Duplicate(name.to_string())),
            Err(at) => at,
        };
        if self.files.len() >= usize::from(FILE_SLOTS) {
            return Err(FwCfgError::NoSlot(name.to_string()));
        }
        self.files.insert(
            at,
            File {
                name: name.to_string(),
                data,
            },
        );
        self.rebuild_directory();
        Ok(())
    }

    /// The selector of the file `name`, if there is one.
    pub fn file_key(&self, name: &str) -> Option<u16> {
        let i = self.files.iter().position(|f| f.name == name)?;
        Some(key::FILE_FIRST + i as u16)
    }

    /// The contents of the item a selector names (empty for none).
    pub fn item(&self, selector: u16) -> &[u8] {
        let n = selector & key::ENTRY_MASK;
        if n >= MAX_ENTRY {
            return &[];
        }
        let arch = selector & key::ARCH_LOCAL != 0;
        match (arch, n.checked_sub(key::FILE_FIRST)) {
            (false, Some(i)) => self
                .files
                .get(usize::from(i))
                .map_or(&[][..], |f| &f.data[..]),
            (true, Some(_)) => &[],
            (false, None) => &self.generic[usize::from(n)],
            (true, None) => &self.arch[usize::from(n)],
        }
    }

    fn rebuild_directory(&mut self) {
        let mut d = Vec::with_capacity(4 + 64 * self.files.len());
        d.extend((self.files.len() as u32).to_be_bytes());
        for (i, f) in self.files.iter().enumerate() {
            d.extend((f.data.len() as u32).to_be_bytes());
            d.extend((key::FILE_FIRST + i as u16).to_be_bytes());
            d.extend([0, 0]);
            let mut name = [0u8; 56];
            name[..f.name.len()].copy_from_slice(f.name.as_bytes());
            d.extend(name);
        }
        self.generic[usize::from(key::FILE_DIR)] = d;
    }

    /// Writes the selector.
    pub fn select(&mut self, selector: u16) {
        self.offset = 0;
        self.selected = ((selector & key::ENTRY_MASK) < MAX_ENTRY).then_some(selector);
    }

    /// The selected item's bytes from the current offset.
    fn rest(&self) -> &[u8] {
        match self.selected {
            Some(s) => self.item(s).get(self.offset as usize..).unwrap_or(&[]),
            None => &[],
        }
    }

    /// Reads one data byte (0 past the end or with nothing selected).
    pub fn read_data(&mut self) -> u8 {
        match self.rest().first() {
            Some(&b) => {
                self.offset += 1;
                b
            }
            None => 0,
        }
    }

    /// Runs the DMA transfer whose descriptor is at `desc`.
    pub fn dma_transfer(&mut self, desc: u64, mem: &mut dyn DmaMemory) {
        let mut d = [0u8; 16];
        if !mem.dma_read(desc, &mut d) {
            mem.dma_write(desc, &control::ERROR.to_be_bytes());
            return;
        }
        let ctl = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
        let mut length = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
        let mut address =
            u64::from_be_bytes([d[8], d[9], d[10], d[11], d[12], d[13], d[14], d[15]]);
        if ctl & control::SELECT != 0 {
            self.select((ctl >> 16) as u16);
        }
        let (read, write) = if ctl & control::READ != 0 {
            (true, false)
        } else if ctl & control::WRITE != 0 {
            (false, true)
        } else if ctl & control::SKIP != 0 {
            (false, false)
        } else {
            length = 0;
            (false, false)
        };
        let mut status = 0;
        while length > 0 && status & control::ERROR == 0 {
            let rest = self.rest();
            let len = if rest.is_empty() {
                // Nothing (more) to give: a read fills with zeros.
                if (read && !mem.dma_fill(address, u64::from(length), 0)) || write {
                    status |= control::ERROR;
                }
                length
            } else {
                let len = length.min(rest.len() as u32);
                if (read && !mem.dma_write(address, &rest[..len as usize])) || write {
                    status |= control::ERROR;
                }
                self.offset += len;
                len
            };
            address = address.wrapping_add(u64::from(len));
            length -= len;
        }
        mem.dma_write(desc, &status.to_be_bytes());
    }

    /// Reads the DMA window: the signature's bytes, in memory order.
    fn dma_window_read(offset: u16, size: u8) -> u32 {
        let (o, n) = (usize::from(offset), usize::from(size));
        if !matches!(n, 1 | 2 | 4) || o % n != 0 || o + n > 8 {
            return 0;
        }
        let sig = DMA_SIGNATURE.to_be_bytes();
        sig[o..o + n]
            .iter()
            .rev()
            .fold(0, |v, &b| v << 8 | u32::from(b))
    }
}

impl crate::bus::Device for FwCfg {
    fn name(&self) -> &str {
        "fw_cfg"
    }

    fn pio_read(&mut self, base: u16, offset: u16, size: u8) -> u32 {
        if base == FW_CFG_DMA_PORT {
            return Self::dma_window_read(offset, size);
        }
        if size == 1 {
            u32::from(self.read_data())
        } else {
            0
        }
    }

    fn pio_write(&mut self, base: u16, offset: u16, size: u8, value: u32) {
        self.pio_write_dma(base, offset, size, value, &mut crate::dma::NoDma);
    }

    fn pio_write_dma(
        &mut self,
        base: u16,
        offset: u16,
        size: u8,
        value: u32,
        mem: &mut dyn DmaMemory,
    ) {
        if base != FW_CFG_DMA_PORT {
            // A 16-bit write selects; 8-bit data writes are ignored (QEMU
            // 2.4+), as is every other size.
            if size == 2 && offset == 0 {
                self.select(value as u16);
            }
            return;
        }
        match (offset, size) {
            (0, 4) => self.dma_addr = u64::from(value.swap_bytes()) << 32,
            (4, 4) => {
                let desc = self.dma_addr | u64::from(value.swap_bytes());
                self.dma_addr = 0;
                self.dma_transfer(desc, mem);
            }
            _ => {}
        }
    }

    fn reset(&mut self) {
        self.select(key::SIGNATURE);
        self.dma_addr = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Device;
    use crate::IoBus;

    fn device() -> FwCfg {
        let mut d = FwCfg::new();
        d.set_u64(key::RAM_SIZE, 128 << 20).unwrap();
        d.set_u16(key::NB_CPUS, 1).unwrap();
        d.add_file("etc/zeta", vec![9; 5]).unwrap();
        d.add_file("bootorder", Vec::new()).unwrap();
        d.add_file("etc/alpha", b"hello".to_vec()).unwrap();
        d
    }

    fn bus(d: FwCfg) -> IoBus {
        let mut bus = IoBus::new();
        let id = bus.register(FW_CFG_PORT, FW_CFG_PORTS, d).unwrap();
        bus.map_ports(id, FW_CFG_DMA_PORT, FW_CFG_DMA_PORTS)
            .unwrap();
        bus
    }

    fn read_item(bus: &mut IoBus, k: u16, n: usize) -> Vec<u8> {
        bus.pio_write(FW_CFG_PORT, 2, u32::from(k));
        (0..n)
            .map(|_| bus.pio_read(FW_CFG_PORT + 1, 1) as u8)
            .collect()
    }

    /// Writes a descriptor at `at` and starts it.
    fn dma(bus: &mut IoBus, mem: &mut Vec<u8>, at: u64, ctl: u32, len: u32, addr: u64) -> u32 {
        let desc = usize::try_from(at)
            .ok()
            .and_then(|a| Some(a..a.checked_add(16)?));
        if let Some(d) = desc.and_then(|r| mem.get_mut(r)) {
            d[..4].copy_from_slice(&ctl.to_be_bytes());
            d[4..8].copy_from_slice(&len.to_be_bytes());
            d[8..].copy_from_slice(&addr.to_be_bytes());
        }
        bus.pio_write_dma(FW_CFG_DMA_PORT, 4, ((at >> 32) as u32).swap_bytes(), mem);
        bus.pio_write_dma(FW_CFG_DMA_PORT + 4, 4, (at as u32).swap_bytes(), mem);
        let ctl = usize::try_from(at)
            .ok()
            .and_then(|a| Some(a..a.checked_add(4)?));
        ctl.and_then(|r| mem.get(r))
            .map_or(u32::MAX, |c| u32::from_be_bytes(c.try_into().unwrap()))
    }

    #[test]
    fn traditional_interface() {
        let mut bus = bus(device());
        // Power-on selection is the signature; 8-bit reads at either port.
        assert_eq!(bus.pio_read(FW_CFG_PORT, 1), u32::from(b'Q'));
        assert_eq!(bus.pio_read(FW_CFG_PORT + 1, 1), u32::from(b'E'));
        assert_eq!(read_item(&mut bus, key::SIGNATURE, 6), b"QEMU\0\0");
        assert_eq!(read_item(&mut bus, key::ID, 4), [3, 0, 0, 0]);
        assert_eq!(
            read_item(&mut bus, key::RAM_SIZE, 8),
            (128u64 << 20).to_le_bytes()
        );
        assert_eq!(read_item(&mut bus, key::NB_CPUS, 2), [1, 0]);
        // Bit 14 is ignored; out-of-range, free and arch items read 0.
        assert_eq!(read_item(&mut bus, 0x4000, 4), b"QEMU");
        for k in [0x3FFF, MAX_ENTRY, 0x7FFF, 0xFFFF, 0x8010, 0x20 + 3, 0x3F] {
            assert_eq!(read_item(&mut bus, k, 3), [0, 0, 0], "{k:#x}");
        }
        // Wide reads of the data port read 0 and consume nothing.
        bus.pio_write(FW_CFG_PORT, 2, 0);
        assert_eq!(bus.pio_read(FW_CFG_PORT, 2), 0);
        // 8-bit writes change nothing.
        bus.pio_write(FW_CFG_PORT + 1, 1, 0x55);
        bus.pio_write(FW_CFG_PORT, 1, 0x55);
        assert_eq!(bus.pio_read(FW_CFG_PORT, 1), u32::from(b'Q'));
        // Unclaimed neighbours.
        assert_eq!(bus.pio_read(FW_CFG_PORT + 2, 1), 0xFF);
    }

    #[test]
    fn file_directory_is_sorted_and_numbered() {
        let mut bus = bus(device());
        let dir = read_item(&mut bus, key::FILE_DIR, 4 + 3 * 64);
        assert_eq!(&dir[..4], &3u32.to_be_bytes());
        let entry = |i: usize| {
            let e = &dir[4 + 64 * i..4 + 64 * (i + 1)];
            let size = u32::from_be_bytes(e[..4].try_into().unwrap());
            let sel = u16::from_be_bytes([e[4], e[5]]);
            let name: Vec<u8> = e[8..].iter().copied().take_while(|&b| b != 0).collect();
            (size, sel, String::from_utf8(name).unwrap())
        };
        assert_eq!(entry(0), (0, 0x20, "bootorder".into()));
        assert_eq!(entry(1), (5, 0x21, "etc/alpha".into()));
        assert_eq!(entry(2), (5, 0x22, "etc/zeta".into()));
        assert_eq!(read_item(&mut bus, 0x21, 6), b"hello\0");
        let mut d = device();
        assert_eq!(d.file_key("etc/zeta"), Some(0x22));
        assert!(matches!(
            d.add_file("etc/alpha", vec![]),
            Err(FwCfgError::Duplicate(_))
        ));
        assert!(d.add_file(&"x".repeat(56), vec![]).is_err());
        assert!(d.add_file("", vec![]).is_err());
        assert!(d.set_item(key::SIGNATURE, vec![]).is_err());
        assert!(d.set_item(key::FILE_DIR, vec![]).is_err());
        assert!(d.set_item(0x20, vec![]).is_err());
        assert!(d.set_item(0x4005, vec![]).is_err());
        for i in 3..FILE_SLOTS {
            d.add_file(&format!("f{i:02}"), vec![]).unwrap();
        }
        assert!(matches!(
            d.add_file("one-more", vec![]),
            Err(FwCfgError::NoSlot(_))
        ));
    }

    #[test]
    fn dma_signature() {
        let mut bus = bus(device());
        let hi = bus.pio_read(FW_CFG_DMA_PORT, 4).swap_bytes();
        let lo = bus.pio_read(FW_CFG_DMA_PORT + 4, 4).swap_bytes();
        assert_eq!(u64::from(hi) << 32 | u64::from(lo), DMA_SIGNATURE);
        let bytes: Vec<u8> = (0..8)
            .map(|i| bus.pio_read(FW_CFG_DMA_PORT + i, 1) as u8)
            .collect();
        assert_eq!(bytes, b"QEMU CFG");
        assert_eq!(
            bus.pio_read(FW_CFG_DMA_PORT + 2, 2),
            u32::from_le_bytes([b'M', b'U', 0, 0])
        );
        assert_eq!(bus.pio_read(FW_CFG_DMA_PORT + 2, 4), 0, "unaligned");
    }

    #[test]
    fn dma_reads_skips_and_errors() {
        let mut bus = bus(device());
        let mut mem = vec![0u8; 0x1000];
        // Select + read the signature and 4 bytes past its end (zeros).
        mem[0x104..0x108].fill(0xEE);
        let ctl = u32::from(key::SIGNATURE) << 16 | control::SELECT | control::READ;
        assert_eq!(dma(&mut bus, &mut mem, 0x40, ctl, 8, 0x100), 0);
        assert_eq!(&mem[0x100..0x108], b"QEMU\0\0\0\0");
        // Skip 2 bytes of "hello", read 3 through DMA, then traditionally.
        let ctl = 0x21 << 16 | control::SELECT | control::SKIP;
        assert_eq!(dma(&mut bus, &mut mem, 0x40, ctl, 2, 0), 0);
        assert_eq!(dma(&mut bus, &mut mem, 0x40, control::READ, 2, 0x200), 0);
        assert_eq!(&mem[0x200..0x202], b"ll");
        assert_eq!(bus.pio_read(FW_CFG_PORT, 1), u32::from(b'o'));
        // No operation: only the select happens.
        assert_eq!(
            dma(
                &mut bus,
                &mut mem,
                0x40,
                0x22 << 16 | control::SELECT,
                5,
                0x300
            ),
            0
        );
        assert_eq!(mem[0x300], 0);
        assert_eq!(bus.pio_read(FW_CFG_PORT, 1), 9);
        // Writes are refused.
        let ctl = 0x21 << 16 | control::SELECT | control::WRITE;
        assert_eq!(dma(&mut bus, &mut mem, 0x40, ctl, 1, 0x300), control::ERROR);
        // A destination past the end of memory: ERROR, nothing written.
        let ctl = 0x21 << 16 | control::SELECT | control::READ;
        assert_eq!(dma(&mut bus, &mut mem, 0x40, ctl, 5, 0xFFE), control::ERROR);
        assert_eq!(&mem[0xFFE..], &[0, 0]);
        // Huge lengths and wrapping addresses.
        assert_eq!(
            dma(&mut bus, &mut mem, 0x40, ctl, u32::MAX, 0x400),
            control::ERROR
        );
        assert_eq!(
            &mem[0x400..0x405],
            b"hello",
            "the part inside the item arrived"
        );
        assert_eq!(
            dma(&mut bus, &mut mem, 0x40, ctl, 16, u64::MAX - 3),
            control::ERROR
        );
        // A descriptor outside memory: nothing to report it in.
        assert_eq!(dma(&mut bus, &mut mem, 0xFFF8, ctl, 16, 0x500), u32::MAX);
        assert_eq!(
            dma(&mut bus, &mut mem, u64::MAX - 7, ctl, 16, 0x500),
            u32::MAX
        );
        // A descriptor straddling the end cannot be read: ERROR is stored
        // in its control word, which is inside memory.
        assert_eq!(
            dma(&mut bus, &mut mem, 0xFF8, ctl, 16, 0x500),
            control::ERROR
        );
        assert!(mem[0x500..0x510].iter().all(|&b| b == 0));
    }

    #[test]
    fn without_memory_dma_does_nothing() {
        let mut bus = bus(device());
        bus.pio_write(FW_CFG_DMA_PORT, 4, 0);
        bus.pio_write(FW_CFG_DMA_PORT + 4, 4, 0x1000u32.swap_bytes());
        assert_eq!(bus.pio_read(FW_CFG_PORT, 1), u32::from(b'Q'));
    }

    #[test]
    fn reset_selects_the_signature() {
        let mut d = device();
        d.select(0x21);
        d.read_data();
        d.reset();
        assert_eq!(d.read_data(), b'Q');
    }
}
