//! Rating noise: the block selector of a sweep rates each block as the suites do (that
//! rating picks the path and is the result), then rates the same trained block again with
//! the views of other epochs. The extra rankings measure how much of a ranking is the views
//! rather than the supernet; they never influence the run.

use std::path::{Path, PathBuf};

use bossnas_search::search::BlockRanking;
use bossnas_search::select::{PopulationCentreSelector, RateOptions, rate_block};
use bossnas_supernet::{BlockPath, Supernet};
use ensemble_bootstrap::selector::{BlockContext, BlockSelector, BoxError, SelectorFactory};

/// Sub-directory of a run holding the extra rankings.
pub const NOISE_DIR: &str = "rating-noise";

/// File with the CPU seconds the extra ratings took (summed over resumptions), which the
/// point's cost leaves out: they measure the rating, they are not part of the search.
pub const NOISE_COST_FILE: &str = "rating-noise/cpu_seconds.txt";

/// CPU seconds spent on extra ratings in `run` so far.
pub fn noise_cpu_seconds(run: &Path) -> f64 {
    std::fs::read_to_string(run.join(NOISE_COST_FILE))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0.0)
}

/// File of block `block`'s ranking with the views of `epoch`.
pub fn noise_file(run: &Path, block: usize, epoch: u64) -> PathBuf {
    run.join(NOISE_DIR)
        .join(format!("block{block}-views{epoch}.json"))
}

/// Population-centre selection plus re-ratings with other views.
#[derive(Debug, Clone, Default)]
pub struct NoiseProbeFactory {
    /// View epochs of the extra ratings (empty: the plain selector).
    pub view_epochs: Vec<u64>,
}

struct NoiseProbe {
    view_epochs: Vec<u64>,
}

impl SelectorFactory for NoiseProbeFactory {
    fn selector<S: Supernet + 'static>(&self) -> Box<dyn BlockSelector<S>> {
        Box::new(NoiseProbe {
            view_epochs: self.view_epochs.clone(),
        })
    }
}

impl<S: Supernet> BlockSelector<S> for NoiseProbe {
    fn select(&mut self, ctx: &BlockContext<'_, S>) -> Result<BlockPath, BoxError> {
        let best = PopulationCentreSelector::default().select(ctx)?;
        let cpu0 = crate::workspace::process_cpu_seconds();
        for &epoch in &self.view_epochs {
            let path = noise_file(ctx.run_dir, ctx.block, epoch);
            if path.is_file() {
                continue; // a resumed run redoes the selection; the re-rating is kept
            }
            let options = RateOptions {
                view_epoch: Some(epoch),
                write_outputs: false,
                ..RateOptions::default()
            };
            let ranking = rate_block(
                ctx.online,
                ctx.target,
                ctx.chosen,
                ctx.population,
                ctx.config,
                ctx.rating_data,
                ctx.device,
                &options,
            )?;
            std::fs::create_dir_all(ctx.run_dir.join(NOISE_DIR))?;
            bossnas_runfs::write_atomic(&path, serde_json::to_string(&ranking)?.as_bytes())?;
            let spent =
                noise_cpu_seconds(ctx.run_dir) + crate::workspace::process_cpu_seconds() - cpu0;
            bossnas_runfs::write_atomic(
                &ctx.run_dir.join(NOISE_COST_FILE),
                format!("{spent}\n").as_bytes(),
            )?;
        }
        Ok(best)
    }
}

/// Reads the extra ranking of `block` with the views of `epoch`, if it was made.
pub fn read_noise_ranking(run: &Path, block: usize, epoch: u64) -> Option<BlockRanking> {
    let text = std::fs::read_to_string(noise_file(run, block, epoch)).ok()?;
    serde_json::from_str(&text).ok()
}
