//! String instructions with REP/REPE/REPNE.

use super::{Cpu, REP_CHUNK};
use crate::bus::Bus;
use crate::decode::Decoded;
use crate::fault::Exec;
use crate::flags::{DF, ZF};
use crate::state::{reg, SegReg};
use iced_x86::Mnemonic;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Movs,
    Cmps,
    Scas,
    Lods,
    Stos,
    Ins,
    Outs,
}

impl Cpu {
    #[inline]
    fn index(&self, r: usize, a32: bool) -> u32 {
        if a32 {
            self.state.regs[r]
        } else {
            self.state.regs[r] & 0xFFFF
        }
    }

    #[inline]
    fn advance(&mut self, r: usize, a32: bool, delta: u32) {
        let v = self.state.regs[r].wrapping_add(delta);
        self.state.regs[r] = if a32 {
            v
        } else {
            (self.state.regs[r] & 0xFFFF_0000) | (v & 0xFFFF)
        };
    }

    /// A string access faulted. The 80286 has already stepped the pointer of
    /// the faulting access when the fault is taken, and under REP has
    /// counted CX down by `cx_steps`, as the hardware captures show: once
    /// for a faulting read, twice for a faulting write, not at all when the
    /// first read of CMPS faults. Later chips leave the iteration undone.
    fn string_fault(
        &mut self,
        f: crate::fault::Fault,
        ptr: usize,
        a32: bool,
        delta: u32,
        cx_steps: u32,
    ) -> crate::fault::Fault {
        if self.model == crate::model::CpuModel::I80286 {
            self.advance(ptr, a32, delta);
            self.advance(reg::ECX, a32, cx_steps.wrapping_neg());
            self.commit_regs();
        }
        f
    }

    pub(super) fn string_op<B: Bus>(&mut self, bus: &mut B, d: &Decoded) -> Exec {
        use Mnemonic as M;
        let (kind, size): (Kind, u32) = match d.insn.mnemonic() {
            M::Movsb => (Kind::Movs, 1),
            M::Movsw => (Kind::Movs, 2),
            M::Movsd => (Kind::Movs, 4),
            M::Cmpsb => (Kind::Cmps, 1),
            M::Cmpsw => (Kind::Cmps, 2),
            M::Cmpsd => (Kind::Cmps, 4),
            M::Scasb => (Kind::Scas, 1),
            M::Scasw => (Kind::Scas, 2),
            M::Scasd => (Kind::Scas, 4),
            M::Lodsb => (Kind::Lods, 1),
            M::Lodsw => (Kind::Lods, 2),
            M::Lodsd => (Kind::Lods, 4),
            M::Stosb => (Kind::Stos, 1),
            M::Stosw => (Kind::Stos, 2),
            M::Stosd => (Kind::Stos, 4),
            M::Insb => (Kind::Ins, 1),
            M::Insw => (Kind::Ins, 2),
            M::Insd => (Kind::Ins, 4),
            M::Outsb => (Kind::Outs, 1),
            M::Outsw => (Kind::Outs, 2),
            _ => (Kind::Outs, 4),
        };
        let a32 = d.addr32;
        let src_seg = d.seg_override.unwrap_or(SegReg::Ds);
        let delta = if self.flag(DF) {
            size.wrapping_neg()
        } else {
            size
        };
        let rep = d.rep != 0;
        let mut iterations = 0;
        loop {
            if rep && self.index(reg::ECX, a32) == 0 {
                break;
            }
            // Each access is followed at once by its pointer update; on the
            // 80286 a faulting access still updates its pointer (and CX).
            macro_rules! access {
                ($e:expr, $ptr:expr, $cx_steps:expr) => {
                    match $e {
                        Ok(v) => v,
                        Err(f) => {
                            let steps = if rep { $cx_steps } else { 0 };
                            return Err(self.string_fault(f, $ptr, a32, delta, steps));
                        }
                    }
                };
            }
            const READ: u32 = 1;
            const WRITE: u32 = 2;
            match kind {
                Kind::Movs => {
                    let v = access!(
                        self.read_mem(bus, src_seg, self.index(reg::ESI, a32), size),
                        reg::ESI,
                        READ
                    );
                    self.advance(reg::ESI, a32, delta);
                    access!(
                        self.write_mem(bus, SegReg::Es, self.index(reg::EDI, a32), size, v),
                        reg::EDI,
                        WRITE
                    );
                    self.advance(reg::EDI, a32, delta);
                }
                Kind::Cmps if self.model == crate::model::CpuModel::I80286 => {
                    // The 80286 reads ES:DI first (seen in which pointer a fault steps).
                    let b = access!(
                        self.read_mem(bus, SegReg::Es, self.index(reg::EDI, a32), size),
                        reg::EDI,
                        0
                    );
                    self.advance(reg::EDI, a32, delta);
                    let a = access!(
                        self.read_mem(bus, src_seg, self.index(reg::ESI, a32), size),
                        reg::ESI,
                        READ
                    );
                    self.advance(reg::ESI, a32, delta);
                    self.sub(a, b, 0, size);
                }
                Kind::Cmps => {
                    let a = access!(
                        self.read_mem(bus, src_seg, self.index(reg::ESI, a32), size),
                        reg::ESI,
                        READ
                    );
                    self.advance(reg::ESI, a32, delta);
                    let b = access!(
                        self.read_mem(bus, SegReg::Es, self.index(reg::EDI, a32), size),
                        reg::EDI,
                        READ
                    );
                    self.advance(reg::EDI, a32, delta);
                    self.sub(a, b, 0, size);
                }
                Kind::Scas => {
                    let b = access!(
                        self.read_mem(bus, SegReg::Es, self.index(reg::EDI, a32), size),
                        reg::EDI,
                        READ
                    );
                    self.advance(reg::EDI, a32, delta);
                    let a = self.get_reg(0, size as u8);
                    self.sub(a, b, 0, size);
                }
                Kind::Lods => {
                    let v = access!(
                        self.read_mem(bus, src_seg, self.index(reg::ESI, a32), size),
                        reg::ESI,
                        READ
                    );
                    self.set_reg(0, size as u8, v);
                    self.advance(reg::ESI, a32, delta);
                }
                Kind::Stos => {
                    let v = self.get_reg(0, size as u8);
                    access!(
                        self.write_mem(bus, SegReg::Es, self.index(reg::EDI, a32), size, v),
                        reg::EDI,
                        WRITE
                    );
                    self.advance(reg::EDI, a32, delta);
                }
                Kind::Ins => {
                    let port = self.get_reg(2, 2) as u16;
                    self.check_io(bus, port, size)?;
                    // The destination is probed before the port is read.
                    let di = self.index(reg::EDI, a32);
                    access!(self.seg_linear(SegReg::Es, di, size, true), reg::EDI, WRITE);
                    let v = bus.io_read(port, size as u8);
                    access!(
                        self.write_mem(bus, SegReg::Es, di, size, v),
                        reg::EDI,
                        WRITE
                    );
                    self.advance(reg::EDI, a32, delta);
                }
                Kind::Outs => {
                    let port = self.get_reg(2, 2) as u16;
                    self.check_io(bus, port, size)?;
                    let v = access!(
                        self.read_mem(bus, src_seg, self.index(reg::ESI, a32), size),
                        reg::ESI,
                        READ
                    );
                    bus.io_write(port, size as u8, v);
                    self.advance(reg::ESI, a32, delta);
                }
            }
            if !rep {
                break;
            }
            self.advance(reg::ECX, a32, u32::MAX);
            // Registers of completed iterations survive a later fault.
            self.commit_regs();
            if matches!(kind, Kind::Cmps | Kind::Scas) {
                let zf = self.flag(ZF);
                if (d.rep == 0xF3 && !zf) || (d.rep == 0xF2 && zf) {
                    break;
                }
            }
            iterations += 1;
            if iterations >= REP_CHUNK && self.index(reg::ECX, a32) != 0 {
                // Yield: resume this instruction on the next step.
                self.state.eip = self.start_eip;
                break;
            }
        }
        Ok(())
    }
}
