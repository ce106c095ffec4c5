//! Path sampling per training iteration (spec §3.2).
//!
//! - [`SamplingRule::Uniform`]: `P` distinct paths drawn uniformly without replacement from the
//!   block's population (HyTra `RandomPathHook`).
//! - [`SamplingRule::Fair`]: FairNAS strict fairness (MBConv/NATS `FairPathHook`): for each layer
//!   an independent random permutation of that layer's ops; path `p` takes entry `p` of every
//!   permutation, so with `P` = number of ops every op of every layer is used exactly once.
//!
//! Both draw only from a caller-owned [`ChaCha8Rng`], whose state goes into checkpoints
//! ([`crate::checkpoint::RngState`]), so a resumed run draws the same paths. The shuffles are
//! written out here (not `rand`'s `SliceRandom`) so the sequence cannot change with a `rand`
//! upgrade.

use bossnas_supernet::BlockPath;
use rand::RngCore;
use rand_chacha::ChaCha8Rng;

use bossnas_config::Sampling;

/// How paths are drawn; see the [module documentation](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplingRule {
    /// Distinct paths, uniformly without replacement.
    Uniform,
    /// Per-layer random permutations (strict fairness).
    Fair,
}

impl From<Sampling> for SamplingRule {
    fn from(s: Sampling) -> Self {
        match s {
            Sampling::Uniform => SamplingRule::Uniform,
            Sampling::Fair => SamplingRule::Fair,
        }
    }
}

/// A request that the population cannot satisfy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot sample {requested} paths ({rule:?}) from block {block}: {reason}")]
pub struct SamplingError {
    /// Block index.
    pub block: usize,
    /// Paths asked for.
    pub requested: usize,
    /// The rule.
    pub rule: SamplingRule,
    /// Why.
    pub reason: String,
}

/// Uniform integer in `0..n` (`n > 0`) by rejection, so no modulo bias.
fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    let n = n as u64;
    let zone = u64::MAX - (u64::MAX % n);
    loop {
        let v = rng.next_u64();
        if v < zone {
            return (v % n) as usize;
        }
    }
}

/// A random permutation of `0..n` (Fisher–Yates).
fn permutation(rng: &mut ChaCha8Rng, n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = below(rng, i + 1);
        v.swap(i, j);
    }
    v
}

/// Draws paths for one iteration; see [`SamplingRule`].
#[derive(Debug, Clone)]
pub struct PathSampler {
    rule: SamplingRule,
    paths_per_step: usize,
}

impl PathSampler {
    /// `paths_per_step` paths per call to [`PathSampler::sample`].
    pub fn new(rule: SamplingRule, paths_per_step: usize) -> Self {
        Self {
            rule,
            paths_per_step,
        }
    }

    /// The rule.
    pub fn rule(&self) -> SamplingRule {
        self.rule
    }

    /// Paths per call.
    pub fn paths_per_step(&self) -> usize {
        self.paths_per_step
    }

    /// Checks that `population` can give `paths_per_step` paths under the rule (call once per
    /// block, so errors show before training starts).
    pub fn check(&self, block: usize, population: &[BlockPath]) -> Result<(), SamplingError> {
        let err = |reason: String| SamplingError {
            block,
            requested: self.paths_per_step,
            rule: self.rule,
            reason,
        };
        if population.is_empty() || self.paths_per_step == 0 {
            return Err(err("empty population or zero paths".into()));
        }
        match self.rule {
            SamplingRule::Uniform => {
                if self.paths_per_step > population.len() {
                    return Err(err(format!(
                        "the population has only {} paths",
                        population.len()
                    )));
                }
            }
            SamplingRule::Fair => {
                let ops = layer_ops(population);
                let n = ops[0].len();
                if ops.iter().any(|o| o.len() != n) {
                    return Err(err(format!(
                        "fair sampling needs the same number of ops at every layer, got {:?}",
                        ops.iter().map(Vec::len).collect::<Vec<_>>()
                    )));
                }
                let product: usize = ops.iter().map(Vec::len).product();
                if product != population.len() {
                    return Err(err(format!(
                        "fair sampling needs the full product of per-layer ops ({product}), the \
                         population has {}",
                        population.len()
                    )));
                }
                if self.paths_per_step > n {
                    return Err(err(format!("only {n} ops per layer")));
                }
            }
        }
        Ok(())
    }

    /// Draws the paths of one iteration (in draw order).
    ///
    /// # Panics
    /// If [`PathSampler::check`] would fail.
    pub fn sample(&self, population: &[BlockPath], rng: &mut ChaCha8Rng) -> Vec<BlockPath> {
        if let Err(e) = self.check(0, population) {
            panic!("{e}");
        }
        match self.rule {
            SamplingRule::Uniform => {
                // Partial Fisher–Yates over population indices.
                let n = population.len();
                let mut idx: Vec<usize> = (0..n).collect();
                for i in 0..self.paths_per_step {
                    let j = i + below(rng, n - i);
                    idx.swap(i, j);
                }
                idx[..self.paths_per_step]
                    .iter()
                    .map(|&i| population[i].clone())
                    .collect()
            }
            SamplingRule::Fair => {
                let ops = layer_ops(population);
                let perms: Vec<Vec<usize>> = ops
                    .iter()
                    .map(|o| {
                        permutation(rng, o.len())
                            .into_iter()
                            .map(|i| o[i])
                            .collect()
                    })
                    .collect();
                (0..self.paths_per_step)
                    .map(|p| perms.iter().map(|perm| perm[p]).collect())
                    .collect()
            }
        }
    }
}

/// The sorted distinct ops used at each layer of `population`.
fn layer_ops(population: &[BlockPath]) -> Vec<Vec<usize>> {
    let layers = population[0].len();
    (0..layers)
        .map(|l| {
            let mut ops: Vec<usize> = population.iter().map(|p| p[l]).collect();
            ops.sort_unstable();
            ops.dedup();
            ops
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn product(n: usize, layers: usize) -> Vec<BlockPath> {
        let mut v: Vec<BlockPath> = vec![vec![]];
        for _ in 0..layers {
            v = v
                .into_iter()
                .flat_map(|p| {
                    (0..n).map(move |o| {
                        let mut q = p.clone();
                        q.push(o);
                        q
                    })
                })
                .collect();
        }
        v
    }

    #[test]
    fn fair_uses_every_op_once_per_layer() {
        let pop = product(8, 2);
        let s = PathSampler::new(SamplingRule::Fair, 8);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..20 {
            let paths = s.sample(&pop, &mut rng);
            assert_eq!(paths.len(), 8);
            for l in 0..2 {
                let mut ops: Vec<usize> = paths.iter().map(|p| p[l]).collect();
                ops.sort_unstable();
                assert_eq!(ops, (0..8).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn uniform_distinct_members_and_deterministic() {
        let pop = product(3, 2);
        let s = PathSampler::new(SamplingRule::Uniform, 4);
        let mut a = ChaCha8Rng::seed_from_u64(1);
        let mut b = ChaCha8Rng::seed_from_u64(1);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let p = s.sample(&pop, &mut a);
            assert_eq!(p, s.sample(&pop, &mut b));
            let set: std::collections::BTreeSet<_> = p.iter().cloned().collect();
            assert_eq!(set.len(), 4);
            assert!(p.iter().all(|x| pop.contains(x)));
            seen.extend(p);
        }
        assert_eq!(seen.len(), pop.len());
        assert!(s.check(0, &pop[..3]).is_err());
        assert!(
            PathSampler::new(SamplingRule::Fair, 2)
                .check(0, &pop[..4])
                .is_err()
        );
    }
}
