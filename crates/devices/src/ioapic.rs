//! An Intel 82093AA I/O APIC with 24 interrupt pins.
//!
//! Two MMIO registers: IOREGSEL at offset 0x00 selects an indirect register
//! and IOWIN at 0x10 reads or writes it. Indirect registers: ID (0x00, bits
//! 27..24), VER (0x01, 0x0017_0011: 24 entries, version 0x11), ARB (0x02,
//! reads the ID) and the redirection table (0x10-0x3F, low then high dword
//! of entries 0-23). Version 0x11 has no EOI register: EOIs arrive as
//! broadcasts from the local APIC ([`IoApic::eoi`]).
//!
//! The machine drives the pins with [`IoApic::set_irq`], passing whether the
//! line is *asserted*, not its voltage: the polarity bit is stored and read
//! back but not applied, as in QEMU, so a PCI INTx# line that the guest
//! programs active-low (as the MADT or _PRT says) works when the machine
//! reports assertion. Interrupt messages are
//! queued as [`Delivery`] values for the machine to take with
//! [`IoApic::take_deliveries`] and hand to
//! [`crate::apic::LocalApic::deliver`], which checks the destination and the
//! delivery mode. Edge-triggered pins send one message per inactive→active
//! transition while unmasked (edges while masked are lost). Level-triggered
//! fixed and lowest-priority pins send a message while active and unmasked
//! and set Remote IRR; nothing more is sent until the EOI for the vector
//! clears it, and if the line is still active then, the message is sent
//! again. Level-triggered NMI, SMI, INIT and ExtINT pins behave as edge.
//! Rewriting an entry as edge-triggered clears its Remote IRR (Linux relies
//! on this on I/O APICs without an EOI register). Messages are sent at once,
//! so the delivery status bit always reads idle.
//!
//! With one CPU, lowest-priority delivery is fixed delivery; destinations
//! are not interpreted here but carried in the message for the local APIC.
//! A level message refused by the local APIC leaves Remote IRR set.

use serde::{Deserialize, Serialize};

/// Default physical base of the I/O APIC.
pub const IOAPIC_BASE: u64 = 0xFEC0_0000;
/// Size of the MMIO window the I/O APIC is usually given.
pub const IOAPIC_SIZE: u64 = 0x1000;
/// Number of interrupt pins (redirection entries).
pub const IOAPIC_PINS: usize = 24;
/// Value of the version register: 24 entries (max index 0x17), version 0x11.
pub const IOAPIC_VERSION: u32 = 0x0017_0011;

// Redirection entry bits.
const RTE_VECTOR: u64 = 0xFF;
const RTE_LOGICAL: u64 = 1 << 11;
const RTE_REMOTE_IRR: u64 = 1 << 14;
const RTE_LEVEL: u64 = 1 << 15;
const RTE_MASKED: u64 = 1 << 16;
/// Guest-writable bits: vector, delivery mode, destination mode,
/// polarity, trigger mode, mask, destination.
const RTE_WRITABLE: u64 = 0xFF00_0000_0001_AFFF;

/// How an interrupt message is to be delivered (delivery mode field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryMode {
    /// 000: the vector, to the destination.
    Fixed,
    /// 001: the vector, to the lowest-priority destination (fixed with one CPU).
    LowestPriority,
    /// 010: system management interrupt.
    Smi,
    /// 100: non-maskable interrupt.
    Nmi,
    /// 101: INIT.
    Init,
    /// 111: external interrupt: the 8259 supplies the vector.
    ExtInt,
}

impl DeliveryMode {
    /// The mode of a 3-bit delivery mode field; `None` for the reserved 011 and 110.
    pub fn from_bits(bits: u8) -> Option<DeliveryMode> {
        Some(match bits & 7 {
            0 => DeliveryMode::Fixed,
            1 => DeliveryMode::LowestPriority,
            2 => DeliveryMode::Smi,
            4 => DeliveryMode::Nmi,
            5 => DeliveryMode::Init,
            7 => DeliveryMode::ExtInt,
            _ => return None,
        })
    }
}

/// An interrupt message from the I/O APIC to the local APIC(s).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The pin (global system interrupt) that sent it.
    pub gsi: u8,
    /// The vector (meaningful for fixed and lowest-priority).
    pub vector: u8,
    /// The delivery mode.
    pub mode: DeliveryMode,
    /// Level-triggered (the local APIC sets the vector's TMR bit and
    /// reports its EOI).
    pub level_triggered: bool,
    /// Logical (true) or physical destination mode.
    pub logical: bool,
    /// The destination field (bits 63..56 of the entry).
    pub dest: u8,
}

/// The I/O APIC's registers: plain data, serializable for snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoApicState {
    /// I/O APIC ID (4 bits).
    pub id: u8,
    /// The selected indirect register.
    pub ioregsel: u8,
    /// Redirection table.
    pub redir: [u64; IOAPIC_PINS],
    /// Level of each pin (bit n = pin n asserted).
    pub pin_level: u32,
    /// Messages not yet taken by the machine.
    pub pending: Vec<Delivery>,
}

impl Default for IoApicState {
    fn default() -> Self {
        IoApicState {
            id: 0,
            ioregsel: 0,
            redir: [RTE_MASKED; IOAPIC_PINS],
            pin_level: 0,
            pending: Vec::new(),
        }
    }
}

/// An 82093AA I/O APIC. See the module documentation.
#[derive(Debug, Default)]
pub struct IoApic {
    /// Registers, pin levels and queued messages.
    pub state: IoApicState,
}

impl IoApic {
    /// An I/O APIC with `id` in its reset state (all entries masked).
    pub fn new(id: u8) -> IoApic {
        IoApic {
            state: IoApicState {
                id: id & 0xF,
                ..IoApicState::default()
            },
        }
    }

    /// Resets the registers, keeping the ID and the pin levels.
    pub fn reset(&mut self) {
        let s = &self.state;
        self.state = IoApicState {
            id: s.id,
            pin_level: s.pin_level,
            ..IoApicState::default()
        };
    }

    /// Redirection entry `pin` as a 64-bit value.
    pub fn entry(&self, pin: usize) -> u64 {
        self.state.redir[pin]
    }

    fn asserted(&self, pin: usize) -> bool {
        self.state.pin_level & (1 << pin) != 0
    }

    /// Whether entry `e` uses Remote IRR (level-triggered fixed or lowest priority).
    fn uses_remote_irr(e: u64) -> bool {
        e & RTE_LEVEL != 0 && (e >> 8) & 6 == 0
    }

    fn send(&mut self, pin: usize) {
        let e = self.state.redir[pin];
        let Some(mode) = DeliveryMode::from_bits((e >> 8) as u8) else {
            tracing::debug!(pin, entry = e, "I/O APIC: reserved delivery mode");
            return;
        };
        self.state.pending.push(Delivery {
            gsi: pin as u8,
            vector: (e & RTE_VECTOR) as u8,
            mode,
            level_triggered: Self::uses_remote_irr(e),
            logical: e & RTE_LOGICAL != 0,
            dest: (e >> 56) as u8,
        });
    }

    /// Sends a level pin's message if it is active, unmasked and Remote IRR is clear.
    fn try_level(&mut self, pin: usize) {
        let e = self.state.redir[pin];
        if Self::uses_remote_irr(e) && e & (RTE_MASKED | RTE_REMOTE_IRR) == 0 && self.asserted(pin)
        {
            self.state.redir[pin] |= RTE_REMOTE_IRR;
            self.send(pin);
        }
    }

    /// Sets whether pin `gsi` (0-23; others are ignored) is asserted. The
    /// entry's polarity bit is not applied: `level` is the logical state.
    pub fn set_irq(&mut self, gsi: u8, level: bool) {
        let pin = usize::from(gsi);
        if pin >= IOAPIC_PINS {
            tracing::debug!(gsi, "I/O APIC: no such pin");
            return;
        }
        let was = self.asserted(pin);
        if level {
            self.state.pin_level |= 1 << pin;
        } else {
            self.state.pin_level &= !(1 << pin);
        }
        let e = self.state.redir[pin];
        if Self::uses_remote_irr(e) {
            self.try_level(pin);
        } else if self.asserted(pin) && !was && e & RTE_MASKED == 0 {
            self.send(pin);
        }
    }

    /// An EOI broadcast for `vector`: clears Remote IRR of the level entries
    /// with that vector and sends again those whose line is still active.
    pub fn eoi(&mut self, vector: u8) {
        for pin in 0..IOAPIC_PINS {
            let e = self.state.redir[pin];
            if e & RTE_REMOTE_IRR != 0 && (e & RTE_VECTOR) as u8 == vector {
                self.state.redir[pin] &= !RTE_REMOTE_IRR;
                self.try_level(pin);
            }
        }
    }

    /// Whether messages wait to be taken.
    pub fn has_deliveries(&self) -> bool {
        !self.state.pending.is_empty()
    }

    /// Moves the queued messages, oldest first, to the end of `out`.
    pub fn take_deliveries(&mut self, out: &mut Vec<Delivery>) {
        out.append(&mut self.state.pending);
    }

    /// Reads indirect register `index`.
    pub fn read_indirect(&self, index: u8) -> u32 {
        let s = &self.state;
        match index {
            0x00 | 0x02 => u32::from(s.id) << 24,
            0x01 => IOAPIC_VERSION,
            0x10..=0x3F => {
                let e = s.redir[usize::from(index - 0x10) / 2];
                if index & 1 == 0 {
                    e as u32
                } else {
                    (e >> 32) as u32
                }
            }
            _ => 0,
        }
    }

    /// Writes indirect register `index`.
    pub fn write_indirect(&mut self, index: u8, v: u32) {
        match index {
            0x00 => self.state.id = ((v >> 24) & 0xF) as u8,
            0x10..=0x3F => {
                let pin = usize::from(index - 0x10) / 2;
                let old = self.state.redir[pin];
                let merged = if index & 1 == 0 {
                    (old & !0xFFFF_FFFF) | u64::from(v)
                } else {
                    (old & 0xFFFF_FFFF) | (u64::from(v) << 32)
                };
                let mut n = (merged & RTE_WRITABLE) | (old & RTE_REMOTE_IRR);
                if !Self::uses_remote_irr(n) {
                    n &= !RTE_REMOTE_IRR;
                }
                self.state.redir[pin] = n;
                // An unmasked level line that is active is sent now.
                self.try_level(pin);
            }
            _ => tracing::debug!(index, v, "I/O APIC: write to read-only register"),
        }
    }
}

impl IoApic {
    /// Reads `size` bytes at `offset` into the register page.
    pub fn mmio_read(&mut self, offset: u64, size: u8) -> u64 {
        let within = offset & 0xF;
        if within >= 4 {
            return 0;
        }
        let v = match offset & !0xF {
            0x00 => u32::from(self.state.ioregsel),
            0x10 => self.read_indirect(self.state.ioregsel),
            _ => 0,
        };
        (u64::from(v) >> (8 * within)) & u64::from(crate::all_ones(size))
    }

    /// Writes the low `size` bytes of `value` at `offset` into the register page.
    pub fn mmio_write(&mut self, offset: u64, size: u8, value: u64) {
        let within = offset & 0xF;
        if within >= 4 {
            return;
        }
        let shift = 8 * within;
        let mask = (u64::from(crate::all_ones(size)) << shift) & 0xFFFF_FFFF;
        let merge = |old: u32| ((u64::from(old) & !mask) | ((value << shift) & mask)) as u32;
        match offset & !0xF {
            0x00 => self.state.ioregsel = merge(u32::from(self.state.ioregsel)) as u8,
            0x10 => {
                let index = self.state.ioregsel;
                let v = merge(self.read_indirect(index));
                self.write_indirect(index, v);
            }
            _ => tracing::debug!(offset, "I/O APIC: write outside its registers"),
        }
    }
}

impl crate::bus::Device for IoApic {
    fn mmio_read(&mut self, _base: u64, offset: u64, size: u8) -> u64 {
        IoApic::mmio_read(self, offset, size)
    }

    fn mmio_write(&mut self, _base: u64, offset: u64, size: u8, value: u64) {
        IoApic::mmio_write(self, offset, size, value)
    }

    fn reset(&mut self) {
        IoApic::reset(self);
    }

    fn name(&self) -> &str {
        "ioapic"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apic::{LocalApic, DEFAULT_TIMER_HZ};
    use crate::clock::TimeSource;

    fn sel_write(io: &mut IoApic, index: u8, v: u32) {
        io.mmio_write(0x00, 4, u64::from(index));
        io.mmio_write(0x10, 4, u64::from(v));
    }

    fn sel_read(io: &mut IoApic, index: u8) -> u32 {
        io.mmio_write(0x00, 4, u64::from(index));
        io.mmio_read(0x10, 4) as u32
    }

    fn take(io: &mut IoApic) -> Vec<Delivery> {
        let mut v = Vec::new();
        io.take_deliveries(&mut v);
        v
    }

    #[test]
    fn identification_registers() {
        let mut io = IoApic::new(2);
        assert_eq!(sel_read(&mut io, 0x00), 0x0200_0000);
        assert_eq!(sel_read(&mut io, 0x01), 0x0017_0011);
        assert_eq!(sel_read(&mut io, 0x02), 0x0200_0000);
        assert_eq!(io.mmio_read(0x00, 4), 0x02, "IOREGSEL reads back");
        sel_write(&mut io, 0x00, 0x0900_0000);
        assert_eq!(sel_read(&mut io, 0x00), 0x0900_0000);
        sel_write(&mut io, 0x01, 0);
        assert_eq!(sel_read(&mut io, 0x01), 0x0017_0011);
        // Reset state: every entry masked.
        for i in 0..24 {
            assert_eq!(sel_read(&mut io, 0x10 + 2 * i), 0x0001_0000);
            assert_eq!(sel_read(&mut io, 0x11 + 2 * i), 0);
        }
        // Byte access to IOWIN reads the containing register.
        io.mmio_write(0x00, 1, 0x01);
        assert_eq!(io.mmio_read(0x12, 1), 0x17);
    }

    #[test]
    fn edge_delivery() {
        let mut io = IoApic::new(0);
        sel_write(&mut io, 0x10 + 2 * 4, 0x0000_0934); // logical, fixed, vector 0x34
        sel_write(&mut io, 0x11 + 2 * 4, 0x0100_0000);
        io.set_irq(4, true);
        let d = take(&mut io);
        assert_eq!(
            d,
            vec![Delivery {
                gsi: 4,
                vector: 0x34,
                mode: DeliveryMode::LowestPriority,
                level_triggered: false,
                logical: true,
                dest: 1
            }]
        );
        io.set_irq(4, true);
        assert!(!io.has_deliveries(), "no new edge");
        io.set_irq(4, false);
        assert!(!io.has_deliveries());
        io.set_irq(4, true);
        assert_eq!(take(&mut io).len(), 1);
        // Polarity is stored, but the machine reports assertion.
        sel_write(&mut io, 0x10 + 2 * 5, 0x0000_2035);
        assert_eq!(sel_read(&mut io, 0x10 + 2 * 5), 0x0000_2035);
        io.set_irq(5, true);
        assert_eq!(take(&mut io)[0].vector, 0x35);
        assert_eq!(sel_read(&mut io, 0x10 + 2 * 5) & (1 << 12), 0, "idle");
    }

    #[test]
    fn level_delivery_remote_irr_and_redelivery() {
        let mut io = IoApic::new(0);
        let idx = 0x10 + 2 * 10;
        sel_write(&mut io, idx, 0x0000_8041); // level, fixed, vector 0x41
        io.set_irq(10, true);
        let d = take(&mut io);
        assert_eq!(d.len(), 1);
        assert!(d[0].level_triggered);
        assert_ne!(sel_read(&mut io, idx) & (1 << 14), 0, "remote IRR set");
        io.set_irq(10, true);
        assert!(!io.has_deliveries(), "held by remote IRR");
        io.eoi(0x42); // other vector: nothing
        assert!(!io.has_deliveries());
        io.eoi(0x41); // line still high: sent again
        assert_eq!(take(&mut io).len(), 1);
        assert_ne!(sel_read(&mut io, idx) & (1 << 14), 0);
        io.set_irq(10, false);
        io.eoi(0x41);
        assert!(!io.has_deliveries());
        assert_eq!(sel_read(&mut io, idx) & (1 << 14), 0, "remote IRR clear");
        // Linux's EOI workaround: switching to edge clears remote IRR.
        io.set_irq(10, true);
        assert_eq!(take(&mut io).len(), 1);
        io.set_irq(10, false);
        sel_write(&mut io, idx, 0x0001_0041); // masked, edge
        assert_eq!(sel_read(&mut io, idx) & (1 << 14), 0);
        sel_write(&mut io, idx, 0x0000_8041); // unmasked, level; line low
        assert!(!io.has_deliveries());
    }

    #[test]
    fn masked_entries() {
        let mut io = IoApic::new(0);
        sel_write(&mut io, 0x10 + 2 * 3, 0x0001_0033); // masked edge
        io.set_irq(3, true);
        assert!(!io.has_deliveries());
        sel_write(&mut io, 0x10 + 2 * 3, 0x0000_0033); // unmask: edge was lost
        assert!(!io.has_deliveries());
        sel_write(&mut io, 0x10 + 2 * 9, 0x0001_8039); // masked level
        io.set_irq(9, true);
        assert!(!io.has_deliveries());
        sel_write(&mut io, 0x10 + 2 * 9, 0x0000_8039); // unmask while high
        let d = take(&mut io);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].vector, 0x39);
        io.set_irq(30, true); // no such pin: ignored
    }

    #[test]
    fn nmi_and_extint_entries_are_reported() {
        let mut io = IoApic::new(0);
        sel_write(&mut io, 0x10, 0x0000_0700); // pin 0 ExtINT
        sel_write(&mut io, 0x12, 0x0000_0400); // pin 1 NMI
        io.set_irq(0, true);
        io.set_irq(1, true);
        let d = take(&mut io);
        assert_eq!(d[0].mode, DeliveryMode::ExtInt);
        assert_eq!(d[1].mode, DeliveryMode::Nmi);
        let mut lapic = LocalApic::new(0, DEFAULT_TIMER_HZ, TimeSource::new());
        assert!(lapic.deliver(&d[0]));
        assert!(lapic.extint_pending());
        lapic.acknowledge_extint();
        assert!(!lapic.extint_pending());
        assert!(lapic.deliver(&d[1]));
        assert!(lapic.take_nmi());
    }

    /// The whole path: I/O APIC level pin → local APIC → CPU acknowledge →
    /// EOI → broadcast → re-delivery while the line stays high.
    #[test]
    fn level_interrupt_through_local_apic() {
        let time = TimeSource::new();
        let mut lapic = LocalApic::new(0, DEFAULT_TIMER_HZ, time);
        lapic.mmio_write(0xF0, 4, 0x1FF);
        let mut io = IoApic::new(0);
        sel_write(&mut io, 0x10 + 2 * 11, 0x0000_8051); // physical dest 0
        let mut q = Vec::new();
        io.set_irq(11, true);
        io.take_deliveries(&mut q);
        for d in q.drain(..) {
            assert!(lapic.deliver(&d));
        }
        assert_eq!(lapic.acknowledge(), 0x51);
        lapic.mmio_write(0xB0, 4, 0);
        while let Some(v) = lapic.take_eoi_for_level() {
            io.eoi(v);
        }
        io.take_deliveries(&mut q);
        for d in q.drain(..) {
            lapic.deliver(&d);
        }
        assert_eq!(lapic.pending_interrupt(), Some(0x51), "line still high");
        assert_eq!(lapic.acknowledge(), 0x51);
        io.set_irq(11, false);
        lapic.mmio_write(0xB0, 4, 0);
        io.eoi(lapic.take_eoi_for_level().unwrap());
        assert!(!io.has_deliveries());
        // A message for another APIC ID is refused.
        sel_write(&mut io, 0x11 + 2 * 12, 0x0300_0000);
        sel_write(&mut io, 0x10 + 2 * 12, 0x0000_0052);
        io.set_irq(12, true);
        io.take_deliveries(&mut q);
        assert!(!lapic.deliver(&q[0]));
    }

    #[test]
    fn serde_round_trip() {
        let mut io = IoApic::new(1);
        sel_write(&mut io, 0x10 + 2 * 10, 0x0000_8041);
        sel_write(&mut io, 0x11 + 2 * 10, 0xFF00_0000);
        io.set_irq(10, true);
        let json = serde_json::to_string(&io.state).unwrap();
        let back: IoApicState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, io.state);
    }
}
