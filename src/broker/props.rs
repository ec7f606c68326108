//! Client properties: the mode's preset, the user's own settings over it key by key, and the
//! effective result that the clients get and the history header records.
//!
//! A campaign's `[client.producer]` and `[client.consumer]` tables hold properties in the
//! broker's own vocabulary (librdkafka's `acks`, `enable.auto.commit`, …). Each driver says which
//! keys it takes, fills in its preset for the delivery mode (or, with `defaults = "library"`,
//! only what ackcheck itself needs, so that the client library's own defaults apply as in the
//! user's application) and checks the result against the client library before anything starts.
//! Values that look like secrets are never written out: [`Props`] serializes them as
//! `"<redacted>"`.

use std::collections::{BTreeMap, BTreeSet};

use serde::ser::SerializeMap;

use super::driver::OptionError;
use serde::{Deserialize, Serialize};

/// Where an effective property came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PropSource {
    /// ackcheck's preset for the delivery mode.
    Preset,
    /// The campaign's `[client.*]` table.
    User,
}

/// One client role's effective properties: key → value, each marked with where it came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Props {
    entries: BTreeMap<String, (String, PropSource)>,
    /// Keys whose values were read from the environment or a file ([`read_references`]):
    /// secrets whatever their names, never written out.
    hidden: BTreeSet<String>,
}

impl Props {
    /// A preset.
    pub fn preset<K: AsRef<str>, V: AsRef<str>>(pairs: impl IntoIterator<Item = (K, V)>) -> Props {
        let entries = pairs
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_string(), (v.as_ref().to_string(), PropSource::Preset)))
            .collect();
        Props {
            entries,
            hidden: BTreeSet::new(),
        }
    }

    /// Never write `key`'s value out, whatever its name (it was read from the environment or a
    /// file, where users keep secrets).
    pub fn hide(&mut self, key: &str) {
        if self.entries.contains_key(key) {
            self.hidden.insert(key.to_string());
        }
    }

    /// `key`'s value is written as [`REDACTED`].
    pub fn is_hidden(&self, key: &str) -> bool {
        is_secret(key) || self.hidden.contains(key)
    }

    /// The user's value for `key`, over the preset's if there is one.
    pub fn set_user(&mut self, key: &str, value: &str) {
        self.entries
            .insert(key.to_string(), (value.to_string(), PropSource::User));
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(|(v, _)| v.as_str())
    }

    /// `key` is set to `true` (as the client libraries spell booleans).
    pub fn is_true(&self, key: &str) -> Option<bool> {
        self.get(key).map(|v| v.eq_ignore_ascii_case("true"))
    }

    /// Every property, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, (v, _))| (k.as_str(), v.as_str()))
    }

    /// The keys the user set.
    pub fn user_keys(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .filter(|(_, (_, s))| *s == PropSource::User)
            .map(|(k, _)| k.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Serialize for Props {
    /// `{"acks": {"value": "1", "from": "user"}, …}`, secrets redacted.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Entry<'a> {
            value: &'a str,
            from: PropSource,
        }
        let mut map = s.serialize_map(Some(self.entries.len()))?;
        for (key, (value, from)) in &self.entries {
            let value = if self.is_hidden(key) { REDACTED } else { value.as_str() };
            map.serialize_entry(key, &Entry { value, from: *from })?;
        }
        map.end()
    }
}

/// Replaces every `{ env = "NAME" }` and `{ file = "PATH" }` value of a `[client.*]` table by
/// the environment variable's value or the file's contents (one trailing newline dropped), so
/// that passwords and tokens never need to be in a campaign file. Returns the keys it read: their
/// values are secrets whatever their names ([`Props::hide`]). A relative `PATH` is taken from the
/// working directory.
pub fn read_references(table: &mut toml::Table) -> Result<Vec<String>, OptionError> {
    let mut read = Vec::new();
    for (key, value) in table.iter_mut() {
        let Some(reference) = value.as_table() else { continue };
        let bad = |message: String| OptionError {
            key: key.clone(),
            message,
        };
        let text = match (reference.len(), reference.get("env"), reference.get("file")) {
            (1, Some(toml::Value::String(name)), None) => std::env::var(name).map_err(|_| {
                bad(format!(
                    "reads the environment variable {name}, which is not set (or not UTF-8); export it before the run"
                ))
            })?,
            (1, None, Some(toml::Value::String(path))) => std::fs::read_to_string(path).map_err(|e| {
                bad(format!(
                    "reads the file {path}, which cannot be read ({e}); check the path"
                ))
            })?,
            // Not a reference (a dotted key written without quotes, say): the driver's check
            // says what is wrong with it.
            _ => continue,
        };
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let text = text.strip_suffix('\r').unwrap_or(text).to_string();
        *value = toml::Value::String(text);
        read.push(key.clone());
    }
    Ok(read)
}

/// What a secret's value is written as.
pub const REDACTED: &str = "<redacted>";

/// Keys whose values are never written to a history, a verdict or a log: passwords, secrets,
/// tokens, keys, SASL settings and credentials.
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "credential",
        "sasl.",
        "private",
        ".key",
        "_key",
    ]
    .iter()
    .any(|needle| key.contains(needle))
        && !matches!(key.as_str(), "ssl.key.location" | "ssl.keystore.location")
}

/// Where the properties under the user's start from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientDefaults {
    /// ackcheck's preset for the delivery mode (what `mode` means for this broker).
    #[default]
    Preset,
    /// The client library's own defaults: only what ackcheck must set itself (addresses, group
    /// and transactional ids), as in an application that sets nothing but what the user lists.
    Library,
}

/// The campaign's `[client]` table as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTables {
    /// `preset` (default) or `library`.
    #[serde(default)]
    pub defaults: ClientDefaults,
    /// `[client.producer]`: producer properties in the broker's vocabulary.
    #[serde(default)]
    pub producer: toml::Table,
    /// `[client.consumer]`: consumer (and processor) properties.
    #[serde(default)]
    pub consumer: toml::Table,
}

impl ClientTables {
    pub fn is_empty(&self) -> bool {
        self.defaults == ClientDefaults::Preset && self.producer.is_empty() && self.consumer.is_empty()
    }
}

/// A client role whose properties a campaign sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientRole {
    Producer,
    Consumer,
}

impl ClientRole {
    /// The table name: `producer`, `consumer`.
    pub fn name(self) -> &'static str {
        match self {
            ClientRole::Producer => "producer",
            ClientRole::Consumer => "consumer",
        }
    }
}

/// The effective client properties of a run (what the history header records as `client`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClientSettings {
    /// Where they started from.
    pub defaults: ClientDefaults,
    pub producer: Props,
    pub consumer: Props,
}

impl ClientSettings {
    pub fn role(&self, role: ClientRole) -> &Props {
        match role {
            ClientRole::Producer => &self.producer,
            ClientRole::Consumer => &self.consumer,
        }
    }
}

/// A TOML value as a client property value: strings as they are, numbers and booleans in
/// their usual spelling. Tables and arrays are not property values.
pub fn property_value(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(_) | toml::Value::Array(_) | toml::Value::Table(_) => None,
    }
}

/// How one broker's server config file takes a campaign's `[server]` keys (Kafka's
/// `server.properties`, RabbitMQ's `rabbitmq.conf`, Pulsar's `standalone.conf`): written after
/// ackcheck's own lines, each key of the file's shape with a one-line value.
pub struct ServerFile {
    /// What a value is called in errors: `property`, `rabbitmq.conf`.
    pub value_kind: &'static str,
    /// A dotted key in quotes with a value, shown when TOML read a dotted key as a table.
    pub dotted_example: Option<&'static str>,
    /// The error for a key ackcheck sets itself (why it owns it), or `None`.
    pub owned: fn(&str) -> Option<String>,
    /// Whether a key has the file's shape.
    pub key_ok: fn(&str) -> bool,
    /// The error for a key of the wrong shape or a value the file cannot hold.
    pub shape_error: &'static str,
    /// An empty (or blank) value is one the file can hold.
    pub empty_ok: bool,
}

impl ServerFile {
    /// The `[server]` table as the user's properties, each key checked.
    pub fn settings(&self, table: &toml::Table) -> Result<Props, OptionError> {
        let mut props = Props::default();
        for (key, value) in table {
            let bad = |message: String| OptionError {
                key: key.clone(),
                message,
            };
            if let Some(why) = (self.owned)(key) {
                return Err(bad(why));
            }
            let Some(value) = property_value(value) else {
                let hint = match (value.is_table(), self.dotted_example) {
                    (true, Some(example)) => format!("; write dotted names in quotes, e.g. {example}"),
                    _ => String::new(),
                };
                return Err(bad(format!(
                    "is not a {} value (a string, a number or true/false){hint}",
                    self.value_kind
                )));
            };
            let blank = !self.empty_ok && value.trim().is_empty();
            if !(self.key_ok)(key) || value.contains('\n') || blank {
                return Err(bad(self.shape_error.into()));
            }
            props.set_user(key, &value);
        }
        Ok(props)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_values_override_the_preset_key_by_key_and_are_marked() {
        let mut p = Props::preset([("acks", "all"), ("retries", "5")]);
        p.set_user("acks", "1");
        p.set_user("linger.ms", "20");
        assert_eq!(p.get("acks"), Some("1"));
        assert_eq!(p.get("retries"), Some("5"));
        assert_eq!(p.user_keys().collect::<Vec<_>>(), vec!["acks", "linger.ms"]);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["acks"], serde_json::json!({"value": "1", "from": "user"}));
        assert_eq!(json["retries"], serde_json::json!({"value": "5", "from": "preset"}));
    }

    #[test]
    fn secrets_are_redacted_when_written_but_kept_for_the_client() {
        let mut p = Props::default();
        for key in [
            "sasl.password",
            "sasl.username",
            "ssl.key.password",
            "aws_secret_access_key",
            "token",
        ] {
            p.set_user(key, "hunter2");
        }
        p.set_user("acks", "all");
        p.set_user("ssl.key.location", "/etc/kafka/client.key");
        let text = serde_json::to_string(&p).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(text.matches(REDACTED).count(), 5, "{text}");
        assert!(
            text.contains("/etc/kafka/client.key"),
            "a path to a key is no secret: {text}"
        );
        assert_eq!(p.get("sasl.password"), Some("hunter2"));
    }

    #[test]
    fn references_read_the_environment_and_files_and_hide_the_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("password");
        std::fs::write(&path, "s3cr3t-from-file\n").unwrap();
        // SAFETY: the variable's name is this test's own; no other test reads or writes it.
        unsafe { std::env::set_var("ACKCHECK_TEST_REFERENCE_TOKEN", "t0ken-from-env") };
        let mut t: toml::Table = toml::from_str(&format!(
            "\"sasl.password\" = {{ file = {:?} }}\n\"sasl.oauthbearer.config\" = {{ env = \"ACKCHECK_TEST_REFERENCE_TOKEN\" }}\nacks = \"all\"\n",
            path.display().to_string()
        ))
        .unwrap();
        let read = read_references(&mut t).unwrap();
        assert_eq!(read, vec!["sasl.oauthbearer.config", "sasl.password"]);
        assert_eq!(t["sasl.password"].as_str(), Some("s3cr3t-from-file"));
        assert_eq!(t["sasl.oauthbearer.config"].as_str(), Some("t0ken-from-env"));

        // A value read from a file is hidden even under a name that does not look secret.
        let mut p = Props::default();
        p.set_user("client.rack", "from-a-file");
        p.hide("client.rack");
        let text = serde_json::to_string(&p).unwrap();
        assert!(!text.contains("from-a-file") && text.contains(REDACTED), "{text}");
        assert_eq!(p.get("client.rack"), Some("from-a-file"));

        let mut unset: toml::Table =
            toml::from_str("\"sasl.password\" = { env = \"ACKCHECK_TEST_UNSET_VARIABLE\" }").unwrap();
        let e = read_references(&mut unset).unwrap_err();
        assert_eq!(e.key, "sasl.password");
        assert!(
            e.message.contains("ACKCHECK_TEST_UNSET_VARIABLE, which is not set"),
            "{e}"
        );
        let mut missing: toml::Table =
            toml::from_str("password = { file = \"/nonexistent/ackcheck-password\" }").unwrap();
        let e = read_references(&mut missing).unwrap_err();
        assert!(
            e.message
                .contains("/nonexistent/ackcheck-password, which cannot be read"),
            "{e}"
        );
    }

    #[test]
    fn toml_values_read_as_property_strings() {
        let t: toml::Table = toml::from_str("a = \"all\"\nb = 1\nc = true\nd = [1]").unwrap();
        assert_eq!(property_value(&t["a"]).as_deref(), Some("all"));
        assert_eq!(property_value(&t["b"]).as_deref(), Some("1"));
        assert_eq!(property_value(&t["c"]).as_deref(), Some("true"));
        assert_eq!(property_value(&t["d"]), None);
    }
}
