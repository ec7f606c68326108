//! Campaigns that ask a broker for what its driver does not declare are refused when they load:
//! exit 2, one sentence on stderr naming the line and why, and nothing started (no broker is
//! installed or run: each case returns within seconds, with an ACKCHECK_HOME that stays empty).

#![cfg(all(
    feature = "kafka",
    feature = "rabbitmq",
    feature = "sqs",
    feature = "pulsar",
    feature = "nats"
))]

use std::process::Command;
use std::time::{Duration, Instant};

fn refused(name: &str, campaign: &str, expect: &[&str]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join(format!("{name}.toml"));
    std::fs::write(&file, campaign).expect("writing the campaign");
    let home = dir.path().join("home");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_ackcheck"))
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(dir.path().join("run"))
        .env("ACKCHECK_HOME", &home)
        .output()
        .expect("running ackcheck");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{name}: exit code, stderr: {stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{name}: took {:?}",
        started.elapsed()
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{name}: one sentence, got {stderr}");
    for e in expect {
        assert!(stderr.contains(e), "{name}: stderr should contain {e:?}: {stderr}");
    }
    assert!(!home.join("run").exists(), "{name}: nothing should have started");
    assert!(
        !dir.path().join("run").exists(),
        "{name}: no run directory for a refused campaign"
    );
}

const QUEUE: &str = "mode = \"at-least-once\"\nduration = \"10s\"\n\n[workload]\nkind = \"queue\"\n";

fn campaign(broker: &str, rest: &str) -> String {
    format!("broker = \"{broker}\"\n{rest}")
}

#[test]
fn workloads_that_need_transactions_are_refused_where_there_are_none() {
    for broker in ["rabbitmq", "sqs", "pulsar", "nats"] {
        for kind in ["txn", "pipeline"] {
            let c = campaign(
                broker,
                &format!("mode = \"exactly-once\"\n\n[workload]\nkind = \"{kind}\"\n"),
            );
            refused(
                &format!("{broker}-{kind}"),
                &c,
                &[
                    "line 5",
                    &format!("the {kind} workload needs transactions"),
                    broker,
                    "kind = \"queue\"",
                ],
            );
        }
    }
}

#[test]
fn faults_a_broker_cannot_take_are_refused() {
    let c = campaign("sqs", &format!("{QUEUE}\n[nemesis]\nfaults = [\"pause\", \"kill\"]\n"));
    refused(
        "sqs-kill",
        &c,
        &["line 9", "sqs cannot take the fault \"kill\"", "in memory"],
    );
}

#[test]
fn partitions_are_refused_on_one_node_and_where_nodes_cannot_be_cut_apart() {
    let one_node = campaign("nats", &format!("{QUEUE}\n[nemesis]\nfaults = [\"partition-one\"]\n"));
    refused(
        "nats-1node-partition",
        &one_node,
        &["nodes", "needs nodes = 2 or more, not 1"],
    );
    let bridge = campaign(
        "kafka",
        &format!("nodes = 1\n{QUEUE}\n[nemesis]\nfaults = [\"partition-bridge\"]\n"),
    );
    refused("kafka-1node-bridge", &bridge, &["line 2", "needs nodes = 3 or more"]);
    let pulsar = campaign(
        "pulsar",
        &format!("{QUEUE}\n[nemesis]\nfaults = [\"partition-halves\"]\n"),
    );
    refused(
        "pulsar-partition",
        &pulsar,
        &["pulsar cannot take the fault \"partition-halves\"", "standalone node"],
    );
}

#[test]
fn leader_targeting_is_refused_where_nodes_lead_nothing() {
    for broker in ["sqs", "pulsar"] {
        let c = campaign(
            broker,
            &format!("{QUEUE}\n[nemesis]\nfaults = [\"pause\"]\ntarget = \"leader\"\n"),
        );
        refused(&format!("{broker}-leader"), &c, &["line 10", "no leader to target"]);
    }
}

#[test]
fn node_counts_modes_dest_settings_and_brokers_a_driver_does_not_declare_are_refused() {
    refused(
        "rabbitmq-2",
        &campaign("rabbitmq", &format!("nodes = 2\n{QUEUE}")),
        &["line 2", "rabbitmq runs locally with 1 or 3 node(s), not 2"],
    );
    refused(
        "sqs-3",
        &campaign("sqs", &format!("nodes = 3\n{QUEUE}")),
        &["line 2", "with 1 node(s), not 3"],
    );
    refused(
        "kafka-dest",
        &campaign("kafka", &format!("{QUEUE}\n[dest]\nqueue_type = \"quorum\"\n")),
        &["line 9", "`dest.queue_type`", "not a Kafka topic setting"],
    );
    refused(
        "rabbitmq-dest",
        &campaign("rabbitmq", &format!("{QUEUE}\n[dest]\nqueue_type = \"stream\"\n")),
        &["line 9", "\"quorum\" or \"classic\""],
    );
    refused(
        "txn-at-least-once",
        &campaign("kafka", "mode = \"at-least-once\"\n\n[workload]\nkind = \"txn\"\n"),
        &["line 2", "mode must be \"exactly-once\""],
    );
    refused(
        "nosuch",
        &campaign("kafkaa", QUEUE),
        &[
            "line 1",
            "unknown broker \"kafkaa\"",
            "\"kafka\", \"rabbitmq\", \"sqs\", \"pulsar\", \"nats\"",
        ],
    );
}

#[test]
fn processor_applications_are_refused_where_they_cannot_run() {
    let pipeline = "mode = \"exactly-once\"\n\n[workload]\nkind = \"pipeline\"\n";
    refused(
        "kafka-unknown-processor",
        &campaign(
            "kafka",
            &format!("{pipeline}processor = \"flink\"\n\n[drain]\nquiet = 30.0\n"),
        ),
        &["there is no processor application \"flink\"", "kafka-streams"],
    );
    // The drain cannot see the application's group settle: a short quiet time would call a
    // rebalance a loss.
    refused(
        "kafka-streams-short-drain",
        &campaign("kafka", &format!("{pipeline}processor = \"kafka-streams\"\n")),
        &["quiet = 30 or more"],
    );
    refused(
        "kafka-streams-at-most-once",
        &campaign(
            "kafka",
            "mode = \"at-most-once\"\n\n[workload]\nkind = \"pipeline\"\nprocessor = \"kafka-streams\"\n\n[drain]\nquiet = 30.0\n",
        ),
        &["\"exactly-once\" or \"at-least-once\""],
    );
    refused(
        "kafka-processor-config-alone",
        &campaign(
            "kafka",
            &format!("{pipeline}processor_config = {{ \"num.standby.replicas\" = \"1\" }}\n"),
        ),
        &["needs `processor` too"],
    );
}
