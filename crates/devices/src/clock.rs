//! Virtual time for devices.
//!
//! Time is derived from executed instructions, so the same inputs give the
//! same run, instruction for instruction; an option lets the machine derive
//! it from the host clock instead. The machine publishes the current time in
//! a shared [`TimeSource`] before running guest code; a device reads it when
//! it is accessed and catches up on elapsed time then, instead of being
//! ticked on every instruction (MartyPC's approach). A device whose state
//! changes on its own at a known time (a timer interrupt) reports that time
//! through [`Timed::next_deadline`], and the machine calls
//! [`Timed::advance`] when it is reached, so the CPU never polls devices.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Virtual nanoseconds since power-on.
pub type Nanos = u64;

/// Nanoseconds per second.
pub const NS_PER_SEC: Nanos = 1_000_000_000;

/// The current virtual time, shared between the machine (which sets it) and
/// the devices (which read it).
#[derive(Clone, Debug, Default)]
pub struct TimeSource(Arc<AtomicU64>);

impl TimeSource {
    /// A time source at 0.
    pub fn new() -> TimeSource {
        TimeSource::default()
    }

    /// The current virtual time.
    #[inline]
    pub fn now(&self) -> Nanos {
        self.0.load(Ordering::Relaxed)
    }

    /// Publishes the current virtual time (monotonic: earlier values are
    /// ignored). Only the machine's thread writes, so a load and a store
    /// suffice (no read-modify-write on the hot path).
    #[inline]
    pub fn set(&self, now: Nanos) {
        if now > self.0.load(Ordering::Relaxed) {
            self.0.store(now, Ordering::Relaxed);
        }
    }
}

/// A device with behaviour driven by time.
pub trait Timed {
    /// Brings the device up to `now` (raising interrupt lines that fired).
    fn advance(&mut self, now: Nanos);
    /// The next time at which the device changes state on its own, if any.
    fn next_deadline(&self) -> Option<Nanos>;
}

/// Converts `ticks` of a clock running at `hz` into nanoseconds (rounding down).
#[inline]
pub fn ticks_to_ns(ticks: u64, hz: u64) -> Nanos {
    ((u128::from(ticks) * u128::from(NS_PER_SEC)) / u128::from(hz)) as Nanos
}

/// Converts nanoseconds into whole ticks of a clock running at `hz`.
#[inline]
pub fn ns_to_ticks(ns: Nanos, hz: u64) -> u64 {
    ((u128::from(ns) * u128::from(hz)) / u128::from(NS_PER_SEC)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip_at_pit_rate() {
        let hz = 1_193_182;
        assert_eq!(ns_to_ticks(NS_PER_SEC, hz), hz);
        assert_eq!(ticks_to_ns(hz, hz), NS_PER_SEC);
        assert!(ns_to_ticks(ticks_to_ns(12345, hz), hz) <= 12345);
    }

    #[test]
    fn time_is_monotonic() {
        let t = TimeSource::new();
        t.set(10);
        t.set(5);
        assert_eq!(t.now(), 10);
    }
}
