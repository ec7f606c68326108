//! The Amazon SQS adapter (aws-sdk-sqs, against LocalStack): a queue over HTTP, not a log and
//! not a connection. A received message is only hidden for the queue's visibility timeout; it
//! is gone once its receipt handle is deleted, and comes back by itself when nobody deletes it
//! in time (a crashed consumer needs no connection to close).
//!
//! - at-most-once: a standard queue; one SendMessage per message (the SDK's retries off, the
//!   application gives up after a failure); consumers delete (DeleteMessageBatch) *before*
//!   processing, so a consumer that dies after the delete loses what it held.
//! - at-least-once: a standard queue; the SDK's retries off and the application re-sends the
//!   same id after an unknown or failed send (a request whose reply was lost was usually
//!   stored: a second copy); consumers process, then delete; a short visibility timeout brings
//!   a crashed consumer's messages back within seconds.
//! - exactly-once: a FIFO queue (`<dest>.fifo`), MessageGroupId = the key and
//!   MessageDeduplicationId = the logical message id, so SQS drops a re-send within its
//!   5-minute deduplication window; plus the workload's idempotent consumer, which skips a
//!   redelivered copy by its position. [`Broker::duplicates_writes`] stays false: if SQS did
//!   store a message twice, the two copies would have two positions and show up as written
//!   twice instead of being hidden by a deduplication by id.
//!
//! A campaign's `[dest]` queue attributes and `[client.*]` SDK settings
//! ([`super::props`]) replace these presets key by key: the queue is created with the effective
//! attributes, a FIFO queue is whatever `FifoQueue` says (with `ContentBasedDeduplication` the
//! producer sends no deduplication id and SQS hashes the body, which carries the id), and the
//! SDK makes `max_attempts` attempts per request.
//!
//! Positions: `pos` is the SQS MessageId. A redelivery is the same stored copy and keeps it; a
//! second copy (a re-send to a standard queue) gets another one. `redelivered` is
//! ApproximateReceiveCount > 1. The key travels in a message attribute, the id and `from` in
//! the body ([`encode_body`]).
//!
//! Outcomes of a send: ok on a SendMessage reply; fail only when the request surely never
//! reached SQS (it could not be built, the connection was refused) or SQS answered with a
//! client error (4xx: rejected, not stored); unknown for everything else (timeouts, connections
//! lost after the request may have been written, 5xx answers, unreadable replies).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::config::timeout::TimeoutConfig;
use aws_sdk_sqs::error::{DisplayErrorContext, SdkError};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
};

use super::node::sqs_client_with_attempts;
use super::props;
use crate::broker::{
    decode_body, encode_body, Broker, ClientError, Consumer, ConsumerSpec, LogSink, Outcome, Outgoing, Producer,
    ProducerSpec, Received,
};
use crate::broker::{BrokerKind, ClientSettings};
use crate::history::Guarantee;

/// The message attribute that carries the message's key.
pub const KEY_ATTRIBUTE: &str = "ackcheck-key";
/// How long one request may take before its outcome is unknown: well above the nemesis's
/// latency fault (500 ms), short enough that a lost reply ends as unknown within seconds.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a received message stays hidden from other consumers in every preset: a crashed
/// consumer's messages come back after this; a healthy consumer deletes well within it.
pub const VISIBILITY_TIMEOUT_SECONDS: u32 = props::PRESET_VISIBILITY_TIMEOUT;
/// SQS returns at most 10 messages per ReceiveMessage and deletes at most 10 per batch.
const MAX_BATCH: usize = 10;
/// SQS's longest long poll.
const MAX_WAIT_SECONDS: u64 = 20;
/// The message group of messages without a key (FIFO queues need one).
const DEFAULT_GROUP: &str = "ackcheck";

/// The endpoint URL of a client endpoint: `host:port` of the node's proxy, or a full URL.
pub fn endpoint_url(endpoint: &str) -> String {
    if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

/// What every client of one broker shares.
struct Shared {
    endpoint_url: String,
    /// The attributes every queue is created with (the effective `[dest]` settings).
    attributes: Vec<(String, String)>,
    /// FIFO queues (exactly-once's preset) rather than standard queues.
    fifo: bool,
    /// SQS deduplicates a FIFO queue's messages by a hash of the body, so the producer sends
    /// no deduplication id.
    content_based_deduplication: bool,
    /// Attempts per request the SDK makes (1: its retries off).
    producer_attempts: u32,
    consumer_attempts: u32,
    /// The consumer's WaitTimeSeconds when the campaign sets it.
    wait_time_seconds: Option<u32>,
    /// The queue's own ReceiveMessageWaitTimeSeconds, which applies when a receive names none.
    queue_wait_seconds: Option<u32>,
    /// The consumer's MaxNumberOfMessages when the campaign sets it.
    max_number_of_messages: Option<u32>,
    log: LogSink,
    /// Queue URLs by destination, from CreateQueue or GetQueueUrl.
    queue_urls: std::sync::Mutex<HashMap<String, String>>,
}

impl Shared {
    /// A client of its own: its own connection pool, dropped with it (as a process's would be).
    fn client(&self) -> aws_sdk_sqs::Client {
        self.client_with_attempts(1)
    }

    fn client_with_attempts(&self, attempts: u32) -> aws_sdk_sqs::Client {
        sqs_client_with_attempts(&self.endpoint_url, OPERATION_TIMEOUT, attempts)
    }

    /// The SQS queue name of a destination (FIFO queue names must end in `.fifo`).
    fn queue_name(&self, dest: &str) -> String {
        match self.fifo {
            true => format!("{dest}.fifo"),
            false => dest.to_string(),
        }
    }

    fn cached_url(&self, dest: &str) -> Option<String> {
        self.queue_urls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(dest)
            .cloned()
    }

    fn remember_url(&self, dest: &str, url: String) {
        self.queue_urls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(dest.to_string(), url);
    }

    /// The URL of `dest`'s queue, asking SQS (GetQueueUrl) the first time.
    async fn queue_url(&self, client: &aws_sdk_sqs::Client, dest: &str) -> Result<String, String> {
        if let Some(url) = self.cached_url(dest) {
            return Ok(url);
        }
        let name = self.queue_name(dest);
        let reply = client
            .get_queue_url()
            .queue_name(&name)
            .send()
            .await
            .map_err(|e| format!("looking up the queue {name}: {}", DisplayErrorContext(e)))?;
        let url = reply
            .queue_url()
            .ok_or_else(|| format!("GetQueueUrl of {name} answered without a URL"))?
            .to_string();
        self.remember_url(dest, url.clone());
        Ok(url)
    }
}

pub struct SqsBroker {
    shared: std::sync::Arc<Shared>,
}

impl SqsBroker {
    /// `endpoint`: `host:port` of the node's client proxy (or a URL); `mode`: the campaign's
    /// delivery mode, whose preset decides the queue type (FIFO for exactly-once).
    pub fn new(endpoint: &str, mode: Guarantee, log: LogSink) -> SqsBroker {
        let client = props::client_settings(&Default::default()).unwrap_or_default();
        SqsBroker::with_settings(endpoint, mode, &serde_json::json!({}), &client, log)
    }

    /// With a campaign's effective `[dest]` queue attributes (as [`props::dest_settings`]
    /// records them; missing ones from `mode`'s preset) and client settings.
    pub fn with_settings(
        endpoint: &str,
        mode: Guarantee,
        dest_settings: &serde_json::Value,
        client: &ClientSettings,
        log: LogSink,
    ) -> SqsBroker {
        let attributes = props::queue_attributes(mode, dest_settings);
        let attribute = |name: &str| attributes.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let attempts = |p| props::number(p, "max_attempts").unwrap_or(props::SDK_DEFAULT_ATTEMPTS);
        let shared = Shared {
            endpoint_url: endpoint_url(endpoint),
            fifo: attribute("FifoQueue") == Some("true"),
            content_based_deduplication: attribute("ContentBasedDeduplication") == Some("true"),
            queue_wait_seconds: attribute("ReceiveMessageWaitTimeSeconds").and_then(|v| v.parse().ok()),
            producer_attempts: attempts(&client.producer),
            consumer_attempts: attempts(&client.consumer),
            wait_time_seconds: props::number(&client.consumer, "wait_time_seconds"),
            max_number_of_messages: props::number(&client.consumer, "max_number_of_messages"),
            attributes,
            log,
            queue_urls: std::sync::Mutex::new(HashMap::new()),
        };
        SqsBroker {
            shared: std::sync::Arc::new(shared),
        }
    }
}

#[async_trait]
impl Broker for SqsBroker {
    fn kind(&self) -> BrokerKind {
        super::KIND
    }

    /// One queue with the effective attributes (FIFO in exactly-once); SQS queues have no
    /// partitions, so `partitions` is noted and ignored. CreateQueue is idempotent for the same
    /// attributes.
    async fn create_dest(&self, name: &str, partitions: u32) -> Result<(), ClientError> {
        let queue = self.shared.queue_name(name);
        if partitions > 1 {
            (self.shared.log)(&format!(
                "sqs: {queue} is one queue; the {partitions} partitions asked for do not apply"
            ));
        }
        let mut request = self.shared.client().create_queue().queue_name(&queue);
        for (name, value) in &self.shared.attributes {
            // SQS refuses FifoQueue=false, even on a standard queue: a standard queue is one
            // created without it.
            if name == "FifoQueue" && value == "false" {
                continue;
            }
            request = request.attributes(QueueAttributeName::from(name.as_str()), value);
        }
        let reply = request
            .send()
            .await
            .map_err(|e| ClientError::new(format!("creating the queue {queue}: {}", DisplayErrorContext(e))))?;
        let url = reply
            .queue_url()
            .ok_or_else(|| ClientError::new(format!("CreateQueue of {queue} answered without a URL")))?;
        self.shared.remember_url(name, url.to_string());
        Ok(())
    }

    async fn delete_dest(&self, name: &str) -> Result<(), ClientError> {
        let client = self.shared.client();
        let url = match self.shared.queue_url(&client, name).await {
            Ok(url) => url,
            // No such queue (never created, or deleted already): nothing to delete.
            Err(why) if why.contains("NonExistentQueue") || why.contains("does not exist") => return Ok(()),
            Err(why) => return Err(ClientError::new(why)),
        };
        client
            .delete_queue()
            .queue_url(&url)
            .send()
            .await
            .map_err(|e| ClientError::new(format!("deleting the queue {url}: {}", DisplayErrorContext(e))))?;
        Ok(())
    }

    async fn producer(&self, spec: &ProducerSpec) -> Result<Box<dyn Producer>, ClientError> {
        Ok(Box::new(SqsProducer {
            shared: self.shared.clone(),
            client: self.shared.client_with_attempts(self.shared.producer_attempts),
            name: spec.identity.clone(),
        }))
    }

    async fn consumer(&self, spec: &ConsumerSpec) -> Result<Box<dyn Consumer>, ClientError> {
        let [dest] = spec.dests.as_slice() else {
            return Err(ClientError::fatal(format!(
                "an SQS consumer reads one queue, not {:?}",
                spec.dests
            )));
        };
        let client = self.shared.client_with_attempts(self.shared.consumer_attempts);
        let queue_url = self.shared.queue_url(&client, dest).await.map_err(ClientError::new)?;
        Ok(Box::new(SqsConsumer {
            client,
            queue_url,
            dest: dest.clone(),
            shared: self.shared.clone(),
        }))
    }
}

/// One producer: its own SDK client (HTTP connection pool); every send is one SendMessage.
pub struct SqsProducer {
    shared: std::sync::Arc<Shared>,
    client: aws_sdk_sqs::Client,
    name: String,
}

impl SqsProducer {
    async fn send_message(&self, m: &Outgoing) -> Outcome {
        let queue_url = match self.shared.queue_url(&self.client, &m.dest).await {
            Ok(url) => url,
            Err(e) => return Outcome::Fail(format!("not sent: {e}")),
        };
        // encode_body writes ASCII only, which SQS accepts as a message body.
        let body = String::from_utf8_lossy(&encode_body(&m.id, m.from.as_deref(), m.size)).into_owned();
        let mut request = self.client.send_message().queue_url(queue_url).message_body(body);
        if let Some(key) = &m.key {
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(key)
                .build();
            match attribute {
                Ok(attribute) => request = request.message_attributes(KEY_ATTRIBUTE, attribute),
                Err(e) => return Outcome::Fail(format!("not sent: the key attribute could not be built: {e}")),
            }
        }
        if self.shared.fifo {
            request = request.message_group_id(m.key.as_deref().unwrap_or(DEFAULT_GROUP));
            if !self.shared.content_based_deduplication {
                // The same logical message is the same deduplication id, whoever sends it again.
                request = request.message_deduplication_id(&m.id);
            }
        }
        match request.send().await {
            // A standard queue's MessageId is the stored copy's, as a consumer sees it. A FIFO
            // queue answers a deduplicated resend too, and what id it gives then is not
            // documented: no position rather than a wrong one.
            Ok(sent) if !self.shared.fifo => match sent.message_id() {
                Some(id) => Outcome::ok_at(id.to_string()),
                None => Outcome::ok(),
            },
            Ok(_) => Outcome::ok(),
            Err(e) => {
                let outcome = outcome_of_error(e);
                if let Outcome::Info(why) = &outcome {
                    (self.shared.log)(&format!("sqs producer {}: {} unknown: {why}", self.name, m.id));
                }
                outcome
            }
        }
    }
}

/// What a failed request means for whether it took effect.
fn outcome_of_error<E>(e: SdkError<E, HttpResponse>) -> Outcome
where
    E: std::error::Error + Send + Sync + 'static,
{
    let never_sent = match &e {
        SdkError::ConstructionFailure(_) => true,
        // The connection never opened (nobody listens), or the SDK refused before writing.
        SdkError::DispatchFailure(d) => d.is_user() || connection_refused(&e),
        _ => false,
    };
    let rejected = match &e {
        SdkError::ServiceError(s) => s.raw().status().is_client_error(),
        _ => false,
    };
    let what = DisplayErrorContext(&e).to_string();
    if never_sent {
        Outcome::Fail(format!("not sent: {what}"))
    } else if rejected {
        Outcome::Fail(format!("rejected by SQS: {what}"))
    } else {
        Outcome::Info(format!("no answer that says whether SQS stored it: {what}"))
    }
}

/// Whether a connection refusal is somewhere in the error's causes.
fn connection_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(err) = cause {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        cause = err.source();
    }
    false
}

#[async_trait]
impl Producer for SqsProducer {
    async fn send_one(&self, m: &Outgoing) -> Outcome {
        self.send_message(m).await
    }

    /// Every send is awaited by its caller: nothing is left in flight to wait for.
    async fn close(self: Box<Self>, _timeout: Duration) {}
}

/// What a consumer needs to delete one received message.
#[derive(Debug, Clone)]
pub struct ReceiptHandle(pub String);

/// One consumer of one queue. Nothing to close: a consumer dropped in a crash leaves its
/// received, undeleted messages to come back after the visibility timeout.
pub struct SqsConsumer {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    dest: String,
    shared: std::sync::Arc<Shared>,
}

impl SqsConsumer {
    /// One received message as the history sees it: the logical id, the stored copy's id.
    fn received(&self, m: &Message) -> Option<Received> {
        let message_id = m.message_id()?.to_string();
        let receipt = m.receipt_handle()?.to_string();
        let (body_id, from) = m.body().and_then(|b| decode_body(b.as_bytes())).unzip();
        let receive_count = m
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|c| c.parse::<u64>().ok())
            .unwrap_or(1);
        let key = m
            .message_attributes()
            .and_then(|a| a.get(KEY_ATTRIBUTE))
            .and_then(|v| v.string_value())
            .map(str::to_string);
        Some(Received {
            // A message sent by anyone else has no ackcheck body: its SQS id is all there is.
            id: body_id.unwrap_or_else(|| format!("unknown-{message_id}")),
            key,
            dest: self.dest.clone(),
            pos: message_id,
            from: from.flatten(),
            // Received before by a consumer that did not delete it in time.
            redelivered: receive_count > 1,
            handle: Box::new(ReceiptHandle(receipt)),
        })
    }
}

#[async_trait]
impl Consumer for SqsConsumer {
    /// One ReceiveMessage of up to 10 messages (`max_number_of_messages` when the campaign
    /// sets it), long polling for whole seconds of `wait` (`wait_time_seconds` when the campaign
    /// sets it; none named when the queue has its own ReceiveMessageWaitTimeSeconds, which then
    /// applies). A wait under a second is a short poll followed, when nothing came, by sleeping
    /// out the rest of `wait`, so that an idle consumer does not hammer the broker; a failed
    /// request also takes at least `wait`, for the same reason.
    async fn receive(&mut self, max: usize, wait: Duration) -> Result<Vec<Received>, ClientError> {
        let started = Instant::now();
        let shared = &self.shared;
        let wait_seconds = match (shared.wait_time_seconds, shared.queue_wait_seconds) {
            (Some(seconds), _) => Some(u64::from(seconds)),
            (None, Some(_)) => None,
            (None, None) => Some(wait.as_secs().min(MAX_WAIT_SECONDS)),
        };
        let longest_wait = wait_seconds.or(shared.queue_wait_seconds.map(u64::from)).unwrap_or(0);
        let attempts = shared.consumer_attempts.max(1);
        let timeouts = TimeoutConfig::builder()
            .operation_attempt_timeout(OPERATION_TIMEOUT + Duration::from_secs(longest_wait))
            .operation_timeout(
                (OPERATION_TIMEOUT + Duration::from_secs(longest_wait)) * attempts + Duration::from_secs(20),
            )
            .build();
        let max = match shared.max_number_of_messages {
            Some(n) => n as usize,
            None => max.clamp(1, MAX_BATCH),
        };
        let reply = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max as i32)
            .set_wait_time_seconds(wait_seconds.map(|s| s as i32))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_attribute_names(KEY_ATTRIBUTE)
            .customize()
            .config_override(aws_sdk_sqs::config::Builder::default().timeout_config(timeouts))
            .send()
            .await;
        let rest_of_wait = wait.saturating_sub(started.elapsed());
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) => {
                tokio::time::sleep(rest_of_wait).await;
                // Messages the lost reply carried stay hidden until their visibility timeout.
                return Err(ClientError::new(format!(
                    "receiving from {}: {}",
                    self.dest,
                    DisplayErrorContext(e)
                )));
            }
        };
        let batch: Vec<Received> = reply.messages().iter().filter_map(|m| self.received(m)).collect();
        if batch.is_empty() {
            tokio::time::sleep(rest_of_wait).await;
        }
        Ok(batch)
    }

    /// Delete the messages (DeleteMessageBatch, 10 at a time). An error when any delete failed
    /// or its outcome is unknown: those messages may come back.
    async fn commit(&mut self, messages: &[Received]) -> Result<(), ClientError> {
        let handles: Vec<&str> = messages
            .iter()
            .filter_map(|m| m.handle.downcast_ref::<ReceiptHandle>())
            .map(|h| h.0.as_str())
            .collect();
        let mut problems = Vec::new();
        for chunk in handles.chunks(MAX_BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, handle)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(*handle)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ClientError::new(format!("building a delete of {}: {e}", self.dest)))?;
            let deleted = self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            match deleted {
                Ok(reply) => problems.extend(reply.failed().iter().map(|f| {
                    format!(
                        "entry {}: {} ({})",
                        f.id(),
                        f.code(),
                        f.message().unwrap_or("no message")
                    )
                })),
                Err(e) => problems.push(format!(
                    "{} message(s), outcome unknown: {}",
                    chunk.len(),
                    DisplayErrorContext(e)
                )),
            }
        }
        match problems.is_empty() {
            true => Ok(()),
            false => Err(ClientError::new(format!(
                "deleting {} message(s) from {} failed: {}",
                handles.len(),
                self.dest,
                problems.join("; ")
            ))),
        }
    }

    /// Nothing to leave: SQS consumers hold no connection state.
    async fn close(self: Box<Self>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_become_urls() {
        assert_eq!(endpoint_url("127.0.0.1:19200"), "http://127.0.0.1:19200");
        assert_eq!(endpoint_url("http://localhost:4566"), "http://localhost:4566");
    }

    #[test]
    fn refused_connections_are_found_among_the_causes() {
        #[derive(Debug, thiserror::Error)]
        #[error("dispatch failed")]
        struct Wrapper(#[source] std::io::Error);
        let refused = Wrapper(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"));
        assert!(connection_refused(&refused));
        let reset = Wrapper(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
        assert!(!connection_refused(&reset));
    }

    #[test]
    fn fifo_queue_names_end_in_fifo() {
        let log: LogSink = std::sync::Arc::new(|_: &str| {});
        let fifo = SqsBroker::new("127.0.0.1:1", Guarantee::ExactlyOnce, log.clone());
        assert_eq!(fifo.shared.queue_name("queue-1"), "queue-1.fifo");
        let standard = SqsBroker::new("127.0.0.1:1", Guarantee::AtLeastOnce, log);
        assert_eq!(standard.shared.queue_name("queue-1"), "queue-1");
    }
}
