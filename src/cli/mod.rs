//! The command line: a thin layer over the library.

pub mod analyze;
pub mod audit;
pub mod check;
pub mod cluster;
pub mod diff;
pub mod generate;
pub mod matrix;
pub mod report;
pub mod run;
pub mod validate;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "ackcheck",
    version,
    about = "Finds out what message brokers really deliver: at-most-once, at-least-once or exactly-once."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate the cross-broker analysis (comparison, guarantees, timelines) from a matrix's results.
    Analyze(analyze::AnalyzeArgs),
    /// Audit your own client configuration: one short run under each fault family, one table.
    Audit(audit::AuditArgs),
    /// Judge a recorded history: which guarantee was observed, and whether the claim held.
    Check(check::CheckArgs),
    /// Install, start, stop and break local broker nodes (no Docker needed).
    Cluster(cluster::ClusterArgs),
    /// Compare two sets of runs: what got weaker, what got stronger (exit 1 when a guarantee weakened).
    Diff(diff::DiffArgs),
    /// Run many campaigns × seeds × variants one after another (resumable), one results line per cell.
    Matrix(matrix::MatrixArgs),
    /// Make the HTML report (timeline, counts, proofs) of a run directory or a history.
    Report(report::ReportArgs),
    /// Run a campaign: start the brokers, drive them while breaking them, check the history.
    Run(run::RunArgs),
    /// Check a campaign file fully (keys, limits, what its broker's driver can do); start nothing.
    Validate(validate::ValidateArgs),
    /// Write a synthetic history with planted anomalies (for tests and benchmarks).
    #[command(hide = true)]
    Generate(generate::GenerateArgs),
}

/// Exit code of a command that failed: **2** when the input was unusable (a campaign that does
/// not load, a request the campaign cannot satisfy, a node count or node the broker does not
/// have, a cluster action that does not fit the cluster's state), **4** when the infrastructure failed (a broker would not install or start, a port is
/// taken, a registry or proxy did not answer, a file could not be written).
pub fn exit_code_of(e: &anyhow::Error) -> i32 {
    use crate::nodes::ClusterError;
    let unusable = e.chain().any(|cause| {
        cause.is::<crate::campaign::CampaignError>()
            || cause.is::<crate::audit::AuditError>()
            || cause.is::<crate::diff::DiffError>()
            || cause
                .downcast_ref::<crate::analysis::AnalysisError>()
                .is_some_and(|e| e.is_unusable_input())
            || cause
                .downcast_ref::<crate::matrix::MatrixError>()
                .is_some_and(|e| e.is_unusable_input())
            || cause.is::<crate::plan::PlanError>()
            || cause.is::<crate::plan::UsageError>()
            || cause
                .downcast_ref::<crate::report::ReportError>()
                .is_some_and(|e| e.is_unusable_input())
            || matches!(
                cause.downcast_ref::<ClusterError>(),
                Some(
                    ClusterError::NodeCount { .. }
                        | ClusterError::NoSuchNode { .. }
                        | ClusterError::NotUp { .. }
                        | ClusterError::AlreadyUp { .. }
                        | ClusterError::OtherSettings { .. }
                        | ClusterError::NodeNotRunning { .. }
                        | ClusterError::Version(_)
                )
            )
    });
    if unusable {
        2
    } else {
        4
    }
}

/// Run the parsed command; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    if matches!(
        cli.command,
        Command::Cluster(_) | Command::Run(_) | Command::Audit(_) | Command::Matrix(_)
    ) {
        // A bad port base must stop a command before it starts anything.
        crate::nodes::port_base_from_env().map_err(crate::plan::UsageError)?;
    }
    match cli.command {
        Command::Analyze(args) => analyze::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Check(args) => Ok(check::run(args)),
        Command::Cluster(args) => cluster::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Matrix(args) => matrix::run(args),
        Command::Report(args) => report::run(args),
        Command::Run(args) => run::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Generate(args) => generate::run(args),
    }
}
