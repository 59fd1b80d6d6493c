//! The wires from devices to the board: interrupt request lines that a
//! device raises and lowers itself, and the system signals (reset request,
//! power-off, the A20 gate, the exit device's status, PCI BAR moves).
//!
//! A device holds an [`IrqLine`] or a [`SystemLink`] (cheap clones of one
//! shared [`Wires`]) and drives it from inside its register accesses and its
//! timer callbacks. Nothing is polled: a change sets a flag, and the machine,
//! to which every engine returns right after a device access or at a device
//! deadline, hands the change to the interrupt controllers at that same
//! instruction boundary ([`Wires::take_irq_changes`]). A line that goes high
//! and low again within one access still shows the controllers its edge.
//!
//! The handles are wiring, not state: they are rebuilt when a machine is
//! built, and a snapshot holds only the levels ([`Wires::irq_levels`]).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Interrupt request lines: the 16 ISA lines and the I/O APIC's 8 PCI
/// lines (16..24).
pub const IRQ_LINES: u8 = 24;

/// A request to move a PCI function's I/O window (a BAR or a PIIX base
/// register), raised by the PCI host when the guest writes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarMove {
    /// Device and function (`device << 3 | function`) on bus 0.
    pub devfn: u8,
    /// The register's configuration-space offset (0x10.. for BARs).
    pub register: u8,
    /// The new I/O base, or `None` when decoding is now off.
    pub base: Option<u16>,
}

/// A request to move a PCI function's memory window (a memory BAR, such
/// as the VGA's linear framebuffer), raised by the PCI host when the guest
/// writes the BAR or the command register's memory enable bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemBarMove {
    /// Device and function (`device << 3 | function`) on bus 0.
    pub devfn: u8,
    /// The BAR's configuration-space offset (0x10..0x24).
    pub register: u8,
    /// The new base, or `None` when decoding is now off.
    pub base: Option<u32>,
}

/// Changes of the interrupt lines since the last look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IrqChanges {
    /// The current level of every line (bit n = line n).
    pub levels: u32,
    /// Lines that rose at least once (bit n = line n); a line that rose and
    /// fell again shows here with its level low.
    pub rose: u32,
    /// Lines whose level differs from the last look, or that rose.
    pub changed: u32,
}

/// The shared wires of one machine.
#[derive(Debug, Default)]
pub struct Wires {
    /// For each line, one bit per device driving it high (ISA lines are
    /// shared by wired OR: COM1 and COM3 both drive IRQ4).
    drivers: [AtomicU32; IRQ_LINES as usize],
    /// The next free driver bit of each line.
    next_source: [AtomicU32; IRQ_LINES as usize],
    /// Bit n: line n is high (some driver holds it high).
    levels: AtomicU32,
    rose: AtomicU32,
    seen: AtomicU32,
    /// Something on these wires changed since the machine last looked.
    dirty: AtomicBool,
    reset: AtomicBool,
    poweroff: AtomicBool,
    /// A20 gate sources (bit 0: the 8042's output port, bit 1: port 0x92).
    a20: AtomicU32,
    /// The exit device's status: 0 for none, else `1 << 32 | status`.
    exit: AtomicU64,
    bar_moves: Mutex<Vec<BarMove>>,
    mem_bar_moves: Mutex<Vec<MemBarMove>>,
}

/// A20 gate source: the 8042's output port.
pub const A20_I8042: u32 = 1;
/// A20 gate source: system control port A (0x92).
pub const A20_PORT92: u32 = 2;

impl Wires {
    /// A set of wires, all low.
    pub fn new() -> Arc<Wires> {
        Arc::new(Wires::default())
    }

    /// A new driver of interrupt line `n` (0..[`IRQ_LINES`]); the line is
    /// high while any of its drivers holds it high (at most 32 per line).
    pub fn irq(self: &Arc<Wires>, n: u8) -> IrqLine {
        assert!(n < IRQ_LINES, "interrupt line {n} does not exist");
        let k = self.next_source[usize::from(n)].fetch_add(1, Ordering::Relaxed);
        assert!(k < 32, "more than 32 drivers on interrupt line {n}");
        IrqLine {
            wires: Arc::clone(self),
            n,
            source: 1 << k,
        }
    }

    /// A handle for the system signals.
    pub fn system(self: &Arc<Wires>) -> SystemLink {
        SystemLink(Arc::clone(self))
    }

    /// True (once) when anything changed since the last call: the machine
    /// then takes the changes.
    #[inline]
    pub fn take_dirty(&self) -> bool {
        self.dirty.load(Ordering::Relaxed) && self.dirty.swap(false, Ordering::Relaxed)
    }

    /// The interrupt line changes since the last call.
    pub fn take_irq_changes(&self) -> IrqChanges {
        let levels = self.levels.load(Ordering::Relaxed);
        let rose = self.rose.swap(0, Ordering::Relaxed);
        let seen = self.seen.swap(levels, Ordering::Relaxed);
        IrqChanges {
            levels,
            rose,
            changed: (levels ^ seen) | rose,
        }
    }

    /// The current level of every interrupt line (bit n = line n).
    pub fn irq_levels(&self) -> u32 {
        self.levels.load(Ordering::Relaxed)
    }

    /// True (once) when a device asked for a system reset.
    pub fn take_reset(&self) -> bool {
        self.reset.swap(false, Ordering::Relaxed)
    }

    /// True (once) when the guest powered off.
    pub fn take_poweroff(&self) -> bool {
        self.poweroff.swap(false, Ordering::Relaxed)
    }

    /// The A20 gate: open when any source opens it.
    pub fn a20(&self) -> bool {
        self.a20.load(Ordering::Relaxed) != 0
    }

    /// The exit device's status, once the guest wrote it.
    pub fn exit_status(&self) -> Option<u32> {
        let v = self.exit.load(Ordering::Relaxed);
        (v >> 32 != 0).then_some(v as u32)
    }

    /// Forgets the exit status (at a machine reset).
    pub fn clear_exit(&self) {
        self.exit.store(0, Ordering::Relaxed);
    }

    /// The PCI BAR moves asked for since the last call, in order.
    pub fn take_bar_moves(&self) -> Vec<BarMove> {
        match self.bar_moves.lock() {
            Ok(mut v) => std::mem::take(&mut *v),
            Err(e) => std::mem::take(&mut *e.into_inner()),
        }
    }

    /// The PCI memory BAR moves asked for since the last call, in order.
    pub fn take_mem_bar_moves(&self) -> Vec<MemBarMove> {
        match self.mem_bar_moves.lock() {
            Ok(mut v) => std::mem::take(&mut *v),
            Err(e) => std::mem::take(&mut *e.into_inner()),
        }
    }

    /// Drops every line and signal (at a machine reset).
    pub fn reset_all(&self) {
        for d in &self.drivers {
            d.store(0, Ordering::Relaxed);
        }
        self.levels.store(0, Ordering::Relaxed);
        self.rose.store(0, Ordering::Relaxed);
        self.seen.store(0, Ordering::Relaxed);
        self.reset.store(false, Ordering::Relaxed);
        self.poweroff.store(false, Ordering::Relaxed);
        self.a20.store(0, Ordering::Relaxed);
        self.exit.store(0, Ordering::Relaxed);
        self.take_bar_moves();
        self.take_mem_bar_moves();
        self.dirty.store(true, Ordering::Relaxed);
    }

    #[inline]
    fn touch(&self) {
        self.dirty.store(true, Ordering::Relaxed);
    }
}

/// One interrupt request line, driven by the device that holds it.
#[derive(Clone, Debug)]
pub struct IrqLine {
    wires: Arc<Wires>,
    n: u8,
    source: u32,
}

impl IrqLine {
    /// The line's number.
    pub fn number(&self) -> u8 {
        self.n
    }

    /// Drives the line to `level` (this driver's part of the wired OR).
    /// Driving it to the level it has is free.
    #[inline]
    pub fn set(&self, level: bool) {
        let w = &self.wires;
        let drivers = &w.drivers[usize::from(self.n)];
        let old = drivers.load(Ordering::Relaxed);
        let new = if level {
            old | self.source
        } else {
            old & !self.source
        };
        if old == new {
            return;
        }
        drivers.store(new, Ordering::Relaxed);
        if (old != 0) == (new != 0) {
            return; // another driver holds the line high
        }
        let bit = 1u32 << self.n;
        if new != 0 {
            w.levels.fetch_or(bit, Ordering::Relaxed);
            w.rose.fetch_or(bit, Ordering::Relaxed);
        } else {
            w.levels.fetch_and(!bit, Ordering::Relaxed);
        }
        w.touch();
    }

    /// Raises the line.
    pub fn raise(&self) {
        self.set(true);
    }

    /// Lowers the line.
    pub fn lower(&self) {
        self.set(false);
    }

    /// A fresh rising edge: the line drops (if high) and rises again, and
    /// stays high, like the 8254's OUT0 in its rate-generator mode. An
    /// edge-triggered 8259A needs the line still high at INTA, or it
    /// answers with its spurious vector.
    pub fn pulse(&self) {
        self.set(false);
        self.set(true);
    }

    /// The line's level (all its drivers).
    pub fn level(&self) -> bool {
        self.wires.levels.load(Ordering::Relaxed) & (1 << self.n) != 0
    }
}

/// The system signals, for the devices that drive them.
#[derive(Clone, Debug)]
pub struct SystemLink(Arc<Wires>);

/// Wiring is not state: two devices that differ only in what they are
/// wired to compare equal (so device states compare by their registers).
impl PartialEq for SystemLink {
    fn eq(&self, _: &SystemLink) -> bool {
        true
    }
}
impl Eq for SystemLink {}

impl SystemLink {
    /// Asks for a system reset (the 8042's pulse, port 0x92, port 0xCF9).
    pub fn request_reset(&self) {
        self.0.reset.store(true, Ordering::Relaxed);
        self.0.touch();
    }

    /// The guest entered S5.
    pub fn power_off(&self) {
        self.0.poweroff.store(true, Ordering::Relaxed);
        self.0.touch();
    }

    /// Opens or closes the A20 gate for `source` ([`A20_I8042`], [`A20_PORT92`]).
    pub fn set_a20(&self, source: u32, open: bool) {
        let w = &self.0;
        let old = if open {
            w.a20.fetch_or(source, Ordering::Relaxed)
        } else {
            w.a20.fetch_and(!source, Ordering::Relaxed)
        };
        if (old & source != 0) != open {
            w.touch();
        }
    }

    /// The exit device was written: the run ends with `status`.
    pub fn exit(&self, status: u32) {
        self.0
            .exit
            .store(1 << 32 | u64::from(status), Ordering::Relaxed);
        self.0.touch();
    }

    /// A PCI function's memory window moved.
    pub fn move_mem_bar(&self, m: MemBarMove) {
        match self.0.mem_bar_moves.lock() {
            Ok(mut v) => v.push(m),
            Err(e) => e.into_inner().push(m),
        }
        self.0.touch();
    }

    /// A PCI function's I/O window moved.
    pub fn move_bar(&self, m: BarMove) {
        match self.0.bar_moves.lock() {
            Ok(mut v) => v.push(m),
            Err(e) => e.into_inner().push(m),
        }
        self.0.touch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pulses_and_dips_show_their_edges() {
        let w = Wires::new();
        let l = w.irq(4);
        assert!(!w.take_dirty());
        l.pulse();
        assert!(w.take_dirty());
        let c = w.take_irq_changes();
        assert_eq!((c.levels, c.rose, c.changed), (1 << 4, 1 << 4, 1 << 4));
        assert!(!w.take_dirty());
        assert_eq!(w.take_irq_changes().changed, 0);
        // A second pulse on a high line is still an edge.
        l.pulse();
        let c = w.take_irq_changes();
        assert_eq!((c.levels, c.rose, c.changed), (1 << 4, 1 << 4, 1 << 4));
        // Up and down within one access: the edge shows, the level is low.
        l.lower();
        w.take_irq_changes();
        l.raise();
        l.lower();
        let c = w.take_irq_changes();
        assert_eq!((c.levels, c.rose, c.changed), (0, 1 << 4, 1 << 4));
    }

    #[test]
    fn levels_and_signals() {
        let w = Wires::new();
        let (a, b) = (w.irq(1), w.irq(12));
        a.raise();
        a.raise();
        b.raise();
        b.lower();
        let c = w.take_irq_changes();
        assert_eq!(c.levels, 1 << 1);
        assert_eq!(c.changed, 1 << 1 | 1 << 12);
        a.lower();
        assert_eq!(w.take_irq_changes().changed, 1 << 1);
        let s = w.system();
        s.set_a20(A20_I8042, true);
        s.set_a20(A20_PORT92, true);
        s.set_a20(A20_I8042, false);
        assert!(w.a20());
        s.exit(7);
        assert_eq!(w.exit_status(), Some(7));
        s.request_reset();
        assert!(w.take_reset() && !w.take_reset());
        s.move_bar(BarMove {
            devfn: 9,
            register: 0x20,
            base: Some(0xC000),
        });
        assert_eq!(w.take_bar_moves().len(), 1);
        assert!(w.take_bar_moves().is_empty());
        let m = MemBarMove {
            devfn: 0x10,
            register: 0x10,
            base: Some(0xFD00_0000),
        };
        s.move_mem_bar(m);
        assert!(w.take_dirty());
        assert_eq!(w.take_mem_bar_moves(), vec![m]);
        assert!(w.take_mem_bar_moves().is_empty());
    }

    #[test]
    fn shared_lines_are_a_wired_or() {
        let w = Wires::new();
        let (com1, com3) = (w.irq(4), w.irq(4));
        com1.raise();
        com3.raise();
        com1.lower();
        assert!(com3.level());
        assert_eq!(w.take_irq_changes().levels, 1 << 4);
        com3.lower();
        assert!(!com1.level());
    }
}
