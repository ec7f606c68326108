//! The `checker` role: history in, verdict out (DESIGN.md "Checker semantics").
//!
//! [`Checker::observe`] folds records into per-message state as they stream by; it keeps no
//! events. [`Checker::finish`] (in `analysis`) classifies every message once the history has
//! ended, because a delivery may precede, in the file, the completion of its send.

mod analysis;
pub mod verdict;

use std::hash::{Hash, Hasher};

use rustc_hash::{FxHashMap, FxHashSet, FxHasher};
use smallvec::SmallVec;

use crate::history::reader::{HistoryError, HistoryReader, Record};
use crate::history::{ops, Event, EventType, Guarantee, Header, Message, Process};
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
    fn of(e: &Event) -> At {
        At {
            index: e.index,
            time: e.time,
        }
    }
}

/// What one consumer group saw of one message.
#[derive(Debug, Clone)]
struct Seen {
    group: u16,
    count: u32,
    /// Bit i: position i of the message was delivered to this group.
    positions_seen: u8,
    /// The same position came twice: redelivered.
    redelivered: bool,
    /// Place of the first delivery within its deliver event (messages of one event are
    /// delivered in the order listed).
    first_slot: u32,
    first: At,
}

const ACKED: u8 = 1;
/// The message was (also) part of an atomic send.
const ATOMIC: u8 = 2;
/// A delivery of it carried no position.
const NO_POS: u8 = 4;

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

/// Streaming checker state.
pub struct Checker {
    header: Option<Header>,
    /// Message ids; `messages[i]` is the state of id `i`.
    ids: Interner,
    messages: Vec<MessageState>,
    strings: Interner,
    groups: Interner,
    /// (group, dest) pairs with at least one delivery.
    group_dests: FxHashSet<(u16, Idx)>,
    atomic_sends: Vec<AtomicSend>,
    /// Distinct positions of a message after its first (up to 7).
    more_positions: FxHashMap<Idx, SmallVec<[u64; 2]>>,
    /// The second delivery of a message to a group (examples of duplicates cite it).
    second_deliveries: FxHashMap<(Idx, u16), At>,
    evidence: verdict::Evidence,
    /// Some message has `from`: judge upstream messages end to end.
    pipeline: bool,
    truncated_line: Option<u64>,
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
    fn hash(s: &str) -> u64 {
        let mut h = FxHasher::default();
        s.hash(&mut h);
        h.finish()
    }

    fn get_or_insert(&mut self, s: String) -> (Idx, bool) {
        let hash = Self::hash(&s);
        let (text, spans) = (&self.text, &self.spans);
        if let Some(&i) = self.map.find(hash, |&i| Self::at(text, spans, i) == s) {
            return (i, false);
        }
        let i = self.spans.len() as Idx;
        self.spans.push((self.text.len() as u32, s.len() as u32));
        self.text.push_str(&s);
        let (text, spans) = (&self.text, &self.spans);
        self.map
            .insert_unique(hash, i, |&j| Self::hash(Self::at(text, spans, j)));
        (i, true)
    }

    fn get(&self, s: &str) -> Option<Idx> {
        let (text, spans) = (&self.text, &self.spans);
        self.map
            .find(Self::hash(s), |&i| Self::at(text, spans, i) == s)
            .copied()
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

fn pos_hash(pos: &str) -> u64 {
    let mut h = FxHasher::default();
    pos.hash(&mut h);
    // Never 0, so a zeroed slot cannot look like a position.
    h.finish() | 1
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
            group_dests: FxHashSet::default(),
            atomic_sends: Vec::new(),
            more_positions: FxHashMap::default(),
            second_deliveries: FxHashMap::default(),
            evidence: verdict::Evidence::default(),
            pipeline: false,
            truncated_line: None,
        }
    }

    /// The header, if the history had one.
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// Note that the reader dropped a last line cut off mid-write.
    pub fn set_truncated_line(&mut self, line: Option<u64>) {
        self.truncated_line = line;
    }

    fn message(&mut self, id: String) -> Idx {
        let (i, new) = self.ids.get_or_insert(id);
        if new {
            self.messages.push(MessageState::new());
        }
        i
    }

    /// Intern `dest`, `key` and `from` of a message the first time they are seen.
    fn describe(&mut self, i: Idx, m: &mut Message) {
        if let Some(dest) = m.dest.take() {
            if self.messages[i as usize].dest == NONE {
                self.messages[i as usize].dest = self.strings.get_or_insert(dest).0;
            }
        }
        if let Some(key) = m.key.take() {
            if self.messages[i as usize].key == NONE {
                self.messages[i as usize].key = self.strings.get_or_insert(key).0;
            }
        }
        if let Some(from) = m.from.take() {
            if self.messages[i as usize].from == NONE {
                let upstream = self.message(from);
                self.messages[i as usize].from = upstream;
                self.pipeline = true;
            }
        }
    }

    /// Fold one record into the state.
    pub fn observe(&mut self, record: Record) {
        match record {
            Record::Header { header, .. } => self.header = Some(header),
            Record::Unfinished { invocation, .. } => {
                if invocation.f == ops::SEND {
                    self.send_completed(invocation, None);
                }
            }
            Record::Event { event, invocation, .. } => self.event(event, invocation),
        }
    }

    fn event(&mut self, event: Event, invocation: Option<Event>) {
        if event.process == Process::Nemesis {
            // A fault starts at its invocation, or at a completion that had none.
            if event.kind == EventType::Invoke || invocation.is_none() {
                if let Some(fault) = event.f.strip_prefix("start-") {
                    *self.evidence.faults.entry(fault.to_string()).or_default() += 1;
                }
            }
            return;
        }
        match (event.f.as_str(), event.kind) {
            (ops::SEND, EventType::Invoke) => self.evidence.sends += 1,
            // The reader pairs every send completion with its invocation (or rejects the line).
            (ops::SEND, _) => {
                if let Some(invocation) = invocation {
                    self.send_completed(invocation, Some(event));
                }
            }
            (ops::DELIVER, EventType::Ok) => self.delivered(event),
            (ops::CRASH, EventType::Info) => self.evidence.crashes += 1,
            (ops::DRAIN, EventType::Ok) => self.evidence.drained = true,
            _ => {}
        }
    }

    /// A send ended (`completion`), or never did (`None`).
    fn send_completed(&mut self, invocation: Event, completion: Option<Event>) {
        let invoked = At::of(&invocation);
        let (kind, done) = match &completion {
            Some(c) => (c.kind, At::of(c)),
            None => (EventType::Info, invoked),
        };
        if kind == EventType::Info {
            self.evidence.indeterminate_sends += 1;
        }
        let atomic = invocation.value.as_ref().is_some_and(|v| v.atomic);
        let Some(value) = invocation.value else { return };
        let mut members = Vec::new();
        for mut m in value.messages {
            let id = std::mem::take(&mut m.id);
            let i = self.message(id);
            self.describe(i, &mut m);
            let s = &mut self.messages[i as usize];
            s.sends += 1;
            if invoked.index < s.first_invoke.index {
                s.first_invoke = invoked;
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
        if atomic && members.len() > 1 {
            self.atomic_sends.push(AtomicSend {
                messages: members,
                failed: kind == EventType::Fail,
                at: done,
            });
        }
    }

    /// A copy an idempotent consumer received and skipped: a redelivery if the message was
    /// delivered at that position before, else another stored copy of it.
    fn skipped(&mut self, m: &Message) {
        self.evidence.skipped += 1;
        self.evidence.flagged_redelivered += m.redelivered as u64;
        let seen_at = |h: u64| {
            let i = self.ids.get(&m.id)?;
            let first = self.messages[i as usize].first_pos;
            Some(first == h || self.more_positions.get(&i).is_some_and(|more| more.contains(&h)))
        };
        if m.pos.as_deref().map(pos_hash).and_then(seen_at) == Some(true) {
            self.evidence.skipped_redelivered += 1;
        }
    }

    fn delivered(&mut self, event: Event) {
        let at = At::of(&event);
        let Some(value) = event.value else { return };
        let group = self.groups.get_or_insert(value.group.unwrap_or_default()).0 as u16;
        for m in &value.skipped {
            self.skipped(m);
        }
        for (slot, mut m) in value.messages.into_iter().enumerate() {
            self.evidence.deliveries += 1;
            self.evidence.flagged_redelivered += m.redelivered as u64;
            let id = std::mem::take(&mut m.id);
            let pos = m.pos.take();
            let i = self.message(id);
            self.describe(i, &mut m);
            let s = &mut self.messages[i as usize];
            if s.dest != NONE {
                self.group_dests.insert((group, s.dest));
            }
            let bit = match pos {
                Some(pos) => {
                    let h = pos_hash(&pos);
                    if s.first_pos == 0 || s.first_pos == h {
                        s.first_pos = h;
                        Some(0)
                    } else {
                        let more = self.more_positions.entry(i).or_default();
                        match more.iter().position(|&p| p == h) {
                            Some(k) => Some(k + 1),
                            None if more.len() < 7 => {
                                more.push(h);
                                Some(more.len())
                            }
                            None => None,
                        }
                    }
                }
                None => {
                    s.flags |= NO_POS;
                    None
                }
            };
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
                    });
                    s.seen.last_mut().expect("just pushed")
                }
            };
            seen.count += 1;
            if seen.count == 2 {
                self.second_deliveries.insert((i, group), at);
            }
            if let Some(k) = bit {
                if seen.positions_seen & (1 << k) != 0 {
                    seen.redelivered = true;
                }
                seen.positions_seen |= 1 << k;
            }
        }
    }

    /// Classify every message and build the verdict. `claim` overrides the header's claim.
    pub fn finish(self, claim: Option<Guarantee>, examples: usize) -> Verdict {
        analysis::finish(self, claim, None, examples)
    }
}

/// Read a whole history and judge it.
pub fn check(reader: HistoryReader, claim: Option<Guarantee>, examples: usize) -> Result<Verdict, HistoryError> {
    check_with(
        reader,
        &CheckOptions {
            claim,
            examples,
            groups: None,
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
    /// Judge only these consumer groups; overrides the header's `claim_groups`.
    pub groups: Option<Vec<String>>,
}

pub fn check_with(mut reader: HistoryReader, options: &CheckOptions) -> Result<Verdict, HistoryError> {
    let mut checker = Checker::new();
    for record in reader.by_ref() {
        checker.observe(record?);
    }
    checker.set_truncated_line(reader.truncated_line);
    Ok(analysis::finish(
        checker,
        options.claim,
        options.groups.as_deref(),
        options.examples,
    ))
}
