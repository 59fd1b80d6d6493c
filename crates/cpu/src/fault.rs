//! CPU exceptions as values.

use std::fmt;

/// Exception vectors.
pub mod vector {
    /// #DE divide error.
    pub const DE: u8 = 0;
    /// #DB debug.
    pub const DB: u8 = 1;
    /// NMI.
    pub const NMI: u8 = 2;
    /// #BP breakpoint (INT3).
    pub const BP: u8 = 3;
    /// #OF overflow (INTO).
    pub const OF: u8 = 4;
    /// #BR BOUND range exceeded.
    pub const BR: u8 = 5;
    /// #UD invalid opcode.
    pub const UD: u8 = 6;
    /// #NM device not available.
    pub const NM: u8 = 7;
    /// #DF double fault.
    pub const DF: u8 = 8;
    /// #TS invalid TSS.
    pub const TS: u8 = 10;
    /// #NP segment not present.
    pub const NP: u8 = 11;
    /// #SS stack-segment fault.
    pub const SS: u8 = 12;
    /// #GP general protection.
    pub const GP: u8 = 13;
    /// #PF page fault.
    pub const PF: u8 = 14;
    /// #MF x87 floating-point error.
    pub const MF: u8 = 16;
}

/// An exception raised while executing an instruction.
///
/// Faults leave EIP at the faulting instruction; the few that report the
/// next instruction (the 8086's divide error) set EIP before returning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Exception vector.
    pub vector: u8,
    /// Error code pushed with the exception, if it has one.
    pub error: Option<u32>,
}

impl Fault {
    /// A fault without an error code.
    pub const fn new(vector: u8) -> Fault {
        Fault {
            vector,
            error: None,
        }
    }
    /// A fault with an error code.
    pub const fn with_error(vector: u8, error: u32) -> Fault {
        Fault {
            vector,
            error: Some(error),
        }
    }
    /// #UD.
    pub const UD: Fault = Fault::new(vector::UD);
    /// #DE.
    pub const DE: Fault = Fault::new(vector::DE);
    /// #GP(0).
    pub const GP0: Fault = Fault::with_error(vector::GP, 0);
    /// #SS(0).
    pub const SS0: Fault = Fault::with_error(vector::SS, 0);
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.vector {
            0 => "#DE",
            1 => "#DB",
            3 => "#BP",
            4 => "#OF",
            5 => "#BR",
            6 => "#UD",
            7 => "#NM",
            8 => "#DF",
            10 => "#TS",
            11 => "#NP",
            12 => "#SS",
            13 => "#GP",
            14 => "#PF",
            16 => "#MF",
            _ => return write!(f, "INT {:#04x}", self.vector),
        };
        match self.error {
            Some(e) => write!(f, "{name}({e:#x})"),
            None => f.write_str(name),
        }
    }
}

/// Result of one piece of instruction execution.
pub type Exec<T = ()> = Result<T, Fault>;
