//! The default run: `morph86 run` with no kernel or drive (and plain
//! `morph86`) boots the built-in demo disk through the BIOS and prints the
//! text screen at the end; options are honoured or refused.

use std::process::{Command, Output, Stdio};

fn morph86(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_morph86"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running morph86")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The checksum line of the summary.
fn checksum(out: &str) -> &str {
    out.lines()
        .find(|l| l.starts_with("Picture checksum"))
        .unwrap_or_else(|| panic!("no checksum in:\n{out}"))
}

#[test]
fn the_demo_boots_through_the_bios_and_prints_its_screen() {
    let dir = tempfile::tempdir().unwrap();
    let screen = dir.path().join("screen.txt");
    let o = morph86(&[
        "run",
        "--serial",
        "none",
        "--memory",
        "64",
        "--screen-text",
        screen.to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    for want in [
        "morph86 demo: done",
        "Text through INT 10h, then a Mandelbrot set drawn in mode 13h.",
        "The machine halts now.",
    ] {
        assert!(out.contains(want), "{want:?} not in:\n{out}");
    }
    let sum = checksum(&out);
    assert!(sum.ends_with(|c: char| c.is_ascii_hexdigit()), "{sum}");
    assert!(err.contains("halted"), "{err}");
    // --screen-text is honoured: the same screen in the file.
    let file = std::fs::read_to_string(&screen).unwrap();
    assert!(file.contains(sum), "{file}");
    // The JIT draws the same picture, and --memory reaches the BIOS: a
    // screenshot in the middle of the run shows the early text screen.
    let shot = dir.path().join("early.png");
    let o = morph86(&[
        "run",
        "--serial",
        "none",
        "--engine",
        "jit",
        "--memory",
        "64",
        "--screenshot",
        shot.to_str().unwrap(),
        "--exit-on-screen",
        "Memory \\(INT 15h E801h\\): 64 MiB",
    ]);
    let (out2, err2) = text(&o);
    assert!(o.status.success(), "{out2}\n{err2}");
    assert!(out2.contains("Memory (INT 15h E801h): 64 MiB"), "{out2}");
    assert!(out2.contains("from drive 80h"), "{out2}");
    assert!(std::fs::metadata(&shot).unwrap().len() > 100);
    let o = morph86(&["run", "--serial", "none", "--engine", "jit"]);
    let (out3, _) = text(&o);
    assert_eq!(checksum(&out3), sum, "the JIT's picture differs");
}

#[test]
fn plain_morph86_runs_the_demo() {
    let o = morph86(&[]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("morph86 demo: done"), "{out}\n{err}");
}

#[test]
fn bad_options_are_refused() {
    for (args, want) in [
        (&["run", "--memory", "0"][..], "--memory"),
        (&["run", "--memory", "4000"][..], "--memory"),
        (&["run", "--vga", "none"][..], "--vga none"),
        (&["run", "--append", "x"][..], "need --kernel"),
        (&["run", "--initrd", "x"][..], "need --kernel"),
    ] {
        let o = morph86(args);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {out}\n{err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
