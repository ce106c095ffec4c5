//! Every entry point resolves the same dependency features as `cargo test --workspace`, so
//! none of them rebuilds Burn after another (see the crate's Cargo.toml).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// `cargo tree` lines `name version features` of the registry crates `args` select.
fn features(args: &[&str]) -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap();
    let out = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args(["tree", "--offline", "--prefix", "none", "-f", "{p} {f}"])
        .args(args)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        // Which workspace members are built differs by design; registry crates must not.
        .filter(|l| !l.is_empty() && !l.contains(root.to_str().unwrap()))
        .map(|l| l.trim_end_matches(" (*)").trim_end().to_string())
        .collect()
}

#[test]
fn entry_points_resolve_the_workspace_features() {
    let workspace = features(&["--workspace"]);
    assert!(
        workspace.iter().any(|l| l.starts_with("burn-flex ")),
        "{workspace:?}"
    );
    for package in ["xtask", "bossnas-cli"] {
        let own = features(&["-p", package, "-e", "normal,build"]);
        let differ: Vec<_> = own.difference(&workspace).collect();
        assert!(
            differ.is_empty(),
            "`cargo run -p {package}` would build these with other features than `cargo test \
             --workspace` (add them to crates/workspace-hack/Cargo.toml): {differ:?}"
        );
    }
}
