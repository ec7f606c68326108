//! The context every task of a workload shares, and how operations are recorded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::state::{self, EffectStore, Membership, Pacer, Stats, Tracker};
use super::{crash, Settings};
use crate::broker::{Broker, LogSink, Outcome, Outgoing, Received};
use crate::history::writer::Recorder;
use crate::history::{ops, EventType, MessageRef, OpValue, Process};

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

    /// Record the invocation of a send.
    pub(super) fn invoke_send(&self, process: u64, messages: &[Outgoing], atomic: bool) -> Result<u64> {
        Stats::add(&self.stats.sends, 1);
        let value = SendValue {
            messages,
            atomic,
            positions: None,
        };
        Ok(self
            .recorder
            .invoke_value(Process::Client(process), ops::SEND, Some(&value))?)
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
            Outcome::Ok(_) => (EventType::Ok, None),
            Outcome::Fail(e) => (EventType::Fail, Some(e.as_str())),
            Outcome::Info(e) => (EventType::Info, Some(e.as_str())),
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
        // Where the broker put each message, when it said so for every one of them.
        let positions = match outcome {
            Outcome::Ok(positions) if positions.len() == messages.len() => Some(&positions[..]),
            _ => None,
        };
        let value = SendValue {
            messages,
            atomic,
            positions,
        };
        Ok(self
            .recorder
            .complete_value(Process::Client(process), op, kind, ops::SEND, Some(&value), error)?)
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
        if let Some(g) = self.tracked_groups.iter().position(|t| t == group) {
            for r in messages {
                self.tracker.delivered(g, r.from.as_deref().unwrap_or(&r.id));
            }
        }
        Stats::add(&self.stats.deliveries, messages.len() as u64);
        Stats::add(&self.stats.skipped, skipped.len() as u64);
        self.stats.touch();
        let value = DeliverValue {
            group,
            messages,
            skipped,
        };
        Ok(self.recorder.event_value(
            Process::Client(process),
            EventType::Ok,
            ops::DELIVER,
            Some(&value),
            None,
        )?)
    }

    /// Record a client crash: `planned` is the crash point of the plan, `point` says in words
    /// where the client was, `dropped` the messages it had in hand.
    pub(super) fn crash(
        &self,
        process: u64,
        group: &str,
        planned: crash::Point,
        point: &str,
        dropped: &[String],
    ) -> Result<()> {
        Stats::add(&self.stats.crashes, 1);
        let mut value = OpValue {
            group: Some(group.to_string()),
            ..OpValue::default()
        };
        value.extra.insert("point".into(), point.into());
        value.extra.insert("planned".into(), planned.name().into());
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

    /// Record that `process`'s partitions changed (a consumer group rebalance): `held` is what
    /// it holds now. The checker restarts its skip tracking for partitions it no longer holds.
    pub(super) fn rebalance(&self, process: u64, group: &str, held: &[(String, u32)]) -> Result<()> {
        let mut assigned = serde_json::Map::new();
        for (dest, partition) in held {
            let partitions = assigned.entry(dest.clone()).or_insert_with(|| serde_json::json!([]));
            if let Some(list) = partitions.as_array_mut() {
                list.push((*partition).into());
            }
        }
        let mut value = OpValue {
            group: Some(group.to_string()),
            ..OpValue::default()
        };
        value.extra.insert("assigned".into(), assigned.into());
        Ok(self.recorder.event(
            Process::Client(process),
            EventType::Ok,
            ops::REBALANCE,
            Some(value),
            None,
        )?)
    }

    /// Record a planned client crash that did not happen, and why: a nemesis `crash` that ended
    /// `fail` (the verdict's evidence counts it as skipped).
    pub(super) fn crash_skipped(&self, slot: usize, planned: crash::Point, reason: &str) {
        let mut value = OpValue::default();
        value.extra.insert("slot".into(), slot.into());
        value.extra.insert("planned".into(), planned.name().into());
        self.note(&format!(
            "planned crash of slot {slot} ({}) skipped: {reason}",
            planned.name()
        ));
        if let Err(e) = self.recorder.event(
            Process::Nemesis,
            EventType::Fail,
            ops::CRASH,
            Some(value),
            Some(reason.to_string()),
        ) {
            self.fail(e.into());
        }
    }

    /// The crash due at `slot`'s batch in hand, if any (see [`crash::Board::take`]).
    pub(super) fn crash_for_batch(&self, slot: Option<usize>) -> Option<crash::Point> {
        self.crashes.take(slot)
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

/// A send's `value` as the history writes it (the same JSON as [`OpValue`] with
/// [`crate::history::Message`]s), serialized straight from the workload's own messages: no copy
/// of an id, key or topic per event.
struct SendValue<'a> {
    messages: &'a [Outgoing],
    atomic: bool,
    /// On an acknowledgement: each message's position, in order.
    positions: Option<&'a [String]>,
}

impl Serialize for SendValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        match self.positions {
            Some(positions) => {
                let placed = self.messages.iter().zip(positions).map(|(m, pos)| MessageRef {
                    pos: Some(pos.as_str()),
                    ..outgoing_ref(m)
                });
                map.serialize_entry("messages", &Seq(placed))?;
            }
            None => map.serialize_entry("messages", &Seq(self.messages.iter().map(outgoing_ref)))?,
        }
        if self.atomic {
            map.serialize_entry("atomic", &true)?;
        }
        map.end()
    }
}

/// A delivery's `value`: group, the messages processed, the copies skipped.
struct DeliverValue<'a> {
    group: &'a str,
    messages: &'a [&'a Received],
    skipped: &'a [&'a Received],
}

impl Serialize for DeliverValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("group", self.group)?;
        if !self.messages.is_empty() {
            map.serialize_entry("messages", &Seq(self.messages.iter().map(|r| received_ref(r))))?;
        }
        if !self.skipped.is_empty() {
            map.serialize_entry("skipped", &Seq(self.skipped.iter().map(|r| received_ref(r))))?;
        }
        map.end()
    }
}

fn outgoing_ref(m: &Outgoing) -> MessageRef<'_> {
    MessageRef {
        id: &m.id,
        key: m.key.as_deref(),
        dest: Some(&m.dest),
        pos: None,
        from: m.from.as_deref(),
        redelivered: false,
    }
}

fn received_ref(r: &Received) -> MessageRef<'_> {
    MessageRef {
        id: &r.id,
        key: r.key.as_deref(),
        dest: Some(&r.dest),
        pos: Some(&r.pos),
        from: r.from.as_deref(),
        redelivered: r.redelivered,
    }
}

/// Serializes the items of an iterator as a JSON array without collecting them.
struct Seq<I>(I);

impl<I> Serialize for Seq<I>
where
    I: Iterator + Clone,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Message;

    fn outgoing(id: &str, from: Option<&str>) -> Outgoing {
        Outgoing {
            id: id.into(),
            key: Some("k3".into()),
            dest: "orders".into(),
            from: from.map(Into::into),
            size: 100,
        }
    }

    fn received(id: &str, redelivered: bool) -> Received {
        Received {
            id: id.into(),
            key: None,
            dest: "orders".into(),
            pos: "0@42".into(),
            from: Some("p1-1".into()),
            redelivered,
            handle: Box::new(()),
        }
    }

    fn owned(m: MessageRef) -> Message {
        Message {
            id: m.id.into(),
            key: m.key.map(Into::into),
            dest: m.dest.map(Into::into),
            pos: m.pos.map(Into::into),
            from: m.from.map(Into::into),
            redelivered: m.redelivered,
        }
    }

    /// The borrowed values write exactly what the owned history types write, so readers of
    /// format v1 see no difference.
    #[test]
    fn borrowed_values_serialize_like_op_values() {
        let sent = [outgoing("p1-1", None), outgoing("p1-2", Some("p0-9"))];
        let positions = ["0@7".to_string(), "1@3".to_string()];
        for (atomic, placed) in [(false, false), (true, false), (false, true)] {
            let with_pos = |(m, p): (&Outgoing, &String)| {
                let mut message = owned(outgoing_ref(m));
                message.pos = placed.then(|| p.clone());
                message
            };
            let owned_value = OpValue {
                messages: sent.iter().zip(&positions).map(with_pos).collect(),
                atomic,
                ..OpValue::default()
            };
            let borrowed = SendValue {
                messages: &sent,
                atomic,
                positions: placed.then_some(&positions[..]),
            };
            assert_eq!(
                serde_json::to_string(&borrowed).unwrap(),
                serde_json::to_string(&owned_value).unwrap()
            );
        }
        let (a, b) = (received("p1-1", false), received("p1-2", true));
        for (messages, skipped) in [(vec![&a, &b], vec![]), (vec![&a], vec![&b]), (vec![], vec![&a])] {
            let owned_value = OpValue {
                group: Some("g".into()),
                messages: messages.iter().map(|r| owned(received_ref(r))).collect(),
                skipped: skipped.iter().map(|r| owned(received_ref(r))).collect(),
                ..OpValue::default()
            };
            let borrowed = DeliverValue {
                group: "g",
                messages: &messages,
                skipped: &skipped,
            };
            let text = serde_json::to_string(&borrowed).unwrap();
            assert_eq!(text, serde_json::to_string(&owned_value).unwrap());
            assert!(text.contains("\"pos\":\"0@42\""), "{text}");
        }
    }
}
