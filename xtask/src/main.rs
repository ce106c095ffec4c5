//! Project automation: `cargo xtask <command>`.
//!
//! `reproduce --suite <name>` runs one of the paper's reproduction suites end to end and writes
//! `reports/<suite>/report.md` and `report.json`.

mod bench;
mod spaces_suite;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "BossNAS project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a reproduction suite and write reports/<suite>/report.{md,json}.
    Reproduce {
        /// Which suite.
        #[arg(long, value_enum)]
        suite: Suite,
        /// Where reports go.
        #[arg(long, default_value = "reports")]
        out: PathBuf,
    },
    /// Time forward+backward of the real blocks and one training step, against PyTorch when
    /// BENCH_PYTHON is set. Build with --release: `cargo run --release -p xtask -- bench`.
    Bench(bench::BenchArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Suite {
    /// Sizes of the three spaces and MAdds/params of the named HyTra networks against the
    /// paper's Table 1 (no data, no training; seconds).
    Spaces,
    /// Tiny end-to-end search (needs the Siamese trainer).
    Smoke,
    /// NATS-SSS CIFAR-10 search on 2 CPU cores (needs the Siamese trainer).
    NatsC10Cpu,
}

fn main() -> ExitCode {
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
        Command::Reproduce { suite, out } => match suite {
            Suite::Spaces => spaces_suite::run(&out.join("spaces")),
            Suite::Smoke | Suite::NatsC10Cpu => bail!(
                "suite {suite:?} trains a supernet, and the Siamese trainer is not implemented yet \
                 (issue \"Ensemble-bootstrapping supernet training\"); only `--suite spaces` runs today"
            ),
        },
        Command::Bench(args) => bench::run(args),
    }
}
