//! What a run shows while it runs: run.log, the progress line, and the signals that end it.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::broker::LogSink;
use crate::faults::Nemesis;
use crate::workload::state::Stats;

/// run.log: the schedule, the configuration, client errors, phases; one timestamped line each.
#[derive(Clone)]
pub struct RunLog {
    file: Arc<Mutex<std::io::LineWriter<std::fs::File>>>,
    started: Instant,
}

impl RunLog {
    pub(super) fn create(path: &Path) -> Result<RunLog> {
        let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(RunLog {
            file: Arc::new(Mutex::new(std::io::LineWriter::new(file))),
            started: Instant::now(),
        })
    }

    pub fn line(&self, text: &str) {
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(f, "[{:>9.3}] {text}", self.started.elapsed().as_secs_f64());
    }

    pub(super) fn sink(&self) -> LogSink {
        let log = self.clone();
        Arc::new(move |line: &str| log.line(line))
    }

    /// Make this the log that [`WarningsToRunLog`] writes to, until the guard is dropped.
    pub(super) fn make_current(&self) -> CurrentRunLog {
        *CURRENT_RUN_LOG.lock().unwrap_or_else(|p| p.into_inner()) = Some(self.clone());
        CurrentRunLog
    }
}

/// The log of the run in progress: a process runs one at a time (`matrix` and `audit` run theirs
/// one after another).
static CURRENT_RUN_LOG: Mutex<Option<RunLog>> = Mutex::new(None);

/// While alive, warnings go to its run's log too; dropped when the run returns.
pub(super) struct CurrentRunLog;

impl Drop for CurrentRunLog {
    fn drop(&mut self) {
        *CURRENT_RUN_LOG.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// A `tracing` layer that copies ackcheck's warnings and errors into the run log of the run in
/// progress (as `warning: ...` lines), so that run.log also says what was only on standard
/// error: a node killed and started again because its restart was stuck, a skipped fault that
/// could not be recorded. The CLI installs it beside its standard-error output.
pub struct WarningsToRunLog;

impl WarningsToRunLog {
    /// The layer with its filter: warnings and errors of ackcheck's own code, not its libraries'.
    pub fn layer<S>() -> impl tracing_subscriber::Layer<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        use tracing_subscriber::Layer;
        WarningsToRunLog
            .with_filter(tracing_subscriber::filter::Targets::new().with_target("ackcheck", tracing::Level::WARN))
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for WarningsToRunLog {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: tracing_subscriber::layer::Context<'_, S>) {
        let Some(log) = CURRENT_RUN_LOG.lock().unwrap_or_else(|p| p.into_inner()).clone() else {
            return;
        };
        let mut message = MessageText(String::new());
        event.record(&mut message);
        let level = if *event.metadata().level() == tracing::Level::ERROR {
            "error"
        } else {
            "warning"
        };
        log.line(&format!("{level}: {}", message.0));
    }
}

/// An event's fields as one line: the message, then any other fields as `name=value`.
struct MessageText(String);

impl tracing::field::Visit for MessageText {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        if field.name() == "message" {
            self.0.push_str(&format!("{value:?}"));
        } else {
            self.0.push_str(&format!("{}={value:?}", field.name()));
        }
    }
}

/// First Ctrl-C or SIGTERM: end the run phase (heal, drain, verdict). Second: cut the drain.
/// Signal numbers (POSIX), for the exit code of an interrupted run.
mod libc_signal {
    pub const SIGINT: i32 = 2;
    pub const SIGTERM: i32 = 15;
}

pub(super) async fn watch_signals(
    interrupt: CancellationToken,
    abandon: CancellationToken,
    log: RunLog,
    first_signal: Arc<std::sync::atomic::AtomicI32>,
) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    for token in [interrupt, abandon] {
        let terminated = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        let signal = tokio::select! {
            _ = tokio::signal::ctrl_c() => libc_signal::SIGINT,
            _ = terminated => libc_signal::SIGTERM,
        };
        // The first signal decides the exit code (128 + its number).
        let _ = first_signal.compare_exchange(
            0,
            signal,
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
        );
        log.line("signal received");
        eprintln!("\ninterrupted: healing, then draining (interrupt again to cut the drain short)");
        token.cancel();
    }
}

/// The progress line (stderr) and a status line in run.log every 10 s, until cancelled.
pub(super) fn spawn_progress(
    stats: Arc<Stats>,
    nemesis: Option<Arc<Nemesis>>,
    phase: Arc<Mutex<&'static str>>,
    log: RunLog,
) -> CancellationToken {
    let stop = CancellationToken::new();
    let token = stop.clone();
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    tokio::spawn(async move {
        let mut last = (Instant::now(), 0u64);
        let mut ticks = 0u64;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = token.cancelled() => break,
            }
            let sends = Stats::get(&stats.sends);
            let rate = (sends - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-3);
            last = (Instant::now(), sends);
            let fault = nemesis
                .as_ref()
                .and_then(|n| n.current())
                .unwrap_or_else(|| "none".into());
            let phase = *phase.lock().unwrap_or_else(|p| p.into_inner());
            let msg = format!(
                "{phase}  sends {rate:.0}/s  delivered {}  indeterminate {}  crashes {}  fault: {fault}",
                Stats::get(&stats.deliveries),
                Stats::get(&stats.indeterminate),
                Stats::get(&stats.crashes)
            );
            bar.set_message(msg.clone());
            bar.tick();
            ticks += 1;
            if ticks.is_multiple_of(20) {
                log.line(&format!("progress: {msg}"));
            }
        }
        bar.finish_and_clear();
    });
    stop
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn warnings_of_a_run_in_progress_go_to_its_run_log() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("run.log");
        let log = RunLog::create(&path).expect("run.log created");
        let subscriber = tracing_subscriber::registry().with(WarningsToRunLog::layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!("before the run: nowhere");
            {
                let _current = log.make_current();
                tracing::warn!("pulsar node {} was not ready", 0);
                tracing::error!(node = 2, "stopping failed");
                tracing::info!("information is not copied");
                tracing::warn!(target: "lapin", "a library's warning is not copied");
            }
            tracing::warn!("after the run: nowhere");
        });
        let text = std::fs::read_to_string(&path).expect("run.log readable");
        let lines: Vec<&str> = text.lines().map(|l| l.split_once("] ").map_or(l, |(_, t)| t)).collect();
        assert_eq!(
            lines,
            ["warning: pulsar node 0 was not ready", "error: stopping failed node=2"],
            "{text}"
        );
    }
}
