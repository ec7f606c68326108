//! `report.html`: one self-contained page per run (inline CSS, inline SVG, no script, nothing
//! fetched) that a person reads top-down: the verdict, what the run did over time, the counts,
//! the proofs, the faults, the configuration and how to run it again.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::plots::{self, AnomalyRow, FaultBand};
use super::source::RunFiles;
use super::timeline::Timeline;
use super::{claim_status, count_rows, ClaimStatus, ReportError};
use crate::checker::verdict::Example;
use crate::checker::{self, Verdict};
use crate::history::reader::HistoryReader;
use crate::history::Header;

/// Proofs gathered per anomaly kind to mark on the timeline (the page lists the first few).
const MARKS_PER_KIND: usize = 1000;

/// What the page shows beyond what the run itself decides.
#[derive(Debug, Clone)]
pub struct HtmlOptions {
    /// Proofs listed per anomaly kind (every one gathered is marked on the timeline).
    pub examples: usize,
}

impl Default for HtmlOptions {
    fn default() -> Self {
        HtmlOptions { examples: 3 }
    }
}

/// Make the report of a run directory or history and write it to `out`.
pub fn write(files: &RunFiles, out: &Path, options: &HtmlOptions) -> Result<(), ReportError> {
    let page = render(files, options)?;
    std::fs::write(out, page).map_err(|source| ReportError::Io {
        what: "write the report to",
        path: out.to_path_buf(),
        source,
    })
}

/// `DIR/report.html` for a run that just ended (called by the runner after `verdict.json`).
pub fn write_for_run(dir: &Path) -> Result<PathBuf, ReportError> {
    let files = RunFiles::locate(dir)?;
    let out = files.default_report_path();
    write(&files, &out, &HtmlOptions::default())?;
    Ok(out)
}

fn open(path: &Path) -> Result<HistoryReader, ReportError> {
    HistoryReader::open(path).map_err(|source| ReportError::History {
        path: path.to_path_buf(),
        source,
    })
}

/// The page. Judges the history again (with the run's own options) to place every proven
/// anomaly on the timeline: `verdict.json` keeps only a few examples of each.
pub fn render(files: &RunFiles, options: &HtmlOptions) -> Result<String, ReportError> {
    let check_options = files.check_options(MARKS_PER_KIND);
    let verdict = checker::check_with(open(&files.history)?, &check_options).map_err(|source| ReportError::Check {
        path: files.history.clone(),
        source,
    })?;
    let timeline = Timeline::scan(open(&files.history)?).map_err(|source| ReportError::History {
        path: files.history.clone(),
        source,
    })?;
    let page = Page {
        files,
        verdict: &verdict,
        timeline: &timeline,
        header: timeline.header.as_ref(),
        examples: options.examples,
    };
    page.render()
}

struct Page<'a> {
    files: &'a RunFiles,
    verdict: &'a Verdict,
    timeline: &'a Timeline,
    header: Option<&'a Header>,
    examples: usize,
}

/// Escape text for HTML content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn seconds(nanos: u64) -> String {
    format!("{:.3} s", nanos as f64 / 1e9)
}

fn short_seconds(nanos: u64) -> String {
    format!("{:.1} s", nanos as f64 / 1e9)
}

/// Anomaly kinds in the order a reader cares about them (violations first); others follow by name.
const KIND_ORDER: [&str; 11] = [
    "lost",
    "duplicated",
    "unexpected",
    "failed-delivered",
    "aborted-read",
    "torn",
    "inconsistent-positions",
    "stored-twice",
    "order",
    "skip",
    "send-reordered",
];

fn kind_rank(kind: &str) -> usize {
    KIND_ORDER.iter().position(|k| *k == kind).unwrap_or(KIND_ORDER.len())
}

/// When an anomaly showed, for its mark: a loss at its acknowledgement (the promise that was
/// broken); every other kind at the last event its proof cites (the second delivery of a
/// duplicate, the delivery of an aborted send).
fn mark_time(kind: &str, example: &Example) -> Option<f64> {
    let event = match kind {
        "lost" => example
            .events
            .iter()
            .find(|e| e.what.starts_with("send ok") || e.what.starts_with("send info"))
            .or(example.events.first()),
        _ => example.events.iter().max_by_key(|e| e.time),
    }?;
    Some(event.time as f64 / 1e9)
}

/// How many of a kind the verdict counts (the page says when it marks fewer).
fn kind_count(v: &Verdict, kind: &str) -> Option<u64> {
    let c = &v.counts;
    Some(match kind {
        "lost" => c.lost,
        "duplicated" => c.duplicated,
        "unexpected" => c.unexpected,
        "failed-delivered" | "aborted-read" => c.failed_delivered,
        "torn" => c.torn,
        "inconsistent-positions" => c.inconsistent_positions,
        "stored-twice" => c.stored_twice,
        "order" => c.order_violations,
        "skip" => c.skips,
        "send-reordered" => c.send_reorders,
        _ => return None,
    })
}

impl Page<'_> {
    fn sorted_kinds(&self) -> Vec<(&String, &Vec<Example>)> {
        let mut kinds: Vec<_> = self.verdict.examples.iter().filter(|(_, e)| !e.is_empty()).collect();
        kinds.sort_by(|a, b| kind_rank(a.0).cmp(&kind_rank(b.0)).then(a.0.cmp(b.0)));
        kinds
    }

    fn campaign(&self) -> Option<&str> {
        self.header
            .and_then(|h| h.extra.get("campaign"))
            .and_then(|c| c.as_str())
    }

    fn title(&self) -> String {
        match self.campaign() {
            Some(c) => c.to_string(),
            None => self
                .files
                .history
                .file_name()
                .map_or_else(|| "history".into(), |n| n.to_string_lossy().into_owned()),
        }
    }

    fn render(&self) -> Result<String, ReportError> {
        let mut html = String::with_capacity(256 * 1024);
        let title = self.title();
        let _ = writeln!(
            html,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>ackcheck: {} — {}</title>\n<style>{}</style>\n</head>\n<body>\n<main>",
            esc(&title),
            esc(&self.status_line()),
            STYLE
        );
        self.summary(&mut html, &title);
        self.timeline_section(&mut html)?;
        self.counts_section(&mut html);
        self.proofs_section(&mut html);
        self.faults_section(&mut html);
        self.config_section(&mut html);
        self.reproduce_section(&mut html);
        let _ = writeln!(
            html,
            "<footer>Made by ackcheck {} from <code>{}</code> ({} events).</footer>\n</main>\n</body>\n</html>",
            env!("CARGO_PKG_VERSION"),
            esc(&self.files.history.display().to_string()),
            self.timeline.events
        );
        Ok(html)
    }

    fn status_line(&self) -> String {
        let v = self.verdict;
        let scope = match &v.claim_groups {
            Some(groups) => format!(" (group {})", groups.join(", ")),
            None => String::new(),
        };
        match (claim_status(v), v.claim) {
            (ClaimStatus::Holds, Some(c)) => format!("claim {c}{scope} holds"),
            (ClaimStatus::Violated, Some(c)) => format!("claim {c}{scope} violated"),
            (ClaimStatus::NotJudged, Some(c)) => format!("claim {c}{scope} not judged"),
            _ => format!("observed {}", v.verdict.name()),
        }
    }

    fn summary(&self, html: &mut String, title: &str) {
        let v = self.verdict;
        let e = &v.evidence;
        let (class, headline) = match claim_status(v) {
            ClaimStatus::Holds => ("holds", "HOLDS"),
            ClaimStatus::Violated => ("violated", "VIOLATED"),
            ClaimStatus::NotJudged => ("unjudged", "NOT JUDGED"),
            ClaimStatus::NoClaim => ("noclaim", "NO CLAIM"),
        };
        let claim = match (v.claim, &v.claim_groups) {
            (Some(c), Some(groups)) => format!("claim {c} <small>(group {})</small>", esc(&groups.join(", "))),
            (Some(c), None) => format!("claim {c}"),
            (None, _) => "no claim to judge".to_string(),
        };
        let broker = self.header.and_then(|h| h.broker.as_deref());
        let subtitle = [
            broker.map(|b| format!("broker {}", esc(b))),
            self.header.and_then(|h| h.seed).map(|s| format!("seed {s}")),
            self.header
                .and_then(|h| h.extra.get("run"))
                .and_then(|r| r.as_str())
                .map(|r| format!("run {}", esc(r))),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" · ");
        let _ = writeln!(
            html,
            "<header class=\"top\"><p class=\"kicker\">ackcheck report</p><h1>{}</h1><p class=\"sub\">{}</p></header>",
            esc(title),
            subtitle
        );
        let why = match claim_status(v) {
            ClaimStatus::Violated => format!("<p class=\"why\">{}</p>", esc(&v.violations.join("; "))),
            ClaimStatus::NotJudged => {
                "<p class=\"why\">Nothing was acknowledged or nothing was delivered: an empty run is no pass.</p>"
                    .to_string()
            }
            _ => String::new(),
        };
        let _ = writeln!(
            html,
            "<section class=\"verdict {class}\">\n<div class=\"claim\"><span class=\"what\">{claim}</span>\
             <span class=\"headline\">{headline}</span></div>\n{why}\n<div class=\"facts\">\
             <div><span>observed</span><strong>{}</strong></div>\
             <div><span>evidence</span><strong class=\"grade {}\">{}</strong></div>\
             <div><span>messages</span><strong>{}</strong></div>\
             <div><span>faults started</span><strong>{} of {}</strong></div>\
             <div><span>client crashes</span><strong>{} of {}</strong></div>\
             <div><span>run phase</span><strong>{}</strong></div>\
             </div>",
            v.verdict.name(),
            e.grade,
            e.grade,
            v.counts.messages,
            e.faults_started,
            e.faults_scheduled,
            e.crashes,
            e.crashes_scheduled,
            short_seconds(e.run_phase),
        );
        if !e.reasons.is_empty() {
            let _ = write!(
                html,
                "<div class=\"reasons\"><p>Evidence is <b>{}</b>, not strong:</p><ul>",
                e.grade
            );
            for r in &e.reasons {
                let _ = write!(html, "<li>{}</li>", esc(r));
            }
            html.push_str("</ul></div>\n");
        }
        if let (Some(min), true) = (v.min_evidence, v.evidence_too_weak()) {
            let _ = write!(
                html,
                "<p class=\"why\">The evidence is weaker than the {min} asked for (<code>--min-evidence</code>): a CI gate fails (exit 3).</p>"
            );
        }
        html.push_str("</section>\n");
        self.disagreement(html);
    }

    /// When `verdict.json` (what the run's checker said) differs from this check, say so.
    fn disagreement(&self, html: &mut String) {
        let Some(recorded) = &self.files.recorded else {
            return;
        };
        let v = self.verdict;
        let differs =
            recorded.verdict.as_deref().is_some_and(|r| r != v.verdict.name()) || recorded.claim_holds != v.claim_holds;
        if differs {
            let said = format!(
                "verdict {}, claim holds: {}",
                recorded.verdict.as_deref().unwrap_or("?"),
                recorded.claim_holds.map_or("not judged".into(), |h| h.to_string())
            );
            let _ = writeln!(
                html,
                "<p class=\"note warn\">The run's own <code>verdict.json</code> says {}; this report judged the history again with ackcheck {} and found what is shown here (the checker changed since the run).</p>",
                esc(&said),
                env!("CARGO_PKG_VERSION")
            );
        }
    }

    fn fault_bands(&self) -> Vec<FaultBand> {
        let end = self.timeline.end;
        self.verdict
            .evidence
            .fault_windows
            .iter()
            .map(|w| {
                let lifted = w.lifted.unwrap_or(end).max(w.from);
                let healed = w.healed.unwrap_or(lifted).max(lifted);
                let label = match w.node {
                    Some(n) => format!("{} n{n}", w.kind),
                    None => w.kind.clone(),
                };
                FaultBand {
                    kind: w.kind.clone(),
                    label,
                    from: w.from as f64 / 1e9,
                    lifted: lifted as f64 / 1e9,
                    healed: healed as f64 / 1e9,
                }
            })
            .collect()
    }

    fn anomaly_rows(&self) -> Vec<AnomalyRow> {
        self.sorted_kinds()
            .into_iter()
            .map(|(kind, examples)| AnomalyRow {
                kind: kind.clone(),
                times: examples.iter().filter_map(|e| mark_time(kind, e)).collect(),
            })
            .collect()
    }

    fn timeline_section(&self, html: &mut String) -> Result<(), ReportError> {
        let faults = self.fault_bands();
        let anomalies = self.anomaly_rows();
        let svg = plots::timeline_svg(self.timeline, &faults, &anomalies)?;
        html.push_str("<section>\n<h2>Timeline</h2>\n<div class=\"legend\">");
        let swatch = |html: &mut String, class: &str, color: String, label: &str| {
            let _ = write!(
                html,
                "<span class=\"key\"><i class=\"{class}\" style=\"--c:{color}\"></i>{}</span>",
                esc(label)
            );
        };
        swatch(html, "line", plots::css(plots::ACKED), "acknowledged messages/s");
        swatch(html, "line", plots::css(plots::DELIVERED), "delivered messages/s");
        let unknown: u64 = self.timeline.seconds.values().map(|s| s.unknown).sum();
        let unknown_label = match unknown {
            0 => "unknown send outcomes: none".to_string(),
            n => format!("unknown send outcomes/s (right axis; {n} in all)"),
        };
        swatch(html, "bar", plots::css(plots::UNKNOWN), &unknown_label);
        let mut kinds: Vec<&str> = faults.iter().map(|f| f.kind.as_str()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        for kind in kinds {
            swatch(
                html,
                "band",
                plots::css(plots::fault_color(kind)),
                &format!("{kind} (lighter: healing)"),
            );
        }
        if self.timeline.drain_started.is_some() {
            swatch(html, "band", "#64748b".into(), "final drain");
        }
        html.push_str("</div>\n<div class=\"legend\">");
        swatch(
            html,
            "tick",
            plots::css(plots::CRASH),
            &format!("client crash ({})", self.timeline.crashes_total),
        );
        for row in &anomalies {
            let count = kind_count(self.verdict, &row.kind);
            let label = match count {
                Some(n) if n > row.times.len() as u64 => {
                    format!("{} ({n}, first {} marked)", row.kind, row.times.len())
                }
                Some(n) => format!("{} ({n})", row.kind),
                None => format!("{} ({})", row.kind, row.times.len()),
            };
            swatch(html, "mark", plots::css(plots::anomaly_color(&row.kind)), &label);
        }
        swatch(html, "line", plots::css(plots::P50), "latency p50");
        swatch(html, "line", plots::css(plots::P99), "p99");
        swatch(html, "line", plots::css(plots::MAX), "max");
        html.push_str("</div>\n<figure class=\"plot\">");
        html.push_str(&svg);
        let _ = writeln!(
            html,
            "<figcaption>Per {} of the run: messages whose send was acknowledged and messages delivered; sends whose outcome is unknown (timeouts, lost acknowledgements). Shaded: fault windows from start to lift (lighter: until healed, e.g. a killed node running again). Marks: every anomaly the checker proved (up to {MARKS_PER_KIND} per kind), a loss at its acknowledgement, the others at the delivery that shows them. Latency: from a send's invocation to its acknowledgement.{}</figcaption></figure>\n</section>",
            match plots::bucket_seconds(self.timeline) {
                1 => "second".to_string(),
                n => format!("{n} seconds"),
            },
            match self.timeline.unfinished_sends {
                0 => String::new(),
                n => format!(" {n} send(s) never completed and are not plotted."),
            }
        );
        Ok(())
    }

    fn counts_section(&self, html: &mut String) {
        let v = self.verdict;
        html.push_str("<section class=\"two\">\n<div>\n<h2>Counts</h2>\n<table class=\"counts\"><tbody>");
        let alarming = [
            "lost",
            "duplicated",
            "unexpected",
            "failed-delivered",
            "torn",
            "inconsistent pos",
        ];
        for (name, n, meaning) in count_rows(v) {
            let class = if n > 0 && alarming.contains(&name) {
                " class=\"hit\""
            } else {
                ""
            };
            let _ = write!(
                html,
                "<tr{class}><th>{name}</th><td class=\"n\">{n}</td><td class=\"m\">{meaning}</td></tr>"
            );
        }
        html.push_str("</tbody></table>\n</div>\n<div>\n");
        let d = &v.duplicate_causes;
        if v.counts.duplicated > 0 {
            let _ = writeln!(
                html,
                "<h3>Why duplicated</h3><table class=\"counts\"><tbody>\
                 <tr><th>written twice</th><td class=\"n\">{}</td><td class=\"m\">the same id at two positions (a re-send after a lost ack)</td></tr>\
                 <tr><th>redelivered</th><td class=\"n\">{}</td><td class=\"m\">the same position delivered twice (committed too late)</td></tr>\
                 <tr><th>unknown</th><td class=\"n\">{}</td><td class=\"m\">no positions recorded</td></tr></tbody></table>",
                d.written_twice, d.redelivered, d.unknown
            );
        }
        let e = &v.evidence;
        let _ = write!(
            html,
            "<h3>Activity</h3><table class=\"counts\"><tbody>\
             <tr><th>send operations</th><td class=\"n\">{}</td><td class=\"m\">{} with an unknown outcome</td></tr>\
             <tr><th>deliveries</th><td class=\"n\">{}</td><td class=\"m\">messages processed, copies included</td></tr>\
             <tr><th>drain</th><td class=\"n\">{}</td><td class=\"m\">{}</td></tr>",
            e.sends,
            e.indeterminate_sends,
            e.deliveries,
            if e.drained { "done" } else { "none" },
            if e.drained {
                "faults healed, consumers read until quiet: loss can be proven"
            } else {
                "without a completed drain, missing messages are unseen, not lost"
            }
        );
        if let Some(share) = e.progress_share {
            let _ = write!(
                html,
                "<tr><th>progress</th><td class=\"n\">{:.0} %</td><td class=\"m\">of the run phase without a gap of 1 s or more{}</td></tr>",
                share * 100.0,
                e.progress_share_outside_faults
                    .map_or(String::new(), |s| format!(" ({:.0} % outside faults)", s * 100.0))
            );
        }
        if e.skipped > 0 {
            let _ = write!(
                html,
                "<tr><th>skipped copies</th><td class=\"n\">{}</td><td class=\"m\">kept from taking effect by an idempotent consumer</td></tr>",
                e.skipped
            );
        }
        html.push_str("</tbody></table>\n");
        if v.groups.len() > 1 {
            html.push_str("<h3>Per group</h3><table class=\"grid\"><thead><tr><th>group</th><th>delivered</th><th>lost</th><th>duplicated</th><th>failed-delivered</th><th>torn</th></tr></thead><tbody>");
            for (g, c) in &v.groups {
                let _ = write!(
                    html,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(g),
                    c.delivered,
                    c.lost,
                    c.duplicated,
                    c.failed_delivered,
                    c.torn
                );
            }
            html.push_str("</tbody></table>\n");
        }
        html.push_str("</div>\n</section>\n");
    }

    fn proofs_section(&self, html: &mut String) {
        let kinds = self.sorted_kinds();
        html.push_str("<section>\n<h2>Proofs</h2>\n");
        if kinds.is_empty() {
            html.push_str("<p class=\"quiet\">No anomaly: nothing to prove.</p>\n</section>\n");
            return;
        }
        for (kind, examples) in kinds {
            let total = kind_count(self.verdict, kind).unwrap_or(examples.len() as u64);
            let shown = examples.len().min(self.examples);
            let _ = writeln!(
                html,
                "<h3><span class=\"dot\" style=\"--c:{}\"></span>{} <small>{} of {}</small></h3>",
                plots::css(plots::anomaly_color(kind)),
                esc(kind),
                shown,
                total
            );
            for ex in examples.iter().take(shown) {
                let group = ex
                    .group
                    .as_ref()
                    .map_or(String::new(), |g| format!(" <small>in {}</small>", esc(g)));
                // In the order they happened (the checker cites them in the order of its argument).
                let mut events: Vec<_> = ex.events.iter().collect();
                events.sort_by_key(|ev| (ev.index, ev.time));
                let positions = events.iter().any(|ev| ev.pos.is_some());
                let _ = write!(
                    html,
                    "<div class=\"proof\"><p><code>{}</code>{group}: {}</p><table class=\"grid events\"><thead><tr><th>event</th><th>time</th><th>what</th>{}</tr></thead><tbody>",
                    esc(&ex.message),
                    esc(&ex.explanation),
                    if positions { "<th>position</th>" } else { "" }
                );
                for ev in events {
                    let position = match positions {
                        true => format!("<td>{}</td>", esc(ev.pos.as_deref().unwrap_or("—"))),
                        false => String::new(),
                    };
                    let _ = write!(
                        html,
                        "<tr><td>#{}</td><td>{}</td><td>{}</td>{position}</tr>",
                        ev.index,
                        seconds(ev.time),
                        esc(&ev.what),
                    );
                }
                html.push_str("</tbody></table></div>\n");
            }
        }
        let _ = writeln!(
            html,
            "<p class=\"quiet\">Event numbers are the <code>index</code> of the history's lines; times are since the run started. <code>ackcheck check --examples N</code> lists more.</p>\n</section>"
        );
    }

    fn faults_section(&self, html: &mut String) {
        let e = &self.verdict.evidence;
        html.push_str("<section>\n<h2>Faults and crashes</h2>\n");
        if e.fault_windows.is_empty() {
            html.push_str("<p class=\"quiet\">No fault started.</p>\n");
        } else {
            html.push_str("<table class=\"grid\"><thead><tr><th>fault</th><th>node</th><th>from</th><th>lifted</th><th>healed</th><th>sends in flight</th><th>first ack after</th><th>first delivery after</th></tr></thead><tbody>");
            let opt = |t: Option<u64>| t.map_or("—".to_string(), short_seconds);
            for w in &e.fault_windows {
                let _ = write!(
                    html,
                    "<tr><td><span class=\"dot\" style=\"--c:{}\"></span>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    plots::css(plots::fault_color(&w.kind)),
                    esc(&w.kind),
                    w.node.map_or("—".to_string(), |n| n.to_string()),
                    short_seconds(w.from),
                    opt(w.lifted),
                    opt(w.healed),
                    w.in_flight,
                    opt(w.recovery_acked),
                    opt(w.recovery_delivered)
                );
            }
            html.push_str("</tbody></table>\n");
        }
        let skipped: Vec<_> = e.faults_skipped.iter().chain(&e.crashes_skipped).collect();
        if !skipped.is_empty() {
            html.push_str("<h3>Planned, not carried out</h3><ul class=\"plain\">");
            let crashes = e.crashes_skipped.len();
            for (i, s) in skipped.iter().enumerate() {
                // Skipped crashes are named by their crash point (`late`): say what they are.
                let what = match i >= skipped.len() - crashes {
                    true => format!("client crash ({})", s.kind),
                    false => s.kind.clone(),
                };
                let _ = write!(
                    html,
                    "<li><b>{}</b> at {}: {}</li>",
                    esc(&what),
                    short_seconds(s.time),
                    esc(&s.reason)
                );
            }
            html.push_str("</ul>\n");
        }
        if !e.crash_points.is_empty() {
            html.push_str("<h3>Client crashes</h3><table class=\"grid\"><thead><tr><th>crash point</th><th>crashes</th><th>holding messages</th><th>messages held</th><th>skipped</th></tr></thead><tbody>");
            for (point, p) in &e.crash_points {
                let _ = write!(
                    html,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(point),
                    p.crashes,
                    p.holding,
                    p.messages_held,
                    p.skipped
                );
            }
            html.push_str("</tbody></table>\n");
        }
        let v = self.verdict;
        if !v.loss_shapes.is_empty() {
            html.push_str("<h3>Loss by producer</h3><table class=\"grid\"><thead><tr><th>process</th><th>lost</th><th>of acknowledged</th><th>where</th><th>sent</th><th>during faults</th></tr></thead><tbody>");
            for l in &v.loss_shapes {
                let _ = write!(
                    html,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}–{}</td><td>{}</td></tr>",
                    l.process,
                    l.lost,
                    l.acknowledged,
                    l.shape,
                    short_seconds(l.first_sent),
                    short_seconds(l.last_sent),
                    l.sent_during_faults
                );
            }
            html.push_str("</tbody></table>\n");
        }
        for note in &v.notes {
            let _ = writeln!(html, "<p class=\"note\">{}</p>", esc(note));
        }
        html.push_str("</section>\n");
    }

    fn config_section(&self, html: &mut String) {
        html.push_str("<section>\n<h2>Configuration</h2>\n");
        let Some(h) = self.header else {
            html.push_str("<p class=\"quiet\">The history has no header: no configuration recorded.</p>\n</section>\n");
            return;
        };
        let mut rows: Vec<(String, String)> = Vec::new();
        let mut push = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                rows.push((k.to_string(), v));
            }
        };
        push("history format", Some(h.history.to_string()));
        push("broker", h.broker.clone());
        push("claim", h.claim.map(|c| c.to_string()));
        push("claim groups", h.claim_groups.as_ref().map(|g| g.join(", ")));
        push("seed", h.seed.map(|s| s.to_string()));
        push(
            "positions",
            h.positions.map(|p| {
                serde_json::to_value(p)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            }),
        );
        for (k, v) in &h.extra {
            push(k, Some(scalar(v)));
        }
        if let Some(config) = &h.config {
            flatten("config", config, &mut rows);
        }
        html.push_str("<table class=\"config\"><tbody>");
        for (k, v) in rows {
            let _ = write!(html, "<tr><th>{}</th><td>{}</td></tr>", esc(&k), esc(&v));
        }
        html.push_str("</tbody></table>\n</section>\n");
    }

    fn reproduce_section(&self, html: &mut String) {
        html.push_str("<section>\n<h2>Reproduce</h2>\n");
        match reproduce_command(self.files, self.header) {
            Some((command, guessed)) => {
                let _ = writeln!(
                    html,
                    "<p>Run the same campaign with the same seed (the same fault schedule and workload choices):</p><pre>{}</pre>",
                    esc(&command)
                );
                if guessed {
                    html.push_str("<p class=\"quiet\">No <code>run.log</code> names the campaign file: its path is guessed from the campaign's name.</p>\n");
                }
            }
            None => html.push_str("<p class=\"quiet\">The history's header names no campaign and seed: it was not recorded by <code>ackcheck run</code>.</p>\n"),
        }
        let history = self.files.history.display().to_string();
        let _ = writeln!(
            html,
            "<p>Judge the recorded history again, or remake this page:</p><pre>ackcheck check {}\nackcheck report {}</pre>\n</section>",
            esc(&shell_word(&history)),
            esc(&shell_word(
                &self
                    .files
                    .dir
                    .as_ref()
                    .map_or(history.clone(), |d| d.display().to_string())
            ))
        );
    }
}

/// A JSON value as one table cell.
fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            if items.is_empty() {
                "(none)".into()
            } else {
                items.iter().map(scalar).collect::<Vec<_>>().join(", ")
            }
        }
        serde_json::Value::Object(m) if m.is_empty() => "(none)".into(),
        other => other.to_string(),
    }
}

/// Nested objects as dotted keys (`config.nemesis.faults`), in the order they were written.
fn flatten(prefix: &str, v: &serde_json::Value, rows: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(m) if !m.is_empty() => {
            for (k, inner) in m {
                flatten(&format!("{prefix}.{k}"), inner, rows);
            }
        }
        other => rows.push((prefix.to_string(), scalar(other))),
    }
}

/// A word for a shell command line, quoted when it needs to be.
fn shell_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@+,".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// `ackcheck run CAMPAIGN --seed N --duration D [--no-faults]`, from the header (the effective
/// seed, duration and faults) and `run.log` (the campaign file); `true` when the file's path is
/// guessed from the campaign's name. `None` without a seed.
fn reproduce_command(files: &RunFiles, header: Option<&Header>) -> Option<(String, bool)> {
    let h = header?;
    let seed = h.seed?;
    let name = h.extra.get("campaign").and_then(|c| c.as_str());
    let (file, guessed) = match (&files.campaign_file, name) {
        (Some(f), _) => (f.clone(), false),
        (None, Some(n)) => (format!("workloads/{n}.toml"), true),
        (None, None) => return None,
    };
    let mut command = format!("ackcheck run {} --seed {seed}", shell_word(&file));
    let config = h.config.as_ref();
    if let Some(d) = config.and_then(|c| c.get("duration")).and_then(|d| d.as_f64()) {
        // The effective duration: a --duration given to the run is not in the campaign file.
        if d.fract() == 0.0 {
            let _ = write!(command, " --duration {d:.0}s");
        } else {
            let _ = write!(command, " --duration {:.0}ms", d * 1000.0);
        }
    }
    let no_faults = config
        .and_then(|c| c.pointer("/nemesis/faults"))
        .and_then(|f| f.as_array())
        .is_some_and(|f| f.is_empty())
        && config
            .and_then(|c| c.pointer("/crashes/interval"))
            .and_then(|i| i.as_f64())
            .is_some_and(|i| i == 0.0);
    // Neither faults nor crashes took effect: --no-faults gives the same run whether the
    // campaign file has none or the run was made with --no-faults.
    if no_faults {
        command.push_str(" --no-faults");
    }
    Some((command, guessed))
}

const STYLE: &str = r#"
:root { --ink:#0f172a; --soft:#475569; --line:#e2e8f0; --bg:#f8fafc; --ok:#15803d; --bad:#b91c1c; --warn:#b45309; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink); font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
main { max-width:1200px; margin:0 auto; padding:28px 28px 48px; }
h1 { font-size:26px; margin:2px 0 0; letter-spacing:-0.01em; }
h2 { font-size:19px; margin:0 0 12px; }
h3 { font-size:15px; margin:18px 0 8px; }
h3 small, .claim small { font-weight:400; color:var(--soft); }
code, pre { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:13px; }
pre { background:#0f172a; color:#e2e8f0; padding:12px 14px; border-radius:8px; overflow-x:auto; }
.top .kicker { margin:0; text-transform:uppercase; letter-spacing:.08em; font-size:12px; color:var(--soft); }
.top .sub { margin:2px 0 18px; color:var(--soft); }
section { background:#fff; border:1px solid var(--line); border-radius:12px; padding:20px 22px; margin:0 0 18px; }
.verdict { border-width:1px 1px 1px 8px; }
.verdict.holds { border-left-color:var(--ok); }
.verdict.violated { border-left-color:var(--bad); }
.verdict.unjudged { border-left-color:var(--warn); }
.verdict.noclaim { border-left-color:var(--soft); }
.claim { display:flex; align-items:baseline; gap:18px; flex-wrap:wrap; }
.claim .what { font-size:24px; font-weight:600; }
.claim .headline { font-size:40px; font-weight:800; letter-spacing:.02em; }
.holds .headline { color:var(--ok); } .violated .headline { color:var(--bad); }
.unjudged .headline { color:var(--warn); } .noclaim .headline { color:var(--soft); }
.why { color:var(--bad); font-weight:600; margin:4px 0 0; }
.facts { display:grid; grid-template-columns:repeat(auto-fit,minmax(150px,1fr)); gap:10px; margin-top:16px; }
.facts div { background:var(--bg); border-radius:8px; padding:8px 12px; }
.facts span { display:block; font-size:12px; color:var(--soft); text-transform:uppercase; letter-spacing:.05em; }
.facts strong { font-size:20px; white-space:nowrap; }
.grade.strong { color:var(--ok); } .grade.weak { color:var(--warn); } .grade.none { color:var(--bad); }
.reasons { margin-top:14px; color:var(--soft); font-size:14px; }
.reasons p { margin:0; } .reasons ul { margin:4px 0 0; padding-left:20px; }
.legend { display:flex; flex-wrap:wrap; gap:6px 18px; font-size:13px; color:var(--soft); margin:0 0 6px; }
.key { display:inline-flex; align-items:center; gap:6px; }
.key i { display:inline-block; background:var(--c); }
.key i.line { width:18px; height:3px; border-radius:2px; }
.key i.bar { width:8px; height:12px; }
.key i.band { width:16px; height:12px; opacity:.35; border-radius:2px; }
.key i.tick { width:2px; height:14px; }
.key i.mark { width:0; height:0; background:none; border-left:6px solid transparent; border-right:6px solid transparent; border-bottom:10px solid var(--c); }
.dot { display:inline-block; width:10px; height:10px; border-radius:50%; background:var(--c); margin-right:8px; }
figure.plot { margin:8px 0 0; }
figure.plot svg { width:100%; height:auto; display:block; }
figcaption { font-size:13px; color:var(--soft); margin-top:8px; }
.two { display:grid; grid-template-columns:1fr 1fr; gap:28px; }
.two h2 + table, .two > div > h3:first-child { margin-top:0; }
table { border-collapse:collapse; width:100%; font-size:14px; }
.counts th { text-align:left; font-weight:500; padding:3px 10px 3px 0; white-space:nowrap; }
.counts td.n { white-space:nowrap; text-align:right; font-variant-numeric:tabular-nums; padding:3px 12px; font-weight:600; }
.counts td.m { color:var(--soft); font-size:13px; }
.counts tr.hit th, .counts tr.hit td.n { color:var(--bad); }
.grid th { text-align:left; font-weight:600; color:var(--soft); font-size:12px; text-transform:uppercase; letter-spacing:.04em; border-bottom:1px solid var(--line); padding:6px 10px 6px 0; }
.grid td { border-bottom:1px solid var(--line); padding:5px 10px 5px 0; font-variant-numeric:tabular-nums; }
.proof { border:1px solid var(--line); border-radius:8px; padding:8px 12px; margin:0 0 10px; }
.proof p { margin:0 0 6px; }
.events td:first-child, .events td:nth-child(2) { white-space:nowrap; font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:13px; }
.config th { text-align:left; font-weight:500; font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:13px; color:var(--soft); padding:3px 16px 3px 0; white-space:nowrap; width:1%; }
.config td { padding:3px 0; font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:13px; }
.config tr:nth-child(odd) { background:var(--bg); }
ul.plain { margin:0; padding-left:20px; }
.quiet { color:var(--soft); }
.note { background:#f1f5f9; border-radius:8px; padding:8px 12px; margin:10px 0 0; font-size:14px; }
.note.warn { background:#fef3c7; color:#78350f; margin:0 0 18px; }
footer { color:var(--soft); font-size:13px; text-align:center; margin-top:24px; }
@media (max-width: 900px) { .two { grid-template-columns:1fr; } }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_html() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_word("workloads/kafka.toml"), "workloads/kafka.toml");
        assert_eq!(shell_word("my runs/it's.toml"), r"'my runs/it'\''s.toml'");
    }

    #[test]
    fn nested_configuration_becomes_dotted_rows() {
        let config =
            serde_json::json!({"nemesis": {"faults": ["kill", "pause"], "interval": 3.0}, "dest_settings": {}});
        let mut rows = Vec::new();
        flatten("config", &config, &mut rows);
        assert!(
            rows.contains(&("config.nemesis.faults".into(), "kill, pause".into())),
            "{rows:?}"
        );
        assert!(
            rows.contains(&("config.nemesis.interval".into(), "3.0".into())),
            "{rows:?}"
        );
        assert!(
            rows.contains(&("config.dest_settings".into(), "(none)".into())),
            "{rows:?}"
        );
    }
}
