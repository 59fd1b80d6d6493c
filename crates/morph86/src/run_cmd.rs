//! `morph86 run --kernel FILE ...`: boot a Multiboot kernel or a Linux
//! bzImage on the PC board; `morph86 run --boot ORDER` or `--bios FILE`:
//! power it on through firmware (morph86's BIOS, or the given image).
//!
//! Exit statuses are those of `morph86_machine::RunExit::status`: the
//! guest's exit-device status `(v << 1) | 1`, 124 on `--timeout`, 0 when the
//! run stops at `--stop-at`, at a final HLT or at a triple fault under
//! `--no-reboot`, 3 for an exception the CPU cannot deliver yet; 2 for
//! errors of the emulator itself (options, an unloadable kernel).

use anyhow::{bail, Context, Result};
use clap::Args;
use morph86_devices::{ImageSpec, RtcDateTime};
use morph86_devices::{OutputSink, SerialBackend};
use morph86_machine::bios::{BootDevice, DEFAULT_BOOT_ORDER};
use morph86_machine::{
    ClockMode, Drives, EngineKind, EventLog, Machine, MachineConfig, RunLimits, VgaModel,
};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Options of `morph86 run`.
#[derive(Args, Debug, Default)]
pub struct RunArgs {
    /// A Linux bzImage or a Multiboot v1 kernel (ELF32 or a.out kludge).
    /// With no kernel, firmware, boot order or drive, `run` boots the
    /// built-in demo disk through the BIOS.
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// An initial ramdisk for a Linux kernel; for a Multiboot kernel, its
    /// modules as QEMU takes them: "file1 args,file2 args" (",," for a comma).
    #[arg(long)]
    pub initrd: Option<PathBuf>,
    /// The kernel's command line.
    #[arg(long, default_value = "")]
    pub append: String,
    /// Power on through this system ROM image instead of morph86's own
    /// BIOS (64 KiB to 256 KiB, a multiple of 64 KiB; mapped to end at
    /// 1 MiB and at 4 GiB). Not with --kernel.
    #[arg(long, value_name = "FILE")]
    pub bios: Option<PathBuf>,
    /// Power on through the BIOS (no --kernel) and boot from these devices
    /// in turn: a (floppy), c (hard disk), d (CD-ROM), e.g. `--boot cd`.
    /// Default with --bios: c, a, d.
    #[arg(long, value_name = "ORDER", value_parser = parse_boot)]
    pub boot: Option<BootOrder>,
    /// RAM in MiB (2 to 3072).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(2..=3072))]
    pub memory: u32,
    /// COM1: stdio, file:PATH or none.
    #[arg(long, default_value = "stdio", value_parser = parse_serial)]
    pub serial: Backend,
    /// Debug console on port 0xE9: stdio or file:PATH (absent by default).
    #[arg(long, value_parser = parse_debugcon)]
    pub debugcon: Option<Backend>,
    /// Fit a QEMU-compatible exit device (`isa-debug-exit`) at this port
    /// (0xf4 when no port is given): a guest write of v ends the run with
    /// status (v << 1) | 1.
    #[arg(long, num_args = 0..=1, default_missing_value = "0xf4", value_parser = parse_port)]
    pub exit_port: Option<u16>,
    /// End the run at a triple fault (with status 0) instead of resetting.
    #[arg(long)]
    pub no_reboot: bool,
    /// Leave out QEMU's firmware configuration device (fw_cfg, ports
    /// 0x510-0x51b), which is fitted by default as in QEMU.
    #[arg(long)]
    pub no_fw_cfg: bool,
    /// Stop after this many seconds of wall-clock time (exit status 124).
    #[arg(long)]
    pub timeout: Option<f64>,
    /// Stop condition: insns:N stops after N instructions (exit status 0).
    #[arg(long, value_parser = parse_stop_at)]
    pub stop_at: Option<u64>,
    /// End the run (exit status 0) as soon as COM1's output matches this regular expression.
    #[arg(long)]
    pub exit_on_serial: Option<String>,
    /// Time source: virtual (one nanosecond per instruction, deterministic) or host.
    #[arg(long, default_value = "virtual", value_parser = parse_clock)]
    pub clock: ClockMode,
    /// The RTC's date at power-on: YYYY-MM-DD[THH:MM:SS] or @SECONDS (UTC).
    /// Default: 2024-01-01 under the virtual clock, the host's date under
    /// the host clock.
    #[arg(long)]
    pub rtc_base: Option<RtcDateTime>,
    /// The engine that runs guest code: interp (the reference interpreter)
    /// or jit (the binary translator, first stage).
    #[arg(long, default_value = "interp")]
    pub engine: EngineKind,
    /// Write every interrupt, exception and device access, with its
    /// instruction count, to FILE (compare two runs with diff).
    #[arg(long, value_name = "FILE")]
    pub event_log: Option<PathBuf>,
    /// The most instructions an engine runs per call (1..=65536). Runs are
    /// the same for every value; small values check that.
    #[arg(long, default_value_t = 65536, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub batch: u64,
    /// The JIT's code cache in MiB; when full it is emptied whole.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub jit_cache_mb: u32,
    /// Print the engine's figures at the end of the run (for the JIT: the
    /// share of translated instructions, blocks, invalidations, cache size,
    /// translation time, interpreter fallbacks by mnemonic).
    #[arg(long, short = 'v', alias = "stats")]
    pub verbose: bool,
    /// Primary master hard disk: a raw image, FILE[,ro|,snapshot]
    /// (snapshot: the guest's writes are kept in memory and discarded).
    #[arg(long, value_name = "FILE[,ro|,snapshot]")]
    pub hda: Option<ImageSpec>,
    /// Primary slave hard disk: FILE[,ro|,snapshot].
    #[arg(long, value_name = "FILE[,ro|,snapshot]")]
    pub hdb: Option<ImageSpec>,
    /// CD-ROM (secondary master): an ISO image, always read-only.
    #[arg(long, value_name = "FILE")]
    pub cdrom: Option<ImageSpec>,
    /// First floppy drive: a 160K..2.88M image, FILE[,ro|,snapshot].
    #[arg(long, value_name = "FILE[,ro|,snapshot]")]
    pub fda: Option<ImageSpec>,
    /// Second floppy drive: FILE[,ro|,snapshot].
    #[arg(long, value_name = "FILE[,ro|,snapshot]")]
    pub fdb: Option<ImageSpec>,
    /// The display adapter: std (a VGA with Bochs VBE, PCI 1234:1111, as
    /// QEMU's -vga std) or none.
    #[arg(long, default_value = "std")]
    pub vga: VgaModel,
    /// Save the screen as a PNG file at the end of the run (or at
    /// --screenshot-at).
    #[arg(long, value_name = "PATH")]
    pub screenshot: Option<PathBuf>,
    /// Take the --screenshot after this many seconds of virtual time (at
    /// the first host check point after it) instead of at the end.
    #[arg(long, value_name = "SECONDS", requires = "screenshot")]
    pub screenshot_at: Option<f64>,
    /// Write the text screen (code page 437 as UTF-8, one line per row) to
    /// PATH at the end of the run.
    #[arg(long, value_name = "PATH")]
    pub screen_text: Option<PathBuf>,
    /// End the run (exit status 0) once the text screen matches this
    /// regular expression (checked at the host check points, every 65536
    /// instructions).
    #[arg(long, value_name = "REGEX")]
    pub exit_on_screen: Option<String>,
    /// Where the screen is shown: window (a desktop window; keys and mouse
    /// go to the guest) or none. Default: a window when a display exists
    /// (DISPLAY or WAYLAND_DISPLAY is set), else none.
    #[arg(long, value_name = "window|none")]
    pub display: Option<crate::display::DisplayMode>,
}

/// A boot order (`--boot`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootOrder(pub Vec<BootDevice>);

fn parse_boot(s: &str) -> Result<BootOrder, String> {
    morph86_machine::bios::parse_boot_order(s)
        .map(BootOrder)
        .map_err(|e| e.to_string())
}

fn parse_clock(s: &str) -> Result<ClockMode, String> {
    match s {
        "virtual" => Ok(ClockMode::Virtual),
        "host" => Ok(ClockMode::Host),
        _ => Err("expected virtual or host".into()),
    }
}

/// A character device back end named on the command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// Standard output (and, for the serial port, standard input).
    #[default]
    Stdio,
    /// A file, created or truncated.
    File(PathBuf),
    /// A TCP listener (serial only): `tcp:HOST:PORT`.
    Tcp(String),
    /// Nothing.
    None,
}

fn parse_backend(s: &str, allow_none: bool) -> Result<Backend, String> {
    match s {
        "stdio" => Ok(Backend::Stdio),
        "none" if allow_none => Ok(Backend::None),
        _ if allow_none && s.starts_with("tcp:") && s.len() > 4 => {
            Ok(Backend::Tcp(s[4..].to_string()))
        }
        _ => match s.strip_prefix("file:") {
            Some(p) if !p.is_empty() => Ok(Backend::File(PathBuf::from(p))),
            _ => Err(format!(
                "expected stdio, file:PATH{}",
                if allow_none { " or none" } else { "" }
            )),
        },
    }
}

fn parse_serial(s: &str) -> Result<Backend, String> {
    parse_backend(s, true)
}

fn parse_debugcon(s: &str) -> Result<Backend, String> {
    parse_backend(s, false)
}

fn parse_port(s: &str) -> Result<u16, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u16::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("bad port {s:?}: {e}"))
}

fn parse_stop_at(s: &str) -> Result<u64, String> {
    let n = s
        .strip_prefix("insns:")
        .ok_or_else(|| "expected insns:N".to_string())?;
    n.replace('_', "")
        .parse()
        .map_err(|e| format!("bad instruction count {n:?}: {e}"))
}

/// True when a kernel or a firmware boot was asked for (otherwise `run`
/// runs the built-in demo).
pub fn wants_kernel(a: &RunArgs) -> bool {
    let drives = [&a.hda, &a.hdb, &a.cdrom, &a.fda, &a.fdb];
    a.kernel.is_some() || a.bios.is_some() || a.boot.is_some() || drives.iter().any(|d| d.is_some())
}

/// Runs `morph86 run --kernel ...` or a firmware boot (`--boot`, `--bios`).
pub fn run(a: RunArgs) -> Result<ExitCode> {
    run_with(a, false)
}

/// Runs the built-in demo disk through the BIOS with the other options of
/// `a` (memory, engine, clock, screen options ...) honoured, and prints
/// the text screen at the end.
pub fn run_demo(mut a: RunArgs) -> Result<ExitCode> {
    let _disk = crate::demo::DemoDisk::attach(&mut a)?;
    run_with(a, true)
}

/// A run; `summary`: print the text screen at the end (the demo).
fn run_with(a: RunArgs, summary: bool) -> Result<ExitCode> {
    let kernel = match &a.kernel {
        Some(path) => {
            if a.bios.is_some() || a.boot.is_some() {
                bail!("--kernel loads the kernel directly; it cannot be combined with --bios or --boot");
            }
            Some((
                path,
                std::fs::read(path)
                    .with_context(|| format!("reading kernel {}", path.display()))?,
            ))
        }
        None => {
            if a.initrd.is_some() || !a.append.is_empty() {
                bail!("--initrd and --append need --kernel");
            }
            None
        }
    };
    let bios = match &a.bios {
        Some(p) => {
            let image =
                std::fs::read(p).with_context(|| format!("reading BIOS image {}", p.display()))?;
            morph86_machine::bios::check_bios_image(&image)
                .with_context(|| format!("--bios {}", p.display()))?;
            Some(image)
        }
        None => None,
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut raw = None;
    let serial = match &a.serial {
        Backend::Stdio => {
            raw = Some(crate::console::RawTerminal::enter());
            SerialBackend::stdio(Some(crate::console::stdin_with_escape(stop.clone())))
        }
        Backend::File(p) => SerialBackend::file(p)
            .with_context(|| format!("opening serial output {}", p.display()))?,
        Backend::Tcp(addr) => crate::console::tcp_backend(addr)
            .with_context(|| format!("listening for the serial console on {addr}"))?,
        Backend::None => SerialBackend::none(),
    };
    let debugcon = match &a.debugcon {
        None | Some(Backend::None) => None,
        Some(Backend::Stdio) => Some(OutputSink::Stdout),
        Some(Backend::File(p)) => Some(
            OutputSink::file(p)
                .with_context(|| format!("opening debugcon output {}", p.display()))?,
        ),
        Some(Backend::Tcp(_)) => bail!("--debugcon takes stdio or file:PATH"),
    };
    let timeout = match a.timeout {
        Some(t) if !(t > 0.0 && t.is_finite()) => bail!("--timeout must be a positive number"),
        Some(t) => Some(Duration::from_secs_f64(t)),
        None => None,
    };
    let watch = match &a.exit_on_serial {
        Some(p) => Some(regex::Regex::new(p).with_context(|| format!("--exit-on-serial {p:?}"))?),
        None => None,
    };
    let screen = crate::screen::ScreenOptions::check(&a)?;
    let drives = Drives {
        hda: a.hda.clone(),
        hdb: a.hdb.clone(),
        cdrom: a.cdrom.clone(),
        fda: a.fda.clone(),
        fdb: a.fdb.clone(),
    };
    let display = crate::display::choose(a.display, a.vga)?;
    let mut m = Machine::new(MachineConfig {
        memory_mib: a.memory,
        serial,
        debugcon,
        no_reboot: a.no_reboot,
        clock: a.clock,
        exit_port: a.exit_port,
        engine: a.engine,
        batch: a.batch,
        rtc_base: a.rtc_base,
        no_fw_cfg: a.no_fw_cfg,
        jit_cache_mb: a.jit_cache_mb,
        jit_cache_kib: 0,
        vga: a.vga,
        drives,
    })?;
    screen.arm(&mut m);
    if let Some(p) = &a.event_log {
        let log =
            EventLog::create(p).with_context(|| format!("creating event log {}", p.display()))?;
        m.set_event_log(log);
    }
    m.set_stop_handle(stop);
    if let Some(re) = watch {
        m.watch_serial(re);
    }
    let ending = Ending {
        limits: RunLimits {
            max_insns: a.stop_at,
            timeout,
        },
        raw,
        screen,
        summary,
        verbose: a.verbose,
        display,
    };
    let Some((path, kernel)) = kernel else {
        let order = a.boot.as_ref().map_or(&DEFAULT_BOOT_ORDER[..], |b| &b.0);
        m.boot_bios(bios, order)
            .context("powering on through the BIOS")?;
        return finish(m, ending, "morph86".to_string());
    };
    if morph86_machine::linux::is_bzimage(&kernel) {
        let initrd = match &a.initrd {
            Some(p) => {
                Some(std::fs::read(p).with_context(|| format!("reading initrd {}", p.display()))?)
            }
            None => None,
        };
        m.boot_linux(kernel, initrd, &a.append)
            .with_context(|| format!("loading {}", path.display()))?;
    } else {
        let (cmdline, modules) = multiboot_args(path, a.initrd.as_deref(), &a.append)?;
        m.boot_multiboot(kernel, &cmdline, modules)
            .with_context(|| format!("loading {}", path.display()))?;
    }
    let title = match path.file_name() {
        Some(f) => format!("morph86: {}", f.to_string_lossy()),
        None => "morph86".to_string(),
    };
    finish(m, ending, title)
}

/// How a run ends and where it is shown.
struct Ending {
    limits: RunLimits,
    /// The terminal state to give back before reporting.
    raw: Option<crate::console::RawTerminal>,
    screen: crate::screen::ScreenOptions,
    /// Print the text screen at the end (the demo).
    summary: bool,
    verbose: bool,
    /// The display chosen, and whether the user asked for it.
    display: (crate::display::DisplayMode, bool),
}

/// Runs the machine to its end, in a window titled `title` when one was
/// chosen and can be opened, and reports.
fn finish(m: Machine, e: Ending, title: String) -> Result<ExitCode> {
    let Ending {
        limits,
        raw,
        screen,
        summary,
        verbose,
        display: (display, asked),
    } = e;
    let end = move |m, notify| finish_run(m, limits, screen, raw, (verbose, summary), notify);
    if display != crate::display::DisplayMode::Window {
        return end(m, None);
    }
    match crate::display::run_windowed(m, &title, end) {
        crate::display::Windowed::Ran(r) => r,
        crate::display::Windowed::NoWindow(_, _, e) if asked => Err(e),
        crate::display::Windowed::NoWindow(m, end, e) => {
            eprintln!("morph86: {e:#}; running without a window");
            end(*m, None)
        }
    }
}

/// Runs `m` to the end of the run and does the end-of-run work: output
/// flushed, screenshot and screen text written, the event log closed, the
/// terminal given back, the report printed; `notify` (a window's) hears of
/// the end once that work is done.
fn finish_run(
    mut m: Machine,
    limits: RunLimits,
    screen: crate::screen::ScreenOptions,
    raw: Option<crate::console::RawTerminal>,
    (verbose, summary): (bool, bool),
    notify: Option<crate::display::Notify>,
) -> Result<ExitCode> {
    let start = std::time::Instant::now();
    let exit = m.run(limits);
    m.set_host_link(None);
    m.flush();
    let saved = screen.save(&mut m);
    let logged = m.finish_event_log();
    if let Some(n) = notify {
        // The window shows the screen as the run left it.
        m.update_display();
        n(&m, &exit);
    }
    let secs = start.elapsed().as_secs_f64();
    let icount = m.cpu.icount;
    let status = exit.status();
    let text = summary.then(|| m.screen_text().map(|t| t.to_string()));
    // Give the terminal back before reporting.
    drop(raw);
    match text {
        Some(Some(t)) => crate::demo::print_summary(&t),
        Some(None) => eprintln!("morph86: the demo ended outside a text mode"),
        None => {}
    }
    eprintln!("morph86: {exit}");
    if verbose {
        eprint!("{}", m.engine_report());
    }
    if let Err(e) = logged {
        eprintln!("morph86: writing the event log failed: {e}");
        return Ok(ExitCode::from(2));
    }
    if let Err(e) = saved {
        eprintln!("morph86: {e:#}");
        return Ok(ExitCode::from(2));
    }
    eprintln!(
        "morph86: {icount} instructions in {secs:.2}s, exit status {status}{}",
        if m.resets() > 0 {
            format!(", {} resets", m.resets())
        } else {
            String::new()
        }
    );
    Ok(ExitCode::from(status))
}

/// The command line and modules of a Multiboot kernel, as QEMU builds them
/// from `-kernel`, `-append` and `-initrd` (see
/// `morph86_machine::multiboot::read_modules`).
fn multiboot_args(
    kernel: &std::path::Path,
    modules: Option<&std::path::Path>,
    append: &str,
) -> Result<(String, Vec<morph86_machine::Module>)> {
    use morph86_machine::multiboot;
    let cmdline = multiboot::kernel_cmdline(&kernel.to_string_lossy(), append);
    let modules = match modules {
        None => Vec::new(),
        Some(list) => {
            let list = list
                .to_str()
                .context("--initrd: a Multiboot module list must be valid UTF-8")?;
            multiboot::read_modules(list, |p| std::fs::read(p)).context("--initrd")?
        }
    };
    Ok((cmdline, modules))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_backends_and_stop_at() {
        assert_eq!(parse_serial("stdio"), Ok(Backend::Stdio));
        assert_eq!(parse_serial("none"), Ok(Backend::None));
        assert_eq!(
            parse_serial("file:/x/y"),
            Ok(Backend::File(PathBuf::from("/x/y")))
        );
        assert!(parse_serial("file:").is_err());
        assert!(parse_debugcon("none").is_err());
        assert_eq!(parse_stop_at("insns:1_000"), Ok(1000));
        assert!(parse_stop_at("time:5").is_err());
        assert!(parse_stop_at("insns:x").is_err());
        assert_eq!(parse_port("0xf4"), Ok(0xF4));
        assert_eq!(parse_port("501"), Ok(501));
        assert!(parse_port("0x10000").is_err());
    }

    #[test]
    fn multiboot_modules_and_cmdline_as_qemu_builds_them() {
        let dir = std::env::temp_dir().join(format!("morph86-run-mods-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.bin"), dir.join("b.bin"));
        std::fs::write(&a, b"AAA").unwrap();
        std::fs::write(&b, b"B").unwrap();
        let list = format!("{} x=1,,2,{}", a.display(), b.display());
        let (cmdline, mods) = multiboot_args(
            std::path::Path::new("k.elf"),
            Some(std::path::Path::new(&list)),
            "one two",
        )
        .unwrap();
        assert_eq!(cmdline, "k.elf one two");
        assert_eq!(mods.len(), 2);
        assert_eq!(mods[0].bytes, b"AAA");
        assert_eq!(mods[0].cmdline, format!("{} x=1,2", a.display()));
        assert_eq!(mods[1].bytes, b"B");
        assert_eq!(mods[1].cmdline, b.display().to_string());
        let missing = format!("{}", dir.join("missing.bin").display());
        let e = multiboot_args(
            std::path::Path::new("k.elf"),
            Some(std::path::Path::new(&missing)),
            "",
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("missing.bin"), "{e:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn drive_options_parse_and_bad_images_are_refused_before_the_run() {
        use clap::Parser;
        use morph86_devices::ImageMode;
        let c = Cli::try_parse_from(["t", "--hda", "a.img,snapshot", "--cdrom", "c.iso"]).unwrap();
        assert_eq!(
            c.run.hda,
            Some(ImageSpec::new("a.img", ImageMode::Snapshot))
        );
        assert_eq!(
            c.run.cdrom,
            Some(ImageSpec::new("c.iso", ImageMode::ReadWrite))
        );
        assert!(Cli::try_parse_from(["t", "--hdb", "a.img,bogus"]).is_err());
        // A missing image and an empty one: errors naming the file, before
        // the kernel runs.
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("k.bin");
        std::fs::write(&kernel, [0u8; 64]).unwrap();
        let empty = dir.path().join("empty.img");
        std::fs::write(&empty, []).unwrap();
        for (img, want) in [("missing.img", "cannot open"), ("empty.img", "empty")] {
            let args = RunArgs {
                kernel: Some(kernel.clone()),
                serial: Backend::None,
                memory: 16,
                batch: 65536,
                jit_cache_mb: 16,
                hda: Some(ImageSpec::new(dir.path().join(img), ImageMode::ReadWrite)),
                ..RunArgs::default()
            };
            let e = format!("{:#}", run(args).unwrap_err());
            assert!(e.contains(img) && e.contains(want), "{e}");
        }
    }
}
