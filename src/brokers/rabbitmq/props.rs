//! RabbitMQ's settings in a campaign, in RabbitMQ's (and AMQP 0-9-1's) own vocabulary: the
//! client properties of each delivery mode and the user's over them (`[client.producer]`,
//! `[client.consumer]`), the queue declaration (`[dest]`: queue type, durability, `x-`
//! arguments) and `rabbitmq.conf` keys for the nodes ackcheck starts (`[server]`).
//!
//! Client properties (README, "Audit your own configuration"):
//!
//! | role | key | what it is | at-most-once | at-least-once, exactly-once | `defaults = "library"` |
//! |---|---|---|---|---|---|
//! | producer | `confirms` | publisher confirms (`confirm.select`): a publish is ok on the broker's ack, else as soon as it is written to the socket | false | true | false |
//! | producer | `persistent` | delivery mode 2 (persistent) or 1 (transient) | false | true | false (lapin sets no delivery mode: transient) |
//! | producer | `mandatory` | the `mandatory` publish flag: a message no queue takes is returned (and, with confirms, fails) instead of dropped | false | true | false |
//! | producer | `confirm_timeout_ms` | how long a publish waits for its confirm before its outcome is unknown (ackcheck's own wait; lapin waits forever) | 5000 | 5000 | 5000 |
//! | consumer | `auto_ack` | `basic.consume` with `no-ack`: the broker forgets a message once sent; false = manual acks | true | false | false |
//! | consumer | `prefetch` | `basic.qos` prefetch count, 0 = unlimited (no `basic.qos`); RabbitMQ applies it to manual-ack consumers only | 0 | 200 | 0 |
//! | both | `username`, `password` | the connection's credentials (default guest/guest, the only user of ackcheck's own nodes; for `[external]` brokers); the password is never written out | – | – | – |
//!
//! With `defaults = "library"` the entries marked `preset` in the history header are AMQP's and
//! lapin's own defaults (what an application that sets nothing but the user's keys gets), not
//! ackcheck's.

use std::time::Duration;

use lapin::types::{AMQPValue, FieldTable};
use serde_json::Value;

use crate::broker::ServerFile;
use crate::broker::{ClientDefaults, ClientRole, ClientSettings, ClientTables, OptionError, Props};
use crate::history::Guarantee;

/// The producer keys, each with what it takes.
const PRODUCER_KEYS: &[(&str, Kind)] = &[
    ("confirms", Kind::Bool),
    ("persistent", Kind::Bool),
    ("mandatory", Kind::Bool),
    ("confirm_timeout_ms", Kind::Int(100, 600_000)),
    ("username", Kind::Text),
    ("password", Kind::Text),
];

/// The consumer keys.
const CONSUMER_KEYS: &[(&str, Kind)] = &[
    ("auto_ack", Kind::Bool),
    ("prefetch", Kind::Int(0, u16::MAX as i64)),
    ("username", Kind::Text),
    ("password", Kind::Text),
];

/// Keys a run sets itself: a campaign cannot set them.
const OWNED_KEYS: &[(&str, &str)] = &[
    (
        "uri",
        "the run connects to the nodes' proxies (or `[external]` endpoints)",
    ),
    (
        "url",
        "the run connects to the nodes' proxies (or `[external]` endpoints)",
    ),
    (
        "host",
        "the run connects to the nodes' proxies (or `[external]` endpoints)",
    ),
    (
        "port",
        "the run connects to the nodes' proxies (or `[external]` endpoints)",
    ),
    ("vhost", "the run's queues are declared on the default vhost `/`"),
    (
        "queue",
        "every queue is named per run, so every run starts on empty queues",
    ),
    ("consumer_tag", "consumer tags are named per run and per consumer group"),
];

/// How long a publish waits for its confirm unless `confirm_timeout_ms` says otherwise. Well
/// above the nemesis's latency fault (500 ms), well below its lost-ack faults (seconds).
pub const CONFIRM_TIMEOUT_MS: u64 = 5000;
/// Unacknowledged deliveries a manual-ack consumer may hold in the at-least-once preset.
pub const PREFETCH: u16 = 200;

/// What a key takes.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Bool,
    /// An integer in `min..=max`.
    Int(i64, i64),
    /// Any one-line string.
    Text,
}

impl Kind {
    /// The value as the effective properties spell it, or what is allowed.
    fn read(self, value: &toml::Value) -> Result<String, String> {
        match self {
            Kind::Bool => match value {
                toml::Value::Boolean(b) => Ok(b.to_string()),
                toml::Value::String(s) if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") => {
                    Ok(s.to_ascii_lowercase())
                }
                other => Err(format!("must be true or false, not {other}")),
            },
            Kind::Int(min, max) => {
                let n = value
                    .as_integer()
                    .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()));
                match n {
                    Some(n) if (min..=max).contains(&n) => Ok(n.to_string()),
                    _ => Err(format!("must be a whole number from {min} to {max}, not {value}")),
                }
            }
            Kind::Text => match value {
                toml::Value::String(s) if !s.contains('\n') => Ok(s.clone()),
                other => Err(format!("must be a one-line string, not {other}")),
            },
        }
    }
}

/// The producer preset of `mode` (what the adapter did before campaigns could change it).
fn producer_preset(mode: Guarantee) -> Props {
    let safe = (mode != Guarantee::AtMostOnce).to_string();
    Props::preset([
        ("confirms", safe.as_str()),
        ("persistent", safe.as_str()),
        ("mandatory", safe.as_str()),
        ("confirm_timeout_ms", &CONFIRM_TIMEOUT_MS.to_string()),
    ])
}

/// The consumer preset of `mode`: auto-ack without a prefetch limit for at-most-once, manual
/// acks after processing with a bounded prefetch otherwise.
fn consumer_preset(mode: Guarantee) -> Props {
    match mode {
        Guarantee::AtMostOnce => Props::preset([("auto_ack", "true"), ("prefetch", "0")]),
        Guarantee::AtLeastOnce | Guarantee::ExactlyOnce => {
            Props::preset([("auto_ack", "false"), ("prefetch", PREFETCH.to_string().as_str())])
        }
    }
}

/// AMQP 0-9-1's and lapin's own defaults: no confirms, no delivery mode (transient), not
/// mandatory; a `basic.consume` that expects acks, and no `basic.qos` (unlimited prefetch).
/// Only the confirm timeout is ackcheck's (a publish that waited forever would stall the run).
fn library_defaults() -> (Props, Props) {
    (
        Props::preset([
            ("confirms", "false"),
            ("persistent", "false"),
            ("mandatory", "false"),
            ("confirm_timeout_ms", &CONFIRM_TIMEOUT_MS.to_string()),
        ]),
        Props::preset([("auto_ack", "false"), ("prefetch", "0")]),
    )
}

fn keys_of(role: ClientRole) -> &'static [(&'static str, Kind)] {
    match role {
        ClientRole::Producer => PRODUCER_KEYS,
        ClientRole::Consumer => CONSUMER_KEYS,
    }
}

fn names(keys: &[(&str, Kind)]) -> String {
    keys.iter()
        .map(|(k, _)| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The effective client properties of a campaign: the mode's preset (or AMQP's defaults) with
/// the user's keys over it, each checked.
pub fn client_settings(mode: Guarantee, tables: &ClientTables) -> Result<ClientSettings, OptionError> {
    let (mut producer, mut consumer) = match tables.defaults {
        ClientDefaults::Preset => (producer_preset(mode), consumer_preset(mode)),
        ClientDefaults::Library => library_defaults(),
    };
    for (role, table, props) in [
        (ClientRole::Producer, &tables.producer, &mut producer),
        (ClientRole::Consumer, &tables.consumer, &mut consumer),
    ] {
        for (key, value) in table {
            let bad = |message: String| OptionError {
                key: format!("{}.{key}", role.name()),
                message,
            };
            if let Some((_, why)) = OWNED_KEYS.iter().find(|(k, _)| k == key) {
                return Err(bad(format!("is set by ackcheck itself: {why}; remove it")));
            }
            let Some((_, kind)) = keys_of(role).iter().find(|(k, _)| k == key) else {
                let other = match role {
                    ClientRole::Producer => ClientRole::Consumer,
                    ClientRole::Consumer => ClientRole::Producer,
                };
                let hint = if keys_of(other).iter().any(|(k, _)| k == key) {
                    format!(" (it is a {0} setting: put it under [client.{0}])", other.name())
                } else {
                    String::new()
                };
                return Err(bad(format!(
                    "is not a RabbitMQ {} setting ackcheck knows{hint}; [client.{}] takes {}",
                    role.name(),
                    role.name(),
                    names(keys_of(role))
                )));
            };
            let value = kind.read(value).map_err(bad)?;
            props.set_user(key, &value);
        }
    }
    Ok(ClientSettings {
        defaults: tables.defaults,
        producer,
        consumer,
    })
}

/// The connection's credentials (`username`, `password`; guest/guest when not set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Default for Credentials {
    fn default() -> Self {
        Credentials {
            username: "guest".into(),
            password: "guest".into(),
        }
    }
}

impl Credentials {
    fn of(props: &Props) -> Credentials {
        let default = Credentials::default();
        Credentials {
            username: props.get("username").map_or(default.username, str::to_string),
            password: props.get("password").map_or(default.password, str::to_string),
        }
    }
}

/// What a producer does, read from its effective properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfig {
    pub confirms: bool,
    pub persistent: bool,
    pub mandatory: bool,
    pub confirm_timeout: Duration,
    pub credentials: Credentials,
}

/// What a consumer does, read from its effective properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    pub auto_ack: bool,
    /// 0 = unlimited (no `basic.qos`).
    pub prefetch: u16,
    pub credentials: Credentials,
}

/// A value the effective properties hold but that does not read as its kind: only when they
/// were made without [`client_settings`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("the RabbitMQ {role} property {key} = {value:?} is not a valid value")]
pub struct BadProperty {
    role: &'static str,
    key: String,
    value: String,
}

/// The effective properties of one role, each key missing from `props` taken from the preset
/// of `mode` (an empty `ClientSettings` means the preset).
fn merged(role: ClientRole, mode: Guarantee, props: &Props) -> Props {
    let mut all = match role {
        ClientRole::Producer => producer_preset(mode),
        ClientRole::Consumer => consumer_preset(mode),
    };
    for (k, v) in props.iter() {
        all.set_user(k, v);
    }
    all
}

fn flag(role: ClientRole, props: &Props, key: &str) -> Result<bool, BadProperty> {
    match props.get(key) {
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        other => Err(BadProperty {
            role: role.name(),
            key: key.into(),
            value: other.unwrap_or_default().into(),
        }),
    }
}

fn number<T: std::str::FromStr>(role: ClientRole, props: &Props, key: &str) -> Result<T, BadProperty> {
    props.get(key).and_then(|v| v.parse().ok()).ok_or_else(|| BadProperty {
        role: role.name(),
        key: key.into(),
        value: props.get(key).unwrap_or_default().into(),
    })
}

impl ProducerConfig {
    /// The preset of `mode` (what the adapter's tests and tools use).
    pub fn preset(mode: Guarantee) -> ProducerConfig {
        ProducerConfig::of(mode, &ClientSettings::default()).expect("the preset reads")
    }

    pub fn of(mode: Guarantee, settings: &ClientSettings) -> Result<ProducerConfig, BadProperty> {
        let role = ClientRole::Producer;
        let p = merged(role, mode, &settings.producer);
        Ok(ProducerConfig {
            confirms: flag(role, &p, "confirms")?,
            persistent: flag(role, &p, "persistent")?,
            mandatory: flag(role, &p, "mandatory")?,
            confirm_timeout: Duration::from_millis(number(role, &p, "confirm_timeout_ms")?),
            credentials: Credentials::of(&p),
        })
    }
}

impl ConsumerConfig {
    /// The preset of `mode`.
    pub fn preset(mode: Guarantee) -> ConsumerConfig {
        ConsumerConfig::of(mode, &ClientSettings::default()).expect("the preset reads")
    }

    pub fn of(mode: Guarantee, settings: &ClientSettings) -> Result<ConsumerConfig, BadProperty> {
        let role = ClientRole::Consumer;
        let p = merged(role, mode, &settings.consumer);
        Ok(ConsumerConfig {
            auto_ack: flag(role, &p, "auto_ack")?,
            prefetch: number(role, &p, "prefetch")?,
            credentials: Credentials::of(&p),
        })
    }
}

/// The kind of queue the workload's destinations are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueueType {
    /// Raft-replicated over every node of the cluster (the default).
    #[default]
    Quorum,
    /// One node's queue (not replicated); durable with persistent messages.
    Classic,
}

impl QueueType {
    pub fn name(self) -> &'static str {
        match self {
            QueueType::Quorum => "quorum",
            QueueType::Classic => "classic",
        }
    }

    fn parse(value: &toml::Value) -> Result<QueueType, String> {
        match value.as_str() {
            Some("quorum") => Ok(QueueType::Quorum),
            Some("classic") => Ok(QueueType::Classic),
            Some("stream") => Err(
                "must be \"quorum\" or \"classic\", not \"stream\": a stream is read by offset, not acknowledged message by message, and the workload's consumers acknowledge".into(),
            ),
            _ => Err(format!("must be \"quorum\" or \"classic\", not {value}")),
        }
    }
}

/// What an `x-` queue argument takes.
#[derive(Debug, Clone, Copy)]
enum ArgKind {
    /// A whole number, at least this.
    Int(i64),
    /// A whole number up to 255 (`x-max-priority`).
    Priority,
    Bool,
    Text,
    /// One of these strings.
    OneOf(&'static [&'static str]),
}

/// Which queue types an argument applies to (RabbitMQ 3.10; a classic queue silently ignores
/// the quorum-only ones, a quorum queue refuses the classic-only ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum For {
    Both,
    Classic,
    Quorum,
}

/// The `x-` queue arguments of RabbitMQ 3.10 that a campaign's `[dest]` may pass to the queue
/// declaration.
const QUEUE_ARGUMENTS: &[(&str, ArgKind, For)] = &[
    ("x-message-ttl", ArgKind::Int(0), For::Both),
    ("x-expires", ArgKind::Int(1), For::Both),
    ("x-max-length", ArgKind::Int(0), For::Both),
    ("x-max-length-bytes", ArgKind::Int(0), For::Both),
    (
        "x-overflow",
        ArgKind::OneOf(&["drop-head", "reject-publish", "reject-publish-dlx"]),
        For::Both,
    ),
    ("x-dead-letter-exchange", ArgKind::Text, For::Both),
    ("x-dead-letter-routing-key", ArgKind::Text, For::Both),
    ("x-single-active-consumer", ArgKind::Bool, For::Both),
    ("x-max-priority", ArgKind::Priority, For::Classic),
    ("x-queue-mode", ArgKind::OneOf(&["default", "lazy"]), For::Classic),
    (
        "x-queue-master-locator",
        ArgKind::OneOf(&["min-masters", "client-local", "random"]),
        For::Classic,
    ),
    ("x-delivery-limit", ArgKind::Int(0), For::Quorum),
    ("x-quorum-initial-group-size", ArgKind::Int(1), For::Quorum),
    ("x-max-in-memory-length", ArgKind::Int(0), For::Quorum),
    ("x-max-in-memory-bytes", ArgKind::Int(0), For::Quorum),
    (
        "x-dead-letter-strategy",
        ArgKind::OneOf(&["at-most-once", "at-least-once"]),
        For::Quorum,
    ),
];

impl ArgKind {
    /// The value as JSON (a number, a boolean or a string), or what is allowed.
    fn read(self, value: &toml::Value) -> Result<Value, String> {
        match self {
            ArgKind::Int(min) => match value.as_integer() {
                Some(n) if n >= min => Ok(n.into()),
                _ => Err(format!("must be a whole number of at least {min}, not {value}")),
            },
            ArgKind::Priority => match value.as_integer() {
                Some(n @ 1..=255) => Ok(n.into()),
                _ => Err(format!("must be a whole number from 1 to 255, not {value}")),
            },
            ArgKind::Bool => match value.as_bool() {
                Some(b) => Ok(b.into()),
                None => Err(format!("must be true or false, not {value}")),
            },
            ArgKind::Text => match value.as_str() {
                Some(s) => Ok(s.into()),
                None => Err(format!("must be a string, not {value}")),
            },
            ArgKind::OneOf(allowed) => match value.as_str() {
                Some(s) if allowed.contains(&s) => Ok(s.into()),
                _ => Err(format!(
                    "must be one of {}, not {value}",
                    allowed
                        .iter()
                        .map(|a| format!("\"{a}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            },
        }
    }
}

/// The campaign's `[dest]` for RabbitMQ: `queue_type` (or `x-queue-type`) = `"quorum"` (the
/// default) or `"classic"`, `durable` (default true; a quorum queue always is) and the `x-`
/// queue arguments of RabbitMQ 3.10, passed to every queue the run declares. Recorded as
/// `{"queue_type": …, "durable": …, "arguments": {…}}`.
pub fn dest_settings(table: &toml::Table) -> Result<Value, OptionError> {
    let mut queue_type: Option<(QueueType, &str)> = None;
    let mut durable = None;
    let mut arguments = serde_json::Map::new();
    for (key, value) in table {
        let bad = |message: String| OptionError {
            key: key.clone(),
            message,
        };
        match key.as_str() {
            "queue_type" | "x-queue-type" => {
                let t = QueueType::parse(value).map_err(bad)?;
                if let Some((other, other_key)) = queue_type {
                    if other != t {
                        return Err(bad(format!(
                            "says {} but `{other_key}` says {}; write one of them",
                            t.name(),
                            other.name()
                        )));
                    }
                }
                queue_type = Some((t, key));
            }
            "durable" => match value.as_bool() {
                Some(b) => durable = Some(b),
                None => return Err(bad(format!("must be true or false, not {value}"))),
            },
            _ => match QUEUE_ARGUMENTS.iter().find(|(k, _, _)| k == key) {
                Some((_, kind, _)) => {
                    arguments.insert(key.clone(), kind.read(value).map_err(bad)?);
                }
                None => {
                    let known: Vec<&str> = QUEUE_ARGUMENTS.iter().map(|(k, _, _)| *k).collect();
                    return Err(bad(format!(
                        "is not a RabbitMQ destination setting; [dest] takes `queue_type` (or `x-queue-type`), `durable` and the queue arguments of RabbitMQ 3.10 ({})",
                        known.join(", ")
                    )));
                }
            },
        }
    }
    let queue_type = queue_type.map_or(QueueType::default(), |(t, _)| t);
    if queue_type == QueueType::Quorum && durable == Some(false) {
        return Err(OptionError {
            key: "durable".into(),
            message: "= false is not possible for a quorum queue (RabbitMQ refuses a non-durable one); use queue_type = \"classic\" for a transient queue".into(),
        });
    }
    for key in arguments.keys() {
        let Some((_, _, applies)) = QUEUE_ARGUMENTS.iter().find(|(k, _, _)| k == key) else {
            continue;
        };
        let wrong = match (applies, queue_type) {
            (For::Classic, QueueType::Quorum) => Some("classic"),
            (For::Quorum, QueueType::Classic) => Some("quorum"),
            _ => None,
        };
        if let Some(only) = wrong {
            return Err(OptionError {
                key: key.clone(),
                message: format!(
                    "applies to {only} queues only, and this run's queues are {} (RabbitMQ 3.10 would {} it); set queue_type = \"{only}\" or remove it",
                    queue_type.name(),
                    if only == "quorum" { "silently ignore" } else { "refuse" }
                ),
            });
        }
    }
    if queue_type == QueueType::Quorum
        && arguments.get("x-overflow").and_then(Value::as_str) == Some("reject-publish-dlx")
    {
        return Err(OptionError {
            key: "x-overflow".into(),
            message: "= \"reject-publish-dlx\" applies to classic queues only; quorum queues take \"drop-head\" or \"reject-publish\"".into(),
        });
    }
    Ok(serde_json::json!({
        "queue_type": queue_type.name(),
        "durable": durable.unwrap_or(true),
        "arguments": arguments,
    }))
}

/// The queue declaration a run makes, read from the effective `[dest]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDeclaration {
    pub queue_type: QueueType,
    pub durable: bool,
    /// `x-` arguments besides `x-queue-type`, as recorded.
    pub arguments: serde_json::Map<String, Value>,
}

impl Default for QueueDeclaration {
    fn default() -> Self {
        QueueDeclaration::of_type(QueueType::default())
    }
}

impl QueueDeclaration {
    /// A durable queue of `queue_type` without arguments.
    pub fn of_type(queue_type: QueueType) -> QueueDeclaration {
        QueueDeclaration {
            queue_type,
            durable: true,
            arguments: serde_json::Map::new(),
        }
    }

    /// From the recorded `[dest]` settings ([`dest_settings`]); what is missing is the default.
    pub fn of(settings: &Value) -> QueueDeclaration {
        QueueDeclaration {
            queue_type: match settings.get("queue_type").and_then(Value::as_str) {
                Some("classic") => QueueType::Classic,
                _ => QueueType::Quorum,
            },
            durable: settings.get("durable").and_then(Value::as_bool).unwrap_or(true),
            arguments: settings
                .get("arguments")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// The declaration's arguments: `x-queue-type` and the others, as AMQP field values.
    pub fn field_table(&self) -> FieldTable {
        let mut table = FieldTable::default();
        table.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(self.queue_type.name().into()),
        );
        for (key, value) in &self.arguments {
            let value = match value {
                Value::Bool(b) => AMQPValue::Boolean(*b),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => AMQPValue::LongLongInt(i),
                    None => continue,
                },
                Value::String(s) => AMQPValue::LongString(s.as_str().into()),
                _ => continue,
            };
            table.insert(key.as_str().into(), value);
        }
        table
    }
}

/// `rabbitmq.conf` keys ackcheck writes or needs for its own nodes, and why a campaign cannot
/// set them (an entry ending with a dot stands for every key under it).
const OWNED_SERVER_KEYS: &[(&str, &str)] = &[
    (
        "listeners.",
        "every node listens on its own port of ackcheck's port plan, behind its proxy",
    ),
    (
        "distribution.",
        "the nodes' Erlang distribution ports are ackcheck's (port plan, one epmd of its own)",
    ),
    (
        "cluster_formation.",
        "ackcheck forms the cluster itself (rabbitmqctl join_cluster)",
    ),
    (
        "log.file",
        "the node logs to its standard output, which ackcheck keeps as node.log",
    ),
    (
        "log.dir",
        "the node logs to its standard output, which ackcheck keeps as node.log",
    ),
    (
        "log.console",
        "the node logs to its standard output, which ackcheck keeps as node.log",
    ),
    ("default_user", "the run's clients connect as guest"),
    ("default_pass", "the run's clients connect as guest"),
    ("default_vhost", "the run's queues are declared on the vhost `/`"),
];

/// The campaign's `[server]` for RabbitMQ: `rabbitmq.conf` keys (the new-style sysctl format,
/// e.g. `cluster_partition_handling = "pause_minority"`), written into every node's
/// `rabbitmq.conf` after ackcheck's own (replacing ackcheck's memory and disk limits when the
/// user sets them). RabbitMQ checks names and values when the node boots (a node that refuses
/// them does not become ready, and its log says why); here only their shape.
pub fn server_settings(table: &toml::Table) -> Result<Props, OptionError> {
    ServerFile {
        value_kind: "rabbitmq.conf",
        dotted_example: Some("\"vm_memory_high_watermark.relative\" = 0.4"),
        owned: |key| {
            OWNED_SERVER_KEYS
                .iter()
                .find(|(owned, _)| key == *owned || (owned.ends_with('.') && key.starts_with(owned)))
                .map(|(_, why)| format!("is set by ackcheck itself for every node: {why}; remove it"))
        },
        key_ok: |key| {
            !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '$'))
        },
        shape_error: "is not a rabbitmq.conf key (lowercase words joined by dots, e.g. cluster_partition_handling) with a one-line value",
        empty_ok: false,
    }
    .settings(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(text: &str) -> ClientTables {
        toml::from_str(text).expect("a [client] table")
    }

    #[test]
    fn presets_are_what_each_mode_did_before() {
        let p = ProducerConfig::preset(Guarantee::AtMostOnce);
        assert!(!p.confirms && !p.persistent && !p.mandatory);
        let c = ConsumerConfig::preset(Guarantee::AtMostOnce);
        assert!(c.auto_ack);
        assert_eq!(c.prefetch, 0);
        for mode in [Guarantee::AtLeastOnce, Guarantee::ExactlyOnce] {
            let p = ProducerConfig::preset(mode);
            assert!(p.confirms && p.persistent && p.mandatory);
            assert_eq!(p.confirm_timeout, Duration::from_secs(5));
            assert_eq!(p.credentials, Credentials::default());
            let c = ConsumerConfig::preset(mode);
            assert!(!c.auto_ack);
            assert_eq!(c.prefetch, PREFETCH);
        }
    }

    #[test]
    fn user_keys_override_the_preset_and_the_clients_read_them() {
        let s = client_settings(
            Guarantee::AtLeastOnce,
            &tables("[producer]\nconfirms = false\nconfirm_timeout_ms = \"2000\"\n[consumer]\nprefetch = 0"),
        )
        .expect("valid");
        assert_eq!(
            s.producer.user_keys().collect::<Vec<_>>(),
            ["confirm_timeout_ms", "confirms"]
        );
        let p = ProducerConfig::of(Guarantee::AtLeastOnce, &s).expect("reads");
        assert!(!p.confirms && p.persistent && p.mandatory);
        assert_eq!(p.confirm_timeout, Duration::from_secs(2));
        let c = ConsumerConfig::of(Guarantee::AtLeastOnce, &s).expect("reads");
        assert!(!c.auto_ack);
        assert_eq!(c.prefetch, 0);
    }

    #[test]
    fn library_defaults_are_amqps() {
        let s = client_settings(Guarantee::AtLeastOnce, &tables("defaults = \"library\"")).expect("valid");
        let p = ProducerConfig::of(Guarantee::AtLeastOnce, &s).expect("reads");
        assert!(!p.confirms && !p.persistent && !p.mandatory);
        let c = ConsumerConfig::of(Guarantee::AtLeastOnce, &s).expect("reads");
        assert!(!c.auto_ack, "basic.consume expects acks unless told no-ack");
        assert_eq!(c.prefetch, 0, "no basic.qos: unlimited");
    }

    #[test]
    fn bad_keys_and_values_are_named_with_what_is_allowed() {
        let err = |text: &str| client_settings(Guarantee::AtLeastOnce, &tables(text)).unwrap_err();
        let e = err("[producer]\nconfirm = true");
        assert_eq!(e.key, "producer.confirm");
        assert!(e.message.contains("`confirms`"), "{e}");
        let e = err("[producer]\nprefetch = 10");
        assert!(e.message.contains("[client.consumer]"), "{e}");
        let e = err("[consumer]\nprefetch = 70000");
        assert!(e.message.contains("0 to 65535"), "{e}");
        let e = err("[consumer]\nauto_ack = \"yes\"");
        assert!(e.message.contains("true or false"), "{e}");
        let e = err("[consumer]\nvhost = \"/x\"");
        assert!(e.message.contains("set by ackcheck itself"), "{e}");
    }

    #[test]
    fn dest_takes_the_queue_type_durability_and_x_arguments() {
        let t: toml::Table = toml::from_str(
            "\"x-queue-type\" = \"quorum\"\n\"x-delivery-limit\" = 5\n\"x-overflow\" = \"reject-publish\"",
        )
        .unwrap();
        let d = dest_settings(&t).expect("valid");
        assert_eq!(d["queue_type"], "quorum");
        assert_eq!(d["durable"], true);
        assert_eq!(d["arguments"]["x-delivery-limit"], 5);
        let q = QueueDeclaration::of(&d);
        let table = q.field_table();
        assert_eq!(table.inner().get("x-delivery-limit"), Some(&AMQPValue::LongLongInt(5)));
        assert_eq!(
            table.inner().get("x-queue-type"),
            Some(&AMQPValue::LongString("quorum".into()))
        );
        let bad = |text: &str| dest_settings(&toml::from_str(text).unwrap()).unwrap_err();
        assert!(bad("durable = false").message.contains("quorum"));
        assert!(bad("queue_type = \"classic\"\n\"x-delivery-limit\" = 3")
            .message
            .contains("quorum queues only"));
        assert!(bad("\"x-queue-mode\" = \"lazy\"")
            .message
            .contains("classic queues only"));
        assert!(bad("\"x-max-length\" = \"ten\"").message.contains("whole number"));
        assert!(bad("\"x-max-lenght\" = 10").message.contains("x-max-length"));
        assert!(bad("queue_type = \"classic\"\n\"x-queue-type\" = \"quorum\"")
            .message
            .contains("write one of them"));
        let classic = dest_settings(&toml::from_str("queue_type = \"classic\"\ndurable = false").unwrap()).unwrap();
        assert!(!QueueDeclaration::of(&classic).durable);
        assert_eq!(
            QueueDeclaration::of(&serde_json::json!({})),
            QueueDeclaration::default()
        );
    }

    #[test]
    fn queue_types_read_kebab_case() {
        #[derive(serde::Deserialize)]
        struct T {
            queue_type: QueueType,
        }
        let t: T = toml::from_str("queue_type = \"classic\"").expect("parses");
        assert_eq!(t.queue_type, QueueType::Classic);
        assert!(toml::from_str::<T>("queue_type = \"stream\"").is_err());
        assert_eq!(QueueType::default().name(), "quorum");
    }

    #[test]
    fn server_keys_are_shaped_and_ackchecks_own_refused() {
        let t: toml::Table = toml::from_str(
            "cluster_partition_handling = \"pause_minority\"\n\"vm_memory_high_watermark.relative\" = 0.4",
        )
        .unwrap();
        let p = server_settings(&t).expect("valid");
        assert_eq!(p.get("cluster_partition_handling"), Some("pause_minority"));
        assert_eq!(p.get("vm_memory_high_watermark.relative"), Some("0.4"));
        for key in [
            "\"listeners.tcp.1\"",
            "\"distribution.listener.port_range.min\"",
            "default_user",
            "\"log.file\"",
        ] {
            let t: toml::Table = toml::from_str(&format!("{key} = \"x\"")).unwrap();
            let e = server_settings(&t).unwrap_err();
            assert!(e.message.contains("set by ackcheck itself"), "{e}");
        }
        let t: toml::Table = toml::from_str("\"log.console.level\" = \"debug\"").unwrap();
        assert!(server_settings(&t).is_ok(), "the console's level is the user's");
        let t: toml::Table = toml::from_str("Cluster = 1").unwrap();
        assert!(server_settings(&t).unwrap_err().message.contains("rabbitmq.conf key"));
    }
}
