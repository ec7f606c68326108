//! History writer: JSON Lines, buffered, flushed and fsynced at least every 200 ms and on close,
//! so that a killed recorder loses at most the last flush interval.
//!
//! [`Recorder`] is the handle the runner's tasks share: it assigns `index`, `time` and op ids
//! under one lock, so the file is in index order whatever the task interleaving.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::{Event, EventType, Header, OpValue, Process};

/// How often buffered events reach the disk.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// Where a history goes: a file (fsynced) or any writer (tests, /dev/null benchmarks).
enum Sink {
    File(BufWriter<File>),
    Other(BufWriter<Box<dyn Write + Send>>),
}

impl Sink {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Sink::File(w) => w,
            Sink::Other(w) => w,
        }
    }

    fn flush_and_sync(&mut self) -> io::Result<()> {
        match self {
            Sink::File(w) => {
                w.flush()?;
                w.get_ref().sync_data()
            }
            Sink::Other(w) => w.flush(),
        }
    }
}

struct State {
    sink: Sink,
    started: Instant,
    next_index: u64,
    next_op: u64,
    dirty: bool,
    closed: bool,
    /// The first write error; once set, later writes fail with it.
    error: Option<String>,
    line: Vec<u8>,
}

/// A shared, thread-safe history recorder.
#[derive(Clone)]
pub struct Recorder {
    state: Arc<Mutex<State>>,
}

/// A write to the history failed; the run cannot produce a trustworthy history.
#[derive(Debug, thiserror::Error)]
#[error("writing the history failed: {0}; check free disk space and permissions of the output directory")]
pub struct WriteError(String);

impl Recorder {
    /// Create (truncate) `path` and write the header.
    pub fn create(path: &Path, header: &Header) -> Result<Recorder, WriteError> {
        let file = File::create(path).map_err(|e| WriteError(format!("creating {}: {e}", path.display())))?;
        Recorder::start(Sink::File(BufWriter::with_capacity(256 * 1024, file)), header)
    }

    /// Record into any writer (flushed, not fsynced).
    pub fn to_writer(w: Box<dyn Write + Send>, header: &Header) -> Result<Recorder, WriteError> {
        Recorder::start(Sink::Other(BufWriter::with_capacity(256 * 1024, w)), header)
    }

    fn start(sink: Sink, header: &Header) -> Result<Recorder, WriteError> {
        let state = State {
            sink,
            started: Instant::now(),
            next_index: 0,
            next_op: 0,
            dirty: true,
            closed: false,
            error: None,
            line: Vec::with_capacity(512),
        };
        let recorder = Recorder {
            state: Arc::new(Mutex::new(state)),
        };
        {
            let mut s = recorder.lock();
            let json = serde_json::to_string(header).map_err(|e| WriteError(e.to_string()))?;
            writeln!(s.sink.writer(), "{json}").map_err(|e| WriteError(e.to_string()))?;
        }
        recorder.spawn_flusher();
        Ok(recorder)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the buffer as it was; keep recording.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A background thread flushes and fsyncs dirty buffers every [`FLUSH_INTERVAL`]; it ends
    /// when the recorder is closed or dropped.
    fn spawn_flusher(&self) {
        let weak = Arc::downgrade(&self.state);
        thread::spawn(move || loop {
            thread::sleep(FLUSH_INTERVAL);
            let Some(state) = weak.upgrade() else { return };
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            if s.closed {
                return;
            }
            if s.dirty {
                s.dirty = false;
                if let Err(e) = s.sink.flush_and_sync() {
                    s.error.get_or_insert(e.to_string());
                }
            }
        });
    }

    /// Nanoseconds since the recorder started.
    pub fn elapsed_nanos(&self) -> u64 {
        self.lock().started.elapsed().as_nanos() as u64
    }

    /// Record an invocation; returns its op id for the completion.
    pub fn invoke(&self, process: Process, f: &str, value: Option<OpValue>) -> Result<u64, WriteError> {
        let mut s = self.lock();
        let op = s.next_op;
        s.next_op += 1;
        Self::append(&mut s, process, EventType::Invoke, f, Some(op), value, None)?;
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
        let mut s = self.lock();
        Self::append(&mut s, process, kind, f, Some(op), value, error)
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
        let mut s = self.lock();
        Self::append(&mut s, process, kind, f, None, value, error)
    }

    fn append(
        s: &mut State,
        process: Process,
        kind: EventType,
        f: &str,
        op: Option<u64>,
        value: Option<OpValue>,
        error: Option<String>,
    ) -> Result<(), WriteError> {
        if let Some(e) = &s.error {
            return Err(WriteError(e.clone()));
        }
        if s.closed {
            return Err(WriteError("the recorder is closed".into()));
        }
        let event = Event {
            index: s.next_index,
            time: s.started.elapsed().as_nanos() as u64,
            process,
            kind,
            f: f.to_string(),
            op,
            value,
            error,
        };
        s.next_index += 1;
        let mut line = std::mem::take(&mut s.line);
        line.clear();
        serde_json::to_writer(&mut line, &event).map_err(|e| WriteError(e.to_string()))?;
        line.push(b'\n');
        let result = s.sink.writer().write_all(&line);
        s.line = line;
        s.dirty = true;
        result.map_err(|e| {
            s.error.get_or_insert(e.to_string());
            WriteError(e.to_string())
        })
    }

    /// Flush and fsync now, and stop recording.
    pub fn close(&self) -> Result<(), WriteError> {
        let mut s = self.lock();
        if s.closed {
            return Ok(());
        }
        s.closed = true;
        s.sink.flush_and_sync().map_err(|e| WriteError(e.to_string()))?;
        match &s.error {
            Some(e) => Err(WriteError(e.clone())),
            None => Ok(()),
        }
    }
}

impl Drop for State {
    fn drop(&mut self) {
        if !self.closed {
            let _ = self.sink.flush_and_sync();
        }
    }
}
