//! Amazon SQS through LocalStack community, run on the host without Docker: one node.
//!
//! LocalStack 4.13.1 is installed from PyPI with `uv` into its own virtual environment under
//! `$ACKCHECK_HOME/install/localstack-4.13.1`, with the resolution pinned to a date
//! (`--exclude-newer`) because an unpinned resolution picks incompatible cbor2/pyOpenSSL.
//! `uv` comes from PATH, or is installed with pip into `$ACKCHECK_HOME/install/uv-<version>`.
//!
//! LocalStack keeps SQS state in memory only: a kill loses every queue and message. That is the
//! broker's real durability here, so `restart` starts an empty broker on the same directory.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_sqs::config::retry::RetryConfig;
use aws_sdk_sqs::config::timeout::TimeoutConfig;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::KIND;
use crate::nodes::process::{self, run_step};
use crate::nodes::toxiproxy::{self, Toxiproxy};
use crate::nodes::{Cluster, ClusterError, Home, NodeEndpoint, NodeProcess, NodeStatus, Result};

/// The pinned LocalStack version (from PyPI, package `localstack-core`).
pub const LOCALSTACK_VERSION: &str = "4.13.1";
/// Packages newer than this date are ignored by the resolver (see DESIGN.md, "Verified").
const EXCLUDE_NEWER: &str = "2026-02-14";
/// The uv version installed when `uv` is not on PATH.
const UV_VERSION: &str = "0.13.9";
/// LocalStack accepts any credentials; these are the conventional ones.
pub const REGION: &str = "us-east-1";
pub const ACCESS_KEY: &str = "test";
pub const SECRET_KEY: &str = "test";

/// Slot of the LocalStack gateway (its own HTTP port, behind the proxy).
const GATEWAY_SLOT: u16 = 1;
/// A cold start takes about 10 s; leave room for a machine busy compiling.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// LocalStack shuts down in a few seconds on SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// Written last by the install, so that a half-finished install is redone.
const INSTALL_MARKER: &str = ".ackcheck-installed";

/// How the LocalStack gateway listens, loopback only either way.
///
/// LocalStack's default HTTP server (twisted) keeps connections alive, which a lost-ack fault
/// needs (the client waits for a reply that never comes), but it honours the listen host only
/// for IPv6 addresses: given 127.0.0.1 it listens on 0.0.0.0. So it listens on [::1]. Without
/// an IPv6 loopback, hypercorn on 127.0.0.1 is the fallback; LocalStack then closes the
/// connection after every response, and a lost reply shows up as a dropped connection instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GatewayServer {
    TwistedOnIpv6Loopback,
    HypercornOnIpv4Loopback,
}

impl GatewayServer {
    fn for_this_machine() -> GatewayServer {
        if TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok() {
            GatewayServer::TwistedOnIpv6Loopback
        } else {
            GatewayServer::HypercornOnIpv4Loopback
        }
    }

    fn address(self, port: u16) -> SocketAddr {
        match self {
            GatewayServer::TwistedOnIpv6Loopback => (Ipv6Addr::LOCALHOST, port).into(),
            GatewayServer::HypercornOnIpv4Loopback => (Ipv4Addr::LOCALHOST, port).into(),
        }
    }

    /// The value of LocalStack's GATEWAY_SERVER setting.
    fn name(self) -> &'static str {
        match self {
            GatewayServer::TwistedOnIpv6Loopback => "twisted",
            GatewayServer::HypercornOnIpv4Loopback => "hypercorn",
        }
    }
}

/// True if something holds `addr` (IPv4 or IPv6).
fn address_taken(addr: SocketAddr) -> bool {
    TcpListener::bind(addr).is_err()
}

/// Wait until no address is held; returns those still held after `timeout`.
async fn wait_free(addresses: &[SocketAddr], timeout: Duration) -> Vec<SocketAddr> {
    let deadline = Instant::now() + timeout;
    loop {
        let taken: Vec<SocketAddr> = addresses.iter().copied().filter(|&a| address_taken(a)).collect();
        if taken.is_empty() || Instant::now() >= deadline {
            return taken;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An SQS client for a LocalStack endpoint (`http://127.0.0.1:<port>`): region `us-east-1`,
/// static credentials `test`/`test`, each operation bounded by `operation_timeout`, no retries
/// (callers decide what a timeout means; a retry would hide a lost acknowledgement).
pub fn sqs_client(endpoint_url: &str, operation_timeout: Duration) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "ackcheck"))
        .endpoint_url(endpoint_url)
        // Plain HTTP: LocalStack listens on loopback, so no TLS stack is compiled in.
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(RetryConfig::disabled())
        .timeout_config(TimeoutConfig::builder().operation_timeout(operation_timeout).build())
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

pub struct SqsCluster {
    home: Home,
    nodes: usize,
    gateway: GatewayServer,
}

impl SqsCluster {
    pub fn new(home: Home, nodes: usize) -> SqsCluster {
        SqsCluster {
            home,
            nodes,
            gateway: GatewayServer::for_this_machine(),
        }
    }

    fn install_dir(&self) -> PathBuf {
        self.home.install_dir(&format!("localstack-{LOCALSTACK_VERSION}"))
    }

    fn venv_python(&self) -> PathBuf {
        self.install_dir().join("venv/bin/python")
    }

    fn proxy_name(node: usize) -> String {
        format!("sqs-node{node}")
    }

    fn proxy_port(node: usize) -> u16 {
        KIND.port(node, crate::nodes::CLIENT_PROXY_SLOT)
    }

    /// The LocalStack gateway's own address (the proxy forwards here).
    fn gateway_address(&self, node: usize) -> SocketAddr {
        self.gateway.address(KIND.port(node, GATEWAY_SLOT))
    }

    fn gateway_taken(&self, node: usize) -> ClusterError {
        let gateway = self.gateway_address(node);
        ClusterError::PortTaken {
            port: gateway.port(),
            needed_by: format!("the LocalStack gateway of sqs node {node} on {gateway}"),
        }
    }

    fn endpoint_url(node: usize) -> String {
        format!("http://127.0.0.1:{}", Self::proxy_port(node))
    }

    /// Install LocalStack into its virtual environment unless a complete install is cached.
    fn install(&self) -> Result<()> {
        let dir = self.install_dir();
        if dir.join(INSTALL_MARKER).exists() {
            return Ok(());
        }
        let what = format!("LocalStack {LOCALSTACK_VERSION}");
        // A directory without the marker is a broken earlier attempt: start over.
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(ClusterError::io(format!(
                "removing the incomplete install {}",
                dir.display()
            )))?;
        }
        let uv = self.uv()?;
        let venv = dir.join("venv");
        let uv_cmd = |args: &[&str]| {
            let mut cmd = Command::new(&uv);
            cmd.args(args)
                // uv's cache lives with ackcheck's installs, so an empty $ACKCHECK_HOME means a cold install.
                .env("UV_CACHE_DIR", self.home.install_dir("uv-cache"))
                // Only package registries are reachable: never download a Python interpreter.
                .env("UV_PYTHON_DOWNLOADS", "never");
            cmd
        };
        let mut venv_cmd = uv_cmd(&["venv", "--python", "python3"]);
        run_step(&what, "uv venv", venv_cmd.arg(&venv))?;
        let requirement = format!("localstack-core[runtime]=={LOCALSTACK_VERSION}");
        // Bytecode compiled now, once, so that no start compiles modules or writes into the venv.
        let mut pip_cmd = uv_cmd(&[
            "pip",
            "install",
            "--compile-bytecode",
            "--exclude-newer",
            EXCLUDE_NEWER,
            "--python",
        ]);
        run_step(
            &what,
            &format!("uv pip install {requirement}"),
            pip_cmd.arg(self.venv_python()).arg(&requirement),
        )?;
        // LocalStack indexes every AWS service spec on its first start unless this catalog
        // exists (its Docker image builds it the same way): that costs seconds and leaves the
        // node at about 500 MB instead of 130 MB. Built once here, linked into every node.
        let catalog = self.catalog_dir();
        std::fs::create_dir_all(&catalog).map_err(ClusterError::io(format!("creating {}", catalog.display())))?;
        let mut catalog_cmd = self.localstack_command(&dir.join("filesystem"));
        run_step(
            &what,
            "building the service catalog (python -m localstack.aws.spec)",
            catalog_cmd.args(["-m", "localstack.aws.spec"]),
        )?;
        std::fs::write(dir.join(INSTALL_MARKER), LOCALSTACK_VERSION)
            .map_err(ClusterError::io("marking the LocalStack install complete"))
    }

    /// `uv` from PATH, else a pinned uv installed with pip under the ackcheck home.
    fn uv(&self) -> Result<PathBuf> {
        if Command::new("uv")
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success())
        {
            return Ok(PathBuf::from("uv"));
        }
        let dir = self.home.install_dir(&format!("uv-{UV_VERSION}"));
        let uv = dir.join("bin/uv");
        if uv.exists() {
            return Ok(uv);
        }
        // Install into a scratch directory and rename it, so that `bin/uv` existing means complete.
        let partial = dir.with_extension("partial");
        let _ = std::fs::remove_dir_all(&partial);
        run_step(
            "uv (the Python package installer)",
            &format!("python3 -m pip install uv=={UV_VERSION}"),
            Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    "--target",
                ])
                .arg(&partial)
                .arg(format!("uv=={UV_VERSION}")),
        )?;
        std::fs::rename(&partial, &dir).map_err(ClusterError::io(format!("moving uv into {}", dir.display())))?;
        Ok(uv)
    }

    /// Where the install keeps the prebuilt service catalog: LocalStack's "static libs"
    /// directory for `FILESYSTEM_ROOT=<install>/filesystem`.
    fn catalog_dir(&self) -> PathBuf {
        self.install_dir().join("filesystem/usr/lib/localstack")
    }

    /// The venv's Python in a clean environment (a user's own LocalStack settings, such as
    /// PERSISTENCE or DEBUG, must not leak in), with every directory under `filesystem_root`.
    fn localstack_command(&self, filesystem_root: &Path) -> Command {
        let mut cmd = Command::new(self.venv_python());
        cmd.env_clear()
            .envs(
                ["PATH", "HOME", "LANG"]
                    .iter()
                    .filter_map(|k| std::env::var_os(k).map(|v| (*k, v))),
            )
            // Without this LocalStack thinks it runs in its own container whenever /.dockerenv
            // exists, and then ignores FILESYSTEM_ROOT and writes to /var/lib, /etc and /tmp.
            .env("OVERRIDE_IN_DOCKER", "0")
            .env("FILESYSTEM_ROOT", filesystem_root)
            .env("PYTHONUNBUFFERED", "1");
        cmd
    }

    /// Start the LocalStack process of `node` (the recorded pid is Python itself).
    fn spawn_node(&self, node: usize) -> Result<()> {
        let proc = self.node_process(node);
        let filesystem_root = proc.dir.join("filesystem");
        self.link_catalog(&filesystem_root.join("usr/lib/localstack"))?;
        let mut cmd = self.localstack_command(&filesystem_root);
        cmd.args(["-m", "localstack.runtime.main"])
            .current_dir(&proc.dir)
            .env("SERVICES", "sqs")
            .env("EAGER_SERVICE_LOADING", "1")
            .env("SQS_ENDPOINT_STRATEGY", "path")
            // Queue URLs embed LOCALSTACK_HOST: point them at the proxy so clients stay behind it.
            .env("LOCALSTACK_HOST", format!("127.0.0.1:{}", Self::proxy_port(node)))
            .env("GATEWAY_LISTEN", self.gateway_address(node).to_string())
            .env("GATEWAY_SERVER", self.gateway.name())
            // No DNS server (it would want port 53), no analytics, no certificate download.
            .env("DNS_ADDRESS", "0")
            .env("DISABLE_EVENTS", "1")
            .env("SKIP_SSL_CERT_DOWNLOAD", "1")
            .env("SQS_DISABLE_CLOUDWATCH_METRICS", "1");
        proc.spawn(cmd)?;
        Ok(())
    }

    /// Link the install's prebuilt service catalog into a node's static libs directory.
    fn link_catalog(&self, static_libs: &Path) -> Result<()> {
        std::fs::create_dir_all(static_libs)
            .map_err(ClusterError::io(format!("creating {}", static_libs.display())))?;
        let entries = std::fs::read_dir(self.catalog_dir())
            .map_err(ClusterError::io("reading the prebuilt LocalStack service catalog"))?;
        for entry in entries.flatten() {
            let link = static_libs.join(entry.file_name());
            // Re-linked every start: a link left from an earlier install may dangle.
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(entry.path(), &link)
                .map_err(ClusterError::io(format!("linking {}", link.display())))?;
        }
        Ok(())
    }

    /// One SQS API call through the proxy; returns the number of queues.
    async fn round_trip(node: usize, timeout: Duration) -> std::result::Result<usize, String> {
        let client = sqs_client(&Self::endpoint_url(node), timeout);
        match client.list_queues().send().await {
            Ok(out) => Ok(out.queue_urls().len()),
            Err(e) => Err(format!(
                "ListQueues through {} failed: {}",
                Self::endpoint_url(node),
                aws_sdk_sqs::error::DisplayErrorContext(e)
            )),
        }
    }

    /// Wait until the node answers through the proxy; fails early if the process exits.
    async fn wait_ready(&self, node: usize) -> Result<()> {
        let proc = self.node_process(node);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let Some(_) = proc.pid() else {
                return Err(self.not_ready(node, "the LocalStack process exited during startup"));
            };
            let last_error = match Self::round_trip(node, Duration::from_secs(3)).await {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(self.not_ready(node, &last_error));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn not_ready(&self, node: usize, step: &str) -> ClusterError {
        ClusterError::NotReady {
            broker: KIND.name(),
            node,
            seconds: READY_TIMEOUT.as_secs(),
            step: step.to_string(),
            log_tail: self.node_process(node).log_tail(30),
        }
    }

    /// Create the node's proxy unless it exists (recreating it would cut live connections).
    async fn ensure_proxy(&self, toxiproxy: &Toxiproxy, node: usize) -> Result<()> {
        let name = Self::proxy_name(node);
        if toxiproxy.proxies().await?.contains(&name) {
            return Ok(());
        }
        process::ensure_ports_free(&[Self::proxy_port(node)], &format!("the proxy {name}"))?;
        toxiproxy
            .create_proxy(&name, Self::proxy_port(node), &self.gateway_address(node).to_string())
            .await
    }

    /// Start the node process (free gateway port, proxy in place) and wait until it is ready;
    /// on failure the process is stopped again.
    async fn start_node(&self, node: usize) -> Result<()> {
        // Right after a kill the dying process may hold its socket a moment longer.
        if !wait_free(&[self.gateway_address(node)], Duration::from_secs(10))
            .await
            .is_empty()
        {
            return Err(self.gateway_taken(node));
        }
        let toxiproxy = toxiproxy::ensure_running(&self.home).await?;
        self.ensure_proxy(&toxiproxy, node).await?;
        self.spawn_node(node)?;
        if let Err(e) = self.wait_ready(node).await {
            self.stop_node(node);
            return Err(e);
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL, to the node's whole process group, so that no helper it may have
    /// started outlives it.
    fn stop_node(&self, node: usize) {
        let proc = self.node_process(node);
        let group = proc.pid();
        let _ = proc.stop(STOP_GRACE);
        if let Some(pgid) = group {
            // The group id stays reserved while any member lives, so this cannot hit a stranger.
            let _ = killpg(Pid::from_raw(pgid as i32), Signal::SIGKILL);
        }
    }

    async fn remove_proxies(&self) -> Result<()> {
        let toxiproxy = Toxiproxy::default();
        if toxiproxy.is_up().await {
            for node in 0..self.nodes {
                toxiproxy.delete_proxy(&Self::proxy_name(node)).await?;
            }
        }
        toxiproxy::stop_if_unused(&self.home).await
    }

    fn all_addresses(&self) -> Vec<SocketAddr> {
        (0..self.nodes)
            .flat_map(|n| {
                [
                    (Ipv4Addr::LOCALHOST, Self::proxy_port(n)).into(),
                    self.gateway_address(n),
                ]
            })
            .collect()
    }
}

#[async_trait]
impl Cluster for SqsCluster {
    fn broker(&self) -> &'static str {
        KIND.name()
    }

    fn nodes(&self) -> usize {
        self.nodes
    }

    async fn up(&self) -> Result<()> {
        if let Some(recorded) = process::recorded_nodes(&self.home, KIND.name()) {
            if recorded != self.nodes {
                return Err(ClusterError::AlreadyUp {
                    broker: KIND.name(),
                    nodes: recorded,
                });
            }
        }
        // Already running: make sure the proxy is there and the node answers.
        if self.node_process(0).pid().is_some() {
            let toxiproxy = toxiproxy::ensure_running(&self.home).await?;
            self.ensure_proxy(&toxiproxy, 0).await?;
            return self.wait_ready(0).await;
        }
        // Fail before starting anything when another program holds a gateway port (the proxy
        // port is checked when the proxy is made: a proxy of ours may already hold it).
        for node in 0..self.nodes {
            if address_taken(self.gateway_address(node)) {
                return Err(self.gateway_taken(node));
            }
        }
        self.install()?;
        process::record_nodes(&self.home, KIND.name(), self.nodes)?;
        if let Err(e) = self.start_node(0).await {
            // Leave nothing half-started: the proxy, the node count and maybe Toxiproxy go too.
            let _ = self.down().await;
            return Err(e);
        }
        Ok(())
    }

    async fn down(&self) -> Result<()> {
        for node in 0..self.nodes {
            self.stop_node(node);
        }
        self.remove_proxies().await?;
        process::forget_nodes(&self.home, KIND.name());
        let taken = wait_free(&self.all_addresses(), Duration::from_secs(15)).await;
        if let Some(addr) = taken.first() {
            return Err(ClusterError::PortTaken {
                port: addr.port(),
                needed_by: format!("sqs, still held on {addr} after down"),
            });
        }
        Ok(())
    }

    async fn status(&self) -> Result<Vec<NodeStatus>> {
        let mut statuses = Vec::new();
        for node in 0..self.nodes {
            let answered = async {
                let queues = Self::round_trip(node, Duration::from_secs(5)).await?;
                Ok(format!(
                    "LocalStack {LOCALSTACK_VERSION} SQS at {}, {queues} queue(s)",
                    Self::endpoint_url(node)
                ))
            };
            let mut status = self.node_process(node).status(node, answered).await;
            if status.pid.is_none() && !self.install_dir().join(INSTALL_MARKER).exists() {
                status.detail = "not installed; run `ackcheck cluster up sqs`".to_string();
            }
            statuses.push(status);
        }
        Ok(statuses)
    }

    fn endpoints(&self) -> Vec<NodeEndpoint> {
        (0..self.nodes)
            .map(|node| NodeEndpoint {
                node,
                client: ([127, 0, 0, 1], Self::proxy_port(node)).into(),
                direct: self.gateway_address(node),
                proxy: Self::proxy_name(node),
                url: Self::endpoint_url(node),
            })
            .collect()
    }

    fn node_process(&self, node: usize) -> NodeProcess {
        NodeProcess::in_dir(self.home.node_dir(KIND.name(), node))
    }

    async fn restart(&self, node: usize) -> Result<()> {
        self.check_node(node)?;
        if process::recorded_nodes(&self.home, KIND.name()).is_none() {
            return Err(ClusterError::NotUp { broker: KIND.name() });
        }
        let proc = self.node_process(node);
        if proc.pid().is_some() {
            // Still running (maybe paused): let it continue and check that it serves.
            proc.resume()?;
            return self.wait_ready(node).await;
        }
        self.start_node(node).await
    }
}
