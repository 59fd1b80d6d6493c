//! The Motorola MC146818 real-time clock and its 128 bytes of CMOS RAM.
//!
//! # Ports
//!
//! The RTC claims 0x70-0x71 ([`RTC_PORT`], [`RTC_PORTS`]). A write to 0x70
//! selects a register (bits 6-0) and sets the NMI mask (bit 7: 1 masks
//! NMIs, [`Rtc146818::nmi_masked`]); 0x70 reads all ones, as it is
//! write-only on PC chipsets. 0x71 reads and writes the selected register.
//!
//! # Registers
//!
//! 0x00-0x09: seconds, seconds alarm, minutes, minutes alarm, hours, hours
//! alarm, day of week (1 = Sunday), day of month, month, year; 0x0A-0x0D:
//! registers A-D; 0x0E-0x7F: battery-backed RAM, of which 0x32 (the IBM
//! century byte) is kept by the clock like the time registers, as PC
//! chipsets do.
//!
//! The clock keeps the time in binary and presents it in the format that
//! register B selects when it is read (BCD or binary, 12- or 24-hour with
//! bit 7 = PM), and decodes writes the same way; changing DM or 24/12 thus
//! re-presents the current time instead of leaving stale codes, which is
//! QEMU's behaviour too. Alarm registers are stored as written and compared
//! with the time in the current format; 0xC0-0xFF in an alarm register
//! matches any value ("don't care").
//!
//! # Time
//!
//! The clock starts at a fixed date or at the host's UTC time
//! ([`RtcStart`]) and runs on virtual time from the [`TimeSource`]: every
//! port access catches up first, and [`Timed::next_deadline`] names the
//! next periodic, alarm or update-ended interrupt for the machine. Time is
//! counted in ticks of the 32.768 kHz time base since the divider chain
//! last started (power-on, or register A's DV bits going from reset to
//! 010); other DV values stop the divider and the clock.
//!
//! * The periodic flag PF rises every 2^(RS-1) ticks (RS 3-15: 8192 Hz down
//!   to 2 Hz; RS 1 and 2: 256 and 128 Hz; RS 0: never).
//! * The once-per-second update happens at whole seconds after power-on,
//!   and 500 ms after the divider leaves reset (as the datasheet says); it
//!   advances the clock, sets UF, and sets AF when the alarm matches.
//!   SET (register B bit 7) inhibits updates, which stops the clock.
//! * UIP (register A bit 7) reads 1 from 244 µs (8 ticks) before an update
//!   until the update; the update itself is instantaneous, so UIP = 0
//!   still guarantees 244 µs of stable registers. UIP reads 0 while SET is
//!   1 or the divider is stopped.
//! * DSE (register B bit 0) applies the MC146818's daylight-saving rule:
//!   on the last Sunday in April 1:59:59 AM goes to 3:00:00 AM, on the last
//!   Sunday in October the first 1:59:59 AM goes to 1:00:00 AM.
//!
//! Register C (IRQF, PF, AF, UF) clears when read, which lowers IRQ8.
//! IRQF, and the IRQ8 line ([`Rtc146818::irq_pending`]), is
//! PF·PIE + AF·AIE + UF·UIE. Register D reads 0x80 (valid RAM and time).
//!
//! # CMOS memory layout
//!
//! [`Rtc146818::set_memory_size`] fills in what SeaBIOS and Linux read:
//! 0x15-0x16 base memory in KiB, 0x17-0x18 and 0x30-0x31 memory above
//! 1 MiB in KiB (at most 0xFFFF), 0x34-0x35 memory above 16 MiB in 64 KiB
//! units (at most 0xFFFF), 0x5B-0x5D memory above 4 GiB in 64 KiB units,
//! and the checksum 0x2E (high) - 0x2F (low) over 0x10-0x2D.

use crate::clock::{ns_to_ticks, Nanos, TimeSource, Timed, NS_PER_SEC};
use crate::lines::IrqLine;
use serde::{Deserialize, Serialize};

/// The index port; the data port follows it.
pub const RTC_PORT: u16 = 0x70;
/// Number of ports the RTC claims (0x70-0x71).
pub const RTC_PORTS: u32 = 2;
/// ISA IRQ of the RTC.
pub const RTC_IRQ: u8 = 8;

/// Register A.
pub const REG_A: u8 = 0x0A;
/// Register B.
pub const REG_B: u8 = 0x0B;
/// Register C.
pub const REG_C: u8 = 0x0C;
/// Register D.
pub const REG_D: u8 = 0x0D;
/// The IBM century byte.
pub const CMOS_CENTURY: u8 = 0x32;

/// Register A: update in progress.
pub const A_UIP: u8 = 0x80;
/// Register B: SET (updates inhibited).
pub const B_SET: u8 = 0x80;
/// Register B: periodic interrupt enable.
pub const B_PIE: u8 = 0x40;
/// Register B: alarm interrupt enable.
pub const B_AIE: u8 = 0x20;
/// Register B: update-ended interrupt enable.
pub const B_UIE: u8 = 0x10;
/// Register B: square-wave enable (no pin to drive here; kept).
pub const B_SQWE: u8 = 0x08;
/// Register B: data mode binary (0 = BCD).
pub const B_DM: u8 = 0x04;
/// Register B: 24-hour mode (0 = 12-hour).
pub const B_24H: u8 = 0x02;
/// Register B: daylight-saving enable.
pub const B_DSE: u8 = 0x01;
/// Register C: interrupt request flag.
pub const C_IRQF: u8 = 0x80;
/// Register C: periodic interrupt flag.
pub const C_PF: u8 = 0x40;
/// Register C: alarm flag.
pub const C_AF: u8 = 0x20;
/// Register C: update-ended flag.
pub const C_UF: u8 = 0x10;
/// Register D: valid RAM and time.
pub const D_VRT: u8 = 0x80;

/// The time base: 32.768 kHz.
const TICK_HZ: u64 = 32_768;
/// Ticks of UIP before an update (244 µs).
const UIP_TICKS: u64 = 8;
/// Seconds in a day.
const DAY: u64 = 86_400;

/// A calendar date and time (no time zone; the RTC keeps whatever the
/// guest or the host put in it, UTC for [`RtcStart::Host`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RtcDateTime {
    /// Full year, e.g. 2024.
    pub year: u16,
    /// Month, 1-12.
    pub month: u8,
    /// Day of the month, 1-31.
    pub day: u8,
    /// Hour, 0-23.
    pub hour: u8,
    /// Minute, 0-59.
    pub minute: u8,
    /// Second, 0-59.
    pub second: u8,
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (days since 1970-01-01).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn is_leap(year: u32) -> bool {
    // Divisible by 4 but not by 100, or by 400.
    matches!((year % 4, year % 100, year % 400), (0, 1.., _) | (_, _, 0))
}

fn days_in_month(month: u8, year: u32) -> u8 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 31,
    }
}

impl RtcDateTime {
    /// The date and time `secs` seconds after 1970-01-01 00:00:00.
    pub fn from_unix(secs: i64) -> RtcDateTime {
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        RtcDateTime {
            year: y.clamp(0, 9999) as u16,
            month: m as u8,
            day: d as u8,
            hour: (rem / 3600) as u8,
            minute: (rem / 60 % 60) as u8,
            second: (rem % 60) as u8,
        }
    }

    /// Seconds since 1970-01-01 00:00:00.
    pub fn to_unix(&self) -> i64 {
        days_from_civil(
            i64::from(self.year),
            u32::from(self.month),
            u32::from(self.day),
        ) * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    /// The host's current UTC time.
    pub fn host_now() -> RtcDateTime {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        RtcDateTime::from_unix(secs)
    }
}

impl std::str::FromStr for RtcDateTime {
    type Err = String;

    /// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SS` (a space may stand for
    /// the `T`) or `@SECONDS` since 1970-01-01 (UTC).
    fn from_str(s: &str) -> Result<RtcDateTime, String> {
        let bad = || format!("bad date {s:?}: expected YYYY-MM-DD[THH:MM:SS] or @SECONDS");
        if let Some(secs) = s.strip_prefix('@') {
            return secs.parse().map(RtcDateTime::from_unix).map_err(|_| bad());
        }
        let (date, time) = match s.split_once(['T', ' ']) {
            Some((d, t)) => (d, Some(t)),
            None => (s, None),
        };
        let num = |v: &str| v.parse::<u16>().map_err(|_| bad());
        let d: Vec<&str> = date.split('-').collect();
        let [y, mo, da] = d[..] else {
            return Err(bad());
        };
        let (year, month, day) = (num(y)?, num(mo)?, num(da)?);
        let (hour, minute, second) = match time {
            None => (0, 0, 0),
            Some(t) => {
                let t: Vec<&str> = t.split(':').collect();
                let [h, mi, se] = t[..] else {
                    return Err(bad());
                };
                (num(h)?, num(mi)?, num(se)?)
            }
        };
        let ok = (1..=9999).contains(&year)
            && (1..=12).contains(&month)
            && day >= 1
            && day <= u16::from(days_in_month(month as u8, u32::from(year)))
            && hour < 24
            && minute < 60
            && second < 60;
        if !ok {
            return Err(bad());
        }
        Ok(RtcDateTime {
            year,
            month: month as u8,
            day: day as u8,
            hour: hour as u8,
            minute: minute as u8,
            second: second as u8,
        })
    }
}

/// Where the clock starts at power-on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtcStart {
    /// A fixed date and time (reproducible runs).
    Fixed(RtcDateTime),
    /// The host's UTC time when the RTC is created.
    Host,
}

/// The clock's time registers, in binary, 24-hour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RtcClock {
    /// Seconds.
    pub sec: u8,
    /// Minutes.
    pub min: u8,
    /// Hours (0-23).
    pub hour: u8,
    /// Day of week (1 = Sunday).
    pub wday: u8,
    /// Day of month.
    pub mday: u8,
    /// Month.
    pub month: u8,
    /// Year within the century (0-99).
    pub year: u8,
    /// Century (the CMOS century byte).
    pub century: u8,
}

impl RtcClock {
    fn from_date(t: &RtcDateTime) -> RtcClock {
        let days = days_from_civil(i64::from(t.year), u32::from(t.month), u32::from(t.day));
        RtcClock {
            sec: t.second,
            min: t.minute,
            hour: t.hour,
            // 1970-01-01 was a Thursday (5 with Sunday = 1).
            wday: ((days + 4).rem_euclid(7) + 1) as u8,
            mday: t.day,
            month: t.month,
            year: (t.year % 100) as u8,
            century: (t.year / 100) as u8,
        }
    }

    fn full_year(&self) -> u32 {
        u32::from(self.century) * 100 + u32::from(self.year)
    }

    fn is_valid(&self) -> bool {
        self.sec < 60
            && self.min < 60
            && self.hour < 24
            && (1..=7).contains(&self.wday)
            && (1..=12).contains(&self.month)
            && self.mday >= 1
            && self.mday <= days_in_month(self.month, self.full_year())
            && self.year < 100
    }

    fn date(&self) -> RtcDateTime {
        RtcDateTime {
            year: self.full_year() as u16,
            month: self.month,
            day: self.mday,
            hour: self.hour,
            minute: self.min,
            second: self.sec,
        }
    }
}

/// The RTC's registers and CMOS RAM: plain data, serializable for snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RtcState {
    /// The index register as last written (bit 7 is the NMI mask).
    pub index: u8,
    /// The 128 bytes of CMOS. The time registers (0x00, 0x02, 0x04,
    /// 0x06-0x09, 0x32) live in `clock`; register C's flags are bits 4-6
    /// of byte 0x0C; register A's UIP bit is computed.
    pub cmos: Vec<u8>,
    /// The time.
    pub clock: RtcClock,
    /// Virtual time at which the divider chain (32.768 kHz tick 0) started.
    pub divider_origin: Nanos,
    /// Tick of the first update after `divider_origin`.
    pub first_update: u64,
    /// Virtual time up to which flags and updates are brought.
    pub last_sync: Nanos,
    /// DSE already turned this October day's 1:59:59 back to 1:00:00.
    pub dse_fall_done: bool,
}

/// The MC146818 RTC with its CMOS RAM.
#[derive(Debug)]
pub struct Rtc146818 {
    /// Registers, RAM and time.
    pub state: RtcState,
    time: TimeSource,
    irq: Option<IrqLine>,
}

fn to_bcd(v: u8) -> u8 {
    ((v / 10) << 4) | (v % 10)
}

fn from_bcd(v: u8) -> u8 {
    (v >> 4) * 10 + (v & 0x0F)
}

impl Rtc146818 {
    /// An RTC starting at `start`, running on `time`, with register A =
    /// 0x26 (32.768 kHz, 1024 Hz periodic rate), register B = 0x02 (BCD,
    /// 24-hour, no interrupts) and the rest of the CMOS zero.
    pub fn new(time: TimeSource, start: RtcStart) -> Rtc146818 {
        let date = match start {
            RtcStart::Fixed(d) => d,
            RtcStart::Host => RtcDateTime::host_now(),
        };
        let now = time.now();
        let mut cmos = vec![0u8; 128];
        cmos[usize::from(REG_A)] = 0x26;
        cmos[usize::from(REG_B)] = B_24H;
        cmos[usize::from(REG_D)] = D_VRT;
        let mut rtc = Rtc146818 {
            state: RtcState {
                index: 0,
                cmos,
                clock: RtcClock::from_date(&date),
                divider_origin: now,
                first_update: TICK_HZ,
                last_sync: now,
                dse_fall_done: false,
            },
            time,
            irq: None,
        };
        rtc.update_checksum();
        rtc
    }

    /// Restores a saved state onto `time`.
    pub fn from_state(time: TimeSource, state: RtcState) -> Rtc146818 {
        Rtc146818 {
            state,
            time,
            irq: None,
        }
    }

    /// Wires register C's IRQF to `irq8`.
    pub fn connect_irq(&mut self, irq8: IrqLine) {
        irq8.set(self.irq_pending());
        self.irq = Some(irq8);
    }

    fn drive_irq(&self) {
        if let Some(l) = &self.irq {
            l.set(self.irq_pending());
        }
    }

    fn reg(&self, r: u8) -> u8 {
        self.state.cmos[usize::from(r)]
    }

    /// True when port 0x70 bit 7 masks NMIs.
    pub fn nmi_masked(&self) -> bool {
        self.state.index & 0x80 != 0
    }

    /// The IRQ8 line: register C's IRQF.
    pub fn irq_pending(&self) -> bool {
        let b = self.reg(REG_B);
        let c = self.reg(REG_C);
        // Each enable bit sits at the position of its flag.
        b & c & (C_PF | C_AF | C_UF) != 0
    }

    /// The current date and time (after catching up).
    pub fn date_time(&mut self) -> RtcDateTime {
        self.sync(self.time.now());
        self.state.clock.date()
    }

    /// A raw CMOS byte (0x00-0x7F), without the time registers' encoding.
    pub fn cmos(&self, index: u8) -> u8 {
        self.state.cmos[usize::from(index & 0x7F)]
    }

    /// Sets a raw CMOS byte (for firmware configuration bytes such as the
    /// equipment byte 0x14); call [`Rtc146818::update_checksum`] after
    /// changing bytes in 0x10-0x2D.
    pub fn set_cmos(&mut self, index: u8, v: u8) {
        self.state.cmos[usize::from(index & 0x7F)] = v;
    }

    /// Recomputes the checksum at 0x2E-0x2F over 0x10-0x2D.
    pub fn update_checksum(&mut self) {
        let sum: u16 = self.state.cmos[0x10..=0x2D]
            .iter()
            .map(|&b| u16::from(b))
            .sum();
        self.state.cmos[0x2E] = (sum >> 8) as u8;
        self.state.cmos[0x2F] = sum as u8;
    }

    /// Records the memory size as firmware and OSes read it: `base_kib`
    /// of conventional memory and `ext_kib` of contiguous memory above
    /// 1 MiB (below 4 GiB). Memory above 4 GiB is set to 0; see
    /// [`Rtc146818::set_memory_above_4g`].
    pub fn set_memory_size(&mut self, base_kib: u32, ext_kib: u64) {
        let base = base_kib.min(0xFFFF) as u16;
        let ext = ext_kib.min(0xFFFF) as u16;
        let above_16m = (ext_kib.saturating_sub(15 * 1024) / 64).min(0xFFFF) as u16;
        let c = &mut self.state.cmos;
        c[0x15..=0x16].copy_from_slice(&base.to_le_bytes());
        c[0x17..=0x18].copy_from_slice(&ext.to_le_bytes());
        c[0x30..=0x31].copy_from_slice(&ext.to_le_bytes());
        c[0x34..=0x35].copy_from_slice(&above_16m.to_le_bytes());
        self.set_memory_above_4g(0);
        self.update_checksum();
    }

    /// Records `kib` of memory above 4 GiB (0x5B-0x5D, in 64 KiB units).
    pub fn set_memory_above_4g(&mut self, kib: u64) {
        let units = (kib / 64).min(0xFF_FFFF) as u32;
        self.state.cmos[0x5B..=0x5D].copy_from_slice(&units.to_le_bytes()[..3]);
    }

    /// Back to the power-on register state, keeping the time and the RAM
    /// (the RTC is battery-backed): only the NMI mask and register C clear.
    pub fn reset(&mut self) {
        self.sync(self.time.now());
        self.state.index = 0;
        self.state.cmos[usize::from(REG_C)] = 0;
    }

    // --- time keeping ---

    fn divider_running(&self) -> bool {
        (self.reg(REG_A) >> 4) & 7 == 2
    }

    fn updates_inhibited(&self) -> bool {
        self.reg(REG_B) & B_SET != 0
    }

    /// The periodic interrupt period in ticks, if any.
    fn period_ticks(&self) -> Option<u64> {
        match self.reg(REG_A) & 0x0F {
            0 => None,
            1 => Some(128),
            2 => Some(256),
            rs => Some(1 << (rs - 1)),
        }
    }

    fn ticks_at(&self, now: Nanos) -> u64 {
        ns_to_ticks(now.saturating_sub(self.state.divider_origin), TICK_HZ)
    }

    /// The first virtual time at which the tick count reaches `tick`.
    fn time_of_tick(&self, tick: u64) -> Nanos {
        let ns = (u128::from(tick) * u128::from(NS_PER_SEC)).div_ceil(u128::from(TICK_HZ));
        self.state.divider_origin.saturating_add(ns as Nanos)
    }

    /// Number of updates in ticks 1..=t.
    fn updates_through(&self, t: u64) -> u64 {
        let first = self.state.first_update;
        if t < first {
            0
        } else {
            (t - first) / TICK_HZ + 1
        }
    }

    fn next_update_tick(&self, t: u64) -> u64 {
        self.state.first_update + TICK_HZ * self.updates_through(t)
    }

    /// Brings flags and time up to `now`.
    fn sync(&mut self, now: Nanos) {
        if now <= self.state.last_sync {
            return;
        }
        if self.divider_running() {
            let t0 = self.ticks_at(self.state.last_sync);
            let t1 = self.ticks_at(now);
            if let Some(p) = self.period_ticks() {
                if t1 / p > t0 / p {
                    self.state.cmos[usize::from(REG_C)] |= C_PF;
                }
            }
            let n = self.updates_through(t1) - self.updates_through(t0);
            if n > 0 && !self.updates_inhibited() {
                self.run_updates(n);
            }
        }
        self.state.last_sync = now;
    }

    /// Performs `n` once-per-second updates.
    fn run_updates(&mut self, mut n: u64) {
        let dse = self.reg(REG_B) & B_DSE != 0;
        let af_set = self.reg(REG_C) & C_AF != 0;
        if !dse && (af_set || n > 2 * DAY) && self.state.clock.is_valid() {
            // Whole days at once: the alarm (if any) is already known to
            // fire in the last day, which is stepped below.
            let jump = if af_set { n } else { n - DAY };
            self.jump(jump);
            n -= jump;
        }
        // Invalid registers or DSE with a huge gap: step a bounded number.
        for _ in 0..n.min(4 * DAY) {
            self.step();
            if self.alarm_matches() {
                self.state.cmos[usize::from(REG_C)] |= C_AF;
            }
        }
        self.state.cmos[usize::from(REG_C)] |= C_UF;
    }

    /// Advances a valid clock by `secs` seconds through calendar arithmetic.
    fn jump(&mut self, secs: u64) {
        let c = self.state.clock;
        let before = c.date().to_unix();
        let after = RtcDateTime::from_unix(before.saturating_add(secs as i64));
        let days = after.to_unix().div_euclid(86_400) - before.div_euclid(86_400);
        let wday = ((i64::from(c.wday) - 1 + days).rem_euclid(7) + 1) as u8;
        self.state.clock = RtcClock {
            wday,
            ..RtcClock::from_date(&after)
        };
        self.state.dse_fall_done = false;
    }

    /// Advances the clock by one second, register by register.
    fn step(&mut self) {
        let dse = self.reg(REG_B) & B_DSE != 0;
        let c = &mut self.state.clock;
        c.sec += 1;
        if c.sec < 60 {
            return;
        }
        c.sec = 0;
        c.min += 1;
        if c.min < 60 {
            return;
        }
        c.min = 0;
        c.hour += 1;
        if dse && c.hour == 2 && c.wday == 1 {
            if c.month == 4 && c.mday + 7 > 30 {
                c.hour = 3;
            } else if c.month == 10 && c.mday + 7 > 31 && !self.state.dse_fall_done {
                c.hour = 1;
                self.state.dse_fall_done = true;
            }
        }
        if c.hour < 24 {
            return;
        }
        c.hour = 0;
        self.state.dse_fall_done = false;
        c.wday = if c.wday >= 7 { 1 } else { c.wday + 1 };
        c.mday += 1;
        if c.mday <= days_in_month(c.month, c.full_year()) {
            return;
        }
        c.mday = 1;
        c.month += 1;
        if c.month <= 12 {
            return;
        }
        c.month = 1;
        c.year += 1;
        if c.year < 100 {
            return;
        }
        c.year = 0;
        c.century = c.century.wrapping_add(1);
    }

    fn alarm_matches(&self) -> bool {
        let c = self.state.clock;
        [
            (1, self.encode(c.sec)),
            (3, self.encode(c.min)),
            (5, self.encode_hour(c.hour)),
        ]
        .iter()
        .all(|&(r, v)| {
            let a = self.reg(r);
            a & 0xC0 == 0xC0 || a == v
        })
    }

    /// UIP: an update is due within 244 µs.
    fn uip(&self, now: Nanos) -> bool {
        if !self.divider_running() || self.updates_inhibited() {
            return false;
        }
        let t = self.ticks_at(now);
        let next = self.next_update_tick(t);
        now >= self.time_of_tick(next - UIP_TICKS)
    }

    // --- register access ---

    fn binary(&self) -> bool {
        self.reg(REG_B) & B_DM != 0
    }

    fn encode(&self, v: u8) -> u8 {
        if self.binary() {
            v
        } else {
            to_bcd(v)
        }
    }

    fn decode(&self, v: u8) -> u8 {
        if self.binary() {
            v
        } else {
            from_bcd(v)
        }
    }

    fn encode_hour(&self, h: u8) -> u8 {
        if self.reg(REG_B) & B_24H != 0 {
            return self.encode(h);
        }
        let h12 = match h % 12 {
            0 => 12,
            x => x,
        };
        self.encode(h12) | if h >= 12 { 0x80 } else { 0 }
    }

    fn decode_hour(&self, v: u8) -> u8 {
        if self.reg(REG_B) & B_24H != 0 {
            return self.decode(v);
        }
        let h = self.decode(v & 0x7F);
        (if h == 12 { 0 } else { h }) + if v & 0x80 != 0 { 12 } else { 0 }
    }

    /// Reads register `r` (0x00-0x7F) as the guest sees it.
    pub fn read_reg(&mut self, r: u8) -> u8 {
        let now = self.time.now();
        self.sync(now);
        let c = self.state.clock;
        match r & 0x7F {
            0x00 => self.encode(c.sec),
            0x02 => self.encode(c.min),
            0x04 => self.encode_hour(c.hour),
            0x06 => self.encode(c.wday),
            0x07 => self.encode(c.mday),
            0x08 => self.encode(c.month),
            0x09 => self.encode(c.year),
            REG_A => self.reg(REG_A) | if self.uip(now) { A_UIP } else { 0 },
            REG_C => {
                let v = self.reg(REG_C) | if self.irq_pending() { C_IRQF } else { 0 };
                self.state.cmos[usize::from(REG_C)] = 0;
                v
            }
            REG_D => D_VRT,
            CMOS_CENTURY => self.encode(c.century),
            i => self.reg(i),
        }
    }

    /// Writes register `r` (0x00-0x7F) as the guest does.
    pub fn write_reg(&mut self, r: u8, v: u8) {
        let now = self.time.now();
        self.sync(now);
        match r & 0x7F {
            0x00 => self.state.clock.sec = self.decode(v),
            0x02 => self.state.clock.min = self.decode(v),
            0x04 => self.state.clock.hour = self.decode_hour(v),
            0x06 => self.state.clock.wday = self.decode(v),
            0x07 => self.state.clock.mday = self.decode(v),
            0x08 => self.state.clock.month = self.decode(v),
            0x09 => self.state.clock.year = self.decode(v),
            CMOS_CENTURY => self.state.clock.century = self.decode(v),
            REG_A => {
                let was_running = self.divider_running();
                self.state.cmos[usize::from(REG_A)] = v & 0x7F;
                if !was_running && self.divider_running() {
                    // Out of divider reset: the first update is 500 ms away.
                    self.state.divider_origin = now;
                    self.state.first_update = TICK_HZ / 2;
                }
            }
            REG_B => {
                // Setting SET clears UIE.
                let v = if v & B_SET != 0 { v & !B_UIE } else { v };
                self.state.cmos[usize::from(REG_B)] = v;
            }
            REG_C | REG_D => {} // read-only
            i => self.state.cmos[usize::from(i)] = v,
        }
    }
}

impl Timed for Rtc146818 {
    fn advance(&mut self, now: Nanos) {
        self.sync(now);
    }

    fn next_deadline(&self) -> Option<Nanos> {
        if !self.divider_running() {
            return None;
        }
        let (b, c) = (self.reg(REG_B), self.reg(REG_C));
        let t = self.ticks_at(self.state.last_sync);
        let mut next: Option<Nanos> = None;
        if b & B_PIE != 0 && c & C_PF == 0 {
            if let Some(p) = self.period_ticks() {
                next = Some(self.time_of_tick((t / p + 1) * p));
            }
        }
        let wants_update = (b & B_UIE != 0 && c & C_UF == 0) || (b & B_AIE != 0 && c & C_AF == 0);
        if wants_update && b & B_SET == 0 {
            let u = self.time_of_tick(self.next_update_tick(t));
            next = Some(next.map_or(u, |n| n.min(u)));
        }
        next
    }
}

impl crate::bus::Device for Rtc146818 {
    fn pio_read(&mut self, _base: u16, off: u16, size: u8) -> u32 {
        let v = if off == 0 {
            0xFF // the index register is write-only
        } else {
            self.read_reg(self.state.index & 0x7F)
        };
        self.drive_irq();
        (crate::all_ones(size) & !0xFF) | u32::from(v)
    }

    fn pio_write(&mut self, _base: u16, off: u16, _size: u8, value: u32) {
        if off == 0 {
            self.state.index = value as u8;
        } else {
            self.write_reg(self.state.index & 0x7F, value as u8);
        }
        self.drive_irq();
    }

    fn next_deadline(&self) -> Option<Nanos> {
        Timed::next_deadline(self)
    }

    fn advance(&mut self, now: Nanos) {
        Timed::advance(self, now);
        self.drive_irq();
    }

    fn reset(&mut self) {
        Rtc146818::reset(self);
        self.drive_irq();
    }

    fn name(&self) -> &str {
        "rtc-mc146818"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse() {
        let d: RtcDateTime = "2024-02-29T23:59:58".parse().unwrap();
        assert_eq!(
            (d.year, d.month, d.day, d.hour, d.minute, d.second),
            (2024, 2, 29, 23, 59, 58)
        );
        assert_eq!(
            "1999-12-31".parse::<RtcDateTime>().unwrap().to_unix(),
            946_598_400
        );
        assert_eq!("@86400".parse::<RtcDateTime>().unwrap().day, 2);
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-01-01T24:00:00",
            "x",
            "2024-1",
            "@x",
        ] {
            assert!(bad.parse::<RtcDateTime>().is_err(), "{bad}");
        }
    }
    use crate::IoBus;

    const MS: Nanos = 1_000_000;
    const US: Nanos = 1_000;

    fn start() -> RtcDateTime {
        RtcDateTime {
            year: 2024,
            month: 2,
            day: 28,
            hour: 23,
            minute: 59,
            second: 58,
        }
    }

    fn rtc() -> (Rtc146818, TimeSource) {
        let t = TimeSource::new();
        (Rtc146818::new(t.clone(), RtcStart::Fixed(start())), t)
    }

    fn cmos_read(bus: &mut IoBus, i: u8) -> u8 {
        bus.pio_write(0x70, 1, u32::from(i));
        bus.pio_read(0x71, 1) as u8
    }

    fn cmos_write(bus: &mut IoBus, i: u8, v: u8) {
        bus.pio_write(0x70, 1, u32::from(i));
        bus.pio_write(0x71, 1, u32::from(v));
    }

    #[test]
    fn calendar_conversions() {
        for secs in [0i64, 951_782_400, 1_709_164_799, 4_102_444_800, -86_400] {
            assert_eq!(RtcDateTime::from_unix(secs).to_unix(), secs);
        }
        let d = RtcDateTime::from_unix(951_782_400); // 2000-02-29
        assert_eq!((d.year, d.month, d.day), (2000, 2, 29));
        assert_eq!(
            RtcClock::from_date(&start()).wday,
            4,
            "2024-02-28 was a Wednesday"
        );
    }

    #[test]
    fn seabios_like_probe() {
        let (r, t) = rtc();
        let mut bus = IoBus::new();
        let id = bus.register(RTC_PORT, RTC_PORTS, r).unwrap();
        bus.get_mut(id).set_memory_size(640, 127 * 1024);
        // rtc_setup(): A = 0x26, B: clear DSE, set 24-hour; read C and D.
        cmos_write(&mut bus, REG_A, 0x26);
        let b = cmos_read(&mut bus, REG_B);
        cmos_write(&mut bus, REG_B, (b & !B_DSE) | B_24H);
        let _ = cmos_read(&mut bus, REG_C);
        assert_eq!(cmos_read(&mut bus, REG_D), D_VRT);
        // rtc_updating(): wait for UIP to be clear, then read BCD time.
        t.set(500 * MS);
        assert_eq!(cmos_read(&mut bus, REG_A) & A_UIP, 0);
        assert_eq!(cmos_read(&mut bus, 0x00), 0x58);
        assert_eq!(cmos_read(&mut bus, 0x02), 0x59);
        assert_eq!(cmos_read(&mut bus, 0x04), 0x23);
        assert_eq!(cmos_read(&mut bus, 0x06), 0x04);
        assert_eq!(cmos_read(&mut bus, 0x07), 0x28);
        assert_eq!(cmos_read(&mut bus, 0x08), 0x02);
        assert_eq!(cmos_read(&mut bus, 0x09), 0x24);
        assert_eq!(cmos_read(&mut bus, CMOS_CENTURY), 0x20);
        // Memory size as SeaBIOS computes it.
        let w = |bus: &mut IoBus, lo| {
            u32::from(cmos_read(bus, lo)) | u32::from(cmos_read(bus, lo + 1)) << 8
        };
        assert_eq!(w(&mut bus, 0x15), 640);
        assert_eq!(w(&mut bus, 0x17), 0xFFFF);
        assert_eq!(w(&mut bus, 0x30), 0xFFFF);
        let above16 = w(&mut bus, 0x34);
        assert_eq!((above16 << 16) + (16 << 20), 128 << 20);
        assert_eq!(cmos_read(&mut bus, 0x5B) | cmos_read(&mut bus, 0x5C), 0);
        let sum: u32 = (0x10..=0x2D)
            .map(|i| u32::from(cmos_read(&mut bus, i)))
            .sum();
        let stored =
            u32::from(cmos_read(&mut bus, 0x2E)) << 8 | u32::from(cmos_read(&mut bus, 0x2F));
        assert_eq!(sum, stored);
        // Small machine: 32 MiB.
        bus.get_mut(id).set_memory_size(640, 31 * 1024);
        assert_eq!(w(&mut bus, 0x17), 31 * 1024);
        assert_eq!(w(&mut bus, 0x34), (16 << 20) >> 16);
        // The index register: NMI mask bit, write-only.
        bus.pio_write(0x70, 1, 0x8F);
        assert!(bus.get(id).nmi_masked());
        assert_eq!(bus.pio_read(0x70, 1), 0xFF);
        bus.pio_write(0x70, 1, 0x0F);
        assert!(!bus.get(id).nmi_masked());
    }

    #[test]
    fn uip_window_and_linux_read_sequence() {
        let (mut r, t) = rtc();
        // The first update is at 1 s; UIP rises 244 µs before it.
        t.set(NS_PER_SEC - 300 * US);
        assert_eq!(r.read_reg(REG_A) & A_UIP, 0);
        t.set(NS_PER_SEC - 200 * US);
        assert_eq!(r.read_reg(REG_A) & A_UIP, A_UIP);
        assert_eq!(r.read_reg(0), 0x58);
        t.set(NS_PER_SEC);
        assert_eq!(r.read_reg(REG_A) & A_UIP, 0);
        assert_eq!(r.read_reg(0), 0x59);

        // Linux's mc146818_get_time: while UIP, mdelay(1); read the seconds,
        // the time, check UIP again and that the seconds did not change.
        t.set(2 * NS_PER_SEC - 100 * US);
        let mut now = t.now();
        let mut tries = 0;
        let time = loop {
            tries += 1;
            assert!(tries < 100);
            if r.read_reg(REG_A) & A_UIP != 0 {
                now += MS;
                t.set(now);
                continue;
            }
            let sec = r.read_reg(0);
            let regs: Vec<u8> = [0, 2, 4, 7, 8, 9, CMOS_CENTURY]
                .iter()
                .map(|&i| r.read_reg(i))
                .collect();
            if r.read_reg(REG_A) & A_UIP != 0 || r.read_reg(0) != sec {
                continue;
            }
            break regs;
        };
        assert_eq!(tries, 2, "one wait for UIP");
        // 2024-02-29 00:00:00: the leap day.
        assert_eq!(time, [0x00, 0x00, 0x00, 0x29, 0x02, 0x24, 0x20]);
        assert_eq!(r.read_reg(6), 5, "Thursday");
    }

    #[test]
    fn periodic_interrupt_1024_hz() {
        let (mut r, t) = rtc();
        assert_eq!(r.next_deadline(), None, "no interrupt enabled");
        r.write_reg(REG_A, 0x26);
        r.write_reg(REG_B, B_24H | B_PIE);
        let mut count = 0u32;
        loop {
            let d = r.next_deadline().expect("periodic deadline");
            if d > NS_PER_SEC {
                break;
            }
            t.set(d);
            r.advance(d);
            assert!(r.irq_pending());
            // A pending interrupt needs no new deadline until C is read.
            assert!(!matches!(r.next_deadline(), Some(n) if n <= d));
            let c = r.read_reg(REG_C);
            assert_eq!(c & (C_IRQF | C_PF), C_IRQF | C_PF);
            assert!(!r.irq_pending());
            count += 1;
        }
        assert!((1014..=1034).contains(&count), "{count} interrupts in 1 s");
        assert_eq!(count, 1024);
        // 2 Hz and 8192 Hz.
        r.write_reg(REG_A, 0x2F);
        let d0 = r.next_deadline().unwrap();
        let d1 = {
            t.set(d0);
            r.advance(d0);
            r.read_reg(REG_C);
            r.next_deadline().unwrap()
        };
        assert_eq!(d1 - d0, NS_PER_SEC / 2);
        r.write_reg(REG_A, 0x23);
        let d2 = r.next_deadline().unwrap();
        t.set(d2);
        r.advance(d2);
        r.read_reg(REG_C);
        let d3 = r.next_deadline().unwrap();
        assert!((d3 - d2).abs_diff(122_070) <= 1);
        // PF rises without PIE too, but raises no IRQ.
        r.write_reg(REG_B, B_24H);
        t.set(d3 + MS);
        assert!(!r.irq_pending());
        assert_eq!(r.read_reg(REG_C), C_PF);
    }

    #[test]
    fn update_and_alarm_interrupts() {
        let (mut r, t) = rtc();
        r.write_reg(1, 0x05); // alarm at xx:00:05 (BCD)
        r.write_reg(3, 0xC0); // any minute
        r.write_reg(5, 0xFF); // any hour
        r.write_reg(REG_B, B_24H | B_AIE | B_UIE);
        let d = r.next_deadline().unwrap();
        assert_eq!(d, NS_PER_SEC);
        t.set(d);
        r.advance(d);
        assert!(r.irq_pending());
        assert_eq!(r.read_reg(REG_C) & !C_PF, C_IRQF | C_UF);
        // Only the alarm now: wait for updates until it fires at 00:00:05.
        r.write_reg(REG_B, B_24H | B_AIE);
        let mut fired = None;
        for _ in 0..10 {
            let d = r.next_deadline().unwrap();
            t.set(d);
            r.advance(d);
            if r.irq_pending() {
                fired = Some(r.read_reg(0));
                break;
            }
        }
        assert_eq!(fired, Some(0x05));
        assert_eq!(r.read_reg(REG_C) & !C_PF, C_IRQF | C_AF | C_UF);
        // SET inhibits updates (and clears UIE); the clock stops.
        r.write_reg(REG_B, B_SET | B_24H | B_UIE);
        assert_eq!(r.read_reg(REG_B), B_SET | B_24H);
        let before = r.read_reg(0);
        t.set(t.now() + 3 * NS_PER_SEC);
        assert_eq!(r.read_reg(0), before);
        assert_eq!(r.read_reg(REG_A) & A_UIP, 0);
        assert_eq!(r.read_reg(REG_C) & (C_UF | C_AF), 0);
    }

    #[test]
    fn setting_time_formats_and_divider_reset() {
        let (mut r, t) = rtc();
        // Linux's set sequence: SET, divider reset, write, restore.
        r.write_reg(REG_B, B_SET | B_24H | B_DM);
        r.write_reg(REG_A, 0x70);
        r.write_reg(0x00, 59);
        r.write_reg(0x02, 59);
        r.write_reg(0x04, 23);
        r.write_reg(0x07, 31);
        r.write_reg(0x08, 12);
        r.write_reg(0x09, 99);
        r.write_reg(CMOS_CENTURY, 20);
        t.set(5 * NS_PER_SEC);
        r.write_reg(REG_B, B_24H | B_DM);
        assert_eq!(r.read_reg(0), 59, "divider in reset: clock stopped");
        r.write_reg(REG_A, 0x26);
        t.set(5 * NS_PER_SEC + 499_900 * US);
        assert_eq!(r.read_reg(0), 59);
        assert_eq!(r.read_reg(REG_A) & A_UIP, A_UIP);
        t.set(5 * NS_PER_SEC + 500 * MS);
        // Binary: 2100-01-01 00:00:00 (not a leap year).
        let regs: Vec<u8> = [0, 2, 4, 7, 8, 9, CMOS_CENTURY]
            .iter()
            .map(|&i| r.read_reg(i))
            .collect();
        assert_eq!(regs, [0, 0, 0, 1, 1, 0, 21]);
        // 12-hour BCD: 00:00 is 12 AM; 13:00 is 1 PM.
        r.write_reg(REG_B, 0);
        assert_eq!(r.read_reg(4), 0x12);
        r.write_reg(4, 0x81);
        r.write_reg(REG_B, B_24H);
        assert_eq!(r.read_reg(4), 0x13);
        r.write_reg(REG_B, 0);
        assert_eq!(r.read_reg(4), 0x81);
        // RAM bytes are plain storage; C and D are read-only.
        r.write_reg(0x40, 0xA5);
        assert_eq!(r.read_reg(0x40), 0xA5);
        r.write_reg(REG_D, 0);
        assert_eq!(r.read_reg(REG_D), D_VRT);
    }

    #[test]
    fn long_gaps_and_dse() {
        let (mut r, t) = rtc();
        // 400 days later, in one step (no alarm armed).
        t.set(400 * DAY * NS_PER_SEC + NS_PER_SEC);
        let d = r.date_time();
        let expect = RtcDateTime::from_unix(start().to_unix() + 400 * DAY as i64 + 1);
        assert_eq!(d, expect);
        let wday = RtcClock::from_date(&expect).wday;
        assert_eq!(r.state.clock.wday, wday);
        // DSE: 2024-04-28 (last Sunday in April) 01:59:59 → 03:00:00.
        let t2 = TimeSource::new();
        let spring = RtcDateTime {
            year: 2024,
            month: 4,
            day: 28,
            hour: 1,
            minute: 59,
            second: 58,
        };
        let mut r2 = Rtc146818::new(t2.clone(), RtcStart::Fixed(spring));
        r2.write_reg(REG_B, B_24H | B_DSE);
        t2.set(2 * NS_PER_SEC);
        assert_eq!(r2.read_reg(4), 0x03);
        // Autumn: 2024-10-27 01:59:59 → 01:00:00 once.
        let t3 = TimeSource::new();
        let autumn = RtcDateTime {
            month: 10,
            day: 27,
            ..spring
        };
        let mut r3 = Rtc146818::new(t3.clone(), RtcStart::Fixed(autumn));
        r3.write_reg(REG_B, B_24H | B_DSE);
        t3.set(2 * NS_PER_SEC);
        assert_eq!((r3.read_reg(4), r3.read_reg(2)), (0x01, 0x00));
        t3.set(3602 * NS_PER_SEC);
        assert_eq!((r3.read_reg(4), r3.read_reg(2)), (0x02, 0x00));
    }

    #[test]
    fn host_start_and_serde_state() {
        let t = TimeSource::new();
        let mut r = Rtc146818::new(t.clone(), RtcStart::Host);
        assert!(r.date_time().year >= 2024);
        r.write_reg(0x50, 7);
        let json = serde_json::to_string(&r.state).unwrap();
        let back = Rtc146818::from_state(t, serde_json::from_str(&json).unwrap());
        assert_eq!(back.state, r.state);
    }
}
