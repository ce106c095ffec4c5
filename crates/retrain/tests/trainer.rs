//! The retraining loop end to end on tiny synthetic data: finish, exact resume, corrupt
//! checkpoints refused, non-finite losses stopped, evaluation from checkpoints and exports.

use bossnas_retrain::arch::ArchSpec;
use bossnas_retrain::eval::evaluate;
use bossnas_retrain::export::load_exported;
use bossnas_retrain::recipe::Recipe;
use bossnas_retrain::trainer::{RetrainOptions, create_run, load_checkpoint_model, retrain};
use burn::tensor::{Device, Distribution, Tensor, Tolerance};

fn opts(max_steps: Option<u64>) -> RetrainOptions {
    RetrainOptions {
        max_steps,
        progress: false,
    }
}

#[test]
fn interrupted_and_resumed_run_equals_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let arch = ArchSpec::parse("8:8:8:8:8").unwrap();
    let mut recipe = Recipe::preset("tiny").unwrap();
    recipe.schedule.epochs = 2;
    recipe.regularization.mixup_alpha = 0.2;
    recipe.regularization.cutmix_alpha = 1.0;
    recipe.regularization.random_erase_p = 0.5;
    // DeiT's data pipeline too: RandAugment, repeated augmentation, resize + centre-crop eval.
    recipe.regularization.rand_augment = "rand-m9-mstd0.5-inc1".into();
    recipe.regularization.repeated_aug = true;
    recipe.data.eval_crop_pct = 0.875;

    let whole = create_run(dir.path(), "whole", &arch, &recipe, "synthetic").unwrap();
    let a = retrain(&whole, &device, &opts(None)).unwrap();
    assert!(a.finished);
    assert_eq!((a.global_step, a.total_steps), (8, 8));

    let split = create_run(dir.path(), "split", &arch, &recipe, "synthetic").unwrap();
    let s1 = retrain(&split, &device, &opts(Some(3))).unwrap();
    assert!(!s1.finished && s1.global_step == 3 && s1.eval.is_none());
    let s2 = retrain(&split, &device, &opts(None)).unwrap();
    assert!(s2.finished && s2.global_step == 8);
    // A finished run resumes to the same figures without training.
    let s3 = retrain(&split, &device, &opts(None)).unwrap();
    assert_eq!(s3.global_step, 8);
    assert!(s3.last_loss.is_none());

    let (ea, eb) = (a.eval.unwrap(), s2.eval.unwrap());
    assert_eq!(ea.top1, eb.top1);
    assert!((ea.loss - eb.loss).abs() < 1e-6, "{} {}", ea.loss, eb.loss);
    assert_eq!(s3.eval.unwrap().top1, ea.top1);
    // The exported networks agree too, and match the checkpoint.
    let (ma, _) = load_exported(&a.exported.unwrap(), &device).unwrap();
    let (mb, _) = load_exported(&s2.exported.unwrap(), &device).unwrap();
    let x = Tensor::<4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    ma.forward(x.clone()).into_data().assert_approx_eq::<f32>(
        &mb.forward(x.clone()).into_data(),
        Tolerance::absolute(1e-5),
    );
    let (mc, r, _) = load_checkpoint_model(whole.root(), false, &device).unwrap();
    let ec = evaluate(
        &mc,
        bossnas_retrain::data::open_sources("synthetic", &r)
            .unwrap()
            .test,
        &r,
        &device,
    )
    .unwrap();
    assert_eq!(ec.top1, ea.top1);
    // The EMA record is there too.
    assert!(load_checkpoint_model(whole.root(), true, &device).is_ok());
    // Metrics: one line per step, plus the final evaluation.
    let metrics = std::fs::read_to_string(whole.root().join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.iter().filter(|v| v.get("loss").is_some()).count(), 8);
    assert!(lines.iter().any(|v| v.get("final_eval").is_some()));
}

#[test]
fn corrupt_checkpoint_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let arch = ArchSpec::parse("8:8:8:8:8").unwrap();
    let recipe = Recipe::preset("tiny").unwrap();
    let run = create_run(dir.path(), "run", &arch, &recipe, "synthetic").unwrap();
    let out = retrain(&run, &device, &opts(Some(1))).unwrap();
    let ck = out.checkpoint.unwrap();
    let file = ck.join("model.bpk");
    let mut bytes = std::fs::read(&file).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xFF;
    std::fs::write(&file, bytes).unwrap();
    let e = retrain(&run, &device, &opts(None)).unwrap_err().to_string();
    assert!(e.contains("model.bpk") && e.contains("corrupt"), "{e}");
}

#[test]
fn non_finite_loss_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let arch = ArchSpec::parse("8:8:8:8:8").unwrap();
    let mut recipe = Recipe::preset("tiny").unwrap();
    recipe.optimizer.lr = 1e30;
    recipe.schedule.epochs = 3;
    let run = create_run(dir.path(), "run", &arch, &recipe, "synthetic").unwrap();
    let e = retrain(&run, &device, &opts(None)).unwrap_err().to_string();
    assert!(e.contains("non-finite loss"), "{e}");
}

#[test]
fn a_tiny_bossnet_and_a_bad_augmentation_policy() {
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let arch = ArchSpec::parse("bossnet-t0").unwrap();
    let mut recipe = Recipe::preset("tiny").unwrap();
    recipe.model.hytra_drop_path_rate = 0.1;
    recipe.optimizer = Recipe::preset("deit").unwrap().optimizer;
    let run = create_run(dir.path(), "t0", &arch, &recipe, "synthetic").unwrap();
    let out = retrain(&run, &device, &opts(Some(2))).unwrap();
    assert_eq!(out.global_step, 2);
    assert!(out.last_loss.unwrap().is_finite());

    let mut bad = Recipe::preset("deit").unwrap();
    bad.regularization.rand_augment = "rand-m9-x3".into();
    let e = create_run(dir.path(), "bad", &arch, &bad, "synthetic")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("regularization.rand_augment") && e.contains("x3"),
        "{e}"
    );
    assert!(!dir.path().join("bad").exists());
}
