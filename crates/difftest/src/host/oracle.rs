//! Runs cases on the host CPU and on the interpreter and compares them.

use super::cases::{self, Case, Class, COMPARED_FLAGS, WINDOW};
use super::native::{NativeCase, NativeFault, NativeRunner, NativeState, CODE_BASE, DATA_BASE};
use super::rng::Rng;
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
    fn code_epoch(&self) -> u64 {
        self.epoch
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
    let mut bus = CaseBus {
        data: case.data.clone(),
        code: &case.code,
        stray: None,
        epoch: emu.cases,
    };
    let end = CODE_BASE + case.code.len() as u32;
    let mut fault = None;
    let mut steps = 0;
    while cpu.state.eip != end {
        steps += 1;
        if steps > 10_000 {
            return Err("interpreter did not reach the end of the code".into());
        }
        if let Err(f) = cpu.execute_one(&mut bus) {
            fault = Some(f);
            break;
        }
        if cpu.state.eip.wrapping_sub(CODE_BASE) > case.code.len() as u32 {
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
    pub by_class: BTreeMap<Class, (u64, u64)>,
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

/// Generates and checks `count` cases from `seed`; keeps up to `keep` failure descriptions.
pub fn run(count: u64, seed: u64, keep: usize) -> Result<Report, String> {
    let mut runner = NativeRunner::new().map_err(|e| e.to_string())?;
    let mut emu = Emulator::default();
    let mut rng = Rng::new(seed);
    let mut rep = Report::default();
    for _ in 0..count {
        let case = cases::generate(&mut rng);
        let host = run_native(&mut runner, &case);
        rep.host_faults += u64::from(host.fault.is_some());
        let (emu, diffs) = match run_emulated(&mut emu, &case) {
            Ok(e) => {
                let d = compare(&case, &host, &e);
                (Some(e), d)
            }
            Err(msg) => (None, vec![msg]),
        };
        let entry = rep.by_class.entry(case.class).or_default();
        entry.0 += 1;
        if diffs.is_empty() {
            rep.passed += 1;
        } else {
            rep.failed += 1;
            entry.1 += 1;
            if rep.failures.len() < keep {
                rep.failures
                    .push(describe(&case, &host, emu.as_ref(), &diffs));
            }
        }
    }
    Ok(rep)
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
