//! The `cluster` role: install, start, stop, kill, pause, resume and restart local broker nodes,
//! each behind its own Toxiproxy proxy so that the nemesis can break client traffic.
//!
//! One implementation per broker behind the [`Cluster`] trait. Everything a node owns (data,
//! log, pid file) lives under `$ACKCHECK_HOME/run/<broker>/node<i>/`; installs are cached under
//! `$ACKCHECK_HOME/install/`. Ports follow one plan ([`port`]) so that brokers never collide.

pub mod kafka;
mod maven;
pub mod process;
pub mod pulsar;
pub mod rabbitmq;
pub mod sqs;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use process::NodeProcess;

/// The brokers ackcheck can run locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BrokerKind {
    Kafka,
    Rabbitmq,
    Sqs,
    Pulsar,
}

impl BrokerKind {
    pub fn name(self) -> &'static str {
        match self {
            BrokerKind::Kafka => "kafka",
            BrokerKind::Rabbitmq => "rabbitmq",
            BrokerKind::Sqs => "sqs",
            BrokerKind::Pulsar => "pulsar",
        }
    }

    /// The node counts this broker supports locally.
    pub fn allowed_nodes(self) -> &'static [usize] {
        match self {
            BrokerKind::Kafka | BrokerKind::Rabbitmq => &[1, 3],
            BrokerKind::Sqs | BrokerKind::Pulsar => &[1],
        }
    }

    /// First port of this broker's block in the port plan.
    fn port_base(self) -> u16 {
        match self {
            BrokerKind::Kafka => 19000,
            BrokerKind::Rabbitmq => 19100,
            BrokerKind::Sqs => 19200,
            BrokerKind::Pulsar => 19300,
        }
    }
}

impl std::fmt::Display for BrokerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Slot 0 of every node is the proxy port that clients connect to.
pub const CLIENT_PROXY_SLOT: u16 = 0;

/// The port plan: broker block (100 ports) + 10 ports per node + a slot (0..10) per purpose.
/// Slot 0 is the Toxiproxy listen port for clients; slots 1..9 are the broker's own direct ports.
pub fn port(kind: BrokerKind, node: usize, slot: u16) -> u16 {
    assert!(slot < 10 && node < 9, "port plan: slot {slot} node {node} out of range");
    kind.port_base() + 10 * node as u16 + slot
}

/// Toxiproxy's HTTP API address (not the default 8474, so a user's own Toxiproxy is left alone).
pub const TOXIPROXY_API_PORT: u16 = 18474;

/// Where ackcheck keeps installs and running nodes.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// `$ACKCHECK_HOME`, or `~/.cache/ackcheck`.
    pub fn from_env() -> Home {
        let root = std::env::var_os("ACKCHECK_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/ackcheck")))
            .unwrap_or_else(|| PathBuf::from("/tmp/ackcheck"));
        Home { root }
    }

    pub fn at(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Cached, version-pinned installs: `install/<name>` (e.g. `install/kafka-4.1.1`).
    pub fn install_dir(&self, name: &str) -> PathBuf {
        self.root.join("install").join(name)
    }

    /// Binaries ackcheck installs itself (Toxiproxy).
    pub fn bin_dir(&self) -> PathBuf {
        self.root.join("bin")
    }

    /// State of one broker's running cluster: `run/<broker>`.
    pub fn run_dir(&self, kind: BrokerKind) -> PathBuf {
        self.root.join("run").join(kind.name())
    }

    /// One node's data, log and pid file: `run/<broker>/node<i>`.
    pub fn node_dir(&self, kind: BrokerKind, node: usize) -> PathBuf {
        self.run_dir(kind).join(format!("node{node}"))
    }
}

/// Where a client reaches one node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeEndpoint {
    pub node: usize,
    /// The address clients use: the node's Toxiproxy proxy.
    pub client: SocketAddr,
    /// The broker's own client port (bypasses the proxy; for health checks and tools).
    pub direct: SocketAddr,
    /// The Toxiproxy proxy name, for adding toxics to this node's client traffic.
    pub proxy: String,
    /// A ready-to-use client URL where the protocol has one (`amqp://…`, `pulsar://…`, `http://…`).
    pub url: String,
}

/// Health of one node as `status` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub node: usize,
    pub pid: Option<u32>,
    pub state: NodeState,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Running and answered a client round trip.
    Healthy,
    /// Process alive but not answering (starting, or broken).
    Unhealthy,
    /// Stopped with SIGSTOP.
    Paused,
    /// No process.
    Down,
}

/// Errors of the cluster role. Each message is one sentence saying what went wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{broker} supports {allowed} node(s) locally, not {asked}; pass --nodes with one of those")]
    NodeCount {
        broker: BrokerKind,
        allowed: String,
        asked: usize,
    },
    #[error("{broker} has nodes 0..{nodes}, there is no node {node}; pass --node with one of those")]
    NoSuchNode {
        broker: BrokerKind,
        nodes: usize,
        node: usize,
    },
    #[error("installing {what} failed at step '{step}': {reason}; check network access to the package registry and try again\n{output}")]
    Install {
        what: String,
        step: String,
        reason: String,
        output: String,
    },
    #[error("port {port} on 127.0.0.1 is already taken (needed by {needed_by}); stop whatever holds it (`ss -ltnp 'sport = :{port}'`) or run `ackcheck cluster down` first")]
    PortTaken { port: u16, needed_by: String },
    #[error("{broker} node {node} did not become ready within {seconds} s ({step}); its log ends with:\n{log_tail}")]
    NotReady {
        broker: BrokerKind,
        node: usize,
        seconds: u64,
        step: String,
        log_tail: String,
    },
    #[error("{broker} is not up; run `ackcheck cluster up {broker}` first")]
    NotUp { broker: BrokerKind },
    #[error("{broker} is already up with {nodes} node(s); run `ackcheck cluster down {broker}` first to change it")]
    AlreadyUp { broker: BrokerKind, nodes: usize },
    #[error("{broker} node {node} is not running; use `ackcheck cluster restart {broker} --node {node}` to start it")]
    NodeNotRunning { broker: BrokerKind, node: usize },
    #[error("Toxiproxy request failed ({what}): {reason}")]
    Proxy { what: String, reason: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

impl ClusterError {
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
        let what = what.into();
        move |source| ClusterError::Io { what, source }
    }
}

pub type Result<T, E = ClusterError> = std::result::Result<T, E>;

/// One local cluster of one broker. Implementations keep no state in memory that matters:
/// everything is recovered from `$ACKCHECK_HOME/run/<broker>` so that separate CLI invocations
/// (`up`, then `kill`, then `restart`) act on the same cluster.
#[async_trait]
pub trait Cluster: Send + Sync {
    fn kind(&self) -> BrokerKind;

    /// Number of nodes of this cluster.
    fn nodes(&self) -> usize;

    /// Install (idempotent, cached), start every node and its proxy, and wait for real readiness
    /// (a client round trip). On failure, stops what it started and says which step failed.
    async fn up(&self) -> Result<()>;

    /// Stop every node (resuming paused ones first), remove this broker's proxies, wait until
    /// every port of this broker is free. Succeeds when nothing is running.
    async fn down(&self) -> Result<()>;

    /// Health of every node.
    async fn status(&self) -> Result<Vec<NodeStatus>>;

    /// Where clients reach each node (through the proxy).
    fn endpoints(&self) -> Vec<NodeEndpoint>;

    /// The process of one node (pid file, log).
    fn node_process(&self, node: usize) -> NodeProcess;

    /// Start a stopped or killed node on its existing data and wait until it is ready.
    async fn restart(&self, node: usize) -> Result<()>;

    /// The node that leads `dest` (a topic or queue: for Kafka the leader of partition 0), if the
    /// broker has leaders and one is known now. The nemesis targets it; `None` means "any node".
    async fn leader(&self, dest: &str) -> Option<usize> {
        let _ = dest;
        None
    }

    /// SIGKILL the node.
    async fn kill(&self, node: usize) -> Result<()> {
        self.check_node(node)?;
        self.node_process(node).kill().map(|_| ())
    }

    /// SIGSTOP the node.
    async fn pause(&self, node: usize) -> Result<()> {
        self.check_node(node)?;
        self.running(node)?.pause()
    }

    /// SIGCONT the node.
    async fn resume(&self, node: usize) -> Result<()> {
        self.check_node(node)?;
        self.running(node)?.resume()
    }

    fn check_node(&self, node: usize) -> Result<()> {
        if node >= self.nodes() {
            return Err(ClusterError::NoSuchNode {
                broker: self.kind(),
                nodes: self.nodes(),
                node,
            });
        }
        Ok(())
    }

    fn running(&self, node: usize) -> Result<NodeProcess> {
        let p = self.node_process(node);
        if p.pid().is_none() {
            return Err(ClusterError::NodeNotRunning {
                broker: self.kind(),
                node,
            });
        }
        Ok(p)
    }
}

/// The cluster of `kind` with `nodes` nodes under `home`. `nodes = None` means: the size of the
/// cluster that is already up, or 1.
pub fn open(kind: BrokerKind, nodes: Option<usize>, home: &Home) -> Result<Box<dyn Cluster>> {
    let recorded = process::recorded_nodes(home, kind);
    let nodes = nodes.or(recorded).unwrap_or(1);
    if !kind.allowed_nodes().contains(&nodes) {
        let allowed = kind
            .allowed_nodes()
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" or ");
        return Err(ClusterError::NodeCount {
            broker: kind,
            allowed,
            asked: nodes,
        });
    }
    Ok(match kind {
        BrokerKind::Kafka => Box::new(kafka::KafkaCluster::new(home.clone(), nodes)),
        BrokerKind::Rabbitmq => Box::new(rabbitmq::RabbitCluster::new(home.clone(), nodes)),
        BrokerKind::Sqs => Box::new(sqs::SqsCluster::new(home.clone(), nodes)),
        BrokerKind::Pulsar => Box::new(pulsar::PulsarCluster::new(home.clone(), nodes)),
    })
}
