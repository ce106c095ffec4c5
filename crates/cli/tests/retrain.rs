//! End to end on the command line: search (tiny supernet run) → retrain the searched NATS
//! network on real CIFAR-10 images (the exact fixture) with the `tiny` recipe, interrupted and
//! resumed → evaluate the run, its checkpoint and its export. Plus bad input.

mod common;

use std::path::{Path, PathBuf};

use common::{bossnas, fails_with, shared_data};

fn ok(args: &[&str]) -> String {
    let out = bossnas(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A CIFAR-10 binary directory whose every batch is the 20 exact test images of the fixture.
fn cifar_fixture_dir(root: &Path) -> PathBuf {
    let bin = std::fs::read(shared_data().join("cifar-exact/cifar10_test_first20.bin")).unwrap();
    let dir = root.join("cifar10");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 1..=5 {
        std::fs::write(dir.join(format!("data_batch_{i}.bin")), &bin).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), &bin).unwrap();
    dir
}

fn only_subdir(dir: &Path) -> PathBuf {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries.pop().unwrap()
}

#[test]
fn search_retrain_resume_eval_export_end_to_end() {
    let tmp = std::env::temp_dir().join(format!("bossnas-cli-retrain-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let (train_out, retrain_out) = (tmp.join("train"), tmp.join("retrain"));
    let s = |p: &Path| p.to_str().unwrap().to_string();

    // 1. Search: the tiny supernet run and its block-wise search.
    ok(&[
        "train",
        "--config",
        "tiny",
        "--out",
        &s(&train_out),
        "--quiet",
    ]);
    let run = only_subdir(&train_out);
    ok(&["search", "--run", &s(&run)]);
    let arch_file = run.join("search/arch.json");
    assert!(arch_file.is_file());

    // 2. Retrain the searched network on real CIFAR-10 images, stopping after 2 steps.
    let data = cifar_fixture_dir(&tmp);
    let out = ok(&[
        "retrain",
        "--arch",
        &s(&arch_file),
        "--data",
        &s(&data),
        "--recipe",
        "tiny",
        "--out",
        &s(&retrain_out),
        "--max-steps",
        "2",
        "--quiet",
    ]);
    assert!(out.contains("stopped after 2/4"), "{out}");
    let rrun = only_subdir(&retrain_out);
    // 3. Resume to the end: evaluation and export.
    let out = ok(&["retrain", "--resume", &s(&rrun), "--quiet"]);
    assert!(out.contains("finished after 4/4"), "{out}");
    assert!(
        out.contains("top-1") && out.contains("(16 images)"),
        "{out}"
    );
    let eval_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rrun.join("eval.json")).unwrap()).unwrap();
    let top1 = eval_json["model"]["top1"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&top1));
    let metrics = std::fs::read_to_string(rrun.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().filter(|l| l.contains("\"lr\"")).count(), 4);

    // 4. Evaluate the run directory, the newest checkpoint and the export: same top-1.
    for target in [
        rrun.clone(),
        rrun.join("checkpoint").join(
            std::fs::read_to_string(rrun.join("checkpoint/LATEST"))
                .unwrap()
                .trim(),
        ),
        rrun.join("model.bpk"),
    ] {
        let v: serde_json::Value =
            serde_json::from_str(&ok(&["eval", "--checkpoint", &s(&target), "--json"])).unwrap();
        assert_eq!(v["images"], 16);
        assert!(
            (v["top1"].as_f64().unwrap() - top1).abs() < 1e-9,
            "{target:?}"
        );
        assert!(v["top5"].as_f64().unwrap() >= top1);
    }
    let ema = ok(&["eval", "--checkpoint", &s(&rrun), "--ema"]);
    assert!(ema.contains("top-5:"), "{ema}");

    // 5. A corrupt checkpoint is refused, naming the file.
    let latest = std::fs::read_to_string(rrun.join("checkpoint/LATEST")).unwrap();
    let model = rrun
        .join("checkpoint")
        .join(latest.trim())
        .join("model.bpk");
    let mut bytes = std::fs::read(&model).unwrap();
    bytes.truncate(bytes.len() - 7);
    std::fs::write(&model, bytes).unwrap();
    fails_with(&["eval", "--checkpoint", &s(&rrun)], "truncated");
    // `--resume` falls back to the newest intact checkpoint, saying which and why.
    let out = bossnas(&["retrain", "--resume", &s(&rrun), "--quiet"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("model.bpk") && err.contains("truncated") && err.contains("newest intact"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("finished after 4/4"));
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn retrain_bad_input_is_a_clear_error() {
    let base = [
        "--data",
        "synthetic",
        "--out",
        "/tmp/bossnas-never-created",
        "--quiet",
    ];
    fn with<'a>(extra: &[&'a str], base: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec!["retrain"];
        v.extend_from_slice(extra);
        v.extend_from_slice(base);
        v
    }
    fails_with(
        &with(&["--arch", "9:9:9", "--recipe", "tiny"], &base),
        "architecture",
    );
    fails_with(
        &with(&["--arch", "no-such-net", "--recipe", "tiny"], &base),
        "no-such-net",
    );
    fails_with(
        &with(&["--arch", "8:8:8:8:8", "--recipe", "no-such"], &base),
        "no-such",
    );
    let bad_recipe =
        std::env::temp_dir().join(format!("bossnas-bad-ra-{}.toml", std::process::id()));
    std::fs::write(
        &bad_recipe,
        "preset = \"tiny\"\n[regularization]\nrand_augment = \"rand-m9-zz1\"\n",
    )
    .unwrap();
    fails_with(
        &with(
            &[
                "--arch",
                "8:8:8:8:8",
                "--recipe",
                bad_recipe.to_str().unwrap(),
            ],
            &base,
        ),
        "rand_augment",
    );
    let _ = std::fs::remove_file(&bad_recipe);
    fails_with(
        &[
            "retrain",
            "--arch",
            "8:8:8:8:8",
            "--recipe",
            "tiny",
            "--data",
            "/nonexistent/c10",
            "--out",
            "/tmp/bossnas-never-created",
            "--quiet",
        ],
        "/nonexistent/c10",
    );
    assert!(!Path::new("/tmp/bossnas-never-created").exists());
    fails_with(
        &["retrain", "--resume", "/nonexistent/run"],
        "/nonexistent/run",
    );
    fails_with(
        &["eval", "--checkpoint", "/nonexistent/run"],
        "/nonexistent/run",
    );
    // `eval` only reads: a folder that is not a run is refused and left as it was (no
    // `checkpoint/` created in it).
    let not_a_run = tempfile::tempdir().unwrap();
    fails_with(
        &["eval", "--checkpoint", not_a_run.path().to_str().unwrap()],
        "not a retraining run directory",
    );
    assert_eq!(std::fs::read_dir(not_a_run.path()).unwrap().count(), 0);
    fails_with(
        &[
            "retrain-sanity",
            "--data",
            "synthetic",
            "--truth",
            "/nonexistent.csv",
            "--recipe",
            "tiny",
            "--archs",
            "8:8:8:8:8",
        ],
        "at least 2",
    );
    let dir = std::env::temp_dir().join(format!("bossnas-bad-recipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let recipe = dir.join("r.toml");
    std::fs::write(&recipe, "preset = \"tiny\"\n[schedule]\nbatch_size = 0\n").unwrap();
    fails_with(
        &with(
            &["--arch", "8:8:8:8:8", "--recipe", recipe.to_str().unwrap()],
            &base,
        ),
        "schedule.batch_size",
    );
    std::fs::write(&recipe, "preset = \"tiny\"\n[schedule]\nbatchsize = 4\n").unwrap();
    fails_with(
        &with(
            &["--arch", "8:8:8:8:8", "--recipe", recipe.to_str().unwrap()],
            &base,
        ),
        "batchsize",
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sanity_command_reports_tau_b() {
    let tmp = std::env::temp_dir().join(format!("bossnas-cli-sanity-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let truth = shared_data().join("nats-sss/nats_sss_cifar10.csv");
    let report = tmp.join("table.md");
    let out = ok(&[
        "retrain-sanity",
        "--data",
        "synthetic",
        "--truth",
        truth.to_str().unwrap(),
        "--recipe",
        "tiny",
        "--archs",
        "8:8:8:8:8,16:16:16:16:16",
        "--out",
        tmp.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(
        out.contains("Kendall τ-b") && out.contains("79.79"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&report).unwrap(), out);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.join("sanity.json")).unwrap()).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), 2);
    let _ = std::fs::remove_dir_all(&tmp);
}
