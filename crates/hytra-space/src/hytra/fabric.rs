//! The HyTra "fabric": which scale sequences are legal, the per-block candidate populations and
//! the size of the whole space.
//!
//! Rules (spec §1.5): 16 choice layers in 4 blocks of 4. Each layer runs at the scale of the
//! layer before it or at half of it; the scale is implied by the op index, so there is no
//! separate downsampling flag. The first layer of a block keeps or halves the block's input
//! scale (the scale of the previous block's last op; the stem's 1/4 for block 0).
//!
//! Three nested spaces are distinguished ([`SpaceVariant`]):
//! * the paper's space (2,818,103 paths): the first layer may start at any scale;
//! * the official `restricted_path` space (1,703,991): the first layer runs at 1/4 or 1/8;
//! * the *executable* space (1,615,872): additionally block 0 must end at 1/8 or coarser and
//!   block 1 at 1/16 or coarser, because the official supernet's block 1 has no 1/4→1/8 input
//!   adapter (and no 1/4 op) and blocks 2–3 have no 1/8→1/16 adapter (spec §1.3, §9 B3). Our
//!   supernet builds the official modules, so the search uses this space.
//!
//! Enumeration order: every population is listed in ascending lexicographic order of the four
//! op indices (`[0,0,0,0]` first). The official lists use another order, which only matters
//! for tie-breaking between equal losses.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::HytraError;
use super::ops::{NUM_OPS, Op, Scale};

/// Number of searched blocks.
pub const NUM_BLOCKS: usize = 4;
/// Choice layers per block.
pub const LAYERS_PER_BLOCK: usize = 4;
/// Choice layers in the whole network.
pub const NUM_LAYERS: usize = NUM_BLOCKS * LAYERS_PER_BLOCK;

/// Which HyTra space a path is judged against. See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpaceVariant {
    /// The paper's ≈2.8×10⁶ space: the first layer may start at any scale.
    Paper,
    /// The official default (`restricted_path`): the first layer runs at 1/4 or 1/8.
    Restricted,
    /// What the official supernet modules can run: `Restricted`, with block 0 ending at ≤ 1/8
    /// and block 1 ending at ≤ 1/16 resolution.
    Executable,
}

impl SpaceVariant {
    /// All variants, widest first.
    pub const ALL: [SpaceVariant; 3] = [
        SpaceVariant::Paper,
        SpaceVariant::Restricted,
        SpaceVariant::Executable,
    ];

    /// Scales the first of the 16 layers may run at.
    fn first_layer_scales(self) -> &'static [Scale] {
        match self {
            SpaceVariant::Paper => &Scale::ALL,
            SpaceVariant::Restricted | SpaceVariant::Executable => &[Scale::S4, Scale::S8],
        }
    }

    /// The finest scale block `block` may end at, if limited.
    fn block_end_limit(self, block: usize) -> Option<Scale> {
        match self {
            SpaceVariant::Executable => executable_output_limit(block),
            _ => None,
        }
    }

    /// Number of 16-layer paths in this space, by dynamic programming over layer scales.
    ///
    /// Paper 2,818,103; Restricted 1,703,991; Executable 1,615,872.
    pub fn size(self) -> u64 {
        count_paths(self.first_layer_scales(), |block| {
            self.block_end_limit(block)
        })
    }
}

impl fmt::Display for SpaceVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpaceVariant::Paper => "paper",
            SpaceVariant::Restricted => "restricted",
            SpaceVariant::Executable => "executable",
        })
    }
}

/// Number of ops available at a scale (2 where attention is allowed, else 1).
fn ops_at(scale: Scale) -> u64 {
    if scale.allows_attention() { 2 } else { 1 }
}

/// Counts 16-layer op sequences whose first layer runs at one of `first` and whose block `b`
/// ends no finer than `end_limit(b)`.
fn count_paths(first: &[Scale], end_limit: impl Fn(usize) -> Option<Scale>) -> u64 {
    // ways[s] = number of op sequences so far whose last layer runs at Scale::ALL[s].
    let mut ways = [0u64; 4];
    for &s in first {
        ways[s.stage()] = ops_at(s);
    }
    for layer in 1..NUM_LAYERS {
        if layer % LAYERS_PER_BLOCK == 0 {
            apply_end_limit(&mut ways, end_limit(layer / LAYERS_PER_BLOCK - 1));
        }
        let mut next = [0u64; 4];
        for from in Scale::ALL {
            for to in from.successors() {
                next[to.stage()] += ways[from.stage()] * ops_at(to);
            }
        }
        ways = next;
    }
    apply_end_limit(&mut ways, end_limit(NUM_BLOCKS - 1));
    ways.iter().sum()
}

fn apply_end_limit(ways: &mut [u64; 4], limit: Option<Scale>) {
    if let Some(limit) = limit {
        for s in Scale::ALL.into_iter().filter(|&s| s < limit) {
            ways[s.stage()] = 0;
        }
    }
}

/// Finest input scale the official supernet's block `block` has modules for: the stem's 1/4
/// for block 0, 1/8 for block 1 (no 1/4→1/8 adapter), 1/16 for blocks 2 and 3.
pub fn executable_input_limit(block: usize) -> Result<Scale, HytraError> {
    match block {
        0 => Ok(Scale::S4),
        1 => Ok(Scale::S8),
        2 | 3 => Ok(Scale::S16),
        _ => Err(HytraError::BadBlock(block)),
    }
}

/// Finest scale block `block` may end at in the executable space (the next block's input
/// limit); `None` for the last block.
pub fn executable_output_limit(block: usize) -> Option<Scale> {
    executable_input_limit(block + 1).ok()
}

/// One block's path: the op of each of its four layers, with legal scale steps between them.
///
/// Serialises as a list of four op indices, e.g. `[5,4,3,3]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "Vec<i64>", into = "Vec<u8>")]
pub struct BlockPath {
    ops: [Op; LAYERS_PER_BLOCK],
}

impl BlockPath {
    /// Validates the three steps inside the block (the first layer is checked against the
    /// block input by [`BlockPath::check_after`]).
    pub fn new(ops: [Op; LAYERS_PER_BLOCK]) -> Result<BlockPath, HytraError> {
        for layer in 1..LAYERS_PER_BLOCK {
            let (from, to) = (ops[layer - 1].scale(), ops[layer].scale());
            if !from.may_precede(to) {
                return Err(HytraError::IllegalStep {
                    block: 0,
                    layer,
                    from,
                    to,
                });
            }
        }
        Ok(BlockPath { ops })
    }

    /// Builds a block path from op indices; errors name the layer and the bad value.
    /// Error positions say "block 0"; [`SearchPath`] rewrites them to the real block.
    pub fn from_indices(indices: &[i64]) -> Result<BlockPath, HytraError> {
        if indices.len() != LAYERS_PER_BLOCK {
            return Err(HytraError::WrongLayerCount {
                block: 0,
                found: indices.len(),
            });
        }
        let mut ops = [Op::ALL[0]; LAYERS_PER_BLOCK];
        for (layer, &value) in indices.iter().enumerate() {
            ops[layer] = Op::try_from(value).map_err(|_| HytraError::BadOpIndex {
                block: 0,
                layer,
                value,
            })?;
        }
        BlockPath::new(ops)
    }

    /// Like [`BlockPath::from_indices`] for `usize` indices (the supernet crate's `Vec<usize>`).
    pub fn from_usizes(indices: &[usize]) -> Result<BlockPath, HytraError> {
        let wide: Vec<i64> = indices
            .iter()
            .map(|&i| i64::try_from(i).unwrap_or(i64::MAX))
            .collect();
        BlockPath::from_indices(&wide)
    }

    /// The four ops.
    pub fn ops(&self) -> [Op; LAYERS_PER_BLOCK] {
        self.ops
    }

    /// The four global op indices.
    pub fn indices(&self) -> [usize; LAYERS_PER_BLOCK] {
        self.ops.map(Op::index)
    }

    /// Scale of the first layer.
    pub fn first_scale(&self) -> Scale {
        self.ops[0].scale()
    }

    /// Scale of the last layer: the input scale of the next block (the greedy search rule,
    /// `stage_depths[k+1] = depth(last op) + 1`).
    pub fn last_scale(&self) -> Scale {
        self.ops[LAYERS_PER_BLOCK - 1].scale()
    }

    /// Whether the block may follow an input at `input` (first layer keeps or halves it).
    pub fn is_valid_after(&self, input: Scale) -> bool {
        input.may_precede(self.first_scale())
    }

    /// [`BlockPath::is_valid_after`] with an error naming block `block`.
    pub fn check_after(&self, block: usize, input: Scale) -> Result<(), HytraError> {
        if self.is_valid_after(input) {
            Ok(())
        } else {
            Err(HytraError::FirstLayerScale {
                block,
                input,
                found: self.first_scale(),
            })
        }
    }

    /// The YAML key used by the official rankings: the four digits, e.g. `"5433"`.
    pub fn key(&self) -> String {
        self.indices()
            .iter()
            .map(|i| char::from(b'0' + *i as u8))
            .collect()
    }
}

impl TryFrom<Vec<i64>> for BlockPath {
    type Error = HytraError;
    fn try_from(v: Vec<i64>) -> Result<BlockPath, HytraError> {
        BlockPath::from_indices(&v)
    }
}

impl From<BlockPath> for Vec<u8> {
    fn from(p: BlockPath) -> Vec<u8> {
        p.indices().iter().map(|&i| i as u8).collect()
    }
}

impl fmt::Display for BlockPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// The greedy rule between blocks: block `k+1`'s input scale is the scale of block `k`'s last op.
pub fn next_block_input(previous: &BlockPath) -> Scale {
    previous.last_scale()
}

/// Every block path whose first layer keeps or halves `input` (the official
/// `restricted_path[depth(input)+1]`), in ascending lexicographic index order.
///
/// Sizes: 51 (input 1/4), 99 (1/8), 80 (1/16), 16 (1/32).
pub fn restricted_population(input: Scale) -> Vec<BlockPath> {
    let mut out = Vec::new();
    for code in 0..NUM_OPS.pow(LAYERS_PER_BLOCK as u32) {
        let mut idx = [0i64; LAYERS_PER_BLOCK];
        let mut rest = code;
        for slot in idx.iter_mut().rev() {
            *slot = (rest % NUM_OPS) as i64;
            rest /= NUM_OPS;
        }
        if let Ok(p) = BlockPath::from_indices(&idx)
            && p.is_valid_after(input)
        {
            out.push(p);
        }
    }
    out
}

/// The candidates our supernet rates for block `block` given its input scale: the restricted
/// population minus the paths the official modules could not continue from (block 0 ending at
/// 1/4, block 1 ending at 1/8 or finer; spec §9 B3).
///
/// Errors if the block has no modules for an input that fine (e.g. block 2 fed at 1/8), which
/// can only happen when an earlier block was chosen outside this population.
///
/// Sizes for block 0 (input 1/4): 50; block 1 at 1/8: 98, at 1/16: 80, at 1/32: 16.
pub fn executable_population(block: usize, input: Scale) -> Result<Vec<BlockPath>, HytraError> {
    let limit = executable_input_limit(block)?;
    if input < limit {
        return Err(HytraError::InputTooFine {
            block,
            input,
            limit,
        });
    }
    let end = executable_output_limit(block);
    Ok(restricted_population(input)
        .into_iter()
        .filter(|p| end.is_none_or(|end| p.last_scale() >= end))
        .collect())
}

/// A whole-network search path: four [`BlockPath`]s whose 16 layers obey the fabric rules.
///
/// Valid in the paper's space by construction; use [`SearchPath::in_space`] for the narrower
/// ones. Serialises as `[[5,4,3,3],[3,2,3,0],[0,0,1,0],[0,0,0,0]]`; displays (and also
/// parses) as `5433-3230-0010-0000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "Vec<Vec<i64>>", into = "Vec<Vec<u8>>")]
pub struct SearchPath {
    blocks: [BlockPath; NUM_BLOCKS],
}

impl SearchPath {
    /// Joins four block paths, checking the step from each block's last layer to the next
    /// block's first layer.
    pub fn new(blocks: [BlockPath; NUM_BLOCKS]) -> Result<SearchPath, HytraError> {
        for b in 1..NUM_BLOCKS {
            blocks[b].check_after(b, blocks[b - 1].last_scale())?;
        }
        Ok(SearchPath { blocks })
    }

    /// Builds a path from nested op indices (4 lists of 4); errors name the block, the layer,
    /// the value found and what was allowed.
    pub fn from_nested<V: AsRef<[i64]>>(blocks: &[V]) -> Result<SearchPath, HytraError> {
        if blocks.len() != NUM_BLOCKS {
            return Err(HytraError::WrongBlockCount {
                found: blocks.len(),
            });
        }
        let mut out = [BlockPath {
            ops: [Op::ALL[0]; LAYERS_PER_BLOCK],
        }; NUM_BLOCKS];
        for (b, indices) in blocks.iter().enumerate() {
            out[b] = BlockPath::from_indices(indices.as_ref()).map_err(|e| e.in_block(b))?;
        }
        SearchPath::new(out)
    }

    /// Builds a path from the 16 ops in order.
    pub fn from_ops(ops: &[Op]) -> Result<SearchPath, HytraError> {
        if ops.len() != NUM_LAYERS {
            return Err(HytraError::NotSixteenLayers { found: ops.len() });
        }
        let nested: Vec<Vec<i64>> = ops
            .chunks(LAYERS_PER_BLOCK)
            .map(|c| c.iter().map(|op| op.index() as i64).collect())
            .collect();
        SearchPath::from_nested(&nested)
    }

    /// Parses JSON (`[[5,4,3,3],…]`) or the compact form (`5433-3230-0010-0000`; groups may
    /// also be separated by spaces, commas or `|`).
    pub fn parse(text: &str) -> Result<SearchPath, HytraError> {
        let text = text.trim();
        if text.starts_with('[') {
            let nested: Vec<Vec<i64>> = serde_json::from_str(text).map_err(|e| HytraError::Json {
                what: "search path",
                expected: "4 lists of 4 op indices, e.g. [[5,4,3,3],[3,2,3,0],[0,0,1,0],[0,0,0,0]]",
                message: e.to_string(),
            })?;
            return SearchPath::from_nested(&nested);
        }
        let groups: Vec<&str> = text
            .split(|c: char| c == '-' || c == ',' || c == '|' || c.is_whitespace())
            .filter(|g| !g.is_empty())
            .collect();
        let mut nested = Vec::with_capacity(groups.len());
        for (block, group) in groups.iter().enumerate() {
            let mut digits = Vec::with_capacity(group.len());
            for (layer, c) in group.chars().enumerate() {
                let value = c.to_digit(10).ok_or(HytraError::NotADigit {
                    block,
                    layer,
                    found: c,
                })?;
                digits.push(value as i64);
            }
            nested.push(digits);
        }
        SearchPath::from_nested(&nested)
    }

    /// The four block paths.
    pub fn blocks(&self) -> &[BlockPath; NUM_BLOCKS] {
        &self.blocks
    }

    /// Block `b`'s path.
    pub fn block(&self, b: usize) -> &BlockPath {
        &self.blocks[b]
    }

    /// The 16 ops in order.
    pub fn ops(&self) -> [Op; NUM_LAYERS] {
        let mut out = [Op::ALL[0]; NUM_LAYERS];
        for (b, block) in self.blocks.iter().enumerate() {
            out[b * LAYERS_PER_BLOCK..(b + 1) * LAYERS_PER_BLOCK].copy_from_slice(&block.ops());
        }
        out
    }

    /// The op indices as nested vectors (the supernet crate's `Vec<BlockPath>` form).
    pub fn to_nested(&self) -> Vec<Vec<usize>> {
        self.blocks.iter().map(|b| b.indices().to_vec()).collect()
    }

    /// Input scale of block `b` under the greedy rule (1/4 for block 0: the stem output).
    pub fn block_input(&self, b: usize) -> Scale {
        if b == 0 {
            Scale::S4
        } else {
            self.blocks[b - 1].last_scale()
        }
    }

    /// Whether the path lies in `space`.
    pub fn in_space(&self, space: SpaceVariant) -> bool {
        self.check_space(space).is_ok()
    }

    /// [`SearchPath::in_space`] with an error that says which rule fails.
    pub fn check_space(&self, space: SpaceVariant) -> Result<(), HytraError> {
        let first = self.blocks[0].first_scale();
        if !space.first_layer_scales().contains(&first) {
            return Err(HytraError::OutsideSpace {
                space,
                reason: format!(
                    "block 0 layer 0 runs at {first}, but the stem outputs 1/4 and the first layer \
                     may only run at 1/4 or 1/8"
                ),
            });
        }
        for b in 0..NUM_BLOCKS {
            if let Some(limit) = space.block_end_limit(b) {
                let end = self.blocks[b].last_scale();
                if end < limit {
                    return Err(HytraError::OutsideSpace {
                        space,
                        reason: format!(
                            "block {b} ends at {end}, but block {} of the official supernet only \
                             accepts inputs at {limit} or coarser",
                            b + 1
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

impl TryFrom<Vec<Vec<i64>>> for SearchPath {
    type Error = HytraError;
    fn try_from(v: Vec<Vec<i64>>) -> Result<SearchPath, HytraError> {
        SearchPath::from_nested(&v)
    }
}

impl From<SearchPath> for Vec<Vec<u8>> {
    fn from(p: SearchPath) -> Vec<Vec<u8>> {
        p.blocks.iter().map(|&b| b.into()).collect()
    }
}

impl fmt::Display for SearchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = self.blocks.iter().map(BlockPath::key).collect();
        f.write_str(&keys.join("-"))
    }
}

impl FromStr for SearchPath {
    type Err = HytraError;
    fn from_str(text: &str) -> Result<SearchPath, HytraError> {
        SearchPath::parse(text)
    }
}

/// Visits every 16-layer path of `space`, in ascending lexicographic order of op indices.
///
/// The paper space has 2,818,103 paths, so this streams them instead of collecting.
pub fn for_each_path(space: SpaceVariant, mut visit: impl FnMut(&SearchPath)) {
    fn descend(ops: &mut Vec<Op>, space: SpaceVariant, visit: &mut dyn FnMut(&SearchPath)) {
        if ops.len() == NUM_LAYERS {
            if let Ok(path) = SearchPath::from_ops(ops)
                && path.in_space(space)
            {
                visit(&path);
            }
            return;
        }
        for op in Op::ALL {
            if ops
                .last()
                .is_none_or(|prev| prev.scale().may_precede(op.scale()))
            {
                ops.push(op);
                descend(ops, space, visit);
                ops.pop();
            }
        }
    }
    descend(&mut Vec::with_capacity(NUM_LAYERS), space, &mut visit);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: [[i64; 4]; 4] = [[5, 4, 3, 3], [3, 2, 3, 0], [0, 0, 1, 0], [0, 0, 0, 0]];

    /// Direct statement of the fabric rule on a flat list of 16 indices.
    fn obeys_fabric(flat: &[usize]) -> bool {
        flat.iter().all(|&i| i < NUM_OPS)
            && flat.windows(2).all(|w| {
                let (a, b) = (Op::ALL[w[0]].scale().depth(), Op::ALL[w[1]].scale().depth());
                b == a || b + 1 == a
            })
    }

    #[test]
    fn per_block_population_sizes() {
        let sizes: Vec<usize> = Scale::ALL
            .iter()
            .map(|&s| restricted_population(s).len())
            .collect();
        assert_eq!(sizes, [51, 99, 80, 16]);
        assert_eq!(executable_population(0, Scale::S4).unwrap().len(), 50);
        assert_eq!(executable_population(1, Scale::S8).unwrap().len(), 98);
        assert_eq!(executable_population(1, Scale::S16).unwrap().len(), 80);
        assert_eq!(executable_population(2, Scale::S32).unwrap().len(), 16);
        let e = executable_population(2, Scale::S8).unwrap_err();
        assert!(
            e.to_string().contains("block 2") && e.to_string().contains("1/16"),
            "{e}"
        );
        assert!(executable_population(4, Scale::S32).is_err());
        // Deterministic, documented order: lexicographic.
        let pop = restricted_population(Scale::S32);
        assert_eq!(pop[0].key(), "0000");
        assert_eq!(pop[15].key(), "1111");
        assert!(
            restricted_population(Scale::S4)
                .windows(2)
                .all(|w| w[0] < w[1])
        );
    }

    #[test]
    fn whole_space_sizes() {
        assert_eq!(SpaceVariant::Paper.size(), 2_818_103);
        assert_eq!(SpaceVariant::Restricted.size(), 1_703_991);
        assert_eq!(SpaceVariant::Executable.size(), 1_615_872);
        assert_eq!(count_paths(&[Scale::S4], |_| None), 786_484);
    }

    /// Recount the restricted and executable spaces by chaining the per-block populations with
    /// the greedy input rule: the two methods must agree.
    #[test]
    fn chained_populations_match_the_dp() {
        fn chained(block: usize, input: Scale, executable: bool) -> u64 {
            if block == NUM_BLOCKS {
                return 1;
            }
            let pop = if executable {
                executable_population(block, input).unwrap()
            } else {
                restricted_population(input)
            };
            // Group by the next block's input so the recursion stays small.
            Scale::ALL
                .iter()
                .map(|&s| {
                    let n = pop.iter().filter(|p| next_block_input(p) == s).count() as u64;
                    if n == 0 {
                        0
                    } else {
                        n * chained(block + 1, s, executable)
                    }
                })
                .sum()
        }
        assert_eq!(chained(0, Scale::S4, false), 1_703_991);
        assert_eq!(chained(0, Scale::S4, true), 1_615_872);
    }

    #[test]
    fn t0_path_round_trips_and_is_executable() {
        let p = SearchPath::from_nested(&T0).unwrap();
        assert_eq!(p.to_string(), "5433-3230-0010-0000");
        assert_eq!("5433-3230-0010-0000".parse::<SearchPath>().unwrap(), p);
        assert_eq!("5433 3230 0010 0000".parse::<SearchPath>().unwrap(), p);
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, "[[5,4,3,3],[3,2,3,0],[0,0,1,0],[0,0,0,0]]");
        assert_eq!(serde_json::from_str::<SearchPath>(&json).unwrap(), p);
        assert_eq!(SearchPath::parse(&json).unwrap(), p);
        for v in SpaceVariant::ALL {
            assert!(p.in_space(v));
        }
        // Greedy inputs: 1/4, then 1/16, 1/32, 1/32; candidates 50 + 80 + 16 + 16 (51 + … with
        // the official restricted lists).
        let inputs: Vec<Scale> = (0..4).map(|b| p.block_input(b)).collect();
        assert_eq!(inputs, [Scale::S4, Scale::S16, Scale::S32, Scale::S32]);
        let total: usize = (0..4)
            .map(|b| restricted_population(p.block_input(b)).len())
            .sum();
        assert_eq!(total, 163);
        assert_eq!(p.to_nested()[1], vec![3, 2, 3, 0]);
    }

    #[test]
    fn bad_paths_name_the_problem() {
        let e = SearchPath::parse("[[5,4,3,7],[3,2,3,0],[0,0,1,0],[0,0,0,0]]").unwrap_err();
        assert_eq!(
            e,
            HytraError::BadOpIndex {
                block: 0,
                layer: 3,
                value: 7
            }
        );
        assert!(
            e.to_string().contains("block 0 layer 3") && e.to_string().contains("op index 7"),
            "{e}"
        );
        assert!(e.to_string().contains("0..=5"), "{e}");

        let e = SearchPath::parse("[[5,4,3,3],[3,2,3,0],[0,0,1,0],[0,0,0]]").unwrap_err();
        assert_eq!(e, HytraError::WrongLayerCount { block: 3, found: 3 });
        assert!(e.to_string().contains("block 3 has 3 layers"), "{e}");

        let e = SearchPath::parse("[[5,4,3,3],[3,2,3,0],[0,0,1,0]]").unwrap_err();
        assert!(
            e.to_string().contains("3 blocks") && e.to_string().contains("expected 4"),
            "{e}"
        );

        // 1/4 → 1/16 inside block 0: a jump of two scales.
        let e = SearchPath::parse("5333-3230-0010-0000").unwrap_err();
        assert_eq!(
            e,
            HytraError::IllegalStep {
                block: 0,
                layer: 1,
                from: Scale::S4,
                to: Scale::S16
            }
        );
        assert!(e.to_string().contains("from 1/4 to 1/16"), "{e}");

        // Going back to a finer scale across a block boundary.
        let e = SearchPath::parse("5433-4444-0010-0000").unwrap_err();
        assert!(
            e.to_string().contains("block 1") && e.to_string().contains("1/8"),
            "{e}"
        );

        let e = SearchPath::parse("[[5,4,3,3],[3,2,3,0],").unwrap_err();
        assert!(matches!(e, HytraError::Json { .. }));
        assert!(e.to_string().contains("malformed JSON"), "{e}");
        let e = SearchPath::parse("5433-32x0-0010-0000").unwrap_err();
        assert!(e.to_string().contains("'x'"), "{e}");
        assert!(serde_json::from_str::<SearchPath>("[[5,4,3,3]]").is_err());

        // Paths valid in the paper space but not in the narrower ones.
        let p = SearchPath::parse("3333-3333-3333-3333").unwrap();
        assert!(p.in_space(SpaceVariant::Paper) && !p.in_space(SpaceVariant::Restricted));
        let e = p.check_space(SpaceVariant::Restricted).unwrap_err();
        assert!(
            e.to_string().contains("1/16") && e.to_string().contains("restricted"),
            "{e}"
        );
        let p = SearchPath::parse("5555-4433-3333-0000").unwrap();
        assert!(p.in_space(SpaceVariant::Restricted) && !p.in_space(SpaceVariant::Executable));
        let e = p.check_space(SpaceVariant::Executable).unwrap_err();
        assert!(e.to_string().contains("block 0 ends at 1/4"), "{e}");
    }

    fn arb_flat() -> impl Strategy<Value = Vec<usize>> {
        prop::collection::vec(0..NUM_OPS, NUM_LAYERS)
    }

    /// A legal random path: a random walk over scales with random ops at each scale.
    fn arb_legal() -> impl Strategy<Value = Vec<usize>> {
        (
            0usize..4,
            prop::collection::vec((any::<bool>(), any::<bool>()), NUM_LAYERS),
        )
            .prop_map(|(start, steps)| {
                let mut scale = Scale::ALL[start];
                let mut out = Vec::new();
                for (i, (halve, att)) in steps.into_iter().enumerate() {
                    if i > 0 && halve {
                        scale = scale.halved().unwrap_or(scale);
                    }
                    let kind = if att && scale.allows_attention() {
                        super::super::OpKind::ResAtt
                    } else {
                        super::super::OpKind::ResConv
                    };
                    out.push(Op::new(scale, kind).unwrap().index());
                }
                out
            })
    }

    fn nested(flat: &[usize]) -> Vec<Vec<i64>> {
        flat.chunks(4)
            .map(|c| c.iter().map(|&i| i as i64).collect())
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn construction_accepts_exactly_the_fabric(flat in arb_flat()) {
            let ok = SearchPath::from_nested(&nested(&flat)).is_ok();
            prop_assert_eq!(ok, obeys_fabric(&flat));
        }

        #[test]
        fn legal_paths_are_in_the_populations(flat in arb_legal()) {
            prop_assert!(obeys_fabric(&flat));
            let p = SearchPath::from_nested(&nested(&flat)).unwrap();
            let restricted = p.in_space(SpaceVariant::Restricted);
            prop_assert_eq!(restricted, flat[0] >= 4);
            if restricted {
                for b in 0..NUM_BLOCKS {
                    prop_assert!(restricted_population(p.block_input(b)).contains(p.block(b)));
                }
            }
            if p.in_space(SpaceVariant::Executable) {
                for b in 0..NUM_BLOCKS {
                    let pop = executable_population(b, p.block_input(b)).unwrap();
                    prop_assert!(pop.contains(p.block(b)));
                }
            }
            // Round trips.
            let json = serde_json::to_string(&p).unwrap();
            prop_assert_eq!(serde_json::from_str::<SearchPath>(&json).unwrap(), p);
            prop_assert_eq!(p.to_string().parse::<SearchPath>().unwrap(), p);
            prop_assert_eq!(SearchPath::from_ops(&p.ops()).unwrap(), p);
        }

        #[test]
        fn every_population_member_obeys_the_rules(input in 0usize..4, pick in any::<prop::sample::Index>()) {
            let input = Scale::ALL[input];
            let pop = restricted_population(input);
            let p = pop[pick.index(pop.len())];
            prop_assert!(input.may_precede(p.first_scale()));
            let flat = p.indices();
            prop_assert!(obeys_fabric(&flat));
        }
    }

    #[test]
    fn every_population_member_exhaustively() {
        for input in Scale::ALL {
            for p in restricted_population(input) {
                assert!(input.may_precede(p.first_scale()));
                assert!(obeys_fabric(&p.indices()));
                assert_eq!(BlockPath::from_usizes(&p.indices()).unwrap(), p);
            }
        }
    }

    #[test]
    #[cfg_attr(
        debug_assertions,
        ignore = "3.3 M paths: ~30 s unoptimised; run with --release"
    )]
    fn streaming_enumeration_matches_the_counts() {
        for space in [SpaceVariant::Restricted, SpaceVariant::Executable] {
            let mut n = 0u64;
            for_each_path(space, |p| {
                assert!(p.in_space(space));
                n += 1;
            });
            assert_eq!(n, space.size(), "{space}");
        }
    }
}
