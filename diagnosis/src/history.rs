//! The counter history the diagnosis reads: every series on one regular time axis.

use std::collections::HashMap;
use std::sync::OnceLock;

use faultline_series::{RuntimeMetric, SeriesKey};

use crate::baseline::TRAFFIC_MEAN_SECONDS;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A series of points on a document's time axis: `points[i]` is at
/// `history_start_unix_ms + i * step_ms` of the enclosing document. Missing samples (the
/// source failed, the target did not answer, the series did not exist yet) are `null`, never
/// 0. The API's counter documents and the diagnosis' answers share it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Series {
    /// Oldest first. A whole value is written as a JSON integer (`3`, not `3.0`: the same
    /// number), as counts are: the counters document of a busy node charting every port
    /// (12,000 series, 5 MB) spent most of its time formatting floats.
    #[serde(serialize_with = "whole_as_integers")]
    pub points: Vec<Option<f64>>,
    /// Change over the last minute: the value of the latest sample minus the value of the
    /// newest sample taken at least 60 s before it, both from the per-sample history whatever
    /// the snapshot's `resolution`. `null` when either sample is missing: the series is
    /// younger than a minute, or its source failed at either moment. For a rate this is the
    /// change of the rate. Always `null` in the diagnosis' answers.
    #[serde(default)]
    pub delta_1m: Option<f64>,
}

/// Writes `points` with each whole value as an integer (see [`Series::points`]); others,
/// and gaps, as before.
fn whole_as_integers<S: serde::Serializer>(
    points: &[Option<f64>],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    struct Point(Option<f64>);
    impl Serialize for Point {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            // Below 2^53 every whole f64 is an i64 exactly.
            const EXACT: f64 = 9_007_199_254_740_992.0;
            match self.0 {
                Some(v) if v.fract() == 0.0 && v.abs() < EXACT => {
                    serializer.serialize_i64(v as i64)
                }
                Some(v) => serializer.serialize_f64(v),
                None => serializer.serialize_none(),
            }
        }
    }
    serializer.collect_seq(points.iter().map(|&p| Point(p)))
}

/// The node's counter series on one time axis: `points[i]` of every series was sampled at
/// `start_unix_ms + i * step_ms`. A missing sample (the source failed, the series did not
/// exist yet, the target did not answer) is `None`, never 0: a judgement must say when it
/// could not judge, not read a gap as a level.
///
/// [`CounterHistory::get`] finds a series through an index built at the first lookup (a full
/// judgement looks up 3–6 related series, so a pass over every series scanning for each was
/// quadratic in the series). Series may be appended to `series` at any time (they are found
/// by a scan of those past the index); series must not be removed or replaced after a
/// lookup.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CounterHistory {
    /// Time of the first point (Unix ms).
    pub start_unix_ms: i64,
    /// Time between points (ms, >= 1).
    pub step_ms: i64,
    /// The series, each at most as long as the axis.
    pub series: Vec<CounterSeries>,
    /// Position of each series by key, built at the first [`CounterHistory::get`].
    pub index: SeriesIndex,
}

/// Where each series of a [`CounterHistory`] is, by key: built once, at the first lookup,
/// over the series there were then. Equal to any other index (it only speeds lookups up); a
/// clone starts empty (a history built from a clone may hold other series).
#[derive(Default)]
pub struct SeriesIndex(OnceLock<(usize, HashMap<SeriesKey, usize>)>);

impl Clone for SeriesIndex {
    fn clone(&self) -> SeriesIndex {
        SeriesIndex::default()
    }
}

impl PartialEq for SeriesIndex {
    fn eq(&self, _: &SeriesIndex) -> bool {
        true
    }
}

impl std::fmt::Debug for SeriesIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SeriesIndex")
    }
}

/// One counter series with its identity.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterSeries {
    /// Which series this is.
    pub key: SeriesKey,
    /// Its points on the history's axis, oldest first.
    pub points: Vec<Option<f64>>,
}

/// A regular time axis: `len` points `step_ms` apart from `start_unix_ms`. What a series laid
/// on a [`CounterHistory`] needs of it, without its series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeAxis {
    /// Time of the first point (Unix ms).
    pub start_unix_ms: i64,
    /// Time between points (ms, >= 1).
    pub step_ms: i64,
    /// Number of points.
    pub len: usize,
}

impl TimeAxis {
    /// Time of point `i` (Unix ms).
    pub fn time(&self, i: usize) -> i64 {
        self.start_unix_ms + i as i64 * self.step_ms.max(1)
    }
}

impl CounterHistory {
    /// The history's axis: its start, step and [`Self::len`].
    pub fn axis(&self) -> TimeAxis {
        TimeAxis {
            start_unix_ms: self.start_unix_ms,
            step_ms: self.step_ms.max(1),
            len: self.len(),
        }
    }

    /// Points on the axis: the length of the longest series.
    pub fn len(&self) -> usize {
        self.series
            .iter()
            .map(|s| s.points.len())
            .max()
            .unwrap_or(0)
    }

    /// Whether there is no point at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Time of point `i` (Unix ms).
    pub fn time(&self, i: usize) -> i64 {
        self.start_unix_ms + i as i64 * self.step_ms.max(1)
    }

    /// The point whose step holds `unix_ms` (the inverse of [`Self::time`]); `None` before the
    /// history's start.
    pub fn point_at(&self, unix_ms: i64) -> Option<usize> {
        usize::try_from((unix_ms - self.start_unix_ms).div_euclid(self.step_ms.max(1))).ok()
    }

    /// When the socket counts of point `i` were taken (Unix ms): its time, less the age of
    /// the census it repeats when the agent's socket census ran less often than every sample
    /// (the `faultline socket census age` series; a history without it, or without a point
    /// there, counted at every sample). A port's count changes only from one census to the
    /// next, so a climb between two points is measured over the time between their censuses.
    /// A census is taken for a sample, so this is the time of a point of the axis: the age
    /// (measured between sample times, which wander by milliseconds around the axis) is
    /// rounded to whole steps.
    pub fn counted_at(&self, i: usize) -> i64 {
        let step = self.step_ms.max(1);
        let age = self
            .get(&SeriesKey::Runtime {
                metric: RuntimeMetric::SocketCensusAge,
            })
            .and_then(|s| s.points.get(i).copied().flatten())
            .unwrap_or(0.0);
        let steps = (age.max(0.0) / step as f64).round() as i64;
        self.time(i) - steps * step
    }

    /// A history of `series` on the axis starting at `start_unix_ms`, one point every
    /// `step_ms`.
    pub fn new(start_unix_ms: i64, step_ms: i64, series: Vec<CounterSeries>) -> CounterHistory {
        CounterHistory {
            start_unix_ms,
            step_ms,
            series,
            index: SeriesIndex::default(),
        }
    }

    /// The series with this key, if present (the first of that key). Looked up in the index,
    /// then among the series appended since it was built.
    pub fn get(&self, key: &SeriesKey) -> Option<&CounterSeries> {
        let (indexed, positions) = self.index.0.get_or_init(|| {
            let mut positions = HashMap::with_capacity(self.series.len());
            for (i, s) in self.series.iter().enumerate() {
                positions.entry(s.key.clone()).or_insert(i);
            }
            (self.series.len(), positions)
        });
        match positions.get(key).and_then(|&i| self.series.get(i)) {
            Some(s) if &s.key == key => Some(s),
            // The series changed under the index (a misuse): the slow, right answer.
            Some(_) => self.series.iter().find(|s| &s.key == key),
            None => self
                .series
                .get((*indexed).min(self.series.len())..)
                .and_then(|rest| rest.iter().find(|s| &s.key == key)),
        }
    }
}

/// A service's requests (or failures) per second, counted per Unix second from
/// `start_unix_secs`, as points of a history axis (`start_unix_ms`, `step_ms`, `len`): each
/// point is the mean over the [`TRAFFIC_MEAN_SECONDS`] whole seconds before it (the second the
/// sample falls in is still being counted). Before the service's first counted request the
/// points are unknown, not 0: the service may not have existed, and a series that starts
/// there is judged as one that appeared (see [`crate::anomaly`]). Seconds the counts do not
/// cover are unknown too.
pub fn traffic_points(
    start_unix_secs: i64,
    counts: &[u32],
    start_unix_ms: i64,
    step_ms: i64,
    len: usize,
) -> Vec<Option<f64>> {
    let Some(first) = counts.iter().position(|&c| c > 0) else {
        return vec![None; len];
    };
    traffic_points_from(
        start_unix_secs,
        counts,
        start_unix_secs + first as i64,
        start_unix_ms,
        step_ms,
        len,
    )
}

/// [`traffic_points`] known from the Unix second `known_from` on: a service's failures are
/// known (0 until the first) wherever its requests are.
pub fn traffic_points_from(
    start_unix_secs: i64,
    counts: &[u32],
    known_from: i64,
    start_unix_ms: i64,
    step_ms: i64,
    len: usize,
) -> Vec<Option<f64>> {
    let known_from = known_from.max(start_unix_secs);
    let known_to = start_unix_secs + counts.len() as i64;
    let n = TRAFFIC_MEAN_SECONDS as i64;
    (0..len)
        .map(|i| {
            let t = start_unix_ms + i as i64 * step_ms.max(1);
            let last = t.div_euclid(1000) - 1;
            let from = last - n + 1;
            if from < known_from || last >= known_to {
                return None;
            }
            let sum: u64 = (from..=last)
                .map(|sec| u64::from(counts[(sec - start_unix_secs) as usize]))
                .sum();
            Some(sum as f64 / n as f64)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_series::{PortSide, SocketState};

    #[test]
    fn whole_points_are_json_integers_and_read_back_as_the_same_numbers() {
        let series = Series {
            points: vec![
                Some(3.0),
                None,
                Some(2.5),
                Some(-0.0),
                Some(1e300),
                Some(f64::NAN),
            ],
            delta_1m: Some(1.0),
        };
        let text = serde_json::to_string(&series).unwrap();
        assert_eq!(
            text,
            r#"{"points":[3,null,2.5,0,1e+300,null],"delta_1m":1.0}"#
        );
        let back: Series = serde_json::from_str(&text).unwrap();
        assert_eq!(back.points[..5], series.points[..5]);
    }

    #[test]
    fn traffic_points_are_means_of_the_whole_seconds_before_and_unknown_before_the_first() {
        // Counts from second 100: nothing for 3 s, then 10 a second, 20 from second 110.
        let counts: Vec<u32> = (0..20)
            .map(|i| match i {
                0..=2 => 0,
                3..=9 => 10,
                _ => 20,
            })
            .collect();
        // Points every 500 ms from 100.0 s.
        let points = traffic_points(100, &counts, 100_000, 500, 44);
        // Before 103 + 5 s of counts, unknown.
        assert!(points[..16].iter().all(Option::is_none), "{points:?}");
        // At 108.0 s: seconds 103..=107.
        assert_eq!(points[16], Some(10.0));
        assert_eq!(points[17], Some(10.0));
        // At 112.0 s: seconds 107..=111: 10, 10, 10, 20, 20.
        assert_eq!(points[24], Some(14.0));
        // At 120.0 s the last counted second is 119: known; past it, unknown.
        assert_eq!(points[40], Some(20.0));
        assert_eq!(points[42], None);
        // No request at all: nothing known.
        assert!(traffic_points(100, &[0; 20], 100_000, 1000, 10)
            .iter()
            .all(Option::is_none));
    }

    #[test]
    fn the_axis_is_as_long_as_the_longest_series() {
        let key = SeriesKey::PortState {
            port: 8080,
            side: PortSide::Local,
            state: SocketState::CloseWait,
        };
        let mut history = CounterHistory::new(
            1_000,
            1_000,
            vec![CounterSeries {
                key: key.clone(),
                points: vec![None, Some(1.0), Some(2.0)],
            }],
        );
        assert_eq!(history.len(), 3);
        assert_eq!(history.time(2), 3_000);
        assert_eq!(history.get(&key).map(|s| s.points.len()), Some(3));
        // A series appended after the first lookup is found too.
        let total = SeriesKey::PortTotal {
            port: 8080,
            side: PortSide::Local,
        };
        assert!(history.get(&total).is_none());
        history.series.push(CounterSeries {
            key: total.clone(),
            points: vec![Some(4.0)],
        });
        assert_eq!(
            history.get(&total).map(|s| s.points.clone()),
            Some(vec![Some(4.0)])
        );
        assert_eq!(history.get(&key).map(|s| s.points.len()), Some(3));
    }
}
