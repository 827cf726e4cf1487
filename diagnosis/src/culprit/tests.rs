use super::*;

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
    let by_pattern = pattern_culprit_in_trace(&facts, "p-eof", &Listeners::default())
        .expect("the pattern is in the trace");
    assert_eq!(by_pattern.service, "orders");
    assert!(pattern_culprit_in_trace(&facts, "p-other", &Listeners::default()).is_none());
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
