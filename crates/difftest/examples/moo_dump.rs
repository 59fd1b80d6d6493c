//! Prints one MOO test and what the interpreter does with it, step by step.
//!
//! `cargo run --release -p morph86-difftest --example moo_dump -- FILE INDEX 8086|80286`

use morph86_cpu::{Cpu, CpuModel, FlatRam, SegReg, StepOutcome};
use morph86_difftest::moo::MooFile;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: moo_dump FILE INDEX CPU");
        std::process::exit(2);
    }
    let moo = match MooFile::load(std::path::Path::new(&args[1])) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let idx: usize = args[2].parse().unwrap_or(0);
    let model: CpuModel = args[3].parse().unwrap_or(CpuModel::I8086);
    let Some(t) = moo.tests.get(idx) else {
        eprintln!("no test {idx}");
        std::process::exit(1);
    };
    println!("{} bytes {:02X?}", t.name, t.bytes);
    println!("init {:?}", t.init.regs);
    println!("fina {:?}", t.fina.regs);
    println!("excp {:?}", t.exception);
    println!("init ram {:05X?}", t.init.ram);
    println!("fina ram {:05X?}", t.fina.ram);
    let mut ram = FlatRam::new(if model == CpuModel::I8086 {
        1 << 20
    } else {
        1 << 24
    });
    for &(a, v) in &t.init.ram {
        ram.bytes_mut()[a as usize] = v;
    }
    let r = t.init.regs;
    let mut cpu = Cpu::new(model);
    let g = |v: Option<u16>| u32::from(v.unwrap_or(0));
    cpu.state.regs = [
        g(r.ax),
        g(r.cx),
        g(r.dx),
        g(r.bx),
        g(r.sp),
        g(r.bp),
        g(r.si),
        g(r.di),
    ];
    for (s, v) in [
        (SegReg::Cs, r.cs),
        (SegReg::Ss, r.ss),
        (SegReg::Ds, r.ds),
        (SegReg::Es, r.es),
    ] {
        cpu.state.load_seg_real(s, v.unwrap_or(0));
    }
    cpu.state.eip = g(r.ip);
    cpu.set_flags_raw(g(r.flags));
    for _ in 0..8 {
        let out = cpu.step(&mut ram);
        let s = &cpu.state;
        println!(
            "{out:?}: cs:ip {:04X}:{:04X} ax {:04X} bx {:04X} cx {:04X} dx {:04X} sp {:04X} bp {:04X} si {:04X} di {:04X} fl {:04X}",
            s.segs[1].selector, s.eip, s.regs[0], s.regs[3], s.regs[1], s.regs[2], s.regs[4], s.regs[5], s.regs[6], s.regs[7], s.eflags
        );
        if matches!(out, StepOutcome::Halted) {
            break;
        }
    }
}
