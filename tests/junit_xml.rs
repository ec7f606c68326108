//! `ackcheck check --junit FILE`: the XML validates against the JUnit schema Jenkins' xUnit
//! plugin reads (tests/data/junit-jenkins.xsd, with xmllint), and a CI server sees what the
//! verdict says: a violated claim is a failing test case carrying its proof, weak evidence is
//! reported (a failure under --min-evidence), a claim per claimed group.

mod common;

use std::path::Path;
use std::process::Command;

use common::{ackcheck, apt_install_if_missing};
use quick_xml::events::Event;
use quick_xml::Reader;
use quick_xml::XmlVersion;

const SCHEMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/junit-jenkins.xsd");

/// One `<testcase>` as a CI server reads it.
#[derive(Debug, Default)]
struct Case {
    name: String,
    /// (element, type, message, text) of its failure or error.
    outcome: Option<(String, String, String, String)>,
    system_out: String,
}

fn attribute(e: &quick_xml::events::BytesStart, name: &str) -> String {
    e.try_get_attribute(name)
        .expect("well-formed attributes")
        .map(|a| {
            a.normalized_value(XmlVersion::Explicit1_0)
                .expect("valid escapes")
                .into_owned()
        })
        .unwrap_or_default()
}

/// The test cases of a JUnit document.
fn cases(xml: &str) -> Vec<Case> {
    let mut reader = Reader::from_str(xml);
    let mut cases = Vec::new();
    let mut current: Option<Case> = None;
    // The element whose text is being read: failure/error or system-out (of a test case).
    let mut inside: Option<String> = None;
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) => match e.name().as_ref() {
                "testcase" => {
                    current = Some(Case {
                        name: attribute(&e, "name"),
                        ..Case::default()
                    })
                }
                tag @ ("failure" | "error") if current.is_some() => {
                    let tag = tag.to_string();
                    let case = current.as_mut().expect("in a test case");
                    case.outcome = Some((
                        tag.clone(),
                        attribute(&e, "type"),
                        attribute(&e, "message"),
                        String::new(),
                    ));
                    inside = Some(tag);
                }
                "system-out" if current.is_some() => inside = Some("system-out".into()),
                _ => {}
            },
            Event::Text(t) => {
                let text = t.xml10_content().into_owned();
                if let (Some(case), Some(what)) = (current.as_mut(), &inside) {
                    match what.as_str() {
                        "system-out" => case.system_out.push_str(&text),
                        _ => case.outcome.as_mut().expect("an outcome").3.push_str(&text),
                    }
                }
            }
            Event::GeneralRef(r) => {
                // Entities (&lt; …) inside a text: what they stand for.
                let resolved = match r.as_ref() {
                    "lt" => "<",
                    "gt" => ">",
                    "amp" => "&",
                    "quot" => "\"",
                    "apos" => "'",
                    _ => "",
                };
                if let (Some(case), Some(what)) = (current.as_mut(), &inside) {
                    match what.as_str() {
                        "system-out" => case.system_out.push_str(resolved),
                        _ => case.outcome.as_mut().expect("an outcome").3.push_str(resolved),
                    }
                }
            }
            Event::End(e) => match e.name().as_ref() {
                "testcase" => cases.extend(current.take()),
                "failure" | "error" | "system-out" => inside = None,
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    cases
}

/// xmllint against the schema; panics with its complaint.
fn assert_valid(xml: &Path) {
    apt_install_if_missing("xmllint", "libxml2-utils");
    let out = Command::new("xmllint")
        .args(["--noout", "--schema", SCHEMA])
        .arg(xml)
        .output()
        .expect("xmllint runs");
    assert!(
        out.status.success(),
        "{} does not validate against the JUnit schema:\n{}\n{}",
        xml.display(),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(xml).unwrap_or_default()
    );
}

/// `ackcheck check ARGS --junit FILE`: (exit code, the XML's test cases).
fn check_junit(dir: &Path, args: &[&str], stdin: Option<&str>) -> (i32, Vec<Case>) {
    let xml = dir.join("junit.xml");
    let xml_arg = xml.to_str().expect("a UTF-8 temporary path");
    let mut all: Vec<&str> = vec!["check"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--junit", xml_arg]);
    let (code, out, err) = ackcheck(&all, stdin);
    assert!(xml.is_file(), "no JUnit file written (exit {code}): {out}{err}");
    assert_valid(&xml);
    let text = std::fs::read_to_string(&xml).expect("the JUnit file reads");
    (code, cases(&text))
}

#[test]
fn a_violated_claim_is_a_failing_test_case_with_its_proof() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let history = dir.path().join("lossy.jsonl");
    let history_arg = history.to_str().expect("a UTF-8 temporary path");
    let (code, _, err) = ackcheck(
        &[
            "generate",
            "--out",
            history_arg,
            "--messages",
            "400",
            "--claim",
            "at-least-once",
            "--loss",
            "0.02",
            "--log-positions",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let (code, cases) = check_junit(dir.path(), &[history_arg], None);
    assert_eq!(code, 1, "the claim is violated");
    assert_eq!(cases.len(), 1, "{cases:?}");
    let case = &cases[0];
    assert_eq!(case.name, "claim at-least-once");
    let (element, kind, message, text) = case.outcome.as_ref().expect("a failure");
    assert_eq!((element.as_str(), kind.as_str()), ("failure", "claim-violated"));
    assert!(message.contains("acknowledged message(s) lost"), "{message}");
    // The proof: a lost message and the events that show it, with their indices and times.
    assert!(text.contains("lost: p"), "{text}");
    assert!(text.contains("send ok"), "{text}");
    assert!(text.contains("event #"), "{text}");
    assert!(case.system_out.contains("observed: "), "{}", case.system_out);
}

#[test]
fn a_holding_claim_passes_and_weak_evidence_is_reported_or_fails_the_gate() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let weak = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/kafka-at-least-once-seed7-weak.jsonl"
    );
    let (code, cases) = check_junit(dir.path(), &[weak], None);
    assert_eq!(code, 0);
    assert_eq!(cases.len(), 1, "{cases:?}");
    assert_eq!(cases[0].name, "claim at-least-once");
    assert!(cases[0].outcome.is_none(), "{:?}", cases[0]);
    assert!(
        cases[0].system_out.contains("evidence: weak"),
        "{}",
        cases[0].system_out
    );

    let (code, cases) = check_junit(dir.path(), &[weak, "--min-evidence", "strong"], None);
    assert_eq!(code, 3);
    let (element, kind, message, _) = cases[0].outcome.as_ref().expect("a failure");
    assert_eq!((element.as_str(), kind.as_str()), ("failure", "weak-evidence"));
    assert!(message.contains("weaker than the strong asked for"), "{message}");
}

/// Two groups read the same topic; `g2` misses message `b`.
const TWO_GROUPS: &str = r#"{"history":1,"claim":"at-least-once","campaign":"two-groups","broker":"kafka","seed":5}
{"index":0,"time":1000,"process":0,"type":"invoke","f":"send","value":{"messages":[{"id":"a","dest":"t"},{"id":"b","dest":"t"}]}}
{"index":1,"time":2000,"process":0,"type":"ok","f":"send","value":{"messages":[{"id":"a","dest":"t"},{"id":"b","dest":"t"}]}}
{"index":2,"time":3000,"process":1,"type":"ok","f":"deliver","value":{"group":"g1","messages":[{"id":"a","dest":"t"},{"id":"b","dest":"t"}]}}
{"index":3,"time":4000,"process":2,"type":"ok","f":"deliver","value":{"group":"g2","messages":[{"id":"a","dest":"t"}]}}
{"index":4,"time":5000,"process":3,"type":"invoke","f":"drain"}
{"index":5,"time":6000,"process":3,"type":"ok","f":"drain"}
"#;

#[test]
fn each_claimed_group_is_its_own_test_case() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (code, cases) = check_junit(dir.path(), &["-", "--group", "g1", "--group", "g2"], Some(TWO_GROUPS));
    assert_eq!(code, 1);
    let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["claim at-least-once (group g1)", "claim at-least-once (group g2)"]
    );
    assert!(cases[0].outcome.is_none(), "g1 saw everything: {:?}", cases[0]);
    let (_, kind, _, text) = cases[1].outcome.as_ref().expect("g2 lost b");
    assert_eq!(kind, "claim-violated");
    assert!(text.contains("lost: b (g2)"), "{text}");
}

#[test]
fn a_claim_that_could_not_be_judged_is_an_error_not_a_pass() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // One send, its outcome unknown, nothing delivered: nothing to judge the claim on.
    let nothing_acknowledged = r#"{"history":1,"claim":"at-least-once"}
{"index":0,"time":1000,"process":0,"type":"invoke","f":"send","value":{"messages":[{"id":"a"}]}}
{"index":1,"time":2000,"process":0,"type":"info","f":"send","error":"timeout"}
{"index":2,"time":5000,"process":3,"type":"invoke","f":"drain"}
{"index":3,"time":6000,"process":3,"type":"ok","f":"drain"}
"#;
    let (code, cases) = check_junit(dir.path(), &["-"], Some(nothing_acknowledged));
    assert_eq!(code, 3);
    let (element, kind, _, _) = cases[0].outcome.as_ref().expect("an error");
    assert_eq!((element.as_str(), kind.as_str()), ("error", "not-judged"));
}
