//! The NATS JetStream adapter (async-nats): a replicated log underneath, read through durable
//! pull consumers. One stream per destination (named after it, bound to the subject `<dest>`,
//! file storage, one replica per node, a 2-minute duplicate window); one durable pull consumer
//! per consumer group, shared by the group's members, with explicit acks and a short ack wait
//! so that what a crashed member held comes back to the others within seconds.
//!
//! | mode          | publish                                  | ok when            | consumer ack                                 |
//! |---------------|------------------------------------------|--------------------|----------------------------------------------|
//! | at-most-once  | core NATS publish, no reply asked        | the client took it | confirmed ack (`double_ack`) *before* processing; a failed ack leaves the batch unprocessed |
//! | at-least-once | JetStream publish, waits for the PubAck  | a PubAck           | plain ack after processing                    |
//! | exactly-once  | as at-least-once + header `Nats-Msg-Id` = message id (the server drops a re-send within the window: PubAck `duplicate`) | a PubAck | confirmed ack (`double_ack`) after processing, plus the workload's idempotent consumer |
//!
//! Outcomes of a JetStream publish: ok on a PubAck (also one flagged `duplicate`: the message
//! is stored, once); fail only when it surely was not stored: the client refused it before it
//! left (closed client, too large, its queue full), a "no responders" reply (no stream had
//! interest in the subject, so no server took it), or an error reply from JetStream (the stream
//! rejected it); unknown for everything else: no PubAck in time, the connection lost with the
//! request in flight, an unreadable reply. In at-most-once a publish is fire-and-forget, so ok
//! only says that the client queued it (it is written after a reconnect, or lost with the
//! client): honest for a mode that claims nothing more.
//!
//! Positions: `pos` is the stream sequence. A redelivery is the same stored message and keeps
//! it; a re-send that the server stored again (at-least-once has no `Nats-Msg-Id`) gets a new
//! one, so the checker tells "redelivered" from "written twice". `redelivered` is the delivery
//! count > 1. The key travels in the header `Ackcheck-Key`, the id and `from` in the body
//! ([`encode_body`]).
//!
//! [`Broker::duplicates_writes`] is false: with `Nats-Msg-Id` NATS should not store one message
//! twice within the window, so the idempotent consumer deduplicates by position (a second
//! stored copy would have a second sequence and show up as written twice, not be hidden).
//!
//! What NATS does that shows in the campaigns: while a stream's leader is down and no new one
//! is elected, a publish gets "no responders" (only the leader subscribes to the stream's
//! subjects), which is a sure fail, never stored. A kill -9 of a node can take back
//! consumer acks that the server had already confirmed (it writes consumer state
//! asynchronously, see nats-server's `consumerFileStore.flushLoop`): the acked messages come
//! back with a delivery count of 1, so ack-before-processing is not at-most-once across server
//! crashes.
//!
//! The client connects to the node proxies only and ignores the servers the cluster tells it
//! about (`ignore_discovered_servers`): those are the nodes' direct ports, past the proxies
//! (see `node.rs`, which also turns that advertising off on the servers).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::Config as PullConfig;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::Acker;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config as StreamConfig, StorageType};
use async_nats::{HeaderMap, ServerAddr};
use async_trait::async_trait;
use futures::StreamExt;

use crate::broker::{
    decode_body, encode_body, Broker, BrokerKind, ClientError, Consumer, ConsumerSpec, LogSink, Outcome, Outgoing,
    Producer, ProducerSpec, Received,
};
use crate::history::Guarantee;

/// The header that carries the message's key.
pub const KEY_HEADER: &str = "Ackcheck-Key";
/// JetStream's deduplication header.
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";
/// How long connecting to the proxies may take before opening a client fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a publish waits for its PubAck (and a confirmed ack for its confirmation) before
/// the outcome is unknown: well above the nemesis's latency fault (500 ms), below its lost-ack
/// faults (seconds).
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a delivered, unacknowledged message stays with its consumer: a crashed member's
/// messages come back after this.
pub const ACK_WAIT: Duration = Duration::from_secs(5);
/// The server drops a re-send with the same `Nats-Msg-Id` within this window: longer than any
/// run's re-send loop.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// Unacknowledged messages one group may hold at once (all members together).
const MAX_ACK_PENDING: i64 = 2000;
/// How long a pull may run past its expiry before the consumer stops waiting for the rest of
/// the batch: far below [`ACK_WAIT`], so what it received is still its own when it acks.
const RECEIVE_MARGIN: Duration = Duration::from_millis(500);
/// How long creating a stream may keep retrying (a fresh cluster may still be electing).
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a clean close may take before the client is just dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// The stream of `dest`: stream names may not contain `.`, `*`, `>`, path separators or
/// whitespace, so anything but letters, digits, `-` and `_` becomes `_`.
pub fn stream_name(dest: &str) -> String {
    sanitize(dest)
}

/// The durable consumer of a consumer group, under the same rules as stream names.
pub fn consumer_name(group: &str) -> String {
    sanitize(group)
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' => c,
            _ => '_',
        })
        .collect()
}

/// What every client of one broker shares.
struct Shared {
    servers: Vec<ServerAddr>,
    /// Replicas of every stream: the number of nodes.
    replicas: usize,
    log: LogSink,
}

impl Shared {
    /// A connection of its own (as a separate process would have), to the proxies only.
    async fn connect(&self, name: &str) -> Result<async_nats::Client, ClientError> {
        async_nats::ConnectOptions::new()
            .name(name)
            .ignore_discovered_servers()
            .connection_timeout(CONNECT_TIMEOUT)
            .request_timeout(Some(ACK_TIMEOUT))
            .connect(self.servers.as_slice())
            .await
            .map_err(|e| ClientError::new(format!("connecting {name} to NATS at {:?}: {e}", self.servers)))
    }

    fn jetstream(client: async_nats::Client) -> async_nats::jetstream::Context {
        async_nats::jetstream::ContextBuilder::new()
            .timeout(ACK_TIMEOUT)
            .build(client)
    }
}

pub struct NatsBroker {
    shared: Arc<Shared>,
}

impl NatsBroker {
    /// `endpoints`: `host:port` of every node's client proxy (or `nats://` URLs); `nodes`: the
    /// cluster size, which is every stream's replica count.
    pub fn new(endpoints: &[String], nodes: usize, log: LogSink) -> NatsBroker {
        let servers = endpoints
            .iter()
            .filter_map(|e| {
                let url = match e.contains("://") {
                    true => e.clone(),
                    false => format!("nats://{e}"),
                };
                match ServerAddr::from_str(&url) {
                    Ok(addr) => Some(addr),
                    Err(err) => {
                        log(&format!("nats: ignoring the endpoint {e}: {err}"));
                        None
                    }
                }
            })
            .collect();
        NatsBroker {
            shared: Arc::new(Shared {
                servers,
                replicas: nodes.max(1),
                log,
            }),
        }
    }
}

#[async_trait]
impl Broker for NatsBroker {
    fn kind(&self) -> BrokerKind {
        super::KIND
    }

    /// One stream per destination; a stream has no partitions, so `partitions` is noted and
    /// ignored. Creating a stream that exists with this config is a no-op; a fresh cluster
    /// may answer "no meta leader" or "insufficient resources" for a moment, so it retries.
    async fn create_dest(&self, name: &str, partitions: u32) -> Result<(), ClientError> {
        let stream = stream_name(name);
        if partitions > 1 {
            (self.shared.log)(&format!(
                "nats: {stream} is one stream; the {partitions} partitions asked for do not apply"
            ));
        }
        let config = StreamConfig {
            name: stream.clone(),
            subjects: vec![name.to_string()],
            storage: StorageType::File,
            num_replicas: self.shared.replicas,
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        };
        let client = self.shared.connect("ackcheck-admin").await?;
        let js = Shared::jetstream(client.clone());
        let started = std::time::Instant::now();
        let result = loop {
            match js.get_or_create_stream(config.clone()).await {
                Ok(_) => break Ok(()),
                Err(e) if started.elapsed() < CREATE_TIMEOUT => {
                    (self.shared.log)(&format!("nats: creating the stream {stream} failed ({e}); retrying"));
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => {
                    break Err(ClientError::new(format!(
                        "creating the stream {stream} ({} replica(s)) failed: {e}; check that every node is up (`ackcheck cluster status nats`)",
                        self.shared.replicas
                    )))
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, client.drain()).await;
        result
    }

    async fn delete_dest(&self, name: &str) -> Result<(), ClientError> {
        let stream = stream_name(name);
        let client = self.shared.connect("ackcheck-admin").await?;
        let js = Shared::jetstream(client.clone());
        let deleted = match js.delete_stream(&stream).await {
            Ok(_) => Ok(()),
            Err(e) if e.to_string().contains("not found") => Ok(()),
            Err(e) => Err(ClientError::new(format!("deleting the stream {stream} failed: {e}"))),
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, client.drain()).await;
        deleted
    }

    async fn producer(&self, spec: &ProducerSpec) -> Result<Box<dyn Producer>, ClientError> {
        let client = self.shared.connect(&spec.identity).await?;
        Ok(Box::new(NatsProducer {
            shared: self.shared.clone(),
            js: Shared::jetstream(client.clone()),
            client,
            mode: spec.mode,
            name: spec.identity.clone(),
        }))
    }

    async fn consumer(&self, spec: &ConsumerSpec) -> Result<Box<dyn Consumer>, ClientError> {
        let [dest] = spec.dests.as_slice() else {
            return Err(ClientError::fatal(format!(
                "a NATS consumer reads one stream, not {:?}",
                spec.dests
            )));
        };
        let client = self.shared.connect(&format!("consumer-{}", spec.group)).await?;
        let js = Shared::jetstream(client.clone());
        let stream = stream_name(dest);
        let durable = consumer_name(&spec.group);
        let config = PullConfig {
            durable_name: Some(durable.clone()),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            max_ack_pending: MAX_ACK_PENDING,
            ..Default::default()
        };
        let opened = async {
            let stream = js
                .get_stream(&stream)
                .await
                .map_err(|e| format!("looking up the stream {stream}: {e}"))?;
            stream
                .get_or_create_consumer(&durable, config)
                .await
                .map_err(|e| format!("opening the durable consumer {durable} on {}: {e}", dest))
        };
        let consumer: PullConsumer = match opened.await {
            Ok(c) => c,
            Err(e) => {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, client.drain()).await;
                return Err(ClientError::new(e));
            }
        };
        Ok(Box::new(NatsConsumer {
            client,
            consumer,
            dest: dest.clone(),
            mode: spec.mode,
        }))
    }
}

/// One producer: its own connection; every send is one publish.
pub struct NatsProducer {
    shared: Arc<Shared>,
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    mode: Guarantee,
    name: String,
}

impl NatsProducer {
    async fn publish_one(&self, m: &Outgoing) -> Outcome {
        let mut headers = HeaderMap::new();
        if let Some(key) = &m.key {
            headers.insert(KEY_HEADER, key.as_str());
        }
        let payload = encode_body(&m.id, m.from.as_deref(), m.size).into();
        if self.mode == Guarantee::AtMostOnce {
            // No reply subject: the server stores it (or not) and says nothing.
            return match self.client.publish_with_headers(m.dest.clone(), headers, payload).await {
                Ok(()) => Outcome::ok(),
                Err(e) => Outcome::Fail(format!("not sent: the client refused the publish: {e}")),
            };
        }
        if self.mode == Guarantee::ExactlyOnce {
            // The same logical message is the same id, whoever sends it again.
            headers.insert(MSG_ID_HEADER, m.id.as_str());
        }
        let publish = PublishMessage::build().payload(payload).headers(headers);
        let ack = match self.js.send_publish(m.dest.clone(), publish).await {
            Ok(ack) => ack,
            // The request never got into the client's outgoing queue.
            Err(e) => return Outcome::Fail(format!("not sent: the client refused the publish: {e}")),
        };
        let outcome = match ack.await {
            Ok(ack) => {
                if ack.duplicate {
                    (self.shared.log)(&format!(
                        "nats producer {}: {} was a duplicate of the copy stored at {}; not stored again",
                        self.name, m.id, ack.sequence
                    ));
                }
                // The stream sequence, as a consumer reports it (a duplicate's is the original's).
                Outcome::ok_at(ack.sequence.to_string())
            }
            Err(e) => outcome_of_error(&e),
        };
        if let Outcome::Info(why) = &outcome {
            (self.shared.log)(&format!("nats producer {}: {} unknown: {why}", self.name, m.id));
        }
        outcome
    }
}

/// What a failed wait for a PubAck means for whether the message was stored.
fn outcome_of_error(e: &async_nats::jetstream::context::PublishError) -> Outcome {
    match e.kind() {
        // A "no responders" status: nothing subscribed to the subject, so no stream took it.
        PublishErrorKind::StreamNotFound => Outcome::Fail(format!("not stored: no stream answered ({e})")),
        PublishErrorKind::WrongLastMessageId | PublishErrorKind::WrongLastSequence => {
            Outcome::Fail(format!("rejected by JetStream: {e}"))
        }
        PublishErrorKind::Other if is_api_error(e) => Outcome::Fail(format!("rejected by JetStream: {e}")),
        _ => Outcome::Info(format!("no PubAck that says whether JetStream stored it: {e}")),
    }
}

/// An error reply of the JetStream API (the server answered: it did not store the message),
/// as opposed to a reply that could not be read.
fn is_api_error(e: &async_nats::jetstream::context::PublishError) -> bool {
    std::error::Error::source(e).is_some_and(|s| s.downcast_ref::<async_nats::jetstream::Error>().is_some())
}

#[async_trait]
impl Producer for NatsProducer {
    async fn send_one(&self, m: &Outgoing) -> Outcome {
        self.publish_one(m).await
    }

    /// Flush what the client still buffers (at-most-once publishes), then close.
    async fn close(self: Box<Self>, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.client.drain()).await;
    }
}

/// One member of a group's durable pull consumer, on its own connection. Dropped in a crash,
/// it leaves what it received and did not ack to come back after the ack wait.
pub struct NatsConsumer {
    client: async_nats::Client,
    consumer: PullConsumer,
    dest: String,
    mode: Guarantee,
}

impl NatsConsumer {
    fn received(&self, message: async_nats::jetstream::Message) -> Result<Received, String> {
        let (sequence, delivered) = {
            let info = message
                .info()
                .map_err(|e| format!("a message without JetStream metadata: {e}"))?;
            (info.stream_sequence, info.delivered)
        };
        let (message, acker) = message.split();
        let (id, from) =
            decode_body(&message.payload).unwrap_or_else(|| (format!("unknown-{}@{sequence}", self.dest), None));
        let key = message
            .headers
            .as_ref()
            .and_then(|h| h.get(KEY_HEADER))
            .map(|v| v.as_str().to_string());
        Ok(Received {
            id,
            key,
            dest: self.dest.clone(),
            pos: sequence.to_string(),
            from,
            redelivered: delivered > 1,
            handle: Box::new(acker),
        })
    }
}

#[async_trait]
impl Consumer for NatsConsumer {
    /// One pull request for up to `max` messages that the server lets expire after `wait`.
    async fn receive(&mut self, max: usize, wait: Duration) -> Result<Vec<Received>, ClientError> {
        // The server refuses expiries under a millisecond; the batch ends itself at expiry.
        let expires = wait.max(Duration::from_millis(10));
        let pulled = self
            .consumer
            .batch()
            .max_messages(max.max(1))
            .expires(expires)
            .messages();
        let mut batch = tokio::time::timeout(ACK_TIMEOUT, pulled)
            .await
            .map_err(|_| ClientError::new(format!("pulling from {}: no answer within {ACK_TIMEOUT:?}", self.dest)))?
            .map_err(|e| ClientError::new(format!("pulling from {}: {e}", self.dest)))?;
        let mut got = Vec::new();
        // A short margin over the expiry: the server's expiry notice can be lost (a reset
        // connection), and a batch held open until the ack wait ran out would be processed
        // while the server already hands the same messages to another member. Messages still
        // on their way when it runs out stay unacked and come back after the ack wait.
        let deadline = tokio::time::Instant::now() + expires + RECEIVE_MARGIN;
        loop {
            let next = match tokio::time::timeout_at(deadline, batch.next()).await {
                Err(_) | Ok(None) => break,
                Ok(Some(next)) => next,
            };
            match next {
                Ok(message) => match self.received(message) {
                    Ok(r) => got.push(r),
                    Err(e) => return Err(ClientError::new(format!("receiving from {}: {e}", self.dest))),
                },
                // What came before the error is delivered (and acked or redelivered) as usual.
                Err(e) if !got.is_empty() => {
                    let _ = e;
                    break;
                }
                Err(e) => return Err(ClientError::new(format!("pulling from {}: {e}", self.dest))),
            }
        }
        Ok(got)
    }

    /// Ack every message. At-least-once acks without waiting (a lost ack redelivers, which the
    /// mode allows); the other modes wait for the server to confirm each ack (`double_ack`),
    /// so that an error says the message may come back.
    async fn commit(&mut self, messages: &[Received]) -> Result<(), ClientError> {
        let ackers: Vec<&Acker> = messages
            .iter()
            .filter_map(|m| m.handle.downcast_ref::<Acker>())
            .collect();
        let confirmed = self.mode != Guarantee::AtLeastOnce;
        let acks = ackers.iter().map(|a| async move {
            match confirmed {
                true => a.double_ack().await,
                false => a.ack().await,
            }
        });
        let results = futures::future::join_all(acks).await;
        let failed: Vec<String> = results
            .into_iter()
            .filter_map(|r| r.err().map(|e| e.to_string()))
            .collect();
        match failed.first() {
            None => Ok(()),
            Some(first) => Err(ClientError::new(format!(
                "acking {} of {} message(s) from {} failed (they may be delivered again): {first}",
                failed.len(),
                ackers.len(),
                self.dest
            ))),
        }
    }

    /// Close the connection; unacked messages return after the ack wait.
    async fn close(self: Box<Self>) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.client.drain()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_and_consumer_names_keep_only_safe_characters() {
        assert_eq!(stream_name("queue-19a2b3c"), "queue-19a2b3c");
        assert_eq!(stream_name("a.b c>*/d"), "a_b_c___d");
        assert_eq!(consumer_name("group.one"), "group_one");
    }

    #[test]
    fn endpoints_become_server_addresses() {
        let log: LogSink = Arc::new(|_: &str| {});
        let broker = NatsBroker::new(&["127.0.0.1:19400".into(), "nats://127.0.0.1:19410".into()], 3, log);
        assert_eq!(broker.shared.servers.len(), 2);
        assert_eq!(broker.shared.replicas, 3);
    }
}
