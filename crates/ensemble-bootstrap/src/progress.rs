//! Progress of training runs.
//!
//! - [`TrainProgress`]: the supernet trainer's report, read by a person on a terminal (one
//!   line per block), by a log (plain lines every [`LOG_EVERY`] and at every block end,
//!   rating and checkpoint) or by a tool (JSON lines); paths in their space's notation
//!   ([`path_label`]).
//! - [`Progress`]: a plain indicatif bar over all steps (supervised retraining). Hidden in
//!   tests ([`Progress::hidden`]); metrics still go to `metrics.jsonl`.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar, or nothing.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar on stderr over `total_steps` optimizer steps, starting at `done`.
    pub fn new(total_steps: u64, done: u64) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total_steps), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} steps (eta {eta}) {msg}",
            )
            .expect("valid progress template")
            .progress_chars("=> "),
        );
        bar.set_position(done);
        Self { bar: Some(bar) }
    }

    /// No output.
    pub fn hidden() -> Self {
        Self { bar: None }
    }

    /// Advances one step and shows the latest figures.
    pub fn step(&self, block: usize, loss: f64, lr: f64, momentum: f64, images_per_s: f64) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "block {block} loss {loss:+.4} lr {lr:.4} m {momentum:.5} {images_per_s:.1} img/s"
            ));
            bar.inc(1);
        }
    }

    /// Advances one step with a free-form message (e.g. supervised retraining figures).
    pub fn step_message(&self, message: impl Into<String>) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.into());
            bar.inc(1);
        }
    }

    /// A line above the bar; nothing when hidden.
    pub fn println(&self, line: impl AsRef<str>) {
        if let Some(bar) = &self.bar {
            bar.println(line.as_ref());
        }
    }

    /// Leaves the bar drawn in its final state.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Training progress: read by a person on a terminal, by a log file, or by a tool.

use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use hytra_space::SpaceKind;

/// How training reports progress (`--quiet`, the default, `--json-progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressFormat {
    /// For people: one live line per block on a terminal; on a log (stderr not a terminal) a
    /// plain line at the first step, every [`LOG_EVERY`] and at every block end, checkpoint
    /// and rating.
    #[default]
    Human,
    /// One JSON object per event and line on stderr (`"event": "step" | "block_end" |
    /// "checkpoint" | "end"`), for tools.
    Json,
}

/// How often a log (no terminal) gets a step line.
pub const LOG_EVERY: Duration = Duration::from_secs(30);

enum Sink {
    Hidden,
    /// A bar per block; finished bars stay on screen as the block's line.
    Terminal(Option<ProgressBar>),
    /// `last`: when the last step line was printed (`None`: none yet, so the first step of
    /// the process shows at once, with its speed).
    Log {
        last: Option<Instant>,
    },
    Json,
}

/// Progress of a supernet training run (see [`ProgressFormat`]).
pub struct TrainProgress {
    sink: Sink,
    space: SpaceKind,
    steps_per_block: u64,
    total_steps: u64,
    started: Instant,
    /// Global step when this process started (for the ETA of a resumed run).
    first_step: u64,
    /// The last checkpoint reported (the run's end re-saves the block end's checkpoint).
    last_checkpoint: Option<std::path::PathBuf>,
}

impl TrainProgress {
    /// `show = false` prints nothing (`--quiet`); otherwise `format` decides.
    pub fn new(
        show: bool,
        format: ProgressFormat,
        space: SpaceKind,
        steps_per_block: u64,
        total_steps: u64,
        done: u64,
    ) -> Self {
        let sink = match (show, format) {
            (false, _) => Sink::Hidden,
            (true, ProgressFormat::Json) => Sink::Json,
            (true, ProgressFormat::Human) if std::io::stderr().is_terminal() => {
                Sink::Terminal(None)
            }
            (true, ProgressFormat::Human) => Sink::Log { last: None },
        };
        Self {
            sink,
            space,
            steps_per_block,
            total_steps,
            started: Instant::now(),
            first_step: done,
            last_checkpoint: None,
        }
    }

    fn elapsed(&self) -> String {
        hms(self.started.elapsed())
    }

    /// Seconds left at this process's pace, once a step has been timed.
    fn eta(&self, global_step: u64) -> Option<Duration> {
        let done = global_step.saturating_sub(self.first_step);
        (done > 0).then(|| {
            let per = self.started.elapsed().as_secs_f64() / done as f64;
            Duration::from_secs_f64(per * self.total_steps.saturating_sub(global_step) as f64)
        })
    }

    /// One optimizer step finished.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        block: usize,
        block_step: u64,
        global_step: u64,
        loss: f64,
        lr: f64,
        momentum: f64,
        images_per_s: f64,
    ) {
        let eta = self.eta(global_step);
        let steps_per_block = self.steps_per_block;
        let elapsed = self.elapsed();
        match &mut self.sink {
            Sink::Hidden => {}
            Sink::Terminal(bar) => {
                let bar = bar.get_or_insert_with(|| block_bar(block, steps_per_block));
                bar.set_position(block_step);
                // ≤ 80 columns: "blk 0 [bar:16] 192/192 " + this + " eta 12m".
                bar.set_message(format!(
                    "loss {loss:+.3} lr {lr:.3} {images_per_s:5.1} im/s eta {}",
                    eta.map_or("?".into(), short)
                ));
            }
            Sink::Log { last } => {
                if last.is_none_or(|t| t.elapsed() >= LOG_EVERY) || block_step == steps_per_block {
                    *last = Some(Instant::now());
                    eprintln!(
                        "[{elapsed}] block {block} step {block_step}/{steps_per_block} loss \
                         {loss:+.4} lr {lr:.4} m {momentum:.5} {images_per_s:.1} img/s eta {}",
                        eta.map_or("?".into(), hms)
                    );
                }
            }
            Sink::Json => json_line(serde_json::json!({
                "event": "step", "block": block, "block_step": block_step,
                "block_steps": steps_per_block, "global_step": global_step,
                "total_steps": self.total_steps, "loss": loss, "lr": lr, "momentum": momentum,
                "images_per_s": images_per_s, "eta_s": eta.map(|d| d.as_secs_f64()),
            })),
        }
    }

    /// A block was rated and its best path chosen among `candidates`.
    pub fn block_end(&mut self, block: usize, best: &[usize], candidates: usize) {
        let label = self.space.path_label(best);
        let elapsed = self.elapsed();
        match &mut self.sink {
            Sink::Hidden => {}
            Sink::Terminal(bar) => {
                let bar = bar
                    .take()
                    .unwrap_or_else(|| block_bar(block, self.steps_per_block));
                bar.set_position(self.steps_per_block);
                bar.finish_with_message(format!("best {label} of {candidates} ({elapsed})"));
                // indicatif leaves the cursor on the finished line: the next block's bar (or
                // the command's result) starts on a line of its own.
                eprintln!();
            }
            Sink::Log { .. } => eprintln!(
                "[{elapsed}] block {block} rated: best {label} of {candidates} candidates"
            ),
            Sink::Json => json_line(serde_json::json!({
                "event": "block_end", "block": block, "best": label, "path": best,
                "candidates": candidates,
            })),
        }
    }

    /// A checkpoint was written.
    pub fn checkpoint(&mut self, global_step: u64, dir: &Path) {
        if self.last_checkpoint.as_deref() == Some(dir) {
            return;
        }
        self.last_checkpoint = Some(dir.to_path_buf());
        let elapsed = self.elapsed();
        match &self.sink {
            // The bar line is the block's; checkpoints are in the run directory.
            Sink::Hidden | Sink::Terminal(_) => {}
            Sink::Log { .. } => eprintln!(
                "[{elapsed}] checkpoint at step {global_step}: {}",
                dir.display()
            ),
            Sink::Json => json_line(serde_json::json!({
                "event": "checkpoint", "global_step": global_step, "dir": dir,
            })),
        }
    }

    /// The run ended: all blocks done (`finished`) or stopped at `--max-steps`.
    pub fn end(&mut self, finished: bool, global_step: u64, best: &[Vec<usize>]) {
        let labels: Vec<String> = best.iter().map(|p| self.space.path_label(p)).collect();
        let elapsed = self.elapsed();
        match &mut self.sink {
            Sink::Hidden => {}
            Sink::Terminal(bar) => {
                // A bar of an unfinished block stays as it was when the run stopped.
                if let Some(bar) = bar.take() {
                    bar.abandon();
                    eprintln!();
                }
            }
            Sink::Log { .. } => eprintln!(
                "[{elapsed}] {} at step {global_step}",
                if finished { "finished" } else { "stopped" }
            ),
            Sink::Json => json_line(serde_json::json!({
                "event": "end", "finished": finished, "global_step": global_step,
                "best": labels, "paths": best,
            })),
        }
    }
}

fn block_bar(block: usize, steps: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(steps), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:16}] {pos:>3}/{len:3} {wide_msg}")
            .expect("valid progress template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("blk {block}"));
    bar
}

fn json_line(v: serde_json::Value) {
    eprintln!("{v}");
}

/// `1h02m`, `12m05s`, `42s`.
fn hms(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The coarser ETA of the live line: `12m`, `1h05`, `42s`.
fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        _ => format!("{}h{:02}", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_short() {
        assert_eq!(hms(Duration::from_secs(42)), "42s");
        assert_eq!(hms(Duration::from_secs(725)), "12m05s");
        assert_eq!(hms(Duration::from_secs(3720)), "1h02m");
        assert_eq!(short(Duration::from_secs(3900)), "1h05");
    }

    #[test]
    fn the_live_line_fits_80_columns() {
        // The widest message the terminal line can carry, with the fixed part of the template.
        let msg = format!(
            "loss {:+.3} lr {:.3} {:5.1} im/s eta {}",
            -3.9999,
            10.1234,
            12345.6,
            short(Duration::from_secs(99 * 3600))
        );
        let fixed = "blk 2 [================] 999/999 ".len();
        assert!(
            fixed + msg.len() <= 80,
            "{} columns: {msg}",
            fixed + msg.len()
        );
        let done = format!(
            "best {} of {} ({})",
            "64:64",
            64,
            hms(Duration::from_secs(359_999))
        );
        assert!(fixed + done.len() <= 80);
    }
}
