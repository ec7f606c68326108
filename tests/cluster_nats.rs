//! Real nats-server nodes (JetStream) behind Toxiproxy, driven through async-nats. Installs
//! nats-server and Toxiproxy with `go install` if missing (the Go module proxy).

#![cfg(feature = "nats")]

use std::fs;
use std::time::{Duration, Instant};

use ackcheck::nodes::{process, Cluster, Home, NodeState};

/// NATS's nodes under the one local lifecycle, as `ackcheck cluster` runs them.
fn nats_cluster(home: &Home, nodes: usize) -> Box<dyn Cluster> {
    ackcheck::brokers::nats::KIND
        .open_cluster(Some(nodes), home)
        .expect("a node count the broker runs")
}
use async_nats::jetstream::{self, consumer::pull, stream};
use futures::StreamExt;

/// Both tests use the same ports and run directory.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const STEP: Duration = Duration::from_secs(30);

async fn connect(urls: &[String]) -> async_nats::Client {
    let connect = async_nats::ConnectOptions::new()
        .ignore_discovered_servers()
        .connection_timeout(Duration::from_secs(5))
        .connect(urls);
    tokio::time::timeout(STEP, connect)
        .await
        .expect("connecting timed out")
        .unwrap_or_else(|e| panic!("connecting to {urls:?}: {e}"))
}

async fn create_stream(js: &jetstream::Context, name: &str, replicas: usize) {
    let config = stream::Config {
        name: name.into(),
        subjects: vec![name.into()],
        storage: stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    };
    tokio::time::timeout(STEP, js.get_or_create_stream(config))
        .await
        .expect("creating the stream timed out")
        .unwrap_or_else(|e| panic!("creating {name}: {e}"));
}

/// Publish and wait for every PubAck.
async fn publish_acked(js: &jetstream::Context, subject: &str, ids: &[String]) {
    for id in ids {
        let ack = async { js.publish(subject.to_string(), id.clone().into()).await?.await };
        tokio::time::timeout(STEP, ack)
            .await
            .unwrap_or_else(|_| panic!("no PubAck for {id} within {STEP:?}"))
            .unwrap_or_else(|e| panic!("publishing {id}: {e}"));
    }
}

/// Read (and ack) `n` messages with a fresh durable pull consumer named `durable`.
async fn consume(js: &jetstream::Context, name: &str, durable: &str, n: usize) -> Vec<String> {
    let config = pull::Config {
        durable_name: Some(durable.into()),
        ..Default::default()
    };
    // Right after a leader kill the JetStream API can time out while the meta group settles
    // (seen in CI at load average 8): retry within the step, fail only past it.
    let deadline = Instant::now() + STEP;
    let consumer = loop {
        let attempt = async {
            let stream = js
                .get_stream(name)
                .await
                .map_err(|e| format!("looking up the stream: {e}"))?;
            stream
                .get_or_create_consumer(durable, config.clone())
                .await
                .map_err(|e| format!("creating the consumer: {e}"))
        };
        match attempt.await {
            Ok(consumer) => break consumer,
            Err(e) if Instant::now() < deadline => {
                eprintln!("{e}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    let deadline = Instant::now() + STEP;
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} messages arrived: {got:?}",
            got.len()
        );
        let mut batch = consumer
            .batch()
            .max_messages(n - got.len())
            .expires(Duration::from_millis(500))
            .messages()
            .await
            .expect("pulling");
        while let Some(message) = batch.next().await {
            let message = message.expect("a message");
            got.push(String::from_utf8_lossy(&message.payload).into_owned());
            message.ack().await.expect("acking");
        }
    }
    got
}

fn ids(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i}")).collect()
}

/// Runs `scenario`, then `down` whatever happened, then checks that nothing is left.
async fn with_cluster<F, Fut>(nodes: usize, scenario: F)
where
    F: FnOnce(Home) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let _serial = SERIAL.lock().await;
    let home = Home::from_env();
    let cluster = nats_cluster(&home, nodes);
    cluster.down().await.expect("cleaning up before the test");
    let outcome = tokio::spawn(scenario(home.clone())).await;
    let pids: Vec<u32> = (0..nodes)
        .filter_map(|n| {
            fs::read_to_string(cluster.node_process(n).pid_file)
                .ok()?
                .trim()
                .parse()
                .ok()
        })
        .collect();
    let down = cluster.down().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
    down.expect("down");
    assert_eq!(pids.len(), nodes, "expected a pid per node");
    for pid in pids {
        assert!(!process::pid_alive(pid), "pid {pid} still runs after down");
    }
    let taken: Vec<u16> = ackcheck::brokers::nats::KIND
        .ports(3)
        .filter(|&p| process::port_taken(p))
        .collect();
    assert!(taken.is_empty(), "ports still taken after down: {taken:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_stream_survives_kill_and_restart() {
    with_cluster(1, |home| async move {
        let cluster = nats_cluster(&home, 1);
        // A descriptor this process holds without close-on-exec (as a lock held by flock(1) is):
        // the node must not inherit it.
        let scratch = tempfile::tempdir().unwrap();
        let inherited = scratch.path().join("inherited.lock");
        std::fs::write(&inherited, "").unwrap();
        let file = std::fs::File::open(&inherited).unwrap();
        // SAFETY: dup of a valid descriptor; the copy lacks close-on-exec by definition.
        let copy = unsafe { libc::dup(std::os::fd::AsRawFd::as_raw_fd(&file)) };
        assert!(copy > 2, "dup failed");
        let started = Instant::now();
        cluster.up().await.expect("up");
        eprintln!("up (1 node) took {:.1} s", started.elapsed().as_secs_f64());
        let urls: Vec<String> = cluster.endpoints().into_iter().map(|e| e.url).collect();
        let client = connect(&urls).await;
        let js = jetstream::new(client.clone());
        create_stream(&js, "ackcheck-durable", 1).await;
        let sent = ids("d", 0..100);
        publish_acked(&js, "ackcheck-durable", &sent).await;
        drop(js);
        drop(client);

        let pid = cluster.node_process(0).pid().expect("node 0 runs");
        assert!(
            !holds_fd_of(pid, &inherited),
            "nats-server inherited a descriptor of the process that started it"
        );
        cluster.kill(0).await.expect("kill");
        assert!(!process::pid_alive(pid), "nats-server survived SIGKILL");
        assert_eq!(cluster.status().await.expect("status")[0].state, NodeState::Down);
        let started = Instant::now();
        cluster.restart(0).await.expect("restart");
        eprintln!("restart after kill -9 took {:.1} s", started.elapsed().as_secs_f64());
        assert_eq!(cluster.status().await.expect("status")[0].state, NodeState::Healthy);

        let client = connect(&urls).await;
        let js = jetstream::new(client);
        assert_eq!(
            consume(&js, "ackcheck-durable", "reader", 100).await,
            sent,
            "acknowledged messages after kill -9 and restart"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_keep_an_r3_stream_while_one_is_killed_and_advertise_no_direct_ports() {
    with_cluster(3, |home| async move {
        let cluster = nats_cluster(&home, 3);
        let started = Instant::now();
        cluster.up().await.expect("up");
        eprintln!("up (3 nodes) took {:.1} s", started.elapsed().as_secs_f64());
        let urls: Vec<String> = cluster.endpoints().into_iter().map(|e| e.url).collect();

        // Clients must learn nothing but the proxy they connected to.
        let client = connect(&urls[..1]).await;
        let info = client.server_info();
        assert!(
            info.connect_urls.is_empty(),
            "peers advertised: {:?}",
            info.connect_urls
        );
        assert_eq!(info.port, 19400, "the node advertises its proxy port");
        let js = jetstream::new(client);
        create_stream(&js, "ackcheck-r3", 3).await;
        publish_acked(&js, "ackcheck-r3", &ids("q", 0..50)).await;
        let leader = cluster.leader("ackcheck-r3").await.expect("the stream has a leader");

        // Kill the leader: a majority (2 of 3) elects another one and keeps the stream.
        let pid = cluster.node_process(leader).pid().expect("the leader runs");
        cluster.kill(leader).await.expect("kill");
        assert!(!process::pid_alive(pid), "the leader survived SIGKILL");
        let others: Vec<String> = (0..3).filter(|&n| n != leader).map(|n| urls[n].clone()).collect();
        let js = jetstream::new(connect(&others).await);
        let deadline = Instant::now() + STEP;
        let new_leader = loop {
            match cluster.leader("ackcheck-r3").await {
                Some(l) if l != leader => break l,
                _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
                other => panic!("no new leader within {STEP:?}: {other:?}"),
            }
        };
        eprintln!("leader {leader} killed, node {new_leader} took over");
        publish_acked(&js, "ackcheck-r3", &ids("q", 50..100)).await;
        assert_eq!(consume(&js, "ackcheck-r3", "reader", 100).await, ids("q", 0..100));

        let started = Instant::now();
        cluster.restart(leader).await.expect("restart");
        eprintln!("restart of node {leader} took {:.1} s", started.elapsed().as_secs_f64());
        let statuses = cluster.status().await.expect("status");
        assert!(statuses.iter().all(|s| s.state == NodeState::Healthy), "{statuses:?}");
    })
    .await;
}

/// Whether process `pid` has a descriptor open on `path`.
fn holds_fd_of(pid: u32, path: &std::path::Path) -> bool {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    entries
        .flatten()
        .any(|e| std::fs::read_link(e.path()).is_ok_and(|target| target == path))
}
