//! The machine's clock: where devices' time comes from.
//!
//! Under [`ClockMode::Virtual`] time advances one nanosecond per retired
//! instruction (a 1 GHz guest clock that also drives the TSC), plus the time
//! skipped while the CPU is halted: a halted CPU jumps straight to the next
//! device deadline. So the same inputs give the same run, instruction for
//! instruction. [`ClockMode::Host`] follows the host's monotonic clock.

use std::time::Instant;

/// Where virtual time comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClockMode {
    /// One nanosecond per instruction, halted time skipped: deterministic.
    #[default]
    Virtual,
    /// The host's monotonic clock (halted time passes in real time).
    Host,
}

/// The machine's time: the instruction count the CPU last reported plus the
/// nanoseconds skipped while halted (or the host's clock).
#[derive(Clone, Debug)]
pub struct MachineClock {
    /// Where time comes from.
    pub mode: ClockMode,
    /// Instructions retired before the one running now.
    pub icount: u64,
    /// Virtual nanoseconds skipped while halted.
    pub skipped_ns: u64,
    host_start: Instant,
}

impl MachineClock {
    /// A clock at 0.
    pub fn new(mode: ClockMode) -> MachineClock {
        MachineClock {
            mode,
            icount: 0,
            skipped_ns: 0,
            host_start: Instant::now(),
        }
    }

    /// The current time in nanoseconds since power-on.
    #[inline]
    pub fn now(&self) -> u64 {
        match self.mode {
            ClockMode::Virtual => self.icount + self.skipped_ns,
            ClockMode::Host => self.host_start.elapsed().as_nanos() as u64,
        }
    }
}
