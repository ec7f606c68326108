//! The RabbitMQ adapter (lapin): a queue underneath, not a log. No offsets: every message is
//! acknowledged on its own, and a channel that goes away hands its unacknowledged messages back
//! to the queue, flagged `redelivered`.
//!
//! - at-most-once: transient messages, no publisher confirms (a publish is ok once its frames
//!   are written to the socket), consumers with automatic acknowledgement (the broker forgets a
//!   message as soon as it has sent it, so a consumer that dies holding it loses it).
//! - at-least-once: a durable quorum queue (classic as an option), persistent messages,
//!   publisher confirms (ack → ok; nack or returned as unroutable → fail; no confirm in time or
//!   the connection lost → info), manual acks after processing, bounded prefetch.
//!
//! These are the presets; a campaign's `[client.producer]` / `[client.consumer]` change them key
//! by key (`confirms`, `persistent`, `mandatory`, `confirm_timeout_ms`; `auto_ack`, `prefetch`;
//! see `super::props`), and its `[dest]` the queue declaration (type, durability, `x-`
//! arguments). The clients do what the effective properties say, whatever the mode.
//! - exactly-once: RabbitMQ has none. The broker side is the at-least-once setup; the
//!   application turns it into an exactly-once *effect* with an idempotent consumer that
//!   deduplicates by message id (the workload's effect store). This adapter only makes the
//!   identity of every stored copy visible.
//!
//! Positions: the producer stamps every publish with a copy id unique to that publish (header
//! `x-ackcheck-copy`, `<message id>~<publish number>`), and `pos` is `<queue>@<copy id>`. A
//! redelivery is the same stored copy and has the same `pos`; a re-publish after a lost confirm
//! is another copy with another `pos`. So the checker tells "redelivered" from "written twice"
//! exactly, and the broker's own `redelivered` flag is kept beside it.

use std::any::Any;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lapin::message::{Delivery, DeliveryResult};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use tokio::sync::mpsc;

pub use super::props::{ConsumerConfig, Credentials, ProducerConfig, QueueDeclaration, QueueType};

use crate::broker::BrokerKind;
use crate::broker::{
    decode_body, encode_body, Broker, ClientError, Consumer, ConsumerSpec, LogSink, Outcome, Outgoing, Producer,
    ProducerSpec, Received,
};
use crate::history::Guarantee;

/// The header that names one stored copy of a message (one publish).
pub const COPY_HEADER: &str = "x-ackcheck-copy";
/// The message's key (RabbitMQ's default exchange routes by queue name, not by key).
pub const KEY_HEADER: &str = "x-ackcheck-key";
/// How long connecting to one node may take before the next node is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long writing a publish to the socket may take before its outcome is unknown (its
/// confirm, if any, then has `confirm_timeout_ms` more).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// After a failed connect, sends fail at once for this long instead of queueing up behind
/// more connect attempts (16 sends in flight would otherwise wait 16 connect timeouts).
const RECONNECT_BACKOFF: Duration = Duration::from_millis(500);
/// How long a clean close may take before the connection is just dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// AMQP heartbeat: a connection to a node that stopped answering is declared dead after two.
const HEARTBEAT_SECONDS: u16 = 10;

/// What producers and consumers of one broker share.
struct Shared {
    /// `host:port` of every node's client proxy.
    endpoints: Vec<String>,
    log: LogSink,
    /// Numbers publishes, so that every stored copy has its own id.
    publishes: AtomicU64,
    /// Spreads clients over the nodes.
    next_node: AtomicUsize,
}

impl Shared {
    /// Connect to the first node that answers, starting at `first`, as `credentials`; returns
    /// the node too.
    async fn connect(
        &self,
        first: usize,
        purpose: &str,
        credentials: &Credentials,
    ) -> Result<(Connection, usize), String> {
        let mut errors = Vec::new();
        for i in 0..self.endpoints.len() {
            let node = (first + i) % self.endpoints.len();
            let uri = uri(&self.endpoints[node], credentials)?;
            let properties = ConnectionProperties::default().with_connection_name(format!("ackcheck {purpose}").into());
            match tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect_uri(uri, properties)).await {
                Ok(Ok(conn)) => return Ok((conn, node)),
                Ok(Err(e)) => errors.push(format!("node {node}: {e}")),
                Err(_) => errors.push(format!("node {node}: no answer within {} s", CONNECT_TIMEOUT.as_secs())),
            }
        }
        Err(errors.join("; "))
    }

    fn note(&self, line: &str) {
        (self.log)(line);
    }
}

/// Close `conn` from a task of its own, for `Drop`s. Needed because lapin keeps a dropped
/// connection open (its channels hold it), heartbeats and all: a consumer dropped in a crash
/// would keep its unacknowledged messages from being redelivered for as long as ackcheck runs.
fn close_in_background(conn: Arc<Connection>, why: &'static str) {
    if !conn.status().connected() {
        return;
    }
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.close(200, why.into())).await;
        });
    }
}

/// The AMQP URL of a client endpoint (`host:port` of a node's proxy), as guest.
pub fn url(endpoint: &str) -> String {
    format!("amqp://guest:guest@{endpoint}/%2f?heartbeat={HEARTBEAT_SECONDS}")
}

/// The AMQP URI of a client endpoint with `credentials` (set as they are, so that a password
/// needs no escaping).
fn uri(endpoint: &str, credentials: &Credentials) -> Result<AMQPUri, String> {
    let mut uri: AMQPUri = url(endpoint)
        .parse()
        .map_err(|e| format!("{endpoint} is not a host:port for an AMQP URL: {e}"))?;
    uri.authority.userinfo.username = credentials.username.clone();
    uri.authority.userinfo.password = credentials.password.clone();
    Ok(uri)
}

pub struct RabbitBroker {
    shared: Arc<Shared>,
    queue: QueueDeclaration,
    /// The clients' effective properties; `None`: each client takes the preset of its spec's
    /// mode.
    clients: Option<(ProducerConfig, ConsumerConfig)>,
}

impl RabbitBroker {
    /// `op` on a channel of a fresh connection to node 0, as the producers' user (the one that
    /// publishes to a queue declares it); channel and connection are closed after, whatever
    /// happened. The outer error: no connection; the inner one: `op` or the channel failed.
    async fn on_admin_channel<F, Fut>(&self, op: F) -> Result<Result<(), lapin::Error>, ClientError>
    where
        F: FnOnce(lapin::Channel) -> Fut,
        Fut: std::future::Future<Output = Result<(), lapin::Error>>,
    {
        let credentials = self.producer_config(Guarantee::AtLeastOnce).credentials;
        let (conn, _) = self
            .shared
            .connect(0, "admin", &credentials)
            .await
            .map_err(ClientError::new)?;
        let done = async {
            let channel = conn.create_channel().await?;
            op(channel.clone()).await?;
            channel.close(200, "done".into()).await
        };
        let result = done.await;
        let _ = conn.close(200, "done".into()).await;
        Ok(result)
    }

    /// Clients with the preset of each spec's mode, on durable queues of `queue_type`.
    /// `endpoints`: `host:port` of every node's client proxy.
    pub fn new(endpoints: &[String], queue_type: QueueType, log: LogSink) -> RabbitBroker {
        RabbitBroker::build(endpoints, QueueDeclaration::of_type(queue_type), None, log)
    }

    /// Clients with these properties whatever the spec's mode, on queues declared as `queue`
    /// (a campaign's effective `[client]` and `[dest]` settings).
    pub fn configured(
        endpoints: &[String],
        queue: QueueDeclaration,
        producer: ProducerConfig,
        consumer: ConsumerConfig,
        log: LogSink,
    ) -> RabbitBroker {
        RabbitBroker::build(endpoints, queue, Some((producer, consumer)), log)
    }

    fn build(
        endpoints: &[String],
        queue: QueueDeclaration,
        clients: Option<(ProducerConfig, ConsumerConfig)>,
        log: LogSink,
    ) -> RabbitBroker {
        let shared = Shared {
            endpoints: endpoints.to_vec(),
            log,
            publishes: AtomicU64::new(0),
            next_node: AtomicUsize::new(0),
        };
        RabbitBroker {
            shared: Arc::new(shared),
            queue,
            clients,
        }
    }

    fn next_node(&self) -> usize {
        self.shared.next_node.fetch_add(1, Ordering::Relaxed) % self.shared.endpoints.len().max(1)
    }

    fn producer_config(&self, mode: Guarantee) -> ProducerConfig {
        match &self.clients {
            Some((producer, _)) => producer.clone(),
            None => ProducerConfig::preset(mode),
        }
    }

    fn consumer_config(&self, mode: Guarantee) -> ConsumerConfig {
        match &self.clients {
            Some((_, consumer)) => consumer.clone(),
            None => ConsumerConfig::preset(mode),
        }
    }
}

/// Declare `queue` as `declaration` says (idempotent when it exists with the same type,
/// durability and arguments).
pub async fn declare(channel: &Channel, queue: &str, declaration: &QueueDeclaration) -> lapin::Result<()> {
    let options = QueueDeclareOptions {
        durable: declaration.durable,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(queue.into(), options, declaration.field_table())
        .await
        .map(|_| ())
}

#[async_trait]
impl Broker for RabbitBroker {
    fn kind(&self) -> BrokerKind {
        super::KIND
    }

    /// A publish whose confirm was lost, sent again, is a second stored copy: RabbitMQ has no
    /// producer-side deduplication.
    fn duplicates_writes(&self) -> bool {
        true
    }

    /// One queue; RabbitMQ queues have no partitions, so `partitions` is noted and ignored.
    async fn create_dest(&self, name: &str, partitions: u32) -> Result<(), ClientError> {
        if partitions > 1 {
            self.shared.note(&format!(
                "rabbitmq: {name} is one {} queue; the {partitions} partitions asked for do not apply",
                self.queue.queue_type.name()
            ));
        }
        let queue = &self.queue;
        let declared = self
            .on_admin_channel(|channel| async move { declare(&channel, name, queue).await })
            .await?;
        declared.map_err(|e| {
            ClientError::new(format!(
                "declaring the {} queue {name}: {e}",
                self.queue.queue_type.name()
            ))
        })
    }

    async fn delete_dest(&self, name: &str) -> Result<(), ClientError> {
        // Deleting a queue that does not exist is a success in AMQP 0-9-1 (RabbitMQ 3.x).
        let deleted = self
            .on_admin_channel(|channel| async move {
                channel
                    .queue_delete(name.into(), lapin::options::QueueDeleteOptions::default())
                    .await
                    .map(|_| ())
            })
            .await?;
        deleted.map_err(|e| ClientError::new(format!("deleting the queue {name}: {e}")))
    }

    async fn producer(&self, spec: &ProducerSpec) -> Result<Box<dyn Producer>, ClientError> {
        let producer = RabbitProducer {
            shared: self.shared.clone(),
            config: self.producer_config(spec.mode),
            name: spec.identity.clone(),
            node: AtomicUsize::new(self.next_node()),
            link: tokio::sync::Mutex::new(LinkState::default()),
        };
        // Connect now, so that a broker that is not there shows up when the producer is opened.
        producer.link().await.map_err(ClientError::new)?;
        Ok(Box::new(producer))
    }

    async fn consumer(&self, spec: &ConsumerSpec) -> Result<Box<dyn Consumer>, ClientError> {
        let [queue] = spec.dests.as_slice() else {
            return Err(ClientError::fatal(format!(
                "a RabbitMQ consumer reads one queue, not {:?}",
                spec.dests
            )));
        };
        let config = self.consumer_config(spec.mode);
        RabbitConsumer::open(&self.shared, self.next_node(), queue, &spec.group, &config)
            .await
            .map(|c| Box::new(c) as Box<dyn Consumer>)
    }
}

/// A producer's connection and confirm-mode channel.
#[derive(Clone)]
struct Link {
    conn: Arc<Connection>,
    channel: Channel,
    generation: u64,
    node: usize,
}

#[derive(Default)]
struct LinkState {
    current: Option<Link>,
    generation: u64,
    last_failure: Option<(Instant, String)>,
}

/// One producer: one connection and channel shared by all its sends in flight, replaced after
/// a failure (on the next node, so that a dead or cut-off node is left behind).
pub struct RabbitProducer {
    shared: Arc<Shared>,
    config: ProducerConfig,
    name: String,
    /// The node to connect to next.
    node: AtomicUsize,
    link: tokio::sync::Mutex<LinkState>,
}

impl RabbitProducer {
    /// The live link, connecting if there is none. An error means nothing was sent.
    async fn link(&self) -> Result<Link, String> {
        let mut state = self.link.lock().await;
        if let Some(link) = &state.current {
            if link.conn.status().connected() && link.channel.status().connected() {
                return Ok(link.clone());
            }
            // A channel the broker closed on a live connection: leave the connection too.
            close_in_background(link.conn.clone(), "producer leaving a closed channel");
            state.current = None;
        }
        if let Some((at, error)) = &state.last_failure {
            if at.elapsed() < RECONNECT_BACKOFF {
                return Err(error.clone());
            }
        }
        let first = self.node.load(Ordering::Relaxed);
        let opened = async {
            let (conn, node) = self.shared.connect(first, &self.name, &self.config.credentials).await?;
            let channel = conn
                .create_channel()
                .await
                .map_err(|e| format!("opening a channel: {e}"))?;
            if self.config.confirms {
                channel
                    .confirm_select(ConfirmSelectOptions::default())
                    .await
                    .map_err(|e| format!("enabling publisher confirms: {e}"))?;
            }
            Ok::<_, String>((conn, channel, node))
        };
        match opened.await {
            Ok((conn, channel, node)) => {
                state.generation += 1;
                state.last_failure = None;
                let link = Link {
                    conn: Arc::new(conn),
                    channel,
                    generation: state.generation,
                    node,
                };
                state.current = Some(link.clone());
                Ok(link)
            }
            Err(e) => {
                let e = format!("could not connect: {e}");
                state.last_failure = Some((Instant::now(), e.clone()));
                self.node.store(first + 1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Drop `link` after it failed (unless a newer one replaced it) and move to the next node.
    async fn discard(&self, link: &Link, why: &str) {
        let mut state = self.link.lock().await;
        if state.current.as_ref().is_some_and(|l| l.generation == link.generation) {
            state.current = None;
            close_in_background(link.conn.clone(), "producer leaving a failed connection");
            self.node.store(link.node + 1, Ordering::Relaxed);
            self.shared.note(&format!(
                "rabbitmq producer {}: leaving node {} ({why})",
                self.name, link.node
            ));
        }
    }

    async fn publish_one(&self, m: &Outgoing) -> Outcome {
        let link = match self.link().await {
            Ok(link) => link,
            Err(e) => return Outcome::Fail(format!("not sent: {e}")),
        };
        if !link.channel.status().connected() {
            return Outcome::Fail("not sent: the channel closed before publishing".into());
        }
        let copy = format!("{}~{}", m.id, self.shared.publishes.fetch_add(1, Ordering::Relaxed));
        let mut headers = FieldTable::default();
        headers.insert(COPY_HEADER.into(), AMQPValue::LongString(copy.into()));
        if let Some(key) = &m.key {
            headers.insert(KEY_HEADER.into(), AMQPValue::LongString(key.as_str().into()));
        }
        let properties = BasicProperties::default()
            .with_message_id(m.id.as_str().into())
            .with_delivery_mode(if self.config.persistent { 2 } else { 1 })
            .with_headers(headers);
        let body = encode_body(&m.id, m.from.as_deref(), m.size);
        // Mandatory: a message no queue takes is returned (with its confirm, if any: a failed
        // publish), not silently dropped.
        let options = BasicPublishOptions {
            mandatory: self.config.mandatory,
            ..BasicPublishOptions::default()
        };
        let publish = link
            .channel
            .basic_publish("".into(), m.dest.as_str().into(), options, &body, properties);
        // From here on the frames may have reached the broker: every failure is unknown.
        let confirm = match tokio::time::timeout(WRITE_TIMEOUT, publish).await {
            Ok(Ok(confirm)) => confirm,
            Ok(Err(e)) => {
                self.discard(&link, &format!("publishing failed: {e}")).await;
                return Outcome::Info(format!("publishing failed, perhaps after it was written: {e}"));
            }
            Err(_) => {
                self.discard(&link, "writing a publish timed out").await;
                return Outcome::Info(format!("writing the publish took over {} s", WRITE_TIMEOUT.as_secs()));
            }
        };
        // Without confirms the application learns nothing more: written is all it knows.
        if !self.config.confirms {
            return Outcome::ok();
        }
        match tokio::time::timeout(self.config.confirm_timeout, confirm).await {
            Ok(Ok(Confirmation::Ack(None))) => Outcome::ok(),
            Ok(Ok(Confirmation::Ack(Some(_)))) => {
                Outcome::Fail(format!("returned as unroutable: no queue {} took it", m.dest))
            }
            Ok(Ok(Confirmation::Nack(_))) => Outcome::Fail("nacked by the broker (not stored)".into()),
            Ok(Ok(Confirmation::NotRequested)) => Outcome::Info("the channel has no publisher confirms".into()),
            Ok(Err(e)) => {
                self.discard(&link, &format!("connection lost awaiting a confirm: {e}"))
                    .await;
                Outcome::Info(format!("connection lost before the confirm: {e}"))
            }
            Err(_) => {
                self.discard(&link, "no confirm in time").await;
                Outcome::Info(format!(
                    "no publisher confirm within {:.1} s (the broker may have stored it)",
                    self.config.confirm_timeout.as_secs_f64()
                ))
            }
        }
    }
}

#[async_trait]
impl Producer for RabbitProducer {
    async fn send_one(&self, m: &Outgoing) -> Outcome {
        self.publish_one(m).await
    }

    async fn close(self: Box<Self>, timeout: Duration) {
        let link = self.link.lock().await.current.take();
        if let Some(link) = link {
            let _ = tokio::time::timeout(timeout, link.channel.wait_for_confirms()).await;
            if link.conn.status().connected() {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, link.conn.close(200, "producer done".into())).await;
            }
        }
    }
}

/// What a consumer needs to acknowledge one delivery.
#[derive(Debug, Clone, Copy)]
pub struct Tag {
    pub delivery_tag: u64,
}

/// One consumer: its own connection, channel and basic.consume. It never reconnects itself:
/// after a connection failure the workload replaces it, as it would a crashed process.
pub struct RabbitConsumer {
    conn: Arc<Connection>,
    channel: Channel,
    queue: String,
    auto_ack: bool,
    deliveries: mpsc::UnboundedReceiver<DeliveryResult>,
    /// Delivery tags received and not yet acknowledged, for acks that cover several at once.
    unacked: BTreeSet<u64>,
    /// An error that came after deliveries already handed out; reported by the next receive.
    pending_error: Option<ClientError>,
    _consumer: lapin::Consumer,
}

impl RabbitConsumer {
    async fn open(
        shared: &Shared,
        node: usize,
        queue: &str,
        group: &str,
        config: &ConsumerConfig,
    ) -> Result<RabbitConsumer, ClientError> {
        let auto_ack = config.auto_ack;
        let (conn, node) = shared
            .connect(node, &format!("consumer of {queue}"), &config.credentials)
            .await
            .map_err(ClientError::new)?;
        let subscribed = async {
            let channel = conn.create_channel().await?;
            // 0 = unlimited: no basic.qos, as an application that never calls it. RabbitMQ
            // applies a prefetch to manual-ack consumers only, and ignores it with auto-ack.
            if config.prefetch > 0 {
                channel.basic_qos(config.prefetch, BasicQosOptions::default()).await?;
            }
            let options = BasicConsumeOptions {
                no_ack: auto_ack,
                ..BasicConsumeOptions::default()
            };
            let tag = format!("ackcheck-{group}");
            let consumer = channel
                .basic_consume(queue.into(), tag.as_str().into(), options, FieldTable::default())
                .await?;
            Ok::<_, lapin::Error>((channel, consumer))
        };
        let (channel, consumer) = match subscribed.await {
            Ok(ok) => ok,
            Err(e) => {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.close(200, "failed".into())).await;
                return Err(ClientError::new(format!("consuming {queue} on node {node}: {e}")));
            }
        };
        // The delegate runs in order on lapin's side; it only hands each delivery over.
        let (tx, rx) = mpsc::unbounded_channel();
        consumer.set_delegate(move |delivery: DeliveryResult| {
            let _ = tx.send(delivery);
            std::future::ready(())
        });
        Ok(RabbitConsumer {
            conn: Arc::new(conn),
            channel,
            queue: queue.to_string(),
            auto_ack,
            deliveries: rx,
            unacked: BTreeSet::new(),
            pending_error: None,
            _consumer: consumer,
        })
    }

    /// One delivery as the history sees it: the logical id, the stored copy's position.
    fn received(&mut self, d: Delivery) -> Received {
        let headers = d.properties.headers().as_ref();
        let header = |name: &str| match headers.and_then(|h| h.inner().get(name)) {
            Some(AMQPValue::LongString(s)) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
            _ => None,
        };
        let (body_id, from) = decode_body(&d.data).unzip();
        let id = d
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.to_string())
            .or(body_id)
            .unwrap_or_else(|| format!("unknown-{}", d.delivery_tag));
        // A message published by anyone else has no copy header: its id is all there is.
        let copy = header(COPY_HEADER).unwrap_or_else(|| id.clone());
        if !self.auto_ack {
            self.unacked.insert(d.delivery_tag);
        }
        let tag = Tag {
            delivery_tag: d.delivery_tag,
        };
        Received {
            pos: format!("{}@{copy}", self.queue),
            id,
            key: header(KEY_HEADER),
            dest: self.queue.clone(),
            from: from.flatten(),
            // This copy was delivered before, to a consumer that did not ack it.
            redelivered: d.redelivered,
            handle: Box::new(tag),
        }
    }

    /// Take one delivery result: Some(delivery), or None after remembering what went wrong.
    fn accept(&mut self, result: Option<DeliveryResult>) -> Option<Delivery> {
        let error = match result {
            Some(Ok(Some(delivery))) => return Some(delivery),
            Some(Ok(None)) => format!("the broker cancelled the consumer of {}", self.queue),
            Some(Err(e)) => format!("the connection of the consumer of {} failed: {e}", self.queue),
            None => format!("the consumer of {} stopped", self.queue),
        };
        self.pending_error.get_or_insert(ClientError::fatal(error));
        None
    }
}

/// A consumer dropped without `close` (a crash) still closes its connection, so that the broker
/// hands what it held to the other consumers, as it would after a process crash.
impl Drop for RabbitConsumer {
    fn drop(&mut self) {
        close_in_background(self.conn.clone(), "consumer dropped");
    }
}

impl Drop for RabbitProducer {
    fn drop(&mut self) {
        if let Some(link) = self.link.get_mut().current.take() {
            close_in_background(link.conn, "producer dropped");
        }
    }
}

fn tag(handle: &dyn Any) -> Option<Tag> {
    handle.downcast_ref::<Tag>().copied()
}

#[async_trait]
impl Consumer for RabbitConsumer {
    async fn receive(&mut self, max: usize, wait: Duration) -> Result<Vec<Received>, ClientError> {
        if let Some(e) = self.pending_error.take() {
            return Err(e);
        }
        let mut batch = Vec::new();
        let first = match tokio::time::timeout(wait, self.deliveries.recv()).await {
            Err(_) => return Ok(batch),
            Ok(result) => self.accept(result),
        };
        let Some(first) = first else {
            return Err(self
                .pending_error
                .take()
                .unwrap_or_else(|| ClientError::fatal("consumer failed")));
        };
        batch.push(self.received(first));
        while batch.len() < max.max(1) {
            let next = match self.deliveries.try_recv() {
                Ok(result) => self.accept(Some(result)),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => self.accept(None),
            };
            match next {
                Some(delivery) => batch.push(self.received(delivery)),
                None => break,
            }
        }
        Ok(batch)
    }

    /// Acknowledge: one ack that covers every tag up to the batch's highest when nothing older
    /// is still outstanding (the usual case), else one ack per message. Automatic-ack
    /// consumers have nothing to acknowledge.
    async fn commit(&mut self, messages: &[Received]) -> Result<(), ClientError> {
        if self.auto_ack || messages.is_empty() {
            return Ok(());
        }
        let tags: Vec<u64> = messages
            .iter()
            .filter_map(|m| tag(&*m.handle))
            .map(|t| t.delivery_tag)
            .filter(|t| self.unacked.contains(t))
            .collect();
        let Some(&highest) = tags.iter().max() else {
            return Ok(());
        };
        let covered = self.unacked.range(..=highest).count() == tags.len();
        let acked = if covered {
            let options = BasicAckOptions { multiple: true };
            self.channel.basic_ack(highest, options).await
        } else {
            let mut result = Ok(());
            for &t in &tags {
                result = self.channel.basic_ack(t, BasicAckOptions::default()).await;
                if result.is_err() {
                    break;
                }
            }
            result
        };
        for t in &tags {
            self.unacked.remove(t);
        }
        acked.map_err(|e| {
            ClientError::fatal(format!(
                "acknowledging {} message(s) of {} failed: {e}",
                tags.len(),
                self.queue
            ))
        })
    }

    /// Close the channel (handing unacknowledged messages back) and the connection. A failed
    /// connection is only dropped: waiting for a close handshake on it could take long enough
    /// to starve the queue of consumers.
    async fn close(self: Box<Self>) {
        if !self.conn.status().connected() {
            return;
        }
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.channel.close(200, "consumer done".into())).await;
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.conn.close(200, "consumer done".into())).await;
    }
}

/// The copy id a `pos` names (the part after the queue), for tests and tools.
pub fn copy_of(pos: &str) -> Option<&str> {
    pos.split_once('@').map(|(_, copy)| copy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_the_heartbeat_and_positions_name_the_copy() {
        assert_eq!(
            url("127.0.0.1:19100"),
            "amqp://guest:guest@127.0.0.1:19100/%2f?heartbeat=10"
        );
        assert_eq!(copy_of("queue-1@p0-3~17"), Some("p0-3~17"));
        assert_eq!(copy_of("no position"), None);
    }

    #[test]
    fn credentials_go_into_the_uri_as_they_are() {
        let credentials = Credentials {
            username: "orders".into(),
            password: "p@ss:w/rd%".into(),
        };
        let uri = uri("127.0.0.1:19100", &credentials).expect("a URI");
        assert_eq!(uri.authority.userinfo.username, "orders");
        assert_eq!(uri.authority.userinfo.password, "p@ss:w/rd%");
        assert_eq!(uri.authority.port, 19100);
        assert_eq!(uri.vhost, "/");
        assert_eq!(uri.query.heartbeat, Some(HEARTBEAT_SECONDS));
    }
}
