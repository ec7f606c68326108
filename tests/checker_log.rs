//! Log positions (`"positions":"log"`): Jepsen's own Kafka checker cases, translated into
//! history v1 and judged by ackcheck, with Jepsen's expected anomaly as the assertion.
//!
//! Source: jepsen-io/jepsen, `jepsen/test/jepsen/tests/kafka_test.clj` at commit c4c7473d9ee2
//! (the line numbers in the comments are of that version). Jepsen's `[:send :x v]` is a message `v` to dest `x`, partition 0;
//! `[offset v]` its position `0@offset`; a `:poll` is a `deliver` of group `g` by the polling
//! process; a `:subscribe`/`:assign` is a `rebalance` event.

use std::io::Cursor;

use ackcheck::checker::{self, Verdict};
use ackcheck::history::reader::HistoryReader;
use serde_json::{json, Value};

/// A history under construction: events get consecutive indices and times.
#[derive(Default)]
struct History {
    lines: Vec<Value>,
}

/// `(dest, id)` or `(dest, id, offset)`: a message, with a position when it has an offset.
fn msg(dest: &str, id: &str, offset: Option<u64>) -> Value {
    let mut m = json!({ "id": id, "dest": dest });
    if let Some(o) = offset {
        m["pos"] = json!(format!("0@{o}"));
    }
    m
}

impl History {
    fn event(&mut self, mut e: Value) -> &mut Self {
        let i = self.lines.len() as u64;
        e["index"] = json!(i);
        e["time"] = json!(i * 1_000_000);
        self.lines.push(e);
        self
    }

    /// A send of `messages` by `process`, invoked and completed (`done`: ok, info or fail), the
    /// completion carrying the positions the broker reported.
    fn send(&mut self, process: u64, done: &str, messages: &[(&str, &str, Option<u64>)], atomic: bool) -> &mut Self {
        let op = self.lines.len() as u64;
        let invoked: Vec<Value> = messages.iter().map(|(d, id, _)| msg(d, id, None)).collect();
        let completed: Vec<Value> = messages.iter().map(|(d, id, o)| msg(d, id, *o)).collect();
        let mut value = json!({ "messages": invoked });
        if atomic {
            value["atomic"] = json!(true);
        }
        self.event(json!({"process": process, "type": "invoke", "f": "send", "op": op, "value": value}));
        self.event(json!({"process": process, "type": done, "f": "send", "op": op, "value": {"messages": completed}}))
    }

    fn poll(&mut self, process: u64, messages: &[(&str, &str, u64)]) -> &mut Self {
        let delivered: Vec<Value> = messages.iter().map(|(d, id, o)| msg(d, id, Some(*o))).collect();
        self.event(
            json!({"process": process, "type": "ok", "f": "deliver", "value": {"group": "g", "messages": delivered}}),
        )
    }

    fn rebalance(&mut self, process: u64, assigned: Value) -> &mut Self {
        self.event(json!({"process": process, "type": "ok", "f": "rebalance", "value": {"assigned": assigned}}))
    }

    fn check(&self) -> Verdict {
        let mut text = String::from("{\"history\":1,\"positions\":\"log\"}\n");
        for line in &self.lines {
            text.push_str(&line.to_string());
            text.push('\n');
        }
        let reader = HistoryReader::new(Box::new(Cursor::new(text.into_bytes())));
        checker::check(reader, None, 10).expect("a valid history")
    }
}

/// The ids the examples of `kind` name, sorted.
fn named(v: &Verdict, kind: &str) -> Vec<String> {
    let mut ids: Vec<String> = v
        .examples
        .get(kind)
        .into_iter()
        .flatten()
        .map(|e| e.message.clone())
        .collect();
    ids.sort();
    ids
}

// kafka_test.clj:91 `inconsistent-offsets-test` "info conflicts": an info send that conflicts
// with an ok send is no conflict (it may not have committed) ...
#[test]
fn jepsen_inconsistent_offsets_info_send_is_no_conflict() {
    let mut h = History::default();
    h.send(0, "info", &[("x", "x1", Some(0)), ("y", "y1", None)], true)
        .send(1, "ok", &[("x", "x2", Some(0))], false);
    let v = h.check();
    assert_eq!(v.counts.inconsistent_positions, 0, "{v:#?}");
}

// ... until a read observes the info send's other write: then it committed, and x@0 holds two
// values (kafka_test.clj:103).
#[test]
fn jepsen_inconsistent_offsets_when_a_read_proves_the_info_send() {
    let mut h = History::default();
    h.send(0, "info", &[("x", "x1", Some(0)), ("y", "y1", None)], true)
        .send(1, "ok", &[("x", "x2", Some(0))], false)
        .poll(2, &[("y", "y1", 5)]);
    let v = h.check();
    assert_eq!(v.counts.inconsistent_positions, 1, "{v:#?}");
    assert_eq!(named(&v, "inconsistent-positions"), ["x1"]);
    let example = &v.examples["inconsistent-positions"][0];
    assert!(
        example.explanation.contains("x 0@0 holds 2 different messages: x1, x2"),
        "{example:?}"
    );
    // An integrity anomaly: every claim fails.
    let claim = checker::check(
        HistoryReader::new(Box::new(Cursor::new(format!(
            "{{\"history\":1,\"positions\":\"log\",\"claim\":\"at-most-once\"}}\n{}",
            h.lines.iter().map(|l| format!("{l}\n")).collect::<String>()
        )))),
        None,
        1,
    )
    .unwrap();
    assert_eq!(claim.claim_holds, Some(false), "{:?}", claim.violations);
}

// kafka_test.clj:77 `version-orders-test` "a real-world example": two sends acknowledged at the
// same offset 537 of key 11.
#[test]
fn jepsen_two_acknowledged_sends_at_one_offset() {
    let mut h = History::default();
    h.send(379, "ok", &[("11", "641", Some(537))], false)
        .send(363, "ok", &[("11", "645", Some(537))], false);
    let v = h.check();
    assert_eq!(v.counts.inconsistent_positions, 1, "{v:#?}");
}

// kafka_test.clj:131 `lost-write-test` "consistent": a@0, b@1 and d@3 acknowledged, c sent
// with an unknown outcome; a poll reads c@2, so a and b, below it, are lost writes; d is not.
#[test]
fn jepsen_lost_write_without_a_final_read() {
    let mut h = History::default();
    h.send(0, "ok", &[("x", "a", Some(0))], false)
        .send(0, "ok", &[("x", "b", Some(1)), ("x", "d", Some(3))], false)
        .send(1, "info", &[("x", "c", None)], false)
        .poll(0, &[("x", "c", 2)]);
    let v = h.check();
    assert_eq!(v.counts.lost, 2, "{v:#?}");
    assert_eq!(v.counts.lost_by_position, 2);
    assert_eq!(v.counts.unseen, 1, "d, above the read, may still come");
    assert_eq!(named(&v, "lost"), ["a", "b"]);
    assert!(!v.evidence.drained, "no drain: the positions alone prove it");
}

// kafka_test.clj:157 `lost-write-test` "inconsistent": a@0, then b@0 and c@2; a read of b@0 and
// c@2 proves a lost (and offset 0 inconsistent).
#[test]
fn jepsen_lost_write_with_inconsistent_offsets() {
    let mut h = History::default();
    h.send(0, "ok", &[("x", "a", Some(0))], false)
        .send(0, "ok", &[("x", "b", Some(0)), ("x", "c", Some(2))], false)
        .poll(0, &[("x", "b", 0), ("x", "c", 2)]);
    let v = h.check();
    assert_eq!(named(&v, "lost"), ["a"], "{v:#?}");
    assert_eq!(v.counts.lost_by_position, 1);
    assert_eq!(v.counts.inconsistent_positions, 1);
}

// kafka_test.clj:178 and :196 `lost-write-test` "atomic": a crashed transaction (x:a, y:b@0); c sent to
// y, read at y@1. Without a read of a, the transaction may not have committed: no lost write.
#[test]
fn jepsen_lost_write_atomic_unproven() {
    let mut h = History::default();
    h.send(0, "info", &[("x", "a", None), ("y", "b", Some(0))], true)
        .send(1, "info", &[("y", "c", None)], false)
        .poll(3, &[("y", "c", 1)]);
    let v = h.check();
    assert_eq!(v.counts.lost, 0, "{v:#?}");
}

// ... with a read of a, the transaction committed, so b@0 below the read c@1 is a lost write
// (kafka_test.clj:201).
#[test]
fn jepsen_lost_write_atomic_proven_by_a_read() {
    let mut h = History::default();
    h.send(0, "info", &[("x", "a", None), ("y", "b", Some(0))], true)
        .send(1, "info", &[("y", "c", None)], false)
        .poll(2, &[("x", "a", 0)])
        .poll(3, &[("y", "c", 1)]);
    let v = h.check();
    assert_eq!(named(&v, "lost"), ["b"], "{v:#?}");
    assert_eq!(v.counts.lost_by_position, 1);
}

/// kafka_test.clj:211 `poll-skip-test`: process 0 reads 1, 2, then 4, then 7; 3 and 6 exist (a
/// read by process 1, an acknowledged write). `between` runs after process 0's first and
/// second polls.
fn poll_skip_history(after_first: Option<Value>, after_second: Option<Value>) -> History {
    let mut h = History::default();
    h.poll(0, &[("x", "a", 1), ("x", "b", 2)]).poll(1, &[("x", "c", 3)]);
    if let Some(assigned) = after_first {
        h.rebalance(0, assigned);
    }
    h.poll(0, &[("x", "d", 4)]);
    if let Some(assigned) = after_second {
        h.rebalance(0, assigned);
    }
    h.send(2, "ok", &[("x", "f", Some(6))], false)
        .poll(0, &[("x", "g", 7)])
        .send(
            3,
            "info",
            &[
                ("x", "a", None),
                ("x", "b", None),
                ("x", "c", None),
                ("x", "d", None),
                ("x", "g", None),
            ],
            false,
        );
    h
}

#[test]
fn jepsen_poll_skip() {
    let v = poll_skip_history(None, None).check();
    assert_eq!(v.counts.skips, 2, "{v:#?}");
    // Jepsen: {:delta 2 :skipped [:c]} and {:delta 2 :skipped [:f]}.
    assert_eq!(named(&v, "skip"), ["c", "f"]);
}

// kafka_test.clj:253 and :262: a subscribe or assign that leaves x out resets the process's reading.
#[test]
fn jepsen_poll_skip_allowed_after_a_rebalance_away() {
    let away = json!({"y": [0]});
    let v = poll_skip_history(Some(away.clone()), Some(away)).check();
    assert_eq!(v.counts.skips, 0, "{v:#?}");
    // Without `assigned` a rebalance resets every partition too.
    let mut h = poll_skip_history(None, None);
    h.lines.insert(2, json!({"process": 0, "type": "ok", "f": "rebalance"}));
    h.lines.insert(4, json!({"process": 0, "type": "ok", "f": "rebalance"}));
    for (i, line) in h.lines.iter_mut().enumerate() {
        line["index"] = json!(i);
        line["time"] = json!(i as u64 * 1_000_000);
    }
    assert_eq!(h.check().counts.skips, 0);
}

// kafka_test.clj:265: a rebalance that keeps x keeps the reading: the skips stay.
#[test]
fn jepsen_poll_skip_kept_across_a_rebalance_that_keeps_the_partition() {
    let both = json!({"x": [0], "y": [0]});
    let v = poll_skip_history(Some(both.clone()), Some(both)).check();
    assert_eq!(v.counts.skips, 2, "{v:#?}");
}

// kafka_test.clj:436 `nonmonotonic-send-test`: process 0 sends c, d at 3, 4, then 1, 2 land at
// offsets 1 and 2, before them.
#[test]
fn jepsen_nonmonotonic_send() {
    let mut h = History::default();
    h.send(0, "ok", &[("x", "c", Some(3)), ("x", "d", Some(4))], false)
        .send(0, "ok", &[("x", "a", Some(1)), ("x", "b", Some(2))], false);
    let v = h.check();
    assert_eq!(v.counts.send_reorders, 1, "{v:#?}");
    let example = &v.examples["send-reordered"][0];
    assert_eq!(example.message, "a");
    assert!(
        example
            .explanation
            .contains("after d had been acknowledged at offset 4"),
        "{example:?}"
    );
    // Concurrent sends are not ordered: the same offsets from two sends in flight together.
    let mut concurrent = History::default();
    concurrent.event(json!({"process": 0, "type": "invoke", "f": "send", "op": 1, "value": {"messages": [{"id": "c", "dest": "x"}]}}));
    concurrent.event(json!({"process": 0, "type": "invoke", "f": "send", "op": 2, "value": {"messages": [{"id": "a", "dest": "x"}]}}));
    concurrent.event(json!({"process": 0, "type": "ok", "f": "send", "op": 1, "value": {"messages": [{"id": "c", "dest": "x", "pos": "0@3"}]}}));
    concurrent.event(json!({"process": 0, "type": "ok", "f": "send", "op": 2, "value": {"messages": [{"id": "a", "dest": "x", "pos": "0@1"}]}}));
    assert_eq!(concurrent.check().counts.send_reorders, 0);
}

// kafka_test.clj:598 `duplicate-test` "basic": a acknowledged at 1, read at 3: stored twice.
#[test]
fn jepsen_duplicate() {
    let mut h = History::default();
    h.send(0, "ok", &[("x", "a", Some(1))], false)
        .send(1, "info", &[("x", "b", None)], false)
        .poll(2, &[("x", "b", 2), ("x", "a", 3)]);
    let v = h.check();
    assert_eq!(v.counts.stored_twice, 1, "{v:#?}");
    let example = &v.examples["stored-twice"][0];
    assert_eq!(example.message, "a");
    assert!(example.explanation.contains("x 0@1 and x 0@3"), "{example:?}");
    let positions: Vec<_> = example.events.iter().map(|e| e.pos.clone()).collect();
    assert_eq!(positions, [Some("x 0@1".to_string()), Some("x 0@3".to_string())]);
}

// kafka_test.clj:616 `duplicate-test` "hash-insensitive": ten values each sent at offset 0 and
// read at offset 1: every one is a duplicate, and both offsets are inconsistent.
#[test]
fn jepsen_duplicate_many_values_at_two_offsets() {
    let mut h = History::default();
    for value in 0..10 {
        let id = value.to_string();
        h.send(0, "ok", &[("x", &id, Some(0))], false).poll(1, &[("x", &id, 1)]);
    }
    let v = h.check();
    assert_eq!(v.counts.stored_twice, 10, "{v:#?}");
    assert_eq!(v.counts.inconsistent_positions, 2);
}

// kafka_test.clj:650 `duplicate-test` "aborted txns": 0 acknowledged at 1; 1's send failed (its
// reported offset 2 never happened); a read sees 0@11 and 1@12: 0 is stored twice, 1 is not.
#[test]
fn jepsen_duplicate_ignores_a_failed_send_position() {
    let mut h = History::default();
    h.send(0, "ok", &[("x", "0", Some(1))], false)
        .send(0, "fail", &[("x", "1", Some(2))], false)
        .poll(1, &[("x", "0", 11), ("x", "1", 12)]);
    let v = h.check();
    assert_eq!(v.counts.stored_twice, 1, "{v:#?}");
    assert_eq!(named(&v, "stored-twice"), ["0"]);
    assert_eq!(v.counts.failed_delivered, 1);
}

#[test]
fn a_position_that_is_not_partition_at_offset_is_an_error() {
    let text = "{\"history\":1,\"positions\":\"log\"}\n\
        {\"index\":0,\"time\":0,\"process\":0,\"type\":\"ok\",\"f\":\"deliver\",\"value\":{\"messages\":[{\"id\":\"a\",\"pos\":\"ledger-7\"}]}}\n";
    let reader = HistoryReader::new(Box::new(Cursor::new(text.as_bytes().to_vec())));
    let e = checker::check(reader, None, 1).unwrap_err().to_string();
    assert!(e.contains("index 0 has the position `ledger-7`"), "{e}");
    assert!(e.contains("partition@offset"), "{e}");
}

// Not a Jepsen case: a read_committed consumer passes over an aborted transaction's messages,
// which a read_uncommitted group did read. That is no skip; passing over a committed one is.
#[test]
fn passing_over_aborted_messages_is_no_skip() {
    let mut h = History::default();
    h.send(0, "ok", &[("x", "a", Some(0))], false)
        .send(0, "fail", &[("x", "aborted", Some(1))], true)
        .send(0, "ok", &[("x", "c", Some(2))], false);
    h.event(json!({"process": 9, "type": "ok", "f": "deliver", "value": {"group": "uncommitted",
        "messages": [{"id": "a", "dest": "x", "pos": "0@0"}, {"id": "aborted", "dest": "x", "pos": "0@1"}, {"id": "c", "dest": "x", "pos": "0@2"}]}}));
    h.poll(5, &[("x", "a", 0), ("x", "c", 2)]);
    let v = h.check();
    assert_eq!(v.counts.skips, 0, "{v:#?}");
    assert_eq!(
        v.counts.failed_delivered, 1,
        "the uncommitted group saw the aborted message"
    );
    // The same jump over a committed message is a skip.
    let mut h = History::default();
    h.send(0, "ok", &[("x", "a", Some(0))], false)
        .send(0, "ok", &[("x", "b", Some(1))], false)
        .send(0, "ok", &[("x", "c", Some(2))], false)
        .poll(5, &[("x", "a", 0), ("x", "c", 2)])
        .poll(6, &[("x", "b", 1)]);
    assert_eq!(h.check().counts.skips, 1);
}

/// Loss described per producer: a suffix after the last delivered message, holes in the
/// middle, and how many were sent while a fault was in force.
#[test]
fn loss_is_described_per_producer() {
    let mut h = History::default();
    // Process 0: a b c delivered, d e lost (a suffix). Process 1: f delivered, g lost, h
    // delivered (a hole in the middle), g sent during a kill.
    for (i, id) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        h.send(0, "ok", &[("x", id, Some(i as u64))], false);
    }
    h.send(1, "ok", &[("y", "f", Some(0))], false);
    h.event(json!({"process": "nemesis", "type": "invoke", "f": "start-kill", "op": 90, "value": {"node": 0}}));
    h.event(json!({"process": "nemesis", "type": "ok", "f": "start-kill", "op": 90, "value": {"node": 0}}));
    h.send(1, "ok", &[("y", "g", Some(1))], false);
    h.event(json!({"process": "nemesis", "type": "invoke", "f": "stop-kill", "op": 91}));
    h.event(json!({"process": "nemesis", "type": "ok", "f": "stop-kill", "op": 91}));
    h.send(1, "ok", &[("y", "h", Some(2))], false);
    h.event(json!({"process": 0, "type": "invoke", "f": "drain", "op": 99}));
    h.poll(
        5,
        &[
            ("x", "a", 0),
            ("x", "b", 1),
            ("x", "c", 2),
            ("y", "f", 0),
            ("y", "h", 2),
        ],
    );
    h.event(json!({"process": 0, "type": "ok", "f": "drain", "op": 99}));
    let v = h.check();
    assert_eq!(v.counts.lost, 3, "{v:#?}");
    let shapes: Vec<(u64, u64, u64, &str, u64)> = v
        .loss_shapes
        .iter()
        .map(|l| (l.process, l.acknowledged, l.lost, l.shape, l.sent_during_faults))
        .collect();
    assert_eq!(shapes, [(0, 5, 2, "suffix", 0), (1, 3, 1, "middle", 1)]);
}
