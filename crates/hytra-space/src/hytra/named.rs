//! Retrainable HyTra networks: a retraining encoding plus the few options that distinguish the
//! published models, and the named reference architectures (spec §1.7, §2.6).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::HytraError;
use super::encoding::RetrainEncoding;
use super::fabric::SearchPath;

/// Activation used throughout a retrained network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// ReLU: the search-time activation and BossNet-T0 w/o SE.
    #[default]
    Relu,
    /// SiLU (swish): BossNet-T0 and T1.
    Silu,
}

/// Stride of the first layer at the coarsest scale.
///
/// 2 is the normal 1/32 network; 1 keeps the last stage at 1/16 (BossNet-T1), which costs
/// about 2.3× the MAdds for +1.1 % top-1. Serialises as the integer 1 or 2.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u8")]
pub enum LastStride {
    /// Last stage stays at 1/16.
    One,
    /// Last stage at 1/32.
    #[default]
    Two,
}

impl LastStride {
    /// The stride as a number.
    pub const fn get(self) -> usize {
        match self {
            LastStride::One => 1,
            LastStride::Two => 2,
        }
    }
}

impl TryFrom<i64> for LastStride {
    type Error = HytraError;
    fn try_from(v: i64) -> Result<LastStride, HytraError> {
        match v {
            1 => Ok(LastStride::One),
            2 => Ok(LastStride::Two),
            other => Err(HytraError::BadLastStride(other)),
        }
    }
}

impl From<LastStride> for u8 {
    fn from(s: LastStride) -> u8 {
        s.get() as u8
    }
}

/// Stride of the 3×3 transition conv that replaces an empty scale list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionStride {
    /// The stage's own stride (1 at 1/4, 2 at 1/8 and 1/16, the last stride at 1/32), so that
    /// every layer listed under a scale runs at that scale. This is the layout `boss_madds.py`
    /// (the paper's MAdds) assumes.
    #[default]
    Stage,
    /// Always 2, as hard-coded in `boss_models.py::make_boss_blocks`: with an empty 1/4 list
    /// every later stage runs one scale coarser than its list says (e.g. ViT-T/16 attends at
    /// 1/32 and ends at 1/64).
    Official,
}

/// Options of a retrained network that are not part of the encoding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetOptions {
    /// Squeeze-and-excitation (timm `SEModule`, reduction 16, min 8 channels) after the last BN
    /// of every ResConv block (never in ResAtt).
    #[serde(default)]
    pub se: bool,
    /// Activation everywhere (SE's inner activation is always ReLU).
    #[serde(default)]
    pub act: Activation,
    /// Stride entering the 1/32 stage.
    #[serde(default)]
    pub last_stride: LastStride,
    /// Stride of empty-scale transitions (only matters for encodings with an empty list).
    #[serde(default)]
    pub transition: TransitionStride,
}

impl NetOptions {
    /// ReLU, no SE, last stride 2, scale-faithful transitions (also `Default`).
    pub const DEFAULT: NetOptions = NetOptions {
        se: false,
        act: Activation::Relu,
        last_stride: LastStride::Two,
        transition: TransitionStride::Stage,
    };
}

/// A retrainable HyTra network: what `retraining_hytra/boss_models.py::BossNet` builds.
///
/// JSON form: `{"encoding": [[1],[1],[1,1,1,0,1],[0,0,0,1,0,0,0,0,0]],
/// "options": {"se": true, "act": "silu", "last_stride": 2, "transition": "stage"}}` (options,
/// and each option, may be omitted).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HytraNet {
    /// Block types per scale.
    pub encoding: RetrainEncoding,
    /// SE, activation and last stride.
    #[serde(default)]
    pub options: NetOptions,
}

impl HytraNet {
    /// A network from an encoding and options.
    pub fn new(encoding: RetrainEncoding, options: NetOptions) -> HytraNet {
        HytraNet { encoding, options }
    }

    /// The retrained network of a search path.
    pub fn from_search_path(path: &SearchPath, options: NetOptions) -> HytraNet {
        HytraNet {
            encoding: RetrainEncoding::from_search_path(path),
            options,
        }
    }

    /// A network written as data (default options): a search path (`[[5,4,3,3],…]`, returned
    /// too) or, failing that, a retraining encoding. The one "search path, else retraining
    /// encoding" rule of `bossnas arch` and `bossnas retrain --arch`; on failure both errors,
    /// so the caller can say why neither applies.
    pub fn parse_data(text: &str) -> Result<(HytraNet, Option<SearchPath>), [HytraError; 2]> {
        match SearchPath::parse(text) {
            Ok(p) => Ok((HytraNet::from_search_path(&p, NetOptions::DEFAULT), Some(p))),
            Err(search_err) => match RetrainEncoding::parse(text) {
                Ok(enc) => Ok((HytraNet::new(enc, NetOptions::DEFAULT), None)),
                Err(enc_err) => Err([search_err, enc_err]),
            },
        }
    }

    /// Looks a reference network up by name (see [`NamedArch`]).
    pub fn named(name: &str) -> Result<HytraNet, HytraError> {
        Ok(name.parse::<NamedArch>()?.net())
    }

    /// Parses the JSON form; a malformed or invalid document yields a [`HytraError::Json`]
    /// whose message contains the underlying reason.
    pub fn parse_json(text: &str) -> Result<HytraNet, HytraError> {
        serde_json::from_str(text).map_err(|e| HytraError::Json {
            what: "HyTra network",
            expected: "{\"encoding\": [[…],[…],[…],[…]], \"options\": {\"se\": bool, \"act\": \
                       \"relu\"|\"silu\", \"last_stride\": 1|2}}",
            message: e.to_string(),
        })
    }
}

/// The published HyTra networks (spec §1.7, §8.3).
///
/// The hand-designed and other-method networks (R50-T … UnNAS-T) use SE + SiLU, the setting
/// `boss_madds.py` costs them with (`use_se=True`); the paper does not state it otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NamedArch {
    /// BossNet-T0: the searched architecture, SE + SiLU.
    #[serde(rename = "bossnet-t0")]
    BossnetT0,
    /// BossNet-T0 without SE, ReLU.
    #[serde(rename = "bossnet-t0-nose")]
    BossnetT0Nose,
    /// BossNet-T1: T0 with last stride 1 (final stage at 1/16, 2048 channels, 8 heads).
    #[serde(rename = "bossnet-t1")]
    BossnetT1,
    /// ResNet-50 layout in HyTra blocks.
    #[serde(rename = "r50-t")]
    R50T,
    /// BoTNet-50 layout: R50-T with ResAtt at 1/32.
    #[serde(rename = "bot50-t")]
    Bot50T,
    /// 16 ResAtt at 1/16.
    #[serde(rename = "vit-t16")]
    VitT16,
    /// 16 ResAtt at 1/32.
    #[serde(rename = "vit-t32")]
    VitT32,
    /// The random architecture of the paper's Table 3.
    #[serde(rename = "random-t")]
    RandomT,
    /// Architecture found by DNA in HyTra.
    #[serde(rename = "dna-t")]
    DnaT,
    /// Architecture found by UnNAS in HyTra.
    #[serde(rename = "unnas-t")]
    UnnasT,
}

impl NamedArch {
    /// All named networks.
    pub const ALL: [NamedArch; 10] = [
        NamedArch::BossnetT0,
        NamedArch::BossnetT0Nose,
        NamedArch::BossnetT1,
        NamedArch::R50T,
        NamedArch::Bot50T,
        NamedArch::VitT16,
        NamedArch::VitT32,
        NamedArch::RandomT,
        NamedArch::DnaT,
        NamedArch::UnnasT,
    ];

    /// The lookup name, e.g. `"bossnet-t0-nose"`.
    pub const fn name(self) -> &'static str {
        match self {
            NamedArch::BossnetT0 => "bossnet-t0",
            NamedArch::BossnetT0Nose => "bossnet-t0-nose",
            NamedArch::BossnetT1 => "bossnet-t1",
            NamedArch::R50T => "r50-t",
            NamedArch::Bot50T => "bot50-t",
            NamedArch::VitT16 => "vit-t16",
            NamedArch::VitT32 => "vit-t32",
            NamedArch::RandomT => "random-t",
            NamedArch::DnaT => "dna-t",
            NamedArch::UnnasT => "unnas-t",
        }
    }

    /// The per-scale codes (`boss_models.py` / `boss_madds.py`).
    fn codes(self) -> [Vec<i64>; 4] {
        const T0: [&[i64]; 4] = [&[1], &[1], &[1, 1, 1, 0, 1], &[0, 0, 0, 1, 0, 0, 0, 0, 0]];
        let owned = |s: [&[i64]; 4]| s.map(<[i64]>::to_vec);
        match self {
            NamedArch::BossnetT0 | NamedArch::BossnetT0Nose | NamedArch::BossnetT1 => owned(T0),
            NamedArch::R50T => owned([&[1; 3], &[1; 4], &[1; 6], &[1; 3]]),
            NamedArch::Bot50T => owned([&[1; 3], &[1; 4], &[1; 6], &[0; 3]]),
            NamedArch::VitT16 => owned([&[], &[], &[0; 16], &[]]),
            NamedArch::VitT32 => owned([&[], &[], &[], &[0; 16]]),
            NamedArch::RandomT => owned([
                &[],
                &[],
                &[0, 1, 1, 1, 0, 0, 1, 0, 1, 1, 0],
                &[0, 1, 0, 1, 1],
            ]),
            NamedArch::DnaT => owned([&[1], &[1, 1, 1], &[1, 0, 1, 1, 1, 1, 0, 1], &[0, 1, 1, 1]]),
            NamedArch::UnnasT => {
                owned([&[], &[1], &[1, 1], &[1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 1, 1, 0]])
            }
        }
    }

    /// Options of the named network.
    pub const fn options(self) -> NetOptions {
        match self {
            NamedArch::BossnetT0Nose => NetOptions {
                se: false,
                act: Activation::Relu,
                ..NetOptions::DEFAULT
            },
            NamedArch::BossnetT1 => NetOptions {
                se: true,
                act: Activation::Silu,
                last_stride: LastStride::One,
                ..NetOptions::DEFAULT
            },
            _ => NetOptions {
                se: true,
                act: Activation::Silu,
                ..NetOptions::DEFAULT
            },
        }
    }

    /// The network.
    pub fn net(self) -> HytraNet {
        let encoding =
            RetrainEncoding::from_codes(&self.codes()).expect("reference encodings are valid");
        HytraNet {
            encoding,
            options: self.options(),
        }
    }

    /// Comma-separated list of valid names (for error messages and CLI help).
    pub fn valid_names() -> String {
        NamedArch::ALL.map(NamedArch::name).join(", ")
    }
}

impl fmt::Display for NamedArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for NamedArch {
    type Err = HytraError;
    fn from_str(text: &str) -> Result<NamedArch, HytraError> {
        let wanted = text.trim().to_ascii_lowercase().replace('_', "-");
        NamedArch::ALL
            .into_iter()
            .find(|a| a.name() == wanted)
            .ok_or_else(|| HytraError::UnknownArch {
                name: text.to_string(),
                valid: NamedArch::valid_names(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in NamedArch::ALL {
            assert_eq!(a.name().parse::<NamedArch>().unwrap(), a);
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(json, format!("\"{}\"", a.name()));
            let net = a.net();
            let json = serde_json::to_string(&net).unwrap();
            assert_eq!(HytraNet::parse_json(&json).unwrap(), net);
            assert_eq!(net.encoding.num_layers(), 16);
        }
        assert_eq!(
            "BossNet_T0".parse::<NamedArch>().unwrap(),
            NamedArch::BossnetT0
        );
    }

    #[test]
    fn t0_family_options() {
        let t0 = HytraNet::named("bossnet-t0").unwrap();
        let nose = HytraNet::named("bossnet-t0-nose").unwrap();
        let t1 = HytraNet::named("bossnet-t1").unwrap();
        assert_eq!(t0.encoding, nose.encoding);
        assert_eq!(t0.encoding, t1.encoding);
        assert!(t0.options.se && !nose.options.se);
        assert_eq!(
            (t0.options.act, nose.options.act),
            (Activation::Silu, Activation::Relu)
        );
        assert_eq!(
            (t0.options.last_stride.get(), t1.options.last_stride.get()),
            (2, 1)
        );
        assert_eq!(
            t0.encoding.to_search_path().unwrap().to_string(),
            "5433-3230-0010-0000"
        );
        let json = serde_json::to_string(&t1).unwrap();
        assert_eq!(
            json,
            r#"{"encoding":[[1],[1],[1,1,1,0,1],[0,0,0,1,0,0,0,0,0]],"options":{"se":true,"act":"silu","last_stride":1,"transition":"stage"}}"#
        );
    }

    #[test]
    fn bad_nets_name_the_problem() {
        let e = HytraNet::named("bossnet-t9").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("bossnet-t9")
                && msg.contains("bossnet-t0-nose")
                && msg.contains("vit-t32"),
            "{msg}"
        );
        let e =
            HytraNet::parse_json(r#"{"encoding":[[1],[1],[1],[1]],"options":{"last_stride":3}}"#)
                .unwrap_err();
        assert!(e.to_string().contains("last stride 3"), "{e}");
        let e = HytraNet::parse_json(r#"{"encoding":[[0],[1],[1],[1]]}"#).unwrap_err();
        assert!(e.to_string().contains("ResAtt (0) is only allowed"), "{e}");
        let e = HytraNet::parse_json(r#"{"encoding":[[1],[1],[1],[1]],"options":{"act":"gelu"}}"#)
            .unwrap_err();
        assert!(e.to_string().contains("gelu"), "{e}");
        // Options default to ReLU, no SE, last stride 2.
        let n = HytraNet::parse_json(r#"{"encoding":[[1],[1],[1],[1]]}"#).unwrap();
        assert_eq!(n.options, NetOptions::default());
    }
}
