//! The command line: a thin layer over the library.

pub mod check;
pub mod cluster;
pub mod generate;
pub mod run;

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
    /// Judge a recorded history: which guarantee was observed, and whether the claim held.
    Check(check::CheckArgs),
    /// Install, start, stop and break local broker nodes (no Docker needed).
    Cluster(cluster::ClusterArgs),
    /// Run a campaign: start the brokers, drive them while breaking them, check the history.
    Run(run::RunArgs),
    /// Write a synthetic history with planted anomalies (for tests and benchmarks).
    #[command(hide = true)]
    Generate(generate::GenerateArgs),
}

/// Run the parsed command; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Check(args) => Ok(check::run(args)),
        Command::Cluster(args) => cluster::run(args),
        Command::Run(args) => run::run(args),
        Command::Generate(args) => generate::run(args),
    }
}
