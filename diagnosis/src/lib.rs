//! faultline-diagnosis: the answers an SRE acts on, computed from what the other crates
//! observed.
//!
//! This crate owns the *judgement* of faultline: when a pattern began (onset), which counter
//! series changed with it ("what moved"), which series broke from their own baseline on their
//! own (counter anomalies), which service a failure lives in (culprit), which patterns and
//! anomalies are one incident, and which hint rules match. Every function here is pure: it
//! takes plain, typed inputs — counter histories keyed by [`faultline_series::SeriesKey`],
//! a pattern's occurrence counts, call-chain summaries — reads no clock and no store, and
//! returns documents that carry their evidence and reasoning (DESIGN.md decision 9). The same
//! inputs always give the same answer, so the agent, `faultline replay` and the tests all get
//! the same diagnosis.
//!
//! It does not own the data: the counter store, the trace store and the cluster store live
//! in `faultline-ingest` and `faultline-clustering`, and the binary (`faultline`) builds this
//! crate's inputs from them. It does not present anything: `faultline-web` renders the
//! documents returned here.

pub mod activity;
pub mod anomaly;
pub mod baseline;
pub mod culprit;
pub mod hints;
pub mod history;
pub mod incident;
pub mod moved;
pub mod onset;
#[cfg(test)]
mod testing;
mod text;

pub use activity::{Emerging, EmergingKind, MinuteCounts, PatternActivity, SecondCounts};
pub use history::{
    traffic_points, traffic_points_from, CounterHistory, CounterSeries, Series, TimeAxis,
};
pub use moved::{
    what_moved, what_moved_for, what_moved_with_incident, MovedConfidence, MovedCounter,
    MovedRelation, MovedUnjudged, MovedVerdict, MovedWithIt, PatternContext,
};
pub use onset::{Onset, OnsetSource};
pub use text::clock;
