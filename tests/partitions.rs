//! Partitions between nodes, on real nodes in network namespaces that ackcheck creates: a cut
//! really stops an isolated Kafka leader from acknowledging `acks=all` writes and healing lets
//! them through, and the active controller cut off is replaced by another; a replication-only
//! cut holds acks=all writes while the leader keeps its partition; a NATS run interrupted with Ctrl-C in the middle of a partition, and a cluster
//! whose partitioning run was killed with -9, leave no namespace, no nftables rule, no proxy
//! and no broker process behind. Needs root, `ip` and `nft` (`.ci/run` installs nftables).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ackcheck::faults::{partition, FaultKind};
use ackcheck::nodes::toxiproxy::Toxiproxy;
use ackcheck::nodes::{netns, Cluster, Home, NodeNetwork, Traffic};

/// Every test here uses the same brokers' ports and the one bridge.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const ACKCHECK: &str = env!("CARGO_BIN_EXE_ackcheck");

/// What ackcheck could have left of a namespaced cluster: namespaces, the bridge, proxies of
/// `broker`, processes of the broker. Empty when nothing is left.
async fn leftovers(broker: &str, process_pattern: &str) -> Vec<String> {
    let mut left: Vec<String> = netns::leftovers()
        .iter()
        .map(|n| format!("network namespace {n}"))
        .collect();
    if std::path::Path::new("/sys/class/net").join(netns::BRIDGE).exists() {
        left.push(format!("the bridge {}", netns::BRIDGE));
    }
    let proxy = Toxiproxy::default();
    if proxy.is_up().await {
        if let Ok(names) = proxy.proxies().await {
            left.extend(
                names
                    .into_iter()
                    .filter(|n| n.starts_with(broker))
                    .map(|n| format!("proxy {n}")),
            );
        }
    }
    // Live processes only: a killed broker is a zombie until init reaps it.
    let ps = Command::new("ps")
        .args(["-eo", "pid=,stat=,args="])
        .output()
        .expect("ps runs");
    for line in String::from_utf8_lossy(&ps.stdout).lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() > 2 && !fields[1].starts_with('Z') && line.contains(process_pattern) {
            left.push(format!("{broker} process: {}", line.trim()));
        }
    }
    left
}

/// The leader of `topic`'s partition 0, waiting for one at most 30 s (`when` says in the failure).
async fn leader_within_30_s(cluster: &dyn Cluster, topic: &str, when: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(leader) = cluster.leader(topic).await {
            return leader;
        }
        assert!(Instant::now() < deadline, "no leader for {topic} within 30 s {when}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The nftables ruleset inside node `node`'s namespace (empty when no cut is in force there).
fn rules_in(cluster: &dyn Cluster, node: usize) -> String {
    let proxy_port: u16 = cluster.endpoints()[node].client.port();
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &netns::netns_name(proxy_port),
            "nft",
            "list",
            "ruleset",
        ])
        .output()
        .expect("ip netns exec runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[cfg(feature = "kafka")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_kafka_leader_acknowledges_no_acks_all_write_until_the_cut_heals() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::ClientConfig;

    let _serial = SERIAL.lock().await;
    let home = Home::from_env();
    let kind = ackcheck::brokers::kafka::KIND;
    let cluster: std::sync::Arc<dyn Cluster> = kind
        .open_cluster_on(Some(3), &home, &Default::default(), Some(NodeNetwork::Namespaces), None)
        .expect("a node count Kafka runs")
        .into();
    cluster.down().await.expect("down before the test");
    cluster.up().await.expect("3 Kafka nodes up in network namespaces");
    assert_eq!(netns::leftovers().len(), 3, "one namespace per node");

    let cluster_in_test = cluster.clone();
    let outcome = async move {
        let cluster = cluster_in_test;
        let all: Vec<String> = cluster.endpoints().iter().map(|e| e.client.to_string()).collect();
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", all.join(","))
            .create()
            .expect("an admin client");
        let topic = "cut";
        let new = NewTopic::new(topic, 1, TopicReplication::Fixed(3)).set("min.insync.replicas", "2");
        admin
            .create_topics(
                [&new],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
            )
            .await
            .expect("create_topics answered");
        // The leader is known once the topic's metadata reached the nodes.
        let leader = leader_within_30_s(cluster.as_ref(), topic, "after creating it").await;
        // A producer that knows only the leader (through its proxy): its metadata comes from the
        // leader alone, so while the cut lasts it keeps sending there.
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", cluster.endpoints()[leader].client.to_string())
            .set("acks", "all")
            .set("message.timeout.ms", "120000")
            .create()
            .expect("a producer");
        let record = FutureRecord::to(topic).key("k").payload("before the cut");
        producer
            .send(record, Duration::from_secs(30))
            .await
            .expect("acks=all is acknowledged before the cut");

        let grudge = partition::grudge(FaultKind::PartitionOne, leader, 3).expect("a 3-node grudge");
        cluster.partition(&grudge, Traffic::All).await.expect("the cut is made");
        assert!(
            rules_in(cluster.as_ref(), leader).contains("drop"),
            "the leader drops its peers' packets"
        );
        let cut_at = Instant::now();
        let during = producer.send(
            FutureRecord::to(topic).key("k").payload("during the cut"),
            Duration::from_secs(30),
        );
        tokio::pin!(during);
        let within_cut = tokio::time::timeout(Duration::from_secs(12), &mut during).await;
        assert!(
            within_cut.is_err(),
            "an isolated leader acknowledged an acks=all write during the cut: {within_cut:?}"
        );
        eprintln!(
            "no acknowledgement during {:.1} s of the cut",
            cut_at.elapsed().as_secs_f64()
        );

        cluster.heal_partitions().await.expect("the cut heals");
        assert!(
            !rules_in(cluster.as_ref(), leader).contains("drop"),
            "no rule left after heal"
        );
        let healed_at = Instant::now();
        let after = tokio::time::timeout(Duration::from_secs(90), &mut during).await;
        match after {
            Ok(Ok(position)) => eprintln!(
                "acknowledged {:.1} s after the heal at {position:?}",
                healed_at.elapsed().as_secs_f64()
            ),
            other => panic!("the write was not acknowledged within 90 s of the heal: {other:?}"),
        }

        // `target = "controller"`: the active KRaft controller is known, and cutting it off makes
        // the other two elect another one, which the target then names.
        let controller = cluster.controller().await.expect("the active controller is known");
        let grudge = partition::grudge(FaultKind::PartitionOne, controller, 3).expect("a 3-node grudge");
        cluster
            .partition(&grudge, Traffic::All)
            .await
            .expect("the controller is cut off");
        let deadline = Instant::now() + Duration::from_secs(30);
        let successor = loop {
            match cluster.controller().await {
                Some(now) if now != controller => break now,
                _ => {
                    assert!(
                        Instant::now() < deadline,
                        "node {controller}, cut off, was still the controller after 30 s"
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        };
        eprintln!("controller {controller} cut off; node {successor} took over");
        cluster.heal_partitions().await.expect("the cut heals");

        // `partition-replication`: only the replication listener is cut around the leader. Its
        // followers cannot fetch, so an acks=all write (min.insync.replicas=2) waits; but the
        // KRaft quorum still hears it, so it is not fenced and stays the leader (a full cut
        // fences it within 4 s, as above).
        let leader = leader_within_30_s(cluster.as_ref(), topic, "after the heal").await;
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", all.join(","))
            .set("acks", "all")
            .set("message.timeout.ms", "120000")
            .create()
            .expect("a producer");
        producer
            .send(
                FutureRecord::to(topic).key("k").payload("before"),
                Duration::from_secs(60),
            )
            .await
            .expect("acks=all is acknowledged before the replication cut");
        let kind = FaultKind::PartitionReplication;
        let grudge = partition::grudge(kind, leader, 3).expect("a 3-node grudge");
        cluster
            .partition(&grudge, partition::traffic(kind))
            .await
            .expect("the replication cut is made");
        let rules = rules_in(cluster.as_ref(), leader);
        assert!(rules.contains("tcp dport"), "only some ports are cut: {rules}");
        let during = producer.send(
            FutureRecord::to(topic).key("k").payload("during the replication cut"),
            Duration::from_secs(30),
        );
        tokio::pin!(during);
        let within_cut = tokio::time::timeout(Duration::from_secs(10), &mut during).await;
        assert!(
            within_cut.is_err(),
            "acks=all was acknowledged while the followers could not fetch: {within_cut:?}"
        );
        assert_eq!(
            cluster.leader(topic).await,
            Some(leader),
            "the controllers still hear the leader, so it keeps its partition"
        );
        cluster.heal_partitions().await.expect("the replication cut heals");
        let after = tokio::time::timeout(Duration::from_secs(90), &mut during).await;
        assert!(
            matches!(after, Ok(Ok(_))),
            "the write was not acknowledged within 90 s of the heal: {after:?}"
        );
        eprintln!("replication cut around leader {leader}: no ack for 10 s, leader kept, acknowledged after the heal");
    };
    let result = tokio::spawn(outcome).await;
    cluster.down().await.expect("down after the test");
    assert_eq!(
        leftovers("kafka", "kafka.Kafka").await,
        Vec::<String>::new(),
        "down left something"
    );
    if let Err(panic) = result {
        std::panic::resume_unwind(panic.into_panic());
    }
}

/// Wait until the history at `path` has a completed `start-partition`, at most `limit`.
fn wait_for_partition(path: &std::path::Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text
            .lines()
            .any(|l| l.contains("\"f\":\"start-partition\"") && l.contains("\"type\":\"info\""))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// `ackcheck run CAMPAIGN --seed 1 --out OUT EXTRA…` started in the background, returned once
/// its history records a started partition (at most 120 s).
fn run_until_partitioned(campaign: &std::path::Path, out: &std::path::Path, extra: &[&str]) -> std::process::Child {
    let mut args = vec![
        "run",
        campaign.to_str().unwrap(),
        "--seed",
        "1",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let run = Command::new(ACKCHECK)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ackcheck run starts");
    assert!(
        wait_for_partition(&out.join("history.jsonl"), Duration::from_secs(120)),
        "the partition never started"
    );
    run
}

/// A campaign file of 3 NATS nodes that partitions them from 2 s into the run for long enough
/// that the test interrupts it in the middle.
fn nats_partition_campaign(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("nats-partition.toml");
    std::fs::write(
        &path,
        r#"broker = "nats"
nodes = 3
mode = "at-least-once"
duration = "60s"

[workload]
kind = "queue"
producers = 1
consumers = 1
rate = 100

[[nemesis.steps]]
at = 2
fault = "partition-halves"
target = "node:1"
duration = 40
"#,
    )
    .expect("writing the campaign");
    path
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_in_a_partition_and_down_after_a_kill_9_leave_nothing_behind() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let campaign = nats_partition_campaign(dir.path());
    let home = Home::from_env();
    let nats = ackcheck::brokers::nats::KIND;
    nats.open_cluster(None, &home)
        .expect("the NATS cluster")
        .down()
        .await
        .expect("down before the test");

    // 1. Ctrl-C while the partition is in force: the run heals it and stops the cluster it started.
    let out = dir.path().join("interrupted");
    let mut run = run_until_partitioned(&campaign, &out, &[]);
    let cluster = nats.open_cluster(None, &home).expect("the NATS cluster");
    assert_eq!(
        cluster.network(),
        NodeNetwork::Namespaces,
        "a partition campaign runs in namespaces"
    );
    assert!(
        rules_in(cluster.as_ref(), 1).contains("drop"),
        "node 1 drops its peers' packets"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT sent");
    let status = tokio::task::spawn_blocking(move || run.wait())
        .await
        .unwrap()
        .expect("ackcheck exits");
    assert!(!status.success(), "an interrupted run does not pass: {status}");
    let history = std::fs::read_to_string(out.join("history.jsonl")).expect("the history");
    assert!(history.contains("\"f\":\"stop-partition\""), "the heal is recorded");
    assert_eq!(
        leftovers("nats", "nats-server").await,
        Vec::<String>::new(),
        "Ctrl-C left something"
    );

    // 2. kill -9 in a partition of a kept cluster: the cut stays in force (nothing could heal
    //    it), the next `cluster status` heals it, `cluster down` removes every namespace.
    let out = dir.path().join("killed");
    let mut run = run_until_partitioned(&campaign, &out, &["--keep-cluster"]);
    run.kill().expect("kill -9");
    let _ = run.wait();
    assert!(
        rules_in(cluster.as_ref(), 1).contains("drop"),
        "the killed run's cut is still in force"
    );
    let status = Command::new(ACKCHECK)
        .args(["cluster", "status", "nats"])
        .output()
        .expect("status runs");
    let said = String::from_utf8_lossy(&status.stderr);
    assert!(
        said.contains("healed a fault a killed run left"),
        "status healed nothing: {said}"
    );
    for node in 0..3 {
        assert!(
            !rules_in(cluster.as_ref(), node).contains("drop"),
            "node {node} still drops packets"
        );
    }
    let down = Command::new(ACKCHECK)
        .args(["cluster", "down", "nats"])
        .output()
        .expect("down runs");
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert_eq!(
        leftovers("nats", "nats-server").await,
        Vec::<String>::new(),
        "down left something"
    );
}
