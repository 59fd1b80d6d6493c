//! What morph86's PC puts in its fw_cfg device
//! (`morph86_devices::fw_cfg`, the interface QEMU's x86 machines have at
//! ports 0x510/0x511 and 0x514..0x51B, with DMA), built from the same
//! [`FirmwareTables`] the direct boots write into RAM.
//!
//! # Items (little-endian unless said otherwise)
//!
//! | selector | item | contents |
//! |---|---|---|
//! | 0x0000 | `FW_CFG_SIGNATURE` | "QEMU" |
//! | 0x0001 | `FW_CFG_ID` | le32 3: traditional interface (bit 0) and DMA (bit 1) |
//! | 0x0002 | `FW_CFG_UUID` | 16 zero bytes (no UUID, as SMBIOS type 1 says) |
//! | 0x0003 | `FW_CFG_RAM_SIZE` | le64 RAM in bytes (`--memory` MiB) |
//! | 0x0004 | `FW_CFG_NOGRAPHIC` | le16 0 (as QEMU without `-nographic`) |
//! | 0x0005 | `FW_CFG_NB_CPUS` | le16 1 |
//! | 0x000e | `FW_CFG_BOOT_MENU` | le16 0 |
//! | 0x000f | `FW_CFG_MAX_CPUS` | le16 1 (QEMU's x86 meaning: one past the highest APIC ID) |
//! | 0x0019 | `FW_CFG_FILE_DIR` | be32 count, then `{be32 size, be16 select, be16 reserved, char name[56]}` per file |
//! | 0x8002 | `FW_CFG_IRQ0_OVERRIDE` | le32 1: ISA IRQ 0 arrives at I/O APIC pin 2 |
//!
//! Files, numbered from 0x0020 in name order:
//!
//! | name | contents |
//! |---|---|
//! | `bootorder` | empty (no boot devices yet) |
//! | `etc/e820` | the e820 map, QEMU's `struct e820_entry` each: le64 address, le64 length, le32 type (1 RAM, 2 reserved, 3 ACPI, 4 NVS); the same map the Linux boot hands the kernel and the Multiboot memory map lists |
//! | `etc/morph86/acpi` | placed records (below): the RSDP at 0xF0000, then the whole ACPI table region, the top 64 KiB of RAM (FACS in its first page, then DSDT, FADT, MADT, RSDT) |
//! | `etc/morph86/mptable` | placed records: the MP configuration table at 0xF0110, then the floating pointer at 0xF0100 |
//! | `etc/morph86/smbios` | placed records: the SMBIOS 2.4 entry point at 0xF0800, then the structure table at 0xF0820 |
//! | `etc/smbios/smbios-anchor` | the same 31-byte SMBIOS 2.4 entry point (QEMU's format; its table address already says 0xF0820) |
//! | `etc/smbios/smbios-tables` | the same structure table (QEMU's format) |
//!
//! A *placed record* is `le32 address, le32 length, length bytes`; a file
//! holds records back to back. The tables' internal pointers are absolute,
//! so a BIOS copies each record's bytes to its address (the e820 map
//! already reserves every one of them) and is done. The RSDP is found by
//! the usual scan of 0xE0000..0x100000.
//!
//! # Not provided
//!
//! QEMU's linker/loader ACPI interface (`etc/acpi/tables`, `etc/acpi/rsdp`,
//! `etc/table-loader`: relocatable tables patched by the BIOS); the MP table
//! (QEMU has SeaBIOS build it; here it comes ready in
//! `etc/morph86/mptable`); the `-kernel` items (`FW_CFG_KERNEL_*`,
//! `FW_CFG_INITRD_*`, `FW_CFG_CMDLINE_*`, `FW_CFG_SETUP_*`: morph86 loads
//! kernels itself); `FW_CFG_NUMA`, `FW_CFG_HPET` and the legacy
//! `FW_CFG_ACPI_TABLES`, `FW_CFG_SMBIOS_ENTRIES` and `FW_CFG_E820_TABLE`;
//! `etc/boot-fail-wait`, `etc/smbios/smbios-anchor` in SMBIOS 3.0 form, and
//! writable items. Such selectors read as zeros.

use super::{FirmwareError, FirmwareTables, Placed};
use morph86_devices::fw_cfg::{key, FwCfg};

/// The files morph86 adds, by name.
pub mod files {
    /// Boot device order (empty).
    pub const BOOTORDER: &str = "bootorder";
    /// The e820 map.
    pub const E820: &str = "etc/e820";
    /// The ACPI tables as placed records.
    pub const ACPI: &str = "etc/morph86/acpi";
    /// The MP table as placed records.
    pub const MPTABLE: &str = "etc/morph86/mptable";
    /// The SMBIOS tables as placed records.
    pub const SMBIOS: &str = "etc/morph86/smbios";
    /// The SMBIOS entry point, QEMU's format.
    pub const SMBIOS_ANCHOR: &str = "etc/smbios/smbios-anchor";
    /// The SMBIOS structure table, QEMU's format.
    pub const SMBIOS_TABLES: &str = "etc/smbios/smbios-tables";
}

/// Placed records (see the module docs) for `images`.
pub fn placed_records<'a>(images: impl IntoIterator<Item = &'a Placed>) -> Vec<u8> {
    let mut v = Vec::new();
    for p in images {
        v.extend(p.addr.to_le_bytes());
        v.extend((p.bytes.len() as u32).to_le_bytes());
        v.extend_from_slice(&p.bytes);
    }
    v
}

/// `etc/e820`: QEMU's `struct e820_entry` per entry.
pub fn e820_file(tables: &FirmwareTables) -> Vec<u8> {
    let mut v = Vec::with_capacity(20 * tables.e820.len());
    for e in &tables.e820 {
        v.extend(e.addr.to_le_bytes());
        v.extend(e.size.to_le_bytes());
        v.extend((e.kind as u32).to_le_bytes());
    }
    v
}

/// A fw_cfg device holding the items of the module docs for `tables`.
pub fn fw_cfg_device(tables: &FirmwareTables) -> Result<FwCfg, FirmwareError> {
    let mut d = FwCfg::new();
    d.set_item(key::UUID, vec![0; 16])?;
    d.set_u64(key::RAM_SIZE, tables.ram_size)?;
    d.set_u16(key::NOGRAPHIC, 0)?;
    d.set_u16(key::NB_CPUS, 1)?;
    d.set_u16(key::BOOT_MENU, 0)?;
    d.set_u16(key::MAX_CPUS, 1)?;
    d.set_u32(key::IRQ0_OVERRIDE, 1)?;
    let [anchor, structures] = &tables.smbios_images;
    for (name, data) in [
        (files::BOOTORDER, Vec::new()),
        (files::E820, e820_file(tables)),
        (files::ACPI, placed_records(&tables.acpi_images)),
        (files::MPTABLE, placed_records(&tables.mp_images)),
        (files::SMBIOS, placed_records(&tables.smbios_images)),
        (files::SMBIOS_ANCHOR, anchor.bytes.clone()),
        (files::SMBIOS_TABLES, structures.bytes.clone()),
    ] {
        d.add_file(name, data)?;
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firmware::{build_tables, BoardDescription};

    fn read(d: &mut FwCfg, selector: u16, n: usize) -> Vec<u8> {
        d.select(selector);
        (0..n).map(|_| d.read_data()).collect()
    }

    /// Parses placed records back and writes them into RAM: the result is
    /// what the direct boots write.
    #[test]
    fn records_rebuild_the_tables_in_ram() {
        let size = 32usize << 20;
        let board = BoardDescription { pm_io_base: 0xB000 };
        let t = build_tables(size as u64, &board).unwrap();
        let mut d = fw_cfg_device(&t).unwrap();
        let mut ram = vec![0u8; size];
        for name in [files::ACPI, files::MPTABLE, files::SMBIOS] {
            let k = d.file_key(name).unwrap();
            let f = d.item(k).to_vec();
            let mut at = 0;
            while at < f.len() {
                let addr = u32::from_le_bytes(f[at..at + 4].try_into().unwrap()) as usize;
                let len = u32::from_le_bytes(f[at + 4..at + 8].try_into().unwrap()) as usize;
                ram[addr..addr + len].copy_from_slice(&f[at + 8..at + 8 + len]);
                at += 8 + len;
            }
            assert_eq!(at, f.len(), "{name}");
        }
        let mut direct = vec![0u8; size];
        crate::firmware::write_tables(&mut direct, &board).unwrap();
        assert!(ram == direct);
        // etc/e820, entry by entry.
        let e = d.item(d.file_key(files::E820).unwrap()).to_vec();
        assert_eq!(e.len(), 20 * t.e820.len());
        for (i, want) in t.e820.iter().enumerate() {
            let r = &e[20 * i..20 * i + 20];
            assert_eq!(u64::from_le_bytes(r[..8].try_into().unwrap()), want.addr);
            assert_eq!(u64::from_le_bytes(r[8..16].try_into().unwrap()), want.size);
            assert_eq!(
                u32::from_le_bytes(r[16..].try_into().unwrap()),
                want.kind as u32
            );
        }
        assert_eq!(read(&mut d, key::RAM_SIZE, 8), (size as u64).to_le_bytes());
        assert_eq!(read(&mut d, key::NB_CPUS, 2), [1, 0]);
        assert_eq!(read(&mut d, key::MAX_CPUS, 2), [1, 0]);
        assert_eq!(read(&mut d, key::IRQ0_OVERRIDE, 4), [1, 0, 0, 0]);
        let anchor = d.item(d.file_key(files::SMBIOS_ANCHOR).unwrap());
        assert_eq!(&anchor[..4], b"_SM_");
        assert_eq!(anchor.len(), 31);
        let tables_len = d.item(d.file_key(files::SMBIOS_TABLES).unwrap()).len();
        assert_eq!(
            usize::from(u16::from_le_bytes([anchor[0x16], anchor[0x17]])),
            tables_len
        );
        assert_eq!(d.item(d.file_key(files::BOOTORDER).unwrap()).len(), 0);
    }
}
