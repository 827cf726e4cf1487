//! The REST API against a live router over fixture views: filters, paging, the one error
//! shape, the OpenAPI document, `/metrics`, token auth and the live-update stream.

mod fixture;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fixture::*;
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::Value;

fn incident() -> (SocketAddr, Arc<FixtureStore>, Incident) {
    let store = Arc::new(FixtureStore::default());
    let incident = load_incident(&store, now_ms());
    let addr = serve(store.views(), None);
    (addr, store, incident)
}

fn get(addr: SocketAddr, path: &str) -> (StatusCode, Value) {
    let response = Client::new()
        .get(format!("http://{addr}{path}"))
        .send()
        .unwrap();
    let status = response.status();
    (status, response.json().unwrap_or(Value::Null))
}

fn ids(page: &Value) -> Vec<String> {
    page["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn cluster_list_puts_emerging_patterns_first_and_filters() {
    let (addr, _store, incident) = incident();
    let (status, page) = get(addr, "/api/v1/clusters");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["total"], 4);
    // Highest emergence score first: the connection-reset storm.
    assert_eq!(ids(&page)[0], incident.reset_cluster);
    assert!(page["clusters"][0]["emergence"]["reason"]
        .as_str()
        .unwrap()
        .contains("new pattern"));

    let (_, page) = get(addr, "/api/v1/clusters?emerging=true");
    assert_eq!(page["total"], 3);
    assert!(page["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| !c["emergence"].is_null()));

    let (_, page) = get(addr, "/api/v1/clusters?service=order-svc&sort=count");
    assert_eq!(page["total"], 2);
    let (_, page) = get(addr, "/api/v1/clusters?q=CONNECTION%20RESET");
    assert_eq!(ids(&page), vec![incident.reset_cluster.clone()]);
    // The refused pattern was last seen 20 minutes ago.
    let (_, page) = get(addr, "/api/v1/clusters?window=5m");
    assert_eq!(page["total"], 3);
    let (_, page) = get(addr, "/api/v1/clusters?window=1h");
    assert_eq!(page["total"], 4);
}

#[test]
fn cluster_pages_follow_the_cursor_without_overlap() {
    let (addr, _store, _) = incident();
    let mut seen = Vec::new();
    let mut path = "/api/v1/clusters?limit=3&sort=rate".to_owned();
    for _ in 0..10 {
        let (status, page) = get(addr, &path);
        assert_eq!(status, StatusCode::OK);
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/clusters?limit=3&sort=rate&cursor={cursor}"),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(seen.len(), 4);
    assert_eq!(unique.len(), 4);
}

#[test]
fn bad_parameters_are_400_and_name_the_parameter() {
    let (addr, _store, _) = incident();
    let long = "x".repeat(257);
    let too_long_q = format!("/api/v1/clusters?q={long}");
    let too_long_cluster = format!("/api/v1/traces?cluster={long}");
    for (path, name) in [
        (too_long_q.as_str(), "q"),
        (too_long_cluster.as_str(), "cluster"),
        ("/api/v1/clusters?window=", "window"),
        ("/api/v1/clusters?limit=1%2E5", "limit"),
        ("/api/v1/traces?limit=5&limit=5", "limit"),
        ("/api/v1/clusters?limit=0", "limit"),
        ("/api/v1/clusters?limit=abc", "limit"),
        ("/api/v1/clusters?window=5x", "window"),
        ("/api/v1/clusters?emerging=yes", "emerging"),
        ("/api/v1/clusters?sort=loudest", "sort"),
        ("/api/v1/clusters?cursor=-1", "cursor"),
        ("/api/v1/clusters?limit=1&limit=2", "limit"),
        ("/api/v1/traces?errors=1", "errors"),
        ("/api/v1/traces?limit=100000", "limit"),
        ("/api/v1/traces/not-a-trace-id", "trace_id"),
        ("/api/v1/traces/%FF", "trace_id"),
        ("/api/v1/clusters/%FF%FE", "id"),
        ("/api/v1/counters?resolution=hour", "resolution"),
        (
            "/api/v1/counters?resolution=minute&resolution=second",
            "resolution",
        ),
    ] {
        let (status, body) = get(addr, path);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(body["status"], 400, "{path}");
        assert_eq!(body["code"], "bad_parameter", "{path}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(&format!("`{name}`")), "{path}: {message}");
        // The one error shape, nothing more.
        assert_eq!(body.as_object().unwrap().len(), 3, "{path}: {body}");
    }
    // Unknown parameters are ignored, empty text is no filter, and the limits' edges hold.
    for path in [
        "/api/v1/clusters?unknown=1&unknown=2",
        "/api/v1/clusters?service=&q=&limit=1000&cursor=0&sort=first_seen&window=999999d",
        "/api/v1/traces?errors=false&limit=1",
        "/api/v1/counters?resolution=minute",
    ] {
        let (status, body) = get(addr, path);
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
}

#[test]
fn unknown_ids_and_paths_are_404_in_the_error_shape() {
    let (addr, _store, _) = incident();
    for path in [
        "/api/v1/clusters/ffffffffffffffff",
        "/api/v1/traces/0123456789abcdef0123456789abcdef",
        "/api/v1/nothing",
    ] {
        let (status, body) = get(addr, path);
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["status"], 404);
        assert_eq!(body["code"], "not_found");
        assert!(body["message"].as_str().is_some());
    }
    let response = Client::new()
        .post(format!("http://{addr}/api/v1/clusters"))
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = response.json().unwrap();
    assert_eq!(body["code"], "method_not_allowed");
}

#[test]
fn cluster_detail_has_templates_parameters_samples_and_traces() {
    let (addr, _store, incident) = incident();
    let (status, detail) = get(
        addr,
        &format!("/api/v1/clusters/{}", incident.reset_cluster),
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["summary"]["id"], incident.reset_cluster.as_str());
    assert_eq!(detail["templates"].as_array().unwrap().len(), 2);
    assert_eq!(detail["parameters"][0]["top"][0]["value"], "10.0.3.17:5432");
    assert_eq!(detail["per_minute"]["counts"].as_array().unwrap().len(), 60);
    assert!(detail["samples"][0]["message"]
        .as_str()
        .unwrap()
        .contains("connection reset by peer"));
    assert_eq!(detail["trace_ids"][0], incident.error_trace.as_str());
}

#[test]
fn moved_names_the_counter_that_stepped_just_before_the_pattern() {
    // Two different storms, so that only an answer computed from the data passes.
    for (port, lead_s) in [(8080u16, 2i64), (31337, 7)] {
        let now = now_ms();
        let onset = now - 5 * 60_000;
        let store = Arc::new(FixtureStore::default());
        store.put_cluster(new_pattern_at(
            now,
            "00000000000000aa",
            "read: connection reset by peer",
            onset,
            |i| if i >= 55 { 600 } else { 0 },
        ));
        store.set_counters(time_wait_storm(now, port, onset - lead_s * 1000));
        let addr = serve(store.views(), None);

        let (status, doc) = get(addr, "/api/v1/clusters/00000000000000aa/moved");
        assert_eq!(status, StatusCode::OK, "{doc}");
        assert_eq!(doc["verdict"], "moved", "{doc}");
        assert_eq!(doc["onset_source"], "emergence");
        // No per-second counts in this store: timing to the minute, and the answer says so.
        assert_eq!(doc["onset_precision_ms"], 60_000);
        let moved = doc["moved"].as_array().unwrap();
        assert_eq!(moved.len(), 1, "{doc}");
        assert_eq!(moved[0]["port"], port);
        assert_eq!(moved[0]["state"], "time_wait");
        assert_eq!(moved[0]["side"], "remote");
        assert_eq!(moved[0]["before"], 12.0);
        assert_eq!(moved[0]["after"], 4310.0);
        let lead = moved[0]["lead_ms"].as_i64().unwrap();
        assert!((lead + lead_s * 1000).abs() <= 1000, "{lead}");
        let evidence = moved[0]["evidence"].as_str().unwrap();
        assert!(
            evidence.starts_with(&format!("TIME-WAIT →:{port} rose 12 → 4,310 (+4,298)")),
            "{evidence}"
        );
        // The chart data: the counter and the pattern on one axis.
        assert_eq!(
            moved[0]["history"]["points"].as_array().unwrap().len(),
            doc["pattern"]["points"].as_array().unwrap().len()
        );
        assert_eq!(doc["series_examined"], 3);
    }
}

#[test]
fn moved_says_when_nothing_moved_or_the_history_is_too_short() {
    let (addr, store, incident) = incident();
    // The incident's reset storm comes with TIME_WAIT piling up on 8080.
    let (status, doc) = get(
        addr,
        &format!("/api/v1/clusters/{}/moved", incident.reset_cluster),
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["verdict"], "moved", "{doc}");
    assert_eq!(doc["onset_precision_ms"], 5000);
    let labels: Vec<&str> = doc["moved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["label"].as_str().unwrap())
        .collect();
    assert!(labels.contains(&"TIME-WAIT :8080"), "{labels:?}");
    assert!(!labels.iter().any(|l| l.contains("6379")), "{labels:?}");

    // The refused pattern began 50 min ago, before the 10 min of counter history.
    let (_, refused) = get(addr, "/api/v1/clusters?q=connection%20refused");
    let id = refused["clusters"][0]["id"].as_str().unwrap().to_owned();
    let (status, doc) = get(addr, &format!("/api/v1/clusters/{id}/moved"));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["verdict"], "not_enough_history", "{doc}");
    assert!(doc["moved"].as_array().unwrap().is_empty());

    // Flat counters: nothing moved, and the answer says so.
    let now = now_ms();
    store.set_counters(time_wait_storm(now, 8080, now + 3_600_000));
    let (_, doc) = get(
        addr,
        &format!("/api/v1/clusters/{}/moved", incident.reset_cluster),
    );
    assert_eq!(doc["verdict"], "nothing_moved", "{doc}");
    assert!(doc["summary"]
        .as_str()
        .unwrap()
        .starts_with("Nothing moved"));

    // Unknown ids: 404 in the one error shape.
    let (status, body) = get(addr, "/api/v1/clusters/ffffffffffffffff/moved");
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");
}

#[test]
fn traces_filter_and_call_chain_shows_the_error_origin() {
    let (addr, _store, incident) = incident();
    let (_, page) = get(addr, "/api/v1/traces");
    assert_eq!(page["traces"].as_array().unwrap().len(), 4);
    let (_, page) = get(addr, "/api/v1/traces?errors=true");
    assert_eq!(page["traces"].as_array().unwrap().len(), 1);
    assert_eq!(page["traces"][0]["trace_id"], incident.error_trace.as_str());
    let (_, page) = get(
        addr,
        &format!("/api/v1/traces?cluster={}", incident.reset_cluster),
    );
    assert_eq!(page["traces"].as_array().unwrap().len(), 1);
    let (_, page) = get(addr, "/api/v1/traces?service=user-svc&limit=1");
    assert_eq!(page["traces"].as_array().unwrap().len(), 1);

    let (status, chain) = get(addr, &format!("/api/v1/traces/{}", incident.error_trace));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(chain["error_origin_span_id"], "a000000000000004");
    assert_eq!(chain["spans"].as_array().unwrap().len(), 5);
    assert_eq!(
        chain["spans"][3]["logs"][0]["cluster_id"],
        incident.reset_cluster.as_str()
    );
}

#[test]
fn counters_share_one_time_axis() {
    let (addr, _store, _) = incident();
    let (status, counters) = get(addr, "/api/v1/counters");
    assert_eq!(status, StatusCode::OK);
    let points = counters["sockets"][0]["history"]["points"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(points, 120);
    assert_eq!(counters["step_ms"], 5000);
    assert!(counters["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["state"] == "time_wait" && s["port"] == 8080));
}

#[test]
fn counters_show_listen_queues_totals_sources_processes_and_the_runtime() {
    let (addr, _store, _) = incident();
    let (status, c) = get(addr, "/api/v1/counters");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(c["resolution"], "second");

    let full = &c["listeners"][0];
    assert_eq!(full["address"], "0.0.0.0");
    assert_eq!(full["port"], 8080);
    assert_eq!(full["queue"], 128);
    assert_eq!(full["backlog"], 128);
    assert_eq!(full["fill"], 1.0);
    assert_eq!(full["history"]["points"].as_array().unwrap().len(), 120);
    assert_eq!(c["listeners_omitted"], 2);

    let totals = &c["socket_totals"];
    assert_eq!(totals["source"], "netlink");
    assert_eq!(totals["by_state"].as_array().unwrap().len(), 11);
    let tw = totals["by_state"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["state"] == "time_wait")
        .unwrap();
    // 25 more TIME_WAIT every 5 s: 300 over the last minute.
    assert_eq!(tw["history"]["delta_1m"], 300.0);
    assert_eq!(totals["other_ports"]["port_groups"], 37);
    assert_eq!(totals["other_ports"]["total"], 61);

    // An unavailable source says why, and its values are absent rather than 0.
    let sockstat = c["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "sockstat")
        .unwrap();
    assert_eq!(sockstat["status"], "unavailable");
    assert!(sockstat["reason"].as_str().unwrap().contains(XSS_IMG));
    assert_eq!(c["sockstat"].as_array().unwrap().len(), 0);

    let user = c["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "user-svc")
        .unwrap();
    assert_eq!(user["current"]["fd_limit"], 1024);
    assert_eq!(user["current"]["rss_bytes"], 294_125_568u64);
    let proxy = c["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "db-proxy")
        .unwrap();
    assert!(proxy["current"].is_null());
    assert!(proxy["error"].as_str().is_some());

    let failing = c["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == "payments-svc")
        .unwrap();
    assert!(failing["current"].is_null());
    assert_eq!(failing["last_value"], 96.0);
    assert_eq!(c["runtime"]["workers"], 4);
    assert_eq!(c["runtime"]["alive_tasks"]["current"], 49);
}

#[test]
fn counters_history_per_minute_covers_a_day() {
    let (addr, _store, _) = incident();
    let (status, c) = get(addr, "/api/v1/counters?resolution=minute");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(c["resolution"], "minute");
    assert_eq!(c["step_ms"], 60_000);
    let points = c["socket_totals"]["by_state"][0]["history"]["points"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(points, 24 * 60);
    let (_, explicit) = get(addr, "/api/v1/counters?resolution=second");
    assert_eq!(explicit["step_ms"], 5000);
}

#[test]
fn incidents_lead_with_the_culprit_its_related_counter_and_the_matching_hint() {
    let (addr, _store, incident) = incident();
    let (status, doc) = get(addr, "/api/v1/incidents");
    assert_eq!(status, StatusCode::OK);
    let incidents = doc["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 2, "{doc:#}");
    let top = &incidents[0];
    assert_eq!(top["id"], incident.incident_id.as_str());
    assert_eq!(top["active"], true);
    assert_eq!(top["culprit"]["service"], "user-svc");
    assert_eq!(top["culprit"]["role"], "callee");
    assert_eq!(top["patterns"][0]["id"], incident.reset_cluster.as_str());
    // Its patterns counted as the pattern list counts them at the same moment (the
    // diagnosis' answer is up to seconds old on a loaded node), and its failures with them.
    let (_, list) = get(addr, "/api/v1/clusters?limit=200");
    let listed = |id: &serde_json::Value| {
        list["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| &c["id"] == id)
            .map(|c| c["total_count"].clone())
            .unwrap_or_else(|| panic!("{id} is listed: {list:#}"))
    };
    assert_eq!(
        top["patterns"][0]["count"],
        listed(&top["patterns"][0]["id"])
    );
    assert_eq!(top["patterns"][0]["counted_as"], "failures");
    assert_eq!(top["failures"], top["patterns"][0]["count"]);
    // The counter the leading hint (connection-reset) rests on first, though node-wide; then
    // the culprit's own port; each with the relation said.
    let counters = top["counters"].as_array().unwrap();
    assert_eq!(top["hints"][0]["rule_id"], "connection-reset");
    assert_eq!(counters[0]["anomaly"]["label"], "Tcp EstabResets");
    assert_eq!(counters[0]["relation"], "node_wide");
    assert!(counters[0]["relation_text"]
        .as_str()
        .unwrap()
        .starts_with("node-wide"));
    assert_eq!(counters[1]["anomaly"]["label"], "CLOSE-WAIT :8081");
    assert_eq!(counters[1]["relation"], "culprit");
    let hint_ids: Vec<&str> = top["hints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["rule_id"].as_str().unwrap())
        .collect();
    assert!(
        hint_ids.contains(&"connection-reset") && hint_ids.contains(&"close-wait-leak"),
        "{hint_ids:?}"
    );
    let reset = top["hints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["rule_id"] == "close-wait-leak")
        .unwrap();
    assert_eq!(
        reset["checks"][0]["command"],
        "ss -tanp state close-wait '( sport = :8081 or dport = :8081 )'"
    );
    // The hostile pattern is an incident of its own with no culprit, shown where it was seen.
    assert!(incidents[1]["culprit"]["service"].is_null());
    assert_eq!(incidents[1]["culprit"]["seen_in"][0], "auth-svc");
    assert_eq!(doc["unjudged"][0]["label"], "goroutines auth-svc (pprof)");

    let (status, mut one) = get(addr, &format!("/api/v1/incidents/{}", incident.incident_id));
    assert_eq!(status, StatusCode::OK);
    // With what moved with it: an incident with patterns has its first pattern's answer.
    let moved = one
        .as_object_mut()
        .and_then(|o| o.remove("moved"))
        .expect("the incident's answer says what moved with it");
    assert_eq!(moved["cluster_id"], top["patterns"][0]["id"], "{moved:#}");
    assert!(moved.get("incident_id").is_none(), "{moved:#}");
    assert_eq!(&one, top);
    let (status, err) = get(addr, "/api/v1/incidents/0123456789abcdef");
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["code"], "not_found");
}

#[test]
fn openapi_document_describes_every_api_path() {
    let (addr, _store, _) = incident();
    let (status, doc) = get(addr, "/api/v1/openapi.json");
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/clusters",
        "/api/v1/clusters/{id}",
        "/api/v1/clusters/{id}/moved",
        "/api/v1/traces",
        "/api/v1/traces/{trace_id}",
        "/api/v1/counters",
        "/api/v1/incidents",
        "/api/v1/incidents/{id}",
        "/api/v1/health",
        "/api/v1/events",
    ] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} missing");
    }
    for schema in [
        "ClusterSummary",
        "ClusterDetail",
        "CallChain",
        "CountersSnapshot",
        "MovedWithIt",
        "IncidentsDocument",
        "Incident",
        "Hint",
        "Error",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "{schema} missing"
        );
    }
    // Where an incident stands, added beside `active` and `ended_unix_ms` (which outside
    // harnesses read): described with its three states.
    let schemas = &doc["components"]["schemas"];
    let incident = &schemas["Incident"]["properties"];
    for field in [
        "active",
        "ended_unix_ms",
        "state",
        "recovering_since_unix_ms",
        "reopened_unix_ms",
    ] {
        assert!(incident[field].is_object(), "Incident.{field} missing");
    }
    assert_eq!(
        schemas["IncidentState"]["enum"],
        serde_json::json!(["active", "recovering", "ended"]),
        "{:#}",
        schemas["IncidentState"]
    );
    assert!(
        schemas["IncidentCounter"]["properties"]["moving_away"].is_object(),
        "IncidentCounter.moving_away missing"
    );
}

#[test]
fn metrics_label_clusters_by_stable_id_and_show_sockets_and_tasks() {
    let (addr, _store, incident) = incident();
    let response = Client::new()
        .get(format!("http://{addr}/metrics"))
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = response.text().unwrap();
    let line = format!(
        "faultline_cluster_events_total{{cluster_id=\"{}\"}}",
        incident.reset_cluster
    );
    assert!(text.contains(&line), "{text}");
    assert!(
        text.contains("faultline_tcp_sockets{port=\"8080\",side=\"local\",state=\"time_wait\"}")
    );
    assert!(text.contains("faultline_tasks{target=\"user-svc\"} 1810"));
    assert!(text.contains("faultline_store_clusters_evicted_total 0"));
    // Node counters beyond the per-port sockets.
    for line in [
        "faultline_tcp_listen_queue{address=\"0.0.0.0\",port=\"8080\"} 128\n",
        "faultline_tcp_listen_backlog{address=\"0.0.0.0\",port=\"8080\"} 128\n",
        "faultline_tcp_state_sockets{state=\"time_wait\"} 1227\n",
        "faultline_tcp_sockets{port=\"other\",side=\"any\",state=\"established\"} 58\n",
        "faultline_process_fd_limit{pid=\"4242\",name=\"user-svc\"} 1024\n",
        "faultline_process_rss_bytes{pid=\"4242\",name=\"user-svc\"} 294125568\n",
        "faultline_task_up{target=\"user-svc\"} 1\n",
        "faultline_task_up{target=\"payments-svc\"} 0\n",
        "faultline_counter_source_up{source=\"sockstat\"} 0\n",
        "faultline_counter_source_up{source=\"sockets.netlink\"} 1\n",
        "faultline_runtime_alive_tasks 49\n",
        "faultline_runtime_global_queue_depth 5\n",
        "faultline_runtime_workers 4\n",
        "faultline_protocol_total{name=\"TcpExt ListenOverflows\"} 48213\n",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    // The diagnosis: incidents by culprit and top hint, anomalies by series kind.
    for line in [
        "faultline_incidents{state=\"active\"} 2\n",
        "faultline_incidents{state=\"recovering\"} 0\n",
        "faultline_incidents{state=\"ended\"} 0\n",
        "faultline_incidents_active{culprit=\"user-svc\",hint=\"connection-reset\"} 1\n",
        "faultline_anomalies{kind=\"sockets\",in=\"incident\"} 1\n",
        "faultline_anomalies{kind=\"tasks\",in=\"incident\"} 0\n",
        "faultline_anomalies{kind=\"tasks\",in=\"node\"} 0\n",
        "faultline_anomaly_series_judged 40\n",
        "faultline_cluster_events_total{cluster_id=\"other\"} 0\n",
        // Whether the diagnosis keeps up.
        "faultline_diagnosis_run_seconds 1.5\n",
        "faultline_diagnosis_run_slowest_seconds 2.25\n",
        "faultline_diagnosis_interval_seconds 1.0\n",
        "faultline_diagnosis_runs_total 60\n",
        "faultline_diagnosis_runs_overran_total 3\n",
        "faultline_anomaly_series_judged_in_full 12\n",
        "faultline_anomaly_series_deferred 0\n",
        "faultline_diagnosis_counters_age_seconds 2.0\n",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    assert!(
        text.contains("\nfaultline_diagnosis_lag_seconds "),
        "{text}"
    );
    // A failing target is up=0 without a value sample: never a 0 goroutines.
    assert!(!text.contains("faultline_tasks{target=\"payments-svc\""));
    // A process that could not be read has no value samples either.
    assert!(!text.contains("name=\"db-proxy\""));
    // Hostile target names stay inside their quoted label value.
    let hostile = text
        .lines()
        .find(|l| l.starts_with("faultline_task_up") && l.contains("<img"))
        .unwrap();
    assert!(hostile.ends_with("\"} 1"), "{hostile}");
    // Hostile template text stays inside its quoted label value.
    let info = text
        .lines()
        .find(|l| l.contains(&incident.xss_cluster) && l.starts_with("faultline_cluster_info"))
        .unwrap();
    assert!(info.ends_with("\"} 1"), "{info}");
}

/// The value of the sample `line_start` (name and labels) in a `/metrics` text.
fn sample(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

#[test]
fn pattern_series_are_bounded_stable_and_the_rest_sum_in_other() {
    let store = Arc::new(FixtureStore::default());
    let now = now_ms();
    let pattern = |id: &str, per_minute: u64| {
        let template = format!("error {id} <NUM>");
        cluster(
            now,
            id,
            &template,
            &["svc"],
            None,
            move |_| per_minute,
            &[],
            &[],
        )
    };
    let (a, b, c, d) = (
        "aaaa000000000001",
        "aaaa000000000002",
        "aaaa000000000003",
        "aaaa000000000004",
    );
    store.put_clusters(vec![pattern(a, 5), pattern(b, 1)]);
    let options = faultline_web::MetricsOptions {
        max_pattern_series: 2,
    };
    let addr = serve_with(store.views(), None, 0, options);
    let scrape = || {
        let response = Client::new()
            .get(format!("http://{addr}/metrics"))
            .send()
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.text().unwrap()
    };
    let events = |text: &str, id: &str| {
        sample(
            text,
            &format!("faultline_cluster_events_total{{cluster_id=\"{id}\"}}"),
        )
    };

    let text = scrape();
    assert_eq!(events(&text, a), Some(300.0), "{text}");
    assert_eq!(events(&text, b), Some(60.0));
    assert_eq!(events(&text, "other"), Some(0.0));
    assert!(text.contains("summed in cluster_id=\"other\""), "{text}");

    // No slot left: the new pattern is counted in `other`, the others keep their series.
    store.put_cluster(pattern(c, 2));
    let text = scrape();
    assert_eq!(events(&text, c), None, "{text}");
    assert_eq!(events(&text, "other"), Some(120.0));
    assert_eq!(events(&text, a), Some(300.0));
    assert_eq!(
        sample(&text, "faultline_cluster_series_overflow"),
        Some(1.0)
    );
    assert_eq!(sample(&text, "faultline_clusters"), Some(3.0));

    // `a` is evicted: its series goes, and its slot goes to a newcomer, not to `c` (moving
    // `c` out of `other` would make `other`'s counter fall).
    store.remove_cluster(a);
    store.put_cluster(pattern(d, 1));
    let text = scrape();
    assert_eq!(events(&text, a), None, "{text}");
    assert_eq!(events(&text, d), Some(60.0));
    assert_eq!(events(&text, c), None);
    assert_eq!(events(&text, "other"), Some(120.0));
    assert!(!text.contains(&format!("cluster_id=\"{a}\"")));
}

#[test]
fn a_token_is_required_by_header_or_login_cookie() {
    let store = Arc::new(FixtureStore::default());
    load_incident(&store, now_ms());
    let addr = serve(store.views(), Some("s3cret token"));
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = |p: &str| format!("http://{addr}{p}");

    let anonymous = client.get(url("/api/v1/clusters")).send().unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let body: Value = anonymous.json().unwrap();
    assert_eq!(body["code"], "unauthorized");
    let wrong = client
        .get(url("/metrics"))
        .bearer_auth("s3cret tokem")
        .send()
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let page = client.get(url("/")).send().unwrap();
    assert_eq!(page.status(), StatusCode::UNAUTHORIZED);
    assert!(page
        .text()
        .unwrap()
        .contains("<form method=\"post\" action=\"/login\">"));

    let right = client
        .get(url("/api/v1/clusters"))
        .bearer_auth("s3cret token")
        .send()
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK);

    let refused = client
        .post(url("/login"))
        .form(&[("token", "guess")])
        .send()
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let login = client
        .post(url("/login"))
        .form(&[("token", "s3cret token")])
        .send()
        .unwrap();
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(
        !cookie.contains("s3cret"),
        "the cookie must not carry the token in clear"
    );
    let pair = cookie.split(';').next().unwrap();
    let with_cookie = client
        .get(url("/api/v1/counters"))
        .header("cookie", pair)
        .send()
        .unwrap();
    assert_eq!(with_cookie.status(), StatusCode::OK);
}

#[test]
fn pages_carry_a_strict_content_security_policy() {
    let (addr, _store, _) = incident();
    for path in [
        "/",
        "/clusters",
        "/trace?id=x",
        "/counters",
        "/api/v1/clusters",
    ] {
        let response = Client::new()
            .get(format!("http://{addr}{path}"))
            .send()
            .unwrap();
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap();
        assert!(csp.contains("script-src 'self'"), "{path}");
        assert!(!csp.contains("unsafe-inline"), "{path}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    }
}

#[test]
fn the_event_stream_announces_a_new_cluster() {
    let (addr, store, _) = incident();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /api/v1/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut announced = false;
    while Instant::now() < deadline {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if line.starts_with("event: hello") {
            store.put_cluster(cluster(
                now_ms(),
                "0000000000000bee",
                "panic: runtime error: invalid memory address",
                &["cart-svc"],
                None,
                |_| 1,
                &[],
                &[],
            ));
        }
        if line.starts_with("event: clusters") {
            announced = true;
            break;
        }
        lines.push(line);
    }
    assert!(announced, "no clusters event; got {lines:?}");
}

#[test]
fn without_stores_the_data_endpoints_answer_503_and_health_still_works() {
    let app = faultline_web::router(faultline_web::AppState {
        health: faultline_web::HealthRegistry::new(),
        access: faultline_web::Access::new(None, &[]),
        metrics: faultline_web::MetricsOptions::default(),
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    let addr = rx.recv().unwrap();
    let (status, body) = get(addr, "/api/v1/health");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    for path in [
        "/api/v1/clusters",
        "/api/v1/counters",
        "/api/v1/traces",
        "/metrics",
    ] {
        let (status, body) = get(addr, path);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(body["code"], "unavailable", "{path}");
    }
}
