//! Forwarding (`[export]`) what the receivers accept to a real OTLP/gRPC upstream: a tonic
//! `TraceService` built on `opentelemetry-proto`, on loopback, keeping every span it gets.
//! Spans arrive over every way in (gRPC, gRPC with gzip, HTTP/protobuf, HTTP/JSON, and a
//! request the receiver cuts), and the exporter's account is checked against what the
//! receivers acknowledged and what the upstream got: every acknowledged span arrives exactly
//! once, and at every moment `accepted = delivered + buffered + dropped`, also while the
//! upstream is down and after it comes back.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_export::{DropReason, ExportConfig, ExportStats, Exporter, Signal};
use faultline_ingest::otlp::{LogReceiver, OtlpConfig};
use faultline_ingest::traces::TraceStoreConfig;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use support::otlp::{gzip, post, request, span, Harness};
use tokio_util::sync::CancellationToken;

/// How long a test polls for an outcome before failing: generous, the machine is shared.
const PATIENCE: Duration = Duration::from_secs(30);

/// A span as the upstream got it: its attributes and its count of dropped ones.
#[derive(Debug, Clone, PartialEq)]
struct Got {
    attributes: usize,
    dropped_attributes: u32,
}

/// Every span the upstream got, by span id: how many times it came, and how.
type Arrivals = HashMap<Vec<u8>, (usize, Got)>;

/// The upstream: keeps every span it gets.
#[derive(Clone, Default)]
struct Upstream {
    got: Arc<Mutex<Arrivals>>,
}

impl Upstream {
    fn got(&self) -> Arrivals {
        self.got.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[tonic::async_trait]
impl TraceService for Upstream {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = self.got.lock().unwrap_or_else(|e| e.into_inner());
        let spans = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans);
        for span in spans {
            let entry = got.entry(span.span_id.clone()).or_insert((
                0,
                Got {
                    attributes: span.attributes.len(),
                    dropped_attributes: span.dropped_attributes_count,
                },
            ));
            entry.0 += 1;
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Serves `upstream` on `listener` until `stop`.
fn serve(upstream: Upstream, listener: tokio::net::TcpListener, stop: CancellationToken) {
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(upstream))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                stop.cancelled_owned(),
            )
            .await;
    });
}

fn exporter(addr: SocketAddr, buffer_bytes: usize, stop: &CancellationToken) -> Exporter {
    let settings = ExportConfig {
        otlp_endpoint: format!("http://{addr}"),
        timeout_ms: 500,
        initial_backoff_ms: 20,
        max_backoff_ms: 100,
        buffer_bytes,
        ..ExportConfig::default()
    }
    .validate()
    .expect("valid settings")
    .expect("forwarding on");
    let (exporter, _task) =
        Exporter::spawn(settings, stop.clone(), Duration::ZERO).expect("exporter");
    exporter
}

/// Drains the log queue as the agent's pipeline does: each batch's forwarded request goes to
/// the exporter once its records are through (here, untagged).
fn drain_queue(mut queue: LogReceiver) {
    tokio::spawn(async move {
        while let Some(batch) = queue.recv().await {
            if let (_, Some(pending)) = batch.into_parts() {
                pending.send();
            }
        }
    });
}

/// A span with an id unique to (`group`, `n`).
fn unique_span(group: u8, n: u16, attributes: usize) -> Span {
    let mut span = span(group, 1, attributes);
    span.span_id = [[group, 0xf0], n.to_be_bytes(), [7, 7], [7, 7]].concat();
    span
}

fn ids(spans: &[Span]) -> Vec<Vec<u8>> {
    spans.iter().map(|s| s.span_id.clone()).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The identity every moment must satisfy, for spans.
fn assert_accounted(stats: &ExportStats) {
    assert_eq!(
        stats.accepted[0],
        stats.delivered[0] + stats.buffered[0] + stats.dropped_signal(Signal::Traces),
        "accepted != delivered + buffered + dropped: {stats:?}"
    );
}

async fn until(what: &str, stats: impl Fn() -> ExportStats, done: impl Fn(&ExportStats) -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let now = stats();
        assert_accounted(&now);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_span_arrives_exactly_once_whatever_way_it_came_in() {
    let stop = CancellationToken::new();
    let upstream = Upstream::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    serve(upstream.clone(), listener, stop.clone());
    let exporter = exporter(addr, 64 << 20, &stop);
    let mut harness = Harness::start_with(
        OtlpConfig::default(),
        TraceStoreConfig::default(),
        10_000,
        Some(exporter.clone()),
    )
    .await;
    drain_queue(std::mem::replace(
        &mut harness.logs,
        faultline_ingest::otlp::log_queue(1).1,
    ));
    let mut acknowledged: Vec<Vec<u8>> = Vec::new();

    // gRPC, plain and gzip: forwarded as the bytes received.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", harness.grpc))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    for r in 0..20u16 {
        let spans: Vec<Span> = (0..10).map(|i| unique_span(1, r * 10 + i, 3)).collect();
        let mut client = TraceServiceClient::new(channel.clone());
        if r % 4 == 0 {
            client = client.send_compressed(tonic::codec::CompressionEncoding::Gzip);
        }
        let answer = client
            .export(request(spans.clone()))
            .await
            .expect("accepted")
            .into_inner();
        assert_eq!(answer.partial_success, None);
        acknowledged.extend(ids(&spans));
    }
    // HTTP/protobuf, plain and gzip.
    for r in 0..4u16 {
        let spans: Vec<Span> = (0..10).map(|i| unique_span(2, r * 10 + i, 2)).collect();
        let body = request(spans.clone()).encode_to_vec();
        let (body, encoding) = if r % 2 == 0 {
            (body, None)
        } else {
            (gzip(&body), Some("gzip"))
        };
        let reply = post(
            &harness,
            "/v1/traces",
            "application/x-protobuf",
            encoding,
            body,
        )
        .await;
        assert_eq!(reply.status, 200);
        acknowledged.extend(ids(&spans));
    }
    // HTTP/JSON: decoded, so forwarded as a copy encoded again.
    let json_spans: Vec<Span> = (0..5).map(|i| unique_span(3, i, 0)).collect();
    let json_body = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc"}}}}]}},"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
        json_spans
            .iter()
            .map(|s| format!(
                r#"{{"traceId":"{}","spanId":"{}","name":"json","kind":2,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000100000000"}}"#,
                hex(&s.trace_id),
                hex(&s.span_id)
            ))
            .collect::<Vec<_>>()
            .join(",")
    );
    let reply = post(
        &harness,
        "/v1/traces",
        "application/json",
        None,
        json_body.into_bytes(),
    )
    .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    acknowledged.extend(ids(&json_spans));
    // A request the receiver cuts: one span without a valid trace id (rejected, so not
    // forwarded) and one over the attribute limit (forwarded cut, the cut counted).
    let mut invalid = unique_span(4, 1, 0);
    invalid.trace_id = vec![0; 16];
    let long = unique_span(4, 2, OtlpConfig::default().max_attributes_per_span + 5);
    let plain = unique_span(4, 3, 1);
    let answer = TraceServiceClient::new(channel.clone())
        .export(request(vec![invalid.clone(), long.clone(), plain.clone()]))
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(
        answer.partial_success.map(|p| p.rejected_spans),
        Some(1),
        "the span without a trace id is rejected"
    );
    acknowledged.extend(ids(&[long.clone(), plain]));

    until(
        "every acknowledged span delivered",
        || exporter.stats(),
        |s| s.buffered[0] == 0 && s.accepted[0] == acknowledged.len() as u64,
    )
    .await;
    let stats = exporter.stats();
    assert_eq!(stats.delivered[0], acknowledged.len() as u64, "{stats:?}");
    assert_eq!(stats.dropped_total(), 0, "{stats:?}");
    let got = upstream.got();
    for id in &acknowledged {
        let count = got.get(id).map(|(n, _)| *n);
        assert_eq!(count, Some(1), "span {} arrived {count:?} times", hex(id));
    }
    assert_eq!(got.len(), acknowledged.len(), "nothing else arrived");
    assert!(!got.contains_key(&invalid.span_id));
    let limit = OtlpConfig::default().max_attributes_per_span;
    assert_eq!(
        got.get(&long.span_id).map(|(_, g)| g.clone()),
        Some(Got {
            attributes: limit,
            dropped_attributes: 5
        })
    );
    stop.cancel();
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_upstream_down_ingestion_goes_on_and_every_span_is_accounted_for() {
    // A port nobody listens on (yet): the upstream is down.
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("addr")
    };
    let stop = CancellationToken::new();
    let one = request((0..10).map(|i| unique_span(5, i, 2)).collect()).encoded_len();
    // Room for about eight requests of ten spans.
    let exporter = exporter(addr, one * 8 + one / 2, &stop);
    let mut harness = Harness::start_with(
        OtlpConfig::default(),
        TraceStoreConfig::default(),
        10_000,
        Some(exporter.clone()),
    )
    .await;
    drain_queue(std::mem::replace(
        &mut harness.logs,
        faultline_ingest::otlp::log_queue(1).1,
    ));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", harness.grpc))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let sent = 40u16;
    for r in 0..sent {
        let spans: Vec<Span> = (0..10).map(|i| unique_span(6, r * 10 + i, 2)).collect();
        // Ingestion does not wait for the upstream: every request is accepted at once.
        let answer = TraceServiceClient::new(channel.clone())
            .export(request(spans))
            .await
            .expect("accepted while the upstream is down")
            .into_inner();
        assert_eq!(answer.partial_success, None);
    }
    let total = u64::from(sent) * 10;
    until(
        "every span handed over",
        || exporter.stats(),
        |s| s.accepted[0] == total,
    )
    .await;
    let down = exporter.stats();
    assert!(down.buffered[0] > 0, "the buffer holds some: {down:?}");
    let full = down.dropped_of(Signal::Traces, DropReason::BufferFull);
    assert!(full > 0, "the rest is dropped and counted: {down:?}");
    assert_eq!(down.delivered[0], 0);
    assert_eq!(down.buffered[0] + full, total, "{down:?}");
    assert!(down.request_failures > 0 && !down.upstream.up, "{down:?}");

    // The upstream comes up on that port: what the buffer held is delivered, exactly once.
    let upstream = Upstream::default();
    let listener = tokio::net::TcpListener::bind(addr).await.expect("rebind");
    serve(upstream.clone(), listener, stop.clone());
    until(
        "the buffer delivered",
        || exporter.stats(),
        |s| s.buffered[0] == 0,
    )
    .await;
    let up = exporter.stats();
    assert_eq!(up.delivered[0], down.buffered[0], "{up:?}");
    assert_eq!(up.dropped_total(), full, "nothing more dropped: {up:?}");
    let got = upstream.got();
    assert_eq!(got.len() as u64, up.delivered[0]);
    assert!(got.values().all(|(n, _)| *n == 1), "each span once");
    stop.cancel();
    harness.stop().await;
}
