//! The controller driven through its registers, as a driver would.

use super::*;
use crate::disk_image::ImageMode;
use crate::lines::Wires;
use crate::IoBus;
use std::path::PathBuf;
use std::sync::Arc;

const BM: u16 = 0xC000;
const P: u16 = ATA_PRIMARY_PORT;
const S: u16 = ATA_SECONDARY_PORT;

/// A bus with the controller at the legacy ports and BM at 0xC000, guest
/// memory, and the wires.
struct Rig {
    bus: IoBus,
    id: crate::DeviceId<AtaController>,
    mem: Vec<u8>,
    wires: Arc<Wires>,
    _dir: tempfile::TempDir,
}

/// Sector `n` of the test disks: every byte names its sector and offset.
fn sector_bytes(n: u64, ss: usize) -> Vec<u8> {
    (0..ss)
        .map(|i| (n as usize * 13 + i * 7 + (i >> 8)) as u8)
        .collect()
}

fn make_image(dir: &tempfile::TempDir, name: &str, sectors: u64, ss: usize) -> PathBuf {
    let p = dir.path().join(name);
    let mut v = Vec::new();
    for n in 0..sectors {
        v.extend(sector_bytes(n, ss));
    }
    std::fs::write(&p, v).unwrap();
    p
}

impl Rig {
    /// A disk of `sectors` on the primary master and a CD of `cd` sectors
    /// (if any) on the secondary master.
    fn new(sectors: u64, mode: ImageMode, cd: Option<u64>) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let mut c = AtaController::new();
        if sectors > 0 {
            let p = make_image(&dir, "hd.img", sectors, SECTOR);
            c.attach_disk_spec(0, 0, &ImageSpec::new(&p, mode)).unwrap();
        }
        if let Some(n) = cd {
            let p = make_image(&dir, "cd.iso", n, CD_SECTOR);
            c.attach_cdrom_spec(1, 0, &ImageSpec::new(&p, ImageMode::ReadOnly))
                .unwrap();
        }
        Rig::on_bus(c, dir)
    }

    fn on_bus(mut c: AtaController, dir: tempfile::TempDir) -> Rig {
        let wires = Wires::new();
        c.connect_irqs(wires.irq(14), wires.irq(15));
        let mut bus = IoBus::new();
        let id = bus.register(P, 8, c).unwrap();
        bus.map_ports(id, ATA_PRIMARY_CTL_PORT, 1).unwrap();
        bus.map_ports(id, S, 8).unwrap();
        bus.map_ports(id, ATA_SECONDARY_CTL_PORT, 1).unwrap();
        bus.map_ports(id, BM, BM_PORTS).unwrap();
        Rig {
            bus,
            id,
            mem: vec![0; 1 << 20],
            wires,
            _dir: dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self._dir.path().join(name)
    }

    fn out(&mut self, port: u16, size: u8, v: u32) {
        self.bus.pio_write_dma(port, size, v, &mut self.mem);
    }

    fn inp(&mut self, port: u16, size: u8) -> u32 {
        self.bus.pio_read_dma(port, size, &mut self.mem)
    }

    fn status(&mut self, base: u16) -> u8 {
        self.inp(base + 7, 1) as u8
    }

    fn alt_status(&mut self, base: u16) -> u8 {
        let ctl = if base == P {
            ATA_PRIMARY_CTL_PORT
        } else {
            ATA_SECONDARY_CTL_PORT
        };
        self.inp(ctl, 1) as u8
    }

    fn irq(&self, n: u8) -> bool {
        self.wires.irq_levels() & 1 << n != 0
    }

    /// Selects the drive and loads an LBA28 address and count.
    fn lba28(&mut self, base: u16, unit: u8, lba: u32, count: u8) {
        self.out(base + 6, 1, 0xE0 | u32::from(unit) << 4 | (lba >> 24) & 0xF);
        self.out(base + 2, 1, u32::from(count));
        self.out(base + 3, 1, lba & 0xFF);
        self.out(base + 4, 1, lba >> 8 & 0xFF);
        self.out(base + 5, 1, lba >> 16 & 0xFF);
    }

    /// Loads an LBA48 address and count (high bytes first).
    fn lba48(&mut self, base: u16, lba: u64, count: u16) {
        self.out(base + 6, 1, 0x40);
        for shift in [8u32, 0] {
            self.out(base + 2, 1, u32::from(count) >> shift & 0xFF);
            let l = (lba >> (shift * 3)) as u32;
            self.out(base + 3, 1, l & 0xFF);
            self.out(base + 4, 1, l >> 8 & 0xFF);
            self.out(base + 5, 1, l >> 16 & 0xFF);
        }
    }

    fn cmd(&mut self, base: u16, c: u8) {
        self.out(base + 7, 1, u32::from(c));
    }

    /// Reads `n` bytes of PIO data as 16-bit words.
    fn read_data(&mut self, base: u16, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n / 2 {
            v.extend((self.inp(base, 2) as u16).to_le_bytes());
        }
        v
    }

    fn write_data(&mut self, base: u16, data: &[u8]) {
        for w in data.chunks(2) {
            self.out(base, 2, u32::from(u16::from_le_bytes([w[0], w[1]])));
        }
    }

    fn ctl(&self) -> &AtaController {
        self.bus.get(self.id)
    }

    /// Writes a PRD table at `at` of (address, bytes, last) entries.
    fn prd(&mut self, at: usize, entries: &[(u32, u32, bool)]) {
        for (i, &(addr, len, last)) in entries.iter().enumerate() {
            let e = at + 8 * i;
            self.mem[e..e + 4].copy_from_slice(&addr.to_le_bytes());
            let ctl = (len & 0xFFFF) | if last { 0x8000_0000 } else { 0 };
            self.mem[e + 4..e + 8].copy_from_slice(&ctl.to_le_bytes());
        }
    }

    /// Sets channel `ch`'s PRD pointer and starts the bus master in the
    /// given direction (true: device to memory).
    fn bm_start(&mut self, ch: u16, table: u32, to_memory: bool) {
        self.out(BM + 8 * ch + 4, 4, table);
        let dir = if to_memory { 8 } else { 0 };
        self.out(BM + 8 * ch, 1, dir);
        self.out(BM + 8 * ch, 1, dir | 1);
    }

    fn bm_status(&mut self, ch: u16) -> u8 {
        self.inp(BM + 8 * ch + 2, 1) as u8
    }
}

fn word(id: &[u8], n: usize) -> u16 {
    u16::from_le_bytes([id[2 * n], id[2 * n + 1]])
}

fn ata_string(id: &[u8], from: usize, to: usize) -> String {
    (from..to)
        .flat_map(|n| word(id, n).to_be_bytes())
        .map(char::from)
        .collect::<String>()
        .trim_end()
        .to_string()
}

#[test]
fn identify_describes_the_disk() {
    let mut r = Rig::new(20_000, ImageMode::ReadWrite, None);
    assert_eq!(r.status(P), 0x50, "DRDY|DSC after power-on");
    r.out(P + 6, 1, 0xA0);
    r.cmd(P, 0xEC);
    assert!(r.irq(14));
    assert_eq!(r.alt_status(P) & status::DRQ, status::DRQ);
    assert!(r.irq(14), "alt status leaves the interrupt");
    assert_eq!(r.status(P), 0x58);
    assert!(!r.irq(14), "status acknowledges it");
    let id = r.read_data(P, 512);
    assert_eq!(r.status(P), 0x50, "DRQ drops after the block");
    assert_eq!(word(&id, 0), 0x0040);
    assert_eq!(ata_string(&id, 27, 47), "MORPH86 HARDDISK");
    assert_eq!(ata_string(&id, 10, 20), "MORPH86-HD00");
    assert_eq!((word(&id, 3), word(&id, 6)), (16, 63));
    assert_eq!(word(&id, 1), (20_000 / (16 * 63)) as u16);
    assert_eq!(
        u32::from(word(&id, 60)) | u32::from(word(&id, 61)) << 16,
        20_000
    );
    assert_eq!(word(&id, 100), 20_000);
    assert_ne!(word(&id, 83) & 1 << 10, 0, "LBA48");
    assert_ne!(word(&id, 83) & 1 << 12, 0, "FLUSH CACHE");
    assert_ne!(word(&id, 49) & 1 << 8, 0, "DMA");
    assert_eq!(word(&id, 47) & 0xFF, 16);
}

#[test]
fn identify_reports_lba48_capacity() {
    // A sparse image of 2^28 + 8 sectors (128 GiB): beyond LBA28.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.img");
    let sectors = (1u64 << 28) + 8;
    std::fs::File::create(&p)
        .unwrap()
        .set_len(sectors * 512)
        .unwrap();
    let mut c = AtaController::new();
    c.attach_disk_spec(0, 0, &ImageSpec::new(&p, ImageMode::Snapshot))
        .unwrap();
    let mut r = Rig::on_bus(c, dir);
    r.out(P + 6, 1, 0xA0);
    r.cmd(P, 0xEC);
    let id = r.read_data(P, 512);
    let lba28 = u32::from(word(&id, 60)) | u32::from(word(&id, 61)) << 16;
    assert_eq!(lba28, 0x0FFF_FFFF);
    let lba48: u64 = (0..4)
        .map(|i| u64::from(word(&id, 100 + i)) << (16 * i))
        .sum();
    assert_eq!(lba48, sectors);
    // LBA48 write and read back above the LBA28 limit.
    let top = sectors - 2;
    r.lba48(P, top, 2);
    r.cmd(P, 0x34);
    let data: Vec<u8> = (0..1024).map(|i| (i * 3) as u8).collect();
    r.write_data(P, &data[..512]);
    r.write_data(P, &data[512..]);
    assert_eq!(r.status(P), 0x50);
    r.lba48(P, top, 2);
    r.cmd(P, 0x24);
    assert_eq!(r.read_data(P, 1024), data);
    // Past the end: IDNF.
    r.lba48(P, sectors - 1, 2);
    r.cmd(P, 0x24);
    assert_eq!(r.status(P), 0x51);
    assert_eq!(r.inp(P + 1, 1) as u8, error::IDNF);
    // The file was never written (snapshot).
    assert_eq!(std::fs::metadata(&p).unwrap().len(), sectors * 512);
}

#[test]
fn pio_read_write_round_trip_and_multi_sector() {
    let mut r = Rig::new(64, ImageMode::ReadWrite, None);
    // Read 3 sectors from 5: one interrupt per sector.
    r.lba28(P, 0, 5, 3);
    r.cmd(P, 0x20);
    for n in 5..8 {
        assert!(r.irq(14), "interrupt for sector {n}");
        assert_eq!(r.status(P) & 0x89, 0x08);
        assert_eq!(r.read_data(P, 512), sector_bytes(n, 512));
    }
    assert!(!r.irq(14), "no interrupt after the last data-in block");
    assert_eq!(r.status(P), 0x50);
    // Task file holds the last sector read.
    assert_eq!(r.inp(P + 3, 1), 7);
    // Write 2 sectors at 10 with 32-bit data accesses.
    r.lba28(P, 0, 10, 2);
    r.cmd(P, 0x30);
    assert!(
        !r.irq(14),
        "the first block is asked for without an interrupt"
    );
    assert_eq!(r.status(P) & 0x08, 0x08);
    let data: Vec<u8> = (0..1024).map(|i| (i % 251) as u8).collect();
    for d in data.chunks(4) {
        r.out(P, 4, u32::from_le_bytes(d.try_into().unwrap()));
    }
    assert!(r.irq(14));
    assert_eq!(r.status(P), 0x50);
    r.lba28(P, 0, 9, 4);
    r.cmd(P, 0x20);
    let mut got = Vec::new();
    for _ in 0..4 {
        r.status(P);
        got.extend(r.read_data(P, 512));
    }
    assert_eq!(got[..512], sector_bytes(9, 512)[..]);
    assert_eq!(got[512..1536], data[..]);
    assert_eq!(got[1536..], sector_bytes(12, 512)[..]);
}

#[test]
fn read_write_multiple() {
    let mut r = Rig::new(64, ImageMode::ReadWrite, None);
    r.lba28(P, 0, 0, 10);
    r.cmd(P, 0xC4);
    assert_eq!(
        r.status(P),
        0x51,
        "READ MULTIPLE before SET MULTIPLE aborts"
    );
    assert_eq!(r.inp(P + 1, 1) as u8, error::ABRT);
    r.out(P + 2, 1, 3);
    r.cmd(P, 0xC6);
    assert_eq!(r.status(P), 0x51, "3 is not a power of two");
    r.out(P + 2, 1, 4);
    r.cmd(P, 0xC6);
    assert_eq!(r.status(P), 0x50);
    // 10 sectors in blocks of 4, 4, 2: three interrupts.
    r.lba28(P, 0, 20, 10);
    r.cmd(P, 0xC4);
    let mut blocks = 0;
    let mut got = Vec::new();
    while r.irq(14) {
        assert_eq!(r.status(P) & 0x08, 0x08);
        blocks += 1;
        let n = if blocks == 3 { 2 } else { 4 };
        got.extend(r.read_data(P, n * 512));
    }
    assert_eq!(blocks, 3);
    let want: Vec<u8> = (20..30).flat_map(|n| sector_bytes(n, 512)).collect();
    assert_eq!(got, want);
    // WRITE MULTIPLE of 6 sectors: blocks of 4 and 2.
    r.lba28(P, 0, 40, 6);
    r.cmd(P, 0xC5);
    let data: Vec<u8> = (0..6 * 512).map(|i| (i / 3) as u8).collect();
    r.write_data(P, &data[..2048]);
    assert!(r.irq(14));
    assert_eq!(r.status(P) & 0x08, 0x08);
    r.write_data(P, &data[2048..]);
    assert_eq!(r.status(P), 0x50);
    r.lba28(P, 0, 40, 6);
    r.cmd(P, 0xC4);
    let mut got = Vec::new();
    while r.irq(14) {
        r.status(P);
        let n = if got.is_empty() { 2048 } else { 1024 };
        got.extend(r.read_data(P, n));
    }
    assert_eq!(got, data);
    // IDENTIFY shows the setting.
    r.cmd(P, 0xEC);
    let id = r.read_data(P, 512);
    assert_eq!(word(&id, 59), 0x0104);
}

#[test]
fn chs_addressing_follows_initialize_device_parameters() {
    let mut r = Rig::new(2000, ImageMode::ReadWrite, None);
    // 4 heads, 10 sectors a track.
    r.out(P + 6, 1, 0xA0 | 3);
    r.out(P + 2, 1, 10);
    r.cmd(P, 0x91);
    assert_eq!(r.status(P), 0x50);
    // C/H/S 2/1/5 = (2 * 4 + 1) * 10 + 4 = 94.
    r.out(P + 6, 1, 0xA0 | 1);
    r.out(P + 2, 1, 1);
    r.out(P + 3, 1, 5);
    r.out(P + 4, 1, 2);
    r.out(P + 5, 1, 0);
    r.cmd(P, 0x20);
    r.status(P);
    assert_eq!(r.read_data(P, 512), sector_bytes(94, 512));
    // Sector 0 and a head beyond the geometry do not exist.
    r.out(P + 3, 1, 0);
    r.cmd(P, 0x20);
    assert_eq!((r.status(P), r.inp(P + 1, 1) as u8), (0x51, error::IDNF));
    r.out(P + 6, 1, 0xA0 | 7);
    r.out(P + 3, 1, 1);
    r.cmd(P, 0x20);
    assert_eq!(r.status(P), 0x51);
}

#[test]
fn errors_out_of_range_read_only_and_unknown_commands() {
    let mut r = Rig::new(16, ImageMode::ReadOnly, None);
    r.lba28(P, 0, 15, 2);
    r.cmd(P, 0x20);
    assert!(r.irq(14), "errors interrupt");
    assert_eq!(r.status(P), 0x51);
    assert_eq!(r.inp(P + 1, 1) as u8, error::IDNF);
    // A read-only image: writes abort, by PIO and DMA, and the file stays.
    let before = std::fs::read(r.path("hd.img")).unwrap();
    r.lba28(P, 0, 1, 1);
    r.cmd(P, 0x30);
    assert_eq!((r.status(P), r.inp(P + 1, 1) as u8), (0x51, error::ABRT));
    r.write_data(P, &[0xAA; 512]);
    r.lba28(P, 0, 1, 1);
    r.cmd(P, 0xCA);
    assert_eq!(r.status(P), 0x51);
    assert_eq!(std::fs::read(r.path("hd.img")).unwrap(), before);
    // Unknown command and SET FEATURES subcommand.
    r.cmd(P, 0xFF);
    assert_eq!((r.status(P), r.inp(P + 1, 1) as u8), (0x51, error::ABRT));
    r.out(P + 1, 1, 0x77);
    r.cmd(P, 0xEF);
    assert_eq!(r.status(P), 0x51);
    // And the drive still works.
    r.lba28(P, 0, 3, 1);
    r.cmd(P, 0x20);
    assert_eq!(r.status(P), 0x58);
    assert_eq!(r.read_data(P, 512), sector_bytes(3, 512));
}

#[test]
fn absent_drives_read_zero_and_ignore_commands() {
    let mut r = Rig::new(16, ImageMode::ReadWrite, None);
    // The primary slave is absent.
    r.out(P + 6, 1, 0xB0);
    r.out(P + 2, 1, 0x55);
    assert_eq!(r.inp(P + 2, 1), 0);
    assert_eq!(r.status(P), 0);
    r.cmd(P, 0xEC);
    assert!(!r.irq(14));
    assert_eq!(r.status(P), 0);
    // The secondary channel has no drives at all.
    assert_eq!(r.status(S), 0);
    r.cmd(S, 0xEC);
    assert!(!r.irq(15));
    // The master latched the same register write.
    r.out(P + 6, 1, 0xA0);
    assert_eq!(r.inp(P + 2, 1), 0x55);
}

#[test]
fn interrupts_nien_and_soft_reset() {
    let mut r = Rig::new(16, ImageMode::ReadWrite, Some(4));
    // nIEN masks the line but the interrupt stays pending.
    r.out(ATA_PRIMARY_CTL_PORT, 1, 0x02);
    r.cmd(P, 0xE7);
    assert!(!r.irq(14));
    r.out(ATA_PRIMARY_CTL_PORT, 1, 0x00);
    assert!(r.irq(14), "unmasking shows the pending interrupt");
    r.status(P);
    assert!(!r.irq(14));
    // HOB reads the previous register values.
    r.out(P + 3, 1, 0x11);
    r.out(P + 3, 1, 0x22);
    r.out(ATA_PRIMARY_CTL_PORT, 1, 0x80);
    assert_eq!(r.inp(P + 3, 1), 0x11);
    r.out(ATA_PRIMARY_CTL_PORT, 1, 0x00);
    assert_eq!(r.inp(P + 3, 1), 0x22);
    // SRST: busy while set, then the signatures.
    r.out(S + 6, 1, 0xA0);
    r.out(ATA_SECONDARY_CTL_PORT, 1, 0x04);
    assert_eq!(r.alt_status(S), status::BSY);
    r.out(ATA_SECONDARY_CTL_PORT, 1, 0x00);
    assert_eq!(r.alt_status(S), 0, "ATAPI: DRDY clear after reset");
    let sig: Vec<u32> = (2..6).map(|o| r.inp(S + o, 1)).collect();
    assert_eq!(sig, [1, 1, 0x14, 0xEB]);
    assert_eq!(r.inp(S + 1, 1), 1, "diagnostics passed");
    r.out(ATA_PRIMARY_CTL_PORT, 1, 0x04);
    r.out(ATA_PRIMARY_CTL_PORT, 1, 0x00);
    let sig: Vec<u32> = (2..6).map(|o| r.inp(P + o, 1)).collect();
    assert_eq!(sig, [1, 1, 0, 0]);
    assert_eq!(r.status(P), 0x50);
}

#[test]
fn dma_read_and_write_through_a_prd_table() {
    let mut r = Rig::new(64, ImageMode::ReadWrite, None);
    // 4 sectors at 8 into two regions: 1536 bytes at 0x10000, 512 at 0x20000.
    r.prd(0x1000, &[(0x10000, 1536, false), (0x20000, 512, true)]);
    r.lba28(P, 0, 8, 4);
    r.cmd(P, 0xC8);
    assert!(!r.irq(14), "waits for the bus master");
    assert_eq!(r.bm_status(0) & 1, 0);
    r.bm_start(0, 0x1000, true);
    assert!(r.irq(14));
    let bms = r.bm_status(0);
    assert_eq!(
        bms & 0x07,
        0x04,
        "interrupt set, active clear, no error: {bms:#x}"
    );
    let want: Vec<u8> = (8..12).flat_map(|n| sector_bytes(n, 512)).collect();
    assert_eq!(r.mem[0x10000..0x10000 + 1536], want[..1536]);
    assert_eq!(r.mem[0x20000..0x20000 + 512], want[1536..]);
    // The driver's end of command: stop, clear the bits, read status.
    r.out(BM, 1, 0x08);
    r.out(BM + 2, 1, 0x06);
    assert_eq!(r.bm_status(0) & 0x07, 0);
    assert_eq!(r.status(P), 0x50);
    assert!(!r.irq(14));
    // DMA write with the bus master started first: memory to sectors 30-31.
    for (i, b) in r.mem[0x30000..0x30400].iter_mut().enumerate() {
        *b = (i * 5) as u8;
    }
    let data = r.mem[0x30000..0x30400].to_vec();
    r.prd(0x1000, &[(0x30000, 1024, true)]);
    r.bm_start(0, 0x1000, false);
    r.lba28(P, 0, 30, 2);
    r.cmd(P, 0xCA);
    assert!(r.irq(14));
    assert_eq!(r.bm_status(0) & 0x07, 0x04);
    r.out(BM, 1, 0);
    assert_eq!(r.status(P), 0x50);
    let file = std::fs::read(r.path("hd.img")).unwrap();
    assert_eq!(file[30 * 512..32 * 512], data[..]);
    // LBA48 READ DMA EXT with a table larger than the transfer: active stays.
    r.prd(0x1000, &[(0x40000, 0, true)]); // 64 KiB
    r.lba48(P, 30, 2);
    r.cmd(P, 0x25);
    r.bm_start(0, 0x1000, true);
    assert_eq!(r.bm_status(0) & 0x07, 0x05);
    assert_eq!(r.mem[0x40000..0x40400], data[..]);
    r.out(BM, 1, 0);
    assert_eq!(r.bm_status(0) & 0x01, 0, "stopping clears active");
}

#[test]
fn dma_faults_end_the_command() {
    let mut r = Rig::new(64, ImageMode::ReadWrite, None);
    // A table shorter than the transfer.
    r.prd(0x1000, &[(0x10000, 512, true)]);
    r.lba28(P, 0, 0, 2);
    r.cmd(P, 0xC8);
    r.bm_start(0, 0x1000, true);
    assert!(r.irq(14));
    assert_eq!(r.bm_status(0) & 0x07, 0x04);
    assert_eq!((r.status(P), r.inp(P + 1, 1) as u8), (0x51, error::ABRT));
    r.out(BM, 1, 0);
    r.out(BM + 2, 1, 6);
    // A region outside memory: the bus master's error bit.
    r.prd(0x1000, &[(0xFFF0_0000, 1024, true)]);
    r.lba28(P, 0, 0, 2);
    r.cmd(P, 0xC8);
    r.bm_start(0, 0x1000, true);
    assert_eq!(r.bm_status(0) & 0x07, 0x06);
    assert_eq!(r.status(P), 0x51);
    r.out(BM, 1, 0);
    r.out(BM + 2, 1, 6);
    // A table pointer outside memory.
    r.lba28(P, 0, 0, 1);
    r.cmd(P, 0xC8);
    r.bm_start(0, 0x7FFF_0000, true);
    assert_eq!(r.bm_status(0) & 0x07, 0x06);
    // And the drive still works.
    r.out(BM, 1, 0);
    r.prd(0x1000, &[(0x10000, 512, true)]);
    r.lba28(P, 0, 3, 1);
    r.cmd(P, 0xC8);
    r.bm_start(0, 0x1000, true);
    assert_eq!(r.status(P), 0x50);
    assert_eq!(r.mem[0x10000..0x10200], sector_bytes(3, 512)[..]);
}

#[test]
fn bm_registers_read_back() {
    let mut r = Rig::new(1, ImageMode::ReadWrite, None);
    r.out(BM + 4, 4, 0x1234_5677);
    assert_eq!(r.inp(BM + 4, 4), 0x1234_5674, "dword aligned");
    r.out(BM + 2, 1, 0x60);
    assert_eq!(r.bm_status(0), 0x60, "drive DMA capable bits");
    r.out(BM + 8, 1, 0xFF);
    assert_eq!(r.inp(BM + 8, 1), 0x09);
    assert_eq!(r.bm_status(1) & 1, 1, "started: active");
    assert_eq!(r.inp(BM + 1, 1), 0);
}

/// Sends a 12-byte packet to the secondary master.
fn packet(r: &mut Rig, cdb: &[u8], limit: u16, dma: bool) {
    r.out(S + 6, 1, 0xA0);
    r.out(S + 1, 1, u32::from(dma));
    r.out(S + 4, 1, u32::from(limit & 0xFF));
    r.out(S + 5, 1, u32::from(limit >> 8));
    r.cmd(S, 0xA0);
    assert_eq!(r.alt_status(S) & 0x88, 0x08, "DRQ for the packet");
    assert_eq!(r.inp(S + 2, 1), 1, "reason: command");
    let mut p = [0u8; 12];
    p[..cdb.len()].copy_from_slice(cdb);
    r.write_data(S, &p);
}

/// Reads an ATAPI PIO reply: (data, blocks).
fn pio_reply(r: &mut Rig) -> (Vec<u8>, usize) {
    let mut v = Vec::new();
    let mut blocks = 0;
    loop {
        assert!(r.irq(15));
        let st = r.status(S);
        if st & 0x08 == 0 {
            return (v, blocks);
        }
        assert_eq!(r.inp(S + 2, 1), 2, "reason: data in");
        let n = (r.inp(S + 4, 1) | r.inp(S + 5, 1) << 8) as usize;
        v.extend(r.read_data(S, n));
        blocks += 1;
    }
}

/// REQUEST SENSE: (key, asc, ascq).
fn sense(r: &mut Rig) -> (u8, u8, u8) {
    packet(r, &[0x03, 0, 0, 0, 18], 0xFFFE, false);
    let (v, _) = pio_reply(r);
    assert_eq!(v.len(), 18);
    (v[2], v[12], v[13])
}

#[test]
fn atapi_identify_and_signature() {
    let mut r = Rig::new(0, ImageMode::ReadWrite, Some(10));
    r.out(S + 6, 1, 0xA0);
    r.cmd(S, 0xEC);
    assert_eq!(
        r.status(S),
        0x51,
        "IDENTIFY DEVICE aborts on a packet device"
    );
    assert_eq!((r.inp(S + 4, 1), r.inp(S + 5, 1)), (0x14, 0xEB));
    r.cmd(S, 0xA1);
    assert!(r.irq(15));
    assert_eq!(r.status(S) & 0x08, 0x08);
    let id = r.read_data(S, 512);
    assert_eq!(word(&id, 0), 0x85C0);
    assert_eq!(ata_string(&id, 27, 47), "MORPH86 CD-ROM");
    assert_ne!(word(&id, 49) & 1 << 8, 0);
}

#[test]
fn atapi_inquiry_capacity_toc_and_read10() {
    let mut r = Rig::new(0, ImageMode::ReadWrite, Some(40));
    packet(&mut r, &[0x00], 0, false);
    assert!(r.irq(15));
    assert_eq!(r.status(S), 0x50);
    assert_eq!(r.inp(S + 2, 1), 3, "reason: status");
    packet(&mut r, &[0x12, 0, 0, 0, 36], 0xFFFE, false);
    let (inq, _) = pio_reply(&mut r);
    assert_eq!(inq.len(), 36);
    assert_eq!((inq[0], inq[1]), (5, 0x80));
    assert_eq!(&inq[8..16], b"MORPH86 ");
    packet(&mut r, &[0x25], 8, false);
    let (cap, _) = pio_reply(&mut r);
    assert_eq!(cap, [0, 0, 0, 39, 0, 0, 8, 0]);
    packet(&mut r, &[0x43, 0, 0, 0, 0, 0, 0, 0, 100], 0xFFFE, false);
    let (toc, _) = pio_reply(&mut r);
    assert_eq!(toc.len(), 20);
    assert_eq!(&toc[..4], &[0, 18, 1, 1]);
    assert_eq!(&toc[4..8], &[0, 0x14, 1, 0]);
    assert_eq!(&toc[14..20], &[0xAA, 0, 0, 0, 0, 40]);
    // READ(10) of 3 sectors from 7 with a 5000-byte limit: blocks of
    // 5000, then 1144, each with its byte count.
    packet(&mut r, &[0x28, 0, 0, 0, 0, 7, 0, 0, 3], 5000, false);
    let (data, blocks) = pio_reply(&mut r);
    let want: Vec<u8> = (7..10).flat_map(|n| sector_bytes(n, CD_SECTOR)).collect();
    assert_eq!(data, want);
    assert_eq!(blocks, 2);
    assert_eq!(r.inp(S + 2, 1), 3);
    // READ(12) of 2 sectors with the whole-limit default.
    packet(&mut r, &[0xA8, 0, 0, 0, 0, 38, 0, 0, 0, 2], 0xFFFF, false);
    let (data, blocks) = pio_reply(&mut r);
    assert_eq!(blocks, 1);
    assert_eq!(data.len(), 2 * CD_SECTOR);
    assert_eq!(data[CD_SECTOR..], sector_bytes(39, CD_SECTOR)[..]);
    // MODE SENSE(10) of the capabilities page; GET CONFIGURATION; events.
    packet(&mut r, &[0x5A, 0, 0x2A, 0, 0, 0, 0, 0, 64], 0xFFFE, false);
    let (ms, _) = pio_reply(&mut r);
    assert_eq!((ms.len(), ms[8], ms[9]), (30, 0x2A, 0x14));
    packet(&mut r, &[0x46, 0, 0, 0, 0, 0, 0, 0, 64], 0xFFFE, false);
    let (cfg, _) = pio_reply(&mut r);
    assert_eq!(&cfg[6..8], &[0, 8], "current profile: CD-ROM");
    packet(&mut r, &[0x4A, 1, 0, 0, 0x10, 0, 0, 0, 8], 0xFFFE, false);
    let (ev, _) = pio_reply(&mut r);
    assert_eq!(ev, [0, 6, 4, 0x10, 0, 2, 0, 0]);
    packet(&mut r, &[0x51, 0, 0, 0, 0, 0, 0, 0, 34], 0xFFFE, false);
    let (di, _) = pio_reply(&mut r);
    assert_eq!(&di[..7], &[0, 32, 0x0E, 1, 1, 1, 1]);
    packet(&mut r, &[0xBD, 0, 0, 0, 0, 0, 0, 0, 0, 8], 0xFFFE, false);
    assert_eq!(pio_reply(&mut r).0, [0; 8]);
}

/// The controller's state is plain data: it goes through serde and back
/// (the images are wiring, not state, and stay behind).
#[test]
fn state_serializes() {
    let mut r = Rig::new(16, ImageMode::ReadWrite, Some(4));
    r.lba28(P, 0, 2, 2);
    r.cmd(P, 0x20);
    let json = serde_json::to_string(r.ctl()).unwrap();
    let back: AtaController = serde_json::from_str(&json).unwrap();
    assert_eq!(
        back.channels[0].drives[0].tf,
        r.ctl().channels[0].drives[0].tf
    );
    assert_eq!(back.channels[0].drives[0].buf, sector_bytes(2, 512));
    assert!(back.image(0, 0).is_none());
}

#[test]
fn atapi_errors_and_sense() {
    let mut r = Rig::new(0, ImageMode::ReadWrite, Some(8));
    packet(&mut r, &[0x28, 0, 0, 0, 0, 7, 0, 0, 2], 0xFFFE, false);
    assert!(r.irq(15));
    assert_eq!(r.status(S), 0x51);
    assert_eq!(r.inp(S + 1, 1) >> 4, 5, "ILLEGAL REQUEST");
    assert_eq!(sense(&mut r), (5, 0x21, 0));
    assert_eq!(sense(&mut r), (0, 0, 0), "sense is cleared once read");
    packet(&mut r, &[0xF1], 0xFFFE, false);
    assert_eq!(r.status(S), 0x51);
    assert_eq!(sense(&mut r), (5, 0x20, 0));
    // Lock, eject refused; unlock, eject: no medium; load: unit attention.
    packet(&mut r, &[0x1E, 0, 0, 0, 1], 0, false);
    assert_eq!(r.status(S), 0x50);
    packet(&mut r, &[0x1B, 0, 0, 0, 2], 0, false);
    assert_eq!(r.status(S), 0x51);
    assert_eq!(sense(&mut r), (5, 0x53, 2));
    packet(&mut r, &[0x1E, 0, 0, 0, 0], 0, false);
    r.status(S);
    packet(&mut r, &[0x1B, 0, 0, 0, 2], 0, false);
    assert_eq!(r.status(S), 0x50);
    packet(&mut r, &[0x00], 0, false);
    assert_eq!(r.status(S), 0x51);
    assert_eq!(sense(&mut r), (2, 0x3A, 2), "no medium, tray open");
    packet(&mut r, &[0x25], 8, false);
    assert_eq!(r.status(S), 0x51);
    packet(&mut r, &[0x1B, 0, 0, 0, 3], 0, false);
    assert_eq!(r.status(S), 0x50);
    packet(&mut r, &[0x00], 0, false);
    assert_eq!(r.status(S), 0x51);
    assert_eq!(sense(&mut r), (6, 0x28, 0));
    packet(&mut r, &[0x00], 0, false);
    assert_eq!(r.status(S), 0x50);
}

#[test]
fn atapi_drive_without_a_disc() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = AtaController::new();
    c.attach_cdrom(1, 0, None).unwrap();
    let mut r = Rig::on_bus(c, dir);
    packet(&mut r, &[0x00], 0, false);
    assert_eq!(r.status(S), 0x51);
    assert_eq!(sense(&mut r), (2, 0x3A, 1));
    packet(&mut r, &[0x28, 0, 0, 0, 0, 0, 0, 0, 1], 0xFFFE, false);
    assert_eq!(r.status(S), 0x51);
    packet(&mut r, &[0x4A, 1, 0, 0, 0x10, 0, 0, 0, 8], 0xFFFE, false);
    let (ev, _) = pio_reply(&mut r);
    assert_eq!(ev[5], 0, "no medium");
}

#[test]
fn atapi_dma_read() {
    let mut r = Rig::new(0, ImageMode::ReadWrite, Some(16));
    r.prd(0x2000, &[(0x10000, 0x1000, false), (0x50000, 0x800, true)]);
    r.bm_start(1, 0x2000, true);
    packet(&mut r, &[0x28, 0, 0, 0, 0, 4, 0, 0, 3], 0, true);
    assert!(r.irq(15));
    assert_eq!(r.bm_status(1) & 0x07, 0x04);
    assert_eq!(r.status(S), 0x50);
    assert_eq!(r.inp(S + 2, 1), 3);
    assert_eq!(
        r.mem[0x10000..0x11000],
        sector_bytes(4, 2048)
            .iter()
            .chain(&sector_bytes(5, 2048))
            .copied()
            .collect::<Vec<u8>>()[..]
    );
    assert_eq!(r.mem[0x50000..0x50800], sector_bytes(6, 2048)[..]);
    r.out(BM + 8, 1, 0);
    r.out(BM + 10, 1, 6);
    // A DMA reply of INQUIRY, the bus master started after the packet.
    packet(&mut r, &[0x12, 0, 0, 0, 36], 0, true);
    assert!(!r.irq(15));
    r.prd(0x2000, &[(0x60000, 36, true)]);
    r.bm_start(1, 0x2000, true);
    assert!(r.irq(15));
    assert_eq!(&r.mem[0x60008..0x60010], b"MORPH86 ");
}

#[test]
fn flush_cache_and_durability() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_image(&dir, "hd.img", 32, SECTOR);
    let mut c = AtaController::new();
    c.attach_disk_spec(0, 0, &ImageSpec::new(&p, ImageMode::ReadWrite))
        .unwrap();
    let mut r = Rig::on_bus(c, dir);
    let data: Vec<u8> = (0..2048).map(|i| (i * 7 + 1) as u8).collect();
    r.lba28(P, 0, 4, 4);
    r.cmd(P, 0x30);
    for s in data.chunks(512) {
        r.write_data(P, s);
    }
    r.cmd(P, 0xE7);
    assert_eq!(r.status(P), 0x50);
    r.lba28(P, 0, 20, 1);
    r.cmd(P, 0x30);
    r.write_data(P, &data[..512]);
    // Dropping the controller (the end of a run) leaves every write in the file.
    let Rig { bus, _dir, .. } = r;
    drop(bus);
    let file = std::fs::read(&p).unwrap();
    assert_eq!(file[4 * 512..8 * 512], data[..]);
    assert_eq!(file[20 * 512..21 * 512], data[..512]);
    assert_eq!(file[8 * 512..9 * 512], sector_bytes(8, 512)[..]);
}

#[test]
fn machine_reset_keeps_media() {
    let mut r = Rig::new(8, ImageMode::ReadWrite, Some(2));
    r.out(P + 2, 1, 4);
    r.cmd(P, 0xC6);
    r.bus.reset();
    assert_eq!(r.status(P), 0x50);
    assert!(r.ctl().image(0, 0).is_some());
    assert!(r.ctl().image(1, 0).is_some());
    r.cmd(P, 0xEC);
    let id = r.read_data(P, 512);
    assert_eq!(word(&id, 59), 0, "multiple mode off again");
}

/// Seeded random traffic on every port of the controller, with DMA
/// started at random into memory and outside it, never panics, and the
/// drives still answer afterwards.
#[test]
fn random_traffic_never_panics() {
    let mut r = Rig::new(64, ImageMode::Snapshot, Some(8));
    let mut x: u64 = 0x9E37_1DE5_7A7E_0F0F_u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let ports: Vec<u16> = (P..P + 8)
        .chain(S..S + 8)
        .chain([ATA_PRIMARY_CTL_PORT, ATA_SECONDARY_CTL_PORT])
        .chain(BM..BM + 16)
        .collect();
    let cmds = [
        0x20, 0x24, 0x30, 0x34, 0xC4, 0xC5, 0xC6, 0xC8, 0x25, 0xCA, 0x35, 0xEC, 0xA0, 0xA1, 0xE7,
        0xEF, 0x91, 0x08, 0x90, 0x40,
    ];
    let ops = [
        0x00u8, 0x03, 0x12, 0x1A, 0x1B, 0x1E, 0x25, 0x28, 0x43, 0x46, 0x4A, 0x5A, 0xA8,
    ];
    for _ in 0..200_000 {
        let v = next();
        let port = ports[(v >> 8) as usize % ports.len()];
        let size = [1u8, 2, 4][(v >> 20) as usize % 3];
        match v % 8 {
            0 => {
                let base = if v >> 30 & 1 == 0 { P } else { S };
                r.cmd(base, cmds[(v >> 32) as usize % cmds.len()]);
            }
            1 => {
                // A plausible packet byte stream.
                let op = ops[(v >> 32) as usize % ops.len()];
                r.out(S, 2, u32::from(op) | (v >> 40) as u32 & 0xFF00);
            }
            2 | 3 => {
                let _ = r.inp(port, size);
            }
            _ => r.out(port, size, (v >> 32) as u32),
        }
        if v >> 60 == 0 {
            // A table somewhere, a start.
            let t = ((v >> 24) as usize % (r.mem.len() - 64)) & !3;
            let e = (next(), next());
            r.mem[t..t + 8].copy_from_slice(&(e.0 as u32).to_le_bytes().repeat(2));
            r.mem[t + 8..t + 16]
                .copy_from_slice(&(e.1 as u32 | 0x8000_0000).to_le_bytes().repeat(2)[..8]);
            r.bm_start((v >> 2) as u16 & 1, t as u32, v & 2 != 0);
        }
    }
    // Reset both channels and check that the disk answers.
    for c in [ATA_PRIMARY_CTL_PORT, ATA_SECONDARY_CTL_PORT] {
        r.out(c, 1, 4);
        r.out(c, 1, 0);
    }
    r.out(BM, 1, 0);
    r.lba28(P, 0, 63, 1);
    r.cmd(P, 0x20);
    assert_eq!(r.status(P) & 0x89, 0x08);
    assert_eq!(r.read_data(P, 512).len(), 512);
    r.out(S + 6, 1, 0xA0);
    r.cmd(S, 0xA1);
    assert_eq!(r.status(S) & 0x89, 0x08);
}
