//! `txn`: transactional producers send atomic batches whose keys spread over partitions (some
//! aborted on purpose); a `read_committed` group and a `read_uncommitted` group read them, so
//! aborted reads show up where they are allowed and nowhere else. Readers are crash targets.

use super::consume::{self, ConsumerRole, Policy};
use super::produce::{self, ProducerRole};
use super::Workload;
use crate::broker::ConsumerSpec;

pub(super) const COMMITTED: &str = "read-committed";
pub(super) const UNCOMMITTED: &str = "read-uncommitted";

/// The share of transactions aborted on purpose when the campaign does not say.
const DEFAULT_ABORT_RATIO: f64 = 0.1;

pub(super) fn start(w: &mut Workload) {
    let ctx = w.ctx.clone();
    let c = &ctx.settings.config;
    let topic = w.dests[0].0.clone();
    let abort_ratio = c.abort_ratio.unwrap_or(DEFAULT_ABORT_RATIO);
    for index in 0..c.producers {
        let role = ProducerRole {
            index,
            process: ctx.new_process(),
            dest: topic.clone(),
            abort_ratio,
        };
        w.spawn_producer(|ctx, stop| produce::run(ctx, role, stop));
    }
    let mut slot = 0;
    for (group, committed_only) in [(COMMITTED, true), (UNCOMMITTED, false)] {
        ctx.members.expect(group, c.partitions as usize);
        for member in 0..c.consumers as usize {
            let spec = ConsumerSpec {
                mode: ctx.settings.mode,
                group: group.into(),
                dests: vec![topic.clone()],
                committed_only,
                member: format!("c{member}"),
            };
            let role = ConsumerRole {
                group: group.into(),
                spec,
                policy: Policy::of(ctx.settings.mode, c.ack, c.processing),
                process: ctx.new_process(),
                member,
                crash_slot: Some(slot),
            };
            slot += 1;
            w.spawn_consumer(|ctx, stop| consume::run(ctx, role, stop));
        }
    }
}
