//! The machine: CPU + board + devices, virtual time, interrupt routing, the
//! run loop and its stop conditions.
//!
//! # Time and the run loop
//!
//! Time is the machine's clock (see [`crate::clock`]). The run loop hands
//! the CPU to an engine ([`EngineKind`]) for a budget that ends at the next
//! device deadline, the caller's stop, or the next host check point
//! (every [`CHECK_INTERVAL`] instructions, counted from power-on, so that
//! timeouts, serial input and serial matches fall at the same instruction
//! whatever the batch size). The engine returns after any device access,
//! and as soon as a pending interrupt becomes deliverable (after STI's
//! shadow, POPF or IRET): see `morph86_cpu::engine` for the contract and
//! for what counts as an instruction.
//!
//! # Interrupts
//!
//! Devices raise lines that go both to the 8259A pair and to the I/O APIC
//! (ISA IRQ 0 arrives at I/O APIC pin 2, as the MADT says). The PIC's output
//! reaches the CPU through the local APIC's LINT0, which the machine sets to
//! ExtINT at power-on as firmware does ("virtual wire" mode), or directly
//! while a guest keeps the local APIC software-disabled; the I/O APIC's
//! messages go through the local APIC. Lines are re-evaluated after each
//! device access and at each device deadline, never on every instruction.
//!
//! # Exit statuses
//!
//! [`RunExit::status`] maps how a run ended to a process exit status:
//!
//! | how the run ended | status |
//! |---|---|
//! | the guest wrote `v` to the exit device (port 0xF4) | `(v << 1) \| 1`, truncated to 8 bits by the OS |
//! | the guest powered off through ACPI (S5) | 0 |
//! | a guest reset (or triple fault) under `--no-reboot` | 0 |
//! | `--exit-on-serial` matched | 0 |
//! | `--exit-on-screen` matched | 0 |
//! | `--stop-at insns:N` reached | 0 |
//! | HLT with interrupts disabled and nothing left to wake the CPU | 0 |
//! | `--timeout` expired | 124 ([`STATUS_TIMEOUT`], as `timeout(1)`) |
//!
//! Without `--no-reboot`, a triple fault or a reset request resets the
//! machine: the CPU and devices return to their reset state and the kernel
//! is loaded and entered again, as QEMU does for a `-kernel` boot; a
//! firmware boot ([`Machine::boot_bios`]) starts again at the reset vector
//! and goes through POST (RAM keeps its contents, as on a PC).

use crate::board::Board;
pub use crate::chipset::ACPI_PM_BASE;
use crate::chipset::{Chipset, ChipsetConfig};
pub use crate::clock::ClockMode;
use crate::event_log::EventLog;
use crate::multiboot::{self, BootInfo, Module, MultibootError};
use morph86_cpu::{
    Cpu, CpuModel, Engine, EngineExit, Fault, Interpreter, RunRequest, SegReg, StepOutcome,
};
pub use morph86_devices::exit::EXIT_PORT;
use morph86_devices::{
    DebugExit, OutputSink, RtcDateTime, RtcStart, SerialBackend, SharedBuffer, Uart16550,
};
use std::time::{Duration, Instant};
use thiserror::Error;

/// The RTC's date at power-on under the virtual clock, unless
/// `--rtc-base` says otherwise: 2024-01-01 00:00:00 UTC.
pub const FIXED_RTC_BASE: i64 = 1_704_067_200;

/// Exit status when `--timeout` expires.
pub const STATUS_TIMEOUT: u8 = 124;

/// Instructions between checks of the wall clock, the stop flag, serial
/// input and the serial watch. Check points fall at multiples of this count
/// (since power-on), whatever the batch size.
pub const CHECK_INTERVAL: u64 = 1 << 16;

/// The largest batch an engine is given.
pub const MAX_BATCH: u64 = CHECK_INTERVAL;

/// Which engine runs guest code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EngineKind {
    /// The reference interpreter.
    #[default]
    Interp,
    /// The binary translator (`morph86-jit`), with the interpreter for what
    /// it does not translate.
    Jit,
}

impl std::str::FromStr for EngineKind {
    type Err = String;
    fn from_str(s: &str) -> Result<EngineKind, String> {
        match s {
            "interp" | "interpreter" => Ok(EngineKind::Interp),
            "jit" => Ok(EngineKind::Jit),
            _ => Err(format!("unknown engine {s:?} (known: interp, jit)")),
        }
    }
}

/// How to build a machine.
#[derive(Debug, Default)]
pub struct MachineConfig {
    /// RAM in MiB (0 means the default, 128).
    pub memory_mib: u32,
    /// COM1's back end.
    pub serial: SerialBackend,
    /// The debug console's output (port 0xE9), if one is attached.
    pub debugcon: Option<OutputSink>,
    /// A triple fault or reset request ends the run instead of resetting.
    pub no_reboot: bool,
    /// Where time comes from.
    pub clock: ClockMode,
    /// The port of a QEMU-compatible exit device (`isa-debug-exit`), if one
    /// is fitted; [`EXIT_PORT`] is the usual choice.
    pub exit_port: Option<u16>,
    /// The engine that runs guest code.
    pub engine: EngineKind,
    /// The most instructions an engine runs per call (0 means
    /// [`MAX_BATCH`]). Runs are the same for every value; small values are
    /// for checking that.
    pub batch: u64,
    /// Where the RTC's date starts (`None`: a fixed date under the virtual
    /// clock, the host's date under the host clock).
    pub rtc_base: Option<RtcDateTime>,
    /// The JIT's code cache in MiB (0: the default, 64).
    pub jit_cache_mb: u32,
    /// The JIT's code cache in KiB, when nonzero: it overrides
    /// `jit_cache_mb`. Tests use a few KiB to force many cache flushes in a
    /// short run (the JIT's floor is one 4 KiB page).
    pub jit_cache_kib: u32,
    /// Leave out QEMU's fw_cfg device (fitted by default, as in QEMU).
    pub no_fw_cfg: bool,
    /// The display adapter (a VGA with Bochs VBE by default, as QEMU's
    /// `-vga std`).
    pub vga: VgaModel,
    /// The disk, CD and floppy images attached (`--hda` ...).
    pub drives: crate::storage::Drives,
}

/// Which display adapter the machine has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VgaModel {
    /// None: the legacy window is open bus.
    None,
    /// A VGA with the Bochs VBE extensions (PCI 1234:1111).
    #[default]
    Std,
}

impl std::str::FromStr for VgaModel {
    type Err = String;
    fn from_str(s: &str) -> Result<VgaModel, String> {
        match s {
            "none" => Ok(VgaModel::None),
            "std" => Ok(VgaModel::Std),
            _ => Err(format!("unknown VGA {s:?} (known: none, std)")),
        }
    }
}

/// Errors building or booting a machine.
#[derive(Debug, Error)]
pub enum MachineError {
    /// The kernel could not be loaded.
    #[error(transparent)]
    Multiboot(#[from] MultibootError),
    /// A Linux kernel could not be loaded.
    #[error(transparent)]
    Linux(#[from] crate::linux::LinuxError),
    /// Devices could not be wired.
    #[error("wiring devices: {0}")]
    Bus(#[from] morph86_devices::bus::BusError),
    /// The RAM size is unusable.
    #[error("memory size of {0} MiB is out of range (2..=3072)")]
    Memory(u32),
    /// The batch size is unusable.
    #[error("batch size {0} is out of range (1..={MAX_BATCH})")]
    Batch(u64),
    /// Firmware tables did not fit.
    #[error(transparent)]
    Firmware(#[from] crate::firmware::FirmwareError),
    /// A BIOS image, option ROM or boot order is unusable.
    #[error(transparent)]
    Bios(#[from] crate::bios::BiosError),
    /// Video memory could not be mapped.
    #[error(transparent)]
    Video(#[from] morph86_memory::VramError),
    /// A disk image could not be attached.
    #[error(transparent)]
    Storage(#[from] morph86_devices::ata::AttachError),
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
    /// The guest powered off through ACPI.
    PowerOff,
    /// The guest asked for a reset (keyboard controller, port 0x92 or
    /// 0xCF9) under `no_reboot`.
    Reset,
    /// The serial watch pattern matched.
    SerialMatch,
    /// The screen watch pattern matched the text screen.
    ScreenMatch,
    /// The user stopped the run (Ctrl-A x on the console).
    Stopped,
    /// The wall-clock timeout expired.
    Timeout,
    /// The instruction budget was used up.
    InstructionLimit,
    /// The CPU halted with interrupts disabled and nothing can wake it.
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
            _ => 0,
        }
    }
}

impl std::fmt::Display for RunExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            RunExit::ExitDevice(s) => write!(f, "guest requested exit with status {s}"),
            RunExit::PowerOff => f.write_str("guest powered off"),
            RunExit::Reset => f.write_str("guest reset; --no-reboot ends the run"),
            RunExit::SerialMatch => f.write_str("serial output matched the watch pattern"),
            RunExit::ScreenMatch => f.write_str("the text screen matched the watch pattern"),
            RunExit::Stopped => f.write_str("stopped by the user"),
            RunExit::Timeout => f.write_str("timeout expired"),
            RunExit::InstructionLimit => f.write_str("instruction limit reached"),
            RunExit::Halted { cs, eip, interrupts_enabled } => write!(
                f,
                "guest halted at {cs:04x}:{eip:08x} with interrupts {} and nothing to wake it",
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
enum BootSource {
    Multiboot {
        kernel: Vec<u8>,
        cmdline: String,
        modules: Vec<Module>,
    },
    Linux {
        kernel: Vec<u8>,
        initrd: Option<Vec<u8>>,
        cmdline: String,
    },
    /// Firmware at the reset vector (the images stay mapped on the board).
    Bios,
}

/// A PC: a P6-class CPU, RAM, the 8259A pair, the 8254, the RTC, the
/// 8042, four 16550A UARTs, PCI configuration space, the local and I/O
/// APICs, ACPI PM registers, the debug console, the POST port and the exit
/// device.
pub struct Machine {
    /// The CPU.
    pub cpu: Cpu,
    /// RAM, the I/O bus and the APICs.
    pub board: Board,
    chipset: Chipset,
    no_reboot: bool,
    boot: Option<BootSource>,
    resets: u32,
    engine: Box<dyn Engine<Board> + Send>,
    batch: u64,
    /// Devices were accessed since they were last serviced.
    devices_touched: bool,
    /// A maskable interrupt is pending at the interrupt controllers.
    irq_pending: bool,
    /// The earliest device deadline, as last computed.
    deadline: Option<u64>,
    /// Device state may have changed since `irq_pending`, `deadline` and
    /// the NMI line were last looked at.
    stale: bool,
    a20: bool,
    serial_watch: Option<(SharedBuffer, regex::Regex, usize)>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// External interrupts delivered, by vector.
    interrupt_counts: Box<[u64; 256]>,
    /// A front end's hook at the host check points (see [`crate::host`]).
    host_link: Option<Box<dyn crate::host::HostLink>>,
}

impl Machine {
    /// Builds a PC. The CPU is in its reset state; the local APIC's LINT0
    /// and LINT1 are programmed for ExtINT and NMI as firmware leaves them.
    pub fn new(cfg: MachineConfig) -> Result<Machine, MachineError> {
        let mib = if cfg.memory_mib == 0 {
            128
        } else {
            cfg.memory_mib
        };
        if !(2..=3072).contains(&mib) {
            return Err(MachineError::Memory(mib));
        }
        let batch = match cfg.batch {
            0 => MAX_BATCH,
            b if b <= MAX_BATCH => b,
            b => return Err(MachineError::Batch(b)),
        };
        let mut board = Board::new(mib as usize * 1024 * 1024, cfg.clock);
        let rtc_start = match (cfg.rtc_base, cfg.clock) {
            (Some(date), _) => RtcStart::Fixed(date),
            (None, ClockMode::Virtual) => RtcStart::Fixed(RtcDateTime::from_unix(FIXED_RTC_BASE)),
            (None, ClockMode::Host) => RtcStart::Host,
        };
        let chipset = Chipset::build(
            &mut board,
            ChipsetConfig {
                serial: cfg.serial,
                debugcon: cfg.debugcon,
                exit_port: cfg.exit_port,
                rtc_start,
                memory_mib: mib,
                fw_cfg: !cfg.no_fw_cfg,
                vga: cfg.vga == VgaModel::Std,
                drives: cfg.drives,
            },
        )?;
        let mut m = Machine {
            cpu: Cpu::new(CpuModel::P6),
            board,
            chipset,
            no_reboot: cfg.no_reboot,
            boot: None,
            resets: 0,
            engine: match cfg.engine {
                EngineKind::Interp => Box::new(Interpreter),
                EngineKind::Jit => Box::new(morph86_jit::JitEngine::new(
                    match (cfg.jit_cache_kib, cfg.jit_cache_mb) {
                        (0, 0) => morph86_jit::DEFAULT_CACHE_BYTES,
                        (0, mb) => mb as usize * 1024 * 1024,
                        (kib, _) => kib as usize * 1024,
                    },
                )),
            },
            batch,
            devices_touched: true,
            irq_pending: false,
            deadline: None,
            stale: true,
            a20: true,
            serial_watch: None,
            stop: Default::default(),
            interrupt_counts: Box::new([0; 256]),
            host_link: None,
        };
        m.reset_platform();
        Ok(m)
    }

    /// A flag that ends [`Machine::run`] with [`RunExit::Stopped`] when set
    /// (from another thread, e.g. the console's Ctrl-A x).
    pub fn stop_handle(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        self.stop.clone()
    }

    /// Uses `stop` as the flag of [`Machine::stop_handle`].
    pub fn set_stop_handle(&mut self, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) {
        self.stop = stop;
    }

    /// Ends [`Machine::run`] with [`RunExit::SerialMatch`] once COM1's
    /// output matches `pattern`.
    pub fn watch_serial(&mut self, pattern: regex::Regex) {
        let buf = SharedBuffer::new();
        self.serial().backend_mut().tap = Some(buf.clone());
        self.serial_watch = Some((buf, pattern, 0));
    }

    /// Loads a Multiboot kernel, with the firmware tables (ACPI, MP, SMBIOS)
    /// a Linux boot gets and a memory map that reserves them, and sets the
    /// CPU to its entry state (see [`BootInfo`]). The kernel is kept so
    /// that a reset can boot it again.
    pub fn boot_multiboot(
        &mut self,
        kernel: Vec<u8>,
        cmdline: &str,
        modules: Vec<Module>,
    ) -> Result<BootInfo, MachineError> {
        self.boot = Some(BootSource::Multiboot {
            kernel,
            cmdline: cmdline.to_string(),
            modules,
        });
        self.enter_boot()?
            .ok_or_else(|| MultibootError::NoHeader.into())
    }

    /// Loads a Linux bzImage (and initrd) with firmware tables (E820, ACPI,
    /// MP) and sets the CPU to the 32-bit boot protocol entry state.
    pub fn boot_linux(
        &mut self,
        kernel: Vec<u8>,
        initrd: Option<Vec<u8>>,
        cmdline: &str,
    ) -> Result<(), MachineError> {
        self.boot = Some(BootSource::Linux {
            kernel,
            initrd,
            cmdline: cmdline.to_string(),
        });
        self.enter_boot().map(|_| ())
    }

    /// Boots through firmware from the reset vector, as a PC powers on:
    /// `bios` (an image of 64 KiB to 256 KiB, mapped so that it ends at
    /// 1 MiB and at 4 GiB) or, without one, morph86's own BIOS; the VGA
    /// BIOS at 0xC0000; the boot order in CMOS 0x3D/0x38 as QEMU keeps it.
    /// The CPU starts at F000:FFF0 and every reset goes through POST again.
    pub fn boot_bios(
        &mut self,
        bios: Option<Vec<u8>>,
        order: &[crate::bios::BootDevice],
    ) -> Result<(), MachineError> {
        let image = match bios {
            Some(b) => {
                crate::bios::check_bios_image(&b)?;
                b
            }
            None => crate::bios::morph86_bios(),
        };
        self.board.upper.set_bios(Some(image));
        self.board
            .upper
            .add_rom(0xC_0000, crate::bios::morph86_vga_bios());
        let (first, third) = crate::bios::cmos_boot_order(order);
        self.chipset.set_cmos(&mut self.board, 0x3D, first);
        let old = self.chipset.cmos(&self.board, 0x38);
        self.chipset
            .set_cmos(&mut self.board, 0x38, (old & 0x0F) | third);
        self.boot = Some(BootSource::Bios);
        self.enter_boot().map(|_| ())
    }

    /// Maps an option ROM (an ISA card's, or a test's) at `base` in
    /// 0xC8000-0xDFFFF, where the BIOS's scan finds it.
    pub fn map_option_rom(&mut self, base: u32, rom: Vec<u8>) -> Result<(), MachineError> {
        crate::bios::check_option_rom(base, rom.len())?;
        self.board.upper.add_rom(base, rom);
        Ok(())
    }

    /// (Re)loads the boot source and enters it; Multiboot returns its info.
    fn enter_boot(&mut self) -> Result<Option<BootInfo>, MachineError> {
        self.reset_platform();
        match &self.boot {
            None => Err(MultibootError::NoHeader.into()),
            Some(BootSource::Bios) => Ok(None),
            Some(BootSource::Multiboot {
                kernel,
                cmdline,
                modules,
            }) => {
                let bytes = self.board.ram.bytes_mut();
                let board = crate::firmware::BoardDescription {
                    pm_io_base: ACPI_PM_BASE,
                };
                let tables = crate::firmware::write_tables(bytes, &board)?;
                let info = multiboot::load_with_map(bytes, kernel, cmdline, modules, &tables.e820)?;
                let s = &mut self.cpu.state;
                s.set_flat32(true);
                s.eflags = 0x2;
                s.regs[0] = multiboot::BOOTLOADER_MAGIC;
                s.regs[3] = info.info_addr;
                s.eip = info.entry;
                Ok(Some(info))
            }
            Some(BootSource::Linux {
                kernel,
                initrd,
                cmdline,
            }) => {
                let bytes = self.board.ram.bytes_mut();
                let board = crate::firmware::BoardDescription {
                    pm_io_base: ACPI_PM_BASE,
                };
                let tables = crate::firmware::write_tables(bytes, &board)?;
                let layout = crate::linux::LinuxLayout::with_acpi(&tables.acpi);
                let entry =
                    crate::linux::load_linux(bytes, kernel, initrd.as_deref(), cmdline, &layout)?;
                if self.board.video.is_some() {
                    crate::video::write_screen_info(bytes, layout.zero_page_addr);
                }
                crate::linux::apply_entry(&mut self.cpu.state, &entry);
                Ok(None)
            }
        }
    }

    /// Returns the CPU and every device to the reset state (time goes on).
    fn reset_platform(&mut self) {
        let icount = self.cpu.icount;
        let tsc = self.cpu.state.tsc;
        self.cpu = Cpu::new(CpuModel::P6);
        self.cpu.apic_present = true;
        // Instructions and the TSC keep counting across resets, so virtual time stays monotonic.
        self.cpu.icount = icount;
        self.cpu.state.tsc = tsc;
        if matches!(self.boot, Some(BootSource::Bios)) {
            // Firmware programs the chipset itself.
            self.chipset.power_on(&mut self.board);
        } else {
            self.chipset.reset(&mut self.board);
        }
        self.devices_touched = true;
        self.stale = true;
        self.a20 = true;
        self.cpu.a20_mask = u32::MAX;
    }

    /// How many times the machine was reset.
    pub fn resets(&self) -> u32 {
        self.resets
    }

    /// The 8042 keyboard controller.
    pub(crate) fn chipset_i8042(&mut self) -> &mut morph86_devices::I8042Device {
        self.chipset.i8042(&mut self.board)
    }

    /// COM1.
    pub fn serial(&mut self) -> &mut Uart16550 {
        self.chipset.serial(&mut self.board)
    }

    /// The exit device, if one is fitted.
    pub fn exit_device(&self) -> Option<&DebugExit> {
        self.chipset.exit_device(&self.board)
    }

    /// Flushes device output (serial, debug console) and makes disk image
    /// writes durable. Call it when a run ends, however it ended (dropping
    /// the machine flushes the images too).
    pub fn flush(&mut self) {
        self.chipset.flush(&mut self.board);
    }

    /// The current time (see [`crate::clock`]).
    pub fn now(&mut self) -> u64 {
        self.board.clock.icount = self.cpu.icount;
        self.board.clock.now()
    }

    /// The earliest device deadline (cached: deadlines change only when a
    /// device is accessed or advanced).
    fn next_deadline(&mut self) -> Option<u64> {
        if self.stale {
            self.refresh();
        }
        self.deadline
    }

    /// Looks at the devices again after something may have changed them.
    fn refresh(&mut self) {
        self.deadline = self.board.io.next_deadline();
        self.irq_pending = self.chipset.interrupt_pending(&self.board);
        self.stale = false;
    }

    /// Brings devices whose deadline has come up to now, hands what changed
    /// on the wires to the interrupt controllers, and applies the system
    /// signals (A20, reset, power-off, exit). Returns the stop condition a
    /// device raised.
    pub(crate) fn service_devices(&mut self) -> Option<RunExit> {
        self.stale = true;
        let now = self.board.clock.now();
        self.board.time.set(now);
        self.board.io.advance(now);
        let apic_en = self.cpu.state.apic_base & (1 << 11) != 0;
        let signals = self.chipset.route(&mut self.board, apic_en);
        let a20 = self.board.wires.a20();
        if a20 != self.a20 {
            self.a20 = a20;
            self.cpu.a20_mask = if a20 { u32::MAX } else { !(1 << 20) };
            self.cpu.flush_tlb();
            self.cpu.flush_decode_cache();
        }
        if signals.memory_map {
            // Belt and braces: the ROM area's pages also change generation.
            self.cpu.flush_tlb();
            self.cpu.flush_decode_cache();
        }
        if signals.reset {
            return Some(RunExit::Reset);
        }
        if signals.poweroff {
            return Some(RunExit::PowerOff);
        }
        signals.exit.map(RunExit::ExitDevice)
    }

    /// Delivers a pending interrupt if the CPU accepts one; returns the
    /// outcome when something was delivered.
    fn deliver_interrupt(&mut self) -> Option<StepOutcome> {
        if self.stale {
            if self.chipset.take_nmi(&mut self.board) {
                return Some(self.cpu.inject_interrupt(&mut self.board, 2));
            }
            self.refresh();
        }
        if !self.irq_pending || !self.cpu.interrupts_enabled() {
            return None;
        }
        self.stale = true;
        let vector = self.chipset.acknowledge(&mut self.board)?;
        self.interrupt_counts[usize::from(vector)] += 1;
        Some(self.cpu.inject_interrupt(&mut self.board, vector))
    }

    /// External interrupts delivered since power-on, by vector (a debugging
    /// and profiling aid).
    pub fn interrupt_counts(&self) -> &[u64; 256] {
        &self.interrupt_counts
    }

    /// Handles a guest reset or triple fault: ends the run under
    /// `no_reboot`, otherwise boots again.
    fn guest_reset(&mut self, why: RunExit) -> Option<RunExit> {
        if self.no_reboot || self.boot.is_none() {
            return Some(why);
        }
        tracing::warn!("{why}: resetting");
        self.resets += 1;
        if self.enter_boot().is_err() {
            return Some(why);
        }
        None
    }

    /// A triple fault at the current CS:EIP: the run ends under `no_reboot`,
    /// otherwise the machine resets.
    fn triple_fault(&mut self, fault: Fault) -> Option<RunExit> {
        let s = &self.cpu.state;
        let why = RunExit::TripleFault {
            fault,
            cs: s.seg(SegReg::Cs).selector,
            eip: s.eip,
        };
        self.guest_reset(why)
    }

    /// Runs until a stop condition (see [`RunExit`]).
    pub fn run(&mut self, limits: RunLimits) -> RunExit {
        let start = Instant::now();
        loop {
            self.board.clock.icount = self.cpu.icount;
            let icount = self.cpu.icount;
            if limits.max_insns.is_some_and(|n| icount >= n) {
                return RunExit::InstructionLimit;
            }
            if icount.is_multiple_of(CHECK_INTERVAL) || self.cpu.state.halted {
                if let Some(exit) = self.host_checks(&limits, start) {
                    return exit;
                }
            }
            if self.devices_touched || self.deadline_reached() {
                self.devices_touched = false;
                if let Some(exit) = self.service_devices() {
                    match exit {
                        RunExit::Reset => match self.guest_reset(RunExit::Reset) {
                            Some(e) => return e,
                            None => continue,
                        },
                        e => return e,
                    }
                }
            }
            if let Some(outcome) = self.deliver_interrupt() {
                if let StepOutcome::TripleFault(fault) = outcome {
                    if let Some(e) = self.triple_fault(fault) {
                        return e;
                    }
                }
                continue;
            }
            if self.cpu.state.halted {
                let interruptible = self.cpu.state.eflags & (1 << 9) != 0;
                match self.next_deadline() {
                    Some(d) if interruptible => {
                        self.idle_until(d, limits.timeout.map(|t| start + t));
                        continue;
                    }
                    _ if interruptible
                        && (self.serial_watch.is_some() || self.host_link.is_some()) =>
                    {
                        // Only input can wake the CPU now; wait for it in host time.
                        std::thread::sleep(Duration::from_millis(1));
                        continue;
                    }
                    _ => {
                        let s = &self.cpu.state;
                        return RunExit::Halted {
                            cs: s.seg(SegReg::Cs).selector,
                            eip: s.eip,
                            interrupts_enabled: interruptible,
                        };
                    }
                }
            }
            let budget = self.budget(&limits);
            let req = RunRequest {
                budget,
                interrupt_pending: self.irq_pending,
            };
            let exit = self.engine.run(&mut self.cpu, &mut self.board, req);
            self.board.clock.icount = self.cpu.icount;
            match exit {
                EngineExit::Device => {
                    self.devices_touched = true;
                    self.stale = true;
                }
                EngineExit::Shutdown(fault) => {
                    if let Some(e) = self.triple_fault(fault) {
                        return e;
                    }
                }
                EngineExit::Budget | EngineExit::Halted | EngineExit::InterruptWindow => {}
            }
        }
    }

    /// Instructions the engine may run now: up to the next device deadline,
    /// the caller's limit, the next host check point and the batch size.
    fn budget(&mut self, limits: &RunLimits) -> u64 {
        let icount = self.cpu.icount;
        let to_check = CHECK_INTERVAL - icount % CHECK_INTERVAL;
        let mut budget = self.batch.min(to_check);
        if let Some(d) = self.next_deadline() {
            let now = self.board.clock.now();
            budget = budget.min(d.saturating_sub(now).max(1));
        }
        if let Some(n) = limits.max_insns {
            budget = budget.min(n - icount);
        }
        budget.max(1)
    }

    /// The checks that involve the host: the wall-clock timeout, the stop
    /// flag, serial input and the serial watch.
    fn host_checks(&mut self, limits: &RunLimits, start: Instant) -> Option<RunExit> {
        if tracing::enabled!(target: "morph86::sample", tracing::Level::DEBUG) {
            let deadline = self.next_deadline();
            let s = &self.cpu.state;
            tracing::debug!(
                target: "morph86::sample",
                "t={}ns {:04x}:{:08x} halted={} if={} deadline={:?}",
                self.board.clock.now(),
                s.seg(SegReg::Cs).selector,
                s.eip,
                s.halted,
                s.eflags >> 9 & 1,
                deadline
            );
        }
        if limits.timeout.is_some_and(|t| start.elapsed() >= t) {
            return Some(RunExit::Timeout);
        }
        if self.stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Some(RunExit::Stopped);
        }
        if let Some(exit) = self.run_host_link() {
            return Some(exit);
        }
        self.board.time.set(self.board.clock.now());
        if self.serial().receive() {
            self.devices_touched = true;
            self.stale = true;
        }
        if let Some((buf, re, seen)) = &mut self.serial_watch {
            // The log is copied and searched only when it grew.
            if buf.len() != *seen {
                let text = buf.contents();
                *seen = text.len();
                if re.is_match(&String::from_utf8_lossy(&text)) {
                    return Some(RunExit::SerialMatch);
                }
            }
        }
        self.display_checks()
    }

    /// The front end's turn at a host check point.
    fn run_host_link(&mut self) -> Option<RunExit> {
        let mut link = self.host_link.take()?;
        let exit = link.check(self);
        self.host_link = Some(link);
        exit
    }

    /// Installs `link`, called at every host check point (see
    /// [`crate::host::HostLink`]); `None` removes it.
    pub fn set_host_link(&mut self, link: Option<Box<dyn crate::host::HostLink>>) {
        self.host_link = link;
    }

    /// Host input reached a device: the run loop looks at the devices
    /// again before the next instruction.
    pub(crate) fn devices_changed(&mut self) {
        self.devices_touched = true;
        self.stale = true;
    }

    /// True when the earliest device deadline has come.
    fn deadline_reached(&mut self) -> bool {
        let now = self.board.clock.now();
        self.next_deadline().is_some_and(|d| d <= now)
    }

    /// Lets time pass while the CPU is halted, up to `deadline`.
    fn idle_until(&mut self, deadline: u64, wall_limit: Option<Instant>) {
        let now = self.board.clock.now();
        match self.board.clock.mode {
            ClockMode::Virtual => {
                let skip = deadline.saturating_sub(now).max(1);
                self.board.clock.skipped_ns += skip;
                // The TSC counts virtual time, halted or not.
                self.cpu.state.tsc = self.cpu.state.tsc.wrapping_add(skip);
            }
            ClockMode::Host => {
                let wait = Duration::from_nanos(deadline.saturating_sub(now))
                    .min(Duration::from_millis(10));
                let wait = match wall_limit {
                    Some(l) => wait.min(l.saturating_duration_since(Instant::now())),
                    None => wait,
                };
                std::thread::sleep(wait);
            }
        }
    }

    /// Writes an event log of this machine's run to `log` (see
    /// [`crate::event_log`]).
    pub fn set_event_log(&mut self, log: EventLog) {
        self.board.log = Some(log);
    }

    /// Flushes the event log, if one is kept, and reports a write error.
    pub fn finish_event_log(&mut self) -> std::io::Result<()> {
        match &mut self.board.log {
            Some(log) => log.finish(),
            None => Ok(()),
        }
    }

    /// The name of the engine running guest code.
    pub fn engine_name(&self) -> &'static str {
        self.engine.name()
    }

    /// The engine's account of its work (`--stats`).
    pub fn engine_report(&self) -> String {
        self.engine.report()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use morph86_devices::SharedBuffer;

    use crate::multiboot::test_kernel as kernel;

    fn machine(serial: SharedBuffer, no_reboot: bool) -> Machine {
        Machine::new(MachineConfig {
            memory_mib: 4,
            serial: SerialBackend::buffer(serial, None),
            debugcon: None,
            no_reboot,
            exit_port: Some(EXIT_PORT),
            ..Default::default()
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
    fn without_an_exit_port_the_write_goes_nowhere() {
        let mut m = Machine::new(MachineConfig {
            memory_mib: 4,
            no_reboot: true,
            ..Default::default()
        })
        .unwrap();
        assert!(m.exit_device().is_none());
        // out 0xf4,al; hlt with interrupts off.
        m.boot_multiboot(kernel(&[0xFA, 0xB0, 0x10, 0xE6, 0xF4, 0xF4]), "", vec![])
            .unwrap();
        let r = m.run(RunLimits {
            max_insns: Some(1000),
            timeout: None,
        });
        assert!(matches!(r, RunExit::Halted { .. }), "{r}");
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

#[cfg(test)]
mod robustness_tests {
    use super::*;
    use morph86_cpu::Bus;

    /// A guest that writes random values of every size to every I/O port
    /// (and reads them back) must never panic the host: devices take any
    /// value, and the machine keeps running and servicing them.
    #[test]
    fn random_port_io_never_panics() {
        let mut m = Machine::new(MachineConfig {
            memory_mib: 4,
            no_reboot: true,
            ..Default::default()
        })
        .expect("machine");
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..2 {
            for port in 0..=0xFFFFu16 {
                let r = next();
                let size = [1u8, 2, 4][(r % 3) as usize];
                m.board.io_write(port, size, (r >> 8) as u32);
                let _ = m.board.io_read(port, size);
                if port % 4096 == 0 {
                    // Let the devices react (interrupt routing, resets, A20).
                    m.board.clock.skipped_ns += u64::from(port) * 1000 + round;
                    let _ = m.service_devices();
                    let _ = m.deliver_interrupt();
                }
            }
        }
        // Random MMIO to the APICs too.
        for _ in 0..20_000 {
            let r = next();
            let base = if r & 1 == 0 {
                0xFEE0_0000u32
            } else {
                0xFEC0_0000
            };
            let a = base + ((r >> 8) as u32 & 0xFFC);
            m.board.write_u32(a, (r >> 32) as u32);
            let _ = m.board.read_u32(a);
        }
        m.board.clock.skipped_ns += 1_000_000_000;
        let _ = m.service_devices();
    }

    /// Config-space write through mechanism #1 (bus 0).
    fn pci_write(m: &mut Machine, dev: u8, func: u8, reg: u8, size: u8, v: u32) {
        let addr =
            0x8000_0000 | u32::from(dev) << 11 | u32::from(func) << 8 | u32::from(reg & 0xFC);
        m.board.io_write(0xCF8, 4, addr);
        m.board.io_write(0xCFC + u16::from(reg & 3), size, v);
    }

    /// The guest moves the PIIX4 PM block: its registers follow the new
    /// base and the old window reads as open bus; turning decoding off
    /// unmaps it.
    #[test]
    fn the_pm_block_follows_its_base_register() {
        let mut m = Machine::new(MachineConfig {
            memory_mib: 4,
            no_reboot: true,
            ..Default::default()
        })
        .expect("machine");
        let _ = m.service_devices();
        assert_ne!(
            m.board.io_read(ACPI_PM_BASE + 8, 4),
            0xFFFF_FFFF,
            "PM timer at 0xb008"
        );
        pci_write(&mut m, 1, 3, 0x40, 4, 0x6001);
        let _ = m.service_devices();
        assert_eq!(m.board.io_read(ACPI_PM_BASE + 8, 4), 0xFFFF_FFFF);
        assert_ne!(
            m.board.io_read(0x6008, 4),
            0xFFFF_FFFF,
            "PM timer at 0x6008"
        );
        pci_write(&mut m, 1, 3, 0x80, 1, 0);
        let _ = m.service_devices();
        assert_eq!(m.board.io_read(0x6008, 4), 0xFFFF_FFFF, "decoding off");
        pci_write(&mut m, 1, 3, 0x80, 1, 1);
        let _ = m.service_devices();
        assert_ne!(m.board.io_read(0x6008, 4), 0xFFFF_FFFF);
    }

    /// Seeded random BAR moves (onto other devices' ports too), with random
    /// traffic to wherever the windows went and to the APICs' pages, never
    /// panic.
    #[test]
    fn random_bar_moves_with_traffic_never_panic() {
        let mut m = Machine::new(MachineConfig {
            memory_mib: 4,
            no_reboot: true,
            ..Default::default()
        })
        .expect("machine");
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..2000 {
            let r = next();
            let base = (r >> 16) as u32 & 0xFFC0;
            match r % 4 {
                0 => pci_write(&mut m, 1, 3, 0x40, 4, base | 1),
                1 => pci_write(&mut m, 1, 3, 0x80, 1, (r >> 40) as u32 & 1),
                2 => pci_write(&mut m, 1, 1, 0x20, 4, base | 1),
                _ => pci_write(&mut m, 1, 1, 0x04, 2, (r >> 40) as u32 & 0xFFFF),
            }
            let _ = m.service_devices();
            for k in 0..16u16 {
                let r = next();
                let size = [1u8, 2, 4][(r % 3) as usize];
                let port = (base as u16).wrapping_add(k * 4 + (r >> 60) as u16);
                m.board.io_write(port, size, (r >> 8) as u32);
                let _ = m.board.io_read(port, size);
            }
            let a = [0xFEE0_0000u32, 0xFEC0_0000][(r >> 63) as usize] + ((r >> 20) as u32 & 0xFFF);
            m.board.write_u8(a, r as u8);
            let _ = m.board.read_u16(a);
            let _ = m.service_devices();
            let _ = m.deliver_interrupt();
        }
    }
}
