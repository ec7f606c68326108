//! Pulsar settings a campaign may change: what the `pulsar` crate's producer and consumer expose
//! (`[client.producer]`, `[client.consumer]`), topic policies of the topics a run creates
//! (`[dest]`), and `standalone.conf` keys of the node ackcheck starts (`[server]`), each over
//! ackcheck's preset and checked before anything starts.

use std::time::Duration;

use crate::broker::props::property_value;
use crate::broker::ServerFile;
use crate::broker::{ClientDefaults, ClientRole, ClientSettings, ClientTables, OptionError, Props};
use crate::campaign::parse_duration;

/// How long the broker may take to send a receipt (or answer a lookup) before a send's outcome
/// is unknown: the producer preset's `send_timeout` (the crate's operation timeout). Well above
/// the nemesis's latency fault (500 ms), short enough that a lost receipt ends as unknown within
/// seconds.
pub const PRESET_SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages the broker may push to one consumer ahead of its receives (the consumer preset's
/// `receiver_queue_size`). A crashed consumer's prefetched messages go to the others when its
/// connection closes.
pub const PRESET_RECEIVER_QUEUE: u32 = 200;
/// The crate's default: no ack timeout (unacknowledged messages come back only when their
/// consumer disconnects).
const NO_ACK_TIMEOUT: &str = "none";

/// The longest send or ack timeout a campaign may set.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// A timeout setting: a duration (`"30s"`, `"500ms"`, or a number of seconds).
fn timeout_value(value: &toml::Value) -> Result<Duration, String> {
    let d = match value {
        toml::Value::String(t) => parse_duration(t),
        toml::Value::Integer(i) if *i > 0 => Ok(Duration::from_secs(*i as u64)),
        // try_: a float too large for a Duration (1e300) is an error, not a panic.
        toml::Value::Float(f) if *f > 0.0 => {
            Duration::try_from_secs_f64(*f).map_err(|_| format!("must be at most an hour, not {f} s"))
        }
        other => Err(format!("must be a duration such as \"30s\" or \"500ms\", not {other}")),
    }?;
    match d <= MAX_TIMEOUT {
        true => Ok(d),
        false => Err(format!("must be at most an hour, not {} s", d.as_secs_f64())),
    }
}

/// A duration as a setting's value: whole milliseconds.
fn millis(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// A duration setting of `props`, as written by this module (`"1500ms"`); `None` when unset or
/// `"none"`.
pub fn duration(props: &Props, key: &str) -> Option<Duration> {
    let text = props.get(key)?;
    if text == NO_ACK_TIMEOUT {
        return None;
    }
    parse_duration(text).ok()
}

/// A whole-number setting of `props`.
pub fn number(props: &Props, key: &str) -> Option<u32> {
    props.get(key).and_then(|v| v.parse().ok())
}

/// The effective client settings: the preset, or with `defaults = "library"` the crate's own
/// defaults (no ack timeout, 30 s operation timeout, 1000 messages of receiver queue), then the
/// user's keys:
///
/// - producer `send_timeout`: how long a message may wait for its receipt, resends included,
///   before the send fails (Java's `sendTimeout`; the crate's operation timeout);
/// - consumer `ack_timeout`: how long a received message may stay unacknowledged before the
///   client asks the broker to deliver it again (Java's `ackTimeout`; the crate's unacked
///   message resend delay, checked every 500 ms); `"none"` for no timeout;
/// - consumer `receiver_queue_size`: how many messages the broker pushes ahead of the
///   application's receives (Java's `receiverQueueSize`; the crate's batch size). The ack
///   timeout of a message starts when it enters this queue, not when the application takes it.
pub fn client_settings(tables: &ClientTables) -> Result<ClientSettings, OptionError> {
    let (mut producer, mut consumer) = match tables.defaults {
        ClientDefaults::Preset => (
            Props::preset([("send_timeout", millis(PRESET_SEND_TIMEOUT))]),
            Props::preset([
                ("ack_timeout", NO_ACK_TIMEOUT.to_string()),
                ("receiver_queue_size", PRESET_RECEIVER_QUEUE.to_string()),
            ]),
        ),
        ClientDefaults::Library => (Props::default(), Props::default()),
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
            let text = match (role, key.as_str()) {
                (ClientRole::Producer, "send_timeout") => millis(timeout_value(value).map_err(bad)?),
                (ClientRole::Consumer, "ack_timeout") => match value.as_str() {
                    Some(NO_ACK_TIMEOUT) => NO_ACK_TIMEOUT.to_string(),
                    _ => millis(timeout_value(value).map_err(|e| bad(format!("{e} (or \"none\")")))?),
                },
                (ClientRole::Consumer, "receiver_queue_size") => {
                    let n = value
                        .as_integer()
                        .or_else(|| value.as_str().and_then(|t| t.trim().parse().ok()));
                    match n {
                        Some(n @ 1..=100_000) => n.to_string(),
                        _ => return Err(bad(format!("must be a whole number from 1 to 100000, not {value}"))),
                    }
                }
                _ => {
                    let takes = match role {
                        ClientRole::Producer => "send_timeout",
                        ClientRole::Consumer => "ack_timeout and receiver_queue_size",
                    };
                    return Err(bad(format!(
                        "is not a {} setting of the Rust Pulsar client ackcheck can set; [client.{}] takes {takes}",
                        role.name(),
                        role.name()
                    )));
                }
            };
            if property_value(value).is_none() {
                return Err(bad("is not a setting value (a string or a number)".into()));
            }
            props.set_user(key, &text);
        }
    }
    Ok(ClientSettings {
        defaults: tables.defaults,
        producer,
        consumer,
    })
}

/// What `[dest] deduplication` records when the campaign does not set it: no topic policy, so
/// the broker's `brokerDeduplicationEnabled` applies (true, unless `[server]` changes it).
pub const DEDUPLICATION_FROM_BROKER: &str = "broker";

/// The campaign's `[dest]` for Pulsar: `deduplication` = true or false, a topic policy set on
/// every topic the run creates (the admin API's `deduplicationEnabled`).
pub fn dest_settings(table: &toml::Table) -> Result<serde_json::Value, OptionError> {
    let mut settings = Props::preset([("deduplication", DEDUPLICATION_FROM_BROKER)]);
    for (key, value) in table {
        let bad = |message: String| OptionError {
            key: key.clone(),
            message,
        };
        match key.as_str() {
            "deduplication" => match value.as_bool() {
                Some(on) => settings.set_user(key, &on.to_string()),
                None => return Err(bad(format!("must be true or false, not {value}"))),
            },
            _ => {
                return Err(bad(
                    "is not a Pulsar topic policy ackcheck can set; [dest] takes deduplication (the ack timeout is the consumer's: [client.consumer] ack_timeout)".into(),
                ))
            }
        }
    }
    Ok(serde_json::to_value(&settings).unwrap_or_default())
}

/// The deduplication topic policy recorded by [`dest_settings`]: `Some(on)` when the campaign
/// set one.
pub fn deduplication_policy(recorded: &serde_json::Value) -> Option<bool> {
    match recorded.get("deduplication")?.get("value")?.as_str()? {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// `standalone.conf` keys ackcheck writes for its node and a campaign cannot change, each with
/// why.
const OWNED_SERVER_KEYS: &[(&str, &str)] = &[
    (
        "clusterName",
        "the node's metadata is created for the cluster `standalone`",
    ),
    ("bindAddress", "the node listens on loopback behind its proxy"),
    ("bindAddresses", "the node's external listener is the proxy's upstream"),
    ("advertisedAddress", "clients must be sent back to the proxy"),
    ("advertisedListeners", "clients must be sent back to the proxy"),
    (
        "internalListenerName",
        "the probe and the admin calls use the internal listener",
    ),
    ("brokerServicePort", "ports come from ackcheck's port plan"),
    ("brokerServicePortTls", "ports come from ackcheck's port plan"),
    ("webServicePort", "ports come from ackcheck's port plan"),
    ("webServicePortTls", "ports come from ackcheck's port plan"),
    (
        "bookiePort",
        "ports come from ackcheck's port plan, and the bookie's identity is recorded in its data",
    ),
    ("httpServerPort", "ports come from ackcheck's port plan"),
    ("listeningInterface", "the bookie listens on loopback"),
    ("metadataStoreUrl", "the metadata lives in the node's data directory"),
    (
        "configurationMetadataStoreUrl",
        "the metadata lives in the node's data directory",
    ),
    ("zookeeperServers", "the metadata lives in the node's data directory"),
    (
        "journalDirectory",
        "data lives in the node's data directory, which `cluster down` deletes",
    ),
    (
        "journalDirectories",
        "data lives in the node's data directory, which `cluster down` deletes",
    ),
    (
        "ledgerDirectories",
        "data lives in the node's data directory, which `cluster down` deletes",
    ),
    ("narExtractionDirectory", "it is the node's own temporary directory"),
    ("statusFilePath", "ackcheck checks readiness itself"),
    (
        "transactionCoordinatorEnabled",
        "the readiness check waits for the transaction coordinator",
    ),
    (
        "systemTopicEnabled",
        "[dest] settings are topic policies, which live in system topics",
    ),
    ("topicLevelPoliciesEnabled", "[dest] settings are topic policies"),
    (
        "functionsWorkerEnabled",
        "the functions worker would need ports outside ackcheck's plan",
    ),
    (
        "webSocketServiceEnabled",
        "the websocket service would need ports outside ackcheck's plan",
    ),
];

/// The campaign's `[server]` for Pulsar: `standalone.conf` keys, written after ackcheck's own
/// (the last one wins). Pulsar ignores a key it does not know, so names are checked for shape
/// here and values by the broker when it starts (a node that refuses one does not become
/// ready, and its log says why).
pub fn server_settings(table: &toml::Table) -> Result<Props, OptionError> {
    ServerFile {
        value_kind: "property",
        dotted_example: None,
        owned: |key| {
            OWNED_SERVER_KEYS
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, why)| format!("is set by ackcheck itself: {why}; remove it"))
        },
        key_ok: |key| {
            key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'))
        },
        shape_error: "is not a standalone.conf key (a name such as brokerDeduplicationEnabled) with a one-line value",
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
    fn client_settings_override_the_preset_and_read_back() {
        let s = client_settings(&tables(
            "[producer]\nsend_timeout = \"30s\"\n[consumer]\nack_timeout = \"1500ms\"\nreceiver_queue_size = 10",
        ))
        .unwrap();
        assert_eq!(duration(&s.producer, "send_timeout"), Some(Duration::from_secs(30)));
        assert_eq!(duration(&s.consumer, "ack_timeout"), Some(Duration::from_millis(1500)));
        assert_eq!(number(&s.consumer, "receiver_queue_size"), Some(10));
        let preset = client_settings(&ClientTables::default()).unwrap();
        assert_eq!(duration(&preset.consumer, "ack_timeout"), None);
        assert_eq!(preset.consumer.get("ack_timeout"), Some("none"));
        assert_eq!(duration(&preset.producer, "send_timeout"), Some(PRESET_SEND_TIMEOUT));
        let json = serde_json::to_value(&s.consumer).unwrap();
        assert_eq!(
            json["ack_timeout"],
            serde_json::json!({"value": "1500ms", "from": "user"})
        );
        assert_eq!(json["receiver_queue_size"]["from"], "user");
    }

    #[test]
    fn bad_client_settings_are_named() {
        let err = |text: &str| client_settings(&tables(text)).unwrap_err();
        let e = err("[consumer]\nack_timeout = \"soon\"");
        assert_eq!(e.key, "consumer.ack_timeout");
        // Too large for a duration at all: refused, never a panic (found by reading the code
        // the campaign fuzz target reaches).
        let e = err("[consumer]\nack_timeout = 1e300");
        assert!(e.message.contains("at most an hour"), "{e}");
        assert!(e.message.contains("\"none\""), "{e}");
        let e = err("[consumer]\nackTimeoutMillis = 1000");
        assert!(e.message.contains("takes ack_timeout and receiver_queue_size"), "{e}");
        let e = err("[producer]\nack_timeout = \"1s\"");
        assert_eq!(e.key, "producer.ack_timeout");
        let e = err("[consumer]\nreceiver_queue_size = 0");
        assert!(e.message.contains("from 1 to 100000"), "{e}");
        let e = err("[producer]\nsend_timeout = \"2h\"");
        assert!(e.message.contains("at most an hour"), "{e}");
    }

    #[test]
    fn dest_takes_deduplication_and_server_refuses_owned_keys() {
        let t: toml::Table = toml::from_str("deduplication = false").unwrap();
        let d = dest_settings(&t).unwrap();
        assert_eq!(deduplication_policy(&d), Some(false));
        assert_eq!(d["deduplication"]["from"], "user");
        let none = dest_settings(&toml::Table::new()).unwrap();
        assert_eq!(deduplication_policy(&none), None);
        assert_eq!(none["deduplication"]["value"], "broker");
        let bad: toml::Table = toml::from_str("deduplication = \"off\"").unwrap();
        assert!(dest_settings(&bad).unwrap_err().message.contains("true or false"));
        let bad: toml::Table = toml::from_str("ack_timeout = \"1s\"").unwrap();
        assert!(dest_settings(&bad).unwrap_err().message.contains("[client.consumer]"));
        let s: toml::Table =
            toml::from_str("brokerDeduplicationEnabled = false\nmanagedLedgerMaxEntriesPerLedger = 100").unwrap();
        let props = server_settings(&s).unwrap();
        assert_eq!(props.get("brokerDeduplicationEnabled"), Some("false"));
        let owned: toml::Table = toml::from_str("brokerServicePort = 6650").unwrap();
        let e = server_settings(&owned).unwrap_err();
        assert!(e.message.contains("port plan"), "{e}");
        let shape: toml::Table = toml::from_str("\"broker dedup\" = true").unwrap();
        assert!(server_settings(&shape)
            .unwrap_err()
            .message
            .contains("standalone.conf key"));
    }
}
