//! `ackcheck validate CAMPAIGN.toml`: everything `run` checks before it starts anything.

use std::path::PathBuf;

use clap::Args;

use crate::campaign::Campaign;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The campaign file (TOML).
    pub campaign: PathBuf,
    /// Also check it as `run --external` would: its [external] table has the commands and the
    /// Toxiproxy that its faults need.
    #[arg(long)]
    pub external: bool,
}

/// Exit 0 and a one-line summary when the campaign would run; a campaign error (exit 2)
/// otherwise, naming the line and what to change.
pub fn run(args: ValidateArgs) -> anyhow::Result<i32> {
    let c = Campaign::load(&args.campaign)?;
    if args.external {
        crate::plan::Plan::resolve(&crate::plan::RunOptions::external_check(&args.campaign))?;
    }
    let faults: Vec<&str> = c.nemesis.faults.iter().map(|f| f.name()).collect();
    println!(
        "{}: valid{} — {} with {} node(s), {}, {} workload, {:.0} s, faults: {}, client crashes: {}",
        args.campaign.display(),
        if args.external { " for --external" } else { "" },
        c.broker.name(),
        c.nodes,
        c.mode,
        format!("{:?}", c.workload.kind).to_lowercase(),
        c.duration.as_secs_f64(),
        match (faults.is_empty(), c.nemesis.steps.len()) {
            (true, 0) => "none".to_string(),
            (true, n) => format!("{n} scripted step(s)"),
            _ => faults.join(", "),
        },
        if c.crashes.interval > 0.0 {
            format!("every {:.1} s on average", c.crashes.interval)
        } else {
            "none".to_string()
        }
    );
    Ok(0)
}
