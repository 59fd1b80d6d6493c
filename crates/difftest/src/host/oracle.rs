//! Runs cases on the host CPU and on the interpreter and compares them.

use super::cases::{self, Case, Class, ALL_CLASSES, COMPARED_FLAGS, WINDOW};
use super::native::{NativeCase, NativeFault, NativeRunner, NativeState, CODE_BASE, DATA_BASE};
use super::rng::Rng;
use super::x87cases::{self, X87Case, X87Class, ALL_X87_CLASSES};
use morph86_cpu::{Bus, Cpu, CpuModel, Fault};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The interpreter's view of a case: the DATA window and the code, nothing else.
struct CaseBus<'a> {
    data: Vec<u8>,
    code: &'a [u8],
    stray: Option<u32>,
    /// Distinct per case, so decoded instructions of earlier cases are stale.
    epoch: u64,
}

impl CaseBus<'_> {
    fn slot(&mut self, addr: u32) -> Option<&mut u8> {
        let d = addr.wrapping_sub(DATA_BASE) as usize;
        if d < WINDOW {
            return self.data.get_mut(d);
        }
        None
    }
}

impl Bus for CaseBus<'_> {
    fn read_u8(&mut self, addr: u32) -> u8 {
        let c = addr.wrapping_sub(CODE_BASE) as usize;
        if c < 64 {
            // Past the case's bytes the fetcher sees NOPs (never executed).
            return self.code.get(c).copied().unwrap_or(0x90);
        }
        match self.slot(addr) {
            Some(b) => *b,
            None => {
                self.stray.get_or_insert(addr);
                0
            }
        }
    }
    fn write_u8(&mut self, addr: u32, value: u8) {
        match self.slot(addr) {
            Some(b) => *b = value,
            None => {
                self.stray.get_or_insert(addr);
            }
        }
    }
    fn mark_code_page(&mut self, _page: u32) {}
    fn code_generation(&self, _page: u32) -> u32 {
        // Each case brings new code at the same address.
        self.epoch as u32
    }
}

/// What one engine did with a case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Final EAX..EDI.
    pub regs: [u32; 8],
    /// Final EFLAGS (raw).
    pub eflags: u32,
    /// Final EIP (the faulting instruction on a fault).
    pub eip: u32,
    /// Exception vector, if the case faulted.
    pub fault: Option<u8>,
    /// Final DATA window.
    pub data: Vec<u8>,
}

/// The interpreter side of the oracle, reused across cases.
pub struct Emulator {
    cpu: Cpu,
    cases: u64,
}

impl Default for Emulator {
    fn default() -> Self {
        Emulator {
            cpu: Cpu::new(CpuModel::P6),
            cases: 0,
        }
    }
}

/// Runs a case on the interpreter in flat 32-bit protected mode, ring 3.
pub fn run_emulated(emu: &mut Emulator, case: &Case) -> Result<Outcome, String> {
    emu.cases += 1;
    let cpu = &mut emu.cpu;
    cpu.state = morph86_cpu::CpuState::reset();
    cpu.state.set_flat32(false);
    cpu.state.regs = case.regs;
    cpu.state.eflags = case.eflags | 0x202;
    cpu.state.eip = CODE_BASE;
    emulate(cpu, &case.code, &case.data, emu.cases, 10_000)
}

/// Runs prepared `cpu` over `code` until it falls off the end or faults,
/// with the DATA window `data`; `epoch` makes earlier decodings stale.
fn emulate(
    cpu: &mut Cpu,
    code: &[u8],
    data: &[u8],
    epoch: u64,
    max_steps: u32,
) -> Result<Outcome, String> {
    let mut bus = CaseBus {
        data: data.to_vec(),
        code,
        stray: None,
        epoch,
    };
    let end = CODE_BASE + code.len() as u32;
    let mut fault = None;
    let mut steps = 0;
    while cpu.state.eip != end {
        steps += 1;
        if steps > max_steps {
            return Err("interpreter did not reach the end of the code".into());
        }
        if let Err(f) = cpu.execute_one(&mut bus) {
            fault = Some(f);
            break;
        }
        if cpu.state.eip.wrapping_sub(CODE_BASE) > code.len() as u32 {
            return Err(format!("interpreter left the code at {:#x}", cpu.state.eip));
        }
    }
    if let Some(a) = bus.stray {
        return Err(format!("interpreter touched {a:#x}, outside the window"));
    }
    Ok(Outcome {
        regs: cpu.state.regs,
        eflags: cpu.state.eflags,
        eip: cpu.state.eip,
        fault: fault.map(|f: Fault| f.vector),
        data: bus.data,
    })
}

/// Runs a case on the host CPU.
pub fn run_native(runner: &mut NativeRunner, case: &Case) -> Outcome {
    let out = runner.run(&NativeCase {
        code: &case.code,
        state: NativeState {
            regs: case.regs,
            eflags: case.eflags,
        },
        data: &case.data,
    });
    let fault = out.fault.map(|f| match f {
        NativeFault::DivideError => 0,
        NativeFault::InvalidOpcode => 6,
        NativeFault::Other { signal } => match signal {
            libc::SIGSEGV => 13,
            libc::SIGTRAP => 1,
            libc::SIGBUS => 17,
            _ => 0xFF,
        },
    });
    Outcome {
        regs: out.state.regs,
        eflags: out.state.eflags,
        eip: out.eip,
        fault,
        data: out.data,
    }
}

/// Compares two outcomes under the case's undefined-flag mask.
pub fn compare(case: &Case, host: &Outcome, emu: &Outcome) -> Vec<String> {
    let mut d = Vec::new();
    const NAMES: [&str; 8] = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"];
    if host.fault != emu.fault {
        d.push(format!("fault: host {:?} emu {:?}", host.fault, emu.fault));
    }
    if host.eip != emu.eip {
        d.push(format!("eip: host {:#x} emu {:#x}", host.eip, emu.eip));
    }
    for ((name, h), e) in NAMES.iter().zip(host.regs).zip(emu.regs) {
        if h != e {
            d.push(format!("{name}: host {h:08x} emu {e:08x}"));
        }
    }
    let m = COMPARED_FLAGS & !case.undefined;
    if host.eflags & m != emu.eflags & m {
        d.push(format!(
            "eflags&{m:03x}: host {:03x} emu {:03x}",
            host.eflags & m,
            emu.eflags & m
        ));
    }
    if let Some(k) = (0..WINDOW).find(|&k| host.data[k] != emu.data[k]) {
        d.push(format!(
            "mem[{:#x}]: host {:02x} emu {:02x}",
            DATA_BASE as usize + k,
            host.data[k],
            emu.data[k]
        ));
    }
    d
}

/// Totals of a run.
#[derive(Debug, Default)]
pub struct Report {
    /// Cases that matched.
    pub passed: u64,
    /// Cases that did not.
    pub failed: u64,
    /// Cases in which the host CPU raised an exception (#DE, #UD...).
    pub host_faults: u64,
    /// (cases, failures) per class.
    pub by_class: BTreeMap<AnyClass, (u64, u64)>,
    /// Descriptions of the first failures.
    pub failures: Vec<String>,
}

/// Describes a failing case: bytes, inputs, and both outputs.
pub fn describe(case: &Case, host: &Outcome, emu: Option<&Outcome>, diffs: &[String]) -> String {
    let mut s = String::new();
    let bytes: Vec<String> = case.code.iter().map(|b| format!("{b:02x}")).collect();
    let _ = writeln!(
        s,
        "{:?} [{}]: {}",
        case.class,
        bytes.join(" "),
        diffs.join("; ")
    );
    let _ = writeln!(
        s,
        "  in:   regs {:08x?} eflags {:03x} undefined {:03x}",
        case.regs, case.eflags, case.undefined
    );
    let _ = writeln!(
        s,
        "  host: regs {:08x?} eflags {:03x} eip {:#x} fault {:?}",
        host.regs,
        host.eflags & COMPARED_FLAGS,
        host.eip,
        host.fault
    );
    if let Some(e) = emu {
        let _ = writeln!(
            s,
            "  emu:  regs {:08x?} eflags {:03x} eip {:#x} fault {:?}",
            e.regs,
            e.eflags & COMPARED_FLAGS,
            e.eip,
            e.fault
        );
    }
    s
}

/// An integer or an x87 case class (prints as the class's own name).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnyClass {
    /// An integer-instruction class.
    Int(Class),
    /// An x87 class.
    X87(X87Class),
}

impl std::fmt::Debug for AnyClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnyClass::Int(c) => c.fmt(f),
            AnyClass::X87(c) => c.fmt(f),
        }
    }
}

/// Generates and checks `count` cases from `seed`; keeps up to `keep` failure descriptions.
///
/// Each case is drawn from the integer classes or the x87 classes in
/// proportion to their numbers.
pub fn run(count: u64, seed: u64, keep: usize) -> Result<Report, String> {
    let mut runner = NativeRunner::new().map_err(|e| e.to_string())?;
    let mut emu = Emulator::default();
    let mut rng = Rng::new(seed);
    let mut rep = Report::default();
    let n_int = ALL_CLASSES.len() as u32;
    let n_all = n_int + ALL_X87_CLASSES.len() as u32;
    for _ in 0..count {
        let (class, host_fault, diffs, text) = if rng.below(n_all) < n_int {
            let case = cases::generate(&mut rng);
            let host = run_native(&mut runner, &case);
            let (emu, diffs) = match run_emulated(&mut emu, &case) {
                Ok(e) => {
                    let d = compare(&case, &host, &e);
                    (Some(e), d)
                }
                Err(msg) => (None, vec![msg]),
            };
            let text = (!diffs.is_empty() && rep.failures.len() < keep)
                .then(|| describe(&case, &host, emu.as_ref(), &diffs));
            (AnyClass::Int(case.class), host.fault.is_some(), diffs, text)
        } else {
            let case = x87cases::generate(&mut rng);
            let host = run_native_x87(&mut runner, &case);
            let (emu, diffs) = match run_emulated_x87(&mut emu, &case) {
                Ok(e) => {
                    let d = compare_x87(&host, &e);
                    (Some(e), d)
                }
                Err(msg) => (None, vec![msg]),
            };
            let text = (!diffs.is_empty() && rep.failures.len() < keep)
                .then(|| describe_x87(&case, &host, emu.as_ref(), &diffs));
            (
                AnyClass::X87(case.class),
                host.base.fault.is_some(),
                diffs,
                text,
            )
        };
        rep.host_faults += u64::from(host_fault);
        let entry = rep.by_class.entry(class).or_default();
        entry.0 += 1;
        if diffs.is_empty() {
            rep.passed += 1;
        } else {
            rep.failed += 1;
            entry.1 += 1;
            if let Some(t) = text {
                rep.failures.push(t);
            }
        }
    }
    Ok(rep)
}

/// What one engine did with an x87 case: the integer outcome plus the
/// FXSAVE image of the x87 state afterwards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct X87Outcome {
    /// Registers, flags, fault, DATA window.
    pub base: Outcome,
    /// FXSAVE image (the legacy x87 part is compared).
    pub fx: Vec<u8>,
}

/// Runs an x87 case on the host CPU. A SIGFPE in an x87 case is #MF (the
/// cases contain no integer division).
pub fn run_native_x87(runner: &mut NativeRunner, case: &X87Case) -> X87Outcome {
    let (out, fx) = runner.run_x87(
        &NativeCase {
            code: &case.code,
            state: NativeState {
                regs: case.regs,
                eflags: case.eflags,
            },
            data: &case.data,
        },
        &case.fx,
    );
    let fault = out.fault.map(|f| match f {
        NativeFault::DivideError => 16,
        NativeFault::InvalidOpcode => 6,
        NativeFault::Other { signal } => match signal {
            libc::SIGSEGV => 13,
            libc::SIGTRAP => 1,
            libc::SIGBUS => 17,
            _ => 0xFF,
        },
    });
    X87Outcome {
        base: Outcome {
            regs: out.state.regs,
            eflags: out.state.eflags,
            eip: out.eip,
            fault,
            data: out.data,
        },
        fx: fx.to_vec(),
    }
}

/// Runs an x87 case on the interpreter (flat 32-bit ring 3, CR0.NE = MP = 1
/// as Linux runs user code).
pub fn run_emulated_x87(emu: &mut Emulator, case: &X87Case) -> Result<X87Outcome, String> {
    emu.cases += 1;
    let cpu = &mut emu.cpu;
    cpu.state = morph86_cpu::CpuState::reset();
    cpu.state.set_flat32(false);
    cpu.state.cr0 |= 0x22;
    cpu.state.regs = case.regs;
    cpu.state.eflags = case.eflags | 0x202;
    cpu.state.eip = CODE_BASE;
    cpu.state.fpu.load_fxsave(&case.fx);
    let base = emulate(cpu, &case.code, &case.data, emu.cases, 100)?;
    Ok(X87Outcome {
        base,
        fx: cpu.state.fpu.fxsave_image().to_vec(),
    })
}

/// Formats an 80-bit register image as sign/exponent:significand.
fn f80_text(b: &[u8]) -> String {
    let man = u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8]));
    let se = u16::from_le_bytes([b[8], b[9]]);
    format!("{se:04x}:{man:016x}")
}

/// Compares two x87 outcomes: fault, EIP, GPRs, status flags, DATA, and the
/// x87 FCW, FSW, abridged FTW and the eight registers (not the pointers).
pub fn compare_x87(host: &X87Outcome, emu: &X87Outcome) -> Vec<String> {
    let (h, e) = (&host.base, &emu.base);
    let mut d = Vec::new();
    if h.fault != e.fault {
        d.push(format!("fault: host {:?} emu {:?}", h.fault, e.fault));
    }
    if h.eip != e.eip {
        d.push(format!("eip: host {:#x} emu {:#x}", h.eip, e.eip));
    }
    const NAMES: [&str; 8] = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"];
    for ((name, a), b) in NAMES.iter().zip(h.regs).zip(e.regs) {
        if a != b {
            d.push(format!("{name}: host {a:08x} emu {b:08x}"));
        }
    }
    let m = COMPARED_FLAGS;
    if h.eflags & m != e.eflags & m {
        d.push(format!(
            "eflags&{m:03x}: host {:03x} emu {:03x}",
            h.eflags & m,
            e.eflags & m
        ));
    }
    if let Some(k) = (0..WINDOW).find(|&k| h.data[k] != e.data[k]) {
        d.push(format!(
            "mem[{:#x}]: host {:02x} emu {:02x}",
            DATA_BASE as usize + k,
            h.data[k],
            e.data[k]
        ));
    }
    let (hf, ef) = (&host.fx, &emu.fx);
    let w = |b: &[u8], at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
    if w(hf, 0) != w(ef, 0) {
        d.push(format!("fcw: host {:04x} emu {:04x}", w(hf, 0), w(ef, 0)));
    }
    if w(hf, 2) != w(ef, 2) {
        d.push(format!("fsw: host {:04x} emu {:04x}", w(hf, 2), w(ef, 2)));
    }
    if hf[4] != ef[4] {
        d.push(format!("ftw: host {:02x} emu {:02x}", hf[4], ef[4]));
    }
    for k in 0..8 {
        let r = 32 + 16 * k..42 + 16 * k;
        if hf[r.clone()] != ef[r.clone()] {
            d.push(format!(
                "st{k}: host {} emu {}",
                f80_text(&hf[r.clone()]),
                f80_text(&ef[r])
            ));
        }
    }
    d
}

/// Describes a failing x87 case.
pub fn describe_x87(
    case: &X87Case,
    host: &X87Outcome,
    emu: Option<&X87Outcome>,
    diffs: &[String],
) -> String {
    let mut s = String::new();
    let bytes: Vec<String> = case.code.iter().map(|b| format!("{b:02x}")).collect();
    let _ = writeln!(
        s,
        "{:?} [{}]: {}",
        case.class,
        bytes.join(" "),
        diffs.join("; ")
    );
    let fx = &case.fx;
    let regs: Vec<String> = (0..8)
        .map(|k| f80_text(&fx[32 + 16 * k..42 + 16 * k]))
        .collect();
    let _ = writeln!(
        s,
        "  in:   fcw {:04x} fsw {:04x} ftw {:02x} eflags {:03x} st [{}]",
        u16::from_le_bytes([fx[0], fx[1]]),
        u16::from_le_bytes([fx[2], fx[3]]),
        fx[4],
        case.eflags,
        regs.join(" ")
    );
    if let Some(ebx) = case.regs.get(3) {
        let off = ebx.wrapping_sub(DATA_BASE) as usize;
        if off + 16 <= WINDOW {
            let _ = writeln!(s, "  mem[ebx]: {:02x?}", &case.data[off..off + 16]);
        }
    }
    let _ = writeln!(
        s,
        "  host: fault {:?} eip {:#x}",
        host.base.fault, host.base.eip
    );
    if let Some(e) = emu {
        let _ = writeln!(s, "  emu:  fault {:?} eip {:#x}", e.base.fault, e.base.eip);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_thousand_cases_agree() {
        let rep = run(10_000, 1, 10).expect("native runner");
        assert_eq!(rep.failed, 0, "{}", rep.failures.join("\n"));
        assert_eq!(rep.passed, 10_000);
        assert!(
            rep.host_faults > 50,
            "divide errors must be exercised: {}",
            rep.host_faults
        );
    }
}
