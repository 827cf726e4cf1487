//! Helpers shared by this crate's unit tests.

/// A deterministic noise source (xorshift), so a failure reproduces.
pub(crate) struct Noise(pub(crate) u64);

impl Noise {
    /// The next value in `0..1`, in steps of 1/10 000.
    pub(crate) fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 10_000) as f64 / 10_000.0
    }
}

/// A recorded run's counters (`testdata/*.json`): per-second points by name, with the
/// first point's time and, when it has one, the point where the service restarted.
pub(crate) struct Recorded {
    data: serde_json::Value,
    /// Unix ms of the first point.
    pub(crate) start: i64,
    /// Index of the point where the service restarted, when the fixture says.
    pub(crate) restart: Option<i64>,
}

impl Recorded {
    /// Reads a fixture's text.
    pub(crate) fn parse(json: &str) -> Recorded {
        let data: serde_json::Value = serde_json::from_str(json).expect("the fixture is JSON");
        let start = data["start_unix_ms"].as_i64().expect("start_unix_ms");
        let restart = data["restart_point"].as_i64();
        Recorded {
            data,
            start,
            restart,
        }
    }

    /// A point index the fixture names (`fault_point`, ...).
    pub(crate) fn index(&self, name: &str) -> usize {
        self.data[name]
            .as_u64()
            .and_then(|i| usize::try_from(i).ok())
            .unwrap_or_else(|| panic!("the fixture has no {name}"))
    }

    /// A point index the fixture may name.
    pub(crate) fn maybe_index(&self, name: &str) -> Option<usize> {
        self.data[name]
            .as_u64()
            .and_then(|i| usize::try_from(i).ok())
    }

    /// The history of `series` (each on this recording's axis) as the agent had it at the
    /// end of point `last`: what a second-by-second replay judges at that point.
    pub(crate) fn history_until(
        &self,
        series: &[(faultline_series::SeriesKey, Vec<Option<f64>>)],
        last: usize,
    ) -> crate::history::CounterHistory {
        crate::history::CounterHistory {
            start_unix_ms: self.start,
            step_ms: 1000,
            series: series
                .iter()
                .map(|(key, points)| crate::history::CounterSeries {
                    key: key.clone(),
                    points: points[..=last].to_vec(),
                })
                .collect(),
            ..crate::history::CounterHistory::default()
        }
    }

    /// The points of the series recorded as `name`.
    pub(crate) fn points(&self, name: &str) -> Vec<Option<f64>> {
        self.data[name]
            .as_array()
            .unwrap_or_else(|| panic!("the fixture has no {name}"))
            .iter()
            .map(serde_json::Value::as_f64)
            .collect()
    }
}
