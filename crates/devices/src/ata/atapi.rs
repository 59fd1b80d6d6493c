//! ATAPI: the PACKET protocol and the MMC commands a CD-ROM drive answers
//! (TEST UNIT READY, REQUEST SENSE, INQUIRY, READ CAPACITY, READ(10/12),
//! MODE SENSE, READ TOC, GET CONFIGURATION, GET EVENT STATUS NOTIFICATION,
//! START STOP UNIT, PREVENT ALLOW MEDIUM REMOVAL, READ DISC INFORMATION,
//! MECHANISM STATUS), with sense data.
//!
//! The protocol (ATA/ATAPI-7 vol. 2): PACKET sets DRQ with the interrupt
//! reason "command" (sector count = 01h) and takes 12 bytes at the data
//! port. A data-in command then hands out DRQ blocks of at most the byte
//! count limit the host put in the LBA mid/high registers (reported back
//! there for each block), with reason "data to host" (02h) and an interrupt
//! per block; the end is reason "status" (03h) with an interrupt. With the
//! features register's DMA bit the reply goes through the bus master
//! instead. Errors end the command with ERR, the sense key in the error
//! register's high nibble, and the sense data kept for REQUEST SENSE.

use super::disk::{put_string, words_to_bytes};
use super::{error, status, DmaJob, Drive, Xfer, CD_SECTOR, SECTOR};

/// Interrupt reason (sector count): command/data, and direction.
const REASON_CD: u8 = 0x01;
const REASON_IO: u8 = 0x02;

// Sense keys.
const NOT_READY: u8 = 0x02;
const MEDIUM_ERROR: u8 = 0x03;
const ILLEGAL_REQUEST: u8 = 0x05;
const UNIT_ATTENTION: u8 = 0x06;

// Additional sense codes.
const ASC_INVALID_OPCODE: u8 = 0x20;
const ASC_LBA_OUT_OF_RANGE: u8 = 0x21;
const ASC_INVALID_FIELD: u8 = 0x24;
const ASC_MEDIUM_CHANGED: u8 = 0x28;
const ASC_SAVING_NOT_SUPPORTED: u8 = 0x39;
const ASC_NO_MEDIUM: u8 = 0x3A;
const ASC_REMOVAL_PREVENTED: u8 = 0x53;

/// CD sectors staged at a time for PIO reads (at least one 64 KiB block).
const STAGE_SECTORS: u64 = 32;

/// What a packet command produced.
enum Reply {
    /// No data: the command is done.
    Done,
    /// Data for the host (already cut to the allocation length).
    Data(Vec<u8>),
    /// CD sectors for the host.
    Read { lba: u64, count: u64 },
    /// Failed with this sense key, ASC and ASCQ.
    Error(u8, u8, u8),
}

fn be16(b: &[u8]) -> usize {
    usize::from(u16::from_be_bytes([b[0], b[1]]))
}

fn be32(b: &[u8]) -> u64 {
    u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// A reply cut to `alloc` bytes.
fn data(mut v: Vec<u8>, alloc: usize) -> Reply {
    v.truncate(alloc);
    Reply::Data(v)
}

/// LBA to the MSF form of READ TOC (with the 2-second lead-in).
fn msf(lba: u64) -> [u8; 4] {
    let f = lba + 150;
    [0, (f / 75 / 60) as u8, (f / 75 % 60) as u8, (f % 75) as u8]
}

impl Drive {
    /// True when a disc is in and the tray is closed.
    fn medium(&self) -> bool {
        self.image.is_some() && !self.atapi.tray_open
    }

    /// Runs an ATA command on an ATAPI drive; true to interrupt.
    pub(crate) fn atapi_command(&mut self, cmd: u8) -> bool {
        match cmd {
            0xA0 => {
                // PACKET: take the command bytes, no interrupt.
                self.atapi.dma = self.tf.feature & 0x01 != 0;
                self.buf = vec![0; 12];
                self.xfer = Xfer::Packet;
                self.drq(12);
                self.tf.nsect = REASON_CD;
                false
            }
            0xA1 => {
                self.buf = words_to_bytes(&self.identify_packet());
                self.xfer = Xfer::BufferIn;
                self.drq(SECTOR);
                true
            }
            0x08 => {
                // DEVICE RESET: the ATAPI soft reset; no interrupt.
                self.reset();
                false
            }
            0x90 => {
                self.reset();
                true
            }
            0xEF => {
                self.set_features();
                true
            }
            0xE0..=0xE3 | 0xE6 => {
                self.done();
                true
            }
            0xE5 => {
                self.done();
                self.tf.nsect = 0xFF;
                true
            }
            _ => {
                // ATA commands a packet device does not take (IDENTIFY
                // DEVICE, READ SECTORS...) abort with the signature in
                // place, which is how hosts tell an ATAPI device.
                self.fail(error::ABRT);
                self.set_signature();
                true
            }
        }
    }

    /// The IDENTIFY PACKET DEVICE data.
    pub(crate) fn identify_packet(&self) -> [u16; 256] {
        let mut w = [0u16; 256];
        // ATAPI, CD-ROM, removable, DRQ within 50 us, 12-byte packets.
        w[0] = 2 << 14 | 5 << 8 | 1 << 7 | 2 << 5;
        put_string(&mut w[10..20], &format!("MORPH86-CD{:02}", self.index));
        put_string(&mut w[23..27], "1.0");
        put_string(&mut w[27..47], "MORPH86 CD-ROM");
        w[49] = 1 << 11 | 1 << 9 | 1 << 8; // IORDY, LBA, DMA
        w[53] = 0x0007;
        let (mw, udma) = match self.xfer_mode >> 3 {
            4 => (1u16 << (self.xfer_mode & 7), 0u16),
            8 => (0, 1u16 << (self.xfer_mode & 7)),
            _ => (0, 0),
        };
        w[63] = 0x0007 | mw << 8;
        w[64] = 0x0003;
        w[65] = 120;
        w[66] = 120;
        w[67] = 120;
        w[68] = 120;
        w[71] = 30;
        w[72] = 30;
        w[80] = 0x001E; // ATA/ATAPI-1 to -4
        w[82] = 1 << 4 | 1 << 9; // PACKET, DEVICE RESET
        w[83] = 0x4000;
        w[84] = 0x4000;
        w[85] = 1 << 4 | 1 << 9;
        w[87] = 0x4000;
        w[88] = 0x003F | udma << 8;
        w[93] = 0x4000 | 0x0001;
        w
    }

    /// Ends a packet command without error: interrupt reason "status".
    pub(crate) fn atapi_complete(&mut self) {
        self.done();
        self.tf.nsect = REASON_IO | REASON_CD;
        self.atapi.sense = (0, 0, 0);
    }

    /// Ends a packet command with a CHECK CONDITION.
    pub(crate) fn atapi_error(&mut self, key: u8, asc: u8, ascq: u8) {
        self.fail(
            key << 4
                | if key == ILLEGAL_REQUEST {
                    error::ABRT
                } else {
                    0
                },
        );
        self.tf.nsect = REASON_IO | REASON_CD;
        self.atapi.sense = (key, asc, ascq);
    }

    /// The 12 command bytes are in: run the command; true to interrupt.
    pub(crate) fn packet_received(&mut self) -> bool {
        let mut cdb = [0u8; 12];
        cdb.copy_from_slice(&self.buf[..12]);
        self.atapi.packet = cdb;
        self.buf.clear();
        self.pos = 0;
        self.end = 0;
        let reply = self.run_packet(&cdb);
        let limit = u16::from(self.tf.lbah) << 8 | u16::from(self.tf.lbam);
        match reply {
            Reply::Done => {
                self.atapi_complete();
                true
            }
            Reply::Error(k, a, q) => {
                self.atapi_error(k, a, q);
                true
            }
            Reply::Data(v) if v.is_empty() => {
                self.atapi_complete();
                true
            }
            Reply::Read { count: 0, .. } => {
                self.atapi_complete();
                true
            }
            Reply::Data(v) => {
                self.buf = v;
                if self.atapi.dma {
                    return self.wait_dma(DmaJob::Buffer);
                }
                self.xfer = Xfer::AtapiIn {
                    lba: 0,
                    left: 0,
                    limit,
                };
                self.atapi_next_block()
            }
            Reply::Read { lba, count } => {
                if self.atapi.dma {
                    return self.wait_dma(DmaJob::CdRead { lba, count });
                }
                self.xfer = Xfer::AtapiIn {
                    lba,
                    left: count,
                    limit,
                };
                self.atapi_next_block()
            }
        }
    }

    /// Leaves a reply for the bus master.
    fn wait_dma(&mut self, job: DmaJob) -> bool {
        self.xfer = Xfer::None;
        self.pos = 0;
        self.end = 0;
        self.dma = Some(job);
        self.status = status::DRDY | status::DSC | status::DRQ;
        self.tf.nsect = REASON_IO;
        false
    }

    /// Offers the next DRQ block of an ATAPI data-in transfer (staging CD
    /// sectors as needed); true to interrupt.
    fn atapi_next_block(&mut self) -> bool {
        let Xfer::AtapiIn {
            mut lba,
            mut left,
            limit,
        } = self.xfer
        else {
            return false;
        };
        // Drop what the host has read.
        self.buf.drain(..self.pos.min(self.buf.len()));
        self.pos = 0;
        // The largest block: the limit (0 and 0xFFFF mean 0xFFFE), even.
        let limit = match limit {
            0 | 0xFFFF => 0xFFFE,
            l => usize::from(l),
        };
        while self.buf.len() < limit && left > 0 {
            let n = left.min(STAGE_SECTORS);
            let at = self.buf.len();
            self.buf.resize(at + n as usize * CD_SECTOR, 0);
            let r = match self.image.as_mut() {
                Some(img) if !self.atapi.tray_open => img.read_sectors(lba, &mut self.buf[at..]),
                _ => {
                    self.atapi_error(NOT_READY, ASC_NO_MEDIUM, 0);
                    return true;
                }
            };
            if let Err(e) = r {
                tracing::error!("CD read: {e}");
                self.atapi_error(MEDIUM_ERROR, 0x11, 0);
                return true;
            }
            lba += n;
            left -= n;
        }
        if self.buf.is_empty() {
            self.atapi_complete();
            return true;
        }
        let mut block = self.buf.len();
        if block > limit {
            block = limit & !1;
        }
        self.xfer = Xfer::AtapiIn {
            lba,
            left,
            limit: limit as u16,
        };
        self.drq(block);
        self.tf.nsect = REASON_IO;
        self.tf.lbam = block as u8;
        self.tf.lbah = (block >> 8) as u8;
        true
    }

    /// The host read a whole DRQ block; true to interrupt.
    pub(crate) fn atapi_block_done(&mut self) -> bool {
        self.atapi_next_block()
    }

    /// Runs the command in `cdb`.
    fn run_packet(&mut self, cdb: &[u8; 12]) -> Reply {
        let op = cdb[0];
        // Commands that report rather than fail on a unit attention.
        let reports = matches!(op, 0x03 | 0x12 | 0x46 | 0x4A);
        if self.atapi.unit_attention && !reports {
            self.atapi.unit_attention = false;
            return Reply::Error(UNIT_ATTENTION, ASC_MEDIUM_CHANGED, 0);
        }
        let no_medium = || Reply::Error(NOT_READY, ASC_NO_MEDIUM, 0);
        let tray = if self.atapi.tray_open { 2 } else { 1 };
        match op {
            0x00 => {
                // TEST UNIT READY
                if self.medium() {
                    Reply::Done
                } else {
                    Reply::Error(NOT_READY, ASC_NO_MEDIUM, tray)
                }
            }
            0x03 => {
                // REQUEST SENSE (fixed format); the sense is then cleared.
                let (key, asc, ascq) = self.atapi.sense;
                let mut v = vec![0u8; 18];
                v[0] = 0x70;
                v[2] = key;
                v[7] = 10;
                v[12] = asc;
                v[13] = ascq;
                self.atapi.sense = (0, 0, 0);
                data(v, usize::from(cdb[4]))
            }
            0x12 => {
                // INQUIRY (standard data only).
                if cdb[1] & 1 != 0 {
                    return Reply::Error(ILLEGAL_REQUEST, ASC_INVALID_FIELD, 0);
                }
                let mut v = vec![0u8; 36];
                v[0] = 0x05; // CD/DVD device
                v[1] = 0x80; // removable
                v[2] = 0x00;
                v[3] = 0x21; // ATAPI, response format 1
                v[4] = 31;
                v[8..16].copy_from_slice(b"MORPH86 ");
                v[16..32].copy_from_slice(b"CD-ROM          ");
                v[32..36].copy_from_slice(b"1.0 ");
                data(v, be16(&cdb[3..5]))
            }
            0x25 => {
                // READ CAPACITY: the last LBA and the block size.
                if !self.medium() {
                    return no_medium();
                }
                let last = (self.sectors().saturating_sub(1)).min(u64::from(u32::MAX)) as u32;
                let mut v = last.to_be_bytes().to_vec();
                v.extend_from_slice(&(CD_SECTOR as u32).to_be_bytes());
                Reply::Data(v)
            }
            0x28 | 0xA8 => {
                // READ(10), READ(12)
                if !self.medium() {
                    return no_medium();
                }
                let lba = be32(&cdb[2..6]);
                let count = if op == 0x28 {
                    be16(&cdb[7..9]) as u64
                } else {
                    be32(&cdb[6..10])
                };
                if lba + count > self.sectors() {
                    return Reply::Error(ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE, 0);
                }
                Reply::Read { lba, count }
            }
            0x2B => {
                // SEEK(10)
                if !self.medium() {
                    return no_medium();
                }
                if be32(&cdb[2..6]) >= self.sectors() {
                    return Reply::Error(ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE, 0);
                }
                Reply::Done
            }
            0x1A | 0x5A => self.mode_sense(cdb),
            0x43 => self.read_toc(cdb),
            0x46 => self.get_configuration(cdb),
            0x4A => {
                // GET EVENT STATUS NOTIFICATION: polled mode only.
                if cdb[1] & 1 == 0 {
                    return Reply::Error(ILLEGAL_REQUEST, ASC_INVALID_FIELD, 0);
                }
                let alloc = be16(&cdb[7..9]);
                let v = if cdb[4] & 0x10 != 0 {
                    let code = if std::mem::take(&mut self.atapi.media_event) {
                        2 // new media
                    } else {
                        0
                    };
                    let state = u8::from(self.medium()) << 1 | u8::from(self.atapi.tray_open);
                    vec![0, 6, 0x04, 0x10, code, state, 0, 0]
                } else {
                    vec![0, 2, 0x80, 0x10] // no event class asked for
                };
                data(v, alloc)
            }
            0x1B => {
                // START STOP UNIT: LoEj with Start clear opens the tray,
                // with Start set closes it.
                let (start, loej) = (cdb[4] & 1 != 0, cdb[4] & 2 != 0);
                if loej {
                    if !start {
                        if self.atapi.locked {
                            return Reply::Error(ILLEGAL_REQUEST, ASC_REMOVAL_PREVENTED, 2);
                        }
                        self.atapi.tray_open = true;
                    } else if self.atapi.tray_open {
                        self.atapi.tray_open = false;
                        if self.image.is_some() {
                            self.atapi.unit_attention = true;
                            self.atapi.media_event = true;
                        }
                    }
                }
                Reply::Done
            }
            0x51 => {
                // READ DISC INFORMATION (standard form): a finalised disc
                // with one session of one track.
                if cdb[1] & 7 != 0 {
                    return Reply::Error(ILLEGAL_REQUEST, ASC_INVALID_FIELD, 0);
                }
                if !self.medium() {
                    return no_medium();
                }
                let mut v = vec![0u8; 34];
                v[1] = 32;
                v[2] = 0x0E; // last session complete, disc complete
                v[3] = 1; // first track
                v[4] = 1; // sessions
                v[5] = 1; // first track of the last session
                v[6] = 1; // last track of the last session
                v[16..24].fill(0xFF); // no lead-in / lead-out times
                data(v, be16(&cdb[7..9]))
            }
            0xBD => {
                // MECHANISM STATUS: no changer, nothing playing.
                let mut v = vec![0u8; 8];
                if self.atapi.tray_open {
                    v[1] = 0x10; // door open
                }
                data(v, be16(&cdb[8..10]))
            }
            0x1E => {
                // PREVENT ALLOW MEDIUM REMOVAL
                self.atapi.locked = cdb[4] & 1 != 0;
                Reply::Done
            }
            _ => {
                tracing::debug!(op, "unsupported ATAPI command");
                Reply::Error(ILLEGAL_REQUEST, ASC_INVALID_OPCODE, 0)
            }
        }
    }

    /// MODE SENSE(6) and (10): the error recovery and capabilities pages.
    fn mode_sense(&mut self, cdb: &[u8; 12]) -> Reply {
        let ten = cdb[0] == 0x5A;
        let page = cdb[2] & 0x3F;
        let control = cdb[2] >> 6;
        let alloc = if ten {
            be16(&cdb[7..9])
        } else {
            usize::from(cdb[4])
        };
        if control == 3 {
            return Reply::Error(ILLEGAL_REQUEST, ASC_SAVING_NOT_SUPPORTED, 0);
        }
        let changeable = control == 1;
        let recovery = |v: &mut Vec<u8>| {
            v.extend_from_slice(&[0x01, 0x06]);
            v.extend_from_slice(if changeable {
                &[0; 6]
            } else {
                &[0x00, 0x05, 0, 0, 0, 0]
            });
        };
        let caps = |v: &mut Vec<u8>, locked: bool| {
            v.extend_from_slice(&[0x2A, 0x14]);
            if changeable {
                v.extend_from_slice(&[0; 20]);
                return;
            }
            // Reads CD-R/RW; multisession; tray loader with lock and eject.
            let mech = 0x29 | u8::from(locked) << 1;
            let kbs = 706u16.to_be_bytes(); // 4x
            v.extend_from_slice(&[0x03, 0x00, 0x41, 0x00, mech, 0x00]);
            v.extend_from_slice(&[kbs[0], kbs[1], 0x00, 0x02, 0x02, 0x00, kbs[0], kbs[1]]);
            v.extend_from_slice(&[0; 6]);
        };
        let mut pages = Vec::new();
        match page {
            0x01 => recovery(&mut pages),
            0x2A => caps(&mut pages, self.atapi.locked),
            0x3F => {
                recovery(&mut pages);
                caps(&mut pages, self.atapi.locked);
            }
            _ => return Reply::Error(ILLEGAL_REQUEST, ASC_INVALID_FIELD, 0),
        }
        // Medium type: 120 mm data disc, or "no disc".
        let medium = if self.medium() { 0x01 } else { 0x70 };
        let mut v = if ten {
            let len = (pages.len() + 6) as u16;
            let l = len.to_be_bytes();
            vec![l[0], l[1], medium, 0, 0, 0, 0, 0]
        } else {
            vec![(pages.len() + 3) as u8, medium, 0, 0]
        };
        v.extend_from_slice(&pages);
        data(v, alloc)
    }

    /// READ TOC/PMA/ATIP formats 0 (TOC) and 1 (session info) of a
    /// single-track data disc.
    fn read_toc(&mut self, cdb: &[u8; 12]) -> Reply {
        if !self.medium() {
            return Reply::Error(NOT_READY, ASC_NO_MEDIUM, 0);
        }
        let use_msf = cdb[1] & 0x02 != 0;
        let mut format = cdb[2] & 0x0F;
        if format == 0 {
            format = cdb[9] >> 6; // the older place for it
        }
        let track = cdb[6];
        let alloc = be16(&cdb[7..9]);
        let addr = |lba: u64| {
            if use_msf {
                msf(lba)
            } else {
                (lba as u32).to_be_bytes()
            }
        };
        let mut v = vec![0, 0, 1, 1];
        match format {
            0 => {
                if track > 1 && track != 0xAA {
                    return Reply::Error(ILLEGAL_REQUEST, ASC_INVALID_FIELD, 0);
                }
                if track <= 1 {
                    v.extend_from_slice(&[0, 0x14, 1, 0]);
                    v.extend_from_slice(&addr(0));
                }
                v.extend_from_slice(&[0, 0x14, 0xAA, 0]);
                v.extend_from_slice(&addr(self.sectors()));
            }
            1 => {
                v.extend_from_slice(&[0, 0x14, 1, 0]);
                v.extend_from_slice(&addr(0));
            }
            _ => return Reply::Error(ILLEGAL_REQUEST, ASC_INVALID_FIELD, 0),
        }
        let len = (v.len() - 2) as u16;
        v[..2].copy_from_slice(&len.to_be_bytes());
        data(v, alloc)
    }

    /// GET CONFIGURATION: the profile list (CD-ROM), core and removable
    /// medium features.
    fn get_configuration(&mut self, cdb: &[u8; 12]) -> Reply {
        let rt = cdb[1] & 3;
        let start = be16(&cdb[2..4]);
        let alloc = be16(&cdb[7..9]);
        let current = self.medium();
        let profile: u16 = if current { 0x0008 } else { 0 };
        let features: [(usize, Vec<u8>); 3] = [
            (
                0,
                vec![0x00, 0x00, 0x03, 0x04, 0x00, 0x08, u8::from(current), 0x00],
            ),
            (1, vec![0x00, 0x01, 0x0B, 0x08, 0, 0, 0, 2, 0x01, 0, 0, 0]),
            (3, vec![0x00, 0x03, 0x03, 0x04, 0x29, 0, 0, 0]),
        ];
        let mut v = vec![0u8; 8];
        v[6..8].copy_from_slice(&profile.to_be_bytes());
        for (code, f) in &features {
            let wanted = match rt {
                2 => *code == start,
                _ => *code >= start,
            };
            if wanted {
                v.extend_from_slice(f);
            }
        }
        let len = (v.len() - 4) as u32;
        v[..4].copy_from_slice(&len.to_be_bytes());
        data(v, alloc)
    }
}
