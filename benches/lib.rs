//! Fixed workloads for measuring morph86, shared by the criterion benches
//! and `morph86 bench`.

use morph86_cpu::{Cpu, CpuModel, FlatRam, StepOutcome};

/// Where the workload's code is loaded.
pub const CODE: u32 = 0x1000;

/// The integer mix: a loop over an array with loads, stores, ALU, shifts,
/// a multiply and two branches per iteration (11 instructions).
///
/// ```text
/// mov ecx, N ; mov esi, 0x10000 ; mov edi, 0x20000
/// l: add eax,[esi+ecx*4] ; xor edx,eax ; shl edx,3 ; mov [edi+ecx*4],edx
///    imul ebx,eax,7 ; inc ebp ; cmp ecx,5 ; jbe s ; sub eax,1
/// s: dec ecx ; jnz l ; hlt
/// ```
pub fn integer_mix(iterations: u32) -> Vec<u8> {
    let mut c = vec![0xB9];
    c.extend(iterations.to_le_bytes());
    c.extend([0xBE, 0x00, 0x00, 0x01, 0x00]); // mov esi,0x10000
    c.extend([0xBF, 0x00, 0x00, 0x02, 0x00]); // mov edi,0x20000
    c.extend([
        0x03, 0x04, 0x8E, // add eax,[esi+ecx*4]
        0x31, 0xC2, // xor edx,eax
        0xC1, 0xE2, 0x03, // shl edx,3
        0x89, 0x14, 0x8F, // mov [edi+ecx*4],edx
        0x6B, 0xD8, 0x07, // imul ebx,eax,7
        0x45, // inc ebp
        0x83, 0xF9, 0x05, // cmp ecx,5
        0x76, 0x03, // jbe s
        0x83, 0xE8, 0x01, // sub eax,1
        0x49, // s: dec ecx
        0x75, 0xE6, // jnz l
        0xF4, // hlt
    ]);
    c
}

/// A machine ready to run `code` in flat 32-bit ring 0 with 1 MiB of RAM.
pub fn machine(code: &[u8]) -> (Cpu, FlatRam) {
    let mut ram = FlatRam::new(1 << 20);
    ram.bytes_mut()[CODE as usize..CODE as usize + code.len()].copy_from_slice(code);
    let mut cpu = Cpu::new(CpuModel::P6);
    cpu.state.set_flat32(true);
    cpu.state.eip = CODE;
    (cpu, ram)
}

/// Runs until HLT; returns the instructions executed.
pub fn run_to_halt(cpu: &mut Cpu, ram: &mut FlatRam) -> u64 {
    let start = cpu.icount;
    while !matches!(cpu.step(ram), StepOutcome::Halted | StepOutcome::TripleFault(_) | StepOutcome::Unhandled(_)) {}
    cpu.icount - start
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_runs_the_expected_instruction_count() {
        let n = 1000;
        let (mut cpu, mut ram) = machine(&integer_mix(n));
        let count = run_to_halt(&mut cpu, &mut ram);
        // 3 setup + 11 per iteration minus the skipped SUB 5 times + HLT.
        assert_eq!(count, 3 + 11 * u64::from(n) - 5 + 1);
    }
}
