//! `bossnas space …`: sizes, populations and enumeration of the three search spaces.

use std::io::{BufWriter, Write};

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use hytra_space::SpaceKind;
use hytra_space::hytra::{self, HytraNet, NetOptions, Scale, SpaceVariant};
use hytra_space::mbconv::{self, MBCONV_BLOCKS};
use hytra_space::nats::{self, NatsArch, NatsSplit};
use serde_json::json;

/// Which HyTra space to enumerate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HytraVariant {
    /// The paper's space: the first layer may start at any scale (2,818,103 paths).
    Paper,
    /// The official `restricted_path` populations: first layer at 1/4 or 1/8 (1,703,991).
    Restricted,
    /// What the supernet's modules can run (1,615,872); the populations our supernet samples.
    Executable,
}

impl From<HytraVariant> for SpaceVariant {
    fn from(v: HytraVariant) -> Self {
        match v {
            HytraVariant::Paper => SpaceVariant::Paper,
            HytraVariant::Restricted => SpaceVariant::Restricted,
            HytraVariant::Executable => SpaceVariant::Executable,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum SpaceCommand {
    /// Total size and per-block populations of a space.
    Info {
        space: SpaceKind,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the architectures of a space (or of one block), one per line.
    Enumerate {
        space: SpaceKind,
        /// Only the population of this block (block paths instead of whole architectures).
        #[arg(long)]
        block: Option<usize>,
        /// HyTra: the input scale of `--block` (1/4, 1/8, 1/16, 1/32; block 0 defaults to 1/4).
        #[arg(long)]
        input_scale: Option<String>,
        /// HyTra: which space to enumerate.
        #[arg(long, value_enum, default_value = "executable")]
        variant: HytraVariant,
        /// NATS: block split (cifar10 = [2,2,1], cifar100 = [2,1,2]).
        #[arg(long, default_value = "cifar10")]
        split: String,
        /// Print CSV `arch,params,madds` (whole architectures only).
        #[arg(long)]
        costs: bool,
        /// Classes of the classifier, for `--costs` (default 10 for NATS, 1000 otherwise).
        #[arg(long)]
        classes: Option<usize>,
        /// Input image side, for `--costs` (default 32 for NATS, 224 otherwise).
        #[arg(long)]
        input: Option<usize>,
    },
}

pub fn run(cmd: SpaceCommand) -> Result<()> {
    match cmd {
        SpaceCommand::Info { space, json } => info(space, json),
        SpaceCommand::Enumerate {
            space,
            block,
            input_scale,
            variant,
            split,
            costs,
            classes,
            input,
        } => {
            let out = std::io::stdout().lock();
            let mut out = BufWriter::new(out);
            let opts = EnumerateOptions {
                block,
                input_scale,
                variant,
                split,
                costs,
                classes,
                input,
            };
            let result = match space {
                SpaceKind::Hytra => enumerate_hytra(&opts, &mut out),
                SpaceKind::Mbconv => enumerate_mbconv(&opts, &mut out),
                SpaceKind::Nats => enumerate_nats(&opts, &mut out),
            };
            match result.and_then(|()| out.flush().map_err(Into::into)) {
                // A closed pipe (`| head`) is not an error.
                Err(e) if is_broken_pipe(&e) => Ok(()),
                other => other,
            }
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

fn info(space: SpaceKind, as_json: bool) -> Result<()> {
    let value = match space {
        SpaceKind::Hytra => {
            let by_scale: Vec<_> = Scale::ALL
                .iter()
                .map(|&s| json!({"input_scale": s.to_string(), "population": hytra::restricted_population(s).len()}))
                .collect();
            let executable: Vec<_> = (0..hytra::NUM_BLOCKS)
                .map(|b| {
                    Scale::ALL
                        .iter()
                        .filter_map(|&s| {
                            hytra::executable_population(b, s).ok().map(
                                |p| json!({"input_scale": s.to_string(), "population": p.len()}),
                            )
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            json!({
                "space": "hytra",
                "layers": hytra::NUM_LAYERS,
                "blocks_count": hytra::NUM_BLOCKS,
                "layers_per_block": hytra::LAYERS_PER_BLOCK,
                "ops": hytra::Op::ALL.iter().map(|op| json!({"index": op.index(), "kind": op.kind().to_string(), "scale": op.scale().to_string()})).collect::<Vec<_>>(),
                "total": SpaceVariant::Paper.size(),
                "restricted": SpaceVariant::Restricted.size(),
                "executable": SpaceVariant::Executable.size(),
                "blocks": by_scale,
                "executable_blocks": executable,
            })
        }
        SpaceKind::Mbconv => json!({
            "space": "mbconv",
            "layers": mbconv::MBCONV_LAYERS,
            "ops": mbconv::MbOp::ALL.iter().map(|op| op.name()).collect::<Vec<_>>(),
            "total": mbconv::MBCONV_SPACE_SIZE,
            "blocks": (0..MBCONV_BLOCKS).map(|b| mbconv::block_population_size(b).expect("block in range")).collect::<Vec<_>>(),
            "layers_per_block": mbconv::MBCONV_BLOCK_LAYERS,
        }),
        SpaceKind::Nats => json!({
            "space": "nats",
            "widths": nats::NATS_WIDTHS,
            "total": nats::NATS_SIZE,
            "blocks": NatsSplit::Cifar10.populations(),
            "splits": NatsSplit::ALL.iter().map(|s| json!({"split": s.to_string(), "layers_per_block": s.block_layers(), "blocks": s.populations()})).collect::<Vec<_>>(),
        }),
    };
    if as_json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    match space {
        SpaceKind::Hytra => {
            println!("HyTra: 16 layers in 4 blocks of 4; ops (index: kind@scale):");
            for op in hytra::Op::ALL {
                println!("  {}: {}@{}", op.index(), op.kind(), op.scale());
            }
            println!(
                "total (paper, first layer at any scale): {}",
                value["total"]
            );
            println!(
                "restricted (first layer at 1/4 or 1/8):  {}",
                value["restricted"]
            );
            println!(
                "executable by the supernet modules:       {}",
                value["executable"]
            );
            println!("per-block population by block input scale (restricted):");
            for s in Scale::ALL {
                println!("  input {s}: {}", hytra::restricted_population(s).len());
            }
        }
        SpaceKind::Mbconv => {
            println!(
                "MBConv: {} searched layers in 5 blocks {:?}, 4 ops: {}",
                mbconv::MBCONV_LAYERS,
                mbconv::MBCONV_BLOCK_LAYERS,
                value["ops"]
            );
            println!("total: {} (4^18)", mbconv::MBCONV_SPACE_SIZE);
            println!("per-block populations: {}", value["blocks"]);
        }
        SpaceKind::Nats => {
            println!("NATS-SSS: 5 widths from {:?}", nats::NATS_WIDTHS);
            println!("total: {}", nats::NATS_SIZE);
            for s in NatsSplit::ALL {
                println!(
                    "  split {s}: layers per block {:?}, populations {:?}",
                    s.block_layers(),
                    s.populations()
                );
            }
        }
    }
    Ok(())
}

struct EnumerateOptions {
    block: Option<usize>,
    input_scale: Option<String>,
    variant: HytraVariant,
    split: String,
    costs: bool,
    classes: Option<usize>,
    input: Option<usize>,
}

fn enumerate_hytra(o: &EnumerateOptions, out: &mut impl Write) -> Result<()> {
    if let Some(block) = o.block {
        if o.costs {
            bail!("--costs needs whole architectures; omit --block");
        }
        let input: Scale = match (&o.input_scale, block) {
            (Some(s), _) => s.parse().with_context(|| format!("--input-scale {s:?}"))?,
            (None, 0) => Scale::S4,
            (None, _) => bail!(
                "HyTra block {block}'s population depends on its input scale; pass --input-scale 1/8, 1/16 or 1/32"
            ),
        };
        let population = match o.variant {
            HytraVariant::Executable => hytra::executable_population(block, input)?,
            HytraVariant::Restricted | HytraVariant::Paper => {
                if block >= hytra::NUM_BLOCKS {
                    bail!("block index {block} is out of range; HyTra has blocks 0 to 3");
                }
                hytra::restricted_population(input)
            }
        };
        for p in population {
            writeln!(out, "{}", serde_json::to_string(&p.indices())?)?;
        }
        return Ok(());
    }
    let (input, classes) = (o.input.unwrap_or(224), o.classes.unwrap_or(1000));
    if o.costs {
        writeln!(out, "arch,params,madds")?;
    }
    let mut failure = None;
    hytra::for_each_path(o.variant.into(), |path| {
        if failure.is_some() {
            return;
        }
        let line = if o.costs {
            HytraNet::from_search_path(path, NetOptions::DEFAULT)
                .cost(input, classes)
                .map_err(anyhow::Error::from)
                .map(|c| format!("{path},{},{}", c.params, c.madds))
        } else {
            Ok(path.to_string())
        };
        if let Err(e) = line.and_then(|l| writeln!(out, "{l}").map_err(Into::into)) {
            failure = Some(e);
        }
    });
    failure.map_or(Ok(()), Err)
}

fn enumerate_mbconv(o: &EnumerateOptions, out: &mut impl Write) -> Result<()> {
    let Some(block) = o.block else {
        bail!(
            "the MBConv space has 4^18 ≈ 6.9e10 architectures; enumerate one block with --block 0..4"
        );
    };
    if o.costs {
        bail!("--costs needs whole architectures; MBConv can only be enumerated per block");
    }
    for ops in mbconv::block_population(block)? {
        writeln!(out, "{}", mbconv::block_code(&ops))?;
    }
    Ok(())
}

fn enumerate_nats(o: &EnumerateOptions, out: &mut impl Write) -> Result<()> {
    let split: NatsSplit = o.split.parse()?;
    if let Some(block) = o.block {
        if o.costs {
            bail!("--costs needs whole architectures; omit --block");
        }
        for ops in split.block_population(block)? {
            let widths: Vec<String> = ops
                .iter()
                .map(|&i| nats::NATS_WIDTHS[i].to_string())
                .collect();
            writeln!(out, "{}", widths.join(":"))?;
        }
        return Ok(());
    }
    let (input, classes) = (o.input.unwrap_or(32), o.classes.unwrap_or(10));
    if o.costs {
        writeln!(out, "arch,params,madds")?;
    }
    for arch in NatsArch::all() {
        if o.costs {
            let c = arch.cost(input, classes);
            writeln!(out, "{arch},{},{}", c.params, c.madds)?;
        } else {
            writeln!(out, "{arch}")?;
        }
    }
    Ok(())
}
