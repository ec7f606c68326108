//! Amazon SQS end to end, against a real LocalStack node behind Toxiproxy.
//!
//! First the aws-sdk-sqs adapter alone, on what the history's positions rest on: in a standard
//! queue a send whose reply is lost ends unknown although SQS stored it, the application's
//! re-send is a second stored copy with another MessageId, and a consumer dropped before its
//! delete gets the same copies (same `pos`) back after the visibility timeout, flagged; in a
//! FIFO queue the same re-send is deduplicated by its MessageDeduplicationId. Then short
//! versions of the campaigns in workloads/ through `ackcheck run`, asserting what 15–20 s
//! reproduce reliably.

#![cfg(feature = "sqs")]

mod common;

use std::time::{Duration, Instant};

use ackcheck::broker::{Broker, Outcome, ProducerSpec};
use ackcheck::brokers::sqs::client::{SqsBroker, VISIBILITY_TIMEOUT_SECONDS};
use ackcheck::history::Guarantee;
use ackcheck::nodes::toxiproxy::{Toxic, Toxiproxy};
use ackcheck::nodes::Home;
use common::adapter::{log, message, nothing_left, positions, receive_polling, spec, STEP};
use common::{n, run, SERIAL};

/// SQS long-polls in whole seconds.
const SQS_POLL: Duration = Duration::from_secs(1);

/// A lost reply to a send of `id`: the outcome is unknown, and comes within the operation
/// timeout; then the toxic goes and the application's re-send of the same id is ok.
async fn lose_a_reply_then_resend(broker: &SqsBroker, proxy: &str, mode: Guarantee, id: &str, queue: &str) {
    let producer_spec = ProducerSpec {
        mode,
        identity: "producer-0".into(),
    };
    let producer = broker.producer(&producer_spec).await.expect("a producer");
    assert!(producer.send(&[message("p0-1", queue)]).await.is_ok());
    let toxiproxy = Toxiproxy::default();
    toxiproxy
        .add_toxic(proxy, &Toxic::lost_acks(0))
        .await
        .expect("adding the lost-ack toxic");
    let started = Instant::now();
    let outcome = producer.send(&[message(id, queue)]).await;
    toxiproxy
        .remove_toxic(proxy, "lost-acks")
        .await
        .expect("removing the toxic");
    assert!(
        matches!(outcome, Outcome::Info(_)),
        "a send without its reply is unknown: {outcome:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the operation timeout bounds the wait"
    );
    let resent = async {
        loop {
            match producer.send(&[message(id, queue)]).await {
                Outcome::Ok(_) => return,
                other => eprintln!("re-send: {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(STEP, resent)
        .await
        .expect("the re-send is ok once the toxic is gone");
    producer.close(Duration::from_secs(5)).await;
}

/// Start one node, run `scenario` against its proxy endpoint and proxy name, then stop it
/// whatever happened.
async fn with_node<F, Fut>(scenario: F)
where
    F: FnOnce(String, String) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let _serial = SERIAL.lock().await;
    let home = Home::from_env();
    let cluster = ackcheck::brokers::sqs::KIND
        .open_cluster(Some(1), &home)
        .expect("opening the cluster");
    cluster.up().await.expect("starting LocalStack");
    let endpoint = cluster.endpoints()[0].client.to_string();
    let proxy_name = cluster.endpoints()[0].proxy.clone();
    let outcome = tokio::spawn(scenario(endpoint, proxy_name.clone())).await;
    let _ = Toxiproxy::default().remove_toxic(&proxy_name, "lost-acks").await;
    let down = cluster.down().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
    down.expect("stopping LocalStack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standard_queue_a_lost_reply_is_stored_a_resend_is_another_copy_and_undeleted_copies_come_back() {
    with_node(|endpoint, proxy| async move {
        let broker = SqsBroker::new(&endpoint, Guarantee::AtLeastOnce, log());
        let queue = "adapter-standard";
        broker.create_dest(queue, 1).await.expect("creating the queue");
        lose_a_reply_then_resend(&broker, &proxy, Guarantee::AtLeastOnce, "p0-2", queue).await;

        let mut crashed = broker
            .consumer(&spec(Guarantee::AtLeastOnce, queue))
            .await
            .expect("a consumer");
        let first = receive_polling(crashed.as_mut(), 3, SQS_POLL).await;
        let ids: Vec<String> = positions(&first).into_iter().map(|(id, _)| id).collect();
        assert_eq!(
            ids,
            ["p0-1", "p0-2", "p0-2"],
            "the send without a reply was stored, then the re-send"
        );
        let copies: Vec<&str> = first
            .iter()
            .filter(|m| m.id == "p0-2")
            .map(|m| m.pos.as_str())
            .collect();
        assert_ne!(copies[0], copies[1], "two sends are two stored copies: written twice");
        assert!(first.iter().all(|m| !m.redelivered), "first deliveries are not flagged");
        assert!(first.iter().all(|m| m.key.as_deref() == Some("k1")), "the key travels");
        drop(crashed); // a crash: never deleted

        let mut next = broker
            .consumer(&spec(Guarantee::AtLeastOnce, queue))
            .await
            .expect("a consumer");
        let started = Instant::now();
        let again = receive_polling(next.as_mut(), 3, SQS_POLL).await;
        assert!(
            started.elapsed() >= Duration::from_secs(VISIBILITY_TIMEOUT_SECONDS as u64 - 2),
            "they came back only after the visibility timeout"
        );
        assert_eq!(
            positions(&again),
            positions(&first),
            "the same stored copies, at the same positions"
        );
        assert!(
            again.iter().all(|m| m.redelivered),
            "received twice: flagged redelivered"
        );
        next.commit(&again).await.expect("deleting");
        nothing_left(
            next.as_mut(),
            Duration::from_secs(VISIBILITY_TIMEOUT_SECONDS as u64 + 1),
        )
        .await;
        next.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifo_queue_deduplicates_the_resend_after_a_lost_reply() {
    with_node(|endpoint, proxy| async move {
        let broker = SqsBroker::new(&endpoint, Guarantee::ExactlyOnce, log());
        let queue = "adapter-fifo";
        broker.create_dest(queue, 1).await.expect("creating the FIFO queue");
        lose_a_reply_then_resend(&broker, &proxy, Guarantee::ExactlyOnce, "p0-2", queue).await;

        let mut consumer = broker
            .consumer(&spec(Guarantee::ExactlyOnce, queue))
            .await
            .expect("a consumer");
        let got = receive_polling(consumer.as_mut(), 2, SQS_POLL).await;
        let ids: Vec<&str> = got.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["p0-1", "p0-2"], "one copy of each, in send order");
        assert_eq!(got[1].dest, queue, "dest is the workload's name, not the .fifo queue's");
        consumer.commit(&got).await.expect("deleting");
        nothing_left(
            consumer.as_mut(),
            Duration::from_secs(VISIBILITY_TIMEOUT_SECONDS as u64 + 1),
        )
        .await;
        consumer.close().await;
    })
    .await;
}

const QUEUE: &str = r#"
broker = "sqs"
mode = "MODE"

[workload]
kind = "queue"
producers = 2
consumers = 2
rate = 200
poll_batch = 10
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_least_once_under_lost_replies_and_crashes_duplicates_and_loses_nothing() {
    let campaign = QUEUE.replace("MODE", "at-least-once")
        + "[crashes]\ninterval = 2.0\n[nemesis]\nfaults = [\"lose-acks\"]\ninterval = 3.0\nduration = 5.0\n";
    let (code, v, history) = run("sqs-at-least-once", &campaign, 20).await;
    assert_eq!(v["evidence"]["drained"], true, "the drain completed: {v}");
    assert!(n(&v["evidence"]["faults"]["lose-acks"]) >= 1, "replies were cut: {v}");
    assert!(n(&v["evidence"]["crashes"]) > 0, "consumers crashed: {v}");
    assert!(n(&v["counts"]["delivered"]) > 1000, "messages moved: {v}");
    assert_eq!(n(&v["counts"]["lost"]), 0, "at-least-once loses nothing: {v}");
    assert!(
        n(&v["duplicate_causes"]["written_twice"]) > 0,
        "a lost reply makes the application send again, and a standard queue stores both: {v}"
    );
    // A consumer crashed after processing and before deleting: SQS shows what it held again
    // once the visibility timeout is over, if the run lasts that long after the crash (the
    // drain ends when every acknowledged message was seen once). Checked on the messages
    // themselves: a held message that lost replies had also written twice counts as written
    // twice in the verdict's causes, so `redelivered` can stay 0.
    let redelivered = held_at_late_crashes_and_delivered_again(&history);
    eprintln!("crashes before the delete with time to redeliver: (held, delivered again) {redelivered:?}");
    assert!(
        redelivered.iter().all(|&(held, again)| held == again),
        "every message held at a crash before the delete came again: {redelivered:?} {v}"
    );
    assert_eq!(v["claim_holds"], true, "{v}");
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_most_once_deleting_before_processing_loses_in_crashes_and_never_duplicates() {
    // Latency only: it slows every reply but fails none, so a crash after the delete is a
    // crash after a delete that succeeded.
    let campaign = QUEUE.replace("MODE", "at-most-once")
        + "[crashes]\ninterval = 2.0\n[nemesis]\nfaults = [\"latency\"]\ninterval = 3.0\nduration = 3.0\n";
    let (code, v, history) = run("sqs-at-most-once", &campaign, 15).await;
    assert_eq!(v["evidence"]["drained"], true, "the drain completed: {v}");
    assert!(n(&v["evidence"]["crashes"]) > 0, "consumers crashed: {v}");
    assert_eq!(n(&v["counts"]["duplicated"]), 0, "at-most-once never duplicates: {v}");
    if history.contains("\"point\":\"after committing, before processing\"") {
        assert!(
            n(&v["counts"]["lost"]) > 0,
            "a consumer that crashes after deleting loses what it held: {v}"
        );
    }
    assert_eq!(v["claim_holds"], true, "{v}");
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_once_fifo_deduplication_and_idempotent_consumers_hold_under_lost_replies_and_crashes() {
    let campaign = QUEUE.replace("MODE", "exactly-once")
        + "[crashes]\ninterval = 2.0\n[nemesis]\nfaults = [\"lose-acks\", \"reset\"]\ninterval = 3.0\nduration = 4.0\n";
    let (code, v, history) = run("sqs-exactly-once", &campaign, 20).await;
    assert_eq!(v["evidence"]["drained"], true, "the drain completed: {v}");
    assert!(n(&v["evidence"]["crashes"]) > 0, "consumers crashed: {v}");
    assert!(
        n(&v["evidence"]["indeterminate_sends"]) > 0,
        "replies were lost, so the producers re-sent: {v}"
    );
    assert_eq!(
        n(&v["counts"]["indeterminate"]),
        0,
        "every unknown send was sent again until ok: {v}"
    );
    assert!(n(&v["counts"]["delivered"]) > 1000, "messages moved: {v}");
    // The consumers deduplicate by position: a re-send that SQS stored twice would be a second
    // position, delivered, and counted as written twice. Only redeliveries may be skipped.
    assert_eq!(n(&v["duplicate_causes"]["written_twice"]), 0, "{v}");
    assert_eq!(
        n(&v["evidence"]["skipped"]),
        n(&v["evidence"]["skipped_redelivered"]),
        "FIFO deduplication left no second stored copy to skip: {v}"
    );
    if history.contains("\"point\":\"after processing, before committing\"") {
        assert!(
            n(&v["evidence"]["skipped"]) > 0,
            "copies processed before a crash came back and were skipped: {v}"
        );
    }
    assert_eq!(v["verdict"], "exactly-once", "{v}");
    assert_eq!(v["claim_holds"], true, "{v}");
    assert_eq!(code, 0);
}

/// A campaign's own queue attribute reaches the queue: with a visibility timeout (1 s) shorter
/// than the processing time (2 s per message), SQS hands messages still in hand to other
/// consumers, and they are processed twice with no fault at all; the same run with 30 s of
/// visibility processes each once. The header records the setting as the user's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_visibility_timeout_shorter_than_processing_redelivers_with_no_fault() {
    let campaign = |visibility: u32| {
        format!(
            "broker = \"sqs\"\nnodes = 1\nmode = \"at-least-once\"\nclaim = \"exactly-once\"\n\n[dest]\nVisibilityTimeout = {visibility}\n\n[workload]\nkind = \"queue\"\nproducers = 1\nconsumers = 8\nrate = 2\npoll_batch = 1\nprocessing = \"2s\"\n"
        )
    };
    let (code, v, history) = run("sqs-short-visibility", &campaign(1), 15).await;
    let recorded = header(&history);
    assert_eq!(
        recorded["config"]["dest_settings"]["VisibilityTimeout"],
        serde_json::json!({"value": "1", "from": "user"}),
        "the header records the user's attribute: {recorded}"
    );
    assert_eq!(recorded["config"]["workload"]["processing"], "2000ms", "{recorded}");
    assert_eq!(n(&v["counts"]["lost"]), 0, "{v}");
    assert!(
        n(&v["duplicate_causes"]["redelivered"]) > 0,
        "messages came back while their consumer was still processing them: {v}"
    );
    assert_eq!(
        n(&v["duplicate_causes"]["written_twice"]),
        0,
        "no fault, no re-send: {v}"
    );
    assert_eq!(v["claim_holds"], false, "{v}");
    assert_eq!(code, 1);

    let (code, v, history) = run("sqs-long-visibility", &campaign(30), 15).await;
    assert_eq!(
        header(&history)["config"]["dest_settings"]["VisibilityTimeout"]["value"],
        "30"
    );
    assert_eq!(v["evidence"]["drained"], true, "the drain completed: {v}");
    assert!(n(&v["counts"]["delivered"]) > 10, "messages moved: {v}");
    assert_eq!(n(&v["counts"]["duplicated"]), 0, "deleted well within 30 s: {v}");
    assert_eq!(v["claim_holds"], true, "{v}");
    assert_eq!(code, 0);
}

/// The history's header line, as JSON.
fn header(history: &str) -> serde_json::Value {
    serde_json::from_str(history.lines().next().unwrap_or_default()).expect("the header is JSON")
}

/// For each crash after processing and before deleting that came at least the visibility
/// timeout (and a second for the next receive) before the drain began: (messages it held,
/// those of them delivered again after it).
fn held_at_late_crashes_and_delivered_again(history: &str) -> Vec<(usize, usize)> {
    let events: Vec<serde_json::Value> = history
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let time = |e: &serde_json::Value| e["time"].as_u64().unwrap_or(0);
    let Some(drain) = events.iter().find(|e| e["f"] == "drain").map(time) else {
        return Vec::new();
    };
    let needed = Duration::from_secs(VISIBILITY_TIMEOUT_SECONDS as u64 + 1).as_nanos() as u64;
    let delivered_after = |id: &str, after: u64| {
        events.iter().any(|e| {
            e["f"] == "deliver"
                && e["type"] == "ok"
                && time(e) > after
                && e["value"]["messages"]
                    .as_array()
                    .is_some_and(|ms| ms.iter().any(|m| m["id"] == id))
        })
    };
    events
        .iter()
        .filter(|e| e["f"] == "crash" && e["value"]["point"] == "after processing, before committing")
        .filter(|e| time(e) + needed <= drain)
        .map(|crash| {
            let held: Vec<&str> = crash["value"]["dropped"]
                .as_array()
                .map(|ids| ids.iter().filter_map(|id| id.as_str()).collect())
                .unwrap_or_default();
            let again = held.iter().filter(|id| delivered_after(id, time(crash))).count();
            (held.len(), again)
        })
        .collect()
}
