//! The PIIX3 IDE controller: two ATA channels with a master and a slave
//! each (hard disks and ATAPI CD-ROMs), and PIIX bus-master DMA.
//!
//! It is one bus device so that the bus-master start bit and the ATA
//! command register meet in one place: a DMA command waits until both its
//! command and the bus master's start bit are written, and the transfer is
//! done inside whichever port write came second (the only moment the device
//! holds guest memory, see [`crate::dma`]).
//!
//! # Windows
//!
//! | window | ports | what |
//! |---|---|---|
//! | primary command block | 0x1F0-0x1F7 | data, error/features, count, LBA, device, status/command |
//! | primary control block | 0x3F6 | alternate status / device control |
//! | secondary command block | 0x170-0x177 | as above; IRQ 15 |
//! | secondary control block | 0x376 | as above |
//! | bus master (PCI BAR4) | 16 ports | per channel: command, status, PRD table pointer |
//!
//! The device tells the windows apart by their base; the bus-master window
//! is the one that is none of the four legacy bases (it cannot overlap them,
//! since the bus refuses overlapping windows).
//!
//! # Timing
//!
//! Every command completes within the port access that starts it (or that
//! starts its DMA): nothing depends on host time, so runs stay
//! deterministic. Status then reads as the device would after the command's
//! work: DRQ for a data block, DRDY when done.
//!
//! # Drive registers
//!
//! As on real drives, writes to the task-file registers reach both drives
//! of a channel, and reads come from the selected one. A register written
//! twice keeps its previous value as the "high-order byte" that LBA48
//! commands use, read back with the device control register's HOB bit.
//! Reads of an absent drive, or of a channel with no drives, give 0 (what
//! QEMU answers; Linux and SeaBIOS then find no device there).

mod atapi;
mod busmaster;
mod disk;

pub use busmaster::{BusMaster, BM_PORTS};

use crate::bus::Device;
use crate::disk_image::{DiskImage, ImageError, ImageSpec};
use crate::dma::{DmaMemory, NoDma};
use crate::lines::IrqLine;
use serde::{Deserialize, Serialize};

/// The primary channel's command block.
pub const ATA_PRIMARY_PORT: u16 = 0x1F0;
/// The primary channel's control block (alternate status, device control).
pub const ATA_PRIMARY_CTL_PORT: u16 = 0x3F6;
/// The secondary channel's command block.
pub const ATA_SECONDARY_PORT: u16 = 0x170;
/// The secondary channel's control block.
pub const ATA_SECONDARY_CTL_PORT: u16 = 0x376;
/// Ports in a command block.
pub const ATA_CMD_PORTS: u32 = 8;
/// The primary channel's interrupt line.
pub const ATA_PRIMARY_IRQ: u8 = 14;
/// The secondary channel's interrupt line.
pub const ATA_SECONDARY_IRQ: u8 = 15;

/// Status register bits.
pub mod status {
    /// Busy.
    pub const BSY: u8 = 0x80;
    /// Device ready.
    pub const DRDY: u8 = 0x40;
    /// Device fault.
    pub const DF: u8 = 0x20;
    /// Seek complete (obsolete; set when ready, as drives do).
    pub const DSC: u8 = 0x10;
    /// Data request.
    pub const DRQ: u8 = 0x08;
    /// Error.
    pub const ERR: u8 = 0x01;
}

/// Error register bits.
pub mod error {
    /// Uncorrectable data error.
    pub const UNC: u8 = 0x40;
    /// ID not found (an address beyond the medium).
    pub const IDNF: u8 = 0x10;
    /// Command aborted.
    pub const ABRT: u8 = 0x04;
}

/// Device control register bits.
const CTL_NIEN: u8 = 0x02;
const CTL_SRST: u8 = 0x04;
const CTL_HOB: u8 = 0x80;

/// Bytes per hard-disk sector.
pub const SECTOR: usize = 512;
/// Bytes per CD sector.
pub const CD_SECTOR: usize = 2048;

/// What kind of drive sits at a position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DriveKind {
    /// An ATA hard disk.
    Disk,
    /// An ATAPI CD-ROM drive (with or without a disc).
    Cdrom,
}

/// The task-file registers as a drive latches them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFile {
    /// Features (write) — the error register is separate.
    pub feature: u8,
    /// Sector count (ATAPI: interrupt reason).
    pub nsect: u8,
    /// LBA bits 0-7 (CHS: sector number).
    pub lbal: u8,
    /// LBA bits 8-15 (CHS: cylinder low; ATAPI: byte count low).
    pub lbam: u8,
    /// LBA bits 16-23 (CHS: cylinder high; ATAPI: byte count high).
    pub lbah: u8,
    /// The previous value of each, for LBA48 (the "HOB" bytes).
    pub hob_feature: u8,
    /// Previous sector count.
    pub hob_nsect: u8,
    /// Previous LBA low.
    pub hob_lbal: u8,
    /// Previous LBA mid.
    pub hob_lbam: u8,
    /// Previous LBA high.
    pub hob_lbah: u8,
    /// Device/head: bit 6 LBA, bit 4 drive select, bits 0-3 head / LBA 24-27.
    pub device: u8,
}

/// What the data port is doing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Xfer {
    /// Nothing.
    #[default]
    None,
    /// PIO data in from a disk: the sectors after the buffered block.
    DiskIn {
        /// Next sector to read.
        lba: u64,
        /// Sectors still to read after the buffered block.
        left: u64,
        /// Sectors per DRQ block.
        block: u16,
        /// LBA48 addressing.
        ext: bool,
    },
    /// PIO data out to a disk: the buffer fills with the block at `lba`.
    DiskOut {
        /// Sector of the buffered block.
        lba: u64,
        /// Sectors still to come, counting the buffered block.
        left: u64,
        /// Sectors per DRQ block.
        block: u16,
        /// LBA48 addressing.
        ext: bool,
    },
    /// PIO data in of a buffer the command produced (IDENTIFY).
    BufferIn,
    /// ATAPI: receiving the 12-byte command packet.
    Packet,
    /// ATAPI PIO data in: staged bytes in the buffer, then more sectors.
    AtapiIn {
        /// Next CD sector to stage.
        lba: u64,
        /// CD sectors not yet staged.
        left: u64,
        /// The byte count limit the host gave.
        limit: u16,
    },
}

/// A DMA transfer waiting for the bus master.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum DmaJob {
    /// Disk sectors to memory.
    DiskRead {
        /// First sector.
        lba: u64,
        /// Sectors.
        count: u64,
    },
    /// Memory to disk sectors.
    DiskWrite {
        /// First sector.
        lba: u64,
        /// Sectors.
        count: u64,
    },
    /// CD sectors to memory.
    CdRead {
        /// First sector.
        lba: u64,
        /// Sectors.
        count: u64,
    },
    /// The drive's buffer to memory (an ATAPI reply).
    Buffer,
}

/// ATAPI state: sense data and the tray.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AtapiState {
    /// The 12-byte command packet being received or run.
    pub packet: [u8; 12],
    /// Sense key, additional sense code and qualifier of the last error.
    pub sense: (u8, u8, u8),
    /// The host locked the tray (PREVENT ALLOW MEDIUM REMOVAL).
    pub locked: bool,
    /// The tray is open (START STOP UNIT ejected it).
    pub tray_open: bool,
    /// A medium appeared since the host last looked: the next command
    /// fails with UNIT ATTENTION.
    pub unit_attention: bool,
    /// A media event for GET EVENT STATUS NOTIFICATION.
    pub media_event: bool,
    /// The packet asked for DMA.
    pub dma: bool,
}

/// One drive position on a channel.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Drive {
    /// What sits here (`None`: no drive).
    pub(crate) kind: Option<DriveKind>,
    /// Its task-file registers.
    pub(crate) tf: TaskFile,
    /// Status register.
    pub(crate) status: u8,
    /// Error register.
    pub(crate) error: u8,
    /// PIO data: the buffer, the next byte, the end of the DRQ block.
    pub(crate) buf: Vec<u8>,
    pub(crate) pos: usize,
    pub(crate) end: usize,
    pub(crate) xfer: Xfer,
    /// A DMA command waiting for the bus master.
    pub(crate) dma: Option<DmaJob>,
    /// Sectors per block of READ/WRITE MULTIPLE (0: not set).
    pub(crate) multiple: u8,
    /// Logical geometry (INITIALIZE DEVICE PARAMETERS): heads, sectors per track.
    pub(crate) heads: u8,
    pub(crate) spt: u8,
    /// The volatile write cache is enabled (SET FEATURES 02h/82h).
    pub(crate) write_cache: bool,
    /// Selected transfer mode (SET FEATURES 03h): 0 = default PIO.
    pub(crate) xfer_mode: u8,
    pub(crate) atapi: AtapiState,
    /// Which drive this is (channel * 2 + unit), for its serial number.
    pub(crate) index: u8,
    /// The medium.
    #[serde(skip)]
    pub(crate) image: Option<DiskImage>,
}

impl Drive {
    fn present(&self) -> bool {
        self.kind.is_some()
    }

    /// Power-on / reset state of the registers (the medium stays), with
    /// the device signature (ATA: 01 01 00 00; ATAPI: 01 01 14 EB).
    fn reset(&mut self) {
        self.tf = TaskFile {
            device: 0,
            ..TaskFile::default()
        };
        self.set_signature();
        self.error = 0x01; // diagnostics passed
        self.status = match self.kind {
            Some(DriveKind::Disk) => status::DRDY | status::DSC,
            _ => 0,
        };
        self.stop_transfer();
        self.multiple = 0;
        self.write_cache = true;
        self.xfer_mode = 0;
        if let Some((h, s)) = self.default_geometry() {
            self.heads = h;
            self.spt = s;
        }
        let a = &mut self.atapi;
        a.sense = (0, 0, 0);
        a.dma = false;
    }

    fn set_signature(&mut self) {
        self.tf.nsect = 1;
        self.tf.lbal = 1;
        (self.tf.lbam, self.tf.lbah) = match self.kind {
            Some(DriveKind::Cdrom) => (0x14, 0xEB),
            _ => (0, 0),
        };
    }

    fn stop_transfer(&mut self) {
        self.buf.clear();
        self.pos = 0;
        self.end = 0;
        self.xfer = Xfer::None;
        self.dma = None;
    }

    /// Ends a command without error.
    pub(crate) fn done(&mut self) {
        self.stop_transfer();
        self.status = status::DRDY | status::DSC;
        self.error = 0;
    }

    /// Ends a command with `err` in the error register.
    pub(crate) fn fail(&mut self, err: u8) {
        self.stop_transfer();
        self.status = status::DRDY | status::DSC | status::ERR;
        self.error = err;
    }

    /// Starts a PIO data block of `len` bytes already in the buffer.
    pub(crate) fn drq(&mut self, len: usize) {
        self.pos = 0;
        self.end = len.min(self.buf.len());
        self.status = status::DRDY | status::DSC | status::DRQ;
    }

    /// Reads up to 4 bytes of PIO data; `None` when there is no block.
    fn data_read(&mut self, size: u8) -> Option<(u32, bool)> {
        if self.status & status::DRQ == 0 || self.pos >= self.end || !self.reading() {
            return None;
        }
        let mut v = 0u32;
        for i in 0..usize::from(size) {
            if self.pos < self.end {
                v |= u32::from(self.buf[self.pos]) << (8 * i);
                self.pos += 1;
            }
        }
        Some((v, self.pos >= self.end))
    }

    /// Writes up to 4 bytes of PIO data; true when the block is full.
    fn data_write(&mut self, size: u8, v: u32) -> bool {
        if self.status & status::DRQ == 0 || self.pos >= self.end || self.reading() {
            return false;
        }
        for i in 0..usize::from(size) {
            if self.pos < self.end {
                self.buf[self.pos] = (v >> (8 * i)) as u8;
                self.pos += 1;
            }
        }
        self.pos >= self.end
    }

    /// True when the data port is read (the transfer is data in).
    fn reading(&self) -> bool {
        matches!(
            self.xfer,
            Xfer::DiskIn { .. } | Xfer::BufferIn | Xfer::AtapiIn { .. }
        )
    }

    /// The end of a PIO block: what comes next. True to interrupt.
    fn block_done(&mut self) -> bool {
        match self.xfer {
            Xfer::DiskIn { .. } | Xfer::DiskOut { .. } => self.disk_block_done(),
            Xfer::BufferIn => {
                self.done();
                false
            }
            Xfer::Packet => self.packet_received(),
            Xfer::AtapiIn { .. } => self.atapi_block_done(),
            Xfer::None => false,
        }
    }

    /// Executes `cmd`; true to interrupt.
    fn command(&mut self, cmd: u8) -> bool {
        match self.kind {
            Some(DriveKind::Disk) => self.disk_command(cmd),
            Some(DriveKind::Cdrom) => self.atapi_command(cmd),
            None => false,
        }
    }
}

/// One channel: two drive positions, the device control register, the
/// interrupt request and the bus master's registers.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Channel {
    /// Master and slave.
    pub drives: [Drive; 2],
    /// The selected drive (device register bit 4).
    pub selected: usize,
    /// Device control: nIEN, SRST, HOB.
    pub ctl: u8,
    /// INTRQ: an interrupt is pending (cleared by reading status).
    pub irq_pending: bool,
    /// Bus-master registers.
    pub bm: BusMaster,
}

impl Channel {
    fn any_drive(&self) -> bool {
        self.drives.iter().any(Drive::present)
    }

    /// The selected drive, when present.
    fn sel(&mut self) -> Option<&mut Drive> {
        let d = &mut self.drives[self.selected];
        d.present().then_some(d)
    }
}

/// The controller (see the module docs).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct AtaController {
    /// Primary and secondary channels.
    pub channels: [Channel; 2],
    #[serde(skip)]
    irqs: [Option<IrqLine>; 2],
}

/// Why a drive could not be attached.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The image could not be opened.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The position is taken or does not exist.
    #[error("IDE position {channel}:{unit} is taken or does not exist")]
    Position {
        /// Channel (0 primary, 1 secondary).
        channel: usize,
        /// Unit (0 master, 1 slave).
        unit: usize,
    },
    /// The image was opened with the wrong sector size for the drive.
    #[error("a {kind} needs {want}-byte sectors")]
    SectorSize {
        /// "hard disk" or "CD".
        kind: &'static str,
        /// The drive's sector size.
        want: usize,
    },
}

impl AtaController {
    /// A controller with no drives.
    pub fn new() -> AtaController {
        let mut c = AtaController::default();
        for (ch, channel) in c.channels.iter_mut().enumerate() {
            for (u, d) in channel.drives.iter_mut().enumerate() {
                d.index = (ch * 2 + u) as u8;
            }
        }
        c
    }

    /// Wires the channels' interrupt lines (IRQ 14 and 15 on a PC).
    pub fn connect_irqs(&mut self, primary: IrqLine, secondary: IrqLine) {
        self.irqs = [Some(primary), Some(secondary)];
    }

    fn place(&mut self, channel: usize, unit: usize) -> Result<&mut Drive, AttachError> {
        let pos = AttachError::Position { channel, unit };
        let d = self
            .channels
            .get_mut(channel)
            .and_then(|c| c.drives.get_mut(unit))
            .ok_or(pos)?;
        if d.present() {
            return Err(AttachError::Position { channel, unit });
        }
        Ok(d)
    }

    /// Attaches a hard disk on the image (512-byte sectors).
    pub fn attach_disk(
        &mut self,
        channel: usize,
        unit: usize,
        image: DiskImage,
    ) -> Result<(), AttachError> {
        if image.sector_size() as usize != SECTOR {
            return Err(AttachError::SectorSize {
                kind: "hard disk",
                want: SECTOR,
            });
        }
        let d = self.place(channel, unit)?;
        d.kind = Some(DriveKind::Disk);
        d.image = Some(image);
        d.reset();
        Ok(())
    }

    /// Attaches a CD-ROM drive, with a disc (2048-byte sectors) or empty.
    pub fn attach_cdrom(
        &mut self,
        channel: usize,
        unit: usize,
        image: Option<DiskImage>,
    ) -> Result<(), AttachError> {
        if image
            .as_ref()
            .is_some_and(|i| i.sector_size() as usize != CD_SECTOR)
        {
            return Err(AttachError::SectorSize {
                kind: "CD",
                want: CD_SECTOR,
            });
        }
        let d = self.place(channel, unit)?;
        d.kind = Some(DriveKind::Cdrom);
        d.image = image;
        d.reset();
        Ok(())
    }

    /// Opens `spec` and attaches it as a hard disk.
    pub fn attach_disk_spec(
        &mut self,
        channel: usize,
        unit: usize,
        spec: &ImageSpec,
    ) -> Result<(), AttachError> {
        let img = DiskImage::open(spec, SECTOR as u32)?;
        self.attach_disk(channel, unit, img)
    }

    /// Opens `spec` (read-only whatever it says: CDs are) and attaches it
    /// as a CD-ROM.
    pub fn attach_cdrom_spec(
        &mut self,
        channel: usize,
        unit: usize,
        spec: &ImageSpec,
    ) -> Result<(), AttachError> {
        let mut spec = spec.clone();
        if spec.mode == crate::disk_image::ImageMode::ReadWrite {
            spec.mode = crate::disk_image::ImageMode::ReadOnly;
        }
        let img = DiskImage::open(&spec, CD_SECTOR as u32)?;
        self.attach_cdrom(channel, unit, Some(img))
    }

    /// The image behind a drive position, if any.
    pub fn image(&self, channel: usize, unit: usize) -> Option<&DiskImage> {
        self.channels.get(channel)?.drives.get(unit)?.image.as_ref()
    }

    /// Makes every write so far durable (the end of a run). Reports the
    /// first failure after trying every image.
    pub fn flush(&mut self) -> Result<(), ImageError> {
        let mut first = Ok(());
        for c in &mut self.channels {
            for d in &mut c.drives {
                if let Some(img) = &mut d.image {
                    if let Err(e) = img.flush() {
                        tracing::error!("{e}");
                        if first.is_ok() {
                            first = Err(e);
                        }
                    }
                }
            }
        }
        first
    }

    /// Raises channel `ch`'s interrupt (unless masked by nIEN); the bus
    /// master's interrupt bit follows, as on the PIIX.
    fn interrupt(&mut self, ch: usize) {
        let c = &mut self.channels[ch];
        c.irq_pending = true;
        if c.ctl & CTL_NIEN == 0 {
            c.bm.status |= busmaster::BM_STATUS_INT;
        }
        self.update_irq(ch);
    }

    fn update_irq(&mut self, ch: usize) {
        let c = &self.channels[ch];
        let level = c.irq_pending && c.ctl & CTL_NIEN == 0;
        if let Some(l) = &self.irqs[ch] {
            l.set(level);
        }
    }

    /// A read of the command block of channel `ch`.
    fn cmd_read(&mut self, ch: usize, off: u16, size: u8) -> u32 {
        let c = &mut self.channels[ch];
        if off == 0 {
            let Some(d) = c.sel() else {
                return 0;
            };
            return match d.data_read(size) {
                Some((v, last)) => {
                    if last && d.block_done() {
                        self.interrupt(ch);
                    }
                    v
                }
                None => crate::all_ones(size),
            };
        }
        // Wider accesses to the byte registers read each in turn.
        if size > 1 {
            let mut v = 0;
            for i in 0..u16::from(size) {
                if off + i > 7 {
                    v |= 0xFF << (8 * i);
                } else {
                    v |= self.cmd_read(ch, off + i, 1) << (8 * i);
                }
            }
            return v;
        }
        let hob = c.ctl & CTL_HOB != 0;
        let any = c.any_drive();
        let sel = c.selected;
        let d = &c.drives[sel];
        if !any || (!d.present() && off != 6) {
            return 0;
        }
        let tf = &d.tf;
        let v = match (off, hob) {
            (1, false) => d.error,
            (1, true) => tf.hob_feature,
            (2, false) => tf.nsect,
            (2, true) => tf.hob_nsect,
            (3, false) => tf.lbal,
            (3, true) => tf.hob_lbal,
            (4, false) => tf.lbam,
            (4, true) => tf.hob_lbam,
            (5, false) => tf.lbah,
            (5, true) => tf.hob_lbah,
            (6, _) => tf.device,
            _ => {
                // Status: reading it acknowledges the interrupt.
                let s = d.status;
                c.irq_pending = false;
                self.update_irq(ch);
                s
            }
        };
        u32::from(v)
    }

    /// A write to the command block of channel `ch`.
    fn cmd_write(&mut self, ch: usize, off: u16, size: u8, v: u32, mem: &mut dyn DmaMemory) {
        let c = &mut self.channels[ch];
        if off == 0 {
            if let Some(d) = c.sel() {
                if d.data_write(size, v) {
                    let irq = d.block_done();
                    if irq {
                        self.interrupt(ch);
                    }
                    // A packet may have started a DMA reply.
                    self.try_dma(ch, mem);
                }
            }
            return;
        }
        if size > 1 {
            for i in 0..u16::from(size) {
                if off + i <= 7 {
                    self.cmd_write(ch, off + i, 1, v >> (8 * i), mem);
                }
            }
            return;
        }
        let b = v as u8;
        match off {
            1..=5 => {
                c.ctl &= !CTL_HOB;
                for d in &mut c.drives {
                    let tf = &mut d.tf;
                    let (cur, hob) = match off {
                        1 => (&mut tf.feature, &mut tf.hob_feature),
                        2 => (&mut tf.nsect, &mut tf.hob_nsect),
                        3 => (&mut tf.lbal, &mut tf.hob_lbal),
                        4 => (&mut tf.lbam, &mut tf.hob_lbam),
                        _ => (&mut tf.lbah, &mut tf.hob_lbah),
                    };
                    *hob = *cur;
                    *cur = b;
                }
            }
            6 => {
                c.ctl &= !CTL_HOB;
                for d in &mut c.drives {
                    d.tf.device = b;
                }
                c.selected = usize::from(b >> 4 & 1);
            }
            _ => {
                // Command: to the selected drive, unless it is absent, busy
                // or mid-transfer (DEVICE RESET excepted).
                let Some(d) = c.sel() else {
                    return;
                };
                if d.status & (status::BSY | status::DRQ) != 0 && b != 0x08 {
                    tracing::debug!(cmd = b, "ATA command while busy ignored");
                    return;
                }
                // A new command acknowledges an old interrupt.
                c.irq_pending = false;
                self.update_irq(ch);
                let irq = self.channels[ch].drives[self.channels[ch].selected].command(b);
                if irq {
                    self.interrupt(ch);
                }
                self.try_dma(ch, mem);
            }
        }
    }

    /// A write to channel `ch`'s device control register.
    fn ctl_write(&mut self, ch: usize, v: u8) {
        let c = &mut self.channels[ch];
        let old = c.ctl;
        c.ctl = v;
        if v & CTL_SRST != 0 && old & CTL_SRST == 0 {
            for d in c.drives.iter_mut().filter(|d| d.present()) {
                d.stop_transfer();
                d.status = status::BSY;
            }
            c.irq_pending = false;
        } else if v & CTL_SRST == 0 && old & CTL_SRST != 0 {
            for d in c.drives.iter_mut().filter(|d| d.present()) {
                let (multiple, heads, spt) = (d.multiple, d.heads, d.spt);
                d.reset();
                // A soft reset keeps the host's settings (ATA-6 9.2).
                (d.multiple, d.heads, d.spt) = (multiple, heads, spt);
            }
            c.selected = 0;
        }
        self.update_irq(ch);
    }

    fn ctl_read(&mut self, ch: usize) -> u32 {
        let c = &mut self.channels[ch];
        if !c.any_drive() {
            return 0;
        }
        u32::from(c.sel().map_or(0, |d| d.status))
    }

    /// Runs channel `ch`'s pending DMA if the bus master is started.
    fn try_dma(&mut self, ch: usize, mem: &mut dyn DmaMemory) {
        let c = &mut self.channels[ch];
        if c.bm.command & busmaster::BM_CMD_START == 0 {
            return;
        }
        let Some(unit) = (0..2).find(|&u| c.drives[u].dma.is_some()) else {
            return;
        };
        let irq = busmaster::run(&mut c.bm, &mut c.drives[unit], mem);
        if irq {
            self.interrupt(ch);
        }
    }

    /// A read of the bus-master window.
    fn bm_read(&mut self, off: u16, size: u8) -> u32 {
        let mut v = 0;
        for i in 0..u16::from(size) {
            let o = off + i;
            let b = match self.channels.get(usize::from(o >> 3)) {
                Some(c) => c.bm.read(o & 7),
                None => 0xFF,
            };
            v |= u32::from(b) << (8 * i);
        }
        v
    }

    /// A write to the bus-master window.
    fn bm_write(&mut self, off: u16, size: u8, v: u32, mem: &mut dyn DmaMemory) {
        for i in 0..u16::from(size) {
            let o = off + i;
            let ch = usize::from(o >> 3);
            if ch > 1 {
                continue;
            }
            if self.channels[ch].bm.write(o & 7, (v >> (8 * i)) as u8) {
                self.try_dma(ch, mem);
            }
        }
    }
}

impl Device for AtaController {
    fn name(&self) -> &str {
        "ata"
    }

    fn pio_read(&mut self, base: u16, offset: u16, size: u8) -> u32 {
        match base {
            ATA_PRIMARY_PORT => self.cmd_read(0, offset, size),
            ATA_SECONDARY_PORT => self.cmd_read(1, offset, size),
            ATA_PRIMARY_CTL_PORT => self.ctl_read(0),
            ATA_SECONDARY_CTL_PORT => self.ctl_read(1),
            _ => self.bm_read(offset, size),
        }
    }

    fn pio_write(&mut self, base: u16, offset: u16, size: u8, value: u32) {
        self.pio_write_dma(base, offset, size, value, &mut NoDma);
    }

    fn pio_write_dma(
        &mut self,
        base: u16,
        offset: u16,
        size: u8,
        value: u32,
        mem: &mut dyn DmaMemory,
    ) {
        match base {
            ATA_PRIMARY_PORT => self.cmd_write(0, offset, size, value, mem),
            ATA_SECONDARY_PORT => self.cmd_write(1, offset, size, value, mem),
            ATA_PRIMARY_CTL_PORT => self.ctl_write(0, value as u8),
            ATA_SECONDARY_CTL_PORT => self.ctl_write(1, value as u8),
            _ => self.bm_write(offset, size, value, mem),
        }
    }

    fn reset(&mut self) {
        for (ch, c) in self.channels.iter_mut().enumerate() {
            for d in c.drives.iter_mut().filter(|d| d.present()) {
                d.reset();
                d.atapi.locked = false;
                d.atapi.tray_open = false;
                d.atapi.unit_attention = false;
            }
            c.selected = 0;
            c.ctl = 0;
            c.irq_pending = false;
            c.bm = BusMaster::default();
            if let Some(l) = &self.irqs[ch] {
                l.lower();
            }
        }
    }
}

#[cfg(test)]
mod tests;
