//! The UI thread: the window, pixels' surface, the keyboard and mouse, and
//! the title bar.

use crate::keymap::{is_alt, is_ctrl, scancodes};
use crate::link::{EndHandle, UiSender, WindowLink};
use crate::{FrameUpdate, RunState, ToMachine, ToUi, Wake, WindowError};
use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use morph86_machine::HostInput;
use pixels::{Pixels, PixelsBuilder, ScalingMode, SurfaceTexture};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use winit::application::ApplicationHandler;
use winit::dpi::PhysicalSize;
use winit::event::{
    DeviceEvent, DeviceId, ElementState, MouseButton, MouseScrollDelta, WindowEvent,
};
use winit::event_loop::{ActiveEventLoop, EventLoop};
use winit::keyboard::{KeyCode, PhysicalKey};
use winit::platform::pump_events::{EventLoopExtPumpEvents, PumpStatus};
use winit::platform::x11::EventLoopBuilderExtX11;
use winit::window::{CursorGrabMode, Window, WindowId};

/// How long [`Ui::open`] waits for the window and its surface.
const OPEN_TIMEOUT: Duration = Duration::from_secs(20);

/// The window and its event loop, on the main thread.
pub struct Ui {
    event_loop: EventLoop<Wake>,
    app: App,
}

impl Ui {
    /// Opens a window titled `name` for a screen of `width` x `height`
    /// (resized when the guest's screen changes size). Returns the UI, the
    /// link to install in the machine and the handle that ends the UI.
    ///
    /// Fails when there is no display to connect to or pixels finds no
    /// adapter; nothing has reached the machine then.
    pub fn open(
        name: &str,
        width: u32,
        height: u32,
    ) -> Result<(Ui, WindowLink, EndHandle), WindowError> {
        let mut builder = EventLoop::<Wake>::with_user_event();
        if std::env::var_os("WAYLAND_DISPLAY").is_none() {
            // Only X is named: do not try Wayland first.
            builder.with_x11();
        }
        let mut event_loop = builder.build().map_err(|e| {
            tracing::debug!("window: {e}");
            let name = ["WAYLAND_DISPLAY", "DISPLAY"]
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
                .unwrap_or_default();
            WindowError::NoDisplay(name)
        })?;
        let (events_tx, events_rx) = unbounded();
        let (frames_tx, frames_rx) = bounded(2);
        let (commands_tx, commands_rx) = unbounded();
        let sender = UiSender {
            events: events_tx,
            frames: frames_tx,
            wake: {
                let proxy = event_loop.create_proxy();
                // The loop may be gone (the window closed): nothing to wake.
                Arc::new(move || {
                    let _ = proxy.send_event(Wake);
                })
            },
        };
        let mut app = App {
            name: name.to_string(),
            initial: (width.max(1), height.max(1)),
            window: None,
            pixels: None,
            size: (width.max(1), height.max(1)),
            surface: PhysicalSize::new(0, 0),
            state: RunState::Running,
            mips: None,
            captured: false,
            host_down: HashSet::new(),
            guest_down: HashSet::new(),
            swallowed: HashSet::new(),
            buttons: 0,
            motion: (0.0, 0.0),
            to_machine: commands_tx,
            events: events_rx,
            frames: frames_rx,
            error: None,
            done: false,
            render_failed: false,
        };
        let start = Instant::now();
        while app.pixels.is_none() {
            if let Some(e) = app.error.take() {
                return Err(e);
            }
            if start.elapsed() > OPEN_TIMEOUT {
                return Err(WindowError::Timeout(OPEN_TIMEOUT.as_secs()));
            }
            let status = event_loop.pump_app_events(Some(Duration::from_millis(20)), &mut app);
            if let PumpStatus::Exit(_) = status {
                return Err(app
                    .error
                    .take()
                    .unwrap_or(WindowError::Timeout(OPEN_TIMEOUT.as_secs())));
            }
        }
        let link = WindowLink::new(sender.clone(), commands_rx);
        Ok((
            Ui { event_loop, app },
            link,
            EndHandle {
                ui: sender,
                sent: false,
            },
        ))
    }

    /// Runs the window until it is closed, or until the run ends (the
    /// [`EndHandle`] says so and does not keep the window open). Closing
    /// the window asks the machine to stop.
    pub fn run(mut self) {
        while !self.app.done {
            if let PumpStatus::Exit(_) = self.event_loop.pump_app_events(None, &mut self.app) {
                break;
            }
        }
        // Whatever ended the loop, the machine stops at its next check point.
        let _ = self.app.to_machine.send(ToMachine::Quit);
    }
}

/// The UI's state (see the crate docs for the chords).
struct App {
    name: String,
    initial: (u32, u32),
    window: Option<Arc<Window>>,
    pixels: Option<Pixels<'static>>,
    /// The guest screen's size (the pixel buffer's).
    size: (u32, u32),
    /// The size pixels' surface is configured for.
    surface: PhysicalSize<u32>,
    state: RunState,
    mips: Option<f64>,
    captured: bool,
    /// Keys down on the host keyboard.
    host_down: HashSet<KeyCode>,
    /// Keys the guest was told are down.
    guest_down: HashSet<KeyCode>,
    /// Chord keys kept from the guest, until released.
    swallowed: HashSet<KeyCode>,
    buttons: u8,
    /// Mouse motion not yet sent (fractions of a count).
    motion: (f64, f64),
    to_machine: Sender<ToMachine>,
    events: Receiver<ToUi>,
    frames: Receiver<FrameUpdate>,
    error: Option<WindowError>,
    done: bool,
    render_failed: bool,
}

/// The window's size for a screen of `w` x `h`: doubled for screens
/// narrower than 640 pixels (320x200 modes), else 1:1.
fn window_size(w: u32, h: u32) -> PhysicalSize<u32> {
    let k = if w < 640 { 2 } else { 1 };
    PhysicalSize::new(w * k, h * k)
}

impl App {
    fn send(&self, m: ToMachine) {
        // The machine may have ended; the window then closes soon.
        let _ = self.to_machine.send(m);
    }

    fn title(&self) -> String {
        let mut t = format!("{} - {}", self.name, self.state);
        if let (RunState::Running, Some(mips)) = (self.state, self.mips) {
            if mips < 10.0 {
                t += &format!(", {mips:.2} MIPS");
            } else {
                t += &format!(", {mips:.1} MIPS");
            }
        }
        if self.captured {
            t += " - Ctrl+Alt+G releases the mouse";
        }
        t
    }

    fn update_title(&self) {
        if let Some(w) = &self.window {
            w.set_title(&self.title());
        }
    }

    fn create(&mut self, el: &ActiveEventLoop) -> Result<(), WindowError> {
        let (w, h) = self.initial;
        let attrs = Window::default_attributes()
            .with_title(self.title())
            .with_inner_size(window_size(w, h));
        let window = Arc::new(el.create_window(attrs)?);
        let inner = window.inner_size();
        let surface = SurfaceTexture::new(inner.width.max(1), inner.height.max(1), window.clone());
        let mut pixels = PixelsBuilder::new(w, h, surface)
            .clear_color(pixels::wgpu::Color::BLACK)
            .build()?;
        // Keep the aspect ratio at any window size: scale, letterbox.
        pixels.set_scaling_mode(ScalingMode::Fill);
        self.window = Some(window);
        self.pixels = Some(pixels);
        self.surface = inner;
        Ok(())
    }

    /// Gives pixels' surface the window's size. pixels retries a surface
    /// that does not fit its window for ever (it reconfigures it with the
    /// size it was last told), so the size is checked before every frame,
    /// not only on resize events: the window may have changed since.
    fn fit_surface(&mut self, size: PhysicalSize<u32>) {
        let Some(p) = &mut self.pixels else { return };
        if size == self.surface || size.width == 0 || size.height == 0 {
            return;
        }
        match p.resize_surface(size.width, size.height) {
            Ok(()) => self.surface = size,
            Err(e) => tracing::warn!("window: resizing the surface: {e}"),
        }
    }

    /// Takes what the machine sent.
    fn drain(&mut self, el: &ActiveEventLoop) {
        let mut redraw = false;
        while let Ok(u) = self.frames.try_recv() {
            self.apply(u);
            redraw = true;
        }
        let mut retitle = false;
        while let Ok(e) = self.events.try_recv() {
            retitle = true;
            match e {
                ToUi::Status { state, mips } => {
                    self.state = state;
                    self.mips = mips;
                }
                ToUi::Ended { state, keep_open } => {
                    // A last frame may have come with the news.
                    while let Ok(u) = self.frames.try_recv() {
                        self.apply(u);
                        redraw = true;
                    }
                    self.state = state;
                    self.mips = None;
                    if self.captured {
                        self.capture(false);
                    }
                    if !keep_open {
                        self.done = true;
                        el.exit();
                    }
                }
            }
        }
        if retitle {
            self.update_title();
        }
        if redraw {
            if let Some(w) = &self.window {
                w.request_redraw();
            }
        }
    }

    fn apply(&mut self, u: FrameUpdate) {
        let Some(pixels) = &mut self.pixels else {
            return;
        };
        if (u.width, u.height) != self.size && u.width > 0 && u.height > 0 {
            if let Err(e) = pixels.resize_buffer(u.width, u.height) {
                tracing::warn!("window: cannot show a {}x{} screen: {e}", u.width, u.height);
                return;
            }
            self.size = (u.width, u.height);
            if let Some(w) = &self.window {
                let _ = w.request_inner_size(window_size(u.width, u.height));
            }
        }
        u.apply_rgba(pixels.frame_mut());
    }

    fn capture(&mut self, on: bool) {
        let Some(w) = &self.window else { return };
        if on {
            let grabbed = w
                .set_cursor_grab(CursorGrabMode::Confined)
                .or_else(|_| w.set_cursor_grab(CursorGrabMode::Locked));
            if let Err(e) = grabbed {
                // Relative motion still arrives as device events.
                tracing::debug!("window: pointer grab refused: {e}");
            }
            w.set_cursor_visible(false);
        } else {
            let _ = w.set_cursor_grab(CursorGrabMode::None);
            w.set_cursor_visible(true);
            if self.buttons != 0 {
                self.buttons = 0;
                self.mouse(0, 0, 0);
            }
        }
        self.captured = on;
        self.motion = (0.0, 0.0);
        self.update_title();
    }

    fn mouse(&self, dx: i32, dy: i32, dz: i32) {
        self.send(ToMachine::Input(HostInput::Mouse {
            dx,
            dy,
            dz,
            buttons: self.buttons,
        }));
    }

    /// The guest lets go of every key it was told is down (the window lost
    /// the keyboard: their releases will not come).
    fn release_keys(&mut self) {
        for k in std::mem::take(&mut self.guest_down) {
            let bytes = scancodes(k, false);
            if !bytes.is_empty() {
                self.send(ToMachine::Input(HostInput::Key(bytes)));
            }
        }
        self.host_down.clear();
        self.swallowed.clear();
    }

    fn key(&mut self, el: &ActiveEventLoop, code: KeyCode, pressed: bool) {
        if pressed {
            self.host_down.insert(code);
        } else {
            self.host_down.remove(&code);
        }
        let ctrl = self.host_down.iter().any(|&k| is_ctrl(k));
        let alt = self.host_down.iter().any(|&k| is_alt(k));
        if pressed && ctrl && alt && matches!(code, KeyCode::KeyG | KeyCode::KeyP | KeyCode::KeyQ) {
            if self.swallowed.insert(code) {
                match code {
                    KeyCode::KeyG if self.captured => self.capture(false),
                    KeyCode::KeyP => self.send(ToMachine::Pause),
                    KeyCode::KeyQ => {
                        self.send(ToMachine::Quit);
                        self.done = true;
                        el.exit();
                    }
                    _ => {}
                }
            }
            return;
        }
        if self.swallowed.contains(&code) {
            if !pressed {
                self.swallowed.remove(&code);
            }
            return;
        }
        if pressed {
            self.guest_down.insert(code);
        } else if !self.guest_down.remove(&code) {
            return;
        }
        let bytes = scancodes(code, pressed);
        if !bytes.is_empty() {
            self.send(ToMachine::Input(HostInput::Key(bytes)));
        }
    }
}

impl ApplicationHandler<Wake> for App {
    fn resumed(&mut self, el: &ActiveEventLoop) {
        if self.window.is_some() || self.error.is_some() {
            return;
        }
        if let Err(e) = self.create(el) {
            self.error = Some(e);
            el.exit();
        }
    }

    fn user_event(&mut self, el: &ActiveEventLoop, _: Wake) {
        self.drain(el);
    }

    fn window_event(&mut self, el: &ActiveEventLoop, _: WindowId, event: WindowEvent) {
        match event {
            WindowEvent::CloseRequested | WindowEvent::Destroyed => {
                self.send(ToMachine::Quit);
                self.done = true;
                el.exit();
            }
            WindowEvent::Resized(size) => {
                self.fit_surface(size);
                if let Some(w) = &self.window {
                    w.request_redraw();
                }
            }
            WindowEvent::RedrawRequested => {
                if let Some(size) = self.window.as_ref().map(|w| w.inner_size()) {
                    self.fit_surface(size);
                }
                if let Some(p) = &self.pixels {
                    if let Err(e) = p.render() {
                        if !self.render_failed {
                            tracing::warn!("window: drawing failed: {e}");
                            self.render_failed = true;
                        }
                    }
                }
            }
            WindowEvent::Focused(false) => {
                self.release_keys();
                if self.captured {
                    self.capture(false);
                }
            }
            WindowEvent::KeyboardInput { event, .. } => {
                if let PhysicalKey::Code(code) = event.physical_key {
                    self.key(el, code, event.state == ElementState::Pressed);
                }
            }
            WindowEvent::MouseInput { state, button, .. } => {
                let pressed = state == ElementState::Pressed;
                if !self.captured {
                    if pressed && button == MouseButton::Left && self.state == RunState::Running {
                        self.capture(true);
                    }
                    return;
                }
                let bit = match button {
                    MouseButton::Left => 1,
                    MouseButton::Right => 2,
                    MouseButton::Middle => 4,
                    MouseButton::Back => 8,
                    MouseButton::Forward => 16,
                    MouseButton::Other(_) => 0,
                };
                if pressed {
                    self.buttons |= bit;
                } else {
                    self.buttons &= !bit;
                }
                self.mouse(0, 0, 0);
            }
            WindowEvent::MouseWheel { delta, .. } if self.captured => {
                let lines = match delta {
                    MouseScrollDelta::LineDelta(_, y) => y as f64,
                    MouseScrollDelta::PixelDelta(p) => p.y / 40.0,
                };
                // winit: positive away from the user; PS/2: positive towards.
                let dz = -lines.round() as i32;
                if dz != 0 {
                    self.mouse(0, 0, dz);
                }
            }
            _ => {}
        }
    }

    fn device_event(&mut self, _: &ActiveEventLoop, _: DeviceId, event: DeviceEvent) {
        if !self.captured {
            return;
        }
        if let DeviceEvent::MouseMotion { delta } = event {
            self.motion.0 += delta.0;
            self.motion.1 += delta.1;
            let (dx, dy) = (self.motion.0.trunc(), self.motion.1.trunc());
            self.motion.0 -= dx;
            self.motion.1 -= dy;
            if dx != 0.0 || dy != 0.0 {
                // winit: y grows downwards; PS/2: upwards.
                self.mouse(dx as i32, -dy as i32, 0);
            }
        }
    }
}
