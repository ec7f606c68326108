//! Client crashes (workload faults): a schedule from the seed says when which consumer or
//! processor slot crashes and at which point of its next batch; the slot's task carries it out.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

use super::Ctx;
use crate::seeded::{jitter_factor, Deck};

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
    /// A processor application's instance is killed with SIGKILL at a moment it is processing
    /// (it reported inputs since the previous look): ackcheck does not see its batches, so it
    /// cannot choose a point in one.
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
            Point::Kill => "killed with SIGKILL while processing",
        };
        write!(
            f,
            "at {:.1} s: client slot {} crashes {point}",
            self.at.as_secs_f64(),
            self.slot
        )
    }
}

/// No crash is planned in the last this of the run phase: a crash there could not be carried
/// out (its slot must have been receiving for [`RESUMED_FOR`] first) and its group would have no
/// time left to recover before the drain, so it could only be recorded as skipped.
pub const CRASH_FREE_TAIL: Duration = Duration::from_secs(6);

/// The crashes of a run of `duration` with `slots` crashable clients, from the seed alone.
/// `interval` seconds apart on average, each gap jittered uniformly within ±50 % (exponential
/// gaps came in bursts that left every slot with a crash pending and the rest of the plan
/// undone); none when `interval` is 0. The crash points are dealt from a shuffled deck, refilled
/// when empty, so that each point the mode depends on comes up as often as any other (±1).
pub fn schedule(seed: u64, interval: f64, slots: usize, duration: Duration, processors: bool) -> Vec<CrashPlan> {
    let mut plan = Vec::new();
    if interval <= 0.0 || slots == 0 {
        return plan;
    }
    // Its own stream, apart from the nemesis's, so that changing one does not move the other.
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x6372_6173_6865_7321);
    let last = duration.saturating_sub(CRASH_FREE_TAIL).as_secs_f64();
    let points: &[Point] = if processors {
        &[Point::Early, Point::Late, Point::Stall]
    } else {
        &[Point::Early, Point::Late]
    };
    let mut deck = Deck::new(points);
    let mut at = 0.0;
    loop {
        at += interval * jitter_factor(&mut rng);
        if at >= last {
            return plan;
        }
        let Some(point) = deck.deal(&mut rng) else {
            return plan;
        };
        let slot = rng.gen_range(0..slots);
        plan.push(CrashPlan {
            at: Duration::from_secs_f64(at),
            slot,
            point,
        });
    }
}

/// A slot whose previous batch is older than this was idle (its group rebalancing, its broker
/// down, nothing to consume): a crash planned meanwhile is not carried out at its first batch
/// after that, but [`RESUMED_FOR`] later, so that a recovering group is not hit at once.
pub const IDLE_SLOT: Duration = Duration::from_secs(5);

/// How long a slot must have been receiving again (after being idle, or since its previous
/// crash) before it takes a pending crash: crashes carried out at the first batch after a
/// recovery came in bursts that kept groups from ever recovering, and giving such crashes up
/// instead left most of a Kafka run's planned crashes undone.
pub const RESUMED_FOR: Duration = Duration::from_secs(3);

/// A planned crash waiting for its slot's next batch.
#[derive(Debug, Clone, Copy)]
struct Pending {
    point: Point,
    /// Not before this: [`RESUMED_FOR`] after the slot's previous crash, or after it came back
    /// from being idle.
    not_before: Instant,
}

/// Pending crashes, one per slot, taken by the slot's task at a batch.
#[derive(Debug)]
pub(super) struct Board {
    slots: Mutex<Vec<SlotState>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct SlotState {
    pending: Option<Pending>,
    /// When the slot last had a batch in hand (asked for its crash).
    last_batch: Option<Instant>,
    /// When it last crashed.
    last_crash: Option<Instant>,
}

impl Board {
    pub(super) fn new(slots: usize) -> Board {
        Board {
            slots: Mutex::new(vec![SlotState::default(); slots]),
        }
    }

    /// Plan a crash at a coming batch of `slot`, or, when that slot has not taken its previous
    /// crash yet (its replacement is still connecting), of the next slot without one: a crash
    /// planned soon after another on the same slot used to replace it, and a third of the
    /// crashes of a run were lost that way. Returns the slot, or `None` when every slot still
    /// has a crash pending (the injector then waits for one to be taken).
    fn set(&self, slot: usize, point: Point) -> Option<usize> {
        let now = Instant::now();
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let count = slots.len();
        let free = (0..count)
            .map(|k| (slot + k) % count)
            .find(|&s| slots[s].pending.is_none())?;
        let state = &mut slots[free];
        let not_before = state.last_crash.map_or(now, |at| (at + RESUMED_FOR).max(now));
        state.pending = Some(Pending { point, not_before });
        Some(free)
    }

    /// Take every crash still pending: (slot, point).
    pub(super) fn clear(&self) -> Vec<(usize, Point)> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .iter_mut()
            .enumerate()
            .filter_map(|(slot, s)| s.pending.take().map(|p| (slot, p.point)))
            .collect()
    }

    /// At a batch of `slot`: the crash to carry out at it, if one is pending and due.
    pub(super) fn take(&self, slot: Option<usize>) -> Option<Point> {
        self.take_at(slot?, Instant::now())
    }

    fn take_at(&self, slot: usize, now: Instant) -> Option<Point> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let state = slots.get_mut(slot)?;
        let was_idle = state
            .last_batch
            .is_none_or(|at| now.saturating_duration_since(at) > IDLE_SLOT);
        state.last_batch = Some(now);
        let pending = state.pending.as_mut()?;
        if was_idle {
            // Back from idle: let the slot (and its group) run for a while first.
            pending.not_before = pending.not_before.max(now + RESUMED_FOR);
            return None;
        }
        if now < pending.not_before {
            return None;
        }
        let point = pending.point;
        state.pending = None;
        state.last_crash = Some(now);
        Some(point)
    }
}

/// Arm each planned crash at its time, until `stop`. A crash that replaces one its slot has not
/// taken yet, and every crash not yet due at `stop`, is recorded as skipped with the reason.
pub(super) async fn inject(ctx: Arc<Ctx>, plan: Vec<CrashPlan>, stop: CancellationToken) {
    let started = Instant::now();
    let mut plan = plan.into_iter();
    'plan: for crash in plan.by_ref() {
        tokio::select! {
            _ = tokio::time::sleep_until((started + crash.at).into()) => {}
            _ = stop.cancelled() => {
                ctx.crash_skipped(crash.slot, crash.point, &format!("the run phase ended before it was due at {:.1} s", crash.at.as_secs_f64()));
                break;
            }
        }
        // Every slot still has a crash pending (none has had a batch since): wait for one to
        // be taken rather than drop this one; the ones after it wait their turn.
        while ctx.crashes.set(crash.slot, crash.point).is_none() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = stop.cancelled() => {
                    let reason = format!(
                        "the run phase ended while every client slot still had an earlier crash pending (due at {:.1} s)",
                        crash.at.as_secs_f64()
                    );
                    ctx.crash_skipped(crash.slot, crash.point, &reason);
                    break 'plan;
                }
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
    fn a_crash_waits_until_its_slot_has_run_for_a_while() {
        let board = Board::new(2);
        let t0 = Instant::now();
        // Slot 0 is receiving steadily: a fresh crash is taken at its next batch.
        assert_eq!(board.take_at(0, t0), None, "nothing pending");
        assert_eq!(board.set(0, Point::Early), Some(0));
        assert_eq!(board.take_at(0, t0 + Duration::from_secs(1)), Some(Point::Early));
        // The next crash of that slot waits RESUMED_FOR after the last one.
        assert_eq!(board.set(0, Point::Late), Some(0));
        assert_eq!(board.take_at(0, t0 + Duration::from_secs(2)), None);
        assert_eq!(board.take_at(0, t0 + Duration::from_secs(4)), Some(Point::Late));
        // A slot back from being idle is left to run RESUMED_FOR first; the crash is kept.
        assert_eq!(board.set(0, Point::Early), Some(0));
        let back = t0 + Duration::from_secs(20);
        assert_eq!(board.take_at(0, back), None, "first batch after 16 s idle");
        assert_eq!(board.take_at(0, back + Duration::from_secs(1)), None);
        assert_eq!(board.take_at(0, back + Duration::from_secs(3)), Some(Point::Early));
        // With every slot holding a pending crash, set says so (the injector waits).
        assert_eq!(board.set(0, Point::Early), Some(0));
        assert_eq!(board.set(0, Point::Late), Some(1));
        assert_eq!(board.set(1, Point::Late), None);
        assert_eq!(board.clear(), vec![(0, Point::Early), (1, Point::Late)]);
    }

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

    #[test]
    fn crashes_are_spread_over_the_run_and_deal_every_point() {
        for seed in 1..=50 {
            let plan = schedule(seed, 8.0, 2, Duration::from_secs(60), true);
            // Gaps of 4 to 12 s over the 54 s before the crash-free tail: 4 to 13 crashes.
            assert!((4..=13).contains(&plan.len()), "seed {seed}: {plan:?}");
            assert!(
                plan.iter().all(|c| c.at < Duration::from_secs(54)),
                "seed {seed}: {plan:?}"
            );
            for pair in plan.windows(2) {
                let gap = (pair[1].at - pair[0].at).as_secs_f64();
                assert!((3.99..=12.01).contains(&gap), "seed {seed}: gap {gap}");
            }
            // The first three crashes are one of each point, whatever the seed.
            let mut first: Vec<&str> = plan[..3].iter().map(|c| c.point.name()).collect();
            first.sort_unstable();
            assert_eq!(first, ["early", "late", "stall"], "seed {seed}");
        }
    }
}
