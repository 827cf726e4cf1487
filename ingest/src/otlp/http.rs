//! OTLP/HTTP receiver: `POST /v1/traces`, `/v1/logs`, `/v1/metrics` with
//! `application/x-protobuf` or `application/json` bodies, optionally gzip-compressed, answered
//! as the OTLP specification says — the export response (with partial success) in the
//! request's encoding, or a `google.rpc.Status` with 400/413/415 for bad requests and 429 with
//! `Retry-After` when the receiver is at capacity.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
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

use super::auth::Gate;
use super::budget::Held;
use super::error::OtlpError;
use super::json::JsonRequest;
use super::pipeline::{Accepted, Pipeline, Transport};

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
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
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

/// The body's `Content-Encoding`: none or gzip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContentEncoding {
    Identity,
    Gzip,
}

fn content_encoding(headers: &HeaderMap) -> Result<ContentEncoding, OtlpError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    match encoding.as_str() {
        "" | "identity" => Ok(ContentEncoding::Identity),
        "gzip" | "x-gzip" => Ok(ContentEncoding::Gzip),
        other => Err(OtlpError::UnsupportedEncoding(other.to_owned())),
    }
}

fn decode<T: Message + Default + JsonRequest>(
    encoding: Encoding,
    body: &[u8],
) -> Result<T, OtlpError> {
    match encoding {
        Encoding::Protobuf => {
            T::decode(body).map_err(|e| OtlpError::BadRequest(format!("malformed protobuf: {e}")))
        }
        Encoding::Json => T::from_json(body),
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
            if accepted.is_partial() {
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

/// What an admitted request holds until it is answered: its slot and its bytes.
struct Admitted {
    _slot: tokio::sync::OwnedSemaphorePermit,
    _body: Held,
    _inflated: Held,
}

/// The steps every signal shares: check the content type, read the body, admit, decompress,
/// decode. Also the protobuf body, when forwarding is on.
async fn receive<T: Message + Default + JsonRequest>(
    pipeline: &Pipeline,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Encoding, T, Option<Bytes>, Admitted), HttpError> {
    let encoding = encoding_of(headers).map_err(|error| {
        pipeline.note_invalid();
        HttpError {
            error,
            encoding: None,
        }
    })?;
    let fail = |error: OtlpError| {
        if error.is_invalid() {
            pipeline.note_invalid();
        }
        HttpError {
            error,
            encoding: Some(encoding),
        }
    };
    let compression = content_encoding(headers).map_err(fail)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let (raw, body_held) = pipeline
        .read_body(
            Transport::Http,
            body,
            pipeline.config.max_message_bytes,
            declared,
        )
        .await
        .map_err(fail)?;
    let slot = pipeline.admit(Transport::Http).map_err(fail)?;
    let (plain, inflated) = match compression {
        ContentEncoding::Identity => (raw, Held::default()),
        ContentEncoding::Gzip => {
            let inflated = pipeline.gunzip(&raw, &[]).map_err(fail)?;
            drop(raw);
            inflated
        }
    };
    let request = decode::<T>(encoding, &plain).map_err(fail)?;
    let admitted = Admitted {
        _slot: slot,
        _body: body_held,
        _inflated: inflated,
    };
    // A protobuf body is forwarded as it came (see `Pipeline::traces`); JSON is encoded anew.
    let encoded =
        (encoding == Encoding::Protobuf && pipeline.forwards()).then(|| Bytes::from(plain));
    Ok((encoding, request, encoded, admitted))
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
    let (encoding, request, encoded, _permit) =
        receive::<ExportTraceServiceRequest>(&pipeline, &headers, body).await?;
    let accepted = pipeline
        .traces(request, encoded)
        .map_err(|e| refused(e, encoding))?;
    let response = ExportTraceServiceResponse {
        partial_success: accepted.is_partial().then(|| ExportTracePartialSuccess {
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
    let (encoding, request, encoded, _permit) =
        receive::<ExportLogsServiceRequest>(&pipeline, &headers, body).await?;
    let accepted = pipeline
        .logs(request, encoded)
        .map_err(|e| refused(e, encoding))?;
    let response = ExportLogsServiceResponse {
        partial_success: accepted.is_partial().then(|| ExportLogsPartialSuccess {
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
    let (encoding, request, encoded, _permit) =
        receive::<ExportMetricsServiceRequest>(&pipeline, &headers, body).await?;
    let accepted = pipeline
        .metrics(request, encoded)
        .map_err(|e| refused(e, encoding))?;
    let response = ExportMetricsServiceResponse {
        partial_success: accepted.is_partial().then(|| ExportMetricsPartialSuccess {
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

/// Refuses a request without the receivers' token before its body is read.
async fn require_token(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    match gate.admit(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(error) => HttpError {
            error,
            encoding: encoding_of(request.headers()).ok(),
        }
        .into_response(),
    }
}

/// The OTLP/HTTP routes, behind the token gate.
pub(crate) fn router(pipeline: Arc<Pipeline>, gate: Arc<Gate>) -> Router {
    Router::new()
        .route("/v1/traces", post(traces))
        .route("/v1/logs", post(logs))
        .route("/v1/metrics", post(metrics))
        .with_state(pipeline)
        .layer(axum::middleware::from_fn_with_state(gate, require_token))
}

/// The body decoding, for the fuzz tests.
#[cfg(test)]
pub(crate) fn decode_for_tests<T: Message + Default + JsonRequest>(
    encoding: Encoding,
    body: &[u8],
) -> Result<T, OtlpError> {
    decode(encoding, body)
}
