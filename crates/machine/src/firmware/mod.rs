//! The firmware tables the machine describes itself with: ACPI, the MP
//! table, SMBIOS and the e820 map.
//!
//! One place builds them, so that every way of starting a guest describes
//! the same board: the direct Linux and Multiboot boots write them into RAM
//! where a BIOS would, and the BIOS will receive the same tables through
//! fw_cfg.

pub mod acpi;
pub mod e820;
pub mod fw_cfg;
pub mod mptable;
pub mod smbios;

use acpi::{acpi_images, AcpiConfig, AcpiTables};
use e820::{e820_map, E820Entry};
use mptable::{mptable_images, MpConfig, MpTable};
use smbios::{smbios_images, SmbiosConfig};
use std::ops::Range;
use thiserror::Error;

/// Why the tables could not be built.
#[derive(Debug, Error)]
pub enum FirmwareError {
    /// RAM is too large for the 32-bit tables.
    #[error("firmware tables: RAM above 4 GiB")]
    RamTooLarge,
    /// The ACPI tables did not fit.
    #[error("firmware tables: {0}")]
    Acpi(#[from] acpi::AcpiError),
    /// The MP table did not fit.
    #[error("firmware tables: {0}")]
    MpTable(#[from] mptable::MpTableError),
    /// The SMBIOS tables did not fit.
    #[error("firmware tables: {0}")]
    Smbios(#[from] smbios::SmbiosError),
    /// The memory map could not be built.
    #[error("memory map: {0}")]
    E820(#[from] e820::E820Error),
    /// The fw_cfg device could not be filled.
    #[error("fw_cfg: {0}")]
    FwCfg(#[from] morph86_devices::fw_cfg::FwCfgError),
}

/// What the board looks like to its firmware tables.
#[derive(Clone, Copy, Debug)]
pub struct BoardDescription {
    /// I/O base of the ACPI PM registers.
    pub pm_io_base: u16,
}

/// Bytes that belong at a physical address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    /// Where the first byte goes.
    pub addr: u32,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl Placed {
    /// The physical range the bytes cover.
    pub fn range(&self) -> Range<u64> {
        u64::from(self.addr)..u64::from(self.addr) + self.bytes.len() as u64
    }

    /// Copies the bytes into `ram` (guest RAM from address 0); false, with
    /// nothing copied, when they do not fit.
    pub fn copy_into(&self, ram: &mut [u8]) -> bool {
        let r = self.range();
        match ram.get_mut(r.start as usize..r.end as usize) {
            Some(dst) => {
                dst.copy_from_slice(&self.bytes);
                true
            }
            None => false,
        }
    }
}

/// The board's firmware tables for one RAM size: what the direct boots
/// write into RAM and what fw_cfg hands a BIOS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirmwareTables {
    /// RAM in bytes.
    pub ram_size: u64,
    /// Where the ACPI tables go.
    pub acpi: AcpiTables,
    /// The RSDP (at 0xF0000), then the ACPI table region (the top 64 KiB of
    /// RAM: FACS, DSDT, FADT, MADT, RSDT).
    pub acpi_images: Vec<Placed>,
    /// Where the MP structures go.
    pub mptable: MpTable,
    /// The MP configuration table (0xF0110), then the floating pointer
    /// (0xF0100).
    pub mp_images: Vec<Placed>,
    /// The SMBIOS 2.4 entry point (0xF0800), then its structure table
    /// (0xF0820).
    pub smbios_images: [Placed; 2],
    /// The e820 map, with the ACPI region carved out of RAM.
    pub e820: Vec<E820Entry>,
}

impl FirmwareTables {
    /// Every placed table, in the order they are written.
    pub fn images(&self) -> impl Iterator<Item = &Placed> {
        self.acpi_images
            .iter()
            .chain(&self.mp_images)
            .chain(&self.smbios_images)
    }
}

/// Builds the ACPI, MP and SMBIOS tables and the e820 map for `ram_size`
/// bytes of RAM, without writing anything.
pub fn build_tables(
    ram_size: u64,
    board: &BoardDescription,
) -> Result<FirmwareTables, FirmwareError> {
    let size = u32::try_from(ram_size).map_err(|_| FirmwareError::RamTooLarge)?;
    let mut acpi_cfg = AcpiConfig::for_ram(size);
    acpi_cfg.pm_io_base = board.pm_io_base;
    // The host bridge is in the DSDT with its windows: with ACPI interrupt
    // routing Linux scans only the root buses the DSDT declares.
    let (acpi_images, acpi) = acpi_images(&acpi_cfg, ram_size)?;
    let mp = MpConfig {
        cpu_signature: morph86_cpu::interp::CPUID_SIGNATURE,
        cpu_features: morph86_cpu::interp::CPUID_FEATURES_EDX | (1 << 9),
        ..MpConfig::default()
    };
    let (mp_images, mptable) = mptable_images(&mp, ram_size)?;
    let smbios_images = smbios_images(&SmbiosConfig::default(), ram_size)?;
    let e820 = e820_map(ram_size, &acpi.e820_entries())?;
    Ok(FirmwareTables {
        ram_size,
        acpi,
        acpi_images,
        mptable,
        mp_images,
        smbios_images,
        e820,
    })
}

/// Writes the ACPI, MP and SMBIOS tables into `ram` (the whole of guest
/// RAM) and returns them, with where the ACPI tables went and the e820 map
/// that reserves their regions. On error RAM is left untouched.
pub fn write_tables(
    ram: &mut [u8],
    board: &BoardDescription,
) -> Result<FirmwareTables, FirmwareError> {
    let tables = build_tables(ram.len() as u64, board)?;
    for p in tables.images() {
        p.copy_into(ram);
    }
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOARD: BoardDescription = BoardDescription { pm_io_base: 0xB000 };

    /// The placed tables are exactly what the in-RAM builders write, and
    /// every one lies where the e820 map keeps it from the OS.
    #[test]
    fn images_match_the_builders_and_are_reserved() {
        let size = 16usize << 20;
        let t = build_tables(size as u64, &BOARD).unwrap();
        let mut a = vec![0u8; size];
        let mut acpi_cfg = AcpiConfig::for_ram(size as u32);
        acpi_cfg.pm_io_base = BOARD.pm_io_base;
        assert_eq!(acpi::build_acpi(&mut a, &acpi_cfg).unwrap(), t.acpi);
        let mp = MpConfig {
            cpu_signature: morph86_cpu::interp::CPUID_SIGNATURE,
            cpu_features: morph86_cpu::interp::CPUID_FEATURES_EDX | (1 << 9),
            ..MpConfig::default()
        };
        assert_eq!(mptable::build_mptable(&mut a, &mp).unwrap(), t.mptable);
        smbios::build_smbios(&mut a, &SmbiosConfig::default()).unwrap();
        let mut b = vec![0u8; size];
        let written = write_tables(&mut b, &BOARD).unwrap();
        assert_eq!(written, t);
        assert!(a == b, "the images are the builders' bytes");
        for p in t.images() {
            // Covered by reserved entries, byte for byte (the map is sorted).
            let r = p.range();
            let mut at = r.start;
            for e in t
                .e820
                .iter()
                .filter(|e| e.addr < r.end && r.start < e.end())
            {
                assert_ne!(e.kind, e820::E820Type::Ram, "{r:x?}");
                assert!(e.addr <= at, "{r:x?}: a gap at {at:#x}");
                at = e.end();
            }
            assert!(at >= r.end, "{r:x?} is not covered");
        }
        let mut small = vec![0u8; 1 << 20];
        assert!(write_tables(&mut small, &BOARD).is_err());
        assert!(small.iter().all(|&x| x == 0));
    }
}
