//! Supervised retraining loop with checkpoints, resume, metrics and final evaluation.
//!
//! # Run directory
//!
//! ```text
//! <run>/
//!   recipe.resolved.toml   the whole recipe
//!   run.json               architecture, data, classes (RunMeta)
//!   metrics.jsonl          one line per step ({"step", "epoch", "loss", "lr", ...}) and
//!                          per evaluation ({"eval": {...}})
//!   checkpoint/            ensemble_bootstrap::checkpoint::RunDir layout: records `model`
//!                          (and `ema`), optimizer state, TrainState with the data position
//!   eval.json              final top-1/top-5 (model, and EMA if any)
//!   model.bpk + model.json exported network (crate::export)
//! ```
//!
//! Checkpoints are written atomically with hashes (a corrupt one is refused, naming the file),
//! at every epoch end, every `checkpoint.every_steps` steps, and when `max_steps` stops the run.
//! A resumed run continues from the newest checkpoint with the same batches (the loader
//! position and every augmentation draw are functions of (seed, step)).

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::optim::GradientsParams;
use burn::tensor::Device;
use ensemble_bootstrap::checkpoint::{RunDir, TrainState, record_of};
use ensemble_bootstrap::progress::Progress;
use ensemble_bootstrap::seeded::{seeded_init, with_seeded_rng};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::RetrainError;
use crate::arch::ArchSpec;
use crate::augment::{random_erase, step_rng};
use crate::data::{Sources, open_sources, train_loader};
use crate::ema::ModelEma;
use crate::eval::{EvalResult, evaluate};
use crate::export::{MODEL_FILE, export_model};
use crate::mixup::{apply, draw, soft_cross_entropy};
use crate::model::{RetrainNet, build_model};
use crate::optim::{build_optimizer, lr_at};
use crate::recipe::{NanPolicy, RESOLVED_RECIPE, Recipe};

/// Run metadata file.
pub const RUN_FILE: &str = "run.json";
/// Final evaluation file.
pub const EVAL_FILE: &str = "eval.json";

/// What a run trains, on what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    /// `{"space": .., "arch": ..}` ([`ArchSpec::to_json`]).
    pub arch: serde_json::Value,
    /// `--data` (a directory or `synthetic`).
    pub data: String,
}

impl RunMeta {
    /// The architecture.
    pub fn arch(&self) -> Result<ArchSpec, RetrainError> {
        ArchSpec::parse(&self.arch.to_string())
    }

    /// Reads `<run>/run.json`.
    pub fn load(run: &Path) -> Result<Self, RetrainError> {
        let path = run.join(RUN_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            RetrainError::Io(format!(
                "{}: {e} ({} is not a retraining run directory?)",
                path.display(),
                run.display()
            ))
        })?;
        serde_json::from_str(&text)
            .map_err(|e| RetrainError::Io(format!("{}: unreadable: {e}", path.display())))
    }

    /// Writes `<run>/run.json` atomically.
    pub fn save(&self, run: &Path) -> Result<(), RetrainError> {
        let path = run.join(RUN_FILE);
        let text = serde_json::to_string_pretty(self).expect("RunMeta serialises");
        bossnas_runfs::write_atomic(&path, text.as_bytes())
            .map_err(|e| RetrainError::Io(format!("{}: {e}", path.display())))
    }
}

/// Loads a run's recipe and metadata.
pub fn load_run(run: &Path) -> Result<(Recipe, RunMeta), RetrainError> {
    let meta = RunMeta::load(run)?;
    let recipe = Recipe::load(&run.join(RESOLVED_RECIPE))?;
    Ok((recipe, meta))
}

/// Creates a new run directory `<parent>/<stem>` (suffixed `-2`, `-3`, ... when the name is
/// taken; see [`RunDir::create_unique`]) with its recipe and metadata, and holds its lock.
/// The recipe and the data are checked before anything is created.
pub fn create_run(
    parent: &Path,
    stem: &str,
    arch: &ArchSpec,
    recipe: &Recipe,
    data: &str,
) -> Result<RunDir, RetrainError> {
    recipe.validate()?;
    // Fail before creating anything when the data cannot be opened.
    open_sources(data, recipe)?;
    let run = RunDir::create_unique(parent, stem)?;
    let written = recipe.save_resolved(run.root()).and_then(|_| {
        RunMeta {
            arch: arch.to_json(),
            data: data.to_string(),
        }
        .save(run.root())
    });
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(run.root());
        return Err(e);
    }
    Ok(run)
}

/// Options of [`retrain`].
#[derive(Debug, Clone, Default)]
pub struct RetrainOptions {
    /// Stop (with a checkpoint) once the run has taken this many optimizer steps.
    pub max_steps: Option<u64>,
    /// Show a progress bar.
    pub progress: bool,
}

/// What a call of [`retrain`] did.
#[derive(Debug, Clone)]
pub struct RetrainOutcome {
    /// All epochs done.
    pub finished: bool,
    /// Optimizer steps of the run so far.
    pub global_step: u64,
    /// Steps of the whole run.
    pub total_steps: u64,
    /// Loss of the last step taken in this call.
    pub last_loss: Option<f64>,
    /// Newest checkpoint.
    pub checkpoint: Option<PathBuf>,
    /// Final evaluation of the trained network (when finished).
    pub eval: Option<EvalResult>,
    /// Final evaluation of the EMA network (when finished and EMA is on).
    pub ema_eval: Option<EvalResult>,
    /// Exported network (when finished).
    pub exported: Option<PathBuf>,
    /// Parameters of the network.
    pub params: usize,
    /// Wall seconds of this call.
    pub wall_s: f64,
}

fn mix(seed: u64, salt: u64) -> u64 {
    seed.rotate_left(7) ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Builds the run's network (seeded) on `device`.
pub fn init_model(
    meta: &RunMeta,
    recipe: &Recipe,
    num_classes: usize,
    device: &Device,
) -> Result<RetrainNet, RetrainError> {
    let arch = meta.arch()?;
    let mut out = None;
    let model = seeded_init(device, mix(recipe.seed, 0x1417), || {
        match build_model(&arch, num_classes, &recipe.model, device) {
            Ok(m) => Some(m),
            Err(e) => {
                out = Some(e);
                None
            }
        }
    });
    match (model, out) {
        (Some(m), _) => Ok(m),
        (None, Some(e)) => Err(e),
        (None, None) => Err(RetrainError::Arch("cannot build the network".into())),
    }
}

struct Ckpt<'a> {
    run: &'a RunDir,
    keep: usize,
    num_classes: usize,
    /// Optimizer steps per epoch.
    spe: usize,
}

impl Ckpt<'_> {
    fn save(
        &self,
        model: &RetrainNet,
        ema: Option<&ModelEma<RetrainNet>>,
        opt: &burn::optim::ModuleOptimizer,
        step: u64,
        loader: &bossnas_datasets::ViewLoader,
        finished: bool,
    ) -> Result<PathBuf, RetrainError> {
        let spe = self.spe;
        let mut records = vec![("model".to_string(), record_of(model))];
        if let Some(e) = ema {
            records.push(("ema".to_string(), record_of(&e.module)));
        }
        let mut extra = serde_json::Map::new();
        extra.insert("finished".into(), json!(finished));
        extra.insert("num_classes".into(), json!(self.num_classes));
        let state = TrainState {
            block: 0,
            best_paths: Vec::new(),
            epoch: (step / spe as u64) as usize,
            iter_in_epoch: (step % spe as u64) as usize,
            block_step: step,
            global_step: step,
            rng: None,
            data_position: Some(loader.position()),
            extra,
        };
        let tag = format!("e{:04}-s{step:08}", step / spe as u64);
        Ok(self
            .run
            .save_checkpoint(&tag, records, Some(opt), &state, self.keep)?)
    }
}

/// Trains (or continues) the run in `run` on `device` and, when all epochs are done,
/// evaluates it and exports the network.
pub fn retrain(
    run: &RunDir,
    device: &Device,
    opts: &RetrainOptions,
) -> Result<RetrainOutcome, RetrainError> {
    let started = Instant::now();
    let (recipe, meta) = load_run(run.root())?;
    let sources = open_sources(&meta.data, &recipe)?;
    let ad = device.clone().autodiff();
    let mut model = init_model(&meta, &recipe, sources.num_classes, &ad)?;
    let params = model.num_params();
    let mut opt = build_optimizer(&recipe);
    let mut loader = train_loader(sources.train.clone(), &recipe)?;
    let spe = loader.batches_per_epoch();
    let total = (recipe.schedule.epochs * spe) as u64;
    let decay = recipe.regularization.model_ema_decay;
    let mut ema = (decay > 0.0).then(|| ModelEma::new(&model, decay));
    let mut step = 0u64;
    let mut checkpoint = None;
    let mut finished_before = false;
    if let Some(ck) = run.resume_latest()? {
        model = ck.load_module("model", model)?;
        opt = ck.load_optimizer(opt)?;
        if let Some(e) = ema.as_mut() {
            e.module = ck.load_module("ema", e.module.clone())?;
        }
        step = ck.state.global_step;
        let pos = ck.state.data_position.ok_or_else(|| {
            RetrainError::Train(format!(
                "{}: checkpoint has no data position",
                ck.dir.display()
            ))
        })?;
        loader.restore(pos)?;
        finished_before = ck
            .state
            .extra
            .get("finished")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        checkpoint = Some(ck.dir.clone());
    }
    let ck = Ckpt {
        run,
        keep: recipe.checkpoint.keep,
        num_classes: sources.num_classes,
        spe,
    };
    let stop_at = opts.max_steps.map_or(total, |m| m.min(total));
    let progress = if opts.progress && step < stop_at {
        Progress::new(total, step)
    } else {
        Progress::hidden()
    };
    let reg = &recipe.regularization;
    let classes = sources.num_classes;
    let mut last_loss = None;
    let mut saved_at = step;
    while step < stop_at {
        let t0 = Instant::now();
        let batch = loader.next_batch(&ad)?;
        if let Some(&bad) = batch.labels.iter().find(|&&l| l >= classes) {
            return Err(RetrainError::Data(format!(
                "label {bad} out of range for {classes} classes"
            )));
        }
        let x = batch.pairs.into_iter().next().expect("one view pair").0;
        let [b, _, h, w] = x.dims();
        let mut rng = step_rng(recipe.seed, step, 0xA06);
        let x = random_erase(x, reg.random_erase_p, &mut rng);
        let kind = draw(reg, h, w, &mut rng);
        let (x, targets) = apply(x, &batch.labels, classes, reg.label_smoothing, kind);
        // Drop-path masks come from the backend's RNG: seeding it per step (under the lock that
        // model initialisation takes, so another thread's init cannot reseed it or be reseeded
        // in between) makes a resumed run draw the same masks as an uninterrupted one.
        let backend_seed = step_rng(recipe.seed, step, 0xD209).random();
        let logits = with_seeded_rng(&ad, backend_seed, || model.forward(x));
        if logits.dims() != [b, classes] {
            return Err(RetrainError::Train(format!(
                "network output {:?}, expected [{b}, {classes}]",
                logits.dims()
            )));
        }
        let loss = soft_cross_entropy(logits, targets);
        let loss_v = loss.clone().into_scalar::<f32>() as f64;
        let lr = lr_at(&recipe, step, spe);
        if !loss_v.is_finite() {
            match recipe.nan_policy {
                NanPolicy::Abort => {
                    return Err(RetrainError::Train(format!(
                        "non-finite loss {loss_v} at step {step} (lr {lr:.3e}); the last good \
                         checkpoint is kept{}; set nan_policy = \"skip\" to skip such steps",
                        checkpoint
                            .as_ref()
                            .map(|p: &PathBuf| format!(" ({})", p.display()))
                            .unwrap_or_default()
                    )));
                }
                NanPolicy::Skip => {
                    progress.println(format!("warning: step {step}: loss {loss_v}, skipped"));
                }
            }
        } else {
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = opt.step(lr, model, grads);
            if let Some(e) = ema.as_mut() {
                e.update(&model).map_err(RetrainError::Train)?;
            }
        }
        step += 1;
        last_loss = Some(loss_v);
        let secs = t0.elapsed().as_secs_f64();
        run.append_metrics(&json!({
            "step": step,
            "epoch": step as f64 / spe as f64,
            "loss": loss_v,
            "lr": lr,
            "mix_lam": kind.lam(),
            "images_per_s": b as f64 / secs.max(1e-9),
        }))?;
        progress.step_message(format!(
            "epoch {} loss {loss_v:.4} lr {lr:.2e} {:.1} img/s",
            step.div_ceil(spe as u64),
            b as f64 / secs.max(1e-9)
        ));
        let epoch_end = step.is_multiple_of(spe as u64);
        let every = recipe.checkpoint.every_steps;
        if epoch_end || (every > 0 && step.is_multiple_of(every)) {
            checkpoint = Some(ck.save(&model, ema.as_ref(), &opt, step, &loader, false)?);
            saved_at = step;
        }
        let ev = recipe.checkpoint.eval_every_epochs as u64;
        if epoch_end && ev > 0 && step < total && (step / spe as u64).is_multiple_of(ev) {
            let r = evaluate(&model, sources.test.clone(), &recipe, device)?;
            progress.println(format!(
                "epoch {}: top-1 {:.2} % top-5 {:.2} %",
                step / spe as u64,
                r.top1,
                r.top5
            ));
            run.append_metrics(&json!({"step": step, "eval": r}))?;
        }
    }
    progress.finish();
    if step < total {
        if saved_at != step || checkpoint.is_none() {
            checkpoint = Some(ck.save(&model, ema.as_ref(), &opt, step, &loader, false)?);
        }
        return Ok(RetrainOutcome {
            finished: false,
            global_step: step,
            total_steps: total,
            last_loss,
            checkpoint,
            eval: None,
            ema_eval: None,
            exported: None,
            params,
            wall_s: started.elapsed().as_secs_f64(),
        });
    }
    let (eval, ema_eval) = final_eval(run, &model, ema.as_ref(), &sources, &recipe, device)?;
    let exported = export_model(
        &model,
        &meta.arch()?,
        classes,
        &recipe.model,
        &run.root().join(MODEL_FILE),
    )?;
    if !finished_before {
        checkpoint = Some(ck.save(&model, ema.as_ref(), &opt, step, &loader, true)?);
    }
    Ok(RetrainOutcome {
        finished: true,
        global_step: step,
        total_steps: total,
        last_loss,
        checkpoint,
        eval: Some(eval),
        ema_eval,
        exported: Some(exported),
        params,
        wall_s: started.elapsed().as_secs_f64(),
    })
}

fn final_eval(
    run: &RunDir,
    model: &RetrainNet,
    ema: Option<&ModelEma<RetrainNet>>,
    sources: &Sources,
    recipe: &Recipe,
    device: &Device,
) -> Result<(EvalResult, Option<EvalResult>), RetrainError> {
    let eval = evaluate(model, sources.test.clone(), recipe, device)?;
    let ema_eval = match ema {
        Some(e) => Some(evaluate(&e.module, sources.test.clone(), recipe, device)?),
        None => None,
    };
    let doc = json!({"model": eval, "ema": ema_eval, "test": sources.test.describe()});
    let path = run.root().join(EVAL_FILE);
    bossnas_runfs::write_atomic(
        &path,
        serde_json::to_string_pretty(&doc)
            .expect("eval serialises")
            .as_bytes(),
    )
    .map_err(|e| RetrainError::Io(format!("{}: {e}", path.display())))?;
    run.append_metrics(&json!({"final_eval": doc}))?;
    Ok((eval, ema_eval))
}

/// Loads the trained network of a run directory or a checkpoint directory (its `model`
/// record, or `ema` with `use_ema`) for evaluation on `device`.
pub fn load_checkpoint_model(
    path: &Path,
    use_ema: bool,
    device: &Device,
) -> Result<(RetrainNet, Recipe, RunMeta), RetrainError> {
    // A checkpoint directory (…/checkpoint/<tag>) or a run directory.
    let (run_root, ck) = if path
        .join(ensemble_bootstrap::checkpoint::STATE_FILE)
        .is_file()
    {
        let run_root = path
            .parent()
            .and_then(Path::parent)
            .ok_or_else(|| RetrainError::Io(format!("{}: no run directory above", path.display())))?
            .to_path_buf();
        (
            run_root,
            ensemble_bootstrap::checkpoint::Checkpoint::load(path)?,
        )
    } else {
        if !path
            .join(ensemble_bootstrap::checkpoint::CHECKPOINT_DIR)
            .is_dir()
        {
            return Err(RetrainError::Io(format!(
                "{}: not a retraining run directory, checkpoint directory or exported .bpk",
                path.display()
            )));
        }
        let run = RunDir::create(path.to_path_buf())?;
        let ck = run.load_latest()?.ok_or_else(|| {
            RetrainError::Io(format!("{}: the run has no checkpoint yet", path.display()))
        })?;
        (path.to_path_buf(), ck)
    };
    let (recipe, meta) = load_run(&run_root)?;
    let classes = num_classes_of(&ck)?;
    let model = init_model(&meta, &recipe, classes, device)?;
    let name = if use_ema { "ema" } else { "model" };
    let model = ck.load_module(name, model)?;
    Ok((model, recipe, meta))
}

/// The classifier width stored in a checkpoint's `model` record (the record knows the shapes).
fn num_classes_of(ck: &ensemble_bootstrap::checkpoint::Checkpoint) -> Result<usize, RetrainError> {
    ck.state
        .extra
        .get("num_classes")
        .and_then(|v| v.as_u64())
        .map(|n| n as usize)
        .ok_or_else(|| {
            RetrainError::Io(format!(
                "{}: checkpoint does not record num_classes",
                ck.dir.display()
            ))
        })
}
