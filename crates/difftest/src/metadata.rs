//! Loader for a SingleStepTests suite's `metadata.json`.
//!
//! The file has a top-level `"opcodes"` object keyed by upper-case hex opcode
//! (`"00"`..`"FF"`, and on 80286 also two-byte `"0F00"`..`"0F06"`). Each value is either
//! a leaf `{"status": ..., "flags": ..., "flags-mask": <u16>, "arch": ...}` or a group
//! `{"reg": {"0": leaf, ..., "7": leaf}}` keyed by the ModRM.reg digit. `flags-mask`
//! (absent = 0xFFFF) must be ANDed into both the emulator's and the expected FLAGS
//! before comparing.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

/// Instruction prefixes skipped by [`Metadata::lookup`] / [`Metadata::opcode_key`]:
/// segment overrides, LOCK, F1 (LOCK alias on 8086/80286), REPNE, REP.
pub const PREFIXES: [u8; 8] = [0x26, 0x2E, 0x36, 0x3E, 0xF0, 0xF1, 0xF2, 0xF3];

/// Status string returned for opcodes that the metadata does not describe.
pub const STATUS_UNKNOWN: &str = "unknown";

/// Per-opcode (or per opcode + ModRM.reg) information.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OpcodeInfo {
    /// `normal`, `prefix`, `alias`, `undocumented`, `undefined`, `fpu`, `extension`,
    /// or [`STATUS_UNKNOWN`] when the metadata has no entry.
    pub status: String,
    /// Mask of defined FLAGS bits; 0xFFFF when absent.
    pub flags_mask: u16,
}

impl OpcodeInfo {
    fn unknown() -> OpcodeInfo {
        OpcodeInfo {
            status: STATUS_UNKNOWN.to_string(),
            flags_mask: 0xFFFF,
        }
    }
}

/// An opcode's entry: a single leaf or a table indexed by ModRM.reg.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Leaf(OpcodeInfo),
    Group(Box<[Option<OpcodeInfo>; 8]>),
}

/// Error while loading or parsing `metadata.json`.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The file could not be read.
    #[error("{file}: I/O error: {source}")]
    Io {
        /// File path.
        file: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid JSON.
    #[error("{file}: invalid JSON: {source}")]
    Json {
        /// File path (`<string>` for [`Metadata::parse`]).
        file: String,
        /// Underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// The JSON does not have the expected structure.
    #[error("{file}: invalid metadata at {at}: {msg}")]
    Invalid {
        /// File path (`<string>` for [`Metadata::parse`]).
        file: String,
        /// JSON location, e.g. `opcodes.D0.reg.4`.
        at: String,
        /// Description.
        msg: String,
    },
}

/// A suite's `metadata.json`: opcode statuses and undefined-flags masks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// The `"cpu"` field (e.g. `"8086"`, `"286"`), empty if absent.
    pub cpu: String,
    /// The `"version"` field, empty if absent.
    pub version: String,
    opcodes: HashMap<String, Entry>,
    /// True if any two-byte `0Fxx` key exists (80286); then `0F` is an escape byte.
    two_byte_0f: bool,
}

const PARSE_NAME: &str = "<string>";

impl Metadata {
    /// Reads and parses a `metadata.json` file.
    pub fn load(path: &Path) -> Result<Metadata, MetadataError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| MetadataError::Io {
            file: file.clone(),
            source,
        })?;
        Self::parse_named(&text, &file)
    }

    /// Parses the text of a `metadata.json` file.
    pub fn parse(json: &str) -> Result<Metadata, MetadataError> {
        Self::parse_named(json, PARSE_NAME)
    }

    fn parse_named(json: &str, file: &str) -> Result<Metadata, MetadataError> {
        let invalid = |at: &str, msg: &str| MetadataError::Invalid {
            file: file.to_string(),
            at: at.to_string(),
            msg: msg.to_string(),
        };
        let root: Value = serde_json::from_str(json).map_err(|source| MetadataError::Json {
            file: file.to_string(),
            source,
        })?;
        let root = root
            .as_object()
            .ok_or_else(|| invalid("top level", "expected an object"))?;
        let text_field = |k: &str| match root.get(k) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        };
        let ops = root
            .get("opcodes")
            .ok_or_else(|| invalid("top level", "missing \"opcodes\""))?
            .as_object()
            .ok_or_else(|| invalid("opcodes", "expected an object"))?;

        let mut opcodes = HashMap::with_capacity(ops.len());
        for (key, val) in ops {
            let at = format!("opcodes.{key}");
            let norm = key.to_ascii_uppercase();
            let valid_key =
                (norm.len() == 2 || norm.len() == 4) && norm.bytes().all(|b| b.is_ascii_hexdigit());
            if !valid_key {
                return Err(invalid(&at, "key is not a 2- or 4-digit hex opcode"));
            }
            let obj = val
                .as_object()
                .ok_or_else(|| invalid(&at, "expected an object"))?;
            let entry = match obj.get("reg") {
                Some(reg) => {
                    let reg = reg
                        .as_object()
                        .ok_or_else(|| invalid(&format!("{at}.reg"), "expected an object"))?;
                    let mut table: [Option<OpcodeInfo>; 8] = Default::default();
                    for (digit, leaf) in reg {
                        let at = format!("{at}.reg.{digit}");
                        let r: usize = match digit.parse() {
                            Ok(r) if r < 8 => r,
                            _ => return Err(invalid(&at, "reg key is not a digit 0-7")),
                        };
                        table[r] = Some(parse_leaf(leaf, &at, file)?);
                    }
                    Entry::Group(Box::new(table))
                }
                None => Entry::Leaf(parse_leaf(val, &at, file)?),
            };
            if opcodes.insert(norm, entry).is_some() {
                return Err(invalid(&at, "duplicate opcode key (case-insensitive)"));
            }
        }
        let two_byte_0f = opcodes.keys().any(|k| k.len() == 4 && k.starts_with("0F"));
        Ok(Metadata {
            cpu: text_field("cpu"),
            version: text_field("version"),
            opcodes,
            two_byte_0f,
        })
    }

    /// Number of opcode keys in the table.
    pub fn len(&self) -> usize {
        self.opcodes.len()
    }

    /// True if the opcode table is empty.
    pub fn is_empty(&self) -> bool {
        self.opcodes.is_empty()
    }

    /// Resolves `bytes` to (base key, ModRM.reg if the entry is a reg group, entry).
    fn resolve(&self, bytes: &[u8]) -> Option<(String, Option<u8>, Option<&Entry>)> {
        let last = *bytes.last()?;
        let Some(mut pos) = bytes.iter().position(|b| !PREFIXES.contains(b)) else {
            // Only prefixes: describe the last one.
            let key = format!("{last:02X}");
            let e = self.opcodes.get(&key);
            return Some((key, None, e));
        };
        let op = bytes[pos];
        let mut key = format!("{op:02X}");
        if op == 0x0F && self.two_byte_0f {
            if let Some(&op2) = bytes.get(pos + 1) {
                key = format!("0F{op2:02X}");
                pos += 1;
            }
        }
        let entry = self.opcodes.get(&key);
        let reg = match entry {
            Some(Entry::Group(_)) => bytes.get(pos + 1).map(|m| (m >> 3) & 7),
            _ => None,
        };
        Some((key, reg, entry))
    }

    /// Looks up the instruction in `bytes` (skipping prefixes 26 2E 36 3E F0 F1 F2 F3; for
    /// 80286 also the two-byte 0F xx opcodes keyed "0F00" etc.), applying the ModRM.reg
    /// sub-table where present. Unknown opcodes (or a group opcode without a ModRM byte)
    /// give status [`STATUS_UNKNOWN`] and mask 0xFFFF.
    pub fn lookup(&self, bytes: &[u8]) -> OpcodeInfo {
        match self.resolve(bytes) {
            Some((_, _, Some(Entry::Leaf(info)))) => info.clone(),
            Some((_, Some(r), Some(Entry::Group(t)))) => {
                t[r as usize].clone().unwrap_or_else(OpcodeInfo::unknown)
            }
            _ => OpcodeInfo::unknown(),
        }
    }

    /// Opcode key used for reporting, e.g. "D0.4", "0F01.2", "A4": the same naming as the
    /// test files. The `.r` suffix is added whenever the metadata splits the opcode by
    /// ModRM.reg, so the 8F/C6/C7 tests (one unsplit file each) report as "8F.0" etc.
    /// Returns an empty string for empty `bytes`.
    pub fn opcode_key(&self, bytes: &[u8]) -> String {
        match self.resolve(bytes) {
            Some((key, Some(r), _)) => format!("{key}.{r}"),
            Some((key, None, _)) => key,
            None => String::new(),
        }
    }
}

fn parse_leaf(v: &Value, at: &str, file: &str) -> Result<OpcodeInfo, MetadataError> {
    let invalid = |msg: String| MetadataError::Invalid {
        file: file.to_string(),
        at: at.to_string(),
        msg,
    };
    let obj = v
        .as_object()
        .ok_or_else(|| invalid("expected an object".into()))?;
    let status = match obj.get("status") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(invalid("\"status\" is not a string".into())),
        None => return Err(invalid("missing \"status\"".into())),
    };
    let flags_mask = match obj.get("flags-mask") {
        None | Some(Value::Null) => 0xFFFF,
        Some(m) => m
            .as_u64()
            .and_then(|m| u16::try_from(m).ok())
            .ok_or_else(|| invalid(format!("\"flags-mask\" {m} is not a u16")))?,
    };
    Ok(OpcodeInfo { status, flags_mask })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moo::{testdata_dir, MooFile, TESTDATA_ENV};
    use std::path::PathBuf;

    fn suite_dir(suite: &str) -> Option<PathBuf> {
        match testdata_dir().map(|d| d.join("singlestep").join(suite)) {
            Some(d) if d.is_dir() => Some(d),
            _ => {
                eprintln!("NOTE: test data for {suite} not found (set {TESTDATA_ENV}); skipping");
                None
            }
        }
    }

    const SUITES: [&str; 2] = ["8086/v1_binary", "80286/v1_real_mode"];

    const SAMPLE: &str = r#"{
        "cpu": "286", "version": "1.0.0",
        "opcodes": {
            "00": {"status": "normal", "arch": "86"},
            "0f": {"status": "extension"},
            "0F01": {"reg": {"2": {"status": "normal"}, "5": {"status": "undefined"}}},
            "26": {"status": "prefix"},
            "D2": {"reg": {"4": {"status": "normal", "flags": "o....a..", "flags-mask": 63471}}},
            "F1": {"status": "prefix"},
            "A4": {"status": "normal", "flags-mask": 65535}
        }
    }"#;

    #[test]
    fn parse_sample() {
        let m = Metadata::parse(SAMPLE).unwrap();
        assert_eq!(
            (m.cpu.as_str(), m.version.as_str(), m.len()),
            ("286", "1.0.0", 7)
        );
        let info = |s: &str, mask| OpcodeInfo {
            status: s.to_string(),
            flags_mask: mask,
        };
        assert_eq!(m.lookup(&[0x00, 0xC0]), info("normal", 0xFFFF));
        assert_eq!(m.lookup(&[0x26, 0xF1, 0xD2, 0xE0]), info("normal", 63471));
        assert_eq!(m.opcode_key(&[0x26, 0xF1, 0xD2, 0xE0]), "D2.4");
        assert_eq!(m.lookup(&[0xD2, 0xC0]), info(STATUS_UNKNOWN, 0xFFFF));
        assert_eq!(m.opcode_key(&[0xD2, 0xC0]), "D2.0");
        // Lower-case key normalised; two-byte opcodes since a 0Fxx key exists.
        assert_eq!(m.opcode_key(&[0x0F, 0x01, 0x10]), "0F01.2");
        assert_eq!(
            m.lookup(&[0xF0, 0x0F, 0x01, 0x28]),
            info("undefined", 0xFFFF)
        );
        assert_eq!(m.opcode_key(&[0x0F]), "0F");
        assert_eq!(m.lookup(&[0x0F]), info("extension", 0xFFFF));
        // Group opcode without a ModRM byte.
        assert_eq!(m.opcode_key(&[0xD2]), "D2");
        assert_eq!(m.lookup(&[0xD2]).status, STATUS_UNKNOWN);
        // Only prefixes: the last prefix is described.
        assert_eq!(m.opcode_key(&[0x26, 0xF1]), "F1");
        assert_eq!(m.lookup(&[0x26]).status, "prefix");
        assert_eq!(m.opcode_key(&[]), "");
        assert_eq!(m.lookup(&[]).status, STATUS_UNKNOWN);
        assert_eq!(m.opcode_key(&[0xF3, 0xA4]), "A4");
        assert_eq!(m.opcode_key(&[0x9B]), "9B");
        assert_eq!(m.lookup(&[0x9B]).status, STATUS_UNKNOWN);
    }

    #[test]
    fn parse_errors() {
        let bad = [
            ("not json", "invalid JSON"),
            ("[]", "expected an object"),
            ("{}", "missing \"opcodes\""),
            (
                r#"{"opcodes": {"XYZ": {"status": "normal"}}}"#,
                "opcodes.XYZ",
            ),
            (
                r#"{"opcodes": {"00": {"flags-mask": 1}}}"#,
                "missing \"status\"",
            ),
            (
                r#"{"opcodes": {"00": {"status": "normal", "flags-mask": 70000}}}"#,
                "not a u16",
            ),
            (
                r#"{"opcodes": {"D0": {"reg": {"8": {"status": "normal"}}}}}"#,
                "opcodes.D0.reg.8",
            ),
            (
                r#"{"opcodes": {"d0": {"status": "a"}, "D0": {"status": "b"}}}"#,
                "duplicate",
            ),
        ];
        for (json, needle) in bad {
            let e = Metadata::parse(json).unwrap_err().to_string();
            assert!(e.starts_with("<string>: "), "{e}");
            assert!(e.contains(needle), "{json}: {e:?} lacks {needle:?}");
        }
        let e = Metadata::load(Path::new("/nonexistent/metadata.json")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/metadata.json"), "{e}");
    }

    #[test]
    fn real_metadata() {
        for suite in SUITES {
            let Some(dir) = suite_dir(suite) else {
                continue;
            };
            let m = Metadata::load(&dir.join("metadata.json")).unwrap();
            let is_286 = suite.starts_with("80286");
            assert_eq!(m.len(), if is_286 { 263 } else { 256 });
            assert_eq!(m.cpu, if is_286 { "286" } else { "8086" });
            // F1 is a prefix in both suites.
            assert_eq!(m.lookup(&[0xF1]).status, "prefix");
            // 0F: POP CS on 8086, escape byte on 80286.
            assert_eq!(
                m.opcode_key(&[0x0F, 0x01, 0x10]),
                if is_286 { "0F01.2" } else { "0F" }
            );
            assert_eq!(m.lookup(&[0x0F, 0x00, 0x00]).status, "normal");
            // D2.x masks: .4/.5/.7 differ between the suites (CF undefined on 286).
            assert_eq!(m.lookup(&[0xD2, 0x00]).flags_mask, 63487);
            assert_eq!(
                m.lookup(&[0xD2, 0x30]).flags_mask,
                if is_286 { 63470 } else { 63274 }
            );
            assert_eq!(
                m.lookup(&[0x2E, 0xD2, 0x27]).flags_mask,
                if is_286 { 63470 } else { 63471 }
            );
            assert_eq!(m.lookup(&[0xD2, 0x30]).status, "undocumented");
            assert_eq!(m.lookup(&[0x8F, 0x08]).status, "undefined");
            assert_eq!(m.lookup(&[0xD8, 0x00]).status, "fpu");
            assert_eq!(m.lookup(&[0x00, 0x00]).flags_mask, 0xFFFF);
        }
    }

    /// For every test of both suites, `opcode_key` on BYTS names the file the test is in
    /// (8F/C6/C7 files are not split by reg, so only the base key is compared there), and
    /// the D2.x tests get the flags mask of their metadata reg entry.
    #[test]
    fn keys_match_file_names() {
        for suite in SUITES {
            let Some(dir) = suite_dir(suite) else {
                continue;
            };
            let m = Metadata::load(&dir.join("metadata.json")).unwrap();
            let json: Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("metadata.json")).unwrap())
                    .unwrap();
            let mut files: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.ends_with(".MOO.gz"))
                .collect();
            files.sort();
            assert!(files.len() > 300);
            let mut prefixed = 0;
            for name in &files {
                let stem = name.trim_end_matches(".MOO.gz");
                let f = MooFile::load(&dir.join(name)).unwrap();
                for t in &f.tests {
                    let key = m.opcode_key(&t.bytes);
                    let base = key.split('.').next().unwrap();
                    if stem.contains('.') {
                        assert_eq!(key, stem, "{suite}/{name} {:02X?}", t.bytes);
                    } else {
                        assert_eq!(base, stem, "{suite}/{name} {:02X?}", t.bytes);
                    }
                    let info = m.lookup(&t.bytes);
                    assert_ne!(
                        info.status, STATUS_UNKNOWN,
                        "{suite}/{name} {:02X?}",
                        t.bytes
                    );
                    if let Some(r) = stem.strip_prefix("D2.") {
                        let want = json["opcodes"]["D2"]["reg"][r]["flags-mask"]
                            .as_u64()
                            .unwrap();
                        assert_eq!(info.flags_mask as u64, want, "{name}");
                    }
                    prefixed += PREFIXES.contains(&t.bytes[0]) as u32;
                }
            }
            // Many tests (e.g. in F6.0) start with segment/LOCK/REP prefixes.
            assert!(prefixed > 10_000, "{suite}: {prefixed}");
        }
    }
}
