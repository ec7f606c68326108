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

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use async_trait::async_trait;

use super::KIND;
use crate::nodes::process;
use crate::nodes::{ClusterError, Home, NodeHosts, NodePort, NodeRecipe, PortRole, Result};

/// The pinned nats-server release (a Go module version).
pub const VERSION: &str = "v2.12.15";
const MODULE: &str = "github.com/nats-io/nats-server/v2";
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

/// NATS's nodes, as the one local lifecycle (`crate::nodes::LocalCluster`) runs them.
pub struct NatsNodes {
    home: Home,
    nodes: usize,
    /// Where each node listens (loopback, or its own network namespace).
    hosts: NodeHosts,
    http: reqwest::Client,
}

impl NatsNodes {
    pub fn new(home: Home, nodes: usize, hosts: NodeHosts) -> NatsNodes {
        // Falling back to the default client only loses the timeout: probes are still bounded
        // by PROBE_TIMEOUT around them.
        let http = reqwest::Client::builder()
            .timeout(PROBE_TIMEOUT)
            .no_proxy()
            .build()
            .unwrap_or_default();
        NatsNodes {
            home,
            nodes,
            hosts,
            http,
        }
    }

    fn binary(&self) -> PathBuf {
        self.home
            .install_dir(&format!("nats-server-{VERSION}"))
            .join("nats-server")
    }

    fn node_dir(&self, node: usize) -> PathBuf {
        self.home.node_dir(KIND.name(), node)
    }

    /// The config of one node, in NATS's config syntax (strings quoted: paths may hold spaces).
    pub fn config_text(&self, node: usize) -> String {
        let store = self.node_dir(node).join("jetstream");
        let mut conf = format!(
            "server_name: \"{name}\"\n\
             listen: \"{ip}:{client}\"\n\
             # Clients must reach this node only through its proxy.\n\
             client_advertise: \"127.0.0.1:{proxy}\"\n\
             http: \"{ip}:{http}\"\n\
             jetstream {{\n  store_dir: \"{store}\"\n  max_memory_store: 256MB\n  max_file_store: 4GB\n}}\n",
            name = server_name(node),
            ip = self.hosts.ip(node),
            client = KIND.port(node, CLIENT_SLOT),
            proxy = KIND.port(node, 0),
            http = KIND.port(node, HTTP_SLOT),
            store = store.display(),
        );
        if self.nodes > 1 {
            let routes: Vec<String> = (0..self.nodes)
                .filter(|&i| i != node)
                .map(|i| format!("\"nats-route://{}:{}\"", self.hosts.ip(i), KIND.port(i, ROUTE_SLOT)))
                .collect();
            conf.push_str(&format!(
                "cluster {{\n  name: \"ackcheck\"\n  listen: \"{ip}:{route}\"\n  \
                 # No peer client addresses in INFO: they would lead clients past the proxies.\n  \
                 no_advertise: true\n  routes: [{routes}]\n}}\n",
                ip = self.hosts.ip(node),
                route = KIND.port(node, ROUTE_SLOT),
                routes = routes.join(", "),
            ));
        }
        conf
    }

    /// `/healthz` of the node's monitoring port: 200 once JetStream is up and, in a cluster,
    /// in contact with a meta leader and current on its streams.
    async fn healthz(&self, node: usize) -> Result<(), String> {
        let url = format!("http://{}:{}/healthz", self.hosts.ip(node), KIND.port(node, HTTP_SLOT));
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
}

#[async_trait]
impl NodeRecipe for NatsNodes {
    /// `go install` nats-server into `install/nats-server-<version>` unless it is there.
    fn install(&self) -> Result<()> {
        let binary = self.binary();
        if binary.exists() {
            return Ok(());
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
        Ok(())
    }

    fn installed(&self) -> bool {
        self.binary().exists()
    }

    fn ports(&self, node: usize) -> Vec<NodePort> {
        let ip = self.hosts.ip(node);
        vec![
            NodePort::at(PortRole::Client, "client port", ip, KIND.port(node, CLIENT_SLOT)),
            NodePort::at(PortRole::Peer, "cluster routes", ip, KIND.port(node, ROUTE_SLOT)),
            NodePort::at(PortRole::Admin, "monitoring port", ip, KIND.port(node, HTTP_SLOT)),
        ]
    }

    fn data_dirs(&self, node: usize) -> Vec<PathBuf> {
        vec![self.node_dir(node).join("jetstream")]
    }

    /// JetStream recovers its streams from the store once the server has written one.
    fn has_data(&self, node: usize) -> bool {
        self.node_dir(node).join("jetstream").join("jetstream").is_dir()
    }

    fn files(&self, node: usize) -> Vec<(PathBuf, String)> {
        vec![(self.node_dir(node).join("nats.conf"), self.config_text(node))]
    }

    fn command(&self, node: usize) -> Command {
        let dir = self.node_dir(node);
        let mut cmd = Command::new(self.binary());
        cmd.arg("-c").arg(dir.join("nats.conf")).current_dir(&dir);
        cmd
    }

    /// Healthy (`/healthz`) and a JetStream round trip through the proxy. The routes between
    /// servers are not checked: `/healthz` already waits for the meta leader of a cluster.
    async fn probe(&self, node: usize, _members: &[usize]) -> std::result::Result<String, String> {
        self.healthz(node).await.map_err(|e| format!("health check: {e}"))?;
        let address = format!("127.0.0.1:{}", KIND.port(node, 0));
        let server = round_trip(&address)
            .await
            .map_err(|e| format!("JetStream round trip through the proxy on {address}: {e}"))?;
        Ok(format!("JetStream round trip through {address} ok (server {server})"))
    }

    fn ready_timeout(&self) -> Duration {
        BOOT_TIMEOUT
    }

    fn stop_grace(&self) -> Duration {
        STOP_GRACE
    }

    fn url(&self, node: usize) -> Option<String> {
        Some(format!("nats://127.0.0.1:{}", KIND.port(node, 0)))
    }

    /// The server that leads the stream of `dest` (its Raft group's leader), asked of the first
    /// live node on its direct port: the nemesis may have cut the proxies. `None` for a single
    /// node (no Raft group), an unknown stream, or when no node answers.
    async fn leader(&self, dest: &str, live: &[usize]) -> Option<usize> {
        let stream = super::client::stream_name(dest);
        for &node in live {
            let address = format!("{}:{}", self.hosts.ip(node), KIND.port(node, CLIENT_SLOT));
            let asked = tokio::time::timeout(PROBE_TIMEOUT, stream_leader(&address, &stream)).await;
            let Ok(Ok(leader)) = asked else { continue };
            return leader.and_then(|name| (0..self.nodes).find(|&i| server_name(i) == name));
        }
        None
    }
}

/// Connect to `address` alone (no discovered servers, no reconnects), ask JetStream for the
/// account info and return the name of the server that answered.
pub(super) async fn round_trip(address: &str) -> Result<String, String> {
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
        let hosts = NodeHosts::loopback(KIND.port_block());
        let nodes = NatsNodes::new(Home::at("/tmp/ackcheck-test-home"), 3, hosts);
        let conf = nodes.config_text(1);
        assert!(conf.contains("server_name: \"ackcheck-nats1\""), "{conf}");
        assert!(conf.contains("listen: \"127.0.0.1:19411\""), "{conf}");
        assert!(conf.contains("client_advertise: \"127.0.0.1:19410\""), "{conf}");
        assert!(conf.contains("http: \"127.0.0.1:19413\""), "{conf}");
        assert!(conf.contains("no_advertise: true"), "{conf}");
        assert!(
            conf.contains("routes: [\"nats-route://127.0.0.1:19402\", \"nats-route://127.0.0.1:19422\"]"),
            "{conf}"
        );
        let single = NatsNodes::new(Home::at("/tmp/ackcheck-test-home"), 1, hosts).config_text(0);
        let spaced = NodeHosts {
            network: crate::nodes::NodeNetwork::Namespaces,
            ..hosts
        };
        let apart = NatsNodes::new(Home::at("/tmp/ackcheck-test-home"), 3, spaced).config_text(1);
        assert!(apart.contains("listen: \"198.18.7.151:19411\""), "{apart}");
        assert!(apart.contains("client_advertise: \"127.0.0.1:19410\""), "{apart}");
        assert!(!single.contains("cluster {"), "{single}");
        assert!(single.contains("store_dir: \"/tmp/ackcheck-test-home/run/nats/node0/jetstream\""));
    }
}
