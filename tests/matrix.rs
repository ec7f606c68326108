//! `ackcheck matrix` against a real broker (issue 14): a 2-cell matrix on one NATS node runs
//! both cells on one cluster (started once, kept between them, stopped at the end), writes one
//! results line per cell, and a second invocation resumes: nothing left to run.

use std::path::Path;
use std::process::Command;

fn matrix(dir: &Path, extra: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ackcheck"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("matrix")
        .arg(dir.join("m.toml"))
        .arg("--out")
        .arg(dir.join("out"))
        .args(extra)
        .output()
        .expect("running ackcheck matrix");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    eprintln!("exit {:?}\n{stdout}\n{stderr}", out.status.code());
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

#[test]
fn two_cells_share_one_cluster_record_results_and_resume() {
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
    let status = Command::new(env!("CARGO_BIN_EXE_ackcheck"))
        .args(["cluster", "status", "nats"])
        .output()
        .expect("cluster status");
    let status = String::from_utf8_lossy(&status.stdout).into_owned() + &String::from_utf8_lossy(&status.stderr);
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
