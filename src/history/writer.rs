//! History writer: JSON Lines, handed to the operating system every 20 ms and fsynced every 5 s
//! and on close, so that a killed ackcheck loses at most 20 ms of events and a crashed machine at
//! most the last flush interval.
//!
//! [`Recorder`] is the handle the runner's tasks share: it assigns `index` and `time` under one
//! lock, so the file is in index order whatever the task interleaving.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{EventType, Header, OpValue, Process};

/// How often written events are forced to the disk (fdatasync): what a crash of the machine (not
/// of ackcheck) can lose, and the close syncs the rest. Every 200 ms it cost the Kafka benchmark
/// about a fifth of its throughput (BENCHMARKS.md: 0.87x of ProducerPerformance against about
/// 1.0x at 5 s, idle machine): at 130 MB/s of history, each sync waited on the disk the broker's
/// own log is on.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(5000);

/// How often the writer thread hands buffered events to the operating system: what a `kill -9`
/// of ackcheck (not of the machine) can lose.
const WRITE_INTERVAL: Duration = Duration::from_millis(20);

/// The writer is woken early once this much is buffered, so that writes stay large but bounded.
const WAKE_BYTES: usize = 1 << 20;

/// Recording threads wait when this much is buffered and not yet written: a disk slower than
/// the run slows the run down rather than filling the memory.
const MAX_PENDING_BYTES: usize = 64 << 20;

/// Where a history goes: a file (fsynced) or any writer (tests, /dev/null benchmarks).
enum Sink {
    File(File),
    Other(Box<dyn Write + Send>),
}

impl Sink {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Sink::File(f) => f.write_all(bytes),
            Sink::Other(w) => w.write_all(bytes),
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        match self {
            Sink::File(f) => f.sync_data(),
            Sink::Other(w) => w.flush(),
        }
    }
}

/// What recording threads and the writer thread share under one lock: the bytes not yet
/// written, and the counters that must advance with them (an event's index and time are
/// assigned in the same critical section that appends its line, so the file is in index order).
struct Pending {
    bytes: Vec<u8>,
    next_index: u64,
    closed: bool,
    /// The first write error; once set, later records fail with it.
    error: Option<String>,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Wakes the writer thread (enough bytes, or closing).
    wake_writer: Condvar,
    /// Wakes recording threads waiting for the writer to catch up.
    written: Condvar,
    started: Instant,
    next_op: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves the buffer as it was; keep recording.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The last clone of a [`Recorder`] closes it: everything recorded is written and synced.
struct Handle {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = close(&self.shared, &self.writer);
    }
}

/// A shared, thread-safe history recorder. Recording threads serialize their event outside any
/// lock; under the lock they only stamp index and time and copy the line into a buffer. A
/// dedicated writer thread does the large writes and the periodic fdatasync, so neither a
/// system call nor a disk flush ever holds up a recording thread.
#[derive(Clone)]
pub struct Recorder {
    handle: Arc<Handle>,
}

/// A write to the history failed; the run cannot produce a trustworthy history.
#[derive(Debug, thiserror::Error)]
#[error("writing the history failed: {0}; check free disk space and permissions of the output directory")]
pub struct WriteError(String);

/// An event without its `index` and `time`, which are stamped under the lock. Serialized with
/// the same field order as [`super::Event`], so the lines read back as events.
#[derive(Serialize)]
struct EventTail<'a, V: Serialize> {
    process: Process,
    #[serde(rename = "type")]
    kind: EventType,
    f: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    op: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a V>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

thread_local! {
    /// Each recording thread's line buffer, reused for every event it records.
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
}

impl Recorder {
    /// Create (truncate) `path` and write the header.
    pub fn create(path: &Path, header: &Header) -> Result<Recorder, WriteError> {
        let file = File::create(path).map_err(|e| WriteError(format!("creating {}: {e}", path.display())))?;
        Recorder::start(Sink::File(file), header)
    }

    /// Record into any writer (flushed, not fsynced).
    pub fn to_writer(w: Box<dyn Write + Send>, header: &Header) -> Result<Recorder, WriteError> {
        Recorder::start(Sink::Other(w), header)
    }

    fn start(mut sink: Sink, header: &Header) -> Result<Recorder, WriteError> {
        let mut line = serde_json::to_vec(header).map_err(|e| WriteError(e.to_string()))?;
        line.push(b'\n');
        sink.write_all(&line).map_err(|e| WriteError(e.to_string()))?;
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                bytes: Vec::with_capacity(2 * WAKE_BYTES),
                next_index: 0,
                closed: false,
                error: None,
            }),
            wake_writer: Condvar::new(),
            written: Condvar::new(),
            started: Instant::now(),
            next_op: AtomicU64::new(0),
        });
        let writer = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("history-writer".into())
                .spawn(move || write_loop(&shared, sink))
                .map_err(|e| WriteError(format!("starting the history writer thread: {e}")))?
        };
        Ok(Recorder {
            handle: Arc::new(Handle {
                shared,
                writer: Mutex::new(Some(writer)),
            }),
        })
    }

    /// Nanoseconds since the recorder started.
    pub fn elapsed_nanos(&self) -> u64 {
        self.handle.shared.started.elapsed().as_nanos() as u64
    }

    /// Record an invocation; returns its op id for the completion.
    pub fn invoke(&self, process: Process, f: &str, value: Option<OpValue>) -> Result<u64, WriteError> {
        self.invoke_value(process, f, value.as_ref())
    }

    /// [`Recorder::invoke`] with any serializable value (the workload's borrowed message lists,
    /// which spare a copy of every id per event).
    pub fn invoke_value<V: Serialize>(&self, process: Process, f: &str, value: Option<&V>) -> Result<u64, WriteError> {
        // Op ids only need to be unique: drawn outside the lock, they may appear out of order.
        let op = self.handle.shared.next_op.fetch_add(1, Ordering::Relaxed);
        self.append(process, EventType::Invoke, f, Some(op), value, None)?;
        Ok(op)
    }

    /// Record the completion of op `op`.
    pub fn complete(
        &self,
        process: Process,
        op: u64,
        kind: EventType,
        f: &str,
        value: Option<OpValue>,
        error: Option<String>,
    ) -> Result<(), WriteError> {
        self.append(process, kind, f, Some(op), value.as_ref(), error.as_deref())
    }

    /// [`Recorder::complete`] with any serializable value.
    pub fn complete_value<V: Serialize>(
        &self,
        process: Process,
        op: u64,
        kind: EventType,
        f: &str,
        value: Option<&V>,
        error: Option<&str>,
    ) -> Result<(), WriteError> {
        self.append(process, kind, f, Some(op), value, error)
    }

    /// Record a standalone event (a delivery, a crash, a nemesis event).
    pub fn event(
        &self,
        process: Process,
        kind: EventType,
        f: &str,
        value: Option<OpValue>,
        error: Option<String>,
    ) -> Result<(), WriteError> {
        self.append(process, kind, f, None, value.as_ref(), error.as_deref())
    }

    /// [`Recorder::event`] with any serializable value.
    pub fn event_value<V: Serialize>(
        &self,
        process: Process,
        kind: EventType,
        f: &str,
        value: Option<&V>,
        error: Option<&str>,
    ) -> Result<(), WriteError> {
        self.append(process, kind, f, None, value, error)
    }

    fn append<V: Serialize>(
        &self,
        process: Process,
        kind: EventType,
        f: &str,
        op: Option<u64>,
        value: Option<&V>,
        error: Option<&str>,
    ) -> Result<(), WriteError> {
        let tail = EventTail {
            process,
            kind,
            f,
            op,
            value,
            error,
        };
        LINE.with(|line| {
            let mut line = line.borrow_mut();
            line.clear();
            serde_json::to_writer(&mut *line, &tail).map_err(|e| WriteError(e.to_string()))?;
            // `{"process":…}` becomes `{"index":N,"time":T,"process":…}` below.
            let rest = line.get(1..).unwrap_or_default();
            let shared = &self.handle.shared;
            let mut pending = shared.lock();
            while pending.bytes.len() >= MAX_PENDING_BYTES && pending.error.is_none() && !pending.closed {
                pending = shared.written.wait(pending).unwrap_or_else(|p| p.into_inner());
            }
            if let Some(e) = &pending.error {
                return Err(WriteError(e.clone()));
            }
            if pending.closed {
                return Err(WriteError("the recorder is closed".into()));
            }
            let index = pending.next_index;
            pending.next_index += 1;
            let time = shared.started.elapsed().as_nanos() as u64;
            let mut numbers = itoa::Buffer::new();
            let bytes = &mut pending.bytes;
            bytes.extend_from_slice(b"{\"index\":");
            bytes.extend_from_slice(numbers.format(index).as_bytes());
            bytes.extend_from_slice(b",\"time\":");
            bytes.extend_from_slice(numbers.format(time).as_bytes());
            bytes.push(b',');
            bytes.extend_from_slice(rest);
            bytes.push(b'\n');
            if bytes.len() >= WAKE_BYTES {
                shared.wake_writer.notify_one();
            }
            Ok(())
        })
    }

    /// Write and fsync everything recorded, and stop recording.
    pub fn close(&self) -> Result<(), WriteError> {
        close(&self.handle.shared, &self.handle.writer)
    }
}

fn close(shared: &Shared, writer: &Mutex<Option<JoinHandle<()>>>) -> Result<(), WriteError> {
    shared.lock().closed = true;
    shared.wake_writer.notify_one();
    shared.written.notify_all();
    let thread = writer.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(thread) = thread {
        if thread.join().is_err() {
            return Err(WriteError("the history writer thread panicked".into()));
        }
    }
    match &shared.lock().error {
        Some(e) => Err(WriteError(e.clone())),
        None => Ok(()),
    }
}

/// The writer thread: every [`WRITE_INTERVAL`] (or sooner, when [`WAKE_BYTES`] are buffered)
/// it takes the buffered lines and writes them outside the lock; every [`FLUSH_INTERVAL`] and
/// at the end it syncs the file. It ends when the recorder is closed and everything is written.
fn write_loop(shared: &Shared, mut sink: Sink) {
    let mut batch: Vec<u8> = Vec::with_capacity(2 * WAKE_BYTES);
    let mut last_sync = Instant::now();
    let mut unsynced = true;
    loop {
        let closing = {
            let mut pending = shared.lock();
            if pending.bytes.len() < WAKE_BYTES && !pending.closed {
                pending = shared
                    .wake_writer
                    .wait_timeout(pending, WRITE_INTERVAL)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            std::mem::swap(&mut pending.bytes, &mut batch);
            pending.closed
        };
        shared.written.notify_all();
        let mut result = Ok(());
        if !batch.is_empty() {
            result = sink.write_all(&batch);
            batch.clear();
            unsynced = true;
        }
        if result.is_ok() && unsynced && (closing || last_sync.elapsed() >= FLUSH_INTERVAL) {
            result = sink.sync();
            last_sync = Instant::now();
            unsynced = false;
        }
        if let Err(e) = result {
            shared.lock().error.get_or_insert(e.to_string());
            shared.written.notify_all();
            return;
        }
        if closing {
            return;
        }
    }
}
