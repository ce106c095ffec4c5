//! `bossnas` — the command-line face of the BossNAS library.
//!
//! Every command returns a clear error and a non-zero exit status on bad input; nothing
//! panics with a backtrace on user error.

mod arch_cmd;
mod locate;
mod nats_cmd;
mod retrain_cmd;
mod search_cmd;
mod space_cmd;
mod train_cmd;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

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
    #[command(
        override_usage = "bossnas train --config <CONFIG> [OPTIONS]\n       bossnas train --resume <RUN DIR> [OPTIONS]"
    )]
    Train(train_cmd::TrainArgs),
    /// Rate the block a trained run's newest checkpoint is training (population centre).
    Rate(search_cmd::RateArgs),
    /// Block-wise search from a run's rankings, optionally under a MAdds/parameter budget.
    Search(search_cmd::SearchArgs),
    /// Retrain an architecture with a supervised recipe (checkpoints, resume, export).
    #[command(
        override_usage = "bossnas retrain --arch <ARCH> --data <DATA> --recipe <RECIPE> [OPTIONS]\n       bossnas retrain --resume <RUN DIR> [--data <DATA>] [OPTIONS]"
    )]
    Retrain(retrain_cmd::RetrainArgs),
    /// Top-1/top-5 of a retrained run, checkpoint or exported network.
    Eval(retrain_cmd::EvalArgs),
    /// Retrain NATS-SSS networks briefly and correlate with the NATS-Bench ground truth.
    RetrainSanity(retrain_cmd::SanityArgs),
}

/// Lists the presets in the help of the options that take one (from the preset tables
/// themselves, so the help cannot go stale).
fn with_presets(cmd: clap::Command) -> clap::Command {
    let train = format!(
        "Required unless --resume: a preset ({}) or a `.toml`/`.json` config file (--resume \
         uses the run's config.resolved.toml)",
        bossnas_config::PRESETS.join(", ")
    );
    let recipe = format!(
        "Required unless --resume: a recipe preset ({}) or a `.toml`/`.json` recipe file",
        bossnas_retrain::recipe::PRESETS.join(", ")
    );
    cmd.mut_subcommand("train", |c| c.mut_arg("config", |a| a.help(train)))
        .mut_subcommand("retrain", |c| c.mut_arg("recipe", |a| a.help(recipe)))
}

fn main() -> ExitCode {
    // Reuse freed tensor buffers instead of re-faulting them (docs/performance.md).
    bossnas_kernels::cpu_alloc::keep_freed_memory();
    restore_sigpipe();
    let cli = Cli::from_arg_matches(&with_presets(Cli::command()).get_matches())
        .unwrap_or_else(|e| e.exit());
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
