//! A wall-clock budget for training (`--time-budget <minutes>`), split over the blocks.
//!
//! When a block starts (in this process: a resumed run starts its budget afresh), it gets an
//! equal share of what is left: `remaining / blocks_left`. It stops at the first optimizer-step
//! boundary after its share is used (at least one step is always taken, so every block has a
//! trained state to rate), and then ends exactly like a block that ran all its steps: rating,
//! `block_end` record, checkpoint, next block. Time a block leaves unused, and the rating time
//! it spends, move the next blocks' shares up or down: the rating at each block end is not
//! budgeted, so the whole run takes the budget plus the ratings.
//!
//! The schedules are not compressed: a block stopped early has run the first part of its
//! warm-up + cosine lr and EMA-momentum schedules (the planned number of steps stays
//! `epochs_per_block × steps_per_epoch`). The `block_end` lines of `metrics.jsonl` record
//! how many steps each block ran, of how many planned, and whether the budget stopped it
//! ([`BlockRun`], read back with [`block_runs`]).

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Parses a budget in minutes (`--time-budget 7.5`): positive, finite.
pub fn parse_minutes(s: &str) -> Result<Duration, String> {
    let m: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of minutes"))?;
    if !m.is_finite() || m <= 0.0 {
        return Err(format!(
            "time budget must be a positive number of minutes, got {s}"
        ));
    }
    Duration::try_from_secs_f64(m * 60.0).map_err(|e| format!("time budget {s}: {e}"))
}

/// The running budget of one [`crate::trainer::Trainer::run`] call.
#[derive(Debug, Clone)]
pub struct TimeBudget {
    total: Duration,
    started: Instant,
    /// The block whose share is running, and when that share ends.
    current: Option<(usize, Instant)>,
}

impl TimeBudget {
    /// Starts the clock now.
    pub fn start(total: Duration) -> Self {
        Self {
            total,
            started: Instant::now(),
            current: None,
        }
    }

    /// Time left of the whole budget.
    pub fn remaining(&self) -> Duration {
        self.total.saturating_sub(self.started.elapsed())
    }

    /// Whether `block` (of which `blocks_left` remain, itself included) has used its share and
    /// should stop now, having taken `block_step` optimizer steps. The first call for a block
    /// fixes its share.
    pub fn block_spent(&mut self, block: usize, blocks_left: usize, block_step: u64) -> bool {
        let deadline = match self.current {
            Some((b, d)) if b == block => d,
            _ => {
                let share = self.remaining() / blocks_left.max(1) as u32;
                let d = Instant::now() + share;
                self.current = Some((block, d));
                d
            }
        };
        block_step >= 1 && Instant::now() >= deadline
    }
}

/// How one block's training ended: one `block_end` line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockRun {
    /// The block.
    pub block: usize,
    /// Optimizer steps it ran (a resumed block counts its steps before the restart too).
    pub steps: u64,
    /// Optimizer steps its schedule plans (`epochs_per_block × steps_per_epoch`).
    pub planned_steps: u64,
    /// The time budget stopped it before `planned_steps`.
    pub stopped_by_time_budget: bool,
}

/// The [`BlockRun`]s recorded in a run's `metrics.jsonl`, in block order (the last record of a
/// block wins: a block redone after a resume is counted once). Lines without the fields (runs
/// written before they existed) are skipped.
pub fn block_runs(metrics: &Path) -> std::io::Result<Vec<BlockRun>> {
    let text = std::fs::read_to_string(metrics)?;
    let mut runs = std::collections::BTreeMap::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["event"] != "block_end" {
            continue;
        }
        if let Ok(r) = serde_json::from_value::<BlockRun>(v) {
            runs.insert(r.block, r);
        }
    }
    Ok(runs.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_parse_to_a_duration_and_bad_values_are_named() {
        assert_eq!(parse_minutes("1.5").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_minutes(" 2 ").unwrap(), Duration::from_secs(120));
        for bad in ["0", "-1", "nan", "inf", "ten"] {
            let e = parse_minutes(bad).unwrap_err();
            assert!(e.contains(bad) || e.contains("positive"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_spent_budget_stops_each_block_after_its_first_step() {
        let mut b = TimeBudget::start(Duration::ZERO);
        // At least one step per block, then stop.
        assert!(!b.block_spent(0, 3, 0));
        assert!(b.block_spent(0, 3, 1));
        assert!(!b.block_spent(1, 2, 0));
        assert!(b.block_spent(1, 2, 5));
    }

    #[test]
    fn a_large_budget_lets_blocks_run_and_splits_what_is_left() {
        let mut b = TimeBudget::start(Duration::from_secs(3600));
        assert!(!b.block_spent(0, 3, 10));
        // The share was fixed at the block's first call: about an hour over three blocks.
        let (_, deadline) = b.current.unwrap();
        // (Measured from the budget's start, so it includes the microseconds before the call.)
        let share = deadline - b.started;
        assert!(share <= Duration::from_secs(1201), "{share:?}");
        assert!(share > Duration::from_secs(1190), "{share:?}");
        assert!(b.remaining() > Duration::from_secs(3590));
    }

    #[test]
    fn block_runs_reads_the_last_block_end_record_of_each_block() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("metrics.jsonl");
        let lines = [
            r#"{"event":"step","block":0}"#,
            r#"{"event":"block_end","block":0,"best_path":[1],"global_step":3}"#,
            r#"{"event":"block_end","block":0,"steps":3,"planned_steps":8,"stopped_by_time_budget":true}"#,
            r#"{"event":"block_end","block":1,"steps":8,"planned_steps":8,"stopped_by_time_budget":false}"#,
            "not json",
        ];
        std::fs::write(&path, lines.join("\n")).unwrap();
        let runs = block_runs(&path).unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].steps, 3);
        assert!(runs[0].stopped_by_time_budget);
        assert_eq!(runs[1].planned_steps, 8);
        assert!(!runs[1].stopped_by_time_budget);
    }
}
