//! Kafka transactions: the transactional producer's life cycle and the read-process-write
//! processor whose consumer offsets are committed inside its transactions.
//!
//! Error handling follows librdkafka's classification: an abortable error aborts the
//! transaction (`Fail`); a retriable one retries the same call a few times; a fatal one makes
//! the producer unusable, so it is dropped and re-created with the same `transactional.id`,
//! whose initialization fences the old instance and completes or aborts what it left open.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::consumer::{Consumer as _, ConsumerGroupMetadata};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::Producer as _;
use rdkafka::{ClientConfig, TopicPartitionList};
use tokio::sync::oneshot;

use super::{blocking, delivered, enqueue, next_offsets, Ctx, KafkaConsumer, Tp};
use crate::broker::{ClientError, LogSink, Outcome, Outgoing, Processor, Received};

const INIT_TIMEOUT: Duration = Duration::from_secs(30);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts of a retriable transactional call before its result is called unknown.
const ATTEMPTS: usize = 3;
/// How much longer than its own timeout a transactional call may take before ackcheck stops
/// waiting for it. librdkafka 2.12's `send_offsets_to_transaction` ignores its timeout and can
/// wait for ever for a group coordinator that was killed (confluentinc/librdkafka#5456, #5511):
/// a Kafka 3-node exactly-once run had both processors stuck in it from a leader kill to the end
/// of the run, and the drain timed out.
const HANG_GRACE: Duration = Duration::from_secs(10);

/// The blocking transactional call `f`, whose own timeout is `timeout`, off the async threads;
/// `None` when it has not returned [`HANG_GRACE`] after that timeout. It is then left running
/// on its thread, with its own reference to the producer, and the caller gives the producer up
/// ([`Txn::abandon`]): its replacement's `init_transactions` fences it.
async fn bounded<T: Send + 'static>(timeout: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    within(timeout + HANG_GRACE, f).await
}

/// The blocking call `f` off the async threads, waited for at most `limit`.
async fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::time::timeout(limit, blocking(f)).await.ok()
}

enum ErrorKind {
    Abortable,
    Retriable,
    Fenced,
    Fatal,
}

fn classify(e: &KafkaError) -> ErrorKind {
    let KafkaError::Transaction(r) = e else {
        return ErrorKind::Fatal;
    };
    if r.txn_requires_abort() {
        ErrorKind::Abortable
    } else if r.is_retriable() {
        ErrorKind::Retriable
    } else if matches!(
        r.code(),
        RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::Fenced | RDKafkaErrorCode::InvalidProducerEpoch
    ) {
        ErrorKind::Fenced
    } else {
        ErrorKind::Fatal
    }
}

/// One transactional producer, re-created on demand.
pub(super) struct Txn {
    config: ClientConfig,
    name: String,
    log: LogSink,
    producer: Option<Arc<Tp>>,
    open: bool,
    receipts: Vec<oneshot::Receiver<Outcome>>,
}

impl Txn {
    pub(super) fn new(config: ClientConfig, ctx: Ctx) -> Txn {
        Txn {
            config,
            name: ctx.name,
            log: ctx.log,
            producer: None,
            open: false,
            receipts: Vec::new(),
        }
    }

    fn note(&self, what: &str) {
        (self.log)(&format!("{} {what}", self.name));
    }

    /// The producer, created and initialized (`init_transactions`) if there is none.
    pub(super) async fn ensure(&mut self) -> Result<Arc<Tp>, String> {
        if let Some(p) = &self.producer {
            return Ok(p.clone());
        }
        let ctx = Ctx::new(self.name.clone(), self.log.clone());
        let producer: Tp = self
            .config
            .create_with_context(ctx)
            .map_err(|e| format!("creating a transactional producer failed: {e}"))?;
        let producer = Arc::new(producer);
        let p = producer.clone();
        match bounded(INIT_TIMEOUT, move || p.init_transactions(INIT_TIMEOUT)).await {
            Some(Ok(())) => {
                self.producer = Some(producer.clone());
                Ok(producer)
            }
            Some(Err(e)) => {
                blocking(move || drop(producer)).await;
                Err(format!("initializing transactions failed: {e}"))
            }
            None => Err(self.hung("init_transactions", INIT_TIMEOUT)),
        }
    }

    /// Drop the producer (it is unusable or its state unknown); the next use re-creates it.
    pub(super) async fn reset(&mut self) {
        self.open = false;
        self.receipts.clear();
        if let Some(p) = self.producer.take() {
            self.note("dropped; the next transaction re-initializes the transactional id");
            blocking(move || drop(p)).await;
        }
    }

    /// Give the producer up without waiting for it: a call of it did not return (see
    /// [`bounded`]) and holds it, so dropping it here could block too.
    fn abandon(&mut self) {
        self.open = false;
        self.receipts.clear();
        self.producer = None;
    }

    /// Note a transactional call that did not return in time, abandon the producer, and say so.
    fn hung(&mut self, call: &str, timeout: Duration) -> String {
        let what = format!(
            "{call} did not return {} s after its {} s timeout (librdkafka waits for a coordinator that is gone: confluentinc/librdkafka#5456, #5511); the producer is given up and its transactional id re-initialized by the next one",
            HANG_GRACE.as_secs(),
            timeout.as_secs()
        );
        self.note(&what);
        self.abandon();
        what
    }

    /// Release the producer quietly (the end of its life, not a failure).
    async fn release(&mut self) {
        if let Some(p) = self.producer.take() {
            blocking(move || drop(p)).await;
        }
    }

    pub(super) fn is_usable(&self) -> bool {
        self.producer.is_some()
    }

    /// Begin a transaction unless one is open, and write `messages` in it.
    pub(super) async fn write(&mut self, messages: &[Outgoing]) -> Result<(), String> {
        let p = self.ensure().await?;
        if !self.open {
            p.begin_transaction()
                .map_err(|e| format!("begin_transaction failed: {e}"))?;
            self.open = true;
        }
        for m in messages {
            let rx = enqueue(&p, m).await?;
            self.receipts.push(rx);
        }
        Ok(())
    }

    /// Abort the open transaction. Always `Fail`: an aborted transaction, or one that was never
    /// committed (commit was not called), is not written.
    pub(super) async fn abort(&mut self, reason: String) -> Outcome {
        if !self.open {
            return Outcome::Fail(reason);
        }
        let Some(p) = self.producer.clone() else {
            return Outcome::Fail(reason);
        };
        let Some(result) = bounded(CALL_TIMEOUT, move || p.abort_transaction(CALL_TIMEOUT)).await else {
            let hung = self.hung("abort_transaction", CALL_TIMEOUT);
            return Outcome::Fail(format!("{reason}; {hung}, but the transaction was never committed"));
        };
        self.open = false;
        self.receipts.clear();
        match result {
            Ok(()) => Outcome::Fail(reason),
            Err(e) => {
                self.reset().await;
                Outcome::Fail(format!(
                    "{reason}; abort failed ({e}) but the transaction was never committed"
                ))
            }
        }
    }

    /// Write and commit `messages` as one transaction (or abort it on purpose).
    pub(super) async fn send(&mut self, messages: &[Outgoing], abort_on_purpose: bool) -> Outcome {
        if let Err(e) = self.write(messages).await {
            return self.abort(e).await;
        }
        if abort_on_purpose {
            // Let the records reach the broker first, so that a read_uncommitted reader sees them.
            if let Some(p) = self.producer.clone() {
                let _ = blocking(move || p.flush(CALL_TIMEOUT)).await;
            }
            return self.abort("aborted on purpose".into()).await;
        }
        self.commit(None).await
    }

    /// Commit the open transaction, with the consumer offsets `offsets` in it.
    pub(super) async fn commit(
        &mut self,
        offsets: Option<(TopicPartitionList, Arc<ConsumerGroupMetadata>)>,
    ) -> Outcome {
        let Some(p) = self.producer.clone() else {
            return Outcome::Fail("no transactional producer: nothing committed".into());
        };
        if !self.open {
            return Outcome::Fail("no open transaction: nothing committed".into());
        }
        if let Some((tpl, group)) = offsets {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let (q, tpl, group) = (p.clone(), tpl.clone(), group.clone());
                let sent = bounded(CALL_TIMEOUT, move || {
                    q.send_offsets_to_transaction(&tpl, &group, CALL_TIMEOUT)
                })
                .await;
                let Some(sent) = sent else {
                    // Commit was never called: the transaction cannot have committed.
                    let hung = self.hung("send_offsets_to_transaction", CALL_TIMEOUT);
                    return Outcome::Fail(format!("sending offsets failed, never committed: {hung}"));
                };
                let Err(e) = sent else {
                    break;
                };
                match classify(&e) {
                    ErrorKind::Retriable if attempt < ATTEMPTS => continue,
                    ErrorKind::Abortable | ErrorKind::Retriable => {
                        return self.abort(format!("sending offsets failed: {e}")).await
                    }
                    ErrorKind::Fenced | ErrorKind::Fatal => {
                        // Commit was never called: the transaction cannot have committed.
                        self.reset().await;
                        return Outcome::Fail(format!("sending offsets failed, never committed: {e}"));
                    }
                }
            }
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let q = p.clone();
            let Some(committed) = bounded(CALL_TIMEOUT, move || q.commit_transaction(CALL_TIMEOUT)).await else {
                let hung = self.hung("commit_transaction", CALL_TIMEOUT);
                return Outcome::Info(format!("commit result unknown: {hung}"));
            };
            match committed {
                Ok(()) => {
                    self.open = false;
                    // Where each write of the transaction went, in the order written (none at
                    // all when a report is missing: positions must line up with the messages).
                    let mut positions = Vec::new();
                    let mut every_position = true;
                    for rx in std::mem::take(&mut self.receipts) {
                        match delivered(rx).await {
                            Outcome::Ok(at) if at.len() == 1 => positions.extend(at),
                            Outcome::Ok(_) => every_position = false,
                            Outcome::Fail(e) | Outcome::Info(e) => {
                                every_position = false;
                                self.note(&format!("committed, yet a delivery report said: {e}"));
                            }
                        }
                    }
                    return Outcome::Ok(if every_position { positions } else { Vec::new() });
                }
                Err(e) => match classify(&e) {
                    ErrorKind::Abortable => return self.abort(format!("commit failed, aborted: {e}")).await,
                    ErrorKind::Retriable if attempt < ATTEMPTS => {
                        self.note(&format!("commit attempt {attempt} failed: {e}"))
                    }
                    ErrorKind::Fenced => {
                        self.reset().await;
                        return Outcome::Fail(format!("fenced: {e}"));
                    }
                    ErrorKind::Retriable | ErrorKind::Fatal => {
                        self.reset().await;
                        return Outcome::Info(format!("commit result unknown: {e}"));
                    }
                },
            }
        }
    }

    /// Abort what is open and release the producer.
    pub(super) async fn close(mut self) {
        if self.open {
            let _ = self.abort("closing".into()).await;
        }
        self.release().await;
    }
}

/// Read-process-write: a `read_committed` consumer and a transactional producer.
pub(super) struct KafkaProcessor {
    input: KafkaConsumer,
    txn: Txn,
    /// The group metadata kept by a stalled instance (its consumer has left).
    stalled: Option<Arc<ConsumerGroupMetadata>>,
    restart: bool,
}

impl KafkaProcessor {
    pub(super) fn new(input: KafkaConsumer, txn: Txn) -> KafkaProcessor {
        KafkaProcessor {
            input,
            txn,
            stalled: None,
            restart: false,
        }
    }

    fn group_metadata(&self) -> Option<Arc<ConsumerGroupMetadata>> {
        if let Some(m) = &self.stalled {
            return Some(m.clone());
        }
        self.input
            .consumer
            .as_ref()
            .and_then(|c| c.group_metadata())
            .map(Arc::new)
    }

    /// After an abort: receive the inputs again. If that is impossible, the instance must be
    /// replaced (its replacement reads from the committed offsets).
    async fn rewind(&mut self, inputs: &[Received]) {
        if self.input.consumer.is_none() {
            return;
        }
        if let Err(e) = self.input.rewind(inputs).await {
            self.txn.note(&format!("{e}; replacing the processor"));
            self.restart = true;
        }
    }
}

#[async_trait]
impl Processor for KafkaProcessor {
    async fn receive(&mut self, max: usize, wait: Duration) -> Result<Vec<Received>, ClientError> {
        self.input.receive(max, wait).await
    }

    fn assigned(&self) -> Option<usize> {
        self.input.assigned()
    }

    fn rebalanced(&mut self) -> Option<Vec<(String, u32)>> {
        self.input.rebalanced()
    }

    async fn write(&mut self, outputs: &[Outgoing]) -> Result<(), ClientError> {
        self.txn.write(outputs).await.map_err(ClientError::new)
    }

    async fn commit(&mut self, inputs: &[Received]) -> Outcome {
        let Some(group) = self.group_metadata() else {
            let outcome = self.txn.abort("no consumer group metadata".into()).await;
            self.restart = true;
            return outcome;
        };
        let tpl = match next_offsets(inputs) {
            Ok(tpl) => tpl,
            Err(e) => return self.abort(inputs, e.message).await,
        };
        let outcome = self.txn.commit(Some((tpl, group))).await;
        match &outcome {
            Outcome::Ok(_) => {}
            Outcome::Fail(_) => {
                self.rewind(inputs).await;
                self.restart |= !self.txn.is_usable();
            }
            Outcome::Info(_) => self.restart = true,
        }
        outcome
    }

    async fn abort(&mut self, inputs: &[Received], reason: String) -> Outcome {
        let outcome = self.txn.abort(reason).await;
        self.rewind(inputs).await;
        self.restart |= !self.txn.is_usable();
        outcome
    }

    async fn stall(&mut self) {
        self.stalled = self.group_metadata();
        self.input.leave().await;
    }

    fn needs_restart(&self) -> bool {
        self.restart
    }

    async fn close(mut self: Box<Self>) {
        self.input.leave().await;
        self.txn.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_that_does_not_return_in_time_is_left_behind() {
        let started = std::time::Instant::now();
        let hung = within(Duration::from_millis(200), || {
            std::thread::sleep(Duration::from_secs(3))
        })
        .await;
        assert!(hung.is_none(), "a call past its limit gives nothing");
        assert!(started.elapsed() < Duration::from_secs(2), "and is not waited for");
        assert_eq!(within(Duration::from_secs(2), || 7).await, Some(7));
    }
}
