//! The reader: every malformed input gives its line number and what was wrong; a last line cut
//! off mid-write is reported and ignored.

use std::io::Cursor;

use ackcheck::history::reader::{HistoryReader, Record};
use ackcheck::history::writer::Recorder;
use ackcheck::history::{EventType, Header, Message, OpValue, Process};

fn read_all(text: &str) -> Result<Vec<Record>, String> {
    let reader = HistoryReader::new(Box::new(Cursor::new(text.as_bytes().to_vec())));
    reader.collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())
}

fn error_of(text: &str) -> String {
    read_all(text).expect_err("this history must be rejected")
}

const SEND_INVOKE: &str =
    r#"{"index":0,"time":0,"process":1,"type":"invoke","f":"send","value":{"messages":[{"id":"a"}]}}"#;

#[test]
fn reads_header_events_and_pairs_completions() {
    let text = format!(
        "{}\n{}\n{}\n",
        r#"{"history":1,"claim":"at-least-once","broker":"kafka","seed":7,"config":{"acks":"all"}}"#,
        SEND_INVOKE,
        r#"{"index":1,"time":5,"process":1,"type":"ok","f":"send"}"#
    );
    let records = read_all(&text).unwrap();
    assert_eq!(records.len(), 3);
    match &records[0] {
        Record::Header { header, line } => {
            assert_eq!(*line, 1);
            assert_eq!(header.claim.map(|c| c.name()), Some("at-least-once"));
            assert_eq!(header.seed, Some(7));
        }
        other => panic!("expected the header, got {other:?}"),
    }
    match &records[2] {
        Record::Event {
            line,
            event,
            invocation: Some(inv),
        } => {
            assert_eq!(*line, 3);
            assert_eq!(event.kind, EventType::Ok);
            assert_eq!(inv.messages()[0].id, "a");
        }
        other => panic!("expected a paired completion, got {other:?}"),
    }
}

#[test]
fn bad_json_names_the_line() {
    let text = format!("{SEND_INVOKE}\n{{\"index\":1,\n");
    let e = error_of(&format!(
        "{text}{}\n",
        r#"{"index":2,"time":0,"process":1,"type":"ok","f":"send"}"#
    ));
    assert!(e.starts_with("line 2: bad JSON"), "{e}");
}

#[test]
fn unknown_type_names_the_line_and_the_values() {
    let e = error_of(&format!(
        "{SEND_INVOKE}\n{}\n",
        r#"{"index":1,"time":0,"process":1,"type":"done","f":"send"}"#
    ));
    assert!(e.starts_with("line 2: invalid event: unknown variant `done`"), "{e}");
    assert!(e.contains("`invoke`, `ok`, `fail`, `info`"), "{e}");
}

#[test]
fn missing_field_names_the_field() {
    let e = error_of(r#"{"index":0,"process":1,"type":"invoke","f":"send"}"#);
    assert!(e.starts_with("line 1: invalid event: missing field `time`"), "{e}");
}

#[test]
fn message_without_id_is_rejected() {
    let e =
        error_of(r#"{"index":0,"time":0,"process":1,"type":"invoke","f":"send","value":{"messages":[{"key":"k"}]}}"#);
    assert!(e.contains("line 1") && e.contains("missing field `id`"), "{e}");
}

#[test]
fn index_must_increase() {
    let text = format!(
        "{SEND_INVOKE}\n{}\n",
        r#"{"index":0,"time":1,"process":1,"type":"ok","f":"send"}"#
    );
    let e = error_of(&text);
    assert_eq!(e, "line 2: index 0 does not increase (line 1 has index 0)");
}

#[test]
fn completion_without_invocation_is_rejected() {
    let e = error_of(r#"{"index":0,"time":0,"process":4,"type":"ok","f":"send"}"#);
    assert_eq!(e, "line 1: completion of send by process 4 has no open invocation");
    let e = error_of(r#"{"index":0,"time":0,"process":4,"type":"fail","f":"send","op":9}"#);
    assert_eq!(e, "line 1: completion of send with op 9 has no open invocation");
}

#[test]
fn second_invocation_while_open_is_rejected() {
    let text = format!(
        "{SEND_INVOKE}\n{}\n",
        r#"{"index":1,"time":0,"process":1,"type":"invoke","f":"send"}"#
    );
    let e = error_of(&text);
    assert_eq!(
        e,
        "line 2: process 1 invokes send without an op id while its invocation on line 1 is still open"
    );
}

#[test]
fn bad_process_and_header_position() {
    let e = error_of(r#"{"index":0,"time":0,"process":"bob","type":"invoke","f":"send"}"#);
    assert!(
        e.starts_with("line 1: invalid event: invalid value: string \"bob\""),
        "{e}"
    );
    let e = error_of(&format!("{SEND_INVOKE}\n{}\n", r#"{"history":1}"#));
    assert_eq!(
        e,
        "line 2: a header (an object with \"history\") may only be the first line"
    );
    let e = error_of(r#"{"history":2}"#);
    assert_eq!(
        e,
        "line 1: history format version 2 is not supported (this ackcheck reads version 1)"
    );
    let e = error_of(r#"{"history":1,"claim":"maybe-once"}"#);
    assert!(
        e.starts_with("line 1: invalid header: unknown variant `maybe-once`"),
        "{e}"
    );
}

#[test]
fn cut_off_last_line_is_reported_and_ignored() {
    let text = format!("{SEND_INVOKE}\n{}", r#"{"index":1,"time":5,"process":1,"type":"o"#);
    let mut reader = HistoryReader::new(Box::new(Cursor::new(text.into_bytes())));
    let records: Vec<Record> = reader.by_ref().collect::<Result<_, _>>().unwrap();
    assert_eq!(reader.truncated_line, Some(2));
    // The invocation never completed: it comes back as unfinished at the end.
    assert!(matches!(records.last(), Some(Record::Unfinished { line: 1, .. })));
    // A complete last line without a newline is fine.
    let text = format!(
        "{SEND_INVOKE}\n{}",
        r#"{"index":1,"time":5,"process":1,"type":"ok","f":"send"}"#
    );
    let mut reader = HistoryReader::new(Box::new(Cursor::new(text.into_bytes())));
    assert_eq!(reader.by_ref().count(), 2);
    assert_eq!(reader.truncated_line, None);
}

#[test]
fn bad_line_in_the_middle_of_a_large_history_names_the_right_line() {
    // Several chunks, so that the line numbers cross chunk boundaries and parallel parsing.
    let mut text = String::new();
    for i in 0..60_000u64 {
        if i == 45_678 {
            text.push_str("{not json}\n");
            continue;
        }
        text.push_str(&format!(
            "{{\"index\":{i},\"time\":{i},\"process\":1,\"type\":\"ok\",\"f\":\"deliver\",\"value\":{{\"group\":\"g\",\"messages\":[{{\"id\":\"m{i}\",\"pos\":\"0@{i}\"}}]}}}}\n"
        ));
    }
    let e = error_of(&text);
    assert!(e.starts_with("line 45679: bad JSON"), "{e}");
}

#[test]
fn recorder_writes_what_the_reader_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.jsonl");
    let header = Header {
        history: 1,
        broker: Some("test".into()),
        ..Header::default()
    };
    let rec = Recorder::create(&path, &header).unwrap();
    let value = OpValue {
        messages: vec![Message::new("m1")],
        ..OpValue::default()
    };
    let op = rec.invoke(Process::Client(3), "send", Some(value)).unwrap();
    rec.complete(Process::Client(3), op, EventType::Ok, "send", None, None)
        .unwrap();
    rec.event(Process::Nemesis, EventType::Info, "start-kill", None, None)
        .unwrap();
    // The flusher reaches the disk within the interval, without close.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let on_disk = std::fs::read_to_string(&path).unwrap();
    assert_eq!(on_disk.lines().count(), 4, "{on_disk}");
    rec.close().unwrap();
    let reader = HistoryReader::open(&path).unwrap();
    let records: Vec<Record> = reader.collect::<Result<_, _>>().unwrap();
    assert_eq!(records.len(), 4);
    assert!(matches!(
        &records[2],
        Record::Event {
            invocation: Some(_),
            ..
        }
    ));
}
