//! Soft MMU cost: guest memory accesses per second with paging on, for a
//! working set of 256 pages and one of 4096 pages (the TLB's size, so that
//! direct-mapped conflicts with code and stack pages show). The TLB hit rate
//! of each workload is printed once before measuring.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use morph86_cpu::workloads::{paged_machine, paging_mix, run_to_halt};

fn mmu(c: &mut Criterion) {
    let mut g = c.benchmark_group("mmu");
    for (name, pages, rounds) in [
        ("fits_tlb_256_pages", 256u32, 64u32),
        ("tlb_sized_4096_pages", 4096, 4),
    ] {
        let code = paging_mix(pages, rounds);
        let (mut cpu, mut ram) = paged_machine(&code);
        run_to_halt(&mut cpu, &mut ram);
        let t = &cpu.tlb;
        eprintln!(
            "mmu/{name}: TLB hit rate {:.2}% ({} hits, {} misses)",
            100.0 * t.hits as f64 / (t.hits + t.misses) as f64,
            t.hits,
            t.misses
        );
        // Data accesses: a load and a read-modify-write per page.
        g.throughput(Throughput::Elements(
            u64::from(pages) * u64::from(rounds) * 3,
        ));
        g.bench_function(name, |b| {
            b.iter(|| {
                let (mut cpu, mut ram) = paged_machine(&code);
                run_to_halt(&mut cpu, &mut ram)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, mmu);
criterion_main!(benches);
