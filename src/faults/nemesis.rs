//! The nemesis: runs a seeded schedule of faults against a cluster while the workload runs, and
//! always heals it.
//!
//! One fault is in force at a time; every start and stop is recorded as a nemesis event
//! (`start-kill`, `stop-kill`, …) with the node in the value, and every scheduled fault ends
//! started or skipped with its reason. The faults themselves are made by the packages of the
//! [`FaultSet`]; this file decides when.
//!
//! Healing is idempotent and sweeping: it stops the fault in force, then asks every package to
//! heal whatever it could have left on this cluster (every toxic, every paused node, every node
//! without a process), so leftovers of a crashed earlier run are healed too, and waits until
//! every node is healthy.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::schedule::{schedule, ScheduledFault};
use super::{FaultKind, FaultSet, NemesisConfig, StepTarget};
use crate::history::writer::Recorder;
use crate::history::{EventType, OpValue, Process};
use crate::nodes::toxiproxy::Toxiproxy;
use crate::nodes::{process, Cluster, Home, NodeState, NodeStatus};

/// How long healing may take to bring every node back to healthy.
const HEAL_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a fault waits for the cluster to be healthy (through the proxies) before it is
/// skipped: a fault on a cluster still recovering from the previous one tests the recovery twice.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The least quiet time after recovery before the next fault: clients reconnect and make progress.
const MIN_QUIET: Duration = Duration::from_secs(1);
/// The end of every heal error: where to look next (followed by the broker and a backquote).
const SEE_STATUS: &str = "see the node logs and `ackcheck cluster status";

/// The fault in force.
#[derive(Debug, Clone)]
struct Active {
    kind: FaultKind,
    node: usize,
    label: String,
}

/// Why a scheduled fault was not carried out, recorded as `cause` in the skip event's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SkipCause {
    /// The run phase ended before it fit: healing earlier faults took longer than scheduled.
    Late,
    /// The run was stopped (Ctrl-C, a failed workload).
    Stopped,
    /// The cluster was not healthy through its proxies in time.
    Unhealthy,
    /// The workload had not recovered from the previous fault in time.
    Unrecovered,
}

impl SkipCause {
    fn name(self) -> &'static str {
        match self {
            SkipCause::Late => "late",
            SkipCause::Stopped => "stopped",
            SkipCause::Unhealthy => "unhealthy",
            SkipCause::Unrecovered => "unrecovered",
        }
    }
}

/// Reads the workload's progress: (acknowledged sends, deliveries) so far.
pub type ProgressProbe = Arc<dyn Fn() -> (u64, u64) + Send + Sync>;

pub struct Nemesis {
    cluster: Arc<dyn Cluster>,
    /// The workload's progress, to start a fault only once the run recovered from the last one.
    progress: Option<ProgressProbe>,
    faults: FaultSet,
    recorder: Recorder,
    config: NemesisConfig,
    seed: u64,
    leader_dest: Option<String>,
    /// The fault in force; a plain mutex so that `current` is cheap for the progress line.
    active: Mutex<Vec<Active>>,
    /// Held while a fault starts or stops and while healing, so that a heal from a Ctrl-C
    /// handler never races the schedule (two restarts of one node would start two brokers).
    acting: tokio::sync::Mutex<()>,
    /// Where the fault in force is written down before it is made (see [`FaultRecord`]).
    record: Option<PathBuf>,
    /// The key whose coordinator `target = "coordinator"` hits (a Kafka transactional id).
    coordinator_key: Option<String>,
}

/// The fault in force, written to `run/<broker>/fault-in-force.json` before the fault is made and
/// removed once it is healed: if ackcheck dies meanwhile (kill -9), the next command that
/// touches the cluster finds it and heals what the dead run left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// The ackcheck process that made the fault.
    pub pid: u32,
    pub fault: String,
    pub node: usize,
}

/// The fault record of `broker`'s cluster in `home`.
pub fn record_path(home: &Home, broker: &str) -> PathBuf {
    home.run_dir(broker).join("fault-in-force.json")
}

/// If a run that died (its process is gone) left a fault in force on `cluster`, heal it: every
/// toxic, every paused node, every node without a process, then wait until healthy. Returns what
/// was healed, in one sentence, or `None` when no dead run left anything.
pub async fn heal_leftovers(cluster: &dyn Cluster, home: &Home) -> Result<Option<String>> {
    let path = record_path(home, cluster.broker());
    heal_leftovers_with(cluster, &path, &FaultSet::local(Toxiproxy::default())).await
}

/// [`heal_leftovers`] for the fault record at `path`, healed by `faults` (the packages of the
/// cluster's placement: an external cluster's are the user's commands and Toxiproxy).
pub async fn heal_leftovers_with(cluster: &dyn Cluster, path: &Path, faults: &FaultSet) -> Result<Option<String>> {
    let path = path.to_path_buf();
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let record: Option<FaultRecord> = serde_json::from_str(&text).ok();
    if let Some(r) = &record {
        if r.pid != std::process::id() && process::pid_alive(r.pid) {
            return Ok(None);
        }
    }
    if cluster.runs_here() && (0..cluster.nodes()).all(|node| cluster.node_process(node).pid().is_none()) {
        // Nothing of the cluster runs (stopped since): `up` starts it afresh, proxies included.
        let _ = std::fs::remove_file(&path);
        return Ok(None);
    }
    let errors = faults.heal_all(cluster).await;
    if !errors.is_empty() {
        let reasons: Vec<String> = errors.iter().map(|e| format!("{e:#}")).collect();
        bail!(
            "healing what a killed ackcheck left on {} failed: {}",
            cluster.broker(),
            reasons.join("; ")
        );
    }
    wait_healthy(cluster).await?;
    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    let what = match record {
        Some(r) => format!(
            "{} node {} (left by ackcheck process {}, which died)",
            r.fault, r.node, r.pid
        ),
        None => format!("an unreadable record at {}", path.display()),
    };
    Ok(Some(format!(
        "healed a fault a killed run left in force on {}: {what}",
        cluster.broker()
    )))
}

impl Nemesis {
    pub fn new(
        cluster: Arc<dyn Cluster>,
        faults: FaultSet,
        recorder: Recorder,
        config: NemesisConfig,
        seed: u64,
        leader_dest: Option<String>,
    ) -> Nemesis {
        Nemesis {
            cluster,
            progress: None,
            faults,
            recorder,
            config,
            seed,
            leader_dest,
            active: Mutex::new(Vec::new()),
            acting: tokio::sync::Mutex::new(()),
            record: None,
            coordinator_key: None,
        }
    }

    /// The key whose coordinator `target = "coordinator"` hits (a Kafka transactional id).
    pub fn with_coordinator_key(mut self, key: Option<String>) -> Nemesis {
        self.coordinator_key = key;
        self
    }

    /// The one node `target` names now, if known (a random target names none).
    async fn single_target(&self, target: super::Target) -> Option<usize> {
        match target {
            super::Target::Random => None,
            super::Target::Leader => self.cluster.leader(self.leader_dest.as_deref()?).await,
            super::Target::Coordinator => self.coordinator().await,
            super::Target::Controller => self.cluster.controller().await,
        }
    }

    /// The node coordinating [`Self::with_coordinator_key`]'s key now, if known.
    async fn coordinator(&self) -> Option<usize> {
        let key = self.coordinator_key.as_deref()?;
        self.cluster.coordinator(key).await
    }

    /// Write each fault down in `path` before making it (see [`FaultRecord`]).
    pub fn with_fault_record(mut self, path: PathBuf) -> Nemesis {
        self.record = Some(path);
        self
    }

    fn write_record(&self, kind: FaultKind, node: usize) -> Result<()> {
        let Some(path) = &self.record else { return Ok(()) };
        let record = FaultRecord {
            pid: std::process::id(),
            fault: kind.name().to_string(),
            node,
        };
        let text = serde_json::to_string(&record).context("serializing the fault record")?;
        // Written whole and fsynced before the fault is made: a kill -9 right after must find it.
        let tmp = path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut f, text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().with_context(|| format!("writing the fault record {}", path.display()))
    }

    fn remove_record(&self) {
        if let Some(path) = &self.record {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Start each fault only once the workload made progress (an acknowledged send and a
    /// delivery) after the previous fault was healed: a node that answers is not yet a run that
    /// recovered (clients reconnect, consumer groups rejoin), and a fault on a run still
    /// recovering tests nothing new.
    pub fn with_progress(mut self, probe: ProgressProbe) -> Nemesis {
        self.progress = Some(probe);
        self
    }

    /// The faults of a run of `run_for`, the same for the same seed, config and node count. Only
    /// faults that end (nominally) within `run_for` are scheduled.
    pub fn schedule(&self, run_for: Duration) -> Vec<ScheduledFault> {
        schedule(&self.config, self.seed, self.cluster.nodes(), run_for)
    }

    /// Run the schedule until `run_for` passes or `stop` is cancelled, then heal everything
    /// (always, also after an error); returns how many faults started.
    pub async fn run(&self, run_for: Duration, stop: CancellationToken) -> Result<u64> {
        let deadline = Instant::now() + run_for;
        let outcome = if self.config.steps.is_empty() {
            self.run_schedule(run_for, deadline, &stop).await
        } else {
            self.run_steps(Instant::now(), deadline, &stop).await
        };
        let healed = self.heal_all().await;
        match (outcome, healed) {
            (Ok(started), Ok(())) => Ok(started),
            (Err(e), Ok(())) => Err(e),
            (Ok(_), Err(h)) => Err(h),
            (Err(e), Err(h)) => Err(h.context(format!("the nemesis failed ({e:#}), and then"))),
        }
    }

    /// Carry out the schedule. Every fault ends started or skipped: a skip is recorded as a
    /// standalone `start-X` event of type `fail` whose error says why (the cluster was not healthy,
    /// the run phase ended before it fit, the run was stopped), so the verdict can count it.
    async fn run_schedule(&self, run_for: Duration, deadline: Instant, stop: &CancellationToken) -> Result<u64> {
        let began = deadline.checked_sub(run_for).unwrap_or_else(Instant::now);
        let mut started = 0;
        // The workload's progress when the last fault was healed.
        let mut healed_at: Option<(u64, u64)> = None;
        let mut faults = self.schedule(run_for).into_iter();
        while let Some(fault) = faults.next() {
            let quiet = (fault.wait / 2).max(MIN_QUIET);
            let due = (began + fault.at).max(Instant::now() + quiet);
            let slept = sleep_unless_stopped(due.saturating_duration_since(Instant::now()), deadline, stop).await;
            // A stop well before the deadline is an interruption (Ctrl-C, a failed workload).
            let interrupted = stop.is_cancelled() && Instant::now() + Duration::from_millis(500) < deadline;
            let skip = if interrupted {
                Some((SkipCause::Stopped, "the run phase was stopped before it".to_string()))
            } else if !slept || stop.is_cancelled() || Instant::now() + fault.duration > deadline {
                let late = Instant::now().saturating_duration_since(began + fault.at);
                let reason = format!(
                    "the run phase ended before it fit (healing earlier faults took {:.1} s longer than scheduled)",
                    late.as_secs_f64()
                );
                Some((SkipCause::Late, reason))
            } else {
                let ready_for = READY_TIMEOUT.min(deadline.saturating_duration_since(Instant::now() + fault.duration));
                let until = Instant::now() + ready_for;
                match self.wait_ready(ready_for, stop).await {
                    Err(reason) => Some((SkipCause::Unhealthy, reason)),
                    Ok(()) => self
                        .wait_recovered(healed_at, until, stop)
                        .await
                        .err()
                        .map(|reason| (SkipCause::Unrecovered, reason)),
                }
            };
            if let Some((cause, reason)) = skip {
                self.skipped(&fault, cause, &reason);
                if matches!(cause, SkipCause::Stopped | SkipCause::Late) {
                    for rest in faults.by_ref() {
                        self.skipped(&rest, cause, &reason);
                    }
                }
                continue;
            }
            let node = match fault.target {
                super::Target::Random => fault.node,
                target => self.single_target(target).await.unwrap_or(fault.node),
            };
            {
                let _acting = self.acting.lock().await;
                if !self.start(fault.kind, node).await? {
                    continue;
                }
            }
            started += 1;
            sleep_unless_stopped(fault.duration, deadline, stop).await;
            let _acting = self.acting.lock().await;
            self.stop_active().await?;
            healed_at = self.progress.as_ref().map(|probe| probe());
        }
        Ok(started)
    }

    /// Carry out scripted steps (`[[nemesis.steps]]`): each starts its fault at its time on the
    /// nodes its target names then (the leader, its followers, every node, one node) and heals it
    /// `duration` later; steps may overlap. A step the run phase ends before is skipped (recorded
    /// with its reason), as in a random schedule.
    async fn run_steps(&self, began: Instant, deadline: Instant, stop: &CancellationToken) -> Result<u64> {
        let steps = &self.config.steps;
        // (time, heal?, step): heals before starts at the same moment.
        let mut actions: Vec<(Duration, bool, usize)> = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let at = Duration::from_secs_f64(step.at);
            actions.push((at, false, i));
            actions.push((at + Duration::from_secs_f64(step.duration), true, i));
        }
        actions.sort_by_key(|&(t, heal, _)| (t, !heal));
        let mut on: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
        let mut started = 0;
        for (t, heal, i) in actions {
            let step = &steps[i];
            let wait = (began + t).saturating_duration_since(Instant::now());
            if heal {
                // A heal is never cut short by the deadline: `run` heals everything next anyway.
                if sleep_unless_stopped(wait, deadline, stop).await || !on[i].is_empty() {
                    let _acting = self.acting.lock().await;
                    for &node in &on[i] {
                        let label = format!("{} node {node}", step.fault);
                        self.stop_one(&Active {
                            kind: step.fault,
                            node,
                            label,
                        })
                        .await?;
                    }
                }
                continue;
            }
            let as_scheduled = ScheduledFault {
                at: t,
                wait: Duration::ZERO,
                kind: step.fault,
                duration: Duration::from_secs_f64(step.duration),
                node: 0,
                target: step.target.as_target().unwrap_or(super::Target::Random),
            };
            if !sleep_unless_stopped(wait, deadline, stop).await || began + t + as_scheduled.duration > deadline {
                let cause = if stop.is_cancelled() {
                    SkipCause::Stopped
                } else {
                    SkipCause::Late
                };
                self.skipped(&as_scheduled, cause, "the run phase ended before this step");
                continue;
            }
            let nodes = self.targets(step.target).await;
            let _acting = self.acting.lock().await;
            let mut made = Vec::new();
            for &node in &nodes {
                if self.start(step.fault, node).await? {
                    made.push(node);
                    started += 1;
                }
            }
            on[i] = made;
        }
        Ok(started)
    }

    /// The nodes a step's target names now.
    async fn targets(&self, target: StepTarget) -> Vec<usize> {
        let nodes = self.cluster.nodes();
        let leader = match (&self.leader_dest, target) {
            (Some(dest), StepTarget::Leader | StepTarget::Followers | StepTarget::Minority) => {
                self.cluster.leader(dest).await
            }
            _ => None,
        };
        match target {
            // No coordinator or controller known: node 0 stands in for it, as for the leader.
            StepTarget::Coordinator => vec![self.coordinator().await.unwrap_or(0)],
            StepTarget::Controller => vec![self.cluster.controller().await.unwrap_or(0)],
            StepTarget::Minority => minority_without(leader.unwrap_or(0), nodes),
            StepTarget::Node(n) => vec![n.min(nodes.saturating_sub(1))],
            StepTarget::All => (0..nodes).collect(),
            // No leader known: node 0 stands in for it (recorded as the node of the event).
            StepTarget::Leader => vec![leader.unwrap_or(0)],
            StepTarget::Followers => (0..nodes).filter(|&n| n != leader.unwrap_or(0)).collect(),
        }
    }

    /// Wait until the workload acknowledged a send and delivered something since `healed_at`
    /// (the progress when the last fault was healed), at most until `until`.
    async fn wait_recovered(
        &self,
        healed_at: Option<(u64, u64)>,
        until: Instant,
        stop: &CancellationToken,
    ) -> std::result::Result<(), String> {
        let (Some(probe), Some((acked, delivered))) = (&self.progress, healed_at) else {
            return Ok(());
        };
        let started = Instant::now();
        loop {
            let (now_acked, now_delivered) = probe();
            if now_acked > acked && now_delivered > delivered {
                return Ok(());
            }
            if Instant::now() >= until || stop.is_cancelled() {
                let missing = match (now_acked > acked, now_delivered > delivered) {
                    (false, false) => "no acknowledged send and no delivery",
                    (false, true) => "no acknowledged send",
                    _ => "no delivery",
                };
                return Err(format!(
                    "the run had not recovered from the previous fault: {missing} in the {:.0} s after it was healed",
                    started.elapsed().as_secs_f64()
                ));
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = stop.cancelled() => {}
            }
        }
    }

    /// The value of a nemesis event about `kind` on `node`: the node, and what the fault's
    /// package adds (a partition's shape and grudge).
    fn fault_value(&self, kind: FaultKind, node: usize) -> OpValue {
        let mut value = node_value(node);
        value
            .extra
            .extend(self.faults.details(kind, node, self.cluster.nodes()));
        value
    }

    /// Record that `fault` was not carried out, and why.
    fn skipped(&self, fault: &ScheduledFault, cause: SkipCause, reason: &str) {
        let mut value = self.fault_value(fault.kind, fault.node);
        value.extra.insert("scheduled_at".into(), fault.at.as_secs_f64().into());
        value.extra.insert("cause".into(), cause.name().into());
        let f = format!("start-{}", fault.kind.event_name());
        let recorded = self.recorder.event(
            Process::Nemesis,
            EventType::Fail,
            &f,
            Some(value),
            Some(reason.to_string()),
        );
        if let Err(e) = recorded {
            tracing::warn!("recording the skipped fault {fault} failed: {e}");
        }
    }

    /// Wait until every node is healthy through its proxy, at most `bound`; the error is the
    /// reason to skip a fault (which nodes were not healthy).
    async fn wait_ready(&self, bound: Duration, stop: &CancellationToken) -> std::result::Result<(), String> {
        let until = Instant::now() + bound;
        loop {
            let sick = match self.cluster.status().await {
                Ok(statuses) => sick_nodes(&statuses),
                Err(e) => vec![format!("its status could not be read ({e})")],
            };
            if sick.is_empty() {
                return Ok(());
            }
            if Instant::now() >= until || stop.is_cancelled() {
                return Err(format!(
                    "the cluster was not healthy within {:.0} s: {}",
                    bound.as_secs_f64(),
                    sick.join("; ")
                ));
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = stop.cancelled() => {}
            }
        }
    }

    /// The faults in force right now ("kill node 0", "pause node 1, pause node 2"), or None.
    pub fn current(&self) -> Option<String> {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        let labels: Vec<&str> = active.iter().map(|a| a.label.as_str()).collect();
        (!labels.is_empty()).then(|| labels.join(", "))
    }

    /// Heal everything now; idempotent, safe at any time and more than once. Every step is tried
    /// even when an earlier one fails; the error names every failure.
    pub async fn heal_all(&self) -> Result<()> {
        let _acting = self.acting.lock().await;
        let mut errors = Vec::new();
        if let Err(e) = self.stop_active().await {
            errors.push(e);
        }
        errors.extend(self.faults.heal_all(self.cluster.as_ref()).await);
        if errors.is_empty() {
            wait_healthy(self.cluster.as_ref()).await?;
            self.remove_record();
            return Ok(());
        }
        let reasons: Vec<String> = errors.iter().map(|e| format!("{e:#}")).collect();
        let (kind, reasons) = (self.cluster.broker(), reasons.join("; "));
        bail!("healing {kind} failed: {reasons}; {SEE_STATUS} {kind}`")
    }

    /// Record `start-<kind>` and make the fault; true when it was made. The fault counts as in
    /// force before the action, so that a half-made fault (the toxic added but the reply lost) is
    /// still healed; one that fails is undone and recorded as not started (`fail`, cause
    /// `failed`, the error as the reason).
    async fn start(&self, kind: FaultKind, node: usize) -> Result<bool> {
        let label = format!("{kind} node {node}");
        let active = Active {
            kind,
            node,
            label: label.clone(),
        };
        self.write_record(kind, node)?;
        self.active.lock().unwrap_or_else(|p| p.into_inner()).push(active);
        let f = format!("start-{}", kind.event_name());
        let value = self.fault_value(kind, node);
        let op = self
            .recorder
            .invoke(Process::Nemesis, &f, Some(value.clone()))
            .with_context(|| format!("recording {f}"))?;
        let Err(e) = self.apply(kind, node, true).await else {
            self.recorder
                .complete(Process::Nemesis, op, EventType::Info, &f, Some(value), None)
                .with_context(|| format!("recording {f}"))?;
            return Ok(true);
        };
        // The fault was not made (a kill of a node that is not running, a user's command that
        // failed): mend whatever part of it took, record it as not started with the reason, and
        // go on with the schedule rather than end the nemesis.
        let mut reason = format!("starting the fault {label} failed: {e:#}");
        if let Err(mend) = self.apply(kind, node, false).await {
            reason.push_str(&format!(
                " (undoing it also failed: {mend:#}; it is healed at the end of the run)"
            ));
        } else {
            self.active.lock().unwrap_or_else(|p| p.into_inner()).pop();
            self.remove_record();
        }
        tracing::warn!("{reason}");
        let mut value = value;
        value.extra.insert("cause".into(), "failed".into());
        self.recorder
            .complete(Process::Nemesis, op, EventType::Fail, &f, Some(value), Some(reason))
            .with_context(|| format!("recording {f}"))?;
        Ok(false)
    }

    /// Heal every fault in force and record each `stop-<kind>`, also when healing fails, so that
    /// every start has its stop. Network faults first, then paused nodes, then killed ones: a
    /// restarted node proves its readiness through its proxy and to the other nodes.
    async fn stop_active(&self) -> Result<()> {
        let mut active: Vec<Active> = std::mem::take(&mut *self.active.lock().unwrap_or_else(|p| p.into_inner()));
        active.sort_by_key(|a| match a.kind {
            FaultKind::Kill => 2,
            FaultKind::Pause => 1,
            _ => 0,
        });
        let mut first_error = None;
        for a in active {
            if let Err(e) = self.stop_one(&a).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Heal one fault in force and record its `stop-<kind>`.
    async fn stop_one(&self, active: &Active) -> Result<()> {
        let (kind, node) = (active.kind, active.node);
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|a| (a.kind, a.node) != (kind, node));
        let f = format!("stop-{}", kind.event_name());
        self.recorded(&f, self.fault_value(kind, node), self.apply(kind, node, false))
            .await
            .with_context(|| format!("healing the fault {}", active.label))?;
        if self.active.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
            self.remove_record();
        }
        Ok(())
    }

    /// Make (`on`) or heal one fault on one node.
    async fn apply(&self, kind: FaultKind, node: usize, on: bool) -> Result<()> {
        let cluster = self.cluster.as_ref();
        if on {
            self.faults.start(kind, node, cluster).await
        } else {
            self.faults.stop(kind, node, cluster).await
        }
    }

    /// Record `f` around `action`: the invocation, then an `info` completion carrying the
    /// action's error if it failed. The action runs even if recording fails (it may be a heal).
    async fn recorded(
        &self,
        f: &str,
        value: OpValue,
        action: impl std::future::Future<Output = Result<()>>,
    ) -> Result<()> {
        let op = self.recorder.invoke(Process::Nemesis, f, Some(value.clone()));
        let result = action.await;
        let error = result.as_ref().err().map(|e| format!("{e:#}"));
        let completed = op.and_then(|op| {
            self.recorder
                .complete(Process::Nemesis, op, EventType::Info, f, Some(value), error)
        });
        result?;
        completed.with_context(|| format!("recording {f}"))
    }
}

/// Every node that is not healthy, as "node 0 is Paused (…)".
fn sick_nodes(statuses: &[NodeStatus]) -> Vec<String> {
    statuses
        .iter()
        .filter(|s| s.state != NodeState::Healthy)
        .map(|s| format!("node {} is {:?} ({})", s.node, s.state, s.detail))
        .collect()
}

/// Poll `status` until every node is healthy, or fail after [`HEAL_TIMEOUT`] naming the
/// nodes that are not.
async fn wait_healthy(cluster: &dyn Cluster) -> Result<()> {
    let deadline = Instant::now() + HEAL_TIMEOUT;
    loop {
        let statuses = cluster
            .status()
            .await
            .context("asking for the cluster's status after healing")?;
        let sick = sick_nodes(&statuses);
        if sick.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let (kind, seconds, sick) = (cluster.broker(), HEAL_TIMEOUT.as_secs(), sick.join("; "));
            bail!("{kind} did not become healthy within {seconds} s after healing: {sick}; {SEE_STATUS} {kind}`");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Sleep `wait`, cut short at `deadline` or when `stop` is cancelled; true if it slept it all.
async fn sleep_unless_stopped(wait: Duration, deadline: Instant, stop: &CancellationToken) -> bool {
    let until = (Instant::now() + wait).min(deadline);
    tokio::select! {
        biased;
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep_until(until.into()) => Instant::now() < deadline,
    }
}

/// A minority of a cluster of `nodes` (⌊(n−1)/2⌋ nodes, so that the rest keep a majority
/// without them) that leaves out `leader`: the nodes after it, in ring order.
fn minority_without(leader: usize, nodes: usize) -> Vec<usize> {
    let size = nodes.saturating_sub(1) / 2;
    (1..=size).map(|step| (leader + step) % nodes).collect()
}

fn node_value(node: usize) -> OpValue {
    let mut value = OpValue::default();
    value.extra.insert("node".into(), node.into());
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    const MINUTE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn a_wait_ends_early_on_stop_or_at_the_deadline() {
        let stop = CancellationToken::new();
        let far = Instant::now() + MINUTE;
        assert!(
            sleep_unless_stopped(Duration::from_millis(10), far, &stop).await,
            "a whole wait"
        );
        assert!(
            !sleep_unless_stopped(MINUTE, Instant::now() + Duration::from_millis(10), &stop).await,
            "cut at the deadline"
        );
        stop.cancel();
        let started = Instant::now();
        assert!(!sleep_unless_stopped(MINUTE, far, &stop).await, "cut by stop");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_minority_leaves_the_leader_and_a_majority_alone() {
        assert_eq!(minority_without(0, 3), vec![1]);
        assert_eq!(minority_without(2, 3), vec![0]);
        assert_eq!(minority_without(3, 5), vec![4, 0]);
        assert!(minority_without(0, 1).is_empty());
        assert!(minority_without(0, 2).is_empty(), "two nodes have no minority to lose");
    }
}
