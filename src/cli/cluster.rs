//! `ackcheck cluster up|down|status|kill|pause|resume|restart|partition|heal|endpoints BROKER`.

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::broker::BrokerKind;
use crate::faults::FaultKind;
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
    /// Cut traffic between nodes (`--shape`, around `--node`); needs `up --network namespaces`.
    Partition,
    /// Lift every partition between nodes.
    Heal,
    /// Print where clients connect (JSON).
    Endpoints,
}

/// Where `up` runs the nodes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum NetworkArg {
    /// Every node on 127.0.0.1.
    Loopback,
    /// Each node in a network namespace of its own (partitions possible; needs root).
    Namespaces,
}

/// A partition's shape (see `ackcheck cluster partition`).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ShapeArg {
    /// --node cut from every other node, both ways.
    One,
    /// A minority starting at --node against the rest.
    Halves,
    /// --node sees both halves of the others, which do not see each other.
    Bridge,
    /// Majorities ring: every node sees a majority, no two the same.
    Ring,
    /// --node hears no other node; they still hear it.
    OneWay,
    /// Replication only (Kafka's inter-broker listener) between --node and the others, both
    /// ways; the controllers' quorum and clients still pass.
    Replication,
}

#[derive(Debug, Args)]
pub struct ClusterArgs {
    pub action: Action,
    pub broker: BrokerKind,
    /// Number of nodes (each broker above says which it runs with). Default: the running cluster's, else 1.
    #[arg(long)]
    pub nodes: Option<usize>,
    /// The node to act on (kill, pause, resume, restart, partition), from 0.
    #[arg(long, default_value_t = 0)]
    pub node: usize,
    /// Where `up` runs the nodes. Default: where the recorded cluster runs, else loopback.
    #[arg(long, value_enum)]
    pub network: Option<NetworkArg>,
    /// The partition's shape.
    #[arg(long, value_enum, default_value = "one")]
    pub shape: ShapeArg,
    /// The broker's version for `up` (Kafka: 4.1.1, the default, or 3.9.1). Default: the running
    /// cluster's, else the broker's default.
    #[arg(long = "version")]
    pub broker_version: Option<String>,
}

pub fn run(args: ClusterArgs) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: ClusterArgs) -> anyhow::Result<i32> {
    let home = Home::from_env();
    let network = args.network.map(|n| match n {
        NetworkArg::Loopback => nodes::NodeNetwork::Loopback,
        NetworkArg::Namespaces => nodes::NodeNetwork::Namespaces,
    });
    if network == Some(nodes::NodeNetwork::Namespaces) {
        nodes::netns::capability().map_err(anyhow::Error::msg)?;
    }
    let c = args.broker.open_cluster_on(
        args.nodes,
        &home,
        &Default::default(),
        network,
        args.broker_version.as_deref(),
    )?;
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
        Action::Partition => {
            let kind = match args.shape {
                ShapeArg::One => FaultKind::PartitionOne,
                ShapeArg::Halves => FaultKind::PartitionHalves,
                ShapeArg::Bridge => FaultKind::PartitionBridge,
                ShapeArg::Ring => FaultKind::PartitionRing,
                ShapeArg::OneWay => FaultKind::PartitionOneWay,
                ShapeArg::Replication => FaultKind::PartitionReplication,
            };
            c.check_node(args.node)?;
            let grudge = crate::faults::partition::grudge(kind, args.node, c.nodes())?;
            c.partition(&grudge, crate::faults::partition::traffic(kind)).await?;
            eprintln!("{} partitioned: {}", c.broker(), grudge.describe());
        }
        Action::Heal => {
            c.heal_partitions().await?;
            eprintln!("{}: every partition healed", c.broker());
        }
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
