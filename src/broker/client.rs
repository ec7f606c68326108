//! The client contract, broker-neutral: what a workload needs from a broker, whatever the broker.
//!
//! A workload talks to a [`Broker`] that makes [`Producer`]s, [`Consumer`]s and (where the
//! broker has transactions) [`Processor`]s. Every answer is mapped honestly by the adapter:
//! [`Outcome::Ok`] when the broker acknowledged, [`Outcome::Fail`] only when the write
//! definitely did not happen (rejected before it was written, an aborted transaction, a fenced
//! producer, an invalid configuration), [`Outcome::Info`] for everything else (timeouts, lost
//! connections, unknown results). Broker-shaped details (offsets, transactional ids, receipt
//! handles) stay inside the adapters, one per folder under `src/brokers/`.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::driver::BrokerKind;
use crate::history::Guarantee;

/// Where adapters report client errors and warnings (the runner writes them to run.log).
pub type LogSink = Arc<dyn Fn(&str) + Send + Sync>;

/// Called once with the outcome of a detached send and the message, on whichever thread the
/// client learns the outcome ([`Producer::send_detached`]).
pub type Completion = Box<dyn FnOnce(Outcome, Outgoing) + Send + Sync>;

/// How an operation ended, as the application can know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged by the broker (a transaction: committed), with where the broker says it put
    /// each message, in the order sent, in the same form a consumer reports as `pos`
    /// (`partition@offset`, a stream sequence, a message id); empty when it did not say.
    Ok(Vec<String>),
    /// Definitely not written (or, for a transaction, definitely not committed).
    Fail(String),
    /// Unknown: it may or may not have happened.
    Info(String),
}

impl Outcome {
    /// Acknowledged, with no positions.
    pub fn ok() -> Outcome {
        Outcome::Ok(Vec::new())
    }

    /// Acknowledged at one position.
    pub fn ok_at(position: String) -> Outcome {
        Outcome::Ok(vec![position])
    }

    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok(_))
    }
}

/// One message to send. The adapter puts `id` and `from` into the message so that a consumer
/// can tell which logical message it received, and pads the body to `size` bytes.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub id: String,
    pub key: Option<String>,
    /// Topic or queue.
    pub dest: String,
    pub from: Option<String>,
    pub size: usize,
}

/// The positions of several acknowledged sends of one message each, in order; empty unless
/// every one reported exactly one.
pub fn positions_of_all(outcomes: &[Outcome]) -> Vec<String> {
    let mut positions = Vec::with_capacity(outcomes.len());
    for o in outcomes {
        match o {
            Outcome::Ok(p) if p.len() == 1 => positions.push(p[0].clone()),
            _ => return Vec::new(),
        }
    }
    positions
}

/// A received message: what the history records, and the adapter's handle to acknowledge it.
pub struct Received {
    pub id: String,
    pub key: Option<String>,
    pub dest: String,
    /// Where the broker put it (`partition@offset` for Kafka).
    pub pos: String,
    pub from: Option<String>,
    /// The broker flagged it as delivered before (RabbitMQ `redelivered`); false where the
    /// broker has no such flag.
    pub redelivered: bool,
    /// The adapter's own acknowledgement data (an offset, a delivery tag, a receipt handle).
    pub handle: Box<dyn Any + Send + Sync>,
}

/// A client-side failure that is not an operation outcome (creating a client, receiving,
/// committing a consumer position).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ClientError {
    pub message: String,
    /// The client instance is unusable and must be replaced.
    pub fatal: bool,
}

impl ClientError {
    pub fn new(message: impl Into<String>) -> ClientError {
        ClientError {
            message: message.into(),
            fatal: false,
        }
    }

    pub fn fatal(message: impl Into<String>) -> ClientError {
        ClientError {
            message: message.into(),
            fatal: true,
        }
    }
}

/// A producer's configuration, per delivery mode.
#[derive(Debug, Clone)]
pub struct ProducerSpec {
    pub mode: Guarantee,
    /// A stable name for this logical producer. A replacement after a crash reuses it, so that
    /// the broker fences the crashed instance (Kafka: the transactional id).
    pub identity: String,
}

/// A consumer's configuration.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    pub mode: Guarantee,
    /// The consumer group (shared position) this consumer is a member of.
    pub group: String,
    pub dests: Vec<String>,
    /// See only committed transactions (Kafka `isolation.level=read_committed`).
    pub committed_only: bool,
    /// The consumer's stable place in its group (`c2`, `processor-1`): the replacement of a
    /// crashed consumer gets the same one, so that a broker with static membership (Kafka's
    /// `group.instance.id`) hands it the crashed member's partitions at once instead of making
    /// the whole group rebalance.
    pub member: String,
}

/// What a processor application is asked to run ([`Broker::processor_app`]).
#[derive(Debug, Clone)]
pub struct ProcessorAppSpec {
    /// The campaign's `[workload] processor` (`kafka-streams`).
    pub name: String,
    /// The delivery mode the campaign claims; the application's default guarantee follows it.
    pub mode: Guarantee,
    pub source: String,
    pub sink: String,
    /// The campaign's `processor_config`, applied after the application's own settings.
    pub config: std::collections::BTreeMap<String, String>,
    /// Where the instances keep their logs, configuration and local state (in the run's folder).
    pub dir: std::path::PathBuf,
}

/// A read-process-write application that runs as its own OS processes (Kafka Streams) in place
/// of the pipeline workload's processors. ackcheck starts, kills and restarts its instances but
/// sees none of its reads, writes or commits: the history learns what it did only from what
/// ackcheck's own sink consumer delivers (each output names its input in `from`).
pub trait ProcessorApp: Send + Sync {
    /// Start instance `instance` (again, after a kill); returns its OS process id.
    fn start(&self, instance: usize) -> Result<u32, ClientError>;

    /// `kill -9` the instance; returns the process id it had, `None` when it was not running.
    fn kill(&self, instance: usize) -> Result<Option<u32>, ClientError>;

    /// The ids of the input messages the instance's current process reported processing (since
    /// its last start), in order; empty when the application reports nothing.
    fn processed(&self, instance: usize) -> Vec<String>;

    /// How many inputs the instance's current process reported processing (since its last
    /// start): `processed(instance).len()`, cheap enough to ask ten times a second.
    fn processed_count(&self, instance: usize) -> usize;

    /// Whether the instance's current process reported that it is processing (Kafka Streams:
    /// reached the state RUNNING since its last start).
    fn ready(&self, instance: usize) -> bool;

    /// Whether the instance's process is alive.
    fn running(&self, instance: usize) -> bool;

    /// The last lines of the instance's log, for error messages.
    fn log_tail(&self, instance: usize) -> String;

    /// Stop the instance cleanly (SIGTERM, then SIGKILL after `grace`). Blocking.
    fn stop(&self, instance: usize, grace: Duration);
}

/// Opens clients against one broker.
#[async_trait]
pub trait Broker: Send + Sync {
    fn kind(&self) -> BrokerKind;

    /// Create a topic or queue (idempotent) and wait until it can be used.
    async fn create_dest(&self, name: &str, partitions: u32) -> Result<(), ClientError>;

    /// Delete a topic or queue this run created, with what it holds (idempotent: one that is
    /// gone already is fine). Runs leave nothing behind on brokers they share with others.
    async fn delete_dest(&self, name: &str) -> Result<(), ClientError>;

    async fn producer(&self, spec: &ProducerSpec) -> Result<Box<dyn Producer>, ClientError>;

    async fn consumer(&self, spec: &ConsumerSpec) -> Result<Box<dyn Consumer>, ClientError>;

    /// A read-process-write stage: a consumer and a transactional producer whose commits carry
    /// the consumer's position. Brokers without transactions keep the default, an error (their
    /// driver declares it, so campaigns that would need one are refused at load).
    async fn processor(
        &self,
        consumer: &ConsumerSpec,
        producer: &ProducerSpec,
    ) -> Result<Box<dyn Processor>, ClientError> {
        let _ = (consumer, producer);
        let why = self.kind().capabilities().transactions.unwrap_or("it has no processor");
        Err(ClientError::fatal(format!(
            "{} cannot run a transactional processor: {why}",
            self.kind()
        )))
    }

    /// The processor application `spec.name` (see [`ProcessorApp`]), installed (built once and
    /// cached) and ready to start instances. Brokers that offer none keep the default, an error
    /// (their driver declares `processor_apps`, so campaigns naming one are refused at load).
    /// Blocking: the first call may build the application.
    fn processor_app(&self, spec: &ProcessorAppSpec) -> Result<Arc<dyn ProcessorApp>, ClientError> {
        Err(ClientError::fatal(format!(
            "{} has no processor application \"{}\"",
            self.kind(),
            spec.name
        )))
    }

    /// What the broker can tell about deliveries that stopped, asked when a drain timed out
    /// with acknowledged messages unseen, before the clients close: one sentence per finding
    /// (for Kafka: where each partition's committed data ends for `read_committed` readers, and
    /// each group's committed offsets), for run.log. Brokers with nothing to add keep the
    /// default, nothing. Best effort: what cannot be read is said, not an error.
    async fn stall_report(&self, dests: &[(String, u32)]) -> Vec<String> {
        let _ = dests;
        Vec::new()
    }

    /// What the broker stores but still holds back from readers, and will hand out later without
    /// anything more from the clients: one sentence, or `None`. Asked before a drain ends for
    /// quiet with acknowledged messages unseen, so that a drain does not call a message lost
    /// that is only waiting (for Kafka: records past a partition's last stable offset, behind a
    /// transaction that a dead producer left open until the broker aborts it at its timeout).
    /// Brokers that never hold anything back keep the default. Best effort: `None` when it
    /// cannot be read.
    async fn held_back(&self, dests: &[(String, u32)]) -> Option<String> {
        let _ = dests;
        None
    }

    /// Whether a producer of this broker can store one logical message twice even in
    /// exactly-once mode (no producer-side deduplication, e.g. RabbitMQ). The idempotent
    /// consumer of the exactly-once mode then deduplicates by message id; otherwise by
    /// position, so that a broker that should not write twice is still caught doing it.
    fn duplicates_writes(&self) -> bool {
        false
    }
}

/// A producer. A non-transactional one implements [`Producer::send_one`] and nothing else;
/// transactional ones override [`Producer::transactional`], [`Producer::send`] and
/// [`Producer::send_and_abort`]; callback-driven clients [`Producer::send_detached`].
#[async_trait]
pub trait Producer: Send + Sync {
    /// Send one message.
    async fn send_one(&self, message: &Outgoing) -> Outcome;

    /// Whether `send` of several messages is atomic (a transaction).
    fn transactional(&self) -> bool {
        false
    }

    /// Send several messages: atomically for a transactional producer; by default one by one,
    /// with their common outcome, or unknown when they ended differently (not atomic).
    async fn send(&self, messages: &[Outgoing]) -> Outcome {
        let mut outcomes = Vec::with_capacity(messages.len());
        for m in messages {
            outcomes.push(self.send_one(m).await);
        }
        if outcomes.iter().all(Outcome::is_ok) {
            return Outcome::Ok(positions_of_all(&outcomes));
        }
        match outcomes.as_slice() {
            [one] => one.clone(),
            [first, rest @ ..] if rest.iter().all(|o| o == first) => first.clone(),
            _ => Outcome::Info(format!("the messages of one send ended differently: {outcomes:?}")),
        }
    }

    /// Write `messages` in a transaction and then abort it on purpose. Transactional producers
    /// only; the outcome is `Fail` when the abort succeeded (and, by default, nothing was sent).
    async fn send_and_abort(&self, messages: &[Outgoing]) -> Outcome {
        let _ = messages;
        Outcome::Fail("this producer is not transactional; nothing was sent".into())
    }

    /// Start sending one message and return at once; `done` gets the outcome and the message
    /// back later, on any thread. For clients that report each delivery by callback, so that
    /// tens of thousands of sends in flight cost no task each. A producer that cannot do this
    /// hands both back (the default), and the caller awaits [`Producer::send`] instead.
    fn send_detached(&self, message: Outgoing, done: Completion) -> Result<(), (Outgoing, Completion)> {
        Err((message, done))
    }

    /// Why this client can send nothing more, when it cannot (an idempotent Kafka producer after
    /// a fatal error, such as a sequence gap after an unclean leader election): the application
    /// must create a new one, as a real one would.
    fn failed_fatally(&self) -> Option<String> {
        None
    }

    /// Wait up to `timeout` for sends still in flight, then release the client (by default
    /// there is nothing in flight: every send was awaited by its caller).
    async fn close(self: Box<Self>, timeout: Duration) {
        let _ = timeout;
    }
}

#[async_trait]
pub trait Consumer: Send {
    /// Wait up to `wait` for messages; returns at most `max` (none when none came).
    async fn receive(&mut self, max: usize, wait: Duration) -> Result<Vec<Received>, ClientError>;

    /// When the partitions this member holds changed since the last call (a consumer group
    /// rebalance): the (dest, partition) pairs it holds now. `None`: unchanged, or the broker
    /// has no partitions.
    fn rebalanced(&mut self) -> Option<Vec<(String, u32)>> {
        None
    }

    /// Acknowledge these messages (commit the position after them, ack, delete).
    async fn commit(&mut self, messages: &[Received]) -> Result<(), ClientError>;

    /// How many shares of its destinations (Kafka: partitions) the group gave this member now;
    /// `None` where the broker has no such notion. The drain waits until a group's members hold
    /// every share before it trusts a quiet time.
    fn assigned(&self) -> Option<usize> {
        None
    }

    /// Leave cleanly.
    async fn close(self: Box<Self>);
}

#[async_trait]
pub trait Processor: Send {
    async fn receive(&mut self, max: usize, wait: Duration) -> Result<Vec<Received>, ClientError>;

    /// As [`Consumer::assigned`], for the processor's input.
    fn assigned(&self) -> Option<usize> {
        None
    }

    /// Begin a transaction (unless one is open) and write `outputs` in it.
    /// See [`Consumer::rebalanced`].
    fn rebalanced(&mut self) -> Option<Vec<(String, u32)>> {
        None
    }

    async fn write(&mut self, outputs: &[Outgoing]) -> Result<(), ClientError>;

    /// Commit the open transaction together with the consumption of `inputs`. On `Fail` the
    /// transaction was aborted and `inputs` will be received again.
    async fn commit(&mut self, inputs: &[Received]) -> Outcome;

    /// Abort the open transaction (always `Fail`) and receive `inputs` again.
    async fn abort(&mut self, inputs: &[Received], reason: String) -> Outcome;

    /// Stop consuming (leave the group) but keep the open transaction, as an instance frozen by
    /// a long pause would. A later `commit` shows whether the broker fences it.
    async fn stall(&mut self);

    /// The instance cannot go on (an unknown commit result, a fatal error): replace it, so that
    /// the replacement starts from what the broker committed.
    fn needs_restart(&self) -> bool;

    /// Leave cleanly (aborting an open transaction).
    async fn close(self: Box<Self>);
}

/// The body every adapter sends: `ackcheck <id> <from or ->`, a newline, then padding up to
/// `size` bytes. Readable in broker tools, and the same for every broker.
pub fn encode_body(id: &str, from: Option<&str>, size: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(size.max(16 + id.len()));
    body.extend_from_slice(b"ackcheck ");
    body.extend_from_slice(id.as_bytes());
    body.push(b' ');
    body.extend_from_slice(from.unwrap_or("-").as_bytes());
    body.push(b'\n');
    if body.len() < size {
        body.resize(size, b'.');
    }
    body
}

/// The id and `from` of a body written by [`encode_body`]; `None` for anything else.
pub fn decode_body(body: &[u8]) -> Option<(String, Option<String>)> {
    let end = body.iter().position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&body[..end]).ok()?;
    let mut parts = line.split(' ');
    if parts.next()? != "ackcheck" {
        return None;
    }
    let id = parts.next()?.to_string();
    let from = match parts.next()? {
        "-" => None,
        f => Some(f.to_string()),
    };
    Some((id, from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_and_pad() {
        let body = encode_body("p3-17", Some("p1-9"), 100);
        assert_eq!(body.len(), 100);
        assert_eq!(
            decode_body(&body),
            Some(("p3-17".to_string(), Some("p1-9".to_string())))
        );
        let short = encode_body("p0-1", None, 0);
        assert_eq!(decode_body(&short), Some(("p0-1".to_string(), None)));
        assert_eq!(decode_body(b"something else\n"), None);
    }
}
