//! The span as the trace store keeps it: a plain, serialisable copy of an OTLP span with the
//! resource's `service.name` folded in, so call chains never need the protobuf types.

use serde::{Deserialize, Serialize};

use crate::record::{SpanId, TraceId};

/// What role a span plays in a call (OTLP `SpanKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SpanKind {
    /// Not specified by the sender.
    #[default]
    Unspecified,
    /// An internal operation.
    Internal,
    /// The server side of a synchronous call.
    Server,
    /// The client side of a synchronous call.
    Client,
    /// The sending side of an asynchronous message.
    Producer,
    /// The receiving side of an asynchronous message.
    Consumer,
}

impl SpanKind {
    /// The kind for an OTLP enum number; unknown numbers read as `Unspecified`.
    pub fn from_otlp(number: i32) -> SpanKind {
        match number {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }
}

/// Outcome of a span (OTLP `Status.code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StatusCode {
    /// The sender did not say.
    #[default]
    Unset,
    /// The operation succeeded.
    Ok,
    /// The operation failed.
    Error,
}

impl StatusCode {
    /// The code for an OTLP enum number; unknown numbers read as `Unset`.
    pub fn from_otlp(number: i32) -> StatusCode {
        match number {
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => StatusCode::Unset,
        }
    }
}

/// A timestamped event inside a span (an `exception` event, a log-like annotation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanEvent {
    /// Event name (`exception` for recorded errors).
    pub name: String,
    /// When it happened (Unix nanoseconds).
    pub time_unix_nanos: i64,
    /// The event's attributes rendered as text, in the sender's order.
    pub attributes: Vec<(String, String)>,
}

impl SpanEvent {
    /// The value of one attribute, if present.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether this is an OpenTelemetry `exception` event.
    pub fn is_exception(&self) -> bool {
        self.name == "exception"
    }
}

/// One span of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    /// The trace it belongs to.
    pub trace_id: TraceId,
    /// Its own id.
    pub span_id: SpanId,
    /// The parent span, `None` for a root.
    pub parent_span_id: Option<SpanId>,
    /// The service that produced it (resource `service.name`; `unknown_service` when absent).
    pub service: String,
    /// The operation name.
    pub name: String,
    /// Role in the call.
    pub kind: SpanKind,
    /// Start (Unix nanoseconds, the producing service's clock).
    pub start_unix_nanos: i64,
    /// End (Unix nanoseconds, the producing service's clock); never before the start.
    pub end_unix_nanos: i64,
    /// Outcome.
    pub status: StatusCode,
    /// The status message (set by the sender for errors).
    pub status_message: String,
    /// Attributes rendered as text, in the sender's order.
    pub attributes: Vec<(String, String)>,
    /// Events, in the sender's order.
    pub events: Vec<SpanEvent>,
}

impl Span {
    /// Duration in nanoseconds (zero when the sender's end precedes its start).
    pub fn duration_nanos(&self) -> i64 {
        self.end_unix_nanos
            .saturating_sub(self.start_unix_nanos)
            .max(0)
    }

    /// Whether the span failed: status ERROR.
    pub fn is_error(&self) -> bool {
        self.status == StatusCode::Error
    }

    /// The value of one attribute, if present.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first of `keys` present (semantic-convention names changed over the versions).
    pub fn first_attribute(&self, keys: &[&str]) -> Option<&str> {
        keys.iter().find_map(|k| self.attribute(k))
    }

    /// The HTTP status the span records, if any.
    pub fn http_status(&self) -> Option<u16> {
        self.first_attribute(&["http.response.status_code", "http.status_code"])
            .and_then(|v| v.trim().parse().ok())
    }

    /// For a SERVER span, the port it was served on: `server.port` / `net.host.port`, else
    /// the port of `url.full` / `http.url` / `http.host`.
    pub fn served_port(&self) -> Option<u16> {
        if self.kind != SpanKind::Server {
            return None;
        }
        if let Some(port) = self
            .first_attribute(&["server.port", "net.host.port"])
            .and_then(|v| v.trim().parse().ok())
        {
            return Some(port);
        }
        let authority = self
            .first_attribute(&["url.full", "http.url"])
            .and_then(|url| url.split_once("://").map(|(_, rest)| rest))
            .map(|rest| rest.split('/').next().unwrap_or(rest))
            .or_else(|| self.attribute("http.host"))?;
        authority.rsplit_once(':')?.1.parse().ok()
    }

    /// For a CLIENT span, whom it says it called: (`peer.service`, address, port) from
    /// `server.address`/`server.port`, else the older `net.peer.name`/`net.peer.ip` and
    /// `net.peer.port`.
    pub fn peer(&self) -> (Option<&str>, Option<&str>, Option<u16>) {
        (
            self.attribute("peer.service"),
            self.first_attribute(&["server.address", "net.peer.name", "net.peer.ip"]),
            self.first_attribute(&["server.port", "net.peer.port"])
                .and_then(|v| v.trim().parse().ok()),
        )
    }
}
