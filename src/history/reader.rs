//! Streaming history reader: yields the header and events with their line numbers, pairs every
//! completion with its invocation, and never holds more than a few chunks of the file.
//!
//! Lines are parsed on worker threads (JSON parsing is most of the cost of checking a history)
//! and put back in file order before sequencing checks (increasing `index`, pairing), which need
//! the order.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use std::io::{self, Read};
use std::path::Path;
use std::thread;

use crossbeam_channel::{bounded, Receiver};

use super::{ops, Event, EventType, Header, Process};

/// What went wrong on which line. Line numbers count from 1.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("line {line}: {problem}")]
    Line { line: u64, problem: String },
    #[error("cannot read the history {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl HistoryError {
    pub fn line(line: u64, problem: impl Into<String>) -> HistoryError {
        HistoryError::Line {
            line,
            problem: problem.into(),
        }
    }
}

/// One item of a history, in file order.
// Records are handed over one at a time and never stored in bulk, so the size of the `Event`
// variant costs a copy, where boxing it would cost an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Record {
    Header {
        line: u64,
        header: Header,
    },
    /// An invocation, or a completion with the invocation it completes (`None` for a standalone
    /// `deliver` or `crash` completion or a nemesis event).
    Event {
        line: u64,
        event: Event,
        invocation: Option<Event>,
    },
    /// At the end of the history: an invocation that never completed (its outcome is unknown).
    Unfinished {
        line: u64,
        invocation: Event,
    },
}

enum Parsed {
    Blank,
    Header(Header),
    Event(Event),
    /// A malformed line; `incomplete` when the JSON ends early (a line cut off mid-write).
    Bad {
        problem: String,
        incomplete: bool,
    },
}

fn bad(problem: String) -> Parsed {
    Parsed::Bad {
        problem,
        incomplete: false,
    }
}

struct Chunk {
    seq: u64,
    first_line: u64,
    bytes: Vec<u8>,
    /// The chunk holds the file's last line and that line has no newline: if it does not parse,
    /// it was cut off mid-write.
    unterminated_tail: bool,
}

struct ParsedChunk {
    seq: u64,
    lines: Vec<(u64, Parsed)>,
    unterminated_tail: bool,
}

const CHUNK_BYTES: usize = 256 * 1024;

/// Key of an open invocation: its op id, or its process when it has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum OpenKey {
    Op(u64),
    Process(Process),
}

/// Streaming reader over a history. Iterate it for [`Record`]s; the first error ends the stream.
pub struct HistoryReader {
    results: Receiver<ParsedChunk>,
    reorder: BTreeMap<u64, ParsedChunk>,
    next_seq: u64,
    current: std::vec::IntoIter<(u64, Parsed)>,
    current_unterminated: bool,
    last_index: Option<(u64, u64)>,
    open: FxHashMap<OpenKey, (u64, Event)>,
    unfinished: Option<std::vec::IntoIter<(u64, Event)>>,
    read_error: Option<Receiver<io::Error>>,
    done: bool,
    /// Set when the last line was cut off mid-write and ignored: its line number.
    pub truncated_line: Option<u64>,
}

impl HistoryReader {
    /// Open a file, or standard input for `-`.
    pub fn open(path: &Path) -> Result<HistoryReader, HistoryError> {
        if path.as_os_str() == "-" {
            return Ok(HistoryReader::new(Box::new(io::stdin())));
        }
        let file = std::fs::File::open(path).map_err(|source| HistoryError::Io {
            what: format!("file {}", path.display()),
            source,
        })?;
        Ok(HistoryReader::new(Box::new(file)))
    }

    /// Read from any byte stream.
    pub fn new(source: Box<dyn Read + Send>) -> HistoryReader {
        let workers = thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
        let (chunk_tx, chunk_rx) = bounded::<Chunk>(workers * 2);
        let (result_tx, result_rx) = bounded::<ParsedChunk>(workers * 2);
        let (error_tx, error_rx) = bounded::<io::Error>(1);
        thread::spawn(move || {
            if let Err(e) = split_chunks(source, |c| chunk_tx.send(c).is_ok()) {
                let _ = error_tx.send(e);
            }
        });
        for _ in 0..workers {
            let chunks = chunk_rx.clone();
            let results = result_tx.clone();
            thread::spawn(move || {
                for chunk in chunks {
                    let parsed = parse_chunk(chunk);
                    if results.send(parsed).is_err() {
                        break;
                    }
                }
            });
        }
        HistoryReader {
            results: result_rx,
            reorder: BTreeMap::new(),
            next_seq: 0,
            current: Vec::new().into_iter(),
            current_unterminated: false,
            last_index: None,
            open: FxHashMap::default(),
            unfinished: None,
            read_error: Some(error_rx),
            done: false,
            truncated_line: None,
        }
    }

    /// The next parsed line in file order, or None at the end of the input.
    fn next_line(&mut self) -> Option<Result<(u64, Parsed, bool), HistoryError>> {
        loop {
            if let Some((line, parsed)) = self.current.next() {
                let is_last_of_unterminated = self.current_unterminated && self.current.len() == 0;
                return Some(Ok((line, parsed, is_last_of_unterminated)));
            }
            if let Some(chunk) = self.reorder.remove(&self.next_seq) {
                self.next_seq += 1;
                self.current = chunk.lines.into_iter();
                self.current_unterminated = chunk.unterminated_tail;
                continue;
            }
            match self.results.recv() {
                Ok(chunk) => {
                    self.reorder.insert(chunk.seq, chunk);
                }
                Err(_) => {
                    if let Some(errors) = self.read_error.take() {
                        if let Ok(source) = errors.try_recv() {
                            return Some(Err(HistoryError::Io {
                                what: "input".into(),
                                source,
                            }));
                        }
                    }
                    return None;
                }
            }
        }
    }

    fn sequence(&mut self, line: u64, event: Event) -> Result<Record, HistoryError> {
        if let Some((prev_line, prev)) = self.last_index {
            if event.index <= prev {
                return Err(HistoryError::line(
                    line,
                    format!(
                        "index {} does not increase (line {prev_line} has index {prev})",
                        event.index
                    ),
                ));
            }
        }
        self.last_index = Some((line, event.index));
        let key = match event.op {
            Some(op) => OpenKey::Op(op),
            None => OpenKey::Process(event.process),
        };
        if event.kind == EventType::Invoke {
            if let Some((open_line, _)) = self.open.get(&key) {
                let what = match key {
                    OpenKey::Op(op) => format!("op {op} is invoked again"),
                    OpenKey::Process(p) => format!("process {p} invokes {} without an op id", event.f),
                };
                return Err(HistoryError::line(
                    line,
                    format!("{what} while its invocation on line {open_line} is still open"),
                ));
            }
            // The table keeps the invocation with its value (the completion needs it); the
            // record handed out now carries the rest, which is all an invocation tells alone.
            let head = Event {
                value: None,
                error: None,
                f: event.f.clone(),
                ..event
            };
            self.open.insert(key, (line, event));
            return Ok(Record::Event {
                line,
                event: head,
                invocation: None,
            });
        }
        // A completion: pair it with its invocation when one of the same operation is open.
        let matches = self.open.get(&key).is_some_and(|(_, inv)| inv.f == event.f);
        if matches {
            let (_, invocation) = self.open.remove(&key).expect("checked above");
            return Ok(Record::Event {
                line,
                event,
                invocation: Some(invocation),
            });
        }
        let standalone = event.process == Process::Nemesis
            || event.f == ops::DELIVER
            || (event.f == ops::CRASH && event.kind == EventType::Info);
        if standalone {
            return Ok(Record::Event {
                line,
                event,
                invocation: None,
            });
        }
        let problem = match (key, self.open.get(&key)) {
            (_, Some((open_line, inv))) => {
                format!(
                    "completion of {} does not match the open invocation of {} on line {open_line}",
                    event.f, inv.f
                )
            }
            (OpenKey::Op(op), None) => format!("completion of {} with op {op} has no open invocation", event.f),
            (OpenKey::Process(p), None) => format!("completion of {} by process {p} has no open invocation", event.f),
        };
        Err(HistoryError::line(line, problem))
    }
}

impl Iterator for HistoryReader {
    type Item = Result<Record, HistoryError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(unfinished) = &mut self.unfinished {
            return unfinished
                .next()
                .map(|(line, invocation)| Ok(Record::Unfinished { line, invocation }));
        }
        if self.done {
            return None;
        }
        loop {
            let (line, parsed, last_unterminated) = match self.next_line() {
                None => {
                    // End of input: hand out the invocations that never completed, in file order.
                    let mut open: Vec<(u64, Event)> = self.open.drain().map(|(_, v)| v).collect();
                    open.sort_by_key(|(line, _)| *line);
                    self.unfinished = Some(open.into_iter());
                    return self.next();
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Some(Ok(item)) => item,
            };
            let result = match parsed {
                Parsed::Blank => continue,
                Parsed::Header(header) if line == 1 => Ok(Record::Header { line, header }),
                Parsed::Header(_) => Err(HistoryError::line(
                    line,
                    "a header (an object with \"history\") may only be the first line",
                )),
                Parsed::Event(event) => self.sequence(line, event),
                Parsed::Bad { incomplete: true, .. } if last_unterminated => {
                    // Cut off mid-write by a killed recorder: report and ignore.
                    self.truncated_line = Some(line);
                    continue;
                }
                Parsed::Bad { problem, .. } => Err(HistoryError::line(line, problem)),
            };
            if result.is_err() {
                self.done = true;
            }
            return Some(result);
        }
    }
}

/// Split the input into chunks of whole lines.
fn split_chunks(mut source: Box<dyn Read + Send>, mut emit: impl FnMut(Chunk) -> bool) -> io::Result<()> {
    let mut seq = 0;
    let mut first_line = 1;
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let mut buf = std::mem::take(&mut carry);
        let start = buf.len();
        buf.resize(start + CHUNK_BYTES, 0);
        let mut filled = start;
        while filled < buf.len() {
            match source.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        buf.truncate(filled);
        let at_eof = filled < start + CHUNK_BYTES;
        if !at_eof {
            // Keep the partial last line for the next chunk.
            match memchr::memrchr(b'\n', &buf) {
                Some(nl) => carry = buf.split_off(nl + 1),
                None => {
                    carry = buf;
                    continue;
                }
            }
        }
        let lines = bytecount_newlines(&buf);
        let unterminated_tail = at_eof && buf.last().is_some_and(|&b| b != b'\n');
        let chunk = Chunk {
            seq,
            first_line,
            bytes: buf,
            unterminated_tail,
        };
        seq += 1;
        first_line += lines;
        if !emit(chunk) || at_eof {
            return Ok(());
        }
    }
}

fn bytecount_newlines(buf: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', buf).count() as u64
}

fn parse_chunk(chunk: Chunk) -> ParsedChunk {
    let mut lines = Vec::with_capacity(chunk.bytes.len() / 100);
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', &chunk.bytes).chain(std::iter::once(chunk.bytes.len()));
    for (line_no, end) in (chunk.first_line..).zip(ends) {
        if start == chunk.bytes.len() && end == start {
            break; // after a final newline there is no further line
        }
        lines.push((line_no, parse_line(&chunk.bytes[start..end])));
        start = end + 1;
    }
    ParsedChunk {
        seq: chunk.seq,
        lines,
        unterminated_tail: chunk.unterminated_tail,
    }
}

fn parse_line(raw: &[u8]) -> Parsed {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Parsed::Blank;
    }
    let text = match std::str::from_utf8(raw) {
        Ok(t) => t,
        Err(e) => return bad(format!("not UTF-8 ({e})")),
    };
    if looks_like_header(text) {
        return match serde_json::from_str::<Header>(text) {
            Ok(h) if h.history == super::FORMAT_VERSION => Parsed::Header(h),
            Ok(h) => bad(format!(
                "history format version {} is not supported (this ackcheck reads version 1)",
                h.history
            )),
            Err(e) => bad(format!("invalid header: {}", describe(&e))),
        };
    }
    match serde_json::from_str::<Event>(text) {
        Ok(event) => Parsed::Event(event),
        Err(e) if e.is_eof() => Parsed::Bad {
            problem: format!("bad JSON: {}", describe(&e)),
            incomplete: true,
        },
        Err(e) if e.is_syntax() => bad(format!("bad JSON: {}", describe(&e))),
        Err(e) => bad(format!("invalid event: {}", describe(&e))),
    }
}

fn looks_like_header(text: &str) -> bool {
    text.contains("\"history\"")
        && serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| v.get("history").is_some())
}

/// serde_json's message without its "at line 1 column N" (always line 1 here), as a column.
fn describe(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(at) => format!("{} (column {})", &msg[..at], e.column()),
        None => msg,
    }
}
