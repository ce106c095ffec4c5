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
    let tree = |offline: bool| {
        Command::new(env!("CARGO"))
            .current_dir(&root)
            .arg("tree")
            .args(offline.then_some("--offline"))
            .args(["--prefix", "none", "-f", "{p} {f}"])
            .args(args)
            .output()
            .expect("cargo runs")
    };
    // Offline first (no network when the crates are cached). On a fresh machine the GPU
    // features' crates (wgpu, burn-remote, …) are not in Cargo's cache until something builds
    // them, so then the registry is asked, as the GPU build itself would.
    let mut out = tree(true);
    if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--offline") {
        out = tree(false);
    }
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

/// The feature sets each registry crate is built with, by `name version` (a crate can be built
/// twice, e.g. for a build script on the host and for the target).
fn variants(lines: &BTreeSet<String>) -> std::collections::BTreeMap<String, BTreeSet<String>> {
    let mut by_crate = std::collections::BTreeMap::<String, BTreeSet<String>>::new();
    for l in lines {
        let mut parts = l.splitn(3, ' ');
        let (name, version) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let features = parts.next().unwrap_or("").to_string();
        by_crate
            .entry(format!("{name} {version}"))
            .or_default()
            .insert(features);
    }
    by_crate
}

/// CI builds the GPU features twice: the parity test (`cargo test -p bossnas-cli --features
/// wgpu,fusion`) and then the GPU bundle (`cargo build -p xtask --features wgpu,fusion`).
/// Every registry crate the bundle needs must be built with exactly the feature sets of the
/// parity test's build, or the second build compiles the wgpu/CubeCL stack again (about 25
/// minutes on 2 cores). Without `indexmap` in this crate's list it fails: the CLI's
/// retraining (burn-store → zip) turns on `indexmap/std`, which naga and CubeCL share.
#[test]
fn the_gpu_bundle_reuses_the_parity_test_build() {
    let parity = features(&[
        "-p",
        "bossnas-cli",
        "--features",
        "bossnas-cli/wgpu,bossnas-cli/fusion",
        "-e",
        "normal,build,dev",
    ]);
    assert!(
        parity.iter().any(|l| l.starts_with("burn-wgpu ")),
        "{parity:?}"
    );
    let bundle = features(&[
        "-p",
        "xtask",
        "--features",
        "xtask/wgpu,xtask/fusion",
        "-e",
        "normal,build",
    ]);
    let parity = variants(&parity);
    let differ: Vec<String> = variants(&bundle)
        .into_iter()
        .filter(|(name, sets)| parity.get(name) != Some(sets))
        .map(|(name, sets)| format!("{name}: {sets:?} against {:?}", parity.get(&name)))
        .collect();
    assert!(
        differ.is_empty(),
        "`cargo xtask gpu-bundle` would build these with other features than the parity test \
         (add them to crates/workspace-hack/Cargo.toml): {differ:?}"
    );
}
