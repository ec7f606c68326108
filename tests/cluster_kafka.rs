//! Real Kafka nodes (KRaft, from Maven Central jars) behind Toxiproxy: produce and consume through
//! the proxies with rdkafka, kill -9 and restart, a lost ack, node loss in a 3-node cluster, and a
//! `down` that leaves no process and no bound port. Installs from scratch when the cache is empty.

#![cfg(feature = "kafka")]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ackcheck::nodes::toxiproxy::{Toxic, Toxiproxy};
use ackcheck::nodes::{self, process, Cluster, Home};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// Both tests use the same ports: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_survives_kill_and_loses_an_ack_through_the_proxy() {
    let _serial = SERIAL.lock().await;
    with_cluster(1, one_node_scenario).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_keep_serving_while_one_is_down_and_it_rejoins() {
    let _serial = SERIAL.lock().await;
    with_cluster(3, three_node_scenario).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stall_report_names_an_open_transaction_and_the_run_groups_offsets() {
    let _serial = SERIAL.lock().await;
    with_cluster(1, stall_report_scenario).await;
}

/// `Broker::stall_report`, which a run writes when its drain timed out: a transaction left open
/// on partition 0 holds read_committed readers at its first offset, and a group of the run has
/// its committed offset listed (a group of another run is not).
async fn stall_report_scenario(cluster: Box<dyn Cluster>) {
    use ackcheck::history::Guarantee;
    use rdkafka::producer::{BaseRecord, Producer as _, ThreadedProducer};

    let bootstrap = bootstrap_servers(cluster.as_ref());
    let kind = ackcheck::brokers::kafka::KIND;
    let run = format!("stall{}", std::process::id());
    let topic = format!("ackcheck-stall-{run}");
    create_topic(&bootstrap, &topic, 2, 1).await;

    // Partition 1: two committed records; partition 0: three in a transaction never ended.
    let plain = producer(&bootstrap, "10000");
    for i in 0..2 {
        let key = format!("k{i}");
        plain
            .send(
                FutureRecord::to(&topic).partition(1).key(&key).payload("committed"),
                Duration::from_secs(10),
            )
            .await
            .expect("a plain send is acknowledged");
    }
    let open: ThreadedProducer<rdkafka::producer::DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("transactional.id", format!("{run}-left-open"))
        .create()
        .expect("a transactional producer");
    open.init_transactions(Duration::from_secs(30))
        .expect("init_transactions");
    open.begin_transaction().expect("begin_transaction");
    for i in 0..3 {
        let key = format!("t{i}");
        open.send(BaseRecord::to(&topic).partition(0).key(&key).payload("open"))
            .map_err(|(e, _)| e)
            .expect("enqueued");
    }
    open.flush(Duration::from_secs(10))
        .expect("the open transaction's records reach the broker");

    // Committed offsets of a group of this run and of a group of another run.
    for group in [format!("{run}-readers"), "another-run-readers".to_string()] {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", &group)
            .create()
            .expect("a consumer");
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(&topic, 1, Offset::Offset(2))
            .expect("an offset");
        consumer
            .commit(&offsets, rdkafka::consumer::CommitMode::Sync)
            .expect("the offset is committed");
    }

    let endpoints = vec![bootstrap.clone()];
    let broker = common::adapter::broker_client(kind, &endpoints, &run, Guarantee::ExactlyOnce);
    let report = broker.stall_report(&[(topic.clone(), 2)]).await;
    eprintln!("stall report:\n{}", report.join("\n"));
    assert_eq!(
        report.iter().filter(|l| l.starts_with(&topic)).collect::<Vec<_>>(),
        [&format!(
            "{topic}: readable to read_committed consumers up to 0: 0 of 3 (3 held back by an open transaction), 1: 2"
        )],
        "{report:?}"
    );
    let groups: Vec<&String> = report.iter().filter(|l| l.starts_with("group ")).collect();
    assert_eq!(groups.len(), 1, "only this run's group: {report:?}");
    assert!(
        groups[0].starts_with(&format!(
            "group {run}-readers (Empty, 0 member(s)) committed: {topic}/1 2"
        )),
        "{report:?}"
    );
    // What a drain asks before it ends for quiet: held back while the transaction is open,
    // nothing once it ended.
    let held = broker.held_back(&[(topic.clone(), 2)]).await;
    assert_eq!(
        held.as_deref().and_then(|h| h.split(": ").last()),
        Some(format!("{topic}/0 3 past offset 0").as_str()),
        "{held:?}"
    );
    open.abort_transaction(Duration::from_secs(10)).expect("abort");
    let held = broker.held_back(&[(topic.clone(), 2)]).await;
    assert_eq!(held, None, "nothing is held back after the abort");
}

/// Kafka's nodes under the one local lifecycle, as `ackcheck cluster` runs them.
fn kafka_cluster(home: &Home, nodes: usize) -> Box<dyn Cluster> {
    ackcheck::brokers::kafka::KIND
        .open_cluster(Some(nodes), home)
        .expect("a node count the broker runs")
}

/// `bootstrap.servers`: every node's proxy.
fn bootstrap_servers(cluster: &dyn Cluster) -> String {
    let proxies: Vec<String> = cluster.endpoints().iter().map(|e| e.client.to_string()).collect();
    proxies.join(",")
}

/// Run `scenario` on a fresh cluster, then `down` whatever happened (a panic in the scenario is
/// re-raised after the cleanup), and check that `down` left no process and no bound port.
async fn with_cluster<F, Fut>(nodes: usize, scenario: F)
where
    F: FnOnce(Box<dyn Cluster>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let home = Home::from_env();
    let cluster = kafka_cluster(&home, nodes);
    cluster.down().await.expect("down before the test (clearing leftovers)");
    let started = Instant::now();
    let up = cluster.up().await;
    eprintln!(
        "kafka up with {nodes} node(s) took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The scenario runs in its own task so that a failed assertion comes back here as a panic
    // payload: the cluster goes down first, then the panic is re-raised.
    let outcome: Result<(), Box<dyn std::any::Any + Send>> = match up {
        Ok(()) => {
            for node in 0..nodes {
                let pid = cluster.node_process(node).pid();
                eprintln!("node {node} pid {pid:?} rss {}", pid.map(rss_kib).unwrap_or_default());
            }
            tokio::spawn(scenario(kafka_cluster(&home, nodes)))
                .await
                .map_err(|e| e.into_panic())
        }
        Err(e) => Err(Box::new(format!("up failed: {e}"))),
    };
    let pids: Vec<u32> = (0..nodes).filter_map(|i| cluster.node_process(i).pid()).collect();
    let down = cluster.down().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    down.expect("down");
    for pid in pids {
        assert!(!process::pid_alive(pid), "node process {pid} still alive after down");
    }
    for node in 0..nodes {
        for slot in 0..4 {
            let port = ackcheck::brokers::kafka::KIND.port(node, slot);
            assert!(!process::port_taken(port), "port {port} still bound after down");
        }
    }
    let proxies = Toxiproxy::default().proxies().await.unwrap_or_default();
    assert!(
        !proxies.iter().any(|p| p.starts_with("kafka-")),
        "kafka proxies left after down: {proxies:?}"
    );
}

async fn one_node_scenario(cluster: Box<dyn Cluster>) {
    let bootstrap = bootstrap_servers(cluster.as_ref());
    assert_eq!(bootstrap, "127.0.0.1:19000", "clients go through node 0's proxy");
    let topic = "ackcheck-one";
    create_topic(&bootstrap, topic, 1, 1).await;

    let producer = producer(&bootstrap, "10000");
    let sent = produce(&producer, topic, "m", 100).await;
    assert_eq!(
        read_topic(&bootstrap, topic, 1, 100).await,
        sent,
        "the 100 acknowledged messages are consumed"
    );

    let pid = cluster.node_process(0).pid().expect("node 0 runs");
    cluster.kill(0).await.expect("kill -9 node 0");
    assert!(!process::pid_alive(pid), "kill leaves no process");
    let started = Instant::now();
    cluster.restart(0).await.expect("restart node 0 on its data");
    eprintln!("restart after kill -9 took {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(
        read_topic(&bootstrap, topic, 1, 100).await,
        sent,
        "acknowledged messages survive kill -9"
    );

    // Lost ack: connect and learn the leader first (through a healthy proxy), then drop every
    // reply. The request still reaches the broker, which stores the message.
    let lossy = producer_with(
        &bootstrap,
        &[("message.timeout.ms", "4000"), ("request.timeout.ms", "2000")],
    );
    produce(&lossy, topic, "warm", 1).await;
    let proxy = Toxiproxy::default();
    proxy
        .add_toxic("kafka-node0", &Toxic::lost_acks(0))
        .await
        .expect("add the lost-ack toxic");
    let result = lossy
        .send(
            FutureRecord::<str, str>::to(topic).payload("lost-ack"),
            Duration::from_secs(1),
        )
        .await;
    proxy
        .remove_toxic("kafka-node0", "lost-acks")
        .await
        .expect("remove the lost-ack toxic");
    match result {
        Err((KafkaError::MessageProduction(code), _)) => assert!(
            matches!(
                code,
                RDKafkaErrorCode::MessageTimedOut | RDKafkaErrorCode::RequestTimedOut
            ),
            "the send fails with a timeout, not {code:?}"
        ),
        other => panic!("the send should time out while replies are dropped, got {other:?}"),
    }
    let seen = read_topic(&bootstrap, topic, 1, 102).await;
    assert!(
        seen.contains("lost-ack"),
        "the broker stored the message whose ack was lost: {} seen",
        seen.len()
    );
}

async fn three_node_scenario(cluster: Box<dyn Cluster>) {
    let bootstrap = bootstrap_servers(cluster.as_ref());
    let topic = "ackcheck-three";
    create_topic(&bootstrap, topic, 3, 3).await;
    let producer = producer(&bootstrap, "60000");
    let mut sent = produce(&producer, topic, "a", 100).await;
    assert_eq!(read_topic(&bootstrap, topic, 3, 100).await, sent);

    cluster.kill(1).await.expect("kill -9 node 1");
    // acks=all with min.insync.replicas=2: two of three replicas still accept writes once the
    // controller fences node 1 and moves its leaderships.
    let started = Instant::now();
    sent.extend(produce(&producer, topic, "b", 100).await);
    eprintln!(
        "100 sends with node 1 down took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        read_topic(&bootstrap, topic, 3, 200).await,
        sent,
        "the cluster serves with one node down"
    );

    cluster.restart(1).await.expect("restart node 1");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (brokers, isr) = metadata(&bootstrap, topic).await;
        if brokers.len() == 3 && isr.iter().all(|n| *n == 3) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 1 did not rejoin: brokers {brokers:?}, ISR sizes {isr:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let statuses = cluster.status().await.expect("status");
    assert!(
        statuses.iter().all(|s| s.state == nodes::NodeState::Healthy),
        "all healthy: {statuses:?}"
    );
}

fn rss_kib(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.trim_start_matches("VmRSS:").trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

fn producer(bootstrap: &str, message_timeout_ms: &str) -> FutureProducer {
    producer_with(bootstrap, &[("message.timeout.ms", message_timeout_ms)])
}

fn producer_with(bootstrap: &str, settings: &[(&str, &str)]) -> FutureProducer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "0");
    for (k, v) in settings {
        config.set(*k, *v);
    }
    config.create().expect("a producer")
}

/// Send `count` messages `<prefix>-<i>` one by one; every one must be acknowledged.
async fn produce(producer: &FutureProducer, topic: &str, prefix: &str, count: usize) -> BTreeSet<String> {
    let mut sent = BTreeSet::new();
    for i in 0..count {
        let payload = format!("{prefix}-{i}");
        let key = i.to_string();
        let record = FutureRecord::to(topic).key(&key).payload(&payload);
        if let Err((e, _)) = producer.send(record, Duration::from_secs(5)).await {
            panic!("send of {payload} failed: {e}");
        }
        sent.insert(payload);
    }
    sent
}

async fn create_topic(bootstrap: &str, topic: &str, partitions: i32, replicas: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("an admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(replicas))],
            &AdminOptions::new(),
        )
        .await
        .expect("create_topics request");
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => panic!("creating topic {t} failed: {e:?}"),
        }
    }
}

/// Read every partition of `topic` from the beginning (no consumer group offsets) until at least
/// `want` messages arrived or 60 s passed; returns the distinct payloads.
async fn read_topic(bootstrap: &str, topic: &str, partitions: i32, want: usize) -> BTreeSet<String> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "ackcheck-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("a consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .expect("assign a partition");
    }
    consumer.assign(&assignment).expect("assign");
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut count = 0;
    while count < want && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(2), consumer.recv()).await {
            Ok(Ok(m)) => {
                count += 1;
                if let Some(Ok(payload)) = m.payload_view::<str>() {
                    seen.insert(payload.to_string());
                }
            }
            Ok(Err(e)) => eprintln!("consumer error (retrying): {e}"),
            Err(_) => {}
        }
    }
    seen
}

/// Broker ids and each partition's ISR size, seen through the proxies.
async fn metadata(bootstrap: &str, topic: &str) -> (Vec<i32>, Vec<usize>) {
    let bootstrap = bootstrap.to_string();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let client: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .expect("a client");
        match client.fetch_metadata(Some(&topic), Duration::from_secs(5)) {
            Ok(md) => {
                let brokers = md.brokers().iter().map(|b| b.id()).collect();
                let isr = md
                    .topics()
                    .iter()
                    .flat_map(|t| t.partitions().iter().map(|p| p.isr().len()))
                    .collect();
                (brokers, isr)
            }
            Err(e) => {
                eprintln!("metadata request failed (retrying): {e}");
                (vec![], vec![])
            }
        }
    })
    .await
    .expect("metadata task")
}
