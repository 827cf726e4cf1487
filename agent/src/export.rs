//! `[export]` in the agent: what is forwarded upstream through `faultline-export`, and how it
//! is tagged with faultline's pattern ids.
//!
//! - Received OTLP requests, as accepted, travel with their records through the record
//!   pipeline, which tags their error spans and logs ([`Forwarding::send_received`]) once the
//!   records are clustered; tailed log records go out as OTLP logs, tagged the same way
//!   ([`Forwarding::send_tailed`]). Tags: `faultline.cluster_id`, `faultline.template_id`,
//!   and `faultline.incident_id` / `faultline.culprit` when the latest diagnosis has grouped the
//!   pattern into an incident.
//! - Every `export.interval_ms`, [`report`] sends the pattern counters as one OTLP metric
//!   (`faultline.pattern.occurrences`, a cumulative sum per cluster id, as many series as the
//!   cluster store holds: at most `clustering.max_clusters`) and each incident that appeared or
//!   changed as an OTLP log record with the event name `faultline.incident`.
//! - What a kill -9 lost: [`report`] keeps the number of items in the buffer in
//!   `export-buffer.json` in the data directory while it changes (at most once per
//!   [`MARKER_INTERVAL`]), and removes it at a clean stop; a file found at start is counted as
//!   `lost_at_restart` ([`count_lost_at_restart`]).
//!
//! Execution model: the tagging runs on the record pipeline's task (a lookup per error
//! record, one incident index per batch); the report runs on a task of its own. Neither waits
//! for the upstream: both hand payloads to the exporter's buffer, which drops and counts what
//! does not fit.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use faultline_clustering::{ClusterQuery, Engine};
use faultline_diagnosis::incident::IncidentState;
use faultline_export::attributes::{string_attribute, CLUSTER_ID, CULPRIT, INCIDENT_ID};
use faultline_export::{DropReason, ExportStats, Exporter, PatternTags, Payload, Pending, Signal};
use faultline_ingest::otlp::{tag_logs, tag_spans, tailed_logs};
use faultline_ingest::{LogRecord, SpanId};
use faultline_web::model::StoreCounter;
use faultline_web::{Component, ComponentState, HealthRegistry};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord as OtlpLogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Metric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::diagnosis::IncidentBoard;

/// The name of the pattern counter metric.
pub const PATTERN_METRIC: &str = "faultline.pattern.occurrences";
/// The event name of incident log records.
pub const INCIDENT_EVENT: &str = "faultline.incident";
/// The instrumentation scope of what the agent itself emits.
const SCOPE: &str = "faultline";
/// The file that says how much was in the buffer, in the data directory.
const MARKER_FILE: &str = "export-buffer.json";
/// How often the buffer marker is rewritten when the buffer changed: a kill loses what
/// arrived since, uncounted, so short; one small atomic write a second is nothing next to the
/// state commits.
pub const MARKER_INTERVAL: Duration = Duration::from_secs(1);

/// The pattern ids of one clustered record, as the engine returned them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Its cluster id.
    pub cluster: Option<String>,
    /// Its template id.
    pub template: Option<String>,
}

/// Forwarding as the record pipeline uses it.
pub struct Forwarding {
    exporter: Exporter,
    incidents: Arc<IncidentBoard>,
}

/// Cluster id → (incident id, culprit) of the latest diagnosis.
type IncidentIndex = HashMap<String, (String, Option<String>)>;

impl Forwarding {
    /// Forwarding through `exporter`, with incident ids from `incidents`.
    pub fn new(exporter: Exporter, incidents: Arc<IncidentBoard>) -> Forwarding {
        Forwarding {
            exporter,
            incidents,
        }
    }

    /// The exporter.
    pub fn exporter(&self) -> &Exporter {
        &self.exporter
    }

    fn index(&self) -> IncidentIndex {
        let doc = self.incidents.incidents();
        let mut index = IncidentIndex::new();
        for incident in &doc.incidents {
            for pattern in &incident.patterns {
                let culprit = incident
                    .culprit
                    .service
                    .clone()
                    .or_else(|| pattern.culprit.as_ref().map(|c| c.service.clone()));
                // Incidents come most relevant first: the first one claiming a pattern wins.
                index
                    .entry(pattern.id.clone())
                    .or_insert_with(|| (incident.id.clone(), culprit));
            }
        }
        index
    }

    fn tags(&self, observed: &[Option<Observed>]) -> Vec<Option<PatternTags>> {
        if observed.iter().all(Option::is_none) {
            return vec![None; observed.len()];
        }
        let index = self.index();
        observed
            .iter()
            .map(|o| {
                let o = o.as_ref()?;
                let incident = o.cluster.as_ref().and_then(|c| index.get(c));
                let tags = PatternTags {
                    cluster_id: o.cluster.clone(),
                    template_id: o.template.clone(),
                    incident_id: incident.map(|(id, _)| id.clone()),
                    culprit: incident.and_then(|(_, culprit)| culprit.clone()),
                };
                (!tags.is_empty()).then_some(tags)
            })
            .collect()
    }

    /// Sends tailed records as OTLP logs, error records tagged; `observed[i]` is what
    /// clustering said of `records[i]`.
    pub fn send_tailed(&self, records: &[LogRecord], observed: &[Option<Observed>]) {
        let mut request = tailed_logs(records);
        tag_logs(&mut request, &self.tags(observed));
        self.exporter.offer(Payload::Logs(request));
    }

    /// Tags a received request with what clustering said of its records (`span_ids[i]` and
    /// `observed[i]` belong to its i-th record) and sends it.
    pub fn send_received(
        &self,
        mut pending: Pending,
        span_ids: &[Option<SpanId>],
        observed: &[Option<Observed>],
    ) {
        let tags = self.tags(observed);
        // Most requests carry no error: they go as the bytes they came in. Only a request with
        // something to tag is decoded (here, on the pipeline's task, not the receiver's).
        if tags.iter().any(Option::is_some) {
            let payload = pending.payload_mut();
            if let Err(e) = payload.decode_in_place() {
                // The receiver decoded these very bytes: not expected; sent untagged.
                tracing::warn!("cannot decode a forwarded request to tag it: {e}");
            }
            match payload {
                Payload::Traces(request) => {
                    let by_span: Vec<(SpanId, PatternTags)> = span_ids
                        .iter()
                        .zip(tags)
                        .filter_map(|(id, tags)| Some(((*id)?, tags?)))
                        .collect();
                    tag_spans(request, &by_span);
                }
                Payload::Logs(request) => tag_logs(request, &tags),
                Payload::Metrics(_) | Payload::Encoded(_) => {}
            }
        }
        pending.send();
    }
}

fn now_unix_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn nanos(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn resource(host: &str) -> Resource {
    Resource {
        attributes: vec![
            string_attribute("service.name", "faultline"),
            string_attribute("host.name", host),
        ],
        ..Default::default()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..Default::default()
    }
}

/// The pattern counters as one cumulative sum, one data point per cluster.
pub fn pattern_metrics(engine: &Engine, host: &str, now: i64) -> ExportMetricsServiceRequest {
    let clusters = engine.clusters(&ClusterQuery {
        window_secs: None,
        service: None,
        emerging_only: false,
        text: None,
        limit: 0,
        now_unix_nanos: now,
    });
    let data_points: Vec<NumberDataPoint> = clusters
        .iter()
        .map(|c| NumberDataPoint {
            attributes: vec![
                string_attribute(CLUSTER_ID, c.id.to_string()),
                string_attribute("faultline.pattern", c.name.clone()),
                string_attribute("faultline.severity", c.severity.clone()),
            ],
            // The count is kept across restarts (the cluster store is persisted): it has
            // accumulated since the pattern was first seen.
            start_time_unix_nano: nanos(c.first_seen_unix_nanos),
            time_unix_nano: nanos(now),
            value: Some(number_data_point::Value::AsInt(
                i64::try_from(c.count).unwrap_or(i64::MAX),
            )),
            ..Default::default()
        })
        .collect();
    if data_points.is_empty() {
        return ExportMetricsServiceRequest::default();
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource(host)),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(scope()),
                metrics: vec![Metric {
                    name: PATTERN_METRIC.to_owned(),
                    description: "Failures counted per error pattern (one per trace however \
                                  many records reported it), by stable cluster id."
                        .to_owned(),
                    unit: "{failure}".to_owned(),
                    data: Some(metric::Data::Sum(Sum {
                        data_points,
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        is_monotonic: true,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn string_array(key: &str, values: impl IntoIterator<Item = String>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue {
                values: values
                    .into_iter()
                    .map(|v| AnyValue {
                        value: Some(any_value::Value::StringValue(v)),
                    })
                    .collect(),
            })),
        }),
        ..Default::default()
    }
}

/// The incidents that appeared or changed since `sent` (what was sent of each, by id) as
/// OTLP log records with the event name [`INCIDENT_EVENT`]; `sent` is updated and forgets
/// incidents no longer listed.
pub fn incident_logs(
    incidents: &IncidentBoard,
    sent: &mut HashMap<String, String>,
    host: &str,
    now: i64,
) -> ExportLogsServiceRequest {
    let doc = incidents.incidents();
    let mut records = Vec::new();
    let mut listed = HashMap::new();
    for incident in &doc.incidents {
        let patterns: Vec<String> = incident.patterns.iter().map(|p| p.id.clone()).collect();
        // What a reader upstream would want to hear about again: the state, the culprit, the
        // title, the patterns. Not the counts or the last-active time, which move every run.
        let fingerprint = format!(
            "{}|{:?}|{:?}|{}|{}",
            incident.active,
            incident.state,
            incident.culprit.service,
            incident.title,
            patterns.join(",")
        );
        let changed = sent.get(&incident.id) != Some(&fingerprint);
        listed.insert(incident.id.clone(), fingerprint);
        if !changed {
            continue;
        }
        let mut attributes = vec![
            string_attribute(INCIDENT_ID, incident.id.clone()),
            KeyValue {
                key: "faultline.incident.active".to_owned(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::BoolValue(incident.active)),
                }),
                ..Default::default()
            },
            string_attribute(
                "faultline.incident.state",
                match incident.state {
                    _ if !incident.active => "ended",
                    IncidentState::Active => "active",
                    IncidentState::Recovering => "recovering",
                    IncidentState::Ended => "ended",
                }
                .to_owned(),
            ),
            KeyValue {
                key: "faultline.incident.onset_unix_ms".to_owned(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::IntValue(incident.onset_unix_ms)),
                }),
                ..Default::default()
            },
            string_array("faultline.incident.cluster_ids", patterns),
            string_array(
                "faultline.incident.hints",
                incident.hints.iter().map(|h| h.rule_id.clone()),
            ),
        ];
        if let Some(culprit) = &incident.culprit.service {
            attributes.push(string_attribute(CULPRIT, culprit.clone()));
        }
        // An ended incident says when it ended (the record is sent again when it ends: its
        // state is in the fingerprint).
        if let Some(ended) = incident.ended_unix_ms {
            attributes.push(KeyValue {
                key: "faultline.incident.ended_unix_ms".to_owned(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::IntValue(ended)),
                }),
                ..Default::default()
            });
        }
        // INFO whatever the state: an incident is an event about errors, not an error itself,
        // and an agent receiving it upstream must not cluster it as a pattern of its own.
        let (severity_number, severity_text) = (9, "INFO");
        records.push(OtlpLogRecord {
            time_unix_nano: nanos(incident.last_active_unix_ms.saturating_mul(1_000_000)),
            observed_time_unix_nano: nanos(now),
            severity_number,
            severity_text: severity_text.to_owned(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(incident.title.clone())),
            }),
            attributes,
            event_name: INCIDENT_EVENT.to_owned(),
            ..Default::default()
        });
    }
    *sent = listed;
    if records.is_empty() {
        return ExportLogsServiceRequest::default();
    }
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource(host)),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope()),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Items in the buffer as the marker file records them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct BufferMarker {
    /// Items (spans, log records, data points together) in the buffer.
    items: u64,
}

fn marker_path(data_dir: &Path) -> PathBuf {
    data_dir.join(MARKER_FILE)
}

/// Counts what the previous run had in its buffer when it was killed (its marker file is still
/// there) as `lost_at_restart`, and removes the marker. Returns the count.
pub fn count_lost_at_restart(exporter: &Exporter, data_dir: &Path) -> u64 {
    let path = marker_path(data_dir);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return 0;
    };
    let lost = match serde_json::from_str::<BufferMarker>(&text) {
        Ok(marker) => marker.items,
        Err(err) => {
            tracing::warn!("{}: unreadable ({err}); nothing counted", path.display());
            0
        }
    };
    if lost > 0 {
        // The marker does not say which signal: counted under logs, the bulk of what goes out.
        exporter.note_lost(Signal::Logs, DropReason::LostAtRestart, lost);
        tracing::warn!(
            "the previous run stopped without a clean shutdown with {lost} item(s) still \
             waiting to be forwarded: counted as lost"
        );
    }
    if let Err(err) = std::fs::remove_file(&path) {
        tracing::warn!("cannot remove {}: {err}", path.display());
    }
    lost
}

fn write_marker(data_dir: &Path, items: u64) {
    let path = marker_path(data_dir);
    let bytes = serde_json::to_vec(&BufferMarker { items }).unwrap_or_default();
    if let Err(err) = crate::persist::atomic::atomic_write(&path, &bytes, None) {
        tracing::debug!("cannot write {}: {err}", path.display());
    }
}

/// Sends the pattern counters and the changed incidents every `export.interval_ms`, and keeps
/// the buffer marker, until `stop`; then removes the marker once `sender` (the exporter's
/// task) has finished its drain.
pub async fn report(
    forwarding: Arc<Forwarding>,
    engine: Arc<Engine>,
    data_dir: PathBuf,
    health: HealthRegistry,
    sender: tokio::task::JoinHandle<()>,
    stop: CancellationToken,
) {
    let endpoint = forwarding.exporter.settings().endpoint.clone();
    let host = host_name();
    let interval = forwarding.exporter.settings().interval;
    let mut report_tick = tokio::time::interval(interval);
    report_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut marker_tick = tokio::time::interval(MARKER_INTERVAL);
    marker_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent = HashMap::new();
    let mut marked = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = report_tick.tick() => {
                let now = now_unix_nanos();
                let metrics = pattern_metrics(&engine, &host, now);
                forwarding.exporter.offer(Payload::Metrics(metrics));
                let logs = incident_logs(forwarding.incidents.as_ref(), &mut sent, &host, now);
                forwarding.exporter.offer(Payload::Logs(logs));
            }
            _ = marker_tick.tick() => {
                let stats = forwarding.exporter.stats();
                health.set("export", Component {
                    state: if stats.upstream.up || stats.upstream.last_error.is_none() {
                        ComponentState::Running
                    } else {
                        ComponentState::Failing
                    },
                    address: Some(endpoint.clone()),
                    detail: Some(health_detail(&endpoint, &stats)),
                });
                let items = stats.buffered_items;
                if marked != Some(items) {
                    write_marker(&data_dir, items);
                    marked = Some(items);
                }
            }
        }
    }
    // Whatever the sender could not deliver in its drain it has counted as `shutdown`.
    let _ = sender.await;
    let path = marker_path(&data_dir);
    if let Err(err) = std::fs::remove_file(&path) {
        if err.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("cannot remove {}: {err}", path.display());
        }
    }
}

/// The exporter's counters for `/metrics` (`faultline_store_export_*`).
pub fn counters(stats: &ExportStats) -> Vec<StoreCounter> {
    let counter = |name: String, help: String, value: u64| StoreCounter {
        name,
        help,
        value: value as f64,
    };
    let unit = |signal: Signal| match signal {
        Signal::Traces => "spans",
        Signal::Logs => "log_records",
        Signal::Metrics => "metric_points",
    };
    let mut rows = Vec::new();
    for signal in Signal::ALL {
        let i = signal as usize;
        rows.push(counter(
            format!("export_accepted_{}_total", unit(signal)),
            format!(
                "Forwarded {} handed to the exporter: delivered + dropped + buffered.",
                unit(signal).replace('_', " ")
            ),
            stats.accepted[i],
        ));
        rows.push(counter(
            format!("export_delivered_{}_total", unit(signal)),
            format!(
                "Forwarded {} the upstream took.",
                unit(signal).replace('_', " ")
            ),
            stats.delivered[i],
        ));
    }
    let mut by_reason: BTreeMap<DropReason, u64> = BTreeMap::new();
    for d in &stats.dropped {
        *by_reason.entry(d.reason).or_default() += d.items;
    }
    for reason in DropReason::ALL {
        rows.push(counter(
            format!("export_dropped_{}_total", reason.as_str()),
            format!(
                "Items (spans, log records, metric points) not forwarded: {}.",
                match reason {
                    DropReason::BufferFull => "the buffer was full (upstream slow or down)",
                    DropReason::Rejected => "refused by the upstream",
                    DropReason::Expired => "retried for export.max_retry_ms",
                    DropReason::Shutdown => "still waiting when the agent stopped",
                    DropReason::LostAtRestart => "in memory when the agent was killed",
                }
            ),
            by_reason.get(&reason).copied().unwrap_or(0),
        ));
    }
    rows.push(counter(
        "export_buffered_items".into(),
        "Items waiting to be forwarded or being sent.".into(),
        stats.buffered_items,
    ));
    rows.push(counter(
        "export_buffered_bytes".into(),
        "Encoded bytes held for forwarding (at most export.buffer_bytes).".into(),
        stats.buffered_bytes,
    ));
    rows.push(counter(
        "export_request_failures_total".into(),
        "Forwarding attempts that failed (each retry counts).".into(),
        stats.request_failures,
    ));
    rows.push(counter(
        "export_upstream_up".into(),
        "1 while the last forwarding request succeeded.".into(),
        u64::from(stats.upstream.up),
    ));
    rows
}

/// One line for the health page: where to, what went, what was dropped and why.
pub fn health_detail(endpoint: &str, stats: &ExportStats) -> String {
    let mut detail = format!(
        "{endpoint}: {} spans, {} log records, {} metric points delivered; {} buffered",
        stats.delivered[0], stats.delivered[1], stats.delivered[2], stats.buffered_items
    );
    if !stats.dropped.is_empty() {
        let drops: Vec<String> = stats
            .dropped
            .iter()
            .map(|d| format!("{} {} {}", d.items, d.signal.as_str(), d.reason.as_str()))
            .collect();
        detail.push_str(&format!("; dropped: {}", drops.join(", ")));
    }
    if let Some(error) = &stats.upstream.last_error {
        detail.push_str(&format!("; last error: {error}"));
    }
    detail
}

#[cfg(test)]
mod tests {
    use faultline_clustering::{ClusteringConfig, ErrorEvent};
    use faultline_export::ExportConfig;
    use faultline_web::model::IncidentsDocument;

    use super::*;

    /// Sets `board`'s document to one incident of `culprit`.
    fn set(board: &IncidentBoard, culprit: &str, active: bool) {
        let doc: IncidentsDocument = serde_json::from_value(serde_json::json!({
            "evaluated_at_unix_ms": 1,
            "series_judged": 0,
            "unjudged": [],
            "unjudged_omitted": 0,
            "incidents": [{
                "id": "00000000000000aa",
                "title": "EOF from inventory",
                "culprit": {"service": culprit, "role": null, "reasoning": [], "seen_in": []},
                "patterns": [{
                    "id": "00000000000000c1", "text": "EOF", "services": ["checkout"],
                    "culprit": null, "onset_unix_ms": 1, "last_seen_unix_ms": 2, "count": 3
                }],
                "counters": [],
                "hints": [],
                "onset_unix_ms": 1,
                "last_active_unix_ms": 2,
                "active": active,
                "ended_unix_ms": (!active).then_some(2),
                "trace_ids": []
            }]
        }))
        .expect("an incidents document");
        board.set(doc);
    }

    fn exporter() -> (Exporter, CancellationToken) {
        let settings = ExportConfig {
            // Nothing listens there; nothing in these tests waits for a delivery.
            otlp_endpoint: "http://127.0.0.1:9".into(),
            ..ExportConfig::default()
        }
        .validate()
        .expect("valid")
        .expect("on");
        let stop = CancellationToken::new();
        let (exporter, _task) =
            Exporter::spawn(settings, stop.clone(), Duration::from_millis(10)).expect("exporter");
        (exporter, stop)
    }

    #[tokio::test]
    async fn error_records_get_their_incident_and_culprit() {
        let (exporter, stop) = exporter();
        let board = Arc::new(IncidentBoard::default());
        set(&board, "inventory", true);
        let forwarding = Forwarding::new(exporter, board.clone());
        let tags = forwarding.tags(&[
            None,
            Some(Observed {
                cluster: Some("00000000000000c1".into()),
                template: Some("00000000000000d1".into()),
            }),
            Some(Observed {
                cluster: Some("00000000000000c2".into()),
                template: None,
            }),
        ]);
        assert_eq!(tags[0], None);
        assert_eq!(
            tags[1],
            Some(PatternTags {
                cluster_id: Some("00000000000000c1".into()),
                template_id: Some("00000000000000d1".into()),
                incident_id: Some("00000000000000aa".into()),
                culprit: Some("inventory".into()),
            })
        );
        // A pattern in no incident: its ids, no incident.
        let third = tags[2].clone().expect("tags");
        assert_eq!(third.incident_id, None);
        assert_eq!(third.culprit, None);
        stop.cancel();
    }

    #[test]
    fn an_incident_is_sent_when_it_appears_and_when_it_changes() {
        let board = IncidentBoard::default();
        set(&board, "inventory", true);
        let mut sent = HashMap::new();
        let first = incident_logs(&board, &mut sent, "node-1", 5);
        let records = &first.resource_logs[0].scope_logs[0].log_records;
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].event_name, INCIDENT_EVENT);
        let keys: Vec<&str> = records[0]
            .attributes
            .iter()
            .map(|kv| kv.key.as_str())
            .collect();
        assert!(
            keys.contains(&INCIDENT_ID) && keys.contains(&CULPRIT),
            "{keys:?}"
        );
        assert!(!keys.contains(&"faultline.incident.ended_unix_ms"));
        // Nothing new: nothing sent.
        let again = incident_logs(&board, &mut sent, "node-1", 6);
        assert!(again.resource_logs.is_empty());
        // It ended: sent again.
        set(&board, "inventory", false);
        let ended = incident_logs(&board, &mut sent, "node-1", 7);
        let records = &ended.resource_logs[0].scope_logs[0].log_records;
        assert_eq!(records.len(), 1);
        // It says when it ended.
        let at = records[0]
            .attributes
            .iter()
            .find(|kv| kv.key == "faultline.incident.ended_unix_ms")
            .and_then(|kv| kv.value.clone());
        assert_eq!(
            at,
            Some(AnyValue {
                value: Some(any_value::Value::IntValue(2))
            })
        );
    }

    #[test]
    fn pattern_counters_are_one_cumulative_point_per_cluster() {
        let engine = Engine::new(ClusteringConfig::default());
        for (i, text) in [
            "read: connection reset by peer",
            "read: connection reset by peer",
            "unexpected EOF",
        ]
        .iter()
        .enumerate()
        {
            engine.observe(&ErrorEvent {
                text,
                service: Some("checkout"),
                severity: "error",
                trace_id: None,
                span_id: None,
                time_unix_nanos: 1_000 + i as i64,
                stack: None,
                frame: None,
            });
        }
        let request = pattern_metrics(&engine, "node-1", 2_000);
        let metric = &request.resource_metrics[0].scope_metrics[0].metrics[0];
        assert_eq!(metric.name, PATTERN_METRIC);
        let Some(metric::Data::Sum(sum)) = &metric.data else {
            panic!("a sum: {metric:?}");
        };
        assert!(sum.is_monotonic);
        let mut counts: Vec<i64> = sum
            .data_points
            .iter()
            .map(|p| match p.value {
                Some(number_data_point::Value::AsInt(n)) => n,
                _ => -1,
            })
            .collect();
        counts.sort();
        assert_eq!(counts, [1, 2]);
        assert!(sum
            .data_points
            .iter()
            .all(|p| p.attributes[0].key == CLUSTER_ID));
    }

    #[tokio::test]
    async fn what_a_kill_left_in_the_buffer_is_counted_at_the_next_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (exporter, stop) = exporter();
        write_marker(dir.path(), 7);
        assert_eq!(count_lost_at_restart(&exporter, dir.path()), 7);
        assert_eq!(
            exporter
                .stats()
                .dropped_of(Signal::Logs, DropReason::LostAtRestart),
            7
        );
        assert!(!marker_path(dir.path()).exists());
        // Counted once.
        assert_eq!(count_lost_at_restart(&exporter, dir.path()), 0);
        stop.cancel();
    }
}
