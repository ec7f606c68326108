//! What the checker concludes: counts, evidence, examples, the observed guarantee and whether the
//! claim held. Serialized as the JSON verdict (a stable interface: see docs/history-format.md).

use std::collections::BTreeMap;

use serde::Serialize;

use super::evidence::{CrashPoint, FaultWindow, Grade, Skipped, UnexplainedStall};
use crate::history::Guarantee;

/// The observed class of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Observed {
    ExactlyOnce,
    AtLeastOnce,
    AtMostOnce,
    NoGuarantee,
}

impl Observed {
    pub fn name(self) -> &'static str {
        match self {
            Observed::ExactlyOnce => "exactly-once",
            Observed::AtLeastOnce => "at-least-once",
            Observed::AtMostOnce => "at-most-once",
            Observed::NoGuarantee => "no-guarantee",
        }
    }
}

/// Message-level counts: each is a number of distinct messages (for a pipeline history, of
/// upstream messages), except `torn` (atomic sends) and `order_violations` (deliveries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub messages: u64,
    pub acknowledged: u64,
    pub indeterminate: u64,
    pub failed: u64,
    pub delivered: u64,
    pub lost: u64,
    pub unseen: u64,
    pub duplicated: u64,
    pub unexpected: u64,
    pub recovered: u64,
    pub failed_delivered: u64,
    pub torn: u64,
    pub order_violations: u64,
    /// Messages stored at two or more positions (from acknowledgements and deliveries), whether
    /// or not a group delivered them twice. Reported, not part of the classification.
    pub stored_twice: u64,
    /// Log positions only: positions (partition@offset) holding two or more different messages.
    /// An integrity anomaly: violates every claim.
    pub inconsistent_positions: u64,
    /// Log positions only: of `lost`, the messages whose loss the positions prove (a group
    /// that should see them delivered a higher offset of their partition), drain or not.
    pub lost_by_position: u64,
    /// Log positions only: consecutive reads of a partition by one consumer process that
    /// jumped over offsets known to exist, with no rebalance between. Reported.
    pub skips: u64,
    /// Log positions only: sends that landed at a lower offset than a send of the same process
    /// acknowledged before they were invoked. Reported.
    pub send_reorders: u64,
}

/// Why duplicated messages were duplicated (a message may show more than one cause).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DuplicateCauses {
    /// The same id at two positions, or (pipelines) two outputs derived from one input.
    pub written_twice: u64,
    /// The same position delivered twice to one group.
    pub redelivered: u64,
    /// No positions recorded: the cause cannot be told.
    pub unknown: u64,
}

/// How hard the run tried: a clean verdict is evidence, not proof.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Evidence {
    /// `none` | `weak` | `strong`: what the claim's verdict is worth (checker/evidence.rs).
    pub grade: Grade,
    /// Why the grade is not `strong` (sentences); empty when it is.
    pub reasons: Vec<String>,
    /// Send operations (invocations).
    pub sends: u64,
    /// Messages delivered (one per message per deliver event).
    pub deliveries: u64,
    /// Send operations that ended `info` or never completed.
    pub indeterminate_sends: u64,
    /// Client crashes.
    pub crashes: u64,
    /// Nemesis operation (`start-X` recorded as `X`) → how many times it started.
    pub faults: BTreeMap<String, u64>,
    /// Whether the history has a completed drain (without one, loss cannot be proven).
    pub drained: bool,
    /// Copies an idempotent consumer received again and skipped (deliver events' `skipped`):
    /// duplicates the application, not the broker, kept from taking effect.
    pub skipped: u64,
    /// Of those, copies at a position delivered before (redeliveries); the others are other
    /// stored copies of the message (written twice).
    pub skipped_redelivered: u64,
    /// Deliveries and skipped copies the broker itself flagged as redelivered.
    pub flagged_redelivered: u64,
    /// Nanoseconds of the run phase: from the start of the history to the drain's invocation
    /// (without a drain, to the last event).
    pub run_phase: u64,
    /// The longest span of the run phase in which no send was acknowledged (`None`: no run phase).
    pub longest_stall_acked: Option<Stall>,
    /// The longest span of the run phase in which nothing was delivered.
    pub longest_stall_delivered: Option<Stall>,
    /// Faults the history shows as planned: started plus skipped.
    pub faults_scheduled: u64,
    /// Faults that started (`start-X` that did not end `fail`).
    pub faults_started: u64,
    /// Faults given up, with the reason (a `start-X` that ended `fail`).
    pub faults_skipped: Vec<Skipped>,
    /// Every fault that started: when, on which node, sends in flight, recovery after it.
    pub fault_windows: Vec<FaultWindow>,
    /// Client crashes planned: happened plus skipped.
    pub crashes_scheduled: u64,
    /// Planned client crashes that did not happen, with the reason (nemesis `crash` `fail`).
    pub crashes_skipped: Vec<Skipped>,
    /// Crash point → crashes there, those holding messages, messages held, skipped.
    pub crash_points: BTreeMap<String, CrashPoint>,
    /// Share of the run phase (0–1) outside every gap of 1 s or more without an acknowledged
    /// send or without a delivery (`None`: no run phase).
    pub progress_share: Option<f64>,
    /// The same share of the run phase outside every fault window (`None`: no time outside).
    pub progress_share_outside_faults: Option<f64>,
    /// The stall (of either kind, ≥ 1 s) with the most time outside fault windows.
    pub longest_unexplained_stall: Option<UnexplainedStall>,
}

/// A span of the run phase without progress, in nanoseconds since the run started: from the
/// last progress before it (or the start) to the next progress (or the end of the run phase).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stall {
    pub from: u64,
    pub to: u64,
}

impl Stall {
    pub fn nanos(&self) -> u64 {
        self.to - self.from
    }
}

/// How one producer's lost messages lie among what it sent: a reader tells a suffix cut off
/// by the last fault from holes in the middle of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LossShape {
    /// The process of the lost messages' first send.
    pub process: u64,
    /// Messages it sent that were acknowledged (or proven written).
    pub acknowledged: u64,
    pub lost: u64,
    /// `all`; `prefix` (every lost one sent before every delivered one); `suffix` (after);
    /// `middle` (otherwise: holes among delivered messages).
    pub shape: &'static str,
    /// Nanoseconds since the start: the first invocation of the first and last lost message.
    pub first_sent: u64,
    pub last_sent: u64,
    /// Lost messages first sent while a fault was in force (between a `start-X` and the end of
    /// its healing).
    pub sent_during_faults: u64,
}

/// Per consumer group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GroupCounts {
    pub delivered: u64,
    pub lost: u64,
    pub unseen: u64,
    pub duplicated: u64,
    pub failed_delivered: u64,
    pub torn: u64,
    pub order_violations: u64,
}

/// One event cited by an example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cited {
    pub index: u64,
    /// Nanoseconds since the run started.
    pub time: u64,
    /// What this event shows, e.g. "send ok", "delivered to g1".
    pub what: String,
    /// Where the event put or found the message (`orders 0@17`), when the checker knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pos: Option<String>,
}

/// A proof by example: one message (or atomic send) and the events that show the anomaly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Example {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub explanation: String,
    pub events: Vec<Cited>,
}

/// The checker's verdict on one history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub verdict: Observed,
    pub claim: Option<Guarantee>,
    pub claim_holds: Option<bool>,
    /// Why the claim does not hold (empty when it holds or there is none).
    pub violations: Vec<String>,
    pub counts: Counts,
    pub duplicate_causes: DuplicateCauses,
    pub evidence: Evidence,
    pub groups: BTreeMap<String, GroupCounts>,
    /// Whether the history was judged as a pipeline (messages with `from`).
    pub pipeline: bool,
    /// Whether the header declared log positions (`partition@offset`), enabling the log checks.
    pub log_positions: bool,
    /// The consumer groups the counts and the claim cover; `None`: every group.
    pub claim_groups: Option<Vec<String>>,
    /// Anomaly kind → up to N examples.
    pub examples: BTreeMap<String, Vec<Example>>,
    /// Caveats a reader must know (no drain, a cut-off last line, …).
    pub notes: Vec<String>,
    /// Per producer with lost messages (most lost first, at most 20): where the losses lie.
    pub loss_shapes: Vec<LossShape>,
    /// The evidence grade asked for (`--min-evidence`), if any.
    pub min_evidence: Option<Grade>,
    /// What the run's clients achieved: throughput and end-to-end latency.
    pub performance: Performance,
}

/// Throughput and latency, from the history alone: the cost side of a guarantee.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Performance {
    /// Acknowledged messages per second of the run phase (`None`: no run phase).
    pub acknowledged_per_second: Option<f64>,
    /// Send invoked → first delivery to any group, over the messages delivered at least once
    /// (`None`: none was).
    pub latency: Option<Latency>,
}

/// A latency distribution in milliseconds (HdrHistogram, 3 significant digits).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    /// Messages measured.
    pub messages: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Verdict {
    /// The observed class from loss and duplicates.
    pub fn classify(lost: u64, duplicated: u64) -> Observed {
        match (lost > 0, duplicated > 0) {
            (false, false) => Observed::ExactlyOnce,
            (false, true) => Observed::AtLeastOnce,
            (true, false) => Observed::AtMostOnce,
            (true, true) => Observed::NoGuarantee,
        }
    }

    /// Why `claim` is violated by these counts; empty when it holds.
    pub fn violations_of(claim: Guarantee, c: &Counts) -> Vec<String> {
        let mut v = Vec::new();
        // An integrity anomaly: a delivery of a message nobody sent (a phantom) is neither loss
        // nor duplication, but no guarantee allows the broker to invent messages.
        if c.unexpected > 0 {
            v.push(format!(
                "{} message(s) delivered although never sent (phantoms)",
                c.unexpected
            ));
        }
        // Two different messages at one offset: the log itself is inconsistent.
        if c.inconsistent_positions > 0 {
            v.push(format!(
                "{} log position(s) hold two different messages (inconsistent positions)",
                c.inconsistent_positions
            ));
        }
        let duplicates = || format!("{} message(s) duplicated", c.duplicated);
        let loss = || format!("{} acknowledged message(s) lost", c.lost);
        match claim {
            Guarantee::AtMostOnce => {
                if c.duplicated > 0 {
                    v.push(duplicates());
                }
            }
            Guarantee::AtLeastOnce => {
                if c.lost > 0 {
                    v.push(loss());
                }
            }
            Guarantee::ExactlyOnce => {
                if c.lost > 0 {
                    v.push(loss());
                }
                if c.duplicated > 0 {
                    v.push(duplicates());
                }
                if c.failed_delivered > 0 {
                    v.push(format!(
                        "{} message(s) delivered although every send failed (aborted reads)",
                        c.failed_delivered
                    ));
                }
                if c.torn > 0 {
                    v.push(format!(
                        "{} atomic send(s) delivered in part (torn transactions)",
                        c.torn
                    ));
                }
            }
        }
        v
    }

    /// Whether the evidence is weaker than `min_evidence` asks for.
    pub fn evidence_too_weak(&self) -> bool {
        self.min_evidence.is_some_and(|min| self.evidence.grade < min)
    }

    /// 0: the claim holds or there is none; 1: the claim is violated; 3: it holds (or there is
    /// none), but the evidence is weaker than `min_evidence` asks for, or a claim was made and
    /// could not be judged (nothing acknowledged or nothing delivered).
    pub fn exit_code(&self) -> i32 {
        if self.claim_holds == Some(false) {
            1
        } else if self.evidence_too_weak() || (self.claim.is_some() && self.claim_holds.is_none()) {
            3
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phantom_violates_every_claim() {
        let counts = Counts {
            messages: 3,
            acknowledged: 3,
            delivered: 4,
            unexpected: 1,
            ..Counts::default()
        };
        for claim in [Guarantee::AtMostOnce, Guarantee::AtLeastOnce, Guarantee::ExactlyOnce] {
            let violations = Verdict::violations_of(claim, &counts);
            assert_eq!(
                violations,
                vec!["1 message(s) delivered although never sent (phantoms)".to_string()],
                "{claim}"
            );
        }
        let clean = Counts {
            unexpected: 0,
            ..counts
        };
        for claim in [Guarantee::AtMostOnce, Guarantee::AtLeastOnce, Guarantee::ExactlyOnce] {
            assert!(Verdict::violations_of(claim, &clean).is_empty(), "{claim}");
        }
    }
}
