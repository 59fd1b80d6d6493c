//! The binary translator against the interpreter on the same fixed
//! instruction mixes, both driven through the engine interface the machine
//! uses (guest instructions per second). Each iteration runs the program
//! from its start to HLT; the JIT keeps its translations across
//! iterations, as it does across a guest's loop.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use morph86_cpu::workloads::{integer_mix, machine, paged_machine, paging_mix};
use morph86_cpu::{Cpu, Engine, EngineExit, FlatRam, Interpreter, RunRequest};
use morph86_jit::JitEngine;

/// Runs `cpu` to HLT under `engine`; returns the instructions retired.
fn run<E: Engine<FlatRam>>(engine: &mut E, cpu: &mut Cpu, ram: &mut FlatRam) -> u64 {
    let start = cpu.icount;
    loop {
        let req = RunRequest {
            budget: 65_536,
            interrupt_pending: false,
        };
        if matches!(
            engine.run(cpu, ram, req),
            EngineExit::Halted | EngineExit::Shutdown(_)
        ) {
            return cpu.icount - start;
        }
    }
}

fn engines(c: &mut Criterion) {
    type Setup = fn(&[u8]) -> (Cpu, FlatRam);
    let mixes: [(&str, Vec<u8>, Setup); 2] = [
        ("integer_mix", integer_mix(10_000), machine),
        ("paging_mix", paging_mix(512, 20), paged_machine),
    ];
    for (name, code, setup) in mixes {
        let (mut cpu, mut ram) = setup(&code);
        let per_run = run(&mut Interpreter, &mut cpu, &mut ram);
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(per_run));
        g.bench_function("interpreter", |b| {
            b.iter(|| {
                let (mut cpu, mut ram) = setup(&code);
                run(&mut Interpreter, &mut cpu, &mut ram)
            })
        });
        let mut jit = JitEngine::default();
        g.bench_function("jit", |b| {
            b.iter(|| {
                let (mut cpu, mut ram) = setup(&code);
                let n = run(&mut jit, &mut cpu, &mut ram);
                assert_eq!(n, per_run, "the JIT retires what the interpreter does");
                n
            })
        });
        g.finish();
    }
}

criterion_group!(benches, engines);
criterion_main!(benches);
