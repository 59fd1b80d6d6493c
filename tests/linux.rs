//! Boots Debian 12's 686 kernel with the busybox initramfs (built by
//! `scripts/build-guest.sh` into `guest/`) to a shell on ttyS0, then checks
//! in the guest: a SHA-256 of a 16 MiB file made from a fixed pattern
//! matches the host's, /proc/cpuinfo shows the CPU morph86 reports, and
//! `poweroff -f` ends the run with a power-off.
//!
//! The boot takes minutes on the interpreter, so the test is ignored by a
//! plain `cargo test`; `.ci/run` runs it with `--ignored` in release mode,
//! under the interpreter and again under the JIT (`MORPH86_ENGINE=jit`).

use morph86_devices::{SerialBackend, SharedBuffer};
use morph86_machine::{Machine, MachineConfig, RunExit, RunLimits};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

fn guest(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../guest")
        .join(file)
}

/// The pattern the guest writes: "morph86\n" repeated to 16 MiB.
fn pattern_sha256() -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let chunk = b"morph86\n".repeat(4096);
    for _ in 0..(16 << 20) / chunk.len() {
        h.update(&chunk);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

struct Guest {
    m: Machine,
    out: SharedBuffer,
    input: mpsc::Sender<u8>,
}

impl Guest {
    /// Runs until the serial output (after `from` bytes) matches `pattern`.
    fn wait_for(&mut self, pattern: &str, from: usize, budget: Duration) -> String {
        let re = regex::Regex::new(pattern).expect("pattern");
        let deadline = std::time::Instant::now() + budget;
        loop {
            let text = String::from_utf8_lossy(&self.out.contents()[from..]).into_owned();
            if re.is_match(&text) {
                return text;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {pattern:?}; output so far:\n{text}"
            );
            let exit = self.m.run(RunLimits {
                max_insns: Some(self.m.cpu.icount + 20_000_000),
                timeout: None,
            });
            assert_eq!(
                exit,
                RunExit::InstructionLimit,
                "guest stopped early; output:\n{text}"
            );
        }
    }

    /// Reports a phase's instructions and wall time (seen with --nocapture).
    fn report(&self, phase: &str, since: (u64, std::time::Instant)) {
        eprintln!(
            "linux test: {phase}: {} instructions, {:.1} s",
            self.m.cpu.icount - since.0,
            since.1.elapsed().as_secs_f64()
        );
    }

    fn mark(&self) -> (u64, std::time::Instant) {
        (self.m.cpu.icount, std::time::Instant::now())
    }

    fn type_line(&mut self, line: &str) -> usize {
        let from = self.out.contents().len();
        for b in line.bytes().chain(std::iter::once(b'\n')) {
            self.input.send(b).expect("serial input");
        }
        from
    }
}

#[test]
#[ignore = "boots Linux (minutes); run with --ignored after scripts/build-guest.sh"]
fn debian_kernel_boots_to_a_shell_and_powers_off() {
    let kernel =
        std::fs::read(guest("bzImage")).expect("guest/bzImage: run scripts/build-guest.sh");
    let initrd = std::fs::read(guest("initramfs.cpio.gz")).expect("guest/initramfs.cpio.gz");
    let out = SharedBuffer::new();
    let (tx, rx) = mpsc::channel();
    // MORPH86_ENGINE=jit runs the same test under the binary translator.
    let engine = morph86_tests::engine_from_env();
    let mut m = Machine::new(MachineConfig {
        serial: SerialBackend::buffer(out.clone(), Some(rx)),
        no_reboot: true,
        engine,
        ..Default::default()
    })
    .expect("machine");
    eprintln!("linux test: engine {}", m.engine_name());
    m.boot_linux(kernel, Some(initrd), "console=ttyS0")
        .expect("kernel loads");
    let mut g = Guest { m, out, input: tx };
    let t = g.mark();
    let boot = g.wait_for("MORPH86-GUEST-READY", 0, Duration::from_secs(1500));
    g.report("boot to the marker", t);
    for bad in [
        "BIOS bug",
        "Firmware Bug",
        // "found SMP MP-table at ..." is fine; its errors say "MP-BIOS bug".
        "MP-BIOS bug",
        "unchecked MSR",
        "TSC unstable",
        "clocksource watchdog",
        "ACPI Error",
        "ACPI BIOS Error",
    ] {
        assert!(!boot.contains(bad), "boot log contains {bad:?}:\n{boot}");
    }
    // The firmware tables were found and read: SMBIOS (DMI) and ACPI PNP.
    for good in ["DMI: morph86 morph86 PC", "pnp: PnP ACPI: found 7 devices"] {
        assert!(boot.contains(good), "boot log lacks {good:?}:\n{boot}");
    }
    g.wait_for("morph86# ", 0, Duration::from_secs(120));

    let t = g.mark();
    // "morph86\n" doubled 21 times is 16 MiB. (Doubling with cat keeps the
    // guest's work at a few hundred million instructions; `yes | head -c`
    // would spend billions in busybox head's byte-at-a-time stdio loop.)
    let from = g.type_line(
        "echo morph86 > /tmp/f; for i in $(seq 21); do cat /tmp/f /tmp/f > /tmp/g; mv /tmp/g /tmp/f; done; ls -l /tmp/f; sha256sum /tmp/f",
    );
    let text = g.wait_for(r"[0-9a-f]{64}\s+/tmp/f", from, Duration::from_secs(1500));
    assert!(text.contains(" 16777216 "), "/tmp/f is not 16 MiB:\n{text}");
    assert!(
        text.contains(&pattern_sha256()),
        "sha256 differs from the host's {}:\n{text}",
        pattern_sha256()
    );
    g.report("16 MiB file and its SHA-256", t);

    let from = g.type_line("cat /proc/cpuinfo");
    let text = g.wait_for(r"flags\s*:.*\n", from, Duration::from_secs(120));
    for want in [
        "GenuineIntel",
        "cpu family\t: 6",
        "model\t\t: 5",
        "stepping\t: 2",
    ] {
        assert!(text.contains(want), "/proc/cpuinfo lacks {want:?}:\n{text}");
    }
    let flags = text
        .lines()
        .find(|l| l.starts_with("flags"))
        .unwrap_or_default();
    for f in [
        "fpu", "vme", "de", "pse", "tsc", "msr", "cx8", "apic", "sep", "pge", "cmov", "fxsr",
    ] {
        assert!(
            flags.split_whitespace().any(|w| w == f),
            "flag {f} missing: {flags}"
        );
    }

    g.type_line("poweroff -f");
    let exit = g.m.run(RunLimits {
        max_insns: Some(g.m.cpu.icount + 2_000_000_000),
        timeout: None,
    });
    assert_eq!(exit, RunExit::PowerOff, "output:\n{}", g.out.text());
}
