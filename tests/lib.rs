//! Workspace-level integration tests for morph86 (see the `[[test]]` targets).
//!
//! Helpers shared by the tests live here.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The `tests-data` directory: `$MORPH86_TESTDATA`, else `../shared/tests-data`
/// beside the checkout. Panics with a clear message when it is missing,
/// because the conformance sample cannot run without it.
pub fn testdata() -> PathBuf {
    match morph86_difftest::moo::testdata_dir() {
        Some(d) => d,
        None => panic!(
            "real-hardware test data not found: set MORPH86_TESTDATA to the tests-data \
             directory, or place the shared folder beside the checkout (../shared/tests-data)"
        ),
    }
}

/// The engine the Linux and disk-image tests run under: `$MORPH86_ENGINE`
/// (`interp` or `jit`), else the interpreter.
pub fn engine_from_env() -> morph86_machine::EngineKind {
    match std::env::var("MORPH86_ENGINE") {
        Ok(e) => e.parse().expect("MORPH86_ENGINE: interp or jit"),
        Err(_) => morph86_machine::EngineKind::Interp,
    }
}

/// The `roms/` directory of the checkout.
pub fn roms_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../roms")
}

/// Builds roms/ (the test kernels, the BIOS test ROMs, the demo) once per
/// test process; panics with the build's errors if it fails.
pub fn build_roms() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let r = BUILT.get_or_init(|| {
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
    });
    if let Err(e) = r {
        panic!("{e}");
    }
}
