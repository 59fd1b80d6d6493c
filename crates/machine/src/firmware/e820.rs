//! The e820 memory map: one map per board, shared by the firmware tables
//! (which reserve their regions), the Linux loader (which hands the map to
//! the kernel), the Multiboot loader (its memory map) and, through fw_cfg's
//! `etc/e820`, the BIOS.

use std::ops::Range;
use thiserror::Error;

/// Why a map could not be built.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{0}")]
pub struct E820Error(pub String);

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

/// The board's e820 map for `ram_size` bytes of RAM with `firmware`
/// regions (ACPI tables...) carved out of its RAM, sorted by address:
///
/// | range | type |
/// |---|---|
/// | 0x0..0x9FC00 | RAM |
/// | 0x9FC00..0xA0000 (the EBDA) | reserved |
/// | 0xF0000..0x100000 (the BIOS area: MP table, SMBIOS, RSDP) | reserved |
/// | 0x100000..end of RAM, less the `firmware` regions | RAM |
/// | the `firmware` regions | their own types |
/// | 0xFEC00000..0xFEC01000 (I/O APIC) | reserved |
/// | 0xFEE00000..0xFEE01000 (local APIC) | reserved |
/// | 0xFFFC0000..0x100000000 (BIOS ROM) | reserved |
///
/// Each firmware region must lie inside one RAM range (and not be RAM).
pub fn e820_map(ram_size: u64, firmware: &[E820Entry]) -> Result<Vec<E820Entry>, E820Error> {
    use E820Type::*;
    if ram_size < 0x20_0000 {
        return Err(E820Error(format!(
            "{} KiB of RAM is too little (at least 2 MiB)",
            ram_size / 1024
        )));
    }
    if ram_size > 0xFEC0_0000 {
        return Err(E820Error(format!(
            "{ram_size:#x} bytes of RAM would overlap the IOAPIC at 0xfec00000"
        )));
    }
    let mut map = vec![
        E820Entry::new(0..0x9_FC00, Ram),
        E820Entry::new(0x9_FC00..0xA_0000, Reserved),
        E820Entry::new(0xF_0000..0x10_0000, Reserved),
        E820Entry::new(0x10_0000..ram_size, Ram),
        E820Entry::new(0xFEC0_0000..0xFEC0_1000, Reserved),
        E820Entry::new(0xFEE0_0000..0xFEE0_1000, Reserved),
        E820Entry::new(0xFFFC_0000..0x1_0000_0000, Reserved),
    ];
    for (i, f) in firmware.iter().enumerate() {
        if f.size == 0 {
            continue;
        }
        if f.kind == Ram {
            return Err(E820Error(format!(
                "firmware region {i} ({:#x}..{:#x}) has type RAM",
                f.addr,
                f.end()
            )));
        }
        let host = map
            .iter()
            .position(|e| e.kind == Ram && e.addr <= f.addr && f.end() <= e.end());
        let Some(h) = host else {
            return Err(E820Error(format!(
                "firmware region {i} ({:#x}..{:#x}) is not inside one RAM region (or overlaps another firmware region)",
                f.addr,
                f.end()
            )));
        };
        let e = map.remove(h);
        map.push(*f);
        if e.addr < f.addr {
            map.push(E820Entry::new(e.addr..f.addr, Ram));
        }
        if f.end() < e.end() {
            map.push(E820Entry::new(f.end()..e.end(), Ram));
        }
    }
    map.sort_by_key(|e| e.addr);
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firmware_regions_are_carved_out_of_ram() {
        let acpi = [
            E820Entry::new(0x7FF_0000..0x7FF_1000, E820Type::Nvs),
            E820Entry::new(0x7FF_1000..0x800_0000, E820Type::Acpi),
        ];
        let map = e820_map(128 << 20, &acpi).unwrap();
        let ram: Vec<_> = map.iter().filter(|e| e.kind == E820Type::Ram).collect();
        assert_eq!(ram.len(), 2);
        assert_eq!((ram[0].addr, ram[0].end()), (0, 0x9_FC00));
        assert_eq!((ram[1].addr, ram[1].end()), (0x10_0000, 0x7FF_0000));
        assert!(map.windows(2).all(|w| w[0].end() <= w[1].addr));
        assert!(map.contains(&acpi[0]) && map.contains(&acpi[1]));
        assert!(e820_map(1 << 20, &[]).is_err());
        assert!(e820_map(0xFEC0_1000, &[]).is_err());
        let overlapping = [E820Entry::new(0x9_0000..0xA_0000, E820Type::Acpi)];
        assert!(e820_map(128 << 20, &overlapping).is_err());
        let ram_typed = [E820Entry::new(0x20_0000..0x30_0000, E820Type::Ram)];
        assert!(e820_map(128 << 20, &ram_typed).is_err());
    }
}
