//! Kafka's client properties: librdkafka's vocabulary, the preset of each delivery mode, the
//! keys ackcheck sets itself, and the check against librdkafka before anything starts.
//!
//! The presets are what each mode means for Kafka (README, "Delivery modes"); a campaign's
//! `[client.producer]` and `[client.consumer]` tables override them key by key, or, with
//! `defaults = "library"`, replace them, so that librdkafka's own defaults apply as in an
//! application that sets only what the user lists.

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, DeliveryResult, ProducerContext};
use rdkafka::{ClientConfig, ClientContext};

use crate::broker::props::property_value;
use crate::broker::ServerFile;
use crate::broker::{ClientDefaults, ClientRole, ClientSettings, ClientTables, OptionError, Props};
use crate::history::Guarantee;

/// Keys a run sets itself, per run and per client: a campaign cannot set them.
pub const OWNED_KEYS: &[(&str, &str)] = &[
    (
        "bootstrap.servers",
        "the run connects to the nodes' proxies (or `[external]` endpoints)",
    ),
    (
        "group.id",
        "every consumer group is named per run, so every run starts on empty offsets",
    ),
    (
        "group.instance.id",
        "each consumer slot's static member id is made per run (the preset's static membership; `defaults = \"library\"` leaves it out)",
    ),
    (
        "transactional.id",
        "transactional ids are made per run and per producer",
    ),
    (
        "isolation.level",
        "the workload chooses it per group (a read-committed and a read-uncommitted group)",
    ),
];

/// Producer properties of every preset: room for every send the workload keeps in flight (the
/// default is 100,000 messages) and small batches.
const PRODUCER_BASE: &[(&str, &str)] = &[("linger.ms", "5"), ("queue.buffering.max.messages", "2000000")];

/// The producer preset of `mode`.
fn producer_preset(mode: Guarantee) -> Vec<(&'static str, &'static str)> {
    let mut p = PRODUCER_BASE.to_vec();
    p.extend_from_slice(match mode {
        Guarantee::AtMostOnce => &[
            ("acks", "0"),
            ("retries", "0"),
            ("enable.idempotence", "false"),
            ("message.timeout.ms", "10000"),
        ][..],
        Guarantee::AtLeastOnce => &[
            ("acks", "all"),
            ("retries", "2147483647"),
            ("enable.idempotence", "false"),
            ("request.timeout.ms", "5000"),
            ("retry.backoff.ms", "200"),
            ("message.timeout.ms", "20000"),
        ][..],
        Guarantee::ExactlyOnce => &[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("transaction.timeout.ms", "30000"),
            // The broker answers CONCURRENT_TRANSACTIONS right after a commit while it writes
            // the markers; the default 100 ms backoff makes every transaction slow.
            ("retry.backoff.ms", "10"),
            ("retry.backoff.max.ms", "200"),
            ("request.timeout.ms", "5000"),
            ("message.timeout.ms", "20000"),
        ][..],
    });
    p
}

/// The consumer preset (the same in every mode: the mode decides when the workload commits).
///
/// A crashed member holds its partitions until its session times out, and the whole group
/// stands still meanwhile: the broker's smallest session timeout (6 s, Kafka's
/// group.min.session.timeout.ms) with heartbeats well inside it, as a careful engineer sets them
/// for fast failover (10 s left a run's consumers idle most of the time). Offsets are committed by
/// the workload, explicitly, after (or before) processing, never automatically.
///
/// Static membership (KIP-345): each consumer slot keeps its `group.instance.id` across crashes,
/// so a crashed member's replacement rejoins as the same member and gets its partitions back at
/// once, without a rebalance of the whole group — as deployments with stable consumer identities
/// (StatefulSets, fixed hosts) run. A crashed member that is not replaced still holds its
/// partitions until its session times out.
///
/// The eager `range` assignor, not `cooperative-sticky`: with static members, a cooperative
/// rebalance revokes a partition in its first round and gives it out in a second one that the
/// revoking member triggers by rejoining; when that member crashes in between and its
/// replacement rejoins statically (no rebalance), the partition stays unowned in a Stable group,
/// and in that run the full rebalance after later session timeouts did not give it out either
/// (why, the logs did not tell). Seen with librdkafka 2.12.1 and Kafka 4.1.1: `queue/1` read by nobody
/// for 170 s of a `kafka-3node-at-least-once` run (docs/evidence.md). An eager rebalance hands
/// out every partition each time; static membership already spares the group a rebalance at each
/// crash, which is what the incremental protocol was for.
const CONSUMER_PRESET: &[(&str, &str)] = &[
    ("group.instance.id", STATIC_MEMBER),
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("auto.offset.reset", "earliest"),
    ("partition.assignment.strategy", "range"),
    ("session.timeout.ms", "6000"),
    ("heartbeat.interval.ms", "500"),
    ("max.poll.interval.ms", "60000"),
    ("fetch.wait.max.ms", "100"),
];

/// The preset's `group.instance.id`: a template the client fills in per consumer slot
/// (`<run>-<group>-<member>`), recorded as it is in the history header.
pub const STATIC_MEMBER: &str = "<run>-<group>-<member>";

/// With `defaults = "library"`: what the workload cannot do without (a group that starts on
/// empty offsets must read from the start, or it misses what was sent before it joined).
const CONSUMER_LIBRARY: &[(&str, &str)] = &[("auto.offset.reset", "earliest")];

/// Whether `key` sets up the connection itself (security protocol, TLS, SASL) rather than a
/// producer's or consumer's behaviour: the run's admin and metadata clients, which no campaign
/// table names, need these too.
pub fn is_connection_key(key: &str) -> bool {
    key == "security.protocol"
        || key == "enable.ssl.certificate.verification"
        || key.starts_with("ssl.")
        || key.starts_with("ssl_")
        || key.starts_with("sasl.")
        || key.starts_with("enable.sasl.")
}

/// The connection settings of a run's effective producer properties, for the clients a campaign
/// does not configure (topic admin, metadata probes): a broker that takes only TLS or SASL
/// connections takes the user's producer settings there too.
pub fn connection_props(client: &ClientSettings) -> Vec<(String, String)> {
    client
        .producer
        .iter()
        .filter(|(key, _)| is_connection_key(key))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

/// Settings every client of a run gets, not properties of the user's application.
pub fn base_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("client.id", "ackcheck")
        .set("log_level", "4")
        .set("socket.connection.setup.timeout.ms", "5000")
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "1000");
    c
}

/// The effective properties of a campaign: preset (or library defaults) + the user's keys,
/// each checked by librdkafka, then the whole of each role.
pub fn client_settings(mode: Guarantee, tables: &ClientTables) -> Result<ClientSettings, OptionError> {
    let (mut producer, mut consumer) = match tables.defaults {
        ClientDefaults::Preset => (
            Props::preset(producer_preset(mode)),
            Props::preset(CONSUMER_PRESET.iter().copied()),
        ),
        ClientDefaults::Library => (Props::default(), Props::preset(CONSUMER_LIBRARY.iter().copied())),
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
            let Some(value) = property_value(value) else {
                let hint = if value.is_table() {
                    format!(": write dotted property names in quotes, e.g. \"{key}.…\" = \"…\"")
                } else {
                    String::new()
                };
                return Err(bad(format!(
                    "is not a property value (a string, a number or true/false){hint}"
                )));
            };
            // Alone over the preset first, so that a bad key or value is named.
            let mut alone = props.clone();
            alone.set_user(key, &value);
            check(role, mode, &alone).map_err(|e| bad(format!("is refused by librdkafka: {e}")))?;
            props.set_user(key, &value);
        }
        check(role, mode, props).map_err(|e| OptionError {
            key: role.name().to_string(),
            message: format!("properties are refused together by librdkafka: {e}"),
        })?;
    }
    Ok(ClientSettings {
        defaults: tables.defaults,
        producer,
        consumer,
    })
}

/// A client context that says nothing: the clients made to check properties never connect,
/// and librdkafka's complaints about that are no news to the user.
struct Silent;

impl ClientContext for Silent {
    fn log(&self, _: RDKafkaLogLevel, _: &str, _: &str) {}
    fn error(&self, _: KafkaError, _: &str) {}
}

impl ConsumerContext for Silent {}

impl ProducerContext for Silent {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

/// Make the client `props` describe, as the run would (placeholder ids, no address, so that it
/// never connects), and drop it: librdkafka checks every property and their combination at
/// creation.
fn check(role: ClientRole, mode: Guarantee, props: &Props) -> Result<(), String> {
    let mut c = base_config("");
    c.remove("bootstrap.servers");
    c.set("log_level", "0");
    for (k, v) in props.iter() {
        c.set(k, v);
    }
    match role {
        ClientRole::Producer => {
            if mode == Guarantee::ExactlyOnce {
                c.set("transactional.id", "ackcheck-check");
            }
            c.create_with_context::<_, BaseProducer<Silent>>(Silent).map(drop)
        }
        ClientRole::Consumer => {
            c.set("group.id", "ackcheck-check");
            c.create_with_context::<_, BaseConsumer<Silent>>(Silent).map(drop)
        }
    }
    .map_err(|e| e.to_string())
}

/// Topic-level configurations of Kafka 4.1 (`org.apache.kafka.common.config.TopicConfig`) that
/// a campaign's `[dest]` may set on the topics a run creates. The broker checks the values.
const TOPIC_CONFIGS: &[&str] = &[
    "cleanup.policy",
    "compression.type",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "delete.retention.ms",
    "file.delete.delay.ms",
    "flush.messages",
    "flush.ms",
    "index.interval.bytes",
    "local.retention.bytes",
    "local.retention.ms",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "preallocate",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.index.bytes",
    "segment.jitter.ms",
    "segment.ms",
    "unclean.leader.election.enable",
];

/// The campaign's `[dest]` for Kafka: `replication_factor` (default: one replica per node, at
/// most 3) and any topic configuration (`"min.insync.replicas" = 1`,
/// `"unclean.leader.election.enable" = true`, …), set on every topic the run creates.
pub fn dest_settings(table: &toml::Table) -> Result<serde_json::Value, OptionError> {
    let mut replication: serde_json::Value = "one per node, at most 3".into();
    let mut configs = serde_json::Map::new();
    for (key, value) in table {
        let bad = |message: String| OptionError {
            key: key.clone(),
            message,
        };
        if key == "replication_factor" {
            // A number, or a number written as a string (as a .properties file has it).
            let n = value
                .as_integer()
                .or_else(|| value.as_str().and_then(|t| t.trim().parse().ok()));
            match n {
                Some(n @ 1..=3) => replication = n.into(),
                _ => return Err(bad(format!("must be 1, 2 or 3 (at most the node count), not {value}"))),
            }
        } else if TOPIC_CONFIGS.contains(&key.as_str()) {
            let Some(text) = property_value(value) else {
                return Err(bad(
                    "is not a configuration value (a string, a number or true/false)".into()
                ));
            };
            configs.insert(key.clone(), text.into());
        } else {
            let hint = if value.is_table() {
                "; write dotted names in quotes, e.g. \"min.insync.replicas\" = 2"
            } else {
                ""
            };
            return Err(bad(format!(
                "is not a Kafka topic setting; [dest] takes `replication_factor` and the topic configurations of Kafka 4.1 ({}){hint}",
                TOPIC_CONFIGS.join(", ")
            )));
        }
    }
    Ok(serde_json::json!({ "replication_factor": replication, "topic_configs": configs }))
}

/// `server.properties` keys ackcheck writes for its own nodes and a campaign cannot change:
/// they make the cluster (ids, quorum, listeners behind the proxies, storage).
const OWNED_SERVER_KEYS: &[&str] = &[
    "process.roles",
    "node.id",
    "controller.quorum.voters",
    "listeners",
    "advertised.listeners",
    "listener.security.protocol.map",
    "inter.broker.listener.name",
    "controller.listener.names",
    "log.dirs",
    "log.dir",
];

/// The campaign's `[server]` for Kafka: `server.properties` keys over ackcheck's (later keys win
/// in a properties file, so they are written after ackcheck's own). Kafka itself only warns
/// about a key it does not know, so the names are checked for shape here, and the values by
/// the broker when it starts (a node that refuses them does not become ready, and its log says
/// why).
pub fn server_settings(table: &toml::Table) -> Result<Props, OptionError> {
    ServerFile {
        value_kind: "property",
        dotted_example: Some("\"min.insync.replicas\" = 2"),
        owned: |key| {
            OWNED_SERVER_KEYS.contains(&key).then(|| {
                "is set by ackcheck itself for every node (ids, quorum, listeners behind the proxies, storage); remove it".into()
            })
        },
        key_ok: |key| {
            !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        },
        shape_error: "is not a server.properties key (lowercase words joined by dots) with a one-line value",
        empty_ok: true,
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
    fn user_keys_override_the_mode_preset_and_the_rest_stays() {
        let s = client_settings(
            Guarantee::AtLeastOnce,
            &tables("[producer]\nacks = 1\nretries = \"3\"\n[consumer]\n\"enable.auto.commit\" = true\n\"enable.auto.offset.store\" = true"),
        )
        .expect("valid properties");
        assert_eq!(s.producer.get("acks"), Some("1"));
        assert_eq!(s.producer.get("retries"), Some("3"));
        assert_eq!(
            s.producer.get("request.timeout.ms"),
            Some("5000"),
            "the preset's other keys stay"
        );
        assert_eq!(s.consumer.is_true("enable.auto.commit"), Some(true));
        assert_eq!(s.producer.user_keys().collect::<Vec<_>>(), vec!["acks", "retries"]);
    }

    #[test]
    fn library_defaults_keep_only_what_the_run_needs() {
        let s = client_settings(
            Guarantee::AtLeastOnce,
            &tables("defaults = \"library\"\n[producer]\nacks = \"1\""),
        )
        .expect("valid");
        assert_eq!(s.producer.iter().collect::<Vec<_>>(), vec![("acks", "1")]);
        assert_eq!(
            s.consumer.get("enable.auto.commit"),
            None,
            "librdkafka's default (true) applies"
        );
        assert_eq!(s.consumer.get("auto.offset.reset"), Some("earliest"));
    }

    #[test]
    fn dest_takes_replication_and_topic_configurations() {
        let t: toml::Table = toml::from_str(
            "replication_factor = 3\n\"min.insync.replicas\" = 1\n\"unclean.leader.election.enable\" = true",
        )
        .unwrap();
        let d = dest_settings(&t).expect("valid");
        assert_eq!(d["replication_factor"], 3);
        assert_eq!(d["topic_configs"]["min.insync.replicas"], "1");
        assert_eq!(d["topic_configs"]["unclean.leader.election.enable"], "true");
        let bad: toml::Table = toml::from_str("\"min.isr\" = 1").unwrap();
        assert!(dest_settings(&bad)
            .unwrap_err()
            .message
            .contains("not a Kafka topic setting"));
        let bad: toml::Table = toml::from_str("replication_factor = 5").unwrap();
        assert!(dest_settings(&bad).is_err());
        let text: toml::Table = toml::from_str("replication_factor = \"3\"").unwrap();
        assert_eq!(
            dest_settings(&text).unwrap()["replication_factor"],
            3,
            "as a .properties file has it"
        );
        let defaults = dest_settings(&toml::Table::new()).unwrap();
        assert_eq!(defaults["replication_factor"], "one per node, at most 3");
    }

    #[test]
    fn unknown_keys_bad_values_owned_keys_and_bad_combinations_are_named() {
        let err = |text: &str, mode| client_settings(mode, &tables(text)).unwrap_err();
        let e = err("[producer]\n\"acks.typo\" = \"1\"", Guarantee::AtLeastOnce);
        assert_eq!(e.key, "producer.acks.typo");
        assert!(e.message.contains("No such configuration property"), "{}", e.message);
        let e = err("[producer]\nacks = \"most\"", Guarantee::AtLeastOnce);
        assert_eq!(e.key, "producer.acks");
        assert!(e.message.contains("Invalid value"), "{}", e.message);
        let e = err("[consumer]\n\"group.id\" = \"mine\"", Guarantee::AtLeastOnce);
        assert!(e.message.contains("set by ackcheck itself"), "{}", e.message);
        let e = err("[consumer]\nenable.auto.commit = true", Guarantee::AtLeastOnce);
        assert_eq!(e.key, "consumer.enable");
        assert!(e.message.contains("in quotes"), "{}", e.message);
        // Idempotence needs acks=all: each key alone is fine over the exactly-once preset, not
        // acks=1 with it.
        let e = err("[producer]\nacks = \"1\"", Guarantee::ExactlyOnce);
        assert!(e.message.contains("refused"), "{e}");
    }
}
