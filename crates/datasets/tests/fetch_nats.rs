//! The NATS-Bench ground truth and BossNAS reference scores end to end against an HTTP server
//! on 127.0.0.1 serving small synthetic files in the BossNAS `ranking_nats` format: digests
//! checked, converted into the project's CSV layout, a bad digest leaves nothing behind, an
//! offline machine gets the instructions and converts hand-copied files.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use bossnas_datasets::nats::{
    HAND_COPIED, NatsFetchPolicy, OFFICIAL_SCORES_FILE, PINNED, REFERENCE_DIR, TRUTH_FILE,
    ensure_nats, provided_files,
};
use bossnas_datasets::sha256_hex;

const WIDTHS: [u32; 8] = [8, 16, 24, 32, 40, 48, 56, 64];

fn arch(i: usize) -> String {
    (0..5)
        .map(|k| WIDTHS[(i >> (3 * (4 - k))) & 7].to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// A made-up accuracy per NATS index, in the repository's key order (sorted strings).
fn synthetic_truth() -> String {
    let mut keys: Vec<(String, usize)> = (0..32_768).map(|i| (arch(i), i)).collect();
    keys.sort();
    let mut s = String::new();
    for (k, i) in keys {
        let acc = 80.0 + (i % 1000) as f64 / 100.0;
        // Like the repository: most keys quoted, some not.
        if i % 3 == 0 {
            let _ = writeln!(s, "{k}: {acc}");
        } else {
            let _ = writeln!(s, "'{k}': {acc}");
        }
    }
    s
}

/// Potentials of one block with `digits` width indices, best (lowest) first.
fn synthetic_path_rank(digits: u32, stage: usize) -> String {
    let n = 8usize.pow(digits);
    let mut entries: Vec<(String, f64)> = (0..n)
        .map(|c| {
            let code: String = (0..digits)
                .rev()
                .map(|d| char::from(b'0' + ((c >> (3 * d)) & 7) as u8))
                .collect();
            (
                code,
                -3.0 + stage as f64 * 0.1 + (c * 37 % n) as f64 / 1000.0,
            )
        })
        .collect();
    entries.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut s = String::new();
    for (code, p) in entries {
        let _ = write!(s, "- !!python/tuple\n  - '{code}'\n  - {p}\n");
    }
    s
}

fn synthetic_files() -> Vec<String> {
    vec![
        synthetic_truth(),
        synthetic_path_rank(2, 0),
        synthetic_path_rank(2, 1),
        synthetic_path_rank(1, 2),
    ]
}

/// Serves `files` (by path under `/ranking_nats/`) until the test ends; counts requests.
fn serve(files: &[String]) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let by_path: HashMap<String, Vec<u8>> = PINNED
        .iter()
        .zip(files)
        .map(|(p, body)| {
            (
                format!("/ranking_nats/{}", p.name),
                body.as_bytes().to_vec(),
            )
        })
        .collect();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut req = [0u8; 4096];
            let len = s.read(&mut req).unwrap_or(0);
            let head = String::from_utf8_lossy(&req[..len]).to_string();
            let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
            match by_path.get(&path) {
                Some(body) => {
                    let h = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = s.write_all(h.as_bytes());
                    let _ = s.write_all(body);
                }
                None => {
                    let _ = s.write_all(
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                }
            }
        }
    });
    (format!("http://{addr}/ranking_nats"), hits)
}

fn digests(files: &[String]) -> [String; 4] {
    [0, 1, 2, 3].map(|i| sha256_hex(files[i].as_bytes()))
}

fn all_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn downloads_checks_and_converts_into_the_csv_layout() {
    let files = synthetic_files();
    let (base, hits) = serve(&files);
    let dir = tempfile::tempdir().unwrap();
    let policy = NatsFetchPolicy {
        download: true,
        base_url_override: Some(base.clone()),
        sha256_override: Some(digests(&files)),
        ..NatsFetchPolicy::default()
    };
    let got = ensure_nats(dir.path(), &policy).unwrap();
    assert!(
        got.how.starts_with(&format!("downloaded {base}")),
        "{}",
        got.how
    );
    assert_eq!(hits.load(Ordering::SeqCst), 4);
    let mut expected = provided_files();
    expected.sort();
    assert_eq!(all_files(dir.path()), expected, "no staging or .part left");

    let truth = std::fs::read_to_string(got.truth()).unwrap();
    let lines: Vec<&str> = truth.lines().collect();
    assert_eq!(lines.len(), 32_769);
    assert_eq!(lines[0], "index,arch,c0,c1,c2,c3,c4,cifar10_test_acc_hp90");
    assert_eq!(lines[1], "0,8:8:8:8:8,8,8,8,8,8,80");
    // Index 1234 = widths (0,2,3,2,2) -> 8:24:32:24:24, accuracy 80 + 234/100.
    assert_eq!(lines[1 + 1234], "1234,8:24:32:24:24,8,24,32,24,24,82.34");

    let stage2 =
        std::fs::read_to_string(dir.path().join(REFERENCE_DIR).join("path_rank_stage2.csv"))
            .unwrap();
    let first: Vec<&str> = stage2.lines().take(2).collect();
    assert_eq!(first[0], "rank,code,channels,potential");
    // Stage 2, code c: -3 + 0.2 + (37c mod 8)/1000; the lowest is c = 0.
    assert_eq!(first[1], "0,0,8,-2.8");

    // Score of 8:24:32:24:24 = Σ (potential + 4) over codes 02, 32, 2.
    let pot =
        |stage: usize, c: usize, n: usize| -3.0 + stage as f64 * 0.1 + (c * 37 % n) as f64 / 1000.0;
    let want = (pot(0, 2, 64) + 4.0) + (pot(1, 3 * 8 + 2, 64) + 4.0) + (pot(2, 2, 8) + 4.0);
    let scores = std::fs::read_to_string(got.official_scores()).unwrap();
    let row = scores
        .lines()
        .find(|l| l.starts_with("8:24:32:24:24,"))
        .unwrap();
    assert_eq!(row, format!("8:24:32:24:24,02|32|2,{want:.4},82.34"));

    // Found again without the network.
    let again = ensure_nats(dir.path(), &policy).unwrap();
    assert_eq!(again.how, "present");
    assert_eq!(hits.load(Ordering::SeqCst), 4);
}

#[test]
fn a_wrong_digest_writes_nothing_and_says_so() {
    let files = synthetic_files();
    let (base, _) = serve(&files);
    let dir = tempfile::tempdir().unwrap();
    let mut sha = digests(&files);
    sha[2] = "0".repeat(64);
    let policy = NatsFetchPolicy {
        download: true,
        base_url_override: Some(base),
        sha256_override: Some(sha),
        ..NatsFetchPolicy::default()
    };
    let msg = ensure_nats(dir.path(), &policy).unwrap_err().to_string();
    assert!(
        msg.contains("path_rank_1.yml: checksum mismatch: expected SHA-256 000"),
        "{msg}"
    );
    assert!(
        all_files(dir.path()).is_empty(),
        "{:?}",
        all_files(dir.path())
    );
}

#[test]
fn offline_gives_instructions_then_converts_hand_copied_files() {
    let dir = tempfile::tempdir().unwrap();
    let msg = ensure_nats(dir.path(), &NatsFetchPolicy::default())
        .unwrap_err()
        .to_string();
    let d = dir.path().display();
    assert!(msg.contains(&format!("missing {TRUTH_FILE}")), "{msg}");
    assert!(msg.contains("Downloads are off"), "{msg}");
    assert!(
        msg.contains(
            "https://raw.githubusercontent.com/changlin31/BossNAS/bb8b26a09e3ae7889dd118950b022be6b3ce99a0/ranking_nats/path_rank/path_rank_2.yml"
        ),
        "{msg}"
    );
    assert!(msg.contains(PINNED[0].sha256), "{msg}");
    assert!(
        msg.contains(&format!("{d}/{HAND_COPIED}/path_rank/path_rank_0.yml")),
        "{msg}"
    );

    // The user copies the files where the message says.
    let files = synthetic_files();
    for (p, body) in PINNED.iter().zip(&files) {
        let path = dir.path().join(HAND_COPIED).join(p.name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    let policy = NatsFetchPolicy {
        sha256_override: Some(digests(&files)),
        ..NatsFetchPolicy::default()
    };
    let got = ensure_nats(dir.path(), &policy).unwrap();
    assert!(got.how.starts_with("converted from"), "{}", got.how);
    assert!(got.official_scores().ends_with(OFFICIAL_SCORES_FILE));
    assert_eq!(
        std::fs::read_to_string(got.truth())
            .unwrap()
            .lines()
            .count(),
        32_769
    );
    // With the pinned digests the synthetic files are refused.
    let other = tempfile::tempdir().unwrap();
    std::fs::rename(dir.path().join(HAND_COPIED), other.path().join(HAND_COPIED)).unwrap();
    let msg = ensure_nats(other.path(), &NatsFetchPolicy::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("checksum mismatch: expected SHA-256 8e625bd6"),
        "{msg}"
    );
}

#[test]
fn a_local_copy_is_copied_before_the_network() {
    let files = synthetic_files();
    let (base, hits) = serve(&files);
    let local = tempfile::tempdir().unwrap();
    ensure_nats(
        local.path(),
        &NatsFetchPolicy {
            download: true,
            base_url_override: Some(base.clone()),
            sha256_override: Some(digests(&files)),
            ..NatsFetchPolicy::default()
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let got = ensure_nats(
        dir.path(),
        &NatsFetchPolicy {
            local_copies: vec![dir.path().join("absent"), local.path().to_path_buf()],
            download: true,
            base_url_override: Some(base),
            ..NatsFetchPolicy::default()
        },
    )
    .unwrap();
    assert_eq!(got.how, format!("copied from {}", local.path().display()));
    assert_eq!(hits.load(Ordering::SeqCst), 4, "no second download");
    assert_eq!(
        std::fs::read(got.truth()).unwrap(),
        std::fs::read(local.path().join(TRUTH_FILE)).unwrap()
    );
}

/// The real files converted match the project's shared copy. Opt-in: needs a checkout of the
/// BossNAS repository (`BOSSNAS_RANKING_NATS=<checkout>/ranking_nats`) and the shared data
/// (`BOSSNAS_SHARED_DATA`).
#[test]
#[ignore]
fn the_official_files_convert_to_the_shared_copy() {
    let src = std::path::PathBuf::from(std::env::var_os("BOSSNAS_RANKING_NATS").unwrap());
    let shared = std::path::PathBuf::from(std::env::var_os("BOSSNAS_SHARED_DATA").unwrap());
    let dir = tempfile::tempdir().unwrap();
    bossnas_datasets::nats::convert_local(
        &src,
        dir.path(),
        &bossnas_datasets::nats::pinned_sha256(),
    )
    .unwrap();
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    for f in provided_files() {
        let ours = read(&dir.path().join(&f));
        let theirs = read(&shared.join(&f));
        assert_eq!(ours.lines().count(), theirs.lines().count(), "{f}");
        for (a, b) in ours.lines().zip(theirs.lines()).skip(1) {
            let (a, b): (Vec<&str>, Vec<&str>) = (a.split(',').collect(), b.split(',').collect());
            for (x, y) in a.iter().zip(&b) {
                match (x.parse::<f64>(), y.parse::<f64>()) {
                    (Ok(x), Ok(y)) => assert!((x - y).abs() < 1e-9, "{f}: {a:?} vs {b:?}"),
                    _ => assert_eq!(x, y, "{f}"),
                }
            }
        }
    }
}
