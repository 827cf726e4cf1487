//! OTLP/gRPC receiver: `TraceService`, `LogsService` and `MetricsService` on one tonic server,
//! gzip accepted, messages capped at `max_message_bytes` after decompression (as the
//! collector's gRPC server counts). Refusals are INVALID_ARGUMENT (not retryable) or
//! RESOURCE_EXHAUSTED with a `google.rpc.RetryInfo` detail (retryable).

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::error::OtlpError;
use super::pipeline::{Accepted, Pipeline};

/// The gRPC status for a refusal; retryable ones carry `RetryInfo`.
fn status_of(error: OtlpError) -> Status {
    let code = error.grpc_code();
    match error.retry_after_secs() {
        Some(secs) => Status::with_error_details(
            code,
            error.to_string(),
            ErrorDetails::with_retry_info(Some(Duration::from_secs(secs))),
        ),
        None => Status::new(code, error.to_string()),
    }
}

/// The three OTLP services over one shared pipeline.
#[derive(Clone)]
pub(crate) struct GrpcReceiver {
    pipeline: Arc<Pipeline>,
}

impl GrpcReceiver {
    /// Admission happened in [`Admission`], before the message was read.
    fn run<T>(&self, apply: impl FnOnce(&Pipeline) -> Result<T, OtlpError>) -> Result<T, Status> {
        apply(&self.pipeline).map_err(status_of)
    }
}

/// Takes a request slot before tonic reads and decodes the message, and holds it until the
/// answer is ready, so decoding memory is bounded by the slots; without a free slot the call
/// is answered RESOURCE_EXHAUSTED with `RetryInfo` at once.
#[derive(Clone)]
pub(crate) struct Admission<S> {
    inner: S,
    pipeline: Arc<Pipeline>,
}

/// The layer that puts [`Admission`] in front of the gRPC services.
#[derive(Clone)]
pub(crate) struct AdmissionLayer {
    pub pipeline: Arc<Pipeline>,
}

impl<S> tower::Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Admission<S> {
        Admission {
            inner,
            pipeline: self.pipeline.clone(),
        }
    }
}

impl<S, ReqBody, ResBody> tower::Service<axum::http::Request<ReqBody>> for Admission<S>
where
    S: tower::Service<axum::http::Request<ReqBody>, Response = axum::http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Default + Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<ReqBody>) -> Self::Future {
        match self.pipeline.admit() {
            Ok(permit) => {
                let answer = self.inner.call(request);
                Box::pin(async move {
                    let response = answer.await;
                    drop(permit);
                    response
                })
            }
            Err(error) => {
                let response = status_of(error).into_http();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let Accepted { rejected, message } = self.run(|p| p.traces(request.into_inner()))?;
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: (rejected > 0).then_some(ExportTracePartialSuccess {
                rejected_spans: rejected,
                error_message: message,
            }),
        }))
    }
}

#[tonic::async_trait]
impl LogsService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let Accepted { rejected, message } = self.run(|p| p.logs(request.into_inner()))?;
        Ok(Response::new(ExportLogsServiceResponse {
            partial_success: (rejected > 0).then_some(ExportLogsPartialSuccess {
                rejected_log_records: rejected,
                error_message: message,
            }),
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let Accepted { rejected, message } = self.run(|p| p.metrics(request.into_inner()))?;
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: (rejected > 0).then_some(ExportMetricsPartialSuccess {
                rejected_data_points: rejected,
                error_message: message,
            }),
        }))
    }
}

/// The three services as tonic routes.
pub(crate) fn routes(pipeline: Arc<Pipeline>) -> tonic::service::Routes {
    let max = pipeline.config.max_message_bytes;
    let receiver = GrpcReceiver { pipeline };
    let mut routes = tonic::service::Routes::default();
    routes = routes.add_service(
        TraceServiceServer::new(receiver.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max),
    );
    routes = routes.add_service(
        LogsServiceServer::new(receiver.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max),
    );
    routes.add_service(
        MetricsServiceServer::new(receiver)
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max),
    )
}

/// Tonic refuses an oversized message with OUT_OF_RANGE, and a gzip bomb with
/// RESOURCE_EXHAUSTED — which an OTLP sender may read as "retry". Both are the sender's fault
/// and final, so they are rewritten to INVALID_ARGUMENT as the OTLP spec asks.
pub(crate) fn fix_limit_status<B>(
    mut response: axum::http::Response<B>,
) -> axum::http::Response<B> {
    let headers = response.headers_mut();
    let code = headers.get("grpc-status").and_then(|v| v.to_str().ok());
    let size_limit = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|m| {
            ["size limit", "size%20limit", "too large", "too%20large"]
                .iter()
                .any(|p| m.contains(p))
        });
    let rewrite = match code {
        Some("11") => true,
        Some("8") => size_limit,
        _ => false,
    };
    if rewrite {
        headers.insert("grpc-status", axum::http::HeaderValue::from_static("3"));
    }
    response
}
