//! End-to-end tests of the `bossnas` binary: the figures of the spec come out of the CLI,
//! and bad input gives a clear error and exit status 2 (never a panic).

mod common;

use common::{bossnas, fails_with, shared_data};

fn json_of(args: &[&str]) -> serde_json::Value {
    let out = bossnas(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

#[test]
fn space_info_json_has_the_sizes() {
    let v = json_of(&["space", "info", "hytra", "--json"]);
    assert_eq!(v["space"], "hytra");
    assert_eq!(v["total"], 2_818_103);
    assert_eq!(v["restricted"], 1_703_991);
    assert_eq!(v["executable"], 1_615_872);
    let pops: Vec<u64> = v["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["population"].as_u64().unwrap())
        .collect();
    assert_eq!(pops, [51, 99, 80, 16]);

    let v = json_of(&["space", "info", "mbconv", "--json"]);
    assert_eq!(v["total"], 68_719_476_736u64);
    assert_eq!(v["blocks"], serde_json::json!([16, 256, 256, 256, 256]));

    let v = json_of(&["space", "info", "nats", "--json"]);
    assert_eq!(v["total"], 32_768);
    assert_eq!(v["blocks"], serde_json::json!([64, 64, 8]));
}

#[test]
fn arch_cost_reproduces_the_reference_figures() {
    let v = json_of(&[
        "arch",
        "cost",
        "--space",
        "hytra",
        "--arch",
        "bossnet-t0-nose",
        "--json",
    ]);
    assert_eq!(v["madds"], 3_441_888_768u64);
    assert_eq!(v["params"], 37_319_080);
    let v = json_of(&[
        "arch",
        "cost",
        "--space",
        "hytra",
        "--arch",
        "bossnet-t0",
        "--json",
    ]);
    assert_eq!(v["params"], 38_415_960);
    // The T0 search path, as JSON, in the supernet and as a retrained network.
    let t0 = "[[5,4,3,3],[3,2,3,0],[0,0,1,0],[0,0,0,0]]";
    let v = json_of(&[
        "arch",
        "cost",
        "--space",
        "hytra",
        "--arch",
        t0,
        "--in-supernet",
        "--json",
    ]);
    assert_eq!(v["params"], 57_294_464);
    assert_eq!(
        (v["madds"].as_u64().unwrap() as f64 / 1e9 * 1000.0).round(),
        5919.0
    );
    let v = json_of(&["arch", "cost", "--space", "hytra", "--arch", t0, "--json"]);
    assert_eq!(v["madds"], 3_441_888_768u64);
    assert_eq!(
        v["retrain_encoding"],
        serde_json::json!([[1], [1], [1, 1, 1, 0, 1], [0, 0, 0, 1, 0, 0, 0, 0, 0]])
    );
    // NATS-Bench reference parameter counts.
    for (arch, params) in [
        ("8:8:8:8:8", 11_714),
        ("8:8:16:40:40", 107_826),
        ("64:64:64:64:64", 713_674),
    ] {
        let v = json_of(&["arch", "cost", "--space", "nats", "--arch", arch, "--json"]);
        assert_eq!(v["params"], params, "{arch}");
    }
    let v = json_of(&[
        "arch",
        "cost",
        "--space",
        "mbconv",
        "--arch",
        "00-1111-2222-3333-0123",
        "--json",
    ]);
    assert!(v["madds"].as_u64().unwrap() > 200_000_000);
}

#[test]
fn enumerate_lists_every_architecture() {
    let out = bossnas(&["space", "enumerate", "nats", "--costs"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 32_769);
    assert_eq!(lines[0], "arch,params,madds");
    assert!(lines[1].starts_with("8:8:8:8:8,11714,"));
    assert!(lines[32_768].starts_with("64:64:64:64:64,"));

    let out = bossnas(&["space", "enumerate", "hytra", "--block", "0"]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().lines().count(),
        50,
        "executable block 0 drops 5555"
    );
    let out = bossnas(&[
        "space",
        "enumerate",
        "hytra",
        "--block",
        "0",
        "--variant",
        "restricted",
    ]);
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 51);
    let out = bossnas(&[
        "space",
        "enumerate",
        "hytra",
        "--block",
        "2",
        "--input-scale",
        "1/32",
    ]);
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 16);
    let out = bossnas(&["space", "enumerate", "mbconv", "--block", "1"]);
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 256);
    let out = bossnas(&["space", "enumerate", "nats", "--block", "2"]);
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 8);
}

#[test]
fn bad_input_is_a_clear_error() {
    fails_with(
        &[
            "arch",
            "cost",
            "--space",
            "nats",
            "--arch",
            "64:40:50:64:56",
        ],
        "layer 2: width 50",
    );
    fails_with(
        &["arch", "cost", "--space", "hytra", "--arch", "bossnet-t9"],
        "valid names are",
    );
    fails_with(
        &[
            "arch",
            "cost",
            "--space",
            "hytra",
            "--arch",
            "[[5,4,3,7],[3,2,3,0],[0,0,1,0],[0,0,0,0]]",
            "--encoding",
            "search",
        ],
        "block 0 layer 3: op index 7",
    );
    fails_with(
        &[
            "arch",
            "cost",
            "--space",
            "hytra",
            "--arch",
            "[[1],[1],[1,1",
        ],
        "malformed JSON",
    );
    fails_with(
        &[
            "arch",
            "cost",
            "--space",
            "mbconv",
            "--arch",
            "00-1111-2222-3333-0124",
        ],
        "block 4",
    );
    fails_with(
        &["space", "enumerate", "hytra", "--block", "1"],
        "--input-scale",
    );
    fails_with(&["space", "enumerate", "mbconv"], "--block");
    fails_with(
        &["nats", "correlate", "--scores", "/nonexistent/scores.csv"],
        "/nonexistent/scores.csv",
    );
}

#[test]
fn nats_correlate_reproduces_the_official_tau() {
    let data = shared_data();
    let scores = data.join("bossnas-reference/bossnas_c10_arch_scores.csv");
    let truth = data.join("nats-sss/nats_sss_cifar10.csv");
    let out_dir = std::env::temp_dir().join(format!("bossnas-cli-test-{}", std::process::id()));
    let v = json_of(&[
        "nats",
        "correlate",
        "--scores",
        scores.to_str().unwrap(),
        "--truth",
        truth.to_str().unwrap(),
        "--score-column",
        "bossnas_loss_score",
        "--bootstrap",
        "0",
        "--json",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let raw = &v["score"]["raw"];
    let round3 = |x: &serde_json::Value| (x.as_f64().unwrap() * 1000.0).round() / 1000.0;
    assert_eq!(round3(&raw["kendall_tau_b"]), -0.534, "{raw}");
    assert_eq!(round3(&raw["spearman_rho"]), -0.734);
    assert_eq!(round3(&raw["pearson_r"]), -0.718);
    assert!(out_dir.join("report.md").is_file());
    assert!(out_dir.join("scatter.png").is_file());
    let _ = std::fs::remove_dir_all(out_dir);
}

#[test]
fn train_then_search_end_to_end_on_tiny() {
    let out_dir = std::env::temp_dir().join(format!("bossnas-cli-train-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    let out = bossnas(&[
        "train",
        "--config",
        "tiny",
        "--out",
        out_dir.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = std::fs::read_dir(&out_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for k in 0..3 {
        assert!(
            run.join(format!("rating/path_rank_{k}.csv")).is_file(),
            "block {k} ranking"
        );
    }
    let out = bossnas(&["rate", "--run", run.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("block 2:"));
    let out = bossnas(&["search", "--run", run.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The searched architecture is accepted by `arch cost`.
    let arch: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("search/arch.json")).unwrap())
            .unwrap();
    let arch = arch
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| arch.to_string());
    let v = json_of(&["arch", "cost", "--space", "nats", "--arch", &arch, "--json"]);
    assert!(v["params"].as_u64().unwrap() > 0);
    // ... also given as the file itself (docs/training.md).
    let arch_file = run.join("search/arch.json");
    let w = json_of(&[
        "arch",
        "cost",
        "--space",
        "nats",
        "--arch",
        arch_file.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(w["params"], v["params"]);
    // Options that cannot be honoured on a finished run are refused, not ignored.
    let r = run.to_str().unwrap();
    fails_with(&["rate", "--run", r, "--device", "tpu"], "tpu");
    fails_with(&["rate", "--run", r, "--centre", "normalised"], "--centre");
    fails_with(&["rate", "--run", r, "--device", "cpu"], "--device");
    fails_with(&["search", "--run", r, "--lambda", "1,1"], "3 blocks");
    // Resuming a finished run is a no-op that succeeds.
    let out = bossnas(&["train", "--resume", run.to_str().unwrap(), "--quiet"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(out_dir);
}

#[test]
fn train_bad_input_is_a_clear_error() {
    fails_with(&["train", "--config", "no-such-preset"], "no-such-preset");
    fails_with(
        &["train", "--resume", "/nonexistent/run"],
        "/nonexistent/run",
    );
    fails_with(&["search", "--run", "/nonexistent/run"], "/nonexistent/run");
    fails_with(
        &["train", "--config", "tiny", "--time-budget", "0"],
        "positive number of minutes",
    );
    fails_with(
        &["train", "--config", "tiny", "--time-budget", "ten"],
        "\"ten\" is not a number of minutes",
    );
}

#[test]
fn config_errors_name_the_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "preset = \"tiny\"\n[train]\nlr = \"fast\"\n").unwrap();
    let out = bossnas(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        dir.path().join("runs").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("`train.lr`") && err.contains("fast"), "{err}");
    assert!(!err.contains("not a preset"), "{err}");
    assert_eq!(err.matches("bad.toml").count(), 1, "{err}");
    assert!(!dir.path().join("runs").exists());
    fails_with(&["train", "--config", "no-such-file.toml"], "no such file");
}

#[test]
fn a_closed_pipe_is_not_a_panic() {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_bossnas"))
        .args(["space", "info", "hytra", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end before anything is written, as `| head -1` does after a line.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_ne!(out.status.code(), Some(101), "{err}");
}

/// `arch draw` writes a picture for each of the three spaces (issue 20), and refuses an
/// architecture that is not of the space, naming it.
#[test]
fn arch_draw_writes_a_picture_for_every_space() {
    let dir = tempfile::tempdir().unwrap();
    for (space, arch, file) in [
        ("hytra", "bossnet-t0", "t0.svg"),
        ("nats", "64:8:56:56:48", "nats.svg"),
        ("mbconv", "01-0123-3210-0000-1111", "mb.svg"),
        ("mbconv", "01-0123-3210-0000-1111", "mb.png"),
    ] {
        let out = dir.path().join(file);
        let o = bossnas(&[
            "arch",
            "draw",
            "--space",
            space,
            "--arch",
            arch,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(
            o.status.success(),
            "{space}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            std::fs::metadata(&out).unwrap().len() > 500,
            "{}",
            out.display()
        );
    }
    // One bar per searched MBConv layer (18), plus the legend's two swatches at most.
    let svg = std::fs::read_to_string(dir.path().join("mb.svg")).unwrap();
    assert!(svg.matches("<rect").count() >= 18, "{svg}");
    fails_with(
        &[
            "arch",
            "draw",
            "--space",
            "mbconv",
            "--arch",
            "01-0123",
            "--out",
            dir.path().join("bad.svg").to_str().unwrap(),
        ],
        "block",
    );
}
