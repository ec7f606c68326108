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
//! Storage is formatted once per node at its first start ([`KafkaNodes::prepare_start`]); the one
//! local lifecycle (`crate::nodes::local`) does the rest.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use super::KIND;
use crate::broker::Props;
use crate::nodes::maven;
use crate::nodes::process;
use crate::nodes::{ClusterError, Home, NodeHosts, NodePort, NodeRecipe, PortRole, Result, CLIENT_PROXY_SLOT};

/// The pinned Kafka release (the jars `org.apache.kafka:kafka_2.13` and `kafka-tools`).
pub const VERSION: &str = "4.1.1";
/// The versions a campaign may ask for (`version = "3.9.1"`), the default first: 3.9 is the last
/// line before 4.0 (its transaction protocol predates KIP-890 on the server too).
pub const VERSIONS: &[&str] = &[VERSION, "3.9.1"];
const LOG4J_VERSION: &str = "2.25.3";
/// log4j-slf4j2-impl binds slf4j 2; Kafka's own pom brings slf4j-api 1.7, which would not find it.
const SLF4J_VERSION: &str = "2.0.17";

/// The KRaft cluster id every node is formatted with (base64 of "ackcheck-kafka-1"). All nodes of
/// a cluster must share it; since `down` deletes the data, one constant id serves every cluster.
const CLUSTER_ID: &str = "YWNrY2hlY2sta2Fma2EtMQ";

const CLIENT_SLOT: u16 = 1;
const INTERNAL_SLOT: u16 = 2;
const CONTROLLER_SLOT: u16 = 3;
/// Partitions of `__transaction_state` (Kafka's default is 50: fewer to create and load on a
/// small machine); the coordinator of a transactional id follows from it.
const TRANSACTION_STATE_PARTITIONS: u32 = 10;

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

/// Kafka's nodes, as the one local lifecycle (`crate::nodes::LocalCluster`) runs them.
pub struct KafkaNodes {
    home: Home,
    nodes: usize,
    /// The campaign's `[server]` settings, written after ackcheck's own.
    server: Props,
    /// Where each node listens (loopback, or its own network namespace).
    hosts: NodeHosts,
    /// Kafka's version (its jars from Maven Central).
    version: String,
}

impl KafkaNodes {
    pub fn new(home: Home, nodes: usize, server: Props, hosts: NodeHosts) -> KafkaNodes {
        KafkaNodes {
            home,
            nodes,
            server,
            hosts,
            version: VERSION.to_string(),
        }
    }

    /// The same nodes running Kafka `version` (one of [`VERSIONS`]; empty keeps the default).
    pub fn with_version(mut self, version: &str) -> KafkaNodes {
        if !version.is_empty() {
            self.version = version.to_string();
        }
        self
    }

    /// `host:port,...` of every node's proxy, for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        (0..self.nodes)
            .map(|i| client_addr(i).to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    fn install_dir(&self) -> PathBuf {
        self.home.install_dir(&format!("kafka-{}", self.version))
    }

    fn java(&self, heap: &[&str], main: &str) -> Command {
        java_command(&self.install_dir(), heap, main)
    }

    fn data_dir(&self, node: usize) -> PathBuf {
        self.home.node_dir(KIND.name(), node).join("data")
    }

    fn config_file(&self, node: usize) -> PathBuf {
        self.home.node_dir(KIND.name(), node).join("server.properties")
    }

    /// ackcheck's settings, then the campaign's `[server]` keys (the last occurrence of a key
    /// wins in a properties file).
    fn server_properties(&self, node: usize) -> String {
        let mut text = self.own_server_properties(node);
        if !self.server.is_empty() {
            text.push_str("# The campaign's [server] settings.\n");
            for (key, value) in self.server.iter() {
                text.push_str(&format!("{key}={value}\n"));
            }
        }
        text
    }

    fn own_server_properties(&self, node: usize) -> String {
        let voters = (0..self.nodes)
            .map(|i| format!("{i}@{}:{}", self.hosts.ip(i), KIND.port(i, CONTROLLER_SLOT)))
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
listeners=CLIENT://{ip}:{client},INTERNAL://{ip}:{internal},CONTROLLER://{ip}:{controller}
advertised.listeners=CLIENT://127.0.0.1:{proxy},INTERNAL://{ip}:{internal}
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
transaction.state.log.num.partitions={txn_partitions}
group.initial.rebalance.delay.ms=0
# A killed or paused node is fenced (its partitions and coordinators move) after this long
# without a heartbeat to the controller; Kafka's 9 s default kept 3-node runs without leaders
# for most of a 5 s fault and beyond. 4 s is still eight heartbeats.
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=500
",
            nodes = self.nodes,
            ip = self.hosts.ip(node),
            txn_partitions = TRANSACTION_STATE_PARTITIONS,
            client = p(CLIENT_SLOT),
            internal = p(INTERNAL_SLOT),
            controller = p(CONTROLLER_SLOT),
            proxy = p(CLIENT_PROXY_SLOT),
            data = self.data_dir(node).display(),
        )
    }
}

#[async_trait]
impl NodeRecipe for KafkaNodes {
    /// Resolve the jars with Maven (cached) and write the logging config.
    fn install(&self) -> Result<()> {
        maven::install_jars_with_log4j2(
            &self.install_dir(),
            &format!("Kafka {}", self.version),
            &pom(&self.version),
            LOG4J2_XML,
        )
    }

    fn ports(&self, node: usize) -> Vec<NodePort> {
        let ip = self.hosts.ip(node);
        vec![
            NodePort::at(PortRole::Client, "CLIENT listener", ip, KIND.port(node, CLIENT_SLOT)),
            NodePort::at(PortRole::Peer, "INTERNAL listener", ip, KIND.port(node, INTERNAL_SLOT)),
            NodePort::at(
                PortRole::Controller,
                "CONTROLLER listener",
                ip,
                KIND.port(node, CONTROLLER_SLOT),
            ),
        ]
    }

    fn data_dirs(&self, node: usize) -> Vec<PathBuf> {
        vec![self.data_dir(node)]
    }

    /// Formatted storage: the KRaft quorum and the logs are there.
    fn has_data(&self, node: usize) -> bool {
        self.data_dir(node).join("meta.properties").is_file()
    }

    fn files(&self, node: usize) -> Vec<(PathBuf, String)> {
        vec![(self.config_file(node), self.server_properties(node))]
    }

    /// Format the node's storage if it has none.
    async fn prepare_start(&self, node: usize) -> Result<()> {
        if self.has_data(node) {
            return Ok(());
        }
        let mut format = self.java(&["-Xmx256m"], "kafka.tools.StorageTool");
        format
            .args(["format", "--cluster-id", CLUSTER_ID, "--config"])
            .arg(self.config_file(node));
        process::run_step(&format!("Kafka {}", self.version), "kafka.tools.StorageTool format", &mut format).map_err(|e| match e {
            ClusterError::Install { reason, output, .. } => ClusterError::Other(format!(
                "formatting kafka node {node}'s storage failed ({reason}); if the install at {} is damaged, delete it so that `up` reinstalls it\n{output}",
                self.install_dir().display()
            )),
            other => other,
        })?;
        Ok(())
    }

    fn command(&self, node: usize) -> Command {
        let mut cmd = self.java(&HEAP, "kafka.Kafka");
        cmd.arg(self.config_file(node));
        cmd
    }

    /// A metadata request through the node's proxy must list every broker of `members`
    /// (registered and not fenced).
    async fn probe(&self, node: usize, members: &[usize]) -> std::result::Result<String, String> {
        let ids = probe(node).await?;
        match members.iter().find(|&&id| !ids.contains(&(id as i32))) {
            None => Ok(format!("metadata through {} lists brokers {ids:?}", client_addr(node))),
            Some(missing) => Err(format!(
                "metadata through the proxy lists brokers {ids:?}, not yet broker {missing}"
            )),
        }
    }

    fn ready_timeout(&self) -> Duration {
        READY_TIMEOUT
    }

    fn stop_grace(&self) -> Duration {
        STOP_GRACE
    }

    /// The leader of partition 0 of `dest`. Node i runs with node.id=i, so the broker id of the
    /// leader is the node index.
    async fn leader(&self, dest: &str, _live: &[usize]) -> Option<usize> {
        self.partition_leader(dest, 0).await
    }

    /// The transaction coordinator of the transactional id `key`: the leader of the partition
    /// of `__transaction_state` that Kafka assigns the id to.
    async fn coordinator(&self, key: &str, _live: &[usize]) -> Option<usize> {
        let partition = transaction_state_partition(key, TRANSACTION_STATE_PARTITIONS);
        self.partition_leader("__transaction_state", partition).await
    }

    /// The active KRaft controller: of the leaders the nodes' quorum-state files name, the one of
    /// the latest epoch. Every node is a voter here and writes that file on each election, so no
    /// network round trip is needed (librdkafka has no DescribeQuorum, and a JVM tool per fault
    /// would take seconds). A node cut off or paused keeps an older epoch, or names no leader
    /// while it campaigns, so the majority's choice wins.
    async fn controller(&self, _live: &[usize]) -> Option<usize> {
        (0..self.nodes)
            .filter_map(|node| {
                let text =
                    std::fs::read_to_string(self.data_dir(node).join("__cluster_metadata-0/quorum-state")).ok()?;
                quorum_leader(&text)
            })
            .max_by_key(|&(_, epoch)| epoch)
            .and_then(|(leader, _)| usize::try_from(leader).ok())
            .filter(|&node| node < self.nodes)
    }
}

/// The leader and its epoch in a KRaft `quorum-state` file (`{"leaderId":1,"leaderEpoch":3,…}`),
/// or `None` when the file names no leader (`-1`: an election is on) or cannot be read.
pub fn quorum_leader(text: &str) -> Option<(i64, i64)> {
    let state: serde_json::Value = serde_json::from_str(text).ok()?;
    let leader = state.get("leaderId")?.as_i64()?;
    let epoch = state.get("leaderEpoch")?.as_i64()?;
    (leader >= 0).then_some((leader, epoch))
}

/// The partition of `__transaction_state` (with `partitions` partitions) that holds the state
/// of the transactional id `key`, as Kafka's `TransactionStateManager.partitionFor` computes it:
/// `Utils.abs(transactionalId.hashCode) % partitions`, where `hashCode` is Java's `String`
/// hash over UTF-16 code units and `Utils.abs` clears the sign bit.
pub fn transaction_state_partition(key: &str, partitions: u32) -> i32 {
    let hash = key
        .encode_utf16()
        .fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(i32::from(unit)));
    ((hash & 0x7fff_ffff) as u32 % partitions) as i32
}

impl KafkaNodes {
    /// The leader of `partition` of `topic`, asked through the proxies.
    async fn partition_leader(&self, topic: &str, partition: i32) -> Option<usize> {
        let (bootstrap, topic, nodes) = (self.bootstrap_servers(), topic.to_string(), self.nodes);
        let task = tokio::task::spawn_blocking(move || {
            let client: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("socket.timeout.ms", "4000")
                .create()
                .ok()?;
            let metadata = client.fetch_metadata(Some(&topic), Duration::from_secs(4)).ok()?;
            let leader = metadata
                .topics()
                .first()?
                .partitions()
                .iter()
                .find(|p| p.id() == partition)?
                .leader();
            usize::try_from(leader).ok().filter(|&node| node < nodes)
        });
        task.await.ok().flatten()
    }
}

/// `java <heap> -cp <install>/lib/* <main>` with the install's log4j2 config: a Kafka class
/// (the broker, its storage tool) run from an install of ackcheck's.
pub fn java_command(install: &Path, heap: &[&str], main: &str) -> Command {
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

fn client_addr(node: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], KIND.port(node, CLIENT_PROXY_SLOT)))
}

/// One metadata round trip with a fresh client whose only bootstrap address is `node`'s proxy,
/// so the request goes through that proxy to that node. Returns the ids of the brokers the
/// cluster lists (registered and not fenced).
async fn probe(node: usize) -> std::result::Result<Vec<i32>, String> {
    metadata_round_trip(client_addr(node).to_string(), Vec::new()).await
}

/// One metadata round trip with a fresh client whose only bootstrap address is `bootstrap`,
/// over the `connection` settings given (TLS, SASL; none for ackcheck's own nodes).
/// Returns the ids of the brokers the cluster lists.
pub(super) async fn metadata_round_trip(
    bootstrap: String,
    connection: Vec<(String, String)>,
) -> std::result::Result<Vec<i32>, String> {
    let task = tokio::task::spawn_blocking(move || {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &bootstrap)
            .set("socket.timeout.ms", "4000");
        for (key, value) in connection {
            config.set(key, value);
        }
        let client: BaseConsumer = config
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

fn pom(version: &str) -> String {
    let dep = |group: &str, artifact: &str, version: &str| {
        format!("    <dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId><version>{version}</version></dependency>\n")
    };
    format!(
        "<project xmlns=\"http://maven.apache.org/POM/4.0.0\">
  <!-- Generated by ackcheck: resolves Apache Kafka's jars into lib/. -->
  <modelVersion>4.0.0</modelVersion>
  <groupId>ackcheck</groupId>
  <artifactId>kafka-install</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
{}{}{}{}{}  </dependencies>
</project>
",
        dep("org.apache.kafka", "kafka_2.13", version),
        dep("org.apache.kafka", "kafka-tools", version),
        dep("org.slf4j", "slf4j-api", SLF4J_VERSION),
        dep("org.apache.logging.log4j", "log4j-slf4j2-impl", LOG4J_VERSION),
        dep("org.apache.logging.log4j", "log4j-core", LOG4J_VERSION),
    )
}

#[cfg(test)]
mod tests {
    use super::{quorum_leader, transaction_state_partition};

    #[test]
    fn the_quorum_state_names_the_leader_and_its_epoch_or_nobody_during_an_election() {
        let leading = r#"{"clusterId":"","leaderId":1,"leaderEpoch":3,"votedId":-1,"appliedOffset":0,"currentVoters":null,"data_version":1}"#;
        assert_eq!(quorum_leader(leading), Some((1, 3)));
        let electing =
            r#"{"clusterId":"","leaderId":-1,"leaderEpoch":4,"votedId":2,"appliedOffset":0,"data_version":1}"#;
        assert_eq!(quorum_leader(electing), None);
        assert_eq!(quorum_leader("not json"), None);
        assert_eq!(quorum_leader(r#"{"leaderEpoch":3}"#), None);
    }

    #[test]
    fn transactional_ids_map_to_partitions_as_kafka_maps_them() {
        // "hello".hashCode() is 99162322 in Java.
        assert_eq!(transaction_state_partition("hello", 10), 2);
        // Java's hashCode of this string is Integer.MIN_VALUE: Utils.abs makes it 0, not a
        // negative partition.
        assert_eq!(transaction_state_partition("polygenelubricants", 10), 0);
        assert_eq!(transaction_state_partition("polygenelubricants", 50), 0);
    }
}
