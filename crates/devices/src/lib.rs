//! morph86's PC devices.
//!
//! Devices never see the CPU: they are reached through the [`IoBus`] (port
//! and memory-mapped windows of one [`Device`] each), and they drive their
//! own interrupt lines and the system signals through the [`lines`] they are
//! wired to. Bus masters reach guest memory through the [`dma`] seam.
//! Device state is plain serde-serializable data so that snapshots come
//! nearly free.

pub mod acpi_pm;
pub mod apic;
pub mod ata;
pub mod bus;
pub mod clock;
pub mod debugcon;
pub mod disk_image;
pub mod dma;
pub mod dma8237;
pub mod exit;
pub mod fdc;
pub mod fw_cfg;
pub mod i8042;
pub mod ioapic;
pub mod lines;
pub mod output;
pub mod pci;
pub mod pic;
pub mod pit;
pub mod post;
pub mod rtc;
pub mod sysctl;
pub mod uart;
pub mod vga;

pub use acpi_pm::AcpiPm;
pub use apic::{LintAction, LocalApic, LocalApicState};
pub use ata::AtaController;
pub use bus::{Device, DeviceId, IoBus};
pub use clock::{Nanos, TimeSource, Timed};
pub use debugcon::DebugCon;
pub use disk_image::{DiskImage, ImageError, ImageMode, ImageSpec};
pub use dma::{DmaMemory, NoDma};
pub use dma8237::{Dma8237, IsaDma};
pub use exit::DebugExit;
pub use fdc::Fdc;
pub use fw_cfg::FwCfg;
pub use i8042::{I8042Device, I8042};
pub use ioapic::{Delivery, DeliveryMode, IoApic, IoApicState};
pub use lines::{IrqLine, SystemLink, Wires};
pub use output::{OutputSink, SharedBuffer, SharedWriter};
pub use pci::{Bdf, PciHost};
pub use pic::{Pic8259, Pic8259Pair};
pub use pit::{Pit8254, PitState};
pub use post::PostPort;
pub use rtc::{Rtc146818, RtcDateTime, RtcStart};
pub use sysctl::{ResetControl, SystemControlA};
pub use uart::{SerialBackend, Uart16550};

/// All ones of a memory access of `size` bytes (1 to 8; what open bus reads).
#[inline]
pub fn all_ones64(size: u8) -> u64 {
    u64::MAX >> (64 - 8 * u32::from(size.clamp(1, 8)))
}

/// All ones of an access of `size` bytes (what an unclaimed port reads).
#[inline]
pub fn all_ones(size: u8) -> u32 {
    match size {
        1 => 0xFF,
        2 => 0xFFFF,
        _ => 0xFFFF_FFFF,
    }
}
