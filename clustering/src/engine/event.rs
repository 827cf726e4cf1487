//! The engine's input: one error event, made from a log record by every reader.

use faultline_ingest::{Level, LogRecord};

/// One error event to cluster.
#[derive(Debug, Clone, Copy)]
pub struct ErrorEvent<'a> {
    /// The text to cluster (a record's error field, else its message).
    pub text: &'a str,
    /// The service it came from.
    pub service: Option<&'a str>,
    /// Severity name (`error`, `warn`, `fatal`, ...).
    pub severity: &'a str,
    /// Trace id (hex), if any.
    pub trace_id: Option<&'a str>,
    /// Span id (hex), if any.
    pub span_id: Option<&'a str>,
    /// When it happened, Unix nanoseconds.
    pub time_unix_nanos: i64,
    /// The stack trace the record carried (a Go panic's goroutine dump), if any.
    pub stack: Option<&'a str>,
    /// The stack's top application frame (`main.(*T).m file.go:42`), if known: a parameter
    /// of the pattern, counted like its masked values.
    pub frame: Option<&'a str>,
}

impl<'a> ErrorEvent<'a> {
    /// The event of one error-ish log record (a tailed line, an OTLP log record, an error
    /// span as a record), at `time_unix_nanos` (the record's own time, or the time the reader
    /// gives a record that has none). `ids` are the record's own ([`RecordIds::of`]): the
    /// event borrows their hex text.
    pub fn from_record(
        record: &'a LogRecord,
        ids: &'a RecordIds,
        time_unix_nanos: i64,
    ) -> ErrorEvent<'a> {
        ErrorEvent {
            text: record.cluster_text(),
            service: record.service.as_deref(),
            severity: severity(record.level, record.http_status),
            trace_id: ids.trace_id.as_deref(),
            span_id: ids.span_id.as_deref(),
            time_unix_nanos,
            stack: record.stack(),
            frame: record.stack_frame(),
        }
    }
}

/// A log record's trace and span ids as the hex text an [`ErrorEvent`] carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordIds {
    trace_id: Option<String>,
    span_id: Option<String>,
}

impl RecordIds {
    /// The ids of `record`.
    pub fn of(record: &LogRecord) -> RecordIds {
        RecordIds {
            trace_id: record.trace_id.map(|id| id.to_string()),
            span_id: record.span_id.map(|id| id.to_string()),
        }
    }
}

/// The severity an error event records: the level, or `error` for a request log of a 5xx
/// without one (an access line with no level is an error when the request failed).
pub fn severity(level: Level, http_status: Option<u16>) -> &'static str {
    match level {
        Level::Panic => "panic",
        Level::Fatal => "fatal",
        Level::Error => "error",
        Level::Warn => "warn",
        Level::Info | Level::Debug | Level::Trace | Level::Unknown
            if http_status.is_some_and(|s| s >= 500) =>
        {
            "error"
        }
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
        Level::Unknown => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_ingest::parse::{parse_line, STACK_ATTRIBUTE};
    use faultline_ingest::{Origin, SpanId, TraceId};

    /// Every reader (the live pipeline, `replay`) makes its events here: the text, ids,
    /// severity and stack of a record, as parsed.
    #[test]
    fn an_event_is_its_records_text_ids_severity_and_stack() {
        let origin = || Origin::File {
            path: "a.log".into(),
            offset: 0,
        };
        let mut zap = parse_line(
            r#"{"level":"error","ts":1710151200.5,"msg":"panic recovered","service":"orders","error":"runtime error: index out of range [7] with length 3"}"#,
            origin(),
        );
        zap.trace_id = Some(TraceId([0xAB; 16]));
        zap.span_id = Some(SpanId([0x01; 8]));
        zap.attributes.push((
            STACK_ATTRIBUTE.into(),
            "goroutine 7 [running]:\nmain.f()".into(),
        ));
        let ids = RecordIds::of(&zap);
        let event = ErrorEvent::from_record(&zap, &ids, 42);
        assert_eq!(
            event.text,
            "runtime error: index out of range [7] with length 3"
        );
        assert_eq!(event.service, Some("orders"));
        assert_eq!(event.severity, "error");
        assert_eq!(event.trace_id, Some("ab".repeat(16).as_str()));
        assert_eq!(event.span_id, Some("01".repeat(8).as_str()));
        assert_eq!(event.time_unix_nanos, 42);
        assert_eq!(event.stack, Some("goroutine 7 [running]:\nmain.f()"));

        // A request log with no level is an error when the request failed (5xx), and a
        // record without ids has none.
        let mut access = parse_line("GET /v1/orders/7 failed", origin());
        access.level = Level::Unknown;
        access.http_status = Some(502);
        let ids = RecordIds::of(&access);
        let event = ErrorEvent::from_record(&access, &ids, 1);
        assert_eq!(event.severity, "error");
        assert_eq!((event.trace_id, event.span_id), (None, None));
        access.level = Level::Info;
        access.http_status = Some(404);
        assert_eq!(ErrorEvent::from_record(&access, &ids, 1).severity, "info");
    }
}
