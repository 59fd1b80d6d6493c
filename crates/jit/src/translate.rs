//! The translator: a run of allow-listed guest instructions becomes one
//! x86-64 host function.
//!
//! Generated code receives the CPU's context (`morph86_cpu::Cpu`, whose head
//! is `#[repr(C)]`: see `morph86_cpu::interp::context_offsets`) in `rdi`.
//! The guest's eight registers live in host registers while translated code
//! runs (see [`HOST_REG`]; [`trampoline`] loads them on the way in and stores
//! them on the way out, and helper calls store and reload them); EIP,
//! EFLAGS and the instruction count stay in the context. Arithmetic runs as the
//! same host instruction on the guest's values, and the host's arithmetic
//! flags become the guest's (kept in the host's flags, rax or a stack slot
//! until a reader, an exit or the block's end takes them: see `flags.rs`
//! and [`merge_flags`]), masked to the flags the instruction defines;
//! flags the SDM leaves undefined get the interpreter's values, never the
//! host's, so results cannot depend on the host CPU's model. A memory
//! operand near the one just checked, through the same registers, reuses
//! that check when both lie in one page ([`emit_checked`]).
//!
//! # The allow-list
//!
//! Only forms that cannot fault, touch memory, ports or system state, and
//! behave identically on the host once their operands are rewritten:
//!
//! | form | covered by |
//! |---|---|
//! | `MOV r32, r32` / `MOV r32, imm32` | `tests::mov_and_alu_agree_with_the_interpreter` |
//! | `ADD SUB ADC SBB CMP r32, r32 / imm` | `tests::mov_and_alu_agree_with_the_interpreter`, `tests::random_blocks_agree_with_the_interpreter`, `tests::pending_flags_reach_their_readers` |
//! | `AND OR XOR TEST r32, r32 / imm` (AF := 0, as the interpreter) | the same |
//! | `INC DEC r32` (CF kept) | the same |
//! | `NOP` | `tests::random_blocks_agree_with_the_interpreter` |
//! | `Jcc rel`, `JMP rel` (32-bit operand size; they end the block; the CS limit is 4 GiB) | `tests::loops_agree_with_the_interpreter` |
//! | `MOV r32, m32`, `MOV m32, r32 / imm32` | `tests::memory_blocks_agree_with_the_interpreter` |
//! | `ADD ... TEST r32, m32` and `m32, r32 / imm` (read-modify-write) | the same |
//! | `PUSH r32`, `POP r32` (not ESP) | the same |
//! | `LEA r32, m` (32-bit addressing) | `tests::calls_shifts_and_lea_agree_with_the_interpreter` |
//! | `SHL SHR SAR r32, imm8 / 1` (AF := 1 and OF for counts above 1 as the interpreter) | the same |
//! | `CALL rel32`, `RET`, `RET imm16` (they end the block) | the same |
//! | `MOV` and `ADD ... TEST` on bytes (registers incl. AH..BH, memory, immediates) | `tests::byte_ops_agree_with_the_interpreter` |
//! | `MOVZX`, `MOVSX r32, r/m8 / r/m16` | the same |
//! | `IMUL r32, r/m32 [, imm]`, `SETcc r/m8`, `CMOVcc r32, r/m32`, `NOT NEG r/m32`, `INC DEC m32`, `BSWAP r32`, `ROL ROR r32, imm`, `SHL SHR SAR r32, CL`, 16-bit `MOV` and shifts by immediates, `PAUSE`, FS/GS-relative operands | `tests::later_forms_agree_with_the_interpreter`, `translate::tests::the_allow_list_stops_at_memory_and_control` |
//! | `RDTSC` (a call to `Cpu::native_rdtsc`, the virtual counter; CR4.TSD faults go to the interpreter) | `tests::rdtsc_reads_the_virtual_counter` |
//! | `SAHF`, `LAHF` (on EFLAGS in the context) | `tests::helper_instructions_agree_with_the_interpreter` (after FNSTSW AX), `tests::random_blocks_agree_with_the_interpreter` |
//! | `BT BTS BTR BTC r32, r32 / imm8` and `m32, imm8` (CF only, as the interpreter), `PUSH m32`, `LEAVE`, `JMP` / `CALL r/m32` (near; the target through the return cache), `DIV r/m32` (a zero divisor or an overflow leaves the block first, for the interpreter's #DE), `LODS STOS MOVS SCAS` without REP (DF set leaves the block) | `tests::later_forms_agree_with_the_interpreter`, `difftest engines`, the Linux boot's event log |
//! | x87 computing instructions (`morph86_cpu::fpu::host::host_form`: arithmetic, loads and stores of every size, compares, FCOMI, FCMOVcc, transcendentals) and `FNSTSW AX`, on the host's x87 unit while every guest exception is masked (see `x87.rs`) | `tests::x87_runs_agree_with_the_interpreter`, `difftest engines` (the `X87` kind) |
//!
//! Memory operands use 32-bit addressing in flat segments (the engine runs
//! a block only while CS, DS, ES and SS are flat 4 GiB segments, and the
//! data ones writable); FS- and GS-relative operands are translated in blocks
//! that check at their entry that the segment is a 4 GiB one. Each access
//! checks the TLB inline (`morph86_cpu::mmu::TlbEntry`): a tag that does
//! not match (a miss, no permission, MMIO, a page holding code or page
//! tables, an access that crosses a page) leaves the block *before* that instruction,
//! with every earlier one committed and EIP on it, so the interpreter runs
//! it — which is where faults, device accesses and code-page writes are
//! handled. Faults are therefore precise by construction. A block stays
//! within its page, but for its last instruction, which may cross into the
//! next one: its bytes there are compared before it each time the block
//! runs ([`emit_code_guard`]).
//!
//! Instructions on the helper list (`runs_in_helper`: the x87 control
//! instructions and FWAIT, the flag and
//! width conversions, XCHG/CMPXCHG/XADD, MUL/IDIV, BSF/BSR, SHLD/SHRD,
//! PUSHF/POPF, CLI/STI, CPUID, the REP string forms, IN and OUT, the
//! sensitive instructions that only read system state, and the forms of
//! plain data instructions the allow-list leaves out) run in the
//! interpreter from inside the block, through a helper call: registers
//! spilled, flags merged, the count the interpreter sees exact; the block
//! goes on only when the instruction completed normally, did not write the
//! block's page, reached no device the machine must look at again (an IN or
//! OUT that does leaves the block with the interpreter's device exit; I/O
//! permission faults are the interpreter's too) and left the CPU where
//! translated code may run (no TF; no pending interrupt that an IF set by
//! STI or POPF would let in).
//!
//! Everything else ends the block and runs in the reference interpreter,
//! which is how the sensitive and privileged instructions, string I/O, memory
//! operands, control transfers and the forms without a 64-bit encoding are
//! handled today: none of them ever runs natively.

// dynasm converts dynamic register numbers with `.into()`, already `u8` here.
#![allow(clippy::useless_conversion)]

use dynasmrt::{dynasm, AssemblyOffset, DynamicLabel, DynasmApi, DynasmLabelApi};

/// The assembler blocks are built with: into a plain vector, then copied
/// into the code cache (blocks are position-independent).
pub type Assembler = dynasmrt::VecAssembler<dynasmrt::x64::X64Relocation>;
use iced_x86::{Mnemonic, OpKind, Register};
use morph86_cpu::decode::{decode, Decoded};
use morph86_cpu::interp::context_offsets;
use morph86_cpu::mmu::{entry_offsets, TLB_SIZE};
use morph86_cpu::state::{offsets, SegReg};
use morph86_cpu::CpuModel;

mod flags;
mod x87;

/// The longest block, in guest instructions.
pub const MAX_BLOCK: usize = 64;

/// Guest flags an instruction's host twin defines (CF PF AF ZF SF OF).
const ARITH_FLAGS: u32 = 0x8D5;
/// INC and DEC leave CF alone.
const INC_FLAGS: u32 = 0x8D4;
/// Logic ops define CF PF ZF SF OF; AF is undefined and the interpreter
/// clears it.
const LOGIC_FLAGS: u32 = 0x8C5;
/// The guest's AF.
const AF: u32 = 0x10;

/// What a block does, once translated.
#[derive(Clone, Copy, Debug)]
pub struct BlockInfo {
    /// Guest instructions in the block (0: the first one is not on the
    /// allow-list, and the interpreter runs it).
    pub insns: u32,
    /// Guest bytes the block spans.
    pub bytes: u32,
    /// Where its host code starts.
    pub entry: AssemblyOffset,
    /// The instruction that ended the block, when it is not on the
    /// allow-list (the interpreter runs it).
    pub stop: Option<Mnemonic>,
    /// What the block assumes beyond flat CS, DS, ES and SS
    /// ([`NEEDS_FS`], [`NEEDS_GS`]); the engine runs it only then.
    pub needs: u8,
}

/// One guest instruction the translator accepts, with its operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    MovRR(usize, usize),
    MovRI(usize, u32),
    Alu(Alu, usize, Src),
    IncDec(bool, usize),
    Nop,
    /// A conditional branch to a target (it ends the block).
    Jcc(Cond, u32),
    /// A direct jump (it ends the block).
    Jmp(u32),
    /// `MOV r32, m32`.
    Load(usize, Mem),
    /// `MOV m32, r32 / imm32`.
    Store(Mem, Src),
    /// `op r32, m32`.
    AluRM(Alu, usize, Mem),
    /// `op m32, r32 / imm`.
    AluMR(Alu, Mem, Src),
    /// `PUSH r32`.
    Push(usize),
    /// `POP r32`.
    Pop(usize),
    /// `LEA r32, m`.
    Lea(usize, Mem),
    /// A shift of a register by a count of 1 to 31.
    Shift(ShiftKind, usize, u8),
    /// `CALL rel32` to a target (it ends the block).
    Call(u32),
    /// `RET` releasing `n` more bytes (it ends the block).
    Ret(u16),
    /// A byte operation: `MOV` or an ALU op on an 8-bit register or memory.
    Byte(ByteOp, Loc8, Src8),
    /// `MOVZX` / `MOVSX r32, r/m8` or `r/m16` (`signed`, source bytes).
    Movx(usize, Loc8, bool, u8),
    /// `IMUL r32, r/m32` or `IMUL r32, r/m32, imm`.
    Imul(usize, Rm, Option<u32>),
    /// `SETcc r/m8`.
    Setcc(Cond, Loc8),
    /// `CMOVcc r32, r/m32`.
    Cmov(Cond, usize, Rm),
    /// `NOT`, `NEG`, `INC`, `DEC` of a 32-bit operand (INC/DEC of a
    /// register: [`Op::IncDec`]), `BSWAP r32`.
    Unary(Unary, Rm),
    /// `ROL` (`true`) / `ROR r32, imm` by 1 to 31.
    Rotate(bool, usize, u8),
    /// `SHL` / `SHR` / `SAR r32, CL`.
    ShiftCl(ShiftKind, usize),
    /// A 16-bit shift of a register by 1 to 15.
    Shift16(ShiftKind, usize, u8),
    /// `MOV` of a 16-bit register, memory word or immediate.
    Word(Loc8, Src8),
    /// `RDTSC`, through a helper on the virtual CPU
    /// (`Cpu::native_rdtsc`): never the host's counter.
    Rdtsc,
    /// `BT BTS BTR BTC r32, r32 / imm8` and `m32, imm8`: CF only.
    Bt(BtKind, Rm, Src),
    /// `PUSH m32`.
    PushMem(Mem),
    /// `PUSH imm32 / imm8`.
    PushImm(u32),
    /// An instruction on the helper list ([`runs_in_helper`]): the
    /// interpreter runs it from inside the block, through the engine's
    /// helper, and the block goes on when it completed normally.
    Helper,
    /// 16-bit `ADD ... TEST` (operand-size prefix), registers, memory and
    /// immediates.
    Alu16(Alu, Loc8, Src8),
    /// `LEAVE` (32-bit stack).
    Leave,
    /// `JMP r/m32` (ends the block; the target through the return cache).
    JmpInd(Rm),
    /// `CALL r/m32` (ends the block, as `JmpInd`).
    CallInd(Rm),
    /// `DIV r/m32` (a zero divisor or a quotient that does not fit leaves
    /// the block: the interpreter raises #DE).
    Div(Rm),
    /// `LODS STOS MOVS SCAS` without REP, 32-bit addresses, no segment
    /// override, with the operand size in bytes (DF set leaves the block).
    Str(StrKind, u8),
    /// A computing x87 instruction on the host's x87 unit (see `x87.rs`).
    X87(x87::X87),
    /// `SAHF`: SF ZF AF PF CF from AH.
    Sahf,
    /// `LAHF`: AH from SF ZF AF PF CF (and bit 1, always set).
    Lahf,
}

/// Which bit test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BtKind {
    Bt,
    Bts,
    Btr,
    Btc,
}

/// Which string instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StrKind {
    Lods,
    Stos,
    Movs,
    Scas,
}

/// What a byte operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ByteOp {
    Mov,
    Alu(Alu),
}

/// An 8-bit (or, as a MOVZX/MOVSX source, 16-bit) operand location: a
/// register's byte (`hi`: AH, CH, DH, BH; 16-bit: the low half) or memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loc8 {
    Reg(usize, bool),
    Mem(Mem),
}

/// A byte source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Src8 {
    Loc(Loc8),
    /// An immediate byte (or word, for [`Op::Word`]).
    Imm(u16),
}

/// A shift.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ShiftKind {
    Shl,
    Shr,
    Sar,
}

/// A 32-bit memory operand: `[base + index * scale + disp]`, in a flat
/// segment (`seg` = None) or at FS's or GS's base (`Some(SegReg)`: the
/// block then needs that segment to have a 4 GiB limit, see
/// [`BlockInfo::needs`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Mem {
    base: Option<usize>,
    index: Option<usize>,
    scale: u8,
    disp: u32,
    seg: Option<SegReg>,
}

/// [`BlockInfo::needs`]: FS is a 4 GiB writable data segment.
pub const NEEDS_FS: u8 = 1;
/// [`BlockInfo::needs`]: GS is a 4 GiB writable data segment.
pub const NEEDS_GS: u8 = 2;

/// A 32-bit register or memory operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rm {
    Reg(usize),
    Mem(Mem),
}

/// One-operand arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unary {
    Not,
    Neg,
    Inc,
    Dec,
    /// `BSWAP r32` (register only; no flags).
    Bswap,
}

/// A branch condition (the mnemonic's, as the host's Jcc tests it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cond {
    O,
    No,
    B,
    Ae,
    E,
    Ne,
    Be,
    A,
    S,
    Ns,
    P,
    Np,
    L,
    Ge,
    Le,
    G,
}

impl Cond {
    /// The condition a SETcc tests.
    fn of_setcc(m: Mnemonic) -> Option<Cond> {
        use Mnemonic::*;
        let all = [
            Seto, Setno, Setb, Setae, Sete, Setne, Setbe, Seta, Sets, Setns, Setp, Setnp, Setl,
            Setge, Setle, Setg,
        ];
        Self::nth(all.iter().position(|&x| x == m)?)
    }

    /// The condition a CMOVcc tests.
    fn of_cmov(m: Mnemonic) -> Option<Cond> {
        use Mnemonic::*;
        let all = [
            Cmovo, Cmovno, Cmovb, Cmovae, Cmove, Cmovne, Cmovbe, Cmova, Cmovs, Cmovns, Cmovp,
            Cmovnp, Cmovl, Cmovge, Cmovle, Cmovg,
        ];
        Self::nth(all.iter().position(|&x| x == m)?)
    }

    /// Conditions in their encoding order (0 = O ... 15 = G).
    fn nth(k: usize) -> Option<Cond> {
        use Cond::*;
        [O, No, B, Ae, E, Ne, Be, A, S, Ns, P, Np, L, Ge, Le, G]
            .get(k)
            .copied()
    }

    fn of(m: Mnemonic) -> Option<Cond> {
        Some(match m {
            Mnemonic::Jo => Cond::O,
            Mnemonic::Jno => Cond::No,
            Mnemonic::Jb => Cond::B,
            Mnemonic::Jae => Cond::Ae,
            Mnemonic::Je => Cond::E,
            Mnemonic::Jne => Cond::Ne,
            Mnemonic::Jbe => Cond::Be,
            Mnemonic::Ja => Cond::A,
            Mnemonic::Js => Cond::S,
            Mnemonic::Jns => Cond::Ns,
            Mnemonic::Jp => Cond::P,
            Mnemonic::Jnp => Cond::Np,
            Mnemonic::Jl => Cond::L,
            Mnemonic::Jge => Cond::Ge,
            Mnemonic::Jle => Cond::Le,
            Mnemonic::Jg => Cond::G,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Src {
    Reg(usize),
    Imm(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Alu {
    Add,
    Adc,
    Sub,
    Sbb,
    Cmp,
    And,
    Or,
    Xor,
    Test,
}

/// The guest register number of a 32-bit general register.
fn gpr32(r: Register) -> Option<usize> {
    let n = (r as usize).checked_sub(Register::EAX as usize)?;
    (n < 8).then_some(n)
}

/// The helper list: instructions the interpreter runs from inside a block
/// (VMware-style: they never run natively, and no block boundary is paid
/// for them). None of them changes CS, CPL, a segment, a control or debug
/// register or the address space, so a block's assumptions hold after
/// them; whatever else they do (faults, device accesses, self-modifying
/// stores, REP yields, an IF or TF that CLI, STI or POPF set, see
/// `block_goes_on` in the engine) ends the block where the interpreter
/// left it. Beside the forms the translator does not re-encode, the list
/// holds the sensitive and IOPL-sensitive instructions that only read
/// system state or change IF (CLI, STI, POPF, PUSH of a segment register,
/// MOV from one, VERR/VERW, LAR/LSL, SLDT/STR/SMSW) and the other forms of
/// plain data instructions (memory BT*, 16-bit and byte forms, shifts and
/// rotates through memory or CF, PUSH/POP of memory). Covered by
/// `tests::helper_instructions_agree_with_the_interpreter`,
/// `tests::interrupt_windows_after_helpers_match_the_interpreter`, the
/// test kernels and the Linux boot's event log.
fn runs_in_helper(d: &Decoded) -> bool {
    use Mnemonic as M;
    if matches!(d.opcode, 0xD8..=0xDF | 0x9B) {
        return true; // x87: the escapes and FWAIT
    }
    let i = &d.insn;
    let within =
        |r: Register, lo: Register, hi: Register| (lo as u32..=hi as u32).contains(&(r as u32));
    let system = |r: Register| {
        within(r, Register::CR0, Register::CR15)
            || within(r, Register::DR0, Register::DR15)
            || within(r, Register::TR0, Register::TR7)
    };
    let segment = |r: Register| within(r, Register::ES, Register::GS);
    match i.mnemonic() {
        // Not into a segment, control, debug or test register.
        M::Mov => {
            !segment(i.op0_register()) && !(0..i.op_count()).any(|k| system(i.op_register(k)))
        }
        M::Pop => !segment(i.op0_register()),
        _ => matches!(
            i.mnemonic(),
            M::Cli
                | M::Sti
                | M::Popfd
                | M::Popf
                | M::Push
                | M::Verr
                | M::Verw
                | M::Lar
                | M::Lsl
                | M::Sldt
                | M::Str
                | M::Smsw
                | M::Bt
                | M::Bts
                | M::Btr
                | M::Btc
                | M::Tzcnt
                | M::Add
                | M::Or
                | M::Adc
                | M::Sbb
                | M::And
                | M::Sub
                | M::Xor
                | M::Cmp
                | M::Test
                | M::Inc
                | M::Dec
                | M::Neg
                | M::Not
                | M::Shl
                | M::Shr
                | M::Sar
                | M::Rol
                | M::Ror
                | M::Rcl
                | M::Rcr
                | M::Lea
                | M::Movzx
                | M::Movsx
                | M::Cld
                | M::Std
                | M::Clc
                | M::Stc
                | M::Cmc
                | M::Bswap
                | M::Xchg
                | M::Cmpxchg
                | M::Cmpxchg8b
                | M::Xadd
                | M::Mul
                | M::Imul
                | M::Idiv
                | M::Div
                | M::Shld
                | M::Shrd
                | M::Cdq
                | M::Cwde
                | M::Cbw
                | M::Cwd
                | M::Bsf
                | M::Bsr
                | M::Pushfd
                | M::Pushf
                | M::Cpuid
                | M::Movsb
                | M::Movsw
                | M::Movsd
                | M::Stosb
                | M::Stosw
                | M::Stosd
                | M::Lodsb
                | M::Lodsw
                | M::Lodsd
                | M::Scasb
                | M::Scasw
                | M::Scasd
                | M::Cmpsb
                | M::Cmpsw
                | M::Cmpsd
                | M::In
                | M::Out
        ),
    }
}

/// The op for `d` (whose bytes start `bytes`) at guest `eip`: a translated
/// form, else a helper call.
fn classify(d: &Decoded, eip: u32, bytes: &[u8]) -> Option<Op> {
    if d.invalid || d.too_long {
        return None;
    }
    if matches!(d.opcode, 0xD8..=0xDF) {
        if let Some(x) = x87::classify(d, bytes) {
            return Some(Op::X87(x));
        }
    }
    classify_native(d, eip).or_else(|| runs_in_helper(d).then_some(Op::Helper))
}

/// Operand `k` of `d` as a 32-bit memory operand in a flat segment or at
/// FS's or GS's base (see [`Mem`]).
fn mem_operand(d: &Decoded, k: u32) -> Option<Mem> {
    let i = &d.insn;
    if i.op_kind(k) != OpKind::Memory || !d.addr32 {
        return None;
    }
    let seg = match i.memory_segment() {
        Register::DS | Register::SS | Register::ES => None,
        Register::FS => Some(SegReg::Fs),
        Register::GS => Some(SegReg::Gs),
        _ => return None,
    };
    let base = match i.memory_base() {
        Register::None => None,
        r => Some(gpr32(r)?),
    };
    let index = match i.memory_index() {
        Register::None => None,
        r => Some(gpr32(r)?),
    };
    Some(Mem {
        base,
        index,
        scale: i.memory_index_scale() as u8,
        disp: i.memory_displacement32(),
        seg,
    })
}

/// The allow-list: the op for `d` at guest `eip`, if it is a translatable
/// form.
fn classify_native(d: &Decoded, eip: u32) -> Option<Op> {
    let i = &d.insn;
    if d.invalid || d.too_long || i.has_lock_prefix() {
        return None;
    }
    // PAUSE is a hint with no architectural effect (F3 90).
    if i.mnemonic() == Mnemonic::Pause {
        return Some(Op::Nop);
    }
    if d.rep != 0 {
        return None;
    }
    if d.op32 && i.op_count() == 1 && i.op_kind(0) == OpKind::NearBranch32 {
        // Decoded at IP 0, so the branch target is relative to `eip`.
        let target = eip.wrapping_add(i.near_branch_target() as u32);
        return match i.mnemonic() {
            Mnemonic::Jmp => Some(Op::Jmp(target)),
            Mnemonic::Call => Some(Op::Call(target)),
            m => Cond::of(m).map(|c| Op::Jcc(c, target)),
        };
    }
    match i.mnemonic() {
        Mnemonic::Rdtsc => return Some(Op::Rdtsc),
        Mnemonic::Sahf => return Some(Op::Sahf),
        Mnemonic::Lahf => return Some(Op::Lahf),
        _ => {}
    }
    if let Some(op) = classify_string(d) {
        return Some(op);
    }
    if i.mnemonic() == Mnemonic::Nop && i.op_count() == 0 {
        return Some(Op::Nop);
    }
    let reg = |k: u32| {
        (i.op_kind(k) == OpKind::Register)
            .then(|| gpr32(i.op_register(k)))
            .flatten()
    };
    let src = || match i.op_kind(1) {
        OpKind::Register => reg(1).map(Src::Reg),
        // `immediate` sign-extends an 8-bit immediate as the instruction does.
        OpKind::Immediate32 | OpKind::Immediate8to32 => Some(Src::Imm(i.immediate(1) as u32)),
        _ => None,
    };
    let mem = |k: u32| mem_operand(d, k);
    let rm = |k: u32| match i.op_kind(k) {
        OpKind::Memory => mem(k).map(Rm::Mem),
        _ => reg(k).map(Rm::Reg),
    };
    // 8-bit and 16-bit locations (MOVZX/MOVSX sources, byte ops).
    let loc8 = |k: u32| -> Option<Loc8> {
        match i.op_kind(k) {
            OpKind::Register => {
                let r = i.op_register(k);
                let n = (r as usize).checked_sub(Register::AL as usize);
                if let Some(n) = n.filter(|&n| n < 8) {
                    return Some(Loc8::Reg(n & 3, n >= 4));
                }
                let n = (r as usize).checked_sub(Register::AX as usize)?;
                (n < 8).then_some(Loc8::Reg(n, false))
            }
            OpKind::Memory => Some(Loc8::Mem(mem(k)?)),
            _ => None,
        }
    };
    if matches!(i.mnemonic(), Mnemonic::Movzx | Mnemonic::Movsx) && i.op_count() == 2 {
        let bytes = match i.memory_size() {
            iced_x86::MemorySize::UInt8 | iced_x86::MemorySize::Int8 => 1,
            iced_x86::MemorySize::UInt16 | iced_x86::MemorySize::Int16 => 2,
            _ if i.op_kind(1) == OpKind::Register => {
                if (i.op_register(1) as usize) < Register::AX as usize {
                    1
                } else {
                    2
                }
            }
            _ => return None,
        };
        return Some(Op::Movx(
            reg(0)?,
            loc8(1)?,
            i.mnemonic() == Mnemonic::Movsx,
            bytes,
        ));
    }
    if !d.op32 {
        return classify16(d, loc8);
    }
    let is_byte = |k: u32| match i.op_kind(k) {
        OpKind::Register => {
            let r = i.op_register(k) as usize;
            (Register::AL as usize..Register::AL as usize + 8).contains(&r)
        }
        OpKind::Memory => matches!(
            i.memory_size(),
            iced_x86::MemorySize::UInt8 | iced_x86::MemorySize::Int8
        ),
        _ => false,
    };
    if i.op_count() == 2 && is_byte(0) {
        let op = match i.mnemonic() {
            Mnemonic::Mov => ByteOp::Mov,
            Mnemonic::Add => ByteOp::Alu(Alu::Add),
            Mnemonic::Adc => ByteOp::Alu(Alu::Adc),
            Mnemonic::Sub => ByteOp::Alu(Alu::Sub),
            Mnemonic::Sbb => ByteOp::Alu(Alu::Sbb),
            Mnemonic::Cmp => ByteOp::Alu(Alu::Cmp),
            Mnemonic::And => ByteOp::Alu(Alu::And),
            Mnemonic::Or => ByteOp::Alu(Alu::Or),
            Mnemonic::Xor => ByteOp::Alu(Alu::Xor),
            Mnemonic::Test => ByteOp::Alu(Alu::Test),
            _ => return None,
        };
        let dst = loc8(0)?;
        let src = match i.op_kind(1) {
            OpKind::Immediate8 => Src8::Imm(u16::from(i.immediate8())),
            _ if is_byte(1) => Src8::Loc(loc8(1)?),
            _ => return None,
        };
        // At most one memory operand (x86 encodings guarantee it).
        return Some(Op::Byte(op, dst, src));
    }
    let alu = |a| {
        if i.op_kind(0) == OpKind::Memory {
            return Some(Op::AluMR(a, mem(0)?, src()?));
        }
        if i.op_kind(1) == OpKind::Memory {
            return Some(Op::AluRM(a, reg(0)?, mem(1)?));
        }
        Some(Op::Alu(a, reg(0)?, src()?))
    };
    match i.mnemonic() {
        Mnemonic::Mov if i.op_count() == 2 && i.op_kind(0) == OpKind::Memory => {
            Some(Op::Store(mem(0)?, src()?))
        }
        Mnemonic::Mov if i.op_count() == 2 && i.op_kind(1) == OpKind::Memory => {
            Some(Op::Load(reg(0)?, mem(1)?))
        }
        Mnemonic::Mov if i.op_count() == 2 => match src()? {
            Src::Reg(s) => Some(Op::MovRR(reg(0)?, s)),
            Src::Imm(v) => Some(Op::MovRI(reg(0)?, v)),
        },
        Mnemonic::Ret if i.op_count() == 0 => Some(Op::Ret(0)),
        Mnemonic::Ret if i.op_kind(0) == OpKind::Immediate16 => Some(Op::Ret(i.immediate16())),
        Mnemonic::Lea => Some(Op::Lea(reg(0)?, mem(1)?)),
        Mnemonic::Shl | Mnemonic::Shr | Mnemonic::Sar if i.op_count() == 2 => {
            let kind = match i.mnemonic() {
                Mnemonic::Shl => ShiftKind::Shl,
                Mnemonic::Shr => ShiftKind::Shr,
                _ => ShiftKind::Sar,
            };
            let count = match i.op_kind(1) {
                OpKind::Immediate8 => i.immediate8() & 31,
                OpKind::Register if i.op_register(1) == Register::CL => {
                    return Some(Op::ShiftCl(kind, reg(0)?));
                }
                _ => return None,
            };
            if count == 0 {
                return None; // no flags change: rare, leave it
            }
            Some(Op::Shift(kind, reg(0)?, count))
        }
        Mnemonic::Push if i.op_count() == 1 && i.op_kind(0) == OpKind::Memory => {
            Some(Op::PushMem(mem(0)?))
        }
        Mnemonic::Push
            if i.op_count() == 1
                && matches!(i.op_kind(0), OpKind::Immediate32 | OpKind::Immediate8to32) =>
        {
            Some(Op::PushImm(i.immediate(0) as u32))
        }
        Mnemonic::Push if i.op_count() == 1 => match reg(0)? {
            4 => None,
            r => Some(Op::Push(r)),
        },
        Mnemonic::Pop if i.op_count() == 1 => match reg(0)? {
            4 => None,
            r => Some(Op::Pop(r)),
        },
        Mnemonic::Add => alu(Alu::Add),
        Mnemonic::Adc => alu(Alu::Adc),
        Mnemonic::Sub => alu(Alu::Sub),
        Mnemonic::Sbb => alu(Alu::Sbb),
        Mnemonic::Cmp => alu(Alu::Cmp),
        Mnemonic::And => alu(Alu::And),
        Mnemonic::Or => alu(Alu::Or),
        Mnemonic::Xor => alu(Alu::Xor),
        Mnemonic::Test => alu(Alu::Test),
        Mnemonic::Inc | Mnemonic::Dec if i.op_count() == 1 && i.op_kind(0) == OpKind::Register => {
            Some(Op::IncDec(i.mnemonic() == Mnemonic::Inc, reg(0)?))
        }
        Mnemonic::Inc if i.op_count() == 1 => Some(Op::Unary(Unary::Inc, Rm::Mem(mem(0)?))),
        Mnemonic::Dec if i.op_count() == 1 => Some(Op::Unary(Unary::Dec, Rm::Mem(mem(0)?))),
        Mnemonic::Not if i.op_count() == 1 => Some(Op::Unary(Unary::Not, rm(0)?)),
        Mnemonic::Neg if i.op_count() == 1 => Some(Op::Unary(Unary::Neg, rm(0)?)),
        Mnemonic::Bswap if i.op_count() == 1 => Some(Op::Unary(Unary::Bswap, Rm::Reg(reg(0)?))),
        Mnemonic::Imul if i.op_count() == 2 => Some(Op::Imul(reg(0)?, rm(1)?, None)),
        Mnemonic::Imul if i.op_count() == 3 => {
            Some(Op::Imul(reg(0)?, rm(1)?, Some(i.immediate(2) as u32)))
        }
        Mnemonic::Bt | Mnemonic::Bts | Mnemonic::Btr | Mnemonic::Btc if i.op_count() == 2 => {
            let kind = match i.mnemonic() {
                Mnemonic::Bt => BtKind::Bt,
                Mnemonic::Bts => BtKind::Bts,
                Mnemonic::Btr => BtKind::Btr,
                _ => BtKind::Btc,
            };
            let bit = match i.op_kind(1) {
                OpKind::Immediate8 => Src::Imm(u32::from(i.immediate8())),
                // A register bit offset reaches outside a memory operand.
                _ if i.op_kind(0) == OpKind::Register => Src::Reg(reg(1)?),
                _ => return None,
            };
            Some(Op::Bt(kind, rm(0)?, bit))
        }
        Mnemonic::Leave if d.op32 => Some(Op::Leave),
        // Near indirect only: the far forms load CS.
        Mnemonic::Jmp if i.code() == iced_x86::Code::Jmp_rm32 => Some(Op::JmpInd(rm(0)?)),
        Mnemonic::Call if i.code() == iced_x86::Code::Call_rm32 => Some(Op::CallInd(rm(0)?)),
        Mnemonic::Div if i.op_count() == 1 => Some(Op::Div(rm(0)?)),
        Mnemonic::Rol | Mnemonic::Ror
            if i.op_count() == 2 && i.op_kind(1) == OpKind::Immediate8 =>
        {
            match i.immediate8() & 31 {
                0 => None,
                c => Some(Op::Rotate(i.mnemonic() == Mnemonic::Rol, reg(0)?, c)),
            }
        }
        m => {
            if let Some(c) = Cond::of_setcc(m) {
                return Some(Op::Setcc(c, loc8(0)?));
            }
            if let Some(c) = Cond::of_cmov(m) {
                return Some(Op::Cmov(c, reg(0)?, rm(1)?));
            }
            None
        }
    }
}

/// `LODS STOS MOVS SCAS` without REP (the caller has refused REP), with
/// 32-bit addresses and no segment override other than DS.
fn classify_string(d: &Decoded) -> Option<Op> {
    let i = &d.insn;
    let kind = match i.mnemonic() {
        Mnemonic::Lodsb | Mnemonic::Lodsd => StrKind::Lods,
        Mnemonic::Stosb | Mnemonic::Stosd => StrKind::Stos,
        Mnemonic::Movsb | Mnemonic::Movsw | Mnemonic::Movsd => StrKind::Movs,
        Mnemonic::Scasb => StrKind::Scas,
        _ => return None,
    };
    let string_operand = (0..i.op_count())
        .any(|k| matches!(i.op_kind(k), OpKind::MemoryESEDI | OpKind::MemorySegESI));
    if !d.addr32 || !string_operand {
        return None;
    }
    if matches!(kind, StrKind::Lods | StrKind::Movs) && i.memory_segment() != Register::DS {
        return None;
    }
    let size = match i.mnemonic() {
        Mnemonic::Lodsb | Mnemonic::Stosb | Mnemonic::Movsb | Mnemonic::Scasb => 1,
        Mnemonic::Movsw => 2,
        _ => 4,
    };
    // The operand size prefix turns the 4-byte forms into 2-byte ones.
    if size == 4 && !d.op32 || size == 2 && d.op32 {
        return None;
    }
    Some(Op::Str(kind, size))
}

/// The 16-bit forms on the allow-list (operand-size prefix in 32-bit
/// code): `MOV` and shifts by an immediate below 16.
fn classify16(d: &Decoded, loc8: impl Fn(u32) -> Option<Loc8>) -> Option<Op> {
    let i = &d.insn;
    let word = |k: u32| match i.op_kind(k) {
        OpKind::Register => {
            let r = i.op_register(k) as usize;
            (Register::AX as usize..Register::AX as usize + 8).contains(&r)
        }
        OpKind::Memory => matches!(
            i.memory_size(),
            iced_x86::MemorySize::UInt16 | iced_x86::MemorySize::Int16
        ),
        _ => false,
    };
    if i.op_count() != 2 || !word(0) {
        return None;
    }
    match i.mnemonic() {
        Mnemonic::Mov => {
            let src = match i.op_kind(1) {
                OpKind::Immediate16 => Src8::Imm(i.immediate16()),
                _ if word(1) => Src8::Loc(loc8(1)?),
                _ => return None,
            };
            Some(Op::Word(loc8(0)?, src))
        }
        Mnemonic::Shl | Mnemonic::Shr | Mnemonic::Sar => {
            let Loc8::Reg(r, _) = loc8(0)? else {
                return None;
            };
            if i.op_kind(1) != OpKind::Immediate8 {
                return None;
            }
            let count = i.immediate8() & 31;
            if count == 0 || count >= 16 {
                return None; // no change, or a count the host leaves undefined
            }
            let kind = match i.mnemonic() {
                Mnemonic::Shl => ShiftKind::Shl,
                Mnemonic::Shr => ShiftKind::Shr,
                _ => ShiftKind::Sar,
            };
            Some(Op::Shift16(kind, r, count))
        }
        m => {
            let alu = match m {
                Mnemonic::Add => Alu::Add,
                Mnemonic::Adc => Alu::Adc,
                Mnemonic::Sub => Alu::Sub,
                Mnemonic::Sbb => Alu::Sbb,
                Mnemonic::Cmp => Alu::Cmp,
                Mnemonic::And => Alu::And,
                Mnemonic::Or => Alu::Or,
                Mnemonic::Xor => Alu::Xor,
                Mnemonic::Test => Alu::Test,
                _ => return None,
            };
            let src = match i.op_kind(1) {
                OpKind::Immediate16 | OpKind::Immediate8to16 => Src8::Imm(i.immediate(1) as u16),
                _ if word(1) => Src8::Loc(loc8(1)?),
                _ => return None,
            };
            Some(Op::Alu16(alu, loc8(0)?, src))
        }
    }
}

/// Decodes the allow-listed run of instructions at the start of `code`
/// (the bytes from the block's first instruction, at guest `eip`, to the
/// end of its page). A branch ends the run.
fn scan(code: &[u8], eip: u32) -> (Vec<(Op, u8)>, Option<Mnemonic>) {
    let mut ops = Vec::new();
    let mut stop = None;
    let mut at = 0usize;
    let page_left = page_left(eip);
    while ops.len() < MAX_BLOCK && at < code.len().min(page_left) {
        let Ok(d) = decode(CpuModel::P6, true, &code[at..]) else {
            break; // runs past the bytes given: the interpreter fetches it
        };
        let here = eip.wrapping_add(at as u32);
        match classify(&d, here, &code[at..]) {
            Some(op) => ops.push((op, d.len)),
            None => {
                stop = Some(d.insn.mnemonic());
                break;
            }
        }
        at += usize::from(d.len);
        if at > page_left {
            break; // it crossed into the next page (see `emit_code_guard`)
        }
        if ops.last().is_some_and(|&(op, _)| ends_block(op)) {
            break;
        }
    }
    (ops, stop)
}

/// The bytes from `eip` to the end of its page: a block's code. Its last
/// instruction may go on into the next page (see [`emit_code_guard`]).
fn page_left(eip: u32) -> usize {
    0x1000 - (eip & 0xFFF) as usize
}

/// The start of the linear page after `eip`'s (CS is flat), which a
/// block's last instruction may cross into; none at 4 GiB, where EIP
/// would wrap.
pub fn next_page(eip: u32) -> Option<u32> {
    (eip & !0xFFF).checked_add(0x1000)
}

/// Before a block's last instruction, when it crosses into the next page:
/// checks that its bytes there (`tail`, at most 14, from linear `lin`, that
/// page's start) are still the ones it was translated from, or leaves
/// through `miss` before it. Writes to the block's own page retire the
/// block; the next page is not tracked (it may be mapped elsewhere by the
/// time the block runs), so its bytes are compared each time, through
/// the TLB like any read: a page no longer mapped, or not readable at this
/// privilege, leaves too, and the interpreter fetches the instruction (and
/// takes its fault). Clobbers the host's flags, rcx, r8, r10 and r11.
fn emit_code_guard(a: &mut Assembler, lin: u32, tail: &[u8], user: bool, miss: DynamicLabel) {
    dynasm!(a ; .arch x64 ; mov r8d, lin as i32);
    emit_tlb_sized(a, 1, false, user, miss);
    // At most 16 bytes from the page's start: within the page.
    for (k, chunk) in tail.chunks(8).enumerate() {
        let mut want = [0u8; 8];
        want[..chunk.len()].copy_from_slice(chunk);
        let off = 8 * k as i32;
        dynasm!(a ; .arch x64 ; mov rcx, QWORD [r10 + off]);
        if chunk.len() < 8 {
            let mask = (1u64 << (8 * chunk.len())) - 1;
            dynasm!(a ; .arch x64 ; mov r11, QWORD mask as i64 ; and rcx, r11);
        }
        dynasm!(a
            ; .arch x64
            ; mov r11, QWORD u64::from_le_bytes(want) as i64
            ; cmp rcx, r11
            ; jne =>miss
        );
    }
}

/// Register `r`'s byte offset in the context.
fn reg_off(r: usize) -> i32 {
    (offsets::REGS + 4 * r) as i32
}

/// The host register that holds guest register `r` (EAX, ECX, EDX, EBX,
/// ESP, EBP, ESI, EDI) while translated code runs: rbx, r12, rdx, r13, rbp,
/// r14, r9, r15. The four with byte forms (AL..BL, AH..BH) avoid rsp..rdi,
/// whose byte forms mean AH..BH without a REX prefix; the host's scratch
/// registers are rax, rcx, rsi, r8, r10 and r11, and rdi holds the context.
/// The pinned registers always hold zero-extended 32-bit values.
const HOST_REG: [u8; 8] = [3, 12, 2, 13, 5, 14, 9, 15];

/// The host register of guest register `r` (see [`HOST_REG`]).
fn hr(r: usize) -> u8 {
    HOST_REG[r]
}

/// Stores the pinned registers into the context (before a helper reads or
/// changes the guest's registers, or when translated code returns).
fn spill(a: &mut Assembler) {
    for r in 0..8 {
        let off = reg_off(r);
        dynasm!(a ; .arch x64 ; mov DWORD [rdi + off], Rd(hr(r)));
    }
}

/// Loads the pinned registers from the context.
fn reload(a: &mut Assembler) {
    for r in 0..8 {
        let off = reg_off(r);
        dynasm!(a ; .arch x64 ; mov Rd(hr(r)), DWORD [rdi + off]);
    }
}

/// The way into translated code, emitted once at the start of the code
/// cache: `extern "sysv64" fn(ctx, block, helper_frame) -> u32` saves the host's
/// callee-saved registers, loads the guest's registers into their host
/// registers ([`HOST_REG`]), calls the block (which may chain on to others;
/// the last one returns here) and stores them back.
pub fn trampoline() -> Vec<u8> {
    let mut a = Assembler::new(0);
    dynasm!(a
        ; .arch x64
        ; push rbx
        ; push rbp
        ; push r12
        ; push r13
        ; push r14
        ; push r15
        // Entered at 8 mod 16; six pushes keep that, so three more slots
        // make the call below enter the block at 8 mod 16 as a normal call
        // does. The block sees them at rsp + 8 (pending flags), rsp + 16
        // (the helper frame, the third argument), rsp + 24 (whether the
        // guest's x87 state is in the host FPU) and above (the x87 image,
        // see `x87::FRAME`).
        ; sub rsp, x87::FRAME
        ; mov [rsp + 8], rdx
        ; mov QWORD [rsp + 16], 0
    );
    reload(&mut a);
    dynasm!(a ; .arch x64 ; call rsi);
    // Translated code left the guest's x87 state in the host FPU: it goes
    // back here, the one way out.
    x87::emit_trampoline_leave(&mut a);
    spill(&mut a);
    dynasm!(a
        ; .arch x64
        ; add rsp, x87::FRAME
        ; pop r15
        ; pop r14
        ; pop r13
        ; pop r12
        ; pop rbp
        ; pop rbx
        ; ret
    );
    a.finalize().unwrap_or_default()
}

/// Whether the host has LAHF/SAHF in 64-bit mode (CPUID 8000_0001h
/// ECX bit 0; a few of the first x86-64 chips lack it).
fn host_has_lahf() -> bool {
    static LAHF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *LAHF.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            // Leaf 8000_0000h gives the highest extended leaf.
            let max = core::arch::x86_64::__cpuid(0x8000_0000).eax;
            max >= 0x8000_0001 && core::arch::x86_64::__cpuid(0x8000_0001).ecx & 1 != 0
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    })
}

/// Saves the host's flags, which an operation just set, in the pending
/// slot (`[rsp + 8]`: the trampoline's spare stack slot, which every block
/// sees there). The guest's EFLAGS takes them later, under the mask the
/// translator keeps for them ([`materialize`]), when something reads EFLAGS
/// or the block is left. The slot holds OF (SETO) in its first byte and
/// SF ZF AF PF CF (LAHF, the low byte of EFLAGS) in its second: about a
/// third of the cost of PUSHFQ, measured on this host. Without LAHF in
/// 64-bit mode the slot holds the PUSHFQ image instead. Clobbers rax (see
/// [`merge_flags_keeping_rax`]).
fn merge_flags(a: &mut Assembler, _mask: u32, _clear: u32, live: bool) {
    if !live {
        return;
    }
    if host_has_lahf() {
        dynasm!(a
            ; .arch x64
            ; lahf
            ; seto al
            ; mov WORD [rsp + 8], ax
        );
    } else {
        dynasm!(a ; .arch x64 ; pushfq ; pop QWORD [rsp + 8]);
    }
}

/// [`merge_flags`] for an operation whose result is still in rax
/// (clobbers r11 instead).
fn merge_flags_keeping_rax(a: &mut Assembler, mask: u32, clear: u32, live: bool) {
    if !live {
        return;
    }
    if host_has_lahf() {
        dynasm!(a ; .arch x64 ; mov r11, rax);
        merge_flags(a, mask, clear, live);
        dynasm!(a ; .arch x64 ; mov rax, r11);
    } else {
        dynasm!(a ; .arch x64 ; pushfq ; pop QWORD [rsp + 8]);
    }
}

/// Merges the pending host flags (see [`merge_flags`]) into the guest's
/// EFLAGS: the `mask` flags from the host, the `clear` ones zeroed.
/// Clobbers ecx and r11.
fn materialize(a: &mut Assembler, pending: (u32, u32)) {
    if host_has_lahf() {
        dynasm!(a
            ; .arch x64
            // One load of the word as it was stored takes the store's
            // data; two byte loads from it waited here for the store.
            ; movzx ecx, WORD [rsp + 8]
            ; movzx r11d, cl
            ; shr ecx, 8
            ; shl r11d, 11
            ; or ecx, r11d
        );
    } else {
        dynasm!(a ; .arch x64 ; mov ecx, DWORD [rsp + 8]);
    }
    merge_ecx(a, pending);
}

/// Merges the flags in ecx (at their EFLAGS places) into EFLAGS: the
/// `mask` ones from ecx, the `clear` ones zeroed. Clobbers r11.
fn merge_ecx(a: &mut Assembler, (mask, clear): (u32, u32)) {
    let fl = offsets::EFLAGS as i32;
    let keep = !(mask | clear) as i32;
    dynasm!(a
        ; .arch x64
        ; and ecx, mask as i32
        ; mov r11d, DWORD [rdi + fl]
        ; and r11d, keep
        ; or r11d, ecx
        ; mov DWORD [rdi + fl], r11d
    );
}

/// The flags an op leaves pending when they are live (see
/// [`merge_flags`]): the host's mask and the flags cleared.
fn saves_flags(op: Op) -> Option<(u32, u32)> {
    let alu = |alu: Alu| {
        if matches!(alu, Alu::And | Alu::Or | Alu::Xor | Alu::Test) {
            (LOGIC_FLAGS, AF)
        } else {
            (ARITH_FLAGS, 0)
        }
    };
    match op {
        Op::Alu(x, ..)
        | Op::AluRM(x, ..)
        | Op::AluMR(x, ..)
        | Op::Byte(ByteOp::Alu(x), ..)
        | Op::Alu16(x, ..) => Some(alu(x)),
        Op::IncDec(..) | Op::Unary(Unary::Inc | Unary::Dec, _) => Some((INC_FLAGS, 0)),
        Op::Unary(Unary::Neg, _) | Op::Str(StrKind::Scas, _) => Some((ARITH_FLAGS, 0)),
        Op::Bt(..) => Some((0x1, 0)),
        Op::X87(x) if x.kind == x87::Kind::Fcomi => Some((ARITH_FLAGS, 0)),
        _ => None,
    }
}

/// Whether EFLAGS must be up to date before `op` runs (`live`: its own
/// flags are wanted): it reads flags, computes its own from EFLAGS, keeps
/// some of the earlier ones, calls a helper, or ends the block.
fn needs_eflags(op: Op, live: bool) -> bool {
    if ends_block(op) {
        return true;
    }
    match op {
        Op::Alu(Alu::Adc | Alu::Sbb, ..)
        | Op::AluRM(Alu::Adc | Alu::Sbb, ..)
        | Op::AluMR(Alu::Adc | Alu::Sbb, ..)
        | Op::Byte(ByteOp::Alu(Alu::Adc | Alu::Sbb), ..)
        | Op::Alu16(Alu::Adc | Alu::Sbb, ..)
        | Op::Rdtsc
        | Op::Helper
        | Op::Setcc(..)
        | Op::Cmov(..)
        | Op::Sahf
        | Op::Lahf => true,
        Op::X87(x) => matches!(x.kind, x87::Kind::Fcmov(_)),
        Op::Shift(..) | Op::Shift16(..) | Op::ShiftCl(..) | Op::Rotate(..) | Op::Imul(..) => live,
        _ => match saves_flags(op) {
            Some((mask, clear)) => live && mask | clear != ARITH_FLAGS,
            None => false,
        },
    }
}

/// Loads the guest's CF into the host's CF (for ADC and SBB), from EFLAGS
/// or from the pending slot when that holds it (see [`merge_flags`]: CF is
/// bit 8 of the LAHF slot's word, bit 0 of a PUSHFQ image). The slot's
/// word is read as it was stored, so the load takes the store's data.
fn load_carry(a: &mut Assembler, src: FlagSrc) {
    let fl = offsets::EFLAGS as i32;
    match src {
        FlagSrc::Eflags => dynasm!(a ; .arch x64 ; bt DWORD [rdi + fl], 0),
        FlagSrc::Pending if host_has_lahf() => dynasm!(a ; .arch x64 ; bt WORD [rsp + 8], 8),
        FlagSrc::Pending => dynasm!(a ; .arch x64 ; bt DWORD [rsp + 8], 0),
        FlagSrc::Host => {}
        // CF is AH's bit 0.
        FlagSrc::Rax => dynasm!(a ; .arch x64 ; bt eax, 8),
    }
}

/// What a block's host function returns when it cannot be chained from
/// (a return, or the budget check at its entry).
pub const EXIT_UNLINKED: u32 = 0;
/// What it returns when an access left it before its end.
pub const EXIT_EARLY: u32 = u32::MAX;

/// A place where a block ends with a direct jump to a guest address: a
/// `jmp rel32` that first points at the return just after it, and that the
/// engine may patch to go straight to the target's block ("chaining").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkSite {
    /// The offset of the rel32 field, from the block's start.
    pub at: usize,
    /// The guest EIP the exit goes to.
    pub target: u32,
    /// What the function returns when it leaves through this exit.
    pub id: u32,
}

/// A stub that chains an exit into a block on another page: the jump to
/// `target` (at physical page address `phys_page`) is taken only while the
/// active TLB maps `target`'s linear page there with read permission for
/// this privilege, and the page's code generation (at `gen_at`) is still
/// `gen`; otherwise the exit returns to the engine as before. The stub's
/// rel32 fields are left zero and returned (the ones to point back at the
/// exit's own return path, and the one to point at the block), for the
/// engine to patch once it knows where the stub lands.
pub fn chain_stub(
    target: u32,
    phys_page: u32,
    user: bool,
    gen_at: *const u32,
    gen: u32,
) -> (Vec<u8>, Vec<usize>, usize) {
    let mut a = Assembler::new(0);
    let entries = context_offsets::TLB_ENTRIES as i32;
    let slot = ((target >> 12) as usize & (TLB_SIZE - 1)) * entry_offsets::SIZE;
    let tag = (slot + entry_offsets::READ_TAG + 4 * usize::from(user)) as i32;
    let phys = (slot + entry_offsets::PHYS) as i32;
    let mut back = Vec::new();
    dynasm!(a
        ; .arch x64
        ; mov r10, QWORD [rdi + entries]
        ; cmp DWORD [r10 + tag], (target & !0xFFF) as i32
        ; .bytes [0x0Fu8, 0x85, 0, 0, 0, 0]
    );
    back.push(a.offset().0 - 4);
    dynasm!(a
        ; .arch x64
        ; cmp DWORD [r10 + phys], phys_page as i32
        ; .bytes [0x0Fu8, 0x85, 0, 0, 0, 0]
    );
    back.push(a.offset().0 - 4);
    dynasm!(a
        ; .arch x64
        ; mov r10, QWORD gen_at as usize as i64
        ; cmp DWORD [r10], gen as i32
        ; .bytes [0x0Fu8, 0x85, 0, 0, 0, 0]
    );
    back.push(a.offset().0 - 4);
    dynasm!(a ; .arch x64 ; .bytes [0xE9u8, 0, 0, 0, 0]);
    let jump = a.offset().0 - 4;
    (a.finalize().unwrap_or_default(), back, jump)
}

/// Adds `n` to the context's instruction count.
fn count(a: &mut Assembler, n: u32) {
    let icount = context_offsets::ICOUNT as i32;
    if n > 0 {
        dynasm!(a ; .arch x64 ; add QWORD [rdi + icount], n as i32);
    }
}

/// Ends the block: EIP := `eip`, `n` instructions retired, returns `code`.
fn exit_with(a: &mut Assembler, eip: u32, n: u32, code: u32) {
    let eip_off = offsets::EIP as i32;
    dynasm!(a ; .arch x64 ; mov DWORD [rdi + eip_off], eip as i32);
    count(a, n);
    dynasm!(a
        ; .arch x64
        ; mov eax, code as i32
        ; ret
    );
}

/// Ends the block early, before an access the inline check refused.
fn exit(a: &mut Assembler, eip: u32, n: u32) {
    exit_with(a, eip, n, EXIT_EARLY);
}

/// Ends the block with a direct transfer to `target`, through a patchable
/// jump recorded in `sites`.
fn link_exit(a: &mut Assembler, target: u32, n: u32, sites: &mut Vec<LinkSite>, first_id: u32) {
    let eip_off = offsets::EIP as i32;
    let id = first_id + sites.len() as u32;
    dynasm!(a ; .arch x64 ; mov DWORD [rdi + eip_off], target as i32);
    count(a, n);
    // jmp rel32 to the next instruction until it is linked.
    dynasm!(a ; .arch x64 ; .bytes [0xE9u8, 0, 0, 0, 0]);
    sites.push(LinkSite {
        at: a.offset().0 - 4,
        target,
        id,
    });
    dynasm!(a
        ; .arch x64
        ; mov eax, id as i32
        ; ret
    );
}

/// A conditional branch on the pending flags `st` (which hold every flag
/// `cc` reads): the host's own Jcc on the host's flags, as they are or made
/// again from rax, else a test of the pending slot; each way merges the
/// pending flags into EFLAGS before it leaves the block. (Through EFLAGS,
/// the branch would wait for the merge's store.)
fn emit_jcc_pending(
    a: &mut Assembler,
    (cc, mut st): (Cond, flags::Pending),
    (target, fallthrough): (u32, u32),
    n: u32,
    sites: &mut Vec<LinkSite>,
    first_id: u32,
) {
    let src = st.source(true);
    if !src.native() {
        if emit_cond(a, cc, FlagSrc::Pending) {
            dynasm!(a ; .arch x64 ; jz >taken);
        } else {
            dynasm!(a ; .arch x64 ; jnz >taken);
        }
    } else {
        emit_native_jcc(a, cc, src, &mut st);
    }
    let mut other = st;
    st.merge(a);
    link_exit(a, fallthrough, n, sites, first_id);
    dynasm!(a ; .arch x64 ; taken:);
    other.merge(a);
    link_exit(a, target, n, sites, first_id);
}

/// The host's Jcc to a local `taken` label on the pending flags `st` found
/// at the native source `src` (kept in rax too, for the merges after).
fn emit_native_jcc(a: &mut Assembler, cc: Cond, src: FlagSrc, st: &mut flags::Pending) {
    use Cond::*;
    if host_has_lahf() {
        // Each way merges from rax (or the slot): LAHF and SETO leave the
        // host's flags as they are.
        st.keep_off_host(a);
    }
    emit_native_cond(a, src);
    match cc {
        O => dynasm!(a ; .arch x64 ; jo >taken),
        No => dynasm!(a ; .arch x64 ; jno >taken),
        B => dynasm!(a ; .arch x64 ; jb >taken),
        Ae => dynasm!(a ; .arch x64 ; jae >taken),
        E => dynasm!(a ; .arch x64 ; je >taken),
        Ne => dynasm!(a ; .arch x64 ; jne >taken),
        Be => dynasm!(a ; .arch x64 ; jbe >taken),
        A => dynasm!(a ; .arch x64 ; ja >taken),
        S => dynasm!(a ; .arch x64 ; js >taken),
        Ns => dynasm!(a ; .arch x64 ; jns >taken),
        P => dynasm!(a ; .arch x64 ; jp >taken),
        Np => dynasm!(a ; .arch x64 ; jnp >taken),
        L => dynasm!(a ; .arch x64 ; jl >taken),
        Ge => dynasm!(a ; .arch x64 ; jge >taken),
        Le => dynasm!(a ; .arch x64 ; jle >taken),
        G => dynasm!(a ; .arch x64 ; jg >taken),
    }
}

/// A conditional branch at the end of a block of `n` instructions: the
/// guest's arithmetic flags go into the host's, and the host's Jcc picks
/// the next EIP.
fn emit_jcc(
    a: &mut Assembler,
    cc: Cond,
    (target, fallthrough): (u32, u32),
    n: u32,
    sites: &mut Vec<LinkSite>,
    first_id: u32,
) {
    if emit_cond(a, cc, FlagSrc::Eflags) {
        dynasm!(a ; .arch x64 ; jz >taken);
    } else {
        dynasm!(a ; .arch x64 ; jnz >taken);
    }
    link_exit(a, fallthrough, n, sites, first_id);
    dynasm!(a ; .arch x64 ; taken:);
    link_exit(a, target, n, sites, first_id);
}

/// Computes the linear address of `m` into r8d (flat segments: the
/// effective address, modulo 4 GiB; FS and GS: plus their base).
fn emit_ea(a: &mut Assembler, m: Mem) {
    emit_offset(a, m);
    if let Some(seg) = m.seg {
        let base = (offsets::SEGS + 12 * seg as usize) as i32;
        dynasm!(a ; .arch x64 ; add r8d, DWORD [rdi + base]);
    }
}

/// The effective address of `m` into r8d: one LEA on the pinned
/// registers (zero-extended, so the low 32 bits of the 64-bit sum are the
/// guest's address modulo 4 GiB).
fn emit_offset(a: &mut Assembler, m: Mem) {
    let disp = m.disp as i32;
    match (m.base.map(hr), m.index.map(hr)) {
        (None, None) => dynasm!(a ; .arch x64 ; mov r8d, disp),
        (Some(b), None) => dynasm!(a ; .arch x64 ; lea r8d, [Rq(b) + disp]),
        (None, Some(x)) => match m.scale {
            1 => dynasm!(a ; .arch x64 ; lea r8d, [Rq(x) + disp]),
            2 => dynasm!(a ; .arch x64 ; lea r8d, [Rq(x) * 2 + disp]),
            4 => dynasm!(a ; .arch x64 ; lea r8d, [Rq(x) * 4 + disp]),
            _ => dynasm!(a ; .arch x64 ; lea r8d, [Rq(x) * 8 + disp]),
        },
        (Some(b), Some(x)) => match m.scale {
            1 => dynasm!(a ; .arch x64 ; lea r8d, [Rq(b) + Rq(x) + disp]),
            2 => dynasm!(a ; .arch x64 ; lea r8d, [Rq(b) + Rq(x) * 2 + disp]),
            4 => dynasm!(a ; .arch x64 ; lea r8d, [Rq(b) + Rq(x) * 4 + disp]),
            _ => dynasm!(a ; .arch x64 ; lea r8d, [Rq(b) + Rq(x) * 8 + disp]),
        },
    }
}

/// The inline TLB check for a 4-byte access at the linear address in r8d:
/// on a match r10 holds the host address; otherwise control goes to
/// `miss` (the block's exit before this instruction).
fn emit_tlb(a: &mut Assembler, write: bool, user: bool, miss: DynamicLabel) {
    emit_tlb_sized(a, 4, write, user, miss);
}

/// The inline TLB check for an access of `size` bytes (1 to 10) at the
/// linear address in r8d; see [`emit_tlb`]. Clobbers ecx and r11.
fn emit_tlb_sized(a: &mut Assembler, size_bytes: u8, write: bool, user: bool, miss: DynamicLabel) {
    let entries = context_offsets::TLB_ENTRIES as i32;
    let tag = (if write {
        entry_offsets::WRITE_TAG
    } else {
        entry_offsets::READ_TAG
    } + 4 * usize::from(user)) as i32;
    let addend = entry_offsets::ADDEND as i32;
    // The slot's offset is its index times 32 (entries are 32 bytes): the
    // address shifted right by 12 - 5 and masked to the index's bits,
    // moved 5 up.
    let mask = ((TLB_SIZE - 1) << 5) as i32;
    let last = i32::from(size_bytes) - 1;
    dynasm!(a
        ; .arch x64
        ; mov r11d, r8d
        ; shr r11d, 12 - 5
        ; and r11d, mask
        ; mov r10, QWORD [rdi + entries]
        // The page of the access's last byte: an access that crosses into
        // the next page (or wraps at 4 GiB) misses; a misaligned one within
        // the page goes on, as the interpreter reads it the same.
        ; lea ecx, [r8 + last]
        ; and ecx, !0xFFF_i32
        ; cmp ecx, DWORD [r10 + r11 + tag]
        ; jne =>miss
        ; mov r10, QWORD [r10 + r11 + addend]
        ; add r10, r8
    );
}

/// r10 := the host address of the `size`-byte operand `m`, checked for a
/// `write` (or a read), or control goes to `miss`. `near`: r10 already
/// holds the host address of an operand `near` bytes below this one (the
/// same registers, unchanged, checked with at least this permission, and
/// nothing since could change the TLB; see [`Checked`]). When this one lies
/// in the same guest page (the guest addresses tell: the earlier one is
/// this one minus `near`), it is r10 + `near`, with no TLB lookup;
/// otherwise the full check runs.
fn emit_checked(
    a: &mut Assembler,
    (m, size): (Mem, u8),
    write: bool,
    user: bool,
    miss: DynamicLabel,
    near: Option<i32>,
) {
    if near == Some(0) {
        return; // the very operand r10 points at
    }
    emit_ea(a, m);
    let Some(delta) = near else {
        emit_tlb_sized(a, size, write, user, miss);
        return;
    };
    let last = 0x1000 - i32::from(size);
    let back = delta.wrapping_neg();
    dynasm!(a
        ; .arch x64
        // The earlier operand's page offset plus the distance: this one's
        // offset from that page's start, in the page if 0..=0x1000 - size
        // (unsigned: below the page wraps above it).
        ; lea ecx, [r8 + back]
        ; and ecx, 0xFFF
        ; add ecx, delta
        ; cmp ecx, last
        ; ja >full
        ; add r10, delta
        ; jmp >checked
        ; full:
    );
    emit_tlb_sized(a, size, write, user, miss);
    dynasm!(a ; .arch x64 ; checked:);
}

/// The operand whose host address r10 holds after an op, while that stays
/// true (see [`emit_checked`]).
#[derive(Clone, Copy, Debug)]
struct Checked {
    m: Mem,
    write: bool,
}

impl Checked {
    /// How far above the checked operand `op`'s memory operand is, when
    /// it can use the check: the same base, index, scale and segment, and
    /// a permission the check covered.
    fn near(self, op: Op) -> Option<i32> {
        let (m, write) = match op {
            Op::Load(_, m) | Op::AluRM(_, _, m) | Op::Movx(_, Loc8::Mem(m), ..) => (m, false),
            Op::Byte(ByteOp::Mov, Loc8::Reg(..), Src8::Loc(Loc8::Mem(m)))
            | Op::Word(Loc8::Reg(..), Src8::Loc(Loc8::Mem(m))) => (m, false),
            Op::Byte(ByteOp::Mov, Loc8::Mem(m), Src8::Imm(_) | Src8::Loc(Loc8::Reg(..)))
            | Op::Word(Loc8::Mem(m), Src8::Imm(_) | Src8::Loc(Loc8::Reg(..))) => (m, true),
            Op::Store(m, _) => (m, true),
            Op::AluMR(alu, m, _) => (m, !matches!(alu, Alu::Cmp | Alu::Test)),
            _ => return None,
        };
        let same = m.base == self.m.base
            && m.index == self.m.index
            && m.scale == self.m.scale
            && m.seg == self.m.seg;
        (same && (self.write || !write)).then(|| m.disp.wrapping_sub(self.m.disp) as i32)
    }

    /// What r10 holds after `op` ran with `before` holding before it.
    fn after(before: Option<Checked>, op: Op) -> Option<Checked> {
        let uses = |m: Mem, r: usize| m.base == Some(r) || m.index == Some(r);
        match op {
            Op::Load(d, m)
            | Op::AluRM(
                Alu::Add | Alu::Adc | Alu::Sub | Alu::Sbb | Alu::And | Alu::Or | Alu::Xor,
                d,
                m,
            ) => (!uses(m, d)).then_some(Checked { m, write: false }),
            Op::AluRM(_, _, m) => Some(Checked { m, write: false }),
            Op::Movx(d, Loc8::Mem(m), ..)
            | Op::Byte(ByteOp::Mov, Loc8::Reg(d, _), Src8::Loc(Loc8::Mem(m)))
            | Op::Word(Loc8::Reg(d, _), Src8::Loc(Loc8::Mem(m))) => {
                (!uses(m, d)).then_some(Checked { m, write: false })
            }
            Op::Byte(ByteOp::Mov, Loc8::Mem(m), Src8::Imm(_) | Src8::Loc(Loc8::Reg(..)))
            | Op::Word(Loc8::Mem(m), Src8::Imm(_) | Src8::Loc(Loc8::Reg(..))) => {
                Some(Checked { m, write: true })
            }
            Op::Store(m, _) => Some(Checked { m, write: true }),
            Op::AluMR(alu, m, _) => Some(Checked {
                m,
                write: !matches!(alu, Alu::Cmp | Alu::Test),
            }),
            _ => {
                let c = before?;
                let kept = match op {
                    Op::Nop => true,
                    Op::MovRR(d, _)
                    | Op::MovRI(d, _)
                    | Op::IncDec(_, d)
                    | Op::Lea(d, _)
                    | Op::Shift(_, d, _)
                    | Op::Rotate(_, d, _)
                    | Op::ShiftCl(_, d) => !uses(c.m, d),
                    Op::Alu(Alu::Cmp | Alu::Test, ..) => true,
                    Op::Alu(_, d, _) => !uses(c.m, d),
                    // Register forms (no memory operand), by the register
                    // they may write.
                    Op::Movx(d, Loc8::Reg(..), ..)
                    | Op::Setcc(_, Loc8::Reg(d, _))
                    | Op::Cmov(_, d, Rm::Reg(_))
                    | Op::Imul(d, Rm::Reg(_), _)
                    | Op::Unary(_, Rm::Reg(d))
                    | Op::Bt(_, Rm::Reg(d), _)
                    | Op::Shift16(_, d, _)
                    | Op::Byte(_, Loc8::Reg(d, _), Src8::Imm(_) | Src8::Loc(Loc8::Reg(..)))
                    | Op::Word(Loc8::Reg(d, _), Src8::Imm(_) | Src8::Loc(Loc8::Reg(..)))
                    | Op::Alu16(_, Loc8::Reg(d, _), Src8::Imm(_) | Src8::Loc(Loc8::Reg(..))) => {
                        !uses(c.m, d)
                    }
                    _ => false,
                };
                kept.then_some(c)
            }
        }
    }
}

/// Emits the host twin of `alu` with the given destination and source
/// tokens (one arm per operation).
macro_rules! by_alu {
    ($a:expr, $alu:expr, [$($dst:tt)+], [$($src:tt)+]) => {
        match $alu {
            Alu::Add => dynasm!($a ; .arch x64 ; add $($dst)+, $($src)+),
            Alu::Adc => dynasm!($a ; .arch x64 ; adc $($dst)+, $($src)+),
            Alu::Sub => dynasm!($a ; .arch x64 ; sub $($dst)+, $($src)+),
            Alu::Sbb => dynasm!($a ; .arch x64 ; sbb $($dst)+, $($src)+),
            Alu::Cmp => dynasm!($a ; .arch x64 ; cmp $($dst)+, $($src)+),
            Alu::And => dynasm!($a ; .arch x64 ; and $($dst)+, $($src)+),
            Alu::Or => dynasm!($a ; .arch x64 ; or $($dst)+, $($src)+),
            Alu::Xor => dynasm!($a ; .arch x64 ; xor $($dst)+, $($src)+),
            Alu::Test => dynasm!($a ; .arch x64 ; test $($dst)+, $($src)+),
        }
    };
}

/// Applies `alu` to al and sil (`size` 1) or ax and si (2) and merges its
/// flags (see [`emit_alu32`] for 32-bit operands).
fn emit_alu_sized(a: &mut Assembler, alu: Alu, size: u8, live: bool) {
    if matches!(alu, Alu::Adc | Alu::Sbb) {
        load_carry(a, FlagSrc::Eflags);
    }
    if size == 1 {
        by_alu!(a, alu, [al], [sil]);
    } else {
        by_alu!(a, alu, [ax], [si]);
    }
    if matches!(alu, Alu::And | Alu::Or | Alu::Xor | Alu::Test) {
        merge_flags_keeping_rax(a, LOGIC_FLAGS, AF, live);
    } else {
        merge_flags_keeping_rax(a, ARITH_FLAGS, 0, live);
    }
}

/// Where a 32-bit ALU operation's operand is on the host: a pinned guest
/// register, an immediate, or memory at r10.
#[derive(Clone, Copy)]
enum Opnd {
    Reg(u8),
    Imm(i32),
    AtR10,
}

/// The host twin of a 32-bit `alu` on `dst` and `src` (at most one of them
/// in memory), with the guest's flags merged when `live`; ADC and SBB take
/// CF from `carry`.
fn emit_alu32(a: &mut Assembler, alu: Alu, (dst, src): (Opnd, Opnd), live: bool, carry: FlagSrc) {
    if matches!(alu, Alu::Adc | Alu::Sbb) {
        load_carry(a, carry);
    }
    match (dst, src) {
        (Opnd::Reg(d), Opnd::Reg(s)) => by_alu!(a, alu, [Rd(d)], [Rd(s)]),
        (Opnd::Reg(d), Opnd::Imm(v)) => by_alu!(a, alu, [Rd(d)], [v]),
        // TEST is symmetric and has only the memory-first form.
        (Opnd::Reg(d), Opnd::AtR10) if alu == Alu::Test => {
            dynasm!(a ; .arch x64 ; test DWORD [r10], Rd(d))
        }
        (Opnd::Reg(d), Opnd::AtR10) => by_alu!(a, alu, [Rd(d)], [DWORD[r10]]),
        (Opnd::AtR10, Opnd::Reg(s)) => by_alu!(a, alu, [DWORD[r10]], [Rd(s)]),
        (Opnd::AtR10, Opnd::Imm(v)) => by_alu!(a, alu, [DWORD[r10]], [v]),
        _ => unreachable!("one memory operand at most, never an immediate destination"),
    }
    if matches!(alu, Alu::And | Alu::Or | Alu::Xor | Alu::Test) {
        merge_flags(a, LOGIC_FLAGS, AF, live);
    } else {
        merge_flags(a, ARITH_FLAGS, 0, live);
    }
}

/// A source operand on the host.
fn opnd(src: Src) -> Opnd {
    match src {
        Src::Reg(s) => Opnd::Reg(hr(s)),
        Src::Imm(v) => Opnd::Imm(v as i32),
    }
}

/// Emits an instruction with a memory operand; a TLB miss goes to `miss`.
fn emit_mem(
    a: &mut Assembler,
    op: Op,
    user: bool,
    miss: DynamicLabel,
    live: bool,
    (near, flags): (Option<i32>, FlagSrc),
) {
    let sp = hr(4);
    match op {
        // Byte and word moves to and from memory (the value through eax).
        Op::Byte(ByteOp::Mov, Loc8::Mem(m), src @ (Src8::Imm(_) | Src8::Loc(Loc8::Reg(..))))
        | Op::Word(Loc8::Mem(m), src @ (Src8::Imm(_) | Src8::Loc(Loc8::Reg(..)))) => {
            let size = if matches!(op, Op::Word(..)) { 2 } else { 1 };
            match src {
                Src8::Imm(v) => dynasm!(a ; .arch x64 ; mov eax, i32::from(v)),
                Src8::Loc(l) => load8(a, l, size, false, false, user, None),
            }
            emit_checked(a, (m, size), true, user, miss, near);
            if size == 2 {
                dynasm!(a ; .arch x64 ; mov WORD [r10], ax);
            } else {
                dynasm!(a ; .arch x64 ; mov BYTE [r10], al);
            }
        }
        Op::Byte(ByteOp::Mov, dst @ Loc8::Reg(..), Src8::Loc(Loc8::Mem(m))) => {
            emit_checked(a, (m, 1), false, user, miss, near);
            dynasm!(a ; .arch x64 ; movzx eax, BYTE [r10]);
            store8(a, dst);
        }
        Op::Word(Loc8::Reg(r, _), Src8::Loc(Loc8::Mem(m))) => {
            emit_checked(a, (m, 2), false, user, miss, near);
            dynasm!(a ; .arch x64 ; mov Rw(hr(r)), WORD [r10]);
        }
        Op::Movx(d, Loc8::Mem(m), signed, bytes) => {
            emit_checked(a, (m, bytes), false, user, miss, near);
            match (bytes, signed) {
                (1, false) => dynasm!(a ; .arch x64 ; movzx Rd(hr(d)), BYTE [r10]),
                (1, true) => dynasm!(a ; .arch x64 ; movsx Rd(hr(d)), BYTE [r10]),
                (_, false) => dynasm!(a ; .arch x64 ; movzx Rd(hr(d)), WORD [r10]),
                (_, true) => dynasm!(a ; .arch x64 ; movsx Rd(hr(d)), WORD [r10]),
            }
        }
        Op::Load(d, m) => {
            emit_checked(a, (m, 4), false, user, miss, near);
            dynasm!(a ; .arch x64 ; mov Rd(hr(d)), DWORD [r10]);
        }
        Op::Store(m, src) => {
            emit_checked(a, (m, 4), true, user, miss, near);
            match src {
                Src::Reg(s) => dynasm!(a ; .arch x64 ; mov DWORD [r10], Rd(hr(s))),
                Src::Imm(v) => dynasm!(a ; .arch x64 ; mov DWORD [r10], v as i32),
            }
        }
        Op::AluRM(alu, d, m) => {
            emit_checked(a, (m, 4), false, user, miss, near);
            emit_alu32(a, alu, (Opnd::Reg(hr(d)), Opnd::AtR10), live, flags);
        }
        Op::AluMR(alu, m, src) => {
            let rmw = !matches!(alu, Alu::Cmp | Alu::Test);
            // A written operand needs a write tag (write permission implies
            // read permission on x86 pages).
            emit_checked(a, (m, 4), rmw, user, miss, near);
            emit_alu32(a, alu, (Opnd::AtR10, opnd(src)), live, flags);
        }
        Op::Push(r) => {
            emit_stack_slot(a, user, miss);
            dynasm!(a
                ; .arch x64
                ; mov DWORD [r10], Rd(hr(r))
                ; mov Rd(sp), r8d
            );
        }
        Op::Pop(r) => {
            dynasm!(a ; .arch x64 ; mov r8d, Rd(sp));
            emit_tlb(a, false, user, miss);
            dynasm!(a
                ; .arch x64
                ; mov Rd(hr(r)), DWORD [r10]
                ; add Rd(sp), 4
            );
        }
        Op::Call(_) | Op::Ret(_) => unreachable!("see emit_call and emit_ret"),
        Op::Byte(..) | Op::Movx(..) | Op::Alu16(..) => emit_byte(a, op, user, Some(miss), live),
        Op::Imul(..) | Op::Setcc(..) | Op::Cmov(..) | Op::Unary(..) | Op::Word(..) => {
            emit_more(a, op, user, Some(miss), live, flags)
        }
        Op::Bt(..) | Op::PushMem(_) | Op::PushImm(_) | Op::Leave | Op::Div(_) | Op::Str(..) => {
            emit_late(a, op, user, Some(miss), live)
        }
        Op::X87(_) => unreachable!("x87 runs: see translate"),
        _ => unreachable!("not a memory op"),
    }
}

/// Loads a byte (or, for `bytes` = 2, a word) location into eax, zero- or
/// sign-extended. A memory location is checked in the TLB first; for a
/// location that is also written, the check is for a write.
fn load8(
    a: &mut Assembler,
    l: Loc8,
    bytes: u8,
    signed: bool,
    write: bool,
    user: bool,
    miss: Option<DynamicLabel>,
) {
    match l {
        Loc8::Reg(r, hi) => {
            let h = hr(r);
            match (bytes, signed, hi) {
                // AH..BH: through eax, whose second byte has a form (no REX).
                (1, false, true) => dynasm!(a ; .arch x64 ; mov eax, Rd(h) ; movzx eax, ah),
                (1, true, true) => dynasm!(a ; .arch x64 ; mov eax, Rd(h) ; movsx eax, ah),
                (1, false, false) => dynasm!(a ; .arch x64 ; movzx eax, Rb(h)),
                (1, true, false) => dynasm!(a ; .arch x64 ; movsx eax, Rb(h)),
                (_, false, _) => dynasm!(a ; .arch x64 ; movzx eax, Rw(h)),
                (_, true, _) => dynasm!(a ; .arch x64 ; movsx eax, Rw(h)),
            }
        }
        Loc8::Mem(m) => {
            emit_ea(a, m);
            emit_tlb_sized(
                a,
                bytes,
                write,
                user,
                miss.expect("a memory operand has an exit"),
            );
            match (bytes, signed) {
                (1, false) => dynasm!(a ; .arch x64 ; movzx eax, BYTE [r10]),
                (1, true) => dynasm!(a ; .arch x64 ; movsx eax, BYTE [r10]),
                (_, false) => dynasm!(a ; .arch x64 ; movzx eax, WORD [r10]),
                (_, true) => dynasm!(a ; .arch x64 ; movsx eax, WORD [r10]),
            }
        }
    }
}

/// Stores al to a byte location (memory: to the host address in r10 that
/// `load8` or the store's own check left). Clobbers ecx.
fn store8(a: &mut Assembler, l: Loc8) {
    match l {
        Loc8::Reg(r, false) => dynasm!(a ; .arch x64 ; mov Rb(hr(r)), al),
        // AH..BH: through ecx, whose second byte has a form (no REX); no
        // flag changes.
        Loc8::Reg(r, true) => dynasm!(a
            ; .arch x64
            ; mov ecx, Rd(hr(r))
            ; mov ch, al
            ; mov Rd(hr(r)), ecx
        ),
        Loc8::Mem(_) => dynasm!(a ; .arch x64 ; mov BYTE [r10], al),
    }
}

/// Emits a byte operation or a MOVZX/MOVSX.
fn emit_byte(a: &mut Assembler, op: Op, user: bool, miss: Option<DynamicLabel>, live: bool) {
    match op {
        Op::Movx(d, src, signed, bytes) => {
            load8(a, src, bytes, signed, false, user, miss);
            dynasm!(a ; .arch x64 ; mov Rd(hr(d)), eax);
        }
        Op::Byte(ByteOp::Mov, dst, src) => {
            // The source first (a register or an immediate when the
            // destination is memory: one memory operand at most).
            match src {
                Src8::Imm(v) => dynasm!(a ; .arch x64 ; mov eax, i32::from(v)),
                Src8::Loc(l) => load8(a, l, 1, false, false, user, miss),
            }
            if let Loc8::Mem(m) = dst {
                emit_ea(a, m);
                emit_tlb_sized(
                    a,
                    1,
                    true,
                    user,
                    miss.expect("a memory operand has an exit"),
                );
            }
            store8(a, dst);
        }
        Op::Byte(ByteOp::Alu(alu), dst, src) | Op::Alu16(alu, dst, src) => {
            let size = if matches!(op, Op::Byte(..)) { 1 } else { 2 };
            // esi := the source; eax := the destination.
            match src {
                Src8::Imm(v) => dynasm!(a ; .arch x64 ; mov esi, i32::from(v)),
                Src8::Loc(l) => {
                    load8(a, l, size, false, false, user, miss);
                    dynasm!(a ; .arch x64 ; mov esi, eax);
                }
            }
            let writes = !matches!(alu, Alu::Cmp | Alu::Test);
            load8(a, dst, size, false, writes, user, miss);
            emit_alu_sized(a, alu, size, live);
            match (writes, size, dst) {
                (false, ..) => {}
                (_, 1, _) => store8(a, dst),
                (_, _, Loc8::Reg(r, _)) => dynasm!(a ; .arch x64 ; mov Rw(hr(r)), ax),
                (_, _, Loc8::Mem(_)) => dynasm!(a ; .arch x64 ; mov WORD [r10], ax),
            }
        }
        _ => unreachable!("not a byte op"),
    }
}

/// The slot a push writes: r8d := ESP - 4 (ESP itself unchanged until the
/// store is done), checked for a write; r10 is its host address.
fn emit_stack_slot(a: &mut Assembler, user: bool, miss: DynamicLabel) {
    let sp = hr(4);
    dynasm!(a ; .arch x64 ; lea r8d, [Rq(sp) - 4]);
    emit_tlb(a, true, user, miss);
}

/// True for ops that access memory or may fault (and so may leave the
/// block early).
fn touches_memory(op: Op) -> bool {
    let mem8 = |l: Loc8| matches!(l, Loc8::Mem(_));
    match op {
        Op::Byte(_, d, Src8::Loc(s)) if mem8(d) || mem8(s) => return true,
        Op::Byte(_, d, _) if mem8(d) => return true,
        Op::Movx(_, s, _, _) if mem8(s) => return true,
        Op::Setcc(_, d) => return mem8(d),
        Op::Word(d, Src8::Loc(s)) | Op::Alu16(_, d, Src8::Loc(s)) => return mem8(d) || mem8(s),
        Op::Word(d, _) | Op::Alu16(_, d, _) => return mem8(d),
        Op::Imul(_, r, _)
        | Op::Cmov(_, _, r)
        | Op::Unary(_, r)
        | Op::Bt(_, r, _)
        | Op::JmpInd(r) => return matches!(r, Rm::Mem(_)),
        // A zero divisor, DF set: these leave the block too.
        Op::Div(_) | Op::Str(..) | Op::PushMem(_) | Op::PushImm(_) | Op::Leave | Op::CallInd(_) => {
            return true
        }
        Op::X87(x) => return x.touches_memory(),
        _ => {}
    }
    matches!(
        op,
        Op::Load(..)
            | Op::Store(..)
            | Op::AluRM(..)
            | Op::AluMR(..)
            | Op::Push(_)
            | Op::Pop(_)
            | Op::Call(_)
            | Op::Ret(_)
    )
}

/// `CALL rel32`: pushes the return address `next` (a write checked like
/// any other) and leaves ESP lowered; `RET`: loads the return address into
/// eax and releases the stack; `JMP` / `CALL r/m32`: the target into eax
/// (and the push).
fn emit_call_ret(a: &mut Assembler, op: Op, next: u32, user: bool, miss: DynamicLabel) {
    let sp = hr(4);
    match op {
        Op::Call(_) => {
            emit_stack_slot(a, user, miss);
            dynasm!(a
                ; .arch x64
                ; mov DWORD [r10], next as i32
                ; mov Rd(sp), r8d
            );
        }
        Op::JmpInd(rm) | Op::CallInd(rm) => {
            match rm {
                Rm::Reg(r) => dynasm!(a ; .arch x64 ; mov eax, Rd(hr(r))),
                Rm::Mem(m) => {
                    emit_access(a, m, 4, false, user, Some(miss));
                    dynasm!(a ; .arch x64 ; mov eax, DWORD [r10]);
                }
            }
            if matches!(op, Op::CallInd(_)) {
                emit_stack_slot(a, user, miss);
                dynasm!(a
                    ; .arch x64
                    ; mov DWORD [r10], next as i32
                    ; mov Rd(sp), r8d
                );
            }
        }
        Op::Ret(extra) => {
            let release = 4 + i32::from(extra);
            dynasm!(a ; .arch x64 ; mov r8d, Rd(sp));
            emit_tlb(a, false, user, miss);
            dynasm!(a
                ; .arch x64
                ; mov eax, DWORD [r10]
                ; add Rd(sp), release
            );
        }
        _ => unreachable!("not a call or return"),
    }
}

/// Ends a block after its CALL (EIP := the target) or RET (EIP := eax, then
/// the return cache, if there is one).
fn exit_after_ret(a: &mut Assembler, op: Op, n: u32, sites: &mut Vec<LinkSite>, b: &BlockCtx) {
    match op {
        Op::Call(target) => link_exit(a, target, n, sites, b.first_id),
        _ => {
            let eip_off = offsets::EIP as i32;
            dynasm!(a ; .arch x64 ; mov DWORD [rdi + eip_off], eax);
            count(a, n);
            if let Some(cache) = b.ret_cache {
                emit_ret_lookup(a, cache, b.user);
            }
            dynasm!(a
                ; .arch x64
                ; mov eax, EXIT_UNLINKED as i32
                ; ret
            );
        }
    }
}

/// Slots in the return cache (a power of two).
pub const RET_CACHE_SLOTS: usize = 4096;

/// A slot of the return cache: a block the engine found for a guest EIP,
/// with what jumping straight to it needs to re-check. Generated code
/// reads it at fixed offsets.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct RetEntry {
    /// The block's guest EIP.
    pub eip: u32,
    /// The physical address of its page.
    pub phys_page: u32,
    /// That page's code generation when the block was made.
    pub gen: u32,
    /// Bit 0: translated for user level; bit 31: empty. (Segment needs are
    /// checked by the block itself at its entry.)
    pub key: u32,
    /// Where the page's generation lives (an address: the engine stays
    /// `Send`).
    pub gen_at: usize,
    /// The block's executable code (an address).
    pub code: usize,
}

impl RetEntry {
    /// An empty slot.
    pub const EMPTY: RetEntry = RetEntry {
        eip: 0,
        phys_page: 0,
        gen: 0,
        key: 1 << 31,
        gen_at: 0,
        code: 0,
    };

    /// The slot of guest EIP `eip`.
    pub fn slot(eip: u32) -> usize {
        ((eip ^ (eip >> 12)) as usize) & (RET_CACHE_SLOTS - 1)
    }
}

/// After a RET (target EIP in eax, already stored and counted): jumps
/// straight to the target's block when the return cache at `cache` holds
/// one for that EIP, translated for this privilege, on the page the active TLB maps the EIP to (readable at
/// this privilege), at that page's current code generation. Otherwise
/// falls through (to the return to the engine).
fn emit_ret_lookup(a: &mut Assembler, cache: usize, user: bool) {
    use std::mem::offset_of;
    let at_eip = offset_of!(RetEntry, eip) as i32;
    let phys_page = offset_of!(RetEntry, phys_page) as i32;
    let gen = offset_of!(RetEntry, gen) as i32;
    let key = offset_of!(RetEntry, key) as i32;
    let gen_at = offset_of!(RetEntry, gen_at) as i32;
    let code = offset_of!(RetEntry, code) as i32;
    let size = std::mem::size_of::<RetEntry>() as i32;
    let entries = context_offsets::TLB_ENTRIES as i32;
    let tag = (entry_offsets::READ_TAG + 4 * usize::from(user)) as i32;
    let phys = entry_offsets::PHYS as i32;
    let tlb_size = entry_offsets::SIZE as i32;
    dynasm!(a
        ; .arch x64
        ; mov r11d, eax
        ; shr r11d, 12
        ; xor r11d, eax
        ; and r11d, (RET_CACHE_SLOTS - 1) as i32
        ; imul r11d, r11d, size
        ; mov r8, QWORD cache as i64
        ; add r8, r11
        ; cmp eax, DWORD [r8 + at_eip]
        ; jne >miss
        ; cmp DWORD [r8 + key], i32::from(user)
        ; jne >miss
        ; mov r10, QWORD [rdi + entries]
        ; mov r11d, eax
        ; shr r11d, 12
        ; and r11d, (TLB_SIZE - 1) as i32
        ; imul r11d, r11d, tlb_size
        ; add r10, r11
        ; mov r11d, eax
        ; and r11d, !0xFFF
        ; cmp r11d, DWORD [r10 + tag]
        ; jne >miss
        ; mov r11d, DWORD [r10 + phys]
        ; cmp r11d, DWORD [r8 + phys_page]
        ; jne >miss
        ; mov r10, QWORD [r8 + gen_at]
        ; mov r11d, DWORD [r10]
        ; cmp r11d, DWORD [r8 + gen]
        ; jne >miss
        ; jmp QWORD [r8 + code]
        ; miss:
    );
}

/// Checks at a block's entry that the FS or GS its operands use (`needs`,
/// see [`BlockInfo::needs`]) is a present, writable 4 GiB data segment, as
/// the engine's own check does; otherwise goes to `bail` (nothing done).
/// Done here, a block may be chained to, or returned to, from blocks that
/// need less: only the interpreter loads segments, so what held at the
/// entry holds for the whole block.
fn emit_segment_checks(a: &mut Assembler, needs: u8, bail: DynamicLabel) {
    use morph86_cpu::state::{attr, Segment};
    use std::mem::offset_of;
    let data = i32::from(attr::PRESENT | attr::S | attr::CODE | attr::DC | attr::RW);
    let want = i32::from(attr::PRESENT | attr::S | attr::RW);
    for (flag, seg) in [(NEEDS_FS, SegReg::Fs), (NEEDS_GS, SegReg::Gs)] {
        if needs & flag == 0 {
            continue;
        }
        let at = offsets::SEGS + std::mem::size_of::<Segment>() * seg as usize;
        let limit = (at + offset_of!(Segment, limit)) as i32;
        let attrs = (at + offset_of!(Segment, attr)) as i32;
        dynasm!(a
            ; .arch x64
            ; cmp DWORD [rdi + limit], -1
            ; jne =>bail
            ; movzx eax, WORD [rdi + attrs]
            ; and eax, data
            ; cmp eax, want
            ; jne =>bail
        );
    }
}

/// What a block's translation needs to know beyond its code.
struct BlockCtx {
    user: bool,
    first_id: u32,
    ret_cache: Option<usize>,
}

/// A shift of register `r` by `count` (1 to 31), with the flags the
/// interpreter gives: CF, PF, ZF, SF from the host, AF set, and OF as the
/// last one-bit step leaves it (SHL: SF ^ CF; SHR: the old top bit for a
/// count of 1, else 0; SAR: 0).
fn emit_shift(a: &mut Assembler, kind: ShiftKind, r: usize, count: u8, live: bool) {
    emit_shift_sized(a, kind, r, count, false, live);
}

/// [`emit_shift`] of a register's low 16 bits (`word`; count below 16).
fn emit_shift_sized(
    a: &mut Assembler,
    kind: ShiftKind,
    r: usize,
    count: u8,
    word: bool,
    live: bool,
) {
    let r = hr(r);
    let fl = offsets::EFLAGS as i32;
    let c = count as i8;
    if !live && !word {
        // Nobody reads the flags: the host shift on the register itself.
        match kind {
            ShiftKind::Shl => dynasm!(a ; .arch x64 ; shl Rd(r), c),
            ShiftKind::Shr => dynasm!(a ; .arch x64 ; shr Rd(r), c),
            ShiftKind::Sar => dynasm!(a ; .arch x64 ; sar Rd(r), c),
        }
        return;
    }
    dynasm!(a ; .arch x64 ; mov eax, Rd(r));
    match (kind, word) {
        (ShiftKind::Shl, false) => dynasm!(a ; .arch x64 ; shl eax, c),
        (ShiftKind::Shr, false) => dynasm!(a ; .arch x64 ; shr eax, c),
        (ShiftKind::Sar, false) => dynasm!(a ; .arch x64 ; sar eax, c),
        (ShiftKind::Shl, true) => dynasm!(a ; .arch x64 ; shl ax, c),
        (ShiftKind::Shr, true) => dynasm!(a ; .arch x64 ; shr ax, c),
        (ShiftKind::Sar, true) => dynasm!(a ; .arch x64 ; sar ax, c),
    }
    if !live {
        dynasm!(a ; .arch x64 ; mov Rd(r), eax);
        return;
    }
    dynasm!(a
        ; .arch x64
        ; pushfq
        ; pop rcx
        ; mov Rd(r), eax
        ; mov r11d, DWORD [rdi + fl]
        ; and r11d, !(ARITH_FLAGS as i32)
        ; mov esi, ecx
        ; and ecx, 0xC5
        ; or r11d, ecx
        ; or r11d, AF as i32
    );
    match (kind, count) {
        (ShiftKind::Shl, _) => dynasm!(a
            ; .arch x64
            ; mov ecx, r11d
            ; shr ecx, 7
            ; xor ecx, r11d
            ; and ecx, 1
            ; shl ecx, 11
            ; or r11d, ecx
        ),
        (ShiftKind::Shr, 1) => dynasm!(a
            ; .arch x64
            ; and esi, 0x800
            ; or r11d, esi
        ),
        _ => {}
    }
    dynasm!(a ; .arch x64 ; mov DWORD [rdi + fl], r11d);
}

/// The segments `op` needs usable ([`BlockInfo::needs`]).
fn needs_of(op: Op) -> u8 {
    let seg = |m: Mem| match m.seg {
        Some(SegReg::Fs) => NEEDS_FS,
        Some(SegReg::Gs) => NEEDS_GS,
        _ => 0,
    };
    let loc = |l: Loc8| match l {
        Loc8::Mem(m) => seg(m),
        Loc8::Reg(..) => 0,
    };
    let src = |s: Src8| match s {
        Src8::Loc(l) => loc(l),
        Src8::Imm(_) => 0,
    };
    match op {
        Op::Load(_, m)
        | Op::Store(m, _)
        | Op::AluRM(_, _, m)
        | Op::AluMR(_, m, _)
        | Op::Lea(_, m) => seg(m),
        Op::Byte(_, d, s) | Op::Word(d, s) | Op::Alu16(_, d, s) => loc(d) | src(s),
        Op::Movx(_, l, _, _) | Op::Setcc(_, l) => loc(l),
        Op::Imul(_, Rm::Mem(m), _)
        | Op::Cmov(_, _, Rm::Mem(m))
        | Op::Unary(_, Rm::Mem(m))
        | Op::Bt(_, Rm::Mem(m), _)
        | Op::JmpInd(Rm::Mem(m))
        | Op::CallInd(Rm::Mem(m))
        | Op::Div(Rm::Mem(m))
        | Op::PushMem(m) => seg(m),
        _ => 0,
    }
}

/// Where a condition's flags are read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FlagSrc {
    /// The guest's EFLAGS in the context.
    Eflags,
    /// The pending slot (see [`merge_flags`]), which holds every flag the
    /// condition reads.
    Pending,
    /// The host's flags, which hold every flag it reads (see `flags.rs`).
    Host,
    /// rax's LAHF/SETO image, which holds every flag it reads.
    Rax,
}

impl FlagSrc {
    /// Whether a condition on it runs as the host's own SETcc, CMOVcc or Jcc.
    fn native(self) -> bool {
        matches!(self, FlagSrc::Host | FlagSrc::Rax)
    }
}

/// The EFLAGS bits condition `cc` reads.
fn cond_bits(cc: Cond) -> u32 {
    use Cond::*;
    match cc {
        O | No => 0x800,
        B | Ae => 0x1,
        E | Ne => 0x40,
        Be | A => 0x41,
        S | Ns => 0x80,
        P | Np => 0x4,
        L | Ge => 0x880,
        Le | G => 0x8C0,
    }
}

/// Tests condition `cc` on the guest's flags (`src`) with plain bit
/// operations, leaving the host's ZF clear when the condition's base form
/// holds (O, B, E, BE, S, P, L, LE); returns true when `cc` is the negated
/// form, which holds when ZF is set. Clobbers eax and ecx; no POPF, which
/// is slow on every host.
fn emit_cond(a: &mut Assembler, cc: Cond, src: FlagSrc) -> bool {
    use Cond::*;
    let fl = offsets::EFLAGS as i32;
    let negated = matches!(cc, No | Ae | Ne | A | Ns | Np | Ge | G);
    let bits = cond_bits(cc);
    let lahf = src == FlagSrc::Pending && host_has_lahf();
    match (cc, src) {
        (L | Ge | Le | G, _) => {
            // SF != OF: OF moved onto SF and compared (EFLAGS: bits 11 and
            // 7; the LAHF slot's word: bits 0 and 15).
            if lahf {
                dynasm!(a
                    ; .arch x64
                    ; movzx eax, WORD [rsp + 8]
                    ; mov ecx, eax
                    ; shl ecx, 15
                    ; xor ecx, eax
                    ; and ecx, 0x8000
                );
            } else {
                match src {
                    FlagSrc::Eflags => dynasm!(a ; .arch x64 ; mov eax, DWORD [rdi + fl]),
                    FlagSrc::Pending => dynasm!(a ; .arch x64 ; mov eax, DWORD [rsp + 8]),
                    FlagSrc::Host | FlagSrc::Rax => {
                        unreachable!("a native condition: see emit_native_cond")
                    }
                }
                dynasm!(a
                    ; .arch x64
                    ; mov ecx, eax
                    ; shr ecx, 4
                    ; xor ecx, eax
                    ; and ecx, 0x80
                );
            }
            if matches!(cc, Le | G) {
                // ZF: EFLAGS bit 6, the slot's bit 14.
                let zf = if lahf { 0x4000 } else { 0x40 };
                dynasm!(a
                    ; .arch x64
                    ; and eax, zf
                    ; or ecx, eax
                );
            }
        }
        (_, FlagSrc::Eflags) => dynasm!(a ; .arch x64 ; test DWORD [rdi + fl], bits as i32),
        (_, FlagSrc::Pending) if lahf => {
            let word = ((bits & 0xFF) << 8 | (bits >> 11) & 1) as i16;
            dynasm!(a ; .arch x64 ; test WORD [rsp + 8], word);
        }
        (_, FlagSrc::Pending) => dynasm!(a ; .arch x64 ; test DWORD [rsp + 8], bits as i32),
        (_, FlagSrc::Host | FlagSrc::Rax) => {
            unreachable!("a native condition: see emit_native_cond")
        }
    }
    negated
}

/// Makes the host's flags the pending ones for a condition on `src` (a
/// native source: the host's flags already, or rax, from which all six
/// come back: a later reader may trust the host's flags).
fn emit_native_cond(a: &mut Assembler, src: FlagSrc) {
    if src == FlagSrc::Rax {
        flags::restore_from_rax(a);
    }
}

/// al := condition `cc` on the guest's flags (0 or 1).
fn emit_setcc(a: &mut Assembler, cc: Cond, src: FlagSrc) {
    if src.native() {
        emit_native_cond(a, src);
        flags::setcc_al(a, cc);
    } else if emit_cond(a, cc, src) {
        dynasm!(a ; .arch x64 ; setz al);
    } else {
        dynasm!(a ; .arch x64 ; setnz al);
    }
}

/// Replaces the guest's six arithmetic flags with those in r11d.
fn set_arith_flags(a: &mut Assembler, live: bool) {
    if !live {
        return;
    }
    let fl = offsets::EFLAGS as i32;
    dynasm!(a
        ; .arch x64
        ; mov ecx, DWORD [rdi + fl]
        ; and ecx, !(ARITH_FLAGS as i32)
        ; or ecx, r11d
        ; mov DWORD [rdi + fl], ecx
    );
}

/// Checks memory operand `m` for an access of `size` bytes (a write when
/// `write`): r10 := its host address, or control goes to `miss`.
fn emit_access(
    a: &mut Assembler,
    m: Mem,
    size: u8,
    write: bool,
    user: bool,
    miss: Option<DynamicLabel>,
) {
    emit_ea(a, m);
    emit_tlb_sized(
        a,
        size,
        write,
        user,
        miss.expect("a memory operand has an exit"),
    );
}

/// Loads a 32-bit operand into esi (memory: through the TLB, checked for a
/// write when `write`, which leaves r10 pointing at it).
fn load_rm_esi(a: &mut Assembler, rm: Rm, write: bool, user: bool, miss: Option<DynamicLabel>) {
    match rm {
        Rm::Reg(r) => dynasm!(a ; .arch x64 ; mov esi, Rd(hr(r))),
        Rm::Mem(m) => {
            emit_access(a, m, 4, write, user, miss);
            dynasm!(a ; .arch x64 ; mov esi, DWORD [r10]);
        }
    }
}

/// Stores esi to a 32-bit operand (memory: at r10, as `load_rm_esi` left).
fn store_rm_esi(a: &mut Assembler, rm: Rm) {
    match rm {
        Rm::Reg(r) => dynasm!(a ; .arch x64 ; mov Rd(hr(r)), esi),
        Rm::Mem(_) => dynasm!(a ; .arch x64 ; mov DWORD [r10], esi),
    }
}

/// Emits the forms added after the first stage: IMUL, SETcc, CMOVcc,
/// NOT/NEG/INC/DEC of any operand, BSWAP, rotates, shifts by CL, 16-bit moves and
/// shifts.
fn emit_more(
    a: &mut Assembler,
    op: Op,
    user: bool,
    miss: Option<DynamicLabel>,
    live: bool,
    flags: FlagSrc,
) {
    let fl = offsets::EFLAGS as i32;
    match op {
        Op::Imul(d, src, imm) => {
            // The interpreter: CF = OF = the product does not fit; SF and
            // PF from the low half; ZF and AF clear (undefined in the SDM).
            load_rm_esi(a, src, false, user, miss);
            let d = hr(d);
            if !live {
                match imm {
                    Some(v) => dynasm!(a ; .arch x64 ; imul Rd(d), esi, v as i32),
                    None => dynasm!(a ; .arch x64 ; imul Rd(d), esi),
                }
                return;
            }
            match imm {
                Some(v) => dynasm!(a ; .arch x64 ; mov eax, v as i32),
                None => dynasm!(a ; .arch x64 ; mov eax, Rd(d)),
            }
            dynasm!(a ; .arch x64 ; imul eax, esi ; mov Rd(d), eax);
            dynasm!(a
                ; .arch x64
                ; seto cl
                ; movzx esi, cl
                ; imul esi, esi, 0x801
                ; test eax, eax
                ; pushfq
                ; pop r11
                ; and r11d, 0x84
                ; or r11d, esi
            );
            set_arith_flags(a, live);
        }
        Op::Setcc(cc, dst) => {
            if let Loc8::Mem(m) = dst {
                emit_access(a, m, 1, true, user, miss);
            }
            emit_setcc(a, cc, flags);
            store8(a, dst);
        }
        Op::Cmov(cc, d, src) => {
            // The source is read (and may fault) whatever the condition.
            load_rm_esi(a, src, false, user, miss);
            // The condition holds with the host's ZF set when it is a
            // negated form, clear otherwise (see `emit_cond`).
            if flags.native() {
                emit_native_cond(a, flags);
                flags::cmov_from_esi(a, cc, hr(d));
            } else if emit_cond(a, cc, flags) {
                dynasm!(a ; .arch x64 ; cmovz Rd(hr(d)), esi);
            } else {
                dynasm!(a ; .arch x64 ; cmovnz Rd(hr(d)), esi);
            }
        }
        Op::Unary(u, rm) => {
            // A register is worked on in place, memory through esi.
            let r = match rm {
                Rm::Reg(r) => hr(r),
                Rm::Mem(_) => {
                    load_rm_esi(a, rm, true, user, miss);
                    6 // esi
                }
            };
            match u {
                Unary::Not => dynasm!(a ; .arch x64 ; not Rd(r)),
                Unary::Neg => dynasm!(a ; .arch x64 ; neg Rd(r)),
                Unary::Inc => dynasm!(a ; .arch x64 ; inc Rd(r)),
                Unary::Dec => dynasm!(a ; .arch x64 ; dec Rd(r)),
                Unary::Bswap => dynasm!(a ; .arch x64 ; bswap Rd(r)),
            }
            // NOT and BSWAP change no flag; NEG defines all six; INC/DEC
            // keep CF.
            match u {
                Unary::Not | Unary::Bswap => {}
                Unary::Neg => merge_flags(a, ARITH_FLAGS, 0, live),
                Unary::Inc | Unary::Dec => merge_flags(a, INC_FLAGS, 0, live),
            }
            if matches!(rm, Rm::Mem(_)) {
                store_rm_esi(a, rm);
            }
        }
        Op::Rotate(left, r, c) => {
            // CF and OF come from the result, as the interpreter's bit-by-bit
            // loop leaves them for any count (ROL: CF = bit 0, OF = bit 31 ^
            // CF; ROR: CF = bit 31, OF = bit 31 ^ bit 30); the other flags
            // stay.
            let r = hr(r);
            let c = c as i8;
            if left {
                dynasm!(a ; .arch x64 ; rol Rd(r), c);
            } else {
                dynasm!(a ; .arch x64 ; ror Rd(r), c);
            }
            if !live {
                return;
            }
            dynasm!(a ; .arch x64 ; mov eax, Rd(r));
            if left {
                dynasm!(a
                    ; .arch x64
                    ; mov r11d, eax
                    ; and r11d, 1
                    ; mov esi, eax
                    ; shr esi, 31
                    ; xor esi, r11d
                );
            } else {
                dynasm!(a
                    ; .arch x64
                    ; mov r11d, eax
                    ; shr r11d, 31
                    ; mov esi, eax
                    ; shr esi, 30
                    ; and esi, 1
                    ; xor esi, r11d
                );
            }
            dynasm!(a
                ; .arch x64
                ; shl esi, 11
                ; or r11d, esi
                ; mov ecx, DWORD [rdi + fl]
                ; and ecx, !0x801
                ; or ecx, r11d
                ; mov DWORD [rdi + fl], ecx
            );
        }
        Op::ShiftCl(kind, r) => emit_shift_cl(a, kind, r, live),
        Op::Shift16(kind, r, count) => emit_shift_sized(a, kind, r, count, true, live),
        Op::Word(dst, src) => {
            match src {
                Src8::Imm(v) => dynasm!(a ; .arch x64 ; mov eax, i32::from(v)),
                Src8::Loc(l) => load8(a, l, 2, false, false, user, miss),
            }
            match dst {
                Loc8::Reg(r, _) => dynasm!(a ; .arch x64 ; mov Rw(hr(r)), ax),
                Loc8::Mem(m) => {
                    emit_access(a, m, 2, true, user, miss);
                    dynasm!(a ; .arch x64 ; mov WORD [r10], ax);
                }
            }
        }
        _ => unreachable!("not one of the later forms"),
    }
}

/// The guest's EDX is the host's (DIV uses both implicitly).
const _: () = assert!(HOST_REG[2] == 2);

/// The inline TLB check finds a slot by a shift: entries are 32 bytes.
const _: () = assert!(entry_offsets::SIZE == 1 << 5);

/// Emits BT*, PUSH m32, LEAVE, DIV and the string instructions.
fn emit_late(a: &mut Assembler, op: Op, user: bool, miss: Option<DynamicLabel>, live: bool) {
    let sp = hr(4);
    match op {
        Op::Bt(kind, Rm::Reg(d), bit) => {
            let d = hr(d);
            match (kind, bit) {
                (BtKind::Bt, Src::Reg(b)) => dynasm!(a ; .arch x64 ; bt Rd(d), Rd(hr(b))),
                (BtKind::Bts, Src::Reg(b)) => dynasm!(a ; .arch x64 ; bts Rd(d), Rd(hr(b))),
                (BtKind::Btr, Src::Reg(b)) => dynasm!(a ; .arch x64 ; btr Rd(d), Rd(hr(b))),
                (BtKind::Btc, Src::Reg(b)) => dynasm!(a ; .arch x64 ; btc Rd(d), Rd(hr(b))),
                (BtKind::Bt, Src::Imm(v)) => dynasm!(a ; .arch x64 ; bt Rd(d), BYTE v as i8),
                (BtKind::Bts, Src::Imm(v)) => dynasm!(a ; .arch x64 ; bts Rd(d), BYTE v as i8),
                (BtKind::Btr, Src::Imm(v)) => dynasm!(a ; .arch x64 ; btr Rd(d), BYTE v as i8),
                (BtKind::Btc, Src::Imm(v)) => dynasm!(a ; .arch x64 ; btc Rd(d), BYTE v as i8),
            }
            merge_flags(a, 0x1, 0, live);
        }
        Op::Bt(kind, Rm::Mem(m), Src::Imm(v)) => {
            emit_access(a, m, 4, kind != BtKind::Bt, user, miss);
            let v = (v & 31) as i8;
            match kind {
                BtKind::Bt => dynasm!(a ; .arch x64 ; bt DWORD [r10], BYTE v),
                BtKind::Bts => dynasm!(a ; .arch x64 ; bts DWORD [r10], BYTE v),
                BtKind::Btr => dynasm!(a ; .arch x64 ; btr DWORD [r10], BYTE v),
                BtKind::Btc => dynasm!(a ; .arch x64 ; btc DWORD [r10], BYTE v),
            }
            merge_flags(a, 0x1, 0, live);
        }
        Op::PushMem(m) => {
            emit_access(a, m, 4, false, user, miss);
            dynasm!(a ; .arch x64 ; mov eax, DWORD [r10]);
            emit_stack_slot(a, user, miss.expect("PUSH m32 has an exit"));
            dynasm!(a
                ; .arch x64
                ; mov DWORD [r10], eax
                ; mov Rd(sp), r8d
            );
        }
        Op::PushImm(v) => {
            emit_stack_slot(a, user, miss.expect("PUSH imm has an exit"));
            dynasm!(a
                ; .arch x64
                ; mov DWORD [r10], v as i32
                ; mov Rd(sp), r8d
            );
        }
        Op::Leave => {
            let bp = hr(5);
            dynasm!(a ; .arch x64 ; mov r8d, Rd(bp));
            emit_tlb(a, false, user, miss.expect("LEAVE has an exit"));
            dynasm!(a
                ; .arch x64
                ; lea Rd(sp), [Rq(bp) + 4]
                ; mov Rd(bp), DWORD [r10]
            );
        }
        Op::Div(rm) => {
            let miss = miss.expect("DIV has an exit");
            load_rm_esi(a, rm, false, user, Some(miss));
            let (ax, dx) = (hr(0), hr(2));
            dynasm!(a
                ; .arch x64
                ; test esi, esi
                ; jz =>miss
                ; cmp Rd(dx), esi
                ; jae =>miss
                ; mov eax, Rd(ax)
                ; div esi
                ; mov Rd(ax), eax
            );
        }
        Op::Str(kind, size) => {
            let miss = miss.expect("a string instruction has an exit");
            let fl = offsets::EFLAGS as i32;
            let (ax, si, di) = (hr(0), hr(6), hr(7));
            dynasm!(a
                ; .arch x64
                ; test DWORD [rdi + fl], 0x400
                ; jnz =>miss
            );
            let step = i32::from(size);
            match kind {
                StrKind::Lods => {
                    dynasm!(a ; .arch x64 ; mov r8d, Rd(si));
                    emit_tlb_sized(a, size, false, user, miss);
                    match size {
                        1 => dynasm!(a ; .arch x64 ; mov Rb(ax), BYTE [r10]),
                        _ => dynasm!(a ; .arch x64 ; mov Rd(ax), DWORD [r10]),
                    }
                    dynasm!(a ; .arch x64 ; lea Rd(si), [Rq(si) + step]);
                }
                StrKind::Stos => {
                    dynasm!(a ; .arch x64 ; mov r8d, Rd(di));
                    emit_tlb_sized(a, size, true, user, miss);
                    match size {
                        1 => dynasm!(a ; .arch x64 ; mov BYTE [r10], Rb(ax)),
                        _ => dynasm!(a ; .arch x64 ; mov DWORD [r10], Rd(ax)),
                    }
                    dynasm!(a ; .arch x64 ; lea Rd(di), [Rq(di) + step]);
                }
                StrKind::Movs => {
                    dynasm!(a ; .arch x64 ; mov r8d, Rd(si));
                    emit_tlb_sized(a, size, false, user, miss);
                    match size {
                        1 => dynasm!(a ; .arch x64 ; movzx eax, BYTE [r10]),
                        2 => dynasm!(a ; .arch x64 ; movzx eax, WORD [r10]),
                        _ => dynasm!(a ; .arch x64 ; mov eax, DWORD [r10]),
                    }
                    dynasm!(a ; .arch x64 ; mov r8d, Rd(di));
                    emit_tlb_sized(a, size, true, user, miss);
                    match size {
                        1 => dynasm!(a ; .arch x64 ; mov BYTE [r10], al),
                        2 => dynasm!(a ; .arch x64 ; mov WORD [r10], ax),
                        _ => dynasm!(a ; .arch x64 ; mov DWORD [r10], eax),
                    }
                    dynasm!(a
                        ; .arch x64
                        ; lea Rd(si), [Rq(si) + step]
                        ; lea Rd(di), [Rq(di) + step]
                    );
                }
                StrKind::Scas => {
                    dynasm!(a ; .arch x64 ; mov r8d, Rd(di));
                    emit_tlb_sized(a, 1, false, user, miss);
                    dynasm!(a ; .arch x64 ; cmp Rb(ax), BYTE [r10]);
                    merge_flags(a, ARITH_FLAGS, 0, live);
                    dynasm!(a ; .arch x64 ; lea Rd(di), [Rq(di) + 1]);
                }
            }
        }
        _ => unreachable!("not one of the late forms"),
    }
}

/// `SHL` / `SHR` / `SAR r32, CL`: a count of 0 (after masking to 5 bits)
/// changes nothing, flags included; otherwise the flags are as for an
/// immediate count (see [`emit_shift`]), OF of SHR depending on whether
/// the count is 1.
fn emit_shift_cl(a: &mut Assembler, kind: ShiftKind, r: usize, live: bool) {
    let r = hr(r);
    let count_reg = hr(1);
    let fl = offsets::EFLAGS as i32;
    dynasm!(a
        ; .arch x64
        ; mov ecx, Rd(count_reg)
        ; and ecx, 31
        ; jz >skip
        ; mov eax, Rd(r)
        ; mov r8d, eax
    );
    match kind {
        ShiftKind::Shl => dynasm!(a ; .arch x64 ; shl eax, cl),
        ShiftKind::Shr => dynasm!(a ; .arch x64 ; shr eax, cl),
        ShiftKind::Sar => dynasm!(a ; .arch x64 ; sar eax, cl),
    }
    if !live {
        dynasm!(a ; .arch x64 ; mov Rd(r), eax ; skip:);
        return;
    }
    dynasm!(a
        ; .arch x64
        ; pushfq
        ; pop rsi
        ; mov Rd(r), eax
        ; and esi, 0xC5
        ; mov r11d, DWORD [rdi + fl]
        ; and r11d, !(ARITH_FLAGS as i32)
        ; or r11d, esi
        ; or r11d, AF as i32
    );
    match kind {
        ShiftKind::Shl => dynasm!(a
            ; .arch x64
            ; mov esi, r11d
            ; shr esi, 7
            ; xor esi, r11d
            ; and esi, 1
            ; shl esi, 11
            ; or r11d, esi
        ),
        ShiftKind::Shr => dynasm!(a
            ; .arch x64
            ; cmp ecx, 1
            ; jne >wide
            ; shr r8d, 31
            ; shl r8d, 11
            ; or r11d, r8d
            ; wide:
        ),
        ShiftKind::Sar => {}
    }
    dynasm!(a
        ; .arch x64
        ; mov DWORD [rdi + fl], r11d
        ; skip:
    );
}

fn emit(a: &mut Assembler, op: Op, live: bool, flags: FlagSrc) {
    match op {
        Op::Nop => {}
        Op::Jcc(..) | Op::Jmp(_) => unreachable!("branches end blocks: see translate"),
        Op::Rdtsc | Op::Helper => unreachable!("a helper call: see translate"),
        Op::X87(_) => unreachable!("x87 runs: see translate"),
        Op::Load(..)
        | Op::Store(..)
        | Op::AluRM(..)
        | Op::AluMR(..)
        | Op::Push(_)
        | Op::Pop(_)
        | Op::Call(_)
        | Op::Ret(_) => unreachable!("memory ops: see emit_mem"),
        Op::Lea(d, m) => {
            emit_ea(a, m);
            dynasm!(a ; .arch x64 ; mov Rd(hr(d)), r8d);
        }
        Op::Shift(kind, r, count) => emit_shift(a, kind, r, count, live),
        Op::Bt(..) => emit_late(a, op, false, None, live),
        Op::PushMem(_)
        | Op::PushImm(_)
        | Op::Leave
        | Op::Div(_)
        | Op::Str(..)
        | Op::JmpInd(_)
        | Op::CallInd(_) => {
            unreachable!("these may leave the block: see emit_mem")
        }
        Op::Byte(..) | Op::Movx(..) | Op::Alu16(..) => emit_byte(a, op, false, None, live),
        Op::Imul(..)
        | Op::Setcc(..)
        | Op::Cmov(..)
        | Op::Unary(..)
        | Op::Rotate(..)
        | Op::ShiftCl(..)
        | Op::Shift16(..)
        | Op::Word(..) => emit_more(a, op, false, None, live, flags),
        Op::Sahf => {
            let fl = offsets::EFLAGS as i32;
            let ax = hr(0);
            dynasm!(a
                ; .arch x64
                ; mov ecx, Rd(ax)
                ; shr ecx, 8
                ; and ecx, 0xD5
                ; mov eax, DWORD [rdi + fl]
                ; and eax, !0xD5
                ; or eax, ecx
                ; mov DWORD [rdi + fl], eax
            );
        }
        Op::Lahf => {
            let fl = offsets::EFLAGS as i32;
            let ax = hr(0);
            dynasm!(a
                ; .arch x64
                ; movzx eax, BYTE [rdi + fl]
                ; shl eax, 8
                ; and Rd(ax), !0xFF00
                ; or Rd(ax), eax
            );
        }
        Op::MovRR(d, s) => dynasm!(a ; .arch x64 ; mov Rd(hr(d)), Rd(hr(s))),
        Op::MovRI(d, v) => dynasm!(a ; .arch x64 ; mov Rd(hr(d)), v as i32),
        Op::IncDec(inc, r) => {
            if inc {
                dynasm!(a ; .arch x64 ; inc Rd(hr(r)));
            } else {
                dynasm!(a ; .arch x64 ; dec Rd(hr(r)));
            }
            merge_flags(a, INC_FLAGS, 0, live);
        }
        Op::Alu(alu, d, src) => emit_alu32(a, alu, (Opnd::Reg(hr(d)), opnd(src)), live, flags),
    }
}

/// The helper behind [`Op::Rdtsc`]: the System V ABI, the context in rdi,
/// the instruction's place in its block in rsi; 1 when done, 0 when it
/// would fault.
extern "sysv64" fn rdtsc_helper(cpu: *mut morph86_cpu::Cpu, ahead: u64) -> u32 {
    // SAFETY: translated code calls this with the context it was itself
    // given, a valid `&mut Cpu` that nothing else borrows while the block
    // runs.
    let cpu = unsafe { &mut *cpu };
    u32::from(cpu.native_rdtsc(ahead))
}

/// Calls [`rdtsc_helper`] for the `k`-th instruction of the block; a fault
/// goes to `miss` (the exit before the instruction).
fn emit_rdtsc(a: &mut Assembler, k: u32, miss: DynamicLabel) {
    let helper = rdtsc_helper as extern "sysv64" fn(*mut morph86_cpu::Cpu, u64) -> u32;
    dynasm!(a
        ; .arch x64
        // Keeps the context and aligns the stack to 16 bytes for the call
        // (a block is entered by a call, or a jump from one, at 8 mod 16).
    );
    spill(a);
    dynasm!(a
        ; .arch x64
        ; push rdi
        ; mov esi, k as i32
        ; mov rax, QWORD helper as usize as i64
        ; call rax
        ; pop rdi
    );
    reload(a);
    dynasm!(a
        ; .arch x64
        ; test eax, eax
        ; jz =>miss
    );
}

/// The engine's helper for [`Op::Helper`]: `extern "sysv64" fn(ctx,
/// frame, k, next_eip, page) -> u32`, where `frame` is what the engine
/// passed the trampoline, `k` the instruction's place in its block (the
/// count the interpreter must see is the context's plus `k`), `next_eip`
/// where the block goes on and `page` the block's physical page number
/// (a store into it retires the block). It returns 1 when the block may go
/// on (the count restored, the TLB caught up), else 0, with EIP, the count
/// and the state as the interpreter left them.
#[derive(Clone, Copy, Debug)]
pub struct HelperCall {
    /// The helper's address.
    pub func: usize,
    /// The block's physical page number.
    pub page: u32,
}

/// Calls the helper for instruction `k` (at `here`; the next at `next`); a
/// 0 from it leaves through `as_is`.
fn emit_helper_call(
    a: &mut Assembler,
    h: HelperCall,
    (here, next): (u32, u32),
    k: u32,
    as_is: DynamicLabel,
) {
    let eip_off = offsets::EIP as i32;
    dynasm!(a ; .arch x64 ; mov DWORD [rdi + eip_off], here as i32);
    spill(a);
    dynasm!(a
        ; .arch x64
        // The frame is 16 bytes above the block's return address, 24 after
        // this push (which aligns the call, as in `emit_rdtsc`).
        ; push rdi
        ; mov rsi, [rsp + 24]
        ; mov edx, k as i32
        ; mov ecx, next as i32
        ; mov r8d, h.page as i32
        ; mov rax, QWORD h.func as i64
        ; call rax
        ; pop rdi
    );
    reload(a);
    dynasm!(a
        ; .arch x64
        ; test eax, eax
        ; jz =>as_is
    );
}

/// Which guest flags `op` sets in every case (so that earlier values die)
/// and which it may set.
fn flags_written(op: Op) -> (u32, u32) {
    let all = ARITH_FLAGS;
    let sure = match op {
        Op::Alu(..)
        | Op::AluRM(..)
        | Op::AluMR(..)
        | Op::Byte(ByteOp::Alu(_), ..)
        | Op::Alu16(..)
        | Op::Shift(..)
        | Op::Shift16(..)
        | Op::Imul(..)
        | Op::Str(StrKind::Scas, _)
        | Op::Unary(Unary::Neg, _) => all,
        Op::Bt(..) => 0x1,
        Op::X87(x) if x.kind == x87::Kind::Fcomi => all,
        Op::Sahf => 0xD5,
        Op::IncDec(..) | Op::Unary(Unary::Inc | Unary::Dec, _) => INC_FLAGS,
        Op::Rotate(..) => 0x801,
        _ => 0,
    };
    // A shift by CL of 0 changes nothing; a helper may change any flag.
    let maybe = if matches!(op, Op::ShiftCl(..) | Op::Helper) {
        all
    } else {
        sure
    };
    (sure, maybe)
}

/// Which guest flags must be right in EFLAGS when `op` starts: those it
/// reads, and all of them before an access that may leave the block.
fn flags_read(op: Op) -> u32 {
    // An x87 op may start a run, which leaves the block when the state
    // must stay with the interpreter.
    if touches_memory(op) || matches!(op, Op::Rdtsc | Op::Helper | Op::X87(_)) {
        return ARITH_FLAGS;
    }
    match op {
        Op::Alu(Alu::Adc | Alu::Sbb, ..)
        | Op::Byte(ByteOp::Alu(Alu::Adc | Alu::Sbb), ..)
        | Op::Alu16(Alu::Adc | Alu::Sbb, ..) => 0x1,
        Op::Jcc(..) | Op::Setcc(..) | Op::Cmov(..) => ARITH_FLAGS,
        Op::Lahf => 0xD5,
        _ => 0,
    }
}

/// Whether `op` leaves its flags in the host's flags only (see `flags.rs`):
/// the 32-bit ALU operations, whose code ends with the host's twin.
fn defers(op: Op) -> bool {
    host_has_lahf()
        && matches!(
            op,
            Op::Alu(..) | Op::AluRM(..) | Op::AluMR(..) | Op::IncDec(..)
        )
}

/// The flags `op` reads that it may take from the pending flags (see
/// `flags.rs`): the condition of a 32-bit form's Jcc, SETcc or CMOVcc, and
/// CF for a 32-bit ADC or SBB.
fn reads_pending(op: Op) -> Option<u32> {
    match op {
        Op::Jcc(cc, _) | Op::Setcc(cc, _) | Op::Cmov(cc, ..) => Some(cond_bits(cc)),
        Op::Alu(Alu::Adc | Alu::Sbb, ..)
        | Op::AluRM(Alu::Adc | Alu::Sbb, ..)
        | Op::AluMR(Alu::Adc | Alu::Sbb, ..) => Some(0x1),
        _ => None,
    }
}

/// Whether `op`'s code leaves the host's flags as they are.
fn keeps_host_flags(op: Op) -> bool {
    matches!(
        op,
        Op::Nop | Op::MovRR(..) | Op::MovRI(..) | Op::Unary(Unary::Not | Unary::Bswap, Rm::Reg(_))
    ) || matches!(op, Op::Lea(_, m) if m.seg.is_none())
}

/// Whether `op`'s code leaves rax as it is (a CMOVcc only when its
/// condition runs natively; see the translator's loop).
fn keeps_rax(op: Op) -> bool {
    matches!(
        op,
        Op::Nop
            | Op::MovRR(..)
            | Op::MovRI(..)
            | Op::Lea(..)
            | Op::Load(..)
            | Op::Store(..)
            | Op::Push(_)
            | Op::Pop(_)
            | Op::Alu(..)
            | Op::AluRM(..)
            | Op::AluMR(..)
            | Op::IncDec(..)
            | Op::Cmov(..)
            | Op::Unary(Unary::Not | Unary::Bswap, _)
            | Op::Movx(_, Loc8::Mem(_), ..)
            | Op::Word(Loc8::Reg(..), Src8::Loc(Loc8::Mem(_)))
    )
}

/// Whether `op` may leave the block before it completes (or ends it).
fn may_exit(op: Op) -> bool {
    touches_memory(op) || ends_block(op) || matches!(op, Op::Rdtsc | Op::Helper | Op::X87(_))
}

/// Whether `op` is a control transfer, which ends its block.
fn ends_block(op: Op) -> bool {
    matches!(
        op,
        Op::Jcc(..) | Op::Jmp(_) | Op::Call(_) | Op::Ret(_) | Op::JmpInd(_) | Op::CallInd(_)
    )
}

/// For each op of a block, whether any flag it writes is still needed
/// (read later in the block, or live at its end, where every flag is): an
/// op whose flags all die before anyone reads them skips computing them.
fn flag_liveness(ops: &[(Op, u8)]) -> Vec<bool> {
    let mut live = ARITH_FLAGS;
    let mut out = vec![true; ops.len()];
    for (k, &(op, _)) in ops.iter().enumerate().rev() {
        let (sure, maybe) = flags_written(op);
        out[k] = maybe & live != 0;
        live = (live & !sure) | flags_read(op);
    }
    out
}

/// Translates the block whose code starts `code` (its bytes to the end of
/// the page, then those of the next linear page an instruction may cross
/// into, if they can be had) at guest EIP `eip`, for code running at user level (`user`:
/// the TLB tags its accesses check), into `a`. A block of 0 instructions
/// emits nothing: its first instruction is not on the allow-list.
///
/// The host function first checks that the whole block fits in the budget
/// (`icount + n <= budget_end`; if not it returns [`EXIT_UNLINKED`] having
/// done nothing). It adds the guest instructions it completes to the
/// context's `icount`: all of them, or fewer when an access left the block
/// early ([`EXIT_EARLY`]; EIP then points at the instruction that did not
/// run). Direct transfers leave through link sites, numbered from
/// `first_id`, which are returned.
pub fn translate(
    a: &mut Assembler,
    code: &[u8],
    eip: u32,
    user: bool,
    first_id: u32,
    ret_cache: Option<*const RetEntry>,
    helper: Option<HelperCall>,
) -> (BlockInfo, Vec<LinkSite>) {
    let (mut ops, mut stop) = scan(code, eip);
    if helper.is_none() {
        // No helper to call: the block ends before the first such op.
        if let Some(k) = ops.iter().position(|&(op, _)| op == Op::Helper) {
            ops.truncate(k);
            stop = decode(
                CpuModel::P6,
                true,
                &code[ops.iter().map(|o| usize::from(o.1)).sum::<usize>()..],
            )
            .ok()
            .map(|d| d.insn.mnemonic());
        }
    }
    let needs = ops.iter().fold(0, |acc, &(op, _)| acc | needs_of(op));
    let ctx = BlockCtx {
        user,
        first_id,
        ret_cache: ret_cache.map(|p| p as usize),
    };
    let entry = a.offset();
    let mut sites = Vec::new();
    if ops.is_empty() {
        let info = BlockInfo {
            insns: 0,
            bytes: 0,
            entry,
            stop,
            needs: 0,
        };
        return (info, sites);
    }
    let mut bytes = 0u32;
    let n = ops.len() as u32;
    // The bytes the last instruction has in the next page, if any.
    let span = ops.iter().map(|o| usize::from(o.1)).sum::<usize>();
    let tail = &code[page_left(eip).min(span)..span];
    let bail = a.new_dynamic_label();
    let icount = context_offsets::ICOUNT as i32;
    let budget_end = context_offsets::BUDGET_END as i32;
    dynasm!(a
        ; .arch x64
        ; mov rax, QWORD [rdi + icount]
        ; add rax, n as i32
        ; cmp rax, QWORD [rdi + budget_end]
        ; ja =>bail
    );
    emit_segment_checks(a, needs, bail);
    let live = flag_liveness(&ops);
    let mut exits = Vec::new();
    let as_is = a.new_dynamic_label();
    let mut ended = false;
    // Flags an earlier op set that EFLAGS has not taken yet, and where
    // they are (see `flags.rs`).
    let mut st = flags::Pending::default();
    // Whether the guest's x87 state is in the host FPU (see `x87.rs`): at
    // the block's entry that depends on where it came from.
    let mut x87_in_host = None;
    let mut x87_pointers = x87::Pointers::default();
    // The operand whose host address r10 holds (see `emit_checked`).
    let mut checked: Option<Checked> = None;
    for (k, &(op, len)) in ops.iter().enumerate() {
        let live = live[k];
        let here = eip.wrapping_add(bytes);
        bytes += u32::from(len);
        let next = eip.wrapping_add(bytes);
        // A reader of flags the pending ones hold takes them from there.
        let reads = reads_pending(op).filter(|&bits| st.holds(bits));
        if needs_eflags(op, live) && reads.is_none() {
            st.merge(a);
        }
        // Unless the op sets them all again before anything can see them,
        // the pending flags move out of the host's flags and rax before it
        // changes those.
        let superseded = st.p.is_some_and(|(mask, clear)| {
            flags_written(op).0 & (mask | clear) == mask | clear && !may_exit(op)
        });
        // A CMOVcc on a register reads the host's flags as they are and
        // leaves them so; a branch takes them where they are.
        let native_cmov = matches!(op, Op::Cmov(_, _, Rm::Reg(_))) && reads.is_some() && st.host;
        if !superseded && !matches!(op, Op::Jcc(..)) {
            if !keeps_host_flags(op) && !native_cmov {
                st.keep_off_host(a);
            }
            if !keeps_rax(op) {
                st.keep_off_rax(a);
            }
        }
        if let Some(lin) = next_page(eip).filter(|_| k + 1 == ops.len() && !tail.is_empty()) {
            st.keep_off_host(a);
            st.host = false;
            let miss = a.new_dynamic_label();
            exits.push((miss, here, k as u32, st));
            emit_code_guard(a, lin, tail, user, miss);
            checked = None;
        }
        let flags = match reads {
            Some(_) => st.source(!touches_memory(op)),
            None => FlagSrc::Eflags,
        };
        // What an early exit at this op finds.
        let before = st;
        if x87::calls_out(op) {
            // The helpers run Rust code: the host FPU must be the host's.
            if x87_in_host != Some(false) {
                x87::emit_leave(a, x87_in_host.is_none());
            }
            x87_in_host = Some(false);
            x87_pointers = x87::Pointers::default();
        }
        match op {
            Op::X87(x) => {
                if x87_in_host != Some(true) {
                    let refused = a.new_dynamic_label();
                    exits.push((refused, here, k as u32, before));
                    x87::emit_enter(a, refused, x87_in_host.is_none());
                    x87_in_host = Some(true);
                }
                let miss = x.touches_memory().then(|| a.new_dynamic_label());
                if let Some(miss) = miss {
                    exits.push((miss, here, k as u32, before));
                }
                x87::emit(a, (x, here), user, miss, live, &mut x87_pointers);
            }
            Op::Jcc(cc, target) => {
                if reads.is_some() {
                    emit_jcc_pending(a, (cc, st), (target, next), n, &mut sites, first_id);
                } else {
                    emit_jcc(a, cc, (target, next), n, &mut sites, first_id);
                }
                st = flags::Pending::default();
                ended = true;
            }
            Op::Jmp(target) => {
                link_exit(a, target, n, &mut sites, first_id);
                ended = true;
            }
            Op::Call(_) | Op::Ret(_) | Op::JmpInd(_) | Op::CallInd(_) => {
                let miss = a.new_dynamic_label();
                exits.push((miss, here, k as u32, before));
                emit_call_ret(a, op, next, user, miss);
                exit_after_ret(a, op, n, &mut sites, &ctx);
                ended = true;
            }
            Op::Helper => {
                let h = helper.expect("helper ops need a helper");
                emit_helper_call(a, h, (here, next), k as u32, as_is);
            }
            Op::Rdtsc => {
                let miss = a.new_dynamic_label();
                exits.push((miss, here, k as u32, before));
                emit_rdtsc(a, k as u32, miss);
            }
            op if touches_memory(op) => {
                let miss = a.new_dynamic_label();
                exits.push((miss, here, k as u32, before));
                let near = checked.and_then(|c| c.near(op));
                emit_mem(a, op, user, miss, live && !defers(op), (near, flags));
            }
            _ => emit(a, op, live && !defers(op), flags),
        }
        checked = Checked::after(checked, op);
        // Where the pending flags are now.
        match saves_flags(op) {
            Some(p) if live && defers(op) => st = flags::Pending::in_host(p),
            Some(p) if live => st = flags::Pending::saved(p),
            Some(_) if superseded => st = flags::Pending::default(),
            _ => {
                // A native CMOVcc leaves the host's flags the pending ones
                // (made again from rax if need be); one through emit_cond
                // changes rax.
                let cmov = matches!(op, Op::Cmov(..));
                st.host &= keeps_host_flags(op) || cmov && flags.native();
                st.rax &= keeps_rax(op) && (!cmov || flags.native());
                if st.p.is_some() && !(st.host || st.rax || st.slot) {
                    // Dead: set again before anything reads them.
                    st = flags::Pending::default();
                }
            }
        }
    }
    if !ended {
        st.merge(a);
        link_exit(a, eip.wrapping_add(bytes), n, &mut sites, first_id);
    }
    // Early exits: EIP on the instruction whose access missed, the count of
    // those before it, and the flags they left. (The trampoline takes the
    // x87 state back.)
    for (label, at, k, mut pending) in exits {
        dynasm!(a ; .arch x64 ; =>label);
        debug_assert!(
            pending.p.is_none() || pending.rax || pending.slot,
            "an exit after an op that changed the host's flags"
        );
        pending.merge(a);
        exit(a, at, k);
    }
    dynasm!(a
        ; .arch x64
        ; =>bail
        ; mov eax, EXIT_UNLINKED as i32
        ; ret
        // A helper left the guest where the interpreter did (EIP and the
        // count are exact).
        ; =>as_is
        ; mov eax, EXIT_EARLY as i32
        ; ret
    );
    let info = BlockInfo {
        insns: n,
        bytes,
        entry,
        stop,
        needs,
    };
    (info, sites)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_nobody_reads_are_not_computed() {
        // add eax,ebx; inc ecx; cmp edx,esi; jne: the ADD's flags die at
        // the CMP (the INC keeps CF, but the CMP sets it); the CMP's are
        // read by the branch, which writes none.
        let m = |ops: &[u8]| flag_liveness(&scan(ops, 0x1000).0);
        assert_eq!(
            m(&[0x01, 0xD8, 0x41, 0x39, 0xF2, 0x75, 0x00]),
            vec![false, false, true, false]
        );
        // adc between them reads CF: the ADD's flags are needed.
        assert_eq!(
            m(&[0x01, 0xD8, 0x11, 0xC8, 0x39, 0xF2]),
            vec![true, false, true]
        );
        // A memory access may leave the block before it runs: everything
        // before it is materialised (the load itself writes no flag).
        assert_eq!(
            m(&[0x01, 0xD8, 0x8B, 0x06, 0x39, 0xF2]),
            vec![true, false, true]
        );
        // A shift by CL may change nothing: the earlier flags survive it.
        assert_eq!(m(&[0x01, 0xD8, 0xD3, 0xE0]), vec![true, true]);
        // The block's last flags are always live.
        assert_eq!(m(&[0x01, 0xD8]), vec![true]);
    }

    #[test]
    fn the_allow_list_stops_at_memory_and_control() {
        // add eax,ebx; inc ecx; mov edx,5; mov cs:[eax],ecx (through the
        // helper: CS is not flat for the translator); mov ds,eax; nop
        let code = [
            0x01, 0xD8, 0x41, 0xBA, 5, 0, 0, 0, 0x2E, 0x89, 0x08, 0x8E, 0xD8, 0x90,
        ];
        let ops = scan(&code, 0x1000).0;
        assert_eq!(
            ops.iter().map(|o| o.0).collect::<Vec<_>>(),
            vec![
                Op::Alu(Alu::Add, 0, Src::Reg(3)),
                Op::IncDec(true, 1),
                Op::MovRI(2, 5),
                Op::Helper
            ]
        );
        // Neither does a load of a segment, control or debug register, or
        // a POP into a segment register.
        for code in [
            &[0x0F, 0x22, 0xD8][..],
            &[0x0F, 0x23, 0xF8],
            &[0x8E, 0x18],
            &[0x1F],
        ] {
            assert!(scan(code, 0x1000).0.is_empty(), "{code:02x?}");
        }
        // FS and GS overrides are, with the segment.
        let ops = scan(&[0x64, 0x89, 0x08, 0x65, 0xFF, 0x00], 0x1000).0;
        let fs = Mem {
            base: Some(0),
            index: None,
            scale: 1,
            disp: 0,
            seg: Some(SegReg::Fs),
        };
        let gs = Mem {
            seg: Some(SegReg::Gs),
            ..fs
        };
        assert_eq!(ops[0].0, Op::Store(fs, Src::Reg(1)));
        assert_eq!(ops[1].0, Op::Unary(Unary::Inc, Rm::Mem(gs)));
        assert_eq!(needs_of(ops[0].0) | needs_of(ops[1].0), NEEDS_FS | NEEDS_GS);
        // imul eax,ebx; imul ecx,edx,7; setb al; cmovae esi,edi; neg ebx;
        // rol eax,3; shl edx,cl; pause; mov [eax],bx; shr cx,4; bswap ebx;
        // bswap bx (undefined: through the helper)
        let code = [
            0x0F, 0xAF, 0xC3, 0x6B, 0xCA, 0x07, 0x0F, 0x92, 0xC0, 0x0F, 0x43, 0xF7, 0xF7, 0xDB,
            0xC1, 0xC0, 0x03, 0xD3, 0xE2, 0xF3, 0x90, 0x66, 0x89, 0x18, 0x66, 0xC1, 0xE9, 0x04,
            0x0F, 0xCB, 0x66, 0x0F, 0xCB,
        ];
        let ops: Vec<Op> = scan(&code, 0x1000).0.iter().map(|o| o.0).collect();
        assert_eq!(
            ops,
            vec![
                Op::Imul(0, Rm::Reg(3), None),
                Op::Imul(1, Rm::Reg(2), Some(7)),
                Op::Setcc(Cond::B, Loc8::Reg(0, false)),
                Op::Cmov(Cond::Ae, 6, Rm::Reg(7)),
                Op::Unary(Unary::Neg, Rm::Reg(3)),
                Op::Rotate(true, 0, 3),
                Op::ShiftCl(ShiftKind::Shl, 2),
                Op::Nop,
                Op::Word(
                    Loc8::Mem(Mem { seg: None, ..fs }),
                    Src8::Loc(Loc8::Reg(3, false))
                ),
                Op::Shift16(ShiftKind::Shr, 1, 4),
                Op::Unary(Unary::Bswap, Rm::Reg(3)),
                Op::Helper,
            ]
        );
        // 16-bit ALU operations are (add ax,bx), LOCK, JECXZ, a far jump
        // are not.
        assert_eq!(
            scan(&[0x66, 0x01, 0xD8], 0x1000).0[0].0,
            Op::Alu16(
                Alu::Add,
                Loc8::Reg(0, false),
                Src8::Loc(Loc8::Reg(3, false))
            )
        );
        for code in [&[0xF0, 0x01, 0xD8][..], &[0xE3, 0x00], &[0xFF, 0x28]] {
            assert!(scan(code, 0x1000).0.is_empty(), "{code:02x?}");
        }
        // A call far back: the target wraps modulo 4 GiB (in the kernel,
        // c58cd1b0: call c50596e0).
        let ops = scan(&[0xE8, 0x2B, 0xC5, 0x78, 0xFF], 0xC58C_D1B0).0;
        assert_eq!(ops[0].0, Op::Call(0xC505_96E0));
        // A branch ends the block, with its target.
        let ops = scan(&[0x40, 0x75, 0xFD, 0x40], 0x1000).0;
        assert_eq!(
            ops.iter().map(|o| o.0).collect::<Vec<_>>(),
            vec![Op::IncDec(true, 0), Op::Jcc(Cond::Ne, 0x1000)]
        );
    }
}
