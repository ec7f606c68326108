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
