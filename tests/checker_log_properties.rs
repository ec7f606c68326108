//! Property tests for the log checks (`"positions":"log"`): a model of partitioned logs, one
//! producer and one consumer per partition plants inconsistent positions, messages stored twice,
//! loss that only the positions prove (no drain needed), skips and reordered sends, each
//! surrounded by ordinary messages so that their counts are exact; over many random cases the
//! checker must report exactly what was planted.

use std::io::Cursor;

use ackcheck::checker;
use ackcheck::history::reader::HistoryReader;
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    Normal,
    /// Its consumer rebalances and resumes past it: never delivered, a later offset is.
    Lost,
    /// Its consumer reads past it without a rebalance; another process delivers it later.
    Skipped,
    /// Another message is acknowledged at its offset too, and never delivered.
    Inconsistent,
    /// Stored again at the next offset (a retried write), and both copies delivered.
    StoredTwice,
    /// Sent only after the next offset's message was acknowledged.
    Reordered,
}

#[derive(Debug, Default, PartialEq)]
struct Planted {
    messages: u64,
    delivered: u64,
    lost: u64,
    duplicated: u64,
    stored_twice: u64,
    inconsistent: u64,
    skips: u64,
    reorders: u64,
}

#[derive(Default)]
struct Out {
    lines: Vec<Value>,
}

impl Out {
    fn push(&mut self, mut e: Value) {
        let i = self.lines.len() as u64;
        e["index"] = json!(i);
        e["time"] = json!(i * 1000);
        self.lines.push(e);
    }

    fn send(&mut self, process: u64, id: &str, partition: u64, offset: u64) {
        let op = self.lines.len();
        self.push(json!({"process": process, "type": "invoke", "f": "send", "op": op,
            "value": {"messages": [{"id": id, "dest": "t"}]}}));
        self.push(json!({"process": process, "type": "ok", "f": "send", "op": op,
            "value": {"messages": [{"id": id, "dest": "t", "pos": format!("{partition}@{offset}")}]}}));
    }

    fn deliver(&mut self, process: u64, id: &str, partition: u64, offset: u64) {
        self.push(json!({"process": process, "type": "ok", "f": "deliver",
            "value": {"group": "g", "messages": [{"id": id, "dest": "t", "pos": format!("{partition}@{offset}")}]}}));
    }
}

/// The fates of one partition's offsets: anomalies never at the first or last offset and never
/// next to each other, so that each is seen alone.
fn fates(rng: &mut SmallRng, len: usize, rate: f64) -> Vec<Fate> {
    let mut fates = vec![Fate::Normal; len];
    let mut o = 1;
    while o + 1 < len {
        if rng.gen_bool(rate) {
            fates[o] = match rng.gen_range(0..5) {
                0 => Fate::Lost,
                1 => Fate::Skipped,
                2 => Fate::Inconsistent,
                3 => Fate::StoredTwice,
                _ => Fate::Reordered,
            };
            o += 3; // the copy of a stored-twice message takes o + 1; o + 2 stays ordinary
        } else {
            o += 1;
        }
    }
    fates
}

fn generate(seed: u64, partitions: u64, rate: f64, drain: bool) -> (Vec<Value>, Planted) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut out = Out::default();
    let mut planted = Planted::default();
    // (partition, offset, id) of each stored copy, in log order, and the reads to make.
    let mut logs: Vec<Vec<(String, Fate)>> = Vec::new();
    for p in 0..partitions {
        let len = rng.gen_range(4..40);
        let fates = fates(&mut rng, len, rate);
        let mut log: Vec<(String, Fate)> = Vec::new();
        for (o, &fate) in fates.iter().enumerate() {
            let id = format!("p{p}-{o}");
            log.push((id.clone(), fate));
            if fate == Fate::StoredTwice {
                log.push((id, Fate::StoredTwice));
            }
        }
        logs.push(log);
    }
    // Sends: offsets in order, except a reordered message, sent after the next one's ack.
    for (p, log) in logs.iter().enumerate() {
        let producer = 100 + p as u64;
        let p = p as u64;
        let mut o = 0;
        while o < log.len() {
            let (id, fate) = &log[o];
            match fate {
                Fate::Reordered => {
                    out.send(producer, &log[o + 1].0, p, o as u64 + 1);
                    out.send(producer, id, p, o as u64);
                    planted.reorders += 1;
                    planted.messages += 2;
                    o += 2;
                    continue;
                }
                Fate::StoredTwice => {
                    // One logical send, acknowledged at its first copy; the second copy is the
                    // retry's, which the producer never heard of.
                    out.send(producer, id, p, o as u64);
                    planted.messages += 1;
                    planted.stored_twice += 1;
                    planted.duplicated += 1;
                    o += 2;
                    continue;
                }
                Fate::Inconsistent => {
                    out.send(producer, id, p, o as u64);
                    out.send(producer, &format!("{id}-clash"), p, o as u64);
                    planted.messages += 2;
                    planted.inconsistent += 1;
                    planted.lost += 1; // the clashing message is never delivered
                }
                _ => {
                    out.send(producer, id, p, o as u64);
                    planted.messages += 1;
                }
            }
            o += 1;
        }
    }
    if drain {
        out.push(json!({"process": 0, "type": "invoke", "f": "drain", "op": 999_999}));
    }
    // Reads, one consumer per partition in offset order.
    let mut late = Vec::new();
    for (p, log) in logs.iter().enumerate() {
        let consumer = 200 + p as u64;
        let p = p as u64;
        let mut last_delivered = None;
        for (o, (id, fate)) in log.iter().enumerate() {
            match fate {
                Fate::Lost => {
                    out.push(json!({"process": consumer, "type": "ok", "f": "rebalance"}));
                    planted.lost += 1;
                }
                Fate::Skipped => {
                    late.push((id.clone(), p, o as u64));
                    planted.skips += 1;
                }
                _ => {
                    out.deliver(consumer, id, p, o as u64);
                    if last_delivered.as_ref() != Some(id) {
                        planted.delivered += 1;
                    }
                    last_delivered = Some(id.clone());
                }
            }
        }
    }
    for (n, (id, p, o)) in late.into_iter().enumerate() {
        out.deliver(10_000 + n as u64, &id, p, o);
        planted.delivered += 1;
    }
    if drain {
        out.push(json!({"process": 0, "type": "ok", "f": "drain", "op": 999_999}));
    }
    (out.lines, planted)
}

fn judge(lines: &[Value]) -> checker::Verdict {
    let mut text = String::from("{\"history\":1,\"positions\":\"log\"}\n");
    for line in lines {
        text.push_str(&line.to_string());
        text.push('\n');
    }
    let reader = HistoryReader::new(Box::new(Cursor::new(text.into_bytes())));
    checker::check(reader, None, 3).expect("a valid history")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn log_checks_report_exactly_the_planted_truth(
        seed in any::<u64>(),
        partitions in 1u64..5,
        rate in 0.0..0.5f64,
        drain in any::<bool>(),
    ) {
        let (lines, planted) = generate(seed, partitions, rate, drain);
        let v = judge(&lines);
        let c = &v.counts;
        let found = Planted {
            messages: c.messages,
            delivered: c.delivered,
            lost: c.lost,
            duplicated: c.duplicated,
            stored_twice: c.stored_twice,
            inconsistent: c.inconsistent_positions,
            skips: c.skips,
            reorders: c.send_reorders,
        };
        prop_assert_eq!(&found, &planted);
        // Every loss here is proven by a position: no drain is needed.
        prop_assert_eq!(c.lost_by_position, planted.lost);
        prop_assert_eq!(c.unseen, 0);
        prop_assert_eq!(v.duplicate_causes.written_twice, planted.stored_twice);
        prop_assert_eq!(c.acknowledged, c.messages);
    }
}

/// The model must plant every kind: a test that cannot fail is a defect.
#[test]
fn the_model_plants_every_anomaly() {
    let (lines, planted) = generate(7, 4, 0.5, false);
    assert!(
        planted.lost > 0 && planted.skips > 0 && planted.inconsistent > 0,
        "{planted:?}"
    );
    assert!(planted.stored_twice > 0 && planted.reorders > 0, "{planted:?}");
    let v = judge(&lines);
    for kind in [
        "lost",
        "skip",
        "inconsistent-positions",
        "stored-twice",
        "send-reordered",
    ] {
        assert!(
            v.examples.contains_key(kind),
            "no {kind} example: {:?}",
            v.examples.keys()
        );
    }
}
