//! The searched spaces as data: a space with its parameters ([`SearchSpace`]), how block paths
//! assemble into the one typed [`Architecture`] of the workspace, what it costs under a
//! [`CostModel`], and how it is written for `bossnas arch cost` (issue 17 moved this here from
//! the search crate, so the trainer, the search, the reports and the CLI share it).

use crate::hytra::{HytraNet, NetOptions, SearchPath, SpaceVariant, supernet_path_cost};
use crate::mbconv::{MBCONV_BLOCKS, MbconvArch};
use crate::nats::{NATS_BLOCKS, NatsArch, NatsSplit};
use crate::space::SpaceKind;
use crate::{ArchError, Cost};
use serde::{Deserialize, Serialize};

/// Result of this module.
pub type Result<T, E = ArchError> = std::result::Result<T, E>;

/// A search space with its block structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SearchSpace {
    /// HyTra: 4 blocks of 4 layers, executable variant (spec §9 B3).
    Hytra,
    /// MBConv: 5 searched blocks (2, 4, 4, 4, 4 layers).
    Mbconv,
    /// NATS-Bench SSS with a block split.
    Nats {
        /// `cifar10` ([2, 2, 1]) or `cifar100` ([2, 1, 2]).
        split: NatsSplit,
    },
}

/// How architectures are costed for budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostModel {
    /// Input image side (224 ImageNet, 32 CIFAR).
    pub input: usize,
    /// Classifier classes (1000 ImageNet, 10/100 CIFAR).
    pub classes: usize,
    /// HyTra: cost of the path inside the supernet (search-time modules) instead of the
    /// retrained BossNet (`bossnas arch cost --in-supernet`).
    pub hytra_in_supernet: bool,
}

impl CostModel {
    /// The defaults of `bossnas arch cost` for `space`: 224 / 1000 for ImageNet spaces, 32 and
    /// 10 or 100 classes for NATS.
    pub fn default_for(space: SearchSpace) -> Self {
        match space {
            SearchSpace::Nats { split } => CostModel {
                input: 32,
                classes: match split {
                    NatsSplit::Cifar10 => 10,
                    NatsSplit::Cifar100 => 100,
                },
                hytra_in_supernet: false,
            },
            _ => CostModel {
                input: 224,
                classes: 1000,
                hytra_in_supernet: false,
            },
        }
    }
}

/// A whole architecture of one of the spaces.
#[derive(Debug, Clone, PartialEq)]
pub enum Architecture {
    /// HyTra search path.
    Hytra(SearchPath),
    /// MBConv architecture.
    Mbconv(MbconvArch),
    /// NATS-SSS channel widths.
    Nats(NatsArch),
}

impl Architecture {
    /// The JSON value `bossnas arch cost --arch` accepts: HyTra `[[5,4,3,3],…]`, MBConv
    /// `"00-1111-…"`, NATS `"64:40:48:64:56"`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Architecture::Hytra(p) => serde_json::json!(p.to_nested()),
            Architecture::Mbconv(a) => serde_json::Value::String(a.to_string()),
            Architecture::Nats(a) => serde_json::Value::String(a.to_string()),
        }
    }

    /// Which space the architecture is in.
    pub fn kind(&self) -> SpaceKind {
        match self {
            Architecture::Hytra(_) => SpaceKind::Hytra,
            Architecture::Mbconv(_) => SpaceKind::Mbconv,
            Architecture::Nats(_) => SpaceKind::Nats,
        }
    }

    /// The `--space` name of `bossnas arch cost`.
    pub fn space_name(&self) -> &'static str {
        self.kind().name()
    }
}

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Architecture::Hytra(p) => p.fmt(f),
            Architecture::Mbconv(a) => a.fmt(f),
            Architecture::Nats(a) => a.fmt(f),
        }
    }
}

impl SearchSpace {
    /// The space of `kind`; `nats_split` is used by NATS only (CIFAR-10 split when `None`).
    pub fn new(kind: SpaceKind, nats_split: Option<NatsSplit>) -> Self {
        match kind {
            SpaceKind::Hytra => SearchSpace::Hytra,
            SpaceKind::Mbconv => SearchSpace::Mbconv,
            SpaceKind::Nats => SearchSpace::Nats {
                split: nats_split.unwrap_or(NatsSplit::Cifar10),
            },
        }
    }

    /// Which space this is.
    pub fn kind(self) -> SpaceKind {
        match self {
            SearchSpace::Hytra => SpaceKind::Hytra,
            SearchSpace::Mbconv => SpaceKind::Mbconv,
            SearchSpace::Nats { .. } => SpaceKind::Nats,
        }
    }

    /// Number of searched blocks.
    pub fn num_blocks(self) -> usize {
        match self {
            SearchSpace::Hytra => crate::hytra::NUM_BLOCKS,
            SearchSpace::Mbconv => MBCONV_BLOCKS,
            SearchSpace::Nats { .. } => NATS_BLOCKS,
        }
    }

    /// The `bossnas` space name.
    pub fn name(self) -> &'static str {
        self.kind().name()
    }

    /// Joins one path per block into an architecture; fails if the combination is not in the
    /// space (HyTra: fabric steps and the executable variant).
    pub fn assemble(self, blocks: &[Vec<usize>]) -> Result<Architecture> {
        if blocks.len() != self.num_blocks() {
            return Err(ArchError::Space(format!(
                "{} has {} blocks, got {} block paths",
                self.name(),
                self.num_blocks(),
                blocks.len()
            )));
        }
        Ok(match self {
            SearchSpace::Hytra => {
                let nested: Vec<Vec<i64>> = blocks
                    .iter()
                    .map(|b| {
                        b.iter()
                            .map(|&i| i64::try_from(i).unwrap_or(i64::MAX))
                            .collect()
                    })
                    .collect();
                let path = SearchPath::from_nested(&nested)?;
                path.check_space(SpaceVariant::Executable)?;
                Architecture::Hytra(path)
            }
            SearchSpace::Mbconv => Architecture::Mbconv(MbconvArch::new(blocks)?),
            SearchSpace::Nats { split } => Architecture::Nats(split.assemble(blocks)?),
        })
    }

    /// Splits an architecture back into block paths.
    pub fn split(self, arch: &Architecture) -> Result<Vec<Vec<usize>>> {
        match (self, arch) {
            (SearchSpace::Hytra, Architecture::Hytra(p)) => Ok(p.to_nested()),
            (SearchSpace::Mbconv, Architecture::Mbconv(a)) => Ok((0..MBCONV_BLOCKS)
                .map(|b| a.block(b).iter().map(|op| op.index()).collect())
                .collect()),
            (SearchSpace::Nats { split }, Architecture::Nats(a)) => (0..NATS_BLOCKS)
                .map(|b| Ok(split.block_ops(a, b)?))
                .collect(),
            _ => Err(ArchError::Space(format!(
                "architecture {arch} is not in the {} space",
                self.name()
            ))),
        }
    }

    /// Cost of an architecture under `model`.
    pub fn cost(self, arch: &Architecture, model: &CostModel) -> Result<Cost> {
        Ok(match arch {
            Architecture::Hytra(p) if model.hytra_in_supernet => {
                supernet_path_cost(p, model.input)?
            }
            Architecture::Hytra(p) => HytraNet::from_search_path(p, NetOptions::DEFAULT)
                .cost(model.input, model.classes)?,
            Architecture::Mbconv(a) => a.cost(model.input, model.classes),
            Architecture::Nats(a) => a.cost(model.input, model.classes),
        })
    }

    /// Every candidate of block `block` when the blocks before it are `chosen` (the greedy
    /// rule; HyTra scales follow `next_block_input`). For NATS and MBConv the population does
    /// not depend on `chosen`.
    pub fn population(self, block: usize, chosen: &[Vec<usize>]) -> Result<Vec<Vec<usize>>> {
        match self {
            SearchSpace::Hytra => {
                use crate::hytra::{BlockPath, Scale, executable_population, next_block_input};
                let input = match block {
                    0 => Scale::S4,
                    _ => {
                        let prev = chosen.get(block - 1).ok_or_else(|| {
                            ArchError::Space(format!(
                                "population of HyTra block {block} needs the best path of block {}",
                                block - 1
                            ))
                        })?;
                        next_block_input(&BlockPath::from_usizes(prev)?)
                    }
                };
                Ok(executable_population(block, input)?
                    .into_iter()
                    .map(|p| p.indices().to_vec())
                    .collect())
            }
            SearchSpace::Mbconv => Ok(crate::mbconv::block_population(block)?
                .map(|ops| ops.iter().map(|o| o.index()).collect())
                .collect()),
            SearchSpace::Nats { split } => Ok(split.block_population(block)?.collect()),
        }
    }
}

/// The digit key of a block path (`"5433"`, NATS `"74"`, MBConv `"0123"`), as in the official
/// `path_rank` files. Indices ≥ 10 are written in brackets.
pub fn path_key(path: &[usize]) -> String {
    path.iter()
        .map(|&i| {
            if i < 10 {
                char::from(b'0' + i as u8).to_string()
            } else {
                format!("[{i}]")
            }
        })
        .collect()
}

/// Parses [`path_key`] (digits only).
pub fn parse_path_key(key: &str) -> Option<Vec<usize>> {
    key.trim()
        .chars()
        .map(|c| c.to_digit(10).map(|d| d as usize))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hytra_t0_assembles_and_costs() {
        let s = SearchSpace::Hytra;
        let blocks = vec![
            vec![5, 4, 3, 3],
            vec![3, 2, 3, 0],
            vec![0, 0, 1, 0],
            vec![0, 0, 0, 0],
        ];
        let a = s.assemble(&blocks).unwrap();
        assert_eq!(a.to_json(), serde_json::json!(blocks));
        assert_eq!(s.split(&a).unwrap(), blocks);
        let sup = s
            .cost(
                &a,
                &CostModel {
                    hytra_in_supernet: true,
                    ..CostModel::default_for(s)
                },
            )
            .unwrap();
        // Documented in hytra-space: 57.29 M parameters, 5.919 GMAdds.
        assert_eq!(sup.params / 10_000, 5729);
        // Illegal step (1/32 → 1/4) is rejected.
        assert!(
            s.assemble(&[vec![0, 0, 0, 0], vec![5, 5, 5, 5], vec![0; 4], vec![0; 4]])
                .is_err()
        );
    }

    #[test]
    fn nats_assembles_and_populations() {
        let s = SearchSpace::Nats {
            split: NatsSplit::Cifar10,
        };
        let a = s.assemble(&[vec![7, 4], vec![5, 7], vec![6]]).unwrap();
        assert_eq!(a.to_string(), "64:40:48:64:56");
        assert_eq!(a.to_json(), serde_json::json!("64:40:48:64:56"));
        assert_eq!(s.population(0, &[]).unwrap().len(), 64);
        assert_eq!(s.population(2, &[]).unwrap().len(), 8);
        assert_eq!(
            s.cost(&a, &CostModel::default_for(s)).unwrap(),
            a_nats("64:40:48:64:56").cost(32, 10)
        );
    }

    fn a_nats(t: &str) -> NatsArch {
        t.parse().unwrap()
    }

    #[test]
    fn hytra_population_follows_previous_best() {
        let s = SearchSpace::Hytra;
        assert_eq!(s.population(0, &[]).unwrap().len(), 50);
        // 5433 ends at 1/16 → 80 candidates; 3230 ends at 1/32 → 16.
        assert_eq!(s.population(1, &[vec![5, 4, 3, 3]]).unwrap().len(), 80);
        assert_eq!(
            s.population(2, &[vec![5, 4, 3, 3], vec![3, 2, 3, 0]])
                .unwrap()
                .len(),
            16
        );
    }

    #[test]
    fn mbconv_assembles() {
        let s = SearchSpace::Mbconv;
        assert_eq!(s.population(0, &[]).unwrap().len(), 16);
        assert_eq!(s.population(1, &[]).unwrap().len(), 256);
        let blocks = vec![
            vec![0, 0],
            vec![1; 4],
            vec![2; 4],
            vec![3; 4],
            vec![0, 1, 2, 3],
        ];
        let a = s.assemble(&blocks).unwrap();
        assert_eq!(a.to_json(), serde_json::json!("00-1111-2222-3333-0123"));
        assert_eq!(s.split(&a).unwrap(), blocks);
    }

    #[test]
    fn keys() {
        assert_eq!(path_key(&[5, 4, 3, 3]), "5433");
        assert_eq!(parse_path_key("5433"), Some(vec![5, 4, 3, 3]));
        assert_eq!(parse_path_key("5a"), None);
    }
}
