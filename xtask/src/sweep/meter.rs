//! What a sweep point costs: wall time, CPU time of the process (all threads), the machine's
//! load, carried across interruptions.
//!
//! A point that is killed and resumed pays for both segments: the meter writes its running
//! totals into the run directory every few seconds (`sweep-time.json`) and a resumed point
//! starts from them, so at most one interval of a killed segment is lost.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::workspace::process_cpu_seconds;

/// File in the run directory with the totals so far.
pub const METER_FILE: &str = "sweep-time.json";

/// How often the totals are written.
const INTERVAL: Duration = Duration::from_secs(10);

/// Totals over every segment of a point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Spent {
    pub wall_s: f64,
    /// User + system CPU time of the process.
    pub cpu_s: f64,
    /// Processes that worked on the point (1 + resumptions).
    pub segments: u32,
    /// Mean 1-minute load average over the samples (the machine was shared when it is above
    /// the process's own CPU use).
    pub mean_load: f64,
    /// Load samples behind `mean_load`.
    pub load_samples: u32,
}

/// The 1-minute load average (Linux), if readable.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

struct Segment {
    started: Instant,
    cpu0: f64,
    prior: Spent,
    load_sum: f64,
    load_n: u32,
}

impl Segment {
    fn totals(&self) -> Spent {
        let load_sum = self.prior.mean_load * f64::from(self.prior.load_samples) + self.load_sum;
        let load_samples = self.prior.load_samples + self.load_n;
        Spent {
            wall_s: self.prior.wall_s + self.started.elapsed().as_secs_f64(),
            cpu_s: self.prior.cpu_s + (process_cpu_seconds() - self.cpu0),
            segments: self.prior.segments + 1,
            mean_load: if load_samples > 0 {
                load_sum / f64::from(load_samples)
            } else {
                0.0
            },
            load_samples,
        }
    }
}

/// Measures one segment of a point and keeps `sweep-time.json` current.
pub struct Meter {
    path: PathBuf,
    segment: Arc<Mutex<Segment>>,
    stop: Arc<AtomicBool>,
    writer: Option<JoinHandle<()>>,
}

fn write(path: &Path, spent: &Spent) {
    // Only once the trainer made the run directory: the meter must not make a directory
    // that looks like a started run.
    if path.parent().is_some_and(Path::is_dir)
        && let Ok(text) = serde_json::to_string(spent)
    {
        let _ = bossnas_runfs::write_atomic(path, text.as_bytes());
    }
}

impl Meter {
    /// Starts a segment of the point whose run directory is `run_dir` (earlier segments'
    /// totals are read from it when it holds them).
    pub fn start(run_dir: &Path) -> Self {
        let path = run_dir.join(METER_FILE);
        let prior = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let segment = Arc::new(Mutex::new(Segment {
            started: Instant::now(),
            cpu0: process_cpu_seconds(),
            prior,
            load_sum: 0.0,
            load_n: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (segment, stop, path) = (segment.clone(), stop.clone(), path.clone());
            std::thread::spawn(move || {
                let mut last = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(250));
                    if last.elapsed() < INTERVAL {
                        continue;
                    }
                    last = Instant::now();
                    let spent = {
                        let mut s = segment.lock().expect("meter lock");
                        if let Some(l) = load_average() {
                            s.load_sum += l;
                            s.load_n += 1;
                        }
                        s.totals()
                    };
                    write(&path, &spent);
                }
            })
        };
        Self {
            path,
            segment,
            stop,
            writer: Some(writer),
        }
    }

    /// Ends the segment; returns and records the totals.
    pub fn finish(mut self) -> Spent {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
        let spent = self.segment.lock().expect("meter lock").totals();
        write(&self.path, &spent);
        spent
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        // A segment that ends in an error still records what it spent.
        if let Some(h) = self.writer.take() {
            self.stop.store(true, Ordering::Relaxed);
            let _ = h.join();
            let spent = self.segment.lock().expect("meter lock").totals();
            write(&self.path, &spent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_carry_over_segments() {
        let dir = tempfile::tempdir().unwrap();
        let first = Meter::start(dir.path()).finish();
        assert_eq!(first.segments, 1);
        assert!(first.wall_s >= 0.0 && first.cpu_s >= 0.0);
        // Burn some CPU so the second segment measures something.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
        std::hint::black_box(x);
        let second = Meter::start(dir.path()).finish();
        assert_eq!(second.segments, 2);
        assert!(second.wall_s >= first.wall_s);
        assert!(second.cpu_s > first.cpu_s, "{second:?} vs {first:?}");
    }

    #[test]
    fn a_missing_run_directory_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("not-yet");
        let _ = Meter::start(&run).finish();
        assert!(!run.exists());
    }
}
