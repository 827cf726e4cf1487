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
    delta_between: Option<(usize, usize)>,
    /// Whether axis point `i` is sample `i` for every point (no missed tick, no jitter past
    /// half a step): each series is then its column copied in order.
    in_order: bool,
}

impl<'a> Axis<'a> {
    /// The axis `samples` over `series`, with the change over a minute read from `per_sample`
    /// at `times` (its sample times).
    pub(super) fn new(
        samples: Vec<Option<usize>>,
        series: &'a dyn Columns,
        per_sample: &'a dyn Columns,
        times: &[i64],
    ) -> Axis<'a> {
        let in_order = samples.iter().enumerate().all(|(i, at)| *at == Some(i));
        Axis {
            samples,
            series,
            per_sample,
            delta_between: delta_between(times),
            in_order,
        }
    }

    /// The points of one store series on the axis (all gaps when the store has no such
    /// series) and its change over the last minute.
    pub(super) fn series(&self, key: &SeriesKey) -> Series {
        Series {
            points: self.points(key),
            delta_1m: self.delta_1m(key),
        }
    }

    /// The points of one store series on the axis (all gaps when the store has no such
    /// series). The diagnosis reads every series at every pass (900 points each over the
    /// default 15 minutes): on the usual axis, one point per sample in order, the column is
    /// copied run by run rather than looked up point by point (the lookups were most of the
    /// pass's counters phase, 1.7 % of the agent's CPU at 1,000 lines/s + 1,000 spans/s).
    pub(super) fn points(&self, key: &SeriesKey) -> Vec<Option<f64>> {
        let Some(values) = self.series.column(key) else {
            return vec![None; self.samples.len()];
        };
        if !self.in_order {
            return self
                .samples
                .iter()
                .map(|at| Some(f64::from(values.get((*at)?)?)))
                .collect();
        }
        let len = self.samples.len();
        let mut out = Vec::with_capacity(len);
        match values {
            Column::Dense(points) => {
                out.extend(points.iter().take(len).map(|v| v.map(f64::from)));
            }
            Column::Sparse { start, values } => {
                let start = start.min(len);
                out.resize(start, None);
                let (front, back) = values.as_slices();
                out.extend(
                    front
                        .iter()
                        .chain(back)
                        .take(len - start)
                        .map(|v| (!v.is_nan()).then(|| f64::from(*v))),
                );
            }
        }
        out.resize(len, None);
        out
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

    /// [`Axis::points`] looked up point by point, whatever the axis: what the copy in order
    /// must equal.
    #[cfg(test)]
    fn points_one_by_one(&self, key: &SeriesKey) -> Vec<Option<f64>> {
        let values = self.series.column(key);
        self.samples
            .iter()
            .map(|at| Some(f64::from(values.as_ref()?.get((*at)?)?)))
            .collect()
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

    /// Sparse columns (see [`Column::Sparse`]) by key, each with its start.
    struct SparseColumns(BTreeMap<SeriesKey, (usize, VecDeque<f32>)>);

    impl Columns for SparseColumns {
        fn column(&self, key: &SeriesKey) -> Option<Column<'_>> {
            let (start, values) = self.0.get(key)?;
            Some(Column::Sparse {
                start: *start,
                values,
            })
        }
    }

    fn key(n: u16) -> SeriesKey {
        SeriesKey::ListenQueue { port: n }
    }

    #[test]
    fn a_series_copied_in_order_has_the_points_looked_up_one_by_one() {
        // Sample times: regular, with a missed tick, with jitter past half a step, and older
        // samples than the axis holds after a clock jump.
        let regular: Vec<i64> = (0..40).map(|i| i * 1_000).collect();
        let missed: Vec<i64> = (0..40).filter(|i| *i != 17).map(|i| i * 1_000).collect();
        let jitter: Vec<i64> = (0..40).map(|i| i * 1_000 + (i % 3) * 400).collect();
        let jump: Vec<i64> = [0, 1_000]
            .into_iter()
            .chain(10_000_000..10_000_070)
            .collect();
        // Sparse columns: from the first sample, later, past the end, wrapped in their ring
        // (two slices), with gaps, longer than the axis.
        let mut sparse = BTreeMap::new();
        let mut wrapped: VecDeque<f32> = VecDeque::with_capacity(8);
        for v in 0..6 {
            wrapped.push_back(v as f32);
        }
        for _ in 0..4 {
            wrapped.pop_front();
        }
        for v in [7.0, f32::NAN, 9.0, 10.0] {
            wrapped.push_back(v);
        }
        assert!(!wrapped.as_slices().1.is_empty(), "the ring wraps");
        sparse.insert(key(1), (0, (0..40).map(|v| v as f32).collect()));
        sparse.insert(key(2), (5, wrapped.clone()));
        sparse.insert(key(3), (38, wrapped));
        sparse.insert(key(4), (90, VecDeque::from([1.0])));
        sparse.insert(key(5), (3, VecDeque::from([1.0, f32::NAN, f32::NAN, 4.0])));
        sparse.insert(key(6), (0, (0..200).map(|v| v as f32).collect()));
        let sparse = SparseColumns(sparse);
        let mut dense: BTreeMap<SeriesKey, Vec<Option<f32>>> = BTreeMap::new();
        dense.insert(key(1), (0..40).map(|v| Some(v as f32)).collect());
        dense.insert(key(2), vec![None, Some(2.0), None, Some(4.0)]);
        dense.insert(
            key(6),
            (0..200).map(|v| (v % 7 != 0).then_some(v as f32)).collect(),
        );
        let mut copied = 0;
        for times in [&regular, &missed, &jitter, &jump] {
            let (_, samples) = regular_axis(times, 1_000);
            for columns in [&sparse as &dyn Columns, &dense] {
                let axis = Axis::new(samples.clone(), columns, columns, times);
                copied += usize::from(axis.in_order);
                for k in 0..8 {
                    assert_eq!(
                        axis.points(&key(k)),
                        axis.points_one_by_one(&key(k)),
                        "series {k} over {:?}…",
                        &times[..3]
                    );
                }
            }
        }
        // The regular times, over both kinds of columns.
        assert_eq!(copied, 2);
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
