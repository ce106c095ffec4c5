//! Loader validation and small end-to-end runs on synthetic files (no shared data needed).

use std::path::{Path, PathBuf};

use bench_nats::plot::{ScatterSpec, scatter};
use bench_nats::{
    AccuracyColumn, BootstrapOptions, CorrelateOptions, GroundTruth, Orientation, ScoreEntry,
    ScoresInput, correlate,
};
use hytra_space::nats::NatsArch;

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("bench-nats-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

const HEADER: &str =
    "index,arch,c0,c1,c2,c3,c4,cifar10_test_acc_hp90,cifar10valid_valid_acc_hp90\n";

/// A synthetic truth file with the first `n` architectures; accuracy grows with width sum.
fn truth_text(n: usize) -> String {
    let mut s = HEADER.to_string();
    for i in 0..n {
        let a = NatsArch::from_index(i).unwrap();
        let w = a.widths();
        let sum: u16 = w.iter().sum();
        let acc = 80.0 + sum as f64 / 40.0 + ((i * 7) % 5) as f64 * 0.1;
        s += &format!(
            "{i},{a},{},{},{},{},{},{acc:.2},{:.3}\n",
            w[0],
            w[1],
            w[2],
            w[3],
            w[4],
            acc - 2.0
        );
    }
    s
}

fn err_of(dir: &TempDir, text: &str) -> String {
    let p = dir.file("t.csv", text);
    GroundTruth::load(&p).unwrap_err().to_string()
}

#[test]
fn truth_loader_validates_and_names_file_and_line() {
    let dir = TempDir::new("truth");
    let p = dir.file("ok.csv", &truth_text(64));
    let t = GroundTruth::load(&p).unwrap();
    assert_eq!(t.len(), 64);
    assert!(!t.is_complete());
    assert_eq!(t.archs[9].to_string(), "8:8:8:16:16");

    let e = err_of(
        &dir,
        "index,arch,cifar10valid_valid_acc_hp90\n0,8:8:8:8:8,1\n",
    );
    assert!(
        e.contains("t.csv") && e.contains("missing column \"cifar10_test_acc_hp90\""),
        "{e}"
    );
    // The valid column is optional (the file converted from the BossNAS repository lacks it);
    // asking to correlate against it then says so.
    let p = dir.file(
        "test_only.csv",
        "index,arch,cifar10_test_acc_hp90\n0,8:8:8:8:8,80.5\n1,8:8:8:8:16,81\n",
    );
    let t = GroundTruth::load(&p).unwrap();
    assert!(t.has(AccuracyColumn::Cifar10TestHp90));
    assert!(!t.has(AccuracyColumn::Cifar10ValidValidHp90));
    assert_eq!(
        t.accuracy_of(&t.archs[1], AccuracyColumn::Cifar10ValidValidHp90),
        None
    );
    let scores = ScoresInput::from_csv(
        dir.file("s.csv", "arch,score\n8:8:8:8:8,1\n8:8:8:8:16,2\n"),
        None,
    )
    .unwrap();
    let e = scores
        .align(&t, AccuracyColumn::Cifar10ValidValidHp90)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("has no column \"cifar10valid_valid_acc_hp90\""),
        "{e}"
    );
    assert_eq!(
        scores
            .align(&t, AccuracyColumn::Cifar10TestHp90)
            .unwrap()
            .accuracy,
        vec![80.5, 81.0]
    );

    let mut text = truth_text(4);
    text = text.replace("2,8:8:8:8:24", "7,8:8:8:8:24");
    let e = err_of(&dir, &text);
    assert!(
        e.contains("t.csv:4") && e.contains("index 7 out of order"),
        "{e}"
    );

    let text = truth_text(4).replace("3,8:8:8:8:32,8,8,8,8,32", "3,8:8:8:16:8,8,8,8,16,8");
    let e = err_of(&dir, &text);
    assert!(
        e.contains("t.csv:5") && e.contains("has NATS-Bench index 8"),
        "{e}"
    );

    let text = truth_text(3).replace("1,8:8:8:8:16,8,8,8,8,16", "1,8:8:8:8:16,8,8,8,8,24");
    let e = err_of(&dir, &text);
    assert!(
        e.contains("t.csv:3") && e.contains("c4 = 24 disagrees"),
        "{e}"
    );

    let mut text = HEADER.to_string();
    text += "0,8:8:8:8:8,8,8,8,8,8,NaN,70\n";
    let e = err_of(&dir, &text);
    assert!(e.contains("t.csv:2") && e.contains("not finite"), "{e}");

    let mut text = HEADER.to_string();
    text += "0,8:8:8:8:8,8,8,8,8,8,abc,70\n";
    let e = err_of(&dir, &text);
    assert!(e.contains("t.csv:2") && e.contains("not a number"), "{e}");

    let mut text = HEADER.to_string();
    text += "0,8:8:8:8:9,8,8,8,8,8,80,70\n";
    let e = err_of(&dir, &text);
    assert!(
        e.contains("t.csv:2") && e.contains("width 9 is not allowed"),
        "{e}"
    );

    let mut text = HEADER.to_string();
    text += "0,8:8:8:8:8,8,8,8,8\n";
    let e = err_of(&dir, &text);
    assert!(e.contains("t.csv:2") && e.contains("fields"), "{e}");

    let e = err_of(&dir, HEADER);
    assert!(e.contains("no data rows"), "{e}");
    let e = GroundTruth::load(dir.0.join("absent.csv"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("absent.csv") && e.contains("cannot open"), "{e}");
}

#[test]
fn scores_reader_selects_column_and_rejects_bad_rows() {
    let dir = TempDir::new("scores");
    let p = dir.file(
        "s.csv",
        "arch,loss,merit\n8:8:8:8:8,3.0,1\n8:8:8:8:16,2.5,2\n",
    );
    let s = ScoresInput::from_csv(&p, Some("merit")).unwrap();
    assert_eq!(s.column, "merit");
    assert_eq!(
        s.entries[1],
        ScoreEntry {
            arch: "8:8:8:8:16".parse().unwrap(),
            score: 2.0
        }
    );

    let e = ScoresInput::from_csv(&p, None).unwrap_err().to_string();
    assert!(
        e.contains("no score column \"score\"") && e.contains("arch, loss, merit"),
        "{e}"
    );
    let e = ScoresInput::from_csv(&p, Some("nope"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"nope\""), "{e}");

    let p = dir.file("d.csv", "arch,score\n8:8:8:8:8,3.0\n8:8:8:8:8,2.5\n");
    let e = ScoresInput::from_csv(&p, None).unwrap_err().to_string();
    assert!(
        e.contains("d.csv:3") && e.contains("already appears on line 2"),
        "{e}"
    );
    let p = dir.file("i.csv", "arch,score\n8:8:8:8:8,inf\n");
    let e = ScoresInput::from_csv(&p, None).unwrap_err().to_string();
    assert!(e.contains("i.csv:2") && e.contains("not finite"), "{e}");
    let p = dir.file("a.csv", "score\n1\n");
    let e = ScoresInput::from_csv(&p, None).unwrap_err().to_string();
    assert!(e.contains("missing column \"arch\""), "{e}");
}

#[test]
fn correlate_small_space_end_to_end() {
    let dir = TempDir::new("e2e");
    let truth = GroundTruth::load(dir.file("t.csv", &truth_text(512))).unwrap();
    // A loss that is minus the accuracy plus noise; plus two archs outside the partial truth.
    let acc = truth.accuracy(AccuracyColumn::Cifar10TestHp90);
    let mut text = "arch,score\n".to_string();
    for (i, a) in truth.archs.iter().enumerate() {
        text += &format!("{a},{}\n", -acc[i] + ((i * 31) % 17) as f64 * 0.05);
    }
    text += "64:64:64:64:64,0\n32:32:32:32:32,0\n";
    let scores = ScoresInput::from_csv(dir.file("s.csv", &text), None).unwrap();
    let opts = CorrelateOptions {
        bootstrap: BootstrapOptions {
            resamples: 50,
            seed: 9,
            ..Default::default()
        },
        madds_bins: 4,
        ..Default::default()
    };
    let r = correlate(&scores, &truth, &opts).unwrap();
    assert_eq!((r.n, r.n_truth, r.unmatched), (512, 512, 2));
    assert!(r.score.raw.kendall_tau_b < -0.5 && r.score.oriented.kendall_tau_b > 0.5);
    assert_eq!(r.score.orientation, Orientation::LowerIsBetter);
    let ci = r.score.oriented_ci.unwrap();
    assert!(
        ci.kendall_tau_b.lo <= r.score.oriented.kendall_tau_b
            && r.score.oriented.kendall_tau_b <= ci.kendall_tau_b.hi
    );
    assert_eq!(r.baselines.len(), 3);
    assert!(
        r.baselines
            .iter()
            .all(|b| b.oriented.kendall_tau_b == b.raw.kendall_tau_b)
    );
    assert_eq!(
        r.score.top_k.iter().map(|t| t.k).collect::<Vec<_>>(),
        vec![1, 10, 100]
    );
    let all = &r.score.selections[0];
    assert!(all.regret >= 0.0 && all.accuracy_rank >= 1);
    assert_eq!(r.score.selections.len(), 3);
    assert!(r.score.selections[1].eligible <= 512 && r.score.selections[1].eligible >= 256);
    assert_eq!(
        r.score
            .madds_binned
            .as_ref()
            .unwrap()
            .bin_sizes
            .iter()
            .sum::<usize>(),
        512
    );

    // Same score as a merit: the raw statistic flips, and so does orientation.
    let flipped = ScoresInput::new(
        "flipped",
        "merit",
        scores
            .entries
            .iter()
            .map(|e| ScoreEntry {
                arch: e.arch,
                score: -e.score,
            })
            .collect(),
    );
    let r2 = correlate(
        &flipped,
        &truth,
        &CorrelateOptions {
            orientation: Orientation::HigherIsBetter,
            ..opts.clone()
        },
    )
    .unwrap();
    assert!((r2.score.raw.kendall_tau_b + r.score.raw.kendall_tau_b).abs() < 1e-12);
    assert!((r2.score.oriented.kendall_tau_b - r.score.oriented.kendall_tau_b).abs() < 1e-12);
    assert_eq!(r2.score.selections[0].chosen, all.chosen);

    let files = r.write(dir.0.join("out")).unwrap();
    assert!(std::fs::metadata(files.png.unwrap()).unwrap().len() > 1_000);
    assert!(
        std::fs::read_to_string(files.markdown)
            .unwrap()
            .contains("sign convention")
    );
}

fn check_figure(path: &Path, min_len: u64) {
    let len = std::fs::metadata(path).unwrap().len();
    assert!(len > min_len, "{} is only {len} bytes", path.display());
}

#[test]
fn scatter_without_text_still_draws() {
    let dir = TempDir::new("plot");
    let x: Vec<f64> = (0..200).map(|i| i as f64 / 10.0).collect();
    let y: Vec<f64> = x.iter().map(|v| 80.0 + v * 0.5 + (v * 3.0).sin()).collect();
    for text in [false, true] {
        let spec = ScatterSpec {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            x: &x,
            y: &y,
            highlights: vec![(1.0, 81.0, "mark".into())],
            size: (400, 300),
            text,
        };
        for ext in ["png", "svg"] {
            let p = dir.0.join(format!("s{text}.{ext}"));
            let drew_text = scatter(&p, &spec).unwrap();
            assert!(!drew_text || text);
            check_figure(&p, 1_000);
        }
    }
    let spec = ScatterSpec {
        title: String::new(),
        x_label: String::new(),
        y_label: String::new(),
        x: &x,
        y: &y,
        highlights: vec![],
        size: (100, 100),
        text: false,
    };
    assert!(scatter(&dir.0.join("s.gif"), &spec).is_err());
}

#[test]
fn crlf_files_report_the_right_line() {
    let dir = TempDir::new("crlf");
    for eol in ["\n", "\r\n"] {
        // Line 1 header, lines 2-3 good, line 4 a bad score, line 5 good.
        let text = [
            "arch,score",
            "8:8:8:8:8,1",
            "16:8:8:8:8,2",
            "24:8:8:8:8,x",
            "32:8:8:8:8,3",
        ]
        .join(eol);
        let p = dir.file("crlf.csv", &text);
        let e = ScoresInput::from_csv(&p, None).unwrap_err().to_string();
        assert!(e.contains("crlf.csv:4:"), "{eol:?}: {e}");
        // A repeated arch names both lines.
        let text = ["arch,score", "8:8:8:8:8,1", "16:8:8:8:8,2", "8:8:8:8:8,3"].join(eol);
        let p = dir.file("crlf.csv", &text);
        let e = ScoresInput::from_csv(&p, None).unwrap_err().to_string();
        assert!(
            e.contains("crlf.csv:4:") && e.contains("already appears on line 2"),
            "{eol:?}: {e}"
        );
    }
}

#[test]
fn constant_scores_are_refused() {
    let dir = TempDir::new("const");
    let truth = GroundTruth::load(dir.file("t.csv", &truth_text(50))).unwrap();
    let entries = (0..50)
        .map(|i| ScoreEntry {
            arch: NatsArch::from_index(i).unwrap(),
            score: 1.5,
        })
        .collect();
    let scores = ScoresInput::new("const.csv", "score", entries);
    let e = correlate(&scores, &truth, &CorrelateOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("equal") && e.contains("const.csv"), "{e}");
}
