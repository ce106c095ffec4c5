//! Paths of the workspace and of the shared data beside it.

use std::path::{Path, PathBuf};

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The shared data folder: `$BOSSNAS_SHARED_DATA`, else `../shared/data` beside the checkout.
pub fn shared_data() -> PathBuf {
    match std::env::var_os("BOSSNAS_SHARED_DATA") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => root().join("../shared/data"),
    }
}

/// The CIFAR-10 JPEG archive in the shared data folder (unpacked instead of downloading).
pub fn shared_cifar10_jpeg() -> PathBuf {
    shared_data().join("cifar10-jpeg/cifar10-jpeg.tar.gz")
}

/// `git rev-parse --short HEAD` of the workspace, when git and a repository are there.
pub fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root())
        .output()
        .ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

/// The CPU model from /proc/cpuinfo (Linux), for the compute record.
pub fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
}

/// CPU seconds (user + system) of this process, all threads (one definition, in the
/// training step's phase timer).
pub use ensemble_bootstrap::phase::process_cpu_seconds;
