//! The firmware tables the machine describes itself with: ACPI, the MP
//! table, SMBIOS and the e820 map.
//!
//! One place builds them, so that every way of starting a guest describes
//! the same board: the direct Linux and Multiboot boots write them into RAM
//! where a BIOS would, and the BIOS will receive the same tables through
//! fw_cfg.

pub mod acpi;
pub mod e820;
pub mod mptable;
pub mod smbios;

use acpi::{build_acpi, AcpiConfig, AcpiTables};
use mptable::{build_mptable, MpConfig};
use smbios::{build_smbios, SmbiosConfig};
use thiserror::Error;

/// Why the tables could not be written.
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
}

/// What the board looks like to its firmware tables.
#[derive(Clone, Copy, Debug)]
pub struct BoardDescription {
    /// I/O base of the ACPI PM registers.
    pub pm_io_base: u16,
}

/// Writes the ACPI, MP and SMBIOS tables into `ram` (the whole of guest
/// RAM) and returns where the ACPI tables went; their regions are to be
/// reserved in the e820 map ([`AcpiTables::e820_entries`]).
pub fn write_tables(ram: &mut [u8], board: &BoardDescription) -> Result<AcpiTables, FirmwareError> {
    let size = u32::try_from(ram.len()).map_err(|_| FirmwareError::RamTooLarge)?;
    let mut acpi = AcpiConfig::for_ram(size);
    acpi.pm_io_base = board.pm_io_base;
    // Without a _CRS (bus range, I/O and memory windows) a PCI0 device makes
    // Linux complain; the kernel probes PCI through mechanism #1 instead.
    acpi.pci_host_bridge = false;
    let tables = build_acpi(ram, &acpi)?;
    let mp = MpConfig {
        cpu_signature: morph86_cpu::interp::CPUID_SIGNATURE,
        cpu_features: morph86_cpu::interp::CPUID_FEATURES_EDX | (1 << 9),
        ..MpConfig::default()
    };
    build_mptable(ram, &mp)?;
    build_smbios(ram, &SmbiosConfig::default())?;
    Ok(tables)
}
