//! One count per failure and the service a failure lives in, through the real binary: failed
//! requests are sent by the official OpenTelemetry Python SDK (spans over OTLP/HTTP) and
//! written as JSON lines to a tailed file, each failure reported several times as real
//! services report it (`tests/python/send_failures.py`).

use std::time::Duration;

use serde_json::Value;

use crate::support::{eventually, require_python_sdk, Agent};

/// Runs `send_failures.py` against the agent; returns its JSON answer.
fn send(agent: &Agent, scenario: &str, requests: usize, port: u16) -> Value {
    require_python_sdk();
    let health = agent.get_json("/api/v1/health");
    let otlp_http = health["components"]["otlp_http"]["address"]
        .as_str()
        .expect("otlp_http address")
        .to_owned();
    let log = agent.log_path("services.log");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/python/send_failures.py"
    );
    let out = std::process::Command::new("python3")
        .args([
            script,
            "--endpoint",
            &otlp_http,
            "--log-file",
            &log.display().to_string(),
            "--scenario",
            scenario,
            "--requests",
            &requests.to_string(),
            "--port",
            &port.to_string(),
        ])
        .output()
        .expect("run send_failures.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

/// The detail of the cluster whose canonical template contains `text`, once there is one.
fn cluster_detail(agent: &Agent, text: &str) -> Option<Value> {
    let page = agent.get_json("/api/v1/clusters?limit=100");
    let id = page["clusters"].as_array()?.iter().find(|c| {
        c["canonical_template"]
            .as_str()
            .is_some_and(|t| t.contains(text))
    })?["id"]
        .as_str()?
        .to_owned();
    Some(agent.get_json(&format!("/api/v1/clusters/{id}")))
}

#[test]
fn a_failure_reported_by_two_log_lines_and_two_error_spans_counts_once() {
    let agent = Agent::start(&[]);
    let requests = 3;
    // An access line of a failed request without an error text: a failed request, not an
    // error event (it made a NEW pattern of its own in every failing scenario).
    std::fs::write(
        agent.log_path("access.log"),
        "{\"level\":\"warn\",\"msg\":\"request completed\",\"service\":\"frontend\",\"status\":500}\n",
    )
    .expect("write the access line");
    send(&agent, "echoes", requests, 18_081);
    // Every report arrived: two log lines and two error spans per failed request.
    let detail = eventually(
        Duration::from_secs(20),
        "four reports of each failed request",
        || {
            let detail = cluster_detail(&agent, "connection reset by peer")?;
            (detail["reports"].as_u64()? >= 4 * requests as u64).then_some(detail)
        },
    );
    let summary = &detail["summary"];
    assert_eq!(summary["total_count"], requests, "{detail:#}");
    assert_eq!(detail["reports"], 4 * requests, "{detail:#}");
    let seen_in: Vec<(String, u64)> = detail["seen_in"]
        .as_array()
        .expect("seen_in")
        .iter()
        .map(|s| {
            (
                s["source"].as_str().unwrap_or_default().to_owned(),
                s["occurrences"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        seen_in,
        [
            ("file_log".to_owned(), requests as u64),
            ("span".to_owned(), requests as u64)
        ],
        "{detail:#}"
    );
    // Both services saw each failure once: orders where it happened, frontend its echo.
    for service in detail["service_occurrences"].as_array().expect("services") {
        assert_eq!(service["count"], requests, "{detail:#}");
    }
    assert_eq!(
        detail["service_occurrences"].as_array().map(Vec::len),
        Some(2)
    );

    // The failed SERVER span without a message (`HTTP 500 from GET /checkout`) is an echo of
    // the reset in its trace: it counts with the failure above, not as a pattern of its own
    // (and never as `GET /checkout`); the access line made no pattern. Every report arrived
    // (waited for above), so the list is complete.
    let page = agent.get_json("/api/v1/clusters?limit=100");
    let rows = page["clusters"].as_array().cloned().unwrap_or_default();
    assert!(!rows.is_empty(), "{page:#}");
    for row in &rows {
        let text = row["canonical_template"].as_str().unwrap_or_default();
        assert_ne!(text, "GET /checkout", "{rows:#?}");
        assert!(!text.contains("from GET /checkout"), "{rows:#?}");
        assert!(!text.contains("request completed"), "{rows:#?}");
    }
}

/// The call chain of `trace_id` once it has a culprit.
fn chain_with_culprit(agent: &Agent, trace_id: &str) -> Value {
    eventually(
        Duration::from_secs(20),
        "the trace with its culprit",
        || {
            let (status, body) = agent.get(&format!("/api/v1/traces/{trace_id}"));
            let chain: Value = serde_json::from_str(&body).ok()?;
            (status == 200 && chain["culprit"].is_object()).then_some(chain)
        },
    )
}

/// Runs a scenario in which orders closes the connection without logging anything; checks
/// that the trace page and the pattern page both name orders, seen by frontend.
fn callee_that_closes_is_the_culprit(scenario: &str, link: &str) {
    let agent = Agent::start(&[]);
    let requests = 3;
    let port = 18_082;
    let sent = send(&agent, scenario, requests, port);
    let traces: Vec<String> = sent["traces"]
        .as_array()
        .expect("trace ids")
        .iter()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    assert_eq!(traces.len(), requests);

    let chain = chain_with_culprit(&agent, &traces[0]);
    let culprit = &chain["culprit"];
    assert_eq!(culprit["service"], "orders", "{chain:#}");
    assert_eq!(culprit["role"], "callee", "{chain:#}");
    assert_eq!(culprit["fault"], "eof", "{chain:#}");
    assert_eq!(culprit["seen_by"][0], "frontend", "{chain:#}");
    assert_eq!(culprit["edge"]["link"], link, "{chain:#}");
    assert_eq!(
        culprit["edge"]["address"],
        format!("127.0.0.1:{port}"),
        "{chain:#}"
    );
    // The trace's error origin is the verdict's span (one decision, the diagnosis crate's):
    // the callee's SERVER span, not the caller's CLIENT span; with no callee span, the
    // caller's span that saw it, the culprit still the callee.
    let origin = chain["error_origin_span_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no error origin: {chain:#}"));
    assert_eq!(culprit["span_id"].as_str(), Some(origin), "{chain:#}");
    let span = chain["spans"]
        .as_array()
        .and_then(|spans| spans.iter().find(|s| s["span_id"] == origin))
        .expect("the origin span is in the chain");
    if link == "child_span" {
        assert_eq!(span["service"], "orders", "{chain:#}");
        assert_eq!(span["kind"], "server", "{chain:#}");
    } else {
        assert_eq!(span["service"], "frontend", "{chain:#}");
        assert_eq!(span["kind"], "client", "{chain:#}");
    }

    // The pattern: every trace agrees, and the page says so in one line.
    let detail = eventually(
        Duration::from_secs(20),
        "the EOF pattern's culprit over all its traces",
        || {
            let detail = cluster_detail(&agent, "EOF")?;
            (detail["culprit"]["traces_total"].as_u64()? == requests as u64).then_some(detail)
        },
    );
    let culprit = &detail["culprit"];
    assert_eq!(culprit["service"], "orders", "{detail:#}");
    assert_eq!(culprit["traces_agreeing"], requests, "{detail:#}");
    let headline = culprit["headline"].as_str().unwrap_or_default();
    assert!(
        headline.starts_with("starts in orders (seen by frontend, frontend → orders"),
        "{headline}"
    );
    assert!(headline.ends_with("in 3 of 3 traces"), "{headline}");
    assert!(
        !culprit["evidence"].as_array().expect("evidence").is_empty(),
        "{detail:#}"
    );
    // The overview's list row of the emerging pattern carries it too.
    let page = agent.get_json("/api/v1/clusters?limit=100");
    let row = page["clusters"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["id"] == detail["summary"]["id"]))
        .cloned()
        .expect("the pattern is listed");
    if row["emergence"].is_object() {
        assert_eq!(row["culprit"]["service"], "orders", "{row:#}");
    }
}

#[test]
fn a_callee_that_closes_the_connection_is_the_culprit_not_its_caller() {
    callee_that_closes_is_the_culprit("callee-closes", "child_span");
}

#[test]
fn the_address_in_the_error_finds_the_callee_when_nothing_else_links_them() {
    callee_that_closes_is_the_culprit("callee-closes-unlinked", "address_in_text");
}
