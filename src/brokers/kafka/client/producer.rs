//! Kafka producers: plain (at-most-once, at-least-once) and transactional (exactly-once).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::BaseRecord;
use tokio::sync::oneshot;

use super::txn::Txn;
use super::{blocking, Pending, Tp};
use crate::broker::{encode_body, positions_of_all, Completion, Outcome, Outgoing, Producer};

/// Enqueue one message; the receiver resolves with its outcome. An error here means the
/// message never entered the client: it was not written.
pub(super) async fn enqueue(producer: &Tp, m: &Outgoing) -> Result<oneshot::Receiver<Outcome>, String> {
    let body = encode_body(&m.id, m.from.as_deref(), m.size);
    loop {
        let (tx, rx) = oneshot::channel();
        let mut record =
            BaseRecord::<str, [u8], _>::with_opaque_to(&m.dest, Box::new(Pending::Awaited(tx))).payload(&body[..]);
        if let Some(key) = &m.key {
            record = record.key(key.as_str());
        }
        match producer.send(record) {
            Ok(()) => return Ok(rx),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err((e, _)) => return Err(format!("not enqueued: {e}")),
        }
    }
}

pub(super) async fn delivered(rx: oneshot::Receiver<Outcome>) -> Outcome {
    rx.await
        .unwrap_or_else(|_| Outcome::Info("the client went away before the delivery report".into()))
}

/// A plain producer (at-most-once, at-least-once) or a transactional one (exactly-once).
pub struct KafkaProducer {
    pub(super) plain: Option<Arc<Tp>>,
    pub(super) txn: Option<tokio::sync::Mutex<Txn>>,
}

#[async_trait]
impl Producer for KafkaProducer {
    async fn send_one(&self, message: &Outgoing) -> Outcome {
        self.send(std::slice::from_ref(message)).await
    }

    fn transactional(&self) -> bool {
        self.txn.is_some()
    }

    async fn send(&self, messages: &[Outgoing]) -> Outcome {
        if let Some(txn) = &self.txn {
            return txn.lock().await.send(messages, false).await;
        }
        let producer = self.plain.as_ref().expect("a producer is plain or transactional");
        let mut receipts = Vec::with_capacity(messages.len());
        for m in messages {
            match enqueue(producer, m).await {
                Ok(rx) => receipts.push(rx),
                Err(e) => receipts.push({
                    let (tx, rx) = oneshot::channel();
                    let _ = tx.send(Outcome::Fail(e));
                    rx
                }),
            }
        }
        let mut outcomes = Vec::with_capacity(receipts.len());
        for rx in receipts {
            outcomes.push(delivered(rx).await);
        }
        combine(outcomes)
    }

    async fn send_and_abort(&self, messages: &[Outgoing]) -> Outcome {
        match &self.txn {
            Some(txn) => txn.lock().await.send(messages, true).await,
            None => Outcome::Fail("not a transactional producer: nothing was sent".into()),
        }
    }

    fn send_detached(&self, message: Outgoing, done: Completion) -> Result<(), (Outgoing, Completion)> {
        let Some(producer) = &self.plain else {
            return Err((message, done));
        };
        let body = encode_body(&message.id, message.from.as_deref(), message.size);
        let (dest, key) = (message.dest.clone(), message.key.clone());
        let mut record = BaseRecord::<str, [u8], _>::with_opaque_to(&dest, Box::new(Pending::Detached(message, done)))
            .payload(&body[..]);
        if let Some(key) = &key {
            record = record.key(key.as_str());
        }
        if let Err((e, record)) = producer.send(record) {
            // It never entered the client (a full queue included): not written.
            if let Pending::Detached(message, done) = *record.delivery_opaque {
                done(Outcome::Fail(format!("not enqueued: {e}")), message);
            }
        }
        Ok(())
    }

    fn failed_fatally(&self) -> Option<String> {
        use rdkafka::producer::Producer as _;
        let (code, reason) = self.plain.as_ref()?.client().fatal_error()?;
        Some(format!("{code}: {reason}"))
    }

    async fn close(self: Box<Self>, timeout: Duration) {
        use rdkafka::producer::Producer as _;
        if let Some(p) = self.plain {
            blocking(move || {
                let _ = p.flush(timeout);
                drop(p);
            })
            .await;
        }
        if let Some(txn) = self.txn {
            txn.into_inner().close().await;
        }
    }
}

/// Several messages sent without a transaction: ok only if all were, fail only if none was.
fn combine(outcomes: Vec<Outcome>) -> Outcome {
    if outcomes.iter().all(|o| o.is_ok()) {
        return Outcome::Ok(positions_of_all(&outcomes));
    }
    let errors: Vec<String> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Ok(_) => None,
            Outcome::Fail(e) | Outcome::Info(e) => Some(e.clone()),
        })
        .collect();
    if outcomes.iter().all(|o| matches!(o, Outcome::Fail(_))) {
        Outcome::Fail(errors.join("; "))
    } else {
        Outcome::Info(errors.join("; "))
    }
}
