//! The machine: CPU + board + devices, the run loop and its stop conditions.
//!
//! # Exit statuses
//!
//! [`RunExit::status`] maps how a run ended to a process exit status, which
//! the `morph86 run` command returns:
//!
//! | how the run ended | status |
//! |---|---|
//! | the guest wrote `v` to the exit device (port 0xF4) | `(v << 1) \| 1`, truncated to 8 bits by the OS |
//! | `--stop-at insns:N` reached | 0 |
//! | HLT that nothing can end (no interrupt source is wired yet) | 0 |
//! | triple fault under `--no-reboot` (the reset ends the run) | 0 |
//! | `--timeout` expired | 124 ([`STATUS_TIMEOUT`], as `timeout(1)`) |
//!
//! The exit device can never produce 0 (its status is odd), so a test kernel
//! that reports through it is told apart from every other ending; the
//! Multiboot test kernels write 0x10 (status 33) when every test passed and
//! 0x11 (status 35) otherwise.
//!
//! Without `--no-reboot`, a triple fault resets the machine: the CPU returns
//! to its reset state and the kernel is loaded and entered again, as QEMU
//! does for a `-kernel` boot.

use crate::board::Board;
use crate::multiboot::{self, BootInfo, Module, MultibootError};
use morph86_cpu::{Cpu, CpuModel, Fault, SegReg, StepOutcome};
use morph86_devices::bus::BusError;
use morph86_devices::debugcon::DEBUGCON_PORT;
use morph86_devices::exit::EXIT_PORT;
use morph86_devices::post::POST_PORT;
use morph86_devices::uart::{UartState, COM1_PORT};
use morph86_devices::{
    DebugCon, DebugExit, DeviceId, OutputSink, PostPort, SerialBackend, Uart16550,
};
use std::time::{Duration, Instant};
use thiserror::Error;

/// Exit status when `--timeout` expires.
pub const STATUS_TIMEOUT: u8 = 124;

/// Instructions between checks of the wall clock and of serial input.
const BATCH: u64 = 1 << 16;

/// How to build a machine.
#[derive(Debug)]
pub struct MachineConfig {
    /// RAM in MiB.
    pub memory_mib: u32,
    /// COM1's back end.
    pub serial: SerialBackend,
    /// The debug console's output (port 0xE9), if one is attached.
    pub debugcon: Option<OutputSink>,
    /// A triple fault ends the run instead of resetting the machine.
    pub no_reboot: bool,
}

impl Default for MachineConfig {
    fn default() -> Self {
        MachineConfig {
            memory_mib: 128,
            serial: SerialBackend::none(),
            debugcon: None,
            no_reboot: false,
        }
    }
}

/// Errors building or booting a machine.
#[derive(Debug, Error)]
pub enum MachineError {
    /// The kernel could not be loaded.
    #[error(transparent)]
    Multiboot(#[from] MultibootError),
    /// Devices could not be wired.
    #[error("wiring devices: {0}")]
    Bus(#[from] BusError),
    /// The RAM size is unusable.
    #[error("memory size of {0} MiB is out of range (2..=3072)")]
    Memory(u32),
}

/// Bounds for [`Machine::run`].
#[derive(Clone, Copy, Debug, Default)]
pub struct RunLimits {
    /// Stop once this many instructions have retired (counted since power-on).
    pub max_insns: Option<u64>,
    /// Stop after this much wall-clock time.
    pub timeout: Option<Duration>,
}

/// Why [`Machine::run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunExit {
    /// The guest wrote the exit device; the value is `(v << 1) | 1`.
    ExitDevice(u32),
    /// The wall-clock timeout expired.
    Timeout,
    /// The instruction budget was used up.
    InstructionLimit,
    /// The CPU halted and nothing can wake it: no interrupt source is wired
    /// to the CPU yet, so this ends the run whatever EFLAGS.IF says.
    Halted {
        /// CS selector after the HLT.
        cs: u16,
        /// EIP after the HLT.
        eip: u32,
        /// EFLAGS.IF at the time.
        interrupts_enabled: bool,
    },
    /// A triple fault (shutdown) under `no_reboot`.
    TripleFault {
        /// The exception that could not be delivered.
        fault: Fault,
        /// CS selector at the time.
        cs: u16,
        /// EIP at the time.
        eip: u32,
    },
}

impl RunExit {
    /// The process exit status for this ending (see the module docs).
    pub fn status(&self) -> u8 {
        match *self {
            RunExit::ExitDevice(s) => s as u8,
            RunExit::Timeout => STATUS_TIMEOUT,
            RunExit::InstructionLimit | RunExit::Halted { .. } | RunExit::TripleFault { .. } => 0,
        }
    }
}

impl std::fmt::Display for RunExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            RunExit::ExitDevice(s) => write!(f, "guest requested exit with status {s}"),
            RunExit::Timeout => f.write_str("timeout expired"),
            RunExit::InstructionLimit => f.write_str("instruction limit reached"),
            RunExit::Halted {
                cs,
                eip,
                interrupts_enabled,
            } => write!(
                f,
                "guest halted at {cs:04x}:{eip:08x} with interrupts {} and no interrupt source",
                if interrupts_enabled { "enabled" } else { "disabled" }
            ),
            RunExit::TripleFault { fault, cs, eip } => write!(
                f,
                "triple fault ({fault} could not be delivered) at {cs:04x}:{eip:08x}; --no-reboot ends the run"
            ),
        }
    }
}

/// What to load again after a reset.
struct BootSource {
    kernel: Vec<u8>,
    cmdline: String,
    modules: Vec<Module>,
}

/// A PC: a P6-class CPU, RAM, COM1, the debug console, the POST port and
/// the exit device.
pub struct Machine {
    /// The CPU.
    pub cpu: Cpu,
    /// RAM and the I/O bus.
    pub board: Board,
    serial: DeviceId<Uart16550>,
    exit: DeviceId<DebugExit>,
    debugcon: Option<DeviceId<DebugCon>>,
    no_reboot: bool,
    boot: Option<BootSource>,
    resets: u32,
}

impl Machine {
    /// Builds a machine: COM1 at 0x3F8, the POST port at 0x80, the exit
    /// device at 0xF4 (always present for now) and, if configured, the
    /// debug console at 0xE9. The CPU is in its reset state.
    pub fn new(cfg: MachineConfig) -> Result<Machine, MachineError> {
        if !(2..=3072).contains(&cfg.memory_mib) {
            return Err(MachineError::Memory(cfg.memory_mib));
        }
        let mut board = Board::new(cfg.memory_mib as usize * 1024 * 1024);
        let serial = board
            .io
            .register(COM1_PORT, 8, Uart16550::new(cfg.serial))?;
        board.io.register(POST_PORT, 1, PostPort::new())?;
        let exit = board.io.register(EXIT_PORT, 4, DebugExit::new())?;
        let debugcon = match cfg.debugcon {
            Some(out) => Some(board.io.register(DEBUGCON_PORT, 1, DebugCon::new(out))?),
            None => None,
        };
        Ok(Machine {
            cpu: Cpu::new(CpuModel::P6),
            board,
            serial,
            exit,
            debugcon,
            no_reboot: cfg.no_reboot,
            boot: None,
            resets: 0,
        })
    }

    /// Loads a Multiboot kernel and sets the CPU to its entry state (see
    /// [`BootInfo`]). The kernel is kept so that a reset can boot it again.
    pub fn boot_multiboot(
        &mut self,
        kernel: Vec<u8>,
        cmdline: &str,
        modules: Vec<Module>,
    ) -> Result<BootInfo, MachineError> {
        self.boot = Some(BootSource {
            kernel,
            cmdline: cmdline.to_string(),
            modules,
        });
        self.enter_boot()
    }

    fn enter_boot(&mut self) -> Result<BootInfo, MachineError> {
        let Some(src) = &self.boot else {
            return Err(MultibootError::NoHeader.into());
        };
        let info = multiboot::load(
            self.board.ram.bytes_mut(),
            &src.kernel,
            &src.cmdline,
            &src.modules,
        )?;
        self.reset_cpu();
        let s = &mut self.cpu.state;
        s.set_flat32(true);
        s.eflags = 0x2;
        s.regs[0] = multiboot::BOOTLOADER_MAGIC;
        s.regs[3] = info.info_addr;
        s.eip = info.entry;
        Ok(info)
    }

    /// Returns the CPU and devices to their reset state.
    fn reset_cpu(&mut self) {
        self.cpu = Cpu::new(CpuModel::P6);
        self.board.io.get_mut(self.exit).clear();
        self.board.io.get_mut(self.serial).state = UartState::default();
    }

    /// How many times a triple fault reset the machine.
    pub fn resets(&self) -> u32 {
        self.resets
    }

    /// COM1.
    pub fn serial(&mut self) -> &mut Uart16550 {
        self.board.io.get_mut(self.serial)
    }

    /// The exit device.
    pub fn exit_device(&self) -> &DebugExit {
        self.board.io.get(self.exit)
    }

    /// Flushes device output (serial, debug console).
    pub fn flush(&mut self) {
        self.serial().flush();
        if let Some(d) = self.debugcon {
            self.board.io.get_mut(d).flush();
        }
    }

    /// Runs until a stop condition (see [`RunExit`]).
    pub fn run(&mut self, limits: RunLimits) -> RunExit {
        let start = Instant::now();
        loop {
            let batch_end = match limits.max_insns {
                Some(n) if self.cpu.icount >= n => return RunExit::InstructionLimit,
                Some(n) => n.min(self.cpu.icount + BATCH),
                None => self.cpu.icount + BATCH,
            };
            while self.cpu.icount < batch_end {
                let outcome = self.cpu.step(&mut self.board);
                if self.board.io_written {
                    self.board.io_written = false;
                    if let Some(s) = self.exit_device().status() {
                        return RunExit::ExitDevice(s);
                    }
                }
                match outcome {
                    StepOutcome::Executed => {}
                    StepOutcome::Exception(f) => {
                        let s = &self.cpu.state;
                        tracing::debug!(
                            "exception {f} delivered; handler at {:04x}:{:08x}",
                            s.seg(SegReg::Cs).selector,
                            s.eip
                        );
                    }
                    StepOutcome::Halted => {
                        let s = &self.cpu.state;
                        return RunExit::Halted {
                            cs: s.seg(SegReg::Cs).selector,
                            eip: s.eip,
                            interrupts_enabled: s.eflags & (1 << 9) != 0,
                        };
                    }
                    StepOutcome::TripleFault(fault) => {
                        let s = &self.cpu.state;
                        let (cs, eip) = (s.seg(SegReg::Cs).selector, s.eip);
                        if self.no_reboot || self.boot.is_none() {
                            return RunExit::TripleFault { fault, cs, eip };
                        }
                        tracing::warn!("triple fault ({fault}) at {cs:04x}:{eip:08x}: resetting");
                        self.resets += 1;
                        let icount = self.cpu.icount;
                        if self.enter_boot().is_err() {
                            return RunExit::TripleFault { fault, cs, eip };
                        }
                        // The budget counts from power-on, across resets.
                        self.cpu.icount = icount;
                    }
                }
            }
            if limits.timeout.is_some_and(|t| start.elapsed() >= t) {
                return RunExit::Timeout;
            }
            self.serial().poll_input();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use morph86_devices::SharedBuffer;

    /// An a.out-kludge kernel at 1 MiB running `code` (32-bit).
    fn kernel(code: &[u8]) -> Vec<u8> {
        let load = 0x10_0000u32;
        let len = 32 + code.len() as u32;
        let flags = 1u32 << 16;
        let mut k = Vec::new();
        for v in [
            multiboot::HEADER_MAGIC,
            flags,
            multiboot::HEADER_MAGIC.wrapping_add(flags).wrapping_neg(),
            load,
            load,
            load + len,
            0,
            load + 32,
        ] {
            k.extend(v.to_le_bytes());
        }
        k.extend_from_slice(code);
        k
    }

    fn machine(serial: SharedBuffer, no_reboot: bool) -> Machine {
        Machine::new(MachineConfig {
            memory_mib: 4,
            serial: SerialBackend::buffer(serial, None),
            debugcon: None,
            no_reboot,
        })
        .unwrap()
    }

    #[test]
    fn entry_state_and_exit_device() {
        let out = SharedBuffer::new();
        let mut m = machine(out.clone(), true);
        // Check EAX, print 'O' 'K' to COM1, exit with 0x10.
        let code = [
            0x3D, 0x02, 0xB0, 0xAD, 0x2B, // cmp eax, 0x2BADB002
            0x75, 0x0E, // jne fail
            0x66, 0xBA, 0xF8, 0x03, // mov dx, 0x3f8
            0xB0, b'O', 0xEE, // mov al,'O'; out dx,al
            0xB0, b'K', 0xEE, // mov al,'K'; out dx,al
            0xB0, 0x10, 0xE6, 0xF4, // mov al,0x10; out 0xf4,al
            0xB0, 0x11, 0xE6, 0xF4, // fail: mov al,0x11; out 0xf4,al
        ];
        let info = m.boot_multiboot(kernel(&code), "x", vec![]).unwrap();
        assert_eq!(m.cpu.state.regs[3], info.info_addr);
        assert_eq!(m.cpu.state.eflags & (1 << 9), 0);
        let r = m.run(RunLimits {
            max_insns: Some(1000),
            timeout: None,
        });
        assert_eq!(r, RunExit::ExitDevice(33));
        assert_eq!(r.status(), 33);
        assert_eq!(out.text(), "OK");
    }

    #[test]
    fn halt_and_instruction_limit() {
        let mut m = machine(SharedBuffer::new(), true);
        m.boot_multiboot(kernel(&[0x90, 0x90, 0xF4]), "", vec![])
            .unwrap();
        let r = m.run(RunLimits {
            max_insns: Some(1),
            timeout: None,
        });
        assert_eq!(r, RunExit::InstructionLimit);
        let r = m.run(RunLimits::default());
        assert!(
            matches!(
                r,
                RunExit::Halted {
                    eip: 0x10_0023,
                    interrupts_enabled: false,
                    ..
                }
            ),
            "{r:?}"
        );
        assert_eq!(r.status(), 0);
    }

    #[test]
    fn timeout_stops_an_endless_loop() {
        let mut m = machine(SharedBuffer::new(), true);
        m.boot_multiboot(kernel(&[0xEB, 0xFE]), "", vec![]).unwrap();
        let r = m.run(RunLimits {
            max_insns: None,
            timeout: Some(Duration::from_millis(50)),
        });
        assert_eq!(r, RunExit::Timeout);
        assert_eq!(r.status(), STATUS_TIMEOUT);
    }

    #[test]
    fn bad_kernel_is_an_error() {
        let mut m = machine(SharedBuffer::new(), true);
        let e = m.boot_multiboot(vec![1, 2, 3], "", vec![]).unwrap_err();
        assert!(e.to_string().contains("not a Multiboot kernel"), "{e}");
        assert!(Machine::new(MachineConfig {
            memory_mib: 1,
            ..MachineConfig::default()
        })
        .is_err());
    }
}
