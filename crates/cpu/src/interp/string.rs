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

    pub(super) fn string_op<B: Bus>(&mut self, bus: &mut B, d: &Decoded) -> Exec {
        use Mnemonic as M;
        let (kind, size) = match d.insn.mnemonic() {
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
            (size as u32).wrapping_neg()
        } else {
            size
        };
        let rep = d.rep != 0;
        let mut iterations = 0;
        loop {
            if rep && self.index(reg::ECX, a32) == 0 {
                break;
            }
            match kind {
                Kind::Movs => {
                    let v = self.read_mem(bus, src_seg, self.index(reg::ESI, a32), size)?;
                    self.write_mem(bus, SegReg::Es, self.index(reg::EDI, a32), size, v)?;
                    self.advance(reg::ESI, a32, delta);
                    self.advance(reg::EDI, a32, delta);
                }
                Kind::Cmps => {
                    let a = self.read_mem(bus, src_seg, self.index(reg::ESI, a32), size)?;
                    let b = self.read_mem(bus, SegReg::Es, self.index(reg::EDI, a32), size)?;
                    self.sub(a, b, 0, size);
                    self.advance(reg::ESI, a32, delta);
                    self.advance(reg::EDI, a32, delta);
                }
                Kind::Scas => {
                    let b = self.read_mem(bus, SegReg::Es, self.index(reg::EDI, a32), size)?;
                    let a = self.get_reg(0, size as u8);
                    self.sub(a, b, 0, size);
                    self.advance(reg::EDI, a32, delta);
                }
                Kind::Lods => {
                    let v = self.read_mem(bus, src_seg, self.index(reg::ESI, a32), size)?;
                    self.set_reg(0, size as u8, v);
                    self.advance(reg::ESI, a32, delta);
                }
                Kind::Stos => {
                    let v = self.get_reg(0, size as u8);
                    self.write_mem(bus, SegReg::Es, self.index(reg::EDI, a32), size, v)?;
                    self.advance(reg::EDI, a32, delta);
                }
                Kind::Ins => {
                    let port = self.get_reg(2, 2) as u16;
                    self.check_io(bus, port, size)?;
                    // The destination is probed before the port is read.
                    let di = self.index(reg::EDI, a32);
                    self.seg_linear(SegReg::Es, di, size, true)?;
                    let v = bus.io_read(port, size as u8);
                    self.write_mem(bus, SegReg::Es, di, size, v)?;
                    self.advance(reg::EDI, a32, delta);
                }
                Kind::Outs => {
                    let port = self.get_reg(2, 2) as u16;
                    self.check_io(bus, port, size)?;
                    let v = self.read_mem(bus, src_seg, self.index(reg::ESI, a32), size)?;
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
