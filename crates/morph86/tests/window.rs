//! The window front end under X (Xvfb): run by `scripts/window-test.sh`,
//! which starts Xvfb and runs this test with `--ignored`.
//!
//! It starts `morph86 run --display window` on `roms/build/kbd.elf` (a
//! text console on the VGA that reads the 8042), then, as a person would:
//! - waits for the window and for the title's speed;
//! - types commands into the window as X key events (`xdotool type` and
//!   `key`: XTEST, so they go through winit and the key map) and sees them
//!   echoed and answered on the guest's screen; an extended key (Up) and
//!   Backspace go through too;
//! - pauses and resumes with Ctrl+Alt+P, captures the mouse with a click
//!   (the title names the release chord), moves it (the guest logs PS/2
//!   packets) and releases it with Ctrl+Alt+G;
//! - captures the window itself with `xwd`, closes it (Ctrl+Alt+Q; the
//!   run ends through the normal end-of-run path);
//! - checks the `--screenshot` against the text screen (`--screen-text`)
//!   drawn with the VGA's font, pixel for pixel, and the `xwd` capture
//!   against the `--screenshot`, pixel for pixel (the window shows the
//!   screen at 1:1).
//!
//! A second test does the same with the Linux guest on its VGA console
//! (`--linux` in the script).
//!
//! With `MORPH86_WINDOW_SHOTS=DIR` the tests also save their window
//! captures as DIR/window-kbd.png and DIR/window-linux.png (the README's
//! picture comes from here).

use morph86_devices::vga::font::FONT_8X16;
use morph86_devices::vga::regs::widen6;
use morph86_devices::vga::text::cp437_to_char;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn roms_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../roms")
}

/// Runs a tool and returns its standard output; panics with its error.
fn tool(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| {
        panic!("running {cmd}: {e} (scripts/window-test.sh lists what to install)")
    });
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `f` until it gives a value or `secs` pass.
fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A file's text without carriage returns (COM1 gets CR LF).
fn read(p: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).replace('\r', "")
}

/// An image as `0x00RRGGBB` pixels.
#[derive(PartialEq, Eq)]
struct Image {
    width: u32,
    height: u32,
    pixels: Vec<u32>,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Image {}x{}", self.width, self.height)
    }
}

fn read_png(p: &Path) -> Image {
    let dec = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(p).expect("the screenshot"),
    ));
    let mut r = dec.read_info().expect("a PNG");
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).expect("PNG data");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    Image {
        width: info.width,
        height: info.height,
        pixels: buf[..info.buffer_size()]
            .chunks(3)
            .map(|c| u32::from(c[0]) << 16 | u32::from(c[1]) << 8 | u32::from(c[2]))
            .collect(),
    }
}

fn write_png(p: &Path, img: &Image) {
    let f = std::fs::File::create(p).expect("creating the PNG");
    let mut enc = png::Encoder::new(std::io::BufWriter::new(f), img.width, img.height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::High);
    let bytes: Vec<u8> = img
        .pixels
        .iter()
        .flat_map(|&p| [(p >> 16) as u8, (p >> 8) as u8, p as u8])
        .collect();
    let mut w = enc.write_header().unwrap();
    w.write_image_data(&bytes).unwrap();
}

/// Reads an X window dump (`xwd`, ZPixmap, 24 or 32 bits per pixel
/// TrueColor): a big-endian header of 25 words, the window's name, the
/// colour map, then the rows.
fn read_xwd(p: &Path) -> Image {
    let b = std::fs::read(p).expect("the xwd capture");
    let w = |i: usize| u32::from_be_bytes(b[i * 4..i * 4 + 4].try_into().unwrap());
    let (header_size, format, width, height) = (w(0) as usize, w(2), w(4), w(5));
    let (byte_order, bpp, bpl) = (w(7), w(11), w(12) as usize);
    let (rmask, gmask, bmask, ncolors) = (w(14), w(15), w(16), w(19) as usize);
    assert_eq!(format, 2, "ZPixmap");
    assert!(bpp == 32 || bpp == 24, "{bpp} bits per pixel");
    let data = header_size + ncolors * 12;
    let channel = |v: u32, mask: u32| ((v & mask) >> mask.trailing_zeros()) & 0xFF;
    let mut pixels = Vec::with_capacity((width * height) as usize);
    for y in 0..height as usize {
        for x in 0..width as usize {
            let at = data + y * bpl + x * (bpp as usize / 8);
            let raw = &b[at..at + bpp as usize / 8];
            let v = match (bpp, byte_order) {
                (32, 0) => u32::from_le_bytes(raw.try_into().unwrap()),
                (32, _) => u32::from_be_bytes(raw.try_into().unwrap()),
                (_, 0) => u32::from(raw[0]) | u32::from(raw[1]) << 8 | u32::from(raw[2]) << 16,
                _ => u32::from(raw[2]) | u32::from(raw[1]) << 8 | u32::from(raw[0]) << 16,
            };
            pixels.push(channel(v, rmask) << 16 | channel(v, gmask) << 8 | channel(v, bmask));
        }
    }
    Image {
        width,
        height,
        pixels,
    }
}

/// The standard 16 text colours as the power-on DAC holds them (6 bits
/// a channel), widened to 8 bits as the VGA's screenshots widen them.
fn colour(i: usize) -> u32 {
    const DAC: [[u8; 3]; 16] = [
        [0x00, 0x00, 0x00],
        [0x00, 0x00, 0x2A],
        [0x00, 0x2A, 0x00],
        [0x00, 0x2A, 0x2A],
        [0x2A, 0x00, 0x00],
        [0x2A, 0x00, 0x2A],
        [0x2A, 0x15, 0x00],
        [0x2A, 0x2A, 0x2A],
        [0x15, 0x15, 0x15],
        [0x15, 0x15, 0x3F],
        [0x15, 0x3F, 0x15],
        [0x15, 0x3F, 0x3F],
        [0x3F, 0x15, 0x15],
        [0x3F, 0x15, 0x3F],
        [0x3F, 0x3F, 0x15],
        [0x3F, 0x3F, 0x3F],
    ];
    let [r, g, b] = DAC[i].map(|c| u32::from(widen6(c)));
    r << 16 | g << 8 | b
}

/// The 80x25 text screen of `text` (one line per row, code page 437 as
/// UTF-8, as `--screen-text` writes it) drawn with the VGA's 8x16 font in
/// 9-pixel cells, row `r` in attribute `attr(r)`, without a cursor.
fn render_text(text: &str, attr: impl Fn(usize) -> usize) -> Image {
    let (cols, rows) = (80usize, 25usize);
    let (cw, ch) = (9usize, 16usize);
    let to_cp437 = |c: char| (0..=255u8).find(|&b| cp437_to_char(b) == c).unwrap_or(b'?');
    let lines: Vec<&str> = text.lines().collect();
    let mut img = Image {
        width: (cols * cw) as u32,
        height: (rows * ch) as u32,
        pixels: vec![0; cols * cw * rows * ch],
    };
    for r in 0..rows {
        let chars: Vec<char> = lines.get(r).map_or(Vec::new(), |l| l.chars().collect());
        let attr = attr(r);
        let (fg, bg) = (colour(attr & 15), colour(attr >> 4));
        for c in 0..cols {
            let code = chars.get(c).map_or(b' ', |&x| to_cp437(x));
            for y in 0..ch {
                let bits = FONT_8X16[usize::from(code) * 16 + y];
                for x in 0..cw {
                    let on = x < 8 && bits & (0x80 >> x) != 0;
                    img.pixels[(r * ch + y) * cols * cw + c * cw + x] = if on { fg } else { bg };
                }
            }
        }
    }
    img
}

/// Reads an 80x25 text screen drawn with the VGA's 8x16 font in 9-pixel
/// cells (a window capture) back into text: a cell whose pixels other than
/// its background (its ninth column's colour) form a printable ASCII
/// glyph is that character, a cell of background only is a space, any
/// other cell (the cursor's, say) is '?'. Rows are trimmed.
fn read_screen(img: &Image) -> Vec<String> {
    let (cw, ch) = (9u32, 16u32);
    let mut rows = Vec::new();
    for r in 0..img.height / ch {
        let mut row = String::new();
        for c in 0..img.width / cw {
            let px = |x: u32, y: u32| img.pixels[((r * ch + y) * img.width + c * cw + x) as usize];
            let bg = px(8, 0);
            let glyph: Vec<u8> = (0..ch)
                .map(|y| (0..8).fold(0u8, |g, x| g | u8::from(px(x, y) != bg) << (7 - x)))
                .collect();
            let found = (0x20..0x7F)
                .find(|&code: &usize| FONT_8X16[code * 16..code * 16 + 16] == glyph[..]);
            row.push(found.map_or('?', |code| code as u8 as char));
        }
        rows.push(row.trim_end().to_string());
    }
    rows
}

/// The 9x16 cells in which two text-mode images differ.
fn differing_cells(a: &Image, b: &Image) -> Vec<(u32, u32)> {
    let mut cells = Vec::new();
    for (i, (x, y)) in a.pixels.iter().zip(&b.pixels).enumerate() {
        if x != y {
            let (px, py) = (i as u32 % a.width, i as u32 / a.width);
            let cell = (px / 9, py / 16);
            if !cells.contains(&cell) {
                cells.push(cell);
            }
        }
    }
    cells
}

/// Captures window `wid` (xwd) into `path` and reads it.
fn capture(wid: &str, path: &Path) -> Image {
    tool(
        "xwd",
        &["-silent", "-id", wid, "-out", path.to_str().unwrap()],
    );
    read_xwd(path)
}

/// Finds the window whose name starts with `name` (an X window id).
fn find_window(name: &str) -> String {
    wait_for("the window", 120, || {
        let out = Command::new("xdotool")
            .args(["search", "--name", &format!("^{name}")])
            .output()
            .ok()?;
        let s = String::from_utf8_lossy(&out.stdout);
        s.lines().next().map(str::to_string)
    })
}

/// Where two images differ first (for the failure message).
fn first_difference(a: &Image, b: &Image) -> Option<(u32, u32, u32, u32)> {
    let i = a.pixels.iter().zip(&b.pixels).position(|(x, y)| x != y)?;
    let w = a.width as usize;
    Some(((i % w) as u32, (i / w) as u32, a.pixels[i], b.pixels[i]))
}

struct Guest {
    child: Child,
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs an X display with Vulkan (scripts/window-test.sh runs it under Xvfb)"]
fn the_window_shows_the_screen_and_takes_keys_and_mouse() {
    assert!(
        std::env::var_os("DISPLAY").is_some(),
        "no DISPLAY: run scripts/window-test.sh (it starts Xvfb)"
    );
    let built = Command::new("sh")
        .arg(roms_dir().join("build.sh"))
        .output()
        .expect("roms/build.sh");
    assert!(built.status.success(), "roms/build.sh failed");
    let dir = std::env::temp_dir().join(format!("morph86-window-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (serial, shot, text, cap) = (
        dir.join("serial.txt"),
        dir.join("shot.png"),
        dir.join("screen.txt"),
        dir.join("window.xwd"),
    );
    let log = std::fs::File::create(dir.join("morph86.log")).unwrap();
    let kernel = roms_dir().join("build/kbd.elf");
    let child = Command::new(env!("CARGO_BIN_EXE_morph86"))
        .arg("run")
        .arg("--kernel")
        .arg(&kernel)
        .args(["--display", "window", "--exit-port"])
        .arg(format!("--serial=file:{}", serial.display()))
        .arg("--screenshot")
        .arg(&shot)
        .arg("--screen-text")
        .arg(&text)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("starting morph86");
    let mut guest = Guest { child };

    let wid = find_window("morph86: kbd.elf");
    wait_for("the guest's READY", 60, || {
        read(&serial).contains("READY").then_some(())
    });
    let title = || tool("xdotool", &["getwindowname", &wid]);
    let t = wait_for("the speed in the title", 30, || {
        let t = title();
        t.contains("MIPS").then_some(t)
    });
    assert!(t.contains("running"), "{t}");

    // Type as a person would: X key events into the focused window.
    tool("xdotool", &["windowfocus", "--sync", &wid]);
    tool(
        "xdotool",
        &["type", "--delay", "40", "echo Hello, World 42!"],
    );
    tool("xdotool", &["key", "--delay", "40", "Return"]);
    wait_for("the command's output on COM1", 30, || {
        read(&serial).contains("\nHello, World 42!\n").then_some(())
    });
    // The window shows it, read back through the font.
    wait_for("the output in the window", 10, || {
        let rows = read_screen(&capture(&wid, &cap));
        let at = rows.iter().position(|r| r == "> echo Hello, World 42!")?;
        (rows.get(at + 1).map(String::as_str) == Some("Hello, World 42!")).then_some(())
    });
    // Backspace, and an extended key (Up: E0 48 / E0 C8 in set 1).
    tool("xdotool", &["type", "--delay", "40", "echo abx"]);
    tool(
        "xdotool",
        &["key", "--delay", "40", "BackSpace", "c", "Up", "Return"],
    );
    wait_for("the second command", 30, || {
        read(&serial).contains("\nabc\n").then_some(())
    });
    let s = read(&serial);
    assert!(s.contains("key e0\nkey 48\nkey e0\nkey c8\n"), "{s}");
    assert!(s.contains("key 0e\nkey 8e\n"), "Backspace: {s}");

    // Pause and resume.
    tool("xdotool", &["key", "ctrl+alt+p"]);
    wait_for("paused in the title", 10, || {
        title().contains("paused").then_some(())
    });
    tool("xdotool", &["key", "ctrl+alt+p"]);
    wait_for("running again", 10, || {
        title().contains("running").then_some(())
    });

    // Mouse: a click captures it, motion reaches the guest, the chord
    // releases it.
    tool("xdotool", &["mousemove", "--window", &wid, "100", "100"]);
    tool("xdotool", &["click", "1"]);
    wait_for("the capture in the title", 10, || {
        title()
            .contains("Ctrl+Alt+G releases the mouse")
            .then_some(())
    });
    let packets_before = read(&serial).matches("mouse ").count();
    for _ in 0..5 {
        tool("xdotool", &["mousemove_relative", "--", "7", "-3"]);
        std::thread::sleep(Duration::from_millis(50));
    }
    tool("xdotool", &["click", "1"]);
    wait_for("mouse packets on COM1", 10, || {
        (read(&serial).matches("mouse ").count() > packets_before).then_some(())
    });
    tool("xdotool", &["key", "ctrl+alt+g"]);
    wait_for("the release in the title", 10, || {
        (!title().contains("releases the mouse")).then_some(())
    });

    // The window as X shows it, once the last output has been drawn.
    std::thread::sleep(Duration::from_millis(700));
    tool(
        "xwd",
        &["-silent", "-id", &wid, "-out", cap.to_str().unwrap()],
    );
    // A larger window keeps the aspect ratio: 720x400 scaled by 1.5 into
    // 1080x800 leaves black bars of 100 rows above and below.
    tool("xdotool", &["windowsize", &wid, "1080", "800"]);
    let big = dir.join("big.xwd");
    let scaled = wait_for("the window at its new size", 10, || {
        std::thread::sleep(Duration::from_millis(300));
        Some(capture(&wid, &big)).filter(|i| (i.width, i.height) == (1080, 800))
    });
    let row_black =
        |y: u32| (0..scaled.width).all(|x| scaled.pixels[(y * scaled.width + x) as usize] == 0);
    assert!((0..95).chain(705..800).all(row_black), "letterbox bars");
    let bluish = |p: &&u32| **p & 0xFF > 0x80 && **p >> 16 < 0x40;
    let title_row = &scaled.pixels[(110 * 1080) as usize..(111 * 1080) as usize];
    assert!(
        title_row.iter().filter(bluish).count() > 500,
        "the title bar, scaled"
    );
    tool("xdotool", &["key", "ctrl+alt+q"]);
    let status = wait_for("morph86 to end", 60, || {
        guest.child.try_wait().ok().flatten()
    });
    assert!(
        status.success(),
        "{status}: {}",
        read(&dir.join("morph86.log"))
    );
    let log = read(&dir.join("morph86.log"));
    assert!(log.contains("stopped by the user"), "{log}");

    let screen = read(&text);
    assert!(
        screen.contains("> echo Hello, World 42!\nHello, World 42!\n"),
        "{screen}"
    );
    assert!(screen.contains("> echo abc\nabc\n"), "{screen}");
    let shot = read_png(&shot);
    let expected = render_text(&screen, |r| if r == 0 { 0x1F } else { 0x07 });
    assert_eq!(
        first_difference(&shot, &expected),
        None,
        "the screenshot differs from the text drawn with the font (x, y, got, want)"
    );
    assert_eq!(shot, expected);
    let window = read_xwd(&cap);
    assert_eq!((window.width, window.height), (shot.width, shot.height));
    assert_eq!(
        first_difference(&window, &shot),
        None,
        "the window differs from --screenshot (x, y, window, screenshot)"
    );
    if let Some(d) = std::env::var_os("MORPH86_WINDOW_SHOTS") {
        write_png(&Path::new(&d).join("window-kbd.png"), &window);
    }
    drop(guest);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The Linux guest (`scripts/build-guest.sh`) on its VGA text console in
/// the window: it boots to the shell (read from the window through the
/// font), a command typed into the window runs and its output shows; the
/// `--screenshot` matches the text screen drawn with the font, and the
/// window capture the screenshot, both but for the cursor's cell (it
/// blinks).
#[test]
#[ignore = "needs an X display with Vulkan and the Linux guest (scripts/window-test.sh --linux)"]
fn linux_boots_to_its_text_console_in_the_window() {
    assert!(
        std::env::var_os("DISPLAY").is_some(),
        "no DISPLAY: run scripts/window-test.sh --linux (it starts Xvfb)"
    );
    let guest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../guest");
    assert!(
        guest.join("bzImage").exists(),
        "no guest/bzImage: run scripts/build-guest.sh"
    );
    let dir = std::env::temp_dir().join(format!("morph86-window-linux-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (shot, text, cap) = (
        dir.join("shot.png"),
        dir.join("screen.txt"),
        dir.join("window.xwd"),
    );
    let log = std::fs::File::create(dir.join("morph86.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_morph86"))
        .arg("run")
        .args(["--engine", "jit", "--display", "window", "--serial", "none"])
        .arg("--kernel")
        .arg(guest.join("bzImage"))
        .arg("--initrd")
        .arg(guest.join("initramfs.cpio.gz"))
        .args(["--append", "console=tty0 morph86.vtshell"])
        .arg("--screenshot")
        .arg(&shot)
        .arg("--screen-text")
        .arg(&text)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("starting morph86");
    let mut run = Guest { child };
    let wid = find_window("morph86: bzImage");
    // About 7 G instructions to the shell.
    wait_for("the shell's prompt in the window", 900, || {
        std::thread::sleep(Duration::from_secs(2));
        let rows = read_screen(&capture(&wid, &cap));
        rows.iter().any(|r| r.starts_with("morph86#")).then_some(())
    });
    tool("xdotool", &["windowfocus", "--sync", &wid]);
    // Kernel messages (the RNG's, say) would land in the typed line.
    tool("xdotool", &["type", "--delay", "60", "dmesg -n 1"]);
    tool("xdotool", &["key", "Return"]);
    // Typed ahead, the next line would be echoed before the prompt.
    wait_for("the prompt after dmesg", 60, || {
        std::thread::sleep(Duration::from_millis(300));
        let rows = read_screen(&capture(&wid, &cap));
        let rows: Vec<&String> = rows.iter().filter(|r| !r.is_empty()).collect();
        let n = rows.len();
        (n >= 2 && rows[n - 2] == "morph86# dmesg -n 1" && rows[n - 1].starts_with("morph86#"))
            .then_some(())
    });
    tool(
        "xdotool",
        &[
            "type",
            "--delay",
            "60",
            "echo morph86 $((6*7)) | tr a-z A-Z",
        ],
    );
    tool("xdotool", &["key", "Return"]);
    wait_for("the command's output in the window", 120, || {
        std::thread::sleep(Duration::from_millis(500));
        let rows = read_screen(&capture(&wid, &cap));
        rows.iter().any(|r| r == "MORPH86 42").then_some(())
    });
    std::thread::sleep(Duration::from_millis(700));
    let window = capture(&wid, &cap);
    tool("xdotool", &["key", "ctrl+alt+q"]);
    let status = wait_for("morph86 to end", 60, || run.child.try_wait().ok().flatten());
    let log = read(&dir.join("morph86.log"));
    assert!(status.success(), "{status}: {log}");
    assert!(log.contains("stopped by the user"), "{log}");
    let screen = read(&text);
    assert!(
        screen.contains("morph86# echo morph86 $((6*7)) | tr a-z A-Z\nMORPH86 42\n"),
        "{screen}"
    );
    let shot = read_png(&shot);
    let expected = render_text(&screen, |_| 0x07);
    let cells = differing_cells(&shot, &expected);
    assert!(
        cells.len() <= 1,
        "the screenshot differs from the text drawn with the font in cells {cells:?}"
    );
    assert_eq!((window.width, window.height), (shot.width, shot.height));
    let cells = differing_cells(&window, &shot);
    assert!(
        cells.len() <= 1,
        "the window differs from --screenshot in cells {cells:?}"
    );
    if let Some(d) = std::env::var_os("MORPH86_WINDOW_SHOTS") {
        write_png(&Path::new(&d).join("window-linux.png"), &window);
    }
    drop(run);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A guest that switches from text to mode 13h and halts for good
/// (roms/src/vga.c): the window follows the mode's size, shows the picture
/// (the same as `--screenshot`), says "halted" and stays open until it is
/// closed (here by destroying it, as `xdotool windowclose` does).
#[test]
#[ignore = "needs an X display with Vulkan (scripts/window-test.sh runs it under Xvfb)"]
fn a_halted_graphics_guest_stays_on_screen() {
    assert!(
        std::env::var_os("DISPLAY").is_some(),
        "no DISPLAY: run scripts/window-test.sh (it starts Xvfb)"
    );
    let built = Command::new("sh")
        .arg(roms_dir().join("build.sh"))
        .output()
        .expect("roms/build.sh");
    assert!(built.status.success(), "roms/build.sh failed");
    let dir = std::env::temp_dir().join(format!("morph86-window-13h-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (shot, cap) = (dir.join("shot.png"), dir.join("window.xwd"));
    let log = std::fs::File::create(dir.join("morph86.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_morph86"))
        .arg("run")
        .arg("--kernel")
        .arg(roms_dir().join("build/vga.elf"))
        .args([
            "--append",
            "draw=13h",
            "--display",
            "window",
            "--serial",
            "none",
        ])
        .arg("--screenshot")
        .arg(&shot)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("starting morph86");
    let mut run = Guest { child };
    let wid = find_window("morph86: vga.elf");
    wait_for("halted in the title", 60, || {
        tool("xdotool", &["getwindowname", &wid])
            .contains("halted")
            .then_some(())
    });
    // The screenshot is written at the end of the run, before the window
    // hears of it.
    let shot = read_png(&shot);
    // The VGA doubles mode 13h's pixels horizontally and its lines
    // (double scan): 640x400, as QEMU shows it; the window shows screens
    // narrower than 640 pixels at twice their size, others at 1:1.
    assert_eq!((shot.width, shot.height), (640, 400));
    let k = if shot.width < 640 { 2 } else { 1 };
    let (w, h) = (shot.width * k, shot.height * k);
    let window = wait_for("the window at the screen's size", 10, || {
        std::thread::sleep(Duration::from_millis(300));
        Some(capture(&wid, &cap)).filter(|i| (i.width, i.height) == (w, h))
    });
    let scaled = Image {
        width: w,
        height: h,
        pixels: (0..w * h)
            .map(|i| shot.pixels[((i / w / k) * shot.width + (i % w) / k) as usize])
            .collect(),
    };
    assert_eq!(
        first_difference(&window, &scaled),
        None,
        "the window differs from --screenshot (x, y, window, screenshot)"
    );
    assert!(
        run.child.try_wait().unwrap().is_none(),
        "the window stays open"
    );
    tool("xdotool", &["windowclose", &wid]);
    let status = wait_for("morph86 to end", 30, || run.child.try_wait().ok().flatten());
    assert!(
        status.success(),
        "{status}: {}",
        read(&dir.join("morph86.log"))
    );
    drop(run);
    let _ = std::fs::remove_dir_all(&dir);
}
