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

use bytes::Bytes;

use super::auth::Gate;
use super::budget::Held;
use super::error::OtlpError;
use super::pipeline::{Accepted, Pipeline, Transport, GRPC_FRAME_HEADER};

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

/// The protobuf bytes of a request's message (uncompressed), put in the request's extensions
/// by [`Admission`] when forwarding is on: a request kept whole is forwarded as these bytes.
#[derive(Clone)]
struct Received(Bytes);

fn received<T>(request: &Request<T>) -> Option<Bytes> {
    request.extensions().get::<Received>().map(|r| r.0.clone())
}

/// The three OTLP services over one shared pipeline.
#[derive(Clone)]
pub(crate) struct GrpcReceiver {
    pipeline: Arc<Pipeline>,
}

impl GrpcReceiver {
    /// Admission happened in [`Admission`], once the message was read.
    fn run<T>(&self, apply: impl FnOnce(&Pipeline) -> Result<T, OtlpError>) -> Result<T, Status> {
        apply(&self.pipeline).map_err(status_of)
    }
}

/// Refuses a request without the receivers' token (UNAUTHENTICATED) before anything is read.
/// Then reads the whole message before tonic sees it — within `body_read_timeout_ms`, held
/// against the gRPC body budget —, then takes a gRPC request slot, inflates a gzip message
/// under the decompressed-bytes budget shared with HTTP, and holds all of it until the answer
/// is ready. A slow sender so holds only its own bytes, never a slot. Refusals are answered
/// here with the gRPC status (RESOURCE_EXHAUSTED with `RetryInfo` when retryable); tonic's
/// own refusals of a message it cannot decode become INVALID_ARGUMENT and are counted.
#[derive(Clone)]
pub(crate) struct Admission<S> {
    inner: S,
    pipeline: Arc<Pipeline>,
    gate: Arc<Gate>,
}

/// The layer that puts [`Admission`] in front of the gRPC services.
#[derive(Clone)]
pub(crate) struct AdmissionLayer {
    pub pipeline: Arc<Pipeline>,
    pub gate: Arc<Gate>,
}

impl<S> tower::Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Admission<S> {
        Admission {
            inner,
            pipeline: self.pipeline.clone(),
            gate: self.gate.clone(),
        }
    }
}

/// A unary gRPC message read whole, uncompressed, with what it holds until the answer.
struct Prepared {
    frame: Vec<u8>,
    inflated: bool,
    _body: Held,
    _slot: tokio::sync::OwnedSemaphorePermit,
    _inflated: Held,
}

/// Reads, admits and inflates one unary request body (see [`Admission`]).
async fn prepare<B>(
    pipeline: &Pipeline,
    headers: &axum::http::HeaderMap,
    body: B,
) -> Result<Prepared, OtlpError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let limit = pipeline
        .config
        .max_message_bytes
        .saturating_add(GRPC_FRAME_HEADER);
    let (raw, body_held) = pipeline
        .read_body(Transport::Grpc, body, limit, None)
        .await
        .map_err(|error| match error {
            OtlpError::TooLarge(_) => OtlpError::TooLarge(format!(
                "the message is larger than max_message_bytes = {}",
                pipeline.config.max_message_bytes
            )),
            other => other,
        })?;
    let slot = pipeline.admit(Transport::Grpc)?;
    let (compressed, length) = match raw.as_slice() {
        [flag, a, b, c, d, ..] => (*flag, u32::from_be_bytes([*a, *b, *c, *d]) as usize),
        _ => {
            return Err(OtlpError::BadRequest(
                "the gRPC message is shorter than its 5-byte header".into(),
            ))
        }
    };
    if raw.len() != GRPC_FRAME_HEADER + length {
        return Err(OtlpError::BadRequest(format!(
            "the gRPC body holds {} bytes after its header, the header announces {length}: \
             an export is exactly one message",
            raw.len() - GRPC_FRAME_HEADER
        )));
    }
    match compressed {
        0 => Ok(Prepared {
            frame: raw,
            inflated: false,
            _body: body_held,
            _slot: slot,
            _inflated: Held::default(),
        }),
        1 => {
            let encoding = headers
                .get("grpc-encoding")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !encoding.eq_ignore_ascii_case("gzip") {
                return Err(OtlpError::UnsupportedEncoding(encoding.to_owned()));
            }
            let (mut frame, inflated) =
                pipeline.gunzip(&raw[GRPC_FRAME_HEADER..], &[0; GRPC_FRAME_HEADER])?;
            drop(raw);
            let plain = u32::try_from(frame.len() - GRPC_FRAME_HEADER).map_err(|_| {
                OtlpError::TooLarge("the message decompresses to more than 4 GiB".into())
            })?;
            frame[1..GRPC_FRAME_HEADER].copy_from_slice(&plain.to_be_bytes());
            Ok(Prepared {
                frame,
                inflated: true,
                _body: body_held,
                _slot: slot,
                _inflated: inflated,
            })
        }
        other => Err(OtlpError::BadRequest(format!(
            "the gRPC message's compressed flag is {other}, not 0 or 1"
        ))),
    }
}

impl<S, ReqBody> tower::Service<axum::http::Request<ReqBody>> for Admission<S>
where
    S: tower::Service<
            axum::http::Request<tonic::body::Body>,
            Response = axum::http::Response<tonic::body::Body>,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: http_body::Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: std::fmt::Display,
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
        // The clone that was made ready is the one called (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let pipeline = self.pipeline.clone();
        let gate = self.gate.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            if let Err(error) = gate.admit(&parts.headers) {
                return Ok(status_of(error).into_http());
            }
            let prepared = match prepare(&pipeline, &parts.headers, body).await {
                Ok(prepared) => prepared,
                Err(error) => {
                    if error.is_invalid() {
                        pipeline.note_invalid();
                    }
                    return Ok(status_of(error).into_http());
                }
            };
            let Prepared {
                frame,
                inflated,
                _body: body_held,
                _slot: slot,
                _inflated: inflated_held,
            } = prepared;
            if inflated {
                parts.headers.remove("grpc-encoding");
            }
            let frame = Bytes::from(frame);
            if pipeline.forwards() {
                // The message as received, for the exporter (shares the frame's buffer).
                parts
                    .extensions
                    .insert(Received(frame.slice(GRPC_FRAME_HEADER..)));
            }
            let body = tonic::body::Body::new(http_body_util::Full::new(frame));
            let response = inner
                .call(axum::http::Request::from_parts(parts, body))
                .await?;
            // Held until the message was decoded and applied.
            drop((body_held, slot, inflated_held));
            Ok(refusal_is_the_senders(&pipeline, response))
        })
    }
}

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let Accepted { rejected, message } = {
            let encoded = received(&request);
            self.run(|p| p.traces(request.into_inner(), encoded))?
        };
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: (rejected > 0 || !message.is_empty()).then_some(
                ExportTracePartialSuccess {
                    rejected_spans: rejected,
                    error_message: message,
                },
            ),
        }))
    }
}

#[tonic::async_trait]
impl LogsService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let Accepted { rejected, message } = {
            let encoded = received(&request);
            self.run(|p| p.logs(request.into_inner(), encoded))?
        };
        Ok(Response::new(ExportLogsServiceResponse {
            partial_success: (rejected > 0 || !message.is_empty()).then_some(
                ExportLogsPartialSuccess {
                    rejected_log_records: rejected,
                    error_message: message,
                },
            ),
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let Accepted { rejected, message } = {
            let encoded = received(&request);
            self.run(|p| p.metrics(request.into_inner(), encoded))?
        };
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: (rejected > 0 || !message.is_empty()).then_some(
                ExportMetricsPartialSuccess {
                    rejected_data_points: rejected,
                    error_message: message,
                },
            ),
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

/// Tonic refuses an oversized message with OUT_OF_RANGE, a message it cannot decode with
/// INTERNAL, and a gzip bomb with RESOURCE_EXHAUSTED — which an OTLP sender may read as
/// "retry" or as the receiver's fault. All are the sender's fault and final, so they are
/// rewritten to INVALID_ARGUMENT as the OTLP spec asks, and counted like HTTP's 400s.
fn refusal_is_the_senders<B>(
    pipeline: &Pipeline,
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
    let undecodable = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|m| m.contains("decode"));
    let rewrite = match code {
        Some("11") => true,
        Some("8") => size_limit,
        Some("13") => undecodable,
        _ => false,
    };
    if rewrite {
        headers.insert("grpc-status", axum::http::HeaderValue::from_static("3"));
        pipeline.note_invalid();
    }
    response
}
