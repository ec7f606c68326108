//! NATS with JetStream (nats-server built with `go install` from the Go module proxy), run as
//! plain processes.
//!
//! Every node has a config file in its node directory (`nats.conf`): a client port, a
//! monitoring port (`/healthz`), JetStream with file storage in `node<i>/jetstream`, and a
//! server name `ackcheck-nats<i>` (JetStream's Raft groups and the stream's `cluster.leader`
//! name servers by it). Three nodes form one cluster over routes on their own ports.
//!
//! The proxy-bypass problem: a NATS server tells its clients (INFO `connect_urls`) the client
//! addresses of the other servers of its cluster, and clients reconnect to those directly,
//! past Toxiproxy. So the cluster block has `no_advertise: true` (no peer addresses in INFO),
//! every node advertises its own proxy address (`client_advertise`), and the client adapter
//! connects with `ignore_discovered_servers()` and the proxy addresses only. Route traffic
//! between the servers is not proxied: client faults hit client connections, as with the
//! other brokers.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::KIND;
use crate::nodes::process::{self, NodeProcess};
use crate::nodes::toxiproxy::{self, Toxiproxy};
use crate::nodes::{Cluster, ClusterError, Home, NodeEndpoint, NodeStatus, Result};

/// The pinned nats-server release (a Go module version).
pub const VERSION: &str = "v2.12.15";
const MODULE: &str = "github.com/nats-io/nats-server/v2";
/// The largest cluster we run; `down` cleans up this many nodes whatever size was asked.
const MAX_NODES: usize = 3;
const CLIENT_SLOT: u16 = 1;
const ROUTE_SLOT: u16 = 2;
const HTTP_SLOT: u16 = 3;
/// nats-server boots in well under a second; three nodes electing a JetStream meta leader on
/// two busy cores take a few seconds more. Restarted nodes may need to catch up their streams.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// SIGTERM makes nats-server shut down (lame duck is SIGUSR2); it flushes JetStream quickly.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// One readiness or leader probe may take this long.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The `server_name` of node `node`.
pub fn server_name(node: usize) -> String {
    format!("ackcheck-nats{node}")
}

pub struct NatsCluster {
    home: Home,
    nodes: usize,
    http: reqwest::Client,
}

impl NatsCluster {
    pub fn new(home: Home, nodes: usize) -> NatsCluster {
        // Falling back to the default client only loses the timeout: probes are still bounded
        // by PROBE_TIMEOUT around them.
        let http = reqwest::Client::builder()
            .timeout(PROBE_TIMEOUT)
            .no_proxy()
            .build()
            .unwrap_or_default();
        NatsCluster { home, nodes, http }
    }

    /// The ports the servers themselves hold (client, routes, monitoring), up to the largest cluster.
    fn broker_ports() -> Vec<u16> {
        (0..MAX_NODES)
            .flat_map(|i| {
                [
                    KIND.port(i, CLIENT_SLOT),
                    KIND.port(i, ROUTE_SLOT),
                    KIND.port(i, HTTP_SLOT),
                ]
            })
            .collect()
    }

    fn node_ports(node: usize) -> [u16; 3] {
        [
            KIND.port(node, CLIENT_SLOT),
            KIND.port(node, ROUTE_SLOT),
            KIND.port(node, HTTP_SLOT),
        ]
    }

    /// Every port this cluster uses (proxies included), for checks at `up` and `down`.
    pub fn ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = (0..MAX_NODES).map(|i| KIND.port(i, 0)).collect();
        ports.extend(Self::broker_ports());
        ports
    }

    fn proxy_name(node: usize) -> String {
        format!("nats-node{node}")
    }

    fn url(node: usize) -> String {
        format!("nats://127.0.0.1:{}", KIND.port(node, 0))
    }

    fn binary(&self) -> PathBuf {
        self.home
            .install_dir(&format!("nats-server-{VERSION}"))
            .join("nats-server")
    }

    /// `go install` nats-server into `install/nats-server-<version>` unless it is there.
    fn ensure_installed(&self) -> Result<PathBuf> {
        let binary = self.binary();
        if binary.exists() {
            return Ok(binary);
        }
        let gobin = self.home.install_dir(&format!("nats-server-{VERSION}"));
        process::go_install("nats-server", MODULE, VERSION, &gobin)?;
        if !binary.exists() {
            return Err(ClusterError::Install {
                what: "nats-server".into(),
                step: "locating the binary".into(),
                reason: format!("go install finished but {} is missing", binary.display()),
                output: String::new(),
            });
        }
        Ok(binary)
    }

    fn not_ready(&self, node: usize, seconds: u64, step: impl Into<String>) -> ClusterError {
        ClusterError::NotReady {
            broker: KIND.name(),
            node,
            seconds,
            step: step.into(),
            log_tail: self.node_process(node).log_tail(30),
        }
    }

    /// The config of one node, in NATS's config syntax (strings quoted: paths may hold spaces).
    pub fn config_text(&self, node: usize) -> String {
        let dir = self.home.node_dir(KIND.name(), node);
        let store = dir.join("jetstream");
        let mut conf = format!(
            "server_name: \"{name}\"\n\
             listen: \"127.0.0.1:{client}\"\n\
             # Clients must reach this node only through its proxy.\n\
             client_advertise: \"127.0.0.1:{proxy}\"\n\
             http: \"127.0.0.1:{http}\"\n\
             jetstream {{\n  store_dir: \"{store}\"\n  max_memory_store: 256MB\n  max_file_store: 4GB\n}}\n",
            name = server_name(node),
            client = KIND.port(node, CLIENT_SLOT),
            proxy = KIND.port(node, 0),
            http = KIND.port(node, HTTP_SLOT),
            store = store.display(),
        );
        if self.nodes > 1 {
            let routes: Vec<String> = (0..self.nodes)
                .filter(|&i| i != node)
                .map(|i| format!("\"nats-route://127.0.0.1:{}\"", KIND.port(i, ROUTE_SLOT)))
                .collect();
            conf.push_str(&format!(
                "cluster {{\n  name: \"ackcheck\"\n  listen: \"127.0.0.1:{route}\"\n  \
                 # No peer client addresses in INFO: they would lead clients past the proxies.\n  \
                 no_advertise: true\n  routes: [{routes}]\n}}\n",
                route = KIND.port(node, ROUTE_SLOT),
                routes = routes.join(", "),
            ));
        }
        conf
    }

    fn spawn_node(&self, binary: &PathBuf, node: usize) -> Result<u32> {
        process::ensure_ports_free(&Self::node_ports(node), &format!("NATS node {node}"))?;
        let dir = self.home.node_dir(KIND.name(), node);
        fs::create_dir_all(dir.join("jetstream")).map_err(ClusterError::io(format!("creating {}", dir.display())))?;
        let conf = dir.join("nats.conf");
        fs::write(&conf, self.config_text(node)).map_err(ClusterError::io("writing nats.conf"))?;
        let mut cmd = Command::new(binary);
        cmd.arg("-c").arg(&conf).current_dir(&dir);
        self.node_process(node).spawn(cmd)
    }

    /// `/healthz` of the node's monitoring port: 200 once JetStream is up and, in a cluster,
    /// in contact with a meta leader and current on its streams.
    async fn healthz(&self, node: usize) -> Result<(), String> {
        let url = format!("http://127.0.0.1:{}/healthz", KIND.port(node, HTTP_SLOT));
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("GET {url}: HTTP {status}: {}", body.trim()))
        }
    }

    /// Wait until the node is healthy and answers a JetStream round trip through its proxy.
    /// Fails early if the process exits.
    async fn wait_node_ready(&self, node: usize, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        let proc = self.node_process(node);
        loop {
            if proc.pid().is_none() {
                return Err(self.not_ready(node, started.elapsed().as_secs(), "the node process exited"));
            }
            let step = match self.healthz(node).await {
                Err(e) => format!("health check: {e}"),
                Ok(()) => match round_trip(&format!("127.0.0.1:{}", KIND.port(node, 0))).await {
                    Ok(_) => return Ok(()),
                    Err(e) => format!(
                        "JetStream round trip through the proxy on port {}: {e}",
                        KIND.port(node, 0)
                    ),
                },
            };
            if started.elapsed() >= timeout {
                return Err(self.not_ready(node, timeout.as_secs(), step));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Create this node's proxy unless it exists (replacing it would cut live connections).
    async fn ensure_proxy(&self, proxy: &Toxiproxy, node: usize) -> Result<()> {
        if proxy.proxies().await?.contains(&Self::proxy_name(node)) {
            return Ok(());
        }
        proxy
            .create_proxy(
                &Self::proxy_name(node),
                KIND.port(node, 0),
                &format!("127.0.0.1:{}", KIND.port(node, CLIENT_SLOT)),
            )
            .await
    }

    async fn start_fresh(&self, proxy: &Toxiproxy, binary: &PathBuf) -> Result<()> {
        let run_dir = self.home.run_dir(KIND.name());
        if run_dir.exists() {
            fs::remove_dir_all(&run_dir)
                .map_err(ClusterError::io(format!("removing old state in {}", run_dir.display())))?;
        }
        process::record_nodes(&self.home, KIND.name(), self.nodes)?;
        for node in 0..self.nodes {
            self.ensure_proxy(proxy, node).await?;
            self.spawn_node(binary, node)?;
        }
        for node in 0..self.nodes {
            self.wait_node_ready(node, BOOT_TIMEOUT).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Cluster for NatsCluster {
    fn broker(&self) -> &'static str {
        KIND.name()
    }

    fn nodes(&self) -> usize {
        self.nodes
    }

    async fn up(&self) -> Result<()> {
        let binary = self.ensure_installed()?;
        if let Some(recorded) = process::recorded_nodes(&self.home, KIND.name()) {
            if recorded != self.nodes {
                return Err(ClusterError::AlreadyUp {
                    broker: KIND.name(),
                    nodes: recorded,
                });
            }
            if (0..self.nodes).any(|n| self.node_process(n).pid().is_some()) {
                // Already up: bring back any killed node and check that all answer.
                for node in 0..self.nodes {
                    self.restart(node).await?;
                }
                return Ok(());
            }
            self.down().await?; // stale record: nothing of it runs any more
        }
        // As for the other brokers: check the servers' ports first, then drop stale proxies of
        // ours, then check every port, so that a clash leaves nothing half-started.
        process::ensure_ports_free(&Self::broker_ports(), "NATS")?;
        let proxy = toxiproxy::ensure_running(&self.home).await?;
        for node in 0..MAX_NODES {
            proxy.delete_proxy(&Self::proxy_name(node)).await?;
        }
        if let Err(e) = process::ensure_ports_free(&self.ports(), "NATS") {
            let _ = toxiproxy::stop_if_unused(&self.home).await;
            return Err(e);
        }
        if let Err(e) = self.start_fresh(&proxy, &binary).await {
            let _ = self.down().await;
            return Err(e);
        }
        Ok(())
    }

    async fn down(&self) -> Result<()> {
        let stops: Vec<_> = (0..MAX_NODES)
            .map(|node| {
                let proc = self.node_process(node);
                tokio::task::spawn_blocking(move || proc.stop(STOP_GRACE))
            })
            .collect();
        for stop in stops {
            stop.await
                .map_err(|e| ClusterError::Other(format!("stopping a NATS node panicked: {e}")))??;
        }
        let proxy = Toxiproxy::default();
        if proxy.is_up().await {
            for node in 0..MAX_NODES {
                proxy.delete_proxy(&Self::proxy_name(node)).await?;
            }
        }
        toxiproxy::stop_if_unused(&self.home).await?;
        let taken = process::wait_ports_free(&self.ports(), Duration::from_secs(20)).await;
        if let Some(&port) = taken.first() {
            return Err(ClusterError::PortTaken {
                port,
                needed_by: "NATS (still held after down)".into(),
            });
        }
        process::forget_nodes(&self.home, KIND.name());
        Ok(())
    }

    async fn status(&self) -> Result<Vec<NodeStatus>> {
        let mut statuses = Vec::new();
        for node in 0..self.nodes {
            let answered = async {
                self.healthz(node).await?;
                let address = format!("127.0.0.1:{}", KIND.port(node, 0));
                let server = round_trip(&address).await?;
                Ok(format!("JetStream round trip through {address} ok (server {server})"))
            };
            statuses.push(self.node_process(node).status(node, answered).await);
        }
        Ok(statuses)
    }

    fn endpoints(&self) -> Vec<NodeEndpoint> {
        (0..self.nodes)
            .map(|node| NodeEndpoint {
                node,
                client: ([127, 0, 0, 1], KIND.port(node, 0)).into(),
                direct: ([127, 0, 0, 1], KIND.port(node, CLIENT_SLOT)).into(),
                proxy: Self::proxy_name(node),
                url: Self::url(node),
            })
            .collect()
    }

    fn node_process(&self, node: usize) -> NodeProcess {
        NodeProcess::in_dir(self.home.node_dir(KIND.name(), node))
    }

    /// The server that leads the stream of `dest` (its Raft group's leader), asked of the first
    /// running node on its direct port: the nemesis may have cut the proxies. `None` for a
    /// single node (no Raft group), an unknown stream, or when no node answers.
    async fn leader(&self, dest: &str) -> Option<usize> {
        let stream = super::client::stream_name(dest);
        for node in 0..self.nodes {
            let proc = self.node_process(node);
            if proc.pid().is_none() || proc.is_paused() {
                continue;
            }
            let address = format!("127.0.0.1:{}", KIND.port(node, CLIENT_SLOT));
            let asked = tokio::time::timeout(PROBE_TIMEOUT, stream_leader(&address, &stream)).await;
            let Ok(Ok(leader)) = asked else { continue };
            return leader.and_then(|name| (0..self.nodes).find(|&i| server_name(i) == name));
        }
        None
    }

    async fn restart(&self, node: usize) -> Result<()> {
        self.check_node(node)?;
        let binary = self.ensure_installed()?;
        if process::recorded_nodes(&self.home, KIND.name()).is_none() {
            return Err(ClusterError::NotUp { broker: KIND.name() });
        }
        // The proxy (or Toxiproxy itself) may be gone too: clients need it as much as the node.
        let proxy = toxiproxy::ensure_running(&self.home).await?;
        self.ensure_proxy(&proxy, node).await?;
        if self.node_process(node).pid().is_none() {
            // The same config and data directory: JetStream recovers its streams from the store.
            process::wait_ports_free(&Self::node_ports(node), Duration::from_secs(10)).await;
            self.spawn_node(&binary, node)?;
        }
        self.wait_node_ready(node, BOOT_TIMEOUT).await
    }
}

/// Connect to `address` alone (no discovered servers, no reconnects), ask JetStream for the
/// account info and return the name of the server that answered.
async fn round_trip(address: &str) -> Result<String, String> {
    let attempt = async {
        let client = probe_client(address).await?;
        let server = client.server_info().server_name.clone();
        let js = async_nats::jetstream::new(client.clone());
        let answer = js
            .query_account()
            .await
            .map_err(|e| format!("JetStream account info: {e}"));
        let _ = client.drain().await;
        answer.map(|_| server)
    };
    tokio::time::timeout(PROBE_TIMEOUT * 2, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", (PROBE_TIMEOUT * 2).as_secs())))
}

/// The `cluster.leader` of `stream` as the server at `address` reports it.
async fn stream_leader(address: &str, stream: &str) -> Result<Option<String>, String> {
    let client = probe_client(address).await?;
    let js = async_nats::jetstream::new(client.clone());
    let info = match js.get_stream(stream).await {
        Ok(s) => s.get_info().await.map_err(|e| format!("stream info of {stream}: {e}")),
        Err(e) => Err(format!("looking up the stream {stream}: {e}")),
    };
    let _ = client.drain().await;
    Ok(info?.cluster.and_then(|c| c.leader))
}

async fn probe_client(address: &str) -> Result<async_nats::Client, String> {
    async_nats::ConnectOptions::new()
        .name("ackcheck-probe")
        .ignore_discovered_servers()
        .max_reconnects(1)
        .connection_timeout(PROBE_TIMEOUT)
        .request_timeout(Some(PROBE_TIMEOUT))
        .connect(address)
        .await
        .map_err(|e| format!("connecting to {address}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_node_configs_route_to_the_peers_and_advertise_only_the_proxy() {
        let cluster = NatsCluster::new(Home::at("/tmp/ackcheck-test-home"), 3);
        let conf = cluster.config_text(1);
        assert!(conf.contains("server_name: \"ackcheck-nats1\""), "{conf}");
        assert!(conf.contains("listen: \"127.0.0.1:19411\""), "{conf}");
        assert!(conf.contains("client_advertise: \"127.0.0.1:19410\""), "{conf}");
        assert!(conf.contains("http: \"127.0.0.1:19413\""), "{conf}");
        assert!(conf.contains("no_advertise: true"), "{conf}");
        assert!(
            conf.contains("routes: [\"nats-route://127.0.0.1:19402\", \"nats-route://127.0.0.1:19422\"]"),
            "{conf}"
        );
        let single = NatsCluster::new(Home::at("/tmp/ackcheck-test-home"), 1).config_text(0);
        assert!(!single.contains("cluster {"), "{single}");
        assert!(single.contains("store_dir: \"/tmp/ackcheck-test-home/run/nats/node0/jetstream\""));
    }
}
