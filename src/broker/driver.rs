//! What a broker declares about itself: its name, sizes, port block, capabilities and option
//! table, and the two factories the rest of ackcheck needs (its local nodes, its clients).
//!
//! Everything broker-neutral (campaign checks, the runner, the nemesis, the CLI) asks a
//! [`BrokerKind`] — a handle on one registered [`BrokerDriver`] — instead of matching on a list
//! of brokers. The only list is the registry in `crate::brokers`.

use std::sync::Arc;

use super::client::{Broker, LogSink};
use super::props::{ClientDefaults, ClientRole, ClientSettings, ClientTables, Props};
use crate::history::Guarantee;
use crate::nodes::{
    process, Cluster, ClusterError, ClusterShape, Home, LocalCluster, NodeHosts, NodeNetwork, NodeRecipe, PortBlock,
};

/// What one broker can be asked to do. A campaign asking for anything else is refused when it
/// loads, with the reason the driver gives, before anything starts.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    /// Atomic multi-message sends and read-process-write transactions (the `txn` and
    /// `pipeline` workloads). `None` = has them; `Some(why)` = does not, and why.
    pub transactions: Option<&'static str>,
    /// Fault kinds the broker's local nodes cannot take, each with the reason (a sentence
    /// that completes "cannot take `kill`: ...").
    pub refused_faults: &'static [(&'static str, &'static str)],
    /// Nodes lead destinations, so `target = "leader"` means something.
    pub leaders: bool,
    /// One node leads the cluster's metadata (Kafka's active KRaft controller), so
    /// `target = "controller"` means something.
    pub controller: bool,
    /// Partitions between nodes (its nodes run in network namespaces and listen where
    /// [`crate::nodes::NodeHosts`] says). `None` = can; `Some(why)` = cannot, and why.
    pub partitions: Option<&'static str>,
    /// Processor applications ([`crate::broker::ProcessorApp`]) the pipeline workload can run
    /// instead of ackcheck's own processors (`[workload] processor`).
    pub processor_apps: &'static [&'static str],
}

/// The client side of a run, as the driver needs it to make a [`Broker`].
pub struct ClientContext<'a> {
    /// The addresses clients use (the proxies, or the user's endpoints with `--external`).
    pub endpoints: &'a [String],
    /// Nodes in the cluster (replication factors follow it).
    pub nodes: usize,
    /// The delivery mode the clients are configured for.
    pub mode: Guarantee,
    /// Makes broker-side names (groups, transactional ids) unique to this run.
    pub run: &'a str,
    /// The effective `[dest]` settings ([`BrokerDriver::dest_settings`]).
    pub dest_settings: &'a serde_json::Value,
    /// The effective client properties ([`BrokerDriver::client_settings`]).
    pub client: &'a ClientSettings,
    pub log: LogSink,
}

/// One broker, described by itself. Implemented once per folder under `src/brokers/`.
pub trait BrokerDriver: Sync + Send {
    /// Lowercase name, as campaign files and the CLI spell it (`kafka`).
    fn name(&self) -> &'static str;

    /// What it is, for help texts and logs (`Apache Kafka 4.1.1, KRaft`).
    fn describe(&self) -> &'static str;

    /// Node counts it runs with locally.
    fn allowed_nodes(&self) -> &'static [usize];

    /// First port of its block of 100 in the port plan ([`BrokerKind::port`]).
    fn port_base(&self) -> u16;

    /// What the `pos` strings of this broker's histories are: `log` where a position is
    /// `partition@offset` (the checker then compares offsets), else opaque.
    fn positions(&self) -> crate::history::Positions {
        crate::history::Positions::Opaque
    }

    fn capabilities(&self) -> Capabilities;

    /// Checks the campaign's `[dest]` table (settings of the topics or queues a run creates, in
    /// this broker's vocabulary; absent = empty) and returns the effective settings, defaults
    /// filled in; they are recorded in the history header. An error names the key.
    fn dest_settings(&self, table: &toml::Table) -> Result<serde_json::Value, OptionError> {
        match table.keys().next() {
            None => Ok(serde_json::json!({})),
            Some(key) => Err(OptionError {
                key: key.clone(),
                message: format!(
                    "is not a destination setting of {}; {} has none",
                    self.name(),
                    self.name()
                ),
            }),
        }
    }

    /// [`BrokerDriver::dest_settings`] for a run in `mode`, for brokers whose destinations
    /// depend on the mode (SQS: a FIFO queue for exactly-once). The campaign calls this one; by
    /// default the mode changes nothing.
    fn dest_settings_in_mode(&self, mode: Guarantee, table: &toml::Table) -> Result<serde_json::Value, OptionError> {
        let _ = mode;
        self.dest_settings(table)
    }

    /// Checks the campaign's `[client]` tables and returns the effective client properties for
    /// `mode`: the mode's preset (or, with `defaults = "library"`, only what ackcheck needs),
    /// then the user's keys over it, checked against the client library where it can tell. An
    /// error names the key (`producer.acks`). By default a broker takes none.
    fn client_settings(&self, mode: Guarantee, tables: &ClientTables) -> Result<ClientSettings, OptionError> {
        let _ = mode;
        for role in [ClientRole::Producer, ClientRole::Consumer] {
            let table = match role {
                ClientRole::Producer => &tables.producer,
                ClientRole::Consumer => &tables.consumer,
            };
            if let Some(key) = table.keys().next() {
                return Err(OptionError {
                    key: format!("{}.{key}", role.name()),
                    message: format!(
                        "is not a client property ackcheck can set on {}: its clients follow the mode's preset (see README, \"Delivery modes\"); remove the [client.{}] table",
                        self.name(),
                        role.name()
                    ),
                });
            }
        }
        if tables.defaults != ClientDefaults::Preset {
            return Err(OptionError {
                key: "defaults".into(),
                message: format!(
                    "= \"library\" is not possible on {}: its clients follow the mode's preset; remove the key",
                    self.name()
                ),
            });
        }
        Ok(ClientSettings::default())
    }

    /// Checks the campaign's `[server]` table (settings of the nodes ackcheck starts, in the
    /// broker's own vocabulary: Kafka's `server.properties` keys) and returns them. An error
    /// names the key. By default a broker takes none.
    fn server_settings(&self, table: &toml::Table) -> Result<Props, OptionError> {
        match table.keys().next() {
            None => Ok(Props::default()),
            Some(key) => Err(OptionError {
                key: key.clone(),
                message: format!(
                    "is not a server setting ackcheck can set on {}'s nodes yet; remove the [server] table",
                    self.name()
                ),
            }),
        }
    }

    /// What its local nodes are, for a cluster of `nodes` nodes under `home` (node count already
    /// checked) with the campaign's `[server]` settings, listening where `hosts` says, of
    /// `version` (one of [`Self::versions`], or empty where there is no choice);
    /// `crate::nodes::LocalCluster` runs them.
    fn recipe(&self, home: &Home, nodes: usize, server: &Props, hosts: NodeHosts, version: &str)
        -> Box<dyn NodeRecipe>;

    /// The versions ackcheck can install and run locally (`version = "…"` in a campaign,
    /// `cluster up --version`), the default first; empty when only its one pinned version runs.
    fn versions(&self) -> &'static [&'static str] {
        &[]
    }

    /// The key a node coordinates for the producer or processor named `identity` in run `run`
    /// (Kafka: its `transactional.id`), for `target = "coordinator"`; `None` where nodes
    /// coordinate nothing.
    fn coordinator_key(&self, run: &str, identity: &str) -> Option<String> {
        let _ = (run, identity);
        None
    }

    /// Clients against running nodes.
    fn client(&self, ctx: &ClientContext) -> anyhow::Result<Arc<dyn Broker>>;

    /// One client round trip against the broker at `endpoint` (`host:port`), for the health of
    /// nodes ackcheck did not start: `Ok(what answered)`. By default a TCP connection, for
    /// brokers whose driver has no lighter probe of its own protocol. `client` is the run's
    /// effective client settings, for a probe that needs the user's credentials or TLS.
    fn round_trip(
        &self,
        endpoint: String,
        client: &ClientSettings,
    ) -> futures::future::BoxFuture<'static, Result<String, String>> {
        let _ = client;
        Box::pin(async move {
            match tokio::time::timeout(
                std::time::Duration::from_secs(5),
                tokio::net::TcpStream::connect(&endpoint),
            )
            .await
            {
                Ok(Ok(_)) => Ok(format!("TCP connection to {endpoint} accepted")),
                Ok(Err(e)) => Err(format!("connecting to {endpoint}: {e}")),
                Err(_) => Err(format!("connecting to {endpoint}: no answer within 5 s")),
            }
        })
    }
}

/// A bad key in a broker's option table.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{key} {message}")]
pub struct OptionError {
    pub key: String,
    pub message: String,
}

/// A handle on one registered driver: cheap to copy, compared and printed by name.
#[derive(Clone, Copy)]
pub struct BrokerKind(pub &'static dyn BrokerDriver);

impl BrokerKind {
    pub fn driver(self) -> &'static dyn BrokerDriver {
        self.0
    }

    pub fn name(self) -> &'static str {
        self.0.name()
    }

    pub fn allowed_nodes(self) -> &'static [usize] {
        self.0.allowed_nodes()
    }

    pub fn capabilities(self) -> Capabilities {
        self.0.capabilities()
    }

    /// The port plan: each broker has a block of 100 ports, each node 10 of them, and slot
    /// 0..10 says what a port is for. Slot 0 ([`crate::nodes::CLIENT_PROXY_SLOT`]) is the
    /// Toxiproxy listen port for clients; slots 1..9 are the broker's own ports.
    pub fn port(self, node: usize, slot: u16) -> u16 {
        self.port_block().port(node, slot)
    }

    /// Its block in the port plan (each driver names it at the default base;
    /// `ACKCHECK_PORT_BASE` moves them all).
    pub fn port_block(self) -> PortBlock {
        PortBlock {
            start_at_default_base: self.0.port_base(),
        }
    }

    /// Its local cluster with `nodes` nodes under `home`, with the broker's own server settings.
    /// `nodes = None` means: the size of the cluster that is already up, or 1.
    pub fn open_cluster(self, nodes: Option<usize>, home: &Home) -> Result<Box<dyn Cluster>, ClusterError> {
        self.open_cluster_with(nodes, home, &Props::default())
    }

    /// Its local cluster with the campaign's `[server]` settings (`server`): a cluster up with
    /// other settings is not reused (see `crate::nodes::local`).
    pub fn open_cluster_with(
        self,
        nodes: Option<usize>,
        home: &Home,
        server: &Props,
    ) -> Result<Box<dyn Cluster>, ClusterError> {
        self.open_cluster_on(nodes, home, server, None, None)
    }

    /// [`Self::open_cluster_with`], on `network` (`None`: the network the cluster was started
    /// on, else loopback).
    pub fn open_cluster_on(
        self,
        nodes: Option<usize>,
        home: &Home,
        server: &Props,
        network: Option<NodeNetwork>,
        version: Option<&str>,
    ) -> Result<Box<dyn Cluster>, ClusterError> {
        let nodes = nodes.or(process::recorded_nodes(home, self.name())).unwrap_or(1);
        let network = network.unwrap_or_else(|| crate::nodes::local::recorded_network(home, self.name()));
        // Not asked: the version the cluster is up with (a restart must not switch a node's
        // binaries under its data), else the default.
        let version = match version {
            Some(v) => self.check_version(v)?,
            None => crate::nodes::local::recorded_version(home, self.name())
                .filter(|v| self.0.versions().contains(&v.as_str()))
                .unwrap_or_else(|| self.0.versions().first().map_or(String::new(), |v| v.to_string())),
        };
        if !self.allowed_nodes().contains(&nodes) {
            let allowed: Vec<String> = self.allowed_nodes().iter().map(|n| n.to_string()).collect();
            return Err(ClusterError::NodeCount {
                broker: self.name(),
                allowed: allowed.join(" or "),
                asked: nodes,
            });
        }
        let shape = ClusterShape {
            broker: self.name(),
            nodes,
            max_nodes: self.max_nodes(),
            ports: self.port_block(),
            server_settings: serde_json::to_string(server).unwrap_or_default(),
            network,
            version: version.clone(),
        };
        let hosts = NodeHosts {
            network,
            ports: self.port_block(),
        };
        Ok(Box::new(LocalCluster::new(
            home.clone(),
            shape,
            self.0.recipe(home, nodes, server, hosts, &version),
        )))
    }

    /// `version` if the driver runs it locally; else a sentence naming the versions it runs.
    pub fn check_version(self, version: &str) -> Result<String, ClusterError> {
        if self.0.versions().contains(&version) {
            return Ok(version.to_string());
        }
        Err(ClusterError::Version(match self.0.versions() {
            [] => format!(
                "{} runs one pinned version here ({}); remove the version",
                self.name(),
                self.0.describe()
            ),
            versions => format!(
                "{} {version} is not a version ackcheck runs; choose one of {}",
                self.name(),
                versions.join(", ")
            ),
        }))
    }

    /// The largest cluster it runs locally.
    pub fn max_nodes(self) -> usize {
        self.allowed_nodes().iter().copied().max().unwrap_or(1)
    }

    /// Every port of this broker's block that `nodes` nodes use.
    pub fn ports(self, nodes: usize) -> impl Iterator<Item = u16> {
        (0..nodes).flat_map(move |n| (0..10).map(move |s| self.port(n, s)))
    }
}

impl PartialEq for BrokerKind {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for BrokerKind {}

impl std::hash::Hash for BrokerKind {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state)
    }
}

impl std::fmt::Debug for BrokerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::fmt::Display for BrokerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for BrokerKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}
