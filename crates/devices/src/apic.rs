//! The local APIC of a single P6-class CPU (Intel SDM Vol. 3A, chapter 10).
//!
//! The model is a P6-family (Pentium Pro / II / III) local APIC on the
//! 3-wire APIC bus: version register 0x0004_0011 (version 0x11, highest LVT
//! entry 4: timer, performance counter, LINT0, LINT1, error; there is no
//! thermal LVT, so offset 0x330 is reserved), a 4-bit APIC ID, and spurious
//! vector bits 3..0 hardwired to 1.
//!
//! Registers live at their SDM offsets (16-byte aligned, only the low dword
//! of each slot is meaningful). Guests use aligned 32-bit accesses; smaller
//! accesses read the containing register and merge into it on writes.
//! Reading or writing an undefined register sets ESR bit 7 (illegal register
//! address), as on P6.
//!
//! # Timer
//!
//! The P6 APIC timer counts the processor bus clock (66, 100 or 133 MHz),
//! divided by the divide configuration register (1, 2, 4, ... 128). The rate
//! is the `timer_hz` constructor parameter ([`DEFAULT_TIMER_HZ`] = 100 MHz).
//! The timer is not ticked: the current count is computed from the virtual
//! time of the shared [`TimeSource`] when it is read, and expiry is reported
//! through [`Timed::next_deadline`] / [`Timed::advance`]. Every register
//! access also catches up on elapsed time first, so a machine that is late
//! calling `advance` still sees consistent state. A periodic timer that
//! missed several periods raises its vector once (the IRR holds one bit).
//!
//! # Interrupt sources and the machine
//!
//! - Fixed interrupts from the I/O APIC: [`LocalApic::deliver`] (checks the
//!   destination) or [`LocalApic::request`].
//! - The LINT0 / LINT1 pins: [`LocalApic::lint0`] / [`LocalApic::lint1`] take
//!   whether the input is asserted (the LVT polarity bit is stored but not
//!   applied, as in QEMU; the machine models assertion, not voltage). In virtual-wire mode LINT0 is ExtINT: the 8259's INTR
//!   output; [`LocalApic::extint_pending`] then tells the machine to run an
//!   8259 acknowledge cycle instead of [`LocalApic::acknowledge`]. LINT1 is
//!   normally NMI. When the APIC is globally disabled (IA32_APIC_BASE bit 11
//!   clear) LINT0 is INTR and LINT1 is NMI directly.
//! - NMIs from any source are latched for [`LocalApic::take_nmi`].
//! - The CPU takes an APIC interrupt with [`LocalApic::pending_interrupt`]
//!   and [`LocalApic::acknowledge`]; an EOI of a level-triggered vector is
//!   reported by [`LocalApic::take_eoi_for_level`] for the machine to
//!   broadcast to the I/O APIC ([`crate::ioapic::IoApic::eoi`]).
//!
//! Fixed interrupts are accepted into the IRR even while the APIC is
//! software-disabled (as QEMU does); they are held there and delivered once
//! it is enabled.

use crate::clock::{Nanos, TimeSource, Timed, NS_PER_SEC};
use crate::ioapic::{Delivery, DeliveryMode};
use serde::{Deserialize, Serialize};

/// Default physical base of the local APIC.
pub const LAPIC_BASE: u64 = 0xFEE0_0000;
/// Size of the local APIC's MMIO window.
pub const LAPIC_SIZE: u64 = 0x1000;
/// Default timer input clock: a 100 MHz processor bus.
pub const DEFAULT_TIMER_HZ: u64 = 100_000_000;
/// Value of the version register: P6 local APIC version 0x11, highest LVT
/// entry 4 (five LVT entries).
pub const LAPIC_VERSION: u32 = 0x0004_0011;

// Register indices (offset >> 4).
const REG_ID: u64 = 0x02;
const REG_VERSION: u64 = 0x03;
const REG_TPR: u64 = 0x08;
const REG_APR: u64 = 0x09;
const REG_PPR: u64 = 0x0A;
const REG_EOI: u64 = 0x0B;
const REG_RRD: u64 = 0x0C;
const REG_LDR: u64 = 0x0D;
const REG_DFR: u64 = 0x0E;
const REG_SVR: u64 = 0x0F;
const REG_ISR: u64 = 0x10;
const REG_TMR: u64 = 0x18;
const REG_IRR: u64 = 0x20;
const REG_ESR: u64 = 0x28;
const REG_ICR_LOW: u64 = 0x30;
const REG_ICR_HIGH: u64 = 0x31;
const REG_LVT_TIMER: u64 = 0x32;
const REG_LVT_PERF: u64 = 0x34;
const REG_LVT_LINT0: u64 = 0x35;
const REG_LVT_LINT1: u64 = 0x36;
const REG_LVT_ERROR: u64 = 0x37;
const REG_TIMER_INITIAL: u64 = 0x38;
const REG_TIMER_CURRENT: u64 = 0x39;
const REG_TIMER_DCR: u64 = 0x3E;

/// Index of the timer entry in [`LocalApicState::lvt`].
pub const LVT_TIMER: usize = 0;
/// Index of the performance-counter entry in [`LocalApicState::lvt`].
pub const LVT_PERF: usize = 1;
/// Index of the LINT0 entry in [`LocalApicState::lvt`].
pub const LVT_LINT0: usize = 2;
/// Index of the LINT1 entry in [`LocalApicState::lvt`].
pub const LVT_LINT1: usize = 3;
/// Index of the error entry in [`LocalApicState::lvt`].
pub const LVT_ERROR: usize = 4;

// LVT bits.
const LVT_VECTOR: u32 = 0xFF;
const LVT_MODE_SHIFT: u32 = 8;
const LVT_POLARITY_LOW: u32 = 1 << 13;
const LVT_REMOTE_IRR: u32 = 1 << 14;
const LVT_LEVEL: u32 = 1 << 15;
const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;
/// Guest-writable bits of each LVT entry, by index.
const LVT_WRITABLE: [u32; 5] = [
    LVT_VECTOR | LVT_MASKED | LVT_PERIODIC, // timer
    LVT_VECTOR | 0x700 | LVT_MASKED,        // perf
    LVT_VECTOR | 0x700 | LVT_POLARITY_LOW | LVT_LEVEL | LVT_MASKED, // LINT0
    LVT_VECTOR | 0x700 | LVT_POLARITY_LOW | LVT_LEVEL | LVT_MASKED, // LINT1
    LVT_VECTOR | LVT_MASKED,                // error
];

// SVR bits.
const SVR_ENABLE: u32 = 1 << 8;
/// Writable SVR bits on P6: vector bits 7..4, enable, focus checking.
const SVR_WRITABLE: u32 = 0x3F0;
/// SVR vector bits 3..0 read as ones on P6.
const SVR_FIXED_ONES: u32 = 0xF;

// ESR bits.
/// ESR: an IPI with an illegal vector (0-15) was sent.
pub const ESR_SEND_ILLEGAL_VECTOR: u32 = 1 << 5;
/// ESR: an interrupt with an illegal vector (0-15) was received.
pub const ESR_RECEIVE_ILLEGAL_VECTOR: u32 = 1 << 6;
/// ESR: a reserved register was accessed.
pub const ESR_ILLEGAL_REGISTER: u32 = 1 << 7;

// ICR bits.
const ICR_WRITABLE: u32 = 0x000C_CFFF;
const ICR_LOGICAL: u32 = 1 << 11;
const ICR_LEVEL_TRIGGER: u32 = 1 << 15;

/// What a LINT pin's change did, per its LVT entry. Informational: fixed
/// interrupts are in the IRR, NMIs are latched for [`LocalApic::take_nmi`]
/// and ExtINT shows in [`LocalApic::extint_pending`], so the machine may
/// ignore it and poll instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LintAction {
    /// Nothing (masked, inactive level, no edge, or SMI/INIT, which are ignored).
    None,
    /// A fixed interrupt entered the IRR.
    Fixed(u8),
    /// An NMI was latched.
    Nmi,
    /// ExtINT is asserted: the CPU's INTR comes from the 8259, which
    /// supplies the vector in its acknowledge cycle.
    ExtInt,
}

/// The local APIC's registers: plain data, serializable for snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalApicState {
    /// IA32_APIC_BASE bit 11 (global enable), set by the CPU.
    pub global_enable: bool,
    /// APIC ID (4 bits on P6).
    pub id: u8,
    /// Task priority register.
    pub tpr: u8,
    /// Logical destination register (bits 31..24).
    pub ldr: u32,
    /// Destination format register (model in bits 31..28).
    pub dfr: u32,
    /// Spurious interrupt vector register.
    pub svr: u32,
    /// In-service register, 256 bits.
    pub isr: [u32; 8],
    /// Trigger mode register, 256 bits (1 = level).
    pub tmr: [u32; 8],
    /// Interrupt request register, 256 bits.
    pub irr: [u32; 8],
    /// ESR as last latched by a write to it (what reads return).
    pub esr: u32,
    /// Errors seen since the last ESR write.
    pub esr_pending: u32,
    /// LVT entries: see [`LVT_TIMER`] and friends.
    pub lvt: [u32; 5],
    /// Interrupt command register, low dword.
    pub icr_low: u32,
    /// Interrupt command register, high dword.
    pub icr_high: u32,
    /// Timer input clock in Hz.
    pub timer_hz: u64,
    /// Timer initial count.
    pub timer_initial: u32,
    /// Timer divide configuration register (bits 0, 1, 3).
    pub timer_dcr: u32,
    /// Virtual time at which the current count was (re)loaded.
    pub timer_start: Nanos,
    /// Input-clock ticks already counted at `timer_start` (non-zero after
    /// a divide change part-way through a count).
    pub timer_phase: u64,
    /// Whole periods completed since `timer_start` (periodic mode).
    pub timer_periods: u64,
    /// The timer is counting (cleared when a one-shot count expires).
    pub timer_armed: bool,
    /// Whether LINT0 and LINT1 are asserted.
    pub lint_level: [bool; 2],
    /// A latched NMI for the CPU.
    pub nmi_pending: bool,
    /// An ExtINT message (from the I/O APIC) waits for its 8259 acknowledge.
    pub extint_latched: bool,
    /// Level-triggered vectors that got an EOI, oldest first.
    pub eoi_level: Vec<u8>,
}

impl LocalApicState {
    /// The power-up state of an APIC with `id` whose timer runs at `timer_hz`.
    pub fn new(id: u8, timer_hz: u64) -> LocalApicState {
        LocalApicState {
            global_enable: true,
            id: id & 0xF,
            tpr: 0,
            ldr: 0,
            dfr: 0xFFFF_FFFF,
            svr: 0xFF,
            isr: [0; 8],
            tmr: [0; 8],
            irr: [0; 8],
            esr: 0,
            esr_pending: 0,
            lvt: [LVT_MASKED; 5],
            icr_low: 0,
            icr_high: 0,
            timer_hz: timer_hz.max(1),
            timer_initial: 0,
            timer_dcr: 0,
            timer_start: 0,
            timer_phase: 0,
            timer_periods: 0,
            timer_armed: false,
            lint_level: [false; 2],
            nmi_pending: false,
            extint_latched: false,
            eoi_level: Vec::new(),
        }
    }
}

fn bit_test(bits: &[u32; 8], v: u8) -> bool {
    bits[usize::from(v >> 5)] & (1 << (v & 31)) != 0
}

fn bit_set(bits: &mut [u32; 8], v: u8, on: bool) {
    let w = &mut bits[usize::from(v >> 5)];
    if on {
        *w |= 1 << (v & 31);
    } else {
        *w &= !(1 << (v & 31));
    }
}

/// The highest vector set in a 256-bit register.
fn highest(bits: &[u32; 8]) -> Option<u8> {
    (0..8)
        .rev()
        .find(|&i| bits[i] != 0)
        .map(|i| (i * 32 + 31 - bits[i].leading_zeros() as usize) as u8)
}

/// Nanoseconds for `ticks` of a `hz` clock, rounded up.
fn ticks_to_ns_ceil(ticks: u128, hz: u64) -> u128 {
    (ticks * u128::from(NS_PER_SEC)).div_ceil(u128::from(hz))
}

/// A P6 local APIC. See the module documentation.
#[derive(Debug)]
pub struct LocalApic {
    /// Registers and timer state.
    pub state: LocalApicState,
    time: TimeSource,
}

impl LocalApic {
    /// An APIC with `id` in its power-up state, whose timer counts a
    /// `timer_hz` clock (the bus clock, e.g. [`DEFAULT_TIMER_HZ`]) in the
    /// virtual time of `time`.
    pub fn new(id: u8, timer_hz: u64, time: TimeSource) -> LocalApic {
        LocalApic {
            state: LocalApicState::new(id, timer_hz),
            time,
        }
    }

    /// Resets to the power-up state (RESET or INIT), keeping the ID, the
    /// timer clock, the global enable and the LINT wire levels.
    pub fn reset(&mut self) {
        let s = &self.state;
        let mut n = LocalApicState::new(s.id, s.timer_hz);
        n.global_enable = s.global_enable;
        n.lint_level = s.lint_level;
        self.state = n;
    }

    /// Sets the global enable (IA32_APIC_BASE bit 11). Clearing it resets
    /// the APIC, as on hardware; while clear, MMIO is the CPU's to stop,
    /// no APIC interrupt is pending, LINT0 is INTR and LINT1 is NMI.
    pub fn set_global_enable(&mut self, on: bool) {
        if !on && self.state.global_enable {
            self.reset();
        }
        self.state.global_enable = on;
    }

    /// Whether the APIC is globally enabled (IA32_APIC_BASE bit 11).
    pub fn enabled(&self) -> bool {
        self.state.global_enable
    }

    /// Whether the APIC is software-enabled (SVR bit 8) and globally enabled.
    pub fn software_enabled(&self) -> bool {
        self.state.global_enable && self.state.svr & SVR_ENABLE != 0
    }

    /// The APIC ID.
    pub fn id(&self) -> u8 {
        self.state.id
    }

    /// The timer's input clock in Hz.
    pub fn timer_hz(&self) -> u64 {
        self.state.timer_hz
    }

    // ---- interrupt acceptance -------------------------------------------

    /// Accepts a fixed interrupt: sets its IRR bit and records its trigger
    /// mode in the TMR. Vectors 0-15 are illegal: they set ESR bit 6 and
    /// are dropped. Returns whether the vector was accepted.
    pub fn request(&mut self, vector: u8, level_triggered: bool) -> bool {
        if vector < 16 {
            tracing::debug!(vector, "local APIC: illegal vector received");
            self.signal_error(ESR_RECEIVE_ILLEGAL_VECTOR);
            return false;
        }
        bit_set(&mut self.state.irr, vector, true);
        bit_set(&mut self.state.tmr, vector, level_triggered);
        true
    }

    /// Whether a message with this destination reaches this APIC: physical
    /// mode compares the 4-bit APIC ID (0xF is broadcast); logical mode
    /// matches the LDR under the DFR's flat or cluster model (0xFF is
    /// broadcast).
    pub fn matches_destination(&self, logical: bool, dest: u8) -> bool {
        if !logical {
            let d = dest & 0xF;
            return d == 0xF || d == self.state.id;
        }
        if dest == 0xFF {
            return true;
        }
        let ldr = (self.state.ldr >> 24) as u8;
        if self.state.dfr >> 28 == 0xF {
            dest & ldr != 0
        } else {
            let cluster = dest >> 4;
            (cluster == 0xF || cluster == ldr >> 4) && dest & ldr & 0xF != 0
        }
    }

    /// Accepts an interrupt message (from the I/O APIC) if its destination
    /// matches: fixed and lowest-priority go to the IRR, NMI is latched,
    /// ExtINT is latched until [`LocalApic::acknowledge_extint`], SMI and
    /// INIT are logged and dropped. Returns whether it was accepted.
    pub fn deliver(&mut self, d: &Delivery) -> bool {
        if !self.state.global_enable || !self.matches_destination(d.logical, d.dest) {
            tracing::debug!(?d, "local APIC: message not for this CPU");
            return false;
        }
        match d.mode {
            DeliveryMode::Fixed | DeliveryMode::LowestPriority => {
                self.request(d.vector, d.level_triggered)
            }
            DeliveryMode::Nmi => {
                self.state.nmi_pending = true;
                true
            }
            DeliveryMode::ExtInt => {
                self.state.extint_latched = true;
                true
            }
            DeliveryMode::Smi | DeliveryMode::Init => {
                tracing::warn!(?d, "local APIC: SMI/INIT message ignored");
                false
            }
        }
    }

    /// Sets whether LINT0 is asserted (in virtual-wire mode: the 8259's INTR).
    pub fn lint0(&mut self, level: bool) -> LintAction {
        self.lint(0, level)
    }

    /// Sets whether LINT1 is asserted (normally the NMI line).
    pub fn lint1(&mut self, level: bool) -> LintAction {
        self.lint(1, level)
    }

    fn lint(&mut self, pin: usize, level: bool) -> LintAction {
        let s = &mut self.state;
        let was = s.lint_level[pin];
        s.lint_level[pin] = level;
        if !s.global_enable {
            // Pins pass straight through: LINT0 = INTR, LINT1 = NMI.
            return if pin == 0 {
                if level {
                    LintAction::ExtInt
                } else {
                    LintAction::None
                }
            } else if level && !was {
                s.nmi_pending = true;
                LintAction::Nmi
            } else {
                LintAction::None
            };
        }
        let e = s.lvt[LVT_LINT0 + pin];
        let active = level;
        let rising = level && !was;
        if e & LVT_MASKED != 0 {
            return LintAction::None;
        }
        match (e >> LVT_MODE_SHIFT) & 7 {
            0 => {
                let vector = (e & LVT_VECTOR) as u8;
                if e & LVT_LEVEL != 0 {
                    if active && e & LVT_REMOTE_IRR == 0 && self.request(vector, true) {
                        self.state.lvt[LVT_LINT0 + pin] |= LVT_REMOTE_IRR;
                        return LintAction::Fixed(vector);
                    }
                } else if rising && self.request(vector, false) {
                    return LintAction::Fixed(vector);
                }
                LintAction::None
            }
            4 if rising => {
                s.nmi_pending = true;
                LintAction::Nmi
            }
            7 if active => LintAction::ExtInt,
            2 | 5 if rising => {
                tracing::warn!(pin, "local APIC: SMI/INIT through LINT ignored");
                LintAction::None
            }
            _ => LintAction::None,
        }
    }

    /// Whether the CPU's INTR is asserted by the 8259 through the APIC:
    /// LINT0 is asserted and its LVT entry is unmasked ExtINT (or the APIC is
    /// globally disabled and LINT0 is high), or an ExtINT message is latched.
    /// The machine then runs the 8259's acknowledge cycle for the vector
    /// (after calling [`LocalApic::acknowledge_extint`]). ExtINT is not
    /// subject to the TPR; the machine should prefer
    /// [`LocalApic::pending_interrupt`] when both are present, as QEMU does.
    pub fn extint_pending(&self) -> bool {
        let s = &self.state;
        if !s.global_enable {
            return s.lint_level[0];
        }
        if s.extint_latched {
            return true;
        }
        let e = s.lvt[LVT_LINT0];
        e & LVT_MASKED == 0 && (e >> LVT_MODE_SHIFT) & 7 == 7 && s.lint_level[0]
    }

    /// Tells the APIC the machine is taking an ExtINT interrupt from the 8259
    /// (clears a latched ExtINT message; the LINT0 wire stays as it is).
    pub fn acknowledge_extint(&mut self) {
        self.state.extint_latched = false;
    }

    /// Takes a latched NMI (from LINT, an IPI or the I/O APIC).
    pub fn take_nmi(&mut self) -> bool {
        std::mem::take(&mut self.state.nmi_pending)
    }

    /// The highest-priority IRR vector whose priority class is above the
    /// PPR's, when the APIC is enabled (globally and in software).
    pub fn pending_interrupt(&self) -> Option<u8> {
        if !self.software_enabled() {
            return None;
        }
        let v = highest(&self.state.irr)?;
        (v >> 4 > self.ppr() >> 4).then_some(v)
    }

    /// The CPU's interrupt acknowledge: moves the pending vector from the IRR
    /// to the ISR and returns it, or returns the spurious vector when no
    /// interrupt is deliverable any more.
    pub fn acknowledge(&mut self) -> u8 {
        match self.pending_interrupt() {
            Some(v) => {
                bit_set(&mut self.state.irr, v, false);
                bit_set(&mut self.state.isr, v, true);
                v
            }
            None => self.spurious_vector(),
        }
    }

    /// Takes the oldest level-triggered vector that got an EOI, for the
    /// machine to broadcast to the I/O APIC.
    pub fn take_eoi_for_level(&mut self) -> Option<u8> {
        if self.state.eoi_level.is_empty() {
            None
        } else {
            Some(self.state.eoi_level.remove(0))
        }
    }

    /// The spurious interrupt vector (SVR bits 7..0).
    pub fn spurious_vector(&self) -> u8 {
        (self.state.svr | SVR_FIXED_ONES) as u8
    }

    /// The processor priority register, computed from the TPR and the ISR.
    pub fn ppr(&self) -> u8 {
        let tpr = self.state.tpr;
        let isrv = highest(&self.state.isr).unwrap_or(0);
        if tpr >> 4 >= isrv >> 4 {
            tpr
        } else {
            isrv & 0xF0
        }
    }

    /// The arbitration priority register (P6 rule of the SDM).
    pub fn apr(&self) -> u8 {
        let tpr = self.state.tpr;
        let isrv = highest(&self.state.isr).unwrap_or(0);
        let irrv = highest(&self.state.irr).unwrap_or(0);
        if tpr >> 4 >= irrv >> 4 && tpr >> 4 > isrv >> 4 {
            tpr
        } else {
            (tpr & 0xF0).max(isrv & 0xF0).max(irrv & 0xF0)
        }
    }

    fn eoi(&mut self) {
        let Some(v) = highest(&self.state.isr) else {
            tracing::trace!("local APIC: EOI with nothing in service");
            return;
        };
        bit_set(&mut self.state.isr, v, false);
        if !bit_test(&self.state.tmr, v) {
            return;
        }
        self.state.eoi_level.push(v);
        // Level-triggered fixed LINT inputs: clear remote IRR, re-raise if
        // the line is still active.
        for pin in 0..2 {
            let e = self.state.lvt[LVT_LINT0 + pin];
            if e & LVT_REMOTE_IRR != 0 && (e & LVT_VECTOR) as u8 == v {
                self.state.lvt[LVT_LINT0 + pin] &= !LVT_REMOTE_IRR;
                let level = self.state.lint_level[pin];
                self.lint(pin, level);
            }
        }
    }

    fn signal_error(&mut self, bit: u32) {
        self.state.esr_pending |= bit;
        let e = self.state.lvt[LVT_ERROR];
        if e & LVT_MASKED != 0 {
            return;
        }
        let vector = (e & LVT_VECTOR) as u8;
        if vector < 16 {
            // Record the illegal vector without raising another error.
            self.state.esr_pending |= ESR_RECEIVE_ILLEGAL_VECTOR;
        } else {
            self.request(vector, false);
        }
    }

    fn send_ipi(&mut self) {
        let low = self.state.icr_low;
        let vector = (low & 0xFF) as u8;
        let mode = (low >> 8) & 7;
        let logical = low & ICR_LOGICAL != 0;
        let dest = (self.state.icr_high >> 24) as u8;
        let to_self = match (low >> 18) & 3 {
            0 => self.matches_destination(logical, dest),
            1 | 2 => true,
            _ => false,
        };
        if (mode == 0 || mode == 1) && vector < 16 {
            self.signal_error(ESR_SEND_ILLEGAL_VECTOR);
            if to_self {
                self.signal_error(ESR_RECEIVE_ILLEGAL_VECTOR);
            }
            return;
        }
        if !to_self {
            tracing::trace!(icr = low, "local APIC: IPI to other CPUs dropped");
            return;
        }
        match mode {
            0 | 1 => {
                self.request(vector, low & ICR_LEVEL_TRIGGER != 0);
            }
            4 => self.state.nmi_pending = true,
            5 if low & ICR_LEVEL_TRIGGER != 0 && low & (1 << 14) == 0 => {} // INIT de-assert
            _ => tracing::warn!(
                icr = format_args!("{low:#x}"),
                "local APIC: SMI/INIT/SIPI to self ignored"
            ),
        }
    }

    // ---- timer ----------------------------------------------------------

    /// The timer divisor (1, 2, 4, ... 128) from the divide configuration.
    pub fn timer_divisor(&self) -> u32 {
        let d = self.state.timer_dcr;
        let v = (d & 3) | ((d >> 1) & 4);
        if v == 7 {
            1
        } else {
            2 << v
        }
    }

    /// Input-clock ticks in one timer period.
    fn period_ticks(&self) -> u128 {
        u128::from(self.state.timer_initial) * u128::from(self.timer_divisor())
    }

    /// Input-clock ticks counted since the count was loaded.
    fn ticks_since_start(&self, now: Nanos) -> u128 {
        let ns = now.saturating_sub(self.state.timer_start);
        u128::from(ns) * u128::from(self.state.timer_hz) / u128::from(NS_PER_SEC)
            + u128::from(self.state.timer_phase)
    }

    fn timer_deadline(&self) -> Option<Nanos> {
        let s = &self.state;
        if !s.timer_armed || s.timer_initial == 0 {
            return None;
        }
        let ticks = u128::from(s.timer_periods + 1) * self.period_ticks();
        let ticks = ticks.saturating_sub(u128::from(s.timer_phase));
        let ns = u128::from(s.timer_start) + ticks_to_ns_ceil(ticks, s.timer_hz);
        Some(ns.min(u128::from(u64::MAX)) as Nanos)
    }

    /// The timer's current count at virtual time `now`.
    pub fn current_count(&self, now: Nanos) -> u32 {
        let s = &self.state;
        if !s.timer_armed || s.timer_initial == 0 {
            return 0;
        }
        let counted = self.ticks_since_start(now) / u128::from(self.timer_divisor());
        let initial = u128::from(s.timer_initial);
        if s.lvt[LVT_TIMER] & LVT_PERIODIC != 0 {
            (initial - counted % initial) as u32
        } else {
            initial.saturating_sub(counted) as u32
        }
    }

    /// Fires the timer if its deadline is at or before `now`.
    fn catch_up(&mut self, now: Nanos) {
        let Some(deadline) = self.timer_deadline() else {
            return;
        };
        if now < deadline {
            return;
        }
        let e = self.state.lvt[LVT_TIMER];
        if e & LVT_MASKED == 0 {
            self.request((e & LVT_VECTOR) as u8, false);
        }
        if e & LVT_PERIODIC != 0 {
            let periods = self.ticks_since_start(now) / self.period_ticks();
            self.state.timer_periods = periods.min(u128::from(u64::MAX - 1)) as u64;
        } else {
            self.state.timer_armed = false;
        }
    }

    fn write_timer_initial(&mut self, now: Nanos, v: u32) {
        let s = &mut self.state;
        s.timer_initial = v;
        s.timer_start = now;
        s.timer_phase = 0;
        s.timer_periods = 0;
        s.timer_armed = v != 0;
    }

    fn write_timer_dcr(&mut self, now: Nanos, v: u32) {
        if !self.state.timer_armed {
            self.state.timer_dcr = v & 0xB;
            return;
        }
        // Keep the current count, counting on at the new rate.
        let remaining = self.current_count(now);
        self.state.timer_dcr = v & 0xB;
        let done = u128::from(self.state.timer_initial - remaining.min(self.state.timer_initial))
            * u128::from(self.timer_divisor());
        self.state.timer_start = now;
        self.state.timer_phase = done as u64;
        self.state.timer_periods = 0;
    }

    // ---- registers ------------------------------------------------------

    /// The value of register `idx` (offset >> 4), `None` when reserved.
    fn reg_value(&self, idx: u64, now: Nanos) -> Option<u32> {
        let s = &self.state;
        Some(match idx {
            REG_ID => u32::from(s.id) << 24,
            REG_VERSION => LAPIC_VERSION,
            REG_TPR => u32::from(s.tpr),
            REG_APR => u32::from(self.apr()),
            REG_PPR => u32::from(self.ppr()),
            REG_EOI | REG_RRD => 0,
            REG_LDR => s.ldr,
            REG_DFR => s.dfr | 0x0FFF_FFFF,
            REG_SVR => s.svr | SVR_FIXED_ONES,
            0x10..=0x17 => s.isr[(idx - REG_ISR) as usize],
            0x18..=0x1F => s.tmr[(idx - REG_TMR) as usize],
            0x20..=0x27 => s.irr[(idx - REG_IRR) as usize],
            REG_ESR => s.esr,
            REG_ICR_LOW => s.icr_low,
            REG_ICR_HIGH => s.icr_high,
            REG_LVT_TIMER => s.lvt[LVT_TIMER],
            REG_LVT_PERF => s.lvt[LVT_PERF],
            REG_LVT_LINT0 => s.lvt[LVT_LINT0],
            REG_LVT_LINT1 => s.lvt[LVT_LINT1],
            REG_LVT_ERROR => s.lvt[LVT_ERROR],
            REG_TIMER_INITIAL => s.timer_initial,
            REG_TIMER_CURRENT => self.current_count(now),
            REG_TIMER_DCR => s.timer_dcr,
            _ => return None,
        })
    }

    /// Reads the register at `offset` (a 16-byte-aligned register offset).
    pub fn read_reg(&mut self, offset: u64) -> u32 {
        let now = self.time.now();
        self.catch_up(now);
        let idx = (offset & 0xFFF) >> 4;
        match self.reg_value(idx, now) {
            Some(v) => v,
            None => {
                tracing::debug!(offset, "local APIC: read of reserved register");
                self.signal_error(ESR_ILLEGAL_REGISTER);
                0
            }
        }
    }

    /// Writes the register at `offset` (a 16-byte-aligned register offset).
    pub fn write_reg(&mut self, offset: u64, v: u32) {
        let now = self.time.now();
        self.catch_up(now);
        let idx = (offset & 0xFFF) >> 4;
        match idx {
            REG_ID => self.state.id = ((v >> 24) & 0xF) as u8,
            REG_TPR => self.state.tpr = v as u8,
            REG_EOI => self.eoi(),
            REG_LDR => self.state.ldr = v & 0xFF00_0000,
            REG_DFR => self.state.dfr = v | 0x0FFF_FFFF,
            REG_SVR => {
                self.state.svr = (v & SVR_WRITABLE) | SVR_FIXED_ONES;
                if v & SVR_ENABLE == 0 {
                    for e in &mut self.state.lvt {
                        *e |= LVT_MASKED;
                    }
                }
            }
            REG_ESR => {
                self.state.esr = self.state.esr_pending;
                self.state.esr_pending = 0;
            }
            REG_ICR_LOW => {
                self.state.icr_low = v & ICR_WRITABLE;
                self.send_ipi();
            }
            REG_ICR_HIGH => self.state.icr_high = v & 0xFF00_0000,
            REG_LVT_TIMER | REG_LVT_PERF | REG_LVT_LINT0 | REG_LVT_LINT1 | REG_LVT_ERROR => {
                let i = match idx {
                    REG_LVT_TIMER => LVT_TIMER,
                    REG_LVT_PERF => LVT_PERF,
                    REG_LVT_LINT0 => LVT_LINT0,
                    REG_LVT_LINT1 => LVT_LINT1,
                    _ => LVT_ERROR,
                };
                let mut n = (v & LVT_WRITABLE[i]) | (self.state.lvt[i] & LVT_REMOTE_IRR);
                if self.state.svr & SVR_ENABLE == 0 {
                    n |= LVT_MASKED;
                }
                if i == LVT_LINT0 || i == LVT_LINT1 {
                    if n & LVT_LEVEL == 0 {
                        n &= !LVT_REMOTE_IRR;
                    }
                    self.state.lvt[i] = n;
                    // A newly unmasked level input that is active fires now.
                    let level = self.state.lint_level[i - LVT_LINT0];
                    if n & LVT_LEVEL != 0 {
                        self.lint(i - LVT_LINT0, level);
                    }
                } else {
                    self.state.lvt[i] = n;
                }
            }
            REG_TIMER_INITIAL => self.write_timer_initial(now, v),
            REG_TIMER_DCR => self.write_timer_dcr(now, v),
            REG_VERSION | REG_APR | REG_PPR | REG_RRD | 0x10..=0x27 | REG_TIMER_CURRENT => {
                tracing::trace!(offset, "local APIC: write to read-only register ignored");
            }
            _ => {
                tracing::debug!(offset, v, "local APIC: write to reserved register");
                self.signal_error(ESR_ILLEGAL_REGISTER);
            }
        }
    }
}

impl Timed for LocalApic {
    fn advance(&mut self, now: Nanos) {
        self.catch_up(now);
    }

    fn next_deadline(&self) -> Option<Nanos> {
        self.timer_deadline()
    }
}

impl LocalApic {
    /// Reads `size` bytes at `offset` into the register page.
    pub fn mmio_read(&mut self, offset: u64, size: u8) -> u64 {
        let within = offset & 0xF;
        if within >= 4 {
            return 0;
        }
        (u64::from(self.read_reg(offset & !0xF)) >> (8 * within)) & u64::from(crate::all_ones(size))
    }

    /// Writes the low `size` bytes of `value` at `offset` into the register page.
    pub fn mmio_write(&mut self, offset: u64, size: u8, value: u64) {
        let within = offset & 0xF;
        if within >= 4 {
            return;
        }
        let reg = offset & !0xF;
        if within == 0 && size >= 4 {
            return self.write_reg(reg, value as u32);
        }
        // Narrow access: merge into the containing register.
        let now = self.time.now();
        let old = u64::from(self.reg_value((reg & 0xFFF) >> 4, now).unwrap_or(0));
        let shift = 8 * within;
        let mask = (u64::from(crate::all_ones(size)) << shift) & 0xFFFF_FFFF;
        let merged = (old & !mask) | ((value << shift) & mask);
        self.write_reg(reg, merged as u32);
    }
}

impl crate::bus::Device for LocalApic {
    fn mmio_read(&mut self, _base: u64, offset: u64, size: u8) -> u64 {
        LocalApic::mmio_read(self, offset, size)
    }

    fn mmio_write(&mut self, _base: u64, offset: u64, size: u8, value: u64) {
        LocalApic::mmio_write(self, offset, size, value)
    }

    fn reset(&mut self) {
        LocalApic::reset(self);
    }

    fn next_deadline(&self) -> Option<Nanos> {
        Timed::next_deadline(self)
    }

    fn advance(&mut self, now: Nanos) {
        Timed::advance(self, now);
    }

    fn name(&self) -> &str {
        "local-apic"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SVR: u64 = 0xF0;
    const TPR: u64 = 0x80;
    const EOI: u64 = 0xB0;
    const ESR: u64 = 0x280;
    const ICR_LO: u64 = 0x300;
    const ICR_HI: u64 = 0x310;
    const LVT_T: u64 = 0x320;
    const LVT_L0: u64 = 0x350;
    const LVT_L1: u64 = 0x360;
    const LVT_E: u64 = 0x370;
    const TICR: u64 = 0x380;
    const TCCR: u64 = 0x390;
    const TDCR: u64 = 0x3E0;

    fn apic() -> (LocalApic, TimeSource) {
        let t = TimeSource::new();
        (LocalApic::new(0, DEFAULT_TIMER_HZ, t.clone()), t)
    }

    fn w(a: &mut LocalApic, off: u64, v: u32) {
        a.mmio_write(off, 4, u64::from(v));
    }

    fn r(a: &mut LocalApic, off: u64) -> u32 {
        a.mmio_read(off, 4) as u32
    }

    fn enabled() -> (LocalApic, TimeSource) {
        let (mut a, t) = apic();
        w(&mut a, SVR, 0x1FF);
        w(&mut a, TPR, 0);
        (a, t)
    }

    #[test]
    fn reset_values() {
        let (mut a, _) = apic();
        assert_eq!(r(&mut a, 0x30), 0x0004_0011);
        assert_eq!(r(&mut a, 0xE0), 0xFFFF_FFFF);
        assert_eq!(r(&mut a, SVR), 0xFF);
        for off in [LVT_T, 0x340, LVT_L0, LVT_L1, LVT_E] {
            assert_eq!(r(&mut a, off), 0x10000);
        }
        assert!(!a.software_enabled());
        // While software-disabled, LVT writes stay masked.
        w(&mut a, LVT_L0, 0x700);
        assert_eq!(r(&mut a, LVT_L0), 0x10700);
        // Byte reads of the version register.
        assert_eq!(a.mmio_read(0x30, 1), 0x11);
        assert_eq!(a.mmio_read(0x32, 1), 0x04);
        // P6: spurious vector bits 3..0 are hardwired to 1.
        w(&mut a, SVR, 0x130);
        assert_eq!(r(&mut a, SVR), 0x13F);
        assert_eq!(a.spurious_vector(), 0x3F);
    }

    #[test]
    fn linux_style_periodic_timer_period_within_one_percent() {
        let (mut a, t) = enabled();
        w(&mut a, TDCR, 0x3); // divide by 16
        assert_eq!(a.timer_divisor(), 16);
        w(&mut a, LVT_T, 0x2_00EF); // periodic, vector 0xEF
        let hz_target = 250u64; // HZ=250: 100 MHz / 16 / 250 = 25,000
        let count = (DEFAULT_TIMER_HZ / 16 / hz_target) as u32;
        w(&mut a, TICR, count);
        let start = t.now();
        // Halfway through, the count is about half.
        t.set(start + NS_PER_SEC / hz_target / 2);
        let c = r(&mut a, TCCR);
        assert!(c.abs_diff(count / 2) <= 1, "current count {c}");
        let mut fired = Vec::new();
        while fired.len() < 100 {
            let d = a.next_deadline().expect("periodic timer has a deadline");
            t.set(d);
            a.advance(d);
            assert_eq!(a.pending_interrupt(), Some(0xEF));
            assert_eq!(a.acknowledge(), 0xEF);
            w(&mut a, EOI, 0);
            fired.push(d);
        }
        let period = (fired[99] - fired[0]) as f64 / 99.0;
        let want = NS_PER_SEC as f64 / hz_target as f64;
        assert!((period - want).abs() / want < 0.01, "period {period} ns");
        // No drift from rounding: 100 periods land on 100 x 4 ms.
        assert_eq!(fired[99] - start, 100 * 4_000_000);
    }

    #[test]
    fn periodic_timer_coalesces_missed_periods() {
        let (mut a, t) = enabled();
        w(&mut a, TDCR, 0xB); // divide by 1
        w(&mut a, LVT_T, 0x2_0040);
        w(&mut a, TICR, 1000); // 10 us
        t.set(35_000);
        a.advance(35_000);
        assert_eq!(a.acknowledge(), 0x40);
        assert_eq!(a.pending_interrupt(), None);
        assert_eq!(a.next_deadline(), Some(40_000));
        assert_eq!(r(&mut a, TCCR), 500);
    }

    #[test]
    fn one_shot_timer() {
        let (mut a, t) = enabled();
        w(&mut a, TDCR, 0x0); // divide by 2
        w(&mut a, LVT_T, 0x0030);
        w(&mut a, TICR, 50_000); // 100,000 bus ticks = 1 ms
        assert_eq!(a.next_deadline(), Some(1_000_000));
        t.set(999_999);
        assert!(r(&mut a, TCCR) >= 1);
        assert_eq!(a.pending_interrupt(), None);
        t.set(1_000_000);
        // Reading catches up even before the machine calls advance.
        assert_eq!(r(&mut a, TCCR), 0);
        assert_eq!(a.pending_interrupt(), Some(0x30));
        assert_eq!(a.next_deadline(), None);
        assert_eq!(a.acknowledge(), 0x30);
        w(&mut a, EOI, 0);
        t.set(5_000_000);
        a.advance(5_000_000);
        assert_eq!(a.pending_interrupt(), None);
        assert_eq!(r(&mut a, TICR), 50_000);
        // Masked timers count but do not interrupt.
        w(&mut a, LVT_T, 0x1_0030);
        w(&mut a, TICR, 100);
        t.set(6_000_000);
        a.advance(6_000_000);
        assert_eq!(a.pending_interrupt(), None);
        assert_eq!(r(&mut a, TCCR), 0);
    }

    #[test]
    fn divide_change_keeps_current_count() {
        let (mut a, t) = enabled();
        w(&mut a, TDCR, 0xB); // by 1
        w(&mut a, LVT_T, 0x0030);
        w(&mut a, TICR, 1000);
        t.set(5_000); // 500 ticks done
        w(&mut a, TDCR, 0x1); // by 4
        assert_eq!(r(&mut a, TCCR), 500);
        // 500 counts x 4 ticks = 20 us more.
        assert_eq!(a.next_deadline(), Some(25_000));
    }

    #[test]
    fn tpr_masks_by_priority_class() {
        let (mut a, _) = enabled();
        w(&mut a, TPR, 0x40);
        a.request(0x41, false);
        a.request(0x35, false);
        assert_eq!(a.pending_interrupt(), None, "class 4 is not above TPR 4");
        assert_eq!(r(&mut a, 0xA0), 0x40); // PPR = TPR
        w(&mut a, TPR, 0x3F);
        assert_eq!(a.pending_interrupt(), Some(0x41));
        assert_eq!(a.acknowledge(), 0x41);
        // PPR now follows the ISR; 0x35 stays blocked even at TPR 0.
        w(&mut a, TPR, 0);
        assert_eq!(r(&mut a, 0xA0), 0x40);
        assert_eq!(a.pending_interrupt(), None);
        // Same class as in service is blocked too.
        a.request(0x4F, false);
        assert_eq!(a.pending_interrupt(), None);
        w(&mut a, EOI, 0);
        assert_eq!(a.pending_interrupt(), Some(0x4F));
        // With nothing deliverable, acknowledge returns the spurious vector.
        w(&mut a, TPR, 0xF0);
        assert_eq!(a.acknowledge(), 0xFF);
        // Software disable holds interrupts.
        w(&mut a, TPR, 0);
        w(&mut a, SVR, 0xFF);
        assert_eq!(a.pending_interrupt(), None);
        w(&mut a, SVR, 0x1FF);
        assert_eq!(a.pending_interrupt(), Some(0x4F));
    }

    #[test]
    fn nested_vectors_eoi_in_priority_order() {
        let (mut a, _) = enabled();
        a.request(0x40, false);
        assert_eq!(a.acknowledge(), 0x40);
        a.request(0x80, true);
        assert_eq!(a.pending_interrupt(), Some(0x80), "higher class preempts");
        assert_eq!(a.acknowledge(), 0x80);
        assert_eq!(r(&mut a, 0x100 + 0x40), 1); // ISR bit 0x80
        assert_eq!(r(&mut a, 0x100 + 0x20), 1); // ISR bit 0x40
        assert_eq!(r(&mut a, 0x180 + 0x40), 1); // TMR bit 0x80 (level)
        w(&mut a, EOI, 0);
        assert_eq!(a.take_eoi_for_level(), Some(0x80));
        assert_eq!(r(&mut a, 0x140), 0);
        assert_eq!(r(&mut a, 0x120), 1);
        w(&mut a, EOI, 0);
        assert_eq!(a.take_eoi_for_level(), None, "0x40 was edge-triggered");
        assert_eq!(r(&mut a, 0x120), 0);
        w(&mut a, EOI, 0); // nothing in service: harmless
    }

    #[test]
    fn extint_through_lint0() {
        let (mut a, _) = enabled();
        w(&mut a, LVT_L0, 0x700); // ExtINT, unmasked
        w(&mut a, LVT_L1, 0x400); // NMI
        assert_eq!(a.lint0(true), LintAction::ExtInt);
        assert!(a.extint_pending());
        assert_eq!(a.pending_interrupt(), None, "the 8259 supplies the vector");
        // ExtINT ignores the TPR.
        w(&mut a, TPR, 0xF0);
        assert!(a.extint_pending());
        a.lint0(false);
        assert!(!a.extint_pending());
        // Masked LINT0 blocks the 8259.
        w(&mut a, LVT_L0, 0x1_0700);
        assert_eq!(a.lint0(true), LintAction::None);
        assert!(!a.extint_pending());
        // LINT1 NMI on the rising edge only.
        assert_eq!(a.lint1(true), LintAction::Nmi);
        assert_eq!(a.lint1(true), LintAction::None);
        assert!(a.take_nmi());
        assert!(!a.take_nmi());
        // Globally disabled: LINT0 is INTR directly.
        a.set_global_enable(false);
        assert!(a.extint_pending());
        a.lint0(false);
        assert!(!a.extint_pending());
    }

    #[test]
    fn lint0_fixed_level_uses_remote_irr() {
        let (mut a, _) = enabled();
        w(&mut a, LVT_L0, 0x8050); // fixed, level, vector 0x50
        assert_eq!(a.lint0(true), LintAction::Fixed(0x50));
        assert_ne!(r(&mut a, LVT_L0) & LVT_REMOTE_IRR, 0);
        assert_eq!(a.acknowledge(), 0x50);
        assert_eq!(a.lint0(true), LintAction::None);
        w(&mut a, EOI, 0);
        assert_eq!(a.take_eoi_for_level(), Some(0x50));
        // Still high: raised again.
        assert_eq!(a.pending_interrupt(), Some(0x50));
    }

    #[test]
    fn self_ipis_and_esr() {
        let (mut a, _) = enabled();
        w(&mut a, ICR_LO, 0x4_0061); // self, fixed 0x61
        assert_eq!(a.pending_interrupt(), Some(0x61));
        assert_eq!(r(&mut a, ICR_LO), 0x4_0061);
        a.acknowledge();
        w(&mut a, EOI, 0);
        w(&mut a, ICR_LO, 0x8_0062); // all including self
        assert_eq!(a.acknowledge(), 0x62);
        w(&mut a, EOI, 0);
        w(&mut a, ICR_LO, 0xC_0063); // all excluding self
        assert_eq!(a.pending_interrupt(), None);
        w(&mut a, ICR_HI, 0x0000_0000);
        w(&mut a, ICR_LO, 0x0064); // physical, APIC ID 0
        assert_eq!(a.acknowledge(), 0x64);
        w(&mut a, EOI, 0);
        w(&mut a, ICR_LO, 0x4_0400); // NMI to self
        assert!(a.take_nmi());
        // Illegal vector: ESR reads 0 until written, then shows the errors.
        w(&mut a, LVT_E, 0xFE);
        w(&mut a, ICR_LO, 0x4_0005);
        assert_eq!(r(&mut a, ESR), 0);
        w(&mut a, ESR, 0);
        assert_eq!(
            r(&mut a, ESR),
            ESR_SEND_ILLEGAL_VECTOR | ESR_RECEIVE_ILLEGAL_VECTOR
        );
        assert_eq!(a.acknowledge(), 0xFE, "error LVT fired");
        w(&mut a, EOI, 0);
        w(&mut a, ESR, 0);
        assert_eq!(r(&mut a, ESR), 0);
        // Reserved register.
        r(&mut a, 0x330);
        w(&mut a, ESR, 0);
        assert_eq!(r(&mut a, ESR), ESR_ILLEGAL_REGISTER);
    }

    #[test]
    fn logical_destinations() {
        let (mut a, _) = enabled();
        w(&mut a, 0xD0, 0x0100_0000); // LDR: bit 0
        assert!(a.matches_destination(true, 0x01));
        assert!(a.matches_destination(true, 0xFF));
        assert!(!a.matches_destination(true, 0x02));
        w(&mut a, 0xE0, 0x0FFF_FFFF); // cluster model
        w(&mut a, 0xD0, 0x2100_0000); // cluster 2, bit 0
        assert!(a.matches_destination(true, 0x21));
        assert!(!a.matches_destination(true, 0x11));
        assert!(a.matches_destination(false, 0x00));
        assert!(a.matches_destination(false, 0x0F));
        assert!(!a.matches_destination(false, 0x01));
    }

    #[test]
    fn serde_round_trip() {
        let (mut a, t) = enabled();
        w(&mut a, LVT_T, 0x2_00EF);
        w(&mut a, TICR, 12345);
        a.request(0x70, true);
        t.set(1000);
        let json = serde_json::to_string(&a.state).unwrap();
        let back: LocalApicState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a.state);
        let mut b = LocalApic::new(0, DEFAULT_TIMER_HZ, t.clone());
        b.state = back;
        assert_eq!(r(&mut b, TCCR), r(&mut a, TCCR));
        assert_eq!(b.next_deadline(), a.next_deadline());
    }
}
