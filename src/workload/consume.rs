//! Consumers: receive a batch, then commit and process in the order the delivery mode
//! prescribes, crashing at the planned point. Processing is recording the `deliver` event: the
//! application's effect.
//!
//! - at-most-once: commit, then process. A commit that failed leaves the batch unprocessed
//!   (processing it could duplicate it); a crash after the commit loses the batch.
//! - at-least-once: process, then commit. A crash before the commit redelivers the batch.
//! - exactly-once: an idempotent consumer. Its store records each processed message (by id where
//!   the broker can store a message twice, else by position) before the effect, so a copy seen
//!   again is skipped (and recorded as skipped), even by the replacement of a crashed member.
//!
//! A campaign's `[workload]` may change two things (queue and txn workloads): `ack = "before" |
//! "after"` puts the acknowledgement before or after processing whatever the mode, and
//! `processing` makes each message take time (fixed or drawn from the seed) before its effect is
//! recorded, one message after the other, so that a slow consumer can outlive a visibility or
//! ack timeout while it holds a batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use super::state::Stats;
use super::{drop_crashed, open_until, state, Ctx, Point};
use crate::broker::{Consumer, ConsumerSpec, Received};
use crate::campaign::{AckOrder, ProcessingTime};
use crate::history::Guarantee;

/// How long one receive waits for a batch.
const RECEIVE_WAIT: Duration = Duration::from_millis(200);

/// A member that has held no share of its group for this long, while some share had no
/// reading member, is replaced by a new client, as a supervisor restarts a consumer that stopped
/// consuming. Kafka groups with static members have stayed so for minutes after members were
/// replaced together (no member assigned anything again; a CI run's drain timed out on it),
/// which no rebalance of a live group takes: those finish within a session timeout or two.
const HOLDING_NOTHING_LIMIT: Duration = Duration::from_secs(20);

/// A consumer of a broker without shares (every member may receive any message: Pulsar's Shared
/// subscriptions, RabbitMQ, SQS, NATS) that has received nothing for this long, while nothing at
/// all was delivered or committed in the run and the producers had sends acknowledged meanwhile,
/// is replaced by a new client, as a supervisor restarts a consumer that stopped consuming.
/// Pulsar consumers subscribed while a killed standalone broker came back received nothing for
/// 30 s although the producers' sends were acknowledged again at 200/s, until the client timed
/// something out and reconnected. Kafka members are left to the share rule above: a group
/// rebalancing after a restart legitimately delivers nothing for a session timeout or two.
const RECEIVING_NOTHING_LIMIT: Duration = Duration::from_secs(8);

/// The members whose reports count when judging that a group's shares have no reader.
const RECENT_REPORT: Duration = Duration::from_secs(5);

/// How a consumer handles a batch: when it acknowledges (commit, ack, delete) relative to
/// processing, whether it is idempotent, and how long processing one message takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Policy {
    /// Acknowledge, then process (else process, then acknowledge).
    pub commit_first: bool,
    /// Skip a message already processed (exactly-once).
    pub idempotent: bool,
    /// Time spent on each message before its effect; `None`: none.
    pub processing: Option<ProcessingTime>,
}

impl Policy {
    /// What `mode` prescribes, with the campaign's `ack` order and `processing` time over it.
    pub(super) fn of(mode: Guarantee, ack: Option<AckOrder>, processing: Option<ProcessingTime>) -> Policy {
        Policy {
            commit_first: ack.unwrap_or(AckOrder::of_mode(mode)) == AckOrder::Before,
            idempotent: mode == Guarantee::ExactlyOnce,
            processing,
        }
    }

    /// What the mode alone prescribes (consumers whose campaign knobs do not apply).
    pub(super) fn of_mode(mode: Guarantee) -> Policy {
        Policy::of(mode, None, None)
    }

    /// What a crash at `point` interrupts, for the history.
    fn crash_point(self, point: Point) -> &'static str {
        match (point, self.commit_first) {
            (Point::Early, _) => "after receiving, before committing or processing",
            (_, true) => "after committing, before processing",
            (_, false) => "after processing, before committing",
        }
    }
}

/// One member of a consumer group.
pub(super) struct ConsumerRole {
    /// The group's name in the history.
    pub group: String,
    pub spec: ConsumerSpec,
    pub policy: Policy,
    pub process: u64,
    /// Its place in the group (for the drain's view of who holds which shares).
    pub member: usize,
    /// Its crash slot, if the workload crashes it.
    pub crash_slot: Option<usize>,
}

pub(super) async fn run(ctx: Arc<Ctx>, mut role: ConsumerRole, stop: CancellationToken) -> Result<()> {
    let what = format!("a consumer of {}", role.group);
    let Some(mut consumer) = open_until(&ctx, &what, &stop, || ctx.broker.consumer(&role.spec)).await else {
        return Ok(());
    };
    let max = ctx.settings.config.poll_batch as usize;
    let mut holding_nothing_since: Option<Instant> = None;
    // When this consumer last had a batch (or was opened), and the acknowledged sends then.
    let mut last_batch = progress_mark(&ctx);
    while !stop.is_cancelled() {
        let batch = match consumer.receive(max, RECEIVE_WAIT).await {
            Ok(batch) => {
                if !batch.is_empty() {
                    last_batch = progress_mark(&ctx);
                } else if consumer.assigned().is_none()
                    && last_batch.0.elapsed() > RECEIVING_NOTHING_LIMIT
                    && ctx.stats.idle() > RECEIVING_NOTHING_LIMIT
                    && Stats::get(&ctx.stats.acked) > last_batch.1
                {
                    let why = format!(
                        "received nothing for {} s while nothing was delivered anywhere and sends were acknowledged",
                        RECEIVING_NOTHING_LIMIT.as_secs()
                    );
                    let Some(c) =
                        replace_stalled(&ctx, &role, &what, &stop, consumer, &why, RECEIVING_NOTHING_LIMIT).await
                    else {
                        return Ok(());
                    };
                    consumer = c;
                    last_batch = progress_mark(&ctx);
                    continue;
                }
                let assigned = consumer.assigned();
                ctx.members.report(&role.group, role.member, assigned);
                if assigned != Some(0) {
                    holding_nothing_since = None;
                } else if holding_nothing_since.get_or_insert_with(Instant::now).elapsed() > HOLDING_NOTHING_LIMIT
                    && !ctx.members.complete(RECENT_REPORT)
                {
                    let why = format!(
                        "held no share of its group for {} s while some share had no reader",
                        HOLDING_NOTHING_LIMIT.as_secs()
                    );
                    holding_nothing_since = None;
                    let Some(c) =
                        replace_stalled(&ctx, &role, &what, &stop, consumer, &why, HOLDING_NOTHING_LIMIT).await
                    else {
                        return Ok(());
                    };
                    consumer = c;
                    last_batch = progress_mark(&ctx);
                    continue;
                }
                if let Some(held) = consumer.rebalanced() {
                    ctx.rebalance(role.process, &role.group, &held)?;
                }
                batch
            }
            Err(e) => {
                ctx.note(&format!("process {} ({}): {e}", role.process, role.group));
                if e.fatal {
                    consumer.close().await;
                    let Some(c) = open_until(&ctx, &what, &stop, || ctx.broker.consumer(&role.spec)).await else {
                        return Ok(());
                    };
                    consumer = c;
                    last_batch = progress_mark(&ctx);
                }
                continue;
            }
        };
        if batch.is_empty() {
            continue;
        }
        ctx.stats.touch();
        let Some(point) = ctx.crash_for_batch(role.crash_slot) else {
            handle(&ctx, &role, consumer.as_mut(), &batch, false).await?;
            continue;
        };
        if point != Point::Early {
            handle(&ctx, &role, consumer.as_mut(), &batch, true).await?;
        }
        ctx.crash(
            role.process,
            &role.group,
            point,
            role.policy.crash_point(point),
            &ids(&batch),
        )?;
        drop_crashed(consumer);
        ctx.members.report(&role.group, role.member, Some(0));
        role.process = ctx.new_process();
        let Some(c) = open_until(&ctx, &what, &stop, || ctx.broker.consumer(&role.spec)).await else {
            return Ok(());
        };
        consumer = c;
    }
    consumer.close().await;
    Ok(())
}

/// Now, and the sends acknowledged so far: what the receiving-nothing rule compares against.
fn progress_mark(ctx: &Ctx) -> (Instant, u64) {
    (Instant::now(), Stats::get(&ctx.stats.acked))
}

/// Replace a consumer that stopped consuming, as a supervisor restarts one: say `why` in the run
/// log, close it within `close_within` (closing a member stuck in a group can wait on that group
/// too) and open a new one; `None` when the run phase ended first.
async fn replace_stalled(
    ctx: &Ctx,
    role: &ConsumerRole,
    what: &str,
    stop: &CancellationToken,
    consumer: Box<dyn Consumer>,
    why: &str,
    close_within: Duration,
) -> Option<Box<dyn Consumer>> {
    ctx.note(&format!(
        "process {} ({}): {why}; replaced by a new consumer",
        role.process, role.group
    ));
    let _ = tokio::time::timeout(close_within, consumer.close()).await;
    open_until(ctx, what, stop, || ctx.broker.consumer(&role.spec)).await
}

fn ids(batch: &[Received]) -> Vec<String> {
    batch.iter().map(|m| m.id.clone()).collect()
}

/// Commit and process `batch` in the policy's order; with `crash_between`, stop after the
/// first step (the caller crashes).
async fn handle(
    ctx: &Ctx,
    role: &ConsumerRole,
    consumer: &mut dyn Consumer,
    batch: &[Received],
    crash_between: bool,
) -> Result<()> {
    if role.policy.commit_first {
        if let Err(e) = consumer.commit(batch).await {
            ctx.note(&format!(
                "process {} ({}): {e}; leaving {} message(s) unprocessed",
                role.process,
                role.group,
                batch.len()
            ));
            return Ok(());
        }
        if crash_between {
            return Ok(());
        }
        process(ctx, role, batch).await?;
    } else {
        process(ctx, role, batch).await?;
        if crash_between {
            return Ok(());
        }
        if let Err(e) = consumer.commit(batch).await {
            ctx.note(&format!("process {} ({}): {e}", role.process, role.group));
        }
    }
    Ok(())
}

/// Process `batch`: record its effect (`deliver`). An idempotent consumer first skips what it
/// already processed. With a processing time, each message takes its time before its own
/// effect is recorded, one after the other, as an application working through a batch does.
async fn process(ctx: &Ctx, role: &ConsumerRole, batch: &[Received]) -> Result<()> {
    let (new, skipped): (Vec<&Received>, Vec<&Received>) = if role.policy.idempotent {
        // Where the broker may store a message twice, the same message is the same id;
        // elsewhere the same stored copy, so a broker's own duplicate is not hidden.
        let by_id = ctx.broker.duplicates_writes();
        let keys = batch.iter().map(|m| match by_id {
            true => m.id.clone(),
            false => format!("{}/{}", m.dest, m.pos),
        });
        let fresh = ctx.effects.first_time(&role.group, keys)?;
        let (new, skipped): (Vec<_>, Vec<_>) = batch.iter().zip(fresh).partition(|(_, fresh)| *fresh);
        (
            new.into_iter().map(|(m, _)| m).collect(),
            skipped.into_iter().map(|(m, _)| m).collect(),
        )
    } else {
        (batch.iter().collect(), Vec::new())
    };
    let Some(processing) = role.policy.processing else {
        return ctx.deliver(role.process, &role.group, &new, &skipped);
    };
    ctx.deliver(role.process, &role.group, &[], &skipped)?;
    for message in new {
        // Drawn from the seed, this consumer process and the message: the same run draws the
        // same times, whichever order the tasks run in.
        let unit = state::unit(ctx.settings.seed ^ PROCESSING_STREAM, role.process, fnv1a(&message.id));
        tokio::time::sleep(processing.at(unit)).await;
        ctx.deliver(role.process, &role.group, &[message], &[])?;
    }
    Ok(())
}

/// A stable 64-bit hash of a message id (FNV-1a), for the processing-time draw.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Keeps the processing-time draws apart from the seed's other uses (keys, crash plans).
const PROCESSING_STREAM: u64 = 0x5052_4f43_4553_5349;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ack_order_follows_the_mode_unless_the_campaign_overrides_it() {
        let at = |mode, ack| Policy::of(mode, ack, None);
        assert!(Policy::of_mode(Guarantee::AtMostOnce).commit_first);
        assert!(!Policy::of_mode(Guarantee::AtLeastOnce).commit_first);
        assert!(!Policy::of_mode(Guarantee::ExactlyOnce).commit_first);
        assert!(Policy::of_mode(Guarantee::ExactlyOnce).idempotent);
        assert!(at(Guarantee::AtLeastOnce, Some(AckOrder::Before)).commit_first);
        assert!(!at(Guarantee::AtMostOnce, Some(AckOrder::After)).commit_first);
        let eager_idempotent = at(Guarantee::ExactlyOnce, Some(AckOrder::Before));
        assert!(eager_idempotent.commit_first && eager_idempotent.idempotent);
        assert_eq!(
            eager_idempotent.crash_point(Point::Late),
            "after committing, before processing"
        );
        assert_eq!(
            at(Guarantee::AtMostOnce, Some(AckOrder::After)).crash_point(Point::Late),
            "after processing, before committing"
        );
    }

    #[test]
    fn processing_draws_depend_on_the_message_not_on_the_order() {
        assert_eq!(fnv1a("p1-7"), fnv1a("p1-7"));
        assert_ne!(fnv1a("p1-7"), fnv1a("p1-8"));
        let range = ProcessingTime::parse("100ms..500ms").unwrap();
        let draws: Vec<Duration> = (0..200)
            .map(|i| range.at(state::unit(7 ^ PROCESSING_STREAM, 3, fnv1a(&format!("p0-{i}")))))
            .collect();
        assert!(draws.iter().all(|d| (range.min..=range.max).contains(d)));
        assert!(draws.iter().any(|d| *d < Duration::from_millis(200)));
        assert!(draws.iter().any(|d| *d > Duration::from_millis(400)));
    }
}
