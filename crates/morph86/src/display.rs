//! `morph86 run --display window|none`: where the screen is shown. With a
//! window, the machine runs on its own thread and the main thread runs the
//! window (`morph86-window`); the run still ends through the one
//! end-of-run path of `run_cmd` (disks and output flushed, screenshots and
//! screen text written), whichever side ended it.

use anyhow::{anyhow, bail, Result};
use morph86_machine::{Machine, RunExit, VgaModel};
use morph86_window::{RunState, Ui};
use std::process::ExitCode;

/// Where the screen goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisplayMode {
    /// A desktop window.
    Window,
    /// Nowhere (headless; `--screenshot` and `--screen-text` still work).
    None,
}

impl std::str::FromStr for DisplayMode {
    type Err = String;
    fn from_str(s: &str) -> Result<DisplayMode, String> {
        match s {
            "window" => Ok(DisplayMode::Window),
            "none" => Ok(DisplayMode::None),
            _ => Err(format!("unknown display {s:?} (known: window, none)")),
        }
    }
}

/// The display a run gets: the one asked for, else a window when the
/// environment names a display and the machine has a VGA. The second
/// value says whether it was asked for (a window that cannot open is then
/// an error, not a quiet fallback).
pub fn choose(asked: Option<DisplayMode>, vga: VgaModel) -> Result<(DisplayMode, bool)> {
    match asked {
        Some(DisplayMode::Window) if vga == VgaModel::None => {
            bail!("--display window needs a display adapter (--vga std)")
        }
        Some(d) => Ok((d, true)),
        None if vga != VgaModel::None && morph86_window::display_available() => {
            Ok((DisplayMode::Window, false))
        }
        None => Ok((DisplayMode::None, false)),
    }
}

/// How the title bar and the window take the end of a run: a guest halted
/// for good keeps its last screen on view until the window is closed;
/// every other ending closes the window.
pub fn end_state(exit: &RunExit) -> (RunState, bool) {
    match exit {
        RunExit::Halted { .. } => (RunState::Halted, true),
        _ => (RunState::Stopped, false),
    }
}

/// The end-of-run notice the window gets from the machine thread.
pub type Notify = Box<dyn FnOnce(&Machine, &RunExit) + Send>;

/// What [`run_windowed`] did.
pub enum Windowed<F> {
    /// The run went to its end with a window.
    Ran(Result<ExitCode>),
    /// The window could not open (the reason); the machine and the
    /// end-of-run path come back untouched.
    NoWindow(Box<Machine>, F, anyhow::Error),
}

/// Runs `m` to its end with a window: `run` (the end-of-run path, given
/// the window's notice to call once the run is over) on a new thread, the
/// window on this one.
pub fn run_windowed<F>(mut m: Machine, name: &str, run: F) -> Windowed<F>
where
    F: FnOnce(Machine, Option<Notify>) -> Result<ExitCode> + Send + 'static,
{
    m.update_display();
    let (w, h) = m
        .frame()
        .map(|f| (f.width, f.height))
        .filter(|&(w, h)| w > 0 && h > 0)
        .unwrap_or((720, 400));
    let (ui, link, end) = match Ui::open(name, w, h) {
        Ok(x) => x,
        Err(e) => return Windowed::NoWindow(Box::new(m), run, e.into()),
    };
    m.set_host_link(Some(Box::new(link)));
    let notify: Notify = Box::new(move |m, exit| {
        let (state, keep_open) = end_state(exit);
        end.finish(m.frame(), state, keep_open);
    });
    // The interpreter recurses little, but a deep guest fault chain should
    // not meet a small thread stack.
    let machine = std::thread::Builder::new()
        .name("machine".into())
        .stack_size(64 << 20)
        .spawn(move || run(m, Some(notify)));
    let machine = match machine {
        Ok(h) => h,
        Err(e) => return Windowed::Ran(Err(anyhow!("starting the machine thread: {e}"))),
    };
    ui.run();
    Windowed::Ran(
        machine
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the machine thread panicked"))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_display_is_chosen_and_checked() {
        assert_eq!(
            choose(Some(DisplayMode::None), VgaModel::Std).unwrap(),
            (DisplayMode::None, true)
        );
        assert_eq!(
            choose(Some(DisplayMode::Window), VgaModel::Std).unwrap(),
            (DisplayMode::Window, true)
        );
        assert!(choose(Some(DisplayMode::Window), VgaModel::None).is_err());
        assert_eq!(
            choose(None, VgaModel::None).unwrap(),
            (DisplayMode::None, false)
        );
        assert_eq!("window".parse(), Ok(DisplayMode::Window));
        assert!("sdl".parse::<DisplayMode>().is_err());
        let halted = RunExit::Halted {
            cs: 8,
            eip: 0,
            interrupts_enabled: false,
        };
        assert_eq!(end_state(&halted), (RunState::Halted, true));
        assert_eq!(end_state(&RunExit::PowerOff), (RunState::Stopped, false));
    }
}
