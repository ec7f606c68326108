//! Cells grouped by configuration: one broker, one campaign, one variant, every seed. A group
//! is a row of the comparison; its numbers are ranges and counts over its cells.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::CellResult;

/// Brokers in the order the tables list them (the rest after, alphabetically).
const BROKER_ORDER: [&str; 5] = ["kafka", "rabbitmq", "sqs", "pulsar", "nats"];
const MODE_ORDER: [&str; 3] = ["at-most-once", "at-least-once", "exactly-once"];

/// The judged cells of one configuration, by seed.
#[derive(Debug, Clone)]
pub struct Group {
    pub broker: String,
    pub campaign: String,
    pub variant: Option<String>,
    pub mode: String,
    pub nodes: u64,
    pub cells: Vec<CellResult>,
}

/// The judged cells, grouped and sorted (broker order, campaign, variant).
pub fn groups(cells: &BTreeMap<String, CellResult>) -> Vec<Group> {
    // Within a broker: at-most-once, at-least-once, exactly-once; one node before three; a
    // campaign's variants right after it.
    type Key = (usize, String, usize, u64, String, Option<String>);
    let mut by_key: BTreeMap<Key, Vec<CellResult>> = BTreeMap::new();
    for c in cells.values().filter(|c| c.judged()) {
        let rank = BROKER_ORDER
            .iter()
            .position(|b| *b == c.broker)
            .unwrap_or(BROKER_ORDER.len());
        by_key
            .entry((
                rank,
                c.broker.clone(),
                MODE_ORDER
                    .iter()
                    .position(|m| *m == c.mode())
                    .unwrap_or(MODE_ORDER.len()),
                c.nodes,
                c.campaign.clone(),
                c.variant.clone(),
            ))
            .or_default()
            .push(c.clone());
    }
    by_key
        .into_iter()
        .map(|((_, broker, _, _, campaign, variant), mut cells)| {
            cells.sort_by_key(|c| c.seed);
            Group {
                mode: cells[0].mode(),
                nodes: cells[0].nodes,
                broker,
                campaign,
                variant,
                cells,
            }
        })
        .collect()
}

impl Group {
    /// `kafka-at-least-once` or `kafka-at-least-once (ack-before)`.
    pub fn name(&self) -> String {
        match &self.variant {
            // The matrix already names a variant's campaign `<campaign>-<variant>`.
            Some(v) if !self.campaign.ends_with(&format!("-{v}")) => format!("{} ({v})", self.campaign),
            _ => self.campaign.clone(),
        }
    }

    pub fn runs(&self) -> usize {
        self.cells.len()
    }

    /// Observed classes with their run counts: `at-least-once in 3/3 runs`,
    /// `at-least-once in 2/3, exactly-once in 1/3 runs`.
    pub fn observed(&self) -> String {
        observed_of(&self.cells.iter().collect::<Vec<_>>())
    }

    /// `held 3/3` or `violated 1/3 (…first violation…)`.
    pub fn claim(&self) -> String {
        claim_of(&self.cells.iter().collect::<Vec<_>>())
    }

    /// Fault families injected in at least one run, sorted.
    pub fn families(&self) -> BTreeSet<String> {
        self.cells.iter().flat_map(|c| c.families()).collect()
    }

    pub fn total(&self, key: &str) -> u64 {
        self.cells.iter().map(|c| c.count(key)).sum()
    }

    /// Runs in which `key` was non-zero.
    pub fn runs_with(&self, key: &str) -> usize {
        self.cells.iter().filter(|c| c.count(key) > 0).count()
    }

    /// Mean acknowledged messages per second over the runs that measured it.
    pub fn throughput(&self) -> Option<f64> {
        mean(
            self.cells
                .iter()
                .filter_map(|c| c.performance.as_ref()?.acknowledged_per_second),
        )
    }

    /// Median over runs of each run's p50 and p99 end-to-end latency (ms).
    pub fn latency(&self) -> Option<(f64, f64)> {
        let lat: Vec<_> = self
            .cells
            .iter()
            .filter_map(|c| c.performance.as_ref()?.latency.clone())
            .collect();
        Some((
            median(lat.iter().map(|l| l.p50_ms))?,
            median(lat.iter().map(|l| l.p99_ms))?,
        ))
    }

    /// Evidence grades with counts: `strong 2, weak 1`.
    pub fn evidence(&self) -> String {
        let mut grades: BTreeMap<String, usize> = BTreeMap::new();
        for c in &self.cells {
            let g = c
                .evidence
                .as_ref()
                .and_then(|e| e.grade.clone())
                .unwrap_or_else(|| "?".into());
            *grades.entry(g).or_default() += 1;
        }
        grades
            .iter()
            .map(|(g, n)| format!("{g} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The properties that decide the guarantee, from the first cell's effective configuration
    /// (every seed of a group runs the same campaign, so they agree).
    pub fn effective_config(&self) -> Vec<String> {
        self.cells[0].config.as_ref().map(effective_config).unwrap_or_default()
    }
}

pub fn observed_of(cells: &[&CellResult]) -> String {
    let mut classes: BTreeMap<String, usize> = BTreeMap::new();
    for c in cells {
        *classes.entry(c.verdict.clone().unwrap_or_default()).or_default() += 1;
    }
    let n = cells.len();
    let mut parts: Vec<(String, usize)> = classes.into_iter().collect();
    parts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let text = parts
        .iter()
        .map(|(class, k)| format!("{class} in {k}/{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("{text} {}", if n == 1 { "run" } else { "runs" })
}

pub fn claim_of(cells: &[&CellResult]) -> String {
    let n = cells.len();
    let held = cells.iter().filter(|c| c.claim_holds == Some(true)).count();
    let violated: Vec<&&CellResult> = cells.iter().filter(|c| c.claim_holds == Some(false)).collect();
    if violated.is_empty() {
        format!("held {held}/{n}")
    } else {
        format!("violated {}/{n}", violated.len())
    }
}

/// `38–112` (or `38` when all agree) over the per-run values, rounded for reading.
pub fn range(values: impl IntoIterator<Item = f64>) -> String {
    let v: Vec<f64> = values.into_iter().collect();
    if v.is_empty() {
        return "–".into();
    }
    let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if number(lo) == number(hi) {
        number(lo)
    } else {
        format!("{}–{}", number(lo), number(hi))
    }
}

/// A number as the tables print it: integers plainly, small fractions with one or two digits.
pub fn number(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.abs() >= 10.0 || x.fract() == 0.0 {
        format!("{x:.0}")
    } else if x.abs() >= 1.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

pub fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = values.collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

pub fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// Client properties that decide a delivery guarantee, per side (others are tuning).
const PRODUCER_KEYS: [&str; 10] = [
    "acks",
    "enable.idempotence",
    "transactional.id",
    "max.in.flight.requests.per.connection",
    "confirms",
    "persistent",
    "max_attempts",
    "send_timeout",
    "retries",
    "message.timeout.ms",
];
const CONSUMER_KEYS: [&str; 7] = [
    "enable.auto.commit",
    "enable.auto.offset.store",
    "isolation.level",
    "auto_ack",
    "prefetch",
    "ack_timeout",
    "max_attempts",
];

/// The few properties that matter, as `key=value` (a `*` marks a value the campaign or the
/// matrix set over the mode's preset): workload kind and acknowledgement point, producer,
/// consumer, destination settings, nodes.
pub fn effective_config(config: &Value) -> Vec<String> {
    let value_of = |v: &Value| -> String {
        let (value, user) = match v.get("value") {
            Some(inner) => (inner, v.get("from").and_then(Value::as_str) == Some("user")),
            None => (v, false),
        };
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if user {
            format!("{text}*")
        } else {
            text
        }
    };
    let mut out = Vec::new();
    let workload = &config["workload"];
    if let Some(kind) = workload["kind"].as_str() {
        out.push(format!("workload={kind}"));
    }
    if let Some(rate) = workload["rate"].as_f64() {
        // The offered load: ratios of throughput mean little between different rates.
        out.push(format!("rate={}/s", number(rate)));
    }
    if let Some(ack) = workload["ack"].as_str() {
        out.push(format!("ack={ack}*"));
    }
    for (side, keys) in [("producer", &PRODUCER_KEYS[..]), ("consumer", &CONSUMER_KEYS[..])] {
        if let Some(props) = config["client"][side].as_object() {
            for key in keys {
                if let Some(v) = props.get(*key) {
                    out.push(format!("{key}={}", value_of(v)));
                }
            }
        }
    }
    if let Some(dest) = config["dest_settings"].as_object() {
        for (k, v) in dest {
            match v.as_object() {
                Some(inner) if !inner.contains_key("value") => {
                    for (ik, iv) in inner {
                        out.push(format!("{ik}={}", value_of(iv)));
                    }
                }
                _ => out.push(format!("{k}={}", value_of(v))),
            }
        }
    }
    if let Some(n) = config["nodes"].as_u64() {
        if n > 1 {
            out.push(format!("nodes={n}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_numbers_read_plainly() {
        assert_eq!(range([38.2, 112.4, 50.0]), "38–112");
        assert_eq!(range([0.0, 0.0]), "0");
        assert_eq!(range([0.25, 1.5]), "0.25–1.5");
        assert_eq!(range(Vec::<f64>::new()), "–");
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), Some(2.0));
    }

    #[test]
    fn the_effective_configuration_keeps_what_decides_the_guarantee() {
        let config: Value = serde_json::json!({
            "mode": "at-least-once", "nodes": 3,
            "workload": {"kind": "queue", "ack": "before"},
            "client": {"producer": {"acks": {"from": "preset", "value": "all"}, "linger.ms": {"from": "preset", "value": "5"}},
                       "consumer": {"enable.auto.commit": {"from": "user", "value": "true"}}},
            "dest_settings": {"queue_type": "quorum", "topic_configs": {"min.insync.replicas": "2"}}
        });
        assert_eq!(
            effective_config(&config),
            [
                "workload=queue",
                "ack=before*",
                "acks=all",
                "enable.auto.commit=true*",
                "queue_type=quorum",
                "min.insync.replicas=2",
                "nodes=3"
            ]
        );
    }
}
