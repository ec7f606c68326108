//! Client crashes (workload faults): a schedule from the seed says when which consumer or
//! processor slot crashes and at which point of its next batch; the slot's task carries it out.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

use super::Ctx;

/// Where in its next batch a client crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// After receiving, before the first step (commit or processing).
    Early,
    /// Between the mode's two steps: after committing and before processing (at-most-once),
    /// after processing and before committing (at-least-once, exactly-once).
    Late,
    /// A processor that wrote its transaction stalls before committing, is replaced, and then
    /// tries to commit (a zombie the broker must fence).
    Stall,
}

/// One planned crash.
#[derive(Debug, Clone, PartialEq)]
pub struct CrashPlan {
    pub at: Duration,
    pub slot: usize,
    pub point: Point,
}

impl fmt::Display for CrashPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let point = match self.point {
            Point::Early => "after receiving",
            Point::Late => "between its two steps",
            Point::Stall => "stalled before commit, replaced, then committing",
        };
        write!(
            f,
            "at {:.1} s: client slot {} crashes {point}",
            self.at.as_secs_f64(),
            self.slot
        )
    }
}

/// The crashes of a run of `duration` with `slots` crashable clients, from the seed alone.
/// Mean `interval` seconds apart (exponential gaps); none when `interval` is 0.
pub fn schedule(seed: u64, interval: f64, slots: usize, duration: Duration, processors: bool) -> Vec<CrashPlan> {
    let mut plan = Vec::new();
    if interval <= 0.0 || slots == 0 {
        return plan;
    }
    // Its own stream, apart from the nemesis's, so that changing one does not move the other.
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x6372_6173_6865_7321);
    let mut at = 0.0;
    loop {
        let u: f64 = rng.gen_range(f64::EPSILON..1.0);
        at += -u.ln() * interval;
        if at >= duration.as_secs_f64() {
            return plan;
        }
        let slot = rng.gen_range(0..slots);
        let point = match rng.gen_range(0..if processors { 3 } else { 2 }) {
            0 => Point::Early,
            1 => Point::Late,
            _ => Point::Stall,
        };
        plan.push(CrashPlan {
            at: Duration::from_secs_f64(at),
            slot,
            point,
        });
    }
}

/// Pending crashes, one per slot, taken by the slot's task at its next batch.
#[derive(Debug)]
pub(super) struct Board {
    pending: Mutex<Vec<Option<Point>>>,
}

impl Board {
    pub(super) fn new(slots: usize) -> Board {
        Board {
            pending: Mutex::new(vec![None; slots]),
        }
    }

    fn set(&self, slot: usize, point: Point) {
        if let Some(p) = self.pending.lock().unwrap_or_else(|p| p.into_inner()).get_mut(slot) {
            *p = Some(point);
        }
    }

    pub(super) fn take(&self, slot: Option<usize>) -> Option<Point> {
        let slot = slot?;
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(slot)?
            .take()
    }
}

/// Arm each planned crash at its time, until `stop`.
pub(super) async fn inject(ctx: Arc<Ctx>, plan: Vec<CrashPlan>, stop: CancellationToken) {
    let started = Instant::now();
    for crash in plan {
        tokio::select! {
            _ = tokio::time::sleep_until((started + crash.at).into()) => ctx.crashes.set(crash.slot, crash.point),
            _ = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_crashes() {
        let a = schedule(7, 5.0, 3, Duration::from_secs(60), true);
        assert_eq!(a, schedule(7, 5.0, 3, Duration::from_secs(60), true));
        assert_ne!(a, schedule(8, 5.0, 3, Duration::from_secs(60), true));
        assert!(a.len() > 3 && a.iter().all(|c| c.slot < 3 && c.at < Duration::from_secs(60)));
        assert!(schedule(7, 5.0, 3, Duration::from_secs(60), false)
            .iter()
            .all(|c| c.point != Point::Stall));
        assert!(schedule(7, 0.0, 3, Duration::from_secs(60), true).is_empty());
    }
}
