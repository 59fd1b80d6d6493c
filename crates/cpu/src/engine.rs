//! The engine seam: how a machine asks an execution engine (the reference
//! interpreter now, the JIT next) to run guest code.
//!
//! # The contract
//!
//! The machine calls [`Engine::run`] with a budget of instructions (the
//! smaller of the time to the next device deadline and the caller's stop)
//! and whether an interrupt is pending. The engine returns right after an
//! instruction that
//! - (a) retires the budget's last instruction ([`EngineExit::Budget`]);
//! - (b) touches a port, or an address that reaches a device rather than
//!   RAM or ROM ([`EngineExit::Device`], reported by [`Bus::take_device_access`]);
//! - (c) halts ([`EngineExit::Halted`]) or shuts the CPU down
//!   ([`EngineExit::Shutdown`]);
//! - (d) leaves IF = 1 with no interrupt shadow while an interrupt is
//!   pending ([`EngineExit::InterruptWindow`]);
//!
//! and at no other time. Because pending interrupts change only at (b) and
//! at device deadlines (a), the machine sees every change of the interrupt
//! lines at the instruction boundary where it happens, whatever the batch
//! size: the same inputs give the same run with any budget slicing.
//!
//! # What one instruction is for the clock
//!
//! Virtual time and the TSC advance with [`Cpu::icount`], which every engine
//! counts by the same rules:
//! - an instruction that completes counts 1;
//! - an instruction that faults counts 1 (its exception is delivered as
//!   part of it, so a fault in the middle of a block costs what it costs in
//!   the interpreter);
//! - a REP string instruction counts 1 per chunk of up to
//!   [`crate::interp::REP_CHUNK`] iterations; between chunks EIP stays on
//!   the instruction, so interrupts and deadlines can fall between chunks;
//! - delivering an external interrupt or NMI counts 0 (it happens at an
//!   instruction boundary, between two counted instructions);
//! - a code-breakpoint #DB, raised before the instruction executes, counts 0;
//!   a data-breakpoint or single-step #DB is part of the instruction that
//!   caused it;
//! - HLT counts 1; time spent halted is skipped by the machine, not counted
//!   as instructions.
//!
//! Devices see time through the bus ([`Bus::set_icount`] is called before
//! each instruction, so a port access sees the count of instructions retired
//! before the one that makes it), and RDTSC reads the same count.

use crate::bus::Bus;
use crate::fault::Fault;
use crate::interp::{Cpu, StepOutcome};

/// Why an engine returned (see the module docs for the contract).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineExit {
    /// The budget's last instruction retired.
    Budget,
    /// The last instruction touched a port or a device's memory.
    Device,
    /// The CPU is halted (HLT, or it was halted on entry).
    Halted,
    /// An exception could not be delivered: the CPU needs a reset.
    Shutdown(Fault),
    /// An interrupt is pending and the CPU now accepts it.
    InterruptWindow,
}

/// One call's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunRequest {
    /// Instructions the engine may retire (at least 1).
    pub budget: u64,
    /// A maskable interrupt is pending at the interrupt controllers: return
    /// as soon as [`Cpu::interrupts_enabled`] allows it to be taken.
    pub interrupt_pending: bool,
}

/// An execution engine for a CPU on bus `B`.
pub trait Engine<B: Bus> {
    /// A short name (`interp`, `jit`).
    fn name(&self) -> &'static str;
    /// Runs `cpu` on `bus` under the contract of the module docs.
    fn run(&mut self, cpu: &mut Cpu, bus: &mut B, req: RunRequest) -> EngineExit;
    /// What the engine has to say about its work so far (`--stats`), one
    /// item a line; empty for none.
    fn report(&self) -> String {
        String::new()
    }
}

/// The reference interpreter as an engine: [`Cpu::step`] in a loop.
#[derive(Clone, Copy, Debug, Default)]
pub struct Interpreter;

impl<B: Bus> Engine<B> for Interpreter {
    fn name(&self) -> &'static str {
        "interp"
    }

    fn run(&mut self, cpu: &mut Cpu, bus: &mut B, req: RunRequest) -> EngineExit {
        let end = cpu.icount.saturating_add(req.budget.max(1));
        cpu.budget_end = end;
        cpu.pending_events = if req.interrupt_pending {
            crate::interp::events::INTERRUPT
        } else {
            0
        };
        // Anything an earlier caller left behind is not this run's.
        bus.take_device_access();
        loop {
            if let Some(exit) = interpret_one(cpu, bus, req, end) {
                return exit;
            }
        }
    }
}

/// Runs one instruction in the interpreter and applies the contract's stop
/// rules: the exit to return after it, if any. Every engine's interpreter
/// path goes through here, so they cannot disagree on when to stop.
pub fn interpret_one<B: Bus>(
    cpu: &mut Cpu,
    bus: &mut B,
    req: RunRequest,
    end: u64,
) -> Option<EngineExit> {
    match cpu.step(bus) {
        StepOutcome::Executed | StepOutcome::Exception(_) => {}
        StepOutcome::Halted => return Some(EngineExit::Halted),
        StepOutcome::TripleFault(f) => return Some(EngineExit::Shutdown(f)),
    }
    if bus.take_device_access() {
        return Some(EngineExit::Device);
    }
    after_instructions(cpu, req, end)
}

/// The stop rules that follow any instruction that touched no device:
/// an interrupt that became deliverable, or the budget's end.
#[inline]
pub fn after_instructions(cpu: &Cpu, req: RunRequest, end: u64) -> Option<EngineExit> {
    if req.interrupt_pending && cpu.interrupts_enabled() {
        return Some(EngineExit::InterruptWindow);
    }
    (cpu.icount >= end).then_some(EngineExit::Budget)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::FlatRam;
    use crate::state::SegReg;

    /// RAM whose port 0x80 counts as a device.
    struct PortBus {
        ram: FlatRam,
        touched: bool,
    }

    impl Bus for PortBus {
        fn read_u8(&mut self, a: u32) -> u8 {
            self.ram.read_u8(a)
        }
        fn write_u8(&mut self, a: u32, v: u8) {
            Bus::write_u8(&mut self.ram, a, v)
        }
        fn io_write(&mut self, _: u16, _: u8, _: u32) {
            self.touched = true;
        }
        fn take_device_access(&mut self) -> bool {
            std::mem::take(&mut self.touched)
        }
        fn mark_code_page(&mut self, p: u32) {
            self.ram.mark_code_page(p)
        }
        fn code_generation(&self, page: u32) -> u32 {
            Bus::code_generation(&self.ram, page)
        }
    }

    /// A real-mode CPU at 0:0x100 running `code`.
    fn setup(code: &[u8]) -> (Cpu, PortBus) {
        let mut ram = FlatRam::new(0x10000);
        ram.bytes_mut()[0x100..0x100 + code.len()].copy_from_slice(code);
        let mut cpu = Cpu::new(crate::CpuModel::P6);
        cpu.state.load_seg_real(SegReg::Cs, 0);
        cpu.state.eip = 0x100;
        (
            cpu,
            PortBus {
                ram,
                touched: false,
            },
        )
    }

    fn run(cpu: &mut Cpu, bus: &mut PortBus, budget: u64, pending: bool) -> EngineExit {
        Interpreter.run(
            cpu,
            bus,
            RunRequest {
                budget,
                interrupt_pending: pending,
            },
        )
    }

    #[test]
    fn stops_at_budget_port_and_halt() {
        // nop; nop; out 0x80,al; nop; hlt
        let (mut cpu, mut bus) = setup(&[0x90, 0x90, 0xE6, 0x80, 0x90, 0xF4]);
        assert_eq!(run(&mut cpu, &mut bus, 1, false), EngineExit::Budget);
        assert_eq!(cpu.icount, 1);
        assert_eq!(run(&mut cpu, &mut bus, 100, false), EngineExit::Device);
        assert_eq!((cpu.icount, cpu.state.eip), (3, 0x104));
        assert_eq!(run(&mut cpu, &mut bus, 100, false), EngineExit::Halted);
        assert_eq!(cpu.icount, 5);
    }

    #[test]
    fn interrupt_window_opens_after_the_sti_shadow() {
        // cli; sti; nop; nop
        let (mut cpu, mut bus) = setup(&[0xFA, 0xFB, 0x90, 0x90]);
        assert_eq!(
            run(&mut cpu, &mut bus, 100, true),
            EngineExit::InterruptWindow
        );
        // CLI, STI and the one instruction in STI's shadow have run.
        assert_eq!((cpu.icount, cpu.state.eip), (3, 0x103));
        assert!(cpu.interrupts_enabled());
    }

    #[test]
    fn interrupt_window_opens_right_after_popf() {
        // push 0x202; popf; nop
        let (mut cpu, mut bus) = setup(&[0x68, 0x02, 0x02, 0x9D, 0x90]);
        cpu.state.regs[crate::state::reg::ESP] = 0x8000;
        assert_eq!(
            run(&mut cpu, &mut bus, 100, true),
            EngineExit::InterruptWindow
        );
        assert_eq!((cpu.icount, cpu.state.eip), (2, 0x104));
    }
}
