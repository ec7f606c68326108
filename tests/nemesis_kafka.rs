//! The nemesis against a real 1-node Kafka: a short scheduled run of kill, pause and lost acks,
//! recorded in a history; stopping it in the middle of a fault; healing what a crashed earlier
//! run left behind. Every test ends with the cluster healthy, no toxic left and no node paused.

#![cfg(feature = "kafka")]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ackcheck::faults::{FaultKind, FaultSet, Nemesis, NemesisConfig, Target};
use ackcheck::history::writer::Recorder;
use ackcheck::history::{Event, EventType, Header, Process};
use ackcheck::nodes::toxiproxy::{Toxic, Toxiproxy};
use ackcheck::nodes::{process, Cluster, Home, NodeState};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use tokio_util::sync::CancellationToken;

/// The tests share Kafka's ports: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_run_records_every_fault_and_leaves_the_cluster_healed() {
    let _serial = SERIAL.lock().await;
    with_cluster(|cluster, dir| async move {
        let topic = "nemesis-leader";
        create_topic(&cluster, topic).await;
        assert_eq!(cluster.leader(topic).await, Some(0), "one node leads every partition");
        assert_eq!(cluster.leader("no-such-topic").await, None);

        let config = NemesisConfig {
            faults: vec![FaultKind::Kill, FaultKind::Pause, FaultKind::LoseAcks],
            interval: 2.0,
            duration: 2.0,
            target: Target::Leader,
            steps: Vec::new(),
        };
        let history = dir.join("history.jsonl");
        let recorder = Recorder::create(
            &history,
            &Header {
                history: 1,
                seed: Some(3),
                ..Header::default()
            },
        )
        .expect("a recorder");
        let nemesis = Nemesis::new(
            cluster.clone(),
            FaultSet::local(Toxiproxy::default()),
            recorder.clone(),
            config,
            3,
            Some(topic.into()),
        );
        let run_for = Duration::from_secs(12);
        for fault in nemesis.schedule(run_for) {
            eprintln!("scheduled: {fault}");
        }
        let pid_before = cluster.node_process(0).pid();
        let started = Instant::now();
        let faults = nemesis
            .run(run_for, CancellationToken::new())
            .await
            .expect("the run heals cleanly");
        eprintln!(
            "{faults} fault(s) in {:.1} s (including the heal)",
            started.elapsed().as_secs_f64()
        );
        recorder.close().expect("closing the history");

        assert!(faults >= 1, "a 12 s run with 2 s gaps starts faults");
        let starts = check_fault_events(&history);
        assert_eq!(starts.len() as u64, faults, "one start-* per fault started: {starts:?}");
        if starts.iter().any(|f| f == "kill") {
            assert_ne!(
                cluster.node_process(0).pid(),
                pid_before,
                "a kill -9 really replaced the broker process"
            );
        }
        assert_eq!(nemesis.current(), None);
        assert_healed(&*cluster).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_mid_fault_and_leftovers_of_a_crashed_run_are_healed() {
    let _serial = SERIAL.lock().await;
    with_cluster(|cluster, dir| async move {
        let history = dir.join("history.jsonl");
        let recorder = Recorder::create(
            &history,
            &Header {
                history: 1,
                ..Header::default()
            },
        )
        .expect("a recorder");
        let nemesis = |kind| {
            let config = NemesisConfig {
                faults: vec![kind],
                interval: 0.5,
                duration: 60.0,
                target: Target::Random,
                steps: Vec::new(),
            };
            Arc::new(Nemesis::new(
                cluster.clone(),
                FaultSet::local(Toxiproxy::default()),
                recorder.clone(),
                config,
                1,
                None,
            ))
        };

        // A pause, stopped while in force: the node really is stopped, then resumed.
        let pause = nemesis(FaultKind::Pause);
        let (stop, run) = start_run(&pause);
        wait_for_fault(&pause, "pause node 0").await;
        assert!(
            cluster.node_process(0).is_paused(),
            "the pause really stopped the broker"
        );
        let started = Instant::now();
        stop.cancel();
        assert_eq!(run.await.expect("the run task").expect("the run heals cleanly"), 1);
        eprintln!(
            "stop during a pause: healed in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        assert_healed(&*cluster).await;

        // Lost acks, stopped while in force: the toxic is there, then gone.
        let lose_acks = nemesis(FaultKind::LoseAcks);
        let (stop, run) = start_run(&lose_acks);
        wait_for_fault(&lose_acks, "lose-acks node 0").await;
        assert_eq!(
            Toxiproxy::default().toxics("kafka-node0").await.expect("toxics"),
            vec!["lost-acks".to_string()]
        );
        let started = Instant::now();
        stop.cancel();
        assert_eq!(run.await.expect("the run task").expect("the run heals cleanly"), 1);
        eprintln!(
            "stop during lost acks: healed in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        assert_healed(&*cluster).await;

        // A Ctrl-C handler heals while the run is still in a fault: one stop-* only, no race.
        let (stop, run) = start_run(&lose_acks);
        wait_for_fault(&lose_acks, "lose-acks node 0").await;
        lose_acks
            .heal_all()
            .await
            .expect("heal_all while the run is in a fault");
        assert_eq!(lose_acks.current(), None);
        stop.cancel();
        assert_eq!(run.await.expect("the run task").expect("the run heals cleanly"), 1);

        // What a crashed run could leave: a toxic of any name and a paused node; then a killed node.
        let proxy = Toxiproxy::default();
        let mut leftover = Toxic::latency(3000, 0);
        leftover.name = "left-by-a-crash".into();
        proxy
            .add_toxic("kafka-node0", &leftover)
            .await
            .expect("add a leftover toxic");
        cluster.pause(0).await.expect("pause node 0");
        let healer = nemesis(FaultKind::Kill);
        healer
            .heal_all()
            .await
            .expect("heal a leftover toxic and a paused node");
        assert_healed(&*cluster).await;
        let pid = cluster.node_process(0).pid();
        cluster.kill(0).await.expect("kill node 0");
        assert_eq!(cluster.node_process(0).pid(), None);
        let started = Instant::now();
        healer.heal_all().await.expect("heal a killed node");
        eprintln!("heal_all after kill -9: {:.1} s", started.elapsed().as_secs_f64());
        assert_ne!(cluster.node_process(0).pid(), pid, "a new broker process");
        assert_healed(&*cluster).await;
        let started = Instant::now();
        healer.heal_all().await.expect("heal_all again, with nothing to heal");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a second heal only checks health"
        );

        recorder.close().expect("closing the history");
        let starts = check_fault_events(&history);
        assert_eq!(
            starts,
            ["pause", "lose-acks", "lose-acks"],
            "the faults the runs started"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healing_a_cluster_that_is_not_up_is_an_error_that_says_so() {
    let _serial = SERIAL.lock().await;
    let home = Home::from_env();
    if process::recorded_nodes(&home, "kafka").is_some() {
        panic!("a Kafka cluster is up in this ACKCHECK_HOME; run `ackcheck cluster down kafka` first");
    }
    let cluster: Arc<dyn Cluster> = Arc::from(
        ackcheck::brokers::kafka::KIND
            .open_cluster(Some(1), &home)
            .expect("open"),
    );
    let recorder = Recorder::to_writer(Box::new(std::io::sink()), &Header::default()).expect("a recorder");
    let config = NemesisConfig {
        faults: vec![FaultKind::Kill],
        ..NemesisConfig::default()
    };
    let nemesis = Nemesis::new(
        cluster,
        FaultSet::local(Toxiproxy::default()),
        recorder,
        config,
        1,
        None,
    );
    let error = format!(
        "{:#}",
        nemesis
            .heal_all()
            .await
            .expect_err("nothing runs, so nothing can be healed")
    );
    assert!(
        error.contains("restarting node 0") && error.contains("kafka is not up"),
        "{error}"
    );
}

fn start_run(nemesis: &Arc<Nemesis>) -> (CancellationToken, tokio::task::JoinHandle<anyhow::Result<u64>>) {
    let stop = CancellationToken::new();
    let (n, s) = (nemesis.clone(), stop.clone());
    (
        stop,
        tokio::spawn(async move { n.run(Duration::from_secs(300), s).await }),
    )
}

async fn wait_for_fault(nemesis: &Nemesis, label: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while nemesis.current().as_deref() != Some(label) {
        assert!(
            Instant::now() < deadline,
            "the fault {label} did not start; current: {:?}",
            nemesis.current()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // `current` is set just before the fault is made: give the action a moment to land.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Every nemesis invocation is completed as info without error, and faults come as start-X then
/// stop-X, never overlapping. Returns the kinds started, in order.
fn check_fault_events(history: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(history).expect("reading the history");
    let events: Vec<Event> = text
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).expect("an event line"))
        .collect();
    let nemesis: Vec<&Event> = events.iter().filter(|e| e.process == Process::Nemesis).collect();
    let mut starts = Vec::new();
    let mut open: Option<String> = None;
    for invoke in nemesis.iter().filter(|e| e.kind == EventType::Invoke) {
        let completion = nemesis
            .iter()
            .find(|e| e.kind != EventType::Invoke && e.op == invoke.op);
        let completion = completion.unwrap_or_else(|| panic!("no completion for {invoke:?}"));
        assert_eq!(
            (completion.kind, &completion.f, &completion.error),
            (EventType::Info, &invoke.f, &None),
            "{completion:?}"
        );
        let node = invoke
            .value
            .as_ref()
            .and_then(|v| v.extra.get("node"))
            .and_then(|n| n.as_u64());
        assert_eq!(node, Some(0), "the value names the node: {invoke:?}");
        if let Some(kind) = invoke.f.strip_prefix("start-") {
            assert_eq!(open, None, "{} starts while another fault is in force", invoke.f);
            open = Some(kind.to_string());
            starts.push(kind.to_string());
        } else {
            let kind = invoke
                .f
                .strip_prefix("stop-")
                .unwrap_or_else(|| panic!("unexpected nemesis op {}", invoke.f));
            assert_eq!(
                open.take().as_deref(),
                Some(kind),
                "{} stops the fault in force",
                invoke.f
            );
        }
    }
    assert_eq!(open, None, "every fault started was stopped");
    starts
}

/// Healthy, no toxic on the node's proxy (which still exists), not paused.
async fn assert_healed(cluster: &dyn Cluster) {
    let statuses = cluster.status().await.expect("status");
    assert!(
        statuses.iter().all(|s| s.state == NodeState::Healthy),
        "every node healthy: {statuses:?}"
    );
    let proxies = Toxiproxy::default().proxies().await.expect("proxies");
    for endpoint in cluster.endpoints() {
        assert!(
            proxies.contains(&endpoint.proxy),
            "proxy {} exists: {proxies:?}",
            endpoint.proxy
        );
        assert_eq!(
            Toxiproxy::default().toxics(&endpoint.proxy).await.expect("toxics"),
            Vec::<String>::new(),
            "no toxic left"
        );
        assert!(
            !cluster.node_process(endpoint.node).is_paused(),
            "node {} is not paused",
            endpoint.node
        );
    }
}

async fn create_topic(cluster: &Arc<dyn Cluster>, topic: &str) {
    let bootstrap = cluster.endpoints()[0].url.clone();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("an admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create_topics");
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => panic!("creating topic {t} failed: {e:?}"),
        }
    }
    // The topic's leader shows up in metadata shortly after creation.
    let deadline = Instant::now() + Duration::from_secs(20);
    while cluster.leader(topic).await.is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Run `scenario` on a fresh 1-node Kafka, then `down` whatever happened (a failed assertion is
/// re-raised after the cleanup).
async fn with_cluster<F, Fut>(scenario: F)
where
    F: FnOnce(Arc<dyn Cluster>, std::path::PathBuf) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let home = Home::from_env();
    // Never take over another Kafka on these ports (another ACKCHECK_HOME): `down` and a fresh
    // `up` here would delete its proxies.
    let ports: Vec<u16> = (0..4)
        .map(|slot| ackcheck::brokers::kafka::KIND.port(0, slot))
        .collect();
    if process::recorded_nodes(&home, "kafka").is_none() && ports.iter().any(|&p| process::port_taken(p)) {
        panic!("Kafka's ports {ports:?} are taken by something this ACKCHECK_HOME did not start; stop it or wait");
    }
    let cluster: Arc<dyn Cluster> = Arc::from(
        ackcheck::brokers::kafka::KIND
            .open_cluster(Some(1), &home)
            .expect("open"),
    );
    cluster.down().await.expect("down before the test (clearing leftovers)");
    let dir = tempfile::tempdir().expect("a temp dir");
    let started = Instant::now();
    let up = cluster.up().await;
    eprintln!("kafka up took {:.1} s", started.elapsed().as_secs_f64());
    let outcome: Result<(), Box<dyn std::any::Any + Send>> = match up {
        Ok(()) => tokio::spawn(scenario(cluster.clone(), dir.path().to_path_buf()))
            .await
            .map_err(|e| e.into_panic()),
        Err(e) => Err(Box::new(format!("up failed: {e}"))),
    };
    let down = cluster.down().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    down.expect("down");
    assert!(
        ports.iter().all(|&p| !process::port_taken(p)),
        "no Kafka port bound after down"
    );
}
