//! Every command finds its data by one rule (`--data`, else `$BOSSNAS_DATA`, else the cache)
//! and config files name their data relative to themselves, so the commands work from any
//! working folder (here `/`).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::shared_data;

fn bossnas_in(cwd: &Path, data_env: Option<&Path>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bossnas"));
    c.current_dir(cwd).args(args);
    match data_env {
        Some(d) => c.env("BOSSNAS_DATA", d),
        None => c.env_remove("BOSSNAS_DATA"),
    };
    c.output().expect("run bossnas")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn nats_correlate_official_finds_truth_and_scores_through_bossnas_data() {
    let stdout = ok(&bossnas_in(
        Path::new("/"),
        Some(&shared_data()),
        &[
            "nats",
            "correlate",
            "--scores",
            "official",
            "--bootstrap",
            "0",
            "--json",
        ],
    ));
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let tau = v["score"]["raw"]["kendall_tau_b"].as_f64().unwrap();
    assert_eq!((tau * 1000.0).round() / 1000.0, -0.534, "{stdout}");
}

/// A CIFAR-10 binary folder made of the 20 exact test images (every batch the same file).
fn tiny_cifar(dir: &Path) {
    let bin = std::fs::read(shared_data().join("cifar-exact/cifar10_test_first20.bin")).unwrap();
    let b = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&b).unwrap();
    for f in [
        "data_batch_1",
        "data_batch_2",
        "data_batch_3",
        "data_batch_4",
        "data_batch_5",
        "test_batch",
    ] {
        std::fs::write(b.join(format!("{f}.bin")), &bin).unwrap();
    }
}

const CONFIG: &str = "preset = \"tiny\"\n\n[data]\ndataset = \"cifar10\"\n{ROOT}train_subset = 16\n\
                      rating_subset = 8\nimage_size = 32\naugment = \"cifar\"\n";

fn resolved_root(runs: &Path) -> String {
    let run = std::fs::read_dir(runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(run.join("config.resolved.toml")).unwrap();
    text.lines()
        .find(|l| l.starts_with("root = "))
        .unwrap()
        .to_string()
}

#[test]
fn train_finds_data_relative_to_the_config_file_or_through_bossnas_data() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_cifar(&tmp.path().join("cifar"));
    let cfg_dir = tmp.path().join("configs");
    std::fs::create_dir(&cfg_dir).unwrap();

    // 1. `root` in the file, relative to the file; run from `/` with no BOSSNAS_DATA.
    let relative = cfg_dir.join("relative.toml");
    std::fs::write(&relative, CONFIG.replace("{ROOT}", "root = \"../cifar\"\n")).unwrap();
    let runs = tmp.path().join("runs1");
    ok(&bossnas_in(
        Path::new("/"),
        None,
        &[
            "train",
            "--config",
            relative.to_str().unwrap(),
            "--out",
            runs.to_str().unwrap(),
            "--max-steps",
            "1",
            "--quiet",
        ],
    ));
    let want = std::path::absolute(cfg_dir.join("../cifar")).unwrap();
    assert_eq!(
        resolved_root(&runs),
        format!("root = {:?}", want.display().to_string())
    );

    // 2. No `root`: the data directory from $BOSSNAS_DATA, the dataset found inside it.
    let plain = cfg_dir.join("plain.toml");
    std::fs::write(&plain, CONFIG.replace("{ROOT}", "")).unwrap();
    let runs = tmp.path().join("runs2");
    ok(&bossnas_in(
        Path::new("/"),
        Some(&tmp.path().join("cifar")),
        &[
            "train",
            "--config",
            plain.to_str().unwrap(),
            "--out",
            runs.to_str().unwrap(),
            "--max-steps",
            "1",
            "--quiet",
        ],
    ));
    let want = tmp.path().join("cifar/cifar-10-batches-bin");
    assert_eq!(
        resolved_root(&runs),
        format!("root = {:?}", want.display().to_string())
    );

    // 3. --data beats $BOSSNAS_DATA (which names a folder that does not exist).
    let runs = tmp.path().join("runs3");
    ok(&bossnas_in(
        Path::new("/"),
        Some(&tmp.path().join("nowhere")),
        &[
            "train",
            "--config",
            plain.to_str().unwrap(),
            "--data",
            tmp.path().join("cifar").to_str().unwrap(),
            "--out",
            runs.to_str().unwrap(),
            "--max-steps",
            "1",
            "--quiet",
        ],
    ));
    assert_eq!(
        resolved_root(&runs),
        format!("root = {:?}", want.display().to_string())
    );
}

/// `retrain --data cifar10` and `eval --data cifar10` find CIFAR-10 in the data directory
/// ($BOSSNAS_DATA), from any folder, like every other command (issue 20); the run records the
/// absolute folder it used.
#[test]
fn retrain_and_eval_find_a_named_dataset_through_bossnas_data() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    tiny_cifar(&data);
    let runs = tmp.path().join("runs");
    ok(&bossnas_in(
        Path::new("/"),
        Some(&data),
        &[
            "retrain",
            "--arch",
            "8:8:8:8:8",
            "--data",
            "cifar10",
            "--recipe",
            "tiny",
            "--out",
            runs.to_str().unwrap(),
            "--max-steps",
            "1",
            "--quiet",
        ],
    ));
    let run = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let meta = std::fs::read_to_string(run.join("run.json")).unwrap();
    let want = data.join("cifar-10-batches-bin");
    assert!(
        meta.contains(&format!("{:?}", want.display().to_string())),
        "{meta}"
    );
    let out = ok(&bossnas_in(
        Path::new("/"),
        Some(&data),
        &[
            "eval",
            "--checkpoint",
            run.to_str().unwrap(),
            "--data",
            "cifar10",
            "--json",
        ],
    ));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["images"].as_u64().unwrap() > 0, "{out}");
}
