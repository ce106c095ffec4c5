//! The one atomic write of the workspace (issue 17 folded five copies into it): reports,
//! rankings, configs, checkpoints and downloaded tables are never seen half-written, even
//! after a crash or a full disk.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically, creating the parent directory: a temporary file in the
/// same directory ([`temp_path`]) is written, fsynced and renamed over `path`; then the
/// directory is fsynced (best effort on platforms where directories cannot be opened). On
/// error the temporary file is removed and `path` is left as it was.
pub fn write_atomic(path: &Path, bytes: impl AsRef<[u8]>) -> io::Result<()> {
    let tmp = temp_path(path)?;
    fs::create_dir_all(parent_dir(path))?;
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes.as_ref())?;
        f.sync_all()?;
        drop(f);
        commit(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The temporary file [`write_atomic`] writes before the rename: `.<name>.tmp-<pid>` beside
/// `path` (hidden, and distinct per process). For writers that produce the file themselves
/// (e.g. Burn's record stores), followed by [`commit`].
///
/// # Errors
/// `InvalidInput` if `path` has no file name.
pub fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?
        .to_string_lossy()
        .into_owned();
    Ok(parent_dir(path).join(format!(".{name}.tmp-{}", std::process::id())))
}

/// Renames a finished temporary file over `path` and fsyncs the directory (best effort).
pub fn commit(tmp: &Path, path: &Path) -> io::Result<()> {
    fs::rename(tmp, path)?;
    if let Ok(d) = fs::File::open(parent_dir(path)) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_creates_the_folder_and_leaves_no_temp() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("a/b/report.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, "two").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "two");
        let names: Vec<_> = fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["report.json"]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("x");
        write_atomic(&p, b"old").unwrap();
        // A directory where the temporary file should go makes the write fail.
        fs::create_dir(temp_path(&p).unwrap()).unwrap();
        assert!(write_atomic(&p, b"new").is_err());
        assert_eq!(fs::read_to_string(&p).unwrap(), "old");
        assert!(temp_path(Path::new("/")).is_err());
    }
}
