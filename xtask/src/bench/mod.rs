//! `cargo xtask bench`: times forward + backward of the project's real blocks and one
//! ensemble-bootstrapping training step on the CPU (burn-flex), and, when `BENCH_PYTHON`
//! names a Python with torch, the same rows in PyTorch (`benches/torch_reference.py`).
//!
//! Every row runs in its own child process (this binary with `bench --child <row>`, or the
//! Python script with `--row <row>`), so the peak resident memory (VmHWM) it reports is the
//! row's own and rows do not warm each other's allocators.
//!
//! Our child and PyTorch's alternate `--pairs` times per row; the table gives the median of
//! the runs per side, the median of the pairs' ratios and the load at each pair. `--phases`
//! splits the training-step rows by phase (`ensemble_bootstrap::phase`, the same names in the
//! PyTorch mirror).
//!
//! `cargo xtask bench` measures the dev profile every command builds: the dependencies,
//! `bossnas-kernels` and `bossnas-blocks` are optimised there without debug assertions (the
//! root `Cargo.toml`), so it measures what a user's runs get.

mod rows;
mod train_step;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// Options of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Print one JSON document instead of the table.
    #[arg(long)]
    json: bool,
    /// Only rows whose name contains this substring.
    #[arg(long)]
    rows: Option<String>,
    /// Timed repetitions per run of a row (after one warm-up); a run reports their median.
    #[arg(long, default_value_t = 7)]
    reps: usize,
    /// Runs of each row, ours and PyTorch's alternating (a pair at a time); the table gives
    /// the median over runs, and the ratio as the median of the pairs' ratios, so a change of
    /// load hits both sides of a pair.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
    pairs: u64,
    /// Also split each step into its phases (the `train_step_nats` row: target and online
    /// forwards, heads, loss, backward, optimizer, EMA), wall and CPU ms per step.
    #[arg(long)]
    phases: bool,
    /// List the rows and exit.
    #[arg(long)]
    list: bool,
    /// Internal: run one row in this process and print its JSON line.
    #[arg(long, hide = true)]
    child: Option<String>,
}

/// One run of one row by one implementation.
#[derive(Debug, Clone)]
struct Measured {
    median_ms: f64,
    times_ms: Vec<f64>,
    peak_rss_mb: f64,
    /// Per step: (phase, wall ms, CPU ms), when asked for and the row has phases.
    phases: Vec<(String, f64, f64)>,
    /// FLOPs of one step as PyTorch's flop counter counts them (matmuls and convolutions,
    /// forward and backward), on the first PyTorch run of a row.
    flops: Option<f64>,
}

/// The paired runs of one row.
struct RowRuns {
    ours: Vec<Measured>,
    torch: Vec<Measured>,
    /// The 1-minute load average at the start of each pair.
    load: Vec<f64>,
}

impl RowRuns {
    fn ours_ms(&self) -> f64 {
        median(&mut self.ours.iter().map(|m| m.median_ms).collect::<Vec<_>>())
    }
    fn torch_ms(&self) -> Option<f64> {
        (!self.torch.is_empty())
            .then(|| median(&mut self.torch.iter().map(|m| m.median_ms).collect::<Vec<_>>()))
    }
    /// Median over pairs of torch / ours.
    fn ratio(&self) -> Option<f64> {
        (!self.torch.is_empty()).then(|| {
            median(
                &mut self
                    .ours
                    .iter()
                    .zip(&self.torch)
                    .map(|(o, t)| t.median_ms / o.median_ms)
                    .collect::<Vec<_>>(),
            )
        })
    }
    /// FLOPs of one step (PyTorch's count; both sides run the same layers at the same shapes).
    fn flops(&self) -> Option<f64> {
        self.torch.iter().find_map(|m| m.flops)
    }
    fn load_range(&self) -> String {
        let lo = self.load.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = self.load.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if lo.is_finite() {
            format!("{lo:.1}–{hi:.1}")
        } else {
            "?".into()
        }
    }
}

/// Entry point of the subcommand.
pub fn run(args: BenchArgs) -> Result<()> {
    if let Some(row) = &args.child {
        return child(row, args.reps, args.phases);
    }
    let python = std::env::var("BENCH_PYTHON").ok().filter(|p| !p.is_empty());
    let mut rows: Vec<_> = rows::all()
        .into_iter()
        .filter(|r| {
            args.rows
                .as_ref()
                .is_none_or(|f| r.name.contains(f.as_str()))
        })
        .collect();
    // The roofline table needs the GEMM peak of this machine at this moment (0.2 s a run).
    if python.is_some()
        && !args.list
        && !rows.is_empty()
        && !rows.iter().any(|r| r.name == rows::GEMM_PEAK_ROW)
    {
        rows.splice(
            0..0,
            rows::all()
                .into_iter()
                .filter(|r| r.name == rows::GEMM_PEAK_ROW),
        );
    }
    if args.list {
        for r in &rows {
            println!("{:16} {}", r.name, r.what);
        }
        return Ok(());
    }
    if rows.is_empty() {
        bail!("no row matches {:?}", args.rows);
    }
    let script = workspace_root().join("benches/torch_reference.py");
    let load_before = loadavg();
    let mut results = Vec::new();
    for r in &rows {
        let mut runs = RowRuns {
            ours: Vec::new(),
            torch: Vec::new(),
            load: Vec::new(),
        };
        for pair in 0..args.pairs {
            runs.load.push(load1());
            let ours = run_child_rust(r.name, args.reps, args.phases)?;
            let torch = match &python {
                Some(py) => Some(run_child_python(
                    py,
                    &script,
                    r.name,
                    args.reps,
                    args.phases,
                    pair == 0,
                )?),
                None => None,
            };
            if !args.json {
                eprintln!(
                    "{:16} ours {:9.1} ms{}",
                    r.name,
                    ours.median_ms,
                    torch
                        .as_ref()
                        .map(|t| format!("   torch {:9.1} ms", t.median_ms))
                        .unwrap_or_default()
                );
            }
            runs.ours.push(ours);
            runs.torch.extend(torch);
        }
        results.push((r, runs));
    }
    let load_after = loadavg();
    let profile = if cfg!(debug_assertions) {
        "dev profile (dependencies, bossnas-kernels and bossnas-blocks at opt-level 3 without debug assertions)"
    } else {
        "release"
    };
    if args.json {
        let rows_json: Vec<Value> = results
            .iter()
            .map(|(r, runs)| {
                json!({
                    "row": r.name,
                    "what": r.what,
                    "ours_median_ms": runs.ours_ms(),
                    "torch_median_ms": runs.torch_ms(),
                    "ratio_torch_over_ours": runs.ratio(),
                    "flops_per_step": runs.flops(),
                    "load1_per_pair": runs.load,
                    "ours": runs.ours.iter().map(measured_json).collect::<Vec<_>>(),
                    "torch": runs.torch.iter().map(measured_json).collect::<Vec<_>>(),
                })
            })
            .collect();
        let doc = json!({
            "profile": profile,
            "reps": args.reps,
            "pairs": args.pairs,
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "rayon_threads": std::env::var("RAYON_NUM_THREADS").ok(),
            "rows": rows_json,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!(
            "build: {profile}; reps {}, pairs {}; load average before: {load_before}, after: {load_after}",
            args.reps, args.pairs
        );
        println!(
            "| row | ours median ms | torch median ms | torch/ours (median of pairs) | load | ours peak RSS MB | torch peak RSS MB |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for (r, runs) in &results {
            let peak = |m: &[Measured]| m.iter().map(|m| m.peak_rss_mb).fold(0.0, f64::max);
            let (tm, ratio, trss) = match (runs.torch_ms(), runs.ratio()) {
                (Some(t), Some(ratio)) => (
                    format!("{t:.1}"),
                    format!("{ratio:.2}×"),
                    format!("{:.0}", peak(&runs.torch)),
                ),
                _ => ("–".into(), "–".into(), "–".into()),
            };
            println!(
                "| {} | {:.1} | {tm} | {ratio} | {} | {:.0} | {trss} |",
                r.name,
                runs.ours_ms(),
                runs.load_range(),
                peak(&runs.ours)
            );
        }
        print_roofline(&results);
        for (r, runs) in &results {
            print_phases(r.name, runs);
        }
        if python.is_none() {
            println!("(set BENCH_PYTHON=python3 to add the PyTorch columns)");
        }
    }
    Ok(())
}

/// How far each row is from the machine's GEMM peak: its FLOPs (PyTorch's count), the rate
/// each side reaches, that rate as a share of the same side's `gemm_2048` rate, and the
/// ceiling of torch/ours for a row that does torch's FLOPs at our GEMM peak (if below 1.5,
/// no kernel work reaches 1.5× without doing fewer FLOPs).
fn print_roofline(results: &[(&rows::Row, RowRuns)]) {
    let rate = |ms: f64, flops: f64| flops / (ms * 1e-3) / 1e9;
    let Some((_, gemm)) = results.iter().find(|(r, _)| r.name == rows::GEMM_PEAK_ROW) else {
        return;
    };
    let Some(gemm_flops) = gemm.flops() else {
        return;
    };
    let ours_peak = rate(gemm.ours_ms(), gemm_flops);
    let torch_peak = gemm.torch_ms().map(|t| rate(t, gemm_flops));
    println!(
        "\nGEMM peak ({}): ours {ours_peak:.1} GFLOP/s, torch {} GFLOP/s",
        rows::GEMM_PEAK_ROW,
        torch_peak.map_or("–".into(), |p| format!("{p:.1}"))
    );
    println!(
        "| row | GFLOP per step | ours GFLOP/s | % of our peak | torch GFLOP/s | % of torch's peak | torch/ours ceiling at our peak |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (r, runs) in results {
        let (Some(flops), Some(torch_ms)) = (runs.flops(), runs.torch_ms()) else {
            continue;
        };
        let ours = rate(runs.ours_ms(), flops);
        let torch = rate(torch_ms, flops);
        println!(
            "| {} | {:.2} | {ours:.1} | {:.0} % | {torch:.1} | {} | {:.2}× |",
            r.name,
            flops / 1e9,
            100.0 * ours / ours_peak,
            torch_peak.map_or("–".into(), |p| format!("{:.0} %", 100.0 * torch / p)),
            ours_peak / torch,
        );
    }
}

fn measured_json(m: &Measured) -> Value {
    let phases: Vec<Value> = m
        .phases
        .iter()
        .map(|(n, w, c)| json!({ "phase": n, "wall_ms": w, "cpu_ms": c }))
        .collect();
    json!({
        "median_ms": m.median_ms,
        "times_ms": m.times_ms,
        "peak_rss_mb": m.peak_rss_mb,
        "phases": phases,
    })
}

/// Reads one figure (wall or CPU ms) of a `(phase, wall ms, CPU ms)` entry.
type PhasePick = fn(&(String, f64, f64)) -> f64;

/// The phase table of one row (medians over runs, per step), when any run has phases.
fn print_phases(row: &str, runs: &RowRuns) {
    if runs.ours.iter().all(|m| m.phases.is_empty()) {
        return;
    }
    // Phase names in order of first occurrence on either side.
    let mut names: Vec<&str> = Vec::new();
    for m in runs.ours.iter().chain(&runs.torch) {
        for (n, _, _) in &m.phases {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
    }
    let med = |side: &[Measured], name: &str, pick: PhasePick| {
        let mut v: Vec<f64> = side
            .iter()
            .filter_map(|m| m.phases.iter().find(|p| p.0 == name).map(pick))
            .collect();
        (!v.is_empty()).then(|| median(&mut v))
    };
    let cell = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "–".into());
    println!("\n{row}, by phase (ms per step; medians over runs; CPU = all threads):");
    println!("| phase | ours wall | ours CPU | torch wall | torch CPU |");
    println!("|---|---:|---:|---:|---:|");
    let wall: PhasePick = |p| p.1;
    let cpu: PhasePick = |p| p.2;
    for name in names {
        println!(
            "| {name} | {} | {} | {} | {} |",
            cell(med(&runs.ours, name, wall)),
            cell(med(&runs.ours, name, cpu)),
            cell(med(&runs.torch, name, wall)),
            cell(med(&runs.torch, name, cpu)),
        );
    }
}

/// Runs one row in this process: one warm-up step, `reps` timed steps, one JSON line.
fn child(name: &str, reps: usize, phases: bool) -> Result<()> {
    let row = rows::all()
        .into_iter()
        .find(|r| r.name == name)
        .with_context(|| format!("unknown row {name}"))?;
    bossnas_kernels::cpu_alloc::keep_freed_memory();
    let device = burn::tensor::Device::flex().autodiff();
    let mut step = (row.build)(&device);
    step();
    ensemble_bootstrap::phase::enable(phases);
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        step();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let steps = reps.max(1) as f64;
    let phases: Vec<Value> = ensemble_bootstrap::phase::take()
        .into_iter()
        .map(|p| {
            json!({
                "phase": p.name,
                "wall_ms": p.wall_s * 1e3 / steps,
                "cpu_ms": p.cpu_s * 1e3 / steps,
            })
        })
        .collect();
    let line = json!({
        "row": name,
        "median_ms": median(&mut times.clone()),
        "times_ms": times,
        "peak_rss_mb": peak_rss_mb(),
        "phases": phases,
    });
    println!("{line}");
    Ok(())
}

fn run_child_rust(name: &str, reps: usize, phases: bool) -> Result<Measured> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args(["bench", "--child", name, "--reps", &reps.to_string()]);
    if phases {
        cmd.arg("--phases");
    }
    parse_child(cmd, name)
}

fn run_child_python(
    python: &str,
    script: &Path,
    name: &str,
    reps: usize,
    phases: bool,
    flops: bool,
) -> Result<Measured> {
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .args(["--row", name, "--reps", &reps.to_string()]);
    if phases {
        cmd.arg("--phases");
    }
    if flops {
        cmd.arg("--flops");
    }
    parse_child(cmd, name)
}

fn parse_child(mut cmd: Command, name: &str) -> Result<Measured> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "row {name}: {cmd:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .with_context(|| format!("row {name}: no JSON line in {text:?}"))?;
    let v: Value = serde_json::from_str(line)?;
    let num = |k: &str| {
        v[k].as_f64()
            .with_context(|| format!("row {name}: no `{k}`"))
    };
    Ok(Measured {
        median_ms: num("median_ms")?,
        times_ms: v["times_ms"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default(),
        peak_rss_mb: num("peak_rss_mb")?,
        phases: v["phases"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| {
                        Some((
                            p["phase"].as_str()?.to_string(),
                            p["wall_ms"].as_f64()?,
                            p["cpu_ms"].as_f64()?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        flops: v["flops_per_step"].as_f64(),
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Peak resident set size of this process (`VmHWM`), MB; 0 where /proc is unavailable.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// The 1-minute load average (NaN where /proc is unavailable).
fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn row_names_are_unique() {
        let mut names: Vec<_> = rows::all().iter().map(|r| r.name).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
    }
}
