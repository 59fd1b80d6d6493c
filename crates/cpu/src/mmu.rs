//! The soft MMU: 2-level x86 paging (4 KiB pages, 4 MiB PSE pages, global
//! pages, CR0.WP, accessed/dirty bits) and a software TLB.
//!
//! The TLB is direct-mapped by linear page. An entry holds the physical page,
//! the permissions the walk granted for supervisor/user × read/write, and,
//! when the bus can give one, a host pointer to the page's RAM, so the common
//! access is one compare plus a load. Write permission is only granted once
//! the dirty bit is set, so the first write to a page always walks (and sets
//! D). With paging off, entries map identity (through the A20 mask).

use crate::fault::{vector, Fault};

/// Number of TLB entries (a power of two).
pub const TLB_SIZE: usize = 1024;

/// Permission bits of a TLB entry.
pub mod perm {
    /// Supervisor read (and fetch).
    pub const READ_SUP: u8 = 1;
    /// Supervisor write.
    pub const WRITE_SUP: u8 = 2;
    /// User read (and fetch).
    pub const READ_USER: u8 = 4;
    /// User write.
    pub const WRITE_USER: u8 = 8;
}

/// Page-table entry bits.
pub mod pte {
    /// Present.
    pub const P: u32 = 1;
    /// Writable.
    pub const RW: u32 = 2;
    /// User.
    pub const US: u32 = 4;
    /// Accessed.
    pub const A: u32 = 0x20;
    /// Dirty.
    pub const D: u32 = 0x40;
    /// Page size (PDE: 4 MiB page).
    pub const PS: u32 = 0x80;
    /// Global.
    pub const G: u32 = 0x100;
}

/// One cached translation.
#[derive(Clone, Copy, Debug)]
pub struct TlbEntry {
    /// Linear page number, or `u32::MAX` when empty.
    pub tag: u32,
    /// Physical address of the page.
    pub phys: u32,
    /// Granted permissions ([`perm`]).
    pub perm: u8,
    /// The translation survives CR3 writes (PGE).
    pub global: bool,
    /// Host pointer to the page for reads, or null.
    pub host_read: *mut u8,
    /// Host pointer to the page for writes, or null.
    pub host_write: *mut u8,
}

impl TlbEntry {
    const EMPTY: TlbEntry =
        TlbEntry { tag: u32::MAX, phys: 0, perm: 0, global: false, host_read: std::ptr::null_mut(), host_write: std::ptr::null_mut() };
}

/// The software TLB with its statistics.
pub struct Tlb {
    entries: Box<[TlbEntry; TLB_SIZE]>,
    /// Lookups that hit.
    pub hits: u64,
    /// Lookups that missed and walked (or mapped identity).
    pub misses: u64,
    /// Full or non-global flushes.
    pub flushes: u64,
}

impl Default for Tlb {
    fn default() -> Self {
        Self::new()
    }
}

impl Tlb {
    /// An empty TLB.
    pub fn new() -> Tlb {
        Tlb { entries: Box::new([TlbEntry::EMPTY; TLB_SIZE]), hits: 0, misses: 0, flushes: 0 }
    }

    /// The slot for a linear address.
    #[inline]
    pub fn slot(linear: u32) -> usize {
        (linear >> 12) as usize & (TLB_SIZE - 1)
    }

    /// The entry for `linear` if it holds that page with permission `need`.
    #[inline]
    pub fn lookup(&mut self, linear: u32, need: u8) -> Option<TlbEntry> {
        let e = self.entries[Self::slot(linear)];
        if e.tag == linear >> 12 && e.perm & need != 0 {
            self.hits += 1;
            Some(e)
        } else {
            self.misses += 1;
            None
        }
    }

    /// Installs an entry.
    #[inline]
    pub fn insert(&mut self, e: TlbEntry) {
        self.entries[Self::slot(e.tag << 12)] = e;
    }

    /// Drops every entry (`keep_global`: except global ones).
    pub fn flush(&mut self, keep_global: bool) {
        self.flushes += 1;
        for e in self.entries.iter_mut() {
            if !(keep_global && e.global) {
                *e = TlbEntry::EMPTY;
            }
        }
    }

    /// Drops the entry for one linear page (INVLPG).
    pub fn flush_page(&mut self, linear: u32) {
        let e = &mut self.entries[Self::slot(linear)];
        if e.tag == linear >> 12 {
            *e = TlbEntry::EMPTY;
        }
    }

    /// Forgets every cached host write pointer (a page gained a tracking flag).
    pub fn drop_write_pointers(&mut self) {
        for e in self.entries.iter_mut() {
            e.host_write = std::ptr::null_mut();
        }
    }
}

/// What a successful walk found.
#[derive(Clone, Copy, Debug)]
pub struct Walk {
    /// Physical page address.
    pub phys: u32,
    /// Permissions to cache.
    pub perm: u8,
    /// Global translation.
    pub global: bool,
}

/// A page fault's error code bits.
pub mod pf {
    /// The page was present (protection violation).
    pub const P: u32 = 1;
    /// The access was a write.
    pub const W: u32 = 2;
    /// The access came from user mode.
    pub const U: u32 = 4;
    /// A reserved bit was set in a paging entry.
    pub const RSVD: u32 = 8;
}

/// Builds the #PF fault for `code`.
pub fn page_fault(code: u32) -> Fault {
    Fault::with_error(vector::PF, code)
}
