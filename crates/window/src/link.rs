//! The machine's side of the window: a [`HostLink`] that runs at the
//! machine's host check points on the emulator thread. It hands the
//! user's input to the guest, renders the screen about 60 times a second
//! and sends what changed to the UI thread, reports the speed once a
//! second, and pauses or ends the run when the UI asks.

use crate::{FrameUpdate, RunState, ToMachine, ToUi, Wake};
use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use morph86_devices::vga::{DirtyRect, Frame};
use morph86_machine::HostInput;
use morph86_machine::{HostLink, Machine, RunExit};
use std::time::{Duration, Instant};
use winit::event_loop::EventLoopProxy;

/// How often the screen is rendered for the window (about 60 Hz).
pub const FRAME_INTERVAL: Duration = Duration::from_micros(16_667);

/// How often the title's speed is updated.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// Sends to the UI thread and wakes its event loop.
#[derive(Clone)]
pub(crate) struct UiSender {
    pub(crate) events: Sender<ToUi>,
    pub(crate) frames: Sender<FrameUpdate>,
    pub(crate) proxy: EventLoopProxy<Wake>,
}

impl UiSender {
    fn event(&self, e: ToUi) {
        // The UI may be gone (the window was closed): nothing to tell then.
        if self.events.send(e).is_ok() {
            let _ = self.proxy.send_event(Wake);
        }
    }

    /// Sends the `rect` of `frame` unless the UI's queue is full; false
    /// when it was full (the caller keeps the rectangle for later).
    fn try_frame(&self, frame: &Frame, rect: DirtyRect) -> bool {
        match self.frames.try_send(FrameUpdate::cut(frame, rect)) {
            Ok(()) => {
                let _ = self.proxy.send_event(Wake);
                true
            }
            Err(TrySendError::Full(_)) => false,
            Err(TrySendError::Disconnected(_)) => true,
        }
    }
}

/// The [`HostLink`] of a window front end (see the module docs).
pub struct WindowLink {
    ui: UiSender,
    commands: Receiver<ToMachine>,
    next_frame: Instant,
    /// The part of the frame changed but not yet sent.
    pending: Option<DirtyRect>,
    /// The size of the frame the UI has.
    sent_size: (u32, u32),
    status_at: Instant,
    status_icount: u64,
    /// Mouse motion taken but not yet handed over (motion with the same
    /// buttons is merged: one packet per check point, not one per X event).
    mouse: Option<HostInput>,
}

impl WindowLink {
    pub(crate) fn new(ui: UiSender, commands: Receiver<ToMachine>) -> WindowLink {
        let now = Instant::now();
        WindowLink {
            ui,
            commands,
            next_frame: now,
            pending: None,
            sent_size: (0, 0),
            status_at: now,
            status_icount: 0,
            mouse: None,
        }
    }

    /// Hands `input` to the guest, merging mouse motion.
    fn input(&mut self, m: &mut Machine, input: HostInput) {
        if let HostInput::Mouse {
            dx,
            dy,
            dz,
            buttons,
        } = input
        {
            if let Some(HostInput::Mouse {
                dx: ax,
                dy: ay,
                dz: az,
                buttons: ab,
            }) = &mut self.mouse
            {
                if *ab == buttons {
                    *ax = ax.saturating_add(dx);
                    *ay = ay.saturating_add(dy);
                    *az = az.saturating_add(dz);
                    return;
                }
            }
            self.flush_mouse(m);
            self.mouse = Some(input);
            return;
        }
        self.flush_mouse(m);
        m.host_input(&input);
    }

    fn flush_mouse(&mut self, m: &mut Machine) {
        if let Some(i) = self.mouse.take() {
            m.host_input(&i);
        }
    }

    /// Renders the screen and sends what changed, if the UI has room.
    fn push_frame(&mut self, m: &mut Machine) {
        if let Some(r) = m.update_display() {
            self.pending = Some(match self.pending {
                Some(p) => p.union(r),
                None => r,
            });
        }
        let Some(frame) = m.frame() else { return };
        let size = (frame.width, frame.height);
        if size != self.sent_size {
            self.pending = Some(DirtyRect::full(size.0, size.1));
        }
        let Some(rect) = self.pending else { return };
        if self.ui.try_frame(frame, rect) {
            self.pending = None;
            self.sent_size = size;
        }
    }

    fn status(&mut self, m: &Machine, now: Instant, state: RunState) {
        let secs = now.duration_since(self.status_at).as_secs_f64();
        let icount = m.cpu.icount;
        let mips = if secs > 0.0 {
            icount.saturating_sub(self.status_icount) as f64 / secs / 1e6
        } else {
            0.0
        };
        self.status_at = now;
        self.status_icount = icount;
        self.ui.event(ToUi::Status {
            state,
            mips: Some(mips),
        });
    }

    /// Waits for the UI to resume (or quit); input that arrives meanwhile
    /// is handed over at this same check point.
    fn paused(&mut self, m: &mut Machine) -> Option<RunExit> {
        self.push_frame(m);
        self.ui.event(ToUi::Status {
            state: RunState::Paused,
            mips: None,
        });
        loop {
            match self.commands.recv() {
                Ok(ToMachine::Input(i)) => self.input(m, i),
                Ok(ToMachine::Pause) => break,
                Ok(ToMachine::Quit) | Err(_) => return Some(RunExit::Stopped),
            }
        }
        let now = Instant::now();
        self.status_at = now;
        self.status_icount = m.cpu.icount;
        self.ui.event(ToUi::Status {
            state: RunState::Running,
            mips: None,
        });
        None
    }
}

impl HostLink for WindowLink {
    fn check(&mut self, m: &mut Machine) -> Option<RunExit> {
        loop {
            match self.commands.try_recv() {
                Ok(ToMachine::Input(i)) => self.input(m, i),
                Ok(ToMachine::Pause) => {
                    if let Some(e) = self.paused(m) {
                        return Some(e);
                    }
                }
                Ok(ToMachine::Quit) | Err(TryRecvError::Disconnected) => {
                    return Some(RunExit::Stopped)
                }
                Err(TryRecvError::Empty) => break,
            }
        }
        self.flush_mouse(m);
        let now = Instant::now();
        if now >= self.next_frame {
            self.next_frame = now + FRAME_INTERVAL;
            self.push_frame(m);
        }
        if now.duration_since(self.status_at) >= STATUS_INTERVAL {
            self.status(m, now, RunState::Running);
        }
        None
    }
}

/// Tells the UI how the run ended, from the emulator thread after the
/// machine's end-of-run work (disks flushed, screenshots written). Dropped
/// without [`EndHandle::finish`] (the machine thread panicked), it closes
/// the window, so the UI never waits for a machine that is gone.
pub struct EndHandle {
    pub(crate) ui: UiSender,
    pub(crate) sent: bool,
}

impl Drop for EndHandle {
    fn drop(&mut self) {
        if !self.sent {
            self.ui.event(ToUi::Ended {
                state: RunState::Stopped,
                keep_open: false,
            });
        }
    }
}

impl EndHandle {
    /// Shows `frame` (the screen at the end) and ends the UI: the window
    /// closes, unless `keep_open`, when it stays with `state` in its title
    /// until the user closes it.
    pub fn finish(mut self, frame: Option<&Frame>, state: RunState, keep_open: bool) {
        self.sent = true;
        if let Some(f) = frame {
            if f.width > 0 && f.height > 0 {
                let full = FrameUpdate::cut(f, DirtyRect::full(f.width, f.height));
                // The UI drains its queue; it may also be gone.
                let _ = self.ui.frames.send_timeout(full, Duration::from_secs(1));
            }
        }
        self.ui.event(ToUi::Ended { state, keep_open });
    }
}
