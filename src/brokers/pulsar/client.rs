//! The Apache Pulsar adapter (the `pulsar` crate 6.9, against the standalone node behind its
//! Toxiproxy proxy). A log underneath, but consumed like a queue: every message is acknowledged
//! on its own on a Shared subscription, and a consumer that goes away (its connection closes)
//! hands its unacknowledged messages to the other members.
//!
//! - at-most-once: a send is ok as soon as the client accepted it (written to its connection's
//!   outbound queue, no waiting for the broker's receipt) and is never sent again by the
//!   application; consumers acknowledge *before* processing.
//! - at-least-once: a send is ok on the broker's receipt; an error or no receipt within the
//!   operation timeout is unknown and the application re-sends the same id (a new Pulsar
//!   message, so a lost receipt makes a second stored copy); consumers process, then ack.
//! - exactly-once: Pulsar's broker-side deduplication, which drops a message whose (producer
//!   name, sequence id) it has already stored. The crate numbers a producer's messages itself
//!   (0, 1, 2, … per producer instance) and cannot be given explicit sequence ids, so every
//!   logical message is sent by a producer of its own, named after the message id: the message
//!   is always sequence id 0 of producer `ackcheck-<id>`, and an application re-send of the same
//!   id is the same (name, sequence id) pair, which the broker drops. Plus the workload's
//!   idempotent consumer; [`Broker::duplicates_writes`] stays false, so it skips redeliveries by
//!   position and a message the broker did store twice shows up as "written twice".
//!
//! The broker has deduplication on in every mode, so the crate's own resends (it re-creates a
//! producer after a lost connection and resends the messages still waiting for a receipt, with
//! their sequence ids) never store a copy twice; only the application's re-sends can. Producers
//! of the first two modes get broker-assigned names (unique, so no producer inherits another's
//! deduplication state).
//!
//! A campaign's `[client.*]`, `[dest]` and `[server]` settings ([`super::props`]) change this
//! key by key: the producer's `send_timeout` (how long a receipt may take), the consumer's
//! `ack_timeout` (unacknowledged messages are delivered again after it, to any member) and
//! `receiver_queue_size`, and the `deduplication` topic policy, set through the admin API on
//! every topic the run creates.
//!
//! Positions: `pos` is the Pulsar message id `ledger:entry` (`:batch` for a batched message;
//! producers here do not batch). A redelivery is the same stored copy and keeps it; a second
//! copy gets another entry. `redelivered` is always false: the crate reads the broker's
//! redelivery count but does not hand it to the application. Topics are non-partitioned
//! (`persistent://public/default/<dest>`); the key travels as the partition key, the id and
//! `from` in the body ([`encode_body`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use pulsar::consumer::InitialPosition;
use pulsar::message::proto::MessageIdData;
use pulsar::producer::{Message as PulsarMessage, ProducerOptions, SendFuture};
use pulsar::{ConnectionRetryOptions, ConsumerOptions, OperationRetryOptions, Pulsar, SubType, TokioExecutor};

use super::props;
use crate::broker::{
    decode_body, encode_body, Broker, ClientError, Consumer, ConsumerSpec, LogSink, Outcome, Outgoing, Producer,
    ProducerSpec, Received,
};
use crate::broker::{BrokerKind, ClientSettings};
use crate::history::Guarantee;

/// How long the broker may take to answer one operation (a lookup, a subscription) before the
/// crate gives up on it; a producer's receipts follow its `send_timeout` (the same by default).
const OPERATION_TIMEOUT: Duration = props::PRESET_SEND_TIMEOUT;
/// Our own bound on anything the crate might wait for longer (it retries internally).
const CALL_TIMEOUT: Duration = Duration::from_secs(8);
/// How much longer than the send timeout a receipt is awaited: the crate fails the send itself
/// at its deadline, so this only bounds a crate that would not.
const RECEIPT_GRACE: Duration = Duration::from_secs(3);
/// The crate's own operation timeout, with `defaults = "library"`.
const LIBRARY_OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a topic policy set through the admin API may take to reach the topic.
const POLICY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a clean close may take before the client is just dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// The tenant and namespace of the standalone node's default namespace.
const NAMESPACE: &str = "persistent://public/default";

/// The service URL of a client endpoint: `host:port` of the node's proxy, or a full URL.
pub fn service_url(endpoint: &str) -> String {
    match endpoint.starts_with("pulsar://") || endpoint.starts_with("pulsar+ssl://") {
        true => endpoint.to_string(),
        false => format!("pulsar://{endpoint}"),
    }
}

/// The full Pulsar topic of a workload destination.
pub fn topic(dest: &str) -> String {
    format!("{NAMESPACE}/{dest}")
}

/// The producer that sends (and re-sends) one logical message in exactly-once mode: the broker
/// deduplicates by this name and the sequence id 0.
pub fn dedup_producer_name(id: &str) -> String {
    format!("ackcheck-{id}")
}

/// A stored copy's position: `ledger:entry`, or `ledger:entry:batch` inside a batch.
pub fn position(id: &MessageIdData) -> String {
    match id.batch_index {
        Some(batch) if batch >= 0 => format!("{}:{}:{batch}", id.ledger_id, id.entry_id),
        _ => format!("{}:{}", id.ledger_id, id.entry_id),
    }
}

type Client = Pulsar<TokioExecutor>;
type TopicProducer = pulsar::Producer<TokioExecutor>;

/// The settings a campaign can change, resolved.
#[derive(Debug, Clone)]
struct Settings {
    /// The producers' operation timeout: how long a message may wait for its receipt.
    send_timeout: Duration,
    /// Unacknowledged messages are delivered again after this (`None`: only when their
    /// consumer leaves).
    ack_timeout: Option<Duration>,
    /// Messages the broker pushes ahead of the receives (`None`: the crate's default).
    receiver_queue: Option<u32>,
    /// The deduplication topic policy to set on every topic (`None`: the broker's setting).
    deduplication: Option<bool>,
}

pub struct PulsarBroker {
    url: String,
    settings: Settings,
    log: LogSink,
}

impl PulsarBroker {
    /// `endpoint`: `host:port` of the node's client proxy (or a `pulsar://` URL). How clients
    /// send and acknowledge follows each producer's and consumer's own mode; everything else is
    /// ackcheck's preset.
    pub fn new(endpoint: &str, log: LogSink) -> PulsarBroker {
        let client = props::client_settings(&Default::default()).unwrap_or_default();
        PulsarBroker::with_settings(endpoint, &client, &serde_json::json!({}), log)
    }

    /// With a campaign's effective client settings and `[dest]` settings
    /// ([`props::client_settings`], [`props::dest_settings`]).
    pub fn with_settings(
        endpoint: &str,
        client: &ClientSettings,
        dest_settings: &serde_json::Value,
        log: LogSink,
    ) -> PulsarBroker {
        let settings = Settings {
            send_timeout: props::duration(&client.producer, "send_timeout").unwrap_or(LIBRARY_OPERATION_TIMEOUT),
            ack_timeout: props::duration(&client.consumer, "ack_timeout"),
            receiver_queue: props::number(&client.consumer, "receiver_queue_size"),
            deduplication: props::deduplication_policy(dest_settings),
        };
        PulsarBroker {
            url: service_url(endpoint),
            settings,
            log,
        }
    }

    /// Set the deduplication policy of `topic` through the admin API and wait until the topic
    /// applies it (topic policies travel through a system topic, asynchronously).
    async fn set_deduplication(&self, topic: &str, on: bool) -> Result<(), ClientError> {
        let path = topic.replacen("persistent://", "persistent/", 1);
        let url = format!("{}/admin/v2/{path}/deduplicationEnabled", super::node::admin_url());
        let fail = |what: String| ClientError::new(format!("setting deduplication={on} on {topic}: {what}"));
        let http = super::node::admin_client().map_err(fail)?;
        let deadline = std::time::Instant::now() + POLICY_TIMEOUT;
        loop {
            let set = http.post(&url).json(&on).send().await;
            match set {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    if std::time::Instant::now() >= deadline {
                        return Err(fail(format!("POST {url} answered HTTP {status}: {body}")));
                    }
                }
                Err(e) if std::time::Instant::now() >= deadline => return Err(fail(format!("POST {url}: {e}"))),
                Err(_) => {}
            }
            let applied = http.get(format!("{url}?applied=true")).send().await;
            if let Ok(r) = applied {
                if r.status().is_success() && r.json::<serde_json::Value>().await.ok() == Some(on.into()) {
                    return Ok(());
                }
            }
            if std::time::Instant::now() >= deadline {
                return Err(fail(format!(
                    "the topic did not apply it within {} s",
                    POLICY_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// A client of its own: its own connection, closed with it (as a process's would be).
    async fn client(&self) -> Result<Client, ClientError> {
        self.client_with_timeout(OPERATION_TIMEOUT).await
    }

    /// A client whose operations (a producer's receipts among them) time out after
    /// `operation_timeout`.
    async fn client_with_timeout(&self, operation_timeout: Duration) -> Result<Client, ClientError> {
        let build = Pulsar::builder(self.url.as_str(), TokioExecutor)
            .with_connection_retry_options(ConnectionRetryOptions {
                min_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(1),
                max_retries: 5,
                connection_timeout: Duration::from_secs(3),
                keep_alive: Duration::from_secs(5),
                ..Default::default()
            })
            .with_operation_retry_options(OperationRetryOptions {
                operation_timeout,
                retry_delay: Duration::from_millis(500),
                max_retries: Some(3),
            })
            .build();
        match tokio::time::timeout(CALL_TIMEOUT, build).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(ClientError::new(format!("connecting to {}: {e}", self.url))),
            Err(_) => Err(ClientError::new(format!(
                "connecting to {}: no answer within {} s",
                self.url,
                CALL_TIMEOUT.as_secs()
            ))),
        }
    }
}

/// Open a producer on `dest` (named, or named by the broker), within [`CALL_TIMEOUT`].
async fn open_producer(client: &Client, dest: &str, name: Option<String>) -> Result<TopicProducer, String> {
    let mut builder = client.producer().with_topic(topic(dest)).with_options(ProducerOptions {
        // A full outbound queue fails the send at once (not written) instead of blocking.
        block_queue_if_full: false,
        ..ProducerOptions::default()
    });
    if let Some(name) = name {
        builder = builder.with_name(name);
    }
    match tokio::time::timeout(CALL_TIMEOUT, builder.build()).await {
        Ok(Ok(producer)) => Ok(producer),
        Ok(Err(e)) => Err(format!("opening a producer on {dest}: {e}")),
        Err(_) => Err(format!(
            "opening a producer on {dest}: no answer within {} s",
            CALL_TIMEOUT.as_secs()
        )),
    }
}

/// Close a producer from a task of its own: the broker keeps a producer that is only dropped
/// until its connection closes, and a named one would keep its name taken.
fn close_in_background(mut producer: TopicProducer) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, producer.close()).await;
    });
}

#[async_trait]
impl Broker for PulsarBroker {
    fn kind(&self) -> BrokerKind {
        super::KIND
    }

    /// One non-partitioned topic, created by opening (and closing) a producer on it; the
    /// `partitions` asked for are noted and do not apply.
    async fn create_dest(&self, name: &str, partitions: u32) -> Result<(), ClientError> {
        if partitions > 1 {
            (self.log)(&format!(
                "pulsar: {} is one non-partitioned topic; the {partitions} partitions asked for do not apply",
                topic(name)
            ));
        }
        let client = self.client().await?;
        let mut producer = open_producer(&client, name, None).await.map_err(ClientError::new)?;
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, producer.close()).await;
        if let Some(on) = self.settings.deduplication {
            self.set_deduplication(&topic(name), on).await?;
            (self.log)(&format!("pulsar: deduplication={on} applied to {}", topic(name)));
        }
        Ok(())
    }

    async fn delete_dest(&self, name: &str) -> Result<(), ClientError> {
        let topic = topic(name);
        let path = topic.replacen("persistent://", "persistent/", 1);
        let url = format!("{}/admin/v2/{path}?force=true", super::node::admin_url());
        let fail = |what: String| ClientError::new(format!("deleting the topic {topic}: {what}"));
        let http = super::node::admin_client().map_err(fail)?;
        let reply = http
            .delete(&url)
            .send()
            .await
            .map_err(|e| fail(format!("DELETE {url}: {e}")))?;
        match reply.status().as_u16() {
            200..=299 | 404 => Ok(()),
            status => {
                let body = reply.text().await.unwrap_or_default();
                Err(fail(format!("DELETE {url} answered HTTP {status}: {body}")))
            }
        }
    }

    async fn producer(&self, spec: &ProducerSpec) -> Result<Box<dyn Producer>, ClientError> {
        Ok(Box::new(PulsarProducer {
            client: self.client_with_timeout(self.settings.send_timeout).await?,
            receipt_timeout: self.settings.send_timeout + RECEIPT_GRACE,
            mode: spec.mode,
            name: spec.identity.clone(),
            log: self.log.clone(),
            topics: tokio::sync::Mutex::new(HashMap::new()),
        }))
    }

    async fn consumer(&self, spec: &ConsumerSpec) -> Result<Box<dyn Consumer>, ClientError> {
        let [dest] = spec.dests.as_slice() else {
            return Err(ClientError::fatal(format!(
                "a Pulsar consumer here reads one topic, not {:?}",
                spec.dests
            )));
        };
        let client = self.client().await?;
        let options = ConsumerOptions::default()
            .durable(true)
            .with_initial_position(InitialPosition::Earliest);
        let mut subscribe = client
            .consumer()
            .with_topic(topic(dest))
            .with_subscription(&spec.group)
            // Shared: the group's members split the topic message by message, and the messages
            // a member held unacknowledged go to the others when it leaves.
            .with_subscription_type(SubType::Shared)
            // From the start of the topic: a group that subscribes after the first sends still
            // sees them.
            .with_options(options)
            .with_unacked_message_resend_delay(self.settings.ack_timeout);
        if let Some(queue) = self.settings.receiver_queue {
            subscribe = subscribe.with_batch_size(queue);
        }
        let subscribe = subscribe.build::<Vec<u8>>();
        let consumer = match tokio::time::timeout(CALL_TIMEOUT, subscribe).await {
            Ok(Ok(consumer)) => consumer,
            Ok(Err(e)) => return Err(ClientError::new(format!("subscribing {} to {dest}: {e}", spec.group))),
            Err(_) => {
                return Err(ClientError::new(format!(
                    "subscribing {} to {dest}: no answer within {} s",
                    spec.group,
                    CALL_TIMEOUT.as_secs()
                )))
            }
        };
        Ok(Box::new(PulsarConsumer {
            consumer,
            _client: client,
            dest: dest.clone(),
            topic: topic(dest),
            pending_error: None,
        }))
    }
}

/// One producer: its own client (one connection). In at-most-once and at-least-once, one
/// long-lived Pulsar producer per topic; in exactly-once, one Pulsar producer per message.
pub struct PulsarProducer {
    client: Client,
    /// How long a receipt is awaited (the send timeout and a grace).
    receipt_timeout: Duration,
    mode: Guarantee,
    name: String,
    log: LogSink,
    topics: tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<TopicProducer>>>>,
}

impl PulsarProducer {
    /// The long-lived producer of `dest`, opened on first use.
    async fn topic_producer(&self, dest: &str) -> Result<Arc<tokio::sync::Mutex<TopicProducer>>, String> {
        let mut topics = self.topics.lock().await;
        if let Some(producer) = topics.get(dest) {
            return Ok(producer.clone());
        }
        let producer = Arc::new(tokio::sync::Mutex::new(open_producer(&self.client, dest, None).await?));
        topics.insert(dest.to_string(), producer.clone());
        Ok(producer)
    }

    /// Forget `dest`'s producer after a failed send, so that the next send opens a new one,
    /// and close it once the sends still holding it are done.
    async fn discard(&self, dest: &str, failed: &Arc<tokio::sync::Mutex<TopicProducer>>) {
        let mut topics = self.topics.lock().await;
        if topics.get(dest).is_some_and(|p| Arc::ptr_eq(p, failed)) {
            topics.remove(dest);
            let failed = failed.clone();
            tokio::spawn(async move {
                let mut producer = failed.lock().await;
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, producer.close()).await;
            });
        }
    }

    fn message(m: &Outgoing) -> PulsarMessage {
        PulsarMessage {
            payload: encode_body(&m.id, m.from.as_deref(), m.size),
            partition_key: m.key.clone(),
            ..PulsarMessage::default()
        }
    }

    /// Hand `message` to `producer`'s connection. An error means it never entered the
    /// connection's outbound queue (the crate re-creates a lost producer and retries until its
    /// deadline first): not sent.
    async fn hand_over(producer: &mut TopicProducer, message: PulsarMessage) -> Result<SendFuture, Outcome> {
        match tokio::time::timeout(CALL_TIMEOUT, producer.send_non_blocking(message)).await {
            Ok(Ok(receipt)) => Ok(receipt),
            Ok(Err(e)) => Err(Outcome::Fail(format!("not sent: {e}"))),
            Err(_) => Err(Outcome::Info(format!(
                "handing the message to the client took over {} s",
                CALL_TIMEOUT.as_secs()
            ))),
        }
    }

    /// The outcome of a message the client accepted: at once in at-most-once (the crate still
    /// delivers it, and resends it with its sequence id after a reconnect, but nobody waits for
    /// the receipt), else the broker's receipt.
    async fn outcome(&self, receipt: SendFuture) -> Outcome {
        if self.mode == Guarantee::AtMostOnce {
            return Outcome::ok();
        }
        match tokio::time::timeout(self.receipt_timeout, receipt).await {
            // The receipt's message id, as a consumer reports it (producers here do not batch).
            // A deduplicated resend is answered with the id -1:-1 (the copy is elsewhere).
            Ok(Ok(receipt)) => match receipt.message_id {
                Some(id) if id.ledger_id != u64::MAX && id.entry_id != u64::MAX => Outcome::ok_at(position(&id)),
                _ => Outcome::ok(),
            },
            Ok(Err(e)) => Outcome::Info(format!("no receipt, the broker may have stored it: {e}")),
            Err(_) => Outcome::Info(format!("no receipt within {} s", self.receipt_timeout.as_secs())),
        }
    }

    /// At-most-once and at-least-once: the topic's long-lived producer.
    async fn send_plain(&self, m: &Outgoing) -> Outcome {
        let producer = match self.topic_producer(&m.dest).await {
            Ok(producer) => producer,
            Err(e) => return Outcome::Fail(format!("not sent: {e}")),
        };
        // The lock covers only handing the message over; receipts are awaited concurrently.
        let handed = match tokio::time::timeout(CALL_TIMEOUT, producer.lock()).await {
            Ok(mut guard) => Self::hand_over(&mut guard, Self::message(m)).await,
            Err(_) => return Outcome::Fail("not sent: the producer stayed busy".into()),
        };
        match handed {
            Ok(receipt) => self.outcome(receipt).await,
            Err(outcome) => {
                if let Outcome::Fail(_) = outcome {
                    self.discard(&m.dest, &producer).await;
                }
                outcome
            }
        }
    }

    /// Exactly-once: a producer named after the message, whose only message is sequence id 0.
    async fn send_deduplicated(&self, m: &Outgoing) -> Outcome {
        // Not opened (also when the broker still holds the name for an earlier attempt's
        // producer): this attempt wrote nothing.
        let mut producer = match open_producer(&self.client, &m.dest, Some(dedup_producer_name(&m.id))).await {
            Ok(producer) => producer,
            Err(e) => return Outcome::Fail(format!("not sent: {e}")),
        };
        let outcome = match Self::hand_over(&mut producer, Self::message(m)).await {
            Ok(receipt) => self.outcome(receipt).await,
            Err(outcome) => outcome,
        };
        // After the outcome: closing first could leave the message without its receipt. Until
        // the close, a re-send of this id cannot open a producer of the same name.
        close_in_background(producer);
        outcome
    }
}

#[async_trait]
impl Producer for PulsarProducer {
    async fn send_one(&self, m: &Outgoing) -> Outcome {
        let outcome = match self.mode {
            Guarantee::ExactlyOnce => self.send_deduplicated(m).await,
            Guarantee::AtMostOnce | Guarantee::AtLeastOnce => self.send_plain(m).await,
        };
        if let Outcome::Info(why) = &outcome {
            (self.log)(&format!("pulsar producer {}: {} unknown: {why}", self.name, m.id));
        }
        outcome
    }

    /// Every send is awaited by its caller; close the long-lived producers.
    async fn close(self: Box<Self>, timeout: Duration) {
        let producers: Vec<_> = self.topics.lock().await.drain().map(|(_, p)| p).collect();
        for producer in producers {
            let mut producer = producer.lock().await;
            let _ = tokio::time::timeout(timeout.min(CLOSE_TIMEOUT), producer.close()).await;
        }
    }
}

/// What a consumer needs to acknowledge one message.
#[derive(Debug, Clone)]
pub struct Ack(pub MessageIdData);

/// One member of a Shared subscription, with a client (connection) of its own. Dropped in a
/// crash, the crate closes the consumer and the connection goes with the client, so the broker
/// hands its unacknowledged messages to the other members.
pub struct PulsarConsumer {
    consumer: pulsar::Consumer<Vec<u8>, TokioExecutor>,
    _client: Client,
    dest: String,
    topic: String,
    /// An error that came after messages already received; reported by the next receive.
    pending_error: Option<ClientError>,
}

impl PulsarConsumer {
    fn received(&self, message: pulsar::consumer::Message<Vec<u8>>) -> Received {
        let id = message.message_id().clone();
        let pos = position(&id);
        let (body_id, from) = decode_body(&message.payload.data).unzip();
        Received {
            // A message sent by anyone else has no ackcheck body: its position is all there is.
            id: body_id.unwrap_or_else(|| format!("unknown-{pos}")),
            key: message.key(),
            dest: self.dest.clone(),
            pos,
            from: from.flatten(),
            // The crate does not expose the broker's redelivery count.
            redelivered: false,
            handle: Box::new(Ack(id)),
        }
    }

    /// A stream error, or the end of the stream (the consumer is gone for good).
    fn stream_error(&self, item: Option<pulsar::Error>) -> ClientError {
        match item {
            Some(e) => ClientError::new(format!("receiving from {}: {e}", self.dest)),
            None => ClientError::fatal(format!("the consumer of {} stopped", self.dest)),
        }
    }
}

#[async_trait]
impl Consumer for PulsarConsumer {
    /// Wait up to `wait` for the first message, then take what the client already holds, up
    /// to `max`.
    async fn receive(&mut self, max: usize, wait: Duration) -> Result<Vec<Received>, ClientError> {
        if let Some(e) = self.pending_error.take() {
            return Err(e);
        }
        let first = match tokio::time::timeout(wait, self.consumer.next()).await {
            Err(_) => return Ok(Vec::new()),
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(e))) => return Err(self.stream_error(Some(e))),
            Ok(None) => return Err(self.stream_error(None)),
        };
        let mut batch = vec![self.received(first)];
        while batch.len() < max.max(1) {
            // `next` is cancel-safe: a message not ready now stays for the next receive.
            match self.consumer.next().now_or_never() {
                None => break,
                Some(Some(Ok(message))) => batch.push(self.received(message)),
                Some(Some(Err(e))) => {
                    self.pending_error = Some(self.stream_error(Some(e)));
                    break;
                }
                Some(None) => {
                    self.pending_error = Some(self.stream_error(None));
                    break;
                }
            }
        }
        Ok(batch)
    }

    /// Acknowledge each message. Pulsar acknowledgements have no reply: an ack the client
    /// handed over can still be lost with its connection, or (persisted lazily) in a broker
    /// crash, and the message then comes again.
    async fn commit(&mut self, messages: &[Received]) -> Result<(), ClientError> {
        for m in messages {
            let Some(Ack(id)) = m.handle.downcast_ref::<Ack>() else {
                continue;
            };
            self.consumer
                .ack_with_id(&self.topic, id.clone())
                .await
                .map_err(|e| ClientError::fatal(format!("acknowledging {} on {}: {e}", m.pos, self.dest)))?;
        }
        Ok(())
    }

    async fn close(mut self: Box<Self>) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.consumer.close()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_topics_and_positions_are_spelled_as_pulsar_does() {
        assert_eq!(service_url("127.0.0.1:19300"), "pulsar://127.0.0.1:19300");
        assert_eq!(service_url("pulsar://h:6650"), "pulsar://h:6650");
        assert_eq!(topic("queue-1"), "persistent://public/default/queue-1");
        assert_eq!(dedup_producer_name("p3-17"), "ackcheck-p3-17");
        let id = MessageIdData {
            ledger_id: 12,
            entry_id: 34,
            ..MessageIdData::default()
        };
        assert_eq!(position(&id), "12:34");
        let batched = MessageIdData {
            batch_index: Some(2),
            ..id
        };
        assert_eq!(position(&batched), "12:34:2");
    }
}
