//! The `faults` role: what can break a cluster, as composable packages, and the nemesis that
//! breaks it on a seeded schedule and always heals it.
//!
//! - [`Fault`]: one package of fault kinds over what the nodes offer. [`process`] makes
//!   `kill` and `pause` through the [`Cluster`]'s process control; [`proxy`] makes `lose-acks`,
//!   `reset` and `latency` as Toxiproxy toxics on a node's client proxy. A new family
//!   (partitions between nodes, disk faults) is one more module implementing [`Fault`] and one
//!   more entry in [`FaultSet::local`].
//! - [`FaultSet`]: the packages of one run; it routes each kind to the package that makes it and
//!   heals them all in order (toxics first: a restarted node proves its readiness through its
//!   proxy).
//! - [`schedule`]: the seeded schedule; [`nemesis`]: carries it out, records it, heals.
//!
//! Nothing here knows a broker: faults act on nodes and proxies the cluster declares.

use std::fmt;

use anyhow::{anyhow, Result};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::nodes::toxiproxy::Toxiproxy;
use crate::nodes::Cluster;

pub mod nemesis;
pub mod partition;
pub mod process;
pub mod proxy;
pub mod schedule;

pub use nemesis::{heal_leftovers, heal_leftovers_with, record_path, FaultRecord, Nemesis, ProgressProbe};
pub use schedule::{schedule, ScheduledFault};

/// The campaign's `[nemesis]` table.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NemesisConfig {
    /// Fault kinds to draw from; empty = no faults.
    #[serde(default)]
    pub faults: Vec<FaultKind>,
    /// Seconds between the end of one fault and the start of the next (mean; jittered).
    #[serde(default = "default_seconds")]
    pub interval: f64,
    /// Seconds a fault stays in force (mean; jittered).
    #[serde(default = "default_seconds")]
    pub duration: f64,
    /// Which node: a random one, or the leader of the workload's first destination.
    #[serde(default)]
    pub target: Target,
    /// Scripted steps (`[[nemesis.steps]]`) instead of a random schedule: the precise sequences
    /// several published losses need (pause the followers, kill the leader, resume them, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
}

/// One scripted step: `fault` on `target` from `at` seconds into the run phase, for `duration`
/// seconds. Steps may overlap.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub at: f64,
    pub fault: FaultKind,
    pub target: StepTarget,
    pub duration: f64,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "at {:.1} s: {} {} for {:.1} s",
            self.at, self.fault, self.target, self.duration
        )
    }
}

/// Whom a step hits, decided when it starts: `leader` (of the workload's first destination),
/// `followers` (every other node), `minority` (⌊(n−1)/2⌋ nodes, never the leader: the next ones
/// after it), `coordinator` (the node coordinating the first transactional producer or
/// processor: Kafka's transaction coordinator), `controller` (Kafka's active KRaft controller),
/// `all`, or `node:<i>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepTarget {
    Leader,
    Followers,
    Minority,
    Coordinator,
    Controller,
    All,
    Node(usize),
}

impl StepTarget {
    /// The random-schedule target that names the same single node, if there is one.
    pub fn as_target(self) -> Option<Target> {
        match self {
            StepTarget::Leader => Some(Target::Leader),
            StepTarget::Coordinator => Some(Target::Coordinator),
            StepTarget::Controller => Some(Target::Controller),
            _ => None,
        }
    }
}

impl fmt::Display for StepTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepTarget::Leader => f.write_str("leader"),
            StepTarget::Followers => f.write_str("followers"),
            StepTarget::Minority => f.write_str("minority"),
            StepTarget::Coordinator => f.write_str("coordinator"),
            StepTarget::Controller => f.write_str("controller"),
            StepTarget::All => f.write_str("all"),
            StepTarget::Node(n) => write!(f, "node:{n}"),
        }
    }
}

impl std::str::FromStr for StepTarget {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        match text {
            "leader" => Ok(StepTarget::Leader),
            "followers" => Ok(StepTarget::Followers),
            "minority" => Ok(StepTarget::Minority),
            "coordinator" => Ok(StepTarget::Coordinator),
            "controller" => Ok(StepTarget::Controller),
            "all" => Ok(StepTarget::All),
            other => other
                .strip_prefix("node:")
                .and_then(|n| n.parse().ok())
                .map(StepTarget::Node)
                .ok_or_else(|| {
                    format!("`{other}` is not a step target: leader, followers, minority, coordinator, controller, all or node:<i>")
                }),
        }
    }
}

impl Serialize for StepTarget {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StepTarget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

fn default_seconds() -> f64 {
    5.0
}

impl Default for NemesisConfig {
    fn default() -> Self {
        NemesisConfig {
            faults: Vec::new(),
            interval: default_seconds(),
            duration: default_seconds(),
            target: Target::Random,
            steps: Vec::new(),
        }
    }
}

impl NemesisConfig {
    /// Impossible values, named by key: `interval` must be ≥ 0, `duration` > 0, both finite.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let (interval, duration) = (self.interval, self.duration);
        if !interval.is_finite() || interval < 0.0 {
            return Err(format!(
                "nemesis.interval must be a number of seconds ≥ 0, not {interval}"
            ));
        }
        if !duration.is_finite() || duration <= 0.0 {
            return Err(format!(
                "nemesis.duration must be a number of seconds > 0, not {duration}"
            ));
        }
        if !self.steps.is_empty() && !self.faults.is_empty() {
            return Err("nemesis.steps replaces the random schedule: remove `faults` (or the steps)".into());
        }
        for (i, step) in self.steps.iter().enumerate() {
            if !step.at.is_finite() || step.at < 0.0 {
                return Err(format!(
                    "nemesis.steps[{i}].at must be a number of seconds ≥ 0, not {}",
                    step.at
                ));
            }
            if !step.duration.is_finite() || step.duration <= 0.0 {
                return Err(format!(
                    "nemesis.steps[{i}].duration must be a number of seconds > 0, not {}",
                    step.duration
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// kill -9 the node, restart it on its data to heal.
    Kill,
    /// SIGSTOP the node, SIGCONT to heal.
    Pause,
    /// Replies from the node never reach clients (requests still do).
    LoseAcks,
    /// Client connections to the node are reset.
    Reset,
    /// Replies from the node are delayed.
    Latency,
    /// The node is cut from every other node, both ways ([`partition`] has the shapes).
    PartitionOne,
    /// A minority starting at the node is cut from the majority.
    PartitionHalves,
    /// The node bridges two halves that cannot reach each other.
    PartitionBridge,
    /// Majorities ring: every node sees a majority, no two the same.
    PartitionRing,
    /// The node hears no other node; they still hear it.
    PartitionOneWay,
    /// Replication between the node and every other node is cut both ways (Kafka: the
    /// inter-broker listener); the controllers' consensus and clients still reach it.
    PartitionReplication,
}

impl FaultKind {
    /// The name in events and campaign files (`lose-acks`).
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::LoseAcks => "lose-acks",
            FaultKind::Reset => "reset",
            FaultKind::Latency => "latency",
            FaultKind::PartitionOne => "partition-one",
            FaultKind::PartitionHalves => "partition-halves",
            FaultKind::PartitionBridge => "partition-bridge",
            FaultKind::PartitionRing => "partition-ring",
            FaultKind::PartitionOneWay => "partition-one-way",
            FaultKind::PartitionReplication => "partition-replication",
        }
    }

    /// A partition between nodes (of any shape).
    pub fn is_partition(self) -> bool {
        partition::KINDS.contains(&self)
    }

    /// Its name in history events (`start-<event>`): every partition shape is `partition`, with
    /// its shape and grudge in the event's value.
    pub fn event_name(self) -> &'static str {
        if self.is_partition() {
            "partition"
        } else {
            self.name()
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    #[default]
    Random,
    Leader,
    /// The node coordinating the first transactional producer or processor (Kafka's
    /// transaction coordinator of its `transactional.id`).
    Coordinator,
    /// The node leading the cluster's metadata (Kafka's active KRaft controller).
    Controller,
}

impl Target {
    /// How a schedule line names the node this target picks when the fault starts.
    pub fn describe(self) -> &'static str {
        match self {
            Target::Random => "a random node",
            Target::Leader => "the leader",
            Target::Coordinator => "the transaction coordinator",
            Target::Controller => "the controller",
        }
    }
}

/// One package of fault kinds (Jepsen's nemesis packages): how to make each kind on a node and
/// how to heal everything of its family, whoever left it.
#[async_trait]
pub trait Fault: Send + Sync {
    /// The kinds this package makes.
    fn kinds(&self) -> &'static [FaultKind];

    /// Make `kind` on `node`.
    async fn start(&self, kind: FaultKind, node: usize, cluster: &dyn Cluster) -> Result<()>;

    /// Heal `kind` on `node` (the fault this package started).
    async fn stop(&self, kind: FaultKind, node: usize, cluster: &dyn Cluster) -> Result<()>;

    /// Heal whatever of this family could be in force on `cluster` (idempotent; a fault of a
    /// crashed earlier run included). Every step is tried; the errors are returned.
    async fn heal_all(&self, cluster: &dyn Cluster) -> Vec<anyhow::Error>;

    /// What the history records about `kind` on `node` beyond the node (a partition's shape and
    /// grudge), in a cluster of `nodes` nodes.
    fn details(&self, kind: FaultKind, node: usize, nodes: usize) -> serde_json::Map<String, serde_json::Value> {
        let _ = (kind, node, nodes);
        serde_json::Map::new()
    }
}

/// The fault packages of a run, in healing order.
pub struct FaultSet {
    packages: Vec<Box<dyn Fault>>,
}

impl FaultSet {
    /// The packages for brokers something else runs: toxics on the user's Toxiproxy (when the
    /// campaign names one), then the user's process commands ([`crate::nodes::external`]).
    pub fn external(proxy: Option<Toxiproxy>) -> FaultSet {
        let mut packages: Vec<Box<dyn Fault>> = Vec::new();
        if let Some(proxy) = proxy {
            packages.push(Box::new(proxy::ProxyFaults::new(proxy)));
        }
        packages.push(Box::new(process::ProcessFaults));
        FaultSet { packages }
    }

    /// The packages for nodes ackcheck runs on this machine: proxy toxics and partitions
    /// (network faults heal first), then processes.
    pub fn local(proxy: Toxiproxy) -> FaultSet {
        FaultSet {
            packages: vec![
                Box::new(proxy::ProxyFaults::new(proxy)),
                Box::new(partition::PartitionFaults),
                Box::new(process::ProcessFaults),
            ],
        }
    }

    /// What the history records about `kind` on `node` beyond the node.
    pub fn details(&self, kind: FaultKind, node: usize, nodes: usize) -> serde_json::Map<String, serde_json::Value> {
        self.package(kind)
            .map(|p| p.details(kind, node, nodes))
            .unwrap_or_default()
    }

    fn package(&self, kind: FaultKind) -> Result<&dyn Fault> {
        self.packages
            .iter()
            .find(|p| p.kinds().contains(&kind))
            .map(|p| p.as_ref())
            .ok_or_else(|| anyhow!("no fault package of this run makes `{kind}`"))
    }

    pub async fn start(&self, kind: FaultKind, node: usize, cluster: &dyn Cluster) -> Result<()> {
        self.package(kind)?.start(kind, node, cluster).await
    }

    pub async fn stop(&self, kind: FaultKind, node: usize, cluster: &dyn Cluster) -> Result<()> {
        self.package(kind)?.stop(kind, node, cluster).await
    }

    /// Every package heals its family, in order; every error is returned.
    pub async fn heal_all(&self, cluster: &dyn Cluster) -> Vec<anyhow::Error> {
        let mut errors = Vec::new();
        for package in &self.packages {
            errors.extend(package.heal_all(cluster).await);
        }
        errors
    }
}
