//! The whole agent at work: lines written to a tailed file become error patterns in the API,
//! counts stay exact across rotations and restarts (clean and `kill -9`), and a trace sent by
//! a real OpenTelemetry SDK is joined with the log line its service wrote.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{eventually, send_trace, Agent};

fn wait_for_records(agent: &Agent, expected: u64, limit: Duration) {
    let started = Instant::now();
    loop {
        let seen = agent.store_metric("log_records_total").unwrap_or(0.0) as u64;
        if seen == expected {
            // Stay for a moment: a count that overshoots later is a duplicate.
            std::thread::sleep(Duration::from_millis(700));
            let again = agent.store_metric("log_records_total").unwrap_or(0.0) as u64;
            assert_eq!(again, expected, "records counted twice");
            return;
        }
        assert!(
            seen <= expected,
            "more records ({seen}) than lines written ({expected})"
        );
        assert!(
            started.elapsed() < limit,
            "records: {seen} of {expected} after {limit:?}; stderr:\n{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn append(path: &Path, lines: &[String]) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log");
    for line in lines {
        writeln!(file, "{line}").expect("write log");
    }
}

fn zap_error(i: usize, error: &str) -> String {
    format!(
        r#"{{"level":"error","ts":1710145337.{i:06},"caller":"api/users.go:{i}","msg":"request failed","service":"user-svc","error":"{error}"}}"#
    )
}

fn clusters(agent: &Agent) -> Vec<Value> {
    let page = agent.get_json("/api/v1/clusters?limit=100");
    page["clusters"].as_array().cloned().unwrap_or_default()
}

#[test]
fn error_lines_written_to_a_tailed_file_become_patterns_in_the_api() {
    let agent = Agent::start(&[]);
    let log = agent.log_path("user-svc.log");
    let mut lines = Vec::new();
    for i in 0..40 {
        lines.push(zap_error(
            i,
            &format!("GetUser({i}): read tcp 10.0.0.{}:{}->10.0.1.9:5432: read: connection reset by peer", i % 7, 40000 + i),
        ));
        lines.push(zap_error(
            i,
            &format!("lookup users-db-{} on 127.0.0.53:53: no such host", i % 3),
        ));
        lines.push(format!(
            r#"{{"level":"info","ts":1710145337.1,"msg":"request served","status":200,"id":{i}}}"#
        ));
    }
    append(&log, &lines);
    wait_for_records(&agent, 120, Duration::from_secs(20));
    let rows = eventually(Duration::from_secs(10), "two patterns of 40 each", || {
        let rows = clusters(&agent);
        let mut counts: Vec<u64> = rows
            .iter()
            .filter_map(|r| r["total_count"].as_u64())
            .collect();
        counts.sort_unstable();
        (counts == [40, 40]).then_some(rows)
    });
    let templates: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["canonical_template"].as_str())
        .collect();
    assert!(
        templates
            .iter()
            .any(|t| t.contains("connection reset by peer")),
        "{templates:?}"
    );
    assert!(
        templates.iter().any(|t| t.contains("no such host")),
        "{templates:?}"
    );
    // Issue #15: a pattern's name shows its varying parts as typed placeholders, and
    // `/metrics` labels the pattern with the very name the API (and so the dashboard) shows.
    let (_, metrics) = agent.get("/metrics");
    for row in &rows {
        assert_eq!(row["services"], serde_json::json!(["user-svc"]), "{row}");
        let id = row["id"].as_str().expect("id");
        let detail = agent.get_json(&format!("/api/v1/clusters/{id}"));
        assert!(
            !detail["samples"].as_array().expect("samples").is_empty(),
            "{detail}"
        );
        let name = row["canonical_template"].as_str().expect("name");
        assert!(!name.contains("<*>"), "every part here has a type: {name}");
        assert_eq!(detail["summary"]["canonical_template"], name, "{detail}");
        let label = name.replace('\\', "\\\\").replace('"', "\\\"");
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("faultline_cluster_info{")
                    && l.contains(&format!("cluster_id=\"{id}\""))
                    && l.contains(&format!("template=\"{label}\""))),
            "{name} not on /metrics: {metrics}"
        );
    }
    let reset = templates
        .iter()
        .find(|t| t.contains("connection reset by peer"))
        .expect("reset pattern");
    assert!(reset.contains("<ip:port>-><ip:port>"), "{reset}");
    assert_eq!(agent.store_metric("error_records_total"), Some(80.0));
}

#[test]
fn counts_and_pattern_ids_survive_a_clean_restart() {
    let agent = Agent::start(&[]);
    let log = agent.log_path("api.log");
    let lines: Vec<String> = (0..30)
        .map(|i| {
            zap_error(
                i,
                &format!("dial tcp 10.1.2.{i}:8080: connect: connection refused"),
            )
        })
        .collect();
    append(&log, &lines);
    wait_for_records(&agent, 30, Duration::from_secs(20));
    let before = eventually(Duration::from_secs(10), "one pattern", || {
        let rows = clusters(&agent);
        (rows.len() == 1 && rows[0]["total_count"] == 30).then_some(rows)
    });
    let dir = agent.stop();

    let agent = Agent::start_in(dir, &[]);
    append(&log, &lines[..10]);
    wait_for_records(&agent, 40, Duration::from_secs(20));
    let after = eventually(
        Duration::from_secs(10),
        "the same pattern, counted on",
        || {
            let rows = clusters(&agent);
            (rows.len() == 1 && rows[0]["total_count"] == 40).then_some(rows)
        },
    );
    assert_eq!(
        before[0]["id"], after[0]["id"],
        "pattern id changed across a restart"
    );
    assert_eq!(
        before[0]["first_seen_unix_ms"],
        after[0]["first_seen_unix_ms"]
    );
}

#[test]
fn kill_dash_nine_mid_stream_loses_and_repeats_no_line() {
    let agent = Agent::start(&[]);
    let log = agent.log_path("orders.log");
    let mut written = 0usize;
    let batch = |from: usize, n: usize| -> Vec<String> {
        (from..from + n)
            .map(|i| format!("level=error msg=\"payment failed\" err=\"i/o timeout\" n={i}"))
            .collect()
    };
    for _ in 0..20 {
        append(&log, &batch(written, 250));
        written += 250;
        std::thread::sleep(Duration::from_millis(40));
    }
    // Let at least one state commit happen with part of the file read (polled, not slept:
    // the commit interval is configuration), then kill hard while more lines arrive.
    let commits = agent.store_metric("state_commits_total").unwrap_or(0.0);
    eventually(
        Duration::from_secs(20),
        "a commit after the first lines",
        || (agent.store_metric("state_commits_total").unwrap_or(0.0) > commits).then_some(()),
    );
    append(&log, &batch(written, 3000));
    written += 3000;
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(agent.pid(), libc::SIGKILL) };
    let mut agent = agent;
    let status = agent.signal_and_wait(0, Duration::from_secs(10));
    assert!(!status.success(), "the agent survived SIGKILL");
    let dir = std::mem::replace(&mut agent.dir, tempfile::tempdir().unwrap());
    drop(agent);

    append(&log, &batch(written, 1000));
    written += 1000;
    let agent = Agent::start_in(dir, &[]);
    wait_for_records(&agent, written as u64, Duration::from_secs(30));
    assert_eq!(
        agent.store_metric("error_records_total"),
        Some(written as f64)
    );
}

#[test]
fn rotations_under_a_fast_writer_lose_and_repeat_no_line() {
    let agent = Agent::start(&[]);
    let log = agent.log_path("gateway.log");
    let rotated = agent.path().join("logs").join("gateway.log.1");
    let total = 30_000usize;
    let writer = {
        let log = log.clone();
        let rotated = rotated.clone();
        std::thread::spawn(move || {
            let mut file = File::create(&log).expect("create");
            let started = Instant::now();
            for i in 0..total {
                writeln!(
                    file,
                    "level=warn msg=\"slow upstream\" upstream=10.0.0.{} n={i}",
                    i % 250
                )
                .expect("write");
                if i > 0 && i % 10_000 == 0 {
                    if (i / 10_000) % 2 == 1 {
                        // logrotate's default: rename, then the service reopens a new file.
                        let _ = fs::remove_file(&rotated);
                        fs::rename(&log, &rotated).expect("rename");
                        file = File::create(&log).expect("recreate");
                    } else {
                        // copytruncate: copy the content to a new file (logrotate shifts the
                        // older copy away first), then truncate the file in place.
                        let _ = fs::remove_file(&rotated);
                        fs::copy(&log, &rotated).expect("copy");
                        file.set_len(0).expect("truncate");
                        file = OpenOptions::new().append(true).open(&log).expect("reopen");
                    }
                }
                // About 10,000 lines per second.
                if i % 100 == 99 {
                    let due = Duration::from_micros((i as u64 + 1) * 100);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
            }
        })
    };
    writer.join().expect("writer");
    wait_for_records(&agent, total as u64, Duration::from_secs(40));
}

#[test]
fn a_python_sdk_trace_is_joined_with_the_log_line_of_the_failing_service() {
    let agent = Agent::start(&[]);
    let health = agent.get_json("/api/v1/health");
    let otlp_http = health["components"]["otlp_http"]["address"]
        .as_str()
        .expect("otlp_http address")
        .to_owned();
    let trace_id = send_trace("http", &otlp_http, &agent.log_path("payments.log"));

    let chain = eventually(
        Duration::from_secs(15),
        "the chain with the file log attached",
        || {
            let (status, body) = agent.get(&format!("/api/v1/traces/{trace_id}"));
            if status != 200 {
                return None;
            }
            let chain: Value = serde_json::from_str(&body).ok()?;
            let spans = chain["spans"].as_array()?;
            let logs: usize = spans
                .iter()
                .map(|s| s["logs"].as_array().map_or(0, Vec::len))
                .sum();
            (spans.len() >= 3 && logs >= 1 && !chain["cluster_ids"].as_array()?.is_empty())
                .then_some(chain)
        },
    );
    let spans = chain["spans"].as_array().unwrap();
    let origin = chain["error_origin_span_id"]
        .as_str()
        .expect("an error origin");
    let origin_span = spans
        .iter()
        .find(|s| s["span_id"] == origin)
        .expect("origin span in the chain");
    assert_eq!(origin_span["service"], "payments", "{chain}");
    let services: Vec<&str> = spans.iter().filter_map(|s| s["service"].as_str()).collect();
    for service in ["frontend", "orders", "payments"] {
        assert!(services.contains(&service), "{services:?}");
    }
    let payments_logs: Vec<&Value> = spans
        .iter()
        .filter(|s| s["service"] == "payments")
        .flat_map(|s| s["logs"].as_array().into_iter().flatten())
        .collect();
    assert!(
        !payments_logs.is_empty(),
        "no log under a payments span: {chain}"
    );

    let cluster = chain["cluster_ids"][0].as_str().unwrap().to_owned();
    let listed = agent.get_json(&format!("/api/v1/traces?cluster={cluster}"));
    let ids: Vec<&str> = listed["traces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["trace_id"].as_str())
        .collect();
    assert!(
        ids.contains(&trace_id.as_str()),
        "trace not listed under its cluster: {listed}"
    );
}

#[test]
fn a_renamed_pattern_answers_to_its_old_id_also_after_a_restart() {
    let agent = Agent::start(&[]);
    let log = agent.log_path("api.log");
    let detailed =
        "call user: context deadline exceeded (Client.Timeout exceeded while awaiting headers)";
    // The first line is logged in a trace: the trace store tags it with the pattern's first id.
    let traced = "4bf92f3577b34da6a3ce929d0e0e4736";
    append(
        &log,
        &[zap_error(1, detailed).replacen('{', &format!(r#"{{"trace_id":"{traced}","#), 1)],
    );
    wait_for_records(&agent, 1, Duration::from_secs(20));
    let old = eventually(Duration::from_secs(10), "one pattern", || {
        let rows = clusters(&agent);
        (rows.len() == 1).then(|| rows[0]["id"].as_str().map(str::to_owned))?
    });
    // The plain wording of the same kind: the pattern takes its name from it at the next
    // maintenance, whatever came first, and the link to the old id keeps working.
    append(
        &log,
        &[zap_error(2, "call user: context deadline exceeded")],
    );
    wait_for_records(&agent, 2, Duration::from_secs(20));
    let new = eventually(Duration::from_secs(20), "the pattern renamed", || {
        let rows = clusters(&agent);
        let id = rows.first()?["id"].as_str()?.to_owned();
        (rows.len() == 1 && rows[0]["total_count"] == 2 && id != old).then_some(id)
    });
    let (status, body) = agent.get(&format!("/api/v1/clusters/{old}"));
    assert_eq!(status, 200, "{body}");
    let detail: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(detail["summary"]["id"], new.as_str(), "{detail}");
    // A template's id (as exported in `faultline.template_id`) leads to its pattern too.
    let templates: Vec<String> = detail["templates"]
        .as_array()
        .expect("templates")
        .iter()
        .map(|t| t["id"].as_str().expect("template id").to_owned())
        .collect();
    for id in &templates {
        let by_template = agent.get_json(&format!("/api/v1/clusters/{id}"));
        assert_eq!(by_template["summary"]["id"], new.as_str(), "{by_template}");
    }
    // The trace tagged under the first id is listed by the pattern's trace filter, whichever
    // of its ids is asked.
    for asked in [&old, &new].into_iter().chain(&templates) {
        let listed = agent.get_json(&format!("/api/v1/traces?cluster={asked}"));
        let ids: Vec<&str> = listed["traces"]
            .as_array()
            .expect("traces")
            .iter()
            .filter_map(|t| t["trace_id"].as_str())
            .collect();
        assert_eq!(ids, [traced], "asked as {asked}: {listed}");
    }

    let dir = agent.stop();
    let agent = Agent::start_in(dir, &[]);
    let detail = agent.get_json(&format!("/api/v1/clusters/{old}"));
    assert_eq!(detail["summary"]["id"], new.as_str(), "{detail}");
    assert!(
        !agent.stderr().contains("migrated"),
        "a current-format state needs no migration: {}",
        agent.stderr()
    );

    // The same state as the previous version wrote it: cluster store format 1, the pattern
    // named after its oldest root, no aliases. The agent migrates it, says so, and the id
    // format 1 gave keeps answering.
    let data_dir = agent.data_dir.clone();
    let dir = agent.stop();
    let path = data_dir.join("state.json");
    let mut state: Value =
        serde_json::from_str(&fs::read_to_string(&path).expect("state written")).expect("json");
    let store = &mut state["clustering"];
    let oldest = store["roots"]
        .as_array()
        .expect("roots")
        .iter()
        .position(|r| r["text"].as_str().is_some_and(|t| t.ends_with("headers)")))
        .expect("the detailed root is stored");
    store["version"] = "V1".into();
    store["canonical"] = serde_json::json!([oldest]);
    store
        .as_object_mut()
        .expect("object")
        .remove("cluster_aliases");
    fs::write(&path, serde_json::to_vec(&state).expect("json")).expect("state rewritten");
    let agent = Agent::start_in(dir, &[]);
    let detail = agent.get_json(&format!("/api/v1/clusters/{old}"));
    assert_eq!(detail["summary"]["id"], new.as_str(), "{detail}");
    assert_eq!(detail["summary"]["total_count"], 2, "{detail}");
    assert!(
        agent
            .stderr()
            .contains("cluster store migrated from format 1 to format 2: 1 pattern ids changed"),
        "the migration is said: {}",
        agent.stderr()
    );
}
