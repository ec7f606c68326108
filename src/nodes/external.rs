//! Brokers that something else runs (Docker Compose, Kubernetes, VMs): a [`Cluster`] whose
//! faults are the user's own commands.
//!
//! ackcheck cannot signal a process it did not start, so for `--external` the campaign declares
//! how to break and mend each node (`[external.commands]`: `kill`, `pause`, `resume`, `restart`
//! and an optional `health`, templates with `{node}`, `{host}` (the endpoint's host, or the
//! node's entry in `[external] hosts`), `{port}` and `{endpoint}`), and
//! where its client traffic passes a Toxiproxy (`[external.toxiproxy]`: the API address and one
//! proxy name per node) for the network faults. Each command runs through `sh -c` with a
//! timeout; its exit status and output go to the run log, and a command that fails is a fault
//! that did not start (the nemesis records it with the reason). A node counts as healthy when its
//! `health` command (if any) succeeds and ackcheck's own client round trip through its endpoint
//! answers, as for local nodes. `down` never stops the user's brokers.

use std::collections::BTreeSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::{Cluster, ClusterError, NodeEndpoint, NodeProcess, NodeState, NodeStatus, Result};

/// `[external.commands]`: how to break and mend one node of a cluster ackcheck did not start.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalCommands {
    /// Kill the node at once (`docker kill kafka-{node}`); the `kill` fault needs `restart` too.
    pub kill: Option<String>,
    /// Freeze the node (`docker pause kafka-{node}`); the `pause` fault needs `resume` too.
    pub pause: Option<String>,
    pub resume: Option<String>,
    /// Start a killed node again on its data (`docker start kafka-{node}`).
    pub restart: Option<String>,
    /// Succeeds when the node is healthy, beside ackcheck's own round trip (optional).
    pub health: Option<String>,
    /// Seconds a command may take before it is killed and counts as failed.
    #[serde(default = "sixty")]
    pub timeout: f64,
}

fn sixty() -> f64 {
    60.0
}

/// `[external.toxiproxy]`: the Toxiproxy that the clients' traffic to each node passes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalToxiproxy {
    /// Its API (`127.0.0.1:8474` or `http://toxiproxy:8474`).
    pub api: String,
    /// The proxy of each node, in the order of `endpoints`.
    pub proxies: Vec<String>,
}

impl ExternalToxiproxy {
    /// The API's base URL.
    pub fn base_url(&self) -> String {
        match self.api.contains("://") {
            true => self.api.trim_end_matches('/').to_string(),
            false => format!("http://{}", self.api.trim_end_matches('/')),
        }
    }
}

/// ackcheck's own client round trip against one endpoint (`host:port`): `Ok(what answered)`.
pub type RoundTrip = Arc<dyn Fn(String) -> BoxFuture<'static, std::result::Result<String, String>> + Send + Sync>;

/// Where a command's status and output go (the run log).
pub type CommandLog = Arc<dyn Fn(&str) + Send + Sync>;

/// How long a restarted node may take to answer again.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// The most of a command's output kept in the run log and in errors.
const OUTPUT_LIMIT: usize = 2000;

pub struct ExternalCluster {
    broker: &'static str,
    /// As the campaign gives them, and resolved.
    endpoints: Vec<(String, SocketAddr)>,
    commands: ExternalCommands,
    /// What `{host}` stands for, per node (by default the host of its endpoint).
    hosts: Vec<String>,
    proxies: Vec<String>,
    round_trip: RoundTrip,
    log: CommandLog,
    /// Where a node's (never written) pid file would be: nothing of these nodes runs here.
    scratch: std::path::PathBuf,
    /// Nodes this process paused or killed and has not mended yet.
    paused: Mutex<BTreeSet<usize>>,
    killed: Mutex<BTreeSet<usize>>,
}

/// Where the external nodes are and how to break them: the campaign's `[external]` table.
pub struct ExternalNodes<'a> {
    /// Client addresses, one per node, in node order.
    pub endpoints: &'a [String],
    /// What `{host}` stands for, per node (default: each endpoint's host).
    pub hosts: Option<&'a [String]>,
    pub commands: ExternalCommands,
    pub toxiproxy: Option<&'a ExternalToxiproxy>,
}

impl ExternalCluster {
    /// The cluster of `nodes`, of `broker`, whose health is `round_trip` (and the health
    /// command), whose commands report to `log`, with its fault record under `scratch`. Every
    /// endpoint must resolve.
    pub fn new(
        broker: &'static str,
        nodes: ExternalNodes<'_>,
        round_trip: RoundTrip,
        log: CommandLog,
        scratch: std::path::PathBuf,
    ) -> Result<ExternalCluster> {
        let ExternalNodes {
            endpoints,
            hosts,
            commands,
            toxiproxy,
        } = nodes;
        let mut resolved = Vec::new();
        for endpoint in endpoints {
            let address = endpoint
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| {
                    ClusterError::Other(format!(
                        "the external endpoint `{endpoint}` does not resolve to an address; give host:port of a broker you can reach"
                    ))
                })?;
            resolved.push((endpoint.clone(), address));
        }
        let hosts = match hosts {
            Some(hosts) => hosts.to_vec(),
            None => endpoints
                .iter()
                .map(|e| e.rsplit_once(':').map_or(e.as_str(), |(host, _)| host).to_string())
                .collect(),
        };
        Ok(ExternalCluster {
            broker,
            endpoints: resolved,
            commands,
            hosts,
            proxies: toxiproxy.map(|t| t.proxies.clone()).unwrap_or_default(),
            round_trip,
            log,
            scratch,
            paused: Mutex::new(BTreeSet::new()),
            killed: Mutex::new(BTreeSet::new()),
        })
    }

    /// `template` with this node's values in place of `{node}`, `{host}`, `{port}`, `{endpoint}`.
    pub fn fill(&self, template: &str, node: usize) -> String {
        let (endpoint, address) = &self.endpoints[node];
        template
            .replace("{node}", &node.to_string())
            .replace("{host}", &self.hosts[node])
            .replace("{port}", &address.port().to_string())
            .replace("{endpoint}", endpoint)
    }

    /// Run the command `what` (its template `template`) for `node`; its status and output go to
    /// the log. A failure (exit status, timeout, not startable) is an error with the output.
    async fn command(&self, what: &str, template: Option<&str>, node: usize) -> Result<()> {
        self.check_node(node)?;
        let Some(template) = template else {
            return Err(ClusterError::Other(format!(
                "no `{what}` command under [external.commands], so ackcheck cannot {what} an external node; add one (e.g. `{what} = \"docker {what} {}-{{node}}\"`)",
                self.broker
            )));
        };
        let line = self.fill(template, node);
        let started = Instant::now();
        let outcome = self.shell(&line).await;
        let took = started.elapsed().as_secs_f64();
        match outcome {
            Ok(output) => {
                (self.log)(&format!(
                    "external {what} node {node}: `{line}` ok in {took:.1} s{}",
                    said(&output)
                ));
                Ok(())
            }
            Err(why) => {
                (self.log)(&format!(
                    "external {what} node {node}: `{line}` failed after {took:.1} s: {why}"
                ));
                Err(ClusterError::Other(format!(
                    "`{line}` ({what} node {node}) failed: {why}"
                )))
            }
        }
    }

    /// One node's health: its `health` command, then ackcheck's round trip through its endpoint.
    async fn node_health(&self, node: usize) -> std::result::Result<String, String> {
        if let Some(health) = &self.commands.health {
            let line = self.fill(health, node);
            self.shell(&line).await.map_err(|why| format!("`{line}` {why}"))?;
        }
        (self.round_trip)(self.endpoints[node].0.clone()).await
    }

    /// Run `line` through `sh -c` within the commands' timeout: its output (stdout, then
    /// stderr, the last [`OUTPUT_LIMIT`] characters) when it succeeds, else why not.
    async fn shell(&self, line: &str) -> std::result::Result<String, String> {
        let limit = Duration::from_secs_f64(self.commands.timeout.max(0.1));
        let child = tokio::process::Command::new("sh")
            .args(["-c", line])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        match tokio::time::timeout(limit, child).await {
            Err(_) => Err(format!("did not finish within {:.0} s", limit.as_secs_f64())),
            Ok(Err(e)) => Err(format!("could not be started: {e}")),
            Ok(Ok(out)) => {
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stderr));
                let text = tail(text.trim(), OUTPUT_LIMIT);
                match out.status.success() {
                    true => Ok(text),
                    false => Err(format!("{}: {text}", out.status)),
                }
            }
        }
    }

    /// Wait until `node` answers again, at most [`READY_TIMEOUT`].
    async fn wait_ready(&self, node: usize) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let why = match self.node_health(node).await {
                Ok(_) => return Ok(()),
                Err(why) => why,
            };
            if Instant::now() >= deadline {
                return Err(ClusterError::Other(format!(
                    "external node {node} ({}) did not answer within {} s: {why}",
                    self.endpoints[node].0,
                    READY_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn set<'a>(&self, which: &'a Mutex<BTreeSet<usize>>) -> std::sync::MutexGuard<'a, BTreeSet<usize>> {
        which.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn tail(text: &str, limit: usize) -> String {
    match text.char_indices().rev().nth(limit) {
        Some((cut, _)) => format!("…{}", &text[cut..]),
        None => text.to_string(),
    }
}

fn said(output: &str) -> String {
    match output.is_empty() {
        true => String::new(),
        false => format!(": {output}"),
    }
}

#[async_trait]
impl Cluster for ExternalCluster {
    fn broker(&self) -> &'static str {
        self.broker
    }

    fn nodes(&self) -> usize {
        self.endpoints.len()
    }

    /// Nothing to start: wait until every node answers.
    async fn up(&self) -> Result<()> {
        for node in 0..self.nodes() {
            self.wait_ready(node).await?;
        }
        Ok(())
    }

    /// The user's brokers are theirs: nothing is stopped.
    async fn down(&self) -> Result<()> {
        Ok(())
    }

    async fn status(&self) -> Result<Vec<NodeStatus>> {
        let mut statuses = Vec::new();
        for node in 0..self.nodes() {
            let (state, detail) = if self.set(&self.paused).contains(&node) {
                (NodeState::Paused, "paused by this run".to_string())
            } else if self.set(&self.killed).contains(&node) {
                (NodeState::Down, "killed by this run".to_string())
            } else {
                match self.node_health(node).await {
                    Ok(what) => (NodeState::Healthy, what),
                    Err(why) => (NodeState::Unhealthy, why),
                }
            };
            statuses.push(NodeStatus {
                node,
                pid: None,
                state,
                detail,
            });
        }
        Ok(statuses)
    }

    fn endpoints(&self) -> Vec<NodeEndpoint> {
        self.endpoints
            .iter()
            .enumerate()
            .map(|(node, (endpoint, address))| NodeEndpoint {
                node,
                client: *address,
                direct: *address,
                proxy: self.proxies.get(node).cloned().unwrap_or_default(),
                url: endpoint.clone(),
            })
            .collect()
    }

    /// No process of an external node runs here: its pid file is never written.
    fn node_process(&self, node: usize) -> NodeProcess {
        NodeProcess::in_dir(self.scratch.join(format!("node{node}")))
    }

    fn runs_here(&self) -> bool {
        false
    }

    async fn restart(&self, node: usize) -> Result<()> {
        self.command("restart", self.commands.restart.as_deref(), node).await?;
        self.set(&self.killed).remove(&node);
        self.wait_ready(node).await
    }

    async fn kill(&self, node: usize) -> Result<()> {
        // Counted as killed before the command: a kill whose reply was lost is still mended.
        self.set(&self.killed).insert(node);
        self.command("kill", self.commands.kill.as_deref(), node).await
    }

    async fn pause(&self, node: usize) -> Result<()> {
        self.set(&self.paused).insert(node);
        self.command("pause", self.commands.pause.as_deref(), node).await
    }

    async fn resume(&self, node: usize) -> Result<()> {
        self.command("resume", self.commands.resume.as_deref(), node).await?;
        self.set(&self.paused).remove(&node);
        Ok(())
    }

    /// Resume what this run paused and restart what it killed; after a killed ackcheck (nothing
    /// known), resume every node that does not answer and restart those that still do not.
    async fn heal_processes(&self) -> Vec<anyhow::Error> {
        let mut errors = Vec::new();
        let (paused, killed) = (self.set(&self.paused).clone(), self.set(&self.killed).clone());
        if paused.is_empty() && killed.is_empty() {
            for node in 0..self.nodes() {
                if self.node_health(node).await.is_ok() {
                    continue;
                }
                if self.commands.resume.is_some() {
                    let _ = self.resume(node).await;
                }
                if self.node_health(node).await.is_err() && self.commands.restart.is_some() {
                    if let Err(e) = self.restart(node).await {
                        errors.push(anyhow::Error::from(e));
                    }
                }
            }
            return errors;
        }
        for node in paused {
            if let Err(e) = self.resume(node).await {
                errors.push(anyhow::Error::from(e));
            }
        }
        for node in killed {
            if let Err(e) = self.restart(node).await {
                errors.push(anyhow::Error::from(e));
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(commands: ExternalCommands) -> ExternalCluster {
        let round_trip: RoundTrip = Arc::new(|endpoint| Box::pin(async move { Ok(format!("{endpoint} answered")) }));
        ExternalCluster::new(
            "nats",
            ExternalNodes {
                endpoints: &["127.0.0.1:4222".into(), "localhost:4223".into()],
                hosts: None,
                commands,
                toxiproxy: None,
            },
            round_trip,
            Arc::new(|_| {}),
            std::env::temp_dir().join("ackcheck-external-test"),
        )
        .expect("loopback endpoints resolve")
    }

    #[test]
    fn templates_get_the_node_its_host_and_port() {
        let c = cluster(ExternalCommands::default());
        assert_eq!(
            c.fill("docker kill nats-{node} # {host} {port} {endpoint}", 1),
            "docker kill nats-1 # localhost 4223 localhost:4223"
        );
    }

    #[tokio::test]
    async fn a_failing_command_is_an_error_with_its_output_and_a_missing_one_says_what_to_add() {
        let c = cluster(ExternalCommands {
            kill: Some("echo no such container {node} >&2; exit 3".into()),
            ..ExternalCommands::default()
        });
        let e = c.kill(0).await.unwrap_err().to_string();
        assert!(e.contains("no such container 0") && e.contains("exit status: 3"), "{e}");
        let e = c.pause(1).await.unwrap_err().to_string();
        assert!(e.contains("no `pause` command under [external.commands]"), "{e}");
    }

    #[tokio::test]
    async fn a_command_past_its_timeout_fails() {
        let c = cluster(ExternalCommands {
            pause: Some("sleep 5".into()),
            timeout: 0.3,
            ..ExternalCommands::default()
        });
        let started = Instant::now();
        let e = c.pause(0).await.unwrap_err().to_string();
        assert!(e.contains("did not finish within"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn status_reports_what_this_run_broke_and_asks_the_rest() {
        let c = cluster(ExternalCommands {
            pause: Some("true".into()),
            health: Some("test {node} = 0".into()),
            ..ExternalCommands::default()
        });
        c.pause(0).await.expect("pause ran");
        let states: Vec<NodeState> = c.status().await.unwrap().iter().map(|s| s.state).collect();
        // Node 0 paused by the run; node 1's health command fails.
        assert_eq!(states, vec![NodeState::Paused, NodeState::Unhealthy]);
    }
}
