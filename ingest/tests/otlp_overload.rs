//! Overload: a sender faster than the pipeline gets the spec's retryable errors, what is queued
//! stays within its bound, and every span that was acknowledged is in the store — nothing is
//! accepted and then dropped.

mod support;

use std::sync::Arc;

use faultline_ingest::otlp::OtlpConfig;
use faultline_ingest::traces::TraceStoreConfig;
use faultline_ingest::TraceId;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::trace::v1::{status, Span, Status};
use prost::Message;
use support::otlp::{post, request, Harness};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic_types::StatusExt;

/// A trace id made from a number, so thousands of distinct traces can be sent.
fn trace_bytes(n: u32) -> [u8; 16] {
    let mut id = [7u8; 16];
    id[..4].copy_from_slice(&n.to_be_bytes());
    id
}

/// `count` failing spans of trace `n` (each gives clustering one record).
fn failing_spans(n: u32, count: u8) -> Vec<Span> {
    (1..=count)
        .map(|i| Span {
            trace_id: trace_bytes(n).to_vec(),
            span_id: vec![i; 8],
            name: format!("op-{i}"),
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_100_000_000,
            status: Some(Status {
                code: status::StatusCode::Error as i32,
                message: "connection reset by peer".into(),
            }),
            ..Default::default()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_log_queue_answers_429_and_acknowledged_spans_are_stored() {
    // Nobody drains the queue towards clustering: it holds 100 records.
    let mut harness = Harness::start(OtlpConfig::default(), TraceStoreConfig::default(), 100).await;
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for n in 0..40 {
        let body = request(failing_spans(n, 10)).encode_to_vec();
        let reply = post(&harness, "/v1/traces", "application/x-protobuf", None, body).await;
        match reply.status {
            200 => accepted.push(n),
            429 => {
                assert_eq!(reply.retry_after.as_deref(), Some("1"));
                refused.push(n);
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(
        accepted,
        (0..10).collect::<Vec<_>>(),
        "exactly the queue's worth"
    );
    assert_eq!(refused.len(), 30);
    for &n in &accepted {
        let chain = harness.store.call_chain(TraceId(trace_bytes(n)));
        assert_eq!(
            chain.map(|c| c.span_count),
            Some(10),
            "acknowledged trace {n}"
        );
    }
    for &n in &refused {
        assert!(
            harness.store.call_chain(TraceId(trace_bytes(n))).is_none(),
            "a refused request leaves nothing behind"
        );
    }
    // gRPC gets RESOURCE_EXHAUSTED with RetryInfo.
    let mut client = TraceServiceClient::connect(format!("http://{}", harness.grpc))
        .await
        .expect("connect");
    let error = client
        .export(request(failing_spans(1000, 3)))
        .await
        .expect_err("queue still full");
    assert_eq!(error.code(), tonic::Code::ResourceExhausted);
    let retry = error.get_details_retry_info().expect("RetryInfo detail");
    assert_eq!(retry.retry_delay.map(|d| d.as_secs()), Some(1));

    // The queue holds what was acknowledged, not more.
    let queued = harness.drain_logs();
    assert_eq!(queued.len(), 100);
    // Drained: the retry of a refused request goes through.
    let body = request(failing_spans(refused[0], 10)).encode_to_vec();
    let reply = post(&harness, "/v1/traces", "application/x-protobuf", None, body).await;
    assert_eq!(reply.status, 200);
    client
        .export(request(failing_spans(1000, 3)))
        .await
        .expect("room again");
    let stats = harness.receivers.stats();
    assert_eq!(stats.requests_throttled, 31);
    assert_eq!(stats.spans_accepted, 113);
    harness.stop().await;
}

/// An HTTP export whose body arrives in two halves, the second one late or never: a slow
/// or stalled sender.
struct SlowUpload {
    stream: tokio::net::TcpStream,
    rest: Vec<u8>,
}

impl SlowUpload {
    async fn start(harness: &Harness, body: Vec<u8>) -> SlowUpload {
        let mut stream = tokio::net::TcpStream::connect(harness.http)
            .await
            .expect("connect");
        let head = format!(
            "POST /v1/traces HTTP/1.1\r\nhost: {}\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            harness.http,
            body.len()
        );
        let half = body.len() / 2;
        stream.write_all(head.as_bytes()).await.expect("write head");
        stream.write_all(&body[..half]).await.expect("write half");
        stream.flush().await.expect("flush");
        SlowUpload {
            stream,
            rest: body[half..].to_vec(),
        }
    }

    /// Sends the rest and returns the status line.
    async fn finish(mut self) -> String {
        self.stream.write_all(&self.rest).await.expect("write rest");
        self.status_line().await
    }

    /// Sends nothing more and returns the status line the receiver answers with.
    async fn status_line(mut self) -> String {
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            self.stream.read_to_end(&mut answer),
        )
        .await;
        String::from_utf8_lossy(&answer)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}

fn many_spans(n: u32, count: u32) -> Vec<Span> {
    (0..count)
        .map(|i| Span {
            trace_id: trace_bytes(n).to_vec(),
            span_id: {
                let mut id = vec![1u8; 8];
                id[..4].copy_from_slice(&(i + 1).to_be_bytes());
                id
            },
            name: "GET /x".into(),
            ..Default::default()
        })
        .collect()
}

/// Polls `done` every 10 ms for at most 10 s.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Sends `per_sender` requests from each of `senders` concurrent senders, alternating gRPC
/// and HTTP; returns the acknowledged trace numbers and the number of retryable refusals.
async fn blast(
    harness: &Arc<Harness>,
    senders: u32,
    per_sender: u32,
    base: u32,
) -> (Vec<u32>, u32) {
    let mut tasks = Vec::new();
    for s in 0..senders {
        let harness = harness.clone();
        tasks.push(tokio::spawn(async move {
            let mut grpc = TraceServiceClient::connect(format!("http://{}", harness.grpc))
                .await
                .expect("connect");
            let mut acked = Vec::new();
            let mut throttled = 0u32;
            for r in 0..per_sender {
                let n = base + s * 1000 + r;
                let ok = if r % 2 == 0 {
                    match grpc.export(request(many_spans(n, 400))).await {
                        Ok(_) => true,
                        Err(e) => {
                            assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
                            assert!(e.get_details_retry_info().is_some());
                            false
                        }
                    }
                } else {
                    let body = request(many_spans(n, 400)).encode_to_vec();
                    let reply =
                        post(&harness, "/v1/traces", "application/x-protobuf", None, body).await;
                    assert!(matches!(reply.status, 200 | 429), "{}", reply.status);
                    if reply.status == 429 {
                        assert!(reply.retry_after.is_some());
                    }
                    reply.status == 200
                };
                if ok {
                    acked.push(n);
                } else {
                    throttled += 1;
                }
            }
            (acked, throttled)
        }));
    }
    let mut acked = Vec::new();
    let mut throttled = 0;
    for task in tasks {
        let (a, t) = task.await.expect("sender");
        acked.extend(a);
        throttled += t;
    }
    (acked, throttled)
}

/// The figure: 64 stalled OTLP/HTTP uploads took every request slot and shut out
/// all senders of both transports (429 and RESOURCE_EXHAUSTED, 6 of 6 probes) for as long
/// as they stalled. Now they hold no slot, and are answered 408 at the body-read timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_uploads_cost_the_other_senders_nothing() {
    let config = OtlpConfig {
        body_read_timeout_ms: 3_000,
        ..OtlpConfig::default()
    };
    let harness = Arc::new(Harness::start(config, TraceStoreConfig::default(), 1_000_000).await);
    let mut stalled = Vec::new();
    for n in 0..64 {
        stalled.push(
            SlowUpload::start(
                &harness,
                request(many_spans(800_000 + n, 20)).encode_to_vec(),
            )
            .await,
        );
    }
    let half = request(many_spans(800_000, 20)).encode_to_vec().len() / 2;
    wait_until("the stalled halves arrived", || {
        harness.receivers.stats().body_bytes_in_flight as usize >= 64 * half
    })
    .await;

    // Fast senders of both transports go through, every time.
    let mut grpc = TraceServiceClient::connect(format!("http://{}", harness.grpc))
        .await
        .expect("connect");
    for n in 0..6 {
        grpc.export(request(many_spans(n, 10)))
            .await
            .expect("a gRPC sender is not shut out by stalled HTTP uploads");
        let body = request(many_spans(100 + n, 10)).encode_to_vec();
        let reply = post(&harness, "/v1/traces", "application/x-protobuf", None, body).await;
        assert_eq!(
            reply.status, 200,
            "an HTTP sender is not shut out by stalled ones"
        );
    }
    for n in 0..6 {
        for trace in [n, 100 + n] {
            let chain = harness.store.call_chain(TraceId(trace_bytes(trace)));
            assert_eq!(chain.map(|c| c.span_count), Some(10), "trace {trace}");
        }
    }

    // The stalled ones are told why, and give their bytes back.
    for upload in stalled {
        let status = upload.status_line().await;
        assert!(
            status.contains(" 408 "),
            "stalled upload answered {status:?}"
        );
    }
    let stats = harness.receivers.stats();
    assert_eq!(stats.requests_timed_out, 64);
    assert_eq!(stats.requests_throttled, 0);
    assert_eq!(stats.body_bytes_in_flight, 0);
    assert_eq!(
        harness.store.stats().spans,
        120,
        "nothing of a stalled upload is stored"
    );
}

/// Body bytes in flight are bounded per transport: past the HTTP budget, HTTP senders are
/// told to retry and nothing of their request is kept, while gRPC senders, with a budget of
/// their own, go through. Once the slow upload completes, everything acknowledged is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_body_budget_throttles_its_own_transport_only_and_nothing_acknowledged_is_lost() {
    let slow_body = request(many_spans(900_001, 1900)).encode_to_vec();
    let config = OtlpConfig {
        max_message_bytes: slow_body.len() + 1024,
        // The budget holds one export of the largest size; the slow upload's first half
        // leaves less room than the exports below need.
        max_body_bytes_in_flight: slow_body.len() + 1024,
        max_concurrent_requests: 2,
        ..OtlpConfig::default()
    };
    let harness = Arc::new(Harness::start(config, TraceStoreConfig::default(), 1_000_000).await);
    let slow = SlowUpload::start(&harness, slow_body.clone()).await;
    wait_until("the slow half arrived", || {
        harness.receivers.stats().body_bytes_in_flight as usize >= slow_body.len() / 2
    })
    .await;

    for n in 0..4 {
        let body = request(many_spans(n, 1500)).encode_to_vec();
        let reply = post(&harness, "/v1/traces", "application/x-protobuf", None, body).await;
        assert_eq!(reply.status, 429, "the HTTP body budget is full");
        assert_eq!(reply.retry_after.as_deref(), Some("1"));
    }
    let mut grpc = TraceServiceClient::connect(format!("http://{}", harness.grpc))
        .await
        .expect("connect");
    for n in 10..14 {
        grpc.export(request(many_spans(n, 1500)))
            .await
            .expect("gRPC has its own budget");
    }
    assert!(slow.finish().await.contains(" 200 "));

    // Free again: a burst of concurrent senders; whatever is acknowledged is stored.
    let (acked, throttled) = blast(&harness, 8, 6, 100_000).await;
    assert_eq!(acked.len() as u32 + throttled, 48);
    assert!(!acked.is_empty());
    for n in acked.iter().copied().chain(10..14).chain([900_001]) {
        let chain = harness.store.call_chain(TraceId(trace_bytes(n)));
        let expected = match n {
            900_001 => 1900,
            10..14 => 1500,
            _ => 400,
        };
        assert_eq!(
            chain.map(|c| c.span_count),
            Some(expected),
            "acknowledged trace {n}"
        );
    }
    for n in 0..4 {
        assert!(harness.store.call_chain(TraceId(trace_bytes(n))).is_none());
    }
    assert_eq!(
        harness.store.stats().spans,
        acked.len() * 400 + 4 * 1500 + 1900
    );
    let stats = harness.receivers.stats();
    assert_eq!(stats.requests_in_flight, 0);
    assert_eq!(stats.body_bytes_in_flight, 0);
}

/// The figure: 200 concurrent gzip requests each inflating to 30 MiB took the
/// receiver to a 443 MiB high-water mark, the decompressed-size limit being per request.
/// Now the decompressed bytes of all requests share one budget: whatever does not fit is
/// told to retry, and every acknowledged request is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_gzip_bodies_share_one_decompressed_bytes_budget() {
    const BUDGET: usize = 6 * 1024 * 1024;
    let config = OtlpConfig {
        max_decompressed_bytes: 3 * 1024 * 1024,
        max_decompressed_bytes_in_flight: BUDGET,
        ..OtlpConfig::default()
    };
    let harness = Arc::new(Harness::start(config, TraceStoreConfig::default(), 1_000_000).await);
    let mut tasks = Vec::new();
    for n in 0..32u32 {
        let harness = harness.clone();
        tasks.push(tokio::spawn(async move {
            let mut spans = many_spans(n, 1);
            spans[0].attributes = vec![support::otlp::kv("blob", &"x".repeat(2 * 1024 * 1024))];
            let body = support::otlp::gzip(&request(spans).encode_to_vec());
            let reply = post(
                &harness,
                "/v1/traces",
                "application/x-protobuf",
                Some("gzip"),
                body,
            )
            .await;
            match reply.status {
                200 => Some(n),
                429 => {
                    assert!(reply.retry_after.is_some());
                    None
                }
                other => panic!("unexpected status {other}"),
            }
        }));
    }
    let mut acked = Vec::new();
    for task in tasks {
        acked.extend(task.await.expect("sender"));
    }
    let stats = harness.receivers.stats();
    assert!(
        stats.decompressed_bytes_high_water as usize <= BUDGET,
        "{} decompressed bytes held at once",
        stats.decompressed_bytes_high_water
    );
    assert!(stats.decompressed_bytes_high_water > 0);
    assert_eq!(stats.requests_throttled as usize + acked.len(), 32);
    assert!(!acked.is_empty());
    for n in &acked {
        assert!(harness.store.call_chain(TraceId(trace_bytes(*n))).is_some());
    }
    assert_eq!(harness.store.stats().spans, acked.len());
}
