//! Run directories that never collide, the lock a run holds for its life, and the rewind of
//! `metrics.jsonl` to a checkpoint on resume.
//!
//! A new run directory is created with `mkdir` (which fails when the name exists, atomically,
//! even between processes), trying `<stem>`, `<stem>-2`, `<stem>-3`, ... until one is new. The
//! process that created or resumes a run holds an exclusive advisory lock on `<run>/.lock`
//! (`flock`; released by the kernel when the process ends, even on SIGKILL), so a second
//! `--resume` of the same directory is refused instead of interleaving two writers.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Lock file inside a run directory.
pub const LOCK_FILE: &str = ".lock";

/// Upper bound on suffixes tried (a directory with that many same-second runs is not sane).
const MAX_SUFFIX: u32 = 10_000;

/// Creates a directory under `parent` named `stem`, or `stem-2`, `stem-3`, ... (the first that
/// does not exist yet), creating `parent` if needed. Never returns a directory that existed.
pub fn create_unique_dir(parent: &Path, stem: &str) -> io::Result<PathBuf> {
    fs::create_dir_all(parent)?;
    for n in 1..=MAX_SUFFIX {
        let name = if n == 1 {
            stem.to_string()
        } else {
            format!("{stem}-{n}")
        };
        let path = parent.join(name);
        match fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{MAX_SUFFIX} directories named {stem}-N already exist"),
    ))
}

/// `<prefix>-<unix seconds>`: the stem of a new run directory (training runs and suites;
/// [`create_unique_dir`] adds `-2`, `-3`, … when runs start in the same second).
pub fn timestamped_stem(prefix: &str) -> String {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{prefix}-{stamp}")
}

/// Holds `<run>/.lock` exclusively for as long as any clone is alive.
#[derive(Debug, Clone)]
pub struct RunLock(#[allow(dead_code)] Arc<fs::File>);

/// Why a run lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it.
    InUse,
    /// The lock file could not be opened or locked.
    Io(io::Error),
}

impl RunLock {
    /// Takes the lock of the run directory `root` without waiting.
    pub fn acquire(root: &Path) -> Result<Self, LockError> {
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(root.join(LOCK_FILE))
            .map_err(LockError::Io)?;
        match file.try_lock() {
            Ok(()) => Ok(Self(Arc::new(file))),
            Err(fs::TryLockError::WouldBlock) => Err(LockError::InUse),
            Err(fs::TryLockError::Error(e)) => Err(LockError::Io(e)),
        }
    }
}

/// Cuts `metrics.jsonl` back to what it held when a checkpoint was written, so a resumed run
/// appends exactly the records an uninterrupted run would have written after it.
///
/// `bytes` is the length recorded in the checkpoint (`None` for checkpoints written before
/// the length was recorded). Whatever the length, a torn last line (a crash in the middle of
/// an append) is removed, so the next record starts on a line of its own. Returns the bytes
/// removed.
pub fn rewind_metrics(path: &Path, bytes: Option<u64>) -> io::Result<u64> {
    let mut f = match fs::OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let mut keep = bytes.map_or(len, |b| b.min(len));
    // Back up to the end of the last complete line.
    if keep > 0 {
        let mut buf = Vec::new();
        let mut from = keep;
        loop {
            let chunk = from.min(4096);
            from -= chunk;
            buf.resize(chunk as usize, 0);
            f.seek(SeekFrom::Start(from))?;
            f.read_exact(&mut buf)?;
            if let Some(i) = buf.iter().rposition(|&b| b == b'\n') {
                keep = from + i as u64 + 1;
                break;
            }
            if from == 0 {
                keep = 0;
                break;
            }
        }
    }
    if keep < len {
        f.set_len(keep)?;
        f.sync_all()?;
    }
    Ok(len - keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_creations_get_distinct_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let parent = tmp.path().join("runs");
        let dirs: Vec<PathBuf> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| create_unique_dir(&parent, "tiny-1700000000").unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut names: Vec<_> = dirs.iter().map(|d| d.file_name().unwrap()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 8, "{dirs:?}");
        assert!(parent.join("tiny-1700000000").is_dir());
        assert!(parent.join("tiny-1700000000-8").is_dir());
    }

    #[test]
    fn a_second_lock_on_the_same_run_is_refused_until_the_first_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let a = RunLock::acquire(tmp.path()).unwrap();
        let a2 = a.clone();
        assert!(matches!(
            RunLock::acquire(tmp.path()),
            Err(LockError::InUse)
        ));
        drop(a);
        assert!(matches!(
            RunLock::acquire(tmp.path()),
            Err(LockError::InUse)
        ));
        drop(a2);
        RunLock::acquire(tmp.path()).unwrap();
    }

    #[test]
    fn metrics_are_cut_back_to_the_checkpoint_and_torn_lines_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("metrics.jsonl");
        let at_ck = "{\"step\":1}\n{\"step\":2}\n";
        std::fs::write(&p, format!("{at_ck}{{\"step\":3}}\n{{\"st")).unwrap();
        assert_eq!(rewind_metrics(&p, Some(at_ck.len() as u64)).unwrap(), 15);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), at_ck);
        // No recorded length: only the torn tail goes.
        std::fs::write(&p, format!("{at_ck}{{\"st")).unwrap();
        rewind_metrics(&p, None).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), at_ck);
        // A recorded length inside a line (cannot happen, but never keep half a line).
        rewind_metrics(&p, Some(15)).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\"step\":1}\n");
        std::fs::write(&p, "{\"st").unwrap();
        rewind_metrics(&p, None).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "");
        assert_eq!(
            rewind_metrics(&tmp.path().join("none"), Some(3)).unwrap(),
            0
        );
    }
}
