//! The context every task of a workload shares, and how operations are recorded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use super::state::{self, EffectStore, Membership, Pacer, Stats, Tracker};
use super::{crash, Settings};
use crate::broker::{Broker, LogSink, Outcome, Outgoing, Received};
use crate::history::writer::Recorder;
use crate::history::{ops, EventType, Message, OpValue, Process};

/// Shared by every task of a workload.
pub struct Ctx {
    pub recorder: Recorder,
    pub broker: Arc<dyn Broker>,
    pub stats: Arc<Stats>,
    pub log: LogSink,
    pub settings: Settings,
    pub(super) tracker: Tracker,
    /// History names of the groups the tracker follows (their index is the tracker's).
    pub(super) tracked_groups: Vec<String>,
    pub(super) effects: EffectStore,
    pub(super) members: Membership,
    pub(super) crashes: crash::Board,
    pub(super) pacer: Pacer,
    pub(super) next_process: AtomicU64,
    /// The first error of any task; set once, ends the run.
    pub(super) error: Mutex<Option<anyhow::Error>>,
    pub(super) failed: CancellationToken,
}

impl Ctx {
    pub fn new_process(&self) -> u64 {
        self.next_process.fetch_add(1, Ordering::Relaxed)
    }

    pub(super) fn note(&self, what: &str) {
        (self.log)(what);
    }

    pub(super) fn message(m: &Outgoing) -> Message {
        Message {
            id: m.id.clone(),
            key: m.key.clone(),
            dest: Some(m.dest.clone()),
            pos: None,
            from: m.from.clone(),
            redelivered: false,
        }
    }

    pub(super) fn send_value(messages: &[Outgoing], atomic: bool) -> OpValue {
        OpValue {
            messages: messages.iter().map(Self::message).collect(),
            atomic,
            ..OpValue::default()
        }
    }

    /// Record the invocation of a send.
    pub(super) fn invoke_send(&self, process: u64, messages: &[Outgoing], atomic: bool) -> Result<u64> {
        Stats::add(&self.stats.sends, 1);
        Ok(self.recorder.invoke(
            Process::Client(process),
            ops::SEND,
            Some(Self::send_value(messages, atomic)),
        )?)
    }

    /// Record how a send ended; acknowledged producer messages go to the tracker.
    pub(super) fn complete_send(
        &self,
        process: u64,
        op: u64,
        messages: &[Outgoing],
        atomic: bool,
        outcome: &Outcome,
    ) -> Result<()> {
        let (kind, error) = match outcome {
            Outcome::Ok => (EventType::Ok, None),
            Outcome::Fail(e) => (EventType::Fail, Some(e.clone())),
            Outcome::Info(e) => (EventType::Info, Some(e.clone())),
        };
        match kind {
            EventType::Ok => {
                Stats::add(&self.stats.acked, 1);
                for m in messages.iter().filter(|m| m.from.is_none()) {
                    if let Some((p, s)) = state::parse_id(&m.id) {
                        self.tracker.acked(p, s);
                    }
                }
            }
            EventType::Fail => Stats::add(&self.stats.failed, 1),
            _ => Stats::add(&self.stats.indeterminate, 1),
        }
        let value = Some(Self::send_value(messages, atomic));
        Ok(self
            .recorder
            .complete(Process::Client(process), op, kind, ops::SEND, value, error)?)
    }

    /// Record that `process` processed `messages` for `group`, and received `skipped` again
    /// without processing them (an idempotent consumer's deduplication).
    pub(super) fn deliver(
        &self,
        process: u64,
        group: &str,
        messages: &[&Received],
        skipped: &[&Received],
    ) -> Result<()> {
        if messages.is_empty() && skipped.is_empty() {
            return Ok(());
        }
        let tracked = self.tracked_groups.iter().position(|g| g == group);
        let value = OpValue {
            group: Some(group.to_string()),
            messages: messages
                .iter()
                .map(|r| {
                    if let Some(g) = tracked {
                        self.tracker.delivered(g, r.from.as_deref().unwrap_or(&r.id));
                    }
                    Self::received(r)
                })
                .collect(),
            skipped: skipped.iter().map(|r| Self::received(r)).collect(),
            ..OpValue::default()
        };
        Stats::add(&self.stats.deliveries, messages.len() as u64);
        Stats::add(&self.stats.skipped, skipped.len() as u64);
        self.stats.touch();
        Ok(self
            .recorder
            .event(Process::Client(process), EventType::Ok, ops::DELIVER, Some(value), None)?)
    }

    fn received(r: &Received) -> Message {
        Message {
            id: r.id.clone(),
            key: r.key.clone(),
            dest: Some(r.dest.clone()),
            pos: Some(r.pos.clone()),
            from: r.from.clone(),
            redelivered: r.redelivered,
        }
    }

    /// Record a client crash: `point` says where, `dropped` the messages it had in hand.
    pub(super) fn crash(&self, process: u64, group: &str, point: &str, dropped: &[String]) -> Result<()> {
        Stats::add(&self.stats.crashes, 1);
        let mut value = OpValue {
            group: Some(group.to_string()),
            ..OpValue::default()
        };
        value.extra.insert("point".into(), point.into());
        value.extra.insert("dropped".into(), dropped.into());
        let error = format!("crashed by the workload {point}");
        self.note(&format!(
            "process {process} ({group}) crashed {point} holding {} message(s)",
            dropped.len()
        ));
        Ok(self.recorder.event(
            Process::Client(process),
            EventType::Info,
            ops::CRASH,
            Some(value),
            Some(error),
        )?)
    }

    /// Remember the first error and end the run.
    pub(super) fn fail(&self, e: anyhow::Error) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(e);
        }
        self.failed.cancel();
    }

    /// A message of producer `index` (process `process`), with its key drawn from the seed.
    pub(super) fn outgoing(&self, index: u32, process: u64, seq: u64, dest: &str) -> Outgoing {
        let c = &self.settings.config;
        let key = state::mix(self.settings.seed, index as u64, seq) % c.keys as u64;
        Outgoing {
            id: format!("p{process}-{seq}"),
            key: Some(format!("k{key}")),
            dest: dest.to_string(),
            from: None,
            size: c.message_size as usize,
        }
    }
}
