//! Unit tests of the interpreter on small hand-assembled programs. The
//! instruction-level ground truth is the real-hardware suites and the host
//! oracle (morph86-difftest); these cover the machinery around them.

use super::{Cpu, StepOutcome};
use crate::bus::FlatRam;
use crate::fault::vector;
use crate::model::CpuModel;
use crate::state::{reg, SegReg};

/// A real-mode CPU with `code` at 1000:0000, SS:SP = 2000:0100 and an IVT
/// whose every vector points at a HLT at 0000:0500.
fn real(model: CpuModel, code: &[u8]) -> (Cpu, FlatRam) {
    let mut ram = FlatRam::new(1 << 20);
    for v in 0..256u32 {
        ram.write_u16(v * 4, 0x0500);
        ram.write_u16(v * 4 + 2, 0);
    }
    ram.write_u8(0x500, 0xF4);
    ram.bytes_mut()[0x10000..0x10000 + code.len()].copy_from_slice(code);
    let mut cpu = Cpu::new(model);
    cpu.state.load_seg_real(SegReg::Cs, 0x1000);
    cpu.state.load_seg_real(SegReg::Ss, 0x2000);
    cpu.state.load_seg_real(SegReg::Ds, 0x3000);
    cpu.state.regs[reg::ESP] = 0x100;
    cpu.state.eip = 0;
    (cpu, ram)
}

fn run_to_halt(cpu: &mut Cpu, ram: &mut FlatRam) -> Vec<StepOutcome> {
    let mut out = Vec::new();
    for _ in 0..10_000 {
        let o = cpu.step(ram);
        out.push(o);
        if matches!(o, StepOutcome::Halted | StepOutcome::TripleFault(_)) {
            break;
        }
    }
    out
}

#[test]
fn sums_an_array_with_a_loop() {
    // mov si,0; mov cx,5; xor ax,ax; l: add al,[si]; inc si; loop l; hlt
    let code = [
        0xBE, 0, 0, 0xB9, 5, 0, 0x31, 0xC0, 0x02, 0x04, 0x46, 0xE2, 0xFB, 0xF4,
    ];
    let (mut cpu, mut ram) = real(CpuModel::P6, &code);
    ram.bytes_mut()[0x30000..0x30005].copy_from_slice(&[1, 2, 3, 4, 5]);
    run_to_halt(&mut cpu, &mut ram);
    assert_eq!(cpu.state.regs[reg::EAX] & 0xFF, 15);
    assert_eq!(cpu.state.regs[reg::ECX] & 0xFFFF, 0);
    assert!(cpu.state.halted);
}

#[test]
fn push_sp_differs_between_8086_and_286() {
    let code = [0x54, 0xF4]; // push sp; hlt
    for (model, want) in [(CpuModel::I8086, 0xFE), (CpuModel::I80286, 0x100)] {
        let (mut cpu, mut ram) = real(model, &code);
        run_to_halt(&mut cpu, &mut ram);
        assert_eq!(ram.read_u16(0x200FE), want, "{model}");
    }
}

#[test]
fn shift_counts_are_masked_from_the_286_on() {
    // mov al,1; mov cl,33; shl al,cl; hlt
    let code = [0xB0, 1, 0xB1, 33, 0xD2, 0xE0, 0xF4];
    let (mut cpu, mut ram) = real(CpuModel::I8086, &code);
    run_to_halt(&mut cpu, &mut ram);
    assert_eq!(cpu.state.regs[reg::EAX] & 0xFF, 0, "8086 shifts 33 times");
    let (mut cpu, mut ram) = real(CpuModel::I80286, &code);
    run_to_halt(&mut cpu, &mut ram);
    assert_eq!(
        cpu.state.regs[reg::EAX] & 0xFF,
        2,
        "286 shifts by 33 & 31 = 1"
    );
}

#[test]
fn undefined_opcode_raises_ud_on_286_but_not_8086() {
    let code = [0x0F, 0xFF, 0xF4];
    let (mut cpu, mut ram) = real(CpuModel::I80286, &code);
    let out = run_to_halt(&mut cpu, &mut ram);
    assert_eq!(out[0], StepOutcome::Exception(crate::Fault::UD));
    // The pushed return address is the faulting instruction.
    assert_eq!(ram.read_u16(0x200FA), 0);
}

#[test]
fn divide_error_return_address_depends_on_model() {
    // xor bl,bl; div bl; hlt
    let code = [0x30, 0xDB, 0xF6, 0xF3, 0xF4];
    for (model, ret) in [
        (CpuModel::I8086, 4u16),
        (CpuModel::I80286, 2),
        (CpuModel::P6, 2),
    ] {
        let (mut cpu, mut ram) = real(model, &code);
        let out = run_to_halt(&mut cpu, &mut ram);
        assert_eq!(
            out[1],
            StepOutcome::Exception(crate::Fault::new(vector::DE)),
            "{model}"
        );
        assert_eq!(ram.read_u16(0x200FA), ret, "{model}");
    }
}

#[test]
fn flags_high_bits_by_model() {
    // pushf; hlt
    let code = [0x9C, 0xF4];
    for (model, high) in [(CpuModel::I8086, 0xF000), (CpuModel::I80286, 0)] {
        let (mut cpu, mut ram) = real(model, &code);
        run_to_halt(&mut cpu, &mut ram);
        assert_eq!(ram.read_u16(0x200FE) & 0xF000, high, "{model}");
    }
}

#[test]
fn self_modifying_code_is_seen() {
    // l: mov byte [cs:target],0x40 (inc ax) ; target: nop ; ... via DS=CS
    // mov ax,cs; mov ds,ax; mov byte [9],0x40; jmp $+2; nop; hlt
    let code = [
        0x8C, 0xC8, 0x8E, 0xD8, 0xC6, 0x06, 0x0B, 0x00, 0x40, 0xEB, 0x00, 0x90, 0xF4,
    ];
    let (mut cpu, mut ram) = real(CpuModel::P6, &code);
    cpu.state.regs[reg::EAX] = 0;
    // Decode the NOP once first so that the cache holds it.
    let mut probe = cpu.state.clone();
    probe.eip = 0x0B;
    let saved = std::mem::replace(&mut cpu.state, probe);
    cpu.step(&mut ram);
    cpu.state = saved;
    run_to_halt(&mut cpu, &mut ram);
    assert_eq!(
        cpu.state.regs[reg::EAX],
        0x1001,
        "the patched INC AX ran (AX was CS=0x1000)"
    );
}

#[test]
fn rep_movsb_yields_and_resumes() {
    // mov ax,0x3000; mov es,ax; mov cx,0x3000; xor si,si; mov di,0x8000; rep movsb; hlt
    let code = [
        0xB8, 0x00, 0x30, 0x8E, 0xC0, 0xB9, 0x00, 0x30, 0x31, 0xF6, 0xBF, 0x00, 0x80, 0xF3, 0xA4,
        0xF4,
    ];
    let (mut cpu, mut ram) = real(CpuModel::P6, &code);
    for i in 0..0x3000usize {
        ram.bytes_mut()[0x30000 + i] = i as u8;
    }
    let out = run_to_halt(&mut cpu, &mut ram);
    // 5 setup instructions, then the REP yields every REP_CHUNK iterations.
    assert!(out.len() > 5 + 0x3000 / super::REP_CHUNK as usize);
    assert_eq!(
        &ram.bytes()[0x38000..0x3B000],
        &ram.bytes()[0x30000..0x33000]
    );
    assert_eq!(cpu.state.regs[reg::ECX] & 0xFFFF, 0);
}

#[test]
fn fault_restores_registers() {
    // On the 286, a word write at offset 0xFFFF faults: POP AX must not have happened.
    // mov bx,0xFFFF; pop ax; mov [bx],ax; hlt
    let code = [0xBB, 0xFF, 0xFF, 0x58, 0x89, 0x07, 0xF4];
    let (mut cpu, mut ram) = real(CpuModel::I80286, &code);
    let out = run_to_halt(&mut cpu, &mut ram);
    assert_eq!(out[2], StepOutcome::Exception(crate::Fault::GP0));
    assert_eq!(ram.read_u16(0x200FC), 4, "return IP of the faulting MOV");
}

#[test]
fn random_bytes_never_panic() {
    let mut x: u64 = 0x853C_49E6_748F_EA9B;
    for model in [CpuModel::I8086, CpuModel::I80286, CpuModel::P6] {
        for round in 0..200 {
            let mut ram = FlatRam::new(1 << 20);
            for b in ram.bytes_mut().iter_mut().take(0x2_0000) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let mut cpu = Cpu::new(model);
            cpu.state.load_seg_real(SegReg::Cs, (round * 0x10) as u16);
            cpu.state.eip = 0;
            if model == CpuModel::P6 && round % 2 == 0 {
                cpu.state.set_flat32(round % 4 == 0);
            }
            for _ in 0..2000 {
                if let StepOutcome::Halted | StepOutcome::TripleFault(_) = cpu.step(&mut ram) {
                    break;
                }
            }
        }
    }
}

#[test]
fn rdpmc_reads_the_p6_counters_and_checks_the_index() {
    let code = [
        0x66, 0xB9, 0xC2, 0, 0, 0, // mov ecx,0xC2 (PERFCTR1)
        0x66, 0xB8, 0x9A, 0x78, 0x56, 0x34, // mov eax,0x3456789A
        0x66, 0xBA, 0x12, 0, 0, 0, // mov edx,0x12
        0x0F, 0x30, // wrmsr
        0x66, 0x31, 0xC0, 0x66, 0x31, 0xD2, // xor eax,eax; xor edx,edx
        0x66, 0xB9, 1, 0, 0, 0, // mov ecx,1
        0x0F, 0x33, // rdpmc
        0x66, 0x89, 0xC6, 0x66, 0x89, 0xD7, // mov esi,eax; mov edi,edx
        0x66, 0xB9, 2, 0, 0, 0, // mov ecx,2
        0x0F, 0x33, // rdpmc: no counter 2 on a P6, #GP
        0xF4,
    ];
    let (mut cpu, mut ram) = real(CpuModel::P6, &code);
    let out = run_to_halt(&mut cpu, &mut ram);
    assert_eq!(
        (cpu.state.regs[reg::ESI], cpu.state.regs[reg::EDI]),
        (0x3456_789A, 0x12)
    );
    assert!(out.contains(&StepOutcome::Exception(crate::Fault::GP0)));
}

/// A page written (so the TLB holds a write pointer to it) and then run as
/// code loses that pointer: a later write must reach the slow path, change
/// the page's code generation and so make the CPU decode it afresh.
#[test]
fn a_page_that_becomes_code_loses_its_tlb_write_pointer() {
    let code = [
        0x2E, 0xC6, 0x06, 0x01, 0x10, 0x01, // mov byte cs:[0x1001], 1
        0xE8, 0xF7, 0x0F, // call 0x1000
        0x2E, 0xC6, 0x06, 0x01, 0x10, 0x02, // mov byte cs:[0x1001], 2
        0xE8, 0xEE, 0x0F, // call 0x1000
        0xF4, // hlt
    ];
    let (mut cpu, mut ram) = real(CpuModel::P6, &code);
    // At 1000:1000, another page: mov al, 0; ret.
    ram.bytes_mut()[0x11000..0x11003].copy_from_slice(&[0xB0, 0x00, 0xC3]);
    run_to_halt(&mut cpu, &mut ram);
    assert!(cpu.state.halted);
    assert_eq!(
        cpu.state.regs[reg::EAX] & 0xFF,
        2,
        "the modified immediate ran"
    );
}

/// Generated code addresses the CPU's context by fixed offsets from one
/// base: the architectural state first, then the run fields after it.
#[test]
fn the_context_head_is_laid_out_for_generated_code() {
    use super::context_offsets as o;
    assert_eq!(o::STATE, 0);
    assert!(o::ICOUNT >= std::mem::size_of::<crate::state::CpuState>());
    assert_eq!(o::BUDGET_END, o::ICOUNT + 8);
    assert_eq!(o::TLB_ENTRIES, o::BUDGET_END + 8);
    assert_eq!(o::A20_MASK, o::TLB_ENTRIES + 8);
    assert_eq!(o::PENDING_EVENTS, o::A20_MASK + 4);
    // The TLB pointer is live after the first instruction.
    let (mut cpu, mut ram) = real(CpuModel::P6, &[0x90, 0xF4]);
    cpu.step(&mut ram);
    assert_eq!(cpu.tlb_entries, cpu.tlb.active_entries());
}

#[test]
fn bulk_rep_movs_and_stos_match_one_by_one() {
    // Real mode with 32-bit addresses (0x67), so that REP MOVS/STOS take the
    // bulk path; a breakpoint armed in DR7 (never hit) forces the
    // one-by-one path, which is the reference. DS = 3000, ES = 3000.
    // mov ax,0x3000; mov es,ax; mov ecx,N; mov esi,S; mov edi,D; mov eax,V;
    // [67 F3 op]; hlt
    let cases: &[(u8, u32, u32, u32)] = &[
        (0xA4, 0x5000, 0x0000, 0x0001), // movsb, overlapping: the pattern repeats
        (0xA4, 0x3001, 0x0003, 0x8000), // movsb, unaligned, across pages
        (0xA5, 0x1800, 0x0100, 0x9002), // movsd
        (0xAA, 0x7000, 0x0000, 0x0FF0), // stosb, more than a chunk
        (0xAB, 0x0C01, 0x0000, 0x0005), // stosd
        (0xAB, 0x4100, 0x0000, 0xC000), // stosd past the 64 KiB limit: #GP midway
        (0xA5, 0x2000, 0xE000, 0x0000), // movsd whose source crosses the limit
    ];
    for &(op, n, s, d) in cases {
        let run = |reference: bool| {
            let mut code = vec![0xB8, 0x00, 0x30, 0x8E, 0xC0, 0x66, 0xB9];
            code.extend_from_slice(&n.to_le_bytes());
            code.extend_from_slice(&[0x66, 0xBE]);
            code.extend_from_slice(&s.to_le_bytes());
            code.extend_from_slice(&[0x66, 0xBF]);
            code.extend_from_slice(&d.to_le_bytes());
            code.extend_from_slice(&[0x66, 0xB8, 0x11, 0x22, 0x33, 0x44, 0x67, 0xF3, op, 0xF4]);
            let (mut cpu, mut ram) = real(CpuModel::P6, &code);
            for i in 0..0x10000usize {
                ram.bytes_mut()[0x30000 + i] = (i * 7 + i / 251) as u8;
            }
            if reference {
                cpu.state.dr[0] = 0xF_FFF0;
                cpu.state.dr[7] = 0x1;
            }
            let out = run_to_halt(&mut cpu, &mut ram);
            (out, cpu.state.regs, ram.bytes()[0x30000..0x40000].to_vec())
        };
        let (bulk, reference) = (run(false), run(true));
        assert_eq!(bulk.0, reference.0, "outcomes, op {op:02x} n {n:#x}");
        assert_eq!(bulk.1, reference.1, "registers, op {op:02x} n {n:#x}");
        assert!(bulk.2 == reference.2, "memory, op {op:02x} n {n:#x}");
    }
}
