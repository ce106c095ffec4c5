//! `cargo xtask gpu-bundle`: everything a GPU run needs, built here, for a GPU machine that has
//! no Rust toolchain, no crates registry and no internet (docs/gpu.md).
//!
//! The bundle folder (default `gpu-bundle/`, ignored by git) holds:
//!
//! - `bin/xtask.gz`: this tool built with `--features wgpu,fusion` in the dev profile (every
//!   dependency optimised, see the workspace `Cargo.toml`) — the profile CI's lavapipe test
//!   already builds, so the bundle reuses that build — stripped and gzipped (`run.sh` unpacks
//!   it into a temporary folder): stripped, the wgpu + fusion binary is about 86 MiB, more than
//!   the GPU machine takes, and gzip brings it to about 23 MiB;
//! - `debs/`: the Vulkan loader and GL dispatch libraries as Debian `.deb` files (unpacked on
//!   the GPU machine with `dpkg -x` when it has no `libvulkan.so.1`);
//! - `data/`: the CIFAR-10 JPEG archive (whole, or a per-class subset) and the NATS-SSS
//!   CIFAR-10 ground truth, laid out like `../shared/data` so that `BOSSNAS_SHARED_DATA` can
//!   point at it;
//! - `torch_reference.py` (the PyTorch mirror of the training step), `run.sh` (the one command
//!   to run there) and `MANIFEST.txt` (commit, features, sizes).
//!
//! The machine the bundle is for takes at most 64 MiB of files, source tree included, so the
//! bundle and the git-tracked tree are measured together and the command fails, saying what
//! to drop, when they are over.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::workspace;

/// What the GPU machine accepts: bundle + source tree.
pub const LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// Debian packages of the Vulkan loader and the GL dispatch libraries NVIDIA's ICD needs.
pub const DEBS: [&str; 7] = [
    "libvulkan1",
    "libegl1",
    "libglvnd0",
    "libopengl0",
    "libgl1",
    "libglx0",
    "libgles2",
];

const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Options of `cargo xtask gpu-bundle`.
#[derive(Debug, clap::Args)]
pub struct GpuBundleArgs {
    /// The bundle folder (replaced if it exists).
    #[arg(long, default_value = "gpu-bundle")]
    out: PathBuf,
    /// Build without Burn's kernel fusion (`fusion` is a compile-time choice in Burn 0.22).
    #[arg(long)]
    no_fusion: bool,
    /// Take this binary instead of building one (it must have been built with `wgpu`).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Copy the `.deb` files from this folder instead of fetching them with apt-get.
    #[arg(long)]
    debs_from: Option<PathBuf>,
    /// No `.deb` files (the GPU machine has a Vulkan loader).
    #[arg(long, conflicts_with = "debs_from")]
    no_debs: bool,
    /// Bundle only the first N training and N/5 test images of each CIFAR-10 class (default:
    /// the whole archive).
    #[arg(long, value_name = "N")]
    cifar_per_class: Option<usize>,
}

pub fn run(args: GpuBundleArgs) -> Result<()> {
    let root = workspace::root();
    let out = if args.out.is_absolute() {
        args.out.clone()
    } else {
        std::env::current_dir()?.join(&args.out)
    };
    let cifar = workspace::shared_cifar10_jpeg();
    let truth = workspace::shared_data().join("nats-sss/nats_sss_cifar10.csv");
    for (what, p) in [
        ("CIFAR-10 JPEG archive", &cifar),
        ("NATS-SSS ground truth", &truth),
    ] {
        if !p.is_file() {
            bail!(
                "{what} {} is missing (set BOSSNAS_SHARED_DATA to the folder holding \
                 cifar10-jpeg/ and nats-sss/)",
                p.display()
            );
        }
    }
    if args.cifar_per_class == Some(0) {
        bail!("--cifar-per-class must be at least 1");
    }

    let binary = match &args.binary {
        Some(b) if b.is_file() => b.clone(),
        Some(b) => bail!("--binary {}: no such file", b.display()),
        None => build(&root, !args.no_fusion)?,
    };

    // Assemble in a sibling folder, then swap it in: a failed run leaves no half bundle.
    let staging = out.with_extension("partial");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("removing {}", staging.display()))?;
    }
    for d in ["bin", "debs", "data/cifar10-jpeg", "data/nats-sss"] {
        std::fs::create_dir_all(staging.join(d))
            .with_context(|| format!("creating {}", staging.join(d).display()))?;
    }
    let stripped = staging.join("bin/xtask");
    strip_into(&binary, &stripped)?;
    gzip_into(&stripped, &staging.join("bin/xtask.gz"))?;
    std::fs::remove_file(&stripped).with_context(|| format!("removing {}", stripped.display()))?;
    if !args.no_debs {
        match &args.debs_from {
            Some(dir) => copy_debs(dir, &staging.join("debs"))?,
            None => fetch_debs(&staging.join("debs"))?,
        }
    }
    let archive = staging.join("data/cifar10-jpeg/cifar10-jpeg.tar.gz");
    match args.cifar_per_class {
        None => copy(&cifar, &archive)?,
        Some(n) => cifar_subset(&cifar, &archive, n)?,
    }
    copy(&truth, &staging.join("data/nats-sss/nats_sss_cifar10.csv"))?;
    copy(
        &root.join("benches/torch_reference.py"),
        &staging.join("torch_reference.py"),
    )?;
    copy(
        &root.join("scripts/gpu-bundle/run.sh"),
        &staging.join("run.sh"),
    )?;
    set_executable(&staging.join("run.sh"))?;

    let source = tracked_bytes(&root)?;
    let items = sizes(&staging)?;
    let bundle: u64 = items.iter().map(|(_, b)| b).sum();
    let manifest = manifest(&args, &items, bundle, source);
    std::fs::write(staging.join("MANIFEST.txt"), &manifest)?;
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("removing {}", out.display()))?;
    }
    std::fs::rename(&staging, &out)
        .with_context(|| format!("moving {} to {}", staging.display(), out.display()))?;
    print!("{manifest}");
    println!("bundle: {}", out.display());
    let total = bundle + source;
    if total > LIMIT_BYTES {
        bail!(
            "bundle {} + source tree {} = {} is over the GPU machine's {}: {}",
            mib(bundle),
            mib(source),
            mib(total),
            mib(LIMIT_BYTES),
            what_to_drop(&items, total - LIMIT_BYTES, args.cifar_per_class.is_none())
        );
    }
    Ok(())
}

/// Builds `xtask` with the GPU features in the dev profile and returns the executable.
fn build(root: &Path, fusion: bool) -> Result<PathBuf> {
    let features = if fusion {
        "xtask/wgpu,xtask/fusion"
    } else {
        "xtask/wgpu"
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building: cargo build -p xtask --features {features}");
    let output = Command::new(cargo)
        .current_dir(root)
        .args(["build", "-p", "xtask", "--features", features])
        .args(["--message-format", "json-render-diagnostics"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo build")?;
    if !output.status.success() {
        bail!("cargo build -p xtask --features {features} failed");
    }
    // The executable is named in cargo's `compiler-artifact` message for the xtask binary.
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "xtask")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .context("cargo build named no xtask executable")
}

/// Copies `src` to `dst` without symbols (`strip`, else `objcopy --strip-all`, else a copy).
fn strip_into(src: &Path, dst: &Path) -> Result<()> {
    let mut strip = Command::new("strip");
    strip.arg("--strip-all").arg("-o").arg(dst).arg(src);
    let mut objcopy = Command::new("objcopy");
    objcopy.arg("--strip-all").arg(src).arg(dst);
    let stripped = [strip, objcopy]
        .iter_mut()
        .any(|cmd| cmd.status().is_ok_and(|s| s.success()));
    if !stripped {
        eprintln!("warning: neither strip nor objcopy worked; the binary keeps its symbols");
        copy(src, dst)?;
    }
    set_executable(dst)
}

/// Compresses `src` into `dst` with the system `gzip` (present on every machine the bundle is
/// made or run on, unlike `xz`); the GPU side unpacks it with `gunzip`.
fn gzip_into(src: &Path, dst: &Path) -> Result<()> {
    let out = std::fs::File::create(dst).with_context(|| format!("creating {}", dst.display()))?;
    let status = Command::new("gzip")
        .arg("-6")
        .arg("-n")
        .arg("-c")
        .arg(src)
        .stdout(out)
        .status()
        .context("running gzip")?;
    if !status.success() {
        bail!("gzip {} failed", src.display());
    }
    Ok(())
}

/// `apt-get download` of [`DEBS`] for amd64 with a private package index (no root needed for
/// the index, none of the host's apt state touched).
fn fetch_debs(dir: &Path) -> Result<()> {
    let lists = std::env::temp_dir().join("bossnas-apt-amd64");
    std::fs::create_dir_all(lists.join("partial"))?;
    let opts = [
        "-oAPT::Architecture=amd64".to_string(),
        "-oAPT::Architectures=amd64".to_string(),
        format!("-oDir::State::Lists={}", lists.display()),
    ];
    let apt = |args: &[&str], cwd: &Path| -> Result<bool> {
        Ok(Command::new("apt-get")
            .current_dir(cwd)
            .args(&opts)
            .args(args)
            .status()
            .context("running apt-get (Debian/Ubuntu only; or pass --debs-from / --no-debs)")?
            .success())
    };
    eprintln!("fetching {} with apt-get download", DEBS.join(" "));
    if !apt(&["-qq", "update"], dir)? {
        bail!("apt-get update failed; pass --debs-from <dir> with the .deb files, or --no-debs");
    }
    let mut args = vec!["-qq", "download"];
    args.extend(DEBS);
    if !apt(&args, dir)? {
        bail!(
            "apt-get download {} failed; pass --debs-from <dir> or --no-debs",
            DEBS.join(" ")
        );
    }
    Ok(())
}

fn copy_debs(from: &Path, dir: &Path) -> Result<()> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "deb") {
            copy(&p, &dir.join(p.file_name().expect("file")))?;
            found.push(p);
        }
    }
    for pkg in DEBS {
        let prefix = format!("{pkg}_");
        if !found.iter().any(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        }) {
            bail!("--debs-from {}: no {pkg}_*.deb", from.display());
        }
    }
    Ok(())
}

/// A CIFAR-10 archive with the first `n` training and `n/5` (≥ 1) test images of each class, in
/// the same `cifar10_jpeg/{train,test}/<class>/NNNN.jpg` layout. Only the chosen files are
/// unpacked (the archive is listed first), so this takes seconds, not the minute that writing
/// all 60,000 files takes.
fn cifar_subset(src: &Path, dst: &Path, n: usize) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    eprintln!(
        "making a CIFAR-10 subset: {n} training and {} test images per class",
        (n / 5).max(1)
    );
    let listed = Command::new("tar")
        .arg("tzf")
        .arg(src)
        .output()
        .with_context(|| format!("listing {} with tar", src.display()))?;
    if !listed.status.success() {
        bail!("tar tzf {} failed", src.display());
    }
    let names = String::from_utf8_lossy(&listed.stdout);
    let mut list = String::new();
    for (split, keep) in [("train", n), ("test", (n / 5).max(1))] {
        for class in CLASSES {
            let dir = format!("cifar10_jpeg/{split}/{class}/");
            let mut files: Vec<&str> = names
                .lines()
                .map(|l| l.trim_start_matches("./"))
                .filter(|l| l.starts_with(&dir) && l.ends_with(".jpg"))
                .collect();
            files.sort_unstable();
            if files.len() < keep {
                bail!(
                    "--cifar-per-class {n}: {} has {} images in {dir}",
                    src.display(),
                    files.len()
                );
            }
            for f in &files[..keep] {
                list.push_str(f);
                list.push('\n');
            }
        }
    }
    let list_path = tmp.path().join("files.txt");
    std::fs::write(&list_path, list)?;
    let unpacked = tmp.path().join("tree");
    std::fs::create_dir_all(&unpacked)?;
    run_tool(
        Command::new("tar")
            .arg("xzf")
            .arg(src)
            .arg("-C")
            .arg(&unpacked)
            .arg("-T")
            .arg(&list_path),
    )?;
    run_tool(
        Command::new("tar")
            .arg("czf")
            .arg(dst)
            .arg("-C")
            .arg(&unpacked)
            .arg("-T")
            .arg(&list_path),
    )
}

fn run_tool(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

fn copy(src: &Path, dst: &Path) -> Result<()> {
    std::fs::copy(src, dst)
        .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
    Ok(())
}

fn set_executable(p: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut perm = std::fs::metadata(p)?.permissions();
    perm.set_mode(0o755);
    std::fs::set_permissions(p, perm).with_context(|| format!("chmod {}", p.display()))
}

/// Bytes of every file git tracks (what travels with the bundle).
fn tracked_bytes(root: &Path) -> Result<u64> {
    let out = Command::new("git")
        .current_dir(root)
        .args(["ls-files", "-z"])
        .output()
        .context("running git ls-files (the source tree travels with the bundle)")?;
    if !out.status.success() {
        bail!("git ls-files failed in {}", root.display());
    }
    Ok(out
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .filter_map(|p| std::fs::metadata(root.join(String::from_utf8_lossy(p).as_ref())).ok())
        .map(|m| m.len())
        .sum())
}

/// Size of each top-level item of the bundle (folders summed), largest first.
fn sizes(dir: &Path) -> Result<Vec<(String, u64)>> {
    fn walk(p: &Path) -> std::io::Result<u64> {
        let m = std::fs::symlink_metadata(p)?;
        if m.is_dir() {
            let mut s = 0;
            for e in std::fs::read_dir(p)? {
                s += walk(&e?.path())?;
            }
            Ok(s)
        } else {
            Ok(m.len())
        }
    }
    let mut items = Vec::new();
    for d in ["bin", "debs", "data/cifar10-jpeg", "data/nats-sss"] {
        items.push((d.to_string(), walk(&dir.join(d))?));
    }
    for f in ["torch_reference.py", "run.sh"] {
        items.push((f.to_string(), walk(&dir.join(f))?));
    }
    items.sort_by_key(|(_, b)| std::cmp::Reverse(*b));
    Ok(items)
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

/// The advice printed when bundle + tree are over the limit.
fn what_to_drop(items: &[(String, u64)], over: u64, whole_cifar: bool) -> String {
    let mut tips = vec![format!("drop {} or more", mib(over))];
    let size = |name: &str| items.iter().find(|(n, _)| n == name).map_or(0, |(_, b)| *b);
    if whole_cifar {
        tips.push(format!(
            "bundle a CIFAR-10 subset with --cifar-per-class N (the whole archive is {}; 1000 \
             per class is about a fifth)",
            mib(size("data/cifar10-jpeg"))
        ));
    } else {
        tips.push("lower --cifar-per-class".into());
    }
    tips.push(format!(
        "--no-debs if the GPU machine has libvulkan.so.1 ({})",
        mib(size("debs"))
    ));
    tips.push(format!(
        "the binary is {} (stripped, gzipped)",
        mib(size("bin"))
    ));
    tips.join("; ")
}

fn manifest(args: &GpuBundleArgs, items: &[(String, u64)], bundle: u64, source: u64) -> String {
    let mut s = String::new();
    s.push_str("BossNAS GPU bundle (cargo xtask gpu-bundle; docs/gpu.md)\n");
    s.push_str(&format!(
        "commit: {}\n",
        workspace::git_commit().unwrap_or_else(|| "unknown".into())
    ));
    match &args.binary {
        Some(b) => s.push_str(&format!(
            "binary: bin/xtask.gz, stripped and gzipped copy of {}\n",
            b.display()
        )),
        None => s.push_str(&format!(
            "binary: bin/xtask.gz, features wgpu{}, dev profile (dependencies optimised), stripped, gzipped\n",
            if args.no_fusion { "" } else { ",fusion" }
        )),
    }
    s.push_str(&format!(
        "cifar-10: {}\n",
        match args.cifar_per_class {
            None => "the whole JPEG archive (50,000 train / 10,000 test)".to_string(),
            Some(n) => format!(
                "subset: {n} train / {} test images per class",
                (n / 5).max(1)
            ),
        }
    ));
    for (name, b) in items {
        s.push_str(&format!("  {name:<22} {:>10}\n", mib(*b)));
    }
    s.push_str(&format!(
        "bundle {} + git-tracked source {} = {} of {}\n",
        mib(bundle),
        mib(source),
        mib(bundle + source),
        mib(LIMIT_BYTES)
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advice_names_the_excess_and_the_biggest_items() {
        let items = vec![
            ("bin".to_string(), 40 << 20),
            ("data/cifar10-jpeg".to_string(), 19 << 20),
            ("debs".to_string(), 1 << 20),
        ];
        let t = what_to_drop(&items, 3 << 20, true);
        assert!(t.contains("drop 3.0 MiB"), "{t}");
        assert!(t.contains("--cifar-per-class"), "{t}");
        assert!(t.contains("19.0 MiB"), "{t}");
        assert!(t.contains("--no-debs"), "{t}");
    }

    #[test]
    fn a_subset_archive_keeps_the_layout_and_the_first_files_of_each_class() {
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("src");
        for split in ["train", "test"] {
            for class in CLASSES {
                let d = tree.join(format!("cifar10_jpeg/{split}/{class}"));
                std::fs::create_dir_all(&d).unwrap();
                for i in 0..12 {
                    std::fs::write(d.join(format!("{i:04}.jpg")), b"x").unwrap();
                }
            }
        }
        let src = tmp.path().join("all.tar.gz");
        run_tool(
            Command::new("tar")
                .arg("czf")
                .arg(&src)
                .arg("-C")
                .arg(&tree)
                .arg("cifar10_jpeg"),
        )
        .unwrap();
        let dst = tmp.path().join("sub.tar.gz");
        cifar_subset(&src, &dst, 10).unwrap();
        let listed = Command::new("tar").arg("tzf").arg(&dst).output().unwrap();
        let names: Vec<String> = String::from_utf8(listed.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(names.len(), 10 * 10 + 10 * 2);
        assert!(names.contains(&"cifar10_jpeg/train/truck/0009.jpg".to_string()));
        assert!(!names.contains(&"cifar10_jpeg/train/truck/0010.jpg".to_string()));
        assert!(names.contains(&"cifar10_jpeg/test/cat/0001.jpg".to_string()));
        assert!(cifar_subset(&src, &dst, 13).is_err());
    }
}
