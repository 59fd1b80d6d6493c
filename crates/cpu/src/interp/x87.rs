//! x87 instruction dispatch: #NM/#MF, memory operands, pointers, control
//! instructions; computing instructions run on the backend (`fpu::host`).
//!
//! Dispatch is by the raw escape byte and ModRM (read back from the code
//! bytes), which is how the x87 opcode map is organised. A computing
//! instruction is executed on the host as the very same encoding (register
//! forms exactly, memory forms with the operand moved to a host buffer).

use super::Cpu;
use crate::bus::Bus;
use crate::decode::Decoded;
use crate::fault::{vector, Exec, Fault};
use crate::flags;
use crate::fpu::host::{self, HostForm};
use crate::fpu::sw;
use crate::state::{reg, SegReg};
use iced_x86::OpKind;

/// CR0.MP.
const CR0_MP: u32 = 1 << 1;
/// CR0.EM.
const CR0_EM: u32 = 1 << 2;
/// CR0.TS.
const CR0_TS: u32 = 1 << 3;
/// CR0.NE.
const CR0_NE: u32 = 1 << 5;

/// EFLAGS bits FCOMI/FUCOMI(P) write (ZF PF CF set, OF SF AF cleared).
const FCOMI_FLAGS: u32 = flags::STATUS;

impl Cpu {
    /// Executes an x87 instruction (D8-DF), WAIT/FWAIT (9B, possibly fused
    /// by the decoder with the following FN* instruction) or FXSAVE/FXRSTOR
    /// (0F AE /0, /1).
    pub(super) fn exec_x87<B: Bus>(&mut self, bus: &mut B, d: &Decoded) -> Exec {
        if d.opcode == 0x0FAE {
            return self.x87_fxsave_fxrstor(bus, d);
        }
        let cr0 = self.state.cr0;
        let (wait, esc) = self.x87_bytes(bus, d)?;
        if wait {
            if cr0 & (CR0_TS | CR0_MP) == CR0_TS | CR0_MP {
                return Err(Fault::new(vector::NM));
            }
            self.x87_check_pending()?;
        }
        let Some((op, modrm)) = esc else {
            return Ok(());
        };
        if cr0 & (CR0_EM | CR0_TS) != 0 {
            return Err(Fault::new(vector::NM));
        }
        let reg = (modrm >> 3) & 7;
        if modrm < 0xC0 {
            self.x87_mem(bus, d, op, modrm, reg)
        } else {
            self.x87_reg(bus, op, modrm, reg)
        }
    }

    /// The x87 state as the FSAVE image translated code loads into the host
    /// FPU to run computing x87 instructions ([`host::host_form`]) natively,
    /// or `None` when they must run here instead: CR0.EM or CR0.TS set
    /// (#NM), or an exception unmasked in the control word (its response,
    /// #MF or FERR#, is the interpreter's to give). With every exception
    /// masked nothing can be pending, so the native instructions neither wait
    /// nor trap, and their results are exactly those of [`host::exec`].
    pub fn x87_native_image(&self) -> Option<[u8; host::IMAGE_LEN]> {
        let f = &self.state.fpu;
        let masked = f.cw & sw::EXCEPTIONS == sw::EXCEPTIONS && !f.pending();
        (self.state.cr0 & (CR0_EM | CR0_TS) == 0 && masked).then(|| f.host_image())
    }

    /// Takes the host FPU's state (FNSAVE) after natively run instructions
    /// that started from [`Cpu::x87_native_image`]. The instruction and data
    /// pointers are the guest's: translated code stores them itself.
    pub fn x87_take_native_image(&mut self, img: &[u8; host::IMAGE_LEN]) {
        self.state.fpu.take_host_image(img);
    }

    /// Finds the WAIT byte and the escape byte + ModRM in the instruction's
    /// code bytes (the decoder does not keep them).
    fn x87_bytes<B: Bus>(&mut self, bus: &mut B, d: &Decoded) -> Exec<(bool, Option<(u8, u8)>)> {
        let cs = self.state.segs[SegReg::Cs as usize];
        let mut bytes = [0u8; 16];
        let len = usize::from(d.len).min(16);
        let user = self.user();
        for (k, b) in bytes.iter_mut().enumerate().take(len) {
            let off = self.start_eip.wrapping_add(k as u32);
            let off = if self.code32() { off } else { off & 0xFFFF };
            let phys = self.translate_lin(bus, cs.base.wrapping_add(off), false, user)?;
            *b = bus.read_u8(phys);
        }
        let is_prefix = |b: u8| {
            matches!(
                b,
                0x26 | 0x2E | 0x36 | 0x3E | 0x64..=0x67 | 0xF0 | 0xF2 | 0xF3
            )
        };
        let mut i = 0;
        let mut wait = false;
        while i < len {
            let b = bytes[i];
            if is_prefix(b) {
                i += 1;
            } else if b == 0x9B && !wait {
                wait = true;
                i += 1;
            } else {
                break;
            }
        }
        if i + 1 < 16 && i < len && (0xD8..=0xDF).contains(&bytes[i]) {
            Ok((wait, Some((bytes[i], bytes[i + 1]))))
        } else {
            Ok((wait, None))
        }
    }

    /// The pending-exception check of a waiting instruction: #MF with
    /// CR0.NE = 1, FERR# (IRQ13 through the platform) with CR0.NE = 0.
    fn x87_check_pending(&mut self) -> Exec {
        if self.state.fpu.pending() {
            if self.state.cr0 & CR0_NE != 0 {
                return Err(Fault::new(vector::MF));
            }
            self.state.fpu.ferr = true;
        }
        Ok(())
    }

    /// Reads `n` bytes at `seg:off` after checking the whole range.
    fn x87_read<B: Bus>(&mut self, bus: &mut B, seg: SegReg, off: u32, out: &mut [u8]) -> Exec {
        let n = out.len() as u32;
        let lin = self.seg_linear(seg, off, n, false)?;
        if !self.model_is_8086() {
            self.probe_lin_range(bus, lin, n, false)?;
        }
        let mut k = 0;
        while k < n {
            let c = if n - k >= 4 {
                4
            } else if n - k >= 2 {
                2
            } else {
                1
            };
            let v = self.read_mem(bus, seg, off.wrapping_add(k), c)?;
            out[k as usize..(k + c) as usize].copy_from_slice(&v.to_le_bytes()[..c as usize]);
            k += c;
        }
        Ok(())
    }

    /// Writes `data` at `seg:off` after checking the whole range, so that a
    /// fault leaves no partial store.
    fn x87_write<B: Bus>(&mut self, bus: &mut B, seg: SegReg, off: u32, data: &[u8]) -> Exec {
        let n = data.len() as u32;
        let lin = self.seg_linear(seg, off, n, true)?;
        if !self.model_is_8086() {
            self.probe_lin_range(bus, lin, n, true)?;
        }
        let mut k = 0;
        while k < n {
            let c = if n - k >= 4 {
                4
            } else if n - k >= 2 {
                2
            } else {
                1
            };
            let mut w = [0u8; 4];
            w[..c as usize].copy_from_slice(&data[k as usize..(k + c) as usize]);
            self.write_mem(bus, seg, off.wrapping_add(k), c, u32::from_le_bytes(w))?;
            k += c;
        }
        Ok(())
    }

    /// True in real-address or virtual-8086 mode (real-mode env layouts).
    fn x87_real_layout(&self) -> bool {
        !self.state.protected_mode() || self.state.eflags & flags::Eflags::VM.bits() != 0
    }

    /// Memory forms.
    fn x87_mem<B: Bus>(&mut self, bus: &mut B, d: &Decoded, op: u8, modrm: u8, reg: u8) -> Exec {
        let seg = Self::mem_seg(d);
        let off = self.effective_address(d);
        let real = self.x87_real_layout();
        let env_len = if d.op32 { 28 } else { 14 };
        match (op, reg) {
            (0xD9, 4) => {
                // FLDENV
                self.x87_check_pending()?;
                let mut b = [0u8; 28];
                self.x87_read(bus, seg, off, &mut b[..env_len])?;
                self.state.fpu.load_env(&b, d.op32, real);
                Ok(())
            }
            (0xD9, 5) => {
                // FLDCW
                self.x87_check_pending()?;
                let v = self.read_mem(bus, seg, off, 2)?;
                self.state.fpu.set_cw(v as u16);
                Ok(())
            }
            (0xD9, 6) => {
                // FNSTENV: store, then mask all exceptions.
                let img = self.state.fpu.env_image(d.op32, real);
                self.x87_write(bus, seg, off, &img)?;
                self.state.fpu.cw |= sw::EXCEPTIONS;
                self.state.fpu.update_summary();
                Ok(())
            }
            (0xD9, 7) => {
                // FNSTCW
                let cw = self.state.fpu.cw;
                self.write_mem(bus, seg, off, 2, u32::from(cw))
            }
            (0xDD, 4) => {
                // FRSTOR
                self.x87_check_pending()?;
                let mut b = [0u8; 108];
                let n = env_len + 80;
                self.x87_read(bus, seg, off, &mut b[..n])?;
                let f = &mut self.state.fpu;
                f.load_env(&b[..env_len], d.op32, real);
                let top = f.top();
                for k in 0..8 {
                    let at = env_len + 10 * k;
                    f.regs[(top + k) & 7].copy_from_slice(&b[at..at + 10]);
                }
                Ok(())
            }
            (0xDD, 6) => {
                // FNSAVE: environment and registers (ST order), then FNINIT.
                let f = &self.state.fpu;
                let mut img = f.env_image(d.op32, real);
                for k in 0..8 {
                    img.extend_from_slice(&f.st(k));
                }
                self.x87_write(bus, seg, off, &img)?;
                self.state.fpu.init();
                Ok(())
            }
            (0xDD, 7) => {
                // FNSTSW m16
                let s = self.state.fpu.sw;
                self.write_mem(bus, seg, off, 2, u32::from(s))
            }
            _ => match host::host_form(op, modrm) {
                Some(u) => self.x87_host(bus, op, modrm, Some((seg, off, u))),
                None => Err(Fault::UD),
            },
        }
    }

    /// Register forms: the computing ones run on the backend (the table is
    /// [`host::host_form`]); the rest are control instructions or #UD.
    fn x87_reg<B: Bus>(&mut self, bus: &mut B, op: u8, modrm: u8, reg: u8) -> Exec {
        if host::host_form(op, modrm).is_some() {
            return self.x87_host(bus, op, modrm, None);
        }
        match (op, reg, modrm & 7) {
            // FENI, FDISI, FSETPM: no-ops since the 387.
            (0xDB, 4, 0 | 1 | 4) => Ok(()),
            (0xDB, 4, 2) => {
                self.state.fpu.clear_exceptions();
                Ok(())
            }
            (0xDB, 4, 3) => {
                self.state.fpu.init();
                Ok(())
            }
            (0xDF, 4, 0) => {
                // FNSTSW AX
                let s = u32::from(self.state.fpu.sw);
                self.set_reg(reg::EAX as u8, 2, s);
                Ok(())
            }
            _ => Err(Fault::UD),
        }
    }

    /// Runs a computing instruction on the backend and commits its result.
    ///
    /// `mem` is the memory operand of memory forms.
    fn x87_host<B: Bus>(
        &mut self,
        bus: &mut B,
        op: u8,
        modrm: u8,
        mem: Option<(SegReg, u32, HostForm)>,
    ) -> Exec {
        self.x87_check_pending()?;
        let mut buf = [0u8; host::MEM_LEN];
        match mem {
            Some((seg, off, HostForm::Read(n))) => {
                self.x87_read(bus, seg, off, &mut buf[..n as usize])?;
            }
            Some((seg, off, HostForm::Write(n))) => {
                self.seg_linear(seg, off, n, true)?;
            }
            _ => {}
        }
        let image = self.state.fpu.host_image();
        let slot = host::slot(op, modrm);
        let in_flags = self.state.eflags & FCOMI_FLAGS;

        let mut img = image;
        let mut out_mem = buf;
        let Some(out_flags) = host::exec(&mut img, &mut out_mem, slot, in_flags) else {
            return Err(Fault::UD);
        };
        let mut store = None;
        if let Some((seg, off, HostForm::Write(n))) = mem {
            let n = n as usize;
            let stored = if out_mem[..n].iter().all(|&b| b == 0) {
                // Zero bytes: a zero result or no store at all? Run again
                // with a different background to tell.
                let mut img2 = image;
                let mut mem2 = [0xFFu8; host::MEM_LEN];
                host::exec(&mut img2, &mut mem2, slot, in_flags);
                !mem2[..n].iter().all(|&b| b == 0xFF)
            } else {
                true
            };
            if stored {
                store = Some((seg, off, n));
            }
        }

        let mut next = self.state.fpu.clone();
        next.take_host_image(&img);
        next.fip = self.start_eip;
        next.fcs = self.state.segs[SegReg::Cs as usize].selector;
        next.fop = (u16::from(op & 7) << 8) | u16::from(modrm);
        if let Some((seg, off, _)) = mem {
            next.fdp = off;
            next.fds = self.state.segs[seg as usize].selector;
        }
        if let Some((seg, off, n)) = store {
            self.x87_write(bus, seg, off, &out_mem[..n])?;
        }
        self.state.fpu = next;
        if modrm >= 0xC0 && matches!(op, 0xDB | 0xDF) && matches!((modrm >> 3) & 7, 5 | 6) {
            // FUCOMI, FCOMI, FUCOMIP, FCOMIP.
            self.state.eflags = (self.state.eflags & !FCOMI_FLAGS) | (out_flags & FCOMI_FLAGS);
        }
        Ok(())
    }

    /// FXSAVE / FXRSTOR (0F AE /0, /1): the legacy x87 part of the 512-byte
    /// area; the MXCSR and XMM fields are not written or used (no SSE).
    fn x87_fxsave_fxrstor<B: Bus>(&mut self, bus: &mut B, d: &Decoded) -> Exec {
        if d.modrm_reg > 1 || d.insn.op_kind(0) != OpKind::Memory {
            return Err(Fault::UD);
        }
        if self.state.cr0 & (CR0_EM | CR0_TS) != 0 {
            return Err(Fault::new(vector::NM));
        }
        let seg = Self::mem_seg(d);
        let off = self.effective_address(d);
        let lin = self.seg_linear(seg, off, 512, d.modrm_reg == 0)?;
        if lin & 15 != 0 {
            return Err(Fault::GP0);
        }
        if d.modrm_reg == 0 {
            let img = self.state.fpu.fxsave_image();
            self.x87_write(bus, seg, off, &img)
        } else {
            let mut b = [0u8; 160];
            self.x87_read(bus, seg, off, &mut b)?;
            self.state.fpu.load_fxsave(&b);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Cpu;
    use crate::bus::{Bus, FlatRam};
    use crate::fault::vector;
    use crate::fpu::{format, sw};
    use crate::model::CpuModel;
    use crate::state::{reg, SegReg};

    /// A real-mode P6 with `code` at 1000:0000 and DS = 3000h.
    fn cpu_with(code: &[u8]) -> (Cpu, FlatRam) {
        let mut ram = FlatRam::new(1 << 20);
        ram.bytes_mut()[0x10000..0x10000 + code.len()].copy_from_slice(code);
        let mut cpu = Cpu::new(CpuModel::P6);
        cpu.state.load_seg_real(SegReg::Cs, 0x1000);
        cpu.state.load_seg_real(SegReg::Ds, 0x3000);
        cpu.state.eip = 0;
        (cpu, ram)
    }

    /// Executes instructions until EIP reaches `end` or one faults.
    fn run(cpu: &mut Cpu, ram: &mut FlatRam, end: u32) -> Result<(), u8> {
        while cpu.state.eip < end {
            cpu.execute_one(ram).map_err(|f| f.vector)?;
        }
        Ok(())
    }

    const FNINIT: [u8; 2] = [0xDB, 0xE3];

    #[test]
    fn push_pop_and_tags() {
        // fninit; fld1; fldpi; faddp st1, st0; fnstsw ax
        let code = [0xDB, 0xE3, 0xD9, 0xE8, 0xD9, 0xEB, 0xDE, 0xC1, 0xDF, 0xE0];
        let (mut cpu, mut ram) = cpu_with(&code);
        run(&mut cpu, &mut ram, 6).unwrap();
        let f = &cpu.state.fpu;
        assert_eq!(f.top(), 6);
        assert_eq!(f.tag, 0xC0);
        assert_eq!(f.st(1), format::ONE);
        assert_eq!(f.full_tag_word(), 0x0FFF);
        run(&mut cpu, &mut ram, code.len() as u32).unwrap();
        let f = &cpu.state.fpu;
        assert_eq!(f.top(), 7);
        assert_eq!(f.tag, 0x80);
        // 1 + pi = 4.14159...: exponent 0x4001.
        assert_eq!(format::split(&f.st(0)).1, 0x4001);
        assert_eq!(cpu.state.regs[reg::EAX] & 0xFFFF, u32::from(f.sw));
        assert_eq!(f.sw & 0x3800, 0x3800);
    }

    #[test]
    fn stack_underflow_gives_indefinite() {
        // fninit; fadd st0, st1 (both empty)
        let code = [0xDB, 0xE3, 0xD8, 0xC1];
        let (mut cpu, mut ram) = cpu_with(&code);
        run(&mut cpu, &mut ram, 4).unwrap();
        let f = &cpu.state.fpu;
        assert_eq!(f.sw & (sw::IE | sw::SF | sw::C1), sw::IE | sw::SF);
        assert_eq!(f.st(0), format::join(true, 0x7FFF, 3 << 62));
        // Pointers: FIP is the FADD, FOP its opcode.
        assert_eq!(f.fip, 2);
        assert_eq!(f.fop, 0x0C1);
        // fld1 on a full stack: overflow, C1 = 1.
        let mut code = FNINIT.to_vec();
        code.extend([0xD9, 0xE8].repeat(9));
        let (mut cpu, mut ram) = cpu_with(&code);
        run(&mut cpu, &mut ram, code.len() as u32).unwrap();
        let f = &cpu.state.fpu;
        assert_eq!(f.sw & (sw::IE | sw::SF | sw::C1), sw::IE | sw::SF | sw::C1);
    }

    #[test]
    fn fstenv_layouts() {
        // fninit; fld1; fnstenv [0x100]; o32 fnstenv [0x200]
        let code = [
            0xDB, 0xE3, 0xD9, 0xE8, 0xD9, 0x36, 0x00, 0x01, 0x66, 0xD9, 0x36, 0x00, 0x02,
        ];
        let (mut cpu, mut ram) = cpu_with(&code);
        run(&mut cpu, &mut ram, code.len() as u32).unwrap();
        let w = |ram: &mut FlatRam, a: u32| ram.read_u16(0x30000 + a);
        // 16-bit real-mode layout: FIP is the linear address 10002h.
        assert_eq!(w(&mut ram, 0x100), 0x037F);
        assert_eq!(w(&mut ram, 0x102), 0x3800);
        assert_eq!(w(&mut ram, 0x104), 0x3FFF);
        assert_eq!(w(&mut ram, 0x106), 0x0002);
        assert_eq!(w(&mut ram, 0x108), 0x1000 | 0x1E8);
        // 32-bit real-mode layout.
        let d = |ram: &mut FlatRam, a: u32| ram.read_u32(0x30000 + a);
        assert_eq!(d(&mut ram, 0x200), 0xFFFF_037F);
        assert_eq!(d(&mut ram, 0x204), 0xFFFF_3800);
        assert_eq!(d(&mut ram, 0x208), 0xFFFF_3FFF);
        assert_eq!(d(&mut ram, 0x20C), 0xFFFF_0002);
        assert_eq!(d(&mut ram, 0x210), (1 << 12) | 0x1E8);
        // FNSTENV masks all exceptions afterwards.
        assert_eq!(cpu.state.fpu.cw & 0x3F, 0x3F);
    }

    #[test]
    fn device_not_available() {
        let code = [0xD9, 0xE8, 0x9B];
        let (mut cpu, mut ram) = cpu_with(&code);
        cpu.state.cr0 |= 4; // EM
        assert_eq!(run(&mut cpu, &mut ram, 2), Err(vector::NM));
        assert_eq!(cpu.state.eip, 0);
        cpu.state.cr0 = (cpu.state.cr0 & !4) | 8; // TS
        assert_eq!(run(&mut cpu, &mut ram, 2), Err(vector::NM));
        // WAIT: #NM only with TS and MP.
        cpu.state.eip = 2;
        run(&mut cpu, &mut ram, 3).unwrap();
        cpu.state.eip = 2;
        cpu.state.cr0 |= 2;
        assert_eq!(run(&mut cpu, &mut ram, 3), Err(vector::NM));
        // WAIT ignores EM.
        cpu.state.cr0 = (cpu.state.cr0 & !0xA) | 4;
        cpu.state.eip = 2;
        run(&mut cpu, &mut ram, 3).unwrap();
    }

    #[test]
    fn unmasked_exception_is_deferred() {
        // fninit; fldcw [0x10] (ZE unmasked); fldz; fld1; fdiv st0, st1; fwait; fnclex; fwait
        let code = [
            0xDB, 0xE3, 0xD9, 0x2E, 0x10, 0x00, 0xD9, 0xEE, 0xD9, 0xE8, 0xD8, 0xF1, 0x9B, 0xDB,
            0xE2, 0x9B,
        ];
        for ne in [true, false] {
            let (mut cpu, mut ram) = cpu_with(&code);
            ram.write_u16(0x30010, 0x037B);
            if ne {
                cpu.state.cr0 |= 0x20;
            }
            run(&mut cpu, &mut ram, 12).unwrap();
            let f = &cpu.state.fpu;
            assert_eq!(f.sw & (sw::ZE | sw::ES | sw::B), sw::ZE | sw::ES | sw::B);
            assert_eq!(f.st(0), format::ONE, "destination unchanged");
            assert_eq!(f.fip, 10);
            if ne {
                assert_eq!(run(&mut cpu, &mut ram, 13), Err(vector::MF));
                assert_eq!(cpu.state.eip, 12);
                cpu.state.eip = 13;
            } else {
                run(&mut cpu, &mut ram, 13).unwrap();
                assert!(cpu.state.fpu.ferr, "FERR# asserted for IRQ13");
            }
            run(&mut cpu, &mut ram, code.len() as u32).unwrap();
            assert!(!cpu.state.fpu.pending());
            assert!(!cpu.state.fpu.ferr);
        }
    }

    #[test]
    fn fbstp_and_fbld() {
        // fninit; fild dword [0x10]; fbstp [0x20]; fbld [0x20]; fistp dword [0x30]
        let code = [
            0xDB, 0xE3, 0xDB, 0x06, 0x10, 0x00, 0xDF, 0x36, 0x20, 0x00, 0xDF, 0x26, 0x20, 0x00,
            0xDB, 0x1E, 0x30, 0x00,
        ];
        let (mut cpu, mut ram) = cpu_with(&code);
        ram.write_u32(0x30010, (-1_234_567i32) as u32);
        run(&mut cpu, &mut ram, 10).unwrap();
        assert_eq!(
            &ram.bytes_mut()[0x30020..0x3002A],
            &[0x67, 0x45, 0x23, 0x01, 0, 0, 0, 0, 0, 0x80]
        );
        assert_eq!(cpu.state.fpu.tag, 0);
        run(&mut cpu, &mut ram, code.len() as u32).unwrap();
        assert_eq!(ram.read_u32(0x30030), (-1_234_567i32) as u32);
    }

    #[test]
    fn faulting_store_changes_nothing() {
        // fninit; fld1; fstp tbyte [0xFFFA] (crosses the 64 KiB limit)
        let code = [0xDB, 0xE3, 0xD9, 0xE8, 0xDB, 0x3E, 0xFA, 0xFF];
        let (mut cpu, mut ram) = cpu_with(&code);
        run(&mut cpu, &mut ram, 4).unwrap();
        let before = cpu.state.fpu.clone();
        assert_eq!(run(&mut cpu, &mut ram, code.len() as u32), Err(vector::GP));
        assert_eq!(cpu.state.fpu, before);
        assert!(ram.bytes_mut()[0x3FFFA..0x40000].iter().all(|&b| b == 0));
    }

    #[test]
    fn fxsave_round_trip_and_alignment() {
        // fninit; fldpi; fxsave [0x100]; fninit; fxrstor [0x100]; fxsave [0x108]
        let code = [
            0xDB, 0xE3, 0xD9, 0xEB, 0x0F, 0xAE, 0x06, 0x00, 0x01, 0xDB, 0xE3, 0x0F, 0xAE, 0x0E,
            0x00, 0x01, 0x0F, 0xAE, 0x06, 0x08, 0x01,
        ];
        let (mut cpu, mut ram) = cpu_with(&code);
        run(&mut cpu, &mut ram, 9).unwrap();
        let saved = cpu.state.fpu.clone();
        assert_eq!(ram.read_u16(0x30100), 0x037F);
        assert_eq!(ram.bytes_mut()[0x30104], 0x80);
        run(&mut cpu, &mut ram, 16).unwrap();
        assert_eq!(cpu.state.fpu.regs, saved.regs);
        assert_eq!(cpu.state.fpu.sw, saved.sw);
        assert_eq!(cpu.state.fpu.tag, saved.tag);
        assert_eq!(run(&mut cpu, &mut ram, code.len() as u32), Err(vector::GP));
    }

    #[test]
    fn fcomi_sets_eflags_and_fcmov_reads_them() {
        // fninit; fld1; fldz; fcomi st0, st1; fcmovb st0, st1
        let code = [0xDB, 0xE3, 0xD9, 0xE8, 0xD9, 0xEE, 0xDB, 0xF1, 0xDA, 0xC1];
        let (mut cpu, mut ram) = cpu_with(&code);
        cpu.state.eflags |= crate::flags::ZF | crate::flags::OF;
        run(&mut cpu, &mut ram, code.len() as u32).unwrap();
        assert_eq!(cpu.state.eflags & crate::flags::STATUS, crate::flags::CF);
        assert_eq!(cpu.state.fpu.st(0), format::ONE);
    }
}
