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
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::config::retry::RetryConfig;
use aws_sdk_sqs::config::timeout::TimeoutConfig;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};

use super::KIND;
use crate::nodes::process::run_step;
use crate::nodes::{ClusterError, Home, NodePort, NodeRecipe, PortRole, Result};

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

/// An SQS client for a LocalStack endpoint (`http://127.0.0.1:<port>`): region `us-east-1`,
/// static credentials `test`/`test`, each operation bounded by `operation_timeout`, no retries
/// (callers decide what a timeout means; a retry would hide a lost acknowledgement).
pub fn sqs_client(endpoint_url: &str, operation_timeout: Duration) -> aws_sdk_sqs::Client {
    sqs_client_with_attempts(endpoint_url, operation_timeout, 1)
}

/// [`sqs_client`] whose SDK makes up to `max_attempts` attempts per request (its standard
/// retry mode; 1 = retries off), each within `attempt_timeout`.
pub fn sqs_client_with_attempts(
    endpoint_url: &str,
    attempt_timeout: Duration,
    max_attempts: u32,
) -> aws_sdk_sqs::Client {
    let (retry, timeouts) = match max_attempts {
        0 | 1 => (
            RetryConfig::disabled(),
            TimeoutConfig::builder().operation_timeout(attempt_timeout).build(),
        ),
        n => (
            RetryConfig::standard().with_max_attempts(n),
            TimeoutConfig::builder()
                .operation_attempt_timeout(attempt_timeout)
                // Room for every attempt and the SDK's backoff between them (at most 20 s).
                .operation_timeout(attempt_timeout * n + Duration::from_secs(20))
                .build(),
        ),
    };
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "ackcheck"))
        .endpoint_url(endpoint_url)
        // Plain HTTP: LocalStack listens on loopback, so no TLS stack is compiled in.
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(retry)
        .timeout_config(timeouts)
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// LocalStack's one node, as the one local lifecycle (`crate::nodes::LocalCluster`) runs it.
pub struct SqsNodes {
    home: Home,
    gateway: GatewayServer,
}

impl SqsNodes {
    pub fn new(home: Home) -> SqsNodes {
        SqsNodes {
            home,
            gateway: GatewayServer::for_this_machine(),
        }
    }

    fn install_dir(&self) -> PathBuf {
        self.home.install_dir(&format!("localstack-{LOCALSTACK_VERSION}"))
    }

    fn venv_python(&self) -> PathBuf {
        self.install_dir().join("venv/bin/python")
    }

    fn node_dir(&self, node: usize) -> PathBuf {
        self.home.node_dir(KIND.name(), node)
    }

    fn proxy_port(node: usize) -> u16 {
        KIND.port(node, crate::nodes::CLIENT_PROXY_SLOT)
    }

    /// The LocalStack gateway's own address (the proxy forwards here).
    fn gateway_address(&self, node: usize) -> SocketAddr {
        self.gateway.address(KIND.port(node, GATEWAY_SLOT))
    }

    fn endpoint_url(node: usize) -> String {
        format!("http://127.0.0.1:{}", Self::proxy_port(node))
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
}

#[async_trait]
impl NodeRecipe for SqsNodes {
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

    fn installed(&self) -> bool {
        self.install_dir().join(INSTALL_MARKER).exists()
    }

    fn ports(&self, node: usize) -> Vec<NodePort> {
        vec![NodePort {
            role: PortRole::Client,
            name: "LocalStack gateway",
            address: self.gateway_address(node),
        }]
    }

    fn data_dirs(&self, node: usize) -> Vec<PathBuf> {
        vec![self.node_dir(node).join("filesystem")]
    }

    /// LocalStack keeps SQS in memory: nothing survives a kill.
    fn has_data(&self, _node: usize) -> bool {
        false
    }

    fn files(&self, _node: usize) -> Vec<(PathBuf, String)> {
        Vec::new()
    }

    /// Link the install's prebuilt service catalog into the node's static libs directory
    /// (re-linked every start: a link left from an earlier install may dangle).
    async fn prepare_start(&self, node: usize) -> Result<()> {
        let static_libs = self.node_dir(node).join("filesystem/usr/lib/localstack");
        std::fs::create_dir_all(&static_libs)
            .map_err(ClusterError::io(format!("creating {}", static_libs.display())))?;
        let entries = std::fs::read_dir(self.catalog_dir())
            .map_err(ClusterError::io("reading the prebuilt LocalStack service catalog"))?;
        for entry in entries.flatten() {
            let link = static_libs.join(entry.file_name());
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(entry.path(), &link)
                .map_err(ClusterError::io(format!("linking {}", link.display())))?;
        }
        Ok(())
    }

    /// The LocalStack process of `node` (the recorded pid is Python itself).
    fn command(&self, node: usize) -> Command {
        let dir = self.node_dir(node);
        let mut cmd = self.localstack_command(&dir.join("filesystem"));
        cmd.args(["-m", "localstack.runtime.main"])
            .current_dir(&dir)
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
        cmd
    }

    async fn probe(&self, node: usize, _members: &[usize]) -> std::result::Result<String, String> {
        let queues = Self::round_trip(node, Duration::from_secs(3)).await?;
        Ok(format!(
            "LocalStack {LOCALSTACK_VERSION} SQS at {}, {queues} queue(s)",
            Self::endpoint_url(node)
        ))
    }

    fn ready_timeout(&self) -> Duration {
        READY_TIMEOUT
    }

    fn stop_grace(&self) -> Duration {
        STOP_GRACE
    }

    fn url(&self, node: usize) -> Option<String> {
        Some(Self::endpoint_url(node))
    }
}
