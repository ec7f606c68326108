//! RabbitMQ from Debian's `rabbitmq-server` package, run as plain processes (no systemd).
//!
//! Every node gets its own name (`ackcheck-rabbit<i>@localhost`), AMQP and distribution ports,
//! data, log and config under `run/rabbitmq/node<i>`. The cluster shares one Erlang cookie (a
//! `HOME` of its own, so the CLI tools find it) and one epmd on a port of our block, started by us
//! and stopped at `down`, so nothing touches a system epmd or node. Three nodes are joined with
//! `rabbitmqctl join_cluster`; quorum queues need no extra setup.
//!
//! In network namespaces (partitions, `crate::nodes::netns`) each node is named after a host
//! of its own (`ackcheck-rabbit<i>@ackns<proxy port>`), resolved to its namespace's address by
//! an Erlang hosts file (`ERL_INETRC`) that the nodes and the CLI share, runs its own epmd in
//! its namespace, and listens and distributes on its address only.

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use async_trait::async_trait;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use rand::Rng;

use super::KIND;
use crate::broker::Props;
use crate::nodes::process::{self, NodeProcess};
use crate::nodes::{ClusterError, Home, NodeHosts, NodeNetwork, NodePort, NodeRecipe, PortRole, Result};

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
/// Installs the package without starting its node (also usable by hand: `bash install-debian.sh`).
const INSTALL_SCRIPT: &str = include_str!("install-debian.sh");
/// Installs Debian 13's package into a root of its own (`bash install-debian13.sh ROOT`).
const INSTALL_DEBIAN13_SCRIPT: &str = include_str!("install-debian13.sh");

/// The RabbitMQ versions ackcheck runs: Debian 12's package (the default, on the system) and
/// Debian 13's (RabbitMQ 4.0 on Erlang 27, which Debian 12 cannot install beside its own C
/// library: it runs from a Debian 13 root, see [`RabbitNodes::program`]).
pub const VERSIONS: &[&str] = &["3.10.8", DEBIAN13_VERSION];
const DEBIAN13_VERSION: &str = "4.0.5";

/// Runs a program of a Debian 13 root: in a mount namespace of its own (nothing is left mounted
/// when it ends, also after kill -9), with ackcheck's home bound at the same path inside, so that
/// every path in the environment means the same in the root, and /dev and /proc. `exec` all the
/// way down, so the pid ackcheck records is the program's own (for rabbitmq-server: the VM's).
const ENTER_ROOT: &str = r#"set -e
root=$1; home=$2; shift 2
mkdir -p "$root$home" "$root/dev" "$root/proc" "$root/tmp"
mount --bind "$home" "$root$home"
mount --rbind /dev "$root/dev"
mount -t proc proc "$root/proc"
exec chroot "$root" "$@""#;
const CTL: &str = "/usr/lib/rabbitmq/bin/rabbitmqctl";
const AMQP_SLOT: u16 = 1;
const DIST_SLOT: u16 = 2;
/// How long a node may take to boot (three nodes booting at once on two busy cores are slow).
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
const STOP_GRACE: Duration = Duration::from_secs(20);

/// One shared epmd for the cluster, on the last slot of node 0.
pub fn epmd_port() -> u16 {
    KIND.port(0, 9)
}

/// Node `node`'s name on loopback.
pub fn node_name(node: usize) -> String {
    format!("ackcheck-rabbit{node}@localhost")
}

/// The epmd ackcheck starts for the RabbitMQ cluster under `home` (its pid file and log).
pub fn epmd_process(home: &Home) -> NodeProcess {
    NodeProcess::in_dir(home.run_dir(KIND.name()).join("epmd"))
}

/// RabbitMQ's nodes, as the one local lifecycle (`crate::nodes::LocalCluster`) runs them.
pub struct RabbitNodes {
    home: Home,
    nodes: usize,
    /// The campaign's `[server]` settings (`rabbitmq.conf` keys), written after ackcheck's own.
    server: Props,
    /// Where each node listens (loopback, or its own network namespace).
    hosts: NodeHosts,
    /// The Debian 13 root the nodes run from (`version = "4.0.5"`); `None`: the system's package.
    root: Option<PathBuf>,
}

impl RabbitNodes {
    pub fn new(home: Home, nodes: usize, server: Props, hosts: NodeHosts) -> RabbitNodes {
        RabbitNodes {
            home,
            nodes,
            server,
            hosts,
            root: None,
        }
    }

    /// Run `version` (one of [`VERSIONS`]; anything else is the system's package).
    pub fn with_version(mut self, version: &str) -> RabbitNodes {
        self.root = (version == DEBIAN13_VERSION).then(|| {
            let dir = self.home.install_dir(&format!("rabbitmq-{version}")).join("root");
            std::path::absolute(&dir).unwrap_or(dir)
        });
        self
    }

    /// `program` as a command: the system's, or the Debian 13 root's (see [`ENTER_ROOT`]).
    /// Arguments added to the command go to `program`.
    fn program(&self, program: &str) -> Command {
        let Some(root) = &self.root else {
            return Command::new(program);
        };
        let home = std::path::absolute(self.home.root()).unwrap_or_else(|_| self.home.root().to_path_buf());
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            ENTER_ROOT,
            "enter-root",
        ])
        .arg(root)
        .arg(home)
        .arg(program);
        cmd
    }

    fn namespaced(&self) -> bool {
        self.hosts.network == NodeNetwork::Namespaces
    }

    /// The host part of node `node`'s name in a namespace: a short name of its own, mapped to
    /// its address by the Erlang hosts file.
    fn host_alias(&self, node: usize) -> String {
        format!("ackns{}", KIND.port(node, 0))
    }

    /// Node `node`'s Erlang node name.
    pub fn node_name(&self, node: usize) -> String {
        if self.namespaced() {
            format!("ackcheck-rabbit{node}@{}", self.host_alias(node))
        } else {
            node_name(node)
        }
    }

    /// The Erlang hosts file (`ERL_INETRC`) of a namespaced cluster: every node's alias and
    /// address, then the system's resolver.
    fn inetrc_file(&self) -> PathBuf {
        self.erlang_home().join("inetrc")
    }

    fn inetrc(&self) -> String {
        let mut text = String::new();
        for node in 0..self.nodes {
            let octets = self.hosts.ip(node).octets();
            text.push_str(&format!(
                "{{host, {{{},{},{},{}}}, [\"{}\"]}}.\n",
                octets[0],
                octets[1],
                octets[2],
                octets[3],
                self.host_alias(node)
            ));
        }
        // `rabbitmqctl` runs in the root namespace as `rabbitmqcli-…@<this machine's name>`;
        // inside a namespace that name means the namespace's own loopback, and a node that
        // answers the CLI from another node (`list_queues` gathers from every member) could
        // not reach it: there it is the bridge's address.
        if let Some(hostname) = machine_hostname() {
            let [a, b, c, d] = crate::nodes::netns::BRIDGE_IP.octets();
            text.push_str(&format!("{{host, {{{a},{b},{c},{d}}}, [\"{hostname}\"]}}.\n"));
        }
        text.push_str("{lookup, [file, native]}.\n");
        text
    }

    /// Extra Erlang flags in namespaces: a peer is declared down after `net_ticktime` without
    /// traffic, 60 s by default, longer than most partitions a run makes; 10 s lets
    /// `cluster_partition_handling` act within a partition (documented in docs/partitions.md).
    fn partition_erl_args(&self) -> &'static str {
        if self.namespaced() {
            " -kernel net_ticktime 10"
        } else {
            ""
        }
    }

    /// Node `node`'s own epmd in its namespace.
    fn node_epmd(&self, node: usize) -> NodeProcess {
        NodeProcess::in_dir(self.node_dir(node).join("epmd"))
    }

    /// Node `node`'s `rabbitmq.conf`: its listener, ackcheck's resource limits (unless the
    /// campaign sets its own), then the campaign's `[server]` keys.
    fn rabbitmq_conf(&self, node: usize) -> String {
        let mut conf = format!(
            "# Written by ackcheck for node {node} of {}.\nlisteners.tcp.1 = {}:{}\n",
            self.nodes,
            self.hosts.ip(node),
            KIND.port(node, AMQP_SLOT)
        );
        if self.namespaced() {
            // Clients reach a namespaced node through its proxy, from the bridge's address: the
            // guest user must not be limited to loopback connections.
            conf.push_str("loopback_users.guest = false\n");
        }
        // A small memory watermark keeps the footprint honest; a low disk limit keeps
        // publishers unblocked on small test disks. A campaign's own limit of either kind
        // replaces ours (two kinds of one limit in one file are refused by the node).
        for (own, value, family) in [
            ("vm_memory_high_watermark.absolute", "512MB", "vm_memory_high_watermark"),
            ("disk_free_limit.absolute", "50MB", "disk_free_limit"),
        ] {
            let theirs = self
                .server
                .iter()
                .any(|(k, _)| k == family || k.starts_with(&format!("{family}.")));
            if !theirs {
                conf.push_str(&format!("{own} = {value}\n"));
            }
        }
        if !self.server.is_empty() {
            conf.push_str("# The campaign's [server] settings.\n");
            for (key, value) in self.server.iter() {
                conf.push_str(&format!("{key} = {value}\n"));
            }
        }
        conf
    }

    /// The `HOME` of every node and CLI call: holds the cluster's Erlang cookie.
    fn erlang_home(&self) -> PathBuf {
        self.home.run_dir(KIND.name()).join("home")
    }

    fn node_dir(&self, node: usize) -> PathBuf {
        self.home.node_dir(KIND.name(), node)
    }

    fn url(node: usize) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", KIND.port(node, 0))
    }

    /// Environment shared by the server and the CLI: our cookie, our epmd, no system env file.
    fn common_env(&self, cmd: &mut Command) {
        let home = self.erlang_home();
        cmd.env("HOME", &home)
            .env("ERL_EPMD_PORT", epmd_port().to_string())
            .env("RABBITMQ_CONF_ENV_FILE", home.join("rabbitmq-env.conf"))
            .env_remove("NOTIFY_SOCKET")
            .env_remove("RABBITMQ_NODENAME");
        if self.namespaced() {
            cmd.env("ERL_INETRC", self.inetrc_file());
        }
    }

    /// Start the epmd `node` registers with unless it runs: the cluster's one on loopback, the
    /// node's own in its namespace.
    async fn ensure_epmd(&self, node: usize) -> Result<()> {
        let (epmd, netns) = match self.hosts.netns(node) {
            Some(netns) => (self.node_epmd(node), Some(netns)),
            None => (epmd_process(&self.home), None),
        };
        if epmd.pid().is_some() {
            return Ok(());
        }
        let mut cmd = self.program("epmd");
        let listening = std::net::SocketAddr::from((self.hosts.ip(node), epmd_port()));
        if netns.is_none() {
            process::ensure_ports_free(&[epmd_port()], "RabbitMQ's epmd")?;
            cmd.args(["-address", "127.0.0.1"]);
        }
        // In a namespace epmd listens on every address of it: the node registers on the
        // namespace's loopback, its peers and the CLI look it up on the node's address.
        cmd.args(["-port", &epmd_port().to_string()]);
        epmd.spawn_in(cmd, netns.as_deref())?;
        let ready = process::wait_until(Duration::from_secs(10), Duration::from_millis(100), || async {
            let answers = std::net::TcpStream::connect_timeout(&listening, Duration::from_millis(500)).is_ok();
            if answers {
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

    /// Run `rabbitmqctl -n <node> args…`; Ok(stdout) or Err(what it printed).
    async fn ctl(&self, node: usize, args: &[&str], timeout: Duration) -> Result<String, String> {
        let mut cmd = self.program(CTL);
        self.common_env(&mut cmd);
        cmd.arg("-n").arg(self.node_name(node)).args(args);
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
}

/// `rabbitmq-server` inside the Debian 13 root `root`.
fn server_in(root: &Path) -> PathBuf {
    root.join(SERVER.trim_start_matches('/'))
}

impl RabbitNodes {
    /// Debian 13's rabbitmq-server in a Debian 13 root (debootstrap from Debian's archive),
    /// cached under ackcheck's installs.
    fn install_debian13(&self, root: &Path) -> Result<()> {
        if server_in(root).exists() {
            return Ok(());
        }
        if !nix::unistd::geteuid().is_root() {
            return Err(ClusterError::Other(format!(
                "RabbitMQ {DEBIAN13_VERSION} runs from a Debian 13 root that only root can build and enter (debootstrap, chroot); run ackcheck as root, or use the default version (Debian 12's package)"
            )));
        }
        tracing::info!(
            "installing Debian 13's rabbitmq-server into {} (debootstrap, a few minutes)",
            root.display()
        );
        process::run_step(
            &format!("RabbitMQ {DEBIAN13_VERSION} (Debian 13's rabbitmq-server package)"),
            "debootstrap trixie with rabbitmq-server",
            Command::new("bash")
                .arg("-c")
                .arg(INSTALL_DEBIAN13_SCRIPT)
                .arg("install-debian13")
                .arg(root),
        )?;
        Ok(())
    }
}

#[async_trait]
impl NodeRecipe for RabbitNodes {
    /// Debian's `rabbitmq-server` package is ackcheck's RabbitMQ: installed here when missing
    /// and ackcheck runs as root (apt, without letting the package start a node of its own, see
    /// install-debian.sh); otherwise one sentence says what to run.
    fn install(&self) -> Result<()> {
        if let Some(root) = &self.root {
            return self.install_debian13(root);
        }
        if self.installed() {
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
        if self.installed() {
            Ok(())
        } else {
            Err(ClusterError::Other(format!(
                "the rabbitmq-server package installed without {SERVER} or {CTL}; run `apt-get install --reinstall rabbitmq-server` and check `dpkg -L rabbitmq-server`"
            )))
        }
    }

    fn installed(&self) -> bool {
        match &self.root {
            Some(root) => server_in(root).exists(),
            // Both programs ackcheck runs: a package with files missing is not installed.
            None => Path::new(SERVER).exists() && Path::new(CTL).exists(),
        }
    }

    fn ports(&self, node: usize) -> Vec<NodePort> {
        let ip = self.hosts.ip(node);
        let mut ports = vec![
            NodePort::at(PortRole::Client, "AMQP listener", ip, KIND.port(node, AMQP_SLOT)),
            NodePort::at(
                PortRole::Peer,
                "Erlang distribution port",
                ip,
                KIND.port(node, DIST_SLOT),
            ),
        ];
        if self.namespaced() {
            ports.push(NodePort::at(PortRole::Peer, "epmd", ip, epmd_port()));
        }
        ports
    }

    /// The cluster's one epmd on loopback (in namespaces every node has its own).
    fn shared_ports(&self) -> Vec<NodePort> {
        if self.namespaced() {
            return Vec::new();
        }
        vec![NodePort::local(PortRole::Peer, "epmd", epmd_port())]
    }

    fn data_dirs(&self, node: usize) -> Vec<PathBuf> {
        vec![self.node_dir(node).join("mnesia")]
    }

    /// The node's database (its queues, and the cluster it belongs to).
    fn has_data(&self, node: usize) -> bool {
        self.node_dir(node).join("mnesia").join(self.node_name(node)).is_dir()
    }

    /// A fresh cookie and an empty env file (so `/etc/rabbitmq/rabbitmq-env.conf` is not read).
    async fn prepare_cluster(&self) -> Result<()> {
        let home = self.erlang_home();
        fs::create_dir_all(&home).map_err(ClusterError::io(format!("creating {}", home.display())))?;
        fs::write(home.join("rabbitmq-env.conf"), "").map_err(ClusterError::io("writing rabbitmq-env.conf"))?;
        if self.namespaced() {
            let inetrc = self.inetrc_file();
            fs::write(&inetrc, self.inetrc()).map_err(ClusterError::io(format!("writing {}", inetrc.display())))?;
        }
        let cookie: String = {
            let mut rng = rand::thread_rng();
            (0..20).map(|_| rng.gen_range(b'A'..=b'Z') as char).collect()
        };
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

    fn files(&self, node: usize) -> Vec<(PathBuf, String)> {
        let dir = self.node_dir(node);
        vec![
            (dir.join("enabled_plugins"), "[].\n".to_string()),
            (dir.join("rabbitmq.conf"), self.rabbitmq_conf(node)),
        ]
    }

    /// The log directory, and the cluster's epmd (a restart may find it gone).
    async fn prepare_start(&self, node: usize) -> Result<()> {
        let log = self.node_dir(node).join("log");
        fs::create_dir_all(&log).map_err(ClusterError::io(format!("creating {}", log.display())))?;
        self.ensure_epmd(node).await
    }

    /// `rabbitmq-server` execs `erl`, which execs the Erlang VM, when RABBITMQ_ALLOW_INPUT is set
    /// (otherwise it stays as a signal-forwarding shell), so the recorded pid is beam.smp
    /// itself; `-noinput` keeps the shell off.
    fn command(&self, node: usize) -> Command {
        let dir = self.node_dir(node);
        let mut cmd = self.program(SERVER);
        self.common_env(&mut cmd);
        let ip = self.hosts.ip(node);
        let [a, b, c, d] = ip.octets();
        cmd.env("RABBITMQ_NODENAME", self.node_name(node))
            .env("RABBITMQ_NODE_IP_ADDRESS", ip.to_string())
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
                format!(
                    "-noinput -start_epmd false -kernel inet_dist_use_interface {{{a},{b},{c},{d}}}{}",
                    self.partition_erl_args()
                ),
            );
        cmd
    }

    /// An AMQP round trip through the proxy (RabbitMQ opens its listeners last in its boot, after
    /// recovering its queues), and, with other members, `cluster_status` listing them running.
    async fn probe(&self, node: usize, members: &[usize]) -> std::result::Result<String, String> {
        round_trip(&Self::url(node))
            .await
            .map_err(|e| format!("AMQP round trip through the proxy on port {}: {e}", KIND.port(node, 0)))?;
        let answer = format!("AMQP round trip through 127.0.0.1:{} ok", KIND.port(node, 0));
        if members.iter().all(|&m| m == node) {
            return Ok(answer);
        }
        let running = self.running_nodes(node).await?;
        match members.iter().find(|&&m| !running.contains(&self.node_name(m))) {
            None => Ok(format!("{answer}; cluster_status lists {running:?} running")),
            Some(missing) => Err(format!(
                "cluster_status lists {running:?} running, not yet {}",
                self.node_name(*missing)
            )),
        }
    }

    /// Join nodes 1.. to node 0 (quorum queues need no extra setup).
    async fn form_cluster(&self) -> std::result::Result<(), String> {
        let seed = self.node_name(0);
        for node in 1..self.nodes {
            for args in [&["stop_app"][..], &["join_cluster", &seed], &["start_app"]] {
                self.ctl(node, args, Duration::from_secs(120))
                    .await
                    .map_err(|e| format!("node {node}: {e}"))?;
            }
        }
        Ok(())
    }

    fn ready_timeout(&self) -> Duration {
        BOOT_TIMEOUT
    }

    /// SIGTERM makes the Erlang VM shut RabbitMQ down cleanly.
    fn stop_grace(&self) -> Duration {
        STOP_GRACE
    }

    /// Stop our epmd, and any epmd an Erlang tool daemonized on our port while ours was down.
    async fn after_down(&self) -> Result<()> {
        epmd_process(&self.home).stop(Duration::from_secs(5))?;
        // Every node's own epmd (namespaces), whatever size the cluster had.
        for node in 0..KIND.max_nodes() {
            self.node_epmd(node).stop(Duration::from_secs(5))?;
        }
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

    fn url(&self, node: usize) -> Option<String> {
        Some(Self::url(node))
    }

    /// The leader of the quorum queue `dest` (vhost `/`), as the first live node reports it.
    /// `None` for a classic queue (its `leader` column is empty), an unknown queue, or when no
    /// node answers.
    async fn leader(&self, dest: &str, live: &[usize]) -> Option<usize> {
        let args = ["list_queues", "name", "leader", "--formatter", "json"];
        for &node in live {
            let Ok(out) = self.ctl(node, &args, Duration::from_secs(15)).await else {
                continue;
            };
            let names: Vec<String> = (0..self.nodes).map(|i| self.node_name(i)).collect();
            return leader_in(&out, dest, &names);
        }
        None
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

/// The node index of `dest`'s leader in `rabbitmqctl list_queues name leader --formatter json`,
/// among the node names `names`.
fn leader_in(list_queues_json: &str, dest: &str, names: &[String]) -> Option<usize> {
    let rows: Vec<serde_json::Value> = serde_json::from_str(list_queues_json.trim()).ok()?;
    let row = rows.iter().find(|r| r["name"].as_str() == Some(dest))?;
    let leader = row["leader"].as_str()?;
    names.iter().position(|name| name == leader)
}

/// This machine's host name (the host part of the CLI's Erlang node name), if it has one that
/// Erlang can use as a short name.
fn machine_hostname() -> Option<String> {
    let name = fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim().split('.').next()?.to_string();
    let usable = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    usable.then_some(name)
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
        let names = |n: usize| -> Vec<String> { (0..n).map(node_name).collect() };
        assert_eq!(leader_in(out, "q1", &names(3)), Some(2));
        assert_eq!(
            leader_in(out, "q1", &names(1)),
            None,
            "a node outside the cluster is no leader"
        );
        assert_eq!(leader_in(out, "c1", &names(3)), None, "classic queues have no leader");
        assert_eq!(leader_in(out, "other", &names(3)), None);
        assert_eq!(leader_in("Error: not JSON", "q1", &names(3)), None);
    }

    #[test]
    fn server_settings_follow_ackchecks_own_and_replace_its_limits() {
        let home = Home::at(std::path::PathBuf::from("/nonexistent"));
        let hosts = NodeHosts::loopback(KIND.port_block());
        let plain = RabbitNodes::new(home.clone(), 1, Props::default(), hosts).rabbitmq_conf(0);
        assert!(plain.contains("vm_memory_high_watermark.absolute = 512MB"), "{plain}");
        assert!(!plain.contains("[server]"), "{plain}");
        let mut server = Props::default();
        server.set_user("cluster_partition_handling", "pause_minority");
        server.set_user("vm_memory_high_watermark.relative", "0.4");
        let conf = RabbitNodes::new(home.clone(), 3, server, hosts).rabbitmq_conf(2);
        assert!(
            conf.contains(&format!("listeners.tcp.1 = 127.0.0.1:{}", KIND.port(2, AMQP_SLOT))),
            "{conf}"
        );
        assert!(
            conf.ends_with("cluster_partition_handling = pause_minority\nvm_memory_high_watermark.relative = 0.4\n"),
            "{conf}"
        );
        assert!(!conf.contains("vm_memory_high_watermark.absolute"), "{conf}");
        assert!(conf.contains("disk_free_limit.absolute = 50MB"), "{conf}");
    }

    #[test]
    fn namespaced_nodes_have_hosts_of_their_own_in_the_erlang_hosts_file() {
        let hosts = NodeHosts {
            network: NodeNetwork::Namespaces,
            ..NodeHosts::loopback(KIND.port_block())
        };
        let rabbit = RabbitNodes::new(Home::at("/nonexistent"), 3, Props::default(), hosts);
        assert_eq!(
            rabbit.node_name(1),
            format!("ackcheck-rabbit1@ackns{}", KIND.port(1, 0))
        );
        let inetrc = rabbit.inetrc();
        let ip = hosts.ip(2).octets();
        assert!(
            inetrc.contains(&format!(
                "{{host, {{{},{},{},{}}}, [\"ackns{}\"]}}.",
                ip[0],
                ip[1],
                ip[2],
                ip[3],
                KIND.port(2, 0)
            )),
            "{inetrc}"
        );
        assert!(inetrc.ends_with("{lookup, [file, native]}.\n"), "{inetrc}");
        assert!(rabbit
            .rabbitmq_conf(0)
            .contains(&format!("listeners.tcp.1 = {}:", hosts.ip(0))));
        let command = rabbit.command(0);
        let erl_args = command
            .get_envs()
            .find(|(k, _)| *k == "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS")
            .and_then(|(_, v)| v)
            .map(|v| v.to_string_lossy().into_owned())
            .unwrap_or_default();
        let [a, b, c, d] = hosts.ip(0).octets();
        assert!(
            erl_args.contains(&format!("inet_dist_use_interface {{{a},{b},{c},{d}}}")),
            "{erl_args}"
        );
    }
}
