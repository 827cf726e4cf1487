//! [`TraceView`] over the trace store: call chains as span trees and the trace list.

use super::clusters::tag_ids;
use super::{counter, NANOS_PER_US};
use crate::culprits;
use std::sync::Arc;

use faultline_clustering::Engine;
use faultline_ingest::counters::CounterStore;
use faultline_ingest::traces::{
    CallChain as StoreChain, ChainNode, SpanKind, StatusCode, TraceFilter, TraceStore,
    TraceSummary as StoreTraceSummary,
};
use faultline_ingest::{Level, LogRecord, TraceId};
use faultline_web::model::{
    Attribute, CallChain, ChainLog, ChainSpan, SpanStatus, StoreCounter, TraceQuery, TraceSummary,
    TraceView,
};

/// Log-record attribute naming the cluster the pipeline assigned the record to; shown as the
/// log's `cluster_id` in call chains when it holds a well-formed id.
pub use faultline_ingest::traces::CLUSTER_ID_ATTRIBUTE;

/// [`TraceView`] over the trace store.
pub(super) struct TraceAdapter {
    pub(super) store: Arc<TraceStore>,
    /// The clustering engine, for the pattern a `cluster` filter names now.
    pub(super) engine: Arc<Engine>,
    /// Who listens on the node's ports, for the culprit of a callee that sent no span.
    pub(super) counters: Arc<CounterStore>,
}

impl TraceView for TraceAdapter {
    fn call_chain(&self, trace_id: &str) -> Option<CallChain> {
        let id: TraceId = trace_id.parse().ok()?;
        let chain = self.store.call_chain(id)?;
        let mut doc = call_chain(&chain);
        // One verdict, with every listener the node knows, for both the culprit and the span
        // the page marks as the origin (the chain's own was judged with spans' listeners).
        let culprit = culprits::of_trace(&chain, &culprits::listeners(&self.store, &self.counters));
        doc.error_origin_span_id = culprit
            .clone()
            .and_then(|c| chain.origin_of(c))
            .map(|o| o.span_id.to_string());
        doc.culprit = culprit;
        Some(doc)
    }

    fn find(&self, query: &TraceQuery) -> Vec<TraceSummary> {
        let rows = self.store.list(&TraceFilter {
            // A pattern's old id (or a template's) lists the traces of the pattern it is now.
            clusters: query
                .cluster
                .as_deref()
                .map(|id| tag_ids(&self.engine, id))
                .unwrap_or_default(),
            service: query.service.clone(),
            errors_only: query.errors_only,
            limit: Some(query.limit.max(1)),
        });
        rows.iter().map(trace_summary).collect()
    }

    /// The latest touched traces with spans, from the store's eviction order: no scan of the
    /// store, and no culprit judged (the diagnosis reads who calls whom in them).
    fn recent_chains(&self, limit: usize) -> Vec<CallChain> {
        self.store
            .recent_with_spans(limit)
            .into_iter()
            .filter_map(|id| self.store.call_chain(id))
            .map(|chain| call_chain(&chain))
            .collect()
    }

    fn store_counters(&self) -> Vec<StoreCounter> {
        let s = self.store.stats();
        vec![
            counter("traces", "Traces held by the trace store.", s.traces as f64),
            counter(
                "trace_spans",
                "Spans held by the trace store.",
                s.spans as f64,
            ),
            counter(
                "trace_logs",
                "Log records held by the trace store.",
                s.logs as f64,
            ),
            counter(
                "traces_evicted_total",
                "Traces evicted because the trace bound was reached.",
                s.evicted_traces as f64,
            ),
            counter(
                "traces_expired_total",
                "Traces expired after the retention time without a new span or log.",
                s.expired_traces as f64,
            ),
            counter(
                "trace_spans_refused_total",
                "Spans refused because their trace held the most spans allowed.",
                s.refused_spans as f64,
            ),
            counter(
                "trace_logs_dropped_total",
                "Log records dropped because their trace held the most logs allowed.",
                s.dropped_logs as f64,
            ),
        ]
    }
}

/// A trace list row. A trace of logs only has no root span: its root service and name are
/// empty.
fn trace_summary(row: &StoreTraceSummary) -> TraceSummary {
    TraceSummary {
        trace_id: row.trace_id.to_string(),
        root_service: row.root_service.clone().unwrap_or_default(),
        root_name: row.root_operation.clone().unwrap_or_default(),
        start_unix_us: row.start_unix_nanos.div_euclid(NANOS_PER_US),
        duration_us: row.duration_nanos.div_euclid(NANOS_PER_US),
        span_count: row.span_count as u64,
        error_count: row.error_count as u64,
        services: row.services.clone(),
        cluster_ids: row.cluster_ids.clone(),
    }
}

/// The chain as the web model wants it: spans depth first (each parent before its children,
/// siblings by start time), the store's extra roots (orphans, then subtrees cut for depth or
/// cycles) after the real root, each at depth 0 without a parent.
fn call_chain(chain: &StoreChain) -> CallChain {
    let mut spans = Vec::with_capacity(chain.span_count);
    // An explicit stack: the store bounds the depth, but nothing here relies on it.
    let mut stack: Vec<(&ChainNode, u32, Option<String>)> = chain
        .roots
        .iter()
        .rev()
        .map(|root| (root, 0, None))
        .collect();
    while let Some((node, depth, parent)) = stack.pop() {
        let id = node.span.span_id.to_string();
        for child in node.children.iter().rev() {
            stack.push((child, depth.saturating_add(1), Some(id.clone())));
        }
        spans.push(chain_span(node, id, depth, parent));
    }
    CallChain {
        trace_id: chain.trace_id.to_string(),
        spans,
        error_origin_span_id: chain.error_origin.as_ref().map(|o| o.span_id.to_string()),
        unattached_logs: chain.unplaced_logs.iter().map(chain_log).collect(),
        cluster_ids: chain.cluster_ids.clone(),
        culprit: None,
    }
}

/// One span. Its start is the store's clock-skew-corrected start, so that a child of another
/// service sits inside its parent in the waterfall; the applied shift, the store's orphan and
/// detached flags, the span's cluster ids and its events are shown as `faultline.*` and
/// `event.*` attributes after the span's own.
fn chain_span(node: &ChainNode, span_id: String, depth: u32, parent: Option<String>) -> ChainSpan {
    let span = &node.span;
    let mut attributes: Vec<Attribute> = span
        .attributes
        .iter()
        .map(|(key, value)| Attribute {
            key: key.clone(),
            value: value.clone(),
        })
        .collect();
    let mut extra = |key: &str, value: String| {
        attributes.push(Attribute {
            key: key.to_owned(),
            value,
        })
    };
    if node.clock_skew_nanos != 0 {
        extra(
            "faultline.clock_skew_us",
            (node.clock_skew_nanos / NANOS_PER_US).to_string(),
        );
    }
    if node.orphan {
        extra("faultline.orphan", "true".to_owned());
    }
    if node.detached {
        extra("faultline.detached", "true".to_owned());
    }
    if !node.cluster_ids.is_empty() {
        extra("faultline.cluster_ids", node.cluster_ids.join(","));
    }
    for event in &span.events {
        let value = event
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        extra(&format!("event.{}", event.name), value);
    }
    ChainSpan {
        span_id,
        parent_span_id: parent,
        depth,
        service: span.service.clone(),
        name: span.name.clone(),
        kind: span_kind(span.kind).to_owned(),
        start_unix_us: span
            .start_unix_nanos
            .saturating_add(node.clock_skew_nanos)
            .div_euclid(NANOS_PER_US),
        duration_us: node.duration_nanos / NANOS_PER_US,
        status: match span.status {
            StatusCode::Unset => SpanStatus::Unset,
            StatusCode::Ok => SpanStatus::Ok,
            StatusCode::Error => SpanStatus::Error,
        },
        status_message: (!span.status_message.is_empty()).then(|| span.status_message.clone()),
        attributes,
        logs: node.logs.iter().map(chain_log).collect(),
    }
}

fn span_kind(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Unspecified => "unspecified",
        SpanKind::Internal => "internal",
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Unknown => "unknown",
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
        Level::Fatal => "fatal",
        Level::Panic => "panic",
    }
}

/// A log record under a span. The message is the record's message, followed by its separate
/// error field when it has one (`msg: error`, as Go wraps errors). The store does not keep
/// which cluster a record went to: `cluster_id` is read from the [`CLUSTER_ID_ATTRIBUTE`]
/// attribute when the pipeline set it (and it is a well-formed id), else `None`.
fn chain_log(record: &LogRecord) -> ChainLog {
    let message = match &record.error {
        Some(error) if !record.message.contains(error.as_str()) => {
            if record.message.is_empty() {
                error.clone()
            } else {
                format!("{}: {error}", record.message)
            }
        }
        _ => record.message.clone(),
    };
    ChainLog {
        time_unix_us: record
            .time_unix_nanos
            .unwrap_or(record.observed_unix_nanos)
            .div_euclid(NANOS_PER_US),
        service: record.service.clone().unwrap_or_default(),
        level: level_name(record.level).to_owned(),
        message,
        cluster_id: record
            .attributes
            .iter()
            .find(|(key, _)| key == CLUSTER_ID_ATTRIBUTE)
            .map(|(_, value)| value)
            .filter(|v| {
                v.len() == 16
                    && v.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
            .cloned(),
        stack: record.stack().map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use faultline_ingest::traces::SpanEvent;
    use faultline_ingest::Origin;

    use crate::views::test_support::*;

    fn log(
        trace: u8,
        span: Option<u8>,
        level: Level,
        message: &str,
        error: Option<&str>,
        t: i64,
    ) -> LogRecord {
        LogRecord {
            time_unix_nanos: Some(t),
            observed_unix_nanos: t + 5,
            level,
            service: Some("user-svc".into()),
            message: message.into(),
            error: error.map(str::to_owned),
            http_status: None,
            trace_id: Some(trace_id(trace)),
            span_id: span.map(span_id),
            attributes: Vec::new(),
            origin: Origin::OtlpLog,
            truncated: false,
        }
    }

    /// A gateway call to user-svc whose database query failed with a reset, arriving innermost
    /// first, with an error log under the query, an info log naming an unknown span, and a
    /// healthy second trace.
    fn failing_trace(stores: &Stores, cluster: &str) {
        let t = NOW - MIN;
        let ms = 1_000_000;
        let mut query = span(
            1,
            3,
            Some(2),
            "user-svc",
            "SELECT users",
            (t + 20 * ms, t + 25 * ms),
            StatusCode::Error,
        );
        query.events.push(SpanEvent {
            name: "exception".into(),
            time_unix_nanos: t + 25 * ms,
            attributes: vec![("exception.message".into(), "connection reset".into())],
        });
        stores.traces.insert_spans(vec![
            query,
            span(
                1,
                1,
                None,
                "api-gateway",
                "GET /users/:id",
                (t, t + 40 * ms),
                StatusCode::Unset,
            ),
            span(
                1,
                2,
                Some(1),
                "user-svc",
                "GET /users/:id",
                (t + 10 * ms, t + 30 * ms),
                StatusCode::Unset,
            ),
        ]);
        let mut error_log = log(
            1,
            Some(3),
            Level::Error,
            "query failed",
            Some("read tcp 10.0.0.5:41000->10.0.0.9:5432: read: connection reset by peer"),
            t + 24 * ms,
        );
        error_log
            .attributes
            .push((CLUSTER_ID_ATTRIBUTE.into(), cluster.into()));
        assert!(stores.traces.attach_log(error_log));
        assert!(stores.traces.attach_log(log(
            1,
            Some(77),
            Level::Info,
            "retrying",
            None,
            t + 35 * ms
        )));
        stores
            .traces
            .tag_cluster(trace_id(1), Some(span_id(3)), cluster);
        stores.traces.insert_spans(vec![span(
            2,
            1,
            None,
            "api-gateway",
            "GET /health",
            (t + 60 * ms, t + 61 * ms),
            StatusCode::Ok,
        )]);
    }

    /// The Go lab's eof fault: orders closes connections without answering or logging; its
    /// SERVER span is unset and frontend's CLIENT span carries `Get "http://…": EOF`. The
    /// trace page's origin, its culprit, the pattern's culprit and the incident built from it
    /// are one decision (diagnosis' culprit attribution): orders, not the caller's CLIENT span.
    #[test]
    fn the_trace_page_the_pattern_and_the_incident_agree_on_where_an_eof_starts() {
        use faultline_diagnosis::hints::{CulpritRole, HintRules};
        use faultline_diagnosis::incident::{
            DiagnosisInput, IncidentTracker, PatternCulprit, PatternInput,
        };

        let stores = stores();
        let cluster = "00c10575e5ed0eof";
        let t = NOW - MIN;
        let ms = 1_000_000;
        let eof = r#"Get "http://127.0.0.1:18081/v1/orders/7": EOF"#;
        for trace in 1..=3u8 {
            let mut call = span(
                trace,
                2,
                Some(1),
                "frontend",
                "GET",
                (t + 2 * ms, t + 9 * ms),
                StatusCode::Error,
            );
            call.status_message = eof.into();
            let mut callee = span(
                trace,
                3,
                Some(2),
                "orders",
                "GET /v1/orders/:id",
                (t + 3 * ms, t + 8 * ms),
                StatusCode::Unset,
            );
            callee.kind = SpanKind::Server;
            let root = span(
                trace,
                1,
                None,
                "frontend",
                "GET /api/orders/:id",
                (t, t + 10 * ms),
                StatusCode::Unset,
            );
            stores.traces.insert_spans(vec![call, callee, root]);
            let mut line = log(
                trace,
                Some(1),
                Level::Error,
                "orders call failed",
                Some(eof),
                t + 9 * ms,
            );
            line.service = Some("frontend".into());
            line.attributes
                .push((CLUSTER_ID_ATTRIBUTE.into(), cluster.into()));
            assert!(stores.traces.attach_log(line));
            stores
                .traces
                .tag_cluster(trace_id(trace), Some(span_id(2)), cluster);
        }

        let views = views_at(&stores, NOW);
        let page = views
            .traces
            .call_chain(&trace_id(1).to_string())
            .expect("trace held");
        let culprit = page.culprit.as_ref().expect("a culprit");
        assert_eq!(
            (culprit.service.as_str(), culprit.role),
            ("orders", CulpritRole::Callee)
        );
        assert_eq!(
            page.error_origin_span_id.as_deref(),
            Some(span_id(3).to_string().as_str()),
            "the origin is orders' SERVER span"
        );
        assert_eq!(culprit.span_id, page.error_origin_span_id);
        let stored = stores.traces.call_chain(trace_id(1)).expect("trace held");
        let origin = stored
            .error_origin
            .expect("the store's chain has an origin");
        assert_eq!(
            (origin.service.as_str(), origin.span_id),
            ("orders", span_id(3))
        );

        let listeners = culprits::listeners(&stores.traces, &stores.counters);
        let pattern = culprits::of_pattern(
            &stores.traces,
            &listeners,
            &[cluster.to_owned()],
            10,
            None,
            None,
        )
        .expect("the pattern's culprit");
        assert_eq!(
            (pattern.service.as_str(), pattern.role),
            ("orders", CulpritRole::Callee)
        );
        assert_eq!(pattern.traces_agreeing, 3);

        // The incident is built from the pattern's culprit, as the diagnosis loop does.
        let input = PatternInput {
            id: cluster.into(),
            text: "Get \"<url>\": EOF".into(),
            example: Some(eof.into()),
            services: vec!["frontend".into()],
            culprit: Some(PatternCulprit {
                service: pattern.service.clone(),
                role: pattern.role,
                reasoning: pattern.headline.clone(),
            }),
            onset_unix_ms: t / 1_000_000,
            last_seen_unix_ms: t / 1_000_000,
            count: 3,
            untraced: 0,
            trace_ids: (1..=3u8).map(|n| trace_id(n).to_string()).collect(),
            failed_before: Vec::new(),
            status_echo: false,
        };
        let report = faultline_diagnosis::anomaly::AnomalyReport {
            anomalies: Vec::new(),
            ..Default::default()
        };
        let mut tracker = IncidentTracker::new();
        let incidents = tracker.update(
            &DiagnosisInput {
                now_unix_ms: t / 1_000_000 + 1_000,
                patterns: &[input],
                anomalies: &report,
                services: &[],
                history: &Default::default(),
                api: None,
                agent_ports: &[],
            },
            &HintRules::builtin().expect("rules"),
        );
        assert_eq!(incidents[0].culprit.service.as_deref(), Some("orders"));
        assert_eq!(incidents[0].hints[0].rule_id, "callee-closed");
    }

    #[test]
    fn call_chain_is_flattened_with_depth_origin_and_logs_under_their_span() {
        let stores = stores();
        failing_trace(&stores, "00c10575e5ed1234");
        let views = views_at(&stores, NOW);
        let chain = views
            .traces
            .call_chain(&trace_id(1).to_string())
            .expect("trace held");
        assert_eq!(chain.trace_id, "4bf92f3577b34da6a3ce929d00000001");
        let order: Vec<(&str, Option<&str>, u32)> = chain
            .spans
            .iter()
            .map(|s| (s.span_id.as_str(), s.parent_span_id.as_deref(), s.depth))
            .collect();
        assert_eq!(
            order,
            [
                ("a100000000000001", None, 0),
                ("a100000000000002", Some("a100000000000001"), 1),
                ("a100000000000003", Some("a100000000000002"), 2),
            ]
        );
        assert_eq!(
            chain.error_origin_span_id.as_deref(),
            Some("a100000000000003")
        );
        let root = &chain.spans[0];
        assert_eq!(root.kind, "server");
        assert_eq!(root.service, "api-gateway");
        assert_eq!(root.start_unix_us, (NOW - MIN) / 1_000);
        assert_eq!(root.duration_us, 40_000);
        assert!(root.logs.is_empty());
        let query = &chain.spans[2];
        assert_eq!(query.status, SpanStatus::Error);
        assert_eq!(
            query.status_message.as_deref(),
            Some("read: connection reset by peer")
        );
        assert_eq!(query.start_unix_us, (NOW - MIN) / 1_000 + 20_000);
        assert!(query.attributes.contains(&Attribute {
            key: "event.exception".into(),
            value: "exception.message=connection reset".into(),
        }));
        assert!(query.attributes.contains(&Attribute {
            key: "faultline.cluster_ids".into(),
            value: "00c10575e5ed1234".into(),
        }));
        assert_eq!(query.logs.len(), 1);
        let log = &query.logs[0];
        assert_eq!(log.level, "error");
        assert_eq!(
            log.message,
            "query failed: read tcp 10.0.0.5:41000->10.0.0.9:5432: read: connection reset by peer"
        );
        assert_eq!(log.time_unix_us, (NOW - MIN) / 1_000 + 24_000);
        assert_eq!(log.cluster_id.as_deref(), Some("00c10575e5ed1234"));
        assert_eq!(chain.unattached_logs.len(), 1);
        assert_eq!(chain.unattached_logs[0].message, "retrying");
        assert_eq!(chain.unattached_logs[0].cluster_id, None);
        assert_eq!(chain.cluster_ids, ["00c10575e5ed1234"]);

        assert!(views.traces.call_chain(&trace_id(3).to_string()).is_none());
        assert!(views.traces.call_chain("zz").is_none());
    }

    #[test]
    fn trace_list_counts_errors_and_filters() {
        let stores = stores();
        failing_trace(&stores, "00c10575e5ed1234");
        let views = views_at(&stores, NOW);
        let all = views.traces.find(&TraceQuery {
            limit: 10,
            ..TraceQuery::default()
        });
        assert_eq!(all.len(), 2);
        // Newest first: the health check started after the failing call.
        assert_eq!(all[0].root_name, "GET /health");
        assert_eq!(all[0].error_count, 0);
        let failing = &all[1];
        assert_eq!(failing.trace_id, trace_id(1).to_string());
        assert_eq!(failing.root_service, "api-gateway");
        assert_eq!(failing.root_name, "GET /users/:id");
        assert_eq!(failing.span_count, 3);
        // The failed query span and its error log.
        assert_eq!(failing.error_count, 2);
        assert_eq!(failing.start_unix_us, (NOW - MIN) / 1_000);
        assert_eq!(failing.duration_us, 40_000);
        assert_eq!(failing.services, ["api-gateway", "user-svc"]);
        assert_eq!(failing.cluster_ids, ["00c10575e5ed1234"]);

        let errors = views.traces.find(&TraceQuery {
            errors_only: true,
            limit: 10,
            ..TraceQuery::default()
        });
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].trace_id, failing.trace_id);
        let by_cluster = views.traces.find(&TraceQuery {
            cluster: Some("00c10575e5ed1234".into()),
            limit: 10,
            ..TraceQuery::default()
        });
        assert_eq!(by_cluster.len(), 1);
        assert_eq!(
            views
                .traces
                .find(&TraceQuery {
                    service: Some("user-svc".into()),
                    limit: 1,
                    ..TraceQuery::default()
                })
                .len(),
            1
        );

        // The latest chains (the diagnosis learns who calls whom in them): last touched first,
        // as the chain page has them, without a culprit judged.
        let recent = views.traces.recent_chains(10);
        let ids: Vec<&str> = recent.iter().map(|c| c.trace_id.as_str()).collect();
        assert_eq!(ids, [trace_id(2).to_string(), trace_id(1).to_string()]);
        let page = views.traces.call_chain(&trace_id(1).to_string()).unwrap();
        assert_eq!(recent[1].spans, page.spans);
        assert_eq!(views.traces.recent_chains(1).len(), 1);

        let counters = views.traces.store_counters();
        let value = |name: &str| counters.iter().find(|c| c.name == name).map(|c| c.value);
        assert_eq!(value("traces"), Some(2.0));
        assert_eq!(value("trace_spans"), Some(4.0));
        assert_eq!(value("trace_logs"), Some(2.0));
        assert_eq!(value("traces_evicted_total"), Some(0.0));
    }
}
