//! `bossnas` — the command-line face of the BossNAS library.
//!
//! Every command returns a clear error and a non-zero exit status on bad input; nothing
//! panics with a backtrace on user error.

mod arch_cmd;
mod nats_cmd;
mod retrain_cmd;
mod search_cmd;
mod space_cmd;
mod train_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Block-wisely self-supervised NAS (BossNAS) on Burn.
#[derive(Debug, Parser)]
#[command(name = "bossnas", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Search spaces: sizes, populations, enumeration.
    #[command(subcommand)]
    Space(space_cmd::SpaceCommand),
    /// Single architectures: cost (parameters, MAdds).
    #[command(subcommand)]
    Arch(arch_cmd::ArchCommand),
    /// NATS-Bench SSS ground truth: rank correlations and reports.
    #[command(subcommand)]
    Nats(nats_cmd::NatsCommand),
    /// Train a supernet block by block with ensemble bootstrapping.
    Train(train_cmd::TrainArgs),
    /// Rate the block a trained run's newest checkpoint is training (population centre).
    Rate(search_cmd::RateArgs),
    /// Block-wise search from a run's rankings, optionally under a MAdds/parameter budget.
    Search(search_cmd::SearchArgs),
    /// Retrain an architecture with a supervised recipe (checkpoints, resume, export).
    Retrain(retrain_cmd::RetrainArgs),
    /// Top-1/top-5 of a retrained run, checkpoint or exported network.
    Eval(retrain_cmd::EvalArgs),
    /// Retrain NATS-SSS networks briefly and correlate with the NATS-Bench ground truth.
    RetrainSanity(retrain_cmd::SanityArgs),
}

fn main() -> ExitCode {
    // Reuse freed tensor buffers instead of re-faulting them (docs/performance.md).
    bossnas_blocks::cpu_alloc::keep_freed_memory();
    restore_sigpipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Space(cmd) => space_cmd::run(cmd),
        Command::Arch(cmd) => arch_cmd::run(cmd),
        Command::Nats(cmd) => nats_cmd::run(cmd),
        Command::Train(args) => train_cmd::run(args),
        Command::Rate(args) => search_cmd::rate(args),
        Command::Search(args) => search_cmd::search(args),
        Command::Retrain(args) => retrain_cmd::retrain_run(args),
        Command::Eval(args) => retrain_cmd::eval(args),
        Command::RetrainSanity(args) => retrain_cmd::sanity(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", error_text(&err));
            ExitCode::from(2)
        }
    }
}

/// Rust ignores SIGPIPE, so `println!` to a closed pipe (`bossnas … | head -1`) panics.
/// A command-line tool should end quietly instead, as `cat` does.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called once at start-up, before any thread is spawned; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The error and its causes, each said once: library errors that wrap another (`#[from]`)
/// already print it, so a cause whose text is already there is left out.
fn error_text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if text.contains(&s) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&s);
    }
    text
}
