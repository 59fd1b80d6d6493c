//! The Intel 8042 keyboard controller with a PS/2 keyboard and a PS/2 mouse.
//!
//! # Ports
//!
//! The controller claims 0x60 (data) and 0x64 (status / command). The bus
//! gives a device one contiguous range, so the machine registers the two
//! ports as [`I8042Port::Data`] and [`I8042Port::Command`] over one
//! [`SharedI8042`]; [`I8042::pio_read_port`] / [`I8042::pio_write_port`]
//! serve a machine that dispatches the ports itself.
//!
//! # Model
//!
//! Commands execute at once, so the input buffer is always empty (IBF = 0).
//! The output buffer holds one byte; behind it wait, in order of priority,
//! the controller's own replies (and bytes injected with 0xD2/0xD3), the
//! keyboard's queue and the mouse's queue. A device's bytes move into the
//! output buffer only while its interface is enabled in the command byte
//! (bits 4 and 5); otherwise they wait in the device, as a device holds
//! data while its clock line is inhibited. Writing a byte for the keyboard
//! to port 0x60 re-enables the keyboard interface, as real controllers do.
//!
//! With the translation bit (command byte bit 6) set, keyboard bytes are
//! translated from scan code set 2 to set 1 on their way into the output
//! buffer (a 0xF0 break prefix sets bit 7 of the next byte), which is also
//! why a translated keyboard identifies as 0xAB 0x41.
//!
//! IRQ1 is "output buffer full with a keyboard or controller byte" gated by
//! command byte bit 0; IRQ12 is "output buffer full with a mouse byte"
//! gated by bit 1. The machine polls [`I8042::irq1`], [`I8042::irq12`],
//! [`I8042::a20_enabled`] (output port bit 1) and
//! [`I8042::take_reset_request`] (output port bit 0 pulsed or written low).

use crate::lines::{IrqLine, SystemLink};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// The data port.
pub const I8042_DATA_PORT: u16 = 0x60;
/// The status (read) and command (write) port.
pub const I8042_COMMAND_PORT: u16 = 0x64;
/// ISA IRQ of the keyboard.
pub const KEYBOARD_IRQ: u8 = 1;
/// ISA IRQ of the mouse.
pub const MOUSE_IRQ: u8 = 12;

// Status register bits.
/// Status: output buffer full.
pub const STATUS_OBF: u8 = 1 << 0;
/// Status: input buffer full (always 0: commands run at once).
pub const STATUS_IBF: u8 = 1 << 1;
/// Status: system flag (set by the self-test or through the command byte).
pub const STATUS_SYS: u8 = 1 << 2;
/// Status: last write was to the command port (0x64).
pub const STATUS_A2: u8 = 1 << 3;
/// Status: keyboard not inhibited (the key lock is open).
pub const STATUS_INH: u8 = 1 << 4;
/// Status: the output buffer holds a mouse byte.
pub const STATUS_AUX_OBF: u8 = 1 << 5;
/// Status: timeout error.
pub const STATUS_TIMEOUT: u8 = 1 << 6;
/// Status: parity error.
pub const STATUS_PARITY: u8 = 1 << 7;

// Command byte bits.
/// Command byte: keyboard interrupt (IRQ1) enable.
pub const CB_KBD_INT: u8 = 1 << 0;
/// Command byte: mouse interrupt (IRQ12) enable.
pub const CB_AUX_INT: u8 = 1 << 1;
/// Command byte: system flag.
pub const CB_SYS: u8 = 1 << 2;
/// Command byte: keyboard interface disabled.
pub const CB_KBD_DISABLE: u8 = 1 << 4;
/// Command byte: mouse interface disabled.
pub const CB_AUX_DISABLE: u8 = 1 << 5;
/// Command byte: translate keyboard bytes to scan code set 1.
pub const CB_XLATE: u8 = 1 << 6;

// Output port bits.
/// Output port: system reset line (0 asserts reset).
pub const OUT_RESET: u8 = 1 << 0;
/// Output port: A20 gate.
pub const OUT_A20: u8 = 1 << 1;
/// Output port: keyboard output buffer full (IRQ1).
const OUT_KBD_OBF: u8 = 1 << 4;
/// Output port: mouse output buffer full (IRQ12).
const OUT_AUX_OBF: u8 = 1 << 5;

/// Acknowledge.
const ACK: u8 = 0xFA;
/// Resend (also "unknown command").
const RESEND: u8 = 0xFE;
/// Basic assurance test passed.
const BAT_OK: u8 = 0xAA;
/// Bytes a PS/2 device buffers.
const DEVICE_QUEUE: usize = 16;

/// The 8042's set 2 → set 1 translation of codes 0x00-0x7F (bytes 0x80 and
/// up pass unchanged, except 0x83 (F7) and 0x84 (Alt+SysRq)).
const XLATE: [u8; 128] = [
    0xff, 0x43, 0x41, 0x3f, 0x3d, 0x3b, 0x3c, 0x58, 0x64, 0x44, 0x42, 0x40, 0x3e, 0x0f, 0x29, 0x59,
    0x65, 0x38, 0x2a, 0x70, 0x1d, 0x10, 0x02, 0x5a, 0x66, 0x71, 0x2c, 0x1f, 0x1e, 0x11, 0x03, 0x5b,
    0x67, 0x2e, 0x2d, 0x20, 0x12, 0x05, 0x04, 0x5c, 0x68, 0x39, 0x2f, 0x21, 0x14, 0x13, 0x06, 0x5d,
    0x69, 0x31, 0x30, 0x23, 0x22, 0x15, 0x07, 0x5e, 0x6a, 0x72, 0x32, 0x24, 0x16, 0x08, 0x09, 0x5f,
    0x6b, 0x33, 0x25, 0x17, 0x18, 0x0b, 0x0a, 0x60, 0x6c, 0x34, 0x35, 0x26, 0x27, 0x19, 0x0c, 0x61,
    0x6d, 0x73, 0x28, 0x74, 0x1a, 0x0d, 0x62, 0x6e, 0x3a, 0x36, 0x1c, 0x1b, 0x75, 0x2b, 0x63, 0x76,
    0x55, 0x56, 0x77, 0x78, 0x79, 0x7a, 0x0e, 0x7b, 0x7c, 0x4f, 0x7d, 0x4b, 0x47, 0x7e, 0x7f, 0x6f,
    0x52, 0x53, 0x50, 0x4c, 0x4d, 0x48, 0x01, 0x45, 0x57, 0x4e, 0x51, 0x4a, 0x37, 0x49, 0x46, 0x54,
];

/// Translates one set-2 byte to set 1 (without the break prefix logic).
fn xlate(b: u8) -> u8 {
    match b {
        0x00..=0x7F => XLATE[usize::from(b)],
        0x83 => 0x41,
        0x84 => 0x54,
        _ => b,
    }
}

/// The bytes a PS/2 device has for the controller, and the last one sent
/// (for the 0xFE resend command). Like the real devices' small buffers it
/// holds [`DEVICE_QUEUE`] bytes and drops what does not fit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceOutput {
    /// Bytes waiting to be sent to the controller.
    pub queue: VecDeque<u8>,
    /// The last byte sent.
    pub last_sent: u8,
}

impl Default for DeviceOutput {
    fn default() -> Self {
        DeviceOutput {
            queue: VecDeque::with_capacity(DEVICE_QUEUE),
            last_sent: 0,
        }
    }
}

impl DeviceOutput {
    fn send(&mut self, b: u8) {
        if self.queue.len() < DEVICE_QUEUE {
            self.queue.push_back(b);
            self.last_sent = b;
        }
    }

    /// Queues all of `bytes` (a key's scan codes, a mouse packet) or, if
    /// they do not all fit, none of them.
    fn send_all(&mut self, bytes: &[u8]) {
        if self.fits(bytes.len()) {
            for &b in bytes {
                self.send(b);
            }
        }
    }

    fn fits(&self, n: usize) -> bool {
        self.queue.len() + n <= DEVICE_QUEUE
    }

    fn resend(&mut self) {
        let b = self.last_sent;
        self.send(b);
    }
}

/// A PS/2 keyboard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ps2Keyboard {
    /// Bytes for the controller.
    pub out: DeviceOutput,
    /// A command waiting for its parameter byte (0xED, 0xF0 or 0xF3).
    pub pending: Option<u8>,
    /// Scanning enabled (0xF4 / 0xF5).
    pub scanning: bool,
    /// Scan code set (1, 2 or 3; set 3 is reported but keys are sent as set 2).
    pub scancode_set: u8,
    /// LED state (bit 0 Scroll Lock, 1 Num Lock, 2 Caps Lock).
    pub leds: u8,
    /// Typematic rate and delay (0xF3 parameter).
    pub typematic: u8,
    /// A set-1 conversion is in the middle of a break code (set 1 only).
    pub break_prefix: bool,
}

impl Default for Ps2Keyboard {
    fn default() -> Self {
        Ps2Keyboard {
            out: DeviceOutput::default(),
            pending: None,
            scanning: true,
            scancode_set: 2,
            leds: 0,
            typematic: 0x2B, // 10.9 characters/s after 500 ms
            break_prefix: false,
        }
    }
}

impl Ps2Keyboard {
    fn set_defaults(&mut self) {
        self.scancode_set = 2;
        self.typematic = 0x2B;
        self.break_prefix = false;
    }

    /// Handles a byte from the host.
    fn write(&mut self, v: u8) {
        if let Some(cmd) = self.pending.take() {
            match cmd {
                0xED if v & 0x80 == 0 => {
                    self.leds = v & 7;
                    return self.out.send(ACK);
                }
                0xF3 if v & 0x80 == 0 => {
                    self.typematic = v;
                    return self.out.send(ACK);
                }
                0xF0 if v <= 3 => {
                    self.out.send(ACK);
                    if v == 0 {
                        let set = self.scancode_set;
                        self.out.send(set);
                    } else {
                        self.scancode_set = v;
                        self.break_prefix = false;
                    }
                    return;
                }
                _ if v < 0xED => return self.out.send(RESEND),
                _ => {} // a new command instead of the parameter
            }
        }
        match v {
            0xED | 0xF0 | 0xF3 => {
                self.pending = Some(v);
                self.out.send(ACK);
            }
            0xEE => self.out.send(0xEE), // echo: no ACK
            0xF2 => {
                self.out.send(ACK);
                self.out.send(0xAB);
                self.out.send(0x83);
            }
            0xF4 => {
                self.out.queue.clear();
                self.scanning = true;
                self.out.send(ACK);
            }
            0xF5 => {
                self.out.queue.clear();
                self.set_defaults();
                self.scanning = false;
                self.out.send(ACK);
            }
            0xF6 => {
                self.out.queue.clear();
                self.set_defaults();
                self.scanning = true;
                self.out.send(ACK);
            }
            0xF7..=0xFD => self.out.send(ACK), // set-3 key types: accepted, ignored
            0xFE => self.out.resend(),
            0xFF => {
                *self = Ps2Keyboard::default();
                self.out.send(ACK);
                self.out.send(BAT_OK);
            }
            _ => self.out.send(RESEND),
        }
    }

    /// Queues a key's set-2 bytes, converted to the selected set.
    fn key_event(&mut self, bytes: &[u8]) {
        if !self.scanning {
            return;
        }
        let mut out = Vec::with_capacity(bytes.len());
        for &b in bytes {
            if self.scancode_set != 1 {
                out.push(b);
            } else if b == 0xF0 {
                self.break_prefix = true;
            } else if b == 0xE0 || b == 0xE1 {
                out.push(b);
            } else {
                out.push(xlate(b) | if self.break_prefix { 0x80 } else { 0 });
                self.break_prefix = false;
            }
        }
        // A key's bytes go together or not at all (the keyboard's buffer
        // overflowed: a real keyboard would send an overrun code).
        self.out.send_all(&out);
    }
}

/// A PS/2 mouse (with the IntelliMouse wheel extensions).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ps2Mouse {
    /// Bytes for the controller.
    pub out: DeviceOutput,
    /// A command waiting for its parameter byte (0xE8 or 0xF3).
    pub pending: Option<u8>,
    /// Data reporting enabled (0xF4 / 0xF5).
    pub enabled: bool,
    /// Remote mode (0xF0) rather than stream mode (0xEA).
    pub remote: bool,
    /// Wrap (echo) mode (0xEE / 0xEC).
    pub wrap: bool,
    /// 2:1 scaling (0xE7) rather than 1:1 (0xE6).
    pub scaling_2to1: bool,
    /// Resolution (0-3: 1, 2, 4, 8 counts/mm).
    pub resolution: u8,
    /// Sample rate in reports per second.
    pub sample_rate: u8,
    /// Device ID: 0 (standard), 3 (wheel) or 4 (five buttons).
    pub id: u8,
    /// The last three sample rates set (the IntelliMouse knock).
    pub rate_history: [u8; 3],
    /// Buttons held (bit 0 left, 1 right, 2 middle).
    pub buttons: u8,
    /// Movement not yet reported (remote mode).
    pub dx: i32,
    /// Movement not yet reported (remote mode), positive up.
    pub dy: i32,
    /// Wheel movement not yet reported (remote mode).
    pub dz: i32,
}

impl Default for Ps2Mouse {
    fn default() -> Self {
        Ps2Mouse {
            out: DeviceOutput::default(),
            pending: None,
            enabled: false,
            remote: false,
            wrap: false,
            scaling_2to1: false,
            resolution: 2,
            sample_rate: 100,
            id: 0,
            rate_history: [0; 3],
            buttons: 0,
            dx: 0,
            dy: 0,
            dz: 0,
        }
    }
}

impl Ps2Mouse {
    fn set_defaults(&mut self) {
        self.sample_rate = 100;
        self.resolution = 2;
        self.scaling_2to1 = false;
        self.remote = false;
        self.dx = 0;
        self.dy = 0;
        self.dz = 0;
    }

    fn packet_len(&self) -> usize {
        if self.id == 0 {
            3
        } else {
            4
        }
    }

    /// Builds one movement packet from the pending movement and clears it.
    fn make_packet(&mut self, scale: bool) -> Vec<u8> {
        let scale2 = |d: i32| -> i32 {
            if !scale {
                return d;
            }
            match d.abs() {
                0 | 1 | 3 => d,
                2 => d.signum(),
                4 => 6 * d.signum(),
                5 => 9 * d.signum(),
                _ => 2 * d,
            }
        };
        let (dx, dy) = (scale2(self.dx), scale2(self.dy));
        let x_over = !(-256..=255).contains(&dx);
        let y_over = !(-256..=255).contains(&dy);
        let (dx, dy) = (dx.clamp(-256, 255), dy.clamp(-256, 255));
        let mut b0 = 0x08 | (self.buttons & 7);
        if dx < 0 {
            b0 |= 0x10;
        }
        if dy < 0 {
            b0 |= 0x20;
        }
        if x_over {
            b0 |= 0x40;
        }
        if y_over {
            b0 |= 0x80;
        }
        let mut p = vec![b0, dx as u8, dy as u8];
        match self.id {
            3 => p.push(self.dz.clamp(-8, 7) as u8),
            4 => {
                let extra = (self.buttons >> 3) & 3;
                p.push((self.dz.clamp(-8, 7) as u8 & 0x0F) | extra << 4);
            }
            _ => {}
        }
        self.dx = 0;
        self.dy = 0;
        self.dz = 0;
        p
    }

    /// Handles a byte from the host.
    fn write(&mut self, v: u8) {
        if self.wrap && v != 0xEC && v != 0xFF {
            return self.out.send(v);
        }
        if let Some(cmd) = self.pending.take() {
            match cmd {
                0xE8 => {
                    self.resolution = v & 3;
                    return self.out.send(ACK);
                }
                0xF3 => {
                    self.sample_rate = v;
                    self.rate_history = [self.rate_history[1], self.rate_history[2], v];
                    match self.rate_history {
                        [200, 100, 80] if self.id == 0 => self.id = 3,
                        [200, 200, 80] if self.id == 3 => self.id = 4,
                        _ => {}
                    }
                    return self.out.send(ACK);
                }
                _ => {}
            }
        }
        match v {
            0xE6 => {
                self.scaling_2to1 = false;
                self.out.send(ACK);
            }
            0xE7 => {
                self.scaling_2to1 = true;
                self.out.send(ACK);
            }
            0xE8 | 0xF3 => {
                self.pending = Some(v);
                self.out.send(ACK);
            }
            0xE9 => {
                self.out.send(ACK);
                let mut s =
                    (self.buttons & 1) << 2 | (self.buttons & 2) >> 1 | (self.buttons & 4) >> 1;
                if self.scaling_2to1 {
                    s |= 0x10;
                }
                if self.enabled {
                    s |= 0x20;
                }
                if self.remote {
                    s |= 0x40;
                }
                let (r, rate) = (self.resolution, self.sample_rate);
                self.out.send(s);
                self.out.send(r);
                self.out.send(rate);
            }
            0xEA => {
                self.remote = false;
                self.dx = 0;
                self.dy = 0;
                self.dz = 0;
                self.out.send(ACK);
            }
            0xEB => {
                self.out.send(ACK);
                // Read data is never scaled.
                let p = self.make_packet(false);
                self.out.send_all(&p);
            }
            0xEC => {
                self.wrap = false;
                self.out.send(ACK);
            }
            0xEE => {
                self.wrap = true;
                self.out.send(ACK);
            }
            0xF0 => {
                self.remote = true;
                self.dx = 0;
                self.dy = 0;
                self.dz = 0;
                self.out.send(ACK);
            }
            0xF2 => {
                self.out.send(ACK);
                let id = self.id;
                self.out.send(id);
            }
            0xF4 => {
                self.enabled = true;
                self.out.send(ACK);
            }
            0xF5 => {
                self.enabled = false;
                self.out.send(ACK);
            }
            0xF6 => {
                self.set_defaults();
                self.out.send(ACK);
            }
            0xFE => self.out.resend(),
            0xFF => {
                *self = Ps2Mouse::default();
                self.out.send(ACK);
                self.out.send(BAT_OK);
                self.out.send(0x00);
            }
            _ => self.out.send(RESEND),
        }
    }

    /// Movement and buttons from the host.
    fn event(&mut self, dx: i32, dy: i32, dz: i32, buttons: u8) {
        let changed = buttons != self.buttons;
        self.buttons = buttons;
        self.dx = self.dx.saturating_add(dx);
        self.dy = self.dy.saturating_add(dy);
        self.dz = self.dz.saturating_add(dz);
        if self.remote || !self.enabled {
            if !self.enabled && !self.remote {
                self.dx = 0;
                self.dy = 0;
                self.dz = 0;
            }
            return;
        }
        if !changed && dx == 0 && dy == 0 && dz == 0 {
            return;
        }
        if self.out.fits(self.packet_len()) {
            let p = self.make_packet(self.scaling_2to1);
            self.out.send_all(&p);
        }
    }
}

/// A byte in the output buffer and where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputByte {
    /// The byte.
    pub value: u8,
    /// It came from the mouse (AUX-OBF, IRQ12), not the keyboard or controller.
    pub aux: bool,
}

/// The controller's state: plain data, serializable for snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct I8042State {
    /// Controller RAM; byte 0 is the command byte.
    pub ram: [u8; 32],
    /// The status register's SYS bit.
    pub sys_flag: bool,
    /// The last write went to the command port (status A2).
    pub last_was_command: bool,
    /// Timeout and parity error bits of the status register.
    pub error_bits: u8,
    /// The output port (bit 0 reset line, bit 1 A20); bits 4-5 read live.
    pub out_port: u8,
    /// A controller command waiting for its data byte.
    pub pending: Option<u8>,
    /// The output buffer.
    pub obf: Option<OutputByte>,
    /// The last byte read from the output buffer (reads of an empty buffer).
    pub last_read: u8,
    /// Controller replies waiting for the output buffer.
    pub replies: VecDeque<OutputByte>,
    /// Translation saw a 0xF0 break prefix.
    pub xlate_break: bool,
    /// A reset was requested and not yet taken.
    pub reset_request: bool,
    /// The keyboard.
    pub kbd: Ps2Keyboard,
    /// The mouse.
    pub mouse: Ps2Mouse,
}

impl Default for I8042State {
    fn default() -> Self {
        let mut ram = [0u8; 32];
        ram[0] = CB_KBD_INT | CB_AUX_INT;
        I8042State {
            ram,
            sys_flag: false,
            last_was_command: false,
            error_bits: 0,
            // Reset line released, A20 on, unused lines high, as QEMU's
            // `pc` machine starts.
            out_port: 0xCF,
            pending: None,
            obf: None,
            last_read: 0,
            replies: VecDeque::new(),
            xlate_break: false,
            reset_request: false,
            kbd: Ps2Keyboard::default(),
            mouse: Ps2Mouse::default(),
        }
    }
}

/// The 8042 keyboard controller with its keyboard and mouse.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct I8042 {
    /// All of its state.
    pub state: I8042State,
}

impl I8042 {
    /// A controller in its power-on state: command byte 0x03 (both
    /// interrupts on, no translation), A20 on, SYS clear (a cold boot).
    pub fn new() -> I8042 {
        I8042::default()
    }

    /// Back to the power-on state (after a machine reset).
    pub fn reset(&mut self) {
        *self = I8042::default();
    }

    /// The command byte.
    pub fn command_byte(&self) -> u8 {
        self.state.ram[0]
    }

    fn set_command_byte(&mut self, v: u8) {
        self.state.ram[0] = v;
        self.state.sys_flag = v & CB_SYS != 0;
    }

    fn reply(&mut self, value: u8) {
        self.state
            .replies
            .push_back(OutputByte { value, aux: false });
    }

    /// Moves the next waiting byte into an empty output buffer.
    fn refill(&mut self) {
        let s = &mut self.state;
        if s.obf.is_some() {
            return;
        }
        if let Some(b) = s.replies.pop_front() {
            s.obf = Some(b);
            return;
        }
        if s.ram[0] & CB_KBD_DISABLE == 0 {
            while let Some(b) = s.kbd.out.queue.pop_front() {
                let value = if s.ram[0] & CB_XLATE == 0 {
                    b
                } else if b == 0xF0 {
                    s.xlate_break = true;
                    continue;
                } else {
                    let v = xlate(b) | if s.xlate_break { 0x80 } else { 0 };
                    s.xlate_break = false;
                    v
                };
                s.obf = Some(OutputByte { value, aux: false });
                return;
            }
        }
        if s.ram[0] & CB_AUX_DISABLE == 0 {
            if let Some(value) = s.mouse.out.queue.pop_front() {
                s.obf = Some(OutputByte { value, aux: true });
            }
        }
    }

    /// Reads the status register (port 0x64).
    pub fn read_status(&mut self) -> u8 {
        self.refill();
        let s = &self.state;
        let mut v = STATUS_INH | s.error_bits;
        if let Some(b) = s.obf {
            v |= STATUS_OBF;
            if b.aux {
                v |= STATUS_AUX_OBF;
            }
        }
        if s.sys_flag {
            v |= STATUS_SYS;
        }
        if s.last_was_command {
            v |= STATUS_A2;
        }
        v
    }

    /// Reads the output buffer (port 0x60).
    pub fn read_data(&mut self) -> u8 {
        self.refill();
        if let Some(b) = self.state.obf.take() {
            self.state.last_read = b.value;
            self.refill();
        }
        self.state.last_read
    }

    /// The output port as the 0xD0 command reports it.
    fn output_port(&self) -> u8 {
        let mut v = self.state.out_port & !(OUT_KBD_OBF | OUT_AUX_OBF);
        match self.state.obf {
            Some(b) if b.aux => v |= OUT_AUX_OBF,
            Some(_) => v |= OUT_KBD_OBF,
            None => {}
        }
        v
    }

    fn write_output_port(&mut self, v: u8) {
        self.state.out_port = v;
        if v & OUT_RESET == 0 {
            tracing::debug!("8042 output port reset line asserted");
            self.state.reset_request = true;
        }
    }

    /// Writes a controller command (port 0x64).
    pub fn write_command(&mut self, cmd: u8) {
        self.state.last_was_command = true;
        self.state.pending = None;
        match cmd {
            0x20..=0x3F => {
                let v = self.state.ram[usize::from(cmd & 0x1F)];
                self.reply(v);
            }
            0x60..=0x7F | 0xD1..=0xD4 => self.state.pending = Some(cmd),
            0xA4 => self.reply(0xF1), // no password installed
            0xA7 => self.state.ram[0] |= CB_AUX_DISABLE,
            0xA8 => self.state.ram[0] &= !CB_AUX_DISABLE,
            0xA9 | 0xAB => self.reply(0x00), // interface test passed
            0xAA => {
                self.state.sys_flag = true;
                self.reply(0x55);
            }
            0xAD => self.state.ram[0] |= CB_KBD_DISABLE,
            0xAE => self.state.ram[0] &= !CB_KBD_DISABLE,
            0xC0 => self.reply(0xA0), // keyboard not locked, no jumper
            0xD0 => {
                let v = self.output_port();
                self.reply(v);
            }
            0xDD => self.state.out_port &= !OUT_A20,
            0xDF => self.state.out_port |= OUT_A20,
            0xE0 => self.reply(0x00), // test inputs
            0xF0..=0xFF => {
                // Pulse the output port bits whose mask bit is 0.
                if cmd & OUT_RESET == 0 {
                    tracing::debug!("8042 reset pulse");
                    self.state.reset_request = true;
                }
            }
            _ => tracing::debug!(cmd = format_args!("{cmd:#04x}"), "unknown 8042 command"),
        }
        self.refill();
    }

    /// Writes the data port (port 0x60).
    pub fn write_data(&mut self, v: u8) {
        self.state.last_was_command = false;
        match self.state.pending.take() {
            Some(c @ 0x60..=0x7F) => {
                if c == 0x60 {
                    self.set_command_byte(v);
                } else {
                    self.state.ram[usize::from(c & 0x1F)] = v;
                }
            }
            Some(0xD1) => self.write_output_port(v),
            Some(0xD2) => self.state.replies.push_back(OutputByte {
                value: v,
                aux: false,
            }),
            Some(0xD3) => self.state.replies.push_back(OutputByte {
                value: v,
                aux: true,
            }),
            Some(0xD4) => self.state.mouse.write(v),
            _ => {
                // Sending to the keyboard re-enables its interface.
                self.state.ram[0] &= !CB_KBD_DISABLE;
                self.state.kbd.write(v);
            }
        }
        self.refill();
    }

    /// A key press or release from the host, as scan code set 2 bytes
    /// (e.g. `[0x1C]` for A down, `[0xF0, 0x1C]` for A up,
    /// `[0xE0, 0x75]` for Up). Dropped while the keyboard is not scanning.
    pub fn key_event(&mut self, scancode_set2: &[u8]) {
        self.state.kbd.key_event(scancode_set2);
        self.refill();
    }

    /// Mouse movement from the host: `dx` right, `dy` up (the PS/2
    /// convention), `buttons` bit 0 left, 1 right, 2 middle.
    pub fn mouse_event(&mut self, dx: i32, dy: i32, buttons: u8) {
        self.mouse_event_wheel(dx, dy, 0, buttons);
    }

    /// Like [`I8042::mouse_event`] with wheel movement `dz` (positive
    /// down) and buttons 4 and 5 in `buttons` bits 3 and 4; the wheel is
    /// reported once the guest has enabled the IntelliMouse protocol.
    pub fn mouse_event_wheel(&mut self, dx: i32, dy: i32, dz: i32, buttons: u8) {
        self.state.mouse.event(dx, dy, dz, buttons);
        self.refill();
    }

    /// The IRQ1 line: a keyboard (or controller) byte is waiting and
    /// command byte bit 0 enables the interrupt.
    pub fn irq1(&self) -> bool {
        self.state.ram[0] & CB_KBD_INT != 0 && matches!(self.state.obf, Some(b) if !b.aux)
    }

    /// The IRQ12 line: a mouse byte is waiting and command byte bit 1
    /// enables the interrupt.
    pub fn irq12(&self) -> bool {
        self.state.ram[0] & CB_AUX_INT != 0 && matches!(self.state.obf, Some(b) if b.aux)
    }

    /// The A20 gate (output port bit 1).
    pub fn a20_enabled(&self) -> bool {
        self.state.out_port & OUT_A20 != 0
    }

    /// True once after the guest pulsed or wrote the reset line low.
    pub fn take_reset_request(&mut self) -> bool {
        std::mem::take(&mut self.state.reset_request)
    }

    /// Reads port 0x60 (`port` = 0) or 0x64 (`port` = 4).
    pub fn pio_read_port(&mut self, port: u16) -> u8 {
        if port & 4 == 0 {
            self.read_data()
        } else {
            self.read_status()
        }
    }

    /// Writes port 0x60 (`port` = 0) or 0x64 (`port` = 4).
    pub fn pio_write_port(&mut self, port: u16, v: u8) {
        if port & 4 == 0 {
            self.write_data(v)
        } else {
            self.write_command(v)
        }
    }
}

/// The 8042 on the bus: the controller with its wiring. One device with
/// two port windows, 0x60 and 0x64 (ports 0x61-0x63 between them belong to
/// other devices). It drives IRQ1 and IRQ12, the A20 gate and the reset
/// line itself after every access and every input event.
#[derive(Debug, Default)]
pub struct I8042Device {
    /// The controller's state.
    pub chip: I8042,
    irq1: Option<IrqLine>,
    irq12: Option<IrqLine>,
    system: Option<SystemLink>,
}

impl I8042Device {
    /// A controller in its power-on state, wired to `irq1`, `irq12` and the
    /// system signals.
    pub fn new(irq1: IrqLine, irq12: IrqLine, system: SystemLink) -> I8042Device {
        let d = I8042Device {
            chip: I8042::new(),
            irq1: Some(irq1),
            irq12: Some(irq12),
            system: Some(system),
        };
        d.drive();
        d
    }

    /// Adds the controller to `bus` with its windows at 0x60 and 0x64.
    pub fn map(
        self,
        bus: &mut crate::IoBus,
    ) -> Result<crate::DeviceId<Self>, crate::bus::BusError> {
        let id = bus.register(I8042_DATA_PORT, 1, self)?;
        bus.map_ports(id, I8042_COMMAND_PORT, 1)?;
        Ok(id)
    }

    /// Drives the lines from the controller's state.
    fn drive(&self) {
        if let Some(l) = &self.irq1 {
            l.set(self.chip.irq1());
        }
        if let Some(l) = &self.irq12 {
            l.set(self.chip.irq12());
        }
        if let Some(s) = &self.system {
            s.set_a20(crate::lines::A20_I8042, self.chip.a20_enabled());
        }
    }

    fn after_access(&mut self) {
        if self.chip.take_reset_request() {
            if let Some(s) = &self.system {
                s.request_reset();
            }
        }
        self.drive();
    }

    /// Key make/break bytes from the host (see [`I8042::key_event`]).
    pub fn key_event(&mut self, scancode_set2: &[u8]) {
        self.chip.key_event(scancode_set2);
        self.drive();
    }

    /// Mouse movement from the host (see [`I8042::mouse_event`]).
    pub fn mouse_event(&mut self, dx: i32, dy: i32, buttons: u8) {
        self.chip.mouse_event(dx, dy, buttons);
        self.drive();
    }

    /// Mouse movement with the wheel (see [`I8042::mouse_event_wheel`]).
    pub fn mouse_event_wheel(&mut self, dx: i32, dy: i32, dz: i32, buttons: u8) {
        self.chip.mouse_event_wheel(dx, dy, dz, buttons);
        self.drive();
    }
}

impl crate::bus::Device for I8042Device {
    fn pio_read(&mut self, base: u16, _off: u16, size: u8) -> u32 {
        let v = self.chip.pio_read_port(base & 4);
        if base & 4 == 0 {
            // Reading the output buffer empties it and drops its IRQ line;
            // a byte waiting behind it arrives afterwards, so the line
            // rises again: a new edge for every byte (Linux reads one byte
            // per interrupt from an edge-triggered line).
            for l in [&self.irq1, &self.irq12].into_iter().flatten() {
                l.set(false);
            }
        }
        self.after_access();
        (crate::all_ones(size) & !0xFF) | u32::from(v)
    }
    fn pio_write(&mut self, base: u16, _off: u16, _size: u8, value: u32) {
        self.chip.pio_write_port(base & 4, value as u8);
        self.after_access();
    }
    fn reset(&mut self) {
        self.chip.reset();
        self.drive();
    }
    fn name(&self) -> &str {
        "i8042"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits for output like a driver and reads it.
    fn read(k: &mut I8042) -> Option<u8> {
        (k.read_status() & STATUS_OBF != 0).then(|| k.read_data())
    }

    fn drain(k: &mut I8042) -> Vec<u8> {
        std::iter::from_fn(|| read(k)).collect()
    }

    #[test]
    fn self_test_and_command_byte() {
        let mut k = I8042::new();
        assert_eq!(k.read_status() & (STATUS_SYS | STATUS_OBF), 0);
        k.write_command(0xAA);
        assert_ne!(k.read_status() & STATUS_A2, 0);
        assert_eq!(drain(&mut k), [0x55]);
        assert_ne!(k.read_status() & STATUS_SYS, 0);
        k.write_command(0xAB);
        assert_eq!(drain(&mut k), [0x00]);
        k.write_command(0xA9);
        assert_eq!(drain(&mut k), [0x00]);
        k.write_command(0x20);
        assert_eq!(drain(&mut k), [0x03]);
        k.write_command(0x60);
        k.write_data(0x47);
        assert_eq!(k.read_status() & STATUS_A2, 0);
        k.write_command(0x20);
        assert_eq!(drain(&mut k), [0x47]);
        k.write_command(0xA7);
        k.write_command(0xAD);
        assert_eq!(k.command_byte(), 0x47 | CB_AUX_DISABLE | CB_KBD_DISABLE);
        k.write_command(0xA8);
        k.write_command(0xAE);
        assert_eq!(k.command_byte(), 0x47);
    }

    #[test]
    fn a20_through_d1_and_d0() {
        let mut k = I8042::new();
        assert!(k.a20_enabled());
        k.write_command(0xD1);
        k.write_data(0xDD); // A20 off, reset line high
        assert!(!k.a20_enabled());
        assert!(!k.take_reset_request());
        k.write_command(0xD0);
        assert_eq!(drain(&mut k), [0xCD], "bits 4-5 live: buffer empty");
        k.write_command(0xD1);
        k.write_data(0xDF);
        assert!(k.a20_enabled());
        k.write_command(0xDD);
        assert!(!k.a20_enabled());
        k.write_command(0xDF);
        assert!(k.a20_enabled());
        assert!(!k.take_reset_request());
        // Writing the reset line low resets.
        k.write_command(0xD1);
        k.write_data(0xDE);
        assert!(k.take_reset_request());
    }

    #[test]
    fn reset_pulse() {
        let mut k = I8042::new();
        k.write_command(0xFF); // pulses nothing
        assert!(!k.take_reset_request());
        k.write_command(0xFE);
        assert!(k.take_reset_request());
        assert!(!k.take_reset_request());
        k.write_command(0xF0);
        assert!(k.take_reset_request());
    }

    #[test]
    fn keyboard_reset_identify_and_parameters() {
        let mut k = I8042::new();
        k.write_data(0xFF);
        assert_eq!(drain(&mut k), [0xFA, 0xAA]);
        k.write_data(0xF2);
        assert_eq!(drain(&mut k), [0xFA, 0xAB, 0x83]);
        k.write_data(0xED);
        k.write_data(0x07);
        assert_eq!(drain(&mut k), [0xFA, 0xFA]);
        assert_eq!(k.state.kbd.leds, 7);
        k.write_data(0xF3);
        k.write_data(0x20);
        assert_eq!(drain(&mut k), [0xFA, 0xFA]);
        k.write_data(0xF0);
        k.write_data(0x00);
        assert_eq!(drain(&mut k), [0xFA, 0xFA, 0x02]);
        k.write_data(0xEE);
        assert_eq!(drain(&mut k), [0xEE]);
        k.write_data(0xF5);
        k.key_event(&[0x1C]);
        k.write_data(0xF4);
        assert_eq!(drain(&mut k), [0xFA, 0xFA]);
        k.write_data(0x12);
        assert_eq!(drain(&mut k), [0xFE], "unknown command");
        // With translation, the keyboard identifies as AB 41.
        k.write_command(0x60);
        k.write_data(0x45);
        k.write_data(0xF2);
        assert_eq!(drain(&mut k), [0xFA, 0xAB, 0x41]);
    }

    #[test]
    fn keys_translated_and_interrupts() {
        let mut k = I8042::new();
        k.key_event(&[0x1C]);
        assert!(k.irq1());
        assert_eq!(drain(&mut k), [0x1C]);
        assert!(!k.irq1());
        k.write_command(0x60);
        k.write_data(CB_XLATE | CB_KBD_INT | CB_SYS);
        k.key_event(&[0x1C]);
        k.key_event(&[0xF0, 0x1C]);
        k.key_event(&[0xE0, 0x75]);
        k.key_event(&[0xE0, 0xF0, 0x75]);
        assert_eq!(drain(&mut k), [0x1E, 0x9E, 0xE0, 0x48, 0xE0, 0xC8]);
        // Keyboard disabled: bytes wait in the keyboard.
        k.write_command(0xAD);
        k.key_event(&[0x76]);
        assert_eq!(k.read_status() & STATUS_OBF, 0);
        k.write_command(0xAE);
        assert_eq!(drain(&mut k), [0x01]);
        // Interrupt disabled: the byte waits but IRQ1 stays low.
        k.write_command(0x60);
        k.write_data(CB_XLATE);
        k.key_event(&[0x76]);
        assert!(!k.irq1());
        assert_eq!(drain(&mut k), [0x01]);
        // Keyboard set 1 chosen on the keyboard, no translation.
        k.write_command(0x60);
        k.write_data(0);
        k.write_data(0xF0);
        k.write_data(0x01);
        assert_eq!(drain(&mut k), [0xFA, 0xFA]);
        k.key_event(&[0xF0, 0x1C]);
        assert_eq!(drain(&mut k), [0x9E]);
    }

    #[test]
    fn mouse_commands_and_packets() {
        let mut k = I8042::new();
        let send = |k: &mut I8042, v: u8| {
            k.write_command(0xD4);
            k.write_data(v);
        };
        send(&mut k, 0xFF);
        assert_ne!(k.read_status() & STATUS_AUX_OBF, 0);
        assert!(k.irq12());
        assert!(!k.irq1());
        assert_eq!(drain(&mut k), [0xFA, 0xAA, 0x00]);
        send(&mut k, 0xF2);
        assert_eq!(drain(&mut k), [0xFA, 0x00]);
        // No reports before 0xF4.
        k.mouse_event(5, 5, 0);
        assert!(drain(&mut k).is_empty());
        send(&mut k, 0xE8);
        send(&mut k, 0x03);
        send(&mut k, 0xE7);
        send(&mut k, 0xF4);
        send(&mut k, 0xE9);
        assert_eq!(
            drain(&mut k),
            [0xFA, 0xFA, 0xFA, 0xFA, 0xFA, 0x30, 0x03, 100]
        );
        send(&mut k, 0xE6);
        assert_eq!(drain(&mut k), [0xFA]);
        k.mouse_event(10, -3, 1);
        assert_eq!(drain(&mut k), [0x29, 10, 0xFD]);
        k.mouse_event(-300, 0, 0);
        assert_eq!(drain(&mut k), [0x58, 0x00, 0x00]);
        // IntelliMouse knock: rates 200, 100, 80 make it a wheel mouse.
        for r in [200, 100, 80] {
            send(&mut k, 0xF3);
            send(&mut k, r);
        }
        send(&mut k, 0xF2);
        assert_eq!(drain(&mut k)[6..], [0xFA, 0x03]);
        k.mouse_event_wheel(0, 0, -1, 0);
        assert_eq!(drain(&mut k), [0x08, 0, 0, 0xFF]);
        // Remote mode: movement accumulates until 0xEB.
        send(&mut k, 0xF0);
        k.mouse_event(3, 4, 0);
        k.mouse_event(1, 1, 0);
        assert_eq!(drain(&mut k), [0xFA]);
        send(&mut k, 0xEB);
        assert_eq!(drain(&mut k), [0xFA, 0x08, 4, 5, 0]);
        // Wrap mode echoes.
        send(&mut k, 0xEE);
        send(&mut k, 0x42);
        send(&mut k, 0xEC);
        assert_eq!(drain(&mut k), [0xFA, 0x42, 0xFA]);
        // 0xD3 injects a mouse byte.
        k.write_command(0xD3);
        k.write_data(0x99);
        assert!(k.irq12());
        assert_eq!(drain(&mut k), [0x99]);
        // Aux interface disabled: the mouse's bytes wait.
        k.write_command(0xA7);
        send(&mut k, 0xF2);
        assert!(drain(&mut k).is_empty());
        k.write_command(0xA8);
        assert_eq!(drain(&mut k), [0xFA, 0x03]);
    }

    #[test]
    fn ports_lines_and_serde_state() {
        let wires = crate::lines::Wires::new();
        let mut bus = crate::IoBus::new();
        let dev = I8042Device::new(wires.irq(1), wires.irq(12), wires.system());
        let id = dev.map(&mut bus).unwrap();
        assert!(wires.a20(), "A20 on at power-on");
        bus.pio_write(0x64, 1, 0xAA);
        assert_eq!(bus.pio_read(0x64, 1) & 1, 1);
        assert!(
            wires.irq_levels() & 2 != 0,
            "the self-test reply raises IRQ1"
        );
        assert_eq!(bus.pio_read(0x60, 1), 0x55);
        assert_eq!(wires.irq_levels(), 0);
        bus.pio_write(0x64, 1, 0xFE);
        assert!(wires.take_reset());
        bus.get_mut(id).key_event(&[0x1C, 0xF0]);
        let k = bus.get(id).chip.clone();
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(serde_json::from_str::<I8042>(&json).unwrap(), k);
    }
    /// Each byte of a multi-byte reply is a new rising edge on IRQ1, as on
    /// real hardware where the next byte arrives after the read: an
    /// edge-triggered controller interrupts once per byte.
    #[test]
    fn every_byte_is_an_edge() {
        let wires = crate::lines::Wires::new();
        let mut bus = crate::IoBus::new();
        let dev = I8042Device::new(wires.irq(1), wires.irq(12), wires.system());
        let id = dev.map(&mut bus).unwrap();
        wires.take_irq_changes();
        bus.get_mut(id).key_event(&[0xE0, 0x75]);
        let c = wires.take_irq_changes();
        assert_eq!((c.levels & 2, c.rose & 2), (2, 2));
        assert_eq!(bus.pio_read(0x60, 1), 0xE0);
        let c = wires.take_irq_changes();
        assert_eq!((c.levels & 2, c.rose & 2), (2, 2), "the second byte's edge");
        assert_eq!(bus.pio_read(0x64, 1) & 1, 1);
        assert_eq!(wires.take_irq_changes().rose, 0, "a status read is no edge");
        assert_eq!(bus.pio_read(0x60, 1), 0x75);
        let c = wires.take_irq_changes();
        assert_eq!((c.levels & 2, c.rose & 2), (0, 0), "empty: low");
    }
}
