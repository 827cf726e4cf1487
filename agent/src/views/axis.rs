//! Time-axis resampling: the counter store's sample times laid on one regular axis, and the
//! two samples a series' change over the last minute is taken between.

use std::collections::{BTreeMap, VecDeque};

use faultline_series::SeriesKey;
use faultline_web::model::Series;

/// How far back a series' `delta_1m` reaches, in milliseconds.
const DELTA_WINDOW_MS: i64 = 60_000;

/// The history of a snapshot laid on one regular time axis, plus the two per-sample points
/// every series' change over the last minute is taken between.
pub(super) struct Axis<'a> {
    /// For each axis point, the index of the store's point (in `series`) placed there.
    pub(super) samples: Vec<Option<usize>>,
    /// The store's series at the chosen resolution.
    pub(super) series: &'a dyn Columns,
    /// The store's per-sample series, which deltas are read from whatever the resolution.
    pub(super) per_sample: &'a dyn Columns,
    /// Indexes in `per_sample` of the newest sample at least [`DELTA_WINDOW_MS`] before the
    /// latest, and of the latest; `None` while the history is shorter than that.
    pub(super) delta_between: Option<(usize, usize)>,
}

impl Axis<'_> {
    /// The points of one store series on the axis (all gaps when the store has no such
    /// series) and its change over the last minute.
    pub(super) fn series(&self, key: &SeriesKey) -> Series {
        let values = self.series.column(key);
        Series {
            points: self
                .samples
                .iter()
                .map(|at| Some(f64::from(values.as_ref()?.get((*at)?)?)))
                .collect(),
            delta_1m: self.delta_1m(key),
        }
    }

    fn delta_1m(&self, key: &SeriesKey) -> Option<f64> {
        let (from, to) = self.delta_between?;
        let values = self.per_sample.column(key)?;
        let at = |i: usize| values.get(i).map(f64::from);
        Some(at(to)? - at(from)?)
    }

    pub(super) fn has(&self, key: &SeriesKey) -> bool {
        self.series.column(key).is_some()
    }
}

/// Series' points by key, each indexed by its sample's position among the snapshot's times:
/// the store's view (one slot per time) or the diagnosis' kept history (sparse, see
/// [`super::kept`]). A series is listed when it has a point among the times.
pub(super) trait Columns {
    /// The points of series `key`, `None` when it has none among the times.
    fn column(&self, key: &SeriesKey) -> Option<Column<'_>>;
}

impl Columns for BTreeMap<SeriesKey, Vec<Option<f32>>> {
    fn column(&self, key: &SeriesKey) -> Option<Column<'_>> {
        self.get(key).map(|points| Column::Dense(points))
    }
}

/// One series' points by sample position (see [`Columns`]).
pub(super) enum Column<'a> {
    /// One slot per sample, `None` where it was not sampled.
    Dense(&'a [Option<f32>]),
    /// The points from the series' first known one, at position `start`, to its last; `NaN`
    /// where it was not sampled. The positions outside are gaps.
    Sparse {
        start: usize,
        values: &'a VecDeque<f32>,
    },
}

impl Column<'_> {
    /// The point at sample position `i` (`None`: a gap).
    pub(super) fn get(&self, i: usize) -> Option<f32> {
        match self {
            Column::Dense(points) => points.get(i).copied().flatten(),
            Column::Sparse { start, values } => values
                .get(i.checked_sub(*start)?)
                .copied()
                .filter(|v| !v.is_nan()),
        }
    }
}

/// Lays sample times on a regular axis of `step_ms` ending at the last sample: each sample
/// goes to the nearest axis point (a later sample wins a shared point, a missed tick stays a
/// gap). The axis is at most a few times longer than the number of samples, so a clock jump
/// cannot make it huge; older samples that do not fit are left out. Returns the axis start
/// and the sample index of each point.
pub(super) fn regular_axis(times: &[i64], step_ms: i64) -> (i64, Vec<Option<usize>>) {
    let step = step_ms.max(1);
    let (Some(&first), Some(&last)) = (times.first(), times.last()) else {
        return (0, Vec::new());
    };
    let cap = (times.len().saturating_mul(4)).clamp(64, 100_000) as i64;
    let span = (last.saturating_sub(first).max(0) + step / 2) / step + 1;
    let len = span.min(cap);
    let mut axis = vec![None; len as usize];
    for (i, &t) in times.iter().enumerate() {
        let back = (last.saturating_sub(t).max(0) + step / 2) / step;
        if back < len {
            axis[(len - 1 - back) as usize] = Some(i);
        }
    }
    (last - (len - 1) * step, axis)
}

/// The indexes of the newest sample taken at least [`DELTA_WINDOW_MS`] before the latest one,
/// and of the latest one.
pub(super) fn delta_between(times: &[i64]) -> Option<(usize, usize)> {
    let latest = times.len().checked_sub(1)?;
    let cutoff = times[latest].checked_sub(DELTA_WINDOW_MS)?;
    let from = times.iter().rposition(|&t| t <= cutoff)?;
    Some((from, latest))
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn the_change_over_a_minute_needs_a_sample_a_minute_old() {
        assert_eq!(delta_between(&[]), None);
        assert_eq!(delta_between(&[0, 30_000, 59_999]), None);
        assert_eq!(delta_between(&[0, 30_000, 60_000]), Some((0, 2)));
        assert_eq!(delta_between(&[0, 1_000, 61_500]), Some((1, 2)));
    }

    #[test]
    fn the_axis_keeps_gaps_and_stays_bounded_after_a_clock_jump() {
        assert_eq!(
            regular_axis(&[0, 1_000, 3_000], 1_000),
            (0, vec![Some(0), Some(1), None, Some(2)])
        );
        // Jitter lands on the nearest point.
        assert_eq!(
            regular_axis(&[10, 1_020, 1_990], 1_000),
            (-10, vec![Some(0), Some(1), Some(2)])
        );
        let (start, axis) = regular_axis(&[0, 1_000, 10_000_000_000], 1_000);
        assert_eq!(axis.len(), 64);
        assert_eq!(start, 10_000_000_000 - 63_000);
        assert_eq!(axis.last(), Some(&Some(2)));
        assert_eq!(regular_axis(&[], 1_000), (0, vec![]));
    }
}
