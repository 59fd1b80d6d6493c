//! morph86's PC devices.
//!
//! Devices never see the CPU: they are reached through the [`IoBus`] (port
//! I/O, and later memory-mapped I/O) and report interrupts as state that the
//! machine polls (for example [`Uart16550::irq_pending`]). Device state is
//! plain serde-serializable data so that snapshots come nearly free.

pub mod acpi_pm;
pub mod apic;
pub mod bus;
pub mod clock;
pub mod debugcon;
pub mod exit;
pub mod i8042;
pub mod ioapic;
pub mod output;
pub mod pci;
pub mod pic;
pub mod pit;
pub mod post;
pub mod rtc;
pub mod sysctl;
pub mod uart;

pub use acpi_pm::AcpiPm;
pub use apic::{LintAction, LocalApic, LocalApicState};
pub use bus::{DeviceId, IoBus, MmioDevice, PioDevice};
pub use clock::{Nanos, TimeSource, Timed};
pub use debugcon::DebugCon;
pub use exit::DebugExit;
pub use i8042::{I8042Port, SharedI8042, I8042};
pub use ioapic::{Delivery, DeliveryMode, IoApic, IoApicState};
pub use output::{OutputSink, SharedBuffer, SharedWriter};
pub use pci::{Bdf, PciHost};
pub use pic::{Pic8259, Pic8259Pair, PicPorts, SharedPic};
pub use pit::{Pit8254, PitPorts, PitState, SharedPit, SystemControlB};
pub use post::PostPort;
pub use rtc::{Rtc146818, RtcDateTime, RtcStart};
pub use sysctl::{ResetControl, SystemControlA};
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
