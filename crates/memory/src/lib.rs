//! Guest physical memory.
//!
//! [`GuestRam`] is an anonymous `memmap2` mapping addressed through a raw
//! base pointer that no Rust reference owns, so the CPU's software TLB may
//! cache host pointers into it (see [`GuestRam::page_ptr`]). Each 4 KiB page
//! carries flags: *code* (decoded instructions came from it) and *page table*
//! (the page walker read a directory or table from it). Writes to flagged
//! pages must take the slow path, which is how decoded code and cached
//! translations stay coherent with guest writes.
//!
//! [`VideoRam`] is a display adapter's memory, which the CPU reaches through
//! a linear framebuffer with the same kind of host pointers; its pages carry
//! the renderer's dirty bit, kept as QEMU's `TLB_NOTDIRTY` keeps it (see
//! the `vram` module).

mod ram;
mod vram;

pub use ram::{GuestRam, PageFlags, RamError};
pub use vram::{DirtyPages, VideoRam, VramError, VRAM_PAGE};
