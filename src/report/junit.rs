//! JUnit XML for CI servers: one `<testsuite>` per campaign, one `<testcase>` per claim (per
//! claimed group when the claim covers several), a `<failure>` carrying the violation and its
//! first proofs. The output validates against the schema of Jenkins' xUnit plugin
//! (`junit-10.xsd`), which GitLab reads too: `<testsuites>` carries only name, tests, failures,
//! errors and time, and `<testcase>` only name, classname and time.
//!
//! | verdict | test case |
//! |---|---|
//! | claim holds | passes; the evidence grade and its reasons in `<system-out>` |
//! | claim holds, evidence weaker than `--min-evidence` | `<failure type="weak-evidence">` |
//! | claim violated | `<failure type="claim-violated">`: the violations, then the first proofs |
//! | claim not judged (nothing acknowledged or delivered) | `<error type="not-judged">` |
//! | no claim | passes, named after the observed guarantee |

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

use super::ReportError;
use crate::checker::verdict::Counts;
use crate::checker::verdict::Example;
use crate::checker::Verdict;
use crate::history::{Guarantee, Header};

/// Proofs per anomaly kind in a failure's text (the HTML report and `check` have more).
const PROOFS_PER_KIND: usize = 3;

/// One campaign's verdict, with what names it in the CI server's view.
#[derive(Debug, Clone)]
pub struct Suite<'a> {
    /// The campaign's name (the header's `campaign`), else the history's file name.
    pub name: String,
    /// Shown by CI servers beside the suite: broker, seed, run, history, …
    pub properties: Vec<(String, String)>,
    pub verdict: &'a Verdict,
}

impl<'a> Suite<'a> {
    /// A suite named and described from the history's header; `fallback` names it when the
    /// header names no campaign.
    pub fn new(header: Option<&Header>, fallback: &str, history: Option<&Path>, verdict: &'a Verdict) -> Suite<'a> {
        let extra = |key: &str| {
            header
                .and_then(|h| h.extra.get(key))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let name = extra("campaign").unwrap_or_else(|| fallback.to_string());
        let mut properties = Vec::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                properties.push((k.to_string(), v));
            }
        };
        put("broker", header.and_then(|h| h.broker.clone()));
        put("seed", header.and_then(|h| h.seed).map(|s| s.to_string()));
        put("run", extra("run"));
        put("claim", verdict.claim.map(|c| c.to_string()));
        put("claim_groups", verdict.claim_groups.as_ref().map(|g| g.join(",")));
        put("observed", Some(verdict.verdict.name().to_string()));
        put("evidence", Some(verdict.evidence.grade.to_string()));
        put("history", history.map(|p| p.display().to_string()));
        Suite {
            name,
            properties,
            verdict,
        }
    }
}

/// What a test case ends as.
enum Outcome {
    Passed,
    Failure {
        kind: &'static str,
        message: String,
        text: String,
    },
    Error {
        kind: &'static str,
        message: String,
    },
}

struct Case {
    name: String,
    outcome: Outcome,
    system_out: String,
}

/// Kinds of proof that violate `claim` (those a failure shows).
fn violating_kinds(claim: Guarantee) -> &'static [&'static str] {
    match claim {
        Guarantee::AtMostOnce => &["duplicated", "unexpected", "inconsistent-positions"],
        Guarantee::AtLeastOnce => &["lost", "unexpected", "inconsistent-positions"],
        Guarantee::ExactlyOnce => &[
            "lost",
            "duplicated",
            "failed-delivered",
            "aborted-read",
            "torn",
            "unexpected",
            "inconsistent-positions",
        ],
    }
}

fn evidence_text(v: &Verdict) -> String {
    let e = &v.evidence;
    let mut out = format!(
        "observed: {}\nevidence: {} ({} of {} faults started, {} of {} client crashes, {} sends, {} indeterminate)\n",
        v.verdict.name(),
        e.grade,
        e.faults_started,
        e.faults_scheduled,
        e.crashes,
        e.crashes_scheduled,
        e.sends,
        e.indeterminate_sends
    );
    for r in &e.reasons {
        let _ = writeln!(out, "  - {r}");
    }
    out
}

fn proof_text(kind: &str, ex: &Example) -> String {
    let group = ex.group.as_ref().map_or(String::new(), |g| format!(" ({g})"));
    let mut out = format!("{kind}: {}{group}: {}\n", ex.message, ex.explanation);
    for ev in &ex.events {
        let at = ev.pos.as_ref().map_or(String::new(), |p| format!(" at {p}"));
        let _ = writeln!(
            out,
            "    event #{} t={:.3} s {}{at}",
            ev.index,
            ev.time as f64 / 1e9,
            ev.what
        );
    }
    out
}

/// The test case of a claim over `group` (`None`: every claimed group at once).
fn case(v: &Verdict, claim: Guarantee, group: Option<&str>) -> Case {
    let scope = group.map_or(String::new(), |g| format!(" (group {g})"));
    let name = format!("claim {claim}{scope}");
    let (holds, violations) = match group {
        None => (v.claim_holds, v.violations.clone()),
        Some(g) => {
            let gc = v.groups.get(g).cloned().unwrap_or_default();
            // Integrity anomalies belong to no group: they violate every group's claim.
            let counts = Counts {
                lost: gc.lost,
                duplicated: gc.duplicated,
                failed_delivered: gc.failed_delivered,
                torn: gc.torn,
                unexpected: v.counts.unexpected,
                inconsistent_positions: v.counts.inconsistent_positions,
                ..Counts::default()
            };
            let violations = Verdict::violations_of(claim, &counts);
            let holds = v.claim_holds.map(|_| violations.is_empty());
            (holds, violations)
        }
    };
    let system_out = evidence_text(v);
    let outcome = match holds {
        Some(false) => {
            let mut text = String::new();
            for violation in &violations {
                let _ = writeln!(text, "{violation}");
            }
            for kind in violating_kinds(claim) {
                let proofs = v
                    .examples
                    .get(*kind)
                    .into_iter()
                    .flatten()
                    .filter(|ex| group.is_none() || ex.group.is_none() || ex.group.as_deref() == group);
                for ex in proofs.take(PROOFS_PER_KIND) {
                    text.push('\n');
                    text.push_str(&proof_text(kind, ex));
                }
            }
            Outcome::Failure {
                kind: "claim-violated",
                message: format!("claim {claim}{scope} violated: {}", violations.join("; ")),
                text,
            }
        }
        Some(true) if v.evidence_too_weak() => Outcome::Failure {
            kind: "weak-evidence",
            message: format!(
                "claim {claim}{scope} holds, but the evidence is {}, weaker than the {} asked for (--min-evidence)",
                v.evidence.grade,
                v.min_evidence.map_or("?".into(), |g| g.to_string())
            ),
            text: v.evidence.reasons.join("\n"),
        },
        Some(true) => Outcome::Passed,
        None => Outcome::Error {
            kind: "not-judged",
            message: format!("claim {claim}{scope} not judged: nothing was acknowledged or nothing was delivered"),
        },
    };
    Case {
        name,
        outcome,
        system_out,
    }
}

fn cases(v: &Verdict) -> Vec<Case> {
    let Some(claim) = v.claim else {
        // Nothing claimed: the run passes (exit 0); the case records what was observed, and a
        // gate on evidence still fails it.
        let outcome = match v.evidence_too_weak() {
            true => Outcome::Failure {
                kind: "weak-evidence",
                message: format!(
                    "the evidence is {}, weaker than the {} asked for (--min-evidence)",
                    v.evidence.grade,
                    v.min_evidence.map_or("?".into(), |g| g.to_string())
                ),
                text: v.evidence.reasons.join("\n"),
            },
            false => Outcome::Passed,
        };
        return vec![Case {
            name: format!("observed {} (no claim)", v.verdict.name()),
            outcome,
            system_out: evidence_text(v),
        }];
    };
    match &v.claim_groups {
        Some(groups) if groups.len() > 1 => groups.iter().map(|g| case(v, claim, Some(g))).collect(),
        _ => vec![case(v, claim, None)],
    }
}

/// Characters XML 1.0 cannot carry (control characters from a history's strings) become U+FFFD.
fn xml_text(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => '\u{FFFD}',
            c => c,
        })
        .collect()
}

fn element<'a>(name: &'a str, attributes: &[(&str, &str)]) -> BytesStart<'a> {
    let mut tag = BytesStart::new(name);
    for (k, v) in attributes {
        tag.push_attribute((*k, xml_text(v).as_str()));
    }
    tag
}

fn text_element(w: &mut Writer<Vec<u8>>, name: &str, attributes: &[(&str, &str)], text: &str) -> io::Result<()> {
    w.write_event(Event::Start(element(name, attributes)))?;
    let text = xml_text(text);
    w.write_event(Event::Text(BytesText::new(&text)))?;
    w.write_event(Event::End(BytesEnd::new(name)))
}

/// JUnit's time attribute: seconds with a decimal point.
fn junit_time(nanos: u64) -> String {
    format!("{:.3}", nanos as f64 / 1e9)
}

fn write_suite(w: &mut Writer<Vec<u8>>, suite: &Suite, cases: &[Case]) -> io::Result<()> {
    let count = |f: fn(&Outcome) -> bool| cases.iter().filter(|c| f(&c.outcome)).count().to_string();
    let (tests, failures, errors) = (
        cases.len().to_string(),
        count(|o| matches!(o, Outcome::Failure { .. })),
        count(|o| matches!(o, Outcome::Error { .. })),
    );
    let time = junit_time(suite.verdict.evidence.run_phase);
    w.write_event(Event::Start(element(
        "testsuite",
        &[
            ("name", &suite.name),
            ("tests", &tests),
            ("failures", &failures),
            ("errors", &errors),
            ("skipped", "0"),
            ("time", &time),
        ],
    )))?;
    if !suite.properties.is_empty() {
        w.write_event(Event::Start(BytesStart::new("properties")))?;
        for (k, v) in &suite.properties {
            w.write_event(Event::Empty(element("property", &[("name", k), ("value", v)])))?;
        }
        w.write_event(Event::End(BytesEnd::new("properties")))?;
    }
    for case in cases {
        w.write_event(Event::Start(element(
            "testcase",
            &[("name", &case.name), ("classname", &suite.name), ("time", &time)],
        )))?;
        match &case.outcome {
            Outcome::Passed => {}
            Outcome::Failure { kind, message, text } => {
                text_element(w, "failure", &[("type", kind), ("message", message)], text)?;
            }
            Outcome::Error { kind, message } => {
                text_element(w, "error", &[("type", kind), ("message", message)], message)?;
            }
        }
        text_element(w, "system-out", &[], &case.system_out)?;
        w.write_event(Event::End(BytesEnd::new("testcase")))?;
    }
    // The whole terminal report, for whoever opens the suite's output.
    text_element(w, "system-out", &[], &super::human(suite.verdict))?;
    w.write_event(Event::End(BytesEnd::new("testsuite")))
}

/// A campaign whose run failed before it had a verdict (its suite is one errored case).
#[derive(Debug, Clone)]
pub struct FailedRun {
    /// The campaign's name.
    pub name: String,
    /// Why: the run's error, and where its log is.
    pub message: String,
}

/// The JUnit XML document of one or more campaigns.
pub fn render(suites: &[Suite]) -> String {
    render_all(suites, &[])
}

/// The JUnit XML document of campaigns judged (`suites`) and campaigns whose run failed.
pub fn render_all(suites: &[Suite], failed: &[FailedRun]) -> String {
    let all: Vec<Vec<Case>> = suites.iter().map(|s| cases(s.verdict)).collect();
    let total = |f: fn(&Outcome) -> bool| all.iter().flatten().filter(|c| f(&c.outcome)).count();
    let tests = (all.iter().map(Vec::len).sum::<usize>() + failed.len()).to_string();
    let failures = total(|o| matches!(o, Outcome::Failure { .. })).to_string();
    let errors = (total(|o| matches!(o, Outcome::Error { .. })) + failed.len()).to_string();
    let time = junit_time(suites.iter().map(|s| s.verdict.evidence.run_phase).sum());
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    let written: io::Result<()> = (|| {
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        w.write_event(Event::Start(element(
            "testsuites",
            &[
                ("name", "ackcheck"),
                ("tests", &tests),
                ("failures", &failures),
                ("errors", &errors),
                ("time", &time),
            ],
        )))?;
        for (suite, cases) in suites.iter().zip(&all) {
            write_suite(&mut w, suite, cases)?;
        }
        for run in failed {
            write_failed_run(&mut w, run)?;
        }
        w.write_event(Event::End(BytesEnd::new("testsuites")))
    })();
    // Writing into a Vec cannot fail; the bytes are UTF-8 because every input was a str.
    written.expect("writing XML into memory");
    let mut xml = String::from_utf8(w.into_inner()).expect("XML written from UTF-8 strings");
    xml.push('\n');
    xml
}

fn write_failed_run(w: &mut Writer<Vec<u8>>, run: &FailedRun) -> io::Result<()> {
    w.write_event(Event::Start(element(
        "testsuite",
        &[
            ("name", &run.name),
            ("tests", "1"),
            ("failures", "0"),
            ("errors", "1"),
            ("skipped", "0"),
            ("time", "0.000"),
        ],
    )))?;
    w.write_event(Event::Start(element(
        "testcase",
        &[("name", "run"), ("classname", &run.name), ("time", "0.000")],
    )))?;
    text_element(
        w,
        "error",
        &[("type", "run-failed"), ("message", &run.message)],
        &run.message,
    )?;
    w.write_event(Event::End(BytesEnd::new("testcase")))?;
    w.write_event(Event::End(BytesEnd::new("testsuite")))
}

/// The JUnit XML of runs left in directories (`runs`: suite name, run directory, the evidence
/// grade its claim needs): each run's history judged again — the checker is a function of the
/// history, so this is the run's own verdict — with `claim` over the header's, or an errored
/// suite when a run left no usable history.
pub fn write_runs(
    path: &Path,
    runs: &[(String, std::path::PathBuf, Option<crate::checker::evidence::Grade>)],
    claim: Option<Guarantee>,
) -> Result<(), ReportError> {
    let mut judged = Vec::new();
    let mut failed = Vec::new();
    for (name, dir, min_evidence) in runs {
        let history = dir.join("history.jsonl");
        let options = crate::checker::CheckOptions {
            claim,
            examples: PROOFS_PER_KIND,
            groups: None,
            min_evidence: *min_evidence,
        };
        let verdict = crate::history::reader::HistoryReader::open(&history)
            .map_err(|e| e.to_string())
            .and_then(|reader| crate::checker::check_with(reader, &options).map_err(|e| e.to_string()));
        match verdict {
            Ok(v) => judged.push((name, super::read_header(&history), history, v)),
            Err(e) => failed.push(FailedRun {
                name: name.clone(),
                message: format!("the run left no verdict ({e}); see {}", dir.join("run.log").display()),
            }),
        }
    }
    let suites: Vec<Suite> = judged
        .iter()
        .map(|(name, header, history, v)| Suite::new(header.as_ref(), name, Some(history), v))
        .collect();
    write_all(path, &suites, &failed)
}

/// Write the JUnit XML of `suites` to `path`.
pub fn write(path: &Path, suites: &[Suite]) -> Result<(), ReportError> {
    write_all(path, suites, &[])
}

/// Write the JUnit XML of judged and failed campaigns to `path`.
pub fn write_all(path: &Path, suites: &[Suite], failed: &[FailedRun]) -> Result<(), ReportError> {
    std::fs::write(path, render_all(suites, failed)).map_err(|source| ReportError::Io {
        what: "write the JUnit XML to",
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_do_not_reach_the_xml() {
        assert_eq!(xml_text("a\u{1b}[31mb\tc\n"), "a\u{FFFD}[31mb\tc\n");
    }
}
