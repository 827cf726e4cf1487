//! OTLP/HTTP receiver: `POST /v1/traces`, `/v1/logs`, `/v1/metrics` with
//! `application/x-protobuf` or `application/json` bodies, optionally gzip-compressed, answered
//! as the OTLP specification says — the export response (with partial success) in the
//! request's encoding, or a `google.rpc.Status` with 400/413/415 for bad requests and 429 with
//! `Retry-After` when the receiver is at capacity.

use std::io::Read;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use futures::StreamExt;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use serde::de::DeserializeOwned;

use super::error::OtlpError;
use super::json;
use super::pipeline::{Accepted, Pipeline};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// The two OTLP/HTTP encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => PROTOBUF,
            Encoding::Json => JSON,
        }
    }
}

/// `google.rpc.Status`, the body of OTLP/HTTP error responses.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// A refused request, answered in the request's encoding when it is known.
struct HttpError {
    error: OtlpError,
    encoding: Option<Encoding>,
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.error.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        let body = RpcStatus {
            code: self.error.grpc_code() as i32,
            message: self.error.to_string(),
        };
        let mut response = match self.encoding {
            Some(Encoding::Protobuf) => {
                ([(header::CONTENT_TYPE, PROTOBUF)], body.encode_to_vec()).into_response()
            }
            Some(Encoding::Json) => (
                [(header::CONTENT_TYPE, JSON)],
                serde_json::to_vec(&body).unwrap_or_default(),
            )
                .into_response(),
            None => (
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                body.message,
            )
                .into_response(),
        };
        *response.status_mut() = status;
        if let Some(secs) = self.error.retry_after_secs() {
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

fn encoding_of(headers: &HeaderMap) -> Result<Encoding, OtlpError> {
    let raw = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let media = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        PROTOBUF => Ok(Encoding::Protobuf),
        JSON => Ok(Encoding::Json),
        _ => Err(OtlpError::UnsupportedMediaType(raw)),
    }
}

/// Most bytes of an oversized body read and discarded before answering 413: a client that
/// is still writing when the answer comes would see a broken pipe instead of the status.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// Reads the body, refusing it once it passes the limit (after discarding the rest, up to
/// [`DRAIN_LIMIT`], so the sender can read the refusal).
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Vec<u8>, OtlpError> {
    let too_large = || {
        OtlpError::TooLarge(format!(
            "the body is larger than max_message_bytes = {limit}"
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut stream = body.into_data_stream();
    let mut out = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    let mut over = declared.is_some_and(|n| n > limit);
    let mut drained = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| OtlpError::BadRequest(format!("could not read the body: {e}")))?;
        if !over && out.len() + chunk.len() > limit {
            over = true;
            out = Vec::new();
        }
        if over {
            drained += chunk.len();
            if drained > DRAIN_LIMIT {
                break;
            }
        } else {
            out.extend_from_slice(&chunk);
        }
    }
    if over {
        return Err(too_large());
    }
    Ok(out)
}

/// Undoes `Content-Encoding: gzip`, stopping at the decompressed-size limit (gzip bombs).
fn decode_content(headers: &HeaderMap, body: Vec<u8>, limit: usize) -> Result<Vec<u8>, OtlpError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    match encoding.as_str() {
        "" | "identity" => Ok(body),
        "gzip" | "x-gzip" => {
            let mut out = Vec::new();
            let decoder = flate2::read::MultiGzDecoder::new(body.as_slice());
            let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
            decoder
                .take(cap)
                .read_to_end(&mut out)
                .map_err(|e| OtlpError::BadRequest(format!("invalid gzip body: {e}")))?;
            if out.len() > limit {
                return Err(OtlpError::TooLarge(format!(
                    "the body decompresses to more than max_decompressed_bytes = {limit}"
                )));
            }
            Ok(out)
        }
        other => Err(OtlpError::UnsupportedEncoding(other.to_owned())),
    }
}

fn decode<T: Message + Default + DeserializeOwned>(
    encoding: Encoding,
    body: &[u8],
) -> Result<T, OtlpError> {
    match encoding {
        Encoding::Protobuf => {
            T::decode(body).map_err(|e| OtlpError::BadRequest(format!("malformed protobuf: {e}")))
        }
        Encoding::Json => json::decode(body),
    }
}

/// The export answer. In JSON it is written by hand to the canonical OTLP/JSON form: `{}` on
/// full success (not `"partialSuccess": null`), and the rejected count as a decimal string
/// (`rejected_field` is `rejectedSpans`, `rejectedLogRecords` or `rejectedDataPoints`).
fn respond<T: Message>(
    encoding: Encoding,
    response: &T,
    rejected_field: &str,
    accepted: &Accepted,
) -> Response {
    let body = match encoding {
        Encoding::Protobuf => response.encode_to_vec(),
        Encoding::Json => {
            let mut answer = serde_json::Map::new();
            if accepted.rejected > 0 {
                answer.insert(
                    "partialSuccess".to_owned(),
                    serde_json::json!({
                        rejected_field: accepted.rejected.to_string(),
                        "errorMessage": accepted.message,
                    }),
                );
            }
            serde_json::to_vec(&answer).unwrap_or_default()
        }
    };
    ([(header::CONTENT_TYPE, encoding.content_type())], body).into_response()
}

/// The steps every signal shares: admit, check the content type, read, decompress, decode.
async fn receive<T: Message + Default + DeserializeOwned>(
    pipeline: &Pipeline,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Encoding, T, tokio::sync::OwnedSemaphorePermit), HttpError> {
    let encoding = encoding_of(headers).map_err(|error| {
        pipeline.note_invalid();
        HttpError {
            error,
            encoding: None,
        }
    })?;
    let fail = |error: OtlpError| {
        if !error.is_retryable() {
            pipeline.note_invalid();
        }
        HttpError {
            error,
            encoding: Some(encoding),
        }
    };
    let permit = pipeline.admit().map_err(fail)?;
    let raw = read_body(headers, body, pipeline.config.max_message_bytes)
        .await
        .map_err(fail)?;
    let plain =
        decode_content(headers, raw, pipeline.config.max_decompressed_bytes).map_err(fail)?;
    let request = decode::<T>(encoding, &plain).map_err(fail)?;
    Ok((encoding, request, permit))
}

fn refused(error: OtlpError, encoding: Encoding) -> HttpError {
    HttpError {
        error,
        encoding: Some(encoding),
    }
}

async fn traces(
    State(pipeline): State<Arc<Pipeline>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let (encoding, request, _permit) =
        receive::<ExportTraceServiceRequest>(&pipeline, &headers, body).await?;
    let accepted = pipeline.traces(request).map_err(|e| refused(e, encoding))?;
    let response = ExportTraceServiceResponse {
        partial_success: (accepted.rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: accepted.rejected,
            error_message: accepted.message.clone(),
        }),
    };
    Ok(respond(encoding, &response, "rejectedSpans", &accepted))
}

async fn logs(
    State(pipeline): State<Arc<Pipeline>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let (encoding, request, _permit) =
        receive::<ExportLogsServiceRequest>(&pipeline, &headers, body).await?;
    let accepted = pipeline.logs(request).map_err(|e| refused(e, encoding))?;
    let response = ExportLogsServiceResponse {
        partial_success: (accepted.rejected > 0).then(|| ExportLogsPartialSuccess {
            rejected_log_records: accepted.rejected,
            error_message: accepted.message.clone(),
        }),
    };
    Ok(respond(
        encoding,
        &response,
        "rejectedLogRecords",
        &accepted,
    ))
}

async fn metrics(
    State(pipeline): State<Arc<Pipeline>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let (encoding, request, _permit) =
        receive::<ExportMetricsServiceRequest>(&pipeline, &headers, body).await?;
    let accepted = pipeline
        .metrics(request)
        .map_err(|e| refused(e, encoding))?;
    let response = ExportMetricsServiceResponse {
        partial_success: (accepted.rejected > 0).then(|| ExportMetricsPartialSuccess {
            rejected_data_points: accepted.rejected,
            error_message: accepted.message.clone(),
        }),
    };
    Ok(respond(
        encoding,
        &response,
        "rejectedDataPoints",
        &accepted,
    ))
}

/// The OTLP/HTTP routes.
pub(crate) fn router(pipeline: Arc<Pipeline>) -> Router {
    Router::new()
        .route("/v1/traces", post(traces))
        .route("/v1/logs", post(logs))
        .route("/v1/metrics", post(metrics))
        .with_state(pipeline)
}

/// The content decoding, for the fuzz tests.
#[cfg(test)]
pub(crate) fn decode_content_for_tests(
    headers: &HeaderMap,
    body: Vec<u8>,
    limit: usize,
) -> Result<Vec<u8>, OtlpError> {
    decode_content(headers, body, limit)
}

/// The body decoding, for the fuzz tests.
#[cfg(test)]
pub(crate) fn decode_for_tests<T: Message + Default + DeserializeOwned>(
    encoding: Encoding,
    body: &[u8],
) -> Result<T, OtlpError> {
    decode(encoding, body)
}
