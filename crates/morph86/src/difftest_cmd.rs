//! `morph86 difftest host` and `morph86 difftest engines`.

use anyhow::{anyhow, Result};
use std::process::ExitCode;

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub fn host(count: u64, seed: u64, show: usize) -> Result<ExitCode> {
    use morph86_difftest::host::oracle;
    let start = std::time::Instant::now();
    let rep =
        oracle::run(count, seed, show).map_err(|e| anyhow!("host oracle unavailable: {e}"))?;
    for f in &rep.failures {
        print!("{f}");
    }
    println!("{:<12} {:>10} {:>8}", "class", "cases", "failed");
    for (class, (n, fail)) in &rep.by_class {
        println!("{:<12} {:>10} {:>8}", format!("{class:?}"), n, fail);
    }
    println!(
        "cases where the host raised an exception: {}",
        rep.host_faults
    );
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{count} cases in {secs:.1}s ({:.0} cases/s), seed {seed}",
        count as f64 / secs.max(1e-9)
    );
    println!("difftest: {} passed, {} failed", rep.passed, rep.failed);
    Ok(if rep.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
pub fn host(_count: u64, _seed: u64, _show: usize) -> Result<ExitCode> {
    Err(anyhow!("the host-CPU oracle needs an x86-64 Linux host"))
}

/// `difftest engines`: the JIT against the interpreter in lockstep.
pub fn engines(count: u64, seed: u64, show: usize, jobs: usize) -> Result<ExitCode> {
    let start = std::time::Instant::now();
    let rep = morph86_difftest::engines::run_jobs(count, seed, show, jobs);
    for f in &rep.failures {
        println!("{}", f.what);
    }
    eprintln!(
        "{count} cases in {:.1}s, seed {seed}; {:.1} % of the JIT's {} instructions ran translated",
        start.elapsed().as_secs_f64(),
        100.0 * rep.native as f64 / rep.total.max(1) as f64,
        rep.total
    );
    println!("difftest: {} passed, {} failed", rep.passed, rep.failed);
    Ok(if rep.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
