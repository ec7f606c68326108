//! Seeded draws shared by the plans made from a run's seed (the fault schedule, the client-crash
//! plan): the same seed gives the same draws, so that a seed replays a run's plan.

use rand::seq::SliceRandom;
use rand::Rng;

/// A factor within ±50 % of 1 by which the plans jitter their mean gaps and durations: evenly
/// spread, unlike exponential gaps, which come in bursts that a recovering cluster cannot take.
pub fn jitter_factor(rng: &mut impl Rng) -> f64 {
    rng.gen_range(0.5..=1.5)
}

/// Cards dealt from a shuffled deck, refilled and shuffled again when empty: every card comes up
/// as often as any other (±1) in any stretch of deals, which independent draws do not give
/// (they left a fault kind or crash point out of a 60 s run, or gave it once).
#[derive(Debug, Clone)]
pub struct Deck<T> {
    cards: Vec<T>,
    left: Vec<T>,
}

impl<T: Clone> Deck<T> {
    /// A deck of `cards`; empty `cards` deal nothing.
    pub fn new(cards: &[T]) -> Deck<T> {
        Deck {
            cards: cards.to_vec(),
            left: Vec::new(),
        }
    }

    /// The next card, `None` only for a deck of no cards.
    pub fn deal(&mut self, rng: &mut impl Rng) -> Option<T> {
        if self.left.is_empty() {
            self.left = self.cards.clone();
            self.left.shuffle(rng);
        }
        self.left.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    #[test]
    fn every_card_comes_up_once_per_round_of_the_deck() {
        let mut rng = SmallRng::seed_from_u64(3);
        let mut deck = Deck::new(&['a', 'b', 'c']);
        for _ in 0..10 {
            let mut round: Vec<char> = (0..3).filter_map(|_| deck.deal(&mut rng)).collect();
            round.sort_unstable();
            assert_eq!(round, ['a', 'b', 'c']);
        }
        assert_eq!(Deck::<char>::new(&[]).deal(&mut rng), None);
    }

    #[test]
    fn jitter_stays_within_half_of_the_mean() {
        let mut rng = SmallRng::seed_from_u64(5);
        let factors: Vec<f64> = (0..1000).map(|_| jitter_factor(&mut rng)).collect();
        assert!(factors.iter().all(|f| (0.5..=1.5).contains(f)));
        assert!(
            factors.iter().any(|&f| f < 0.6) && factors.iter().any(|&f| f > 1.4),
            "spread over the range"
        );
    }
}
