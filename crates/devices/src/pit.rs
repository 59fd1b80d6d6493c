//! The Intel 82C54 programmable interval timer at ports 0x40-0x43, and
//! System Control Port B at 0x61 (channel 2's gate and output, the speaker
//! enable and the refresh toggle).
//!
//! Three channels count a 1.193182 MHz clock: channel 0 drives IRQ0,
//! channel 1 once paced DRAM refresh, channel 2 feeds the speaker and is the
//! one software can gate (port 0x61 bit 0) and observe (port 0x61 bit 5).
//! All six modes are modelled, with binary and BCD counting, LSB / MSB /
//! LSB-then-MSB access, the counter latch and read-back commands (count and
//! status, with the OUT and null-count bits) and the gate inputs.
//!
//! # Time
//!
//! The chip is never stepped. Each channel remembers the PIT tick at which
//! its counting element was loaded (ticks are whole periods of the
//! 1.193182 MHz clock since power-on, from the shared
//! [`TimeSource`]), and the count and OUT at any
//! later tick follow in closed form. Writes take effect as the datasheet
//! says: a count written at tick *t* is loaded on the next clock (*t* + 1);
//! in modes 2 and 3 a count written while counting is loaded at the end of
//! the current period (the datasheet's mode 3 reloads at the end of a
//! half-cycle; this model waits for the whole cycle); gate changes fold the
//! elapsed count into the state before the change.
//!
//! # Interrupt edges
//!
//! The PIC's IRQ0 is edge-triggered, so only rising edges of OUT0 matter.
//! [`Pit8254`] counts them: [`Timed::advance`] (and every port access)
//! counts, in closed form, the rising edges of OUT0 between the previous
//! update and now, plus any edge that a write causes at once (for example
//! a control word ending a mode 0 count with OUT low). The machine:
//!
//! ```text
//! pit.advance(now);
//! let n = pit.take_irq0_edges();      // rising edges since the last take
//! if n > 0 { pic.pulse_irq(0); }     // the PIC latches one; n - 1 were missed
//! ```
//!
//! [`Timed::next_deadline`] is the time of the next rising edge of OUT0 —
//! or the last update's time when edges are waiting to be taken, so that
//! edges counted during a port access are delivered at once. Falling edges
//! and the other channels' outputs have no effect outside the chip (OUT2 is
//! read through port 0x61 and computed then), so they set no deadlines.
//! Edges beyond the first per take are added up in
//! [`PitState::irq0_missed`] for diagnostics.
//!
//! # Port 0x61
//!
//! Port 0x61 needs channel 2's output and drives its gate, so the PIT owns
//! its state ([`PitState::port61`]) and maps two port windows on the bus:
//! 0x40-0x43 and 0x61 ([`Pit8254::map`]). Bits: 0 timer 2 gate (r/w),
//! 1 speaker data enable (r/w), 2 parity check disable and 3 channel check
//! disable (r/w, stored), 4 refresh toggle (read-only: flips every 18 PIT
//! ticks, 15.09 µs, as channel 1 programmed by the BIOS would make it),
//! 5 timer 2 OUT (read-only), 6 and 7 channel check and parity error
//! (always 0). The refresh bit is a function of virtual time, so a guest
//! loop timing itself on it sees it flip as virtual time passes.

use crate::bus::{BusError, DeviceId, IoBus};
use crate::clock::{ns_to_ticks, Nanos, TimeSource, Timed, NS_PER_SEC};
use crate::lines::IrqLine;
use serde::{Deserialize, Serialize};

/// The PIT's input clock in Hz.
pub const PIT_HZ: u64 = 1_193_182;
/// Base port of the PIT (counters 0-2, then the control word).
pub const PIT_PORT: u16 = 0x40;
/// System Control Port B.
pub const SYSTEM_CONTROL_B_PORT: u16 = 0x61;
/// The ISA IRQ that channel 0 drives.
pub const PIT_IRQ: u8 = 0;

/// PIT ticks per flip of port 0x61 bit 4 (the AT's 15.09 µs refresh period).
const REFRESH_TICKS: u64 = 18;

/// Port 0x61 bits.
const SCB_GATE2: u8 = 1 << 0;
const SCB_WRITABLE: u8 = 0x0F;
const SCB_REFRESH: u8 = 1 << 4;
const SCB_OUT2: u8 = 1 << 5;

/// The first tick whose start is at or after `ns` would be `ns_to_ticks`;
/// this is the inverse: the earliest time at which tick `t` has begun.
fn tick_to_ns_ceil(t: u64) -> Nanos {
    let num = u128::from(t) * u128::from(NS_PER_SEC);
    num.div_ceil(u128::from(PIT_HZ)) as Nanos
}

fn to_bcd(v: u32) -> u16 {
    let v = v % 10_000;
    ((v / 1000) << 12 | (v / 100 % 10) << 8 | (v / 10 % 10) << 4 | (v % 10)) as u16
}

fn from_bcd(v: u16) -> u32 {
    let d = |s: u16| u32::from((v >> s) & 0xF);
    (d(12) * 1000 + d(8) * 100 + d(4) * 10 + d(0)) % 10_000
}

/// Flips a byte-order flip-flop, returning its old state.
fn toggle(b: &mut bool) -> bool {
    *b = !*b;
    !*b
}

/// Edges of a periodic output at `r + k * p`, k >= 1, within `(a, b]`.
/// A period of 1 (illegal in modes 2 and 3) leaves OUT constant: no edges.
fn multiples(r: u64, p: u64, a: u64, b: u64) -> u64 {
    let upto = |x: u64| if x < r { 0 } else { (x - r) / p };
    if b <= a || p < 2 {
        0
    } else {
        upto(b) - upto(a)
    }
}

/// One counter of the 8254: plain data, serializable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PitChannel {
    /// Mode 0-5 (the aliases 6 and 7 are stored as 2 and 3).
    pub mode: u8,
    /// Read/write access: 1 LSB only, 2 MSB only, 3 LSB then MSB.
    pub access: u8,
    /// BCD counting (modulus 10000 instead of 65536).
    pub bcd: bool,
    /// The count register: the last count written, 1..=modulus (0 means the modulus).
    pub count: u32,
    /// A count has been written since the last control word.
    pub armed: bool,
    /// LSB-then-MSB writes: the LSB was written, the MSB comes next.
    pub write_msb_next: bool,
    /// The LSB written first.
    pub write_lsb: u8,
    /// LSB-then-MSB reads of the live count: the MSB comes next.
    pub read_msb_next: bool,
    /// A latched count (as read: BCD-encoded in BCD mode).
    pub latch: Option<u16>,
    /// LSB-then-MSB reads of the latched count: the MSB comes next.
    pub latch_msb_next: bool,
    /// A latched status byte (read-back command).
    pub status: Option<u8>,
    /// Null count: the count register has not been loaded into the counter yet.
    pub null_count: bool,
    /// The tick at which the pending load clears the null count, if known.
    pub null_clear_tick: Option<u64>,
    /// The gate input.
    pub gate: bool,
    /// The counting element is loaded and counting (subject to the gate in
    /// modes 0, 2, 3 and 4).
    pub counting: bool,
    /// The tick at which the counter held `ce` (modes 0, 1, 4, 5) or was
    /// loaded with `period` (modes 2, 3).
    pub ref_tick: u64,
    /// Counter value at `ref_tick`; the frozen value while not counting.
    pub ce: u32,
    /// Modes 0, 1, 4, 5: the terminal count `ce` ticks after `ref_tick` is still ahead.
    pub terminal_pending: bool,
    /// Modes 2, 3: the count reloaded at every period.
    pub period: u32,
    /// Modes 2, 3: a new count that takes over at the given tick (end of a period).
    pub next_period: Option<(u64, u32)>,
}

impl PitChannel {
    fn new(gate: bool) -> PitChannel {
        PitChannel {
            mode: 3,
            access: 3,
            bcd: false,
            count: 0x1_0000,
            armed: false,
            write_msb_next: false,
            write_lsb: 0,
            read_msb_next: false,
            latch: None,
            latch_msb_next: false,
            status: None,
            null_count: true,
            null_clear_tick: None,
            gate,
            counting: false,
            ref_tick: 0,
            ce: 0,
            terminal_pending: false,
            period: 0x1_0000,
            next_period: None,
        }
    }

    fn modulus(&self) -> u32 {
        if self.bcd {
            10_000
        } else {
            0x1_0000
        }
    }

    fn periodic(&self) -> bool {
        matches!(self.mode, 2 | 3)
    }

    /// Whether the counter decrements now.
    fn running(&self) -> bool {
        self.counting && (self.gate || matches!(self.mode, 1 | 5))
    }

    /// Ticks counted since `ref_tick` by tick `t`.
    fn elapsed(&self, t: u64) -> u64 {
        if self.running() {
            t.saturating_sub(self.ref_tick)
        } else {
            0
        }
    }

    /// The period schedule in force at tick `t` (modes 2 and 3).
    fn schedule_at(&self, t: u64) -> (u64, u32) {
        match self.next_period {
            Some((b, p)) if t >= b => (b, p),
            _ => (self.ref_tick, self.period),
        }
    }

    /// The counter value (1..=modulus or 0..modulus) and OUT at tick `t`.
    fn eval(&self, t: u64) -> (u32, bool) {
        if self.periodic() {
            if !self.running() {
                return (self.ce, true);
            }
            let (r, p) = self.schedule_at(t);
            if t < r {
                return (self.ce, true);
            }
            let pos = ((t - r) % u64::from(p)) as u32;
            if self.mode == 2 {
                return (p - pos, pos + 1 != p);
            }
            let high = p.div_ceil(2);
            let half = if pos < high { pos } else { pos - high };
            return ((p & !1) - 2 * half, pos < high);
        }
        let e = self.elapsed(t);
        let value = (i64::from(self.ce) - e as i64).rem_euclid(i64::from(self.modulus())) as u32;
        let tc = self.terminal_pending;
        let reached = e >= u64::from(self.ce);
        let out = match self.mode {
            0 => self.counting && (!tc || reached),
            1 => !self.counting || !tc || reached,
            _ => !(self.counting && tc && e == u64::from(self.ce)),
        };
        (value, out)
    }

    /// The value a read returns (BCD-encoded in BCD mode).
    fn read_value(&self, t: u64) -> u16 {
        let v = self.eval(t).0 % self.modulus();
        if self.bcd {
            to_bcd(v)
        } else {
            v as u16
        }
    }

    /// The tick of the terminal-count rising edge of a one-shot mode.
    fn one_shot_edge(&self) -> Option<u64> {
        if !(self.running() && self.terminal_pending) || self.periodic() {
            return None;
        }
        let at = self.ref_tick + u64::from(self.ce);
        Some(if matches!(self.mode, 4 | 5) {
            at + 1
        } else {
            at
        })
    }

    /// Rising edges of OUT at ticks in `(a, b]`, with no writes in between.
    fn rising_edges(&self, a: u64, b: u64) -> u64 {
        if b <= a {
            return 0;
        }
        if self.periodic() {
            if !self.running() {
                return 0;
            }
            let p = u64::from(self.period);
            return match self.next_period {
                Some((sw, np)) => {
                    multiples(self.ref_tick, p, a, b.min(sw))
                        + if b > sw {
                            multiples(sw, u64::from(np), a.max(sw), b)
                        } else {
                            0
                        }
                }
                None => multiples(self.ref_tick, p, a, b),
            };
        }
        u64::from(self.one_shot_edge().is_some_and(|e| a < e && e <= b))
    }

    /// The first rising edge of OUT after tick `a`.
    fn next_rising(&self, a: u64) -> Option<u64> {
        if self.periodic() {
            if !self.running() {
                return None;
            }
            let (r, p) = self.schedule_at(a);
            let p = u64::from(p);
            if p < 2 {
                return None; // OUT is constant
            }
            let k = if a < r { 1 } else { (a - r) / p + 1 };
            return Some(r + k * p);
        }
        self.one_shot_edge().filter(|&e| e > a)
    }

    /// Applies what has happened by tick `t`: a pending period switch and
    /// the clearing of null count.
    fn catch_up(&mut self, t: u64) {
        if let Some((b, p)) = self.next_period {
            if t >= b {
                self.ref_tick = b;
                self.period = p;
                self.next_period = None;
            }
        }
        if self.null_clear_tick.is_some_and(|c| t >= c) {
            self.null_count = false;
            self.null_clear_tick = None;
        }
    }

    /// Folds the count elapsed by tick `t` into `ce` / `ref_tick` (one-shot
    /// modes) or freezes the current value (periodic modes), before a
    /// change of gate or a write.
    fn normalize(&mut self, t: u64) {
        if self.periodic() {
            self.ce = self.eval(t).0;
            return;
        }
        let e = self.elapsed(t);
        if e > 0 {
            if self.terminal_pending && e > u64::from(self.ce) {
                self.terminal_pending = false;
            }
            self.ce = if self.terminal_pending {
                self.ce - e as u32
            } else {
                (i64::from(self.ce) - e as i64).rem_euclid(i64::from(self.modulus())) as u32
            };
        }
        self.ref_tick = self.ref_tick.max(t);
    }

    /// Loads the count register into the counter at tick `t + 1`.
    fn load(&mut self, t: u64) {
        self.counting = true;
        self.ref_tick = t + 1;
        self.ce = self.count;
        self.period = self.count;
        self.next_period = None;
        self.terminal_pending = !self.periodic();
        self.null_clear_tick = Some(t + 1);
    }

    /// A complete count was written at tick `t`.
    fn write_count(&mut self, t: u64, raw: u16) {
        let m = self.modulus();
        let n = if self.bcd {
            from_bcd(raw)
        } else {
            u32::from(raw)
        };
        self.count = if n == 0 { m } else { n.min(m) };
        self.null_count = true;
        self.null_clear_tick = None;
        let was_armed = self.armed;
        self.armed = true;
        match self.mode {
            0 | 4 => self.load(t),
            2 | 3 if was_armed && self.counting && self.gate => {
                // Loaded at the end of the current period.
                let (r, p) = (self.ref_tick, u64::from(self.period));
                let done = if t < r { 0 } else { (t - r) / p };
                let at = r + (done + 1) * p;
                self.next_period = Some((at, self.count));
                self.null_clear_tick = Some(at);
            }
            2 | 3 => {
                self.load(t);
                if !self.gate {
                    self.ce = self.count;
                }
            }
            _ => {} // modes 1 and 5 wait for a gate trigger
        }
    }

    /// Writes the counter's port at tick `t`.
    fn write(&mut self, t: u64, v: u8) {
        match self.access {
            1 => self.write_count(t, u16::from(v)),
            2 => self.write_count(t, u16::from(v) << 8),
            _ => {
                if self.write_msb_next {
                    self.write_msb_next = false;
                    self.write_count(t, u16::from(self.write_lsb) | u16::from(v) << 8);
                } else {
                    self.write_msb_next = true;
                    self.write_lsb = v;
                    if self.mode == 0 {
                        // Writing the first byte stops the count; OUT goes low.
                        self.normalize(t);
                        self.counting = false;
                    }
                }
            }
        }
    }

    /// Reads the counter's port at tick `t`.
    fn read(&mut self, t: u64) -> u8 {
        if let Some(s) = self.status.take() {
            return s;
        }
        let (v, from_latch) = match self.latch {
            Some(l) => (l, true),
            None => (self.read_value(t), false),
        };
        let msb = match self.access {
            1 => false,
            2 => true,
            _ if from_latch => toggle(&mut self.latch_msb_next),
            _ => toggle(&mut self.read_msb_next),
        };
        if from_latch && (self.access != 3 || msb) {
            self.latch = None;
            self.latch_msb_next = false;
        }
        if msb {
            (v >> 8) as u8
        } else {
            v as u8
        }
    }

    /// A control word for this channel (not a latch command) at tick `t`.
    fn control(&mut self, t: u64, v: u8) {
        self.normalize(t);
        self.access = (v >> 4) & 3;
        self.mode = match (v >> 1) & 7 {
            6 => 2,
            7 => 3,
            m => m,
        };
        self.bcd = v & 1 != 0;
        self.armed = false;
        self.counting = false;
        self.terminal_pending = false;
        self.next_period = None;
        self.write_msb_next = false;
        self.read_msb_next = false;
        self.latch = None;
        self.latch_msb_next = false;
        self.status = None;
        self.null_count = true;
        self.null_clear_tick = None;
        self.ce %= self.modulus();
    }

    fn latch_count(&mut self, t: u64) {
        if self.latch.is_none() {
            self.latch = Some(self.read_value(t));
            self.latch_msb_next = false;
        }
    }

    fn latch_status(&mut self, t: u64) {
        if self.status.is_none() {
            let out = self.eval(t).1;
            self.status = Some(
                u8::from(out) << 7
                    | u8::from(self.null_count) << 6
                    | self.access << 4
                    | self.mode << 1
                    | u8::from(self.bcd),
            );
        }
    }

    /// Sets the gate input at tick `t`.
    fn set_gate(&mut self, t: u64, level: bool) {
        if level == self.gate {
            return;
        }
        self.normalize(t);
        self.gate = level;
        if !level {
            self.next_period = None; // a rising gate reloads anyway
            return;
        }
        match self.mode {
            // Modes 1, 5 are triggered and 2, 3 restarted by a rising gate.
            1 | 2 | 3 | 5 if self.armed => {
                self.load(t);
            }
            _ => {} // modes 0, 4 resume counting
        }
    }
}

/// The PIT's state: plain data, serializable for snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PitState {
    /// Counters 0, 1 and 2.
    pub channels: [PitChannel; 3],
    /// Port 0x61's writable bits (0-3).
    pub port61: u8,
    /// The PIT tick up to which OUT0's edges have been counted.
    pub last_tick: u64,
    /// Rising edges of OUT0 counted and not yet taken.
    pub irq0_edges: u64,
    /// Rising edges of OUT0 that were taken together with another (so the
    /// PIC saw one interrupt for several edges), in total.
    pub irq0_missed: u64,
}

impl Default for PitState {
    fn default() -> Self {
        PitState {
            // Gates of channels 0 and 1 are tied high; channel 2's is port 0x61 bit 0.
            channels: [
                PitChannel::new(true),
                PitChannel::new(true),
                PitChannel::new(false),
            ],
            port61: 0,
            last_tick: 0,
            irq0_edges: 0,
            irq0_missed: 0,
        }
    }
}

/// An 82C54 with port 0x61, reading virtual time from a [`TimeSource`].
#[derive(Debug)]
pub struct Pit8254 {
    /// Counters and port 0x61.
    pub state: PitState,
    time: TimeSource,
    /// IRQ0, pulsed at each rising edge of OUT0.
    irq0: Option<IrqLine>,
}

impl Pit8254 {
    /// A PIT in its power-on state (no channel counting, OUTs high) on `time`.
    pub fn new(time: TimeSource) -> Pit8254 {
        Pit8254::with_state(time, PitState::default())
    }

    /// A PIT restored from a snapshot.
    pub fn with_state(time: TimeSource, state: PitState) -> Pit8254 {
        Pit8254 {
            state,
            time,
            irq0: None,
        }
    }

    /// Wires OUT0 to `irq0`: each rising edge pulses it.
    pub fn connect_irq(&mut self, irq0: IrqLine) {
        self.irq0 = Some(irq0);
    }

    /// Adds the PIT to `bus` with its windows at 0x40-0x43 and 0x61.
    pub fn map(self, bus: &mut IoBus) -> Result<DeviceId<Pit8254>, BusError> {
        let id = bus.register(PIT_PORT, 4, self)?;
        bus.map_ports(id, SYSTEM_CONTROL_B_PORT, 1)?;
        Ok(id)
    }

    /// Pulses IRQ0 for OUT0 edges counted so far.
    fn deliver_edges(&mut self) {
        if self.state.irq0_edges > 0 && self.irq0.is_some() {
            self.take_irq0_edges();
            if let Some(l) = &self.irq0 {
                l.pulse();
            }
        }
    }

    /// The current PIT tick (never before the last update).
    fn now_tick(&self) -> u64 {
        ns_to_ticks(self.time.now(), PIT_HZ).max(self.state.last_tick)
    }

    /// Counts OUT0's rising edges up to tick `t` and applies what has
    /// happened by then.
    fn sync(&mut self, t: u64) {
        let s = &mut self.state;
        if t > s.last_tick {
            s.irq0_edges += s.channels[0].rising_edges(s.last_tick, t);
            s.last_tick = t;
        }
        for ch in &mut s.channels {
            ch.catch_up(t);
        }
    }

    /// Runs `f` on the state at the current tick, counting an immediate
    /// rising edge of OUT0 that it causes.
    fn mutate<R>(&mut self, f: impl FnOnce(&mut PitState, u64) -> R) -> R {
        let t = self.now_tick();
        self.sync(t);
        let before = self.state.channels[0].eval(t).1;
        let r = f(&mut self.state, t);
        if !before && self.state.channels[0].eval(t).1 {
            self.state.irq0_edges += 1;
        }
        r
    }

    /// The OUT line of `channel` (0..3) now.
    pub fn out(&self, channel: usize) -> bool {
        self.state.channels[channel].eval(self.now_tick()).1
    }

    /// The value `channel`'s counter would read now (BCD-encoded in BCD mode).
    pub fn counter(&self, channel: usize) -> u16 {
        self.state.channels[channel].read_value(self.now_tick())
    }

    /// Sets the gate input of `channel` (channel 2's is port 0x61 bit 0).
    pub fn set_gate(&mut self, channel: usize, level: bool) {
        self.mutate(|s, t| s.channels[channel].set_gate(t, level));
    }

    /// Rising edges of OUT0 counted since the last call; each should raise
    /// IRQ0 (the PIC latches one edge, so all but one of them are missed,
    /// and are added to [`PitState::irq0_missed`]).
    pub fn take_irq0_edges(&mut self) -> u64 {
        let n = std::mem::take(&mut self.state.irq0_edges);
        self.state.irq0_missed += n.saturating_sub(1);
        n
    }

    /// The time of the next rising edge of `channel`'s OUT after the last
    /// update, if it is counting toward one.
    pub fn next_rising_edge(&self, channel: usize) -> Option<Nanos> {
        self.state.channels[channel]
            .next_rising(self.state.last_tick)
            .map(tick_to_ns_ceil)
    }

    /// Reads the byte at port `port` (0x40-0x43 or 0x61).
    pub fn read_port(&mut self, port: u16) -> u8 {
        let t = self.now_tick();
        self.sync(t);
        match port {
            0x40..=0x42 => self.state.channels[usize::from(port - 0x40)].read(t),
            SYSTEM_CONTROL_B_PORT => {
                let refresh = if (t / REFRESH_TICKS) & 1 != 0 {
                    SCB_REFRESH
                } else {
                    0
                };
                let out2 = if self.state.channels[2].eval(t).1 {
                    SCB_OUT2
                } else {
                    0
                };
                self.state.port61 | refresh | out2
            }
            _ => 0xFF, // the control word register is write-only
        }
    }

    /// Writes the byte at port `port` (0x40-0x43 or 0x61).
    pub fn write_port(&mut self, port: u16, v: u8) {
        self.mutate(|s, t| match port {
            0x40..=0x42 => s.channels[usize::from(port - 0x40)].write(t, v),
            0x43 => write_control(s, t, v),
            SYSTEM_CONTROL_B_PORT => {
                s.port61 = v & SCB_WRITABLE;
                s.channels[2].set_gate(t, v & SCB_GATE2 != 0);
            }
            _ => {}
        });
    }
}

/// A write to the control word register at tick `t`.
fn write_control(s: &mut PitState, t: u64, v: u8) {
    let sc = usize::from(v >> 6);
    if sc == 3 {
        // Read-back: bit 5 low latches counts, bit 4 low latches status,
        // bits 1-3 select counters 0-2.
        for (i, ch) in s.channels.iter_mut().enumerate() {
            if v & (2 << i) == 0 {
                continue;
            }
            if v & 0x20 == 0 {
                ch.latch_count(t);
            }
            if v & 0x10 == 0 {
                ch.latch_status(t);
            }
        }
    } else if (v >> 4) & 3 == 0 {
        s.channels[sc].latch_count(t);
    } else {
        s.channels[sc].control(t, v);
    }
}

impl Timed for Pit8254 {
    fn advance(&mut self, now: Nanos) {
        self.sync(ns_to_ticks(now, PIT_HZ));
    }

    fn next_deadline(&self) -> Option<Nanos> {
        if self.state.irq0_edges > 0 {
            // Edges counted during a port access: due now.
            return Some(tick_to_ns_ceil(self.state.last_tick));
        }
        self.next_rising_edge(0)
    }
}

impl crate::bus::Device for Pit8254 {
    fn access_reaches_machine(&self, base: u16, _off: u16, _size: u8, write: bool) -> bool {
        // A read of port 0x61 computes its bits from the time and changes
        // nothing, unless OUT0 has rising edges to deliver by now (the read
        // would pulse IRQ0).
        let s = &self.state;
        write
            || base != SYSTEM_CONTROL_B_PORT
            || s.irq0_edges > 0
            || s.channels[0].rising_edges(s.last_tick, self.now_tick()) > 0
    }
    fn pio_read(&mut self, base: u16, off: u16, size: u8) -> u32 {
        let v = if base == SYSTEM_CONTROL_B_PORT {
            // Only one port: the other bytes of a wide access are unclaimed.
            u32::from(self.read_port(SYSTEM_CONTROL_B_PORT)) | (crate::all_ones(size) & !0xFF)
        } else {
            (0..u16::from(size)).fold(0, |acc, i| {
                acc | u32::from(self.read_port(PIT_PORT + ((off + i) & 3))) << (8 * i)
            })
        };
        self.deliver_edges();
        v
    }
    fn pio_write(&mut self, base: u16, off: u16, size: u8, value: u32) {
        if base == SYSTEM_CONTROL_B_PORT {
            self.write_port(SYSTEM_CONTROL_B_PORT, value as u8);
        } else {
            for i in 0..u16::from(size) {
                self.write_port(PIT_PORT + ((off + i) & 3), (value >> (8 * i)) as u8);
            }
        }
        self.deliver_edges();
    }
    fn next_deadline(&self) -> Option<Nanos> {
        Timed::next_deadline(self)
    }
    fn advance(&mut self, now: Nanos) {
        Timed::advance(self, now);
        self.deliver_edges();
    }
    fn reset(&mut self) {
        self.state = PitState::default();
    }
    fn name(&self) -> &str {
        "pit8254"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pit() -> (Pit8254, TimeSource) {
        let time = TimeSource::new();
        (Pit8254::new(time.clone()), time)
    }

    /// Nanoseconds of `ticks` PIT periods.
    fn ns(ticks: u64) -> Nanos {
        tick_to_ns_ceil(ticks)
    }

    /// Sets the time and brings the PIT up to it.
    fn at(p: &mut Pit8254, time: &TimeSource, now: Nanos) {
        time.set(now);
        p.advance(now);
    }

    fn program(p: &mut Pit8254, ch: u16, control: u8, count: u16) {
        p.write_port(0x43, control);
        p.write_port(0x40 + ch, count as u8);
        p.write_port(0x40 + ch, (count >> 8) as u8);
    }

    #[test]
    fn linux_periodic_mode2_period_within_one_percent() {
        for hz in [100u64, 250, 1000] {
            let (mut p, time) = pit();
            at(&mut p, &time, 5_000_000);
            let latch = ((1_193_180 + hz / 2) / hz) as u16;
            program(&mut p, 0, 0x34, latch);
            assert!(p.out(0));
            let mut last = None;
            for _ in 0..20 {
                let d = p.next_deadline().unwrap();
                assert!(d > time.now());
                at(&mut p, &time, d);
                assert_eq!(p.take_irq0_edges(), 1);
                if let Some(prev) = last {
                    let period = (d - prev) as f64;
                    let want = 1e9 / hz as f64;
                    assert!((period - want).abs() / want < 0.01, "{hz} Hz: {period} ns");
                }
                last = Some(d);
            }
            // Ten periods late: ten edges, nine of them missed.
            let d = p.next_deadline().unwrap();
            at(&mut p, &time, d + 9 * ns(u64::from(latch)));
            assert_eq!(p.take_irq0_edges(), 10);
            assert_eq!(p.state.irq0_missed, 9);
        }
    }

    #[test]
    fn mode2_out_and_count_sequence() {
        let (mut p, time) = pit();
        program(&mut p, 0, 0x34, 4);
        // Loaded at tick 1 with 4: 4 3 2 1 4 3 2 1 ..., OUT low while 1.
        let seq: Vec<(u16, bool)> = (1..10)
            .map(|t| {
                time.set(ns(t));
                (p.counter(0), p.out(0))
            })
            .collect();
        assert_eq!(
            seq,
            [
                (4, true),
                (3, true),
                (2, true),
                (1, false),
                (4, true),
                (3, true),
                (2, true),
                (1, false),
                (4, true)
            ]
        );
        // A new count takes effect at the next reload.
        time.set(ns(10));
        p.write_port(0x40, 10);
        p.write_port(0x40, 0);
        assert_eq!(p.counter(0), 3);
        time.set(ns(13));
        assert_eq!(p.counter(0), 10);
        time.set(ns(22));
        assert_eq!((p.counter(0), p.out(0)), (1, false));
        time.set(ns(23));
        assert_eq!(p.counter(0), 10);
        p.advance(ns(23));
        assert_eq!(
            p.take_irq0_edges(),
            4,
            "edges at ticks 5, 9, 13 and 13 + 10"
        );
    }

    #[test]
    fn mode0_one_shot() {
        let (mut p, time) = pit();
        at(&mut p, &time, ns(100));
        p.write_port(0x43, 0x30);
        assert!(!p.out(0), "mode 0 control word sets OUT low");
        p.write_port(0x40, 0xE8);
        p.write_port(0x40, 0x03); // 1000
                                  // OUT rises N + 1 clocks after the write.
        assert_eq!(p.next_deadline(), Some(ns(100 + 1001)));
        at(&mut p, &time, ns(100 + 1000));
        assert!(!p.out(0));
        assert_eq!(p.take_irq0_edges(), 0);
        at(&mut p, &time, ns(100 + 1001));
        assert!(p.out(0));
        assert_eq!(p.take_irq0_edges(), 1);
        assert_eq!(p.next_deadline(), None, "one shot");
        // The counter wraps and keeps counting; OUT stays high.
        time.set(ns(100 + 1003));
        assert_eq!(p.counter(0), 0xFFFE);
        assert!(p.out(0));
        // Writing the LSB alone stops the count with OUT low.
        p.write_port(0x40, 0x10);
        assert!(!p.out(0));
        time.set(ns(2000));
        assert_eq!(p.counter(0), 0xFFFE);
        p.write_port(0x40, 0x00);
        time.set(ns(2000 + 1 + 0x10));
        assert!(p.out(0));
    }

    #[test]
    fn mode3_square_wave() {
        let (mut p, time) = pit();
        program(&mut p, 0, 0x36, 100);
        time.set(ns(11));
        assert_eq!(p.counter(0), 80, "counts down by two");
        // Loaded at tick 1: high for 50 ticks, low for 50.
        let out_at = |p: &Pit8254, t| {
            time.set(ns(t));
            p.out(0)
        };
        assert!(out_at(&p, 50));
        assert!(!out_at(&p, 51));
        assert!(!out_at(&p, 100));
        assert!(out_at(&p, 101));
        // Odd counts: high (N + 1) / 2, low (N - 1) / 2.
        let (mut p, time) = pit();
        program(&mut p, 0, 0x36, 101);
        let highs = (1..=101)
            .filter(|&t| {
                time.set(ns(t));
                p.out(0)
            })
            .count();
        assert_eq!(highs, 51);
        // The BIOS's 18.2 Hz tick: count 0 = 65536.
        let (mut p, time) = pit();
        program(&mut p, 0, 0x36, 0);
        at(&mut p, &time, NS_PER_SEC);
        let n = p.take_irq0_edges();
        assert!((18..=19).contains(&n), "{n} edges in one second");
        let d = p.next_deadline().unwrap();
        assert_eq!(d, ns(1 + 65536 * (n + 1)));
    }

    #[test]
    fn counter_latch_and_read_back() {
        let (mut p, time) = pit();
        program(&mut p, 2, 0xB4, 1000); // channel 2, mode 2
        p.write_port(0x61, 0x01); // gate 2 high: reload at tick 1
        time.set(ns(101));
        p.write_port(0x43, 0x80); // latch counter 2
        time.set(ns(500));
        assert_eq!(p.read_port(0x42), (900 & 0xFF) as u8);
        time.set(ns(600));
        assert_eq!(p.read_port(0x42), (900 >> 8) as u8);
        // The latch is consumed: live values again.
        assert_eq!(p.read_port(0x42), (401 & 0xFF) as u8);
        assert_eq!(p.read_port(0x42), 0x01);
        // Read-back of count and status of counters 0 and 2.
        time.set(ns(700));
        p.write_port(0x43, 0xC0 | 0x08 | 0x02);
        assert_eq!(p.read_port(0x42), 0x80 | 0x34, "OUT high, mode 2, LSB/MSB");
        assert_eq!(p.read_port(0x42), (301 & 0xFF) as u8);
        assert_eq!(p.read_port(0x42), 0x01);
        let st0 = p.read_port(0x40);
        assert_eq!(st0 & 0x40, 0x40, "channel 0 was never given a count");
        // Status only; a second latch before reading does not overwrite.
        p.write_port(0x43, 0xE0 | 0x08);
        time.set(ns(1001));
        p.write_port(0x43, 0xE0 | 0x08);
        assert_eq!(p.read_port(0x42), 0x80 | 0x34);
        // Null count shows a written count not yet loaded.
        p.write_port(0x43, 0xB0); // mode 0
        p.write_port(0x42, 0x10);
        p.write_port(0x42, 0x00);
        p.write_port(0x43, 0xE8);
        assert_eq!(p.read_port(0x42), 0x40 | 0x30, "OUT low, null count");
        time.set(ns(1002));
        p.write_port(0x43, 0xE8);
        assert_eq!(p.read_port(0x42), 0x30);
        // LSB-only and MSB-only access.
        p.write_port(0x43, 0x90); // LSB only, mode 0
        p.write_port(0x42, 0x40);
        time.set(ns(1002 + 1 + 0x10));
        assert_eq!(p.read_port(0x42), 0x30);
        p.write_port(0x43, 0xA0); // MSB only, mode 0
        p.write_port(0x42, 0x12);
        time.set(ns(1002 + 1 + 0x10 + 1 + 0x100));
        assert_eq!(p.read_port(0x42), 0x11);
    }

    #[test]
    fn bcd_counting() {
        let (mut p, time) = pit();
        program(&mut p, 0, 0x31, 0x1234); // mode 0, BCD
        time.set(ns(1 + 35));
        assert_eq!(p.counter(0), 0x1199);
        p.write_port(0x43, 0x00);
        assert_eq!(p.read_port(0x40), 0x99);
        assert_eq!(p.read_port(0x40), 0x11);
        // BCD count 0 is 10000; the counter wraps to 9999.
        program(&mut p, 0, 0x31, 0);
        assert_eq!(p.next_deadline(), Some(ns(36 + 1 + 10_000)));
        time.set(ns(36 + 1 + 10_001));
        assert_eq!(p.counter(0), 0x9999);
    }

    #[test]
    fn linux_pit_calibration_loop_on_channel_2() {
        let (mut p, time) = pit();
        let mut now = ns(12_345);
        time.set(now);
        // Gate high, speaker off.
        let v = p.read_port(0x61);
        p.write_port(0x61, (v & !0x02) | 0x01);
        // Mode 0, LSB/MSB, 50 ms.
        let latch = (PIT_HZ / 20) as u16;
        p.write_port(0x43, 0xB0);
        p.write_port(0x42, latch as u8);
        p.write_port(0x42, (latch >> 8) as u8);
        let start = now;
        let mut loops = 0u64;
        while p.read_port(0x61) & 0x20 == 0 {
            now += 1_000; // 1 µs per loop
            time.set(now);
            loops += 1;
            assert!(loops < 100_000);
        }
        let ms = (now - start) as f64 / 1e6;
        assert!((ms - 50.0).abs() < 0.01, "{ms} ms");
        // Gate low stops the count; OUT2 does not change.
        program(&mut p, 2, 0xB0, 1000);
        p.write_port(0x61, 0x00);
        now += ns(5000);
        time.set(now);
        assert_eq!(p.read_port(0x61) & 0x20, 0);
        p.write_port(0x61, 0x01);
        now += ns(999);
        time.set(now);
        assert_eq!(p.read_port(0x61) & 0x20, 0);
        now += ns(2);
        time.set(now);
        assert_eq!(p.read_port(0x61) & 0x21, 0x21);
        // Channel 2's edges do not count as IRQ0.
        assert_eq!(p.take_irq0_edges(), 0);
    }

    #[test]
    fn a_port61_read_reaches_the_machine_only_with_edges_to_deliver() {
        use crate::bus::Device;
        let (mut p, time) = pit();
        // Mode 0, OUT0 rises 1001 ticks after the count is written.
        at(&mut p, &time, ns(100));
        p.write_port(0x43, 0x30);
        p.write_port(0x40, 0xE8);
        p.write_port(0x40, 0x03);
        let base = SYSTEM_CONTROL_B_PORT;
        time.set(ns(100 + 1000));
        assert!(!p.access_reaches_machine(base, 0, 1, false), "no edge yet");
        assert!(p.access_reaches_machine(base, 0, 1, true), "a write");
        assert!(p.access_reaches_machine(PIT_PORT, 0, 1, false), "a counter");
        time.set(ns(100 + 1001));
        assert!(
            p.access_reaches_machine(base, 0, 1, false),
            "the read would pulse IRQ0"
        );
    }

    #[test]
    fn port61_bits_and_refresh_toggle() {
        let (mut p, time) = pit();
        p.write_port(0x61, 0xFF);
        let v = p.read_port(0x61);
        assert_eq!(v & 0xCF, 0x0F, "bits 6, 7 read 0; 0-3 stored");
        assert_eq!(v & 0x20, 0x20, "OUT2 high before programming");
        // Bit 4 flips every ~15 µs of virtual time.
        let mut flips = 0;
        let mut last = p.read_port(0x61) & 0x10;
        for us in 1..=1500 {
            time.set(us * 1000);
            let b = p.read_port(0x61) & 0x10;
            if b != last {
                flips += 1;
                last = b;
            }
        }
        assert!((98..=101).contains(&flips), "{flips} flips in 1.5 ms");
    }

    #[test]
    fn gate_triggered_modes_1_and_5_and_strobe_mode_4() {
        let (mut p, time) = pit();
        // Mode 1 on channel 2: OUT low from the trigger until terminal count.
        program(&mut p, 2, 0xB2, 10);
        assert!(p.out(2));
        time.set(ns(50));
        assert!(p.out(2), "waits for the gate");
        p.write_port(0x61, 1);
        time.set(ns(51));
        assert!(!p.out(2));
        time.set(ns(60));
        assert!(!p.out(2));
        time.set(ns(61));
        assert!(p.out(2));
        // Retrigger.
        p.write_port(0x61, 0);
        p.write_port(0x61, 1);
        time.set(ns(65));
        assert_eq!((p.out(2), p.counter(2)), (false, 7), "reloaded at tick 62");
        // Mode 5: one-clock strobe N + 1 clocks after the trigger.
        program(&mut p, 2, 0xBA, 5);
        p.write_port(0x61, 0);
        p.write_port(0x61, 1);
        let outs: Vec<bool> = (65..=73)
            .map(|t| {
                time.set(ns(t));
                p.out(2)
            })
            .collect();
        assert_eq!(
            outs,
            [true, true, true, true, true, true, false, true, true]
        );
        // Mode 4 on channel 0: software-triggered strobe, one IRQ0 edge.
        at(&mut p, &time, ns(100));
        program(&mut p, 0, 0x38, 3);
        assert_eq!(p.next_deadline(), Some(ns(100 + 1 + 3 + 1)));
        at(&mut p, &time, ns(104));
        assert!(!p.out(0));
        at(&mut p, &time, ns(106));
        assert!(p.out(0));
        assert_eq!(p.take_irq0_edges(), 1);
        assert_eq!(p.next_deadline(), None);
    }

    #[test]
    fn reprogramming_raises_an_immediate_edge() {
        let (mut p, time) = pit();
        at(&mut p, &time, ns(10));
        p.write_port(0x43, 0x30); // mode 0: OUT0 falls
        assert_eq!(p.take_irq0_edges(), 0);
        assert_eq!(p.next_deadline(), None, "no count yet");
        p.write_port(0x43, 0x34); // mode 2: OUT0 rises at once
        assert_eq!(p.next_deadline(), Some(ns(10)), "the edge is due now");
        assert_eq!(p.take_irq0_edges(), 1);
        assert_eq!(p.next_deadline(), None);
    }

    #[test]
    fn bus_windows_and_serde() {
        let time = TimeSource::new();
        let mut bus = IoBus::new();
        let id = Pit8254::new(time.clone()).map(&mut bus).unwrap();
        bus.pio_write(0x43, 1, 0x34);
        bus.pio_write(0x40, 1, 0x9C);
        bus.pio_write(0x40, 1, 0x2E); // 11932: 100 Hz
        time.set(ns(1 + 32));
        assert_eq!(bus.pio_read(0x40, 1), 0x7C);
        assert_eq!(bus.pio_read(0x40, 1), 0x2E);
        assert_eq!(bus.pio_read(0x43, 1), 0xFF);
        bus.pio_write(0x61, 1, 0x03);
        assert_eq!(bus.pio_read(0x61, 1) & 0x0F, 0x03);
        let state = bus.get(id).state.clone();
        let json = serde_json::to_string(&state).unwrap();
        let back: PitState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, state);
        let restored = Pit8254::with_state(time.clone(), back);
        assert_eq!(restored.counter(0), bus.get(id).counter(0));
        assert_eq!(
            Timed::next_deadline(&restored),
            Timed::next_deadline(bus.get(id))
        );
    }
}
