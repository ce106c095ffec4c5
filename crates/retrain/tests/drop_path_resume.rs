//! Drop-path masks come from the backend's global RNG, which the trainer seeds per step. This
//! test is alone in its binary so no other test draws from that RNG in between.

use bossnas_retrain::arch::ArchSpec;
use bossnas_retrain::recipe::Recipe;
use bossnas_retrain::trainer::{RetrainOptions, create_run, retrain};
use burn::tensor::Device;

#[test]
fn a_resumed_drop_path_run_equals_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let arch = ArchSpec::parse("bossnet-t0").unwrap();
    let mut recipe = Recipe::preset("tiny").unwrap();
    recipe.model.hytra_drop_path_rate = 0.5;
    recipe.data.synthetic = [24, 8];
    recipe.schedule.epochs = 1;
    recipe.schedule.batch_size = 4;
    recipe.data.eval_batch_size = 8;
    let opts = |max_steps| RetrainOptions {
        max_steps,
        progress: false,
    };
    let whole = create_run(dir.path(), "whole", &arch, &recipe, "synthetic").unwrap();
    let a = retrain(&whole, &device, &opts(None)).unwrap();
    let split = create_run(dir.path(), "split", &arch, &recipe, "synthetic").unwrap();
    retrain(&split, &device, &opts(Some(4))).unwrap();
    let b = retrain(&split, &device, &opts(None)).unwrap();
    assert!(a.finished && b.finished);
    assert_eq!(a.global_step, b.global_step);
    assert_eq!(a.last_loss, b.last_loss);
    let (ea, eb) = (a.eval.unwrap(), b.eval.unwrap());
    assert_eq!((ea.top1, ea.loss), (eb.top1, eb.loss));

    // Without the per-step seed the masks would differ: another seed gives another loss.
    recipe.seed = 1;
    let other = create_run(dir.path(), "other", &arch, &recipe, "synthetic").unwrap();
    let c = retrain(&other, &device, &opts(None)).unwrap();
    assert_ne!(c.last_loss, a.last_loss);
}
