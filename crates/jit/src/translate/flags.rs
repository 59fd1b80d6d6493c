//! Where a block keeps the guest's arithmetic flags between the operation
//! that set them and EFLAGS.
//!
//! The 32-bit ALU operations (ADD ... CMP, TEST, INC, DEC on registers and
//! memory) leave their flags in the host's flags and nowhere else. They stay
//! there while the ops that follow leave the host's flags alone (register
//! moves, LEA); before an op that changes them (a TLB check compares) they
//! go to rax as LAHF/SETO leave them (AH: SF ZF AF PF CF, AL: OF), and
//! before an op that needs rax they go to the pending slot `[rsp + 8]` (see
//! [`merge_flags`](super::merge_flags)). A reader takes them from the
//! nearest place: the host's flags as they are, rax through SAHF (and a
//! compare that gives OF), or the slot; an early exit, a branch and the
//! block's end merge them into EFLAGS from rax or the slot. A flag that
//! makes the round trip through memory costs a store-to-load wait on every
//! ADC or CMOVcc that reads it; through rax it does not.
//!
//! Without LAHF in 64-bit mode every operation saves its flags in the slot
//! at once (a PUSHFQ image), as before.

use super::{host_has_lahf, materialize, merge_ecx, Assembler, Cond, FlagSrc};
use dynasmrt::{dynasm, DynasmApi};

/// The pending flags: those a flag-setting op left that EFLAGS has not
/// taken yet (the host's mask and the flags cleared), and where they are.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Pending {
    /// The flags not yet in EFLAGS: (taken from the host, cleared).
    pub p: Option<(u32, u32)>,
    /// The host's flags are them.
    pub host: bool,
    /// rax holds their LAHF/SETO image.
    pub rax: bool,
    /// The pending slot holds them.
    pub slot: bool,
}

impl Pending {
    /// Flags an op just set and left in the host's flags only.
    pub fn in_host(p: (u32, u32)) -> Pending {
        Pending {
            p: Some(p),
            host: true,
            rax: false,
            slot: false,
        }
    }

    /// Flags an op saved in the slot (and left in the host's flags).
    pub fn saved(p: (u32, u32)) -> Pending {
        Pending {
            p: Some(p),
            host: true,
            rax: false,
            slot: true,
        }
    }

    /// Whether they hold every flag of `bits`.
    pub fn holds(&self, bits: u32) -> bool {
        self.p.is_some_and(|(mask, _)| bits & !mask == 0)
    }

    /// Before an op that changes the host's flags: copies them to rax.
    pub fn keep_off_host(&mut self, a: &mut Assembler) {
        if self.p.is_some() && self.host && !self.rax && !self.slot {
            dynasm!(a ; .arch x64 ; lahf ; seto al);
            self.rax = true;
        }
    }

    /// Before an op that changes rax (or the host's flags and rax): makes
    /// sure the slot holds them.
    pub fn keep_off_rax(&mut self, a: &mut Assembler) {
        self.keep_off_host(a);
        if self.p.is_some() && !self.slot {
            debug_assert!(self.rax, "pending flags in no place");
            dynasm!(a ; .arch x64 ; mov WORD [rsp + 8], ax);
            self.slot = true;
        }
    }

    /// Merges them into EFLAGS (if any) from where they are; clobbers rax
    /// (when only the host has them), ecx, r11 and the host's flags.
    pub fn merge(&mut self, a: &mut Assembler) {
        if let Some(p) = self.p {
            if self.slot {
                materialize(a, p);
            } else {
                if !self.rax {
                    debug_assert!(self.host, "pending flags in no place");
                    dynasm!(a ; .arch x64 ; lahf ; seto al);
                }
                materialize_rax(a, p);
            }
        }
        *self = Pending::default();
    }

    /// The place a reader that runs before anything changes the host's
    /// flags (`first`), or after an inline TLB check, takes them from.
    pub fn source(&self, first: bool) -> FlagSrc {
        if self.host && first {
            FlagSrc::Host
        } else if self.rax {
            FlagSrc::Rax
        } else {
            debug_assert!(self.slot, "pending flags in no place");
            FlagSrc::Pending
        }
    }
}

/// Merges the pending flags `(mask, clear)` in rax's LAHF/SETO image into
/// EFLAGS. Clobbers ecx, r11 and the host's flags.
fn materialize_rax(a: &mut Assembler, pending: (u32, u32)) {
    dynasm!(a
        ; .arch x64
        ; movzx ecx, ah
        ; movzx r11d, al
        ; shl r11d, 11
        ; or ecx, r11d
    );
    merge_ecx(a, pending);
}

/// Makes the host's flags the pending ones again from rax: all six, as the
/// host's flags are taken to hold them afterwards (SAHF, and for OF a
/// compare that sets it exactly when AL is 1). rax stays.
pub(super) fn restore_from_rax(a: &mut Assembler) {
    debug_assert!(host_has_lahf());
    // 1 - (-127) overflows a signed byte; 0 - (-127) does not.
    dynasm!(a
        ; .arch x64
        ; cmp al, -127i8
        ; sahf
    );
}

/// SETcc al on the host's flags.
pub(super) fn setcc_al(a: &mut Assembler, cc: Cond) {
    dynasm!(a ; .arch x64 ; .bytes [0x0F, 0x90 | cc as u8, 0xC0]);
}

/// CMOVcc on the host's flags: the 32-bit host register `dst` := esi.
pub(super) fn cmov_from_esi(a: &mut Assembler, cc: Cond, dst: u8) {
    if dst >= 8 {
        dynasm!(a ; .arch x64 ; .bytes [0x44]);
    }
    let modrm = 0xC0 | (dst & 7) << 3 | 6;
    dynasm!(a ; .arch x64 ; .bytes [0x0F, 0x40 | cc as u8, modrm]);
}
