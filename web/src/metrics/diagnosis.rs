//! The diagnosis on `/metrics`: incidents by culprit and hint, counter anomalies by series
//! kind (in incidents, or node activity), and how much of the node the anomaly detector could judge.
//!
//! Read from the latest incidents document at each scrape (the diagnosis runs in the agent
//! about once a second). Bounds: the incidents the agent keeps (a few dozen at most), the
//! hint rules, the eleven series kinds. Labels come from service names and rule ids, which
//! the encoder escapes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::{family, single, Value};
use crate::model::{CounterKind, DiagnosisView, IncidentState, IncidentsDocument};

/// The `culprit` label of an incident whose culprit no signal names.
const UNKNOWN_CULPRIT: &str = "unknown";
/// The `hint` label of an incident no hint rule matched.
const NO_HINT: &str = "none";

/// The diagnosis' figures, read from the incidents at each scrape.
pub(super) struct DiagnosisCollector {
    diagnosis: Arc<dyn DiagnosisView>,
}

impl DiagnosisCollector {
    /// The collector over the incidents `diagnosis` serves.
    pub(super) fn new(diagnosis: Arc<dyn DiagnosisView>) -> DiagnosisCollector {
        DiagnosisCollector { diagnosis }
    }
}

impl fmt::Debug for DiagnosisCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiagnosisCollector").finish_non_exhaustive()
    }
}

/// Active incidents per (culprit, top hint).
fn active_by_culprit_and_hint(doc: &IncidentsDocument) -> BTreeMap<(&str, &str), u64> {
    let mut active = BTreeMap::new();
    for incident in doc.incidents.iter().filter(|i| i.active) {
        let culprit = incident
            .culprit
            .service
            .as_deref()
            .unwrap_or(UNKNOWN_CULPRIT);
        let hint = incident
            .hints
            .first()
            .map_or(NO_HINT, |h| h.rule_id.as_str());
        *active.entry((culprit, hint)).or_insert(0) += 1;
    }
    active
}

/// Active counter anomalies per series kind and where the diagnosis put them: `incident`
/// (a counter of an incident; two incidents may share one, counted once) or `node` (node
/// activity that is not an incident). Every kind is present, 0 when none.
fn anomalies_by_kind(doc: &IncidentsDocument) -> BTreeMap<(&'static str, &'static str), u64> {
    let mut by_kind = BTreeMap::new();
    for kind in CounterKind::ALL {
        for place in ["incident", "node"] {
            by_kind.insert((kind.api_name(), place), 0);
        }
    }
    let in_incidents = doc
        .incidents
        .iter()
        .flat_map(|i| &i.counters)
        .map(|c| ("incident", &c.anomaly));
    let on_node = doc.node_signals.iter().map(|s| ("node", &s.anomaly));
    let mut seen = BTreeSet::new();
    for (place, anomaly) in in_incidents.chain(on_node) {
        if anomaly.active && seen.insert((place, &anomaly.key)) {
            *by_kind.entry((anomaly.kind.api_name(), place)).or_insert(0) += 1;
        }
    }
    by_kind
}

fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn seconds(ms: impl Into<f64>) -> Value {
    Value::Float(ms.into() / 1000.0)
}

/// Whether the diagnosis keeps up (see [`crate::model::DiagnosisRun`]): how old the served
/// incidents are at `now`, how long its runs take, how old the counters it judged were.
fn encode_run(e: &mut DescriptorEncoder, doc: &IncidentsDocument, now: i64) -> fmt::Result {
    let run = &doc.run;
    let gauge = MetricType::Gauge;
    single(
        e,
        "faultline_diagnosis_lag_seconds",
        "How old the incidents served now are: the time since the latest diagnosis run \
         started. About the run interval when it keeps up; more means every answer is late.",
        gauge,
        seconds((now - doc.evaluated_at_unix_ms).max(0) as f64),
    )?;
    single(
        e,
        "faultline_diagnosis_run_seconds",
        "How long the latest diagnosis run took.",
        gauge,
        seconds(run.duration_ms as f64),
    )?;
    single(
        e,
        "faultline_diagnosis_run_slowest_seconds",
        "The slowest diagnosis run of the last minute.",
        gauge,
        seconds(run.slowest_ms_1m as f64),
    )?;
    single(
        e,
        "faultline_diagnosis_interval_seconds",
        "The configured time between diagnosis runs.",
        gauge,
        seconds(run.interval_ms as f64),
    )?;
    single(
        e,
        "faultline_diagnosis_runs",
        "Diagnosis runs since the agent started.",
        MetricType::Counter,
        Value::from(run.runs),
    )?;
    single(
        e,
        "faultline_anomaly_series_judged_in_full",
        "Counter series the anomaly detector judged in full in its latest run (the others kept \
         an earlier run's verdict: their latest points stayed inside their usual band).",
        gauge,
        Value::from(run.series_judged_in_full),
    )?;
    single(
        e,
        "faultline_anomaly_series_deferred",
        "Counter series that needed a judgement in the latest run and were left for a later \
         one (a run judges a bounded number in full); each is listed as unjudged with why.",
        gauge,
        Value::from(run.series_deferred),
    )?;
    single(
        e,
        "faultline_diagnosis_runs_overran",
        "Diagnosis runs that took longer than their interval (the next run started late).",
        MetricType::Counter,
        Value::from(run.overran),
    )?;
    if run.counters_sampled_at_unix_ms > 0 {
        single(
            e,
            "faultline_diagnosis_counters_age_seconds",
            "How old the newest counter sample was when the latest diagnosis run judged it \
             (the sampler falling behind shows here).",
            gauge,
            seconds((doc.evaluated_at_unix_ms - run.counters_sampled_at_unix_ms).max(0) as f64),
        )?;
    }
    Ok(())
}

impl Collector for DiagnosisCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let doc = self.diagnosis.incidents();
        let e = &mut encoder;
        let gauge = MetricType::Gauge;

        let going_on = |state: IncidentState| {
            doc.incidents
                .iter()
                .filter(|i| i.active && i.state == state)
                .count()
        };
        family(
            e,
            "faultline_incidents",
            "Incidents the agent keeps: state=\"active\" goes on, state=\"recovering\" stopped \
             (no failure, counters no longer moving away) and is not over yet, state=\"ended\" \
             ended within the last 30 minutes.",
            gauge,
            [
                ("active", going_on(IncidentState::Active)),
                ("recovering", going_on(IncidentState::Recovering)),
                ("ended", doc.incidents.iter().filter(|i| !i.active).count()),
            ]
            .map(|(state, n)| ([("state", state)], Value::from(n))),
        )?;
        family(
            e,
            "faultline_incidents_active",
            "Active incidents by culprit (the service where the fault lives, \"unknown\" when no \
             signal names one) and top hint (the rule id of the first matching hint, \"none\").",
            gauge,
            active_by_culprit_and_hint(&doc)
                .into_iter()
                .map(|((culprit, hint), n)| {
                    ([("culprit", culprit), ("hint", hint)], Value::from(n))
                }),
        )?;
        family(
            e,
            "faultline_anomalies",
            "Active counter anomalies by series kind, each series once: in=\"incident\" for the \
             counters of incidents, in=\"node\" for node activity that is not an incident.",
            gauge,
            anomalies_by_kind(&doc)
                .into_iter()
                .map(|((kind, place), n)| ([("kind", kind), ("in", place)], Value::from(n))),
        )?;
        single(
            e,
            "faultline_anomaly_series_judged",
            "Counter series the anomaly detector judged in its latest run.",
            gauge,
            Value::from(doc.series_judged),
        )?;
        single(
            e,
            "faultline_anomaly_series_unjudged",
            "Counter series the anomaly detector could not judge in its latest run (too little \
             baseline, appeared after the start).",
            gauge,
            Value::from(doc.unjudged.len() as u64 + doc.unjudged_omitted),
        )?;
        if doc.evaluated_at_unix_ms > 0 {
            single(
                e,
                "faultline_diagnosis_evaluated_timestamp_seconds",
                "When the diagnosis last ran (Unix seconds); an old value means it is stuck.",
                gauge,
                Value::from(doc.evaluated_at_unix_ms as f64 / 1000.0),
            )?;
            encode_run(e, &doc, now_unix_ms())?;
        }
        Ok(())
    }
}
