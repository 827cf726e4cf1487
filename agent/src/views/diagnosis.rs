//! [`DiagnosisView`] over the engine and the counter store: builds the diagnosis' inputs and
//! asks `faultline-diagnosis` for its answers.

use super::axis::regular_axis;
use super::clusters::{detail_minutes, engine_detail, summary_row};
use super::Clock;
use std::sync::Arc;

use faultline_clustering::engine::SECOND_HISTORY;
use faultline_clustering::Engine;
use faultline_diagnosis::{
    what_moved, CounterHistory, CounterSeries, Emerging, EmergingKind, PatternActivity,
};
use faultline_ingest::counters::store::CountersSnapshot as StoreSnapshot;
use faultline_ingest::counters::{CounterStore, SnapshotOptions};
use faultline_web::model::{DiagnosisView, EmergenceKind, MovedWithIt, SecondCounts};

/// [`DiagnosisView`] over the engine and the counter store: builds the diagnosis' inputs
/// (a pattern's activity, the counters' per-sample history under their series keys) and asks
/// `faultline-diagnosis` for the answer.
pub(super) struct DiagnosisAdapter {
    pub(super) engine: Arc<Engine>,
    pub(super) counters: Arc<CounterStore>,
    pub(super) clock: Clock,
}

impl DiagnosisAdapter {
    /// The activity of one pattern as the engine knows it now.
    fn activity(&self, id: &str) -> Option<PatternActivity> {
        let now = (self.clock)();
        let detail = engine_detail(&self.engine, id, now)?;
        let row = summary_row(&detail.summary, &detail.per_minute, now);
        Some(PatternActivity {
            id: row.id,
            first_seen_unix_ms: row.first_seen_unix_ms,
            emerging: row.emergence.map(|e| Emerging {
                kind: match e.kind {
                    EmergenceKind::New => EmergingKind::New,
                    EmergenceKind::Surge => EmergingKind::Surge,
                },
                since_unix_ms: e.since_unix_ms,
            }),
            per_minute: detail_minutes(&detail.per_minute, now),
            per_second: Some(SecondCounts::from_sparse(
                &detail.per_second,
                SECOND_HISTORY,
            )),
        })
    }
}

impl DiagnosisView for DiagnosisAdapter {
    fn moved(&self, id: &str) -> Option<MovedWithIt> {
        let activity = self.activity(id)?;
        let counters = counter_history(&self.counters.snapshot(&SnapshotOptions::default()));
        Some(what_moved(&activity, &counters))
    }
}

/// The store's per-sample history as the diagnosis reads it: every series under its key, on
/// the same regular axis as the counters document at per-second resolution.
fn counter_history(s: &StoreSnapshot) -> CounterHistory {
    let Some(h) = &s.history else {
        return CounterHistory::default();
    };
    let step_ms = i64::try_from(s.interval_ms).unwrap_or(i64::MAX).max(1);
    let (start_unix_ms, samples) = regular_axis(&h.seconds.times_unix_ms, step_ms);
    let series = h
        .seconds
        .series
        .iter()
        .map(|(key, values)| CounterSeries {
            key: key.clone(),
            points: samples
                .iter()
                .map(|at| Some(f64::from(values.get((*at)?).copied().flatten()?)))
                .collect(),
        })
        .collect();
    CounterHistory {
        start_unix_ms,
        step_ms,
        series,
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::views::test_support::*;
    use crate::views::NANOS_PER_MS;
    use faultline_series::PortSide;
    use faultline_series::{SeriesKey, SocketState};

    #[test]
    fn per_second_counts_are_dense_from_the_first_second_held() {
        let stores = stores();
        reset_storm(&stores.engine);
        let views = views_at(&stores, NOW);
        let id = views
            .clusters
            .summaries()
            .iter()
            .find(|r| r.canonical_template.ends_with("connection reset by peer"))
            .map(|r| r.id.clone())
            .expect("a row for the resets");
        let diagnosis = DiagnosisAdapter {
            engine: Arc::clone(&stores.engine),
            counters: Arc::clone(&stores.counters),
            clock: Arc::new(|| NOW),
        };
        let activity = diagnosis.activity(&id).expect("known cluster");
        let seconds = activity.per_second.expect("per-second counts");
        // Six resets 20 s apart from NOW - 3 min: one second each, zeros between.
        let first_ms = (NOW - 3 * MIN) / NANOS_PER_MS;
        assert_eq!(seconds.start_unix_ms, first_ms / 1000 * 1000);
        assert_eq!(seconds.counts.len(), 101);
        assert_eq!(seconds.counts.iter().sum::<u64>(), 6);
        assert_eq!(seconds.counts[0], 1);
        assert_eq!(seconds.counts[20], 1);
        assert!(diagnosis.activity("00000000000000ff").is_none());
        assert!(diagnosis.activity("not-an-id").is_none());
    }

    #[test]
    fn what_moved_is_answered_from_the_engine_and_the_counter_store() {
        let stores = stores();
        reset_storm(&stores.engine);
        // The counters: four minutes of samples a second apart up to NOW; TIME_WAIT on 8080
        // steps from 2 to 300 two seconds before the first reset (NOW - 3 min).
        let now_ms = NOW / NANOS_PER_MS;
        let onset_ms = (NOW - 3 * MIN) / NANOS_PER_MS;
        let t0 = now_ms - 240_000;
        for i in 0..=240 {
            let t = t0 + i * 1_000;
            let time_wait = if t < onset_ms - 2_000 { 2 } else { 300 };
            stores.counters.record_sample(sample(t, time_wait, 0, 100));
        }
        let views = views_at(&stores, NOW);
        let id = views
            .clusters
            .summaries()
            .iter()
            .find(|r| r.canonical_template.ends_with("connection reset by peer"))
            .map(|r| r.id.clone())
            .expect("a row for the resets");
        let doc = views.diagnosis.moved(&id).expect("known cluster");
        assert_eq!(doc.cluster_id, id);
        assert_eq!(doc.onset_unix_ms, onset_ms, "{}", doc.summary);
        let top = doc.moved.first().unwrap_or_else(|| panic!("{doc:#?}"));
        assert_eq!(top.label, "TIME-WAIT :8080");
        assert_eq!(
            top.key,
            SeriesKey::PortState {
                port: 8080,
                side: PortSide::Local,
                state: SocketState::TimeWait,
            }
        );
        assert_eq!(top.lead_ms, -2_000);
        assert!(views.diagnosis.moved("00000000000000ff").is_none());
    }
}
