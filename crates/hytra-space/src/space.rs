//! Which search space: the one [`SpaceKind`] of the workspace (issue 17). The run
//! configuration (`[space] kind`), the command line (`--space`), the trainer's and the rater's
//! space dispatch and the reports all use this type; there is no other enum of the three spaces.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which search space. Written `hytra`, `mbconv`, `nats` in configs, JSON and on the command
/// line (with the `clap` feature it is a `clap::ValueEnum`; the doc lines are the help text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum SpaceKind {
    /// HyTra CNN-transformer fabric (ImageNet).
    Hytra,
    /// MBConv (DNA/EfficientNet) space (ImageNet).
    Mbconv,
    /// NATS-Bench size search space (CIFAR).
    Nats,
}

impl SpaceKind {
    /// The three spaces.
    pub const ALL: [SpaceKind; 3] = [SpaceKind::Hytra, SpaceKind::Mbconv, SpaceKind::Nats];

    /// The name used everywhere: `hytra`, `mbconv`, `nats`.
    pub const fn name(self) -> &'static str {
        match self {
            SpaceKind::Hytra => "hytra",
            SpaceKind::Mbconv => "mbconv",
            SpaceKind::Nats => "nats",
        }
    }

    /// A block path in its space's own notation: NATS widths (`16:8`, the width each candidate
    /// stands for: candidate `i` is width `8·(i+1)`), HyTra op codes (`C4-A16`: ResConv /
    /// ResAtt at 1/4, 1/16), MBConv digits (`0132`).
    pub fn path_label(self, path: &[usize]) -> String {
        match self {
            SpaceKind::Nats => path
                .iter()
                .map(|i| (8 * (i + 1)).to_string())
                .collect::<Vec<_>>()
                .join(":"),
            SpaceKind::Hytra => path
                .iter()
                .map(|&i| match crate::hytra::Op::from_index(i) {
                    Ok(op) => format!(
                        "{}{}",
                        match op.kind() {
                            crate::hytra::OpKind::ResAtt => "A",
                            crate::hytra::OpKind::ResConv => "C",
                        },
                        op.scale().reduction()
                    ),
                    Err(_) => format!("?{i}"),
                })
                .collect::<Vec<_>>()
                .join("-"),
            SpaceKind::Mbconv => path.iter().map(|i| i.to_string()).collect(),
        }
    }
}

impl fmt::Display for SpaceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SpaceKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SpaceKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown space `{s}` (expected hytra, mbconv or nats)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_in_the_space_notation() {
        assert_eq!(SpaceKind::Nats.path_label(&[1, 0]), "16:8");
        assert_eq!(SpaceKind::Nats.path_label(&[7]), "64");
        assert_eq!(SpaceKind::Mbconv.path_label(&[0, 1, 3, 2]), "0132");
        let ops = crate::hytra::Op::ALL;
        let conv4 = ops
            .iter()
            .position(|o| o.kind() == crate::hytra::OpKind::ResConv && o.scale().reduction() == 4)
            .unwrap();
        let att16 = ops
            .iter()
            .position(|o| o.kind() == crate::hytra::OpKind::ResAtt && o.scale().reduction() == 16)
            .unwrap();
        assert_eq!(SpaceKind::Hytra.path_label(&[conv4, att16]), "C4-A16");
    }

    #[test]
    fn names_round_trip_through_text_and_serde() {
        for k in SpaceKind::ALL {
            assert_eq!(k.to_string().parse::<SpaceKind>().unwrap(), k);
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{k}\""));
            assert_eq!(serde_json::from_str::<SpaceKind>(&json).unwrap(), k);
        }
        assert!(
            "cnn"
                .parse::<SpaceKind>()
                .unwrap_err()
                .contains("hytra, mbconv or nats")
        );
    }
}
