//! One count per failure and the service a failure lives in, through the real binary: failed
//! requests are sent by the official OpenTelemetry Python SDK (spans over OTLP/HTTP) and
//! written as JSON lines to a tailed file, each failure reported several times as real
//! services report it (`tests/python/send_failures.py`).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::Agent;

/// Polls `check` every 100 ms until it returns `Some`, for at most `limit`.
fn eventually<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn require_python_sdk() {
    let present = std::process::Command::new("python3")
        .args([
            "-c",
            "import opentelemetry.sdk, opentelemetry.exporter.otlp",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        present,
        "the OpenTelemetry Python SDK is missing: run ./scripts/test.sh, which installs it"
    );
}

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
}
