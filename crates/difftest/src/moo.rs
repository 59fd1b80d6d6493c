//! Reader for the MOO ("Machine Opcode Operation") test file format used by the
//! SingleStepTests hardware-captured CPU tests (8086 and 80286 suites).
//!
//! Written from the format specification (MOO 1.0 for the 8086 suite, MOO 1.1 for the
//! 80286 suite). All fields are little-endian. A file is a sequence of chunks
//! (`4-byte ASCII id`, `u32 payload length`, `payload`): a `MOO ` header, an optional
//! `META` chunk, then `TEST` chunks. A `TEST` payload starts with a `u32` index followed
//! by subchunks (`NAME`, `BYTS`, `INIT`, `FINA`, `CYCL`, `EXCP`, `HASH`, ...).
//!
//! Deviations of the real data from the spec that this reader accepts:
//! * both suites' headers say version 1.0 (also the 80286 files, documented as 1.1);
//! * upstream files write a running total into `META.test_ct` rather than the file's
//!   own count: the `MOO ` header's test count is trusted, and a disagreeing
//!   `META.test_ct` is only noted ([`MooFile::meta_count_mismatch`], and a
//!   `tracing` debug event);
//! * the 8086 files have no `HASH` chunk and the `TEST` index field is 0 for every test;
//! * the 80286 files carry an undocumented `GMET` subchunk in each `TEST` (skipped).
//!
//! Unknown chunks (and `CYCL`, `RMSK`, `RG32`, `RM32`, `EA32`, `IDX `) are skipped by
//! length. Malformed input never panics; it yields a [`MooError`] naming the file and the
//! byte offset (in the decompressed stream) where parsing failed.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Environment variable holding the path of the `tests-data` directory.
pub const TESTDATA_ENV: &str = "MORPH86_TESTDATA";

/// Returns the `tests-data` directory: `$MORPH86_TESTDATA` if set, else
/// `<workspace>/../shared/tests-data`. Returns `None` if the directory does not exist.
pub fn testdata_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os(TESTDATA_ENV) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/tests-data"
        )),
    };
    dir.is_dir().then_some(dir)
}

/// A parsed MOO file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MooFile {
    /// Major format version from the `MOO ` header.
    pub major: u8,
    /// Minor format version from the `MOO ` header.
    pub minor: u8,
    /// CPU id from the header with padding spaces trimmed, e.g. `"8086"` or `"C286"`.
    pub cpu: String,
    /// The `META` chunk, if present (80286 suite only).
    pub meta: Option<MooMeta>,
    /// All tests, in file order.
    pub tests: Vec<MooTest>,
}

/// Contents of the optional top-level `META` chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MooMeta {
    /// Major version of the test collection.
    pub major_version: u8,
    /// Minor version of the test collection.
    pub minor_version: u8,
    /// CPU model enumeration.
    pub cpu_type: u8,
    /// Raw opcode of the tests in this file (0xFFFF_FFFF if mixed).
    pub opcode: u32,
    /// Mnemonic with padding spaces trimmed.
    pub mnemonic: String,
    /// Test count as the `META` chunk gives it. Upstream files may hold a
    /// running total here; the `MOO ` header's count is the one that is
    /// checked (see [`MooFile::meta_count_mismatch`]).
    pub test_count: u32,
    /// Base seed used to generate the tests.
    pub file_seed: u64,
    /// CPU mode enumeration (0 = real mode).
    pub cpu_mode: u8,
}

/// One test case (`TEST` chunk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MooTest {
    /// Index field of the `TEST` chunk (always 0 in the 8086 files).
    pub index: u32,
    /// Test name (disassembly) from `NAME`.
    pub name: String,
    /// Instruction bytes from `BYTS` (80286: includes the trailing `F4` HLT).
    pub bytes: Vec<u8>,
    /// Initial CPU state (`INIT`).
    pub init: MooState,
    /// Final CPU state (`FINA`): only changed registers and bytes are listed.
    pub fina: MooState,
    /// Exception/interrupt info from `EXCP` (80286 only).
    pub exception: Option<MooException>,
    /// SHA-1 test hash from `HASH` (absent in the 8086 files).
    pub hash: Option<[u8; 20]>,
}

impl MooTest {
    /// Upper-case hex string of the test hash, as used in revocation lists.
    pub fn hash_hex(&self) -> Option<String> {
        self.hash
            .map(|h| h.iter().map(|b| format!("{b:02X}")).collect::<String>())
    }
}

/// A CPU state snapshot (`INIT` or `FINA` chunk).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MooState {
    /// Registers from `REGS` (all present in `INIT`; only changed ones in `FINA`).
    pub regs: Regs16,
    /// Memory bytes from `RAM ` as (physical address, value).
    pub ram: Vec<(u32, u8)>,
    /// Prefetch queue bytes from `QUEU` (8086 only; empty when absent).
    pub queue: Vec<u8>,
}

/// 16-bit register file in MOO order; None = not present in the chunk's bitmask.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Regs16 {
    /// AX (bit 0).
    pub ax: Option<u16>,
    /// BX (bit 1).
    pub bx: Option<u16>,
    /// CX (bit 2).
    pub cx: Option<u16>,
    /// DX (bit 3).
    pub dx: Option<u16>,
    /// CS (bit 4).
    pub cs: Option<u16>,
    /// SS (bit 5).
    pub ss: Option<u16>,
    /// DS (bit 6).
    pub ds: Option<u16>,
    /// ES (bit 7).
    pub es: Option<u16>,
    /// SP (bit 8).
    pub sp: Option<u16>,
    /// BP (bit 9).
    pub bp: Option<u16>,
    /// SI (bit 10).
    pub si: Option<u16>,
    /// DI (bit 11).
    pub di: Option<u16>,
    /// IP (bit 12).
    pub ip: Option<u16>,
    /// FLAGS (bit 13).
    pub flags: Option<u16>,
}

impl Regs16 {
    /// Number of registers in the file.
    pub const COUNT: usize = 14;
    /// Register names in bitmask order (bit 0 first).
    pub const NAMES: [&'static str; 14] = [
        "ax", "bx", "cx", "dx", "cs", "ss", "ds", "es", "sp", "bp", "si", "di", "ip", "flags",
    ];

    /// Register `i` in bitmask order (0 = ax ... 13 = flags); None if absent or i >= 14.
    pub fn get(&self, i: usize) -> Option<u16> {
        match i {
            0 => self.ax,
            1 => self.bx,
            2 => self.cx,
            3 => self.dx,
            4 => self.cs,
            5 => self.ss,
            6 => self.ds,
            7 => self.es,
            8 => self.sp,
            9 => self.bp,
            10 => self.si,
            11 => self.di,
            12 => self.ip,
            13 => self.flags,
            _ => None,
        }
    }

    /// Mutable access to register slot `i` in bitmask order; None if i >= 14.
    pub fn slot_mut(&mut self, i: usize) -> Option<&mut Option<u16>> {
        Some(match i {
            0 => &mut self.ax,
            1 => &mut self.bx,
            2 => &mut self.cx,
            3 => &mut self.dx,
            4 => &mut self.cs,
            5 => &mut self.ss,
            6 => &mut self.ds,
            7 => &mut self.es,
            8 => &mut self.sp,
            9 => &mut self.bp,
            10 => &mut self.si,
            11 => &mut self.di,
            12 => &mut self.ip,
            13 => &mut self.flags,
            _ => return None,
        })
    }

    /// Presence bitmask (bit i set = register i present), as in the `REGS` chunk.
    pub fn mask(&self) -> u16 {
        (0..Self::COUNT)
            .filter(|&i| self.get(i).is_some())
            .fold(0, |m, i| m | (1 << i))
    }

    /// Iterates `(name, value)` over the present registers in bitmask order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u16)> + '_ {
        (0..Self::COUNT).filter_map(move |i| self.get(i).map(|v| (Self::NAMES[i], v)))
    }

    /// Returns `base` with every register present in `self` overriding it
    /// (e.g. `fina.regs.overlay(&init.regs)` = full expected final register file).
    pub fn overlay(&self, base: &Regs16) -> Regs16 {
        let mut out = *base;
        for i in 0..Self::COUNT {
            if let Some(v) = self.get(i) {
                if let Some(slot) = out.slot_mut(i) {
                    *slot = Some(v);
                }
            }
        }
        out
    }
}

/// Exception/interrupt information from an `EXCP` chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MooException {
    /// Exception or interrupt vector number.
    pub vector: u8,
    /// Physical address of the FLAGS word pushed on the stack.
    pub flags_addr: u32,
}

/// Error while loading or parsing a MOO file. Every message names the file; parse
/// errors also give the byte offset in the decompressed stream.
#[derive(Debug, thiserror::Error)]
pub enum MooError {
    /// The file could not be read.
    #[error("{file}: I/O error: {source}")]
    Io {
        /// File name or path.
        file: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Gzip decompression failed.
    #[error("{file}: gzip error at offset {offset:#x} of the decompressed stream: {source}")]
    Gzip {
        /// File name or path.
        file: String,
        /// Number of bytes successfully decompressed before the error.
        offset: usize,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with a `MOO ` chunk.
    #[error("{file}: bad magic at offset {offset:#x}: expected \"MOO \", found {found}")]
    BadMagic {
        /// File name or path.
        file: String,
        /// Offset of the offending bytes.
        offset: usize,
        /// What was found instead (escaped).
        found: String,
    },
    /// A chunk header or field extends past the end of its parent chunk / the file.
    #[error("{file}: truncated {what} at offset {offset:#x}: need {needed} bytes, {available} available")]
    Truncated {
        /// File name or path.
        file: String,
        /// Offset where the truncated item starts.
        offset: usize,
        /// What was being read, e.g. "chunk header in TEST" or "RAM  entries".
        what: String,
        /// Bytes required.
        needed: u64,
        /// Bytes available in the enclosing chunk / file.
        available: u64,
    },
    /// A structurally valid chunk has inconsistent content (bad counts, missing
    /// mandatory subchunks, unknown register bits, ...).
    #[error("{file}: invalid {what} at offset {offset:#x}: {msg}")]
    Invalid {
        /// File name or path.
        file: String,
        /// Offset of the offending chunk or field.
        offset: usize,
        /// The chunk or field concerned.
        what: String,
        /// Description.
        msg: String,
    },
}

impl MooError {
    /// File name or path the error refers to.
    pub fn file(&self) -> &str {
        match self {
            MooError::Io { file, .. }
            | MooError::Gzip { file, .. }
            | MooError::BadMagic { file, .. }
            | MooError::Truncated { file, .. }
            | MooError::Invalid { file, .. } => file,
        }
    }

    /// Byte offset in the decompressed stream, if the error has one.
    pub fn offset(&self) -> Option<usize> {
        match self {
            MooError::Io { .. } => None,
            MooError::Gzip { offset, .. }
            | MooError::BadMagic { offset, .. }
            | MooError::Truncated { offset, .. }
            | MooError::Invalid { offset, .. } => Some(*offset),
        }
    }
}

/// Printable form of a chunk id (non-printable bytes escaped).
struct Id([u8; 4]);

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape_bytes(&self.0))
    }
}

/// A chunk located inside the data: id, header offset and payload range.
#[derive(Clone, Copy)]
struct Chunk {
    id: [u8; 4],
    at: usize,
    start: usize,
    end: usize,
}

/// Parser context: the whole decompressed stream plus the file name for errors.
struct Ctx<'a> {
    data: &'a [u8],
    file: &'a str,
}

/// Bounded little-endian field reader over `data[pos..end]`.
struct Fields<'c, 'a> {
    ctx: &'c Ctx<'a>,
    pos: usize,
    end: usize,
    what: &'static str,
}

impl<'a> Ctx<'a> {
    fn truncated(&self, offset: usize, what: String, needed: u64, available: u64) -> MooError {
        MooError::Truncated {
            file: self.file.to_string(),
            offset,
            what,
            needed,
            available,
        }
    }

    fn invalid(&self, offset: usize, what: impl Into<String>, msg: impl Into<String>) -> MooError {
        MooError::Invalid {
            file: self.file.to_string(),
            offset,
            what: what.into(),
            msg: msg.into(),
        }
    }

    /// Reads the chunk header at `pos`; the chunk must fit within `..end`.
    fn chunk_at(&self, pos: usize, end: usize, parent: &str) -> Result<Chunk, MooError> {
        let avail = end.saturating_sub(pos);
        if avail < 8 {
            return Err(self.truncated(pos, format!("chunk header in {parent}"), 8, avail as u64));
        }
        let mut id = [0u8; 4];
        id.copy_from_slice(&self.data[pos..pos + 4]);
        let len = u32::from_le_bytes([
            self.data[pos + 4],
            self.data[pos + 5],
            self.data[pos + 6],
            self.data[pos + 7],
        ]);
        let start = pos + 8;
        let room = end - start;
        if len as u64 > room as u64 {
            return Err(self.truncated(
                pos,
                format!("chunk \"{}\" (length {len}) in {parent}", Id(id)),
                len as u64 + 8,
                room as u64 + 8,
            ));
        }
        Ok(Chunk {
            id,
            at: pos,
            start,
            end: start + len as usize,
        })
    }

    /// All chunks in `start..end`, in order.
    fn chunks(&self, start: usize, end: usize, parent: &str) -> Result<Vec<Chunk>, MooError> {
        let mut out = Vec::new();
        let mut pos = start;
        while pos < end {
            let c = self.chunk_at(pos, end, parent)?;
            pos = c.end;
            out.push(c);
        }
        Ok(out)
    }

    fn fields<'c>(&'c self, c: &Chunk, what: &'static str) -> Fields<'c, 'a> {
        Fields {
            ctx: self,
            pos: c.start,
            end: c.end,
            what,
        }
    }
}

impl<'a> Fields<'_, 'a> {
    fn take(&mut self, n: u64, field: &str) -> Result<&'a [u8], MooError> {
        let avail = (self.end - self.pos) as u64;
        if n > avail {
            return Err(self
                .ctx
                .truncated(self.pos, format!("{} {field}", self.what), n, avail));
        }
        let s = &self.ctx.data[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn u8(&mut self, field: &str) -> Result<u8, MooError> {
        Ok(self.take(1, field)?[0])
    }

    fn u16(&mut self, field: &str) -> Result<u16, MooError> {
        let b = self.take(2, field)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, field: &str) -> Result<u32, MooError> {
        let b = self.take(4, field)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, field: &str) -> Result<u64, MooError> {
        let b = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A `u32` length followed by that many bytes.
    fn counted_bytes(&mut self, field: &str) -> Result<&'a [u8], MooError> {
        let n = self.u32(&format!("{field} length"))?;
        self.take(n as u64, field)
    }
}

fn ascii_trim(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .trim_matches(|c: char| c == ' ' || c == '\0')
        .to_string()
}

fn parse_regs(ctx: &Ctx<'_>, c: &Chunk) -> Result<Regs16, MooError> {
    let mut f = ctx.fields(c, "REGS");
    let mask = f.u16("bitmask")?;
    if mask >> Regs16::COUNT != 0 {
        return Err(ctx.invalid(
            c.start,
            "REGS bitmask",
            format!("{mask:#06x} has bits above bit 13 (flags) set"),
        ));
    }
    let mut regs = Regs16::default();
    for i in 0..Regs16::COUNT {
        if mask & (1 << i) != 0 {
            let v = f.u16(Regs16::NAMES[i])?;
            if let Some(slot) = regs.slot_mut(i) {
                *slot = Some(v);
            }
        }
    }
    Ok(regs)
}

fn parse_ram(ctx: &Ctx<'_>, c: &Chunk) -> Result<Vec<(u32, u8)>, MooError> {
    let mut f = ctx.fields(c, "RAM ");
    let count = f.u32("entry count")?;
    let needed = count as u64 * 5;
    let avail = (f.end - f.pos) as u64;
    if needed > avail {
        return Err(ctx.truncated(
            f.pos,
            format!("RAM  entries (count {count})"),
            needed,
            avail,
        ));
    }
    let mut ram = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let addr = f.u32("entry address")?;
        let val = f.u8("entry value")?;
        ram.push((addr, val));
    }
    Ok(ram)
}

fn parse_state(ctx: &Ctx<'_>, c: &Chunk) -> Result<MooState, MooError> {
    let name = if &c.id == b"INIT" { "INIT" } else { "FINA" };
    let mut st = MooState::default();
    let mut have_regs = false;
    for sc in ctx.chunks(c.start, c.end, name)? {
        match &sc.id {
            b"REGS" => {
                st.regs = parse_regs(ctx, &sc)?;
                have_regs = true;
            }
            b"RAM " => st.ram = parse_ram(ctx, &sc)?,
            b"QUEU" => st.queue = ctx.fields(&sc, "QUEU").counted_bytes("bytes")?.to_vec(),
            // RG32/RM32/RMSK/EA32 and unknown chunks: skipped by length.
            _ => {}
        }
    }
    if !have_regs {
        return Err(ctx.invalid(c.at, name, "no REGS subchunk"));
    }
    Ok(st)
}

fn parse_test(ctx: &Ctx<'_>, c: &Chunk) -> Result<MooTest, MooError> {
    let mut f = ctx.fields(c, "TEST");
    let index = f.u32("index")?;
    let mut name = None;
    let mut bytes = None;
    let mut init = None;
    let mut fina = None;
    let mut exception = None;
    let mut hash = None;
    for sc in ctx.chunks(f.pos, c.end, "TEST")? {
        match &sc.id {
            b"NAME" => {
                let s = ctx.fields(&sc, "NAME").counted_bytes("string")?;
                name = Some(String::from_utf8_lossy(s).into_owned());
            }
            b"BYTS" => bytes = Some(ctx.fields(&sc, "BYTS").counted_bytes("bytes")?.to_vec()),
            b"INIT" => init = Some(parse_state(ctx, &sc)?),
            b"FINA" => fina = Some(parse_state(ctx, &sc)?),
            b"EXCP" => {
                let mut ef = ctx.fields(&sc, "EXCP");
                let vector = ef.u8("number")?;
                let flags_addr = ef.u32("flag address")?;
                exception = Some(MooException { vector, flags_addr });
            }
            b"HASH" => {
                let h = ctx.fields(&sc, "HASH").take(20, "hash data")?;
                let mut a = [0u8; 20];
                a.copy_from_slice(h);
                hash = Some(a);
            }
            // CYCL, GMET, IDX  and unknown chunks: skipped by length.
            _ => {}
        }
    }
    let missing = |what: &str| ctx.invalid(c.at, "TEST", format!("missing {what} subchunk"));
    Ok(MooTest {
        index,
        name: name.ok_or_else(|| missing("NAME"))?,
        bytes: bytes.ok_or_else(|| missing("BYTS"))?,
        init: init.ok_or_else(|| missing("INIT"))?,
        fina: fina.ok_or_else(|| missing("FINA"))?,
        exception,
        hash,
    })
}

fn parse_meta(ctx: &Ctx<'_>, c: &Chunk) -> Result<MooMeta, MooError> {
    let mut f = ctx.fields(c, "META");
    let major_version = f.u8("major_version")?;
    let minor_version = f.u8("minor_version")?;
    let cpu_type = f.u8("cpu_type")?;
    let opcode = f.u32("opcode")?;
    let mnemonic = ascii_trim(f.take(8, "mnemonic")?);
    let test_count = f.u32("test_ct")?;
    let file_seed = f.u64("file_seed")?;
    let cpu_mode = f.u8("cpu_mode")?;
    Ok(MooMeta {
        major_version,
        minor_version,
        cpu_type,
        opcode,
        mnemonic,
        test_count,
        file_seed,
        cpu_mode,
    })
}

fn is_gzip_name(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

impl MooFile {
    /// `Some((meta_test_ct, header_count))` when the file has a `META` chunk
    /// whose `test_ct` differs from the `MOO ` header's test count (which
    /// the reader checked against the tests present). Upstream files write a
    /// running total into `META.test_ct`, so this is a note, not an error.
    pub fn meta_count_mismatch(&self) -> Option<(u32, u32)> {
        let meta = self.meta.as_ref()?;
        let count = u32::try_from(self.tests.len()).unwrap_or(u32::MAX);
        (meta.test_count != count).then_some((meta.test_count, count))
    }

    /// Parses a decompressed MOO stream. `file_name` is used in error messages only.
    pub fn parse(data: &[u8], file_name: &str) -> Result<MooFile, MooError> {
        let ctx = Ctx {
            data,
            file: file_name,
        };
        if data.len() < 4 || &data[..4] != b"MOO " {
            let n = data.len().min(4);
            return Err(MooError::BadMagic {
                file: file_name.to_string(),
                offset: 0,
                found: format!("\"{}\"", escape_bytes(&data[..n])),
            });
        }
        let hdr = ctx.chunk_at(0, data.len(), "file")?;
        let mut f = ctx.fields(&hdr, "MOO  header");
        let major = f.u8("major version")?;
        let minor = f.u8("minor version")?;
        f.take(2, "reserved")?;
        let count_pos = f.pos;
        let count = f.u32("test count")?;
        let cpu = ascii_trim(f.take(4, "CPU id")?);

        let mut meta = None;
        // A valid TEST chunk takes well over 64 bytes; this caps counts that lie.
        let mut tests = Vec::with_capacity((count as usize).min(data.len() / 64));
        let mut pos = hdr.end;
        while pos < data.len() {
            let c = ctx.chunk_at(pos, data.len(), "file")?;
            pos = c.end;
            match &c.id {
                b"TEST" => tests.push(parse_test(&ctx, &c)?),
                b"META" => {
                    let m = parse_meta(&ctx, &c)?;
                    if m.test_count != count {
                        tracing::debug!(
                            file = file_name,
                            meta_test_ct = m.test_count,
                            header_count = count,
                            "META test_ct differs from the MOO header's test count; using the header's"
                        );
                    }
                    meta = Some(m);
                }
                b"MOO " => {
                    return Err(ctx.invalid(c.at, "MOO  chunk", "duplicate file header"));
                }
                // RMSK/RM32 at top level and unknown chunks: skipped by length.
                _ => {}
            }
        }
        if tests.len() as u64 != count as u64 {
            return Err(ctx.invalid(
                count_pos,
                "test count",
                format!(
                    "header says {count} tests but the file holds {} (ends at offset {:#x})",
                    tests.len(),
                    data.len()
                ),
            ));
        }
        Ok(MooFile {
            major,
            minor,
            cpu,
            meta,
            tests,
        })
    }

    /// Reads a MOO file, gunzipping it if the name ends in `.gz` or the data starts with
    /// the gzip magic `1f 8b`, and parses it. Errors name the file by its path.
    pub fn load(path: &Path) -> Result<MooFile, MooError> {
        let file = path.display().to_string();
        let raw = std::fs::read(path).map_err(|source| MooError::Io {
            file: file.clone(),
            source,
        })?;
        if is_gzip_name(path) || raw.starts_with(&[0x1f, 0x8b]) {
            let data = gunzip(&raw, &file)?;
            MooFile::parse(&data, &file)
        } else {
            MooFile::parse(&raw, &file)
        }
    }
}

/// Decompresses a (possibly multi-member) gzip stream; errors name `file`.
pub fn gunzip(raw: &[u8], file: &str) -> Result<Vec<u8>, MooError> {
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4));
    let mut dec = flate2::read::MultiGzDecoder::new(raw);
    match dec.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(source) => Err(MooError::Gzip {
            file: file.to_string(),
            offset: out.len(),
            source,
        }),
    }
}

/// Escapes bytes for display: printable ASCII as is, everything else as `\xNN`.
fn escape_bytes(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b {
        if (0x20..0x7f).contains(&c) && c != b'\\' {
            s.push(c as char);
        } else {
            s.push_str(&format!("\\x{c:02x}"));
        }
    }
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// `<tests-data>/singlestep/<suite>`, or None (with a note) if the data is absent.
    fn suite_dir(suite: &str) -> Option<PathBuf> {
        let dir = testdata_dir().map(|d| d.join("singlestep").join(suite));
        match dir {
            Some(d) if d.is_dir() => Some(d),
            _ => {
                eprintln!("NOTE: test data for {suite} not found (set {TESTDATA_ENV}); skipping");
                None
            }
        }
    }

    /// file name -> tests_kept, from `<suite>/../subset.tsv`.
    fn subset_counts(suite_dir: &Path) -> HashMap<String, u32> {
        let tsv = std::fs::read_to_string(suite_dir.parent().unwrap().join("subset.tsv"))
            .expect("subset.tsv");
        tsv.lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let cols: Vec<&str> = l.split('\t').collect();
                (cols[0].to_string(), cols[2].parse().unwrap())
            })
            .collect()
    }

    fn read_gz(path: &Path) -> Vec<u8> {
        gunzip(&std::fs::read(path).unwrap(), "test").unwrap()
    }

    /// The header, META and the first `n` TEST chunks of `data`, with the counts patched.
    fn prefix_with_tests(data: &[u8], n: u32) -> Vec<u8> {
        let rd = |p: usize| u32::from_le_bytes(data[p..p + 4].try_into().unwrap()) as usize;
        let mut pos = 8 + rd(4);
        let mut seen = 0;
        let mut meta_at = None;
        while seen < n {
            if &data[pos..pos + 4] == b"TEST" {
                seen += 1;
            } else if &data[pos..pos + 4] == b"META" {
                meta_at = Some(pos + 8);
            }
            pos += 8 + rd(pos + 4);
        }
        let mut out = data[..pos].to_vec();
        out[12..16].copy_from_slice(&n.to_le_bytes());
        if let Some(m) = meta_at {
            out[m + 15..m + 19].copy_from_slice(&n.to_le_bytes());
        }
        out
    }

    pub(crate) fn chunk(id: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut v = id.to_vec();
        v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        v.extend_from_slice(payload);
        v
    }

    pub(crate) fn counted(b: &[u8]) -> Vec<u8> {
        let mut v = (b.len() as u32).to_le_bytes().to_vec();
        v.extend_from_slice(b);
        v
    }

    pub(crate) fn header(count: u32) -> Vec<u8> {
        let mut p = vec![1, 1, 0, 0];
        p.extend_from_slice(&count.to_le_bytes());
        p.extend_from_slice(b"C286");
        chunk(b"MOO ", &p)
    }

    pub(crate) fn regs_chunk(mask: u16, vals: &[u16]) -> Vec<u8> {
        let mut p = mask.to_le_bytes().to_vec();
        for v in vals {
            p.extend_from_slice(&v.to_le_bytes());
        }
        chunk(b"REGS", &p)
    }

    pub(crate) fn ram_chunk(entries: &[(u32, u8)]) -> Vec<u8> {
        let mut p = (entries.len() as u32).to_le_bytes().to_vec();
        for (a, v) in entries {
            p.extend_from_slice(&a.to_le_bytes());
            p.push(*v);
        }
        chunk(b"RAM ", &p)
    }

    /// A synthesized test exercising skipped/extended chunks.
    fn synth_test(index: u32) -> Vec<u8> {
        let mut p = index.to_le_bytes().to_vec();
        p.extend(chunk(b"ZZZZ", b"unknown chunk"));
        // NAME with extra trailing bytes (forward-compatible growth).
        let mut name = counted(b"nop");
        name.extend_from_slice(b"xx");
        p.extend(chunk(b"NAME", &name));
        p.extend(chunk(b"BYTS", &counted(&[0x90, 0xF4])));
        let mut init = regs_chunk(0x3FFF, &(0..14).map(|i| i * 0x101).collect::<Vec<_>>());
        init.extend(ram_chunk(&[(0x100, 0x90), (0x101, 0xF4)]));
        init.extend(chunk(b"QUEU", &counted(&[0x90])));
        init.extend(chunk(b"EA32", &[0; 27]));
        p.extend(chunk(b"INIT", &init));
        let mut fina = regs_chunk(1 << 12, &[0x102]);
        fina.extend(chunk(b"RMSK", &[0, 0]));
        fina.extend(ram_chunk(&[]));
        p.extend(chunk(b"FINA", &fina));
        let mut cycl = 1u32.to_le_bytes().to_vec();
        cycl.extend_from_slice(&[0; 15]);
        p.extend(chunk(b"CYCL", &cycl));
        let mut excp = vec![6];
        excp.extend_from_slice(&0x1234u32.to_le_bytes());
        p.extend(chunk(b"EXCP", &excp));
        p.extend(chunk(b"HASH", &[0xAB; 20]));
        chunk(b"TEST", &p)
    }

    fn synth_file(count: u32, tests: u32) -> Vec<u8> {
        let mut f = header(count);
        f.extend(chunk(b"RMSK", &[0, 0]));
        for i in 0..tests {
            f.extend(synth_test(i));
        }
        f
    }

    #[test]
    fn synthesized_file_parses() {
        let f = MooFile::parse(&synth_file(2, 2), "synth.MOO").unwrap();
        assert_eq!((f.major, f.minor, f.cpu.as_str()), (1, 1, "C286"));
        assert_eq!(f.meta, None);
        assert_eq!(f.tests.len(), 2);
        let t = &f.tests[1];
        assert_eq!(t.index, 1);
        assert_eq!(t.name, "nop");
        assert_eq!(t.bytes, [0x90, 0xF4]);
        assert_eq!(t.init.regs.ax, Some(0));
        assert_eq!(t.init.regs.cx, Some(0x202));
        assert_eq!(t.init.regs.flags, Some(13 * 0x101));
        assert_eq!(t.init.regs.mask(), 0x3FFF);
        assert_eq!(t.init.ram, [(0x100, 0x90), (0x101, 0xF4)]);
        assert_eq!(t.init.queue, [0x90]);
        assert_eq!(t.fina.regs.mask(), 1 << 12);
        assert_eq!(t.fina.regs.ip, Some(0x102));
        assert!(t.fina.ram.is_empty() && t.fina.queue.is_empty());
        assert_eq!(
            t.exception,
            Some(MooException {
                vector: 6,
                flags_addr: 0x1234
            })
        );
        assert_eq!(t.hash, Some([0xAB; 20]));
        assert_eq!(t.hash_hex().unwrap(), "AB".repeat(20));
        let full = t.fina.regs.overlay(&t.init.regs);
        assert_eq!(full.ip, Some(0x102));
        assert_eq!(full.ax, Some(0));
        assert_eq!(full.iter().count(), 14);
    }

    /// A `META` chunk (80286 layout) saying `test_ct` tests.
    pub(crate) fn meta_chunk(test_ct: u32) -> Vec<u8> {
        let mut p = vec![1, 0, 2];
        p.extend_from_slice(&0x90u32.to_le_bytes());
        p.extend_from_slice(b"nop     ");
        p.extend_from_slice(&test_ct.to_le_bytes());
        p.extend_from_slice(&0x1234_5678_9ABC_DEF0u64.to_le_bytes());
        p.extend_from_slice(&[0, 0, 0, 0]);
        chunk(b"META", &p)
    }

    #[test]
    fn meta_test_ct_disagreeing_with_the_header_is_only_noted() {
        // As upstream writes them: META.test_ct a running total (here 7002
        // after earlier files), the header the file's own count.
        let mut f = header(2);
        f.extend(meta_chunk(7002));
        for i in 0..2 {
            f.extend(synth_test(i));
        }
        let moo = MooFile::parse(&f, "running_total.MOO").unwrap();
        assert_eq!(moo.tests.len(), 2);
        assert_eq!(moo.meta.as_ref().unwrap().test_count, 7002);
        assert_eq!(moo.meta.as_ref().unwrap().mnemonic, "nop");
        assert_eq!(moo.meta_count_mismatch(), Some((7002, 2)));
        // An agreeing META is no note.
        let mut f = header(2);
        f.extend(meta_chunk(2));
        for i in 0..2 {
            f.extend(synth_test(i));
        }
        assert_eq!(
            MooFile::parse(&f, "agree.MOO")
                .unwrap()
                .meta_count_mismatch(),
            None
        );
        // The header's count is still checked against the tests present.
        let mut f = header(3);
        f.extend(meta_chunk(2));
        for i in 0..2 {
            f.extend(synth_test(i));
        }
        expect_err_named(&f, "lies.MOO", "header says 3 tests but the file holds 2");
    }

    fn expect_err_named(data: &[u8], name: &str, needle: &str) -> MooError {
        let e = MooFile::parse(data, name).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("{name}: ")), "{msg}");
        assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
        assert!(e.offset().is_some());
        e
    }

    fn expect_err(data: &[u8], needle: &str) -> MooError {
        expect_err_named(data, "bad.MOO", needle)
    }

    #[test]
    fn synthesized_errors() {
        expect_err(b"", "bad magic at offset 0x0");
        expect_err(b"TEST\0\0\0\0", "bad magic");
        // Header count lies (both directions).
        expect_err(
            &synth_file(3, 2),
            "header says 3 tests but the file holds 2",
        );
        expect_err(&synth_file(1, 2), "header says 1 tests");
        expect_err(&synth_file(u32::MAX, 0), "header says 4294967295");
        // Chunk length running past the end of the file.
        let mut f = synth_file(1, 1);
        let t = header(1).len() + 8 + 2; // after the RMSK chunk: the TEST chunk
        f[t + 4..t + 8].copy_from_slice(&0x7FFF_FFFFu32.to_le_bytes());
        expect_err(
            &f,
            &format!(
                "truncated chunk \"TEST\" (length 2147483647) in file at offset {:#x}",
                t
            ),
        );
        // REGS with bits above flags set.
        let mut p = 0u32.to_le_bytes().to_vec();
        p.extend(chunk(b"NAME", &counted(b"x")));
        p.extend(chunk(b"BYTS", &counted(&[0x90])));
        p.extend(chunk(b"INIT", &regs_chunk(0x8000, &[1])));
        p.extend(chunk(b"FINA", &regs_chunk(0, &[])));
        let mut f = header(1);
        f.extend(chunk(b"TEST", &p));
        expect_err(&f, "REGS bitmask");
        // Missing FINA.
        let mut p = 0u32.to_le_bytes().to_vec();
        p.extend(chunk(b"NAME", &counted(b"x")));
        p.extend(chunk(b"BYTS", &counted(&[0x90])));
        p.extend(chunk(b"INIT", &regs_chunk(0, &[])));
        let mut f = header(1);
        f.extend(chunk(b"TEST", &p));
        expect_err(&f, "missing FINA subchunk");
        // RAM count that lies.
        let mut ram = 1000u32.to_le_bytes().to_vec();
        ram.extend_from_slice(&[0; 5]);
        let mut p = 0u32.to_le_bytes().to_vec();
        p.extend(chunk(b"NAME", &counted(b"x")));
        p.extend(chunk(b"BYTS", &counted(&[0x90])));
        p.extend(chunk(b"INIT", &chunk(b"RAM ", &ram)));
        let mut f = header(1);
        f.extend(chunk(b"TEST", &p));
        expect_err(&f, "truncated RAM  entries (count 1000)");
        // Subchunk whose length runs past its parent TEST (but not past the file).
        let mut p = 0u32.to_le_bytes().to_vec();
        p.extend(chunk(b"NAME", &counted(b"x")));
        p[8..12].copy_from_slice(&100u32.to_le_bytes()); // NAME chunk length
        let mut f = header(1);
        f.extend(chunk(b"TEST", &p));
        f.extend(chunk(b"ZZZZ", &[0; 200]));
        expect_err(
            &f,
            "truncated chunk \"NAME\" (length 100) in TEST at offset 0x20",
        );
    }

    #[test]
    fn real_8086_file() {
        let Some(dir) = suite_dir("8086/v1_binary") else {
            return;
        };
        let counts = subset_counts(&dir);
        let f = MooFile::load(&dir.join("00.MOO.gz")).unwrap();
        assert_eq!((f.major, f.minor), (1, 0));
        assert_eq!(f.cpu, "8086");
        assert!(f.meta.is_none());
        assert_eq!(f.tests.len() as u32, counts["00.MOO.gz"]);
        assert_eq!(f.tests.len(), 1000);
        // Quirk: index is 0 for every test; no HASH chunks.
        assert!(f.tests.iter().all(|t| t.index == 0 && t.hash.is_none()));
        assert!(f.tests.iter().all(|t| t.exception.is_none()));
        let t = &f.tests[0];
        assert_eq!(t.name, "add cl, ah");
        assert_eq!(t.bytes, [0x00, 0xE1]);
        assert_eq!(t.init.regs.mask(), 0x3FFF);
        assert_eq!(t.init.ram.len(), 5);
        assert_eq!(t.init.ram[0], (0x0E_E221, 0x00));
        assert_eq!(t.init.ram[1], (0x0E_E222, 0xE1));
        assert_eq!(t.init.queue, [0x00, 0xE1, 0x90, 0x90, 0x90]);
        // FINA lists only CX, IP and FLAGS.
        assert_eq!(t.fina.regs.mask(), (1 << 2) | (1 << 12) | (1 << 13));
        assert!(f.tests.iter().all(|t| t.init.regs.mask() == 0x3FFF));

        let f = MooFile::load(&dir.join("D2.4.MOO.gz")).unwrap();
        assert_eq!(f.tests.len() as u32, counts["D2.4.MOO.gz"]);
    }

    #[test]
    fn real_80286_file() {
        let Some(dir) = suite_dir("80286/v1_real_mode") else {
            return;
        };
        let counts = subset_counts(&dir);
        let f = MooFile::load(&dir.join("00.MOO.gz")).unwrap();
        // The header says 1.0 although the suite is documented as MOO 1.1.
        assert_eq!(f.major, 1);
        assert_eq!(f.cpu, "C286");
        assert_eq!(f.tests.len() as u32, counts["00.MOO.gz"]);
        assert_eq!(f.tests.len(), 1500);
        let meta = f.meta.as_ref().unwrap();
        assert_eq!(meta.mnemonic, "add");
        assert_eq!(meta.opcode, 0);
        assert_eq!(meta.test_count, 1500);
        assert_eq!(meta.cpu_mode, 0);
        for (i, t) in f.tests.iter().enumerate() {
            assert_eq!(t.index as usize, i);
            assert!(t.hash.is_some());
            assert_eq!(t.bytes.last(), Some(&0xF4));
            assert_eq!(t.init.regs.mask(), 0x3FFF);
        }
        let t = &f.tests[0];
        assert_eq!(t.name, "add [bx+0Eh],bl");
        assert_eq!(t.bytes, [0x00, 0x5F, 0x0E, 0xF4]);
        assert_eq!(t.init.ram.len(), 11);
        assert!(t.init.queue.is_empty());
        assert_eq!(t.fina.regs.mask(), (1 << 12) | (1 << 13));
        assert_eq!(t.fina.ram, [(0x10_6821, 0x01)]);

        // Divide errors carry an EXCP chunk.
        let f = MooFile::load(&dir.join("F6.6.MOO.gz")).unwrap();
        assert_eq!(f.tests.len() as u32, counts["F6.6.MOO.gz"]);
        assert!(f
            .tests
            .iter()
            .any(|t| t.exception.is_some_and(|e| e.vector == 0)));
    }

    /// Every file of both suites parses and has the test count given in subset.tsv.
    #[test]
    fn all_files_match_subset_counts() {
        for suite in ["8086/v1_binary", "80286/v1_real_mode"] {
            let Some(dir) = suite_dir(suite) else {
                continue;
            };
            let counts = subset_counts(&dir);
            let mut n = 0;
            for (name, &count) in &counts {
                let f = MooFile::load(&dir.join(name)).unwrap();
                assert_eq!(f.tests.len() as u32, count, "{suite}/{name}");
                n += 1;
            }
            assert!(n > 300, "{suite}: only {n} files in subset.tsv");
        }
    }

    fn real_prefixes() -> Vec<(&'static str, Vec<u8>)> {
        let mut out = Vec::new();
        for (suite, file) in [
            ("8086/v1_binary", "00.MOO.gz"),
            ("80286/v1_real_mode", "F6.6.MOO.gz"),
        ] {
            if let Some(dir) = suite_dir(suite) {
                out.push((file, prefix_with_tests(&read_gz(&dir.join(file)), 2)));
            }
        }
        out
    }

    #[test]
    fn prefix_matches_full_parse() {
        let Some(dir) = suite_dir("80286/v1_real_mode") else {
            return;
        };
        let data = read_gz(&dir.join("00.MOO.gz"));
        let full = MooFile::parse(&data, "00.MOO.gz").unwrap();
        let pre = MooFile::parse(&prefix_with_tests(&data, 3), "00.MOO.gz").unwrap();
        assert_eq!(pre.tests[..], full.tests[..3]);
    }

    #[test]
    fn truncation_never_panics() {
        let mut inputs = real_prefixes();
        inputs.push(("synth.MOO", synth_file(2, 2)));
        for (name, data) in inputs {
            MooFile::parse(&data, name).unwrap();
            for cut in 0..data.len() {
                let e = MooFile::parse(&data[..cut], name)
                    .expect_err("a truncated file must not parse");
                let msg = e.to_string();
                assert!(msg.starts_with(&format!("{name}: ")), "{msg}");
                assert!(msg.contains("offset 0x"), "{msg}");
                assert!(e.offset().unwrap() <= cut, "{msg} (cut at {cut})");
            }
        }
    }

    #[test]
    fn fuzz_never_panics() {
        let mut inputs = real_prefixes();
        inputs.push(("synth.MOO", synth_file(2, 2)));
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rng = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut ok, mut err) = (0, 0);
        for (name, data) in &inputs {
            for _ in 0..4000 {
                let mut d = data.clone();
                for _ in 0..1 + rng() % 4 {
                    let pos = (rng() % d.len() as u64) as usize;
                    match rng() % 4 {
                        0 => d[pos] ^= 1 << (rng() % 8),
                        1 => d[pos] = rng() as u8,
                        2 => {
                            // Plausible or huge length/count values.
                            let v = if rng() % 2 == 0 {
                                rng() as u32
                            } else {
                                (rng() % 64) as u32
                            };
                            let end = (pos + 4).min(d.len());
                            d[pos..end].copy_from_slice(&v.to_le_bytes()[..end - pos]);
                        }
                        _ => {
                            let cut = (rng() % d.len() as u64) as usize;
                            d.truncate(cut.max(1));
                        }
                    }
                }
                match MooFile::parse(&d, name) {
                    Ok(_) => ok += 1,
                    Err(e) => {
                        assert!(e.to_string().starts_with(&format!("{name}: ")));
                        err += 1;
                    }
                }
            }
        }
        assert!(err > 0);
        eprintln!("fuzz: {ok} parsed, {err} rejected");
    }

    #[test]
    fn load_plain_gzip_and_errors() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("morph86-moo-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let data = synth_file(2, 2);

        let plain = dir.join("plain.MOO");
        std::fs::write(&plain, &data).unwrap();
        assert_eq!(MooFile::load(&plain).unwrap().tests.len(), 2);

        // Gzip detected by magic even without a .gz name.
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&data).unwrap();
        let gz = enc.finish().unwrap();
        let gz_noext = dir.join("gz_noext.MOO");
        std::fs::write(&gz_noext, &gz).unwrap();
        assert_eq!(MooFile::load(&gz_noext).unwrap().tests.len(), 2);

        // Corrupt gzip stream.
        let mut bad = gz.clone();
        let n = bad.len();
        bad.truncate(n / 2);
        let bad_path = dir.join("bad.MOO.gz");
        std::fs::write(&bad_path, &bad).unwrap();
        let e = MooFile::load(&bad_path).unwrap_err();
        assert!(matches!(e, MooError::Gzip { .. }), "{e}");
        assert!(e.to_string().contains("bad.MOO.gz"), "{e}");

        // Parse errors after gunzip name the file too.
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&data[..data.len() - 3]).unwrap();
        let trunc_path = dir.join("trunc.MOO.gz");
        std::fs::write(&trunc_path, enc.finish().unwrap()).unwrap();
        let e = MooFile::load(&trunc_path).unwrap_err();
        assert!(e.to_string().contains("trunc.MOO.gz: truncated"), "{e}");

        let missing = dir.join("missing.MOO.gz");
        let e = MooFile::load(&missing).unwrap_err();
        assert!(matches!(e, MooError::Io { .. }));
        assert!(e.to_string().contains("missing.MOO.gz"), "{e}");

        std::fs::remove_dir_all(&dir).unwrap();
    }
}
