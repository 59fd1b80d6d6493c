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
mod operand;
mod string;
mod system;
mod x87;

use crate::bus::Bus;
use crate::decode::{self, DecodeCache, Decoded, FETCH_LEN};
use crate::fault::{Exec, Fault};
use crate::flags;
use crate::model::CpuModel;
use crate::state::{CpuState, SegReg};

pub use operand::Loc;

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
    /// An exception in protected mode, whose IDT delivery is not modelled
    /// yet; EIP points at the faulting instruction.
    Unhandled(Fault),
}

/// REP string instructions yield after this many iterations so that a
/// machine can service interrupts; EIP stays on the instruction meanwhile.
pub const REP_CHUNK: u32 = 4096;

/// One x86 CPU: architectural state, model, and the decode cache.
pub struct Cpu {
    /// Architectural state.
    pub state: CpuState,
    /// The chip being modelled.
    pub model: CpuModel,
    /// Physical address mask (address lines; A20).
    pub a20_mask: u32,
    /// Instructions retired.
    pub icount: u64,
    cache: DecodeCache,
    /// EIP of the instruction being executed.
    start_eip: u32,
    /// General registers and EFLAGS at the last commit point, restored when
    /// an instruction faults so that faults are precise.
    saved_regs: [u32; 8],
    saved_eflags: u32,
}

impl Cpu {
    /// A CPU of `model` in its reset state.
    pub fn new(model: CpuModel) -> Cpu {
        let mut state = CpuState::reset();
        if model == CpuModel::I8086 {
            state.eflags |= 0xF000;
        }
        Cpu {
            state,
            model,
            a20_mask: model.address_mask(),
            icount: 0,
            cache: DecodeCache::new(),
            start_eip: 0,
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

    /// Executes one instruction and delivers any exception it raises.
    pub fn step<B: Bus>(&mut self, bus: &mut B) -> StepOutcome {
        if self.state.halted {
            return StepOutcome::Halted;
        }
        self.start_eip = self.state.eip;
        match self.execute_one(bus) {
            Ok(()) => {
                self.icount += 1;
                if self.state.halted {
                    StepOutcome::Halted
                } else {
                    StepOutcome::Executed
                }
            }
            Err(fault) => {
                self.icount += 1;
                match self.deliver_exception(bus, fault) {
                    Ok(()) => StepOutcome::Exception(fault),
                    Err(f) => self.shutdown_outcome(f),
                }
            }
        }
    }

    /// Executes one instruction without delivering exceptions: on `Err`, EIP
    /// is where the exception's return address must point.
    pub fn execute_one<B: Bus>(&mut self, bus: &mut B) -> Exec {
        self.start_eip = self.state.eip;
        self.commit_regs();
        let d = self.fetch_decode(bus)?;
        let next = self.state.eip.wrapping_add(u32::from(d.len));
        let next = if d.op32 || self.code32() {
            next
        } else {
            next & 0xFFFF
        };
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
    fn fetch_decode<B: Bus>(&mut self, bus: &mut B) -> Exec<Decoded> {
        let cs = self.state.segs[SegReg::Cs as usize];
        let code32 = cs.is_32();
        let eip = self.state.eip;
        let linear = cs.base.wrapping_add(eip);
        let key = DecodeCache::key(linear, code32);
        let epoch = bus.code_epoch();
        if let Some(d) = self.cache.get(key, epoch) {
            self.check_fetch_limit(eip, d.len)?;
            return Ok(d);
        }
        // Fetch up to FETCH_LEN bytes, stopping at the segment limit.
        let mut buf = [0u8; FETCH_LEN];
        let mut n = 0;
        let wrap16 = self.model == CpuModel::I8086;
        while n < FETCH_LEN {
            let off = eip.wrapping_add(n as u32);
            let off = if wrap16 { off & 0xFFFF } else { off };
            if self.model != CpuModel::I8086 && off > cs.limit {
                break;
            }
            let phys = self.translate(cs.base.wrapping_add(off));
            buf[n] = bus.read_u8(phys);
            n += 1;
        }
        let d = match decode::decode(self.model, code32, &buf[..n]) {
            Ok(d) => d,
            Err(decode::DecodeError::Truncated) => return Err(Fault::GP0),
        };
        self.check_fetch_limit(eip, d.len)?;
        let first = self.translate(linear) >> 12;
        let last = self.translate(linear.wrapping_add(u32::from(d.len) - 1)) >> 12;
        bus.mark_code_page(first);
        if last != first {
            bus.mark_code_page(last);
        }
        self.cache.put(key, bus.code_epoch(), d);
        Ok(d)
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

    /// Linear to physical. Paging is not modelled yet (CR0.PG is refused by
    /// MOV CR0), so this applies the address-line mask only.
    #[inline]
    pub fn translate(&self, linear: u32) -> u32 {
        linear & self.a20_mask
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
