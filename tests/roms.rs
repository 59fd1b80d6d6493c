//! Runs the Multiboot system-architecture test kernels (roms/src and
//! roms/low, built by roms/build.sh) on the in-process `Machine`, with a
//! bounded instruction budget, and checks that each prints `SUMMARY: N
//! passed, 0 failed` and ends the way it should (exit device status 33;
//! `faults` with a triple fault under no-reboot).
//!
//! Each kernel is booted as QEMU's `-kernel roms/build/NAME.elf -append A
//! -initrd LIST` boots it: the command line is `"roms/build/NAME.elf A"`
//! and LIST names modules (see [`Boot`]).

use morph86_devices::{ImageMode, ImageSpec};
use morph86_devices::{SerialBackend, SharedBuffer};
use morph86_machine::multiboot;
use morph86_machine::{
    Drives, EngineKind, EventLog, Machine, MachineConfig, Module, RunExit, RunLimits, EXIT_PORT,
};

/// Instructions each kernel may run (they need well under a million;
/// `compute` with its two rounds of work 17 million).
const BUDGET: u64 = 50_000_000;

use morph86_tests::{build_roms, roms_dir};

/// What a kernel is booted with, as QEMU's `-append` and `-initrd` give it.
#[derive(Clone, Copy, Default)]
struct Boot {
    /// The text after the kernel's path on its command line.
    append: &'static str,
    /// Multiboot modules, QEMU's `-initrd` syntax, files relative to
    /// roms/build (`scripts/qemu-crosscheck.sh` passes the same).
    modules: Option<&'static str>,
    /// Attach the disk and CD images `ata` checks (made afresh for each
    /// run, and checked after it).
    disks: bool,
}

/// The arguments `modules` checks (see roms/src/modules.c).
const MODULES_BOOT: Boot = Boot {
    append: "modtest one two",
    modules: Some("module-a.txt alpha=1 list=x,,y,module-b.txt second arg"),
    disks: false,
};

/// The disk and CD `ata` is booted with (see roms/src/ata.c).
const ATA_BOOT: Boot = Boot {
    append: "",
    modules: None,
    disks: true,
};

/// Two rounds of `compute`'s benchmark work (see roms/src/compute.c),
/// whose count of primes it checks; the engines must agree on its digest.
const COMPUTE_BOOT: Boot = Boot {
    append: "rounds=2",
    modules: None,
    disks: false,
};

/// Sectors of the `ata` disk image, and of its CD image (2048 bytes each).
const ATA_DISK_SECTORS: u32 = 128;
const ATA_CD_SECTORS: u32 = 16;

/// roms/src/ata.c's disk_byte, cd_byte and new_byte.
fn disk_byte(s: u32, i: u32) -> u8 {
    (s * 37 + i + (i >> 8) * 11) as u8
}
fn cd_byte(s: u32, i: u32) -> u8 {
    (s * 13 + i * 5 + (i >> 8)) as u8
}
fn new_byte(s: u32, i: u32) -> u8 {
    (s * 5 + i * 3 + 0x5A) as u8
}

/// Writes `ata`'s images into a fresh directory.
fn ata_images() -> (tempfile::TempDir, Drives) {
    let dir = tempfile::tempdir().expect("temp dir");
    let image = |name: &str, sectors: u32, size: u32, f: fn(u32, u32) -> u8| {
        let p = dir.path().join(name);
        let bytes: Vec<u8> = (0..sectors)
            .flat_map(|s| (0..size).map(move |i| f(s, i)))
            .collect();
        std::fs::write(&p, bytes).expect("writing an image");
        p
    };
    let hd = image("hd.img", ATA_DISK_SECTORS, 512, disk_byte);
    let cd = image("cd.iso", ATA_CD_SECTORS, 2048, cd_byte);
    let drives = Drives {
        hda: Some(ImageSpec::new(hd, ImageMode::ReadWrite)),
        cdrom: Some(ImageSpec::new(cd, ImageMode::ReadOnly)),
        ..Drives::default()
    };
    (dir, drives)
}

/// After `ata` ran: the image file holds what the guest wrote (sectors
/// 100-101 by PIO, 30-31 by DMA) and nothing else changed.
fn check_ata_image(dir: &tempfile::TempDir) {
    let file = std::fs::read(dir.path().join("hd.img")).expect("reading the image");
    assert_eq!(file.len(), ATA_DISK_SECTORS as usize * 512);
    for (s, sector) in file.chunks(512).enumerate() {
        let s = s as u32;
        let f = if matches!(s, 30 | 31 | 100 | 101) {
            new_byte
        } else {
            disk_byte
        };
        for (i, &b) in sector.iter().enumerate() {
            assert_eq!(b, f(s, i as u32), "ata: image sector {s} byte {i}");
        }
    }
}

/// How one run of a kernel ended: its exit, serial output and event log,
/// and the engine's report (`--stats`).
struct Outcome {
    exit: RunExit,
    serial: String,
    log: String,
    report: String,
}

/// How a kernel is run: the engine, its batch size and, for the JIT, the
/// code cache in KiB (0: the default).
#[derive(Clone, Copy)]
struct Run {
    batch: u64,
    engine: EngineKind,
    jit_cache_kib: u32,
}

const INTERP: Run = Run {
    batch: 0,
    engine: EngineKind::Interp,
    jit_cache_kib: 0,
};

fn run_once(kernel: &[u8], cmdline: &str, modules: &[Module], run: Run, disks: bool) -> Outcome {
    let images = disks.then(ata_images);
    let serial = SharedBuffer::new();
    let log = SharedBuffer::new();
    let mut m = Machine::new(MachineConfig {
        memory_mib: 128,
        serial: SerialBackend::buffer(serial.clone(), None),
        debugcon: None,
        no_reboot: true,
        exit_port: Some(EXIT_PORT),
        batch: run.batch,
        engine: run.engine,
        jit_cache_kib: run.jit_cache_kib,
        drives: images.as_ref().map(|i| i.1.clone()).unwrap_or_default(),
        ..Default::default()
    })
    .expect("machine");
    m.set_event_log(EventLog::new(Box::new(log.clone())));
    m.boot_multiboot(kernel.to_vec(), cmdline, modules.to_vec())
        .unwrap_or_else(|e| panic!("the kernel does not load: {e}"));
    let exit = m.run(RunLimits {
        max_insns: Some(BUDGET),
        timeout: None,
    });
    m.finish_event_log().expect("event log");
    let report = m.engine_report();
    // The end of a run, as `morph86 run` ends it: flush, then drop.
    m.flush();
    drop(m);
    if let Some((dir, _)) = &images {
        check_ata_image(dir);
    }
    Outcome {
        exit,
        serial: serial.text().replace('\r', ""),
        log: log.text(),
        report,
    }
}

/// A built kernel, its command line and modules, and whether it gets the
/// `ata` disks.
struct Kernel {
    image: Vec<u8>,
    cmdline: String,
    modules: Vec<Module>,
    disks: bool,
}

fn load(name: &str) -> Kernel {
    let boot = match name {
        "modules" => MODULES_BOOT,
        "ata" => ATA_BOOT,
        "compute" => COMPUTE_BOOT,
        _ => Boot::default(),
    };
    build_roms();
    let build_dir = roms_dir().join("build");
    let path = build_dir.join(format!("{name}.elf"));
    let kernel = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let cmdline = multiboot::kernel_cmdline(&format!("roms/build/{name}.elf"), boot.append);
    let modules = match boot.modules {
        Some(list) => multiboot::read_modules(list, |p| std::fs::read(build_dir.join(p)))
            .unwrap_or_else(|e| panic!("{name}: {e}")),
        None => Vec::new(),
    };
    Kernel {
        image: kernel,
        cmdline,
        modules,
        disks: boot.disks,
    }
}

/// Runs a kernel and checks its summary; then runs it again one instruction
/// per engine call, and under the JIT, and checks that the serial output and
/// the event log are the same (the machine-core contract: neither the batch
/// size nor the engine changes a run).
fn run_kernel(name: &str) {
    let runs = [
        ("batch size 1", Run { batch: 1, ..INTERP }),
        (
            "the JIT",
            Run {
                engine: EngineKind::Jit,
                ..INTERP
            },
        ),
    ];
    run_and_compare(name, &runs);
}

/// Runs a kernel under the interpreter and checks its summary, then under
/// each of `others`, which must give the same exit, serial output and event
/// log; returns the outcomes of `others`.
fn run_and_compare(name: &str, others: &[(&str, Run)]) -> Vec<Outcome> {
    let Kernel {
        image: kernel,
        cmdline,
        modules,
        disks,
    } = load(name);
    let Outcome {
        exit,
        serial: text,
        log,
        ..
    } = run_once(&kernel, &cmdline, &modules, INTERP, disks);
    let summary = text.lines().rev().find(|l| l.starts_with("SUMMARY:"));
    let failures: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).collect();
    let ok_end = if name == "faults" {
        matches!(exit, RunExit::TripleFault { .. })
    } else {
        exit == RunExit::ExitDevice(33)
    };
    assert!(
        ok_end && summary.is_some_and(|s| s.ends_with(" 0 failed")) && failures.is_empty(),
        "{name}: run ended with: {exit}\nsummary: {summary:?}\nfailures:\n{}\n--- serial output ---\n{text}",
        failures.join("\n")
    );
    assert!(!log.is_empty(), "{name}: the event log is empty");
    // The same run under other engines and batch sizes: none may change a
    // thing.
    let mut outcomes = Vec::new();
    for &(what, run) in others {
        let other = run_once(&kernel, &cmdline, &modules, run, disks);
        assert_eq!(other.exit, exit, "{name}: {what} ends differently");
        assert_eq!(other.serial, text, "{name}: {what} prints differently");
        if other.log != log {
            let at = log
                .lines()
                .zip(other.log.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(log.lines().count().min(other.log.lines().count()));
            panic!(
                "{name}: the event log differs under {what} at line {}: {:?} vs {:?}",
                at + 1,
                log.lines().nth(at),
                other.log.lines().nth(at)
            );
        }
        outcomes.push(other);
    }
    outcomes
}

/// The cache flushes a JIT report (`--stats`) counts.
fn cache_flushes(report: &str) -> u64 {
    let re = regex::Regex::new(r"(\d+) cache flushes").expect("regex");
    re.captures(report)
        .and_then(|c| c[1].parse().ok())
        .unwrap_or_else(|| panic!("no cache flush count in the JIT's report:\n{report}"))
}

/// A JIT code cache of a few KiB (one page holds a few dozen blocks) is
/// flushed over and over while the self-modifying-code and
/// sensitive-instruction kernels run: their results, serial output and event
/// logs must not change.
#[test]
fn tiny_jit_cache() {
    for (name, kib) in [("smc", 4), ("sensitive", 16)] {
        let tiny = Run {
            engine: EngineKind::Jit,
            jit_cache_kib: kib,
            ..INTERP
        };
        let what = format!("a {kib} KiB JIT cache");
        let out = run_and_compare(name, &[(&what, tiny)]);
        let flushes = cache_flushes(&out[0].report);
        eprintln!("{name}: {flushes} flushes of {what}");
        assert!(
            flushes >= 20,
            "{name}: only {flushes} cache flushes with {what}:\n{}",
            out[0].report
        );
    }
}

macro_rules! kernel_tests {
    ($($(#[$m:meta])* $name:ident),* $(,)?) => {
        $(
            $(#[$m])*
            #[test]
            fn $name() {
                run_kernel(stringify!($name));
            }
        )*
    };
}

kernel_tests! {
    bus,
    segments,
    gates,
    tasks,
    iobitmap,
    v86,
    paging,
    debug,
    faults,
    sysenter,
    x87,
    irqlat,
    lowmem,
    modules,
    fwcfg,
    smc,
    sensitive,
    vga,
    ata,
    compute,
}
