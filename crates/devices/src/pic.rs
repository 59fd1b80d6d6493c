//! The PC/AT's two cascaded Intel 8259A programmable interrupt controllers,
//! with the PIIX edge/level control registers (ELCR).
//!
//! The master answers at ports 0x20-0x21 and the slave at 0xA0-0xA1; the
//! slave's INT output drives the master's IR2. ISA IRQ *n* is master IR*n*
//! for n < 8 and slave IR*(n-8)* otherwise. ELCR1/ELCR2 at 0x4D0/0x4D1 pick
//! edge (0) or level (1) triggering per line; IRQ0, 1, 2, 8 and 13 are
//! hard-wired to edge. A chip programmed with ICW1.LTIM = 1 treats all of
//! its lines as level-triggered, as a discrete 8259A does; otherwise the
//! ELCR decides, as on the PIIX.
//!
//! # Model
//!
//! * **Requests.** An edge-triggered line sets its IRR bit on a rising edge
//!   (the edge-sense latch is re-armed by the line going low). A
//!   level-triggered line's IRR bit follows the line. In both modes the IRR
//!   bit drops when the line goes low, as the datasheet requires the request
//!   to be held until the interrupt is acknowledged.
//! * **INT output.** A chip raises INT when the priority resolver finds an
//!   unmasked request that beats every in-service level (honouring special
//!   mask mode, special fully nested mode and rotated priorities). INT stays
//!   latched when a request line merely goes low again; it is re-evaluated
//!   on every CPU access to the chip and on every INTA. So a request that
//!   vanishes after INT was raised but before the CPU acknowledges gives the
//!   datasheet's *default IR7*: a spurious IRQ7 (master) or IRQ15 (slave,
//!   when the master already latched the cascade request), delivered
//!   without setting an ISR bit.
//! * **Acknowledge.** [`Pic8259Pair::acknowledge`] is a whole INTA cycle:
//!   the master picks its highest request; for IR2 (the cascade) the slave
//!   supplies the vector. ISR bits are set unless the chip is in automatic
//!   EOI mode (where rotate-in-AEOI moves the lowest priority to the
//!   acknowledged line). The slave's INT drops during the cycle and is
//!   re-raised afterwards if it has more to deliver, which gives the master
//!   a fresh edge on IR2.
//! * The cascade wiring is fixed (slave on IR2) as on every AT; ICW3 is
//!   stored. A master programmed for single mode (ICW1.SNGL) supplies the
//!   vector for IR2 itself. MCS-80/85 mode, ICW1.ADI and the buffered modes
//!   are accepted and stored; vectors are always formed the 8086 way
//!   (ICW2 & 0xF8 | line).
//!
//! # Wiring it to the bus
//!
//! One [`Pic8259Pair`] owns both chips and the ELCR and is one device on
//! the bus with three port windows (0x20-0x21, 0xA0-0xA1, 0x4D0-0x4D1;
//! [`Pic8259Pair::map`]). The machine reaches it through its `DeviceId` to
//! hand it the interrupt lines' changes ([`Pic8259Pair::set_irq`]) and to
//! run INTA cycles ([`Pic8259Pair::interrupt_pending`],
//! [`Pic8259Pair::acknowledge`]).
//!
//! Edge-triggered sources that only know "an event happened" (the PIT's
//! counted OUT0 edges) should use [`Pic8259Pair::pulse_irq`], which drives
//! the line low then high and leaves it high, so the request cannot vanish
//! before INTA.

use crate::bus::{BusError, DeviceId, IoBus};
use serde::{Deserialize, Serialize};

/// Base port of the master 8259A.
pub const MASTER_PORT: u16 = 0x20;
/// Base port of the slave 8259A.
pub const SLAVE_PORT: u16 = 0xA0;
/// Port of ELCR1 (IRQ0-7); ELCR2 (IRQ8-15) follows it.
pub const ELCR_PORT: u16 = 0x4D0;
/// The master input the slave is cascaded on.
pub const CASCADE_IRQ: u8 = 2;
/// Number of ISA interrupt lines.
pub const IRQ_LINES: u8 = 16;

/// Writable ELCR bits: IRQ0, 1, 2 (ELCR1) and IRQ8, 13 (ELCR2) are always edge.
const ELCR_WRITABLE: [u8; 2] = [0xF8, 0xDE];

// ICW1 bits.
const ICW1_IC4: u8 = 1 << 0;
const ICW1_SNGL: u8 = 1 << 1;
const ICW1_LTIM: u8 = 1 << 3;
const ICW1_INIT: u8 = 1 << 4;
// ICW4 bits.
const ICW4_AEOI: u8 = 1 << 1;
const ICW4_SFNM: u8 = 1 << 4;
// OCW3 bits.
const OCW3_SELECT: u8 = 1 << 3;
const OCW3_RIS: u8 = 1 << 0;
const OCW3_RR: u8 = 1 << 1;
const OCW3_POLL: u8 = 1 << 2;
const OCW3_SMM: u8 = 1 << 5;
const OCW3_ESMM: u8 = 1 << 6;

/// Where a chip is in its initialization sequence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum InitStep {
    /// Initialized: port 1 writes are OCW1 (the mask).
    #[default]
    Ready,
    /// ICW1 was written; port 1 expects ICW2 (vector base).
    Icw2,
    /// Port 1 expects ICW3 (cascade configuration).
    Icw3,
    /// Port 1 expects ICW4 (mode).
    Icw4,
}

/// One 8259A: plain data, serializable for snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pic8259 {
    /// True for the master (affects special fully nested mode).
    pub master: bool,
    /// Edge-latched requests of edge-triggered lines (level-triggered
    /// lines' requests are read from `lines`; see [`Pic8259::irr`]).
    pub irr_edge: u8,
    /// In-service register.
    pub isr: u8,
    /// Interrupt mask register (OCW1).
    pub imr: u8,
    /// Current levels of the IR input pins.
    pub lines: u8,
    /// This chip's ELCR: level-triggered lines.
    pub elcr: u8,
    /// Vector of IR0 (ICW2 & 0xF8).
    pub vector_base: u8,
    /// The line with the lowest priority (7 until rotated).
    pub lowest: u8,
    /// Initialization sequence state.
    pub init: InitStep,
    /// Last ICW1.
    pub icw1: u8,
    /// Last ICW3 (slave bitmap on the master, slave ID on the slave).
    pub icw3: u8,
    /// Last ICW4 (0 when ICW1 said it would not come).
    pub icw4: u8,
    /// Rotate in automatic EOI mode (OCW2 0x80 sets, 0x00 clears).
    pub rotate_aeoi: bool,
    /// OCW3 read register select: ISR (true) or IRR (false).
    pub read_isr: bool,
    /// A poll command is pending: the next read of port 0 is the poll word.
    pub poll: bool,
    /// Special mask mode.
    pub special_mask: bool,
    /// The INT output.
    pub int: bool,
}

impl Pic8259 {
    /// A chip in its power-on state (uninitialized: vector base 0, all
    /// lines unmasked, edge-triggered, cascade wiring of the AT in ICW3).
    pub fn new(master: bool) -> Pic8259 {
        Pic8259 {
            master,
            irr_edge: 0,
            isr: 0,
            imr: 0,
            lines: 0,
            elcr: 0,
            vector_base: 0,
            lowest: 7,
            init: InitStep::Ready,
            icw1: 0,
            icw3: if master {
                1 << CASCADE_IRQ
            } else {
                CASCADE_IRQ
            },
            icw4: 0,
            rotate_aeoi: false,
            read_isr: false,
            poll: false,
            special_mask: false,
            int: false,
        }
    }

    /// Lines that are level-triggered.
    pub fn level_mask(&self) -> u8 {
        if self.icw1 & ICW1_LTIM != 0 {
            0xFF
        } else {
            self.elcr
        }
    }

    /// The interrupt request register.
    pub fn irr(&self) -> u8 {
        let level = self.level_mask();
        (self.irr_edge & !level) | (self.lines & level)
    }

    fn auto_eoi(&self) -> bool {
        self.icw4 & ICW4_AEOI != 0
    }

    fn sfnm(&self) -> bool {
        self.icw4 & ICW4_SFNM != 0
    }

    /// Priority rank of `irq`: 0 is the highest.
    fn rank(&self, irq: u8) -> u8 {
        irq.wrapping_sub(self.lowest.wrapping_add(1)) & 7
    }

    /// The highest-priority line set in `mask`.
    fn highest(&self, mask: u8) -> Option<u8> {
        (0..8)
            .map(|i| (self.lowest + 1 + i) & 7)
            .find(|&irq| mask & (1 << irq) != 0)
    }

    /// The request the priority resolver would deliver now, if any.
    pub fn resolve(&self) -> Option<u8> {
        let irq = self.highest(self.irr() & !self.imr)?;
        let mut busy = self.isr;
        if self.special_mask {
            // Masked levels do not inhibit lower ones.
            busy &= !self.imr;
        }
        match self.highest(busy) {
            // Special fully nested mode: the master accepts further
            // requests from a slave whose request is in service.
            Some(cur) if cur == irq && self.master && irq == CASCADE_IRQ && self.sfnm() => {
                Some(irq)
            }
            Some(cur) if self.rank(cur) <= self.rank(irq) => None,
            _ => Some(irq),
        }
    }

    /// Drives input line `irq` (0..8) to `level`.
    fn set_line(&mut self, irq: u8, level: bool) {
        let bit = 1 << irq;
        if level {
            if self.lines & bit == 0 {
                self.irr_edge |= bit; // rising edge
            }
            self.lines |= bit;
            // A new request raises INT; INT is latched (see the module docs).
            self.int |= self.resolve().is_some();
        } else {
            self.lines &= !bit;
            self.irr_edge &= !bit;
        }
    }

    /// Re-evaluates INT (after a CPU access or an INTA cycle).
    fn update_int(&mut self) {
        self.int = self.resolve().is_some();
    }

    /// The acknowledge part of an INTA cycle or poll for `irq`.
    fn ack(&mut self, irq: u8) {
        let bit = 1 << irq;
        self.irr_edge &= !bit;
        if self.auto_eoi() {
            if self.rotate_aeoi {
                self.lowest = irq;
            }
        } else {
            self.isr |= bit;
        }
    }

    fn non_specific_eoi(&mut self, rotate: bool) {
        let mut mask = self.isr;
        if self.special_mask {
            // A masked level's ISR bit needs a specific EOI in special mask mode.
            mask &= !self.imr;
        }
        if let Some(irq) = self.highest(mask) {
            self.isr &= !(1 << irq);
            if rotate {
                self.lowest = irq;
            }
        }
    }

    fn write_icw1(&mut self, v: u8) {
        self.icw1 = v;
        self.init = InitStep::Icw2;
        // The edge-sense circuit is reset: lines must rise again to request.
        self.irr_edge = 0;
        self.isr = 0;
        self.imr = 0;
        self.lowest = 7;
        self.special_mask = false;
        self.read_isr = false;
        self.poll = false;
        self.rotate_aeoi = false;
        if v & ICW1_IC4 == 0 {
            self.icw4 = 0;
        }
    }

    fn write_ocw2(&mut self, v: u8) {
        let level = v & 7;
        match v >> 5 {
            0b001 => self.non_specific_eoi(false),
            0b011 => self.isr &= !(1 << level),
            0b101 => self.non_specific_eoi(true),
            0b100 => self.rotate_aeoi = true,
            0b000 => self.rotate_aeoi = false,
            0b111 => {
                self.isr &= !(1 << level);
                self.lowest = level;
            }
            0b110 => self.lowest = level,
            _ => {} // 0b010: no operation
        }
    }

    fn write_ocw3(&mut self, v: u8) {
        if v & OCW3_ESMM != 0 {
            self.special_mask = v & OCW3_SMM != 0;
        }
        if v & OCW3_POLL != 0 {
            self.poll = true;
        }
        if v & OCW3_RR != 0 {
            self.read_isr = v & OCW3_RIS != 0;
        }
    }

    /// Writes port `off` (0 or 1) of this chip.
    fn write(&mut self, off: u16, v: u8) {
        if off & 1 == 0 {
            if v & ICW1_INIT != 0 {
                self.write_icw1(v);
            } else if v & OCW3_SELECT != 0 {
                self.write_ocw3(v);
            } else {
                self.write_ocw2(v);
            }
            return;
        }
        let single = self.icw1 & ICW1_SNGL != 0;
        let ic4 = self.icw1 & ICW1_IC4 != 0;
        let after_icw3 = if ic4 { InitStep::Icw4 } else { InitStep::Ready };
        match self.init {
            InitStep::Ready => self.imr = v,
            InitStep::Icw2 => {
                self.vector_base = v & 0xF8;
                self.init = if single { after_icw3 } else { InitStep::Icw3 };
            }
            InitStep::Icw3 => {
                self.icw3 = v;
                self.init = after_icw3;
            }
            InitStep::Icw4 => {
                self.icw4 = v & 0x1F;
                self.init = InitStep::Ready;
            }
        }
    }

    /// The poll word: 0x80 | level when a request is resolved (which is
    /// then acknowledged, as an INTA would), 0 otherwise.
    fn poll_read(&mut self) -> u8 {
        self.poll = false;
        match self.resolve() {
            Some(irq) => {
                self.ack(irq);
                0x80 | irq
            }
            None => 0,
        }
    }

    /// Reads port `off` (0 or 1) of this chip.
    fn read(&mut self, off: u16) -> u8 {
        if off & 1 != 0 {
            self.imr
        } else if self.poll {
            self.poll_read()
        } else if self.read_isr {
            self.isr
        } else {
            self.irr()
        }
    }

    /// Sets this chip's ELCR (`v` already limited to the writable bits).
    fn write_elcr(&mut self, v: u8) {
        let changed = self.elcr ^ v;
        self.elcr = v;
        // A line switching mode needs a fresh edge / level to request.
        self.irr_edge &= !changed;
    }
}

/// The master and slave 8259A with the ELCR, as on the PC/AT and PIIX.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pic8259Pair {
    /// The master (IRQ0-7), ports 0x20-0x21.
    pub master: Pic8259,
    /// The slave (IRQ8-15) on master IR2, ports 0xA0-0xA1.
    pub slave: Pic8259,
}

impl Default for Pic8259Pair {
    fn default() -> Self {
        Self::new()
    }
}

impl Pic8259Pair {
    /// Both chips in their power-on state.
    pub fn new() -> Pic8259Pair {
        Pic8259Pair {
            master: Pic8259::new(true),
            slave: Pic8259::new(false),
        }
    }

    /// Adds the pair to `bus` with its three windows (0x20-0x21,
    /// 0xA0-0xA1, 0x4D0-0x4D1).
    pub fn map(self, bus: &mut IoBus) -> Result<DeviceId<Pic8259Pair>, BusError> {
        let id = bus.register(MASTER_PORT, 2, self)?;
        bus.map_ports(id, SLAVE_PORT, 2)?;
        bus.map_ports(id, ELCR_PORT, 2)?;
        Ok(id)
    }

    /// Whether the slave is addressed through the cascade on IR2.
    fn cascaded(&self) -> bool {
        self.master.icw1 & ICW1_SNGL == 0
    }

    /// Feeds the slave's INT into master IR2. With `reassert`, INT is first
    /// dropped (as during INTA), so a slave with more to deliver gives the
    /// master a new edge.
    fn cascade(&mut self, reassert: bool) {
        if reassert {
            self.master.set_line(CASCADE_IRQ, false);
        }
        self.master.set_line(CASCADE_IRQ, self.slave.int);
    }

    /// Re-evaluates both INT outputs after a CPU access.
    fn update(&mut self) {
        self.slave.update_int();
        self.cascade(false);
        self.master.update_int();
    }

    /// Drives ISA interrupt line `line` (0..16) to `level`.
    ///
    /// Line 2 is the cascade input; as on the AT, an ISA device on IRQ2
    /// drives IRQ9 instead. Lines of 16 and above are ignored.
    pub fn set_irq(&mut self, line: u8, level: bool) {
        let line = if line == CASCADE_IRQ { 9 } else { line };
        match line {
            0..=7 => self.master.set_line(line, level),
            8..=15 => {
                self.slave.set_line(line - 8, level);
                self.cascade(false);
            }
            _ => tracing::warn!(line, "set_irq on a line the PIC does not have"),
        }
    }

    /// A rising edge on `line`: drives it low, then high, and leaves it high.
    /// For edge-triggered sources that report events rather than levels.
    pub fn pulse_irq(&mut self, line: u8) {
        self.set_irq(line, false);
        self.set_irq(line, true);
    }

    /// The master's INT output: the CPU should run an INTA cycle
    /// ([`Pic8259Pair::acknowledge`]) when its IF flag allows.
    pub fn interrupt_pending(&self) -> bool {
        self.master.int
    }

    /// An INTA cycle: returns the vector and updates IRR/ISR. The slave
    /// supplies the vector for the cascade line; a request that vanished
    /// gives the spurious vector of IR7 of the chip that lost it, with no
    /// ISR bit set on that chip.
    pub fn acknowledge(&mut self) -> u8 {
        let vector = match self.master.resolve() {
            None => self.master.vector_base | 7,
            Some(irq) => {
                self.master.ack(irq);
                if irq == CASCADE_IRQ && self.cascaded() {
                    match self.slave.resolve() {
                        None => self.slave.vector_base | 7,
                        Some(s) => {
                            self.slave.ack(s);
                            self.slave.vector_base | s
                        }
                    }
                } else {
                    self.master.vector_base | irq
                }
            }
        };
        self.slave.update_int();
        self.cascade(true);
        self.master.update_int();
        vector
    }

    /// Reads the byte at I/O port `port` (0x20-0x21, 0xA0-0xA1, 0x4D0-0x4D1).
    pub fn read_port(&mut self, port: u16) -> u8 {
        let v = match port {
            0x20 | 0x21 => self.master.read(port & 1),
            0xA0 | 0xA1 => self.slave.read(port & 1),
            0x4D0 => return self.master.elcr,
            0x4D1 => return self.slave.elcr,
            _ => return 0xFF,
        };
        self.update(); // a poll read acknowledges
        v
    }

    /// Writes the byte at I/O port `port`.
    pub fn write_port(&mut self, port: u16, v: u8) {
        match port {
            0x20 | 0x21 => self.master.write(port & 1, v),
            0xA0 | 0xA1 => self.slave.write(port & 1, v),
            0x4D0 => self.master.write_elcr(v & ELCR_WRITABLE[0]),
            0x4D1 => self.slave.write_elcr(v & ELCR_WRITABLE[1]),
            _ => return,
        }
        self.update();
    }
}

impl crate::bus::Device for Pic8259Pair {
    fn pio_read(&mut self, base: u16, off: u16, size: u8) -> u32 {
        (0..u16::from(size)).fold(0, |acc, i| {
            acc | u32::from(self.read_port(base + ((off + i) & 1))) << (8 * i)
        })
    }
    fn pio_write(&mut self, base: u16, off: u16, size: u8, value: u32) {
        for i in 0..u16::from(size) {
            self.write_port(base + ((off + i) & 1), (value >> (8 * i)) as u8);
        }
    }
    fn reset(&mut self) {
        *self = Pic8259Pair::new();
    }
    fn name(&self) -> &str {
        "pic8259"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PC BIOS initialization: vectors 0x08 and 0x70, slave on IR2.
    fn bios_init() -> Pic8259Pair {
        let mut p = Pic8259Pair::new();
        for (port, v) in [
            (0x20, 0x11),
            (0xA0, 0x11),
            (0x21, 0x08),
            (0xA1, 0x70),
            (0x21, 0x04),
            (0xA1, 0x02),
            (0x21, 0x01),
            (0xA1, 0x01),
            (0x21, 0x00),
            (0xA1, 0x00),
        ] {
            p.write_port(port, v);
        }
        p
    }

    fn eoi(p: &mut Pic8259Pair, line: u8) {
        if line >= 8 {
            p.write_port(0xA0, 0x20);
        }
        p.write_port(0x20, 0x20);
    }

    #[test]
    fn bios_init_sequence() {
        let p = bios_init();
        for chip in [&p.master, &p.slave] {
            assert_eq!(chip.init, InitStep::Ready);
            assert_eq!(chip.icw4, 0x01);
            assert_eq!((chip.imr, chip.isr, chip.irr()), (0, 0, 0));
        }
        assert_eq!(p.master.vector_base, 0x08);
        assert_eq!(p.slave.vector_base, 0x70);
        assert_eq!((p.master.icw3, p.slave.icw3), (0x04, 0x02));
        assert!(!p.interrupt_pending());
    }

    #[test]
    fn single_request_is_delivered_and_eoi_ends_it() {
        let mut p = bios_init();
        p.pulse_irq(1);
        assert!(p.interrupt_pending());
        assert_eq!(p.acknowledge(), 0x09);
        assert!(!p.interrupt_pending());
        assert_eq!(p.master.isr, 0x02);
        // Holding an edge-triggered line high does not request again.
        eoi(&mut p, 1);
        assert_eq!(p.master.isr, 0);
        assert!(!p.interrupt_pending());
        p.pulse_irq(1);
        assert_eq!(p.acknowledge(), 0x09);
    }

    #[test]
    fn fixed_priority_order_and_nesting() {
        let mut p = bios_init();
        p.pulse_irq(5);
        p.pulse_irq(3);
        p.pulse_irq(14);
        // IRQ8-15 rank at IR2, above IR3.
        assert_eq!(p.acknowledge(), 0x76);
        assert!(!p.interrupt_pending(), "lower levels wait for the EOI");
        eoi(&mut p, 14);
        assert_eq!(p.acknowledge(), 0x0B);
        // A higher request nests inside the lower one in service.
        p.pulse_irq(0);
        assert!(p.interrupt_pending());
        assert_eq!(p.acknowledge(), 0x08);
        assert_eq!(p.master.isr, 0b1001);
        eoi(&mut p, 0); // non-specific: clears the highest, IR0
        assert_eq!(p.master.isr, 0b1000);
        eoi(&mut p, 3);
        assert_eq!(p.acknowledge(), 0x0D);
    }

    #[test]
    fn masking() {
        let mut p = bios_init();
        p.write_port(0x21, 0xFB); // only the cascade open
        p.pulse_irq(4);
        assert!(!p.interrupt_pending());
        assert_eq!(p.read_port(0x20), 0x10, "IRR shows the masked request");
        assert_eq!(p.read_port(0x21), 0xFB);
        // Unmasking delivers it.
        p.write_port(0x21, 0xEB);
        assert!(p.interrupt_pending());
        assert_eq!(p.acknowledge(), 0x0C);
        // Masking the slave's line.
        eoi(&mut p, 4);
        p.write_port(0xA1, 0x01);
        p.pulse_irq(8);
        assert!(!p.interrupt_pending());
        p.write_port(0xA1, 0x00);
        assert_eq!(p.acknowledge(), 0x70);
        // Masking while INT is raised withdraws it.
        eoi(&mut p, 8);
        p.write_port(0x21, 0x00);
        p.pulse_irq(6);
        assert!(p.interrupt_pending());
        p.write_port(0x21, 0x40);
        assert!(!p.interrupt_pending());
    }

    #[test]
    fn specific_eoi_and_read_isr() {
        let mut p = bios_init();
        p.pulse_irq(3);
        p.pulse_irq(1);
        assert_eq!(p.acknowledge(), 0x09);
        p.write_port(0x20, 0x0B); // OCW3: read ISR
        assert_eq!(p.read_port(0x20), 0x02);
        p.write_port(0x20, 0x61); // specific EOI for IR1
        assert_eq!(p.read_port(0x20), 0x00);
        assert_eq!(p.acknowledge(), 0x0B);
        p.write_port(0x20, 0x0A); // back to IRR
        assert_eq!(p.read_port(0x20), 0x00);
    }

    #[test]
    fn auto_eoi() {
        let mut p = bios_init();
        p.write_port(0x20, 0x11);
        p.write_port(0x21, 0x08);
        p.write_port(0x21, 0x04);
        p.write_port(0x21, 0x03); // 8086, AEOI
        p.pulse_irq(3);
        p.pulse_irq(4);
        assert_eq!(p.acknowledge(), 0x0B);
        assert_eq!(p.master.isr, 0);
        // No EOI needed: the lower request follows at once.
        assert!(p.interrupt_pending());
        assert_eq!(p.acknowledge(), 0x0C);
        // Rotate in AEOI: the acknowledged line becomes the lowest.
        p.write_port(0x20, 0x80);
        p.pulse_irq(3);
        assert_eq!(p.acknowledge(), 0x0B);
        assert_eq!(p.master.lowest, 3);
        p.pulse_irq(1);
        p.pulse_irq(5);
        assert_eq!(p.acknowledge(), 0x0D, "IR4 and up now rank highest");
        assert_eq!(p.acknowledge(), 0x09);
    }

    #[test]
    fn rotation_and_set_priority() {
        let mut p = bios_init();
        // Rotate on non-specific EOI: the serviced line goes last.
        p.pulse_irq(1);
        assert_eq!(p.acknowledge(), 0x09);
        p.write_port(0x20, 0xA0);
        assert_eq!(p.master.lowest, 1);
        p.pulse_irq(1);
        p.pulse_irq(7);
        assert_eq!(p.acknowledge(), 0x0F, "IR7 outranks IR1 now");
        p.write_port(0x20, 0xA0);
        assert_eq!(p.acknowledge(), 0x09);
        // Rotate on specific EOI.
        p.write_port(0x20, 0xE1);
        assert_eq!((p.master.isr, p.master.lowest), (0, 1));
        // Set priority: IR5 lowest, so IR6 highest.
        p.write_port(0x20, 0xC5);
        p.pulse_irq(5);
        p.pulse_irq(0);
        p.pulse_irq(6);
        assert_eq!(p.acknowledge(), 0x0E);
        p.write_port(0x20, 0x20);
        assert_eq!(p.acknowledge(), 0x08);
        p.write_port(0x20, 0x20);
        assert_eq!(p.acknowledge(), 0x0D);
    }

    #[test]
    fn special_mask_mode() {
        let mut p = bios_init();
        p.pulse_irq(3);
        assert_eq!(p.acknowledge(), 0x0B);
        p.pulse_irq(5);
        assert!(!p.interrupt_pending());
        // The handler masks its own level and enables special mask mode.
        p.write_port(0x21, 0x08);
        p.write_port(0x20, 0x68);
        assert!(p.master.special_mask);
        assert!(p.interrupt_pending(), "lower level enabled in SMM");
        assert_eq!(p.acknowledge(), 0x0D);
        // Non-specific EOI skips the masked IR3 and ends IR5.
        p.write_port(0x20, 0x20);
        assert_eq!(p.master.isr, 0x08);
        p.write_port(0x20, 0x63);
        p.write_port(0x20, 0x48); // leave SMM
        assert!(!p.master.special_mask);
        assert_eq!(p.master.isr, 0);
    }

    #[test]
    fn poll_command() {
        let mut p = bios_init();
        p.write_port(0x21, 0xFF);
        p.write_port(0x20, 0x0C);
        assert_eq!(p.read_port(0x20), 0x00, "nothing requested");
        p.pulse_irq(6);
        p.write_port(0x20, 0x0C);
        assert_eq!(p.read_port(0x20), 0x00, "masked lines are not polled");
        p.write_port(0x21, 0x00);
        assert!(p.interrupt_pending());
        p.write_port(0x20, 0x0C);
        assert_eq!(p.read_port(0x20), 0x86);
        assert_eq!(p.master.isr, 0x40);
        assert!(!p.interrupt_pending());
        // The next read is the IRR again.
        assert_eq!(p.read_port(0x20), 0x00);
        // Polling through the cascade: master says IR2, slave says its line.
        eoi(&mut p, 6);
        p.pulse_irq(11);
        p.write_port(0x20, 0x0C);
        assert_eq!(p.read_port(0x20), 0x82);
        p.write_port(0xA0, 0x0C);
        assert_eq!(p.read_port(0xA0), 0x83);
        assert_eq!((p.master.isr, p.slave.isr), (0x04, 0x08));
    }

    #[test]
    fn level_versus_edge() {
        let mut p = bios_init();
        // IRQ11 level-triggered through ELCR2; IRQ8 and 13 stay edge.
        p.write_port(0x4D1, 0xFF);
        assert_eq!(p.read_port(0x4D1), 0xDE);
        p.write_port(0x4D0, 0xFF);
        assert_eq!(p.read_port(0x4D0), 0xF8);
        p.write_port(0x4D0, 0x00);
        p.write_port(0x4D1, 0x08);
        p.set_irq(11, true);
        assert_eq!(p.acknowledge(), 0x73);
        eoi(&mut p, 11);
        // Still high after the EOI: a level line requests again.
        assert!(p.interrupt_pending());
        assert_eq!(p.acknowledge(), 0x73);
        p.set_irq(11, false);
        eoi(&mut p, 11);
        assert!(!p.interrupt_pending());
        // Edge: held high, one interrupt only.
        p.set_irq(10, true);
        assert_eq!(p.acknowledge(), 0x72);
        eoi(&mut p, 10);
        assert!(!p.interrupt_pending());
        p.set_irq(10, false);
        p.set_irq(10, true);
        assert_eq!(p.acknowledge(), 0x72);
        eoi(&mut p, 10);
        // ICW1.LTIM makes every line of a chip level-triggered.
        p.write_port(0x20, 0x19);
        p.write_port(0x21, 0x08);
        p.write_port(0x21, 0x04);
        p.write_port(0x21, 0x01);
        p.set_irq(4, true);
        assert_eq!(p.acknowledge(), 0x0C);
        p.write_port(0x20, 0x20);
        assert_eq!(p.acknowledge(), 0x0C);
    }

    #[test]
    fn edge_latch_is_reset_by_icw1() {
        let mut p = bios_init();
        p.write_port(0x21, 0xFF);
        p.set_irq(5, true);
        p.write_port(0x20, 0x11);
        p.write_port(0x21, 0x08);
        p.write_port(0x21, 0x04);
        p.write_port(0x21, 0x01);
        assert!(!p.interrupt_pending(), "the line must rise again");
        p.pulse_irq(5);
        assert_eq!(p.acknowledge(), 0x0D);
    }

    #[test]
    fn spurious_irq7_and_irq15() {
        let mut p = bios_init();
        // The request goes away between INT and INTA.
        p.set_irq(3, true);
        assert!(p.interrupt_pending());
        p.set_irq(3, false);
        assert!(p.interrupt_pending(), "INT is latched");
        assert_eq!(p.acknowledge(), 0x0F);
        assert_eq!(p.master.isr, 0, "no ISR bit for a spurious interrupt");
        assert!(!p.interrupt_pending());
        // Same on the slave: the master delivers the cascade, the slave IR7.
        p.set_irq(12, true);
        p.set_irq(12, false);
        assert!(p.interrupt_pending());
        assert_eq!(p.acknowledge(), 0x77);
        assert_eq!((p.master.isr, p.slave.isr), (0x04, 0));
        p.write_port(0x20, 0x20);
        // A real IRQ7 does set ISR.
        p.pulse_irq(7);
        assert_eq!(p.acknowledge(), 0x0F);
        assert_eq!(p.master.isr, 0x80);
    }

    #[test]
    fn cascaded_slave_vectors_and_reassertion() {
        let mut p = bios_init();
        p.pulse_irq(9);
        p.pulse_irq(15);
        assert_eq!(p.acknowledge(), 0x71);
        assert_eq!((p.master.isr, p.slave.isr), (0x04, 0x02));
        eoi(&mut p, 9);
        assert!(p.interrupt_pending(), "the slave raises the cascade again");
        assert_eq!(p.acknowledge(), 0x77);
        eoi(&mut p, 15);
        // ISA IRQ2 is IRQ9.
        p.pulse_irq(2);
        assert_eq!(p.acknowledge(), 0x71);
        eoi(&mut p, 9);
        // Slave in AEOI with two requests: both arrive without EOIs on the slave.
        p.write_port(0xA0, 0x11);
        p.write_port(0xA1, 0x70);
        p.write_port(0xA1, 0x02);
        p.write_port(0xA1, 0x03);
        p.pulse_irq(10);
        p.pulse_irq(12);
        assert_eq!(p.acknowledge(), 0x72);
        p.write_port(0x20, 0x20);
        assert_eq!(p.acknowledge(), 0x74);
    }

    #[test]
    fn special_fully_nested_mode() {
        let mut p = bios_init();
        p.write_port(0x20, 0x11);
        p.write_port(0x21, 0x08);
        p.write_port(0x21, 0x04);
        p.write_port(0x21, 0x11); // SFNM
        p.pulse_irq(12);
        assert_eq!(p.acknowledge(), 0x74);
        // A higher slave request gets through the master's IR2 in service.
        p.pulse_irq(9);
        assert!(p.interrupt_pending());
        assert_eq!(p.acknowledge(), 0x71);
        // A lower master request still waits.
        p.pulse_irq(4);
        assert!(!p.interrupt_pending());
    }

    #[test]
    fn bus_windows_and_serde() {
        let mut bus = IoBus::new();
        let id = Pic8259Pair::new().map(&mut bus).unwrap();
        bus.pio_write(0x20, 1, 0x11);
        bus.pio_write(0x21, 1, 0x20);
        bus.pio_write(0x21, 1, 0x04);
        bus.pio_write(0x21, 1, 0x01);
        bus.pio_write(0x21, 1, 0xFE);
        assert_eq!(bus.pio_read(0x21, 1), 0xFE);
        bus.pio_write(0x4D0, 2, 0x0800);
        assert_eq!(bus.pio_read(0x4D0, 2), 0x0800);
        bus.get_mut(id).pulse_irq(0);
        assert!(bus.get(id).interrupt_pending());
        let snap = serde_json::to_string(bus.get(id)).unwrap();
        let back: Pic8259Pair = serde_json::from_str(&snap).unwrap();
        assert_eq!(back, *bus.get(id));
        assert_eq!(bus.get_mut(id).acknowledge(), 0x20);
        assert_eq!(bus.pio_read(0xA1, 1), 0x00);
    }
}
