//! `morph86`: the command-line front end.

mod conformance_cmd;
mod console;
mod demo;
mod difftest_cmd;
mod display;
mod run_cmd;
mod screen;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// morph86: a full-system x86 PC emulator.
#[derive(Parser)]
#[command(name = "morph86", version, about)]
struct Cli {
    /// Without a command, morph86 boots the built-in demo (as `morph86 run`).
    #[command(subcommand)]
    command: Option<Command>,
}

/// `run`'s options alone, to give plain `morph86` the defaults of
/// `morph86 run`.
#[derive(Parser)]
struct DefaultRun {
    #[command(flatten)]
    run: run_cmd::RunArgs,
}

// Parsed once per process: the size of the `run` variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run a guest: a kernel with --kernel, a firmware boot with --boot,
    /// --bios or drives, else the built-in demo disk through the BIOS.
    Run(Box<run_cmd::RunArgs>),
    /// Run real-hardware single-step test suites (MOO files) against the interpreter.
    Conformance {
        /// MOO files or directories holding them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// CPU model the tests were captured on: 8086 or 80286.
        #[arg(long)]
        cpu: morph86_cpu::CpuModel,
        /// Exit 0 as long as no more than this many tests fail.
        #[arg(long, default_value_t = 0)]
        max_fail: usize,
        /// Worker threads (default: available cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Print the first N failures of each failing file.
        #[arg(long, default_value_t = 3)]
        show: usize,
    },
    /// Measure the interpreter on a fixed instruction mix and print instructions/second.
    Bench {
        /// Loop iterations of the mix (11 instructions each).
        #[arg(long, default_value_t = 2_000_000)]
        iterations: u32,
    },
    /// Differential tests against an oracle.
    Difftest {
        #[command(subcommand)]
        oracle: DifftestOracle,
    },
}

#[derive(Subcommand)]
enum DifftestOracle {
    /// Random 32-bit user-mode instructions, run on the host CPU and on the interpreter.
    Host {
        /// Number of cases.
        #[arg(long, default_value_t = 100_000)]
        count: u64,
        /// Seed of the case generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print up to this many failing cases.
        #[arg(long, default_value_t = 20)]
        show: usize,
    },
    /// Random programs run by the JIT and by the interpreter in lockstep,
    /// the whole CPU state compared after every slice and RAM at the end.
    Engines {
        /// Number of cases.
        #[arg(long, default_value_t = 10_000)]
        count: u64,
        /// Seed of the case generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print up to this many failing cases.
        #[arg(long, default_value_t = 20)]
        show: usize,
        /// Threads to run the cases on (the same cases and report as one).
        #[arg(long, default_value_t = 1)]
        jobs: usize,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        // Without RUST_LOG: errors only, and not wgpu's while it probes
        // the graphics back ends a window may use (a missing GL driver is
        // no error when Vulkan works).
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error,wgpu_hal=off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("morph86: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let Some(command) = cli.command else {
        return run_cmd::run_demo(DefaultRun::parse_from(["morph86"]).run);
    };
    match command {
        Command::Conformance {
            paths,
            cpu,
            max_fail,
            threads,
            show,
        } => conformance_cmd::run(&paths, cpu, max_fail, threads, show),
        Command::Run(args) if run_cmd::wants_kernel(&args) => run_cmd::run(*args),
        Command::Run(args) => run_cmd::run_demo(*args),
        Command::Bench { iterations } => {
            let code = morph86_cpu::workloads::integer_mix(iterations);
            let (mut cpu, mut ram) = morph86_cpu::workloads::machine(&code);
            let start = std::time::Instant::now();
            let n = morph86_cpu::workloads::run_to_halt(&mut cpu, &mut ram);
            let secs = start.elapsed().as_secs_f64();
            let (hits, misses) = cpu.cache_stats();
            println!("integer_mix: {n} instructions in {secs:.3}s = {:.1} M instructions/s (decode cache {hits} hits, {misses} misses)", n as f64 / secs / 1e6);
            // Paging: a working set as large as the TLB, then two address spaces taking turns.
            let (mut cpu, mut ram) = morph86_cpu::workloads::paged_machine(
                &morph86_cpu::workloads::paging_mix(4096, 16),
            );
            let start = std::time::Instant::now();
            let n = morph86_cpu::workloads::run_to_halt(&mut cpu, &mut ram);
            let secs = start.elapsed().as_secs_f64();
            let t = &cpu.tlb;
            println!(
                "paging_mix: {:.1} M instructions/s, TLB hit rate {:.2}% ({} misses)",
                n as f64 / secs / 1e6,
                100.0 * t.hits as f64 / (t.hits + t.misses).max(1) as f64,
                t.misses
            );
            let plain = morph86_cpu::workloads::refills_per_switch(1, 64, 1000);
            let cached = morph86_cpu::workloads::refills_per_switch(
                morph86_cpu::mmu::DEFAULT_SPACES,
                64,
                1000,
            );
            println!("context_switch_mix (64 pages per turn): TLB refills per CR3 switch {plain:.1} with a plain TLB, {cached:.2} with cached address spaces");
            Ok(ExitCode::SUCCESS)
        }
        Command::Difftest {
            oracle: DifftestOracle::Host { count, seed, show },
        } => difftest_cmd::host(count, seed, show),
        Command::Difftest {
            oracle:
                DifftestOracle::Engines {
                    count,
                    seed,
                    show,
                    jobs,
                },
        } => difftest_cmd::engines(count, seed, show, jobs),
    }
}
