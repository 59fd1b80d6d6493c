//! `morph86 conformance`.

use anyhow::{bail, Result};
use morph86_cpu::CpuModel;
use morph86_difftest::conformance;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn run(
    paths: &[PathBuf],
    cpu: CpuModel,
    max_fail: usize,
    threads: Option<usize>,
    show: usize,
) -> Result<ExitCode> {
    if cpu == CpuModel::P6 {
        bail!("the single-step suites exist for --cpu 8086 and --cpu 80286");
    }
    let files = conformance::collect_files(paths)?;
    if files.is_empty() {
        bail!("no MOO files found in {paths:?}");
    }
    let threads =
        threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let start = std::time::Instant::now();
    let sum = conformance::run_files(&files, cpu, threads, show);
    let mut by_op: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for f in &sum.files {
        for (k, n) in &f.total_by_opcode {
            by_op.entry(k.clone()).or_default().1 += n;
        }
        for (k, n) in &f.failed_by_opcode {
            by_op.entry(k.clone()).or_default().0 += n;
        }
        if f.failed > 0 && show > 0 {
            println!("{}: {} of {} failed", f.file, f.failed, f.failed + f.passed);
            for line in &f.failures {
                println!("    {line}");
            }
        }
    }
    let failing: Vec<_> = by_op.iter().filter(|(_, (fail, _))| *fail > 0).collect();
    if !failing.is_empty() {
        println!("\n{:<10} {:>8} {:>8}", "opcode", "failed", "tests");
        for (k, (fail, total)) in &failing {
            println!("{k:<10} {fail:>8} {total:>8}");
        }
    }
    for e in &sum.errors {
        println!("error: {e}");
    }
    let mismatched = sum.meta_count_mismatches();
    if mismatched > 0 {
        eprintln!(
            "note: {mismatched} files have a META test_ct that differs from the MOO header's \
             test count (upstream writes a running total there); the header's count was used"
        );
    }
    let (passed, failed) = (sum.passed(), sum.failed());
    let total = passed + failed;
    let rate = if total > 0 {
        100.0 * passed as f64 / total as f64
    } else {
        0.0
    };
    eprintln!(
        "{} files, {:.1}s, pass rate {rate:.3}%",
        files.len(),
        start.elapsed().as_secs_f64()
    );
    println!("{}", sum.line());
    Ok(if sum.ok(max_fail) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
