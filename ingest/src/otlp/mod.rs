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
//! was wrong, and are counted in [`OtlpStats::requests_invalid`].

mod budget;
mod config;
mod convert;
mod error;
#[cfg(test)]
mod fuzz_tests;
mod grpc;
mod http;
mod json;
mod pipeline;
mod sink;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::OtlpConfig;
pub use convert::UNKNOWN_SERVICE;
pub use error::OtlpError;
pub use pipeline::{OtlpOutputs, OtlpStats};
pub use sink::{
    log_queue, DiscardTaskCounters, LogBatch, LogQueueError, LogReceiver, LogSender,
    TaskCounterSink, TaskMetric, TaskSample,
};

use pipeline::Pipeline;

/// Why the receivers could not start or stopped with an error.
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
    /// The gRPC server failed.
    #[error("OTLP/gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    /// The HTTP server failed.
    #[error("OTLP/HTTP server failed: {0}")]
    Http(std::io::Error),
}

/// Both OTLP receivers over one pipeline. Cheap to clone; clones share counters and bounds.
#[derive(Clone)]
pub struct OtlpReceivers {
    pipeline: Arc<Pipeline>,
}

impl OtlpReceivers {
    /// Receivers with these limits delivering to these outputs.
    pub fn new(config: OtlpConfig, outputs: OtlpOutputs) -> Self {
        OtlpReceivers {
            pipeline: Arc::new(Pipeline::new(config, outputs)),
        }
    }

    /// Counters since start.
    pub fn stats(&self) -> OtlpStats {
        self.pipeline.stats()
    }

    /// The OTLP/HTTP routes, to serve on a listener of one's own.
    pub fn http_router(&self) -> axum::Router {
        http::router(self.pipeline.clone())
    }

    /// Serves OTLP/gRPC on `grpc` and OTLP/HTTP on `http` until `shutdown` is cancelled, then
    /// lets in-flight requests finish and returns.
    pub async fn serve(
        &self,
        grpc: TcpListener,
        http: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), ServeError> {
        // Loopback senders wait for each answer: Nagle's algorithm would hold small answers
        // back for a delayed ACK. The adaptive HTTP/2 window lets a 4 MiB export flow without
        // a window-update round trip every 64 KiB.
        let grpc_server = tonic::transport::Server::builder()
            .http2_adaptive_window(Some(true))
            .layer(grpc::AdmissionLayer {
                pipeline: self.pipeline.clone(),
            })
            .add_routes(grpc::routes(self.pipeline.clone()))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(grpc).with_nodelay(Some(true)),
                shutdown.clone().cancelled_owned(),
            );
        let http = http.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let http_server = axum::serve(http, self.http_router())
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let (grpc_result, http_result) = tokio::join!(
            async {
                let result = grpc_server.await;
                // One server failing stops the other too: a half-open receiver would mislead.
                shutdown.cancel();
                result
            },
            async {
                let result = http_server.await;
                shutdown.cancel();
                result
            }
        );
        grpc_result?;
        http_result.map_err(ServeError::Http)
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
