//! The translator: a run of allow-listed guest instructions becomes one
//! x86-64 host function.
//!
//! Generated code receives the CPU's context (`morph86_cpu::Cpu`, whose head
//! is `#[repr(C)]`: see `morph86_cpu::interp::context_offsets`) in `rdi` and
//! works on the guest registers and EFLAGS there. Arithmetic runs as the
//! same host instruction on the guest's values, and the host's arithmetic
//! flags become the guest's (`pushfq`), masked to the flags the instruction
//! defines; flags the SDM leaves undefined get the interpreter's values,
//! never the host's, so results cannot depend on the host CPU's model.
//!
//! # The allow-list
//!
//! Only forms that cannot fault, touch memory, ports or system state, and
//! behave identically on the host once their operands are rewritten:
//!
//! | form | covered by |
//! |---|---|
//! | `MOV r32, r32` / `MOV r32, imm32` | `tests::mov_and_alu_agree_with_the_interpreter` |
//! | `ADD SUB ADC SBB CMP r32, r32 / imm` | `tests::mov_and_alu_agree_with_the_interpreter`, `tests::random_blocks_agree_with_the_interpreter` |
//! | `AND OR XOR TEST r32, r32 / imm` (AF := 0, as the interpreter) | the same |
//! | `INC DEC r32` (CF kept) | the same |
//! | `NOP` | `tests::random_blocks_agree_with_the_interpreter` |
//! | `Jcc rel`, `JMP rel` (32-bit operand size; they end the block; the CS limit is 4 GiB) | `tests::loops_agree_with_the_interpreter` |
//!
//! Everything else ends the block and runs in the reference interpreter,
//! which is how the sensitive and privileged instructions, I/O, memory
//! operands, control transfers and the forms without a 64-bit encoding are
//! handled today: none of them ever runs natively.

use dynasmrt::{dynasm, x64::Assembler, AssemblyOffset, DynasmApi, DynasmLabelApi};
use iced_x86::{Mnemonic, OpKind, Register};
use morph86_cpu::decode::{decode, Decoded};
use morph86_cpu::state::offsets;
use morph86_cpu::CpuModel;

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

/// The allow-list: the op for `d` at guest `eip`, if it is a translatable
/// form.
fn classify(d: &Decoded, eip: u32) -> Option<Op> {
    let i = &d.insn;
    if d.invalid || d.too_long || d.rep != 0 || i.has_lock_prefix() {
        return None;
    }
    if d.op32 && i.op_count() == 1 && i.op_kind(0) == OpKind::NearBranch32 {
        // Decoded at IP 0, so the branch target is relative to `eip`.
        let target = eip.wrapping_add(i.near_branch32());
        return match i.mnemonic() {
            Mnemonic::Jmp => Some(Op::Jmp(target)),
            m => Cond::of(m).map(|c| Op::Jcc(c, target)),
        };
    }
    if i.mnemonic() == Mnemonic::Nop && i.op_count() == 0 {
        return Some(Op::Nop);
    }
    if !d.op32 {
        return None;
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
    let alu = |a| Some(Op::Alu(a, reg(0)?, src()?));
    match i.mnemonic() {
        Mnemonic::Mov if i.op_count() == 2 => match src()? {
            Src::Reg(s) => Some(Op::MovRR(reg(0)?, s)),
            Src::Imm(v) => Some(Op::MovRI(reg(0)?, v)),
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
        Mnemonic::Inc if i.op_count() == 1 => Some(Op::IncDec(true, reg(0)?)),
        Mnemonic::Dec if i.op_count() == 1 => Some(Op::IncDec(false, reg(0)?)),
        _ => None,
    }
}

/// Decodes the allow-listed run of instructions at the start of `code`
/// (the bytes from the block's first instruction, at guest `eip`, to the
/// end of its page). A branch ends the run.
fn scan(code: &[u8], eip: u32) -> Vec<(Op, u8)> {
    let mut ops = Vec::new();
    let mut at = 0usize;
    while ops.len() < MAX_BLOCK && at < code.len() {
        let Ok(d) = decode(CpuModel::P6, true, &code[at..]) else {
            break; // runs past the page: the interpreter fetches it
        };
        let here = eip.wrapping_add(at as u32);
        match classify(&d, here) {
            Some(op) => ops.push((op, d.len)),
            None => break,
        }
        at += usize::from(d.len);
        if matches!(ops.last(), Some((Op::Jcc(..) | Op::Jmp(_), _))) {
            break;
        }
    }
    ops
}

/// Register `r`'s byte offset in the context.
fn reg_off(r: usize) -> i32 {
    (offsets::REGS + 4 * r) as i32
}

/// Emits the host code merging the host flags (in `rcx` after `pushfq;
/// pop rcx`) into the guest's EFLAGS under `mask`; `clear` flags are zeroed.
fn merge_flags(a: &mut Assembler, mask: u32, clear: u32) {
    let fl = offsets::EFLAGS as i32;
    let keep = !(mask | clear) as i32;
    let mask = mask as i32;
    dynasm!(a
        ; .arch x64
        ; pushfq
        ; pop rcx
        ; and ecx, mask
        ; mov edx, DWORD [rdi + fl]
        ; and edx, keep
        ; or edx, ecx
        ; mov DWORD [rdi + fl], edx
    );
}

/// Loads the guest's CF into the host's CF (for ADC and SBB).
fn load_carry(a: &mut Assembler) {
    let fl = offsets::EFLAGS as i32;
    dynasm!(a
        ; .arch x64
        ; bt DWORD [rdi + fl], 0
    );
}

/// Ends the block: EIP := `eip`, and returns `n` (instructions run).
fn exit(a: &mut Assembler, eip: u32, n: u32) {
    let eip_off = offsets::EIP as i32;
    dynasm!(a
        ; .arch x64
        ; mov DWORD [rdi + eip_off], eip as i32
        ; mov eax, n as i32
        ; ret
    );
}

/// A conditional branch at the end of a block of `n` instructions: the
/// guest's arithmetic flags go into the host's, and the host's Jcc picks
/// the next EIP.
fn emit_jcc(a: &mut Assembler, cc: Cond, target: u32, fallthrough: u32, n: u32) {
    let fl = offsets::EFLAGS as i32;
    dynasm!(a
        ; .arch x64
        ; mov eax, DWORD [rdi + fl]
        ; and eax, ARITH_FLAGS as i32
        ; push rax
        ; popfq
    );
    macro_rules! jump {
        ($($cc:ident => $j:ident),*) => {
            match cc {
                $(Cond::$cc => dynasm!(a ; .arch x64 ; $j >taken),)*
            }
        };
    }
    jump!(O => jo, No => jno, B => jb, Ae => jae, E => je, Ne => jne, Be => jbe, A => ja,
          S => js, Ns => jns, P => jp, Np => jnp, L => jl, Ge => jge, Le => jle, G => jg);
    exit(a, fallthrough, n);
    dynasm!(a ; .arch x64 ; taken:);
    exit(a, target, n);
}

fn emit(a: &mut Assembler, op: Op) {
    match op {
        Op::Nop => {}
        Op::Jcc(..) | Op::Jmp(_) => unreachable!("branches end blocks: see translate"),
        Op::MovRR(d, s) => {
            let (d, s) = (reg_off(d), reg_off(s));
            dynasm!(a
                ; .arch x64
                ; mov eax, DWORD [rdi + s]
                ; mov DWORD [rdi + d], eax
            );
        }
        Op::MovRI(d, v) => {
            let d = reg_off(d);
            dynasm!(a
                ; .arch x64
                ; mov DWORD [rdi + d], v as i32
            );
        }
        Op::IncDec(inc, r) => {
            let r = reg_off(r);
            if inc {
                dynasm!(a ; .arch x64 ; inc DWORD [rdi + r]);
            } else {
                dynasm!(a ; .arch x64 ; dec DWORD [rdi + r]);
            }
            merge_flags(a, INC_FLAGS, 0);
        }
        Op::Alu(alu, d, src) => {
            let d_off = reg_off(d);
            dynasm!(a ; .arch x64 ; mov eax, DWORD [rdi + d_off]);
            match src {
                Src::Reg(s) => {
                    let s = reg_off(s);
                    dynasm!(a ; .arch x64 ; mov esi, DWORD [rdi + s]);
                }
                Src::Imm(v) => {
                    dynasm!(a ; .arch x64 ; mov esi, v as i32);
                }
            }
            if matches!(alu, Alu::Adc | Alu::Sbb) {
                load_carry(a);
            }
            match alu {
                Alu::Add => dynasm!(a ; .arch x64 ; add eax, esi),
                Alu::Adc => dynasm!(a ; .arch x64 ; adc eax, esi),
                Alu::Sub | Alu::Cmp => dynasm!(a ; .arch x64 ; sub eax, esi),
                Alu::Sbb => dynasm!(a ; .arch x64 ; sbb eax, esi),
                Alu::And | Alu::Test => dynasm!(a ; .arch x64 ; and eax, esi),
                Alu::Or => dynasm!(a ; .arch x64 ; or eax, esi),
                Alu::Xor => dynasm!(a ; .arch x64 ; xor eax, esi),
            }
            let logic = matches!(alu, Alu::And | Alu::Or | Alu::Xor | Alu::Test);
            if logic {
                merge_flags(a, LOGIC_FLAGS, AF);
            } else {
                merge_flags(a, ARITH_FLAGS, 0);
            }
            if !matches!(alu, Alu::Cmp | Alu::Test) {
                dynasm!(a ; .arch x64 ; mov DWORD [rdi + d_off], eax);
            }
        }
    }
}

/// Translates the block whose code starts `code` (its bytes to the end of
/// the page) at guest EIP `eip` into `a`. A block of 0 instructions emits
/// nothing: its first instruction is not on the allow-list.
pub fn translate(a: &mut Assembler, code: &[u8], eip: u32) -> BlockInfo {
    let ops = scan(code, eip);
    let entry = a.offset();
    if ops.is_empty() {
        return BlockInfo {
            insns: 0,
            bytes: 0,
            entry,
        };
    }
    let mut bytes = 0u32;
    let n = ops.len() as u32;
    for &(op, len) in &ops {
        bytes += u32::from(len);
        let next = eip.wrapping_add(bytes);
        match op {
            Op::Jcc(cc, target) => {
                return done(a, entry, n, bytes, |a| emit_jcc(a, cc, target, next, n))
            }
            Op::Jmp(target) => return done(a, entry, n, bytes, |a| exit(a, target, n)),
            _ => emit(a, op),
        }
    }
    exit(a, eip.wrapping_add(bytes), n);
    BlockInfo {
        insns: n,
        bytes,
        entry,
    }
}

/// Emits a block's final branch and describes the block.
fn done(
    a: &mut Assembler,
    entry: AssemblyOffset,
    insns: u32,
    bytes: u32,
    last: impl FnOnce(&mut Assembler),
) -> BlockInfo {
    last(a);
    BlockInfo {
        insns,
        bytes,
        entry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allow_list_stops_at_memory_and_control() {
        // add eax,ebx; inc ecx; mov edx,5; mov [eax],ecx; ...
        let code = [0x01, 0xD8, 0x41, 0xBA, 5, 0, 0, 0, 0x89, 0x08, 0x90];
        let ops = scan(&code, 0x1000);
        assert_eq!(
            ops.iter().map(|o| o.0).collect::<Vec<_>>(),
            vec![
                Op::Alu(Alu::Add, 0, Src::Reg(3)),
                Op::IncDec(true, 1),
                Op::MovRI(2, 5)
            ]
        );
        // 16-bit operand size, LOCK, JECXZ, a far jump: none are taken.
        for code in [
            &[0x66, 0x01, 0xD8][..],
            &[0xF0, 0x01, 0xD8],
            &[0xE3, 0x00],
            &[0xFF, 0x28],
        ] {
            assert!(scan(code, 0x1000).is_empty(), "{code:02x?}");
        }
        // A branch ends the block, with its target.
        let ops = scan(&[0x40, 0x75, 0xFD, 0x40], 0x1000);
        assert_eq!(
            ops.iter().map(|o| o.0).collect::<Vec<_>>(),
            vec![Op::IncDec(true, 0), Op::Jcc(Cond::Ne, 0x1000)]
        );
    }
}
