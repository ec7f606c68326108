//! The `report` role: the verdict for people (a terminal table, an HTML page with plots) and
//! for machines (JSON, JUnit XML).

pub mod html;
pub mod junit;
pub(crate) mod plots;
mod source;
mod timeline;

use std::fmt::Write;
use std::path::PathBuf;

use crate::checker::{CheckError, Verdict};
use crate::history::reader::HistoryError;
use crate::history::Header;
pub(crate) use source::read_header;
pub use source::{RecordedVerdict, RunFiles};

/// Why a report could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{} is neither a run directory (holding history.jsonl) nor a history file", .0.display())]
    NoHistory(PathBuf),
    #[error("{} is not a usable history: {source}", path.display())]
    History {
        path: PathBuf,
        #[source]
        source: HistoryError,
    },
    #[error("{} cannot be judged: {source}", path.display())]
    Check {
        path: PathBuf,
        #[source]
        source: CheckError,
    },
    #[error("{} is not a JSON verdict: {source}", path.display())]
    VerdictJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("drawing the {what} plot failed: {message}")]
    Plot { what: &'static str, message: String },
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where a verdict leaves its claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClaimStatus {
    Holds,
    Violated,
    /// A claim was made, but nothing was acknowledged or nothing delivered.
    NotJudged,
    NoClaim,
}

pub(crate) fn claim_status(v: &Verdict) -> ClaimStatus {
    match (v.claim, v.claim_holds) {
        (None, _) => ClaimStatus::NoClaim,
        (Some(_), Some(true)) => ClaimStatus::Holds,
        (Some(_), Some(false)) => ClaimStatus::Violated,
        (Some(_), None) => ClaimStatus::NotJudged,
    }
}

impl ReportError {
    /// The input could not be used (exit 2), as opposed to a file that could not be written or
    /// a figure that could not be drawn (exit 4).
    pub fn is_unusable_input(&self) -> bool {
        matches!(
            self,
            ReportError::NoHistory(_)
                | ReportError::History { .. }
                | ReportError::Check { .. }
                | ReportError::VerdictJson { .. }
        )
    }
}

/// What every run leaves besides `verdict.json`: `DIR/report.html` (a failure to make it is a
/// warning: the run and its verdict stand) and, when asked for, the JUnit XML (a failure to
/// write it is an error, as for `verdict.json`: a CI server would miss the result).
pub fn after_run(
    dir: &std::path::Path,
    header: &Header,
    verdict: &Verdict,
    junit: Option<&std::path::Path>,
) -> Result<(), ReportError> {
    match html::write_for_run(dir) {
        Ok(path) => println!("report: {}", path.display()),
        Err(e) => eprintln!("warning: no report.html: {e}"),
    }
    if let Some(path) = junit {
        let suite = junit::Suite::new(Some(header), "run", Some(&dir.join("history.jsonl")), verdict);
        junit::write(path, &[suite])?;
        println!("junit: {}", path.display());
    }
    Ok(())
}

/// One row of the counts table: name, number, what it means.
pub(crate) type CountRow = (&'static str, u64, &'static str);

/// The counts of a verdict as the terminal and the HTML report show them (the log rows only for
/// histories with log positions).
pub(crate) fn count_rows(v: &Verdict) -> Vec<CountRow> {
    let c = &v.counts;
    let mut rows = vec![
        ("messages", c.messages, "distinct messages sent"),
        ("acknowledged", c.acknowledged, "some send ended ok"),
        ("indeterminate", c.indeterminate, "no send ok, not all failed"),
        ("failed", c.failed, "every send ended fail"),
        ("delivered", c.delivered, "processed by some group"),
        ("lost", c.lost, "acknowledged, never delivered, after a drain"),
        ("unseen", c.unseen, "acknowledged, not delivered, no drain"),
        ("duplicated", c.duplicated, "delivered more than once to one group"),
        ("unexpected", c.unexpected, "delivered, never sent"),
        ("recovered", c.recovered, "indeterminate and delivered (fine)"),
        (
            "failed-delivered",
            c.failed_delivered,
            "every send failed, yet delivered",
        ),
        ("torn", c.torn, "atomic sends delivered in part"),
        (
            "order violations",
            c.order_violations,
            "deliveries out of send order within a key",
        ),
        ("stored twice", c.stored_twice, "stored at two or more positions"),
    ];
    if v.log_positions {
        rows.extend([
            (
                "lost by position",
                c.lost_by_position,
                "of lost: a group read past their offset",
            ),
            (
                "inconsistent pos",
                c.inconsistent_positions,
                "offsets holding two different messages",
            ),
            ("skips", c.skips, "reads that jumped over existing offsets"),
            (
                "send reorders",
                c.send_reorders,
                "sends landing before an earlier acknowledged one",
            ),
        ]);
    }
    rows
}

/// Nanoseconds as a short human duration.
fn human_time(nanos: u64) -> String {
    let s = nanos as f64 / 1e9;
    if s >= 1.0 {
        format!("{s:.3} s")
    } else {
        format!("{:.3} ms", nanos as f64 / 1e6)
    }
}

/// Milliseconds, short: `12.3 ms`, `4.10 s`.
fn human_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.1} ms")
    }
}

/// The terminal report: counts, verdict, claim, evidence and examples.
pub fn human(v: &Verdict) -> String {
    let c = &v.counts;
    let mut out = String::new();
    for (name, n, meaning) in count_rows(v) {
        let _ = writeln!(out, "  {name:<17} {n:>10}   {meaning}");
    }
    let d = &v.duplicate_causes;
    if c.duplicated > 0 {
        let _ = writeln!(
            out,
            "  duplicate causes: {} written twice, {} redelivered, {} unknown",
            d.written_twice, d.redelivered, d.unknown
        );
    }
    let e = &v.evidence;
    let faults = if e.faults.is_empty() {
        "none".to_string()
    } else {
        e.faults
            .iter()
            .map(|(k, n)| format!("{k} ×{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        out,
        "\nevidence: {} sends ({} indeterminate), {} deliveries, {} client crashes, faults: {faults}, drain: {}",
        e.sends,
        e.indeterminate_sends,
        e.deliveries,
        e.crashes,
        if e.drained { "completed" } else { "none" }
    );
    if let (Some(acked), Some(delivered)) = (e.longest_stall_acked, e.longest_stall_delivered) {
        let span = |s: crate::checker::verdict::Stall| {
            let (from, to) = (s.from as f64 / 1e9, s.to as f64 / 1e9);
            format!("{from:.1}–{to:.1} s ({:.1} s)", to - from)
        };
        let _ = writeln!(
            out,
            "  longest stalls of the {:.1} s run phase: no acknowledged send {}, no delivery {}",
            e.run_phase as f64 / 1e9,
            span(acked),
            span(delivered)
        );
    }
    let perf = &v.performance;
    if let Some(rate) = perf.acknowledged_per_second {
        let latency = perf.latency.as_ref().map_or(String::new(), |l| {
            format!(
                "; end-to-end latency (send invoked → first delivery) p50 {}, p99 {}, max {} over {} messages",
                human_ms(l.p50_ms),
                human_ms(l.p99_ms),
                human_ms(l.max_ms),
                l.messages
            )
        });
        let _ = writeln!(out, "  throughput {rate:.0} acknowledged messages/s{latency}");
    }
    if let Some(share) = e.progress_share {
        let outside = e.progress_share_outside_faults.map_or(String::new(), |s| {
            format!(", {:.0} % of the time outside faults", s * 100.0)
        });
        let _ = writeln!(
            out,
            "  progress (acknowledged sends and deliveries, no gap of 1 s or more) in {:.0} % of the run phase{outside}",
            share * 100.0
        );
    }
    let _ = writeln!(
        out,
        "  faults: {} of {} scheduled started; client crashes: {} of {} planned happened",
        e.faults_started, e.faults_scheduled, e.crashes, e.crashes_scheduled
    );
    for w in &e.fault_windows {
        let node = w.node.map_or(String::new(), |n| format!(" node {n}"));
        let lifted = w.lifted.map_or("never lifted".to_string(), |t| {
            format!("lifted at {:.1} s", t as f64 / 1e9)
        });
        let recovery = |r: Option<u64>| r.map_or("none".to_string(), |r| format!("{:.1} s", r as f64 / 1e9));
        let _ = writeln!(
            out,
            "    {}{node} at {:.1} s, {} send(s) in flight, {lifted}; first ack after {}, first delivery after {}",
            w.kind,
            w.from as f64 / 1e9,
            w.in_flight,
            recovery(w.recovery_acked),
            recovery(w.recovery_delivered)
        );
    }
    for s in e.faults_skipped.iter().chain(&e.crashes_skipped) {
        let _ = writeln!(
            out,
            "    skipped {} at {:.1} s: {}",
            s.kind,
            s.time as f64 / 1e9,
            s.reason
        );
    }
    for (point, p) in &e.crash_points {
        let _ = writeln!(
            out,
            "    crashes {point}: {} ({} holding {} message(s)), {} skipped",
            p.crashes, p.holding, p.messages_held, p.skipped
        );
    }
    if e.skipped > 0 {
        let _ = writeln!(
            out,
            "  {} copies skipped by an idempotent consumer ({} redelivered, {} other stored copies)",
            e.skipped,
            e.skipped_redelivered,
            e.skipped - e.skipped_redelivered
        );
    }
    if e.flagged_redelivered > 0 {
        let _ = writeln!(
            out,
            "  {} deliveries or skipped copies flagged redelivered by the broker",
            e.flagged_redelivered
        );
    }
    if v.groups.len() > 1 {
        for (g, gc) in &v.groups {
            let _ = writeln!(
                out,
                "  group {g}: {} delivered, {} lost, {} duplicated, {} failed-delivered, {} torn",
                gc.delivered, gc.lost, gc.duplicated, gc.failed_delivered, gc.torn
            );
        }
    }
    for (kind, examples) in &v.examples {
        let _ = writeln!(out, "\n{kind} (showing {}):", examples.len());
        for ex in examples {
            let _ = writeln!(out, "  {}: {}", ex.message, ex.explanation);
            for ev in &ex.events {
                let at = ev.pos.as_ref().map_or(String::new(), |p| format!(" at {p}"));
                let _ = writeln!(
                    out,
                    "      #{:<9} t={:<12} {}{at}",
                    ev.index,
                    human_time(ev.time),
                    ev.what
                );
            }
        }
    }
    if !v.loss_shapes.is_empty() {
        let _ = writeln!(out, "\nloss by producer (where among what it sent):");
        for l in &v.loss_shapes {
            let _ = writeln!(
                out,
                "  process {}: {} of {} acknowledged lost, {}; sent {}–{}, {} of them during faults",
                l.process,
                l.lost,
                l.acknowledged,
                match l.shape {
                    "all" => "all of them",
                    "prefix" => "a prefix (before every delivered one)",
                    "suffix" => "a suffix (after every delivered one)",
                    _ => "holes in the middle",
                },
                human_time(l.first_sent),
                human_time(l.last_sent),
                l.sent_during_faults
            );
        }
    }
    for note in &v.notes {
        let _ = writeln!(out, "\nnote: {note}");
    }
    let _ = writeln!(out, "\nverdict: {}", v.verdict.name());
    let scope = match &v.claim_groups {
        Some(groups) => format!(" (group {})", groups.join(", ")),
        None => String::new(),
    };
    let grade = match e.reasons.is_empty() {
        true => format!("evidence {}", e.grade),
        false => format!("evidence {}: {}", e.grade, e.reasons.join("; ")),
    };
    match (v.claim, v.claim_holds) {
        (Some(claim), Some(true)) => {
            let _ = writeln!(out, "claim {claim}{scope}: HOLDS — {grade}");
        }
        (Some(claim), Some(false)) => {
            let _ = writeln!(out, "claim {claim}{scope}: VIOLATED ({})", v.violations.join("; "));
        }
        (Some(claim), None) => {
            let _ = writeln!(
                out,
                "claim {claim}{scope}: NOT JUDGED (nothing acknowledged or nothing delivered) — {grade}"
            );
        }
        (None, _) => {
            let _ = writeln!(out, "claim: none (pass --claim to judge one) — {grade}");
        }
    }
    if let (Some(min), true) = (v.min_evidence, v.evidence_too_weak()) {
        let _ = writeln!(
            out,
            "evidence {} is weaker than the {min} asked for (--min-evidence): exit 3",
            e.grade
        );
    }
    out
}

/// The JSON verdict (one object).
pub fn json(v: &Verdict) -> String {
    serde_json::to_string_pretty(v).expect("a verdict always serializes: string keys, no custom errors")
}
