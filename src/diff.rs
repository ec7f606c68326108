//! `ackcheck diff OLD NEW`: what got weaker and what got stronger between two sets of runs —
//! the regression check for broker upgrades and configuration changes.
//!
//! OLD and NEW are each a `verdict.json`, a run directory, or a directory of run directories
//! (every `verdict.json` up to three levels down, as `ackcheck audit` and campaign tables leave
//! them). Runs are paired by campaign and seed (from each run's history header); two single runs
//! are paired whatever their names. Per pair: the claim (held → violated is a weakened
//! guarantee), the observed guarantee, each kind of anomaly appearing or disappearing, the
//! evidence grade. Per campaign over its seeds: claims held, anomaly counts and throughput that
//! moved beyond the spread of the old seeds.
//!
//! Only a weakened guarantee fails the diff (exit 1): a claim that held and now does not, or,
//! for runs without a claim, a guarantee that was observed and no longer is. Everything else is
//! reported as weaker or stronger for a person to judge (counts move with randomness and run
//! length; evidence is about the run, not the broker).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

/// Anomaly kinds compared, as the verdict's `counts` names them.
const ANOMALIES: &[&str] = &[
    "lost",
    "duplicated",
    "stored_twice",
    "unexpected",
    "failed_delivered",
    "torn",
    "order_violations",
    "inconsistent_positions",
    "lost_by_position",
    "skips",
    "send_reorders",
];

/// A throughput ratio beyond this (either way) counts as moved when there is only one old
/// seed to measure the spread by.
const SINGLE_SEED_RATIO: f64 = 1.25;

/// Why a diff could not be made (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("{path} does not exist; give a verdict.json, a run directory or a directory of runs")]
    Missing { path: String },
    #[error("{path} holds no verdict.json (looked three levels down); give a run directory or a directory of runs")]
    NoVerdicts { path: String },
    #[error("{path} cannot be read ({message}); check the file")]
    Unreadable { path: String, message: String },
}

/// One run's verdict and what names it.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The campaign's name (history header), else the run directory's name.
    pub campaign: String,
    pub seed: Option<u64>,
    /// The `verdict.json` it came from.
    pub source: PathBuf,
    pub verdict: Value,
    /// The broker and its version, as the history header records them (`kafka 4.1.1`), when
    /// it does: an upgrade check compares two of them.
    pub broker: Option<String>,
}

impl RunResult {
    fn label(&self) -> String {
        match self.seed {
            Some(s) => format!("{} seed {s}", self.campaign),
            None => self.campaign.clone(),
        }
    }

    fn count(&self, kind: &str) -> u64 {
        self.verdict["counts"][kind].as_u64().unwrap_or(0)
    }

    fn claim(&self) -> Option<&str> {
        self.verdict["claim"].as_str()
    }

    fn claim_holds(&self) -> Option<bool> {
        self.verdict["claim_holds"].as_bool()
    }

    fn observed(&self) -> &str {
        self.verdict["verdict"].as_str().unwrap_or("?")
    }

    fn grade(&self) -> &str {
        self.verdict["evidence"]["grade"].as_str().unwrap_or("none")
    }

    /// Acknowledged sends per second of the run phase (the verdict's `performance`, or from the
    /// counts of a verdict written before it had one).
    /// End-to-end latency (send invoked → first delivery), `p50_ms` or `p99_ms`.
    fn latency(&self, key: &str) -> Option<f64> {
        self.verdict["performance"]["latency"][key].as_f64()
    }

    fn throughput(&self) -> Option<f64> {
        if let Some(rate) = self.verdict["performance"]["acknowledged_per_second"].as_f64() {
            return Some(rate);
        }
        let acked = self.verdict["counts"]["acknowledged"].as_f64()?;
        let nanos = self.verdict["evidence"]["run_phase"].as_f64()?;
        (nanos > 0.0).then(|| acked / (nanos / 1e9))
    }
}

/// Which way something moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Weaker,
    Stronger,
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// `campaign seed N`, or `campaign` for a comparison over seeds.
    pub scope: String,
    pub direction: Direction,
    /// What moved, as a sentence fragment: `claim at-least-once held, now VIOLATED (lost 12)`.
    pub what: String,
    /// A guarantee weakened (this fails the diff).
    pub guarantee: bool,
}

/// The whole comparison.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Diff {
    pub old_runs: usize,
    pub new_runs: usize,
    /// Runs compared pairwise.
    pub pairs: usize,
    pub changes: Vec<Change>,
    /// Runs (campaign and seed) only one side has.
    pub only_old: Vec<String>,
    pub only_new: Vec<String>,
    /// The brokers and versions each side ran (`kafka 3.9.1`), as their histories record them.
    pub old_brokers: BTreeSet<String>,
    pub new_brokers: BTreeSet<String>,
}

impl Diff {
    /// Some guarantee weakened.
    pub fn weakened(&self) -> bool {
        self.changes.iter().any(|c| c.guarantee)
    }

    /// 0 nothing weakened, 1 a guarantee weakened.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.weakened())
    }
}

/// Every run under `path`: a `verdict.json`, a run directory, or a directory of them.
pub fn load(path: &Path) -> Result<Vec<RunResult>, DiffError> {
    let shown = path.display().to_string();
    if !path.exists() {
        return Err(DiffError::Missing { path: shown });
    }
    let mut files = Vec::new();
    if path.is_file() {
        files.push(path.to_path_buf());
    } else {
        find_verdicts(path, 3, &mut files);
    }
    if files.is_empty() {
        return Err(DiffError::NoVerdicts { path: shown });
    }
    files.sort();
    files.iter().map(|f| read_run(f)).collect()
}

fn find_verdicts(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let here = dir.join("verdict.json");
    if here.is_file() {
        out.push(here);
        return;
    }
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let p = entry.path();
        if p.is_dir() {
            find_verdicts(&p, depth - 1, out);
        }
    }
}

fn read_run(file: &Path) -> Result<RunResult, DiffError> {
    let unreadable = |message: String| DiffError::Unreadable {
        path: file.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(file).map_err(|e| unreadable(e.to_string()))?;
    let verdict: Value = serde_json::from_str(&text).map_err(|e| unreadable(format!("not JSON: {e}")))?;
    if !verdict.get("verdict").is_some_and(Value::is_string) {
        return Err(unreadable("not an ackcheck verdict (no \"verdict\" key)".into()));
    }
    // The campaign and seed are in the run's history header, beside the verdict.
    let dir = file.parent().unwrap_or(Path::new("."));
    let header = crate::report::read_header(&dir.join("history.jsonl"));
    // Without the history (a matrix's committed results keep only the verdicts), the run
    // directory's name: a matrix names its cells `<campaign>-seed<N>`.
    let dir_name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    let from_dir_name = dir_name.as_deref().and_then(|name| {
        let (campaign, seed) = name.rsplit_once("-seed")?;
        Some((campaign.to_string(), seed.parse::<u64>().ok()?))
    });
    let campaign = header
        .as_ref()
        .and_then(|h| h.extra.get("campaign"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| from_dir_name.as_ref().map(|(campaign, _)| campaign.clone()))
        .or(dir_name)
        .unwrap_or_else(|| "run".into());
    let broker = match header.as_ref() {
        Some(h) => h
            .broker
            .clone()
            .map(|name| match h.extra.get("broker_version").and_then(Value::as_str) {
                Some(version) => format!("{name} {version}"),
                None => name,
            }),
        None => matrix_cell_broker(dir),
    };
    Ok(RunResult {
        campaign,
        seed: header.and_then(|h| h.seed).or(from_dir_name.map(|(_, seed)| seed)),
        source: file.to_path_buf(),
        verdict,
        broker,
    })
}

/// The broker (and version, if the campaign names one) of a matrix cell whose history is not
/// kept: from the campaign file the matrix wrote for it (`<results>/campaigns/<cell>.toml`).
fn matrix_cell_broker(cell_dir: &Path) -> Option<String> {
    let cell = cell_dir.file_name()?.to_string_lossy().into_owned();
    let results = cell_dir.parent()?.parent()?;
    let text = std::fs::read_to_string(results.join("campaigns").join(format!("{cell}.toml"))).ok()?;
    let campaign: toml::Table = toml::from_str(&text).ok()?;
    let broker = campaign.get("broker")?.as_str()?;
    Some(match campaign.get("version").and_then(toml::Value::as_str) {
        Some(version) => format!("{broker} {version}"),
        None => broker.to_string(),
    })
}

/// The guarantees a verdict observed: exactly-once is both of the others.
fn observed_set(verdict: &str) -> BTreeSet<&'static str> {
    match verdict {
        "exactly-once" => ["at-least-once", "at-most-once"].into(),
        "at-least-once" => ["at-least-once"].into(),
        "at-most-once" => ["at-most-once"].into(),
        _ => BTreeSet::new(),
    }
}

fn grade_rank(grade: &str) -> u8 {
    match grade {
        "strong" => 2,
        "weak" => 1,
        _ => 0,
    }
}

/// Compare two sets of runs.
pub fn diff(old: &[RunResult], new: &[RunResult]) -> Diff {
    let mut d = Diff {
        old_runs: old.len(),
        new_runs: new.len(),
        old_brokers: old.iter().filter_map(|r| r.broker.clone()).collect(),
        new_brokers: new.iter().filter_map(|r| r.broker.clone()).collect(),
        ..Diff::default()
    };
    if old.len() == 1 && new.len() == 1 {
        let scope = if old[0].label() == new[0].label() {
            new[0].label()
        } else {
            format!("{} → {}", old[0].label(), new[0].label())
        };
        d.pairs = 1;
        compare_pair(&scope, &old[0], &new[0], &mut d.changes);
        return d;
    }
    let by_campaign = |runs: &[RunResult]| {
        let mut m: BTreeMap<String, Vec<RunResult>> = BTreeMap::new();
        for r in runs {
            m.entry(r.campaign.clone()).or_default().push(r.clone());
        }
        m
    };
    let (old_c, new_c) = (by_campaign(old), by_campaign(new));
    for (campaign, olds) in &old_c {
        let Some(news) = new_c.get(campaign) else {
            d.only_old.extend(olds.iter().map(RunResult::label));
            continue;
        };
        for o in olds {
            match news.iter().find(|n| n.seed == o.seed) {
                Some(n) => {
                    d.pairs += 1;
                    compare_pair(&o.label(), o, n, &mut d.changes);
                }
                None => d.only_old.push(o.label()),
            }
        }
        for n in news {
            if !olds.iter().any(|o| o.seed == n.seed) {
                d.only_new.push(n.label());
            }
        }
        compare_seeds(campaign, olds, news, &mut d.changes);
    }
    for (campaign, news) in &new_c {
        if !old_c.contains_key(campaign) {
            d.only_new.extend(news.iter().map(RunResult::label));
        }
    }
    d
}

fn compare_pair(scope: &str, o: &RunResult, n: &RunResult, changes: &mut Vec<Change>) {
    let mut put = |direction, what: String, guarantee| {
        changes.push(Change {
            scope: scope.to_string(),
            direction,
            what,
            guarantee,
        })
    };
    let claimed = o.claim().is_some() && o.claim() == n.claim();
    if claimed {
        let claim = o.claim().unwrap_or("?");
        match (o.claim_holds(), n.claim_holds()) {
            (Some(true), Some(false)) => put(
                Direction::Weaker,
                format!("claim {claim} held, now VIOLATED ({})", violations(n)),
                true,
            ),
            (Some(false), Some(true)) => put(
                Direction::Stronger,
                format!("claim {claim} was violated ({}), now holds", violations(o)),
                false,
            ),
            _ => {}
        }
    }
    let (os, ns) = (observed_set(o.observed()), observed_set(n.observed()));
    if os != ns {
        let lost: Vec<&str> = os.difference(&ns).copied().collect();
        let gained: Vec<&str> = ns.difference(&os).copied().collect();
        let moved = format!("observed {} → {}", o.observed(), n.observed());
        if !lost.is_empty() {
            // Without a claim, the observed guarantee is what the run is judged by.
            put(
                Direction::Weaker,
                format!("{moved}: no longer {}", lost.join(", ")),
                !claimed,
            );
        }
        if !gained.is_empty() {
            put(
                Direction::Stronger,
                format!("{moved}: now {}", gained.join(", ")),
                false,
            );
        }
    }
    for kind in ANOMALIES {
        let (a, b) = (o.count(kind), n.count(kind));
        let name = kind.replace('_', " ");
        if a == 0 && b > 0 {
            put(Direction::Weaker, format!("{name}: 0 → {b}"), false);
        } else if a > 0 && b == 0 {
            put(Direction::Stronger, format!("{name}: {a} → 0"), false);
        }
    }
    let (og, ng) = (o.grade(), n.grade());
    if grade_rank(ng) != grade_rank(og) {
        let direction = match grade_rank(ng) < grade_rank(og) {
            true => Direction::Weaker,
            false => Direction::Stronger,
        };
        let why = n.verdict["evidence"]["reasons"]
            .as_array()
            .and_then(|r| r.first())
            .and_then(Value::as_str)
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        put(direction, format!("evidence {og} → {ng}{why}"), false);
    }
}

fn violations(r: &RunResult) -> String {
    let v: Vec<&str> = r.verdict["violations"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match v.is_empty() {
        true => ANOMALIES
            .iter()
            .filter(|k| r.count(k) > 0)
            .map(|k| format!("{} {}", k.replace('_', " "), r.count(k)))
            .collect::<Vec<_>>()
            .join(", "),
        false => v.join("; "),
    }
}

/// Over a campaign's seeds: claims held, and counts and throughput beyond the old spread.
fn compare_seeds(campaign: &str, olds: &[RunResult], news: &[RunResult], changes: &mut Vec<Change>) {
    if olds.len() < 2 && news.len() < 2 {
        // One run each side: the pair says it all.
        return;
    }
    let scope = format!("{campaign} ({} vs {} seeds)", olds.len(), news.len());
    let mut put = |direction, what: String| {
        changes.push(Change {
            scope: scope.clone(),
            direction,
            what,
            guarantee: false,
        })
    };
    let held = |runs: &[RunResult]| runs.iter().filter(|r| r.claim_holds() == Some(true)).count();
    let (oh, nh) = (held(olds), held(news));
    let share = |h: usize, n: usize| h as f64 / n as f64;
    if olds.iter().all(|r| r.claim().is_some()) && (share(oh, olds.len()) - share(nh, news.len())).abs() > f64::EPSILON
    {
        let direction = match share(nh, news.len()) < share(oh, olds.len()) {
            true => Direction::Weaker,
            false => Direction::Stronger,
        };
        put(
            direction,
            format!("claim held in {oh} of {} runs, now {nh} of {}", olds.len(), news.len()),
        );
    }
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len().max(1) as f64;
    for kind in ANOMALIES {
        let ov: Vec<f64> = olds.iter().map(|r| r.count(kind) as f64).collect();
        let nv: Vec<f64> = news.iter().map(|r| r.count(kind) as f64).collect();
        let (lo, hi) = spread(&ov);
        let m = mean(&nv);
        // Appearing from nothing is said per pair; here, magnitudes beyond the old spread.
        if hi > 0.0 && m > hi {
            put(
                Direction::Weaker,
                format!(
                    "{} rose: mean {} → {} (old seeds {}–{})",
                    kind.replace('_', " "),
                    fmt_num(mean(&ov)),
                    fmt_num(m),
                    fmt_num(lo),
                    fmt_num(hi)
                ),
            );
        } else if m < lo {
            put(
                Direction::Stronger,
                format!(
                    "{} fell: mean {} → {} (old seeds {}–{})",
                    kind.replace('_', " "),
                    fmt_num(mean(&ov)),
                    fmt_num(m),
                    fmt_num(lo),
                    fmt_num(hi)
                ),
            );
        }
    }
    compare_latency(olds, news, &mut put);
    if let Some(m) = Moved::of(olds, news, RunResult::throughput) {
        let direction = match m.new < m.old {
            true => Direction::Weaker,
            false => Direction::Stronger,
        };
        put(
            direction,
            format!(
                "throughput {} → {} acknowledged sends/s ({:.2}×; old seeds {}–{})",
                fmt_num(m.old),
                fmt_num(m.new),
                m.new / m.old,
                fmt_num(m.lo),
                fmt_num(m.hi)
            ),
        );
    }
}

/// Latency percentiles over seeds: a new mean beyond the old seeds' spread (or ×1.25 with one
/// old seed) moved; higher is weaker.
fn compare_latency(olds: &[RunResult], news: &[RunResult], put: &mut dyn FnMut(Direction, String)) {
    for key in ["p50_ms", "p99_ms"] {
        let Some(m) = Moved::of(olds, news, |r| r.latency(key)) else {
            continue;
        };
        let direction = match m.new > m.old {
            true => Direction::Weaker,
            false => Direction::Stronger,
        };
        put(
            direction,
            format!(
                "latency {} {} → {} ms ({:.2}×; old seeds {}–{} ms)",
                key.trim_end_matches("_ms"),
                fmt_num(m.old),
                fmt_num(m.new),
                m.new / m.old,
                fmt_num(m.lo),
                fmt_num(m.hi)
            ),
        );
    }
}

/// A measure whose mean over the new runs left the old runs' spread (with one old run: beyond
/// ×[`SINGLE_SEED_RATIO`] either way).
struct Moved {
    old: f64,
    new: f64,
    lo: f64,
    hi: f64,
}

impl Moved {
    fn of(olds: &[RunResult], news: &[RunResult], measure: impl Fn(&RunResult) -> Option<f64>) -> Option<Moved> {
        let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len().max(1) as f64;
        let ov: Vec<f64> = olds.iter().filter_map(&measure).collect();
        let nv: Vec<f64> = news.iter().filter_map(&measure).collect();
        if ov.is_empty() || nv.is_empty() {
            return None;
        }
        let (old, new) = (mean(&ov), mean(&nv));
        let (lo, hi) = match ov.len() {
            1 => (old / SINGLE_SEED_RATIO, old * SINGLE_SEED_RATIO),
            _ => spread(&ov),
        };
        (new < lo || new > hi).then_some(Moved { old, new, lo, hi })
    }
}

fn spread(xs: &[f64]) -> (f64, f64) {
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

fn fmt_num(x: f64) -> String {
    if x.fract().abs() < 1e-9 || x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// The diff for a person.
pub fn human(d: &Diff, old: &Path, new: &Path) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ackcheck diff: {} run(s) in {} vs {} in {}; {} pair(s) compared",
        d.old_runs,
        old.display(),
        d.new_runs,
        new.display(),
        d.pairs
    );
    if !d.old_brokers.is_empty() || !d.new_brokers.is_empty() {
        let list = |set: &BTreeSet<String>| match set.is_empty() {
            true => "(not recorded)".to_string(),
            false => set.iter().cloned().collect::<Vec<_>>().join(", "),
        };
        let _ = writeln!(out, "brokers: {} → {}", list(&d.old_brokers), list(&d.new_brokers));
    }
    for (direction, title) in [(Direction::Weaker, "WEAKER"), (Direction::Stronger, "STRONGER")] {
        let lines: Vec<&Change> = d.changes.iter().filter(|c| c.direction == direction).collect();
        if lines.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{title}");
        for c in lines {
            let mark = if c.guarantee { "  ✗ " } else { "  - " };
            let _ = writeln!(out, "{mark}{}: {}", c.scope, c.what);
        }
    }
    if d.changes.is_empty() {
        let _ = writeln!(
            out,
            "\nno difference: the same claims held, the same guarantees observed, the same kinds of anomaly, the same evidence grades"
        );
    }
    for (side, runs) in [("OLD", &d.only_old), ("NEW", &d.only_new)] {
        if !runs.is_empty() {
            let _ = writeln!(out, "\nonly in {side}: {}", runs.join(", "));
        }
    }
    let weakened: Vec<&Change> = d.changes.iter().filter(|c| c.guarantee).collect();
    let _ = writeln!(out);
    match weakened.is_empty() {
        true => {
            let _ = writeln!(out, "no guarantee weakened");
        }
        false => {
            let _ = writeln!(
                out,
                "guarantee weakened in {} run(s): {}",
                weakened.len(),
                weakened.iter().map(|c| c.scope.as_str()).collect::<Vec<_>>().join(", ")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(campaign: &str, seed: u64, verdict: Value) -> RunResult {
        RunResult {
            campaign: campaign.into(),
            seed: Some(seed),
            source: PathBuf::from("verdict.json"),
            verdict,
            broker: None,
        }
    }

    fn held(dup: u64, grade: &str, acked: u64) -> Value {
        json!({"verdict": "at-least-once", "claim": "at-least-once", "claim_holds": true, "violations": [],
            "counts": {"acknowledged": acked, "duplicated": dup, "lost": 0},
            "evidence": {"grade": grade, "run_phase": 60_000_000_000u64, "reasons": []}})
    }

    fn violated(lost: u64) -> Value {
        json!({"verdict": "no-guarantee", "claim": "at-least-once", "claim_holds": false,
            "violations": [format!("{lost} acknowledged messages lost")],
            "counts": {"acknowledged": 6000, "duplicated": 3, "lost": lost},
            "evidence": {"grade": "strong", "run_phase": 60_000_000_000u64, "reasons": []}})
    }

    #[test]
    fn a_matrix_cell_without_its_history_is_named_by_its_directory_and_campaign_file() {
        let dir = tempfile::tempdir().unwrap();
        let cell = dir.path().join("cells").join("kafka-3node-txn-seed2");
        std::fs::create_dir_all(&cell).unwrap();
        std::fs::create_dir_all(dir.path().join("campaigns")).unwrap();
        std::fs::write(
            cell.join("verdict.json"),
            json!({"verdict": "exactly-once", "claim_holds": true}).to_string(),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("campaigns").join("kafka-3node-txn-seed2.toml"),
            "broker = \"kafka\"\nversion = \"3.9.1\"\nmode = \"exactly-once\"\n",
        )
        .unwrap();
        let runs = load(dir.path()).unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].campaign, "kafka-3node-txn");
        assert_eq!(runs[0].seed, Some(2));
        assert_eq!(runs[0].broker.as_deref(), Some("kafka 3.9.1"));
    }

    #[test]
    fn the_brokers_and_versions_of_each_side_are_shown() {
        let mut old = run("kafka-at-least-once", 1, held(3, "strong", 100));
        old.broker = Some("kafka 3.9.1".into());
        let mut new = run("kafka-at-least-once", 1, held(3, "strong", 100));
        new.broker = Some("kafka 4.1.1".into());
        let d = diff(&[old], &[new]);
        let text = human(&d, Path::new("old"), Path::new("new"));
        assert!(text.contains("brokers: kafka 3.9.1 → kafka 4.1.1"), "{text}");
    }

    #[test]
    fn a_claim_that_held_and_now_fails_is_a_weakened_guarantee() {
        let d = diff(&[run("k", 1, held(10, "strong", 6000))], &[run("k", 1, violated(12))]);
        assert!(d.weakened());
        assert_eq!(d.exit_code(), 1);
        let c = d.changes.iter().find(|c| c.guarantee).expect("the weakened claim");
        assert_eq!(c.scope, "k seed 1");
        assert!(
            c.what.contains("held, now VIOLATED (12 acknowledged messages lost)"),
            "{}",
            c.what
        );
        assert!(d.changes.iter().any(|c| c.what == "lost: 0 → 12" && !c.guarantee));
        // The other way round it is stronger, and passes.
        let back = diff(&[run("k", 1, violated(12))], &[run("k", 1, held(10, "strong", 6000))]);
        assert_eq!(back.exit_code(), 0);
        assert!(back
            .changes
            .iter()
            .any(|c| c.direction == Direction::Stronger && c.what.contains("now holds")));
    }

    #[test]
    fn identical_runs_differ_in_nothing_and_evidence_alone_does_not_fail() {
        let same = diff(
            &[run("k", 1, held(10, "strong", 6000))],
            &[run("k", 1, held(10, "strong", 6000))],
        );
        assert!(same.changes.is_empty());
        assert_eq!(same.exit_code(), 0);
        let weaker = diff(
            &[run("k", 1, held(10, "strong", 6000))],
            &[run("k", 1, held(10, "weak", 6000))],
        );
        assert_eq!(weaker.exit_code(), 0, "evidence is about the run, not the broker");
        assert_eq!(weaker.changes[0].what, "evidence strong → weak");
    }

    #[test]
    fn without_a_claim_a_lost_observed_guarantee_fails() {
        let eo = json!({"verdict": "exactly-once", "counts": {}, "evidence": {"grade": "strong"}});
        let alo = json!({"verdict": "at-least-once", "counts": {"duplicated": 4}, "evidence": {"grade": "strong"}});
        let d = diff(&[run("k", 1, eo)], &[run("k", 1, alo)]);
        assert_eq!(d.exit_code(), 1);
        assert!(d.changes[0].what.contains("no longer at-most-once"), "{:?}", d.changes);
    }

    #[test]
    fn latency_beyond_the_old_seeds_is_weaker() {
        let with_p99 = |seed, p99: f64| {
            let mut v = held(10, "strong", 6000);
            v["performance"] = json!({"acknowledged_per_second": 100.0,
                "latency": {"messages": 6000, "p50_ms": 10.0, "p99_ms": p99, "max_ms": p99}});
            run("k", seed, v)
        };
        let d = diff(
            &[with_p99(1, 200.0), with_p99(2, 260.0)],
            &[with_p99(1, 900.0), with_p99(2, 1100.0)],
        );
        let what: Vec<&str> = d.changes.iter().map(|c| c.what.as_str()).collect();
        assert!(
            what.contains(&"latency p99 230 → 1000 ms (4.35×; old seeds 200–260 ms)"),
            "{what:?}"
        );
        assert!(
            !what.iter().any(|w| w.starts_with("latency p50")),
            "p50 did not move: {what:?}"
        );
        assert!(!what.iter().any(|w| w.starts_with("throughput")), "{what:?}");
        assert_eq!(d.exit_code(), 0);
    }

    #[test]
    fn seeds_pair_by_campaign_and_magnitudes_are_judged_against_the_old_spread() {
        let old = [
            run("k", 1, held(10, "strong", 6000)),
            run("k", 2, held(14, "strong", 6600)),
            run("k", 3, held(12, "strong", 6300)),
            run("gone", 1, held(1, "strong", 100)),
        ];
        let new = [
            run("k", 1, held(40, "strong", 3000)),
            run("k", 2, held(44, "strong", 3100)),
            run("k", 4, held(42, "strong", 2900)),
        ];
        let d = diff(&old, &new);
        assert_eq!(d.pairs, 2);
        assert_eq!(d.only_old, ["gone seed 1", "k seed 3"]);
        assert_eq!(d.only_new, ["k seed 4"]);
        assert_eq!(d.exit_code(), 0, "no claim failed");
        let what: Vec<&str> = d.changes.iter().map(|c| c.what.as_str()).collect();
        assert!(
            what.iter()
                .any(|w| w.starts_with("duplicated rose: mean 12 → 42 (old seeds 10–14)")),
            "{what:?}"
        );
        assert!(
            what.iter()
                .any(|w| w.starts_with("throughput 105 → 50 acknowledged sends/s")),
            "{what:?}"
        );
        let text = human(&d, Path::new("old"), Path::new("new"));
        assert!(
            text.contains("WEAKER") && text.contains("no guarantee weakened"),
            "{text}"
        );
    }
}
