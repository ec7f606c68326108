//! Streaming history reader: yields the header and events with their line numbers, pairs every
//! completion with its invocation, and never holds more than a few chunks of the file.
//!
//! One thread reads the input in large blocks and cuts them into chunks of whole lines; worker
//! threads (one per core) parse the chunks (JSON parsing is most of the cost of checking a
//! history) into compact storage (`wire`); the consuming thread puts the chunks back in file
//! order and does the checks that need the order (increasing `index`, pairing).

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;
use std::thread;

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use rustc_hash::FxHashMap;

use super::wire::{self, OpName, Store, WireEvent, WireMessage};
use super::{Event, EventType, Header, Message, OpValue, Process};

/// The longest line the reader accepts. A history line is one event: even a delivery of
/// thousands of messages stays far below this; a longer "line" is not a history (or a file
/// without newlines, such as /dev/zero), and reading it whole would only exhaust memory.
pub const MAX_LINE_BYTES: usize = 64 << 20;

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

/// One item of a history, in file order, as owned events (see [`HistoryReader`]'s iterator).
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

/// An event as the checker reads it: borrowed from the reader's chunk (or from the table of
/// open invocations), without copying its strings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventView<'r> {
    pub event: &'r WireEvent,
    pub store: &'r Store,
}

impl<'r> EventView<'r> {
    pub fn text(&self, span: wire::Span) -> &'r str {
        self.store.text(span)
    }

    pub fn f(&self) -> &'r str {
        self.store.op_name(self.event.f)
    }

    pub fn messages(&self) -> &'r [WireMessage] {
        self.store.messages_of(self.event.messages)
    }

    pub fn skipped(&self) -> &'r [WireMessage] {
        self.store.messages_of(self.event.skipped)
    }

    /// The value of an operation other than send and deliver.
    pub fn other_value(&self) -> Option<&'r serde_json::Value> {
        self.event.other_value.map(|i| &self.store.values[i as usize])
    }

    fn message(&self, m: &WireMessage) -> Message {
        let text = |s: Option<wire::Span>| s.map(|s| self.text(s).to_string());
        Message {
            id: self.text(m.id).to_string(),
            key: text(m.key),
            dest: text(m.dest),
            pos: text(m.pos),
            from: text(m.from),
            redelivered: m.redelivered,
        }
    }

    /// The owned event (for the public iterator).
    fn to_event(self) -> Event {
        let e = self.event;
        let value = e.has_value.then(|| match self.other_value() {
            // Free-form values keep what the owned type keeps (an object's keys in `extra`).
            Some(v) => serde::Deserialize::deserialize(v).unwrap_or_default(),
            None => OpValue {
                group: e.group.map(|s| self.text(s).to_string()),
                messages: self.messages().iter().map(|m| self.message(m)).collect(),
                atomic: e.atomic,
                skipped: self.skipped().iter().map(|m| self.message(m)).collect(),
                extra: serde_json::Map::new(),
            },
        });
        Event {
            index: e.index,
            time: e.time,
            process: e.process,
            kind: e.kind,
            f: self.f().to_string(),
            op: e.op,
            value,
            error: e.error.map(|s| self.text(s).to_string()),
        }
    }
}

/// One item of a history, borrowed from the reader (see [`HistoryReader::next_item`]).
pub(crate) enum Item<'r> {
    Header(&'r Header),
    Event {
        line: u64,
        event: EventView<'r>,
        invocation: Option<EventView<'r>>,
    },
    Unfinished {
        line: u64,
        invocation: EventView<'r>,
    },
}

enum Line {
    Event(WireEvent),
    Header(Box<Header>),
}

/// A malformed line.
struct BadLine {
    line: u64,
    problem: String,
    /// The line is the input's last, has no newline and ends early: cut off mid-write.
    cut_off: bool,
}

struct Chunk {
    seq: u64,
    first_line: u64,
    bytes: Vec<u8>,
    /// The chunk holds the input's last line and that line has no newline: if it ends early,
    /// it was cut off mid-write.
    unterminated_tail: bool,
    /// The input could not be read past this chunk.
    failure: Option<HistoryError>,
}

struct ParsedChunk {
    seq: u64,
    lines: Vec<(u64, Line)>,
    store: Store,
    /// The first malformed line: parsing stops there (the first error ends the history).
    bad: Option<BadLine>,
    failure: Option<HistoryError>,
}

/// The storage a chunk is parsed into, reused from chunk to chunk.
#[derive(Default)]
struct Parts {
    lines: Vec<(u64, Line)>,
    store: Store,
}

/// Bytes read per block; a chunk is a block cut at its last newline.
const CHUNK_BYTES: usize = 512 * 1024;

/// Key of an open invocation: its op id, or its process when it has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum OpenKey {
    Op(u64),
    Process(Process),
}

/// An invocation waiting for its completion, copied out of its chunk.
struct Open {
    line: u64,
    event: WireEvent,
    store: Store,
}

impl Open {
    fn view(&self) -> EventView<'_> {
        EventView {
            event: &self.event,
            store: &self.store,
        }
    }
}

/// What the last call of `advance` found.
enum Step {
    Header(usize),
    Event { at: usize, paired: bool },
    Unfinished,
}

/// Streaming reader over a history. Iterate it for [`Record`]s; the first error ends the stream.
pub struct HistoryReader {
    results: Receiver<ParsedChunk>,
    /// Where the storage of a chunk handed out goes, for a worker to parse the next one into.
    spare_parts: Sender<Parts>,
    reorder: BTreeMap<u64, ParsedChunk>,
    next_seq: u64,
    current: Option<ParsedChunk>,
    /// The next line of `current` to hand out.
    at: usize,
    last_index: Option<(u64, u64)>,
    open: FxHashMap<OpenKey, Open>,
    /// The invocation the last completion completed.
    completed: Option<Open>,
    /// At the end: the invocations that never completed, last first.
    unfinished: Option<Vec<Open>>,
    unfinished_current: Option<Open>,
    done: bool,
    /// Emptied stores of completed invocations, reused for the next ones (a send a line costs
    /// no allocation).
    spare_stores: Vec<Store>,
    /// The size of the input when it is a file: lets the checker size its tables up front.
    input_bytes: Option<u64>,
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
        let input_bytes = file.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
        let mut reader = HistoryReader::new(Box::new(file));
        reader.input_bytes = input_bytes;
        Ok(reader)
    }

    /// The size of the input in bytes, when it is a regular file.
    pub(crate) fn input_bytes(&self) -> Option<u64> {
        self.input_bytes
    }

    /// Read a history held in memory, parsing it on the calling thread, here and now: no
    /// threads to start, which for a small history costs more than the parse (fuzzing runs
    /// thousands of them a second). The same splitting and parsing as [`HistoryReader::new`].
    pub fn from_bytes(bytes: Vec<u8>) -> HistoryReader {
        let (result_tx, result_rx) = unbounded::<ParsedChunk>();
        let (_, no_spare_bytes) = bounded::<Vec<u8>>(1);
        split_chunks(Box::new(io::Cursor::new(bytes)), &no_spare_bytes, |chunk| {
            let (parsed, _) = parse_chunk(chunk, Parts::default());
            result_tx.send(parsed).is_ok()
        });
        // Spare parts handed back go nowhere: a try_send to a dropped receiver just fails.
        let (spare_parts, _) = bounded::<Parts>(1);
        HistoryReader::with_results(result_rx, spare_parts)
    }

    /// Read from any byte stream.
    pub fn new(source: Box<dyn Read + Send>) -> HistoryReader {
        let workers = thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
        let (chunk_tx, chunk_rx) = bounded::<Chunk>(workers * 2);
        let (result_tx, result_rx) = bounded::<ParsedChunk>(workers * 2);
        // Buffers go back to the thread that fills them: memory freed on another thread is
        // reused late, and a fresh buffer per chunk kept tens of MB more resident.
        let (spare_bytes_tx, spare_bytes_rx) = bounded::<Vec<u8>>(workers * 4 + 4);
        let (spare_parts_tx, spare_parts_rx) = bounded::<Parts>(workers * 4 + 4);
        thread::spawn(move || split_chunks(source, &spare_bytes_rx, |c| chunk_tx.send(c).is_ok()));
        for _ in 0..workers {
            let chunks = chunk_rx.clone();
            let results = result_tx.clone();
            let (spare_parts, spare_bytes) = (spare_parts_rx.clone(), spare_bytes_tx.clone());
            thread::spawn(move || {
                for chunk in chunks {
                    let parts = spare_parts.try_recv().unwrap_or_default();
                    let (parsed, bytes) = parse_chunk(chunk, parts);
                    let _ = spare_bytes.try_send(bytes);
                    if results.send(parsed).is_err() {
                        break;
                    }
                }
            });
        }
        HistoryReader::with_results(result_rx, spare_parts_tx)
    }

    fn with_results(results: Receiver<ParsedChunk>, spare_parts: Sender<Parts>) -> HistoryReader {
        HistoryReader {
            results,
            spare_parts,
            reorder: BTreeMap::new(),
            next_seq: 0,
            current: None,
            at: 0,
            last_index: None,
            open: FxHashMap::default(),
            completed: None,
            unfinished: None,
            unfinished_current: None,
            done: false,
            spare_stores: Vec::new(),
            input_bytes: None,
            truncated_line: None,
        }
    }

    /// Make `current` a chunk with a line left to hand out; false at the end of the input.
    fn fill(&mut self) -> Result<bool, HistoryError> {
        loop {
            if let Some(chunk) = &mut self.current {
                if self.at < chunk.lines.len() {
                    return Ok(true);
                }
                if let Some(bad) = chunk.bad.take() {
                    if bad.cut_off {
                        // Cut off mid-write by a killed recorder: report and ignore.
                        self.truncated_line = Some(bad.line);
                    } else {
                        return Err(HistoryError::line(bad.line, bad.problem));
                    }
                }
                if let Some(failure) = chunk.failure.take() {
                    return Err(failure);
                }
            }
            if let Some(chunk) = self.reorder.remove(&self.next_seq) {
                self.next_seq += 1;
                if let Some(done) = self.current.replace(chunk) {
                    let _ = self.spare_parts.try_send(Parts {
                        lines: done.lines,
                        store: done.store,
                    });
                }
                self.at = 0;
                continue;
            }
            match self.results.recv() {
                Ok(chunk) => {
                    self.reorder.insert(chunk.seq, chunk);
                }
                Err(_) => {
                    self.current = None;
                    return Ok(false);
                }
            }
        }
    }

    /// Move to the next item; `None` at the end of the history.
    fn advance(&mut self) -> Option<Result<Step, HistoryError>> {
        if self.done {
            return None;
        }
        if let Some(unfinished) = &mut self.unfinished {
            self.unfinished_current = unfinished.pop();
            return self.unfinished_current.is_some().then_some(Ok(Step::Unfinished));
        }
        if let Some(done) = self.completed.take() {
            // Keep small stores only: a rare huge invocation should not pin its memory.
            if done.store.is_small() {
                self.spare_stores.push(done.store);
            }
        }
        let step = match self.fill() {
            Ok(true) => self.sequence(),
            Ok(false) => {
                // End of input: hand out the invocations that never completed, in file order.
                let mut open: Vec<Open> = self.open.drain().map(|(_, v)| v).collect();
                open.sort_by_key(|o| std::cmp::Reverse(o.line));
                self.unfinished = Some(open);
                return self.advance();
            }
            Err(e) => Err(e),
        };
        if step.is_err() {
            self.done = true;
        }
        Some(step)
    }

    /// Check the order of the current line and pair it.
    fn sequence(&mut self) -> Result<Step, HistoryError> {
        let at = self.at;
        self.at += 1;
        let chunk = self.current.as_ref().expect("filled");
        let (line, parsed) = &chunk.lines[at];
        let line = *line;
        let event = match parsed {
            Line::Header(_) if line == 1 => return Ok(Step::Header(at)),
            Line::Header(_) => {
                return Err(HistoryError::line(
                    line,
                    "a header (an object with \"history\") may only be the first line",
                ))
            }
            Line::Event(event) => event,
        };
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
        let f = chunk.store.op_name(event.f);
        if event.kind == EventType::Invoke {
            if let Some(open) = self.open.get(&key) {
                let what = match key {
                    OpenKey::Op(op) => format!("op {op} is invoked again"),
                    OpenKey::Process(p) => format!("process {p} invokes {f} without an op id"),
                };
                return Err(HistoryError::line(
                    line,
                    format!("{what} while its invocation on line {} is still open", open.line),
                ));
            }
            let mut store = self.spare_stores.pop().unwrap_or_default();
            let event = chunk.store.copy_out(event, &mut store);
            self.open.insert(key, Open { line, event, store });
            return Ok(Step::Event { at, paired: false });
        }
        // A completion: pair it with its invocation when one of the same operation is open.
        let matches = self
            .open
            .get(&key)
            .is_some_and(|open| open.store.op_name(open.event.f) == f);
        if matches {
            self.completed = self.open.remove(&key);
            return Ok(Step::Event { at, paired: true });
        }
        let standalone = event.process == Process::Nemesis
            || event.f == OpName::Deliver
            || (event.f == OpName::Crash && event.kind == EventType::Info)
            || f == "rebalance";
        if standalone {
            return Ok(Step::Event { at, paired: false });
        }
        let problem = match (key, self.open.get(&key)) {
            (_, Some(open)) => format!(
                "completion of {f} does not match the open invocation of {} on line {}",
                open.store.op_name(open.event.f),
                open.line
            ),
            (OpenKey::Op(op), None) => format!("completion of {f} with op {op} has no open invocation"),
            (OpenKey::Process(p), None) => format!("completion of {f} by process {p} has no open invocation"),
        };
        Err(HistoryError::line(line, problem))
    }

    /// The next item, borrowed from the reader until the next call. The first error ends it.
    pub(crate) fn next_item(&mut self) -> Option<Result<Item<'_>, HistoryError>> {
        let step = match self.advance()? {
            Ok(step) => step,
            Err(e) => return Some(Err(e)),
        };
        let item = match step {
            Step::Unfinished => {
                let open = self.unfinished_current.as_ref().expect("set by advance");
                Item::Unfinished {
                    line: open.line,
                    invocation: open.view(),
                }
            }
            Step::Header(at) | Step::Event { at, .. } => {
                let chunk = self.current.as_ref().expect("filled");
                let (line, parsed) = &chunk.lines[at];
                match parsed {
                    Line::Header(header) => Item::Header(header),
                    Line::Event(event) => Item::Event {
                        line: *line,
                        event: EventView {
                            event,
                            store: &chunk.store,
                        },
                        invocation: match step {
                            Step::Event { paired: true, .. } => self.completed.as_ref().map(Open::view),
                            _ => None,
                        },
                    },
                }
            }
        };
        Some(Ok(item))
    }
}

impl Iterator for HistoryReader {
    type Item = Result<Record, HistoryError>;

    fn next(&mut self) -> Option<Self::Item> {
        let record = match self.next_item()? {
            Err(e) => return Some(Err(e)),
            Ok(Item::Header(header)) => Record::Header {
                line: 1,
                header: header.clone(),
            },
            Ok(Item::Unfinished { line, invocation }) => Record::Unfinished {
                line,
                invocation: invocation.to_event(),
            },
            Ok(Item::Event {
                line,
                event,
                invocation,
            }) => {
                let mut owned = event.to_event();
                if owned.kind == EventType::Invoke {
                    // An invocation tells its value when it completes (as `invocation`).
                    owned.value = None;
                    owned.error = None;
                }
                Record::Event {
                    line,
                    event: owned,
                    invocation: invocation.map(EventView::to_event),
                }
            }
        };
        Some(Ok(record))
    }
}

/// Read the input in blocks and emit chunks of whole lines, the last one possibly without a
/// newline. A read error, or a line longer than [`MAX_LINE_BYTES`], ends the input with a
/// chunk that carries the failure (after every chunk before it).
fn split_chunks(mut source: Box<dyn Read + Send>, spare: &Receiver<Vec<u8>>, mut emit: impl FnMut(Chunk) -> bool) {
    let mut seq = 0;
    let mut first_line = 1;
    // Bytes read and not yet emitted: the start of a line that has not ended yet.
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK_BYTES);
    let mut at_start = true;
    loop {
        let scanned = buf.len();
        let mut failure = None;
        let at_eof = match fill_block(&mut *source, &mut buf, scanned + CHUNK_BYTES) {
            Ok(eof) => eof,
            Err(source) => {
                failure = Some(HistoryError::Io {
                    what: "input".into(),
                    source,
                });
                true
            }
        };
        if at_start {
            // A UTF-8 byte-order mark may start the file (some editors write one).
            if buf.starts_with(b"\xEF\xBB\xBF") {
                buf.drain(..3);
            }
            if buf.len() >= 3 || at_eof {
                at_start = false;
            }
        }
        let emit_now = if at_eof {
            std::mem::take(&mut buf)
        } else {
            // Only the new bytes can hold the newline that ends the pending line.
            match memchr::memrchr(b'\n', &buf[scanned..]) {
                Some(nl) => {
                    let cut = scanned + nl + 1;
                    let mut next = spare.try_recv().unwrap_or_default();
                    next.clear();
                    next.reserve(CHUNK_BYTES + (buf.len() - cut));
                    next.extend_from_slice(&buf[cut..]);
                    buf.truncate(cut);
                    std::mem::replace(&mut buf, next)
                }
                None if buf.len() > MAX_LINE_BYTES => {
                    let problem = format!(
                        "longer than {} MiB without a newline: a history has one JSON event per line (is this a JSON Lines file?)",
                        MAX_LINE_BYTES >> 20
                    );
                    emit(Chunk {
                        seq,
                        first_line,
                        bytes: Vec::new(),
                        unterminated_tail: false,
                        failure: Some(HistoryError::line(first_line, problem)),
                    });
                    return;
                }
                None => {
                    // The line goes on: read more into the same buffer (it grows by doubling).
                    buf.reserve(CHUNK_BYTES);
                    continue;
                }
            }
        };
        let lines = memchr::memchr_iter(b'\n', &emit_now).count() as u64;
        let unterminated_tail = at_eof && emit_now.last().is_some_and(|&b| b != b'\n');
        let chunk = Chunk {
            seq,
            first_line,
            bytes: emit_now,
            unterminated_tail,
            failure,
        };
        seq += 1;
        first_line += lines;
        if !emit(chunk) || at_eof {
            return;
        }
    }
}

/// Read into `buf` until it holds `target` bytes or the input ends; true at the end.
fn fill_block(source: &mut dyn Read, buf: &mut Vec<u8>, target: usize) -> io::Result<bool> {
    let start = buf.len();
    buf.resize(target, 0);
    let mut filled = start;
    let result = loop {
        if filled == target {
            break Ok(false);
        }
        match source.read(&mut buf[filled..]) {
            Ok(0) => break Ok(true),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        }
    };
    buf.truncate(filled);
    result
}

/// Parse a chunk into `parts` (emptied first); also hands back the chunk's bytes for reuse.
fn parse_chunk(chunk: Chunk, mut parts: Parts) -> (ParsedChunk, Vec<u8>) {
    parts.lines.clear();
    parts.store.clear();
    let mut parsed = ParsedChunk {
        seq: chunk.seq,
        lines: parts.lines,
        store: parts.store,
        bad: None,
        failure: chunk.failure,
    };
    let bytes = &chunk.bytes;
    let header_key = memchr::memmem::Finder::new(b"\"history\"");
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', bytes).chain(std::iter::once(bytes.len()));
    for (line_no, end) in (chunk.first_line..).zip(ends) {
        if start == bytes.len() && end == start {
            break; // after a final newline there is no further line
        }
        let last = end == bytes.len();
        let raw = &bytes[start..end];
        start = end + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        match parse_line(raw, &header_key, &mut parsed.store) {
            Ok(None) => {}
            Ok(Some(line)) => parsed.lines.push((line_no, line)),
            Err((problem, incomplete)) => {
                parsed.bad = Some(BadLine {
                    line: line_no,
                    problem,
                    cut_off: incomplete && last && chunk.unterminated_tail,
                });
                break;
            }
        }
    }
    (parsed, chunk.bytes)
}

/// One line: `None` when blank; the error says what is wrong and whether the line ends early
/// (as one cut off mid-write does).
fn parse_line(
    raw: &[u8],
    header_key: &memchr::memmem::Finder,
    store: &mut Store,
) -> Result<Option<Line>, (String, bool)> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let text = match std::str::from_utf8(raw) {
        Ok(t) => t,
        // A character cut in half at the very end: the line ends early.
        Err(e) if e.error_len().is_none() => {
            return Err((format!("not UTF-8: the line ends inside a character ({e})"), true))
        }
        Err(e) => return Err((format!("not UTF-8 ({e})"), false)),
    };
    if text.starts_with('\u{feff}') {
        return Err((
            "starts with a UTF-8 byte-order mark, which only the first line of the file may have; remove it".into(),
            false,
        ));
    }
    if header_key.find(raw).is_some() && looks_like_header(text) {
        return match serde_json::from_str::<Header>(text) {
            Ok(h) if h.history == super::FORMAT_VERSION => Ok(Some(Line::Header(Box::new(h)))),
            Ok(h) => Err((
                format!(
                    "history format version {} is not supported (this ackcheck reads version 1)",
                    h.history
                ),
                false,
            )),
            Err(e) => Err((format!("invalid header: {}", wire::explain_header(text)), e.is_eof())),
        };
    }
    match wire::parse_event(text, store) {
        Ok(event) => Ok(Some(Line::Event(event))),
        Err(e) if e.is_eof() => Err((format!("bad JSON: {}", wire::describe(&e, "")), true)),
        Err(e) if e.is_syntax() => Err((format!("bad JSON: {}", wire::describe(&e, "")), false)),
        Err(_) => Err((format!("invalid event: {}", wire::explain_event(text)), false)),
    }
}

fn looks_like_header(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| v.get("history").is_some())
}
