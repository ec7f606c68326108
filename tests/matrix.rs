//! `ackcheck matrix` against a real broker (issue 14): a 2-cell matrix on one NATS node runs
//! both cells on one cluster (started once, kept between them, stopped at the end), writes one
//! results line per cell, and a second invocation resumes: nothing left to run.

use std::path::Path;
use std::process::Command;

/// Both tests run NATS on the same ports: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `ackcheck matrix DIR/m.toml --out DIR/out EXTRA…`, from the project's folder.
fn matrix_command(dir: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ackcheck"));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("matrix")
        .arg(dir.join("m.toml"))
        .arg("--out")
        .arg(dir.join("out"))
        .args(extra);
    command
}

/// The status of `ackcheck cluster status nats`, stdout and stderr together.
fn nats_status() -> String {
    let status = Command::new(env!("CARGO_BIN_EXE_ackcheck"))
        .args(["cluster", "status", "nats"])
        .output()
        .expect("cluster status");
    String::from_utf8_lossy(&status.stdout).into_owned() + &String::from_utf8_lossy(&status.stderr)
}

fn matrix(dir: &Path, extra: &[&str]) -> (i32, String, String) {
    let out = matrix_command(dir, extra).output().expect("running ackcheck matrix");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    eprintln!("exit {:?}\n{stdout}\n{stderr}", out.status.code());
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

#[test]
fn two_cells_share_one_cluster_record_results_and_resume() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(
        dir.path().join("m.toml"),
        "seeds = [1, 2]\nduration = \"8s\"\n[[cells]]\ncampaigns = [\"workloads/nats-at-least-once.toml\"]\n",
    )
    .unwrap();
    let junit = dir.path().join("junit.xml");
    let (code, stdout, stderr) = matrix(dir.path(), &["--junit", junit.to_str().unwrap()]);
    assert_eq!(code, 0, "both cells hold at-least-once");
    assert!(stderr.contains("2 cells, 0 done before, 2 to run"), "{stderr}");
    assert!(stdout.contains("matrix: 2 of 2 cells done"), "{stdout}");

    let results = std::fs::read_to_string(dir.path().join("out/results.jsonl")).expect("results.jsonl");
    let lines: Vec<serde_json::Value> = results
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(lines.len(), 2, "{results}");
    for (line, seed) in lines.iter().zip([1, 2]) {
        assert_eq!(line["cell"], format!("nats-at-least-once-seed{seed}"));
        assert_eq!(line["seed"], seed);
        assert_eq!(line["claim_holds"], true, "{line}");
        assert!(line["counts"]["acknowledged"].as_u64().unwrap_or(0) > 0, "{line}");
        assert!(
            line["performance"]["acknowledged_per_second"].as_f64().is_some(),
            "{line}"
        );
        assert_eq!(
            line["config"]["duration"], 8.0,
            "the matrix's duration is in the effective config"
        );
    }

    // One cluster for both cells: the second run found it up, and the matrix stopped it after.
    let log = |cell: &str| std::fs::read_to_string(dir.path().join("out/cells").join(cell).join("run.log")).unwrap();
    assert!(
        !log("nats-at-least-once-seed2").contains("stopping the cluster this run started"),
        "the second cell did not start its own cluster"
    );
    let status = nats_status();
    assert!(
        status.contains("no process") && !status.contains("healthy"),
        "the matrix stopped the cluster it started: {status}"
    );

    let junit = std::fs::read_to_string(&junit).expect("junit.xml");
    assert_eq!(junit.matches("<testsuite ").count(), 2, "{junit}");

    // Resume: nothing left to run, the results untouched.
    let (code, _, stderr) = matrix(dir.path(), &[]);
    assert_eq!(code, 0);
    assert!(stderr.contains("2 cells, 2 done before, 0 to run"), "{stderr}");
    let again = std::fs::read_to_string(dir.path().join("out/results.jsonl")).unwrap();
    assert_eq!(again, results);
    let (_, stdout, _) = matrix(dir.path(), &["--list"]);
    assert_eq!(stdout.matches("done ").count(), 2, "{stdout}");
}

/// Ctrl-C in the middle of a cell: the run heals and stops, the matrix starts no further cell,
/// exits 130, records no result for the cut cell and stops the cluster it started; a second
/// SIGINT a moment later (what an impatient user sends) is not lost either. A resume has both
/// cells left to run.
#[test]
fn ctrl_c_stops_the_matrix_after_the_cell_in_progress_and_leaves_nothing_running() {
    use std::time::{Duration, Instant};
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(
        dir.path().join("m.toml"),
        "seeds = [1, 2]\nduration = \"30s\"\n[[cells]]\ncampaigns = [\"workloads/nats-at-least-once.toml\"]\n",
    )
    .unwrap();
    let mut child = matrix_command(dir.path(), &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ackcheck matrix starts");
    let history = dir.path().join("out/cells/nats-at-least-once-seed1/history.jsonl");
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::metadata(&history).map_or(0, |m| m.len()) < 10_000 {
        assert!(Instant::now() < deadline, "the first cell never got going");
        std::thread::sleep(Duration::from_millis(200));
    }
    let interrupted = Instant::now();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the matrix") {
            break status;
        }
        assert!(
            interrupted.elapsed() < Duration::from_secs(150),
            "the matrix still runs 150 s after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status.code(), Some(130), "an interrupted matrix exits 130");
    let results = std::fs::read_to_string(dir.path().join("out/results.jsonl")).unwrap_or_default();
    assert_eq!(results.lines().count(), 0, "the cut cell is not a result: {results}");
    assert!(
        !dir.path().join("out/cells/nats-at-least-once-seed2").exists(),
        "no cell started after Ctrl-C"
    );
    let status = nats_status();
    assert!(
        !status.contains("healthy"),
        "the matrix stopped the cluster it started: {status}"
    );
    let (_, stdout, _) = matrix(dir.path(), &["--list"]);
    assert_eq!(stdout.matches("done ").count(), 0, "{stdout}");
}
