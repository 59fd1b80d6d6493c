//! The morph86 PC board: a CPU, RAM and devices wired together, a run loop
//! with its stop conditions, and loaders (Multiboot v1 for now).
//!
//! The CPU sees only [`Board`] through the `morph86_cpu::Bus` trait; devices
//! see only the I/O bus. [`Machine`] owns both and decides when to stop.

pub mod bios;
pub mod board;
pub mod chipset;
pub mod clock;
pub mod event_log;
pub mod firmware;
pub mod host;
pub mod linux;
pub mod machine;
pub mod multiboot;
pub mod storage;
pub mod upper_memory;
pub mod video;

pub use board::Board;
pub use event_log::EventLog;
pub use firmware::{acpi, mptable, smbios};
pub use host::{HostInput, HostLink};
pub use machine::{
    ClockMode, EngineKind, Machine, MachineConfig, MachineError, RunExit, RunLimits, VgaModel,
    EXIT_PORT, STATUS_TIMEOUT,
};
pub use multiboot::{BootInfo, Module, MultibootError};
pub use storage::Drives;
pub use video::Video;
