//! The per-second series of a run, folded from its history in one streaming pass: memory grows
//! with the run's length in seconds (a fixed-size bucket each), never with its events.

use std::collections::BTreeMap;

use crate::history::reader::{HistoryError, HistoryReader, Item};
use crate::history::{ops, EventType, Header, Process};

/// Latency buckets per doubling: quantiles are read as a bucket's upper bound, at most
/// 2^(1/4) ≈ 19 % above the true value — plenty for a plot.
const STEPS_PER_OCTAVE: f64 = 4.0;
/// From 1 µs to 2^36 µs (19 hours): longer is clamped into the last bucket.
const LATENCY_BUCKETS: usize = 36 * 4;
/// Client crashes kept with their time (ticks on the timeline); past this they are only counted.
const MAX_CRASH_TICKS: usize = 100_000;

/// A log-scale histogram of send latencies (invocation to `ok`), in microseconds.
#[derive(Debug, Clone)]
pub(crate) struct LatencyHistogram {
    counts: [u32; LATENCY_BUCKETS],
    total: u64,
    max_micros: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            counts: [0; LATENCY_BUCKETS],
            total: 0,
            max_micros: 0,
        }
    }
}

impl LatencyHistogram {
    fn bucket_of(micros: u64) -> usize {
        let log = (micros.max(1) as f64).log2() * STEPS_PER_OCTAVE;
        (log.ceil() as usize).min(LATENCY_BUCKETS - 1)
    }

    fn upper_bound_micros(bucket: usize) -> f64 {
        2f64.powf(bucket as f64 / STEPS_PER_OCTAVE)
    }

    pub fn record(&mut self, nanos: u64) {
        let micros = nanos / 1000;
        self.counts[Self::bucket_of(micros)] += 1;
        self.total += 1;
        self.max_micros = self.max_micros.max(micros);
    }

    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max_micros = self.max_micros.max(other.max_micros);
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The `q` quantile (0–1) in milliseconds, never above the maximum seen.
    pub fn quantile_millis(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0u64;
        for (bucket, &n) in self.counts.iter().enumerate() {
            seen += u64::from(n);
            if seen >= rank {
                let bound = Self::upper_bound_micros(bucket).min(self.max_micros as f64);
                return Some(bound / 1000.0);
            }
        }
        Some(self.max_millis())
    }

    pub fn max_millis(&self) -> f64 {
        self.max_micros as f64 / 1000.0
    }
}

/// What happened in one second of the run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Second {
    /// Messages whose send ended `ok` in this second.
    pub acked: u64,
    /// Messages delivered (processed) in this second.
    pub delivered: u64,
    /// Send operations that ended `info` (unknown outcome) in this second.
    pub unknown: u64,
    /// Send operations that ended `fail`.
    pub failed: u64,
    pub latency: LatencyHistogram,
}

impl Second {
    pub fn merge(&mut self, other: &Second) {
        self.acked += other.acked;
        self.delivered += other.delivered;
        self.unknown += other.unknown;
        self.failed += other.failed;
        self.latency.merge(&other.latency);
    }
}

/// The run, second by second.
#[derive(Debug, Default)]
pub(crate) struct Timeline {
    pub header: Option<Header>,
    /// Second since the start → what happened in it (seconds without events are absent).
    pub seconds: BTreeMap<u64, Second>,
    /// Client crashes (nanoseconds), the first [`MAX_CRASH_TICKS`].
    pub crashes: Vec<u64>,
    pub crashes_total: u64,
    /// When the final drain was invoked.
    pub drain_started: Option<u64>,
    /// The time of the last event (nanoseconds).
    pub end: u64,
    pub events: u64,
    /// Send operations that never completed (their outcome is unknown; they have no time).
    pub unfinished_sends: u64,
}

impl Timeline {
    /// One pass over a history.
    pub fn scan(mut reader: HistoryReader) -> Result<Timeline, HistoryError> {
        let mut t = Timeline::default();
        while let Some(item) = reader.next_item() {
            match item? {
                Item::Header(h) => t.header = Some(h.clone()),
                Item::Unfinished { invocation, .. } => {
                    if invocation.f() == ops::SEND {
                        t.unfinished_sends += 1;
                    }
                }
                Item::Event { event, invocation, .. } => {
                    let e = event.event;
                    t.events += 1;
                    t.end = t.end.max(e.time);
                    let f = event.f();
                    let second = e.time / 1_000_000_000;
                    match (f, e.kind) {
                        (ops::SEND, EventType::Ok) => {
                            // A completion may leave its messages to the invocation.
                            let messages = match event.messages().len() {
                                0 => invocation.map_or(0, |i| i.messages().len()),
                                n => n,
                            };
                            let s = t.seconds.entry(second).or_default();
                            s.acked += messages as u64;
                            if let Some(i) = invocation {
                                s.latency.record(e.time.saturating_sub(i.event.time));
                            }
                        }
                        (ops::SEND, EventType::Info) => t.seconds.entry(second).or_default().unknown += 1,
                        (ops::SEND, EventType::Fail) => t.seconds.entry(second).or_default().failed += 1,
                        (ops::DELIVER, EventType::Ok) => {
                            t.seconds.entry(second).or_default().delivered += event.messages().len() as u64;
                        }
                        (ops::CRASH, EventType::Info) if matches!(e.process, Process::Client(_)) => {
                            t.crashes_total += 1;
                            if t.crashes.len() < MAX_CRASH_TICKS {
                                t.crashes.push(e.time);
                            }
                        }
                        (ops::DRAIN, EventType::Invoke) => t.drain_started = Some(e.time),
                        _ => {}
                    }
                }
            }
        }
        Ok(t)
    }

    /// The series in buckets of `width` seconds (so that a long run still plots as at most a
    /// few thousand points): bucket start (s) → the sum of its seconds.
    pub fn bucketed(&self, width: u64) -> Vec<(u64, Second)> {
        let width = width.max(1);
        let mut out: Vec<(u64, Second)> = Vec::new();
        for (&s, second) in &self.seconds {
            let start = s / width * width;
            match out.last_mut() {
                Some((at, sum)) if *at == start => sum.merge(second),
                _ => out.push((start, second.clone())),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_stay_within_a_bucket_of_the_truth() {
        let mut h = LatencyHistogram::default();
        for ms in 1..=100u64 {
            h.record(ms * 1_000_000);
        }
        let p50 = h.quantile_millis(0.5).expect("not empty");
        assert!((50.0..=50.0 * 1.19).contains(&p50), "{p50}");
        let p99 = h.quantile_millis(0.99).expect("not empty");
        assert!((99.0..=100.0).contains(&p99), "{p99}");
        assert_eq!(h.max_millis(), 100.0);
        assert!(LatencyHistogram::default().quantile_millis(0.5).is_none());
    }

    #[test]
    fn one_pass_counts_acks_deliveries_unknowns_and_crashes_per_second() {
        let history = [
            r#"{"history":1,"claim":"at-least-once","seed":3}"#,
            r#"{"index":0,"time":100000000,"process":0,"type":"invoke","f":"send","op":1,"value":{"messages":[{"id":"a"},{"id":"b"}]}}"#,
            r#"{"index":1,"time":300000000,"process":0,"type":"ok","f":"send","op":1}"#,
            r#"{"index":2,"time":400000000,"process":1,"type":"invoke","f":"send","op":2,"value":{"messages":[{"id":"c"}]}}"#,
            r#"{"index":3,"time":1500000000,"process":1,"type":"info","f":"send","op":2,"error":"timeout"}"#,
            r#"{"index":4,"time":1600000000,"process":2,"type":"ok","f":"deliver","value":{"group":"g","messages":[{"id":"a"},{"id":"b"},{"id":"c"}]}}"#,
            r#"{"index":5,"time":2100000000,"process":2,"type":"info","f":"crash","error":"crashed"}"#,
            r#"{"index":6,"time":2200000000,"process":3,"type":"invoke","f":"drain"}"#,
            r#"{"index":7,"time":2300000000,"process":3,"type":"ok","f":"drain"}"#,
        ]
        .join("\n");
        let t = Timeline::scan(HistoryReader::from_bytes(history.into_bytes())).expect("a valid history");
        assert_eq!(t.header.as_ref().and_then(|h| h.seed), Some(3));
        assert_eq!(t.seconds[&0].acked, 2);
        let latency = t.seconds[&0].latency.quantile_millis(0.5).expect("one send");
        assert!((200.0..=240.0).contains(&latency), "{latency}");
        assert_eq!(t.seconds[&1].unknown, 1);
        assert_eq!(t.seconds[&1].delivered, 3);
        assert_eq!(t.crashes, vec![2_100_000_000]);
        assert_eq!(t.drain_started, Some(2_200_000_000));
        assert_eq!(t.end, 2_300_000_000);
        let buckets = t.bucketed(2);
        assert_eq!(buckets.len(), 1);
        assert_eq!((buckets[0].1.acked, buckets[0].1.delivered), (2, 3));
    }
}
