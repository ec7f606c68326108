//! The `history` role: the event log of a run (format v1, see docs/history-format.md).
//!
//! Types here are the public interface: histories recorded by any program in any language are
//! read with [`reader::HistoryReader`]; ackcheck's own runs write them with [`writer::Recorder`].

pub mod reader;
pub(crate) mod wire;
pub mod writer;

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The format version this crate reads and writes.
pub const FORMAT_VERSION: u64 = 1;

/// The optional first line: `{"history":1,"claim":"exactly-once",...}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Header {
    pub history: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim: Option<Guarantee>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    /// The consumer groups the claim is about (e.g. only the read-committed one); absent: all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim_groups: Option<Vec<String>>,
    /// What `pos` strings are: `log` (`partition@offset` in a dest, so offsets can be compared)
    /// or `opaque` (the default: equal strings mean the same stored copy, nothing more).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub positions: Option<Positions>,
    /// Any other run metadata, kept as written.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl<'de> Deserialize<'de> for Header {
    // Hand-written rather than derived: a derived struct with a flattened map buffers the whole
    // object first, and its errors then name neither the field nor what was expected.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Header;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a header object such as {\"history\":1}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header, A::Error> {
                let mut history = None;
                let mut h = Header::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "history" => history = Some(map.next_value()?),
                        "claim" => h.claim = map.next_value()?,
                        "broker" => h.broker = map.next_value()?,
                        "seed" => h.seed = map.next_value()?,
                        "config" => h.config = map.next_value()?,
                        "claim_groups" => h.claim_groups = map.next_value()?,
                        "positions" => h.positions = map.next_value()?,
                        other => {
                            let value: serde_json::Value = map.next_value()?;
                            h.extra.insert(other.to_string(), value);
                        }
                    }
                }
                h.history = history.ok_or_else(|| de::Error::missing_field("history"))?;
                Ok(h)
            }
        }
        d.deserialize_map(V)
    }
}

/// A unit enum read from one of its names, with an error that lists them (serde's derive on
/// serde_json answers a number or an object with a bare "expected value").
fn named_variant<'de, D: Deserializer<'de>, T: Copy>(
    d: D,
    names: &'static [&'static str],
    values: &'static [T],
) -> Result<T, D::Error> {
    struct V<T: 'static> {
        names: &'static [&'static str],
        values: &'static [T],
    }
    impl<T: Copy> Visitor<'_> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("one of ")?;
            for (i, name) in self.names.iter().enumerate() {
                let sep = if i == 0 { "" } else { ", " };
                write!(f, "{sep}\"{name}\"")?;
            }
            Ok(())
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            match self.names.iter().position(|&n| n == v) {
                Some(i) => Ok(self.values[i]),
                None => Err(E::unknown_variant(v, self.names)),
            }
        }
    }
    d.deserialize_str(V { names, values })
}

/// The three delivery guarantees, plus the verdict for a run that showed neither property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Guarantee {
    AtMostOnce,
    AtLeastOnce,
    ExactlyOnce,
}

impl Guarantee {
    pub fn name(self) -> &'static str {
        match self {
            Guarantee::AtMostOnce => "at-most-once",
            Guarantee::AtLeastOnce => "at-least-once",
            Guarantee::ExactlyOnce => "exactly-once",
        }
    }
}

/// What the `pos` strings of a history are (the header's `positions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Positions {
    /// `partition@offset` within the message's dest: offsets order the log.
    Log,
    /// Any string; equal strings mean the same stored copy.
    Opaque,
}

impl<'de> Deserialize<'de> for Positions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        named_variant(d, &["log", "opaque"], &[Positions::Log, Positions::Opaque])
    }
}

impl<'de> Deserialize<'de> for Guarantee {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use Guarantee::*;
        named_variant(
            d,
            &["at-most-once", "at-least-once", "exactly-once"],
            &[AtMostOnce, AtLeastOnce, ExactlyOnce],
        )
    }
}

impl fmt::Display for Guarantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who did an operation: a client (logical process) or the nemesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Process {
    Client(u64),
    Nemesis,
}

impl Serialize for Process {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(p) => s.serialize_u64(*p),
            Process::Nemesis => s.serialize_str("nemesis"),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Process;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a non-negative integer or \"nemesis\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Process, E> {
                Ok(Process::Client(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Process, E> {
                u64::try_from(v)
                    .map(Process::Client)
                    .map_err(|_| E::custom("process must not be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Process, E> {
                if v == "nemesis" {
                    Ok(Process::Nemesis)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(p) => write!(f, "{p}"),
            Process::Nemesis => f.write_str("nemesis"),
        }
    }
}

/// invoke starts an operation; ok = it happened; fail = it definitely did not; info = unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Invoke,
    Ok,
    Fail,
    Info,
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use EventType::*;
        named_variant(d, &["invoke", "ok", "fail", "info"], &[Invoke, Ok, Fail, Info])
    }
}

/// One logical message. `id` names it across retries; the rest is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Topic or queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest: Option<String>,
    /// Where the broker put it: `partition@offset`, an SQS MessageId, a Pulsar message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos: Option<String>,
    /// The upstream message a pipeline stage derived this one from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// In a `deliver`: the broker flagged this copy as delivered before (RabbitMQ's
    /// `redelivered`). Evidence only; the checker finds redeliveries from `pos`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redelivered: bool,
}

/// A [`Message`] borrowed from its owner, for writing histories without copying ids: the same
/// JSON, field for field.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MessageRef<'a> {
    pub id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pos: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub redelivered: bool,
}

impl Message {
    pub fn new(id: impl Into<String>) -> Message {
        Message {
            id: id.into(),
            ..Message::default()
        }
    }
}

/// The operation-specific `value`. Send and deliver values are read into typed fields; any other
/// value (a nemesis target, say) is kept in `extra` when it is an object and ignored otherwise.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OpValue {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Message>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub atomic: bool,
    /// In a `deliver`: copies an idempotent consumer received and did not process because it
    /// had processed the same message before (its deduplication at work; not deliveries).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Message>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl<'de> Deserialize<'de> for OpValue {
    // Hand-written rather than derived: a derived struct with a flattened map buffers every field
    // and rejects non-object values; this one parses the known keys straight into their types.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OpValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OpValue, A::Error> {
                let mut v = OpValue::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "messages" => v.messages = map.next_value()?,
                        "group" => v.group = map.next_value()?,
                        "atomic" => v.atomic = map.next_value()?,
                        "skipped" => v.skipped = map.next_value()?,
                        other => {
                            let value: serde_json::Value = map.next_value()?;
                            v.extra.insert(other.to_string(), value);
                        }
                    }
                }
                Ok(v)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<OpValue, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(OpValue::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<OpValue, E> {
                Ok(OpValue::default())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<OpValue, E> {
                Ok(OpValue::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<OpValue, E> {
                Ok(OpValue::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<OpValue, E> {
                Ok(OpValue::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<OpValue, E> {
                Ok(OpValue::default())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<OpValue, E> {
                Ok(OpValue::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// One line of a history (other than the header). Its serde `Deserialize` reads a single event
/// (the benchmark floor uses it); [`reader::HistoryReader`] does not: it applies the strict
/// format v1 grammar (unknown fields, shapes, field-naming errors) in `wire`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub index: u64,
    /// Nanoseconds since the run started.
    pub time: u64,
    pub process: Process,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub f: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<OpValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Event {
    /// The messages this event carries (empty when it has none).
    pub fn messages(&self) -> &[Message] {
        self.value.as_ref().map_or(&[], |v| &v.messages)
    }
}

/// Operation names with a meaning to the checker.
pub mod ops {
    pub const SEND: &str = "send";
    pub const DELIVER: &str = "deliver";
    pub const CRASH: &str = "crash";
    pub const DRAIN: &str = "drain";
    pub const REBALANCE: &str = "rebalance";
}
