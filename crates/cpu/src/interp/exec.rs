//! Instruction dispatch.

use super::alu::{AluOp, ShiftOp};
use super::operand::{gpr, mask, sext, sreg, Loc};
use super::Cpu;
use crate::bus::Bus;
use crate::decode::Decoded;
use crate::fault::{vector, Exec, Fault};
use crate::flags::{self, AF, CF, DF, IF, OF, PF, SF, TF, ZF};
use crate::model::CpuModel;
use crate::state::{reg, SegReg};
use iced_x86::{Mnemonic, OpKind};

impl Cpu {
    /// Evaluates condition code `cc` (the low nibble of Jcc/SETcc/CMOVcc).
    #[inline]
    pub(super) fn cond(&self, cc: u16) -> bool {
        let f = self.state.eflags;
        let (cf, zf, sf, of, pf) = (
            f & CF != 0,
            f & ZF != 0,
            f & SF != 0,
            f & OF != 0,
            f & PF != 0,
        );
        let r = match cc >> 1 {
            0 => of,
            1 => cf,
            2 => zf,
            3 => cf || zf,
            4 => sf,
            5 => pf,
            6 => sf != of,
            _ => zf || (sf != of),
        };
        r ^ (cc & 1 != 0)
    }

    /// Reads operand `n` (for other modules).
    #[inline]
    pub(super) fn read_op_public<B: Bus>(
        &mut self,
        bus: &mut B,
        d: &Decoded,
        n: u32,
        size: u32,
    ) -> Exec<u32> {
        self.read_op(bus, d, n, size)
    }

    /// Reads operand `n` with the size of operand `n`.
    #[inline]
    fn read_op<B: Bus>(&mut self, bus: &mut B, d: &Decoded, n: u32, size: u32) -> Exec<u32> {
        let loc = self.loc(d, n);
        self.read_loc(bus, loc, size)
    }

    /// Executes a decoded instruction; EIP already points past it.
    pub(super) fn exec<B: Bus>(&mut self, bus: &mut B, d: &Decoded, next: u32) -> Exec {
        if d.too_long {
            return Err(Fault::GP0);
        }
        if d.invalid {
            if self.model == CpuModel::I8086 {
                // The 8086 has no #UD; undefined encodings we do not model act as NOP.
                self.state.eip = next;
                return Ok(());
            }
            return Err(Fault::UD);
        }
        self.state.eip = next;
        if d.esc {
            return self.esc(bus, d);
        }
        if matches!(d.opcode, 0xD8..=0xDF | 0x9B | 0x0FAE) {
            return self.exec_x87(bus, d);
        }
        let i = &d.insn;
        let m = i.mnemonic();
        match m {
            Mnemonic::Add => self.alu_rm(bus, d, AluOp::Add),
            Mnemonic::Or => self.alu_rm(bus, d, AluOp::Or),
            Mnemonic::Adc => self.alu_rm(bus, d, AluOp::Adc),
            Mnemonic::Sbb => self.alu_rm(bus, d, AluOp::Sbb),
            Mnemonic::And => self.alu_rm(bus, d, AluOp::And),
            Mnemonic::Sub => self.alu_rm(bus, d, AluOp::Sub),
            Mnemonic::Xor => self.alu_rm(bus, d, AluOp::Xor),
            Mnemonic::Cmp => self.alu_rm(bus, d, AluOp::Cmp),
            Mnemonic::Test => {
                let size = Self::op_size(d, 0);
                let a = self.read_op(bus, d, 0, size)?;
                let b = self.read_op(bus, d, 1, size)?;
                self.logic(a & b, size);
                Ok(())
            }
            Mnemonic::Inc | Mnemonic::Dec => {
                let size = Self::op_size(d, 0);
                let loc = self.loc(d, 0);
                let a = self.read_loc(bus, loc, size)?;
                let r = self.inc_dec(a, m == Mnemonic::Dec, size);
                self.write_loc(bus, loc, size, r)
            }
            Mnemonic::Not => {
                let size = Self::op_size(d, 0);
                let loc = self.loc(d, 0);
                let a = self.read_loc(bus, loc, size)?;
                self.write_loc(bus, loc, size, !a & mask(size))
            }
            Mnemonic::Neg => {
                let size = Self::op_size(d, 0);
                let loc = self.loc(d, 0);
                let a = self.read_loc(bus, loc, size)?;
                let r = self.sub(0, a, 0, size);
                self.write_loc(bus, loc, size, r)
            }
            Mnemonic::Mul | Mnemonic::Imul if i.op_count() == 1 => {
                let size = Self::op_size(d, 0);
                let src = self.read_op(bus, d, 0, size)?;
                let negate = self.model == CpuModel::I8086 && d.rep != 0;
                self.mul1(src, size, m == Mnemonic::Imul, negate);
                Ok(())
            }
            Mnemonic::Imul => {
                let size = Self::op_size(d, 0);
                let (a, b) = if i.op_count() == 3 {
                    (
                        self.read_op(bus, d, 1, size)?,
                        self.read_op(bus, d, 2, size)?,
                    )
                } else {
                    (
                        self.read_op(bus, d, 0, size)?,
                        self.read_op(bus, d, 1, size)?,
                    )
                };
                let r = self.imul2(a, b, size);
                let loc = self.loc(d, 0);
                self.write_loc(bus, loc, size, r)
            }
            Mnemonic::Div | Mnemonic::Idiv => {
                let size = Self::op_size(d, 0);
                let src = self.read_op(bus, d, 0, size)?;
                let negate = self.model == CpuModel::I8086 && d.rep != 0;
                self.div1(src, size, m == Mnemonic::Idiv, negate)
            }
            Mnemonic::Rol
            | Mnemonic::Ror
            | Mnemonic::Rcl
            | Mnemonic::Rcr
            | Mnemonic::Shl
            | Mnemonic::Sal
            | Mnemonic::Shr
            | Mnemonic::Sar => self.shift_rm(bus, d),
            Mnemonic::Shld | Mnemonic::Shrd => {
                let size = Self::op_size(d, 0);
                let loc = self.loc(d, 0);
                let dst = self.read_loc(bus, loc, size)?;
                let src = self.read_op(bus, d, 1, size)?;
                let count = self.read_op(bus, d, 2, 1)?;
                if count & 31 == 0 {
                    return Ok(());
                }
                let r = self.shift_double(m == Mnemonic::Shld, dst, src, count, size);
                self.write_loc(bus, loc, size, r)
            }
            Mnemonic::Daa => {
                self.daa_das(false);
                Ok(())
            }
            Mnemonic::Das => {
                self.daa_das(true);
                Ok(())
            }
            Mnemonic::Aaa => {
                self.aaa_aas(false);
                Ok(())
            }
            Mnemonic::Aas => {
                self.aaa_aas(true);
                Ok(())
            }
            Mnemonic::Aam => self.aam(u32::from(i.immediate8())),
            Mnemonic::Aad => {
                self.aad(u32::from(i.immediate8()));
                Ok(())
            }
            Mnemonic::Salc => {
                let v = if self.flag(CF) { 0xFF } else { 0 };
                self.set_reg(0, 1, v);
                Ok(())
            }
            Mnemonic::Mov => self.mov(bus, d),
            Mnemonic::Movzx | Mnemonic::Movsx => {
                let dsize = Self::op_size(d, 0);
                let ssize = Self::op_size(d, 1);
                let v = self.read_op(bus, d, 1, ssize)?;
                let v = if m == Mnemonic::Movsx {
                    sext(v, ssize)
                } else {
                    v
                };
                let loc = self.loc(d, 0);
                self.write_loc(bus, loc, dsize, v & mask(dsize))
            }
            Mnemonic::Xchg => {
                let size = Self::op_size(d, 0);
                let (l0, l1) = (self.loc(d, 0), self.loc(d, 1));
                let a = self.read_loc(bus, l0, size)?;
                let b = self.read_loc(bus, l1, size)?;
                self.write_loc(bus, l0, size, b)?;
                self.write_loc(bus, l1, size, a)
            }
            Mnemonic::Lea => {
                let size = Self::op_size(d, 0);
                let ea = self.effective_address(d);
                let loc = self.loc(d, 0);
                self.write_loc(bus, loc, size, ea)
            }
            Mnemonic::Lds | Mnemonic::Les | Mnemonic::Lss | Mnemonic::Lfs | Mnemonic::Lgs => {
                if i.op_kind(1) != OpKind::Memory {
                    return Err(Fault::UD);
                }
                let size = if d.op32 { 4 } else { 2 };
                let (sel, off) = self.far_pointer(bus, d)?;
                let target = match m {
                    Mnemonic::Lds => SegReg::Ds,
                    Mnemonic::Les => SegReg::Es,
                    Mnemonic::Lss => SegReg::Ss,
                    Mnemonic::Lfs => SegReg::Fs,
                    _ => SegReg::Gs,
                };
                self.load_segment(bus, target, sel)?;
                let loc = self.loc(d, 0);
                self.write_loc(bus, loc, size, off)
            }
            Mnemonic::Push => self.push_op(bus, d),
            Mnemonic::Pop => self.pop_op(bus, d),
            Mnemonic::Pusha | Mnemonic::Pushad => {
                let size = if m == Mnemonic::Pushad { 4 } else { 2 };
                let mut sp = self.sp();
                let orig_sp = self.get_reg(reg::ESP as u8, size as u8);
                // All eight slots are checked before any is written: a push
                // that would fault (a word wrapping at the stack's limit)
                // leaves memory untouched, as the 80286 captures show.
                let mut probe = sp;
                for _ in 0..8 {
                    probe = self.sp_add(probe, -(size as i32));
                    self.seg_linear(SegReg::Ss, probe, size, true)?;
                }
                for r in 0..8u8 {
                    let v = if r == reg::ESP as u8 {
                        orig_sp
                    } else {
                        self.get_reg(r, size as u8)
                    };
                    sp = self.sp_add(sp, -(size as i32));
                    self.stack_write(bus, sp, size, v)?;
                }
                self.set_sp(sp);
                Ok(())
            }
            Mnemonic::Popa | Mnemonic::Popad => {
                let size = if m == Mnemonic::Popad { 4 } else { 2 };
                let sp = self.sp();
                let mut vals = [0u32; 8];
                for (k, v) in vals.iter_mut().enumerate() {
                    *v = self.stack_read(bus, sp, (k as u32) * size, size)?;
                }
                for (k, v) in vals.iter().enumerate() {
                    let r = 7 - k as u8;
                    if r != reg::ESP as u8 {
                        self.set_reg(r, size as u8, *v);
                    }
                }
                self.set_sp(self.sp_add(sp, 8 * size as i32));
                Ok(())
            }
            Mnemonic::Pushf | Mnemonic::Pushfd => {
                let size = if m == Mnemonic::Pushfd { 4 } else { 2 };
                // VM and RF are never seen in the pushed image.
                let mut v = self.state.eflags & !0x0003_0000;
                if self.state.eflags & Self::VM != 0 && self.iopl() < 3 {
                    if !(self.vme() && size == 2) {
                        return Err(Fault::GP0);
                    }
                    // VME: IF shows VIF, IOPL reads as 3.
                    v = (v & !IF)
                        | if self.state.eflags & Self::VIF != 0 {
                            IF
                        } else {
                            0
                        }
                        | Self::IOPL_MASK;
                }
                self.push(bus, size, v)
            }
            Mnemonic::Popf | Mnemonic::Popfd => {
                let size = if m == Mnemonic::Popfd { 4 } else { 2 };
                if self.state.eflags & Self::VM != 0 && self.iopl() < 3 {
                    if !(self.vme() && size == 2) {
                        return Err(Fault::GP0);
                    }
                    let v = self.stack_read(bus, self.sp(), 0, 2)?;
                    if v & TF != 0 || (v & IF != 0 && self.state.eflags & Self::VIP != 0) {
                        return Err(Fault::GP0);
                    }
                    self.set_sp(self.sp_add(self.sp(), 2));
                    let keep = IF | Self::IOPL_MASK | 0xFFFF_0000;
                    let mut nf = (self.state.eflags & keep) | (v & !keep);
                    nf = if v & IF != 0 {
                        nf | Self::VIF
                    } else {
                        nf & !Self::VIF
                    };
                    self.state.eflags = self.fix_flags(nf);
                    return Ok(());
                }
                let v = self.pop(bus, size)?;
                self.write_flags(v, size, false);
                Ok(())
            }
            Mnemonic::Lahf => {
                let v = self.state.eflags & 0xFF;
                self.set_reg(4, 1, v);
                Ok(())
            }
            Mnemonic::Sahf => {
                let ah = self.get_reg(4, 1);
                self.state.eflags = (self.state.eflags & !0xD5) | (ah & 0xD5);
                Ok(())
            }
            Mnemonic::Cbw => {
                let v = sext(self.get_reg(0, 1), 1);
                self.set_reg(0, 2, v);
                Ok(())
            }
            Mnemonic::Cwde => {
                self.state.regs[reg::EAX] = sext(self.get_reg(0, 2), 2);
                Ok(())
            }
            Mnemonic::Cwd => {
                let v = if self.get_reg(0, 2) & 0x8000 != 0 {
                    0xFFFF
                } else {
                    0
                };
                self.set_reg(reg::EDX as u8, 2, v);
                Ok(())
            }
            Mnemonic::Cdq => {
                self.state.regs[reg::EDX] = ((self.state.regs[reg::EAX] as i32) >> 31) as u32;
                Ok(())
            }
            Mnemonic::Xlatb => {
                let seg = Self::mem_seg(d);
                let bx = if d.addr32 {
                    self.state.regs[reg::EBX]
                } else {
                    self.get_reg(reg::EBX as u8, 2)
                };
                let off = bx.wrapping_add(self.get_reg(0, 1));
                let off = if d.addr32 { off } else { off & 0xFFFF };
                let v = self.read_mem(bus, seg, off, 1)?;
                self.set_reg(0, 1, v);
                Ok(())
            }
            Mnemonic::Bswap => {
                if let Some((idx, size)) = gpr(i.op0_register()) {
                    let v = self.get_reg(idx, size);
                    // With a 16-bit operand the result is undefined; P6 gives 0.
                    let r = if size == 4 { v.swap_bytes() } else { 0 };
                    self.set_reg(idx, size, r);
                }
                Ok(())
            }
            Mnemonic::Cmovo
            | Mnemonic::Cmovno
            | Mnemonic::Cmovb
            | Mnemonic::Cmovae
            | Mnemonic::Cmove
            | Mnemonic::Cmovne
            | Mnemonic::Cmovbe
            | Mnemonic::Cmova
            | Mnemonic::Cmovs
            | Mnemonic::Cmovns
            | Mnemonic::Cmovp
            | Mnemonic::Cmovnp
            | Mnemonic::Cmovl
            | Mnemonic::Cmovge
            | Mnemonic::Cmovle
            | Mnemonic::Cmovg => {
                let size = Self::op_size(d, 0);
                let v = self.read_op(bus, d, 1, size)?;
                if self.cond(d.opcode & 0xF) {
                    let loc = self.loc(d, 0);
                    self.write_loc(bus, loc, size, v)?;
                }
                Ok(())
            }
            Mnemonic::Seto
            | Mnemonic::Setno
            | Mnemonic::Setb
            | Mnemonic::Setae
            | Mnemonic::Sete
            | Mnemonic::Setne
            | Mnemonic::Setbe
            | Mnemonic::Seta
            | Mnemonic::Sets
            | Mnemonic::Setns
            | Mnemonic::Setp
            | Mnemonic::Setnp
            | Mnemonic::Setl
            | Mnemonic::Setge
            | Mnemonic::Setle
            | Mnemonic::Setg => {
                let v = u32::from(self.cond(d.opcode & 0xF));
                let loc = self.loc(d, 0);
                self.write_loc(bus, loc, 1, v)
            }
            Mnemonic::Bt | Mnemonic::Bts | Mnemonic::Btr | Mnemonic::Btc => self.bit_test(bus, d),
            // Without BMI1/ABM (P6), F3 0F BC/BD are BSF/BSR with an ignored REP.
            Mnemonic::Bsf | Mnemonic::Bsr | Mnemonic::Tzcnt | Mnemonic::Lzcnt => {
                let size = Self::op_size(d, 0);
                let v = self.read_op(bus, d, 1, size)? & mask(size);
                if v == 0 {
                    self.state.eflags |= ZF;
                    return Ok(());
                }
                let idx = if matches!(m, Mnemonic::Bsf | Mnemonic::Tzcnt) {
                    v.trailing_zeros()
                } else {
                    31 - v.leading_zeros()
                };
                // Other flags are undefined; P6 computes them from the source.
                self.state.eflags &= !ZF;
                let loc = self.loc(d, 0);
                self.write_loc(bus, loc, size, idx)
            }
            Mnemonic::Cmpxchg => {
                let size = Self::op_size(d, 0);
                let loc = self.loc(d, 0);
                let dst = self.read_loc(bus, loc, size)?;
                let acc = self.get_reg(0, size as u8);
                self.sub(acc, dst, 0, size);
                if acc == dst {
                    let src = self.read_op(bus, d, 1, size)?;
                    self.write_loc(bus, loc, size, src)
                } else {
                    // The destination is written back even on a mismatch.
                    self.write_loc(bus, loc, size, dst)?;
                    self.set_reg(0, size as u8, dst);
                    Ok(())
                }
            }
            Mnemonic::Cmpxchg8b => {
                if i.op_kind(0) != OpKind::Memory {
                    return Err(Fault::UD);
                }
                let seg = Self::mem_seg(d);
                let ea = self.effective_address(d);
                let lo = self.read_mem(bus, seg, ea, 4)?;
                let hi = self.read_mem(bus, seg, ea.wrapping_add(4), 4)?;
                let (eax, edx) = (self.state.regs[reg::EAX], self.state.regs[reg::EDX]);
                if lo == eax && hi == edx {
                    let (ebx, ecx) = (self.state.regs[reg::EBX], self.state.regs[reg::ECX]);
                    self.write_mem(bus, seg, ea, 4, ebx)?;
                    self.write_mem(bus, seg, ea.wrapping_add(4), 4, ecx)?;
                    self.state.eflags |= ZF;
                } else {
                    self.write_mem(bus, seg, ea, 4, lo)?;
                    self.write_mem(bus, seg, ea.wrapping_add(4), 4, hi)?;
                    self.state.regs[reg::EAX] = lo;
                    self.state.regs[reg::EDX] = hi;
                    self.state.eflags &= !ZF;
                }
                Ok(())
            }
            Mnemonic::Xadd => {
                let size = Self::op_size(d, 0);
                let (l0, l1) = (self.loc(d, 0), self.loc(d, 1));
                let dst = self.read_loc(bus, l0, size)?;
                let src = self.read_loc(bus, l1, size)?;
                let sum = self.add(dst, src, 0, size);
                self.write_loc(bus, l1, size, dst)?;
                self.write_loc(bus, l0, size, sum)
            }
            Mnemonic::Clc => {
                self.set_flag(CF, false);
                Ok(())
            }
            Mnemonic::Stc => {
                self.set_flag(CF, true);
                Ok(())
            }
            Mnemonic::Cmc => {
                self.state.eflags ^= CF;
                Ok(())
            }
            Mnemonic::Cld => {
                self.set_flag(DF, false);
                Ok(())
            }
            Mnemonic::Std => {
                self.set_flag(DF, true);
                Ok(())
            }
            Mnemonic::Cli | Mnemonic::Sti => {
                let sti = m == Mnemonic::Sti;
                if self.state.protected_mode() && u32::from(self.state.cpl()) > self.iopl() {
                    // VME / PVI (SDM Vol. 3A §20.4): the virtual interrupt flag instead.
                    if self.vme() || self.pvi() {
                        if sti && self.state.eflags & Self::VIP != 0 {
                            return Err(Fault::GP0);
                        }
                        self.set_flag(Self::VIF, sti);
                        return Ok(());
                    }
                    return Err(Fault::GP0);
                }
                if sti && !self.flag(IF) {
                    // STI delays interrupts until after the next instruction.
                    self.shadow = super::Shadow::Sti;
                }
                self.set_flag(IF, sti);
                Ok(())
            }
            // Hint NOPs (0F 18-1F, prefetch hints) execute as NOP on the P6.
            Mnemonic::Nop
            | Mnemonic::Pause
            | Mnemonic::Prefetchnta
            | Mnemonic::Prefetcht0
            | Mnemonic::Prefetcht1
            | Mnemonic::Prefetcht2
            | Mnemonic::Reservednop => Ok(()),
            Mnemonic::Hlt => {
                if self.state.cpl() != 0 {
                    return Err(Fault::GP0);
                }
                self.state.halted = true;
                Ok(())
            }
            Mnemonic::In | Mnemonic::Out | Mnemonic::Insb | Mnemonic::Insw | Mnemonic::Insd => {
                self.port_io(bus, d)
            }
            Mnemonic::Movsb
            | Mnemonic::Movsw
            | Mnemonic::Movsd
            | Mnemonic::Cmpsb
            | Mnemonic::Cmpsw
            | Mnemonic::Cmpsd
            | Mnemonic::Scasb
            | Mnemonic::Scasw
            | Mnemonic::Scasd
            | Mnemonic::Lodsb
            | Mnemonic::Lodsw
            | Mnemonic::Lodsd
            | Mnemonic::Stosb
            | Mnemonic::Stosw
            | Mnemonic::Stosd
            | Mnemonic::Outsb
            | Mnemonic::Outsw
            | Mnemonic::Outsd => self.string_op(bus, d),
            Mnemonic::Jo
            | Mnemonic::Jno
            | Mnemonic::Jb
            | Mnemonic::Jae
            | Mnemonic::Je
            | Mnemonic::Jne
            | Mnemonic::Jbe
            | Mnemonic::Ja
            | Mnemonic::Js
            | Mnemonic::Jns
            | Mnemonic::Jp
            | Mnemonic::Jnp
            | Mnemonic::Jl
            | Mnemonic::Jge
            | Mnemonic::Jle
            | Mnemonic::Jg => {
                if self.cond(d.opcode & 0xF) {
                    self.jump_near(d)?;
                }
                Ok(())
            }
            Mnemonic::Jcxz | Mnemonic::Jecxz => {
                let c = if m == Mnemonic::Jecxz {
                    self.state.regs[reg::ECX]
                } else {
                    self.get_reg(1, 2)
                };
                if c == 0 {
                    self.jump_near(d)?;
                }
                Ok(())
            }
            Mnemonic::Loop | Mnemonic::Loope | Mnemonic::Loopne => {
                let size = if d.addr32 { 4 } else { 2 };
                let c = self.get_reg(1, size).wrapping_sub(1) & mask(u32::from(size));
                self.set_reg(1, size, c);
                let take = c != 0
                    && match m {
                        Mnemonic::Loope => self.flag(ZF),
                        Mnemonic::Loopne => !self.flag(ZF),
                        _ => true,
                    };
                if take {
                    self.jump_near(d)?;
                }
                Ok(())
            }
            Mnemonic::Jmp => self.jmp(bus, d),
            Mnemonic::Call => self.call(bus, d, next),
            Mnemonic::Ret => {
                let size = if d.op32 { 4 } else { 2 };
                let target = self.pop(bus, size)?;
                if i.op_count() > 0 {
                    let n = u32::from(i.immediate16());
                    self.set_sp(self.sp_add(self.sp(), n as i32));
                }
                self.set_eip_checked(target)
            }
            Mnemonic::Retf => self.retf(bus, d),
            Mnemonic::Iret | Mnemonic::Iretd => self.iret(bus, d),
            Mnemonic::Int => self.software_interrupt(bus, i.immediate8(), true),
            Mnemonic::Int3 => self.software_interrupt(bus, vector::BP, false),
            Mnemonic::Int1 => {
                bus.note_event(crate::bus::CpuEvent::Exception(vector::DB));
                self.deliver_event(bus, vector::DB, None, super::protected::Event::Exception)
            }
            Mnemonic::Into => {
                if self.flag(OF) {
                    self.software_interrupt(bus, vector::OF, false)
                } else {
                    Ok(())
                }
            }
            Mnemonic::Bound => {
                let size = if d.op32 { 4 } else { 2 };
                if i.op_kind(1) != OpKind::Memory {
                    return Err(Fault::UD);
                }
                let v = sext(self.read_op(bus, d, 0, size)?, size) as i32;
                let seg = Self::mem_seg(d);
                let ea = self.effective_address(d);
                let lo = sext(self.read_mem(bus, seg, ea, size)?, size) as i32;
                let hi = sext(self.read_mem(bus, seg, ea.wrapping_add(size), size)?, size) as i32;
                if v < lo || v > hi {
                    return Err(Fault::new(vector::BR));
                }
                Ok(())
            }
            Mnemonic::Enter => self.enter(bus, d),
            Mnemonic::Leave => {
                let size = if d.op32 { 4 } else { 2 };
                let bp = if self.stack32() {
                    self.state.regs[reg::EBP]
                } else {
                    self.get_reg(reg::EBP as u8, 2)
                };
                let v = self.read_mem(bus, SegReg::Ss, bp, size)?;
                self.set_sp(self.sp_add(bp, size as i32));
                self.set_reg(reg::EBP as u8, size as u8, v);
                Ok(())
            }
            _ => self.exec_system(bus, d),
        }
    }

    /// The current IOPL.
    #[inline]
    pub(super) fn iopl(&self) -> u32 {
        (self.state.eflags & flags::IOPL) >> 12
    }

    /// Writes FLAGS from POPF (`iret` false) or IRET: `size` 2 changes only
    /// the low 16 bits; IOPL changes only at CPL 0 and IF only at CPL <= IOPL
    /// (SDM Vol. 2 POPF, IRET). POPF never changes VM, VIF or VIP.
    pub(super) fn write_flags(&mut self, v: u32, size: u32, iret: bool) {
        let old = self.state.eflags;
        let mut keep = if size == 2 { 0xFFFF_0000 } else { Self::VM };
        if !iret {
            keep |= Self::VM | Self::VIF | Self::VIP;
        }
        if self.state.protected_mode() {
            let cpl = u32::from(self.state.cpl());
            if cpl > 0 {
                keep |= flags::IOPL | Self::VIF | Self::VIP;
            }
            if cpl > self.iopl() {
                keep |= IF;
            }
        }
        let mut merged = (old & keep) | (v & !keep);
        if !iret {
            merged &= !Self::RF;
        }
        self.state.eflags = self.fix_flags(merged);
    }

    fn alu_rm<B: Bus>(&mut self, bus: &mut B, d: &Decoded, op: AluOp) -> Exec {
        let size = Self::op_size(d, 0);
        let dst = self.loc(d, 0);
        let a = self.read_loc(bus, dst, size)?;
        let b = self.read_op(bus, d, 1, size)?;
        let r = self.alu(op, a, b, size);
        if op != AluOp::Cmp {
            self.write_loc(bus, dst, size, r)?;
        }
        Ok(())
    }

    fn shift_rm<B: Bus>(&mut self, bus: &mut B, d: &Decoded) -> Exec {
        let i = &d.insn;
        let size = Self::op_size(d, 0);
        let loc = self.loc(d, 0);
        let v = self.read_loc(bus, loc, size)?;
        let count = if i.op_count() < 2 {
            1
        } else {
            match i.op_kind(1) {
                OpKind::Register => self.get_reg(1, 1),
                _ => u32::from(i.immediate8()),
            }
        };
        let count = if self.model == CpuModel::I8086 {
            count
        } else {
            count & 31
        };
        let op = match (d.modrm_reg, self.model) {
            (6, CpuModel::I8086) => ShiftOp::Setmo,
            (0, _) => ShiftOp::Rol,
            (1, _) => ShiftOp::Ror,
            (2, _) => ShiftOp::Rcl,
            (3, _) => ShiftOp::Rcr,
            (4, _) | (6, _) => ShiftOp::Shl,
            (5, _) => ShiftOp::Shr,
            _ => ShiftOp::Sar,
        };
        if count == 0 {
            // No flags change and, on real chips, the operand is still written.
            return self.write_loc(bus, loc, size, v);
        }
        let r = self.shift(op, v, count, size);
        self.write_loc(bus, loc, size, r)
    }

    fn mov<B: Bus>(&mut self, bus: &mut B, d: &Decoded) -> Exec {
        let i = &d.insn;
        if i.op_kind(0) == OpKind::Register {
            let r0 = i.op0_register();
            if let Some(s) = sreg(r0) {
                let v = self.read_op(bus, d, 1, 2)? as u16;
                if s == SegReg::Cs && self.model != CpuModel::I8086 {
                    return Err(Fault::UD);
                }
                self.load_segment(bus, s, v)?;
                if s == SegReg::Ss {
                    self.shadow = super::Shadow::MovSs;
                }
                return Ok(());
            }
            if gpr(r0).is_none() {
                return self.mov_system(bus, d);
            }
        }
        if i.op_kind(1) == OpKind::Register {
            let r1 = i.op1_register();
            if let Some(s) = sreg(r1) {
                let sel = u32::from(self.state.segs[s as usize].selector);
                let size = Self::op_size(d, 0);
                let loc = self.loc(d, 0);
                // A register destination takes the zero-extended selector.
                return self.write_loc(
                    bus,
                    loc,
                    if matches!(loc, Loc::Mem(..)) { 2 } else { size },
                    sel,
                );
            }
            if gpr(r1).is_none() {
                return self.mov_system(bus, d);
            }
        }
        let size = Self::op_size(d, 0);
        let v = self.read_op(bus, d, 1, size)?;
        let loc = self.loc(d, 0);
        self.write_loc(bus, loc, size, v)
    }

    fn push_op<B: Bus>(&mut self, bus: &mut B, d: &Decoded) -> Exec {
        let i = &d.insn;
        let size = if d.op32 { 4 } else { 2 };
        let v = match i.op_kind(0) {
            OpKind::Register => {
                let r = i.op0_register();
                if let Some(s) = sreg(r) {
                    u32::from(self.state.segs[s as usize].selector)
                } else if r == iced_x86::Register::SP && self.model == CpuModel::I8086 {
                    // The 8086 pushes SP after decrementing it.
                    self.get_reg(reg::ESP as u8, 2).wrapping_sub(2) & 0xFFFF
                } else {
                    let (idx, s) = gpr(r).unwrap_or((0, 2));
                    self.get_reg(idx, s)
                }
            }
            _ => self.read_op(bus, d, 0, size)?,
        };
        self.push(bus, size, v)
    }

    fn pop_op<B: Bus>(&mut self, bus: &mut B, d: &Decoded) -> Exec {
        let i = &d.insn;
        let size = if d.op32 { 4 } else { 2 };
        if i.op_kind(0) == OpKind::Register {
            if let Some(s) = sreg(i.op0_register()) {
                let sp = self.sp();
                let v = self.stack_read(bus, sp, 0, size)? as u16;
                self.load_segment(bus, s, v)?;
                self.set_sp(self.sp_add(sp, size as i32));
                if s == SegReg::Ss {
                    self.shadow = super::Shadow::MovSs;
                }
                return Ok(());
            }
            let v = self.pop(bus, size)?;
            let loc = self.loc(d, 0);
            return self.write_loc(bus, loc, size, v);
        }
        // POP to memory: the address is computed with the incremented SP.
        let sp = self.sp();
        let v = self.stack_read(bus, sp, 0, size)?;
        self.set_sp(self.sp_add(sp, size as i32));
        if self.model == CpuModel::I80286 {
            // The 80286 keeps the incremented SP when the store faults.
            self.commit_regs();
        }
        let loc = self.loc(d, 0);
        self.write_loc(bus, loc, size, v)
    }

    fn bit_test<B: Bus>(&mut self, bus: &mut B, d: &Decoded) -> Exec {
        let i = &d.insn;
        let size = Self::op_size(d, 0);
        let bits = size * 8;
        let (loc, bit) = match (i.op_kind(0), i.op_kind(1)) {
            (OpKind::Memory, OpKind::Register) => {
                // A register bit offset is signed and may reach outside the operand.
                let off = self.read_op(bus, d, 1, size)?;
                let off = sext(off, size) as i32;
                let seg = Self::mem_seg(d);
                let ea = self.effective_address(d);
                let delta = (off >> (if size == 4 { 5 } else { 4 })) * size as i32;
                let ea = ea.wrapping_add(delta as u32);
                let ea = if d.addr32 { ea } else { ea & 0xFFFF };
                (Loc::Mem(seg, ea), (off as u32) & (bits - 1))
            }
            _ => {
                let off = self.read_op(bus, d, 1, size)?;
                (self.loc(d, 0), off & (bits - 1))
            }
        };
        let v = self.read_loc(bus, loc, size)?;
        let set = (v >> bit) & 1 != 0;
        self.set_flag(CF, set);
        let r = match i.mnemonic() {
            Mnemonic::Bts => v | (1 << bit),
            Mnemonic::Btr => v & !(1 << bit),
            Mnemonic::Btc => v ^ (1 << bit),
            _ => return Ok(()),
        };
        self.write_loc(bus, loc, size, r)
    }

    fn port_io<B: Bus>(&mut self, bus: &mut B, d: &Decoded) -> Exec {
        let i = &d.insn;
        match i.mnemonic() {
            Mnemonic::In => {
                let size = Self::op_size(d, 0);
                let port = if i.op_kind(1) == OpKind::Register {
                    self.get_reg(2, 2) as u16
                } else {
                    u16::from(i.immediate8())
                };
                self.check_io(bus, port, size)?;
                let v = bus.io_read(port, size as u8);
                let loc = self.loc(d, 0);
                self.write_loc(bus, loc, size, v)
            }
            Mnemonic::Out => {
                let size = Self::op_size(d, 1);
                let port = if i.op_kind(0) == OpKind::Register {
                    self.get_reg(2, 2) as u16
                } else {
                    u16::from(i.immediate8())
                };
                self.check_io(bus, port, size)?;
                let v = self.read_op(bus, d, 1, size)?;
                bus.io_write(port, size as u8, v);
                Ok(())
            }
            _ => self.string_op(bus, d),
        }
    }

    /// I/O permission: CPL <= IOPL, else the TSS bitmap (protected and V86 mode).
    #[inline]
    pub(super) fn check_io<B: Bus>(&mut self, bus: &mut B, port: u16, size: u32) -> Exec {
        self.io_allowed(bus, port, size)?;
        if self.state.dr[7] & 0xFF != 0 {
            self.check_io_breakpoints(port, size);
        }
        Ok(())
    }

    /// An x87 escape on a CPU without a modelled FPU: the 8086 computes the
    /// address and carries on; later chips trap with #NM when CR0.EM is set.
    fn esc<B: Bus>(&mut self, _bus: &mut B, d: &Decoded) -> Exec {
        if self.model == CpuModel::I8086 {
            return Ok(());
        }
        if self.state.cr0 & 0x4 != 0 {
            return Err(Fault::new(vector::NM));
        }
        // The 80286 still checks the memory operand against the segment limit.
        if d.insn.op_kind(0) == OpKind::Memory {
            let size = x87_mem_size(d.opcode as u8, d.modrm_reg);
            if size > 0 {
                self.seg_linear(Self::mem_seg(d), self.effective_address(d), size, false)?;
            }
        }
        Ok(())
    }

    /// Flags that arithmetic leaves defined, for tests.
    pub const ARITH_FLAGS: u32 = CF | PF | AF | ZF | SF | OF;
}

/// Size of the memory operand of x87 escape `op` (D8-DF) with ModRM.reg `r`
/// in 16-bit code; 0 for encodings without a memory operand.
fn x87_mem_size(op: u8, r: u8) -> u32 {
    match (op, r) {
        (0xD8, _) | (0xDA, _) => 4,
        (0xD9, 0 | 2 | 3) => 4,
        (0xD9, 4 | 6) => 14,
        (0xD9, 5 | 7) => 2,
        (0xDB, 0..=3) => 4,
        (0xDB, 5 | 7) => 10,
        (0xDC, _) => 8,
        (0xDD, 0..=3) => 8,
        (0xDD, 4 | 6) => 94,
        (0xDD, 7) => 2,
        (0xDE, _) => 2,
        (0xDF, 0..=3) => 2,
        (0xDF, 4 | 6) => 10,
        (0xDF, 5 | 7) => 8,
        _ => 0,
    }
}
