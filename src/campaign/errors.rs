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
        } else if current == table
            && t.split('=').next().is_some_and(|k| k.trim().trim_matches('"') == key)
            && t.contains('=')
        {
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
        let bare = name.trim_matches('`');
        let known: Vec<&str> = expected
            .split(|c: char| c == ',' || c.is_whitespace())
            .map(|w| w.trim_matches('`'))
            .filter(|w| !w.is_empty() && *w != "one" && *w != "of" && *w != "or")
            .collect();
        let closest = known
            .iter()
            .map(|k| (strsim::damerau_levenshtein(bare, k), *k))
            .filter(|(d, k)| *d <= 2.max(k.len() / 4))
            .min();
        // A misspelt table shows up as an unknown key whose line is its `[header]`.
        let is_table = line.is_some_and(|l| {
            text.lines().nth(l - 1).is_some_and(|t| {
                t.trim().trim_matches(|c| c == '[' || c == ']').trim() == bare && t.trim().starts_with('[')
            })
        });
        match (is_table, closest) {
            (true, Some((_, k))) => format!("unknown table [{bare}]: did you mean [{k}]?"),
            (true, None) => format!("unknown table [{bare}] (expected {expected})"),
            (false, Some((_, k))) => format!("unknown key {name} {place}: did you mean `{k}`?"),
            (false, None) if expected.is_empty() => format!("unknown key {name} {place}"),
            (false, None) => format!("unknown key {name} {place} (expected {expected})"),
        }
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
