//! Mutation fuzzing of every parser of outside input, on stable Rust.
//!
//! Each target starts from its committed corpus (`fuzz/corpus/<target>/`), mutates inputs
//! (bit flips, byte edits, cuts, duplications, splices, dictionary tokens, boundary numbers)
//! and feeds them to the parser for a bounded time; a panic is a failure. First, every input
//! in `fuzz/regressions/<target>/` (crashes found earlier) is replayed.
//!
//! `BOSSNAS_FUZZ_SECONDS` (default 2) bounds each target, `BOSSNAS_FUZZ_SEED` fixes the seed
//! (default: from the clock; printed). A crashing input is written to `fuzz/crashes/<target>/`
//! and its path is in the failure message: move it to `fuzz/regressions/<target>/` with the fix.
//! Run longer with `BOSSNAS_FUZZ_SECONDS=60 cargo test -p bossnas-cli --test fuzz -- --nocapture`.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files_in(dir: &Path) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

thread_local! {
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Silences the default panic output (thousands of expected-free runs) and keeps the message
/// and location of a panic for the report.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let msg = format!("{info}");
            PANIC.with(|p| *p.borrow_mut() = Some(msg));
        }));
    });
}

const INTERESTING: &[&str] = &[
    "0",
    "-1",
    "1",
    "-0",
    "255",
    "256",
    "65535",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "-9223372036854775808",
    "1e308",
    "1e309",
    "-1e309",
    "nan",
    "inf",
    "-inf",
    "NaN",
    "0.0",
    "4.9e-324",
    "\"\"",
    "[]",
    "{}",
    "null",
    "true",
    "\n",
    "\r\n",
    "\"",
    ",",
    ":",
    "=",
    "[",
    "]",
    "{",
    "}",
    "\u{feff}",
    "\u{0}",
    "ÿ",
];

struct Mutator {
    rng: ChaCha8Rng,
    dict: Vec<Vec<u8>>,
}

impl Mutator {
    fn mutate(&mut self, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
        let mut v = input.to_vec();
        let rounds = 1 + self.rng.random_range(0..4);
        for _ in 0..rounds {
            let len = v.len();
            match self.rng.random_range(0..10) {
                0 if len > 0 => {
                    let i = self.rng.random_range(0..len);
                    v[i] ^= 1 << self.rng.random_range(0..8);
                }
                1 if len > 0 => {
                    let i = self.rng.random_range(0..len);
                    v[i] = self.rng.random();
                }
                2 => {
                    let i = self.rng.random_range(0..=len);
                    let n = self.rng.random_range(1..8);
                    let bytes: Vec<u8> = (0..n).map(|_| self.rng.random()).collect();
                    v.splice(i..i, bytes);
                }
                3 if len > 0 => {
                    let i = self.rng.random_range(0..len);
                    let j = (i + self.rng.random_range(1..=16)).min(len);
                    v.drain(i..j);
                }
                4 if len > 0 => v.truncate(self.rng.random_range(0..len)),
                5 if len > 0 => {
                    // Duplicate a range (repeated keys, records, nesting).
                    let i = self.rng.random_range(0..len);
                    let j = (i + self.rng.random_range(1..=64)).min(len);
                    let chunk = v[i..j].to_vec();
                    let at = self.rng.random_range(0..=v.len());
                    v.splice(at..at, chunk);
                }
                6 if !corpus.is_empty() => {
                    // Splice: head of this input, tail of another.
                    let other = &corpus[self.rng.random_range(0..corpus.len())];
                    let i = self.rng.random_range(0..=len);
                    let j = self.rng.random_range(0..=other.len());
                    v.truncate(i);
                    v.extend_from_slice(&other[j..]);
                }
                7 | 8 => {
                    // A dictionary token, inserted or replacing a run of digits/letters.
                    let tok = self.dict[self.rng.random_range(0..self.dict.len())].clone();
                    let i = self.rng.random_range(0..=len);
                    let mut j = i;
                    if self.rng.random_bool(0.5) {
                        while j < len && (v[j].is_ascii_alphanumeric() || v[j] == b'.') {
                            j += 1;
                        }
                    }
                    v.splice(i..j, tok);
                }
                _ => {
                    // Deep nesting.
                    let open = [b'[', b'{'][self.rng.random_range(0..2)];
                    let n = self.rng.random_range(1..2000);
                    let i = self.rng.random_range(0..=len);
                    v.splice(i..i, std::iter::repeat_n(open, n));
                }
            }
        }
        v
    }
}

/// Runs `target` on the regressions, the corpus and mutants for the time budget.
fn fuzz(name: &str, extra_dict: &[&str], target: impl Fn(&[u8])) {
    quiet_panics();
    let root = repo().join("fuzz");
    let corpus = files_in(&root.join("corpus").join(name));
    assert!(!corpus.is_empty(), "fuzz/corpus/{name}/ is empty");
    let secs: f64 = std::env::var("BOSSNAS_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let seed: u64 = std::env::var("BOSSNAS_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
    let run = |input: &[u8]| -> Result<(), String> {
        PANIC.with(|p| *p.borrow_mut() = None);
        catch_unwind(AssertUnwindSafe(|| target(input)))
            .map_err(|_| PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default())
    };
    let report = |input: &[u8], why: String| -> ! {
        let dir = root.join("crashes").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("crash-{:016x}", fnv(input)));
        std::fs::write(&file, input).unwrap();
        panic!(
            "fuzz target {name} panicked (seed {seed}); input saved to {}: {why}",
            file.display()
        );
    };
    let regressions = files_in(&root.join("regressions").join(name));
    for input in regressions.iter().chain(&corpus) {
        if let Err(why) = run(input) {
            report(input, why);
        }
    }
    let mut m = Mutator {
        rng: ChaCha8Rng::seed_from_u64(seed),
        dict: INTERESTING
            .iter()
            .chain(extra_dict)
            .map(|s| s.as_bytes().to_vec())
            .collect(),
    };
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut execs = regressions.len() + corpus.len();
    while Instant::now() < deadline {
        let base = &corpus[m.rng.random_range(0..corpus.len())];
        let input = m.mutate(base, &corpus);
        if let Err(why) = run(&input) {
            report(&input, why);
        }
        execs += 1;
    }
    eprintln!("fuzz {name}: {execs} executions in {secs} s, no panic (seed {seed})");
}

fn fnv(b: &[u8]) -> u64 {
    ensemble_bootstrap::checkpoint::fnv1a64(b)
}

fn text(b: &[u8]) -> &str {
    // The parsers take text; invalid UTF-8 is rejected before them by read_to_string.
    std::str::from_utf8(b).unwrap_or("")
}

/// A scratch file for parsers that read paths.
fn scratch(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    (dir, p)
}

const CONFIG_KEYS: &[&str] = &[
    "preset",
    "seed",
    "device",
    "space",
    "kind",
    "widths",
    "data",
    "train",
    "lr",
    "batch_size",
    "heads",
    "rating",
    "tiny",
    "nats",
    "hytra",
    "mbconv",
    "epochs_per_block",
    "min_lr",
];

#[test]
fn fuzz_config_toml() {
    fuzz("config_toml", CONFIG_KEYS, |b| {
        let _ = bossnas_config::RunConfig::from_toml_str(text(b));
    });
}

#[test]
fn fuzz_config_json() {
    fuzz("config_json", CONFIG_KEYS, |b| {
        let _ = bossnas_config::RunConfig::from_json_str(text(b));
    });
}

#[test]
fn fuzz_recipe() {
    fuzz("recipe", &["deit", "tiny", "epochs", "lr", "mixup"], |b| {
        let _ = bossnas_retrain::recipe::Recipe::parse(text(b), false);
        let _ = bossnas_retrain::recipe::Recipe::parse(text(b), true);
    });
}

#[test]
fn fuzz_architectures() {
    use hytra_space::hytra::{HytraNet, RetrainEncoding, SearchPath};
    fuzz(
        "arch",
        &[
            "nats:",
            "mbconv:",
            "hytra:",
            "bossnet-t0",
            "64",
            "-",
            "0123",
        ],
        |b| {
            let t = text(b);
            // A text naming an existing file would be read: keep mutants inline.
            if !t.trim().starts_with('/') {
                let _ = bossnas_retrain::arch::ArchSpec::parse(t);
            }
            let _ = t.parse::<hytra_space::nats::NatsArch>();
            let _ = t.parse::<hytra_space::mbconv::MbconvArch>();
            let _ = SearchPath::parse(t);
            let _ = RetrainEncoding::parse(t);
            let _ = HytraNet::parse_json(t);
        },
    );
}

#[test]
fn fuzz_scores_csv() {
    fuzz("scores_csv", &["arch", "score", "8:8:8:8:8"], |b| {
        let (_d, p) = scratch("scores.csv", b);
        let _ = bench_nats::ScoresInput::from_csv(&p, None);
    });
}

#[test]
fn fuzz_truth_csv() {
    fuzz(
        "truth_csv",
        &["index", "arch", "cifar10_test_acc_hp90", "64:64:64:64:64"],
        |b| {
            let (_d, p) = scratch("truth.csv", b);
            let _ = bench_nats::GroundTruth::load(&p);
        },
    );
}

#[test]
fn fuzz_cifar_binary() {
    use bossnas_datasets::{CifarBinary, CifarLayout};
    fuzz("cifar_bin", &[], |b| {
        for layout in [
            CifarLayout::Cifar10,
            CifarLayout::Cifar100 {
                label: bossnas_datasets::Cifar100Label::Fine,
            },
            CifarLayout::Cifar100FineOnly,
        ] {
            let _ = CifarBinary::from_bytes(b, layout, Path::new("fuzz.bin"));
        }
    });
}

#[test]
fn fuzz_image_files() {
    fuzz("image", &["JFIF", "IHDR", "IDAT", "IEND"], |b| {
        let (_d, p) = scratch("img.jpg", b);
        let _ = bossnas_datasets::folder::decode_image(&p);
    });
}

/// `state.json` of a checkpoint, with its records: the manifest is fixed up to match the
/// mutated record so the decoder behind the hash check is reached too.
#[test]
fn fuzz_checkpoint() {
    use burn::nn::{Linear, LinearConfig};
    use ensemble_bootstrap::checkpoint::{Checkpoint, fnv1a64};
    fuzz(
        "checkpoint",
        &["format_version", "manifest", "records", "bytes"],
        |b| {
            let dir = tempfile::tempdir().unwrap();
            // Input: state.json, a 0xFF 0x00 separator, then the bytes of `online.bpk`.
            let (state, record) = match b.windows(2).position(|w| w == [0xff, 0x00]) {
                Some(i) => (&b[..i], &b[i + 2..]),
                None => (b, &[][..]),
            };
            std::fs::write(dir.path().join("online.bpk"), record).unwrap();
            let mut state = state.to_vec();
            if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&state)
                && let Some(m) = v.get_mut("manifest").and_then(|m| m.as_array_mut())
            {
                for e in m.iter_mut() {
                    if e["file"] == "online.bpk" {
                        e["bytes"] = record.len().into();
                        e["fnv1a64"] = format!("{:016x}", fnv1a64(record)).into();
                    }
                }
                state = serde_json::to_vec(&v).unwrap();
            }
            std::fs::write(dir.path().join("state.json"), &state).unwrap();
            if let Ok(ck) = Checkpoint::load(dir.path()) {
                DECODED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let device = burn::tensor::Device::flex();
                let m: Linear = LinearConfig::new(3, 2).init(&device);
                let _ = ck.load_module("online", m);
            }
        },
    );
    // Mutants that pass the manifest check and reach the burnpack decoder (a target that
    // never got there would only fuzz the JSON parser).
    let decoded = DECODED.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("fuzz checkpoint: {decoded} inputs reached the record decoder");
    assert!(decoded > 0);
}

static DECODED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Writes the seeds that are made by code (images, a checkpoint, full configs) into
/// `fuzz/corpus/`: `cargo test -p bossnas-cli --test fuzz -- --ignored write_seed_corpus`.
#[test]
#[ignore]
fn write_seed_corpus() {
    use burn::nn::LinearConfig;
    use ensemble_bootstrap::checkpoint::{RunDir, TrainState, record_of};
    let corpus = repo().join("fuzz/corpus");
    let put = |dir: &str, name: &str, bytes: &[u8]| {
        std::fs::write(corpus.join(dir).join(name), bytes).unwrap();
    };
    let cfg = bossnas_config::RunConfig::preset("tiny").unwrap();
    put(
        "config_toml",
        "tiny-resolved.toml",
        cfg.to_toml_string().as_bytes(),
    );
    put(
        "config_json",
        "tiny-resolved.json",
        cfg.to_json_string().as_bytes(),
    );

    let img = image::RgbImage::from_fn(6, 5, |x, y| image::Rgb([x as u8 * 40, y as u8 * 50, 7]));
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png).unwrap();
    put("image", "small.png", png.get_ref());
    let mut jpg = std::io::Cursor::new(Vec::new());
    img.write_to(&mut jpg, image::ImageFormat::Jpeg).unwrap();
    put("image", "small.jpg", jpg.get_ref());

    let tmp = tempfile::tempdir().unwrap();
    let run = RunDir::create(tmp.path()).unwrap();
    let device = burn::tensor::Device::flex();
    let m = LinearConfig::new(3, 2).init(&device);
    let state = TrainState {
        block: 0,
        best_paths: vec![],
        epoch: 0,
        iter_in_epoch: 1,
        block_step: 1,
        global_step: 1,
        rng: None,
        data_position: None,
        extra: Default::default(),
    };
    let dir = run
        .save_checkpoint(
            "s1",
            vec![("online".into(), record_of(&m))],
            None,
            &state,
            1,
        )
        .unwrap();
    let mut seed = std::fs::read(dir.join("state.json")).unwrap();
    seed.extend_from_slice(&[0xff, 0x00]);
    seed.extend_from_slice(&std::fs::read(dir.join("online.bpk")).unwrap());
    put("checkpoint", "linear-3-2", &seed);
}
