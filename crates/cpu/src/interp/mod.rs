//! The reference interpreter.
//!
//! `Cpu::step` runs one instruction: fetch through the decode cache, execute,
//! and on an exception deliver it to the guest. Instruction semantics are
//! split by concern: `operand` (locating and accessing operands), `alu`
//! (arithmetic and flags), `exec` (the dispatch), `string`, `control`
//! (branches, calls, interrupts) and `system` (CPUID, MSRs, control registers).

mod alu;
mod control;
mod exec;
mod memory;
mod operand;
mod protected;
mod string;
mod system;
mod x87;

use crate::bus::Bus;
use crate::decode::{self, DecodeCache, Decoded, FETCH_LEN};
use crate::fault;
use crate::fault::{Exec, Fault};
use crate::flags;
use crate::model::CpuModel;
use crate::state::{CpuState, SegReg};

pub use operand::Loc;
pub use system::{msr, CPUID_FEATURES_EDX, CPUID_SIGNATURE};

/// What one call to [`Cpu::step`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepOutcome {
    /// An instruction completed (or a REP string instruction made progress).
    Executed,
    /// An instruction raised an exception, which was delivered to the guest.
    Exception(Fault),
    /// The CPU executed HLT, or was already halted.
    Halted,
    /// An exception could not be delivered (shutdown); the CPU needs a reset.
    TripleFault(Fault),
}

/// Interrupt inhibition after STI (interrupts only) or MOV SS / POP SS
/// (interrupts and debug traps), for one instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shadow {
    /// No shadow.
    None,
    /// After STI that set IF.
    Sti,
    /// After MOV SS or POP SS.
    MovSs,
}

/// Bits of [`Cpu::pending_events`].
pub mod events {
    /// A maskable interrupt is pending at the interrupt controllers: the
    /// engine returns as soon as IF = 1 outside an interrupt shadow.
    pub const INTERRUPT: u32 = 1;
}

/// Byte offsets of the context fields of [`Cpu`], for generated code.
pub mod context_offsets {
    use super::Cpu;
    use crate::fpu::FpuState;
    use crate::state::CpuState;
    use core::mem::offset_of;
    /// The architectural state (`crate::state::offsets` are relative to it).
    pub const STATE: usize = offset_of!(Cpu, state);
    /// `icount`.
    pub const ICOUNT: usize = offset_of!(Cpu, icount);
    /// `budget_end`.
    pub const BUDGET_END: usize = offset_of!(Cpu, budget_end);
    /// `tlb_entries`.
    pub const TLB_ENTRIES: usize = offset_of!(Cpu, tlb_entries);
    /// `a20_mask`.
    pub const A20_MASK: usize = offset_of!(Cpu, a20_mask);
    /// `pending_events`.
    pub const PENDING_EVENTS: usize = offset_of!(Cpu, pending_events);
    /// The x87 state's last instruction pointer (`FpuState::fip`); the
    /// other pointer fields follow as `FPU_*`.
    pub const FPU_FIP: usize = STATE + offset_of!(CpuState, fpu) + offset_of!(FpuState, fip);
    /// `FpuState::fcs`.
    pub const FPU_FCS: usize = STATE + offset_of!(CpuState, fpu) + offset_of!(FpuState, fcs);
    /// `FpuState::fop`.
    pub const FPU_FOP: usize = STATE + offset_of!(CpuState, fpu) + offset_of!(FpuState, fop);
    /// `FpuState::fdp`.
    pub const FPU_FDP: usize = STATE + offset_of!(CpuState, fpu) + offset_of!(FpuState, fdp);
    /// `FpuState::fds`.
    pub const FPU_FDS: usize = STATE + offset_of!(CpuState, fpu) + offset_of!(FpuState, fds);
    /// `FpuState::sw`.
    pub const FPU_SW: usize = STATE + offset_of!(CpuState, fpu) + offset_of!(FpuState, sw);
    /// `FpuState::cw`.
    pub const FPU_CW: usize = STATE + offset_of!(CpuState, fpu) + offset_of!(FpuState, cw);
}

/// `fetch_decode`'s answer for an instruction held in `Cpu::uncached`.
const UNCACHED: usize = usize::MAX;

/// DR6.BS: single-step trap.
const DR6_BS: u32 = 1 << 14;

/// REP string instructions yield after this many iterations so that a
/// machine can service interrupts; EIP stays on the instruction meanwhile.
pub const REP_CHUNK: u32 = 4096;

/// One x86 CPU: architectural state, model, and the decode cache.
///
/// The head of the struct is the context generated code works on: one
/// `#[repr(C)]` block addressed by fixed offsets from one base pointer
/// ([`context_offsets`]): the architectural state first (registers, EIP,
/// EFLAGS, segment caches; see `crate::state::offsets`), then the
/// instruction count and the engine's budget, the active TLB's entries,
/// the A20 mask and the pending-event flags. The rest (decode cache,
/// bookkeeping) is the interpreter's own; what an engine needs of it has
/// accessors ([`Cpu::interrupts_enabled`], [`Cpu::interrupt_shadow`],
/// [`Cpu::pending_debug_traps`]).
#[repr(C)]
pub struct Cpu {
    /// Architectural state.
    pub state: CpuState,
    /// Instructions retired (the clock's count; see `crate::engine`).
    pub icount: u64,
    /// The instruction count at which the running engine call must return
    /// (set by the engine from its budget).
    pub budget_end: u64,
    /// The active address space's TLB entries ([`crate::mmu::TLB_SIZE`] of
    /// them), refreshed before every instruction.
    pub tlb_entries: *const crate::mmu::TlbEntry,
    /// Physical address mask (address lines; A20).
    pub a20_mask: u32,
    /// Pending-event flags ([`events`]), set by the machine for the engine.
    pub pending_events: u32,
    /// The chip being modelled.
    pub model: CpuModel,
    /// A local APIC is wired to this CPU (CPUID.APIC, IA32_APIC_BASE).
    pub apic_present: bool,
    cache: DecodeCache,
    /// EIP of the instruction being executed.
    start_eip: u32,
    /// The software TLB.
    pub tlb: crate::mmu::Tlb,
    /// Bus map epoch the TLB's host pointers belong to.
    tlb_epoch: u64,
    /// Scratch list of written page-table pages.
    pt_writes: Vec<u32>,
    /// Scratch list of pages that gained a tracking flag.
    new_flags: Vec<u32>,
    /// The last instruction that could not be cached (it crosses a page).
    uncached: Decoded,
    /// Interrupt shadow set by the last instruction (STI, MOV SS).
    shadow: Shadow,
    /// DR6 bits of debug traps raised by the current instruction.
    pending_debug_trap: u32,
    /// Debug traps held back by a MOV SS shadow.
    deferred_debug_trap: u32,
    /// The current instruction delivered a software interrupt (no single-step trap).
    delivered_interrupt: bool,
    /// General registers and EFLAGS at the last commit point, restored when
    /// an instruction faults so that faults are precise.
    saved_regs: [u32; 8],
    saved_eflags: u32,
}

// SAFETY: the raw pointers in a Cpu are `tlb_entries`, into the Cpu's own
// TLB (heap storage it owns), and the TLB entries' host pointers into guest
// RAM and video memory. The Cpu dereferences the latter only while it runs
// with exclusive (`&mut`) access to the bus that owns that memory, so
// moving a Cpu to another thread (with or without its machine) cannot let
// two threads reach the same memory unsynchronised. It is not Sync.
unsafe impl Send for Cpu {}

impl Cpu {
    /// A CPU of `model` in its reset state.
    pub fn new(model: CpuModel) -> Cpu {
        let mut state = CpuState::reset();
        if model == CpuModel::I8086 {
            state.eflags |= 0xF000;
        }
        Cpu {
            state,
            icount: 0,
            budget_end: u64::MAX,
            tlb_entries: std::ptr::null(),
            a20_mask: model.address_mask(),
            pending_events: 0,
            model,
            apic_present: false,
            cache: DecodeCache::new(),
            start_eip: 0,
            tlb: crate::mmu::Tlb::new(),
            tlb_epoch: u64::MAX,
            pt_writes: Vec::new(),
            new_flags: Vec::new(),
            uncached: Decoded::placeholder(),
            shadow: Shadow::None,
            pending_debug_trap: 0,
            deferred_debug_trap: 0,
            delivered_interrupt: false,
            saved_regs: [0; 8],
            saved_eflags: 0,
        }
    }

    /// Decode-cache (hits, misses).
    pub fn cache_stats(&self) -> (u64, u64) {
        (self.cache.hits, self.cache.misses)
    }

    /// Forgets all decoded instructions (after memory was replaced behind the bus's back).
    pub fn flush_decode_cache(&mut self) {
        self.cache.clear();
    }

    /// Sets FLAGS the way the model stores them (reserved bits forced).
    pub fn set_flags_raw(&mut self, v: u32) {
        self.state.eflags = self.fix_flags(v);
    }

    #[inline]
    fn fix_flags(&self, v: u32) -> u32 {
        match self.model {
            CpuModel::I8086 => (v & 0x0FD5) | 0xF002,
            CpuModel::I80286 if !self.state.protected_mode() => (v & 0x0FD5) | 0x2,
            CpuModel::I80286 => (v & 0x7FD5) | 0x2,
            CpuModel::P6 => (v & 0x003F_7FD5) | 0x2,
        }
    }

    /// True when executing 32-bit code (CS.D).
    #[inline]
    pub fn code32(&self) -> bool {
        self.state.segs[SegReg::Cs as usize].is_32()
    }

    /// Executes one instruction and delivers any exception it raises, then
    /// any debug trap it caused (single step, data breakpoints, task T bit).
    pub fn step<B: Bus>(&mut self, bus: &mut B) -> StepOutcome {
        if self.state.halted {
            return StepOutcome::Halted;
        }
        bus.set_icount(self.icount);
        self.start_eip = self.state.eip;
        self.sync_tlb(bus);
        // The shadow set by the previous instruction covers this one.
        self.shadow = Shadow::None;
        let eflags_before = self.state.eflags;
        if self.state.dr[7] & 0xFF != 0 && eflags_before & protected::RF_BIT == 0 {
            let bits = self.code_breakpoints();
            if bits != 0 {
                self.state.dr[6] |= bits;
                return self.raise(bus, Fault::new(fault::vector::DB));
            }
        }
        self.pending_debug_trap = 0;
        match self.execute_one(bus) {
            Ok(()) => {
                self.icount += 1;
                if eflags_before & protected::RF_BIT != 0 {
                    // RF lasts for one instruction (unless it just set RF, e.g. IRET).
                    self.state.eflags &= !protected::RF_BIT;
                }
                let mut bits = self.pending_debug_trap;
                if eflags_before & flags::TF != 0 && !self.delivered_interrupt {
                    bits |= DR6_BS;
                }
                if self.shadow == Shadow::MovSs {
                    // MOV SS / POP SS hold debug traps until after the next instruction.
                    self.deferred_debug_trap |= bits;
                    bits = 0;
                } else {
                    // Held traps merge into this instruction's (SDM Vol. 3A §6.8.3).
                    bits |= std::mem::take(&mut self.deferred_debug_trap);
                }
                self.delivered_interrupt = false;
                if bits != 0 {
                    self.state.dr[6] |= bits;
                    return self.raise(bus, Fault::new(fault::vector::DB));
                }
                if self.state.halted {
                    StepOutcome::Halted
                } else {
                    StepOutcome::Executed
                }
            }
            Err(f) => {
                self.icount += 1;
                self.delivered_interrupt = false;
                self.raise(bus, f)
            }
        }
    }

    /// Delivers an exception and reports the outcome.
    fn raise<B: Bus>(&mut self, bus: &mut B, f: Fault) -> StepOutcome {
        match self.deliver_exception(bus, f) {
            Ok(()) => StepOutcome::Exception(f),
            Err(e) => self.shutdown_outcome(e),
        }
    }

    /// True when a maskable interrupt may be delivered now (IF set and no
    /// STI / MOV SS shadow).
    pub fn interrupts_enabled(&self) -> bool {
        self.state.eflags & flags::IF != 0 && self.shadow == Shadow::None
    }

    /// True when translated code may run at this boundary: a P6 with no
    /// single-step (TF), no resume flag, no armed code breakpoint and no
    /// held debug trap, so that nothing but the instructions themselves
    /// happens between them (the translated forms cannot fault).
    pub fn native_allowed(&self) -> bool {
        self.model == CpuModel::P6
            && self.state.eflags & (flags::TF | protected::RF_BIT) == 0
            && self.state.dr[7] & 0xFF == 0
            && self.deferred_debug_trap == 0
            && !self.state.halted
    }

    /// Accounts for instructions that translated code ran (at least one;
    /// the code has added them to `icount` itself): the first of them ended
    /// any interrupt shadow.
    pub fn retired_native(&mut self) {
        self.shadow = Shadow::None;
    }

    /// Brings the TLB in line with the bus now (a page that just became
    /// code loses its write pointers before translated code can use them).
    pub fn sync_memory<B: Bus>(&mut self, bus: &mut B) {
        self.sync_tlb(bus);
    }

    /// The physical address of the instruction at CS:EIP, if it can be
    /// fetched from RAM without a fault (the interpreter takes any fault).
    pub fn code_address<B: Bus>(&mut self, bus: &mut B) -> Option<u32> {
        self.sync_tlb(bus);
        self.code_address_synced(bus)
    }

    /// [`Cpu::code_address`] for a caller that knows the TLB has seen every
    /// change of the bus since its last sync (only translated code ran
    /// since, and it cannot change mappings or page flags).
    #[inline]
    pub fn code_address_synced<B: Bus>(&mut self, bus: &mut B) -> Option<u32> {
        let cs = self.state.segs[SegReg::Cs as usize];
        if self.state.eip > cs.limit {
            return None;
        }
        let linear = cs.base.wrapping_add(self.state.eip);
        let user = self.user();
        self.translate_lin(bus, linear, false, user).ok()
    }

    /// True while the last instruction's STI or MOV SS shadow inhibits
    /// interrupts at this boundary.
    pub fn interrupt_shadow(&self) -> bool {
        self.shadow != Shadow::None
    }

    /// DR6 bits of debug traps held back by a MOV SS shadow, delivered
    /// after the next instruction.
    pub fn pending_debug_traps(&self) -> u32 {
        self.deferred_debug_trap
    }

    /// Delivers a hardware interrupt (from an interrupt controller) with
    /// vector `vec`, waking the CPU from HLT. The caller checks
    /// [`Cpu::interrupts_enabled`] first (except for NMI, vector 2).
    pub fn inject_interrupt<B: Bus>(&mut self, bus: &mut B, vec: u8) -> StepOutcome {
        self.state.halted = false;
        bus.set_icount(self.icount);
        bus.note_event(crate::bus::CpuEvent::External(vec));
        self.sync_tlb(bus);
        self.start_eip = self.state.eip;
        self.commit_regs();
        match self.deliver_event(bus, vec, None, protected::Event::External) {
            Ok(()) => StepOutcome::Executed,
            Err(f) => {
                self.state.regs = self.saved_regs;
                self.raise(bus, f)
            }
        }
    }

    /// Linear addresses of enabled instruction breakpoints that match CS:EIP,
    /// as DR6 bits.
    fn code_breakpoints(&self) -> u32 {
        let lin = self.state.segs[SegReg::Cs as usize]
            .base
            .wrapping_add(self.state.eip);
        let dr7 = self.state.dr[7];
        (0..4)
            .filter(|&n| {
                dr7 & (3 << (2 * n)) != 0
                    && (dr7 >> (16 + 4 * n)) & 3 == 0
                    && self.state.dr[n] == lin
            })
            .fold(0, |b, n| b | (1 << n))
    }

    /// Records data breakpoints hit by an access of `size` bytes at `lin`.
    #[inline]
    pub(super) fn check_data_breakpoints(&mut self, lin: u32, size: u32, write: bool) {
        let dr7 = self.state.dr[7];
        for n in 0..4 {
            let rw = (dr7 >> (16 + 4 * n)) & 3;
            if dr7 & (3 << (2 * n)) == 0 || !(rw == 1 && write || rw == 3) {
                continue;
            }
            let len = [1, 2, 8, 4][((dr7 >> (18 + 4 * n)) & 3) as usize];
            let start = self.state.dr[n] & !(len - 1);
            if lin <= start.wrapping_add(len - 1) && start <= lin.wrapping_add(size - 1) {
                self.pending_debug_trap |= 1 << n;
            }
        }
    }

    /// Records I/O breakpoints (CR4.DE, DR7 R/W = 10) hit by a port access.
    pub(super) fn check_io_breakpoints(&mut self, port: u16, size: u32) {
        if self.state.cr4 & 8 == 0 {
            return;
        }
        let dr7 = self.state.dr[7];
        for n in 0..4 {
            if dr7 & (3 << (2 * n)) == 0 || (dr7 >> (16 + 4 * n)) & 3 != 2 {
                continue;
            }
            let len = [1, 2, 8, 4][((dr7 >> (18 + 4 * n)) & 3) as usize];
            let start = self.state.dr[n] & 0xFFFF & !(len - 1);
            let p = u32::from(port);
            if p < start + len && start < p + size {
                self.pending_debug_trap |= 1 << n;
            }
        }
    }

    /// Executes one instruction without delivering exceptions: on `Err`, EIP
    /// is where the exception's return address must point.
    pub fn execute_one<B: Bus>(&mut self, bus: &mut B) -> Exec {
        self.start_eip = self.state.eip;
        self.commit_regs();
        let slot = self.fetch_decode(bus)?;
        let d = if slot == UNCACHED {
            self.uncached
        } else {
            *self.cache.decoded(slot)
        };
        let next = self.state.eip.wrapping_add(u32::from(d.len));
        let next = if self.code32() { next } else { next & 0xFFFF };
        let r = self.exec(bus, &d, next);
        if r.is_err() {
            self.state.regs = self.saved_regs;
            self.state.eflags = self.saved_eflags;
            // Faults are precise: the return address is the instruction, except
            // on the 8086, whose only exception (divide error) is a trap.
            self.state.eip = if self.model == CpuModel::I8086 {
                next
            } else {
                self.start_eip
            };
        }
        r
    }

    /// Makes the current registers the ones a fault restores.
    #[inline]
    pub(super) fn commit_regs(&mut self) {
        self.saved_regs = self.state.regs;
        self.saved_eflags = self.state.eflags;
    }

    /// Fetches and decodes the instruction at CS:EIP.
    ///
    /// The decode cache is keyed by the *physical* address of the first byte,
    /// so a new address space (CR3) cannot reuse stale decodings; instructions
    /// that cross a page boundary are decoded afresh every time.
    fn fetch_decode<B: Bus>(&mut self, bus: &mut B) -> Exec<usize> {
        let cs = self.state.segs[SegReg::Cs as usize];
        let code32 = cs.is_32();
        let eip = self.state.eip;
        let linear = cs.base.wrapping_add(eip);
        let user = self.user();
        let is8086 = self.model == CpuModel::I8086;
        let phys = if is8086 {
            linear & self.a20_mask
        } else {
            self.translate_lin(bus, linear, false, user)?
        };
        let key = DecodeCache::key(phys, code32);
        let gen = bus.code_generation(phys >> 12);
        if let Some(slot) = self.cache.lookup(key, gen) {
            self.check_fetch_limit(eip, self.cache.decoded(slot).len)?;
            return Ok(slot);
        }
        // Fetch bytes from the first page (and the segment, up to its limit);
        // touch the next page only if the instruction really extends into it.
        let mut buf = [0u8; FETCH_LEN];
        let mut n = 0;
        let mut page_end = FETCH_LEN;
        let mut second_page = None;
        let d = loop {
            while n < page_end.min(FETCH_LEN) {
                let off = eip.wrapping_add(n as u32);
                let off = if is8086 { off & 0xFFFF } else { off };
                if !is8086 && off > cs.limit {
                    break;
                }
                let lin = cs.base.wrapping_add(off);
                let a = if is8086 {
                    lin & self.a20_mask
                } else if (lin ^ linear) & !0xFFF == 0 {
                    phys + (lin - linear)
                } else {
                    match second_page {
                        Some(p) => p | (lin & 0xFFF),
                        None => {
                            page_end = n;
                            break;
                        }
                    }
                };
                buf[n] = bus.read_u8(a);
                n += 1;
            }
            match decode::decode(self.model, code32, &buf[..n]) {
                Ok(d) => break d,
                Err(decode::DecodeError::Truncated)
                    if page_end < FETCH_LEN && second_page.is_none() =>
                {
                    let next = (linear | 0xFFF).wrapping_add(1);
                    second_page = Some(self.translate_lin(bus, next, false, user)? & !0xFFF);
                    page_end = FETCH_LEN;
                }
                Err(decode::DecodeError::Truncated) => return Err(Fault::GP0),
            }
        };
        self.check_fetch_limit(eip, d.len)?;
        let crosses = !is8086 && (linear & 0xFFF) + u32::from(d.len) > 0x1000;
        if !crosses {
            bus.mark_code_page(phys >> 12);
            // Marking revokes the write pointers the TLB holds to this page.
            self.sync_tlb(bus);
            return Ok(self.cache.put(key, bus.code_generation(phys >> 12), d));
        }
        self.uncached = d;
        Ok(UNCACHED)
    }

    #[inline]
    fn check_fetch_limit(&self, eip: u32, len: u8) -> Exec {
        if self.model == CpuModel::I8086 {
            return Ok(());
        }
        let limit = self.state.segs[SegReg::Cs as usize].limit;
        if eip.wrapping_add(u32::from(len) - 1) > limit || eip > limit {
            return Err(Fault::GP0);
        }
        Ok(())
    }

    /// Reads FLAGS as PUSHF would see them.
    #[inline]
    pub fn flags(&self) -> u32 {
        self.state.eflags
    }

    #[inline]
    fn set_status(&mut self, status: u32) {
        self.state.eflags = (self.state.eflags & !flags::STATUS) | (status & flags::STATUS);
    }

    #[inline]
    fn flag(&self, f: u32) -> bool {
        self.state.eflags & f != 0
    }

    #[inline]
    fn set_flag(&mut self, f: u32, on: bool) {
        if on {
            self.state.eflags |= f;
        } else {
            self.state.eflags &= !f;
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod tests_pm;
