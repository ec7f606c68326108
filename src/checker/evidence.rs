//! How hard a run tried, from the history alone: the faults scheduled, started and skipped, what
//! each one could affect (sends in flight when it started) and how long the run took to recover
//! from it, client crashes by crash point, the gaps in progress, and the grade that sums it up
//! (`docs/history-format.md`, "Evidence grade", has the thresholds).
//!
//! A clean verdict from a run that carried out none of its faults, or whose consumers stood still
//! for most of it, is not evidence of anything: the grade says so beside the claim.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::verdict::{Counts, Evidence, Stall};

/// Gaps in progress shorter than this are the normal rhythm of a run (a batch, a poll), not stalls.
pub const GAP_MIN: u64 = 1_000_000_000;
/// Fewer messages than this: too few for a clean result to mean much.
pub const MIN_MESSAGES: u64 = 1_000;
/// A kind of fault must start at least this often, and this share of the schedule must start.
pub const MIN_STARTS_PER_KIND: u64 = 2;
pub const MIN_STARTED_PERCENT: u64 = 80;
/// A stall outside fault time longer than this (or than [`MAX_STALL_PERCENT`] of the run phase,
/// whichever is longer) means most of the run tested nothing on one side.
pub const MAX_STALL: u64 = 10_000_000_000;
pub const MAX_STALL_PERCENT: u64 = 20;
/// Progress (acknowledged sends and deliveries) in less than this share of the run phase outside
/// fault windows.
pub const MIN_PROGRESS_PERCENT: f64 = 50.0;
/// More than this share of the faults not followed by recovery (an acknowledged send and a
/// delivery after the fault was lifted, before the next one began).
pub const MAX_UNRECOVERED_PERCENT: u64 = 20;

/// How much a run's verdict is worth. Ordered: `none` < `weak` < `strong`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Grade {
    /// Nothing was tried: no fault started and no client crashed, or nothing was sent or delivered.
    #[default]
    None,
    /// Something was tried, but less than the run set out to (see the reasons).
    Weak,
    /// The schedule was carried out, with operations in flight, and the run kept making progress.
    Strong,
}

impl Grade {
    pub fn name(self) -> &'static str {
        match self {
            Grade::None => "none",
            Grade::Weak => "weak",
            Grade::Strong => "strong",
        }
    }
}

impl fmt::Display for Grade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Grade {
    type Err = String;
    fn from_str(s: &str) -> Result<Grade, String> {
        match s {
            "strong" => Ok(Grade::Strong),
            "weak" => Ok(Grade::Weak),
            "none" => Ok(Grade::None),
            _ => Err(format!("`{s}` is not an evidence grade: use strong, weak or none")),
        }
    }
}

/// One fault that started, from its `start-X` to its `stop-X`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultWindow {
    pub kind: String,
    /// The node it acted on, when the event's value names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<u64>,
    /// Nanoseconds since the run started: the `start-X` invocation.
    pub from: u64,
    /// The `stop-X` invocation: the fault is lifted (`None`: never stopped in the history).
    pub lifted: Option<u64>,
    /// The `stop-X` completion: healing finished (a killed node is running again).
    pub healed: Option<u64>,
    /// Sends invoked and not yet completed when it started: what it could affect.
    pub in_flight: u64,
    /// Sends invoked while it was in force (from its start to its lift).
    pub sends_during: u64,
    /// Nanoseconds from `lifted` to the first acknowledged send after it (`None`: none came).
    pub recovery_acked: Option<u64>,
    /// Nanoseconds from `lifted` to the first delivery after it.
    pub recovery_delivered: Option<u64>,
}

/// A scheduled fault or client crash that was not carried out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The fault kind (`kill`), or the planned crash point (`late`).
    pub kind: String,
    /// Nanoseconds since the run started, when it was given up.
    pub time: u64,
    pub reason: String,
    /// The event value's `cause`, when it has one: `late` (the run phase ended before it fit),
    /// `stopped`, `unhealthy` (the cluster was not healthy), `unrecovered` (the run had not
    /// recovered from the previous fault).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// Client crashes at one crash point.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CrashPoint {
    /// Crashes that happened here.
    pub crashes: u64,
    /// Of those, crashes of a client holding messages (the ones that can lose or repeat some).
    pub holding: u64,
    /// Messages held by crashed clients, in all.
    pub messages_held: u64,
    /// Crashes planned here that did not happen.
    pub skipped: u64,
}

/// The longest stall of the run phase that faults do not explain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UnexplainedStall {
    pub from: u64,
    pub to: u64,
    /// `acknowledged sends` or `deliveries`: what stood still.
    pub of: &'static str,
    /// Nanoseconds of it outside every fault window.
    pub outside_faults: u64,
}

/// Folds the nemesis and crash events of a history as they stream by.
#[derive(Debug, Default)]
pub(super) struct FaultLog {
    windows: Vec<FaultWindow>,
    skipped: Vec<Skipped>,
    crash_skipped: Vec<Skipped>,
    crash_points: BTreeMap<String, CrashPoint>,
    /// Windows before these have their recovery settled (or can no longer get one).
    next_acked: usize,
    next_delivered: usize,
    /// Sends invoked and not completed so far.
    pub in_flight: u64,
}

impl FaultLog {
    /// A `start-X` invocation: the fault is in force from now (unless its completion says `fail`).
    pub fn start_invoked(&mut self, kind: &str, node: Option<u64>, time: u64) {
        self.windows.push(FaultWindow {
            kind: kind.to_string(),
            node,
            from: time,
            lifted: None,
            healed: None,
            in_flight: self.in_flight,
            sends_during: 0,
            recovery_acked: None,
            recovery_delivered: None,
        });
    }

    /// A `start-X` completion: `paired` with its invocation or standalone. `fail` means the fault
    /// was not made (a skip, with the event's error as the reason).
    #[allow(clippy::too_many_arguments)]
    pub fn start_completed(
        &mut self,
        kind: &str,
        node: Option<u64>,
        time: u64,
        failed: bool,
        error: Option<&str>,
        cause: Option<&str>,
        paired: bool,
    ) {
        let reason = || {
            error
                .unwrap_or("the nemesis reported that it did not start")
                .to_string()
        };
        match (paired, failed) {
            (true, true) => {
                let open = self.windows.iter().rposition(|w| w.kind == kind && w.lifted.is_none());
                let from = open.map_or(time, |k| self.windows.remove(k).from);
                self.skipped.push(Skipped {
                    kind: kind.to_string(),
                    time: from,
                    reason: reason(),
                    cause: cause.map(str::to_string),
                });
                self.next_acked = self.next_acked.min(self.windows.len());
                self.next_delivered = self.next_delivered.min(self.windows.len());
            }
            (false, true) => self.skipped.push(Skipped {
                kind: kind.to_string(),
                time,
                reason: reason(),
                cause: cause.map(str::to_string),
            }),
            (false, false) => self.start_invoked(kind, node, time),
            (true, false) => {}
        }
    }

    /// A `stop-X` event: its invocation lifts the fault, its completion (or a standalone stop)
    /// says healing finished.
    pub fn stop(&mut self, kind: &str, time: u64, invocation: bool) {
        let Some(w) = self
            .windows
            .iter_mut()
            .rev()
            .find(|w| w.kind == kind && w.healed.is_none())
        else {
            return;
        };
        if w.lifted.is_none() {
            w.lifted = Some(time);
        }
        if !invocation {
            w.healed = Some(time);
        }
    }

    /// A send invoked: in flight, and exposed to the fault in force.
    pub fn send_invoked(&mut self) {
        self.in_flight += 1;
        if let Some(w) = self.windows.last_mut().filter(|w| w.lifted.is_none()) {
            w.sends_during += 1;
        }
    }

    /// A send acknowledged at `time`: the recovery of lifted faults before it.
    pub fn acked(&mut self, time: u64) {
        settle(&mut self.windows, &mut self.next_acked, time, |w| &mut w.recovery_acked);
    }

    /// Something delivered at `time`.
    pub fn delivered(&mut self, time: u64) {
        settle(&mut self.windows, &mut self.next_delivered, time, |w| {
            &mut w.recovery_delivered
        });
    }

    /// A client crashed at `point` holding `held` messages.
    pub fn crash(&mut self, point: &str, held: u64) {
        let p = self.crash_points.entry(point.to_string()).or_default();
        p.crashes += 1;
        p.holding += (held > 0) as u64;
        p.messages_held += held;
    }

    /// A planned client crash that did not happen.
    pub fn crash_skipped(&mut self, point: &str, time: u64, reason: &str) {
        self.crash_points.entry(point.to_string()).or_default().skipped += 1;
        self.crash_skipped.push(Skipped {
            kind: point.to_string(),
            time,
            reason: reason.to_string(),
            cause: None,
        });
    }

    /// Write what was folded into `e`, with the run phase ending at `end` and the gaps of
    /// progress (≥ [`GAP_MIN`]) of both kinds.
    pub fn close(self, e: &mut Evidence, end: u64, acked_gaps: &[Stall], delivered_gaps: &[Stall]) {
        e.faults.clear();
        for w in &self.windows {
            *e.faults.entry(w.kind.clone()).or_default() += 1;
        }
        e.faults_started = self.windows.len() as u64;
        e.faults_scheduled = e.faults_started + self.skipped.len() as u64;
        e.faults_skipped = self.skipped;
        e.crashes_scheduled = e.crashes + self.crash_skipped.len() as u64;
        e.crashes_skipped = self.crash_skipped;
        e.crash_points = self.crash_points;
        if end > 0 {
            // Fault time: from the start to the end of healing (or the end of the run phase).
            let faults: Vec<(u64, u64)> = self
                .windows
                .iter()
                .map(|w| (w.from, w.healed.or(w.lifted).unwrap_or(end).max(w.from)))
                .collect();
            let mut worst: Option<UnexplainedStall> = None;
            for (gaps, of) in [(acked_gaps, "acknowledged sends"), (delivered_gaps, "deliveries")] {
                for g in gaps {
                    let covered: u64 = union(&faults, g.from, g.to);
                    let outside = g.nanos().saturating_sub(covered);
                    if worst.is_none_or(|w| outside > w.outside_faults) {
                        worst = Some(UnexplainedStall {
                            from: g.from,
                            to: g.to,
                            of,
                            outside_faults: outside,
                        });
                    }
                }
            }
            e.longest_unexplained_stall = worst;
            let all: Vec<(u64, u64)> = acked_gaps
                .iter()
                .chain(delivered_gaps)
                .map(|g| (g.from, g.to))
                .collect();
            let stalled = union(&all, 0, end);
            e.progress_share = Some(1.0 - stalled.min(end) as f64 / end as f64);
            // Outside fault windows: a pause or a kill of a single node stops all progress while
            // it lasts, by design; what counts is whether the run made progress the rest of the time.
            let fault_time = union(&faults, 0, end);
            let outside = end - fault_time.min(end);
            let with_faults: Vec<(u64, u64)> = all.iter().chain(&faults).copied().collect();
            let stalled_outside = union(&with_faults, 0, end).saturating_sub(fault_time);
            e.progress_share_outside_faults =
                (outside > 0).then(|| 1.0 - stalled_outside.min(outside) as f64 / outside as f64);
        }
        e.fault_windows = self.windows;
    }
}

/// Progress at `time`: every window from `next` on that was lifted by then recovered after
/// `time - lifted` (the field `recovery` picks which kind of progress).
fn settle(
    windows: &mut [FaultWindow],
    next: &mut usize,
    time: u64,
    recovery: fn(&mut FaultWindow) -> &mut Option<u64>,
) {
    while let Some(w) = windows.get_mut(*next) {
        match w.lifted {
            Some(lifted) if time >= lifted => {
                *recovery(w) = Some(time - lifted);
                *next += 1;
            }
            _ => break,
        }
    }
}

/// The length of the union of `spans`, clipped to `from..to`.
fn union(spans: &[(u64, u64)], from: u64, to: u64) -> u64 {
    let mut clipped: Vec<(u64, u64)> = spans
        .iter()
        .map(|&(a, b)| (a.max(from), b.min(to)))
        .filter(|(a, b)| a < b)
        .collect();
    clipped.sort_unstable();
    let (mut total, mut reach) = (0u64, from);
    for (a, b) in clipped {
        let a = a.max(reach);
        if b > a {
            total += b - a;
            reach = b;
        }
    }
    total
}

fn seconds(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

/// A fault kind as a countable noun: `kill` → `kills`, `lose-acks` → `lose-acks faults`.
fn plural(kind: &str, n: u64) -> String {
    match (kind, n) {
        ("kill" | "pause" | "reset", 1) => kind.to_string(),
        ("kill" | "pause" | "reset", _) => format!("{kind}s"),
        (_, 1) => format!("{kind} fault"),
        _ => format!("{kind} faults"),
    }
}

/// The grade of `e` for a history with these counts, and the reasons (sentences) for anything
/// short of strong. The thresholds are the constants above, documented in docs/history-format.md.
pub fn grade(e: &Evidence, c: &Counts) -> (Grade, Vec<String>) {
    let mut none = Vec::new();
    if c.acknowledged == 0 {
        none.push("no send was acknowledged".to_string());
    }
    if e.deliveries == 0 {
        none.push("nothing was delivered".to_string());
    }
    if e.faults_started == 0 && e.crashes == 0 {
        none.push(match e.faults_scheduled + e.crashes_scheduled {
            0 => "no fault was scheduled and no client crashed".to_string(),
            n => format!("none of the {n} scheduled faults and crashes happened"),
        });
    }
    if !none.is_empty() {
        return (Grade::None, none);
    }

    let mut weak = Vec::new();
    // Per kind: started, skipped, met a send (in flight at its start, or invoked during it).
    let mut kinds: BTreeMap<&str, (u64, u64, bool)> = BTreeMap::new();
    for w in &e.fault_windows {
        let k = kinds.entry(&w.kind).or_default();
        k.0 += 1;
        k.2 |= w.in_flight > 0 || w.sends_during > 0;
    }
    // Faults that did not fit because healing earlier ones took longer than planned are listed
    // but do not count against the run: every kind must still start twice (below).
    let counted = |s: &&Skipped| s.cause.as_deref() != Some("late");
    for s in e.faults_skipped.iter().filter(counted) {
        kinds.entry(&s.kind).or_default().1 += 1;
    }
    let skipped = e.faults_skipped.iter().filter(counted).count() as u64;
    let started_share_low = e.faults_started * 100 < (e.faults_started + skipped) * MIN_STARTED_PERCENT;
    for (kind, &(started, skipped, exposed)) in &kinds {
        if started_share_low && skipped > 0 {
            let why = e
                .faults_skipped
                .iter()
                .filter(counted)
                .find(|s| s.kind == *kind)
                .map_or("", |s| s.reason.as_str());
            weak.push(format!(
                "{started} of {} {} started ({why})",
                started + skipped,
                plural(kind, started + skipped)
            ));
        } else if started < MIN_STARTS_PER_KIND {
            weak.push(format!(
                "{} started {started} time(s), fewer than {MIN_STARTS_PER_KIND}",
                plural(kind, 1)
            ));
        }
        if started > 0 && !exposed {
            weak.push(format!(
                "no {} met a send (none in flight at its start or invoked while it was in force)",
                plural(kind, 1)
            ));
        }
    }
    if e.crashes * 100 < e.crashes_scheduled * MIN_STARTED_PERCENT {
        let why = e.crashes_skipped.first().map_or("", |s| s.reason.as_str());
        weak.push(format!(
            "{} of {} client crashes happened ({why})",
            e.crashes, e.crashes_scheduled
        ));
    }
    for (point, p) in &e.crash_points {
        // `unknown`: crash events that name no point (another program's history) cannot tell.
        if point != "unknown" && p.crashes + p.skipped > 0 && p.holding == 0 {
            weak.push(format!("no client crashed holding messages at crash point `{point}`"));
        }
    }
    if let Some(s) = e.longest_unexplained_stall {
        let allowed = MAX_STALL.max(e.run_phase / 100 * MAX_STALL_PERCENT);
        if s.outside_faults > allowed {
            let what = if s.of == "deliveries" {
                "no deliveries"
            } else {
                "no acknowledged send"
            };
            weak.push(format!(
                "{what} {:.1}–{:.1} s ({:.1} s outside fault time)",
                seconds(s.from),
                seconds(s.to),
                seconds(s.outside_faults)
            ));
        }
    }
    if let Some(share) = e.progress_share_outside_faults {
        if share * 100.0 < MIN_PROGRESS_PERCENT {
            weak.push(format!(
                "progress (acknowledged sends and deliveries) in only {:.0} % of the run phase outside faults",
                share * 100.0
            ));
        }
    }
    let unrecovered: Vec<&FaultWindow> = judged_recoveries(&e.fault_windows, e.run_phase)
        .into_iter()
        .filter(|(w, next)| {
            let before_next = |r: Option<u64>| match (w.lifted, r) {
                (Some(lifted), Some(r)) => lifted + r <= *next,
                _ => false,
            };
            !(before_next(w.recovery_acked) && before_next(w.recovery_delivered))
        })
        .map(|(w, _)| w)
        .collect();
    if unrecovered.len() as u64 * 100 > e.faults_started * MAX_UNRECOVERED_PERCENT {
        let first = unrecovered[0];
        weak.push(format!(
            "no recovery after {} of {} faults (both an acknowledged send and a delivery before the next fault), e.g. after the {} at {:.1} s",
            unrecovered.len(),
            e.faults_started,
            first.kind,
            seconds(first.from)
        ));
    }
    if c.messages < MIN_MESSAGES {
        weak.push(format!(
            "only {} message(s) sent, fewer than {MIN_MESSAGES}",
            c.messages
        ));
    }
    if !e.drained {
        weak.push("no completed drain: loss cannot be proven".to_string());
    }
    match weak.is_empty() {
        true => (Grade::Strong, Vec::new()),
        false => (Grade::Weak, weak),
    }
}

/// The fault windows whose recovery is judged, each with the time the next fault began (or the
/// end of the run phase). Faults that overlap — the next began while an earlier one was still in
/// force, as scripted steps do on purpose (a kill during a partition) — leave no fault-free time
/// in between: of each group of overlapping faults, only the one lifted last is judged, against
/// the first fault after the group.
fn judged_recoveries(windows: &[FaultWindow], run_phase: u64) -> Vec<(&FaultWindow, u64)> {
    let mut judged = Vec::new();
    let mut i = 0;
    while i < windows.len() {
        // The group: windows starting before every earlier one of it was lifted.
        let mut last = &windows[i];
        let mut until = last.lifted.unwrap_or(u64::MAX);
        let mut j = i + 1;
        while j < windows.len() && windows[j].from < until {
            let lifted = windows[j].lifted.unwrap_or(u64::MAX);
            if lifted >= until {
                last = &windows[j];
                until = lifted;
            }
            j += 1;
        }
        let next = windows.get(j).map_or(run_phase, |n| n.from);
        judged.push((last, next));
        i = j;
    }
    judged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_union_of_spans_counts_overlaps_once_and_clips() {
        assert_eq!(union(&[(0, 10), (5, 15), (20, 30)], 0, 100), 25);
        assert_eq!(union(&[(0, 10), (5, 15), (20, 30)], 8, 25), 12);
        assert_eq!(union(&[], 0, 100), 0);
        assert_eq!(union(&[(10, 5)], 0, 100), 0, "an empty span counts nothing");
    }

    #[test]
    fn grades_order_and_parse() {
        assert!(Grade::None < Grade::Weak && Grade::Weak < Grade::Strong);
        assert_eq!("weak".parse::<Grade>(), Ok(Grade::Weak));
        assert!("good".parse::<Grade>().unwrap_err().contains("strong, weak or none"));
    }

    #[test]
    fn a_fault_that_failed_to_start_is_skipped_not_started() {
        let mut log = FaultLog {
            in_flight: 3,
            ..FaultLog::default()
        };
        log.start_invoked("kill", Some(0), 10);
        log.start_completed(
            "kill",
            Some(0),
            11,
            true,
            Some("the node was still restarting"),
            None,
            true,
        );
        log.start_invoked("pause", Some(1), 20);
        log.start_completed("pause", Some(1), 21, false, None, None, true);
        log.stop("pause", 30, true);
        log.stop("pause", 31, false);
        log.acked(35);
        log.delivered(32);
        log.start_completed("kill", None, 40, true, Some("the run phase ended"), Some("late"), false);
        let mut e = Evidence::default();
        log.close(&mut e, 50, &[], &[]);
        assert_eq!((e.faults_scheduled, e.faults_started), (3, 1));
        assert_eq!(e.faults_skipped[0].reason, "the node was still restarting");
        assert_eq!(e.faults_skipped[0].time, 10);
        let w = &e.fault_windows[0];
        assert_eq!(
            (w.kind.as_str(), w.in_flight, w.lifted, w.healed),
            ("pause", 3, Some(30), Some(31))
        );
        assert_eq!((w.recovery_acked, w.recovery_delivered), (Some(5), Some(2)));
        assert_eq!(e.faults.get("pause"), Some(&1));
        assert_eq!(e.faults.get("kill"), None);
    }
}
