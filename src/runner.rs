//! The `runner` role: one run, wired together. Campaign → cluster (unless external) → topics →
//! workload and nemesis side by side for the duration → heal (always) → drain → history closed
//! → checker → verdict written and printed.
//!
//! Whatever ends the run phase (its time, Ctrl-C/SIGTERM, an error), the nemesis is stopped and
//! `heal_all` is awaited before the drain. A second Ctrl-C cuts the drain short (the drain is
//! then recorded as incomplete, so loss cannot be claimed).

mod console;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use crate::broker::BrokerKind;
use crate::faults::{FaultSet, Nemesis};
use crate::history::reader::HistoryReader;
use crate::history::writer::Recorder;
use crate::history::{EventType, Process};
use crate::nodes::toxiproxy::Toxiproxy;
use crate::nodes::{process, Cluster, ClusterError, Home};
use crate::plan::{Placement, Plan};
use crate::workload::state::Stats;
use crate::workload::{DrainEnd, Workload};
use crate::{checker, report};
use console::{spawn_progress, watch_signals};
pub use console::{RunLog, WarningsToRunLog};

pub use crate::plan::{RunOptions, UsageError};

/// How long the broker's account of a stalled drain may take ([`crate::broker::Broker::stall_report`]).
const STALL_REPORT_WAIT: Duration = Duration::from_secs(60);
/// How long sends in flight may take to finish once producing stops.
const SEND_GRACE: Duration = Duration::from_secs(30);
/// How long ports held by something else may take to come free (a broker that is just
/// stopping) before the run fails, naming the port, its holder and ACKCHECK_PORT_BASE.
const PORT_WAIT: Duration = Duration::from_secs(15);

/// The most of a node's log a run keeps: its end (a broker looping on an error can write
/// tens of megabytes a minute).
const NODE_LOG_KEEP: u64 = 16 << 20;

/// Copy each local node's log into the run's `nodes/` folder (`node<N>.log`, its last
/// [`NODE_LOG_KEEP`] bytes), because the next run of that broker starts the file afresh: a weak
/// or violating run must be explainable from its own folder (a broker that stopped serving
/// says why only there). Best effort: a log that cannot be copied is noted in run.log.
fn keep_node_logs(cluster: &dyn Cluster, out: &std::path::Path, log: &console::RunLog) {
    use std::io::{Seek, SeekFrom};
    let dir = out.join("nodes");
    for node in 0..cluster.nodes() {
        let source = cluster.node_process(node).log_file;
        let copy = || -> std::io::Result<u64> {
            let mut from = std::fs::File::open(&source)?;
            let len = from.metadata()?.len();
            from.seek(SeekFrom::Start(len.saturating_sub(NODE_LOG_KEEP)))?;
            std::fs::create_dir_all(&dir)?;
            let mut to = std::fs::File::create(dir.join(format!("node{node}.log")))?;
            std::io::copy(&mut from, &mut to)
        };
        match copy() {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log.line(&format!("keeping node {node}'s log {} failed: {e}", source.display())),
        }
    }
}

/// Run a campaign; returns the exit code (0 claim holds, 1 violated). Errors mean exit 2.
pub async fn run(opts: RunOptions) -> Result<i32> {
    let plan = Plan::resolve(&opts)?;
    let (name, seed, out) = (&plan.name, plan.seed, &plan.out);
    std::fs::create_dir_all(out).with_context(|| format!("creating the output directory {}", out.display()))?;
    let log = RunLog::create(&out.join("run.log"))?;
    let _warnings_here = log.make_current();
    log.line(&format!(
        "campaign {name} ({}), seed {seed}, run id {}",
        plan.campaign_file.display(),
        plan.run_id
    ));
    log.line(&format!("config {}", plan.config()));
    eprintln!(
        "ackcheck run: {name}, seed {seed}, {:.0} s, output in {}",
        plan.duration().as_secs_f64(),
        out.display()
    );
    let header = plan.header();
    let interrupt = CancellationToken::new();
    let abandon = CancellationToken::new();
    let first_signal = Arc::new(std::sync::atomic::AtomicI32::new(0));
    // Stopped when this run returns: in a suite of runs (`matrix`, `audit`) a watcher left from
    // an earlier run would also take each Ctrl-C, as if it were that run's.
    let _signals = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(watch_signals(
        interrupt.clone(),
        abandon.clone(),
        log.clone(),
        first_signal.clone(),
    )));

    let (cluster, endpoints, started_cluster) = match &plan.placement {
        Placement::External { endpoints } => {
            let external = external_cluster(&plan, endpoints, &log)?;
            if let Some(c) = &external {
                // A run killed with -9 in the middle of a fault left it in force: heal it first.
                if let Some(healed) =
                    crate::faults::heal_leftovers_with(c.as_ref(), &fault_record(&plan), &fault_set(&plan)).await?
                {
                    log.line(&healed);
                    eprintln!("{healed}");
                }
                c.up().await.context("the external brokers do not all answer")?;
                log.line(&format!("external {}: every node answers", plan.broker()));
            }
            (external, endpoints.clone(), false)
        }
        Placement::Local { nodes } => {
            let home = Home::from_env();
            let c: Arc<dyn Cluster> = Arc::from(plan.broker().open_cluster_on(
                Some(*nodes),
                &home,
                &plan.campaign.server_settings,
                Some(plan.campaign.node_network()),
                plan.campaign.version.as_deref(),
            )?);
            // A run killed with -9 in the middle of a fault left it in force: heal it first.
            if let Some(healed) = crate::faults::heal_leftovers(c.as_ref(), &home).await? {
                log.line(&healed);
                eprintln!("{healed}");
            }
            let started = bring_up(c.as_ref(), plan.broker(), &log, &interrupt).await?;
            let endpoints = c.endpoints().iter().map(|e| e.client.to_string()).collect();
            (Some(c), endpoints, started)
        }
    };
    log.line(&format!("endpoints {endpoints:?}"));
    // The history starts now, so that its times count from the start of the run proper.
    let history = out.join("history.jsonl");
    let recorder = if opts.discard_history {
        Recorder::to_writer(Box::new(std::io::sink()), &header)
    } else {
        Recorder::create(&history, &header)
    };
    let outcome = match recorder {
        Ok(recorder) => {
            let outcome = run_phases(
                &plan,
                &recorder,
                cluster.clone(),
                &endpoints,
                &log,
                &interrupt,
                &abandon,
            )
            .await;
            match recorder.close() {
                Ok(()) => outcome,
                Err(e) => outcome.and(Err(e.into())),
            }
        }
        Err(e) => Err(e.into()),
    };
    if let (Some(c), true, false) = (&cluster, started_cluster, opts.keep_cluster) {
        log.line("stopping the cluster this run started");
        if let Err(e) = c.down().await {
            log.line(&format!("stopping the cluster failed: {e}"));
            eprintln!("warning: stopping the cluster failed: {e}");
        }
    }
    if let Some(c) = cluster.as_ref().filter(|c| c.runs_here()) {
        keep_node_logs(c.as_ref(), out, &log);
    }
    if let Err(e) = outcome {
        log.line(&format!("the run failed: {e:#}"));
        return Err(e.context(format!("the run failed; see {}", out.join("run.log").display())));
    }
    let signal = first_signal.load(std::sync::atomic::Ordering::SeqCst);
    if opts.discard_history {
        return Ok(interrupted_code(signal, 0));
    }
    let reader = HistoryReader::open(&history)?;
    let options = checker::CheckOptions {
        examples: opts.examples,
        min_evidence: opts.min_evidence,
        ..checker::CheckOptions::default()
    };
    let verdict = checker::check_with(reader, &options).with_context(|| format!("checking {}", history.display()))?;
    std::fs::write(out.join("verdict.json"), report::json(&verdict)).context("writing verdict.json")?;
    log.line(&format!(
        "verdict {} (claim holds: {:?}), evidence {}{}",
        verdict.verdict.name(),
        verdict.claim_holds,
        verdict.evidence.grade,
        match verdict.evidence.reasons.is_empty() {
            true => String::new(),
            false => format!(": {}", verdict.evidence.reasons.join("; ")),
        }
    ));
    print!("{}", report::human(&verdict));
    println!(
        "history: {}\nverdict: {}\nrun log: {}",
        history.display(),
        out.join("verdict.json").display(),
        out.join("run.log").display()
    );
    report::after_run(out, &header, &verdict, opts.junit.as_deref())?;
    if signal != 0 {
        println!(
            "interrupted by signal {signal}: the run was cut short; the verdict covers the part that ran{}",
            if verdict.exit_code() == 1 {
                " (its violation stands)"
            } else {
                ""
            }
        );
    }
    Ok(interrupted_code(signal, verdict.exit_code()))
}

/// The exit code of a run that a signal cut short: 128 + the signal (130 for SIGINT, 143 for
/// SIGTERM, as shells report them), so that a CI gate never reads a partial run as a pass; a
/// violated claim (1) stands, since its proof is in the part that ran.
fn interrupted_code(signal: i32, code: i32) -> i32 {
    match (signal, code) {
        (0, code) | (_, code @ 1) => code,
        (signal, _) => 128 + signal,
    }
}

/// Start the cluster unless it is already up in our home; returns whether this run started it.
/// Ports held by something else (a broker of another home, any other program) are not fought
/// over: after [`PORT_WAIT`] (a broker that is just stopping) the run fails, saying which port,
/// who holds it, and how to move ackcheck's port plan.
/// Whether `broker`'s local cluster (of this ACKCHECK_HOME) has a node running. A suite of runs
/// (`audit`, `matrix`) that finds none keeps the cluster it starts between its runs and stops it
/// when it is done ([`stop_local_cluster`]).
pub fn local_cluster_running(broker: BrokerKind) -> bool {
    let home = Home::from_env();
    let Some(nodes) = process::recorded_nodes(&home, broker.name()) else {
        return false;
    };
    broker
        .open_cluster(Some(nodes), &home)
        .is_ok_and(|c| (0..c.nodes()).any(|i| c.node_process(i).pid().is_some()))
}

/// Stop `broker`'s local cluster (what a suite of runs kept between its runs).
pub async fn stop_local_cluster(broker: BrokerKind) -> Result<()> {
    let home = Home::from_env();
    let cluster = broker.open_cluster(None, &home)?;
    cluster
        .down()
        .await
        .with_context(|| format!("stopping the {broker} cluster kept between the runs"))
}

async fn bring_up(c: &dyn Cluster, kind: BrokerKind, log: &RunLog, interrupt: &CancellationToken) -> Result<bool> {
    let ours = (0..c.nodes()).any(|i| c.node_process(i).pid().is_some());
    let started = Instant::now();
    loop {
        if !ours {
            let max_nodes = kind.allowed_nodes().iter().copied().max().unwrap_or(1);
            let ports: Vec<u16> = kind.ports(max_nodes).collect();
            if let Some(port) = ports.iter().copied().find(|&p| process::port_taken(p)) {
                if started.elapsed() > PORT_WAIT || interrupt.is_cancelled() {
                    return Err(ClusterError::PortTaken {
                        port,
                        needed_by: format!("{kind}'s port plan; nothing of this ACKCHECK_HOME runs there"),
                    }
                    .into());
                }
                log.line(&format!(
                    "port {port} is taken by something else; waiting up to {} s",
                    PORT_WAIT.as_secs()
                ));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        let t = Instant::now();
        match c.up().await {
            Ok(()) => {
                log.line(&format!(
                    "{kind} up with {} node(s) in {:.1} s",
                    c.nodes(),
                    t.elapsed().as_secs_f64()
                ));
                return Ok(!ours);
            }
            Err(ClusterError::PortTaken { port, .. })
                if !ours && started.elapsed() < PORT_WAIT && !interrupt.is_cancelled() =>
            {
                log.line(&format!(
                    "port {port} was taken while starting {kind}; waiting and retrying"
                ));
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// How long deleting one destination may take before the run gives up on it.
const DELETE_TIMEOUT: Duration = Duration::from_secs(30);

/// Delete the topics or queues the run created, so that runs leave nothing on brokers they
/// share (external ones above all). The history is complete by now; a destination that cannot
/// be deleted is a warning, never a failed run.
async fn delete_dests(broker: &dyn crate::broker::Broker, dests: &[(String, u32)], log: &RunLog) {
    for (dest, _) in dests {
        match tokio::time::timeout(DELETE_TIMEOUT, broker.delete_dest(dest)).await {
            Ok(Ok(())) => log.line(&format!("deleted {dest}")),
            Ok(Err(e)) => {
                log.line(&format!("deleting {dest} failed: {e}"));
                eprintln!("warning: the run's {dest} was not deleted: {e}");
            }
            Err(_) => {
                log.line(&format!(
                    "deleting {dest} did not finish within {} s",
                    DELETE_TIMEOUT.as_secs()
                ));
                eprintln!(
                    "warning: the run's {dest} was not deleted (no answer within {} s)",
                    DELETE_TIMEOUT.as_secs()
                );
            }
        }
    }
}

/// The brokers of an external placement as a cluster the nemesis can break through the
/// campaign's commands, when the campaign has faults; `None` when it has none.
fn external_cluster(plan: &Plan, endpoints: &[String], log: &RunLog) -> Result<Option<Arc<dyn Cluster>>> {
    let nemesis = &plan.campaign.nemesis;
    let Some(x) = &plan.campaign.external else {
        return Ok(None);
    };
    if nemesis.faults.is_empty() && nemesis.steps.is_empty() {
        return Ok(None);
    }
    let driver = plan.broker().driver();
    let client = plan.campaign.client_settings.clone();
    // The fault record and the (never written) pid files of the external nodes live here.
    let scratch = Home::from_env().run_dir(&external_key(plan));
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let cluster = crate::nodes::external::ExternalCluster::new(
        plan.broker().name(),
        crate::nodes::external::ExternalNodes {
            endpoints,
            hosts: x.hosts.as_deref(),
            commands: x.commands.clone().unwrap_or_default(),
            toxiproxy: x.toxiproxy.as_ref(),
        },
        Arc::new(move |endpoint| driver.round_trip(endpoint, &client)),
        log.sink(),
        scratch,
    )?;
    Ok(Some(Arc::new(cluster)))
}

/// What the fault record and scratch files of a placement are kept under: the broker's name,
/// with `-external` for brokers something else runs (their faults heal another way).
fn external_key(plan: &Plan) -> String {
    format!("{}-external", plan.broker().name())
}

/// The fault packages of the run's placement.
fn fault_set(plan: &Plan) -> FaultSet {
    match &plan.placement {
        Placement::Local { .. } => FaultSet::local(Toxiproxy::default()),
        Placement::External { .. } => FaultSet::external(
            plan.campaign
                .external
                .as_ref()
                .and_then(|x| x.toxiproxy.as_ref())
                .map(|t| Toxiproxy::at(&t.base_url())),
        ),
    }
}

/// Where the run writes down the fault in force (healed by the next command if the run dies).
fn fault_record(plan: &Plan) -> std::path::PathBuf {
    let home = Home::from_env();
    match &plan.placement {
        Placement::Local { .. } => crate::faults::record_path(&home, plan.broker().name()),
        Placement::External { .. } => crate::faults::record_path(&home, &external_key(plan)),
    }
}

/// How long a processor application's instances get to start processing before the run phase.
const PREPARE_TIMEOUT: Duration = Duration::from_secs(120);

async fn run_phases(
    plan: &Plan,
    recorder: &Recorder,
    cluster: Option<Arc<dyn Cluster>>,
    endpoints: &[String],
    log: &RunLog,
    interrupt: &CancellationToken,
    abandon: &CancellationToken,
) -> Result<()> {
    let (campaign, seed) = (&plan.campaign, plan.seed);
    let broker = plan
        .broker()
        .driver()
        .client(&plan.client_context(endpoints, log.sink()))?;
    let mut workload = Workload::new(plan.workload_settings(), recorder.clone(), broker.clone(), log.sink())?;
    for (dest, partitions) in workload.dests() {
        broker
            .create_dest(dest, *partitions)
            .await
            .with_context(|| format!("creating {dest}"))?;
        log.line(&format!("created {dest} with {partitions} partition(s)"));
    }
    for crash in workload.crash_plan() {
        log.line(&format!("crash schedule: {crash}"));
    }
    let first_dest = workload.dests().first().map(|d| d.0.clone());
    let stats = workload.stats();
    let nemesis = cluster.map(|c| {
        let probe = stats.clone();
        Arc::new(
            Nemesis::new(
                c,
                fault_set(plan),
                recorder.clone(),
                campaign.nemesis.clone(),
                seed,
                first_dest,
            )
            .with_progress(Arc::new(move || {
                (Stats::get(&probe.acked), Stats::get(&probe.deliveries))
            }))
            .with_fault_record(fault_record(plan))
            .with_coordinator_key(
                crate::workload::first_transactional_identity(&campaign.workload)
                    .and_then(|identity| campaign.broker.driver().coordinator_key(&plan.run_id, &identity)),
            ),
        )
    });
    if let Some(n) = &nemesis {
        for fault in n.schedule(campaign.duration) {
            log.line(&format!("fault schedule: {fault}"));
        }
        for step in &campaign.nemesis.steps {
            log.line(&format!("fault step: {step}"));
        }
    }

    workload
        .prepare(PREPARE_TIMEOUT)
        .await
        .context("preparing the workload")?;
    let phase = Arc::new(Mutex::new("run"));
    let progress = spawn_progress(stats.clone(), nemesis.clone(), phase.clone(), log.clone());
    let run_started = Instant::now();
    workload.start();
    let nemesis_stop = CancellationToken::new();
    let nemesis_task = nemesis.clone().map(|n| {
        let (stop, duration) = (nemesis_stop.clone(), campaign.duration);
        tokio::spawn(async move { n.run(duration, stop).await })
    });

    let mut failure: Option<anyhow::Error> = tokio::select! {
        _ = tokio::time::sleep(campaign.duration) => None,
        _ = interrupt.cancelled() => { log.line("interrupted: ending the run phase"); None }
        _ = workload.failed() => Some(workload.error().unwrap_or_else(|| anyhow::anyhow!("a workload task failed"))),
    };
    let run_time = run_started.elapsed();
    // The nemesis always heals before the drain, whatever ended the run phase. Producers stop
    // meanwhile; their last sends finish once the cluster is whole again.
    nemesis_stop.cancel();
    *phase.lock().unwrap_or_else(|p| p.into_inner()) = "heal";
    let heal = async {
        if let Some(task) = nemesis_task {
            match task.await {
                Ok(Ok(faults)) => log.line(&format!("nemesis: {faults} fault(s) started")),
                Ok(Err(e)) => log.line(&format!("nemesis failed: {e:#}")),
                Err(e) => log.line(&format!("nemesis task ended abnormally: {e}")),
            }
        }
        match &nemesis {
            Some(n) => n.heal_all().await,
            None => Ok(()),
        }
    };
    let (healed, ()) = tokio::join!(heal, workload.stop_producing(SEND_GRACE));
    if let Err(e) = &healed {
        log.line(&format!("healing failed: {e:#}"));
    }
    let (sends, acked) = (Stats::get(&stats.sends), Stats::get(&stats.acked));
    log.line(&format!(
        "run phase: {:.1} s, {sends} sends ({:.0}/s), {acked} acknowledged ({:.0}/s)",
        run_time.as_secs_f64(),
        sends as f64 / run_time.as_secs_f64(),
        acked as f64 / run_time.as_secs_f64()
    ));
    if let (None, Err(e)) = (&failure, healed) {
        failure = Some(e.context("healing the cluster failed, so the drain could not be trusted"));
    }
    if failure.is_none() {
        *phase.lock().unwrap_or_else(|p| p.into_inner()) = "drain";
        let process = Process::Client(workload.new_process());
        let op = recorder.invoke(process, crate::history::ops::DRAIN, None)?;
        let end = workload
            .drain(
                Duration::from_secs_f64(campaign.drain.quiet),
                Duration::from_secs_f64(campaign.drain.timeout),
                abandon,
            )
            .await;
        let missing = workload.outstanding();
        log.line(&format!(
            "drain ended: {end:?}, {missing} acknowledged message(s) not seen by some group"
        ));
        if matches!(end, DrainEnd::TimedOut) && missing > 0 {
            // Why they were not seen, while the clients are still as they were: the broker's side.
            let report = tokio::time::timeout(STALL_REPORT_WAIT, broker.stall_report(workload.dests())).await;
            for line in report.unwrap_or_else(|_| vec!["the broker's stall report did not come in time".into()]) {
                log.line(&format!("at the drain's end: {line}"));
            }
        }
        let (kind, error) = match end {
            DrainEnd::Complete | DrainEnd::Quiet => (EventType::Ok, None),
            DrainEnd::TimedOut => (
                EventType::Info,
                Some("deliveries were still coming when the drain timed out".to_string()),
            ),
            DrainEnd::Interrupted => (EventType::Info, Some("the drain was cut short".to_string())),
        };
        recorder.complete(process, op, kind, crate::history::ops::DRAIN, None, error)?;
        failure = workload.error();
    }
    *phase.lock().unwrap_or_else(|p| p.into_inner()) = "closing";
    workload.stop().await;
    if !plan.keep_dests {
        delete_dests(broker.as_ref(), workload.dests(), log).await;
    }
    progress.cancel();
    let mut summary = format!(
        "{} sends ({} acknowledged, {} failed, {} unknown), {} deliveries, {} client crashes",
        Stats::get(&stats.sends),
        Stats::get(&stats.acked),
        Stats::get(&stats.failed),
        Stats::get(&stats.indeterminate),
        Stats::get(&stats.deliveries),
        Stats::get(&stats.crashes)
    );
    if Stats::get(&stats.skipped) > 0 {
        summary += &format!(
            ", {} copies skipped by the idempotent consumers",
            Stats::get(&stats.skipped)
        );
    }
    log.line(&summary);
    eprintln!(
        "done: {summary}; {:.0} acknowledged sends/s in the run phase",
        acked as f64 / run_time.as_secs_f64()
    );
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
