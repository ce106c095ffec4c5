//! The data directory: `--data`, else `$BOSSNAS_DATA`, else the user cache directory.

use std::fmt;
use std::path::{Path, PathBuf};

/// Environment variable naming the data directory when `--data` is not given.
pub const DATA_ENV: &str = "BOSSNAS_DATA";

/// Which rule chose the data directory (reported, so a user knows which knob to turn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDirOrigin {
    /// `--data` on the command line.
    Flag,
    /// `$BOSSNAS_DATA`.
    Env,
    /// The user cache directory (`$XDG_CACHE_HOME/bossnas`, `~/.cache/bossnas`, ...).
    Cache,
}

impl fmt::Display for DataDirOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Flag => "--data",
            Self::Env => "$BOSSNAS_DATA",
            Self::Cache => "the default cache directory",
        })
    }
}

/// A resolved data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    pub path: PathBuf,
    pub origin: DataDirOrigin,
}

impl DataDir {
    /// `flag`, else `$BOSSNAS_DATA` (if set and non-empty), else the cache directory.
    pub fn resolve(flag: Option<&Path>) -> Self {
        let env = std::env::var_os(DATA_ENV).filter(|v| !v.is_empty());
        Self::resolve_with(flag, env.as_deref().map(Path::new), dirs::cache_dir())
    }

    /// [`DataDir::resolve`] with the environment and cache directory given (testable).
    pub fn resolve_with(flag: Option<&Path>, env: Option<&Path>, cache: Option<PathBuf>) -> Self {
        if let Some(p) = flag {
            return Self {
                path: p.to_path_buf(),
                origin: DataDirOrigin::Flag,
            };
        }
        if let Some(p) = env {
            return Self {
                path: p.to_path_buf(),
                origin: DataDirOrigin::Env,
            };
        }
        // No home directory at all (a bare container): fall back to the working directory.
        let base = cache.unwrap_or_else(|| PathBuf::from(".cache"));
        Self {
            path: base.join("bossnas"),
            origin: DataDirOrigin::Cache,
        }
    }
}

impl fmt::Display for DataDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (from {})", self.path.display(), self.origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_env_beats_cache() {
        let cache = Some(PathBuf::from("/c"));
        let d = DataDir::resolve_with(Some(Path::new("/f")), Some(Path::new("/e")), cache.clone());
        assert_eq!(
            (d.path, d.origin),
            (PathBuf::from("/f"), DataDirOrigin::Flag)
        );
        let d = DataDir::resolve_with(None, Some(Path::new("/e")), cache.clone());
        assert_eq!(
            (d.path, d.origin),
            (PathBuf::from("/e"), DataDirOrigin::Env)
        );
        let d = DataDir::resolve_with(None, None, cache);
        assert_eq!(
            (d.path, d.origin),
            (PathBuf::from("/c/bossnas"), DataDirOrigin::Cache)
        );
        let d = DataDir::resolve_with(None, None, None);
        assert_eq!(d.path, PathBuf::from(".cache/bossnas"));
    }
}
