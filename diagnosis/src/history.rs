//! The counter history the diagnosis reads: every series on one regular time axis.

use faultline_series::SeriesKey;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A series of points on a document's time axis: `points[i]` is at
/// `history_start_unix_ms + i * step_ms` of the enclosing document. Missing samples (the
/// source failed, the target did not answer, the series did not exist yet) are `null`, never
/// 0. The API's counter documents and the diagnosis' answers share it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Series {
    /// Oldest first.
    pub points: Vec<Option<f64>>,
    /// Change over the last minute: the value of the latest sample minus the value of the
    /// newest sample taken at least 60 s before it, both from the per-sample history whatever
    /// the snapshot's `resolution`. `null` when either sample is missing: the series is
    /// younger than a minute, or its source failed at either moment. For a rate this is the
    /// change of the rate. Always `null` in the diagnosis' answers.
    #[serde(default)]
    pub delta_1m: Option<f64>,
}

/// The node's counter series on one time axis: `points[i]` of every series was sampled at
/// `start_unix_ms + i * step_ms`. A missing sample (the source failed, the series did not
/// exist yet, the target did not answer) is `None`, never 0: a judgement must say when it
/// could not judge, not read a gap as a level.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CounterHistory {
    /// Time of the first point (Unix ms).
    pub start_unix_ms: i64,
    /// Time between points (ms, >= 1).
    pub step_ms: i64,
    /// The series, each at most as long as the axis.
    pub series: Vec<CounterSeries>,
}

/// One counter series with its identity.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterSeries {
    /// Which series this is.
    pub key: SeriesKey,
    /// Its points on the history's axis, oldest first.
    pub points: Vec<Option<f64>>,
}

impl CounterHistory {
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

    /// The series with this key, if present.
    pub fn get(&self, key: &SeriesKey) -> Option<&CounterSeries> {
        self.series.iter().find(|s| &s.key == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_series::{PortSide, SocketState};

    #[test]
    fn the_axis_is_as_long_as_the_longest_series() {
        let key = SeriesKey::PortState {
            port: 8080,
            side: PortSide::Local,
            state: SocketState::CloseWait,
        };
        let history = CounterHistory {
            start_unix_ms: 1_000,
            step_ms: 1_000,
            series: vec![CounterSeries {
                key: key.clone(),
                points: vec![None, Some(1.0), Some(2.0)],
            }],
        };
        assert_eq!(history.len(), 3);
        assert_eq!(history.time(2), 3_000);
        assert_eq!(history.get(&key).map(|s| s.points.len()), Some(3));
    }
}
