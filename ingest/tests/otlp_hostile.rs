//! Hostile and broken input at the OTLP receivers: every bad request gets the spec's status and
//! a message, nothing panics, and the receiver keeps serving the next good request.

mod support;

use faultline_ingest::otlp::{OtlpConfig, TaskMetric};
use faultline_ingest::traces::TraceStoreConfig;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use support::otlp::{gzip, kv, post, request, span, Harness, Reply, RpcStatus};

async fn still_serving(harness: &Harness, trace: u8) {
    let reply = post(
        harness,
        "/v1/traces",
        "application/x-protobuf",
        None,
        request(vec![span(trace, 1, 1)]).encode_to_vec(),
    )
    .await;
    assert_eq!(reply.status, 200);
    let trace_id = faultline_ingest::TraceId([trace; 16]);
    assert!(harness.store.call_chain(trace_id).is_some());
}

fn status_message(reply: &Reply) -> String {
    RpcStatus::decode(reply.body.as_slice())
        .map(|s| s.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&reply.body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_bad_inputs_get_the_right_status_and_the_receiver_keeps_serving() {
    let harness = Harness::default().await;
    let proto = "application/x-protobuf";
    let valid = request(vec![span(9, 1, 1)]).encode_to_vec();

    // Malformed protobuf: 400 with a google.rpc.Status in protobuf.
    let reply = post(
        &harness,
        "/v1/traces",
        proto,
        None,
        vec![0x0a, 0xff, 0xff, 0xff, 0x0f],
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.content_type, proto);
    assert!(status_message(&reply).contains("malformed protobuf"));
    still_serving(&harness, 1).await;

    // Malformed JSON: 400 with a JSON status.
    let reply = post(
        &harness,
        "/v1/logs",
        "application/json",
        None,
        b"{\"resourceLogs\": [".to_vec(),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert!(reply.content_type.starts_with("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON status");
    assert!(body["message"]
        .as_str()
        .is_some_and(|m| m.contains("malformed JSON")));
    still_serving(&harness, 2).await;

    // Valid JSON of the wrong shape: 400 too.
    let reply = post(
        &harness,
        "/v1/traces",
        "application/json",
        None,
        b"[1,2,3]".to_vec(),
    )
    .await;
    assert_eq!(reply.status, 400);

    // Wrong content type: 415.
    let reply = post(&harness, "/v1/traces", "text/plain", None, valid.clone()).await;
    assert_eq!(reply.status, 415);
    assert!(status_message(&reply).contains("text/plain"));

    // Unknown content encoding: 415.
    let reply = post(&harness, "/v1/traces", proto, Some("br"), valid.clone()).await;
    assert_eq!(reply.status, 415);

    // Truncated gzip: 400.
    let mut truncated = gzip(&valid);
    truncated.truncate(truncated.len() / 2);
    let reply = post(&harness, "/v1/traces", proto, Some("gzip"), truncated).await;
    assert_eq!(reply.status, 400);
    assert!(status_message(&reply).contains("gzip"));
    still_serving(&harness, 3).await;

    // Good gzip: accepted.
    let reply = post(&harness, "/v1/traces", proto, Some("gzip"), gzip(&valid)).await;
    assert_eq!(reply.status, 200);

    // Oversized body (5 MiB > 4 MiB): 413.
    let reply = post(
        &harness,
        "/v1/traces",
        proto,
        None,
        vec![0u8; 5 * 1024 * 1024],
    )
    .await;
    assert_eq!(reply.status, 413);
    assert!(status_message(&reply).contains("max_message_bytes"));
    still_serving(&harness, 4).await;

    // Gzip bomb: 64 MiB of zeros in ~64 KiB: 413, not an allocation of 64 MiB.
    let bomb = gzip(&vec![0u8; 64 * 1024 * 1024]);
    assert!(bomb.len() < 1024 * 1024);
    let reply = post(&harness, "/v1/traces", proto, Some("gzip"), bomb).await;
    assert_eq!(reply.status, 413);
    assert!(status_message(&reply).contains("max_decompressed_bytes"));
    still_serving(&harness, 5).await;

    // One span over the attribute limit among ten good ones: every span is kept, the big one
    // cut to the limit, and the answer is a partial success with 0 rejected and a warning
    // (it used to refuse the whole batch and lose the ten good spans).
    let mut spans: Vec<_> = (1..=10).map(|i| span(6, i, 3)).collect();
    spans.push(span(6, 11, 500));
    let reply = post(
        &harness,
        "/v1/traces",
        proto,
        None,
        request(spans).encode_to_vec(),
    )
    .await;
    assert_eq!(reply.status, 200);
    let answer = ExportTraceServiceResponse::decode(reply.body.as_slice()).expect("answer");
    let partial = answer.partial_success.expect("a warning");
    assert_eq!(partial.rejected_spans, 0);
    assert!(
        partial.error_message.contains("500 attributes") && partial.error_message.contains("128"),
        "{}",
        partial.error_message
    );
    let chain = harness
        .store
        .call_chain(faultline_ingest::TraceId([6; 16]))
        .expect("the batch is kept");
    assert_eq!(chain.span_count, 11);
    assert_eq!(harness.receivers.stats().attributes_dropped, 500 - 128);

    // Invalid ids: partial success, the good span is stored.
    let mut bad = span(7, 2, 1);
    bad.trace_id = vec![1, 2, 3];
    let reply = post(
        &harness,
        "/v1/traces",
        proto,
        None,
        request(vec![bad, span(7, 1, 1)]).encode_to_vec(),
    )
    .await;
    assert_eq!(reply.status, 200);
    let answer = ExportTraceServiceResponse::decode(reply.body.as_slice()).expect("response");
    let partial = answer.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(partial.error_message.contains("invalid trace or span id"));
    assert_eq!(
        harness
            .store
            .call_chain(faultline_ingest::TraceId([7; 16]))
            .map(|c| c.span_count),
        Some(1)
    );

    // GET is not an export: 405.
    let status = reqwest::get(format!("http://{}/v1/traces", harness.http))
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    assert_eq!(status, 405);

    let stats = harness.receivers.stats();
    assert!(stats.requests_invalid >= 8, "{stats:?}");
    still_serving(&harness, 8).await;
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_json_with_enum_names_and_string_integers_is_understood() {
    let harness = Harness::default().await;
    let body = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"json-svc"}}]},
      "scopeSpans":[{"spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174",
      "name":"GET /x","kind":"SPAN_KIND_SERVER","startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000500000000",
      "status":{"code":"STATUS_CODE_ERROR","message":"boom"},
      "events":[{"name":"exception","timeUnixNano":"1700000000400000000","attributes":[
        {"key":"exception.type","value":{"stringValue":"*net.OpError"}},
        {"key":"exception.message","value":{"stringValue":"read: connection reset by peer"}}]}]}]}]}]}"#;
    let reply = post(
        &harness,
        "/v1/traces",
        "application/json; charset=utf-8",
        None,
        body.into(),
    )
    .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert!(reply.content_type.starts_with("application/json"));
    assert_eq!(reply.body, b"{}", "full success is an empty response");
    let trace_id = "5b8efff798038103d269b633813fc60c".parse().expect("id");
    let chain = harness.store.call_chain(trace_id).expect("stored");
    let root = &chain.roots[0];
    assert_eq!(root.span.service, "json-svc");
    assert_eq!(root.span.kind, faultline_ingest::traces::SpanKind::Server);
    assert_eq!(root.duration_nanos, 500_000_000);
    let origin = chain.error_origin.expect("origin");
    assert_eq!(origin.exception_type.as_deref(), Some("*net.OpError"));
    assert_eq!(
        origin.message.as_deref(),
        Some("read: connection reset by peer")
    );

    // A span with a bad id: partial success, the count as an OTLP/JSON int64 string.
    let body = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102","spanId":"eee19b7ec3c1b174","name":"bad"}]}]}]}"#;
    let reply = post(
        &harness,
        "/v1/traces",
        "application/json",
        None,
        body.into(),
    )
    .await;
    assert_eq!(reply.status, 200);
    let answer: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON answer");
    assert_eq!(answer["partialSuccess"]["rejectedSpans"], "1");
    assert!(answer["partialSuccess"]["errorMessage"]
        .as_str()
        .is_some_and(|m| m.contains("invalid trace or span id")));
    harness.stop().await;
}

/// Bytes that are not an `ExportTraceServiceRequest`: field 1 (resource spans, a message)
/// holding an invalid varint.
#[derive(Clone, PartialEq, prost::Message)]
struct Garbage {
    #[prost(bytes = "vec", tag = "1")]
    junk: Vec<u8>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_grpc_message_is_invalid_argument_and_counted() {
    let harness = Harness::default().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", harness.grpc))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    for _ in 0..3 {
        grpc.ready().await.expect("ready");
        let error = grpc
            .unary::<_, ExportTraceServiceResponse, _>(
                tonic::Request::new(Garbage {
                    junk: vec![0xff; 12],
                }),
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
                    .parse()
                    .expect("path"),
                tonic_prost::ProstCodec::default(),
            )
            .await
            .expect_err("garbage is refused");
        // INTERNAL would tell the sender the receiver broke; the message is at fault.
        assert_eq!(error.code(), tonic::Code::InvalidArgument, "{error:?}");
    }
    assert_eq!(harness.receivers.stats().requests_invalid, 3);
    still_serving(&harness, 9).await;
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_limits_are_invalid_argument_and_the_server_keeps_serving() {
    let harness = Harness::start(OtlpConfig::default(), TraceStoreConfig::default(), 10_000).await;
    let mut client = TraceServiceClient::connect(format!("http://{}", harness.grpc))
        .await
        .expect("connect")
        .max_encoding_message_size(usize::MAX);

    let answer = client
        .export(request(vec![span(1, 1, 300)]))
        .await
        .expect("kept, cut to the limit")
        .into_inner();
    let partial = answer.partial_success.expect("a warning");
    assert_eq!(partial.rejected_spans, 0);
    assert!(partial.error_message.contains("300 attributes"));
    assert_eq!(harness.receivers.stats().attributes_dropped, 300 - 128);

    // A 5 MiB message: over max_message_bytes.
    let mut big = span(2, 1, 1);
    big.attributes = vec![kv("blob", &"x".repeat(5 * 1024 * 1024))];
    let error = client
        .export(request(vec![big.clone()]))
        .await
        .expect_err("too large");
    assert_eq!(error.code(), tonic::Code::InvalidArgument, "{error:?}");

    // The same, gzip-compressed to a few KiB: a bomb, refused while decompressing.
    let mut gz = TraceServiceClient::connect(format!("http://{}", harness.grpc))
        .await
        .expect("connect")
        .send_compressed(tonic::codec::CompressionEncoding::Gzip)
        .max_encoding_message_size(usize::MAX);
    let error = gz.export(request(vec![big])).await.expect_err("bomb");
    assert_eq!(error.code(), tonic::Code::InvalidArgument, "{error:?}");

    // Invalid ids: partial success.
    let mut bad = span(3, 2, 1);
    bad.span_id = vec![0; 8];
    let answer = gz
        .export(request(vec![bad, span(3, 1, 1)]))
        .await
        .expect("partial success")
        .into_inner();
    assert_eq!(answer.partial_success.map(|p| p.rejected_spans), Some(1));

    // Still serving, compressed and not.
    client
        .export(request(vec![span(4, 1, 1)]))
        .await
        .expect("served");
    gz.export(request(vec![span(5, 1, 1)]))
        .await
        .expect("served");
    assert!(harness
        .store
        .call_chain(faultline_ingest::TraceId([4; 16]))
        .is_some());
    assert!(harness
        .store
        .call_chain(faultline_ingest::TraceId([5; 16]))
        .is_some());
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goroutine_metrics_feed_the_task_counters_and_the_rest_is_counted() {
    let harness = Harness::default().await;
    let point = |value: i64| NumberDataPoint {
        time_unix_nano: 1_700_000_000_000_000_000,
        value: Some(number_data_point::Value::AsInt(value)),
        ..Default::default()
    };
    let metric_of = |name: &str, value: i64| Metric {
        name: name.into(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![point(value)],
        })),
        ..Default::default()
    };
    let body = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "user-svc")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    metric_of("go.goroutine.count", 4242),
                    metric_of("process.runtime.go.goroutines", 4243),
                    metric_of("go.thread.count", 17),
                    metric_of("http.server.request.duration", 3),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let reply = post(
        &harness,
        "/v1/metrics",
        "application/x-protobuf",
        None,
        body.encode_to_vec(),
    )
    .await;
    assert_eq!(reply.status, 200);
    let samples = harness.tasks.0.lock().clone();
    assert_eq!(samples.len(), 3, "{samples:?}");
    assert!(samples.iter().all(|s| s.target == "user-svc"));
    assert!(samples
        .iter()
        .any(|s| s.metric == TaskMetric::Goroutines && s.value == 4242.0));
    assert!(samples
        .iter()
        .any(|s| s.metric == TaskMetric::Threads && s.value == 17.0));
    assert_eq!(harness.receivers.stats().metric_points_dropped, 1);
    harness.stop().await;
}

/// A metric whose data cannot be read gets 400 and is counted, as a bad span does; it was
/// accepted (200) with the metric kept without data. The message says where the value sits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_json_metrics_with_unreadable_data_are_refused_and_counted() {
    let harness = Harness::default().await;
    let metrics = |value: &str| {
        format!(
            r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"user-svc"}}}}]}},"scopeMetrics":[{{"metrics":[{{"name":"go.goroutine.count","gauge":{{"dataPoints":[{{"asInt":{value}}}]}}}}]}}]}}]}}"#
        )
        .into_bytes()
    };
    let before = harness.receivers.stats().requests_invalid;
    let reply = post(
        &harness,
        "/v1/metrics",
        "application/json",
        None,
        metrics(r#""4242 goroutines""#),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", status_message(&reply));
    let message = status_message(&reply);
    assert!(
        message.contains("metrics[0].gauge.dataPoints[0].asInt"),
        "{message}"
    );
    assert_eq!(harness.receivers.stats().requests_invalid, before + 1);
    assert!(harness.tasks.0.lock().is_empty());

    let reply = post(
        &harness,
        "/v1/metrics",
        "application/json",
        None,
        metrics(r#""4242""#),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", status_message(&reply));
    let samples = harness.tasks.0.lock().clone();
    assert!(
        samples
            .iter()
            .any(|s| s.metric == TaskMetric::Goroutines && s.value == 4242.0),
        "{samples:?}"
    );

    // The protobuf JSON mapping's "NaN" (and a number in a string) are valid: 200. The NaN
    // point is no goroutine count: left out and counted; the gauge's other point is kept
    // (before, the whole gauge was read as no data and nothing was counted).
    let (invalid, dropped) = {
        let stats = harness.receivers.stats();
        (stats.requests_invalid, stats.metric_points_dropped)
    };
    let body = br#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"user-svc"}}]},"scopeMetrics":[{"metrics":[{"name":"go.goroutine.count","gauge":{"dataPoints":[{"asDouble":"NaN"},{"asDouble":"4343"}]}}]}]}]}"#;
    let reply = post(
        &harness,
        "/v1/metrics",
        "application/json",
        None,
        body.to_vec(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", status_message(&reply));
    let stats = harness.receivers.stats();
    assert_eq!(stats.requests_invalid, invalid);
    assert_eq!(stats.metric_points_dropped, dropped + 1);
    let samples = harness.tasks.0.lock().clone();
    assert!(samples.iter().all(|s| s.value.is_finite()), "{samples:?}");
    assert!(samples.iter().any(|s| s.value == 4343.0), "{samples:?}");
    harness.stop().await;
}
