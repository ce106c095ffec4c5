//! Run directories, crash safety and refusals, through the real `bossnas` binary
//! (docs/reliability.md says what each test guarantees).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{bossnas, fails_with};

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_bossnas"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bossnas")
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// `metrics.jsonl` without the wall-clock fields, which differ between runs.
fn metrics_without_timing(run: &Path) -> Vec<serde_json::Value> {
    read(&run.join("metrics.jsonl"))
        .lines()
        .map(|l| {
            let mut v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("invalid JSON line {l:?}: {e}"));
            if let Some(o) = v.as_object_mut() {
                o.remove("seconds");
                o.remove("images_per_s");
            }
            v
        })
        .collect()
}

/// Every file of the checkpoint `LATEST` names, by name (tensors, optimizer, state).
fn latest_checkpoint(run: &Path) -> Vec<(String, Vec<u8>)> {
    let ck = run.join("checkpoint");
    let tag = read(&ck.join("LATEST"));
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(ck.join(tag.trim()))
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// What must be equal between an interrupted and an uninterrupted run: of a burnpack record
/// its tensor data section (the metadata before it holds per-process parameter ids), of
/// `state.json` the train state (its manifest hashes cover those ids, and `metrics_bytes` the
/// wall-clock fields of metrics.jsonl).
fn comparable(name: &str, bytes: &[u8]) -> Vec<u8> {
    if name.ends_with(".bpk") {
        // burnpack: magic (4), version (2), metadata size (u32 LE), metadata, then the data
        // section aligned to 256 bytes.
        let meta = u32::from_le_bytes(bytes[6..10].try_into().unwrap()) as usize;
        let start = (10 + meta).div_ceil(256) * 256;
        bytes[start.min(bytes.len())..].to_vec()
    } else if name == "state.json" {
        let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        v["state"].to_string().into_bytes()
    } else {
        bytes.to_vec()
    }
}

#[test]
fn two_train_runs_started_at_once_get_their_own_directories() {
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_str().unwrap();
    let args = [
        "train",
        "--config",
        "tiny",
        "--out",
        o,
        "--max-steps",
        "2",
        "--quiet",
    ];
    let children: Vec<Child> = (0..3).map(|_| spawn(&args)).collect();
    for c in children {
        let r = c.wait_with_output().unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    }
    let runs = subdirs(out.path());
    assert_eq!(runs.len(), 3, "{runs:?}");
    for run in &runs {
        let steps: Vec<u64> = metrics_without_timing(run)
            .iter()
            .filter_map(|m| m["global_step"].as_u64())
            .collect();
        assert_eq!(steps, [1, 2], "{}", run.display());
        assert!(!latest_checkpoint(run).is_empty());
    }
    // Sequential starts in the same second never reuse a directory either.
    let r = bossnas(&args);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(subdirs(out.path()).len(), 4);
}

#[test]
fn two_retrain_runs_started_at_once_get_their_own_directories() {
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_str().unwrap();
    let args = [
        "retrain",
        "--arch",
        "8:8:8:8:8",
        "--data",
        "synthetic",
        "--recipe",
        "tiny",
        "--out",
        o,
        "--max-steps",
        "1",
        "--quiet",
    ];
    let children: Vec<Child> = (0..2).map(|_| spawn(&args)).collect();
    for c in children {
        let r = c.wait_with_output().unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    }
    let runs = subdirs(out.path());
    assert_eq!(runs.len(), 2, "{runs:?}");
    for run in &runs {
        assert!(run.join("run.json").is_file());
        assert!(!latest_checkpoint(run).is_empty());
    }
}

/// Starts `args` and SIGKILLs it as soon as `when(run)` holds (polled every millisecond), or
/// lets it finish. Returns whether it was killed.
fn kill_when(
    args: &[&str],
    run_of: impl Fn() -> Option<PathBuf>,
    when: impl Fn(&Path) -> bool,
) -> bool {
    let mut child = spawn(args);
    let started = Instant::now();
    loop {
        if let Some(run) = run_of()
            && when(&run)
        {
            // `Child::kill` is SIGKILL on Unix: no destructor, no flush, no cleanup runs.
            let killed = child.try_wait().unwrap().is_none() && child.kill().is_ok();
            let _ = child.wait();
            return killed;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            assert!(status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            return false;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "run did not end"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn step_lines(run: &Path) -> usize {
    read(&run.join("metrics.jsonl"))
        .lines()
        .filter(|l| l.contains("\"event\":\"step\""))
        .count()
}

fn staging(run: &Path) -> bool {
    std::fs::read_dir(run.join("checkpoint"))
        .map(|r| {
            r.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(".staging-"))
        })
        .unwrap_or(false)
}

/// SIGKILL at several points (inside a step, during a checkpoint write, while rating a block,
/// after a block boundary), `--resume` after each, and the result equals an uninterrupted run:
/// every tensor and optimizer buffer of the final checkpoint, the rankings, and metrics.jsonl.
#[test]
fn sigkill_at_any_point_then_resume_equals_an_uninterrupted_run() {
    let out = tempfile::tempdir().unwrap();
    let whole_out = out.path().join("whole");
    let cut_out = out.path().join("cut");
    let w = whole_out.to_str().unwrap();
    let c = cut_out.to_str().unwrap();
    // A checkpoint after every step, so kills land during checkpoint writes too.
    let fresh = |o: &str| {
        vec![
            "train".to_string(),
            "--config".into(),
            "tiny".into(),
            "--out".into(),
            o.to_string(),
            "--checkpoint-every".into(),
            "1".into(),
            "--quiet".into(),
        ]
    };
    let r = bossnas(&fresh(w).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let whole = subdirs(&whole_out).pop().unwrap();

    let run_of = || subdirs(&cut_out).pop();
    let fresh_cut = fresh(c);
    let fresh_cut: Vec<&str> = fresh_cut.iter().map(String::as_str).collect();
    // Points, in run order (tiny: 4 steps per block, 3 blocks; block k is rated after step 4k+4).
    type When = Box<dyn Fn(&Path) -> bool>;
    let points: Vec<(&str, When)> = vec![
        ("inside step 2", Box::new(|r: &Path| step_lines(r) >= 1)),
        ("during a checkpoint write", Box::new(staging)),
        (
            "while rating block 0",
            Box::new(|r: &Path| step_lines(r) >= 4),
        ),
        (
            "after the block 0/1 boundary",
            Box::new(|r: &Path| read(&r.join("metrics.jsonl")).contains("block_end")),
        ),
        ("inside block 1", Box::new(|r: &Path| step_lines(r) >= 6)),
        (
            "during a checkpoint write in block 2",
            Box::new(|r: &Path| step_lines(r) >= 9 && staging(r)),
        ),
    ];
    let mut killed = Vec::new();
    for (i, (name, when)) in points.iter().enumerate() {
        let resume;
        let args: Vec<&str> = if i == 0 {
            fresh_cut.clone()
        } else {
            resume = run_of().unwrap().to_string_lossy().into_owned();
            vec!["train", "--resume", &resume, "--quiet"]
        };
        if kill_when(&args, run_of, when) {
            killed.push(format!(
                "{name} (after {} steps)",
                step_lines(&run_of().unwrap())
            ));
        }
    }
    let cut = run_of().unwrap();
    let resume = cut.to_string_lossy().into_owned();
    let r = bossnas(&["train", "--resume", &resume, "--quiet"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    eprintln!("killed: {killed:?}");
    assert!(killed.len() >= 3, "too few kills landed: {killed:?}");

    assert_eq!(metrics_without_timing(&cut), metrics_without_timing(&whole));
    let (a, b) = (latest_checkpoint(&whole), latest_checkpoint(&cut));
    assert_eq!(
        a.iter().map(|f| &f.0).collect::<Vec<_>>(),
        b.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    let differ: Vec<&String> = a
        .iter()
        .zip(&b)
        .filter(|((n, x), (_, y))| comparable(n, x) != comparable(n, y))
        .map(|((n, _), _)| n)
        .collect();
    assert!(
        differ.is_empty(),
        "{differ:?} differ after kills at {killed:?}"
    );
    // Every other output of the run (resolved config, the rankings and their JSON and stage
    // files) is byte for byte what the uninterrupted run wrote, and no file is missing or extra.
    let outputs = |run: &Path| -> Vec<(String, Vec<u8>)> {
        let mut files = Vec::new();
        let mut stack = vec![run.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                let rel = p.strip_prefix(run).unwrap().to_string_lossy().into_owned();
                if rel == "checkpoint" || rel == "metrics.jsonl" || rel == ".lock" {
                    continue; // compared above; the lock is the live run's
                }
                if p.is_dir() {
                    stack.push(p);
                } else {
                    files.push((rel, std::fs::read(&p).unwrap()));
                }
            }
        }
        files.sort();
        files
    };
    let (a, b) = (outputs(&whole), outputs(&cut));
    assert_eq!(
        a.iter().map(|f| &f.0).collect::<Vec<_>>(),
        b.iter().map(|f| &f.0).collect::<Vec<_>>(),
        "the resumed run wrote other files"
    );
    assert!(a.iter().any(|(n, _)| n == "rating/path_rank_2.json"));
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "{name} differs after kills at {killed:?}");
    }
    // No staging directory survives a completed resume.
    assert!(!staging(&cut));
}

#[test]
fn options_are_checked_before_any_file_is_written() {
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_str().unwrap();
    fails_with(
        &[
            "train",
            "--config",
            "tiny",
            "--out",
            o,
            "--checkpoint-every",
            "0",
        ],
        "--checkpoint-every",
    );
    fails_with(
        &["train", "--config", "tiny", "--out", o, "--device", "tpu"],
        "tpu",
    );
    #[cfg(not(feature = "cuda"))]
    fails_with(
        &[
            "retrain",
            "--arch",
            "8:8:8:8:8",
            "--data",
            "synthetic",
            "--recipe",
            "tiny",
            "--out",
            o,
            "--device",
            "cuda",
        ],
        "cuda",
    );
    assert!(subdirs(out.path()).is_empty(), "{:?}", subdirs(out.path()));
}

#[test]
fn a_corrupt_image_is_found_before_the_first_step_and_leaves_no_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("images");
    for split in ["train", "val"] {
        for (c, class) in ["cat", "dog"].iter().enumerate() {
            let d = data.join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..4u8 {
                let img = image::RgbImage::from_fn(8, 8, |x, y| {
                    image::Rgb([x as u8 * 30, y as u8 * 30, i * 60 + c as u8])
                });
                img.save(d.join(format!("{i}.png"))).unwrap();
            }
        }
    }
    // The last image of the training set (met only after the first batches) is corrupt.
    std::fs::write(
        data.join("train/dog/9.jpg"),
        b"\xff\xd8\xff\xe0 not really a JPEG",
    )
    .unwrap();
    let cfg = dir.path().join("folder.toml");
    std::fs::write(
        &cfg,
        format!(
            "preset = \"tiny\"\n[data]\ndataset = \"image_folder\"\nroot = {:?}\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let runs = dir.path().join("runs");
    fails_with(
        &[
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            runs.to_str().unwrap(),
            "--quiet",
        ],
        "9.jpg",
    );
    assert!(subdirs(&runs).is_empty(), "{:?}", subdirs(&runs));
}

#[test]
fn a_run_in_use_cannot_be_resumed_twice() {
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_str().unwrap();
    let r = bossnas(&[
        "train",
        "--config",
        "tiny",
        "--out",
        o,
        "--max-steps",
        "1",
        "--quiet",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let run = subdirs(out.path()).pop().unwrap();
    let before = read(&run.join("metrics.jsonl"));
    // Stand in for a second process that is training this run: hold its lock.
    let lock = std::fs::File::open(run.join(".lock")).unwrap();
    lock.try_lock().unwrap();
    let r = run.to_str().unwrap();
    fails_with(
        &["train", "--resume", r, "--quiet"],
        "in use by another process",
    );
    fails_with(&["rate", "--run", r], "in use by another process");
    assert_eq!(read(&run.join("metrics.jsonl")), before);
    drop(lock);
    let out = bossnas(&["train", "--resume", r, "--max-steps", "2", "--quiet"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A config cannot be given with --resume (the run's own config is used).
    fails_with(
        &["train", "--resume", r, "--config", "tiny"],
        "cannot be used with",
    );
}
