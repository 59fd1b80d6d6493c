//! Video memory: the display adapter's RAM, which the CPU also reaches
//! directly through a linear framebuffer.
//!
//! Like [`crate::GuestRam`] it is an anonymous mapping addressed through a
//! raw base pointer, so the CPU's TLB may hold host pointers into it. Its
//! pages carry one piece of tracking, the renderer's *dirty* bit, kept the
//! way QEMU's `TLB_NOTDIRTY` keeps it:
//!
//! * a *clean* page gets read pointers only ([`VideoRam::page_ptr`]), so the
//!   first write to it takes the slow path ([`VideoRam::write_u8`] and
//!   friends), which marks it dirty; from then on it gets write pointers too,
//!   and writes run at RAM speed;
//! * the renderer takes the dirty set ([`VideoRam::take_dirty`]), which makes
//!   those pages clean again and queues them for revocation: a holder of
//!   write pointers (the TLB) must drop them ([`VideoRam::take_revoked`])
//!   before the next guest write, or that write would go unseen.
//!
//! Invariant: a write pointer to page `p` is handed out only while `p` is
//! dirty, and every page made clean since the last
//! [`VideoRam::take_revoked`] is in the revocation list. So no write can
//! reach a clean page without marking it dirty.
//!
//! Code run from video memory (rare, but a guest may) is tracked as RAM's
//! is: a page the CPU decoded from ([`VideoRam::mark_code`]) refuses write
//! pointers, and a write to it bumps its [`VideoRam::code_generation`] and
//! makes it plain again.

use memmap2::MmapMut;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

static INSTANCES: AtomicU64 = AtomicU64::new(1);

/// Video memory could not be mapped.
#[derive(Debug)]
pub struct VramError(std::io::Error);

impl fmt::Display for VramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot map video memory: {}", self.0)
    }
}

impl std::error::Error for VramError {}

/// The pages written since the renderer last looked, one bit per 4 KiB
/// page (see [`VideoRam::take_dirty`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirtyPages {
    bits: Vec<u64>,
}

impl DirtyPages {
    /// A set of `pages` pages, all clean (or, with `all`, all dirty).
    pub fn new(pages: usize, all: bool) -> DirtyPages {
        let mut bits = vec![if all { u64::MAX } else { 0 }; pages.div_ceil(64)];
        if all && !pages.is_multiple_of(64) {
            if let Some(last) = bits.last_mut() {
                *last = (1u64 << (pages % 64)) - 1;
            }
        }
        DirtyPages { bits }
    }

    /// True when page `page` is in the set (pages beyond the end are not).
    #[inline]
    pub fn page(&self, page: usize) -> bool {
        self.bits
            .get(page / 64)
            .is_some_and(|w| w >> (page % 64) & 1 != 0)
    }

    /// True when any byte of `offset .. offset + len` lies on a page in the
    /// set.
    pub fn range(&self, offset: usize, len: usize) -> bool {
        if len == 0 {
            return false;
        }
        let last = offset.saturating_add(len - 1) >> 12;
        (offset >> 12..=last).any(|p| self.page(p))
    }

    /// True when no page is in the set.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|&w| w == 0)
    }

    /// The number of pages in the set.
    pub fn count(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    fn clear(&mut self, page: usize) {
        if let Some(w) = self.bits.get_mut(page / 64) {
            *w &= !(1u64 << (page % 64));
        }
    }

    fn set(&mut self, page: usize) -> bool {
        match self.bits.get_mut(page / 64) {
            Some(w) => {
                let bit = 1u64 << (page % 64);
                let was = *w & bit != 0;
                *w |= bit;
                !was
            }
            None => false,
        }
    }
}

/// Video memory of a fixed size (a multiple of 4 KiB), zeroed at creation.
pub struct VideoRam {
    /// Keeps the mapping alive; never accessed through a reference.
    _map: Option<MmapMut>,
    /// Base of the mapping (dangling when `len` is 0).
    base: *mut u8,
    len: usize,
    dirty: DirtyPages,
    /// Pages made clean (or marked as code) since the last
    /// [`VideoRam::take_revoked`].
    revoked: Vec<u32>,
    /// Pages holding code the CPU decoded.
    code: DirtyPages,
    /// Per page, bumped by each write that hits it while it holds code.
    code_gen: Vec<u32>,
    /// Distinct per instance, so pointers from another one never match.
    instance: u64,
}

// SAFETY: VideoRam exclusively owns its mapping, as GuestRam does; the raw
// pointer is dereferenced only through &self/&mut self methods or by a CPU
// holding the machine (and so this memory) for the duration of a step, so
// moving it between threads is as safe as moving a Vec<u8>.
unsafe impl Send for VideoRam {}

impl fmt::Debug for VideoRam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VideoRam")
            .field("len", &self.len)
            .field("dirty_pages", &self.dirty.count())
            .finish()
    }
}

/// Page size of the tracking.
pub const VRAM_PAGE: usize = 4096;

impl VideoRam {
    /// Maps `size` bytes (rounded up to whole pages) of zeroed video memory,
    /// every page dirty (nothing has been shown yet).
    pub fn try_new(size: usize) -> Result<VideoRam, VramError> {
        let size = size.div_ceil(VRAM_PAGE) * VRAM_PAGE;
        let (map, base) = if size == 0 {
            (None, std::ptr::NonNull::<u8>::dangling().as_ptr())
        } else {
            let mut m = MmapMut::map_anon(size).map_err(VramError)?;
            let p = m.as_mut_ptr();
            (Some(m), p)
        };
        Ok(VideoRam {
            _map: map,
            base,
            len: size,
            dirty: DirtyPages::new(size / VRAM_PAGE, true),
            revoked: Vec::new(),
            code: DirtyPages::new(size / VRAM_PAGE, false),
            code_gen: vec![0; size / VRAM_PAGE],
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed) << 40,
        })
    }

    /// [`VideoRam::try_new`] for tests and tools; panics without host memory.
    pub fn new(size: usize) -> VideoRam {
        match Self::try_new(size) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for zero-sized video memory.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of 4 KiB pages.
    pub fn pages(&self) -> usize {
        self.len / VRAM_PAGE
    }

    /// A number that differs between instances: a holder of pointers from
    /// one must not mistake them for another's.
    pub fn instance(&self) -> u64 {
        self.instance
    }

    /// The contents.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: base..base+len is our live mapping (or a dangling pointer
        // with len 0); &self prevents mutation through this type meanwhile.
        unsafe { std::slice::from_raw_parts(self.base, self.len) }
    }

    /// The contents, for a device's own writes, which it must report with
    /// [`VideoRam::mark_dirty`] (they are not tracked otherwise).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, with &mut self giving exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.base, self.len) }
    }

    /// Marks the pages holding `offset .. offset + len` dirty (clipped to
    /// the memory).
    pub fn mark_dirty(&mut self, offset: usize, len: usize) {
        if len == 0 || offset >= self.len {
            return;
        }
        let last = offset.saturating_add(len - 1).min(self.len - 1) / VRAM_PAGE;
        for p in offset / VRAM_PAGE..=last {
            self.dirty.set(p);
            if self.code.page(p) {
                self.code.clear(p);
                self.code_gen[p] = self.code_gen[p].wrapping_add(1);
            }
        }
    }

    /// Marks page `page` as holding decoded code: its write pointers must
    /// go (it is queued for [`VideoRam::take_revoked`]), and its next write
    /// changes its [`VideoRam::code_generation`].
    pub fn mark_code(&mut self, page: u32) {
        if (page as usize) < self.pages() && self.code.set(page as usize) {
            self.revoked.push(page);
        }
    }

    /// The code generation of page `page` (0 beyond the end): it changes
    /// whenever the page is written while it holds code.
    #[inline]
    pub fn code_generation(&self, page: u32) -> u32 {
        self.code_gen.get(page as usize).copied().unwrap_or(0)
    }

    /// Marks every page dirty (a full redraw is due).
    pub fn mark_all_dirty(&mut self) {
        self.dirty = DirtyPages::new(self.pages(), true);
    }

    /// The dirty set as it is now, without taking it.
    pub fn dirty(&self) -> &DirtyPages {
        &self.dirty
    }

    /// Takes the dirty set: every page in it becomes clean again and is
    /// queued for [`VideoRam::take_revoked`], so its next write takes the
    /// slow path and marks it dirty once more.
    pub fn take_dirty(&mut self) -> DirtyPages {
        let clean = DirtyPages::new(self.pages(), false);
        let taken = std::mem::replace(&mut self.dirty, clean);
        for (w, &bits) in taken.bits.iter().enumerate() {
            let mut b = bits;
            while b != 0 {
                let k = b.trailing_zeros() as usize;
                b &= b - 1;
                self.revoked.push((w * 64 + k) as u32);
            }
        }
        taken
    }

    /// Moves the pages made clean since the last call into `out`: write
    /// pointers to them must be dropped. (Called before every instruction:
    /// the common empty case is inline.)
    #[inline]
    pub fn take_revoked(&mut self, out: &mut Vec<u32>) {
        if !self.revoked.is_empty() {
            out.append(&mut self.revoked);
        }
    }

    /// Host pointer to the start of page `page`, for a TLB. For `write`,
    /// only dirty pages qualify: a clean page's first write must take the
    /// slow path, which marks it.
    ///
    /// The pointer stays valid while this `VideoRam` lives; a write pointer
    /// stays *usable* only until the page appears in
    /// [`VideoRam::take_revoked`].
    #[inline]
    pub fn page_ptr(&self, page: u32, write: bool) -> Option<*mut u8> {
        let off = (page as usize).checked_mul(VRAM_PAGE)?;
        let p = page as usize;
        if off + VRAM_PAGE > self.len || (write && (!self.dirty.page(p) || self.code.page(p))) {
            return None;
        }
        // SAFETY: off + 4096 <= len, so the result stays inside the mapping.
        Some(unsafe { self.base.add(off) })
    }

    /// Reads a byte (0xFF beyond the end).
    #[inline]
    pub fn read_u8(&self, offset: u32) -> u8 {
        self.bytes().get(offset as usize).copied().unwrap_or(0xFF)
    }

    /// Reads `n` (1 to 4) little-endian bytes; bytes beyond the end read 0xFF.
    pub fn read(&self, offset: u32, n: u32) -> u32 {
        (0..n.min(4)).fold(0, |v, k| {
            v | u32::from(self.read_u8(offset.wrapping_add(k))) << (8 * k)
        })
    }

    /// Writes `n` (1 to 4) little-endian bytes of `value` as the CPU does
    /// through the slow path: the pages written become dirty. Bytes beyond
    /// the end are dropped.
    pub fn write(&mut self, offset: u32, n: u32, value: u32) {
        for k in 0..n.min(4) {
            let at = offset.wrapping_add(k) as usize;
            if at < self.len {
                self.bytes_mut()[at] = (value >> (8 * k)) as u8;
                self.mark_dirty(at, 1);
            }
        }
    }

    /// Writes a byte through the slow path (see [`VideoRam::write`]).
    #[inline]
    pub fn write_u8(&mut self, offset: u32, value: u8) {
        self.write(offset, 1, u32::from(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_pages_refuse_write_pointers_until_written() {
        let mut v = VideoRam::new(0x4000);
        assert_eq!(v.pages(), 4);
        // A new memory is all dirty (nothing shown yet).
        assert!(v.page_ptr(1, true).is_some());
        let taken = v.take_dirty();
        assert_eq!(taken.count(), 4);
        let mut revoked = Vec::new();
        v.take_revoked(&mut revoked);
        assert_eq!(revoked, vec![0, 1, 2, 3], "every collected page is revoked");
        v.take_revoked(&mut revoked);
        assert_eq!(revoked.len(), 4, "only once");
        // Clean now: reads only.
        assert!(v.page_ptr(1, true).is_none());
        assert!(v.page_ptr(1, false).is_some());
        // The slow-path write marks the page and grants write pointers.
        v.write(0x1FFE, 4, 0xAABB_CCDD);
        assert!(v.dirty().page(1) && v.dirty().page(2) && !v.dirty().page(0));
        assert!(v.page_ptr(1, true).is_some() && v.page_ptr(2, true).is_some());
        assert_eq!(v.read(0x1FFE, 4), 0xAABB_CCDD);
        // Collect clears it, queues the revocation, and a second write
        // marks it again.
        let taken = v.take_dirty();
        assert!(taken.page(1) && taken.range(0x2000, 1) && !taken.range(0, 0x1000));
        assert!(v.dirty().is_empty());
        let mut revoked = Vec::new();
        v.take_revoked(&mut revoked);
        assert_eq!(revoked, vec![1, 2]);
        assert!(v.page_ptr(1, true).is_none());
        v.write_u8(0x1000, 7);
        assert!(v.dirty().page(1) && !v.dirty().page(2));
        assert_eq!(v.read_u8(0x1000), 7);
    }

    #[test]
    fn code_pages_are_tracked_like_rams() {
        let mut v = VideoRam::new(0x3000);
        let g = v.code_generation(1);
        v.mark_code(1);
        let mut revoked = Vec::new();
        v.take_revoked(&mut revoked);
        assert_eq!(revoked, vec![1], "write pointers to code must go");
        assert!(
            v.page_ptr(1, true).is_none(),
            "even though the page is dirty"
        );
        assert!(v.page_ptr(1, false).is_some());
        v.write_u8(0x0FFF, 1);
        assert_eq!(v.code_generation(1), g, "another page");
        v.write_u8(0x1000, 1);
        assert_ne!(v.code_generation(1), g, "the code changed");
        assert!(v.page_ptr(1, true).is_some(), "plain again");
        v.mark_code(9);
        assert_eq!(v.code_generation(9), 0);
    }

    #[test]
    fn device_marks_and_bounds() {
        let mut v = VideoRam::new(0x2001);
        assert_eq!(v.len(), 0x3000, "rounded up to pages");
        v.take_dirty();
        v.bytes_mut()[0x2FFF] = 1;
        v.mark_dirty(0x2FFF, 100);
        assert!(v.dirty().page(2));
        v.mark_dirty(0x9000, 1);
        assert_eq!(v.dirty().count(), 1);
        assert_eq!(v.read(0x2FFF, 2), 0xFF01, "beyond the end reads ones");
        v.write(0x2FFF, 4, 0);
        assert_eq!(v.read_u8(0x2FFF), 0);
        assert!(v.page_ptr(3, false).is_none());
        assert!(v.page_ptr(u32::MAX, false).is_none());
        v.mark_all_dirty();
        assert_eq!(v.dirty().count(), 3);
        let e = VideoRam::new(0);
        assert!(e.is_empty() && e.page_ptr(0, false).is_none());
    }
}
