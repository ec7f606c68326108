//! The strict grammar of one history line (format v1), parsed by serde_json straight into a
//! chunk's compact storage: every string goes to one text arena per chunk and every message to
//! one vector, so a line costs no allocation of its own. This is the reader's hot path; the
//! owned types of `history` are what the rest of the program and the public iterator see.
//!
//! Strict means: an unknown field is an error (at the top level, in a `send` or `deliver` value
//! and in a message), a message must be an object, and every error names its field. Values of
//! other operations (nemesis targets, crash details) are free-form.

use std::fmt;

use rustc_hash::FxHasher;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::hash::{Hash, Hasher};

use super::{EventType, Process};

/// A string in a [`Store`]'s text arena.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    len: u32,
}

impl Span {
    fn shifted(self, by: u32) -> Span {
        Span {
            start: self.start - by,
            len: self.len,
        }
    }
}

/// The hash the checker's interner uses for message ids: computed on the parsing threads so
/// that the sequential part only probes its table.
pub(crate) fn text_hash(s: &str) -> u64 {
    let mut h = FxHasher::default();
    s.hash(&mut h);
    h.finish()
}

/// A position's hash; never 0, so that 0 can mean "no position".
pub(crate) fn pos_hash(pos: &str) -> u64 {
    text_hash(pos) | 1
}

/// One message as parsed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WireMessage {
    pub id: Span,
    pub id_hash: u64,
    pub key: Option<Span>,
    pub dest: Option<Span>,
    pub pos: Option<Span>,
    /// [`pos_hash`] of `pos`, 0 without one.
    pub pos_hash: u64,
    pub from: Option<Span>,
    pub redelivered: bool,
}

impl WireMessage {
    fn shifted(mut self, by: u32) -> WireMessage {
        self.id = self.id.shifted(by);
        for s in [&mut self.key, &mut self.dest, &mut self.pos, &mut self.from] {
            *s = s.map(|s| s.shifted(by));
        }
        self
    }
}

/// The operation names the checker knows, and any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpName {
    Send,
    Deliver,
    Crash,
    Drain,
    Other(Span),
}

/// One event as parsed; its strings and messages live in a [`Store`].
#[derive(Debug, Clone)]
pub(crate) struct WireEvent {
    pub index: u64,
    pub time: u64,
    pub process: Process,
    pub kind: EventType,
    pub f: OpName,
    pub op: Option<u64>,
    /// The line had a (non-null) `value`.
    pub has_value: bool,
    pub group: Option<Span>,
    pub atomic: bool,
    /// Ranges in [`Store::messages`].
    pub messages: (u32, u32),
    pub skipped: (u32, u32),
    /// For operations other than send and deliver: the value, in [`Store::values`].
    pub other_value: Option<u32>,
    pub error: Option<Span>,
    /// The part of the store this event filled (text bytes, messages), to copy it out.
    text_region: (u32, u32),
    message_region: (u32, u32),
}

/// Where the lines of one chunk keep their strings and messages.
#[derive(Debug, Default)]
pub(crate) struct Store {
    text: String,
    pub messages: Vec<WireMessage>,
    pub values: Vec<serde_json::Value>,
}

impl Store {
    fn push(&mut self, s: &str) -> Span {
        let span = Span {
            start: self.text.len() as u32,
            len: s.len() as u32,
        };
        self.text.push_str(s);
        span
    }

    pub fn text(&self, span: Span) -> &str {
        &self.text[span.start as usize..(span.start + span.len) as usize]
    }

    pub fn messages_of(&self, range: (u32, u32)) -> &[WireMessage] {
        &self.messages[range.0 as usize..range.1 as usize]
    }

    /// Copy one event into a store of its own (an open invocation outlives its chunk; `into`
    /// is emptied first and reused), and return the event with its spans and ranges moved there.
    pub fn copy_out(&self, e: &WireEvent, into: &mut Store) -> WireEvent {
        let (t0, t1) = e.text_region;
        let (m0, m1) = e.message_region;
        into.clear();
        into.text.push_str(&self.text[t0 as usize..t1 as usize]);
        into.messages
            .extend(self.messages[m0 as usize..m1 as usize].iter().map(|m| m.shifted(t0)));
        into.values.clear();
        into.values
            .extend(e.other_value.map(|i| self.values[i as usize].clone()));
        let mut copy = e.clone();
        if let OpName::Other(span) = copy.f {
            copy.f = OpName::Other(span.shifted(t0));
        }
        copy.group = copy.group.map(|s| s.shifted(t0));
        copy.error = copy.error.map(|s| s.shifted(t0));
        copy.messages = (e.messages.0 - m0, e.messages.1 - m0);
        copy.skipped = (e.skipped.0 - m0, e.skipped.1 - m0);
        copy.other_value = e.other_value.map(|_| 0);
        copy.text_region = (0, t1 - t0);
        copy.message_region = (0, m1 - m0);
        copy
    }

    /// Empty it, keeping its capacity.
    pub fn clear(&mut self) {
        self.text.clear();
        self.messages.clear();
        self.values.clear();
    }

    /// Few enough bytes to keep for reuse.
    pub fn is_small(&self) -> bool {
        self.text.capacity() <= 16 << 10 && self.messages.capacity() <= 256
    }

    /// The operation name as text.
    pub fn op_name(&self, f: OpName) -> &str {
        match f {
            OpName::Send => super::ops::SEND,
            OpName::Deliver => super::ops::DELIVER,
            OpName::Crash => super::ops::CRASH,
            OpName::Drain => super::ops::DRAIN,
            OpName::Other(span) => self.text(span),
        }
    }
}

/// Parse one event line (not a header) into `store`.
pub(crate) fn parse_event(line: &str, store: &mut Store) -> Result<WireEvent, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(line);
    let event = EventSeed { store }.deserialize(&mut de)?;
    de.end()?;
    Ok(event)
}

/// Parse the line again, tracking where the parser was, and say what is wrong and in which
/// field. Only called for a line that failed to parse (the tracking costs time).
pub(crate) fn explain_event(line: &str) -> String {
    let mut store = Store::default();
    let mut de = serde_json::Deserializer::from_str(line);
    let mut track = serde_path_to_error::Track::new();
    let parsed =
        EventSeed { store: &mut store }.deserialize(serde_path_to_error::Deserializer::new(&mut de, &mut track));
    match parsed.and_then(|_| de.end()) {
        Ok(_) => "the line parses when read again (please report this)".into(),
        Err(e) => describe(&e, &track.path().to_string()),
    }
}

/// The same for a header line.
pub(crate) fn explain_header(line: &str) -> String {
    let mut de = serde_json::Deserializer::from_str(line);
    let mut track = serde_path_to_error::Track::new();
    let parsed =
        <super::Header as de::Deserialize>::deserialize(serde_path_to_error::Deserializer::new(&mut de, &mut track));
    match parsed.and_then(|_| de.end()) {
        Ok(_) => "the line parses when read again (please report this)".into(),
        Err(e) => describe(&e, &track.path().to_string()),
    }
}

/// serde_json's message without its "at line 1 column N" (always line 1 here), then the field
/// (the path from the line's object, e.g. `value.messages[0].id`) and the column.
pub(crate) fn describe(e: &serde_json::Error, path: &str) -> String {
    let msg = e.to_string();
    let msg = msg.rfind(" at line ").map_or(&msg[..], |at| &msg[..at]);
    let root = path.is_empty() || path == ".";
    // An unknown field is reported at its parent object: name the field itself.
    let field = match msg.strip_prefix("unknown field `").and_then(|r| r.split_once('`')) {
        Some((name, _)) if root => Some(name.to_string()),
        Some((name, _)) => Some(format!("{path}.{name}")),
        None if root => None,
        None => Some(path.to_string()),
    };
    match field {
        Some(field) => format!("{msg} (field `{field}`, column {})", e.column()),
        None => format!("{msg} (column {})", e.column()),
    }
}

const EVENT_FIELDS: &[&str] = &["index", "time", "process", "type", "f", "op", "value", "error"];
const SEND_VALUE_FIELDS: &[&str] = &["messages", "atomic"];
const DELIVER_VALUE_FIELDS: &[&str] = &["group", "messages", "skipped"];
const MESSAGE_FIELDS: &[&str] = &["id", "key", "dest", "pos", "from", "redelivered"];

/// A map key, borrowed from the line when it has no escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(v.into()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(v.to_owned().into()))
            }
        }
        d.deserialize_str(V)
    }
}

/// A string, stored in the arena.
struct Text<'s> {
    store: &'s mut Store,
}

impl<'de> DeserializeSeed<'de> for Text<'_> {
    type Value = Span;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Span, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for Text<'_> {
    type Value = Span;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Span, E> {
        Ok(self.store.push(v))
    }
}

/// A string or null, stored in the arena.
struct OptText<'s> {
    store: &'s mut Store,
}

impl<'de> DeserializeSeed<'de> for OptText<'_> {
    type Value = Option<Span>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Span>, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for OptText<'_> {
    type Value = Option<Span>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string or null")
    }
    fn visit_none<E: de::Error>(self) -> Result<Option<Span>, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<Span>, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<Span>, D::Error> {
        Text { store: self.store }.deserialize(d).map(Some)
    }
}

/// The operation name.
struct OpSeed<'s> {
    store: &'s mut Store,
}

impl<'de> DeserializeSeed<'de> for OpSeed<'_> {
    type Value = OpName;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<OpName, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for OpSeed<'_> {
    type Value = OpName;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an operation name such as \"send\" or \"deliver\"")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<OpName, E> {
        Ok(match v {
            super::ops::SEND => OpName::Send,
            super::ops::DELIVER => OpName::Deliver,
            super::ops::CRASH => OpName::Crash,
            super::ops::DRAIN => OpName::Drain,
            other => OpName::Other(self.store.push(other)),
        })
    }
}

/// One message object.
struct MessageSeed<'s> {
    store: &'s mut Store,
}

impl<'de> DeserializeSeed<'de> for MessageSeed<'_> {
    type Value = WireMessage;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<WireMessage, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MessageSeed<'_> {
    type Value = WireMessage;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a message object such as {\"id\":\"m1\"}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WireMessage, A::Error> {
        let store = self.store;
        let mut id: Option<Span> = None;
        let (mut key, mut dest, mut pos, mut from) = (None, None, None, None);
        let mut redelivered = None;
        while let Some(Key(name)) = map.next_key::<Key<'de>>()? {
            let slot = match name.as_ref() {
                "id" => {
                    if id.is_some() {
                        return Err(de::Error::duplicate_field("id"));
                    }
                    id = Some(map.next_value_seed(Text { store: &mut *store })?);
                    continue;
                }
                "redelivered" => {
                    if redelivered.is_some() {
                        return Err(de::Error::duplicate_field("redelivered"));
                    }
                    redelivered = Some(map.next_value::<bool>()?);
                    continue;
                }
                "key" => &mut key,
                "dest" => &mut dest,
                "pos" => &mut pos,
                "from" => &mut from,
                other => return Err(de::Error::unknown_field(other, MESSAGE_FIELDS)),
            };
            if slot.is_some() {
                let field = MESSAGE_FIELDS
                    .iter()
                    .find(|f| **f == name.as_ref())
                    .copied()
                    .unwrap_or("");
                return Err(de::Error::duplicate_field(field));
            }
            *slot = Some(map.next_value_seed(OptText { store: &mut *store })?);
        }
        let id = id.ok_or_else(|| de::Error::missing_field("id"))?;
        let (key, dest, pos, from) = (key.flatten(), dest.flatten(), pos.flatten(), from.flatten());
        Ok(WireMessage {
            id,
            id_hash: text_hash(store.text(id)),
            key,
            dest,
            pos,
            pos_hash: pos.map_or(0, |p| pos_hash(store.text(p))),
            from,
            redelivered: redelivered.unwrap_or(false),
        })
    }
}

/// A list of messages, appended to the store; yields its range there.
struct MessagesSeed<'s> {
    store: &'s mut Store,
}

impl<'de> DeserializeSeed<'de> for MessagesSeed<'_> {
    type Value = (u32, u32);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(u32, u32), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for MessagesSeed<'_> {
    type Value = (u32, u32);
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of message objects")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(u32, u32), A::Error> {
        let start = self.store.messages.len() as u32;
        while let Some(m) = seq.next_element_seed(MessageSeed {
            store: &mut *self.store,
        })? {
            self.store.messages.push(m);
        }
        Ok((start, self.store.messages.len() as u32))
    }
}

/// What a `value` contributes to its event.
#[derive(Default)]
struct ValueParts {
    present: bool,
    group: Option<Span>,
    atomic: bool,
    messages: Option<(u32, u32)>,
    skipped: Option<(u32, u32)>,
    other_value: Option<u32>,
}

/// The `value` of an operation: strict for send and deliver, free-form otherwise.
struct ValueSeed<'s> {
    f: OpName,
    store: &'s mut Store,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = ValueParts;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ValueParts, D::Error> {
        match self.f {
            OpName::Send | OpName::Deliver => d.deserialize_option(self),
            _ => {
                let value: serde_json::Value = de::Deserialize::deserialize(d)?;
                if value.is_null() {
                    return Ok(ValueParts::default());
                }
                self.store.values.push(value);
                Ok(ValueParts {
                    present: true,
                    other_value: Some(self.store.values.len() as u32 - 1),
                    ..ValueParts::default()
                })
            }
        }
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = ValueParts;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.f {
            OpName::Send => f.write_str("a send's value: an object with \"messages\" (and \"atomic\")"),
            _ => f.write_str("a delivery's value: an object with \"group\" and \"messages\" (and \"skipped\")"),
        }
    }
    fn visit_none<E: de::Error>(self) -> Result<ValueParts, E> {
        Ok(ValueParts::default())
    }
    fn visit_unit<E: de::Error>(self) -> Result<ValueParts, E> {
        Ok(ValueParts::default())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<ValueParts, D::Error> {
        d.deserialize_map(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ValueParts, A::Error> {
        let send = self.f == OpName::Send;
        let fields = if send { SEND_VALUE_FIELDS } else { DELIVER_VALUE_FIELDS };
        let mut parts = ValueParts {
            present: true,
            ..ValueParts::default()
        };
        let mut atomic = None;
        let mut group = None;
        while let Some(Key(name)) = map.next_key::<Key<'de>>()? {
            match (name.as_ref(), send) {
                ("messages", _) => {
                    if parts.messages.is_some() {
                        return Err(de::Error::duplicate_field("messages"));
                    }
                    parts.messages = Some(map.next_value_seed(MessagesSeed {
                        store: &mut *self.store,
                    })?);
                }
                ("atomic", true) => {
                    if atomic.is_some() {
                        return Err(de::Error::duplicate_field("atomic"));
                    }
                    atomic = Some(map.next_value::<bool>()?);
                }
                ("group", false) => {
                    if group.is_some() {
                        return Err(de::Error::duplicate_field("group"));
                    }
                    group = Some(map.next_value_seed(OptText {
                        store: &mut *self.store,
                    })?);
                }
                ("skipped", false) => {
                    if parts.skipped.is_some() {
                        return Err(de::Error::duplicate_field("skipped"));
                    }
                    parts.skipped = Some(map.next_value_seed(MessagesSeed {
                        store: &mut *self.store,
                    })?);
                }
                (other, _) => return Err(de::Error::unknown_field(other, fields)),
            }
        }
        parts.atomic = atomic.unwrap_or(false);
        parts.group = group.flatten();
        Ok(parts)
    }
}

/// A whole event line.
struct EventSeed<'s> {
    store: &'s mut Store,
}

impl<'de> DeserializeSeed<'de> for EventSeed<'_> {
    type Value = WireEvent;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<WireEvent, D::Error> {
        d.deserialize_map(self)
    }
}

fn once<T, E: de::Error>(slot: &Option<T>, field: &'static str) -> Result<(), E> {
    match slot {
        Some(_) => Err(E::duplicate_field(field)),
        None => Ok(()),
    }
}

impl<'de> Visitor<'de> for EventSeed<'_> {
    type Value = WireEvent;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event object such as {\"index\":0,\"time\":0,\"process\":1,\"type\":\"invoke\",\"f\":\"send\"}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WireEvent, A::Error> {
        let store = self.store;
        let text_start = store.text.len() as u32;
        let message_start = store.messages.len() as u32;
        let (mut index, mut time, mut process, mut kind) = (None, None, None, None);
        let (mut f, mut op, mut error) = (None, None, None);
        let mut value: Option<ValueParts> = None;
        // A `value` before `f` cannot be read strictly yet: kept as JSON until `f` is known.
        let mut early_value: Option<serde_json::Value> = None;
        while let Some(Key(name)) = map.next_key::<Key<'de>>()? {
            match name.as_ref() {
                "index" => {
                    once::<_, A::Error>(&index, "index")?;
                    index = Some(map.next_value::<u64>()?);
                }
                "time" => {
                    once::<_, A::Error>(&time, "time")?;
                    time = Some(map.next_value::<u64>()?);
                }
                "process" => {
                    once::<_, A::Error>(&process, "process")?;
                    process = Some(map.next_value::<Process>()?);
                }
                "type" => {
                    once::<_, A::Error>(&kind, "type")?;
                    kind = Some(map.next_value::<EventType>()?);
                }
                "f" => {
                    once::<_, A::Error>(&f, "f")?;
                    f = Some(map.next_value_seed(OpSeed { store: &mut *store })?);
                }
                "op" => {
                    once::<_, A::Error>(&op, "op")?;
                    op = Some(map.next_value::<Option<u64>>()?);
                }
                "error" => {
                    once::<_, A::Error>(&error, "error")?;
                    error = Some(map.next_value_seed(OptText { store: &mut *store })?);
                }
                "value" => {
                    if value.is_some() || early_value.is_some() {
                        return Err(de::Error::duplicate_field("value"));
                    }
                    match f {
                        Some(f) => value = Some(map.next_value_seed(ValueSeed { f, store: &mut *store })?),
                        None => early_value = Some(map.next_value()?),
                    }
                }
                other => return Err(de::Error::unknown_field(other, EVENT_FIELDS)),
            }
        }
        let f = f.ok_or_else(|| de::Error::missing_field("f"))?;
        if let Some(early) = early_value {
            let mut track = serde_path_to_error::Track::new();
            let seed = ValueSeed { f, store: &mut *store };
            let parsed = seed.deserialize(serde_path_to_error::Deserializer::new(early, &mut track));
            value = Some(parsed.map_err(|e| {
                let path = track.path().to_string();
                let path = if path == "." { String::new() } else { format!(".{path}") };
                de::Error::custom(format_args!("{e} (in `value{path}`)"))
            })?);
        }
        let value = value.unwrap_or_default();
        let empty = (message_start, message_start);
        Ok(WireEvent {
            index: index.ok_or_else(|| de::Error::missing_field("index"))?,
            time: time.ok_or_else(|| de::Error::missing_field("time"))?,
            process: process.ok_or_else(|| de::Error::missing_field("process"))?,
            kind: kind.ok_or_else(|| de::Error::missing_field("type"))?,
            f,
            op: op.flatten(),
            has_value: value.present,
            group: value.group,
            atomic: value.atomic,
            messages: value.messages.unwrap_or(empty),
            skipped: value.skipped.unwrap_or(empty),
            other_value: value.other_value,
            error: error.flatten(),
            text_region: (text_start, store.text.len() as u32),
            message_region: (message_start, store.messages.len() as u32),
        })
    }
}
