//! `ackcheck analyze RESULTS [--matrix MATRIX.toml] [--out DIR] [--no-timelines]`: the
//! cross-broker analysis (comparison.md, guarantees.md, kafka-streams-eos.md, timelines/*.svg)
//! generated from a matrix's results.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::analysis::{self, Request};

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// The matrix's output directory (`ackcheck matrix … --out DIR`): its `results.jsonl`, the
    /// cells' folders and an optional `run-info.toml` (date, machine, machine time).
    pub results: PathBuf,
    /// The matrix file, to list the cells that have no verdict yet.
    #[arg(long)]
    pub matrix: Option<PathBuf>,
    /// Where the Markdown and `timelines/` go (default: the parent of RESULTS).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Skip the anomaly timelines (no history is read).
    #[arg(long)]
    pub no_timelines: bool,
}

pub fn run(args: AnalyzeArgs) -> anyhow::Result<i32> {
    let out = args.out.clone().unwrap_or_else(|| {
        args.results
            .parent()
            .map(PathBuf::from)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."))
    });
    let request = Request {
        results: args.results.clone(),
        matrix: args.matrix.clone(),
        out: out.clone(),
        timelines: !args.no_timelines,
    };
    let files = analysis::generate(&request).context("making the analysis")?;
    analysis::write(&out, &files).context("writing the analysis")?;
    for path in files.keys() {
        println!("{}", out.join(path).display());
    }
    Ok(0)
}
