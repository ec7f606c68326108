//! Synthetic histories with a known truth, for tests and benchmarks: a small model of producers,
//! a broker and consumer groups that plants each anomaly on purpose and counts what it planted.
//!
//! Every message gets one fate (clean, lost, written twice, …); the history is written as a
//! real recorder would write it (invocations, completions, batched deliveries, a drain), and
//! the returned [`Truth`] is what a correct checker must report.

use std::io::{self, Write};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::checker::verdict::{Counts, DuplicateCauses};
use crate::history::{Event, EventType, Guarantee, Header, Message, OpValue, Process};

/// What to plant. Rates are probabilities per message (per atomic batch for the atomic ones);
/// their sum must stay below 1 (the rest are clean).
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub seed: u64,
    pub messages: u64,
    pub producers: u64,
    pub groups: u64,
    /// Messages per deliver event.
    pub batch: usize,
    pub drain: bool,
    pub claim: Option<Guarantee>,
    /// Acknowledged, never delivered to the first group.
    pub loss: f64,
    /// Ack lost, re-sent with the same id, stored twice, delivered twice everywhere.
    pub written_twice: f64,
    /// Delivered twice from the same position to the first group.
    pub redelivered: f64,
    /// Send ended info (half of these were stored and delivered: recovered).
    pub indeterminate: f64,
    /// Send ended fail (a tenth of these were delivered anyway).
    pub failed: f64,
    /// Delivered, never sent.
    pub unexpected: f64,
    /// Delivered to the first group before a later-sent message of the same key.
    pub reordered: f64,
    /// Atomic sends of 2–4 messages; of those, `aborted` leak one message into the first group
    /// and `torn` lose one message there.
    pub atomic: f64,
    pub aborted: f64,
    pub torn: f64,
    /// Pipeline: each message is processed into a derived message delivered to a sink group;
    /// `written_twice` then means processed twice (two derived messages).
    pub pipeline: bool,
    /// Declare `"positions":"log"` in the header (positions are `partition@offset` already), so
    /// that the checker's log checks run too: for benchmarks. The planted truth does not model
    /// what they add.
    pub log_positions: bool,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            seed: 1,
            messages: 1000,
            producers: 4,
            groups: 1,
            batch: 10,
            drain: true,
            claim: None,
            loss: 0.0,
            written_twice: 0.0,
            redelivered: 0.0,
            indeterminate: 0.0,
            failed: 0.0,
            unexpected: 0.0,
            reordered: 0.0,
            atomic: 0.0,
            aborted: 0.0,
            torn: 0.0,
            pipeline: false,
            log_positions: false,
        }
    }
}

/// What the checker must find.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Truth {
    pub counts: Counts,
    pub duplicate_causes: DuplicateCauses,
    pub events: u64,
}

struct Writer<'w> {
    out: &'w mut dyn Write,
    index: u64,
    op: u64,
    line: Vec<u8>,
}

impl Writer<'_> {
    fn emit(
        &mut self,
        process: Process,
        kind: EventType,
        f: &str,
        op: Option<u64>,
        value: Option<OpValue>,
    ) -> io::Result<()> {
        let event = Event {
            index: self.index,
            time: self.index * 1000,
            process,
            kind,
            f: f.to_string(),
            op,
            value,
            error: None,
        };
        self.index += 1;
        self.line.clear();
        serde_json::to_writer(&mut self.line, &event)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line)
    }

    fn next_op(&mut self) -> u64 {
        self.op += 1;
        self.op
    }
}

/// One delivery waiting in a group's batch.
struct Pending {
    message: Message,
}

struct Broker {
    /// Next offset per partition.
    offsets: Vec<u64>,
    /// Deliveries not yet written, per group.
    pending: Vec<Vec<Pending>>,
}

impl Broker {
    fn store(&mut self, partition: usize, mut m: Message) -> Message {
        let offset = self.offsets[partition];
        self.offsets[partition] += 1;
        m.pos = Some(format!("{partition}@{offset}"));
        m
    }
}

fn value(messages: Vec<Message>, atomic: bool, group: Option<String>) -> Option<OpValue> {
    Some(OpValue {
        messages,
        atomic,
        group,
        ..OpValue::default()
    })
}

/// Write a history for `plan` to `out`; returns the planted truth.
pub fn generate(plan: &Plan, out: &mut dyn Write) -> io::Result<Truth> {
    let mut rng = SmallRng::seed_from_u64(plan.seed);
    let mut w = Writer {
        out,
        index: 0,
        op: 0,
        line: Vec::with_capacity(512),
    };
    let header = Header {
        history: 1,
        claim: plan.claim,
        broker: Some("synthetic".into()),
        seed: Some(plan.seed),
        positions: plan.log_positions.then_some(crate::history::Positions::Log),
        ..Header::default()
    };
    serde_json::to_writer(&mut *w.out, &header)?;
    w.out.write_all(b"\n")?;
    let groups = plan.groups.max(1) as usize;
    let sink_groups = if plan.pipeline { 1 } else { groups };
    let group_name = |g: usize| {
        if plan.pipeline {
            "sink".to_string()
        } else {
            format!("g{g}")
        }
    };
    let partitions = 8;
    let mut broker = Broker {
        offsets: vec![0; partitions],
        pending: (0..sink_groups).map(|_| Vec::new()).collect(),
    };
    let mut t = Truth::default();
    let mut seq = vec![0u64; plan.producers.max(1) as usize];
    // A message held back from the first group until the next message of its key is delivered.
    let mut held: Vec<Option<Message>> = vec![None; plan.producers.max(1) as usize];

    let mut sent = 0;
    while sent < plan.messages {
        let p = (sent % plan.producers.max(1)) as usize;
        let process = Process::Client(p as u64);
        let make = |seq: &mut Vec<u64>| {
            seq[p] += 1;
            Message {
                id: format!("p{p}-{}", seq[p]),
                key: Some(format!("k{p}")),
                dest: Some("orders".into()),
                ..Message::default()
            }
        };
        let roll: f64 = rng.gen();
        let mut edge = 0.0;
        let mut next = |rate: f64| {
            edge += rate;
            roll < edge
        };

        // Atomic sends.
        if !plan.pipeline && next(plan.atomic) {
            let n = rng.gen_range(2..=4u64).min(plan.messages - sent).max(1);
            let members: Vec<Message> = (0..n).map(|_| make(&mut seq)).collect();
            sent += n;
            let op = w.next_op();
            w.emit(
                process,
                EventType::Invoke,
                "send",
                Some(op),
                value(members.clone(), true, None),
            )?;
            t.counts.messages += n;
            let fate: f64 = rng.gen();
            if fate < plan.aborted {
                w.emit(
                    process,
                    EventType::Fail,
                    "send",
                    Some(op),
                    value(members.clone(), true, None),
                )?;
                t.counts.failed += n;
                // The aborted transaction's first message leaks into the first group.
                let leaked = broker.store(p % partitions, members[0].clone());
                broker.pending[0].push(Pending { message: leaked });
                t.counts.delivered += 1;
                t.counts.failed_delivered += 1;
            } else {
                w.emit(
                    process,
                    EventType::Ok,
                    "send",
                    Some(op),
                    value(members.clone(), true, None),
                )?;
                t.counts.acknowledged += n;
                t.counts.delivered += n;
                let torn = fate < plan.aborted + plan.torn && n > 1;
                for (k, m) in members.into_iter().enumerate() {
                    let stored = broker.store(p % partitions, m);
                    for g in 0..sink_groups {
                        if torn && g == 0 && k == 0 {
                            continue;
                        }
                        broker.pending[g].push(Pending {
                            message: stored.clone(),
                        });
                    }
                }
                if torn {
                    // Torn is judged after a drain only (before it, the rest may be on its way).
                    t.counts.torn += plan.drain as u64;
                    if sink_groups == 1 {
                        t.counts.delivered -= 1;
                    }
                    t.counts.lost += plan.drain as u64;
                    t.counts.unseen += !plan.drain as u64;
                }
                release_held(&mut held[p], &mut broker, &mut t);
            }
            flush(&mut w, &mut broker, &group_name, plan.batch, false)?;
            continue;
        }

        let m = make(&mut seq);
        sent += 1;
        // Whether an acknowledged message of this key reached the first group this turn: a
        // message held back before it is then delivered after it, out of order.
        let mut acked_to_first_group = false;
        let op = w.next_op();
        let one = |m: &Message| value(vec![m.clone()], false, None);
        // Fates, each exclusive.
        if next(plan.unexpected) {
            // Not sent: appears in deliveries only.
            let stored = broker.store(p % partitions, m);
            for g in 0..sink_groups {
                broker.pending[g].push(Pending {
                    message: derive(plan, &stored, 0),
                });
            }
            t.counts.unexpected += 1;
            t.counts.delivered += 1;
            flush(&mut w, &mut broker, &group_name, plan.batch, false)?;
            continue;
        }
        w.emit(process, EventType::Invoke, "send", Some(op), one(&m))?;
        t.counts.messages += 1;
        if next(plan.loss) {
            w.emit(process, EventType::Ok, "send", Some(op), one(&m))?;
            t.counts.acknowledged += 1;
            let stored = broker.store(p % partitions, m);
            for g in 1..sink_groups {
                broker.pending[g].push(Pending {
                    message: derive(plan, &stored, 0),
                });
            }
            if sink_groups > 1 {
                t.counts.delivered += 1;
            }
            t.counts.lost += plan.drain as u64;
            t.counts.unseen += !plan.drain as u64;
        } else if next(plan.written_twice) {
            // The ack is lost: the application re-sends the same id, and it is stored twice.
            w.emit(process, EventType::Info, "send", Some(op), one(&m))?;
            let retry = w.next_op();
            w.emit(process, EventType::Invoke, "send", Some(retry), one(&m))?;
            w.emit(process, EventType::Ok, "send", Some(retry), one(&m))?;
            t.counts.acknowledged += 1;
            t.counts.delivered += 1;
            t.counts.duplicated += 1;
            t.duplicate_causes.written_twice += 1;
            acked_to_first_group = true;
            if plan.pipeline {
                // Pipelines: one stored input, processed twice into two derived messages.
                let stored = broker.store(p % partitions, m);
                broker.pending[0].push(Pending {
                    message: derive(plan, &stored, 0),
                });
                broker.pending[0].push(Pending {
                    message: derive(plan, &stored, 1),
                });
            } else {
                t.counts.stored_twice += 1;
                let first = broker.store(p % partitions, m.clone());
                let second = broker.store(p % partitions, m);
                for g in 0..sink_groups {
                    broker.pending[g].push(Pending { message: first.clone() });
                    broker.pending[g].push(Pending {
                        message: second.clone(),
                    });
                }
            }
        } else if next(plan.redelivered) {
            w.emit(process, EventType::Ok, "send", Some(op), one(&m))?;
            t.counts.acknowledged += 1;
            t.counts.delivered += 1;
            t.counts.duplicated += 1;
            t.duplicate_causes.redelivered += 1;
            acked_to_first_group = true;
            let stored = broker.store(p % partitions, m);
            broker.pending[0].push(Pending {
                message: derive(plan, &stored, 0),
            });
            broker.pending[0].push(Pending {
                message: derive(plan, &stored, 0),
            });
            for g in 1..sink_groups {
                broker.pending[g].push(Pending {
                    message: derive(plan, &stored, 0),
                });
            }
        } else if next(plan.indeterminate) {
            let stored_too = rng.gen_bool(0.5);
            if rng.gen_bool(0.5) {
                w.emit(process, EventType::Info, "send", Some(op), one(&m))?;
            } // else: never completed (the recorder died mid-operation).
            t.counts.indeterminate += 1;
            if stored_too {
                let stored = broker.store(p % partitions, m);
                for g in 0..sink_groups {
                    broker.pending[g].push(Pending {
                        message: derive(plan, &stored, 0),
                    });
                }
                t.counts.delivered += 1;
                t.counts.recovered += 1;
            }
        } else if next(plan.failed) {
            w.emit(process, EventType::Fail, "send", Some(op), one(&m))?;
            t.counts.failed += 1;
            if rng.gen_bool(0.1) {
                let stored = broker.store(p % partitions, m);
                broker.pending[0].push(Pending {
                    message: derive(plan, &stored, 0),
                });
                t.counts.delivered += 1;
                t.counts.failed_delivered += 1;
            }
        } else if !plan.pipeline && next(plan.reordered) && held[p].is_none() {
            w.emit(process, EventType::Ok, "send", Some(op), one(&m))?;
            t.counts.acknowledged += 1;
            t.counts.delivered += 1;
            let stored = broker.store(p % partitions, m);
            for g in 1..sink_groups {
                broker.pending[g].push(Pending {
                    message: stored.clone(),
                });
            }
            held[p] = Some(stored);
        } else {
            let stored = broker.store(p % partitions, m);
            if rng.gen_bool(0.05) {
                // The consumer is fast: the delivery is recorded before the send's completion.
                // Earlier messages go first, so that the order of the key is kept.
                flush(&mut w, &mut broker, &group_name, plan.batch, true)?;
                for g in 0..sink_groups {
                    let consumer = Process::Client(1_000_000 + g as u64);
                    w.emit(
                        consumer,
                        EventType::Ok,
                        "deliver",
                        None,
                        value(vec![derive(plan, &stored, 0)], false, Some(group_name(g))),
                    )?;
                }
            } else {
                for g in 0..sink_groups {
                    broker.pending[g].push(Pending {
                        message: derive(plan, &stored, 0),
                    });
                }
            }
            w.emit(process, EventType::Ok, "send", Some(op), one(&stored))?;
            t.counts.acknowledged += 1;
            t.counts.delivered += 1;
            acked_to_first_group = true;
        }
        if acked_to_first_group {
            release_held(&mut held[p], &mut broker, &mut t);
        }
        flush(&mut w, &mut broker, &group_name, plan.batch, false)?;
    }
    // Messages still held back were overtaken by nothing: they are late, not out of order.
    for m in held.iter_mut().filter_map(Option::take) {
        broker.pending[0].push(Pending { message: m });
    }
    if plan.drain {
        let op = w.next_op();
        w.emit(Process::Client(0), EventType::Invoke, "drain", Some(op), None)?;
        flush(&mut w, &mut broker, &group_name, plan.batch, true)?;
        w.emit(Process::Client(0), EventType::Ok, "drain", Some(op), None)?;
    } else {
        flush(&mut w, &mut broker, &group_name, plan.batch, true)?;
    }
    t.events = w.index;
    Ok(t)
}

/// Deliver a held-back message to the first group now, after a later-sent message of its key:
/// one order violation.
fn release_held(held: &mut Option<Message>, broker: &mut Broker, t: &mut Truth) {
    if let Some(m) = held.take() {
        broker.pending[0].push(Pending { message: m });
        t.counts.order_violations += 1;
    }
}

/// In a pipeline, the derived message a processor writes for `m` (`n` = which processing).
fn derive(plan: &Plan, m: &Message, n: u32) -> Message {
    if !plan.pipeline {
        return m.clone();
    }
    Message {
        id: format!("{}-out{n}", m.id),
        key: m.key.clone(),
        dest: Some("sink".into()),
        pos: m.pos.as_ref().map(|p| format!("{p}/{n}")),
        from: Some(m.id.clone()),
        redelivered: false,
    }
}

fn flush(
    w: &mut Writer,
    broker: &mut Broker,
    group_name: &dyn Fn(usize) -> String,
    batch: usize,
    all: bool,
) -> io::Result<()> {
    for g in 0..broker.pending.len() {
        while broker.pending[g].len() >= batch.max(1) || (all && !broker.pending[g].is_empty()) {
            let n = broker.pending[g].len().min(batch.max(1));
            let messages: Vec<Message> = broker.pending[g].drain(..n).map(|p| p.message).collect();
            let consumer = Process::Client(1_000_000 + g as u64);
            w.emit(
                consumer,
                EventType::Ok,
                "deliver",
                None,
                value(messages, false, Some(group_name(g))),
            )?;
        }
    }
    Ok(())
}
