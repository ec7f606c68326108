//! What the adapter scenarios of the `run_*` tests share: messages, consumer specs, and
//! receiving with a deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ackcheck::broker::{
    Broker, BrokerKind, ClientContext, ClientTables, Consumer, ConsumerSpec, LogSink, Outgoing, Received,
};
use ackcheck::history::Guarantee;

/// How long a scenario waits for what it expects before failing.
pub const STEP: Duration = Duration::from_secs(30);

/// The adapter's log lines, on the test's output.
pub fn log() -> LogSink {
    Arc::new(|line: &str| eprintln!("  log: {line}"))
}

/// A client of `kind`'s broker at `endpoints` (one node) for the run named `run`, with the
/// driver's preset for `mode` and its default `[dest]` settings, as a campaign without client
/// tables gets.
pub fn broker_client(kind: BrokerKind, endpoints: &[String], run: &str, mode: Guarantee) -> Arc<dyn Broker> {
    let driver = kind.driver();
    let dest_settings = driver
        .dest_settings(&toml::Table::new())
        .expect("default [dest] settings");
    let client = driver
        .client_settings(mode, &ClientTables::default())
        .unwrap_or_else(|e| panic!("the {mode:?} preset: {e}"));
    driver
        .client(&ClientContext {
            endpoints,
            nodes: 1,
            mode,
            run,
            dest_settings: &dest_settings,
            client: &client,
            log: log(),
        })
        .unwrap_or_else(|e| panic!("a {kind} client: {e:#}"))
}

/// A 100-byte message `id` to `dest`, with key `k1`.
pub fn message(id: &str, dest: &str) -> Outgoing {
    Outgoing {
        id: id.into(),
        key: Some("k1".into()),
        dest: dest.into(),
        from: None,
        size: 100,
    }
}

/// Consumer `c0` of group `g` on `dest`.
pub fn spec(mode: Guarantee, dest: &str) -> ConsumerSpec {
    ConsumerSpec {
        mode,
        group: "g".into(),
        dests: vec![dest.into()],
        committed_only: false,
        member: "c0".into(),
    }
}

/// Receive until `n` messages came, or fail after [`STEP`]; each receive waits at most 200 ms.
pub async fn receive(consumer: &mut dyn Consumer, n: usize) -> Vec<Received> {
    receive_polling(consumer, n, Duration::from_millis(200)).await
}

/// [`receive`] with each receive waiting at most `poll` (SQS long-polls in whole seconds).
pub async fn receive_polling(consumer: &mut dyn Consumer, n: usize, poll: Duration) -> Vec<Received> {
    let deadline = Instant::now() + STEP;
    let mut got = Vec::new();
    while got.len() < n {
        assert!(Instant::now() < deadline, "only {} of {n} messages arrived", got.len());
        got.extend(consumer.receive(n - got.len(), poll).await.expect("receiving"));
    }
    got
}

/// Nothing arrives within `wait` (at most 10 asked for: SQS's largest batch).
pub async fn nothing_left(consumer: &mut dyn Consumer, wait: Duration) {
    let got = consumer.receive(10, wait).await.expect("receiving");
    let ids: Vec<&str> = got.iter().map(|m| m.id.as_str()).collect();
    assert!(got.is_empty(), "expected nothing more, got {ids:?}");
}

/// (id, pos) of each message, sorted (a standard queue does not keep order).
pub fn positions(messages: &[Received]) -> Vec<(String, String)> {
    let mut p: Vec<_> = messages.iter().map(|m| (m.id.clone(), m.pos.clone())).collect();
    p.sort();
    p
}
