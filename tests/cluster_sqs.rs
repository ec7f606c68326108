//! SQS through LocalStack as real processes: up → 100 messages on a FIFO and on a standard queue
//! through the proxy → kill -9 → restart → a lost acknowledgement → down leaves nothing behind.
//!
//! Uses `Home::from_env()` (CI sets ACKCHECK_HOME) and installs LocalStack when the cache is empty.
//! One test only: it owns the SQS ports, so nothing in this file may run beside it.

#![cfg(feature = "sqs")]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ackcheck::brokers::sqs::node as sqs;
use ackcheck::nodes::process;
use ackcheck::nodes::toxiproxy::{Toxic, Toxiproxy};
use ackcheck::nodes::{Cluster, Home, NodeState};

/// LocalStack's node under the one local lifecycle, as `ackcheck cluster` runs it.
fn sqs_cluster(home: &Home) -> Box<dyn Cluster> {
    ackcheck::brokers::sqs::KIND
        .open_cluster(Some(1), home)
        .expect("a node count the broker runs")
}
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_sqs::Client;

const MESSAGES: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_one_node_up_kill_restart_lost_ack_down() {
    let started = Instant::now();
    let home = Home::from_env();
    // The scenario runs in its own task so that a failed assertion still reaches `down` below.
    let outcome = tokio::spawn(scenario(home.clone())).await;

    let cluster = sqs_cluster(&home);
    let pid = cluster.node_process(0).pid();
    let down = cluster.down().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
    down.expect("down stops the node and frees its ports");

    if let Some(pid) = pid {
        assert!(!process::pid_alive(pid), "LocalStack (pid {pid}) still runs after down");
        assert_eq!(
            processes_in_group(pid),
            Vec::<u32>::new(),
            "processes of LocalStack's group outlive down"
        );
    }
    let venv = home.install_dir(&format!("localstack-{}", sqs::LOCALSTACK_VERSION));
    assert_eq!(
        processes_mentioning(&venv.to_string_lossy()),
        Vec::<u32>::new(),
        "LocalStack processes outlive down"
    );
    for slot in [0, 1] {
        let p = ackcheck::brokers::sqs::KIND.port(0, slot);
        assert!(!process::port_taken(p), "port {p} is still bound after down");
    }
    // The gateway may listen on [::1] (see src/cluster/sqs.rs): check the very addresses.
    let endpoint = &cluster.endpoints()[0];
    for addr in [endpoint.client, endpoint.direct] {
        assert!(
            std::net::TcpListener::bind(addr).is_ok(),
            "{addr} is still bound after down"
        );
    }
    let toxiproxy = Toxiproxy::default();
    if toxiproxy.is_up().await {
        let proxies = toxiproxy.proxies().await.expect("Toxiproxy lists its proxies");
        assert!(
            !proxies.contains(&"sqs-node0".to_string()),
            "the proxy sqs-node0 outlives down"
        );
    }
    eprintln!("test run: {:.1} s", started.elapsed().as_secs_f64());
}

async fn scenario(home: Home) {
    let cluster = sqs_cluster(&home);

    let t = Instant::now();
    cluster.up().await.unwrap_or_else(|e| panic!("up failed: {e}"));
    eprintln!("up: {:.1} s", t.elapsed().as_secs_f64());
    let pid = cluster.node_process(0).pid().expect("a live pid after up");
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .replace('\0', " ");
    assert!(
        cmdline.contains("python") && cmdline.contains("localstack.runtime.main"),
        "pid {pid} is not LocalStack's Python: {cmdline}"
    );
    eprintln!("LocalStack RSS after up: {} kB", rss_kb(pid));

    let t = Instant::now();
    cluster.up().await.expect("a second up on a healthy cluster succeeds");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "a second up should only check health, took {:?}",
        t.elapsed()
    );
    assert_healthy(cluster.as_ref()).await;

    let endpoint = cluster.endpoints()[0].url.clone();
    assert_eq!(
        endpoint,
        format!("http://127.0.0.1:{}", ackcheck::brokers::sqs::KIND.port(0, 0)),
        "clients must use the proxy"
    );
    let client = sqs::sqs_client(&endpoint, Duration::from_secs(10));

    // FIFO: 100 messages in one group, each sent twice with the same deduplication id; the
    // broker must deliver each once, in order.
    let fifo = create_queue(&client, "ackcheck-test.fifo", true).await;
    assert!(
        fifo.starts_with(&format!("{endpoint}/queue/")),
        "queue URL {fifo} should point at the proxy {endpoint}"
    );
    for round in 0..2 {
        for i in 0..MESSAGES {
            client
                .send_message()
                .queue_url(&fifo)
                .message_body(format!("fifo-{i}"))
                .message_group_id("g1")
                .message_deduplication_id(format!("dedup-{i}"))
                .send()
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "FIFO send {i} (round {round}): {}",
                        aws_sdk_sqs::error::DisplayErrorContext(e)
                    )
                });
        }
    }
    let fifo_received = receive_and_delete(&client, &fifo, MESSAGES).await;
    let expected: Vec<String> = (0..MESSAGES).map(|i| format!("fifo-{i}")).collect();
    assert_eq!(
        fifo_received, expected,
        "the FIFO queue delivers every message once, in order"
    );

    // Standard: 100 messages, each received (in any order) and deleted.
    let standard = create_queue(&client, "ackcheck-test", false).await;
    assert!(
        standard.starts_with(&format!("{endpoint}/queue/")),
        "queue URL {standard} should point at the proxy"
    );
    for i in 0..MESSAGES {
        client
            .send_message()
            .queue_url(&standard)
            .message_body(format!("std-{i}"))
            .send()
            .await
            .expect("standard send");
    }
    let standard_received: BTreeSet<String> = receive_and_delete(&client, &standard, MESSAGES)
        .await
        .into_iter()
        .collect();
    let expected: BTreeSet<String> = (0..MESSAGES).map(|i| format!("std-{i}")).collect();
    assert_eq!(
        standard_received, expected,
        "the standard queue delivers all 100 messages"
    );
    for queue in [&fifo, &standard] {
        assert_eq!(
            receive_and_delete(&client, queue, 1).await,
            Vec::<String>::new(),
            "{queue} is empty after deleting"
        );
    }

    eprintln!("LocalStack RSS after 200 messages: {} kB", rss_kb(pid));

    // kill -9 with a message waiting, then restart on the same directory.
    client
        .send_message()
        .queue_url(&standard)
        .message_body("before-kill")
        .send()
        .await
        .expect("send before kill");
    cluster.kill(0).await.expect("kill");
    assert!(!process::pid_alive(pid), "pid {pid} survives kill -9");
    assert_eq!(
        processes_in_group(pid),
        Vec::<u32>::new(),
        "LocalStack's group survives kill -9"
    );
    assert_eq!(cluster.status().await.expect("status")[0].state, NodeState::Down);
    let t = Instant::now();
    cluster
        .restart(0)
        .await
        .unwrap_or_else(|e| panic!("restart failed: {e}"));
    eprintln!("restart after kill -9: {:.1} s", t.elapsed().as_secs_f64());
    assert_healthy(cluster.as_ref()).await;

    // LocalStack keeps SQS state in memory and promises no durability: record what survived.
    let client = sqs::sqs_client(&endpoint, Duration::from_secs(10));
    let queues = client.list_queues().send().await.expect("list_queues after restart");
    let survived = match client.get_queue_url().queue_name("ackcheck-test").send().await {
        Ok(_) => format!(
            "the standard queue survived with {:?}",
            receive_and_delete(&client, &standard, 1).await
        ),
        Err(e) => format!(
            "the standard queue and its message are gone ({})",
            e.as_service_error().and_then(|e| e.code()).unwrap_or("no error code")
        ),
    };
    eprintln!(
        "after kill -9 and restart: {} queue(s) {:?}; {survived}",
        queues.queue_urls().len(),
        queues.queue_urls()
    );

    // The restarted broker serves again.
    let again = create_queue(&client, "ackcheck-after-restart", false).await;
    client
        .send_message()
        .queue_url(&again)
        .message_body("after-restart")
        .send()
        .await
        .expect("send after restart");
    assert_eq!(
        receive_and_delete(&client, &again, 1).await,
        vec!["after-restart".to_string()]
    );

    // Lost ack: the request reaches LocalStack, the reply never reaches the client.
    let lost = create_queue(&client, "ackcheck-lost-ack", false).await;
    let toxiproxy = Toxiproxy::default();
    let proxy = &cluster.endpoints()[0].proxy;
    toxiproxy
        .add_toxic(proxy, &Toxic::lost_acks(0))
        .await
        .expect("adding the lost-ack toxic");
    let impatient = sqs::sqs_client(&endpoint, Duration::from_secs(2));
    let t = Instant::now();
    let sent = impatient
        .send_message()
        .queue_url(&lost)
        .message_body("lost-ack-1")
        .send()
        .await;
    let waited = t.elapsed();
    toxiproxy
        .remove_toxic(proxy, "lost-acks")
        .await
        .expect("removing the lost-ack toxic");
    match sent {
        Err(SdkError::TimeoutError(_)) => eprintln!("send under the lost-ack toxic timed out after {waited:?}"),
        // Without an IPv6 loopback LocalStack runs hypercorn on 127.0.0.1, which closes the
        // connection after each reply; the toxic then drops the connection instead of stalling it.
        Err(SdkError::DispatchFailure(_)) if cluster.endpoints()[0].direct.is_ipv4() => {
            eprintln!("send under the lost-ack toxic lost its connection after {waited:?} (hypercorn gateway)")
        }
        other => panic!("the send under the lost-ack toxic should time out, got {other:?}"),
    }
    let fresh = sqs::sqs_client(&endpoint, Duration::from_secs(10));
    assert_eq!(
        receive_and_delete(&fresh, &lost, 1).await,
        vec!["lost-ack-1".to_string()],
        "the broker stored the message whose acknowledgement was lost"
    );
}

async fn create_queue(client: &Client, name: &str, fifo: bool) -> String {
    let mut request = client.create_queue().queue_name(name);
    if fifo {
        request = request.attributes(QueueAttributeName::FifoQueue, "true");
    }
    let created = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating {name}: {}", aws_sdk_sqs::error::DisplayErrorContext(e)));
    created
        .queue_url()
        .expect("CreateQueue returns the queue URL")
        .to_string()
}

/// Receive (and delete) until at least `want` messages arrived or the time is up (3 s when
/// expecting at most one, else 30 s); returns the bodies in arrival order.
async fn receive_and_delete(client: &Client, queue: &str, want: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(if want <= 1 { 3 } else { 30 });
    let mut bodies = Vec::new();
    while bodies.len() < want && Instant::now() < deadline {
        let out = client
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap_or_else(|e| panic!("receiving from {queue}: {}", aws_sdk_sqs::error::DisplayErrorContext(e)));
        for message in out.messages() {
            bodies.push(message.body().unwrap_or_default().to_string());
            let handle = message
                .receipt_handle()
                .expect("a received message has a receipt handle");
            client
                .delete_message()
                .queue_url(queue)
                .receipt_handle(handle)
                .send()
                .await
                .expect("delete_message");
        }
    }
    bodies
}

async fn assert_healthy(cluster: &dyn Cluster) {
    let statuses = cluster.status().await.expect("status");
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].state, NodeState::Healthy, "status: {:?}", statuses[0]);
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Live processes whose process group is `pgid` (the node was started as its group leader).
fn processes_in_group(pgid: u32) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|&pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // After the command name: state, ppid, pgrp.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().collect())
                .unwrap_or_default();
            fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
        })
        .collect()
}

/// Live processes whose command line contains `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|&pid| pid != std::process::id())
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .filter(|&pid| process::pid_alive(pid))
        .collect()
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|dir| dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}
