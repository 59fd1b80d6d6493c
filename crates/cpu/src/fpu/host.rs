//! The arithmetic backend: the host's own x87 unit.
//!
//! [`exec`] loads a complete x87 state image (FSAVE format) into the host
//! FPU with `FRSTOR`, executes *one real x87 instruction* chosen from a table
//! of pre-assembled encodings (every `D8`-`DF` ModRM byte with a register
//! operand, and every ModRM.reg with the memory operand `[rdi]`), and takes
//! the resulting state back with `FNSAVE`. The host therefore computes
//! results, condition codes, exception flags, masked *and* unmasked
//! responses, stack faults and tag changes exactly as an Intel x87 does; the
//! caller only maps the guest's state in and out (see `interp/x87.rs`).
//!
//! Why this cannot trap: the image handed in never has a pending unmasked
//! exception (the caller clears the sticky flags and ES before the call and
//! merges them back afterwards), so the table instruction does not trap on
//! entry; whatever it leaves pending is taken by `FNSAVE`, which does not
//! wait and re-initialises the host FPU. The host control word is saved
//! before and restored after, so Rust code around us sees the FPU exactly as
//! it left it (empty stack, its own control word).
//!
//! Non-x86-64 hosts get `None` from [`exec`] (the caller raises #UD); a
//! soft-float backend can be slotted in behind the same function.

/// Size of the FSAVE image in 32-bit protected-mode format.
pub const IMAGE_LEN: usize = 108;

/// Bytes of the memory operand buffer (`m80`/BCD need 10).
pub const MEM_LEN: usize = 16;

/// Table slots per escape opcode: 8 memory forms and 64 register forms.
const SLOTS_PER_OP: usize = 72;

/// The table slot for escape `op` (D8-DF) with `modrm`; for memory forms
/// only ModRM.reg matters (the host operand is always `[rdi]`).
pub fn slot(op: u8, modrm: u8) -> usize {
    let base = usize::from(op - 0xD8) * SLOTS_PER_OP;
    if modrm >= 0xC0 {
        base + 8 + usize::from(modrm & 0x3F)
    } else {
        base + usize::from((modrm >> 3) & 7)
    }
}

/// How [`exec`] runs an x87 encoding's operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostForm {
    /// A register form: the operands are on the register stack.
    Stack,
    /// A memory form that reads `n` bytes.
    Read(u32),
    /// A memory form that writes `n` bytes (when it does store).
    Write(u32),
}

/// Which x87 encodings compute, and so run on the backend: escape `op`
/// (D8-DF) with `modrm`. `None` for the control instructions (FLDCW,
/// FNSTCW, FNSTSW, FLDENV, FNSTENV, FRSTOR, FNSAVE, FNCLEX, FNINIT and the
/// 8087/287 no-ops) and the invalid encodings (FISTTP is SSE3: not on the
/// P6). The interpreter dispatches by this table, and the JIT runs the
/// same encodings natively.
pub fn host_form(op: u8, modrm: u8) -> Option<HostForm> {
    use HostForm::*;
    let reg = (modrm >> 3) & 7;
    let rm = modrm & 7;
    if modrm >= 0xC0 {
        return match (op, reg) {
            (0xD9, 2) => (rm == 0).then_some(Stack), // FNOP
            (0xD9, 4) => matches!(rm, 0 | 1 | 4 | 5).then_some(Stack),
            (0xD9, 5) => (rm != 7).then_some(Stack),
            (0xDA, 5) => (rm == 1).then_some(Stack), // FUCOMPP
            (0xDE, 3) => (rm == 1).then_some(Stack), // FCOMPP
            (0xDA, 4..=7) | (0xDB, 4 | 7) | (0xDD, 6 | 7) | (0xDF, 4 | 7) => None,
            (0xD8..=0xDF, _) => Some(Stack),
            _ => None,
        };
    }
    Some(match (op, reg) {
        (0xD8, _) | (0xDA, _) => Read(4),
        (0xDC, _) => Read(8),
        (0xDE, _) => Read(2),
        (0xD9, 0) | (0xDB, 0) => Read(4),
        (0xD9, 2 | 3) | (0xDB, 2 | 3) => Write(4),
        (0xDB, 5) => Read(10),
        (0xDB, 7) => Write(10),
        (0xDD, 0) => Read(8),
        (0xDD, 2 | 3) => Write(8),
        (0xDF, 0) => Read(2),
        (0xDF, 2 | 3) => Write(2),
        (0xDF, 4) => Read(10),
        (0xDF, 5) => Read(8),
        (0xDF, 6) => Write(10),
        (0xDF, 7) => Write(8),
        _ => return None,
    })
}

/// Runs table slot `slot` on the host FPU.
///
/// `image` is an FSAVE image (32-bit protected-mode layout) that is replaced
/// by the state after the instruction; `mem` is the memory operand; `flags`
/// supplies CF/PF/AF/ZF/SF/OF for FCMOVcc and receives them back (FCOMI).
/// Returns `None` when this host has no x87 backend.
#[cfg(target_arch = "x86_64")]
pub fn exec(
    image: &mut [u8; IMAGE_LEN],
    mem: &mut [u8; MEM_LEN],
    slot: usize,
    flags: u32,
) -> Option<u32> {
    assert!(slot < 8 * SLOTS_PER_OP);
    // Image plus two bytes to save the host control word.
    let mut buf = [0u8; IMAGE_LEN + 4];
    buf[..IMAGE_LEN].copy_from_slice(image);
    let mut rflags: u64 = 0x202 | u64::from(flags & 0x8D5);
    // SAFETY: `buf` is IMAGE_LEN + 4 writable bytes: FRSTOR/FNSAVE use the
    // first 108 (32-bit format in 64-bit mode without REX.W), the control word
    // is saved at offset 108. `mem` is MEM_LEN writable bytes and every table
    // instruction addresses at most 10 bytes at [rdi]. `slot` is in range
    // (asserted), so the computed jump lands on a table entry, each of which
    // is aligned to 8 bytes, at most 7 bytes long and jumps back to label 2.
    // RFLAGS loaded by POPFQ has DF, TF and AC clear and IF set (ring 3 keeps
    // IF anyway). The callers never pass table entries of instructions that
    // are invalid on the host or that touch other state (FNSTSW AX, FLDENV,
    // FRSTOR...). No waiting x87 instruction runs while an unmasked
    // exception is pending (see the module doc); FNSAVE leaves the host FPU
    // initialised (empty stack) and FLDCW restores its control word, so the
    // x87 state is as the compiler expects when the block ends. Stack usage:
    // one PUSH/POP pair each (no `nostack`).
    unsafe {
        core::arch::asm!(
            "fnstcw word ptr [{img} + 108]",
            "push {fl}",
            "popfq",
            "frstor [{img}]",
            "lea {t}, [rip + 3f]",
            "lea {t}, [{t} + {off}]",
            "jmp {t}",
            "2:",
            "pushfq",
            "pop {fl}",
            "fnsave [{img}]",
            "fldcw word ptr [{img} + 108]",
            "jmp 4f",
            ".p2align 3",
            "3:",
            ".irp op, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf",
            ".set morph86_x87_m, 0x07",
            ".rept 8",
            ".p2align 3",
            ".byte \\op, morph86_x87_m",
            "jmp 2b",
            ".set morph86_x87_m, morph86_x87_m + 8",
            ".endr",
            ".set morph86_x87_m, 0xc0",
            ".rept 64",
            ".p2align 3",
            ".byte \\op, morph86_x87_m",
            "jmp 2b",
            ".set morph86_x87_m, morph86_x87_m + 1",
            ".endr",
            ".endr",
            "4:",
            img = in(reg) buf.as_mut_ptr(),
            off = in(reg) slot * 8,
            fl = inout(reg) rflags,
            t = out(reg) _,
            in("rdi") mem.as_mut_ptr(),
        );
    }
    image.copy_from_slice(&buf[..IMAGE_LEN]);
    Some(rflags as u32 & 0x8D5)
}

/// Runs table slot `slot` on the host FPU: no backend on this host.
#[cfg(not(target_arch = "x86_64"))]
pub fn exec(
    _image: &mut [u8; IMAGE_LEN],
    _mem: &mut [u8; MEM_LEN],
    _slot: usize,
    _flags: u32,
) -> Option<u32> {
    None
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    fn image_with(cw: u16, top: u16, st: &[[u8; 10]]) -> [u8; IMAGE_LEN] {
        let mut img = [0u8; IMAGE_LEN];
        img[0..2].copy_from_slice(&cw.to_le_bytes());
        img[4..6].copy_from_slice(&(top << 11).to_le_bytes());
        let mut tw: u16 = 0xFFFF;
        for (k, v) in st.iter().enumerate() {
            let phys = (usize::from(top) + k) & 7;
            tw &= !(3 << (2 * phys));
            img[28 + 10 * k..38 + 10 * k].copy_from_slice(v);
        }
        img[8..10].copy_from_slice(&tw.to_le_bytes());
        img
    }

    fn f80(v: f64) -> [u8; 10] {
        // Exact for the normal values used here.
        let b = v.to_bits();
        let sign = (b >> 63) as u16;
        let exp = ((b >> 52) & 0x7FF) as u16;
        let man = (b & ((1 << 52) - 1)) << 11 | 1 << 63;
        let se = (sign << 15) | (exp - 1023 + 16383);
        let mut r = [0u8; 10];
        r[..8].copy_from_slice(&man.to_le_bytes());
        r[8..].copy_from_slice(&se.to_le_bytes());
        r
    }

    #[test]
    fn fadd_register_and_memory() {
        // ST0 = 1.5, ST1 = 2.25; D8 C1 = fadd st0, st1.
        let mut img = image_with(0x37F, 6, &[f80(1.5), f80(2.25)]);
        let mut mem = [0u8; MEM_LEN];
        exec(&mut img, &mut mem, slot(0xD8, 0xC1), 0).unwrap();
        assert_eq!(&img[28..38], &f80(3.75));
        // fadd dword ptr [mem] with 0.25f32.
        mem[..4].copy_from_slice(&0.25f32.to_bits().to_le_bytes());
        exec(&mut img, &mut mem, slot(0xD8, 0x00), 0).unwrap();
        assert_eq!(&img[28..38], &f80(4.0));
        // fstp qword ptr [mem]
        exec(&mut img, &mut mem, slot(0xDD, 0x18), 0).unwrap();
        assert_eq!(f64::from_le_bytes(mem[..8].try_into().unwrap()), 4.0);
        let sw = u16::from_le_bytes([img[4], img[5]]);
        assert_eq!((sw >> 11) & 7, 7);
    }

    #[test]
    fn unmasked_divide_by_zero_does_not_trap() {
        // CW with ZE unmasked: fdiv st0, st1 with st1 = 0.
        let mut img = image_with(0x37B, 6, &[f80(1.0), [0; 10]]);
        let mut mem = [0u8; MEM_LEN];
        exec(&mut img, &mut mem, slot(0xD8, 0xF1), 0).unwrap();
        let sw = u16::from_le_bytes([img[4], img[5]]);
        assert_eq!(sw & 0x8084, 0x8084, "ZE, ES and B set: {sw:#x}");
        assert_eq!(&img[28..38], &f80(1.0), "destination unchanged");
        // The host FPU is usable afterwards.
        let x = std::hint::black_box(3.0f64);
        assert_eq!(x * 2.0, 6.0);
    }

    #[test]
    fn fcomi_returns_flags() {
        let mut img = image_with(0x37F, 6, &[f80(1.0), f80(2.0)]);
        let mut mem = [0u8; MEM_LEN];
        // DB F1 = fcomi st0, st1: 1 < 2 -> CF.
        let f = exec(&mut img, &mut mem, slot(0xDB, 0xF1), 0x8D5).unwrap();
        assert_eq!(f, 0x1);
    }
}
