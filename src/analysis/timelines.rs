//! One real timeline per anomaly, drawn from a history the matrix recorded: the cell is chosen
//! by a rule (below), the history judged again with the library's checker (for more examples
//! than the cell's verdict keeps, and over every consumer group), and every event of the chosen
//! message drawn with its history index and position, beside the fault windows and crashes of
//! those seconds.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Analysis, AnalysisError, CellResult};
use crate::checker::verdict::Example;
use crate::checker::CheckOptions;
use crate::history::reader::HistoryReader;
use crate::report::plots::{witness_svg, FaultBand, MarkKind, WitnessMark};

/// A drawn timeline and the events it shows (for the table beside it).
#[derive(Debug, Clone)]
pub struct Drawn {
    /// File stem under `timelines/`.
    pub name: &'static str,
    pub title: &'static str,
    pub cell: String,
    pub message: String,
    /// The checker's sentence about the anomaly.
    pub explanation: String,
    pub events: Vec<Shown>,
    pub svg: String,
}

/// One event of the timeline.
#[derive(Debug, Clone)]
pub struct Shown {
    pub index: u64,
    pub time_ns: u64,
    pub process: String,
    pub what: String,
    pub pos: Option<String>,
    kind: MarkKind,
}

/// Which anomaly, where to look for it, and which example of it to draw.
pub struct Spec {
    pub name: &'static str,
    pub title: &'static str,
    /// The example kind in the verdict.
    kind: &'static str,
    /// A rank for a cell that may show it (lower first), or `None`.
    candidate: fn(&CellResult) -> Option<u8>,
    example: fn(&Example) -> bool,
    /// Prefer the example with a client crash soonest after its acknowledgement, and show
    /// crashes before faults.
    crash_after_ack: bool,
}

fn kafka_first(c: &CellResult) -> u8 {
    u8::from(c.broker != "kafka") * 4 + u8::from(c.nodes > 1) * 2
}

pub const SPECS: [Spec; 3] = [
    Spec {
        name: "duplicate-from-lost-ack",
        title: "A duplicate from a lost acknowledgement: the send's reply was lost, the retry appended the message again",
        kind: "duplicated",
        candidate: |c| {
            (c.duplicate_cause("written_twice") > 0 && c.families().iter().any(|f| f == "lose-acks") && c.variant.is_none())
                .then(|| kafka_first(c))
        },
        example: |e| e.explanation.contains("written twice"),
        crash_after_ack: false,
    },
    Spec {
        name: "loss-from-commit-before-processing",
        title: "A loss from committing before processing: acknowledged, committed by a consumer that crashed before processing it, never delivered",
        kind: "lost",
        candidate: |c| {
            (c.count("lost") > 0).then_some(())?;
            // Only where the producer side is at-least-once, so that the loss is the
            // consumer's: the early commit, or an automatic one that runs ahead of processing.
            match c.variant.as_deref() {
                Some("ack-before") => Some(kafka_first(c)),
                Some("auto-commit" | "auto-ack") => Some(10 + kafka_first(c)),
                _ => None,
            }
        },
        example: |_| true,
        crash_after_ack: true,
    },
    Spec {
        name: "aborted-read-uncommitted",
        title: "An aborted read in read-uncommitted: a transaction aborted (its send failed), yet a read_uncommitted consumer delivered its message",
        kind: "aborted-read",
        candidate: |c| {
            let kind = c.config.as_ref().and_then(|v| v["workload"]["kind"].as_str().map(str::to_string));
            (kind.as_deref() == Some("txn")).then(|| kafka_first(c))
        },
        example: |_| true,
        crash_after_ack: false,
    },
];

/// The timelines the cells' kept histories allow, in [`SPECS`] order.
pub fn draw(a: &Analysis, results: &Path) -> Result<Vec<Drawn>, AnalysisError> {
    let mut drawn = Vec::new();
    for spec in &SPECS {
        let mut candidates: Vec<(u8, &CellResult)> = a
            .cells
            .values()
            .filter(|c| c.judged())
            .filter_map(|c| Some(((spec.candidate)(c)?, c)))
            .collect();
        candidates.sort_by(|x, y| x.0.cmp(&y.0).then(x.1.cell.cmp(&y.1.cell)));
        for (_, cell) in candidates {
            let Some(history) = history_of(results, &cell.cell) else {
                continue;
            };
            if let Some(d) = draw_one(spec, &cell.cell, &history)? {
                drawn.push(d);
                break;
            }
        }
    }
    Ok(drawn)
}

/// The cell's kept history: `history.jsonl`, or compressed as `history.jsonl.gz`.
pub fn history_of(results: &Path, cell: &str) -> Option<PathBuf> {
    let dir = results.join("cells").join(cell);
    ["history.jsonl", "history.jsonl.gz"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
}

fn read_history(path: &Path) -> Result<Vec<u8>, AnalysisError> {
    let err = |e: std::io::Error| AnalysisError::History {
        path: path.display().to_string(),
        problem: e.to_string(),
    };
    let raw = std::fs::read(path).map_err(err)?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(err)?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// The value of `"group":"…"` in a line, without parsing it.
fn groups_in(line: &str, into: &mut BTreeSet<String>) {
    let key = "\"group\":\"";
    if let Some(at) = line.find(key) {
        let rest = &line[at + key.len()..];
        if let Some(end) = rest.find('"') {
            into.insert(rest[..end].to_string());
        }
    }
}

fn index_of(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("{\"index\":")?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

fn draw_one(spec: &Spec, cell: &str, path: &Path) -> Result<Option<Drawn>, AnalysisError> {
    let bytes = read_history(path)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut groups = BTreeSet::new();
    for line in text.lines() {
        groups_in(line, &mut groups);
    }
    // Every group, including those the claim leaves out (a txn run's read-uncommitted group).
    let options = CheckOptions {
        claim: None,
        examples: 100_000,
        groups: (!groups.is_empty()).then(|| groups.into_iter().collect()),
        min_evidence: None,
    };
    let verdict = crate::checker::check_with(HistoryReader::from_bytes(bytes.clone()), &options).map_err(|e| {
        AnalysisError::History {
            path: path.display().to_string(),
            problem: e.to_string(),
        }
    })?;
    let matching: Vec<&Example> = verdict
        .examples
        .get(spec.kind)
        .map(|list| list.iter().filter(|e| (spec.example)(e)).collect())
        .unwrap_or_default();
    let example = if spec.crash_after_ack {
        // A consumer-side loss shows best where a client crashed soonest after the message was
        // acknowledged (the history has no "received" event: receiving is not delivering).
        let crashes: Vec<u64> = text
            .lines()
            .filter(|l| l.contains("\"f\":\"crash\""))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["time"].as_u64())
            .collect();
        let gap = |e: &Example| -> u64 {
            let acked = e.events.iter().find(|c| c.what == "send ok").map_or(0, |c| c.time);
            crashes
                .iter()
                .filter(|&&t| t >= acked)
                .map(|t| t - acked)
                .min()
                .unwrap_or(u64::MAX)
        };
        matching.iter().copied().min_by_key(|e| (gap(e), e.message.clone()))
    } else {
        matching.first().copied()
    };
    let Some(example) = example else {
        return Ok(None);
    };
    let cited: BTreeSet<u64> = example.events.iter().map(|e| e.index).collect();
    let needle = format!("\"id\":\"{}\"", example.message);
    let mut own: Vec<Shown> = Vec::new();
    let mut around: Vec<Shown> = Vec::new();
    for line in text.lines() {
        let Some(index) = index_of(line) else { continue };
        let mine = line.contains(&needle);
        let nemesis = line.contains("\"process\":\"nemesis\"");
        let crash = line.contains("\"f\":\"crash\"");
        if !(mine || nemesis || crash || cited.contains(&index)) {
            continue;
        }
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let shown = shown(&event, &example.message);
        if mine || cited.contains(&index) {
            own.push(shown);
        } else {
            around.push(shown);
        }
    }
    // Events cited with another message's position (a group that read past it) keep the
    // checker's wording.
    for c in &example.events {
        if let Some(s) = own.iter_mut().find(|s| s.index == c.index) {
            if !s.what.contains(&example.message) && c.pos.is_some() && s.pos.is_none() {
                s.what = c.what.clone();
                s.pos = c.pos.clone();
            }
        }
    }
    if own.is_empty() {
        return Ok(None);
    }
    let t0 = own.iter().map(|s| s.time_ns).min().unwrap_or(0);
    let t1 = own.iter().map(|s| s.time_ns).max().unwrap_or(0);
    let pad = ((t1 - t0) / 10).max(200_000_000);
    let (lo, hi) = (t0.saturating_sub(pad * 5), t1 + pad);
    // The faults and crashes of those seconds, nearest first, a few of each.
    let mut near: Vec<Shown> = around
        .into_iter()
        .filter(|s| s.time_ns >= lo && s.time_ns <= hi)
        .collect();
    // For a consumer-side loss the crashes tell the story; otherwise the faults do.
    near.sort_by_key(|s| {
        (
            spec.crash_after_ack && s.kind != MarkKind::Crash,
            s.time_ns.abs_diff(t0).min(s.time_ns.abs_diff(t1)),
        )
    });
    near.truncate(8);
    let mut events = own;
    events.extend(near);
    events.sort_by_key(|s| s.index);
    events.dedup_by_key(|s| s.index);
    let start = events.iter().map(|s| s.time_ns).min().unwrap_or(t0);
    let end = events.iter().map(|s| s.time_ns).max().unwrap_or(t1);
    let margin = ((end - start) as f64 / 1e9 * 0.04).max(0.05);
    let span = (start as f64 / 1e9 - margin, end as f64 / 1e9 + margin);
    let marks: Vec<WitnessMark> = events
        .iter()
        .map(|s| WitnessMark {
            row: format!("#{} {}", s.index, s.process),
            at: s.time_ns as f64 / 1e9,
            text: match &s.pos {
                Some(p) => format!("{} @ {p}", s.what),
                None => s.what.clone(),
            },
            kind: s.kind,
        })
        .collect();
    let faults: Vec<FaultBand> = verdict
        .evidence
        .fault_windows
        .iter()
        .map(|w| {
            let lifted = w.lifted.unwrap_or(hi).max(w.from);
            FaultBand {
                kind: w.kind.clone(),
                label: match w.node {
                    Some(n) => format!("{} n{n}", w.kind),
                    None => w.kind.clone(),
                },
                from: w.from as f64 / 1e9,
                lifted: lifted as f64 / 1e9,
                healed: w.healed.unwrap_or(lifted).max(lifted) as f64 / 1e9,
            }
        })
        .collect();
    let title = format!("{} — {cell}, message {}", spec.name.replace('-', " "), example.message);
    let svg = witness_svg(&title, &marks, &faults, span).map_err(|source| AnalysisError::Plot {
        name: spec.name.into(),
        source,
    })?;
    Ok(Some(Drawn {
        name: spec.name,
        title: spec.title,
        cell: cell.to_string(),
        message: example.message.clone(),
        explanation: example.explanation.clone(),
        events,
        svg,
    }))
}

/// An event as the timeline shows it: what it did to `message` and where.
fn shown(e: &Value, message: &str) -> Shown {
    let index = e["index"].as_u64().unwrap_or(0);
    let time_ns = e["time"].as_u64().unwrap_or(0);
    let process = match &e["process"] {
        Value::String(s) => s.clone(),
        v => format!("p{}", v.as_u64().unwrap_or(0)),
    };
    let f = e["f"].as_str().unwrap_or("?");
    let ty = e["type"].as_str().unwrap_or("?");
    let kind = match (process.as_str(), f, ty) {
        ("nemesis", _, _) => MarkKind::Nemesis,
        (_, "crash", _) => MarkKind::Crash,
        (_, _, "invoke") => MarkKind::Invoke,
        (_, _, "ok") => MarkKind::Ok,
        (_, _, "fail") => MarkKind::Fail,
        _ => MarkKind::Info,
    };
    let messages = e["value"]["messages"].as_array();
    let pos = messages
        .and_then(|ms| ms.iter().find(|m| m["id"].as_str() == Some(message)))
        .and_then(|m| m["pos"].as_str())
        .map(str::to_string);
    let error = e["error"].as_str().map(|s| {
        let short: String = s.chars().take(48).collect();
        format!(" ({short}{})", if s.chars().count() > 48 { "…" } else { "" })
    });
    let what = match (f, ty) {
        ("deliver", _) => format!("delivered to {}", e["value"]["group"].as_str().unwrap_or("a group")),
        ("crash", _) => "client crashed".to_string(),
        (f, ty) if process == "nemesis" => {
            let node = e["value"]["node"]
                .as_u64()
                .map(|n| format!(" n{n}"))
                .unwrap_or_default();
            format!("{f} {ty}{node}")
        }
        ("send", "invoke") => {
            let n = messages.map_or(0, Vec::len);
            if n > 1 {
                format!("send invoked ({n} messages, atomic)")
            } else {
                "send invoked".to_string()
            }
        }
        (f, ty) => format!("{f} {ty}{}", error.unwrap_or_default()),
    };
    Shown {
        index,
        time_ns,
        process,
        what,
        pos,
        kind,
    }
}
