//! ACPI tables for a single-CPU i440FX/PIIX4-like PC, built in guest RAM.
//!
//! [`build_acpi`] writes an RSDP (revision 0, found by the 0xE0000..0x100000
//! scan when placed there), an RSDT, a FADT (revision 3, ACPI 2.0 layout),
//! a FACS, a MADT and a DSDT. The DSDT is AML written by the small encoder
//! in [`aml`]: `\_S5` (so that `poweroff` writes SLP_TYP | SLP_EN to
//! PM1a_CNT), and `\_SB` with a processor device, the fixed ISA devices
//! (8042 keyboard and mouse, RTC, COM1–4) with their resources for the
//! guest's PNP layer and, optionally, a PCI host bridge (`PNP0A03`).
//!
//! The platform the tables describe:
//!
//! * PM1a_EVT_BLK = `pm_io_base` (4 bytes), PM1a_CNT_BLK = `pm_io_base` + 4
//!   (2 bytes), PM_TMR_BLK = `pm_io_base` + 8 (4 bytes, 24-bit timer); no GPE
//!   blocks; SCI on ISA IRQ `sci_irq`; SMI_CMD = 0, so ACPI is always
//!   enabled (no SMI handshake); S5 is SLP_TYP 0 (as on the PIIX4).
//! * Reset register: I/O port 0xCF9, value 6.
//! * No fixed power or sleep button; WBINVD works; C1 is supported, C2/C3 not.
//! * IAPC_BOOT_ARCH: legacy devices and an 8042.
//! * Local APIC at `lapic_addr` (one processor, APIC ID 0, ACPI UID 0);
//!   IOAPIC `ioapic_id` at `ioapic_addr`, GSI base 0; ISA IRQ 0 → GSI 2
//!   (edge, active high) and the SCI → GSI `sci_irq` (level, active high);
//!   LINT1 is the NMI.
//!
//! The tables go in [`AcpiConfig::base`]..+[`AcpiConfig::size`]: the FACS in
//! the first 4 KiB (ACPI NVS), the other tables after it (ACPI reclaimable).
//! [`AcpiTables::e820_entries`] gives the two e820 entries to reserve.

use super::e820::{E820Entry, E820Type};
use super::Placed;
use std::ops::Range;
use thiserror::Error;

/// OEM ID in every table header.
pub const OEM_ID: [u8; 6] = *b"MORPH8";
/// OEM table ID in every table header.
pub const OEM_TABLE_ID: [u8; 8] = *b"MORPH86 ";
/// Creator ID in every table header.
pub const CREATOR_ID: [u8; 4] = *b"M86 ";
/// Length of a standard table header.
pub const HEADER_LEN: usize = 36;
/// Length of the FADT (ACPI 2.0, revision 3).
pub const FADT_LEN: usize = 244;
/// Length of the FACS.
pub const FACS_LEN: usize = 64;
/// Length of a revision 0 RSDP.
pub const RSDP_LEN: usize = 20;

/// What the tables describe and where they go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcpiConfig {
    /// The RSDP's address: 16-byte aligned; in 0xE0000..0x100000 for the
    /// kernel's scan to find it.
    pub rsdp_addr: u32,
    /// Start of the table region (4 KiB aligned, in RAM).
    pub base: u32,
    /// Size of the table region (at least 8 KiB, a multiple of 4 KiB).
    pub size: u32,
    /// I/O base of the PM registers (PM1a_EVT; PM1a_CNT at +4, PM_TMR at +8).
    pub pm_io_base: u16,
    /// ISA IRQ of the SCI.
    pub sci_irq: u8,
    /// Local APIC physical address.
    pub lapic_addr: u32,
    /// IOAPIC ID.
    pub ioapic_id: u8,
    /// IOAPIC physical address.
    pub ioapic_addr: u32,
    /// Put a PCI host bridge (`\_SB.PCI0`, `PNP0A03`, bus 0) in the DSDT.
    pub pci_host_bridge: bool,
}

impl AcpiConfig {
    /// Size of the region [`AcpiConfig::for_ram`] takes from the top of RAM.
    pub const DEFAULT_SIZE: u32 = 0x1_0000;

    /// The default PC: RSDP at 0xF0000, tables in the top 64 KiB of
    /// `ram_size` bytes of RAM, PM registers at 0xB000, SCI on IRQ 9, local
    /// APIC at 0xFEE00000, IOAPIC 1 at 0xFEC00000, a PCI host bridge.
    pub fn for_ram(ram_size: u32) -> AcpiConfig {
        AcpiConfig {
            rsdp_addr: 0xF_0000,
            base: (ram_size & !0xFFF).saturating_sub(Self::DEFAULT_SIZE),
            size: Self::DEFAULT_SIZE,
            pm_io_base: 0xB000,
            sci_irq: 9,
            lapic_addr: 0xFEE0_0000,
            ioapic_id: 1,
            ioapic_addr: 0xFEC0_0000,
            pci_host_bridge: true,
        }
    }
}

/// Where the tables were put.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcpiTables {
    /// RSDP.
    pub rsdp: u32,
    /// RSDT.
    pub rsdt: u32,
    /// FADT ("FACP").
    pub fadt: u32,
    /// FACS.
    pub facs: u32,
    /// DSDT.
    pub dsdt: u32,
    /// MADT ("APIC").
    pub madt: u32,
    /// The whole table region ([`AcpiConfig::base`]..+size).
    pub region: Range<u32>,
    /// The part holding the FACS (ACPI NVS).
    pub nvs: Range<u32>,
    /// The part holding the other tables (ACPI reclaimable).
    pub reclaim: Range<u32>,
}

impl AcpiTables {
    /// The e820 entries that reserve the table region (NVS, then ACPI).
    pub fn e820_entries(&self) -> Vec<E820Entry> {
        vec![
            E820Entry::new(
                u64::from(self.nvs.start)..u64::from(self.nvs.end),
                E820Type::Nvs,
            ),
            E820Entry::new(
                u64::from(self.reclaim.start)..u64::from(self.reclaim.end),
                E820Type::Acpi,
            ),
        ]
    }
}

/// Why the tables could not be built.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AcpiError {
    /// The configuration is unusable.
    #[error("bad ACPI configuration: {0}")]
    BadConfig(String),
    /// The tables do not fit the region.
    #[error("the ACPI tables need {needed} bytes but the region holds {available}")]
    TooLarge {
        /// Bytes needed.
        needed: usize,
        /// Region size.
        available: usize,
    },
}

/// Sum of the bytes, mod 256 (0 for a valid table).
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b))
}

/// Sets `bytes[at]` so that the bytes sum to 0.
fn fix_checksum(bytes: &mut [u8], at: usize) {
    bytes[at] = 0;
    bytes[at] = checksum(bytes).wrapping_neg();
}

/// A table with a standard header (length and checksum filled in).
fn table(signature: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(HEADER_LEN + body.len());
    t.extend_from_slice(signature);
    t.extend(((HEADER_LEN + body.len()) as u32).to_le_bytes());
    t.push(revision);
    t.push(0); // checksum
    t.extend_from_slice(&OEM_ID);
    t.extend_from_slice(&OEM_TABLE_ID);
    t.extend(1u32.to_le_bytes()); // OEM revision
    t.extend_from_slice(&CREATOR_ID);
    t.extend(1u32.to_le_bytes()); // creator revision
    t.extend_from_slice(body);
    fix_checksum(&mut t, 9);
    t
}

/// A generic address structure for an I/O port.
fn gas_io(port: u16, bits: u8) -> [u8; 12] {
    let mut g = [0u8; 12];
    g[0] = 1; // system I/O
    g[1] = bits;
    g[3] = 1; // byte access
    g[4..12].copy_from_slice(&u64::from(port).to_le_bytes());
    g
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

/// FADT flags.
mod fadt_flags {
    pub const WBINVD: u32 = 1 << 0;
    pub const PROC_C1: u32 = 1 << 2;
    pub const PWR_BUTTON: u32 = 1 << 4;
    pub const SLP_BUTTON: u32 = 1 << 5;
    pub const FIX_RTC: u32 = 1 << 6;
    pub const RESET_REG_SUP: u32 = 1 << 10;
}

fn fadt(cfg: &AcpiConfig, facs: u32, dsdt: u32) -> Vec<u8> {
    use fadt_flags::*;
    let mut b = vec![0u8; FADT_LEN - HEADER_LEN];
    let o = |abs: usize| abs - HEADER_LEN;
    let pm = u32::from(cfg.pm_io_base);
    put32(&mut b, o(36), facs);
    put32(&mut b, o(40), dsdt);
    // 44: reserved (ACPI 1.0 INT_MODEL), 45: preferred PM profile (unspecified).
    put16(&mut b, o(46), u16::from(cfg.sci_irq));
    // 48: SMI_CMD = 0 and 52/53: ACPI_ENABLE/DISABLE = 0: always in ACPI mode.
    put32(&mut b, o(56), pm); // PM1a_EVT_BLK
    put32(&mut b, o(64), pm + 4); // PM1a_CNT_BLK
    put32(&mut b, o(76), pm + 8); // PM_TMR_BLK
    b[o(88)] = 4; // PM1_EVT_LEN
    b[o(89)] = 2; // PM1_CNT_LEN
    b[o(91)] = 4; // PM_TMR_LEN
    put16(&mut b, o(96), 0x0FFF); // P_LVL2_LAT > 100: no C2
    put16(&mut b, o(98), 0x0FFF); // P_LVL3_LAT > 1000: no C3
    b[o(108)] = 0x32; // CENTURY: CMOS register 0x32
    put16(&mut b, o(109), 0x0003); // IAPC_BOOT_ARCH: LEGACY_DEVICES | 8042
    put32(
        &mut b,
        o(112),
        WBINVD | PROC_C1 | PWR_BUTTON | SLP_BUTTON | FIX_RTC | RESET_REG_SUP,
    );
    b[o(116)..o(128)].copy_from_slice(&gas_io(0xCF9, 8)); // RESET_REG
    b[o(128)] = 6; // RESET_VALUE
                   // 132..244: the X_ fields stay 0; the kernel uses the 32-bit fields.
    table(b"FACP", 3, &b)
}

fn facs() -> Vec<u8> {
    let mut f = vec![0u8; FACS_LEN];
    f[..4].copy_from_slice(b"FACS");
    put32(&mut f, 4, FACS_LEN as u32);
    f[32] = 1; // version (ACPI 2.0)
    f
}

fn madt(cfg: &AcpiConfig) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(cfg.lapic_addr.to_le_bytes());
    b.extend(1u32.to_le_bytes()); // PCAT_COMPAT: there are 8259s too
                                  // Processor local APIC: UID 0, APIC ID 0, enabled.
    b.extend([0, 8, 0, 0]);
    b.extend(1u32.to_le_bytes());
    // IOAPIC.
    b.extend([1, 12, cfg.ioapic_id, 0]);
    b.extend(cfg.ioapic_addr.to_le_bytes());
    b.extend(0u32.to_le_bytes()); // GSI base
                                  // Interrupt source overrides (bus 0 = ISA).
    let iso = |b: &mut Vec<u8>, irq: u8, gsi: u32, flags: u16| {
        b.extend([2, 10, 0, irq]);
        b.extend(gsi.to_le_bytes());
        b.extend(flags.to_le_bytes());
    };
    iso(&mut b, 0, 2, 0x0005); // active high, edge
    iso(&mut b, cfg.sci_irq, u32::from(cfg.sci_irq), 0x000D); // active high, level
                                                              // Local APIC NMI: all processors, LINT1, flags conform to the bus.
    b.extend([4, 6, 0xFF, 0, 0, 1]);
    table(b"APIC", 1, &b)
}

/// What the PCI host bridge decodes, as its `_CRS` says (an OS scans the
/// root bus only within a bridge it is told of, and places BARs in these
/// windows): bus 0-255; the configuration ports; all other I/O ports; the
/// VGA window; and the memory from the end of RAM to the I/O APIC.
fn pci_windows(cfg: &AcpiConfig) -> Vec<Vec<u8>> {
    use aml::*;
    let ram_end = cfg.base + cfg.size;
    vec![
        word_space(2, 0, 0x00, 0xFF),
        io_port(0xCF8, 8),
        word_space(1, 3, 0x0000, 0x0CF7),
        word_space(1, 3, 0x0D00, 0xFFFF),
        dword_memory(0xA_0000, 0xB_FFFF),
        dword_memory(ram_end, 0xFEBF_FFFF),
    ]
}

fn dsdt(cfg: &AcpiConfig) -> Vec<u8> {
    use aml::*;
    let mut sb = Vec::new();
    if cfg.pci_host_bridge {
        sb.extend(device(
            "PCI0",
            &[
                name("_HID", &eisa_id("PNP0A03")),
                name("_UID", &integer(0)),
                name("_BBN", &integer(0)),
                name("_CRS", &resource_template(&pci_windows(cfg))),
            ]
            .concat(),
        ));
    }
    for (dev, hid, uid, resources) in legacy_devices() {
        sb.extend(device(
            dev,
            &[
                name("_HID", &eisa_id(hid)),
                name("_UID", &integer(uid)),
                name("_CRS", &resource_template(&resources)),
            ]
            .concat(),
        ));
    }
    sb.extend(device(
        "CPU0",
        &[name("_HID", &string("ACPI0007")), name("_UID", &integer(0))].concat(),
    ));
    let body = [
        // SLP_TYPa, SLP_TYPb and two reserved values, as the PIIX4 wants.
        name(
            "\\_S5",
            &package(&[integer(0), integer(0), integer(0), integer(0)]),
        ),
        scope("\\_SB", &sb),
    ]
    .concat();
    table(b"DSDT", 2, &body)
}

/// The fixed ISA devices of the board, for the guest's ACPI PNP layer:
/// (device name, PNP ID, _UID, resources). Without them Linux's PNP-aware
/// drivers (i8042, rtc_cmos, 8250_pnp) report that no device was found
/// and fall back to probing the fixed ports.
fn legacy_devices() -> Vec<(&'static str, &'static str, u64, Vec<Vec<u8>>)> {
    use aml::{io_port, irq};
    let mut v = vec![
        (
            "KBD",
            "PNP0303",
            0,
            vec![io_port(0x60, 1), io_port(0x64, 1), irq(1)],
        ),
        ("MOU", "PNP0F13", 0, vec![irq(12)]),
        ("RTC", "PNP0B00", 0, vec![io_port(0x70, 2), irq(8)]),
    ];
    for (i, (dev, base, line)) in [
        ("COM1", 0x3F8, 4),
        ("COM2", 0x2F8, 3),
        ("COM3", 0x3E8, 4),
        ("COM4", 0x2E8, 3),
    ]
    .into_iter()
    .enumerate()
    {
        v.push((
            dev,
            "PNP0501",
            i as u64 + 1,
            vec![io_port(base, 8), irq(line)],
        ));
    }
    v
}

fn rsdt(entries: &[u32]) -> Vec<u8> {
    let b: Vec<u8> = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
    table(b"RSDT", 1, &b)
}

fn rsdp(rsdt: u32) -> [u8; RSDP_LEN] {
    let mut r = [0u8; RSDP_LEN];
    r[..8].copy_from_slice(b"RSD PTR ");
    r[9..15].copy_from_slice(&OEM_ID);
    r[15] = 0; // revision 0 (ACPI 1.0 RSDP)
    r[16..20].copy_from_slice(&rsdt.to_le_bytes());
    fix_checksum(&mut r, 8);
    r
}

/// Builds the tables in `ram` as `cfg` says and returns where they went.
/// On error RAM is left untouched.
pub fn build_acpi(ram: &mut [u8], cfg: &AcpiConfig) -> Result<AcpiTables, AcpiError> {
    let (images, tables) = acpi_images(cfg, ram.len() as u64)?;
    for p in &images {
        p.copy_into(ram);
    }
    Ok(tables)
}

/// The tables `cfg` describes as the bytes to place in `ram_len` bytes of
/// RAM, without writing them: the RSDP at [`AcpiConfig::rsdp_addr`], then
/// the whole table region (FACS, DSDT, FADT, MADT, RSDT, zeros between),
/// and where everything is.
pub fn acpi_images(cfg: &AcpiConfig, ram_len: u64) -> Result<(Vec<Placed>, AcpiTables), AcpiError> {
    let bad = |m: String| Err(AcpiError::BadConfig(m));
    let (base, size) = (u64::from(cfg.base), u64::from(cfg.size));
    if !base.is_multiple_of(4096) || !size.is_multiple_of(4096) || size < 0x2000 {
        return bad(format!(
            "the table region {base:#x}+{size:#x} must be 4 KiB aligned and at least 8 KiB"
        ));
    }
    if base + size > ram_len {
        return bad(format!(
            "the table region {base:#x}..{:#x} is outside RAM ({ram_len:#x} bytes)",
            base + size
        ));
    }
    let rsdp_at = u64::from(cfg.rsdp_addr);
    if !rsdp_at.is_multiple_of(16) || rsdp_at + RSDP_LEN as u64 > ram_len {
        return bad(format!(
            "the RSDP at {rsdp_at:#x} must be 16-byte aligned and inside RAM"
        ));
    }
    if rsdp_at < base + size && base < rsdp_at + RSDP_LEN as u64 {
        return bad(format!(
            "the RSDP at {rsdp_at:#x} is inside the table region"
        ));
    }
    if cfg.sci_irq > 15 || cfg.sci_irq == 0 || cfg.sci_irq == 2 {
        return bad(format!("SCI IRQ {} is not a usable ISA IRQ", cfg.sci_irq));
    }
    if !cfg.pm_io_base.is_multiple_of(4) || cfg.pm_io_base > 0xFFF0 {
        return bad(format!(
            "PM I/O base {:#x} must be 4-byte aligned with 12 ports above it",
            cfg.pm_io_base
        ));
    }

    // Layout: FACS at the start of the NVS page, then the other tables
    // 16-byte aligned from the next page.
    let facs_at = cfg.base;
    let reclaim_start = cfg.base + 0x1000;
    let dsdt_t = dsdt(cfg);
    let madt_t = madt(cfg);
    let dsdt_at = reclaim_start;
    let fadt_at = (dsdt_at + dsdt_t.len() as u32).next_multiple_of(16);
    let madt_at = fadt_at + (FADT_LEN as u32).next_multiple_of(16);
    let rsdt_at = (madt_at + madt_t.len() as u32).next_multiple_of(16);
    let fadt_t = fadt(cfg, facs_at, dsdt_at);
    let rsdt_t = rsdt(&[fadt_at, madt_at]);
    let end = rsdt_at as usize + rsdt_t.len();
    let region_end = (base + size) as usize;
    if end > region_end {
        return Err(AcpiError::TooLarge {
            needed: end - cfg.base as usize,
            available: size as usize,
        });
    }

    let mut region = vec![0u8; size as usize];
    for (at, t) in [
        (facs_at, facs()),
        (dsdt_at, dsdt_t),
        (fadt_at, fadt_t),
        (madt_at, madt_t),
        (rsdt_at, rsdt_t),
    ] {
        let o = (at - cfg.base) as usize;
        region[o..o + t.len()].copy_from_slice(&t);
    }
    let images = vec![
        Placed {
            addr: cfg.rsdp_addr,
            bytes: rsdp(rsdt_at).to_vec(),
        },
        Placed {
            addr: cfg.base,
            bytes: region,
        },
    ];
    let tables = AcpiTables {
        rsdp: cfg.rsdp_addr,
        rsdt: rsdt_at,
        fadt: fadt_at,
        facs: facs_at,
        dsdt: dsdt_at,
        madt: madt_at,
        region: cfg.base..cfg.base + cfg.size,
        nvs: cfg.base..reclaim_start,
        reclaim: reclaim_start..cfg.base + cfg.size,
    };
    Ok((images, tables))
}

/// A minimal AML encoder (ACPI 6.x section 20) for the few constructs the
/// DSDT needs. Names are compile-time constants of this crate; they must be
/// valid (upper-case letters, digits and '_', one to four characters per
/// segment), which the tests check.
pub mod aml {
    const ZERO_OP: u8 = 0x00;
    const ONE_OP: u8 = 0x01;
    const NAME_OP: u8 = 0x08;
    const BYTE_PREFIX: u8 = 0x0A;
    const WORD_PREFIX: u8 = 0x0B;
    const DWORD_PREFIX: u8 = 0x0C;
    const STRING_PREFIX: u8 = 0x0D;
    const QWORD_PREFIX: u8 = 0x0E;
    const SCOPE_OP: u8 = 0x10;
    const BUFFER_OP: u8 = 0x11;
    const PACKAGE_OP: u8 = 0x12;
    const DUAL_NAME_PREFIX: u8 = 0x2E;
    const MULTI_NAME_PREFIX: u8 = 0x2F;
    const EXT_OP_PREFIX: u8 = 0x5B;
    const DEVICE_OP: u8 = 0x82;
    const ROOT_CHAR: u8 = b'\\';
    const ONES_OP: u8 = 0xFF;

    /// A PkgLength for `body_len` bytes following it (the encoding counts
    /// its own bytes).
    pub fn pkg_length(body_len: usize) -> Vec<u8> {
        for extra in 0..4usize {
            let total = body_len + 1 + extra;
            let fits = match extra {
                0 => total < 0x40,
                1 => total < 1 << 12,
                2 => total < 1 << 20,
                _ => total < 1 << 28,
            };
            if !fits {
                continue;
            }
            if extra == 0 {
                return vec![total as u8];
            }
            let mut v = vec![((extra as u8) << 6) | (total & 0xF) as u8];
            for i in 0..extra {
                v.push((total >> (4 + 8 * i)) as u8);
            }
            return v;
        }
        // 256 MiB of AML: far beyond any table this crate builds.
        unreachable!("AML package of {body_len} bytes is too large")
    }

    /// A NameSeg: up to four characters, padded with '_'.
    pub fn name_seg(seg: &str) -> [u8; 4] {
        debug_assert!(
            !seg.is_empty()
                && seg.len() <= 4
                && seg
                    .bytes()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
                && !seg.as_bytes()[0].is_ascii_digit(),
            "bad AML name segment {seg:?}"
        );
        let mut s = [b'_'; 4];
        s[..seg.len()].copy_from_slice(seg.as_bytes());
        s
    }

    /// A NameString: an optional leading '\' and dot-separated segments.
    pub fn name_string(path: &str) -> Vec<u8> {
        let mut v = Vec::new();
        let rel = match path.strip_prefix('\\') {
            Some(r) => {
                v.push(ROOT_CHAR);
                r
            }
            None => path,
        };
        let segs: Vec<&str> = rel.split('.').collect();
        match segs.len() {
            1 => {}
            2 => v.push(DUAL_NAME_PREFIX),
            n => {
                v.push(MULTI_NAME_PREFIX);
                v.push(n as u8);
            }
        }
        for s in segs {
            v.extend(name_seg(s));
        }
        v
    }

    /// An integer constant in its shortest encoding.
    pub fn integer(v: u64) -> Vec<u8> {
        match v {
            0 => vec![ZERO_OP],
            1 => vec![ONE_OP],
            u64::MAX => vec![ONES_OP],
            _ if v <= 0xFF => vec![BYTE_PREFIX, v as u8],
            _ if v <= 0xFFFF => [&[WORD_PREFIX][..], &(v as u16).to_le_bytes()].concat(),
            _ if v <= 0xFFFF_FFFF => [&[DWORD_PREFIX][..], &(v as u32).to_le_bytes()].concat(),
            _ => [&[QWORD_PREFIX][..], &v.to_le_bytes()].concat(),
        }
    }

    /// A string constant (ASCII, no NUL inside).
    pub fn string(s: &str) -> Vec<u8> {
        debug_assert!(s.is_ascii() && !s.contains('\0'));
        [&[STRING_PREFIX][..], s.as_bytes(), &[0]].concat()
    }

    /// An EISA ID ("PNP0A03") as the DWORD integer `EisaId()` makes.
    pub fn eisa_id(id: &str) -> Vec<u8> {
        let b = id.as_bytes();
        debug_assert!(b.len() == 7 && b[..3].iter().all(u8::is_ascii_uppercase));
        let c = |i: usize| u32::from(b[i].wrapping_sub(0x40)) & 0x1F;
        let hex = |i: usize| (b[i] as char).to_digit(16).unwrap_or(0);
        let mfg = (c(0) << 10) | (c(1) << 5) | c(2);
        let prod = (hex(3) << 12) | (hex(4) << 8) | (hex(5) << 4) | hex(6);
        let v = (mfg >> 8) | (mfg & 0xFF) << 8 | (prod >> 8) << 16 | (prod & 0xFF) << 24;
        integer(u64::from(v))
    }

    /// `Name(path, object)`.
    pub fn name(path: &str, object: &[u8]) -> Vec<u8> {
        [&[NAME_OP][..], &name_string(path), object].concat()
    }

    /// `Package(){elements}`.
    pub fn package(elements: &[Vec<u8>]) -> Vec<u8> {
        debug_assert!(elements.len() <= 255);
        let mut body = vec![elements.len() as u8];
        body.extend(elements.concat());
        [&[PACKAGE_OP][..], &pkg_length(body.len()), &body].concat()
    }

    /// `Buffer(){bytes}`.
    pub fn buffer(bytes: &[u8]) -> Vec<u8> {
        let body = [&integer(bytes.len() as u64)[..], bytes].concat();
        [&[BUFFER_OP][..], &pkg_length(body.len()), &body].concat()
    }

    /// `IO(Decode16, base, base, 1, len)`: a small I/O port descriptor for
    /// a fixed range.
    pub fn io_port(base: u16, len: u8) -> Vec<u8> {
        let [lo, hi] = base.to_le_bytes();
        vec![0x47, 0x01, lo, hi, lo, hi, 0x01, len]
    }

    /// A Word Address Space descriptor the bridge produces (`WordBusNumber`
    /// for `kind` 2, `WordIO` for 1), with fixed bounds `min..=max` and
    /// type-specific `flags` (for I/O, 3: the entire ISA range).
    pub fn word_space(kind: u8, flags: u8, min: u16, max: u16) -> Vec<u8> {
        let len = max.wrapping_sub(min).wrapping_add(1);
        let mut d = vec![0x88, 0x0D, 0x00, kind, 0x0C, flags, 0, 0];
        for v in [min, max, 0, len] {
            d.extend(v.to_le_bytes());
        }
        d
    }

    /// A `DWordMemory` window the bridge produces (read-write, cacheable),
    /// with fixed bounds `min..=max`.
    pub fn dword_memory(min: u32, max: u32) -> Vec<u8> {
        let mut d = vec![0x87, 0x17, 0x00, 0x00, 0x0C, 0x03];
        for v in [0, min, max, 0, max - min + 1] {
            d.extend(v.to_le_bytes());
        }
        d
    }

    /// `IRQNoFlags(){irq}`: an edge-triggered, active-high ISA IRQ.
    pub fn irq(irq: u8) -> Vec<u8> {
        let [lo, hi] = (1u16 << (irq & 15)).to_le_bytes();
        vec![0x22, lo, hi]
    }

    /// `ResourceTemplate(){descriptors}`: the descriptors and an end tag
    /// (checksum 0, meaning "not checked"), as a buffer.
    pub fn resource_template(descriptors: &[Vec<u8>]) -> Vec<u8> {
        buffer(&[&descriptors.concat()[..], &[0x79, 0x00]].concat())
    }

    /// `Scope(path){terms}`.
    pub fn scope(path: &str, terms: &[u8]) -> Vec<u8> {
        let body = [&name_string(path)[..], terms].concat();
        [&[SCOPE_OP][..], &pkg_length(body.len()), &body].concat()
    }

    /// `Device(path){terms}`.
    pub fn device(path: &str, terms: &[u8]) -> Vec<u8> {
        let body = [&name_string(path)[..], terms].concat();
        [
            &[EXT_OP_PREFIX, DEVICE_OP][..],
            &pkg_length(body.len()),
            &body,
        ]
        .concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM: usize = 64 << 20;

    fn rd32(ram: &[u8], a: u32) -> u32 {
        u32::from_le_bytes(ram[a as usize..a as usize + 4].try_into().unwrap())
    }

    /// Checks a table's signature, length and checksum; returns it.
    fn check_table<'a>(ram: &'a [u8], at: u32, sig: &[u8; 4]) -> &'a [u8] {
        let a = at as usize;
        assert_eq!(&ram[a..a + 4], sig);
        let len = rd32(ram, at + 4) as usize;
        assert!(len >= HEADER_LEN, "{sig:?} length {len}");
        let t = &ram[a..a + len];
        assert_eq!(checksum(t), 0, "{:?} checksum", std::str::from_utf8(sig));
        assert_eq!(&t[10..16], &OEM_ID);
        t
    }

    /// Walks the PkgLength-framed AML objects at the DSDT's top level and
    /// checks they exactly fill the table.
    fn decode_pkg_length(b: &[u8]) -> (usize, usize) {
        let extra = (b[0] >> 6) as usize;
        if extra == 0 {
            return ((b[0] & 0x3F) as usize, 1);
        }
        let mut v = (b[0] & 0xF) as usize;
        for i in 0..extra {
            v |= (b[1 + i] as usize) << (4 + 8 * i);
        }
        (v, 1 + extra)
    }

    #[test]
    fn tables_have_valid_checksums_and_lengths() {
        let mut ram = vec![0u8; RAM];
        let cfg = AcpiConfig::for_ram(RAM as u32);
        let t = build_acpi(&mut ram, &cfg).unwrap();
        assert_eq!(t.region, RAM as u32 - 0x1_0000..RAM as u32);
        // RSDP.
        let r = &ram[t.rsdp as usize..t.rsdp as usize + RSDP_LEN];
        assert_eq!(&r[..8], b"RSD PTR ");
        assert_eq!(checksum(r), 0);
        assert_eq!(r[15], 0);
        assert_eq!(t.rsdp % 16, 0);
        assert!((0xE_0000..0x10_0000).contains(&t.rsdp));
        assert_eq!(rd32(r, 16), t.rsdt);
        // RSDT → FADT, MADT.
        let rsdt = check_table(&ram, t.rsdt, b"RSDT");
        assert_eq!(rsdt.len(), HEADER_LEN + 8);
        assert_eq!(rd32(rsdt, 36), t.fadt);
        assert_eq!(rd32(rsdt, 40), t.madt);
        // FADT.
        let f = check_table(&ram, t.fadt, b"FACP");
        assert_eq!(f.len(), FADT_LEN);
        assert_eq!(f[8], 3);
        assert_eq!(rd32(f, 36), t.facs);
        assert_eq!(rd32(f, 40), t.dsdt);
        assert_eq!(u16::from_le_bytes([f[46], f[47]]), 9);
        assert_eq!(rd32(f, 48), 0, "SMI_CMD");
        assert_eq!(rd32(f, 56), 0xB000);
        assert_eq!(rd32(f, 64), 0xB004);
        assert_eq!(rd32(f, 76), 0xB008);
        assert_eq!((f[88], f[89], f[91]), (4, 2, 4));
        assert_eq!(rd32(f, 80), 0, "no GPE0 block");
        assert_eq!(&f[116..120], &[1, 8, 0, 1]);
        assert_eq!(rd32(f, 120), 0xCF9);
        assert_eq!(f[128], 6);
        assert_ne!(rd32(f, 112) & (1 << 10), 0);
        assert!(f[132..].iter().all(|&b| b == 0), "X_ fields zero");
        // FACS: no checksum, 64-byte aligned, in the NVS part.
        let facs = &ram[t.facs as usize..t.facs as usize + FACS_LEN];
        assert_eq!(&facs[..4], b"FACS");
        assert_eq!(rd32(facs, 4) as usize, FACS_LEN);
        assert_eq!(t.facs % 64, 0);
        assert!(t.nvs.contains(&t.facs));
        // MADT: entries exactly fill it.
        let m = check_table(&ram, t.madt, b"APIC");
        assert_eq!(rd32(m, 36), 0xFEE0_0000);
        let mut at = 44;
        let mut kinds = Vec::new();
        while at < m.len() {
            let (ty, len) = (m[at], m[at + 1] as usize);
            assert!(len >= 2 && at + len <= m.len());
            kinds.push((ty, m[at..at + len].to_vec()));
            at += len;
        }
        assert_eq!(at, m.len());
        assert_eq!(kinds[0], (0, vec![0, 8, 0, 0, 1, 0, 0, 0]));
        assert_eq!(
            kinds[1],
            (1, vec![1, 12, 1, 0, 0, 0, 0xC0, 0xFE, 0, 0, 0, 0])
        );
        assert_eq!(kinds[2], (2, vec![2, 10, 0, 0, 2, 0, 0, 0, 5, 0]));
        assert_eq!(kinds[3], (2, vec![2, 10, 0, 9, 9, 0, 0, 0, 0xD, 0]));
        assert_eq!(kinds[4].0, 4);
        // DSDT: the top-level objects fill it exactly.
        let d = check_table(&ram, t.dsdt, b"DSDT");
        let aml = &d[HEADER_LEN..];
        let s5 = aml::name("\\_S5", &aml::package(&vec![aml::integer(0); 4]));
        assert_eq!(&aml[..s5.len()], &s5[..]);
        assert_eq!(
            &s5[..],
            &[0x08, b'\\', b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04, 0, 0, 0, 0]
        );
        let rest = &aml[s5.len()..];
        assert_eq!(rest[0], 0x10, "ScopeOp");
        let (len, n) = decode_pkg_length(&rest[1..]);
        assert_eq!(1 + len, rest.len(), "Scope(\\_SB) spans the rest");
        assert_eq!(&rest[1 + n..1 + n + 5], b"\\_SB_");
        // The fixed ISA devices are there for the guest's PNP layer.
        for id in ["PNP0303", "PNP0F13", "PNP0B00", "PNP0501"] {
            let enc = aml::eisa_id(id);
            assert!(d.windows(enc.len()).any(|w| w == enc), "{id}");
        }
        let com4 = aml::resource_template(&[aml::io_port(0x2E8, 8), aml::irq(3)]);
        assert!(d.windows(com4.len()).any(|w| w == com4));
        // Everything sits inside the region, and nothing overlaps.
        let mut spans = [
            (t.facs, FACS_LEN as u32),
            (t.dsdt, d.len() as u32),
            (t.fadt, f.len() as u32),
            (t.madt, m.len() as u32),
            (t.rsdt, rsdt.len() as u32),
        ];
        spans.sort();
        for w in spans.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0);
        }
        assert!(spans
            .iter()
            .all(|&(a, l)| t.region.contains(&a) && a + l <= t.region.end));
        let e = t.e820_entries();
        assert_eq!(e[0].kind, E820Type::Nvs);
        assert_eq!(e[1].kind, E820Type::Acpi);
        assert_eq!(e[0].end(), e[1].addr);
        assert_eq!(e[1].end(), RAM as u64);
    }

    #[test]
    fn without_pci_the_dsdt_is_still_valid() {
        let mut ram = vec![0u8; RAM];
        let cfg = AcpiConfig {
            pci_host_bridge: false,
            ..AcpiConfig::for_ram(RAM as u32)
        };
        let t = build_acpi(&mut ram, &cfg).unwrap();
        let d = check_table(&ram, t.dsdt, b"DSDT");
        assert!(!d.windows(4).any(|w| w == b"PCI0"));
    }

    #[test]
    fn host_bridge_windows_encode_as_the_spec_lays_them_out() {
        use aml::*;
        // ACPI 6.4 §6.4.3.5.3 (Word) and §6.4.3.5.2 (DWord): tag, length,
        // resource type, general flags (producer, MinFixed, MaxFixed),
        // type flags, then granularity, min, max, translation, length.
        assert_eq!(
            word_space(2, 0, 0, 0xFF),
            [0x88, 0x0D, 0, 2, 0x0C, 0, 0, 0, 0, 0, 0xFF, 0, 0, 0, 0, 1]
        );
        assert_eq!(
            dword_memory(0xA_0000, 0xB_FFFF),
            [
                0x87, 0x17, 0, 0, 0x0C, 0x03, 0, 0, 0, 0, 0, 0, 0x0A, 0, 0xFF, 0xFF, 0x0B, 0, 0, 0,
                0, 0, 0, 0, 0x02, 0
            ]
        );
        // The DSDT holds PCI0 with them.
        let cfg = AcpiConfig::for_ram(128 << 20);
        let d = dsdt(&cfg);
        let crs = resource_template(&pci_windows(&cfg));
        assert!(d.windows(crs.len()).any(|w| w == crs), "PCI0's _CRS");
    }

    #[test]
    fn aml_encodings() {
        use aml::*;
        assert_eq!(pkg_length(0), vec![1]);
        assert_eq!(pkg_length(62), vec![63]);
        // 63 + 2 = 65 = 0x41: two bytes, low nibble 1, then 0x04.
        assert_eq!(pkg_length(63), vec![0x41, 0x04]);
        assert_eq!(pkg_length(4093), vec![0x4F, 0xFF]);
        assert_eq!(pkg_length(4094), vec![0x81, 0x00, 0x01]);
        assert_eq!(eisa_id("PNP0A03"), vec![0x0C, 0x41, 0xD0, 0x0A, 0x03]);
        assert_eq!(
            name_string("\\_SB.PCI0"),
            [&[0x5C, 0x2E][..], b"_SB_PCI0"].concat()
        );
        assert_eq!(
            name_string("A.B.C"),
            [&[0x2F, 3][..], b"A___B___C___"].concat()
        );
        assert_eq!(integer(2), vec![0x0A, 2]);
        assert_eq!(integer(0x1234), vec![0x0B, 0x34, 0x12]);
        assert_eq!(integer(0x1_0000), vec![0x0C, 0, 0, 1, 0]);
        assert_eq!(integer(1 << 32), vec![0x0E, 0, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(integer(u64::MAX), vec![0xFF]);
        assert_eq!(string("AB"), vec![0x0D, b'A', b'B', 0]);
        // IO(Decode16, 0x3F8, 0x3F8, 1, 8) and IRQNoFlags(){4}, as iasl
        // encodes them.
        assert_eq!(
            io_port(0x3F8, 8),
            vec![0x47, 0x01, 0xF8, 0x03, 0xF8, 0x03, 0x01, 0x08]
        );
        assert_eq!(irq(4), vec![0x22, 0x10, 0x00]);
        assert_eq!(irq(12), vec![0x22, 0x00, 0x10]);
        assert_eq!(
            resource_template(&[irq(1)]),
            vec![0x11, 0x08, 0x0A, 0x05, 0x22, 0x02, 0x00, 0x79, 0x00]
        );
        let d = device("CPU0", &name("_UID", &integer(0)));
        assert_eq!(
            d,
            [&[0x5B, 0x82, 11][..], b"CPU0", &[0x08], b"_UID", &[0]].concat()
        );
    }

    #[test]
    fn bad_configs_are_refused() {
        let base = AcpiConfig::for_ram(RAM as u32);
        let cases = [
            AcpiConfig {
                base: base.base + 16,
                ..base.clone()
            },
            AcpiConfig {
                base: RAM as u32,
                ..base.clone()
            },
            AcpiConfig {
                size: 0x1000,
                ..base.clone()
            },
            AcpiConfig {
                rsdp_addr: 0xF_0008,
                ..base.clone()
            },
            AcpiConfig {
                rsdp_addr: base.base + 0x100,
                ..base.clone()
            },
            AcpiConfig {
                sci_irq: 16,
                ..base.clone()
            },
            AcpiConfig {
                pm_io_base: 0xFFFC,
                ..base.clone()
            },
        ];
        for c in cases {
            let mut ram = vec![0u8; RAM];
            let r = build_acpi(&mut ram, &c);
            assert!(matches!(r, Err(AcpiError::BadConfig(_))), "{c:?}: {r:?}");
            assert!(ram.iter().all(|&b| b == 0), "nothing written");
        }
        let mut small = vec![0u8; 1 << 20];
        assert!(build_acpi(&mut small, &base).is_err());
    }
}
