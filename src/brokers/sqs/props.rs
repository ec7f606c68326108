//! SQS settings a campaign may change: queue attributes (`[dest]`, named as the SQS API names
//! them) and the SDK client's settings (`[client.producer]`, `[client.consumer]`), each over the
//! mode's preset and checked for type and range before anything starts.
//!
//! The presets are what each mode means for SQS (README, "Delivery modes"): a 5 s visibility
//! timeout everywhere (a crashed consumer's messages come back within seconds), a FIFO queue
//! with deduplication by the producer's id in exactly-once, the SDK's retries off (the
//! application decides whether to send again).

use crate::broker::props::property_value;
use crate::broker::{ClientDefaults, ClientRole, ClientSettings, ClientTables, OptionError, Props};
use crate::history::Guarantee;

/// The visibility timeout of every preset, in seconds.
pub const PRESET_VISIBILITY_TIMEOUT: u32 = 5;

/// The kind of value a queue attribute takes.
#[derive(Clone, Copy)]
enum Kind {
    /// Whole seconds (or bytes) within a range, as SQS documents it.
    Integer(i64, i64),
    Boolean,
}

/// The queue attributes `[dest]` takes, with what SQS accepts (CreateQueue API reference).
const QUEUE_ATTRIBUTES: &[(&str, Kind)] = &[
    ("VisibilityTimeout", Kind::Integer(0, 43_200)),
    ("MessageRetentionPeriod", Kind::Integer(60, 1_209_600)),
    ("ReceiveMessageWaitTimeSeconds", Kind::Integer(0, 20)),
    ("DelaySeconds", Kind::Integer(0, 900)),
    ("MaximumMessageSize", Kind::Integer(1_024, 262_144)),
    ("FifoQueue", Kind::Boolean),
    ("ContentBasedDeduplication", Kind::Boolean),
];

/// The queue attributes of `mode`'s preset.
pub fn queue_preset(mode: Guarantee) -> Props {
    let visibility = PRESET_VISIBILITY_TIMEOUT.to_string();
    let mut preset = vec![("VisibilityTimeout", visibility.as_str())];
    if mode == Guarantee::ExactlyOnce {
        // Deduplication by the id the producer gives (MessageDeduplicationId), not by a hash
        // of the body.
        preset.extend([("FifoQueue", "true"), ("ContentBasedDeduplication", "false")]);
    }
    Props::preset(preset)
}

/// Check one attribute's value: its canonical text, or why not.
fn attribute_value(kind: Kind, value: &toml::Value) -> Result<String, String> {
    match kind {
        Kind::Integer(low, high) => {
            let n = value
                .as_integer()
                .or_else(|| value.as_str().and_then(|t| t.trim().parse().ok()));
            match n {
                Some(n) if (low..=high).contains(&n) => Ok(n.to_string()),
                _ => Err(format!("must be a whole number from {low} to {high}, not {value}")),
            }
        }
        Kind::Boolean => {
            let b = value
                .as_bool()
                .or_else(|| value.as_str().and_then(|t| t.trim().to_ascii_lowercase().parse().ok()));
            match b {
                Some(b) => Ok(b.to_string()),
                None => Err(format!("must be true or false, not {value}")),
            }
        }
    }
}

/// The campaign's `[dest]` for SQS in `mode`: the preset's queue attributes with the user's over
/// them, as `{"VisibilityTimeout": {"value": "5", "from": "preset"}, …}`.
pub fn dest_settings(mode: Guarantee, table: &toml::Table) -> Result<serde_json::Value, OptionError> {
    let mut attributes = queue_preset(mode);
    for (key, value) in table {
        let bad = |message: String| OptionError {
            key: key.clone(),
            message,
        };
        let Some((_, kind)) = QUEUE_ATTRIBUTES.iter().find(|(name, _)| name == key) else {
            let known: Vec<&str> = QUEUE_ATTRIBUTES.iter().map(|(name, _)| *name).collect();
            let hint = match key.as_str() {
                "RedrivePolicy" | "RedriveAllowPolicy" => {
                    " (ackcheck creates no dead-letter queue, so it cannot set a redrive policy)"
                }
                _ => "",
            };
            return Err(bad(format!(
                "is not an SQS queue attribute ackcheck can set{hint}; [dest] takes {}",
                known.join(", ")
            )));
        };
        let text = attribute_value(*kind, value).map_err(bad)?;
        attributes.set_user(key, &text);
    }
    let fifo = attributes.is_true("FifoQueue") == Some(true);
    if attributes.is_true("ContentBasedDeduplication") == Some(true) && !fifo {
        return Err(OptionError {
            key: "ContentBasedDeduplication".into(),
            message: "applies to FIFO queues only; set FifoQueue = true as well, or remove it".into(),
        });
    }
    if mode == Guarantee::ExactlyOnce && !fifo {
        return Err(OptionError {
            key: "FifoQueue".into(),
            message: "= false leaves exactly-once without SQS's deduplication, which only FIFO queues have; \
                      use mode = \"at-least-once\" with claim = \"exactly-once\" to test a standard queue against that claim"
                .into(),
        });
    }
    Ok(serde_json::to_value(&attributes).unwrap_or_default())
}

/// The queue attributes recorded by [`dest_settings`] (`{"key": {"value": …}}`), or, for a
/// caller that recorded none, `mode`'s preset.
pub fn queue_attributes(mode: Guarantee, recorded: &serde_json::Value) -> Vec<(String, String)> {
    let mut attributes: Vec<(String, String)> = queue_preset(mode)
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Some(map) = recorded.as_object() {
        for (key, entry) in map {
            let Some(value) = entry.get("value").and_then(|v| v.as_str()) else {
                continue;
            };
            attributes.retain(|(k, _)| k != key);
            attributes.push((key.clone(), value.to_string()));
        }
    }
    attributes
}

/// Client settings and what each takes.
const PRODUCER_KEYS: &[(&str, Kind)] = &[("max_attempts", Kind::Integer(1, 10))];
const CONSUMER_KEYS: &[(&str, Kind)] = &[
    ("max_attempts", Kind::Integer(1, 10)),
    ("wait_time_seconds", Kind::Integer(0, 20)),
    ("max_number_of_messages", Kind::Integer(1, 10)),
];

/// The SDK's own default number of attempts (its standard retry mode).
pub const SDK_DEFAULT_ATTEMPTS: u32 = 3;

/// The effective client settings: the preset (one attempt per request: the SDK's retries off;
/// the application decides about sending again) or, with `defaults = "library"`, the SDK's own
/// defaults (3 attempts), then the user's keys.
pub fn client_settings(tables: &ClientTables) -> Result<ClientSettings, OptionError> {
    let (mut producer, mut consumer) = match tables.defaults {
        ClientDefaults::Preset => (
            Props::preset([("max_attempts", "1")]),
            Props::preset([("max_attempts", "1")]),
        ),
        ClientDefaults::Library => (Props::default(), Props::default()),
    };
    for (role, table, props, keys) in [
        (ClientRole::Producer, &tables.producer, &mut producer, PRODUCER_KEYS),
        (ClientRole::Consumer, &tables.consumer, &mut consumer, CONSUMER_KEYS),
    ] {
        for (key, value) in table {
            let bad = |message: String| OptionError {
                key: format!("{}.{key}", role.name()),
                message,
            };
            let Some((_, kind)) = keys.iter().find(|(name, _)| name == key) else {
                let known: Vec<&str> = keys.iter().map(|(name, _)| *name).collect();
                return Err(bad(format!(
                    "is not an SQS {} setting ackcheck can set; [client.{}] takes {}",
                    role.name(),
                    role.name(),
                    known.join(", ")
                )));
            };
            if property_value(value).is_none() {
                return Err(bad("is not a setting value (a number or true/false)".into()));
            }
            let text = attribute_value(*kind, value).map_err(bad)?;
            props.set_user(key, &text);
        }
    }
    Ok(ClientSettings {
        defaults: tables.defaults,
        producer,
        consumer,
    })
}

/// A whole-number setting of `props`, if set.
pub fn number(props: &Props, key: &str) -> Option<u32> {
    props.get(key).and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).expect("a table")
    }

    #[test]
    fn queue_attributes_override_the_mode_preset_and_are_marked() {
        let d = dest_settings(
            Guarantee::AtLeastOnce,
            &table("VisibilityTimeout = 1\nDelaySeconds = \"2\""),
        )
        .unwrap();
        assert_eq!(
            d["VisibilityTimeout"],
            serde_json::json!({"value": "1", "from": "user"})
        );
        assert_eq!(d["DelaySeconds"]["value"], "2");
        assert!(d.get("FifoQueue").is_none(), "a standard queue at least once");
        let e = dest_settings(Guarantee::ExactlyOnce, &table("")).unwrap();
        assert_eq!(e["FifoQueue"], serde_json::json!({"value": "true", "from": "preset"}));
        assert_eq!(e["VisibilityTimeout"]["value"], "5");
        let attributes = queue_attributes(Guarantee::AtLeastOnce, &d);
        assert!(
            attributes.contains(&("VisibilityTimeout".into(), "1".into())),
            "{attributes:?}"
        );
        assert_eq!(
            queue_attributes(Guarantee::ExactlyOnce, &serde_json::json!({})),
            vec![
                ("ContentBasedDeduplication".to_string(), "false".to_string()),
                ("FifoQueue".into(), "true".into()),
                ("VisibilityTimeout".into(), "5".into())
            ]
        );
    }

    #[test]
    fn bad_attributes_are_named_with_what_sqs_accepts() {
        let err = |mode, text: &str| dest_settings(mode, &table(text)).unwrap_err();
        let e = err(Guarantee::AtLeastOnce, "VisibilityTimeout = 50000");
        assert_eq!(e.key, "VisibilityTimeout");
        assert!(e.message.contains("from 0 to 43200"), "{e}");
        let e = err(Guarantee::AtLeastOnce, "VisibilityTimeout = \"soon\"");
        assert!(e.message.contains("whole number"), "{e}");
        let e = err(Guarantee::AtLeastOnce, "visibility_timeout = 3");
        assert!(e.message.contains("not an SQS queue attribute"), "{e}");
        let e = err(Guarantee::AtLeastOnce, "ContentBasedDeduplication = true");
        assert!(e.message.contains("FIFO queues only"), "{e}");
        let e = err(Guarantee::ExactlyOnce, "FifoQueue = false");
        assert_eq!(e.key, "FifoQueue");
        let e = err(Guarantee::AtLeastOnce, "FifoQueue = \"maybe\"");
        assert!(e.message.contains("true or false"), "{e}");
        let e = err(Guarantee::AtLeastOnce, "RedrivePolicy = \"{}\"");
        assert!(e.message.contains("dead-letter"), "{e}");
    }

    #[test]
    fn client_settings_take_attempts_and_receive_sizes() {
        let tables: ClientTables =
            toml::from_str("[producer]\nmax_attempts = 3\n[consumer]\nwait_time_seconds = 2").unwrap();
        let s = client_settings(&tables).unwrap();
        assert_eq!(number(&s.producer, "max_attempts"), Some(3));
        assert_eq!(number(&s.consumer, "max_attempts"), Some(1), "the preset stays");
        assert_eq!(number(&s.consumer, "wait_time_seconds"), Some(2));
        assert_eq!(s.consumer.user_keys().collect::<Vec<_>>(), vec!["wait_time_seconds"]);
        let bad: ClientTables = toml::from_str("[consumer]\nmax_number_of_messages = 11").unwrap();
        let e = client_settings(&bad).unwrap_err();
        assert_eq!(e.key, "consumer.max_number_of_messages");
        assert!(e.message.contains("from 1 to 10"), "{e}");
        let bad: ClientTables = toml::from_str("[producer]\nretries = 3").unwrap();
        assert!(client_settings(&bad).unwrap_err().message.contains("max_attempts"));
        let library: ClientTables = toml::from_str("defaults = \"library\"").unwrap();
        assert!(client_settings(&library).unwrap().producer.is_empty());
    }
}
