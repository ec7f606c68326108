//! `comparison.md`: the cross-broker table (one row per broker × configuration over its seeds)
//! and one table per fault family.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::group::{number, observed_of, range, Group};
use super::{Analysis, CellResult};

pub fn render(a: &Analysis) -> String {
    let mut s = a.banner("Delivery guarantees across brokers: the comparison");
    s.push_str(
        "How to read it. One row per broker × configuration (a campaign of `workloads/`, and the matrix's variant if any), over the seeds that ran. \
*Effective configuration*: the properties that decide the guarantee, from the history header of the row's runs (`*` = set by the campaign or the matrix over the mode's preset; the rest of every preset is in README, \"What each mode configures\"). \
*Observed*: the checker's verdict per run, and the fault families injected in those runs (`client-crash` = consumers or producers crashed by design). \
*Lost* is per run; *duplicated* is per 10,000 messages per run (range over the runs). \
*Throughput* is acknowledged messages per second (mean over runs) and, in brackets, its ratio to the same broker's at-most-once row; *latency* is send → first delivery, the median over runs of each run's p50 and p99, with the same ratio. \
Every number comes from a line of `results.jsonl`; the links open each run's verdict.\n\n",
    );
    s.push_str("## Every broker × configuration\n\n");
    s.push_str("| broker | configuration | claim | effective configuration | observed (faults) | claim held | lost per run | duplicated per 10k | evidence | throughput (× at-most-once) | latency p50 / p99 (× at-most-once) | runs |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for g in &a.groups {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} under {} | {} | {} | {} | {} | {} | {} | {} |",
            g.broker,
            g.name(),
            g.mode,
            code_list(&g.effective_config()),
            g.observed(),
            families_text(&g.families()),
            g.claim(),
            range(g.cells.iter().map(|c| c.count("lost") as f64)),
            range(g.cells.iter().map(|c| c.per_10k("duplicated"))),
            g.evidence(),
            throughput_text(a, g),
            latency_text(a, g),
            a.group_links(g),
        );
    }
    s.push('\n');
    s.push_str(
        "## Per fault family\n\n\
Each run of the matrix injects its campaign's whole fault set in turns (a standard set per broker), so a family's table lists the runs in which that family was injected at least once — beside the others. \
A loss or a duplicate in a row is not proven to come from that family alone; the run's timeline (its `report.html`) shows which fault window it fell in.\n\n",
    );
    let families: BTreeSet<String> = a.groups.iter().flat_map(|g| g.families()).collect();
    for family in &families {
        let _ = writeln!(s, "### {family}\n");
        s.push_str("| broker | configuration | claim | runs with it | injected | observed in those runs | claim held | lost per run | duplicated per 10k | runs |\n");
        s.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
        for g in &a.groups {
            let with: Vec<&CellResult> = g.cells.iter().filter(|c| c.families().contains(family)).collect();
            if with.is_empty() {
                continue;
            }
            let injected: u64 = with
                .iter()
                .map(|c| {
                    let e = c.evidence.clone().unwrap_or_default();
                    if family == "client-crash" {
                        e.crashes.unwrap_or(0)
                    } else {
                        e.faults.get(family).copied().unwrap_or(0)
                    }
                })
                .sum();
            let links = with
                .iter()
                .map(|c| a.cell_link(&c.cell, &format!("s{}", c.seed)))
                .collect::<Vec<_>>()
                .join(" ");
            let _ = writeln!(
                s,
                "| {} | {} | {} | {}/{} | {} | {} | {} | {} | {} | {} |",
                g.broker,
                g.name(),
                g.mode,
                with.len(),
                g.runs(),
                injected,
                observed_of(&with),
                super::group::claim_of(&with),
                range(with.iter().map(|c| c.count("lost") as f64)),
                range(with.iter().map(|c| c.per_10k("duplicated"))),
                links
            );
        }
        s.push('\n');
    }
    s
}

pub fn code_list(items: &[String]) -> String {
    if items.is_empty() {
        "the mode's preset".into()
    } else {
        items.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(" ")
    }
}

pub fn families_text(f: &BTreeSet<String>) -> String {
    if f.is_empty() {
        "no fault".into()
    } else {
        f.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// The same broker's plain at-most-once row: the baseline of the ratios.
pub fn baseline<'a>(a: &'a Analysis, g: &Group) -> Option<&'a Group> {
    a.groups
        .iter()
        .find(|b| b.broker == g.broker && b.mode == "at-most-once" && b.variant.is_none() && b.nodes == 1)
}

fn ratio(x: f64, base: f64) -> String {
    if base > 0.0 {
        format!("{:.2}×", x / base)
    } else {
        "–".into()
    }
}

pub fn throughput_text(a: &Analysis, g: &Group) -> String {
    let Some(t) = g.throughput() else {
        return "–".into();
    };
    match baseline(a, g).and_then(Group::throughput) {
        Some(b) => format!("{} msg/s ({})", number(t), ratio(t, b)),
        None => format!("{} msg/s (no at-most-once row)", number(t)),
    }
}

pub fn latency_text(a: &Analysis, g: &Group) -> String {
    let Some((p50, p99)) = g.latency() else {
        return "–".into();
    };
    match baseline(a, g).and_then(Group::latency) {
        Some((b50, b99)) => format!(
            "{} / {} ms ({} / {})",
            number(p50),
            number(p99),
            ratio(p50, b50),
            ratio(p99, b99)
        ),
        None => format!("{} / {} ms", number(p50), number(p99)),
    }
}
