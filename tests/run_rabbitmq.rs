//! RabbitMQ end to end, against a real node behind Toxiproxy (Debian's rabbitmq-server, which
//! ackcheck installs as root when it is missing).
//!
//! First the lapin adapter alone, on what the history's positions rest on: a publish whose
//! confirm is lost ends unknown although the broker stored it, and the application's re-send is
//! a second stored copy with another `pos`; a consumer dropped before its ack gets the same copy
//! (same `pos`) redelivered to the next one, flagged; an auto-ack consumer that dies loses what
//! it held. Then short versions of the campaigns in workloads/ through `ackcheck run`,
//! asserting what 15–20 s reproduce reliably.

#![cfg(feature = "rabbitmq")]

mod common;

use std::time::{Duration, Instant};

use ackcheck::broker::{Broker, Outcome, ProducerSpec, Received};
use ackcheck::brokers::rabbitmq::client::{QueueType, RabbitBroker};
use ackcheck::history::Guarantee;
use ackcheck::nodes::toxiproxy::{Toxic, Toxiproxy};
use ackcheck::nodes::Home;
use common::adapter::{log, message, nothing_left, receive, spec, STEP};
use common::{n, run, SERIAL};

/// Start one node, run `scenario` against its proxy endpoint, then stop it whatever happened.
async fn with_node<F, Fut>(scenario: F)
where
    F: FnOnce(RabbitBroker, String) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let _serial = SERIAL.lock().await;
    let home = Home::from_env();
    let cluster = ackcheck::brokers::rabbitmq::KIND
        .open_cluster(Some(1), &home)
        .expect("opening the cluster");
    cluster.up().await.expect("starting RabbitMQ");
    let endpoint = cluster.endpoints()[0].client.to_string();
    let proxy_name = cluster.endpoints()[0].proxy.clone();
    let broker = RabbitBroker::new(&[endpoint], QueueType::Quorum, log());
    let outcome = tokio::spawn(scenario(broker, proxy_name.clone())).await;
    // Only our own proxy: Toxiproxy is shared with other brokers' runs.
    let _ = Toxiproxy::default().remove_toxic(&proxy_name, "lost-acks").await;
    let down = cluster.down().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
    down.expect("stopping RabbitMQ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_confirm_is_unknown_the_copy_is_stored_and_a_resend_is_another_copy() {
    with_node(|broker, proxy| async move {
        let queue = "adapter-lost-confirm";
        broker.create_dest(queue, 1).await.expect("declaring the queue");
        let producer_spec = ProducerSpec {
            mode: Guarantee::AtLeastOnce,
            identity: "producer-0".into(),
        };
        let producer = broker.producer(&producer_spec).await.expect("a producer");
        assert!(producer.send(&[message("p0-1", queue)]).await.is_ok());

        let toxiproxy = Toxiproxy::default();
        toxiproxy
            .add_toxic(&proxy, &Toxic::lost_acks(0))
            .await
            .expect("adding the lost-ack toxic");
        let started = Instant::now();
        let outcome = producer.send(&[message("p0-2", queue)]).await;
        assert!(
            matches!(outcome, Outcome::Info(_)),
            "a publish without its confirm is unknown: {outcome:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the confirm timeout bounds the wait"
        );
        toxiproxy
            .remove_toxic(&proxy, "lost-acks")
            .await
            .expect("removing the toxic");

        // The application does not know: it re-sends the same id, a second publish.
        let resent = async {
            loop {
                match producer.send(&[message("p0-2", queue)]).await {
                    Outcome::Ok(_) => return,
                    other => eprintln!("re-send: {other:?}"),
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        tokio::time::timeout(STEP, resent)
            .await
            .expect("the re-send is confirmed once the toxic is gone");

        let mut consumer = broker
            .consumer(&spec(Guarantee::AtLeastOnce, queue))
            .await
            .expect("a consumer");
        let got = receive(consumer.as_mut(), 3).await;
        let ids: Vec<&str> = got.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(
            ids,
            ["p0-1", "p0-2", "p0-2"],
            "the unconfirmed publish was stored, then the re-send"
        );
        let (first, second) = (&got[1].pos, &got[2].pos);
        assert_ne!(first, second, "two publishes are two stored copies: written twice");
        assert!(
            first.starts_with(&format!("{queue}@p0-2~")),
            "pos names queue and copy: {first}"
        );
        assert!(got.iter().all(|m| !m.redelivered), "first deliveries are not flagged");
        assert_eq!(got[0].key.as_deref(), Some("k1"));
        consumer.commit(&got).await.expect("acking");
        nothing_left(consumer.as_mut(), Duration::from_secs(1)).await;
        consumer.close().await;
        producer.close(Duration::from_secs(5)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_dropped_before_its_ack_gets_the_same_copy_redelivered() {
    with_node(|broker, _| async move {
        let queue = "adapter-redelivery";
        broker.create_dest(queue, 1).await.expect("declaring the queue");
        let producer_spec = ProducerSpec {
            mode: Guarantee::AtLeastOnce,
            identity: "producer-0".into(),
        };
        let producer = broker.producer(&producer_spec).await.expect("a producer");
        for i in 0..3 {
            assert!(producer.send(&[message(&format!("p0-{i}"), queue)]).await.is_ok());
        }

        let mut crashed = broker
            .consumer(&spec(Guarantee::AtLeastOnce, queue))
            .await
            .expect("a consumer");
        let first = receive(crashed.as_mut(), 3).await;
        drop(crashed); // a crash: processed or not, never acknowledged

        let mut next = broker
            .consumer(&spec(Guarantee::AtLeastOnce, queue))
            .await
            .expect("a consumer");
        let again = receive(next.as_mut(), 3).await;
        let positions = |ms: &[Received]| ms.iter().map(|m| (m.id.clone(), m.pos.clone())).collect::<Vec<_>>();
        assert_eq!(
            positions(&again),
            positions(&first),
            "the same stored copies, at the same positions"
        );
        assert!(again.iter().all(|m| m.redelivered), "the broker flags them redelivered");
        next.commit(&again).await.expect("acking");
        next.close().await;

        let mut last = broker
            .consumer(&spec(Guarantee::AtLeastOnce, queue))
            .await
            .expect("a consumer");
        nothing_left(last.as_mut(), Duration::from_secs(1)).await;
        last.close().await;
        producer.close(Duration::from_secs(5)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_auto_ack_consumer_that_dies_loses_what_it_held() {
    with_node(|broker, _| async move {
        let queue = "adapter-auto-ack";
        broker.create_dest(queue, 1).await.expect("declaring the queue");
        let producer_spec = ProducerSpec {
            mode: Guarantee::AtMostOnce,
            identity: "producer-0".into(),
        };
        let producer = broker.producer(&producer_spec).await.expect("a producer");
        for i in 0..3 {
            assert!(producer.send(&[message(&format!("p0-{i}"), queue)]).await.is_ok());
        }
        let mut crashed = broker
            .consumer(&spec(Guarantee::AtMostOnce, queue))
            .await
            .expect("a consumer");
        receive(crashed.as_mut(), 3).await;
        drop(crashed); // before processing: the broker already forgot them
        let mut next = broker
            .consumer(&spec(Guarantee::AtMostOnce, queue))
            .await
            .expect("a consumer");
        nothing_left(next.as_mut(), Duration::from_secs(2)).await;
        next.close().await;
        producer.close(Duration::from_secs(5)).await;
    })
    .await;
}

const QUEUE: &str = r#"
broker = "rabbitmq"
mode = "MODE"

[workload]
kind = "queue"
producers = 2
consumers = 2
rate = 300
poll_batch = 20
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_least_once_under_lost_confirms_and_crashes_duplicates_and_loses_nothing() {
    let campaign = QUEUE.replace("MODE", "at-least-once")
        + "[crashes]\ninterval = 2.0\n[nemesis]\nfaults = [\"lose-acks\"]\ninterval = 3.0\nduration = 5.0\n";
    let (code, v, history) = run("rabbitmq-at-least-once", &campaign, 20).await;
    assert_eq!(v["evidence"]["drained"], true, "the drain completed: {v}");
    assert!(n(&v["evidence"]["faults"]["lose-acks"]) >= 1, "confirms were cut: {v}");
    assert_eq!(n(&v["counts"]["lost"]), 0, "at-least-once loses nothing: {v}");
    assert!(
        n(&v["duplicate_causes"]["written_twice"]) > 0,
        "a lost confirm makes the application publish again: {v}"
    );
    if history.contains("\"point\":\"after processing, before committing\"") {
        assert!(
            n(&v["duplicate_causes"]["redelivered"]) > 0,
            "crashes before the ack redeliver: {v}"
        );
    }
    assert_eq!(v["claim_holds"], true, "{v}");
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_most_once_with_auto_ack_crashes_loses_and_never_duplicates() {
    let campaign = QUEUE.replace("MODE", "at-most-once")
        + "[crashes]\ninterval = 2.0\n[nemesis]\nfaults = [\"reset\"]\ninterval = 3.0\nduration = 3.0\n";
    let (code, v, _) = run("rabbitmq-at-most-once", &campaign, 15).await;
    assert_eq!(v["evidence"]["drained"], true, "the drain completed: {v}");
    assert_eq!(n(&v["counts"]["duplicated"]), 0, "at-most-once never duplicates: {v}");
    // Every crash drops a received batch that the broker had already forgotten (auto-ack).
    if n(&v["evidence"]["crashes"]) > 0 {
        assert!(
            n(&v["counts"]["lost"]) > 0,
            "a crashed auto-ack consumer loses what it held: {v}"
        );
    }
    assert_eq!(v["claim_holds"], true, "{v}");
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_once_effect_holds_under_lost_confirms_and_crashes() {
    let campaign = QUEUE.replace("MODE", "exactly-once")
        + "[crashes]\ninterval = 2.0\n[nemesis]\nfaults = [\"lose-acks\", \"reset\"]\ninterval = 3.0\nduration = 4.0\n";
    let (code, v, history) = run("rabbitmq-exactly-once", &campaign, 20).await;
    assert_eq!(v["evidence"]["drained"], true, "the drain completed: {v}");
    assert!(n(&v["evidence"]["crashes"]) > 0, "consumers crashed: {v}");
    assert!(n(&v["evidence"]["indeterminate_sends"]) > 0, "confirms were lost: {v}");
    assert_eq!(
        n(&v["counts"]["indeterminate"]),
        0,
        "every unknown publish was sent again until confirmed: {v}"
    );
    assert!(n(&v["counts"]["delivered"]) > 1000, "messages moved: {v}");
    // The broker stored and delivered copies twice; the application kept them from taking effect.
    let (skipped, redelivered) = (n(&v["evidence"]["skipped"]), n(&v["evidence"]["skipped_redelivered"]));
    assert!(skipped > redelivered, "re-sent copies were skipped: {v}");
    assert!(history.contains("\"skipped\":["), "skipped copies are in the history");
    assert!(
        v["notes"].to_string().contains("application's deduplication"),
        "the report says where exactly-once came from: {v}"
    );
    assert_eq!(v["verdict"], "exactly-once", "{v}");
    assert_eq!(v["claim_holds"], true, "{v}");
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn classic_queues_redeliver_after_crashes_and_lose_nothing() {
    let campaign =
        QUEUE.replace("MODE", "at-least-once") + "[crashes]\ninterval = 1.5\n[dest]\nqueue_type = \"classic\"\n";
    let (code, v, history) = run("rabbitmq-classic", &campaign, 12).await;
    assert!(
        history.contains("\"queue_type\":\"classic\""),
        "the header records the queue type"
    );
    assert_eq!(v["evidence"]["drained"], true, "the drain completed: {v}");
    assert_eq!(n(&v["counts"]["lost"]), 0, "{v}");
    if history.contains("\"point\":\"after processing, before committing\"") {
        assert!(
            n(&v["duplicate_causes"]["redelivered"]) > 0,
            "crashes before the ack redeliver: {v}"
        );
        assert!(
            n(&v["evidence"]["flagged_redelivered"]) > 0,
            "the broker flags redeliveries: {v}"
        );
    }
    assert_eq!(code, 0, "{v}");
}

// ---------------------------------------------------------------------------------------------
// The user's own settings (issue 11): a campaign's `[client.*]`, `[dest]` and `[server]` tables
// take effect in a real run and are recorded in the history header.
// ---------------------------------------------------------------------------------------------

/// With `confirms = false` no publish waits for a confirm: under lost acknowledgements, which
/// make every confirmed publish end unknown ("no publisher confirm within 5.0 s", see
/// `at_least_once_under_lost_confirms_and_crashes_duplicates_and_loses_nothing`), none does.
/// The header records the user's key as `user` and the rest of the preset as `preset`; the
/// `[dest]` arguments reach the queue declaration (a declaration RabbitMQ refused would fail the
/// run), and the node boots with the `[server]` key in its rabbitmq.conf (a key it refused would
/// keep it from booting).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_users_confirms_false_is_recorded_and_no_publish_waits_for_a_confirm() {
    let campaign = QUEUE.replace("MODE", "at-least-once")
        + "[client.producer]\nconfirms = false\n[client.consumer]\nprefetch = 10\n\
           [dest]\n\"x-max-length\" = 1000000\n\"x-delivery-limit\" = 1000\n\
           [server]\ncluster_partition_handling = \"pause_minority\"\n\
           [nemesis]\nfaults = [\"lose-acks\"]\ninterval = 2.0\nduration = 4.0\n";
    let (code, v, history) = run("rabbitmq-user-confirms-off", &campaign, 15).await;
    let header: serde_json::Value =
        serde_json::from_str(history.lines().next().expect("a header")).expect("the header is JSON");
    let config = &header["config"];
    assert_eq!(
        config["client"]["producer"]["confirms"],
        serde_json::json!({"value": "false", "from": "user"}),
        "{config}"
    );
    assert_eq!(
        config["client"]["producer"]["persistent"],
        serde_json::json!({"value": "true", "from": "preset"})
    );
    assert_eq!(
        config["client"]["consumer"]["prefetch"],
        serde_json::json!({"value": "10", "from": "user"})
    );
    assert_eq!(config["dest_settings"]["arguments"]["x-delivery-limit"], 1000);
    assert_eq!(
        config["server"]["cluster_partition_handling"]["value"],
        "pause_minority"
    );
    assert!(n(&v["evidence"]["faults"]["lose-acks"]) >= 1, "acks were cut: {v}");
    assert!(n(&v["counts"]["delivered"]) > 1000, "messages moved: {v}");
    for waited in [
        "publisher confirm within",
        "before the confirm",
        "no publisher confirms",
    ] {
        assert!(
            !history.contains(waited),
            "a publish waited for a confirm ({waited:?}) although confirms = false"
        );
    }
    assert_eq!(v["evidence"]["drained"], true, "the drain completed: {v}");
    // Not asserted either way: without confirms a publish written into a connection that dies
    // as a fault ends is ok for the producer and may be lost (seen once: 1 of 4,494, the claim
    // violated, exit 1), which is what confirms are for.
    assert!(matches!(code, 0 | 1), "the run completed: exit {code}");
}
