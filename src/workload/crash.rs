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
    /// A processor application's instance is killed with SIGKILL wherever it is: ackcheck does
    /// not see its batches, so it cannot choose a point in one.
    Kill,
}

/// One planned crash.
#[derive(Debug, Clone, PartialEq)]
pub struct CrashPlan {
    pub at: Duration,
    pub slot: usize,
    pub point: Point,
}

impl Point {
    /// The plan's name for it, recorded as `planned` in crash events: `early`, `late`, `stall`.
    pub fn name(self) -> &'static str {
        match self {
            Point::Early => "early",
            Point::Late => "late",
            Point::Stall => "stall",
            Point::Kill => "kill",
        }
    }
}

impl fmt::Display for CrashPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let point = match self.point {
            Point::Early => "after receiving",
            Point::Late => "between its two steps",
            Point::Stall => "stalled before commit, replaced, then committing",
            Point::Kill => "killed with SIGKILL wherever it is",
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

/// A crash its slot has not taken this long after its planned time is given up: the slot had
/// nothing to consume (its group rebalancing, its broker down), and carrying the crash out later,
/// at the first batch after recovery, crashed members in bursts that kept groups from recovering.
pub const STALE_CRASH: Duration = Duration::from_secs(5);

/// Pending crashes, one per slot, taken by the slot's task at its next batch.
#[derive(Debug)]
pub(super) struct Board {
    pending: Mutex<Vec<Option<(Point, Instant)>>>,
}

impl Board {
    pub(super) fn new(slots: usize) -> Board {
        Board {
            pending: Mutex::new(vec![None; slots]),
        }
    }

    /// Plan a crash at the next batch of `slot`, or, when that slot has not taken its previous
    /// crash yet (its replacement is still connecting), of the next slot without one: a crash
    /// planned soon after another on the same slot used to replace it, and a third of the
    /// crashes of a run were lost that way. Returns the slot, or `None` when every slot still
    /// has a crash pending.
    fn set(&self, slot: usize, point: Point) -> Option<usize> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let slots = pending.len();
        let free = (0..slots).map(|k| (slot + k) % slots).find(|&s| pending[s].is_none())?;
        pending[free] = Some((point, Instant::now()));
        Some(free)
    }

    /// Take every crash still pending: (slot, point).
    pub(super) fn clear(&self) -> Vec<(usize, Point)> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending
            .iter_mut()
            .enumerate()
            .filter_map(|(slot, p)| p.take().map(|(p, _)| (slot, p)))
            .collect()
    }

    /// The crash planned for `slot`'s batch in hand, if any; a stale one (see [`STALE_CRASH`]) is
    /// returned as `Err` with its point, to be recorded as skipped.
    pub(super) fn take(&self, slot: Option<usize>) -> Option<Result<Point, Point>> {
        let slot = slot?;
        let (point, armed) = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(slot)?
            .take()?;
        Some(match armed.elapsed() > STALE_CRASH {
            false => Ok(point),
            true => Err(point),
        })
    }
}

/// Arm each planned crash at its time, until `stop`. A crash that replaces one its slot has not
/// taken yet, and every crash not yet due at `stop`, is recorded as skipped with the reason.
pub(super) async fn inject(ctx: Arc<Ctx>, plan: Vec<CrashPlan>, stop: CancellationToken) {
    let started = Instant::now();
    let mut plan = plan.into_iter();
    for crash in plan.by_ref() {
        tokio::select! {
            _ = tokio::time::sleep_until((started + crash.at).into()) => {
                if ctx.crashes.set(crash.slot, crash.point).is_none() {
                    let reason = format!(
                        "every client slot still had a planned crash pending at {:.1} s (none had received a batch since)",
                        crash.at.as_secs_f64()
                    );
                    ctx.crash_skipped(crash.slot, crash.point, &reason);
                }
            }
            _ = stop.cancelled() => {
                ctx.crash_skipped(crash.slot, crash.point, &format!("the run phase ended before it was due at {:.1} s", crash.at.as_secs_f64()));
                break;
            }
        }
    }
    for crash in plan {
        let reason = format!(
            "the run phase ended before it was due at {:.1} s",
            crash.at.as_secs_f64()
        );
        ctx.crash_skipped(crash.slot, crash.point, &reason);
    }
}

/// At the end of the run phase: record every armed crash whose slot has not taken it.
pub(super) fn give_up_pending(ctx: &Ctx) {
    for (slot, point) in ctx.crashes.clear() {
        ctx.crash_skipped(
            slot,
            point,
            &format!("the run phase ended before slot {slot} received another batch"),
        );
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
