//! The seeded schedule: which fault, on which node, when and for how long, from the seed alone,
//! so that a seed replays the same faults.

use std::fmt;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{FaultKind, NemesisConfig, Target};
use crate::seeded::{jitter_factor, Deck};

/// One fault of the schedule. Times are nominal: a fault starts at `at`, or, when healing the
/// previous one took longer than planned, once the cluster is healthy again and half its `wait`
/// (at least `nemesis::MIN_QUIET`) has passed, so that slow restarts delay faults instead of dropping them.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledFault {
    /// Nominal start, from the start of the run.
    pub at: Duration,
    /// Quiet time before this fault.
    pub wait: Duration,
    pub kind: FaultKind,
    pub duration: Duration,
    /// The node drawn from the seed; with a `target` other than random, only the fallback when
    /// the node it names is not known when the fault starts.
    pub node: usize,
    /// Whom the fault hits, decided when it starts.
    pub target: Target,
}

impl fmt::Display for ScheduledFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (at, dur) = (self.at.as_secs_f64(), self.duration.as_secs_f64());
        if self.target != Target::Random {
            write!(
                f,
                "at {at:.1} s: {} {} (else node {}) for {dur:.1} s",
                self.kind,
                self.target.describe(),
                self.node
            )
        } else {
            write!(f, "at {at:.1} s: {} node {} for {dur:.1} s", self.kind, self.node)
        }
    }
}

/// The schedule: from the seed alone, jittered uniformly within ±50 % of the configured means.
/// Kinds are dealt from a shuffled deck of the configured kinds, refilled when empty, so that every
/// kind comes up as often as any other (±1): independent draws left a kind out of a 60 s run, or
/// gave it once, and the evidence grade asks for each kind at least twice.
pub fn schedule(config: &NemesisConfig, seed: u64, nodes: usize, run_for: Duration) -> Vec<ScheduledFault> {
    let mut faults = Vec::new();
    if config.faults.is_empty() || nodes == 0 || config.validate().is_err() {
        return faults;
    }
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut end_of_last = Duration::ZERO;
    let mut deck = Deck::new(&config.faults);
    loop {
        let wait = jitter(&mut rng, config.interval);
        let Some(kind) = deck.deal(&mut rng) else {
            return faults;
        };
        let node = rng.gen_range(0..nodes);
        let duration = jitter(&mut rng, config.duration);
        let at = end_of_last + wait;
        if at + duration > run_for {
            return faults;
        }
        end_of_last = at + duration;
        faults.push(ScheduledFault {
            at,
            wait,
            kind,
            duration,
            node,
            target: config.target,
        });
    }
}

/// `mean` seconds × a factor in [0.5, 1.5], in whole milliseconds.
fn jitter(rng: &mut SmallRng, mean: f64) -> Duration {
    Duration::from_millis((mean * jitter_factor(rng) * 1000.0).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::{FaultKind, NemesisConfig, Target};

    fn config(faults: &[FaultKind], interval: f64, duration: f64) -> NemesisConfig {
        NemesisConfig {
            faults: faults.to_vec(),
            interval,
            duration,
            target: Target::Random,
            steps: Vec::new(),
        }
    }

    const ALL: [FaultKind; 5] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::LoseAcks,
        FaultKind::Reset,
        FaultKind::Latency,
    ];
    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_another_seed_another() {
        let c = config(&ALL, 2.0, 3.0);
        let a = schedule(&c, 7, 3, MINUTE);
        assert!(
            a.len() >= 5,
            "a minute of 2 s gaps and 3 s faults holds several faults: {a:?}"
        );
        assert_eq!(a, schedule(&c, 7, 3, MINUTE));
        assert_ne!(a, schedule(&c, 8, 3, MINUTE));
    }

    #[test]
    fn kinds_come_only_from_the_config_and_nodes_from_the_cluster() {
        let c = config(&[FaultKind::Pause, FaultKind::LoseAcks], 1.0, 1.0);
        for seed in 0..50 {
            for fault in schedule(&c, seed, 3, MINUTE) {
                assert!(c.faults.contains(&fault.kind), "{fault}");
                assert!(fault.node < 3, "{fault}");
            }
        }
        let kinds: std::collections::HashSet<_> = schedule(&c, 1, 3, MINUTE).iter().map(|f| f.kind).collect();
        assert_eq!(kinds.len(), 2, "over a minute both kinds are drawn");
    }

    #[test]
    fn every_kind_comes_up_as_often_as_any_other() {
        for seed in 0..50 {
            let faults = schedule(&config(&ALL, 1.0, 1.0), seed, 1, MINUTE);
            let count = |k: FaultKind| faults.iter().filter(|f| f.kind == k).count();
            let counts: Vec<usize> = ALL.iter().map(|&k| count(k)).collect();
            let (least, most) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(most - least <= 1, "seed {seed}: {counts:?}");
            assert!(
                *least >= 2,
                "a minute of 2 s cycles deals each of 5 kinds at least twice: {counts:?}"
            );
        }
    }

    #[test]
    fn faults_never_overlap_and_end_within_the_run() {
        for seed in 0..50 {
            let faults = schedule(&config(&ALL, 0.5, 2.0), seed, 1, Duration::from_secs(30));
            let mut end_of_last = Duration::ZERO;
            for fault in &faults {
                assert_eq!(
                    fault.at,
                    end_of_last + fault.wait,
                    "each fault starts a quiet wait after the previous ended: {fault}"
                );
                assert!(fault.at >= end_of_last);
                end_of_last = fault.at + fault.duration;
            }
            assert!(end_of_last <= Duration::from_secs(30));
        }
    }

    #[test]
    fn durations_and_waits_stay_within_half_and_one_and_a_half_times_the_mean() {
        for seed in 0..50 {
            for fault in schedule(&config(&ALL, 4.0, 2.0), seed, 1, Duration::from_secs(120)) {
                assert!((2.0..=6.0).contains(&fault.wait.as_secs_f64()), "{fault:?}");
                assert!((1.0..=3.0).contains(&fault.duration.as_secs_f64()), "{fault:?}");
            }
        }
    }

    #[test]
    fn no_faults_configured_or_impossible_values_give_an_empty_schedule() {
        assert!(schedule(&config(&[], 1.0, 1.0), 1, 1, MINUTE).is_empty());
        assert!(schedule(&config(&ALL, 1.0, 0.0), 1, 1, MINUTE).is_empty());
        assert!(
            schedule(&config(&ALL, 1.0, 1.0), 1, 1, Duration::from_millis(400)).is_empty(),
            "no fault fits"
        );
        assert!(config(&ALL, -1.0, 1.0)
            .validate()
            .unwrap_err()
            .contains("nemesis.interval"));
        assert!(config(&ALL, 1.0, f64::NAN)
            .validate()
            .unwrap_err()
            .contains("nemesis.duration"));
        assert!(config(&ALL, 0.0, 1.0).validate().is_ok());
    }

    #[test]
    fn leader_targeting_is_marked_and_shown() {
        let mut c = config(&[FaultKind::Kill], 1.0, 1.0);
        c.target = Target::Leader;
        let faults = schedule(&c, 3, 3, MINUTE);
        assert!(faults.iter().all(|f| f.target == Target::Leader));
        assert!(
            faults[0].to_string().contains("kill the leader (else node"),
            "{}",
            faults[0]
        );
        c.target = Target::Coordinator;
        let faults = schedule(&c, 3, 3, MINUTE);
        assert!(
            faults[0]
                .to_string()
                .contains("kill the transaction coordinator (else node"),
            "{}",
            faults[0]
        );
        c.target = Target::Controller;
        let faults = schedule(&c, 3, 3, MINUTE);
        assert!(
            faults[0].to_string().contains("kill the controller (else node"),
            "{}",
            faults[0]
        );
        c.target = Target::Random;
        let faults = schedule(&c, 3, 3, MINUTE);
        assert!(!faults[0].to_string().contains("else"), "{}", faults[0]);
    }

    #[test]
    fn the_table_reads_kebab_case_and_rejects_unknown_keys() {
        let c: NemesisConfig =
            toml::from_str("faults = [\"kill\", \"lose-acks\"]\ninterval = 2.5\ntarget = \"leader\"").unwrap();
        assert_eq!(c.faults, vec![FaultKind::Kill, FaultKind::LoseAcks]);
        assert_eq!((c.interval, c.duration, c.target), (2.5, 5.0, Target::Leader));
        assert_eq!(toml::from_str::<NemesisConfig>("").unwrap(), NemesisConfig::default());
        assert!(toml::from_str::<NemesisConfig>("faults = [\"kill\"]\nintervall = 2").is_err());
        assert!(toml::from_str::<NemesisConfig>("faults = [\"partition\"]").is_err());
    }
}
