//! Opt-in time per phase of the training step (`cargo xtask bench --phases`).
//!
//! The training step is one long chain of eager burn-flex ops, so a sampling profiler's flat
//! view cannot say how much of a step the heads, the loss or the optimizer take. [`span`]
//! wraps a phase; while [`enable`]d it adds the phase's wall time and the process's CPU time
//! (all threads, `getrusage`) to a global table that [`take`] empties. CPU time is the figure
//! to read on a loaded machine: the other processes lengthen the wall time of a phase, not
//! its CPU time.
//!
//! Disabled (the default), a span costs one relaxed atomic load. On a lazy backend (wgpu,
//! fusion) a span measures the time to *queue* its ops, not to run them: only burn-flex,
//! which runs every op when it is called, gives meaningful figures.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

static ENABLED: AtomicBool = AtomicBool::new(false);
static TOTALS: Mutex<Vec<PhaseTotal>> = Mutex::new(Vec::new());

/// Accumulated time of one phase since the last [`take`].
#[derive(Clone, Debug, PartialEq)]
pub struct PhaseTotal {
    /// The name given to [`span`].
    pub name: &'static str,
    /// Number of spans of this name.
    pub calls: u64,
    /// Wall seconds inside the spans.
    pub wall_s: f64,
    /// Process CPU seconds (user + system, all threads) inside the spans.
    pub cpu_s: f64,
}

/// Turns recording on or off (off by default).
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether spans are recorded.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Runs `f`, adding its time to phase `name` when recording is on.
///
/// Spans may nest; the outer span then includes the inner one's time.
pub fn span<T>(name: &'static str, f: impl FnOnce() -> T) -> T {
    if !enabled() {
        return f();
    }
    let (wall, cpu) = (Instant::now(), process_cpu_seconds());
    let out = f();
    let (wall, cpu) = (wall.elapsed().as_secs_f64(), process_cpu_seconds() - cpu);
    let mut totals = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
    match totals.iter_mut().find(|t| t.name == name) {
        Some(t) => {
            t.calls += 1;
            t.wall_s += wall;
            t.cpu_s += cpu;
        }
        None => totals.push(PhaseTotal {
            name,
            calls: 1,
            wall_s: wall,
            cpu_s: cpu,
        }),
    }
    out
}

/// The totals recorded since the last call, in order of first occurrence; clears the table.
pub fn take() -> Vec<PhaseTotal> {
    std::mem::take(&mut *TOTALS.lock().unwrap_or_else(|e| e.into_inner()))
}

/// CPU seconds (user + system) of this process, all threads.
pub fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return f64::NAN;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test only: the table is global, and tests of one binary run in parallel.
    #[test]
    fn spans_record_only_while_enabled_and_take_clears() {
        span("off", || ());
        enable(true);
        let x = span("outer", || span("inner", || 2) + span("inner", || 3));
        enable(false);
        span("off", || ());
        assert_eq!(x, 5);
        let t = take();
        let names: Vec<_> = t.iter().map(|p| (p.name, p.calls)).collect();
        assert_eq!(names, [("inner", 2), ("outer", 1)]);
        assert!(t.iter().all(|p| p.wall_s >= 0.0 && p.cpu_s >= 0.0));
        assert!(take().is_empty());
    }
}
