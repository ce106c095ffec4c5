//! Project automation: `cargo xtask <command>`.
//!
//! `reproduce --suite <name>` runs one of the paper's reproduction suites end to end and writes
//! `reports/<suite>/report.md` and `report.json`.

mod bench;
mod gpu_bundle;
mod search_suite;
mod spaces_suite;
mod suite_report;
mod suites;
mod sweep;
mod throughput;
mod workspace;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::suites::Suite;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "BossNAS project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a reproduction suite (train → rate → search → report) and write
    /// reports/<suite>/report.{md,json}.
    Reproduce(ReproduceArgs),
    /// Training throughput of block 0 of a preset on a device (images/s; GPU vs CPU).
    Throughput(throughput::ThroughputArgs),
    /// Time forward+backward of the real blocks and one training step, against PyTorch when
    /// BENCH_PYTHON is set (`cargo xtask bench`).
    Bench(bench::BenchArgs),
    /// Run a grid of protocol variants × seeds (resumable), one JSON result per point, and
    /// the τ-b-against-CPU-minutes report (docs/search-quality.md).
    Sweep(sweep::SweepArgs),
    /// Build the folder a GPU machine without Rust needs: stripped wgpu binary, Vulkan loader
    /// .debs, CIFAR-10, NATS-SSS ground truth, the PyTorch reference and run.sh (docs/gpu.md).
    GpuBundle(gpu_bundle::GpuBundleArgs),
}

#[derive(Debug, clap::Args)]
struct ReproduceArgs {
    /// Which suite.
    #[arg(long, value_enum)]
    suite: Suite,
    /// A config file layered on the suite's preset (`preset = "<the suite's preset>"` plus the
    /// fields to change); the report embeds the resolved config.
    #[arg(long, conflicts_with = "resume")]
    config: Option<PathBuf>,
    /// Device: cpu, wgpu[:N], cuda[:N] (GPU backends need the `wgpu` / `cuda` cargo feature).
    #[arg(long)]
    device: Option<String>,
    /// Data directory (default: $BOSSNAS_DATA, else ~/.cache/bossnas). CIFAR is unpacked from
    /// ../shared/data or downloaded into it when missing.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Never download; fail with instructions instead.
    #[arg(long)]
    no_download: bool,
    /// Where reports go (`<out>/<suite>/`).
    #[arg(long, default_value = "reports")]
    out: PathBuf,
    /// Where run directories (checkpoints, rankings) go.
    #[arg(long, default_value = "runs")]
    runs: PathBuf,
    /// Continue an interrupted run of this suite from its newest checkpoint.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Stop training after this many optimizer steps (checkpointed; continue with --resume).
    #[arg(long)]
    max_steps: Option<u64>,
    /// Wall-clock training budget in minutes, split over the blocks: a block whose share is
    /// used stops at a step boundary and is rated as usual; the report says how many steps
    /// each block ran.
    #[arg(long, value_name = "MINUTES", value_parser = ensemble_bootstrap::time_budget::parse_minutes)]
    time_budget: Option<std::time::Duration>,
    /// NATS-Bench SSS CIFAR-10 ground truth (default: nats-sss/nats_sss_cifar10.csv in the
    /// data directory; copied from ../shared/data or downloaded from the BossNAS repository
    /// when missing).
    #[arg(long)]
    truth: Option<PathBuf>,
    /// No progress output.
    #[arg(long, conflicts_with = "json_progress")]
    quiet: bool,
    /// Training progress as one JSON object per line on stderr.
    #[arg(long)]
    json_progress: bool,
}

fn main() -> ExitCode {
    // Reuse freed tensor buffers instead of re-faulting them (docs/performance.md).
    bossnas_kernels::cpu_alloc::keep_freed_memory();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Reproduce(args) => reproduce(args),
        Command::Throughput(args) => throughput::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Sweep(args) => sweep::run(args),
        Command::GpuBundle(args) => gpu_bundle::run(args),
    }
}

fn reproduce(args: ReproduceArgs) -> Result<()> {
    let Some(suite) = suites::search_suite(args.suite) else {
        // The only suite without training.
        return spaces_suite::run(&args.out.join("spaces"));
    };
    let opts = search_suite::ReproduceOptions {
        out: args.out,
        runs: args.runs,
        device: args.device,
        config: args.config,
        data: args.data,
        download: !args.no_download,
        max_steps: args.max_steps,
        time_budget: args.time_budget,
        resume: args.resume,
        truth: args.truth,
        quiet: args.quiet,
        json_progress: args.json_progress,
    };
    let dir = search_suite::run(&suite, &opts)?;
    println!("report: {}", dir.join("report.md").display());
    Ok(())
}
