//! Killing morph86 in the middle of a run loses no write the guest was told
//! had completed, and corrupts nothing: `roms/build/ata.elf writer` writes
//! every sector of a disk image in turn and prints "W n" once the drive
//! reports sector n written; the test kills the emulator (SIGKILL) after a
//! few hundred of those and checks the image file sector by sector.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SECTORS: u32 = 16384;

/// roms/src/ata.c's writer_byte.
fn writer_byte(s: u32, i: u32) -> u8 {
    (s * 7 + i * 13 + 0xA5) as u8
}

/// The image's contents before the run.
fn old_byte(s: u32, i: u32) -> u8 {
    (s * 3 + i + 1) as u8
}

/// Sector numbers of the complete "W n" lines in the log.
fn acknowledged(log: &str) -> Vec<u32> {
    let complete = match log.rfind('\n') {
        Some(end) => &log[..end],
        None => "",
    };
    complete
        .lines()
        .filter_map(|l| l.strip_prefix("W ")?.trim().parse().ok())
        .collect()
}

#[test]
fn a_killed_run_keeps_every_acknowledged_write() {
    let roms = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../roms");
    let built = Command::new("sh")
        .arg(roms.join("build.sh"))
        .output()
        .expect("running roms/build.sh");
    assert!(
        built.status.success(),
        "roms/build.sh failed: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let img = dir.path().join("hd.img");
    let old: Vec<u8> = (0..SECTORS)
        .flat_map(|s| (0..512).map(move |i| old_byte(s, i)))
        .collect();
    std::fs::write(&img, &old).expect("writing the image");
    let log = dir.path().join("serial.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_morph86"))
        .args(["run", "--kernel"])
        .arg(roms.join("build/ata.elf"))
        .args([
            "--append",
            "writer",
            "--exit-port",
            "--no-reboot",
            "--timeout",
            "300",
        ])
        .arg("--hda")
        .arg(&img)
        .arg("--serial")
        .arg(format!("file:{}", log.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting morph86");
    let start = Instant::now();
    let acked = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let acked = acknowledged(&text);
        if acked.len() >= 300 {
            break acked;
        }
        if let Some(status) = child.try_wait().expect("waiting") {
            let mut err = String::new();
            child.stderr.take().map(|mut e| e.read_to_string(&mut err));
            panic!("morph86 ended early ({status}):\n{err}\n--- serial ---\n{text}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no writes acknowledged in time:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    child.kill().expect("killing morph86");
    child.wait().expect("reaping morph86");
    // Whatever was acknowledged after our look counts too.
    let text = std::fs::read_to_string(&log).expect("the serial log");
    let acked_now = acknowledged(&text);
    assert!(acked_now.len() >= acked.len());
    assert!(
        !text.contains("WRITER-DONE"),
        "the writer finished before the kill; make the disk larger"
    );
    let image = std::fs::read(&img).expect("reading the image");
    assert_eq!(image.len(), old.len(), "the image changed size");
    let mut written = vec![false; SECTORS as usize];
    for &s in &acked_now {
        written[s as usize] = true;
    }
    let mut new_unacked = 0;
    for (s, sector) in image.chunks(512).enumerate() {
        let s = s as u32;
        let is_new = sector
            .iter()
            .enumerate()
            .all(|(i, &b)| b == writer_byte(s, i as u32));
        let is_old = sector
            .iter()
            .enumerate()
            .all(|(i, &b)| b == old_byte(s, i as u32));
        if written[s as usize] {
            assert!(is_new, "acknowledged sector {s} is not in the image");
        } else {
            assert!(is_new || is_old, "sector {s} is neither old nor new: torn");
            new_unacked += u32::from(is_new);
        }
    }
    // At most the write in flight when the process died is new but unacknowledged.
    assert!(
        new_unacked <= 1,
        "{new_unacked} sectors written past the log"
    );
}
