//! `ackcheck analyze` turns a small committed `results.jsonl` (tests/data/analysis/results) into
//! the same tables every time: the generated Markdown must equal the golden files byte for byte.
//! After an intended change, regenerate them with `UPDATE_GOLDEN=1 cargo test --test
//! analysis_golden` and review the diff.

use std::path::Path;
use std::process::Command;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/analysis");
const FILES: [&str; 3] = ["comparison.md", "guarantees.md", "kafka-streams-eos.md"];

fn analyze(dir: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ackcheck"))
        .args(["analyze", "results", "--out", ".", "--no-timelines"])
        .current_dir(dir)
        .output()
        .expect("ackcheck runs");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The fixture's results in a fresh folder, as `DIR/results`.
fn fixture_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let results = dir.path().join("results");
    std::fs::create_dir_all(&results).expect("making results/");
    for f in ["results.jsonl", "run-info.toml"] {
        std::fs::copy(Path::new(FIXTURE).join("results").join(f), results.join(f)).expect("copying the fixture");
    }
    dir
}

#[test]
fn the_fixture_makes_the_golden_tables() {
    let dir = fixture_copy();
    let (code, output) = analyze(dir.path());
    assert_eq!(code, 0, "{output}");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for f in FILES {
        let made = std::fs::read_to_string(dir.path().join(f)).expect("the file was generated");
        let golden = Path::new(FIXTURE).join("expected").join(f);
        if update {
            std::fs::create_dir_all(golden.parent().expect("a folder")).expect("making expected/");
            std::fs::write(&golden, &made).expect("writing the golden file");
            continue;
        }
        let expected = std::fs::read_to_string(&golden).expect("the golden file exists (UPDATE_GOLDEN=1 makes it)");
        assert!(
            made == expected,
            "{f} differs from {}: rerun with UPDATE_GOLDEN=1 if the change is intended\n--- made ---\n{made}",
            golden.display()
        );
    }
}

#[test]
fn the_same_input_gives_the_same_bytes() {
    let (a, b) = (fixture_copy(), fixture_copy());
    assert_eq!(analyze(a.path()).0, 0);
    assert_eq!(analyze(b.path()).0, 0);
    for f in FILES {
        assert_eq!(
            std::fs::read(a.path().join(f)).expect("generated"),
            std::fs::read(b.path().join(f)).expect("generated"),
            "{f}"
        );
    }
}

#[test]
fn what_the_tables_say_traces_back_to_the_fixture() {
    let dir = fixture_copy();
    assert_eq!(analyze(dir.path()).0, 0);
    let comparison = std::fs::read_to_string(dir.path().join("comparison.md")).expect("generated");
    // The failed cell is named as missing, not counted.
    assert!(
        comparison.contains("`rabbitmq-at-least-once-seed1` (failed: rabbitmq did not start within 60 s)"),
        "{comparison}"
    );
    // Kafka at-least-once over two seeds: 139 duplicated of 9602 (145 per 10k) and 41 of 10250 (40).
    assert!(comparison.contains("at-least-once in 2/2 runs"), "{comparison}");
    assert!(comparison.contains("| 40–145 |"), "{comparison}");
    // Links to the cells, relative to the output folder.
    assert!(comparison.contains("[s1](results/cells/kafka-at-least-once-seed1/verdict.json)"));
    let guarantees = std::fs::read_to_string(dir.path().join("guarantees.md")).expect("generated");
    // A measured contradiction is said plainly, with its cell.
    assert!(
        guarantees.contains("**At-most-once duplicated on rabbitmq**"),
        "{guarantees}"
    );
    assert!(
        guarantees.contains("**kafka, commit before processing loses messages**"),
        "{guarantees}"
    );
    let streams = std::fs::read_to_string(dir.path().join("kafka-streams-eos.md")).expect("generated");
    assert!(streams.contains("docs/kafka-streams.md"), "{streams}");
}

#[test]
fn an_empty_results_file_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::create_dir_all(dir.path().join("results")).expect("making results/");
    std::fs::write(dir.path().join("results/results.jsonl"), "").expect("writing");
    let (code, output) = analyze(dir.path());
    assert_eq!(code, 2, "{output}");
    assert!(output.contains("holds no cell with a verdict"), "{output}");
}

/// A results line for a cell that the timeline rules pick: `variant`, `kind` (workload) and the
/// counts and faults that make it a candidate.
fn candidate_line(cell: &str, variant: Option<&str>, kind: &str, lost: u64, written_twice: u64) -> String {
    serde_json::json!({
        "cell": cell, "campaign": "kafka-at-least-once", "variant": variant, "seed": 1,
        "broker": "kafka", "nodes": 1, "dir": format!("results/cells/{cell}"),
        "config": {"mode": "at-least-once", "workload": {"kind": kind}},
        "exit": 0, "verdict": "at-least-once", "claim": "at-least-once", "claim_holds": true,
        "counts": {"messages": 200, "lost": lost, "duplicated": written_twice},
        "duplicate_causes": {"written_twice": written_twice, "redelivered": 0, "unknown": 0},
        "evidence": {"grade": "strong", "faults": {"lose-acks": 2}, "crashes": 1}
    })
    .to_string()
}

#[test]
fn each_anomaly_timeline_is_drawn_from_a_kept_history_with_indices_and_positions() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let results = dir.path().join("results");
    let cells = [
        ("dup-seed1", None, "queue", 0, 3, vec!["--written-twice", "3"]),
        ("before-seed1", Some("ack-before"), "queue", 3, 0, vec!["--loss", "3"]),
        ("txn-seed1", None, "txn", 0, 0, vec!["--atomic", "20", "--aborted", "3"]),
    ];
    let mut lines = String::new();
    for (cell, variant, kind, lost, twice, planted) in &cells {
        let cell_dir = results.join("cells").join(cell);
        std::fs::create_dir_all(&cell_dir).expect("making the cell's folder");
        let history = cell_dir.join("history.jsonl");
        let mut args = vec!["generate", "--messages", "200", "--log-positions", "--out"];
        args.push(history.to_str().expect("a UTF-8 path"));
        args.extend(planted.iter().copied());
        let made = Command::new(env!("CARGO_BIN_EXE_ackcheck"))
            .args(&args)
            .output()
            .expect("ackcheck runs");
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        lines.push_str(&candidate_line(cell, *variant, kind, *lost, *twice));
        lines.push('\n');
    }
    std::fs::write(results.join("results.jsonl"), lines).expect("writing results.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_ackcheck"))
        .args(["analyze", "results", "--out", "."])
        .current_dir(dir.path())
        .output()
        .expect("ackcheck runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let guarantees = std::fs::read_to_string(dir.path().join("guarantees.md")).expect("generated");
    for (name, cell) in [
        ("duplicate-from-lost-ack", "dup-seed1"),
        ("loss-from-commit-before-processing", "before-seed1"),
        ("aborted-read-uncommitted", "txn-seed1"),
    ] {
        let svg = std::fs::read_to_string(dir.path().join("timelines").join(format!("{name}.svg")))
            .unwrap_or_else(|e| panic!("{name}.svg: {e}"));
        assert!(svg.starts_with("<svg"), "{name}");
        assert!(
            guarantees.contains(&format!("![{name}](timelines/{name}.svg)")),
            "{guarantees}"
        );
        assert!(
            guarantees.contains(&format!("[{cell}](results/cells/{cell}/verdict.json)")),
            "{guarantees}"
        );
    }
    // The event tables carry history indices and positions.
    assert!(guarantees.contains("| index | time (s) | process | event | position |"));
    assert!(
        guarantees.contains("orders 0@") || guarantees.contains("| 0@"),
        "{guarantees}"
    );
}
