//! One test per anomaly of DESIGN.md's checker semantics, on small hand-built histories.

use std::io::Cursor;

use ackcheck::checker::{self, Observed, Verdict};
use ackcheck::history::reader::HistoryReader;
use ackcheck::history::Guarantee;

/// A tiny history builder: each call appends JSON lines as a recorder would.
#[derive(Default)]
struct H {
    lines: Vec<String>,
    index: u64,
    op: u64,
}

impl H {
    fn line(&mut self, process: &str, kind: &str, f: &str, op: Option<u64>, value: &str) {
        let op = op.map(|o| format!(",\"op\":{o}")).unwrap_or_default();
        let value = if value.is_empty() {
            String::new()
        } else {
            format!(",\"value\":{value}")
        };
        self.lines.push(format!(
            "{{\"index\":{},\"time\":{},\"process\":{process},\"type\":\"{kind}\",\"f\":\"{f}\"{op}{value}}}",
            self.index,
            self.index * 1000
        ));
        self.index += 1;
    }

    fn messages(msgs: &[&str]) -> String {
        // "id" or "id|key" or "id|key|dest" or "id||dest|from"
        let parts: Vec<String> = msgs
            .iter()
            .map(|m| {
                let f: Vec<&str> = m.split('|').collect();
                let mut s = format!("{{\"id\":\"{}\"", f[0]);
                for (name, v) in ["key", "dest", "from"].iter().zip(f.iter().skip(1)) {
                    if !v.is_empty() {
                        s.push_str(&format!(",\"{name}\":\"{v}\""));
                    }
                }
                s.push('}');
                s
            })
            .collect();
        format!("[{}]", parts.join(","))
    }

    /// A send by process `p` ending with `outcome` (`None`: never completed).
    fn send(&mut self, p: u64, msgs: &[&str], outcome: Option<&str>) -> &mut Self {
        self.send_with(p, msgs, outcome, false)
    }

    fn send_with(&mut self, p: u64, msgs: &[&str], outcome: Option<&str>, atomic: bool) -> &mut Self {
        self.op += 1;
        let atomic = if atomic { ",\"atomic\":true" } else { "" };
        let value = format!("{{\"messages\":{}{atomic}}}", Self::messages(msgs));
        self.line(&p.to_string(), "invoke", "send", Some(self.op), &value);
        if let Some(outcome) = outcome {
            self.line(&p.to_string(), outcome, "send", Some(self.op), "");
        }
        self
    }

    /// A delivery to `group` of messages given as "id@pos" (or "id" without a position).
    fn deliver(&mut self, group: &str, msgs: &[&str]) -> &mut Self {
        let parts: Vec<String> = msgs
            .iter()
            .map(|m| match m.split_once('@') {
                Some((id, pos)) => {
                    let (id, rest) = id.split_once('|').map_or((id, ""), |(a, b)| (a, b));
                    let mut s = format!("{{\"id\":\"{id}\",\"pos\":\"{pos}\"");
                    for (name, v) in ["key", "dest", "from"].iter().zip(rest.split('|')) {
                        if !v.is_empty() {
                            s.push_str(&format!(",\"{name}\":\"{v}\""));
                        }
                    }
                    s + "}"
                }
                None => format!("{{\"id\":\"{m}\"}}"),
            })
            .collect();
        let value = format!("{{\"group\":\"{group}\",\"messages\":[{}]}}", parts.join(","));
        self.line("100", "ok", "deliver", None, &value);
        self
    }

    fn drain(&mut self) -> &mut Self {
        self.line("0", "invoke", "drain", None, "");
        self.line("0", "ok", "drain", None, "");
        self
    }

    fn nemesis(&mut self, f: &str) -> &mut Self {
        self.line("\"nemesis\"", "info", f, None, "");
        self
    }

    fn check(&self, claim: Option<Guarantee>) -> Verdict {
        let text = self.lines.join("\n") + "\n";
        let reader = HistoryReader::new(Box::new(Cursor::new(text.into_bytes())));
        checker::check(reader, claim, 5).expect("a well-formed history")
    }
}

#[test]
fn clean_run_is_exactly_once() {
    let v = H::default()
        .send(1, &["a", "b"], Some("ok"))
        .deliver("g", &["a@0@1", "b@0@2"])
        .drain()
        .check(Some(Guarantee::ExactlyOnce));
    assert_eq!(v.verdict, Observed::ExactlyOnce);
    assert_eq!(v.claim_holds, Some(true));
    assert_eq!(
        (v.counts.messages, v.counts.acknowledged, v.counts.delivered),
        (2, 2, 2)
    );
    assert_eq!(v.exit_code(), 0);
}

#[test]
fn loss_needs_a_drain() {
    let mut h = H::default();
    h.send(1, &["a", "b"], Some("ok")).deliver("g", &["a@0@1"]);
    let v = h.check(Some(Guarantee::AtLeastOnce));
    assert_eq!((v.counts.lost, v.counts.unseen), (0, 1));
    assert_eq!(v.claim_holds, Some(true));
    assert!(v.notes[0].contains("no completed drain"), "{:?}", v.notes);
    h.drain();
    let v = h.check(Some(Guarantee::AtLeastOnce));
    assert_eq!((v.counts.lost, v.counts.unseen), (1, 0));
    assert_eq!(v.verdict, Observed::AtMostOnce);
    assert_eq!(v.claim_holds, Some(false));
    assert_eq!(v.exit_code(), 1);
    assert_eq!(v.examples["lost"][0].message, "b");
    assert_eq!(v.examples["lost"][0].events[1].what, "send ok");
}

#[test]
fn nothing_delivered_at_all_is_loss() {
    let v = H::default()
        .send(1, &["a"], Some("ok"))
        .drain()
        .check(Some(Guarantee::AtMostOnce));
    assert_eq!(v.counts.lost, 1);
    assert_eq!(v.verdict, Observed::AtMostOnce);
    // At-most-once allows loss, but a run that delivered nothing at all tested nothing: the claim
    // is not judged (exit 3), rather than holding on nothing.
    assert_eq!(v.claim_holds, None);
    assert_eq!(v.exit_code(), 3);
    assert!(
        v.notes.iter().any(|n| n.contains("a claim cannot hold on nothing")),
        "{:?}",
        v.notes
    );
    // At-least-once is violated by the loss all the same.
    let v = H::default()
        .send(1, &["a"], Some("ok"))
        .drain()
        .check(Some(Guarantee::AtLeastOnce));
    assert_eq!((v.claim_holds, v.exit_code()), (Some(false), 1));
}

#[test]
fn written_twice_and_redelivered_are_told_apart() {
    let v = H::default()
        .send(1, &["a"], Some("info"))
        .send(1, &["a"], Some("ok"))
        .send(2, &["b"], Some("ok"))
        .deliver("g", &["a@0@1", "a@0@2", "b@1@1"])
        .deliver("g", &["b@1@1"])
        .drain()
        .check(Some(Guarantee::AtMostOnce));
    assert_eq!(v.counts.duplicated, 2);
    assert_eq!(v.duplicate_causes.written_twice, 1);
    assert_eq!(v.duplicate_causes.redelivered, 1);
    assert_eq!(v.duplicate_causes.unknown, 0);
    assert_eq!(v.verdict, Observed::AtLeastOnce);
    assert_eq!(v.claim_holds, Some(false));
    assert_eq!(v.evidence.indeterminate_sends, 1);
}

#[test]
fn duplicates_without_positions_have_unknown_cause() {
    let v = H::default()
        .send(1, &["a"], Some("ok"))
        .deliver("g", &["a", "a"])
        .drain()
        .check(None);
    assert_eq!(v.duplicate_causes.unknown, 1);
    assert_eq!(v.claim_holds, None);
}

#[test]
fn the_same_message_in_two_groups_is_not_a_duplicate() {
    let v = H::default()
        .send(1, &["a"], Some("ok"))
        .deliver("g1", &["a@0@1"])
        .deliver("g2", &["a@0@1"])
        .drain()
        .check(None);
    assert_eq!(v.counts.duplicated, 0);
    assert_eq!(v.groups.len(), 2);
}

#[test]
fn dest_rule_only_expects_messages_in_groups_that_read_the_dest() {
    let v = H::default()
        .send(1, &["a||orders", "b||audit"], Some("ok"))
        .deliver("billing", &["a||orders@0@1"])
        .deliver("auditor", &["b||audit@0@1"])
        .drain()
        .check(Some(Guarantee::ExactlyOnce));
    assert_eq!(
        v.counts.lost, 0,
        "billing never reads audit, auditor never reads orders"
    );
    // A message without dest is expected in every group.
    let v = H::default()
        .send(1, &["a"], Some("ok"))
        .deliver("g1", &["a@0@1"])
        .deliver("g2", &["x@0@9"])
        .drain()
        .check(None);
    assert_eq!(v.counts.lost, 1);
    assert_eq!(v.groups["g2"].lost, 1);
}

#[test]
fn unexpected_recovered_and_failed_delivered() {
    let v = H::default()
        .send(1, &["ind"], Some("info"))
        .send(2, &["open"], None)
        .send(3, &["bad"], Some("fail"))
        .send(4, &["gone"], Some("fail"))
        .deliver("g", &["ind@0@1", "open@0@2", "bad@0@3", "ghost@0@4"])
        .drain()
        .check(Some(Guarantee::ExactlyOnce));
    assert_eq!(v.counts.messages, 4);
    assert_eq!((v.counts.indeterminate, v.counts.failed), (2, 2));
    assert_eq!(v.counts.recovered, 2);
    assert_eq!(v.counts.failed_delivered, 1);
    assert_eq!(v.counts.unexpected, 1);
    assert_eq!(v.counts.lost, 0, "indeterminate and failed messages are never lost");
    assert_eq!(v.verdict, Observed::ExactlyOnce);
    assert_eq!(
        v.claim_holds,
        Some(false),
        "a failed-delivered message violates exactly-once"
    );
    assert_eq!(v.examples["failed-delivered"][0].message, "bad");
    assert_eq!(v.examples["unexpected"][0].message, "ghost");
    assert_eq!(v.evidence.indeterminate_sends, 2);
}

#[test]
fn a_phantom_delivery_violates_every_claim() {
    // Otherwise clean: no loss, no duplicate. Only the message nobody sent is wrong.
    for claim in [Guarantee::AtMostOnce, Guarantee::AtLeastOnce, Guarantee::ExactlyOnce] {
        let v = H::default()
            .send(1, &["a"], Some("ok"))
            .deliver("g", &["a@0@1", "ghost@0@2"])
            .drain()
            .check(Some(claim));
        assert_eq!(v.verdict, Observed::ExactlyOnce, "{claim}");
        assert_eq!(v.counts.unexpected, 1, "{claim}");
        assert_eq!(v.claim_holds, Some(false), "{claim}: a phantom must violate it");
        assert_eq!(
            v.violations,
            vec!["1 message(s) delivered although never sent (phantoms)".to_string()]
        );
        assert_eq!(v.exit_code(), 1);
    }
}

#[test]
fn more_than_65536_groups_do_not_alias() {
    // Group 65,536 used to wrap to group 0: one message delivered once to each of them looked
    // delivered twice to one group at one position, a redelivery.
    let mut h = H::default();
    h.send(1, &["m||orders"], Some("ok"));
    h.deliver("g0", &["m||orders@0@0"]);
    for g in 1..65_536 {
        // Each filler group reads its own topic, so it is expected to see only its own message.
        let id = format!("f{g}||t{g}");
        h.send(2, &[&id], Some("ok"));
        h.deliver(&format!("g{g}"), &[&format!("f{g}||t{g}@0@0")]);
    }
    h.deliver("g65536", &["m||orders@0@0"]);
    let v = h.drain().check(Some(Guarantee::ExactlyOnce));
    assert_eq!(v.groups.len(), 65_537);
    assert_eq!((v.counts.duplicated, v.duplicate_causes.redelivered), (0, 0));
    assert_eq!(v.counts.lost, 0);
    assert_eq!(v.claim_holds, Some(true), "{:?}", v.violations);
}

#[test]
fn a_retry_that_succeeds_makes_a_failed_message_acknowledged() {
    let v = H::default()
        .send(1, &["a"], Some("fail"))
        .send(1, &["a"], Some("ok"))
        .deliver("g", &["a@0@1"])
        .drain()
        .check(None);
    assert_eq!(
        (v.counts.acknowledged, v.counts.failed, v.counts.failed_delivered),
        (1, 0, 0)
    );
}

#[test]
fn torn_and_aborted_transactions() {
    let v = H::default()
        .send_with(1, &["t1a", "t1b", "t1c"], Some("ok"), true)
        .send_with(2, &["t2a", "t2b"], Some("fail"), true)
        .send_with(3, &["t3a", "t3b"], Some("ok"), true)
        .deliver("committed", &["t1a@0@1", "t1c@1@1", "t3a@0@2", "t3b@1@2"])
        .deliver(
            "uncommitted",
            &["t1a@0@1", "t1b@0@9", "t1c@1@1", "t2a@0@3", "t3a@0@2", "t3b@1@2"],
        )
        .drain()
        .check(Some(Guarantee::ExactlyOnce));
    assert_eq!(v.counts.torn, 1);
    assert_eq!(v.groups["committed"].torn, 1);
    assert_eq!(v.groups["uncommitted"].torn, 0);
    assert_eq!(v.examples["torn"][0].message, "t1b");
    assert_eq!(v.counts.failed_delivered, 1);
    assert_eq!(v.groups["uncommitted"].failed_delivered, 1);
    assert_eq!(v.examples["aborted-read"][0].message, "t2a");
    assert_eq!(v.claim_holds, Some(false));
}

#[test]
fn torn_is_not_judged_without_a_drain() {
    let v = H::default()
        .send_with(1, &["a", "b"], Some("ok"), true)
        .deliver("g", &["a@0@1"])
        .check(None);
    assert_eq!(v.counts.torn, 0);
    assert_eq!(v.counts.unseen, 1);
}

#[test]
fn pipeline_duplicates_and_loss_are_judged_per_upstream_message() {
    let v = H::default()
        .send(1, &["u1", "u2", "u3", "u4"], Some("ok"))
        // u1 → one output (fine); u2 → processed twice (two outputs); u3 → nothing; u4 → its
        // output delivered twice from one position.
        .deliver(
            "sink",
            &[
                "d1|||u1@0@1",
                "d2a|||u2@0@2",
                "d2b|||u2@0@3",
                "d4|||u4@0@4",
                "d4|||u4@0@4",
            ],
        )
        // The processor's own reads of the source do not count.
        .deliver("processor", &["u1@0@1", "u1@0@1"])
        .drain()
        .check(Some(Guarantee::ExactlyOnce));
    assert!(v.pipeline);
    assert_eq!(v.counts.messages, 4);
    assert_eq!(v.counts.delivered, 3);
    assert_eq!(v.counts.lost, 1);
    assert_eq!(v.examples["lost"][0].message, "u3");
    assert_eq!(v.counts.duplicated, 2);
    assert_eq!(v.duplicate_causes.written_twice, 1);
    assert_eq!(v.duplicate_causes.redelivered, 1);
    assert_eq!(v.verdict, Observed::NoGuarantee);
    assert_eq!(v.claim_holds, Some(false));
}

#[test]
fn order_violation_within_a_key() {
    let v = H::default()
        .send(1, &["a|k"], Some("ok"))
        .send(1, &["b|k"], Some("ok"))
        .send(2, &["c|j"], Some("ok"))
        .deliver("g", &["b|k@0@2", "c|j@1@1", "a|k@0@1"])
        .drain()
        .check(Some(Guarantee::ExactlyOnce));
    assert_eq!(v.counts.order_violations, 1);
    assert_eq!(v.examples["order"][0].message, "a");
    assert_eq!(
        v.claim_holds,
        Some(true),
        "order is reported, not part of the classification"
    );
}

#[test]
fn concurrent_sends_of_one_key_are_not_ordered() {
    // b was invoked before a was acknowledged: either order is fine.
    let mut h = H::default();
    h.line("1", "invoke", "send", Some(1), r#"{"messages":[{"id":"a","key":"k"}]}"#);
    h.line("2", "invoke", "send", Some(2), r#"{"messages":[{"id":"b","key":"k"}]}"#);
    h.line("1", "ok", "send", Some(1), "");
    h.line("2", "ok", "send", Some(2), "");
    h.deliver("g", &["b|k@0@2", "a|k@0@1"]).drain();
    assert_eq!(h.check(None).counts.order_violations, 0);
}

#[test]
fn delivery_before_the_send_completes_is_fine() {
    let mut h = H::default();
    h.line("1", "invoke", "send", Some(1), r#"{"messages":[{"id":"a"}]}"#);
    h.deliver("g", &["a@0@1"]);
    h.line("1", "ok", "send", Some(1), "");
    let v = h.drain().check(Some(Guarantee::ExactlyOnce));
    assert_eq!(
        (v.counts.acknowledged, v.counts.delivered, v.counts.unexpected),
        (1, 1, 0)
    );
}

#[test]
fn evidence_counts_faults_crashes_and_sends() {
    let v = H::default()
        .nemesis("start-kill")
        .nemesis("stop-kill")
        .nemesis("start-kill")
        .nemesis("start-lose-acks")
        .send(1, &["a"], Some("ok"))
        .send(1, &["b"], Some("info"))
        .check(None);
    assert_eq!(v.evidence.faults["kill"], 2);
    assert_eq!(v.evidence.faults["lose-acks"], 1);
    assert_eq!(v.evidence.sends, 2);
    assert!(!v.evidence.drained);
}

#[test]
fn claim_override_beats_the_header() {
    let text = "{\"history\":1,\"claim\":\"exactly-once\"}\n".to_string()
        + &H::default()
            .send(1, &["a"], Some("ok"))
            .deliver("g", &["a@0@1", "a@0@1"])
            .drain()
            .lines
            .join("\n");
    let reader = || HistoryReader::new(Box::new(Cursor::new(text.clone().into_bytes())));
    let v = checker::check(reader(), None, 3).unwrap();
    assert_eq!((v.claim, v.claim_holds), (Some(Guarantee::ExactlyOnce), Some(false)));
    let v = checker::check(reader(), Some(Guarantee::AtLeastOnce), 3).unwrap();
    assert_eq!((v.claim, v.claim_holds), (Some(Guarantee::AtLeastOnce), Some(true)));
}

#[test]
fn copies_an_idempotent_consumer_skipped_are_evidence_not_deliveries() {
    let mut h = H::default();
    h.send(1, &["a"], Some("info")).send(1, &["a"], Some("ok"));
    h.line(
        "100",
        "ok",
        "deliver",
        None,
        r#"{"group":"g","messages":[{"id":"a","pos":"q@a~1"}]}"#,
    );
    // The re-sent copy and a redelivery of the first arrive later and are skipped.
    h.line(
        "101",
        "ok",
        "deliver",
        None,
        r#"{"group":"g","skipped":[{"id":"a","pos":"q@a~2"},{"id":"a","pos":"q@a~1","redelivered":true}]}"#,
    );
    let v = h.drain().check(Some(Guarantee::ExactlyOnce));
    assert_eq!(v.verdict, Observed::ExactlyOnce);
    assert_eq!(v.claim_holds, Some(true));
    assert_eq!((v.counts.delivered, v.counts.duplicated), (1, 0));
    let e = &v.evidence;
    assert_eq!(
        (e.deliveries, e.skipped, e.skipped_redelivered, e.flagged_redelivered),
        (1, 2, 1, 1)
    );
    assert!(
        v.notes.iter().any(|n| n.contains("application's deduplication")),
        "{:?}",
        v.notes
    );
    let human = ackcheck::report::human(&v);
    assert!(
        human.contains("2 copies skipped by an idempotent consumer (1 redelivered, 1 other stored copies)"),
        "{human}"
    );
}

#[test]
fn a_claim_about_some_groups_judges_only_them_and_still_shows_every_group() {
    let mut h = H::default();
    h.send_with(1, &["a|k|t", "b|k|t"], Some("ok"), true);
    h.send_with(1, &["c|k|t", "d|k|t"], Some("fail"), true);
    h.deliver("committed", &["a|k|t@0@1", "b|k|t@0@2"]);
    h.deliver("uncommitted", &["a|k|t@0@1", "b|k|t@0@2", "c|k|t@0@3", "d|k|t@0@4"]);
    h.drain();
    let text = h.lines.join("\n") + "\n";
    let check = |header: &str, groups: Option<Vec<String>>| {
        let reader = HistoryReader::new(Box::new(Cursor::new(format!("{header}{text}").into_bytes())));
        let options = checker::CheckOptions {
            claim: Some(Guarantee::ExactlyOnce),
            examples: 3,
            groups,
            min_evidence: None,
        };
        checker::check_with(reader, &options).expect("a well-formed history")
    };

    let all = check("", None);
    assert_eq!(all.counts.failed_delivered, 2, "aborted reads in the uncommitted group");
    assert_eq!(all.claim_holds, Some(false));

    for v in [
        check("", Some(vec!["committed".into()])),
        check("{\"history\":1,\"claim_groups\":[\"committed\"]}\n", None),
    ] {
        assert_eq!(v.claim_groups, Some(vec!["committed".to_string()]));
        assert_eq!(
            (v.counts.failed_delivered, v.counts.delivered, v.counts.lost),
            (0, 2, 0)
        );
        assert_eq!(v.claim_holds, Some(true), "{:?}", v.violations);
        assert_eq!(
            v.groups["uncommitted"].failed_delivered, 2,
            "every group is still shown"
        );
        assert_eq!(v.groups["committed"].delivered, 2);
        assert!(v.notes.iter().any(|n| n.contains("cover the group(s) committed only")));
        assert!(ackcheck::report::human(&v).contains("claim exactly-once (group committed): HOLDS"));
    }

    // A group the history never mentions is a mistake, not a group that lost everything.
    let reader = HistoryReader::new(Box::new(Cursor::new(text.clone().into_bytes())));
    let options = checker::CheckOptions {
        groups: Some(vec!["nobody".into()]),
        ..checker::CheckOptions::default()
    };
    match checker::check_with(reader, &options) {
        Err(checker::CheckError::UnknownGroup { group, known }) => {
            assert_eq!(
                (group.as_str(), known.as_str()),
                ("nobody", "its groups: committed, uncommitted")
            )
        }
        other => panic!("expected an unknown group, got {other:?}"),
    }
    // A claimed group (named by the header) that delivered nothing lost every acknowledged message.
    let v = check("{\"history\":1,\"claim_groups\":[\"nobody\"]}\n", None);
    assert_eq!((v.counts.lost, v.counts.delivered), (2, 0));
    assert_eq!(v.claim_holds, Some(false));
    assert!(
        v.notes.iter().any(|n| n.contains("nobody delivered nothing")),
        "{:?}",
        v.notes
    );
}

#[test]
fn throughput_and_latency_come_from_the_history_alone() {
    // a: invoked at 0, delivered at 10 ms; b: invoked at 100 ms, first delivered (group h) at
    // 130 ms, later to g; c: acknowledged, never delivered (not measured, lost).
    let lines = [
        r#"{"history":1,"claim":"at-least-once"}"#,
        r#"{"index":0,"time":0,"process":1,"type":"invoke","f":"send","op":1,"value":{"messages":[{"id":"a"}]}}"#,
        r#"{"index":1,"time":5000000,"process":1,"type":"ok","f":"send","op":1}"#,
        r#"{"index":2,"time":10000000,"process":100,"type":"ok","f":"deliver","value":{"group":"g","messages":[{"id":"a"}]}}"#,
        r#"{"index":3,"time":10000000,"process":100,"type":"ok","f":"deliver","value":{"group":"h","messages":[{"id":"a"}]}}"#,
        r#"{"index":4,"time":100000000,"process":1,"type":"invoke","f":"send","op":2,"value":{"messages":[{"id":"b"}]}}"#,
        r#"{"index":5,"time":101000000,"process":1,"type":"ok","f":"send","op":2}"#,
        r#"{"index":6,"time":130000000,"process":100,"type":"ok","f":"deliver","value":{"group":"h","messages":[{"id":"b"}]}}"#,
        r#"{"index":7,"time":150000000,"process":100,"type":"ok","f":"deliver","value":{"group":"g","messages":[{"id":"b"}]}}"#,
        r#"{"index":8,"time":200000000,"process":1,"type":"invoke","f":"send","op":3,"value":{"messages":[{"id":"c"}]}}"#,
        r#"{"index":9,"time":201000000,"process":1,"type":"ok","f":"send","op":3}"#,
    ];
    let text = lines.join("\n") + "\n";
    let v = checker::check(HistoryReader::new(Box::new(Cursor::new(text.into_bytes()))), None, 5)
        .expect("a well-formed history");
    let latency = v.performance.latency.as_ref().expect("two messages were delivered");
    assert_eq!(latency.messages, 2, "the undelivered message is not measured");
    assert!((latency.max_ms - 30.0).abs() < 0.1, "b: 100 → 130 ms: {latency:?}");
    assert!((latency.p50_ms - 10.0).abs() < 0.1, "a: 0 → 10 ms: {latency:?}");
    let rate = v.performance.acknowledged_per_second.expect("a run phase");
    let expected = 3.0 / (v.evidence.run_phase as f64 / 1e9);
    assert!((rate - expected).abs() < 1e-6, "{rate} vs {expected}");
    // Nothing delivered: no latency, and the JSON says so.
    let none = [lines[0], lines[1], lines[2]].join("\n") + "\n";
    let v = checker::check(HistoryReader::new(Box::new(Cursor::new(none.into_bytes()))), None, 5).unwrap();
    assert!(v.performance.latency.is_none());
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["performance"]["latency"], serde_json::Value::Null);
}
