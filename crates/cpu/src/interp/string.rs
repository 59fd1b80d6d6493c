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

    /// Up to `left` iterations of a forward 32-bit-address REP MOVS or REP
    /// STOS of `size`-byte elements done at once within the current pages,
    /// when every access there would succeed and reach RAM directly (the TLB
    /// grants host pointers: no fault, no MMIO, no code or page-table page
    /// to track). Returns the iterations done (0: take the one-by-one path,
    /// which handles everything else).
    fn bulk_run<B: Bus>(
        &mut self,
        bus: &mut B,
        kind: Kind,
        src_seg: SegReg,
        size: u32,
        left: u32,
    ) -> u32 {
        let user = self.user();
        // Elements that stay within one page from `lin`.
        let in_page = |lin: u32| (4096 - (lin & 0xFFF)) / size;
        let di = self.state.regs[reg::EDI];
        let Ok(dst) = self.seg_linear(SegReg::Es, di, size, true) else {
            return 0;
        };
        let mut n = left.min(in_page(dst));
        let mut src = 0;
        if kind == Kind::Movs {
            let si = self.state.regs[reg::ESI];
            let Ok(s) = self.seg_linear(src_seg, si, size, false) else {
                return 0;
            };
            src = s;
            n = n.min(in_page(src));
        }
        if n == 0 {
            return 0;
        }
        // The segment limits must allow the last element too, without wrap.
        let span = (n - 1) * size;
        let last_ok = |cpu: &Self, seg: SegReg, off: u32, lin: u32| {
            off.checked_add(span).is_some()
                && cpu.seg_linear(
                    seg,
                    off + span,
                    size,
                    kind == Kind::Stos || seg == SegReg::Es,
                ) == Ok(lin.wrapping_add(span))
        };
        if !last_ok(self, SegReg::Es, di, dst) {
            return 0;
        }
        if kind == Kind::Movs && !last_ok(self, src_seg, self.state.regs[reg::ESI], src) {
            return 0;
        }
        // The source is translated first, as the instruction reads it first
        // (a walk sets accessed and dirty bits).
        let mut from = std::ptr::null_mut();
        if kind == Kind::Movs {
            let Ok(e) = self.tlb_entry(bus, src, false, user) else {
                return 0;
            };
            let Some(p) = e.host(src, false, user) else {
                return 0;
            };
            from = p;
        }
        let Ok(e) = self.tlb_entry(bus, dst, true, user) else {
            return 0;
        };
        let Some(to) = e.host(dst, true, user) else {
            return 0;
        };
        let bytes = (n * size) as usize;
        match kind {
            Kind::Stos => {
                let v = self.state.regs[reg::EAX].to_le_bytes();
                // SAFETY: `to` is the host address of `dst` in a RAM page the
                // TLB's write tag vouches for (see `lin_write`), and the
                // `bytes` from it stay within that page (`in_page`).
                let out = unsafe { std::slice::from_raw_parts_mut(to, bytes) };
                for chunk in out.chunks_exact_mut(size as usize) {
                    chunk.copy_from_slice(&v[..size as usize]);
                }
            }
            _ => {
                // A forward copy element by element, as the instruction
                // does: overlapping ranges repeat the pattern.
                for k in 0..bytes {
                    // SAFETY: both ranges lie within RAM pages their TLB tags
                    // vouch for (`in_page` bounds them); byte copies in
                    // order are what REP MOVS does for any overlap.
                    unsafe { *to.add(k) = *from.add(k) };
                }
                self.state.regs[reg::ESI] = self.state.regs[reg::ESI].wrapping_add(n * size);
            }
        }
        self.state.regs[reg::EDI] = di.wrapping_add(n * size);
        self.state.regs[reg::ECX] -= n;
        self.commit_regs();
        n
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
        // REP MOVS and REP STOS forwards through RAM pages: whole runs of
        // iterations at once, with the same results and chunking.
        let bulk = rep
            && a32
            && delta == size
            && matches!(kind, Kind::Movs | Kind::Stos)
            && !matches!(
                self.model,
                crate::model::CpuModel::I8086 | crate::model::CpuModel::I80286
            )
            && self.state.dr[7] & 0xFF == 0;
        loop {
            if rep && self.index(reg::ECX, a32) == 0 {
                break;
            }
            if bulk {
                let left = (REP_CHUNK - iterations).min(self.state.regs[reg::ECX]);
                let done = self.bulk_run(bus, kind, src_seg, size, left);
                if done > 0 {
                    iterations += done;
                    if iterations >= REP_CHUNK && self.state.regs[reg::ECX] != 0 {
                        self.state.eip = self.start_eip;
                        break;
                    }
                    continue;
                }
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
