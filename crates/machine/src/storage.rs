//! The board's storage: the PIIX3 IDE controller with the drives the
//! configuration names (`--hda`, `--hdb`, `--cdrom`), its bus-master
//! window following the IDE function's BAR4; the 8237 DMA pair with the
//! 82077AA floppy controller (`--fda`, `--fdb`); the CMOS bytes that
//! describe the drives; and flushing the images when a run ends.
//!
//! The drive positions are QEMU's: `hda` primary master, `hdb` primary
//! slave, `cdrom` secondary master (QEMU's `hdc`). The CMOS bytes are the
//! ones QEMU's `pc` machine writes: floppy types at 0x10, the equipment
//! byte's floppy bits at 0x14, and the hard disks as user type 47 (0x12,
//! 0x19, 0x1A) with their geometry at 0x1B and 0x24.

use crate::board::Board;
use crate::machine::MachineError;
use morph86_devices::ata::{
    AtaController, AttachError, ATA_CMD_PORTS, ATA_PRIMARY_CTL_PORT, ATA_PRIMARY_IRQ,
    ATA_PRIMARY_PORT, ATA_SECONDARY_CTL_PORT, ATA_SECONDARY_IRQ, ATA_SECONDARY_PORT, BM_PORTS,
};
use morph86_devices::fdc::{FloppyGeometry, FDC_IRQ};
use morph86_devices::{DeviceId, Fdc, ImageSpec, IoBus, IsaDma, Rtc146818, TimeSource, Wires};
use std::sync::Arc;

/// The drives attached to the machine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drives {
    /// Primary master hard disk (`--hda`).
    pub hda: Option<ImageSpec>,
    /// Primary slave hard disk (`--hdb`).
    pub hdb: Option<ImageSpec>,
    /// Secondary master CD-ROM (`--cdrom`); always read-only.
    pub cdrom: Option<ImageSpec>,
    /// First floppy drive (`--fda`).
    pub fda: Option<ImageSpec>,
    /// Second floppy drive (`--fdb`).
    pub fdb: Option<ImageSpec>,
}

/// The storage devices on the bus.
pub struct Storage {
    ata: DeviceId<AtaController>,
    isa_dma: DeviceId<IsaDma>,
    /// Where the bus-master window is mapped now.
    bm_window: Option<u16>,
    /// CMOS bytes describing the drives: (index, value).
    cmos: Vec<(u8, u8)>,
}

/// The CMOS floppy type of a format (0: none).
fn floppy_type(g: Option<FloppyGeometry>) -> u8 {
    match g.map(|g| (g.tracks, g.sectors)) {
        None => 0,
        Some((40, _)) => 1, // 360K drive
        Some((_, 15)) => 2, // 1.2M
        Some((_, 9)) => 3,  // 720K
        Some((_, 36)) => 5, // 2.88M
        Some(_) => 4,       // 1.44M
    }
}

/// The CMOS description of a hard disk of `sectors` at `base` (0x1B for
/// the first, 0x24 for the second): QEMU's layout of a type 47 entry.
fn hd_cmos(sectors: u64, base: u8) -> Vec<(u8, u8)> {
    let (heads, spt) = (16u64, 63u64);
    let cyl = (sectors / (heads * spt)).clamp(1, 16383) as u16;
    vec![
        (base, cyl as u8),
        (base + 1, (cyl >> 8) as u8),
        (base + 2, heads as u8),
        (base + 3, 0xFF), // write precompensation: none
        (base + 4, 0xFF),
        (base + 5, 0xC0 | u8::from(heads > 8) << 3),
        (base + 6, cyl as u8), // landing zone
        (base + 7, (cyl >> 8) as u8),
        (base + 8, spt as u8),
    ]
}

impl Storage {
    /// Opens the images and fits the IDE controller (always present, as
    /// the PCI function is) at the legacy ports, IRQ 14 and 15, and the
    /// 8237 pair with the floppy controller (IRQ 6, DMA channel 2). The
    /// bus-master window is mapped when the BAR is programmed.
    pub fn fit(
        io: &mut IoBus,
        wires: &Arc<Wires>,
        time: &TimeSource,
        drives: &Drives,
    ) -> Result<Storage, MachineError> {
        let mut ata = AtaController::new();
        ata.connect_irqs(wires.irq(ATA_PRIMARY_IRQ), wires.irq(ATA_SECONDARY_IRQ));
        if let Some(s) = &drives.hda {
            ata.attach_disk_spec(0, 0, s)?;
        }
        if let Some(s) = &drives.hdb {
            ata.attach_disk_spec(0, 1, s)?;
        }
        if let Some(s) = &drives.cdrom {
            ata.attach_cdrom_spec(1, 0, s)?;
        }
        let mut cmos = Vec::new();
        let mut hd_type = 0u8;
        for (unit, nibble, base) in [(0, 0xF0, 0x1B), (1, 0x0F, 0x24)] {
            if let Some(img) = ata.image(0, unit) {
                hd_type |= nibble;
                cmos.push((0x19 + unit as u8, 47));
                cmos.extend(hd_cmos(img.sectors(), base));
            }
        }
        cmos.push((0x12, hd_type));
        let mut fdc = Fdc::new();
        fdc.connect_irq(wires.irq(FDC_IRQ));
        fdc.connect_time(time.clone());
        for (n, spec) in [&drives.fda, &drives.fdb].into_iter().enumerate() {
            if let Some(s) = spec {
                fdc.insert_spec(n, s).map_err(AttachError::from)?;
            }
        }
        let types = [0, 1].map(|n| floppy_type(fdc.drives[n].geometry));
        cmos.push((0x10, types[0] << 4 | types[1]));
        let floppies = types.iter().filter(|&&t| t != 0).count() as u8;
        cmos.push((
            0x14,
            if floppies > 0 {
                (floppies - 1) << 6 | 1
            } else {
                0
            },
        ));
        let id = io.register(ATA_PRIMARY_PORT, ATA_CMD_PORTS, ata)?;
        io.map_ports(id, ATA_PRIMARY_CTL_PORT, 1)?;
        io.map_ports(id, ATA_SECONDARY_PORT, ATA_CMD_PORTS)?;
        io.map_ports(id, ATA_SECONDARY_CTL_PORT, 1)?;
        let isa_dma = IsaDma::new(fdc).map(io)?;
        Ok(Storage {
            ata: id,
            isa_dma,
            bm_window: None,
            cmos,
        })
    }

    /// Writes the drives' CMOS bytes (before the RTC goes on the bus). The
    /// equipment byte keeps its other bits.
    pub fn set_cmos(&self, rtc: &mut Rtc146818) {
        for &(i, v) in &self.cmos {
            let v = if i == 0x14 {
                rtc.cmos(0x14) & 0x3E | v
            } else {
                v
            };
            rtc.set_cmos(i, v);
        }
        rtc.update_checksum();
    }

    /// The 8237 pair and the floppy controller.
    pub fn isa_dma<'a>(&self, board: &'a Board) -> &'a IsaDma {
        board.io.get(self.isa_dma)
    }

    /// Moves the bus-master window to `base` (BAR4 as the guest or
    /// firmware programmed it; `None` when I/O decoding is off).
    pub fn move_bus_master(&mut self, board: &mut Board, base: Option<u16>) {
        match board
            .io
            .move_ports(self.ata, self.bm_window, base, BM_PORTS)
        {
            Ok(()) => self.bm_window = base,
            Err(e) => {
                tracing::warn!("IDE bus master not mapped at {base:?}: {e}");
                self.bm_window = None;
            }
        }
    }

    /// The IDE controller.
    pub fn ata<'a>(&self, board: &'a Board) -> &'a AtaController {
        board.io.get(self.ata)
    }

    /// Makes every image write durable; errors are logged.
    pub fn flush(&self, board: &mut Board) {
        let _ = board.io.get_mut(self.ata).flush();
        let _ = board.io.get_mut(self.isa_dma).fdc.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chipset::{Chipset, ChipsetConfig};
    use crate::clock::ClockMode;
    use morph86_cpu::Bus;
    use morph86_devices::{ImageMode, RtcDateTime, RtcStart, SerialBackend};

    const RAM: usize = 8 << 20;

    fn board(drives: Drives) -> (Board, Chipset) {
        let mut b = Board::new(RAM, ClockMode::Virtual);
        let mut c = Chipset::build(
            &mut b,
            ChipsetConfig {
                serial: SerialBackend::none(),
                debugcon: None,
                exit_port: None,
                rtc_start: RtcStart::Fixed(RtcDateTime::from_unix(0)),
                memory_mib: (RAM >> 20) as u32,
                fw_cfg: false,
                vga: false,
                drives,
            },
        )
        .expect("chipset");
        c.reset(&mut b);
        c.route(&mut b, true);
        (b, c)
    }

    fn pci_write(b: &mut Board, reg: u8, size: u8, v: u32) {
        b.io_write(0xCF8, 4, 0x8000_0900 | u32::from(reg & 0xFC));
        b.io_write(0xCFC + u16::from(reg & 3), size, v);
    }

    /// The bus-master window follows BAR4; a DMA read lands in the
    /// board's RAM through the RAM's write tracking.
    #[test]
    fn bus_master_follows_bar4_and_dma_reaches_ram() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("hd.img");
        let data: Vec<u8> = (0..4096u32).map(|i| (i * 3 + i / 512) as u8).collect();
        std::fs::write(&img, &data).unwrap();
        let (mut b, mut c) = board(Drives {
            hda: Some(ImageSpec::new(&img, ImageMode::ReadWrite)),
            ..Drives::default()
        });
        assert_eq!(b.io_read(0x1F7, 1), 0x50, "the disk is there");
        b.io_write(0xC004, 4, 0x1000);
        assert_eq!(
            b.io_read(0xC004, 4),
            0x1000,
            "BM at 0xC000 after firmware set-up"
        );
        pci_write(&mut b, 0x20, 4, 0xD001);
        c.route(&mut b, true);
        assert_eq!(b.io_read(0xC004, 4), 0xFFFF_FFFF, "the old window is gone");
        assert_eq!(b.io_read(0xD004, 4), 0x1000);
        // I/O decoding off: no window.
        pci_write(&mut b, 0x04, 2, 0x0004);
        c.route(&mut b, true);
        assert_eq!(b.io_read(0xD004, 4), 0xFFFF_FFFF);
        pci_write(&mut b, 0x04, 2, 0x0005);
        c.route(&mut b, true);
        // READ DMA of sectors 2-3 to 0x20000 through a one-entry table.
        b.write_u32(0x1000, 0x2_0000);
        b.write_u32(0x1004, 0x8000_0400);
        b.mark_code_page(0x20);
        let gen = b.code_generation(0x20);
        for (port, v) in [
            (0x1F6, 0xE0),
            (0x1F2, 2),
            (0x1F3, 2),
            (0x1F4, 0),
            (0x1F5, 0),
        ] {
            b.io_write(port, 1, v);
        }
        b.io_write(0x1F7, 1, 0xC8);
        b.io_write(0xD000, 1, 0x09);
        assert_eq!(b.io_read(0xD002, 1) & 7, 4);
        for i in 0..1024u32 {
            assert_eq!(b.read_u8(0x2_0000 + i), data[1024 + i as usize]);
        }
        assert_ne!(b.code_generation(0x20), gen, "the JIT sees the DMA write");
        // IRQ 14 reached the PIC and the I/O APIC.
        assert_ne!(b.wires.irq_levels() & 1 << 14, 0);
        assert_eq!(b.io_read(0x1F7, 1), 0x50);
        assert_eq!(b.wires.irq_levels() & 1 << 14, 0);
        // The IDE function's legacy decode bits are set, as Linux wants.
        b.io_write(0xCF8, 4, 0x8000_0940);
        assert_eq!(b.io_read(0xCFC, 4), 0x8000_8000);
    }

    /// A 1.44M floppy in drive A: the CMOS describes it, and a DMA read
    /// through the 8237 lands in RAM.
    #[test]
    fn floppy_on_the_board() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("a.img");
        let data: Vec<u8> = (0..1_474_560u32).map(|i| (i / 512 + i) as u8).collect();
        std::fs::write(&img, &data).unwrap();
        let hd = dir.path().join("hd.img");
        std::fs::write(&hd, vec![0u8; 16 * 63 * 512 * 4]).unwrap();
        let (mut b, _c) = board(Drives {
            fda: Some(ImageSpec::new(&img, ImageMode::ReadWrite)),
            hdb: Some(ImageSpec::new(&hd, ImageMode::ReadOnly)),
            ..Drives::default()
        });
        let cmos = |b: &mut Board, i: u8| {
            b.io_write(0x70, 1, u32::from(i));
            b.io_read(0x71, 1)
        };
        assert_eq!(cmos(&mut b, 0x10), 0x40, "A: 1.44M");
        assert_eq!(cmos(&mut b, 0x14) & 0xC1, 0x01, "one floppy drive");
        assert_eq!(cmos(&mut b, 0x12), 0x0F, "hdb is type 47");
        assert_eq!(cmos(&mut b, 0x1A), 47);
        assert_eq!(cmos(&mut b, 0x24), 4, "4 cylinders");
        assert_eq!(cmos(&mut b, 0x2C), 63);
        // Out of reset, the four SENSE INTERRUPTs, then READ DATA C0 H0 R2
        // into 0x30000 through channel 2.
        // The FDC interrupts COMMAND_DELAY of virtual time after a command.
        let later = |b: &mut Board| {
            let t = b.time.now() + morph86_devices::fdc::COMMAND_DELAY;
            b.time.set(t);
            b.io.advance(t);
        };
        b.io_write(0x3F2, 1, 0x1C);
        later(&mut b);
        assert_ne!(b.wires.irq_levels() & 1 << 6, 0, "IRQ 6");
        for _ in 0..4 {
            b.io_write(0x3F5, 1, 0x08);
            b.io_read(0x3F5, 1);
            b.io_read(0x3F5, 1);
        }
        for (port, v) in [
            (0x0A, 6),
            (0x0C, 0),
            (0x0B, 0x46),
            (0x04, 0),
            (0x04, 0),
            (0x81, 3),
        ] {
            b.io_write(port, 1, v);
        }
        for (port, v) in [(0x05, 0xFF), (0x05, 0x01), (0x0A, 2)] {
            b.io_write(port, 1, v);
        }
        for v in [0xE6, 0, 0, 0, 2, 2, 18, 0x1B, 0xFF] {
            b.io_write(0x3F5, 1, v);
        }
        later(&mut b);
        let res: Vec<u32> = (0..7).map(|_| b.io_read(0x3F5, 1)).collect();
        assert_eq!(res, [0, 0, 0, 0, 0, 3, 2]);
        for i in 0..512u32 {
            assert_eq!(b.read_u8(0x3_0000 + i), data[512 + i as usize]);
        }
    }

    #[test]
    fn bad_images_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = Board::new(RAM, ClockMode::Virtual);
        let e = Storage::fit(
            &mut b.io,
            &b.wires.clone(),
            &b.time.clone(),
            &Drives {
                cdrom: Some(ImageSpec::new(
                    dir.path().join("none.iso"),
                    ImageMode::ReadOnly,
                )),
                ..Drives::default()
            },
        )
        .err()
        .expect("a missing image is an error");
        assert!(e.to_string().contains("none.iso"), "{e}");
        let odd = dir.path().join("odd.img");
        std::fs::write(&odd, vec![0u8; 1000 * 512]).unwrap();
        let e = Storage::fit(
            &mut b.io,
            &b.wires.clone(),
            &b.time.clone(),
            &Drives {
                fdb: Some(ImageSpec::new(&odd, ImageMode::ReadWrite)),
                ..Drives::default()
            },
        )
        .err()
        .expect("a floppy of no known size is an error");
        assert!(e.to_string().contains("not a floppy image size"), "{e}");
    }
}
