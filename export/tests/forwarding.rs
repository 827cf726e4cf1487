//! The exporter against real upstreams on loopback: a tonic OTLP/gRPC receiver, an axum
//! OTLP/HTTP receiver, and a listener that accepts connections and never answers.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_export::{
    DropReason, ExportConfig, ExportSettings, ExportStats, Exporter, Payload, Signal,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic_types::StatusExt;

/// How long a test polls for an outcome before failing: generous, the machine is shared.
const PATIENCE: Duration = Duration::from_secs(30);

fn settings(endpoint: String, protocol: &str) -> ExportSettings {
    ExportConfig {
        otlp_endpoint: endpoint,
        protocol: protocol.into(),
        timeout_ms: 500,
        initial_backoff_ms: 20,
        max_backoff_ms: 200,
        ..ExportConfig::default()
    }
    .validate()
    .expect("valid settings")
    .expect("forwarding on")
}

fn traces(name: &str, spans: usize) -> Payload {
    let spans = (0..spans)
        .map(|i| Span {
            trace_id: vec![1; 16],
            span_id: vec![u8::try_from(i % 250 + 1).unwrap_or(1); 8],
            name: name.to_owned(),
            attributes: vec![KeyValue {
                key: "http.route".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue("/checkout".into())),
                }),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    Payload::Traces(ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    })
}

async fn until(what: &str, stats: impl Fn() -> ExportStats, done: impl Fn(&ExportStats) -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let now = stats();
        if done(&now) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} not reached within {PATIENCE:?}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A gRPC trace receiver that refuses the first `refuse` requests with RESOURCE_EXHAUSTED
/// (with a RetryInfo delay), then keeps what it gets with the `authorization` metadata.
#[derive(Clone, Default)]
struct Receiver {
    refuse: Arc<Mutex<u32>>,
    got: Arc<Mutex<Vec<Received>>>,
}

/// A request as received: its `authorization` metadata and the request.
type Received = (Option<String>, ExportTraceServiceRequest);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        {
            let mut refuse = self.refuse.lock().unwrap_or_else(|e| e.into_inner());
            if *refuse > 0 {
                *refuse -= 1;
                return Err(tonic::Status::with_error_details(
                    tonic::Code::ResourceExhausted,
                    "busy",
                    tonic_types::ErrorDetails::with_retry_info(Some(Duration::from_millis(50))),
                ));
            }
        }
        let auth = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.got
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((auth, request.into_inner()));
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn grpc_receiver(receiver: Receiver, stop: CancellationToken) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                stop.cancelled_owned(),
            )
            .await;
    });
    addr
}

#[tokio::test]
async fn grpc_delivers_with_headers_after_resource_exhausted() {
    let stop = CancellationToken::new();
    let receiver = Receiver::default();
    *receiver.refuse.lock().unwrap_or_else(|e| e.into_inner()) = 2;
    let addr = grpc_receiver(receiver.clone(), stop.clone()).await;
    let mut settings = settings(format!("http://{addr}"), "grpc");
    settings
        .headers
        .push(("authorization".into(), "Bearer fleet-secret-token".into()));
    let (exporter, task) =
        Exporter::spawn(settings, stop.clone(), Duration::from_secs(1)).expect("exporter");
    assert!(exporter.offer(traces("GET /checkout", 3)));
    until("delivery", || exporter.stats(), |s| s.delivered[0] == 3).await;
    let stats = exporter.stats();
    assert_eq!(stats.request_failures, 2, "two refusals retried: {stats:?}");
    assert_eq!(stats.dropped_total(), 0);
    let got = receiver
        .got
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.as_deref(), Some("Bearer fleet-secret-token"));
    let span = &got[0].1.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(span.name, "GET /checkout");
    assert_eq!(span.attributes[0].key, "http.route");
    stop.cancel();
    let _ = task.await;
}

#[tokio::test]
async fn a_silent_upstream_never_blocks_producers_and_drops_are_counted() {
    // Accepts every connection and never reads or answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let mut settings = settings(format!("http://{addr}"), "grpc");
    let one = traces("GET /x", 10);
    // Room for exactly five payloads.
    settings.buffer_bytes = one.encoded_len() * 5;
    let (exporter, task) =
        Exporter::spawn(settings, stop.clone(), Duration::from_millis(200)).expect("exporter");
    let offered = 200u64;
    let mut taken = 0u64;
    for _ in 0..offered {
        if exporter.offer(one.clone()) {
            taken += 1;
        }
    }
    assert_eq!(taken, 5, "the buffer holds five payloads");
    let stats = exporter.stats();
    assert_eq!(
        stats.dropped_of(Signal::Traces, DropReason::BufferFull),
        (offered - taken) * 10
    );
    // Every span offered is accepted, and is either buffered or dropped.
    assert_eq!(stats.accepted[0], offered * 10);
    assert_eq!(stats.buffered[0], taken * 10);
    assert_eq!(
        stats.accepted[0],
        stats.delivered[0] + stats.buffered[0] + stats.dropped_signal(Signal::Traces)
    );
    // The sender times out against the silent upstream and says so.
    until(
        "a failed attempt",
        || exporter.stats(),
        |s| s.request_failures > 0 && !s.upstream.up,
    )
    .await;
    stop.cancel();
    let _ = task.await;
    let stats = exporter.stats();
    // Nothing silently lost: every span accepted is counted as dropped at shutdown.
    assert_eq!(stats.delivered[0], 0);
    assert_eq!(stats.dropped_total(), offered * 10, "{stats:?}");
    assert_eq!(stats.buffered_items, 0);
    drop(listener);
}

#[tokio::test]
async fn http_protobuf_honours_retry_after_then_delivers() {
    use axum::body::Bytes;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    let hits = Arc::new(Mutex::new(Vec::<(String, usize)>::new()));
    let seen = hits.clone();
    let app = axum::Router::new().route(
        "/v1/{signal}",
        axum::routing::post(
            move |axum::extract::Path(signal): axum::extract::Path<String>, body: Bytes| {
                let seen = seen.clone();
                async move {
                    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                    seen.push((signal, body.len()));
                    if seen.len() == 1 {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            [("retry-after", "1")],
                            "later",
                        )
                            .into_response()
                    } else {
                        let answer = ExportTraceServiceResponse::default().encode_to_vec();
                        (StatusCode::OK, answer).into_response()
                    }
                }
            },
        ),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server_stop = CancellationToken::new();
    let serve_stop = server_stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(serve_stop.cancelled_owned())
            .await;
    });
    let stop = CancellationToken::new();
    let (exporter, task) = Exporter::spawn(
        settings(format!("http://{addr}"), "http/protobuf"),
        stop.clone(),
        Duration::from_secs(1),
    )
    .expect("exporter");
    let payload = traces("GET /y", 2);
    let size = payload.encoded_len();
    assert!(exporter.offer(payload));
    until("delivery", || exporter.stats(), |s| s.delivered[0] == 2).await;
    let hits = hits.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(
        hits,
        vec![("traces".to_owned(), size), ("traces".to_owned(), size)]
    );
    assert_eq!(exporter.stats().request_failures, 1);
    stop.cancel();
    server_stop.cancel();
    let _ = task.await;
}

#[tokio::test]
async fn a_permanent_refusal_is_counted_as_rejected() {
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(|| async { (axum::http::StatusCode::BAD_REQUEST, "no") }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let stop = CancellationToken::new();
    let (exporter, task) = Exporter::spawn(
        settings(format!("http://{addr}"), "http/protobuf"),
        stop.clone(),
        Duration::from_secs(1),
    )
    .expect("exporter");
    assert!(exporter.offer(traces("GET /z", 4)));
    until(
        "the rejection",
        || exporter.stats(),
        |s| s.dropped_of(Signal::Traces, DropReason::Rejected) == 4,
    )
    .await;
    let stats = exporter.stats();
    assert_eq!(stats.request_failures, 1, "not retried: {stats:?}");
    assert!(stats
        .upstream
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("400")));
    stop.cancel();
    let _ = task.await;
}

fn tls_file(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/tls/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("test TLS material {path}: {e}"))
}

async fn grpc_tls_receiver(receiver: Receiver, stop: CancellationToken) -> SocketAddr {
    let identity =
        tonic::transport::Identity::from_pem(tls_file("server.pem"), tls_file("server.key"));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tonic::transport::Server::builder()
        .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
        .expect("server TLS");
    tokio::spawn(async move {
        let mut server = server;
        let _ = server
            .add_service(TraceServiceServer::new(receiver))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                stop.cancelled_owned(),
            )
            .await;
    });
    addr
}

#[tokio::test]
async fn grpc_over_tls_checks_the_upstream_against_ca_file() {
    let stop = CancellationToken::new();
    let receiver = Receiver::default();
    let addr = grpc_tls_receiver(receiver.clone(), stop.clone()).await;
    let endpoint = format!("https://localhost:{}", addr.port());

    // Trusting the public web roots only, the test CA's certificate is refused: retried,
    // never delivered.
    let untrusted = settings(endpoint.clone(), "grpc");
    let (exporter, task) =
        Exporter::spawn(untrusted, stop.child_token(), Duration::from_millis(100))
            .expect("exporter");
    assert!(exporter.offer(traces("GET /tls", 1)));
    until(
        "a refused handshake",
        || exporter.stats(),
        |s| s.request_failures > 0,
    )
    .await;
    assert_eq!(exporter.stats().delivered[0], 0);
    assert!(receiver
        .got
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_empty());

    // With the CA from ca_file: delivered.
    let mut trusted = settings(endpoint, "grpc");
    trusted.ca_pem = Some(tls_file("ca.pem"));
    let (exporter, second) =
        Exporter::spawn(trusted, stop.child_token(), Duration::from_millis(100)).expect("exporter");
    assert!(exporter.offer(traces("GET /tls", 2)));
    until(
        "delivery over TLS",
        || exporter.stats(),
        |s| s.delivered[0] == 2,
    )
    .await;
    assert_eq!(
        receiver.got.lock().unwrap_or_else(|e| e.into_inner()).len(),
        1
    );
    stop.cancel();
    let _ = task.await;
    let _ = second.await;
}
