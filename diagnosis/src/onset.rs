//! Onset: when an error pattern began, and how precisely that is known.
//!
//! The clustering engine says *that* a pattern emerges (new, or surging above its own
//! baseline) over a window of minutes; when it began is decided here, from the pattern's own
//! counts. A new pattern began at its first occurrence. A surge began at the first minute of
//! the engine's window whose count exceeds the baseline rate ([`surge_start_minute`]); with
//! per-second counts, the surge's own change point — found by the same statistics as a
//! counter's ([`crate::baseline::judge`]) — places it to the second ([`pattern_onset`]). A
//! pattern that is not emerging is dated by its first occurrence.
//!
//! Pure functions; the cost is linear in the counts given.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::activity::{EmergingKind, MinuteCounts, PatternActivity, SecondCounts};
use crate::baseline::{judge, Axis, Windows};

/// Where the onset of a pattern (or of an incident with none) was taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnsetSource {
    /// When the pattern started emerging (first occurrence of a new one, start of a surge).
    Emergence,
    /// Its first occurrence (the pattern is not emerging now).
    FirstSeen,
    /// An incident's onset: when its earliest signal started (for an incident of counters
    /// only, when its first counter left its usual level).
    Incident,
}

/// When a pattern began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Onset {
    /// The onset (Unix ms).
    pub unix_ms: i64,
    /// Where it was taken from.
    pub source: OnsetSource,
    /// How precisely it is known (ms): the axis step with per-second counts, 60 000 with
    /// per-minute counts only.
    pub precision_ms: i64,
    /// Whether it is the start of a surge of a known pattern (rather than a first error).
    pub surge: bool,
}

/// The first minute of the engine's window (minutes `window_start_min..=now_min`, numbered
/// since the epoch) whose count exceeds the baseline rate: where a surge began, to the
/// minute. The window's first minute when none does.
pub fn surge_start_minute(
    by_minute: &BTreeMap<i64, u64>,
    window_start_min: i64,
    now_min: i64,
    baseline_rate_per_min: f64,
) -> i64 {
    by_minute
        .range(window_start_min..=now_min.max(window_start_min))
        .find(|(_, &c)| c as f64 > baseline_rate_per_min)
        .map_or(window_start_min, |(&m, _)| m)
}

/// The pattern's occurrences per point of `axis`: per-second counts when known (a second goes
/// to the first point at or after its start), else each minute's count spread evenly.
pub fn occurrences_on_axis(
    axis: Axis,
    per_minute: &MinuteCounts,
    per_second: Option<&SecondCounts>,
) -> Vec<f64> {
    let mut out = vec![0.0; axis.len];
    match per_second.filter(|s| !s.counts.is_empty()) {
        Some(s) => {
            for (k, &c) in s.counts.iter().enumerate() {
                let t = s.start_unix_ms + k as i64 * 1000;
                let i = axis.at_or_after(t);
                if let Some(slot) = out.get_mut(i) {
                    *slot += c as f64;
                }
            }
        }
        None => {
            let per_step = axis.step as f64 / 60_000.0;
            for (i, slot) in out.iter_mut().enumerate() {
                let t = axis.time(i);
                let m = (t - per_minute.start_unix_ms).div_euclid(60_000);
                if let Some(&c) = usize::try_from(m)
                    .ok()
                    .and_then(|m| per_minute.counts.get(m))
                {
                    *slot = c as f64 * per_step;
                }
            }
        }
    }
    out
}

/// When `activity` began, judged on `axis` where `occurrences` (from
/// [`occurrences_on_axis`]) lie: the emergence's start, else the first occurrence; a surge
/// with per-second counts is moved to its own change point when that is a rise.
pub fn pattern_onset(activity: &PatternActivity, axis: Axis, occurrences: &[f64]) -> Onset {
    let (mut unix_ms, source) = match &activity.emerging {
        Some(e) => (e.since_unix_ms, OnsetSource::Emergence),
        None => (activity.first_seen_unix_ms, OnsetSource::FirstSeen),
    };
    let precise = activity
        .per_second
        .as_ref()
        .is_some_and(|s| !s.counts.is_empty());
    let surge = activity
        .emerging
        .is_some_and(|e| e.kind == EmergingKind::Surge);
    // A surge's start is only known to the minute by the engine; with per-second counts the
    // pattern's own change point (found like a counter's) places it to the second.
    if surge && precise && axis.len > 0 {
        let known: Vec<Option<f64>> = occurrences.iter().copied().map(Some).collect();
        if let Some(windows) = Windows::around(axis, unix_ms) {
            if let Some(m) = judge(axis, &windows, &known, false, 0.0) {
                if m.change > 0.0 {
                    unix_ms = m.changed_at;
                }
            }
        }
    }
    // A pattern that fell silent for a while before its current run began again there: the
    // same error text from an earlier, unrelated blip is not this run's start. Seen on the
    // unseen lab (blind, 2026-12-05): four refused dials during a restart of one service, then
    // 2.5 minutes of silence, then a killed callee's refusals — the incident of the kill
    // carried the restart's onset.
    if let Some(run) = activity
        .per_second
        .as_ref()
        .and_then(|s| current_run_start(s, QUIET_GAP_SECONDS))
    {
        unix_ms = unix_ms.max(run);
    }
    Onset {
        unix_ms,
        source,
        precision_ms: if precise { axis.step } else { 60_000 },
        surge,
    }
}

/// Seconds without an occurrence that end a pattern's run: a minute, the window in which
/// signals are grouped into one incident.
pub const QUIET_GAP_SECONDS: usize = 60;

/// The start (Unix ms) of the pattern's current run: its first second with occurrences after
/// the last stretch of at least `gap` silent seconds; none when its counts hold no such
/// stretch (the run may have begun before them).
pub fn current_run_start(counts: &SecondCounts, gap: usize) -> Option<i64> {
    let mut silent = 0usize;
    let mut start = None;
    for (i, &c) in counts.counts.iter().enumerate() {
        if c == 0 {
            silent += 1;
            continue;
        }
        if silent >= gap {
            start = Some(counts.start_unix_ms + i as i64 * 1000);
        }
        silent = 0;
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_starts_after_the_last_minute_of_silence() {
        let counts = |c: Vec<u64>| SecondCounts {
            start_unix_ms: 1_000_000,
            counts: c,
        };
        // A blip, 70 silent seconds, then the run: the run's first second.
        let mut c = vec![4, 0, 1];
        c.extend(std::iter::repeat_n(0, 70));
        c.extend([5, 9, 0, 0, 8]);
        assert_eq!(
            current_run_start(&counts(c), QUIET_GAP_SECONDS),
            Some(1_000_000 + 73 * 1000)
        );
        // Gaps shorter than a minute belong to one run, which began before the counts.
        let mut c = vec![3];
        c.extend(std::iter::repeat_n(0, 59));
        c.push(2);
        assert_eq!(current_run_start(&counts(c), QUIET_GAP_SECONDS), None);
        assert_eq!(
            current_run_start(&counts(Vec::new()), QUIET_GAP_SECONDS),
            None
        );
    }

    #[test]
    fn a_surge_starts_at_the_first_minute_above_its_baseline() {
        let by_minute = BTreeMap::from([(10, 1), (11, 1), (12, 9), (13, 30)]);
        assert_eq!(surge_start_minute(&by_minute, 10, 13, 1.0), 12);
        // Nothing above the baseline in the window: its first minute.
        assert_eq!(surge_start_minute(&by_minute, 10, 11, 5.0), 10);
    }
}
