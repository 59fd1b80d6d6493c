//! Runs the Multiboot system-architecture test kernels (roms/src, built by
//! roms/build.sh) on the in-process `Machine`, with a bounded instruction
//! budget, and checks that each prints `SUMMARY: N passed, 0 failed` and
//! ends the way it should (exit device status 33; `faults` with a triple
//! fault under no-reboot).

use morph86_devices::{SerialBackend, SharedBuffer};
use morph86_machine::{Machine, MachineConfig, RunExit, RunLimits, EXIT_PORT};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Instructions each kernel may run (they need well under a million).
const BUDGET: u64 = 50_000_000;

fn roms_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../roms")
}

/// Builds the kernels once per test process.
fn build() -> &'static Result<(), String> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Command::new("sh")
            .arg(roms_dir().join("build.sh"))
            .output()
            .map_err(|e| format!("running roms/build.sh: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "roms/build.sh failed (needs gcc and binutils):\n{}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    })
}

fn run_kernel(name: &str) {
    if let Err(e) = build() {
        panic!("{e}");
    }
    let path = roms_dir().join("build").join(format!("{name}.elf"));
    let kernel = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let serial = SharedBuffer::new();
    let mut m = Machine::new(MachineConfig {
        memory_mib: 128,
        serial: SerialBackend::buffer(serial.clone(), None),
        debugcon: None,
        no_reboot: true,
        exit_port: Some(EXIT_PORT),
        ..Default::default()
    })
    .expect("machine");
    m.boot_multiboot(kernel, "", vec![]).expect("kernel loads");
    let exit = m.run(RunLimits {
        max_insns: Some(BUDGET),
        timeout: None,
    });
    let text = serial.text().replace('\r', "");
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
}
