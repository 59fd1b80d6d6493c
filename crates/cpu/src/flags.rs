//! EFLAGS bits.

use bitflags::bitflags;

bitflags! {
    /// The EFLAGS register.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Eflags: u32 {
        /// Carry.
        const CF = 1 << 0;
        /// Always 1.
        const RESERVED1 = 1 << 1;
        /// Parity of the low result byte.
        const PF = 1 << 2;
        /// Auxiliary (BCD) carry.
        const AF = 1 << 4;
        /// Zero.
        const ZF = 1 << 6;
        /// Sign.
        const SF = 1 << 7;
        /// Trap (single step).
        const TF = 1 << 8;
        /// Interrupt enable.
        const IF = 1 << 9;
        /// Direction.
        const DF = 1 << 10;
        /// Overflow.
        const OF = 1 << 11;
        /// I/O privilege level (2 bits).
        const IOPL = 3 << 12;
        /// Nested task.
        const NT = 1 << 14;
        /// Resume.
        const RF = 1 << 16;
        /// Virtual-8086 mode.
        const VM = 1 << 17;
        /// Alignment check.
        const AC = 1 << 18;
        /// Virtual interrupt flag.
        const VIF = 1 << 19;
        /// Virtual interrupt pending.
        const VIP = 1 << 20;
        /// CPUID available.
        const ID = 1 << 21;
    }
}

/// Carry flag bit.
pub const CF: u32 = Eflags::CF.bits();
/// Parity flag bit.
pub const PF: u32 = Eflags::PF.bits();
/// Auxiliary carry bit.
pub const AF: u32 = Eflags::AF.bits();
/// Zero flag bit.
pub const ZF: u32 = Eflags::ZF.bits();
/// Sign flag bit.
pub const SF: u32 = Eflags::SF.bits();
/// Trap flag bit.
pub const TF: u32 = Eflags::TF.bits();
/// Interrupt flag bit.
pub const IF: u32 = Eflags::IF.bits();
/// Direction flag bit.
pub const DF: u32 = Eflags::DF.bits();
/// Overflow flag bit.
pub const OF: u32 = Eflags::OF.bits();
/// IOPL field.
pub const IOPL: u32 = Eflags::IOPL.bits();
/// Nested task bit.
pub const NT: u32 = Eflags::NT.bits();
/// The six arithmetic status flags.
pub const STATUS: u32 = CF | PF | AF | ZF | SF | OF;

/// Even parity of the low byte: PF as the CPU computes it.
#[inline]
pub fn parity(v: u32) -> bool {
    (v as u8).count_ones().is_multiple_of(2)
}
