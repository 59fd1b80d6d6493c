//! The 8237A DMA controller pair of the PC/AT, and the ISA device that
//! holds it together with the devices that use its channels.
//!
//! # Registers
//!
//! * DMA 1 (8-bit channels 0-3): ports 0x00-0x0F. Per channel n, 2n is
//!   the address and 2n+1 the count, each written low byte then high byte
//!   through the byte-pointer flip-flop; then 0x08 status (read) /
//!   command, 0x09 request, 0x0A single mask, 0x0B mode, 0x0C clear
//!   flip-flop, 0x0D master clear (write) / temporary (read), 0x0E clear
//!   masks, 0x0F write all masks.
//! * DMA 2 (16-bit channels 4-7, channel 4 cascading DMA 1): the same
//!   registers at 0xC0 + 2 * register (0xC0-0xDE).
//! * Page registers 0x81-0x8F (0x80 is the POST port): channel 2 at 0x81,
//!   3 at 0x82, 1 at 0x83, 0 at 0x87, 6 at 0x89, 7 at 0x8A, 5 at 0x8B and
//!   the refresh page (4) at 0x8F; the rest are plain storage, as on boards
//!   that decode them.
//!
//! An 8-bit channel reaches `page << 16 | address`, its address wrapping
//! within the 64 KiB page; a 16-bit channel moves words at
//! `(page & 0xFE) << 16 | address << 1`, wrapping within 128 KiB. A
//! transfer of count + 1 units sets the channel's terminal-count bit in the
//! status register and, in auto-initialize mode, reloads the base values;
//! otherwise the channel masks itself.
//!
//! # Who moves the data
//!
//! A DMA device needs guest memory, which a device holds only inside a port
//! access ([`crate::dma`]), and its transfer needs both its own state and
//! the channel's: a floppy read can start when the FDC takes its last
//! command byte or, if the driver unmasks channel 2 afterwards, at that
//! write to the 8237. So the 8237 and the devices on its channels are one
//! bus device, [`IsaDma`], whose every write checks whether a device's
//! request (DREQ) meets an unmasked channel and then runs the transfer
//! through [`Dma8237::write_memory`] or [`Dma8237::read_memory`]. Today the
//! floppy controller on channel 2 is the only such device.

use crate::bus::Device;
use crate::dma::{DmaMemory, NoDma};
use crate::fdc::{Fdc, FDC_DIR_OFFSET, FDC_PORT, FDC_PORTS};
use serde::{Deserialize, Serialize};

/// DMA 1's registers (8-bit channels 0-3).
pub const DMA1_PORT: u16 = 0x00;
/// DMA 1's port count.
pub const DMA1_PORTS: u32 = 16;
/// DMA 2's registers (16-bit channels 4-7), at even addresses.
pub const DMA2_PORT: u16 = 0xC0;
/// DMA 2's port count.
pub const DMA2_PORTS: u32 = 32;
/// The page registers (0x81-0x8F; 0x80 is the POST port).
pub const DMA_PAGE_PORT: u16 = 0x81;
/// Page register ports.
pub const DMA_PAGE_PORTS: u32 = 15;

/// Page register offset (from 0x80) of each channel.
const PAGE_OF: [usize; 8] = [0x7, 0x3, 0x1, 0x2, 0xF, 0xB, 0x9, 0xA];

/// Mode register transfer types (bits 3-2).
const MODE_VERIFY: u8 = 0;
const MODE_WRITE: u8 = 1; // device to memory
const MODE_READ: u8 = 2; // memory to device

/// One channel's registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmaChannel {
    /// Base and current address (in units: bytes or words).
    pub base_addr: u16,
    /// Current address.
    pub addr: u16,
    /// Base and current count (units - 1).
    pub base_count: u16,
    /// Current count.
    pub count: u16,
    /// Mode register (bits 7-2; the channel bits are not kept).
    pub mode: u8,
    /// The channel is masked.
    pub masked: bool,
    /// The count ran out since the last status read.
    pub terminal: bool,
    /// A software request is set.
    pub request: bool,
    /// Terminal count was reached since the device last looked (the EOP
    /// pulse that ends a floppy command).
    pub eop: bool,
}

/// One 8237A.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chip {
    /// Its four channels.
    pub channels: [DmaChannel; 4],
    /// The byte-pointer flip-flop (true: the high byte is next).
    pub flip_flop: bool,
    /// Command register.
    pub command: u8,
}

impl Default for Chip {
    fn default() -> Chip {
        let mut c = Chip {
            channels: [DmaChannel::default(); 4],
            flip_flop: false,
            command: 0,
        };
        c.master_clear();
        c
    }
}

impl Chip {
    fn master_clear(&mut self) {
        self.flip_flop = false;
        self.command = 0;
        for ch in &mut self.channels {
            ch.masked = true;
            ch.terminal = false;
            ch.request = false;
        }
    }

    fn read(&mut self, reg: u16) -> u8 {
        match reg {
            0..=7 => {
                let ch = &self.channels[usize::from(reg >> 1)];
                let v = if reg & 1 == 0 { ch.addr } else { ch.count };
                let hi = self.flip_flop;
                self.flip_flop = !hi;
                if hi {
                    (v >> 8) as u8
                } else {
                    v as u8
                }
            }
            8 => {
                // Status: TC bits 0-3 (cleared by reading), requests 4-7.
                let mut v = 0;
                for (i, ch) in self.channels.iter_mut().enumerate() {
                    v |= u8::from(ch.terminal) << i | u8::from(ch.request) << (i + 4);
                    ch.terminal = false;
                }
                v
            }
            0xF => {
                // The mask bits (the 82374's readable form; 8237s read junk).
                self.channels
                    .iter()
                    .enumerate()
                    .fold(0xF0, |v, (i, c)| v | u8::from(c.masked) << i)
            }
            _ => 0,
        }
    }

    fn write(&mut self, reg: u16, v: u8) {
        match reg {
            0..=7 => {
                let hi = self.flip_flop;
                self.flip_flop = !hi;
                let ch = &mut self.channels[usize::from(reg >> 1)];
                let (base, cur) = if reg & 1 == 0 {
                    (&mut ch.base_addr, &mut ch.addr)
                } else {
                    (&mut ch.base_count, &mut ch.count)
                };
                *base = if hi {
                    (*base & 0x00FF) | u16::from(v) << 8
                } else {
                    (*base & 0xFF00) | u16::from(v)
                };
                *cur = *base;
            }
            8 => self.command = v,
            9 => self.channels[usize::from(v & 3)].request = v & 4 != 0,
            0xA => self.channels[usize::from(v & 3)].masked = v & 4 != 0,
            0xB => self.channels[usize::from(v & 3)].mode = v & 0xFC,
            0xC => self.flip_flop = false,
            0xD => self.master_clear(),
            0xE => {
                for ch in &mut self.channels {
                    ch.masked = false;
                }
            }
            0xF => {
                for (i, ch) in self.channels.iter_mut().enumerate() {
                    ch.masked = v & 1 << i != 0;
                }
            }
            _ => {}
        }
    }
}

/// The two 8237As and the page registers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dma8237 {
    /// DMA 1 (channels 0-3) and DMA 2 (channels 4-7).
    pub chips: [Chip; 2],
    /// Page registers 0x80-0x8F (index 0 unused: the POST port).
    pub pages: [u8; 16],
}

impl Dma8237 {
    /// The pair at power-on: every channel masked.
    pub fn new() -> Dma8237 {
        Dma8237::default()
    }

    fn channel(&self, n: usize) -> &DmaChannel {
        &self.chips[n / 4].channels[n % 4]
    }

    fn channel_mut(&mut self, n: usize) -> &mut DmaChannel {
        &mut self.chips[n / 4].channels[n % 4]
    }

    /// True when channel `n` (0-7) may transfer: unmasked and its chip
    /// enabled (command bit 2 clear).
    pub fn ready(&self, n: usize) -> bool {
        n < 8 && !self.channel(n).masked && self.chips[n / 4].command & 0x04 == 0
    }

    /// Bytes channel `n` would still move.
    pub fn bytes_left(&self, n: usize) -> usize {
        let units = usize::from(self.channel(n).count) + 1;
        if n >= 4 {
            units * 2
        } else {
            units
        }
    }

    /// True (once) when channel `n` reached terminal count since the last
    /// call: the EOP a device sees.
    pub fn take_terminal(&mut self, n: usize) -> bool {
        std::mem::take(&mut self.channel_mut(n).eop)
    }

    /// Channel `n`'s transfer type: write (device to memory), read, verify.
    fn kind(&self, n: usize) -> u8 {
        self.channel(n).mode >> 2 & 3
    }

    /// Moves up to `data.len()` bytes from a device to memory through
    /// channel `n`; returns how many the channel took (it stops at terminal
    /// count). A channel programmed for verify counts without writing; one
    /// programmed to read memory moves nothing.
    pub fn write_memory(&mut self, n: usize, mem: &mut dyn DmaMemory, data: &[u8]) -> usize {
        match self.kind(n) {
            MODE_WRITE | MODE_VERIFY => {
                let verify = self.kind(n) == MODE_VERIFY;
                self.walk(n, data.len(), |addr, range| {
                    if !verify && !mem.dma_write(addr, &data[range]) {
                        tracing::debug!(addr, "ISA DMA write outside RAM dropped");
                    }
                })
            }
            _ => 0,
        }
    }

    /// Fills up to `buf.len()` bytes from memory through channel `n` (for
    /// a device reading memory); returns how many. Bytes the channel cannot
    /// read (not RAM) read as all ones.
    pub fn read_memory(&mut self, n: usize, mem: &mut dyn DmaMemory, buf: &mut [u8]) -> usize {
        if self.kind(n) != MODE_READ {
            return 0;
        }
        self.walk(n, buf.len(), |addr, range| {
            let part = &mut buf[range];
            if !mem.dma_read(addr, part) {
                part.fill(0xFF);
            }
        })
    }

    /// Steps channel `n` over up to `len` bytes, calling `step` with each
    /// contiguous physical run (address, range of the device's bytes).
    fn walk(
        &mut self,
        n: usize,
        len: usize,
        mut step: impl FnMut(u64, std::ops::Range<usize>),
    ) -> usize {
        let wide = n >= 4;
        let unit = if wide { 2 } else { 1 };
        let page = self.pages[PAGE_OF[n]];
        let mut done = 0;
        while done + unit <= len {
            let ch = *self.channel(n);
            let down = ch.mode & 0x20 != 0;
            let units_left = usize::from(ch.count) + 1;
            let want = (len - done) / unit;
            // Contiguous units before the address wraps in its page.
            let room = if down {
                usize::from(ch.addr) + 1
            } else {
                0x1_0000 - usize::from(ch.addr)
            };
            let k = want.min(units_left).min(room);
            let phys = |a: u16| {
                if wide {
                    u64::from(page & 0xFE) << 16 | u64::from(a) << 1
                } else {
                    u64::from(page) << 16 | u64::from(a)
                }
            };
            if down {
                // Decrementing: unit by unit (rare; floppies never use it).
                for i in 0..k {
                    let a = ch.addr.wrapping_sub(i as u16);
                    let at = done + i * unit;
                    step(phys(a), at..at + unit);
                }
            } else {
                step(phys(ch.addr), done..done + k * unit);
            }
            done += k * unit;
            let c = self.channel_mut(n);
            c.addr = if down {
                c.addr.wrapping_sub(k as u16)
            } else {
                c.addr.wrapping_add(k as u16)
            };
            if k == units_left {
                c.terminal = true;
                c.eop = true;
                c.request = false;
                if c.mode & 0x10 != 0 {
                    c.addr = c.base_addr;
                    c.count = c.base_count;
                } else {
                    // Without auto-initialize the channel masks itself.
                    c.count = 0xFFFF;
                    c.masked = true;
                    break;
                }
            } else {
                c.count -= k as u16;
            }
            if k == 0 {
                break;
            }
        }
        done
    }

    /// A read of the DMA 1 (`second` false) or DMA 2 register `reg`.
    pub fn read_reg(&mut self, second: bool, reg: u16) -> u8 {
        self.chips[usize::from(second)].read(reg)
    }

    /// A write of a DMA 1 or DMA 2 register.
    pub fn write_reg(&mut self, second: bool, reg: u16, v: u8) {
        self.chips[usize::from(second)].write(reg, v);
    }
}

/// The 8237 pair with the ISA devices on its channels (the floppy
/// controller on channel 2) as one bus device; see the module docs.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct IsaDma {
    /// The DMA controllers.
    pub dma: Dma8237,
    /// The 82077AA floppy controller (channel 2, IRQ 6).
    pub fdc: Fdc,
}

/// The floppy controller's DMA channel.
pub const FDC_DMA_CHANNEL: usize = 2;

impl IsaDma {
    /// The DMA pair and a floppy controller with no drives.
    pub fn new(fdc: Fdc) -> IsaDma {
        IsaDma {
            dma: Dma8237::new(),
            fdc,
        }
    }

    /// Maps its windows: DMA 1, DMA 2, the page registers and the FDC
    /// (0x3F0-0x3F5, 0x3F7; 0x3F6 is the IDE control block).
    pub fn map(
        self,
        io: &mut crate::IoBus,
    ) -> Result<crate::DeviceId<IsaDma>, crate::bus::BusError> {
        let id = io.register(DMA1_PORT, DMA1_PORTS, self)?;
        io.map_ports(id, DMA2_PORT, DMA2_PORTS)?;
        io.map_ports(id, DMA_PAGE_PORT, DMA_PAGE_PORTS)?;
        io.map_ports(id, FDC_PORT, FDC_PORTS)?;
        io.map_ports(id, FDC_PORT + FDC_DIR_OFFSET, 1)?;
        Ok(id)
    }

    /// Runs the FDC's pending transfer if channel 2 can take it.
    fn service(&mut self, mem: &mut dyn DmaMemory) {
        if self.fdc.dma_request() && self.dma.ready(FDC_DMA_CHANNEL) {
            self.fdc.run_dma(&mut self.dma, FDC_DMA_CHANNEL, mem);
        }
    }
}

impl Device for IsaDma {
    fn name(&self) -> &str {
        "isa-dma"
    }

    fn pio_read(&mut self, base: u16, offset: u16, size: u8) -> u32 {
        let mut v = 0;
        for i in 0..u16::from(size) {
            let off = offset + i;
            let b = match base {
                DMA1_PORT => self.dma.read_reg(false, off),
                DMA2_PORT if off.is_multiple_of(2) => self.dma.read_reg(true, off / 2),
                DMA2_PORT => 0xFF,
                DMA_PAGE_PORT => self.dma.pages[usize::from(off) + 1],
                FDC_PORT => self.fdc.read(off),
                _ => self.fdc.read(FDC_DIR_OFFSET),
            };
            v |= u32::from(b) << (8 * i);
        }
        v
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
        for i in 0..u16::from(size) {
            let off = offset + i;
            let b = (value >> (8 * i)) as u8;
            match base {
                DMA1_PORT => self.dma.write_reg(false, off, b),
                DMA2_PORT if off.is_multiple_of(2) => self.dma.write_reg(true, off / 2, b),
                DMA2_PORT => {}
                DMA_PAGE_PORT => self.dma.pages[usize::from(off) + 1] = b,
                FDC_PORT => self.fdc.write(off, b),
                _ => self.fdc.write(FDC_DIR_OFFSET, b),
            }
            self.service(mem);
        }
    }

    fn reset(&mut self) {
        self.dma = Dma8237::new();
        self.fdc.reset();
    }

    fn next_deadline(&self) -> Option<crate::Nanos> {
        self.fdc.next_deadline()
    }

    fn advance(&mut self, now: crate::Nanos) {
        self.fdc.advance(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Programs channel `n` of DMA 1 for `len` bytes at `addr` (page
    /// included) in `mode`, unmasked.
    fn program(d: &mut Dma8237, n: u16, addr: u32, len: u16, mode: u8) {
        d.write_reg(false, 0xA, 4 | n as u8);
        d.write_reg(false, 0xC, 0);
        d.write_reg(false, 0xB, mode | n as u8);
        d.write_reg(false, 2 * n, addr as u8);
        d.write_reg(false, 2 * n, (addr >> 8) as u8);
        d.pages[PAGE_OF[n as usize]] = (addr >> 16) as u8;
        d.write_reg(false, 2 * n + 1, (len - 1) as u8);
        d.write_reg(false, 2 * n + 1, ((len - 1) >> 8) as u8);
        d.write_reg(false, 0xA, n as u8);
    }

    #[test]
    fn eight_bit_transfers_count_and_stop_at_terminal_count() {
        let mut d = Dma8237::new();
        let mut mem = vec![0u8; 0x30000];
        assert!(!d.ready(2), "masked at power-on");
        program(&mut d, 2, 0x1_2340, 512, 0x44); // single, write to memory
        assert!(d.ready(2));
        assert_eq!(d.bytes_left(2), 512);
        let data: Vec<u8> = (0..600).map(|i| i as u8).collect();
        assert_eq!(d.write_memory(2, &mut mem, &data), 512);
        assert_eq!(mem[0x1_2340..0x1_2540], data[..512]);
        assert_eq!(mem[0x1_2540], 0, "stops at terminal count");
        assert_eq!(d.read_reg(false, 8) & 0x0F, 0x04, "TC of channel 2");
        assert_eq!(d.read_reg(false, 8) & 0x0F, 0, "cleared by reading");
        // Address and count read back through the flip-flop.
        d.write_reg(false, 0xC, 0);
        let a = u16::from(d.read_reg(false, 4)) | u16::from(d.read_reg(false, 4)) << 8;
        assert_eq!(a, 0x2540);
        let c = u16::from(d.read_reg(false, 5)) | u16::from(d.read_reg(false, 5)) << 8;
        assert_eq!(c, 0xFFFF);
        // A transfer that wraps inside its 64 KiB page.
        program(&mut d, 2, 0x2_FFFE, 4, 0x44);
        assert_eq!(d.write_memory(2, &mut mem, &[1, 2, 3, 4]), 4);
        assert_eq!(&mem[0x2_FFFE..0x3_0000], &[1, 2]);
        assert_eq!(&mem[0x2_0000..0x2_0002], &[3, 4]);
        // Reading memory, for a device writing its medium.
        program(&mut d, 2, 0x1_2340, 4, 0x48);
        let mut buf = [0u8; 8];
        assert_eq!(d.read_memory(2, &mut mem, &mut buf), 4);
        assert_eq!(buf[..4], data[..4]);
        assert_eq!(d.write_memory(2, &mut mem, &[9]), 0, "wrong direction");
        // Auto-initialize reloads at terminal count and goes on.
        program(&mut d, 1, 0x100, 2, 0x54);
        assert_eq!(d.write_memory(1, &mut mem, &[7, 7, 7, 7, 7]), 5);
        assert_eq!(d.bytes_left(1), 1);
        assert!(d.take_terminal(1) && !d.take_terminal(1));
        assert!(d.ready(1), "still unmasked");
    }

    #[test]
    fn masks_and_master_clear() {
        let mut d = Dma8237::new();
        d.write_reg(false, 0xE, 0);
        assert!((0..4).all(|n| d.ready(n)));
        d.write_reg(false, 0xF, 0b0101);
        assert!(!d.ready(0) && d.ready(1) && !d.ready(2) && d.ready(3));
        assert_eq!(d.read_reg(false, 0xF) & 0x0F, 0b0101);
        d.write_reg(false, 0xD, 0);
        assert!((0..4).all(|n| !d.ready(n)));
        // DMA 2's 16-bit channel 5: words, page & 0xFE.
        d.write_reg(true, 0xB, 0x44 | 1);
        d.write_reg(true, 0xC, 0);
        d.write_reg(true, 2, 0x00);
        d.write_reg(true, 2, 0x10); // word address 0x1000 = byte 0x2000
        d.write_reg(true, 3, 1);
        d.write_reg(true, 3, 0);
        d.pages[PAGE_OF[5]] = 0x03;
        d.write_reg(true, 0xA, 1);
        let mut mem = vec![0u8; 0x30000];
        assert_eq!(d.write_memory(5, &mut mem, &[1, 2, 3, 4, 5]), 4);
        assert_eq!(&mem[0x2_2000..0x2_2004], &[1, 2, 3, 4]);
    }
}
