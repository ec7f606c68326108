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

// Format v1 is strict: each of these was accepted or answered vaguely before.

#[test]
fn an_unknown_field_is_an_error_naming_the_line_and_the_field() {
    let e = error_of(&format!(
        "{SEND_INVOKE}\n{}\n",
        r#"{"index":1,"time":5,"process":1,"type":"invoke","f":"send","op":2,"valeu":{"messages":[{"id":"b"}]}}"#
    ));
    assert!(e.starts_with("line 2: invalid event: unknown field `valeu`"), "{e}");
    assert!(e.contains("(field `valeu`"), "{e}");
    // In a send's value and in a message.
    let e = error_of(r#"{"index":0,"time":0,"process":1,"type":"invoke","f":"send","value":{"mesages":[]}}"#);
    assert!(
        e.contains("unknown field `mesages`") && e.contains("field `value.mesages`"),
        "{e}"
    );
    let e = error_of(
        r#"{"index":0,"time":0,"process":1,"type":"ok","f":"deliver","value":{"group":"g","messages":[{"id":"a","partition":3}]}}"#,
    );
    assert!(e.starts_with("line 1: invalid event: unknown field `partition`"), "{e}");
    assert!(e.contains("field `value.messages[0].partition`"), "{e}");
    // A send's value has no group, a delivery's no atomic.
    let e =
        error_of(r#"{"index":0,"time":0,"process":1,"type":"ok","f":"deliver","value":{"atomic":true,"messages":[]}}"#);
    assert!(e.contains("field `value.atomic`"), "{e}");
}

#[test]
fn free_form_values_of_other_operations_are_kept() {
    let text = r#"{"index":0,"time":0,"process":"nemesis","type":"info","f":"start-kill","value":{"node":1,"whatever":[1,2]}}
{"index":1,"time":0,"process":3,"type":"info","f":"crash","value":{"group":"g","point":"after-processing","dropped":["a"]}}
"#;
    let records = read_all(text).unwrap();
    match &records[0] {
        Record::Event { event, .. } => {
            assert_eq!(event.value.as_ref().unwrap().extra["node"], 1);
        }
        other => panic!("expected an event, got {other:?}"),
    }
    match &records[1] {
        Record::Event { event, .. } => assert_eq!(event.value.as_ref().unwrap().group.as_deref(), Some("g")),
        other => panic!("expected an event, got {other:?}"),
    }
}

#[test]
fn a_message_must_be_an_object() {
    let e = error_of(
        r#"{"index":0,"time":0,"process":1,"type":"invoke","f":"send","value":{"messages":[["order-1","order-2"]]}}"#,
    );
    assert!(
        e.starts_with("line 1: invalid event: invalid type: sequence, expected a message object"),
        "{e}"
    );
    assert!(e.contains("field `value.messages[0]`"), "{e}");
    // A send's value must be an object too (a list there used to read as "no messages").
    let e = error_of(r#"{"index":0,"time":0,"process":1,"type":"invoke","f":"send","value":[{"id":"a"}]}"#);
    assert!(
        e.contains("expected a send's value") && e.contains("field `value`"),
        "{e}"
    );
}

#[test]
fn a_value_before_its_operation_is_read_as_strictly() {
    let ok = r#"{"value":{"messages":[{"id":"a"}]},"index":0,"time":0,"process":1,"type":"invoke","f":"send"}
{"index":1,"time":1,"process":1,"type":"ok","f":"send"}
"#;
    let records = read_all(ok).unwrap();
    match &records[1] {
        Record::Event {
            invocation: Some(inv), ..
        } => assert_eq!(inv.messages()[0].id, "a"),
        other => panic!("expected a paired completion, got {other:?}"),
    }
    let e = error_of(
        r#"{"value":{"messages":[{"id":"a","bogus":1}]},"index":0,"time":0,"process":1,"type":"invoke","f":"send"}"#,
    );
    assert!(
        e.contains("unknown field `bogus`") && e.contains("value.messages[0]"),
        "{e}"
    );
}

#[test]
fn errors_name_the_field_not_just_the_column() {
    let e = error_of(r#"{"index":0,"time":0,"process":1,"type":"invoke","f":"send","value":{"messages":[{"id":3}]}}"#);
    assert!(
        e.starts_with("line 1: invalid event: invalid type: integer `3`, expected a string"),
        "{e}"
    );
    assert!(e.contains("field `value.messages[0].id`"), "{e}");
    let e = error_of(r#"{"index":-1,"time":0,"process":1,"type":"invoke","f":"send"}"#);
    assert!(e.contains("field `index`"), "{e}");
    let e = error_of(r#"{"index":0,"time":0,"process":1,"type":7,"f":"send"}"#);
    assert!(
        e.contains("expected one of \"invoke\", \"ok\", \"fail\", \"info\"") && e.contains("field `type`"),
        "{e}"
    );
}

#[test]
fn a_header_claim_of_the_wrong_type_names_the_field() {
    let e = error_of(r#"{"history":1,"claim":1}"#);
    assert!(
        e.starts_with("line 1: invalid header: invalid type: integer `1`, expected one of \"at-most-once\""),
        "{e}"
    );
    assert!(e.contains("field `claim`"), "{e}");
    let e = error_of(r#"{"history":1,"claim_groups":"g1"}"#);
    assert!(e.contains("field `claim_groups`"), "{e}");
}

#[test]
fn a_byte_order_mark_may_start_the_file_and_nothing_else() {
    let text = format!("\u{feff}{}\n{SEND_INVOKE}\n", r#"{"history":1,"claim":"exactly-once"}"#);
    let records = read_all(&text).unwrap();
    assert!(matches!(&records[0], Record::Header { .. }), "{records:?}");
    // Also before a first line that is an event.
    assert_eq!(read_all(&format!("\u{feff}{SEND_INVOKE}\n")).unwrap().len(), 2);
    let e = error_of(&format!(
        "{SEND_INVOKE}\n\u{feff}{}\n",
        r#"{"index":1,"time":5,"process":1,"type":"ok","f":"send"}"#
    ));
    assert!(e.starts_with("line 2: starts with a UTF-8 byte-order mark"), "{e}");
}

#[test]
fn a_last_line_cut_inside_a_character_is_ignored_as_cut_off() {
    let mut text = format!("{SEND_INVOKE}\n").into_bytes();
    let cut = r#"{"index":1,"time":5,"process":1,"type":"ok","f":"deliver","value":{"group":"é"#.as_bytes();
    text.extend_from_slice(&cut[..cut.len() - 1]); // half of the two bytes of "é"
    let mut reader = HistoryReader::new(Box::new(Cursor::new(text)));
    let records: Vec<Record> = reader.by_ref().collect::<Result<_, _>>().unwrap();
    assert_eq!(reader.truncated_line, Some(2));
    assert_eq!(records.len(), 2, "the invocation, then it as unfinished");
    // The same bytes in the middle of the file are an error.
    let mut text = format!("{SEND_INVOKE}\n").into_bytes();
    text.extend_from_slice(&cut[..cut.len() - 1]);
    text.extend_from_slice(b"\n");
    let reader = HistoryReader::new(Box::new(Cursor::new(text)));
    let e = reader.collect::<Result<Vec<_>, _>>().unwrap_err().to_string();
    assert!(e.starts_with("line 2: not UTF-8"), "{e}");
}

#[test]
fn a_line_past_the_limit_ends_with_a_clear_error() {
    // Like `ackcheck check /dev/zero`: no newline, ever (tests/cli_check.rs runs /dev/zero
    // itself). 100 MiB of it: the reader must stop at its limit, not read it all and then
    // call it bad JSON.
    use std::io::Read;
    let started = std::time::Instant::now();
    let reader = HistoryReader::new(Box::new(std::io::repeat(0).take(100 << 20)));
    let e = reader.collect::<Result<Vec<_>, _>>().unwrap_err().to_string();
    assert!(e.starts_with("line 1: longer than 64 MiB without a newline"), "{e}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_long_line_below_the_limit_is_read_whole() {
    // One delivery of 200,000 messages, about 8 MB on one line, read across many blocks.
    let mut line =
        String::from(r#"{"index":0,"time":0,"process":1,"type":"ok","f":"deliver","value":{"group":"g","messages":["#);
    for i in 0..200_000 {
        if i > 0 {
            line.push(',');
        }
        line.push_str(&format!(r#"{{"id":"message-{i}","pos":"0@{i}"}}"#));
    }
    line.push_str("]}}\n");
    let records = read_all(&line).unwrap();
    match &records[0] {
        Record::Event { event, .. } => assert_eq!(event.messages().len(), 200_000),
        other => panic!("expected the delivery, got {other:?}"),
    }
}

/// `from_bytes` (no threads, for small in-memory histories) reads exactly what `new` reads:
/// the same verdicts and the same errors.
#[test]
fn reading_from_bytes_on_the_calling_thread_is_the_same_as_reading_a_stream() {
    use ackcheck::checker;
    let orders = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/orders.jsonl")).unwrap();
    let cut = orders[..orders.len() - 7].to_vec(); // a last line cut off mid-write
    let bad = b"{\"history\":1}\n{\"index\":0,\"time\":0,\"process\":1,\"type\":\"ok\",\"f\":\"send\"}\n".to_vec();
    for input in [orders, cut, bad, Vec::new()] {
        let threaded = checker::check(
            HistoryReader::new(Box::new(std::io::Cursor::new(input.clone()))),
            None,
            3,
        );
        let here = checker::check(HistoryReader::from_bytes(input), None, 3);
        match (threaded, here) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            (a, b) => panic!("different answers: {a:?} / {b:?}"),
        }
    }
}
