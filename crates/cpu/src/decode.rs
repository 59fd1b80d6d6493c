//! Instruction decoding with a cache.
//!
//! iced-x86 decodes; this module adds what iced does not know about the
//! chips we model (the 8086's opcode aliases, the 80286's missing
//! prefixes and 10-byte limit) and caches results so the hot loop does not
//! decode the same bytes twice.
//!
//! Instructions are always decoded at IP 0, so iced's "absolute" branch
//! targets are really offsets from the instruction start. That keeps a cached
//! instruction valid whatever CS:IP pair reaches its linear address.

use crate::model::CpuModel;
use crate::state::SegReg;
use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic};

/// Longest byte sequence the decoder is ever given.
pub const FETCH_LEN: usize = 16;

/// A decoded instruction plus the prefix facts the interpreter needs.
#[derive(Clone, Copy, Debug)]
pub struct Decoded {
    /// iced's decoding (branch targets relative to the instruction start).
    pub insn: Instruction,
    /// Length in bytes, prefixes included.
    pub len: u8,
    /// Operand size is 32 bits.
    pub op32: bool,
    /// Address size is 32 bits.
    pub addr32: bool,
    /// Primary opcode byte, or 0x0F00 | second byte for two-byte opcodes.
    pub opcode: u16,
    /// ModRM.reg of the instruction (0 when it has no ModRM byte).
    pub modrm_reg: u8,
    /// 0, or 0xF2 / 0xF3 for the last REPNE/REP prefix.
    pub rep: u8,
    /// Explicit segment override.
    pub seg_override: Option<SegReg>,
    /// The instruction must raise #UD when executed.
    pub invalid: bool,
    /// The instruction exceeds the model's length limit: #GP(0).
    pub too_long: bool,
    /// An x87 escape (D8-DF) on a CPU without an FPU model: iced decoded a
    /// stand-in opcode only to find the length and memory operand.
    pub esc: bool,
}

impl Decoded {
    fn invalid(len: u8) -> Decoded {
        Decoded {
            insn: Instruction::default(),
            len,
            op32: false,
            addr32: false,
            opcode: 0,
            modrm_reg: 0,
            rep: 0,
            seg_override: None,
            invalid: true,
            too_long: false,
            esc: false,
        }
    }

    /// An invalid one-byte instruction, for initialising storage.
    pub fn placeholder() -> Decoded {
        Decoded::invalid(1)
    }

    fn too_long(len: u8) -> Decoded {
        Decoded {
            too_long: true,
            invalid: false,
            ..Decoded::invalid(len)
        }
    }
}

/// Why bytes could not be decoded into an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes ran out before the instruction ended (the fetch hit a limit).
    Truncated,
}

/// Opcodes that take a ModRM byte in the one-byte map (for locating ModRM.reg).
fn has_modrm(op: u8) -> bool {
    matches!(op,
        0x00..=0x03 | 0x08..=0x0B | 0x10..=0x13 | 0x18..=0x1B | 0x20..=0x23 | 0x28..=0x2B
        | 0x30..=0x33 | 0x38..=0x3B | 0x62 | 0x63 | 0x69 | 0x6B | 0x80..=0x8F | 0xC0 | 0xC1
        | 0xC4..=0xC7 | 0xD0..=0xD3 | 0xD8..=0xDF | 0xF6 | 0xF7 | 0xFE | 0xFF)
}

/// Decodes one instruction from `bytes` for `model` in 16- or 32-bit code.
pub fn decode(model: CpuModel, code32: bool, bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let mut buf = [0u8; FETCH_LEN];
    let n = bytes.len().min(FETCH_LEN);
    buf[..n].copy_from_slice(&bytes[..n]);
    let is8086 = model == CpuModel::I8086;
    let is286 = model == CpuModel::I80286;

    // Prefix scan.
    let mut i = 0;
    let (mut op66, mut op67, mut rep, mut seg) = (false, false, 0u8, None);
    let mut bad_prefix = false;
    loop {
        if let Some(max) = model.max_insn_len() {
            if i >= max {
                // Only prefixes up to the limit: the CPU gives up with #GP(0).
                return Ok(Decoded::too_long(max as u8));
            }
        }
        if i >= n {
            return Err(DecodeError::Truncated);
        }
        match buf[i] {
            0x26 => seg = Some(SegReg::Es),
            0x2E => seg = Some(SegReg::Cs),
            0x36 => seg = Some(SegReg::Ss),
            0x3E => seg = Some(SegReg::Ds),
            0x64..=0x67 if is8086 => break, // Jcc aliases on the 8086
            0x64 => seg = Some(SegReg::Fs),
            0x65 => seg = Some(SegReg::Gs),
            0x66 => op66 = true,
            0x67 => op67 = true,
            0xF0 => {}
            0xF1 if !model.is_386_plus() => buf[i] = 0xF0, // acts as LOCK
            0xF2 | 0xF3 => rep = buf[i],
            _ => break,
        }
        if is286 && matches!(buf[i], 0x64..=0x67) {
            // Undefined opcodes on the 80286: #UD at this byte.
            bad_prefix = true;
            break;
        }
        i += 1;
    }
    if bad_prefix {
        return Ok(Decoded::invalid((i + 1) as u8));
    }

    let op_at = i;
    let mut esc = false;
    let op = buf[op_at];
    // Chip-specific rewrites before iced sees the bytes.
    if !model.is_386_plus() {
        if is8086 {
            match op {
                0x60..=0x6F => buf[op_at] = op + 0x10,
                0xC0 | 0xC1 | 0xC8 | 0xC9 => buf[op_at] = op + 2,
                _ => {}
            }
        }
        if op == 0x0F && !is8086 {
            // 80286 two-byte opcodes: only 0F 00..03, 05, 06 exist.
            match buf.get(op_at + 1) {
                Some(0x00..=0x03) | Some(0x05) | Some(0x06) => {}
                _ if op_at + 1 >= n => return Err(DecodeError::Truncated),
                _ => return Ok(Decoded::invalid((op_at + 1) as u8)),
            }
        }
        if op_at + 1 < n {
            let modrm = &mut buf[op_at + 1];
            let r = (*modrm >> 3) & 7;
            match op {
                0x8F | 0xC6 | 0xC7 if is8086 => *modrm &= !0x38,
                0x8C | 0x8E if is8086 => *modrm &= !0x20,
                0xFF if is8086 && r == 7 => *modrm &= !0x08,
                0xD8..=0xDF => esc = true,
                _ => {}
            }
        }
        if esc {
            // Decode as TEST r/m8,r8 just to get the ModRM length.
            buf[op_at] = 0x84;
        }
    }

    let reg_form = buf.get(op_at + 1).is_some_and(|m| m >> 6 == 3);
    if !is8086 && reg_form && matches!(op, 0x62 | 0xC4 | 0xC5) {
        // No EVEX/VEX on these models (iced reads these bytes as such
        // prefixes): BOUND, LES and LDS with a register operand raise #UD.
        return Ok(Decoded::invalid((op_at + 2).min(FETCH_LEN) as u8));
    }
    let options = if model.is_386_plus() {
        DecoderOptions::NONE
    } else {
        DecoderOptions::NO_INVALID_CHECK
    };
    let bitness = if code32 { 32 } else { 16 };
    let mut decoder = Decoder::with_ip(bitness, &buf[..n], 0, options);
    let insn = decoder.decode();
    let len = insn.len();
    if insn.is_invalid() {
        if decoder.last_error() == iced_x86::DecoderError::NoMoreBytes && n < FETCH_LEN {
            return Err(DecodeError::Truncated);
        }
        let l = if len == 0 { op_at + 1 } else { len };
        return Ok(Decoded::invalid(l.min(FETCH_LEN) as u8));
    }
    if let Some(max) = model.max_insn_len() {
        if len > max {
            // Over-long instructions raise #GP(0) (seen on the 80286 too).
            return Ok(Decoded::too_long(max as u8));
        }
    }
    let opcode = if buf[op_at] == 0x0F {
        0x0F00 | u16::from(buf[op_at + 1])
    } else {
        u16::from(op)
    };
    let modrm_reg = if opcode >= 0x0F00 {
        buf.get(op_at + 2).map_or(0, |m| (m >> 3) & 7)
    } else if has_modrm(buf[op_at]) || esc {
        buf.get(op_at + 1).map_or(0, |m| (m >> 3) & 7)
    } else {
        0
    };
    let mut invalid = false;
    if !model.is_386_plus() {
        // No 80386 registers on earlier chips (8C/8E with FS/GS, MOV CRn...).
        let uses_386_seg = (0..insn.op_count()).any(|k| {
            insn.op_kind(k) == iced_x86::OpKind::Register
                && matches!(
                    insn.op_register(k),
                    iced_x86::Register::FS | iced_x86::Register::GS
                )
        });
        invalid |= uses_386_seg;
        // MOV CS, r/m is #UD from the 80286 on.
        invalid |= is286 && opcode == 0x8E && modrm_reg == 1;
    }
    if insn.mnemonic() == Mnemonic::Ud2 {
        invalid = true;
    }
    Ok(Decoded {
        insn,
        len: len as u8,
        op32: code32 ^ op66,
        addr32: code32 ^ op67,
        opcode,
        modrm_reg,
        rep,
        seg_override: seg,
        invalid,
        too_long: false,
        esc,
    })
}

struct Entry {
    /// Physical address | mode bits; `u64::MAX` when empty.
    key: u64,
    /// The code generation of the instruction's page when it was decoded.
    gen: u32,
    d: Decoded,
}

/// A direct-mapped cache of decoded instructions keyed by physical address
/// and code size, trusted only while the code generation of the
/// instruction's page is unchanged (see `Bus::code_generation`).
pub struct DecodeCache {
    entries: Vec<Entry>,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that had to decode.
    pub misses: u64,
}

const CACHE_BITS: u32 = 13;

impl Default for DecodeCache {
    fn default() -> Self {
        Self::new()
    }
}

impl DecodeCache {
    /// An empty cache.
    pub fn new() -> DecodeCache {
        let empty = || Entry {
            key: u64::MAX,
            gen: 0,
            d: Decoded::invalid(1),
        };
        DecodeCache {
            entries: (0..1 << CACHE_BITS).map(|_| empty()).collect(),
            hits: 0,
            misses: 0,
        }
    }

    #[inline]
    fn slot(key: u64) -> usize {
        ((key ^ (key >> CACHE_BITS)) as usize) & ((1 << CACHE_BITS) - 1)
    }

    /// Key for a linear address in 16- or 32-bit code.
    #[inline]
    pub fn key(linear: u32, code32: bool) -> u64 {
        u64::from(linear) | (u64::from(code32) << 32)
    }

    /// The slot holding the decoding for `key`, if made at generation `gen`.
    #[inline]
    pub fn lookup(&mut self, key: u64, gen: u32) -> Option<usize> {
        let slot = Self::slot(key);
        let e = &self.entries[slot];
        if e.key == key && e.gen == gen {
            self.hits += 1;
            Some(slot)
        } else {
            self.misses += 1;
            None
        }
    }

    /// The decoding in `slot` (from [`DecodeCache::lookup`] or [`DecodeCache::put`]).
    #[inline]
    pub fn decoded(&self, slot: usize) -> &Decoded {
        &self.entries[slot].d
    }

    /// Stores a decoding; returns its slot.
    #[inline]
    pub fn put(&mut self, key: u64, gen: u32, d: Decoded) -> usize {
        let slot = Self::slot(key);
        self.entries[slot] = Entry { key, gen, d };
        slot
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        for e in &mut self.entries {
            e.key = u64::MAX;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_on_8086() {
        let d = decode(CpuModel::I8086, false, &[0x60, 0x05]).unwrap();
        assert_eq!(d.insn.mnemonic(), Mnemonic::Jo);
        let d = decode(CpuModel::I8086, false, &[0xC1]).unwrap();
        assert_eq!(d.insn.mnemonic(), Mnemonic::Ret);
        let d = decode(CpuModel::I80286, false, &[0xC1, 0xE0, 0x03]).unwrap();
        assert_eq!(d.insn.mnemonic(), Mnemonic::Shl);
    }

    #[test]
    fn les_lds_bound_with_a_register_are_not_vex_or_evex() {
        for model in [CpuModel::I80286, CpuModel::P6] {
            for op in [0xC4, 0xC5, 0x62] {
                let d = decode(model, true, &[op, 0xC0, 0x70, 0x90, 0xF4]).unwrap();
                assert!(d.invalid && d.len == 2, "{model:?} {op:02x}");
            }
            let d = decode(model, false, &[0xC5, 0x06, 0x34, 0x12]).unwrap();
            assert_eq!(d.insn.mnemonic(), Mnemonic::Lds);
            assert!(!d.invalid);
        }
    }

    #[test]
    fn prefixes_limits_on_286() {
        let d = decode(CpuModel::I80286, false, &[0x66, 0x40]).unwrap();
        assert!(d.invalid);
        let d = decode(CpuModel::I80286, false, &[0x26; 12]).unwrap();
        assert!(d.too_long);
        let d = decode(CpuModel::P6, false, &[0x66, 0x40]).unwrap();
        assert!(!d.invalid && d.op32);
    }

    #[test]
    fn truncated() {
        assert_eq!(
            decode(CpuModel::P6, true, &[0x05, 1, 2]).unwrap_err(),
            DecodeError::Truncated
        );
    }

    #[test]
    fn never_panics_on_random_bytes() {
        let mut x: u64 = 0x1234_5678_9abc_def1;
        for _ in 0..20000 {
            let mut b = [0u8; 16];
            for v in &mut b {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *v = x as u8;
            }
            for m in [CpuModel::I8086, CpuModel::I80286, CpuModel::P6] {
                for n in [1, 5, 16] {
                    let _ = decode(m, x & 1 == 0, &b[..n]);
                }
            }
        }
    }
}
