//! `ackcheck report DIR|HISTORY [--out FILE] [--examples N]`.

use std::path::PathBuf;

use clap::Args;

use crate::report::html::{self, HtmlOptions};
use crate::report::RunFiles;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run directory (history.jsonl, with verdict.json and run.log when present) or a history
    /// file.
    pub path: PathBuf,
    /// Where to write the page (default: DIR/report.html, or HISTORY's name with .report.html).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Proofs listed per anomaly (every one is marked on the timeline).
    #[arg(long, default_value_t = 3)]
    pub examples: usize,
}

/// Exit codes: 0 the page was written (whatever the verdict: a report is not a gate), 2 the
/// input cannot be used, 4 the page cannot be written.
pub fn run(args: ReportArgs) -> anyhow::Result<i32> {
    let files = RunFiles::locate(&args.path)?;
    let out = args.out.unwrap_or_else(|| files.default_report_path());
    html::write(
        &files,
        &out,
        &HtmlOptions {
            examples: args.examples,
        },
    )?;
    println!("report: {}", out.display());
    Ok(0)
}
