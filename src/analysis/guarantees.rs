//! `guarantees.md`: the seed's questions answered. Prose that is not a measurement is a template
//! here; every measured statement is generated from the cells and links to them.

use std::fmt::Write;

use super::comparison::{code_list, families_text, latency_text, throughput_text};
use super::group::{range, Group};
use super::timelines::{Drawn, SPECS};
use super::Analysis;

/// How a broker implements a mode, at low level: producer acknowledgement, persistence and
/// replication, consumer commit or ack, deduplication, transactions (what ackcheck configures;
/// README "What each mode configures" has every property).
fn mechanism(broker: &str, mode: &str) -> [&'static str; 5] {
    match (broker, mode) {
        ("kafka", "at-most-once") => [
            "`acks=0`, no retries: the client never learns whether the partition leader appended the batch",
            "appended to the leader's log in the page cache; Kafka does not fsync by default (replication is the durability)",
            "offsets committed (synchronously) *before* processing",
            "none",
            "none",
        ],
        ("kafka", "at-least-once") => [
            "`acks=all`: the leader answers once every in-sync replica has the batch; retries, and the application re-sends the same id after an unknown outcome",
            "leader + followers in the ISR (`min.insync.replicas` decides how few may acknowledge); page cache, no fsync",
            "process, *then* commit offsets (asynchronously)",
            "none: `enable.idempotence=false`, so a retried batch whose ack was lost is appended again",
            "none",
        ],
        ("kafka", "exactly-once") => [
            "idempotent, transactional producer: producer id + epoch + per-partition sequence numbers; `acks=all`",
            "as at-least-once, plus the transaction log (`__transaction_state`) and commit/abort markers in every partition",
            "offsets sent *inside* the producer's transaction (`send_offsets_to_transaction`); consumers `isolation.level=read_committed`",
            "the broker drops a batch whose sequence number it already has (retries never append twice)",
            "yes: writes to several partitions and the input offsets commit or abort together",
        ],
        ("rabbitmq", "at-most-once") => [
            "no publisher confirms; transient messages",
            "held in memory; lost with the node",
            "automatic ack: the broker forgets a message as it sends it",
            "none",
            "none (AMQP `tx` exists, not used)",
        ],
        ("rabbitmq", "at-least-once") => [
            "publisher confirms: a confirm after the message is fsynced (classic durable queue) or accepted by a quorum of replicas (quorum queue); re-sends of the same id",
            "durable quorum queue (Raft log, fsynced) or classic durable queue; persistent messages",
            "manual ack *after* processing; unacked deliveries are requeued when the channel closes (redelivered)",
            "none in the broker",
            "none",
        ],
        ("rabbitmq", "exactly-once") => [
            "as at-least-once (confirms, re-sends)",
            "as at-least-once",
            "manual ack after the effect",
            "none in the broker: an idempotent consumer skips ids already in its durable store (fsynced before each effect)",
            "none: RabbitMQ cannot express exactly-once; the effect is the application's",
        ],
        ("sqs", "at-most-once") => [
            "one SendMessage, SDK retries off",
            "LocalStack keeps queues in memory (AWS replicates across zones)",
            "DeleteMessage *before* processing",
            "none (standard queue)",
            "none",
        ],
        ("sqs", "at-least-once") => [
            "SendMessage with retries; the application re-sends the same id",
            "as at-most-once",
            "process, then DeleteMessage; an undeleted message reappears after the visibility timeout (5 s)",
            "none (standard queue: at-least-once by design)",
            "none",
        ],
        ("sqs", "exactly-once") => [
            "FIFO queue, `MessageDeduplicationId` = message id, re-sends",
            "as at-most-once",
            "process, then DeleteMessage; an idempotent consumer skips copies by position",
            "FIFO deduplication: the same id within 5 minutes is accepted and dropped",
            "none",
        ],
        ("pulsar", "at-most-once") => [
            "a send is ok once the client took it",
            "BookKeeper ledger (standalone: one bookie, journal fsynced)",
            "ack *before* processing; acks are fire-and-forget (no receipt) and the cursor is persisted lazily",
            "none",
            "none (Pulsar has transactions; the Rust client has no API for them)",
        ],
        ("pulsar", "at-least-once") => [
            "ok on the broker's receipt (stored in the ledger); re-sends of the same id",
            "as at-most-once",
            "ack *after* processing",
            "none",
            "none",
        ],
        ("pulsar", "exactly-once") => [
            "broker deduplication (`brokerDeduplicationEnabled`: highest sequence id per producer name); one producer per logical message",
            "as at-most-once",
            "ack after processing; an idempotent consumer skips copies by position",
            "the broker drops a re-send it has seen from the same producer name",
            "none",
        ],
        ("nats", "at-most-once") => [
            "core publish, no wait for the stream's PubAck",
            "JetStream file store (fsync every 2 min by default); R replicas by Raft",
            "confirmed ack (`double_ack`) *before* processing",
            "none",
            "none",
        ],
        ("nats", "at-least-once") => [
            "wait for the PubAck (stored by a quorum of the stream's replicas); re-sends of the same id",
            "as at-most-once",
            "ack after processing; ack wait 5 s brings a crashed member's messages back",
            "none",
            "none",
        ],
        ("nats", "exactly-once") => [
            "`Nats-Msg-Id` = message id on every publish",
            "as at-most-once",
            "confirmed acks after processing; an idempotent consumer by stream sequence",
            "the server drops a re-send with a known `Nats-Msg-Id` within the duplicate window (2 min)",
            "none",
        ],
        _ => ["–", "–", "–", "–", "–"],
    }
}

/// The consumer's acknowledgement point of a variant, over the mode's.
fn consumer_of_variant(variant: &str) -> Option<&'static str> {
    match variant {
        "ack-before" => Some("commit or ack *before* processing (the matrix's `ack = \"before\"`)"),
        "auto-commit" => Some("automatic: `enable.auto.commit=true`, `enable.auto.offset.store=true` (librdkafka stores the offset as it hands the message over and commits every 5 s in the background)"),
        "auto-ack" => Some("automatic ack (no-ack consume): the broker forgets the message as it sends it"),
        _ => None,
    }
}

fn brokers(a: &Analysis) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for g in &a.groups {
        if !out.contains(&g.broker) {
            out.push(g.broker.clone());
        }
    }
    out
}

/// A one-line measured summary of a group: what was observed, lost, duplicated, with links.
fn measured(a: &Analysis, g: &Group) -> String {
    format!(
        "{} under {}; claim {}; lost {} per run, duplicated {} per 10k ({})",
        g.observed(),
        families_text(&g.families()),
        g.claim(),
        range(g.cells.iter().map(|c| c.count("lost") as f64)),
        range(g.cells.iter().map(|c| c.per_10k("duplicated"))),
        a.group_links(g)
    )
}

fn not_run(what: &str) -> String {
    format!("not measured: no cell of `{what}` has a verdict")
}

pub fn render(a: &Analysis, drawn: &[Drawn], timelines_requested: bool) -> String {
    let mut s = a.banner("Delivery guarantees, measured: the seed's questions answered");
    s.push_str(
        "The questions (the last section of the seed, `delivery-guarantees.md`) and where they are answered:\n\n\
1. Diagrams of retry cycles — [Diagrams](#diagrams), with a real timeline of each anomaly in [Timelines](#timelines-of-real-anomalies).\n\
2. At-least vs at-most vs exactly-once flowchart — [Diagrams](#diagrams).\n\
3. Configurations for Kafka Streams EOS — [kafka-streams-eos.md](kafka-streams-eos.md).\n\
4. How consumer-group commits affect guarantees — [Consumer commits](#how-consumer-commits-affect-the-guarantee-measured).\n\
5. Delivery guarantee diagram — [Diagrams](#diagrams).\n\
6. How each guarantee is implemented at low level — [Low level](#how-each-guarantee-is-implemented-at-low-level).\n\
7. Differences across Kafka, RabbitMQ, SQS and Pulsar (and NATS) — [Differences](#differences-across-brokers-in-one-table).\n\n\
Every sentence with a number is generated from the matrix and links to the cells behind it (`s1` = seed 1: the run's `verdict.json`; its `report.html` sits beside it when kept). \
A clean run is evidence, not proof: a guarantee that *held* held under the faults that run injected. [comparison.md](comparison.md) has every row with throughput and latency.\n\n",
    );

    // ---- Low level ----
    s.push_str("## How each guarantee is implemented at low level\n\n");
    s.push_str("Per broker, per configuration the matrix ran: the five places a guarantee is won or lost, as ackcheck configures them (the effective configuration comes from the runs' history headers), and what the runs showed.\n\n");
    for broker in brokers(a) {
        let _ = writeln!(s, "### {broker}\n");
        s.push_str("| configuration | mode | producer acknowledgement | persistence and replication | consumer commit or ack | deduplication | transactions | effective configuration | measured |\n");
        s.push_str("|---|---|---|---|---|---|---|---|---|\n");
        for g in a.groups.iter().filter(|g| g.broker == broker) {
            let m = mechanism(&g.broker, &g.mode);
            let txn_workload = g.cells[0]
                .config
                .as_ref()
                .is_some_and(|c| c["workload"]["kind"].as_str() == Some("txn"));
            let consumer = if txn_workload {
                // The txn workload has no processing stage: it shows what each isolation level reads.
                "two groups read the transactions: `read_committed` (the claim's group) and `read_uncommitted` (shows aborted transactions)"
            } else {
                g.variant.as_deref().and_then(consumer_of_variant).unwrap_or(m[2])
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                g.name(),
                g.mode,
                m[0],
                m[1],
                consumer,
                m[3],
                m[4],
                code_list(&g.effective_config()),
                measured(a, g)
            );
        }
        s.push('\n');
    }

    // ---- Consumer commits ----
    s.push_str("## How consumer commits affect the guarantee (measured)\n\n");
    s.push_str(
        "Common wisdom: commit *after* processing gives at-least-once (a crash between processing and commit redelivers: duplicates), commit *before* gives at-most-once (a crash between commit and processing loses the message), and automatic commits sit somewhere depending on the client. \
The matrix runs the same at-least-once campaign three ways on each broker that has the choice; the producer side is identical (acknowledged, re-sent), so the consumer's commit point is the only difference. Consumers crash by design (`[crashes]`) while faults run.\n\n",
    );
    s.push_str("| broker | commit after processing | commit before processing | automatic |\n|---|---|---|---|\n");
    let mut sentences: Vec<String> = Vec::new();
    for broker in ["kafka", "rabbitmq", "sqs"] {
        let base_name = format!("{broker}-at-least-once");
        let after = a.group(&base_name, None);
        let before = a.group(&base_name, Some("ack-before"));
        let auto_variant = match broker {
            "kafka" => Some("auto-commit"),
            "rabbitmq" => Some("auto-ack"),
            _ => None,
        };
        let auto = auto_variant.and_then(|v| a.group(&base_name, Some(v)));
        let cell = |g: Option<&Group>, what: String| g.map_or(not_run(&what), |g| measured(a, g));
        let _ = writeln!(
            s,
            "| {broker} | {} | {} | {} |",
            cell(after, base_name.clone()),
            cell(before, format!("{base_name}-ack-before")),
            match auto_variant {
                Some(v) => cell(auto, format!("{base_name}-{v}")),
                None => "SQS has no automatic delete: a message is deleted by DeleteMessage only".into(),
            }
        );
        if let Some(g) = before {
            let lost = g.total("lost");
            let crashes: u64 = g.cells.iter().filter_map(|c| c.evidence.as_ref()?.crashes).sum();
            if lost > 0 {
                sentences.push(format!(
                    "- **{broker}, commit before processing loses messages**, as expected: {} lost in {}/{} runs (per run {}; {}). Those runs are no longer at-least-once: the consumer told the broker it was done before it was.",
                    lost,
                    g.runs_with("lost"),
                    g.runs(),
                    range(g.cells.iter().map(|c| c.count("lost") as f64)),
                    a.group_links(g)
                ));
            } else {
                sentences.push(format!(
                    "- **{broker}, commit before processing lost nothing** in {} runs ({}) although {crashes} client crashes happened: the matrix did not catch the loss that common wisdom (rightly) predicts — a crash has to fall between the commit and the processing of a batch. Absence of loss here is not safety.",
                    g.runs(),
                    a.group_links(g)
                ));
            }
            if g.total("duplicated") > 0 {
                let written: u64 = g.cells.iter().map(|c| c.duplicate_cause("written_twice")).sum();
                let redelivered: u64 = g.cells.iter().map(|c| c.duplicate_cause("redelivered")).sum();
                sentences.push(format!(
                    "- **{broker}, commit before processing, duplicates**: {} messages duplicated in {}/{} runs ({}): {written} written twice by the producer (it still re-sends after an unknown outcome, as at at-least-once: expected) and {redelivered} redelivered to the consumers{}.",
                    g.total("duplicated"),
                    g.runs_with("duplicated"),
                    g.runs(),
                    a.group_links(g),
                    if redelivered > 0 {
                        " — *contrary to common wisdom*, committing before processing did not prevent redeliveries (the run's verdict shows examples)"
                    } else {
                        ": none, as common wisdom says"
                    }
                ));
            }
        }
        if let Some(g) = after {
            let dup = g.total("duplicated");
            sentences.push(format!(
                "- **{broker}, commit after processing**: {} lost and {dup} duplicated messages over {} runs ({}; of the duplicates {} written twice by the producer, {} redelivered to the consumers){}.",
                g.total("lost"),
                g.runs(),
                a.group_links(g),
                g.cells.iter().map(|c| c.duplicate_cause("written_twice")).sum::<u64>(),
                g.cells.iter().map(|c| c.duplicate_cause("redelivered")).sum::<u64>(),
                if g.total("lost") > 0 {
                    " — *a loss in at-least-once contradicts the textbook*: see the run's verdict for which fault"
                } else if dup > 0 {
                    ": the textbook's at-least-once"
                } else {
                    ": no duplicate showed, so these runs did not exercise the redelivery"
                }
            ));
        }
        if let (Some(v), Some(g)) = (auto_variant, auto) {
            let lost = g.total("lost");
            let claim = match v {
                "auto-commit" => "Kafka's automatic commit is often called at-least-once",
                _ => "Automatic ack is documented as unsafe (at-most-once)",
            };
            sentences.push(format!(
                "- **{broker}, automatic ({v})**: {} lost (in {} of {} runs), {} duplicated ({}). {claim}; {}.",
                lost,
                g.runs_with("lost"),
                g.runs(),
                g.total("duplicated"),
                a.group_links(g),
                match (v, lost > 0) {
                    ("auto-commit", true) => "*the measurement contradicts that*: librdkafka stores the offset when it hands a message over and commits it in the background, so a consumer that crashes mid-batch loses what it had not processed",
                    ("auto-commit", false) => "these runs lost nothing, so they neither confirm nor refute it",
                    (_, true) => "the measurement agrees",
                    (_, false) => "these runs lost nothing: the unsafe window was not hit",
                }
            ));
        }
    }
    s.push('\n');
    for line in &sentences {
        s.push_str(line);
        s.push('\n');
    }
    s.push('\n');

    // ---- Differences ----
    s.push_str("## Differences across brokers, in one table\n\n");
    s.push_str("What each broker offers for each guarantee, and what its one-node campaign of that mode showed (the `measured` columns link the runs).\n\n");
    s.push_str("| broker | producer acknowledgement | persistence | consumer ack | deduplication | transactions | at-most-once, measured | at-least-once, measured | exactly-once, measured | at-least-once throughput and latency (× at-most-once) |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for broker in brokers(a) {
        let mut alo = mechanism(&broker, "at-least-once");
        if alo[1] == "as at-most-once" {
            // The table has no at-most-once row to refer to.
            alo[1] = mechanism(&broker, "at-most-once")[1];
        }
        let eo = mechanism(&broker, "exactly-once");
        let short = |mode: &str| -> String {
            let name = format!("{broker}-{mode}");
            match a.group(&name, None) {
                Some(g) => format!(
                    "{}; lost {}, dup/10k {} ({})",
                    g.observed(),
                    range(g.cells.iter().map(|c| c.count("lost") as f64)),
                    range(g.cells.iter().map(|c| c.per_10k("duplicated"))),
                    a.group_links(g)
                ),
                None => not_run(&name),
            }
        };
        let perf = a
            .group(&format!("{broker}-at-least-once"), None)
            .map(|g| format!("{}; {}", throughput_text(a, g), latency_text(a, g)))
            .unwrap_or_else(|| "–".into());
        let _ = writeln!(
            s,
            "| {broker} | {} | {} | {} | {} | {} | {} | {} | {} | {perf} |",
            alo[0],
            alo[1],
            alo[2],
            eo[3],
            eo[4],
            short("at-most-once"),
            short("at-least-once"),
            short("exactly-once"),
        );
    }
    s.push('\n');

    // ---- Contradictions ----
    s.push_str("## Where the measurements contradict common wisdom\n\n");
    let mut contra: Vec<String> = Vec::new();
    for g in &a.groups {
        let links = a.group_links(g);
        match g.mode.as_str() {
            "at-most-once" if g.total("duplicated") > 0 => contra.push(format!(
                "- **At-most-once duplicated on {}**: `{}` delivered {} messages more than once in {}/{} runs ({} per 10k; {links}); the checker attributes {} to redelivery (the same position delivered twice) and {} to writing twice. At-most-once is said never to duplicate.",
                g.broker,
                g.name(),
                g.total("duplicated"),
                g.runs_with("duplicated"),
                g.runs(),
                range(g.cells.iter().map(|c| c.per_10k("duplicated"))),
                g.cells.iter().map(|c| c.duplicate_cause("redelivered")).sum::<u64>(),
                g.cells.iter().map(|c| c.duplicate_cause("written_twice")).sum::<u64>()
            )),
            "at-least-once" if g.variant.is_none() && g.total("lost") > 0 => contra.push(format!(
                "- **At-least-once lost messages on {}**: `{}` lost {} acknowledged messages in {}/{} runs ({links}). At-least-once is said never to lose.",
                g.broker,
                g.name(),
                g.total("lost"),
                g.runs_with("lost"),
                g.runs()
            )),
            "exactly-once" if g.cells.iter().any(|c| c.claim_holds == Some(false)) => contra.push(format!(
                "- **Exactly-once did not hold on {}**: `{}` {} ({}; {links}).",
                g.broker,
                g.name(),
                g.claim(),
                g.cells
                    .iter()
                    .filter_map(|c| c.violations.as_ref()?.first().cloned())
                    .next()
                    .unwrap_or_default()
            )),
            _ => {}
        }
        let redelivered: u64 = g.cells.iter().map(|c| c.duplicate_cause("redelivered")).sum();
        match g.variant.as_deref() {
            Some("auto-commit") if g.total("lost") > 0 => contra.push(format!(
                "- **Automatic offset commits lost messages on {}**: `{}` lost {} acknowledged messages in {}/{} runs ({links}). Kafka's auto-commit is often called at-least-once; with librdkafka (`enable.auto.offset.store=true`) the offset is stored as the message is handed over, so it behaves like a commit before processing.",
                g.broker,
                g.name(),
                g.total("lost"),
                g.runs_with("lost"),
                g.runs()
            )),
            Some("ack-before") if redelivered > 0 => contra.push(format!(
                "- **Committing before processing still redelivered on {}**: `{}` redelivered {redelivered} messages to its consumers over {} runs ({links}); committing first is expected to trade duplicates for loss, yet these runs had both.",
                g.broker,
                g.name(),
                g.runs()
            )),
            _ => {}
        }
        if g.mode == "at-most-once" && g.total("lost") == 0 {
            contra.push(format!(
                "- **At-most-once lost nothing on {}** (`{}`, {} runs; {links}): the faults did not hit the window in which an unacknowledged send or an early commit loses a message. At-most-once *allows* loss; it does not promise it.",
                g.broker,
                g.name(),
                g.runs()
            ));
        }
        if g.mode == "at-least-once" && g.variant.is_none() && g.total("duplicated") == 0 && g.total("lost") == 0 {
            contra.push(format!(
                "- **At-least-once showed no duplicate on {}** (`{}`, {} runs; {links}): the runs were exactly-once in effect. Duplicates are allowed, not guaranteed: these faults did not make the client re-send a stored message or the broker redeliver one.",
                g.broker,
                g.name(),
                g.runs()
            ));
        }
    }
    if contra.is_empty() {
        s.push_str("No measurement of this matrix contradicted the textbook table of the seed.\n\n");
    } else {
        s.push_str("Generated from the runs: each item is a measurement that differs from what the seed's table says (or says implicitly).\n\n");
        for c in &contra {
            s.push_str(c);
            s.push('\n');
        }
        s.push('\n');
    }

    // ---- Diagrams ----
    s.push_str("## Diagrams\n\n### The retry cycle: a lost acknowledgement appends twice\n\n");
    s.push_str(RETRY_CYCLE);
    if let Some(g) = a.group("kafka-at-least-once", None) {
        let written: u64 = g.cells.iter().map(|c| c.duplicate_cause("written_twice")).sum();
        let redelivered: u64 = g.cells.iter().map(|c| c.duplicate_cause("redelivered")).sum();
        let _ = writeln!(
            s,
            "Measured on Kafka at-least-once (`enable.idempotence=false`): {written} messages written twice (the same id at two offsets: this cycle) and {redelivered} redelivered (the same offset delivered twice: the consumer's cycle below) over {} runs ({}). With the idempotent producer of `kafka-exactly-once` the broker drops the retried batch by its sequence number.\n",
            g.runs(),
            a.group_links(g)
        );
    }
    s.push_str("### At-most-once, at-least-once or exactly-once: the flowchart\n\n");
    s.push_str(FLOWCHART);
    s.push_str("### Where each guarantee is won or lost: producer → broker → consumer\n\n");
    s.push_str(DELIVERY_DIAGRAM);

    // ---- Timelines ----
    s.push_str("## Timelines of real anomalies\n\n");
    s.push_str("Each figure is drawn from a history the matrix recorded (kept, compressed, in the cell's folder): the history was judged again by the checker, one example of the anomaly chosen, and every event of that message drawn on its own row — its history index and process on the left, what happened and the position (`partition@offset`) on the right — with the fault windows of those seconds shaded and nearby crashes and nemesis events.\n\n");
    for spec in &SPECS {
        match drawn.iter().find(|d| d.name == spec.name) {
            Some(d) => {
                let _ = writeln!(s, "### {}\n", d.title);
                let _ = writeln!(
                    s,
                    "![{}](timelines/{}.svg)\n\nCell {}{}, message `{}`: {}.\n",
                    d.name,
                    d.name,
                    a.cell_link(&d.cell, &d.cell),
                    a.cells
                        .get(&d.cell)
                        .map(|c| format!(
                            " (campaign `{}`{}, mode {})",
                            c.campaign,
                            c.variant
                                .as_deref()
                                .map(|v| format!(", variant `{v}`"))
                                .unwrap_or_default(),
                            c.mode()
                        ))
                        .unwrap_or_default(),
                    d.message,
                    d.explanation
                );
                s.push_str("| index | time (s) | process | event | position |\n|---|---|---|---|---|\n");
                for e in &d.events {
                    let _ = writeln!(
                        s,
                        "| {} | {:.3} | {} | {} | {} |",
                        e.index,
                        e.time_ns as f64 / 1e9,
                        e.process,
                        e.what.replace('|', "\\|"),
                        e.pos.as_deref().unwrap_or("")
                    );
                }
                s.push('\n');
            }
            None => {
                let _ = writeln!(s, "### {}\n", spec.title);
                if timelines_requested {
                    s.push_str("Not drawn: no cell with a kept history showed this anomaly in this matrix.\n\n");
                } else {
                    s.push_str("Not drawn in this generation (timelines off).\n\n");
                }
            }
        }
    }
    // The sentences above count runs with `{} runs`; one is a run.
    s.replace(" 1 runs", " 1 run")
}

const RETRY_CYCLE: &str = r#"```mermaid
sequenceDiagram
    participant P as Producer
    participant B as Broker (partition leader)
    participant C as Consumer
    P->>B: send m (batch, sequence unknown to the broker)
    B->>B: append m at offset 41
    B--xP: ack lost (connection reset, timeout)
    Note over P: outcome unknown: retry
    P->>B: send m again
    B->>B: append m at offset 42 (no idempotence: nothing to recognise it)
    B-->>P: ack
    C->>B: fetch
    B-->>C: m @41, m @42
    Note over C: processed twice: at-least-once
    Note over B: with enable.idempotence=true the broker sees (producer id, sequence) again and drops the retry
```

"#;

const FLOWCHART: &str = r#"```mermaid
flowchart TD
    S[producer sends m] --> A{waits for the broker's acknowledgement?}
    A -- "no (acks=0, no confirms)" --> L1[m may be lost silently] --> AMO
    A -- yes --> R{retries after an unknown outcome?}
    R -- no --> L2[m may be lost on a timeout] --> AMO
    R -- yes --> D{broker deduplicates retries? idempotent producer, FIFO dedup id, Nats-Msg-Id, Pulsar dedup}
    D -- no --> W[m may be stored twice] --> C
    D -- yes --> C{consumer commits or acks...}
    C -- "before processing" --> L3[crash after commit: m lost] --> AMO[at-most-once or worse]
    C -- "after processing" --> T{commit atomic with the effect? offsets in the transaction, or an idempotent consumer}
    T -- no --> ALO[at-least-once: duplicates possible]
    T -- yes --> EO[exactly-once effect]
    W -.-> ALO
```

"#;

const DELIVERY_DIAGRAM: &str = r#"```mermaid
flowchart LR
    subgraph Producer
      P1[send] --> P2{ack?}
    end
    subgraph Broker
      B1[leader appends] --> B2[replicas / fsync / quorum] --> B3[deliverable]
    end
    subgraph Consumer
      C1[receive] --> C2[process] --> C3[commit / ack]
    end
    P1 -- "network" --> B1
    B2 -- "ack (acks=all, confirm, PubAck)" --> P2
    B3 --> C1
    C3 -- "offset / ack" --> B3
    P2 -. "ack lost: retry = DUPLICATE (won back by idempotence / dedup id)" .-> P1
    B1 -. "acked before replicas or fsync, node dies = LOSS" .-> B2
    C1 -. "commit before processing, crash = LOSS" .-> C3
    C2 -. "crash after processing, before commit = DUPLICATE (won back by transactions or an idempotent consumer)" .-> C3
```

"#;
