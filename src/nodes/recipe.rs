//! What a broker's node is, declared by the broker; how nodes are run is [`super::local`]'s job.
//!
//! A [`NodeRecipe`] says *what* to run: where to install it from, the ports of each node and
//! what each is for, the files it reads, its data, its command line and how to tell it is
//! ready. The one local lifecycle ([`super::local::LocalCluster`]) decides *how*: proxies, pid
//! files, port checks, fresh start versus revival on existing data, stopping, cleaning up. A
//! broker never writes a lifecycle of its own, so the rules (when a cluster comes back on its
//! data, what `down` deletes, …) are the same for every broker.
//!
//! The recipe lives here, in the `nodes` role, rather than beside the client traits in
//! `crate::broker`: the lifecycle needs it, and `nodes` must not depend on `broker` (that was the
//! old circle between the cluster code and the proxies). A driver hands out a recipe through
//! `crate::broker::BrokerDriver::recipe`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use async_trait::async_trait;

use super::Result;

/// What a port of a node is for. Partitions act on [`PortRole::Peer`] and
/// [`PortRole::Controller`] traffic; clients reach [`PortRole::Client`] through the node's proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortRole {
    /// The broker's client listener: the upstream of the node's Toxiproxy proxy. Exactly one
    /// per node.
    Client,
    /// Replication and cluster traffic between nodes (Kafka's inter-broker listener, NATS
    /// routes, Erlang distribution).
    Peer,
    /// Consensus among controllers (KRaft's quorum).
    Controller,
    /// Management and monitoring (HTTP admin APIs, health endpoints), and listeners clients do
    /// not use.
    Admin,
}

/// One port a node (or the whole cluster) holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodePort {
    pub role: PortRole,
    /// What it is, for messages (`"INTERNAL listener"`, `"epmd"`).
    pub name: &'static str,
    /// Where it listens: loopback, IPv4 or IPv6.
    pub address: SocketAddr,
}

impl NodePort {
    /// A port on `ip` (a node's address from [`super::NodeHosts::ip`]).
    pub fn at(role: PortRole, name: &'static str, ip: std::net::Ipv4Addr, port: u16) -> NodePort {
        NodePort {
            role,
            name,
            address: SocketAddr::from((ip, port)),
        }
    }

    /// A port on 127.0.0.1.
    pub fn local(role: PortRole, name: &'static str, port: u16) -> NodePort {
        NodePort {
            role,
            name,
            address: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }
}

/// One broker's nodes, as the broker declares them. Made by the driver for one cluster size and
/// one `$ACKCHECK_HOME`; who the broker is, how many nodes and where its ports are is the
/// lifecycle's [`super::local::ClusterShape`], handed over by the driver.
#[async_trait]
pub trait NodeRecipe: Send + Sync {
    /// Install the broker (idempotent and cached: a no-op once installed). Blocking.
    fn install(&self) -> Result<()>;

    /// False when the broker is not installed yet (so `status` can say so).
    fn installed(&self) -> bool {
        true
    }

    /// The broker's own ports of `node` (not its proxy), exactly one of them [`PortRole::Client`].
    fn ports(&self, node: usize) -> Vec<NodePort>;

    /// Ports the cluster holds as a whole rather than one node (RabbitMQ's epmd).
    fn shared_ports(&self) -> Vec<NodePort> {
        Vec::new()
    }

    /// Directories holding `node`'s data: created before a start, deleted by `down` and by a
    /// fresh start (the node's log stays until the next fresh start).
    fn data_dirs(&self, node: usize) -> Vec<PathBuf>;

    /// True when `node` has data that a start would come back on (formatted storage, a written
    /// bookie cookie, a JetStream store). A broker that keeps nothing across a kill (LocalStack
    /// keeps SQS in memory) answers false, and the cluster then starts fresh.
    fn has_data(&self, node: usize) -> bool;

    /// Once per fresh cluster, before any node starts (RabbitMQ writes the cluster's Erlang cookie).
    async fn prepare_cluster(&self) -> Result<()> {
        Ok(())
    }

    /// Files `node` reads, written before every start of it (so a start always runs on the
    /// current settings): `(path, contents)`.
    fn files(&self, node: usize) -> Vec<(PathBuf, String)>;

    /// Before every start of `node`, after its files are written (Kafka formats storage that
    /// has none; RabbitMQ starts the shared epmd).
    async fn prepare_start(&self, node: usize) -> Result<()> {
        let _ = node;
        Ok(())
    }

    /// The command that runs `node` in the foreground; the lifecycle detaches it, records its
    /// pid and collects its output in the node's log.
    fn command(&self, node: usize) -> Command;

    /// One readiness probe of `node`, through its proxy where the broker allows it: `Ok(what
    /// answered)` when it serves clients and sees every node of `members` as part of its cluster
    /// (itself included), else `Err(why not yet)`.
    async fn probe(&self, node: usize, members: &[usize]) -> std::result::Result<String, String>;

    /// After the nodes of a fresh cluster first answer: join them into one cluster where the
    /// broker does not do that by itself (RabbitMQ's `join_cluster`).
    async fn form_cluster(&self) -> std::result::Result<(), String> {
        Ok(())
    }

    /// How long a node may take from start to ready.
    fn ready_timeout(&self) -> Duration;

    /// A node started again on its data (after a kill) that is not ready within this is stuck
    /// rather than slow: `restart` kills it and starts it once more, as a supervisor's liveness
    /// probe would. `None` (the default): wait the whole [`NodeRecipe::ready_timeout`].
    fn stuck_restart_after(&self) -> Option<Duration> {
        None
    }

    /// How long a node may take to exit after SIGTERM before it gets SIGKILL.
    fn stop_grace(&self) -> Duration;

    /// After every node is stopped by `down`: stop what the cluster shares (RabbitMQ's epmd).
    async fn after_down(&self) -> Result<()> {
        Ok(())
    }

    /// A ready-to-use client URL for `node` where the protocol has one (`amqp://…`); `None`
    /// gives the `host:port` of its proxy.
    fn url(&self, node: usize) -> Option<String> {
        let _ = node;
        None
    }

    /// The broker's own address for clients that want to bypass the proxy (health checks,
    /// tools); by default the [`PortRole::Client`] port.
    fn direct(&self, node: usize) -> Option<SocketAddr> {
        let _ = node;
        None
    }

    /// The node coordinating `key` (Kafka: the transaction coordinator of the transactional id
    /// `key`), if the broker has coordinators and one is known. `live` as for [`Self::leader`].
    async fn coordinator(&self, key: &str, live: &[usize]) -> Option<usize> {
        let _ = (key, live);
        None
    }

    /// The node leading the cluster's metadata (Kafka: the active KRaft controller), if the
    /// broker has one and it is known. `live` as for [`Self::leader`].
    async fn controller(&self, live: &[usize]) -> Option<usize> {
        let _ = live;
        None
    }

    /// The node that leads `dest` now, if the broker has leaders and one is known. `live` are
    /// the nodes running and not paused, the ones worth asking.
    async fn leader(&self, dest: &str, live: &[usize]) -> Option<usize> {
        let _ = (dest, live);
        None
    }
}
