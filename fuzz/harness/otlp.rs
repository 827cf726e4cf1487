//! OTLP decoding: one export request through the OTLP/HTTP routes the agent serves
//! ([`OtlpReceivers::http_router`]: content type, gzip, body limits, protobuf or JSON decoding,
//! conversion, the trace store and the log queue), then every stored trace assembled into its
//! call chain.
//!
//! Input: byte 0 picks the signal (`% 3`: traces, logs, metrics) and the body's compression
//! (`/ 3 % 3`: none; gzip made here, so a valid message reaches the decoder through the
//! inflater; the rest sent as is with `Content-Encoding: gzip`, so the inflater itself is
//! fuzzed). The rest is the body. Besides not panicking: the answer is success or one of the
//! client errors OTLP/HTTP defines, never a server error; no record reaches clustering with a
//! time the line parser would not believe (1970, next year); every stored trace assembles;
//! and a JSON body of traces or logs (uncompressed, or gzip made here) is read alike by the
//! typed decoder the agent uses and the tree decoder (the proto's own serde): the same
//! request, or both refuse it.

use std::io::Write;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use faultline_ingest::otlp::{json_paths_agree, log_queue, OtlpConfig, OtlpOutputs, OtlpReceivers};
use faultline_ingest::parse::plausible_time;
use faultline_ingest::traces::{TraceFilter, TraceStore, TraceStoreConfig};
use tower::ServiceExt;

/// The request encoding a target fuzzes.
#[derive(Debug, Clone, Copy)]
pub enum Encoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

const PATHS: [&str; 3] = ["/v1/traces", "/v1/logs", "/v1/metrics"];

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime")
    })
}

/// Runs one input. Panics (the fuzzer's finding) when the receiver answers a server error.
pub fn run(encoding: Encoding, data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let path = PATHS[usize::from(selector) % PATHS.len()];
    let compression = usize::from(selector) / PATHS.len() % 3;
    let config = OtlpConfig {
        // Small enough that a fuzzer's gzip bombs reach the limits quickly.
        max_message_bytes: 256 * 1024,
        max_decompressed_bytes: 1024 * 1024,
        max_attributes_per_span: 16,
        max_events_per_span: 8,
        max_value_bytes: 256,
        ..OtlpConfig::default()
    };
    let store = Arc::new(TraceStore::new(TraceStoreConfig {
        max_traces: 64,
        max_spans_per_trace: 64,
        max_logs_per_trace: 16,
        max_total_spans: 1_024,
        max_total_logs: 256,
        ..TraceStoreConfig::default()
    }));
    let (logs, mut queue) = log_queue(config.log_queue_records);
    let receivers = OtlpReceivers::new(config, OtlpOutputs::discarding_tasks(store.clone(), logs));
    let mut request = Request::post(path).header(
        header::CONTENT_TYPE,
        match encoding {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        },
    );
    if matches!(encoding, Encoding::Json) && compression < 2 {
        if let Err(e) = json_paths_agree(path, body) {
            panic!("the two OTLP/JSON decoders disagree: {e}");
        }
    }
    let body = match compression {
        0 => body.to_vec(),
        1 => {
            request = request.header(header::CONTENT_ENCODING, "gzip");
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(body).expect("gzip into memory");
            gz.finish().expect("gzip into memory")
        }
        _ => {
            request = request.header(header::CONTENT_ENCODING, "gzip");
            body.to_vec()
        }
    };
    let request = request
        .body(Body::from(body))
        .expect("a request of constant parts");
    let status = runtime().block_on(async {
        let response = receivers
            .http_router()
            .oneshot(request)
            .await
            .expect("the router's error type is Infallible");
        response.status()
    });
    assert!(
        matches!(
            status,
            StatusCode::OK
                | StatusCode::BAD_REQUEST
                | StatusCode::PAYLOAD_TOO_LARGE
                | StatusCode::UNSUPPORTED_MEDIA_TYPE
        ),
        "{path} answered {status}"
    );
    while let Some(batch) = queue.try_recv() {
        for record in batch.records() {
            let _ = record.cluster_text();
            if let Some(t) = record.time_unix_nanos {
                assert!(
                    plausible_time(t, record.observed_unix_nanos),
                    "an implausible record time went to clustering: {record:?}"
                );
            }
        }
    }
    let traces = store.list(&TraceFilter {
        limit: Some(usize::MAX),
        ..TraceFilter::default()
    });
    for trace in traces {
        let chain = store
            .call_chain(trace.trace_id)
            .expect("a listed trace assembles");
        if let Err(err) = serde_json::to_string(&chain) {
            panic!("a call chain does not serialise: {err}");
        }
    }
}
