//! Log positions: when the header declares `"positions":"log"`, every `pos` is
//! `partition@offset` within its message's `dest`, so the checker can reason about the order of
//! the log the way Jepsen's Kafka checker does (`jepsen.tests.kafka`):
//!
//! - **inconsistent positions**: two different messages at one offset;
//! - **loss proven by position**: an acknowledged message at offset o, never delivered to a
//!   group that delivered a higher offset of that partition (its reading moved past it);
//! - **skips**: a consumer process whose consecutive reads of a partition jump over offsets
//!   that acknowledgements or other reads show to exist, with no rebalance in between;
//! - **send reordering**: a send of a process that lands at a lower offset than a send of the
//!   same process that had been acknowledged before it was invoked.
//!
//! Positions are kept packed in a u64 (the partition's number in its top 16 bits), so that the
//! per-message cost is the one position the message already had, plus one index entry.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use super::{At, Idx};

/// A position packed into a u64: the (dest, partition) pair's number, from 1, in the top 16
/// bits, the offset below. Never 0, so 0 still means "no position".
pub(super) type Packed = u64;
const OFFSET_BITS: u32 = 48;
const OFFSET_MASK: u64 = (1 << OFFSET_BITS) - 1;
/// Recent acknowledged sends kept per process and partition: how far back a send's invocation
/// may lie for its reordering check (a producer rarely has this many sends in flight).
const SEND_WINDOW: usize = 64;
/// Skipped offsets named per skip in its example.
const NAMED_SKIPS: usize = 5;

pub(super) fn offset_of(p: Packed) -> u64 {
    p & OFFSET_MASK
}

/// The packed position of `offset` in the partition numbered `part`.
pub(super) fn at_offset(part: u16, offset: u64) -> Packed {
    ((part as u64) << OFFSET_BITS) | offset
}

pub(super) fn part_of(p: Packed) -> u16 {
    (p >> OFFSET_BITS) as u16
}

/// `partition@offset`, both decimal integers.
pub(super) fn parse(pos: &str) -> Option<(u32, u64)> {
    let (partition, offset) = pos.split_once('@')?;
    Some((partition.parse().ok()?, offset.parse().ok()?))
}

/// An acknowledged send of one process to one partition, for the reordering check.
#[derive(Debug, Clone, Copy)]
struct Acked {
    /// The send's completion.
    completed: At,
    /// The highest offset of this and every earlier acknowledged send of the process to this
    /// partition, with the message there and its send's completion.
    max_offset: u64,
    max_message: Idx,
    max_at: At,
}

/// A process's consecutive reads of one partition jumped from one offset to a later one.
#[derive(Debug, Clone, Copy)]
pub(super) struct Jump {
    pub part: u16,
    pub from: u64,
    pub to: u64,
    pub process: u64,
    pub group: Idx,
    pub before: At,
    pub after: At,
}

/// A send that landed below an earlier acknowledged send of its process.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reorder {
    pub part: u16,
    pub process: u64,
    pub earlier: Idx,
    pub earlier_offset: u64,
    pub earlier_at: At,
    pub later: Idx,
    pub later_offset: u64,
    pub later_at: At,
}

/// What the log shows, gathered while the history streams by.
#[derive(Debug, Default)]
pub(super) struct LogIndex {
    parts: FxHashMap<(Idx, u32), u16>,
    /// (dest, partition) of part number i + 1.
    part_names: Vec<(Idx, u32)>,
    /// (position, message) for each distinct position of each message, from acknowledgements
    /// and deliveries; sorted by [`LogIndex::seal`].
    pub entries: Vec<(Packed, Idx)>,
    /// (group, part) → the highest offset the group delivered there, and the event.
    pub max_delivered: FxHashMap<(Idx, u16), (u64, At)>,
    /// (process, part) → the last offset the process read there, and the event.
    last_read: FxHashMap<(u64, u16), (u64, At)>,
    /// Reads that jumped forward by more than one offset: skips if offsets in between exist.
    jumps: Vec<Jump>,
    acked: FxHashMap<(u64, u16), VecDeque<Acked>>,
    pub reorders: u64,
    pub reorder_examples: Vec<Reorder>,
    /// The first position that did not fit: a partition number or offset too large to pack.
    pub overflow: Option<String>,
}

/// Skips found once the history has ended.
#[derive(Debug, Clone)]
pub(super) struct Skip {
    pub jump: Jump,
    /// Offsets in between that exist, and (the first few) messages there.
    pub skipped: u64,
    pub named: Vec<(u64, Idx)>,
}

impl LogIndex {
    /// The packed position of `partition@offset` in `dest`; `None` when it cannot be packed.
    pub fn pack(&mut self, dest: Idx, partition: u32, offset: u64) -> Option<Packed> {
        let part = match self.parts.get(&(dest, partition)) {
            Some(&part) => part,
            None if self.part_names.len() < u16::MAX as usize => {
                self.part_names.push((dest, partition));
                let part = self.part_names.len() as u16;
                self.parts.insert((dest, partition), part);
                part
            }
            None => {
                self.overflow
                    .get_or_insert_with(|| format!("more than {} (dest, partition) pairs", u16::MAX));
                return None;
            }
        };
        if offset > OFFSET_MASK {
            self.overflow
                .get_or_insert_with(|| format!("offset {offset} is above 2^{OFFSET_BITS}"));
            return None;
        }
        Some(at_offset(part, offset))
    }

    /// The (dest, partition) of a packed position.
    pub fn part_name(&self, p: Packed) -> (Idx, u32) {
        self.part_names[part_of(p) as usize - 1]
    }

    /// A message got a position it did not have before.
    pub fn new_position(&mut self, p: Packed, message: Idx) {
        self.entries.push((p, message));
    }

    /// A group delivered the message at `p`.
    pub fn delivered(&mut self, group: Idx, p: Packed, at: At) {
        let offset = offset_of(p);
        let max = self.max_delivered.entry((group, part_of(p))).or_insert((offset, at));
        if offset > max.0 {
            *max = (offset, at);
        }
    }

    /// A consumer process read the message at `p` (delivered, or received and skipped).
    pub fn read(&mut self, process: u64, group: Idx, p: Packed, at: At) {
        let (part, offset) = (part_of(p), offset_of(p));
        if let Some((from, before)) = self.last_read.insert((process, part), (offset, at)) {
            if offset > from + 1 {
                self.jumps.push(Jump {
                    part,
                    from,
                    to: offset,
                    process,
                    group,
                    before,
                    after: at,
                });
            }
        }
    }

    /// The number of (dest, partition), if any position there was seen.
    pub fn part_number(&self, dest: Idx, partition: u32) -> Option<u16> {
        self.parts.get(&(dest, partition)).copied()
    }

    /// The process's assignment changed: its next read of a partition it no longer holds (all,
    /// when `kept` is `None`) starts afresh.
    pub fn rebalanced(&mut self, process: u64, kept: Option<&[u16]>) {
        self.last_read
            .retain(|&(p, part), _| p != process || kept.is_some_and(|k| k.contains(&part)));
    }

    /// A send of `process`, invoked at `invoked` and acknowledged at `completed`, put `positions`
    /// (message, packed) in the log. Checks them against the process's sends acknowledged before
    /// the invocation, then remembers this one.
    pub fn acknowledged(
        &mut self,
        process: u64,
        invoked: At,
        completed: At,
        positions: &[(Idx, Packed)],
        examples: usize,
    ) {
        let mut parts: Vec<u16> = positions.iter().map(|&(_, p)| part_of(p)).collect();
        parts.sort_unstable();
        parts.dedup();
        for part in parts {
            let here = positions.iter().filter(|&&(_, p)| part_of(p) == part);
            let (lowest, highest) = here.fold(((u64::MAX, 0), (0, 0)), |(lo, hi), &(m, p)| {
                let o = offset_of(p);
                (if o < lo.0 { (o, m) } else { lo }, if o >= hi.0 { (o, m) } else { hi })
            });
            let window = self.acked.entry((process, part)).or_default();
            // The newest send acknowledged before this one was invoked: its running maximum
            // covers every earlier one (those still in flight at the invocation are concurrent).
            if let Some(before) = window.iter().rev().find(|a| a.completed.index < invoked.index) {
                if lowest.0 < before.max_offset {
                    self.reorders += 1;
                    if self.reorder_examples.len() < examples {
                        self.reorder_examples.push(Reorder {
                            part,
                            process,
                            earlier: before.max_message,
                            earlier_offset: before.max_offset,
                            earlier_at: before.max_at,
                            later: lowest.1,
                            later_offset: lowest.0,
                            later_at: completed,
                        });
                    }
                }
            }
            let next = match window.back() {
                Some(last) if last.max_offset > highest.0 => Acked { completed, ..*last },
                _ => Acked {
                    completed,
                    max_offset: highest.0,
                    max_message: highest.1,
                    max_at: completed,
                },
            };
            window.push_back(next);
            if window.len() > SEND_WINDOW {
                window.pop_front();
            }
        }
    }

    /// Sort the index once the history has ended (and the positions of proven-committed sends
    /// are in).
    pub fn seal(&mut self) {
        self.entries.sort_unstable();
        self.entries.dedup();
    }

    /// Offsets holding more than one message: (position, the messages there).
    pub fn inconsistent(&self) -> Vec<(Packed, Vec<Idx>)> {
        let mut found = Vec::new();
        for run in self.entries.chunk_by(|a, b| a.0 == b.0) {
            if run.len() > 1 {
                found.push((run[0].0, run.iter().map(|&(_, m)| m).collect()));
            }
        }
        found
    }

    /// The jumps over offsets that exist and hold a message for which `readable` is true (a
    /// read_committed consumer rightly passes over an aborted transaction's messages; sealed
    /// index only).
    pub fn skips(&self, readable: impl Fn(Idx) -> bool) -> Vec<Skip> {
        let mut skips = Vec::new();
        for jump in &self.jumps {
            let (from, to) = (at_offset(jump.part, jump.from), at_offset(jump.part, jump.to));
            let lo = self.entries.partition_point(|&(p, _)| p <= from);
            let hi = self.entries.partition_point(|&(p, _)| p < to);
            let between = &self.entries[lo..hi];
            let mut named: Vec<(u64, Idx)> = Vec::new();
            let mut skipped = 0;
            for run in between.chunk_by(|a, b| a.0 == b.0) {
                if !run.iter().any(|&(_, m)| readable(m)) {
                    continue;
                }
                skipped += 1;
                if named.len() < NAMED_SKIPS {
                    named.push((offset_of(run[0].0), run[0].1));
                }
            }
            if skipped > 0 {
                skips.push(Skip {
                    jump: *jump,
                    skipped,
                    named,
                });
            }
        }
        skips
    }
}
