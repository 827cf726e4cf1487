//! What the diagnosis is told about one error pattern: when it was first seen, whether and
//! since when it is emerging, and how often it occurred per minute and per second.
//!
//! These are plain values the binary fills from the clustering engine; the count documents
//! ([`MinuteCounts`], [`SecondCounts`]) are also what the API shows, so `faultline-web`
//! re-exports them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Counts per minute, oldest first: `counts[i]` is the minute starting at
/// `start_unix_ms + i * 60_000`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MinuteCounts {
    /// Start of the first minute (Unix ms, a multiple of 60 000).
    pub start_unix_ms: i64,
    /// One count per minute.
    pub counts: Vec<u64>,
}

/// Counts per second, oldest first: `counts[i]` is the second starting at
/// `start_unix_ms + i * 1000`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SecondCounts {
    /// Start of the first second (Unix ms, a multiple of 1000).
    pub start_unix_ms: i64,
    /// One count per second.
    pub counts: Vec<u64>,
}

impl SecondCounts {
    /// Sparse counts (Unix second, count; seconds without events left out, in time order) as
    /// a dense series from the first second held to the last, at most `max_seconds` long
    /// (the older seconds are dropped).
    pub fn from_sparse(per_second: &[(i64, u64)], max_seconds: usize) -> SecondCounts {
        let (Some(&(first, _)), Some(&(last, _))) = (per_second.first(), per_second.last()) else {
            return SecondCounts::default();
        };
        let keep = i64::try_from(max_seconds.max(1)).unwrap_or(i64::MAX);
        let first = first.max(last.saturating_sub(keep - 1));
        let len = usize::try_from(last.saturating_sub(first) + 1).unwrap_or(0);
        let mut counts = vec![0; len];
        for &(sec, c) in per_second {
            if let Some(slot) = usize::try_from(sec - first)
                .ok()
                .and_then(|i| counts.get_mut(i))
            {
                *slot += c;
            }
        }
        SecondCounts {
            start_unix_ms: first.saturating_mul(1000),
            counts,
        }
    }
}

/// Why a pattern is emerging, as the clustering engine judged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmergingKind {
    /// A pattern never seen before.
    New,
    /// A known pattern whose rate rose well above its baseline.
    Surge,
}

/// A pattern that is emerging now, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Emerging {
    /// New or surge.
    pub kind: EmergingKind,
    /// When it started emerging (Unix ms): its first occurrence for a new pattern, the start
    /// of the surge (to the minute, see [`crate::onset::surge_start_minute`]) for a surge.
    pub since_unix_ms: i64,
}

/// One error pattern's activity: the input of "what moved with it" and of onset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternActivity {
    /// The pattern's (cluster's) stable id.
    pub id: String,
    /// Its first occurrence (Unix ms).
    pub first_seen_unix_ms: i64,
    /// Set while the pattern is emerging.
    pub emerging: Option<Emerging>,
    /// Occurrences per minute.
    pub per_minute: MinuteCounts,
    /// Occurrences per second over the recent seconds the engine keeps, when it keeps them:
    /// they place the onset to the second; without them timing is known to the minute.
    pub per_second: Option<SecondCounts>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_seconds_become_dense_and_bounded() {
        let dense = SecondCounts::from_sparse(&[(100, 1), (102, 3), (102, 1)], 900);
        assert_eq!(dense.start_unix_ms, 100_000);
        assert_eq!(dense.counts, [1, 0, 4]);
        let cut = SecondCounts::from_sparse(&[(100, 1), (102, 3)], 2);
        assert_eq!((cut.start_unix_ms, cut.counts), (101_000, vec![0, 3]));
        assert_eq!(SecondCounts::from_sparse(&[], 10), SecondCounts::default());
    }
}
