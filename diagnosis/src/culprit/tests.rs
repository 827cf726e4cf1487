use super::*;
use crate::culprit::fault::{address_in, fault_of};

const MS: i64 = 1_000_000;

fn span(
    id: &str,
    parent: Option<&str>,
    service: &str,
    operation: &str,
    kind: CallKind,
) -> CallSpan {
    CallSpan {
        span_id: id.to_owned(),
        parent_span_id: parent.map(str::to_owned),
        service: service.to_owned(),
        operation: operation.to_owned(),
        kind,
        start_unix_nanos: 0,
        end_unix_nanos: 10 * MS,
        ..CallSpan::default()
    }
}

fn failing(mut s: CallSpan, error: &str) -> CallSpan {
    s.failed = true;
    s.error = Some(error.to_owned());
    s
}

fn trace(spans: Vec<CallSpan>, logs: Vec<CallLog>) -> TraceFacts {
    TraceFacts {
        trace_id: "t".into(),
        spans,
        logs,
        young: false,
    }
}

const EOF_TEXT: &str = r#"Get "http://127.0.0.1:18080/orders/7": EOF"#;

#[test]
fn faults_are_read_from_the_innermost_error() {
    assert_eq!(fault_of(EOF_TEXT), Fault::Eof);
    assert_eq!(fault_of("read body: unexpected EOF"), Fault::UnexpectedEof);
    assert_eq!(
        fault_of("read tcp 10.0.0.1:5->10.0.0.2:80: read: connection reset by peer"),
        Fault::Reset
    );
    assert_eq!(
        fault_of("dial tcp 127.0.0.1:80: connect: connection refused"),
        Fault::Refused
    );
    assert_eq!(
        fault_of("context deadline exceeded (Client.Timeout exceeded while awaiting headers)"),
        Fault::Timeout
    );
    assert_eq!(
        fault_of("dial tcp: lookup orders on 127.0.0.53:53: no such host"),
        Fault::Dns
    );
    assert_eq!(fault_of("dial tcp: lookup orders: i/o timeout"), Fault::Dns);
    assert_eq!(
        fault_of("dial tcp 127.0.0.1:80: connect: cannot assign requested address"),
        Fault::LocalPorts
    );
    assert_eq!(
        fault_of("write tcp 1.2.3.4:5->6.7.8.9:10: write: broken pipe"),
        Fault::BrokenPipe
    );
    assert_eq!(
        fault_of("accept tcp [::]:8080: accept4: too many open files"),
        Fault::Other
    );
    assert_eq!(fault_of("GEOFENCE failed"), Fault::Other);
    assert_eq!(fault_of(""), Fault::Other);
}

#[test]
fn faults_are_read_from_rust_http_client_errors_too() {
    // Exact texts reqwest 0.12 / hyper 1 produced in `faultline demo`'s lab.
    let url = "error sending request for url (http://127.0.0.1:45047/v1/stock/23)";
    assert_eq!(
        fault_of(&format!(
            "{url}: client error (SendRequest): connection closed before message completed"
        )),
        Fault::Eof
    );
    assert_eq!(
        fault_of(&format!(
            "{url}: client error (SendRequest): connection error: Connection reset by peer (os error 104)"
        )),
        Fault::Reset
    );
    assert_eq!(
        fault_of(&format!("{url}: operation timed out")),
        Fault::Timeout
    );
    assert_eq!(
        fault_of(
            "error sending request for url (http://inventory.faultline-demo.invalid:45047/v1/stock/23): \
             client error (Connect): dns error: failed to lookup address information: Name or service not known"
        ),
        Fault::Dns
    );
}

#[test]
fn addresses_are_read_from_urls_dials_and_connection_pairs() {
    assert_eq!(address_in(EOF_TEXT), Some(("127.0.0.1".into(), 18080)));
    assert_eq!(
        address_in("dial tcp 10.0.0.9:5432: connect: connection refused"),
        Some(("10.0.0.9".into(), 5432))
    );
    assert_eq!(
        address_in("read tcp 127.0.0.1:41234->127.0.0.1:8081: read: connection reset by peer"),
        Some(("127.0.0.1".into(), 8081))
    );
    assert_eq!(
        address_in("Get \"http://[::1]:9000/x\": EOF"),
        Some(("::1".into(), 9000))
    );
    assert_eq!(address_in("EOF"), None);
    assert_eq!(address_in("http://host:99999999/"), None);
}

#[test]
fn a_callee_that_closes_without_an_error_of_its_own_is_the_culprit() {
    let facts = trace(
        vec![
            failing(
                span("a", None, "frontend", "GET /checkout", CallKind::Server),
                "upstream failed",
            ),
            failing(
                span("b", Some("a"), "frontend", "GET", CallKind::Client),
                EOF_TEXT,
            ),
            span(
                "c",
                Some("b"),
                "orders",
                "GET /orders/:id",
                CallKind::Server,
            ),
        ],
        vec![CallLog {
            service: "frontend".into(),
            span_id: Some("a".into()),
            text: EOF_TEXT.into(),
            pattern: Some("p-eof".into()),
        }],
    );
    let verdict = trace_culprit(&facts, &Listeners::default()).expect("a verdict");
    assert_eq!(verdict.service, "orders");
    assert_eq!(verdict.role, CulpritRole::Callee);
    assert_eq!(verdict.fault, Fault::Eof);
    assert_eq!(verdict.seen_by, ["frontend"]);
    assert_eq!(verdict.span_id.as_deref(), Some("c"));
    let edge = verdict.edge.as_ref().expect("an edge");
    assert_eq!(edge.link, CalleeLink::ChildSpan);
    assert_eq!(edge.address.as_deref(), Some("127.0.0.1:18080"));
    assert!(verdict.resolved);
    assert!(
        verdict
            .reasoning
            .starts_with("orders closed the connection without answering"),
        "{}",
        verdict.reasoning
    );
    assert!(verdict
        .evidence
        .iter()
        .any(|e| e.contains("no error of its own")));
    // The pattern's own reports (the log) give the same answer.
    let by_pattern = pattern_culprit_in_trace(&facts, &["p-eof"], &Listeners::default())
        .expect("the pattern is in the trace");
    assert_eq!(by_pattern.service, "orders");
    assert!(pattern_culprit_in_trace(&facts, &["p-other"], &Listeners::default()).is_none());
}

#[test]
fn peer_attributes_or_the_address_in_the_text_find_a_callee_without_spans() {
    let listeners: Listeners = [(18080, "orders".to_owned())].into_iter().collect();
    let mut call = failing(
        span("b", Some("a"), "frontend", "GET", CallKind::Client),
        EOF_TEXT,
    );
    call.peer = Peer {
        service: None,
        address: Some("127.0.0.1".into()),
        port: Some(18080),
    };
    let root = span("a", None, "frontend", "GET /checkout", CallKind::Server);
    let with_peer = trace(vec![root.clone(), call.clone()], Vec::new());
    let verdict = trace_culprit(&with_peer, &listeners).expect("a verdict");
    assert_eq!(
        (verdict.service.as_str(), verdict.role),
        ("orders", CulpritRole::Callee)
    );
    assert_eq!(verdict.edge.map(|e| e.link), Some(CalleeLink::PeerAddress));

    // No peer attributes: the address in the error text, mapped to its listener.
    call.peer = Peer::default();
    let text_only = trace(vec![root.clone(), call.clone()], Vec::new());
    let verdict = trace_culprit(&text_only, &listeners).expect("a verdict");
    assert_eq!(verdict.service, "orders");
    assert_eq!(
        verdict.edge.map(|e| e.link),
        Some(CalleeLink::AddressInText)
    );

    // peer.service names it directly.
    call.peer.service = Some("orders".into());
    let named = trace(vec![root.clone(), call.clone()], Vec::new());
    let verdict = trace_culprit(&named, &Listeners::default()).expect("a verdict");
    assert_eq!(verdict.edge.map(|e| e.link), Some(CalleeLink::PeerService));

    // Nothing identifies the callee: the verdict stays with the caller and says it is unsure.
    call.peer = Peer::default();
    let unknown = trace(vec![root, call], Vec::new());
    let verdict = trace_culprit(&unknown, &Listeners::default()).expect("a verdict");
    assert_eq!(verdict.service, "frontend");
    assert!(!verdict.resolved);
    assert!(
        verdict.reasoning.contains("callee is unknown"),
        "{}",
        verdict.reasoning
    );
}

#[test]
fn a_callee_that_reported_its_own_error_is_the_origin_and_callers_only_saw_it() {
    let facts = trace(
        vec![
            span("a", None, "frontend", "GET /checkout", CallKind::Server),
            failing(
                span("b", Some("a"), "frontend", "GET", CallKind::Client),
                EOF_TEXT,
            ),
            span(
                "c",
                Some("b"),
                "orders",
                "GET /orders/:id",
                CallKind::Server,
            ),
        ],
        vec![CallLog {
            service: "orders".into(),
            span_id: Some("c".into()),
            text: "open /data/orders.db: too many open files".into(),
            pattern: None,
        }],
    );
    let verdict = trace_culprit(&facts, &Listeners::default()).expect("a verdict");
    assert_eq!(verdict.service, "orders");
    assert_eq!(verdict.role, CulpritRole::SelfReported);
    assert_eq!(verdict.seen_by, ["frontend"]);
    assert!(verdict.edge.is_some());
}

#[test]
fn a_failure_two_calls_down_is_followed_through_the_middle_service() {
    let reset = "read tcp 127.0.0.1:5->127.0.0.1:5432: read: connection reset by peer";
    let facts = trace(
        vec![
            span("a", None, "frontend", "GET /checkout", CallKind::Server),
            failing(
                span("b", Some("a"), "frontend", "GET", CallKind::Client),
                EOF_TEXT,
            ),
            failing(
                span(
                    "c",
                    Some("b"),
                    "orders",
                    "GET /orders/:id",
                    CallKind::Server,
                ),
                "db failed",
            ),
            failing(
                span("d", Some("c"), "orders", "SELECT", CallKind::Client),
                reset,
            ),
            span("e", Some("d"), "db", "query", CallKind::Server),
        ],
        Vec::new(),
    );
    let verdict = trace_culprit(&facts, &Listeners::default()).expect("a verdict");
    assert_eq!(verdict.service, "db");
    assert_eq!(verdict.role, CulpritRole::Callee);
    assert_eq!(verdict.fault, Fault::Reset);
    assert!(
        verdict.seen_by.contains(&"orders".to_owned()),
        "{verdict:?}"
    );
    assert!(
        verdict.seen_by.contains(&"frontend".to_owned()),
        "{verdict:?}"
    );
}

#[test]
fn a_client_whose_own_name_lookup_fails_is_the_culprit_itself() {
    let facts = trace(
        vec![
            span("a", None, "frontend", "GET /checkout", CallKind::Server),
            failing(
                span("b", Some("a"), "frontend", "GET", CallKind::Client),
                r#"Get "http://orders:8080/x": dial tcp: lookup orders on 127.0.0.53:53: no such host"#,
            ),
        ],
        Vec::new(),
    );
    let listeners: Listeners = [(8080, "orders".to_owned())].into_iter().collect();
    let verdict = trace_culprit(&facts, &listeners).expect("a verdict");
    assert_eq!(verdict.service, "frontend");
    assert_eq!(verdict.role, CulpritRole::Caller);
    assert_eq!(verdict.fault, Fault::Dns);
}

#[test]
fn a_pattern_verdict_counts_the_traces_that_agree() {
    let one = |service: &str, seen_by: &str| Culprit {
        service: service.into(),
        role: CulpritRole::Callee,
        fault: Fault::Eof,
        seen_by: vec![seen_by.into()],
        edge: None,
        resolved: true,
        headline: String::new(),
        reasoning: format!("{service} closed"),
        evidence: Vec::new(),
        traces_agreeing: 1,
        traces_total: 1,
        span_id: Some("s".into()),
    };
    let verdict = pattern_culprit([
        one("orders", "frontend"),
        one("orders", "gateway"),
        one("orders", "frontend"),
        one("payments", "orders"),
    ])
    .expect("a verdict");
    assert_eq!(verdict.service, "orders");
    assert_eq!((verdict.traces_agreeing, verdict.traces_total), (3, 4));
    assert_eq!(verdict.seen_by, ["frontend", "gateway"]);
    assert_eq!(
        verdict.headline,
        "starts in orders (seen by frontend, gateway) in 3 of 4 traces"
    );
    let split = pattern_culprit([one("orders", "a"), one("payments", "b")]).expect("a verdict");
    assert!(split.reasoning.starts_with("split:"), "{}", split.reasoning);
    assert!(pattern_culprit(Vec::new()).is_none());
}

#[test]
fn hostile_span_graphs_end() {
    // A parent cycle and a self-parent: no hang, no panic.
    let facts = trace(
        vec![
            failing(span("a", Some("b"), "x", "op", CallKind::Client), EOF_TEXT),
            failing(span("b", Some("a"), "y", "op", CallKind::Client), EOF_TEXT),
            failing(span("c", Some("c"), "z", "op", CallKind::Server), EOF_TEXT),
        ],
        Vec::new(),
    );
    let listeners: Listeners = [(18080, "x".to_owned())].into_iter().collect();
    assert!(trace_culprit(&facts, &listeners).is_some());
}

/// Spans as the Go lab's services send them: a SERVER span per request (`GET /route`), a
/// CLIENT span per downstream call (`GET`, with `server.address`/`server.port`).
fn client(id: &str, parent: &str, service: &str, port: u16) -> CallSpan {
    let mut s = span(id, Some(parent), service, "GET", CallKind::Client);
    s.peer = Peer {
        service: None,
        address: Some("127.0.0.1".into()),
        port: Some(port),
    };
    s
}

fn timed(mut s: CallSpan, start_ms: i64, end_ms: i64) -> CallSpan {
    s.start_unix_nanos = start_ms * MS;
    s.end_unix_nanos = end_ms * MS;
    s
}

fn tagged(mut s: CallSpan, pattern: &str) -> CallSpan {
    s.patterns.push(pattern.to_owned());
    s
}

fn log(service: &str, span_id: &str, text: &str, pattern: &str) -> CallLog {
    CallLog {
        service: service.into(),
        span_id: Some(span_id.into()),
        text: text.into(),
        pattern: Some(pattern.into()),
    }
}

/// The slow fault: ledger stalls past accounts' 500 ms deadline; when it goes on, its own
/// call is cancelled at once (its request's context is gone) and it answers 502; accounts
/// answers 502 to edge, which logs the unexpected status. Every pattern of the trace — the
/// timeout, ledger's `context canceled`, and both echoes upstream — lives in ledger.
#[test]
fn a_slow_callee_is_the_culprit_of_the_timeout_its_cancellation_and_every_echo_upstream() {
    let timeout = r#"Get "http://127.0.0.1:33533/ledger/45841": context deadline exceeded"#;
    let canceled = r#"Get "http://127.0.0.1:34447/users/45841": context canceled"#;
    let echo = "upstream call failed: GET http://127.0.0.1:37727/internal/accounts/45841: \
                unexpected status 502 Bad Gateway upstream=accounts-svc";
    let facts = trace(
        vec![
            timed(
                failing(
                    span("e", None, "edge", "GET /api/:id", CallKind::Server),
                    "",
                ),
                0,
                520,
            ),
            timed(
                failing(
                    client("e1", "e", "edge", 37727),
                    "GET: unexpected status 502",
                ),
                1,
                519,
            ),
            tagged(
                timed(
                    failing(
                        span(
                            "a",
                            Some("e1"),
                            "accounts-svc",
                            "GET /internal/accounts/:id",
                            CallKind::Server,
                        ),
                        "HTTP 502 from GET /internal/accounts/:id",
                    ),
                    2,
                    518,
                ),
                "p-502",
            ),
            tagged(
                timed(
                    failing(client("a1", "a", "accounts-svc", 33533), timeout),
                    3,
                    503,
                ),
                "p-timeout",
            ),
            timed(
                failing(
                    span(
                        "l",
                        Some("a1"),
                        "ledger-api",
                        "GET /ledger/:id",
                        CallKind::Server,
                    ),
                    "HTTP 502 from GET /ledger/:id",
                ),
                4,
                1_505,
            ),
            tagged(
                timed(
                    failing(client("l1", "l", "ledger-api", 34447), canceled),
                    1_504,
                    1_504,
                ),
                "p-canceled",
            ),
        ],
        vec![
            log(
                "ledger-api",
                "l",
                &format!("upstream call failed: {canceled}"),
                "p-canceled",
            ),
            log(
                "accounts-svc",
                "a",
                &format!("upstream call failed: {timeout}"),
                "p-timeout",
            ),
            log("edge", "e", echo, "p-echo"),
        ],
    );
    let listeners = Listeners::default();
    for pattern in [
        None,
        Some("p-timeout"),
        Some("p-canceled"),
        Some("p-502"),
        Some("p-echo"),
    ] {
        let verdict = match pattern {
            None => trace_culprit(&facts, &listeners),
            Some(p) => pattern_culprit_in_trace(&facts, &[p], &listeners),
        }
        .expect("a verdict");
        assert_eq!(
            (
                verdict.service.as_str(),
                verdict.role,
                verdict.fault,
                verdict.resolved
            ),
            ("ledger-api", CulpritRole::Callee, Fault::Timeout, true),
            "{pattern:?}: {verdict:#?}"
        );
        assert!(
            verdict.seen_by.contains(&"accounts-svc".to_owned()),
            "{pattern:?}: {verdict:#?}"
        );
        assert_eq!(
            verdict
                .edge
                .as_ref()
                .map(|e| (e.caller.as_str(), e.callee.as_str())),
            Some(("accounts-svc", "ledger-api")),
            "{pattern:?}"
        );
    }
    let verdict = pattern_culprit_in_trace(&facts, &["p-canceled"], &listeners).expect("a verdict");
    assert!(
        verdict
            .evidence
            .iter()
            .any(|e| e.contains("accounts-svc gave up on ledger-api after 500 ms")),
        "{:?}",
        verdict.evidence
    );
}

/// A cancelled call that had been waiting for most of the caller's wait: the time went in
/// that call's callee, not in the service whose work was cancelled.
#[test]
fn a_cancelled_call_that_waited_all_along_points_at_its_own_callee() {
    let canceled = r#"Get "http://127.0.0.1:34447/users/7": context canceled"#;
    let facts = trace(
        vec![
            span("e", None, "edge", "GET /api/:id", CallKind::Server),
            timed(
                failing(
                    client("e1", "e", "edge", 37727),
                    "Get \"http://127.0.0.1:37727/x\": context deadline exceeded",
                ),
                0,
                1_000,
            ),
            timed(
                failing(
                    span("a", Some("e1"), "accounts", "GET /x", CallKind::Server),
                    "",
                ),
                1,
                1_001,
            ),
            tagged(
                timed(
                    failing(client("a1", "a", "accounts", 34447), canceled),
                    2,
                    1_000,
                ),
                "p-canceled",
            ),
        ],
        Vec::new(),
    );
    let listeners: Listeners = [(34447, "users".to_owned())].into_iter().collect();
    let verdict = pattern_culprit_in_trace(&facts, &["p-canceled"], &listeners).expect("a verdict");
    assert_eq!(
        (verdict.service.as_str(), verdict.role),
        ("users", CulpritRole::Callee)
    );
    assert_eq!(verdict.seen_by, ["accounts", "edge"]);
    // Nobody upstream timed out: a cancellation alone names no culprit for sure.
    let alone = trace(
        vec![
            span("a", None, "accounts", "GET /x", CallKind::Server),
            tagged(
                failing(client("a1", "a", "accounts", 34447), canceled),
                "p-canceled",
            ),
        ],
        Vec::new(),
    );
    let verdict = pattern_culprit_in_trace(&alone, &["p-canceled"], &listeners).expect("a verdict");
    assert_eq!(verdict.service, "accounts");
    assert!(!verdict.resolved, "{verdict:#?}");
}

/// The listen-overflow and close-wait faults: the callee never accepts (or never answers),
/// so it sends no SERVER span at all. The callers' two kinds of timeout — waiting for
/// headers on an accepted connection, and the dial that never completes — name its port in
/// their CLIENT spans; the node's listeners (a configured process, or the process holding
/// the listening socket) name the service. Both patterns and the upstream echo of the
/// middle service land on the callee.
#[test]
fn a_callee_with_no_span_at_all_is_found_through_the_port_its_callers_name() {
    let headers = r#"Get "http://127.0.0.1:53561/v1/orders/12": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"#;
    let dial = r#"Get "http://127.0.0.1:53561/v1/orders/13": dial tcp 127.0.0.1:53561: i/o timeout (Client.Timeout exceeded while awaiting headers)"#;
    let one = |text: &str, pattern: &str| {
        trace(
            vec![
                tagged(
                    failing(
                        span(
                            "s",
                            None,
                            "storefront-api",
                            "GET /shop/:id",
                            CallKind::Server,
                        ),
                        "HTTP 502 from GET /shop/:id",
                    ),
                    "p-502",
                ),
                tagged(
                    failing(client("s1", "s", "storefront-api", 53561), text),
                    pattern,
                ),
            ],
            Vec::new(),
        )
    };
    for source in [ListenerSource::Configured, ListenerSource::Socket] {
        let mut listeners = Listeners::default();
        listeners.learn(53561, "orders", source);
        for (text, pattern) in [(headers, "p-headers"), (dial, "p-dial")] {
            let facts = one(text, pattern);
            for p in [pattern, "p-502"] {
                let verdict =
                    pattern_culprit_in_trace(&facts, &[p], &listeners).expect("a verdict");
                assert_eq!(
                    (
                        verdict.service.as_str(),
                        verdict.role,
                        verdict.fault,
                        verdict.resolved
                    ),
                    ("orders", CulpritRole::Callee, Fault::Timeout, true),
                    "{p} via {source:?}: {verdict:#?}"
                );
                assert_eq!(verdict.seen_by, ["storefront-api"]);
                assert_eq!(
                    verdict.edge.as_ref().map(|e| e.link),
                    Some(CalleeLink::PeerAddress)
                );
                assert!(
                    verdict.evidence.iter().any(|e| e.contains(source.says())),
                    "{:?}",
                    verdict.evidence
                );
            }
        }
    }
    // Without the node's listeners the callee is unknown: the verdict says so.
    let verdict =
        pattern_culprit_in_trace(&one(dial, "p-dial"), &["p-dial"], &Listeners::default())
            .expect("a verdict");
    assert_eq!(verdict.service, "storefront-api");
    assert!(!verdict.resolved);
}

/// What a service's own spans say outranks the node's guess by process name, whatever the
/// order they are learnt in.
#[test]
fn listeners_named_by_spans_outrank_configured_processes_and_sockets() {
    let mut listeners = Listeners::default();
    listeners.learn(8080, "labsvc", ListenerSource::Socket);
    listeners.learn(8080, "orders-proc", ListenerSource::Configured);
    assert_eq!(listeners.service_on(8080), Some("orders-proc"));
    listeners.insert(8080, "orders");
    listeners.learn(8080, "labsvc", ListenerSource::Socket);
    assert_eq!(
        listeners.listener(8080),
        Some(("orders", ListenerSource::Spans))
    );
}

/// The dns fault: the service's own lookups fail; its SERVER span's 502 and its caller's
/// echo are the same client-side fault of that service.
#[test]
fn the_echoes_of_a_failed_lookup_stay_with_the_caller_that_looked_up() {
    let lookup = r#"Get "http://shipping-svc.invalid:40647/v2/shipping/3": dial tcp: lookup shipping-svc.invalid on 127.0.0.1:41000: no such host"#;
    let facts = trace(
        vec![
            span("g", None, "gateway", "GET /g/:id", CallKind::Server),
            failing(
                client("g1", "g", "gateway", 33073),
                "GET: unexpected status 502",
            ),
            tagged(
                failing(
                    span(
                        "b",
                        Some("g1"),
                        "bff-v2",
                        "GET /v2/bff/:id",
                        CallKind::Server,
                    ),
                    "HTTP 502 from GET /v2/bff/:id",
                ),
                "p-502",
            ),
            tagged(failing(client("b1", "b", "bff-v2", 40647), lookup), "p-dns"),
        ],
        vec![log(
            "gateway",
            "g",
            "unexpected status 502 Bad Gateway",
            "p-echo",
        )],
    );
    let listeners: Listeners = [(40647, "shipping-svc".to_owned())].into_iter().collect();
    for p in ["p-dns", "p-502", "p-echo"] {
        let verdict = pattern_culprit_in_trace(&facts, &[p], &listeners).expect("a verdict");
        assert_eq!(
            (verdict.service.as_str(), verdict.role, verdict.fault),
            ("bff-v2", CulpritRole::Caller, Fault::Dns),
            "{p}: {verdict:#?}"
        );
    }
}

/// The panic fault: the panicking service logs the runtime error (with its stack) and
/// answers 500; its caller logs the unexpected status. Both patterns are the panicking
/// service's own error.
#[test]
fn a_panic_and_its_echo_upstream_live_in_the_service_that_panicked() {
    let facts = trace(
        vec![
            span("s", None, "storefront", "GET /s/:id", CallKind::Server),
            failing(client("s1", "s", "storefront", 45759), "GET: unexpected status 500"),
            tagged(
                failing(span("h", Some("s1"), "shipping", "GET /v2/shipping/:id", CallKind::Server), "HTTP 500 from GET /v2/shipping/:id"),
                "p-500",
            ),
        ],
        vec![
            log("shipping", "h", "runtime error: index out of range [2] with length 0", "p-panic"),
            log(
                "storefront",
                "s",
                "upstream call failed: GET http://127.0.0.1:45759/v2/shipping/7: unexpected status 500 Internal Server Error",
                "p-echo",
            ),
        ],
    );
    for p in ["p-panic", "p-500", "p-echo"] {
        let verdict =
            pattern_culprit_in_trace(&facts, &[p], &Listeners::default()).expect("a verdict");
        assert_eq!(
            (verdict.service.as_str(), verdict.role),
            ("shipping", CulpritRole::SelfReported),
            "{p}: {verdict:#?}"
        );
    }
    assert_eq!(
        fault_of("Get \"http://h:1/x\": context canceled"),
        Fault::Canceled
    );
    assert_eq!(
        fault_of("net/http: request canceled (Client.Timeout exceeded while awaiting headers)"),
        Fault::Timeout
    );
}

/// The unseen lab's close-wait fault: metadata runs out of fds, so it can post no spans, but
/// it logs its own error with the trace id; gateway's CLIENT span to metadata's port only says
/// that metadata answered 502. The failure is metadata's, for the trace and for gateway's
/// echo pattern.
#[test]
fn a_callee_that_logged_its_own_error_without_spans_is_the_origin_of_its_callers_echo() {
    let listeners: Listeners = [(22626, "metadata".to_owned())].into_iter().collect();
    let spans = vec![
        failing(
            span("a", None, "gateway", "GET /media/:id", CallKind::Server),
            "HTTP 502",
        ),
        tagged(
            failing(client("b", "a", "gateway", 22626), "metadata answered 502"),
            "p-answered",
        ),
    ];
    let own_log = CallLog {
        service: "metadata".into(),
        span_id: None,
        text: r#"load blob metadata: Get "http://127.0.0.1:23001/blobs/7": dial tcp 127.0.0.1:23001: socket: too many open files"#.into(),
        pattern: Some("p-fds".into()),
    };
    let facts = trace(spans.clone(), vec![own_log]);
    let verdict = trace_culprit(&facts, &listeners).expect("a verdict");
    assert_eq!(
        (verdict.service.as_str(), verdict.role),
        ("metadata", CulpritRole::SelfReported),
        "{verdict:#?}"
    );
    assert_eq!(verdict.seen_by, ["gateway"]);
    let verdict = pattern_culprit_in_trace(&facts, &["p-answered"], &listeners).expect("a verdict");
    assert_eq!(verdict.service, "metadata", "{verdict:#?}");
    // Without the callee's own log, gateway's report is all there is.
    let verdict = trace_culprit(&trace(spans, Vec::new()), &listeners).expect("a verdict");
    assert_eq!(verdict.service, "gateway");
}

/// The unseen lab's close-wait fault (2026-12-06): gateway's SERVER span (`metadata:
/// unexpected status 502`) and its failed call to metadata (`metadata answered 502`, by port)
/// arrived before metadata's log of what failed (`socket: too many open files`; metadata,
/// out of fds, sent no span). Judged then, the failure was gateway's own, and the pattern
/// the gateway's span shared with metadata's log was for a moment an incident "in gateway".
/// While the trace is young and metadata, which sends spans, has nothing in it, the verdict
/// is unresolved; once metadata's log is in, or the grace has passed, it is placed.
#[test]
fn a_failed_call_whose_callee_sends_spans_is_unresolved_until_the_callee_reports() {
    let mut listeners: Listeners = [(8081, "metadata".to_owned())].into_iter().collect();
    listeners.note_span_sender("metadata");
    let mut call = failing(
        span("c", Some("root"), "gateway", "GET", CallKind::Client),
        "metadata answered 502",
    );
    call.peer.port = Some(8081);
    call.peer.address = Some("127.0.0.1".into());
    call.patterns = vec!["echo".into()];
    let mut root = failing(
        span("root", None, "gateway", "GET /media/{id}", CallKind::Server),
        "metadata: metadata: unexpected status 502 (17 bytes)",
    );
    root.patterns = vec!["fds".into()];
    let mut young = trace(vec![root, call], Vec::new());
    young.young = true;
    for ids in [&["fds"][..], &["echo"][..]] {
        let verdict = pattern_culprit_in_trace(&young, ids, &listeners).expect("failed");
        assert!(!verdict.resolved, "{ids:?}: {verdict:#?}");
        assert!(
            verdict.reasoning.contains("have not arrived yet"),
            "{}",
            verdict.reasoning
        );
    }
    assert!(!trace_culprit(&young, &listeners).expect("failed").resolved);

    // Metadata's log arrives: the failure is metadata's own.
    let mut reported = young.clone();
    reported.logs.push(CallLog {
        service: "metadata".into(),
        span_id: Some("m-server".into()),
        text: "Get \"http://127.0.0.1:8082/blob/7\": dial tcp 127.0.0.1:8082: socket: too many \
               open files"
            .into(),
        pattern: Some("fds".into()),
    });
    for ids in [&["fds"][..], &["echo"][..]] {
        let verdict = pattern_culprit_in_trace(&reported, ids, &listeners).expect("failed");
        assert_eq!(
            (verdict.service.as_str(), verdict.resolved),
            ("metadata", true),
            "{ids:?}: {verdict:#?}"
        );
    }

    // The grace passed with nothing from metadata: the caller's report is what there is.
    let mut old = young.clone();
    old.young = false;
    let verdict = pattern_culprit_in_trace(&old, &["echo"], &listeners).expect("failed");
    assert_eq!(
        (verdict.service.as_str(), verdict.resolved),
        ("gateway", true)
    );
    // A callee that never sends spans (a database) is not waited for.
    let quiet: Listeners = [(8081, "metadata".to_owned())].into_iter().collect();
    let verdict = pattern_culprit_in_trace(&young, &["echo"], &quiet).expect("failed");
    assert!(verdict.resolved, "{verdict:#?}");
}
