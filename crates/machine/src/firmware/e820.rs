//! The e820 memory map's types, shared by the firmware tables (which
//! reserve their regions), the Linux loader (which hands the map to the
//! kernel) and, through fw_cfg, the BIOS.

use std::ops::Range;

/// An e820 memory type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum E820Type {
    /// Usable RAM.
    Ram = 1,
    /// Reserved (BIOS, memory-mapped devices).
    Reserved = 2,
    /// ACPI tables, reclaimable once read.
    Acpi = 3,
    /// ACPI non-volatile storage (the FACS).
    Nvs = 4,
}

/// One e820 map entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct E820Entry {
    /// First byte.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// Memory type.
    pub kind: E820Type,
}

impl E820Entry {
    /// An entry covering `range`.
    pub fn new(range: Range<u64>, kind: E820Type) -> E820Entry {
        E820Entry {
            addr: range.start,
            size: range.end.saturating_sub(range.start),
            kind,
        }
    }

    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.addr + self.size
    }
}
