//! Multiboot v1 loader (the Multiboot Specification 0.6.96).
//!
//! [`load`] finds the header in the first 8 KiB of the image, validates it,
//! copies the kernel into RAM (from its ELF32 program headers, or from the
//! a.out-kludge address fields when header flag 16 is set), places modules
//! and builds the boot information structure. The machine then sets the
//! entry state (see [`BootInfo`]). Every malformed input is a
//! [`MultibootError`]; nothing here panics on guest-supplied data, and
//! nothing is written to RAM until every check passed.
//!
//! # Where things go
//!
//! The kernel's segments go where they ask to be, anywhere in RAM from
//! [`LOW_RESERVED_END`] (above the real-mode IVT and BIOS data area) up.
//! Only then does the loader choose room for its own data, from the RAM the
//! memory map calls usable (`0x500..0x9fc00` and 1 MiB to the end of RAM,
//! less the firmware tables' region at the top of RAM that the machine's
//! map reserves) minus the kernel's segments:
//!
//! * modules, page-aligned, in file order, from the first free page at or
//!   above the kernel's end (and 1 MiB), else the lowest free room;
//! * the info structure, memory map, loader name, command lines and module
//!   list, together, from the first free room at or above
//!   [`INFO_PREFERRED`] (0x8000), else the lowest free room.
//!
//! A kernel linked at 0x8000 thus gets its boot information after its own
//! end, and one at 1 MiB gets it at 0x8000 as before.
//!
//! # Memory map
//!
//! The memory map the kernel gets is the board's e820 map, entry by entry
//! ([`load_with_map`]; the machine passes the map its firmware tables
//! reserve, the one the Linux boot and fw_cfg's `etc/e820` give):
//! `mem_lower` and `mem_upper` are the sizes of its RAM ranges at 0 and at
//! 1 MiB. [`load`] uses the map of a board without firmware tables.
//!
//! # Command lines as QEMU builds them
//!
//! QEMU's `-kernel K -append A -initrd "M1 args,M2 args"` passes the
//! command line `"K A"` and one module per comma-separated entry (`,,`
//! standing for a literal comma), each with the whole entry `"M1 args"` as
//! its string and the file named by the entry's first word.
//! [`kernel_cmdline`], [`parse_module_list`] and [`read_modules`] do the
//! same for front ends.

use crate::firmware::e820::{e820_map, E820Entry, E820Type};
use std::ops::Range;
use thiserror::Error;

/// The magic value in the kernel's header.
pub const HEADER_MAGIC: u32 = 0x1BAD_B002;
/// The value in EAX when the kernel is entered.
pub const BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;
/// How far into the image the header may start.
pub const HEADER_SEARCH: usize = 8192;
/// The real-mode interrupt vector table and BIOS data area end here: no
/// kernel segment or loader data goes below.
pub const LOW_RESERVED_END: u32 = 0x500;
/// Where the loader first looks for room for the boot information.
pub const INFO_PREFERRED: u32 = 0x8000;
/// The extended BIOS data area, the VGA hole and the BIOS area, which the
/// memory map reports as not usable: no loader data goes there.
pub const FIRMWARE_AREA: Range<u32> = 0x9_FC00..0x10_0000;
/// Modules start on page boundaries.
const MODULE_ALIGN: u64 = 4096;
/// Size of the Multiboot information structure.
const INFO_SIZE: usize = 88;

/// Header flag: page-align modules.
const F_PAGE_ALIGN: u32 = 1 << 0;
/// Header flag: memory information required.
const F_MEMINFO: u32 = 1 << 1;
/// Header flag: the a.out-kludge address fields are valid.
const F_AOUT_KLUDGE: u32 = 1 << 16;
/// Required-feature bits (0..15) this loader satisfies. Bit 2 (video mode
/// information) is refused: there is no framebuffer yet.
const SUPPORTED_REQUIRED: u32 = F_PAGE_ALIGN | F_MEMINFO;

/// Info flags set by this loader.
const I_MEM: u32 = 1 << 0;
const I_CMDLINE: u32 = 1 << 2;
const I_MODS: u32 = 1 << 3;
const I_MMAP: u32 = 1 << 6;
const I_LOADER_NAME: u32 = 1 << 9;

/// A boot module (an initrd, a test payload...).
#[derive(Clone, Debug, Default)]
pub struct Module {
    /// The module's contents.
    pub bytes: Vec<u8>,
    /// Its command line (the `string` field).
    pub cmdline: String,
}

/// Where the kernel was put and how to enter it.
///
/// The entry state is: EAX = [`BOOTLOADER_MAGIC`], EBX = `info_addr`,
/// EIP = `entry`, flat 32-bit protected mode (CS, DS, ES, FS, GS, SS with
/// base 0 and limit 4 GiB), paging off, EFLAGS.IF = 0 and VM = 0, A20 on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootInfo {
    /// Entry point (physical).
    pub entry: u32,
    /// Physical address of the Multiboot information structure.
    pub info_addr: u32,
    /// First byte after the kernel image and its bss.
    pub kernel_end: u32,
    /// First byte after the highest module (equal to `kernel_end` without modules).
    pub modules_end: u32,
}

/// Why an image could not be loaded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MultibootError {
    /// No header magic in the first 8 KiB.
    #[error("not a Multiboot kernel: no header magic 0x1BADB002 at a 4-byte boundary in the first 8 KiB")]
    NoHeader,
    /// The image ends inside something it declares.
    #[error("truncated image: {what} needs bytes {start:#x}..{end:#x} but the file has {len:#x}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// First byte needed.
        start: u64,
        /// One past the last byte needed.
        end: u64,
        /// File length.
        len: usize,
    },
    /// magic + flags + checksum is not 0.
    #[error("bad Multiboot header checksum at offset {offset:#x} (magic + flags + checksum = {sum:#x}, must be 0)")]
    BadChecksum {
        /// Header offset in the file.
        offset: usize,
        /// The sum.
        sum: u32,
    },
    /// The header requires features this loader does not provide.
    #[error("the kernel requires Multiboot features this loader lacks (header flags {flags:#x}, unsupported bits {unsupported:#x}; bit 2 = video mode)")]
    UnsupportedFlags {
        /// Header flags.
        flags: u32,
        /// The bits this loader cannot satisfy.
        unsupported: u32,
    },
    /// The a.out-kludge address fields are inconsistent.
    #[error("bad a.out-kludge address fields: {0}")]
    BadAddressFields(String),
    /// Not an ELF32 i386 executable, and no a.out-kludge fields either.
    #[error("the kernel is not an ELF32 i386 executable ({0}) and its header has no address fields (flag 16)")]
    NotElf(&'static str),
    /// The ELF file is malformed.
    #[error("bad ELF kernel: {0}")]
    BadElf(String),
    /// The ELF file has nothing to load.
    #[error("the ELF kernel has no loadable (PT_LOAD) segment")]
    NoSegments,
    /// Something would be placed outside RAM.
    #[error("{what} at {start:#x}..{end:#x} does not fit in RAM ({ram} KiB)")]
    OutsideRam {
        /// What was being placed.
        what: String,
        /// First address.
        start: u64,
        /// One past the last address.
        end: u64,
        /// RAM size in KiB.
        ram: u64,
    },
    /// A kernel segment reaches into the real-mode IVT and BIOS data area.
    #[error("{what} at {start:#x}..{end:#x} overlaps the interrupt vector table and BIOS data area 0x0..0x500")]
    OverlapsLowMemory {
        /// What was being placed.
        what: String,
        /// First address.
        start: u64,
        /// One past the last address.
        end: u64,
    },
    /// No free room is left for a module or the boot information.
    #[error("no room for {what} ({len:#x} bytes, {align}-byte aligned): RAM outside the kernel's segments, 0x0..0x500 and 0x9fc00..0x100000 has no free range that large (the largest is {largest:#x} bytes)")]
    NoRoom {
        /// What was being placed.
        what: String,
        /// Its size.
        len: u64,
        /// The alignment it needs.
        align: u64,
        /// The largest free range left.
        largest: u64,
    },
    /// RAM is too small for a Multiboot machine.
    #[error("RAM of {0} KiB is too small: Multiboot needs at least 2 MiB")]
    RamTooSmall(u64),
    /// No memory map can describe the RAM.
    #[error("memory map: {0}")]
    MemoryMap(String),
}

type Result<T> = std::result::Result<T, MultibootError>;

fn u32_at(img: &[u8], off: u64, what: &'static str) -> Result<u32> {
    let s = slice(img, off, 4, what)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u16_at(img: &[u8], off: u64, what: &'static str) -> Result<u16> {
    let s = slice(img, off, 2, what)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

fn slice<'a>(img: &'a [u8], off: u64, len: u64, what: &'static str) -> Result<&'a [u8]> {
    let end = off.checked_add(len);
    match end {
        Some(end) if end <= img.len() as u64 => Ok(&img[off as usize..end as usize]),
        _ => Err(MultibootError::Truncated {
            what,
            start: off,
            end: end.unwrap_or(u64::MAX),
            len: img.len(),
        }),
    }
}

/// The Multiboot header's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Offset of the header in the file.
    pub offset: usize,
    /// Flags.
    pub flags: u32,
    /// a.out-kludge fields (header, load, load_end, bss_end, entry), when flag 16 is set.
    pub addrs: Option<[u32; 5]>,
}

/// Finds and validates the Multiboot header.
pub fn find_header(img: &[u8]) -> Result<Header> {
    let search = img.len().min(HEADER_SEARCH);
    let offset = (0..search.saturating_sub(3))
        .step_by(4)
        .find(|&o| img[o..o + 4] == HEADER_MAGIC.to_le_bytes())
        .ok_or(MultibootError::NoHeader)?;
    let o = offset as u64;
    let flags = u32_at(img, o + 4, "the header's flags")?;
    let checksum = u32_at(img, o + 8, "the header's checksum")?;
    let sum = HEADER_MAGIC.wrapping_add(flags).wrapping_add(checksum);
    if sum != 0 {
        return Err(MultibootError::BadChecksum { offset, sum });
    }
    let unsupported = flags & 0xFFFF & !SUPPORTED_REQUIRED;
    if unsupported != 0 {
        return Err(MultibootError::UnsupportedFlags { flags, unsupported });
    }
    let addrs = if flags & F_AOUT_KLUDGE != 0 {
        let mut a = [0u32; 5];
        for (i, v) in a.iter_mut().enumerate() {
            *v = u32_at(img, o + 12 + 4 * i as u64, "the header's address fields")?;
        }
        Some(a)
    } else {
        None
    };
    Ok(Header {
        offset,
        flags,
        addrs,
    })
}

/// One piece of the image to copy into RAM.
struct Segment {
    /// Physical load address.
    paddr: u32,
    /// File offset and length of the initialised part.
    file: Range<usize>,
    /// Total size in memory (the rest is zeroed).
    memsz: u32,
}

/// Plans the load from the a.out-kludge fields.
fn plan_aout(img: &[u8], h: &Header, a: [u32; 5]) -> Result<(Vec<Segment>, u32)> {
    let [header_addr, load_addr, load_end_addr, bss_end_addr, entry] = a;
    let bad = |m: String| Err(MultibootError::BadAddressFields(m));
    if load_addr > header_addr {
        return bad(format!(
            "load_addr {load_addr:#x} is above header_addr {header_addr:#x}"
        ));
    }
    let back = header_addr - load_addr;
    if back as usize > h.offset {
        return bad(format!(
            "header_addr - load_addr = {back:#x} reaches before the start of the file (header at offset {:#x})",
            h.offset
        ));
    }
    let start = h.offset - back as usize;
    let load_size = if load_end_addr == 0 {
        (img.len() - start) as u64
    } else if load_end_addr < load_addr {
        return bad(format!(
            "load_end_addr {load_end_addr:#x} is below load_addr {load_addr:#x}"
        ));
    } else {
        u64::from(load_end_addr - load_addr)
    };
    slice(img, start as u64, load_size, "the a.out-kludge load range")?;
    let load_end = u64::from(load_addr) + load_size;
    let mem_end = if bss_end_addr == 0 {
        load_end
    } else if u64::from(bss_end_addr) < load_end {
        return bad(format!(
            "bss_end_addr {bss_end_addr:#x} is below the end of the loaded image {load_end:#x}"
        ));
    } else {
        u64::from(bss_end_addr)
    };
    let seg = Segment {
        paddr: load_addr,
        file: start..start + load_size as usize,
        memsz: u32::try_from(mem_end - u64::from(load_addr)).map_err(|_| {
            MultibootError::BadAddressFields("the image is larger than 4 GiB".into())
        })?,
    };
    Ok((vec![seg], entry))
}

/// Plans the load from ELF32 program headers.
fn plan_elf(img: &[u8]) -> Result<(Vec<Segment>, u32)> {
    if img.len() < 4 || img[..4] != *b"\x7fELF" {
        return Err(MultibootError::NotElf("no ELF magic"));
    }
    let ident = slice(img, 0, 52, "the ELF header")?;
    if ident[4] != 1 {
        return Err(MultibootError::NotElf("not ELFCLASS32"));
    }
    if ident[5] != 1 {
        return Err(MultibootError::NotElf("not little-endian"));
    }
    let e_type = u16_at(img, 16, "the ELF header")?;
    let machine = u16_at(img, 18, "the ELF header")?;
    if machine != 3 {
        return Err(MultibootError::BadElf(format!(
            "e_machine is {machine}, not EM_386 (3)"
        )));
    }
    if e_type != 2 {
        return Err(MultibootError::BadElf(format!(
            "e_type is {e_type}, not ET_EXEC (2)"
        )));
    }
    let entry = u32_at(img, 24, "the ELF header")?;
    let phoff = u64::from(u32_at(img, 28, "the ELF header")?);
    let phentsize = u64::from(u16_at(img, 42, "the ELF header")?);
    let phnum = u64::from(u16_at(img, 44, "the ELF header")?);
    if phnum > 0 && phentsize < 32 {
        return Err(MultibootError::BadElf(format!(
            "e_phentsize {phentsize} is smaller than an Elf32_Phdr (32)"
        )));
    }
    let mut segs = Vec::new();
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        slice(img, ph, 32, "a program header")?;
        if u32_at(img, ph, "a program header")? != 1 {
            continue; // not PT_LOAD
        }
        let p_offset = u32_at(img, ph + 4, "a program header")?;
        let p_paddr = u32_at(img, ph + 12, "a program header")?;
        let p_filesz = u32_at(img, ph + 16, "a program header")?;
        let p_memsz = u32_at(img, ph + 20, "a program header")?;
        if p_filesz > p_memsz {
            return Err(MultibootError::BadElf(format!(
                "segment {i}: p_filesz {p_filesz:#x} exceeds p_memsz {p_memsz:#x}"
            )));
        }
        slice(
            img,
            u64::from(p_offset),
            u64::from(p_filesz),
            "a PT_LOAD segment",
        )?;
        if p_memsz == 0 {
            continue;
        }
        segs.push(Segment {
            paddr: p_paddr,
            file: p_offset as usize..(p_offset + p_filesz) as usize,
            memsz: p_memsz,
        });
    }
    if segs.is_empty() {
        return Err(MultibootError::NoSegments);
    }
    Ok((segs, entry))
}

/// The RAM the loader may still use for its own data: disjoint, sorted
/// ranges.
struct FreeMap {
    ranges: Vec<Range<u64>>,
}

impl FreeMap {
    /// The RAM ranges of `map` inside `ram_len` bytes of RAM, above the
    /// IVT and BDA, outside [`FIRMWARE_AREA`] and below 4 GiB (which the
    /// info structure's 32-bit fields can address).
    fn new(ram_len: u64, map: &[E820Entry]) -> FreeMap {
        let top = ram_len.min(0xFFFF_F000);
        let mut free = FreeMap {
            ranges: map
                .iter()
                .filter(|e| e.kind == E820Type::Ram)
                .map(|e| e.addr.max(u64::from(LOW_RESERVED_END))..e.end().min(top))
                .filter(|r| r.start < r.end)
                .collect(),
        };
        free.ranges.sort_by_key(|r| r.start);
        free.remove(u64::from(FIRMWARE_AREA.start)..u64::from(FIRMWARE_AREA.end));
        free
    }

    /// Takes `r` out of the free ranges.
    fn remove(&mut self, r: Range<u64>) {
        let mut out = Vec::with_capacity(self.ranges.len() + 1);
        for f in self.ranges.drain(..) {
            if r.end <= f.start || f.end <= r.start || r.start >= r.end {
                out.push(f);
                continue;
            }
            if f.start < r.start {
                out.push(f.start..r.start);
            }
            if r.end < f.end {
                out.push(r.end..f.end);
            }
        }
        self.ranges = out;
    }

    /// The lowest `align`-aligned address at or above `floor` where `len`
    /// bytes are free.
    fn find(&self, len: u64, align: u64, floor: u64) -> Option<u64> {
        self.ranges.iter().find_map(|f| {
            let at = f.start.max(floor).checked_next_multiple_of(align)?;
            (at.checked_add(len)? <= f.end).then_some(at)
        })
    }

    /// Reserves `len` bytes: the lowest fit at or above `floor`, else the
    /// lowest fit anywhere.
    fn alloc(&mut self, len: u64, align: u64, floor: u64) -> Option<u64> {
        let at = self
            .find(len, align, floor)
            .or_else(|| self.find(len, align, 0))?;
        self.remove(at..at + len);
        Some(at)
    }

    fn largest(&self) -> u64 {
        self.ranges
            .iter()
            .map(|r| r.end - r.start)
            .max()
            .unwrap_or(0)
    }
}

/// The boot information block: the info structure, memory map, strings
/// and module list, laid out from offset 0.
struct InfoLayout {
    mmap: usize,
    name: usize,
    cmdline: usize,
    mod_strings: Vec<usize>,
    mods: usize,
    len: usize,
}

const LOADER_NAME: &str = "morph86";
/// Bytes of one memory map entry (with its size field).
const MMAP_ENTRY: usize = 24;

impl InfoLayout {
    fn new(mmap_len: usize, cmdline: &str, modules: &[Module]) -> InfoLayout {
        let mmap = INFO_SIZE;
        let name = mmap + mmap_len;
        let cmdline_at = name + LOADER_NAME.len() + 1;
        let mut at = cmdline_at + cmdline.len() + 1;
        let mut mod_strings = Vec::with_capacity(modules.len());
        for m in modules {
            mod_strings.push(at);
            at += m.cmdline.len() + 1;
        }
        let mods = at.next_multiple_of(4);
        InfoLayout {
            mmap,
            name,
            cmdline: cmdline_at,
            mod_strings,
            mods,
            len: mods + 16 * modules.len(),
        }
    }
}

/// Loads the Multiboot kernel `img` into `ram`, with its command line and
/// modules, and builds the boot information, with the memory map of a
/// board without firmware tables (see [`load_with_map`]).
pub fn load(ram: &mut [u8], img: &[u8], cmdline: &str, modules: &[Module]) -> Result<BootInfo> {
    if ram.len() < 2 << 20 {
        return Err(MultibootError::RamTooSmall(ram.len() as u64 / 1024));
    }
    let map = e820_map(ram.len() as u64, &[]).map_err(|e| MultibootError::MemoryMap(e.0))?;
    load_with_map(ram, img, cmdline, modules, &map)
}

/// Loads the Multiboot kernel `img` into `ram`, with its command line and
/// modules, and builds the boot information with `map` as its memory map
/// (see the module documentation for where everything goes). The loader's
/// own data goes only where `map` says RAM. On error RAM is left untouched;
/// on success only the kernel's segments, the modules and the boot
/// information are written.
pub fn load_with_map(
    ram: &mut [u8],
    img: &[u8],
    cmdline: &str,
    modules: &[Module],
    map: &[E820Entry],
) -> Result<BootInfo> {
    if ram.len() < 2 << 20 {
        return Err(MultibootError::RamTooSmall(ram.len() as u64 / 1024));
    }
    let ram_len = ram.len() as u64;
    let h = find_header(img)?;
    let (segs, entry) = match h.addrs {
        Some(a) => plan_aout(img, &h, a)?,
        None => plan_elf(img)?,
    };
    // The kernel's segments first: each in RAM above the IVT and BDA.
    let mut free = FreeMap::new(ram_len, map);
    let mut kernel_end = 0u64;
    for (i, s) in segs.iter().enumerate() {
        let (start, end) = (u64::from(s.paddr), u64::from(s.paddr) + u64::from(s.memsz));
        if end > ram_len {
            return Err(MultibootError::OutsideRam {
                what: format!("kernel segment {i}"),
                start,
                end,
                ram: ram_len / 1024,
            });
        }
        if start < u64::from(LOW_RESERVED_END) {
            return Err(MultibootError::OverlapsLowMemory {
                what: format!("kernel segment {i}"),
                start,
                end,
            });
        }
        free.remove(start..end);
        kernel_end = kernel_end.max(end);
    }
    if u64::from(entry) >= ram_len {
        return Err(MultibootError::OutsideRam {
            what: "the entry point".into(),
            start: u64::from(entry),
            end: u64::from(entry) + 1,
            ram: ram_len / 1024,
        });
    }
    // Then the loader's data, in the room the segments left.
    let mod_floor = kernel_end.max(u64::from(FIRMWARE_AREA.end));
    let mut mod_ranges = Vec::with_capacity(modules.len());
    for (i, m) in modules.iter().enumerate() {
        let len = m.bytes.len() as u64;
        let at =
            free.alloc(len, MODULE_ALIGN, mod_floor)
                .ok_or_else(|| MultibootError::NoRoom {
                    what: format!("module {i} ({:?})", m.cmdline),
                    len,
                    align: MODULE_ALIGN,
                    largest: free.largest(),
                })?;
        mod_ranges.push(at..at + len);
    }
    // The memory map, entry by entry.
    let mut mmap = Vec::with_capacity(map.len() * MMAP_ENTRY);
    for e in map {
        mmap.extend(20u32.to_le_bytes());
        mmap.extend(e.addr.to_le_bytes());
        mmap.extend(e.size.to_le_bytes());
        mmap.extend((e.kind as u32).to_le_bytes());
    }
    // mem_lower and mem_upper: the RAM at 0 (up to 640 KiB) and at 1 MiB.
    let ram_at = |base: u64| {
        map.iter()
            .find(|e| e.kind == E820Type::Ram && e.addr == base)
            .map_or(0, |e| e.size)
    };
    let mem_lower = (ram_at(0).min(0xA_0000) / 1024) as u32;
    let mem_upper = (ram_at(0x10_0000).min(0xFFFF_F000 - 0x10_0000) / 1024) as u32;
    let lay = InfoLayout::new(mmap.len(), cmdline, modules);
    let info_len = lay.len as u64;
    let info_addr = free
        .alloc(info_len, 16, u64::from(INFO_PREFERRED))
        .ok_or_else(|| MultibootError::NoRoom {
            what: "the boot information (info structure, memory map, command lines, module list)"
                .into(),
            len: info_len,
            align: 16,
            largest: free.largest(),
        })?;

    // Everything placed: write.
    for s in &segs {
        let dst = s.paddr as usize;
        let n = s.file.len();
        ram[dst..dst + n].copy_from_slice(&img[s.file.clone()]);
        ram[dst + n..dst + s.memsz as usize].fill(0);
    }
    for (m, r) in modules.iter().zip(&mod_ranges) {
        ram[r.start as usize..r.end as usize].copy_from_slice(&m.bytes);
    }
    let base = info_addr as usize;
    let blk = &mut ram[base..base + lay.len];
    blk.fill(0);
    let abs = |off: usize| (info_addr + off as u64) as u32;
    let put_str = |blk: &mut [u8], off: usize, s: &str| {
        blk[off..off + s.len()].copy_from_slice(s.as_bytes());
        blk[off + s.len()] = 0;
    };
    blk[lay.mmap..lay.mmap + mmap.len()].copy_from_slice(&mmap);
    put_str(blk, lay.name, LOADER_NAME);
    put_str(blk, lay.cmdline, cmdline);
    for (i, (m, r)) in modules.iter().zip(&mod_ranges).enumerate() {
        put_str(blk, lay.mod_strings[i], &m.cmdline);
        let e = lay.mods + 16 * i;
        blk[e..e + 4].copy_from_slice(&(r.start as u32).to_le_bytes());
        blk[e + 4..e + 8].copy_from_slice(&(r.end as u32).to_le_bytes());
        blk[e + 8..e + 12].copy_from_slice(&abs(lay.mod_strings[i]).to_le_bytes());
    }
    let mut info = [0u32; INFO_SIZE / 4];
    info[0] = I_MEM | I_CMDLINE | I_MODS | I_MMAP | I_LOADER_NAME;
    info[1] = mem_lower;
    info[2] = mem_upper;
    info[3] = 0xFFFF_FFFF; // boot_device: not set (flag bit 1 clear)
    info[4] = abs(lay.cmdline);
    info[5] = modules.len() as u32;
    info[6] = if modules.is_empty() { 0 } else { abs(lay.mods) };
    info[11] = mmap.len() as u32;
    info[12] = abs(lay.mmap);
    info[16] = abs(lay.name);
    for (i, v) in info.iter().enumerate() {
        blk[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
    }
    Ok(BootInfo {
        entry,
        info_addr: info_addr as u32,
        kernel_end: kernel_end as u32,
        modules_end: mod_ranges
            .iter()
            .map(|r| r.end as u32)
            .max()
            .unwrap_or(kernel_end as u32),
    })
}

/// The command line QEMU gives a Multiboot kernel: the kernel's path as
/// given, a space, then the `-append` text.
pub fn kernel_cmdline(kernel_path: &str, append: &str) -> String {
    format!("{kernel_path} {append}")
}

/// One module named on a QEMU-style `-initrd` list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleSpec {
    /// The file to load: the entry up to its first space.
    pub path: String,
    /// The module's command line: the whole entry, path and arguments.
    pub cmdline: String,
}

/// Why a module list could not be used.
#[derive(Debug, Error)]
pub enum ModuleListError {
    /// An entry names no file (an empty entry, a trailing comma, or an
    /// entry that starts with a space).
    #[error("module {index} of the list {list:?} names no file")]
    EmptyPath {
        /// The entry's position, from 0.
        index: usize,
        /// The whole list.
        list: String,
    },
    /// A module file could not be read. (The I/O error is part of the
    /// message, not a separate `source`, so that error chains print it once.)
    #[error("reading module {index} ({path}): {error}")]
    Read {
        /// The entry's position, from 0.
        index: usize,
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
}

/// Splits a QEMU-style `-initrd` value for a Multiboot kernel into modules:
/// entries are separated by `,`, and `,,` stands for a literal comma; an
/// entry's first word is the file and the whole entry is the module's
/// command line (`"a.bin x=1,b.bin"` gives `a.bin` with `"a.bin x=1"` and
/// `b.bin` with `"b.bin"`).
pub fn parse_module_list(list: &str) -> std::result::Result<Vec<ModuleSpec>, ModuleListError> {
    let mut entries = Vec::new();
    let mut cur = String::new();
    let mut chars = list.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ',' if chars.peek() == Some(&',') => {
                chars.next();
                cur.push(',');
            }
            ',' => entries.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    entries.push(cur);
    entries
        .into_iter()
        .enumerate()
        .map(|(index, cmdline)| {
            let path = cmdline.split(' ').next().unwrap_or("").to_string();
            if path.is_empty() {
                return Err(ModuleListError::EmptyPath {
                    index,
                    list: list.to_string(),
                });
            }
            Ok(ModuleSpec { path, cmdline })
        })
        .collect()
}

/// Parses `list` as [`parse_module_list`] does and reads each file with
/// `read` (e.g. `std::fs::read`), giving the modules to pass to [`load`].
pub fn read_modules<F>(list: &str, mut read: F) -> std::result::Result<Vec<Module>, ModuleListError>
where
    F: FnMut(&str) -> std::io::Result<Vec<u8>>,
{
    parse_module_list(list)?
        .into_iter()
        .enumerate()
        .map(|(index, spec)| match read(&spec.path) {
            Ok(bytes) => Ok(Module {
                bytes,
                cmdline: spec.cmdline,
            }),
            Err(error) => Err(ModuleListError::Read {
                index,
                path: spec.path,
                error,
            }),
        })
        .collect()
}

/// An a.out-kludge Multiboot kernel at 1 MiB running `code` (32-bit), for
/// the crate's tests.
#[cfg(test)]
pub(crate) fn test_kernel(code: &[u8]) -> Vec<u8> {
    let load = 0x10_0000u32;
    let flags = 1u32 << 16;
    let mut k = Vec::new();
    for v in [
        HEADER_MAGIC,
        flags,
        HEADER_MAGIC.wrapping_add(flags).wrapping_neg(),
        load,
        load,
        load + 32 + code.len() as u32,
        0,
        load + 32,
    ] {
        k.extend(v.to_le_bytes());
    }
    k.extend_from_slice(code);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM: usize = 4 << 20;

    fn header(flags: u32, addrs: Option<[u32; 5]>) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend(HEADER_MAGIC.to_le_bytes());
        h.extend(flags.to_le_bytes());
        h.extend(
            HEADER_MAGIC
                .wrapping_add(flags)
                .wrapping_neg()
                .to_le_bytes(),
        );
        if let Some(a) = addrs {
            a.iter().for_each(|v| h.extend(v.to_le_bytes()));
        }
        h
    }

    /// An a.out-kludge kernel: header at offset 0 of a flat binary loaded at 1 MiB.
    fn aout_kernel(code: &[u8], bss: u32) -> Vec<u8> {
        let load = 0x10_0000u32;
        let len = 32 + code.len() as u32;
        let mut k = header(
            F_AOUT_KLUDGE | F_MEMINFO,
            Some([load, load, load + len, load + len + bss, load + 32]),
        );
        k.extend_from_slice(code);
        k
    }

    /// An ELF32 kernel with one PT_LOAD segment at `paddr` and the header inside it.
    fn elf_kernel(paddr: u32, memsz_extra: u32) -> Vec<u8> {
        let mut body = header(F_MEMINFO, None);
        body.extend([0xF4; 16]); // hlt
        let off = 0x1000u32;
        let mut e = vec![0u8; off as usize];
        e[..4].copy_from_slice(b"\x7fELF");
        e[4] = 1;
        e[5] = 1;
        e[6] = 1;
        e[16..18].copy_from_slice(&2u16.to_le_bytes());
        e[18..20].copy_from_slice(&3u16.to_le_bytes());
        e[24..28].copy_from_slice(&(paddr + 12).to_le_bytes());
        e[28..32].copy_from_slice(&52u32.to_le_bytes());
        e[42..44].copy_from_slice(&32u16.to_le_bytes());
        e[44..46].copy_from_slice(&1u16.to_le_bytes());
        let ph = [
            1,
            off,
            paddr,
            paddr,
            body.len() as u32,
            body.len() as u32 + memsz_extra,
            5,
            0x1000,
        ];
        for (i, v) in ph.iter().enumerate() {
            e[52 + 4 * i..56 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        e.extend(body);
        e
    }

    fn rd32(ram: &[u8], a: u32) -> u32 {
        u32::from_le_bytes(ram[a as usize..a as usize + 4].try_into().unwrap())
    }

    fn rd64(ram: &[u8], a: u32) -> u64 {
        u64::from_le_bytes(ram[a as usize..a as usize + 8].try_into().unwrap())
    }

    #[test]
    fn loads_aout_kludge_kernel_with_bss() {
        let mut ram = vec![0xAAu8; RAM];
        let k = aout_kernel(&[0x90, 0xF4], 0x100);
        let bi = load(&mut ram, &k, "hello world", &[]).unwrap();
        assert_eq!(bi.entry, 0x10_0020);
        assert_eq!(&ram[0x10_0020..0x10_0022], &[0x90, 0xF4]);
        assert!(
            ram[0x10_0022..0x10_0122].iter().all(|&b| b == 0),
            "bss zeroed"
        );
        assert_eq!(bi.kernel_end, 0x10_0122);
        let info = bi.info_addr;
        assert_eq!(
            rd32(&ram, info),
            I_MEM | I_CMDLINE | I_MODS | I_MMAP | I_LOADER_NAME
        );
        assert_eq!(rd32(&ram, info + 4), 639);
        assert_eq!(rd32(&ram, info + 8), (RAM as u32 - 0x10_0000) / 1024);
        let cmd = rd32(&ram, info + 16) as usize;
        assert_eq!(&ram[cmd..cmd + 12], b"hello world\0");
        // The memory map is the board's e820 map (here without firmware
        // tables): low RAM, EBDA, BIOS area, RAM from 1 MiB, the APICs and
        // the BIOS ROM.
        let (mlen, maddr) = (rd32(&ram, info + 44), rd32(&ram, info + 48));
        let map = e820_map(RAM as u64, &[]).unwrap();
        assert_eq!(mlen as usize, map.len() * 24);
        for (i, e) in map.iter().enumerate() {
            let at = maddr + 24 * i as u32;
            assert_eq!(rd32(&ram, at), 20);
            let (base, len) = (rd64(&ram, at + 4), rd64(&ram, at + 12));
            assert_eq!(
                (base, len, rd32(&ram, at + 20)),
                (e.addr, e.size, e.kind as u32)
            );
        }
        let ram_entry = maddr + 3 * 24;
        assert_eq!(rd32(&ram, ram_entry + 4), 0x10_0000);
        assert_eq!(rd32(&ram, ram_entry + 12), RAM as u32 - 0x10_0000);
        assert_eq!(rd32(&ram, ram_entry + 20), 1);
    }

    /// With the machine's map, the firmware tables' region at the top of
    /// RAM is reserved in the memory map, `mem_upper` stops below it, and
    /// no module or boot information lands in it even when nothing else
    /// fits.
    #[test]
    fn the_firmware_region_is_reserved_and_left_alone() {
        let acpi = [
            E820Entry::new(RAM as u64 - 0x1_0000..RAM as u64 - 0xF000, E820Type::Nvs),
            E820Entry::new(RAM as u64 - 0xF000..RAM as u64, E820Type::Acpi),
        ];
        let map = e820_map(RAM as u64, &acpi).unwrap();
        let mut ram = vec![0u8; RAM];
        let k = aout_kernel(&[0xF4], 0);
        let top = RAM as u64 - 0x1_0000;
        // A module that fills everything from the kernel's end up to the
        // table region, and one more that has only low memory left.
        let big = (top - 0x10_2000) as usize;
        let mods = [
            Module {
                bytes: vec![7; big],
                cmdline: "big".into(),
            },
            Module {
                bytes: vec![8; 0x1000],
                cmdline: "small".into(),
            },
        ];
        let bi = load_with_map(&mut ram, &k, "", &mods, &map).unwrap();
        assert_eq!(bi.modules_end as u64, top);
        assert!(
            ram[top as usize..].iter().all(|&b| b == 0),
            "tables' region untouched"
        );
        let info = bi.info_addr;
        assert!(u64::from(info) < 0x9_FC00);
        assert_eq!(rd32(&ram, info + 8), (top as u32 - 0x10_0000) / 1024);
        let (mlen, maddr) = (rd32(&ram, info + 44), rd32(&ram, info + 48));
        assert_eq!(mlen as usize, map.len() * 24);
        let types: Vec<u32> = (0..map.len() as u32)
            .map(|i| rd32(&ram, maddr + 24 * i + 20))
            .collect();
        assert!(types.contains(&3) && types.contains(&4));
        // A module too large for the RAM below the tables is refused.
        let too_big = [Module {
            bytes: vec![1; big + 0x2000],
            cmdline: "too big".into(),
        }];
        let mut ram = vec![0u8; RAM];
        assert!(matches!(
            load_with_map(&mut ram, &k, "", &too_big, &map),
            Err(MultibootError::NoRoom { .. })
        ));
    }

    #[test]
    fn loads_elf_kernel_and_modules() {
        let mut ram = vec![0u8; RAM];
        let k = elf_kernel(0x20_0000, 0x2345);
        let mods = [
            Module {
                bytes: vec![1, 2, 3],
                cmdline: "one".into(),
            },
            Module {
                bytes: vec![4; 5000],
                cmdline: "two".into(),
            },
        ];
        let bi = load(&mut ram, &k, "", &mods).unwrap();
        assert_eq!(bi.entry, 0x20_000C);
        assert_eq!(rd32(&ram, 0x20_0000), HEADER_MAGIC);
        assert_eq!(ram[0x20_000C], 0xF4);
        let end = 0x20_0000 + 12 + 16 + 0x2345;
        assert_eq!(bi.kernel_end, end);
        assert_eq!(rd32(&ram, bi.info_addr + 20), 2);
        let mods_addr = rd32(&ram, bi.info_addr + 24);
        let m0 = rd32(&ram, mods_addr);
        assert_eq!(m0, end.next_multiple_of(4096));
        assert_eq!(rd32(&ram, mods_addr + 4), m0 + 3);
        assert_eq!(&ram[m0 as usize..m0 as usize + 3], &[1, 2, 3]);
        let m1 = rd32(&ram, mods_addr + 16);
        assert_eq!(m1, m0 + 4096);
        assert_eq!(rd32(&ram, mods_addr + 20), m1 + 5000);
        let s1 = rd32(&ram, mods_addr + 24) as usize;
        assert_eq!(&ram[s1..s1 + 4], b"two\0");
        assert_eq!(bi.modules_end, m1 + 5000);
    }

    #[test]
    fn rejects_garbage() {
        let mut ram = vec![0u8; RAM];
        assert_eq!(load(&mut ram, &[], "", &[]), Err(MultibootError::NoHeader));
        assert_eq!(
            load(&mut ram, &[0x55; 20000], "", &[]),
            Err(MultibootError::NoHeader)
        );
        // The magic beyond 8 KiB does not count.
        let mut far = vec![0u8; 8192];
        far.extend(header(0, None));
        assert_eq!(load(&mut ram, &far, "", &[]), Err(MultibootError::NoHeader));
        // Every pseudo-random image fails cleanly.
        let mut x = 12345u32;
        for len in [1usize, 3, 4, 11, 12, 47, 64, 5000] {
            let img: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            assert!(load(&mut ram, &img, "", &[]).is_err());
        }
    }

    #[test]
    fn rejects_bad_checksum_and_flags() {
        let mut ram = vec![0u8; RAM];
        let mut k = aout_kernel(&[0xF4], 0);
        k[8] ^= 1;
        assert!(matches!(
            load(&mut ram, &k, "", &[]),
            Err(MultibootError::BadChecksum { offset: 0, .. })
        ));
        let k = header(1 << 2, None);
        assert!(matches!(
            load(&mut ram, &k, "", &[]),
            Err(MultibootError::UnsupportedFlags { unsupported: 4, .. })
        ));
    }

    #[test]
    fn every_truncation_fails_cleanly() {
        let mut ram = vec![0u8; RAM];
        for k in [aout_kernel(&[0x90; 40], 0x10), elf_kernel(0x10_0000, 0)] {
            assert!(load(&mut ram, &k, "", &[]).is_ok());
            for cut in 0..k.len() {
                let r = load(&mut ram, &k[..cut], "", &[]);
                // An a.out kernel with load_end_addr = 0 could load a prefix;
                // ours names load_end_addr, so every cut is an error.
                assert!(r.is_err(), "cut at {cut} loaded");
            }
        }
    }

    #[test]
    fn rejects_out_of_range_fields() {
        let mut ram = vec![0u8; RAM];
        let l = 0x10_0000u32;
        let cases = [
            [l, l + 4, l + 64, 0, l],       // load_addr above header_addr
            [l + 64, l, l + 64, 0, l],      // load starts before the file
            [l, l, l - 1, 0, l],            // load_end below load
            [l, l, l + 48, l + 8, l],       // bss_end below load_end
            [l, l, l + 48, 0, 0x7000_0000], // entry outside RAM
        ];
        for a in cases {
            let mut k = header(F_AOUT_KLUDGE, Some(a));
            k.extend([0u8; 16]);
            let r = load(&mut ram, &k, "", &[]);
            assert!(
                matches!(
                    r,
                    Err(MultibootError::BadAddressFields(_)
                        | MultibootError::Truncated { .. }
                        | MultibootError::OutsideRam { .. })
                ),
                "{a:x?}: {r:?}"
            );
        }
        // Segments outside RAM or over the IVT and BIOS data area.
        for paddr in [0x3F_FFF0u32, 0xFFFF_F000, 0, 0x4F0] {
            let k = elf_kernel(paddr, 0x100);
            let r = load(&mut ram, &k, "", &[]);
            assert!(
                matches!(
                    r,
                    Err(MultibootError::OutsideRam { .. }
                        | MultibootError::OverlapsLowMemory { .. })
                ),
                "{paddr:#x}: {r:?}"
            );
        }
        // Bad ELF identification.
        let mut k = elf_kernel(0x10_0000, 0);
        k[18] = 62; // x86-64
        assert!(matches!(
            load(&mut ram, &k, "", &[]),
            Err(MultibootError::BadElf(_))
        ));
        let mut k = elf_kernel(0x10_0000, 0);
        k[4] = 2;
        assert!(matches!(
            load(&mut ram, &k, "", &[]),
            Err(MultibootError::NotElf(_))
        ));
        let mut small = vec![0u8; 1 << 20];
        assert!(matches!(
            load(&mut small, &elf_kernel(0x10_0000, 0), "", &[]),
            Err(MultibootError::RamTooSmall(_))
        ));
    }

    #[test]
    fn module_larger_than_ram_is_refused() {
        let mut ram = vec![0u8; RAM];
        let m = Module {
            bytes: vec![0; RAM],
            cmdline: "huge.bin".into(),
        };
        let r = load(&mut ram, &aout_kernel(&[0xF4], 0), "", &[m]);
        assert!(
            matches!(&r, Err(MultibootError::NoRoom { what, len, .. })
                if what.contains("module 0") && what.contains("huge.bin") && *len == RAM as u64),
            "{r:?}"
        );
    }

    /// A flat a.out-kludge kernel loaded at `load` whose bss reaches `bss_end`.
    fn aout_at(load: u32, bss_end: u32) -> Vec<u8> {
        let mut k = header(
            F_AOUT_KLUDGE | F_MEMINFO | F_PAGE_ALIGN,
            Some([load, load, load + 48, bss_end, load + 32]),
        );
        k.extend([0xF4; 16]);
        k
    }

    /// Every piece of loader data the info structure points to.
    fn loader_data(ram: &[u8], bi: &BootInfo) -> Vec<(&'static str, Range<u32>)> {
        let info = bi.info_addr;
        let cstr = |a: u32| {
            let n = ram[a as usize..].iter().position(|&b| b == 0).unwrap() as u32;
            a..a + n + 1
        };
        let mut v = vec![
            ("info", info..info + INFO_SIZE as u32),
            ("cmdline", cstr(rd32(ram, info + 16))),
            ("loader name", cstr(rd32(ram, info + 64))),
            (
                "mmap",
                rd32(ram, info + 48)..rd32(ram, info + 48) + rd32(ram, info + 44),
            ),
        ];
        let (count, list) = (rd32(ram, info + 20), rd32(ram, info + 24));
        if count > 0 {
            v.push(("module list", list..list + 16 * count));
        }
        for i in 0..count {
            let e = list + 16 * i;
            v.push(("module", rd32(ram, e)..rd32(ram, e + 4)));
            v.push(("module string", cstr(rd32(ram, e + 8))));
        }
        v
    }

    fn overlap(a: &Range<u32>, b: &Range<u32>) -> bool {
        a.start < b.end && b.start < a.end
    }

    /// Loader data lies apart from `kernel`, from each other, from the IVT
    /// and BDA and from the firmware area, inside RAM.
    fn assert_placed_apart(ram: &[u8], bi: &BootInfo, kernel: &Range<u32>) {
        let data = loader_data(ram, bi);
        for (i, (what, r)) in data.iter().enumerate() {
            assert!(
                !overlap(r, kernel),
                "{what} {r:x?} overlaps the kernel {kernel:x?}"
            );
            assert!(r.start >= LOW_RESERVED_END, "{what} {r:x?} in the IVT/BDA");
            assert!(
                !overlap(r, &FIRMWARE_AREA),
                "{what} {r:x?} in the firmware area"
            );
            assert!(r.end as usize <= ram.len(), "{what} {r:x?} outside RAM");
            for (other, o) in &data[i + 1..] {
                assert!(!overlap(r, o), "{what} {r:x?} overlaps {other} {o:x?}");
            }
        }
    }

    #[test]
    fn kernel_linked_at_0x8000_loads() {
        // Ends below 0x9000, and up to 0xa84c (which the old fixed loader
        // area 0x8000..0x9f000 refused).
        for end in [0x8800u32, 0x8FFF, 0xA84C, 0x9_FC00] {
            let mut ram = vec![0xEEu8; RAM];
            let k = elf_kernel(0x8000, end - 0x8000 - 28);
            let mods = [Module {
                bytes: vec![7; 100],
                cmdline: "m.bin arg".into(),
            }];
            let bi = load(&mut ram, &k, "k.elf one two", &mods)
                .unwrap_or_else(|e| panic!("kernel 0x8000..{end:#x}: {e}"));
            assert_eq!(bi.entry, 0x800C);
            assert_eq!(bi.kernel_end, end);
            assert_eq!(rd32(&ram, 0x8000), HEADER_MAGIC);
            assert!(
                ram[0x801C..end as usize].iter().all(|&b| b == 0),
                "bss zeroed"
            );
            assert_placed_apart(&ram, &bi, &(0x8000..end));
            // Modules stay at 1 MiB; the info block right after the kernel
            // when conventional memory has room.
            let list = rd32(&ram, bi.info_addr + 24);
            assert_eq!(rd32(&ram, list), 0x10_0000);
            if end < 0x9_F000 {
                assert_eq!(bi.info_addr, end.next_multiple_of(16));
            } else {
                // No room above 0x8000 in conventional memory: the next
                // free room up, after the module.
                assert_eq!(bi.info_addr, 0x10_0070);
            }
            let cmd = rd32(&ram, bi.info_addr + 16) as usize;
            assert_eq!(&ram[cmd..cmd + 14], b"k.elf one two\0");
        }
    }

    #[test]
    fn loader_data_goes_wherever_the_kernel_left_room() {
        // Conventional memory full: the info block goes above the kernel's
        // high segment and the modules, in extended memory.
        let mut ram = vec![0u8; RAM];
        let k = aout_at(0x500, 0x9_FC00);
        let mods = [
            Module {
                bytes: vec![1; 5000],
                cmdline: "a.bin x".into(),
            },
            Module {
                bytes: vec![2; 3],
                cmdline: "b.bin".into(),
            },
        ];
        let bi = load(&mut ram, &k, "cmd", &mods).unwrap();
        assert_placed_apart(&ram, &bi, &(0x500..0x9_FC00));
        let list = rd32(&ram, bi.info_addr + 24);
        assert_eq!(rd32(&ram, list), 0x10_0000);
        assert_eq!(rd32(&ram, list + 16), 0x10_2000);
        // Between the modules: the lowest free room at or above 0x8000.
        assert_eq!(bi.info_addr, 0x10_1390);
        assert_eq!(bi.modules_end, 0x10_2003);
        assert!(ram[0x10_0000..0x10_1388].iter().all(|&b| b == 1));

        // Extended memory full: modules fall back to conventional memory.
        let mut ram = vec![0u8; RAM];
        let k = aout_at(0x10_0000, RAM as u32);
        let bi = load(&mut ram, &k, "cmd", &mods).unwrap();
        assert_placed_apart(&ram, &bi, &(0x10_0000..RAM as u32));
        let list = rd32(&ram, bi.info_addr + 24);
        assert_eq!(rd32(&ram, list), 0x1000);
        assert_eq!(rd32(&ram, list + 16), 0x3000);
        assert_eq!(bi.info_addr, 0x8000);

        // A kernel from 0x500 to the end of RAM, over the firmware area,
        // leaves nothing: the error names the boot information.
        let mut ram = vec![0u8; RAM];
        let k = aout_at(0x500, RAM as u32);
        let r = load(&mut ram, &k, "", &[]);
        assert!(
            matches!(&r, Err(MultibootError::NoRoom { what, largest: 0, .. }) if what.contains("boot information")),
            "{r:?}"
        );
        assert!(r
            .unwrap_err()
            .to_string()
            .starts_with("no room for the boot information"));
        assert!(ram.iter().all(|&b| b == 0), "nothing written");
    }

    #[test]
    fn modules_that_cannot_be_placed_are_refused() {
        // Extended memory taken by the kernel; conventional memory holds
        // 0x500..0x9fc00 less what the first module takes.
        let mut ram = vec![0u8; RAM];
        let k = aout_at(0x10_0000, RAM as u32);
        let mods = [
            Module {
                bytes: vec![1; 0x8_0000],
                cmdline: "big.bin a=1".into(),
            },
            Module {
                bytes: vec![2; 0x2_0000],
                cmdline: "second.bin b=2".into(),
            },
        ];
        let r = load(&mut ram, &k, "", &mods);
        let Err(e @ MultibootError::NoRoom { .. }) = &r else {
            panic!("{r:?}");
        };
        let msg = e.to_string();
        assert!(
            msg.starts_with("no room for module 1 (\"second.bin b=2\")"),
            "{msg}"
        );
        assert!(msg.contains("the largest is 0x1ec00 bytes"), "{msg}");
        assert!(ram.iter().all(|&b| b == 0), "nothing written");
        // The first alone fits.
        assert!(load(&mut ram, &k, "", &mods[..1]).is_ok());
    }

    #[test]
    fn module_lists_parse_as_qemu_does() {
        let specs = |l: &str| {
            parse_module_list(l)
                .unwrap()
                .into_iter()
                .map(|s| (s.path, s.cmdline))
                .collect::<Vec<_>>()
        };
        let own = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(specs("a.bin"), own(&[("a.bin", "a.bin")]));
        assert_eq!(
            specs("dir/a.bin x=1 y,b.bin"),
            own(&[("dir/a.bin", "dir/a.bin x=1 y"), ("b.bin", "b.bin")])
        );
        assert_eq!(
            specs("a.bin list=1,,2,,,b.bin  two  spaces"),
            own(&[
                ("a.bin", "a.bin list=1,2,"),
                ("b.bin", "b.bin  two  spaces")
            ])
        );
        assert_eq!(
            specs("we,,ird.bin z"),
            own(&[("we,ird.bin", "we,ird.bin z")])
        );
        for bad in ["", ",", "a.bin,", ",a.bin", "a.bin, b.bin", " a.bin"] {
            assert!(
                matches!(
                    parse_module_list(bad),
                    Err(ModuleListError::EmptyPath { .. })
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            kernel_cmdline("roms/build/k.elf", "a b"),
            "roms/build/k.elf a b"
        );
        assert_eq!(kernel_cmdline("k.elf", ""), "k.elf ");
    }

    #[test]
    fn modules_are_read_by_their_first_word() {
        let mut asked = Vec::new();
        let mods = read_modules("one.bin p=1,,2,two.bin", |p| {
            asked.push(p.to_string());
            Ok(p.as_bytes().to_vec())
        })
        .unwrap();
        assert_eq!(asked, ["one.bin", "two.bin"]);
        assert_eq!(mods[0].bytes, b"one.bin");
        assert_eq!(mods[0].cmdline, "one.bin p=1,2");
        assert_eq!(mods[1].cmdline, "two.bin");
        let e = read_modules("one.bin,missing.bin x", |p| {
            if p == "one.bin" {
                Ok(vec![])
            } else {
                Err(std::io::Error::from(std::io::ErrorKind::NotFound))
            }
        })
        .unwrap_err();
        assert!(matches!(e, ModuleListError::Read { index: 1, .. }));
        assert!(
            e.to_string()
                .starts_with("reading module 1 (missing.bin): "),
            "{e}"
        );
    }
}
