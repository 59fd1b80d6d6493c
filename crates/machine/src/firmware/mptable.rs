//! An Intel MultiProcessor Specification 1.4 table for a single-CPU PC.
//!
//! [`build_mptable`] writes the MP floating pointer structure and an MP
//! configuration table: one processor (local APIC ID 0, the bootstrap
//! processor), bus 0 = PCI and bus 1 = ISA, one IOAPIC, I/O interrupt
//! entries for the ISA IRQs (ExtINT on INTIN0, IRQ0 on INTIN2, IRQ n on
//! INTIN n for n = 1, 3..15; all conforming to the ISA bus, so edge and
//! active high) and the local interrupts (ExtINT on LINT0, NMI on LINT1).
//!
//! Linux looks for the floating pointer in 0x0..0x400, 0x9FC00..0xA0000,
//! 0xF0000..0x100000 and the first KiB of the EBDA; the default places it
//! (and the table) in the reserved BIOS area at 0xF0100. With ACPI on, the
//! kernel prefers the MADT and ignores this table (`acpi=off` uses it).

use super::Placed;
use std::ops::Range;
use thiserror::Error;

/// Length of the floating pointer structure.
pub const FLOATING_LEN: usize = 16;
/// Length of the configuration table header.
pub const HEADER_LEN: usize = 44;
/// The ISA bus's ID in the table.
pub const ISA_BUS: u8 = 1;
/// The PCI bus's ID in the table.
pub const PCI_BUS: u8 = 0;

/// What the table describes and where it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MpConfig {
    /// Address of the floating pointer structure (16-byte aligned, in one of
    /// the areas the kernel scans).
    pub floating_addr: u32,
    /// Address of the configuration table (4-byte aligned).
    pub table_addr: u32,
    /// Local APIC physical address.
    pub lapic_addr: u32,
    /// Local APIC version (0x1X: integrated APIC).
    pub lapic_version: u8,
    /// IOAPIC ID.
    pub ioapic_id: u8,
    /// IOAPIC version (0x11: 82093AA).
    pub ioapic_version: u8,
    /// IOAPIC physical address.
    pub ioapic_addr: u32,
    /// CPU signature (CPUID leaf 1 EAX).
    pub cpu_signature: u32,
    /// CPU feature flags (CPUID leaf 1 EDX).
    pub cpu_features: u32,
}

impl Default for MpConfig {
    fn default() -> Self {
        MpConfig {
            floating_addr: 0xF_0100,
            table_addr: 0xF_0110,
            lapic_addr: 0xFEE0_0000,
            lapic_version: 0x14,
            ioapic_id: 1,
            ioapic_version: 0x11,
            ioapic_addr: 0xFEC0_0000,
            cpu_signature: 0x0000_0652,
            cpu_features: (1 << 0) | (1 << 9), // FPU, APIC
        }
    }
}

/// Where the table went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MpTable {
    /// The floating pointer structure.
    pub floating: Range<u32>,
    /// The configuration table.
    pub table: Range<u32>,
}

/// Why the table could not be built.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MpTableError {
    /// The configuration is unusable.
    #[error("bad MP table configuration: {0}")]
    BadConfig(String),
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b))
}

/// Entry types.
const PROCESSOR: u8 = 0;
const BUS: u8 = 1;
const IOAPIC: u8 = 2;
const IO_INTERRUPT: u8 = 3;
const LOCAL_INTERRUPT: u8 = 4;
/// Interrupt types.
const INT: u8 = 0;
const NMI: u8 = 1;
const EXTINT: u8 = 3;

/// The configuration table's bytes for a table at `table_addr`.
fn config_table(cfg: &MpConfig) -> Vec<u8> {
    let mut e: Vec<u8> = Vec::new();
    let mut count = 0u16;
    // Processor: APIC ID 0, enabled bootstrap processor.
    e.extend([PROCESSOR, 0, cfg.lapic_version, 0x03]);
    e.extend(cfg.cpu_signature.to_le_bytes());
    e.extend(cfg.cpu_features.to_le_bytes());
    e.extend([0u8; 8]);
    count += 1;
    for (id, ty) in [(PCI_BUS, b"PCI   "), (ISA_BUS, b"ISA   ")] {
        e.extend([BUS, id]);
        e.extend_from_slice(ty);
        count += 1;
    }
    e.extend([IOAPIC, cfg.ioapic_id, cfg.ioapic_version, 0x01]);
    e.extend(cfg.ioapic_addr.to_le_bytes());
    count += 1;
    let mut intr = |e: &mut Vec<u8>, ty: u8, kind: u8, irq: u8, dest: u8, pin: u8| {
        e.extend([ty, kind, 0, 0, ISA_BUS, irq, dest, pin]);
        count += 1;
    };
    intr(&mut e, IO_INTERRUPT, EXTINT, 0, cfg.ioapic_id, 0);
    for irq in (0..16u8).filter(|&i| i != 2) {
        let pin = if irq == 0 { 2 } else { irq };
        intr(&mut e, IO_INTERRUPT, INT, irq, cfg.ioapic_id, pin);
    }
    intr(&mut e, LOCAL_INTERRUPT, EXTINT, 0, 0xFF, 0);
    intr(&mut e, LOCAL_INTERRUPT, NMI, 0, 0xFF, 1);

    let len = HEADER_LEN + e.len();
    let mut t = Vec::with_capacity(len);
    t.extend_from_slice(b"PCMP");
    t.extend((len as u16).to_le_bytes());
    t.push(4); // specification revision 1.4
    t.push(0); // checksum
    t.extend_from_slice(b"MORPH86 ");
    t.extend_from_slice(b"PC          ");
    t.extend(0u32.to_le_bytes()); // OEM table pointer
    t.extend(0u16.to_le_bytes()); // OEM table size
    t.extend(count.to_le_bytes());
    t.extend(cfg.lapic_addr.to_le_bytes());
    t.extend(0u16.to_le_bytes()); // extended table length
    t.push(0); // extended table checksum
    t.push(0);
    t.extend(e);
    t[7] = checksum(&t).wrapping_neg();
    t
}

fn floating(table_addr: u32) -> [u8; FLOATING_LEN] {
    let mut f = [0u8; FLOATING_LEN];
    f[..4].copy_from_slice(b"_MP_");
    f[4..8].copy_from_slice(&table_addr.to_le_bytes());
    f[8] = 1; // length in 16-byte units
    f[9] = 4; // specification revision 1.4
              // Feature bytes: 1 = 0 (a configuration table is present), 2 = 0
              // (IMCR absent: virtual wire mode).
    f[10] = checksum(&f).wrapping_neg();
    f
}

/// Builds the MP floating pointer and configuration table in `ram`. On
/// error RAM is left untouched.
pub fn build_mptable(ram: &mut [u8], cfg: &MpConfig) -> Result<MpTable, MpTableError> {
    let (images, table) = mptable_images(cfg, ram.len() as u64)?;
    for p in &images {
        p.copy_into(ram);
    }
    Ok(table)
}

/// The floating pointer and the configuration table as the bytes to place
/// in `ram_len` bytes of RAM (the configuration table, then the floating
/// pointer), without writing them, and where they go.
pub fn mptable_images(
    cfg: &MpConfig,
    ram_len: u64,
) -> Result<(Vec<Placed>, MpTable), MpTableError> {
    let table = config_table(cfg);
    let f = u64::from(cfg.floating_addr);
    let t = u64::from(cfg.table_addr);
    let (f_end, t_end) = (f + FLOATING_LEN as u64, t + table.len() as u64);
    let bad = |m: String| Err(MpTableError::BadConfig(m));
    if !f.is_multiple_of(16) {
        return bad(format!(
            "the floating pointer at {f:#x} is not 16-byte aligned"
        ));
    }
    if !t.is_multiple_of(4) {
        return bad(format!(
            "the configuration table at {t:#x} is not 4-byte aligned"
        ));
    }
    if f_end > ram_len || t_end > ram_len {
        return bad(format!(
            "the MP structures at {f:#x} and {t:#x}..{t_end:#x} do not fit in RAM ({ram_len:#x} bytes)"
        ));
    }
    if f < t_end && t < f_end {
        return bad(format!(
            "the floating pointer at {f:#x} overlaps the configuration table at {t:#x}..{t_end:#x}"
        ));
    }
    let images = vec![
        Placed {
            addr: cfg.table_addr,
            bytes: table,
        },
        Placed {
            addr: cfg.floating_addr,
            bytes: floating(cfg.table_addr).to_vec(),
        },
    ];
    let placed = MpTable {
        floating: cfg.floating_addr..f_end as u32,
        table: cfg.table_addr..t_end as u32,
    };
    Ok((images, placed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_and_entries() {
        let mut ram = vec![0u8; 2 << 20];
        let m = build_mptable(&mut ram, &MpConfig::default()).unwrap();
        let f = &ram[m.floating.start as usize..m.floating.end as usize];
        assert_eq!(&f[..4], b"_MP_");
        assert_eq!(checksum(f), 0);
        assert_eq!(
            u32::from_le_bytes(f[4..8].try_into().unwrap()),
            m.table.start
        );
        assert_eq!((f[8], f[9], f[11], f[12]), (1, 4, 0, 0));
        assert!((0xF_0000..0x10_0000).contains(&m.floating.start));
        let t = &ram[m.table.start as usize..m.table.end as usize];
        assert_eq!(&t[..4], b"PCMP");
        let len = u16::from_le_bytes([t[4], t[5]]) as usize;
        assert_eq!(len, t.len());
        assert_eq!(checksum(t), 0);
        assert_eq!(
            u32::from_le_bytes(t[36..40].try_into().unwrap()),
            0xFEE0_0000
        );
        // Walk the entries: their count and sizes match the header.
        let count = u16::from_le_bytes([t[34], t[35]]) as usize;
        let mut at = HEADER_LEN;
        let mut entries = Vec::new();
        while at < len {
            let size = if t[at] == PROCESSOR { 20 } else { 8 };
            entries.push(&t[at..at + size]);
            at += size;
        }
        assert_eq!(at, len);
        assert_eq!(entries.len(), count);
        // Types are in ascending order, as the specification requires.
        assert!(entries.windows(2).all(|w| w[0][0] <= w[1][0]));
        assert_eq!(entries[0][..4], [0, 0, 0x14, 3]);
        assert_eq!(entries[3], &[2, 1, 0x11, 1, 0, 0, 0xC0, 0xFE]);
        let io: Vec<_> = entries.iter().filter(|e| e[0] == IO_INTERRUPT).collect();
        assert_eq!(io.len(), 16);
        assert_eq!(io[0], &[3, EXTINT, 0, 0, ISA_BUS, 0, 1, 0]);
        assert_eq!(io[1], &[3, INT, 0, 0, ISA_BUS, 0, 1, 2]);
        for irq in (1..16u8).filter(|&i| i != 2) {
            assert!(io.iter().any(|e| e[1] == INT && e[5] == irq && e[7] == irq));
        }
        assert!(!io.iter().any(|e| e[1] == INT && e[5] == 2));
        let lint: Vec<_> = entries.iter().filter(|e| e[0] == LOCAL_INTERRUPT).collect();
        assert_eq!(lint.len(), 2);
        assert_eq!((lint[0][1], lint[0][7]), (EXTINT, 0));
        assert_eq!((lint[1][1], lint[1][7]), (NMI, 1));
    }

    #[test]
    fn bad_placement_is_refused() {
        let d = MpConfig::default();
        for c in [
            MpConfig {
                floating_addr: 0xF_0108,
                ..d.clone()
            },
            MpConfig {
                table_addr: 0xF_0112,
                ..d.clone()
            },
            MpConfig {
                table_addr: 0xF_00F0,
                ..d.clone()
            },
            MpConfig {
                floating_addr: 0x20_0000,
                ..d.clone()
            },
        ] {
            let mut ram = vec![0u8; 2 << 20];
            assert!(build_mptable(&mut ram, &c).is_err(), "{c:?}");
            assert!(ram.iter().all(|&b| b == 0));
        }
    }
}
