//! What the agent forwards upstream when `[export]` is on (see `faultline-export`), in OTLP
//! terms: received requests as they were accepted, tailed log records as OTLP log records,
//! and the pattern tags of error spans and logs.
//!
//! "As accepted" means what the receiver kept: spans and log records it rejected (invalid ids)
//! are not forwarded, and attributes and events cut at the receiver's limits are cut here the
//! same way and counted in the item's `dropped_attributes_count` / `dropped_events_count`, as
//! the OTLP data model says. Everything else — resource and scope attributes, links, events,
//! status, flags, bodies of any type — is forwarded byte for byte.
//!
//! Tags are set after clustering, in the record pipeline: error spans by span id, log records
//! by their position among the accepted records of their request (a request's records go to
//! clustering in that order, one record per accepted log record).

use faultline_export::PatternTags;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord as OtlpLogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::config::OtlpConfig;
use super::convert::log_ids_malformed;
use crate::record::{Level, LogRecord, Origin, SpanId, TraceId};

/// The instrumentation scope of the log records faultline makes from tailed lines.
pub const TAIL_SCOPE: &str = "faultline.tail";

fn cut<T>(items: &mut Vec<T>, limit: usize) -> u32 {
    let over = items.len().saturating_sub(limit);
    items.truncate(limit);
    u32::try_from(over).unwrap_or(u32::MAX)
}

/// Cuts a received trace request to what the receiver accepted.
pub(crate) fn accepted_traces(request: &mut ExportTraceServiceRequest, config: &OtlpConfig) {
    let limit = config.max_attributes_per_span;
    for resource_spans in &mut request.resource_spans {
        for scope_spans in &mut resource_spans.scope_spans {
            scope_spans.spans.retain(|span| {
                TraceId::from_bytes(&span.trace_id).is_some()
                    && SpanId::from_bytes(&span.span_id).is_some()
            });
            for span in &mut scope_spans.spans {
                span.dropped_attributes_count = span
                    .dropped_attributes_count
                    .saturating_add(cut(&mut span.attributes, limit));
                span.dropped_events_count = span
                    .dropped_events_count
                    .saturating_add(cut(&mut span.events, config.max_events_per_span));
                for event in &mut span.events {
                    event.dropped_attributes_count = event
                        .dropped_attributes_count
                        .saturating_add(cut(&mut event.attributes, limit));
                }
            }
        }
        resource_spans.scope_spans.retain(|s| !s.spans.is_empty());
    }
    request.resource_spans.retain(|r| !r.scope_spans.is_empty());
}

/// Cuts a received logs request to what the receiver accepted.
pub(crate) fn accepted_logs(request: &mut ExportLogsServiceRequest, config: &OtlpConfig) {
    for resource_logs in &mut request.resource_logs {
        for scope_logs in &mut resource_logs.scope_logs {
            scope_logs.log_records.retain(|log| !log_ids_malformed(log));
            for log in &mut scope_logs.log_records {
                log.dropped_attributes_count = log
                    .dropped_attributes_count
                    .saturating_add(cut(&mut log.attributes, config.max_attributes_per_span));
            }
        }
        resource_logs
            .scope_logs
            .retain(|s| !s.log_records.is_empty());
    }
    request.resource_logs.retain(|r| !r.scope_logs.is_empty());
}

/// Whether [`accepted_traces`] would leave `request` as it is: every span valid, nothing over
/// the limits, no empty resource or scope. Such a request is forwarded as the bytes it came
/// in. Reads, never allocates.
pub(crate) fn traces_kept_whole(request: &ExportTraceServiceRequest, config: &OtlpConfig) -> bool {
    let limit = config.max_attributes_per_span;
    request.resource_spans.iter().all(|resource_spans| {
        !resource_spans.scope_spans.is_empty()
            && resource_spans.scope_spans.iter().all(|scope_spans| {
                !scope_spans.spans.is_empty()
                    && scope_spans.spans.iter().all(|span| {
                        TraceId::from_bytes(&span.trace_id).is_some()
                            && SpanId::from_bytes(&span.span_id).is_some()
                            && span.attributes.len() <= limit
                            && span.events.len() <= config.max_events_per_span
                            && span.events.iter().all(|e| e.attributes.len() <= limit)
                    })
            })
    })
}

/// Whether [`accepted_logs`] would leave `request` as it is (see [`traces_kept_whole`]).
pub(crate) fn logs_kept_whole(request: &ExportLogsServiceRequest, config: &OtlpConfig) -> bool {
    request.resource_logs.iter().all(|resource_logs| {
        !resource_logs.scope_logs.is_empty()
            && resource_logs.scope_logs.iter().all(|scope_logs| {
                !scope_logs.log_records.is_empty()
                    && scope_logs.log_records.iter().all(|log| {
                        !log_ids_malformed(log)
                            && log.attributes.len() <= config.max_attributes_per_span
                    })
            })
    })
}

/// Tags the spans of `request` whose span id has tags. A span with several error records
/// (several `exception` events) keeps the tags of its first.
pub fn tag_spans(request: &mut ExportTraceServiceRequest, tags: &[(SpanId, PatternTags)]) {
    if tags.is_empty() {
        return;
    }
    let spans = request
        .resource_spans
        .iter_mut()
        .flat_map(|r| &mut r.scope_spans)
        .flat_map(|s| &mut s.spans);
    for span in spans {
        let Some(id) = SpanId::from_bytes(&span.span_id) else {
            continue;
        };
        if let Some((_, tags)) = tags.iter().find(|(span_id, _)| *span_id == id) {
            tags.apply(&mut span.attributes);
        }
    }
}

/// Tags the log records of `request` by position: `tags[i]` goes to its i-th log record.
pub fn tag_logs(request: &mut ExportLogsServiceRequest, tags: &[Option<PatternTags>]) {
    let logs = request
        .resource_logs
        .iter_mut()
        .flat_map(|r| &mut r.scope_logs)
        .flat_map(|s| &mut s.log_records);
    for (log, tags) in logs.zip(tags) {
        if let Some(tags) = tags {
            tags.apply(&mut log.attributes);
        }
    }
}

fn string_value(text: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(text.to_owned())),
    })
}

fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: string_value(value),
        ..Default::default()
    }
}

/// The OTLP severity number of a level (the first number of its range in the data model).
fn severity_number(level: Level) -> i32 {
    match level {
        Level::Unknown => 0,
        Level::Trace => 1,
        Level::Debug => 5,
        Level::Info => 9,
        Level::Warn => 13,
        Level::Error => 17,
        Level::Fatal => 21,
        // A Go panic stops the goroutine like a fatal error: the highest range.
        Level::Panic => 24,
    }
}

fn severity_text(level: Level) -> &'static str {
    match level {
        Level::Unknown => "",
        Level::Trace => "TRACE",
        Level::Debug => "DEBUG",
        Level::Info => "INFO",
        Level::Warn => "WARN",
        Level::Error => "ERROR",
        Level::Fatal => "FATAL",
        Level::Panic => "PANIC",
    }
}

fn nanos(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Tailed log records as one OTLP logs request, in the same order (one OTLP record per
/// record, so [`tag_logs`] tags them by position), grouped into one resource per service
/// only where consecutive records share it. The body is the message; the error text, the
/// HTTP status, the file and offset and the fields the parser found are attributes.
pub fn tailed_logs(records: &[LogRecord]) -> ExportLogsServiceRequest {
    let mut request = ExportLogsServiceRequest::default();
    for record in records {
        let service = record.service.as_deref().unwrap_or(super::UNKNOWN_SERVICE);
        let same = request.resource_logs.last().is_some_and(|r| {
            r.resource
                .as_ref()
                .and_then(|res| res.attributes.first())
                .and_then(|kv| kv.value.as_ref())
                == string_value(service).as_ref()
        });
        if !same {
            request.resource_logs.push(ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![attribute("service.name", service)],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: TAIL_SCOPE.to_owned(),
                        version: env!("CARGO_PKG_VERSION").to_owned(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
        let Some(scope) = request
            .resource_logs
            .last_mut()
            .and_then(|r| r.scope_logs.last_mut())
        else {
            continue;
        };
        let mut attributes: Vec<KeyValue> = Vec::new();
        if let Origin::File { path, offset } = &record.origin {
            attributes.push(attribute("log.file.path", path));
            attributes.push(KeyValue {
                key: "faultline.log.offset".to_owned(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::IntValue(
                        i64::try_from(*offset).unwrap_or(i64::MAX),
                    )),
                }),
                ..Default::default()
            });
        }
        if let Some(error) = &record.error {
            attributes.push(attribute("error.message", error));
        }
        if let Some(status) = record.http_status {
            attributes.push(KeyValue {
                key: "http.response.status_code".to_owned(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::IntValue(i64::from(status))),
                }),
                ..Default::default()
            });
        }
        for (key, value) in &record.attributes {
            attributes.push(attribute(key, value));
        }
        scope.log_records.push(OtlpLogRecord {
            time_unix_nano: record.time_unix_nanos.map(nanos).unwrap_or(0),
            observed_time_unix_nano: nanos(record.observed_unix_nanos),
            severity_number: severity_number(record.level),
            severity_text: severity_text(record.level).to_owned(),
            body: string_value(&record.message),
            attributes,
            trace_id: record.trace_id.map(|t| t.0.to_vec()).unwrap_or_default(),
            span_id: record.span_id.map(|s| s.0.to_vec()).unwrap_or_default(),
            ..Default::default()
        });
    }
    request
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    use super::*;

    fn kv(key: &str) -> KeyValue {
        attribute(key, "v")
    }

    #[test]
    fn accepted_traces_drop_invalid_spans_and_count_cut_attributes() {
        let config = OtlpConfig {
            max_attributes_per_span: 2,
            ..OtlpConfig::default()
        };
        let mut request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name"), kv("k8s.pod.name")],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![
                        Span {
                            trace_id: vec![1; 16],
                            span_id: vec![2; 8],
                            attributes: vec![kv("a"), kv("b"), kv("c")],
                            dropped_attributes_count: 1,
                            ..Default::default()
                        },
                        Span {
                            trace_id: vec![0; 16],
                            span_id: vec![3; 8],
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        accepted_traces(&mut request, &config);
        let spans = &request.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].attributes.len(), 2);
        assert_eq!(spans[0].dropped_attributes_count, 2);
        // Resource attributes are not span attributes: kept whole.
        let resource = request.resource_spans[0].resource.as_ref().expect("kept");
        assert_eq!(resource.attributes.len(), 2);
        tag_spans(
            &mut request,
            &[(
                SpanId([2; 8]),
                PatternTags {
                    cluster_id: Some("c".into()),
                    ..PatternTags::default()
                },
            )],
        );
        let spans = &request.resource_spans[0].scope_spans[0].spans;
        assert_eq!(
            spans[0].attributes.last().map(|kv| kv.key.as_str()),
            Some(faultline_export::attributes::CLUSTER_ID)
        );
    }

    #[test]
    fn kept_whole_is_exactly_what_accepting_leaves_unchanged() {
        let config = OtlpConfig {
            max_attributes_per_span: 2,
            max_events_per_span: 1,
            ..OtlpConfig::default()
        };
        let span = |id: u8, attributes: usize, events: usize| Span {
            trace_id: vec![1; 16],
            span_id: vec![id; 8],
            attributes: (0..attributes).map(|_| kv("a")).collect(),
            events: (0..events).map(|_| Default::default()).collect(),
            ..Default::default()
        };
        let request = |spans: Vec<Span>| ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let mut no_id = span(3, 0, 0);
        no_id.span_id.clear();
        let cases = [
            request(vec![span(1, 2, 1), span(2, 0, 0)]),
            request(vec![span(1, 3, 0)]),
            request(vec![span(1, 0, 2)]),
            request(vec![span(1, 0, 0), no_id]),
            request(Vec::new()),
            ExportTraceServiceRequest::default(),
        ];
        for case in cases {
            let mut accepted = case.clone();
            accepted_traces(&mut accepted, &config);
            assert_eq!(
                traces_kept_whole(&case, &config),
                accepted == case,
                "{case:?}"
            );
        }
        let logs = |attributes: usize, trace_id: Vec<u8>| ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![OtlpLogRecord {
                        attributes: (0..attributes).map(|_| kv("a")).collect(),
                        trace_id,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        for case in [
            logs(2, vec![1; 16]),
            logs(3, Vec::new()),
            logs(0, vec![1; 3]),
        ] {
            let mut accepted = case.clone();
            accepted_logs(&mut accepted, &config);
            assert_eq!(
                logs_kept_whole(&case, &config),
                accepted == case,
                "{case:?}"
            );
        }
    }

    #[test]
    fn tailed_records_keep_order_service_and_fields() {
        let record = |service: &str, message: &str| LogRecord {
            time_unix_nanos: Some(5),
            observed_unix_nanos: 6,
            level: Level::Error,
            service: Some(service.to_owned()),
            message: message.to_owned(),
            error: Some("EOF".into()),
            http_status: Some(502),
            trace_id: Some(TraceId([7; 16])),
            span_id: None,
            attributes: vec![("upstream".into(), "inventory".into())],
            origin: Origin::File {
                path: "/var/log/a.log".into(),
                offset: 10,
            },
            truncated: false,
        };
        let mut request =
            tailed_logs(&[record("a", "one"), record("a", "two"), record("b", "three")]);
        assert_eq!(request.resource_logs.len(), 2);
        tag_logs(
            &mut request,
            &[
                None,
                Some(PatternTags {
                    template_id: Some("t".into()),
                    ..PatternTags::default()
                }),
                None,
            ],
        );
        let first = &request.resource_logs[0].scope_logs[0].log_records;
        assert_eq!(first.len(), 2);
        assert_eq!(first[0].body, string_value("one"));
        assert_eq!(first[0].severity_number, 17);
        assert_eq!(first[0].trace_id, vec![7; 16]);
        let keys: Vec<&str> = first[1]
            .attributes
            .iter()
            .map(|kv| kv.key.as_str())
            .collect();
        assert_eq!(
            keys,
            [
                "log.file.path",
                "faultline.log.offset",
                "error.message",
                "http.response.status_code",
                "upstream",
                faultline_export::attributes::TEMPLATE_ID
            ]
        );
    }
}
