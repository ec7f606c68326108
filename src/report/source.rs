//! Where a report's material lies: a run directory (`history.jsonl`, and when present
//! `verdict.json` and `run.log`) or a bare history file.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::ReportError;
use crate::checker::evidence::Grade;
use crate::checker::CheckOptions;
use crate::history::{Guarantee, Header};

/// The files of one run, as found on disk.
#[derive(Debug, Clone)]
pub struct RunFiles {
    pub history: PathBuf,
    /// The run directory, when the history sits in one (`history.jsonl` beside `verdict.json`
    /// or `run.log`).
    pub dir: Option<PathBuf>,
    /// What the run's own check said (`verdict.json`), when present.
    pub recorded: Option<RecordedVerdict>,
    /// The campaign file the run was started with, from the first line of `run.log`.
    pub campaign_file: Option<String>,
}

/// The parts of `verdict.json` a report uses: the options the run judged with, and its result
/// (shown beside the report's own check when they differ, e.g. after a checker change).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordedVerdict {
    pub verdict: Option<String>,
    pub claim: Option<Guarantee>,
    pub claim_holds: Option<bool>,
    pub claim_groups: Option<Vec<String>>,
    pub min_evidence: Option<Grade>,
}

impl RunFiles {
    /// A run directory, a history inside one, or a bare history file.
    pub fn locate(path: &Path) -> Result<RunFiles, ReportError> {
        let (history, dir) = if path.is_dir() {
            (path.join("history.jsonl"), Some(path.to_path_buf()))
        } else {
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let in_run_dir = path.file_name().is_some_and(|n| n == "history.jsonl")
                && (parent.join("verdict.json").is_file() || parent.join("run.log").is_file());
            (path.to_path_buf(), in_run_dir.then(|| parent.to_path_buf()))
        };
        if !history.is_file() {
            return Err(ReportError::NoHistory(path.to_path_buf()));
        }
        let recorded = match &dir {
            Some(d) if d.join("verdict.json").is_file() => Some(read_recorded(&d.join("verdict.json"))?),
            _ => None,
        };
        let campaign_file = dir.as_ref().and_then(|d| campaign_file_from_log(&d.join("run.log")));
        Ok(RunFiles {
            history,
            dir,
            recorded,
            campaign_file,
        })
    }

    /// Where the report goes by default: `DIR/report.html` for a run directory, else beside the
    /// history as `<stem>.report.html` (so that two histories in one folder get two reports).
    pub fn default_report_path(&self) -> PathBuf {
        match &self.dir {
            Some(d) => d.join("report.html"),
            None => {
                let stem = self
                    .history
                    .file_stem()
                    .map_or_else(|| "history".into(), |s| s.to_string_lossy().into_owned());
                self.history.with_file_name(format!("{stem}.report.html"))
            }
        }
    }

    /// The check options that reproduce the run's own verdict: its claim, groups and evidence
    /// threshold as `verdict.json` records them (the header's, when there is none).
    pub fn check_options(&self, examples: usize) -> CheckOptions {
        let recorded = self.recorded.clone().unwrap_or_default();
        CheckOptions {
            claim: recorded.claim,
            examples,
            min_evidence: recorded.min_evidence,
            groups: recorded.claim_groups,
        }
    }
}

fn read_recorded(path: &Path) -> Result<RecordedVerdict, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
        what: "read",
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |source| ReportError::VerdictJson {
        path: path.to_path_buf(),
        source,
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(bad)?;
    let field = |name: &str| value.get(name).cloned().unwrap_or(serde_json::Value::Null);
    Ok(RecordedVerdict {
        verdict: value.get("verdict").and_then(|v| v.as_str()).map(str::to_string),
        claim: serde_json::from_value(field("claim")).map_err(bad)?,
        claim_holds: serde_json::from_value(field("claim_holds")).map_err(bad)?,
        claim_groups: serde_json::from_value(field("claim_groups")).map_err(bad)?,
        min_evidence: value
            .get("min_evidence")
            .and_then(|g| g.as_str())
            .and_then(|g| g.parse().ok()),
    })
}

/// The campaign file from `run.log`'s first line, `campaign NAME (PATH), seed N, run id X`.
fn campaign_file_from_log(path: &Path) -> Option<String> {
    let first = first_line(path, 64 * 1024)?;
    let rest = first.split_once("] campaign ")?.1;
    let open = rest.find(" (")? + 2;
    let close = rest.rfind("), seed ")?;
    (open <= close).then(|| rest[open..close].to_string())
}

/// The first line of a file, read up to `limit` bytes (a longer line is cut there).
fn first_line(path: &Path, limit: u64) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    let mut line = String::new();
    BufReader::new(file).take(limit).read_line(&mut line).ok()?;
    Some(line)
}

/// The header of a history file (its first line), without reading further; `None` for a
/// history without one, or for standard input.
pub(crate) fn read_header(path: &Path) -> Option<Header> {
    if path.as_os_str() == "-" {
        return None;
    }
    // The header holds the effective configuration: longer than a run log line, but bounded.
    let first = first_line(path, 16 << 20)?;
    let first = first.trim_start_matches('\u{feff}');
    serde_json::from_str(first.trim_end()).ok()
}
