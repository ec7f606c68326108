//! Kafka consumer group members: receive batches, commit the position after them, rewind.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::TopicPartitionList;

use super::{blocking, Ctx};
use crate::broker::{decode_body, ClientError, Consumer, LogSink, Received};

/// How long a member waits for a synchronous offset commit. librdkafka's commit has no deadline
/// of its own: with the group coordinator's node dead it waits until the node is back, the member
/// stops polling meanwhile, and a run's deliveries stood still for 50 s after one kill (seed 7 of
/// kafka-at-least-once). Bounded, the member reads on; the commit still completes later or not,
/// which the mode's policy already allows (a commit after processing that does not happen means
/// a redelivery, a commit before processing that times out leaves the batch unprocessed).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a received Kafka message sits, to commit the position after it.
struct KafkaPos {
    topic: String,
    partition: i32,
    offset: i64,
}

/// For each (topic, partition) of `messages`: the lowest and highest offset.
pub(super) fn offset_ranges(messages: &[Received]) -> Vec<(String, i32, i64, i64)> {
    let mut ranges: Vec<(String, i32, i64, i64)> = Vec::new();
    for m in messages {
        let Some(p) = m.handle.downcast_ref::<KafkaPos>() else {
            continue;
        };
        match ranges.iter_mut().find(|r| r.0 == p.topic && r.1 == p.partition) {
            Some(r) => {
                r.2 = r.2.min(p.offset);
                r.3 = r.3.max(p.offset);
            }
            None => ranges.push((p.topic.clone(), p.partition, p.offset, p.offset)),
        }
    }
    ranges
}

/// The positions to commit after `messages`: the next offset of every partition.
pub(super) fn next_offsets(messages: &[Received]) -> Result<TopicPartitionList, ClientError> {
    let mut tpl = TopicPartitionList::new();
    for (topic, partition, _, last) in offset_ranges(messages) {
        tpl.add_partition_offset(&topic, partition, rdkafka::Offset::Offset(last + 1))
            .map_err(|e| ClientError::new(format!("building the offsets to commit: {e}")))?;
    }
    Ok(tpl)
}

/// Who commits a member's offsets, from its effective properties (librdkafka's defaults for
/// keys not set: both `true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OffsetCommits {
    /// `enable.auto.commit=false` (ackcheck's preset): the workload commits explicitly, after
    /// or before processing as its mode says.
    Explicit,
    /// `enable.auto.commit=true`, `enable.auto.offset.store=false`: the application stores the
    /// position after processing (what the workload's commit does), the client commits what is
    /// stored every `auto.commit.interval.ms`.
    StoreThenAuto,
    /// `enable.auto.commit=true` and `enable.auto.offset.store=true` (librdkafka's defaults): the
    /// client stores each message's position when it hands it out and commits it in the
    /// background, processed or not; the workload's commits do nothing, as in an application
    /// that leaves offsets to the client.
    Auto,
}

impl OffsetCommits {
    pub(super) fn of(props: &crate::broker::Props) -> OffsetCommits {
        match (
            props.is_true("enable.auto.commit").unwrap_or(true),
            props.is_true("enable.auto.offset.store").unwrap_or(true),
        ) {
            (false, _) => OffsetCommits::Explicit,
            (true, false) => OffsetCommits::StoreThenAuto,
            (true, true) => OffsetCommits::Auto,
        }
    }
}

/// A consumer group member.
pub struct KafkaConsumer {
    pub(super) consumer: Option<Arc<StreamConsumer<Ctx>>>,
    name: String,
    log: LogSink,
    last_error: Option<(String, std::time::Instant)>,
    /// Commit synchronously (bounded by [`COMMIT_TIMEOUT`]) instead of in the background.
    wait_for_commits: bool,
    commits: OffsetCommits,
}

impl KafkaConsumer {
    pub(super) fn new(
        consumer: StreamConsumer<Ctx>,
        name: String,
        log: LogSink,
        wait_for_commits: bool,
        commits: OffsetCommits,
    ) -> KafkaConsumer {
        KafkaConsumer {
            consumer: Some(Arc::new(consumer)),
            name,
            log,
            last_error: None,
            wait_for_commits,
            commits,
        }
    }

    fn inner(&self) -> Result<&Arc<StreamConsumer<Ctx>>, ClientError> {
        self.consumer
            .as_ref()
            .ok_or_else(|| ClientError::fatal("the consumer has left its group"))
    }

    fn convert(m: &BorrowedMessage<'_>) -> Option<Received> {
        let (id, from) = decode_body(m.payload()?)?;
        let key = m.key().and_then(|k| std::str::from_utf8(k).ok()).map(str::to_string);
        let pos = format!("{}@{}", m.partition(), m.offset());
        let handle = KafkaPos {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
        };
        Some(Received {
            id,
            key,
            dest: m.topic().to_string(),
            pos,
            from,
            redelivered: false,
            handle: Box::new(handle),
        })
    }

    pub(super) async fn receive(&mut self, max: usize, wait: Duration) -> Result<Vec<Received>, ClientError> {
        let consumer = self.inner()?.clone();
        let deadline = tokio::time::Instant::now() + wait;
        let mut out = Vec::new();
        // Errors come through the same queue as messages (a broker went away, all brokers are
        // down): they are transient, librdkafka reconnects by itself; note them and read on.
        while out.is_empty() {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Err(_) => return Ok(out),
                Ok(Ok(m)) => out.extend(Self::convert(&m)),
                Ok(Err(KafkaError::MessageConsumptionFatal(code))) => {
                    return Err(ClientError::fatal(format!("the consumer failed: {code}")));
                }
                Ok(Err(e)) => self.note_error(&e),
            }
        }
        // Take what is already fetched without waiting (a zero timeout still polls once).
        while out.len() < max {
            match tokio::time::timeout(Duration::ZERO, consumer.recv()).await {
                Ok(Ok(m)) => out.extend(Self::convert(&m)),
                Ok(Err(e)) => self.note_error(&e),
                Err(_) => break,
            }
        }
        Ok(out)
    }

    /// Log a consumer error, but the same one at most every few seconds.
    fn note_error(&mut self, e: &KafkaError) {
        let text = e.to_string();
        let now = std::time::Instant::now();
        let repeated = self
            .last_error
            .as_ref()
            .is_some_and(|(t, at)| *t == text && now.duration_since(*at) < Duration::from_secs(5));
        if !repeated {
            (self.log)(&format!("{} receiving: {text}", self.name));
            self.last_error = Some((text, now));
        }
    }

    pub(super) async fn commit(&mut self, messages: &[Received]) -> Result<(), ClientError> {
        let tpl = next_offsets(messages)?;
        if tpl.count() == 0 {
            return Ok(());
        }
        let consumer = self.inner()?.clone();
        match self.commits {
            OffsetCommits::Explicit => {}
            OffsetCommits::Auto => return Ok(()),
            OffsetCommits::StoreThenAuto => {
                return consumer
                    .store_offsets(&tpl)
                    .map_err(|e| ClientError::new(format!("storing offsets failed: {e}")))
            }
        }
        if !self.wait_for_commits {
            // Commit after processing: enqueued, sent in order, never waited for. A member that
            // waited for each commit delivered one batch per commit round trip, and nothing while
            // the group's coordinator moved; one whose commit is lost redelivers (allowed).
            return consumer
                .commit(&tpl, CommitMode::Async)
                .map_err(|e| ClientError::new(format!("committing offsets failed: {e}")));
        }
        let commit = blocking(move || consumer.commit(&tpl, CommitMode::Sync));
        match tokio::time::timeout(COMMIT_TIMEOUT, commit).await {
            Ok(done) => done.map_err(|e| ClientError::new(format!("committing offsets failed: {e}"))),
            Err(_) => Err(ClientError::new(format!(
                "committing offsets did not finish within {} s (it goes on in the background)",
                COMMIT_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Receive the messages of every partition of `inputs` again, from the first of them.
    pub(super) async fn rewind(&mut self, inputs: &[Received]) -> Result<(), ClientError> {
        let consumer = self.inner()?.clone();
        let ranges = offset_ranges(inputs);
        blocking(move || {
            for (topic, partition, first, _) in ranges {
                consumer
                    .seek(
                        &topic,
                        partition,
                        rdkafka::Offset::Offset(first),
                        Duration::from_secs(5),
                    )
                    .map_err(|e| ClientError::new(format!("rewinding {topic}/{partition} to {first} failed: {e}")))?;
            }
            Ok(())
        })
        .await
    }

    pub(super) fn assigned(&self) -> Option<usize> {
        let consumer = self.consumer.as_ref()?;
        Some(consumer.assignment().map_or(0, |tpl| tpl.count()))
    }

    /// The partitions held now, when the assignment changed since the last call.
    pub(super) fn rebalanced(&mut self) -> Option<Vec<(String, u32)>> {
        let consumer = self.consumer.as_ref()?;
        if !consumer
            .context()
            .rebalanced
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            return None;
        }
        let tpl = consumer.assignment().ok()?;
        let held = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition() as u32))
            .collect();
        Some(held)
    }

    pub(super) async fn leave(&mut self) {
        if let Some(c) = self.consumer.take() {
            blocking(move || drop(c)).await;
        }
    }
}

#[async_trait]
impl Consumer for KafkaConsumer {
    async fn receive(&mut self, max: usize, wait: Duration) -> Result<Vec<Received>, ClientError> {
        KafkaConsumer::receive(self, max, wait).await
    }

    async fn commit(&mut self, messages: &[Received]) -> Result<(), ClientError> {
        KafkaConsumer::commit(self, messages).await
    }

    fn assigned(&self) -> Option<usize> {
        KafkaConsumer::assigned(self)
    }

    fn rebalanced(&mut self) -> Option<Vec<(String, u32)>> {
        KafkaConsumer::rebalanced(self)
    }

    async fn close(mut self: Box<Self>) {
        self.leave().await;
    }
}
