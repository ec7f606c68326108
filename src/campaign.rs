//! Campaign files: what `ackcheck run` runs (broker, delivery mode, workload, client crashes,
//! broker faults, drain), as TOML validated strictly. An unknown key, a wrong type or an
//! impossible value is an error that names the key and its line.

mod errors;
mod values;

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::broker::{BrokerKind, ClientSettings, ClientTables, Props};
use crate::faults::{FaultKind, NemesisConfig, StepTarget, Target};
use crate::history::Guarantee;
pub use errors::{line_of, CampaignError};
use errors::{qualified, toml_error};
use values::*;
pub use values::{parse_duration, MAX_SECONDS, MIN_EVENT_SECONDS};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Campaign {
    /// Shown in the run log; defaults to the file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub broker: BrokerKind,
    /// The broker's version, where its driver runs more than one (Kafka: `"3.9.1"`); the
    /// driver's default otherwise. Recorded in the history header's config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default = "one", deserialize_with = "at_least_one_usize")]
    pub nodes: usize,
    /// The delivery mode the clients are configured for.
    pub mode: Guarantee,
    /// The guarantee the run is judged against; defaults to `mode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<Guarantee>,
    /// How long the workload and the faults run (before the drain).
    #[serde(default = "sixty_seconds", deserialize_with = "duration", serialize_with = "seconds")]
    pub duration: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    pub workload: WorkloadConfig,
    #[serde(default)]
    pub crashes: CrashConfig,
    #[serde(default)]
    pub nemesis: NemesisConfig,
    #[serde(default)]
    pub drain: DrainConfig,
    /// Where the brokers are with `--external`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalConfig>,
    /// `[dest]`: settings of the topics or queues the run creates, in the broker's own
    /// vocabulary (RabbitMQ `queue_type` and `x-` arguments); its driver checks them.
    #[serde(default, skip_serializing)]
    pub dest: toml::Table,
    /// The effective `[dest]` settings (the driver's defaults filled in), as recorded in the
    /// history header. Set by [`Campaign::parse`].
    #[serde(skip_deserializing)]
    pub dest_settings: serde_json::Value,
    /// `[client]`: the user's own client properties (`[client.producer]`, `[client.consumer]`)
    /// over the mode's preset, in the broker's vocabulary; its driver checks them.
    #[serde(default, skip_serializing)]
    pub client: ClientTables,
    /// The effective client properties (preset + the user's, each marked, secrets redacted when
    /// written), as recorded in the history header. Set by [`Campaign::parse`].
    #[serde(skip_deserializing, rename = "client")]
    pub client_settings: ClientSettings,
    /// `[server]`: settings of the nodes ackcheck starts, in the broker's vocabulary (Kafka's
    /// `server.properties` keys); its driver checks them. (Not `[broker]`: `broker` already
    /// names the broker.)
    #[serde(default, skip_serializing)]
    pub server: toml::Table,
    /// The effective `[server]` settings, as recorded in the history header.
    #[serde(skip_deserializing, rename = "server", skip_serializing_if = "Props::is_empty")]
    pub server_settings: Props,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    /// Producers → a topic with several partitions and keys → one consumer group.
    Queue,
    /// Atomic sends spanning partitions, read by a read-committed and a read-uncommitted group.
    Txn,
    /// Source → transactional processors → sink, read by a read-committed verifier group.
    Pipeline,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadConfig {
    pub kind: WorkloadKind,
    /// Base name of the topic(s); the run adds its id. Default: the workload kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default = "four", deserialize_with = "partitions")]
    pub partitions: u32,
    #[serde(default = "two", deserialize_with = "at_least_one")]
    pub producers: u32,
    /// Members of each consumer group.
    #[serde(default = "two", deserialize_with = "at_least_one")]
    pub consumers: u32,
    /// Pipeline only: transactional processors.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some_at_least_one"
    )]
    pub processors: Option<u32>,
    /// Pipeline only: what turns the source into the sink. Absent: ackcheck's own transactional
    /// processors. Otherwise a processor application the broker offers, run as separate OS
    /// processes that ackcheck starts, kills (`kill -9`, the client-crash fault) and restarts
    /// (Kafka: `kafka-streams`, `kafka-streams-stateful`; see docs/kafka-streams.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processor: Option<String>,
    /// Settings handed unchanged to the processor application, after ackcheck's own (Kafka
    /// Streams: `StreamsConfig` keys such as `processing.guarantee`, `num.standby.replicas`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub processor_config: std::collections::BTreeMap<String, String>,
    /// Distinct message keys.
    #[serde(default = "sixteen", deserialize_with = "at_least_one")]
    pub keys: u32,
    /// Messages per second over all producers; 0 = as fast as the broker takes them.
    #[serde(default = "two_hundred", deserialize_with = "non_negative")]
    pub rate: f64,
    /// Bytes per message body.
    #[serde(default = "one_hundred", deserialize_with = "at_least_one")]
    pub message_size: u32,
    /// Sends in flight per producer (non-transactional modes).
    #[serde(default = "sixteen", deserialize_with = "at_least_one")]
    pub in_flight: u32,
    /// Messages per transaction (transactional producers).
    #[serde(default = "five", deserialize_with = "at_least_one")]
    pub txn_size: u32,
    /// Most messages a consumer or processor handles at once.
    #[serde(default = "fifty", deserialize_with = "at_least_one")]
    pub poll_batch: u32,
    /// Txn only: the share of transactions aborted on purpose (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "some_fraction")]
    pub abort_ratio: Option<f64>,
    /// How long a consumer spends on each message after receiving it and before acknowledging
    /// it (with `ack = "after"`): a fixed time (`"200ms"`) or a range (`"100ms..500ms"`) drawn
    /// per message from the run's seed. Absent: processing takes no time (recording it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing: Option<ProcessingTime>,
    /// Whether consumers acknowledge (commit, ack, delete) `before` or `after` processing,
    /// over what the mode implies (at-most-once: before; the others: after).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<AckOrder>,
}

/// When a consumer acknowledges a message, relative to processing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AckOrder {
    /// Acknowledge, then process: a crash in between loses the message.
    Before,
    /// Process, then acknowledge: a crash in between, or an acknowledgement that comes too
    /// late, brings the message back.
    After,
}

impl AckOrder {
    /// What `mode` implies when the campaign does not say.
    pub fn of_mode(mode: Guarantee) -> AckOrder {
        match mode {
            Guarantee::AtMostOnce => AckOrder::Before,
            Guarantee::AtLeastOnce | Guarantee::ExactlyOnce => AckOrder::After,
        }
    }
}

/// A per-message processing time: `min` when fixed, else drawn uniformly in `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessingTime {
    pub min: Duration,
    pub max: Duration,
}

/// The longest processing time of one message: longer would stall a run (and its drain) on
/// a single message.
pub const MAX_PROCESSING: Duration = Duration::from_secs(600);

impl ProcessingTime {
    /// `"200ms"`, `"1.5s"`, `"100ms..500ms"`.
    pub fn parse(text: &str) -> Result<ProcessingTime, String> {
        let (min, max) = match text.split_once("..") {
            Some((a, b)) => (parse_duration(a)?, parse_duration(b)?),
            None => {
                let d = parse_duration(text)?;
                (d, d)
            }
        };
        if min > max {
            return Err(format!(
                "the range `{text}` starts after it ends; write the shorter time first"
            ));
        }
        if max > MAX_PROCESSING {
            return Err(format!(
                "`{text}` is longer than ackcheck processes one message (at most {} s)",
                MAX_PROCESSING.as_secs()
            ));
        }
        Ok(ProcessingTime { min, max })
    }

    /// The processing time of draw `unit` (a number in [0, 1) from the run's seed).
    pub fn at(&self, unit: f64) -> Duration {
        self.min + (self.max - self.min).mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// A duration as the campaign file would write it: whole milliseconds, else seconds.
fn duration_text(d: Duration) -> String {
    match d.subsec_nanos() % 1_000_000 {
        0 => format!("{}ms", d.as_millis()),
        _ => format!("{}s", d.as_secs_f64()),
    }
}

impl std::fmt::Display for ProcessingTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.min == self.max {
            true => f.write_str(&duration_text(self.min)),
            false => write!(f, "{}..{}", duration_text(self.min), duration_text(self.max)),
        }
    }
}

impl Serialize for ProcessingTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ProcessingTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ProcessingTime, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ProcessingTime;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a processing time such as \"200ms\" or a range such as \"100ms..500ms\"")
            }
            fn visit_str<E: serde::de::Error>(self, t: &str) -> Result<ProcessingTime, E> {
                ProcessingTime::parse(t).map_err(E::custom)
            }
        }
        d.deserialize_str(Visitor)
    }
}

impl WorkloadKind {
    /// The name campaign files use (`queue`).
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Queue => "queue",
            WorkloadKind::Txn => "txn",
            WorkloadKind::Pipeline => "pipeline",
        }
    }
}

impl WorkloadConfig {
    pub fn topic_base(&self) -> String {
        self.topic.clone().unwrap_or_else(|| match self.kind {
            WorkloadKind::Queue => "queue".into(),
            WorkloadKind::Txn => "txn".into(),
            WorkloadKind::Pipeline => "pipeline".into(),
        })
    }
}

/// Client crashes (workload faults): consumers or processors dropped at a random point.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrashConfig {
    /// Mean seconds between crashes; 0 = no crashes.
    #[serde(default, deserialize_with = "crash_interval")]
    pub interval: f64,
}

/// The shortest drain quiet time a pipeline with a processor application runs with (seconds).
pub const MIN_APP_DRAIN_QUIET: f64 = 30.0;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainConfig {
    /// The drain ends after this many seconds without a delivery.
    #[serde(default = "five_f", deserialize_with = "positive_bounded")]
    pub quiet: f64,
    /// The drain gives up (and is recorded as incomplete) after this many seconds.
    #[serde(default = "one_twenty_f", deserialize_with = "positive_bounded")]
    pub timeout: f64,
}

impl Default for DrainConfig {
    fn default() -> Self {
        DrainConfig {
            quiet: five_f(),
            timeout: one_twenty_f(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalConfig {
    /// Client addresses (`host:port`) of brokers started elsewhere, one per node.
    pub endpoints: Vec<String>,
    /// What `{host}` stands for in the commands, per node, when not the host of its endpoint
    /// (clients go through a proxy, commands to the machine behind it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// How to kill, pause, resume and restart each node, and tell it is healthy: the user's own
    /// commands (`docker kill kafka-{node}`), for the process faults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands: Option<crate::nodes::external::ExternalCommands>,
    /// The Toxiproxy the clients' traffic passes, for the network faults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toxiproxy: Option<crate::nodes::external::ExternalToxiproxy>,
}

impl ExternalConfig {
    /// Why this table cannot make `fault` on external brokers, if it cannot: the commands or
    /// the Toxiproxy it needs, in one sentence saying what to add.
    pub fn cannot(&self, fault: FaultKind) -> Option<String> {
        let commands = self.commands.clone().unwrap_or_default();
        let missing = |names: &[(&str, &Option<String>)]| {
            names
                .iter()
                .filter(|(_, c)| c.is_none())
                .map(|(n, _)| format!("`{n}`"))
                .collect::<Vec<_>>()
        };
        let needs = match fault {
            FaultKind::Kill => missing(&[("kill", &commands.kill), ("restart", &commands.restart)]),
            FaultKind::Pause => missing(&[("pause", &commands.pause), ("resume", &commands.resume)]),
            FaultKind::LoseAcks | FaultKind::Reset | FaultKind::Latency => {
                return self.toxiproxy.is_none().then(|| format!(
                    "\"{fault}\" on external brokers needs the Toxiproxy their clients' traffic passes: add [external.toxiproxy] with `api` and one proxy name per endpoint in `proxies`"
                ));
            }
            _ => {
                return Some(format!(
                    "\"{fault}\" cuts traffic between nodes, which ackcheck can only do to nodes it runs itself; run the campaign without --external"
                ))
            }
        };
        (!needs.is_empty()).then(|| {
            format!(
                "\"{fault}\" on external brokers needs {} under [external.commands] (templates with {{node}}, {{host}}, {{port}}, {{endpoint}}, e.g. `kill = \"docker kill kafka-{{node}}\"`)",
                needs.join(" and ")
            )
        })
    }
}

impl Campaign {
    pub fn load(path: &Path) -> Result<Campaign, CampaignError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| CampaignError {
            file: file.clone(),
            line: None,
            message: format!("cannot be read: {e}"),
        })?;
        Campaign::parse(&file, &text)
    }

    pub fn parse(file: &str, text: &str) -> Result<Campaign, CampaignError> {
        let mut campaign: Campaign = toml::from_str(text).map_err(|e| toml_error(file, text, &e))?;
        campaign.dest_settings = campaign
            .broker
            .driver()
            .dest_settings_in_mode(campaign.mode, &campaign.dest)
            .map_err(|e| {
                let key = if campaign.dest.contains_key(&e.key) {
                    e.key.as_str()
                } else {
                    ""
                };
                CampaignError {
                    file: file.to_string(),
                    line: line_of(text, "dest", key),
                    message: format!("{}: {}", qualified("dest", &e.key), e.message),
                }
            })?;
        let (driver, mode) = (campaign.broker.driver(), campaign.mode);
        // `producer.acks` → the line of `acks` under [client.producer].
        let client_error = |e: crate::broker::OptionError| {
            let (table, key) = match e.key.split_once('.') {
                Some((role, key)) => (format!("client.{role}"), key.to_string()),
                None => ("client".to_string(), e.key.clone()),
            };
            CampaignError {
                file: file.to_string(),
                line: line_of(text, &table, &key),
                message: format!("{}: {}", qualified(&table, &key), e.message),
            }
        };
        // Secrets given as `{ env = … }` / `{ file = … }` are read into a copy: the campaign as
        // written (which a matrix copies into its cells) keeps the references, not the values.
        let mut client = campaign.client.clone();
        let mut read = Vec::new();
        for (role, table) in [("producer", &mut client.producer), ("consumer", &mut client.consumer)] {
            for key in crate::broker::props::read_references(table).map_err(|e| {
                client_error(crate::broker::OptionError {
                    key: format!("{role}.{}", e.key),
                    message: e.message,
                })
            })? {
                read.push((role, key));
            }
        }
        campaign.client_settings = driver.client_settings(mode, &client).map_err(client_error)?;
        for (role, key) in read {
            match role {
                "producer" => campaign.client_settings.producer.hide(&key),
                _ => campaign.client_settings.consumer.hide(&key),
            }
        }
        campaign.server_settings = driver.server_settings(&campaign.server).map_err(|e| CampaignError {
            file: file.to_string(),
            line: line_of(text, "server", &e.key),
            message: format!("{}: {}", qualified("server", &e.key), e.message),
        })?;
        campaign.validate().map_err(|(table, key, message)| CampaignError {
            file: file.to_string(),
            line: line_of(text, table, key),
            message: if message.starts_with(&format!("{table}.{key} ")) {
                message
            } else {
                format!("{}: {message}", qualified(table, key))
            },
        })?;
        Ok(campaign)
    }

    /// The partition faults the nemesis may make (schedule and scripted steps).
    pub fn partition_faults(&self) -> impl Iterator<Item = FaultKind> + '_ {
        let steps = self.nemesis.steps.iter().map(|s| s.fault);
        self.nemesis
            .faults
            .iter()
            .copied()
            .chain(steps)
            .filter(|f| f.is_partition())
    }

    /// Where the campaign's nodes must run: in network namespaces when it partitions them.
    pub fn node_network(&self) -> crate::nodes::NodeNetwork {
        if self.partition_faults().next().is_some() {
            crate::nodes::NodeNetwork::Namespaces
        } else {
            crate::nodes::NodeNetwork::Loopback
        }
    }

    /// The guarantee the run is judged against.
    pub fn claim(&self) -> Guarantee {
        self.claim.unwrap_or(self.mode)
    }

    /// Checks that involve more than one key, and what the broker's driver does not declare:
    /// (table, key, what is wrong).
    fn validate(&self) -> Result<(), (&'static str, &'static str, String)> {
        let broker = self.broker;
        let capabilities = broker.capabilities();
        if let Some(version) = &self.version {
            broker
                .check_version(version)
                .map_err(|e| ("", "version", e.to_string()))?;
        }
        if let (WorkloadKind::Txn | WorkloadKind::Pipeline, Some(why)) = (self.workload.kind, capabilities.transactions)
        {
            let kind = self.workload.kind.name();
            return Err((
                "workload",
                "kind",
                format!("the {kind} workload needs transactions, and {broker} cannot give them here: {why}; use kind = \"queue\""),
            ));
        }
        let step_faults = self.nemesis.steps.iter().map(|s| s.fault);
        for fault in self.nemesis.faults.iter().copied().chain(step_faults) {
            if let Some((_, why)) = capabilities.refused_faults.iter().find(|(f, _)| *f == fault.name()) {
                return Err((
                    "nemesis",
                    "faults",
                    format!("{broker} cannot take the fault \"{fault}\": {why}"),
                ));
            }
        }
        if let Some(fault) = self.partition_faults().next() {
            if let Some(why) = capabilities.partitions {
                return Err((
                    "nemesis",
                    "faults",
                    format!("{broker} cannot take the fault \"{fault}\": {why}"),
                ));
            }
            let least = if self.partition_faults().any(|f| f == FaultKind::PartitionBridge) {
                3
            } else {
                2
            };
            if self.nodes < least {
                return Err((
                    "",
                    "nodes",
                    format!(
                        "partitions cut traffic between nodes, so \"{fault}\" needs nodes = {least} or more, not {}",
                        self.nodes
                    ),
                ));
            }
        }
        let coordinator_step = self.nemesis.steps.iter().any(|s| s.target == StepTarget::Coordinator);
        if coordinator_step || (self.nemesis.target == Target::Coordinator && !self.nemesis.faults.is_empty()) {
            let key = if coordinator_step { "steps" } else { "target" };
            if broker.driver().coordinator_key("run", "producer-0").is_none() {
                return Err((
                    "nemesis",
                    key,
                    format!("{broker} has no node that coordinates transactions here, so there is no coordinator to target; use leader, random or node:<i>"),
                ));
            }
            if !matches!(self.workload.kind, WorkloadKind::Txn | WorkloadKind::Pipeline) {
                return Err((
                    "nemesis",
                    key,
                    "the coordinator is that of the first transactional producer or processor, which only the txn and pipeline workloads have; use leader, random or node:<i>".into(),
                ));
            }
        }
        let controller_step = self.nemesis.steps.iter().any(|s| s.target == StepTarget::Controller);
        if !capabilities.controller
            && (controller_step || (self.nemesis.target == Target::Controller && !self.nemesis.faults.is_empty()))
        {
            return Err((
                "nemesis",
                if controller_step { "steps" } else { "target" },
                format!("{broker} has no node that leads the cluster's metadata, so there is no controller to target; use leader, random or node:<i>"),
            ));
        }
        if self.nemesis.target == Target::Leader && !capabilities.leaders && !self.nemesis.faults.is_empty() {
            return Err((
                "nemesis",
                "target",
                format!("{broker} has no node that leads a destination, so there is no leader to target; use target = \"random\""),
            ));
        }
        for (i, step) in self.nemesis.steps.iter().enumerate() {
            match step.target {
                StepTarget::Minority if self.nodes < 3 => {
                    return Err((
                        "nemesis",
                        "steps",
                        format!("steps[{i}]: a minority that leaves a majority needs nodes = 3 or more, not {}", self.nodes),
                    ))
                }
                StepTarget::Leader | StepTarget::Followers | StepTarget::Minority if !capabilities.leaders => {
                    return Err((
                        "nemesis",
                        "steps",
                        format!("steps[{i}]: {broker} has no node that leads a destination, so there is no {} to target; use all or node:<i>", step.target),
                    ))
                }
                StepTarget::Node(n) if n >= self.nodes => {
                    return Err((
                        "nemesis",
                        "steps",
                        format!("steps[{i}]: there is no node {n} in a cluster of {} node(s)", self.nodes),
                    ))
                }
                _ => {}
            }
        }
        if !self.broker.allowed_nodes().contains(&self.nodes) {
            let allowed: Vec<String> = self.broker.allowed_nodes().iter().map(|n| n.to_string()).collect();
            return Err((
                "",
                "nodes",
                format!(
                    "{} runs locally with {} node(s), not {}",
                    self.broker,
                    allowed.join(" or "),
                    self.nodes
                ),
            ));
        }
        let w = &self.workload;
        if let Some(app) = &w.processor {
            if w.kind != WorkloadKind::Pipeline {
                return Err(("workload", "processor", "is only used by the pipeline workload".into()));
            }
            if !capabilities.processor_apps.contains(&app.as_str()) {
                let offered = match capabilities.processor_apps {
                    [] => format!("{broker} offers none; remove the key to use ackcheck's own processors"),
                    apps => format!("{broker} offers {}", apps.join(", ")),
                };
                return Err((
                    "workload",
                    "processor",
                    format!("there is no processor application \"{app}\": {offered}"),
                ));
            }
            // ackcheck cannot see the application's members: the drain cannot wait for its group
            // to settle, only for deliveries. A killed instance's partitions are idle for its
            // session timeout, then a rebalance, then (exactly_once_v2) until its open
            // transaction is aborted: a shorter quiet time would call that delay a loss.
            if self.drain.quiet < MIN_APP_DRAIN_QUIET {
                return Err((
                    "drain",
                    "quiet",
                    format!(
                        "a processor application can be silent for tens of seconds after a crash (a rebalance, a transaction timing out), so its drain needs quiet = {MIN_APP_DRAIN_QUIET} or more, not {}",
                        self.drain.quiet
                    ),
                ));
            }
        } else if !w.processor_config.is_empty() {
            return Err((
                "workload",
                "processor_config",
                "configures a processor application, so it needs `processor` too".into(),
            ));
        }
        // A processor application decides its own guarantee (Kafka Streams' processing.guarantee),
        // so its pipeline may claim at-least-once; ackcheck's own processors are transactional.
        let pipeline_claim_ok = w.kind == WorkloadKind::Pipeline
            && w.processor.is_some()
            && matches!(self.mode, Guarantee::ExactlyOnce | Guarantee::AtLeastOnce);
        if w.kind == WorkloadKind::Pipeline && w.processor.is_some() && !pipeline_claim_ok {
            return Err((
                "",
                "mode",
                format!(
                    "a pipeline with a processor application runs in mode \"exactly-once\" or \"at-least-once\", not \"{}\"",
                    self.mode
                ),
            ));
        }
        if matches!(w.kind, WorkloadKind::Txn | WorkloadKind::Pipeline)
            && self.mode != Guarantee::ExactlyOnce
            && !pipeline_claim_ok
        {
            return Err((
                "",
                "mode",
                format!(
                    "the {:?} workload needs transactions, so mode must be \"exactly-once\", not \"{}\"",
                    w.kind, self.mode
                )
                .to_lowercase(),
            ));
        }
        if w.processors.is_some() && w.kind != WorkloadKind::Pipeline {
            return Err(("workload", "processors", "is only used by the pipeline workload".into()));
        }
        if w.abort_ratio.is_some() && w.kind != WorkloadKind::Txn {
            return Err(("workload", "abort_ratio", "is only used by the txn workload".into()));
        }
        if w.kind == WorkloadKind::Pipeline {
            let why = "applies to the consumers of the queue and txn workloads; the pipeline's processors commit inside their transactions";
            if w.processing.is_some() {
                return Err(("workload", "processing", why.into()));
            }
            if w.ack.is_some() {
                return Err(("workload", "ack", why.into()));
            }
        }
        if w.topic
            .as_deref()
            .is_some_and(|t| t.is_empty() || !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            return Err((
                "workload",
                "topic",
                "must be a non-empty name of letters, digits, '-' and '_'".into(),
            ));
        }
        if let Some(name) = &self.name {
            // The name becomes part of the run directory's name: no path tricks.
            if name.is_empty()
                || name.len() > 100
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                || name.starts_with('.')
            {
                return Err((
                    "",
                    "name",
                    "must be 1 to 100 letters, digits, '-', '_' or '.' (not starting with '.'), so that it can name the run's directory".into(),
                ));
            }
        }
        if !self.nemesis.faults.is_empty() {
            let n = &self.nemesis;
            if n.duration.is_finite() && !(MIN_EVENT_SECONDS..=MAX_SECONDS).contains(&n.duration) {
                return Err((
                    "nemesis",
                    "duration",
                    format!("must be between {MIN_EVENT_SECONDS} s and a week, not {}", n.duration),
                ));
            }
            if n.interval.is_finite() && n.interval > MAX_SECONDS {
                return Err((
                    "nemesis",
                    "interval",
                    format!("must be at most a week, not {}", n.interval),
                ));
            }
        }
        if let Err(e) = self.nemesis.validate() {
            let key = if e.contains("steps") {
                "steps"
            } else if e.contains("interval") {
                "interval"
            } else {
                "duration"
            };
            return Err(("nemesis", key, e));
        }
        if let Some(x) = &self.external {
            if x.endpoints.is_empty() {
                return Err(("external", "endpoints", "must list at least one host:port".into()));
            }
            if let Some(hosts) = &x.hosts {
                if hosts.len() != x.endpoints.len() {
                    return Err((
                        "external",
                        "hosts",
                        format!(
                            "names {} hosts for {} endpoints; give one host per endpoint, in the same order",
                            hosts.len(),
                            x.endpoints.len()
                        ),
                    ));
                }
            }
            if let Some(t) = &x.toxiproxy {
                if t.proxies.len() != x.endpoints.len() {
                    return Err((
                        "external",
                        "toxiproxy",
                        format!(
                            "`proxies` names {} proxies for {} endpoints; give one proxy per endpoint, in the same order",
                            t.proxies.len(),
                            x.endpoints.len()
                        ),
                    ));
                }
            }
            if let Some(c) = &x.commands {
                if !(c.timeout.is_finite() && c.timeout > 0.0) {
                    return Err((
                        "external",
                        "commands",
                        format!("`timeout` must be a positive number of seconds, not {}", c.timeout),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "broker = \"kafka\"\nmode = \"at-least-once\"\nduration = \"30s\"\n\n[workload]\nkind = \"queue\"\npartitions = 3\n";

    #[test]
    fn external_faults_need_their_commands_or_proxy_and_partitions_are_refused() {
        let mut x = ExternalConfig {
            endpoints: vec!["kafka-0:9092".into()],
            hosts: None,
            commands: Some(crate::nodes::external::ExternalCommands {
                kill: Some("docker kill kafka-{node}".into()),
                ..Default::default()
            }),
            toxiproxy: None,
        };
        let why = x.cannot(FaultKind::Kill).expect("no restart command");
        assert!(why.contains("needs `restart` under [external.commands]"), "{why}");
        let why = x.cannot(FaultKind::Pause).expect("no pause commands");
        assert!(why.contains("needs `pause` and `resume`"), "{why}");
        let why = x.cannot(FaultKind::LoseAcks).expect("no proxy");
        assert!(why.contains("[external.toxiproxy]"), "{why}");
        let why = x.cannot(FaultKind::PartitionOne).expect("never");
        assert!(why.contains("only do to nodes it runs itself"), "{why}");
        x.commands.as_mut().unwrap().restart = Some("docker start kafka-{node}".into());
        x.toxiproxy = Some(crate::nodes::external::ExternalToxiproxy {
            api: "127.0.0.1:8474".into(),
            proxies: vec!["kafka-0".into()],
        });
        assert_eq!(x.cannot(FaultKind::Kill), None);
        assert_eq!(x.cannot(FaultKind::Latency), None);
    }

    #[test]
    fn a_version_must_be_one_the_driver_runs() {
        let good = format!("version = \"3.9.1\"\n{GOOD}");
        assert_eq!(
            Campaign::parse("c.toml", &good).expect("valid").version.as_deref(),
            Some("3.9.1")
        );
        let bad = format!("version = \"2.8.0\"\n{GOOD}");
        let e = Campaign::parse("c.toml", &bad).unwrap_err().to_string();
        assert!(e.contains("choose one of 4.1.1, 3.9.1"), "{e}");
        let nats = "broker = \"nats\"\nversion = \"2.12\"\nmode = \"at-least-once\"\n[workload]\nkind = \"queue\"\n";
        let e = Campaign::parse("c.toml", nats).unwrap_err().to_string();
        assert!(e.contains("runs one pinned version here"), "{e}");
    }

    #[test]
    fn a_minimal_campaign_gets_defaults() {
        let c = Campaign::parse("c.toml", GOOD).expect("valid");
        assert_eq!(c.duration, Duration::from_secs(30));
        assert_eq!(c.claim(), Guarantee::AtLeastOnce);
        assert_eq!(c.workload.partitions, 3);
        assert_eq!(c.workload.producers, 2);
        assert!(c.nemesis.faults.is_empty());
    }

    #[test]
    fn unknown_keys_wrong_types_and_impossible_values_name_key_and_line() {
        let e = Campaign::parse("c.toml", &GOOD.replace("partitions = 3", "partitons = 3")).unwrap_err();
        assert_eq!(e.line, Some(7), "{e}");
        assert!(
            e.to_string()
                .contains("unknown key `partitons` in [workload]: did you mean `partitions`?"),
            "{e}"
        );
        let e = Campaign::parse("c.toml", &format!("{GOOD}[nemisis]\nfaults = [\"kill\"]\n")).unwrap_err();
        assert_eq!(e.line, Some(8), "{e}");
        assert!(
            e.to_string()
                .ends_with("unknown table [nemisis]: did you mean [nemesis]?"),
            "{e}"
        );
        let e = Campaign::parse("c.toml", &GOOD.replace("partitions = 3", "xyzzy = 3")).unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown key `xyzzy` in [workload] (expected one of `kind`"),
            "{e}"
        );
        let e = Campaign::parse("c.toml", &GOOD.replace("\"30s\"", "[30]")).unwrap_err();
        assert!(
            e.to_string().ends_with(
                "line 3: `duration`: invalid type: sequence, expected a duration: a number of seconds, or text such as \"60s\", \"500ms\", \"2m\""
            ),
            "{e}"
        );
        let e = Campaign::parse("c.toml", &GOOD.replace("partitions = 3", "partitions = \"three\"")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("c.toml, line 7: `workload.partitions`: invalid type"),
            "{e}"
        );
        let e = Campaign::parse("c.toml", &GOOD.replace("partitions = 3", "partitions = 0")).unwrap_err();
        assert!(
            e.to_string().contains("line 7") && e.to_string().contains("at least 1"),
            "{e}"
        );
        let e = Campaign::parse("c.toml", &GOOD.replace("\"30s\"", "\"30 parsecs\"")).unwrap_err();
        assert!(
            e.to_string().contains("line 3") && e.to_string().contains("duration"),
            "{e}"
        );
        let e = Campaign::parse("c.toml", &format!("{GOOD}abort_ratio = 0.2\n")).unwrap_err();
        assert!(
            e.to_string().contains("line 8") && e.to_string().contains("only used by the txn"),
            "{e}"
        );
        let e = Campaign::parse("c.toml", &GOOD.replace("at-least-once", "twice")).unwrap_err();
        assert!(
            e.to_string().contains("line 2") && e.to_string().contains("`mode`"),
            "{e}"
        );
        let e = Campaign::parse("c.toml", &format!("{GOOD}\n[nemesis]\nfaults = [\"flood\"]\n")).unwrap_err();
        assert!(e.to_string().contains("line 10"), "{e}");
        let e = Campaign::parse("c.toml", &format!("{GOOD}\n[dest]\nqueue_type = \"classic\"\n")).unwrap_err();
        assert!(
            e.to_string().contains("line 10") && e.to_string().contains("not a Kafka topic setting"),
            "{e}"
        );
        let e = Campaign::parse(
            "c.toml",
            &format!(
                "{}\n[dest]\nqueue_type = \"stream\"\n",
                GOOD.replace("kafka", "rabbitmq")
            ),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("line 10") && e.to_string().contains("quorum"),
            "{e}"
        );
        let c = Campaign::parse(
            "c.toml",
            &format!(
                "{}\n[dest]\nqueue_type = \"classic\"\n",
                GOOD.replace("kafka", "rabbitmq")
            ),
        )
        .expect("valid");
        assert_eq!(
            c.dest_settings,
            serde_json::json!({"queue_type": "classic", "durable": true, "arguments": {}})
        );
    }

    /// Values a timer or a broker cannot take are refused at load, naming the key and its line
    /// (before, `duration = 1e20` and `[drain] timeout = 1e20` panicked, `partitions = 3e9`
    /// reached Kafka as a negative number, a tiny crash interval never finished its schedule, and
    /// `name` could write outside `runs/`).
    #[test]
    fn limits_that_timers_and_brokers_cannot_take() {
        let refused = |text: String, line: usize, words: &str| {
            let e = Campaign::parse("c.toml", &text).expect_err("must be refused");
            assert_eq!(e.line, Some(line), "{e}");
            assert!(e.to_string().contains(words), "{e}");
        };
        refused(GOOD.replace("\"30s\"", "1e20"), 3, "at most a week");
        refused(
            GOOD.replace("\"30s\"", "\"99999999999999999999s\""),
            3,
            "at most a week",
        );
        refused(format!("{GOOD}\n[drain]\ntimeout = 1e20\n"), 10, "at most a week");
        refused(
            GOOD.replace("partitions = 3", "partitions = 3000000000"),
            7,
            "partitions",
        );
        refused(GOOD.replace("partitions = 3", "partitions = 20000"), 7, "at most 10000");
        refused(
            format!("{GOOD}\n[crashes]\ninterval = 1e-9\n"),
            10,
            "between 0.05 s and a week",
        );
        refused(
            format!("{GOOD}\n[nemesis]\nfaults = [\"kill\"]\ninterval = 0\nduration = 1e-9\n"),
            12,
            "between 0.05 s and a week",
        );
        refused(format!("name = \"../../etc\"\n{GOOD}"), 1, "name the run's directory");
        refused(format!("name = \"\"\n{GOOD}"), 1, "name the run's directory");
        // The edges themselves are fine.
        Campaign::parse(
            "c.toml",
            &format!("name = \"orders-v2.1\"\n{GOOD}\n[crashes]\ninterval = 0\n"),
        )
        .expect("valid");
        Campaign::parse("c.toml", &GOOD.replace("\"30s\"", "604800")).expect("a week is allowed");
        assert!(parse_duration("99999999999999999999").is_err());
    }

    #[test]
    fn processing_time_and_ack_order_are_read_checked_and_recorded() {
        let c = Campaign::parse(
            "c.toml",
            &format!("{GOOD}processing = \"100ms..500ms\"\nack = \"before\"\n"),
        )
        .expect("valid");
        let p = c.workload.processing.expect("a processing time");
        assert_eq!((p.min, p.max), (Duration::from_millis(100), Duration::from_millis(500)));
        assert_eq!(p.at(0.0), Duration::from_millis(100));
        assert_eq!(p.at(0.5), Duration::from_millis(300));
        assert_eq!(c.workload.ack, Some(AckOrder::Before));
        let recorded = serde_json::to_value(&c).unwrap();
        assert_eq!(recorded["workload"]["processing"], "100ms..500ms");
        assert_eq!(recorded["workload"]["ack"], "before");
        let fixed = Campaign::parse("c.toml", &format!("{GOOD}processing = \"1.5s\"\n")).expect("valid");
        assert_eq!(fixed.workload.processing.unwrap().to_string(), "1500ms");
        assert_eq!(fixed.workload.processing.unwrap().at(0.9), Duration::from_millis(1500));

        // Absent, nothing is recorded: the header of an existing campaign stays as it was.
        let plain = serde_json::to_value(Campaign::parse("c.toml", GOOD).unwrap()).unwrap();
        assert!(plain["workload"].get("processing").is_none() && plain["workload"].get("ack").is_none());

        let refused = |extra: &str, words: &str| {
            let e = Campaign::parse("c.toml", &format!("{GOOD}{extra}\n")).expect_err(extra);
            assert_eq!(e.line, Some(8), "{e}");
            assert!(e.to_string().contains(words), "{extra}: {e}");
        };
        refused("processing = \"500ms..100ms\"", "starts after it ends");
        refused("processing = \"soon\"", "not a duration");
        refused("processing = \"0ms\"", "positive");
        refused("processing = \"2h\"", "at most 600 s");
        refused("processing = 5", "a processing time such as");
        refused("ack = \"later\"", "`before`");
        let pipeline =
            "broker = \"kafka\"\nmode = \"exactly-once\"\n[workload]\nkind = \"pipeline\"\nack = \"after\"\n";
        let e = Campaign::parse("c.toml", pipeline).unwrap_err();
        assert!(
            e.to_string().contains("line 5") && e.to_string().contains("pipeline"),
            "{e}"
        );
    }

    #[test]
    fn the_ack_order_follows_the_mode_unless_the_campaign_says() {
        assert_eq!(AckOrder::of_mode(Guarantee::AtMostOnce), AckOrder::Before);
        assert_eq!(AckOrder::of_mode(Guarantee::AtLeastOnce), AckOrder::After);
        assert_eq!(AckOrder::of_mode(Guarantee::ExactlyOnce), AckOrder::After);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("ten").is_err());
    }
}
