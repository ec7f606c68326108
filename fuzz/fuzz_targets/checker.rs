//! Arbitrary histories, built from operations so that most are valid (sends with their
//! completions, deliveries, crashes, a drain, rebalances, faults; ids, dests, groups and
//! positions from small sets so that they collide), judged with and without log positions.
//! Beyond "no panic", the verdict must be consistent with itself.
#![no_main]

use ackcheck::checker::{self, CheckOptions, Observed, Verdict};
use ackcheck::history::reader::HistoryReader;
use ackcheck::history::Guarantee;
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

#[derive(Arbitrary, Debug)]
struct Msg {
    id: u8,
    dest: u8,
    key: Option<u8>,
    from: Option<u8>,
    /// (partition, offset)
    pos: Option<(u8, u8)>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// A send, its completion (0 ok, 1 fail, 2 info, 3 never) and where the broker put it.
    Send {
        process: u8,
        messages: Vec<Msg>,
        atomic: bool,
        outcome: u8,
    },
    Deliver {
        process: u8,
        group: u8,
        messages: Vec<Msg>,
        skipped: Vec<Msg>,
    },
    Crash {
        process: u8,
        group: u8,
        planned: u8,
    },
    Rebalance {
        process: u8,
        keep: Option<(u8, u8)>,
    },
    Fault {
        kind: u8,
        node: u8,
        skipped: bool,
    },
    DrainStart,
    DrainEnd,
    /// Time passes (milliseconds).
    Wait(u16),
}

#[derive(Arbitrary, Debug)]
struct Input {
    log_positions: bool,
    claim: u8,
    group_claim: Option<u8>,
    ops: Vec<Op>,
}

struct Out {
    lines: Vec<Value>,
    time: u64,
    op: u64,
}

impl Out {
    fn push(&mut self, mut e: Value) {
        e["index"] = json!(self.lines.len());
        e["time"] = json!(self.time);
        self.time += 1_000;
        self.lines.push(e);
    }
}

fn message(m: &Msg, with_pos: bool) -> Value {
    let mut v = json!({"id": format!("m{}", m.id % 24), "dest": format!("d{}", m.dest % 3)});
    if let Some(k) = m.key {
        v["key"] = json!(format!("k{}", k % 4));
    }
    if let Some(f) = m.from {
        v["from"] = json!(format!("m{}", f % 24));
    }
    if let (true, Some((p, o))) = (with_pos, m.pos) {
        v["pos"] = json!(format!("{}@{}", p % 3, o % 32));
    }
    v
}

fn history(input: &Input) -> Vec<u8> {
    let claim = ["at-most-once", "at-least-once", "exactly-once"][input.claim as usize % 3];
    let mut header = json!({"history": 1, "claim": claim});
    if input.log_positions {
        header["positions"] = json!("log");
    }
    if let Some(g) = input.group_claim {
        header["claim_groups"] = json!([format!("g{}", g % 3)]);
    }
    let mut out = Out {
        lines: vec![header],
        time: 0,
        op: 0,
    };
    for op in input.ops.iter().take(400) {
        match op {
            Op::Send {
                process,
                messages,
                atomic,
                outcome,
            } => {
                out.op += 1;
                let p = *process as u64 % 6;
                let sent: Vec<Value> = messages.iter().take(5).map(|m| message(m, false)).collect();
                let mut value = json!({"messages": sent});
                if *atomic {
                    value["atomic"] = json!(true);
                }
                out.push(json!({"process": p, "type": "invoke", "f": "send", "op": out.op, "value": value}));
                let kind = match outcome % 4 {
                    0 => "ok",
                    1 => "fail",
                    2 => "info",
                    _ => continue,
                };
                let placed: Vec<Value> = messages.iter().take(5).map(|m| message(m, true)).collect();
                out.push(json!({"process": p, "type": kind, "f": "send", "op": out.op, "value": {"messages": placed}}));
            }
            Op::Deliver {
                process,
                group,
                messages,
                skipped,
            } => {
                let mut value = json!({
                    "group": format!("g{}", group % 3),
                    "messages": messages.iter().take(8).map(|m| message(m, true)).collect::<Vec<_>>(),
                });
                if !skipped.is_empty() {
                    value["skipped"] = json!(skipped.iter().take(3).map(|m| message(m, true)).collect::<Vec<_>>());
                }
                out.push(json!({"process": 10 + *process as u64 % 6, "type": "ok", "f": "deliver", "value": value}));
            }
            Op::Crash {
                process,
                group,
                planned,
            } => {
                let planned = ["early", "late", "stall"][*planned as usize % 3];
                out.push(
                    json!({"process": 10 + *process as u64 % 6, "type": "info", "f": "crash",
                    "value": {"group": format!("g{}", group % 3), "planned": planned, "dropped": []}}),
                );
            }
            Op::Rebalance { process, keep } => {
                let mut e = json!({"process": 10 + *process as u64 % 6, "type": "ok", "f": "rebalance"});
                if let Some((d, p)) = keep {
                    e["value"] = json!({"assigned": {format!("d{}", d % 3): [p % 3]}});
                }
                out.push(e);
            }
            Op::Fault { kind, node, skipped } => {
                let kind = ["kill", "pause", "lose-acks"][*kind as usize % 3];
                out.op += 1;
                let value = json!({"node": node % 3});
                if *skipped {
                    out.push(
                        json!({"process": "nemesis", "type": "fail", "f": format!("start-{kind}"),
                        "value": {"node": node % 3, "cause": "unhealthy"}, "error": "not healthy"}),
                    );
                    continue;
                }
                out.push(json!({"process": "nemesis", "type": "invoke", "f": format!("start-{kind}"), "op": out.op, "value": value}));
                out.push(json!({"process": "nemesis", "type": "ok", "f": format!("start-{kind}"), "op": out.op, "value": value}));
                out.time += 500_000_000;
                out.op += 1;
                out.push(json!({"process": "nemesis", "type": "invoke", "f": format!("stop-{kind}"), "op": out.op}));
                out.push(json!({"process": "nemesis", "type": "ok", "f": format!("stop-{kind}"), "op": out.op}));
            }
            Op::DrainStart => out.push(json!({"process": 0, "type": "invoke", "f": "drain", "op": 1_000_000})),
            Op::DrainEnd => out.push(json!({"process": 0, "type": "ok", "f": "drain", "op": 1_000_000})),
            Op::Wait(ms) => out.time += *ms as u64 * 1_000_000,
        }
    }
    let mut bytes = Vec::new();
    for line in &out.lines {
        bytes.extend_from_slice(line.to_string().as_bytes());
        bytes.push(b'\n');
    }
    bytes
}

/// What every verdict must satisfy, whatever the history.
fn consistent(v: &Verdict) {
    let c = &v.counts;
    assert_eq!(c.acknowledged + c.indeterminate + c.failed, c.messages, "{c:?}");
    assert!(c.lost + c.unseen <= c.acknowledged + c.indeterminate, "{c:?}");
    assert!(c.lost_by_position <= c.lost, "{c:?}");
    assert!(c.duplicated <= c.delivered, "{c:?}");
    assert!(c.unexpected <= c.delivered, "{c:?}");
    assert!(c.recovered <= c.indeterminate, "{c:?}");
    let d = &v.duplicate_causes;
    if c.duplicated > 0 {
        assert!(
            d.written_twice + d.redelivered + d.unknown >= c.duplicated,
            "{d:?} {c:?}"
        );
    }
    assert_eq!(v.verdict, Verdict::classify(c.lost, c.duplicated));
    if v.verdict == Observed::ExactlyOnce {
        assert_eq!(c.lost + c.duplicated, 0);
    }
    match v.claim_holds {
        Some(true) => assert!(v.violations.is_empty(), "{:?}", v.violations),
        Some(false) => assert!(!v.violations.is_empty()),
        None => assert!(v.violations.is_empty() || v.claim.is_none()),
    }
    if c.unexpected > 0 || c.inconsistent_positions > 0 {
        assert_eq!(v.claim_holds, Some(false), "an integrity anomaly violates every claim");
    }
    if v.claim == Some(Guarantee::AtLeastOnce) && c.lost > 0 {
        assert_eq!(v.claim_holds, Some(false));
    }
    for (kind, examples) in &v.examples {
        assert!(!examples.is_empty(), "an empty example list for {kind}");
    }
    let json: Value = serde_json::from_str(&ackcheck::report::json(v)).expect("the JSON verdict parses");
    assert_eq!(json["counts"]["messages"], json!(c.messages));
    let _ = ackcheck::report::human(v);
}

fuzz_target!(|input: Input| {
    let bytes = history(&input);
    let reader = HistoryReader::from_bytes(bytes);
    let options = CheckOptions {
        examples: 2,
        ..CheckOptions::default()
    };
    if let Ok(v) = checker::check_with(reader, &options) {
        consistent(&v);
    }
});
