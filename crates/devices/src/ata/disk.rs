//! The ATA command set of a hard disk: IDENTIFY, PIO (single and
//! multiple), DMA, LBA28/LBA48/CHS addressing, FLUSH CACHE, SET FEATURES,
//! INITIALIZE DEVICE PARAMETERS and the housekeeping commands.

use super::{error, status, DmaJob, Drive, DriveKind, Xfer, SECTOR};

/// Most sectors per block of READ/WRITE MULTIPLE (IDENTIFY word 47).
pub const MAX_MULTIPLE: u8 = 16;

/// Sectors read or written per step of a long transfer.
pub(crate) const CHUNK_SECTORS: u64 = 128;

/// How a command addresses the disk.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Addr {
    /// LBA28 or CHS, as the device register says; count 0 means 256.
    Short,
    /// LBA48; count 0 means 65536.
    Ext,
}

/// Puts `s` into IDENTIFY words as ATA strings are: two characters a word,
/// the first in the high byte, padded with spaces.
pub(crate) fn put_string(words: &mut [u16], s: &str) {
    let b = s.as_bytes();
    for (i, w) in words.iter_mut().enumerate() {
        let hi = b.get(2 * i).copied().unwrap_or(b' ');
        let lo = b.get(2 * i + 1).copied().unwrap_or(b' ');
        *w = u16::from(hi) << 8 | u16::from(lo);
    }
}

/// Packs IDENTIFY words into the 512 bytes the host reads.
pub(crate) fn words_to_bytes(words: &[u16; 256]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

impl Drive {
    /// Sectors on the medium.
    pub(crate) fn sectors(&self) -> u64 {
        self.image.as_ref().map_or(0, |i| i.sectors())
    }

    /// The default CHS geometry of a disk: 16 heads, 63 sectors a track.
    pub(crate) fn default_geometry(&self) -> Option<(u8, u8)> {
        (self.kind == Some(DriveKind::Disk)).then_some((16, 63))
    }

    /// Cylinders of the current logical geometry.
    fn cylinders(&self) -> u16 {
        let per_cyl = u64::from(self.heads.max(1)) * u64::from(self.spt.max(1));
        (self.sectors() / per_cyl).clamp(1, 16383) as u16
    }

    /// The address and count of a read/write command, or None (with the
    /// error set) when the address is unusable.
    fn address(&mut self, a: Addr) -> Option<(u64, u64)> {
        let tf = &self.tf;
        let (lba, count) = match a {
            Addr::Ext => {
                let lba = u64::from(tf.hob_lbah) << 40
                    | u64::from(tf.hob_lbam) << 32
                    | u64::from(tf.hob_lbal) << 24
                    | u64::from(tf.lbah) << 16
                    | u64::from(tf.lbam) << 8
                    | u64::from(tf.lbal);
                let n = u64::from(tf.hob_nsect) << 8 | u64::from(tf.nsect);
                (lba, if n == 0 { 65536 } else { n })
            }
            Addr::Short => {
                let n = if tf.nsect == 0 {
                    256
                } else {
                    u64::from(tf.nsect)
                };
                if tf.device & 0x40 != 0 {
                    let lba = u64::from(tf.device & 0x0F) << 24
                        | u64::from(tf.lbah) << 16
                        | u64::from(tf.lbam) << 8
                        | u64::from(tf.lbal);
                    (lba, n)
                } else {
                    let cyl = u64::from(tf.lbah) << 8 | u64::from(tf.lbam);
                    let head = u64::from(tf.device & 0x0F);
                    let sect = u64::from(tf.lbal);
                    let (heads, spt) = (u64::from(self.heads), u64::from(self.spt));
                    if sect == 0 || sect > spt || head >= heads {
                        self.fail(error::IDNF);
                        return None;
                    }
                    ((cyl * heads + head) * spt + sect - 1, n)
                }
            }
        };
        if lba
            .checked_add(count)
            .is_none_or(|end| end > self.sectors())
        {
            self.fail(error::IDNF);
            return None;
        }
        Some((lba, count))
    }

    /// Writes `lba` back to the task file (the last sector a command
    /// reached, as drives report it), in the command's addressing form.
    fn set_lba(&mut self, lba: u64, a: Addr) {
        let tf = &mut self.tf;
        match a {
            Addr::Ext => {
                tf.lbal = lba as u8;
                tf.lbam = (lba >> 8) as u8;
                tf.lbah = (lba >> 16) as u8;
                tf.hob_lbal = (lba >> 24) as u8;
                tf.hob_lbam = (lba >> 32) as u8;
                tf.hob_lbah = (lba >> 40) as u8;
            }
            Addr::Short if tf.device & 0x40 != 0 => {
                tf.lbal = lba as u8;
                tf.lbam = (lba >> 8) as u8;
                tf.lbah = (lba >> 16) as u8;
                tf.device = (tf.device & 0xF0) | ((lba >> 24) as u8 & 0x0F);
            }
            Addr::Short => {
                let (heads, spt) = (u64::from(self.heads.max(1)), u64::from(self.spt.max(1)));
                let cyl = lba / (heads * spt);
                let rest = lba % (heads * spt);
                tf.lbam = cyl as u8;
                tf.lbah = (cyl >> 8) as u8;
                tf.device = (tf.device & 0xF0) | (rest / spt) as u8 & 0x0F;
                tf.lbal = (rest % spt + 1) as u8;
            }
        }
    }

    /// Runs an ATA command on a hard disk; true to interrupt.
    pub(crate) fn disk_command(&mut self, cmd: u8) -> bool {
        let ext = matches!(cmd, 0x24 | 0x29 | 0x34 | 0x39 | 0x25 | 0x35 | 0x42);
        let a = if ext { Addr::Ext } else { Addr::Short };
        match cmd {
            0xEC => {
                self.buf = words_to_bytes(&self.identify());
                self.xfer = Xfer::BufferIn;
                self.drq(SECTOR);
                true
            }
            // READ SECTORS (EXT) and READ MULTIPLE (EXT).
            0x20 | 0x21 | 0x24 | 0xC4 | 0x29 => {
                let block = if matches!(cmd, 0xC4 | 0x29) {
                    if self.multiple == 0 {
                        self.fail(error::ABRT);
                        return true;
                    }
                    u16::from(self.multiple)
                } else {
                    1
                };
                let Some((lba, count)) = self.address(a) else {
                    return true;
                };
                self.xfer = Xfer::DiskIn {
                    lba,
                    left: count,
                    block,
                    ext,
                };
                self.next_in_block()
            }
            // WRITE SECTORS (EXT) and WRITE MULTIPLE (EXT).
            0x30 | 0x31 | 0x34 | 0xC5 | 0x39 => {
                let block = if matches!(cmd, 0xC5 | 0x39) {
                    if self.multiple == 0 {
                        self.fail(error::ABRT);
                        return true;
                    }
                    u16::from(self.multiple)
                } else {
                    1
                };
                if self.image.as_ref().is_none_or(|i| i.read_only()) {
                    self.fail(error::ABRT);
                    return true;
                }
                let Some((lba, count)) = self.address(a) else {
                    return true;
                };
                let n = count.min(u64::from(block)) as usize;
                self.buf = vec![0; n * SECTOR];
                self.xfer = Xfer::DiskOut {
                    lba,
                    left: count,
                    block,
                    ext,
                };
                // The first block is asked for without an interrupt.
                self.drq(n * SECTOR);
                false
            }
            // READ DMA (EXT), WRITE DMA (EXT).
            0xC8 | 0xC9 | 0x25 | 0xCA | 0xCB | 0x35 => {
                let write = matches!(cmd, 0xCA | 0xCB | 0x35);
                let a = if matches!(cmd, 0x25 | 0x35) {
                    Addr::Ext
                } else {
                    Addr::Short
                };
                if write && self.image.as_ref().is_none_or(|i| i.read_only()) {
                    self.fail(error::ABRT);
                    return true;
                }
                let Some((lba, count)) = self.address(a) else {
                    return true;
                };
                self.stop_transfer();
                self.dma = Some(if write {
                    DmaJob::DiskWrite { lba, count }
                } else {
                    DmaJob::DiskRead { lba, count }
                });
                self.status = status::DRDY | status::DSC | status::DRQ;
                false
            }
            // READ VERIFY SECTORS (EXT): the address is checked, no data.
            0x40..=0x42 => {
                if let Some((lba, count)) = self.address(a) {
                    self.done();
                    self.set_lba(lba + count - 1, a);
                }
                true
            }
            // FLUSH CACHE (EXT).
            0xE7 | 0xEA => {
                match self.image.as_mut().map(|i| i.flush()) {
                    Some(Err(e)) => {
                        tracing::error!("FLUSH CACHE: {e}");
                        self.fail(error::ABRT);
                    }
                    _ => self.done(),
                }
                true
            }
            0xC6 => {
                // SET MULTIPLE MODE: a power of two up to the maximum, or 0 (off).
                let n = self.tf.nsect;
                if n == 0 || (n.is_power_of_two() && n <= MAX_MULTIPLE) {
                    self.multiple = n;
                    self.done();
                } else {
                    self.fail(error::ABRT);
                }
                true
            }
            0x91 => {
                // INITIALIZE DEVICE PARAMETERS: the CHS translation.
                let spt = self.tf.nsect;
                let heads = (self.tf.device & 0x0F) + 1;
                if spt == 0 {
                    self.fail(error::ABRT);
                } else {
                    self.heads = heads;
                    self.spt = spt;
                    self.done();
                }
                true
            }
            0xEF => {
                self.set_features();
                true
            }
            // RECALIBRATE, SEEK, idle/standby, CHECK POWER MODE.
            0x10..=0x1F | 0x70 | 0xE0..=0xE3 | 0xE6 | 0x94..=0x99 => {
                self.done();
                true
            }
            0xE5 => {
                self.done();
                self.tf.nsect = 0xFF; // active or idle
                true
            }
            0x90 => {
                // EXECUTE DEVICE DIAGNOSTIC.
                self.done();
                self.set_signature();
                self.error = 0x01;
                true
            }
            _ => {
                tracing::debug!(cmd, "unsupported ATA command");
                self.fail(error::ABRT);
                true
            }
        }
    }

    /// SET FEATURES, for disks and ATAPI drives.
    pub(crate) fn set_features(&mut self) {
        match self.tf.feature {
            0x02 => self.write_cache = true,
            0x82 => self.write_cache = false,
            0x03 => {
                // Transfer mode: PIO default/0-4, multiword DMA 0-2, UDMA 0-5.
                let mode = self.tf.nsect;
                let ok = match mode >> 3 {
                    0 | 1 => mode & 7 <= 4,
                    4 => mode & 7 <= 2,
                    8 => mode & 7 <= 5,
                    _ => false,
                };
                if !ok {
                    self.fail(error::ABRT);
                    return;
                }
                self.xfer_mode = mode;
            }
            // Read look-ahead, reverting to defaults, APM/acoustic: accepted.
            0x55 | 0xAA | 0x66 | 0xCC | 0x05 | 0x85 | 0x42 | 0xC2 => {}
            f => {
                tracing::debug!(feature = f, "unsupported SET FEATURES");
                self.fail(error::ABRT);
                return;
            }
        }
        self.done();
    }

    /// Reads the next PIO block for the host; true to interrupt.
    fn next_in_block(&mut self) -> bool {
        let Xfer::DiskIn {
            lba,
            left,
            block,
            ext,
        } = self.xfer
        else {
            return false;
        };
        let a = if ext { Addr::Ext } else { Addr::Short };
        let n = left.min(u64::from(block));
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(n as usize * SECTOR, 0);
        let r = match self.image.as_mut() {
            Some(img) => img.read_sectors(lba, &mut buf),
            None => {
                self.fail(error::ABRT);
                return true;
            }
        };
        if let Err(e) = r {
            tracing::error!("disk read: {e}");
            self.set_lba(lba, a);
            self.fail(error::UNC);
            return true;
        }
        self.buf = buf;
        self.set_lba(lba + n - 1, a);
        self.xfer = Xfer::DiskIn {
            lba: lba + n,
            left: left - n,
            block,
            ext,
        };
        self.drq(n as usize * SECTOR);
        true
    }

    /// A PIO block of a disk transfer is done; true to interrupt.
    pub(crate) fn disk_block_done(&mut self) -> bool {
        match self.xfer {
            Xfer::DiskIn { left: 0, .. } => {
                self.done();
                false
            }
            Xfer::DiskIn { .. } => self.next_in_block(),
            Xfer::DiskOut {
                lba,
                left,
                block,
                ext,
            } => {
                let a = if ext { Addr::Ext } else { Addr::Short };
                let n = left.min(u64::from(block));
                let buf = std::mem::take(&mut self.buf);
                let r = match self.image.as_mut() {
                    Some(img) => img.write_sectors(lba, &buf),
                    None => Ok(()),
                };
                if let Err(e) = r {
                    tracing::error!("disk write: {e}");
                    self.set_lba(lba, a);
                    self.fail(error::ABRT);
                    return true;
                }
                self.set_lba(lba + n - 1, a);
                let left = left - n;
                if left == 0 {
                    self.done();
                    return true;
                }
                let m = left.min(u64::from(block)) as usize;
                self.buf = buf;
                self.buf.resize(m * SECTOR, 0);
                self.xfer = Xfer::DiskOut {
                    lba: lba + n,
                    left,
                    block,
                    ext,
                };
                self.drq(m * SECTOR);
                true
            }
            _ => false,
        }
    }

    /// The IDENTIFY DEVICE data of a hard disk (ATA/ATAPI-7 words).
    pub(crate) fn identify(&self) -> [u16; 256] {
        let mut w = [0u16; 256];
        let total = self.sectors();
        let (dh, ds) = self.default_geometry().unwrap_or((16, 63));
        let dcyl = (total / (u64::from(dh) * u64::from(ds))).clamp(1, 16383) as u16;
        w[0] = 0x0040; // fixed disk
        w[1] = dcyl;
        w[3] = u16::from(dh);
        w[6] = u16::from(ds);
        put_string(&mut w[10..20], &format!("MORPH86-HD{:02}", self.index));
        put_string(&mut w[23..27], "1.0");
        put_string(&mut w[27..47], "MORPH86 HARDDISK");
        w[47] = 0x8000 | u16::from(MAX_MULTIPLE);
        w[49] = 1 << 11 | 1 << 9 | 1 << 8; // IORDY, LBA, DMA
        w[50] = 0x4000;
        w[51] = 0x0200; // PIO timing mode 2 (obsolete field)
        w[53] = 0x0007; // words 54-58, 64-70 and 88 are valid
        let cyl = self.cylinders();
        w[54] = cyl;
        w[55] = u16::from(self.heads);
        w[56] = u16::from(self.spt);
        let cur = u32::from(cyl) * u32::from(self.heads) * u32::from(self.spt);
        w[57] = cur as u16;
        w[58] = (cur >> 16) as u16;
        if self.multiple != 0 {
            w[59] = 0x0100 | u16::from(self.multiple);
        }
        let lba28 = total.min(0x0FFF_FFFF) as u32;
        w[60] = lba28 as u16;
        w[61] = (lba28 >> 16) as u16;
        // Multiword DMA 0-2 supported; the selected mode in the high byte.
        let (mw, udma) = match self.xfer_mode >> 3 {
            4 => (1u16 << (self.xfer_mode & 7), 0u16),
            8 => (0, 1u16 << (self.xfer_mode & 7)),
            _ => (0, 0),
        };
        w[63] = 0x0007 | mw << 8;
        w[64] = 0x0003; // PIO 3 and 4
        w[65] = 120;
        w[66] = 120;
        w[67] = 120;
        w[68] = 120;
        w[80] = 0x00F0; // ATA/ATAPI-4 to -7
        w[81] = 0x0016;
        w[82] = 1 << 5; // volatile write cache
        w[83] = 0x4000 | 1 << 13 | 1 << 12 | 1 << 10; // FLUSH CACHE (EXT), LBA48
        w[84] = 0x4000;
        w[85] = u16::from(self.write_cache) << 5;
        w[86] = 1 << 13 | 1 << 12 | 1 << 10;
        w[87] = 0x4000;
        w[88] = 0x003F | udma << 8; // UDMA 0-5
        w[93] = 0x4000 | 0x0001; // hardware reset result: device 0 passed
        for (i, word) in w[100..104].iter_mut().enumerate() {
            *word = (total >> (16 * i)) as u16;
        }
        w
    }
}
