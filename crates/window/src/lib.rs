//! The window front end of morph86: the guest's screen in a desktop
//! window (winit + pixels), the host keyboard and mouse as a PS/2 keyboard
//! and mouse, and a title bar with the run state and speed.
//!
//! # Threads
//!
//! The UI thread (the process's main thread: winit wants it) owns the
//! window. The machine runs on its own thread. They talk through
//! `crossbeam-channel`:
//! - machine to UI: changed parts of the screen ([`FrameUpdate`], a
//!   bounded queue: when the UI falls behind, the machine merges the
//!   changes and sends them later), the state and speed once a second, and
//!   the end of the run; each message also wakes the UI's event loop;
//! - UI to machine: input ([`morph86_machine::HostInput`]) and commands
//!   (pause, quit), taken by [`WindowLink`] at the machine's host check
//!   points only, so the guest sees input between instructions at fixed
//!   instruction counts, never in the middle of a batch.
//!
//! The machine knows no window: [`WindowLink`] is a
//! [`morph86_machine::HostLink`], the machine's hook for front ends.
//!
//! # Using it
//!
//! [`Ui::open`] opens the window on the main thread (and fails cleanly
//! when there is no display or no graphics adapter); the caller installs
//! the returned [`WindowLink`] in the machine, runs the machine on another
//! thread and, when the run has ended and the end-of-run work is done,
//! calls [`EndHandle::finish`]; meanwhile the main thread runs [`Ui::run`]
//! until the window closes. Closing the window stops the machine at its
//! next check point ([`morph86_machine::RunExit::Stopped`]), so the run
//! ends through the machine's normal end-of-run path.
//!
//! # Keys and mouse
//!
//! Keys go to the guest whenever the window has focus (see [`keymap`]). A
//! click captures the mouse (the pointer is confined and hidden, and its
//! relative motion goes to the PS/2 mouse); Ctrl+Alt+G releases it, as the
//! title says while it is captured. Ctrl+Alt+P pauses and resumes the
//! machine; Ctrl+Alt+Q quits. Chord keys other than Ctrl and Alt do not
//! reach the guest.

pub mod keymap;
mod link;
mod ui;

pub use link::{EndHandle, WindowLink, FRAME_INTERVAL, STATUS_INTERVAL};
pub use ui::Ui;

use morph86_devices::vga::{DirtyRect, Frame};
use morph86_machine::HostInput;
use thiserror::Error;

/// What the title bar says the machine is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Running guest code.
    Running,
    /// Paused by the user (Ctrl+Alt+P).
    Paused,
    /// The run is over with the guest halted for good (HLT with nothing
    /// to wake it); the window shows its last screen.
    Halted,
    /// The run is over for another reason.
    Stopped,
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Halted => "halted",
            RunState::Stopped => "stopped",
        })
    }
}

/// A changed rectangle of the screen: its pixels (`0x00RRGGBB`, row after
/// row) and the size of the whole screen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameUpdate {
    /// The screen's width.
    pub width: u32,
    /// The screen's height.
    pub height: u32,
    /// Where the pixels go.
    pub rect: DirtyRect,
    /// `rect.width * rect.height` pixels.
    pub pixels: Vec<u32>,
}

impl FrameUpdate {
    /// The part `rect` of `frame` (clipped to the frame).
    pub fn cut(frame: &Frame, rect: DirtyRect) -> FrameUpdate {
        let x0 = rect.x.min(frame.width);
        let y0 = rect.y.min(frame.height);
        let x1 = rect.x.saturating_add(rect.width).min(frame.width);
        let y1 = rect.y.saturating_add(rect.height).min(frame.height);
        let rect = DirtyRect {
            x: x0,
            y: y0,
            width: x1 - x0,
            height: y1 - y0,
        };
        let mut pixels = Vec::with_capacity((rect.width * rect.height) as usize);
        let w = frame.width as usize;
        for y in y0..y1 {
            let row = y as usize * w;
            pixels.extend_from_slice(&frame.pixels[row + x0 as usize..row + x1 as usize]);
        }
        FrameUpdate {
            width: frame.width,
            height: frame.height,
            rect,
            pixels,
        }
    }

    /// Writes the update into `rgba`, an RGBA8 buffer of the whole
    /// `width` x `height` screen.
    pub fn apply_rgba(&self, rgba: &mut [u8]) {
        let (w, r) = (self.width as usize, self.rect);
        if rgba.len() < w * self.height as usize * 4 {
            return;
        }
        for (i, row) in self.pixels.chunks(r.width.max(1) as usize).enumerate() {
            let at = ((r.y as usize + i) * w + r.x as usize) * 4;
            for (j, &p) in row.iter().enumerate() {
                let o = at + j * 4;
                rgba[o..o + 4].copy_from_slice(&[(p >> 16) as u8, (p >> 8) as u8, p as u8, 0xFF]);
            }
        }
    }
}

/// Messages to the UI thread.
#[derive(Debug)]
pub(crate) enum ToUi {
    /// The state, and the speed in million instructions per second since
    /// the last status (none right after a resume).
    Status {
        state: RunState,
        mips: Option<f64>,
    },
    Ended {
        state: RunState,
        keep_open: bool,
    },
}

/// Messages to the machine.
#[derive(Debug)]
pub(crate) enum ToMachine {
    Input(HostInput),
    /// Pause, or resume when paused.
    Pause,
    Quit,
}

/// The wake-up the machine sends the UI's event loop (the data itself goes
/// through the channels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wake;

/// Why the window could not be shown.
#[derive(Debug, Error)]
pub enum WindowError {
    /// No display to open a window on (winit could not connect to the
    /// one named).
    #[error("cannot open a window: no connection to the display {0:?}")]
    NoDisplay(String),
    /// The window could not be made.
    #[error("cannot create the window: {0}")]
    Os(#[from] winit::error::OsError),
    /// pixels found no graphics adapter (under Xvfb, Debian's
    /// mesa-vulkan-drivers provides a software one).
    #[error("cannot draw in the window: {0} (under Xvfb, install mesa-vulkan-drivers)")]
    Pixels(#[from] pixels::Error),
    /// The window did not appear in time.
    #[error("the window did not appear within {0} seconds")]
    Timeout(u64),
}

/// True when the environment names a display (X11's `DISPLAY` or
/// Wayland's `WAYLAND_DISPLAY`): where a window is the default.
pub fn display_available() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_cut_and_apply_rectangles() {
        let mut f = Frame::new(4, 3);
        for (i, p) in f.pixels.iter_mut().enumerate() {
            *p = i as u32 * 0x010203;
        }
        let u = FrameUpdate::cut(
            &f,
            DirtyRect {
                x: 1,
                y: 1,
                width: 5,
                height: 1,
            },
        );
        assert_eq!(u.rect.width, 3, "clipped to the frame");
        assert_eq!(u.pixels, &f.pixels[5..8]);
        let mut rgba = vec![0u8; 4 * 3 * 4];
        u.apply_rgba(&mut rgba);
        fn px(rgba: &[u8], x: usize, y: usize) -> &[u8] {
            &rgba[(y * 4 + x) * 4..(y * 4 + x) * 4 + 4]
        }
        assert_eq!(
            px(&rgba, 0, 1),
            [0, 0, 0, 0],
            "outside the rectangle untouched"
        );
        let p = f.pixels[6];
        assert_eq!(
            px(&rgba, 2, 1),
            [(p >> 16) as u8, (p >> 8) as u8, p as u8, 0xFF]
        );
        // A whole-frame update fills everything.
        FrameUpdate::cut(&f, DirtyRect::full(4, 3)).apply_rgba(&mut rgba);
        assert!(rgba.chunks(4).all(|c| c[3] == 0xFF));
        assert_eq!(px(&rgba, 3, 2)[2], f.pixels[11] as u8);
    }
}
