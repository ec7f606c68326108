//! The Kafka adapter (rdkafka): the three delivery modes and honest outcome mapping.
//!
//! - at-most-once: `acks=0`, no retries; consumers commit before processing (the workload's order).
//! - at-least-once: `acks=all`, unlimited retries, `enable.idempotence=false`; a request that
//!   times out is retried by librdkafka and may be appended twice.
//! - exactly-once: idempotent transactional producer (`transactional.id` = run + identity, so a
//!   replacement fences the instance it replaces); `read_committed` consumers; a processor's
//!   offsets go into its transaction (`send_offsets_to_transaction`).
//!
//! Outcomes: a failed produce is `Fail` only when librdkafka reports the message as
//! NOT_PERSISTED (never sent, or rejected without being written); otherwise `Info`. A
//! transaction is `Ok` when `commit_transaction` succeeded, `Fail` when it was aborted, fenced,
//! or never committed, and `Info` when the commit's result is unknown. Producers are in
//! [`producer`], consumers in [`consumer`], transactions and the processor in [`txn`].

mod consumer;
mod producer;
mod txn;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::bindings::{rd_kafka_message_status, rd_kafka_msg_status_t};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, TopicPartitionList};
use tokio::sync::oneshot;

use crate::broker::BrokerKind;
use crate::broker::{
    Broker, ClientError, ClientSettings, Completion, Consumer, ConsumerSpec, LogSink, Outcome, Outgoing, Processor,
    ProcessorApp, ProcessorAppSpec, Producer, ProducerSpec,
};
use crate::history::Guarantee;
use consumer::{next_offsets, KafkaConsumer, OffsetCommits};
use producer::{delivered, enqueue, KafkaProducer};
use txn::Txn;

/// Run a blocking rdkafka call off the async threads (commits, transactions, drops).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Callbacks of every client: warnings and errors go to the run log; delivery reports of
/// producers resolve the sender's oneshot with the honest outcome.
pub(crate) struct Ctx {
    name: String,
    log: LogSink,
    /// A consumer's assignment changed since the workload last asked (`Consumer::rebalanced`).
    rebalanced: std::sync::atomic::AtomicBool,
    /// The last error librdkafka reported for this client (but "all brokers down", which only
    /// follows another): a request that only timed out can then say why (a failed SASL
    /// authentication, a TLS handshake refused).
    last_error: std::sync::Mutex<Option<String>>,
}

impl Ctx {
    pub(crate) fn new(name: String, log: LogSink) -> Ctx {
        Ctx {
            name,
            log,
            rebalanced: std::sync::atomic::AtomicBool::new(false),
            last_error: std::sync::Mutex::new(None),
        }
    }

    /// " (the client's last error: …)", or nothing.
    pub(crate) fn last_error_note(&self) -> String {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or_else(String::new, |e| format!(" (the client's last error: {e})"))
    }
}

impl ClientContext for Ctx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        if (level as i32) <= RDKafkaLogLevel::Warning as i32 || std::env::var_os("ACKCHECK_KAFKA_DEBUG").is_some() {
            (self.log)(&format!("{} [{fac}] {message}", self.name));
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        (self.log)(&format!("{} error: {error}: {reason}", self.name));
        // "All brokers are down" follows the error that brought them down: keep that one.
        if !matches!(error, KafkaError::Global(RDKafkaErrorCode::AllBrokersDown)) {
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("{error}: {reason}"));
        }
    }
}

impl ConsumerContext for Ctx {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if !matches!(rebalance, Rebalance::Error(_)) {
            self.rebalanced.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let what = match rebalance {
            Rebalance::Assign(tpl) => format!("assigned {}", describe(tpl)),
            Rebalance::Revoke(tpl) => format!("revoked {}", describe(tpl)),
            Rebalance::Error(e) => format!("rebalance error: {e}"),
        };
        (self.log)(&format!("{} {what}", self.name));
    }
}

/// How long each metadata request of the stall report and the held-back check may take.
const WAIT: Duration = Duration::from_secs(5);

/// [`Broker::stall_report`] for Kafka (blocking): for each partition of the run's topics, its
/// end for `read_committed` readers (the last stable offset) against its end (the high
/// watermark): a gap that stays after the producers stopped is a transaction left open, which
/// holds back every exactly-once reader of that partition; then each of the run's consumer
/// groups with its committed offsets, or why they cannot be read (a group whose offsets are
/// part of an open transaction answers UNSTABLE_OFFSET_COMMIT until it ends).
fn stall_lines(
    uncommitted: &ClientConfig,
    committed: &ClientConfig,
    dests: &[(String, u32)],
    run: &str,
) -> Vec<String> {
    let (end, stable): (BaseConsumer, BaseConsumer) = match (uncommitted.create(), committed.create()) {
        (Ok(end), Ok(stable)) => (end, stable),
        (Err(e), _) | (_, Err(e)) => return vec![format!("no Kafka client for the stall report: {e}")],
    };
    let mut lines = Vec::new();
    let mut every_partition = TopicPartitionList::new();
    for (topic, partitions) in dests {
        let mut ends = Vec::new();
        for partition in 0..*partitions as i32 {
            every_partition.add_partition(topic, partition);
            ends.push(match partition_ends(&end, &stable, topic, partition) {
                Ok((high, last_stable)) if last_stable < high => format!(
                    "{partition}: {last_stable} of {high} ({} held back by an open transaction)",
                    high - last_stable
                ),
                Ok((high, _)) => format!("{partition}: {high}"),
                Err(e) => format!("{partition}: unreadable ({e})"),
            });
        }
        lines.push(format!(
            "{topic}: readable to read_committed consumers up to {}",
            ends.join(", ")
        ));
    }
    let prefix = format!("{run}-");
    match stable.fetch_group_list(None, WAIT) {
        Ok(list) => {
            for group in list.groups().iter().filter(|g| g.name().starts_with(&prefix)) {
                let mut config = committed.clone();
                config.set("group.id", group.name());
                let offsets = config
                    .create::<BaseConsumer>()
                    .and_then(|c| c.committed_offsets(every_partition.clone(), WAIT));
                let text = match offsets {
                    Ok(offsets) => offsets
                        .elements()
                        .iter()
                        .filter_map(|e| match e.offset() {
                            rdkafka::Offset::Offset(at) => Some(format!("{}/{} {at}", e.topic(), e.partition())),
                            _ => None,
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                    Err(e) => format!("unreadable ({e})"),
                };
                lines.push(format!(
                    "group {} ({}, {} member(s)) committed: {}",
                    group.name(),
                    group.state(),
                    group.members().len(),
                    if text.is_empty() { "nothing" } else { &text }
                ));
            }
        }
        Err(e) => lines.push(format!("the consumer groups could not be listed: {e}")),
    }
    lines
}

/// A partition's end (the high watermark, read by `end`, a `read_uncommitted` client) and its
/// last stable offset (read by `stable`, a `read_committed` one).
fn partition_ends(
    end: &BaseConsumer,
    stable: &BaseConsumer,
    topic: &str,
    partition: i32,
) -> Result<(i64, i64), KafkaError> {
    let (_, high) = end.fetch_watermarks(topic, partition, WAIT)?;
    let (_, last_stable) = stable.fetch_watermarks(topic, partition, WAIT)?;
    Ok((high, last_stable))
}

/// [`Broker::held_back`] for Kafka (blocking): the partitions of the run's topics whose last
/// stable offset is behind their end, i.e. records that `read_committed` readers cannot have
/// yet because a transaction before them is still open; `None` when there are none or the
/// ends cannot be read.
fn held_back_by_transactions(
    uncommitted: &ClientConfig,
    committed: &ClientConfig,
    dests: &[(String, u32)],
) -> Option<String> {
    let (end, stable): (BaseConsumer, BaseConsumer) = (uncommitted.create().ok()?, committed.create().ok()?);
    let mut held = Vec::new();
    for (topic, partitions) in dests {
        for partition in 0..*partitions as i32 {
            if let Ok((high, last_stable)) = partition_ends(&end, &stable, topic, partition) {
                if last_stable < high {
                    held.push(format!(
                        "{topic}/{partition} {} past offset {last_stable}",
                        high - last_stable
                    ));
                }
            }
        }
    }
    (!held.is_empty()).then(|| {
        format!(
            "records behind an open transaction, which read_committed readers get once it ends (committed, or aborted at its timeout): {}",
            held.join(", ")
        )
    })
}

fn describe(tpl: &TopicPartitionList) -> String {
    let parts: Vec<String> = tpl
        .elements()
        .iter()
        .map(|e| format!("{}/{}", e.topic(), e.partition()))
        .collect();
    format!("[{}]", parts.join(" "))
}

impl ProducerContext for Ctx {
    type DeliveryOpaque = Box<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, done: Self::DeliveryOpaque) {
        let outcome = match result {
            Ok(message) => {
                use rdkafka::Message as _;
                // With acks=0 the broker answers nothing: the offset is unknown (negative).
                match message.offset() {
                    offset if offset >= 0 => Outcome::ok_at(format!("{}@{offset}", message.partition())),
                    _ => Outcome::ok(),
                }
            }
            Err((e, message)) => {
                // librdkafka's own judgement of whether the broker may have written it.
                let status = unsafe { rd_kafka_message_status(message.ptr()) };
                if status == rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_NOT_PERSISTED {
                    Outcome::Fail(format!("not written: {e}"))
                } else {
                    Outcome::Info(format!("unknown: {e}"))
                }
            }
        };
        match *done {
            Pending::Awaited(tx) => {
                let _ = tx.send(outcome);
            }
            Pending::Detached(message, completion) => completion(outcome, message),
        }
    }
}

/// Who waits for a message's delivery report: a task (`send`), or a callback (`send_detached`).
pub(crate) enum Pending {
    Awaited(oneshot::Sender<Outcome>),
    Detached(Outgoing, Completion),
}

type Tp = ThreadedProducer<Ctx>;

/// Kafka through the cluster's proxies.
pub struct KafkaBroker {
    bootstrap: String,
    /// Replicas of every topic the run creates.
    replicas: i32,
    /// Topic configurations from the campaign's `[dest]`, set on every topic the run creates.
    topic_configs: Vec<(String, String)>,
    run: String,
    /// The effective client properties (preset and the campaign's own).
    client: ClientSettings,
    log: LogSink,
}

impl KafkaBroker {
    pub fn new(
        bootstrap: String,
        nodes: usize,
        run: &str,
        client: ClientSettings,
        dest: &serde_json::Value,
        log: LogSink,
    ) -> KafkaBroker {
        // The effective `[dest]` (`super::props::dest_settings`): a fixed replication factor or
        // one per node, and topic configurations as strings.
        let replicas = dest["replication_factor"]
            .as_i64()
            .map_or(nodes.min(3) as i32, |n| n as i32);
        let topic_configs = dest["topic_configs"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        KafkaBroker {
            bootstrap,
            replicas,
            topic_configs,
            run: run.to_string(),
            client,
            log,
        }
    }

    fn ctx(&self, name: String) -> Ctx {
        Ctx::new(name, self.log.clone())
    }

    fn base_config(&self) -> ClientConfig {
        let mut c = super::props::base_config(&self.bootstrap);
        for (key, value) in super::props::connection_props(&self.client) {
            c.set(key, value);
        }
        // librdkafka's own debug contexts (e.g. `cgrp,eos`) into run.log, for troubleshooting.
        if let Ok(debug) = std::env::var("ACKCHECK_KAFKA_DEBUG") {
            // The crate sets librdkafka's log level from the `log` crate's, which ackcheck
            // leaves off: without this the debug lines never reach the context.
            c.set("debug", debug).set_log_level(RDKafkaLogLevel::Debug);
        }
        c
    }

    /// Two client configurations for reading partition ends: `read_uncommitted` (the high
    /// watermark) and `read_committed` (the last stable offset).
    fn both_isolations(&self) -> (ClientConfig, ClientConfig) {
        let config = |isolation: &str| {
            let mut c = self.base_config();
            c.set("isolation.level", isolation);
            c
        };
        (config("read_uncommitted"), config("read_committed"))
    }

    /// The run's settings, then the effective producer properties (the mode's preset and the
    /// campaign's `[client.producer]`), then the transactional id of a transactional producer.
    fn producer_config(&self, spec: &ProducerSpec) -> ClientConfig {
        let mut c = self.base_config();
        for (key, value) in self.client.producer.iter() {
            c.set(key, value);
        }
        if spec.mode == Guarantee::ExactlyOnce {
            c.set("transactional.id", transactional_id(&self.run, &spec.identity));
        }
        c
    }

    /// The run's settings, the group and isolation the workload chooses, then the effective
    /// consumer properties.
    fn consumer_config(&self, spec: &ConsumerSpec) -> ClientConfig {
        let mut c = self.base_config();
        c.set("group.id", format!("{}-{}", self.run, spec.group)).set(
            "isolation.level",
            if spec.committed_only {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        );
        for (key, value) in self.client.consumer.iter() {
            match (key, value) {
                ("group.instance.id", super::props::STATIC_MEMBER) => {
                    c.set(key, format!("{}-{}-{}", self.run, spec.group, spec.member))
                }
                _ => c.set(key, value),
            };
        }
        c
    }

    fn open_consumer(&self, spec: &ConsumerSpec) -> Result<KafkaConsumer, ClientError> {
        let name = format!("consumer[{}]", spec.group);
        let ctx = self.ctx(name.clone());
        let consumer: StreamConsumer<Ctx> = self
            .consumer_config(spec)
            .create_with_context(ctx)
            .map_err(|e| ClientError::fatal(format!("creating a Kafka consumer failed: {e}")))?;
        let dests: Vec<&str> = spec.dests.iter().map(String::as_str).collect();
        consumer
            .subscribe(&dests)
            .map_err(|e| ClientError::fatal(format!("subscribing to {dests:?} failed: {e}")))?;
        // Only a commit *before* processing must be known to have happened before going on
        // (at-most-once); a commit after processing may complete in the background.
        let wait_for_commits = spec.mode == Guarantee::AtMostOnce;
        Ok(KafkaConsumer::new(
            consumer,
            name,
            self.log.clone(),
            wait_for_commits,
            OffsetCommits::of(&self.client.consumer),
        ))
    }

    /// Why clients cannot reach the brokers, if they cannot: an admin client's requests only
    /// time out when, say, its SASL login is refused, and it never polls the events that say
    /// so. A metadata request from a consumer that is then polled surfaces librdkafka's own
    /// error (" (the client's last error: …)"), or nothing when the brokers answer.
    async fn connection_trouble(&self) -> String {
        let Ok(client) = self
            .base_config()
            .create_with_context::<Ctx, BaseConsumer<Ctx>>(self.ctx("connection check".into()))
        else {
            return String::new();
        };
        blocking(move || {
            if client.fetch_metadata(None, Duration::from_secs(5)).is_ok() {
                return String::new();
            }
            for _ in 0..5 {
                let _ = client.poll(Duration::from_millis(100));
            }
            client.context().last_error_note()
        })
        .await
    }

    /// Wait until every partition of `topic` has a leader (a fresh topic is not usable at once).
    async fn wait_for_leaders(&self, topic: &str, partitions: u32) -> Result<(), ClientError> {
        let client: BaseConsumer = self
            .base_config()
            .create()
            .map_err(|e| ClientError::fatal(e.to_string()))?;
        let topic = topic.to_string();
        blocking(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                let ready = client
                    .fetch_metadata(Some(&topic), Duration::from_secs(5))
                    .ok()
                    .is_some_and(|md| {
                        md.topics().iter().any(|t| {
                            t.name() == topic
                                && t.error().is_none()
                                && t.partitions().len() == partitions as usize
                                && t.partitions().iter().all(|p| p.leader() >= 0)
                        })
                    });
                if ready {
                    return Ok(());
                }
                if std::time::Instant::now() >= deadline {
                    return Err(ClientError::new(format!(
                        "topic {topic} has no leader for every partition after 60 s"
                    )));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
        .await
    }
}

#[async_trait]
impl Broker for KafkaBroker {
    fn kind(&self) -> BrokerKind {
        super::KIND
    }

    /// Kafka Streams ([`super::streams`]), through the same bootstrap servers (the proxies) as
    /// ackcheck's own clients.
    fn processor_app(&self, spec: &ProcessorAppSpec) -> Result<Arc<dyn ProcessorApp>, ClientError> {
        if !super::streams::APPS.contains(&spec.name.as_str()) {
            return Err(ClientError::fatal(format!(
                "kafka has no processor application \"{}\"; it offers {}",
                spec.name,
                super::streams::APPS.join(", ")
            )));
        }
        let app = super::streams::StreamsApp::new(spec, &self.bootstrap, &self.run)
            .map_err(|e| ClientError::fatal(format!("preparing Kafka Streams failed: {e}")))?;
        Ok(Arc::new(app))
    }

    async fn create_dest(&self, name: &str, partitions: u32) -> Result<(), ClientError> {
        let admin: AdminClient<DefaultClientContext> = self
            .base_config()
            .create()
            .map_err(|e| ClientError::fatal(format!("creating a Kafka admin client: {e}")))?;
        let mut topic = NewTopic::new(name, partitions as i32, TopicReplication::Fixed(self.replicas));
        for (key, value) in &self.topic_configs {
            topic = topic.set(key, value);
        }
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = match admin.create_topics(&[topic], &options).await {
            Ok(results) => results,
            Err(e) => {
                let why = self.connection_trouble().await;
                return Err(ClientError::new(format!("creating topic {name} failed: {e}{why}")));
            }
        };
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(ClientError::new(format!("creating topic {name} failed: {code}"))),
            }
        }
        self.wait_for_leaders(name, partitions).await
    }

    async fn delete_dest(&self, name: &str) -> Result<(), ClientError> {
        let admin: AdminClient<DefaultClientContext> = self
            .base_config()
            .create()
            .map_err(|e| ClientError::fatal(format!("creating a Kafka admin client: {e}")))?;
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = admin
            .delete_topics(&[name], &options)
            .await
            .map_err(|e| ClientError::new(format!("deleting topic {name} failed: {e}")))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((_, code)) => return Err(ClientError::new(format!("deleting topic {name} failed: {code}"))),
            }
        }
        Ok(())
    }

    async fn stall_report(&self, dests: &[(String, u32)]) -> Vec<String> {
        let (uncommitted, committed) = self.both_isolations();
        let (dests, run) = (dests.to_vec(), self.run.clone());
        blocking(move || stall_lines(&uncommitted, &committed, &dests, &run)).await
    }

    async fn held_back(&self, dests: &[(String, u32)]) -> Option<String> {
        let (uncommitted, committed) = self.both_isolations();
        let dests = dests.to_vec();
        blocking(move || held_back_by_transactions(&uncommitted, &committed, &dests)).await
    }

    async fn producer(&self, spec: &ProducerSpec) -> Result<Box<dyn Producer>, ClientError> {
        let config = self.producer_config(spec);
        let name = format!("producer[{}]", spec.identity);
        if spec.mode == Guarantee::ExactlyOnce {
            let mut txn = Txn::new(config, self.ctx(name));
            txn.ensure().await.map_err(ClientError::new)?;
            return Ok(Box::new(KafkaProducer {
                plain: None,
                txn: Some(tokio::sync::Mutex::new(txn)),
            }));
        }
        let producer: Tp = config
            .create_with_context(self.ctx(name))
            .map_err(|e| ClientError::fatal(format!("creating a Kafka producer failed: {e}")))?;
        Ok(Box::new(KafkaProducer {
            plain: Some(Arc::new(producer)),
            txn: None,
        }))
    }

    async fn consumer(&self, spec: &ConsumerSpec) -> Result<Box<dyn Consumer>, ClientError> {
        Ok(Box::new(self.open_consumer(spec)?))
    }

    async fn processor(
        &self,
        consumer: &ConsumerSpec,
        producer: &ProducerSpec,
    ) -> Result<Box<dyn Processor>, ClientError> {
        if producer.mode != Guarantee::ExactlyOnce || !consumer.committed_only {
            return Err(ClientError::fatal(
                "a Kafka processor needs exactly-once: a transactional producer and a read_committed consumer",
            ));
        }
        let mut txn = Txn::new(
            self.producer_config(producer),
            self.ctx(format!("processor[{}]", producer.identity)),
        );
        // Initializing the transactional id first fences (and aborts the transaction of) any
        // earlier instance with the same identity before this one reads anything.
        txn.ensure().await.map_err(ClientError::new)?;
        let input = self.open_consumer(consumer)?;
        Ok(Box::new(txn::KafkaProcessor::new(input, txn)))
    }
}

/// The `transactional.id` of the producer or processor `identity` in run `run`: unique to the
/// run, stable across the crashes of one identity (a replacement fences its predecessor).
pub fn transactional_id(run: &str, identity: &str) -> String {
    format!("{run}-{identity}")
}
