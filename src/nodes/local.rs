//! The one local lifecycle: every broker's nodes on this machine are installed, started,
//! proxied, revived, stopped and cleaned up by this code, following what the broker's
//! [`NodeRecipe`] declares.
//!
//! # The rules, the same for every broker
//!
//! Until this file existed each broker had its own copy of the lifecycle, and they had drifted
//! (Kafka and Pulsar came back on their data after every node was killed while NATS and
//! RabbitMQ wiped it; RabbitMQ and NATS refused `up` with another size even when nothing ran,
//! Kafka and Pulsar only when something did; only SQS resumed a paused node on `restart`).
//! These are the rules now, chosen for what a user of `cluster up` and a campaign expect:
//!
//! - **`up`, cluster recorded with the same size**: it comes back on its data when a node runs
//!   or every node has data (a cluster whose nodes were all killed is still that cluster, with
//!   its durable messages): proxies remade, paused nodes resumed, missing nodes started, then
//!   every node must answer and see all the others. A failed revival stops the nodes it started
//!   and leaves the rest alone.
//! - **`up`, another size or other server settings (a campaign's `[server]`) while a node of it
//!   runs**: refused ([`ClusterError::AlreadyUp`], [`ClusterError::OtherSettings`]); `down`
//!   first. Nothing is stopped behind the user's back.
//! - **`up`, otherwise** (nothing recorded; another size, nothing running; no data left): a fresh
//!   cluster. Leftovers of any earlier cluster are cleared (nodes' directories, our proxies, what
//!   the cluster shares), the server settings recorded, then every port is checked before anything starts (the broker's own
//!   first, then the proxies'), so a clash leaves nothing half-started. Nodes start together,
//!   each must answer, [`NodeRecipe::form_cluster`] joins them where the broker needs it, and
//!   every node must see all the others. A failed fresh start is taken down again.
//! - **`restart`**: the cluster must be recorded. The node's proxy is remade if it is gone, a
//!   paused node is resumed, a dead node is started on its data; then it must answer and see
//!   every node that is running. A node started on its data that is not ready within its
//!   recipe's [`NodeRecipe::stuck_restart_after`] is killed and started once more.
//! - **`down`**: every node up to the largest size stopped at once (SIGCONT, SIGTERM, SIGKILL
//!   after the broker's grace period, each to the node's whole process group, then SIGKILL to
//!   whatever of the group is left), our proxies deleted, what the cluster shares stopped,
//!   Toxiproxy stopped when no broker uses it any more, every port waited free; the nodes' data
//!   is deleted (their logs stay for reading) and the record forgotten.
//!
//! State lives on disk only (`$ACKCHECK_HOME/run/<broker>/`: the recorded size, and per node a
//! pid file, a log and the data), so separate commands (`up`, then `kill`, then `restart`) act on
//! the same cluster.

use std::fs;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::netns::{self, Grudge, NodeHosts, NodeNetwork};
use super::process::{self, NodeProcess};
use super::recipe::{NodePort, NodeRecipe, PortRole};
use super::toxiproxy::{self, Toxiproxy};
use super::{Cluster, ClusterError, Home, NodeEndpoint, NodeStatus, PortBlock, Result, Traffic, CLIENT_PROXY_SLOT};

/// How long a node's own ports may stay held after it died (a JVM killed with -9 is a zombie
/// while its other threads still hold the listeners for a moment).
const PORTS_RELEASE_WAIT: Duration = Duration::from_secs(15);
/// How long `down` waits for every port to be released.
const DOWN_PORTS_WAIT: Duration = Duration::from_secs(30);
/// Between readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// One probe that takes longer than this counts as a failed probe.
const PROBE_LIMIT: Duration = Duration::from_secs(45);

/// Who the cluster is: the broker's name (it names the run directory and the proxies,
/// `kafka-node0`), its size, the largest size it runs (`down` and a fresh start clean up that
/// many nodes, so a smaller cluster never inherits a larger one's leftovers) and its block in
/// the port plan (slot 0 of each node is its proxy).
#[derive(Debug, Clone)]
pub struct ClusterShape {
    pub broker: &'static str,
    pub nodes: usize,
    pub max_nodes: usize,
    pub ports: PortBlock,
    /// The broker's server settings from the campaign (`[server]`), as recorded text: a cluster
    /// up with other settings is not reused.
    pub server_settings: String,
    /// Where the nodes run (recorded like the settings: a cluster on loopback is not reused for
    /// a campaign that partitions it, nor the other way round).
    pub network: NodeNetwork,
    /// The broker's version (empty where the driver runs one pinned version); recorded like the
    /// settings: a cluster up with another version is not reused.
    pub version: String,
}

/// One broker's local cluster, run by the one lifecycle.
pub struct LocalCluster {
    home: Home,
    shape: ClusterShape,
    recipe: Box<dyn NodeRecipe>,
}

impl LocalCluster {
    pub fn new(home: Home, shape: ClusterShape, recipe: Box<dyn NodeRecipe>) -> LocalCluster {
        LocalCluster { home, shape, recipe }
    }

    /// The recipe this cluster runs (broker-specific helpers for tests and tools).
    pub fn recipe(&self) -> &dyn NodeRecipe {
        self.recipe.as_ref()
    }

    fn name(&self) -> &'static str {
        self.shape.broker
    }

    fn node_count(&self) -> usize {
        self.shape.nodes
    }

    fn max_nodes(&self) -> usize {
        self.shape.max_nodes
    }

    fn proxy_port(&self, node: usize) -> u16 {
        self.shape.ports.port(node, CLIENT_PROXY_SLOT)
    }

    fn proxy_name(&self, node: usize) -> String {
        format!("{}-node{node}", self.name())
    }

    fn proxy_address(&self, node: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.proxy_port(node)))
    }

    /// The node's client listener, the upstream of its proxy.
    fn client_port(&self, node: usize) -> Result<NodePort> {
        self.recipe
            .ports(node)
            .into_iter()
            .find(|p| p.role == PortRole::Client)
            .ok_or_else(|| {
                ClusterError::Other(format!(
                    "{} declares no client port for node {node}; this is a bug in its node recipe",
                    self.name()
                ))
            })
    }

    /// The node's own ports that a port check can test from here: on loopback. A node in a
    /// namespace of its own listens where nothing else can, and its namespace is made afresh.
    fn own_addresses(&self, node: usize) -> Vec<NodePort> {
        self.recipe
            .ports(node)
            .into_iter()
            .filter(|p| p.address.ip().is_loopback())
            .collect()
    }

    /// Where the nodes listen.
    pub fn hosts(&self) -> NodeHosts {
        NodeHosts {
            network: self.shape.network,
            ports: self.shape.ports,
        }
    }

    /// Where the network the running cluster started on is recorded.
    fn network_file(&self) -> std::path::PathBuf {
        self.home.run_dir(self.name()).join("network.json")
    }

    /// The network the cluster was started on (none recorded: loopback).
    fn recorded_network(&self) -> NodeNetwork {
        recorded_network(&self.home, self.name())
    }

    /// Remove the namespaces of every node up to the largest size, then the bridge if no
    /// cluster uses it any more.
    fn remove_namespaces(&self) -> Result<()> {
        for node in 0..self.max_nodes() {
            netns::remove(self.proxy_port(node))?;
        }
        netns::remove_bridge_if_unused()
    }

    /// Every address of nodes `0..nodes`: proxies, the nodes' own ports, the shared ones.
    fn addresses(&self, nodes: usize) -> Vec<(SocketAddr, String)> {
        let mut all: Vec<(SocketAddr, String)> = (0..nodes)
            .map(|n| (self.proxy_address(n), format!("{} node {n}'s proxy", self.name())))
            .collect();
        for n in 0..nodes {
            for p in self.own_addresses(n) {
                all.push((p.address, format!("{} node {n}'s {}", self.name(), p.name)));
            }
        }
        for p in self.recipe.shared_ports() {
            all.push((p.address, format!("{}'s {}", self.name(), p.name)));
        }
        all
    }

    fn all_nodes(&self) -> Vec<usize> {
        (0..self.node_count()).collect()
    }

    /// Where a fresh start records the server settings it started with.
    fn settings_file(&self) -> std::path::PathBuf {
        self.home.run_dir(self.name()).join("server-settings.json")
    }

    /// The server settings the running cluster started with (none recorded: the defaults).
    fn recorded_settings(&self) -> String {
        fs::read_to_string(self.settings_file())
            .unwrap_or_else(|_| serde_json::to_string(&serde_json::Map::new()).unwrap_or_default())
    }

    /// Nodes of this cluster that run and are not paused.
    fn live_nodes(&self) -> Vec<usize> {
        self.all_nodes()
            .into_iter()
            .filter(|&n| {
                let p = self.node_process(n);
                p.pid().is_some() && !p.is_paused()
            })
            .collect()
    }

    /// Create the node's proxy unless it exists (replacing it would cut live connections and
    /// drop its toxics).
    async fn ensure_proxy(&self, proxy: &Toxiproxy, existing: &[String], node: usize) -> Result<()> {
        let name = self.proxy_name(node);
        if existing.contains(&name) {
            return Ok(());
        }
        let upstream = self.client_port(node)?.address.to_string();
        proxy.create_proxy(&name, self.proxy_port(node), &upstream).await
    }

    /// Start `node` on its data (creating the data directories if missing).
    async fn start_node(&self, node: usize) -> Result<()> {
        let own: Vec<SocketAddr> = self.own_addresses(node).iter().map(|p| p.address).collect();
        if let Some(&taken) = process::wait_addresses_free(&own, PORTS_RELEASE_WAIT).await.first() {
            return Err(ClusterError::PortTaken {
                port: taken.port(),
                needed_by: format!("{} node {node} on {taken}", self.name()),
            });
        }
        for dir in self.recipe.data_dirs(node) {
            fs::create_dir_all(&dir).map_err(ClusterError::io(format!("creating {}", dir.display())))?;
        }
        for (path, contents) in self.recipe.files(node) {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(ClusterError::io(format!("creating {}", parent.display())))?;
            }
            fs::write(&path, contents).map_err(ClusterError::io(format!("writing {}", path.display())))?;
        }
        // The namespace first: a recipe may start helpers in it (RabbitMQ's epmd).
        let namespace = self.hosts().netns(node);
        if namespace.is_some() {
            netns::ensure(self.proxy_port(node))?;
        }
        self.recipe.prepare_start(node).await?;
        self.node_process(node)
            .spawn_in(self.recipe.command(node), namespace.as_deref())?;
        Ok(())
    }

    /// Poll `node` until it answers and sees `members`; fails early if its process exits.
    async fn wait_ready(&self, node: usize, members: &[usize]) -> Result<String> {
        self.wait_ready_within(node, members, self.recipe.ready_timeout()).await
    }

    /// [`Self::wait_ready`] with a timeout of its own.
    async fn wait_ready_within(&self, node: usize, members: &[usize], timeout: Duration) -> Result<String> {
        let started = Instant::now();
        let proc = self.node_process(node);
        loop {
            if proc.pid().is_none() {
                return Err(self.not_ready(node, started, "the node process exited".into()));
            }
            // No probe outlasts the timeout by much: a stuck node must be told apart in time.
            let limit = PROBE_LIMIT.min(timeout.saturating_sub(started.elapsed()).max(Duration::from_secs(1)));
            let step = match tokio::time::timeout(limit, self.recipe.probe(node, members)).await {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(e)) => e,
                Err(_) => format!("a readiness probe took more than {} s", limit.as_secs()),
            };
            if started.elapsed() >= timeout {
                return Err(self.not_ready(node, started, step));
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    fn not_ready(&self, node: usize, started: Instant, step: String) -> ClusterError {
        ClusterError::NotReady {
            broker: self.name(),
            node,
            seconds: started.elapsed().as_secs(),
            step,
            log_tail: self.node_process(node).log_tail(30),
        }
    }

    /// Stop nodes at once: with a quorum, nodes stopped one after another would each wait for
    /// the ones already gone. Whatever of a node's process group outlives it is killed too.
    async fn stop_nodes(&self, nodes: &[usize]) -> Result<()> {
        let grace = self.recipe.stop_grace();
        let stops: Vec<_> = nodes
            .iter()
            .map(|&node| {
                let proc = self.node_process(node);
                tokio::task::spawn_blocking(move || {
                    let group = proc.pid();
                    let stopped = proc.stop(grace);
                    if let Some(pgid) = group {
                        // The group id stays reserved while any member lives: this cannot hit a stranger.
                        let _ = killpg(Pid::from_raw(pgid as i32), Signal::SIGKILL);
                    }
                    stopped
                })
            })
            .collect();
        let mut first_error = None;
        for stop in stops {
            let result = stop
                .await
                .map_err(|e| ClusterError::Other(format!("stopping a {} node panicked: {e}", self.name())))
                .and_then(|r| r);
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Bring back the recorded cluster on its data.
    async fn revive(&self) -> Result<()> {
        let proxy = toxiproxy::ensure_running(&self.home).await?;
        let existing = proxy.proxies().await?;
        let mut started = Vec::new();
        let brought_back = async {
            for node in self.all_nodes() {
                self.ensure_proxy(&proxy, &existing, node).await?;
                let proc = self.node_process(node);
                if proc.is_paused() {
                    proc.resume()?;
                } else if proc.pid().is_none() {
                    started.push(node);
                    self.start_node(node).await?;
                }
            }
            for node in self.all_nodes() {
                self.wait_ready(node, &self.all_nodes()).await?;
            }
            Ok(())
        };
        let result = brought_back.await;
        if result.is_err() {
            let _ = self.stop_nodes(&started).await;
        }
        result
    }

    /// Remove what an earlier cluster of this broker left (nothing of it runs).
    async fn clear_leftovers(&self) -> Result<()> {
        let every: Vec<usize> = (0..self.max_nodes()).collect();
        self.stop_nodes(&every).await?;
        self.recipe.after_down().await?;
        self.remove_namespaces()?;
        for node in every {
            let dir = self.home.node_dir(self.name(), node);
            if dir.exists() {
                fs::remove_dir_all(&dir).map_err(ClusterError::io(format!("removing {}", dir.display())))?;
            }
        }
        process::forget_nodes(&self.home, self.name());
        Ok(())
    }

    /// A new cluster: leftovers cleared, every port checked, nodes started, joined, ready.
    async fn start_fresh(&self) -> Result<()> {
        self.clear_leftovers().await?;
        let nodes = self.node_count();
        // The broker's own ports first (no Toxiproxy needed to check them) ...
        let mut own = self.addresses(nodes);
        own.drain(..nodes);
        ensure_free(&own)?;
        // ... then our stale proxies removed, and the proxies' ports checked.
        let proxy = toxiproxy::ensure_running(&self.home).await?;
        for node in 0..self.max_nodes() {
            proxy.delete_proxy(&self.proxy_name(node)).await?;
        }
        let proxies: Vec<(SocketAddr, String)> = self.addresses(nodes).into_iter().take(nodes).collect();
        if let Err(e) = ensure_free(&proxies) {
            let _ = toxiproxy::stop_if_unused(&self.home).await;
            return Err(e);
        }
        process::record_nodes(&self.home, self.name(), nodes)?;
        let settings = self.settings_file();
        fs::write(&settings, &self.shape.server_settings)
            .map_err(ClusterError::io(format!("writing {}", settings.display())))?;
        let network = self.network_file();
        let recorded = serde_json::to_string(&self.shape.network).unwrap_or_default();
        fs::write(&network, recorded).map_err(ClusterError::io(format!("writing {}", network.display())))?;
        let version = self.home.run_dir(self.name()).join("version");
        fs::write(&version, &self.shape.version).map_err(ClusterError::io(format!("writing {}", version.display())))?;
        if self.shape.network == NodeNetwork::Namespaces {
            netns::capability().map_err(ClusterError::Other)?;
            for node in self.all_nodes() {
                netns::create(self.proxy_port(node))?;
            }
        }
        let started = async {
            self.recipe.prepare_cluster().await?;
            for node in self.all_nodes() {
                self.ensure_proxy(&proxy, &[], node).await?;
                self.start_node(node).await?;
            }
            for node in self.all_nodes() {
                self.wait_ready(node, &[node]).await?;
            }
            if nodes > 1 {
                let formed = Instant::now();
                self.recipe
                    .form_cluster()
                    .await
                    .map_err(|step| self.not_ready(0, formed, step))?;
                for node in self.all_nodes() {
                    self.wait_ready(node, &self.all_nodes()).await?;
                }
            }
            Ok(())
        };
        if let Err(e) = started.await {
            let _ = self.down().await;
            return Err(e);
        }
        Ok(())
    }
}

/// The network `broker`'s cluster in `home` was started on (none recorded: loopback).
/// The version `broker`'s cluster in `home` was last started with, if one was recorded.
pub fn recorded_version(home: &Home, broker: &str) -> Option<String> {
    fs::read_to_string(home.run_dir(broker).join("version"))
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

pub fn recorded_network(home: &Home, broker: &str) -> NodeNetwork {
    fs::read_to_string(home.run_dir(broker).join("network.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// [`ClusterError::PortTaken`] for the first address something holds.
fn ensure_free(addresses: &[(SocketAddr, String)]) -> Result<()> {
    match addresses.iter().find(|(a, _)| process::address_taken(*a)) {
        Some((address, what)) => Err(ClusterError::PortTaken {
            port: address.port(),
            needed_by: format!("{what} on {address}"),
        }),
        None => Ok(()),
    }
}

#[async_trait]
impl Cluster for LocalCluster {
    fn broker(&self) -> &'static str {
        self.name()
    }

    fn nodes(&self) -> usize {
        self.node_count()
    }

    fn network(&self) -> NodeNetwork {
        self.shape.network
    }

    async fn partition(&self, grudge: &Grudge, traffic: Traffic) -> Result<()> {
        if self.shape.network != NodeNetwork::Namespaces {
            return Err(ClusterError::NoPartitions { broker: self.name() });
        }
        let hosts = self.hosts();
        for node in self.all_nodes() {
            self.check_node(node)?;
            let to_ports: Vec<u16> = match traffic {
                Traffic::All => Vec::new(),
                Traffic::Replication => {
                    let ports: Vec<u16> = self
                        .recipe
                        .ports(node)
                        .iter()
                        .filter(|p| p.role == PortRole::Peer)
                        .map(|p| p.address.port())
                        .collect();
                    // Every port would be the wrong fault: refuse rather than cut more.
                    if ports.is_empty() || self.recipe.ports(node).iter().all(|p| p.role != PortRole::Controller) {
                        return Err(ClusterError::Other(format!(
                            "{} has no replication port apart from its consensus traffic, so a replication-only partition cannot be made; use another partition shape",
                            self.name()
                        )));
                    }
                    ports
                }
            };
            let from: Vec<std::net::Ipv4Addr> = grudge
                .0
                .get(&node)
                .map(|peers| {
                    peers
                        .iter()
                        .filter(|&&p| p < self.node_count())
                        .map(|&p| hosts.ip(p))
                        .collect()
                })
                .unwrap_or_default();
            netns::drop_from(self.proxy_port(node), &from, &to_ports)?;
        }
        Ok(())
    }

    /// Every node's namespace that exists is healed, whatever network this handle was opened
    /// for: a dead partitioned run's cluster must heal from any later command.
    async fn heal_partitions(&self) -> Result<()> {
        let mut first_error = None;
        for node in self.all_nodes() {
            if let Err(e) = netns::drop_from(self.proxy_port(node), &[], &[]) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn up(&self) -> Result<()> {
        self.recipe.install()?;
        let nodes = self.node_count();
        let running: Vec<usize> = (0..self.max_nodes())
            .filter(|&n| self.node_process(n).pid().is_some())
            .collect();
        let recorded = process::recorded_nodes(&self.home, self.name());
        if !running.is_empty() && recorded != Some(nodes) {
            return Err(ClusterError::AlreadyUp {
                broker: self.name(),
                nodes: recorded.unwrap_or(running.len()),
            });
        }
        let same_settings = self.recorded_settings() == self.shape.server_settings
            && self.recorded_network() == self.shape.network
            && recorded_version(&self.home, self.name()).unwrap_or_default() == self.shape.version;
        if !running.is_empty() && !same_settings {
            return Err(ClusterError::OtherSettings { broker: self.name() });
        }
        let has_data = (0..nodes).all(|n| self.recipe.has_data(n));
        if recorded == Some(nodes) && same_settings && (!running.is_empty() || has_data) {
            return self.revive().await;
        }
        self.start_fresh().await
    }

    async fn down(&self) -> Result<()> {
        let every: Vec<usize> = (0..self.max_nodes()).collect();
        self.stop_nodes(&every).await?;
        let proxy = Toxiproxy::default();
        if proxy.is_up().await {
            for &node in &every {
                proxy.delete_proxy(&self.proxy_name(node)).await?;
            }
        }
        self.recipe.after_down().await?;
        self.remove_namespaces()?;
        let _ = fs::remove_file(self.network_file());
        toxiproxy::stop_if_unused(&self.home).await?;
        let addresses: Vec<SocketAddr> = self.addresses(self.max_nodes()).into_iter().map(|(a, _)| a).collect();
        if let Some(&taken) = process::wait_addresses_free(&addresses, DOWN_PORTS_WAIT).await.first() {
            return Err(ClusterError::PortTaken {
                port: taken.port(),
                needed_by: format!("{} (still held on {taken} after down)", self.name()),
            });
        }
        for node in every {
            for dir in self.recipe.data_dirs(node) {
                let _ = fs::remove_dir_all(dir);
            }
        }
        process::forget_nodes(&self.home, self.name());
        Ok(())
    }

    async fn status(&self) -> Result<Vec<NodeStatus>> {
        let mut statuses = Vec::new();
        for node in self.all_nodes() {
            let probe = async {
                tokio::time::timeout(PROBE_LIMIT, self.recipe.probe(node, &[node]))
                    .await
                    .unwrap_or_else(|_| Err(format!("no answer within {} s", PROBE_LIMIT.as_secs())))
            };
            let mut status = self.node_process(node).status(node, probe).await;
            if status.pid.is_none() && !self.recipe.installed() {
                status.detail = format!("not installed; run `ackcheck cluster up {}`", self.name());
            }
            statuses.push(status);
        }
        Ok(statuses)
    }

    fn endpoints(&self) -> Vec<NodeEndpoint> {
        self.all_nodes()
            .into_iter()
            .map(|node| NodeEndpoint {
                node,
                client: self.proxy_address(node),
                direct: self
                    .recipe
                    .direct(node)
                    .unwrap_or_else(|| self.client_port(node).map_or(self.proxy_address(node), |p| p.address)),
                proxy: self.proxy_name(node),
                url: self
                    .recipe
                    .url(node)
                    .unwrap_or_else(|| self.proxy_address(node).to_string()),
            })
            .collect()
    }

    fn node_process(&self, node: usize) -> NodeProcess {
        NodeProcess::in_dir(self.home.node_dir(self.name(), node))
    }

    async fn leader(&self, dest: &str) -> Option<usize> {
        self.recipe.leader(dest, &self.live_nodes()).await
    }

    async fn coordinator(&self, key: &str) -> Option<usize> {
        self.recipe.coordinator(key, &self.live_nodes()).await
    }

    async fn controller(&self) -> Option<usize> {
        self.recipe.controller(&self.live_nodes()).await
    }

    async fn restart(&self, node: usize) -> Result<()> {
        self.check_node(node)?;
        if process::recorded_nodes(&self.home, self.name()).is_none() {
            return Err(ClusterError::NotUp { broker: self.name() });
        }
        self.recipe.install()?;
        // The proxy (or Toxiproxy itself) may be gone too: clients need it as much as the node.
        let proxy = toxiproxy::ensure_running(&self.home).await?;
        self.ensure_proxy(&proxy, &proxy.proxies().await?, node).await?;
        let proc = self.node_process(node);
        let mut started_again = false;
        if proc.is_paused() {
            proc.resume()?;
        } else if proc.pid().is_none() {
            self.start_node(node).await?;
            started_again = true;
        }
        let mut members = self.live_nodes();
        if !members.contains(&node) {
            members.push(node);
        }
        if let Some(limit) = self.recipe.stuck_restart_after().filter(|_| started_again) {
            match self.wait_ready_within(node, &members, limit).await {
                Ok(_) => return Ok(()),
                Err(e) => {
                    tracing::warn!(
                        "{} node {node} was not ready {} s after its restart ({e}); killing it and starting it once more",
                        self.name(),
                        limit.as_secs()
                    );
                    proc.kill()?;
                    self.start_node(node).await?;
                }
            }
        }
        self.wait_ready(node, &members).await.map(|_| ())
    }
}
