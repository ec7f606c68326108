//! `ackcheck analyze`: the cross-broker analysis (`analysis/` in the repository), generated from
//! a matrix's `results.jsonl` and the cells' run directories — never edited by hand.
//!
//! - `comparison.md`: one row per broker × configuration (campaign and variant) over its seeds,
//!   then one table per fault family;
//! - `guarantees.md`: the seed questions answered, each measured statement generated from and
//!   linked to the cells behind it, with Mermaid diagrams and one SVG timeline per anomaly
//!   drawn from a real history of the matrix;
//! - `kafka-streams-eos.md`: Kafka Streams' exactly-once settings beside what ackcheck's own
//!   pipeline configures and measured.
//!
//! The output is a pure function of the inputs: sorted, no clock, no host name (the run's date
//! and machine come from `run-info.toml`, written by whoever ran the matrix).

mod comparison;
mod group;
mod guarantees;
mod results;
mod streams;
mod timelines;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use group::Group;
pub use results::{read_results, read_run_info, CellResult, RunInfo};

/// Why the analysis could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error("cannot read {path}: {source}; run `ackcheck matrix MATRIX.toml --out DIR` first, then analyze DIR")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} line {line} is not a matrix results line ({problem}); regenerate it with `ackcheck matrix`")]
    BadLine { path: String, line: usize, problem: String },
    #[error("{path} is not a valid run-info file ({problem}); it takes `date`, `machine`, `machine_time` and `notes`")]
    BadRunInfo { path: String, problem: String },
    #[error("{path} holds no cell with a verdict; run the matrix (or let it finish a cell) first")]
    NoCells { path: String },
    #[error("the matrix file does not load: {0}")]
    Matrix(#[from] crate::matrix::MatrixError),
    #[error("cannot read the history {path}: {problem}")]
    History { path: String, problem: String },
    #[error("drawing the timeline {name}: {source}")]
    Plot {
        name: String,
        #[source]
        source: crate::report::ReportError,
    },
    #[error("cannot write {path}: {source}; check that the folder is writable")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl AnalysisError {
    /// Whether the fault is in what the user handed over (exit 2) rather than the machine.
    pub fn is_unusable_input(&self) -> bool {
        matches!(
            self,
            AnalysisError::BadLine { .. }
                | AnalysisError::BadRunInfo { .. }
                | AnalysisError::NoCells { .. }
                | AnalysisError::Matrix(_)
                | AnalysisError::Read { .. }
        )
    }
}

/// What to analyze.
#[derive(Debug, Clone)]
pub struct Request {
    /// The matrix's output directory: `results.jsonl`, `cells/`, optional `run-info.toml`.
    pub results: PathBuf,
    /// The matrix file: lets the analysis list the cells that have not run. Optional.
    pub matrix: Option<PathBuf>,
    /// Where the Markdown (and `timelines/`) go; links to cells are relative to it.
    pub out: PathBuf,
    /// Draw the anomaly timelines from the cells' histories (off: the Markdown says none were
    /// drawn; the golden test uses this to stay independent of histories).
    pub timelines: bool,
}

/// Everything the renderers share.
pub(crate) struct Analysis {
    pub cells: BTreeMap<String, CellResult>,
    pub groups: Vec<Group>,
    /// Cells the matrix names that have no verdict (not run yet, or failed), with why.
    pub missing: Vec<(String, String)>,
    pub expected: usize,
    pub run_info: RunInfo,
    /// The results directory as seen from the output directory (for links), `/`-separated.
    pub results_link: String,
    /// The command that makes this analysis, as documented.
    pub command: String,
}

impl Analysis {
    /// A Markdown link to a cell's verdict, labelled `label`.
    pub fn cell_link(&self, cell: &str, label: &str) -> String {
        format!("[{label}]({}/cells/{cell}/verdict.json)", self.results_link)
    }

    /// Links to every cell of a group, labelled by seed: `[s1](…) [s2](…)`.
    pub fn group_links(&self, g: &Group) -> String {
        g.cells
            .iter()
            .map(|c| self.cell_link(&c.cell, &format!("s{}", c.seed)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn group(&self, campaign: &str, variant: Option<&str>) -> Option<&Group> {
        // The matrix names a variant's campaign `<campaign>-<variant>`.
        self.groups.iter().find(|g| {
            g.variant.as_deref() == variant
                && (g.campaign == campaign || variant.is_some_and(|v| g.campaign == format!("{campaign}-{v}")))
        })
    }

    /// The generated-file banner: what made it, from what, when and where the data was made.
    pub fn banner(&self, title: &str) -> String {
        let info = &self.run_info;
        let mut s = format!(
            "# {title}\n\n<!-- Generated by `{}`: do not edit by hand; change the generator (src/analysis/) or the data and regenerate. -->\n\n",
            self.command
        );
        s.push_str(&format!(
            "Generated from [`results.jsonl`]({}/results.jsonl): {} of {} cells of the matrix have a verdict. Matrix run on {} on {}{}.\n",
            self.results_link,
            self.cells.values().filter(|c| c.judged()).count(),
            self.expected,
            info.date.as_deref().unwrap_or("an unrecorded date"),
            info.machine.as_deref().unwrap_or("an unrecorded machine"),
            info.machine_time
                .as_deref()
                .map(|t| format!(" ({t} of machine time)"))
                .unwrap_or_default(),
        ));
        for note in info.notes.iter().flatten() {
            s.push_str(&format!("\n{note}\n"));
        }
        if !self.missing.is_empty() {
            s.push_str(&format!(
                "\n**{} missing** (no verdict; the tables below leave {} out): {}.\n",
                match self.missing.len() {
                    1 => "1 cell is".to_string(),
                    n => format!("{n} cells are"),
                },
                if self.missing.len() == 1 { "it" } else { "them" },
                self.missing
                    .iter()
                    .map(|(c, why)| format!("`{c}` ({why})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        s.push('\n');
        s
    }
}

/// The generated files: path relative to the output directory → contents.
pub type Files = BTreeMap<PathBuf, Vec<u8>>;

/// Make the analysis (nothing is written: see [`write`]).
pub fn generate(req: &Request) -> Result<Files, AnalysisError> {
    let results_path = req.results.join("results.jsonl");
    let cells = read_results(&results_path)?;
    if !cells.values().any(CellResult::judged) {
        return Err(AnalysisError::NoCells {
            path: results_path.display().to_string(),
        });
    }
    let run_info = read_run_info(&req.results.join("run-info.toml"))?;
    let expected_names: Vec<String> = match &req.matrix {
        Some(m) => crate::matrix::cells(m)?.into_iter().map(|c| c.name).collect(),
        None => cells.keys().cloned().collect(),
    };
    let mut missing: Vec<(String, String)> = Vec::new();
    for name in &expected_names {
        match cells.get(name) {
            Some(c) if c.judged() => {}
            Some(c) => missing.push((
                name.clone(),
                format!("failed: {}", c.error.as_deref().unwrap_or("no verdict")),
            )),
            None => missing.push((name.clone(), "not run".into())),
        }
    }
    let groups = group::groups(&cells);
    let results_link = relative_link(&req.out, &req.results);
    let command = match &req.matrix {
        Some(m) => format!(
            "ackcheck analyze {} --matrix {} --out {}",
            req.results.display(),
            m.display(),
            req.out.display()
        ),
        None => format!("ackcheck analyze {} --out {}", req.results.display(), req.out.display()),
    };
    let analysis = Analysis {
        expected: expected_names.len().max(cells.len()),
        cells,
        groups,
        missing,
        run_info,
        results_link,
        command,
    };
    let mut files = Files::new();
    let drawn = if req.timelines {
        timelines::draw(&analysis, &req.results)?
    } else {
        Vec::new()
    };
    for t in &drawn {
        files.insert(
            PathBuf::from("timelines").join(format!("{}.svg", t.name)),
            t.svg.clone().into_bytes(),
        );
    }
    files.insert("comparison.md".into(), comparison::render(&analysis).into_bytes());
    files.insert(
        "guarantees.md".into(),
        guarantees::render(&analysis, &drawn, req.timelines).into_bytes(),
    );
    files.insert("kafka-streams-eos.md".into(), streams::render(&analysis).into_bytes());
    Ok(files)
}

/// Write the files under `out` (folders made as needed).
pub fn write(out: &Path, files: &Files) -> Result<(), AnalysisError> {
    for (rel, bytes) in files {
        let path = out.join(rel);
        let io = |source| AnalysisError::Write {
            path: path.display().to_string(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, bytes).map_err(io)?;
    }
    Ok(())
}

/// `to` as seen from the directory `from`, `/`-separated (`results`, `../runs/x`). Both are
/// taken as given when they are relative (the usual case: both under the repository), so that
/// the links do not depend on where the repository lies.
fn relative_link(from: &Path, to: &Path) -> String {
    let absolute = |p: &Path| -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            Path::new("/").join(p)
        }
    };
    let (from, to) = if from.is_absolute() != to.is_absolute() {
        let cwd = std::env::current_dir().unwrap_or_default();
        (cwd.join(from), cwd.join(to))
    } else {
        (absolute(from), absolute(to))
    };
    let norm = |p: &Path| -> Vec<String> {
        let mut parts: Vec<String> = Vec::new();
        for c in p.components() {
            match c {
                std::path::Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
                std::path::Component::ParentDir => {
                    parts.pop();
                }
                _ => {}
            }
        }
        parts
    };
    let (f, t) = (norm(&from), norm(&to));
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_string(); f.len() - common];
    parts.extend(t[common..].iter().cloned());
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_relative_to_the_output_folder() {
        assert_eq!(
            relative_link(Path::new("analysis"), Path::new("analysis/results")),
            "results"
        );
        assert_eq!(
            relative_link(Path::new("analysis/"), Path::new("./analysis/results")),
            "results"
        );
        assert_eq!(relative_link(Path::new("out"), Path::new("runs/m")), "../runs/m");
        assert_eq!(relative_link(Path::new("/a/b"), Path::new("/a/b/c")), "c");
    }
}
