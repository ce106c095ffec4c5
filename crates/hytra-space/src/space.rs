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
