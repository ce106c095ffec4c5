//! Help and progress as a person, a log and a tool read them.

mod common;

use common::bossnas;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn help_lists_presets_and_required_arguments() {
    let out = text(&bossnas(&["train", "--help"]).stdout);
    for preset in [
        "tiny",
        "nats-c10-cpu",
        "nats-c10-paper",
        "hytra-imagenet-paper",
    ] {
        assert!(out.contains(preset), "{out}");
    }
    assert!(out.contains("bossnas train --config <CONFIG>"), "{out}");
    let out = text(&bossnas(&["retrain", "--help"]).stdout);
    assert!(
        out.contains("bossnas retrain --arch <ARCH> --data <DATA> --recipe <RECIPE>"),
        "{out}"
    );
    assert!(out.contains("nats-cifar-short"), "{out}");
}

#[test]
fn a_bad_device_reads_the_same_from_the_flag_and_from_a_config() {
    let flag = text(&bossnas(&["train", "--config", "tiny", "--device", "gpu0"]).stderr);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "preset = \"tiny\"\ndevice = \"gpu0\"\n").unwrap();
    let file = text(&bossnas(&["train", "--config", cfg.to_str().unwrap()]).stderr);
    let wording = "unknown device \"gpu0\"; expected cpu, wgpu, wgpu:N, cuda or cuda:N";
    assert!(flag.contains(wording), "{flag}");
    assert!(file.contains(wording), "{file}");
}

/// Without a terminal (the test captures stderr) training writes plain lines: block ratings
/// with the winner in NATS widths, checkpoints, the end; the final line names the chosen
/// paths without "so far".
#[test]
fn a_log_gets_plain_lines_and_a_tool_gets_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = bossnas(&[
        "train",
        "--config",
        "tiny",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    for k in 0..3 {
        assert!(
            stderr.contains(&format!("] block {k} rated: best ")),
            "{stderr}"
        );
    }
    // The first step shows at once (with its speed), then every 30 s and at block ends.
    assert!(stderr.contains("] block 0 step 1/4 loss "), "{stderr}");
    assert!(stderr.contains("] block 0 step 4/4 loss "), "{stderr}");
    assert!(stderr.contains("checkpoint at step"), "{stderr}");
    assert!(stderr.contains("] finished at step"), "{stderr}");
    // tiny: widths [4, 8] stand for NATS 8 and 16, e.g. "best 16:8 of 4 candidates".
    let rated = stderr
        .lines()
        .find(|l| l.contains("block 0 rated"))
        .unwrap();
    let best = rated
        .split("best ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert!(best.split(':').all(|w| w == "8" || w == "16"), "{rated}");
    assert!(stdout.starts_with("finished after "), "{stdout}");
    assert!(stdout.contains("chosen path per block: "), "{stdout}");
    assert!(!stdout.contains("so far"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let out = bossnas(&[
        "train",
        "--config",
        "tiny",
        "--out",
        dir.path().to_str().unwrap(),
        "--json-progress",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events: Vec<serde_json::Value> = text(&out.stderr)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"step"), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "block_end").count(), 3);
    assert!(kinds.contains(&"checkpoint"));
    assert_eq!(kinds.last(), Some(&"end"));
    let end = events.last().unwrap();
    assert_eq!(end["finished"], true);
    assert_eq!(end["best"].as_array().unwrap().len(), 3);

    let out = bossnas(&[
        "train",
        "--config",
        "tiny",
        "--out",
        dir.path().to_str().unwrap(),
        "--quiet",
    ]);
    assert!(out.status.success());
    let quiet = text(&out.stderr);
    assert!(!quiet.contains("rated") && !quiet.contains('{'), "{quiet}");
}

/// A scores file that covers part of the benchmark still correlates, but says so on stderr
/// with the counts (issue 18): a report of n = 1,000 must not pass for one over all 32,768.
#[test]
fn a_partial_scores_file_is_correlated_with_a_warning_naming_the_coverage() {
    let data = common::shared_data();
    let full_path = data.join("bossnas-reference/bossnas_c10_arch_scores.csv");
    let truth = data.join("nats-sss/nats_sss_cifar10.csv");
    let correlate = |scores: &std::path::Path| {
        bossnas(&[
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
        ])
    };
    let full = std::fs::read_to_string(&full_path).expect("shared reference scores");
    let partial: String = full.lines().take(1001).map(|l| format!("{l}\n")).collect();
    let dir = tempfile::tempdir().unwrap();
    let scores = dir.path().join("partial.csv");
    std::fs::write(&scores, partial).unwrap();
    let out = correlate(&scores);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("warning:") && err.contains("1000 of the 32768 architectures"),
        "{err}"
    );
    assert!(text(&out.stdout).contains("1000"), "{}", text(&out.stdout));

    // The full file: no such warning.
    let out = correlate(&full_path);
    assert!(out.status.success());
    assert!(
        !text(&out.stderr).contains("warning:"),
        "{}",
        text(&out.stderr)
    );
}
