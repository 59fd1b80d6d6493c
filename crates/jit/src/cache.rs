//! The code cache: translated code in one region seen through two views of
//! the same memory (a memfd mapped twice), one writable and one executable,
//! so that no mapping is ever writable and executable at once (W^X) and
//! adding a block costs a copy, not a change of protection.
//!
//! Blocks are appended; when the region is full the cache is emptied whole
//! (the engine then forgets every block). x86 keeps instruction fetch
//! coherent with stores made through the other view: code written before
//! the call that first runs it is the code that runs.

use memmap2::{Mmap, MmapMut, MmapOptions};
use std::fs::File;
use std::io;

/// Blocks start on this boundary (a host cache line).
const ALIGN: usize = 64;

/// The translated-code region.
pub struct CodeCache {
    write: MmapMut,
    exec: Mmap,
    used: usize,
    /// Where blocks start: below it is code that outlives every flush.
    floor: usize,
}

impl CodeCache {
    /// A region of `bytes` (rounded up to whole pages, at least one).
    pub fn new(bytes: usize) -> io::Result<CodeCache> {
        let len = bytes.max(4096).div_ceil(4096) * 4096;
        let file = memfd(len)?;
        // SAFETY: the file is our own anonymous memfd of `len` bytes; no
        // other process or mapping truncates it while the maps live.
        let write = unsafe { MmapOptions::new().len(len).map_mut(&file)? };
        // SAFETY: as above; this view is only ever read and executed.
        let exec = unsafe { MmapOptions::new().len(len).map_exec(&file)? };
        Ok(CodeCache {
            write,
            exec,
            used: 0,
            floor: 0,
        })
    }

    /// Bytes of code held.
    pub fn used(&self) -> usize {
        self.used
    }

    /// The region's size.
    pub fn capacity(&self) -> usize {
        self.write.len()
    }

    /// Appends `code` (position-independent: it holds no absolute address
    /// of itself) and returns its offset, or `None` when it does not fit.
    pub fn push(&mut self, code: &[u8]) -> Option<usize> {
        let at = self.used.div_ceil(ALIGN) * ALIGN;
        let end = at.checked_add(code.len())?;
        if end > self.write.len() {
            return None;
        }
        self.write[at..end].copy_from_slice(code);
        self.used = end;
        Some(at)
    }

    /// Points the `jmp rel32` whose 4-byte field is at `field` to the code
    /// at `target` (both offsets in the cache, of code it holds).
    pub fn patch_jump(&mut self, field: usize, target: usize) {
        assert!(
            field + 4 <= self.used && target < self.used,
            "a jump outside the cache"
        );
        let rel = target as i64 - (field as i64 + 4);
        let rel = i32::try_from(rel).expect("the cache is smaller than 2 GiB");
        self.write[field..field + 4].copy_from_slice(&rel.to_le_bytes());
    }

    /// Appends `code` that stays when the cache is emptied (call before
    /// any block is added) and returns its offset.
    pub fn push_permanent(&mut self, code: &[u8]) -> Option<usize> {
        let at = self.push(code)?;
        self.floor = self.used;
        Some(at)
    }

    /// Forgets every block (code added with `push_permanent` stays).
    pub fn clear(&mut self) {
        self.used = self.floor;
    }

    /// The executable address of the code at `offset`.
    pub fn entry(&self, offset: usize) -> *const u8 {
        debug_assert!(offset < self.used);
        self.exec.as_ptr().wrapping_add(offset)
    }
}

/// An anonymous in-memory file of `len` bytes.
fn memfd(len: usize) -> io::Result<File> {
    use std::os::fd::FromRawFd;
    // SAFETY: memfd_create takes a NUL-terminated name and flags; the
    // returned descriptor (checked) is owned by the File from here on.
    let fd = unsafe { libc::memfd_create(c"morph86-jit".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(len as u64)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_written_through_one_view_runs_through_the_other() {
        let mut c = CodeCache::new(4096).unwrap();
        // mov eax, 42; ret
        let at = c.push(&[0xB8, 42, 0, 0, 0, 0xC3]).unwrap();
        // SAFETY: the bytes just pushed are a complete function returning
        // a u32 under the System V ABI.
        let f: extern "sysv64" fn() -> u32 = unsafe { std::mem::transmute(c.entry(at)) };
        assert_eq!(f(), 42);
        let at2 = c.push(&[0xB8, 7, 0, 0, 0, 0xC3]).unwrap();
        assert_eq!(at2 % ALIGN, 0);
        assert!(c.push(&[0x90; 5000]).is_none(), "does not fit");
        c.clear();
        assert_eq!(c.used(), 0);
    }
}
