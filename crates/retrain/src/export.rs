//! Export and import of trained networks with burn-store.
//!
//! - [`export_model`]: `model.bpk` (burnpack, via `BurnpackStore`) plus `model.json`
//!   (architecture, classes, model options) beside it, written atomically;
//! - [`load_exported`]: rebuilds the network from `model.json` and applies `model.bpk`
//!   (every tensor must be present and of the right shape);
//! - [`load_pytorch`]: applies a PyTorch state dict (`.pt`/`.pth`, read by burn-store's
//!   `PytorchStore` without torch) to one of our networks, with regex key remapping
//!   (see `docs/retraining.md` for BossNet-T0/T1 checkpoints).

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use burn_store::{ApplyResult, BurnpackStore, ModuleSnapshot, PytorchStore};
use serde::{Deserialize, Serialize};

use crate::RetrainError;
use crate::arch::ArchSpec;
use crate::model::{RetrainNet, build_model};
use crate::recipe::ModelSection;

/// File name of an exported network inside a run directory.
pub const MODEL_FILE: &str = "model.bpk";

/// What is needed to rebuild an exported network (`model.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportMeta {
    /// [`ArchSpec::to_json`].
    pub arch: serde_json::Value,
    /// Classifier outputs.
    pub num_classes: usize,
    /// Width divisor and drop-path rate the network was built with.
    pub model: ModelSection,
}

/// The `model.json` path that goes with `model.bpk`.
pub fn meta_path(bpk: &Path) -> PathBuf {
    bpk.with_extension("json")
}

fn export_err(path: &Path, e: impl std::fmt::Display) -> RetrainError {
    RetrainError::Export(format!("{}: {e}", path.display()))
}

/// Saves `model` (inference copy) to `path` (a `.bpk` file) and its `model.json`; returns
/// `path`.
pub fn export_model(
    model: &RetrainNet,
    arch: &ArchSpec,
    num_classes: usize,
    options: &ModelSection,
    path: &Path,
) -> Result<PathBuf, RetrainError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| export_err(dir, e))?;
    let tmp = bossnas_runfs::temp_path(path).map_err(|e| export_err(path, e))?;
    let mut store = BurnpackStore::from_file(&tmp)
        .auto_extension(false)
        .overwrite(true);
    model
        .valid()
        .save_into(&mut store)
        .map_err(|e| export_err(path, e))?;
    bossnas_runfs::commit(&tmp, path).map_err(|e| export_err(path, e))?;
    let meta = ExportMeta {
        arch: arch.to_json(),
        num_classes,
        model: options.clone(),
    };
    let mpath = meta_path(path);
    bossnas_runfs::write_atomic(
        &mpath,
        serde_json::to_string_pretty(&meta)
            .expect("meta serialises")
            .as_bytes(),
    )
    .map_err(|e| export_err(&mpath, e))?;
    Ok(path.to_path_buf())
}

/// Loads an exported network for inference on `device`.
pub fn load_exported(
    path: &Path,
    device: &Device,
) -> Result<(RetrainNet, ExportMeta), RetrainError> {
    let mpath = meta_path(path);
    let text = std::fs::read_to_string(&mpath).map_err(|e| export_err(&mpath, e))?;
    let meta: ExportMeta = serde_json::from_str(&text).map_err(|e| export_err(&mpath, e))?;
    let arch = ArchSpec::parse(&meta.arch.to_string())?;
    let mut model = build_model(&arch, meta.num_classes, &meta.model, device)?;
    if !path.is_file() {
        return Err(export_err(path, "no such file"));
    }
    let mut store = BurnpackStore::from_file(path).auto_extension(false);
    let result = model
        .load_from(&mut store)
        .map_err(|e| export_err(path, format!("corrupt or mismatched export: {e}")))?;
    check_applied(path, &result)?;
    Ok((model.valid(), meta))
}

fn check_applied(path: &Path, r: &ApplyResult) -> Result<(), RetrainError> {
    if !r.errors.is_empty() || !r.missing.is_empty() {
        return Err(export_err(
            path,
            format!(
                "{} tensors applied, missing {:?}, errors {:?}",
                r.applied.len(),
                r.missing.iter().map(|(p, _)| p).collect::<Vec<_>>(),
                r.errors
            ),
        ));
    }
    Ok(())
}

/// Applies a PyTorch state dict to `model`. `remap` holds `(regex, replacement)` pairs turning
/// PyTorch keys into our module paths (applied in order); `top_level_key` selects a nested
/// dict (e.g. `"model"` for DeiT-style `checkpoint.pth`, `"model_ema"` for the EMA weights).
///
/// Linear weights are transposed and BN `weight`/`bias` become `gamma`/`beta` by burn-store's
/// PyTorch adapter. Every tensor of `model` must be found (no partial loads); keys of the
/// file that match nothing (e.g. `num_batches_tracked`) are reported in the result's `unused`.
pub fn load_pytorch(
    model: &mut RetrainNet,
    path: &Path,
    remap: &[(&str, &str)],
    top_level_key: Option<&str>,
) -> Result<ApplyResult, RetrainError> {
    if !path.is_file() {
        return Err(export_err(path, "no such file"));
    }
    for (from, _) in remap {
        regex_check(from).map_err(|e| export_err(path, e))?;
    }
    let mut store = PytorchStore::from_file(path).map_indices_contiguous(false);
    if let Some(k) = top_level_key {
        store = store.with_top_level_key(k);
    }
    for (from, to) in remap {
        store = store.with_key_remapping(*from, *to);
    }
    let result = model
        .load_from(&mut store)
        .map_err(|e| export_err(path, e))?;
    check_applied(path, &result)?;
    Ok(result)
}

/// Tensor paths of `model` as a PyTorch state dict would have to name them after remapping
/// (enum variants left out, BN `gamma`/`beta`/`running_*`): the right-hand side of the key
/// remapping to write for an official checkpoint.
pub fn module_paths(model: &RetrainNet) -> Vec<String> {
    model
        .collect(None, None, true)
        .into_iter()
        .map(|t| t.name)
        .collect()
}

/// Rejects patterns burn-store's remapper would panic on.
fn regex_check(pattern: &str) -> Result<(), String> {
    burn_store::KeyRemapper::new()
        .add_pattern(pattern, "")
        .map(|_| ())
        .map_err(|e| format!("bad key pattern {pattern:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tensor};

    #[test]
    fn module_paths_name_every_tensor() {
        let spec = ArchSpec::parse("8:16:8:16:8").unwrap();
        let opts = ModelSection {
            hytra_width_divisor: 1,
            hytra_drop_path_rate: 0.0,
        };
        let net = build_model(&spec, 10, &opts, &Device::flex()).unwrap();
        let paths = module_paths(&net);
        assert!(paths.contains(&"stem_conv.weight".to_string()), "{paths:?}");
        assert!(paths.contains(&"cell2.skip.bn.running_var".to_string()));
        assert!(paths.contains(&"classifier.weight".to_string()));
        assert!(paths.iter().all(|p| !p.contains("Nats")));
    }

    #[test]
    fn export_then_load_gives_the_same_outputs() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let x = Tensor::<4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        for (arch, div) in [("8:16:8:16:8", 1), ("bossnet-t0", 16)] {
            let spec = ArchSpec::parse(arch).unwrap();
            let opts = ModelSection {
                hytra_width_divisor: div,
                hytra_drop_path_rate: 0.0,
            };
            let net = build_model(&spec, 10, &opts, &device).unwrap();
            let path = dir.path().join(format!("m{div}.bpk"));
            export_model(&net, &spec, 10, &opts, &path).unwrap();
            let (back, meta) = load_exported(&path, &device).unwrap();
            assert_eq!(meta.num_classes, 10);
            let a = net.valid().forward(x.clone());
            let b = back.forward(x.clone());
            a.into_data()
                .assert_approx_eq::<f32>(&b.into_data(), burn::tensor::Tolerance::absolute(1e-6));
        }
        // A truncated file is an error naming it, not a panic.
        let path = dir.path().join("m1.bpk");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let e = match load_exported(&path, &device) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a truncated export loaded"),
        };
        assert!(e.contains("m1.bpk"), "{e}");
    }
}
