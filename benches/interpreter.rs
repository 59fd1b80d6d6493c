//! Interpreter throughput on a fixed instruction mix (instructions/second).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use morph86_cpu::workloads::{integer_mix, machine, run_to_halt};

fn interpreter(c: &mut Criterion) {
    let code = integer_mix(10_000);
    let (mut cpu, mut ram) = machine(&code);
    let per_run = run_to_halt(&mut cpu, &mut ram);
    let mut g = c.benchmark_group("interpreter");
    g.throughput(Throughput::Elements(per_run));
    g.bench_function("integer_mix", |b| {
        b.iter(|| {
            let (mut cpu, mut ram) = machine(&code);
            run_to_halt(&mut cpu, &mut ram)
        })
    });
    g.finish();
}

criterion_group!(benches, interpreter);
criterion_main!(benches);
