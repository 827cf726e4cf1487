//! The record under construction and the map from field names to record fields.
//!
//! Structured formats (JSON, logfmt) give key/value pairs; loggers disagree on the names
//! (`msg` or `message`, `error` or `err`, `trace_id` or `traceId` or `trace.id`). This module
//! owns that table so that every structured parser fills a [`Draft`] the same way.

use std::borrow::Cow;

use crate::record::{Level, SpanId, TraceId};

/// What a well-known key means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Time,
    Level,
    Message,
    Error,
    Panic,
    Status,
    TraceId,
    SpanId,
    TraceParent,
    Service,
}

/// Classifies a key by the spellings zap, logrus, slog, OpenTelemetry bridges and ECS use.
pub(crate) fn classify(key: &str) -> Option<Field> {
    Some(match key {
        "time" | "ts" | "timestamp" | "@timestamp" | "datetime" | "date" => Field::Time,
        "level" | "lvl" | "severity" | "loglevel" | "log.level" | "levelname" | "severity_text"
        | "SeverityText" => Field::Level,
        "msg" | "message" | "@message" | "body" => Field::Message,
        "error" | "err" | "error.message" | "errorMessage" | "error_message" | "exception"
        | "exception.message" | "errorVerbose" => Field::Error,
        "panic" => Field::Panic,
        "status"
        | "status_code"
        | "statusCode"
        | "http.status_code"
        | "http_status"
        | "http.response.status_code"
        | "http.status"
        | "code" => Field::Status,
        "trace_id" | "traceId" | "traceid" | "trace.id" | "TraceID" | "TraceId" | "traceID"
        | "otel.trace_id" | "otelTraceID" | "dd.trace_id_hex" => Field::TraceId,
        "span_id" | "spanId" | "spanid" | "span.id" | "SpanID" | "SpanId" | "spanID"
        | "otel.span_id" | "otelSpanID" => Field::SpanId,
        "traceparent" | "trace_parent" | "traceParent" => Field::TraceParent,
        "service" | "service.name" | "service_name" | "serviceName" | "svc" | "app" => {
            Field::Service
        }
        _ => return None,
    })
}

/// Reads a level name without allocating (the same names as [`Level::parse`]).
pub(crate) fn level_of(name: &str) -> Option<Level> {
    let name = name.trim();
    if name.is_empty() || name.len() > 11 {
        return None;
    }
    let mut buf = [0u8; 11];
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name.as_bytes());
    lower.make_ascii_lowercase();
    Some(match &*lower {
        b"trace" | b"trc" | b"t" => Level::Trace,
        b"debug" | b"dbg" | b"d" => Level::Debug,
        b"info" | b"inf" | b"i" | b"notice" | b"information" => Level::Info,
        b"warn" | b"warning" | b"wrn" | b"w" => Level::Warn,
        b"error" | b"err" | b"e" | b"eror" => Level::Error,
        b"fatal" | b"crit" | b"critical" | b"ftl" | b"f" | b"emerg" | b"alert" | b"dpanic" => {
            Level::Fatal
        }
        b"panic" | b"pnc" => Level::Panic,
        _ => return None,
    })
}

/// Reads a W3C `traceparent` value: `00-<trace id>-<span id>-<flags>`.
pub(crate) fn traceparent(value: &str) -> Option<(TraceId, SpanId)> {
    let mut parts = value.trim().split('-');
    let _version = parts.next()?;
    let trace = parts.next()?.parse().ok()?;
    let span = parts.next()?.parse().ok()?;
    Some((trace, span))
}

/// A record being assembled by one of the format parsers.
#[derive(Debug, Default)]
pub(crate) struct Draft {
    pub time_unix_nanos: Option<i64>,
    pub level: Option<Level>,
    pub service: Option<String>,
    pub message: Option<String>,
    pub error: Option<String>,
    pub http_status: Option<u16>,
    pub trace_id: Option<TraceId>,
    pub span_id: Option<SpanId>,
    pub attributes: Vec<(String, String)>,
    /// Free text (plain, stdlib, Gin error lines) may carry escaped newlines and ids inline.
    pub free_text: bool,
}

impl Draft {
    /// Takes one key/value pair of a structured record: a well-known key fills its field (the
    /// first occurrence wins), anything else becomes an attribute.
    pub fn field(&mut self, key: Cow<'_, str>, value: Cow<'_, str>, naive_offset_secs: i64) {
        let Some(kind) = classify(&key) else {
            self.attributes.push((key.into_owned(), value.into_owned()));
            return;
        };
        let taken = match kind {
            Field::Time if self.time_unix_nanos.is_none() => {
                self.time_unix_nanos = super::time::any_timestamp(&value, naive_offset_secs);
                self.time_unix_nanos.is_some()
            }
            Field::Level if self.level.is_none() => {
                self.level = level_of(&value);
                self.level.is_some()
            }
            Field::Message if self.message.is_none() => {
                self.message = Some(value.clone().into_owned());
                true
            }
            Field::Error if self.error.is_none() && !value.is_empty() => {
                self.error = Some(value.clone().into_owned());
                true
            }
            Field::Panic if !value.is_empty() => {
                self.level = Some(self.level.map_or(Level::Panic, |l| l.max(Level::Error)));
                if self.error.is_none() {
                    self.error = Some(value.clone().into_owned());
                }
                false
            }
            Field::Status if self.http_status.is_none() => {
                self.http_status = value.trim().parse().ok().filter(|s| (100..600).contains(s));
                self.http_status.is_some()
            }
            Field::TraceId if self.trace_id.is_none() => {
                self.trace_id = value.trim().parse().ok();
                self.trace_id.is_some()
            }
            Field::SpanId if self.span_id.is_none() => {
                self.span_id = value.trim().parse().ok();
                self.span_id.is_some()
            }
            Field::TraceParent => {
                if let Some((trace, span)) = traceparent(&value) {
                    self.trace_id.get_or_insert(trace);
                    self.span_id.get_or_insert(span);
                }
                false
            }
            Field::Service if self.service.is_none() && !value.is_empty() => {
                self.service = Some(value.clone().into_owned());
                true
            }
            _ => false,
        };
        // A value that did not fill its field (a second `msg`, an unreadable time, a
        // `traceparent`) is kept as an attribute so nothing the record said is lost.
        if !taken {
            self.attributes.push((key.into_owned(), value.into_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_names_match_the_shared_table() {
        for name in [
            "WARNING", "dpanic", "ERROR", "info", "Fatal", "pnc", "verbose", "",
        ] {
            assert_eq!(level_of(name), Level::parse(name), "{name}");
        }
    }

    #[test]
    fn traceparent_gives_both_ids() {
        let (t, s) =
            traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(t.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(s.to_string(), "00f067aa0ba902b7");
        assert!(traceparent("00-zz-00f067aa0ba902b7-01").is_none());
    }
}
