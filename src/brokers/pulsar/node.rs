//! Apache Pulsar 4.0 standalone (broker, in-process bookie, RocksDB metadata), run from Maven
//! Central jars.
//!
//! Install: a generated pom resolved with `mvn dependency:copy-dependencies` into
//! `install/pulsar-<version>/lib` (`org.apache.pulsar:pulsar-broker` plus a log4j2 binding), with
//! a generated global settings file that keeps Maven on Maven Central.
//!
//! The one node is `org.apache.pulsar.PulsarStandaloneStarter` with a generated standalone.conf:
//! metadata in RocksDB, one bookie in the same JVM, no functions worker, no stream storage, broker
//! deduplication and the transaction coordinator on. The broker has two listeners:
//!
//! - `internal` (slot 1, `brokerServicePort`): the broker's own clients use it, direct;
//! - `external` (slot 2, a `bindAddresses` entry): the upstream of the node's Toxiproxy proxy
//!   (slot 0). Pulsar clients look a topic up and then connect to the address the broker returns;
//!   a lookup that names no listener is answered with the listener of the port it arrived on, so a
//!   client that came through the proxy is sent back to the proxy (`external` advertises it).
//!
//! The one local lifecycle (`crate::nodes::local`) runs it: a restart keeps the data, `down`
//! deletes it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use async_trait::async_trait;
use pulsar::{ConnectionRetryOptions, OperationRetryOptions, Pulsar, TokioExecutor};

use super::KIND;
use crate::broker::Props;
use crate::nodes::maven;
use crate::nodes::{Home, NodePort, NodeRecipe, PortRole, Result, CLIENT_PROXY_SLOT};

/// The pinned Pulsar release. 4.0.8 is the newest 4.0.x, but two of its jars
/// (`jetcd-core-shaded`, `pulsar-opentelemetry`) are not served by the registry these machines reach.
pub const VERSION: &str = "4.0.7";
/// The log4j2 version Pulsar 4.0 builds with; pinned because a transitive dependency asks for 2.18.
const LOG4J_VERSION: &str = "2.23.1";

const INTERNAL_SLOT: u16 = 1;
const EXTERNAL_SLOT: u16 = 2;
const WEB_SLOT: u16 = 3;
const BOOKIE_SLOT: u16 = 4;
/// Stream storage is off; the port is passed anyway so that the default (4181) is never touched.
const STREAM_STORAGE_SLOT: u16 = 5;

/// Broker and bookie share one JVM. Direct memory holds the managed-ledger cache and the bookie's
/// write and read caches, all sized down in the config below.
const JVM_MEMORY: [&str; 3] = ["-Xms384m", "-Xmx384m", "-XX:MaxDirectMemorySize=256m"];
/// What Pulsar's own launch script opens (`--add-opens M=ALL-UNNAMED`) for Netty, BookKeeper and
/// the JVM metrics on Java 17.
const JVM_OPENS: &str = "java.base/java.io java.base/java.util.zip java.base/sun.net java.management/sun.management \
    jdk.management/com.sun.management.internal java.base/jdk.internal.platform java.base/java.lang java.base/java.nio \
    java.base/sun.nio.ch java.base/jdk.internal.misc";
/// A cold start on 2 busy cores takes 15–60 s (bookie, broker, namespaces, system topics).
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// See [`NodeRecipe::stuck_restart_after`]: twice the slowest normal restart seen (5-10 s).
const STUCK_RESTART_AFTER: Duration = Duration::from_secs(20);
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_GRACE: Duration = Duration::from_secs(20);
/// The topic the readiness probe writes to (no subscription, so nothing piles up).
const PROBE_TOPIC: &str = "persistent://public/default/ackcheck-ready";

const LOG4J2_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by ackcheck: everything to stdout, which the node's log file collects. -->
<Configuration status="warn">
  <Appenders>
    <Console name="stdout" target="SYSTEM_OUT">
      <PatternLayout pattern="%d{ISO8601} %-5level [%t] %c{1} - %msg%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Logger name="org.apache.pulsar.broker.web.RequestLog" level="warn"/>
    <Root level="info"><AppenderRef ref="stdout"/></Root>
  </Loggers>
</Configuration>
"#;

/// Pulsar's one standalone node, as the one local lifecycle (`crate::nodes::LocalCluster`) runs it.
pub struct PulsarNodes {
    home: Home,
    /// The campaign's `[server]` keys, written after ackcheck's own.
    server: Props,
}

impl PulsarNodes {
    pub fn new(home: Home) -> PulsarNodes {
        PulsarNodes::with_server_settings(home, Props::default())
    }

    /// With a campaign's `standalone.conf` keys ([`super::props::server_settings`]).
    pub fn with_server_settings(home: Home, server: Props) -> PulsarNodes {
        PulsarNodes { home, server }
    }

    fn install_dir(&self) -> PathBuf {
        self.home.install_dir(&format!("pulsar-{VERSION}"))
    }

    fn node_dir(&self) -> PathBuf {
        self.home.node_dir(KIND.name(), 0)
    }

    fn data_dir(&self) -> PathBuf {
        self.node_dir().join("data")
    }

    fn standalone_conf(&self) -> String {
        let p = |slot| KIND.port(0, slot);
        let mut conf = format!(
            "# Written by ackcheck. Broker and bookie both read this file.
clusterName=standalone
bindAddress=127.0.0.1
brokerServicePort={internal}
webServicePort={web}
advertisedListeners=internal:pulsar://127.0.0.1:{internal},external:pulsar://127.0.0.1:{proxy}
internalListenerName=internal
bindAddresses=external:pulsar://127.0.0.1:{external}
brokerDeduplicationEnabled=true
transactionCoordinatorEnabled=true
systemTopicEnabled=true
topicLevelPoliciesEnabled=true
# Test topics must outlive idle phases (kill, restart) of a run.
brokerDeleteInactiveTopicsEnabled=false
functionsWorkerEnabled=false
webSocketServiceEnabled=false
loadManagerClassName=org.apache.pulsar.broker.loadbalance.NoopLoadManager
loadBalancerEnabled=false
brokerShutdownTimeoutMs=10000
statusFilePath=
narExtractionDirectory={tmp}
numIOThreads=4
managedLedgerDefaultEnsembleSize=1
managedLedgerDefaultWriteQuorum=1
managedLedgerDefaultAckQuorum=1
managedLedgerCacheSizeMB=32
# Bookie: a fixed port (its identity is recorded in the data, so it must not change across
# restarts), loopback only, and an fsync of the journal before every acknowledgement.
bookiePort={bookie}
allowEphemeralPorts=true
allowLoopback=true
listeningInterface=lo
httpServerEnabled=false
journalWriteData=true
journalSyncData=true
ledgerStorageClass=org.apache.bookkeeper.bookie.storage.ldb.DbLedgerStorage
dbStorage_writeCacheMaxSizeMb=16
dbStorage_readAheadCacheMaxSizeMb=16
dbStorage_rocksDB_blockCacheSize=16777216
diskUsageThreshold=0.99
diskUsageWarnThreshold=0.99
",
            internal = p(INTERNAL_SLOT),
            external = p(EXTERNAL_SLOT),
            web = p(WEB_SLOT),
            bookie = p(BOOKIE_SLOT),
            proxy = p(CLIENT_PROXY_SLOT),
            tmp = self.node_dir().join("tmp").display(),
        );
        if !self.server.is_empty() {
            // A properties file keeps the last value of a key: the campaign's win.
            conf.push_str("# The campaign's [server] settings.\n");
            for (key, value) in self.server.iter() {
                conf.push_str(&format!("{key}={value}\n"));
            }
        }
        conf
    }
}

#[async_trait]
impl NodeRecipe for PulsarNodes {
    /// Resolve the jars with Maven (cached) and write the logging config.
    fn install(&self) -> Result<()> {
        maven::install_jars_with_log4j2(&self.install_dir(), &format!("Pulsar {VERSION}"), &pom(), LOG4J2_XML)
    }

    fn ports(&self, node: usize) -> Vec<NodePort> {
        vec![
            NodePort::local(PortRole::Client, "external listener", KIND.port(node, EXTERNAL_SLOT)),
            NodePort::local(
                PortRole::Admin,
                "internal listener (brokerServicePort)",
                KIND.port(node, INTERNAL_SLOT),
            ),
            NodePort::local(PortRole::Admin, "web service", KIND.port(node, WEB_SLOT)),
            NodePort::local(PortRole::Peer, "bookie", KIND.port(node, BOOKIE_SLOT)),
            NodePort::local(
                PortRole::Admin,
                "stream storage port (unused)",
                KIND.port(node, STREAM_STORAGE_SLOT),
            ),
        ]
    }

    /// The internal listener: lookups there answer with direct addresses, so a client that
    /// starts here never touches the proxy.
    fn direct(&self, node: usize) -> Option<SocketAddr> {
        Some(SocketAddr::from(([127, 0, 0, 1], KIND.port(node, INTERNAL_SLOT))))
    }

    fn data_dirs(&self, _node: usize) -> Vec<PathBuf> {
        vec![self.data_dir(), self.node_dir().join("tmp")]
    }

    /// The bookie wrote its cookie: the node has been started on this data.
    fn has_data(&self, _node: usize) -> bool {
        self.data_dir()
            .join("bookkeeper")
            .join("current")
            .join("VERSION")
            .is_file()
    }

    fn files(&self, _node: usize) -> Vec<(PathBuf, String)> {
        vec![(self.node_dir().join("standalone.conf"), self.standalone_conf())]
    }

    fn command(&self, _node: usize) -> Command {
        let install = self.install_dir();
        let node_dir = self.node_dir();
        let data = self.data_dir();
        let tmp = node_dir.join("tmp");
        let mut cmd = Command::new("java");
        cmd.current_dir(&node_dir)
            .args(JVM_MEMORY)
            .arg("-XX:+ExitOnOutOfMemoryError");
        for module in JVM_OPENS.split_whitespace() {
            cmd.arg("--add-opens").arg(format!("{module}=ALL-UNNAMED"));
        }
        cmd.arg("-Dio.netty.tryReflectionSetAccessible=true")
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                install.join("log4j2.xml").display()
            ))
            .arg(format!("-Djava.io.tmpdir={}", tmp.display()))
            .arg("-cp")
            .arg(install.join("lib").join("*"))
            .arg("org.apache.pulsar.PulsarStandaloneStarter");
        // No ZooKeeper directory: the standalone then keeps its metadata in RocksDB.
        let paths = [
            ("--config", node_dir.join("standalone.conf")),
            ("--metadata-dir", data.join("metadata")),
            ("--zookeeper-dir", data.join("zookeeper")),
            ("--bookkeeper-dir", data.join("bookkeeper")),
        ];
        for (flag, path) in paths {
            cmd.arg(flag).arg(path);
        }
        cmd.args(["--bookkeeper-port", &KIND.port(0, BOOKIE_SLOT).to_string()])
            .args(["--stream-storage-port", &KIND.port(0, STREAM_STORAGE_SLOT).to_string()])
            .args(["--no-functions-worker", "--no-stream-storage"]);
        cmd
    }

    /// A produce through the proxy, and the transaction coordinator assigned.
    async fn probe(&self, _node: usize, _members: &[usize]) -> std::result::Result<String, String> {
        let produced = probe().await?;
        match transaction_coordinators().await? {
            0 => Err("the transaction coordinator is not assigned yet".to_string()),
            _ => Ok(produced),
        }
    }

    fn ready_timeout(&self) -> Duration {
        READY_TIMEOUT
    }

    /// A standalone node restarted after kill -9 is ready in 5-8 s, or, now and then, never: its
    /// bookie's registration lock on /ledgers/available is invalidated and re-acquired ~1,000
    /// times a second (the loop of apache/pulsar#17759) and it writes nothing until the process
    /// dies (seen for 60 s and more); the next start after a kill did not loop.
    fn stuck_restart_after(&self) -> Option<Duration> {
        Some(STUCK_RESTART_AFTER)
    }

    fn stop_grace(&self) -> Duration {
        STOP_GRACE
    }

    fn url(&self, _node: usize) -> Option<String> {
        Some(client_url())
    }
}

fn client_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], KIND.port(0, CLIENT_PROXY_SLOT)))
}

/// The service URL clients use: the node's proxy.
pub fn client_url() -> String {
    format!("pulsar://{}", client_addr())
}

/// A Pulsar client on the proxy that gives up quickly (the callers poll).
pub async fn connect(service_url: &str) -> std::result::Result<Pulsar<TokioExecutor>, pulsar::Error> {
    Pulsar::builder(service_url, TokioExecutor)
        .with_connection_retry_options(ConnectionRetryOptions {
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            max_retries: 2,
            connection_timeout: Duration::from_secs(5),
            ..Default::default()
        })
        .with_operation_retry_options(OperationRetryOptions {
            operation_timeout: Duration::from_secs(10),
            retry_delay: Duration::from_millis(500),
            max_retries: Some(2),
        })
        .build()
        .await
}

/// One round trip through the proxy: a topic lookup must send the client back to the proxy, and
/// a message produced there must be acknowledged (so the bookie stored it).
async fn probe() -> std::result::Result<String, String> {
    let url = client_url();
    let round_trip = async {
        let client = connect(&url)
            .await
            .map_err(|e| format!("connecting to {url} failed: {e}"))?;
        let owner = client
            .lookup_topic(PROBE_TOPIC)
            .await
            .map_err(|e| format!("topic lookup through {url} failed: {e}"))?;
        if owner.url.port() != Some(client_addr().port()) {
            return Err(format!(
                "the broker sends clients to {}, not to the proxy {url}",
                owner.url
            ));
        }
        let mut producer = client
            .producer()
            .with_topic(PROBE_TOPIC)
            .build()
            .await
            .map_err(|e| format!("creating a producer through {url} failed: {e}"))?;
        let receipt = producer
            .send_non_blocking("ready")
            .await
            .map_err(|e| format!("producing through {url} failed: {e}"))?
            .await
            .map_err(|e| format!("producing through {url} was not acknowledged: {e}"))?;
        let _ = producer.close().await;
        let id = receipt
            .message_id
            .map(|m| format!("{}:{}", m.ledger_id, m.entry_id))
            .unwrap_or_default();
        Ok(format!("produced message {id} through {url}"))
    };
    tokio::time::timeout(PROBE_TIMEOUT, round_trip)
        .await
        .unwrap_or_else(|_| Err(format!("no answer through {url} within {} s", PROBE_TIMEOUT.as_secs())))
}

/// The node's admin (web service) URL, direct.
pub fn admin_url() -> String {
    format!("http://127.0.0.1:{}", KIND.port(0, WEB_SLOT))
}

/// An HTTP client for the admin API (no proxy from the environment).
pub fn admin_client() -> std::result::Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .map_err(|e| format!("creating an HTTP client failed: {e}"))
}

/// How many transaction coordinators the broker has assigned (its admin API, direct).
async fn transaction_coordinators() -> std::result::Result<usize, String> {
    let url = format!(
        "http://127.0.0.1:{}/admin/v3/transactions/coordinators",
        KIND.port(0, WEB_SLOT)
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .map_err(|e| format!("creating an HTTP client failed: {e}"))?;
    let resp = http
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("GET {url} failed: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("GET {url} answered HTTP {}", resp.status()));
    }
    let coordinators: Vec<serde_json::Value> = resp
        .json()
        .await
        .map_err(|e| format!("GET {url} answered no JSON list: {e}"))?;
    Ok(coordinators.len())
}

fn pom() -> String {
    let managed = |artifact: &str| {
        format!("      <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>{artifact}</artifactId><version>{LOG4J_VERSION}</version></dependency>\n")
    };
    format!(
        "<project xmlns=\"http://maven.apache.org/POM/4.0.0\">
  <!-- Generated by ackcheck: resolves Apache Pulsar's broker jars into lib/. -->
  <modelVersion>4.0.0</modelVersion>
  <groupId>ackcheck</groupId>
  <artifactId>pulsar-install</artifactId>
  <version>{VERSION}</version>
  <packaging>pom</packaging>
  <dependencyManagement>
    <dependencies>
{}{}{}    </dependencies>
  </dependencyManagement>
  <dependencies>
    <dependency><groupId>org.apache.pulsar</groupId><artifactId>pulsar-broker</artifactId><version>{VERSION}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId></dependency>
  </dependencies>
</project>
",
        managed("log4j-api"),
        managed("log4j-core"),
        managed("log4j-slf4j2-impl"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_campaigns_standalone_keys_come_after_ackchecks_own() {
        let home = Home::at("/nonexistent/ackcheck-home");
        let plain = PulsarNodes::new(home.clone()).standalone_conf();
        assert!(plain.contains("brokerDeduplicationEnabled=true\n"));
        assert!(!plain.contains("[server]"));
        let mut server = Props::default();
        server.set_user("brokerDeduplicationEnabled", "false");
        let conf = PulsarNodes::with_server_settings(home, server).standalone_conf();
        let ours = conf.find("brokerDeduplicationEnabled=true").expect("ackcheck's key");
        let theirs = conf
            .find("brokerDeduplicationEnabled=false")
            .expect("the campaign's key");
        assert!(
            theirs > ours,
            "the last value of a key wins in a properties file:\n{conf}"
        );
    }
}
