//! System control ports outside the keyboard controller: System Control
//! Port A at 0x92 ("fast A20" and fast reset) and the PIIX Reset Control
//! Register at 0xCF9.
//!
//! Both record what the guest asked for and, once wired
//! ([`SystemControlA::connect`]), drive the system signals: the reset
//! request and port 0x92's A20 gate, which the wires combine with the
//! keyboard controller's as the PIIX does (address line 20 is masked only
//! when both gates are off).
//!
//! Port 0xCF9 lies inside the PCI configuration window 0xCF8-0xCFF, and a
//! port belongs to one device on the [`crate::IoBus`], so [`ResetControl`]
//! lives inside [`crate::PciHost`], which decodes an 8-bit access at 0xCF9
//! as the reset control register (and only a 32-bit access at 0xCF8 as the
//! configuration address), exactly as the PIIX does.

use crate::lines::{SystemLink, A20_PORT92};
use serde::{Deserialize, Serialize};

/// System Control Port A.
pub const SYSTEM_CONTROL_A_PORT: u16 = 0x92;
/// The PIIX Reset Control Register.
pub const RESET_CONTROL_PORT: u16 = 0xCF9;

/// Port 0x92 bit 0: fast reset (a 0 → 1 transition resets the CPU).
const SCA_RESET: u8 = 1 << 0;
/// Port 0x92 bit 1: A20 gate.
const SCA_A20: u8 = 1 << 1;

/// System Control Port A (port 0x92, "PS/2 fast A20").
///
/// Bit 0 (fast reset): writing 1 while it reads 0 requests a reset. Bit 1
/// (alternate A20 gate): 1 enables address line 20. The other bits are kept
/// and read back (bit 3 is the power-on password lock on some chipsets).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SystemControlA {
    value: u8,
    reset_request: bool,
    #[serde(skip)]
    system: Option<SystemLink>,
}

impl SystemControlA {
    /// The port in its power-on state (0: A20 gate off, no reset).
    pub fn new() -> SystemControlA {
        SystemControlA::default()
    }

    /// Reads the register.
    pub fn read(&self) -> u8 {
        self.value
    }

    /// Writes the register.
    pub fn write(&mut self, v: u8) {
        if v & SCA_RESET != 0 && self.value & SCA_RESET == 0 {
            tracing::debug!("port 0x92 fast reset");
            self.reset_request = true;
        }
        self.value = v;
    }

    /// True when this port's A20 gate is on (bit 1).
    pub fn a20_enabled(&self) -> bool {
        self.value & SCA_A20 != 0
    }

    /// True once after the guest requested a reset through bit 0.
    pub fn take_reset_request(&mut self) -> bool {
        std::mem::take(&mut self.reset_request)
    }

    /// Back to the power-on state (after a machine reset).
    pub fn reset(&mut self) {
        self.value = 0;
        self.reset_request = false;
        self.drive();
    }

    /// Drives the reset request and the A20 gate on `system`.
    pub fn connect(&mut self, system: SystemLink) {
        self.system = Some(system);
        self.drive();
    }

    fn drive(&mut self) {
        if let Some(s) = &self.system {
            s.set_a20(A20_PORT92, self.a20_enabled());
            if std::mem::take(&mut self.reset_request) {
                s.request_reset();
            }
        }
    }
}

impl crate::bus::Device for SystemControlA {
    fn pio_read(&mut self, _base: u16, _off: u16, size: u8) -> u32 {
        // Wider accesses reach unclaimed ports 0x93.. on the ISA bus.
        (crate::all_ones(size) & !0xFF) | u32::from(self.read())
    }
    fn pio_write(&mut self, _base: u16, _off: u16, _size: u8, value: u32) {
        self.write(value as u8);
        self.drive();
    }
    fn reset(&mut self) {
        SystemControlA::reset(self);
    }
    fn name(&self) -> &str {
        "system-control-a"
    }
}

/// Reset Control Register bit 1: system reset (1 = hard reset, 0 = soft reset / INIT).
pub const RC_SYS_RESET: u8 = 1 << 1;
/// Reset Control Register bit 2: reset CPU (a 0 → 1 transition starts the reset).
pub const RC_RESET_CPU: u8 = 1 << 2;
/// Reset Control Register bit 3: full reset (power cycle, with bit 1).
pub const RC_FULL_RESET: u8 = 1 << 3;

/// The kind of reset the guest asked for through 0xCF9.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResetKind {
    /// Bit 1 clear: INIT of the processor only.
    Soft,
    /// Bit 1 set: the whole system is reset.
    Hard,
    /// Bits 1 and 3 set: reset with a power cycle.
    Full,
}

/// The PIIX Reset Control Register (0xCF9).
///
/// Writing a value with bit 2 (reset CPU) set, when bit 2 was clear,
/// requests a reset: 0x06 is a hard reset, 0x0E a full reset, 0x04 a soft
/// reset. Bit 2 clears itself; bits 1 and 3 are kept and read back. Every
/// kind of reset is reported through [`ResetControl::take_reset_request`];
/// [`ResetControl::last_kind`] tells them apart.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetControl {
    value: u8,
    reset_request: bool,
    kind: Option<ResetKind>,
}

impl ResetControl {
    /// The register in its power-on state (0).
    pub fn new() -> ResetControl {
        ResetControl::default()
    }

    /// Reads the register (bits 1 and 3; bit 2 always reads 0).
    pub fn read(&self) -> u8 {
        self.value
    }

    /// Writes the register.
    pub fn write(&mut self, v: u8) {
        if v & RC_RESET_CPU != 0 {
            let kind = match (v & RC_SYS_RESET != 0, v & RC_FULL_RESET != 0) {
                (false, _) => ResetKind::Soft,
                (true, false) => ResetKind::Hard,
                (true, true) => ResetKind::Full,
            };
            tracing::debug!(?kind, "0xcf9 reset");
            self.kind = Some(kind);
            self.reset_request = true;
        }
        self.value = v & (RC_SYS_RESET | RC_FULL_RESET);
    }

    /// True once after the guest requested a reset.
    pub fn take_reset_request(&mut self) -> bool {
        std::mem::take(&mut self.reset_request)
    }

    /// The kind of the last reset requested, if any.
    pub fn last_kind(&self) -> Option<ResetKind> {
        self.kind
    }

    /// Back to the power-on state (after a machine reset).
    pub fn reset(&mut self) {
        *self = ResetControl::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IoBus;

    #[test]
    fn port_92_a20_and_fast_reset() {
        let mut bus = IoBus::new();
        let id = bus
            .register(SYSTEM_CONTROL_A_PORT, 1, SystemControlA::new())
            .unwrap();
        assert!(!bus.get(id).a20_enabled());
        bus.pio_write(0x92, 1, 0x02);
        assert!(bus.get(id).a20_enabled());
        assert_eq!(bus.pio_read(0x92, 1), 0x02);
        assert!(!bus.get_mut(id).take_reset_request());
        bus.pio_write(0x92, 1, 0x03);
        assert!(bus.get_mut(id).take_reset_request());
        assert!(!bus.get_mut(id).take_reset_request(), "taken once");
        // Bit 0 already set: no new edge.
        bus.pio_write(0x92, 1, 0x03);
        assert!(!bus.get_mut(id).take_reset_request());
        bus.pio_write(0x92, 1, 0x00);
        assert!(!bus.get(id).a20_enabled());
        bus.pio_write(0x92, 1, 0x01);
        assert!(bus.get_mut(id).take_reset_request());
    }

    #[test]
    fn cf9_kinds() {
        let mut rc = ResetControl::new();
        rc.write(0x02);
        assert!(!rc.take_reset_request(), "bit 2 not set");
        assert_eq!(rc.read(), 0x02);
        rc.write(0x06);
        assert!(rc.take_reset_request());
        assert_eq!(rc.last_kind(), Some(ResetKind::Hard));
        assert_eq!(rc.read(), 0x02, "bit 2 self-clears");
        rc.write(0x0E);
        assert!(rc.take_reset_request());
        assert_eq!(rc.last_kind(), Some(ResetKind::Full));
        rc.write(0x04);
        assert!(rc.take_reset_request());
        assert_eq!(rc.last_kind(), Some(ResetKind::Soft));
        let json = serde_json::to_string(&rc).unwrap();
        assert_eq!(serde_json::from_str::<ResetControl>(&json).unwrap(), rc);
    }
}
