//! OTLP receivers: gRPC (TraceService, LogsService, MetricsService) and HTTP (`/v1/traces`,
//! `/v1/logs`, `/v1/metrics`, protobuf and JSON, gzip), behaving as the OpenTelemetry Collector
//! does, so an instrumented service only changes its exporter endpoint.
//!
//! Execution model: a request is decoded, converted and applied inside its own handler.
//! Spans go straight into the [`TraceStore`](crate::traces::TraceStore) — an acknowledged span
//! is stored when the answer leaves. OTLP log records and the records of error spans
//! (status ERROR, `exception` events; `Origin::OtlpSpan`) go into a bounded [`LogSender`]
//! queue the agent drains into clustering (OTLP logs with a trace id are attached to the
//! store too). Goroutine and thread counts (`go.goroutine.count`,
//! `process.runtime.go.goroutines`, `go.thread.count`, ...) go to a [`TaskCounterSink`]; every
//! other metric data point is accepted, counted in [`OtlpStats::metric_points_dropped`], and
//! dropped.
//!
//! With `[export]` on ([`LogSender::forwarding`]), each accepted request is also forwarded
//! upstream as accepted (see `forward`): room in the exporter's bounded buffer is taken before
//! the request is copied (no room: counted as dropped by the exporter, the request is applied
//! all the same), trace and log requests travel through the log queue with their records so
//! the agent tags them with their patterns, metrics go to the exporter at once.
//!
//! Bounds, per transport unless said otherwise: a body must arrive within
//! `body_read_timeout_ms` (else HTTP 408, gRPC DEADLINE_EXCEEDED) and the bodies arriving at
//! once hold at most `max_body_bytes_in_flight`; once a body is there, at most
//! `max_concurrent_requests` requests are decoded and applied at once; gzip bodies of both
//! transports together inflate to at most `max_decompressed_bytes_in_flight`; the log queue
//! holds `log_queue_records`. Beyond any of them, senders get the spec's retryable error
//! (HTTP 429 with `Retry-After`, gRPC RESOURCE_EXHAUSTED with `RetryInfo`) and nothing of the
//! request is applied. A slow sender holds only the bytes it sent, never a request slot, so
//! it costs the fast ones nothing. Malformed, oversized and over-limit requests get the
//! non-retryable error (HTTP 400/413/415, gRPC INVALID_ARGUMENT) with a message naming what
//! was wrong, and are counted in [`OtlpStats::requests_invalid`]. In OTLP/JSON metrics, a
//! metric's data or a point's value that cannot be read is malformed too (HTTP 400, the
//! message names where it sits), not a metric without data.
//!
//! Doubles in OTLP/JSON, as the protobuf JSON mapping says: a number, a string holding a JSON
//! number (`"1.5"`), or `"NaN"`, `"Infinity"`, `"-Infinity"`; any other string (`"nan"`,
//! `"inf"`, `" 1"`) is malformed (400). A non-finite value is never a count or a level the
//! agent sums or compares: a metric point carrying one is accepted and counted in
//! `metric_points_dropped` (OTLP/gRPC's NaN the same), the point's metric and its other points
//! kept; a span's or a log record's double attribute keeps it as text (`NaN`, `Infinity`).

mod auth;
mod budget;
mod config;
mod convert;
mod error;
mod forward;
#[cfg(test)]
mod fuzz_tests;
mod grpc;
mod http;
mod json;
mod json_typed;
mod pipeline;
mod sink;

use std::net::SocketAddr;
use std::sync::Arc;

use faultline_net::{BearerToken, ConnectionCounts, ConnectionLimits, ConnectionStats, Tls};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::OtlpConfig;
pub use convert::UNKNOWN_SERVICE;
pub use error::OtlpError;
pub use forward::{tag_logs, tag_spans, tailed_logs, TAIL_SCOPE};
#[doc(hidden)]
pub use json::json_paths_agree;
pub use pipeline::{OtlpOutputs, OtlpStats};
pub use sink::{
    log_queue, DiscardTaskCounters, LogBatch, LogQueueError, LogReceiver, LogSender,
    TaskCounterSink, TaskMetric, TaskSample,
};

use auth::Gate;
use pipeline::Pipeline;

/// Why the receivers could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listen address could not be bound.
    #[error("cannot listen on {addr} for OTLP/{protocol}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// `gRPC` or `HTTP`.
        protocol: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Both OTLP receivers over one pipeline. Cheap to clone; clones share counters and bounds.
#[derive(Clone)]
pub struct OtlpReceivers {
    pipeline: Arc<Pipeline>,
    grpc_connections: ConnectionLimits,
    http_connections: ConnectionLimits,
    grpc_stats: Arc<ConnectionStats>,
    http_stats: Arc<ConnectionStats>,
    gate: Arc<Gate>,
    tls: Option<Tls>,
}

impl OtlpReceivers {
    /// Receivers with these limits delivering to these outputs, with the default connection
    /// limits on each listener.
    pub fn new(config: OtlpConfig, outputs: OtlpOutputs) -> Self {
        OtlpReceivers {
            pipeline: Arc::new(Pipeline::new(config, outputs)),
            grpc_connections: ConnectionLimits::default(),
            http_connections: ConnectionLimits::default(),
            grpc_stats: Arc::default(),
            http_stats: Arc::default(),
            gate: Arc::default(),
            tls: None,
        }
    }

    /// The same receivers asking every request for this bearer token (`otlp.token`; none:
    /// anyone may send). Set before serving: clones made earlier keep the old gate.
    pub fn with_token(mut self, token: Option<BearerToken>) -> Self {
        self.gate = Arc::new(Gate::new(token));
        self
    }

    /// The same receivers serving both listeners over TLS (`[otlp.tls]`; none: plain text).
    pub fn with_tls(mut self, tls: Option<Tls>) -> Self {
        self.tls = tls;
        self
    }

    /// The same receivers with these connection limits on the gRPC and the HTTP listener.
    pub fn with_connection_limits(
        mut self,
        grpc: ConnectionLimits,
        http: ConnectionLimits,
    ) -> Self {
        self.grpc_connections = grpc;
        self.http_connections = http;
        self
    }

    /// Counters since start.
    pub fn stats(&self) -> OtlpStats {
        OtlpStats {
            requests_unauthenticated: self.gate.refused(),
            ..self.pipeline.stats()
        }
    }

    /// Connection counters of both listeners together.
    pub fn connections(&self) -> ConnectionCounts {
        self.grpc_stats.counts().plus(self.http_stats.counts())
    }

    /// The OTLP/HTTP routes (behind the token gate), to serve on a listener of one's own.
    pub fn http_router(&self) -> axum::Router {
        http::router(self.pipeline.clone(), self.gate.clone())
    }

    /// Serves OTLP/gRPC on `grpc` and OTLP/HTTP on `http`, each within its connection
    /// limits (and over TLS when set), until `shutdown` is cancelled, then lets in-flight requests finish and
    /// returns.
    pub async fn serve(
        &self,
        grpc: TcpListener,
        http: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), ServeError> {
        let grpc_service = tower::ServiceBuilder::new()
            .layer(grpc::AdmissionLayer {
                pipeline: self.pipeline.clone(),
                gate: self.gate.clone(),
            })
            .service(grpc::routes(self.pipeline.clone()).prepare());
        tokio::join!(
            faultline_net::serve(
                grpc,
                grpc_service,
                self.tls.clone(),
                &self.grpc_connections,
                self.grpc_stats.clone(),
                shutdown.clone(),
            ),
            faultline_net::serve(
                http,
                self.http_router(),
                self.tls.clone(),
                &self.http_connections,
                self.http_stats.clone(),
                shutdown.clone(),
            ),
        );
        Ok(())
    }

    /// Binds both addresses (port 0 picks a free port) and returns the bound listeners, for
    /// [`serve`](Self::serve).
    pub async fn bind(
        grpc: SocketAddr,
        http: SocketAddr,
    ) -> Result<(TcpListener, TcpListener), ServeError> {
        let grpc_listener = TcpListener::bind(grpc)
            .await
            .map_err(|source| ServeError::Bind {
                addr: grpc,
                protocol: "gRPC",
                source,
            })?;
        let http_listener = TcpListener::bind(http)
            .await
            .map_err(|source| ServeError::Bind {
                addr: http,
                protocol: "HTTP",
                source,
            })?;
        Ok((grpc_listener, http_listener))
    }
}
