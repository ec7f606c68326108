//! `queue`: producers → one topic (several partitions, keys) → one consumer group that
//! processes and commits as the delivery mode prescribes; its members are the crash targets.

use super::consume::{self, ConsumerRole, Policy};
use super::produce::{self, ProducerRole};
use super::Workload;
use crate::broker::ConsumerSpec;
use crate::history::Guarantee;

/// The consumer group's name in the history.
pub(super) const GROUP: &str = "consumers";

pub(super) fn start(w: &mut Workload) {
    let ctx = w.ctx.clone();
    let c = &ctx.settings.config;
    let topic = w.dests[0].0.clone();
    for index in 0..c.producers {
        let role = ProducerRole {
            index,
            process: ctx.new_process(),
            dest: topic.clone(),
            abort_ratio: 0.0,
        };
        w.spawn_producer(|ctx, stop| produce::run(ctx, role, stop));
    }
    let mode = ctx.settings.mode;
    ctx.members.expect(GROUP, c.partitions as usize);
    for slot in 0..c.consumers as usize {
        let spec = ConsumerSpec {
            mode,
            group: GROUP.into(),
            dests: vec![topic.clone()],
            committed_only: mode == Guarantee::ExactlyOnce,
            member: format!("c{slot}"),
        };
        let role = ConsumerRole {
            group: GROUP.into(),
            spec,
            policy: Policy::of(mode, c.ack, c.processing),
            process: ctx.new_process(),
            member: slot,
            crash_slot: Some(slot),
        };
        w.spawn_consumer(|ctx, stop| consume::run(ctx, role, stop));
    }
}
