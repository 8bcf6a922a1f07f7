//! How a caller picks one of a context's instances: pure functions of the candidates' weights
//! and outstanding calls, so each policy is tested without a network.

use serde::{Deserialize, Serialize};

/// A load-balancing policy, selectable per caller (`discovery.policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Each instance in turn, as often as its weight says.
    RoundRobin,
    /// A weighted random instance.
    Random,
    /// Fewest calls in flight. With equal weights: two random instances, the less busy one
    /// (power of two choices: near least-loaded without scanning or a shared queue). With
    /// unequal weights, as Envoy does: a weighted random pick where each weight is divided by
    /// the instance's calls in flight + 1, so idle instances split by weight and busy ones
    /// get less.
    #[default]
    LeastOutstanding,
}

/// What the policy knows of one candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Relative share of traffic; 0 takes none while another candidate has weight.
    pub weight: u32,
    /// Calls in flight to it from this caller.
    pub outstanding: usize,
}

/// The index in `candidates` to call. `turn` counts picks (round-robin), `random(n)` gives a
/// uniform number below `n`. `None` only for no candidates.
pub fn choose(
    policy: Policy,
    candidates: &[Candidate],
    turn: u64,
    random: &mut impl FnMut(u64) -> u64,
) -> Option<usize> {
    match candidates.len() {
        0 => return None,
        1 => return Some(0),
        _ => {}
    }
    // All weights zero: treat them as equal rather than refuse to route.
    let weights: Vec<u64> = if candidates.iter().all(|c| c.weight == 0) {
        vec![1; candidates.len()]
    } else {
        candidates.iter().map(|c| u64::from(c.weight)).collect()
    };
    let total: u64 = weights.iter().sum();
    Some(match policy {
        Policy::Random => at(&weights, random(total)),
        Policy::RoundRobin => {
            // Weights over their gcd: equal weights alternate rather than run in blocks.
            let g = weights.iter().copied().fold(0, gcd).max(1);
            let reduced: Vec<u64> = weights.iter().map(|w| w / g).collect();
            at(&reduced, turn % (total / g))
        }
        Policy::LeastOutstanding if weights.iter().all(|w| *w == weights[0]) => {
            let n = candidates.len() as u64;
            let a = usize::try_from(random(n)).unwrap_or(0);
            // A second draw among the others, so the two choices differ.
            let b = (a + 1 + usize::try_from(random(n - 1)).unwrap_or(0)) % candidates.len();
            if candidates[b].outstanding < candidates[a].outstanding {
                b
            } else {
                a
            }
        }
        Policy::LeastOutstanding => {
            let effective: Vec<u64> = weights
                .iter()
                .zip(candidates)
                .map(|(w, c)| (w * 1_000_000 / (c.outstanding as u64 + 1)).max(1))
                .collect();
            let total: u64 = effective.iter().sum();
            at(&effective, random(total))
        }
    })
}

/// The index whose cumulative weight range holds `point`.
fn at(weights: &[u64], point: u64) -> usize {
    let mut left = point;
    for (i, w) in weights.iter().enumerate() {
        if left < *w {
            return i;
        }
        left -= w;
    }
    weights.len() - 1
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), so the shares below are reproducible.
    fn rng(seed: u64) -> impl FnMut(u64) -> u64 {
        let mut state = seed.max(1);
        move |n| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        }
    }

    fn idle(weights: &[u32]) -> Vec<Candidate> {
        weights
            .iter()
            .map(|&weight| Candidate {
                weight,
                outstanding: 0,
            })
            .collect()
    }

    fn shares(policy: Policy, candidates: &[Candidate], picks: u64) -> Vec<f64> {
        let mut random = rng(42);
        let mut counts = vec![0u64; candidates.len()];
        for turn in 0..picks {
            let i = choose(policy, candidates, turn, &mut random).expect("a pick");
            counts[i] += 1;
        }
        counts.iter().map(|c| *c as f64 / picks as f64).collect()
    }

    #[test]
    fn every_policy_splits_a_90_10_weighting_within_a_few_percent() {
        for policy in [Policy::RoundRobin, Policy::Random, Policy::LeastOutstanding] {
            let s = shares(policy, &idle(&[90, 10]), 10_000);
            assert!((s[0] - 0.9).abs() < 0.02, "{policy:?}: {s:?}");
            assert!((s[1] - 0.1).abs() < 0.02, "{policy:?}: {s:?}");
        }
    }

    #[test]
    fn round_robin_alternates_equal_weights() {
        let picks: Vec<usize> = (0..6)
            .map(|turn| {
                choose(
                    Policy::RoundRobin,
                    &idle(&[100, 100, 100]),
                    turn,
                    &mut rng(1),
                )
            })
            .map(Option::unwrap)
            .collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn random_spreads_equal_weights_evenly() {
        let s = shares(Policy::Random, &idle(&[1, 1, 1, 1]), 20_000);
        for share in s {
            assert!((share - 0.25).abs() < 0.02, "{share}");
        }
    }

    #[test]
    fn least_outstanding_avoids_the_busy_instance() {
        let candidates = [
            Candidate {
                weight: 100,
                outstanding: 50,
            },
            Candidate {
                weight: 100,
                outstanding: 0,
            },
        ];
        let s = shares(Policy::LeastOutstanding, &candidates, 10_000);
        // Two distinct choices of two: the idle one always wins.
        assert!(s[1] > 0.99, "{s:?}");
    }

    #[test]
    fn least_outstanding_with_weights_gives_a_busy_instance_less_than_its_weight() {
        let candidates = [
            Candidate {
                weight: 90,
                outstanding: 9,
            },
            Candidate {
                weight: 10,
                outstanding: 0,
            },
        ];
        // 90/10 is 9/10 against 10 per call in flight: an even split.
        let s = shares(Policy::LeastOutstanding, &candidates, 10_000);
        assert!((s[0] - 0.5).abs() < 0.03, "{s:?}");
    }

    #[test]
    fn a_zero_weight_takes_no_traffic_unless_all_are_zero() {
        let s = shares(Policy::Random, &idle(&[0, 5]), 1_000);
        assert!(s[0] < f64::EPSILON, "{s:?}");
        let s = shares(Policy::RoundRobin, &idle(&[0, 0]), 1_000);
        assert!((s[0] - 0.5).abs() < 0.01, "{s:?}");
    }

    #[test]
    fn no_candidates_no_pick_and_one_is_always_it() {
        assert_eq!(choose(Policy::Random, &[], 0, &mut rng(1)), None);
        assert_eq!(
            choose(Policy::LeastOutstanding, &idle(&[0]), 7, &mut rng(1)),
            Some(0)
        );
    }
}
