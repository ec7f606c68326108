//! Apache Kafka 4.x in KRaft mode, run from Maven Central jars.
//!
//! Install: a generated pom resolved with `mvn dependency:copy-dependencies` into
//! `install/kafka-<version>/lib` (the broker, `kafka-tools` for ProducerPerformance, and a log4j2
//! binding, which the jars do not ship), plus a log4j2 config. Every node is a combined
//! broker+controller (`process.roles=broker,controller`) with three listeners:
//!
//! - `CLIENT` (slot 1) advertises the node's Toxiproxy proxy (slot 0): Kafka clients reconnect to
//!   the *advertised* address, so advertising the direct port would let them bypass the proxy;
//! - `INTERNAL` (slot 2) for replication between brokers, direct;
//! - `CONTROLLER` (slot 3) for the KRaft quorum, direct.
//!
//! Storage is formatted once per node at the first start; `restart` keeps the data, `down`
//! deletes it (keeping the node logs), so the next `up` starts a fresh cluster.

use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use super::KIND;
use crate::nodes::maven;
use crate::nodes::process::{self, NodeProcess};
use crate::nodes::toxiproxy::{self, Toxiproxy};
use crate::nodes::{Cluster, ClusterError, Home, NodeEndpoint, NodeStatus, Result, CLIENT_PROXY_SLOT};

/// The pinned Kafka release (the jars `org.apache.kafka:kafka_2.13` and `kafka-tools`).
pub const VERSION: &str = "4.1.1";
const LOG4J_VERSION: &str = "2.25.3";
/// log4j-slf4j2-impl binds slf4j 2; Kafka's own pom brings slf4j-api 1.7, which would not find it.
const SLF4J_VERSION: &str = "2.0.17";

/// The KRaft cluster id every node is formatted with (base64 of "ackcheck-kafka-1"). All nodes of
/// a cluster must share it; since `down` deletes the data, one constant id serves every cluster.
const CLUSTER_ID: &str = "YWNrY2hlY2sta2Fma2EtMQ";

const CLIENT_SLOT: u16 = 1;
const INTERNAL_SLOT: u16 = 2;
const CONTROLLER_SLOT: u16 = 3;
/// The most nodes a Kafka cluster here can have: `down` and a fresh `up` clean up to this many.
const MAX_NODES: usize = 3;

const HEAP: [&str; 2] = ["-Xms256m", "-Xmx512m"];
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_GRACE: Duration = Duration::from_secs(15);

const LOG4J2_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by ackcheck: everything to stdout, which the node's log file collects. -->
<Configuration status="warn">
  <Appenders>
    <Console name="stdout" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Logger name="kafka.request.logger" level="warn"/>
    <Logger name="state.change.logger" level="warn"/>
    <!-- Each start dumps every config value several times; server.properties is beside the log. -->
    <Logger name="org.apache.kafka.common.config.AbstractConfig" level="warn"/>
    <Root level="info"><AppenderRef ref="stdout"/></Root>
  </Loggers>
</Configuration>
"#;

pub struct KafkaCluster {
    home: Home,
    nodes: usize,
}

impl KafkaCluster {
    pub fn new(home: Home, nodes: usize) -> KafkaCluster {
        KafkaCluster { home, nodes }
    }

    /// `host:port,...` of every node's proxy, for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        (0..self.nodes)
            .map(|i| client_addr(i).to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    fn install_dir(&self) -> PathBuf {
        self.home.install_dir(&format!("kafka-{VERSION}"))
    }

    /// Resolve the jars with Maven (cached) and write the logging config.
    fn install(&self) -> Result<PathBuf> {
        let dir = self.install_dir();
        maven::install_jars(&dir, &format!("Kafka {VERSION}"), &pom())?;
        // The logging config is ours, not Maven's: keep it current even in a cached install.
        let log4j = dir.join("log4j2.xml");
        if fs::read_to_string(&log4j).ok().as_deref() != Some(LOG4J2_XML) {
            fs::write(&log4j, LOG4J2_XML).map_err(ClusterError::io("writing the Kafka log4j2 config"))?;
        }
        Ok(dir)
    }

    /// `java <heap> -cp lib/* <main> <args>` with the install's log4j2 config.
    fn java(&self, install: &std::path::Path, heap: &[&str], main: &str) -> Command {
        let mut cmd = Command::new("java");
        cmd.args(heap)
            .arg("-XX:+ExitOnOutOfMemoryError")
            .arg("-Djava.awt.headless=true")
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                install.join("log4j2.xml").display()
            ))
            .arg("-cp")
            .arg(install.join("lib").join("*"))
            .arg(main);
        cmd
    }

    fn data_dir(&self, node: usize) -> PathBuf {
        self.home.node_dir(KIND.name(), node).join("data")
    }

    fn config_file(&self, node: usize) -> PathBuf {
        self.home.node_dir(KIND.name(), node).join("server.properties")
    }

    fn server_properties(&self, node: usize) -> String {
        let voters = (0..self.nodes)
            .map(|i| format!("{i}@127.0.0.1:{}", KIND.port(i, CONTROLLER_SLOT)))
            .collect::<Vec<_>>()
            .join(",");
        // One node cannot replicate: the internal topics must then accept a single replica, or
        // consumer groups and transactions fail. Three nodes: acks=all means 2 of 3 replicas.
        let (replicas, min_isr) = if self.nodes == 1 { (1, 1) } else { (3, 2) };
        let p = |slot| KIND.port(node, slot);
        format!(
            "# Written by ackcheck for node {node} of {nodes}.
process.roles=broker,controller
node.id={node}
controller.quorum.voters={voters}
listeners=CLIENT://127.0.0.1:{client},INTERNAL://127.0.0.1:{internal},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=CLIENT://127.0.0.1:{proxy},INTERNAL://127.0.0.1:{internal}
listener.security.protocol.map=CLIENT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=INTERNAL
controller.listener.names=CONTROLLER
log.dirs={data}
num.partitions=1
auto.create.topics.enable=true
unclean.leader.election.enable=false
default.replication.factor={replicas}
min.insync.replicas={min_isr}
offsets.topic.replication.factor={replicas}
transaction.state.log.replication.factor={replicas}
transaction.state.log.min.isr={min_isr}
share.coordinator.state.topic.replication.factor={replicas}
share.coordinator.state.topic.min.isr={min_isr}
# Fewer internal partitions than the default 50: less to create and load on a small machine.
offsets.topic.num.partitions=10
transaction.state.log.num.partitions=10
group.initial.rebalance.delay.ms=0
# A killed or paused node is fenced (its partitions and coordinators move) after this long
# without a heartbeat to the controller; Kafka's 9 s default kept 3-node runs without leaders
# for most of a 5 s fault and beyond. 4 s is still eight heartbeats.
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=500
",
            nodes = self.nodes,
            client = p(CLIENT_SLOT),
            internal = p(INTERNAL_SLOT),
            controller = p(CONTROLLER_SLOT),
            proxy = p(CLIENT_PROXY_SLOT),
            data = self.data_dir(node).display(),
        )
    }

    /// Start one node's JVM, formatting its storage first if it has none.
    async fn start_node(&self, install: &std::path::Path, node: usize) -> Result<u32> {
        // A JVM killed with SIGKILL can look dead (its main thread is a zombie) while its other
        // threads still hold the listeners for a moment: give the ports time to be released.
        let ports = node_ports(node);
        process::wait_ports_free(&ports[1..], Duration::from_secs(15)).await;
        process::ensure_ports_free(&ports[1..], &format!("kafka node {node}"))?;
        let config = self.config_file(node);
        fs::create_dir_all(self.data_dir(node)).map_err(ClusterError::io("creating the Kafka data directory"))?;
        fs::write(&config, self.server_properties(node))
            .map_err(ClusterError::io(format!("writing {}", config.display())))?;
        if !self.data_dir(node).join("meta.properties").is_file() {
            let mut format = self.java(install, &["-Xmx256m"], "kafka.tools.StorageTool");
            format
                .args(["format", "--cluster-id", CLUSTER_ID, "--config"])
                .arg(&config);
            process::run_step(&format!("Kafka {VERSION}"), "kafka.tools.StorageTool format", &mut format).map_err(|e| match e {
                ClusterError::Install { reason, output, .. } => ClusterError::Other(format!(
                    "formatting kafka node {node}'s storage failed ({reason}); if the install at {} is damaged, delete it so that `up` reinstalls it\n{output}",
                    install.display()
                )),
                other => other,
            })?;
        }
        let mut cmd = self.java(install, &HEAP, "kafka.Kafka");
        cmd.arg(&config);
        self.node_process(node).spawn(cmd)
    }

    /// Create the node's proxy unless it exists (re-creating would drop connections and toxics).
    async fn ensure_proxy(&self, proxy: &Toxiproxy, existing: &[String], node: usize) -> Result<()> {
        let name = proxy_name(node);
        if !existing.contains(&name) {
            let upstream = format!("127.0.0.1:{}", KIND.port(node, CLIENT_SLOT));
            proxy
                .create_proxy(&name, KIND.port(node, CLIENT_PROXY_SLOT), &upstream)
                .await?;
        }
        Ok(())
    }

    /// Wait until each of `nodes` answers a metadata request through its proxy that lists every
    /// broker in `expected`. Fails at once if a node's process exits.
    async fn wait_ready(&self, nodes: &[usize], expected: &[usize]) -> Result<()> {
        let started = Instant::now();
        let deadline = started + READY_TIMEOUT;
        for &node in nodes {
            let proc = self.node_process(node);
            loop {
                let err = match probe(node).await {
                    Ok(ids) => match expected.iter().find(|&&id| !ids.contains(&(id as i32))) {
                        None => break,
                        Some(missing) => {
                            format!("metadata through the proxy lists brokers {ids:?}, not yet broker {missing}")
                        }
                    },
                    Err(e) => e,
                };
                let dead = proc.pid().is_none();
                if dead || Instant::now() >= deadline {
                    let step = if dead { "the JVM exited".to_string() } else { err };
                    return Err(ClusterError::NotReady {
                        broker: KIND.name(),
                        node,
                        seconds: started.elapsed().as_secs(),
                        step,
                        log_tail: proc.log_tail(30),
                    });
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        Ok(())
    }

    /// Start this cluster's nodes that are not running (on their data, formatting only nodes that
    /// have none) and wait until all nodes are ready. On failure, stops the nodes it started.
    async fn start_missing(&self, install: &std::path::Path, proxy: &Toxiproxy) -> Result<()> {
        let existing = proxy.proxies().await?;
        let mut started = Vec::new();
        for node in 0..self.nodes {
            self.ensure_proxy(proxy, &existing, node).await?;
            if self.node_process(node).pid().is_none() {
                started.push(node);
                if let Err(e) = self.start_node(install, node).await {
                    self.stop_nodes(&started).await;
                    return Err(e);
                }
            }
        }
        let all: Vec<usize> = (0..self.nodes).collect();
        if let Err(e) = self.wait_ready(&all, &all).await {
            self.stop_nodes(&started).await;
            return Err(e);
        }
        Ok(())
    }

    /// Stop nodes in parallel (SIGTERM, then SIGKILL after the grace period): with a quorum of
    /// three, nodes stopped one after another would each wait for the ones already gone.
    async fn stop_nodes(&self, nodes: &[usize]) {
        let tasks: Vec<_> = nodes
            .iter()
            .map(|&node| {
                let proc = self.node_process(node);
                tokio::task::spawn_blocking(move || proc.stop(STOP_GRACE))
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    }
}

#[async_trait]
impl Cluster for KafkaCluster {
    fn broker(&self) -> &'static str {
        KIND.name()
    }

    fn nodes(&self) -> usize {
        self.nodes
    }

    async fn up(&self) -> Result<()> {
        let running: Vec<usize> = (0..MAX_NODES)
            .filter(|&i| self.node_process(i).pid().is_some())
            .collect();
        let recorded = process::recorded_nodes(&self.home, KIND.name());
        if !running.is_empty() && recorded != Some(self.nodes) {
            let nodes = recorded.unwrap_or(running.len());
            return Err(ClusterError::AlreadyUp {
                broker: KIND.name(),
                nodes,
            });
        }
        let install = self.install()?;
        let proxy = toxiproxy::ensure_running(&self.home).await?;
        let formatted = (0..self.nodes).all(|i| self.data_dir(i).join("meta.properties").is_file());
        if !running.is_empty() || (recorded == Some(self.nodes) && formatted) {
            // This cluster exists (running, partly killed, or all killed): bring it back on its
            // data rather than wiping it.
            return self.start_missing(&install, &proxy).await;
        }
        // A fresh cluster: forget any earlier one (its data was formatted for another quorum).
        for node in 0..MAX_NODES {
            let _ = proxy.delete_proxy(&proxy_name(node)).await;
            let _ = fs::remove_dir_all(self.data_dir(node));
            let _ = fs::remove_file(self.node_process(node).log_file);
        }
        let ports: Vec<u16> = (0..self.nodes).flat_map(node_ports).collect();
        if let Err(e) = process::ensure_ports_free(&ports, "kafka") {
            let _ = toxiproxy::stop_if_unused(&self.home).await;
            return Err(e);
        }
        process::record_nodes(&self.home, KIND.name(), self.nodes)?;
        if let Err(e) = self.start_missing(&install, &proxy).await {
            let _ = self.down().await;
            return Err(e);
        }
        Ok(())
    }

    async fn down(&self) -> Result<()> {
        let all: Vec<usize> = (0..MAX_NODES).collect();
        self.stop_nodes(&all).await;
        let proxy = Toxiproxy::default();
        if proxy.is_up().await {
            for node in 0..MAX_NODES {
                proxy.delete_proxy(&proxy_name(node)).await?;
            }
        }
        toxiproxy::stop_if_unused(&self.home).await?;
        let ports: Vec<u16> = all.iter().flat_map(|&i| node_ports(i)).collect();
        let taken = process::wait_ports_free(&ports, Duration::from_secs(30)).await;
        if let Some(&port) = taken.first() {
            return Err(ClusterError::PortTaken {
                port,
                needed_by: "kafka (still held after down)".into(),
            });
        }
        for node in all {
            let _ = fs::remove_dir_all(self.data_dir(node));
        }
        process::forget_nodes(&self.home, KIND.name());
        Ok(())
    }

    async fn status(&self) -> Result<Vec<NodeStatus>> {
        let mut statuses = Vec::new();
        for node in 0..self.nodes {
            let registered = async {
                match probe(node).await {
                    Ok(ids) if ids.contains(&(node as i32)) => {
                        Ok(format!("metadata through {} lists brokers {ids:?}", client_addr(node)))
                    }
                    Ok(ids) => Err(format!("not registered: metadata lists brokers {ids:?}")),
                    Err(e) => Err(e),
                }
            };
            statuses.push(self.node_process(node).status(node, registered).await);
        }
        Ok(statuses)
    }

    fn endpoints(&self) -> Vec<NodeEndpoint> {
        (0..self.nodes)
            .map(|node| NodeEndpoint {
                node,
                client: client_addr(node),
                direct: SocketAddr::from(([127, 0, 0, 1], KIND.port(node, CLIENT_SLOT))),
                proxy: proxy_name(node),
                // Kafka has no URL scheme: this is the node's `bootstrap.servers` entry.
                url: client_addr(node).to_string(),
            })
            .collect()
    }

    fn node_process(&self, node: usize) -> NodeProcess {
        NodeProcess::in_dir(self.home.node_dir(KIND.name(), node))
    }

    async fn leader(&self, dest: &str) -> Option<usize> {
        // Node i runs with node.id=i, so the broker id of the leader is the node index.
        let (bootstrap, topic, nodes) = (self.bootstrap_servers(), dest.to_string(), self.nodes);
        let task = tokio::task::spawn_blocking(move || {
            let client: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("socket.timeout.ms", "4000")
                .create()
                .ok()?;
            let metadata = client.fetch_metadata(Some(&topic), Duration::from_secs(4)).ok()?;
            let partition = metadata
                .topics()
                .first()?
                .partitions()
                .iter()
                .find(|p| p.id() == 0)?
                .leader();
            usize::try_from(partition).ok().filter(|&node| node < nodes)
        });
        task.await.ok().flatten()
    }

    async fn restart(&self, node: usize) -> Result<()> {
        self.check_node(node)?;
        if !self.data_dir(node).join("meta.properties").is_file() {
            return Err(ClusterError::NotUp { broker: KIND.name() });
        }
        let install = self.install()?;
        let proxy = toxiproxy::ensure_running(&self.home).await?;
        self.ensure_proxy(&proxy, &proxy.proxies().await?, node).await?;
        if self.node_process(node).pid().is_none() {
            self.start_node(&install, node).await?;
        }
        self.wait_ready(&[node], &[node]).await
    }
}

fn proxy_name(node: usize) -> String {
    format!("kafka-node{node}")
}

fn client_addr(node: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], KIND.port(node, CLIENT_PROXY_SLOT)))
}

/// Every port a node uses: its proxy and its three listeners.
fn node_ports(node: usize) -> Vec<u16> {
    [CLIENT_PROXY_SLOT, CLIENT_SLOT, INTERNAL_SLOT, CONTROLLER_SLOT]
        .iter()
        .map(|&s| KIND.port(node, s))
        .collect()
}

/// One metadata round trip with a fresh client whose only bootstrap address is `node`'s proxy,
/// so the request goes through that proxy to that node. Returns the ids of the brokers the
/// cluster lists (registered and not fenced).
async fn probe(node: usize) -> std::result::Result<Vec<i32>, String> {
    let bootstrap = client_addr(node).to_string();
    let task = tokio::task::spawn_blocking(move || {
        let client: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("socket.timeout.ms", "4000")
            .create()
            .map_err(|e| format!("creating a Kafka client failed: {e}"))?;
        let metadata = client
            .fetch_metadata(None, Duration::from_secs(4))
            .map_err(|e| format!("metadata request through {bootstrap} failed: {e}"))?;
        let mut ids: Vec<i32> = metadata.brokers().iter().map(|b| b.id()).collect();
        ids.sort_unstable();
        Ok(ids)
    });
    task.await.map_err(|e| format!("the metadata probe failed: {e}"))?
}

fn pom() -> String {
    let dep = |group: &str, artifact: &str, version: &str| {
        format!("    <dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId><version>{version}</version></dependency>\n")
    };
    format!(
        "<project xmlns=\"http://maven.apache.org/POM/4.0.0\">
  <!-- Generated by ackcheck: resolves Apache Kafka's jars into lib/. -->
  <modelVersion>4.0.0</modelVersion>
  <groupId>ackcheck</groupId>
  <artifactId>kafka-install</artifactId>
  <version>{VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
{}{}{}{}{}  </dependencies>
</project>
",
        dep("org.apache.kafka", "kafka_2.13", VERSION),
        dep("org.apache.kafka", "kafka-tools", VERSION),
        dep("org.slf4j", "slf4j-api", SLF4J_VERSION),
        dep("org.apache.logging.log4j", "log4j-slf4j2-impl", LOG4J_VERSION),
        dep("org.apache.logging.log4j", "log4j-core", LOG4J_VERSION),
    )
}
