//! The history recorder under concurrent recording: every event lands once, in index order, with
//! non-decreasing times, and the file reads back as format v1; events reach the file without a
//! close within the write interval.

use std::sync::Arc;

use ackcheck::history::reader::{HistoryReader, Record};
use ackcheck::history::writer::Recorder;
use ackcheck::history::{EventType, Header, Message, OpValue, Process};

#[test]
fn concurrent_recording_lands_in_index_order_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let header = Header {
        history: 1,
        ..Header::default()
    };
    let recorder = Recorder::create(&path, &header).unwrap();
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 20_000;
    let barrier = Arc::new(std::sync::Barrier::new(THREADS as usize));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let recorder = recorder.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                for i in 0..PER_THREAD / 2 {
                    let value = OpValue {
                        messages: vec![Message::new(format!("p{t}-{i}"))],
                        ..OpValue::default()
                    };
                    let op = recorder.invoke(Process::Client(t), "send", Some(value)).unwrap();
                    recorder
                        .complete(Process::Client(t), op, EventType::Ok, "send", None, None)
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    recorder.close().unwrap();
    // Closing twice is harmless; recording after close is an error, not a lost event.
    recorder.close().unwrap();
    assert!(recorder
        .event(Process::Nemesis, EventType::Info, "start-kill", None, None)
        .is_err());

    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().skip(1).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len() as u64, THREADS * PER_THREAD);
    let mut last_time = 0;
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["index"].as_u64(), Some(i as u64), "line {i}: {line}");
        let time = line["time"].as_u64().unwrap();
        assert!(time >= last_time, "time goes back at index {i}");
        last_time = time;
    }
    let records: Vec<Record> = HistoryReader::open(&path).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(records.len() as u64, THREADS * PER_THREAD + 1);
    let completions = records
        .iter()
        .filter(|r| {
            matches!(
                r,
                Record::Event {
                    invocation: Some(_),
                    ..
                }
            )
        })
        .count() as u64;
    assert_eq!(
        completions,
        THREADS * PER_THREAD / 2,
        "every completion finds its invocation"
    );
}

#[test]
fn events_reach_the_file_without_close_and_the_last_clone_closes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let recorder = Recorder::create(
        &path,
        &Header {
            history: 1,
            ..Header::default()
        },
    )
    .unwrap();
    recorder
        .event(Process::Nemesis, EventType::Info, "start-kill", None, None)
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(300);
    while std::fs::read_to_string(&path).unwrap().lines().count() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the event did not reach the file in 300 ms"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let clone = recorder.clone();
    drop(recorder);
    clone
        .event(Process::Nemesis, EventType::Info, "stop-kill", None, None)
        .unwrap();
    drop(clone);
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
}
