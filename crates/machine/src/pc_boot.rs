//! Booting Linux on the PC: firmware tables (ACPI, MP, SMBIOS) then the kernel.
//!
//! Without a BIOS yet, the machine plays the firmware's part: it writes the
//! ACPI tables, the MP table and the SMBIOS tables where a BIOS would, and
//! hands the kernel an e820 map that reserves them.

use crate::acpi::{build_acpi, AcpiConfig};
use crate::linux::{self, LinuxLayout};
use crate::machine::MachineError;
use crate::mptable::{build_mptable, MpConfig};
use crate::smbios::{build_smbios, SmbiosConfig};
use morph86_cpu::{CpuState, FlatRam};

/// Writes the firmware tables and loads `kernel` (with `initrd` and
/// `cmdline`), then sets `state` to the 32-bit boot protocol entry.
pub fn load_linux(
    ram: &mut FlatRam,
    state: &mut CpuState,
    kernel: &[u8],
    initrd: Option<&[u8]>,
    cmdline: &str,
    pm_base: u16,
) -> Result<(), MachineError> {
    let bytes = ram.bytes_mut();
    let size =
        u32::try_from(bytes.len()).map_err(|_| MachineError::Tables("RAM above 4 GiB".into()))?;
    let mut acpi = AcpiConfig::for_ram(size);
    acpi.pm_io_base = pm_base;
    // Without a _CRS (bus range, I/O and memory windows) a PCI0 device makes
    // Linux complain; the kernel probes PCI through mechanism #1 instead.
    acpi.pci_host_bridge = false;
    let tables = build_acpi(bytes, &acpi).map_err(|e| MachineError::Tables(e.to_string()))?;
    let mp = MpConfig {
        cpu_signature: morph86_cpu::interp::CPUID_SIGNATURE,
        cpu_features: morph86_cpu::interp::CPUID_FEATURES_EDX | (1 << 9),
        ..MpConfig::default()
    };
    build_mptable(bytes, &mp).map_err(|e| MachineError::Tables(e.to_string()))?;
    build_smbios(bytes, &SmbiosConfig::default())
        .map_err(|e| MachineError::Tables(e.to_string()))?;
    let layout = LinuxLayout::with_acpi(&tables);
    let entry = linux::load_linux(bytes, kernel, initrd, cmdline, &layout)?;
    linux::apply_entry(state, &entry);
    Ok(())
}
