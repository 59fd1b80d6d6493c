//! x87 instruction dispatch.

use super::Cpu;
use crate::bus::Bus;
use crate::decode::Decoded;
use crate::fault::{vector, Exec, Fault};

impl Cpu {
    /// Executes an x87 instruction (D8-DF), WAIT/FWAIT (9B) or FXSAVE/FXRSTOR (0F AE /0, /1).
    pub(super) fn exec_x87<B: Bus>(&mut self, _bus: &mut B, d: &Decoded) -> Exec {
        if d.opcode == 0x9B {
            return Ok(());
        }
        if self.state.cr0 & 0x4 != 0 {
            return Err(Fault::new(vector::NM));
        }
        // The x87 unit is not modelled yet: CPUID reports no FPU.
        Err(Fault::UD)
    }
}
