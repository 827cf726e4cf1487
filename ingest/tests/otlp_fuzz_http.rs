//! Arbitrary requests against a live receiver: every answer is one of the statuses the spec
//! allows for the request, and the receiver keeps serving good requests afterwards.

mod support;

use std::sync::OnceLock;

use proptest::prelude::*;
use prost::Message;
use support::otlp::{gzip, post, request, span, Harness};

fn live() -> &'static (tokio::runtime::Runtime, Harness) {
    static LIVE: OnceLock<(tokio::runtime::Runtime, Harness)> = OnceLock::new();
    LIVE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let harness = runtime.block_on(Harness::default());
        (runtime, harness)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn any_request_gets_a_spec_status(
        path in prop::sample::select(vec!["/v1/traces", "/v1/logs", "/v1/metrics"]),
        content_type in prop::sample::select(vec![
            "application/x-protobuf", "application/json", "application/json; charset=utf-8",
            "text/plain", "", "application/x-protobuf; proto=1",
        ]),
        encoding in prop::sample::select(vec![None, Some("gzip"), Some("identity"), Some("deflate")]),
        body in prop::collection::vec(any::<u8>(), 0..4096),
        compress in any::<bool>(),
    ) {
        let (runtime, harness) = live();
        let body = if compress && encoding == Some("gzip") { gzip(&body) } else { body };
        let reply = runtime.block_on(post(harness, path, content_type, encoding, body));
        let allowed: &[u16] = if content_type.starts_with("application/x-protobuf")
            || content_type.starts_with("application/json")
        {
            &[200, 400, 413, 415]
        } else {
            &[415]
        };
        prop_assert!(allowed.contains(&reply.status), "status {}", reply.status);
        if reply.status != 200 {
            prop_assert!(!reply.body.is_empty(), "an error says what was wrong");
        }
    }
}

#[test]
fn good_requests_are_served_alongside_the_fuzzing() {
    let (runtime, harness) = live();
    let body = request(vec![span(42, 1, 2)]).encode_to_vec();
    let reply = runtime.block_on(post(
        harness,
        "/v1/traces",
        "application/x-protobuf",
        None,
        body,
    ));
    assert_eq!(reply.status, 200);
    assert!(harness
        .store
        .call_chain(faultline_ingest::TraceId([42; 16]))
        .is_some());
}
