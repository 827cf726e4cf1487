//! `faultline run` as an operator meets it: it starts, answers health, honours the token,
//! writes JSON logs when asked, and stops cleanly on SIGTERM.

use std::time::{Duration, Instant};

use crate::support::{http_get, http_get_with, Agent};

#[test]
fn health_answers_with_version_uptime_and_bound_addresses() {
    let agent = Agent::start(&[]);
    let health = agent.get_json("/api/v1/health");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert!(health["uptime_seconds"].as_f64().is_some());
    let web = &health["components"]["web"];
    assert_eq!(web["state"], "running");
    assert_eq!(web["address"], agent.base.trim_start_matches("http://"));
    let (status, body) = agent.get("/api/v1/no-such-thing");
    assert_eq!(status, 404);
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["code"], "not_found");
    assert_eq!(error["status"], 404);
}

#[test]
fn sigterm_stops_the_agent_cleanly_within_five_seconds() {
    let mut agent = Agent::start(&[]);
    let started = Instant::now();
    let status = agent.signal_and_wait(libc::SIGTERM, Duration::from_secs(10));
    assert!(status.success(), "{status}: {}", agent.stderr());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        agent.stderr().contains("shutting down"),
        "{}",
        agent.stderr()
    );
    assert!(
        http_get(&format!("{}/api/v1/health", agent.base)).is_err(),
        "still answering"
    );
}

#[test]
fn sigint_stops_the_agent_too() {
    let mut agent = Agent::start(&[]);
    let status = agent.signal_and_wait(libc::SIGINT, Duration::from_secs(10));
    assert!(status.success(), "{status}: {}", agent.stderr());
}

#[test]
fn a_token_protects_the_api_and_a_wrong_one_is_refused() {
    let agent = Agent::start(&["--token", "correct-horse-battery"]);
    let url = format!("{}/api/v1/health", agent.base);
    assert_eq!(http_get(&url).unwrap().0, 401);
    assert_eq!(
        http_get_with(&url, Some("correct-horse-batterx"))
            .unwrap()
            .0,
        401
    );
    let (status, body) = http_get_with(&url, Some("correct-horse-battery")).unwrap();
    assert_eq!(status, 200, "{body}");
}

#[test]
fn json_log_format_writes_one_json_object_per_line() {
    let agent = Agent::start(&["--log-format", "json"]);
    // Health can answer before the start-up lines are written: wait for them (bounded), and
    // judge only complete lines (the last one may be half written).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stderr = agent.stderr();
    while !stderr.contains('\n') && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        stderr = agent.stderr();
    }
    let complete = stderr.rfind('\n').map_or("", |end| &stderr[..end]);
    let lines: Vec<&str> = complete.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no log lines");
    for line in lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(value.get("level").is_some(), "{line}");
    }
}

/// The README's promise: `faultline run` with no config and no flags works, on the default
/// dashboard port. Skipped (loudly) only when something else already holds port 7070.
#[test]
fn run_with_no_flags_serves_health_on_the_default_port() {
    if std::net::TcpListener::bind("127.0.0.1:7070").is_err() {
        eprintln!("SKIPPED: 127.0.0.1:7070 is in use by another process");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let stderr_path = dir.path().join("stderr");
    let mut child = std::process::Command::new(crate::support::binary())
        .arg("run")
        .env("HOME", dir.path())
        .env_remove("XDG_STATE_HOME")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        if let Ok((200, body)) = http_get("http://127.0.0.1:7070/api/v1/health") {
            break body;
        }
        if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "no health on :7070: {}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success());
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["components"]["web"]["address"], "127.0.0.1:7070");
}

/// With `telemetry.otlp_endpoint` set, the agent's own spans reach an OTLP receiver — here a
/// second faultline, which then lists a trace of service `faultline`.
#[test]
fn the_agents_own_spans_are_exported_when_an_endpoint_is_configured() {
    let receiver = Agent::start(&[]);
    let health = receiver.get_json("/api/v1/health");
    let otlp_http = health["components"]["otlp_http"]["address"]
        .as_str()
        .expect("address")
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("exporting.toml");
    std::fs::write(
        &config,
        format!("[telemetry]\notlp_endpoint = \"http://{otlp_http}\"\n"),
    )
    .unwrap();
    let mut exporter = Agent::start(&["--config", config.to_str().unwrap()]);
    // The state is committed at start and at shutdown: at least two spans, flushed on exit.
    let status = exporter.signal_and_wait(libc::SIGTERM, Duration::from_secs(10));
    assert!(status.success(), "{}", exporter.stderr());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = receiver.get_json("/api/v1/traces?service=faultline&limit=10");
        let traces = listed["traces"].as_array().cloned().unwrap_or_default();
        if let Some(trace) = traces.first() {
            assert_eq!(trace["root_name"], "faultline.state_commit", "{trace}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no span of service faultline arrived: {listed}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
