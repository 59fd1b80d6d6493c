//! Protected-mode unit tests on a tiny hand-built system: GDT, IDT, TSS
//! and paging structures in RAM. Expected values follow the SDM Vol. 3A.

use super::{Cpu, StepOutcome};
use crate::bus::{Bus, FlatRam};
use crate::model::CpuModel;
use crate::state::{attr, reg, SegReg, Segment};

const GDT: u32 = 0x1000;
const IDT: u32 = 0x2000;
const TSS: u32 = 0x3000;
const TSS2: u32 = 0x3100;
const CODE: u32 = 0x10000;
const HANDLER: u32 = 0x11000;

fn desc(base: u32, limit: u32, access: u8, flags: u8) -> u64 {
    let mut d = u64::from(limit & 0xFFFF) | (u64::from(base & 0xFF_FFFF) << 16);
    d |= u64::from(access) << 40;
    d |= u64::from((limit >> 16) & 0xF) << 48;
    d |= u64::from(flags & 0xF) << 52;
    d |= u64::from(base >> 24) << 56;
    d
}

fn gate(sel: u16, off: u32, typ: u8, dpl: u8) -> u64 {
    u64::from(off & 0xFFFF)
        | (u64::from(sel) << 16)
        | (u64::from(0x80 | (dpl << 5) | typ) << 40)
        | (u64::from(off >> 16) << 48)
}

/// A ring-0 flat system with 0x08 code, 0x10 data, 0x1B/0x23 ring-3 code/data,
/// 0x28 a 32-bit TSS (ESP0 = 0x9000) and 0x30 a second TSS.
fn system(code: &[u8]) -> (Cpu, FlatRam) {
    let mut ram = FlatRam::new(4 << 20);
    let gdt = [
        0,
        desc(0, 0xFFFFF, 0x9A, 0xC),
        desc(0, 0xFFFFF, 0x92, 0xC),
        desc(0, 0xFFFFF, 0xFA, 0xC),
        desc(0, 0xFFFFF, 0xF2, 0xC),
        desc(TSS, 0x67, 0x89, 0),
        desc(TSS2, 0x67, 0x89, 0),
    ];
    for (k, d) in gdt.iter().enumerate() {
        Bus::write_u32(&mut ram, GDT + 8 * k as u32, *d as u32);
        Bus::write_u32(&mut ram, GDT + 8 * k as u32 + 4, (*d >> 32) as u32);
    }
    Bus::write_u32(&mut ram, TSS + 4, 0x9000);
    Bus::write_u32(&mut ram, TSS + 8, 0x10);
    Bus::write_u16(&mut ram, TSS + 0x66, 0x68);
    ram.bytes_mut()[CODE as usize..CODE as usize + code.len()].copy_from_slice(code);
    ram.bytes_mut()[HANDLER as usize] = 0xF4; // hlt
    let mut cpu = Cpu::new(CpuModel::P6);
    cpu.state.set_flat32(true);
    cpu.state.gdtr.base = GDT;
    cpu.state.gdtr.limit = 8 * gdt.len() as u32 - 1;
    cpu.state.idtr.base = IDT;
    cpu.state.idtr.limit = 256 * 8 - 1;
    cpu.state.tr = Segment {
        base: TSS,
        limit: 0x67,
        selector: 0x28,
        attr: 0x8B,
    };
    cpu.state.eip = CODE;
    cpu.state.regs[reg::ESP] = 0x8000;
    (cpu, ram)
}

fn set_gate(ram: &mut FlatRam, vec: u32, g: u64) {
    Bus::write_u32(ram, IDT + vec * 8, g as u32);
    Bus::write_u32(ram, IDT + vec * 8 + 4, (g >> 32) as u32);
}

fn run(cpu: &mut Cpu, ram: &mut FlatRam) -> Vec<StepOutcome> {
    let mut out = Vec::new();
    for _ in 0..1000 {
        let o = cpu.step(ram);
        out.push(o);
        if matches!(o, StepOutcome::Halted | StepOutcome::TripleFault(_)) {
            break;
        }
    }
    out
}

fn to_ring3(cpu: &mut Cpu) {
    let code3 = cpu.state.segs[SegReg::Cs as usize];
    cpu.state.segs[SegReg::Cs as usize] = Segment {
        selector: 0x1B,
        attr: code3.attr | (3 << 5),
        ..code3
    };
    for s in [SegReg::Ss, SegReg::Ds, SegReg::Es] {
        let d = cpu.state.segs[s as usize];
        cpu.state.segs[s as usize] = Segment {
            selector: 0x23,
            attr: d.attr | (3 << 5),
            ..d
        };
    }
}

#[test]
fn int_from_ring3_switches_to_the_tss_stack() {
    // int 0x80
    let (mut cpu, mut ram) = system(&[0xCD, 0x80]);
    set_gate(&mut ram, 0x80, gate(0x08, HANDLER, 0xE, 3));
    to_ring3(&mut cpu);
    cpu.state.eflags |= crate::flags::IF;
    let out = run(&mut cpu, &mut ram);
    assert_eq!(out.last(), Some(&StepOutcome::Halted), "{out:?}");
    assert_eq!(cpu.state.segs[SegReg::Cs as usize].selector, 0x08);
    assert_eq!(cpu.state.segs[SegReg::Ss as usize].selector, 0x10);
    assert_eq!(cpu.state.regs[reg::ESP], 0x9000 - 20);
    // Frame: EIP, CS, EFLAGS, ESP, SS (SDM Vol. 3A Figure 6-4).
    let f: Vec<u32> = (0..5)
        .map(|k| Bus::read_u32(&mut ram, 0x9000 - 20 + 4 * k))
        .collect();
    assert_eq!(f[0], CODE + 2);
    assert_eq!(f[1], 0x1B);
    assert_ne!(f[2] & crate::flags::IF, 0);
    assert_eq!(f[3], 0x8000);
    assert_eq!(f[4], 0x23);
    assert_eq!(
        cpu.state.eflags & crate::flags::IF,
        0,
        "interrupt gate clears IF"
    );
}

#[test]
fn int_with_gate_dpl_below_cpl_is_gp() {
    let (mut cpu, mut ram) = system(&[0xCD, 0x80]);
    set_gate(&mut ram, 0x80, gate(0x08, HANDLER, 0xE, 0));
    set_gate(&mut ram, 13, gate(0x08, HANDLER, 0xE, 0));
    to_ring3(&mut cpu);
    let out = run(&mut cpu, &mut ram);
    assert_eq!(
        out[0],
        StepOutcome::Exception(crate::Fault::with_error(13, 0x80 * 8 + 2))
    );
    // Error code on the ring-0 stack below EIP.
    assert_eq!(Bus::read_u32(&mut ram, 0x9000 - 24), 0x80 * 8 + 2);
}

#[test]
fn iret_returns_to_ring3_and_nulls_kernel_data_segments() {
    // Build a ring-3 frame and IRET: push 0x23; push 0x7000; pushfd; push 0x1B; push target; iret
    let target = CODE + 0x100;
    let mut code = vec![0x6A, 0x23, 0x68];
    code.extend(0x7000u32.to_le_bytes());
    code.extend([0x9C, 0x6A, 0x1B, 0x68]);
    code.extend(target.to_le_bytes());
    code.push(0xCF);
    let (mut cpu, mut ram) = system(&code);
    ram.bytes_mut()[target as usize..target as usize + 2].copy_from_slice(&[0x90, 0xF4]);
    set_gate(&mut ram, 13, gate(0x08, HANDLER, 0xE, 0));
    let out = run(&mut cpu, &mut ram);
    assert!(
        out.contains(&StepOutcome::Exception(crate::Fault::with_error(13, 0))),
        "HLT at ring 3 is #GP: {out:?}"
    );
    // Before the #GP, CPL was 3 with SS:ESP from the frame and DS nulled (DPL 0 < CPL 3).
    let frame = 0x9000 - 24;
    assert_eq!(
        Bus::read_u32(&mut ram, frame + 4),
        target + 1,
        "the faulting HLT"
    );
    assert_eq!(Bus::read_u32(&mut ram, frame + 8), 0x1B);
    assert_eq!(Bus::read_u32(&mut ram, frame + 16), 0x7000);
}

#[test]
fn page_fault_reports_cr2_and_error_code_and_sets_accessed_dirty() {
    // Paging: PD at 0x4000, one PT at 0x5000 identity-mapping 4 MiB except page 0x300.
    // mov eax,cr0; or eax,0x80000000; mov cr0,eax; mov byte [0x2000],1; mov dword [0x300000],1
    let mut code = vec![
        0x0F, 0x20, 0xC0, 0x0D, 0, 0, 0, 0x80, 0x0F, 0x22, 0xC0, 0xC6, 0x05,
    ];
    code.extend(0x0000_2000u32.to_le_bytes());
    code.push(1);
    code.extend([0xC7, 0x05]);
    code.extend(0x0030_0000u32.to_le_bytes());
    code.extend(1u32.to_le_bytes());
    let (mut cpu, mut ram) = system(&code);
    Bus::write_u32(&mut ram, 0x4000, 0x5000 | 0x3);
    for p in 0..1024u32 {
        let v = if p == 0x300 { 0 } else { (p << 12) | 0x3 };
        Bus::write_u32(&mut ram, 0x5000 + 4 * p, v);
    }
    set_gate(&mut ram, 14, gate(0x08, HANDLER, 0xE, 0));
    cpu.state.cr3 = 0x4000;
    let out = run(&mut cpu, &mut ram);
    assert!(
        out.contains(&StepOutcome::Exception(crate::Fault::with_error(14, 0x2))),
        "{out:?}"
    );
    assert_eq!(cpu.state.cr2, 0x0030_0000);
    let pte = Bus::read_u32(&mut ram, 0x5000 + 4 * 2);
    assert_eq!(pte & 0x60, 0x60, "A and D set on the written page");
    let pte_code = Bus::read_u32(&mut ram, 0x5000 + 4 * (CODE >> 12));
    assert_eq!(pte_code & 0x60, 0x20, "code page accessed, not dirty");
}

#[test]
fn user_write_to_supervisor_page_is_a_protection_fault() {
    // mov dword [0x2000], 1 at ring 3, page 2 supervisor-only.
    let mut code = vec![0xC7, 0x05];
    code.extend(0x0000_2000u32.to_le_bytes());
    code.extend(1u32.to_le_bytes());
    let (mut cpu, mut ram) = system(&code);
    Bus::write_u32(&mut ram, 0x4000, 0x5000 | 0x7);
    for p in 0..1024u32 {
        let us = if p == 2 { 0 } else { 4 };
        Bus::write_u32(&mut ram, 0x5000 + 4 * p, (p << 12) | 0x3 | us);
    }
    set_gate(&mut ram, 14, gate(0x08, HANDLER, 0xE, 0));
    cpu.state.cr3 = 0x4000;
    cpu.state.cr0 |= 0x8000_0000;
    to_ring3(&mut cpu);
    let out = run(&mut cpu, &mut ram);
    assert_eq!(
        out[0],
        StepOutcome::Exception(crate::Fault::with_error(14, 0x7))
    );
}

#[test]
fn jmp_to_tss_switches_task() {
    // jmp 0x30:0
    let (mut cpu, mut ram) = system(&[0xEA, 0, 0, 0, 0, 0x30, 0x00]);
    // New task: EIP = HANDLER, EAX = 0x1234, flat ring-0 selectors.
    Bus::write_u32(&mut ram, TSS2 + 0x20, HANDLER);
    Bus::write_u32(&mut ram, TSS2 + 0x24, 0x2);
    Bus::write_u32(&mut ram, TSS2 + 0x28, 0x1234);
    Bus::write_u32(&mut ram, TSS2 + 0x38, 0x7000);
    for (k, sel) in [0x10u32, 0x08, 0x10, 0x10, 0x10, 0x10].iter().enumerate() {
        Bus::write_u32(&mut ram, TSS2 + 0x48 + 4 * k as u32, *sel);
    }
    cpu.state.regs[reg::EBX] = 0xABCD;
    let out = run(&mut cpu, &mut ram);
    assert_eq!(out.last(), Some(&StepOutcome::Halted), "{out:?}");
    assert_eq!(cpu.state.tr.selector, 0x30);
    assert_eq!(cpu.state.regs[reg::EAX], 0x1234);
    assert_ne!(cpu.state.cr0 & 8, 0, "CR0.TS set by a task switch");
    // The old task's state was saved, and its busy bit cleared by the JMP.
    assert_eq!(Bus::read_u32(&mut ram, TSS + 0x34), 0xABCD);
    assert_eq!(Bus::read_u32(&mut ram, GDT + 5 * 8 + 4) & 0x200, 0);
    assert_ne!(Bus::read_u32(&mut ram, GDT + 6 * 8 + 4) & 0x200, 0);
    let _ = attr::G;
}

#[test]
fn empty_idt_triple_faults() {
    let (mut cpu, mut ram) = system(&[0x0F, 0x0B]); // ud2
    cpu.state.idtr.limit = 0;
    let out = run(&mut cpu, &mut ram);
    assert!(matches!(out[0], StepOutcome::TripleFault(_)), "{out:?}");
}

#[test]
fn single_step_traps_after_each_instruction() {
    // nop; nop; hlt with TF set and a #DB handler that halts.
    let (mut cpu, mut ram) = system(&[0x90, 0x90, 0xF4]);
    set_gate(&mut ram, 1, gate(0x08, HANDLER, 0xE, 0));
    cpu.state.eflags |= crate::flags::TF;
    let out = run(&mut cpu, &mut ram);
    assert_eq!(out[0], StepOutcome::Exception(crate::Fault::new(1)));
    assert_ne!(cpu.state.dr[6] & (1 << 14), 0, "DR6.BS");
    assert_eq!(
        Bus::read_u32(&mut ram, 0x8000 - 12),
        CODE + 1,
        "trap after the first NOP"
    );
}

/// Two address spaces: A (PD 0x4000) and B (PD 0x7000) share the identity map
/// of the first 4 MiB and map linear 0x400000 to 0x100000 and 0x101000.
fn two_spaces(code: &[u8]) -> (Cpu, FlatRam) {
    let (mut cpu, mut ram) = system(code);
    for p in 0..1024u32 {
        Bus::write_u32(&mut ram, 0x5000 + 4 * p, (p << 12) | 0x3);
    }
    Bus::write_u32(&mut ram, 0x4000, 0x5000 | 3);
    Bus::write_u32(&mut ram, 0x4004, 0x6000 | 3);
    Bus::write_u32(&mut ram, 0x6000, 0x10_0000 | 3);
    Bus::write_u32(&mut ram, 0x7000, 0x5000 | 3);
    Bus::write_u32(&mut ram, 0x7004, 0x8000 | 3);
    Bus::write_u32(&mut ram, 0x8000, 0x10_1000 | 3);
    for (a, v) in [
        (0x10_0000u32, 0x11u32),
        (0x10_1000, 0x22),
        (0x10_2000, 0x33),
    ] {
        Bus::write_u32(&mut ram, a, v);
    }
    cpu.state.cr3 = 0x4000;
    cpu.state.cr0 |= 0x8000_0000;
    cpu.state.regs[reg::EBX] = 0x7000;
    cpu.state.regs[reg::EDX] = 0x4000;
    (cpu, ram)
}

#[test]
fn cached_address_spaces_translate_each_cr3_correctly() {
    // mov eax,[0x400000]; mov cr3,ebx; mov ecx,[0x400000]; mov cr3,edx; mov esi,[0x400000]; hlt
    let mut code = vec![
        0xA1, 0, 0, 0x40, 0, 0x0F, 0x22, 0xDB, 0x8B, 0x0D, 0, 0, 0x40, 0, 0x0F, 0x22, 0xDA, 0x8B,
        0x35, 0, 0, 0x40, 0,
    ];
    code.push(0xF4);
    let (mut cpu, mut ram) = two_spaces(&code);
    run(&mut cpu, &mut ram);
    assert_eq!(
        (
            cpu.state.regs[reg::EAX],
            cpu.state.regs[reg::ECX],
            cpu.state.regs[reg::ESI]
        ),
        (0x11, 0x22, 0x11)
    );
    assert_eq!(cpu.tlb.switches, 2);
    assert_eq!(
        cpu.tlb.reused, 1,
        "switching back to A reuses its translations"
    );
    // The walks set accessed bits in the (tracked) tables; those updates
    // are the walker's own and must not spoil the cached spaces.
    assert_eq!(cpu.tlb.write_drops, 0);
}

#[test]
fn writes_to_an_inactive_spaces_tables_are_seen() {
    // mov eax,[0x400000]; mov cr3,ebx; mov dword [0x6000],0x102003; mov cr3,edx; mov esi,[0x400000]; hlt
    let mut code = vec![
        0xA1, 0, 0, 0x40, 0, 0x0F, 0x22, 0xDB, 0xC7, 0x05, 0, 0x60, 0, 0,
    ];
    code.extend(0x10_2003u32.to_le_bytes());
    code.extend([0x0F, 0x22, 0xDA, 0x8B, 0x35, 0, 0, 0x40, 0, 0xF4]);
    let (mut cpu, mut ram) = two_spaces(&code);
    run(&mut cpu, &mut ram);
    assert_eq!(cpu.state.regs[reg::EAX], 0x11);
    assert_eq!(
        cpu.state.regs[reg::ESI],
        0x33,
        "A's table changed while B ran"
    );
}

#[test]
fn a_write_to_a_tracked_table_drops_the_inactive_space_built_from_it() {
    // Visit A and B once so every table page is tracked, then from B
    // rewrite A's table: mov eax,[0x400000]; mov cr3,ebx; mov ecx,[0x400000];
    // mov cr3,edx; mov edi,[0x400000]; mov cr3,ebx;
    // mov dword [0x6000],0x102003; mov cr3,edx; mov esi,[0x400000]; hlt
    let mut code = vec![
        0xA1, 0, 0, 0x40, 0, 0x0F, 0x22, 0xDB, 0x8B, 0x0D, 0, 0, 0x40, 0, 0x0F, 0x22, 0xDA, 0x8B,
        0x3D, 0, 0, 0x40, 0, 0x0F, 0x22, 0xDB, 0xC7, 0x05, 0, 0x60, 0, 0,
    ];
    code.extend(0x10_2003u32.to_le_bytes());
    code.extend([0x0F, 0x22, 0xDA, 0x8B, 0x35, 0, 0, 0x40, 0, 0xF4]);
    let (mut cpu, mut ram) = two_spaces(&code);
    run(&mut cpu, &mut ram);
    let r = &cpu.state.regs;
    assert_eq!((r[reg::EAX], r[reg::ECX], r[reg::EDI]), (0x11, 0x22, 0x11));
    assert_eq!(r[reg::ESI], 0x33, "A's table changed while B ran");
    assert_eq!(cpu.tlb.write_drops, 1, "A was dropped for the write");
}

#[test]
fn writes_to_the_active_spaces_tables_are_seen_after_a_switch() {
    // mov eax,[0x400000]; mov dword [0x6000],0x102003; mov cr3,ebx; mov cr3,edx; mov esi,[0x400000]; hlt
    let mut code = vec![0xA1, 0, 0, 0x40, 0, 0xC7, 0x05, 0, 0x60, 0, 0];
    code.extend(0x10_2003u32.to_le_bytes());
    code.extend([
        0x0F, 0x22, 0xDB, 0x0F, 0x22, 0xDA, 0x8B, 0x35, 0, 0, 0x40, 0, 0xF4,
    ]);
    let (mut cpu, mut ram) = two_spaces(&code);
    run(&mut cpu, &mut ram);
    assert_eq!(cpu.state.regs[reg::ESI], 0x33);
}

#[test]
fn segment_limit_covers_the_last_byte_and_expand_down_excludes_the_limit() {
    // mov eax, es:[ebx]; hlt; mov eax, es:[eax]; hlt
    let (mut cpu, mut ram) = system(&[0x26, 0x8B, 0x03, 0xF4, 0x26, 0x8B, 0x00, 0xF4]);
    set_gate(&mut ram, 13, gate(0x08, HANDLER, 0xE, 0));
    let small = Segment {
        base: 0x20_0000,
        limit: 0xFF,
        selector: 0x38,
        attr: 0x4093,
    };
    for (ebx, attr, faults) in [
        (0xFCu32, 0x4093u16, false),
        (0xFD, 0x4093, true),
        (0xFFF, 0x4097, true),
        (0x1000, 0x4097, false),
    ] {
        let (mut c, mut r) = (Cpu::new(CpuModel::P6), ram.bytes().to_vec());
        c.state = cpu.state.clone();
        let mut ram2 = FlatRam::new(r.len());
        ram2.bytes_mut().copy_from_slice(&r);
        r.clear();
        c.state.segs[SegReg::Es as usize] = Segment {
            attr,
            limit: if attr == 0x4097 { 0xFFF } else { 0xFF },
            ..small
        };
        c.state.regs[reg::EBX] = ebx;
        let out = c.step(&mut ram2);
        // The same with the address in EAX, which is also the destination.
        c.state.eip = CODE + 4;
        c.state.regs[reg::EAX] = ebx;
        let out2 = c.step(&mut ram2);
        assert_eq!(
            matches!(out2, StepOutcome::Exception(_)),
            faults,
            "eax {ebx:#x} attr {attr:#x}: {out2:?}"
        );
        assert_eq!(
            matches!(out, StepOutcome::Exception(_)),
            faults,
            "ebx {ebx:#x} attr {attr:#x}: {out:?}"
        );
    }
    let _ = run(&mut cpu, &mut ram);
}
