//! The built-in default guest: a tiny real-mode program that greets through
//! the debug console port (0xE9) and then halts. It shows the CPU running
//! until the PC platform (devices, BIOS, loaders) gives `run` real guests.

use morph86_cpu::{Bus, Cpu, CpuModel, FlatRam, SegReg, StepOutcome};
use std::io::Write;

/// Load address, as for a boot sector.
const ORG: u16 = 0x7C00;

/// The demo program: print the NUL-terminated message at `msg`, then HLT.
fn program() -> Vec<u8> {
    let msg =
        b"Hello from morph86: this text was printed by guest code running on the interpreter.\n\0";
    let code_len = 14u16;
    let mut c = vec![0xBE];
    c.extend((ORG + code_len).to_le_bytes()); // mov si, msg
    c.extend([
        0xFC, // cld
        0xAC, // next: lodsb
        0x84, 0xC0, // test al, al
        0x74, 0x04, // jz done
        0xE6, 0xE9, // out 0xE9, al
        0xEB, 0xF7, // jmp next
        0xF4, // done: hlt
    ]);
    debug_assert_eq!(c.len(), usize::from(code_len));
    c.extend_from_slice(msg);
    c
}

/// RAM plus a debug console on port 0xE9.
struct DemoBus<W: Write> {
    ram: FlatRam,
    out: W,
}

impl<W: Write> Bus for DemoBus<W> {
    fn read_u8(&mut self, addr: u32) -> u8 {
        self.ram.read_u8(addr)
    }
    fn write_u8(&mut self, addr: u32, value: u8) {
        self.ram.write_u8(addr, value);
    }
    fn io_write(&mut self, port: u16, _size: u8, value: u32) {
        if port == 0xE9 {
            // A broken stdout must not crash the emulator; the guest cannot tell.
            let _ = self.out.write_all(&[value as u8]);
        }
    }
    fn mark_code_page(&mut self, page: u32) {
        self.ram.mark_code_page(page)
    }
    fn code_generation(&self, page: u32) -> u32 {
        Bus::code_generation(&self.ram, page)
    }
}

/// Runs the demo, writing the guest's console output to `out`.
/// Returns the number of instructions executed.
pub fn run<W: Write>(out: W) -> anyhow::Result<u64> {
    let mut ram = FlatRam::new(1 << 20);
    let p = program();
    ram.bytes_mut()[usize::from(ORG)..usize::from(ORG) + p.len()].copy_from_slice(&p);
    let mut bus = DemoBus { ram, out };
    let mut cpu = Cpu::new(CpuModel::P6);
    cpu.state.load_seg_real(SegReg::Cs, 0);
    cpu.state.eip = u32::from(ORG);
    loop {
        match cpu.step(&mut bus) {
            StepOutcome::Halted => break,
            StepOutcome::TripleFault(f) => anyhow::bail!("guest triple fault ({f})"),
            _ => {}
        }
        if cpu.icount > 10_000_000 {
            anyhow::bail!("demo did not halt");
        }
    }
    bus.out.flush()?;
    Ok(cpu.icount)
}

#[cfg(test)]
mod tests {
    #[test]
    fn demo_prints_its_greeting() {
        let mut out = Vec::new();
        let n = super::run(&mut out).expect("demo runs");
        let text = String::from_utf8(out).expect("ascii");
        assert!(text.starts_with("Hello from morph86"), "{text}");
        assert!(n > 100);
    }
}
