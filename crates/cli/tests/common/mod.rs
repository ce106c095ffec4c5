//! Helpers shared by the CLI's end-to-end test files.
#![allow(dead_code)] // each test binary uses a subset

use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs the `bossnas` binary built for these tests.
pub fn bossnas(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bossnas"))
        .args(args)
        .output()
        .expect("run bossnas")
}

/// Asserts exit status 2, `needle` in stderr, and no panic.
pub fn fails_with(args: &[&str], needle: &str) {
    let out = bossnas(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: expected {needle:?} in {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// `shared/data` beside the checkout (or `$BOSSNAS_SHARED_DATA`).
pub fn shared_data() -> PathBuf {
    let dir = std::env::var_os("BOSSNAS_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    assert!(
        dir.is_dir(),
        "shared data not found at {} (set BOSSNAS_SHARED_DATA)",
        dir.display()
    );
    dir
}
