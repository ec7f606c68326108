//! RabbitMQ from Debian's `rabbitmq-server` package, run as plain processes (no systemd).
//!
//! Every node gets its own name (`ackcheck-rabbit<i>@localhost`), AMQP and distribution ports,
//! data, log and config under `run/rabbitmq/node<i>`. The cluster shares one Erlang cookie (a
//! `HOME` of its own, so the CLI tools find it) and one epmd on a port of our block, started by us
//! and stopped at `down`, so nothing touches a system epmd or node. Three nodes are joined with
//! `rabbitmqctl join_cluster`; quorum queues need no extra setup.

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use rand::Rng;

use super::KIND;
use crate::nodes::process::{self, NodeProcess};
use crate::nodes::toxiproxy::{self, Toxiproxy};
use crate::nodes::{Cluster, ClusterError, Home, NodeEndpoint, NodeStatus, Result};

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
/// Installs the package without starting its node (also usable by hand: `bash install-debian.sh`).
const INSTALL_SCRIPT: &str = include_str!("install-debian.sh");
const CTL: &str = "/usr/lib/rabbitmq/bin/rabbitmqctl";
/// The largest cluster we run; `down` cleans up this many nodes whatever size was asked.
const MAX_NODES: usize = 3;
const AMQP_SLOT: u16 = 1;
const DIST_SLOT: u16 = 2;
/// How long a node may take to boot (three nodes booting at once on two busy cores are slow).
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
const STOP_GRACE: Duration = Duration::from_secs(20);

/// One shared epmd for the cluster, on the last slot of node 0.
pub fn epmd_port() -> u16 {
    KIND.port(0, 9)
}

pub fn node_name(node: usize) -> String {
    format!("ackcheck-rabbit{node}@localhost")
}

pub struct RabbitCluster {
    home: Home,
    nodes: usize,
}

impl RabbitCluster {
    pub fn new(home: Home, nodes: usize) -> RabbitCluster {
        RabbitCluster { home, nodes }
    }

    /// The `HOME` of every node and CLI call: holds the cluster's Erlang cookie.
    fn erlang_home(&self) -> PathBuf {
        self.home.run_dir(KIND.name()).join("home")
    }

    /// The epmd we start for this cluster (its pid file and log).
    pub fn epmd_process(&self) -> NodeProcess {
        NodeProcess::in_dir(self.home.run_dir(KIND.name()).join("epmd"))
    }

    /// The ports the brokers themselves hold (AMQP, distribution, epmd), up to the largest cluster.
    fn broker_ports() -> Vec<u16> {
        let mut ports: Vec<u16> = (0..MAX_NODES)
            .flat_map(|i| [KIND.port(i, AMQP_SLOT), KIND.port(i, DIST_SLOT)])
            .collect();
        ports.push(epmd_port());
        ports
    }

    /// Every port this cluster uses (proxies included), for checks at `up` and `down`.
    pub fn ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = (0..MAX_NODES).map(|i| KIND.port(i, 0)).collect();
        ports.extend(Self::broker_ports());
        ports
    }

    /// Debian's `rabbitmq-server` package is ackcheck's RabbitMQ: installed here when missing
    /// and ackcheck runs as root (apt, without letting the package start a node of its own, see
    /// install-debian.sh); otherwise one sentence says what to run.
    fn ensure_installed() -> Result<()> {
        if Path::new(SERVER).exists() {
            return Ok(());
        }
        if !nix::unistd::geteuid().is_root() {
            return Err(ClusterError::Other(format!(
                "RabbitMQ is not installed ({SERVER} is missing) and ackcheck is not root, so it cannot install it: run `sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y rabbitmq-server` (then `sudo systemctl disable --now rabbitmq-server`, ackcheck runs its own nodes) and try again"
            )));
        }
        tracing::info!("installing Debian's rabbitmq-server package (apt-get, its own node not started)");
        process::run_step(
            "RabbitMQ (Debian's rabbitmq-server package)",
            "apt-get install rabbitmq-server",
            Command::new("bash").arg("-c").arg(INSTALL_SCRIPT),
        )?;
        if Path::new(SERVER).exists() {
            Ok(())
        } else {
            Err(ClusterError::Other(format!(
                "the rabbitmq-server package installed without {SERVER}; check `dpkg -L rabbitmq-server` and the Debian release"
            )))
        }
    }

    fn proxy_name(node: usize) -> String {
        format!("rabbitmq-node{node}")
    }

    fn url(node: usize) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", KIND.port(node, 0))
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

    /// Environment shared by the server and the CLI: our cookie, our epmd, no system env file.
    fn common_env(&self, cmd: &mut Command) {
        let home = self.erlang_home();
        cmd.env("HOME", &home)
            .env("ERL_EPMD_PORT", epmd_port().to_string())
            .env("RABBITMQ_CONF_ENV_FILE", home.join("rabbitmq-env.conf"))
            .env_remove("NOTIFY_SOCKET")
            .env_remove("RABBITMQ_NODENAME");
    }

    /// A fresh cookie and an empty env file (so `/etc/rabbitmq/rabbitmq-env.conf` is not read).
    fn write_erlang_home(&self) -> Result<()> {
        let home = self.erlang_home();
        fs::create_dir_all(&home).map_err(ClusterError::io(format!("creating {}", home.display())))?;
        fs::write(home.join("rabbitmq-env.conf"), "").map_err(ClusterError::io("writing rabbitmq-env.conf"))?;
        let mut rng = rand::thread_rng();
        let cookie: String = (0..20).map(|_| rng.gen_range(b'A'..=b'Z') as char).collect();
        let path = home.join(".erlang.cookie");
        let _ = fs::remove_file(&path);
        // Erlang refuses a cookie that others can read.
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(&path)
            .map_err(ClusterError::io("writing the Erlang cookie"))?;
        std::io::Write::write_all(&mut file, cookie.as_bytes()).map_err(ClusterError::io("writing the Erlang cookie"))
    }

    fn write_node_config(&self, node: usize) -> Result<PathBuf> {
        let dir = self.home.node_dir(KIND.name(), node);
        fs::create_dir_all(dir.join("log")).map_err(ClusterError::io(format!("creating {}", dir.display())))?;
        fs::write(dir.join("enabled_plugins"), "[].\n").map_err(ClusterError::io("writing enabled_plugins"))?;
        // A small memory watermark keeps the footprint honest; a low disk limit keeps publishers
        // unblocked on small test disks.
        let conf = format!(
            "listeners.tcp.1 = 127.0.0.1:{}\nvm_memory_high_watermark.absolute = 512MB\ndisk_free_limit.absolute = 50MB\n",
            KIND.port(node, AMQP_SLOT)
        );
        let path = dir.join("rabbitmq.conf");
        fs::write(&path, conf).map_err(ClusterError::io("writing rabbitmq.conf"))?;
        Ok(dir)
    }

    /// Start epmd for the cluster unless ours is already running.
    async fn ensure_epmd(&self) -> Result<()> {
        let epmd = self.epmd_process();
        if epmd.pid().is_some() {
            return Ok(());
        }
        process::ensure_ports_free(&[epmd_port()], "RabbitMQ's epmd")?;
        let mut cmd = Command::new("epmd");
        cmd.args(["-address", "127.0.0.1", "-port", &epmd_port().to_string()]);
        epmd.spawn(cmd)?;
        let ready = process::wait_until(Duration::from_secs(10), Duration::from_millis(100), || async {
            if process::port_taken(epmd_port()) {
                Ok(())
            } else {
                Err("epmd is not listening".to_string())
            }
        });
        ready.await.map_err(|e| {
            ClusterError::Other(format!(
                "epmd did not start ({e}); its log ends with:\n{}",
                epmd.log_tail(10)
            ))
        })
    }

    /// Stop our epmd, and any epmd an Erlang tool daemonized on our port while ours was down.
    fn stop_epmd(&self) -> Result<()> {
        self.epmd_process().stop(Duration::from_secs(5))?;
        let marker = format!("ERL_EPMD_PORT={}", epmd_port());
        for pid in pids_named("epmd") {
            let environ = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let ours = environ.split(|&b| b == 0).any(|var| var == marker.as_bytes());
            if ours {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        Ok(())
    }

    /// Start one node on its data directory. `rabbitmq-server` execs `erl`, which execs the
    /// Erlang VM, when RABBITMQ_ALLOW_INPUT is set (otherwise it stays as a signal-forwarding
    /// shell), so the recorded pid is beam.smp itself; `-noinput` keeps the shell off.
    fn spawn_node(&self, node: usize) -> Result<u32> {
        process::ensure_ports_free(
            &[KIND.port(node, AMQP_SLOT), KIND.port(node, DIST_SLOT)],
            &format!("RabbitMQ node {node}"),
        )?;
        let dir = self.write_node_config(node)?;
        let mut cmd = Command::new(SERVER);
        self.common_env(&mut cmd);
        cmd.env("RABBITMQ_NODENAME", node_name(node))
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", KIND.port(node, AMQP_SLOT).to_string())
            .env("RABBITMQ_DIST_PORT", KIND.port(node, DIST_SLOT).to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_LOGS", "-") // the main log to stdout, i.e. node.log
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("advanced.config"))
            .env("RABBITMQ_PID_FILE", dir.join("rabbitmq.pid"))
            .env("ERL_CRASH_DUMP", dir.join("erl_crash.dump")) // not into the caller's directory
            .current_dir(&dir)
            .env("RABBITMQ_ALLOW_INPUT", "true")
            // Unbound schedulers: several nodes share two cores with other brokers.
            .env("RABBITMQ_SCHEDULER_BIND_TYPE", "u")
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-noinput -start_epmd false -kernel inet_dist_use_interface {127,0,0,1}",
            );
        self.node_process(node).spawn(cmd)
    }

    /// Run `rabbitmqctl -n <node> args…`; Ok(stdout) or Err(what it printed).
    async fn ctl(&self, node: usize, args: &[&str], timeout: Duration) -> Result<String, String> {
        let mut cmd = Command::new(CTL);
        self.common_env(&mut cmd);
        cmd.arg("-n").arg(node_name(node)).args(args);
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true).stdin(std::process::Stdio::null());
        let out = match tokio::time::timeout(timeout, cmd.output()).await {
            Err(_) => {
                return Err(format!(
                    "rabbitmqctl {} timed out after {} s",
                    args.join(" "),
                    timeout.as_secs()
                ))
            }
            Ok(Err(e)) => return Err(format!("could not run {CTL}: {e}")),
            Ok(Ok(out)) => out,
        };
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            let text = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
            Err(format!("rabbitmqctl {} failed: {}", args.join(" "), text.trim()))
        }
    }

    /// The nodes that `node` sees running in its cluster.
    pub async fn running_nodes(&self, node: usize) -> Result<Vec<String>, String> {
        let out = self
            .ctl(
                node,
                &["cluster_status", "--formatter", "json"],
                Duration::from_secs(30),
            )
            .await?;
        let json: serde_json::Value =
            serde_json::from_str(out.trim()).map_err(|e| format!("cluster_status printed no JSON ({e}): {out}"))?;
        let running = json["running_nodes"]
            .as_array()
            .ok_or_else(|| format!("cluster_status has no running_nodes: {out}"))?;
        Ok(running.iter().filter_map(|n| n.as_str().map(str::to_string)).collect())
    }

    /// Wait until the node has booted (`await_startup`) and answers an AMQP round trip through
    /// its proxy. Fails early if the process exits.
    async fn wait_node_ready(&self, node: usize, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        let deadline = started + timeout;
        let proc = self.node_process(node);
        let mut booted = false;
        loop {
            if proc.pid().is_none() {
                return Err(self.not_ready(node, started.elapsed().as_secs(), "the node process exited"));
            }
            let step = if !booted {
                match self
                    .ctl(node, &["await_startup", "--timeout", "10"], Duration::from_secs(30))
                    .await
                {
                    Ok(_) => {
                        booted = true;
                        continue;
                    }
                    Err(e) => format!("rabbitmqctl await_startup: {e}"),
                }
            } else {
                match round_trip(&Self::url(node)).await {
                    Ok(()) => return Ok(()),
                    Err(e) => format!("AMQP round trip through the proxy on port {}: {e}", KIND.port(node, 0)),
                }
            };
            if Instant::now() >= deadline {
                return Err(self.not_ready(node, timeout.as_secs(), step));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Wait until `node` sees every node of the cluster running.
    async fn wait_cluster_formed(&self, node: usize, timeout: Duration) -> Result<()> {
        let check = || async {
            let running = self.running_nodes(node).await?;
            if running.len() == self.nodes {
                Ok(())
            } else {
                Err(format!(
                    "cluster_status lists {} running node(s): {running:?}",
                    running.len()
                ))
            }
        };
        let seconds = timeout.as_secs();
        process::wait_until(timeout, Duration::from_secs(1), check)
            .await
            .map_err(|e| self.not_ready(node, seconds, e))
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
                &format!("127.0.0.1:{}", KIND.port(node, AMQP_SLOT)),
            )
            .await
    }

    /// A fresh cluster (ports checked): clean state, epmd, proxies, nodes, joins, readiness.
    async fn start_fresh(&self, proxy: &Toxiproxy) -> Result<()> {
        let run_dir = self.home.run_dir(KIND.name());
        if run_dir.exists() {
            fs::remove_dir_all(&run_dir)
                .map_err(ClusterError::io(format!("removing old state in {}", run_dir.display())))?;
        }
        process::record_nodes(&self.home, KIND.name(), self.nodes)?;
        self.write_erlang_home()?;
        self.ensure_epmd().await?;
        for node in 0..self.nodes {
            self.ensure_proxy(proxy, node).await?;
            self.spawn_node(node)?;
        }
        for node in 0..self.nodes {
            self.wait_node_ready(node, BOOT_TIMEOUT).await?;
        }
        for node in 1..self.nodes {
            let seed = node_name(0);
            for args in [&["stop_app"][..], &["join_cluster", &seed], &["start_app"]] {
                self.ctl(node, args, Duration::from_secs(120))
                    .await
                    .map_err(|e| self.not_ready(node, 120, e))?;
            }
        }
        if self.nodes > 1 {
            self.wait_cluster_formed(0, Duration::from_secs(60)).await?;
            for node in 0..self.nodes {
                self.wait_node_ready(node, Duration::from_secs(60)).await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Cluster for RabbitCluster {
    fn broker(&self) -> &'static str {
        KIND.name()
    }

    fn nodes(&self) -> usize {
        self.nodes
    }

    async fn up(&self) -> Result<()> {
        Self::ensure_installed()?;
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
        // Check every port before starting anything, so that a clash leaves nothing half-started.
        // Proxies named like ours whose nodes are gone are stale (a crashed `up`): delete them
        // to free their ports, but only once the nodes' own ports are known to be free.
        process::ensure_ports_free(&Self::broker_ports(), "RabbitMQ")?;
        let proxy = toxiproxy::ensure_running(&self.home).await?;
        for node in 0..MAX_NODES {
            proxy.delete_proxy(&Self::proxy_name(node)).await?;
        }
        if let Err(e) = process::ensure_ports_free(&self.ports(), "RabbitMQ") {
            let _ = toxiproxy::stop_if_unused(&self.home).await;
            return Err(e);
        }
        if let Err(e) = self.start_fresh(&proxy).await {
            let _ = self.down().await;
            return Err(e);
        }
        Ok(())
    }

    async fn down(&self) -> Result<()> {
        // SIGTERM makes the Erlang VM shut RabbitMQ down cleanly; stop all nodes at once.
        let stops: Vec<_> = (0..MAX_NODES)
            .map(|node| {
                let proc = self.node_process(node);
                tokio::task::spawn_blocking(move || proc.stop(STOP_GRACE))
            })
            .collect();
        for stop in stops {
            stop.await
                .map_err(|e| ClusterError::Other(format!("stopping a RabbitMQ node panicked: {e}")))??;
        }
        let proxy = Toxiproxy::default();
        if proxy.is_up().await {
            for node in 0..MAX_NODES {
                proxy.delete_proxy(&Self::proxy_name(node)).await?;
            }
        }
        self.stop_epmd()?;
        toxiproxy::stop_if_unused(&self.home).await?;
        let taken = process::wait_ports_free(&self.ports(), Duration::from_secs(20)).await;
        if let Some(&port) = taken.first() {
            return Err(ClusterError::PortTaken {
                port,
                needed_by: "RabbitMQ (still held after down)".into(),
            });
        }
        process::forget_nodes(&self.home, KIND.name());
        Ok(())
    }

    async fn status(&self) -> Result<Vec<NodeStatus>> {
        let mut statuses = Vec::new();
        for node in 0..self.nodes {
            let answered = async {
                round_trip(&Self::url(node)).await?;
                Ok(format!("AMQP round trip through 127.0.0.1:{} ok", KIND.port(node, 0)))
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
                direct: ([127, 0, 0, 1], KIND.port(node, AMQP_SLOT)).into(),
                proxy: Self::proxy_name(node),
                url: Self::url(node),
            })
            .collect()
    }

    fn node_process(&self, node: usize) -> NodeProcess {
        NodeProcess::in_dir(self.home.node_dir(KIND.name(), node))
    }

    /// The leader of the quorum queue `dest` (vhost `/`), as the first running node reports it.
    /// `None` for a classic queue (its `leader` column is empty), an unknown queue, or when no
    /// node answers.
    async fn leader(&self, dest: &str) -> Option<usize> {
        let args = ["list_queues", "name", "leader", "--formatter", "json"];
        for node in 0..self.nodes {
            let proc = self.node_process(node);
            if proc.pid().is_none() || proc.is_paused() {
                continue;
            }
            let Ok(out) = self.ctl(node, &args, Duration::from_secs(15)).await else {
                continue;
            };
            return leader_in(&out, dest, self.nodes);
        }
        None
    }

    async fn restart(&self, node: usize) -> Result<()> {
        self.check_node(node)?;
        Self::ensure_installed()?;
        if process::recorded_nodes(&self.home, KIND.name()).is_none() {
            return Err(ClusterError::NotUp { broker: KIND.name() });
        }
        // The proxy (or Toxiproxy itself) may be gone too: clients need it as much as the node.
        let proxy = toxiproxy::ensure_running(&self.home).await?;
        self.ensure_proxy(&proxy, node).await?;
        if self.node_process(node).pid().is_none() {
            self.ensure_epmd().await?;
            // Right after a SIGKILL the VM's threads may still hold its listening sockets for a moment.
            process::wait_ports_free(
                &[KIND.port(node, AMQP_SLOT), KIND.port(node, DIST_SLOT)],
                Duration::from_secs(10),
            )
            .await;
            self.spawn_node(node)?;
        }
        // A restarted member rejoins on its own (its data remembers the cluster).
        let ready = async {
            self.wait_node_ready(node, BOOT_TIMEOUT).await?;
            if self.nodes > 1 {
                self.wait_cluster_formed(node, Duration::from_secs(60)).await?;
            }
            Ok(())
        };
        ready.await
    }
}

/// Connect through `url`, open a channel and declare a server-named exclusive queue.
async fn round_trip(url: &str) -> Result<(), String> {
    let attempt = async {
        let conn = Connection::connect(url, ConnectionProperties::default())
            .await
            .map_err(|e| format!("connecting: {e}"))?;
        let declared = async {
            let channel = conn.create_channel().await?;
            let options = QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            };
            channel.queue_declare("".into(), options, FieldTable::default()).await?;
            // Closing the channel before the connection keeps lapin from logging a closing race.
            channel.close(200, "ackcheck health check".into()).await
        };
        let result = declared.await.map_err(|e| format!("declaring a queue: {e}"));
        let _ = conn.close(200, "ackcheck health check".into()).await;
        result.map(|_| ())
    };
    tokio::time::timeout(Duration::from_secs(10), attempt)
        .await
        .unwrap_or_else(|_| Err("no answer within 10 s".into()))
}

/// The node index of `dest`'s leader in `rabbitmqctl list_queues name leader --formatter json`.
fn leader_in(list_queues_json: &str, dest: &str, nodes: usize) -> Option<usize> {
    let rows: Vec<serde_json::Value> = serde_json::from_str(list_queues_json.trim()).ok()?;
    let row = rows.iter().find(|r| r["name"].as_str() == Some(dest))?;
    let leader = row["leader"].as_str()?;
    (0..nodes).find(|&i| node_name(i) == leader)
}

/// Pids of processes whose command name is `name`.
fn pids_named(name: &str) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_is_read_from_list_queues_and_mapped_to_the_node_index() {
        let out = r#"[
{"name":"q1","leader":"ackcheck-rabbit2@localhost"}
,{"name":"c1","leader":""}
]"#;
        assert_eq!(leader_in(out, "q1", 3), Some(2));
        assert_eq!(leader_in(out, "q1", 1), None, "a node outside the cluster is no leader");
        assert_eq!(leader_in(out, "c1", 3), None, "classic queues have no leader");
        assert_eq!(leader_in(out, "other", 3), None);
        assert_eq!(leader_in("Error: not JSON", "q1", 3), None);
    }
}
