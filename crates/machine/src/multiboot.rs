//! Multiboot v1 loader (the Multiboot Specification 0.6.96).
//!
//! [`load`] finds the header in the first 8 KiB of the image, validates it,
//! copies the kernel into RAM (from its ELF32 program headers, or from the
//! a.out-kludge address fields when header flag 16 is set), places modules
//! after the kernel, and builds the boot information structure. The machine
//! then sets the entry state (see [`BootInfo`]). Every malformed input is a
//! [`MultibootError`]; nothing here panics on guest-supplied data.
//!
//! Loader data (the info structure, memory map, strings, module list) lives
//! in [`LOADER_AREA`], conventional memory the kernel must not load into.

use std::ops::Range;
use thiserror::Error;

/// The magic value in the kernel's header.
pub const HEADER_MAGIC: u32 = 0x1BAD_B002;
/// The value in EAX when the kernel is entered.
pub const BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;
/// How far into the image the header may start.
pub const HEADER_SEARCH: usize = 8192;
/// Physical memory the loader keeps its data in.
pub const LOADER_AREA: Range<u32> = 0x8000..0x9_F000;

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
    /// First byte after the last module (equal to `kernel_end` without modules).
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
    /// Something overlaps the loader's own data area.
    #[error("{what} at {start:#x}..{end:#x} overlaps the loader data area 0x8000..0x9f000")]
    OverlapsLoader {
        /// What was being placed.
        what: String,
        /// First address.
        start: u64,
        /// One past the last address.
        end: u64,
    },
    /// The command lines and module list do not fit the loader area.
    #[error("command lines and module list are too large for the loader area")]
    InfoTooLarge,
    /// RAM is too small for a Multiboot machine.
    #[error("RAM of {0} KiB is too small: Multiboot needs at least 2 MiB")]
    RamTooSmall(u64),
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

fn check_place(what: impl Fn() -> String, start: u64, len: u64, ram: usize) -> Result<()> {
    let end = start + len;
    if end > ram as u64 {
        return Err(MultibootError::OutsideRam {
            what: what(),
            start,
            end,
            ram: ram as u64 / 1024,
        });
    }
    if start < u64::from(LOADER_AREA.end) && end > u64::from(LOADER_AREA.start) {
        return Err(MultibootError::OverlapsLoader {
            what: what(),
            start,
            end,
        });
    }
    Ok(())
}

/// A bump allocator over the loader area.
struct Area<'a> {
    ram: &'a mut [u8],
    next: u32,
}

impl Area<'_> {
    fn alloc(&mut self, bytes: &[u8], align: u32) -> Result<u32> {
        let at = self.next.next_multiple_of(align);
        let end = at as u64 + bytes.len() as u64;
        if end > u64::from(LOADER_AREA.end) {
            return Err(MultibootError::InfoTooLarge);
        }
        self.ram[at as usize..end as usize].copy_from_slice(bytes);
        self.next = end as u32;
        Ok(at)
    }
    fn cstr(&mut self, s: &str) -> Result<u32> {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.alloc(&v, 1)
    }
}

/// Loads the Multiboot kernel `img` into `ram`, with its command line and
/// modules, and builds the boot information. RAM below [`LOADER_AREA`]'s end
/// that the loader uses is overwritten; the rest of RAM is left alone.
pub fn load(ram: &mut [u8], img: &[u8], cmdline: &str, modules: &[Module]) -> Result<BootInfo> {
    if ram.len() < 2 << 20 {
        return Err(MultibootError::RamTooSmall(ram.len() as u64 / 1024));
    }
    let h = find_header(img)?;
    let (segs, entry) = match h.addrs {
        Some(a) => plan_aout(img, &h, a)?,
        None => plan_elf(img)?,
    };
    // Check everything before writing anything.
    let mut kernel_end = 0u64;
    for (i, s) in segs.iter().enumerate() {
        let what = || format!("kernel segment {i}");
        check_place(what, u64::from(s.paddr), u64::from(s.memsz), ram.len())?;
        kernel_end = kernel_end.max(u64::from(s.paddr) + u64::from(s.memsz));
    }
    if u64::from(entry) >= ram.len() as u64 {
        return Err(MultibootError::OutsideRam {
            what: "the entry point".into(),
            start: u64::from(entry),
            end: u64::from(entry) + 1,
            ram: ram.len() as u64 / 1024,
        });
    }
    let mut mod_at = kernel_end.max(1 << 20).next_multiple_of(4096);
    let mut mod_ranges = Vec::new();
    for (i, m) in modules.iter().enumerate() {
        let len = m.bytes.len() as u64;
        check_place(|| format!("module {i}"), mod_at, len, ram.len())?;
        mod_ranges.push(mod_at..mod_at + len);
        mod_at = (mod_at + len).next_multiple_of(4096);
    }
    for s in &segs {
        let dst = s.paddr as usize;
        let n = s.file.len();
        ram[dst..dst + n].copy_from_slice(&img[s.file.clone()]);
        ram[dst + n..dst + s.memsz as usize].fill(0);
    }
    for (m, r) in modules.iter().zip(&mod_ranges) {
        ram[r.start as usize..r.end as usize].copy_from_slice(&m.bytes);
    }
    let ram_len = ram.len() as u64;
    let mut area = Area {
        ram,
        next: LOADER_AREA.start + 0x100,
    };
    // Memory map: conventional memory, EBDA, BIOS area, extended memory.
    let mut mmap = Vec::new();
    let ram_top = ram_len.min(0xFFFF_F000);
    for (base, len, ty) in [
        (0u64, 0x9_FC00u64, 1u32),
        (0x9_FC00, 0x400, 2),
        (0xF_0000, 0x1_0000, 2),
        (0x10_0000, ram_top - 0x10_0000, 1),
    ] {
        mmap.extend(20u32.to_le_bytes());
        mmap.extend(base.to_le_bytes());
        mmap.extend(len.to_le_bytes());
        mmap.extend(ty.to_le_bytes());
    }
    let mmap_addr = area.alloc(&mmap, 4)?;
    let name_addr = area.cstr("morph86")?;
    let cmdline_addr = area.cstr(cmdline)?;
    let mut mods = Vec::new();
    for (m, r) in modules.iter().zip(&mod_ranges) {
        let s = area.cstr(&m.cmdline)?;
        mods.extend((r.start as u32).to_le_bytes());
        mods.extend((r.end as u32).to_le_bytes());
        mods.extend(s.to_le_bytes());
        mods.extend(0u32.to_le_bytes());
    }
    let mods_addr = if mods.is_empty() {
        0
    } else {
        area.alloc(&mods, 4)?
    };
    let mut info = [0u32; 22];
    info[0] = I_MEM | I_CMDLINE | I_MODS | I_MMAP | I_LOADER_NAME;
    info[1] = 639;
    info[2] = ((ram_top - 0x10_0000) / 1024) as u32;
    info[3] = 0xFFFF_FFFF; // boot_device: not set (flag bit 1 clear)
    info[4] = cmdline_addr;
    info[5] = modules.len() as u32;
    info[6] = mods_addr;
    info[11] = mmap.len() as u32;
    info[12] = mmap_addr;
    info[16] = name_addr;
    let info_addr = LOADER_AREA.start;
    let bytes: Vec<u8> = info.iter().flat_map(|v| v.to_le_bytes()).collect();
    area.ram[info_addr as usize..info_addr as usize + bytes.len()].copy_from_slice(&bytes);
    Ok(BootInfo {
        entry,
        info_addr,
        kernel_end: kernel_end as u32,
        modules_end: mod_ranges
            .last()
            .map_or(kernel_end as u32, |r| r.end as u32),
    })
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
        let (mlen, maddr) = (rd32(&ram, info + 44), rd32(&ram, info + 48));
        assert_eq!(mlen, 4 * 24);
        let last = maddr + 3 * 24;
        assert_eq!(rd32(&ram, last), 20);
        assert_eq!(rd32(&ram, last + 4), 0x10_0000);
        assert_eq!(rd32(&ram, last + 12), RAM as u32 - 0x10_0000);
        assert_eq!(rd32(&ram, last + 20), 1);
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
        // Segments outside RAM or over the loader's data.
        for paddr in [0x3F_FFF0u32, 0x9000, 0xFFFF_F000] {
            let k = elf_kernel(paddr, 0x100);
            let r = load(&mut ram, &k, "", &[]);
            assert!(
                matches!(
                    r,
                    Err(MultibootError::OutsideRam { .. } | MultibootError::OverlapsLoader { .. })
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
    fn module_outside_ram_is_refused() {
        let mut ram = vec![0u8; RAM];
        let m = Module {
            bytes: vec![0; RAM],
            cmdline: String::new(),
        };
        assert!(matches!(
            load(&mut ram, &aout_kernel(&[0xF4], 0), "", &[m]),
            Err(MultibootError::OutsideRam { .. })
        ));
    }
}
