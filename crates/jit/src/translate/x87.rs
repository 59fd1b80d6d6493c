//! x87 instructions in translated code, on the host's own x87 unit.
//!
//! The interpreter already computes every x87 instruction on the host FPU
//! (`morph86_cpu::fpu::host`): it loads the guest's state with FRSTOR, runs
//! the very same encoding, and takes the state back with FNSAVE — once per
//! instruction. Translated code loads the guest's state into the host FPU
//! at the first computing x87 instruction it meets (`Cpu::x87_native_image`,
//! then FRSTOR), runs the instructions as themselves (memory operands
//! rewritten to the host address the inline TLB check found), and keeps the
//! state there across integer work and chained blocks. It goes back (FNSAVE,
//! then `Cpu::x87_take_native_image`) before a helper call runs Rust code
//! inside a block, and in the trampoline when translated code returns to
//! the engine (early exits included): the interpreter, devices and
//! snapshots only ever see the state in `Cpu`. A flag in the trampoline's
//! frame says where the state is; a block checks it at its first x87
//! instruction and before its first helper call.
//!
//! Exactness: the host runs the same instruction on the same state as the
//! interpreter's backend does, so results, condition codes, tags and
//! exception flags are the same by construction. The native path is taken
//! only while every exception is masked in the guest's control word and CR0
//! has neither EM nor TS (otherwise the run's first instruction leaves the
//! block and the interpreter raises #NM, #MF or FERR#): a masked exception
//! never traps, so no host SIGFPE can come of a guest's arithmetic. The
//! guest's instruction and data pointers and opcode are stored by the code
//! itself after each instruction (the selectors once per block and segment;
//! the host's pointers are never taken back). FLDCW and FNSTCW run here too,
//! on the guest's control word in `Cpu` (kept as the P6 keeps it), as long
//! as the new one masks every exception. Covered by `tests::x87_runs_agree_with_the_interpreter` (JIT crate),
//! `difftest engines` (the `X87` kind) and the awk guest job.

use super::*;
use morph86_cpu::fpu::host::{host_form, HostForm, IMAGE_LEN};
use morph86_cpu::Cpu;

/// Whether the guest's x87 state is in the host FPU (a byte of the
/// trampoline's frame, as a block sees it: `[rsp + RESIDENT]`; the
/// trampoline clears it before it calls the first block).
const RESIDENT: i32 = 24;
/// Where the FSAVE image lives: the trampoline's frame, as a block sees it
/// (`[rsp + IMAGE]`, 108 bytes).
const IMAGE: i32 = 32;
/// The host's own control word, saved across a run (`[rsp + HOST_CW]`).
const HOST_CW: i32 = IMAGE + IMAGE_LEN as i32;
/// The frame the trampoline reserves below its saved registers: the
/// pending-flags slot, the helper frame, a spare slot, the image and the
/// host control word, rounded to keep the block's stack aligned.
pub(super) const FRAME: i32 = 152;
const _: () = assert!(HOST_CW + 2 <= FRAME + 8 && FRAME % 16 == 8);

/// What an x87 op does besides its stack and memory operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Only the x87 state.
    Plain,
    /// FCOMI, FCOMIP, FUCOMI, FUCOMIP: ZF, PF and CF from the compare, OF,
    /// SF and AF cleared.
    Fcomi,
    /// FCMOVcc: moves when the guest's `Cond` holds.
    Fcmov(Cond),
    /// FNSTSW AX (no pointer update, as on the chip).
    FnstswAx,
    /// FLDCW m16 with every exception still masked (otherwise the block
    /// leaves before it and the interpreter loads it); no pointer update.
    Fldcw,
    /// FNSTCW m16: the guest's control word (no pointer update).
    Fnstcw,
}

/// A computing x87 instruction (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct X87 {
    /// The escape byte (D8-DF).
    op: u8,
    /// Its ModRM byte.
    modrm: u8,
    /// The memory operand: where, its size in bytes, whether it is written
    /// and the segment register whose selector the data pointer records.
    mem: Option<(Mem, u8, bool, SegReg)>,
    /// See [`Kind`].
    pub(super) kind: Kind,
}

impl X87 {
    /// Whether it has a memory operand (which the TLB check may refuse).
    pub(super) fn touches_memory(self) -> bool {
        self.mem.is_some()
    }
}

/// The x87 op for `d`, whose bytes start `bytes`: a computing encoding
/// ([`host_form`]) or FNSTSW AX, with at most segment prefixes and a flat
/// memory operand with 32-bit addressing. Everything else x87 goes to the
/// helper list.
pub(super) fn classify(d: &Decoded, bytes: &[u8]) -> Option<X87> {
    let at = bytes
        .iter()
        .position(|b| !matches!(b, 0x26 | 0x2E | 0x36 | 0x3E))?;
    let (&op, &modrm) = (bytes.get(at)?, bytes.get(at + 1)?);
    if !(0xD8..=0xDF).contains(&op) {
        return None;
    }
    if (op, modrm) == (0xDF, 0xE0) {
        let kind = Kind::FnstswAx;
        return Some(X87 {
            op,
            modrm,
            mem: None,
            kind,
        });
    }
    let form = match (op, (modrm >> 3) & 7, modrm < 0xC0) {
        (0xD9, 5, true) => HostForm::Read(2),
        (0xD9, 7, true) => HostForm::Write(2),
        _ => host_form(op, modrm)?,
    };
    let reg = usize::from((modrm >> 3) & 7);
    let kind = match (op, reg, modrm >= 0xC0) {
        (0xD9, 5, false) => Kind::Fldcw,
        (0xD9, 7, false) => Kind::Fnstcw,
        (0xDB | 0xDF, 5 | 6, true) => Kind::Fcomi,
        (0xDA, 0..=3, true) => Kind::Fcmov([Cond::B, Cond::E, Cond::Be, Cond::P][reg]),
        (0xDB, 0..=3, true) => Kind::Fcmov([Cond::Ae, Cond::Ne, Cond::A, Cond::Np][reg]),
        _ => Kind::Plain,
    };
    let mem = match form {
        HostForm::Stack => None,
        HostForm::Read(n) | HostForm::Write(n) => {
            let k = (0..d.insn.op_count()).find(|&k| d.insn.op_kind(k) == OpKind::Memory)?;
            let m = mem_operand(d, k).filter(|m| m.seg.is_none())?;
            let seg = match d.insn.memory_segment() {
                Register::DS => SegReg::Ds,
                Register::SS => SegReg::Ss,
                Register::ES => SegReg::Es,
                _ => return None,
            };
            Some((m, n as u8, matches!(form, HostForm::Write(_)), seg))
        }
    };
    Some(X87 {
        op,
        modrm,
        mem,
        kind,
    })
}

/// Saves the two pinned guest registers the System V ABI does not keep
/// (EDX in rdx, ESI in r9) and the context around a call of `f(ctx, image)`.
fn call_with_image(a: &mut Assembler, f: usize) {
    dynasm!(a
        ; .arch x64
        ; lea rsi, [rsp + IMAGE]
        // Three pushes: the call is made at 0 mod 16 (the block runs at 8).
        ; push rdx
        ; push r9
        ; push rdi
        ; mov rax, QWORD f as i64
        ; call rax
        ; pop rdi
        ; pop r9
        ; pop rdx
    );
}

/// Loads the guest's x87 state into the host FPU, unless it is there
/// already (`check`: the block does not know; the flag at [`RESIDENT`]
/// tells). When the state must stay with the interpreter (see the module
/// doc), goes to `refused` instead (the exit before the instruction).
pub(super) fn emit_enter(a: &mut Assembler, refused: DynamicLabel, check: bool) {
    let f = enter_helper as extern "sysv64" fn(*mut Cpu, *mut [u8; IMAGE_LEN]) -> u32;
    if check {
        dynasm!(a ; .arch x64 ; cmp BYTE [rsp + RESIDENT], 0 ; jne >loaded);
    }
    call_with_image(a, f as usize);
    dynasm!(a
        ; .arch x64
        ; test eax, eax
        ; jz =>refused
        ; fnstcw WORD [rsp + HOST_CW]
        ; frstor [rsp + IMAGE]
        ; mov BYTE [rsp + RESIDENT], 1
        ; loaded:
    );
}

/// Takes the guest's x87 state back from the host FPU (which FNSAVE leaves
/// initialised; the host's control word is restored), if it is there
/// (`check`: the block does not know).
pub(super) fn emit_leave(a: &mut Assembler, check: bool) {
    let f = leave_helper as extern "sysv64" fn(*mut Cpu, *const [u8; IMAGE_LEN]);
    if check {
        dynasm!(a ; .arch x64 ; cmp BYTE [rsp + RESIDENT], 0 ; je >done);
    }
    dynasm!(a
        ; .arch x64
        ; fnsave [rsp + IMAGE]
        ; fldcw WORD [rsp + HOST_CW]
    );
    call_with_image(a, f as usize);
    dynasm!(a
        ; .arch x64
        ; mov BYTE [rsp + RESIDENT], 0
        ; done:
    );
}

/// The trampoline's part, after translated code returned to it (its stack
/// is 8 bytes above a block's): the guest's x87 state back, if a block left
/// it in the host FPU. Keeps the exit code in eax and the guest's registers.
pub(super) fn emit_trampoline_leave(a: &mut Assembler) {
    let f = leave_helper as extern "sysv64" fn(*mut Cpu, *const [u8; IMAGE_LEN]);
    dynasm!(a
        ; .arch x64
        ; cmp BYTE [rsp + RESIDENT - 8], 0
        ; je >done
        ; fnsave [rsp + IMAGE - 8]
        ; fldcw WORD [rsp + HOST_CW - 8]
        // Four pushes: the trampoline's stack is at 0 mod 16.
        ; push rax
        ; push rdx
        ; push r9
        ; push rdi
        ; lea rsi, [rsp + 32 + IMAGE - 8]
        ; mov rax, QWORD f as usize as i64
        ; call rax
        ; pop rdi
        ; pop r9
        ; pop rdx
        ; pop rax
        ; done:
    );
}

/// The selector of segment register `seg` in the context.
fn selector_off(seg: SegReg) -> i32 {
    (offsets::SEGS + 12 * seg as usize + 8) as i32
}

/// Emits `x` (at guest `here`) while the guest's state is in the host FPU.
/// A memory operand is checked in the TLB first (a refusal goes to `miss`).
/// The pointers are stored after it, the selectors only where `stored`
/// says the block has not stored the same already.
/// Which selectors the block's code has stored as FCS and FDS already
/// (the segment registers cannot change while translated code runs; a
/// helper, which may run an x87 control instruction, forgets them).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Pointers {
    fcs: bool,
    fds: Option<SegReg>,
}

pub(super) fn emit(
    a: &mut Assembler,
    (x, here): (X87, u32),
    user: bool,
    miss: Option<DynamicLabel>,
    live: bool,
    stored: &mut Pointers,
) {
    let (op, modrm) = (x.op, x.modrm);
    let cw = context_offsets::FPU_CW as i32;
    if let Some((m, size, write, _)) = x.mem {
        let miss = miss.expect("memory forms have an exit");
        emit_ea(a, m);
        emit_tlb_sized(a, size, write, user, miss);
        match x.kind {
            Kind::Fnstcw => {
                dynasm!(a ; .arch x64 ; movzx eax, WORD [rdi + cw] ; mov WORD [r10], ax);
                return;
            }
            Kind::Fldcw => {
                // Kept as the P6 keeps it (`fpu::format::normalize_cw`);
                // the host's own reserved bits never show.
                dynasm!(a
                    ; .arch x64
                    ; movzx eax, WORD [r10]
                    ; mov ecx, eax
                    ; and ecx, 0x3F
                    ; cmp ecx, 0x3F
                    ; jne =>miss
                    ; and eax, 0x1F3F
                    ; or eax, 0x40
                    ; mov WORD [rdi + cw], ax
                    ; fldcw WORD [rdi + cw]
                );
                return;
            }
            // The same escape and ModRM.reg with the operand at [r10]
            // (REX.B, mod 00, rm 010).
            _ => dynasm!(a ; .arch x64 ; .bytes [0x41, op, (modrm & 0x38) | 2]),
        }
    } else {
        match x.kind {
            Kind::Fcmov(cc) => {
                // emit_cond leaves ZF clear when a plain condition holds, set
                // when a negated one does: FCMOVNE or FCMOVE on it.
                let rm = modrm & 7;
                if emit_cond(a, cc, FlagSrc::Eflags) {
                    dynasm!(a ; .arch x64 ; .bytes [0xDA, 0xC8 | rm]);
                } else {
                    dynasm!(a ; .arch x64 ; .bytes [0xDB, 0xC8 | rm]);
                }
            }
            Kind::FnstswAx => {
                // The host's status word has this run's exception flags;
                // the guest's earlier sticky ones are still in the context.
                let sw = context_offsets::FPU_SW as i32;
                let ax = hr(0);
                dynasm!(a
                    ; .arch x64
                    ; fnstsw ax
                    ; movzx ecx, WORD [rdi + sw]
                    ; and ecx, 0x7F
                    ; or eax, ecx
                    ; mov Rw(ax), ax
                );
                return;
            }
            Kind::Plain | Kind::Fcomi => dynasm!(a ; .arch x64 ; .bytes [op, modrm]),
            Kind::Fldcw | Kind::Fnstcw => unreachable!("memory forms"),
        }
    }
    if x.kind == Kind::Fcomi {
        merge_flags(a, ARITH_FLAGS, 0, live);
    }
    // The guest's pointers, as the interpreter keeps them.
    let fop = (u16::from(op & 7) << 8 | u16::from(modrm)) as i16;
    dynasm!(a
        ; .arch x64
        ; mov DWORD [rdi + context_offsets::FPU_FIP as i32], here as i32
        ; mov WORD [rdi + context_offsets::FPU_FOP as i32], fop
    );
    if !stored.fcs {
        let cs_sel = selector_off(SegReg::Cs);
        dynasm!(a
            ; .arch x64
            ; movzx eax, WORD [rdi + cs_sel]
            ; mov WORD [rdi + context_offsets::FPU_FCS as i32], ax
        );
        stored.fcs = true;
    }
    if let Some((_, _, _, seg)) = x.mem {
        dynasm!(a ; .arch x64 ; mov DWORD [rdi + context_offsets::FPU_FDP as i32], r8d);
        if stored.fds != Some(seg) {
            let sel = selector_off(seg);
            dynasm!(a
                ; .arch x64
                ; movzx eax, WORD [rdi + sel]
                ; mov WORD [rdi + context_offsets::FPU_FDS as i32], ax
            );
            stored.fds = Some(seg);
        }
    }
}

/// Whether `op` calls Rust code from inside the block (a helper), before
/// which the host FPU must hold the host's own state again.
pub(super) fn calls_out(op: Op) -> bool {
    matches!(op, Op::Helper | Op::Rdtsc)
}

/// The helper behind [`emit_enter`]: the guest's state as an FSAVE image
/// into `img`, 1; or 0 when it must stay with the interpreter.
extern "sysv64" fn enter_helper(cpu: *mut Cpu, img: *mut [u8; IMAGE_LEN]) -> u32 {
    // SAFETY: translated code passes the context it was given (a valid
    // `Cpu` nothing else borrows while the block runs) and the image slot
    // of the trampoline's frame (IMAGE_LEN writable bytes, see `FRAME`).
    let (cpu, img) = unsafe { (&*cpu, &mut *img) };
    match cpu.x87_native_image() {
        Some(image) => {
            *img = image;
            1
        }
        None => 0,
    }
}

/// The helper behind [`emit_leave`]: takes the FNSAVE image back.
extern "sysv64" fn leave_helper(cpu: *mut Cpu, img: *const [u8; IMAGE_LEN]) {
    // SAFETY: as in `enter_helper`; FNSAVE has just filled the image.
    let (cpu, img) = unsafe { (&mut *cpu, &*img) };
    cpu.x87_take_native_image(img);
}
