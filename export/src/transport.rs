//! One request to the upstream over OTLP/gRPC (tonic, calling the OTLP collector services'
//! methods with the request's protobuf bytes as they are) or OTLP/HTTP with protobuf bodies
//! (reqwest), and the reading of its answer: delivered (maybe partly rejected), retry later (and when), or refused for good.
//!
//! Which failures are retried follows the OTLP specification: gRPC UNAVAILABLE,
//! RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, ABORTED, CANCELLED, OUT_OF_RANGE, DATA_LOSS (with
//! the server's `RetryInfo` delay when it gives one); HTTP 429, 502, 503, 504 (with
//! `Retry-After` in seconds); a connection that cannot be made or times out. Everything else
//! (bad request, unauthenticated, ...) is permanent: sending the same bytes again cannot help.

use std::str::FromStr;
use std::time::Duration;

use bytes::{BufMut, Bytes};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::Code;
use tonic_types::StatusExt;

use crate::config::{ExportSettings, Protocol};
use crate::payload::Signal;

/// Why a transport could not be built from valid settings.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// tonic refused the endpoint or its TLS configuration.
    #[error("cannot set up gRPC towards {endpoint}: {source}")]
    Grpc {
        /// The endpoint.
        endpoint: String,
        /// tonic's error.
        source: tonic::transport::Error,
    },
    /// reqwest refused the client configuration (a CA it cannot read).
    #[error("cannot set up HTTP towards {endpoint}: {source}")]
    Http {
        /// The endpoint.
        endpoint: String,
        /// reqwest's error.
        source: reqwest::Error,
    },
    /// A header is not valid as gRPC metadata.
    #[error("export.headers.{0}: not a valid gRPC metadata entry")]
    Header(String),
    /// The sender's thread or runtime could not be started.
    #[error("cannot start the export thread: {0}")]
    Runtime(std::io::Error),
}

/// The outcome of one failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Try again later; `after` is the delay the upstream asked for, if it did.
    Retryable {
        /// The upstream's requested delay.
        after: Option<Duration>,
        /// What happened, for the status and the log.
        why: String,
    },
    /// Sending the same request again cannot succeed.
    Permanent {
        /// What happened.
        why: String,
    },
}

/// A delivered request: how many of its items the upstream rejected (OTLP partial success).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Delivered {
    pub rejected: u64,
    pub message: String,
}

/// A client for one upstream endpoint.
pub(crate) enum Transport {
    Grpc {
        channel: Channel,
        metadata: MetadataMap,
        timeout: Duration,
    },
    Http {
        client: reqwest::Client,
        endpoint: String,
    },
}

impl Transport {
    /// A client for these settings. Connections are made lazily, at the first request, so a
    /// dead upstream at start is a retried failure, not a start error.
    pub fn new(settings: &ExportSettings) -> Result<Transport, TransportError> {
        match settings.protocol {
            Protocol::Grpc => {
                let grpc_error = |source| TransportError::Grpc {
                    endpoint: settings.endpoint.clone(),
                    source,
                };
                let mut endpoint = Endpoint::from_shared(settings.endpoint.clone())
                    .map_err(grpc_error)?
                    .timeout(settings.timeout)
                    .connect_timeout(settings.timeout);
                if settings.endpoint.starts_with("https://") {
                    let tls = match &settings.ca_pem {
                        Some(pem) => {
                            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem))
                        }
                        None => ClientTlsConfig::new().with_webpki_roots(),
                    };
                    endpoint = endpoint.tls_config(tls).map_err(grpc_error)?;
                }
                let mut metadata = MetadataMap::new();
                for (name, value) in &settings.headers {
                    let key = MetadataKey::from_str(name)
                        .map_err(|_| TransportError::Header(name.clone()))?;
                    let value = MetadataValue::try_from(value.as_str())
                        .map_err(|_| TransportError::Header(name.clone()))?;
                    metadata.insert(key, value);
                }
                Ok(Transport::Grpc {
                    channel: endpoint.connect_lazy(),
                    metadata,
                    timeout: settings.timeout,
                })
            }
            Protocol::HttpProtobuf => {
                let http_error = |source| TransportError::Http {
                    endpoint: settings.endpoint.clone(),
                    source,
                };
                let mut headers = reqwest::header::HeaderMap::new();
                for (name, value) in &settings.headers {
                    let key = reqwest::header::HeaderName::from_str(name)
                        .map_err(|_| TransportError::Header(name.clone()))?;
                    let mut value = reqwest::header::HeaderValue::from_str(value)
                        .map_err(|_| TransportError::Header(name.clone()))?;
                    value.set_sensitive(true);
                    headers.insert(key, value);
                }
                let mut builder = reqwest::Client::builder()
                    .timeout(settings.timeout)
                    .connect_timeout(settings.timeout)
                    .default_headers(headers);
                if let Some(pem) = &settings.ca_pem {
                    for cert in reqwest::Certificate::from_pem_bundle(pem).map_err(http_error)? {
                        builder = builder.add_root_certificate(cert);
                    }
                }
                Ok(Transport::Http {
                    client: builder.build().map_err(http_error)?,
                    endpoint: settings.endpoint.clone(),
                })
            }
        }
    }

    /// Sends one request of `signal` (its protobuf encoding) and reads the answer.
    pub async fn send(&self, signal: Signal, body: Bytes) -> Result<Delivered, Failure> {
        match self {
            Transport::Grpc {
                channel,
                metadata,
                timeout,
            } => {
                let request = request(body, metadata, *timeout);
                let answer = match signal {
                    Signal::Traces => {
                        unary::<ExportTraceServiceResponse>(channel, request, TRACES_EXPORT).await
                    }
                    Signal::Logs => {
                        unary::<ExportLogsServiceResponse>(channel, request, LOGS_EXPORT).await
                    }
                    Signal::Metrics => {
                        unary::<ExportMetricsServiceResponse>(channel, request, METRICS_EXPORT)
                            .await
                    }
                };
                answer.map_err(|status| grpc_failure(&status))
            }
            Transport::Http { client, endpoint } => send_http(client, endpoint, signal, body).await,
        }
    }
}

fn request<T>(message: T, metadata: &MetadataMap, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    *request.metadata_mut() = metadata.clone();
    request.set_timeout(timeout);
    request
}

/// The gRPC methods of the three OTLP collector services (as in `opentelemetry-proto`'s
/// generated clients).
const TRACES_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const LOGS_EXPORT: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
const METRICS_EXPORT: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

/// One unary call of an OTLP export method with an already encoded request: what the
/// generated clients do, minus the encoding (the body is written as it is) — so a request
/// received by this agent is forwarded without being encoded again.
async fn unary<A: ExportAnswer + Message + Default + Send + 'static>(
    channel: &Channel,
    request: tonic::Request<Bytes>,
    path: &'static str,
) -> Result<Delivered, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("the channel is not ready: {e}")))?;
    let answer: tonic::Response<A> = grpc
        .unary(
            request,
            tonic::codegen::http::uri::PathAndQuery::from_static(path),
            EncodedCodec::<A>(std::marker::PhantomData),
        )
        .await?;
    Ok(delivered(answer.into_inner()))
}

/// A codec that writes a request's protobuf bytes as they are and decodes the answer `A`.
struct EncodedCodec<A>(std::marker::PhantomData<A>);

impl<A: Message + Default + Send + 'static> tonic::codec::Codec for EncodedCodec<A> {
    type Encode = Bytes;
    type Decode = A;
    type Encoder = EncodedCodec<Bytes>;
    type Decoder = EncodedCodec<A>;

    fn encoder(&mut self) -> Self::Encoder {
        EncodedCodec(std::marker::PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        EncodedCodec(std::marker::PhantomData)
    }
}

impl tonic::codec::Encoder for EncodedCodec<Bytes> {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), Self::Error> {
        dst.put(item);
        Ok(())
    }
}

impl<A: Message + Default> tonic::codec::Decoder for EncodedCodec<A> {
    type Item = A;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<A>, Self::Error> {
        A::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(format!("undecodable answer: {e}")))
    }
}

/// Reads a gRPC error status as the OTLP specification says.
pub(crate) fn grpc_failure(status: &tonic::Status) -> Failure {
    let why = format!("gRPC {:?}: {}", status.code(), status.message());
    match status.code() {
        Code::Unavailable
        | Code::ResourceExhausted
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::Cancelled
        | Code::OutOfRange
        | Code::DataLoss => Failure::Retryable {
            after: status
                .get_details_retry_info()
                .and_then(|info| info.retry_delay),
            why,
        },
        _ => Failure::Permanent { why },
    }
}

/// An OTLP export answer of any signal: the partial success it carries, if any.
trait ExportAnswer {
    /// How many items the upstream rejected, and its message.
    fn partial_success(self) -> Option<(i64, String)>;
}

impl ExportAnswer for ExportTraceServiceResponse {
    fn partial_success(self) -> Option<(i64, String)> {
        self.partial_success
            .map(|p| (p.rejected_spans, p.error_message))
    }
}

impl ExportAnswer for ExportLogsServiceResponse {
    fn partial_success(self) -> Option<(i64, String)> {
        self.partial_success
            .map(|p| (p.rejected_log_records, p.error_message))
    }
}

impl ExportAnswer for ExportMetricsServiceResponse {
    fn partial_success(self) -> Option<(i64, String)> {
        self.partial_success
            .map(|p| (p.rejected_data_points, p.error_message))
    }
}

/// What an answer says was delivered: no partial success is a full one; a negative rejected
/// count (a broken upstream) counts as none.
fn delivered(answer: impl ExportAnswer) -> Delivered {
    answer
        .partial_success()
        .map(|(rejected, message)| Delivered {
            rejected: u64::try_from(rejected).unwrap_or(0),
            message,
        })
        .unwrap_or_default()
}

async fn send_http(
    client: &reqwest::Client,
    endpoint: &str,
    signal: Signal,
    body: Bytes,
) -> Result<Delivered, Failure> {
    let url = format!("{endpoint}/v1/{}", signal.as_str());
    let response = client
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
        .body(body)
        .send()
        .await
        .map_err(|e| Failure::Retryable {
            after: None,
            why: format!("POST {url}: {e}"),
        })?;
    let status = response.status();
    let after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(retry_after);
    let body = response.bytes().await.unwrap_or_default();
    if status.is_success() {
        // An answer that does not decode is still a success: the items were taken.
        let answer = match signal {
            Signal::Traces => ExportTraceServiceResponse::decode(body)
                .map(delivered)
                .unwrap_or_default(),
            Signal::Logs => ExportLogsServiceResponse::decode(body)
                .map(delivered)
                .unwrap_or_default(),
            Signal::Metrics => ExportMetricsServiceResponse::decode(body)
                .map(delivered)
                .unwrap_or_default(),
        };
        return Ok(answer);
    }
    let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
    let why = format!("POST {url}: HTTP {status} {text}");
    match status.as_u16() {
        429 | 502 | 503 | 504 => Err(Failure::Retryable { after, why }),
        _ => Err(Failure::Permanent { why }),
    }
}

/// A `Retry-After` value in seconds. The HTTP-date form is not read: the backoff applies.
pub(crate) fn retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsPartialSuccess;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsPartialSuccess;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;

    #[test]
    fn a_partial_success_is_read_the_same_way_for_every_signal() {
        let traces = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: "3 spans too large".into(),
            }),
        };
        assert_eq!(
            delivered(traces),
            Delivered {
                rejected: 3,
                message: "3 spans too large".into()
            }
        );
        let logs = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 2,
                error_message: "bad body".into(),
            }),
        };
        assert_eq!(delivered(logs).rejected, 2);
        // A broken upstream's negative count rejects nothing.
        let metrics = ExportMetricsServiceResponse {
            partial_success: Some(ExportMetricsPartialSuccess {
                rejected_data_points: -1,
                error_message: String::new(),
            }),
        };
        assert_eq!(delivered(metrics), Delivered::default());
        // No partial success: everything was taken.
        assert_eq!(
            delivered(ExportTraceServiceResponse::default()),
            Delivered::default()
        );
    }

    #[test]
    fn retryable_grpc_codes_follow_the_spec_and_keep_retry_info() {
        let throttled = tonic::Status::with_error_details(
            Code::ResourceExhausted,
            "busy",
            tonic_types::ErrorDetails::with_retry_info(Some(Duration::from_secs(3))),
        );
        assert_eq!(
            grpc_failure(&throttled),
            Failure::Retryable {
                after: Some(Duration::from_secs(3)),
                why: "gRPC ResourceExhausted: busy".into()
            }
        );
        assert!(matches!(
            grpc_failure(&tonic::Status::unavailable("down")),
            Failure::Retryable { after: None, .. }
        ));
        assert!(matches!(
            grpc_failure(&tonic::Status::unauthenticated("no token")),
            Failure::Permanent { .. }
        ));
        assert!(matches!(
            grpc_failure(&tonic::Status::invalid_argument("bad")),
            Failure::Permanent { .. }
        ));
    }

    #[test]
    fn retry_after_reads_seconds_only() {
        assert_eq!(retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
