//! The 82077AA floppy disk controller (PC/AT mode) with two drives.
//!
//! # Registers (base 0x3F0)
//!
//! | port | read | write |
//! |---|---|---|
//! | 0x3F0, 0x3F1 | status A/B (PS/2 only: 0xFF here, as on AT boards) | — |
//! | 0x3F2 | DOR | DOR: drive select, nRESET, DMA/IRQ gate, motors |
//! | 0x3F3 | tape drive register | tape drive register |
//! | 0x3F4 | main status (RQM, DIO, NDMA, CB) | data rate select (bit 7: reset) |
//! | 0x3F5 | FIFO: results, PIO data | FIFO: commands, parameters, PIO data |
//! | 0x3F7 | DIR: bit 7 disk changed | CCR: data rate |
//!
//! 0x3F6 is not the FDC's: it is the IDE control block.
//!
//! # Commands
//!
//! SPECIFY, SENSE DRIVE STATUS, READ DATA and WRITE DATA (multi-track, DMA
//! or PIO), RECALIBRATE, SENSE INTERRUPT STATUS, READ ID, FORMAT TRACK,
//! DUMPREG, SEEK, VERSION (90h: an 82077AA), PERPENDICULAR MODE,
//! CONFIGURE and LOCK. Anything else is invalid: one result byte, 80h.
//!
//! A transfer's data moves within the port access that starts it (the last
//! command byte, or, for a DMA transfer waiting on a masked channel, the
//! 8237 write that unmasks it; see [`crate::dma8237`]), but its interrupt
//! and result phase come [`COMMAND_DELAY`] of virtual time later, as do
//! the interrupts of SEEK, RECALIBRATE and a reset: a driver (Linux's
//! floppy.c) issues the command and only then gets ready for the interrupt,
//! as real drives give it milliseconds to. Virtual time keeps runs
//! deterministic; without a time source (unit tests) completions are
//! immediate. READ/WRITE DATA move sectors until the 8237 reaches terminal count, or
//! to the end of the track (EOT, and the other side in multi-track mode),
//! which ends the command with "end of cylinder" as the real part does when
//! the DMA count is longer than the track.
//!
//! # Media
//!
//! The geometry comes from the image's size ([`FloppyGeometry::from_size`]):
//! 160K, 180K, 320K, 360K, 720K, 1.2M, 1.44M and 2.88M. The data rate the
//! host selects is not checked against the medium. The disk-changed line
//! (DIR bit 7) is high at power-on and while a drive is empty, and drops at
//! the first seek with a disk in, as on real drives.

use crate::clock::{Nanos, TimeSource};
use crate::disk_image::{DiskImage, ImageError, ImageMode, ImageSpec};
use crate::dma::DmaMemory;
use crate::dma8237::Dma8237;
use crate::lines::IrqLine;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// The FDC's first port (0x3F0-0x3F5).
pub const FDC_PORT: u16 = 0x3F0;
/// Ports from [`FDC_PORT`] in its first window.
pub const FDC_PORTS: u32 = 6;
/// The DIR/CCR register's offset from [`FDC_PORT`] (0x3F7).
pub const FDC_DIR_OFFSET: u16 = 7;
/// The FDC's interrupt line.
pub const FDC_IRQ: u8 = 6;

const SECTOR: usize = 512;

/// Virtual time from a command's last byte (or a reset) to its interrupt.
pub const COMMAND_DELAY: Nanos = 50_000;

/// What happens when a delayed completion comes due.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Completion {
    /// The staged results become readable; interrupt.
    Results,
    /// A seek ended: (ST0, cylinder) for SENSE INTERRUPT; interrupt.
    Seek(u8, u8),
    /// The controller left reset; interrupt.
    Reset,
}

// Main status register bits.
const MSR_RQM: u8 = 0x80;
const MSR_DIO: u8 = 0x40;
const MSR_NDMA: u8 = 0x20;
const MSR_CB: u8 = 0x10;

// ST0 bits.
const ST0_ABNORMAL: u8 = 0x40;
const ST0_INVALID: u8 = 0x80;
const ST0_SEEK_END: u8 = 0x20;
const ST0_EQUIPMENT: u8 = 0x10;
const ST0_NOT_READY: u8 = 0x08;
// ST1 bits.
const ST1_END_OF_CYLINDER: u8 = 0x80;
const ST1_NO_DATA: u8 = 0x04;
const ST1_NOT_WRITABLE: u8 = 0x02;
const ST1_MISSING_AM: u8 = 0x01;

/// A floppy format: tracks, sides, sectors per track.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloppyGeometry {
    /// Tracks (cylinders).
    pub tracks: u8,
    /// Sides.
    pub heads: u8,
    /// Sectors per track.
    pub sectors: u8,
}

impl FloppyGeometry {
    /// The format of an image of `bytes` bytes, if it is a standard size.
    pub fn from_size(bytes: u64) -> Option<FloppyGeometry> {
        let g = |tracks, heads, sectors| FloppyGeometry {
            tracks,
            heads,
            sectors,
        };
        Some(match bytes / 1024 {
            160 => g(40, 1, 8),
            180 => g(40, 1, 9),
            320 => g(40, 2, 8),
            360 => g(40, 2, 9),
            720 => g(80, 2, 9),
            1200 => g(80, 2, 15),
            1440 => g(80, 2, 18),
            2880 => g(80, 2, 36),
            _ => return None,
        })
        .filter(|_| bytes.is_multiple_of(1024))
    }

    /// Sectors on the disk.
    pub fn total(&self) -> u64 {
        u64::from(self.tracks) * u64::from(self.heads) * u64::from(self.sectors)
    }
}

/// Opens a floppy image, checking that its size is a known format.
pub fn open_floppy(spec: &ImageSpec) -> Result<(DiskImage, FloppyGeometry), ImageError> {
    let img = DiskImage::open(spec, SECTOR as u32)?;
    match FloppyGeometry::from_size(img.len_bytes()) {
        Some(g) => Ok((img, g)),
        None => Err(ImageError::FloppySize {
            path: spec.path.clone(),
            len: img.len_bytes(),
        }),
    }
}

/// One drive.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct FloppyDrive {
    /// The disk's format (`None`: no disk).
    pub geometry: Option<FloppyGeometry>,
    /// The cylinder the head is over.
    pub track: u8,
    /// The disk-changed line.
    pub changed: bool,
    #[serde(skip)]
    image: Option<DiskImage>,
}

impl FloppyDrive {
    fn write_protected(&self) -> bool {
        self.image
            .as_ref()
            .is_some_and(|i| i.mode() == ImageMode::ReadOnly)
    }

    /// Sector (c, h, r) as a sector number, if it exists.
    fn lba(&self, c: u8, h: u8, r: u8) -> Option<u64> {
        let g = self.geometry?;
        (c < g.tracks && h < g.heads && r >= 1 && r <= g.sectors).then(|| {
            (u64::from(c) * u64::from(g.heads) + u64::from(h)) * u64::from(g.sectors) + u64::from(r)
                - 1
        })
    }
}

/// What the controller is doing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
enum Phase {
    /// Taking a command and its parameters.
    #[default]
    Command,
    /// A transfer: by DMA (waiting for the channel) or PIO through the FIFO.
    Execution,
    /// Results for the host.
    Result,
}

/// A READ/WRITE DATA or FORMAT TRACK in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Transfer {
    op: Op,
    drive: usize,
    c: u8,
    h: u8,
    r: u8,
    n: u8,
    eot: u8,
    multi_track: bool,
    /// FORMAT: sectors to format and the fill byte.
    count: u8,
    fill: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Op {
    Read,
    Write,
    Format,
}

/// The controller (see the module docs).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Fdc {
    dor: u8,
    tdr: u8,
    rate: u8,
    phase: Phase,
    /// Command bytes received so far.
    cmd: Vec<u8>,
    /// Result bytes, and the next one to read.
    result: Vec<u8>,
    rpos: usize,
    /// PIO data of a non-DMA transfer, and the next byte.
    data: Vec<u8>,
    dpos: usize,
    xfer: Option<Transfer>,
    /// The drives (A: and B:).
    pub drives: [FloppyDrive; 2],
    /// INTRQ.
    irq_pending: bool,
    /// Drives still to report after a reset (SENSE INTERRUPT STATUS).
    reset_sense: u8,
    /// Seek/recalibrate completions to report: (ST0, cylinder).
    seek_status: VecDeque<(u8, u8)>,
    specify: [u8; 2],
    config: u8,
    pretrack: u8,
    perpendicular: u8,
    lock: bool,
    /// Completions waiting for their time, in order.
    pending: VecDeque<(Nanos, Completion)>,
    #[serde(skip)]
    irq: Option<IrqLine>,
    #[serde(skip)]
    time: Option<TimeSource>,
}

impl Fdc {
    /// A controller with no drives, held in reset (DOR = 0) as at power-on.
    pub fn new() -> Fdc {
        let mut f = Fdc::default();
        f.reset();
        f
    }

    /// Wires INTRQ (IRQ 6 on a PC).
    pub fn connect_irq(&mut self, irq: IrqLine) {
        self.irq = Some(irq);
    }

    /// Gives the controller virtual time, so that completions take
    /// [`COMMAND_DELAY`] (see the module docs).
    pub fn connect_time(&mut self, time: TimeSource) {
        self.time = Some(time);
    }

    /// When the next delayed completion is due.
    pub fn next_deadline(&self) -> Option<Nanos> {
        self.pending.front().map(|p| p.0)
    }

    /// Runs the completions due by `now`.
    pub fn advance(&mut self, now: Nanos) {
        while let Some(&(at, c)) = self.pending.front() {
            if at > now {
                break;
            }
            self.pending.pop_front();
            self.complete(c);
        }
    }

    fn complete(&mut self, c: Completion) {
        match c {
            Completion::Results => {
                self.phase = Phase::Result;
                self.rpos = 0;
            }
            Completion::Seek(st0, pcn) => self.seek_status.push_back((st0, pcn)),
            Completion::Reset => self.reset_sense = 4,
        }
        self.interrupt();
    }

    /// Completes `c` after [`COMMAND_DELAY`], or now without a time source.
    fn later(&mut self, c: Completion) {
        match &self.time {
            Some(t) => {
                let at = t.now() + COMMAND_DELAY;
                self.pending.push_back((at, c));
            }
            None => self.complete(c),
        }
    }

    /// Puts a disk in drive `n` (0 or 1).
    pub fn insert(&mut self, n: usize, image: DiskImage, geometry: FloppyGeometry) {
        if let Some(d) = self.drives.get_mut(n) {
            d.image = Some(image);
            d.geometry = Some(geometry);
            d.changed = true;
        }
    }

    /// Opens `spec` and puts it in drive `n`.
    pub fn insert_spec(&mut self, n: usize, spec: &ImageSpec) -> Result<(), ImageError> {
        let (img, g) = open_floppy(spec)?;
        self.insert(n, img, g);
        Ok(())
    }

    /// The image in drive `n`.
    pub fn image(&self, n: usize) -> Option<&DiskImage> {
        self.drives.get(n)?.image.as_ref()
    }

    /// Makes every write durable.
    pub fn flush(&mut self) -> Result<(), ImageError> {
        let mut first = Ok(());
        for d in &mut self.drives {
            if let Some(img) = &mut d.image {
                if let Err(e) = img.flush() {
                    tracing::error!("{e}");
                    if first.is_ok() {
                        first = Err(e);
                    }
                }
            }
        }
        first
    }

    /// Power-on state (the disks stay in).
    pub fn reset(&mut self) {
        self.dor = 0;
        self.tdr = 0;
        self.rate = 2;
        self.specify = [0, 0];
        self.config = 0x20; // FIFO disabled, polling on
        self.pretrack = 0;
        self.perpendicular = 0;
        self.lock = false;
        self.controller_reset();
        self.reset_sense = 0;
        self.irq_pending = false;
        for d in &mut self.drives {
            d.track = 0;
            d.changed = true;
        }
        self.update_irq();
    }

    /// The reset the DOR and DSR give: the command state is lost; the
    /// configuration survives while LOCK is set.
    fn controller_reset(&mut self) {
        self.phase = Phase::Command;
        self.cmd.clear();
        self.result.clear();
        self.rpos = 0;
        self.data.clear();
        self.dpos = 0;
        self.xfer = None;
        self.seek_status.clear();
        self.pending.clear();
        if !self.lock {
            self.config = 0x20;
            self.pretrack = 0;
        }
        self.perpendicular &= 0x03;
    }

    /// Leaves reset: four drives to report, and an interrupt.
    fn end_reset(&mut self) {
        self.later(Completion::Reset);
    }

    fn interrupt(&mut self) {
        self.irq_pending = true;
        self.update_irq();
    }

    fn clear_irq(&mut self) {
        self.irq_pending = false;
        self.update_irq();
    }

    fn update_irq(&mut self) {
        // DOR bit 3 gates INTRQ and DRQ onto the bus (AT mode).
        let level = self.irq_pending && self.dor & 0x08 != 0;
        if let Some(l) = &self.irq {
            l.set(level);
        }
    }

    fn non_dma(&self) -> bool {
        self.specify[1] & 1 != 0
    }

    fn in_reset(&self) -> bool {
        self.dor & 0x04 == 0
    }

    /// True when a DMA transfer waits for channel 2 (DRQ is asserted).
    pub fn dma_request(&self) -> bool {
        self.phase == Phase::Execution
            && self.xfer.is_some()
            && !self.non_dma()
            && self.dor & 0x08 != 0
    }

    fn msr(&self) -> u8 {
        if self.in_reset() {
            return 0;
        }
        match self.phase {
            Phase::Command if self.cmd.is_empty() => MSR_RQM,
            Phase::Command => MSR_RQM | MSR_CB,
            Phase::Result => MSR_RQM | MSR_DIO | MSR_CB,
            Phase::Execution if self.non_dma() && self.xfer.is_some() => {
                let dio = match self.xfer {
                    Some(Transfer { op: Op::Read, .. }) => MSR_DIO,
                    _ => 0,
                };
                MSR_RQM | MSR_NDMA | MSR_CB | dio
            }
            Phase::Execution => MSR_CB,
        }
    }

    /// A read of register `off` (0-7).
    pub fn read(&mut self, off: u16) -> u8 {
        match off {
            2 => self.dor,
            3 => self.tdr,
            4 => self.msr(),
            5 => self.fifo_read(),
            7 => {
                let d = &self.drives[usize::from(self.dor & 1)];
                u8::from(d.changed || d.geometry.is_none()) << 7
            }
            _ => 0xFF,
        }
    }

    /// A write of register `off` (0-7).
    pub fn write(&mut self, off: u16, v: u8) {
        match off {
            2 => {
                let was_reset = self.in_reset();
                self.dor = v;
                if self.in_reset() {
                    if !was_reset {
                        self.controller_reset();
                        self.clear_irq();
                    }
                } else if was_reset {
                    self.end_reset();
                }
                self.update_irq();
            }
            3 => self.tdr = v & 3,
            4 => {
                // DSR: bit 7 is a self-clearing software reset.
                self.rate = v & 3;
                if v & 0x80 != 0 {
                    self.controller_reset();
                    self.end_reset();
                }
            }
            5 => self.fifo_write(v),
            7 => self.rate = v & 3,
            _ => {}
        }
    }

    fn fifo_read(&mut self) -> u8 {
        if self.in_reset() {
            return 0;
        }
        match self.phase {
            Phase::Result => {
                if self.rpos == 0 {
                    self.clear_irq();
                }
                let v = self.result.get(self.rpos).copied().unwrap_or(0);
                self.rpos += 1;
                if self.rpos >= self.result.len() {
                    self.phase = Phase::Command;
                    self.result.clear();
                    self.rpos = 0;
                }
                v
            }
            Phase::Execution if self.non_dma() && self.is_read() => {
                let v = self.data.get(self.dpos).copied().unwrap_or(0);
                self.dpos += 1;
                if self.dpos >= self.data.len() {
                    let x = self.xfer.take().expect("a transfer in execution");
                    self.finish(&x, 0, 0);
                }
                v
            }
            _ => 0xFF,
        }
    }

    fn is_read(&self) -> bool {
        matches!(self.xfer, Some(Transfer { op: Op::Read, .. }))
    }

    fn fifo_write(&mut self, v: u8) {
        if self.in_reset() {
            return;
        }
        match self.phase {
            Phase::Command => {
                self.cmd.push(v);
                let need = command_len(self.cmd[0]).unwrap_or(1);
                if self.cmd.len() >= need {
                    let cmd = std::mem::take(&mut self.cmd);
                    self.execute(&cmd);
                }
            }
            Phase::Execution if self.non_dma() && !self.is_read() && self.xfer.is_some() => {
                if self.dpos < self.data.len() {
                    self.data[self.dpos] = v;
                    self.dpos += 1;
                }
                if self.dpos >= self.data.len() {
                    self.pio_write_done();
                }
            }
            _ => {}
        }
    }

    /// Enters the result phase with `bytes`: at once for commands that
    /// answer without interrupting, after the execution delay (with an
    /// interrupt) for those that interrupt.
    fn results(&mut self, bytes: &[u8], irq: bool) {
        self.result = bytes.to_vec();
        self.rpos = 0;
        if irq {
            // Busy (CB, no RQM) until the results come.
            self.phase = Phase::Execution;
            self.later(Completion::Results);
        } else {
            self.phase = Phase::Result;
        }
    }

    fn idle(&mut self) {
        self.phase = Phase::Command;
    }

    fn execute(&mut self, cmd: &[u8]) {
        let op = cmd[0];
        if command_len(op).is_none() {
            return self.results(&[ST0_INVALID], false);
        }
        match op & 0x1F {
            0x03 => {
                self.specify = [cmd[1], cmd[2]];
                self.idle();
            }
            0x04 => {
                let ds = usize::from(cmd[1] & 1);
                let hd = cmd[1] & 4;
                let d = &self.drives[ds];
                let two_sided = d.geometry.is_some_and(|g| g.heads == 2);
                let st3 = u8::from(d.write_protected()) << 6
                    | 0x20
                    | u8::from(d.track == 0) << 4
                    | u8::from(two_sided) << 3
                    | hd
                    | cmd[1] & 3;
                self.results(&[st3], false);
            }
            0x05 | 0x06 => {
                let t = Transfer {
                    op: if op & 0x1F == 0x06 {
                        Op::Read
                    } else {
                        Op::Write
                    },
                    drive: usize::from(cmd[1] & 3),
                    c: cmd[2],
                    h: cmd[3] & 1,
                    r: cmd[4],
                    n: cmd[5],
                    eot: cmd[6],
                    multi_track: op & 0x80 != 0,
                    count: 0,
                    fill: 0,
                };
                self.start_transfer(t, cmd[1]);
            }
            0x07 => {
                let ds = usize::from(cmd[1] & 3);
                self.seek(ds, 0, 0);
            }
            0x08 => {
                self.clear_irq();
                if self.reset_sense > 0 {
                    let n = 4 - self.reset_sense;
                    self.reset_sense -= 1;
                    let pcn = self.drives.get(usize::from(n)).map_or(0, |d| d.track);
                    self.results(&[0xC0 | n, pcn], false);
                } else if let Some((st0, pcn)) = self.seek_status.pop_front() {
                    self.results(&[st0, pcn], false);
                } else {
                    self.results(&[ST0_INVALID], false);
                }
            }
            0x0A => {
                let ds = usize::from(cmd[1] & 3);
                let hd = (cmd[1] >> 2) & 1;
                let st0_base = cmd[1] & 7;
                match self.drives.get(ds).filter(|d| d.geometry.is_some()) {
                    Some(d) if d.lba(d.track, hd, 1).is_some() => {
                        let t = d.track;
                        self.results(&[st0_base, 0, 0, t, hd, 1, 2], true);
                    }
                    _ => self.results(
                        &[st0_base | ST0_ABNORMAL, ST1_MISSING_AM, 0, 0, hd, 1, 2],
                        true,
                    ),
                }
            }
            0x0D => {
                let ds = usize::from(cmd[1] & 3);
                let t = Transfer {
                    op: Op::Format,
                    drive: ds,
                    c: self.drives.get(ds).map_or(0, |d| d.track),
                    h: (cmd[1] >> 2) & 1,
                    r: 1,
                    n: cmd[2],
                    eot: cmd[3],
                    multi_track: false,
                    count: cmd[3],
                    fill: cmd[5],
                };
                self.start_transfer(t, cmd[1]);
            }
            0x0E => {
                let pcn: Vec<u8> = (0..4)
                    .map(|i| self.drives.get(i).map_or(0, |d| d.track))
                    .collect();
                let v = [
                    pcn[0],
                    pcn[1],
                    pcn[2],
                    pcn[3],
                    self.specify[0],
                    self.specify[1],
                    0,
                    u8::from(self.lock) << 7 | self.perpendicular & 0x7F,
                    self.config,
                    self.pretrack,
                ];
                self.results(&v, false);
            }
            0x0F => {
                let ds = usize::from(cmd[1] & 3);
                self.seek(ds, (cmd[1] >> 2) & 1, cmd[2]);
            }
            0x10 => self.results(&[0x90], false),
            0x12 => {
                self.perpendicular = cmd[1];
                self.idle();
            }
            0x13 => {
                self.config = cmd[2];
                self.pretrack = cmd[3];
                self.idle();
            }
            0x14 => {
                self.lock = op & 0x80 != 0;
                self.results(&[u8::from(self.lock) << 4], false);
            }
            _ => self.results(&[ST0_INVALID], false),
        }
    }

    /// SEEK / RECALIBRATE: instant, then an interrupt for SENSE INTERRUPT.
    fn seek(&mut self, ds: usize, head: u8, cyl: u8) {
        let st0 = match self.drives.get_mut(ds) {
            Some(d) => {
                d.track = cyl;
                if d.geometry.is_some() {
                    d.changed = false;
                }
                ST0_SEEK_END | head << 2 | ds as u8
            }
            // No drive: the head never finds track 0.
            None => ST0_SEEK_END | ST0_ABNORMAL | ST0_EQUIPMENT | ds as u8,
        };
        self.idle();
        self.later(Completion::Seek(st0, cyl));
    }

    /// Checks a READ/WRITE/FORMAT and starts its execution phase.
    fn start_transfer(&mut self, t: Transfer, unit_byte: u8) {
        let st0_base = (unit_byte & 3) | t.h << 2;
        let Some(d) = self.drives.get(t.drive).filter(|d| d.image.is_some()) else {
            return self.fail(&t, st0_base | ST0_ABNORMAL | ST0_NOT_READY, ST1_MISSING_AM);
        };
        if t.op != Op::Read && d.write_protected() {
            return self.fail(&t, st0_base | ST0_ABNORMAL, ST1_NOT_WRITABLE);
        }
        if t.n != 2 || d.lba(t.c, t.h, t.r).is_none() && t.op != Op::Format {
            return self.fail(&t, st0_base | ST0_ABNORMAL, ST1_NO_DATA);
        }
        self.xfer = Some(t);
        self.phase = Phase::Execution;
        if self.non_dma() {
            self.start_pio();
        }
    }

    /// Ends a transfer with an error status.
    fn fail(&mut self, t: &Transfer, st0: u8, st1: u8) {
        self.xfer = None;
        self.results(&[st0, st1, 0, t.c, t.h, t.r, t.n], true);
    }

    /// Ends a transfer whose next sector is `t`'s position.
    fn finish(&mut self, t: &Transfer, st0_extra: u8, st1: u8) {
        let st0 = (t.drive as u8 & 3) | t.h << 2 | st0_extra;
        self.xfer = None;
        self.data.clear();
        self.dpos = 0;
        self.results(&[st0, st1, 0, t.c, t.h, t.r, t.n], true);
    }

    /// Moves `t` to the sector after its current one, as the 82077AA's
    /// result table has it (hosts count the sectors moved from the result
    /// C/H/R): false past the end of the track (multi-track: of the
    /// cylinder). At EOT the next is R = 1 on the next cylinder, the head
    /// unchanged; in multi-track mode the head flips and only the second
    /// side's end moves to the next cylinder.
    fn next_sector(t: &mut Transfer) -> bool {
        if t.r < t.eot {
            t.r += 1;
            return true;
        }
        t.r = 1;
        if t.multi_track {
            t.h ^= 1;
            if t.h == 1 {
                return true;
            }
        }
        t.c = t.c.wrapping_add(1);
        false
    }

    /// Runs the waiting DMA transfer through channel `ch` of `dma`.
    pub fn run_dma(&mut self, dma: &mut Dma8237, ch: usize, mem: &mut dyn DmaMemory) {
        let Some(mut t) = self.xfer else {
            return;
        };
        let mut buf = vec![0u8; SECTOR];
        loop {
            let d = &mut self.drives[t.drive];
            if t.op == Op::Format {
                if t.count == 0 {
                    return self.finish(&t, 0, 0);
                }
                let mut id = [0u8; 4];
                if dma.read_memory(ch, mem, &mut id) < 4 {
                    return self.finish(&t, 0, 0);
                }
                t.count -= 1;
                if let Some(lba) = d.lba(id[0], id[1], id[2]) {
                    buf.fill(t.fill);
                    if let Some(img) = &mut d.image {
                        if let Err(e) = img.write_sectors(lba, &buf) {
                            tracing::error!("floppy format: {e}");
                            return self.fail(&t, ST0_ABNORMAL, ST1_NOT_WRITABLE);
                        }
                    }
                }
                if dma.take_terminal(ch) && t.count > 0 {
                    return self.finish(&t, 0, 0);
                }
                continue;
            }
            let Some(lba) = d.lba(t.c, t.h, t.r) else {
                return self.fail(&t, ST0_ABNORMAL, ST1_NO_DATA);
            };
            let img = d.image.as_mut().expect("checked at the start");
            let moved = if t.op == Op::Read {
                if let Err(e) = img.read_sectors(lba, &mut buf) {
                    tracing::error!("floppy read: {e}");
                    return self.fail(&t, ST0_ABNORMAL, ST1_NO_DATA);
                }
                dma.write_memory(ch, mem, &buf)
            } else {
                buf.fill(0);
                let n = dma.read_memory(ch, mem, &mut buf);
                if n > 0 {
                    if let Err(e) = img.write_sectors(lba, &buf) {
                        tracing::error!("floppy write: {e}");
                        return self.fail(&t, ST0_ABNORMAL, ST1_NOT_WRITABLE);
                    }
                }
                n
            };
            let tc = dma.take_terminal(ch);
            if moved == 0 {
                // The channel moved nothing (wrong direction): stop here.
                return self.finish(&t, ST0_ABNORMAL, ST1_NO_DATA);
            }
            let more = Self::next_sector(&mut t);
            if tc {
                return self.finish(&t, 0, 0);
            }
            if !more {
                return self.finish(&t, ST0_ABNORMAL, ST1_END_OF_CYLINDER);
            }
            if !dma.ready(ch) {
                // Paused: the rest when the channel is ready again.
                self.xfer = Some(t);
                return;
            }
        }
    }

    /// Non-DMA mode: stage the data (reads) or the buffer (writes) up to
    /// the end of the track, then hand it through the FIFO.
    fn start_pio(&mut self) {
        let Some(t) = self.xfer else {
            return;
        };
        let d = &mut self.drives[t.drive];
        let Some(g) = d.geometry else {
            return;
        };
        let mut sectors = usize::from(t.eot.min(g.sectors).saturating_sub(t.r) + 1);
        if t.multi_track && t.h == 0 && g.heads == 2 {
            sectors += usize::from(t.eot.min(g.sectors));
        }
        if t.op == Op::Format {
            sectors = 0;
        }
        self.data = vec![0; sectors * SECTOR];
        self.dpos = 0;
        if t.op == Op::Read {
            let mut p = t;
            for s in 0..sectors {
                let lba = d.lba(p.c, p.h, p.r);
                let r = match (lba, d.image.as_mut()) {
                    (Some(lba), Some(img)) => {
                        img.read_sectors(lba, &mut self.data[s * SECTOR..(s + 1) * SECTOR])
                    }
                    _ => Ok(()),
                };
                if let Err(e) = r {
                    tracing::error!("floppy read: {e}");
                }
                Self::next_sector(&mut p);
            }
            // The result reports the sector after the last one read.
            self.xfer = Some(p);
        }
        if self.data.is_empty() {
            return self.finish(&t, ST0_ABNORMAL, ST1_NO_DATA);
        }
        self.interrupt();
    }

    /// Non-DMA write: the host filled the buffer; write the sectors.
    fn pio_write_done(&mut self) {
        let Some(mut t) = self.xfer else {
            return;
        };
        let data = std::mem::take(&mut self.data);
        let d = &mut self.drives[t.drive];
        for sector in data.chunks(SECTOR) {
            if let (Some(lba), Some(img)) = (d.lba(t.c, t.h, t.r), d.image.as_mut()) {
                if let Err(e) = img.write_sectors(lba, sector) {
                    tracing::error!("floppy write: {e}");
                    return self.fail(&t, ST0_ABNORMAL, ST1_NOT_WRITABLE);
                }
            }
            Self::next_sector(&mut t);
        }
        self.finish(&t, 0, 0);
    }
}

/// Bytes in a command, by its first byte (with the MT, MFM, SK or LOCK
/// bits the command allows); `None` for invalid commands, which answer at
/// once.
fn command_len(op: u8) -> Option<usize> {
    let allowed = |mask: u8| op & !0x1F & !mask == 0;
    Some(match op & 0x1F {
        0x03 if allowed(0) => 3,
        0x04 if allowed(0) => 2,
        0x05 if allowed(0xC0) => 9,
        0x06 if allowed(0xE0) => 9,
        0x07 if allowed(0) => 2,
        0x08 if allowed(0) => 1,
        0x0A if allowed(0x40) => 2,
        0x0D if allowed(0x40) => 6,
        0x0E if allowed(0) => 1,
        0x0F if allowed(0) => 3,
        0x10 if allowed(0) => 1,
        0x12 if allowed(0) => 2,
        0x13 if allowed(0) => 4,
        0x14 if allowed(0x80) => 1,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dma8237::IsaDma;
    use crate::lines::Wires;
    use crate::IoBus;
    use std::path::PathBuf;
    use std::sync::Arc;

    const MSR: u16 = 0x3F4;
    const FIFO: u16 = 0x3F5;
    const DOR: u16 = 0x3F2;

    fn byte(lba: u64, i: usize) -> u8 {
        (lba as usize * 3 + i * 11 + (i >> 8)) as u8
    }

    struct Rig {
        bus: IoBus,
        mem: Vec<u8>,
        wires: Arc<Wires>,
        dir: tempfile::TempDir,
    }

    /// An FDC with a 1.44M disk in drive A, out of reset, the reset
    /// interrupts acknowledged.
    fn rig(mode: ImageMode) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let p = image(&dir, "a.img", 2880);
        let mut fdc = Fdc::new();
        fdc.insert_spec(0, &ImageSpec::new(&p, mode)).unwrap();
        let wires = Wires::new();
        fdc.connect_irq(wires.irq(FDC_IRQ));
        let mut bus = IoBus::new();
        IsaDma::new(fdc).map(&mut bus).unwrap();
        let mut r = Rig {
            bus,
            mem: vec![0; 1 << 20],
            wires,
            dir,
        };
        r.out(DOR, 0x1C);
        assert!(r.irq());
        for n in 0..4 {
            assert_eq!(r.cmd(&[0x08], 2), [0xC0 | n, 0]);
        }
        assert!(!r.irq());
        r
    }

    fn image(dir: &tempfile::TempDir, name: &str, sectors: u64) -> PathBuf {
        let p = dir.path().join(name);
        let v: Vec<u8> = (0..sectors)
            .flat_map(|s| (0..SECTOR).map(move |i| byte(s, i)))
            .collect();
        std::fs::write(&p, v).unwrap();
        p
    }

    impl Rig {
        fn out(&mut self, port: u16, v: u8) {
            self.bus.pio_write_dma(port, 1, u32::from(v), &mut self.mem);
        }
        fn inb(&mut self, port: u16) -> u8 {
            self.bus.pio_read_dma(port, 1, &mut self.mem) as u8
        }
        fn irq(&self) -> bool {
            self.wires.irq_levels() & 1 << FDC_IRQ != 0
        }
        /// Sends a command and reads `results` bytes back (none: the
        /// caller looks at the execution phase itself).
        fn cmd(&mut self, bytes: &[u8], results: usize) -> Vec<u8> {
            for &b in bytes {
                assert_eq!(self.inb(MSR) & 0xC0, 0x80, "RQM, to the FDC");
                self.out(FIFO, b);
            }
            if results == 0 {
                return Vec::new();
            }
            self.results(results)
        }
        fn results(&mut self, n: usize) -> Vec<u8> {
            let mut v = Vec::new();
            for _ in 0..n {
                assert_eq!(self.inb(MSR) & 0xC0, 0xC0, "RQM, to the host");
                v.push(self.inb(FIFO));
            }
            assert_eq!(self.inb(MSR), 0x80, "back to the command phase");
            v
        }
        /// Programs DMA channel 2: `len` bytes at `addr`, `mode` (0x46
        /// write to memory, 0x4A read from memory).
        fn dma(&mut self, addr: u32, len: u16, mode: u8) {
            self.out(0x0A, 0x06);
            self.out(0x0C, 0);
            self.out(0x0B, mode);
            self.out(0x04, addr as u8);
            self.out(0x04, (addr >> 8) as u8);
            self.out(0x81, (addr >> 16) as u8);
            self.out(0x05, (len - 1) as u8);
            self.out(0x05, ((len - 1) >> 8) as u8);
            self.out(0x0A, 0x02);
        }
        fn file(&self) -> Vec<u8> {
            std::fs::read(self.dir.path().join("a.img")).unwrap()
        }
    }

    fn lba(c: u64, h: u64, r: u64) -> u64 {
        (c * 2 + h) * 18 + r - 1
    }

    #[test]
    fn geometry_from_image_size() {
        let g = FloppyGeometry::from_size(1_474_560).unwrap();
        assert_eq!((g.tracks, g.heads, g.sectors, g.total()), (80, 2, 18, 2880));
        assert_eq!(FloppyGeometry::from_size(737_280).unwrap().sectors, 9);
        assert_eq!(FloppyGeometry::from_size(2_949_120).unwrap().sectors, 36);
        assert!(FloppyGeometry::from_size(1_000_000).is_none());
        let dir = tempfile::tempdir().unwrap();
        let p = image(&dir, "odd.img", 100);
        let e = open_floppy(&ImageSpec::new(&p, ImageMode::ReadOnly)).unwrap_err();
        assert!(e.to_string().contains("floppy"), "{e}");
    }

    #[test]
    fn reset_version_configure_and_invalid_commands() {
        let mut r = rig(ImageMode::ReadWrite);
        assert_eq!(r.cmd(&[0x10], 1), [0x90]);
        assert_eq!(r.cmd(&[0x1F], 1), [0x80]);
        assert_eq!(r.cmd(&[0x43], 1), [0x80], "SPECIFY takes no MFM bit");
        assert_eq!(r.cmd(&[0x08], 1), [0x80], "no interrupt pending");
        r.cmd(&[0x03, 0xAF, 0x02], 0);
        r.cmd(&[0x13, 0x00, 0x57, 0x00], 0);
        assert_eq!(r.cmd(&[0x94], 1), [0x10]);
        let dump = r.cmd(&[0x0E], 10);
        assert_eq!(
            (dump[4], dump[5], dump[7] & 0x80, dump[8]),
            (0xAF, 0x02, 0x80, 0x57)
        );
        // A DSR software reset with LOCK set keeps the configuration.
        r.out(MSR, 0x80);
        assert!(r.irq());
        for n in 0..4 {
            assert_eq!(r.cmd(&[0x08], 2)[0], 0xC0 | n);
        }
        assert_eq!(r.cmd(&[0x0E], 10)[8], 0x57);
        // Held in reset, the FDC does not answer.
        r.out(DOR, 0x08);
        assert_eq!(r.inb(MSR), 0);
    }

    #[test]
    fn seek_recalibrate_sense_and_disk_change() {
        let mut r = rig(ImageMode::ReadWrite);
        assert_eq!(r.inb(0x3F7) & 0x80, 0x80, "changed at power-on");
        r.cmd(&[0x0F, 0x04, 5], 0);
        assert!(r.irq());
        assert_eq!(r.cmd(&[0x08], 2), [0x24, 5]);
        assert!(!r.irq());
        assert_eq!(r.inb(0x3F7) & 0x80, 0, "a seek with a disk in clears it");
        assert_eq!(r.cmd(&[0x04, 0x00], 1)[0] & 0x10, 0, "not on track 0");
        r.cmd(&[0x07, 0x00], 0);
        assert_eq!(r.cmd(&[0x08], 2), [0x20, 0]);
        assert_eq!(
            r.cmd(&[0x04, 0x00], 1)[0],
            0x38,
            "ready, track 0, two-sided"
        );
        // Drive B is empty: its change line stays high.
        r.out(DOR, 0x1D);
        assert_eq!(r.inb(0x3F7) & 0x80, 0x80);
        assert_eq!(r.cmd(&[0x0A, 0x01], 7)[0] & 0xC0, 0x40, "READ ID: no disk");
    }

    #[test]
    fn dma_read_write_and_multi_track() {
        let mut r = rig(ImageMode::ReadWrite);
        // Two sectors from C1 H0 R3.
        r.dma(0x1_0000, 1024, 0x46);
        r.cmd(&[0xE6, 0x00, 1, 0, 3, 2, 18, 0x1B, 0xFF], 0);
        assert!(r.irq());
        assert_eq!(r.results(7), [0, 0, 0, 1, 0, 5, 2]);
        assert!(!r.irq(), "the first result byte acknowledges");
        for s in 0..2 {
            let got = &r.mem[0x1_0000 + s * 512..0x1_0000 + (s + 1) * 512];
            let want: Vec<u8> = (0..512).map(|i| byte(lba(1, 0, 3) + s as u64, i)).collect();
            assert_eq!(got, &want[..]);
        }
        assert_eq!(r.inb(0x08) & 0x04, 0x04, "the 8237's TC for channel 2");
        // Multi-track: the last sector of side 0, then side 1's first.
        r.dma(0x2_0000, 1024, 0x46);
        r.cmd(&[0xC6, 0x00, 0, 0, 18, 2, 18, 0x1B, 0xFF], 0);
        assert_eq!(r.results(7), [0x04, 0, 0, 0, 1, 2, 2]);
        assert_eq!(r.mem[0x2_0200], byte(lba(0, 1, 1), 0));
        // A DMA count longer than the track: end of cylinder.
        r.dma(0x1_0000, 4096, 0x46);
        r.cmd(&[0x46, 0x00, 2, 0, 17, 2, 18, 0x1B, 0xFF], 0);
        assert_eq!(r.results(7), [0x40, 0x80, 0, 3, 0, 1, 2]);
        // Write two sectors at C2 H1 R1 from memory.
        for (i, b) in r.mem[0x3_0000..0x3_0400].iter_mut().enumerate() {
            *b = (i * 7) as u8;
        }
        let data = r.mem[0x3_0000..0x3_0400].to_vec();
        r.dma(0x3_0000, 1024, 0x4A);
        r.cmd(&[0x45, 0x04, 2, 1, 1, 2, 18, 0x1B, 0xFF], 0);
        assert_eq!(r.results(7), [0x04, 0, 0, 2, 1, 3, 2]);
        let at = lba(2, 1, 1) as usize * 512;
        assert_eq!(r.file()[at..at + 1024], data[..]);
    }

    #[test]
    fn dma_waits_for_an_unmasked_channel() {
        let mut r = rig(ImageMode::ReadWrite);
        r.dma(0x1_0000, 512, 0x46);
        r.out(0x0A, 0x06); // mask channel 2 again
        r.cmd(&[0x46, 0x00, 0, 0, 1, 2, 18, 0x1B, 0xFF], 0);
        assert_eq!(r.inb(MSR), 0x10, "busy, no RQM: waiting for DMA");
        assert!(!r.irq());
        r.out(0x0A, 0x02);
        assert!(r.irq());
        assert_eq!(r.results(7), [0, 0, 0, 0, 0, 2, 2]);
        assert_eq!(r.mem[0x1_0000 + 100], byte(0, 100));
    }

    #[test]
    fn read_only_disks_refuse_writes_and_format() {
        let mut r = rig(ImageMode::ReadOnly);
        let before = r.file();
        r.dma(0x1_0000, 512, 0x4A);
        r.cmd(&[0x45, 0x00, 0, 0, 1, 2, 18, 0x1B, 0xFF], 0);
        let res = r.results(7);
        assert_eq!((res[0] & 0xC0, res[1]), (0x40, 0x02), "not writable");
        r.cmd(&[0x4D, 0x00, 2, 18, 0x54, 0xF6], 0);
        assert_eq!(r.results(7)[1], 0x02);
        assert_eq!(r.file(), before);
    }

    #[test]
    fn read_id_and_format_track() {
        let mut r = rig(ImageMode::ReadWrite);
        r.cmd(&[0x0F, 0x00, 3], 0);
        r.cmd(&[0x08], 2);
        assert_eq!(r.cmd(&[0x4A, 0x04], 7), [0x04, 0, 0, 3, 1, 1, 2]);
        // Format C3 H1: 18 IDs at 0x4000, filled with 0xE5.
        for s in 0..18u8 {
            let at = 0x4000 + 4 * usize::from(s);
            r.mem[at..at + 4].copy_from_slice(&[3, 1, s + 1, 2]);
        }
        r.dma(0x4000, 72, 0x4A);
        r.cmd(&[0x4D, 0x04, 2, 18, 0x54, 0xE5], 0);
        assert_eq!(r.results(7)[0] & 0xC0, 0);
        let file = r.file();
        let at = lba(3, 1, 1) as usize * 512;
        assert!(file[at..at + 18 * 512].iter().all(|&b| b == 0xE5));
        assert_eq!(file[at - 1], byte(lba(3, 1, 1) - 1, 511));
    }

    #[test]
    fn non_dma_mode_reads_and_writes_through_the_fifo() {
        let mut r = rig(ImageMode::ReadWrite);
        r.cmd(&[0x03, 0xAF, 0x03], 0); // ND: non-DMA
        r.cmd(&[0x46, 0x00, 0, 0, 17, 2, 18, 0x1B, 0xFF], 0);
        assert!(r.irq());
        assert_eq!(r.inb(MSR), 0xF0, "RQM, DIO, NDMA, busy");
        let mut got = Vec::new();
        for _ in 0..1024 {
            got.push(r.inb(FIFO));
        }
        assert_eq!(got[0], byte(16, 0));
        assert_eq!(got[600], byte(17, 88));
        assert_eq!(r.results(7), [0, 0, 0, 1, 0, 1, 2]);
        r.cmd(&[0x45, 0x00, 0, 0, 18, 2, 18, 0x1B, 0xFF], 0);
        assert_eq!(r.inb(MSR), 0xB0);
        for i in 0..512 {
            r.out(FIFO, i as u8);
        }
        r.results(7);
        assert_eq!(r.file()[17 * 512 + 5], 5);
    }

    /// With virtual time, the data moves at once but the interrupt and
    /// the results come COMMAND_DELAY later (seeks and resets too).
    #[test]
    fn completions_wait_for_virtual_time() {
        let dir = tempfile::tempdir().unwrap();
        let p = image(&dir, "a.img", 2880);
        let time = crate::TimeSource::new();
        let mut fdc = Fdc::new();
        fdc.insert_spec(0, &ImageSpec::new(&p, ImageMode::ReadWrite))
            .unwrap();
        let wires = Wires::new();
        fdc.connect_irq(wires.irq(FDC_IRQ));
        fdc.connect_time(time.clone());
        let mut bus = IoBus::new();
        IsaDma::new(fdc).map(&mut bus).unwrap();
        let mut r = Rig {
            bus,
            mem: vec![0; 1 << 20],
            wires,
            dir,
        };
        let tick = |r: &mut Rig, ns| {
            time.set(time.now() + ns);
            r.bus.advance(time.now());
        };
        r.out(DOR, 0x1C);
        assert!(!r.irq(), "the reset interrupt comes later");
        assert_eq!(r.bus.next_deadline(), Some(COMMAND_DELAY));
        tick(&mut r, COMMAND_DELAY);
        assert!(r.irq());
        for _ in 0..4 {
            r.cmd(&[0x08], 2);
        }
        r.cmd(&[0x0F, 0x00, 1], 0);
        assert_eq!(r.cmd(&[0x08], 1), [0x80], "the seek has not ended yet");
        tick(&mut r, COMMAND_DELAY);
        assert_eq!(r.cmd(&[0x08], 2), [0x20, 1]);
        r.dma(0x1_0000, 512, 0x46);
        r.cmd(&[0x46, 0x00, 1, 0, 1, 2, 18, 0x1B, 0xFF], 0);
        assert_eq!(r.mem[0x1_0000], byte(lba(1, 0, 1), 0), "the data is there");
        assert_eq!(r.inb(MSR), 0x10, "busy until the results");
        assert!(!r.irq());
        tick(&mut r, COMMAND_DELAY - 1);
        assert!(!r.irq());
        tick(&mut r, 1);
        assert!(r.irq());
        assert_eq!(r.results(7), [0, 0, 0, 1, 0, 2, 2]);
        assert_eq!(r.bus.next_deadline(), None);
    }

    /// Seeded random traffic on the 8237 and FDC ports (with a disk in and
    /// DMA into memory) never panics, and the FDC still answers.
    #[test]
    fn random_traffic_never_panics() {
        let mut r = rig(ImageMode::Snapshot);
        let ports: Vec<u16> = (0..16)
            .chain(0xC0..0xE0)
            .chain(0x81..0x90)
            .chain([0x3F0, 0x3F1, 0x3F2, 0x3F3, 0x3F4, 0x3F5, 0x3F7])
            .collect();
        let mut x: u64 = 0x853C_49E6_748F_EA9B;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let firsts = [
            0x03u8, 0x04, 0x45, 0xE6, 0x07, 0x08, 0x4A, 0x4D, 0x0E, 0x0F, 0x10, 0x13, 0x94,
        ];
        for _ in 0..200_000 {
            let v = next();
            match v % 4 {
                0 => r.out(FIFO, firsts[(v >> 8) as usize % firsts.len()]),
                1 => {
                    let _ = r.inb(ports[(v >> 8) as usize % ports.len()]);
                }
                _ => {
                    let p = ports[(v >> 8) as usize % ports.len()];
                    // Keep the FDC out of reset most of the time.
                    let b = if p == DOR {
                        (v >> 32) as u8 | 0x04
                    } else {
                        (v >> 32) as u8
                    };
                    r.out(p, b);
                }
            }
        }
        r.out(DOR, 0x00);
        r.out(DOR, 0x1C);
        for _ in 0..4 {
            r.cmd(&[0x08], 2);
        }
        assert_eq!(r.cmd(&[0x10], 1), [0x90]);
    }
}
