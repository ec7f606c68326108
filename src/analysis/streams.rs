//! `kafka-streams-eos.md`: what Kafka Streams' `processing.guarantee=exactly_once_v2` sets
//! underneath, beside what ackcheck's own read-process-write pipeline configures (from the
//! pipeline cells' history headers) and what the matrix measured for it. The results of a real
//! Kafka Streams application are measured outside the matrix: the section points to them.

use std::fmt::Write;

use serde_json::Value;

use super::comparison::{families_text, latency_text, throughput_text};
use super::group::range;
use super::Analysis;

/// The pipeline cells' configuration value at `path` (`client.producer.acks`), with its origin.
fn config_value(a: &Analysis, path: &[&str]) -> Option<String> {
    let g = a.group("kafka-exactly-once", None).or_else(|| {
        a.groups
            .iter()
            .find(|g| g.broker == "kafka" && g.mode == "exactly-once")
    })?;
    let mut v: &Value = g.cells[0].config.as_ref()?;
    for p in path {
        v = v.get(*p)?;
    }
    let v = v.get("value").unwrap_or(v);
    Some(match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

pub fn render(a: &Analysis) -> String {
    let mut s = a.banner("Kafka Streams exactly-once beside ackcheck's pipeline");
    let ours = |path: &[&str], fallback: &str| -> String {
        config_value(a, path)
            .map(|v| format!("`{v}`"))
            .unwrap_or_else(|| fallback.to_string())
    };
    s.push_str(
        "Kafka Streams turns exactly-once on with one setting, `processing.guarantee=exactly_once_v2` (EOS v2, KIP-447; brokers 2.5+; the older `exactly_once` and `exactly_once_beta` were removed in 4.0). \
Underneath it configures the same pieces a hand-written read-process-write loop must: a transactional producer, `read_committed` consumers, and the input offsets committed inside the output's transaction. \
The left column is what Kafka Streams sets (its documented defaults under EOS); the right column is what ackcheck's `pipeline` workload (`workloads/kafka-exactly-once.toml`) configured in the matrix's runs, read from their history headers (librdkafka names; `–` = not set, librdkafka's default applies).\n\n",
    );
    s.push_str(
        "| what | Kafka Streams, `exactly_once_v2` | ackcheck pipeline (`kafka-exactly-once`) |\n|---|---|---|\n",
    );
    let rows: Vec<(&str, &str, String)> = vec![
        (
            "transactional producer",
            "one per stream thread (EOS v2; v1 had one per task); `transactional.id` derived from `application.id` and the thread; fencing by the consumer group's generation (KIP-447)",
            format!(
                "one per processor; `transactional.id` {}; a crashed processor's replacement reuses it, fencing the old one (the workload also stalls a processor until it is fenced)",
                ours(&["client", "producer", "transactional.id"], "from the processor's slot (`processor-<slot>`)")
            ),
        ),
        (
            "idempotence and acks",
            "`enable.idempotence=true`, `acks=all` (forced under EOS)",
            format!(
                "`enable.idempotence` {}, `acks` {}",
                ours(&["client", "producer", "enable.idempotence"], "– (implied by transactional.id)"),
                ours(&["client", "producer", "acks"], "–")
            ),
        ),
        (
            "consumer isolation",
            "`isolation.level=read_committed`",
            ours(&["client", "consumer", "isolation.level"], "librdkafka's default `read_committed`"),
        ),
        (
            "offsets",
            "committed through the producer (`sendOffsetsToTransaction`) in the same transaction; `enable.auto.commit=false`",
            format!(
                "`send_offsets_to_transaction` in the same transaction; `enable.auto.commit` {}",
                ours(&["client", "consumer", "enable.auto.commit"], "–")
            ),
        ),
        (
            "transaction boundary",
            "`commit.interval.ms` = 100 ms under EOS (30 s at at-least-once): a transaction per commit interval per thread",
            format!(
                "processors: one transaction per received batch of at most {} inputs (`poll_batch`; a receive waits at most 200 ms); the source's producers: transactions of {} messages (`txn_size`)",
                ours(&["workload", "poll_batch"], "–"),
                ours(&["workload", "txn_size"], "–")
            ),
        ),
        (
            "transaction timeout",
            "`transaction.timeout.ms` = 10 s (Streams' producer default under EOS)",
            ours(&["client", "producer", "transaction.timeout.ms"], "– (librdkafka's default, 60 s)"),
        ),
        (
            "state",
            "state stores backed by changelog topics written in the same transaction; `num.standby.replicas` (default 0) keeps warm copies on other instances for fail-over; on an EOS abort the local store is wiped and restored from the changelog",
            "none: the pipeline is stateless (one output per input); exactly-once is checked per upstream message in the sink".into(),
        ),
        (
            "transaction protocol",
            "Java client 4.x: transaction protocol v2 (KIP-890), an epoch bump per transaction",
            "librdkafka 2.12 sends EndTxn v0–1: the pre-KIP-890 protocol (see docs/audit.md and the shared broker notes)".into(),
        ),
    ];
    for (what, streams, ackcheck) in rows {
        let _ = writeln!(s, "| {what} | {streams} | {ackcheck} |");
    }
    s.push_str("\n## What the matrix measured for ackcheck's pipeline\n\n");
    let mut any = false;
    for g in a
        .groups
        .iter()
        .filter(|g| g.broker == "kafka" && g.mode == "exactly-once")
    {
        any = true;
        let kind = g.cells[0]
            .config
            .as_ref()
            .and_then(|c| c["workload"]["kind"].as_str().map(str::to_string))
            .unwrap_or_default();
        let what = match kind.as_str() {
            "pipeline" => "the read-process-write pipeline; counts per upstream message in the sink",
            "txn" => "transactional sends, no processing; counts over the read-committed group",
            _ => "exactly-once",
        };
        let _ = writeln!(
            s,
            "- `{}` ({what}; {} node{}): {} under {}; claim {}; lost {} and duplicated {} per run, aborted reads {}, torn transactions {}; throughput {}, latency p50 / p99 {} ({}).",
            g.name(),
            g.nodes,
            if g.nodes == 1 { "" } else { "s" },
            g.observed(),
            families_text(&g.families()),
            g.claim(),
            range(g.cells.iter().map(|c| c.count("lost") as f64)),
            range(g.cells.iter().map(|c| c.count("duplicated") as f64)),
            g.total("failed_delivered"),
            g.total("torn"),
            throughput_text(a, g),
            latency_text(a, g),
            a.group_links(g)
        );
    }
    if !any {
        s.push_str("No Kafka exactly-once cell has a verdict yet.\n");
    }
    s.push_str(
        "\n## A real Kafka Streams application\n\n\
A Kafka Streams application (`processors/kafka-streams/`, the Java library at the broker's version, two instances as separate JVMs that ackcheck kills with SIGKILL and restarts) runs as the pipeline's processor in three campaigns of its own: \
`workloads/kafka-streams-exactly-once.toml`, `workloads/kafka-streams-exactly-once-standby.toml` (a state store with a standby replica) and `workloads/kafka-streams-at-least-once.toml`. \
They are not cells of this matrix, so this file states no result about them: their runs, seeds 1–3, and what the history can and cannot observe of a Streams application are in [docs/kafka-streams.md](../docs/kafka-streams.md).\n",
    );
    s
}
