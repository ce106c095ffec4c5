//! Reproducible initialisation: Burn's CPU RNG is global, so models are built with the device
//! RNG seeded under a process-wide lock and their lazy parameters materialised before it is
//! released (training and retraining share it).

use std::sync::Mutex;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};

use crate::heads::Predictor;
use crate::siamese::{HeadError, ProjectionHead};

static INIT_LOCK: Mutex<()> = Mutex::new(());

struct Materialize;

impl ModuleVisitor for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// Builds a module with the device RNG seeded to `seed` and materialises every lazily
/// initialised parameter before releasing a process-wide lock, so initialisation is
/// reproducible even with other threads creating tensors (Burn's CPU RNG is global).
pub fn seeded_init<T: Module>(device: &Device, seed: u64, build: impl FnOnce() -> T) -> T {
    seeded_init_with(device, seed, build, |m| m.visit(&mut Materialize))
}

/// Seeds the device RNG to `seed` and runs `f` under the process-wide lock that
/// [`seeded_init`] takes, so that what `f` draws from Burn's global RNG (e.g. drop-path masks)
/// is a function of `seed` alone, even with other threads initialising models (which seed and
/// draw under the same lock). Draws made by threads that do not take the lock can still
/// interleave: reproducibility is per run, not across concurrent unlocked users of the device.
pub fn with_seeded_rng<R>(device: &Device, seed: u64, f: impl FnOnce() -> R) -> R {
    let _guard = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    device.seed(seed);
    f()
}

fn seeded_init_with<T>(
    device: &Device,
    seed: u64,
    build: impl FnOnce() -> T,
    materialize: impl FnOnce(&T),
) -> T {
    with_seeded_rng(device, seed, || {
        let value = build();
        materialize(&value);
        value
    })
}

pub(crate) fn seeded_heads(
    device: &Device,
    seed: u64,
    build: impl FnOnce() -> Result<(ProjectionHead, Predictor), HeadError>,
) -> Result<(ProjectionHead, Predictor), HeadError> {
    seeded_init_with(device, seed, build, |r| {
        if let Ok((h, p)) = r {
            h.visit(&mut Materialize);
            p.visit(&mut Materialize);
        }
    })
}

/// Mixes the run seed with a purpose tag (splitmix64 finaliser): the seeds of the backbone,
/// the heads of each block and the path sampler.
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
