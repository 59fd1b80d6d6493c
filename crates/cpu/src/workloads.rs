//! Fixed workloads for measuring morph86, shared by the criterion benches
//! and `morph86 bench`.

use crate::{Cpu, CpuModel, FlatRam, StepOutcome};

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
    while !matches!(
        cpu.step(ram),
        StepOutcome::Halted | StepOutcome::TripleFault(_)
    ) {}
    cpu.icount - start
}

/// Pages touched per round by [`paging_mix`] and the stride between them.
pub const PAGING_STRIDE: u32 = 0x1040;

/// A paging-heavy loop: with 4 KiB pages identity-mapping 32 MiB, touch
/// `pages` pages per round (a load and a read-modify-write each), `rounds`
/// times. Two memory accesses per page; 6 instructions per page.
///
/// ```text
/// mov ecx, rounds
/// outer: mov esi, 0x400000 ; mov edx, pages
/// inner: mov eax,[esi] ; add [esi+4],eax ; add esi, STRIDE ; dec edx ; jnz inner
///        dec ecx ; jnz outer ; hlt
/// ```
pub fn paging_mix(pages: u32, rounds: u32) -> Vec<u8> {
    let mut c = vec![0xB9];
    c.extend(rounds.to_le_bytes());
    c.extend([0xBE, 0x00, 0x00, 0x40, 0x00]); // outer: mov esi,0x400000
    c.push(0xBA);
    c.extend(pages.to_le_bytes()); // mov edx,pages
    c.extend([0x8B, 0x06]); // inner: mov eax,[esi]
    c.extend([0x01, 0x46, 0x04]); // add [esi+4],eax
    c.extend([0x81, 0xC6]);
    c.extend(PAGING_STRIDE.to_le_bytes()); // add esi,STRIDE
    c.extend([0x4A, 0x75, 0xF2]); // dec edx; jnz inner
    c.extend([0x49, 0x75, 0xE5]); // dec ecx; jnz outer
    c.push(0xF4);
    c
}

/// A machine with 32 MiB of RAM, paging on and every page identity-mapped
/// with 4 KiB pages (directory at 0x100000, tables from 0x101000).
pub fn paged_machine(code: &[u8]) -> (Cpu, FlatRam) {
    use crate::Bus;
    let mut ram = FlatRam::new(32 << 20);
    let tables = 8;
    for t in 0..tables {
        Bus::write_u32(&mut ram, 0x10_0000 + 4 * t, (0x10_1000 + 0x1000 * t) | 3);
        for p in 0..1024 {
            Bus::write_u32(
                &mut ram,
                0x10_1000 + 0x1000 * t + 4 * p,
                ((t * 1024 + p) << 12) | 3,
            );
        }
    }
    ram.bytes_mut()[CODE as usize..CODE as usize + code.len()].copy_from_slice(code);
    let mut cpu = Cpu::new(CpuModel::P6);
    cpu.state.set_flat32(true);
    cpu.state.cr3 = 0x10_0000;
    cpu.state.cr0 |= 0x8000_0000;
    cpu.state.eip = CODE;
    (cpu, ram)
}

/// Page directories of [`context_switch_mix`]: two copies of the same map.
pub const SWITCH_DIRS: [u32; 2] = [0x10_0000, 0x10_9000];

/// Two "processes" taking turns: load CR3 with one directory, touch
/// `pages` pages, switch to the other, touch them again; `rounds` times.
/// Both directories map the same pages, so every TLB miss after a switch is
/// a refill that cached address spaces can avoid. Needs [`paged_machine`]
/// plus [`add_second_directory`].
pub fn context_switch_mix(pages: u32, rounds: u32) -> Vec<u8> {
    let mut c = vec![0xB9];
    c.extend(rounds.to_le_bytes()); // mov ecx, rounds
    let top = c.len();
    let mut calls = Vec::new();
    for dir in SWITCH_DIRS {
        c.push(0xB8);
        c.extend(dir.to_le_bytes()); // mov eax, dir
        c.extend([0x0F, 0x22, 0xD8]); // mov cr3, eax
        c.push(0xE8); // call touch
        calls.push(c.len());
        c.extend([0, 0, 0, 0]);
    }
    c.push(0x49); // dec ecx
    c.push(0x0F);
    c.push(0x85); // jnz top
    let rel = top as i32 - (c.len() as i32 + 4);
    c.extend(rel.to_le_bytes());
    c.push(0xF4); // hlt
    let touch = c.len();
    for at in calls {
        let rel = touch as i32 - (at as i32 + 4);
        c[at..at + 4].copy_from_slice(&rel.to_le_bytes());
    }
    c.extend([0xBE, 0x00, 0x00, 0x40, 0x00]); // mov esi, 0x400000
    c.push(0xBA);
    c.extend(pages.to_le_bytes()); // mov edx, pages
    c.extend([0x8B, 0x06]); // t: mov eax,[esi]
    c.extend([0x81, 0xC6, 0x00, 0x10, 0x00, 0x00]); // add esi, 0x1000
    c.extend([0x4A, 0x75, 0xF5]); // dec edx; jnz t
    c.push(0xC3); // ret
    c
}

/// Copies the directory of [`paged_machine`] to the second address of
/// [`SWITCH_DIRS`] and gives the CPU a stack.
pub fn add_second_directory(cpu: &mut Cpu, ram: &mut FlatRam) {
    let (a, b) = (SWITCH_DIRS[0] as usize, SWITCH_DIRS[1] as usize);
    let bytes = ram.bytes_mut();
    bytes.copy_within(a..a + 4096, b);
    cpu.state.regs[4] = 0x8_0000;
}

/// TLB misses per address-space switch on [`context_switch_mix`] with a TLB
/// that keeps `spaces` address spaces (1: a plain TLB).
pub fn refills_per_switch(spaces: usize, pages: u32, rounds: u32) -> f64 {
    let (mut cpu, mut ram) = paged_machine(&context_switch_mix(pages, rounds));
    add_second_directory(&mut cpu, &mut ram);
    cpu.tlb = crate::mmu::Tlb::with_spaces(spaces);
    run_to_halt(&mut cpu, &mut ram);
    cpu.tlb.misses as f64 / cpu.tlb.switches.max(1) as f64
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

    #[test]
    fn paging_mix_runs_and_misses_when_it_exceeds_the_tlb() {
        let (mut cpu, mut ram) = paged_machine(&paging_mix(4096, 2));
        let n = run_to_halt(&mut cpu, &mut ram);
        assert_eq!(n, 1 + 2 * (2 + 5 * 4096 + 2) + 1);
        assert!(cpu.tlb.misses > 8000, "{}", cpu.tlb.misses);
        let (mut cpu, mut ram) = paged_machine(&paging_mix(256, 8));
        run_to_halt(&mut cpu, &mut ram);
        assert!(cpu.tlb.hits > 10 * cpu.tlb.misses);
    }

    #[test]
    fn cached_address_spaces_avoid_refills_after_switches() {
        let plain = refills_per_switch(1, 64, 50);
        let shadow = refills_per_switch(4, 64, 50);
        assert!(
            plain > 60.0,
            "a plain TLB refills every page after a switch: {plain}"
        );
        assert!(
            shadow < 5.0,
            "cached spaces refill almost nothing: {shadow}"
        );
    }
}
