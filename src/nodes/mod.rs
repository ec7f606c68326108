//! The `nodes` role: the local nodes of one broker, whichever broker: install, start, stop, kill, pause,
//! resume and restart, each node behind its own Toxiproxy proxy so that the nemesis can break
//! client traffic.
//!
//! A broker declares its nodes in a [`NodeRecipe`] ([`recipe`]: ports with their roles, files,
//! data, command line, readiness); [`local::LocalCluster`] is the one lifecycle that runs every
//! broker's recipe, with the shared machinery here ([`process`]: pid files, signals, port checks;
//! [`maven`]; [`toxiproxy`]). Nothing here knows a broker by name. Everything a node owns (data,
//! log, pid file) lives under `$ACKCHECK_HOME/run/<broker>/node<i>/`; installs are cached under
//! `$ACKCHECK_HOME/install/`. Ports follow one plan (`crate::broker::BrokerKind::port`) so that
//! brokers never collide.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::Serialize;

pub use local::{ClusterShape, LocalCluster};
pub use netns::{Grudge, NodeHosts, NodeNetwork};

/// Which traffic between nodes a partition cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// Everything: replication, consensus, membership.
    All,
    /// Only what arrives at the nodes' replication ports ([`PortRole::Peer`]: Kafka's
    /// inter-broker listener), so that replicas stop fetching while the consensus among
    /// controllers (Kafka's KRaft quorum) still sees every node.
    Replication,
}
pub use process::NodeProcess;
pub use recipe::{NodePort, NodeRecipe, PortRole};

pub mod external;
pub mod local;
pub mod maven;
pub mod netns;
pub mod process;
pub mod recipe;
pub mod toxiproxy;

/// Slot 0 of every node is the proxy port that clients connect to.
pub const CLIENT_PROXY_SLOT: u16 = 0;

/// Where ackcheck's port plan starts unless `ACKCHECK_PORT_BASE` moves it: Kafka's block is
/// 19000-19099, the other brokers' follow in blocks of 100, Toxiproxy's API is 526 below.
pub const DEFAULT_PORT_BASE: u16 = 19000;
/// Toxiproxy's API sits this far below the port base (18474 by default: not Toxiproxy's own
/// 8474, so a user's own Toxiproxy is left alone).
const TOXIPROXY_BELOW_BASE: u16 = 526;
/// The lowest and highest port base: every port of the plan stays in 1024-65535.
const PORT_BASE_RANGE: std::ops::RangeInclusive<u16> = 1600..=64900;

/// The start of the port plan: `ACKCHECK_PORT_BASE`, else [`DEFAULT_PORT_BASE`]. Checked once
/// by [`port_base_from_env`] when a command starts; an unusable value falls back here.
pub fn port_base() -> u16 {
    static BASE: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| port_base_from_env().unwrap_or(DEFAULT_PORT_BASE))
}

/// `ACKCHECK_PORT_BASE` read and checked: an error says what is wrong with it.
pub fn port_base_from_env() -> std::result::Result<u16, String> {
    let Some(raw) = std::env::var_os("ACKCHECK_PORT_BASE") else {
        return Ok(DEFAULT_PORT_BASE);
    };
    let text = raw.to_string_lossy();
    match text.trim().parse::<u16>() {
        Ok(base) if PORT_BASE_RANGE.contains(&base) => Ok(base),
        _ => Err(format!(
            "ACKCHECK_PORT_BASE={text} is not a port base ackcheck can use: give a number from {} to {} (the plan takes about 500 ports above it and one 526 below it; the default is {DEFAULT_PORT_BASE})",
            PORT_BASE_RANGE.start(),
            PORT_BASE_RANGE.end()
        )),
    }
}

/// One broker's block of 100 ports in the plan: 10 per node, and a slot 0..10 says what a port
/// is for. Slot 0 ([`CLIENT_PROXY_SLOT`]) is the node's Toxiproxy proxy; slots 1..9 are the
/// broker's own ports, as its recipe assigns them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortBlock {
    /// Where the block starts at the default base (19000 for Kafka); `ACKCHECK_PORT_BASE`
    /// moves every block by the same amount.
    pub start_at_default_base: u16,
}

impl PortBlock {
    /// The port of `slot` of `node`.
    pub fn port(self, node: usize, slot: u16) -> u16 {
        assert!(slot < 10 && node < 9, "port plan: slot {slot} node {node} out of range");
        port_base() + (self.start_at_default_base - DEFAULT_PORT_BASE) + 10 * node as u16 + slot
    }
}

/// Toxiproxy's HTTP API port.
pub fn toxiproxy_api_port() -> u16 {
    port_base() - TOXIPROXY_BELOW_BASE
}

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
    pub fn run_dir(&self, broker: &str) -> PathBuf {
        self.root.join("run").join(broker)
    }

    /// One node's data, log and pid file: `run/<broker>/node<i>`.
    pub fn node_dir(&self, broker: &str, node: usize) -> PathBuf {
        self.run_dir(broker).join(format!("node{node}"))
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
        broker: &'static str,
        allowed: String,
        asked: usize,
    },
    #[error("{broker} has nodes 0..{nodes}, there is no node {node}; pass --node with one of those")]
    NoSuchNode {
        broker: &'static str,
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
    #[error("port {port} on 127.0.0.1 is already taken{held} (needed by {needed_by}); stop it, run `ackcheck cluster down` if it is a broker of this ACKCHECK_HOME, or move ackcheck's whole port plan with ACKCHECK_PORT_BASE (now {base}; e.g. ACKCHECK_PORT_BASE=21000)", held = process::port_holder(*port).map_or(String::new(), |h| format!(" by {h}")), base = port_base())]
    PortTaken { port: u16, needed_by: String },
    #[error("{broker} node {node} did not become ready within {seconds} s ({step}); its log ends with:\n{log_tail}")]
    NotReady {
        broker: &'static str,
        node: usize,
        seconds: u64,
        step: String,
        log_tail: String,
    },
    #[error("{broker} is not up; run `ackcheck cluster up {broker}` first")]
    NotUp { broker: &'static str },
    #[error("{broker} is already up with {nodes} node(s); run `ackcheck cluster down {broker}` first to change it")]
    AlreadyUp { broker: &'static str, nodes: usize },
    #[error("{broker} is up with other server settings than this run's [server] table; run `ackcheck cluster down {broker}` first, so that the run starts its nodes with its own")]
    OtherSettings { broker: &'static str },
    #[error("{broker} node {node} is not running; use `ackcheck cluster restart {broker} --node {node}` to start it")]
    NodeNotRunning { broker: &'static str, node: usize },
    #[error("Toxiproxy request failed ({what}): {reason}")]
    Proxy { what: String, reason: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{broker} runs its nodes on loopback, where traffic between nodes cannot be cut; a campaign with partition faults starts it in network namespaces (`ackcheck cluster down {broker}` first if it is up)")]
    NoPartitions { broker: &'static str },
    /// A version the broker's driver does not run (the message names the ones it does).
    #[error("{0}")]
    Version(String),
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

/// One cluster of one broker, as the runner, the nemesis and the CLI act on it. Locally it is
/// [`LocalCluster`], which keeps no state in memory that matters: everything is recovered from
/// `$ACKCHECK_HOME/run/<broker>` so that separate CLI invocations (`up`, then `kill`, then
/// `restart`) act on the same cluster.
#[async_trait]
pub trait Cluster: Send + Sync {
    /// The broker's name (`kafka`).
    fn broker(&self) -> &'static str;

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

    /// The node coordinating `key` now (Kafka: the transaction coordinator of the
    /// transactional id `key`), if the broker has coordinators and one is known.
    async fn coordinator(&self, key: &str) -> Option<usize> {
        let _ = key;
        None
    }

    /// The node leading the cluster's metadata now (Kafka: the active KRaft controller), if the
    /// broker has one and it is known.
    async fn controller(&self) -> Option<usize> {
        None
    }

    /// Where the nodes run: on loopback, or each in its own network namespace.
    fn network(&self) -> NodeNetwork {
        NodeNetwork::Loopback
    }

    /// Cut `traffic` between nodes as `grudge` says (replacing any partition in force). Only a
    /// cluster whose nodes run in network namespaces can.
    async fn partition(&self, grudge: &Grudge, traffic: Traffic) -> Result<()> {
        let _ = (grudge, traffic);
        Err(ClusterError::NoPartitions { broker: self.broker() })
    }

    /// Heal every partition (idempotent; nothing to do on loopback).
    async fn heal_partitions(&self) -> Result<()> {
        Ok(())
    }

    /// Whether the nodes' processes run on this machine (started by ackcheck); false for
    /// brokers something else runs, which have no pid here.
    fn runs_here(&self) -> bool {
        true
    }

    /// Mend every killed or paused node, whoever broke it (idempotent): resume every node with a
    /// process (SIGCONT does nothing to a running one), then restart every node without one.
    /// Every step is tried; the errors are returned.
    async fn heal_processes(&self) -> Vec<anyhow::Error> {
        let mut errors = Vec::new();
        for node in 0..self.nodes() {
            if self.node_process(node).pid().is_some() {
                if let Err(e) = self.resume(node).await {
                    errors.push(anyhow::Error::from(e).context(format!("resuming node {node}")));
                }
            }
        }
        for node in 0..self.nodes() {
            if self.node_process(node).pid().is_none() {
                if let Err(e) = self.restart(node).await {
                    errors.push(anyhow::Error::from(e).context(format!("restarting node {node}")));
                }
            }
        }
        errors
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
                broker: self.broker(),
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
                broker: self.broker(),
                node,
            });
        }
        Ok(p)
    }
}
