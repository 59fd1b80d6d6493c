//! The headless screen options of `morph86 run`: `--screenshot PATH`
//! (PNG), `--screenshot-at SECONDS`, `--screen-text PATH` and
//! `--exit-on-screen REGEX`.
//!
//! Paths are checked before the run starts: a run of minutes must not end
//! in "cannot write the screenshot".

use crate::run_cmd::RunArgs;
use anyhow::{bail, Context, Result};
use morph86_devices::vga::Frame;
use morph86_machine::{Machine, VgaModel};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

/// The screen options, checked.
#[derive(Debug, Default)]
pub struct ScreenOptions {
    screenshot: Option<PathBuf>,
    at_ns: Option<u64>,
    text: Option<PathBuf>,
    watch: Option<regex::Regex>,
}

/// Fails unless `path` can be written: opens it for writing, creating it
/// if needed, and removes it again if it did not exist.
pub fn check_writable(path: &Path, what: &str) -> Result<()> {
    let existed = path.exists();
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("{what} {}: cannot write there", path.display()))?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

impl ScreenOptions {
    /// Checks the options of `a`: the paths writable, the pattern valid,
    /// a display present, the time sensible.
    pub fn check(a: &RunArgs) -> Result<ScreenOptions> {
        let wanted =
            a.screenshot.is_some() || a.screen_text.is_some() || a.exit_on_screen.is_some();
        if wanted && a.vga == VgaModel::None {
            bail!("--screenshot, --screen-text and --exit-on-screen need a display (--vga std)");
        }
        if let Some(p) = &a.screenshot {
            check_writable(p, "--screenshot")?;
        }
        if let Some(p) = &a.screen_text {
            check_writable(p, "--screen-text")?;
        }
        let at_ns = match a.screenshot_at {
            Some(t) if !(t >= 0.0 && t.is_finite() && t < 1e9) => {
                bail!("--screenshot-at must be a number of seconds, 0 or more")
            }
            Some(t) => Some((t * 1e9) as u64),
            None => None,
        };
        let watch = match &a.exit_on_screen {
            Some(p) => {
                Some(regex::Regex::new(p).with_context(|| format!("--exit-on-screen {p:?}"))?)
            }
            None => None,
        };
        Ok(ScreenOptions {
            screenshot: a.screenshot.clone(),
            at_ns,
            text: a.screen_text.clone(),
            watch,
        })
    }

    /// Sets the machine's screen watch and timed screenshot.
    pub fn arm(&self, m: &mut Machine) {
        if let Some(re) = &self.watch {
            m.watch_screen(re.clone());
        }
        if let Some(ns) = self.at_ns {
            m.screenshot_at(ns);
        }
    }

    /// Writes the screenshot and the text screen at the end of a run.
    pub fn save(&self, m: &mut Machine) -> Result<()> {
        if let Some(path) = &self.screenshot {
            let timed = m.take_timed_screenshot();
            if self.at_ns.is_some() && timed.is_none() {
                eprintln!(
                    "morph86: the run ended before --screenshot-at; the screenshot shows its end"
                );
            }
            let frame = match timed.or_else(|| m.screenshot()) {
                Some(f) => f,
                None => bail!("no display to take a screenshot of"),
            };
            write_png(path, &frame)
                .with_context(|| format!("writing the screenshot {}", path.display()))?;
        }
        if let Some(path) = &self.text {
            let text = match m.screen_text() {
                Some(t) => t.to_string(),
                None => {
                    eprintln!("morph86: the screen is not in a text mode; --screen-text is empty");
                    String::new()
                }
            };
            std::fs::write(path, text)
                .with_context(|| format!("writing the screen text {}", path.display()))?;
        }
        Ok(())
    }
}

/// Writes `frame` as an 8-bit RGB PNG.
pub fn write_png(path: &Path, frame: &Frame) -> Result<()> {
    if frame.width == 0 || frame.height == 0 {
        bail!("the screen is empty (nothing was drawn yet)");
    }
    let file = std::fs::File::create(path)?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), frame.width, frame.height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header()?;
    w.write_image_data(&frame.rgb_bytes())?;
    w.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwritable_paths_are_refused_and_probes_leave_nothing() {
        let dir = std::env::temp_dir().join(format!("morph86-screen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("shot.png");
        check_writable(&p, "--screenshot").unwrap();
        assert!(!p.exists(), "the probe removes what it created");
        let e = check_writable(&dir.join("no/such/dir/x.png"), "--screenshot").unwrap_err();
        assert!(format!("{e:#}").contains("cannot write there"), "{e:#}");
        let mut f = Frame::new(3, 2);
        f.pixels[4] = 0x00FF_8000;
        write_png(&p, &f).unwrap();
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&p).unwrap()));
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (3, 2));
        assert_eq!(&buf[12..15], &[0xFF, 0x80, 0x00]);
        assert!(write_png(&p, &Frame::default()).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
