//! QEMU-compatible `isa-debug-exit`: a write of `v` ends the emulation with
//! exit status `(v << 1) | 1`, so a guest can never report 0 by accident.
//!
//! The device records the request and signals it on the system wires; the
//! machine then stops at that instruction boundary.

use crate::lines::SystemLink;
use serde::{Deserialize, Serialize};

/// The default port (QEMU's `iobase=0xf4`).
pub const EXIT_PORT: u16 = 0xF4;

/// The exit device.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DebugExit {
    status: Option<u32>,
    #[serde(skip)]
    system: Option<SystemLink>,
}

impl DebugExit {
    /// A device with no exit requested.
    pub fn new() -> DebugExit {
        DebugExit::default()
    }
    /// The requested exit status, once the guest has written the port.
    pub fn status(&self) -> Option<u32> {
        self.status
    }
    /// Forgets a request (after a reset).
    pub fn clear(&mut self) {
        self.status = None;
    }
    /// Signals requests on `system`.
    pub fn connect(&mut self, system: SystemLink) {
        self.system = Some(system);
    }
}

impl crate::bus::Device for DebugExit {
    fn pio_write(&mut self, _base: u16, _off: u16, size: u8, value: u32) {
        let v = value & crate::all_ones(size);
        // The first request wins; a guest cannot overwrite its own verdict.
        if self.status.is_none() {
            let status = v.wrapping_shl(1) | 1;
            self.status = Some(status);
            if let Some(s) = &self.system {
                s.exit(status);
            }
        }
    }
    fn reset(&mut self) {
        self.clear();
    }
    fn name(&self) -> &str {
        "isa-debug-exit"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Device;

    #[test]
    fn status_is_value_shifted_with_low_bit() {
        let mut d = DebugExit::new();
        assert_eq!(d.status(), None);
        d.pio_write(0xF4, 0, 1, 0x10);
        assert_eq!(d.status(), Some(33));
        d.pio_write(0xF4, 0, 1, 0x11);
        assert_eq!(d.status(), Some(33), "first request wins");
        d.clear();
        d.pio_write(0xF4, 0, 4, 0);
        assert_eq!(d.status(), Some(1));
        d.clear();
        d.pio_write(0xF4, 0, 1, 0x1FF);
        assert_eq!(d.status(), Some(0x1FF), "byte access takes the low byte");
    }
}
