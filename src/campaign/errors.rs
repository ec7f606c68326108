//! Campaign errors as one sentence with the line: the toml crate's errors reworded, and the
//! lines of keys that a check across several keys found wrong.

/// A campaign file that cannot be run: where and why, in one sentence.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {message}", .line.map(|l| format!(", line {l}")).unwrap_or_default())]
pub struct CampaignError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

pub(super) fn qualified(table: &str, key: &str) -> String {
    if table.is_empty() {
        format!("`{key}`")
    } else {
        format!("`{table}.{key}`")
    }
}

/// The line (from 1) of `key = ...` in `[table]` ("" = the top level), if it is written there.
pub fn line_of(text: &str, table: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            current = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
        } else if current == table && t.split('=').next().is_some_and(|k| k.trim() == key) && t.contains('=') {
            return Some(i + 1);
        }
    }
    if table.is_empty() {
        return None;
    }
    text.lines()
        .position(|l| l.trim().trim_matches(|c| c == '[' || c == ']').trim() == table && l.trim().starts_with('['))
        .map(|i| i + 1)
}

/// The table and key written on line `line` (from 1).
pub(super) fn key_at(text: &str, line: usize) -> (String, Option<String>) {
    let mut table = String::new();
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.starts_with('[') {
            table = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
        }
        if i + 1 == line {
            let key = t
                .split_once('=')
                .map(|(k, _)| k.trim().to_string())
                .filter(|k| !k.starts_with('['));
            return (table, key);
        }
    }
    (table, None)
}

/// The toml crate's error as one sentence with the line: "unknown key `x` in [workload]; ...".
pub(super) fn toml_error(file: &str, text: &str, e: &toml::de::Error) -> CampaignError {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let raw = e.message().trim().trim_end_matches('.').replace('\n', " ");
    let (table, key) = line.map(|l| key_at(text, l)).unwrap_or_default();
    let place = if table.is_empty() {
        "at the top level".to_string()
    } else {
        format!("in [{table}]")
    };
    let message = if let Some(rest) = raw.strip_prefix("unknown field ") {
        let (name, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let expected = if expected.is_empty() {
            String::new()
        } else {
            format!(" (expected {expected})")
        };
        format!("unknown key {name} {place}{expected}")
    } else if let Some(rest) = raw.strip_prefix("missing field ") {
        format!("the key {rest} is missing {place}")
    } else if let Some(key) = key {
        format!("{}: {raw}", qualified(&table, &key))
    } else {
        raw
    };
    CampaignError {
        file: file.to_string(),
        line,
        message,
    }
}
