//! Emergence: is a cluster new, or surging above its own baseline?
//!
//! *New*: first seen inside the current window, with at least `new_min_events` events in it.
//! *Surging*: the count `c` in the window is improbable under the cluster's own baseline
//! rate: with `λ` the baseline count expected in one window (at least 1, so a quiet cluster
//! needs a real burst), the Poisson tail `P(X ≥ c | λ)` is below `surge_max_p` and `c / λ` is at
//! least `surge_min_ratio`. The score is `-log10` of that tail (for new clusters, against
//! `λ = 1`), so both kinds rank on one scale. It is computed in log space and never capped:
//! a burst of thousands of failures outranks a burst of dozens even when both tails are far
//! below the smallest `f64` (a score capped at 300 ranked every big burst equal, and the
//! tie went to the rate, so echo-heavy noise outranked the fault's own pattern — issue #11).

use serde::{Deserialize, Serialize};

/// Why a cluster is emerging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmergenceKind {
    /// First seen in the current window.
    New,
    /// Rate significantly above its baseline.
    Surge,
}

/// The verdict on one cluster, with the figures behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Emergence {
    /// New or surge.
    pub kind: EmergenceKind,
    /// Length of the current window in minutes (the configured emergence window): readers
    /// date a surge inside it instead of working it back out from count and rate.
    #[serde(default)]
    pub window_min: f64,
    /// Events in the current window.
    pub current_count: u64,
    /// Events per minute in the current window.
    pub current_rate_per_min: f64,
    /// Events per minute in the baseline (0 for a new cluster).
    pub baseline_rate_per_min: f64,
    /// Poisson tail probability of the current count under the baseline.
    pub p_value: f64,
    /// Ranking score: `-log10` of the tail probability, from its logarithm (not capped at the
    /// smallest `p_value` a `f64` holds).
    pub score: f64,
}

/// Thresholds (from the configuration).
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Window length in minutes.
    pub window_min: f64,
    /// Minimum events for a new cluster.
    pub new_min_events: u64,
    /// Minimum current/baseline ratio for a surge.
    pub surge_min_ratio: f64,
    /// Maximum tail probability for a surge.
    pub surge_max_p: f64,
}

/// Judges one cluster: `current` events in the window, `baseline` events over
/// `baseline_min` minutes before it, `is_new` when first seen inside the window.
pub fn judge(
    t: &Thresholds,
    current: u64,
    baseline: u64,
    baseline_min: f64,
    is_new: bool,
) -> Option<Emergence> {
    let current_rate = current as f64 / t.window_min.max(1e-9);
    if is_new {
        if current < t.new_min_events {
            return None;
        }
        let log_p = ln_poisson_tail(current, 1.0);
        return Some(Emergence {
            kind: EmergenceKind::New,
            window_min: t.window_min,
            current_count: current,
            current_rate_per_min: current_rate,
            baseline_rate_per_min: 0.0,
            p_value: log_p.exp(),
            score: score_of(log_p),
        });
    }
    if baseline_min <= 0.0 {
        return None;
    }
    let baseline_rate = baseline as f64 / baseline_min;
    let lambda = (baseline_rate * t.window_min).max(1.0);
    // The ratio first: a steady cluster (its count near its baseline's) is no surge whatever
    // its tail, and a tail that holds the mode is summed term by term up to the count (tens
    // of thousands of terms for a pattern that fails a hundred times a second), for every
    // cluster at every rebuild of the list (twice a second).
    if (current as f64) < t.surge_min_ratio * lambda {
        return None;
    }
    let log_p = ln_poisson_tail(current, lambda);
    let p = log_p.exp();
    (p < t.surge_max_p).then(|| Emergence {
        kind: EmergenceKind::Surge,
        window_min: t.window_min,
        current_count: current,
        current_rate_per_min: current_rate,
        baseline_rate_per_min: baseline_rate,
        p_value: p,
        score: score_of(log_p),
    })
}

/// `-log10(p)` from `ln(p)`; 0 for a certain event.
fn score_of(ln_p: f64) -> f64 {
    (-ln_p / std::f64::consts::LN_10).max(0.0)
}

/// `ln P(X ≥ c)` for `X ~ Poisson(λ)`: the same sum as [`poisson_tail`], kept as a logarithm
/// so that it stays finite where the probability itself underflows to 0.
pub fn ln_poisson_tail(c: u64, lambda: f64) -> f64 {
    if c == 0 {
        return 0.0;
    }
    if lambda <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if (c as f64) <= lambda {
        return poisson_tail(c, lambda).ln();
    }
    let (first, sum) = tail_terms(c, lambda);
    first + sum.ln()
}

/// The log of the tail's first term `P(X = c)` and the sum of the terms relative to it.
fn tail_terms(c: u64, lambda: f64) -> (f64, f64) {
    let cf = c as f64;
    let mut log_term = -lambda + cf * lambda.ln() - ln_factorial(c);
    let mut sum = 0.0f64;
    let first = log_term;
    for k in c..c + 10_000 {
        let rel = (log_term - first).exp();
        sum += rel;
        if rel < 1e-17 {
            break;
        }
        log_term += lambda.ln() - ((k + 1) as f64).ln();
    }
    (first, sum)
}

/// `P(X ≥ c)` for `X ~ Poisson(λ)`, summed in log space so that large counts do not overflow.
pub fn poisson_tail(c: u64, lambda: f64) -> f64 {
    if c == 0 {
        return 1.0;
    }
    if lambda <= 0.0 {
        return 0.0;
    }
    if (c as f64) <= lambda {
        // The tail holds the mode: sum the head instead, 1 - P(X < c).
        let mut term = (-lambda).exp();
        let mut head = term;
        for k in 1..c {
            term *= lambda / k as f64;
            head += term;
        }
        return (1.0 - head).clamp(0.0, 1.0);
    }
    let (first, sum) = tail_terms(c, lambda);
    (first.exp() * sum).clamp(0.0, 1.0)
}

fn ln_factorial(n: u64) -> f64 {
    if n < 32 {
        return (2..=n).map(|k| (k as f64).ln()).sum();
    }
    let x = n as f64;
    x * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI * x).ln() + 1.0 / (12.0 * x)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds {
        window_min: 5.0,
        new_min_events: 5,
        surge_min_ratio: 3.0,
        surge_max_p: 1e-4,
    };

    #[test]
    fn poisson_tail_matches_known_values() {
        assert!((poisson_tail(1, 1.0) - (1.0 - (-1.0f64).exp())).abs() < 1e-12);
        // P(X >= 10 | 2) = 4.65e-5
        assert!((poisson_tail(10, 2.0) - 4.6498e-5).abs() < 1e-7);
        assert!(poisson_tail(1_000_000, 10.0) < 1e-300 || poisson_tail(1_000_000, 10.0) == 0.0);
    }

    #[test]
    fn steady_rate_is_not_a_surge_but_a_burst_is() {
        // 60 per hour baseline = 5 per window.
        assert!(judge(&T, 6, 60, 60.0, false).is_none());
        let e = judge(&T, 40, 60, 60.0, false).expect("a surge");
        assert_eq!(e.kind, EmergenceKind::Surge);
        assert!(e.score > 4.0);
    }

    #[test]
    fn bigger_bursts_rank_higher_even_beyond_the_smallest_f64() {
        // Both tails underflow to 0: a capped score ranked them equal.
        let dozens = judge(&T, 400, 0, 0.0, true).expect("new");
        let thousands = judge(&T, 4_000, 0, 0.0, true).expect("new");
        assert_eq!(dozens.p_value, 0.0);
        assert!(dozens.score > 300.0, "{}", dozens.score);
        assert!(thousands.score > dozens.score * 5.0);
        // The log-space tail agrees with the direct sum where both are representable.
        let direct = -poisson_tail(10, 2.0).log10();
        let logged = judge(&T, 10, 0, 0.0, true).map(|e| e.score);
        assert!(logged.is_some());
        assert!((score_of(ln_poisson_tail(10, 2.0)) - direct).abs() < 1e-9);
    }

    /// [`judge`] as it was before it looked at the ratio first: the tail always summed.
    fn judged_with_the_tail_first(
        t: &Thresholds,
        current: u64,
        baseline: u64,
        baseline_min: f64,
    ) -> Option<Emergence> {
        let baseline_rate = baseline as f64 / baseline_min;
        let lambda = (baseline_rate * t.window_min).max(1.0);
        let log_p = ln_poisson_tail(current, lambda);
        let p = log_p.exp();
        (p < t.surge_max_p && current as f64 >= t.surge_min_ratio * lambda).then(|| Emergence {
            kind: EmergenceKind::Surge,
            window_min: t.window_min,
            current_count: current,
            current_rate_per_min: current as f64 / t.window_min.max(1e-9),
            baseline_rate_per_min: baseline_rate,
            p_value: p,
            score: score_of(log_p),
        })
    }

    #[test]
    fn a_surge_is_judged_as_with_its_tail_summed_first() {
        let ratios = [0.5, 1.0, 3.0];
        let mut surges = 0;
        for surge_min_ratio in ratios {
            let t = Thresholds {
                surge_min_ratio,
                ..T
            };
            for current in (0..200).chain([999, 1_000, 1_001, 2_999, 3_000, 3_001, 30_000]) {
                for baseline in [0, 1, 12, 60, 100, 599, 600, 601, 6_000, 60_000, 600_000] {
                    for baseline_min in [1.0, 30.0, 60.0] {
                        let want = judged_with_the_tail_first(&t, current, baseline, baseline_min);
                        surges += usize::from(want.is_some());
                        assert_eq!(
                            judge(&t, current, baseline, baseline_min, false),
                            want,
                            "{current} after {baseline} in {baseline_min} min, ratio {surge_min_ratio}"
                        );
                    }
                }
            }
        }
        assert!(surges > 100, "{surges}");
    }

    #[test]
    fn new_needs_enough_events() {
        assert!(judge(&T, 4, 0, 0.0, true).is_none());
        assert_eq!(
            judge(&T, 5, 0, 0.0, true).map(|e| e.kind),
            Some(EmergenceKind::New)
        );
    }
}
