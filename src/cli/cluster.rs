//! `ackcheck cluster up|down|status|kill|pause|resume|restart|endpoints BROKER`.

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::broker::BrokerKind;
use crate::nodes::{self, Home, NodeState};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Action {
    /// Install (cached) and start every node and its proxy; wait until ready.
    Up,
    /// Stop every node and proxy of this broker; free its ports.
    Down,
    /// Health of every node; exits 0 only if all are healthy.
    Status,
    /// SIGKILL one node.
    Kill,
    /// SIGSTOP one node.
    Pause,
    /// SIGCONT one node.
    Resume,
    /// Start a stopped or killed node on its data and wait until ready.
    Restart,
    /// Print where clients connect (JSON).
    Endpoints,
}

#[derive(Debug, Args)]
pub struct ClusterArgs {
    pub action: Action,
    pub broker: BrokerKind,
    /// Number of nodes (each broker above says which it runs with). Default: the running cluster's, else 1.
    #[arg(long)]
    pub nodes: Option<usize>,
    /// The node to act on (kill, pause, resume, restart), from 0.
    #[arg(long, default_value_t = 0)]
    pub node: usize,
}

pub fn run(args: ClusterArgs) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: ClusterArgs) -> anyhow::Result<i32> {
    let home = Home::from_env();
    let c = args.broker.open_cluster(args.nodes, &home)?;
    // A run killed with -9 in the middle of a fault left it in force: heal it first.
    if matches!(args.action, Action::Up | Action::Status | Action::Endpoints) {
        if let Some(healed) = crate::faults::heal_leftovers(c.as_ref(), &home).await? {
            eprintln!("{healed}");
        }
    }
    match args.action {
        Action::Up => {
            let started = std::time::Instant::now();
            c.up().await?;
            eprintln!(
                "{} is up with {} node(s) in {:.1} s",
                c.broker(),
                c.nodes(),
                started.elapsed().as_secs_f64()
            );
            print_endpoints(c.as_ref())?;
        }
        Action::Down => {
            c.down().await?;
            // `down` resumed paused nodes and removed the proxies with their toxics.
            let _ = std::fs::remove_file(crate::faults::record_path(&home, c.broker()));
            eprintln!("{} is down", c.broker());
        }
        Action::Status => {
            let statuses = c.status().await?;
            let mut all_healthy = !statuses.is_empty();
            for s in &statuses {
                let pid = s.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
                println!(
                    "{} node {}  pid {:>7}  {:<9}  {}",
                    c.broker(),
                    s.node,
                    pid,
                    format!("{:?}", s.state).to_lowercase(),
                    s.detail
                );
                all_healthy &= s.state == NodeState::Healthy;
            }
            return Ok(if all_healthy { 0 } else { 1 });
        }
        Action::Kill => c.kill(args.node).await?,
        Action::Pause => c.pause(args.node).await?,
        Action::Resume => c.resume(args.node).await?,
        Action::Restart => c.restart(args.node).await?,
        Action::Endpoints => print_endpoints(c.as_ref())?,
    }
    Ok(0)
}

fn print_endpoints(c: &dyn nodes::Cluster) -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(&c.endpoints()).context("serializing endpoints")?
    );
    Ok(())
}
