//! `ackcheck matrix MATRIX.toml`: many campaigns × seeds × variants, one after another, into one
//! directory with one line of results per cell — the machinery behind cross-broker tables,
//! upgrade checks (`ackcheck diff` of two matrix directories) and `analysis/`.
//!
//! A matrix file:
//!
//! ```toml
//! seeds = [1, 2, 3]            # default for every cell group
//! duration = "60s"             # optional: overrides each campaign's
//!
//! [[cells]]
//! campaigns = ["workloads/kafka-*.toml", "workloads/nats-at-least-once.toml"]  # globs
//!
//! [[cells]]
//! campaigns = ["workloads/kafka-at-least-once.toml"]
//! variant = "auto-commit"      # names the cells (campaign name + "-" + variant)
//! seeds = [1]
//! [cells.set]                  # merged over each campaign's TOML, table by table
//! "client.consumer" = {}       # (any campaign key: mode, nodes, [nemesis], [client.*], …)
//! ```
//!
//! Every cell's campaign is written out whole (`DIR/campaigns/<cell>.toml`, overrides applied,
//! `name` set so that histories name the campaign and variant) and checked before anything runs.
//! A cell is done when `DIR/results.jsonl` has its line; a second invocation skips done cells
//! (resume), and retries cells whose run failed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::campaign::Campaign;

/// Why a matrix cannot run (exit 2), or its results cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error(
        "{file}: the pattern `{pattern}` matches no campaign file; check the path (relative to the current directory)"
    )]
    NoMatch { file: String, pattern: String },
    #[error(transparent)]
    Campaign(#[from] crate::campaign::CampaignError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl MatrixError {
    /// Input the user must fix (exit 2), as opposed to a file that could not be written.
    pub fn is_unusable_input(&self) -> bool {
        !matches!(self, MatrixError::Io { .. })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatrixFile {
    #[serde(default)]
    seeds: Option<Vec<u64>>,
    #[serde(default)]
    duration: Option<String>,
    cells: Vec<CellGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CellGroup {
    campaigns: Vec<String>,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    seeds: Option<Vec<u64>>,
    #[serde(default)]
    duration: Option<String>,
    #[serde(default)]
    set: toml::Table,
}

/// One run of the matrix.
#[derive(Debug, Clone)]
pub struct Cell {
    /// `<campaign name>[-<variant>]-seed<N>`: its campaign file, run directory and results key.
    pub name: String,
    /// The name its history records as the campaign (`<campaign>[-<variant>]`).
    pub campaign: String,
    pub variant: Option<String>,
    /// The campaign file it came from.
    pub source: PathBuf,
    pub seed: u64,
    /// The whole campaign, overrides applied.
    pub text: String,
    /// Cells with equal keys can run on one cluster, kept between them.
    pub cluster_key: String,
    pub broker: crate::broker::BrokerKind,
    pub nodes: usize,
}

/// The cells of a matrix file, in order (groups in file order, campaigns sorted within a
/// pattern, seeds ascending per campaign), each campaign checked.
pub fn cells(path: &Path) -> Result<Vec<Cell>, MatrixError> {
    let file = path.display().to_string();
    let invalid = |message: String| MatrixError::Invalid {
        file: file.clone(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| invalid(format!("cannot be read ({e})")))?;
    let m: MatrixFile = toml::from_str(&text).map_err(|e| invalid(one_line(&e.to_string())))?;
    if m.cells.is_empty() {
        return Err(invalid(
            "has no [[cells]]; add one with `campaigns = [\"workloads/….toml\"]`".into(),
        ));
    }
    let mut out: Vec<Cell> = Vec::new();
    for (i, group) in m.cells.iter().enumerate() {
        let seeds = group
            .seeds
            .clone()
            .or_else(|| m.seeds.clone())
            .unwrap_or_else(|| vec![1]);
        if seeds.is_empty() {
            return Err(invalid(format!(
                "cells #{}: `seeds` is empty; list at least one seed",
                i + 1
            )));
        }
        if let Some(v) = &group.variant {
            if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(invalid(format!(
                    "cells #{}: variant `{v}` must be letters, digits, `-` or `_` (it names files)",
                    i + 1
                )));
            }
        }
        let duration = group.duration.as_ref().or(m.duration.as_ref());
        for pattern in &group.campaigns {
            let mut files: Vec<PathBuf> = glob::glob(pattern)
                .map_err(|e| invalid(format!("`{pattern}` is not a valid pattern ({e})")))?
                .filter_map(Result::ok)
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(MatrixError::NoMatch {
                    file: file.clone(),
                    pattern: pattern.clone(),
                });
            }
            for source in files {
                let (campaign_name, text) = campaign_text(&source, group, duration)?;
                let campaign = Campaign::parse(&format!("{} (in {file})", source.display()), &text)?;
                let server = toml::to_string(&campaign.server).unwrap_or_default();
                for &seed in &seeds {
                    let name = format!("{campaign_name}-seed{seed}");
                    if out.iter().any(|c| c.name == name) {
                        return Err(invalid(format!(
                            "two cells are named {name}; give one of their [[cells]] a `variant`"
                        )));
                    }
                    out.push(Cell {
                        name,
                        campaign: campaign_name.clone(),
                        variant: group.variant.clone(),
                        source: source.clone(),
                        seed,
                        text: text.clone(),
                        cluster_key: format!("{}|{}|{server}", campaign.broker, campaign.nodes),
                        broker: campaign.broker,
                        nodes: campaign.nodes,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// The campaign of one source file in one group: its TOML with the group's `set` merged over it,
/// the matrix's duration, and `name` naming campaign and variant.
fn campaign_text(source: &Path, group: &CellGroup, duration: Option<&String>) -> Result<(String, String), MatrixError> {
    let shown = source.display().to_string();
    let text = std::fs::read_to_string(source).map_err(|e| MatrixError::Invalid {
        file: shown.clone(),
        message: format!("cannot be read ({e})"),
    })?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| MatrixError::Invalid {
        file: shown.clone(),
        message: one_line(&e.to_string()),
    })?;
    merge(&mut table, &group.set);
    if let Some(d) = duration {
        table.insert("duration".into(), d.clone().into());
    }
    let base = table
        .get("name")
        .and_then(|n| n.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| {
            source
                .file_stem()
                .map_or("campaign".into(), |s| s.to_string_lossy().into_owned())
        });
    let name = match &group.variant {
        Some(v) => format!("{base}-{v}"),
        None => base,
    };
    table.insert("name".into(), name.clone().into());
    let text = format!(
        "# ackcheck matrix cell from {shown}\n{}",
        toml::to_string(&table).unwrap_or_default()
    );
    Ok((name, text))
}

/// `over` merged into `base`: tables recursively, anything else replaced.
pub fn merge(base: &mut toml::Table, over: &toml::Table) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The cells `DIR/results.jsonl` records as done (a run that failed is not done: it is retried).
pub fn done_cells(results: &Path) -> BTreeSet<String> {
    let Ok(text) = std::fs::read_to_string(results) else {
        return BTreeSet::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("error").is_none())
        .filter_map(|v| v["cell"].as_str().map(str::to_string))
        .collect()
}

/// The results line of a cell whose run left `dir`: what ran (campaign, seed, the effective
/// configuration from its history header) and what it found (verdict, counts, evidence,
/// performance), or why it has no verdict.
pub fn result_line(cell: &Cell, dir: &Path, exit: Result<i32, String>) -> Value {
    let header = crate::report::read_header(&dir.join("history.jsonl"));
    let verdict: Option<Value> = std::fs::read_to_string(dir.join("verdict.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let mut line = json!({
        "cell": cell.name,
        "campaign": cell.campaign,
        "variant": cell.variant,
        "source": cell.source.display().to_string(),
        "seed": cell.seed,
        "broker": cell.broker.to_string(),
        "nodes": cell.nodes,
        "dir": dir.display().to_string(),
        "config": header.and_then(|h| h.config),
    });
    match (exit, verdict) {
        (Ok(code), Some(v)) => {
            line["exit"] = code.into();
            for key in [
                "verdict",
                "claim",
                "claim_holds",
                "violations",
                "counts",
                "duplicate_causes",
                "performance",
            ] {
                line[key] = v[key].clone();
            }
            let e = &v["evidence"];
            line["evidence"] = json!({
                "grade": e["grade"], "reasons": e["reasons"], "faults": e["faults"],
                "faults_started": e["faults_started"], "faults_scheduled": e["faults_scheduled"],
                "crashes": e["crashes"], "crashes_scheduled": e["crashes_scheduled"],
                "progress_share": e["progress_share"], "run_phase": e["run_phase"],
                "longest_stall_acked": e["longest_stall_acked"], "longest_stall_delivered": e["longest_stall_delivered"],
            });
        }
        (Ok(code), None) => {
            line["exit"] = code.into();
            line["error"] = "the run left no verdict.json".into();
        }
        (Err(e), _) => line["error"] = e.into(),
    }
    line
}

/// Append one line to `DIR/results.jsonl`.
pub fn append_result(results: &Path, line: &Value) -> Result<(), MatrixError> {
    use std::io::Write;
    let io = |source| MatrixError::Io {
        path: results.display().to_string(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(results)
        .map_err(io)?;
    writeln!(f, "{line}").map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const CAMPAIGN: &str = "broker = \"nats\"\nmode = \"at-least-once\"\nduration = \"60s\"\n[workload]\nkind = \"queue\"\n[nemesis]\nfaults = [\"kill\"]\n";

    #[test]
    fn groups_expand_to_campaigns_times_seeds_with_overrides_and_names() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.toml", CAMPAIGN);
        write(dir.path(), "b.toml", &CAMPAIGN.replace("at-least-once", "exactly-once"));
        let glob = dir.path().join("*.toml").display().to_string();
        let a = dir.path().join("a.toml").display().to_string();
        let m = write(
            dir.path(),
            "m.matrix",
            &format!(
                "seeds = [1, 2]\nduration = \"10s\"\n[[cells]]\ncampaigns = [{glob:?}]\n[[cells]]\ncampaigns = [{a:?}]\nvariant = \"no-kill\"\nseeds = [3]\n[cells.set]\nmode = \"at-most-once\"\n[cells.set.nemesis]\nfaults = []\n"
            ),
        );
        let cells = cells(&m).expect("a valid matrix");
        let names: Vec<&str> = cells.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a-seed1", "a-seed2", "b-seed1", "b-seed2", "a-no-kill-seed3"]);
        let variant = Campaign::parse("variant", &cells[4].text).expect("the cell's campaign loads");
        assert_eq!(variant.mode, crate::history::Guarantee::AtMostOnce);
        assert!(variant.nemesis.faults.is_empty(), "the nested table was merged");
        assert_eq!(variant.name.as_deref(), Some("a-no-kill"));
        assert_eq!(variant.duration, std::time::Duration::from_secs(10));
        assert_eq!(
            cells[0].cluster_key, cells[2].cluster_key,
            "same broker and size: one cluster"
        );
    }

    #[test]
    fn mistakes_are_named_before_anything_runs() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nothing-*.toml").display().to_string();
        let m = write(
            dir.path(),
            "m.matrix",
            &format!("[[cells]]\ncampaigns = [{missing:?}]\n"),
        );
        let e = cells(&m).unwrap_err();
        assert!(e.to_string().contains("matches no campaign file"), "{e}");
        let m = write(dir.path(), "m2.matrix", "[[cells]]\ncampains = []\n");
        let e = cells(&m).unwrap_err().to_string();
        assert!(e.contains("campains"), "{e}");
        write(dir.path(), "a.toml", CAMPAIGN);
        let a = dir.path().join("a.toml").display().to_string();
        let m = write(
            dir.path(),
            "m3.matrix",
            &format!("[[cells]]\ncampaigns = [{a:?}]\n[[cells]]\ncampaigns = [{a:?}]\n"),
        );
        assert!(cells(&m)
            .unwrap_err()
            .to_string()
            .contains("give one of their [[cells]] a `variant`"));
        let m = write(
            dir.path(),
            "m4.matrix",
            &format!("[[cells]]\ncampaigns = [{a:?}]\n[cells.set]\nmode = \"sometimes\"\n"),
        );
        assert!(cells(&m).is_err(), "an override the campaign cannot take is refused");
    }

    #[test]
    fn failed_cells_are_not_done() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path().join("results.jsonl");
        append_result(&r, &json!({"cell": "a-seed1", "verdict": "at-least-once"})).unwrap();
        append_result(&r, &json!({"cell": "a-seed2", "error": "the broker did not start"})).unwrap();
        assert_eq!(done_cells(&r).into_iter().collect::<Vec<_>>(), ["a-seed1"]);
    }
}
