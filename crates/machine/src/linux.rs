//! Linux boot protocol loader: the 32-bit entry of a bzImage
//! (`Documentation/x86/boot.rst`, protocol 2.02 and later).
//!
//! [`load_linux`] parses the real-mode setup header, copies the
//! protected-mode kernel to 1 MiB, places the command line and the initrd,
//! and builds `boot_params` (the "zero page") with the setup header copied
//! in, an e820 memory map and an empty `screen_info` (no VGA console: the
//! guest is expected to use a serial console). It also writes a GDT with the
//! flat `__BOOT_CS` (0x10) and `__BOOT_DS` (0x18) descriptors the protocol
//! requires; [`apply_entry`] then puts a CPU into the entry state.
//!
//! Every malformed input is a [`LinuxError`]; nothing here panics on
//! guest-supplied data. Nothing is written to RAM until every check passed.
//!
//! # Memory layout (the [`LinuxLayout`] defaults)
//!
//! | what | where |
//! |---|---|
//! | GDT (4 descriptors) | 0x500..0x520 |
//! | zero page (`boot_params`) | 0x7000..0x8000 |
//! | command line | 0x20000, up to `cmdline_size` + 1 bytes |
//! | protected-mode kernel | 0x100000 |
//! | the kernel's decompression area | up to `pref_address` + `init_size` (protocol 2.10+) |
//! | initrd | as high as possible below `initrd_addr_max` and the first firmware region, 4 KiB aligned |
//! | firmware tables (ACPI...) | [`LinuxLayout::firmware`], carved out of RAM in the e820 map |
//!
//! Debian 12's i386 "686" kernel (protocol 2.15, relocatable, `pref_address`
//! 16 MiB, `init_size` about 16 MiB) needs RAM up to about 32 MiB for
//! itself, plus the initrd above that.
//!
//! # Wiring
//!
//! ```no_run
//! use morph86_machine::{acpi, linux, mptable};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (kernel, initrd) = (std::fs::read("guest/bzImage")?, std::fs::read("guest/initramfs.cpio.gz")?);
//! let mut ram = vec![0u8; 128 << 20];
//! let acpi_cfg = acpi::AcpiConfig::for_ram(ram.len() as u32);
//! let tables = acpi::build_acpi(&mut ram, &acpi_cfg)?;
//! mptable::build_mptable(&mut ram, &mptable::MpConfig::default())?;
//! let layout = linux::LinuxLayout::with_acpi(&tables);
//! let entry = linux::load_linux(&mut ram, &kernel, Some(&initrd), "console=ttyS0", &layout)?;
//! let mut cpu = morph86_cpu::CpuState::reset();
//! linux::apply_entry(&mut cpu, &entry);
//! # Ok(())
//! # }
//! ```

use morph86_cpu::state::{attr, reg, TableReg};
use morph86_cpu::{CpuState, SegReg, Segment};
use std::ops::Range;
use thiserror::Error;

/// Where the protected-mode kernel is loaded (and entered).
pub const KERNEL_ADDR: u32 = 0x10_0000;
/// `__BOOT_CS`: the flat code selector at entry.
pub const BOOT_CS: u16 = 0x10;
/// `__BOOT_DS`: the flat data selector at entry (DS, ES, FS, GS, SS).
pub const BOOT_DS: u16 = 0x18;
/// The oldest protocol this loader accepts (2.02: `cmd_line_ptr`).
pub const MIN_PROTOCOL: u16 = 0x0202;
/// `type_of_loader` value: a loader without an assigned ID.
pub const LOADER_TYPE_UNDEFINED: u8 = 0xFF;
/// Most e820 entries `boot_params` can hold.
pub const E820_MAX: usize = 128;
/// Size of `boot_params`.
pub const ZERO_PAGE_SIZE: usize = 4096;
/// Size of the GDT the loader writes (null, unused, `__BOOT_CS`, `__BOOT_DS`).
pub const GDT_SIZE: u32 = 32;

/// `loadflags` bit 0: the protected-mode code is loaded at 0x100000.
pub const LOADED_HIGH: u8 = 1 << 0;

/// Offsets in `boot_params` and in the kernel file's setup header (which
/// sits at the same offsets in both).
mod off {
    pub const ACPI_RSDP_ADDR: usize = 0x070;
    pub const ALT_MEM_K: usize = 0x1E0;
    pub const E820_ENTRIES: usize = 0x1E8;
    pub const HDR: usize = 0x1F1; // setup_sects
    pub const SYSSIZE: usize = 0x1F4;
    pub const JUMP: usize = 0x200;
    pub const MAGIC: usize = 0x202;
    pub const VERSION: usize = 0x206;
    pub const TYPE_OF_LOADER: usize = 0x210;
    pub const LOADFLAGS: usize = 0x211;
    pub const CODE32_START: usize = 0x214;
    pub const RAMDISK_IMAGE: usize = 0x218;
    pub const RAMDISK_SIZE: usize = 0x21C;
    pub const CMD_LINE_PTR: usize = 0x228;
    pub const INITRD_ADDR_MAX: usize = 0x22C;
    pub const KERNEL_ALIGNMENT: usize = 0x230;
    pub const RELOCATABLE: usize = 0x234;
    pub const CMDLINE_SIZE: usize = 0x238;
    pub const PREF_ADDRESS: usize = 0x258;
    pub const INIT_SIZE: usize = 0x260;
    /// One past the largest setup header `boot_params` has room for.
    pub const HDR_LIMIT: usize = 0x290;
    pub const E820_TABLE: usize = 0x2D0;
}

/// How many bytes the protected-mode kernel may fall short of
/// `syssize * 16`: `syssize` is its length in paragraphs rounded up, so a
/// complete file can end up to 15 bytes early. The missing bytes are loaded
/// as zeros.
pub const SYSSIZE_SLACK: u64 = 15;

/// The setup header's magic, "HdrS".
pub const HDR_MAGIC: [u8; 4] = *b"HdrS";

pub use crate::firmware::e820::{E820Entry, E820Type};

/// Where the loader puts its data, and what firmware occupies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinuxLayout {
    /// The GDT ([`GDT_SIZE`] bytes). Must lie in conventional memory.
    pub gdt_addr: u32,
    /// `boot_params` ([`ZERO_PAGE_SIZE`] bytes). Must lie in conventional memory.
    pub zero_page_addr: u32,
    /// The command line. Must lie in conventional memory.
    pub cmdline_addr: u32,
    /// Regions inside RAM that firmware tables occupy (ACPI tables as
    /// [`E820Type::Acpi`], the FACS as [`E820Type::Nvs`]...). They are carved
    /// out of the RAM entries of the e820 map, and neither the kernel nor
    /// the initrd is placed over them.
    pub firmware: Vec<E820Entry>,
    /// The ACPI RSDP's address for `boot_params.acpi_rsdp_addr`; `None`
    /// leaves it 0 and the kernel scans 0xE0000..0x100000 for it.
    pub acpi_rsdp: Option<u32>,
}

impl Default for LinuxLayout {
    fn default() -> Self {
        LinuxLayout {
            gdt_addr: 0x500,
            zero_page_addr: 0x7000,
            cmdline_addr: 0x2_0000,
            firmware: Vec::new(),
            acpi_rsdp: None,
        }
    }
}

impl LinuxLayout {
    /// The default layout with the regions of `tables` reserved and their
    /// RSDP passed in `boot_params`.
    pub fn with_acpi(tables: &crate::firmware::acpi::AcpiTables) -> LinuxLayout {
        LinuxLayout {
            firmware: tables.e820_entries(),
            acpi_rsdp: Some(tables.rsdp),
            ..LinuxLayout::default()
        }
    }
}

/// The fields of a bzImage's setup header the loader uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetupHeader {
    /// Boot protocol version (e.g. 0x020F for 2.15).
    pub version: u16,
    /// Real-mode setup sectors (a 0 in the file already replaced by 4).
    pub setup_sects: u32,
    /// `loadflags`.
    pub loadflags: u8,
    /// Size of the protected-mode code in 16-byte paragraphs.
    pub syssize: u32,
    /// The protected-mode entry the kernel was linked for.
    pub code32_start: u32,
    /// Highest address the initrd may occupy (0x37FFFFFF before 2.03).
    pub initrd_addr_max: u32,
    /// Physical alignment the kernel wants (2.05+; 0 before).
    pub kernel_alignment: u32,
    /// Whether the kernel is relocatable (2.05+).
    pub relocatable: bool,
    /// Longest command line without its NUL (255 before 2.06).
    pub cmdline_size: u32,
    /// Preferred load address (2.10+; 0 before).
    pub pref_address: u64,
    /// Memory the kernel needs from its runtime start before it reads the
    /// memory map (2.10+; 0 before).
    pub init_size: u32,
    /// One past the setup header's last byte in the file.
    pub header_end: usize,
}

impl SetupHeader {
    /// File offset of the protected-mode kernel.
    pub fn kernel_offset(&self) -> usize {
        (self.setup_sects as usize + 1) * 512
    }

    /// Length of the protected-mode kernel the header declares:
    /// `syssize` paragraphs of 16 bytes.
    pub fn declared_len(&self) -> u64 {
        u64::from(self.syssize) * 16
    }

    /// One past the last byte the kernel needs before it reads the memory
    /// map, when loaded at [`KERNEL_ADDR`] with `kernel_len` bytes: the
    /// loaded image and, from protocol 2.10, its decompression area
    /// (`init_size` bytes from where it will run: the load address rounded
    /// up to `kernel_alignment` but not below `pref_address` when
    /// relocatable, `pref_address` when not).
    pub fn runtime_end(&self, kernel_len: u64) -> u64 {
        let image_end = u64::from(KERNEL_ADDR) + kernel_len;
        if self.version < 0x020A {
            return image_end;
        }
        let run_at = if self.relocatable {
            let align = u64::from(self.kernel_alignment.max(1));
            u64::from(KERNEL_ADDR)
                .div_ceil(align)
                .saturating_mul(align)
                .max(self.pref_address)
        } else {
            self.pref_address.max(u64::from(KERNEL_ADDR))
        };
        image_end.max(run_at.saturating_add(u64::from(self.init_size)))
    }
}

/// Where everything was put and how to enter the kernel.
///
/// The entry state ([`apply_entry`]): 32-bit protected mode, paging off,
/// interrupts off; GDTR = `gdt`, limit 0x1F; a null IDT; CS = [`BOOT_CS`] and DS,
/// ES, FS, GS, SS = [`BOOT_DS`], all flat 4 GiB; EIP = `entry`; ESI =
/// `zero_page`; EBP, EDI, EBX and the other registers 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinuxEntry {
    /// Entry point: the protected-mode kernel's load address.
    pub entry: u32,
    /// `boot_params`' address (ESI at entry).
    pub zero_page: u32,
    /// The GDT's address.
    pub gdt: u32,
    /// The command line's address.
    pub cmdline: u32,
    /// The loaded protected-mode kernel (`syssize * 16` bytes, or the
    /// file's protected-mode part if that is longer).
    pub kernel: Range<u32>,
    /// The initrd, if any.
    pub initrd: Option<Range<u32>>,
    /// The e820 map handed to the kernel.
    pub e820: Vec<E820Entry>,
    /// The parsed setup header.
    pub header: SetupHeader,
}

/// Why a kernel could not be loaded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LinuxError {
    /// No "HdrS" magic at 0x202.
    #[error("not a Linux bzImage: no setup header magic \"HdrS\" at offset 0x202")]
    NotBzImage,
    /// The boot protocol predates 2.02.
    #[error("Linux boot protocol {}.{:02} is too old: this loader needs 2.02 or later", .0 >> 8, .0 & 0xFF)]
    ProtocolTooOld(u16),
    /// A zImage (loaded at 0x10000) rather than a bzImage.
    #[error("the kernel is a zImage (loadflags LOADED_HIGH clear): only bzImages are supported")]
    NotLoadedHigh,
    /// The file ends inside something it declares.
    #[error(
        "truncated kernel image: {what} needs bytes {start:#x}..{end:#x} but the file has {len:#x}"
    )]
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
    /// The command line is longer than the kernel accepts.
    #[error("the command line is {len} bytes; this kernel accepts at most {max}")]
    CmdlineTooLong {
        /// Its length.
        len: usize,
        /// `cmdline_size`.
        max: u32,
    },
    /// The command line contains a NUL byte.
    #[error("the command line contains a NUL byte")]
    CmdlineNul,
    /// The kernel with its decompression area does not fit in RAM.
    #[error("the kernel needs RAM up to {needed:#x} (image and init_size area) but usable RAM from 1 MiB ends at {usable_end:#x}")]
    KernelTooLarge {
        /// One past the last byte the kernel needs.
        needed: u64,
        /// End of the RAM region starting at 1 MiB.
        usable_end: u64,
    },
    /// The initrd fits nowhere.
    #[error("the initrd ({len} bytes) does not fit in RAM between the kernel (ends {kernel_end:#x}) and {limit:#x} (initrd_addr_max or the end of usable RAM)")]
    InitrdTooLarge {
        /// Its length.
        len: u64,
        /// End of the kernel's runtime area.
        kernel_end: u64,
        /// The highest end it could have.
        limit: u64,
    },
    /// The layout or the RAM size is unusable.
    #[error("bad memory layout: {0}")]
    BadLayout(String),
}

type Result<T> = std::result::Result<T, LinuxError>;

fn slice<'a>(img: &'a [u8], off: u64, len: u64, what: &'static str) -> Result<&'a [u8]> {
    let end = off.checked_add(len);
    match end {
        Some(end) if end <= img.len() as u64 => Ok(&img[off as usize..end as usize]),
        _ => Err(LinuxError::Truncated {
            what,
            start: off,
            end: end.unwrap_or(u64::MAX),
            len: img.len(),
        }),
    }
}

fn u8_at(img: &[u8], off: usize) -> u8 {
    img.get(off).copied().unwrap_or(0)
}

fn u16_at(img: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([u8_at(img, off), u8_at(img, off + 1)])
}

fn u32_at(img: &[u8], off: usize) -> u32 {
    u32::from(u16_at(img, off)) | u32::from(u16_at(img, off + 2)) << 16
}

fn u64_at(img: &[u8], off: usize) -> u64 {
    u64::from(u32_at(img, off)) | u64::from(u32_at(img, off + 4)) << 32
}

/// Parses and validates a bzImage's setup header.
pub fn parse_header(img: &[u8]) -> Result<SetupHeader> {
    if img.len() < off::MAGIC + 4 || img[off::MAGIC..off::MAGIC + 4] != HDR_MAGIC {
        return Err(LinuxError::NotBzImage);
    }
    let version = u16_at(img, off::VERSION);
    if version < MIN_PROTOCOL {
        return Err(LinuxError::ProtocolTooOld(version));
    }
    // The header ends where the jump at 0x200 (a short JMP) lands.
    let header_end = off::MAGIC + usize::from(u8_at(img, off::JUMP + 1));
    let needed = header_end.max(off::INITRD_ADDR_MAX + 4);
    slice(img, 0, needed as u64, "the setup header")?;
    let field = |o: usize, v: u16| version >= v && o < header_end;
    let loadflags = img[off::LOADFLAGS];
    if loadflags & LOADED_HIGH == 0 {
        return Err(LinuxError::NotLoadedHigh);
    }
    let setup_sects = match img[off::HDR] {
        0 => 4,
        n => u32::from(n),
    };
    let h = SetupHeader {
        version,
        setup_sects,
        loadflags,
        syssize: u32_at(img, off::SYSSIZE),
        code32_start: u32_at(img, off::CODE32_START),
        initrd_addr_max: if field(off::INITRD_ADDR_MAX, 0x0203) {
            u32_at(img, off::INITRD_ADDR_MAX)
        } else {
            0x37FF_FFFF
        },
        kernel_alignment: if field(off::KERNEL_ALIGNMENT, 0x0205) {
            u32_at(img, off::KERNEL_ALIGNMENT)
        } else {
            0
        },
        relocatable: field(off::RELOCATABLE, 0x0205) && img[off::RELOCATABLE] != 0,
        cmdline_size: if field(off::CMDLINE_SIZE, 0x0206) {
            u32_at(img, off::CMDLINE_SIZE)
        } else {
            255
        },
        pref_address: if field(off::PREF_ADDRESS, 0x020A) {
            u64_at(img, off::PREF_ADDRESS)
        } else {
            0
        },
        init_size: if field(off::INIT_SIZE, 0x020A) {
            u32_at(img, off::INIT_SIZE)
        } else {
            0
        },
        header_end,
    };
    // The real-mode setup must be complete and the protected-mode kernel
    // must hold what syssize declares. syssize counts 16-byte paragraphs
    // rounded up (the kernel's build tool writes `(size + 15) / 16`), so
    // the file may end up to 15 bytes before `syssize * 16`: bootloaders
    // accept that and the loader zero-fills the rest.
    let koff = h.kernel_offset() as u64;
    slice(img, 0, koff, "the real-mode setup (setup_sects)")?;
    let declared = h.declared_len();
    let needed = declared.saturating_sub(SYSSIZE_SLACK).max(1);
    if let Err(e) = slice(img, koff, needed, "the protected-mode kernel (syssize)") {
        // Report the whole declared extent, which is what the header says.
        return Err(match e {
            LinuxError::Truncated { what, start, .. } => LinuxError::Truncated {
                what,
                start,
                end: start.saturating_add(declared.max(1)),
                len: img.len(),
            },
            other => other,
        });
    }
    Ok(h)
}

/// Builds the e820 map for `ram_size` bytes of RAM with `firmware` regions
/// carved out of it (the board's one map,
/// [`crate::firmware::e820::e820_map`]), and checks that `boot_params` can
/// hold it.
pub fn e820_map(ram_size: u64, firmware: &[E820Entry]) -> Result<Vec<E820Entry>> {
    let map = crate::firmware::e820::e820_map(ram_size, firmware)
        .map_err(|e| LinuxError::BadLayout(e.0))?;
    if map.len() > E820_MAX {
        return Err(LinuxError::BadLayout(format!(
            "{} e820 entries; boot_params holds {E820_MAX}",
            map.len()
        )));
    }
    Ok(map)
}

fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

/// True when `img` carries a Linux boot protocol setup header.
pub fn is_bzimage(img: &[u8]) -> bool {
    img.get(0x202..0x206) == Some(&HDR_MAGIC[..])
}

/// Loads the bzImage `kernel` (with `initrd` and `cmdline`) into `ram`
/// following `layout`, and builds `boot_params`, the e820 map and the GDT.
/// On error RAM is left untouched.
pub fn load_linux(
    ram: &mut [u8],
    kernel: &[u8],
    initrd: Option<&[u8]>,
    cmdline: &str,
    layout: &LinuxLayout,
) -> Result<LinuxEntry> {
    let h = parse_header(kernel)?;
    if cmdline.len() > h.cmdline_size as usize {
        return Err(LinuxError::CmdlineTooLong {
            len: cmdline.len(),
            max: h.cmdline_size,
        });
    }
    if cmdline.as_bytes().contains(&0) {
        return Err(LinuxError::CmdlineNul);
    }
    let ram_size = ram.len() as u64;
    let map = e820_map(ram_size, &layout.firmware)?;

    // The loader's own data: in conventional memory, apart from each other
    // and from firmware regions.
    let low: [(&str, Range<u64>); 3] = [
        (
            "the GDT",
            u64::from(layout.gdt_addr)..u64::from(layout.gdt_addr) + u64::from(GDT_SIZE),
        ),
        (
            "the zero page",
            u64::from(layout.zero_page_addr)
                ..u64::from(layout.zero_page_addr) + ZERO_PAGE_SIZE as u64,
        ),
        (
            "the command line",
            u64::from(layout.cmdline_addr)
                ..u64::from(layout.cmdline_addr) + cmdline.len() as u64 + 1,
        ),
    ];
    for (i, (what, r)) in low.iter().enumerate() {
        if r.end > 0x9_FC00 {
            return Err(LinuxError::BadLayout(format!(
                "{what} at {:#x}..{:#x} is not in conventional memory (below 0x9fc00)",
                r.start, r.end
            )));
        }
        if let Some((other, _)) = low[i + 1..].iter().find(|(_, o)| overlaps(r, o)) {
            return Err(LinuxError::BadLayout(format!("{what} overlaps {other}")));
        }
        if let Some(f) = layout
            .firmware
            .iter()
            .find(|f| overlaps(r, &(f.addr..f.end())))
        {
            return Err(LinuxError::BadLayout(format!(
                "{what} overlaps the firmware region at {:#x}..{:#x}",
                f.addr,
                f.end()
            )));
        }
    }

    // The kernel and its decompression area must fit in the RAM region
    // that starts at 1 MiB.
    let kimg = &kernel[h.kernel_offset()..];
    // What is loaded: the file's protected-mode part, zero-filled up to
    // syssize * 16 when the file ends inside the last paragraph.
    let kernel_len = (kimg.len() as u64).max(h.declared_len());
    let usable_end = map
        .iter()
        .find(|e| e.kind == E820Type::Ram && e.addr == u64::from(KERNEL_ADDR))
        .map_or(u64::from(KERNEL_ADDR), E820Entry::end);
    let runtime_end = h.runtime_end(kernel_len);
    if runtime_end > usable_end {
        return Err(LinuxError::KernelTooLarge {
            needed: runtime_end,
            usable_end,
        });
    }

    // The initrd: as high as possible in RAM above the kernel and below
    // initrd_addr_max, page-aligned.
    let initrd_at = match initrd {
        None => None,
        Some(rd) => {
            let len = rd.len() as u64;
            let max_end = u64::from(h.initrd_addr_max) + 1;
            let place = map
                .iter()
                .rev()
                .filter(|e| e.kind == E820Type::Ram && e.addr >= u64::from(KERNEL_ADDR))
                .find_map(|e| {
                    let top = e.end().min(max_end);
                    let at = top.checked_sub(len)? & !0xFFF;
                    (at >= e.addr.max(runtime_end)).then_some(at)
                });
            match place {
                Some(at) => Some(at),
                None => {
                    return Err(LinuxError::InitrdTooLarge {
                        len,
                        kernel_end: runtime_end,
                        limit: max_end.min(
                            map.iter()
                                .filter(|e| e.kind == E820Type::Ram)
                                .map(E820Entry::end)
                                .max()
                                .unwrap_or(0),
                        ),
                    })
                }
            }
        }
    };

    // Everything checked: write.
    let kaddr = KERNEL_ADDR as usize;
    ram[kaddr..kaddr + kimg.len()].copy_from_slice(kimg);
    ram[kaddr + kimg.len()..kaddr + kernel_len as usize].fill(0);
    let initrd_range = match (initrd, initrd_at) {
        (Some(rd), Some(at)) => {
            ram[at as usize..at as usize + rd.len()].copy_from_slice(rd);
            Some(at as u32..(at as usize + rd.len()) as u32)
        }
        _ => None,
    };
    let c = layout.cmdline_addr as usize;
    ram[c..c + cmdline.len()].copy_from_slice(cmdline.as_bytes());
    ram[c + cmdline.len()] = 0;

    let g = layout.gdt_addr as usize;
    let gdt: [u64; 4] = [0, 0, 0x00CF_9B00_0000_FFFF, 0x00CF_9300_0000_FFFF];
    for (i, d) in gdt.iter().enumerate() {
        ram[g + 8 * i..g + 8 * i + 8].copy_from_slice(&d.to_le_bytes());
    }

    let z = layout.zero_page_addr as usize;
    let zp = &mut ram[z..z + ZERO_PAGE_SIZE];
    zp.fill(0);
    let hdr_end = h.header_end.min(off::HDR_LIMIT);
    zp[off::HDR..hdr_end].copy_from_slice(&kernel[off::HDR..hdr_end]);
    let put32 = |zp: &mut [u8], o: usize, v: u32| zp[o..o + 4].copy_from_slice(&v.to_le_bytes());
    zp[off::TYPE_OF_LOADER] = LOADER_TYPE_UNDEFINED;
    put32(zp, off::CODE32_START, KERNEL_ADDR);
    put32(zp, off::CMD_LINE_PTR, layout.cmdline_addr);
    if let Some(r) = &initrd_range {
        put32(zp, off::RAMDISK_IMAGE, r.start);
        put32(zp, off::RAMDISK_SIZE, r.end - r.start);
    }
    if let Some(rsdp) = layout.acpi_rsdp {
        zp[off::ACPI_RSDP_ADDR..off::ACPI_RSDP_ADDR + 8]
            .copy_from_slice(&u64::from(rsdp).to_le_bytes());
    }
    let ram_top_k = map
        .iter()
        .filter(|e| e.kind == E820Type::Ram)
        .map(E820Entry::end)
        .max()
        .unwrap_or(0)
        / 1024;
    put32(zp, off::ALT_MEM_K, ram_top_k.saturating_sub(1024) as u32);
    zp[off::E820_ENTRIES] = map.len() as u8;
    for (i, e) in map.iter().enumerate() {
        let o = off::E820_TABLE + 20 * i;
        zp[o..o + 8].copy_from_slice(&e.addr.to_le_bytes());
        zp[o + 8..o + 16].copy_from_slice(&e.size.to_le_bytes());
        put32(zp, o + 16, e.kind as u32);
    }

    Ok(LinuxEntry {
        entry: KERNEL_ADDR,
        zero_page: layout.zero_page_addr,
        gdt: layout.gdt_addr,
        cmdline: layout.cmdline_addr,
        kernel: KERNEL_ADDR..KERNEL_ADDR + kernel_len as u32,
        initrd: initrd_range,
        e820: map,
        header: h,
    })
}

/// Puts `state` into the 32-bit boot protocol's entry state for `entry`
/// (see [`LinuxEntry`]). The rest of the state (FPU, TSC, debug registers)
/// is left as it is; start from a reset CPU.
pub fn apply_entry(state: &mut CpuState, entry: &LinuxEntry) {
    let flat = |selector: u16, access: u16| Segment {
        base: 0,
        limit: 0xFFFF_FFFF,
        selector,
        attr: access | attr::DB | attr::G,
    };
    for s in SegReg::ALL {
        state.segs[s as usize] = if s == SegReg::Cs {
            flat(BOOT_CS, attr::REAL_CODE)
        } else {
            flat(BOOT_DS, attr::REAL_DATA)
        };
    }
    state.gdtr = TableReg {
        base: entry.gdt,
        limit: GDT_SIZE - 1,
    };
    // A null IDT, as the kernel's own real-mode setup leaves it: an
    // exception before the kernel loads its IDT shuts down.
    state.idtr = TableReg { base: 0, limit: 0 };
    // PE and ET, caches enabled (as a BIOS leaves them), paging off.
    state.cr0 = 0x0000_0011;
    state.cr3 = 0;
    state.cr4 = 0;
    state.eflags = 0x2;
    state.regs = [0; 8];
    state.regs[reg::ESI] = entry.zero_page;
    state.eip = entry.entry;
    state.halted = false;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const MIB: usize = 1 << 20;

    /// A minimal bzImage: a setup header for protocol `version`, `sects`
    /// setup sectors and `pm_len` bytes of protected-mode code.
    fn bzimage(version: u16, sects: u8, pm_len: usize) -> Vec<u8> {
        let setup = (usize::from(if sects == 0 { 4 } else { sects }) + 1) * 512;
        let mut k = vec![0u8; setup + pm_len];
        k[off::HDR] = sects;
        k[off::SYSSIZE..off::SYSSIZE + 4].copy_from_slice(&(pm_len as u32 / 16).to_le_bytes());
        k[0x1FE..0x200].copy_from_slice(&[0x55, 0xAA]);
        k[off::JUMP] = 0xEB;
        k[off::JUMP + 1] = 0x6A; // header ends at 0x26C (2.15)
        k[off::MAGIC..off::MAGIC + 4].copy_from_slice(&HDR_MAGIC);
        k[off::VERSION..off::VERSION + 2].copy_from_slice(&version.to_le_bytes());
        k[off::LOADFLAGS] = LOADED_HIGH;
        k[off::CODE32_START..off::CODE32_START + 4].copy_from_slice(&KERNEL_ADDR.to_le_bytes());
        k[off::INITRD_ADDR_MAX..off::INITRD_ADDR_MAX + 4]
            .copy_from_slice(&0x7FFF_FFFFu32.to_le_bytes());
        k[off::KERNEL_ALIGNMENT..off::KERNEL_ALIGNMENT + 4]
            .copy_from_slice(&0x20_0000u32.to_le_bytes());
        k[off::RELOCATABLE] = 1;
        k[off::CMDLINE_SIZE..off::CMDLINE_SIZE + 4].copy_from_slice(&0x7FFu32.to_le_bytes());
        k[off::PREF_ADDRESS..off::PREF_ADDRESS + 8].copy_from_slice(&0x40_0000u64.to_le_bytes());
        k[off::INIT_SIZE..off::INIT_SIZE + 4].copy_from_slice(&0x40_0000u32.to_le_bytes());
        for (i, b) in k[setup..].iter_mut().enumerate() {
            *b = i as u8 ^ 0x5A;
        }
        k
    }

    fn rd32(ram: &[u8], a: usize) -> u32 {
        u32::from_le_bytes(ram[a..a + 4].try_into().unwrap())
    }

    fn rd64(ram: &[u8], a: usize) -> u64 {
        u64::from_le_bytes(ram[a..a + 8].try_into().unwrap())
    }

    /// Reads the e820 table back out of a zero page.
    fn e820_of(ram: &[u8], zp: usize) -> Vec<(u64, u64, u32)> {
        (0..ram[zp + off::E820_ENTRIES] as usize)
            .map(|i| {
                let o = zp + off::E820_TABLE + 20 * i;
                (rd64(ram, o), rd64(ram, o + 8), rd32(ram, o + 16))
            })
            .collect()
    }

    #[test]
    fn loads_a_synthesized_bzimage() {
        let mut ram = vec![0xCCu8; 16 * MIB];
        let k = bzimage(0x020F, 0, 0x1234);
        let rd = vec![0xA5u8; 10_000];
        let acpi = E820Entry::new(0xFF_0000..0x100_0000, E820Type::Acpi);
        let layout = LinuxLayout {
            firmware: vec![acpi],
            acpi_rsdp: Some(0xF_0000),
            ..LinuxLayout::default()
        };
        let e = load_linux(&mut ram, &k, Some(&rd), "console=ttyS0", &layout).unwrap();
        assert_eq!(e.entry, 0x10_0000);
        assert_eq!(e.header.setup_sects, 4);
        assert_eq!(e.kernel, 0x10_0000..0x10_1234);
        assert_eq!(&ram[0x10_0000..0x10_1234], &k[5 * 512..]);
        // initrd: top of RAM below the ACPI region, page aligned.
        let ir = e.initrd.clone().unwrap();
        assert_eq!(ir.start, (0xFF_0000 - 10_000) & !0xFFF);
        assert_eq!(ir.end - ir.start, 10_000);
        assert!(ram[ir.start as usize..ir.end as usize]
            .iter()
            .all(|&b| b == 0xA5));
        // Zero page.
        let z = e.zero_page as usize;
        assert_eq!(z, 0x7000);
        assert_eq!(&ram[z + off::MAGIC..z + off::MAGIC + 4], b"HdrS");
        assert_eq!(ram[z + off::HDR], 0, "setup_sects copied as in the file");
        assert_eq!(ram[z + off::TYPE_OF_LOADER], 0xFF);
        assert_eq!(ram[z + off::LOADFLAGS] & LOADED_HIGH, LOADED_HIGH);
        assert_eq!(rd32(&ram, z + off::CODE32_START), 0x10_0000);
        assert_eq!(rd32(&ram, z + off::CMD_LINE_PTR), 0x2_0000);
        assert_eq!(&ram[0x2_0000..0x2_000E], b"console=ttyS0\0");
        assert_eq!(rd32(&ram, z + off::RAMDISK_IMAGE), ir.start);
        assert_eq!(rd32(&ram, z + off::RAMDISK_SIZE), 10_000);
        assert_eq!(rd64(&ram, z + off::ACPI_RSDP_ADDR), 0xF_0000);
        assert_eq!(rd32(&ram, z + off::ALT_MEM_K), (0xFF_0000 / 1024) - 1024);
        assert_eq!(ram[z + 0x0F], 0, "orig_video_isVGA");
        assert_eq!(&ram[z..z + 0x40], &[0u8; 0x40], "screen_info empty");
        assert_eq!(ram[z + 0x1EF], 0, "sentinel");
        // Bytes after the copied header stay zero.
        assert!(ram[z + 0x26C..z + 0x290].iter().all(|&b| b == 0));
        let map = e820_of(&ram, z);
        assert_eq!(
            map,
            vec![
                (0, 0x9_FC00, 1),
                (0x9_FC00, 0x400, 2),
                (0xF_0000, 0x1_0000, 2),
                (0x10_0000, 0xEF_0000, 1),
                (0xFF_0000, 0x1_0000, 3),
                (0xFEC0_0000, 0x1000, 2),
                (0xFEE0_0000, 0x1000, 2),
                (0xFFFC_0000, 0x4_0000, 2),
            ]
        );
        // GDT.
        assert_eq!(rd64(&ram, 0x510), 0x00CF_9B00_0000_FFFF);
        assert_eq!(rd64(&ram, 0x518), 0x00CF_9300_0000_FFFF);
        // Entry state.
        let mut s = CpuState::reset();
        apply_entry(&mut s, &e);
        assert_eq!(s.regs[reg::ESI], 0x7000);
        assert_eq!(
            (s.regs[reg::EBX], s.regs[reg::EBP], s.regs[reg::EDI]),
            (0, 0, 0)
        );
        assert_eq!(s.eip, 0x10_0000);
        assert_eq!(s.seg(SegReg::Cs).selector, 0x10);
        assert!(s.seg(SegReg::Cs).is_32());
        for r in [SegReg::Ds, SegReg::Es, SegReg::Ss, SegReg::Fs, SegReg::Gs] {
            assert_eq!(s.seg(r).selector, 0x18);
            assert_eq!(s.seg(r).limit, 0xFFFF_FFFF);
        }
        assert_eq!(s.gdtr.base, 0x500);
        assert_eq!(s.gdtr.limit, 0x1F);
        assert_eq!(s.idtr.limit, 0);
        assert!(s.protected_mode());
        assert_eq!(s.cr0 & 0x8000_0000, 0, "paging off");
        assert_eq!(s.eflags & (1 << 9), 0, "interrupts off");
        assert_eq!(s.cpl(), 0);
    }

    #[test]
    fn old_fields_get_their_defaults() {
        let mut k = bzimage(0x0202, 4, 512);
        k[off::JUMP + 1] = 0x2A; // a 2.02 header ends after cmd_line_ptr, at 0x22C
        let h = parse_header(&k).unwrap();
        assert_eq!(h.cmdline_size, 255);
        assert_eq!(h.initrd_addr_max, 0x37FF_FFFF);
        assert_eq!(
            (h.kernel_alignment, h.relocatable, h.init_size),
            (0, false, 0)
        );
        assert_eq!(h.runtime_end(512), 0x10_0200);
        let mut ram = vec![0u8; 8 * MIB];
        let long = "x".repeat(256);
        assert_eq!(
            load_linux(&mut ram, &k, None, &long, &LinuxLayout::default()),
            Err(LinuxError::CmdlineTooLong { len: 256, max: 255 })
        );
    }

    #[test]
    fn rejects_bad_images() {
        let mut ram = vec![0u8; 16 * MIB];
        let l = LinuxLayout::default();
        let load = |ram: &mut [u8], k: &[u8]| load_linux(ram, k, None, "", &l);
        assert_eq!(load(&mut ram, &[]), Err(LinuxError::NotBzImage));
        assert_eq!(load(&mut ram, &[0x55; 4096]), Err(LinuxError::NotBzImage));
        let mut x = 99u32;
        for len in [1usize, 0x205, 0x206, 0x300, 5000, 70_000] {
            let mut img: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            assert!(load(&mut ram, &img).is_err());
            // Garbage behind a valid magic fails cleanly too.
            if len >= 0x206 {
                img[off::MAGIC..off::MAGIC + 4].copy_from_slice(&HDR_MAGIC);
                let _ = load(&mut ram, &img);
            }
        }
        let old = bzimage(0x0201, 4, 512);
        assert_eq!(
            load(&mut ram, &old),
            Err(LinuxError::ProtocolTooOld(0x0201))
        );
        let mut zimage = bzimage(0x020F, 4, 512);
        zimage[off::LOADFLAGS] = 0;
        assert_eq!(load(&mut ram, &zimage), Err(LinuxError::NotLoadedHigh));
        let k = bzimage(0x020F, 4, 512);
        assert!(load(&mut ram, &k).is_ok());
        // Up to 15 bytes short of syssize * 16 still loads (see
        // `loads_a_file_ending_inside_its_last_paragraph`); anything
        // shorter does not.
        for cut in 0..k.len() - SYSSIZE_SLACK as usize {
            assert!(load(&mut ram, &k[..cut]).is_err(), "cut at {cut} loaded");
        }
        assert!(matches!(
            load(&mut ram, &k[..0x800]),
            Err(LinuxError::Truncated { .. })
        ));
        assert_eq!(
            load_linux(&mut ram, &k, None, "a\0b", &l),
            Err(LinuxError::CmdlineNul)
        );
        let long = "y".repeat(0x800);
        assert!(matches!(
            load_linux(&mut ram, &k, None, &long, &l),
            Err(LinuxError::CmdlineTooLong { max: 0x7FF, .. })
        ));
    }

    #[test]
    fn loads_a_file_ending_inside_its_last_paragraph() {
        let l = LinuxLayout::default();
        // 0x21DE0 bytes declared (syssize 0x21DE), as a real kernel's
        // rounded-up paragraph count would say.
        let full = bzimage(0x020F, 4, 0x2_1DE0);
        let koff = 5 * 512;
        for short in 1..=15usize {
            let k = &full[..full.len() - short];
            let mut ram = vec![0xCCu8; 16 * MIB];
            let e = load_linux(&mut ram, k, None, "", &l)
                .unwrap_or_else(|err| panic!("{short} bytes short: {err}"));
            assert_eq!(e.header.syssize, 0x21DE);
            assert_eq!(e.kernel, 0x10_0000..0x10_0000 + 0x2_1DE0);
            let loaded = &ram[0x10_0000..0x10_0000 + 0x2_1DE0];
            let file_part = 0x2_1DE0 - short;
            assert_eq!(&loaded[..file_part], &full[koff..koff + file_part]);
            assert!(
                loaded[file_part..].iter().all(|&b| b == 0),
                "{short} bytes short: the rest is zero-filled"
            );
        }
    }

    #[test]
    fn a_truly_truncated_file_is_refused() {
        let l = LinuxLayout::default();
        let full = bzimage(0x020F, 4, 0x2_1DE0);
        let mut ram = vec![0u8; 16 * MIB];
        for short in [16usize, 17, 0x100, 0x2_1DE0 - 1] {
            let k = &full[..full.len() - short];
            assert_eq!(
                load_linux(&mut ram, k, None, "", &l),
                Err(LinuxError::Truncated {
                    what: "the protected-mode kernel (syssize)",
                    start: 0xA00,
                    end: 0xA00 + 0x2_1DE0,
                    len: k.len(),
                }),
                "{short} bytes short"
            );
        }
        let err = load_linux(&mut ram, &full[..full.len() - 16], None, "", &l).unwrap_err();
        assert_eq!(
            err.to_string(),
            "truncated kernel image: the protected-mode kernel (syssize) needs bytes \
             0xa00..0x227e0 but the file has 0x227d0"
        );
        // Nothing was written by the failed loads.
        assert!(ram.iter().all(|&b| b == 0));
    }

    #[test]
    fn oversized_kernel_and_initrd_are_refused() {
        let l = LinuxLayout::default();
        // init_size area: 4 MiB + 4 MiB = 8 MiB needed.
        let k = bzimage(0x020F, 4, 512);
        let mut small = vec![0u8; 6 * MIB];
        assert!(matches!(
            load_linux(&mut small, &k, None, "", &l),
            Err(LinuxError::KernelTooLarge {
                needed: 0x80_0000,
                ..
            })
        ));
        let mut ram = vec![0u8; 16 * MIB];
        let rd = vec![0u8; 9 * MIB];
        assert!(matches!(
            load_linux(&mut ram, &k, Some(&rd), "", &l),
            Err(LinuxError::InitrdTooLarge { .. })
        ));
        // Exactly the room above the kernel's area fits.
        let rd = vec![1u8; 8 * MIB];
        let e = load_linux(&mut ram, &k, Some(&rd), "", &l).unwrap();
        assert_eq!(e.initrd, Some(0x80_0000..0x100_0000));
        // initrd_addr_max is honoured.
        let mut k2 = k.clone();
        k2[off::INITRD_ADDR_MAX..off::INITRD_ADDR_MAX + 4]
            .copy_from_slice(&0x9F_FFFFu32.to_le_bytes());
        let rd = vec![1u8; 0x1000];
        let e = load_linux(&mut ram, &k2, Some(&rd), "", &l).unwrap();
        assert_eq!(e.initrd, Some(0x9F_F000..0xA0_0000));
        // Nothing was written by a failed load.
        let mut fresh = vec![0u8; 16 * MIB];
        let big = vec![1u8; 15 * MIB];
        assert!(load_linux(&mut fresh, &k, Some(&big), "", &l).is_err());
        assert!(fresh.iter().all(|&b| b == 0));
    }

    #[test]
    fn bad_layouts_are_refused() {
        let k = bzimage(0x020F, 4, 512);
        let mut ram = vec![0u8; 16 * MIB];
        let bad = [
            LinuxLayout {
                zero_page_addr: 0x9_F000,
                ..LinuxLayout::default()
            },
            LinuxLayout {
                gdt_addr: 0x7010,
                ..LinuxLayout::default()
            },
            LinuxLayout {
                firmware: vec![E820Entry::new(0x7000..0x8000, E820Type::Nvs)],
                ..LinuxLayout::default()
            },
            LinuxLayout {
                firmware: vec![E820Entry::new(0xFF_0000..0x101_0000, E820Type::Acpi)],
                ..LinuxLayout::default()
            },
            LinuxLayout {
                firmware: vec![E820Entry::new(0x50_0000..0x60_0000, E820Type::Acpi)],
                ..LinuxLayout::default()
            },
            LinuxLayout {
                firmware: vec![
                    E820Entry::new(0xF0_0000..0xF8_0000, E820Type::Acpi),
                    E820Entry::new(0xF7_0000..0xF9_0000, E820Type::Nvs),
                ],
                ..LinuxLayout::default()
            },
        ];
        for l in bad {
            let r = load_linux(&mut ram, &k, None, "", &l);
            assert!(
                matches!(
                    r,
                    Err(LinuxError::BadLayout(_) | LinuxError::KernelTooLarge { .. })
                ),
                "{l:?}: {r:?}"
            );
        }
        let mut tiny = vec![0u8; MIB];
        assert!(matches!(
            load_linux(&mut tiny, &k, None, "", &LinuxLayout::default()),
            Err(LinuxError::BadLayout(_))
        ));
    }

    fn guest_file(name: &str) -> Option<Vec<u8>> {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../guest")
            .join(name);
        std::fs::read(p).ok()
    }

    #[test]
    fn loads_the_debian_guest_kernel_if_built() {
        let Some(k) = guest_file("bzImage") else {
            eprintln!("note: guest/bzImage absent (run scripts/build-guest.sh); skipping");
            return;
        };
        let rd = guest_file("initramfs.cpio.gz").unwrap_or_else(|| vec![0; 4096]);
        let mut ram = vec![0u8; 128 * MIB];
        let tables = crate::firmware::acpi::AcpiConfig::for_ram(ram.len() as u32);
        let acpi = crate::firmware::acpi::build_acpi(&mut ram, &tables).unwrap();
        let layout = LinuxLayout::with_acpi(&acpi);
        let e = load_linux(
            &mut ram,
            &k,
            Some(&rd),
            "console=ttyS0 earlyprintk=serial",
            &layout,
        )
        .unwrap();
        let h = e.header;
        assert!(h.version >= 0x020A, "{:#x}", h.version);
        assert!(h.relocatable);
        assert_eq!(h.code32_start, KERNEL_ADDR);
        let ir = e.initrd.unwrap();
        assert!(u64::from(ir.start) >= h.runtime_end(u64::from(e.kernel.end - e.kernel.start)));
        assert!(ir.end <= acpi.region.start);
        assert_eq!(ram[e.zero_page as usize + off::TYPE_OF_LOADER], 0xFF);
        eprintln!(
            "guest bzImage: protocol {:#x}, {} setup sectors, kernel {:#x}..{:#x}, runtime end {:#x}, initrd {:#x}..{:#x}",
            h.version,
            h.setup_sects,
            e.kernel.start,
            e.kernel.end,
            h.runtime_end(u64::from(e.kernel.end - e.kernel.start)),
            ir.start,
            ir.end
        );
    }
}
