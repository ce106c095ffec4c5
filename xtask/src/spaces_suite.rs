//! The `spaces` suite: search-space sizes and the cost of the paper's named HyTra networks
//! (Table 1 and spec §8.2), computed by `hytra-space`'s counters, and each named network
//! drawn on the HyTra fabric (the paper's Figure 10) in `figures/`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use hytra_space::hytra::{self, HytraNet, Scale, SpaceVariant};
use hytra_space::mbconv;
use hytra_space::nats::{NATS_SIZE, NatsArch};
use serde_json::json;

/// One row of the paper comparison: name, input side, paper MAdds (G), paper source.
const TABLE1: &[(&str, usize, f64, &str)] = &[
    ("r50-t", 224, 4.1, "Table 1"),
    ("vit-t32", 224, 2.9, "Table 1"),
    ("vit-t16", 224, 3.2, "Table 1"),
    ("bot50-t", 224, 3.9, "Table 1"),
    ("random-t", 224, 3.7, "Table 1"),
    ("dna-t", 224, 3.9, "Table 1"),
    ("unnas-t", 224, 3.7, "Table 1"),
    ("bossnet-t0-nose", 224, 3.441888768, "boss_madds.py (exact)"),
    ("bossnet-t0", 224, 3.447, "boss_madds.py"),
    ("bossnet-t0", 288, 5.736, "boss_madds.py (T0^)"),
    ("bossnet-t1", 224, 7.949, "boss_madds.py"),
    ("bossnet-t1", 256, 10.513, "boss_madds.py (T1^)"),
];

pub fn run(dir: &Path) -> Result<()> {
    let start = Instant::now();
    let mut md = String::new();
    writeln!(md, "# Reproduction suite `spaces`\n")?;
    writeln!(
        md,
        "Search-space sizes and the cost of the paper's named HyTra networks, from `hytra-space`'s"
    )?;
    writeln!(
        md,
        "counters (MAdds = conv + FC + QKᵀ + AV; 1000 classes).\n"
    )?;

    let sizes = json!({
        "hytra_paper": SpaceVariant::Paper.size(),
        "hytra_restricted": SpaceVariant::Restricted.size(),
        "hytra_executable": SpaceVariant::Executable.size(),
        "hytra_block_populations": Scale::ALL.map(|s| hytra::restricted_population(s).len()),
        "mbconv": mbconv::MBCONV_SPACE_SIZE,
        "nats": NATS_SIZE,
    });
    writeln!(md, "## Space sizes\n")?;
    writeln!(md, "| space | ours | paper / spec |\n|---|---|---|")?;
    writeln!(
        md,
        "| HyTra (first layer at any scale) | {} | ≈2.8×10⁶ (2,818,103) |",
        sizes["hytra_paper"]
    )?;
    writeln!(
        md,
        "| HyTra restricted (official populations) | {} | 1,703,991 |",
        sizes["hytra_restricted"]
    )?;
    writeln!(
        md,
        "| HyTra executable by the supernet modules | {} | 1,615,872 |",
        sizes["hytra_executable"]
    )?;
    writeln!(
        md,
        "| HyTra per-block populations (input 1/4, 1/8, 1/16, 1/32) | {} | 51 / 99 / 80 / 16 |",
        sizes["hytra_block_populations"]
    )?;
    writeln!(md, "| MBConv | {} | 4¹⁸ |", sizes["mbconv"])?;
    writeln!(md, "| NATS-SSS | {} | 32,768 |\n", sizes["nats"])?;

    writeln!(md, "## Named HyTra networks\n")?;
    writeln!(
        md,
        "| network | input | params | MAdds (G) | paper MAdds (G) | source | ratio |\n|---|---|---|---|---|---|---|"
    )?;
    let mut rows = Vec::new();
    for &(name, input, paper, source) in TABLE1 {
        let net = HytraNet::named(name)?;
        let cost = net
            .cost(input, 1000)
            .with_context(|| format!("{name} at {input}"))?;
        let ours = cost.madds as f64 / 1e9;
        writeln!(
            md,
            "| {name} | {input} | {:.2} M | {ours:.3} | {paper} | {source} | {:.3} |",
            cost.params as f64 / 1e6,
            ours / paper
        )?;
        rows.push(json!({"name": name, "input": input, "params": cost.params, "madds": cost.madds, "paper_madds_g": paper, "source": source}));
    }
    let t0 = hytra::SearchPath::parse("5433-3230-0010-0000")?;
    let in_supernet = hytra::supernet_path_cost(&t0, 224)?;
    writeln!(
        md,
        "\nBossNet-T0's search path `5433-3230-0010-0000` inside the supernet: {:.2} M parameters, {:.3} GMAdds (spec: 57.29 M, 5.919 G); whole supernet: {} parameters (spec: 854,265,344).",
        in_supernet.params as f64 / 1e6,
        in_supernet.madds as f64 / 1e9,
        hytra::supernet_params()
    )?;
    let winner: NatsArch = "64:40:48:64:56".parse()?;
    let c = winner.cost(32, 10);
    writeln!(
        md,
        "\nNATS-SSS BossNAS winner `{winner}`: {} parameters, {:.1} M MAdds at 32×32.",
        c.params,
        c.madds as f64 / 1e6
    )?;
    writeln!(
        md,
        "\nNetworks with an empty scale (ViT-T/16, ViT-T/32, Random-T, UnNAS-T) cost more here than in the paper: `boss_madds.py` counts the empty-scale transition as a p→p 3×3 conv, while the real module maps to 4p channels; we count the module (docs/deviations.md)."
    )?;

    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let figures = draw_named_networks(&dir.join("figures"))?;
    writeln!(md, "\n## The named networks on the HyTra fabric\n")?;
    writeln!(
        md,
        "Rows are the four scales (1/4 at the top), columns the layers; ResConv and ResAtt nodes in two colours, the network's path through them (`bossnas arch draw --space hytra --arch <name>` draws one).\n"
    )?;
    md.push_str(&bossnas_search::figures::markdown(&figures, dir));
    writeln!(md, "Wall time: {:.2} s.", start.elapsed().as_secs_f64())?;

    let report = json!({"suite": "spaces", "sizes": sizes, "networks": rows,
        "t0_in_supernet": {"params": in_supernet.params, "madds": in_supernet.madds},
        "supernet_params": hytra::supernet_params(), "wall_s": start.elapsed().as_secs_f64()});
    write_atomic(
        &dir.join("report.json"),
        &serde_json::to_string_pretty(&report)?,
    )?;
    write_atomic(&dir.join("report.md"), &md)?;
    print!("{md}");
    eprintln!("report written: {}", dir.join("report.md").display());
    Ok(())
}

/// Every distinct network of [`TABLE1`] on the fabric, PNG + SVG under `figures`.
fn draw_named_networks(figures: &Path) -> Result<Vec<bossnas_search::figures::FigureFiles>> {
    std::fs::create_dir_all(figures).with_context(|| format!("creating {}", figures.display()))?;
    let mut names: Vec<&str> = TABLE1.iter().map(|row| row.0).collect();
    // A network measured at two input sizes has two adjacent rows: one drawing.
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let ops = HytraNet::named(name)?.encoding.ops();
            let fig = bossnas_search::figures::fabric(format!("HyTra {name}"), &ops);
            let [png, svg] = bench_nats::figures::save_both(figures, name, &fig)
                .with_context(|| format!("drawing {name} into {}", figures.display()))?;
            Ok(bossnas_search::figures::FigureFiles {
                caption: format!("{name} on the HyTra fabric"),
                png,
                svg,
            })
        })
        .collect()
}

/// A report is never half-written ([`bossnas_runfs::write_atomic`]).
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    bossnas_runfs::write_atomic(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_report_draws_every_named_network_on_the_fabric() {
        let dir = tempfile::tempdir().unwrap();
        super::run(dir.path()).unwrap();
        let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
        for name in ["bossnet-t0", "bossnet-t1", "vit-t16", "r50-t"] {
            for ext in ["png", "svg"] {
                let f = dir.path().join(format!("figures/{name}.{ext}"));
                assert!(
                    std::fs::metadata(&f).unwrap().len() > 1000,
                    "{}",
                    f.display()
                );
            }
            // Inline, relative to the report.
            assert!(md.contains(&format!("](figures/{name}.png)")), "{md}");
        }
    }
}
