//! Random code in ring 0 and ring 3: every outcome must be a modelled fault,
//! a halt or a reset, never a panic of the host.

use crate::bus::FlatRam;
use crate::interp::{Cpu, StepOutcome};
use crate::model::CpuModel;
use crate::state::{reg, SegReg, Segment};

/// Counts of what happened during a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RobustnessReport {
    /// Steps taken (instructions or delivered events).
    pub steps: u64,
    /// Exceptions delivered to the guest.
    pub exceptions: u64,
    /// Triple faults (each followed by a modelled reset into fresh random code;
    /// a run also restarts every 20,000 steps).
    pub resets: u64,
    /// HLTs (each followed by a reset too).
    pub halts: u64,
}

/// xorshift64: the seeded source of the random programs and states that
/// the robustness run and the engine lockstep tests use.
#[derive(Clone, Debug)]
pub struct Xorshift(pub u64);

impl Xorshift {
    /// The next value (the state must not be 0). Not an `Iterator`: the
    /// sequence never ends and callers want values, not options.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A random computing x87 encoding (one `fpu::host::host_form` knows):
    /// a memory form whose ModRM has the mod and r/m bits of `mem_modrm`,
    /// or with `None` a register form. Returns the escape byte and ModRM.
    pub fn x87_form(&mut self, mem_modrm: Option<u8>) -> (u8, u8) {
        use crate::fpu::host::{host_form, HostForm};
        loop {
            let op = 0xD8 + self.below(8) as u8;
            let (modrm, ok): (u8, fn(Option<HostForm>) -> bool) = match mem_modrm {
                Some(m) => (m & 0xC7 | (self.below(8) as u8) << 3, |f| {
                    matches!(f, Some(HostForm::Read(_) | HostForm::Write(_)))
                }),
                None => (0xC0 | self.below(64) as u8, |f| f.is_some()),
            };
            if ok(host_form(op, modrm)) {
                return (op, modrm);
            }
        }
    }
}

/// Runs `steps` steps of random bytes on a P6 CPU with 4 MiB of random RAM:
/// descriptor tables, IDT and page tables are random too, half of the resets
/// start in flat ring 0, the other half in ring 3, some with paging on.
pub fn run_random_code(seed: u64, steps: u64) -> RobustnessReport {
    let mut rng = Xorshift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut ram = FlatRam::new(4 << 20);
    let mut rep = RobustnessReport::default();
    let mut cpu = Cpu::new(CpuModel::P6);
    let reset = |cpu: &mut Cpu, ram: &mut FlatRam, rng: &mut Xorshift, round: u64| {
        let bytes = ram.bytes_mut();
        for chunk in bytes.chunks_mut(8) {
            let v = rng.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        *cpu = Cpu::new(CpuModel::P6);
        let s = &mut cpu.state;
        match round % 4 {
            0 => {
                // Real mode at a random place.
                s.load_seg_real(SegReg::Cs, (rng.next() & 0x3FFF) as u16);
                s.eip = (rng.next() & 0xFFFF) as u32;
            }
            r => {
                s.set_flat32(r == 1);
                s.eip = (rng.next() as u32) & 0x3F_FFFF;
                s.gdtr.base = (rng.next() as u32) & 0x3F_F000;
                s.gdtr.limit = 0xFFF;
                s.idtr.base = (rng.next() as u32) & 0x3F_F000;
                s.idtr.limit = 0x7FF;
                s.tr = Segment {
                    base: (rng.next() as u32) & 0x3F_F000,
                    limit: 0x67,
                    selector: 0x28,
                    attr: 0x8B,
                };
                s.regs[reg::ESP] = (rng.next() as u32) & 0x3F_FFFF;
                if r == 3 {
                    s.cr3 = (rng.next() as u32) & 0x3F_F000;
                    s.cr0 |= 0x8000_0000;
                    s.cr4 = (rng.next() as u32) & 0x9B;
                }
            }
        }
    };
    reset(&mut cpu, &mut ram, &mut rng, 0);
    let mut round = 0;
    while rep.steps < steps {
        rep.steps += 1;
        match cpu.step(&mut ram) {
            StepOutcome::Executed => {}
            StepOutcome::Exception(_) => rep.exceptions += 1,
            o @ (StepOutcome::Halted | StepOutcome::TripleFault(_)) => {
                if matches!(o, StepOutcome::Halted) {
                    rep.halts += 1;
                } else {
                    rep.resets += 1;
                }
                round += 1;
                reset(&mut cpu, &mut ram, &mut rng, round);
            }
        }
        // Start afresh now and then, so many starting states are covered.
        if rep.steps % 20_000 == 0 {
            round += 1;
            reset(&mut cpu, &mut ram, &mut rng, round);
        }
        // Sometimes interrupt the random program with an external interrupt.
        if rep.steps % 997 == 0 && cpu.interrupts_enabled() {
            let v = (rng.next() & 0xFF) as u8;
            if let StepOutcome::TripleFault(_) = cpu.inject_interrupt(&mut ram, v) {
                rep.resets += 1;
                round += 1;
                reset(&mut cpu, &mut ram, &mut rng, round);
            }
        }
    }
    rep
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_code_never_panics() {
        let steps = std::env::var("MORPH86_ROBUSTNESS_STEPS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300_000);
        let rep = super::run_random_code(1, steps);
        println!("{rep:?}");
        assert_eq!(rep.steps, steps);
        assert!(rep.exceptions > 0 && rep.resets + rep.halts > 0, "{rep:?}");
    }
}
