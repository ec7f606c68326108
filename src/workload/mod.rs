//! The `workload` role: generates operations against any [`Broker`] and records them.
//!
//! Producers send unique message ids (`p<process>-<seq>`) with keys and sizes drawn from the
//! seed; consumers receive, process (record a `deliver`) and commit in the order the delivery
//! mode prescribes; client crashes drop a consumer or processor at a random point and replace it
//! with a new process; the drain reads until every acknowledged message has arrived or nothing
//! arrives for a while. Workloads: [`queue`], [`txn`], [`pipeline`].

mod consume;
mod crash;
mod ctx;
mod pipeline;
mod produce;
mod queue;
pub mod state;
mod txn;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::broker::{Broker, LogSink, ProcessorApp, ProcessorAppSpec};
use crate::campaign::{WorkloadConfig, WorkloadKind};
use crate::history::writer::Recorder;
use crate::history::Guarantee;
pub use crash::{CrashPlan, Point};
use ctx::Ctx;
use state::{EffectStore, Membership, Pacer, Stats, Tracker};

/// What a workload needs to know about the run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Guarantee,
    pub seed: u64,
    pub config: WorkloadConfig,
    /// Mean seconds between client crashes (0: none).
    pub crash_interval: f64,
    pub duration: Duration,
    /// Added to topic names so that every run starts on empty topics.
    pub run: String,
    /// Where the idempotent consumers keep what they processed (exactly-once); in memory
    /// when `None`.
    pub effects: Option<std::path::PathBuf>,
    /// The run's folder (a processor application keeps its instances' logs and state there).
    pub out: std::path::PathBuf,
}

/// How long the clients have to stop once the run is over before they are abandoned.
const STOP_LIMIT: Duration = Duration::from_secs(60);

/// The consumer groups a workload's claim is about, when not all of them: the txn workload's
/// read-uncommitted group is there to show that aborted transactions reach the log, so its
/// aborted reads are evidence, not a violation.
pub fn claim_groups(config: &WorkloadConfig) -> Option<Vec<String>> {
    match config.kind {
        WorkloadKind::Txn => Some(vec![txn::COMMITTED.to_string()]),
        WorkloadKind::Queue | WorkloadKind::Pipeline => None,
    }
}

/// The identity of the workload's first transactional producer (txn) or processor (pipeline),
/// whose coordinator `target = "coordinator"` hits; `None` for a workload without transactions.
pub fn first_transactional_identity(config: &WorkloadConfig) -> Option<String> {
    match config.kind {
        WorkloadKind::Txn => Some(produce::producer_identity(0)),
        WorkloadKind::Pipeline => Some(pipeline::processor_identity(0)),
        WorkloadKind::Queue => None,
    }
}

/// A workload being run: its destinations, tasks and the tokens that stop them.
pub struct Workload {
    ctx: Arc<Ctx>,
    dests: Vec<(String, u32)>,
    produce_stop: CancellationToken,
    consume_stop: CancellationToken,
    producers: Vec<JoinHandle<()>>,
    consumers: Vec<JoinHandle<()>>,
    crash_plan: Vec<CrashPlan>,
    /// The pipeline's processor application, when the campaign names one.
    app: Option<Arc<dyn ProcessorApp>>,
}

/// How long the drain waits for the broker to say whether it holds messages back.
const HELD_BACK_WAIT: Duration = Duration::from_secs(15);

/// How the drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainEnd {
    /// Every acknowledged message arrived in every group, and then nothing more came.
    Complete,
    /// Some acknowledged messages never came, and nothing came for the quiet time.
    Quiet,
    /// Deliveries were still coming when the drain's time ran out.
    TimedOut,
    /// Stopped by the user.
    Interrupted,
}

impl Workload {
    /// Plan a workload (nothing runs until [`Workload::start`]).
    pub fn new(settings: Settings, recorder: Recorder, broker: Arc<dyn Broker>, log: LogSink) -> Result<Workload> {
        let base = format!("{}-{}", settings.config.topic_base(), settings.run);
        let c = &settings.config;
        let (dests, groups): (Vec<(String, u32)>, Vec<&str>) = match c.kind {
            WorkloadKind::Queue => (vec![(base, c.partitions)], vec![queue::GROUP]),
            WorkloadKind::Txn => (vec![(base, c.partitions)], vec![txn::COMMITTED, txn::UNCOMMITTED]),
            WorkloadKind::Pipeline => (
                vec![
                    (format!("{base}-source"), c.partitions),
                    (format!("{base}-sink"), c.partitions),
                ],
                vec![pipeline::VERIFIER],
            ),
        };
        let crash_slots = match c.kind {
            WorkloadKind::Queue => c.consumers as usize,
            WorkloadKind::Txn => 2 * c.consumers as usize,
            WorkloadKind::Pipeline => c.processors.unwrap_or(2) as usize,
        };
        let processors = c.kind == WorkloadKind::Pipeline;
        let mut crash_plan = crash::schedule(
            settings.seed,
            settings.crash_interval,
            crash_slots,
            settings.duration,
            processors,
        );
        let app = match (&c.processor, c.kind) {
            (Some(name), WorkloadKind::Pipeline) => {
                // ackcheck cannot see a processor application's batches: its instances are
                // killed wherever they are when their crash is due.
                for crash in &mut crash_plan {
                    crash.point = Point::Kill;
                }
                let spec = ProcessorAppSpec {
                    name: name.clone(),
                    mode: settings.mode,
                    source: dests[0].0.clone(),
                    sink: dests[1].0.clone(),
                    config: c.processor_config.clone(),
                    dir: settings.out.join(name),
                };
                Some(
                    broker
                        .processor_app(&spec)
                        .with_context(|| format!("preparing the processor application {name}"))?,
                )
            }
            _ => None,
        };
        let effects = match &settings.effects {
            Some(path) => EffectStore::open(path)
                .with_context(|| format!("opening the idempotent consumers' store {}", path.display()))?,
            None => EffectStore::default(),
        };
        let ctx = Ctx {
            recorder,
            broker,
            stats: Arc::new(Stats::default()),
            log,
            pacer: Pacer::new(c.rate),
            tracker: Tracker::new(groups.len()),
            tracked_groups: groups.iter().map(|g| g.to_string()).collect(),
            effects,
            members: Membership::default(),
            crashes: crash::Board::new(crash_slots),
            next_process: AtomicU64::new(0),
            error: Mutex::new(None),
            failed: CancellationToken::new(),
            settings,
        };
        Ok(Workload {
            ctx: Arc::new(ctx),
            dests,
            produce_stop: CancellationToken::new(),
            consume_stop: CancellationToken::new(),
            producers: Vec::new(),
            consumers: Vec::new(),
            crash_plan,
            app,
        })
    }

    /// Topics or queues to create before starting: (name, partitions).
    pub fn dests(&self) -> &[(String, u32)] {
        &self.dests
    }

    pub fn stats(&self) -> Arc<Stats> {
        self.ctx.stats.clone()
    }

    /// The client crashes this run will inject, from the seed.
    pub fn crash_plan(&self) -> &[CrashPlan] {
        &self.crash_plan
    }

    /// Before the run phase: start a processor application's instances and wait until each
    /// reports that it is processing, so that a JVM's start and the first rebalance are not
    /// counted as a stall of the run. Nothing to do for the other workloads.
    pub async fn prepare(&self, timeout: Duration) -> Result<()> {
        let Some(app) = &self.app else { return Ok(()) };
        let instances = self.ctx.settings.config.processors.unwrap_or(2) as usize;
        for slot in 0..instances {
            let pid = app
                .start(slot)
                .with_context(|| format!("starting processor instance {slot}"))?;
            self.ctx.note(&format!("processor instance {slot} started (pid {pid})"));
        }
        let deadline = Instant::now() + timeout;
        for slot in 0..instances {
            while !app.ready(slot) {
                if !app.running(slot) || Instant::now() >= deadline {
                    anyhow::bail!(
                        "processor instance {slot} did not start processing within {} s; its log ends:\n{}",
                        timeout.as_secs(),
                        app.log_tail(slot)
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        self.ctx
            .note(&format!("all {instances} processor instances are processing"));
        Ok(())
    }

    /// Start producers, consumers and crash injection.
    pub fn start(&mut self) {
        let ctx = self.ctx.clone();
        match ctx.settings.config.kind {
            WorkloadKind::Queue => queue::start(self),
            WorkloadKind::Txn => txn::start(self),
            WorkloadKind::Pipeline => pipeline::start(self),
        }
        let plan = self.crash_plan.clone();
        let stop = self.produce_stop.clone();
        self.producers.push(tokio::spawn(crash::inject(ctx, plan, stop)));
    }

    /// Spawn a producer-side task: it stops at `stop_producing`; an error ends the run.
    fn spawn_producer<F: std::future::Future<Output = Result<()>> + Send + 'static>(
        &mut self,
        task: impl FnOnce(Arc<Ctx>, CancellationToken) -> F,
    ) {
        let (ctx, stop) = (self.ctx.clone(), self.produce_stop.clone());
        let fut = task(ctx.clone(), stop);
        self.producers.push(tokio::spawn(async move {
            if let Err(e) = fut.await {
                ctx.fail(e);
            }
        }));
    }

    /// Spawn a consumer-side task: it runs through the drain until `stop`.
    fn spawn_consumer<F: std::future::Future<Output = Result<()>> + Send + 'static>(
        &mut self,
        task: impl FnOnce(Arc<Ctx>, CancellationToken) -> F,
    ) {
        let (ctx, stop) = (self.ctx.clone(), self.consume_stop.clone());
        let fut = task(ctx.clone(), stop);
        self.consumers.push(tokio::spawn(async move {
            if let Err(e) = fut.await {
                ctx.fail(e);
            }
        }));
    }

    /// Resolves when some task failed (the run must end).
    pub async fn failed(&self) {
        self.ctx.failed.cancelled().await
    }

    /// The first task error, if any.
    pub fn error(&self) -> Option<anyhow::Error> {
        self.ctx.error.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Stop sending and crashing; sends in flight finish (up to `grace`, after which they stay
    /// unfinished in the history: unknown).
    pub async fn stop_producing(&mut self, grace: Duration) {
        self.produce_stop.cancel();
        let deadline = Instant::now() + grace;
        for mut task in self.producers.drain(..) {
            if tokio::time::timeout_at(deadline.into(), &mut task).await.is_err() {
                task.abort();
            }
        }
        // Crashes end with the run phase (the injector has stopped): one its slot has not taken
        // yet is skipped, not left for the drain.
        crash::give_up_pending(&self.ctx);
    }

    /// Let consumers read until every acknowledged message arrived (then a short settle for
    /// late duplicates), or nothing arrived for `quiet` while every group's members held all
    /// their shares and kept reading (a rebalancing group, or a member stuck in a call, is
    /// silent for other reasons) and the broker held nothing back ([`Broker::held_back`]), or
    /// `timeout` passed.
    pub async fn drain(&self, quiet: Duration, timeout: Duration, interrupt: &CancellationToken) -> DrainEnd {
        let started = Instant::now();
        let settle = quiet.min(Duration::from_secs(2));
        let mut settled_since: Option<Instant> = None;
        loop {
            let idle = self.ctx.stats.idle();
            let since_start = started.elapsed();
            if self.ctx.tracker.outstanding() == 0 && idle >= settle && since_start >= settle {
                return DrainEnd::Complete;
            }
            // A member silent for the whole quiet time is stuck in a call, not idle.
            if !self.ctx.members.complete(quiet) {
                settled_since = None;
            } else if settled_since.is_none() {
                settled_since = Some(Instant::now());
            }
            let settled = settled_since.map_or(Duration::ZERO, |t| t.elapsed());
            if idle.min(settled) >= quiet && since_start >= quiet {
                // Quiet is no proof of loss while the broker still holds stored messages back
                // (a transaction a dead producer left open holds back every record after it
                // until the broker aborts it): wait another quiet time, up to the timeout.
                let held = match self.ctx.tracker.outstanding() {
                    0 => None,
                    _ => tokio::time::timeout(HELD_BACK_WAIT, self.ctx.broker.held_back(&self.dests))
                        .await
                        .ok()
                        .flatten(),
                };
                match held {
                    None => return DrainEnd::Quiet,
                    Some(why) => {
                        (self.ctx.log)(&format!("the drain goes on: {why}"));
                        settled_since = Some(Instant::now());
                    }
                }
            }
            if since_start >= timeout {
                return DrainEnd::TimedOut;
            }
            if interrupt.is_cancelled() || self.ctx.failed.is_cancelled() {
                return DrainEnd::Interrupted;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A process id for an operation of the runner's own (the drain).
    pub fn new_process(&self) -> u64 {
        self.ctx.new_process()
    }

    /// Acknowledged messages some group has not seen yet.
    pub fn outstanding(&self) -> u64 {
        self.ctx.tracker.outstanding()
    }

    /// Stop everything and wait for the clients to close.
    pub async fn stop(&mut self) {
        self.produce_stop.cancel();
        self.consume_stop.cancel();
        // Bounded: a client stuck in a broker call that does not return (a transactional
        // producer waiting for a producer id it never gets) held a run in "closing" for minutes.
        let deadline = Instant::now() + STOP_LIMIT;
        let mut abandoned = 0;
        for mut task in self.producers.drain(..).chain(self.consumers.drain(..)) {
            if tokio::time::timeout_at(deadline.into(), &mut task).await.is_err() {
                task.abort();
                abandoned += 1;
            }
        }
        if abandoned > 0 {
            self.ctx.note(&format!(
                "{abandoned} client task(s) did not stop within {} s of the end of the run and were abandoned",
                STOP_LIMIT.as_secs()
            ));
        }
    }
}

/// Open a client, retrying while the broker is unreachable; `None` once `stop` is cancelled.
async fn open_until<T, F, Fut>(ctx: &Ctx, what: &str, stop: &CancellationToken, mut open: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::broker::ClientError>>,
{
    let mut delay = Duration::from_millis(200);
    loop {
        if stop.is_cancelled() {
            return None;
        }
        match open().await {
            Ok(client) => return Some(client),
            Err(e) => ctx.note(&format!("opening {what} failed ({e}); retrying in {delay:?}")),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.cancelled() => return None,
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Drop a client the way a crash does: no goodbye awaited (the drop itself may block).
fn drop_crashed<T: Send + 'static>(client: T) {
    tokio::task::spawn_blocking(move || drop(client));
}
