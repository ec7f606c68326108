//! What the `run_*` integration tests share: running a campaign through the library, as
//! `ackcheck run` does, and reading its verdict.

#![allow(dead_code)] // each test binary uses its own part of this module

pub mod adapter;

use std::path::Path;
use std::time::{Duration, Instant};

use ackcheck::runner::{self, RunOptions};
use serde_json::Value;

/// The runs of one broker share its ports: one at a time.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Run `campaign` (TOML text) for `seconds` with seed 7; returns the exit code, the verdict and
/// the history.
pub async fn run(name: &str, campaign: &str, seconds: u64) -> (i32, Value, String) {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join(format!("{name}.toml"));
    std::fs::write(&file, campaign).expect("writing the campaign");
    let out = dir.path().join("out");
    let started = Instant::now();
    let options = RunOptions {
        out: Some(out.clone()),
        seed: Some(7),
        duration: Some(Duration::from_secs(seconds)),
        ..RunOptions::for_campaign(&file)
    };
    let code = match runner::run(options).await {
        Ok(code) => code,
        Err(e) => panic!(
            "{name}: the run failed: {e:#}\nrun.log:\n{}",
            read(&out.join("run.log"))
        ),
    };
    eprintln!("{name}: exit {code} after {:.1} s", started.elapsed().as_secs_f64());
    let verdict: Value = serde_json::from_str(&read(&out.join("verdict.json"))).expect("verdict.json is JSON");
    eprintln!(
        "{name}: counts {}\n  causes {}\n  evidence {}",
        verdict["counts"], verdict["duplicate_causes"], verdict["evidence"]
    );
    // The test harness shows this only when the test fails: the run log says what the clients
    // and the nemesis did, which a verdict alone cannot (a drain that timed out, say).
    let log = read(&out.join("run.log"));
    let lines: Vec<&str> = log.lines().collect();
    eprintln!(
        "{name}: run.log (last {} of {} lines):\n{}",
        lines.len().min(120),
        lines.len(),
        lines[lines.len().saturating_sub(120)..].join("\n")
    );
    // Every run here starts its own cluster: its nodes' logs are kept in the run's folder, since
    // the next run of the broker starts them afresh.
    let node_log = std::fs::metadata(out.join("nodes/node0.log")).map_or(0, |m| m.len());
    assert!(
        node_log > 0,
        "{name}: the run kept node 0's log in {}",
        out.join("nodes").display()
    );
    (code, verdict, read(&out.join("history.jsonl")))
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("({} unreadable: {e})", path.display()))
}

/// A count in the verdict.
pub fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// `ackcheck ARGS` as a user runs it, with `stdin` on its standard input: (exit code, stdout, stderr).
pub fn ackcheck(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_ackcheck"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the ackcheck binary runs");
    let mut input = child.stdin.take().expect("piped stdin");
    if let Some(text) = stdin {
        // A closed pipe (the command reads a file instead) is fine.
        let _ = input.write_all(text.as_bytes());
    }
    drop(input);
    let out = child.wait_with_output().expect("ackcheck finishes");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// `apt-get install PACKAGE` when `command` is missing and the tests run as root (a fresh
/// machine may have no package lists yet: update once, then retry); else a clear panic.
pub fn apt_install_if_missing(command: &str, package: &str) {
    use std::process::{Command, Stdio};
    // Tests run in parallel threads; apt-get takes a lock and fails when it is held.
    static APT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _apt = APT.lock().unwrap_or_else(|p| p.into_inner());
    let present = || {
        Command::new("sh")
            .args(["-c", &format!("command -v {command}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if present() {
        return;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "{command} is missing: install it (`apt-get install -y {package}` on Debian) and run the tests again"
    );
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let install = ["install", "-y", package];
    if !apt(&install) {
        assert!(apt(&["update"]) && apt(&install), "apt-get could not install {package}");
    }
    assert!(present(), "{package} is installed but {command} is still missing");
}
