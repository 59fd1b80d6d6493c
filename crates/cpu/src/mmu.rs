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

/// Number of TLB entries (a power of two). 4096 entries cover 16 MiB, so a
/// Linux guest's user pages (near 0x08048000 and below 0xC0000000) and its
/// kernel (from 0xC1000000) rarely collide: on a two-process pipe, 1024
/// entries gave 26 conflict refills per context switch, 4096 give 1.
pub const TLB_SIZE: usize = 4096;

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

/// A fast-path tag that never matches: the access takes the slow path. A
/// masked address (`lin & (!0xFFF | (size - 1))`, size at most 8) never
/// has bit 11 set, and a page address never has any of bits 0-11.
pub const TAG_SLOW: u32 = 0x800;

/// One cached translation, laid out for an inline check in generated code.
///
/// The fast path of an access of `size` bytes at linear `lin` by privilege
/// `p` (0 supervisor, 1 user; known when a block is translated) is: index
/// [`Tlb::slot`]`(lin)`, compare `lin & (!0xFFF | (size - 1))` with
/// `read_tag[p]` (or `write_tag[p]`) — one compare that also rejects
/// misaligned accesses, which may cross a page — and on a match access host
/// address `addend + lin`. A tag holds the linear page address only when
/// the walk granted that access and the page is plain RAM the host can
/// reach for it (for writes: RAM with no code and no page tables in it);
/// otherwise it is [`TAG_SLOW`], and the access goes to the slow path,
/// which handles misses, MMIO, tracked pages and faults.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct TlbEntry {
    /// Fast-path read (and fetch) tags: supervisor, user.
    pub read_tag: [u32; 2],
    /// Fast-path write tags: supervisor, user.
    pub write_tag: [u32; 2],
    /// Host address of the page minus its linear address (wrapping).
    pub addend: usize,
    /// The linear page number (bits 0-19), the granted permissions
    /// ([`perm`], bits 20-23) and PGE's global bit (bit 24), packed so that
    /// an entry is 32 bytes and generated code finds slot `n` at `n << 5`.
    /// An entry that grants nothing is empty.
    key: u32,
    /// Physical address of the page.
    pub phys: u32,
}

/// [`TlbEntry::key`]'s global bit.
const KEY_GLOBAL: u32 = 1 << 24;

/// Byte offsets of [`TlbEntry`]'s fields, for generated code.
pub mod entry_offsets {
    use super::TlbEntry;
    use core::mem::offset_of;
    /// `read_tag[0]` (supervisor); the user tag follows 4 bytes later.
    pub const READ_TAG: usize = offset_of!(TlbEntry, read_tag);
    /// `write_tag[0]` (supervisor); the user tag follows 4 bytes later.
    pub const WRITE_TAG: usize = offset_of!(TlbEntry, write_tag);
    /// `addend`.
    pub const ADDEND: usize = offset_of!(TlbEntry, addend);
    /// `phys`.
    pub const PHYS: usize = offset_of!(TlbEntry, phys);
    /// The entry's size: slot `n` is at `n * SIZE`.
    pub const SIZE: usize = core::mem::size_of::<TlbEntry>();
    const _: () = assert!(SIZE == 32, "slots are found by a shift");
}

impl TlbEntry {
    const EMPTY: TlbEntry = TlbEntry {
        read_tag: [TAG_SLOW; 2],
        write_tag: [TAG_SLOW; 2],
        addend: 0,
        key: 0,
        phys: 0,
    };

    /// An entry for linear page `lin_page` (an address) mapped to `phys`
    /// with permissions `perm`, and host pointers to the page for reads and
    /// for writes where the bus gave them.
    pub fn new(
        lin_page: u32,
        phys: u32,
        perm: u8,
        global: bool,
        host_read: Option<*mut u8>,
        host_write: Option<*mut u8>,
    ) -> TlbEntry {
        let base = lin_page & !0xFFF;
        let host = host_read.or(host_write);
        let tag = |allowed: bool, host: Option<*mut u8>| {
            if allowed && host.is_some() {
                base
            } else {
                TAG_SLOW
            }
        };
        TlbEntry {
            read_tag: [
                tag(perm & perm::READ_SUP != 0, host_read),
                tag(perm & perm::READ_USER != 0, host_read),
            ],
            write_tag: [
                tag(perm & perm::WRITE_SUP != 0, host_write),
                tag(perm & perm::WRITE_USER != 0, host_write),
            ],
            addend: host.map_or(0, |p| (p as usize).wrapping_sub(base as usize)),
            key: lin_page >> 12 | u32::from(perm & 0xF) << 20 | if global { KEY_GLOBAL } else { 0 },
            phys,
        }
    }

    /// The granted permissions ([`perm`]); none when the entry is empty.
    #[inline]
    pub fn perm(&self) -> u8 {
        (self.key >> 20) as u8 & 0xF
    }

    /// Whether the translation survives CR3 writes (PGE).
    #[inline]
    pub fn global(&self) -> bool {
        self.key & KEY_GLOBAL != 0
    }

    /// Whether the entry holds a translation of `linear`'s page.
    #[inline]
    pub fn holds(&self, linear: u32) -> bool {
        self.is_page(linear) && self.perm() != 0
    }

    /// Whether the entry's page number is `linear`'s (an empty entry's is
    /// page 0: see [`TlbEntry::holds`]).
    #[inline]
    fn is_page(&self, linear: u32) -> bool {
        self.key & 0xF_FFFF == linear >> 12
    }

    /// Whether the entry holds no translation.
    #[inline]
    fn is_empty(&self) -> bool {
        self.perm() == 0
    }

    /// The linear address of the page the entry holds (the permission and
    /// global bits shift out).
    #[inline]
    fn linear_page(&self) -> u32 {
        self.key << 12
    }

    /// The host address of `lin` for a `write` (or read) at privilege
    /// `user`, if the fast path allows it (the caller keeps the access
    /// inside the page).
    #[inline]
    pub fn host(&self, lin: u32, write: bool, user: bool) -> Option<*mut u8> {
        let tags = if write {
            &self.write_tag
        } else {
            &self.read_tag
        };
        (tags[usize::from(user)] == lin & !0xFFF)
            .then(|| self.addend.wrapping_add(lin as usize) as *mut u8)
    }
}

/// One address space's cached translations.
struct Space {
    /// CR3 the entries belong to (`u32::MAX`: free).
    cr3: u32,
    entries: Box<[TlbEntry; TLB_SIZE]>,
    /// Physical pages of the directories and tables its entries came from.
    tables: std::collections::HashSet<u32>,
    /// A table of this space was written while it was active: its entries may
    /// be stale, so it is not kept when the guest switches away.
    stale: bool,
    /// Last use, for replacement.
    used: u64,
    /// A filter of the physical pages its entries may write directly: bit
    /// `page % 256` set when an entry of such a page gained a write tag
    /// (cleared only with the whole space), so that revoking a page's
    /// write pointers skips the spaces that cannot hold any.
    writers: [u64; 4],
}

impl Space {
    fn new() -> Space {
        Space {
            cr3: u32::MAX,
            entries: Box::new([TlbEntry::EMPTY; TLB_SIZE]),
            tables: Default::default(),
            stale: false,
            used: 0,
            writers: [0; 4],
        }
    }

    /// Notes that an entry of physical page `page` may write directly.
    fn note_writer(&mut self, page: u32) {
        self.writers[(page as usize >> 6) & 3] |= 1 << (page & 63);
    }

    /// Whether an entry of physical page `page` may write directly.
    fn may_write(&self, page: u32) -> bool {
        self.writers[(page as usize >> 6) & 3] & 1 << (page & 63) != 0
    }

    fn clear(&mut self, keep_global: bool) {
        for e in self.entries.iter_mut() {
            if !(keep_global && e.global()) {
                *e = TlbEntry::EMPTY;
            }
        }
        if !keep_global {
            self.tables.clear();
            self.writers = [0; 4];
        }
        self.stale = false;
    }
}

/// The software TLB with its statistics.
///
/// It keeps the translations of the few most recent address spaces, keyed by
/// CR3 (shadow page tables, VMware style): switching back to a recent CR3
/// reuses its entries instead of walking again. They stay coherent because
/// every directory and table page a walk reads is marked in guest RAM;
/// writes to those pages are reported ([`Tlb::page_tables_written`]) and
/// drop the cached spaces built from them.
pub struct Tlb {
    spaces: Vec<Space>,
    active: usize,
    clock: u64,
    /// Lookups that hit.
    pub hits: u64,
    /// Lookups that missed and walked (or mapped identity).
    pub misses: u64,
    /// Misses on an empty slot (never filled, or emptied by a flush or an
    /// address-space switch) rather than one holding another page.
    pub cold_misses: u64,
    /// Times a cached address space was dropped (or the active one marked
    /// stale) because the guest wrote to one of its page-table pages.
    pub write_drops: u64,
    /// Full or non-global flushes.
    pub flushes: u64,
    /// CR3 writes that changed the address space.
    pub switches: u64,
    /// Address-space switches that found their translations cached.
    pub reused: u64,
}

impl Default for Tlb {
    fn default() -> Self {
        Self::new()
    }
}

/// Address spaces kept by default.
pub const DEFAULT_SPACES: usize = 4;

impl Tlb {
    /// An empty TLB keeping [`DEFAULT_SPACES`] address spaces.
    pub fn new() -> Tlb {
        Self::with_spaces(DEFAULT_SPACES)
    }

    /// An empty TLB keeping `n` (at least 1) address spaces; 1 means a plain
    /// TLB that forgets everything on a CR3 write.
    pub fn with_spaces(n: usize) -> Tlb {
        Tlb {
            spaces: (0..n.max(1)).map(|_| Space::new()).collect(),
            active: 0,
            clock: 0,
            hits: 0,
            misses: 0,
            cold_misses: 0,
            write_drops: 0,
            flushes: 0,
            switches: 0,
            reused: 0,
        }
    }

    /// The active address space's entries ([`TLB_SIZE`] of them), for
    /// generated code's inline check. The pointer changes when the active
    /// space does (a CR3 switch) and stays valid while the TLB lives.
    #[inline]
    pub fn active_entries(&self) -> *const TlbEntry {
        self.spaces[self.active].entries.as_ptr()
    }

    /// The slot for a linear address.
    #[inline]
    pub fn slot(linear: u32) -> usize {
        (linear >> 12) as usize & (TLB_SIZE - 1)
    }

    /// The entry for `linear` if it holds that page with permission `need`.
    #[inline]
    pub fn lookup(&mut self, linear: u32, need: u8) -> Option<TlbEntry> {
        let e = self.spaces[self.active].entries[Self::slot(linear)];
        // A granted `need` (never 0) also tells that the entry is not empty.
        if e.is_page(linear) && e.perm() & need != 0 {
            self.hits += 1;
            Some(e)
        } else {
            self.misses += 1;
            if e.is_empty() {
                self.cold_misses += 1;
            }
            None
        }
    }

    /// Installs an entry derived from the given directory/table pages.
    #[inline]
    pub fn insert(&mut self, e: TlbEntry, tables: &[u32]) {
        let s = &mut self.spaces[self.active];
        if e.write_tag != [TAG_SLOW; 2] {
            s.note_writer(e.phys >> 12);
        }
        s.entries[Self::slot(e.linear_page())] = e;
        for &t in tables {
            s.tables.insert(t);
        }
    }

    /// Drops every entry of every space (`keep_global`: except global ones).
    pub fn flush(&mut self, keep_global: bool) {
        self.flushes += 1;
        for s in &mut self.spaces {
            s.clear(keep_global);
        }
    }

    /// A CR3 write: switch to the space of `cr3`, reusing it if cached.
    /// Global entries survive in the space being left (PGE semantics).
    pub fn switch_cr3(&mut self, old_cr3: u32, cr3: u32) {
        self.clock += 1;
        let cur = self.active;
        let key = cr3 & !0xFFF;
        if key == old_cr3 & !0xFFF {
            // Reloading the same CR3 is a flush of the non-global entries.
            self.flushes += 1;
            self.spaces[cur].clear(true);
            self.spaces[cur].cr3 = key;
            return;
        }
        self.switches += 1;
        if self.spaces[cur].stale || self.spaces.len() == 1 {
            self.spaces[cur].clear(true);
        }
        self.spaces[cur].cr3 = old_cr3 & !0xFFF;
        self.spaces[cur].used = self.clock;
        if self.spaces.len() == 1 {
            self.spaces[cur].cr3 = cr3 & !0xFFF;
            return;
        }
        if let Some(k) = (0..self.spaces.len()).find(|&k| k != cur && self.spaces[k].cr3 == key) {
            self.active = k;
            self.reused += 1;
        } else {
            let k = (0..self.spaces.len())
                .filter(|&k| k != cur)
                .min_by_key(|&k| self.spaces[k].used)
                .unwrap_or(cur);
            self.spaces[k].clear(false);
            self.spaces[k].cr3 = key;
            self.active = k;
        }
        self.spaces[self.active].used = self.clock;
    }

    /// Guest writes hit these page-table pages: forget the inactive spaces
    /// built from them, and mark the active one stale.
    pub fn page_tables_written(&mut self, pages: &[u32]) {
        let active = self.active;
        for (k, s) in self.spaces.iter_mut().enumerate() {
            if pages.iter().any(|p| s.tables.contains(p)) {
                self.write_drops += 1;
                if k == active {
                    s.stale = true;
                } else {
                    s.clear(false);
                    s.cr3 = u32::MAX;
                }
            }
        }
    }

    /// True while some cached space has translations built from physical
    /// page `page` (as a directory or a table).
    pub fn uses_table(&self, page: u32) -> bool {
        self.spaces.iter().any(|s| s.tables.contains(&page))
    }

    /// Revokes the write pointers of every entry that maps physical page
    /// `page` (it gained a tracking flag: writes to it must take the slow
    /// path). Scans every entry of every space: pages gain flags rarely.
    pub fn revoke_write(&mut self, page: u32) {
        for s in self.spaces.iter_mut().filter(|s| s.may_write(page)) {
            for e in s.entries.iter_mut() {
                if e.phys >> 12 == page && !e.is_empty() {
                    e.write_tag = [TAG_SLOW; 2];
                }
            }
        }
    }

    /// [`Tlb::revoke_write`] for many pages in one scan of the entries (the
    /// renderer hands back a whole framebuffer's worth at once). Sorts
    /// `pages`.
    pub fn revoke_writes(&mut self, pages: &mut [u32]) {
        match pages {
            [] => {}
            [one] => self.revoke_write(*one),
            _ => {
                pages.sort_unstable();
                for s in &mut self.spaces {
                    if !pages.iter().any(|&p| s.may_write(p)) {
                        continue;
                    }
                    for e in s.entries.iter_mut() {
                        if !e.is_empty()
                            && e.write_tag != [TAG_SLOW; 2]
                            && pages.binary_search(&(e.phys >> 12)).is_ok()
                        {
                            e.write_tag = [TAG_SLOW; 2];
                        }
                    }
                }
            }
        }
    }

    /// The write to `linear` just took the slow path, and the bus now hands
    /// out `host` as a write pointer to its page (a video page the write
    /// made dirty, a code page the write made plain): the active space's
    /// entry for `linear` takes later writes directly, at the privileges
    /// its permissions allow, as QEMU's TLB does once a page is dirty.
    pub fn grant_write(&mut self, linear: u32, host: *mut u8) {
        let s = &mut self.spaces[self.active];
        let e = &mut s.entries[Self::slot(linear)];
        if !e.holds(linear) {
            return;
        }
        let base = linear & !0xFFF;
        // The read pointer, if any, is the same page: one addend serves both.
        e.addend = (host as usize).wrapping_sub(base as usize);
        if e.perm() & perm::WRITE_SUP != 0 {
            e.write_tag[0] = base;
        }
        if e.perm() & perm::WRITE_USER != 0 {
            e.write_tag[1] = base;
        }
        let page = e.phys >> 12;
        s.note_writer(page);
    }

    /// The active space's entry for `linear`, if it holds that page.
    #[inline]
    pub fn entry(&self, linear: u32) -> Option<TlbEntry> {
        let e = self.spaces[self.active].entries[Self::slot(linear)];
        e.holds(linear).then_some(e)
    }

    /// Drops the entry for one linear page in every space (INVLPG).
    pub fn flush_page(&mut self, linear: u32) {
        for s in &mut self.spaces {
            let e = &mut s.entries[Self::slot(linear)];
            if e.holds(linear) {
                *e = TlbEntry::EMPTY;
            }
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
    /// Physical pages of the directory and table read (`u32::MAX`: none).
    pub tables: [u32; 2],
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The inline check as generated code does it: one masked compare.
    fn fast(e: &TlbEntry, lin: u32, size: u32, write: bool, user: bool) -> Option<usize> {
        let tags = if write { e.write_tag } else { e.read_tag };
        (lin & (!0xFFF | (size - 1)) == tags[usize::from(user)])
            .then(|| e.addend.wrapping_add(lin as usize))
    }

    #[test]
    fn tags_fold_in_permissions_alignment_and_host_reach() {
        let mut page = vec![0u8; 4096];
        let host = page.as_mut_ptr();
        // Supervisor read/write, user read only.
        let p = perm::READ_SUP | perm::WRITE_SUP | perm::READ_USER;
        let e = TlbEntry::new(0xC000_1234, 0x5000, p, false, Some(host), Some(host));
        assert_eq!(
            fast(&e, 0xC000_1010, 4, false, true),
            Some(host as usize + 0x10)
        );
        assert_eq!(
            fast(&e, 0xC000_1010, 4, true, false),
            Some(host as usize + 0x10)
        );
        assert_eq!(
            fast(&e, 0xC000_1010, 4, true, true),
            None,
            "user may not write"
        );
        assert_eq!(
            fast(&e, 0xC000_1011, 4, false, false),
            None,
            "misaligned: slow path"
        );
        assert_eq!(
            fast(&e, 0xC000_1FFF, 1, false, false),
            Some(host as usize + 0xFFF)
        );
        assert_eq!(fast(&e, 0xC000_2000, 1, false, false), None, "another page");
        // A tracked page (no write pointer) and MMIO (no pointer at all).
        let code = TlbEntry::new(0x1000, 0x1000, 0xF, false, Some(host), None);
        assert!(code.host(0x1004, false, false).is_some());
        assert!(code.host(0x1004, true, false).is_none());
        let mmio = TlbEntry::new(0xFEE0_0000, 0xFEE0_0000, 0xF, false, None, None);
        assert!(mmio.host(0xFEE0_0030, false, false).is_none());
        assert_eq!(TlbEntry::EMPTY.read_tag, [TAG_SLOW; 2]);
        // No masked address of any size matches the slow tag (page 0 too).
        for lin in [0u32, 1, 2, 3, 0x291, 0x7FF, 0x800, 0xFFF] {
            for size in [1u32, 2, 4, 8] {
                assert!(fast(&TlbEntry::EMPTY, lin, size, false, false).is_none());
                assert!(fast(&mmio, lin, size, true, true).is_none());
            }
        }
        assert_eq!(entry_offsets::WRITE_TAG - entry_offsets::READ_TAG, 8);
    }

    #[test]
    fn an_entry_packs_its_page_permissions_and_global_bit() {
        assert_eq!(core::mem::size_of::<TlbEntry>(), 32);
        let e = TlbEntry::new(0xFFFF_F000, 0x1000, perm::READ_SUP, true, None, None);
        assert!(e.holds(0xFFFF_FABC) && !e.holds(0xFFFF_E000) && !e.holds(0x000F_F000));
        assert_eq!(
            (e.perm(), e.global(), e.phys),
            (perm::READ_SUP, true, 0x1000)
        );
        let f = TlbEntry::new(0, 0x2000, 0xF, false, None, None);
        assert!(f.holds(0xFFF) && !f.global() && f.perm() == 0xF);
        // The empty entry holds no page, not even page 0.
        assert!(!TlbEntry::EMPTY.holds(0) && TlbEntry::EMPTY.is_empty());
        let mut tlb = Tlb::new();
        tlb.insert(e, &[]);
        assert!(tlb.lookup(0xFFFF_F000, perm::READ_SUP).is_some());
        assert!(tlb.lookup(0xFFFF_F000, perm::WRITE_SUP).is_none());
        assert!(tlb.lookup(0x0000_0000, perm::READ_SUP).is_none());
        tlb.flush(true);
        assert!(tlb.entry(0xFFFF_F000).is_some(), "global entries survive");
        tlb.flush(false);
        assert!(tlb.entry(0xFFFF_F000).is_none());
    }

    #[test]
    fn batch_revoke_and_grant() {
        let mut page = vec![0u8; 4096];
        let host = page.as_mut_ptr();
        let mut tlb = Tlb::new();
        for k in 0..8u32 {
            tlb.insert(
                TlbEntry::new(
                    k << 12,
                    0x10_0000 + (k << 12),
                    0xF,
                    false,
                    Some(host),
                    Some(host),
                ),
                &[],
            );
        }
        tlb.revoke_writes(&mut [0x105, 0x101, 0x103]);
        for k in 0..8u32 {
            let w = tlb
                .entry(k << 12)
                .unwrap()
                .host(k << 12, true, false)
                .is_some();
            assert_eq!(w, ![1, 3, 5].contains(&k), "page {k}");
        }
        // A slow-path write that made the page writable: the entry takes
        // writes again, as far as its permissions go.
        tlb.grant_write(0x1234, host);
        let e = tlb.entry(0x1000).unwrap();
        assert_eq!(e.host(0x1010, true, true), Some(host.wrapping_add(0x10)));
        let ro = perm::READ_SUP | perm::WRITE_SUP | perm::READ_USER;
        tlb.insert(
            TlbEntry::new(0x9000, 0x9000, ro, false, Some(host), None),
            &[],
        );
        tlb.grant_write(0x9000, host);
        let e = tlb.entry(0x9000).unwrap();
        assert!(e.host(0x9000, true, false).is_some());
        assert!(e.host(0x9000, true, true).is_none(), "user may not write");
        // Another page in the slot: nothing changes.
        tlb.grant_write(0x9000 + (TLB_SIZE as u32) * 4096, host);
        assert!(tlb.entry(0x9000).is_some());
    }

    #[test]
    fn revoking_a_page_keeps_its_reads() {
        let mut page = vec![0u8; 4096];
        let host = page.as_mut_ptr();
        let mut tlb = Tlb::new();
        tlb.insert(
            TlbEntry::new(0x4000, 0x9000, 0xF, false, Some(host), Some(host)),
            &[],
        );
        tlb.insert(
            TlbEntry::new(0x5000, 0xA000, 0xF, false, Some(host), Some(host)),
            &[],
        );
        tlb.revoke_write(0x9);
        let e = tlb.entry(0x4000).unwrap();
        assert!(e.host(0x4000, true, false).is_none() && e.host(0x4000, false, false).is_some());
        assert!(tlb
            .entry(0x5000)
            .unwrap()
            .host(0x5000, true, false)
            .is_some());
    }
}
