//! SMBIOS 2.4 tables (DMI), as firmware leaves them in the BIOS segment.
//!
//! [`build_smbios`] writes a 31-byte `_SM_` entry point (found by the OS's
//! scan of 0xF0000..0x100000 on 16-byte boundaries) and a structure table
//! with BIOS information (type 0), system information (type 1) and the end
//! marker (type 127). Each structure is a formatted area followed by its
//! strings, each NUL-terminated, and one more NUL (DMTF DSP0134 §6.1).

use super::acpi::checksum;
use super::Placed;
use thiserror::Error;

/// Where the tables go and what they say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmbiosConfig {
    /// Address of the entry point (16-byte aligned, in 0xF0000..0x100000).
    pub entry_addr: u32,
    /// Address of the structure table.
    pub table_addr: u32,
    /// BIOS vendor, system manufacturer.
    pub vendor: &'static str,
    /// System product name.
    pub product: &'static str,
    /// BIOS and system version.
    pub version: &'static str,
    /// BIOS release date, mm/dd/yyyy.
    pub release_date: &'static str,
}

impl Default for SmbiosConfig {
    fn default() -> Self {
        SmbiosConfig {
            entry_addr: 0xF_0800,
            table_addr: 0xF_0820,
            vendor: "morph86",
            product: "morph86 PC",
            version: env!("CARGO_PKG_VERSION"),
            release_date: "11/22/2026",
        }
    }
}

/// Why the tables could not be written.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SmbiosError {
    /// The entry point is not where an OS looks for it.
    #[error("SMBIOS entry point at {0:#x} is not 16-byte aligned in 0xF0000..0x100000")]
    EntryPlacement(u32),
    /// The tables do not fit in RAM, or overlap each other.
    #[error("SMBIOS tables at {0:#x} do not fit")]
    NoRoom(u32),
}

/// Length of the SMBIOS 2.x entry point.
const ENTRY_LEN: usize = 0x1F;

/// A structure: type, handle, formatted area after the 4-byte header, and
/// its strings (numbered from 1 in the formatted area).
fn structure(kind: u8, handle: u16, formatted: &[u8], strings: &[&str]) -> Vec<u8> {
    let mut s = vec![kind, (4 + formatted.len()) as u8];
    s.extend(handle.to_le_bytes());
    s.extend_from_slice(formatted);
    for t in strings {
        s.extend(t.bytes().filter(|&b| b != 0));
        s.push(0);
    }
    if strings.is_empty() {
        s.push(0);
    }
    s.push(0);
    s
}

/// Type 0, BIOS information (the SMBIOS 2.4 layout).
fn bios_information(cfg: &SmbiosConfig) -> Vec<u8> {
    let mut f = vec![
        1, // vendor: string 1
        2, // version: string 2
    ];
    f.extend(0xF000u16.to_le_bytes()); // starting address segment
    f.push(3); // release date: string 3
    f.push(0); // ROM size: 64 KiB
               // Characteristics: bit 3, "BIOS characteristics are not supported".
    f.extend((1u64 << 3).to_le_bytes());
    f.push(0x01); // extension byte 1: ACPI is supported
    f.push(0x00); // extension byte 2
    f.extend([0, 0]); // system BIOS major/minor release
    f.extend([0xFF, 0xFF]); // no embedded controller firmware
    structure(0, 0, &f, &[cfg.vendor, cfg.version, cfg.release_date])
}

/// Type 1, system information.
fn system_information(cfg: &SmbiosConfig) -> Vec<u8> {
    let mut f = vec![
        1, // manufacturer: string 1
        2, // product name: string 2
        3, // version: string 3
        0, // no serial number
    ];
    f.extend([0u8; 16]); // UUID: not present (all zeros)
    f.push(0x06); // wake-up type: power switch
    f.extend([0, 0]); // no SKU number, no family
    structure(1, 1, &f, &[cfg.vendor, cfg.product, cfg.version])
}

/// Writes the entry point and the structure table into `ram`. On error RAM
/// is left untouched.
pub fn build_smbios(ram: &mut [u8], cfg: &SmbiosConfig) -> Result<(), SmbiosError> {
    for p in smbios_images(cfg, ram.len() as u64)? {
        p.copy_into(ram);
    }
    Ok(())
}

/// The entry point and the structure table (in that order) as the bytes to
/// place in `ram_len` bytes of RAM, without writing them.
pub fn smbios_images(cfg: &SmbiosConfig, ram_len: u64) -> Result<[Placed; 2], SmbiosError> {
    let e = cfg.entry_addr;
    if !e.is_multiple_of(16) || !(0xF_0000..0x10_0000 - ENTRY_LEN as u32).contains(&e) {
        return Err(SmbiosError::EntryPlacement(e));
    }
    let structs = [
        bios_information(cfg),
        system_information(cfg),
        structure(127, 0x7F, &[], &[]),
    ];
    let table: Vec<u8> = structs.concat();
    let t = u64::from(cfg.table_addr);
    let (e, len) = (u64::from(e), table.len() as u64);
    let overlaps = t < e + ENTRY_LEN as u64 && e < t + len;
    if overlaps || t + len > ram_len || e + ENTRY_LEN as u64 > ram_len {
        return Err(SmbiosError::NoRoom(cfg.table_addr));
    }
    let max = structs.iter().map(Vec::len).max().unwrap_or(0) as u16;
    let mut ep = [0u8; ENTRY_LEN];
    ep[0..4].copy_from_slice(b"_SM_");
    ep[5] = ENTRY_LEN as u8;
    ep[6] = 2; // version 2.4
    ep[7] = 4;
    ep[8..10].copy_from_slice(&max.to_le_bytes());
    ep[0x10..0x15].copy_from_slice(b"_DMI_");
    ep[0x16..0x18].copy_from_slice(&(len as u16).to_le_bytes());
    ep[0x18..0x1C].copy_from_slice(&cfg.table_addr.to_le_bytes());
    ep[0x1C..0x1E].copy_from_slice(&(structs.len() as u16).to_le_bytes());
    ep[0x1E] = 0x24;
    // Each checksum byte makes its range sum to zero.
    ep[0x15] = 0u8.wrapping_sub(checksum(&ep[0x10..]));
    ep[4] = 0u8.wrapping_sub(checksum(&ep));
    Ok([
        Placed {
            addr: cfg.entry_addr,
            bytes: ep.to_vec(),
        },
        Placed {
            addr: cfg.table_addr,
            bytes: table,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_point_and_structures_parse() {
        let mut ram = vec![0u8; 1 << 20];
        let cfg = SmbiosConfig::default();
        build_smbios(&mut ram, &cfg).unwrap();
        let e = cfg.entry_addr as usize;
        let ep = &ram[e..e + ENTRY_LEN];
        assert_eq!(&ep[..4], b"_SM_");
        assert_eq!(checksum(ep), 0, "entry point checksum");
        assert_eq!(&ep[0x10..0x15], b"_DMI_");
        assert_eq!(checksum(&ep[0x10..]), 0, "intermediate checksum");
        let len = u16::from_le_bytes([ep[0x16], ep[0x17]]) as usize;
        let at = u32::from_le_bytes(ep[0x18..0x1C].try_into().unwrap()) as usize;
        let count = u16::from_le_bytes([ep[0x1C], ep[0x1D]]);
        // Walk the structures as an OS does: formatted area, then strings
        // up to a double NUL.
        let mut p = at;
        let mut seen = Vec::new();
        while p < at + len {
            let (kind, flen) = (ram[p], ram[p + 1] as usize);
            let strings_start = p + flen;
            let mut q = strings_start;
            while !(ram[q] == 0 && ram[q + 1] == 0) {
                q += 1;
            }
            let strings: Vec<String> = ram[strings_start..q]
                .split(|&b| b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
            seen.push((kind, flen, strings));
            p = q + 2;
        }
        assert_eq!(p, at + len, "the structures fill the table exactly");
        assert_eq!(seen.len(), usize::from(count));
        assert_eq!(seen[0].0, 0);
        assert_eq!(seen[0].1, 0x18, "SMBIOS 2.4 BIOS information length");
        assert_eq!(seen[0].2[0], "morph86");
        assert_eq!(seen[1].0, 1);
        assert_eq!(seen[1].1, 0x1B, "SMBIOS 2.4 system information length");
        assert_eq!(seen[1].2[1], "morph86 PC");
        assert_eq!(seen[2].0, 127);
    }

    #[test]
    fn bad_placement_is_refused() {
        let mut ram = vec![0u8; 1 << 20];
        for cfg in [
            SmbiosConfig {
                entry_addr: 0xF_0808,
                ..Default::default()
            },
            SmbiosConfig {
                entry_addr: 0xE_0000,
                ..Default::default()
            },
            SmbiosConfig {
                table_addr: 0xF_0810,
                ..Default::default()
            },
            SmbiosConfig {
                table_addr: 0xF_FFF0,
                ..Default::default()
            },
        ] {
            assert!(build_smbios(&mut ram, &cfg).is_err(), "{cfg:?}");
        }
        assert!(ram.iter().all(|&b| b == 0));
    }
}
