//! The broker contract, checked the same way on every registered driver against its real broker
//! (started by ackcheck's own code, one node behind Toxiproxy):
//!
//! 1. a send/receive round trip keeps the id, the key and the destination;
//! 2. a lost acknowledgement (Toxiproxy drops the broker's replies) makes a send unknown
//!    (`info`), and the message is stored all the same: it is delivered once the fault heals;
//! 3. the messages a consumer received but did not acknowledge come back to the next member
//!    of its group (at-least-once);
//! 4. kill -9 and restart keep acknowledged durable data (where the driver takes `kill`);
//! 5. `down` frees every port of the broker's block.
//!
//! A new broker gets its line in `contract_tests!`; `every_registered_broker_has_a_contract_test`
//! fails until it has one.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ackcheck::broker::{
    Broker, BrokerKind, Consumer, ConsumerSpec, Outcome, Outgoing, Producer, ProducerSpec, Received,
};
use ackcheck::history::Guarantee;
use ackcheck::nodes::toxiproxy::{Toxic, Toxiproxy};
use ackcheck::nodes::{process, Cluster, Home};

/// One broker at a time: they share the machine's two cores and Toxiproxy.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const STEP: Duration = Duration::from_secs(60);

fn message(id: &str, dest: &str) -> Outgoing {
    Outgoing {
        id: id.into(),
        key: Some(format!("key-{id}")),
        dest: dest.into(),
        from: None,
        size: 64,
    }
}

fn consumer_spec(dest: &str) -> ConsumerSpec {
    ConsumerSpec {
        mode: Guarantee::AtLeastOnce,
        group: "contract".into(),
        dests: vec![dest.into()],
        committed_only: false,
        member: "c0".into(),
    }
}

/// Send until the broker acknowledges (a send may be unknown while a node comes back); returns
/// the positions the acknowledgement reported.
async fn send_ok(producer: &dyn Producer, m: &Outgoing) -> Vec<String> {
    let deadline = Instant::now() + STEP;
    loop {
        match producer.send(std::slice::from_ref(m)).await {
            Outcome::Ok(positions) => return positions,
            other => assert!(Instant::now() < deadline, "sending {} never succeeded: {other:?}", m.id),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Receive (through fresh consumers of the group when one fails) until every id in `want` came;
/// returns what came, committed or not.
async fn receive_ids(
    broker: &dyn Broker,
    consumer: &mut Option<Box<dyn Consumer>>,
    dest: &str,
    want: &[&str],
    commit: bool,
) -> Vec<Received> {
    let deadline = Instant::now() + STEP;
    let mut got: Vec<Received> = Vec::new();
    while !want.iter().all(|w| got.iter().any(|m| m.id == *w)) {
        let seen: Vec<&str> = got.iter().map(|m| m.id.as_str()).collect();
        assert!(Instant::now() < deadline, "waited for {want:?}, got only {seen:?}");
        if consumer.is_none() {
            match broker.consumer(&consumer_spec(dest)).await {
                Ok(c) => *consumer = Some(c),
                Err(e) => {
                    eprintln!("  a consumer could not be made yet: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        }
        let Some(c) = consumer.as_mut() else { continue };
        match c.receive(50, Duration::from_millis(500)).await {
            Ok(batch) => {
                if commit && !batch.is_empty() {
                    if let Err(e) = c.commit(&batch).await {
                        eprintln!("  commit failed ({e}); the messages will come again");
                    }
                }
                got.extend(batch);
            }
            Err(e) if e.fatal => {
                eprintln!("  the consumer failed ({e}); making a new one");
                if let Some(c) = consumer.take() {
                    c.close().await;
                }
            }
            Err(e) => eprintln!("  receive failed ({e}); trying again"),
        }
    }
    got
}

async fn contract(kind: BrokerKind) {
    let _serial = SERIAL.lock().await;
    let home = Home::from_env();
    let cluster: Box<dyn Cluster> = kind.open_cluster(Some(1), &home).expect("opening the cluster");
    cluster.up().await.unwrap_or_else(|e| panic!("starting {kind}: {e}"));
    let proxy = cluster.endpoints()[0].proxy.clone();
    let outcome = tokio::spawn(checks(kind, Arc::from(cluster_handle(kind, &home)))).await;
    let _ = Toxiproxy::default().remove_toxic(&proxy, "lost-acks").await;
    let down = cluster.down().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
    down.unwrap_or_else(|e| panic!("stopping {kind}: {e}"));
    let taken: Vec<u16> = kind.ports(1).filter(|&p| process::port_taken(p)).collect();
    assert!(taken.is_empty(), "{kind}: ports still taken after down: {taken:?}");
}

/// A second handle on the same cluster: every state is on disk, so handles are interchangeable.
fn cluster_handle(kind: BrokerKind, home: &Home) -> Box<dyn Cluster> {
    kind.open_cluster(Some(1), home).expect("opening the cluster")
}

async fn checks(kind: BrokerKind, cluster: Arc<dyn Cluster>) {
    let endpoints: Vec<String> = cluster.endpoints().iter().map(|e| e.client.to_string()).collect();
    let proxy = cluster.endpoints()[0].proxy.clone();
    let run = format!("contract{}", std::process::id());
    let broker = common::adapter::broker_client(kind, &endpoints, &run, Guarantee::AtLeastOnce);
    let dest = format!("contract-{run}");
    broker.create_dest(&dest, 1).await.expect("creating the destination");
    let producer = broker
        .producer(&ProducerSpec {
            mode: Guarantee::AtLeastOnce,
            identity: "contract-producer".into(),
        })
        .await
        .expect("a producer");

    // 1. Round trip; an acknowledgement's position is where a consumer finds the message.
    let mut acked_at = Vec::new();
    for id in ["c-1", "c-2", "c-3"] {
        acked_at.push((id, send_ok(producer.as_ref(), &message(id, &dest)).await));
    }
    let mut consumer = None;
    let got = receive_ids(broker.as_ref(), &mut consumer, &dest, &["c-1", "c-2", "c-3"], true).await;
    for m in &got {
        assert_eq!(m.dest, dest, "{kind}: destination of {}", m.id);
        assert_eq!(
            m.key.as_deref(),
            Some(format!("key-{}", m.id).as_str()),
            "{kind}: key of {}",
            m.id
        );
        assert!(!m.pos.is_empty(), "{kind}: {} has a position", m.id);
        let (_, positions) = acked_at.iter().find(|(id, _)| *id == m.id).expect("a sent id");
        // RabbitMQ's confirms say nothing about where a message went; every other broker's do.
        if kind.name() != "rabbitmq" {
            assert_eq!(
                positions,
                std::slice::from_ref(&m.pos),
                "{kind}: the acknowledgement of {} says where it is",
                m.id
            );
        } else {
            assert!(positions.is_empty(), "{kind}: {positions:?}");
        }
    }
    eprintln!("{kind}: round trip ok");

    // 2. A lost acknowledgement: unknown, and stored.
    let toxiproxy = Toxiproxy::default();
    toxiproxy
        .add_toxic(&proxy, &Toxic::lost_acks(0))
        .await
        .expect("adding the lost-ack toxic");
    let started = Instant::now();
    let outcome = producer.send(&[message("c-lost-ack", &dest)]).await;
    toxiproxy
        .remove_toxic(&proxy, "lost-acks")
        .await
        .expect("removing the toxic");
    assert!(
        matches!(outcome, Outcome::Info(_)),
        "{kind}: a send whose acknowledgement was lost is unknown, got {outcome:?}"
    );
    assert!(started.elapsed() < STEP, "{kind}: the send's timeout bounds the wait");
    receive_ids(broker.as_ref(), &mut consumer, &dest, &["c-lost-ack"], true).await;
    eprintln!(
        "{kind}: lost ack ok (unknown after {:.1} s, then delivered)",
        started.elapsed().as_secs_f64()
    );

    // 3. Received, not acknowledged, the consumer gone: the next member gets it.
    send_ok(producer.as_ref(), &message("c-unacked", &dest)).await;
    receive_ids(broker.as_ref(), &mut consumer, &dest, &["c-unacked"], false).await;
    if let Some(c) = consumer.take() {
        c.close().await;
    }
    receive_ids(broker.as_ref(), &mut consumer, &dest, &["c-unacked"], true).await;
    eprintln!("{kind}: an unacknowledged message came back");

    // 4. kill -9 and restart keep acknowledged data.
    let kill_refused = kind.capabilities().refused_faults.iter().any(|(f, _)| *f == "kill");
    if !kill_refused {
        send_ok(producer.as_ref(), &message("c-durable", &dest)).await;
        if let Some(c) = consumer.take() {
            c.close().await;
        }
        cluster.kill(0).await.expect("kill -9");
        cluster.restart(0).await.expect("restart");
        receive_ids(broker.as_ref(), &mut consumer, &dest, &["c-durable"], true).await;
        eprintln!("{kind}: acknowledged data survived kill -9");
    }
    if let Some(c) = consumer.take() {
        c.close().await;
    }
    producer.close(Duration::from_secs(5)).await;
}

macro_rules! contract_tests {
    ($($name:ident: $feature:literal),* $(,)?) => {
        $(
            #[cfg(feature = $feature)]
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                contract(ackcheck::brokers::$name::KIND).await;
            }
        )*

        #[test]
        fn every_registered_broker_has_a_contract_test() {
            let tested = [$(stringify!($name)),*];
            for kind in ackcheck::brokers::ALL {
                assert!(tested.contains(&kind.name()), "add {} to contract_tests!", kind.name());
            }
        }
    };
}

contract_tests!(kafka: "kafka", rabbitmq: "rabbitmq", sqs: "sqs", pulsar: "pulsar", nats: "nats");
