//! The `report` role: the verdict for people (a terminal table) and for machines (JSON).

use std::fmt::Write;

use crate::checker::Verdict;

/// Nanoseconds as a short human duration.
fn human_time(nanos: u64) -> String {
    let s = nanos as f64 / 1e9;
    if s >= 1.0 {
        format!("{s:.3} s")
    } else {
        format!("{:.3} ms", nanos as f64 / 1e6)
    }
}

/// The terminal report: counts, verdict, claim, evidence and examples.
pub fn human(v: &Verdict) -> String {
    let c = &v.counts;
    let mut out = String::new();
    let rows: [(&str, u64, &str); 13] = [
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
    ];
    for (name, n, meaning) in rows {
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
                let _ = writeln!(out, "      #{:<9} t={:<12} {}", ev.index, human_time(ev.time), ev.what);
            }
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
    match (v.claim, v.claim_holds) {
        (Some(claim), Some(true)) => {
            let _ = writeln!(out, "claim {claim}{scope}: HOLDS");
        }
        (Some(claim), _) => {
            let _ = writeln!(out, "claim {claim}{scope}: VIOLATED ({})", v.violations.join("; "));
        }
        (None, _) => {
            let _ = writeln!(out, "claim: none (pass --claim to judge one)");
        }
    }
    out
}

/// The JSON verdict (one object).
pub fn json(v: &Verdict) -> String {
    serde_json::to_string_pretty(v).expect("a verdict always serializes: string keys, no custom errors")
}
