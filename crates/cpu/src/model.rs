//! CPU models: where real chips differ.

use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// Which chip the interpreter behaves like.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CpuModel {
    /// Intel 8086: no #UD, unmasked shift counts, PUSH SP pushes the new SP,
    /// divide errors push the next IP, FLAGS bits 12-15 read as 1.
    I8086,
    /// Intel 80286 (real mode): 186/286 opcodes, #UD, counts masked to 5 bits,
    /// 10-byte instruction limit, FLAGS bits 12-15 clear in real mode.
    I80286,
    /// A P6-class 32-bit CPU (Pentium Pro / II family).
    P6,
}

impl CpuModel {
    /// Physical address lines: 20 on the 8086, 24 on the 80286, 32 on P6.
    pub fn address_mask(self) -> u32 {
        match self {
            CpuModel::I8086 => 0x000F_FFFF,
            CpuModel::I80286 => 0x00FF_FFFF,
            CpuModel::P6 => 0xFFFF_FFFF,
        }
    }

    /// Longest legal instruction in bytes (`None`: no limit, as on the 8086).
    pub fn max_insn_len(self) -> Option<usize> {
        match self {
            CpuModel::I8086 => None,
            CpuModel::I80286 => Some(10),
            CpuModel::P6 => Some(15),
        }
    }

    /// True for the 80386 and later (32-bit registers, FS/GS, 0F opcodes).
    pub fn is_386_plus(self) -> bool {
        matches!(self, CpuModel::P6)
    }
}

impl FromStr for CpuModel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "8086" | "8088" | "i8086" => Ok(CpuModel::I8086),
            "80286" | "286" | "i286" => Ok(CpuModel::I80286),
            "p6" | "686" | "i686" | "pentiumpro" => Ok(CpuModel::P6),
            other => Err(format!(
                "unknown CPU model '{other}' (expected 8086, 80286 or p6)"
            )),
        }
    }
}

impl std::fmt::Display for CpuModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CpuModel::I8086 => "8086",
            CpuModel::I80286 => "80286",
            CpuModel::P6 => "p6",
        })
    }
}
