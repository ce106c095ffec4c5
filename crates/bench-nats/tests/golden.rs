//! Golden test against the official BossNAS NATS-SSS CIFAR-10 rating (shared data).
//!
//! Reads `$BOSSNAS_SHARED_DATA` or `<workspace>/../shared/data`. Missing data is a FAILURE
//! (CI has it), never a silent pass.

use std::path::PathBuf;
use std::time::Instant;

use bench_nats::stats::{kendall_tau_b, pearson_r, spearman_rho};
use bench_nats::{
    AccuracyColumn, BlockSplit, BootstrapOptions, ComposedScore, CorrelateOptions, GroundTruth,
    ScoresInput, correlate, load_official_arch_scores,
};

fn shared_data() -> PathBuf {
    let dir = match std::env::var_os("BOSSNAS_SHARED_DATA") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    };
    let truth = dir.join("nats-sss/nats_sss_cifar10.csv");
    assert!(
        truth.is_file() && dir.join("bossnas-reference/path_rank_stage0.csv").is_file(),
        "shared data not found at {} (expected nats-sss/nats_sss_cifar10.csv and bossnas-reference/); \
         set BOSSNAS_SHARED_DATA to the shared/data directory",
        dir.display()
    );
    dir
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn assert3(name: &str, got: f64, want: f64) {
    assert_eq!(
        round3(got),
        want,
        "{name}: got {got}, want {want} (3 decimals)"
    );
}

fn cheap() -> CorrelateOptions {
    CorrelateOptions {
        bootstrap: BootstrapOptions {
            resamples: 0,
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn official_potentials_reproduce_published_correlations() {
    let dir = shared_data();
    let start = Instant::now();
    let truth = GroundTruth::load(dir.join("nats-sss/nats_sss_cifar10.csv")).unwrap();
    assert!(truth.is_complete());
    assert_eq!(truth.len(), 32_768);
    let acc = truth.accuracy(AccuracyColumn::Cifar10TestHp90);
    let mean = acc.iter().sum::<f64>() / acc.len() as f64;
    assert!((mean - 91.08546).abs() < 1e-4, "mean accuracy {mean}");

    // 1. Composed from the per-block path_rank files.
    let composed =
        ComposedScore::load_dir(dir.join("bossnas-reference"), BlockSplit::cifar10()).unwrap();
    assert!(composed.tables.iter().all(|t| t.is_complete()));
    let winners = composed.winners();
    assert_eq!(winners.to_string(), "64:40:48:64:56");
    assert_eq!(
        truth.accuracy_of(&winners, AccuracyColumn::Cifar10TestHp90),
        Some(93.29)
    );
    assert_eq!(
        truth.accuracy_rank(&winners, AccuracyColumn::Cifar10TestHp90),
        Some(65)
    );

    let scores = composed.score_all().unwrap();
    let report = correlate(&scores, &truth, &cheap()).unwrap();
    assert_eq!(report.n, 32_768);
    let raw = report.score.raw;
    println!(
        "composed: τ-b {} ρ {} r {}",
        raw.kendall_tau_b, raw.spearman_rho, raw.pearson_r
    );
    assert3("composed τ-b", raw.kendall_tau_b, -0.534);
    assert3("composed ρ", raw.spearman_rho, -0.734);
    assert3("composed r", raw.pearson_r, -0.718);
    assert3("oriented τ-b", report.score.oriented.kendall_tau_b, 0.534);
    let chosen = &report.score.selections[0];
    assert_eq!(chosen.budget, "all");
    assert_eq!(chosen.chosen, winners);
    assert_eq!(chosen.accuracy_rank, 65);
    assert_eq!(chosen.best.to_string(), "64:64:56:64:24");
    assert!((chosen.regret - (93.65 - 93.29)).abs() < 1e-9);

    // Free baselines.
    let base = |name: &str| {
        report
            .baselines
            .iter()
            .find(|m| m.name == name)
            .unwrap()
            .raw
    };
    println!(
        "baselines τ-b: params {} madds {} width-sum {}",
        base("params").kendall_tau_b,
        base("madds").kendall_tau_b,
        base("sum_of_widths").kendall_tau_b
    );
    assert3("params τ-b", base("params").kendall_tau_b, 0.690);
    assert3(
        "sum of widths τ-b",
        base("sum_of_widths").kendall_tau_b,
        0.785,
    );

    // 2. The official per-architecture scores file, via the generic scores reader.
    let path = dir.join("bossnas-reference/bossnas_c10_arch_scores.csv");
    let official = load_official_arch_scores(&path).unwrap();
    assert_eq!(official.len(), 32_768);
    for o in &official {
        assert_eq!(
            Some(o.cifar10_test_acc_hp90),
            truth.accuracy_of(&o.arch, AccuracyColumn::Cifar10TestHp90)
        );
        let c = composed.score(&o.arch).unwrap();
        assert!(
            (c - o.bossnas_loss_score).abs() <= 0.5e-4 + 1e-9,
            "{}: {c} vs {}",
            o.arch,
            o.bossnas_loss_score
        );
    }
    let file_scores = ScoresInput::from_csv(&path, Some("bossnas_loss_score")).unwrap();
    let aligned = file_scores
        .align(&truth, AccuracyColumn::Cifar10TestHp90)
        .unwrap();
    assert_eq!(aligned.rows.len(), 32_768);
    let (s, a) = (&aligned.scores, &aligned.accuracy);
    assert3("file τ-b", kendall_tau_b(s, a), -0.534);
    assert3("file ρ", spearman_rho(s, a), -0.734);
    assert3("file r", pearson_r(s, a), -0.718);
    // scipy on the file: τ-b −0.534180602248828, ρ −0.734149353855131, r −0.7180607093955222.
    assert!((kendall_tau_b(s, a) - -0.534180602248828).abs() < 1e-12);
    assert!((spearman_rho(s, a) - -0.734149353855131).abs() < 1e-12);
    assert!((pearson_r(s, a) - -0.7180607093955222).abs() < 1e-12);
    println!("golden test took {:?}", start.elapsed());
}

#[test]
fn report_with_bootstrap_and_figures() {
    let dir = shared_data();
    let truth = GroundTruth::load(dir.join("nats-sss/nats_sss_cifar10.csv")).unwrap();
    let scores = ScoresInput::from_csv(
        dir.join("bossnas-reference/bossnas_c10_arch_scores.csv"),
        Some("bossnas_loss_score"),
    )
    .unwrap();
    let opts = CorrelateOptions {
        bootstrap: BootstrapOptions {
            resamples: 16,
            seed: 1,
            ..Default::default()
        },
        baselines: false,
        ..Default::default()
    };
    let report = correlate(&scores, &truth, &opts).unwrap();
    let ci = report.score.oriented_ci.unwrap();
    let t = report.score.oriented.kendall_tau_b;
    assert!(
        ci.kendall_tau_b.lo < t
            && t < ci.kendall_tau_b.hi
            && ci.kendall_tau_b.hi - ci.kendall_tau_b.lo < 0.05
    );
    let binned = report.score.madds_binned.as_ref().unwrap();
    assert_eq!(binned.bins, 20);
    assert_eq!(binned.bin_sizes.iter().sum::<usize>(), 32_768);
    let md = report.to_markdown();
    assert!(
        md.contains("n = 32768")
            && md.contains("cifar10_test_acc_hp90")
            && md.contains("64:40:48:64:56"),
        "{md}"
    );
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["n"], 32_768);
    assert_eq!(json["accuracy_column"], "cifar10_test_acc_hp90");

    let out = std::env::temp_dir().join(format!("bench-nats-golden-{}", std::process::id()));
    let files = report.write(&out).unwrap();
    for p in [
        &files.json,
        &files.markdown,
        files.png.as_ref().unwrap(),
        files.svg.as_ref().unwrap(),
    ] {
        let len = std::fs::metadata(p).unwrap().len();
        assert!(len > 2_000, "{} is only {len} bytes", p.display());
    }
    let png = std::fs::read(files.png.as_ref().unwrap()).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let svg = std::fs::read_to_string(files.svg.as_ref().unwrap()).unwrap();
    assert!(svg.starts_with("<svg") && svg.matches("<circle").count() >= 32_768);
    if std::env::var_os("BENCH_NATS_KEEP_FIGURES").is_none() {
        std::fs::remove_dir_all(&out).ok();
    } else {
        println!("figures kept in {}", out.display());
    }
}
