//! The machine's side of the window: a [`HostLink`] that runs at the
//! machine's host check points on the emulator thread. It hands the
//! user's input to the guest, renders the screen about 60 times a second
//! and sends what changed to the UI thread, reports the speed once a
//! second, and pauses or ends the run when the UI asks.

use crate::{FrameUpdate, RunState, ToMachine, ToUi};
use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use morph86_devices::vga::{DirtyRect, Frame};
use morph86_machine::HostInput;
use morph86_machine::{HostLink, Machine, RunExit};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the screen is rendered for the window (about 60 Hz).
pub const FRAME_INTERVAL: Duration = Duration::from_micros(16_667);

/// How often the title's speed is updated.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// Sends to the UI thread and wakes its event loop.
#[derive(Clone)]
pub(crate) struct UiSender {
    pub(crate) events: Sender<ToUi>,
    pub(crate) frames: Sender<FrameUpdate>,
    /// Wakes the UI's event loop (an `EventLoopProxy` in the window).
    pub(crate) wake: Arc<dyn Fn() + Send + Sync>,
}

impl UiSender {
    fn event(&self, e: ToUi) {
        // The UI may be gone (the window was closed): nothing to tell then.
        if self.events.send(e).is_ok() {
            (self.wake)();
        }
    }

    /// Sends the `rect` of `frame` unless the UI's queue is full; false
    /// when it was full (the caller keeps the rectangle for later).
    fn try_frame(&self, frame: &Frame, rect: DirtyRect) -> bool {
        match self.frames.try_send(FrameUpdate::cut(frame, rect)) {
            Ok(()) => {
                (self.wake)();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::{bounded, unbounded};
    use morph86_machine::{Machine, MachineConfig, RunLimits};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A Multiboot (a.out kludge) kernel at 1 MiB: puts 'A' at the top
    /// left of the text screen, then copies every byte from the 8042 to the
    /// second cell.
    fn kernel() -> Vec<u8> {
        let code = [
            0x66, 0xC7, 0x05, 0x00, 0x80, 0x0B, 0x00, b'A',
            0x1F, // mov word [0xb8000], 0x1f41
            0xE4, 0x64, // poll: in al, 0x64
            0xA8, 0x01, // test al, 1
            0x74, 0xFA, // jz poll
            0xE4, 0x60, // in al, 0x60
            0xA2, 0x02, 0x80, 0x0B, 0x00, // mov [0xb8002], al
            0xEB, 0xF3, // jmp poll
        ];
        let load = 0x10_0000u32;
        let flags = 1u32 << 16;
        let magic = morph86_machine::multiboot::HEADER_MAGIC;
        let mut k = Vec::new();
        for v in [
            magic,
            flags,
            magic.wrapping_add(flags).wrapping_neg(),
            load,
            load,
            load + 32 + code.len() as u32,
            0,
            load + 32,
        ] {
            k.extend(v.to_le_bytes());
        }
        k.extend_from_slice(&code);
        k
    }

    struct Ui {
        events: Receiver<ToUi>,
        frames: Receiver<FrameUpdate>,
        commands: Sender<ToMachine>,
        wakes: Arc<AtomicUsize>,
    }

    /// A machine running [`kernel`] with a link whose UI side is returned.
    fn machine() -> (Machine, Ui) {
        let mut m = Machine::new(MachineConfig {
            memory_mib: 4,
            no_reboot: true,
            ..Default::default()
        })
        .unwrap();
        m.boot_multiboot(kernel(), "", vec![]).unwrap();
        let (events_tx, events) = unbounded();
        let (frames_tx, frames) = bounded(2);
        let (commands, commands_rx) = unbounded();
        let wakes = Arc::new(AtomicUsize::new(0));
        let w = wakes.clone();
        let ui = UiSender {
            events: events_tx,
            frames: frames_tx,
            wake: Arc::new(move || {
                w.fetch_add(1, Ordering::Relaxed);
            }),
        };
        m.set_host_link(Some(Box::new(WindowLink::new(ui, commands_rx))));
        (
            m,
            Ui {
                events,
                frames,
                commands,
                wakes,
            },
        )
    }

    fn run(m: &mut Machine, insns: u64) -> RunExit {
        let max = m.cpu.icount + insns;
        m.run(RunLimits {
            max_insns: Some(max),
            timeout: None,
        })
    }

    /// The screen goes to the UI (whole at first, as the UI has nothing),
    /// keys reach the guest, and a quit ends the run at a check point.
    #[test]
    fn frames_out_keys_in_quit_stops() {
        let (mut m, ui) = machine();
        ui.commands
            .send(ToMachine::Input(morph86_machine::HostInput::Key(vec![
                0x1C,
            ])))
            .unwrap();
        assert_eq!(run(&mut m, 1_000_000), RunExit::InstructionLimit);
        let first = ui.frames.try_recv().expect("a frame");
        assert_eq!((first.width, first.height), (720, 400));
        assert_eq!(first.rect, DirtyRect::full(720, 400));
        assert!(ui.wakes.load(Ordering::Relaxed) >= 1);
        // Without translation (no BIOS turned it on) the guest sees set 2.
        let text = m.screen_text().unwrap();
        assert_eq!(text.cells[0], (b'A', 0x1F));
        assert_eq!(text.cells[1].0, 0x1C);
        // The frame the UI holds shows the 'A' in white on blue.
        let mut rgba = vec![0u8; 720 * 400 * 4];
        first.apply_rgba(&mut rgba);
        while let Ok(u) = ui.frames.try_recv() {
            u.apply_rgba(&mut rgba);
        }
        let cell: Vec<&[u8]> = (0..16)
            .flat_map(|y| (0..9).map(move |x| (y * 720 + x) * 4))
            .map(|o| &rgba[o..o + 3])
            .collect();
        assert!(cell.iter().any(|p| p[2] > 0x80 && p[0] < 0x40), "blue");
        assert!(cell.iter().any(|p| p[0] > 0xC0), "white");
        ui.commands.send(ToMachine::Quit).unwrap();
        let at = m.cpu.icount;
        assert_eq!(run(&mut m, 10_000_000), RunExit::Stopped);
        assert!(m.cpu.icount - at <= morph86_machine::machine::CHECK_INTERVAL);
    }

    /// Motion events with the same buttons merge into one movement at a
    /// check point.
    #[test]
    fn mouse_motion_is_merged() {
        let (mut m, ui) = machine();
        let mut link = WindowLink::new(
            UiSender {
                events: unbounded().0,
                frames: bounded(1).0,
                wake: Arc::new(|| {}),
            },
            unbounded().1,
        );
        for _ in 0..3 {
            link.input(
                &mut m,
                morph86_machine::HostInput::Mouse {
                    dx: 2,
                    dy: -1,
                    dz: 0,
                    buttons: 1,
                },
            );
        }
        assert_eq!(
            link.mouse,
            Some(morph86_machine::HostInput::Mouse {
                dx: 6,
                dy: -3,
                dz: 0,
                buttons: 1
            })
        );
        link.input(
            &mut m,
            morph86_machine::HostInput::Mouse {
                dx: 1,
                dy: 0,
                dz: 0,
                buttons: 0,
            },
        );
        assert_eq!(
            link.mouse,
            Some(morph86_machine::HostInput::Mouse {
                dx: 1,
                dy: 0,
                dz: 0,
                buttons: 0
            }),
            "new buttons: the old motion went to the guest"
        );
        drop(ui);
    }

    /// A pause holds the machine at a check point until the UI resumes
    /// it; the title hears of both.
    #[test]
    fn pause_holds_the_machine_until_resumed() {
        let (mut m, ui) = machine();
        ui.commands.send(ToMachine::Pause).unwrap();
        let commands = ui.commands.clone();
        let resumer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            commands.send(ToMachine::Pause).unwrap();
        });
        let start = Instant::now();
        assert_eq!(run(&mut m, 200_000), RunExit::InstructionLimit);
        assert!(start.elapsed() >= Duration::from_millis(100));
        resumer.join().unwrap();
        let states: Vec<(RunState, Option<f64>)> = ui
            .events
            .try_iter()
            .filter_map(|e| match e {
                ToUi::Status { state, mips } => Some((state, mips)),
                _ => None,
            })
            .collect();
        assert_eq!(
            states[..2],
            [(RunState::Paused, None), (RunState::Running, None)]
        );
    }
}
