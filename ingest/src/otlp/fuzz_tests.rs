//! Fuzzing of the decoders with arbitrary and mutated input: decoding never panics, and what
//! decodes is converted and applied without panicking either.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use proptest::prelude::*;
use prost::Message;

use super::http::{decode_for_tests, Encoding};
use super::pipeline::{OtlpOutputs, Pipeline};
use super::sink::{log_queue, LogReceiver};
use super::OtlpConfig;
use crate::traces::{TraceStore, TraceStoreConfig};

/// A pipeline and the receiving end of its log queue (kept: a closed queue refuses all).
fn pipeline() -> (Pipeline, LogReceiver) {
    let (logs, receiver) = log_queue(1_000_000);
    let pipeline = Pipeline::new(
        OtlpConfig::default(),
        OtlpOutputs::discarding_tasks(Arc::new(TraceStore::new(TraceStoreConfig::default())), logs),
    );
    (pipeline, receiver)
}

fn apply_all(pipeline: &Pipeline, encoding: Encoding, body: &[u8]) {
    if let Ok(request) = decode_for_tests::<ExportTraceServiceRequest>(encoding, body) {
        let _ = pipeline.traces(request, None);
    }
    if let Ok(request) = decode_for_tests::<ExportLogsServiceRequest>(encoding, body) {
        let _ = pipeline.logs(request, None);
    }
    if let Ok(request) = decode_for_tests::<ExportMetricsServiceRequest>(encoding, body) {
        let _ = pipeline.metrics(request, None);
    }
}

const VALID_JSON: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"a"}}]},"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","parentSpanId":"eee19b7ec3c1b175","name":"x","kind":2,"startTimeUnixNano":"1","endTimeUnixNano":"2","status":{"code":2,"message":"m"},"attributes":[{"key":"k","value":{"arrayValue":{"values":[{"intValue":"3"},{"kvlistValue":{"values":[{"key":"z","value":{"bytesValue":"AAEC"}}]}}]}}}],"events":[{"name":"exception","attributes":[{"key":"exception.message","value":{"stringValue":"e"}}]}]}]}]}],"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityNumber":"SEVERITY_NUMBER_ERROR","body":{"stringValue":"{\"level\":\"error\",\"msg\":\"x\"}"},"traceId":"5b8efff798038103d269b633813fc60c"}]}]}]}"#;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        let (pipeline, _queue) = pipeline();
        apply_all(&pipeline, Encoding::Protobuf, &body);
        apply_all(&pipeline, Encoding::Json, &body);
        let _ = pipeline.gunzip(&body, &[]);
    }

    #[test]
    fn mutated_json_never_panics(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut body = VALID_JSON.as_bytes().to_vec();
        for (at, byte, kind) in edits {
            let i = at.index(body.len().max(1));
            match kind {
                0 if i < body.len() => body[i] = byte,
                1 => body.insert(i.min(body.len()), byte),
                _ if i < body.len() => { body.remove(i); }
                _ => {}
            }
        }
        let (pipeline, _queue) = pipeline();
        apply_all(&pipeline, Encoding::Json, &body);
    }

    #[test]
    fn mutated_protobuf_never_panics(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let request: ExportTraceServiceRequest =
            decode_for_tests(Encoding::Json, VALID_JSON.as_bytes()).unwrap_or_default();
        let mut body = request.encode_to_vec();
        for (at, byte) in edits {
            let i = at.index(body.len().max(1));
            if i < body.len() {
                body[i] = byte;
            }
        }
        let (pipeline, _queue) = pipeline();
        apply_all(&pipeline, Encoding::Protobuf, &body);
    }
}

#[test]
fn the_seed_document_is_valid() {
    let (pipeline, _queue) = pipeline();
    let request: ExportTraceServiceRequest =
        decode_for_tests(Encoding::Json, VALID_JSON.as_bytes()).expect("valid");
    let accepted = pipeline.traces(request, None).expect("applied");
    assert_eq!(accepted.rejected, 0);
    let logs: ExportLogsServiceRequest =
        decode_for_tests(Encoding::Json, VALID_JSON.as_bytes()).expect("valid");
    assert_eq!(
        logs.resource_logs[0].scope_logs[0].log_records[0].severity_number,
        17
    );
    assert!(pipeline.logs(logs, None).is_ok());
    assert_eq!(pipeline.stats().spans_accepted, 1);
    assert_eq!(pipeline.stats().logs_accepted, 1);
}
