//! `ackcheck audit BROKER --producer P --consumer C [--topic T] --claim MODE [--nodes N]
//! [--duration D] [--out DIR]`: the user's own configuration under every fault family.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::audit::{self, AuditRequest, Row};
use crate::broker::BrokerKind;
use crate::campaign::parse_duration;
use crate::history::Guarantee;
use crate::plan::RunOptions;
use crate::report::junit;
use crate::runner;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The broker whose client configuration is audited.
    pub broker: BrokerKind,
    /// The producer's properties (a Java .properties file, in the client library's vocabulary).
    #[arg(long, value_name = "FILE")]
    pub producer: Option<PathBuf>,
    /// The consumer's properties.
    #[arg(long, value_name = "FILE")]
    pub consumer: Option<PathBuf>,
    /// The topic's settings (`replication_factor`, topic configurations such as min.insync.replicas).
    #[arg(long, value_name = "FILE")]
    pub topic: Option<PathBuf>,
    /// Start from the client library's defaults instead of ackcheck's preset for the claim, as
    /// an application that sets only what the files list.
    #[arg(long)]
    pub library_defaults: bool,
    /// The guarantee the configuration is meant to give; the workload behaves accordingly
    /// (at-least-once: re-send after an unknown outcome, commit after processing).
    #[arg(long, value_enum)]
    pub claim: Guarantee,
    /// Nodes (leader faults need 3).
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// How long each fault family runs, e.g. 60s.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub duration: Duration,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where the campaigns, every run and the summary land (default: runs/audit-<broker>-<claim>-seed<N>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Only these fault families, comma-separated (default: every family the broker takes:
    /// no-faults, lose-acks, reset, kill, pause, consumer-crashes).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub families: Vec<String>,
    /// The evidence grade every holding claim needs (the no-faults baseline excepted): with
    /// weaker evidence, exit 3 (for CI gates).
    #[arg(long, value_name = "GRADE", value_parser = ["strong", "weak"])]
    pub min_evidence: Option<String>,
    /// Also write the verdicts as JUnit XML (one test suite per fault family) to this file.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

/// Exit 0 the claim held under every fault family, 1 it was violated under some, 4 a run
/// failed, 3 it held everywhere but with evidence weaker than `--min-evidence` somewhere; a bad
/// file, property or family name is an error (exit 2) before anything starts.
pub fn run(args: AuditArgs) -> anyhow::Result<i32> {
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from("runs").join(format!("audit-{}-{}-seed{}", args.broker, args.claim.name(), args.seed))
    });
    let request = AuditRequest {
        broker: args.broker,
        producer: args.producer,
        consumer: args.consumer,
        topic: args.topic,
        library_defaults: args.library_defaults,
        claim: args.claim,
        nodes: args.nodes,
        duration: args.duration,
        seed: args.seed,
        out: out.clone(),
        families: (!args.families.is_empty()).then_some(args.families),
    };
    let min_evidence = args.min_evidence.as_deref().and_then(|g| g.parse().ok());
    let campaigns = audit::write_campaigns(&request)?;
    eprintln!(
        "ackcheck audit: {} families of faults, {:.0} s each, campaigns in {}",
        campaigns.len(),
        args.duration.as_secs_f64(),
        out.join("campaigns").display()
    );
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let mut rows = Vec::new();
    // One cluster for the whole suite, kept between the families; stopped at the end when the
    // audit started it (a run stops only a cluster it started itself).
    let started_here = !runner::local_cluster_running(args.broker);
    for (i, (family, campaign)) in campaigns.into_iter().enumerate() {
        eprintln!("\n== {} ({}): {}", family.name, i + 1, family.what);
        let dir = out.join(family.name);
        let options = RunOptions {
            out: Some(dir.clone()),
            seed: Some(args.seed),
            keep_cluster: true,
            min_evidence,
            ..RunOptions::for_campaign(&campaign)
        };
        let verdict = match runtime.block_on(runner::run(options)) {
            Ok(_) => std::fs::read_to_string(dir.join("verdict.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok()),
            Err(e) => {
                eprintln!("{} failed: {e:#}", family.name);
                None
            }
        };
        rows.push(Row::from_verdict(family, verdict.as_ref()));
    }
    if started_here {
        if let Err(e) = runtime.block_on(runner::stop_local_cluster(args.broker)) {
            eprintln!("warning: {e:#}");
        }
    }
    runtime.shutdown_timeout(Duration::from_secs(5));
    let summary = audit::summary(args.claim, &rows);
    println!("\n{summary}");
    let path = out.join("summary.txt");
    std::fs::write(&path, &summary).with_context(|| format!("writing {}", path.display()))?;
    println!("summary: {}", path.display());
    if let Some(junit) = &args.junit {
        write_junit(junit, &out, args.claim, min_evidence, &rows)?;
        println!("JUnit XML: {}", junit.display());
    }
    Ok(audit::exit_code(&rows, min_evidence))
}

/// One JUnit test suite per family (the no-faults baseline needs no evidence grade).
fn write_junit(
    path: &std::path::Path,
    out: &std::path::Path,
    claim: Guarantee,
    min_evidence: Option<crate::checker::evidence::Grade>,
    rows: &[Row],
) -> anyhow::Result<()> {
    let runs: Vec<_> = rows
        .iter()
        .map(|row| {
            (
                format!("audit-{}", row.family.name),
                out.join(row.family.name),
                min_evidence.filter(|_| row.family.tries_something()),
            )
        })
        .collect();
    junit::write_runs(path, &runs, Some(claim))
        .with_context(|| "writing the audit's JUnit XML; check that its folder exists and is writable")
}
