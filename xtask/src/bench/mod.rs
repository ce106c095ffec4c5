//! `cargo xtask bench`: times forward + backward of the project's real blocks and one
//! ensemble-bootstrapping training step on the CPU (burn-flex), and, when `BENCH_PYTHON`
//! names a Python with torch, the same rows in PyTorch (`benches/torch_reference.py`).
//!
//! Every row runs in its own child process (this binary with `bench --child <row>`, or the
//! Python script with `--row <row>`), so the peak resident memory (VmHWM) it reports is the
//! row's own and rows do not warm each other's allocators.
//!
//! Build it optimised: `cargo run --release -p xtask -- bench`. The dev profile compiles the
//! workspace's own crates (where the fast conv helpers live) without optimisation, so
//! `cargo xtask bench` measures a debug build and says so.

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
    /// Timed repetitions per row (after one warm-up); the median is reported.
    #[arg(long, default_value_t = 7)]
    reps: usize,
    /// List the rows and exit.
    #[arg(long)]
    list: bool,
    /// Internal: run one row in this process and print its JSON line.
    #[arg(long, hide = true)]
    child: Option<String>,
}

/// One measured row of one implementation.
#[derive(Debug, Clone)]
struct Measured {
    median_ms: f64,
    times_ms: Vec<f64>,
    peak_rss_mb: f64,
}

/// Entry point of the subcommand.
pub fn run(args: BenchArgs) -> Result<()> {
    if let Some(row) = &args.child {
        return child(row, args.reps);
    }
    let rows: Vec<_> = rows::all()
        .into_iter()
        .filter(|r| {
            args.rows
                .as_ref()
                .is_none_or(|f| r.name.contains(f.as_str()))
        })
        .collect();
    if args.list {
        for r in &rows {
            println!("{:16} {}", r.name, r.what);
        }
        return Ok(());
    }
    if rows.is_empty() {
        bail!("no row matches {:?}", args.rows);
    }
    let python = std::env::var("BENCH_PYTHON").ok().filter(|p| !p.is_empty());
    let script = workspace_root().join("benches/torch_reference.py");
    let load_before = loadavg();
    let mut results = Vec::new();
    for r in &rows {
        let ours = run_child_rust(r.name, args.reps)?;
        let torch = match &python {
            Some(py) => Some(run_child_python(py, &script, r.name, args.reps)?),
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
        results.push((r, ours, torch));
    }
    let load_after = loadavg();
    let profile = if cfg!(debug_assertions) {
        "dev profile (Burn and bossnas-blocks at opt-level 3, debug assertions on)"
    } else {
        "release"
    };
    if args.json {
        let rows_json: Vec<Value> = results
            .iter()
            .map(|(r, o, t)| {
                json!({
                    "row": r.name,
                    "what": r.what,
                    "ours": measured_json(o),
                    "torch": t.as_ref().map(measured_json),
                    "ratio_torch_over_ours": t.as_ref().map(|t| t.median_ms / o.median_ms),
                })
            })
            .collect();
        let doc = json!({
            "profile": profile,
            "reps": args.reps,
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "rayon_threads": std::env::var("RAYON_NUM_THREADS").ok(),
            "rows": rows_json,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!(
            "build: {profile}; reps {}; load average before: {load_before}, after: {load_after}",
            args.reps
        );
        println!(
            "| row | ours median ms | torch median ms | torch/ours | ours peak RSS MB | torch peak RSS MB |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
        for (r, o, t) in &results {
            let (tm, ratio, trss) = match t {
                Some(t) => (
                    format!("{:.1}", t.median_ms),
                    format!("{:.2}×", t.median_ms / o.median_ms),
                    format!("{:.0}", t.peak_rss_mb),
                ),
                None => ("–".into(), "–".into(), "–".into()),
            };
            println!(
                "| {} | {:.1} | {tm} | {ratio} | {:.0} | {trss} |",
                r.name, o.median_ms, o.peak_rss_mb
            );
        }
        if python.is_none() {
            println!("(set BENCH_PYTHON=python3 to add the PyTorch columns)");
        }
    }
    Ok(())
}

fn measured_json(m: &Measured) -> Value {
    json!({ "median_ms": m.median_ms, "times_ms": m.times_ms, "peak_rss_mb": m.peak_rss_mb })
}

/// Runs one row in this process: one warm-up step, `reps` timed steps, one JSON line.
fn child(name: &str, reps: usize) -> Result<()> {
    let row = rows::all()
        .into_iter()
        .find(|r| r.name == name)
        .with_context(|| format!("unknown row {name}"))?;
    bossnas_kernels::cpu_alloc::keep_freed_memory();
    let device = burn::tensor::Device::flex().autodiff();
    let mut step = (row.build)(&device);
    step();
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        step();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let line = json!({
        "row": name,
        "median_ms": median(&mut times.clone()),
        "times_ms": times,
        "peak_rss_mb": peak_rss_mb(),
    });
    println!("{line}");
    Ok(())
}

fn run_child_rust(name: &str, reps: usize) -> Result<Measured> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args(["bench", "--child", name, "--reps", &reps.to_string()]);
    parse_child(cmd, name)
}

fn run_child_python(python: &str, script: &Path, name: &str, reps: usize) -> Result<Measured> {
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .args(["--row", name, "--reps", &reps.to_string()]);
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
