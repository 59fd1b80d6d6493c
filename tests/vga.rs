//! The VGA pictures of roms/src/vga.c: the kernel programs mode 13h, mode
//! 12h, a VBE linear-framebuffer mode and a text mode with a font of its
//! own, through registers only, draws a known picture in each and halts;
//! these tests compute the same pictures here and compare them with
//! morph86's screenshots pixel for pixel. (scripts/vga-crosscheck.sh
//! compares the same screenshots with QEMU's `-vga std` screendumps; they
//! agree pixel for pixel.) And, with `--ignored`, Debian's kernel on the
//! VGA console without a BIOS.

use morph86_devices::vga::{regs::widen6, Frame};
use morph86_devices::{SerialBackend, SharedBuffer};
use morph86_machine::multiboot;
use morph86_machine::{EngineKind, Machine, MachineConfig, RunExit, RunLimits, EXIT_PORT};
use std::path::PathBuf;

use morph86_tests::{build_roms, roms_dir};

/// Runs vga.elf with `draw=MODE` to its final HLT and takes the screenshot.
fn screenshot(mode: &str) -> Frame {
    screenshot_with(mode, EngineKind::Interp, None)
}

/// [`screenshot`] under `engine`, rendering the screen every `slice`
/// instructions on the way (as a window would), so video memory's dirty
/// pages are collected and their write pointers revoked while the guest
/// still draws.
fn screenshot_with(mode: &str, engine: EngineKind, slice: Option<u64>) -> Frame {
    build_roms();
    let kernel = std::fs::read(roms_dir().join("build/vga.elf")).expect("vga.elf");
    let serial = SharedBuffer::new();
    let mut m = Machine::new(MachineConfig {
        memory_mib: 128,
        serial: SerialBackend::buffer(serial.clone(), None),
        no_reboot: true,
        exit_port: Some(EXIT_PORT),
        engine,
        ..Default::default()
    })
    .expect("machine");
    let cmdline = multiboot::kernel_cmdline("roms/build/vga.elf", &format!("draw={mode}"));
    m.boot_multiboot(kernel, &cmdline, vec![]).expect("boot");
    let mut renders = 0;
    let exit = loop {
        let limit = match slice {
            Some(n) => (m.cpu.icount + n).min(50_000_000),
            None => 50_000_000,
        };
        let exit = m.run(RunLimits {
            max_insns: Some(limit),
            timeout: None,
        });
        if exit == RunExit::InstructionLimit && limit < 50_000_000 {
            m.update_display();
            renders += 1;
            continue;
        }
        break exit;
    };
    assert!(slice.is_none() || renders > 10, "{mode}: {renders} renders");
    let text = serial.text();
    assert!(
        matches!(exit, RunExit::Halted { .. })
            && text.contains("READY")
            && text.contains(" 0 failed"),
        "{mode}: {exit}\n{text}"
    );
    m.screenshot().expect("a display")
}

fn rgb6(r: u32, g: u32, b: u32) -> u32 {
    let w = |c: u32| u32::from(widen6(c as u8));
    w(r) << 16 | w(g) << 8 | w(b)
}

/// Compares `got` with `want(x, y)` pixel by pixel.
fn compare(mode: &str, got: &Frame, size: (u32, u32), want: impl Fn(u32, u32) -> u32) {
    assert_eq!((got.width, got.height), size, "{mode}: size");
    let mut bad = Vec::new();
    for y in 0..size.1 {
        for x in 0..size.0 {
            let (g, w) = (got.pixel(x, y).unwrap(), want(x, y));
            if g != w {
                bad.push(format!("({x}, {y}): {g:06x}, want {w:06x}"));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{mode}: {} pixels differ, first: {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
}

#[test]
fn mode_13h() {
    let f = screenshot("13h");
    // 320x200 shown as 640x400: each pixel twice across and down.
    compare("13h", &f, (640, 400), |x, y| {
        let (x, y) = (x / 2, y / 2);
        let c = if (150..170).contains(&x) && (90..100).contains(&y) {
            255
        } else {
            ((x + 3 * y) ^ (x >> 3)) & 255
        };
        rgb6(c & 63, (c >> 2) & 63, 63 - (c & 63))
    });
}

#[test]
fn mode_12h() {
    let f = screenshot("12h");
    compare("12h", &f, (640, 480), |x, y| {
        let bx = x / 8;
        let mut c = (bx / 5 + y / 32) & 15;
        if (200..260).contains(&y) && (12..38).contains(&bx) {
            c = 14;
        }
        if x == y + 80 {
            c = 15;
        }
        if (100..150).contains(&y) && (40..50).contains(&bx) {
            c ^= 5;
        }
        if (300..310).contains(&y) && (60..70).contains(&bx) && (0xAA >> (7 - x % 8)) & 1 != 0 {
            c = 9;
        }
        rgb6(4 * c, 63 - 4 * c, (9 * c) & 63)
    });
}

fn vbe_picture(x: u32, y: u32) -> u32 {
    if (288..352).contains(&x) && (216..264).contains(&y) {
        0xFF_FFFF
    } else {
        (x & 0xFF) << 16 | (y & 0xFF) << 8 | (((x + y) / 4) & 0xFF)
    }
}

#[test]
fn vbe_linear_framebuffer() {
    let f = screenshot("vbe");
    compare("vbe", &f, (640, 480), vbe_picture);
}

/// The framebuffer drawn while the screen is rendered every 100,000
/// instructions, by the interpreter and by translated code: every page
/// written after a render must be marked again (its write pointers were
/// revoked), or the last render would miss it.
#[test]
fn vbe_rendered_while_drawing_under_both_engines() {
    for engine in [EngineKind::Interp, EngineKind::Jit] {
        let f = screenshot_with("vbe", engine, Some(100_000));
        compare(
            &format!("vbe under {engine:?}"),
            &f,
            (640, 480),
            vbe_picture,
        );
    }
}

#[test]
fn text_mode_with_the_kernels_font() {
    let f = screenshot("text");
    // Mode 3's attribute palette into DAC entries (i, 63 - i, i / 2).
    let ac = [
        0u32, 1, 2, 3, 4, 5, 0x14, 7, 0x38, 0x39, 0x3A, 0x3B, 0x3C, 0x3D, 0x3E, 0x3F,
    ];
    let pal = |i: u32| {
        let d = ac[i as usize];
        rgb6(d, 63 - d, d / 2)
    };
    compare("text", &f, (720, 400), |x, y| {
        let (cx, cy, gx, gy) = (x / 9, y / 16, x % 9, y % 16);
        let ch = (cx + 7 * cy) % 0xB0;
        let attr = (cx + cy) % 0x70 + 1;
        let bits = ((ch * 7 + gy * 13) ^ (gy << 4)) & 0xFF;
        if gx < 8 && (bits >> (7 - gx)) & 1 != 0 {
            pal(attr & 15)
        } else {
            pal(attr >> 4)
        }
    });
}

/// Debian's kernel booted directly (no BIOS) with `console=tty0`: the VGA
/// is as a BIOS leaves it, the loader passes a VGA `screen_info`, and the
/// kernel's VGA console (vgacon) shows the boot. The run is read through
/// the text buffer alone (the serial port stays silent), ends on the
/// guest's marker with `--exit-on-screen`'s watch, and the screenshot is
/// the text buffer drawn with the font in plane 2, cell for cell.
#[test]
#[ignore = "boots Linux (minutes); run with --ignored after scripts/build-guest.sh"]
fn linux_boots_to_the_vga_console_without_a_bios() {
    let guest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../guest");
    let kernel =
        std::fs::read(guest.join("bzImage")).expect("guest/bzImage: run scripts/build-guest.sh");
    let initrd = std::fs::read(guest.join("initramfs.cpio.gz")).expect("guest/initramfs.cpio.gz");
    let engine = morph86_tests::engine_from_env();
    let serial = SharedBuffer::new();
    let mut m = Machine::new(MachineConfig {
        serial: SerialBackend::buffer(serial.clone(), None),
        no_reboot: true,
        engine,
        ..Default::default()
    })
    .expect("machine");
    m.boot_linux(kernel, Some(initrd), "console=tty0")
        .expect("kernel loads");
    m.watch_screen(regex::Regex::new("MORPH86-GUEST-READY").unwrap());
    let exit = m.run(RunLimits {
        max_insns: None,
        timeout: Some(std::time::Duration::from_secs(1500)),
    });
    let screen = m.screen_text().expect("a text screen");
    let text = screen.to_string();
    assert_eq!(exit, RunExit::ScreenMatch, "screen:\n{text}");
    assert!(text.contains("Run /init as init process"), "{text}");
    assert!(
        !serial.text().contains("Linux version"),
        "the boot log went to the serial port too"
    );
    // The screenshot is the text buffer drawn with the font in plane 2
    // (the BIOS-state font: Spleen 8x16), in the attribute's colours.
    let f = m.screenshot().expect("a display");
    assert_eq!((f.width, f.height), (screen.cols * 9, screen.rows * 16));
    let vga = m.board.video.as_ref().expect("a VGA").id;
    let regs = &m.board.io.get(vga).regs;
    let colour = |i: u8| regs.dac.rgb(regs.ac[usize::from(i & 15)]);
    let mut checked = 0;
    for (i, &(ch, attr)) in screen.cells.iter().enumerate() {
        let (cx, cy) = (i as u32 % screen.cols, i as u32 / screen.cols);
        if screen.cursor == Some((cx, cy)) {
            continue;
        }
        let (fg, bg) = (colour(attr & 15), colour(attr >> 4 & 7));
        for y in 0..16u32 {
            let bits = morph86_devices::vga::FONT_8X16[usize::from(ch) * 16 + y as usize];
            for x in 0..9u32 {
                let on = if x < 8 {
                    bits >> (7 - x) & 1 != 0
                } else {
                    (0xC0..=0xDF).contains(&ch) && bits & 1 != 0
                };
                let want = if on { fg } else { bg };
                assert_eq!(
                    f.pixel(cx * 9 + x, cy * 16 + y),
                    Some(want),
                    "cell ({cx}, {cy})"
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 80 * 24);
}

/// Debian's kernel loads its own bochs-drm driver (from
/// `guest/initramfs-drm.cpio.gz`, built by scripts/build-drm-guest.sh),
/// which finds the Bochs VBE interface behind the VGA's PCI function, sets
/// 1024x768x32 through it and puts the framebuffer console there; the
/// guest writes 30 lines to that console. The screenshot shows them: only
/// fbcon's two colours, the text where 30 lines of it belong, and the same
/// pixels for the same characters on every line.
#[test]
#[ignore = "boots Linux (minutes); run with --ignored after scripts/build-drm-guest.sh"]
fn linux_bochs_drm_puts_its_console_on_the_framebuffer() {
    let guest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../guest");
    let kernel =
        std::fs::read(guest.join("bzImage")).expect("guest/bzImage: run scripts/build-guest.sh");
    let initrd = std::fs::read(guest.join("initramfs-drm.cpio.gz"))
        .expect("guest/initramfs-drm.cpio.gz: run scripts/build-drm-guest.sh");
    let engine = morph86_tests::engine_from_env();
    let serial = SharedBuffer::new();
    let mut m = Machine::new(MachineConfig {
        serial: SerialBackend::buffer(serial.clone(), None),
        no_reboot: true,
        engine,
        ..Default::default()
    })
    .expect("machine");
    m.boot_linux(kernel, Some(initrd), "console=ttyS0")
        .expect("kernel loads");
    m.watch_serial(regex::Regex::new("MORPH86-DRM-DONE").unwrap());
    let exit = m.run(RunLimits {
        max_insns: None,
        timeout: Some(std::time::Duration::from_secs(1500)),
    });
    let log = serial.text();
    assert_eq!(exit, RunExit::SerialMatch, "{log}");
    assert!(log.contains("[drm] Initialized bochs-drm"), "{log}");
    assert!(
        log.contains("MORPH86-DRM fb0 bochs-drmdrmfb 1024,768 32 4096"),
        "{log}"
    );
    let f = m.screenshot().expect("a display");
    assert_eq!((f.width, f.height), (1024, 768));
    // "MORPH86 BOCHS-DRM LINE n": 23 cells of prefix, up to 25 in all.
    let (cell_w, cell_h, prefix) = (8, 16, 23);
    let mut lit_colour = None;
    for y in 0..768 {
        for x in 0..1024 {
            let p = f.pixel(x, y).unwrap();
            if p == 0 {
                continue;
            }
            assert!(x < 25 * cell_w && y < 30 * cell_h, "lit at ({x}, {y})");
            assert_eq!(*lit_colour.get_or_insert(p), p, "one text colour");
        }
    }
    let row = |line: u32| -> Vec<bool> {
        (0..cell_h)
            .flat_map(|y| (0..prefix * cell_w).map(move |x| (x, line * cell_h + y)))
            .map(|(x, y)| f.pixel(x, y) != Some(0))
            .collect()
    };
    let first = row(0);
    assert!(first.iter().filter(|&&b| b).count() > 300, "text is drawn");
    for line in 1..30 {
        assert_eq!(row(line), first, "line {}: the same prefix", line + 1);
    }
}
