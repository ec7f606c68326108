//! The end of a history: classify every message from its folded state (DESIGN.md definitions).

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use super::log::{at_offset, offset_of, part_of};
use super::verdict::{Cited, Counts, DuplicateCauses, Example, GroupCounts, Latency, LossShape, Performance, Verdict};
use super::{At, Checker, Idx, MessageState, Seen, ACKED, ATOMIC, NONE, NO_POS, PROVEN};
use crate::history::Guarantee;

/// Stands for "every consumer" when no group delivered anything at all: acknowledged messages
/// are then still expected somewhere, so a run whose consumers saw nothing shows its loss.
const NO_GROUP: Idx = Idx::MAX;
const NO_GROUP_NAME: &str = "(no group delivered anything)";

/// How the messages of one judged unit reached one group: a message's own deliveries, or, in
/// a pipeline, every delivery derived from one upstream message.
#[derive(Debug, Clone, Default)]
struct Reached {
    count: u32,
    written_twice: bool,
    redelivered: bool,
    unknown_pos: bool,
    /// A delivery: when, which message (in a pipeline: which derived one), at which position.
    first: Option<(At, Idx, Option<u64>)>,
    second: Option<(At, Idx, Option<u64>)>,
}

impl Reached {
    fn add(
        &mut self,
        c: &Checker,
        seen: &Seen,
        second: Option<(At, u8)>,
        message: Idx,
        distinct_derived: bool,
        no_pos: bool,
    ) {
        if self.count > 0 && distinct_derived {
            self.written_twice = true;
        }
        self.count += seen.count;
        self.written_twice |= seen.positions_seen.count_ones() > 1;
        self.redelivered |= seen.redelivered;
        self.unknown_pos |= no_pos;
        let first = Some((seen.first, seen.first_pos_slot));
        for (at, slot) in [first, second].into_iter().flatten() {
            let delivery = Some((at, message, c.position_at(message, slot)));
            if self.first.is_none() {
                self.first = delivery;
            } else if self.second.is_none() {
                self.second = delivery;
            }
        }
    }
}

struct Analysis<'a> {
    c: &'a Checker,
    max_examples: usize,
    counts: Counts,
    causes: DuplicateCauses,
    groups: BTreeMap<Idx, GroupCounts>,
    examples: BTreeMap<String, Vec<Example>>,
    /// Units lost somewhere, for the loss shapes.
    lost_units: Vec<Idx>,
}

impl Analysis<'_> {
    fn group_name(&self, g: Idx) -> String {
        if g == NO_GROUP {
            NO_GROUP_NAME.to_string()
        } else {
            self.c.groups.name(g).to_string()
        }
    }

    fn id(&self, i: Idx) -> &str {
        self.c.ids.name(i)
    }

    fn wants_example(&self, kind: &str) -> bool {
        self.examples.get(kind).map_or(0, Vec::len) < self.max_examples
    }

    fn example(&mut self, kind: &str, message: Idx, group: Option<Idx>, explanation: String, events: Vec<Cited>) {
        let message = self.id(message).to_string();
        let group = group.map(|g| self.group_name(g));
        self.examples.entry(kind.to_string()).or_default().push(Example {
            message,
            group,
            explanation,
            events,
        });
    }

    fn cite(at: At, what: impl Into<String>) -> Cited {
        Cited {
            index: at.index,
            time: at.time,
            what: what.into(),
            pos: None,
        }
    }

    /// An event citation with the position it put or found the message at.
    fn cite_at(&self, at: At, what: impl Into<String>, pos: Option<u64>) -> Cited {
        Cited {
            pos: pos.and_then(|p| self.pos_name(p)),
            ..Self::cite(at, what)
        }
    }

    /// A position as a reader sees it (`orders 0@17`); log positions only (others are kept as
    /// hashes).
    fn pos_name(&self, p: u64) -> Option<String> {
        let log = self.c.log.as_ref()?;
        let (dest, partition) = log.part_name(p);
        let offset = offset_of(p);
        Some(match dest {
            NONE => format!("{partition}@{offset}"),
            d => format!("{} {partition}@{offset}", self.c.strings.name(d)),
        })
    }

    /// A group delivered a higher offset of one of the message's partitions: its reading moved
    /// past the message. The message's position, and the group's highest delivery there.
    fn read_past(&self, message: Idx, g: Idx) -> Option<(u64, u64, At)> {
        let log = self.c.log.as_ref()?;
        self.c.positions_of(message).find_map(|p| {
            let &(max, at) = log.max_delivered.get(&(g, part_of(p)))?;
            (max > offset_of(p)).then_some((p, max, at))
        })
    }

    fn group_counts(&mut self, g: Idx) -> &mut GroupCounts {
        self.groups.entry(g).or_default()
    }

    /// Judge one unit (a message, or an upstream message of a pipeline) against the groups
    /// that should see it.
    fn judge(&mut self, unit: Idx, reached: &[(Idx, Reached)], expected: &[Idx]) {
        let s = &self.c.messages[unit as usize];
        let drained = self.c.evidence.drained;
        let sent = s.sends > 0;
        let acked = s.flags & ACKED != 0;
        let failed = sent && !acked && s.fails == s.sends;
        let delivered = reached.iter().any(|(_, r)| r.count > 0);
        if sent {
            self.counts.messages += 1;
            match (acked, failed) {
                (true, _) => self.counts.acknowledged += 1,
                (false, true) => self.counts.failed += 1,
                (false, false) => self.counts.indeterminate += 1,
            }
        }
        if delivered {
            self.counts.delivered += 1;
            for (g, r) in reached {
                if r.count > 0 {
                    self.group_counts(*g).delivered += 1;
                }
            }
        }
        let first_delivery = reached
            .iter()
            .find_map(|(g, r)| r.first.map(|(at, via, _)| (*g, (at, via))));

        if !sent && delivered {
            self.counts.unexpected += 1;
            if self.wants_example("unexpected") {
                let (g, (at, via)) = first_delivery.expect("delivered");
                let what = format!("delivered to {} as {}", self.group_name(g), self.id(via));
                self.example(
                    "unexpected",
                    unit,
                    Some(g),
                    "delivered, but no send of it is in the history".into(),
                    vec![Self::cite(at, what)],
                );
            }
        }
        if sent && !acked && !failed && delivered {
            self.counts.recovered += 1;
        }
        if failed && delivered {
            self.counts.failed_delivered += 1;
            let (g, (at, _)) = first_delivery.expect("delivered");
            self.group_counts(g).failed_delivered += 1;
            let kind = if s.flags & ATOMIC != 0 {
                "aborted-read"
            } else {
                "failed-delivered"
            };
            if self.wants_example(kind) {
                let why = if s.flags & ATOMIC != 0 {
                    "its transaction was aborted (every send ended fail), yet it was delivered"
                } else {
                    "every send of it ended fail (the client was told it did not happen), yet it was delivered"
                };
                let events = vec![
                    Self::cite(s.outcome, "send fail"),
                    Self::cite(at, format!("delivered to {}", self.group_name(g))),
                ];
                self.example(kind, unit, Some(g), why.into(), events);
            }
        }

        // Loss: acknowledged (or proven written), and some group that should see it never did.
        // With log positions, a group that delivered a higher offset of the message's
        // partition proves it, drain or not.
        let proven = s.flags & PROVEN != 0;
        if acked || proven {
            let mut lost_somewhere = false;
            let mut unseen_somewhere = false;
            let mut by_position = false;
            for &g in expected {
                let count = reached.iter().find(|(rg, _)| *rg == g).map_or(0, |(_, r)| r.count);
                if count > 0 {
                    continue;
                }
                let read_past = self.read_past(unit, g);
                if read_past.is_none() && (proven && !acked) {
                    continue; // not acknowledged: only a position can prove it was lost
                }
                if drained || read_past.is_some() {
                    lost_somewhere = true;
                    by_position |= read_past.is_some();
                    self.group_counts(g).lost += 1;
                    if self.wants_example("lost") {
                        let name = self.group_name(g);
                        let written = if acked {
                            "acknowledged"
                        } else {
                            "written (its atomic send was delivered in part)"
                        };
                        let mut events = vec![Self::cite(s.first_invoke, "send invoked")];
                        let why = match read_past {
                            Some((p, max, at)) => {
                                let outcome = if acked { "send ok" } else { "send info" };
                                events.push(self.cite_at(s.outcome, outcome, Some(p)));
                                let here = self.pos_name(p).unwrap_or_default();
                                events.push(self.cite_at(
                                    at,
                                    format!("{name} delivered offset {max}"),
                                    Some(at_offset(part_of(p), max)),
                                ));
                                format!("{written} at {here}, never delivered to {name}, which delivered a higher offset of that partition (its reading moved past it)")
                            }
                            None => {
                                let ack_pos = self.c.ack_position(unit);
                                events.push(self.cite_at(s.outcome, "send ok", ack_pos));
                                format!("{written}, never delivered to {name} although the drain completed")
                            }
                        };
                        self.example("lost", unit, Some(g), why, events);
                    }
                } else {
                    unseen_somewhere = true;
                    self.group_counts(g).unseen += 1;
                }
            }
            self.counts.lost += lost_somewhere as u64;
            if lost_somewhere {
                self.lost_units.push(unit);
            }
            self.counts.lost_by_position += by_position as u64;
            self.counts.unseen += (unseen_somewhere && !lost_somewhere) as u64;
        }

        // Duplicates: more than one delivery to one group.
        let mut duplicated = false;
        let (mut written_twice, mut redelivered, mut unknown) = (false, false, false);
        for (g, r) in reached {
            if r.count < 2 {
                continue;
            }
            duplicated = true;
            self.group_counts(*g).duplicated += 1;
            written_twice |= r.written_twice;
            redelivered |= r.redelivered;
            unknown |= !r.written_twice && !r.redelivered;
            if self.wants_example("duplicated") {
                let cause = match (r.written_twice, r.redelivered, r.unknown_pos) {
                    (true, true, _) => "written twice and redelivered",
                    (true, false, _) => "written twice (the same id at two positions, or two outputs from one input)",
                    (false, true, _) => "redelivered (the same position delivered twice)",
                    (false, false, _) => "cause unknown (no positions recorded)",
                };
                let name = self.group_name(*g);
                let mut events = Vec::new();
                if acked {
                    let ack_pos = self.c.ack_position(unit);
                    events.push(self.cite_at(s.outcome, "send ok", ack_pos));
                }
                for (at, via, pos) in [r.first, r.second].into_iter().flatten() {
                    let what = if via == unit {
                        format!("delivered to {name}")
                    } else {
                        format!("delivered to {name} as {}", self.id(via))
                    };
                    events.push(self.cite_at(at, what, pos));
                }
                let why = format!("delivered {} times to {name}: {cause}", r.count);
                self.example("duplicated", unit, Some(*g), why, events);
            }
        }
        if duplicated {
            self.counts.duplicated += 1;
            self.causes.written_twice += written_twice as u64;
            self.causes.redelivered += redelivered as u64;
            self.causes.unknown += unknown as u64;
        }
    }
}

fn seen_in(s: &MessageState, g: Idx) -> u32 {
    s.seen.iter().find(|x| x.group == g).map_or(0, |x| x.count)
}

/// Groups expected to see messages of each dest: those that delivered anything from it; every
/// group for a message without dest, or whose dest nobody read. With `judged`, only those
/// groups count, and a judged group that delivered nothing at all is expected everywhere.
fn expected_groups(c: &Checker, judged: Option<&[Idx]>) -> (Vec<Idx>, FxHashMap<Idx, Vec<Idx>>) {
    let mut all: Vec<Idx> = match judged {
        Some(judged) => judged.to_vec(),
        None => (0..c.groups.len() as Idx).collect(),
    };
    if all.is_empty() {
        all.push(NO_GROUP);
    }
    let keep = |g: Idx| judged.is_none_or(|j| j.contains(&g));
    let mut by_dest: FxHashMap<Idx, Vec<Idx>> = FxHashMap::default();
    for &(g, dest) in &c.group_dests {
        let groups = by_dest.entry(dest).or_default();
        if keep(g) {
            groups.push(g);
        }
    }
    let silent: Vec<Idx> = judged
        .unwrap_or_default()
        .iter()
        .copied()
        .filter(|&g| !c.group_dests.iter().any(|&(dg, _)| dg == g))
        .collect();
    for groups in by_dest.values_mut() {
        groups.extend(&silent);
        groups.sort_unstable();
    }
    (all, by_dest)
}

/// Classify every message and judge the claim. `judged_groups` (else the header's
/// `claim_groups`) limits the counts and the claim to those consumer groups; `groups` in the
/// verdict still shows every group.
pub(super) fn finish(
    mut c: Checker,
    claim: Option<Guarantee>,
    judged_groups: Option<&[String]>,
    max_examples: usize,
) -> Verdict {
    c.close_run_phase();
    let claim = claim.or(c.header.as_ref().and_then(|h| h.claim));
    let names: Option<Vec<String>> = judged_groups
        .map(<[String]>::to_vec)
        .or_else(|| c.header.as_ref().and_then(|h| h.claim_groups.clone()))
        .filter(|names| !names.is_empty());
    let known_groups = c.groups.len();
    let judged: Option<Vec<Idx>> = names
        .as_ref()
        .map(|names| names.iter().map(|name| c.groups.get_or_insert(name).0).collect());
    let silent: Vec<String> = names
        .iter()
        .flatten()
        .zip(judged.iter().flatten())
        .filter(|(_, &g)| g as usize >= known_groups)
        .map(|(name, _)| name.clone())
        .collect();
    let c = &c;
    let mut a = analyse(c, judged.as_deref(), max_examples);
    if let Some(judged) = &judged {
        // Every group's own counts, judged or not, from an analysis of all groups.
        for (g, counts) in analyse(c, None, 0).groups {
            if !judged.contains(&g) {
                a.groups.insert(g, counts);
            }
        }
    }
    let loss_shapes = loss_shapes(c, &a.lost_units);
    let Analysis {
        counts,
        causes,
        groups,
        examples,
        ..
    } = a;
    let verdict = Verdict::classify(counts.lost, counts.duplicated);
    let mut evidence = c.evidence.clone();
    let vacuous = counts.acknowledged == 0 || evidence.deliveries == 0;
    (evidence.grade, evidence.reasons) = super::evidence::grade(&evidence, &counts);
    let violations = claim.map(|g| Verdict::violations_of(g, &counts)).unwrap_or_default();
    let mut notes = Vec::new();
    if let Some(names) = &names {
        notes.push(format!(
            "the counts and the claim cover the group(s) {} only (the claim's groups); `groups` shows every group",
            names.join(", ")
        ));
    }
    if !silent.is_empty() {
        notes.push(format!(
            "the claim's group(s) {} delivered nothing: every message is expected there",
            silent.join(", ")
        ));
    }
    if !c.evidence.drained && counts.unseen > 0 {
        notes.push(format!(
            "the history has no completed drain: {} acknowledged message(s) were not delivered, which may be loss or delay; record a drain to judge loss",
            counts.unseen
        ));
    }
    if c.groups.len() == 0 && counts.acknowledged > 0 {
        notes.push(
            "no consumer group delivered anything: every acknowledged message is expected by an implicit group".into(),
        );
    }
    if c.evidence.skipped > 0 {
        notes.push(format!(
            "an idempotent consumer received {} copies of messages it had already processed and skipped them ({} redeliveries, {} other stored copies): the broker delivered at least once, and the application's deduplication, not the broker, kept them from taking effect twice",
            c.evidence.skipped,
            c.evidence.skipped_redelivered,
            c.evidence.skipped - c.evidence.skipped_redelivered
        ));
    }
    if vacuous && claim.is_some() && violations.is_empty() {
        notes.push(format!(
            "the claim is not judged: the history has {} acknowledged message(s) and {} deliveries, and a claim cannot hold on nothing",
            counts.acknowledged, evidence.deliveries
        ));
    }
    if let Some(line) = c.truncated_line {
        notes.push(format!(
            "line {line} was cut off mid-write (a killed recorder) and was ignored"
        ));
    }
    let performance = performance(c, counts.acknowledged, evidence.run_phase);
    let group_names = groups.into_iter().map(|(g, counts)| {
        let name = if g == NO_GROUP {
            NO_GROUP_NAME.to_string()
        } else {
            c.groups.name(g).to_string()
        };
        (name, counts)
    });
    Verdict {
        verdict,
        claim,
        // Nothing acknowledged, or nothing delivered: no claim can hold on nothing (an empty
        // history, a closed stdin, consumers that never ran). Not violated either: not judged.
        claim_holds: claim.map(|_| violations.is_empty()).filter(|holds| !holds || !vacuous),
        violations,
        counts,
        duplicate_causes: causes,
        evidence,
        groups: group_names.collect(),
        pipeline: c.pipeline,
        log_positions: c.log.is_some(),
        claim_groups: names,
        examples,
        notes,
        loss_shapes,
        min_evidence: None,
        performance,
    }
}

/// Acknowledged messages per second of the run phase, and the latency from a message's first
/// send invocation to its first delivery (to any group: the first time the system made it
/// available), over every message delivered at least once. One pass over the messages at the
/// end; the histogram's size is fixed, whatever the number of messages.
fn performance(c: &Checker, acknowledged: u64, run_phase: u64) -> Performance {
    let acknowledged_per_second = (run_phase > 0).then(|| acknowledged as f64 / (run_phase as f64 / 1e9));
    // Microseconds, up to an hour, 3 significant digits.
    let mut micros = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)
        .expect("static histogram bounds are valid");
    for s in &c.messages {
        if s.first_invoke.index == u64::MAX {
            continue;
        }
        let Some(first) = s.seen.iter().map(|seen| seen.first.time).min() else {
            continue;
        };
        micros.saturating_record((first.saturating_sub(s.first_invoke.time) / 1_000).max(1));
    }
    let ms = |us: u64| us as f64 / 1_000.0;
    let latency = (!micros.is_empty()).then(|| Latency {
        messages: micros.len(),
        p50_ms: ms(micros.value_at_quantile(0.50)),
        p99_ms: ms(micros.value_at_quantile(0.99)),
        max_ms: ms(micros.max()),
    });
    Performance {
        acknowledged_per_second,
        latency,
    }
}

/// Per producer with lost messages: how many, where among its acknowledged messages (in the
/// order of their first invocation), when, and how many while a fault was in force.
fn loss_shapes(c: &Checker, lost: &[Idx]) -> Vec<LossShape> {
    #[derive(Default)]
    struct Kept {
        acknowledged: u64,
        first: Option<u64>,
        last: Option<u64>,
    }
    if lost.is_empty() {
        return Vec::new();
    }
    let mut lost_by: FxHashMap<u16, Vec<Idx>> = FxHashMap::default();
    for &i in lost {
        lost_by.entry(c.messages[i as usize].producer).or_default().push(i);
    }
    lost_by.remove(&u16::MAX);
    // One pass over every message: each producer's delivered (kept) acknowledged messages.
    let mut kept: FxHashMap<u16, Kept> = lost_by.keys().map(|&p| (p, Kept::default())).collect();
    let lost_set: rustc_hash::FxHashSet<Idx> = lost.iter().copied().collect();
    for (i, s) in c.messages.iter().enumerate() {
        let Some(k) = kept.get_mut(&s.producer) else {
            continue;
        };
        if s.flags & (ACKED | PROVEN) == 0 || s.from != NONE {
            continue;
        }
        k.acknowledged += 1;
        if lost_set.contains(&(i as Idx)) {
            continue;
        }
        let at = s.first_invoke.index;
        k.first = Some(k.first.map_or(at, |f| f.min(at)));
        k.last = Some(k.last.map_or(at, |l| l.max(at)));
    }
    let windows = &c.evidence.fault_windows;
    let during_fault = |t: u64| {
        windows
            .iter()
            .any(|w| w.from <= t && w.healed.or(w.lifted).is_none_or(|end| t <= end))
    };
    let mut shapes: Vec<LossShape> = lost_by
        .into_iter()
        .map(|(p, units)| {
            let k = &kept[&p];
            let first = units
                .iter()
                .map(|&i| c.messages[i as usize].first_invoke)
                .min_by_key(|a| a.index);
            let last = units
                .iter()
                .map(|&i| c.messages[i as usize].first_invoke)
                .max_by_key(|a| a.index);
            let (first, last) = (first.unwrap_or_default(), last.unwrap_or_default());
            let shape = match (k.first, k.last) {
                (None, _) | (_, None) => "all",
                (Some(f), _) if last.index < f => "prefix",
                (_, Some(l)) if first.index > l => "suffix",
                _ => "middle",
            };
            LossShape {
                process: p as u64,
                acknowledged: k.acknowledged,
                lost: units.len() as u64,
                shape,
                first_sent: first.time,
                last_sent: last.time,
                sent_during_faults: units
                    .iter()
                    .filter(|&&i| during_fault(c.messages[i as usize].first_invoke.time))
                    .count() as u64,
            }
        })
        .collect();
    shapes.sort_by(|a, b| b.lost.cmp(&a.lost).then(a.process.cmp(&b.process)));
    shapes.truncate(20);
    shapes
}

/// The analysis of every message, counting only groups in `judged` (all when `None`).
fn analyse<'c>(c: &'c Checker, judged: Option<&[Idx]>, max_examples: usize) -> Analysis<'c> {
    let keep = |g: Idx| judged.is_none_or(|j| j.contains(&g));
    let (all_groups, by_dest) = expected_groups(c, judged);
    let expected_for = |s: &MessageState| -> &[Idx] {
        if s.dest == NONE {
            return &all_groups;
        }
        by_dest.get(&s.dest).map_or(&all_groups[..], |g| &g[..])
    };
    let mut a = Analysis {
        c,
        max_examples,
        counts: Counts::default(),
        causes: DuplicateCauses::default(),
        groups: BTreeMap::new(),
        examples: BTreeMap::new(),
        lost_units: Vec::new(),
    };

    if c.pipeline {
        judge_pipeline(&mut a, &keep, judged.unwrap_or_default());
    } else {
        // One buffer for all messages: an allocation per message is measurable here.
        let mut reached: Vec<(Idx, Reached)> = Vec::new();
        for (i, s) in c.messages.iter().enumerate() {
            reached.clear();
            reached.extend(s.seen.iter().filter(|seen| keep(seen.group)).map(|seen| {
                let mut r = Reached::default();
                r.add(
                    c,
                    seen,
                    c.second_deliveries.get(&(i as Idx, seen.group)).copied(),
                    i as Idx,
                    false,
                    s.flags & NO_POS != 0,
                );
                (seen.group, r)
            }));
            a.judge(i as Idx, &reached, expected_for(s));
        }
    }
    judge_atomic_sends(&mut a, &expected_for);
    judge_order(&mut a, &keep);
    judge_stored_twice(&mut a);
    judge_log(&mut a, &keep);
    a
}

/// Messages stored at two or more positions (acknowledgements and deliveries together).
fn judge_stored_twice(a: &mut Analysis) {
    let c = a.c;
    let mut twice: Vec<Idx> = c.more_positions.keys().copied().collect();
    a.counts.stored_twice = twice.len() as u64;
    if !a.wants_example("stored-twice") {
        return;
    }
    twice.sort_unstable();
    for i in twice.into_iter().take(a.max_examples) {
        let s = &c.messages[i as usize];
        let positions: Vec<u64> = c.positions_of(i).collect();
        let named: Vec<String> = positions.iter().filter_map(|&p| a.pos_name(p)).collect();
        let where_ = if named.is_empty() {
            format!("{} different positions", positions.len())
        } else {
            named.join(" and ")
        };
        let mut events = Vec::new();
        if s.flags & ACKED != 0 {
            let ack_pos = c.ack_position(i);
            events.push(a.cite_at(s.outcome, "send ok", ack_pos));
        }
        for seen in &s.seen {
            let what = format!("delivered to {}", a.group_name(seen.group));
            events.push(a.cite_at(seen.first, what, c.position_at(i, seen.first_pos_slot)));
            if let Some(&(at, slot)) = c.second_deliveries.get(&(i, seen.group)) {
                let what = format!("delivered to {} again", a.group_name(seen.group));
                events.push(a.cite_at(at, what, c.position_at(i, slot)));
            }
        }
        let why = format!("stored at {where_} (the log holds it more than once, whatever a group delivered)");
        a.example("stored-twice", i, None, why, events);
    }
}

/// The log checks (header `"positions":"log"`): inconsistent positions, skips, reordered sends.
fn judge_log(a: &mut Analysis, keep: &dyn Fn(Idx) -> bool) {
    let c = a.c;
    let Some(log) = c.log.as_ref() else {
        return;
    };
    for (p, messages) in log.inconsistent() {
        a.counts.inconsistent_positions += 1;
        if !a.wants_example("inconsistent-positions") {
            continue;
        }
        let here = a.pos_name(p).unwrap_or_default();
        let ids: Vec<&str> = messages.iter().map(|&m| a.id(m)).collect();
        let mut events = Vec::new();
        for &m in &messages {
            let s = &c.messages[m as usize];
            if s.flags & ACKED != 0 && c.ack_position(m) == Some(p) {
                events.push(a.cite_at(s.outcome, format!("send of {} ok", a.id(m)), Some(p)));
            }
            for seen in &s.seen {
                if c.position_at(m, seen.first_pos_slot) == Some(p) {
                    let what = format!("{} delivered to {}", a.id(m), a.group_name(seen.group));
                    events.push(a.cite_at(seen.first, what, Some(p)));
                }
            }
        }
        events.sort_by_key(|e| e.index);
        let why = format!("{here} holds {} different messages: {}", ids.len(), ids.join(", "));
        a.example("inconsistent-positions", messages[0], None, why, events);
    }
    // Offsets of messages whose every send failed (an aborted transaction) are not expected to
    // be read: a read_committed consumer passes over them.
    let readable = |m: Idx| {
        let s = &c.messages[m as usize];
        !(s.sends > 0 && s.fails == s.sends)
    };
    for skip in log.skips(readable) {
        if !keep(skip.jump.group) {
            continue;
        }
        a.counts.skips += 1;
        if !a.wants_example("skip") {
            continue;
        }
        let j = skip.jump;
        let base = |offset: u64| at_offset(j.part, offset);
        let named: Vec<String> = skip.named.iter().map(|&(o, m)| format!("{o} ({})", a.id(m))).collect();
        let why = format!(
            "process {} of {} read offset {} and next offset {} of this partition, skipping {} offset(s) that exist: {}{}; no rebalance between",
            j.process,
            a.group_name(j.group),
            j.from,
            j.to,
            skip.skipped,
            named.join(", "),
            if skip.skipped > named.len() as u64 { ", …" } else { "" }
        );
        let events = vec![
            a.cite_at(j.before, format!("process {} read", j.process), Some(base(j.from))),
            a.cite_at(j.after, format!("process {} read", j.process), Some(base(j.to))),
        ];
        let first_skipped = skip.named.first().map_or(NONE, |&(_, m)| m);
        if first_skipped != NONE {
            a.example("skip", first_skipped, Some(j.group), why, events);
        }
    }
    a.counts.send_reorders = log.reorders;
    for r in log.reorder_examples.iter().take(a.max_examples) {
        let base = |offset: u64| at_offset(r.part, offset);
        let why = format!(
            "process {} sent it after {} had been acknowledged at offset {}, yet it landed at offset {}, before it",
            r.process,
            a.id(r.earlier),
            r.earlier_offset,
            r.later_offset
        );
        let events = vec![
            a.cite_at(
                r.earlier_at,
                format!("send of {} ok", a.id(r.earlier)),
                Some(base(r.earlier_offset)),
            ),
            a.cite_at(r.later_at, "send ok", Some(base(r.later_offset))),
        ];
        a.example("send-reordered", r.later, None, why, events);
    }
}

/// Pipelines: every upstream message (one without `from`) must yield exactly one delivery
/// derived from it in each sink group (a group that delivered derived messages).
fn judge_pipeline(a: &mut Analysis, keep: &dyn Fn(Idx) -> bool, judged: &[Idx]) {
    let c = a.c;
    let root_of = |mut i: Idx| {
        // Follow `from` to the first stage; the bound guards against cycles in bad input.
        for _ in 0..64 {
            let from = c.messages[i as usize].from;
            if from == NONE {
                break;
            }
            i = from;
        }
        i
    };
    let mut sinks: Vec<Idx> = Vec::new();
    let mut reached: FxHashMap<Idx, Vec<(Idx, Reached)>> = FxHashMap::default();
    for (i, s) in c.messages.iter().enumerate() {
        if s.from == NONE {
            continue;
        }
        let root = root_of(i as Idx);
        for seen in s.seen.iter().filter(|seen| keep(seen.group)) {
            if !sinks.contains(&seen.group) {
                sinks.push(seen.group);
            }
            let per_group = reached.entry(root).or_default();
            let entry = match per_group.iter().position(|(g, _)| *g == seen.group) {
                Some(k) => &mut per_group[k].1,
                None => {
                    per_group.push((seen.group, Reached::default()));
                    &mut per_group.last_mut().expect("just pushed").1
                }
            };
            entry.add(
                c,
                seen,
                c.second_deliveries.get(&(i as Idx, seen.group)).copied(),
                i as Idx,
                true,
                s.flags & NO_POS != 0,
            );
        }
        // A derived message whose own sends all failed (an aborted processor transaction) and
        // that reached the sink is an aborted read, whatever its upstream did.
        let failed = s.sends > 0 && s.flags & ACKED == 0 && s.fails == s.sends;
        if failed && !s.seen.is_empty() {
            a.counts.failed_delivered += 1;
            if a.wants_example("aborted-read") {
                let g = s.seen[0].group;
                let events = vec![
                    Analysis::cite(s.outcome, "send fail"),
                    Analysis::cite(s.seen[0].first, "delivered"),
                ];
                a.example(
                    "aborted-read",
                    i as Idx,
                    Some(g),
                    "written by an aborted transaction, yet delivered".into(),
                    events,
                );
            }
        }
    }
    // A judged group that delivered nothing is a sink that saw nothing.
    for &g in judged {
        if !sinks.contains(&g) && !c.group_dests.iter().any(|&(dg, _)| dg == g) {
            sinks.push(g);
        }
    }
    sinks.sort_unstable();
    let empty = Vec::new();
    for (i, s) in c.messages.iter().enumerate() {
        if s.from != NONE {
            continue;
        }
        let r = reached.get(&(i as Idx)).unwrap_or(&empty);
        a.judge(i as Idx, r, &sinks);
    }
}

/// Torn transactions: an atomic send that did not fail, of which a group saw some but not all
/// of the messages it should see. Judged only after a drain (before it, the rest may be on its way).
fn judge_atomic_sends<'e>(a: &mut Analysis, expected_for: &dyn Fn(&MessageState) -> &'e [Idx]) {
    let c = a.c;
    if !c.evidence.drained {
        return;
    }
    for send in c.atomic_sends.iter().filter(|s| !s.failed) {
        let mut groups: Vec<Idx> = send
            .messages
            .iter()
            .flat_map(|&m| expected_for(&c.messages[m as usize]).iter().copied())
            .collect();
        groups.sort_unstable();
        groups.dedup();
        let mut torn_anywhere = false;
        for g in groups {
            let members: Vec<Idx> = send
                .messages
                .iter()
                .copied()
                .filter(|&m| expected_for(&c.messages[m as usize]).contains(&g))
                .collect();
            let delivered = members
                .iter()
                .filter(|&&m| seen_in(&c.messages[m as usize], g) > 0)
                .count();
            if delivered == 0 || delivered == members.len() {
                continue;
            }
            torn_anywhere = true;
            a.group_counts(g).torn += 1;
            if a.wants_example("torn") {
                let missing = members
                    .iter()
                    .copied()
                    .find(|&m| seen_in(&c.messages[m as usize], g) == 0)
                    .expect("some missing");
                let why = format!(
                    "atomic send of {} messages: {} of them delivered to {}, {} not (e.g. this one)",
                    members.len(),
                    delivered,
                    a.group_name(g),
                    members.len() - delivered
                );
                a.example(
                    "torn",
                    missing,
                    Some(g),
                    why,
                    vec![Analysis::cite(send.at, "atomic send completed")],
                );
            }
        }
        a.counts.torn += torn_anywhere as u64;
    }
}

/// Order within a key: a message delivered after another message of its key that was sent only
/// after it had been acknowledged. First deliveries only (a redelivery replays old messages).
fn judge_order(a: &mut Analysis, keep: &dyn Fn(Idx) -> bool) {
    let c = a.c;
    // (group, key) → first deliveries as ((event index, place in the event), message).
    type Deliveries = Vec<((u64, u32), Idx)>;
    // Counted first so that each list is allocated once at its size: these lists hold every
    // keyed message, and growing them by doubling would, for a moment, hold them twice.
    let mut sizes: FxHashMap<(Idx, Idx), usize> = FxHashMap::default();
    for s in c.messages.iter().filter(|s| s.key != NONE && s.flags & ACKED != 0) {
        for seen in s.seen.iter().filter(|seen| keep(seen.group)) {
            *sizes.entry((seen.group, s.key)).or_default() += 1;
        }
    }
    let mut by_group_key: FxHashMap<(Idx, Idx), Deliveries> =
        sizes.into_iter().map(|(k, n)| (k, Vec::with_capacity(n))).collect();
    for (i, s) in c.messages.iter().enumerate() {
        if s.key == NONE || s.flags & ACKED == 0 {
            continue;
        }
        for seen in s.seen.iter().filter(|seen| keep(seen.group)) {
            by_group_key
                .entry((seen.group, s.key))
                .or_default()
                .push(((seen.first.index, seen.first_slot), i as Idx));
        }
    }
    let mut keys: Vec<_> = by_group_key.into_iter().collect();
    keys.sort_unstable_by_key(|(k, _)| *k);
    for ((g, _key), mut deliveries) in keys {
        deliveries.sort_unstable();
        // The latest send invocation among messages delivered so far, and which message it was.
        let mut latest: Option<(u64, Idx, u64)> = None;
        for ((delivered_at, _), m) in deliveries {
            let s = &c.messages[m as usize];
            if let Some((invoked, other, other_delivered)) = latest {
                if s.outcome.index < invoked {
                    a.counts.order_violations += 1;
                    a.group_counts(g).order_violations += 1;
                    if a.wants_example("order") {
                        let o = &c.messages[other as usize];
                        let why = format!(
                            "acknowledged before {} was sent, yet delivered to {} after it",
                            a.id(other),
                            a.group_name(g)
                        );
                        let at_of = |index: u64, s: &MessageState| -> At {
                            s.seen
                                .iter()
                                .find(|x| x.first.index == index)
                                .map_or(At { index, time: 0 }, |x| x.first)
                        };
                        let events = vec![
                            Analysis::cite(s.outcome, "send ok"),
                            Analysis::cite(o.first_invoke, format!("send of {} invoked", a.id(other))),
                            Analysis::cite(at_of(other_delivered, o), format!("{} delivered", a.id(other))),
                            Analysis::cite(at_of(delivered_at, s), "delivered"),
                        ];
                        a.example("order", m, Some(g), why, events);
                    }
                }
            }
            if latest.is_none_or(|(invoked, _, _)| s.first_invoke.index > invoked) {
                latest = Some((s.first_invoke.index, m, delivered_at));
            }
        }
    }
}
