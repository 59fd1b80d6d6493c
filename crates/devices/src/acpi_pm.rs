//! ACPI fixed-hardware power-management registers (PIIX4-style PM I/O
//! block): PM1a event and control blocks and the 24-bit PM timer.
//!
//! Layout from the I/O base (the FADT points here):
//! - `+0` PM1a_STS (16 bits, write 1 to clear), `+2` PM1a_EN (16 bits)
//! - `+4` PM1a_CNT (16 bits): SCI_EN (bit 0), SLP_TYP (bits 10-12), SLP_EN (bit 13)
//! - `+8` PM_TMR (32-bit read, 24 bits of a 3.579545 MHz counter)
//!
//! Writing SLP_EN with the S5 sleep type requests power-off, which the
//! block signals on the system wires once connected ([`AcpiPm::connect`]).

use crate::clock::{ns_to_ticks, TimeSource};
use crate::lines::SystemLink;
use serde::{Deserialize, Serialize};

/// PM timer frequency in Hz.
pub const PM_TIMER_HZ: u64 = 3_579_545;
/// Bytes of I/O space the block occupies.
pub const PM_IO_LEN: u16 = 12;

/// Register state (plain data for snapshots).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcpiPmState {
    /// PM1a_STS.
    pub status: u16,
    /// PM1a_EN.
    pub enable: u16,
    /// PM1a_CNT.
    pub control: u16,
    /// A sleep request (SLP_TYP value) not yet taken by the machine.
    pub sleep_request: Option<u8>,
}

/// The PM I/O block.
pub struct AcpiPm {
    /// Registers.
    pub state: AcpiPmState,
    time: TimeSource,
    s5_type: u8,
    system: Option<SystemLink>,
}

impl AcpiPm {
    /// A PM block whose S5 sleep type (from the DSDT's `\_S5`) is `s5_type`.
    pub fn new(time: TimeSource, s5_type: u8) -> AcpiPm {
        AcpiPm {
            state: AcpiPmState::default(),
            time,
            s5_type,
            system: None,
        }
    }

    /// Signals power-off on `system`.
    pub fn connect(&mut self, system: SystemLink) {
        self.system = Some(system);
    }

    /// True (once) after the guest asked for S5, i.e. power-off.
    pub fn take_poweroff_request(&mut self) -> bool {
        match self.state.sleep_request.take() {
            Some(t) if t == self.s5_type => true,
            Some(t) => {
                tracing::info!("ACPI sleep type {t} requested; only S5 (power-off) is modelled");
                false
            }
            None => false,
        }
    }

    fn timer(&self) -> u32 {
        (ns_to_ticks(self.time.now(), PM_TIMER_HZ) & 0xFF_FFFF) as u32
    }

    fn read_byte(&self, off: u16) -> u8 {
        let word = |v: u16| (v >> (8 * (off & 1))) as u8;
        match off {
            0 | 1 => word(self.state.status),
            2 | 3 => word(self.state.enable),
            4 | 5 => word(self.state.control),
            8..=11 => (self.timer() >> (8 * (off - 8))) as u8,
            _ => 0xFF,
        }
    }

    fn write_byte(&mut self, off: u16, v: u8) {
        let shift = 8 * (off & 1);
        let set = |reg: &mut u16| *reg = (*reg & !(0xFF << shift)) | (u16::from(v) << shift);
        match off {
            // Status bits are cleared by writing ones.
            0 | 1 => self.state.status &= !(u16::from(v) << shift),
            2 | 3 => set(&mut self.state.enable),
            4 | 5 => {
                set(&mut self.state.control);
                let c = self.state.control;
                if c & (1 << 13) != 0 {
                    // SLP_EN is write-only: it reads back as 0.
                    self.state.control &= !(1 << 13);
                    self.state.sleep_request = Some(((c >> 10) & 7) as u8);
                }
            }
            _ => {}
        }
    }
}

impl crate::bus::Device for AcpiPm {
    fn pio_read(&mut self, _base: u16, off: u16, size: u8) -> u32 {
        (0..u16::from(size)).fold(0, |v, k| v | u32::from(self.read_byte(off + k)) << (8 * k))
    }
    fn pio_write(&mut self, _base: u16, off: u16, size: u8, value: u32) {
        // A 16-bit write to PM1a_CNT must apply both bytes before SLP_EN acts.
        if off == 4 && size >= 2 {
            self.state.control = (value as u16) & !(1 << 13);
            if value & (1 << 13) != 0 {
                self.state.sleep_request = Some(((value >> 10) & 7) as u8);
            }
        } else {
            for k in 0..u16::from(size) {
                self.write_byte(off + k, (value >> (8 * k)) as u8);
            }
        }
        if self.system.is_some() && self.take_poweroff_request() {
            if let Some(s) = &self.system {
                s.power_off();
            }
        }
    }
    fn reset(&mut self) {
        self.state = AcpiPmState::default();
    }
    fn name(&self) -> &str {
        "acpi-pm"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Device;

    #[test]
    fn s5_request_is_seen_once() {
        let mut pm = AcpiPm::new(TimeSource::new(), 0);
        pm.pio_write(0xB000, 4, 2, 1); // SCI_EN
        assert!(!pm.take_poweroff_request());
        // SLP_TYP 0 (our S5) with SLP_EN.
        pm.pio_write(0xB000, 4, 2, 1 | (1 << 13));
        assert!(pm.take_poweroff_request());
        assert!(!pm.take_poweroff_request());
        assert_eq!(pm.pio_read(0xB000, 4, 2) & (1 << 13), 0);
    }

    #[test]
    fn pm_timer_runs_at_3_58_mhz() {
        let t = TimeSource::new();
        let pm = &mut AcpiPm::new(t.clone(), 0);
        let a = pm.pio_read(0xB000, 8, 4);
        t.set(1_000_000_000);
        let b = pm.pio_read(0xB000, 8, 4);
        assert_eq!(
            (b.wrapping_sub(a)) & 0xFF_FFFF,
            (PM_TIMER_HZ & 0xFF_FFFF) as u32
        );
    }

    #[test]
    fn status_bits_clear_on_write_one() {
        let mut pm = AcpiPm::new(TimeSource::new(), 0);
        pm.state.status = 0x0101;
        pm.pio_write(0xB000, 0, 2, 0x0001);
        assert_eq!(pm.pio_read(0xB000, 0, 2), 0x0100);
    }
}
