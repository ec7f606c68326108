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

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use super::{drop_crashed, open_until, Ctx, Point};
use crate::broker::{Consumer, ConsumerSpec, Received};
use crate::history::Guarantee;

/// How long one receive waits for a batch.
const RECEIVE_WAIT: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Policy {
    CommitFirst,
    ProcessFirst,
    Idempotent,
}

impl Policy {
    pub(super) fn of(mode: Guarantee) -> Policy {
        match mode {
            Guarantee::AtMostOnce => Policy::CommitFirst,
            Guarantee::AtLeastOnce => Policy::ProcessFirst,
            Guarantee::ExactlyOnce => Policy::Idempotent,
        }
    }

    /// What a crash at `point` interrupts, for the history.
    fn crash_point(self, point: Point) -> &'static str {
        match (self, point) {
            (_, Point::Early) => "after receiving, before committing or processing",
            (Policy::CommitFirst, _) => "after committing, before processing",
            _ => "after processing, before committing",
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
    while !stop.is_cancelled() {
        let batch = match consumer.receive(max, RECEIVE_WAIT).await {
            Ok(batch) => {
                ctx.members.report(&role.group, role.member, consumer.assigned());
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
    let all: Vec<&Received> = batch.iter().collect();
    match role.policy {
        Policy::CommitFirst => {
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
            ctx.deliver(role.process, &role.group, &all, &[])?;
        }
        Policy::ProcessFirst | Policy::Idempotent => {
            if role.policy == Policy::Idempotent {
                // Where the broker may store a message twice, the same message is the same id;
                // elsewhere the same stored copy, so a broker's own duplicate is not hidden.
                let by_id = ctx.broker.duplicates_writes();
                let keys = batch.iter().map(|m| match by_id {
                    true => m.id.clone(),
                    false => format!("{}/{}", m.dest, m.pos),
                });
                let fresh = ctx.effects.first_time(&role.group, keys)?;
                let (new, skipped): (Vec<_>, Vec<_>) = batch.iter().zip(fresh).partition(|(_, fresh)| *fresh);
                let new: Vec<&Received> = new.into_iter().map(|(m, _)| m).collect();
                let skipped: Vec<&Received> = skipped.into_iter().map(|(m, _)| m).collect();
                ctx.deliver(role.process, &role.group, &new, &skipped)?;
            } else {
                ctx.deliver(role.process, &role.group, &all, &[])?;
            }
            if crash_between {
                return Ok(());
            }
            if let Err(e) = consumer.commit(batch).await {
                ctx.note(&format!("process {} ({}): {e}", role.process, role.group));
            }
        }
    }
    Ok(())
}
