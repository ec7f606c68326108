//! `ackcheck audit` end to end on a real 3-node Kafka (issue 11): a producer with `acks=1` loses
//! acknowledged writes when the partition leader is paused, and the audit proves it with a lost
//! message; the safe twin (`acks=all`, idempotence, `min.insync.replicas=2`) holds under the same
//! faults. Each audit runs only the `pause` family (`--families`), 30 s, as a user would:
//! through the binary, from the `.properties` files in `examples/audit/`.

use std::path::Path;
use std::process::Command;

fn audit(out: &Path, args: &[&str]) -> (i32, String) {
    let junit = out.join("junit.xml");
    let output = Command::new(env!("CARGO_BIN_EXE_ackcheck"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "audit",
            "kafka",
            "--claim",
            "at-least-once",
            "--nodes",
            "3",
            "--duration",
            "30s",
        ])
        .args(["--families", "pause", "--seed", "1", "--out"])
        .arg(out)
        .arg("--junit")
        .arg(&junit)
        .args(args)
        .output()
        .expect("running ackcheck audit");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let code = output.status.code().unwrap_or(-1);
    eprintln!("exit {code}\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    (code, stdout)
}

#[test]
fn acks1_loses_acknowledged_writes_under_a_paused_leader_and_the_safe_twin_holds() {
    let dir = tempfile::tempdir().expect("a temporary directory");

    let bad = dir.path().join("acks1");
    let (code, stdout) = audit(&bad, &["--producer", "examples/audit/producer-acks1.properties"]);
    assert_eq!(code, 1, "acks=1 under a paused leader: the claim is violated (exit 1)");
    assert!(
        stdout.contains("at-least-once does not hold under pause") && stdout.contains(": lost p"),
        "the answer names the family and proves it with a lost message:\n{stdout}"
    );
    let summary = std::fs::read_to_string(bad.join("summary.txt")).expect("summary.txt");
    assert!(summary.contains("VIOLATED"), "{summary}");
    let junit = std::fs::read_to_string(bad.join("junit.xml")).expect("junit.xml");
    assert!(
        junit.contains("<testsuite name=\"audit-pause\"") && junit.contains("type=\"claim-violated\""),
        "the JUnit XML has the pause family as a failing suite:\n{junit}"
    );
    assert!(
        !bad.join("no-faults").exists() && bad.join("pause").join("history.jsonl").exists(),
        "--families ran only the pause family"
    );

    let safe = dir.path().join("safe");
    let (code, stdout) = audit(
        &safe,
        &[
            "--producer",
            "examples/audit/producer-safe.properties",
            "--topic",
            "examples/audit/topic-min-isr-2.properties",
        ],
    );
    assert_eq!(code, 0, "the safe twin holds (exit 0)");
    assert!(
        stdout.contains("at-least-once holds under every fault tried"),
        "{stdout}"
    );
    let verdict: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(safe.join("pause").join("verdict.json")).expect("verdict.json"))
            .expect("verdict.json is JSON");
    assert_eq!(verdict["counts"]["lost"], 0, "{}", verdict["counts"]);
    assert!(
        verdict["evidence"]["faults_started"].as_u64().unwrap_or(0) >= 2,
        "pauses really started: {}",
        verdict["evidence"]
    );
}

#[test]
fn an_unknown_family_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let output = Command::new(env!("CARGO_BIN_EXE_ackcheck"))
        .args([
            "audit",
            "kafka",
            "--claim",
            "at-least-once",
            "--families",
            "pause,partition",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .expect("running ackcheck audit");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`partition` is not a fault family") && stderr.contains("consumer-crashes"),
        "{stderr}"
    );
}
