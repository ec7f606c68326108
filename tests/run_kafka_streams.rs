//! `ackcheck run` with Kafka Streams as the pipeline's processor (`processor = "kafka-streams"`)
//! against a real Kafka node: ackcheck builds the Streams application with Maven (once, cached),
//! starts two instances as JVMs, kills them with SIGKILL and restarts them. Short versions of
//! workloads/kafka-streams-*.toml: exactly_once_v2 delivers every input's output once despite
//! the kills; at_least_once (which commits every 30 s by default) writes outputs twice.

#![cfg(feature = "kafka")]

mod common;

use common::{n, run};

const PIPELINE: &str = r#"
broker = "kafka"
mode = "MODE"

[workload]
kind = "pipeline"
processor = "kafka-streams"
partitions = 3
producers = 2
processors = 2
rate = 100
txn_size = 5

[crashes]
interval = 4.0

[drain]
quiet = 30.0
timeout = 180.0
"#;

/// Crash events of the history: (planned point, messages the killed instance held).
fn kills(history: &str) -> Vec<(String, usize)> {
    history
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|e| e["f"] == "crash" && e["type"] == "info")
        .map(|e| {
            let held = e["value"]["dropped"].as_array().map_or(0, Vec::len);
            (e["value"]["planned"].as_str().unwrap_or("").to_string(), held)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streams_exactly_once_v2_survives_instance_kills() {
    let campaign = PIPELINE.replace("MODE", "exactly-once");
    let (code, v, history) = run("streams-exactly-once", &campaign, 20).await;
    assert_eq!(v["pipeline"], true);
    assert_eq!(v["evidence"]["drained"], true, "{v}");
    let kills = kills(&history);
    assert!(!kills.is_empty(), "instances were killed: {v}");
    assert!(kills.iter().all(|(planned, _)| planned == "kill"), "{kills:?}");
    assert!(
        kills.iter().any(|&(_, held)| held > 0),
        "some instance died holding processed inputs whose outputs were not yet read: {kills:?}"
    );
    assert!(n(&v["counts"]["delivered"]) > 300, "Kafka Streams moved messages: {v}");
    assert_eq!(n(&v["counts"]["lost"]), 0, "{v}");
    assert_eq!(n(&v["counts"]["duplicated"]), 0, "{v}");
    assert_eq!(v["verdict"], "exactly-once", "{v}");
    assert_eq!(v["claim_holds"], true);
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streams_at_least_once_writes_outputs_twice_after_kills() {
    let campaign = PIPELINE.replace("MODE", "at-least-once");
    let (code, v, history) = run("streams-at-least-once", &campaign, 20).await;
    assert_eq!(v["evidence"]["drained"], true, "{v}");
    assert!(!kills(&history).is_empty(), "instances were killed: {v}");
    assert_eq!(n(&v["counts"]["lost"]), 0, "at-least-once loses nothing: {v}");
    // A killed instance's inputs since its last commit are processed again by their next owner:
    // the same output id (it names the source record) lands at a second sink position.
    assert!(n(&v["counts"]["duplicated"]) > 0, "{v}");
    assert!(n(&v["duplicate_causes"]["written_twice"]) > 0, "{v}");
    assert_eq!(v["claim_holds"], true, "{v}");
    assert_eq!(code, 0);
}
