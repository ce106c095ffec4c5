//! Full report (default options: 200 bootstrap resamples, baselines, figures) for the official
//! BossNAS scores: `cargo run --release -p bench-nats --example official_report -- <shared/data> <out-dir>`.

use bench_nats::{CorrelateOptions, GroundTruth, ScoresInput, correlate};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let data = std::path::PathBuf::from(args.next().unwrap_or_else(|| "../shared/data".into()));
    let out = args
        .next()
        .unwrap_or_else(|| "target/bench-nats-report".into());
    let start = std::time::Instant::now();
    let truth = GroundTruth::load(data.join("nats-sss/nats_sss_cifar10.csv"))?;
    let scores = ScoresInput::from_csv(
        data.join("bossnas-reference/bossnas_c10_arch_scores.csv"),
        Some("bossnas_loss_score"),
    )?;
    let report = correlate(&scores, &truth, &CorrelateOptions::default())?;
    let files = report.write(&out)?;
    println!("{}", report.to_markdown());
    eprintln!("wrote {files:?} in {:?}", start.elapsed());
    Ok(())
}
