//! A minimal IDE channel for the BIOS tests: the ATA/ATAPI register
//! interface (task file, alternate status, soft reset), PIO IDENTIFY,
//! READ/WRITE SECTORS (LBA28 and LBA48) and the ATAPI packet commands a
//! BIOS uses (TEST UNIT READY, REQUEST SENSE, READ CAPACITY, READ(10)),
//! with the channel's interrupt. It stands in for the real controller
//! (another piece of work) so that INT 13h and the boot paths can be
//! checked; it is no model of timing or of the rest of the standard.

use morph86_devices::{Device, IrqLine};

/// A device on the channel.
pub enum Unit {
    /// A hard disk of 512-byte sectors.
    Disk(Vec<u8>),
    /// A CD-ROM of 2048-byte sectors.
    Cd(Vec<u8>),
}

impl Unit {
    fn atapi(&self) -> bool {
        matches!(self, Unit::Cd(_))
    }
}

/// What the data register is doing.
enum Phase {
    Idle,
    /// Data for the host: bytes left in the buffer.
    In,
    /// Data from the host for WRITE: sectors left after this one.
    Out {
        lba: u64,
        left: u32,
    },
    /// The 12-byte packet from the host.
    Packet,
}

/// One IDE channel with up to two units.
pub struct Channel {
    pub units: [Option<Unit>; 2],
    irq: IrqLine,
    sel: usize,
    regs: [u8; 8],
    hob: [u8; 8],
    status: u8,
    error: u8,
    nien: bool,
    buf: Vec<u8>,
    pos: usize,
    phase: Phase,
    /// Sectors still to read for a multi-sector READ (after the buffer).
    read_left: u32,
    read_lba: u64,
    read_ext: bool,
    /// ATAPI: bytes the current READ(10) still has to deliver.
    atapi_pending: Vec<u8>,
    sense_key: u8,
    asc: u8,
    limit: usize,
}

const DRDY: u8 = 0x40;
const DRQ: u8 = 0x08;
const ERR: u8 = 0x01;

impl Channel {
    pub fn new(units: [Option<Unit>; 2], irq: IrqLine) -> Channel {
        let mut c = Channel {
            units,
            irq,
            sel: 0,
            regs: [0; 8],
            hob: [0; 8],
            status: 0,
            error: 0,
            nien: false,
            buf: Vec::new(),
            pos: 0,
            phase: Phase::Idle,
            read_left: 0,
            read_lba: 0,
            read_ext: false,
            atapi_pending: Vec::new(),
            sense_key: 6, // unit attention after power-on, for the CD
            asc: 0x29,
            limit: 0,
        };
        c.soft_reset();
        c
    }

    fn unit(&self) -> Option<&Unit> {
        self.units[self.sel].as_ref()
    }

    fn any(&self) -> bool {
        self.units.iter().any(Option::is_some)
    }

    fn soft_reset(&mut self) {
        self.sel = 0;
        self.phase = Phase::Idle;
        self.error = 1;
        self.regs[2] = 1;
        self.regs[3] = 1;
        let atapi = self.unit().is_some_and(Unit::atapi);
        self.regs[4] = if atapi { 0x14 } else { 0 };
        self.regs[5] = if atapi { 0xEB } else { 0 };
        self.status = if atapi { 0 } else { DRDY };
    }

    fn interrupt(&mut self) {
        if !self.nien {
            self.irq.raise();
        }
    }

    fn abort(&mut self) {
        self.status = DRDY | ERR;
        self.error = 0x04;
        self.phase = Phase::Idle;
        self.interrupt();
    }

    fn lba(&self, ext: bool) -> u64 {
        if ext {
            u64::from(self.regs[3])
                | u64::from(self.regs[4]) << 8
                | u64::from(self.regs[5]) << 16
                | u64::from(self.hob[3]) << 24
                | u64::from(self.hob[4]) << 32
                | u64::from(self.hob[5]) << 40
        } else {
            u64::from(self.regs[3])
                | u64::from(self.regs[4]) << 8
                | u64::from(self.regs[5]) << 16
                | u64::from(self.regs[6] & 0x0F) << 24
        }
    }

    fn count(&self, ext: bool) -> u32 {
        let c = if ext {
            u32::from(self.regs[2]) | u32::from(self.hob[2]) << 8
        } else {
            u32::from(self.regs[2])
        };
        match (c, ext) {
            (0, false) => 256,
            (0, true) => 65536,
            (c, _) => c,
        }
    }

    fn give(&mut self, data: Vec<u8>) {
        self.buf = data;
        self.pos = 0;
        self.phase = Phase::In;
        self.status = DRDY | DRQ;
        self.interrupt();
    }

    fn identify(&mut self, atapi: bool) {
        let mut w = [0u16; 256];
        let model = if atapi {
            "MORPH86 TEST CD-ROM"
        } else {
            "MORPH86 TEST DISK"
        };
        let mut m = [b' '; 40];
        m[..model.len()].copy_from_slice(model.as_bytes());
        for i in 0..20 {
            w[27 + i] = u16::from(m[2 * i]) << 8 | u16::from(m[2 * i + 1]);
        }
        if atapi {
            w[0] = 0x8580;
        } else {
            let n = match self.unit() {
                Some(Unit::Disk(d)) => (d.len() / 512) as u64,
                _ => 0,
            };
            w[0] = 0x0040;
            w[1] = (n / (16 * 63)).min(16383) as u16;
            w[3] = 16;
            w[6] = 63;
            w[49] = 0x0200;
            w[60] = n as u16;
            w[61] = (n.min(0x0FFF_FFFF) >> 16) as u16;
            w[83] = 0x4400;
            w[100] = n as u16;
            w[101] = (n >> 16) as u16;
            w[102] = (n >> 32) as u16;
        }
        self.give(w.iter().flat_map(|x| x.to_le_bytes()).collect());
    }

    fn next_read(&mut self) {
        let Some(Unit::Disk(d)) = self.unit() else {
            return self.abort();
        };
        let at = self.read_lba as usize * 512;
        let Some(s) = d.get(at..at + 512) else {
            return self.abort();
        };
        let s = s.to_vec();
        self.read_lba += 1;
        self.read_left -= 1;
        self.give(s);
    }

    fn command(&mut self, cmd: u8) {
        let Some(unit) = self.unit() else {
            return;
        };
        let atapi = unit.atapi();
        match (cmd, atapi) {
            (0xEC, false) => self.identify(false),
            (0xA1, true) => self.identify(true),
            (0x20 | 0x24, false) => {
                let ext = cmd == 0x24;
                self.read_lba = self.lba(ext);
                self.read_left = self.count(ext);
                self.read_ext = ext;
                self.next_read();
            }
            (0x30 | 0x34, false) => {
                let ext = cmd == 0x34;
                self.phase = Phase::Out {
                    lba: self.lba(ext),
                    left: self.count(ext),
                };
                self.buf = Vec::new();
                self.status = DRDY | DRQ;
            }
            (0xA0, true) => {
                self.limit = usize::from(self.regs[4]) | usize::from(self.regs[5]) << 8;
                self.buf = Vec::new();
                self.phase = Phase::Packet;
                self.status = DRQ;
                self.regs[2] = 1; // CoD
            }
            _ => self.abort(),
        }
    }

    fn atapi_fail(&mut self, key: u8, asc: u8) {
        self.sense_key = key;
        self.asc = asc;
        self.status = ERR | DRDY;
        self.error = key << 4;
        self.phase = Phase::Idle;
        self.interrupt();
    }

    fn atapi_data(&mut self) {
        let n = self.atapi_pending.len().min(self.limit.max(2) & !1);
        if n == 0 {
            self.status = DRDY;
            self.phase = Phase::Idle;
            self.regs[2] = 3; // I/O, CoD: status
            self.interrupt();
            return;
        }
        let chunk: Vec<u8> = self.atapi_pending.drain(..n).collect();
        self.regs[4] = n as u8;
        self.regs[5] = (n >> 8) as u8;
        self.regs[2] = 2;
        self.give(chunk);
    }

    fn packet(&mut self, p: &[u8]) {
        let Some(Unit::Cd(cd)) = self.unit() else {
            return self.abort();
        };
        let sectors = cd.len() / 2048;
        match p[0] {
            0x00 if self.sense_key != 0 => {
                let (k, a) = (self.sense_key, self.asc);
                self.atapi_fail(k, a);
                self.sense_key = 0;
                self.asc = 0;
            }
            0x00 => {
                self.atapi_pending.clear();
                self.atapi_data();
            }
            0x03 => {
                let mut s = vec![0u8; 18];
                s[0] = 0x70;
                s[2] = self.sense_key;
                s[7] = 10;
                s[12] = self.asc;
                s.truncate(usize::from(p[4]));
                self.atapi_pending = s;
                self.atapi_data();
            }
            0x25 => {
                let mut c = (sectors as u32 - 1).to_be_bytes().to_vec();
                c.extend(2048u32.to_be_bytes());
                self.atapi_pending = c;
                self.atapi_data();
            }
            0x28 => {
                let lba = u32::from_be_bytes([p[2], p[3], p[4], p[5]]) as usize;
                let n = usize::from(u16::from_be_bytes([p[7], p[8]]));
                match cd.get(lba * 2048..(lba + n) * 2048) {
                    Some(d) => {
                        self.atapi_pending = d.to_vec();
                        self.atapi_data();
                    }
                    None => self.atapi_fail(5, 0x21),
                }
            }
            _ => self.atapi_fail(5, 0x20),
        }
    }

    fn data_read(&mut self) -> u16 {
        if !matches!(self.phase, Phase::In) {
            return 0xFFFF;
        }
        let v = u16::from_le_bytes([self.buf[self.pos], self.buf[self.pos + 1]]);
        self.pos += 2;
        if self.pos >= self.buf.len() {
            self.phase = Phase::Idle;
            self.status = DRDY;
            if self.unit().is_some_and(Unit::atapi) {
                self.atapi_data();
            } else if self.read_left > 0 {
                self.next_read();
            }
        }
        v
    }

    fn data_write(&mut self, v: u16) {
        self.buf.extend(v.to_le_bytes());
        match self.phase {
            Phase::Packet if self.buf.len() == 12 => {
                let p = std::mem::take(&mut self.buf);
                self.phase = Phase::Idle;
                self.status = DRDY;
                self.packet(&p);
            }
            Phase::Out { lba, left } if self.buf.len() == 512 => {
                let data = std::mem::take(&mut self.buf);
                let sel = self.sel;
                if let Some(Unit::Disk(d)) = &mut self.units[sel] {
                    let at = lba as usize * 512;
                    if let Some(s) = d.get_mut(at..at + 512) {
                        s.copy_from_slice(&data);
                    }
                }
                if left > 1 {
                    self.phase = Phase::Out {
                        lba: lba + 1,
                        left: left - 1,
                    };
                    self.status = DRDY | DRQ;
                } else {
                    self.phase = Phase::Idle;
                    self.status = DRDY;
                }
                self.interrupt();
            }
            _ => {}
        }
    }
}

/// The command block at offset 0-7 of its window, the control block at
/// offset 8 (mapped separately at 0x3F6 or 0x376).
impl Device for Channel {
    fn name(&self) -> &str {
        "test-ide"
    }

    fn pio_read(&mut self, base: u16, off: u16, size: u8) -> u32 {
        let ctl = base & 0xF == 6;
        if !self.any() {
            return morph86_devices::all_ones(size);
        }
        if self.unit().is_none() {
            return 0;
        }
        if ctl {
            return u32::from(self.status);
        }
        match off {
            0 => {
                let lo = self.data_read();
                if size == 2 {
                    u32::from(lo)
                } else {
                    u32::from(lo as u8)
                }
            }
            1 => u32::from(self.error),
            7 => {
                self.irq.lower();
                u32::from(self.status)
            }
            6 => u32::from(self.regs[6]) | 0xA0,
            r => u32::from(self.regs[r as usize]),
        }
    }

    fn pio_write(&mut self, base: u16, off: u16, _size: u8, v: u32) {
        if base & 0xF == 6 {
            self.nien = v & 2 != 0;
            if v & 4 != 0 {
                self.soft_reset();
            }
            return;
        }
        let b = v as u8;
        match off {
            0 => self.data_write(v as u16),
            6 => {
                self.regs[6] = b;
                self.sel = usize::from(b >> 4 & 1);
            }
            7 => self.command(b),
            r => {
                self.hob[r as usize] = self.regs[r as usize];
                self.regs[r as usize] = b;
            }
        }
    }
}
