//! Overload: a sender faster than the pipeline gets the spec's retryable errors, what is queued
//! stays within its bound, and every span that was acknowledged is in the store — nothing is
//! accepted and then dropped.

#[path = "otlp_support.rs"]
mod support;

use std::sync::Arc;

use faultline_ingest::otlp::OtlpConfig;
use faultline_ingest::traces::TraceStoreConfig;
use faultline_ingest::TraceId;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::trace::v1::{status, Span, Status};
use prost::Message;
use support::{post, request, Harness};
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

/// An HTTP export whose body arrives in two halves: it holds a request slot while the second
/// half is awaited — a receiver busy with slow work.
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
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(10),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_beyond_a_busy_receiver_are_throttled_and_nothing_acknowledged_is_lost() {
    let config = OtlpConfig {
        max_concurrent_requests: 2,
        ..OtlpConfig::default()
    };
    let harness = Arc::new(Harness::start(config, TraceStoreConfig::default(), 1_000_000).await);

    // The receiver is busy: both slots held by slow uploads.
    let slow_a =
        SlowUpload::start(&harness, request(many_spans(900_001, 50)).encode_to_vec()).await;
    let slow_b =
        SlowUpload::start(&harness, request(many_spans(900_002, 50)).encode_to_vec()).await;
    let mut waited = 0;
    while harness.receivers.stats().requests_in_flight < 2 {
        waited += 1;
        assert!(waited < 500, "slow uploads never admitted");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Everyone else is told to retry, over both transports.
    let (acked, throttled) = blast(&harness, 8, 6, 0).await;
    assert!(acked.is_empty(), "a busy receiver accepted {acked:?}");
    assert_eq!(throttled, 48);
    assert_eq!(
        harness.store.stats().spans,
        0,
        "refused requests leave nothing"
    );

    // The slow work completes and is acknowledged.
    assert!(slow_a.finish().await.contains("200"));
    assert!(slow_b.finish().await.contains("200"));

    // Free again: a burst of concurrent senders; whatever is acknowledged is stored.
    let (acked, throttled) = blast(&harness, 8, 6, 100_000).await;
    assert_eq!(acked.len() as u32 + throttled, 48);
    assert!(!acked.is_empty());
    for n in acked.iter().copied().chain([900_001, 900_002]) {
        let chain = harness.store.call_chain(TraceId(trace_bytes(n)));
        let expected = if n > 900_000 { 50 } else { 400 };
        assert_eq!(
            chain.map(|c| c.span_count),
            Some(expected),
            "acknowledged trace {n}"
        );
    }
    assert_eq!(harness.store.stats().spans, acked.len() * 400 + 100);
    assert_eq!(harness.receivers.stats().requests_in_flight, 0);
}
