//! Producers: unique ids, keys from the seed, paced sends, and what the application does after
//! each outcome. A plain producer (at-least-once, and exactly-once on brokers without
//! transactions, where an idempotent consumer absorbs the copies) re-sends the same id after a
//! send that did not end ok; a transactional producer never re-sends (a committed but
//! unacknowledged transaction sent again would be written twice), and each send is one
//! transaction.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use super::{open_until, state, Ctx};
use crate::broker::{Completion, Outcome, Outgoing, Producer, ProducerSpec};
use crate::history::Guarantee;

/// What one producer does.
pub(super) struct ProducerRole {
    /// Its place among the producers (the seed's choices for its messages hang on it).
    pub index: u32,
    pub process: u64,
    pub dest: String,
    /// Share of transactions aborted on purpose (txn workload).
    pub abort_ratio: f64,
}

/// How long a producer waits at the end for its last sends' outcomes.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);
/// The pause before the application sends a message again (at-least-once).
const RESEND_DELAY: Duration = Duration::from_millis(100);

/// The identity of producer `index` (a Kafka transactional id is made from it).
pub(super) fn producer_identity(index: u32) -> String {
    format!("producer-{index}")
}

pub(super) async fn run(ctx: Arc<Ctx>, role: ProducerRole, stop: CancellationToken) -> Result<()> {
    let spec = ProducerSpec {
        mode: ctx.settings.mode,
        identity: producer_identity(role.index),
    };
    let what = format!("producer {}", role.index);
    let Some(mut producer) = open_until(&ctx, &what, &stop, || ctx.broker.producer(&spec)).await else {
        return Ok(());
    };
    if producer.transactional() {
        transactions(&ctx, &role, producer.as_ref(), &stop).await?;
        producer.close(CLOSE_TIMEOUT).await;
        return Ok(());
    }
    // What the application has to send next and again, kept across replaced clients.
    let (again_tx, again) = mpsc::unbounded_channel::<(Outgoing, Instant)>();
    let mut sending = Sending {
        seq: 0,
        again_tx,
        again,
    };
    loop {
        let producer_now: Arc<Box<dyn Producer>> = Arc::new(producer);
        let ended = plain(&ctx, &role, &producer_now, &mut sending, &stop).await?;
        // Every send's callback has run (`plain` waited for their permits), so this is the
        // only reference left.
        if let Ok(old) = Arc::try_unwrap(producer_now) {
            old.close(CLOSE_TIMEOUT).await;
        }
        let PlainEnd::Failed(reason) = ended else {
            return Ok(());
        };
        // What an application does when its client can send no more: a new client.
        ctx.note(&format!(
            "producer {} (process {}) can send no more ({reason}); replaced by a new producer",
            role.index, role.process
        ));
        let Some(new) = open_until(&ctx, &what, &stop, || ctx.broker.producer(&spec)).await else {
            return Ok(());
        };
        producer = new;
    }
}

/// A plain producer's application state: the next message's sequence number, and the messages
/// to send again (a send that did not end ok, at least once).
struct Sending {
    seq: u64,
    again_tx: mpsc::UnboundedSender<(Outgoing, Instant)>,
    again: mpsc::UnboundedReceiver<(Outgoing, Instant)>,
}

/// Why [`plain`] returned.
enum PlainEnd {
    Stopped,
    /// The client failed fatally (the reason): the caller replaces it.
    Failed(String),
}

/// A plain producer: one message per send, up to `in_flight` sends at a time. Each send ends
/// in a callback (no task per send); in at-least-once, one that did not end ok comes back here
/// to be sent again, as the same logical message. Returns when the run stops or the client
/// failed fatally, once every send in flight has ended.
async fn plain(
    ctx: &Arc<Ctx>,
    role: &ProducerRole,
    producer: &Arc<Box<dyn Producer>>,
    sending: &mut Sending,
    stop: &CancellationToken,
) -> Result<PlainEnd> {
    let in_flight = ctx.settings.config.in_flight as usize;
    let permits = Arc::new(Semaphore::new(in_flight));
    // Only at-most-once gives up on a message: an exactly-once mode without transactions is the
    // at-least-once producer plus an idempotent consumer.
    let again_tx = (ctx.settings.mode != Guarantee::AtMostOnce).then(|| sending.again_tx.clone());
    let mut end = PlainEnd::Stopped;
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = stop.cancelled() => break,
        };
        if let Some(reason) = producer.failed_fatally() {
            end = PlainEnd::Failed(reason);
            break;
        }
        let message = match sending.again.try_recv() {
            Ok((message, not_before)) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(not_before.into()) => message,
                    _ = stop.cancelled() => break,
                }
            }
            Err(_) => {
                tokio::select! {
                    _ = ctx.pacer.wait(1) => {}
                    _ = stop.cancelled() => break,
                }
                sending.seq += 1;
                ctx.outgoing(role.index, role.process, sending.seq - 1, &role.dest)
            }
        };
        if stop.is_cancelled() {
            break;
        }
        let op = ctx.invoke_send(role.process, std::slice::from_ref(&message), false)?;
        let (ctx2, process, again_tx, stop2) = (ctx.clone(), role.process, again_tx.clone(), stop.clone());
        let done: Completion = Box::new(move |outcome, message| {
            if let Err(e) = ctx2.complete_send(process, op, std::slice::from_ref(&message), false, &outcome) {
                ctx2.fail(e);
            }
            if let (false, Some(tx)) = (outcome.is_ok() || stop2.is_cancelled(), again_tx) {
                // The application does not know whether it was written: the same message again.
                let _ = tx.send((message, Instant::now() + RESEND_DELAY));
            }
            drop(permit);
        });
        if let Err((message, done)) = producer.send_detached(message, done) {
            let producer = producer.clone();
            tokio::spawn(async move {
                let outcome = producer.send(std::slice::from_ref(&message)).await;
                done(outcome, message);
            });
        }
    }
    // The sends in flight end when their permits come back.
    let _ = permits.acquire_many(in_flight as u32).await;
    Ok(end)
}

/// A transactional producer: each send is a transaction of `txn_size` messages.
async fn transactions(ctx: &Ctx, role: &ProducerRole, producer: &dyn Producer, stop: &CancellationToken) -> Result<()> {
    let size = ctx.settings.config.txn_size as usize;
    let mut seq = 0;
    for txn in 0.. {
        tokio::select! {
            _ = ctx.pacer.wait(size) => {}
            _ = stop.cancelled() => return Ok(()),
        }
        if stop.is_cancelled() {
            return Ok(());
        }
        let messages: Vec<_> = (seq..seq + size as u64)
            .map(|n| ctx.outgoing(role.index, role.process, n, &role.dest))
            .collect();
        seq += size as u64;
        let abort = role.abort_ratio > 0.0
            && state::unit(ctx.settings.seed ^ 0xab0a7, role.index as u64, txn) < role.abort_ratio;
        let atomic = messages.len() > 1;
        let op = ctx.invoke_send(role.process, &messages, atomic)?;
        let outcome = if abort {
            producer.send_and_abort(&messages).await
        } else {
            producer.send(&messages).await
        };
        ctx.complete_send(role.process, op, &messages, atomic, &outcome)?;
        if let Outcome::Info(e) = &outcome {
            ctx.note(&format!("producer {} transaction {txn}: {e}", role.index));
        }
    }
    Ok(())
}
