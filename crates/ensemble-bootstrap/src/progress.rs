//! Terminal progress for training runs: an indicatif bar over all optimizer steps of the run,
//! showing block, loss, learning rate, EMA momentum and throughput. Hidden in tests
//! ([`Progress::hidden`]); messages then go nowhere, metrics still go to `metrics.jsonl`.

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
