//! Throughput of the OTLP receivers, end to end on loopback with the sender in the same
//! process: spans per second accepted *and* assembled into the trace store, over HTTP/protobuf
//! and gRPC. Baselines measured in the same run: protobuf decoding alone, and inserting
//! already-converted spans into the store alone (the ceiling the receivers approach).
//! Also the resident memory of a store holding 100,000 traces, and the gRPC figure again with
//! `[export]` forwarding everything: to a real OTLP/gRPC receiver on loopback (tonic, in the
//! same process, counting the spans it gets: what forwarding costs ingestion when upstream
//! keeps up, and how many spans arrived), and to an upstream that accepts connections and
//! never answers (the buffer fills, the rest is dropped and counted): what a dead upstream
//! costs ingestion. The live upstream runs on a thread and runtime of its own, as another
//! process would (on the same cores: its decoding is in the process CPU figure). For both,
//! every span handed to the exporter is checked to be delivered, buffered or dropped, and the
//! live upstream's run says how long the buffer took to drain after ingestion.
//!
//! Run: `cargo bench -p faultline-ingest --bench otlp_throughput`
//! Every figure is the median of several runs (the machine is shared and noisy).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline_ingest::otlp::{log_queue, OtlpConfig, OtlpOutputs, OtlpReceivers};
use faultline_ingest::traces::{
    Span as StoreSpan, SpanKind, StatusCode, TraceStore, TraceStoreConfig,
};
use faultline_ingest::{SpanId, TraceId};
use std::sync::atomic::{AtomicUsize, Ordering};

use faultline_export::Signal;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tokio_util::sync::CancellationToken;

const SPANS_PER_REQUEST: usize = 512;
const SPANS_PER_TRACE: usize = 8;
const REQUESTS: usize = 400; // 204,800 spans per run
const SENDERS: usize = 4;
const RUNS: usize = 5;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// Request `r` of run `run`: distinct trace ids everywhere, realistic attributes.
fn request(run: usize, r: usize) -> ExportTraceServiceRequest {
    let spans = (0..SPANS_PER_REQUEST)
        .map(|i| {
            let trace =
                (run * REQUESTS * SPANS_PER_REQUEST + r * SPANS_PER_REQUEST + i) / SPANS_PER_TRACE;
            let mut trace_id = vec![0x5a; 16];
            trace_id[..8].copy_from_slice(&(trace as u64 + 1).to_be_bytes());
            let in_trace = i % SPANS_PER_TRACE;
            let span_id = |k: usize| {
                (((trace as u64) << 8) | (k as u64 + 1))
                    .to_be_bytes()
                    .to_vec()
            };
            Span {
                trace_id,
                span_id: span_id(in_trace),
                parent_span_id: if in_trace == 0 {
                    Vec::new()
                } else {
                    span_id(in_trace - 1)
                },
                name: "POST /api/v1/orders".into(),
                kind: 2,
                start_time_unix_nano: 1_700_000_000_000_000_000 + in_trace as u64 * 1000,
                end_time_unix_nano: 1_700_000_000_010_000_000,
                attributes: vec![
                    kv("http.request.method", "POST"),
                    kv("http.route", "/api/v1/orders"),
                    kv("server.address", "orders.internal"),
                    kv("net.peer.ip", "10.0.0.7"),
                ],
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "orders")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

struct Server {
    store: Arc<TraceStore>,
    grpc: SocketAddr,
    http: SocketAddr,
    shutdown: CancellationToken,
    _queue: Option<faultline_ingest::otlp::LogReceiver>,
    exporter: Option<faultline_export::Exporter>,
    /// Stops the exporter (after a short drain): not with the receivers, so that what is
    /// still buffered when ingestion ends can be followed to the upstream.
    export_stop: CancellationToken,
}

async fn server() -> Server {
    server_with(None).await
}

/// The receivers, forwarding to `upstream` (gRPC) when given: the log queue is then drained
/// as the agent's pipeline does, each forwarded request handed to the exporter.
async fn server_with(upstream: Option<SocketAddr>) -> Server {
    let store = Arc::new(TraceStore::new(TraceStoreConfig {
        max_traces: 1_000_000,
        ..TraceStoreConfig::default()
    }));
    let (logs, mut queue) = log_queue(1_000_000);
    let shutdown = CancellationToken::new();
    let export_stop = CancellationToken::new();
    let exporter = upstream.map(|addr| {
        let settings = faultline_export::ExportConfig {
            otlp_endpoint: format!("http://{addr}"),
            ..faultline_export::ExportConfig::default()
        }
        .validate()
        .expect("valid")
        .expect("on");
        faultline_export::Exporter::spawn(settings, export_stop.clone(), Duration::from_millis(10))
            .expect("exporter")
            .0
    });
    let (logs, queue) = match &exporter {
        None => (logs, Some(queue)),
        Some(exporter) => {
            tokio::spawn(async move {
                while let Some(batch) = queue.recv().await {
                    if let (_, Some(pending)) = batch.into_parts() {
                        pending.send();
                    }
                }
            });
            (logs.forwarding(exporter.clone()), None)
        }
    };
    let receivers = OtlpReceivers::new(
        OtlpConfig::default(),
        OtlpOutputs::discarding_tasks(store.clone(), logs),
    );
    let any: SocketAddr = ([127, 0, 0, 1], 0).into();
    let (g, h) = OtlpReceivers::bind(any, any).await.expect("bind");
    let (grpc, http) = (g.local_addr().expect("addr"), h.local_addr().expect("addr"));
    let token = shutdown.clone();
    tokio::spawn(async move {
        let _ = receivers.serve(g, h, token).await;
    });
    Server {
        store,
        grpc,
        http,
        shutdown,
        _queue: queue,
        exporter,
        export_stop,
    }
}

/// A real OTLP/gRPC upstream: accepts every request and counts its spans.
#[derive(Clone, Default)]
struct Upstream {
    spans: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl TraceService for Upstream {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let n: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.spans.fetch_add(n, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Starts the upstream on a loopback port, on a thread and runtime of its own (as another
/// process would be: its decoding does not run on the receivers' workers, but it shares the
/// machine's cores); it stops with `stop`.
fn upstream(stop: CancellationToken) -> (SocketAddr, Upstream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    let upstream = Upstream::default();
    let service = TraceServiceServer::new(upstream.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("upstream runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    stop.cancelled_owned(),
                )
                .await;
        });
    });
    (addr, upstream)
}

/// What forwarding to a live upstream did in one run.
struct Live {
    /// Ingestion, spans per second (timed as without forwarding).
    rate: f64,
    /// Process CPU seconds during ingestion.
    cpu: f64,
    /// Spans the upstream got by the end of ingestion, and in the end.
    at_end: usize,
    arrived: usize,
    /// From the end of ingestion until the exporter held nothing more.
    drain: Duration,
    stats: faultline_export::ExportStats,
}

/// gRPC ingestion while forwarding to a real upstream: the rate of ingestion (timed as
/// without forwarding: until every request is accepted and assembled), then how many spans
/// reached the upstream within a bounded wait for the exporter to drain, and the exporter's
/// account of every span: delivered, still buffered, or dropped (by reason).
async fn run_grpc_forwarding_live(run: usize) -> Live {
    let stop = CancellationToken::new();
    let (addr, upstream) = upstream(stop.clone());
    let server = server_with(Some(addr)).await;
    let exporter = server.exporter.clone().expect("forwarding");
    let export_stop = server.export_stop.clone();
    let cpu = cpu_seconds();
    let rate = run_grpc_on(run, server).await;
    let cpu = cpu_seconds() - cpu;
    let at_end = upstream.spans.load(Ordering::Relaxed);
    let ended = Instant::now();
    let deadline = ended + Duration::from_secs(30);
    while exporter.stats().buffered_items > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drain = ended.elapsed();
    export_stop.cancel();
    stop.cancel();
    let stats = exporter.stats();
    Live {
        rate,
        cpu,
        at_end,
        arrived: upstream.spans.load(Ordering::Relaxed),
        drain,
        stats,
    }
}

/// The process's CPU time (user + system) so far, in seconds.
fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Checks that every span handed to the exporter is accounted for.
fn check_accounting(what: &str, stats: &faultline_export::ExportStats) {
    let sum = stats.delivered[0] + stats.buffered[0] + stats.dropped_signal(Signal::Traces);
    assert_eq!(
        stats.accepted[0], sum,
        "{what}: accepted != delivered + buffered + dropped: {stats:?}"
    );
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// OTLP/HTTP with protobuf bodies (`json` false) or OTLP/JSON bodies (the proto's own serde
/// writes the OTLP/JSON mapping: hex ids, 64-bit integers as strings).
async fn run_http(run: usize, json: bool) -> f64 {
    let server = server().await;
    let bodies: Vec<Vec<u8>> = (0..REQUESTS)
        .map(|r| {
            let request = request(run, r);
            if json {
                serde_json::to_vec(&request).expect("JSON")
            } else {
                request.encode_to_vec()
            }
        })
        .collect();
    let content_type = if json {
        "application/json"
    } else {
        "application/x-protobuf"
    };
    let bodies = Arc::new(bodies);
    let client = reqwest::Client::new();
    let url = format!("http://{}/v1/traces", server.http);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..SENDERS {
        let (bodies, client, url) = (bodies.clone(), client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            for r in (s..REQUESTS).step_by(SENDERS) {
                loop {
                    let reply = client
                        .post(&url)
                        .header("content-type", content_type)
                        .body(bodies[r].clone())
                        .send()
                        .await
                        .expect("send");
                    if reply.status().as_u16() == 200 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("sender");
    }
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(
        server.store.stats().spans,
        REQUESTS * SPANS_PER_REQUEST,
        "all assembled"
    );
    server.shutdown.cancel();
    (REQUESTS * SPANS_PER_REQUEST) as f64 / elapsed
}

async fn run_grpc(run: usize) -> f64 {
    run_grpc_on(run, server().await).await
}

async fn run_grpc_on(run: usize, server: Server) -> f64 {
    // Built before the clock starts and handed over, not cloned: the sender's cost is the
    // client's encoding, as for the HTTP sender's pre-encoded bodies it is a copy.
    let mut per_sender: Vec<Vec<ExportTraceServiceRequest>> =
        (0..SENDERS).map(|_| Vec::new()).collect();
    for r in 0..REQUESTS {
        per_sender[r % SENDERS].push(request(run, r));
    }
    // One connection per sender, as separate service instances would have.
    let mut channels = Vec::new();
    for _ in 0..SENDERS {
        channels.push(
            tonic::transport::Endpoint::from_shared(format!("http://{}", server.grpc))
                .expect("endpoint")
                .tcp_nodelay(true)
                .connect()
                .await
                .expect("connect"),
        );
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..SENDERS {
        let (requests, channel) = (std::mem::take(&mut per_sender[s]), channels[s].clone());
        tasks.push(tokio::spawn(async move {
            let mut client = TraceServiceClient::new(channel);
            for request in requests {
                // 4 senders never exhaust 64 request slots: a refusal is a bench failure.
                client.export(request).await.expect("accepted");
            }
        }));
    }
    for t in tasks {
        t.await.expect("sender");
    }
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(
        server.store.stats().spans,
        REQUESTS * SPANS_PER_REQUEST,
        "all assembled"
    );
    server.shutdown.cancel();
    (REQUESTS * SPANS_PER_REQUEST) as f64 / elapsed
}

fn run_decode_only(run: usize) -> f64 {
    let bodies: Vec<Vec<u8>> = (0..REQUESTS)
        .map(|r| request(run, r).encode_to_vec())
        .collect();
    let start = Instant::now();
    let mut n = 0;
    for b in &bodies {
        n += ExportTraceServiceRequest::decode(b.as_slice())
            .map(|r| r.resource_spans[0].scope_spans[0].spans.len())
            .unwrap_or(0);
    }
    assert_eq!(n, REQUESTS * SPANS_PER_REQUEST);
    n as f64 / start.elapsed().as_secs_f64()
}

fn store_spans(traces: usize, per_trace: usize) -> Vec<StoreSpan> {
    (0..traces * per_trace)
        .map(|i| {
            let trace = (i / per_trace) as u64 + 1;
            let k = (i % per_trace) as u64;
            let mut t = [0x5a; 16];
            t[..8].copy_from_slice(&trace.to_be_bytes());
            StoreSpan {
                trace_id: TraceId(t),
                span_id: SpanId(((trace << 8) | (k + 1)).to_be_bytes()),
                parent_span_id: (k > 0).then(|| SpanId(((trace << 8) | k).to_be_bytes())),
                service: "orders".into(),
                name: "POST /api/v1/orders".into(),
                kind: SpanKind::Server,
                start_unix_nanos: 1_700_000_000_000_000_000,
                end_unix_nanos: 1_700_000_000_010_000_000,
                status: if k == per_trace as u64 - 1 {
                    StatusCode::Error
                } else {
                    StatusCode::Unset
                },
                status_message: String::new(),
                attributes: vec![
                    ("http.request.method".into(), "POST".into()),
                    ("http.route".into(), "/api/v1/orders".into()),
                ],
                events: Vec::new(),
            }
        })
        .collect()
}

fn run_store_only() -> f64 {
    let spans = store_spans(
        REQUESTS * SPANS_PER_REQUEST / SPANS_PER_TRACE,
        SPANS_PER_TRACE,
    );
    let store = TraceStore::new(TraceStoreConfig {
        max_traces: 1_000_000,
        ..TraceStoreConfig::default()
    });
    let start = Instant::now();
    let mut spans = spans;
    while !spans.is_empty() {
        let rest = spans.split_off(spans.len().saturating_sub(SPANS_PER_REQUEST));
        store.insert_spans(rest);
    }
    let n = store.stats().spans;
    n as f64 / start.elapsed().as_secs_f64()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut http = Vec::new();
    let mut http_json = Vec::new();
    let mut grpc = Vec::new();
    let mut decode = Vec::new();
    let mut store = Vec::new();
    let mut forwarding = Vec::new();
    let mut dropped = Vec::new();
    let mut live = Vec::new();
    let mut delivered = Vec::new();
    let mut grpc_cpu = Vec::new();
    let mut live_cpu = Vec::new();
    let mut at_end = Vec::new();
    let mut drains = Vec::new();
    let mut silent_buffered = Vec::new();
    // Accepts connections (the kernel's backlog does) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    for run in 0..RUNS {
        decode.push(run_decode_only(run));
        store.push(run_store_only());
        http.push(rt.block_on(run_http(run, false)));
        http_json.push(rt.block_on(run_http(run, true)));
        let cpu = cpu_seconds();
        grpc.push(rt.block_on(run_grpc(run)));
        grpc_cpu.push(cpu_seconds() - cpu);
        let (rate, stats) = rt.block_on(async {
            let server = server_with(Some(silent_addr)).await;
            let exporter = server.exporter.clone().expect("forwarding");
            let export_stop = server.export_stop.clone();
            let rate = run_grpc_on(run, server).await;
            let stats = exporter.stats();
            export_stop.cancel();
            (rate, stats)
        });
        check_accounting("silent upstream", &stats);
        forwarding.push(rate);
        dropped.push(stats.dropped_total() as f64);
        silent_buffered.push(stats.buffered_items as f64);
        let run_live = rt.block_on(run_grpc_forwarding_live(run));
        check_accounting("live upstream", &run_live.stats);
        let s = &run_live.stats;
        println!(
            "  run {run}: live upstream: {:.0} spans/s ({:.2} CPU s); upstream had {} spans at the end of ingestion, {} after {:.2} s; exporter: accepted {}, delivered {}, buffered {}, dropped {:?}",
            run_live.rate,
            run_live.cpu,
            run_live.at_end,
            run_live.arrived,
            run_live.drain.as_secs_f64(),
            s.accepted[0],
            s.delivered[0],
            s.buffered[0],
            s.dropped
        );
        live.push(run_live.rate);
        live_cpu.push(run_live.cpu);
        delivered.push(run_live.arrived as f64);
        at_end.push(run_live.at_end as f64);
        drains.push(run_live.drain.as_secs_f64());
    }
    let (http, grpc, decode, store) = (median(http), median(grpc), median(decode), median(store));
    println!(
        "OTLP throughput, {} spans/run ({} per request, {} senders), median of {RUNS} runs:",
        REQUESTS * SPANS_PER_REQUEST,
        SPANS_PER_REQUEST,
        SENDERS
    );
    println!("  baseline protobuf decode only      {decode:>12.0} spans/s");
    println!("  baseline store insert only         {store:>12.0} spans/s");
    println!(
        "  HTTP/protobuf accepted+assembled   {http:>12.0} spans/s  ({:.2}x of store-only)",
        http / store
    );
    let http_json = median(http_json);
    println!(
        "  HTTP/JSON accepted+assembled       {http_json:>12.0} spans/s  ({:.2}x of HTTP/protobuf)",
        http_json / http
    );
    println!(
        "  gRPC accepted+assembled            {grpc:>12.0} spans/s  ({:.2}x of store-only)",
        grpc / store
    );
    let (live, delivered) = (median(live), median(delivered));
    let (grpc_cpu, live_cpu) = (median(grpc_cpu), median(live_cpu));
    let (at_end, drain) = (median(at_end), median(drains));
    println!(
        "  gRPC, forwarding to a live upstream {live:>11.0} spans/s  ({:.2}x of gRPC without forwarding; {at_end:.0} spans upstream at the end of ingestion, {delivered:.0} of {} after a drain of {drain:.2} s; every span delivered, buffered or dropped and counted)",
        live / grpc,
        REQUESTS * SPANS_PER_REQUEST
    );
    println!(
        "  process CPU during ingestion: {grpc_cpu:.2} s without forwarding, {live_cpu:.2} s forwarding to the live upstream (its decoding included)"
    );
    let (forwarding, dropped) = (median(forwarding), median(dropped));
    let silent_buffered = median(silent_buffered);
    println!(
        "  gRPC, forwarding to a silent upstream {forwarding:>9.0} spans/s  ({:.2}x of gRPC without forwarding; {silent_buffered:.0} spans buffered and {dropped:.0} dropped and counted per run)",
        forwarding / grpc
    );
    drop(silent);

    // Memory: 100,000 retained traces of 3 spans each.
    let before = rss_kib();
    let store = TraceStore::new(TraceStoreConfig::default());
    let spans = store_spans(100_000, 3);
    for chunk in spans.chunks(SPANS_PER_REQUEST) {
        store.insert_spans(chunk.to_vec());
    }
    drop(spans);
    let after = rss_kib();
    let stats = store.stats();
    println!(
        "  RSS growth with {} retained traces ({} spans): {:.1} MiB ({:.0} bytes/trace); process RSS {:.1} MiB",
        stats.traces,
        stats.spans,
        (after.saturating_sub(before)) as f64 / 1024.0,
        (after.saturating_sub(before) * 1024) as f64 / stats.traces.max(1) as f64,
        after as f64 / 1024.0
    );
}
