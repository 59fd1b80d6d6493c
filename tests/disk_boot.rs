//! Disk images booted through morph86's own BIOS with no `--kernel`: a hard
//! disk with an MBR, a FAT partition and SYSLINUX (the kernel set to a VBE
//! mode with `vga=0x342`, so vesafb runs too); an El Torito ISO with
//! ISOLINUX; the same hard disk with `console=tty0`, read only through the
//! VGA text screen. Each boots Debian's 686 kernel, whose initramfs loads
//! ata_piix, sd_mod, sr_mod, isofs and vfat, mounts /dev/sda1 and /dev/sr0
//! and prints the SHA-256 of a file on each: they must equal the host's.
//!
//! The images come from `scripts/build-disk-images.sh` (after
//! `scripts/build-guest.sh` and `scripts/build-storage-guest.sh`), so the
//! tests are ignored by default; `.ci/run` builds the images and runs them:
//!
//!     MORPH86_ENGINE=jit cargo test --release -p morph86-tests --test disk_boot -- --ignored

use morph86_devices::{ImageMode, ImageSpec, SerialBackend, SharedBuffer};
use morph86_machine::bios::BootDevice;
use morph86_machine::{Drives, Machine, MachineConfig, RunExit, RunLimits};
use std::path::PathBuf;

fn disks() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../guest/disks")
}

/// The host's SHA-256 of the file both images carry.
fn host_hash() -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(disks().join("HASHME.TXT"))
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a hash")
        .to_string()
}

/// Boots `hd` (a snapshot: the image is left as it is) and the ISO through
/// the BIOS in `order`; returns how the run ended, the serial output and
/// the text screen.
fn boot(hd: &str, order: &[BootDevice], screen: bool) -> (RunExit, String, String) {
    for f in [hd, "cd.iso", "HASHME.TXT"] {
        assert!(
            disks().join(f).exists(),
            "guest/disks/{f}: run scripts/build-disk-images.sh"
        );
    }
    let engine = morph86_tests::engine_from_env();
    let serial = SharedBuffer::new();
    let mut m = Machine::new(MachineConfig {
        serial: SerialBackend::buffer(serial.clone(), None),
        no_reboot: true,
        engine,
        drives: Drives {
            hda: Some(ImageSpec::new(disks().join(hd), ImageMode::Snapshot)),
            cdrom: Some(ImageSpec::new(disks().join("cd.iso"), ImageMode::ReadOnly)),
            ..Drives::default()
        },
        ..Default::default()
    })
    .expect("machine");
    m.boot_bios(None, order).expect("power on");
    let done = regex::Regex::new("MORPH86-DISK-DONE").unwrap();
    if screen {
        m.watch_screen(done);
    } else {
        m.watch_serial(done);
    }
    let exit = m.run(RunLimits {
        max_insns: None,
        timeout: Some(std::time::Duration::from_secs(1500)),
    });
    let text = m.screen_text().map(|s| s.to_string()).unwrap_or_default();
    (exit, serial.text().replace('\r', ""), text)
}

/// Both devices' hashes, as the guest printed them in `out`, equal the host's.
fn check_hashes(out: &str) {
    let want = host_hash();
    for dev in ["sda1", "sr0"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("MORPH86-DISK {dev} ")))
            .unwrap_or_else(|| panic!("no hash for {dev}:\n{out}"));
        let got = line.split_whitespace().nth(2).unwrap_or("");
        // Whole, or (on an 80-column screen) cut short: at least 40 digits.
        assert!(
            got.len() >= 40 && want.starts_with(got),
            "{dev}: {line} vs the host's {want}"
        );
    }
}

#[test]
#[ignore = "needs guest/disks from scripts/build-disk-images.sh"]
fn a_syslinux_hard_disk_boots_and_linux_reads_its_disks() {
    let (exit, out, _) = boot("hd.img", &[BootDevice::HardDisk], false);
    assert_eq!(exit, RunExit::SerialMatch, "{out}");
    assert!(out.contains("SYSLINUX"), "{out}");
    check_hashes(&out);
    // `vga=0x342`: the kernel's real-mode setup asked the BIOS (INT 10h
    // 4F01h/4F02h) for VBE mode 142h, and vesafb runs on what it reported.
    assert!(
        out.contains("vesafb: mode is 640x480x32, linelength=2560"),
        "{out}"
    );
    assert!(out.contains("vesafb: framebuffer at 0xfd000000"), "{out}");
    assert!(out.contains("fb0: VESA VGA frame buffer device"), "{out}");
}

#[test]
#[ignore = "needs guest/disks from scripts/build-disk-images.sh"]
fn an_isolinux_cd_boots_and_linux_reads_its_disks() {
    let (exit, out, _) = boot("hd.img", &[BootDevice::CdRom], false);
    assert_eq!(exit, RunExit::SerialMatch, "{out}");
    assert!(out.contains("ISOLINUX"), "{out}");
    check_hashes(&out);
}

#[test]
#[ignore = "needs guest/disks from scripts/build-disk-images.sh"]
fn the_vga_console_boot_is_read_through_the_text_screen() {
    let (exit, out, screen) = boot("hd-vga.img", &[BootDevice::HardDisk], true);
    assert_eq!(exit, RunExit::ScreenMatch, "screen:\n{screen}");
    assert!(
        !out.contains("MORPH86-DISK"),
        "the results went to the serial port"
    );
    // The screen is 80 columns wide: a hash line is cut after 79
    // characters, so the comparison is on what fits.
    check_hashes(&screen);
}
