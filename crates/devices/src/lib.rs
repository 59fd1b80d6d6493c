//! morph86's PC devices.
//!
//! Devices never see the CPU: they are reached through the [`IoBus`] (port
//! I/O, and later memory-mapped I/O) and report interrupts as state that the
//! machine polls (for example [`Uart16550::irq_pending`]). Device state is
//! plain serde-serializable data so that snapshots come nearly free.

pub mod acpi_pm;
pub mod bus;
pub mod clock;
pub mod debugcon;
pub mod exit;
pub mod output;
pub mod post;
pub mod uart;

pub use bus::{DeviceId, IoBus, MmioDevice, PioDevice};
pub use clock::{Nanos, TimeSource, Timed};
pub use debugcon::DebugCon;
pub use exit::DebugExit;
pub use output::{OutputSink, SharedBuffer};
pub use post::PostPort;
pub use uart::{SerialBackend, Uart16550};

/// All ones of an access of `size` bytes (what an unclaimed port reads).
#[inline]
pub fn all_ones(size: u8) -> u32 {
    match size {
        1 => 0xFF,
        2 => 0xFFFF,
        _ => 0xFFFF_FFFF,
    }
}
