//! NATS JetStream end to end, against a real nats-server behind Toxiproxy (installed with
//! `go install` if missing).
//!
//! First the async-nats adapter alone, on what the history rests on: a publish whose PubAck is
//! lost ends unknown although the stream stored it; without `Nats-Msg-Id` the application's
//! re-send is a second stored copy (another `pos`), with it the server drops the re-send (one
//! copy). Then short versions of the campaigns in workloads/ through `ackcheck run`.

#![cfg(feature = "nats")]

mod common;

use std::time::Duration;

use ackcheck::broker::{Broker, ConsumerSpec, Outcome, ProducerSpec, Received};
use ackcheck::brokers::nats::client::NatsBroker;
use ackcheck::history::Guarantee;
use ackcheck::nodes::toxiproxy::{Toxic, Toxiproxy};
use ackcheck::nodes::Home;
use common::adapter::{log, message, receive, STEP};
use common::{n, run, SERIAL};

/// Publish `p0-1`, lose the PubAck of `p0-2`, re-send `p0-2` until ok, and read what is stored.
async fn lost_pub_ack(broker: &NatsBroker, proxy: &str, mode: Guarantee, stream: &str) -> Vec<Received> {
    broker.create_dest(stream, 1).await.expect("creating the stream");
    let spec = ProducerSpec {
        mode,
        identity: "producer-0".into(),
    };
    let producer = broker.producer(&spec).await.expect("a producer");
    assert!(producer.send(&[message("p0-1", stream)]).await.is_ok());
    let toxiproxy = Toxiproxy::default();
    toxiproxy
        .add_toxic(proxy, &Toxic::lost_acks(0))
        .await
        .expect("adding the toxic");
    let outcome = producer.send(&[message("p0-2", stream)]).await;
    toxiproxy
        .remove_toxic(proxy, "lost-acks")
        .await
        .expect("removing the toxic");
    assert!(
        matches!(outcome, Outcome::Info(_)),
        "a publish without its PubAck is unknown: {outcome:?}"
    );
    let resent = async {
        loop {
            match producer.send(&[message("p0-2", stream)]).await {
                Outcome::Ok(_) => return,
                other => eprintln!("re-send: {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(STEP, resent)
        .await
        .expect("the re-send is acked once the toxic is gone");
    let consumer_spec = ConsumerSpec {
        mode,
        group: "g".into(),
        dests: vec![stream.into()],
        committed_only: false,
        member: "c0".into(),
    };
    let mut consumer = broker.consumer(&consumer_spec).await.expect("a consumer");
    let expected = if mode == Guarantee::ExactlyOnce { 2 } else { 3 };
    let got = receive(consumer.as_mut(), expected).await;
    consumer.commit(&got).await.expect("acking");
    let extra = consumer.receive(10, Duration::from_secs(1)).await.expect("receiving");
    assert!(
        extra.is_empty(),
        "more copies than expected: {:?}",
        extra.iter().map(|m| &m.id).collect::<Vec<_>>()
    );
    consumer.close().await;
    producer.close(Duration::from_secs(5)).await;
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_pub_ack_is_unknown_and_only_nats_msg_id_keeps_the_resend_from_a_second_copy() {
    let _serial = SERIAL.lock().await;
    let home = Home::from_env();
    let cluster = ackcheck::brokers::nats::KIND
        .open_cluster(Some(1), &home)
        .expect("opening the cluster");
    cluster.up().await.expect("starting NATS");
    let endpoint = cluster.endpoints()[0].client.to_string();
    let proxy = cluster.endpoints()[0].proxy.clone();
    let scenario = async move {
        let broker = NatsBroker::new(&[endpoint], 1, log());
        let got = lost_pub_ack(&broker, &proxy, Guarantee::AtLeastOnce, "adapter-alo").await;
        let ids: Vec<&str> = got.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(
            ids,
            ["p0-1", "p0-2", "p0-2"],
            "the unacked publish was stored, then the re-send"
        );
        assert_eq!(
            got.iter().map(|m| m.pos.as_str()).collect::<Vec<_>>(),
            ["1", "2", "3"],
            "positions are stream sequences"
        );
        assert_eq!(got[0].key.as_deref(), Some("k1"));
        assert!(got.iter().all(|m| !m.redelivered));

        let got = lost_pub_ack(&broker, &proxy, Guarantee::ExactlyOnce, "adapter-eo").await;
        let ids: Vec<&str> = got.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["p0-1", "p0-2"], "Nats-Msg-Id made the server drop the re-send");
    };
    let outcome = tokio::spawn(scenario).await;
    let _ = Toxiproxy::default()
        .remove_toxic(&cluster.endpoints()[0].proxy, "lost-acks")
        .await;
    let down = cluster.down().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
    down.expect("stopping NATS");
}

const QUEUE: &str = r#"
broker = "nats"
mode = "MODE"

[workload]
kind = "queue"
producers = 2
consumers = 2
rate = 300
poll_batch = 20
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_least_once_under_lost_pub_acks_and_crashes_duplicates_and_loses_nothing() {
    let campaign = QUEUE.replace("MODE", "at-least-once")
        + "[crashes]\ninterval = 2.0\n[nemesis]\nfaults = [\"lose-acks\"]\ninterval = 3.0\nduration = 5.0\n";
    let (code, v, _) = run("nats-at-least-once", &campaign, 15).await;
    assert_eq!(v["evidence"]["drained"], true, "the drain completed: {v}");
    assert!(n(&v["evidence"]["faults"]["lose-acks"]) >= 1, "PubAcks were cut: {v}");
    assert_eq!(n(&v["counts"]["lost"]), 0, "at-least-once loses nothing: {v}");
    assert!(
        n(&v["duplicate_causes"]["written_twice"]) > 0,
        "a lost PubAck makes the application publish again: {v}"
    );
    assert_eq!(v["claim_holds"], true, "{v}");
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_most_once_with_ack_first_crashes_loses_and_never_duplicates() {
    let campaign = QUEUE.replace("MODE", "at-most-once")
        + "[crashes]\ninterval = 2.0\n[nemesis]\nfaults = [\"reset\"]\ninterval = 3.0\nduration = 3.0\n";
    let (code, v, _) = run("nats-at-most-once", &campaign, 12).await;
    assert_eq!(v["evidence"]["drained"], true, "the drain completed: {v}");
    assert_eq!(n(&v["counts"]["duplicated"]), 0, "at-most-once never duplicates: {v}");
    if n(&v["evidence"]["crashes"]) > 0 {
        assert!(
            n(&v["counts"]["lost"]) > 0,
            "a consumer that crashes after its ack loses what it held: {v}"
        );
    }
    assert_eq!(v["claim_holds"], true, "{v}");
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_once_holds_under_lost_pub_acks_and_crashes() {
    let campaign = QUEUE.replace("MODE", "exactly-once")
        + "[crashes]\ninterval = 2.0\n[nemesis]\nfaults = [\"lose-acks\", \"reset\"]\ninterval = 3.0\nduration = 4.0\n";
    let (code, v, _) = run("nats-exactly-once", &campaign, 15).await;
    assert_eq!(v["evidence"]["drained"], true, "the drain completed: {v}");
    assert!(n(&v["evidence"]["indeterminate_sends"]) > 0, "PubAcks were lost: {v}");
    assert_eq!(n(&v["counts"]["lost"]), 0, "{v}");
    assert_eq!(
        n(&v["duplicate_causes"]["written_twice"]),
        0,
        "Nats-Msg-Id keeps re-sends out: {v}"
    );
    assert_eq!(v["verdict"], "exactly-once", "{v}");
    assert_eq!(v["claim_holds"], true, "{v}");
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_faults_at_least_once_delivers_exactly_once() {
    let campaign = QUEUE.replace("MODE", "at-least-once");
    let (code, v, _) = run("nats-no-faults", &campaign, 10).await;
    assert_eq!(v["evidence"]["drained"], true, "the drain completed: {v}");
    assert!(n(&v["counts"]["delivered"]) > 1000, "messages moved: {v}");
    assert_eq!(n(&v["counts"]["lost"]), 0, "{v}");
    assert_eq!(n(&v["counts"]["duplicated"]), 0, "{v}");
    assert_eq!(v["verdict"], "exactly-once", "{v}");
    assert_eq!(code, 0);
}
