//! From OTLP protobuf messages to faultline's own types: [`Span`]s for the trace store,
//! [`LogRecord`]s for clustering (OTLP logs, and error spans / `exception` events), and
//! [`TaskSample`]s for the task counters. Limits are checked here, so both transports
//! refuse the same inputs with the same message.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::config::OtlpConfig;
use super::error::OtlpError;
use super::sink::{TaskMetric, TaskSample};
use crate::parse::{parse_line_with, plausible_time, ParseOptions};
use crate::record::{Level, LogRecord, Origin, SpanId, TraceId};
use crate::traces::{Span, SpanEvent, SpanKind, StatusCode};

/// The service name used when a resource has no `service.name` (the SDKs' own default).
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// Nesting depth beyond which arrays and maps in attribute values are shown as `…`.
const MAX_VALUE_DEPTH: usize = 8;

/// Spans of one request, ready for the store, and the error records they produce.
pub(crate) struct SpanBatch {
    pub spans: Vec<Span>,
    pub error_records: Vec<LogRecord>,
    pub rejected: usize,
    pub rejection: Option<String>,
    /// Attributes and events cut at the limits; the spans are kept.
    pub cut: Cut,
}

/// Log records of one request.
pub(crate) struct LogBatch {
    pub records: Vec<LogRecord>,
    pub rejected: usize,
    pub rejection: Option<String>,
    /// Attributes cut at the limit; the records are kept.
    pub cut: Cut,
}

/// What was cut off items over the attribute or event limits, which are kept cut rather than
/// refused (one span over the limit used to refuse its whole batch): the count, as the
/// OTLP spec's `dropped_attributes_count` would say it, and the first item's description for
/// the partial-success message.
#[derive(Debug, Default)]
pub(crate) struct Cut {
    pub attributes: usize,
    pub events: usize,
    pub warning: Option<String>,
}

impl Cut {
    /// Keeps the first `limit` items of `items`, counting the rest in `dropped`.
    fn keep<T>(
        &mut self,
        items: &mut Vec<T>,
        limit: usize,
        what: &str,
        name: &str,
        key: &str,
    ) -> usize {
        let over = items.len().saturating_sub(limit);
        if over > 0 {
            let count = items.len();
            items.truncate(limit);
            note(&mut self.warning, || {
                format!(
                    "{what} {name:?} has {count} {key}, more than the limit of {limit}: kept \
                     with the first {limit}"
                )
            });
        }
        over
    }
}

/// Task-counter samples of one request, and how many data points were not task counters.
pub(crate) struct MetricBatch {
    pub samples: Vec<TaskSample>,
    pub ignored_points: usize,
}

/// Cuts `text` to at most `max` bytes on a character boundary; says whether it cut.
fn cap(mut text: String, max: usize) -> (String, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let mut end = max;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    (text, true)
}

fn render_into(value: &AnyValue, out: &mut String, depth: usize) {
    use std::fmt::Write;
    let Some(inner) = &value.value else {
        return;
    };
    match inner {
        any_value::Value::StringValue(s) => out.push_str(s),
        any_value::Value::BoolValue(b) => {
            let _ = write!(out, "{b}");
        }
        any_value::Value::IntValue(i) => {
            let _ = write!(out, "{i}");
        }
        // Non-finite values by their names in the protobuf JSON mapping (Rust writes `inf`).
        any_value::Value::DoubleValue(d) if d.is_nan() => out.push_str("NaN"),
        any_value::Value::DoubleValue(d) if d.is_infinite() => {
            out.push_str(if *d > 0.0 { "Infinity" } else { "-Infinity" });
        }
        any_value::Value::DoubleValue(d) => {
            let _ = write!(out, "{d}");
        }
        any_value::Value::BytesValue(bytes) => {
            for b in bytes {
                let _ = write!(out, "{b:02x}");
            }
        }
        any_value::Value::ArrayValue(array) => {
            if depth >= MAX_VALUE_DEPTH {
                out.push('…');
                return;
            }
            out.push('[');
            for (i, v) in array.values.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render_into(v, out, depth + 1);
            }
            out.push(']');
        }
        any_value::Value::KvlistValue(list) => {
            if depth >= MAX_VALUE_DEPTH {
                out.push('…');
                return;
            }
            out.push('{');
            for (i, kv) in list.values.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&kv.key);
                out.push('=');
                if let Some(v) = &kv.value {
                    render_into(v, out, depth + 1);
                }
            }
            out.push('}');
        }
        // Reserved for profiles; nothing to show.
        _ => {}
    }
}

/// Renders an attribute value as text, capped.
fn render(value: Option<&AnyValue>, max: usize) -> (String, bool) {
    let mut out = String::new();
    if let Some(v) = value {
        render_into(v, &mut out, 0);
    }
    cap(out, max)
}

/// Renders an attribute value as text, capped, taking a string value's own buffer (most
/// values are strings: no copy).
fn render_owned(value: Option<AnyValue>, max: usize) -> (String, bool) {
    match value {
        Some(AnyValue {
            value: Some(any_value::Value::StringValue(text)),
        }) => cap(text, max),
        other => render(other.as_ref(), max),
    }
}

/// The attributes as text pairs, capped, and whether any was cut. Takes the keys' and the
/// string values' buffers rather than copying them: two allocations and copies less per
/// attribute on every span and log record received (issue #12's allocation cost).
fn render_attributes(attributes: Vec<KeyValue>, max: usize) -> (Vec<(String, String)>, bool) {
    let mut cut = false;
    let rendered = attributes
        .into_iter()
        .map(|kv| {
            let (key, k_cut) = cap(kv.key, max);
            let (value, v_cut) = render_owned(kv.value, max);
            cut |= k_cut | v_cut;
            (key, value)
        })
        .collect();
    (rendered, cut)
}

fn service_name(resource: Option<&Resource>, max: usize) -> String {
    resource
        .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
        .map(|kv| render(kv.value.as_ref(), max).0)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| UNKNOWN_SERVICE.to_owned())
}

fn nanos(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn first<'a>(attributes: &'a [(String, String)], keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| attributes.iter().find(|(key, _)| key == k))
        .map(|(_, v)| v.as_str())
}

fn http_status(attributes: &[(String, String)]) -> Option<u16> {
    first(
        attributes,
        &["http.response.status_code", "http.status_code", "status"],
    )
    .and_then(|v| v.trim().parse().ok())
}

fn note(rejection: &mut Option<String>, message: impl FnOnce() -> String) {
    if rejection.is_none() {
        *rejection = Some(message());
    }
}

/// Converts an export request into spans and error records. Spans with invalid ids are
/// rejected (partial success); a span over the attribute or event limit is kept with its
/// attributes and events cut to the limits, and counted ([`Cut`]).
pub(crate) fn convert_traces(
    request: ExportTraceServiceRequest,
    config: &OtlpConfig,
    observed_unix_nanos: i64,
) -> Result<SpanBatch, OtlpError> {
    let max = config.max_value_bytes;
    // Sized once: a span is ~200 bytes, and growing by doubling copied every span of a
    // request several times (2 % of the agent's CPU at the soak's load, perf).
    let count = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    let mut batch = SpanBatch {
        spans: Vec::with_capacity(count),
        error_records: Vec::new(),
        rejected: 0,
        rejection: None,
        cut: Cut::default(),
    };
    for resource_spans in request.resource_spans {
        let service = service_name(resource_spans.resource.as_ref(), max);
        for scope_spans in resource_spans.scope_spans {
            for mut span in scope_spans.spans {
                let cut = &mut batch.cut;
                cut.attributes += cut.keep(
                    &mut span.attributes,
                    config.max_attributes_per_span,
                    "span",
                    &span.name,
                    "attributes",
                );
                cut.events += cut.keep(
                    &mut span.events,
                    config.max_events_per_span,
                    "span",
                    &span.name,
                    "events",
                );
                for event in &mut span.events {
                    cut.attributes += cut.keep(
                        &mut event.attributes,
                        config.max_attributes_per_span,
                        "event",
                        &event.name,
                        "attributes",
                    );
                }
                let (Some(trace_id), Some(span_id)) = (
                    TraceId::from_bytes(&span.trace_id),
                    SpanId::from_bytes(&span.span_id),
                ) else {
                    batch.rejected += 1;
                    note(&mut batch.rejection, || {
                        format!("span {:?} has an invalid trace or span id (need 16 and 8 bytes, not all zero)", span.name)
                    });
                    continue;
                };
                // An empty or malformed parent id means "no parent", as the spec reads it.
                let parent_span_id = SpanId::from_bytes(&span.parent_span_id);
                let start = nanos(span.start_time_unix_nano);
                let end = nanos(span.end_time_unix_nano).max(start);
                let (status, status_message) = match span.status {
                    Some(s) => (StatusCode::from_otlp(s.code), cap(s.message, max).0),
                    None => (StatusCode::Unset, String::new()),
                };
                let (attributes, _) = render_attributes(span.attributes, max);
                let events: Vec<SpanEvent> = span
                    .events
                    .into_iter()
                    .map(|e| SpanEvent {
                        name: cap(e.name, max).0,
                        time_unix_nanos: nanos(e.time_unix_nano),
                        attributes: render_attributes(e.attributes, max).0,
                    })
                    .collect();
                let converted = Span {
                    trace_id,
                    span_id,
                    parent_span_id,
                    service: service.clone(),
                    name: cap(span.name, max).0,
                    kind: SpanKind::from_otlp(span.kind),
                    start_unix_nanos: start,
                    end_unix_nanos: end,
                    status,
                    status_message,
                    attributes,
                    events,
                };
                error_records_of(&converted, observed_unix_nanos, &mut batch.error_records);
                batch.spans.push(converted);
            }
        }
    }
    Ok(batch)
}

/// The records an error span gives to clustering: one per `exception` event, or one for the
/// ERROR status when no exception was recorded.
fn error_records_of(span: &Span, observed: i64, out: &mut Vec<LogRecord>) {
    let record = |time: i64, error: Option<String>, mut attributes: Vec<(String, String)>| {
        attributes.insert(0, ("span.name".to_owned(), span.name.clone()));
        LogRecord {
            // A span of 1970 (an unset clock, a zero time) must not make its pattern "first
            // seen in 1970": an unbelievable time is left to the observation time.
            time_unix_nanos: Some(time).filter(|&t| plausible_time(t, observed)),
            observed_unix_nanos: observed,
            level: Level::Error,
            service: Some(span.service.clone()),
            message: span.name.clone(),
            error,
            http_status: http_status(&span.attributes),
            trace_id: Some(span.trace_id),
            span_id: Some(span.span_id),
            attributes,
            origin: Origin::OtlpSpan,
            truncated: false,
        }
    };
    let mut any = false;
    for event in span.events.iter().filter(|e| e.is_exception()) {
        any = true;
        let message = event
            .attribute("exception.message")
            .or_else(|| event.attribute("exception.type"))
            .map(str::to_owned);
        let attributes = event
            .attributes
            .iter()
            .filter(|(k, _)| k != "exception.message")
            .cloned()
            .collect();
        out.push(record(event.time_unix_nanos, message, attributes));
    }
    if !any && span.is_error() {
        let message = if span.status_message.trim().is_empty() {
            Some(unexplained_failure(span))
        } else {
            Some(span.status_message.clone())
        };
        out.push(record(span.end_unix_nanos, message, Vec::new()));
    }
}

/// The error text of a failed span that says nothing of why: what it is, `HTTP 500 from GET
/// /v1/orders/:id` (status, method, route), else `GET /x failed (client span, no message)`.
/// Named after the span alone (`GET`) it was one meaningless pattern for every failing
/// request of every route (issue #11).
fn unexplained_failure(span: &Span) -> String {
    let method = first(&span.attributes, &["http.request.method", "http.method"]);
    // A client span names its call by the whole URL (`url.full`); the path is what says
    // which call failed (the demo's gateway saw "HTTP 500 from GET" for every route).
    let route = first(
        &span.attributes,
        &["http.route", "url.template", "url.path", "http.target"],
    )
    .or_else(|| first(&span.attributes, &["url.full", "http.url"]).and_then(path_of_url));
    let what = match (method, route) {
        (Some(m), Some(r)) => format!("{m} {r}"),
        (Some(m), None) if !span.name.starts_with(m) => format!("{m} {}", span.name),
        _ => span.name.clone(),
    };
    let side = match span.kind {
        SpanKind::Server => "server span",
        SpanKind::Client => "client span",
        SpanKind::Producer => "producer span",
        SpanKind::Consumer => "consumer span",
        SpanKind::Internal | SpanKind::Unspecified => "span",
    };
    match http_status(&span.attributes) {
        Some(status) => format!("HTTP {status} from {what}"),
        None => format!("{what} failed ({side}, no message)"),
    }
}

/// The path of an absolute URL without its query (`http://h:1/v1/x?y` → `/v1/x`).
fn path_of_url(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let path = &rest[rest.find('/')?..];
    let path = path.split(['?', '#']).next().unwrap_or(path);
    (!path.is_empty()).then_some(path)
}

fn empty_record(observed_unix_nanos: i64) -> LogRecord {
    LogRecord {
        time_unix_nanos: None,
        observed_unix_nanos,
        level: Level::Unknown,
        service: None,
        message: String::new(),
        error: None,
        http_status: None,
        trace_id: None,
        span_id: None,
        attributes: Vec::new(),
        origin: Origin::OtlpLog,
        truncated: false,
    }
}

fn level_of(severity_number: i32, severity_text: &str) -> Level {
    match severity_number {
        1..=4 => Level::Trace,
        5..=8 => Level::Debug,
        9..=12 => Level::Info,
        13..=16 => Level::Warn,
        17..=20 => Level::Error,
        21..=24 => Level::Fatal,
        _ => Level::parse(severity_text).unwrap_or_default(),
    }
}

/// Whether a log record's trace or span id is malformed: non-empty, not all zero (the spec's
/// "no id"), and not of the right length. Such a record is rejected (and not forwarded).
pub(crate) fn log_ids_malformed(log: &opentelemetry_proto::tonic::logs::v1::LogRecord) -> bool {
    let bad =
        |bytes: &[u8], valid: bool| !bytes.is_empty() && !valid && bytes.iter().any(|&b| b != 0);
    bad(&log.trace_id, TraceId::from_bytes(&log.trace_id).is_some())
        || bad(&log.span_id, SpanId::from_bytes(&log.span_id).is_some())
}

/// Converts an export request into log records. A record with a malformed (non-empty) trace or
/// span id is rejected (partial success); one over the attribute limit fails the request.
pub(crate) fn convert_logs(
    request: ExportLogsServiceRequest,
    config: &OtlpConfig,
    observed_unix_nanos: i64,
) -> Result<LogBatch, OtlpError> {
    let max = config.max_value_bytes;
    let mut batch = LogBatch {
        records: Vec::new(),
        rejected: 0,
        rejection: None,
        cut: Cut::default(),
    };
    for resource_logs in request.resource_logs {
        let service = service_name(resource_logs.resource.as_ref(), max);
        for scope_logs in resource_logs.scope_logs {
            for mut log in scope_logs.log_records {
                batch.cut.attributes += batch.cut.keep(
                    &mut log.attributes,
                    config.max_attributes_per_span,
                    "log record",
                    &log.event_name,
                    "attributes",
                );
                let trace_id = TraceId::from_bytes(&log.trace_id);
                let span_id = SpanId::from_bytes(&log.span_id);
                if log_ids_malformed(&log) {
                    batch.rejected += 1;
                    note(&mut batch.rejection, || {
                        "a log record has a trace id or span id of the wrong length".to_owned()
                    });
                    continue;
                }
                let (otlp_attributes, mut truncated) =
                    render_attributes(std::mem::take(&mut log.attributes), max);
                // The record's time, else the time a collector observed it; one of 1970 or
                // of next year is not believed (as in a tailed line): the time the text
                // gives, else the observation time.
                let time = [log.time_unix_nano, log.observed_time_unix_nano]
                    .into_iter()
                    .filter(|&t| t != 0)
                    .map(nanos)
                    .find(|&t| plausible_time(t, observed_unix_nanos));
                let mut record = match log.body.take().and_then(|b| b.value) {
                    // A text body is a log line: it gets the same parsing as a tailed line
                    // (format detection, level, error text, ids written in the text).
                    Some(any_value::Value::StringValue(text)) => {
                        let (text, cut) = cap(text, max);
                        truncated |= cut;
                        parse_line_with(
                            &text,
                            Origin::OtlpLog,
                            &ParseOptions::default(),
                            observed_unix_nanos,
                        )
                    }
                    // A structured body (a map) carries the message under msg/message; its
                    // other fields are attributes, as in a JSON log line.
                    Some(any_value::Value::KvlistValue(list)) => {
                        let (fields, cut) = render_attributes(list.values, max);
                        truncated |= cut;
                        let mut record = empty_record(observed_unix_nanos);
                        for (key, value) in fields {
                            if record.message.is_empty() && (key == "msg" || key == "message") {
                                record.message = value;
                            } else {
                                record.attributes.push((key, value));
                            }
                        }
                        record
                    }
                    other => {
                        let (text, cut) =
                            render(other.map(|v| AnyValue { value: Some(v) }).as_ref(), max);
                        truncated |= cut;
                        let mut record = empty_record(observed_unix_nanos);
                        record.message = text;
                        record
                    }
                };
                // What the OTLP envelope says wins over what the text says.
                record.attributes.extend(otlp_attributes);
                if let Some(error) = first(
                    &record.attributes,
                    &["error", "err", "exception.message", "error.message"],
                ) {
                    if record.error.is_none() {
                        record.error = Some(error.to_owned());
                    }
                }
                if record.http_status.is_none() {
                    record.http_status = http_status(&record.attributes);
                }
                let level = level_of(log.severity_number, &log.severity_text);
                if level != Level::Unknown {
                    record.level = level;
                }
                if time.is_some() {
                    record.time_unix_nanos = time;
                }
                record.service = Some(service.clone());
                record.trace_id = trace_id.or(record.trace_id);
                record.span_id = span_id.or(record.span_id);
                record.truncated |= truncated;
                batch.records.push(record);
            }
        }
    }
    Ok(batch)
}

/// Picks the goroutine and thread counts out of an export request; everything else is only
/// counted.
pub(crate) fn convert_metrics(
    request: ExportMetricsServiceRequest,
    config: &OtlpConfig,
) -> MetricBatch {
    let mut batch = MetricBatch {
        samples: Vec::new(),
        ignored_points: 0,
    };
    for resource_metrics in request.resource_metrics {
        let service = service_name(resource_metrics.resource.as_ref(), config.max_value_bytes);
        for scope_metrics in resource_metrics.scope_metrics {
            for m in scope_metrics.metrics {
                let points = match &m.data {
                    Some(metric::Data::Gauge(g)) => Some(&g.data_points),
                    Some(metric::Data::Sum(s)) => Some(&s.data_points),
                    _ => None,
                };
                let (Some(kind), Some(points)) = (TaskMetric::from_name(&m.name), points) else {
                    batch.ignored_points += data_points(&m.data);
                    continue;
                };
                for point in points {
                    let value = match point.value {
                        Some(number_data_point::Value::AsInt(i)) => i as f64,
                        Some(number_data_point::Value::AsDouble(d)) if d.is_finite() => d,
                        _ => {
                            batch.ignored_points += 1;
                            continue;
                        }
                    };
                    batch.samples.push(TaskSample {
                        target: service.clone(),
                        metric: kind,
                        name: m.name.clone(),
                        value,
                        time_unix_nanos: nanos(point.time_unix_nano),
                    });
                }
            }
        }
    }
    batch
}

pub(crate) fn data_points(data: &Option<metric::Data>) -> usize {
    match data {
        Some(metric::Data::Gauge(g)) => g.data_points.len(),
        Some(metric::Data::Sum(s)) => s.data_points.len(),
        Some(metric::Data::Histogram(h)) => h.data_points.len(),
        Some(metric::Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(metric::Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_cuts_on_a_character_boundary() {
        let (text, cut) = cap("héllo".to_owned(), 2);
        assert_eq!((text.as_str(), cut), ("h", true));
        let (text, cut) = cap("abc".to_owned(), 3);
        assert_eq!((text.as_str(), cut), ("abc", false));
    }

    #[test]
    fn a_failed_span_without_a_message_is_named_by_what_it_is() {
        let span = |kind, attributes: &[(&str, &str)]| Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            parent_span_id: None,
            service: "orders".into(),
            name: "GET".into(),
            kind,
            start_unix_nanos: 0,
            end_unix_nanos: 1,
            status: StatusCode::Error,
            status_message: String::new(),
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            events: Vec::new(),
        };
        let mut out = Vec::new();
        let server = span(
            SpanKind::Server,
            &[
                ("http.request.method", "GET"),
                ("http.route", "/v1/orders/:id"),
                ("http.response.status_code", "500"),
            ],
        );
        error_records_of(&server, 0, &mut out);
        assert_eq!(out[0].cluster_text(), "HTTP 500 from GET /v1/orders/:id");
        error_records_of(&span(SpanKind::Client, &[]), 0, &mut out);
        assert_eq!(
            out[1].cluster_text(),
            "GET failed (client span, no message)"
        );
        // A message of its own is kept as it is.
        let mut told = span(SpanKind::Server, &[]);
        told.status_message = "upstream failed".into();
        error_records_of(&told, 0, &mut out);
        assert_eq!(out[2].cluster_text(), "upstream failed");
        // A client span's call is named by its URL's path (not its query, host or port).
        let client = span(
            SpanKind::Client,
            &[
                ("http.request.method", "GET"),
                ("url.full", "http://127.0.0.1:40731/v1/orders/17?debug=1"),
                ("http.response.status_code", "500"),
            ],
        );
        error_records_of(&client, 0, &mut out);
        assert_eq!(out[3].cluster_text(), "HTTP 500 from GET /v1/orders/17");
        for (url, path) in [
            ("http://h", None),
            ("http://h/", Some("/")),
            ("https://h:1/a#b", Some("/a")),
            ("/relative", None),
            ("", None),
        ] {
            assert_eq!(path_of_url(url), path, "{url}");
        }
    }

    /// An OTLP log record or error span of 1970 (an unset clock, a zero time) made its
    /// pattern "first seen in 1970" (#12): such a time is not believed, as in a tailed line,
    /// and the next believable one (the observed time, the text's) is taken.
    #[test]
    fn otlp_times_of_1970_and_of_next_year_are_not_believed() {
        use opentelemetry_proto::tonic::logs::v1::{LogRecord as OtlpLog, ResourceLogs, ScopeLogs};

        let observed = 1_764_900_000_000_000_000; // 2025-12-05
        let good = 1_764_899_000_000_000_000;
        let log = |time: u64, observed_time: u64, body: &str| OtlpLog {
            time_unix_nano: time,
            observed_time_unix_nano: observed_time,
            severity_number: 17,
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(body.to_owned())),
            }),
            ..OtlpLog::default()
        };
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![
                        log(1, 0, "boom"),
                        log(1, good as u64, "boom"),
                        log(observed as u64 + 2 * 86_400_000_000_000, 0, "boom"),
                        log(1, 0, "2025-12-04T00:00:00Z level=error msg=boom"),
                        log(good as u64, 0, "boom"),
                    ],
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }],
        };
        let batch = convert_logs(request, &OtlpConfig::default(), observed).expect("converted");
        let times: Vec<Option<i64>> = batch.records.iter().map(|r| r.time_unix_nanos).collect();
        assert_eq!(
            times,
            [
                None,
                Some(good),
                None,
                Some(1_764_806_400_000_000_000),
                Some(good)
            ]
        );

        let span = Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            parent_span_id: None,
            service: "orders".into(),
            name: "GET".into(),
            kind: SpanKind::Server,
            start_unix_nanos: 0,
            end_unix_nanos: 1,
            status: StatusCode::Error,
            status_message: "boom".into(),
            attributes: Vec::new(),
            events: vec![SpanEvent {
                name: "exception".into(),
                time_unix_nanos: 1,
                attributes: vec![("exception.message".into(), "boom".into())],
            }],
        };
        let mut out = Vec::new();
        error_records_of(&span, observed, &mut out);
        assert!(!out.is_empty());
        assert!(out.iter().all(|r| r.time_unix_nanos.is_none()), "{out:?}");
    }

    #[test]
    fn severity_numbers_map_to_levels() {
        assert_eq!(level_of(17, ""), Level::Error);
        assert_eq!(level_of(13, ""), Level::Warn);
        assert_eq!(level_of(0, "WARNING"), Level::Warn);
        assert_eq!(level_of(99, "whatever"), Level::Unknown);
    }
}
