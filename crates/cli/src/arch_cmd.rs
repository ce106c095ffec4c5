//! `bossnas arch …`: parse an architecture of any space and report its cost.

use anyhow::{Context, Result, anyhow, bail};
use clap::{Subcommand, ValueEnum};
use hytra_space::Cost;
use hytra_space::hytra::{self, HytraNet, NetOptions, RetrainEncoding, SearchPath};
use hytra_space::mbconv::MbconvArch;
use hytra_space::nats::NatsArch;
use serde_json::json;

use hytra_space::SpaceKind;

/// How to read a HyTra architecture given as a list of lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HytraEncoding {
    /// Search path if it is a valid one, else the per-scale retraining encoding.
    Auto,
    /// Search path: 4 blocks of 4 op indices (`[[5,4,3,3],…]` or `5433-3230-0010-0000`).
    Search,
    /// Retraining encoding: per-scale lists for 1/4, 1/8, 1/16, 1/32 (0 = ResAtt, 1 = ResConv).
    Retrain,
}

#[derive(Debug, Subcommand)]
pub enum ArchCommand {
    /// Parameters and multiply-adds of a standalone network (or of a path in the supernet).
    Cost {
        /// Search space of the architecture.
        #[arg(long)]
        space: SpaceKind,
        /// A name (bossnet-t0, r50-t, …), a NATS string (64:40:48:64:56), an MBConv code
        /// (00-1111-2222-3333-0123) or JSON of either HyTra encoding / a HyTra network.
        #[arg(long)]
        arch: String,
        /// Input image side (default 224; 32 for NATS).
        #[arg(long)]
        input: Option<usize>,
        /// Classifier classes (default 1000; 10 for NATS).
        #[arg(long)]
        classes: Option<usize>,
        /// HyTra: how to read a list-of-lists architecture.
        #[arg(long, value_enum, default_value = "auto")]
        encoding: HytraEncoding,
        /// HyTra: cost of the search path inside the supernet (search-time modules) instead
        /// of the retrained network.
        #[arg(long)]
        in_supernet: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Draw an architecture: HyTra on its fabric (4 scales × 16 layers, ResConv and ResAtt
    /// nodes, the chosen path), NATS as a strip of its five widths, MBConv as one bar per
    /// searched layer (height: expansion ratio, colour: kernel). PNG or SVG by extension.
    Draw {
        /// Search space of the architecture.
        #[arg(long)]
        space: SpaceKind,
        /// As for `arch cost`: a name (bossnet-t0, …), a search path, a NATS or MBConv string,
        /// JSON.
        #[arg(long)]
        arch: String,
        /// Output file (`.svg` or `.png`).
        #[arg(long)]
        out: std::path::PathBuf,
        /// HyTra: how to read a list-of-lists architecture.
        #[arg(long, value_enum, default_value = "auto")]
        encoding: HytraEncoding,
    },
}

/// `--arch` as given, or the architecture in the file it names (e.g. `<run>/search/arch.json`,
/// which holds a JSON string for NATS/MBConv and a JSON value for HyTra).
fn arch_text(arch: String) -> Result<String> {
    let path = std::path::Path::new(&arch);
    if !path.is_file() {
        return Ok(arch);
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("--arch {arch}"))?;
    Ok(match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::String(s)) => s,
        _ => text,
    })
}

pub fn run(cmd: ArchCommand) -> Result<()> {
    let (space, arch, input, classes, encoding, in_supernet, json) = match cmd {
        ArchCommand::Draw {
            space,
            arch,
            out,
            encoding,
        } => return draw(space, &arch_text(arch)?, &out, encoding),
        ArchCommand::Cost {
            space,
            arch,
            input,
            classes,
            encoding,
            in_supernet,
            json,
        } => (space, arch, input, classes, encoding, in_supernet, json),
    };
    cost(space, arch, input, classes, encoding, in_supernet, json)
}

fn draw(
    space: SpaceKind,
    arch: &str,
    out: &std::path::Path,
    encoding: HytraEncoding,
) -> Result<()> {
    let written = match space {
        SpaceKind::Nats => {
            let a: NatsArch = arch.trim().trim_matches('"').parse()?;
            bench_nats::figures::save(out, &bossnas_search::figures::arch_strip(&a))
        }
        SpaceKind::Hytra => {
            let parsed = parse_hytra(arch, encoding)?;
            let ops = parsed.net.encoding.ops();
            let fig = bossnas_search::figures::fabric(format!("HyTra {}", parsed.label), &ops);
            bench_nats::figures::save(out, &fig)
        }
        SpaceKind::Mbconv => {
            let a = MbconvArch::parse_data(arch)?;
            bench_nats::figures::save(out, &bossnas_search::figures::mbconv_strip(&a))
        }
    };
    let text = written.with_context(|| format!("--out {}", out.display()))?;
    if !text {
        eprintln!("note: no font found (set BOSSNAS_FONT to a .ttf file); drawn without text");
    }
    println!("{}", out.display());
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn cost(
    space: SpaceKind,
    arch: String,
    input: Option<usize>,
    classes: Option<usize>,
    encoding: HytraEncoding,
    in_supernet: bool,
    json: bool,
) -> Result<()> {
    let arch = arch_text(arch)?;
    let default_input = if space == SpaceKind::Nats { 32 } else { 224 };
    let input = input.unwrap_or(default_input);
    let classes = classes.unwrap_or(if space == SpaceKind::Nats { 10 } else { 1000 });
    if in_supernet && space != SpaceKind::Hytra {
        bail!("--in-supernet is only available for the HyTra space");
    }
    let (canonical, cost, extra) = match space {
        SpaceKind::Nats => {
            let a: NatsArch = arch.trim().trim_matches('"').parse()?;
            (
                a.to_string(),
                a.cost(input, classes),
                json!({"index": a.index()}),
            )
        }
        SpaceKind::Mbconv => {
            let a = MbconvArch::parse_data(&arch)?;
            (a.to_string(), a.cost(input, classes), json!({}))
        }
        SpaceKind::Hytra => {
            let parsed = parse_hytra(&arch, encoding)?;
            let cost = if in_supernet {
                let path = parsed.search_path.as_ref().ok_or_else(|| {
                    anyhow!(
                        "--in-supernet needs a 16-layer architecture that is a HyTra search path"
                    )
                })?;
                hytra::supernet_path_cost(path, input)?
            } else {
                parsed.net.cost(input, classes)?
            };
            let extra = json!({
                "search_path": parsed.search_path.as_ref().map(|p| p.to_nested()),
                "retrain_encoding": parsed.net.encoding,
                "options": parsed.net.options,
                "in_supernet": in_supernet,
            });
            (parsed.label, cost, extra)
        }
    };
    print_cost(space, &canonical, input, classes, cost, extra, json)
}

fn print_cost(
    space: SpaceKind,
    arch: &str,
    input: usize,
    classes: usize,
    cost: Cost,
    extra: serde_json::Value,
    as_json: bool,
) -> Result<()> {
    if as_json {
        let mut v = json!({
            "space": format!("{space:?}").to_lowercase(),
            "arch": arch,
            "input": input,
            "classes": classes,
            "params": cost.params,
            "madds": cost.madds,
        });
        if let (Some(obj), Some(more)) = (v.as_object_mut(), extra.as_object()) {
            obj.extend(more.clone());
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("arch:   {arch}");
        println!("input:  {input}x{input}, {classes} classes");
        println!(
            "params: {} ({:.2} M)",
            cost.params,
            cost.params as f64 / 1e6
        );
        println!("madds:  {} ({:.3} G)", cost.madds, cost.madds as f64 / 1e9);
    }
    Ok(())
}

struct ParsedHytra {
    label: String,
    net: HytraNet,
    search_path: Option<SearchPath>,
}

/// Reads a HyTra architecture: a name, a network JSON object, or either encoding.
fn parse_hytra(text: &str, encoding: HytraEncoding) -> Result<ParsedHytra> {
    let t = text.trim();
    let from_net = |label: String, net: HytraNet| ParsedHytra {
        label,
        search_path: net.encoding.to_search_path().ok(),
        net,
    };
    if t.starts_with('{') {
        let net = HytraNet::parse_json(t)?;
        return Ok(from_net(net.encoding.to_string(), net));
    }
    let looks_like_data =
        t.starts_with('[') || t.chars().next().is_some_and(|c| c.is_ascii_digit());
    if !looks_like_data {
        let net = HytraNet::named(t)?;
        return Ok(from_net(t.to_string(), net));
    }
    let as_search = || -> Result<ParsedHytra> {
        let path = SearchPath::parse(t)?;
        Ok(ParsedHytra {
            label: path.to_string(),
            net: HytraNet::from_search_path(&path, NetOptions::DEFAULT),
            search_path: Some(path),
        })
    };
    let as_retrain = || -> Result<ParsedHytra> {
        let enc = RetrainEncoding::parse(t)?;
        Ok(from_net(
            enc.to_string(),
            HytraNet::new(enc, NetOptions::DEFAULT),
        ))
    };
    match encoding {
        HytraEncoding::Search => as_search().context("reading --arch as a HyTra search path"),
        HytraEncoding::Retrain => {
            as_retrain().context("reading --arch as a HyTra retraining encoding")
        }
        HytraEncoding::Auto => match HytraNet::parse_data(t) {
            Ok((net, Some(path))) => Ok(ParsedHytra {
                label: path.to_string(),
                net,
                search_path: Some(path),
            }),
            Ok((net, None)) => Ok(from_net(net.encoding.to_string(), net)),
            Err([search_err, retrain_err]) => Err(anyhow!(
                "{t:?} is neither a HyTra search path ({search_err}) nor a retraining encoding ({retrain_err})"
            )),
        },
    }
}
