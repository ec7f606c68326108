//! ackcheck killed in the middle of a fault (issue "Harness reliability", item 4): the fault's
//! record makes the next command that touches the cluster heal what the dead run left, and the
//! killed run's history stays readable. SIGINT and SIGTERM heal and drain cleanly.
//!
//! NATS (one node) is the broker: it starts in about a second, so twenty trials fit in minutes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ackcheck::broker::BrokerKind;
use ackcheck::nodes::{process, Home};
use nix::sys::signal::Signal;

const CAMPAIGN: &str = r#"
broker = "nats"
mode = "at-least-once"
duration = "60s"

[workload]
kind = "queue"
producers = 1
consumers = 1
rate = 200

[nemesis]
faults = ["pause", "lose-acks"]
interval = 0.2
duration = 30.0
"#;

fn signal(child: &Child, sig: Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).expect("signalling ackcheck");
}

/// The two tests share the NATS node and its ports: one at a time (a run that finds the other's
/// cluster still starting waits for its ports).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn ackcheck() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ackcheck"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn nats() -> BrokerKind {
    ackcheck::brokers::by_name("nats").expect("nats is registered")
}

/// Start a run; returns it once its history shows a fault in force (a `start-X` completed and
/// no `stop-X` yet), with the fault's name.
// The caller signals the run and waits for it.
#[allow(clippy::zombie_processes)]
fn run_until_fault(campaign: &Path, out: &Path, seed: u64) -> (Child, String) {
    let mut child = ackcheck()
        .args(["run", campaign.to_str().expect("utf-8"), "--seed"])
        .arg(seed.to_string())
        .arg("--out")
        .arg(out)
        .arg("--keep-cluster")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ackcheck run starts");
    let history = out.join("history.jsonl");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let text = std::fs::read_to_string(&history).unwrap_or_default();
        let started = text
            .lines()
            .rfind(|l| l.contains("\"nemesis\"") && l.contains("\"type\":\"info\"") && l.contains("\"f\":\"start-"))
            .map(|l| {
                let f = l.split("\"f\":\"start-").nth(1).expect("a fault name");
                f[..f.find('"').expect("closing quote")].to_string()
            });
        if let Some(fault) = started {
            if !text.contains("\"f\":\"stop-") {
                return (child, fault);
            }
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no fault in force after 180 s; history:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The process state letter of `pid` (`T` = stopped) from /proc.
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim().chars().next()
}

fn node_pid(home: &Home) -> Option<u32> {
    let cluster = nats().open_cluster(Some(1), home).ok()?;
    cluster.node_process(0).pid()
}

fn toxics_left(runtime: &tokio::runtime::Runtime, home: &Home) -> Vec<String> {
    let cluster = nats().open_cluster(Some(1), home).expect("the cluster");
    let proxies: Vec<String> = cluster.endpoints().iter().map(|e| e.proxy.clone()).collect();
    let mut left = Vec::new();
    for proxy in proxies {
        left.extend(
            runtime
                .block_on(ackcheck::nodes::toxiproxy::Toxiproxy::default().toxics(&proxy))
                .expect("listing toxics"),
        );
    }
    left
}

fn cluster_cmd(action: &str) -> (i32, String) {
    let out = ackcheck()
        .args(["cluster", action, "nats"])
        .output()
        .expect("ackcheck cluster runs");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn check_history(history: &Path) -> i32 {
    let out = ackcheck()
        .args(["check", "--json", history.to_str().expect("utf-8")])
        .output()
        .expect("ackcheck check runs");
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 1,
        "the killed run's history is readable: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    code
}

fn setup() -> (tempfile::TempDir, PathBuf, Home, tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let campaign = dir.path().join("killed.toml");
    std::fs::write(&campaign, CAMPAIGN).expect("writing the campaign");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    (dir, campaign, Home::from_env(), runtime)
}

#[test]
fn a_run_killed_during_a_fault_is_healed_by_the_next_command() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (dir, campaign, home, runtime) = setup();
    let trials = 20;
    let mut kinds = std::collections::BTreeSet::new();
    for trial in 0..trials {
        let out = dir.path().join(format!("run{trial}"));
        // The seed picks the first fault: both kinds come up over the trials.
        let (mut child, fault) = run_until_fault(&campaign, &out, trial + 1);
        kinds.insert(fault.clone());
        let pid = node_pid(&home).expect("the node runs");
        if fault == "pause" {
            assert_eq!(state(pid), Some('T'), "trial {trial}: the pause is in force");
        }
        signal(&child, Signal::SIGKILL);
        let _ = child.wait();
        // Trials alternate between the two commands that find what a dead run left.
        let (code, said) = cluster_cmd(if trial % 2 == 0 { "status" } else { "up" });
        assert_eq!(code, 0, "trial {trial} ({fault}): {said}");
        assert!(
            said.contains(&format!(
                "healed a fault a killed run left in force on nats: {fault} node 0"
            )),
            "trial {trial}: {said}"
        );
        let pid = node_pid(&home).expect("the node runs");
        assert_ne!(state(pid), Some('T'), "trial {trial}: no node left paused");
        assert_eq!(toxics_left(&runtime, &home), Vec::<String>::new(), "trial {trial}");
        check_history(&out.join("history.jsonl"));
        eprintln!("trial {trial}: {fault} healed");
    }
    assert_eq!(
        kinds.len(),
        2,
        "both pause and lose-acks were in force when killed: {kinds:?}"
    );
    let (code, said) = cluster_cmd("down");
    assert_eq!(code, 0, "{said}");
    let taken: Vec<u16> = nats().ports(1).filter(|&p| process::port_taken(p)).collect();
    assert!(taken.is_empty(), "ports still taken after down: {taken:?}");
}

#[test]
fn sigint_and_sigterm_during_a_fault_heal_and_drain() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (dir, campaign, home, runtime) = setup();
    for (trial, sig) in [Signal::SIGINT, Signal::SIGTERM].into_iter().enumerate() {
        let out = dir.path().join(format!("signalled{trial}"));
        let (mut child, fault) = run_until_fault(&campaign, &out, trial as u64 + 1);
        signal(&child, sig);
        let status = child.wait().expect("ackcheck ends");
        // 128 + the signal says the run was cut short (a violated claim, 1, would stand).
        let cut_short = 128 + sig as i32;
        assert!(
            matches!(status.code(), Some(c) if c == cut_short || c == 1),
            "{sig}: ended with a verdict and the code of an interrupted run ({cut_short}): {status:?}"
        );
        let history = std::fs::read_to_string(out.join("history.jsonl")).expect("the history");
        assert!(
            history.contains(&format!("\"f\":\"stop-{fault}\"")),
            "{sig}: the fault was healed"
        );
        assert!(
            history.contains("\"f\":\"drain\",\"type\":\"ok\"") || history.contains("\"type\":\"ok\",\"f\":\"drain\""),
            "{sig}: the drain completed"
        );
        assert!(
            !home.run_dir("nats").join("fault-in-force.json").exists(),
            "{sig}: no record left"
        );
        let pid = node_pid(&home).expect("the node runs");
        assert_ne!(state(pid), Some('T'));
        assert_eq!(toxics_left(&runtime, &home), Vec::<String>::new());
    }
    let (code, said) = cluster_cmd("down");
    assert_eq!(code, 0, "{said}");
}
