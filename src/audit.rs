//! `ackcheck audit`: the user's own client configuration under every fault family the broker
//! takes, one short campaign each, and one table of what held.
//!
//! The user brings their configuration as they already have it (Java-style `.properties` files
//! for Kafka's producer, consumer and topic); the audit writes one campaign per fault family
//! (no faults, lost acknowledgements, connection resets, a killed node, a paused node, consumer
//! crashes) into `DIR/campaigns/`, runs each into `DIR/<family>/` exactly as `ackcheck run`
//! would, and reads back each verdict. Nothing here judges anything itself: the checker does,
//! per run, and the table says which claim held where, with the first proof of each violation.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::broker::BrokerKind;
use crate::checker::evidence::Grade as EvidenceGrade;
use crate::history::Guarantee;

/// What `ackcheck audit` was asked.
#[derive(Debug, Clone)]
pub struct AuditRequest {
    pub broker: BrokerKind,
    /// `.properties` files: producer, consumer, topic (Kafka's vocabulary).
    pub producer: Option<PathBuf>,
    pub consumer: Option<PathBuf>,
    pub topic: Option<PathBuf>,
    /// Start from the client library's defaults rather than ackcheck's preset.
    pub library_defaults: bool,
    pub claim: Guarantee,
    pub nodes: usize,
    pub duration: Duration,
    pub seed: u64,
    pub out: PathBuf,
    /// Only these families (by name), in the suite's order; `None` = every family.
    pub families: Option<Vec<String>>,
}

/// Why an audit could not start (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{file}: {message}; write one `key=value` per line, as a Java .properties file")]
    Properties { file: String, message: String },
    #[error(transparent)]
    Campaign(#[from] crate::campaign::CampaignError),
    #[error("`{name}` is not a fault family ackcheck audits on {broker}; choose from {available}")]
    UnknownFamily {
        name: String,
        broker: String,
        available: String,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// One fault family of the suite.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// Its name, the name of its campaign file and run directory.
    pub name: &'static str,
    /// What it does, for the table.
    pub what: &'static str,
    /// The campaign's `[nemesis]` faults.
    faults: &'static [&'static str],
    /// Consumer crashes (mean seconds between them), or none.
    crashes: Option<f64>,
}

impl Family {
    /// It injects something (the no-faults baseline does not).
    pub fn tries_something(&self) -> bool {
        !self.faults.is_empty() || self.crashes.is_some()
    }
}

/// The families a broker takes: the fault kinds its driver does not refuse, and consumer
/// crashes. Faults target the leader where the broker has leaders and there is more than one
/// node.
pub fn families(broker: BrokerKind) -> Vec<Family> {
    let all = [
        Family {
            name: "no-faults",
            what: "no fault at all",
            faults: &[],
            crashes: None,
        },
        Family {
            name: "lose-acks",
            what: "replies from a node lost (requests still arrive)",
            faults: &["lose-acks"],
            crashes: None,
        },
        Family {
            name: "reset",
            what: "client connections to a node reset",
            faults: &["reset"],
            crashes: None,
        },
        Family {
            name: "kill",
            what: "a node killed (-9) and restarted on its data",
            faults: &["kill"],
            crashes: None,
        },
        Family {
            name: "pause",
            what: "a node paused (SIGSTOP) and resumed",
            faults: &["pause"],
            crashes: None,
        },
        Family {
            name: "consumer-crashes",
            what: "consumers crash before and after processing a batch",
            faults: &[],
            crashes: Some(4.0),
        },
    ];
    let refused = broker.capabilities().refused_faults;
    all.into_iter()
        .filter(|f| f.faults.iter().all(|k| !refused.iter().any(|(r, _)| r == k)))
        .collect()
}

/// The families `req` asks for, in the suite's order: every one the broker takes, or those
/// named (an unknown name is an error listing the others).
pub fn chosen_families(req: &AuditRequest) -> Result<Vec<Family>, AuditError> {
    let all = families(req.broker);
    let Some(names) = &req.families else {
        return Ok(all);
    };
    for name in names {
        if !all.iter().any(|f| f.name == name) {
            return Err(AuditError::UnknownFamily {
                name: name.clone(),
                broker: req.broker.to_string(),
                available: all.iter().map(|f| f.name).collect::<Vec<_>>().join(", "),
            });
        }
    }
    Ok(all.into_iter().filter(|f| names.iter().any(|n| n == f.name)).collect())
}

/// A Java `.properties` file as a TOML table of strings (keys as written).
pub fn read_properties(path: &Path) -> Result<toml::Table, AuditError> {
    let bad = |message: String| AuditError::Properties {
        file: path.display().to_string(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| bad(format!("cannot be read ({e})")))?;
    let map = java_properties::read(std::io::BufReader::new(file)).map_err(|e| bad(e.to_string()))?;
    Ok(map.into_iter().map(|(k, v)| (k, toml::Value::String(v))).collect())
}

/// The campaign of one family, as TOML text (checked by loading it like any campaign file).
pub fn campaign_text(req: &AuditRequest, family: &Family) -> Result<String, AuditError> {
    let read = |p: &Option<PathBuf>| p.as_deref().map(read_properties).transpose();
    let (producer, consumer, topic) = (read(&req.producer)?, read(&req.consumer)?, read(&req.topic)?);
    let leader = req.nodes > 1 && req.broker.capabilities().leaders;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# ackcheck audit: {} under {}.\nname = \"audit-{}\"\nbroker = \"{}\"\nnodes = {}\nmode = \"{}\"\nduration = \"{}s\"\nseed = {}\n",
        req.broker,
        family.what,
        family.name,
        req.broker,
        req.nodes,
        req.claim.name(),
        req.duration.as_secs_f64(),
        req.seed
    );
    let mut client = toml::Table::new();
    if req.library_defaults {
        client.insert("defaults".into(), "library".into());
    }
    if let Some(p) = producer {
        client.insert("producer".into(), p.into());
    }
    if let Some(c) = consumer {
        client.insert("consumer".into(), c.into());
    }
    let mut tables = toml::Table::new();
    if !client.is_empty() {
        tables.insert("client".into(), client.into());
    }
    if let Some(t) = topic {
        tables.insert("dest".into(), t.into());
    }
    let mut workload = toml::Table::new();
    workload.insert("kind".into(), "queue".into());
    workload.insert("partitions".into(), 4.into());
    workload.insert("producers".into(), 2.into());
    workload.insert("consumers".into(), 3.into());
    workload.insert("rate".into(), 400.into());
    tables.insert("workload".into(), workload.into());
    if let Some(interval) = family.crashes {
        let mut crashes = toml::Table::new();
        crashes.insert("interval".into(), interval.into());
        tables.insert("crashes".into(), crashes.into());
    }
    if !family.faults.is_empty() {
        let mut nemesis = toml::Table::new();
        let faults: Vec<toml::Value> = family.faults.iter().map(|&f| f.into()).collect();
        nemesis.insert("faults".into(), faults.into());
        nemesis.insert("interval".into(), 3.0.into());
        nemesis.insert("duration".into(), 4.0.into());
        if leader {
            nemesis.insert("target".into(), "leader".into());
        }
        tables.insert("nemesis".into(), nemesis.into());
    }
    text.push_str(&toml::to_string(&tables).unwrap_or_default());
    crate::campaign::Campaign::parse(&format!("audit campaign {}", family.name), &text)?;
    Ok(text)
}

/// Write every family's campaign into `DIR/campaigns/`; returns (family, file).
pub fn write_campaigns(req: &AuditRequest) -> Result<Vec<(Family, PathBuf)>, AuditError> {
    let dir = req.out.join("campaigns");
    std::fs::create_dir_all(&dir).map_err(|source| AuditError::Write {
        path: dir.display().to_string(),
        source,
    })?;
    let mut written = Vec::new();
    for family in chosen_families(req)? {
        let text = campaign_text(req, &family)?;
        let path = dir.join(format!("{}.toml", family.name));
        std::fs::write(&path, text).map_err(|source| AuditError::Write {
            path: path.display().to_string(),
            source,
        })?;
        written.push((family, path));
    }
    Ok(written)
}

/// One row of the audit's table, read from a run's `verdict.json`.
#[derive(Debug, Clone)]
pub struct Row {
    pub family: Family,
    /// The observed guarantee (`at-least-once`), or why there is none.
    pub observed: String,
    pub claim_holds: Option<bool>,
    pub lost: u64,
    pub duplicated: u64,
    pub stored_twice: u64,
    pub evidence: String,
    /// The first proof of a violation: a message, what happened, and the event indices.
    pub proof: Option<String>,
}

impl Row {
    /// The row of `family` from its run's verdict (`None`: the run failed).
    pub fn from_verdict(family: Family, verdict: Option<&Value>) -> Row {
        let Some(v) = verdict else {
            return Row {
                family,
                observed: "run failed".into(),
                claim_holds: None,
                lost: 0,
                duplicated: 0,
                stored_twice: 0,
                evidence: "-".into(),
                proof: None,
            };
        };
        let count = |k: &str| v["counts"][k].as_u64().unwrap_or(0);
        let claim_holds = v["claim_holds"].as_bool();
        let proof = (claim_holds == Some(false)).then(|| first_proof(v)).flatten();
        Row {
            family,
            observed: v["verdict"].as_str().unwrap_or("?").to_string(),
            claim_holds,
            lost: count("lost"),
            duplicated: count("duplicated"),
            stored_twice: count("stored_twice"),
            evidence: v["evidence"]["grade"].as_str().unwrap_or("?").to_string(),
            proof,
        }
    }
}

impl Row {
    /// Its evidence is weaker than `min` (an unreadable grade counts as none).
    pub fn weaker_than(&self, min: Option<EvidenceGrade>) -> bool {
        let Some(min) = min else { return false };
        self.evidence.parse::<EvidenceGrade>().map_or(true, |g| g < min)
    }
}

/// The first example of the kinds that violate claims, most serious first.
fn first_proof(v: &Value) -> Option<String> {
    for kind in [
        "lost",
        "unexpected",
        "torn",
        "duplicated",
        "stored_twice",
        "order_violations",
    ] {
        let Some(example) = v["examples"][kind].as_array().and_then(|a| a.first()) else {
            continue;
        };
        let events: Vec<String> = example["events"]
            .as_array()
            .map(|es| {
                es.iter()
                    .map(|e| {
                        format!(
                            "#{} {}{}",
                            e["index"],
                            e["what"].as_str().unwrap_or(""),
                            e["pos"].as_str().map(|p| format!(" at {p}")).unwrap_or_default()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        return Some(format!(
            "{} {}: {} ({})",
            kind.replace('_', " "),
            example["message"].as_str().unwrap_or("?"),
            example["explanation"].as_str().unwrap_or(""),
            events.join("; ")
        ));
    }
    None
}

/// The table and the one-line answer.
pub fn summary(claim: Guarantee, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<17} {:<15} {:<11} {:>6} {:>10} {:>12}  {:<8}",
        "fault", "observed", "claim", "lost", "duplicated", "stored twice", "evidence"
    );
    for r in rows {
        let holds = match r.claim_holds {
            Some(true) => "holds",
            Some(false) => "VIOLATED",
            None => "not judged",
        };
        let _ = writeln!(
            out,
            "{:<17} {:<15} {:<11} {:>6} {:>10} {:>12}  {:<8}",
            r.family.name, r.observed, holds, r.lost, r.duplicated, r.stored_twice, r.evidence
        );
    }
    let violated: Vec<&Row> = rows.iter().filter(|r| r.claim_holds == Some(false)).collect();
    let unjudged: Vec<&Row> = rows.iter().filter(|r| r.claim_holds.is_none()).collect();
    let _ = writeln!(out);
    if violated.is_empty() && unjudged.is_empty() {
        // The no-faults baseline has no evidence grade to reach (nothing was tried).
        let weak: Vec<&str> = rows
            .iter()
            .filter(|r| r.evidence != "strong" && r.family.tries_something())
            .map(|r| r.family.name)
            .collect();
        let _ = write!(out, "{claim} holds under every fault tried");
        if weak.is_empty() {
            let _ = writeln!(out, ", with strong evidence.");
        } else {
            let _ = writeln!(
                out,
                "; evidence weak under: {} (see each run's verdict).",
                weak.join(", ")
            );
        }
    } else {
        for r in &violated {
            let _ = writeln!(
                out,
                "{claim} does not hold under {} ({}): {}",
                r.family.name,
                r.family.what,
                r.proof.as_deref().unwrap_or("see its verdict")
            );
        }
        for r in &unjudged {
            let _ = writeln!(out, "{}: the run failed; see {}/run.log", r.family.name, r.family.name);
        }
    }
    out
}

/// 0 every claim held, 1 some claim was violated, 4 a run failed (nothing judged there), 3
/// every claim held but some family's evidence is weaker than `min_evidence` (the no-faults
/// baseline tries nothing, so it has no grade to reach).
pub fn exit_code(rows: &[Row], min_evidence: Option<EvidenceGrade>) -> i32 {
    if rows.iter().any(|r| r.claim_holds == Some(false)) {
        1
    } else if rows.iter().any(|r| r.claim_holds.is_none()) {
        4
    } else if rows
        .iter()
        .any(|r| r.family.tries_something() && r.weaker_than(min_evidence))
    {
        3
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(dir: &Path) -> AuditRequest {
        AuditRequest {
            broker: crate::brokers::by_name("kafka").expect("kafka is built in"),
            producer: None,
            consumer: None,
            topic: None,
            library_defaults: false,
            claim: Guarantee::AtLeastOnce,
            nodes: 3,
            duration: Duration::from_secs(30),
            seed: 1,
            out: dir.to_path_buf(),
            families: None,
        }
    }

    #[test]
    fn properties_files_become_client_tables_of_every_campaign() {
        let dir = tempfile::tempdir().unwrap();
        let producer = dir.path().join("producer.properties");
        std::fs::write(&producer, "# ours\nacks=1\nenable.idempotence = false\nlinger.ms: 20\n").unwrap();
        let mut req = request(dir.path());
        req.producer = Some(producer);
        let written = write_campaigns(&req).expect("campaigns");
        let names: Vec<&str> = written.iter().map(|(f, _)| f.name).collect();
        assert_eq!(
            names,
            ["no-faults", "lose-acks", "reset", "kill", "pause", "consumer-crashes"]
        );
        for (family, path) in &written {
            let c = crate::campaign::Campaign::load(path).expect("each campaign loads");
            assert_eq!(c.client_settings.producer.get("acks"), Some("1"), "{}", family.name);
            assert_eq!(c.client_settings.producer.get("linger.ms"), Some("20"));
            assert_eq!(c.nodes, 3);
        }
        let kill = crate::campaign::Campaign::load(&written[3].1).unwrap();
        assert_eq!(
            kill.nemesis.target,
            crate::faults::Target::Leader,
            "3 nodes: the leader"
        );
    }

    #[test]
    fn a_bad_property_stops_the_audit_before_anything_runs() {
        let dir = tempfile::tempdir().unwrap();
        let consumer = dir.path().join("consumer.properties");
        std::fs::write(&consumer, "enable.auto.comit=true\n").unwrap();
        let mut req = request(dir.path());
        req.consumer = Some(consumer);
        let e = write_campaigns(&req).unwrap_err().to_string();
        assert!(
            e.contains("enable.auto.comit") && e.contains("No such configuration property"),
            "{e}"
        );
    }

    #[test]
    fn the_table_answers_in_one_line_with_the_first_proof() {
        let held = serde_json::json!({"verdict": "at-least-once", "claim_holds": true,
            "counts": {"duplicated": 3}, "evidence": {"grade": "strong"}});
        let lost = serde_json::json!({"verdict": "no-guarantee", "claim_holds": false,
            "counts": {"lost": 2}, "evidence": {"grade": "strong"},
            "examples": {"lost": [{"message": "p0-7", "explanation": "acknowledged, never delivered",
                "events": [{"index": 12, "what": "send ok", "pos": "queue 0@7"}]}]}});
        let fams = families(crate::brokers::by_name("kafka").unwrap());
        let rows = vec![
            Row::from_verdict(fams[0].clone(), Some(&held)),
            Row::from_verdict(fams[3].clone(), Some(&lost)),
        ];
        let text = summary(Guarantee::AtLeastOnce, &rows);
        assert!(text.contains("at-least-once does not hold under kill"), "{text}");
        assert!(
            text.contains("lost p0-7") && text.contains("#12 send ok at queue 0@7"),
            "{text}"
        );
        assert_eq!(exit_code(&rows, None), 1);
        assert_eq!(exit_code(&rows[..1], None), 0);
        assert!(
            summary(Guarantee::AtLeastOnce, &rows[..1]).contains("holds under every fault tried, with strong evidence")
        );
    }
}
