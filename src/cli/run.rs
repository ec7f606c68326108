//! `ackcheck run CAMPAIGN.toml [--out DIR] [--seed N] [--duration D] [--external]`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::campaign::parse_duration;
use crate::plan::RunOptions;
use crate::runner;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The campaign file (TOML), e.g. workloads/quickstart.toml.
    pub campaign: PathBuf,
    /// Where to write history.jsonl, verdict.json and run.log (default: runs/<campaign>-seed<N>-<id>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The seed of the fault schedule and the workload's choices (overrides the campaign's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// How long the workload and the faults run, e.g. 60s or 2m (overrides the campaign's).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Use the brokers at the campaign's [external] endpoints instead of starting them.
    #[arg(long)]
    pub external: bool,
    /// No broker faults and no client crashes: a sanity baseline.
    #[arg(long)]
    pub no_faults: bool,
    /// Leave a cluster that this run started running afterwards (the next run starts faster).
    #[arg(long)]
    pub keep_cluster: bool,
    /// Leave the topics or queues this run created on the brokers (by default they are deleted
    /// at the end, with what they hold)
    #[arg(long)]
    pub keep_dests: bool,
    /// Examples to show per anomaly.
    #[arg(long, default_value_t = 3)]
    pub examples: usize,
    /// The evidence grade a holding claim needs: with weaker evidence, exit 3 (for CI gates).
    #[arg(long, value_name = "GRADE", value_parser = ["strong", "weak"])]
    pub min_evidence: Option<String>,
    /// Also write the verdict as JUnit XML (one test case per claim) to this file, for CI.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Record the history to nowhere and skip the check (measures what writing it costs).
    #[arg(long, hide = true)]
    pub discard_history: bool,
}

/// Exit codes as `check`: 0 the claim holds, 1 it is violated, 3 it holds with evidence weaker
/// than `--min-evidence`; errors (exit 2) come back as Err.
pub fn run(args: RunArgs) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let options = RunOptions {
        campaign: args.campaign,
        out: args.out,
        seed: args.seed,
        duration: args.duration,
        external: args.external,
        no_faults: args.no_faults,
        keep_cluster: args.keep_cluster,
        keep_dests: args.keep_dests,
        examples: args.examples,
        min_evidence: args.min_evidence.as_deref().and_then(|g| g.parse().ok()),
        discard_history: args.discard_history,
        junit: args.junit,
    };
    let code = runtime.block_on(runner::run(options));
    // Clients may still be closing in blocking threads; do not wait for them.
    runtime.shutdown_timeout(Duration::from_secs(5));
    code
}
