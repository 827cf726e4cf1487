//! `[export]` through the real binary: agent A forwards to agent B's OTLP/gRPC receiver on
//! loopback. Spans and logs are sent to A by the OpenTelemetry Python SDK (as instrumented
//! services would); what B shows is what A forwarded.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::support::{self, eventually, require_python_sdk, Agent};

/// Generous: two agents and a Python interpreter share two loaded cores.
const PATIENCE: Duration = Duration::from_secs(60);

fn address(agent: &Agent, component: &str) -> String {
    agent.get_json("/api/v1/health")["components"][component]["address"]
        .as_str()
        .unwrap_or_else(|| panic!("{component} address in health"))
        .to_owned()
}

/// Starts agent A forwarding to `upstream` (gRPC) with short timeouts and backoff.
fn start_forwarding_agent(upstream: &str, extra_export: &str) -> Agent {
    start_forwarding_agent_to(&format!("http://{upstream}"), extra_export)
}

/// Starts agent A forwarding to the endpoint URL `endpoint` with short timeouts and backoff;
/// `extra_export` ends the `[export]` section (and may open `[export.headers]`).
fn start_forwarding_agent_to(endpoint: &str, extra_export: &str) -> Agent {
    let dir = tempfile::tempdir().expect("tempdir");
    let config: PathBuf = dir.path().join("a.toml");
    let interval = if extra_export.contains("interval_ms") {
        ""
    } else {
        "interval_ms = 500\n"
    };
    std::fs::write(
        &config,
        format!(
            "[export]\notlp_endpoint = \"{endpoint}\"\ntimeout_ms = 2000\n\
             initial_backoff_ms = 100\nmax_backoff_ms = 1000\n{interval}{extra_export}"
        ),
    )
    .expect("write config");
    let config = config.display().to_string();
    Agent::start_in(dir, &["--config", &config])
}

/// Sends the three-service failing trace of `send_trace.py` to `agent` over OTLP/gRPC (its
/// payments service also writes a JSON line to the agent's tailed `payments.log`); returns
/// the trace id.
fn send_trace(agent: &Agent) -> String {
    support::send_trace(
        "grpc",
        &address(agent, "otlp_grpc"),
        &agent.log_path("payments.log"),
    )
}

/// The trace's chain once it has all five spans of `send_trace.py` and a log with a pattern.
fn full_chain(agent: &Agent, trace_id: &str) -> Option<Value> {
    let (status, body) = agent.get(&format!("/api/v1/traces/{trace_id}"));
    if status != 200 {
        return None;
    }
    let chain: Value = serde_json::from_str(&body).ok()?;
    let spans = chain["spans"].as_array()?;
    let tagged_logs = spans
        .iter()
        .flat_map(|s| s["logs"].as_array().into_iter().flatten())
        .filter(|l| l["cluster_id"].is_string())
        .count();
    (spans.len() == 5 && tagged_logs >= 1 && !chain["cluster_ids"].as_array()?.is_empty())
        .then_some(chain)
}

fn attribute<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .and_then(|a| a["value"].as_str())
}

fn span<'a>(chain: &'a Value, service: &str, kind: &str) -> &'a Value {
    chain["spans"]
        .as_array()
        .and_then(|spans| {
            spans
                .iter()
                .find(|s| s["service"] == service && s["kind"] == kind)
        })
        .unwrap_or_else(|| panic!("no {kind} span of {service}: {chain}"))
}

fn cluster_ids(agent: &Agent) -> Vec<String> {
    let mut ids: Vec<String> = agent.get_json("/api/v1/clusters")["clusters"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|c| c["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

#[test]
fn spans_and_logs_sent_to_a_arrive_in_b_with_their_attributes_and_pattern_ids() {
    require_python_sdk();
    let b = Agent::start(&[]);
    let a = start_forwarding_agent(&address(&b, "otlp_grpc"), "");
    let trace_id = send_trace(&a);

    let in_a = eventually(PATIENCE, "the chain in A", || full_chain(&a, &trace_id));
    let a_clusters: Vec<String> = in_a["cluster_ids"]
        .as_array()
        .expect("cluster ids")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let in_b = eventually(PATIENCE, "the forwarded chain in B", || {
        full_chain(&b, &trace_id)
    });

    // Every span arrived with the attributes the SDK set.
    let orders = span(&in_b, "orders", "server");
    assert_eq!(
        attribute(orders, "http.response.status_code"),
        Some("502"),
        "{orders}"
    );
    assert_eq!(in_b["error_origin_span_id"], in_a["error_origin_span_id"]);
    // The failing span carries A's pattern ids.
    let payments = span(&in_b, "payments", "server");
    let forwarded_cluster = attribute(payments, "faultline.cluster_id")
        .unwrap_or_else(|| panic!("no faultline.cluster_id on the forwarded span: {payments}"));
    assert!(
        a_clusters.iter().any(|c| c == forwarded_cluster),
        "{forwarded_cluster} not among A's {a_clusters:?}"
    );
    let template = attribute(payments, "faultline.template_id").unwrap_or_default();
    assert_eq!(template.len(), 16, "template id on the span: {payments}");
    // The logs (the SDK's and the tailed JSON line) arrived tagged with A's pattern.
    let b_logs: Vec<&Value> = in_b["spans"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["logs"].as_array().into_iter().flatten())
        .collect();
    assert!(
        b_logs
            .iter()
            .filter(|l| l["cluster_id"].as_str() == Some(forwarded_cluster))
            .count()
            >= 2,
        "the SDK log and the tailed line, tagged {forwarded_cluster}: {b_logs:?}"
    );
    // Same records, same pattern ids on both nodes.
    let a_ids = cluster_ids(&a);
    eventually(PATIENCE, "B's patterns equal to A's", || {
        (cluster_ids(&b) == a_ids).then_some(())
    });
    // The pattern counters went up as OTLP metrics (B takes and counts metric points it does
    // not use), and nothing was dropped.
    eventually(PATIENCE, "pattern metrics in B", || {
        (b.store_metric("otlp_metric_points_dropped_total")? > 0.0).then_some(())
    });
    assert_eq!(
        a.store_metric("export_dropped_buffer_full_total"),
        Some(0.0)
    );
    assert_eq!(a.store_metric("export_dropped_rejected_total"), Some(0.0));
    let health = a.get_json("/api/v1/health");
    let detail = health["components"]["export"]["detail"]
        .as_str()
        .unwrap_or_default();
    assert!(detail.contains("spans"), "{health}");
}

#[test]
fn an_upstream_that_goes_away_gets_what_waited_once_it_is_back() {
    require_python_sdk();
    // B picks its port; its restart takes the same one back (held by B until just before).
    let b = Agent::start(&[]);
    let b_addr = b.otlp_grpc();
    let a = start_forwarding_agent(&b_addr, "");
    let first = send_trace(&a);
    eventually(PATIENCE, "the first trace in B", || full_chain(&b, &first));

    let b_dir = b.stop();
    let second = send_trace(&a);
    eventually(PATIENCE, "A noticing that B is gone", || {
        (a.store_metric("export_request_failures_total")? > 0.0).then_some(())
    });
    eventually(PATIENCE, "the second trace waiting in A's buffer", || {
        (a.store_metric("export_buffered_items")? > 0.0).then_some(())
    });

    let b = Agent::start_on_grpc(b_dir, &b_addr, &[]);
    let chain = eventually(PATIENCE, "the second trace in B after its restart", || {
        full_chain(&b, &second)
    });
    assert!(
        attribute(span(&chain, "payments", "server"), "faultline.cluster_id").is_some(),
        "{chain}"
    );
    // Retried within the buffer, nothing dropped.
    for reason in [
        "buffer_full",
        "rejected",
        "expired",
        "shutdown",
        "lost_at_restart",
    ] {
        assert_eq!(
            a.store_metric(&format!("export_dropped_{reason}_total")),
            Some(0.0),
            "{reason}"
        );
    }
}

/// OTLP/JSON: five spans, the last one failing.
fn trace_json(n: usize) -> String {
    let spans: Vec<Value> = (0..5)
        .map(|i| {
            serde_json::json!({
                "traceId": format!("{:032x}", n + 1),
                "spanId": format!("{:016x}", n * 8 + i + 1),
                "name": "GET /stock",
                "kind": 2,
                "startTimeUnixNano": "1700000000000000000",
                "endTimeUnixNano": "1700000000100000000",
                "attributes": [{"key": "http.route", "value": {"stringValue": "/stock"}}],
                "status": if i == 4 {
                    serde_json::json!({"code": 2, "message": "read: connection reset by peer"})
                } else {
                    serde_json::json!({})
                }
            })
        })
        .collect();
    serde_json::json!({
        "resourceSpans": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "inventory"}}
            ]},
            "scopeSpans": [{"spans": spans}]
        }]
    })
    .to_string()
}

#[test]
fn a_silent_upstream_never_slows_ingestion_and_drops_are_counted() {
    // Accepts connections (the kernel's backlog does) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let upstream = silent.local_addr().expect("addr").to_string();
    let a = start_forwarding_agent(&upstream, "buffer_bytes = 8192\n");
    let url = format!("http://{}/v1/traces", address(&a, "otlp_http"));
    let client = reqwest::blocking::Client::new();
    let requests = 200;
    for n in 0..requests {
        let response = client
            .post(&url)
            .header("content-type", "application/json")
            .body(trace_json(n))
            .send()
            .expect("POST /v1/traces");
        // Every request is taken: the receiver never waits for the upstream.
        assert_eq!(response.status(), 200, "request {n}");
    }
    assert_eq!(
        a.store_metric("otlp_spans_accepted_total"),
        Some((requests * 5) as f64)
    );
    let dropped = eventually(PATIENCE, "drops counted", || {
        a.store_metric("export_dropped_buffer_full_total")
            .filter(|&d| d > 0.0)
    });
    assert!(dropped <= (requests * 5) as f64);
    let health = a.get_json("/api/v1/health");
    let export = &health["components"]["export"];
    eventually(PATIENCE, "health showing the drops", || {
        let health = a.get_json("/api/v1/health");
        let detail = health["components"]["export"]["detail"]
            .as_str()?
            .to_owned();
        detail.contains("buffer_full").then_some(())
    });
    assert!(export.is_object(), "{health}");
    drop(silent);
}

/// One failure of each kind, `i` varying the parameters (addresses, ports, ids).
fn failure(kind: usize, i: usize) -> String {
    match kind {
        0 => format!(
            "read tcp 10.0.{i}.7:{}->10.0.0.9:5432: read: connection reset by peer",
            41000 + i
        ),
        1 => format!("Post \"http://inventory:8080/reserve/{i}\": EOF"),
        2 => format!("dial tcp 10.0.{i}.5:8080: i/o timeout"),
        _ => "context deadline exceeded".to_owned(),
    }
}

/// The pattern ids of `agent` once it counted `expected` failures.
fn settled_ids(agent: &Agent, expected: u64) -> Vec<String> {
    eventually(PATIENCE, "all failures counted", || {
        let clusters = agent.get_json("/api/v1/clusters");
        let total: u64 = clusters["clusters"]
            .as_array()?
            .iter()
            .filter_map(|c| c["total_count"].as_u64())
            .sum();
        (total == expected).then(|| cluster_ids(agent))
    })
}

#[test]
fn two_agents_fed_the_same_failures_differently_give_the_same_pattern_ids() {
    const KINDS: usize = 4;
    const EACH: usize = 5;
    // Node 1: service "payments", zap-style JSON, the failure in the `error` field under a
    // message of its own; kinds arrive in order.
    let one = Agent::start(&[]);
    let mut lines = String::new();
    for kind in 0..KINDS {
        for i in 0..EACH {
            lines.push_str(
                &serde_json::json!({
                    "level": "error",
                    "logger": "payments",
                    "msg": "charge failed",
                    "error": failure(kind, i),
                })
                .to_string(),
            );
            lines.push('\n');
        }
    }
    std::fs::write(one.log_path("payments.log"), lines).expect("write payments.log");

    // Node 2: service "orders", logrus-style logfmt and slog-style JSON alternating, the
    // failure wrapped by the caller (`calling payments: ...`), kinds in reverse order and the
    // occurrences interleaved.
    let two = Agent::start(&[]);
    let mut lines = String::new();
    for i in 0..EACH {
        for kind in (0..KINDS).rev() {
            let error = format!("calling payments: {}", failure(kind, i + 100));
            if (i + kind) % 2 == 0 {
                lines.push_str(&format!(
                    "level=error msg=\"payment call failed\" service=orders err={}\n",
                    serde_json::Value::String(error)
                ));
            } else {
                lines.push_str(
                    &serde_json::json!({
                        "level": "ERROR",
                        "msg": "create order",
                        "service": "orders",
                        "err": error,
                    })
                    .to_string(),
                );
                lines.push('\n');
            }
        }
    }
    std::fs::write(two.log_path("orders.log"), lines).expect("write orders.log");

    let expected = (KINDS * EACH) as u64;
    let ids_one = settled_ids(&one, expected);
    let ids_two = settled_ids(&two, expected);
    assert_eq!(
        ids_one.len(),
        KINDS,
        "one pattern per kind on node 1: {ids_one:?}"
    );
    assert_eq!(
        ids_one, ids_two,
        "the same failures must have the same pattern ids on every node"
    );
}

#[test]
fn what_a_kill_left_in_the_buffer_is_counted_as_lost_at_the_next_start() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let upstream = silent.local_addr().expect("addr").to_string();
    // No periodic pattern counters during the test: the buffer holds only what was sent.
    let a = start_forwarding_agent(&upstream, "interval_ms = 600000\n");
    let url = format!("http://{}/v1/traces", address(&a, "otlp_http"));
    let client = reqwest::blocking::Client::new();
    for n in 0..3 {
        let response = client
            .post(&url)
            .header("content-type", "application/json")
            .body(trace_json(n))
            .send()
            .expect("POST /v1/traces");
        assert_eq!(response.status(), 200);
    }
    let marker = a.data_dir.join("export-buffer.json");
    eventually(PATIENCE, "the buffer's 15 spans written down", || {
        let text = std::fs::read_to_string(&marker).ok()?;
        let items = serde_json::from_str::<Value>(&text).ok()?["items"].as_u64()?;
        (items == 15).then_some(())
    });
    let dir = a.kill9();
    let config = dir.path().join("a.toml").display().to_string();
    let again = Agent::start_in(dir, &["--config", &config]);
    assert_eq!(
        again.store_metric("export_dropped_lost_at_restart_total"),
        Some(15.0)
    );
    drop(silent);
}

/// A forwards over OTLP/HTTP to a B that serves its receivers over TLS and asks for a bearer
/// token (`[otlp] token`, `[otlp.tls]`): A checks B's certificate against its own CA file
/// (`export.ca_file`, the self-signed certificate here) and sends the token as a header
/// (`[export.headers]`). Every span A acknowledged arrives in B exactly once, and B refused
/// nothing for a missing token.
#[test]
fn forwarding_over_https_with_a_token_delivers_every_acknowledged_span_exactly_once() {
    const TOKEN: &str = "upstream-token-0123456789abcdef";
    let b_dir = tempfile::tempdir().expect("tempdir");
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("a self-signed certificate");
    let cert = b_dir.path().join("cert.pem");
    let key = b_dir.path().join("key.pem");
    std::fs::write(&cert, made.cert.pem()).expect("cert");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("key");
    let b_config = b_dir.path().join("b.toml");
    std::fs::write(
        &b_config,
        format!(
            "[otlp]\ntoken = \"{TOKEN}\"\n[otlp.tls]\ncert_file = {:?}\nkey_file = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        ),
    )
    .expect("write B's config");
    let b_config = b_config.display().to_string();
    let b = Agent::start_in(b_dir, &["--config", &b_config]);
    let upstream = address(&b, "otlp_http");
    let a = start_forwarding_agent_to(
        &format!("https://{upstream}"),
        &format!(
            "protocol = \"http/protobuf\"\nca_file = {:?}\n\
             [export.headers]\nauthorization = \"Bearer {TOKEN}\"\n",
            cert.display().to_string()
        ),
    );

    let url = format!("http://{}/v1/traces", address(&a, "otlp_http"));
    let client = reqwest::blocking::Client::new();
    let requests = 20;
    for n in 0..requests {
        let response = client
            .post(&url)
            .header("content-type", "application/json")
            .body(trace_json(n))
            .send()
            .expect("POST /v1/traces");
        assert_eq!(response.status(), 200, "request {n} acknowledged by A");
    }
    let spans = (requests * 5) as f64;
    eventually(PATIENCE, "every acknowledged span in B", || {
        (b.store_metric("otlp_spans_accepted_total")? >= spans).then_some(())
    });
    for n in 0..requests {
        let trace_id = format!("{:032x}", n + 1);
        let chain = eventually(PATIENCE, &format!("trace {trace_id} in B"), || {
            let (status, body) = b.get(&format!("/api/v1/traces/{trace_id}"));
            (status == 200)
                .then(|| serde_json::from_str::<Value>(&body).ok())
                .flatten()
        });
        assert_eq!(
            chain["spans"].as_array().map(Vec::len),
            Some(5),
            "trace {trace_id} in B: {chain}"
        );
    }
    // Exactly once: A's export counted every span sent and B took no more than were
    // acknowledged (a retried request applied twice would count its spans twice).
    eventually(PATIENCE, "A's export settled", || {
        (a.store_metric("export_buffered_items")? == 0.0).then_some(())
    });
    assert_eq!(b.store_metric("otlp_spans_accepted_total"), Some(spans));
    assert_eq!(
        b.store_metric("otlp_requests_unauthenticated_total"),
        Some(0.0)
    );
    assert_eq!(
        b.store_metric("otlp_tls_handshakes_failed_total"),
        Some(0.0)
    );
    for reason in ["buffer_full", "rejected", "expired"] {
        assert_eq!(
            a.store_metric(&format!("export_dropped_{reason}_total")),
            Some(0.0),
            "{reason}"
        );
    }
}
