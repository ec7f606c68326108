//! Property tests: a model of producers, a broker and consumer groups (`ackcheck::synth`) plants
//! loss, producer duplicates, redeliveries, indeterminate and failed sends, unexpected messages,
//! reordering, aborted and torn transactions and pipeline duplicates; over thousands of random
//! cases the checker must report exactly the planted truth.

use std::io::Cursor;

use ackcheck::checker;
use ackcheck::history::reader::HistoryReader;
use ackcheck::synth::{self, Plan};
use proptest::prelude::*;

fn plans() -> impl Strategy<Value = Plan> {
    (
        (
            any::<u64>(),
            20u64..300,
            1u64..6,
            1u64..4,
            1usize..13,
            any::<bool>(),
            any::<bool>(),
        ),
        (
            0.0..0.1f64,
            0.0..0.1f64,
            0.0..0.1f64,
            0.0..0.1f64,
            0.0..0.1f64,
            0.0..0.05f64,
            0.0..0.1f64,
        ),
        (0.0..0.15f64, 0.0..0.4f64, 0.0..0.4f64),
    )
        .prop_map(|(shape, rates, atomic)| {
            let (seed, messages, producers, groups, batch, drain, pipeline) = shape;
            let (loss, written_twice, redelivered, indeterminate, failed, unexpected, reordered) = rates;
            let (atomic, aborted, torn) = atomic;
            Plan {
                seed,
                messages,
                producers,
                groups,
                batch,
                drain,
                claim: None,
                loss,
                written_twice,
                redelivered,
                indeterminate,
                failed,
                unexpected,
                reordered,
                atomic,
                aborted,
                torn,
                pipeline,
                log_positions: false,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn checker_reports_exactly_the_planted_truth(plan in plans()) {
        let mut history = Vec::new();
        let truth = synth::generate(&plan, &mut history).unwrap();
        let reader = HistoryReader::new(Box::new(Cursor::new(history)));
        let verdict = checker::check(reader, None, 1).unwrap();
        prop_assert_eq!(&verdict.counts, &truth.counts);
        prop_assert_eq!(&verdict.duplicate_causes, &truth.duplicate_causes);
        prop_assert_eq!(verdict.evidence.drained, plan.drain);
        prop_assert_eq!(verdict.pipeline, plan.pipeline && truth.counts.delivered > 0);
    }
}

/// The model must really plant what it claims: a test that cannot fail is a defect, so check
/// that a fault-heavy plan yields every anomaly kind at least once.
#[test]
fn the_model_plants_every_anomaly() {
    let plan = Plan {
        messages: 3000,
        groups: 2,
        loss: 0.05,
        written_twice: 0.05,
        redelivered: 0.05,
        indeterminate: 0.05,
        failed: 0.05,
        unexpected: 0.02,
        reordered: 0.05,
        atomic: 0.1,
        aborted: 0.3,
        torn: 0.3,
        ..Plan::default()
    };
    let truth = synth::generate(&plan, &mut Vec::new()).unwrap();
    let c = &truth.counts;
    for (name, n) in [
        ("lost", c.lost),
        ("duplicated", c.duplicated),
        ("unexpected", c.unexpected),
        ("recovered", c.recovered),
        ("failed_delivered", c.failed_delivered),
        ("torn", c.torn),
        ("order_violations", c.order_violations),
        ("indeterminate", c.indeterminate),
        ("written_twice", truth.duplicate_causes.written_twice),
        ("redelivered", truth.duplicate_causes.redelivered),
    ] {
        assert!(n > 0, "the model planted no {name}: {truth:?}");
    }
}
