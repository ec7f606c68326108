//! Shared state of a running workload: live counters, the tracker that tells the drain when
//! every acknowledged message has arrived, the idempotent consumers' effect store, the pacer.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Live counters (the progress line, the drain's quiet time).
#[derive(Debug)]
pub struct Stats {
    started: Instant,
    pub sends: AtomicU64,
    pub acked: AtomicU64,
    pub failed: AtomicU64,
    pub indeterminate: AtomicU64,
    pub deliveries: AtomicU64,
    /// Copies an idempotent consumer received again and skipped.
    pub skipped: AtomicU64,
    pub crashes: AtomicU64,
    /// Milliseconds since the start at the last delivery or committed transaction.
    last_activity_ms: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            started: Instant::now(),
            sends: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            indeterminate: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            crashes: AtomicU64::new(0),
            last_activity_ms: AtomicU64::new(0),
        }
    }
}

impl Stats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(super) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Something was delivered or committed just now.
    pub(super) fn touch(&self) {
        self.last_activity_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Time since the last delivery or committed transaction.
    pub fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

/// Which acknowledged messages each group has not seen yet. Messages are the producers'
/// `p<process>-<seq>`; a pipeline output counts for the message it came `from`. One byte per
/// message: bit 0 acknowledged, bit 1 + g delivered to group g.
#[derive(Debug, Default)]
pub struct Tracker {
    inner: Mutex<TrackerState>,
}

#[derive(Debug, Default)]
struct TrackerState {
    groups: usize,
    /// Indexed by producer process, then by sequence number.
    messages: Vec<Vec<u8>>,
    /// Per group: acknowledged and not yet delivered.
    outstanding: Vec<u64>,
}

const ACKED: u8 = 1;

/// `p3-17` → (3, 17).
pub fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (process, seq) = id.strip_prefix('p')?.split_once('-')?;
    Some((process.parse().ok()?, seq.parse().ok()?))
}

impl Tracker {
    pub fn new(groups: usize) -> Tracker {
        assert!(groups <= 7, "the tracker keeps one bit per group in a byte");
        let state = TrackerState {
            groups,
            messages: Vec::new(),
            outstanding: vec![0; groups],
        };
        Tracker {
            inner: Mutex::new(state),
        }
    }

    fn slot(s: &mut TrackerState, process: u64, seq: u64) -> &mut u8 {
        let (p, q) = (process as usize, seq as usize);
        if s.messages.len() <= p {
            s.messages.resize_with(p + 1, Vec::new);
        }
        let v = &mut s.messages[p];
        if v.len() <= q {
            v.resize((q + 1).max(v.len() * 2), 0);
        }
        &mut v[q]
    }

    pub fn acked(&self, process: u64, seq: u64) {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let groups = s.groups;
        let state = *Self::slot(&mut s, process, seq);
        if state & ACKED != 0 {
            return;
        }
        *Self::slot(&mut s, process, seq) |= ACKED;
        for g in 0..groups {
            if state & (2 << g) == 0 {
                s.outstanding[g] += 1;
            }
        }
    }

    /// A delivery to group `group` of the message `id` (or of the one it came from).
    pub fn delivered(&self, group: usize, id: &str) {
        let Some((process, seq)) = parse_id(id) else { return };
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let slot = Self::slot(&mut s, process, seq);
        let state = *slot;
        if state & (2 << group) != 0 {
            return;
        }
        *slot |= 2 << group;
        if state & ACKED != 0 {
            s.outstanding[group] -= 1;
        }
    }

    /// Whether group `group` has seen a delivery of `id` (or of a message derived from it).
    pub fn seen_by(&self, group: usize, id: &str) -> bool {
        let Some((process, seq)) = parse_id(id) else {
            return false;
        };
        let s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let slot = s
            .messages
            .get(process as usize)
            .and_then(|m| m.get(seq as usize))
            .copied()
            .unwrap_or(0);
        slot & (2 << group) != 0
    }

    /// Acknowledged messages some group has not seen yet (summed over groups).
    pub fn outstanding(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .outstanding
            .iter()
            .sum()
    }
}

/// What idempotent (exactly-once) consumers have processed, by group and key (a message id, or
/// a position where the broker cannot store a message twice): the application's own store,
/// kept outside the consumer clients, so that a copy processed before is recognized and
/// skipped, also by the replacement of a crashed consumer.
///
/// With a file, the store is durable: new keys are appended and synced to disk *before* the
/// effect is recorded, and opening the file again reads them back, as a real application's
/// database would survive its own restart.
#[derive(Debug, Default)]
pub struct EffectStore {
    inner: Mutex<EffectState>,
}

#[derive(Debug, Default)]
struct EffectState {
    seen: HashMap<String, HashSet<String>>,
    file: Option<(std::fs::File, std::path::PathBuf)>,
}

/// One processed key in the store's file: `["group","key"]`.
type EffectLine = (String, String);

impl EffectStore {
    /// A durable store in `path`, with what an earlier store there recorded.
    pub fn open(path: &std::path::Path) -> std::io::Result<EffectStore> {
        let mut state = EffectState::default();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        // A last line cut off by a crash mid-write is not a processed key; it is cut away so
        // that the next key starts on a line of its own.
        let whole = text.rfind('\n').map_or(0, |i| i + 1);
        for line in text[..whole].lines() {
            if let Ok((group, key)) = serde_json::from_str::<EffectLine>(line) {
                state.seen.entry(group).or_default().insert(key);
            }
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        if whole < text.len() {
            file.set_len(whole as u64)?;
        }
        state.file = Some((file, path.to_path_buf()));
        Ok(EffectStore {
            inner: Mutex::new(state),
        })
    }

    /// Mark keys as processed in `group`; returns which of them were new. With a file, the new
    /// keys are on disk when this returns.
    pub fn first_time(&self, group: &str, keys: impl Iterator<Item = String>) -> std::io::Result<Vec<bool>> {
        use std::io::Write;
        let mut state = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let EffectState { seen, file } = &mut *state;
        let set = seen.entry(group.to_string()).or_default();
        let mut lines = Vec::new();
        let fresh = keys
            .map(|k| {
                let new = !set.contains(&k);
                if new {
                    if file.is_some() {
                        let line = serde_json::to_string(&(group, &k)).expect("strings serialize");
                        lines.extend_from_slice(line.as_bytes());
                        lines.push(b'\n');
                    }
                    set.insert(k);
                }
                new
            })
            .collect();
        if let (Some((f, path)), false) = (file, lines.is_empty()) {
            let written = f.write_all(&lines).and_then(|()| f.sync_data());
            written.map_err(|e| {
                std::io::Error::new(e.kind(), format!("writing the effect store {}: {e}", path.display()))
            })?;
        }
        Ok(fresh)
    }
}

/// Which shares (Kafka: partitions) each member of each consumer group holds, as the members
/// last reported: a group whose members do not hold every share is still rebalancing, and its
/// silence says nothing yet. Members report after every receive, so one that has not reported
/// for a while is stuck in a call (a transaction commit waiting out a fenced epoch, say): its
/// shares are held but not read, and that silence says nothing either.
#[derive(Debug, Default)]
pub struct Membership {
    /// Group → (shares in all, member → shares it holds and when it said so).
    groups: Mutex<HashMap<String, GroupShares>>,
}

type GroupShares = (usize, HashMap<usize, (Option<usize>, Instant)>);

impl Membership {
    /// `group` reads `shares` shares in all.
    pub fn expect(&self, group: &str, shares: usize) {
        self.groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(group.to_string(), (shares, HashMap::new()));
    }

    pub fn report(&self, group: &str, member: usize, assigned: Option<usize>) {
        if let Some((_, members)) = self.groups.lock().unwrap_or_else(|p| p.into_inner()).get_mut(group) {
            members.insert(member, (assigned, Instant::now()));
        }
    }

    /// Every group's members hold all its shares (a member that cannot tell counts as holding),
    /// counting only members that reported within `busy`: a member silent for longer is stuck
    /// in a call and reads nothing.
    pub fn complete(&self, busy: Duration) -> bool {
        self.complete_at(Instant::now(), busy)
    }

    fn complete_at(&self, now: Instant, busy: Duration) -> bool {
        let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        groups.values().all(|(expected, members)| {
            let mut held = 0;
            for (assigned, at) in members.values() {
                match assigned {
                    None => return true,
                    Some(n) if now.saturating_duration_since(*at) < busy => held += n,
                    Some(_) => {}
                }
            }
            held >= *expected
        })
    }
}

/// Spreads sends over time at `rate` messages per second (0: no limit).
#[derive(Debug)]
pub struct Pacer {
    rate: f64,
    next: tokio::sync::Mutex<Instant>,
}

impl Pacer {
    pub fn new(rate: f64) -> Pacer {
        Pacer {
            rate,
            next: tokio::sync::Mutex::new(Instant::now()),
        }
    }

    /// Wait for the turn of `n` messages. A producer that fell behind (a fault held it up)
    /// does not catch up in a burst.
    pub async fn wait(&self, n: usize) {
        if self.rate <= 0.0 {
            return;
        }
        let at = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            if *next < now {
                *next = now;
            }
            let at = *next;
            *next += Duration::from_secs_f64(n as f64 / self.rate);
            at
        };
        tokio::time::sleep_until(at.into()).await;
    }
}

/// A well-mixed 64-bit hash of the seed and two numbers (SplitMix64 finalizer), so that the
/// workload's choices for a message depend on the seed and the message, not on timing.
pub fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut z = seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// [`mix`] as a number in [0, 1).
pub fn unit(seed: u64, a: u64, b: u64) -> f64 {
    (mix(seed, a, b) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tracker_counts_acknowledged_messages_not_yet_delivered_per_group() {
        let t = Tracker::new(2);
        t.acked(0, 0);
        t.acked(0, 1);
        assert_eq!(t.outstanding(), 4);
        t.delivered(0, "p0-0");
        t.delivered(0, "p0-0");
        t.delivered(1, "p0-5"); // delivered before its ack
        assert_eq!(t.outstanding(), 3);
        t.acked(0, 5);
        assert_eq!(t.outstanding(), 4, "p0-5 is still missing in group 0 only");
        t.acked(0, 0);
        assert_eq!(t.outstanding(), 4, "a second ack changes nothing");
        assert_eq!(parse_id("p12-345"), Some((12, 345)));
        assert_eq!(parse_id("x1"), None);
    }

    #[test]
    fn a_group_is_complete_when_its_members_hold_every_share() {
        let m = Membership::default();
        const BUSY: Duration = Duration::from_secs(5);
        m.expect("g", 4);
        assert!(!m.complete(BUSY));
        m.report("g", 0, Some(2));
        m.report("g", 1, Some(1));
        assert!(!m.complete(BUSY));
        m.report("g", 1, Some(2));
        assert!(m.complete(BUSY));
        m.report("g", 0, Some(0));
        assert!(!m.complete(BUSY), "a member that lost its shares in a rebalance");
        m.report("g", 0, Some(2));
        let now = Instant::now();
        assert!(m.complete_at(now, BUSY));
        assert!(
            !m.complete_at(now + BUSY, BUSY),
            "members silent for the whole quiet time are stuck in a call: their shares are not read"
        );
        m.report("g", 2, None);
        assert!(
            m.complete_at(now + BUSY, BUSY),
            "a member that cannot tell counts as holding"
        );
    }

    fn keys(k: &[&str]) -> impl Iterator<Item = String> {
        k.iter().map(|s| s.to_string()).collect::<Vec<_>>().into_iter()
    }

    #[test]
    fn the_effect_store_recognizes_keys_per_group() {
        let s = EffectStore::default();
        assert_eq!(s.first_time("g", keys(&["t/0@1", "t/0@2"])).unwrap(), vec![true, true]);
        assert_eq!(
            s.first_time("g", keys(&["t/0@2", "t/0@3", "t/0@3"])).unwrap(),
            vec![false, true, false]
        );
        assert_eq!(s.first_time("h", keys(&["t/0@2"])).unwrap(), vec![true]);
    }

    #[test]
    fn a_reopened_effect_store_remembers_what_was_processed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("effects.log");
        let s = EffectStore::open(&path).unwrap();
        assert_eq!(s.first_time("g", keys(&["p0-1", "p0-2"])).unwrap(), vec![true, true]);
        drop(s);
        // A crash cut the last line off mid-write.
        std::fs::write(
            &path,
            format!("{}[\"g\",\"p0-", std::fs::read_to_string(&path).unwrap()),
        )
        .unwrap();
        let s = EffectStore::open(&path).unwrap();
        assert_eq!(s.first_time("g", keys(&["p0-2", "p0-3"])).unwrap(), vec![false, true]);
        assert_eq!(s.first_time("other", keys(&["p0-2"])).unwrap(), vec![true]);
        let s = EffectStore::open(&path).unwrap();
        assert_eq!(s.first_time("g", keys(&["p0-1", "p0-3"])).unwrap(), vec![false, false]);
    }
}
