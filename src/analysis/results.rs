//! What the generator reads: the lines of a matrix's `results.jsonl` (one per cell, written by
//! `ackcheck matrix`) and the optional `run-info.toml` beside it (when and where the matrix ran).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::AnalysisError;

/// One line of `results.jsonl`: what ran and what the checker found. Every field the generator
/// prints comes from here (or from the cell's own files), so that each number traces back to a
/// line.
#[derive(Debug, Clone, Deserialize)]
pub struct CellResult {
    pub cell: String,
    pub campaign: String,
    #[serde(default)]
    pub variant: Option<String>,
    pub seed: u64,
    pub broker: String,
    pub nodes: u64,
    /// The cell's run directory as the matrix wrote it (relative to where it ran).
    #[serde(default)]
    pub dir: String,
    /// The effective configuration (the history header's `config`).
    #[serde(default)]
    pub config: Option<Value>,
    #[serde(default)]
    pub exit: Option<i32>,
    /// Why the run left no verdict (then nothing below is set).
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub verdict: Option<String>,
    #[serde(default)]
    pub claim: Option<String>,
    #[serde(default)]
    pub claim_holds: Option<bool>,
    #[serde(default)]
    pub violations: Option<Vec<String>>,
    #[serde(default)]
    pub counts: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    pub duplicate_causes: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    pub performance: Option<Performance>,
    #[serde(default)]
    pub evidence: Option<EvidenceSummary>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Performance {
    #[serde(default)]
    pub acknowledged_per_second: Option<f64>,
    #[serde(default)]
    pub latency: Option<Latency>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct EvidenceSummary {
    #[serde(default)]
    pub grade: Option<String>,
    /// Fault kind → how many were injected.
    #[serde(default)]
    pub faults: BTreeMap<String, u64>,
    #[serde(default)]
    pub crashes: Option<u64>,
}

impl CellResult {
    /// A count of the verdict (`lost`, `duplicated`, …); 0 when absent.
    pub fn count(&self, key: &str) -> u64 {
        self.counts
            .as_ref()
            .and_then(|c| c.get(key))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }

    pub fn duplicate_cause(&self, key: &str) -> u64 {
        self.duplicate_causes
            .as_ref()
            .and_then(|c| c.get(key))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }

    /// Whether the run produced a verdict.
    pub fn judged(&self) -> bool {
        self.error.is_none() && self.verdict.is_some()
    }

    /// The delivery mode the clients were configured for.
    pub fn mode(&self) -> String {
        self.config
            .as_ref()
            .and_then(|c| c.get("mode"))
            .and_then(Value::as_str)
            .or(self.claim.as_deref())
            .unwrap_or("?")
            .to_string()
    }

    /// The fault kinds injected in this run (at least once), and `client-crash` when a client
    /// crashed by design.
    pub fn families(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Some(e) = &self.evidence {
            out.extend(e.faults.iter().filter(|(_, n)| **n > 0).map(|(k, _)| k.clone()));
            if e.crashes.unwrap_or(0) > 0 {
                out.push("client-crash".into());
            }
        }
        out
    }

    /// Per 10,000 messages (0 without messages).
    pub fn per_10k(&self, key: &str) -> f64 {
        let messages = self.count("messages");
        if messages == 0 {
            0.0
        } else {
            self.count(key) as f64 * 10_000.0 / messages as f64
        }
    }
}

/// The cells of `results.jsonl`, one per cell name: a later line replaces an earlier one (a
/// failed cell that the matrix retried), but a line with an error never replaces a verdict.
pub fn read_results(path: &Path) -> Result<BTreeMap<String, CellResult>, AnalysisError> {
    let text = std::fs::read_to_string(path).map_err(|source| AnalysisError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let mut cells: BTreeMap<String, CellResult> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let cell: CellResult = serde_json::from_str(line).map_err(|e| AnalysisError::BadLine {
            path: path.display().to_string(),
            line: i + 1,
            problem: e.to_string(),
        })?;
        match cells.get(&cell.cell) {
            Some(old) if old.judged() && !cell.judged() => {}
            _ => {
                cells.insert(cell.cell.clone(), cell);
            }
        }
    }
    Ok(cells)
}

/// When, where and how long the matrix ran: `run-info.toml` beside `results.jsonl`, written by
/// whoever ran it (the generator cannot know; the results lines carry no dates).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunInfo {
    /// E.g. `2026-12-06`.
    pub date: Option<String>,
    /// E.g. `Debian 12, 2 cores, 8 GB`.
    pub machine: Option<String>,
    /// Machine time the cells took, e.g. `95 min`.
    pub machine_time: Option<String>,
    /// Anything else a reader must know about the run.
    pub notes: Option<Vec<String>>,
}

pub fn read_run_info(path: &Path) -> Result<RunInfo, AnalysisError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| AnalysisError::BadRunInfo {
            path: path.display().to_string(),
            problem: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RunInfo::default()),
        Err(source) => Err(AnalysisError::Read {
            path: path.display().to_string(),
            source,
        }),
    }
}
