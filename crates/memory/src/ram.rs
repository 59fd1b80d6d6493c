//! Mapped guest RAM.

use memmap2::MmapMut;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

static INSTANCES: AtomicU64 = AtomicU64::new(1);

/// Per-page tracking flags.
pub struct PageFlags;

impl PageFlags {
    /// The page holds instructions that were decoded.
    pub const CODE: u8 = 1;
    /// The page holds a page directory or page table the walker read.
    pub const PAGE_TABLE: u8 = 2;
}

/// RAM could not be mapped.
#[derive(Debug)]
pub struct RamError(std::io::Error);

impl fmt::Display for RamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot map guest RAM: {}", self.0)
    }
}

impl std::error::Error for RamError {}

/// Guest RAM from physical address 0. Accesses beyond its end read as
/// all ones and ignore writes (an open bus).
pub struct GuestRam {
    /// Keeps the mapping alive; never accessed through a reference.
    _map: Option<MmapMut>,
    /// Base of the mapping (dangling when `len` is 0).
    base: *mut u8,
    len: usize,
    flags: Vec<u8>,
    flagged: usize,
    /// Page-table pages written since the last [`GuestRam::take_pt_writes`].
    pt_writes: Vec<u32>,
    /// Per page, bumped by every write that hits it while it holds code:
    /// translations and decodings of a page are valid only at the
    /// generation they were made at, so a write invalidates that page alone.
    code_gen: Vec<u32>,
    /// Pages that gained a flag since the last [`GuestRam::take_new_flags`]:
    /// write pointers to them must be revoked.
    new_flags: Vec<u32>,
    code_epoch: u64,
    /// Bumped when the whole RAM is replaced, so every cached pointer goes.
    map_epoch: u64,
}

// SAFETY: GuestRam exclusively owns its mapping; the raw pointer is only
// dereferenced through &self/&mut self methods (or by a CPU that holds the
// &mut GuestRam for the duration of a step), so moving it between threads is
// as safe as moving a Vec<u8>.
unsafe impl Send for GuestRam {}

impl fmt::Debug for GuestRam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuestRam")
            .field("len", &self.len)
            .field("code_epoch", &self.code_epoch)
            .finish()
    }
}

impl GuestRam {
    /// Maps `size` bytes of zeroed RAM.
    pub fn try_new(size: usize) -> Result<GuestRam, RamError> {
        let (map, base) = if size == 0 {
            (None, std::ptr::NonNull::<u8>::dangling().as_ptr())
        } else {
            let mut m = MmapMut::map_anon(size).map_err(RamError)?;
            let p = m.as_mut_ptr();
            (Some(m), p)
        };
        Ok(GuestRam {
            _map: map,
            base,
            len: size,
            flags: vec![0; size.div_ceil(4096)],
            flagged: 0,
            pt_writes: Vec::new(),
            code_gen: vec![0; size.div_ceil(4096)],
            new_flags: Vec::new(),
            code_epoch: 0,
            // Distinct per instance, so a TLB filled from another RAM never matches.
            map_epoch: INSTANCES.fetch_add(1, Ordering::Relaxed) << 40,
        })
    }

    /// Maps `size` bytes of zeroed RAM; panics if the host has no memory for it
    /// (tests and tools; a machine uses [`GuestRam::try_new`]).
    pub fn new(size: usize) -> GuestRam {
        match Self::try_new(size) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for zero-sized RAM.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The RAM contents.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: base..base+len is our live mapping (or a dangling pointer
        // with len 0); &self prevents concurrent mutation through this type.
        unsafe { std::slice::from_raw_parts(self.base, self.len) }
    }

    /// Mutable RAM contents. Forgets every page flag first, as if the whole
    /// RAM had been written by the guest.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.invalidate_code();
        // SAFETY: as in `bytes`, with &mut self giving exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.base, self.len) }
    }

    /// Clears all page flags and bumps the code epoch and every page's
    /// code generation.
    pub fn invalidate_code(&mut self) {
        if self.flagged > 0 {
            self.flags.iter_mut().for_each(|f| *f = 0);
            self.flagged = 0;
        }
        self.code_gen
            .iter_mut()
            .for_each(|g| *g = g.wrapping_add(1));
        self.new_flags.clear();
        self.code_epoch += 1;
        self.map_epoch += 1;
    }

    /// The code generation of physical page `page` (0 beyond RAM): it
    /// changes whenever the page is written while it holds code.
    #[inline]
    pub fn code_generation(&self, page: u32) -> u32 {
        self.code_gen.get(page as usize).copied().unwrap_or(0)
    }

    /// Where page `page`'s code generation lives (None beyond RAM), for
    /// generated code that checks it: the address stays valid, and keeps
    /// the page's current generation, for as long as this `GuestRam` lives.
    pub fn code_generation_ptr(&self, page: u32) -> Option<*const u32> {
        self.code_gen.get(page as usize).map(|g| g as *const u32)
    }

    /// Moves the pages that gained a flag since the last call into `out`:
    /// a holder of write pointers (a TLB) must revoke those to these pages.
    #[inline]
    pub fn take_new_flags(&mut self, out: &mut Vec<u32>) {
        if !self.new_flags.is_empty() {
            out.append(&mut self.new_flags);
        }
    }

    /// Counter that changes whenever a page holding decoded code is written.
    #[inline]
    pub fn code_epoch(&self) -> u64 {
        self.code_epoch
    }

    /// Counter that changes when the whole RAM is replaced (every cached
    /// pointer must be dropped). A page gaining a flag is reported by
    /// [`GuestRam::take_new_flags`] instead.
    #[inline]
    pub fn map_epoch(&self) -> u64 {
        self.map_epoch
    }

    /// Sets `flag` on the page holding `addr`.
    pub fn flag_page(&mut self, page: u32, flag: u8) {
        if let Some(f) = self.flags.get_mut(page as usize) {
            if *f & flag == 0 {
                if *f == 0 {
                    self.flagged += 1;
                }
                *f |= flag;
                self.new_flags.push(page);
            }
        }
    }

    /// Clears `flag` on a page (losing a flag revokes nothing: writes to the
    /// page simply stop being tracked for it).
    pub fn unflag_page(&mut self, page: u32, flag: u8) {
        if let Some(f) = self.flags.get_mut(page as usize) {
            if *f & flag != 0 {
                *f &= !flag;
                if *f == 0 {
                    self.flagged -= 1;
                }
            }
        }
    }

    /// Moves the page-table pages written since the last call into `out`.
    /// (Called before every instruction: the common empty case is inline.)
    #[inline]
    pub fn take_pt_writes(&mut self, out: &mut Vec<u32>) {
        if !self.pt_writes.is_empty() {
            out.append(&mut self.pt_writes);
        }
    }

    /// The flags of a page.
    #[inline]
    pub fn page_flags(&self, page: u32) -> u8 {
        self.flags.get(page as usize).copied().unwrap_or(0)
    }

    /// Host pointer to the start of physical page `page`, for a TLB. For
    /// `write`, only pages without flags qualify (writes to code and
    /// page-table pages must take the slow path).
    ///
    /// The pointer stays valid for as long as this `GuestRam` lives; a write
    /// pointer stays *usable* only until the page appears in
    /// [`GuestRam::take_new_flags`] (or [`GuestRam::map_epoch`] changes).
    #[inline]
    pub fn page_ptr(&self, page: u32, write: bool) -> Option<*mut u8> {
        let off = (page as usize) << 12;
        if off + 4096 > self.len || (write && self.flags[page as usize] != 0) {
            return None;
        }
        // SAFETY: off + 4096 <= len, so the result stays inside the mapping.
        Some(unsafe { self.base.add(off) })
    }

    /// A guest write touched `addr..addr+len`: clears flags and bumps the code
    /// epoch if it hit a flagged page. Returns the flags that were hit.
    #[inline]
    fn note_write(&mut self, addr: u32, len: u32) -> u8 {
        if self.flagged == 0 {
            return 0;
        }
        let first = addr >> 12;
        let last = addr.wrapping_add(len - 1) >> 12;
        let mut hit = 0;
        for page in if first == last {
            first..=first
        } else {
            first..=last
        } {
            if let Some(f) = self.flags.get_mut(page as usize) {
                if *f != 0 {
                    hit |= *f;
                    if *f & PageFlags::PAGE_TABLE != 0 {
                        // Page-table marks are sticky; the write is reported.
                        if self.pt_writes.last() != Some(&page) {
                            self.pt_writes.push(page);
                        }
                    }
                    // Code marks are dropped: the page is decoded afresh later.
                    if *f & PageFlags::CODE != 0 {
                        self.code_gen[page as usize] = self.code_gen[page as usize].wrapping_add(1);
                    }
                    *f &= !PageFlags::CODE;
                    if *f == 0 {
                        self.flagged -= 1;
                    }
                }
            }
        }
        if hit & PageFlags::CODE != 0 {
            self.code_epoch += 1;
        }
        hit
    }

    /// Reads `N` bytes at `addr` if they are all inside RAM.
    #[inline]
    fn get<const N: usize>(&self, addr: u32) -> Option<[u8; N]> {
        let a = addr as usize;
        if a.checked_add(N)? <= self.len {
            let mut out = [0u8; N];
            // SAFETY: a..a+N lies inside the mapping (checked above).
            unsafe { std::ptr::copy_nonoverlapping(self.base.add(a), out.as_mut_ptr(), N) };
            Some(out)
        } else {
            None
        }
    }

    #[inline]
    fn put<const N: usize>(&mut self, addr: u32, v: [u8; N]) -> bool {
        let a = addr as usize;
        match a.checked_add(N) {
            Some(end) if end <= self.len => {
                // SAFETY: a..a+N lies inside the mapping (checked above).
                unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), self.base.add(a), N) };
                true
            }
            _ => false,
        }
    }

    /// Reads a byte (0xFF beyond RAM).
    #[inline]
    pub fn read_u8(&self, addr: u32) -> u8 {
        self.get::<1>(addr).map_or(0xFF, |b| b[0])
    }

    /// Reads a little-endian word.
    #[inline]
    pub fn read_u16(&self, addr: u32) -> u16 {
        match self.get::<2>(addr) {
            Some(b) => u16::from_le_bytes(b),
            None => {
                u16::from(self.read_u8(addr)) | u16::from(self.read_u8(addr.wrapping_add(1))) << 8
            }
        }
    }

    /// Reads a little-endian dword.
    #[inline]
    pub fn read_u32(&self, addr: u32) -> u32 {
        match self.get::<4>(addr) {
            Some(b) => u32::from_le_bytes(b),
            None => {
                u32::from(self.read_u16(addr))
                    | u32::from(self.read_u16(addr.wrapping_add(2))) << 16
            }
        }
    }

    /// True when `addr..addr + len` lies inside RAM (and `len` > 0).
    fn covers(&self, addr: u64, len: usize) -> bool {
        len > 0
            && usize::try_from(addr)
                .ok()
                .and_then(|a| a.checked_add(len))
                .is_some_and(|end| end <= self.len)
    }

    /// Copies `buf.len()` bytes at `addr` into `buf` (a device's DMA read).
    /// False, with `buf` untouched, unless every byte is inside RAM.
    pub fn read_bytes(&self, addr: u64, buf: &mut [u8]) -> bool {
        if buf.is_empty() {
            return true;
        }
        if !self.covers(addr, buf.len()) {
            return false;
        }
        let a = addr as usize;
        buf.copy_from_slice(&self.bytes()[a..a + buf.len()]);
        true
    }

    /// Writes `data` at `addr` through the same tracking as the CPU's
    /// writes (a device's DMA): a code page written bumps the code epoch and
    /// loses its mark, a page-table page written is reported by
    /// [`GuestRam::take_pt_writes`]. Returns the flags the write hit, or
    /// `None`, writing nothing, unless every byte is inside RAM.
    pub fn write_bytes(&mut self, addr: u64, data: &[u8]) -> Option<u8> {
        if data.is_empty() {
            return Some(0);
        }
        let hit = self.note_bulk_write(addr, data.len())?;
        let a = addr as usize;
        // SAFETY: a..a+len lies inside the mapping (note_bulk_write checked).
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.base.add(a), data.len()) };
        Some(hit)
    }

    /// Sets `len` bytes at `addr` to `byte`, tracked as
    /// [`GuestRam::write_bytes`] is. `None`, writing nothing, unless every
    /// byte is inside RAM.
    pub fn fill_bytes(&mut self, addr: u64, len: usize, byte: u8) -> Option<u8> {
        if len == 0 {
            return Some(0);
        }
        let hit = self.note_bulk_write(addr, len)?;
        // SAFETY: as in `write_bytes`.
        unsafe { std::ptr::write_bytes(self.base.add(addr as usize), byte, len) };
        Some(hit)
    }

    /// [`GuestRam::note_write`] for a bulk write: `None` unless the range
    /// lies inside RAM and below 4 GiB (the addresses the page flags cover).
    fn note_bulk_write(&mut self, addr: u64, len: usize) -> Option<u8> {
        let end = addr.checked_add(len as u64)?;
        if !self.covers(addr, len) || end > 1 << 32 {
            return None;
        }
        let mut hit = 0;
        let mut at = addr;
        while at < end {
            // note_write takes a 32-bit length: pieces of at most 1 GiB.
            let piece = (end - at).min(1 << 30);
            hit |= self.note_write(at as u32, piece as u32);
            at += piece;
        }
        Some(hit)
    }

    /// Writes a byte; returns the page flags the write hit.
    #[inline]
    pub fn write_u8(&mut self, addr: u32, v: u8) -> u8 {
        let hit = self.note_write(addr, 1);
        self.put(addr, [v]);
        hit
    }

    /// Writes a little-endian word; returns the page flags the write hit.
    #[inline]
    pub fn write_u16(&mut self, addr: u32, v: u16) -> u8 {
        let hit = self.note_write(addr, 2);
        if !self.put(addr, v.to_le_bytes()) {
            self.put(addr, [v as u8]);
            self.put(addr.wrapping_add(1), [(v >> 8) as u8]);
        }
        hit
    }

    /// Writes a little-endian dword; returns the page flags the write hit.
    #[inline]
    pub fn write_u32(&mut self, addr: u32, v: u32) -> u8 {
        let hit = self.note_write(addr, 4);
        if !self.put(addr, v.to_le_bytes()) {
            for k in 0..4 {
                self.put(addr.wrapping_add(k), [(v >> (8 * k)) as u8]);
            }
        }
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_writes_and_open_bus() {
        let mut r = GuestRam::new(0x2000);
        r.write_u32(0x10, 0x1122_3344);
        assert_eq!(r.read_u16(0x12), 0x1122);
        assert_eq!(r.read_u32(0x1FFE), 0xFFFF_0000);
        r.write_u32(0x1FFE, 0xAABB_CCDD);
        assert_eq!(r.read_u16(0x1FFE), 0xCCDD);
        assert_eq!(r.bytes()[0x10], 0x44);
    }

    #[test]
    fn flagged_pages_refuse_write_pointers_and_bump_generations() {
        let mut r = GuestRam::new(0x3000);
        assert!(r.page_ptr(1, true).is_some());
        let (c0, m0) = (r.code_epoch(), r.map_epoch());
        let (g0, g2) = (r.code_generation(0), r.code_generation(2));
        r.flag_page(1, PageFlags::CODE);
        assert!(r.page_ptr(1, true).is_none());
        assert!(r.page_ptr(1, false).is_some());
        assert_eq!(r.map_epoch(), m0, "one page's flag is no global event");
        let mut fresh = Vec::new();
        r.take_new_flags(&mut fresh);
        assert_eq!(fresh, vec![1]);
        let g1 = r.code_generation(1);
        r.write_u8(0x0800, 1);
        assert_eq!(
            r.code_generation(1),
            g1,
            "a write elsewhere costs page 1 nothing"
        );
        assert_eq!(r.write_u8(0x1800, 1), PageFlags::CODE);
        assert_ne!(r.code_epoch(), c0);
        assert_ne!(r.code_generation(1), g1);
        assert_eq!((r.code_generation(0), r.code_generation(2)), (g0, g2));
        assert!(
            r.page_ptr(1, true).is_some(),
            "a written code page loses its mark"
        );
        assert!(r.page_ptr(3, false).is_none(), "beyond RAM");
        r.flag_page(2, PageFlags::PAGE_TABLE);
        r.write_u32(0x2FFE, 1);
        let mut w = Vec::new();
        r.take_pt_writes(&mut w);
        assert_eq!(w, vec![2]);
        assert!(r.page_ptr(2, true).is_none(), "page-table marks are sticky");
    }

    #[test]
    fn bulk_writes_are_tracked_like_the_cpus() {
        let mut r = GuestRam::new(0x4000);
        r.flag_page(2, PageFlags::CODE);
        r.flag_page(3, PageFlags::PAGE_TABLE);
        let (c0, g2) = (r.code_epoch(), r.code_generation(2));
        assert_eq!(r.write_bytes(0x1000, &[1; 0x1000]), Some(0), "plain page");
        assert_eq!((r.code_epoch(), r.code_generation(2)), (c0, g2));
        assert_eq!(r.write_bytes(0x1FFF, &[7, 8]), Some(PageFlags::CODE));
        assert_ne!(r.code_generation(2), g2, "a code page written changes");
        assert_ne!(r.code_epoch(), c0);
        assert!(r.page_ptr(2, true).is_some(), "and loses its mark");
        assert_eq!(r.fill_bytes(0x3000, 16, 0xAA), Some(PageFlags::PAGE_TABLE));
        let mut w = Vec::new();
        r.take_pt_writes(&mut w);
        assert_eq!(w, vec![3]);
        let mut buf = [0u8; 3];
        assert!(r.read_bytes(0x1FFE, &mut buf));
        assert_eq!(buf, [1, 7, 8]);
        // Ranges that leave RAM are refused whole.
        assert_eq!(r.write_bytes(0x3FFF, &[5, 5]), None);
        assert_eq!(r.fill_bytes(u64::MAX, 2, 5), None);
        assert_eq!(r.fill_bytes(0, usize::MAX, 5), None);
        assert!(!r.read_bytes(0x4000, &mut buf));
        assert_eq!(r.read_u8(0x3FFF), 0);
        assert_eq!(buf, [1, 7, 8]);
        assert_eq!(
            r.write_bytes(0x9999_9999, &[]),
            Some(0),
            "empty: nothing to do"
        );
    }

    #[test]
    fn zero_sized() {
        let r = GuestRam::new(0);
        assert!(r.is_empty());
        assert_eq!(r.read_u8(0), 0xFF);
    }
}
