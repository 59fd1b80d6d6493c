//! Linux's own drivers on morph86's storage: Debian's 686 kernel boots
//! (directly, no BIOS) with `guest/initramfs-storage.cpio.gz` (built by
//! `scripts/build-storage-guest.sh`), which loads libata + ata_piix,
//! sd_mod, sr_mod and floppy, hashes /dev/sda, /dev/sr0 and /dev/fd0, writes
//! to the disk and the floppy, syncs and powers off. The test checks the
//! hashes against the host's and, after the run, that the image files hold
//! exactly what the guest wrote.
//!
//! Ignored by a plain `cargo test` (it boots Linux: minutes); run with
//! `--ignored` after `scripts/build-guest.sh` and
//! `scripts/build-storage-guest.sh`. MORPH86_ENGINE=jit runs it under the
//! binary translator.

use morph86_devices::{ImageMode, ImageSpec, SerialBackend, SharedBuffer};
use morph86_machine::{Drives, Machine, MachineConfig, RunExit, RunLimits};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

fn guest(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../guest")
        .join(file)
}

fn hex(d: impl AsRef<[u8]>) -> String {
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// `len` bytes of a pattern that differs in every sector.
fn pattern(len: usize, salt: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).rotate_left(salt) >> 24) as u8 ^ (i >> 9) as u8)
        .collect()
}

#[test]
#[ignore = "boots Linux (minutes); run with --ignored after scripts/build-storage-guest.sh"]
fn linux_drivers_read_and_write_the_disks() {
    let kernel =
        std::fs::read(guest("bzImage")).expect("guest/bzImage: run scripts/build-guest.sh");
    let initrd = std::fs::read(guest("initramfs-storage.cpio.gz"))
        .expect("guest/initramfs-storage.cpio.gz: run scripts/build-storage-guest.sh");
    let dir = tempfile::tempdir().expect("temp dir");
    let images = [
        ("hd.img", pattern(8 << 20, 3)),
        ("cd.iso", pattern(1 << 20, 7)),
        ("fd.img", pattern(1_474_560, 11)),
    ];
    for (name, bytes) in &images {
        std::fs::write(dir.path().join(name), bytes).expect("writing an image");
    }
    let spec = |name: &str, mode| Some(ImageSpec::new(dir.path().join(name), mode));
    let out = SharedBuffer::new();
    let engine = morph86_tests::engine_from_env();
    let mut m = Machine::new(MachineConfig {
        serial: SerialBackend::buffer(out.clone(), None),
        no_reboot: true,
        engine,
        drives: Drives {
            hda: spec("hd.img", ImageMode::ReadWrite),
            cdrom: spec("cd.iso", ImageMode::ReadOnly),
            fda: spec("fd.img", ImageMode::ReadWrite),
            ..Drives::default()
        },
        ..Default::default()
    })
    .expect("machine");
    // acpi=noirq: the DSDT has no PCI root bridge, so under ACPI Linux
    // would scan no PCI bus and never find the IDE function; with ACPI's
    // IRQ routing off it probes the bus directly (and routes by the MP
    // table).
    m.boot_linux(kernel, Some(initrd), "console=ttyS0 acpi=noirq")
        .expect("kernel loads");
    let start = std::time::Instant::now();
    let exit = m.run(RunLimits {
        max_insns: Some(40_000_000_000),
        timeout: Some(std::time::Duration::from_secs(2400)),
    });
    // The end of a run, as `morph86 run` ends it.
    m.flush();
    drop(m);
    let text = out.text().replace('\r', "");
    eprintln!(
        "linux storage test: {exit} after {:.1} s",
        start.elapsed().as_secs_f64()
    );
    for l in text.lines().filter(|l| l.starts_with("MORPH86-")) {
        eprintln!("{l}");
    }
    assert_eq!(exit, RunExit::PowerOff, "output:\n{text}");
    assert!(text.contains("MORPH86-STORAGE-DONE"), "output:\n{text}");
    assert!(!text.contains("failed"), "a module did not load:\n{text}");
    for (dev, (_, bytes)) in ["sda", "sr0", "fd0"].iter().zip(&images) {
        let want = format!("MORPH86-STORAGE {dev} {}", hex(Sha256::digest(bytes)));
        assert!(
            text.contains(&want),
            "{dev}: want {want:?}; output:\n{text}"
        );
    }
    // What the guest wrote: a pattern at 4 MiB of the disk, read back after
    // dropping the caches, and 2 sectors at 2000 of the floppy.
    let written: Vec<u8> = b"morph86-storage\n"
        .iter()
        .copied()
        .cycle()
        .take(1 << 20)
        .collect();
    let want = format!(
        "MORPH86-STORAGE sda-reread {}",
        hex(Sha256::digest(&written))
    );
    assert!(text.contains(&want), "output:\n{text}");
    let hd = std::fs::read(dir.path().join("hd.img")).expect("hd.img");
    let mut expect = images[0].1.clone();
    expect[4 << 20..5 << 20].copy_from_slice(&written);
    assert!(
        hd == expect,
        "hd.img does not hold exactly what the guest wrote"
    );
    let fd = std::fs::read(dir.path().join("fd.img")).expect("fd.img");
    let mut expect = images[2].1.clone();
    expect[2000 * 512..2002 * 512].copy_from_slice(&written[..1024]);
    assert!(
        fd == expect,
        "fd.img does not hold exactly what the guest wrote"
    );
    assert_eq!(
        std::fs::read(dir.path().join("cd.iso")).expect("cd.iso"),
        images[1].1
    );
}
