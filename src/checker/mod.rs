//! The `checker` role: history in, verdict out (DESIGN.md "Checker semantics").
//!
//! [`Checker::observe`] folds records into per-message state as they stream by; it keeps no
//! events. [`Checker::finish`] (in `analysis`) classifies every message once the history has
//! ended, because a delivery may precede, in the file, the completion of its send.

mod analysis;
pub mod evidence;
mod log;
pub mod verdict;

use rustc_hash::{FxHashMap, FxHashSet};
use smallvec::SmallVec;

use crate::history::reader::{EventView, HistoryError, HistoryReader, Item};
use crate::history::wire::{text_hash, OpName, WireMessage};
use crate::history::{EventType, Guarantee, Header, Positions, Process};
pub use verdict::{Observed, Verdict};

/// Index of a message (or an interned string) in the checker's tables.
type Idx = u32;
const NONE: Idx = Idx::MAX;

/// An event cited as evidence: its `index` and `time`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct At {
    index: u64,
    time: u64,
}

impl At {
    fn of(e: &EventView) -> At {
        At {
            index: e.event.index,
            time: e.event.time,
        }
    }
}

/// What one consumer group saw of one message.
#[derive(Debug, Clone)]
struct Seen {
    group: Idx,
    count: u32,
    /// Bit i: position i of the message was delivered to this group.
    positions_seen: u8,
    /// The same position came twice: redelivered.
    redelivered: bool,
    /// Place of the first delivery within its deliver event (messages of one event are
    /// delivered in the order listed).
    first_slot: u32,
    first: At,
    /// Which of the message's positions the first delivery was at (`u8::MAX`: none).
    first_pos_slot: u8,
}

const ACKED: u8 = 1;
/// The message was (also) part of an atomic send.
const ATOMIC: u8 = 2;
/// A delivery of it carried no position.
const NO_POS: u8 = 4;
/// Not acknowledged, but proven written: a member of an atomic send that ended `info`, of which
/// some message was delivered (so the transaction committed).
const PROVEN: u8 = 8;
/// Bits 5-7: which of its positions its first acknowledgement reported, plus one (0: none).
const ACK_SLOT_SHIFT: u8 = 5;

/// Everything the checker keeps per logical message.
#[derive(Debug, Clone)]
struct MessageState {
    /// Send operations that included it (completed or not).
    sends: u32,
    /// Of those, the ones that ended `fail`.
    fails: u32,
    flags: u8,
    dest: Idx,
    key: Idx,
    /// The upstream message (pipelines).
    from: Idx,
    /// The process of its earliest send invocation (`u16::MAX`: none, or a number beyond):
    /// loss is described per producer. A u16 fits in the padding after `flags`.
    producer: u16,
    /// The earliest send invocation.
    first_invoke: At,
    /// The first `ok` completion; else the latest completion (fail or info).
    outcome: At,
    /// Hash of the first position at which it was delivered (0: none yet). Further distinct
    /// positions, rare (a message written twice), live in `Checker::more_positions`.
    first_pos: u64,
    seen: SmallVec<[Seen; 1]>,
}

impl MessageState {
    fn new() -> MessageState {
        MessageState {
            sends: 0,
            fails: 0,
            flags: 0,
            dest: NONE,
            key: NONE,
            from: NONE,
            producer: u16::MAX,
            first_invoke: At {
                index: u64::MAX,
                time: 0,
            },
            outcome: At::default(),
            first_pos: 0,
            seen: SmallVec::new(),
        }
    }

    fn acked(&self) -> bool {
        self.flags & ACKED != 0
    }
}

/// An atomic send of several messages: all of them or none must be delivered.
#[derive(Debug, Clone)]
struct AtomicSend {
    messages: Vec<Idx>,
    /// Ended `fail` (then it is judged under failed-delivered, not torn).
    failed: bool,
    at: At,
}

/// An atomic send that ended `info`: its members, and the positions its completion reported.
type TentativeSend = (Vec<Idx>, Vec<(Idx, log::Packed)>);

/// Streaming checker state.
pub struct Checker {
    header: Option<Header>,
    /// Message ids; `messages[i]` is the state of id `i`.
    ids: Interner,
    messages: Vec<MessageState>,
    strings: Interner,
    groups: Interner,
    /// Groups named by crash events (a group may crash before it delivers anything).
    crashed_groups: FxHashSet<String>,
    /// (group, dest) pairs with at least one delivery.
    group_dests: FxHashSet<(Idx, Idx)>,
    atomic_sends: Vec<AtomicSend>,
    /// Distinct positions of a message after its first (up to 7).
    more_positions: FxHashMap<Idx, SmallVec<[u64; 2]>>,
    /// The second delivery of a message to a group, and which of its positions it was at
    /// (examples of duplicates cite it).
    second_deliveries: FxHashMap<(Idx, Idx), (At, u8)>,
    evidence: verdict::Evidence,
    /// Some message has `from`: judge upstream messages end to end.
    pipeline: bool,
    truncated_line: Option<u64>,
    /// Progress over the run phase, for the longest stalls.
    acked_progress: Progress,
    delivered_progress: Progress,
    /// When the drain was invoked: the end of the run phase.
    drain_at: Option<u64>,
    /// The latest event time seen in the run phase.
    last_time: u64,
    /// Faults and crashes: started, skipped, exposure, recovery.
    faults: evidence::FaultLog,
    /// The header declared `"positions":"log"`: offsets order each partition.
    log: Option<log::LogIndex>,
    /// Positions from atomic sends that ended `info`: they count once a member is delivered.
    tentative: Vec<TentativeSend>,
    /// The first `pos` that is not `partition@offset` in a log-positions history.
    bad_position: Option<(u64, String)>,
}

/// The gaps between progress events (acknowledged sends, or deliveries) seen so far: the
/// longest, and every one of at least [`evidence::GAP_MIN`] (few: at most one per second).
#[derive(Debug, Default, Clone)]
struct Progress {
    last: u64,
    longest: verdict::Stall,
    gaps: Vec<verdict::Stall>,
}

impl Progress {
    /// Progress at `time`. A time earlier than the last (a foreign history whose clock went
    /// back) shortens nothing.
    fn mark(&mut self, time: u64) {
        if time > self.last {
            let gap = verdict::Stall {
                from: self.last,
                to: time,
            };
            if gap.nanos() > self.longest.nanos() {
                self.longest = gap;
            }
            if gap.nanos() >= evidence::GAP_MIN {
                self.gaps.push(gap);
            }
            self.last = time;
        }
    }

    /// The run phase ended at `end`: the last gap closes there.
    fn close(&mut self, end: u64) {
        self.mark(end);
    }
}

/// Interns strings (message ids, dests, keys, groups) into dense indices. The text of all
/// strings lives in one buffer: a million short ids cost their bytes plus 8, not an allocation each.
#[derive(Debug, Default)]
struct Interner {
    map: hashbrown::HashTable<Idx>,
    text: String,
    /// (start, length) of string i in `text`.
    spans: Vec<(u32, u32)>,
}

impl Interner {
    /// Intern `s`; `hash` is [`text_hash`] of it. True when it is new.
    fn get_or_insert_hashed(&mut self, hash: u64, s: &str) -> (Idx, bool) {
        let (text, spans) = (&self.text, &self.spans);
        if let Some(&i) = self.map.find(hash, |&i| Self::at(text, spans, i) == s) {
            return (i, false);
        }
        let i = self.spans.len() as Idx;
        self.spans.push((self.text.len() as u32, s.len() as u32));
        self.text.push_str(s);
        let (text, spans) = (&self.text, &self.spans);
        self.map
            .insert_unique(hash, i, |&j| text_hash(Self::at(text, spans, j)));
        (i, true)
    }

    fn get_or_insert(&mut self, s: &str) -> (Idx, bool) {
        self.get_or_insert_hashed(text_hash(s), s)
    }

    fn get_hashed(&self, hash: u64, s: &str) -> Option<Idx> {
        let (text, spans) = (&self.text, &self.spans);
        self.map.find(hash, |&i| Self::at(text, spans, i) == s).copied()
    }

    fn get(&self, s: &str) -> Option<Idx> {
        self.get_hashed(text_hash(s), s)
    }

    fn at<'a>(text: &'a str, spans: &[(u32, u32)], i: Idx) -> &'a str {
        let (start, len) = spans[i as usize];
        &text[start as usize..(start + len) as usize]
    }

    fn name(&self, i: Idx) -> &str {
        Self::at(&self.text, &self.spans, i)
    }

    fn len(&self) -> usize {
        self.spans.len()
    }
}

impl Default for Checker {
    fn default() -> Self {
        Checker::new()
    }
}

impl Checker {
    pub fn new() -> Checker {
        Checker {
            header: None,
            ids: Interner::default(),
            messages: Vec::new(),
            strings: Interner::default(),
            groups: Interner::default(),
            crashed_groups: FxHashSet::default(),
            group_dests: FxHashSet::default(),
            atomic_sends: Vec::new(),
            more_positions: FxHashMap::default(),
            second_deliveries: FxHashMap::default(),
            evidence: verdict::Evidence::default(),
            pipeline: false,
            truncated_line: None,
            acked_progress: Progress::default(),
            delivered_progress: Progress::default(),
            drain_at: None,
            last_time: 0,
            faults: evidence::FaultLog::default(),
            log: None,
            tentative: Vec::new(),
            bad_position: None,
        }
    }

    /// Size the tables for a history of `bytes` bytes. Reserving address space is free (a page
    /// counts only once it is touched), while growing by doubling copies the tables and holds
    /// both copies for a moment: the peak memory of a big history.
    fn reserve_for(&mut self, bytes: u64) {
        // A message costs at least about 120 bytes of history (its send's invocation line);
        // ackcheck's own runs write 300-400. Capped: beyond it, tables grow as usual.
        let most = (bytes / 120).min(1 << 22) as usize;
        let likely = (bytes / 400).min(1 << 22) as usize;
        self.messages.reserve(most);
        self.ids.spans.reserve(most);
        self.ids.text.reserve(most * 12);
        let (text, spans) = (&self.ids.text, &self.ids.spans);
        self.ids
            .map
            .reserve(likely, |&j| text_hash(Interner::at(text, spans, j)));
    }

    /// The header, if the history had one.
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// Note that the reader dropped a last line cut off mid-write.
    pub fn set_truncated_line(&mut self, line: Option<u64>) {
        self.truncated_line = line;
    }

    fn message(&mut self, hash: u64, id: &str) -> Idx {
        let (i, new) = self.ids.get_or_insert_hashed(hash, id);
        if new {
            self.messages.push(MessageState::new());
        }
        i
    }

    /// Intern `dest`, `key` and `from` of a message the first time they are seen.
    fn describe(&mut self, i: Idx, m: &WireMessage, e: &EventView) {
        if let Some(dest) = m.dest {
            if self.messages[i as usize].dest == NONE {
                self.messages[i as usize].dest = self.strings.get_or_insert(e.text(dest)).0;
            }
        }
        if let Some(key) = m.key {
            if self.messages[i as usize].key == NONE {
                self.messages[i as usize].key = self.strings.get_or_insert(e.text(key)).0;
            }
        }
        if let Some(from) = m.from {
            if self.messages[i as usize].from == NONE {
                let from = e.text(from);
                let upstream = self.message(text_hash(from), from);
                self.messages[i as usize].from = upstream;
                self.pipeline = true;
            }
        }
    }

    /// Fold one item of the history into the state.
    fn observe(&mut self, item: Item) {
        match item {
            Item::Header(header) => {
                if header.positions == Some(Positions::Log) {
                    self.log = Some(log::LogIndex::default());
                }
                self.header = Some(header.clone());
            }
            Item::Unfinished { invocation, .. } => {
                if invocation.event.f == OpName::Send {
                    self.send_completed(&invocation, None);
                }
            }
            Item::Event { event, invocation, .. } => self.event(&event, invocation.as_ref()),
        }
    }

    fn event(&mut self, event: &EventView, invocation: Option<&EventView>) {
        let e = event.event;
        let in_run_phase = self.drain_at.is_none();
        if in_run_phase {
            self.last_time = self.last_time.max(e.time);
        }
        if e.process == Process::Nemesis {
            self.nemesis_event(event, invocation.is_some());
            return;
        }
        match (e.f, e.kind) {
            (OpName::Send, EventType::Invoke) => {
                self.evidence.sends += 1;
                self.faults.send_invoked();
            }
            // The reader pairs every send completion with its invocation (or rejects the line).
            (OpName::Send, _) => {
                if let Some(invocation) = invocation {
                    self.faults.in_flight = self.faults.in_flight.saturating_sub(1);
                    self.send_completed(invocation, Some(event));
                }
                if in_run_phase && e.kind == EventType::Ok {
                    self.acked_progress.mark(e.time);
                    self.faults.acked(e.time);
                }
            }
            (OpName::Deliver, EventType::Ok) => {
                if in_run_phase && !event.messages().is_empty() {
                    self.delivered_progress.mark(e.time);
                    self.faults.delivered(e.time);
                }
                self.delivered(event)
            }
            (OpName::Drain, EventType::Invoke) if in_run_phase => self.drain_at = Some(e.time),
            (OpName::Crash, EventType::Info) => {
                self.evidence.crashes += 1;
                let value = event.other_value();
                let field = |k: &str| value.and_then(|v| v.get(k));
                let point = crash_point(value);
                let held = field("dropped")
                    .and_then(|d| d.as_array())
                    .map_or(0, |d| d.len() as u64);
                self.faults.crash(point, held);
                let group = field("group").and_then(|g| g.as_str());
                if let Some(group) = group {
                    if !self.crashed_groups.contains(group) {
                        self.crashed_groups.insert(group.to_string());
                    }
                }
            }
            (OpName::Drain, EventType::Ok) => self.evidence.drained = true,
            (OpName::Other(_), _) if event.f() == "rebalance" => self.rebalanced(event),
            _ => {}
        }
    }

    /// A consumer's assignment changed (`rebalance`, optionally with the partitions it holds
    /// now as `{"assigned":{"dest":[partition, …]}}`): skip tracking restarts for the others.
    fn rebalanced(&mut self, event: &EventView) {
        let (Some(log), Process::Client(process)) = (self.log.as_mut(), event.event.process) else {
            return;
        };
        let assigned = event
            .other_value()
            .and_then(|v| v.get("assigned"))
            .and_then(|a| a.as_object());
        let Some(assigned) = assigned else {
            log.rebalanced(process, None);
            return;
        };
        let mut kept = Vec::new();
        for (dest, partitions) in assigned {
            let Some(dest) = self.strings.get(dest) else {
                continue; // a dest never seen: nothing tracked there
            };
            for partition in partitions.as_array().into_iter().flatten().filter_map(|p| p.as_u64()) {
                kept.extend(log.part_number(dest, partition as u32));
            }
        }
        log.rebalanced(process, Some(&kept));
    }

    /// A nemesis event: `start-X` / `stop-X` of a fault, or a planned client crash given up
    /// (`crash` ending `fail`).
    fn nemesis_event(&mut self, event: &EventView, paired: bool) {
        let e = event.event;
        let f = event.f();
        let node = event.other_value().and_then(|v| v.get("node")).and_then(|n| n.as_u64());
        let error = e.error.map(|s| event.text(s));
        let cause = event
            .other_value()
            .and_then(|v| v.get("cause"))
            .and_then(|c| c.as_str());
        if let Some(kind) = f.strip_prefix("start-") {
            match e.kind {
                EventType::Invoke => self.faults.start_invoked(kind, node, e.time),
                k => self
                    .faults
                    .start_completed(kind, node, e.time, k == EventType::Fail, error, cause, paired),
            }
        } else if let Some(kind) = f.strip_prefix("stop-") {
            self.faults.stop(kind, e.time, e.kind == EventType::Invoke);
        } else if e.f == OpName::Crash && e.kind == EventType::Fail {
            let point = crash_point(event.other_value());
            let reason = error.unwrap_or("the workload reported that it did not happen");
            self.faults.crash_skipped(point, e.time, reason);
        }
    }

    /// A send ended (`completion`), or never did (`None`).
    fn send_completed(&mut self, invocation: &EventView, completion: Option<&EventView>) {
        let invoked = At::of(invocation);
        let (kind, done) = match completion {
            Some(c) => (c.event.kind, At::of(c)),
            None => (EventType::Info, invoked),
        };
        if kind == EventType::Info {
            self.evidence.indeterminate_sends += 1;
        }
        if !invocation.event.has_value {
            return;
        }
        let atomic = invocation.event.atomic;
        let mut members = Vec::new();
        for m in invocation.messages() {
            let i = self.message(m.id_hash, invocation.text(m.id));
            self.describe(i, m, invocation);
            let s = &mut self.messages[i as usize];
            s.sends += 1;
            if invoked.index < s.first_invoke.index {
                s.first_invoke = invoked;
                s.producer = match invocation.event.process {
                    Process::Client(p) => u16::try_from(p).unwrap_or(u16::MAX),
                    Process::Nemesis => u16::MAX,
                };
            }
            match kind {
                EventType::Ok => {
                    if !s.acked() {
                        s.flags |= ACKED;
                        s.outcome = done;
                    }
                }
                EventType::Fail => {
                    s.fails += 1;
                    if !s.acked() {
                        s.outcome = done;
                    }
                }
                _ => {
                    if !s.acked() {
                        s.outcome = done;
                    }
                }
            }
            if atomic {
                s.flags |= ATOMIC;
                members.push(i);
            }
        }
        if let Some(completion) = completion {
            self.send_positions(invocation, completion, kind, atomic.then_some(&members[..]));
        }
        if atomic && members.len() > 1 {
            self.atomic_sends.push(AtomicSend {
                messages: members,
                failed: kind == EventType::Fail,
                at: done,
            });
        }
    }

    /// Where a send completion says the broker put its messages. An `ok` gives each message a
    /// position; a `fail` none (nothing was written); an `info` of an atomic send gives
    /// tentative ones, which count once a member of the send is delivered (log positions only).
    /// `atomic`: the members of an atomic send.
    fn send_positions(
        &mut self,
        invocation: &EventView,
        completion: &EventView,
        kind: EventType,
        atomic: Option<&[Idx]>,
    ) {
        if kind == EventType::Fail {
            return;
        }
        let mut placed: SmallVec<[(Idx, log::Packed); 4]> = SmallVec::new();
        for m in completion.messages().iter().filter(|m| m.pos.is_some()) {
            let Some(i) = self.ids.get_hashed(m.id_hash, completion.text(m.id)) else {
                continue; // not a message of this send's invocation
            };
            let Some(key) = self.position_key(i, m, completion) else {
                continue;
            };
            match kind {
                EventType::Ok => {
                    let slot = self.note_position(i, key);
                    let s = &mut self.messages[i as usize];
                    if let Some(slot @ 0..=6) = slot {
                        if s.flags >> ACK_SLOT_SHIFT == 0 {
                            s.flags |= (slot as u8 + 1) << ACK_SLOT_SHIFT;
                        }
                    }
                    if self.log.is_some() {
                        placed.push((i, key));
                    }
                }
                _ if atomic.is_some() && self.log.is_some() => placed.push((i, key)),
                _ => {}
            }
        }
        if placed.is_empty() {
            return;
        }
        if kind != EventType::Ok {
            let members = atomic.unwrap_or_default().to_vec();
            self.tentative.push((members, placed.into_vec()));
            return;
        }
        if let (Some(log), Process::Client(p)) = (self.log.as_mut(), invocation.event.process) {
            log.acknowledged(p, At::of(invocation), At::of(completion), &placed, EXAMPLES_KEPT);
        }
    }

    /// The key under which the checker keeps `m`'s position: a hash of the string, or with log
    /// positions the packed (partition, offset). `None` without a position, or when a log
    /// position does not parse (remembered, and reported as an error at the end).
    fn position_key(&mut self, i: Idx, m: &WireMessage, e: &EventView) -> Option<u64> {
        let pos = m.pos?;
        let Some(log) = self.log.as_mut() else {
            return Some(m.pos_hash);
        };
        let text = e.text(pos);
        match log::parse(text) {
            Some((partition, offset)) => log.pack(self.messages[i as usize].dest, partition, offset),
            None => {
                if self.bad_position.is_none() {
                    self.bad_position = Some((e.event.index, text.to_string()));
                }
                None
            }
        }
    }

    /// Give message `i` the position `key`; returns which of its positions it is (0 = the first,
    /// up to 7), `None` past the eighth distinct one.
    fn note_position(&mut self, i: Idx, key: u64) -> Option<usize> {
        let s = &mut self.messages[i as usize];
        let (slot, new) = if s.first_pos == 0 || s.first_pos == key {
            let new = s.first_pos == 0;
            s.first_pos = key;
            (Some(0), new)
        } else {
            let more = self.more_positions.entry(i).or_default();
            match more.iter().position(|&p| p == key) {
                Some(k) => (Some(k + 1), false),
                None if more.len() < 7 => {
                    more.push(key);
                    (Some(more.len()), true)
                }
                None => (None, false),
            }
        };
        if new {
            if let Some(log) = self.log.as_mut() {
                log.new_position(key, i);
            }
        }
        slot
    }

    /// Position number `slot` of message `i` (0: its first), if known.
    fn position_at(&self, i: Idx, slot: u8) -> Option<u64> {
        match slot {
            0 => Some(self.messages[i as usize].first_pos).filter(|&p| p != 0),
            u8::MAX => None,
            k => self.more_positions.get(&i)?.get(k as usize - 1).copied(),
        }
    }

    /// The position its first acknowledgement reported, if any.
    fn ack_position(&self, i: Idx) -> Option<u64> {
        match self.messages[i as usize].flags >> ACK_SLOT_SHIFT {
            0 => None,
            slot => self.position_at(i, slot - 1),
        }
    }

    /// Every known position of message `i`.
    fn positions_of(&self, i: Idx) -> impl Iterator<Item = u64> + '_ {
        let first = self.messages[i as usize].first_pos;
        let more = self.more_positions.get(&i).into_iter().flatten().copied();
        (first != 0).then_some(first).into_iter().chain(more)
    }

    /// A copy an idempotent consumer received and skipped: a redelivery if the message was
    /// delivered at that position before, else another stored copy of it.
    fn skipped(&mut self, m: &WireMessage, e: &EventView, group: Idx) {
        self.evidence.skipped += 1;
        self.evidence.flagged_redelivered += m.redelivered as u64;
        if m.pos.is_none() {
            return;
        }
        let Some(i) = self.ids.get_hashed(m.id_hash, e.text(m.id)) else {
            return; // a copy of a message never seen otherwise: nothing to compare with
        };
        let Some(h) = self.position_key(i, m, e) else {
            return;
        };
        if self.positions_of(i).any(|p| p == h) {
            self.evidence.skipped_redelivered += 1;
        }
        // A skipped copy was read: the consumer's reading of the partition moved on.
        if let (Some(log), Process::Client(p)) = (self.log.as_mut(), e.event.process) {
            log.read(p, group, h, At::of(e));
        }
    }

    fn delivered(&mut self, event: &EventView) {
        let at = At::of(event);
        if !event.event.has_value {
            return;
        }
        let group = self
            .groups
            .get_or_insert(event.event.group.map_or("", |g| event.text(g)))
            .0;
        for m in event.skipped() {
            self.skipped(m, event, group);
        }
        for (slot, m) in event.messages().iter().enumerate() {
            self.evidence.deliveries += 1;
            self.evidence.flagged_redelivered += m.redelivered as u64;
            let i = self.message(m.id_hash, event.text(m.id));
            self.describe(i, m, event);
            let dest = self.messages[i as usize].dest;
            if dest != NONE {
                self.group_dests.insert((group, dest));
            }
            let bit = match self.position_key(i, m, event) {
                Some(key) => {
                    if let (Some(log), Process::Client(p)) = (self.log.as_mut(), event.event.process) {
                        log.delivered(group, key, at);
                        log.read(p, group, key, at);
                    }
                    self.note_position(i, key)
                }
                None => {
                    self.messages[i as usize].flags |= NO_POS;
                    None
                }
            };
            let s = &mut self.messages[i as usize];
            let seen = match s.seen.iter_mut().position(|g| g.group == group) {
                Some(k) => &mut s.seen[k],
                None => {
                    s.seen.push(Seen {
                        group,
                        count: 0,
                        positions_seen: 0,
                        redelivered: false,
                        first_slot: slot as u32,
                        first: at,
                        first_pos_slot: bit.map_or(u8::MAX, |b| b as u8),
                    });
                    s.seen.last_mut().expect("just pushed")
                }
            };
            seen.count += 1;
            if seen.count == 2 {
                self.second_deliveries
                    .insert((i, group), (at, bit.map_or(u8::MAX, |b| b as u8)));
            }
            if let Some(k) = bit {
                if seen.positions_seen & (1 << k) != 0 {
                    seen.redelivered = true;
                }
                seen.positions_seen |= 1 << k;
            }
        }
    }

    /// Whether the history names consumer group `name` anywhere: a delivery, a crash, or the
    /// header's `claim_groups`.
    fn knows_group(&self, name: &str) -> bool {
        self.groups.get(name).is_some()
            || self.crashed_groups.contains(name)
            || self
                .header
                .as_ref()
                .and_then(|h| h.claim_groups.as_ref())
                .is_some_and(|g| g.iter().any(|g| g == name))
    }

    /// Classify every message and build the verdict. `claim` overrides the header's claim.
    pub fn finish(self, claim: Option<Guarantee>, examples: usize) -> Verdict {
        analysis::finish(self, claim, None, examples)
    }

    /// Measure the run phase once the history has ended: its length and the longest stalls.
    /// Called by `analysis::finish`, the one way to a verdict.
    fn close_run_phase(&mut self) {
        let end = self.drain_at.unwrap_or(self.last_time);
        self.evidence.run_phase = end;
        self.acked_progress.close(end);
        self.delivered_progress.close(end);
        if end > 0 {
            self.evidence.longest_stall_acked = Some(self.acked_progress.longest);
            self.evidence.longest_stall_delivered = Some(self.delivered_progress.longest);
        }
        self.settle_log();
        let faults = std::mem::take(&mut self.faults);
        faults.close(
            &mut self.evidence,
            end,
            &self.acked_progress.gaps,
            &self.delivered_progress.gaps,
        );
    }
}

impl Checker {
    /// Once the history has ended: the positions of atomic sends that ended `info` count when a
    /// member was delivered (the transaction committed), and the index is sorted.
    fn settle_log(&mut self) {
        if self.log.is_none() {
            return;
        }
        for (members, placed) in std::mem::take(&mut self.tentative) {
            if !members.iter().any(|&i| !self.messages[i as usize].seen.is_empty()) {
                continue;
            }
            for (i, key) in placed {
                self.note_position(i, key);
                self.messages[i as usize].flags |= PROVEN;
            }
        }
        if let Some(log) = self.log.as_mut() {
            log.seal();
        }
    }
}

/// Reordered sends kept as examples while the history streams by (the verdict shows fewer).
const EXAMPLES_KEPT: usize = 20;

/// The crash point a crash event (or a skipped crash) names: the plan's `planned`, else the
/// `point` in words, else `unknown`.
fn crash_point(value: Option<&serde_json::Value>) -> &str {
    value
        .and_then(|v| v.get("planned").or_else(|| v.get("point")))
        .and_then(|p| p.as_str())
        .unwrap_or("unknown")
}

/// Why a history could not be judged.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    History(#[from] HistoryError),
    /// `--group` named a group the history never mentions (most likely a typo).
    #[error("consumer group `{group}` does not occur in the history ({known}); name one of its groups, or leave out --group")]
    UnknownGroup { group: String, known: String },
    /// The header declared log positions, and a `pos` is not `partition@offset`.
    #[error("the event with index {index} has the position `{pos}`, but the header declares \"positions\":\"log\", which needs partition@offset (two integers, e.g. 0@17); fix the position or remove the declaration")]
    BadPosition { index: u64, pos: String },
}

/// Read a whole history and judge it.
pub fn check(reader: HistoryReader, claim: Option<Guarantee>, examples: usize) -> Result<Verdict, CheckError> {
    check_with(
        reader,
        &CheckOptions {
            claim,
            examples,
            groups: None,
            min_evidence: None,
        },
    )
}

/// What to judge a history against (beyond what its header says).
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Overrides the header's claim.
    pub claim: Option<Guarantee>,
    /// Examples per anomaly kind.
    pub examples: usize,
    /// The evidence grade a holding claim needs (else exit 3).
    pub min_evidence: Option<evidence::Grade>,
    /// Judge only these consumer groups; overrides the header's `claim_groups`. Each must occur
    /// in the history.
    pub groups: Option<Vec<String>>,
}

pub fn check_with(mut reader: HistoryReader, options: &CheckOptions) -> Result<Verdict, CheckError> {
    let mut checker = Checker::new();
    if let Some(bytes) = reader.input_bytes() {
        checker.reserve_for(bytes);
    }
    while let Some(item) = reader.next_item() {
        checker.observe(item?);
    }
    checker.set_truncated_line(reader.truncated_line);
    if let Some((index, pos)) = checker.bad_position.take() {
        return Err(CheckError::BadPosition { index, pos });
    }
    for group in options.groups.iter().flatten() {
        if !checker.knows_group(group) {
            let mut names: Vec<&str> = (0..checker.groups.len())
                .map(|g| checker.groups.name(g as Idx))
                .collect();
            names.extend(checker.crashed_groups.iter().map(String::as_str));
            names.sort_unstable();
            names.dedup();
            let known = match names.len() {
                0 => "no group delivered anything".to_string(),
                n if n <= 10 => format!("its groups: {}", names.join(", ")),
                n => format!("{n} groups, e.g. {}", names[..10].join(", ")),
            };
            return Err(CheckError::UnknownGroup {
                group: group.clone(),
                known,
            });
        }
    }
    let mut verdict = analysis::finish(checker, options.claim, options.groups.as_deref(), options.examples);
    verdict.min_evidence = options.min_evidence;
    Ok(verdict)
}
