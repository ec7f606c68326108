//! `pipeline`: read-process-write. Transactional producers write the source topic;
//! processors read it (`read_committed`), write one output per input to the sink topic (each
//! output carries `from`: the input it came from) and commit their input offsets inside the same
//! transaction; a `read_committed` verifier group reads the sink and records the deliveries.
//!
//! Processors are the crash targets. A processor replaced after a crash reuses its identity
//! (the transactional id), which fences the crashed instance; the `Stall` crash keeps the old
//! instance alive and lets it try to commit after its replacement started: the broker must
//! refuse (the send ends `fail`), or its outputs show up twice.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use super::consume::{self, ConsumerRole, Policy};
use super::produce::{self, ProducerRole};
use super::{drop_crashed, open_until, Ctx, Point, Workload};
use crate::broker::{ConsumerSpec, Outcome, Outgoing, Processor, ProcessorApp, ProducerSpec, Received};

pub(super) const VERIFIER: &str = "verifier";
/// The processors' consumer group.
const PROCESSORS: &str = "processors";
const RECEIVE_WAIT: Duration = Duration::from_millis(200);

pub(super) fn start(w: &mut Workload) {
    let ctx = w.ctx.clone();
    let c = &ctx.settings.config;
    let (source, sink) = (w.dests[0].0.clone(), w.dests[1].0.clone());
    for index in 0..c.producers {
        let role = ProducerRole {
            index,
            process: ctx.new_process(),
            dest: source.clone(),
            abort_ratio: 0.0,
        };
        w.spawn_producer(|ctx, stop| produce::run(ctx, role, stop));
    }
    ctx.members.expect(VERIFIER, c.partitions as usize);
    if let Some(app) = w.app.clone() {
        // The application's group membership is its own: the drain cannot wait for it.
        for slot in 0..c.processors.unwrap_or(2) as usize {
            let (app, process) = (app.clone(), ctx.new_process());
            w.spawn_consumer(move |ctx, stop| app_instance(ctx, app, slot, process, stop));
        }
    } else {
        ctx.members.expect(PROCESSORS, c.partitions as usize);
        for slot in 0..c.processors.unwrap_or(2) as usize {
            let (source, sink, process) = (source.clone(), sink.clone(), ctx.new_process());
            w.spawn_consumer(move |ctx, stop| processor(ctx, slot, process, source, sink, stop));
        }
    }
    let spec = ConsumerSpec {
        mode: ctx.settings.mode,
        group: VERIFIER.into(),
        dests: vec![sink],
        committed_only: true,
        member: "verifier".into(),
    };
    let role = ConsumerRole {
        group: VERIFIER.into(),
        spec,
        policy: Policy::of_mode(ctx.settings.mode),
        process: ctx.new_process(),
        member: 0,
        crash_slot: None,
    };
    w.spawn_consumer(|ctx, stop| consume::run(ctx, role, stop));
}

/// How often an instance's task looks for a due crash or an instance that exited.
const INSTANCE_POLL: Duration = Duration::from_millis(100);
/// A stopped instance gets this long to close cleanly (commit, leave its group) after SIGTERM.
const INSTANCE_STOP_GRACE: Duration = Duration::from_secs(20);

/// One instance of a processor application (its own OS process): started at once, killed with
/// SIGKILL when its slot's crash is due (recorded as a crash of its process, which is then
/// replaced by a new one), restarted at once, and stopped cleanly after the drain. What it reads,
/// writes and commits is not in the history: only the sink deliveries of the verifier show it.
async fn app_instance(
    ctx: Arc<Ctx>,
    app: Arc<dyn ProcessorApp>,
    slot: usize,
    mut process: u64,
    stop: CancellationToken,
) -> Result<()> {
    let name = ctx.settings.config.processor.clone().unwrap_or_default();
    let start = |process: u64| -> Result<()> {
        let pid = app
            .start(slot)
            .with_context(|| format!("starting {name} instance {slot}"))?;
        ctx.note(&format!(
            "{name} instance {slot} started as process {process} (pid {pid})"
        ));
        Ok(())
    };
    // Started before the run phase (`Workload::prepare`); started here only if it died since.
    if !app.running(slot) {
        start(process)?;
    }
    // Inputs the current process had reported processing at the previous poll.
    let mut processed_before = 0;
    while !stop.is_cancelled() {
        tokio::select! {
            _ = tokio::time::sleep(INSTANCE_POLL) => {}
            _ = stop.cancelled() => break,
        }
        // A poll at which the instance processed something counts as its batch: a crash is
        // carried out while it is processing, as the other crash points are, not while it
        // starts, waits for the producers' first messages or rebalances (a kill then holds
        // nothing, and a run's kills all fell there). An idle instance's crash waits, like an
        // idle consumer's (crash::IDLE_SLOT).
        let processed = app.processed_count(slot);
        let processing = processed > processed_before;
        processed_before = processed;
        if processing && ctx.crash_for_batch(Some(slot)).is_some() {
            let killer = app.clone();
            let killed = tokio::task::spawn_blocking(move || killer.kill(slot))
                .await
                .context("the task killing an instance ended abnormally")?
                .with_context(|| format!("killing {name} instance {slot}"))?;
            let pid = killed.map_or_else(|| "not running".to_string(), |pid| format!("pid {pid}"));
            // What the killed process held: inputs it reported processing whose output the
            // verifier had not seen when it died (in its open transaction or batch, or written
            // and not yet read).
            let held: Vec<String> = app
                .processed(slot)
                .into_iter()
                .filter(|id| !ctx.tracker.seen_by(0, id))
                .collect();
            ctx.crash(
                process,
                &name,
                Point::Kill,
                &format!("killed with SIGKILL (instance {slot}, {pid}) while processing"),
                &held,
            )?;
            process = ctx.new_process();
            processed_before = 0;
            start(process)?;
        } else if !app.running(slot) {
            ctx.note(&format!(
                "{name} instance {slot} (process {process}) exited by itself; restarting it. Its log ends:\n{}",
                app.log_tail(slot)
            ));
            processed_before = 0;
            start(process)?;
        }
    }
    let stopper = app.clone();
    let _ = tokio::task::spawn_blocking(move || stopper.stop(slot, INSTANCE_STOP_GRACE)).await;
    Ok(())
}

struct Stage {
    slot: usize,
    consumer: ConsumerSpec,
    producer: ProducerSpec,
    sink: String,
}

impl Stage {
    async fn open(&self, ctx: &Ctx, stop: &CancellationToken) -> Option<Box<dyn Processor>> {
        let what = format!("processor {}", self.slot);
        open_until(ctx, &what, stop, || {
            ctx.broker.processor(&self.consumer, &self.producer)
        })
        .await
    }

    /// One output per input, derived from it.
    fn outputs(&self, ctx: &Ctx, process: u64, seq: &mut u64, inputs: &[Received]) -> Vec<Outgoing> {
        inputs
            .iter()
            .map(|m| {
                *seq += 1;
                Outgoing {
                    id: format!("p{process}-{seq}"),
                    key: m.key.clone(),
                    dest: self.sink.clone(),
                    from: Some(m.id.clone()),
                    size: ctx.settings.config.message_size as usize,
                }
            })
            .collect()
    }
}

async fn processor(
    ctx: Arc<Ctx>,
    slot: usize,
    mut process: u64,
    source: String,
    sink: String,
    stop: CancellationToken,
) -> Result<()> {
    let mode = ctx.settings.mode;
    let stage = Stage {
        slot,
        consumer: ConsumerSpec {
            mode,
            group: PROCESSORS.into(),
            dests: vec![source],
            committed_only: true,
            member: format!("processor-{slot}"),
        },
        producer: ProducerSpec {
            mode,
            identity: processor_identity(slot),
        },
        sink,
    };
    let Some(mut p) = stage.open(&ctx, &stop).await else {
        return Ok(());
    };
    let max = ctx.settings.config.poll_batch as usize;
    let mut seq = 0;
    while !stop.is_cancelled() {
        if p.needs_restart() {
            ctx.note(&format!(
                "processor {slot} (process {process}) is replaced after an unknown or fatal transaction result"
            ));
            p.close().await;
            process = ctx.new_process();
            seq = 0;
            let Some(next) = stage.open(&ctx, &stop).await else {
                return Ok(());
            };
            p = next;
        }
        let received = p.receive(max, RECEIVE_WAIT).await;
        ctx.members.report(PROCESSORS, slot, p.assigned());
        if let Some(held) = p.rebalanced() {
            ctx.rebalance(process, PROCESSORS, &held)?;
        }
        let inputs = match received {
            Ok(inputs) if inputs.is_empty() => continue,
            Ok(inputs) => inputs,
            Err(e) => {
                ctx.note(&format!("processor {slot} (process {process}): {e}"));
                if e.fatal {
                    // Its consumer is unusable (fenced as a static member, say): a processor
                    // that went on polling it would hold its partitions and never read them.
                    ctx.note(&format!(
                        "processor {slot} (process {process}) is replaced: its consumer failed"
                    ));
                    p.close().await;
                    ctx.members.report(PROCESSORS, slot, Some(0));
                    process = ctx.new_process();
                    seq = 0;
                    let Some(next) = stage.open(&ctx, &stop).await else {
                        return Ok(());
                    };
                    p = next;
                }
                continue;
            }
        };
        ctx.stats.touch();
        let crash = ctx.crash_for_batch(Some(slot));
        let group = PROCESSORS;
        let held: Vec<String> = inputs.iter().map(|m| m.id.clone()).collect();
        if crash == Some(Point::Early) {
            ctx.crash(
                process,
                group,
                Point::Early,
                "after receiving, before processing",
                &held,
            )?;
            drop_crashed(p);
            ctx.members.report(PROCESSORS, slot, Some(0));
            (process, seq) = (ctx.new_process(), 0);
            let Some(next) = stage.open(&ctx, &stop).await else {
                return Ok(());
            };
            p = next;
            continue;
        }
        let outputs = stage.outputs(&ctx, process, &mut seq, &inputs);
        let op = ctx.invoke_send(process, &outputs, true)?;
        if let Err(e) = p.write(&outputs).await {
            let outcome = p.abort(&inputs, format!("writing the outputs failed: {e}")).await;
            ctx.complete_send(process, op, &outputs, true, &outcome)?;
            continue;
        }
        match crash {
            Some(Point::Late) => {
                let lost = Outcome::Info("the processor crashed before committing its transaction".into());
                ctx.complete_send(process, op, &outputs, true, &lost)?;
                ctx.crash(
                    process,
                    group,
                    Point::Late,
                    "after processing (outputs written in its transaction), before committing",
                    &held,
                )?;
                drop_crashed(p);
                ctx.members.report(PROCESSORS, slot, Some(0));
                (process, seq) = (ctx.new_process(), 0);
                let Some(next) = stage.open(&ctx, &stop).await else {
                    return Ok(());
                };
                p = next;
            }
            Some(Point::Stall) => {
                p.stall().await;
                ctx.crash(
                    process,
                    group,
                    Point::Stall,
                    "stalled before committing; replaced, then it tries to commit",
                    &held,
                )?;
                let (zombie, zombie_process) = (p, process);
                (process, seq) = (ctx.new_process(), 0);
                let next = stage.open(&ctx, &stop).await;
                let mut zombie = zombie;
                let outcome = zombie.commit(&inputs).await;
                if outcome.is_ok() {
                    ctx.note(&format!("processor {slot}: the stalled instance (process {zombie_process}) committed after its replacement started"));
                }
                ctx.complete_send(zombie_process, op, &outputs, true, &outcome)?;
                drop_crashed(zombie);
                let Some(next) = next else { return Ok(()) };
                p = next;
            }
            _ => {
                let outcome = p.commit(&inputs).await;
                ctx.complete_send(process, op, &outputs, true, &outcome)?;
                if outcome.is_ok() {
                    ctx.stats.touch();
                }
            }
        }
    }
    p.close().await;
    Ok(())
}

/// The identity of processor `slot`, kept by its replacements after crashes.
pub(super) fn processor_identity(slot: usize) -> String {
    format!("processor-{slot}")
}
