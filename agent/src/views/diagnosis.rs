//! [`DiagnosisView`] over the engine and the counter store: builds the diagnosis' inputs and
//! asks `faultline-diagnosis` for its answers.

use super::axis::regular_axis;
use super::clusters::{detail_minutes, engine_detail, summary_row};
use super::Clock;
use std::sync::Arc;

use faultline_clustering::engine::SECOND_HISTORY;
use faultline_clustering::Engine;
use faultline_diagnosis::{
    traffic_points, traffic_points_from, what_moved_for, what_moved_with_incident, CounterHistory,
    CounterSeries, Emerging, EmergingKind, PatternActivity, PatternContext, TimeAxis,
};
use faultline_ingest::counters::store::CountersSnapshot as StoreSnapshot;
use faultline_ingest::counters::{CounterStore, SnapshotOptions};
use faultline_ingest::traces::{ServiceTraffic, TraceStore};
use faultline_series::{SeriesKey, TrafficMetric};
use faultline_web::model::{
    DiagnosisView, EmergenceKind, Incident, IncidentsDocument, MovedWithIt, SecondCounts,
};

use crate::diagnosis::IncidentBoard;

/// [`DiagnosisView`] over the engine, the trace store and the counter store: builds the
/// diagnosis' inputs (a pattern's activity and whose it is, the counters' per-sample history
/// and the services' request rates under their series keys) and asks `faultline-diagnosis`
/// for the answer.
pub(super) struct DiagnosisAdapter {
    pub(super) engine: Arc<Engine>,
    pub(super) traces: Arc<TraceStore>,
    pub(super) counters: Arc<CounterStore>,
    pub(super) clock: Clock,
    /// What the diagnosis loop learnt of the node's services (empty until its first run, and
    /// in a replay).
    pub(super) board: Arc<IncidentBoard>,
}

/// A pattern's activity and the services it was seen in.
struct Pattern {
    activity: PatternActivity,
    services: Vec<String>,
}

impl DiagnosisAdapter {
    /// The activity of one pattern as the engine knows it now.
    #[cfg(test)]
    fn activity(&self, id: &str) -> Option<PatternActivity> {
        self.pattern(id).map(|p| p.activity)
    }

    /// The pattern `id` names (a cluster or template id, current or retired: see
    /// [`engine_detail`]).
    fn pattern(&self, id: &str) -> Option<Pattern> {
        let now = (self.clock)();
        let detail = engine_detail(&self.engine, id, now)?;
        let row = summary_row(&detail.summary, &detail.per_minute, now);
        let services = row.services.clone();
        let activity = PatternActivity {
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
        };
        Some(Pattern { activity, services })
    }
}

impl DiagnosisAdapter {
    /// The counters' per-sample history with the services' request and failure rates laid on
    /// its axis: every series "what moved" judges.
    fn moved_history(&self) -> CounterHistory {
        let mut counters = counter_history(&self.counters.snapshot(&SnapshotOptions::default()));
        let traffic = traffic_series(self.traces.traffic(), counters.axis());
        counters.series.extend(traffic);
        counters
    }
}

impl DiagnosisView for DiagnosisAdapter {
    fn moved(&self, id: &str) -> Option<MovedWithIt> {
        let pattern = self.pattern(id)?;
        let counters = self.moved_history();
        // Where the pattern's failures live, voted over its recent traces of its current run
        // as its page does.
        let listeners = crate::culprits::listeners(&self.traces, &self.counters);
        let culprit = super::clusters::pattern_culprit(
            &self.engine,
            &self.traces,
            &listeners,
            &pattern.activity.id,
            crate::culprits::PATTERN_TRACES,
            (self.clock)(),
        )
        .filter(|c| c.resolved);
        let facts = self.board.facts();
        let agent_ports = self.counters.agent_ports();
        let context = PatternContext {
            services: &pattern.services,
            culprit: culprit.as_ref().map(|c| c.service.as_str()),
            facts: &facts.services,
            starts: &facts.starts,
            agent_ports: &agent_ports,
        };
        Some(what_moved_for(&pattern.activity, &counters, &context))
    }

    fn incident_moved(&self, incident: &Incident) -> Option<MovedWithIt> {
        if let Some(first) = incident.patterns.first() {
            return self.moved(&first.id);
        }
        let counters = self.moved_history();
        let facts = self.board.facts();
        let agent_ports = self.counters.agent_ports();
        let context = PatternContext {
            services: &incident.culprit.seen_in,
            culprit: incident.culprit.service.as_deref(),
            facts: &facts.services,
            starts: &facts.starts,
            agent_ports: &agent_ports,
        };
        Some(what_moved_with_incident(incident, &counters, &context))
    }

    fn incidents(&self) -> Arc<IncidentsDocument> {
        self.board.incidents()
    }
}

/// Every service's request and failure rates (from its SERVER spans and access lines) on
/// `axis` (a counter history's: [`CounterHistory::axis`], or [`store_axis`]), as the diagnosis
/// judges them: five-second means, unknown before the service's first request (see
/// [`traffic_points`]). Reads only the axis, never the counters' series.
pub(crate) fn traffic_series(traffic: &ServiceTraffic, axis: TimeAxis) -> Vec<CounterSeries> {
    let len = axis.len;
    if len == 0 {
        return Vec::new();
    }
    let now_secs = axis.time(len - 1).div_euclid(1000);
    let seconds = faultline_ingest::traces::TRAFFIC_SECONDS;
    let (start_ms, step_ms) = (axis.start_unix_ms, axis.step_ms);
    let mut out = Vec::new();
    for s in traffic.series(now_secs, seconds) {
        let start = s.start_unix_secs;
        let requests = traffic_points(start, &s.requests, start_ms, step_ms, len);
        // Failures are known wherever requests are: a second without any is 0, not a gap.
        let Some(first) = s.requests.iter().position(|&r| r > 0) else {
            continue;
        };
        let failures = traffic_points_from(
            start,
            &s.failures,
            start + first as i64,
            start_ms,
            step_ms,
            len,
        );
        out.push(CounterSeries {
            key: SeriesKey::ServiceTraffic {
                service: s.service.clone(),
                metric: TrafficMetric::Requests,
            },
            points: requests,
        });
        out.push(CounterSeries {
            key: SeriesKey::ServiceTraffic {
                service: s.service,
                metric: TrafficMetric::Errors,
            },
            points: failures,
        });
    }
    out
}

/// The axis [`counter_history`] lays the store's per-sample history on, without copying a
/// series: the services' traffic on the counters page is laid on it.
pub(super) fn store_axis(s: &StoreSnapshot) -> TimeAxis {
    let Some(h) = &s.history else {
        return TimeAxis::default();
    };
    let step_ms = i64::try_from(s.interval_ms).unwrap_or(i64::MAX).max(1);
    let (start_unix_ms, samples) = regular_axis(&h.seconds.times_unix_ms, step_ms);
    TimeAxis {
        start_unix_ms,
        step_ms,
        len: samples.len(),
    }
}

/// The store's per-sample history as the diagnosis reads it: every series under its key, on
/// the same regular axis as the counters document at per-second resolution.
pub(super) fn counter_history(s: &StoreSnapshot) -> CounterHistory {
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
        ..CounterHistory::default()
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
            traces: Arc::clone(&stores.traces),
            counters: Arc::clone(&stores.counters),
            clock: Arc::new(|| NOW),
            board: Arc::new(IncidentBoard::default()),
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
    fn services_request_and_failure_rates_are_laid_on_the_counters_axis() {
        use faultline_ingest::traces::RequestSource;
        let stores = stores();
        let now_s = NOW / 1_000_000_000;
        // ledger: 10 requests a second for the last 60 s, 2 of them failing from 30 s ago.
        for sec in (now_s - 60)..now_s {
            for k in 0..10 {
                let failed = sec >= now_s - 30 && k < 2;
                stores.traces.traffic().record(
                    "ledger",
                    sec * 1_000_000_000 + k * 1_000_000,
                    failed,
                    RequestSource::ServerSpan,
                );
            }
        }
        let history = CounterHistory {
            start_unix_ms: (now_s - 90) * 1000,
            step_ms: 1000,
            series: vec![CounterSeries {
                key: SeriesKey::OtherPortsTotal,
                points: vec![Some(0.0); 91],
            }],
            ..CounterHistory::default()
        };
        let series = traffic_series(stores.traces.traffic(), history.axis());
        let get = |metric| {
            series
                .iter()
                .find(|s| {
                    s.key
                        == SeriesKey::ServiceTraffic {
                            service: "ledger".into(),
                            metric,
                        }
                })
                .map(|s| s.points.clone())
                .expect("a series per metric")
        };
        let (requests, failures) = (get(TrafficMetric::Requests), get(TrafficMetric::Errors));
        assert_eq!(requests.len(), 91);
        // Unknown before the first request's five seconds; 10/s after.
        assert_eq!(requests[34], None);
        assert_eq!(requests[35], Some(10.0));
        assert_eq!(requests[90], Some(10.0));
        // Failures are known where requests are: 0 before the first, 2/s once they go on.
        assert_eq!(failures[34], None);
        assert_eq!(failures[35], Some(0.0));
        assert_eq!(failures[90], Some(2.0));
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
