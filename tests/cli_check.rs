//! `ackcheck check` as a user runs it: exit codes, the JSON interface, stdin, errors naming lines.

mod common;

use std::process::{Command, Stdio};

use common::ackcheck;

#[test]
fn the_example_violates_exactly_once_and_holds_at_least_once() {
    let (code, out, _) = ackcheck(&["check", "examples/orders.jsonl"], None);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("verdict: at-least-once"), "{out}");
    assert!(out.contains("claim exactly-once: VIOLATED"), "{out}");
    let (code, out, _) = ackcheck(&["check", "--claim", "at-least-once", "examples/orders.jsonl"], None);
    assert_eq!(code, 0, "{out}");
    // The only group is billing: judging a group that delivered nothing finds every order lost.
    let (code, out, _) = ackcheck(&["check", "--group", "billing", "examples/orders.jsonl"], None);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("claim exactly-once (group billing): VIOLATED"), "{out}");
}

#[test]
fn a_group_the_history_never_mentions_is_an_error_not_loss() {
    let (code, out, err) = ackcheck(&["check", "--group", "nosuch", "examples/orders.jsonl"], None);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.is_empty(), "no verdict: {out}");
    assert_eq!(
        err.trim(),
        "error: consumer group `nosuch` does not occur in the history (its groups: billing); name one of its groups, or leave out --group"
    );
    // A group named by the header's claim_groups exists even if it delivered nothing.
    let history = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/orders.jsonl")).unwrap();
    let body: String = history.lines().skip(1).map(|l| format!("{l}\n")).collect();
    let text = format!("{{\"history\":1,\"claim\":\"at-least-once\",\"claim_groups\":[\"audit\"]}}\n{body}");
    let (code, out, err) = ackcheck(&["check", "--group", "audit", "-"], Some(&text));
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("audit delivered nothing"), "{out}");
}

#[test]
fn dev_zero_ends_quickly_with_a_clear_error() {
    let started = std::time::Instant::now();
    let (code, _, err) = ackcheck(&["check", "/dev/zero"], None);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("line 1: longer than 64 MiB without a newline"), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

/// A history whose human report is long: many lost messages, so many lines of examples.
fn big_history(dir: &std::path::Path) -> std::path::PathBuf {
    let mut text = String::from("{\"history\":1,\"claim\":\"exactly-once\"}\n");
    for i in 0..20_000u64 {
        text.push_str(&format!(
            "{{\"index\":{i},\"time\":{i},\"process\":1,\"type\":\"invoke\",\"f\":\"send\",\"op\":{i},\"value\":{{\"messages\":[{{\"id\":\"m{i}\"}}]}}}}\n"
        ));
    }
    let path = dir.join("big.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_closed_stdout_is_no_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = big_history(dir.path());
    // `ackcheck check big.jsonl | head -1`: the reader goes away before the verdict is written.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ackcheck"))
        .args(["check", "--examples", "100000", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    // The verdict's own exit code: nothing was delivered, so the claim is not judged (3).
    assert_eq!(out.status.code(), Some(3), "the verdict's code, quietly: {err}");
    assert!(err.is_empty(), "quiet on a closed pipe: {err}");
    // `> /dev/full`: any other write error is one clear sentence.
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ackcheck"))
        .args(["check", path.to_str().unwrap()])
        .stdout(full)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("error: cannot write the verdict to standard output"),
        "{err}"
    );
}

#[test]
fn json_verdict_has_the_documented_keys() {
    let (code, out, _) = ackcheck(&["check", "--json", "--examples", "1", "examples/orders.jsonl"], None);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(v["verdict"], "at-least-once");
    assert_eq!(v["claim"], "exactly-once");
    assert_eq!(v["claim_holds"], false);
    for key in [
        "messages",
        "acknowledged",
        "indeterminate",
        "failed",
        "delivered",
        "lost",
        "unseen",
        "duplicated",
        "unexpected",
        "recovered",
        "failed_delivered",
        "torn",
        "order_violations",
    ] {
        assert!(v["counts"][key].is_u64(), "counts.{key} missing in {out}");
    }
    assert_eq!(v["duplicate_causes"]["written_twice"], 1);
    assert_eq!(v["duplicate_causes"]["redelivered"], 2);
    assert_eq!(v["duplicate_causes"]["unknown"], 0);
    assert_eq!(v["evidence"]["faults"]["lose-acks"], 1);
    assert_eq!(v["evidence"]["drained"], true);
    assert_eq!(v["evidence"]["crashes"], 1);
    assert_eq!(v["evidence"]["skipped"], 0);
    assert_eq!(v["claim_groups"], serde_json::Value::Null);
    assert_eq!(v["examples"]["duplicated"].as_array().map(Vec::len), Some(1));
    assert!(
        v["performance"]["acknowledged_per_second"]
            .as_f64()
            .is_some_and(|r| r > 0.0),
        "{out}"
    );
    assert_eq!(v["performance"]["latency"]["messages"], 3, "{out}");
    for key in ["p50_ms", "p99_ms", "max_ms"] {
        assert!(
            v["performance"]["latency"][key].is_f64(),
            "performance.latency.{key} missing in {out}"
        );
    }
}

#[test]
fn stdin_and_no_claim() {
    let history = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/orders.jsonl")).unwrap();
    let without_header: String = history.lines().skip(1).map(|l| format!("{l}\n")).collect();
    let (code, out, _) = ackcheck(&["check", "--json", "-"], Some(&without_header));
    assert_eq!(code, 0, "no claim: exit 0");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["claim"], serde_json::Value::Null);
    assert_eq!(v["claim_holds"], serde_json::Value::Null);
}

#[test]
fn unusable_input_exits_2_and_names_the_line() {
    let text = "{\"history\":1}\n{\"index\":0,\"time\":0,\"process\":1,\"type\":\"invoke\",\"f\":\"send\"}\n{\"index\":1,\"time\":0,\"process\":1,\"type\":\"finished\",\"f\":\"send\"}\n";
    let (code, _, err) = ackcheck(&["check", "-"], Some(text));
    assert_eq!(code, 2);
    assert!(
        err.contains("line 3: invalid event: unknown variant `finished`"),
        "{err}"
    );
    let (code, _, err) = ackcheck(&["check", "no/such/history.jsonl"], None);
    assert_eq!(code, 2);
    assert!(err.contains("no/such/history.jsonl"), "{err}");
}

/// A history whose sends are acknowledged every second from 1 s to 9 s, whose deliveries stop
/// after 2 s, and whose drain starts at 10 s.
fn stalled_deliveries() -> String {
    let s = 1_000_000_000u64;
    let mut lines = vec![r#"{"history":1,"claim":"at-least-once"}"#.to_string()];
    let mut index = 0;
    let mut line = |text: String| {
        index += 1;
        lines.push(text.replace("INDEX", &index.to_string()));
    };
    for n in 1..10u64 {
        let (t, id) = (n * s, format!("m{n}"));
        line(format!(
            r#"{{"index":INDEX,"time":{},"process":0,"type":"invoke","f":"send","op":{n},"value":{{"messages":[{{"id":"{id}"}}]}}}}"#,
            t - 1000
        ));
        line(format!(
            r#"{{"index":INDEX,"time":{t},"process":0,"type":"ok","f":"send","op":{n}}}"#
        ));
        if n <= 2 {
            line(format!(
                r#"{{"index":INDEX,"time":{},"process":1,"type":"ok","f":"deliver","value":{{"group":"g","messages":[{{"id":"{id}"}}]}}}}"#,
                t + 1000
            ));
        }
    }
    line(format!(
        r#"{{"index":INDEX,"time":{},"process":2,"type":"invoke","f":"drain","op":100}}"#,
        10 * s
    ));
    for n in 3..10u64 {
        line(format!(
            r#"{{"index":INDEX,"time":{},"process":1,"type":"ok","f":"deliver","value":{{"group":"g","messages":[{{"id":"m{n}"}}]}}}}"#,
            11 * s
        ));
    }
    line(format!(
        r#"{{"index":INDEX,"time":{},"process":2,"type":"ok","f":"drain","op":100}}"#,
        12 * s
    ));
    lines.join("\n") + "\n"
}

#[test]
fn the_verdict_names_the_longest_stalls_of_the_run_phase() {
    let history = stalled_deliveries();
    let (code, out, err) = ackcheck(&["check", "--json", "-"], Some(&history));
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON verdict");
    let e = &v["evidence"];
    assert_eq!(
        e["run_phase"], 10_000_000_000u64,
        "the run phase ends at the drain: {e}"
    );
    // Deliveries after the drain started are the drain's, not progress of the run phase.
    assert_eq!(
        e["longest_stall_delivered"],
        serde_json::json!({"from": 2_000_001_000u64, "to": 10_000_000_000u64}),
        "{e}"
    );
    assert_eq!(
        e["longest_stall_acked"],
        serde_json::json!({"from": 0, "to": 1_000_000_000u64}),
        "{e}"
    );
    let (code, out, _) = ackcheck(&["check", "-"], Some(&history));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("longest stalls of the 10.0 s run phase: no acknowledged send 0.0–1.0 s (1.0 s), no delivery 2.0–10.0 s (8.0 s)"),
        "{out}"
    );
}

/// A run directory as `ackcheck run` leaves one: a generated history (its header has the seed
/// but no campaign, so the directory's name stands for it) and its verdict from `check --json`.
fn run_dir(root: &std::path::Path, name: &str, seed: &str, loss: &str) -> std::path::PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let history = dir.join("history.jsonl");
    let (code, out, err) = ackcheck(
        &[
            "generate",
            "--seed",
            seed,
            "--messages",
            "2000",
            "--claim",
            "at-least-once",
            "--redelivered",
            "0.01",
            "--loss",
            loss,
            "--out",
            history.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    let (_, json, err) = ackcheck(&["check", "--json", history.to_str().unwrap()], None);
    assert!(json.contains("\"verdict\""), "{json}{err}");
    std::fs::write(dir.join("verdict.json"), json).unwrap();
    dir
}

#[test]
fn diff_fails_only_when_a_guarantee_weakened() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old"), dir.path().join("new"));
    for seed in ["1", "2"] {
        run_dir(&old, &format!("run-{seed}"), seed, "0");
    }
    // Seed 2 of the new runs loses messages: its claim held before and fails now.
    run_dir(&new, "run-1", "1", "0");
    run_dir(&new, "run-2", "2", "0.01");
    let (code, out, err) = ackcheck(&["diff", old.to_str().unwrap(), new.to_str().unwrap()], None);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("2 pair(s) compared"), "{out}");
    assert!(out.contains("claim at-least-once held, now VIOLATED"), "{out}");
    assert!(out.contains("lost: 0 →"), "{out}");
    assert!(out.contains("guarantee weakened in 1 run(s)"), "{out}");
    // The other way round nothing weakened: exit 0, the recovery shown as stronger.
    let (code, out, _) = ackcheck(&["diff", new.to_str().unwrap(), old.to_str().unwrap()], None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("STRONGER") && out.contains("now holds"), "{out}");
    // A run against itself: no difference. JSON for machines.
    let one = old.join("run-1");
    let (code, out, _) = ackcheck(&["diff", "--json", one.to_str().unwrap(), one.to_str().unwrap()], None);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["changes"], serde_json::json!([]), "{out}");
    assert_eq!(v["pairs"], 1);
    // Nothing to compare is unusable input.
    let (code, _, err) = ackcheck(
        &[
            "diff",
            dir.path().join("nothing").to_str().unwrap(),
            one.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not exist"), "{err}");
}
