//! End to end with real OpenTelemetry clients: the Rust `opentelemetry-otlp` exporter over
//! gRPC, HTTP/protobuf and HTTP/JSON, and the official Python SDK, each sending a three-service
//! trace (frontend -> orders -> payments, failing in payments) with correlated logs. The call
//! chain must come back with the right tree, the logs under the right spans and payments as
//! the origin of the error.

mod support;

use std::process::Stdio;
use std::time::Duration;

use faultline_ingest::parse::parse_line;
use faultline_ingest::traces::{CallChain, ChainNode, SpanKind as ChainKind};
use faultline_ingest::{Origin, SpanId, TraceId};
use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use support::otlp::Harness;

/// Where the receivers listen.
#[derive(Clone, Copy, Debug)]
struct Addrs {
    grpc: std::net::SocketAddr,
    http: std::net::SocketAddr,
}

#[derive(Clone, Copy, Debug)]
enum Transport {
    Grpc,
    HttpProto,
    HttpJson,
}

fn resource(service: &str) -> Resource {
    Resource::builder_empty()
        .with_service_name(service.to_owned())
        .build()
}

fn providers(
    transport: Transport,
    addrs: Addrs,
    service: &str,
) -> (SdkTracerProvider, SdkLoggerProvider) {
    let grpc = format!("http://{}", addrs.grpc);
    let http = format!("http://{}", addrs.http);
    let (spans, logs) = match transport {
        Transport::Grpc => (
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(&grpc)
                .build(),
            opentelemetry_otlp::LogExporter::builder()
                .with_tonic()
                .with_endpoint(&grpc)
                .build(),
        ),
        Transport::HttpProto | Transport::HttpJson => {
            let protocol = match transport {
                Transport::HttpJson => Protocol::HttpJson,
                _ => Protocol::HttpBinary,
            };
            (
                opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(protocol)
                    .with_endpoint(format!("{http}/v1/traces"))
                    .build(),
                opentelemetry_otlp::LogExporter::builder()
                    .with_http()
                    .with_protocol(protocol)
                    .with_endpoint(format!("{http}/v1/logs"))
                    .build(),
            )
        }
    };
    let tracer_provider = SdkTracerProvider::builder()
        .with_resource(resource(service))
        .with_batch_exporter(spans.expect("span exporter"))
        .build();
    let logger_provider = SdkLoggerProvider::builder()
        .with_resource(resource(service))
        .with_batch_exporter(logs.expect("log exporter"))
        .build();
    (tracer_provider, logger_provider)
}

/// What the client side knows of the trace it sent.
struct Sent {
    trace_id: TraceId,
    frontend_server: SpanId,
    orders_server: SpanId,
    payments_server: SpanId,
}

fn ids(cx: &Context) -> (TraceId, SpanId) {
    let span = cx.span();
    let sc = span.span_context();
    (
        TraceId(sc.trace_id().to_bytes()),
        SpanId(sc.span_id().to_bytes()),
    )
}

/// Plays the three services with real SDK providers, one per service, the trace context
/// crossing between them as it would in `traceparent` headers.
fn send_three_service_trace(transport: Transport, addrs: Addrs) -> Sent {
    let (front_tp, front_lp) = providers(transport, addrs, "frontend");
    let (orders_tp, orders_lp) = providers(transport, addrs, "orders");
    let (pay_tp, pay_lp) = providers(transport, addrs, "payments");
    let front = front_tp.tracer("frontend");
    let orders = orders_tp.tracer("orders");
    let pay = pay_tp.tracer("payments");
    let pay_logger = pay_lp.logger("payments");
    let orders_logger = orders_lp.logger("orders");

    let root = front
        .span_builder("GET /checkout")
        .with_kind(SpanKind::Server)
        .start_with_context(&front, &Context::new());
    let root_cx = Context::new().with_span(root);
    let call_orders = front
        .span_builder("POST orders")
        .with_kind(SpanKind::Client)
        .start_with_context(&front, &root_cx);
    let call_orders_cx = root_cx.with_span(call_orders);

    // orders receives the remote context.
    let remote =
        Context::new().with_remote_span_context(call_orders_cx.span().span_context().clone());
    let orders_server = orders
        .span_builder("POST /orders")
        .with_kind(SpanKind::Server)
        .start_with_context(&orders, &remote);
    let orders_cx = remote.with_span(orders_server);
    let call_pay = orders
        .span_builder("POST payments")
        .with_kind(SpanKind::Client)
        .start_with_context(&orders, &orders_cx);
    let call_pay_cx = orders_cx.with_span(call_pay);

    let remote = Context::new().with_remote_span_context(call_pay_cx.span().span_context().clone());
    let pay_server = pay
        .span_builder("POST /charge")
        .with_kind(SpanKind::Server)
        .start_with_context(&pay, &remote);
    let pay_cx = remote.with_span(pay_server);

    let (trace_id, payments_server) = ids(&pay_cx);
    let (_, orders_server) = ids(&orders_cx);
    let (_, frontend_server) = ids(&root_cx);

    // payments fails: an exception event, ERROR status, and an error log in the span.
    let reset = std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "read tcp 10.0.0.7:41234->10.0.0.9:5432: read: connection reset by peer",
    );
    {
        let span = pay_cx.span();
        span.record_error(&reset);
        span.set_status(Status::error("charge failed: connection reset by peer"));
    }
    let sc = pay_cx.span().span_context().clone();
    let mut record = pay_logger.create_log_record();
    record.set_severity_number(Severity::Error);
    record.set_severity_text("ERROR");
    record.set_body("charge failed: read: connection reset by peer".into());
    record.add_attribute("error", "read: connection reset by peer");
    record.set_trace_context(sc.trace_id(), sc.span_id(), Some(sc.trace_flags()));
    pay_logger.emit(record);
    pay_cx.span().end();

    let sc = orders_cx.span().span_context().clone();
    let mut record = orders_logger.create_log_record();
    record.set_severity_number(Severity::Warn);
    record.set_body("payment call failed: 502".into());
    record.set_trace_context(sc.trace_id(), sc.span_id(), Some(sc.trace_flags()));
    orders_logger.emit(record);
    call_pay_cx
        .span()
        .set_status(Status::error("502 from payments"));
    call_pay_cx.span().end();
    orders_cx
        .span()
        .set_status(Status::error("upstream payments failed"));
    orders_cx
        .span()
        .set_attribute(KeyValue::new("http.response.status_code", 502));
    orders_cx.span().end();
    call_orders_cx
        .span()
        .set_status(Status::error("502 from orders"));
    call_orders_cx.span().end();
    root_cx.span().set_status(Status::error("checkout failed"));
    root_cx.span().end();

    for provider in [&pay_tp, &orders_tp, &front_tp] {
        provider.shutdown().expect("span export");
    }
    for provider in [&pay_lp, &orders_lp, &front_lp] {
        provider.shutdown().expect("log export");
    }
    Sent {
        trace_id,
        frontend_server,
        orders_server,
        payments_server,
    }
}

fn find(nodes: &[ChainNode], id: SpanId) -> Option<&ChainNode> {
    nodes.iter().find_map(|n| {
        if n.span.span_id == id {
            Some(n)
        } else {
            find(&n.children, id)
        }
    })
}

/// The chain a user checks: one real root, the five spans nested as called, logs under the
/// spans that wrote them, payments as origin with its first error log.
fn check_chain(chain: &CallChain, sent: &Sent, file_log_expected: bool) {
    assert_eq!(chain.span_count, 5, "five spans: {chain:#?}");
    assert_eq!(
        chain.roots.len(),
        1,
        "one root, no orphans: {:#?}",
        chain.roots
    );
    let root = &chain.roots[0];
    assert!(!root.orphan);
    assert_eq!(root.span.span_id, sent.frontend_server);
    assert_eq!(root.span.service, "frontend");
    assert_eq!(root.span.kind, ChainKind::Server);
    // frontend SERVER -> frontend CLIENT -> orders SERVER -> orders CLIENT -> payments SERVER
    let mut path = vec![(root.span.service.as_str(), root.span.kind)];
    let mut at = root;
    while let Some(child) = at.children.first() {
        assert_eq!(at.children.len(), 1, "a chain, not a fan: {at:#?}");
        path.push((child.span.service.as_str(), child.span.kind));
        at = child;
    }
    assert_eq!(
        path,
        vec![
            ("frontend", ChainKind::Server),
            ("frontend", ChainKind::Client),
            ("orders", ChainKind::Server),
            ("orders", ChainKind::Client),
            ("payments", ChainKind::Server),
        ]
    );
    assert_eq!(chain.services, vec!["frontend", "orders", "payments"]);

    let payments = find(&chain.roots, sent.payments_server).expect("payments span");
    assert!(payments.failed);
    assert!(
        payments.span.events.iter().any(|e| e.is_exception()),
        "the exception event arrived"
    );
    assert!(payments
        .logs
        .iter()
        .any(|l| l.message.contains("charge failed") && l.origin == Origin::OtlpLog));
    if file_log_expected {
        assert!(
            payments
                .logs
                .iter()
                .any(|l| matches!(l.origin, Origin::File { .. })),
            "the tailed line sits under payments: {:#?}",
            payments.logs
        );
    }
    let orders = find(&chain.roots, sent.orders_server).expect("orders span");
    assert!(orders
        .logs
        .iter()
        .any(|l| l.message.contains("payment call failed")));
    assert!(chain.unplaced_logs.is_empty(), "{:#?}", chain.unplaced_logs);

    let origin = chain.error_origin.as_ref().expect("an error origin");
    assert_eq!(origin.service, "payments");
    assert_eq!(origin.span_id, sent.payments_server);
    assert!(
        origin
            .message
            .as_deref()
            .is_some_and(|m| m.contains("connection reset by peer")),
        "{origin:#?}"
    );
    let first_log = origin.first_error_log.as_ref().expect("first error log");
    assert_eq!(first_log.span_id, Some(sent.payments_server));
    assert_eq!(chain.critical_path.len(), 5);
    assert_eq!(chain.critical_path.last(), Some(&sent.payments_server));
}

async fn wait_for_chain(harness: &Harness, trace_id: TraceId, spans: usize) -> CallChain {
    for _ in 0..100 {
        if let Some(chain) = harness.store.call_chain(trace_id) {
            if chain.span_count >= spans {
                return chain;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "trace {trace_id} did not arrive: {:?}",
        harness.store.stats()
    );
}

async fn rust_client_round_trip(transport: Transport) {
    let mut harness = Harness::default().await;
    let addrs = Addrs {
        grpc: harness.grpc,
        http: harness.http,
    };
    // The exporters block (reqwest blocking client, provider shutdown): keep them off the
    // async workers. The tonic client still finds this runtime through the handle.
    let sent = tokio::task::spawn_blocking(move || send_three_service_trace(transport, addrs))
        .await
        .expect("client thread");
    // A line of the payments log file, as the tailer reads it, joins the same trace.
    let line = format!(
        r#"{{"level":"error","msg":"charge failed","error":"read: connection reset by peer","trace_id":"{}","span_id":"{}","service":"payments"}}"#,
        sent.trace_id, sent.payments_server
    );
    let file_record = parse_line(
        &line,
        Origin::File {
            path: "/var/log/payments.log".into(),
            offset: 0,
        },
    );
    assert_eq!(
        file_record.trace_id,
        Some(sent.trace_id),
        "parser reads the ids"
    );
    harness.store.attach_log(file_record);

    let chain = wait_for_chain(&harness, sent.trace_id, 5).await;
    check_chain(&chain, &sent, true);

    // Clustering is fed: the OTLP logs and the error spans, with their ids and services.
    let queued = harness.drain_logs();
    assert!(queued.iter().any(|r| r.origin == Origin::OtlpSpan
        && r.service.as_deref() == Some("payments")
        && r.span_id == Some(sent.payments_server)
        && r.cluster_text().contains("connection reset by peer")));
    assert!(queued
        .iter()
        .any(|r| r.origin == Origin::OtlpLog && r.service.as_deref() == Some("payments")));

    // Clusters found on those records come back on the trace.
    harness
        .store
        .tag_cluster(sent.trace_id, Some(sent.payments_server), "c-reset");
    let chain = harness.store.call_chain(sent.trace_id).expect("chain");
    assert_eq!(chain.cluster_ids, vec!["c-reset"]);
    let listed = harness.store.list(&faultline_ingest::traces::TraceFilter {
        clusters: vec!["c-reset".into()],
        ..Default::default()
    });
    assert_eq!(listed.len(), 1);
    assert!(listed[0].error);
    assert_eq!(
        chain.error_origin.as_ref().map(|o| o.service.as_str()),
        Some("payments")
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_exporter_over_grpc() {
    rust_client_round_trip(Transport::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_exporter_over_http_protobuf() {
    rust_client_round_trip(Transport::HttpProto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_exporter_over_http_json() {
    rust_client_round_trip(Transport::HttpJson).await;
}

fn python_sdk_available() -> bool {
    std::process::Command::new("python3")
        .args([
            "-c",
            "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.grpc, opentelemetry.exporter.otlp.proto.http",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

async fn python_round_trip(protocol: &str) {
    if !python_sdk_available() {
        eprintln!(
            "\n\n!!!!! SKIPPED: the OpenTelemetry Python SDK is not installed \
             (pip install -r scripts/requirements-test.txt) !!!!!\n"
        );
        return;
    }
    let mut harness = Harness::default().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let log_file = dir.path().join("payments.log");
    let endpoint = match protocol {
        "grpc" => harness.grpc.to_string(),
        _ => harness.http.to_string(),
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/python/send_trace.py");
    let child = tokio::process::Command::new("python3")
        .arg(script)
        .args([
            "--protocol",
            protocol,
            "--endpoint",
            &endpoint,
            "--log-file",
        ])
        .arg(&log_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), child)
        .await
        .expect("python client finishes")
        .expect("python client runs");
    assert!(
        output.status.success(),
        "python client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ids: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("python prints the ids");
    let id = |key: &str| ids[key].as_str().unwrap_or_default().to_owned();
    let sent = Sent {
        trace_id: id("trace_id").parse().expect("trace id"),
        frontend_server: id("frontend").parse().expect("frontend id"),
        orders_server: id("orders").parse().expect("orders id"),
        payments_server: id("payments").parse().expect("payments id"),
    };
    // The lines of the payments log file, read as the tailer reads them.
    let text = std::fs::read_to_string(&log_file).expect("log file written");
    let mut offset = 0u64;
    for line in text.lines() {
        let path = log_file.display().to_string();
        harness
            .store
            .attach_log(parse_line(line, Origin::File { path, offset }));
        offset += line.len() as u64 + 1;
    }
    let chain = wait_for_chain(&harness, sent.trace_id, 5).await;
    check_chain(&chain, &sent, true);
    let queued = harness.drain_logs();
    assert!(queued.iter().any(|r| r.origin == Origin::OtlpSpan
        && r.service.as_deref() == Some("payments")
        && r.cluster_text().contains("connection reset by peer")));
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_grpc() {
    python_round_trip("grpc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_http_protobuf() {
    python_round_trip("http").await;
}
