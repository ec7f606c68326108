//! Nodes in network namespaces, so that traffic *between nodes* can be cut (partitions).
//!
//! On loopback every node shares one network: Toxiproxy can break a client's connection to a
//! node, but replication between nodes bypasses the proxies and cannot be cut. With
//! [`NodeNetwork::Namespaces`] each node of a cluster runs in a network namespace of its own
//! that ackcheck creates (`ackcheck-<proxy port>`), with one end of a veth pair inside (`eth0`)
//! and the other end on one bridge in the root namespace (`ackcheck0`, 198.18.0.1/15). A node
//! listens on its own address; its proxy stays on 127.0.0.1 in the root namespace, so clients
//! reach every node as before, and only what passes between namespaces can be dropped.
//!
//! A partition is a *grudge* (Jepsen's word): for each node, the nodes whose packets it drops.
//! It is an nftables table (`inet ackcheck`) inside the node's namespace, dropping input from
//! those nodes' addresses; healing deletes the tables. Clients' packets come from the bridge's
//! address and are never dropped.
//!
//! Addresses come from 198.18.0.0/15, the block reserved for benchmarking networks (RFC 2544):
//! not routed anywhere, and unlikely to be a network the machine already uses. The namespaces
//! have no default route, so a node cannot reach anything but the bridge and the other
//! namespaces. A node's address is derived from its proxy port, which the port plan already
//! keeps unique on the machine (also across `ACKCHECK_PORT_BASE`s).
//!
//! Everything here shells out to `ip` (iproute2) and `nft` (nftables), the interfaces these
//! tools keep stable, and needs root (CAP_NET_ADMIN); [`capability`] says in one sentence what
//! is missing.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::{ClusterError, PortBlock, Result, CLIENT_PROXY_SLOT};

/// The bridge every node namespace hangs on.
pub const BRIDGE: &str = "ackcheck0";
/// Namespaces ackcheck creates are named with this prefix and the node's proxy port.
const NETNS_PREFIX: &str = "ackcheck-";
/// The bridge's address, the first of 198.18.0.0/15.
pub const BRIDGE_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PREFIX_LEN: u8 = 15;
/// The nftables table that holds a node's part of a partition.
const TABLE: &str = "ackcheck";

/// Where a cluster's nodes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeNetwork {
    /// Every node on 127.0.0.1 (the default; no privileges needed).
    #[default]
    Loopback,
    /// Each node in its own network namespace (partitions possible; needs root).
    Namespaces,
}

impl NodeNetwork {
    pub fn name(self) -> &'static str {
        match self {
            NodeNetwork::Loopback => "loopback",
            NodeNetwork::Namespaces => "namespaces",
        }
    }
}

/// The addresses of one broker's nodes: what a node recipe writes into its config files and
/// what tools use to reach a node past its proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeHosts {
    pub network: NodeNetwork,
    pub ports: PortBlock,
}

impl NodeHosts {
    pub fn loopback(ports: PortBlock) -> NodeHosts {
        NodeHosts {
            network: NodeNetwork::Loopback,
            ports,
        }
    }

    /// The address `node` listens on (127.0.0.1, or its namespace's address).
    pub fn ip(&self, node: usize) -> Ipv4Addr {
        match self.network {
            NodeNetwork::Loopback => Ipv4Addr::LOCALHOST,
            NodeNetwork::Namespaces => node_ip(self.proxy_port(node)),
        }
    }

    /// The namespace `node` runs in, if any.
    pub fn netns(&self, node: usize) -> Option<String> {
        (self.network == NodeNetwork::Namespaces).then(|| netns_name(self.proxy_port(node)))
    }

    fn proxy_port(&self, node: usize) -> u16 {
        self.ports.port(node, CLIENT_PROXY_SLOT)
    }
}

/// The namespace of the node whose proxy listens on `proxy_port`.
pub fn netns_name(proxy_port: u16) -> String {
    format!("{NETNS_PREFIX}{proxy_port}")
}

/// Its veth end on the bridge (interface names have at most 15 characters).
fn veth_name(proxy_port: u16) -> String {
    format!("ackv{proxy_port}")
}

/// The address of the node whose proxy listens on `proxy_port`: 198.18.0.0 + 2 + the port's
/// tenth (the plan gives every node 10 ports), inside 198.18.0.0/15.
pub fn node_ip(proxy_port: u16) -> Ipv4Addr {
    let offset = 2 + u32::from(proxy_port / 10);
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + offset)
}

/// The file `setns(2)` opens to enter a namespace.
pub fn netns_path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

/// Why namespaces cannot be used here, as one sentence saying what to do; `Ok` when they can.
/// As root on Debian, a missing `nft` is installed (Debian's nftables package), as ackcheck
/// installs RabbitMQ.
pub fn capability() -> std::result::Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("partitions run each node in a network namespace of its own, which needs root (CAP_NET_ADMIN); run ackcheck as root, or remove the partition faults from the campaign".into());
    }
    if !tool_present("ip") {
        return Err("partitions need the `ip` command, which is missing; install it with `apt-get install iproute2` and run again".into());
    }
    if !tool_present("nft") {
        install_nftables()?;
    }
    Ok(())
}

/// `tool` is an executable on the PATH (or in /usr/sbin and /sbin, where Debian puts `ip` and
/// `nft`, which a non-login root shell may not have on its PATH).
fn tool_present(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .any(|dir| dir.join(tool).is_file())
}

/// `apt-get install nftables` (after `apt-get update` if the package lists are stale).
fn install_nftables() -> std::result::Result<(), String> {
    let fail = || {
        "partitions need the `nft` command (nftables), which is missing and could not be installed; run `apt-get install -y nftables` and run again".to_string()
    };
    if !tool_present("apt-get") {
        return Err(fail());
    }
    tracing::info!("installing Debian's nftables package for partitions (apt-get)");
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let installed = apt(&["install", "-y", "-qq", "nftables"])
        || (apt(&["update", "-qq"]) && apt(&["install", "-y", "-qq", "nftables"]));
    if installed && tool_present("nft") {
        Ok(())
    } else {
        Err(fail())
    }
}

/// Run `program args`, stdin from `input`; the error carries its output.
fn run(program: &str, args: &[&str], input: Option<&str>) -> Result<()> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("{program} {}", args.join(" "));
    let mut child = cmd.spawn().map_err(ClusterError::io(format!("running `{what}`")))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(ClusterError::io(format!("writing to `{what}`")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(ClusterError::io(format!("waiting for `{what}`")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(ClusterError::Other(format!(
        "`{what}` failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

fn exists(netns: &str) -> bool {
    netns_path(netns).exists()
}

fn bridge_exists() -> bool {
    PathBuf::from("/sys/class/net").join(BRIDGE).exists()
}

/// Create the bridge unless it is there.
fn ensure_bridge() -> Result<()> {
    if bridge_exists() {
        return Ok(());
    }
    run("ip", &["link", "add", BRIDGE, "type", "bridge"], None)?;
    let address = format!("{BRIDGE_IP}/{PREFIX_LEN}");
    run("ip", &["addr", "add", &address, "dev", BRIDGE], None)?;
    run("ip", &["link", "set", BRIDGE, "up"], None)
}

/// The namespace of the node behind `proxy_port`, made afresh: removed if left over, created,
/// wired to the bridge, addressed and up (its loopback too).
pub fn create(proxy_port: u16) -> Result<()> {
    remove(proxy_port)?;
    ensure_bridge()?;
    let (netns, veth) = (netns_name(proxy_port), veth_name(proxy_port));
    run("ip", &["netns", "add", &netns], None)?;
    let made = (|| {
        run(
            "ip",
            &[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &netns,
            ],
            None,
        )?;
        run("ip", &["link", "set", &veth, "master", BRIDGE], None)?;
        run("ip", &["link", "set", &veth, "up"], None)?;
        let address = format!("{}/{PREFIX_LEN}", node_ip(proxy_port));
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &netns, "ip"];
            all.extend_from_slice(args);
            run("ip", &all, None)
        };
        inside(&["link", "set", "lo", "up"])?;
        inside(&["addr", "add", &address, "dev", "eth0"])?;
        inside(&["link", "set", "eth0", "up"])
    })();
    if made.is_err() {
        let _ = remove(proxy_port);
    }
    made
}

/// The namespace of `proxy_port` exists (created if it is missing, left alone if it is there:
/// a running node is inside).
pub fn ensure(proxy_port: u16) -> Result<()> {
    if exists(&netns_name(proxy_port)) {
        return Ok(());
    }
    create(proxy_port)
}

/// Remove the namespace of `proxy_port` and its veth pair; nothing there is fine.
pub fn remove(proxy_port: u16) -> Result<()> {
    let netns = netns_name(proxy_port);
    if exists(&netns) {
        run("ip", &["netns", "del", &netns], None)?;
    }
    // `ip netns del` only drops the name: a namespace lives on, with its end of the veth pair,
    // while a process is still inside (a node still dying after its kill), so the bridge's end
    // outlives it too and the next `create` of this node failed with "File exists" (seen between
    // two RabbitMQ runs 1 s apart). Deleting one end of a veth pair deletes both.
    let veth = PathBuf::from("/sys/class/net").join(veth_name(proxy_port));
    if veth.exists() {
        // The kernel may free it between the check and the delete: gone is what we want.
        if let Err(e) = run("ip", &["link", "del", &veth_name(proxy_port)], None) {
            if veth.exists() {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Every namespace ackcheck created that still exists.
pub fn leftovers() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(NETNS_PREFIX))
        .collect();
    names.sort();
    names
}

/// Remove the bridge once no namespace of ackcheck is left.
pub fn remove_bridge_if_unused() -> Result<()> {
    if leftovers().is_empty() && bridge_exists() {
        run("ip", &["link", "del", BRIDGE], None)?;
    }
    Ok(())
}

/// Make `proxy_port`'s node drop every packet from `from` (addresses) — only TCP packets to
/// `to_ports` when that is not empty; empty `from` heals it. The table is replaced whole, so a
/// new grudge never adds to an old one.
pub fn drop_from(proxy_port: u16, from: &[Ipv4Addr], to_ports: &[u16]) -> Result<()> {
    let netns = netns_name(proxy_port);
    if !exists(&netns) {
        return if from.is_empty() {
            Ok(())
        } else {
            Err(ClusterError::Other(format!(
                "the network namespace {netns} is missing; run `ackcheck cluster down` and start the cluster again"
            )))
        };
    }
    // `add` then `delete` empties the table even if it did not exist; then it is rebuilt.
    let mut script = format!("add table inet {TABLE}\ndelete table inet {TABLE}\n");
    if !from.is_empty() {
        let addresses: Vec<String> = from.iter().map(|a| a.to_string()).collect();
        let ports = match to_ports {
            [] => String::new(),
            ports => {
                let ports: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
                format!(" tcp dport {{ {} }}", ports.join(", "))
            }
        };
        script.push_str(&format!(
            "table inet {TABLE} {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n    ip saddr {{ {} }}{ports} drop\n  }}\n}}\n",
            addresses.join(", ")
        ));
    }
    run("ip", &["netns", "exec", &netns, "nft", "-f", "-"], Some(&script))
}

/// Who drops whose packets: for each node, the nodes it does not hear from. Nodes not named hear
/// everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Grudge(pub BTreeMap<usize, BTreeSet<usize>>);

impl Grudge {
    /// Both directions between every node of `a` and every node of `b`.
    pub fn between(a: &[usize], b: &[usize]) -> Grudge {
        let mut grudge = Grudge::default();
        grudge.cut_one_way(a, b);
        grudge.cut_one_way(b, a);
        grudge
    }

    /// The nodes of `deaf` stop hearing the nodes of `from`.
    pub fn cut_one_way(&mut self, deaf: &[usize], from: &[usize]) {
        for &d in deaf {
            for &f in from {
                if d != f {
                    self.0.entry(d).or_default().insert(f);
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.values().all(|s| s.is_empty())
    }

    /// "0 ✕ 1,2; 1 ✕ 0": who does not hear whom.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .filter(|(_, from)| !from.is_empty())
            .map(|(node, from)| {
                let from: Vec<String> = from.iter().map(|f| f.to_string()).collect();
                format!("{node} hears nothing from {}", from.join(","))
            })
            .collect();
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_addresses_are_distinct_inside_the_benchmarking_block() {
        let block = Ipv4Addr::new(198, 18, 0, 0);
        let mut seen = BTreeSet::new();
        for port in (1600..=65530).step_by(10) {
            let ip = node_ip(port);
            assert!(seen.insert(ip), "{ip} twice");
            let offset = u32::from(ip) - u32::from(block);
            assert!(
                (2..(1 << (32 - PREFIX_LEN))).contains(&offset),
                "{ip} outside 198.18.0.0/15"
            );
        }
        assert_eq!(node_ip(19000), Ipv4Addr::new(198, 18, 7, 110));
    }

    #[test]
    fn names_fit_the_kernel_limits() {
        assert!(veth_name(65530).len() <= 15);
        assert_eq!(netns_name(19410), "ackcheck-19410");
    }

    #[test]
    fn a_grudge_between_halves_cuts_both_ways_and_never_a_node_from_itself() {
        let g = Grudge::between(&[0], &[1, 2]);
        assert_eq!(g.0[&0], BTreeSet::from([1, 2]));
        assert_eq!(g.0[&1], BTreeSet::from([0]));
        assert_eq!(g.0[&2], BTreeSet::from([0]));
        let mut own = Grudge::default();
        own.cut_one_way(&[1], &[1, 2]);
        assert_eq!(own.0[&1], BTreeSet::from([2]));
        assert_eq!(
            g.describe(),
            "0 hears nothing from 1,2; 1 hears nothing from 0; 2 hears nothing from 0"
        );
    }
}
