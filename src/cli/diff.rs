//! `ackcheck diff OLD NEW [--json]`: what got weaker and what got stronger between two sets of
//! runs (verdict files, run directories or directories of runs).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::diff;

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The baseline: a verdict.json, a run directory, or a directory of run directories.
    pub old: PathBuf,
    /// The runs to compare with it (same forms).
    pub new: PathBuf,
    /// Print the comparison as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Exit 0 no guarantee weakened, 1 some did, 2 unusable input.
pub fn run(args: DiffArgs) -> anyhow::Result<i32> {
    let old = diff::load(&args.old)?;
    let new = diff::load(&args.new)?;
    let d = diff::diff(&old, &new);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&d).context("writing the diff as JSON")?
        );
    } else {
        print!("{}", diff::human(&d, &args.old, &args.new));
    }
    Ok(d.exit_code())
}
