//! Limits of the OTLP receivers. The listen addresses are not here: they come from the agent's
//! `[otlp] grpc_listen / http_listen` and are passed to [`serve`](super::serve).

use serde::Deserialize;

/// Limits of the OTLP receivers; every violation is answered with the spec's non-retryable
/// error naming the limit, every overload with its retryable error.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpConfig {
    /// Largest request body / gRPC message accepted, as sent (compressed) — 4 MiB like the
    /// collector. Larger: HTTP 413, gRPC INVALID_ARGUMENT.
    pub max_message_bytes: usize,
    /// Largest body after gzip decompression (no gzip bombs). Larger: HTTP 413, gRPC
    /// INVALID_ARGUMENT (or tonic's OUT_OF_RANGE when the gRPC frame itself is larger).
    pub max_decompressed_bytes: usize,
    /// Most attributes kept on one span, event or log record. More: the item is kept with the
    /// first ones, the rest counted ([`OtlpStats::attributes_dropped`](super::OtlpStats)) and
    /// named in the answer's partial success (0 rejected, a message).
    pub max_attributes_per_span: usize,
    /// Most events kept on one span; more are cut and counted the same way.
    pub max_events_per_span: usize,
    /// Attribute values, log bodies and messages longer than this are cut (on a character
    /// boundary) when rendered as text.
    pub max_value_bytes: usize,
    /// Requests decoded and applied at the same time, per protocol (HTTP and gRPC each have
    /// their own). A request takes its slot only once its body has arrived, so a slow sender
    /// holds no slot. One more: HTTP 429 with `Retry-After`, gRPC RESOURCE_EXHAUSTED with
    /// `RetryInfo`.
    pub max_concurrent_requests: usize,
    /// Body bytes held at once by requests still arriving or being decoded, per protocol
    /// (memory bound of slow senders). At least `max_message_bytes`. Past it: the retryable
    /// error.
    pub max_body_bytes_in_flight: usize,
    /// Decompressed bytes held at once by all requests of both protocols (memory bound of
    /// many concurrent gzip bodies). At least `max_decompressed_bytes`. Past it: the
    /// retryable error.
    pub max_decompressed_bytes_in_flight: usize,
    /// Milliseconds a request body may take to arrive, from the end of its headers. Slower:
    /// HTTP 408, gRPC DEADLINE_EXCEEDED, and its bytes are given back.
    pub body_read_timeout_ms: u64,
    /// Log records (OTLP logs and error spans) waiting for the agent to cluster them. When a
    /// request's records do not fit: HTTP 429 with `Retry-After`, gRPC RESOURCE_EXHAUSTED.
    pub log_queue_records: usize,
    /// Seconds a refused sender is told to wait before retrying.
    pub retry_after_secs: u64,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            max_message_bytes: 4 * 1024 * 1024,
            max_decompressed_bytes: 32 * 1024 * 1024,
            max_attributes_per_span: 128,
            max_events_per_span: 128,
            max_value_bytes: 16 * 1024,
            max_concurrent_requests: 64,
            // Sixteen requests of the largest size arriving at once per protocol.
            max_body_bytes_in_flight: 64 * 1024 * 1024,
            // 200 concurrent gzip requests each inflating to 30 MiB took the receiver to a
            // 443 MiB high-water mark when the limit was per request only: 64 MiB holds two
            // of the largest at once, and a single one is never refused for it.
            max_decompressed_bytes_in_flight: 64 * 1024 * 1024,
            // OpenTelemetry SDK exporters give up on a request after 10 s by default: a body
            // still arriving then has no sender waiting for the answer.
            body_read_timeout_ms: 10_000,
            log_queue_records: 65_536,
            retry_after_secs: 1,
        }
    }
}
