//! Run directory, atomic writes and verified checkpoints.
//!
//! # Layout
//!
//! ```text
//! <run>/
//!   config.resolved.toml          RunConfig::save_resolved
//!   metrics.jsonl                 one JSON object per line (RunDir::append_metrics)
//!   checkpoint/
//!     LATEST                      name of the newest complete checkpoint directory
//!     <tag>/                      e.g. b1-e003-s000412
//!       <name>.bpk                Burn module records (burnpack), e.g. online.bpk, target.bpk
//!       optimizer.bpk             ModuleOptimizer record (LARS momentum buffers)
//!       state.json                TrainState + manifest (size and FNV-1a-64 of every file)
//! ```
//!
//! A checkpoint is written whole into a hidden staging directory
//! (`checkpoint/.staging-<tag>-<pid>/`, every file fsynced), which is renamed to `<tag>` only
//! when complete; a write that fails (disk full) removes the staging directory, and staging
//! directories left by a killed process are removed when the run is next opened. The
//! checkpoint becomes current only when `LATEST` is atomically replaced ([`write_atomic`]:
//! temporary file, fsync, rename, fsync of the directory), so a crash at any point leaves the
//! previous checkpoint loadable. Loading checks every file named in the manifest (presence,
//! size, hash) **before** parsing, and reports a corrupt or partial checkpoint as a
//! [`CheckpointError`] naming the file instead of panicking; [`RunDir::resume_latest`] then
//! falls back to the newest intact checkpoint and says so.
//!
//! `state.json` also records the length of `metrics.jsonl` at the checkpoint, and resuming
//! cuts the file back to it (see [`bossnas_runfs::rewind_metrics`]), so the metrics of a
//! resumed run equal those of an uninterrupted one.
//!
//! Take module records with [`record_of`], which calls `valid()` first so BatchNorm running
//! statistics are synchronised (`RunningState::value()` can lag one update behind).

use bossnas_datasets::DataPosition;
use bossnas_runfs::{LockError, RunLock, write_atomic};
use burn::module::Module;
use burn::optim::{ModuleOptimizer, OptimizerRecord};
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Resolved configuration file name.
pub use bossnas_config::RESOLVED_CONFIG;
/// Metrics log file name.
pub const METRICS: &str = "metrics.jsonl";
/// Checkpoint directory name.
pub const CHECKPOINT_DIR: &str = "checkpoint";
/// Pointer to the newest checkpoint inside [`CHECKPOINT_DIR`].
pub const LATEST: &str = "LATEST";
/// Train state + manifest file inside a checkpoint.
pub const STATE_FILE: &str = "state.json";
/// Optimizer record file inside a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.bpk";
/// Version of the `state.json` format.
pub const FORMAT_VERSION: u32 = 1;
/// Name prefix of the directory a checkpoint is written into before it is renamed into place.
pub const STAGING_PREFIX: &str = ".staging-";
/// Name prefix under which a corrupt checkpoint is set aside when resume falls back.
pub const CORRUPT_PREFIX: &str = ".corrupt-";

/// Errors while saving or loading checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A checkpoint file is missing, truncated, altered, or cannot be decoded.
    #[error("corrupt or partial checkpoint: {path}: {reason}")]
    Corrupt {
        /// The offending file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A record does not fit the module it is loaded into.
    #[error("checkpoint record `{name}` does not match the module: {reason}")]
    Mismatch {
        /// Record name.
        name: String,
        /// Burn's message.
        reason: String,
    },
    /// Another process is writing to this run directory.
    #[error(
        "{} is in use by another process (it holds {}); wait for that run to end",
        path.display(),
        path.join(bossnas_runfs::LOCK_FILE).display()
    )]
    InUse {
        /// The run directory.
        path: PathBuf,
    },
    /// Encoding a record failed.
    #[error("encoding `{name}`: {reason}")]
    Encode {
        /// Record name.
        name: String,
        /// Burn's message.
        reason: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn sync_dir(dir: &Path) {
    // Best effort: directories cannot be opened for syncing on every platform.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
thread_local! {
    /// Test hook: the checkpoint file write with this 0-based index (counted per thread)
    /// fails as if the disk were full.
    static FAIL_CHECKPOINT_WRITE: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Writes and fsyncs a new file (inside a staging directory, so no rename is needed).
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    #[cfg(test)]
    FAIL_CHECKPOINT_WRITE.with(|n| match n.get() {
        Some(0) => {
            n.set(None);
            Err(io_err(path)(io::Error::from(io::ErrorKind::StorageFull)))
        }
        Some(k) => {
            n.set(Some(k - 1));
            Ok(())
        }
        None => Ok(()),
    })?;
    let mut f = fs::File::create(path).map_err(io_err(path))?;
    f.write_all(bytes).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// Writes a complete checkpoint (records, optimizer, then `state.json`) into the new
/// directory `staging`.
fn stage_checkpoint(
    staging: &Path,
    records: Vec<(String, ModuleRecord)>,
    optimizer: Option<&ModuleOptimizer>,
    state: &TrainState,
    metrics_bytes: Option<u64>,
) -> Result<(), CheckpointError> {
    if staging.exists() {
        fs::remove_dir_all(staging).map_err(io_err(staging))?;
    }
    fs::create_dir(staging).map_err(io_err(staging))?;
    let mut manifest = Vec::new();
    let mut write = |file: String, bytes: &[u8]| -> Result<(), CheckpointError> {
        write_synced(&staging.join(&file), bytes)?;
        manifest.push(ManifestEntry {
            file,
            bytes: bytes.len() as u64,
            fnv1a64: format!("{:016x}", fnv1a64(bytes)),
        });
        Ok(())
    };
    let mut names = Vec::new();
    for (name, record) in records {
        let bytes = record.into_bytes().map_err(|e| CheckpointError::Encode {
            name: name.clone(),
            reason: e.to_string(),
        })?;
        write(format!("{name}.bpk"), &bytes[..])?;
        names.push(name);
    }
    if let Some(opt) = optimizer {
        let bytes = opt.into_bytes().map_err(|e| CheckpointError::Encode {
            name: "optimizer".into(),
            reason: e.to_string(),
        })?;
        write(OPTIMIZER_FILE.into(), &bytes[..])?;
    }
    let file = StateFile {
        format_version: FORMAT_VERSION,
        state: state.clone(),
        records: names,
        has_optimizer: optimizer.is_some(),
        manifest,
        metrics_bytes,
    };
    let json = serde_json::to_vec_pretty(&file).map_err(|e| CheckpointError::Encode {
        name: STATE_FILE.into(),
        reason: e.to_string(),
    })?;
    write_synced(&staging.join(STATE_FILE), &json)?;
    sync_dir(staging);
    Ok(())
}

/// FNV-1a 64-bit hash (corruption check, not cryptographic).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A module's record with synchronised BatchNorm statistics (`module.valid().into_record()`).
pub fn record_of<M: Module>(module: &M) -> ModuleRecord {
    module.valid().into_record()
}

/// A ChaCha RNG's full state, for exact resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// The 32-byte seed.
    pub seed: [u8; 32],
    /// The stream id.
    pub stream: u64,
    /// The word position in the stream.
    pub word_pos: u128,
}

impl RngState {
    /// Captures a `ChaCha8Rng`.
    pub fn capture(rng: &rand_chacha::ChaCha8Rng) -> Self {
        Self {
            seed: rng.get_seed(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos(),
        }
    }

    /// Rebuilds the `ChaCha8Rng` at exactly the captured position.
    pub fn restore(&self) -> rand_chacha::ChaCha8Rng {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::from_seed(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(self.word_pos);
        rng
    }
}

/// Everything besides tensors needed to resume a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Block being trained (0-based).
    pub block: usize,
    /// Searched best paths of blocks `0..block`.
    pub best_paths: Vec<Vec<usize>>,
    /// Epoch inside the block of the *next* iteration.
    pub epoch: usize,
    /// Iteration inside the epoch of the *next* iteration.
    pub iter_in_epoch: usize,
    /// Optimizer steps taken in the current block.
    pub block_step: u64,
    /// Optimizer steps taken in the run.
    pub global_step: u64,
    /// Path-sampling RNG.
    pub rng: Option<RngState>,
    /// Data loader position (next batch).
    pub data_position: Option<DataPosition>,
    /// Free-form extras (e.g. provisional rankings, timings).
    #[serde(default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ManifestEntry {
    file: String,
    bytes: u64,
    fnv1a64: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StateFile {
    format_version: u32,
    state: TrainState,
    /// Module record names, in save order.
    records: Vec<String>,
    has_optimizer: bool,
    manifest: Vec<ManifestEntry>,
    /// Length of `metrics.jsonl` when the checkpoint was written (absent in older runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metrics_bytes: Option<u64>,
}

/// A run directory (see the [module documentation](self) for the layout).
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
    /// Held for the life of a run that writes here ([`RunDir::create_unique`],
    /// [`RunDir::open_locked`]).
    lock: Option<RunLock>,
}

impl RunDir {
    /// Creates `root` and `root/checkpoint` if needed (no lock: for tests and readers; runs
    /// use [`RunDir::create_unique`] or [`RunDir::open_locked`]).
    pub fn create(root: impl Into<PathBuf>) -> Result<Self, CheckpointError> {
        let root = root.into();
        let ck = root.join(CHECKPOINT_DIR);
        fs::create_dir_all(&ck).map_err(io_err(&ck))?;
        Ok(Self { root, lock: None })
    }

    /// Creates a new run directory `<parent>/<stem>` (or `<stem>-2`, `<stem>-3`, ... when
    /// taken: never one that exists, even when runs start in the same second) and takes its
    /// lock.
    pub fn create_unique(parent: &Path, stem: &str) -> Result<Self, CheckpointError> {
        let root =
            bossnas_runfs::create_unique_dir(parent, stem).map_err(io_err(&parent.join(stem)))?;
        let run = Self::open_locked(root.clone());
        if run.is_err() {
            let _ = fs::remove_dir_all(&root);
        }
        run
    }

    /// Opens the existing run directory `root` for writing: takes its lock (refused with
    /// [`CheckpointError::InUse`] while another process holds it) and removes checkpoint
    /// staging directories a killed process left behind.
    pub fn open_locked(root: impl Into<PathBuf>) -> Result<Self, CheckpointError> {
        let root = root.into();
        if !root.is_dir() {
            return Err(io_err(&root)(io::Error::new(
                io::ErrorKind::NotFound,
                "not a directory",
            )));
        }
        let lock = match RunLock::acquire(&root) {
            Ok(l) => l,
            Err(LockError::InUse) => return Err(CheckpointError::InUse { path: root }),
            Err(LockError::Io(e)) => {
                return Err(io_err(&root.join(bossnas_runfs::LOCK_FILE))(e));
            }
        };
        let ck = root.join(CHECKPOINT_DIR);
        fs::create_dir_all(&ck).map_err(io_err(&ck))?;
        for entry in fs::read_dir(&ck).map_err(io_err(&ck))?.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(STAGING_PREFIX)
            {
                let p = entry.path();
                fs::remove_dir_all(&p).map_err(io_err(&p))?;
            }
        }
        Ok(Self {
            root,
            lock: Some(lock),
        })
    }

    /// The run directory of a command: the existing `dir`, locked, when `resume`; else a new
    /// `<dir>/<prefix>-<unix seconds>` ([`RunDir::create_unique`]). `bossnas train` and
    /// `cargo xtask reproduce` open their runs through it.
    pub fn open_or_create(dir: &Path, resume: bool, prefix: &str) -> Result<Self, CheckpointError> {
        if resume {
            Self::open_locked(dir)
        } else {
            Self::create_unique(dir, &bossnas_runfs::timestamped_stem(prefix))
        }
    }

    /// Whether this handle holds the run's lock.
    pub fn is_locked(&self) -> bool {
        self.lock.is_some()
    }

    /// The run directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<run>/config.resolved.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join(RESOLVED_CONFIG)
    }

    /// `<run>/metrics.jsonl`.
    pub fn metrics_path(&self) -> PathBuf {
        self.root.join(METRICS)
    }

    /// `<run>/checkpoint`.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.root.join(CHECKPOINT_DIR)
    }

    /// Appends one JSON line to `metrics.jsonl` (flushed; not fsynced).
    pub fn append_metrics<T: Serialize>(&self, record: &T) -> Result<(), CheckpointError> {
        let path = self.metrics_path();
        let mut line = serde_json::to_string(record).map_err(|e| CheckpointError::Encode {
            name: METRICS.into(),
            reason: e.to_string(),
        })?;
        line.push('\n');
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        f.write_all(line.as_bytes()).map_err(io_err(&path))?;
        f.flush().map_err(io_err(&path))
    }

    /// Saves a checkpoint as `checkpoint/<tag>/` and points `LATEST` at it. Older checkpoint
    /// directories beyond the newest `keep` are removed (`keep >= 1`).
    ///
    /// `records` are `(name, record)` pairs (take them with [`record_of`]); names must be plain
    /// file stems (`online`, `target`, `heads_online`, ...).
    pub fn save_checkpoint(
        &self,
        tag: &str,
        records: Vec<(String, ModuleRecord)>,
        optimizer: Option<&ModuleOptimizer>,
        state: &TrainState,
        keep: usize,
    ) -> Result<PathBuf, CheckpointError> {
        let valid_name = |n: &str| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        for n in std::iter::once(tag).chain(records.iter().map(|(n, _)| n.as_str())) {
            if !valid_name(n) || n == "optimizer" {
                return Err(CheckpointError::Encode {
                    name: n.into(),
                    reason: "names must be non-empty [A-Za-z0-9_-] and not `optimizer`".into(),
                });
            }
        }
        let ck = self.checkpoint_dir();
        let dir = ck.join(tag);
        let staging = ck.join(format!("{STAGING_PREFIX}{tag}-{}", std::process::id()));
        let metrics_bytes = self.sync_metrics()?;
        let staged =
            stage_checkpoint(&staging, records, optimizer, state, metrics_bytes).and_then(|()| {
                // Replace an older checkpoint of the same name (e.g. re-saved after a resume).
                if dir.exists() {
                    fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
                }
                fs::rename(&staging, &dir).map_err(io_err(&dir))?;
                sync_dir(&ck);
                Ok(())
            });
        if let Err(e) = staged {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        let latest = ck.join(LATEST);
        write_atomic(&latest, tag.as_bytes()).map_err(io_err(&latest))?;

        self.prune(tag, keep.max(1))?;
        Ok(dir)
    }

    /// Flushes `metrics.jsonl` to disk and returns its length (what a resume rewinds to).
    fn sync_metrics(&self) -> Result<Option<u64>, CheckpointError> {
        let path = self.metrics_path();
        match fs::OpenOptions::new().append(true).open(&path) {
            Ok(f) => {
                f.sync_data().map_err(io_err(&path))?;
                let len = f.metadata().map_err(io_err(&path))?.len();
                Ok(Some(len))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Some(0)),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Removes checkpoint directories other than `current`, keeping the newest `keep` in total
    /// (by modification time).
    fn prune(&self, current: &str, keep: usize) -> Result<(), CheckpointError> {
        let ck = self.checkpoint_dir();
        let mut others = Vec::new();
        for entry in fs::read_dir(&ck).map_err(io_err(&ck))? {
            let entry = entry.map_err(io_err(&ck))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == current || name.starts_with('.') || !entry.path().is_dir() {
                continue;
            }
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::SystemTime::UNIX_EPOCH);
            others.push((modified, entry.path()));
        }
        others.sort();
        let remove = others.len().saturating_sub(keep - 1);
        for (_, path) in others.into_iter().take(remove) {
            fs::remove_dir_all(&path).map_err(io_err(&path))?;
        }
        Ok(())
    }

    /// Loads the checkpoint `LATEST` points at; `Ok(None)` when there is none yet.
    pub fn load_latest(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        let latest = self.checkpoint_dir().join(LATEST);
        let tag = match fs::read_to_string(&latest) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&latest)(e)),
        };
        let tag = tag.trim();
        if tag.is_empty() || tag.contains(['/', '\\']) || tag.starts_with('.') {
            return Err(CheckpointError::Corrupt {
                path: latest,
                reason: format!("invalid checkpoint name {tag:?}"),
            });
        }
        Checkpoint::load(self.checkpoint_dir().join(tag)).map(Some)
    }
}

impl RunDir {
    /// The checkpoint to resume from, with `metrics.jsonl` cut back to it.
    ///
    /// Loads the checkpoint `LATEST` names; when that one is missing or corrupt, falls back to
    /// the newest intact checkpoint directory (by modification time), sets the corrupt one
    /// aside as `checkpoint/.corrupt-<tag>` and says on stderr which checkpoint it used and
    /// why. `Ok(None)` when the run has no checkpoint at all; the original error when none is
    /// intact. Then removes the metrics written after that checkpoint (and a torn last line).
    pub fn resume_latest(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        let ck = match self.load_latest() {
            Ok(None) if self.checkpoint_dirs()?.is_empty() => return Ok(None),
            Ok(Some(ck)) => ck,
            latest => {
                let why = match latest {
                    Ok(_) => format!(
                        "{} is missing",
                        self.checkpoint_dir().join(LATEST).display()
                    ),
                    Err(e) => e.to_string(),
                };
                let bad = self.latest_tag();
                let mut fallback = None;
                for (_, dir) in self.checkpoint_dirs()? {
                    if bad.as_deref() == dir.file_name().and_then(|n| n.to_str()) {
                        continue;
                    }
                    if let Ok(ck) = Checkpoint::load(&dir) {
                        fallback = Some(ck);
                        break;
                    }
                }
                let Some(ck) = fallback else {
                    return match self.load_latest() {
                        Err(e) => Err(e),
                        Ok(_) => Err(CheckpointError::Corrupt {
                            path: self.checkpoint_dir(),
                            reason: format!("{why}, and no checkpoint directory is intact"),
                        }),
                    };
                };
                let mut set_aside = None;
                if let Some(tag) = bad {
                    let from = self.checkpoint_dir().join(&tag);
                    if from.is_dir() {
                        let to = self.checkpoint_dir().join(format!("{CORRUPT_PREFIX}{tag}"));
                        let _ = fs::remove_dir_all(&to);
                        fs::rename(&from, &to).map_err(io_err(&from))?;
                        set_aside = Some(to);
                    }
                }
                let latest = self.checkpoint_dir().join(LATEST);
                let tag = ck.dir.file_name().unwrap_or_default().to_string_lossy();
                write_atomic(&latest, tag.as_bytes()).map_err(io_err(&latest))?;
                eprintln!(
                    "warning: the newest checkpoint is unusable ({why}); resuming from {} \
                     (step {}), the newest intact checkpoint{}",
                    ck.dir.display(),
                    ck.state.global_step,
                    match set_aside {
                        Some(p) => format!("; the corrupt one was kept as {}", p.display()),
                        None => String::new(),
                    }
                );
                ck
            }
        };
        let metrics = self.metrics_path();
        bossnas_runfs::rewind_metrics(&metrics, ck.metrics_bytes).map_err(io_err(&metrics))?;
        Ok(Some(ck))
    }

    /// The tag `LATEST` names, if it can be read.
    fn latest_tag(&self) -> Option<String> {
        let t = fs::read_to_string(self.checkpoint_dir().join(LATEST)).ok()?;
        let t = t.trim();
        (!t.is_empty() && !t.contains(['/', '\\']) && !t.starts_with('.')).then(|| t.to_string())
    }

    /// Checkpoint directories (not staging or set-aside ones), newest first by modification
    /// time.
    fn checkpoint_dirs(&self) -> Result<Vec<(std::time::SystemTime, PathBuf)>, CheckpointError> {
        let ck = self.checkpoint_dir();
        let mut dirs = Vec::new();
        let entries = match fs::read_dir(&ck) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(dirs),
            Err(e) => return Err(io_err(&ck)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err(&ck))?;
            if entry.file_name().to_string_lossy().starts_with('.') || !entry.path().is_dir() {
                continue;
            }
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::SystemTime::UNIX_EPOCH);
            dirs.push((modified, entry.path()));
        }
        dirs.sort_by(|a, b| b.cmp(a));
        Ok(dirs)
    }
}

/// A verified checkpoint, read fully into memory.
#[derive(Debug)]
pub struct Checkpoint {
    /// Its directory.
    pub dir: PathBuf,
    /// The train state.
    pub state: TrainState,
    /// Length of `metrics.jsonl` when it was written (`None` in older runs).
    pub metrics_bytes: Option<u64>,
    records: BTreeMap<String, Vec<u8>>,
    optimizer: Option<Vec<u8>>,
}

impl Checkpoint {
    /// Reads `dir`, verifying `state.json` and every file of its manifest (size and hash).
    pub fn load(dir: impl Into<PathBuf>) -> Result<Self, CheckpointError> {
        let dir = dir.into();
        let state_path = dir.join(STATE_FILE);
        let corrupt = |path: &Path, reason: String| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let text = fs::read(&state_path).map_err(|e| corrupt(&state_path, e.to_string()))?;
        let file: StateFile = serde_json::from_slice(&text)
            .map_err(|e| corrupt(&state_path, format!("unreadable state: {e}")))?;
        if file.format_version != FORMAT_VERSION {
            return Err(corrupt(
                &state_path,
                format!(
                    "format version {} (expected {FORMAT_VERSION})",
                    file.format_version
                ),
            ));
        }
        let mut contents = BTreeMap::new();
        for entry in &file.manifest {
            let path = dir.join(&entry.file);
            let bytes = fs::read(&path).map_err(|e| corrupt(&path, e.to_string()))?;
            if bytes.len() as u64 != entry.bytes {
                return Err(corrupt(
                    &path,
                    format!(
                        "size {} bytes, expected {} (truncated?)",
                        bytes.len(),
                        entry.bytes
                    ),
                ));
            }
            let h = format!("{:016x}", fnv1a64(&bytes));
            if h != entry.fnv1a64 {
                return Err(corrupt(&path, "content hash mismatch".into()));
            }
            contents.insert(entry.file.clone(), bytes);
        }
        let mut records = BTreeMap::new();
        for name in &file.records {
            let f = format!("{name}.bpk");
            let bytes = contents
                .remove(&f)
                .ok_or_else(|| corrupt(&dir.join(&f), "listed record missing".into()))?;
            records.insert(name.clone(), bytes);
        }
        let optimizer = if file.has_optimizer {
            Some(contents.remove(OPTIMIZER_FILE).ok_or_else(|| {
                corrupt(&dir.join(OPTIMIZER_FILE), "optimizer record missing".into())
            })?)
        } else {
            None
        };
        Ok(Self {
            dir,
            state: file.state,
            metrics_bytes: file.metrics_bytes,
            records,
            optimizer,
        })
    }

    /// Names of the stored module records.
    pub fn record_names(&self) -> Vec<String> {
        self.records.keys().cloned().collect()
    }

    /// Decodes the module record `name`.
    pub fn record(&self, name: &str) -> Result<ModuleRecord, CheckpointError> {
        let path = self.dir.join(format!("{name}.bpk"));
        let bytes = self
            .records
            .get(name)
            .ok_or_else(|| CheckpointError::Corrupt {
                path: path.clone(),
                reason: "no such record in this checkpoint".into(),
            })?;
        ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes.clone())).map_err(|e| {
            CheckpointError::Corrupt {
                path,
                reason: e.to_string(),
            }
        })
    }

    /// Loads record `name` into `module` (shapes and names must match).
    pub fn load_module<M: Module>(&self, name: &str, module: M) -> Result<M, CheckpointError> {
        let record = self.record(name)?;
        module
            .try_load_record(record)
            .map_err(|e| CheckpointError::Mismatch {
                name: name.into(),
                reason: e.to_string(),
            })
    }

    /// Loads the optimizer state into `optimizer` (built with the same configuration).
    pub fn load_optimizer(
        &self,
        optimizer: ModuleOptimizer,
    ) -> Result<ModuleOptimizer, CheckpointError> {
        let path = self.dir.join(OPTIMIZER_FILE);
        let bytes = self
            .optimizer
            .as_ref()
            .ok_or_else(|| CheckpointError::Corrupt {
                path: path.clone(),
                reason: "this checkpoint has no optimizer state".into(),
            })?;
        let record =
            OptimizerRecord::from_bytes(Bytes::from_bytes_vec(bytes.clone())).map_err(|e| {
                CheckpointError::Corrupt {
                    path,
                    reason: e.to_string(),
                }
            })?;
        Ok(optimizer.load_record(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lars::LarsConfig;
    use burn::module::Param;
    use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
    use burn::optim::GradientsParams;
    use burn::tensor::{Device, Tensor};
    use rand::{Rng, SeedableRng};

    #[derive(Module, Debug)]
    struct Tiny {
        fc: Linear,
        bn: BatchNorm,
    }

    impl Tiny {
        fn new(device: &Device) -> Self {
            Self {
                fc: LinearConfig::new(3, 2).init(device),
                bn: BatchNormConfig::new(2).init(device),
            }
        }
        fn forward(&self, x: Tensor<2>) -> Tensor<2> {
            self.bn.forward(self.fc.forward(x))
        }
    }

    /// Raw bytes of every float tensor (parameters and BN buffers), in visit order, plus the
    /// parameter ids (buffers get fresh ids on load, so their ids are left out).
    fn bytes(m: &Tiny) -> (Vec<Vec<u8>>, Vec<u64>) {
        use burn::module::ModuleVisitor;
        struct V(Vec<Vec<u8>>);
        impl ModuleVisitor for V {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                self.0.push(p.val().into_data().as_bytes().to_vec());
            }
        }
        let mut v = V(Vec::new());
        m.valid().visit(&mut v);
        let ids = vec![
            m.fc.weight.id.val(),
            m.bn.gamma.id.val(),
            m.bn.beta.id.val(),
        ];
        (v.0, ids)
    }

    fn step(m: Tiny, opt: &mut ModuleOptimizer, device: &Device) -> Tiny {
        let x = Tensor::<2>::from_data([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]], device);
        let loss = m.forward(x).powi_scalar(2).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        opt.step(0.7, m, grads)
    }

    fn state() -> TrainState {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let _: u64 = rng.random();
        TrainState {
            block: 1,
            best_paths: vec![vec![3, 0, 7]],
            epoch: 2,
            iter_in_epoch: 5,
            block_step: 17,
            global_step: 42,
            rng: Some(RngState::capture(&rng)),
            data_position: Some(DataPosition {
                seed: 9,
                epoch: 2,
                batch: 5,
            }),
            extra: Default::default(),
        }
    }

    #[test]
    fn round_trip_is_bit_identical_and_resume_is_exact() {
        let device = Device::flex().autodiff();
        let mut opt = LarsConfig::new().init();
        let mut model = Tiny::new(&device);
        model = step(model, &mut opt, &device);
        model = step(model, &mut opt, &device);

        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path().join("run")).unwrap();
        run.save_checkpoint(
            "b1-e002",
            vec![("online".into(), record_of(&model))],
            Some(&opt),
            &state(),
            2,
        )
        .unwrap();

        let ck = run.load_latest().unwrap().expect("a checkpoint");
        assert_eq!(ck.state, state());
        let loaded = ck.load_module("online", Tiny::new(&device)).unwrap();
        let (vl, vm) = (bytes(&loaded), bytes(&model));
        assert!(vl == vm, "loaded parameters differ from the saved ones");
        // Also the parameter values themselves (not only the record encoding).
        assert_eq!(
            loaded.fc.weight.val().into_data().as_bytes(),
            model.fc.weight.val().into_data().as_bytes()
        );
        let mut opt2 = ck.load_optimizer(LarsConfig::new().init()).unwrap();

        // Continuing both gives bit-identical parameters.
        let a = step(model, &mut opt, &device);
        let b = step(loaded, &mut opt2, &device);
        assert!(bytes(&a) == bytes(&b), "resumed step differs");

        // RNG state restores exactly.
        let mut r1 = state().rng.unwrap().restore();
        let mut r0 = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let _: u64 = r0.random();
        assert_eq!(r0.random::<u64>(), r1.random::<u64>());
    }

    #[test]
    fn truncated_or_altered_files_are_reported() {
        let device = Device::flex();
        let model = Tiny::new(&device);
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path()).unwrap();
        assert!(run.load_latest().unwrap().is_none());
        let dir = run
            .save_checkpoint(
                "c0",
                vec![("online".into(), record_of(&model))],
                Some(&LarsConfig::new().init()),
                &state(),
                1,
            )
            .unwrap();
        let f = dir.join("online.bpk");
        let full = fs::read(&f).unwrap();

        fs::write(&f, &full[..full.len() / 2]).unwrap();
        let e = run.load_latest().unwrap_err().to_string();
        assert!(e.contains("online.bpk") && e.contains("truncated"), "{e}");

        let mut bad = full.clone();
        bad[full.len() - 1] ^= 0xff;
        fs::write(&f, &bad).unwrap();
        let e = run.load_latest().unwrap_err().to_string();
        assert!(e.contains("hash"), "{e}");

        fs::write(&f, &full).unwrap();
        let st = dir.join(STATE_FILE);
        let text = fs::read(&st).unwrap();
        fs::write(&st, &text[..text.len() / 2]).unwrap();
        let e = run.load_latest().unwrap_err().to_string();
        assert!(e.contains("state.json"), "{e}");

        // Wrong module shape: a clear mismatch error.
        fs::write(&st, &text).unwrap();
        let ck = run.load_latest().unwrap().unwrap();
        #[derive(Module, Debug)]
        struct Other {
            fc: Linear,
        }
        let other = Other {
            fc: LinearConfig::new(5, 2).init(&device),
        };
        assert!(matches!(
            ck.load_module("online", other),
            Err(CheckpointError::Mismatch { .. })
        ));
    }

    #[test]
    fn latest_moves_and_old_checkpoints_are_pruned() {
        let device = Device::flex();
        let model = Tiny::new(&device);
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path()).unwrap();
        for (i, tag) in ["a", "b", "c"].iter().enumerate() {
            let mut s = state();
            s.global_step = i as u64;
            run.save_checkpoint(tag, vec![("m".into(), record_of(&model))], None, &s, 2)
                .unwrap();
        }
        let ck = run.load_latest().unwrap().unwrap();
        assert_eq!(ck.state.global_step, 2);
        assert!(ck.load_optimizer(LarsConfig::new().init()).is_err());
        let dirs: Vec<_> = fs::read_dir(run.checkpoint_dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .collect();
        assert_eq!(dirs.len(), 2);

        run.append_metrics(&serde_json::json!({"step": 1, "loss": -3.5}))
            .unwrap();
        run.append_metrics(&serde_json::json!({"step": 2})).unwrap();
        let text = fs::read_to_string(run.metrics_path()).unwrap();
        assert_eq!(text.lines().count(), 2);
    }

    fn visible_entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_failed_checkpoint_write_leaves_nothing_behind() {
        let device = Device::flex();
        let model = Tiny::new(&device);
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path()).unwrap();
        let save = |tag: &str| {
            run.save_checkpoint(
                tag,
                vec![("online".into(), record_of(&model))],
                Some(&LarsConfig::new().init()),
                &state(),
                2,
            )
        };
        save("good").unwrap();
        // Disk full at each write of the next checkpoint: online.bpk, optimizer.bpk, state.json.
        for k in 0..3 {
            FAIL_CHECKPOINT_WRITE.with(|n| n.set(Some(k)));
            let e = save("next").unwrap_err().to_string();
            assert!(e.contains("no storage space"), "{e}");
            assert_eq!(
                visible_entries(&run.checkpoint_dir()),
                ["LATEST", "good"],
                "write {k}"
            );
            let ck = run.load_latest().unwrap().unwrap();
            assert!(ck.dir.ends_with("good"));
        }
        FAIL_CHECKPOINT_WRITE.with(|n| n.set(None));
        // A staging directory left by a killed process is removed when the run is reopened.
        fs::create_dir(run.checkpoint_dir().join(".staging-next-1")).unwrap();
        fs::write(
            run.checkpoint_dir().join(".staging-next-1/online.bpk"),
            b"x",
        )
        .unwrap();
        let reopened = RunDir::open_locked(tmp.path()).unwrap();
        assert_eq!(
            visible_entries(&reopened.checkpoint_dir()),
            ["LATEST", "good"]
        );
        save("next").unwrap();
        assert!(run.load_latest().unwrap().unwrap().dir.ends_with("next"));
    }

    #[test]
    fn resume_falls_back_to_the_newest_intact_checkpoint_and_rewinds_metrics() {
        let device = Device::flex();
        let model = Tiny::new(&device);
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path()).unwrap();
        let mut expected_metrics = String::new();
        for step in 1..=3u64 {
            let line = format!("{{\"step\":{step}}}\n");
            run.append_metrics(&serde_json::json!({ "step": step }))
                .unwrap();
            expected_metrics.push_str(&line);
            let mut s = state();
            s.global_step = step;
            run.save_checkpoint(
                &format!("s{step}"),
                vec![("online".into(), record_of(&model))],
                None,
                &s,
                2,
            )
            .unwrap();
            // Distinct modification times for the fallback order.
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        run.append_metrics(&serde_json::json!({"step": 4})).unwrap();
        // Uninterrupted newest checkpoint: metrics cut back to step 3.
        let ck = run.resume_latest().unwrap().unwrap();
        assert_eq!(ck.state.global_step, 3);
        assert_eq!(
            fs::read_to_string(run.metrics_path()).unwrap(),
            expected_metrics
        );

        // Corrupt the newest: resume uses s2, sets s3 aside, cuts metrics to step 2.
        let f = run.checkpoint_dir().join("s3/online.bpk");
        let mut bytes = fs::read(&f).unwrap();
        bytes[0] ^= 0xff;
        fs::write(&f, bytes).unwrap();
        let mut torn = fs::OpenOptions::new()
            .append(true)
            .open(run.metrics_path())
            .unwrap();
        torn.write_all(b"{\"step\":4,\"lo").unwrap();
        assert!(run.load_latest().is_err());
        let ck = run.resume_latest().unwrap().unwrap();
        assert_eq!(ck.state.global_step, 2);
        assert!(ck.dir.ends_with("s2"));
        assert_eq!(
            fs::read_to_string(run.metrics_path()).unwrap(),
            "{\"step\":1}\n{\"step\":2}\n"
        );
        assert_eq!(
            visible_entries(&run.checkpoint_dir()),
            [".corrupt-s3", "LATEST", "s2"]
        );
        assert!(run.load_latest().unwrap().unwrap().dir.ends_with("s2"));

        // Nothing intact: the original error.
        let f = run.checkpoint_dir().join("s2/state.json");
        fs::write(&f, b"{").unwrap();
        let e = run.resume_latest().unwrap_err().to_string();
        assert!(e.contains("state.json"), "{e}");
    }

    #[test]
    fn a_locked_run_cannot_be_opened_twice() {
        let tmp = tempfile::tempdir().unwrap();
        let a = RunDir::create_unique(tmp.path(), "run").unwrap();
        let b = RunDir::create_unique(tmp.path(), "run").unwrap();
        assert_ne!(a.root(), b.root());
        assert!(a.is_locked());
        let e = RunDir::open_locked(a.root()).unwrap_err();
        assert!(matches!(e, CheckpointError::InUse { .. }), "{e}");
        assert!(e.to_string().contains("in use"), "{e}");
        drop(a);
        RunDir::open_locked(tmp.path().join("run")).unwrap();
    }
}
