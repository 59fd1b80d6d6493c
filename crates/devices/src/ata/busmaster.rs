//! PIIX bus-master IDE: each channel's command, status and PRD table
//! pointer registers, and the transfer that walks a physical region
//! descriptor table through [`DmaMemory`].
//!
//! A PRD entry is 8 bytes: the region's physical address (bit 0 ignored),
//! its byte count in bits 15..1 of the second dword (0 meaning 64 KiB), and
//! end-of-table in bit 31. At the end of a transfer the status register
//! reads as Linux's `ata_bmdma` code expects of a PIIX:
//!
//! * the interrupt bit is set (it is set by any rising IDE interrupt);
//! * the active bit clears when the table's last region was filled, and
//!   stays set when the table describes more memory than the drive moved
//!   (the PIIX datasheet's two cases);
//! * the error bit is set when a descriptor or a region is not memory the
//!   device can reach; the drive's command then fails with ABRT;
//! * a table shorter than the transfer ends it with the active bit clear
//!   and the drive's command aborted (a real drive would hang with DRQ).

use super::disk::CHUNK_SECTORS;
use super::{error, status, DmaJob, Drive, CD_SECTOR, SECTOR};
use crate::dma::DmaMemory;
use serde::{Deserialize, Serialize};

/// Ports in the bus-master window (both channels).
pub const BM_PORTS: u32 = 16;

/// Command register: start/stop bus master.
pub(crate) const BM_CMD_START: u8 = 0x01;
/// Command register: direction (1: the device writes memory).
const BM_CMD_WRITE: u8 = 0x08;
/// Status register: bus master active.
pub(crate) const BM_STATUS_ACTIVE: u8 = 0x01;
/// Status register: DMA error (write 1 to clear).
pub(crate) const BM_STATUS_ERROR: u8 = 0x02;
/// Status register: interrupt (write 1 to clear).
pub(crate) const BM_STATUS_INT: u8 = 0x04;
/// Status register: drive 0 and 1 DMA capable (plain read/write bits).
const BM_STATUS_CAPABLE: u8 = 0x60;

/// Most entries a table may have: 64 KiB of descriptors (a table must not
/// cross a 64 KiB boundary), which bounds a walk of a table with no
/// end-of-table bit.
const MAX_PRD_ENTRIES: u32 = 8192;

/// One channel's bus-master registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusMaster {
    /// Command register (start, direction).
    pub command: u8,
    /// Status register.
    pub status: u8,
    /// PRD table address.
    pub prd: u32,
}

impl BusMaster {
    /// Reads the register byte at `off` (0..8).
    pub(crate) fn read(&self, off: u16) -> u8 {
        match off {
            0 => self.command & (BM_CMD_START | BM_CMD_WRITE),
            2 => self.status,
            4..=7 => (self.prd >> (8 * (off - 4))) as u8,
            _ => 0,
        }
    }

    /// Writes the register byte at `off`; true when the start bit rose.
    pub(crate) fn write(&mut self, off: u16, v: u8) -> bool {
        match off {
            0 => {
                let was = self.command & BM_CMD_START != 0;
                self.command = v & (BM_CMD_START | BM_CMD_WRITE);
                let start = v & BM_CMD_START != 0;
                if start && !was {
                    self.status |= BM_STATUS_ACTIVE;
                    return true;
                }
                if !start {
                    // Stopping aborts the engine: active clears.
                    self.status &= !BM_STATUS_ACTIVE;
                }
                false
            }
            2 => {
                let w1c = v & (BM_STATUS_ERROR | BM_STATUS_INT);
                self.status = (self.status & !w1c & !BM_STATUS_CAPABLE) | (v & BM_STATUS_CAPABLE);
                false
            }
            4..=7 => {
                let sh = 8 * (off - 4);
                self.prd = (self.prd & !(0xFF << sh)) | u32::from(v) << sh;
                self.prd &= !3;
                false
            }
            _ => false,
        }
    }
}

/// Why a transfer stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DmaFault {
    /// A descriptor or region was not reachable memory.
    Memory,
    /// The table ended before the transfer did.
    ShortTable,
}

/// A position in a PRD table.
pub(crate) struct PrdCursor {
    /// Address of the next descriptor.
    next: u32,
    /// The current region: address and bytes left.
    addr: u32,
    left: u32,
    /// The current region is the table's last.
    eot: bool,
    entries: u32,
}

impl PrdCursor {
    /// A cursor at the table at `table`.
    pub(crate) fn new(table: u32) -> PrdCursor {
        PrdCursor {
            next: table,
            addr: 0,
            left: 0,
            eot: false,
            entries: 0,
        }
    }

    /// Makes the current region non-empty, fetching descriptors.
    fn region(&mut self, mem: &mut dyn DmaMemory) -> Result<(), DmaFault> {
        while self.left == 0 {
            if self.eot || self.entries >= MAX_PRD_ENTRIES {
                return Err(DmaFault::ShortTable);
            }
            let mut d = [0u8; 8];
            if !mem.dma_read(u64::from(self.next), &mut d) {
                return Err(DmaFault::Memory);
            }
            let addr = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
            let ctl = u32::from_le_bytes([d[4], d[5], d[6], d[7]]);
            self.addr = addr & !1;
            self.left = match ctl & 0xFFFE {
                0 => 0x1_0000,
                n => n,
            };
            self.eot = ctl & 0x8000_0000 != 0;
            self.next = self.next.wrapping_add(8);
            self.entries += 1;
        }
        Ok(())
    }

    /// Moves `data` into memory along the table.
    pub(crate) fn write(&mut self, mem: &mut dyn DmaMemory, data: &[u8]) -> Result<(), DmaFault> {
        let mut done = 0;
        while done < data.len() {
            self.region(mem)?;
            let n = (self.left as usize).min(data.len() - done);
            if !mem.dma_write(u64::from(self.addr), &data[done..done + n]) {
                return Err(DmaFault::Memory);
            }
            self.advance(n);
            done += n;
        }
        Ok(())
    }

    /// Fills `buf` from memory along the table.
    pub(crate) fn read(&mut self, mem: &mut dyn DmaMemory, buf: &mut [u8]) -> Result<(), DmaFault> {
        let mut done = 0;
        while done < buf.len() {
            self.region(mem)?;
            let n = (self.left as usize).min(buf.len() - done);
            if !mem.dma_read(u64::from(self.addr), &mut buf[done..done + n]) {
                return Err(DmaFault::Memory);
            }
            self.advance(n);
            done += n;
        }
        Ok(())
    }

    fn advance(&mut self, n: usize) {
        self.addr = self.addr.wrapping_add(n as u32);
        self.left -= n as u32;
    }

    /// The whole table was used: its last region is full.
    pub(crate) fn exhausted(&self) -> bool {
        self.eot && self.left == 0
    }
}

/// Runs `drive`'s pending DMA job through `bm`'s table; updates both
/// status registers. True to interrupt.
pub(crate) fn run(bm: &mut BusMaster, drive: &mut Drive, mem: &mut dyn DmaMemory) -> bool {
    let Some(job) = drive.dma.take() else {
        return false;
    };
    let mut cur = PrdCursor::new(bm.prd);
    let result = transfer(drive, job, &mut cur, mem);
    match result {
        Ok(()) => {
            if cur.exhausted() {
                bm.status &= !BM_STATUS_ACTIVE;
            }
            drive.dma_done(job);
        }
        Err(Outcome::Fault(f)) => {
            bm.status &= !BM_STATUS_ACTIVE;
            if f == DmaFault::Memory {
                bm.status |= BM_STATUS_ERROR;
            }
            drive.dma_failed(error::ABRT);
        }
        Err(Outcome::Medium(err)) => {
            bm.status &= !BM_STATUS_ACTIVE;
            drive.dma_failed(err);
        }
    }
    true
}

/// How a transfer failed: on the memory side or the medium's.
enum Outcome {
    Fault(DmaFault),
    /// The image failed; the drive's error register value.
    Medium(u8),
}

impl From<DmaFault> for Outcome {
    fn from(f: DmaFault) -> Outcome {
        Outcome::Fault(f)
    }
}

fn transfer(
    drive: &mut Drive,
    job: DmaJob,
    cur: &mut PrdCursor,
    mem: &mut dyn DmaMemory,
) -> Result<(), Outcome> {
    match job {
        DmaJob::DiskRead { lba, count } | DmaJob::CdRead { lba, count } => {
            let ss = if matches!(job, DmaJob::CdRead { .. }) {
                CD_SECTOR
            } else {
                SECTOR
            };
            let chunk = CHUNK_SECTORS * SECTOR as u64 / ss as u64;
            let mut buf = Vec::new();
            let mut at = 0;
            while at < count {
                let n = (count - at).min(chunk);
                buf.resize(n as usize * ss, 0);
                let img = drive.image.as_mut().ok_or(Outcome::Medium(error::ABRT))?;
                if let Err(e) = img.read_sectors(lba + at, &mut buf) {
                    tracing::error!("DMA read: {e}");
                    return Err(Outcome::Medium(error::UNC));
                }
                cur.write(mem, &buf)?;
                at += n;
            }
            Ok(())
        }
        DmaJob::DiskWrite { lba, count } => {
            let mut buf = Vec::new();
            let mut at = 0;
            while at < count {
                let n = (count - at).min(CHUNK_SECTORS);
                buf.resize(n as usize * SECTOR, 0);
                cur.read(mem, &mut buf)?;
                let img = drive.image.as_mut().ok_or(Outcome::Medium(error::ABRT))?;
                if let Err(e) = img.write_sectors(lba + at, &buf) {
                    tracing::error!("DMA write: {e}");
                    return Err(Outcome::Medium(error::ABRT));
                }
                at += n;
            }
            Ok(())
        }
        DmaJob::Buffer => {
            let data = std::mem::take(&mut drive.buf);
            cur.write(mem, &data)?;
            Ok(())
        }
    }
}

impl Drive {
    /// A DMA job finished: the command completes.
    fn dma_done(&mut self, job: DmaJob) {
        match job {
            DmaJob::CdRead { .. } | DmaJob::Buffer => self.atapi_complete(),
            DmaJob::DiskRead { .. } | DmaJob::DiskWrite { .. } => self.done(),
        }
    }

    /// A DMA job failed with `err` for the error register.
    fn dma_failed(&mut self, err: u8) {
        if self.kind == Some(super::DriveKind::Cdrom) {
            // Reported as a medium error: sense 03/11/00 (or ABRT's 05/00).
            if err == error::UNC {
                self.atapi_error(3, 0x11, 0);
            } else {
                self.atapi_error(0x0B, 0, 0); // ABORTED COMMAND
            }
        } else {
            self.fail(err);
        }
        self.status |= status::DRDY;
    }
}
