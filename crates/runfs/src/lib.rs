//! The files of a run, shared by training, retraining, search, the data downloads and the
//! xtask reports (issue 17): [`write_atomic`] (the only atomic write of the workspace),
//! [`run_dir`] (directories that never collide, the run lock, the metrics rewind on resume).
//! Std only, no tensors: the checkpoint format itself (Burn records) stays with the trainer
//! that writes it (`ensemble_bootstrap::checkpoint`), built on these.

pub mod atomic;
pub mod run_dir;

pub use atomic::{commit, temp_path, write_atomic};
pub use run_dir::{
    LOCK_FILE, LockError, RunLock, create_unique_dir, rewind_metrics, timestamped_stem,
};
