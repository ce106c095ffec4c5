//! The per-scale retraining encoding (`retraining_hytra/boss_models.py`) and its conversion
//! to and from search paths.
//!
//! The retraining encoding lists, for each scale 1/4, 1/8, 1/16, 1/32, the block types of the
//! layers run at that scale (0 = ResAtt, 1 = ResConv); e.g. BossNet-T0 is
//! `[[1],[1],[1,1,1,0,1],[0,0,0,1,0,0,0,0,0]]`. An empty list means "no layer at this scale"
//! (the retrained net inserts a 3×3 transition conv). Any number of layers is allowed, so
//! only 16-layer encodings whose scales are not skipped in the middle map to a search path.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::HytraError;
use super::fabric::{NUM_LAYERS, SearchPath};
use super::ops::{Op, OpKind, Scale};

/// A retraining encoding: the block types at each of the four scales, finest first.
///
/// Never holds ResAtt at 1/4 or 1/8. Serialises as four lists of 0/1 codes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<Vec<i64>>", into = "Vec<Vec<u8>>")]
pub struct RetrainEncoding {
    stages: [Vec<OpKind>; 4],
}

impl RetrainEncoding {
    /// Builds an encoding from four per-scale lists of block types (1/4, 1/8, 1/16, 1/32).
    pub fn new(stages: [Vec<OpKind>; 4]) -> Result<RetrainEncoding, HytraError> {
        for (stage, kinds) in stages.iter().enumerate() {
            let scale = Scale::ALL[stage];
            if let Some(position) = kinds.iter().position(|&k| k == OpKind::ResAtt)
                && !scale.allows_attention()
            {
                return Err(HytraError::RetrainAttention { scale, position });
            }
        }
        Ok(RetrainEncoding { stages })
    }

    /// Builds an encoding from nested codes; errors name the scale, the entry and the value.
    pub fn from_codes<V: AsRef<[i64]>>(stages: &[V]) -> Result<RetrainEncoding, HytraError> {
        if stages.len() != 4 {
            return Err(HytraError::WrongScaleCount {
                found: stages.len(),
            });
        }
        let mut out: [Vec<OpKind>; 4] = Default::default();
        for (stage, codes) in stages.iter().enumerate() {
            for (position, &value) in codes.as_ref().iter().enumerate() {
                let kind = OpKind::from_retrain_code(value).ok_or(HytraError::RetrainCode {
                    scale: Scale::ALL[stage],
                    position,
                    value,
                })?;
                out[stage].push(kind);
            }
        }
        RetrainEncoding::new(out)
    }

    /// Parses the JSON form, e.g. `[[1],[1],[1,1,1,0,1],[0,0,0,1,0,0,0,0,0]]`.
    pub fn parse(text: &str) -> Result<RetrainEncoding, HytraError> {
        let nested: Vec<Vec<i64>> =
            serde_json::from_str(text.trim()).map_err(|e| HytraError::Json {
                what: "retraining encoding",
                expected: "4 lists (for 1/4, 1/8, 1/16, 1/32) of 0 (ResAtt) / 1 (ResConv), \
                       e.g. [[1],[1],[1,1,1,0,1],[0,0,0,1,0,0,0,0,0]]",
                message: e.to_string(),
            })?;
        RetrainEncoding::from_codes(&nested)
    }

    /// Block types of the layers at `scale`.
    pub fn at(&self, scale: Scale) -> &[OpKind] {
        &self.stages[scale.stage()]
    }

    /// The four per-scale lists, finest first.
    pub fn stages(&self) -> &[Vec<OpKind>; 4] {
        &self.stages
    }

    /// Total number of ResConv/ResAtt layers (transitions for empty scales not counted).
    pub fn num_layers(&self) -> usize {
        self.stages.iter().map(Vec::len).sum()
    }

    /// All layers in order as ops (scale + kind).
    pub fn ops(&self) -> Vec<Op> {
        Scale::ALL
            .iter()
            .flat_map(|&s| {
                self.at(s)
                    .iter()
                    .map(move |&k| Op::new(s, k).expect("validated"))
            })
            .collect()
    }

    /// Converts to a search path: flatten the layers, split them into 4 blocks of 4.
    ///
    /// Fails if there are not exactly 16 layers, or if a scale is skipped between two
    /// non-empty ones (the fabric only halves one scale per layer).
    pub fn to_search_path(&self) -> Result<SearchPath, HytraError> {
        let ops = self.ops();
        if ops.len() != NUM_LAYERS {
            return Err(HytraError::NotSixteenLayers { found: ops.len() });
        }
        SearchPath::from_ops(&ops)
    }

    /// Groups a search path's layers by scale (the inverse of [`RetrainEncoding::to_search_path`]).
    pub fn from_search_path(path: &SearchPath) -> RetrainEncoding {
        let mut stages: [Vec<OpKind>; 4] = Default::default();
        for op in path.ops() {
            stages[op.scale().stage()].push(op.kind());
        }
        RetrainEncoding { stages }
    }
}

impl TryFrom<Vec<Vec<i64>>> for RetrainEncoding {
    type Error = HytraError;
    fn try_from(v: Vec<Vec<i64>>) -> Result<RetrainEncoding, HytraError> {
        RetrainEncoding::from_codes(&v)
    }
}

impl From<RetrainEncoding> for Vec<Vec<u8>> {
    fn from(e: RetrainEncoding) -> Vec<Vec<u8>> {
        e.stages
            .iter()
            .map(|s| s.iter().map(|k| k.retrain_code()).collect())
            .collect()
    }
}

impl From<&SearchPath> for RetrainEncoding {
    fn from(p: &SearchPath) -> RetrainEncoding {
        RetrainEncoding::from_search_path(p)
    }
}

impl TryFrom<&RetrainEncoding> for SearchPath {
    type Error = HytraError;
    fn try_from(e: &RetrainEncoding) -> Result<SearchPath, HytraError> {
        e.to_search_path()
    }
}

impl fmt::Display for RetrainEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let codes: Vec<Vec<u8>> = self.clone().into();
        f.write_str(&serde_json::to_string(&codes).map_err(|_| fmt::Error)?)
    }
}

impl FromStr for RetrainEncoding {
    type Err = HytraError;
    fn from_str(text: &str) -> Result<RetrainEncoding, HytraError> {
        RetrainEncoding::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hytra::fabric::SpaceVariant;
    use proptest::prelude::*;

    const T0: &str = "[[1],[1],[1,1,1,0,1],[0,0,0,1,0,0,0,0,0]]";

    #[test]
    fn t0_converts_both_ways() {
        let e = RetrainEncoding::parse(T0).unwrap();
        assert_eq!(e.num_layers(), 16);
        let p = e.to_search_path().unwrap();
        assert_eq!(p.to_string(), "5433-3230-0010-0000");
        assert_eq!(RetrainEncoding::from_search_path(&p), e);
        assert_eq!(e.to_string(), T0);
        assert_eq!(serde_json::to_string(&e).unwrap(), T0);
        assert_eq!(serde_json::from_str::<RetrainEncoding>(T0).unwrap(), e);
    }

    #[test]
    fn other_encodings() {
        // R50-T has 3+4+6+3 = 16 layers and is a legal (even executable) search path.
        let r50 = RetrainEncoding::parse("[[1,1,1],[1,1,1,1],[1,1,1,1,1,1],[1,1,1]]").unwrap();
        let p = r50.to_search_path().unwrap();
        assert_eq!(p.to_string(), "5554-4443-3333-3111");
        assert!(p.in_space(SpaceVariant::Executable));
        // ViT-T/16 starts at 1/16: in the paper's space only.
        let vit = RetrainEncoding::from_codes(&[vec![], vec![], vec![0; 16], vec![]]).unwrap();
        let p = vit.to_search_path().unwrap();
        assert!(p.in_space(SpaceVariant::Paper) && !p.in_space(SpaceVariant::Restricted));
        // 12 layers: not a search path.
        let short = RetrainEncoding::parse("[[1,1,1],[1,1,1],[1,1,1],[1,1,1]]").unwrap();
        let err = short.to_search_path().unwrap_err();
        assert_eq!(err, HytraError::NotSixteenLayers { found: 12 });
        assert!(
            err.to_string().contains("12 layers") && err.to_string().contains("16"),
            "{err}"
        );
        // A skipped scale (1/4 → 1/16): a scale jump of two.
        let skip = RetrainEncoding::parse("[[1,1,1,1,1,1,1,1],[],[1,1,1,1,1,1,1,1],[]]").unwrap();
        let err = skip.to_search_path().unwrap_err();
        assert!(err.to_string().contains("from 1/4 to 1/16"), "{err}");
        assert!(err.to_string().contains("block 2 layer 0"), "{err}");
    }

    #[test]
    fn bad_encodings_name_the_problem() {
        let e = RetrainEncoding::parse("[[1],[1,0],[1],[0]]").unwrap_err();
        assert_eq!(
            e,
            HytraError::RetrainAttention {
                scale: Scale::S8,
                position: 1
            }
        );
        let msg = e.to_string();
        assert!(
            msg.contains("1/8") && msg.contains("entry 1") && msg.contains("1/16 and 1/32"),
            "{msg}"
        );
        let e = RetrainEncoding::parse("[[1],[1],[2],[0]]").unwrap_err();
        assert!(e.to_string().contains("1/16 entry 0: 2"), "{e}");
        assert!(e.to_string().contains("0 (ResAtt) or 1 (ResConv)"), "{e}");
        let e = RetrainEncoding::parse("[[1],[1],[1]]").unwrap_err();
        assert!(e.to_string().contains("3 scale lists"), "{e}");
        let e = RetrainEncoding::parse("[[1],[1],[1],[0]").unwrap_err();
        assert!(
            e.to_string().contains("malformed JSON") && e.to_string().contains("retraining"),
            "{e}"
        );
        assert!(serde_json::from_str::<RetrainEncoding>("[[0],[],[],[]]").is_err());
    }

    proptest! {
        #[test]
        fn encodings_round_trip(codes in prop::collection::vec(prop::collection::vec(0i64..2, 0..10), 4)) {
            // Force ResConv at the two fine scales.
            let mut codes = codes;
            for stage in codes.iter_mut().take(2) {
                stage.iter_mut().for_each(|c| *c = 1);
            }
            let e = RetrainEncoding::from_codes(&codes).unwrap();
            let json = serde_json::to_string(&e).unwrap();
            prop_assert_eq!(serde_json::from_str::<RetrainEncoding>(&json).unwrap(), e.clone());
            prop_assert_eq!(RetrainEncoding::parse(&e.to_string()).unwrap(), e.clone());
            if let Ok(p) = e.to_search_path() {
                prop_assert_eq!(RetrainEncoding::from_search_path(&p), e);
            }
        }
    }
}
