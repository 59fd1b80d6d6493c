//! The host CPU as a hardware oracle for 32-bit x86 code.
//!
//! # The trick
//!
//! An x86-64 Linux process can run 32-bit code without any 32-bit toolchain or
//! helper process: the kernel's GDT always contains a 32-bit user code segment
//! (`__USER32_CS` = `0x23`) next to the 64-bit one (`__USER_CS` = `0x33`), and a
//! far transfer to a `0x23:offset` pointer switches the CPU into *compatibility
//! mode*, where instructions are decoded and executed exactly as on a 32-bit CPU
//! (with a flat 4 GiB address space, i.e. only the low 4 GiB of our address space
//! is reachable). This is what Wine's WoW64 does.
//!
//! The runner therefore:
//!
//! 1. maps, once per process and at fixed low addresses,
//!    * a `DATA` area ([`DATA_BASE`], [`DATA_SIZE`], read/write) for the case's
//!      memory operands and stack,
//!    * a `CODE` area at [`CODE_BASE`] made of three pages:
//!      - page 0 (RWX): the case's instruction bytes, immediately followed by a
//!        32-bit *epilogue* copied in for every case,
//!      - page 1 (RX): the 32-bit *prologue* and the 64-bit *return trampoline*,
//!        copied once from a blob assembled into this binary with `.code32`,
//!      - page 2 (RW): the control block (input/output registers, the saved
//!        64-bit stack pointer, saved segment state) plus a tiny scratch stack;
//! 2. enters through `morph86_native_enter` (64-bit, [`global_asm!`]): it pushes
//!    the callee-saved registers and a return address, stores RSP, segment
//!    selectors, FS/GS bases, MXCSR and the x87 control word in the control
//!    block, then executes `retfq` to `0x23:prologue`;
//! 3. the prologue (32-bit) loads DS/ES/SS with the flat user data selector
//!    `0x2b` (a 64-bit process normally runs with null DS/ES, which would fault in
//!    compatibility mode), pops EFLAGS from the control block, loads the eight
//!    GPRs with `MOV` (which does not touch flags), ESP last, and jumps
//!    (memory-indirect, so no stack is used) to [`CODE_BASE`];
//! 4. the case runs and falls into the epilogue, which stores the eight GPRs with
//!    `MOV` (flags untouched), switches ESP to the scratch stack, stores EFLAGS
//!    with `PUSHFD`/`POP m32` and `retf`s to `0x33:trampoline`;
//! 5. the trampoline (64-bit, but at a low address because a 32-bit far return
//!    can only reach the low 4 GiB) reloads RSP, restores segment selectors,
//!    FS/GS bases (`WRFSBASE` if available, otherwise `arch_prctl` when the case
//!    changed a selector), resets the x87 unit and MXCSR, sets RFLAGS to `0x202`
//!    (DF, AC, TF, NT clear as the ABI and Rust require) and `ret`s to the
//!    64-bit entry function which pops the callee-saved registers.
//!
//! Faults: handlers for SIGFPE, SIGILL, SIGSEGV, SIGBUS and SIGTRAP are installed
//! once with `SA_SIGINFO | SA_ONSTACK`. The alternate signal stack is essential:
//! without it the kernel would write the signal frame at the case's 32-bit ESP
//! (inside the DATA area, or anywhere). When a signal arrives while a case runs
//! and the interrupted CS is `0x23`, the handler copies the 32-bit registers from
//! the `ucontext`, then redirects the `ucontext` to the trampoline with
//! CS = `0x33` and returns; `rt_sigreturn` then lands in 64-bit mode. (For frames
//! taken in compatibility mode the kernel does not set `UC_STRICT_RESTORE_SS`;
//! SS stays the valid `0x2b` selector, so `force_valid_ss` leaves it alone.)
//! Any other signal is chained to the previously installed handler (Rust's
//! stack-overflow handler) or to the default action, so genuine crashes still
//! crash.
//!
//! # Limitations and pitfalls (the caller must filter)
//!
//! * Code must not make system calls (`INT 0x80`, `SYSENTER`, `SYSCALL`): they
//!   are real 32-bit system calls of this process.
//! * Code must terminate by falling off its end (straight-line code, bounded
//!   loops); there is no timeout. The epilogue directly follows the case's bytes,
//!   so a truncated last instruction swallows epilogue bytes.
//! * Code should stay inside DATA (and its own stack inside DATA): writes to the
//!   CODE area corrupt the runner.
//! * Loading FS/GS: the runner restores selectors and bases afterwards. Without
//!   the FSGSBASE instructions (this is detected) the repair only happens when a
//!   selector *changed*; loading the same null selector again (which on Intel
//!   clears the base) is not detected and will crash the process.
//! * Asynchronous signals (profilers' SIGPROF, ...) whose handlers lack
//!   `SA_ONSTACK` would get their frame written at the case's ESP.
//! * Output EFLAGS are returned raw: bit 1 and IF (0x200) are always set
//!   (a completed `nop` with all input flags gives `0x0ED7`); on a fault the
//!   image comes from the kernel and also has RF (bit 16) set (`#DE` with CF
//!   in gives `0x1_0203`); AC/ID/NT may show whatever the case left there.
//!   Mask with what you compare (e.g. `0x0CD5` for the arithmetic flags + DF).
//! * `INT3` reports `Other { signal: 5 }` with EIP *after* the `INT3`.
//! * Only `data.len()` bytes of DATA are written in and read back; the rest of
//!   DATA keeps whatever previous cases left there (see [`NativeCase::data`]).
//!
//! # x87 state
//!
//! [`NativeRunner::run_x87`] also carries the x87 state: the prologue loads
//! an FXSAVE image with `FXRSTOR` (before `POPFD`, so its flag-setting test of
//! the control block does not matter), and the epilogue stores the state
//! after the case with `FXSAVE` (non-waiting, so a pending unmasked exception
//! does not trap there). When the case faults (#MF arrives as SIGFPE), the
//! signal handler copies the FXSAVE-format state the kernel saved in the
//! signal frame instead. The trampoline's `FNINIT` keeps any of it from
//! leaking into Rust code.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use std::cell::RefCell;
use std::ffi::c_void;
use std::fmt;
use std::marker::PhantomData;
use std::ptr;
use std::sync::atomic::{compiler_fence, AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Start of the read/write DATA area (memory operands, stack).
pub const DATA_BASE: u32 = 0x1000_0000;
/// Size of the DATA area (64 KiB).
pub const DATA_SIZE: u32 = 0x1_0000;
/// Address where the case's first instruction byte is placed.
pub const CODE_BASE: u32 = 0x2000_0000;
/// Maximum length of [`NativeCase::code`].
pub const MAX_CODE_LEN: usize = 64;
/// EFLAGS bits taken from [`NativeCase::state`]: CF PF AF ZF SF DF OF.
/// (TF is never set; IF/IOPL cannot be changed at CPL 3.)
pub const EFLAGS_INPUT_MASK: u32 = 0x0CD5;

/// Linux `__USER32_CS`: flat 32-bit user code segment.
const USER32_CS: u64 = 0x23;
/// Linux `__USER_CS`: 64-bit user code segment.
const USER64_CS: u64 = 0x33;

const PAGE: usize = 0x1000;
/// Total size of the CODE region (case page, blob page, control page).
const CODE_REGION_SIZE: usize = 3 * PAGE;
const BLOB_PAGE: usize = CODE_BASE as usize + PAGE;
/// Control block address. Must stay below 2 GiB: the assembly addresses it
/// with sign-extended 32-bit absolute displacements.
const CTRL: usize = CODE_BASE as usize + 2 * PAGE;

// Control block layout (offsets from CTRL).
const IN_REGS: usize = 0x00; // [u32; 8]
const IN_EFLAGS: usize = 0x20; // u32, popped by POPFD
const CASE_ENTRY: usize = 0x24; // u32, = CODE_BASE
const OUT_REGS: usize = 0x40; // [u32; 8]
const OUT_EFLAGS: usize = 0x60; // u32
const OUT_EIP: usize = 0x64; // u32 (only written on faults)
const FAULT_SIG: usize = 0x68; // i32, 0 = no fault
const ENTRY32: usize = 0x70; // u64, prologue address (far return target)
const TRAMP64: usize = 0x78; // u32, trampoline address (far return target)
const SAVED_RSP: usize = 0x80; // u64
const SAVED_FSBASE: usize = 0x88; // u64
const SAVED_GSBASE: usize = 0x90; // u64
const SAVED_DS: usize = 0x98; // u16
const SAVED_ES: usize = 0x9a; // u16
const SAVED_SS: usize = 0x9c; // u16
const SAVED_FS: usize = 0x9e; // u16
const SAVED_GS: usize = 0xa0; // u16
const SAVED_MXCSR: usize = 0xa4; // u32
const SAVED_FCW: usize = 0xa8; // u16
const HAS_FSGSBASE: usize = 0xac; // u32
const SEG_REPAIRS: usize = 0xb0; // u32, counts arch_prctl repairs
const FX_ENABLE: usize = 0xb4; // u32, nonzero: FXRSTOR FX_IN before the case
const FX_IN: usize = 0x400; // [u8; 512], 16-byte aligned
const FX_OUT: usize = 0x600; // [u8; 512], FXSAVE after the case (or the fault's state)
const SCRATCH_TOP: usize = 0x200; // top of the epilogue's scratch stack

// 64-bit entry: called from Rust as `extern "C" fn()`, returns normally.
std::arch::global_asm!(
    ".pushsection .text.morph86_native_enter,\"ax\",@progbits",
    ".globl morph86_native_enter",
    ".hidden morph86_native_enter",
    ".type morph86_native_enter,@function",
    ".p2align 4",
    "morph86_native_enter:",
    "push rbp",
    "push rbx",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    // Return address used by the trampoline's `ret`.
    "lea rax, [rip + 2f]",
    "push rax",
    "mov qword ptr [{ctrl} + {saved_rsp}], rsp",
    "mov word ptr [{ctrl} + {saved_ds}], ds",
    "mov word ptr [{ctrl} + {saved_es}], es",
    "mov word ptr [{ctrl} + {saved_ss}], ss",
    "mov word ptr [{ctrl} + {saved_fs}], fs",
    "mov word ptr [{ctrl} + {saved_gs}], gs",
    "stmxcsr dword ptr [{ctrl} + {saved_mxcsr}]",
    "fnstcw word ptr [{ctrl} + {saved_fcw}]",
    "cmp dword ptr [{ctrl} + {has_fsgsbase}], 0",
    "je 3f",
    "rdfsbase rax",
    "mov qword ptr [{ctrl} + {saved_fsbase}], rax",
    "rdgsbase rax",
    "mov qword ptr [{ctrl} + {saved_gsbase}], rax",
    "3:",
    // Far return (REX.W RETF) to 0x23:prologue, i.e. into compatibility mode.
    "push {user32_cs}",
    "push qword ptr [{ctrl} + {entry32}]",
    ".byte 0x48, 0xcb",
    "2:",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "pop rbp",
    "ret",
    ".size morph86_native_enter, . - morph86_native_enter",
    ".popsection",
    ctrl = const CTRL,
    saved_rsp = const SAVED_RSP,
    saved_ds = const SAVED_DS,
    saved_es = const SAVED_ES,
    saved_ss = const SAVED_SS,
    saved_fs = const SAVED_FS,
    saved_gs = const SAVED_GS,
    saved_mxcsr = const SAVED_MXCSR,
    saved_fcw = const SAVED_FCW,
    has_fsgsbase = const HAS_FSGSBASE,
    saved_fsbase = const SAVED_FSBASE,
    saved_gsbase = const SAVED_GSBASE,
    entry32 = const ENTRY32,
    user32_cs = const USER32_CS,
);

// Position-independent blob, never executed where it is assembled: it is copied
// to the low CODE area (prologue + trampoline once, epilogue per case). It only
// uses absolute addresses of the control block and relative jumps inside itself.
std::arch::global_asm!(
    ".pushsection .rodata.morph86_native_blob,\"a\",@progbits",
    ".globl morph86_native_blob_start",
    ".hidden morph86_native_blob_start",
    ".globl morph86_native_prologue",
    ".hidden morph86_native_prologue",
    ".globl morph86_native_epilogue",
    ".hidden morph86_native_epilogue",
    ".globl morph86_native_epilogue_end",
    ".hidden morph86_native_epilogue_end",
    ".globl morph86_native_tramp64",
    ".hidden morph86_native_tramp64",
    ".globl morph86_native_blob_end",
    ".hidden morph86_native_blob_end",
    ".p2align 4",
    "morph86_native_blob_start:",
    ".code32",
    // ---- 32-bit prologue ----
    "morph86_native_prologue:",
    "mov eax, {user_ds}",
    "mov ds, ax",
    "mov es, ax",
    "mov ss, ax",
    "cmp dword ptr [{ctrl} + {fx_enable}], 0",
    "je 13f",
    "fxrstor [{ctrl} + {fx_in}]",
    "13:",
    "mov esp, {ctrl} + {in_eflags}",
    "popfd",
    "mov eax, dword ptr [{ctrl} + {in_regs} + 0]",
    "mov ecx, dword ptr [{ctrl} + {in_regs} + 4]",
    "mov edx, dword ptr [{ctrl} + {in_regs} + 8]",
    "mov ebx, dword ptr [{ctrl} + {in_regs} + 12]",
    "mov ebp, dword ptr [{ctrl} + {in_regs} + 20]",
    "mov esi, dword ptr [{ctrl} + {in_regs} + 24]",
    "mov edi, dword ptr [{ctrl} + {in_regs} + 28]",
    "mov esp, dword ptr [{ctrl} + {in_regs} + 16]",
    "jmp dword ptr [{ctrl} + {case_entry}]",
    // ---- 32-bit epilogue (copied after the case's code) ----
    "morph86_native_epilogue:",
    "mov dword ptr ss:[{ctrl} + {out_regs} + 0], eax",
    "mov dword ptr ss:[{ctrl} + {out_regs} + 4], ecx",
    "mov dword ptr ss:[{ctrl} + {out_regs} + 8], edx",
    "mov dword ptr ss:[{ctrl} + {out_regs} + 12], ebx",
    "mov dword ptr ss:[{ctrl} + {out_regs} + 16], esp",
    "mov dword ptr ss:[{ctrl} + {out_regs} + 20], ebp",
    "mov dword ptr ss:[{ctrl} + {out_regs} + 24], esi",
    "mov dword ptr ss:[{ctrl} + {out_regs} + 28], edi",
    "mov esp, {ctrl} + {scratch_top}",
    "pushfd",
    "pop dword ptr ss:[{ctrl} + {out_eflags}]",
    "fxsave ss:[{ctrl} + {fx_out}]",
    "push {user64_cs}",
    "push dword ptr ss:[{ctrl} + {tramp64}]",
    "retf",
    "morph86_native_epilogue_end:",
    ".code64",
    // ---- 64-bit return trampoline (also the signal handler's target) ----
    "morph86_native_tramp64:",
    "mov rsp, qword ptr [{ctrl} + {saved_rsp}]",
    "mov ax, word ptr [{ctrl} + {saved_ds}]",
    "mov ds, ax",
    "mov ax, word ptr [{ctrl} + {saved_es}]",
    "mov es, ax",
    "mov ax, word ptr [{ctrl} + {saved_ss}]",
    "mov ss, ax",
    "cmp dword ptr [{ctrl} + {has_fsgsbase}], 0",
    "je 5f",
    // FSGSBASE: fix selectors if changed, then always restore both bases.
    "mov ax, fs",
    "cmp ax, word ptr [{ctrl} + {saved_fs}]",
    "je 6f",
    "mov ax, word ptr [{ctrl} + {saved_fs}]",
    "mov fs, ax",
    "6:",
    "mov ax, gs",
    "cmp ax, word ptr [{ctrl} + {saved_gs}]",
    "je 7f",
    "mov ax, word ptr [{ctrl} + {saved_gs}]",
    "mov gs, ax",
    "7:",
    "mov rax, qword ptr [{ctrl} + {saved_fsbase}]",
    "wrfsbase rax",
    "mov rax, qword ptr [{ctrl} + {saved_gsbase}]",
    "wrgsbase rax",
    "jmp 8f",
    // No FSGSBASE: repair through arch_prctl only if a selector changed.
    "5:",
    "mov ax, fs",
    "cmp ax, word ptr [{ctrl} + {saved_fs}]",
    "jne 9f",
    "mov ax, gs",
    "cmp ax, word ptr [{ctrl} + {saved_gs}]",
    "je 8f",
    "9:",
    "mov ax, word ptr [{ctrl} + {saved_fs}]",
    "mov fs, ax",
    "mov ax, word ptr [{ctrl} + {saved_gs}]",
    "mov gs, ax",
    "mov eax, {sys_arch_prctl}",
    "mov edi, {arch_set_fs}",
    "mov rsi, qword ptr [{ctrl} + {saved_fsbase}]",
    "syscall",
    "mov eax, {sys_arch_prctl}",
    "mov edi, {arch_set_gs}",
    "mov rsi, qword ptr [{ctrl} + {saved_gsbase}]",
    "syscall",
    "inc dword ptr [{ctrl} + {seg_repairs}]",
    "8:",
    "fninit",
    "fldcw word ptr [{ctrl} + {saved_fcw}]",
    "ldmxcsr dword ptr [{ctrl} + {saved_mxcsr}]",
    "push 0x202",
    "popfq",
    "ret",
    "morph86_native_blob_end:",
    ".popsection",
    ctrl = const CTRL,
    user_ds = const 0x2b,
    in_eflags = const IN_EFLAGS,
    in_regs = const IN_REGS,
    case_entry = const CASE_ENTRY,
    out_regs = const OUT_REGS,
    out_eflags = const OUT_EFLAGS,
    scratch_top = const SCRATCH_TOP,
    user64_cs = const USER64_CS,
    tramp64 = const TRAMP64,
    saved_rsp = const SAVED_RSP,
    saved_ds = const SAVED_DS,
    saved_es = const SAVED_ES,
    saved_ss = const SAVED_SS,
    saved_fs = const SAVED_FS,
    saved_gs = const SAVED_GS,
    has_fsgsbase = const HAS_FSGSBASE,
    saved_fsbase = const SAVED_FSBASE,
    saved_gsbase = const SAVED_GSBASE,
    sys_arch_prctl = const libc::SYS_arch_prctl,
    arch_set_fs = const ARCH_SET_FS,
    arch_set_gs = const ARCH_SET_GS,
    seg_repairs = const SEG_REPAIRS,
    saved_fcw = const SAVED_FCW,
    saved_mxcsr = const SAVED_MXCSR,
    fx_enable = const FX_ENABLE,
    fx_in = const FX_IN,
    fx_out = const FX_OUT,
);

extern "C" {
    fn morph86_native_enter();
    static morph86_native_blob_start: u8;
    static morph86_native_prologue: u8;
    static morph86_native_epilogue: u8;
    static morph86_native_epilogue_end: u8;
    static morph86_native_tramp64: u8;
    static morph86_native_blob_end: u8;
}

const ARCH_SET_GS: i32 = 0x1001;
const ARCH_SET_FS: i32 = 0x1002;
const ARCH_GET_FS: i32 = 0x1003;
const ARCH_GET_GS: i32 = 0x1004;
const MAP_FIXED_NOREPLACE: i32 = 0x10_0000;
const AT_HWCAP2: libc::c_ulong = 26;
const HWCAP2_FSGSBASE: libc::c_ulong = 1 << 1;
const ALT_STACK_SIZE: usize = 64 * 1024;

/// 32-bit register file handed to / returned from the host CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NativeState {
    /// EAX ECX EDX EBX ESP EBP ESI EDI.
    pub regs: [u32; 8],
    /// EFLAGS. On input only [`EFLAGS_INPUT_MASK`] bits are used; on output raw.
    pub eflags: u32,
}

/// One test case.
#[derive(Debug, Clone, Copy)]
pub struct NativeCase<'a> {
    /// One or more complete instructions (at most [`MAX_CODE_LEN`] bytes),
    /// placed at [`CODE_BASE`]; execution ends when it falls off the end.
    pub code: &'a [u8],
    /// Initial registers.
    pub state: NativeState,
    /// Initial contents of the *start* of the DATA area: `data.len()` bytes
    /// (at most [`DATA_SIZE`]) are copied to [`DATA_BASE`] before the run and
    /// the same number of bytes are read back into [`NativeOutcome::data`].
    /// Bytes of DATA beyond `data.len()` are neither initialised nor returned
    /// (they keep whatever earlier cases wrote), so pass a window covering all
    /// memory the case may touch, including its stack. Pass `DATA_SIZE` bytes
    /// for full fidelity (costs ~2 x 64 KiB of copying per case).
    pub data: &'a [u8],
}

/// Why execution stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeFault {
    /// SIGFPE (#DE: divide by zero or quotient overflow).
    DivideError,
    /// SIGILL (#UD).
    InvalidOpcode,
    /// Any other signal: SIGSEGV (11) for #GP/#PF/#SS/#OF/#BR..., SIGBUS (7)
    /// for #AC, SIGTRAP (5) for INT3/TF.
    Other { signal: i32 },
}

/// Result of [`NativeRunner::run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeOutcome {
    /// Registers at the end, or at the faulting instruction.
    pub state: NativeState,
    /// Absolute EIP where execution stopped: `CODE_BASE + code.len()` when the
    /// case completed, the faulting instruction's address on a fault (for
    /// SIGTRAP: the address the kernel reported, i.e. after an INT3).
    pub eip: u32,
    /// `Some` if a signal stopped the case.
    pub fault: Option<NativeFault>,
    /// Final contents of the DATA window (`case.data.len()` bytes).
    pub data: Vec<u8>,
}

/// Error setting up the native runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeError(String);

impl fmt::Display for NativeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "native runner: {}", self.0)
    }
}

impl std::error::Error for NativeError {}

/// Set while a case executes; read by the signal handler.
static RUNNING: AtomicBool = AtomicBool::new(false);
/// Low address of the 64-bit trampoline, for the signal handler.
static TRAMP64_ADDR: AtomicU64 = AtomicU64::new(0);
/// Serialises all runs (the CODE/DATA areas are process-global).
static RUN_LOCK: Mutex<()> = Mutex::new(());
static INIT: OnceLock<Result<Globals, NativeError>> = OnceLock::new();
/// Signals we handle, and the actions that were installed before ours.
const SIGNALS: [libc::c_int; 5] = [
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGTRAP,
];
static PREV_ACTIONS: OnceLock<[libc::sigaction; 5]> = OnceLock::new();

#[derive(Debug, Clone, Copy)]
struct Globals {
    prologue: u64,
    tramp64: u64,
    epilogue_off: usize,
    epilogue_len: usize,
    has_fsgsbase: bool,
}

/// Handle to the process-global native runner.
///
/// Cheap to create; creating one per thread is fine. Runs from all threads are
/// serialised by a global mutex. Not `Send`: creation installs the calling
/// thread's alternate signal stack.
#[derive(Debug)]
pub struct NativeRunner {
    globals: Globals,
    fs_base: u64,
    gs_base: u64,
    _not_send: PhantomData<*const ()>,
}

fn os_err(what: &str) -> NativeError {
    NativeError(format!("{what}: {}", std::io::Error::last_os_error()))
}

/// Maps `len` bytes at exactly `addr`, failing if anything is mapped there.
fn map_fixed(addr: usize, len: usize) -> Result<(), NativeError> {
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; the
    // result is checked against the requested address (older kernels treat
    // the flag as a hint).
    let p = unsafe {
        libc::mmap(
            addr as *mut c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(os_err(&format!("mmap at {addr:#x}")));
    }
    if p as usize != addr {
        // SAFETY: `p` is the mapping we just created, of length `len`.
        unsafe { libc::munmap(p, len) };
        return Err(NativeError(format!("mmap at {addr:#x} landed at {p:p}")));
    }
    Ok(())
}

fn mprotect(addr: usize, len: usize, prot: libc::c_int) -> Result<(), NativeError> {
    // SAFETY: only called on pages of our own fixed mappings.
    if unsafe { libc::mprotect(addr as *mut c_void, len, prot) } != 0 {
        return Err(os_err("mprotect"));
    }
    Ok(())
}

/// Checks with LAR that `0x23` is a present, DPL-3, 32-bit (D=1, L=0) code
/// segment in this kernel's GDT.
fn check_user32_cs() -> Result<(), NativeError> {
    let ar: u64;
    let ok: u8;
    // SAFETY: LAR only reads the descriptor's access rights; it is allowed at
    // CPL 3 and reports failure through ZF instead of faulting.
    unsafe {
        std::arch::asm!(
            "lar {ar}, {sel}",
            "setz {ok}",
            sel = in(reg) USER32_CS,
            ar = out(reg) ar,
            ok = out(reg_byte) ok,
            options(nomem, nostack),
        );
    }
    // P (bit 15), DPL (13-14) = 3, S=1 + code (bits 11,12), L (bit 21) = 0, D (bit 22) = 1.
    let want = (1 << 15) | (3 << 13) | (1 << 12) | (1 << 11) | (1 << 22);
    let mask = want | (1 << 21);
    if ok == 0 || ar & mask != want {
        return Err(NativeError(format!(
            "selector 0x23 is not a 32-bit user code segment (lar ok={ok}, ar={ar:#x}); \
             is IA-32 emulation disabled?"
        )));
    }
    Ok(())
}

fn init_globals() -> Result<Globals, NativeError> {
    check_user32_cs()?;
    // Addresses of symbols defined in the global_asm! blob above; they are
    // never dereferenced as Rust values.
    let (start, prologue, epi, epi_end, tramp, end) = {
        (
            ptr::addr_of!(morph86_native_blob_start) as usize,
            ptr::addr_of!(morph86_native_prologue) as usize,
            ptr::addr_of!(morph86_native_epilogue) as usize,
            ptr::addr_of!(morph86_native_epilogue_end) as usize,
            ptr::addr_of!(morph86_native_tramp64) as usize,
            ptr::addr_of!(morph86_native_blob_end) as usize,
        )
    };
    let blob_len = end - start;
    assert!(blob_len <= PAGE);
    let epilogue_len = epi_end - epi;
    assert!(MAX_CODE_LEN + epilogue_len <= PAGE);

    map_fixed(DATA_BASE as usize, DATA_SIZE as usize)?;
    map_fixed(CODE_BASE as usize, CODE_REGION_SIZE)?;
    // SAFETY: the blob is `blob_len` readable bytes in our .rodata; the
    // destination is the freshly mapped, writable blob page.
    unsafe { ptr::copy_nonoverlapping(start as *const u8, BLOB_PAGE as *mut u8, blob_len) };
    mprotect(BLOB_PAGE, PAGE, libc::PROT_READ | libc::PROT_EXEC)?;
    mprotect(
        CODE_BASE as usize,
        PAGE,
        libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
    )?;

    let tramp64 = (BLOB_PAGE + (tramp - start)) as u64;
    TRAMP64_ADDR.store(tramp64, Ordering::SeqCst);
    install_handlers()?;

    // SAFETY: getauxval has no preconditions.
    let hwcap2 = unsafe { libc::getauxval(AT_HWCAP2) };
    Ok(Globals {
        prologue: (BLOB_PAGE + (prologue - start)) as u64,
        tramp64,
        epilogue_off: epi - start,
        epilogue_len,
        has_fsgsbase: hwcap2 & HWCAP2_FSGSBASE != 0,
    })
}

fn install_handlers() -> Result<(), NativeError> {
    let mut prev: [libc::sigaction; 5] =
        // SAFETY: sigaction is plain old data; all-zero is a valid value.
        unsafe { std::mem::zeroed() };
    for (i, &sig) in SIGNALS.iter().enumerate() {
        // SAFETY: querying the current action into a valid out-pointer.
        if unsafe { libc::sigaction(sig, ptr::null(), &mut prev[i]) } != 0 {
            return Err(os_err("sigaction(query)"));
        }
    }
    // Store the previous actions before ours can run.
    let _ = PREV_ACTIONS.set(prev);
    for &sig in &SIGNALS {
        // SAFETY: zeroed sigaction is valid; we fill handler, flags and mask.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_signal as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: valid pointers; `on_signal` has the SA_SIGINFO signature and
        // is async-signal-safe on the path taken for case faults.
        unsafe {
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, ptr::null_mut()) != 0 {
                return Err(os_err("sigaction(install)"));
            }
        }
    }
    Ok(())
}

/// Signal handler. Runs in 64-bit mode on the alternate stack. On the case
/// path it touches only atomics and the control block (no TLS: the case may
/// have clobbered the FS base).
extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, uctx: *mut c_void) {
    // SAFETY: the kernel passes a valid ucontext_t for SA_SIGINFO handlers.
    let uc = unsafe { &mut *(uctx as *mut libc::ucontext_t) };
    let gregs = &mut uc.uc_mcontext.gregs;
    let csgsfs = gregs[libc::REG_CSGSFS as usize] as u64;
    if RUNNING.load(Ordering::SeqCst) && csgsfs & 0xffff == USER32_CS {
        let r = |i: libc::c_int| gregs[i as usize] as u32;
        let regs = [
            r(libc::REG_RAX),
            r(libc::REG_RCX),
            r(libc::REG_RDX),
            r(libc::REG_RBX),
            r(libc::REG_RSP),
            r(libc::REG_RBP),
            r(libc::REG_RSI),
            r(libc::REG_RDI),
        ];
        let (eflags, eip) = (r(libc::REG_EFL), r(libc::REG_RIP));
        // SAFETY: the control block is mapped for the life of the process
        // (RUNNING implies initialisation finished); plain stores.
        unsafe {
            for (i, v) in regs.iter().enumerate() {
                ctrl_write(OUT_REGS + 4 * i, *v);
            }
            ctrl_write(OUT_EFLAGS, eflags);
            ctrl_write(OUT_EIP, eip);
            ctrl_write(FAULT_SIG, sig as u32);
            // The x87/SSE state at the fault (FXSAVE layout), for x87 cases.
            let fp = uc.uc_mcontext.fpregs;
            if !fp.is_null() {
                ptr::copy_nonoverlapping(fp as *const u8, (CTRL + FX_OUT) as *mut u8, 512);
            }
            let rsp: u64 = ctrl_read(SAVED_RSP);
            gregs[libc::REG_RSP as usize] = rsp as i64;
        }
        // Resume at the 64-bit trampoline: CS = 0x33, SS (bits 48..63) kept
        // (it is the valid flat 0x2b), RFLAGS sane (DF/TF/AC clear).
        gregs[libc::REG_RIP as usize] = TRAMP64_ADDR.load(Ordering::SeqCst) as i64;
        gregs[libc::REG_CSGSFS as usize] = ((csgsfs & !0xffff) | USER64_CS) as i64;
        gregs[libc::REG_EFL as usize] = 0x202;
        return;
    }
    chain(sig, info, uctx);
}

/// Forwards a signal that is not ours to the previously installed action.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, uctx: *mut c_void) {
    let idx = SIGNALS.iter().position(|&s| s == sig);
    let prev = idx.and_then(|i| PREV_ACTIONS.get().map(|p| p[i]));
    match prev {
        Some(p) if p.sa_sigaction != libc::SIG_DFL && p.sa_sigaction != libc::SIG_IGN => {
            if p.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: the previous owner registered this function with
                // SA_SIGINFO, so it has this signature.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void) =
                    unsafe { std::mem::transmute(p.sa_sigaction) };
                f(sig, info, uctx);
            } else {
                // SAFETY: a non-SA_SIGINFO handler takes only the signal number.
                let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(p.sa_sigaction) };
                f(sig);
            }
        }
        _ => {
            // Default action: reinstall SIG_DFL and re-raise. The signal is
            // blocked while we run, so it is delivered (and kills us with the
            // right status/core) as soon as this handler returns; a
            // synchronous fault would also simply recur.
            // SAFETY: sigaction/raise are async-signal-safe.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = libc::SIG_DFL;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, ptr::null_mut());
                libc::raise(sig);
            }
        }
    }
}

/// # Safety
/// The CODE region must be mapped (initialisation succeeded) and `off` must be
/// a field offset inside the control page.
unsafe fn ctrl_write<T: Copy>(off: usize, v: T) {
    ptr::write_volatile((CTRL + off) as *mut T, v);
}

/// # Safety
/// As [`ctrl_write`].
unsafe fn ctrl_read<T: Copy>(off: usize) -> T {
    ptr::read_volatile((CTRL + off) as *const T)
}

/// Per-thread alternate signal stack owned by this module.
struct AltStack {
    base: *mut c_void,
    prev: libc::stack_t,
}

impl Drop for AltStack {
    fn drop(&mut self) {
        // SAFETY: `base` is our mapping of ALT_STACK_SIZE bytes. We only
        // re-install the previous stack if ours is still the active one (if
        // std's thread teardown already disabled it, it may have unmapped its
        // own stack too).
        unsafe {
            let mut cur: libc::stack_t = std::mem::zeroed();
            libc::sigaltstack(ptr::null(), &mut cur);
            if cur.ss_sp == self.base {
                libc::sigaltstack(&self.prev, ptr::null_mut());
            }
            libc::munmap(self.base, ALT_STACK_SIZE);
        }
    }
}

thread_local! {
    static ALT_STACK: RefCell<Option<AltStack>> = const { RefCell::new(None) };
}

/// Installs a 64 KiB alternate signal stack on the calling thread (once).
fn ensure_alt_stack() -> Result<(), NativeError> {
    ALT_STACK.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_some() {
            return Ok(());
        }
        // SAFETY: anonymous private mapping of a fresh stack; sigaltstack gets
        // valid pointers and the mapping outlives its registration (see Drop).
        unsafe {
            let base = libc::mmap(
                ptr::null_mut(),
                ALT_STACK_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if base == libc::MAP_FAILED {
                return Err(os_err("mmap(alt stack)"));
            }
            let mut prev: libc::stack_t = std::mem::zeroed();
            let new = libc::stack_t {
                ss_sp: base,
                ss_flags: 0,
                ss_size: ALT_STACK_SIZE,
            };
            if libc::sigaltstack(&new, &mut prev) != 0 {
                libc::munmap(base, ALT_STACK_SIZE);
                return Err(os_err("sigaltstack"));
            }
            *slot = Some(AltStack { base, prev });
        }
        Ok(())
    })
}

fn arch_prctl_get(code: i32) -> Result<u64, NativeError> {
    let mut v: u64 = 0;
    // SAFETY: ARCH_GET_FS/GS write one u64 through the valid pointer.
    if unsafe { libc::syscall(libc::SYS_arch_prctl, code, &mut v as *mut u64) } != 0 {
        return Err(os_err("arch_prctl"));
    }
    Ok(v)
}

impl NativeRunner {
    /// Maps the CODE/DATA areas and installs the signal handlers (first call in
    /// the process), and the calling thread's alternate signal stack.
    pub fn new() -> Result<Self, NativeError> {
        let globals = INIT.get_or_init(init_globals).clone()?;
        ensure_alt_stack()?;
        // Thread's own FS/GS bases, for the arch_prctl repair path.
        let fs_base = arch_prctl_get(ARCH_GET_FS)?;
        let gs_base = arch_prctl_get(ARCH_GET_GS)?;
        Ok(Self {
            globals,
            fs_base,
            gs_base,
            _not_send: PhantomData,
        })
    }

    /// Whether the host has usable FSGSBASE instructions (cheaper FS/GS repair).
    pub fn has_fsgsbase(&self) -> bool {
        self.globals.has_fsgsbase
    }

    /// Executes one case on the host CPU in 32-bit compatibility mode.
    ///
    /// # Panics
    /// If `case.code` is longer than [`MAX_CODE_LEN`] or `case.data` longer
    /// than [`DATA_SIZE`].
    pub fn run(&mut self, case: &NativeCase) -> NativeOutcome {
        self.run_inner(case, None).0
    }

    /// Runs `case` with the x87 state loaded from the FXSAVE image `fx_in`
    /// (by FXRSTOR in the prologue; its MXCSR field must be valid, e.g.
    /// 0x1F80) and returns the outcome with the FXSAVE image taken after the
    /// case: by FXSAVE in the epilogue, or on a fault from the kernel's
    /// signal frame (the state at the faulting instruction).
    pub fn run_x87(&mut self, case: &NativeCase, fx_in: &[u8; 512]) -> (NativeOutcome, [u8; 512]) {
        let (out, fx) = self.run_inner(case, Some(fx_in));
        (out, fx.unwrap_or([0; 512]))
    }

    fn run_inner(
        &mut self,
        case: &NativeCase,
        fx_in: Option<&[u8; 512]>,
    ) -> (NativeOutcome, Option<[u8; 512]>) {
        assert!(case.code.len() <= MAX_CODE_LEN, "case code too long");
        assert!(case.data.len() <= DATA_SIZE as usize, "case data too long");
        let g = self.globals;
        let _guard = RUN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let (regs, eflags, fault_sig, fault_eip, data);
        let mut fx_out = None;
        // SAFETY: initialisation succeeded (we hold `globals`), so CODE page 0
        // (RWX), the control page and DATA are mapped and writable; we hold
        // RUN_LOCK so no other thread uses them. Sizes were checked above and
        // MAX_CODE_LEN + epilogue fits in page 0 (asserted at init). The
        // calling thread has its alternate signal stack (NativeRunner is !Send
        // and was created on this thread). `morph86_native_enter` behaves like
        // an `extern "C" fn()`: it preserves callee-saved registers, RSP,
        // MXCSR/x87 control word, FS/GS and returns with DF clear; faults in
        // the case are turned into a normal return by `on_signal`.
        unsafe {
            let code_dst = CODE_BASE as usize as *mut u8;
            ptr::copy_nonoverlapping(case.code.as_ptr(), code_dst, case.code.len());
            let blob = ptr::addr_of!(morph86_native_blob_start);
            ptr::copy_nonoverlapping(
                blob.add(g.epilogue_off),
                code_dst.add(case.code.len()),
                g.epilogue_len,
            );
            ptr::copy_nonoverlapping(
                case.data.as_ptr(),
                DATA_BASE as usize as *mut u8,
                case.data.len(),
            );
            for (i, v) in case.state.regs.iter().enumerate() {
                ctrl_write(IN_REGS + 4 * i, *v);
            }
            ctrl_write(IN_EFLAGS, (case.state.eflags & EFLAGS_INPUT_MASK) | 0x2);
            ctrl_write(CASE_ENTRY, CODE_BASE);
            ctrl_write(ENTRY32, g.prologue);
            ctrl_write(TRAMP64, g.tramp64 as u32);
            ctrl_write(FAULT_SIG, 0u32);
            ctrl_write(HAS_FSGSBASE, g.has_fsgsbase as u32);
            ctrl_write(FX_ENABLE, u32::from(fx_in.is_some()));
            if let Some(fx) = fx_in {
                ptr::copy_nonoverlapping(fx.as_ptr(), (CTRL + FX_IN) as *mut u8, 512);
            }
            ctrl_write(SAVED_FSBASE, self.fs_base);
            ctrl_write(SAVED_GSBASE, self.gs_base);

            RUNNING.store(true, Ordering::SeqCst);
            compiler_fence(Ordering::SeqCst);
            morph86_native_enter();
            compiler_fence(Ordering::SeqCst);
            RUNNING.store(false, Ordering::SeqCst);

            let mut r = [0u32; 8];
            for (i, v) in r.iter_mut().enumerate() {
                *v = ctrl_read(OUT_REGS + 4 * i);
            }
            regs = r;
            eflags = ctrl_read::<u32>(OUT_EFLAGS);
            fault_sig = ctrl_read::<u32>(FAULT_SIG) as i32;
            fault_eip = ctrl_read::<u32>(OUT_EIP);
            data = std::slice::from_raw_parts(DATA_BASE as usize as *const u8, case.data.len())
                .to_vec();
            if fx_in.is_some() {
                let mut b = [0u8; 512];
                ptr::copy_nonoverlapping((CTRL + FX_OUT) as *const u8, b.as_mut_ptr(), 512);
                fx_out = Some(b);
            }
        }
        let (fault, eip) = match fault_sig {
            0 => (None, CODE_BASE + case.code.len() as u32),
            libc::SIGFPE => (Some(NativeFault::DivideError), fault_eip),
            libc::SIGILL => (Some(NativeFault::InvalidOpcode), fault_eip),
            s => (Some(NativeFault::Other { signal: s }), fault_eip),
        };
        (
            NativeOutcome {
                state: NativeState { regs, eflags },
                eip,
                fault,
                data,
            },
            fx_out,
        )
    }

    /// How many times FS/GS had to be repaired through `arch_prctl` (only on
    /// hosts without FSGSBASE).
    pub fn segment_repairs(&self) -> u32 {
        let _guard = RUN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: the control page is mapped (we hold `globals`).
        unsafe { ctrl_read(SEG_REPAIRS) }
    }
}

#[cfg(all(test, target_arch = "x86_64", target_os = "linux"))]
mod tests {
    use super::*;

    const EAX: usize = 0;
    const ECX: usize = 1;
    const EDX: usize = 2;
    const EBX: usize = 3;
    const ESP: usize = 4;
    const ESI: usize = 6;
    const EDI: usize = 7;
    const CF: u32 = 1;
    const ZF: u32 = 1 << 6;
    const SF: u32 = 1 << 7;
    const OF: u32 = 1 << 11;
    const DF: u32 = 1 << 10;

    fn state(regs: [u32; 8], eflags: u32) -> NativeState {
        NativeState { regs, eflags }
    }

    fn run(code: &[u8], st: NativeState, data: &[u8]) -> NativeOutcome {
        let mut r = NativeRunner::new().expect("native runner");
        r.run(&NativeCase {
            code,
            state: st,
            data,
        })
    }

    #[test]
    fn add_sets_carry_and_overflow() {
        // add eax, ebx
        let code = [0x01, 0xd8];
        let mut regs = [0u32; 8];
        regs[EAX] = 0x8000_0000;
        regs[EBX] = 0x8000_0000;
        regs[ESI] = 0x1234_5678;
        let out = run(&code, state(regs, 0), &[]);
        assert_eq!(out.fault, None);
        assert_eq!(out.eip, CODE_BASE + 2);
        assert_eq!(out.state.regs[EAX], 0);
        assert_eq!(out.state.regs[ESI], 0x1234_5678);
        assert_eq!(out.state.eflags & (CF | OF | ZF | SF), CF | OF | ZF);

        regs[EAX] = 1;
        regs[EBX] = 2;
        let out = run(&code, state(regs, CF | OF | ZF), &[]);
        assert_eq!(out.state.regs[EAX], 3);
        assert_eq!(out.state.eflags & (CF | OF | ZF | SF), 0);
    }

    #[test]
    fn div_by_zero_is_divide_error() {
        // nop; div ecx
        let code = [0x90, 0xf7, 0xf1];
        let regs = [10, 0, 0, 4, DATA_BASE + 0x100, 5, 6, 7];
        let out = run(&code, state(regs, CF), &[]);
        assert_eq!(out.fault, Some(NativeFault::DivideError));
        assert_eq!(out.eip, CODE_BASE + 1);
        assert_eq!(out.state.regs, regs);
        assert_eq!(out.state.eflags & 0xCD5, CF);
        // The kernel's saved image of a fault has RF set.
        assert_eq!(out.state.eflags & !0xCD5, 0x1_0202);
        let ok = run(&[0x90], state(regs, 0xCD5), &[]);
        assert_eq!(ok.state.eflags, 0xCD5 | 0x202);
    }

    #[test]
    fn ud2_is_invalid_opcode() {
        let out = run(&[0x0f, 0x0b], NativeState::default(), &[]);
        assert_eq!(out.fault, Some(NativeFault::InvalidOpcode));
        assert_eq!(out.eip, CODE_BASE);
    }

    #[test]
    fn memory_write_visible() {
        // mov [DATA_BASE+0x10], eax
        let mut code = vec![0xa3];
        code.extend_from_slice(&(DATA_BASE + 0x10).to_le_bytes());
        let mut regs = [0u32; 8];
        regs[EAX] = 0xdead_beef;
        let data = vec![0x55u8; 0x40];
        let out = run(&code, state(regs, 0), &data);
        assert_eq!(out.fault, None);
        assert_eq!(&out.data[0x10..0x14], &0xdead_beefu32.to_le_bytes());
        assert_eq!(out.data[0x0f], 0x55);
        assert_eq!(out.data[0x14], 0x55);
        assert_eq!(out.data.len(), 0x40);
    }

    #[test]
    fn push_pop_in_data() {
        // push eax; pop ebx; push ecx
        let code = [0x50, 0x5b, 0x51];
        let mut regs = [0u32; 8];
        regs[EAX] = 0x1122_3344;
        regs[ECX] = 0xaabb_ccdd;
        regs[ESP] = DATA_BASE + 0x100;
        let data = vec![0u8; 0x100];
        let out = run(&code, state(regs, 0), &data);
        assert_eq!(out.fault, None);
        assert_eq!(out.state.regs[EBX], 0x1122_3344);
        assert_eq!(out.state.regs[ESP], DATA_BASE + 0xfc);
        assert_eq!(&out.data[0xfc..0x100], &0xaabb_ccddu32.to_le_bytes());
    }

    #[test]
    fn rep_movsb_copies() {
        // rep movsb
        let code = [0xf3, 0xa4];
        let mut regs = [0u32; 8];
        regs[ESI] = DATA_BASE;
        regs[EDI] = DATA_BASE + 0x20;
        regs[ECX] = 8;
        let mut data = vec![0u8; 0x40];
        data[..8].copy_from_slice(b"morph86!");
        let out = run(&code, state(regs, 0), &data);
        assert_eq!(out.fault, None);
        assert_eq!(&out.data[0x20..0x28], b"morph86!");
        assert_eq!(out.state.regs[ECX], 0);
        assert_eq!(out.state.regs[ESI], DATA_BASE + 8);
        assert_eq!(out.state.regs[EDI], DATA_BASE + 0x28);

        // Backwards with DF=1 (std is input-settable); DF must not leak into Rust.
        regs[ESI] = DATA_BASE + 7;
        regs[EDI] = DATA_BASE + 0x37;
        let out = run(&code, state(regs, DF), &data);
        assert_eq!(&out.data[0x30..0x38], b"morph86!");
        assert_eq!(out.state.eflags & DF, DF);
        assert_eq!(out.state.regs[EDI], DATA_BASE + 0x2f);
    }

    #[test]
    fn pushfd_shows_flags() {
        // pushfd; pop eax
        let code = [0x9c, 0x58];
        let mut regs = [0u32; 8];
        regs[ESP] = DATA_BASE + 0x80;
        let data = vec![0u8; 0x80];
        let out = run(&code, state(regs, CF | ZF | OF | 0xffff_0000), &data);
        assert_eq!(out.fault, None);
        let f = out.state.regs[EAX];
        assert_eq!(f & 0xCD5, CF | ZF | OF);
        assert_eq!(f & 0x2, 0x2, "reserved bit 1");
        assert_eq!(f & 0x200, 0x200, "IF");
        assert_eq!(f & 0x100, 0, "TF");
        assert_eq!(out.state.eflags & 0xCD5, CF | ZF | OF);
    }

    #[test]
    fn segfault_is_reported_and_survived() {
        // mov eax, [0]
        let code = [0xa1, 0, 0, 0, 0];
        let mut regs = [0u32; 8];
        regs[EDX] = 42;
        let out = run(&code, state(regs, 0), &[]);
        assert_eq!(out.fault, Some(NativeFault::Other { signal: 11 }));
        assert_eq!(out.eip, CODE_BASE);
        assert_eq!(out.state.regs[EDX], 42);
        // The runner still works afterwards.
        let out = run(&[0x40], state([0; 8], 0), &[]); // inc eax
        assert_eq!(out.fault, None);
        assert_eq!(out.state.regs[EAX], 1);
    }

    #[test]
    fn int3_is_sigtrap() {
        let out = run(&[0x90, 0xcc], NativeState::default(), &[]);
        assert_eq!(out.fault, Some(NativeFault::Other { signal: 5 }));
        assert_eq!(out.eip, CODE_BASE + 2);
    }

    #[test]
    fn fs_load_is_repaired() {
        // mov eax, 0x2b; mov fs, ax; mov gs, ax; xor eax, eax; mov fs, ax
        let code = [
            0xb8, 0x2b, 0, 0, 0, 0x8e, 0xe0, 0x8e, 0xe8, 0x31, 0xc0, 0x8e, 0xe0,
        ];
        let out = run(&code, NativeState::default(), &[]);
        assert_eq!(out.fault, None);
        // TLS still works.
        thread_local!(static X: std::cell::Cell<u32> = const { std::cell::Cell::new(7) });
        assert_eq!(X.with(|x| x.get()), 7);
        // mov eax, 0x2b; mov fs, ax  (selector changes)
        let out = run(&code[..7], NativeState::default(), &[]);
        assert_eq!(out.fault, None);
        assert_eq!(X.with(|x| x.get()), 7);
    }

    #[test]
    fn fs_load_is_repaired_without_fsgsbase() {
        // Force the arch_prctl repair path (selector comparison + syscalls).
        let mut r = NativeRunner::new().unwrap();
        r.globals.has_fsgsbase = false;
        let before = r.segment_repairs();
        // mov eax, 0x2b; mov fs, ax; mov gs, ax
        let code = [0xb8, 0x2b, 0, 0, 0, 0x8e, 0xe0, 0x8e, 0xe8];
        let st = NativeState::default();
        let out = r.run(&NativeCase {
            code: &code,
            state: st,
            data: &[],
        });
        assert_eq!(out.fault, None);
        thread_local!(static Y: std::cell::Cell<u32> = const { std::cell::Cell::new(9) });
        assert_eq!(Y.with(|y| y.get()), 9);
        assert!(r.segment_repairs() > before);
        // Also after a fault: mov fs, ax; ud2
        let code = [0xb8, 0x2b, 0, 0, 0, 0x8e, 0xe0, 0x0f, 0x0b];
        let out = r.run(&NativeCase {
            code: &code,
            state: st,
            data: &[],
        });
        assert_eq!(out.fault, Some(NativeFault::InvalidOpcode));
        assert_eq!(out.eip, CODE_BASE + 7);
        assert_eq!(Y.with(|y| y.get()), 9);
    }

    const CRASH_ENV: &str = "MORPH86_NATIVE_CRASH_CHILD";

    /// Child half of `genuine_crash_is_not_swallowed`; a no-op normally.
    #[test]
    fn crash_child() {
        if std::env::var_os(CRASH_ENV).is_none() {
            return;
        }
        let _r = NativeRunner::new().unwrap();
        let _ = run(&[0x0f, 0x0b], NativeState::default(), &[]);
        // A genuine 64-bit segfault outside any case must still kill us.
        // SAFETY: deliberately invalid; this process is expected to die.
        let v = unsafe { ptr::read_volatile(16 as *const u8) };
        eprintln!("survived a null read: {v}");
    }

    #[test]
    fn genuine_crash_is_not_swallowed() {
        use std::os::unix::process::ExitStatusExt;
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "host::native::tests::crash_child", "--nocapture"])
            .env(CRASH_ENV, "1")
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGSEGV),
            "child status {:?}, stderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn add_case(i: u32) -> (Vec<u8>, NativeState, u32) {
        // add eax, ebx; adc ecx, edx
        let code = vec![0x01, 0xd8, 0x11, 0xd1];
        let a = i.wrapping_mul(0x9e37_79b9);
        let b = i.wrapping_mul(0x85eb_ca6b) ^ 0x8000_0000;
        let regs = [a, i, 3, b, DATA_BASE + 0x100, 0, 0, 0];
        (code, state(regs, 0), a.wrapping_add(b))
    }

    #[test]
    fn ten_thousand_cases() {
        let mut r = NativeRunner::new().unwrap();
        let data = vec![0u8; 256];
        let n = 10_000u32;
        let t = std::time::Instant::now();
        for i in 0..n {
            let (code, st, sum) = add_case(i);
            let out = r.run(&NativeCase {
                code: &code,
                state: st,
                data: &data,
            });
            assert_eq!(out.fault, None);
            assert_eq!(out.state.regs[EAX], sum);
            let carry = (st.regs[EAX] as u64 + st.regs[EBX] as u64 > u32::MAX as u64) as u32;
            assert_eq!(out.state.regs[ECX], i + 3 + carry);
        }
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "native runner: {n} cases in {secs:.3}s = {:.0} cases/s (256-byte data window)",
            n as f64 / secs
        );

        // Full 64 KiB window: dominated by the two copies.
        let data = vec![0u8; DATA_SIZE as usize];
        let m = 2_000u32;
        let t = std::time::Instant::now();
        for i in 0..m {
            let (code, st, sum) = add_case(i);
            let out = r.run(&NativeCase {
                code: &code,
                state: st,
                data: &data,
            });
            assert_eq!(out.state.regs[EAX], sum);
        }
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "native runner: {m} cases in {secs:.3}s = {:.0} cases/s (64 KiB data window)",
            m as f64 / secs
        );
    }

    #[test]
    fn threads_are_serialised() {
        let handles: Vec<_> = (0..4u32)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut r = NativeRunner::new().unwrap();
                    for i in 0..2_000u32 {
                        let k = t * 100_000 + i;
                        if i % 7 == 0 {
                            // Faulting case mixed in: div ecx with ecx = 0.
                            let regs = [k, 0, 0, 0, 0, 0, 0, 0];
                            let out = r.run(&NativeCase {
                                code: &[0xf7, 0xf1],
                                state: state(regs, 0),
                                data: &[],
                            });
                            assert_eq!(out.fault, Some(NativeFault::DivideError));
                            assert_eq!(out.state.regs[EAX], k);
                            continue;
                        }
                        let (code, st, sum) = add_case(k);
                        let data = vec![t as u8; 64];
                        let out = r.run(&NativeCase {
                            code: &code,
                            state: st,
                            data: &data,
                        });
                        assert_eq!(out.fault, None);
                        assert_eq!(out.state.regs[EAX], sum);
                        assert_eq!(out.data, data);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }
}
