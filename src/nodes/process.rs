//! Process plumbing shared by every broker: detached node processes with pid files and logs,
//! signals, port checks, install steps and readiness polling.

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use super::{ClusterError, Home, NodeState, NodeStatus, Result};

/// One node's process, known by its pid file. The pid is the broker process itself (the JVM,
/// the Erlang VM, Python), started in its own process group so that a Ctrl-C to ackcheck does
/// not reach it and so that `stop` can take the whole group down.
#[derive(Debug, Clone)]
pub struct NodeProcess {
    pub dir: PathBuf,
    pub pid_file: PathBuf,
    pub log_file: PathBuf,
}

impl NodeProcess {
    /// The conventional layout: `<dir>/pid`, `<dir>/node.log`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> NodeProcess {
        let dir = dir.into();
        NodeProcess {
            pid_file: dir.join("pid"),
            log_file: dir.join("node.log"),
            dir,
        }
    }

    /// Spawn `cmd` detached (own process group, stdin closed, stdout and stderr appended to the
    /// log) and record its pid.
    pub fn spawn(&self, cmd: Command) -> Result<u32> {
        self.spawn_in(cmd, None)
    }

    /// [`Self::spawn`], inside the network namespace `netns` when given (`/run/netns/<netns>`,
    /// entered with setns(2) between fork and exec, so the pid recorded is the broker's own).
    pub fn spawn_in(&self, mut cmd: Command, netns: Option<&str>) -> Result<u32> {
        let namespace = match netns {
            Some(name) => {
                let path = super::netns::netns_path(name);
                let file = fs::File::open(&path).map_err(ClusterError::io(format!(
                    "opening the network namespace {} (run `ackcheck cluster down` and start again)",
                    path.display()
                )))?;
                Some(file)
            }
            None => None,
        };
        if let Some(file) = &namespace {
            let fd = std::os::fd::AsRawFd::as_raw_fd(file);
            // SAFETY: one raw system call on a descriptor that outlives the spawn (`namespace`
            // is dropped after it): async-signal-safe.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        fs::create_dir_all(&self.dir).map_err(ClusterError::io(format!("creating {}", self.dir.display())))?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_file)
            .map_err(ClusterError::io(format!("opening {}", self.log_file.display())))?;
        let log2 = log
            .try_clone()
            .map_err(ClusterError::io("duplicating the log file handle"))?;
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2).process_group(0);
        // A daemon must not keep what this process inherited beyond stdio: a lock that a wrapper
        // such as flock(1) holds for the length of one command stayed held for as long as a kept
        // broker ran. Every descriptor above stderr is marked close-on-exec in the child
        // (close_range with CLOSE_RANGE_CLOEXEC, Linux 5.11+; on older kernels nothing changes).
        // SAFETY: the closure makes one raw system call and touches no memory: async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
                libc::syscall(
                    libc::SYS_close_range,
                    3 as libc::c_uint,
                    libc::c_uint::MAX,
                    CLOSE_RANGE_CLOEXEC,
                );
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(ClusterError::io(format!("starting {:?}", cmd.get_program())))?;
        let pid = child.id();
        // The child is reaped by a detached thread so that it never lingers as a zombie while
        // this process lives; after we exit, init adopts it.
        std::thread::spawn(move || {
            let mut child = child;
            let _ = child.wait();
        });
        drop(namespace);
        fs::write(&self.pid_file, pid.to_string())
            .map_err(ClusterError::io(format!("writing {}", self.pid_file.display())))?;
        Ok(pid)
    }

    /// The recorded pid if that process is alive (and not a zombie).
    pub fn pid(&self) -> Option<u32> {
        let pid: u32 = fs::read_to_string(&self.pid_file).ok()?.trim().parse().ok()?;
        pid_alive(pid).then_some(pid)
    }

    /// True if the process is stopped by SIGSTOP.
    pub fn is_paused(&self) -> bool {
        self.pid().and_then(proc_state).is_some_and(|s| s == 'T')
    }

    /// Node `node`'s status: down without a process, paused while stopped, else what `probe`
    /// (a client round trip) finds: `Ok(detail)` healthy, `Err(detail)` unhealthy.
    pub async fn status<F>(&self, node: usize, probe: F) -> NodeStatus
    where
        F: std::future::Future<Output = std::result::Result<String, String>>,
    {
        let pid = self.pid();
        let (state, detail) = match pid {
            None => (NodeState::Down, "no process".to_string()),
            Some(_) if self.is_paused() => (NodeState::Paused, "stopped by SIGSTOP".to_string()),
            Some(_) => match probe.await {
                Ok(detail) => (NodeState::Healthy, detail),
                Err(detail) => (NodeState::Unhealthy, detail),
            },
        };
        NodeStatus {
            node,
            pid,
            state,
            detail,
        }
    }

    /// SIGKILL the process group. Returns whether anything was running.
    pub fn kill(&self) -> Result<bool> {
        let Some(pid) = self.pid() else { return Ok(false) };
        signal_group(pid, Signal::SIGKILL)?;
        wait_dead(pid, Duration::from_secs(10));
        Ok(true)
    }

    /// SIGSTOP, and wait until the kernel shows the process stopped: a multi-threaded process
    /// stops a moment after the signal, and a caller checking right away must see it paused.
    pub fn pause(&self) -> Result<()> {
        if let Some(pid) = self.pid() {
            signal_group(pid, Signal::SIGSTOP)?;
            let deadline = Instant::now() + Duration::from_secs(5);
            while proc_state(pid).is_some_and(|s| s != 'T') && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(())
    }

    pub fn resume(&self) -> Result<()> {
        if let Some(pid) = self.pid() {
            signal_group(pid, Signal::SIGCONT)?;
        }
        Ok(())
    }

    /// Graceful stop: SIGCONT (a paused process cannot exit), SIGTERM, then SIGKILL after
    /// `grace`. Removes the pid file.
    pub fn stop(&self, grace: Duration) -> Result<()> {
        if let Some(pid) = self.pid() {
            let _ = signal_group(pid, Signal::SIGCONT);
            let _ = signal_group(pid, Signal::SIGTERM);
            if !wait_dead(pid, grace) {
                let _ = signal_group(pid, Signal::SIGKILL);
                wait_dead(pid, Duration::from_secs(10));
            }
        }
        let _ = fs::remove_file(&self.pid_file);
        Ok(())
    }

    /// The last `lines` lines of the node's log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_file, lines)
    }
}

fn signal_group(pid: u32, sig: Signal) -> Result<()> {
    // Signal the group (the node was started as its group leader), falling back to the pid.
    let group = Pid::from_raw(-(pid as i32));
    if signal::kill(group, sig).is_err() {
        signal::kill(Pid::from_raw(pid as i32), sig)
            .map_err(|e| ClusterError::Other(format!("sending {sig} to pid {pid} failed: {e}")))?;
    }
    Ok(())
}

/// Alive and not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    if signal::kill(Pid::from_raw(pid as i32), None).is_err() {
        return false;
    }
    !matches!(proc_state(pid), Some('Z') | Some('X') | None)
}

/// The state letter from `/proc/<pid>/stat` (R, S, D, T, Z, …).
fn proc_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: the state follows the last ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Gone for good: no process, or a zombie whose threads have all exited. A JVM's main thread
/// turns zombie before its other threads finish, and those may still hold listening sockets;
/// a restart on the same ports must wait for them.
fn fully_exited(pid: u32) -> bool {
    if !pid_alive(pid) {
        let threads = fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("Threads:").and_then(|n| n.trim().parse::<u32>().ok()))
            });
        return threads.is_none_or(|n| n <= 1);
    }
    false
}

fn wait_dead(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if fully_exited(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    fully_exited(pid)
}

/// The last `lines` lines of a file (reads at most the last 64 KiB).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = fs::File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// True if something listens on (or holds) 127.0.0.1:`port`.
pub fn port_taken(port: u16) -> bool {
    address_taken(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// True if something holds `address` (IPv4 or IPv6 loopback).
pub fn address_taken(address: SocketAddr) -> bool {
    TcpListener::bind(address).is_err()
}

/// Wait until no address is held; returns those still held after `timeout`.
pub async fn wait_addresses_free(addresses: &[SocketAddr], timeout: Duration) -> Vec<SocketAddr> {
    let deadline = Instant::now() + timeout;
    loop {
        let taken: Vec<SocketAddr> = addresses.iter().copied().filter(|&a| address_taken(a)).collect();
        if taken.is_empty() || Instant::now() >= deadline {
            return taken;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Who listens on 127.0.0.1:`port`, as `ss` shows it (`"java",pid=123`), when it can tell.
pub fn port_holder(port: u16) -> Option<String> {
    let out = Command::new("ss")
        .args(["-Hltnp", &format!("sport = :{port}")])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // `users:(("java",pid=4242,fd=131))`: the process name and pid.
    let users = text.split("users:((").nth(1)?;
    let first = users.split(')').next()?;
    let mut parts = first.split(',');
    let name = parts.next()?.trim_matches('"');
    let pid = parts.find_map(|p| p.strip_prefix("pid="))?;
    Some(format!("{name} (pid {pid})"))
}

/// Fail with [`ClusterError::PortTaken`] if any port is taken.
pub fn ensure_ports_free(ports: &[u16], needed_by: &str) -> Result<()> {
    for &port in ports {
        if port_taken(port) {
            return Err(ClusterError::PortTaken {
                port,
                needed_by: needed_by.to_string(),
            });
        }
    }
    Ok(())
}

/// Wait until every port is free; returns the ones still taken after `timeout`.
pub async fn wait_ports_free(ports: &[u16], timeout: Duration) -> Vec<u16> {
    let deadline = Instant::now() + timeout;
    loop {
        let taken: Vec<u16> = ports.iter().copied().filter(|&p| port_taken(p)).collect();
        if taken.is_empty() || Instant::now() >= deadline {
            return taken;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Poll `check` every `interval` until it returns Ok or `timeout` passes; returns the last error.
pub async fn wait_until<F, Fut>(timeout: Duration, interval: Duration, mut check: F) -> std::result::Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<(), String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let err = match tokio::time::timeout(interval.max(Duration::from_secs(5)), check()).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e,
            Err(_) => "check timed out".to_string(),
        };
        if Instant::now() >= deadline {
            return Err(err);
        }
        tokio::time::sleep(interval).await;
    }
}

/// Run one install step to completion, capturing its output; on failure the error names the
/// step and carries the tail of the output.
pub fn run_step(what: &str, step: &str, cmd: &mut Command) -> Result<String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| ClusterError::Install {
        what: what.to_string(),
        step: step.to_string(),
        reason: format!("could not run {:?}: {e}", cmd.get_program()),
        output: String::new(),
    })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        let lines: Vec<&str> = text.lines().collect();
        return Err(ClusterError::Install {
            what: what.to_string(),
            step: step.to_string(),
            reason: format!("{:?} exited with {}", cmd.get_program(), out.status),
            output: lines[lines.len().saturating_sub(30)..].join("\n"),
        });
    }
    Ok(text)
}

/// `go install <package>@<version>` with `GOBIN = gobin` (created if missing): the Go module
/// proxy is where Toxiproxy and nats-server come from, built from source with the local Go.
/// `-mod=mod` keeps a caller's `go.work` or vendor settings out of it.
pub fn go_install(what: &str, package: &str, version: &str, gobin: &Path) -> Result<()> {
    std::fs::create_dir_all(gobin).map_err(ClusterError::io(format!(
        "creating the {what} install directory {}",
        gobin.display()
    )))?;
    run_step(
        what,
        &format!("go install {package}@{version}"),
        Command::new("go")
            .arg("install")
            .arg(format!("{package}@{version}"))
            .env("GOBIN", gobin)
            .env("GOFLAGS", "-mod=mod"),
    )?;
    Ok(())
}

/// The node count recorded by the last `up` of this broker (`run/<broker>/nodes`).
pub fn recorded_nodes(home: &Home, broker: &str) -> Option<usize> {
    fs::read_to_string(home.run_dir(broker).join("nodes"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Record the node count at `up` so that later commands find the same cluster.
pub fn record_nodes(home: &Home, broker: &str, nodes: usize) -> Result<()> {
    let dir = home.run_dir(broker);
    fs::create_dir_all(&dir).map_err(ClusterError::io(format!("creating {}", dir.display())))?;
    fs::write(dir.join("nodes"), nodes.to_string()).map_err(ClusterError::io("recording the node count"))
}

/// Forget the recorded node count (at `down`).
pub fn forget_nodes(home: &Home, broker: &str) {
    let _ = fs::remove_file(home.run_dir(broker).join("nodes"));
}
