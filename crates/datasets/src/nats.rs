//! NATS-Bench SSS CIFAR-10 ground truth and the official BossNAS reference scores.
//!
//! Both come from the BossNAS repository (`ranking_nats/` at [`BOSSNAS_COMMIT`]): the
//! ground-truth accuracy of all 32,768 architectures (`nats_cifar10_acc_rank.yml`) and the
//! per-block potentials of the official search (`path_rank/path_rank_{0,1,2}.yml`). They are
//! downloaded once, checked against pinned SHA-256 digests and converted into the data
//! directory in the CSV layout the project reads:
//!
//! ```text
//! <data>/nats-sss/nats_sss_cifar10.csv                 index,arch,c0..c4,cifar10_test_acc_hp90
//! <data>/bossnas-reference/path_rank_stage{0,1,2}.csv  rank,code,channels,potential
//! <data>/bossnas-reference/bossnas_c10_arch_scores.csv arch,stage_codes,bossnas_loss_score,cifar10_test_acc_hp90
//! ```
//!
//! A local copy in the same layout (e.g. the project's `shared/data`) is copied instead of
//! downloading; its truth file may also carry `cifar10valid_valid_acc_hp90`, which the
//! repository's file does not have.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::fetch::download_sha256;
use crate::{DataError, io_err};

/// The BossNAS commit the files are pinned to.
pub const BOSSNAS_COMMIT: &str = "bb8b26a09e3ae7889dd118950b022be6b3ce99a0";

/// The folder under the data directory where the pinned files may be copied by hand (the
/// repository's layout: `ranking_nats/nats_cifar10_acc_rank.yml`, `ranking_nats/path_rank/`).
pub const HAND_COPIED: &str = "ranking_nats";

/// Where the pinned files are published (`<base>/<file>`).
pub fn official_base_url() -> String {
    format!("https://raw.githubusercontent.com/changlin31/BossNAS/{BOSSNAS_COMMIT}/ranking_nats")
}

/// A file of the BossNAS repository, relative to `ranking_nats/`, with its SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinnedFile {
    pub name: &'static str,
    pub sha256: &'static str,
}

/// The ground truth, then the potentials of blocks 0, 1, 2.
pub const PINNED: [PinnedFile; 4] = [
    PinnedFile {
        name: "nats_cifar10_acc_rank.yml",
        sha256: "8e625bd6821c439d0f99cd7fc5c59177d31d4651d333c4d4b2d47a4181273b8a",
    },
    PinnedFile {
        name: "path_rank/path_rank_0.yml",
        sha256: "d4cb9fb8bd5fe0471d945e12256fe3c63906a9427f4e5470349a713ff2eb6059",
    },
    PinnedFile {
        name: "path_rank/path_rank_1.yml",
        sha256: "871d27f2c7ca0798caa095c9a180d069f98f97dc199e3b81cf05cb81c2e9a524",
    },
    PinnedFile {
        name: "path_rank/path_rank_2.yml",
        sha256: "7b639f26c0bca10f8039eda2d403799f465f20737448e91b556304c189451018",
    },
];

/// The ground-truth CSV, relative to the data directory.
pub const TRUTH_FILE: &str = "nats-sss/nats_sss_cifar10.csv";
/// The folder of the reference scores, relative to the data directory.
pub const REFERENCE_DIR: &str = "bossnas-reference";
/// The official per-architecture score table inside [`REFERENCE_DIR`].
pub const OFFICIAL_SCORES_FILE: &str = "bossnas_c10_arch_scores.csv";

/// The NATS widths, indexed by the digits of a stage code.
const WIDTHS: [u32; 8] = [8, 16, 24, 32, 40, 48, 56, 64];
/// Widths per block of the official C10 split: (c0,c1), (c2,c3), (c4).
const STAGES: [std::ops::Range<usize>; 3] = [0..2, 2..4, 4..5];
const SPACE_SIZE: usize = 32_768;

/// Every file this module provides, relative to the data directory.
pub fn provided_files() -> Vec<String> {
    let mut v = vec![TRUTH_FILE.to_string()];
    for s in 0..3 {
        v.push(format!("{REFERENCE_DIR}/path_rank_stage{s}.csv"));
    }
    v.push(format!("{REFERENCE_DIR}/{OFFICIAL_SCORES_FILE}"));
    v
}

/// How [`ensure_nats`] may obtain the files.
#[derive(Debug, Clone, Default)]
pub struct NatsFetchPolicy {
    /// Folders in the data-directory layout to copy from first (e.g. `shared/data`).
    pub local_copies: Vec<PathBuf>,
    /// Download from the BossNAS repository when no local copy exists.
    pub download: bool,
    /// Replace [`official_base_url`] (tests serve the files from 127.0.0.1).
    pub base_url_override: Option<String>,
    /// Replace the pinned digests, in [`PINNED`] order (tests; digests are always checked).
    pub sha256_override: Option<[String; 4]>,
}

/// Where the NATS files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsData {
    /// The data directory holding them.
    pub dir: PathBuf,
    /// `"present"`, `"copied from <dir>"` or `"downloaded <base url> (BossNAS <commit>)"`.
    pub how: String,
}

impl NatsData {
    /// The ground truth (`nats-sss/nats_sss_cifar10.csv`).
    pub fn truth(&self) -> PathBuf {
        self.dir.join(TRUTH_FILE)
    }
    /// The folder of the official per-block potentials and scores.
    pub fn reference_dir(&self) -> PathBuf {
        self.dir.join(REFERENCE_DIR)
    }
    /// The official BossNAS score of every architecture.
    pub fn official_scores(&self) -> PathBuf {
        self.reference_dir().join(OFFICIAL_SCORES_FILE)
    }
}

/// Finds the ground truth and the reference scores under `dir`, else copies the missing
/// files from a local copy, else downloads, verifies and converts the pinned files of the
/// BossNAS repository. The error says where it looked and how to provide the files by hand.
pub fn ensure_nats(dir: &Path, policy: &NatsFetchPolicy) -> Result<NatsData, DataError> {
    let missing = |d: &Path| -> Vec<String> {
        provided_files()
            .into_iter()
            .filter(|f| !d.join(f).is_file())
            .collect()
    };
    let need = missing(dir);
    if need.is_empty() {
        return Ok(NatsData {
            dir: dir.to_path_buf(),
            how: "present".into(),
        });
    }
    let mut tried = Vec::new();
    for local in &policy.local_copies {
        let absent = missing(local);
        if !absent.is_empty() {
            tried.push(format!("{} (lacks {})", local.display(), absent.join(", ")));
            continue;
        }
        for f in &need {
            let bytes = std::fs::read(local.join(f)).map_err(io_err(&local.join(f)))?;
            write_atomic(&dir.join(f), &bytes)?;
        }
        return Ok(NatsData {
            dir: dir.to_path_buf(),
            how: format!("copied from {}", local.display()),
        });
    }
    let hand = dir.join(HAND_COPIED);
    if PINNED.iter().all(|p| hand.join(p.name).is_file()) {
        let digests = policy.sha256_override.clone().unwrap_or_else(pinned_sha256);
        return convert_local(&hand, dir, &digests);
    }
    let base = policy
        .base_url_override
        .clone()
        .unwrap_or_else(official_base_url);
    let mut download_error = None;
    if policy.download {
        match download_and_convert(dir, &base, policy) {
            Ok(files) => {
                for (f, text) in files {
                    if need.contains(&f) {
                        write_atomic(&dir.join(&f), text.as_bytes())?;
                    }
                }
                return Ok(NatsData {
                    dir: dir.to_path_buf(),
                    how: format!("downloaded {base} (BossNAS {})", &BOSSNAS_COMMIT[..7]),
                });
            }
            Err(e) => download_error = Some(e.to_string()),
        }
    }
    Err(DataError::Missing(missing_message(
        dir,
        &need,
        &tried,
        &base,
        download_error.as_deref(),
        policy.download,
    )))
}

fn missing_message(
    dir: &Path,
    need: &[String],
    tried: &[String],
    base: &str,
    download_error: Option<&str>,
    download_allowed: bool,
) -> String {
    let d = dir.display();
    let mut m = format!(
        "NATS-Bench SSS ground truth / BossNAS reference scores not found in the data directory \
         {d}: missing {}.\n",
        need.join(", ")
    );
    for t in tried {
        m.push_str(&format!("Tried the local copy {t}.\n"));
    }
    match download_error {
        Some(e) => m.push_str(&format!("Downloading them failed ({e}).\n")),
        None if !download_allowed => m.push_str("Downloads are off.\n"),
        None => {}
    }
    m.push_str("To provide them by hand, fetch on a machine with internet access\n");
    for p in PINNED {
        m.push_str(&format!("  {base}/{}  (SHA-256 {})\n", p.name, p.sha256));
    }
    m.push_str(&format!(
        "and copy them into {d}/{HAND_COPIED}/ (as {d}/{HAND_COPIED}/nats_cifar10_acc_rank.yml \
         and {d}/{HAND_COPIED}/path_rank/path_rank_0.yml ...): the next run checks and converts \
         them. A folder that already holds the converted files ({}) works too: set BOSSNAS_DATA \
         to it or pass --data <dir>.",
        provided_files().join(", ")
    ));
    m
}

/// Converts the four pinned files found in `src` (`<src>/nats_cifar10_acc_rank.yml`,
/// `<src>/path_rank/path_rank_{0,1,2}.yml`), after checking their digests, into the CSV files
/// under `dir`. This is the offline path: the files were fetched by hand.
pub fn convert_local(src: &Path, dir: &Path, sha256: &[String; 4]) -> Result<NatsData, DataError> {
    let mut texts = Vec::new();
    for (p, want) in PINNED.iter().zip(sha256) {
        let path = src.join(p.name);
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        let got = crate::fetch::sha256_hex(&bytes);
        if !got.eq_ignore_ascii_case(want) {
            return Err(DataError::Checksum {
                url: path.display().to_string(),
                algorithm: "SHA-256",
                expected: want.clone(),
                actual: got,
                bytes: bytes.len() as u64,
            });
        }
        texts.push((path, String::from_utf8_lossy(&bytes).into_owned()));
    }
    for (f, text) in convert(&texts)? {
        write_atomic(&dir.join(f), text.as_bytes())?;
    }
    Ok(NatsData {
        dir: dir.to_path_buf(),
        how: format!("converted from {}", src.display()),
    })
}

/// The pinned digests, as [`NatsFetchPolicy::sha256_override`] expects them.
pub fn pinned_sha256() -> [String; 4] {
    PINNED.map(|p| p.sha256.to_string())
}

fn download_and_convert(
    dir: &Path,
    base: &str,
    policy: &NatsFetchPolicy,
) -> Result<Vec<(String, String)>, DataError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let staging = crate::fetch::staging_dir(dir)?;
    let result = (|| {
        let digests = policy.sha256_override.clone().unwrap_or_else(pinned_sha256);
        let mut texts = Vec::new();
        for (i, (p, sha)) in PINNED.iter().zip(&digests).enumerate() {
            let dest = staging.join(format!("{i}.yml"));
            download_sha256(&format!("{base}/{}", p.name), sha, &dest)?;
            let text = std::fs::read_to_string(&dest).map_err(io_err(&dest))?;
            texts.push((PathBuf::from(format!("{base}/{}", p.name)), text));
        }
        convert(&texts)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result
}

/// The four texts (ground truth, potentials of blocks 0..2, each with the path or address it
/// came from) as `(relative path, CSV text)` pairs.
fn convert(texts: &[(PathBuf, String)]) -> Result<Vec<(String, String)>, DataError> {
    let truth = parse_truth(&texts[0].0, &texts[0].1)?;
    let mut out = vec![(TRUTH_FILE.to_string(), truth_csv(&truth))];
    let mut stages = Vec::new();
    for (s, (origin, text)) in texts[1..].iter().enumerate() {
        let ranks = parse_path_rank(origin, text, STAGES[s].len())?;
        out.push((
            format!("{REFERENCE_DIR}/path_rank_stage{s}.csv"),
            path_rank_csv(&ranks),
        ));
        stages.push(ranks.into_iter().collect::<HashMap<_, _>>());
    }
    out.push((
        format!("{REFERENCE_DIR}/{OFFICIAL_SCORES_FILE}"),
        scores_csv(&truth, &stages),
    ));
    Ok(out)
}

/// `(widths, accuracy)` in NATS-Bench index order.
type Truth = Vec<([u32; 5], f64)>;

fn bad(origin: &Path, line: usize, problem: impl Into<String>) -> DataError {
    DataError::Missing(format!(
        "{}:{line}: {} (expected the BossNAS ranking_nats format)",
        origin.display(),
        problem.into()
    ))
}

/// `'c0:c1:c2:c3:c4': acc` lines (quotes optional) covering the whole space once.
fn parse_truth(origin: &Path, text: &str) -> Result<Truth, DataError> {
    let mut rows: Vec<Option<([u32; 5], f64)>> = vec![None; SPACE_SIZE];
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let (key, value) = line
            .rsplit_once(": ")
            .ok_or_else(|| bad(origin, n, format!("no `arch: accuracy` in {line:?}")))?;
        let key = key.trim().trim_matches('\'');
        let mut widths = [0u32; 5];
        let parts: Vec<&str> = key.split(':').collect();
        if parts.len() != 5 {
            return Err(bad(origin, n, format!("{key:?} is not c0:c1:c2:c3:c4")));
        }
        let mut index = 0usize;
        for (k, p) in parts.iter().enumerate() {
            let w: u32 = p
                .parse()
                .map_err(|_| bad(origin, n, format!("width {p:?} is not a number")))?;
            let pos = WIDTHS
                .iter()
                .position(|&x| x == w)
                .ok_or_else(|| bad(origin, n, format!("width {w} is not one of {WIDTHS:?}")))?;
            widths[k] = w;
            index = index * 8 + pos;
        }
        let acc: f64 = value
            .trim()
            .parse()
            .ok()
            .filter(|a: &f64| a.is_finite() && (0.0..=100.0).contains(a))
            .ok_or_else(|| bad(origin, n, format!("accuracy {value:?} is not in [0, 100]")))?;
        if rows[index].replace((widths, acc)).is_some() {
            return Err(bad(origin, n, format!("{key} appears twice")));
        }
    }
    let found = rows.iter().filter(|r| r.is_some()).count();
    if found != SPACE_SIZE {
        return Err(bad(
            origin,
            text.lines().count(),
            format!("{found} architectures, expected all {SPACE_SIZE}"),
        ));
    }
    Ok(rows.into_iter().flatten().collect())
}

/// A list of `!!python/tuple` pairs `- '<code>'`, `- <potential>` in rank order; every code of
/// `digits` width indices exactly once.
fn parse_path_rank(
    origin: &Path,
    text: &str,
    digits: usize,
) -> Result<Vec<(String, f64)>, DataError> {
    let mut items: Vec<(usize, String)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t == "- !!python/tuple" {
            continue;
        }
        let item = t
            .strip_prefix("- ")
            .ok_or_else(|| bad(origin, i + 1, format!("unexpected line {line:?}")))?;
        items.push((i + 1, item.trim().to_string()));
    }
    if !items.len().is_multiple_of(2) {
        return Err(bad(
            origin,
            text.lines().count(),
            "a tuple without its potential",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for pair in items.chunks(2) {
        let (n, code) = (pair[0].0, pair[0].1.trim_matches('\'').to_string());
        if code.len() != digits || !code.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return Err(bad(
                origin,
                n,
                format!("code {code:?} is not {digits} digits 0-7"),
            ));
        }
        if !seen.insert(code.clone()) {
            return Err(bad(origin, n, format!("code {code} appears twice")));
        }
        let potential: f64 = pair[1]
            .1
            .parse()
            .ok()
            .filter(|p: &f64| p.is_finite())
            .ok_or_else(|| {
                bad(
                    origin,
                    pair[1].0,
                    format!("potential {:?} is not a number", pair[1].1),
                )
            })?;
        out.push((code, potential));
    }
    let expected = 8usize.pow(digits as u32);
    if out.len() != expected {
        return Err(bad(
            origin,
            text.lines().count(),
            format!("{} candidates, expected {expected}", out.len()),
        ));
    }
    Ok(out)
}

fn arch_string(w: &[u32]) -> String {
    w.iter().map(u32::to_string).collect::<Vec<_>>().join(":")
}

fn code_of(w: &[u32]) -> String {
    w.iter()
        .map(|x| char::from(b'0' + (x / 8 - 1) as u8))
        .collect()
}

fn truth_csv(truth: &Truth) -> String {
    let mut s = String::from("index,arch,c0,c1,c2,c3,c4,cifar10_test_acc_hp90\n");
    for (i, (w, acc)) in truth.iter().enumerate() {
        let _ = writeln!(
            s,
            "{i},{},{},{},{},{},{},{acc}",
            arch_string(w),
            w[0],
            w[1],
            w[2],
            w[3],
            w[4]
        );
    }
    s
}

fn path_rank_csv(ranks: &[(String, f64)]) -> String {
    let mut s = String::from("rank,code,channels,potential\n");
    for (r, (code, p)) in ranks.iter().enumerate() {
        let widths: Vec<u32> = code.bytes().map(|b| WIDTHS[(b - b'0') as usize]).collect();
        let _ = writeln!(s, "{r},{code},{},{p}", arch_string(&widths));
    }
    s
}

/// The official score, as `get_model_score_nats.py` computes it: Σ over blocks of
/// (potential + 4), summed in block order, rounded to 4 decimals.
fn scores_csv(truth: &Truth, stages: &[HashMap<String, f64>]) -> String {
    let mut s = String::from("arch,stage_codes,bossnas_loss_score,cifar10_test_acc_hp90\n");
    for (w, acc) in truth {
        let codes: Vec<String> = STAGES.iter().map(|r| code_of(&w[r.clone()])).collect();
        let mut total = 0.0f64;
        for (stage, code) in stages.iter().zip(&codes) {
            total += stage[code] + 4.0;
        }
        let _ = writeln!(
            s,
            "{},{},{:.4},{acc}",
            arch_string(w),
            codes.join("|"),
            total
        );
    }
    s
}

/// [`bossnas_runfs::write_atomic`] with this crate's error type.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    bossnas_runfs::write_atomic(path, bytes).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_quoting_styles_and_orders_by_nats_index() {
        // The repository quotes most keys but not those YAML could read as numbers.
        let mut text = String::new();
        for i in (0..SPACE_SIZE).rev() {
            let w: Vec<u32> = (0..5).map(|k| WIDTHS[(i >> (3 * (4 - k))) & 7]).collect();
            let key = arch_string(&w);
            if i % 2 == 0 {
                let _ = writeln!(text, "'{key}': {}", 80.0 + (i % 100) as f64 / 10.0);
            } else {
                let _ = writeln!(text, "{key}: {}", 80.0 + (i % 100) as f64 / 10.0);
            }
        }
        let t = parse_truth(Path::new("t.yml"), &text).unwrap();
        assert_eq!(t.len(), SPACE_SIZE);
        assert_eq!(t[0], ([8, 8, 8, 8, 8], 80.0));
        assert_eq!(t[1], ([8, 8, 8, 8, 16], 80.1));
        assert_eq!(t[SPACE_SIZE - 1].0, [64, 64, 64, 64, 64]);
        let csv = truth_csv(&t);
        assert!(csv.starts_with("index,arch,c0,c1,c2,c3,c4,cifar10_test_acc_hp90\n0,8:8:8:8:8,8,8,8,8,8,80\n1,8:8:8:8:16,8,8,8,8,16,80.1\n"), "{}", &csv[..200]);

        let dup = format!("{text}'8:8:8:8:8': 1.0\n");
        let e = parse_truth(Path::new("t.yml"), &dup)
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.yml:32769: 8:8:8:8:8 appears twice"), "{e}");
        let e = parse_truth(Path::new("t.yml"), "'8:8:8:8:9': 1.0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.yml:1: width 9 is not one of"), "{e}");
    }

    #[test]
    fn path_rank_needs_every_code_once() {
        let text = "- !!python/tuple\n  - '6'\n  - -2.5\n- !!python/tuple\n  - '0'\n  - -2.25\n";
        let e = parse_path_rank(Path::new("p.yml"), text, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 candidates, expected 8"), "{e}");
        let mut full = String::new();
        for c in 0..8 {
            let _ = write!(full, "- !!python/tuple\n  - '{c}'\n  - -{c}.5\n");
        }
        let r = parse_path_rank(Path::new("p.yml"), &full, 1).unwrap();
        assert_eq!(r[3], ("3".to_string(), -3.5));
        assert_eq!(
            path_rank_csv(&r[..2]),
            "rank,code,channels,potential\n0,0,8,-0.5\n1,1,16,-1.5\n"
        );
        let e = parse_path_rank(Path::new("p.yml"), &full.replace("'7'", "'8'"), 1)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("p.yml:23: code \"8\" is not 1 digits 0-7"),
            "{e}"
        );
    }
}
