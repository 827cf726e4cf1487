//! "What moved" that can be trusted, through the real binary: while a service's error pattern
//! emerges and its own listening port breaks (a CLOSE-WAIT leak: it never closes what its
//! peers hung up), another program on the node churns connections on a port of its own, a far
//! bigger move at the same moment. `/api/v1/clusters/{id}/moved` ranks the service's series
//! first, states the relation, and lists the other program's port below them, marked
//! node-wide — not as the lead (it was the lead in most of the Go lab's scenarios before).
//!
//! The service is a configured `[[counters.processes]]` target found by its listening port;
//! its errors are JSON lines in a tailed log file. The node is shared with other tests, so the
//! assertions are about the test's own two ports.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Agent, Loop};

/// Starts an agent sampling every 500 ms with the product's port selection (the busiest 16
/// port groups and the services' ports: beside 30,000 sockets of other programs, charting
/// every port made `/api/v1/counters` time out) and `service` as a `[[counters.processes]]`
/// target found by its listening port.
fn start_agent(service: (&str, u16)) -> (Agent, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("faultline.toml");
    let text = format!(
        "[counters]\n\
         interval_ms = 500\n\
         history_seconds = 180\n\
         history_minutes = 5\n\
         [diagnosis]\n\
         interval_ms = 500\n\
         [[counters.processes]]\n\
         name = \"{}\"\n\
         listen_port = {}\n",
        service.0, service.1
    );
    std::fs::write(&config, text).expect("write config");
    let agent = Agent::start(&["--config", config.to_str().expect("utf-8 path")]);
    (agent, dir)
}

/// Whether a counter label is about `port` (`TIME-WAIT →:P`, `CLOSE-WAIT :P`, ...).
fn names_port(label: &str, port: u16) -> bool {
    label.ends_with(&format!(":{port}"))
}

/// The id of the cluster whose template contains `text`, once listed.
fn cluster_id(agent: &Agent, text: &str) -> Option<String> {
    let page = agent.get_json("/api/v1/clusters?limit=100");
    page["clusters"].as_array()?.iter().find_map(|c| {
        c["canonical_template"]
            .as_str()?
            .contains(text)
            .then(|| c["id"].as_str().map(str::to_owned))?
    })
}

#[test]
fn a_services_own_port_leads_what_moved_and_another_programs_bigger_churn_is_node_wide() {
    // Both listeners exist before the agent starts, with a few live connections each.
    let service = TcpListener::bind("127.0.0.1:0").expect("bind service listener");
    let service_port = service.local_addr().expect("addr").port();
    let noise = TcpListener::bind("127.0.0.1:0").expect("bind noise listener");
    let noise_port = noise.local_addr().expect("addr").port();
    let mut live = Vec::new();
    for (listener, port) in [(&service, service_port), (&noise, noise_port)] {
        for _ in 0..3 {
            let client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            let (server, _) = listener.accept().expect("accept");
            live.push((client, server));
        }
    }
    // The other program's port is a busy one (30 more connections, above a busy node's usual
    // port group), so the product's port selection charts it before its churn begins.
    for _ in 0..30 {
        let client = TcpStream::connect(("127.0.0.1", noise_port)).expect("connect");
        let (server, _) = noise.accept().expect("accept");
        live.push((client, server));
    }
    let (agent, _config) = start_agent(("orders", service_port));
    // 40 points at 500 ms: the 30-point baseline of "what moved", then some.
    agent.wait_history(&[service_port, noise_port], 40, Duration::from_secs(90));

    // The other program: five connections every 50 ms, each closed by the client once
    // accepted — TIME-WAIT towards its port by the thousand.
    let noise_loop = Loop::start({
        let noise = noise.try_clone().expect("clone listener");
        move || {
            for _ in 0..5 {
                let Ok(client) = TcpStream::connect(("127.0.0.1", noise_port)) else {
                    continue;
                };
                let Ok((mut server, _)) = noise.accept() else {
                    continue;
                };
                drop(client);
                let _ = server.set_read_timeout(Some(Duration::from_secs(2)));
                let mut byte = [0u8; 1];
                let _ = server.read(&mut byte);
            }
        }
    });
    // The service: a peer hangs up every 50 ms and it never closes its end (CLOSE-WAIT on
    // its port), and it logs an error each time.
    let log = agent.log_path("orders.log");
    let leak = Loop::start({
        let service = service.try_clone().expect("clone listener");
        let mut held = Vec::new();
        move || {
            if let Ok(client) = TcpStream::connect(("127.0.0.1", service_port)) {
                if let Ok((server, _)) = service.accept() {
                    drop(client);
                    held.push(server);
                }
            }
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
            {
                let _ = writeln!(
                    f,
                    "{{\"level\":\"error\",\"service\":\"orders\",\"msg\":\"handler stalled\",\
                     \"error\":\"worker pool exhausted: 0 of 64 workers free\"}}"
                );
            }
        }
    });

    let started = Instant::now();
    let id = loop {
        if let Some(id) = cluster_id(&agent, "workers free") {
            break id;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the service's pattern was not listed within 30 s"
        );
        thread::sleep(Duration::from_millis(250));
    };
    // Until both moves are in the answer (the leak passes its minimum of 20 sockets within
    // about a second at 20 a second; the churn within a second).
    let deadline = Instant::now() + Duration::from_secs(40);
    let (doc, related, noisy) = loop {
        let doc = agent.get_json(&format!("/api/v1/clusters/{id}/moved"));
        let moved = doc["moved"].as_array().cloned().unwrap_or_default();
        let find = |port| {
            moved
                .iter()
                .position(|m| names_port(m["label"].as_str().unwrap_or_default(), port))
        };
        if let (Some(r), Some(n)) = (find(service_port), find(noise_port)) {
            break (doc, r, n);
        }
        assert!(
            Instant::now() < deadline,
            "both ports did not move within 40 s: {doc:#}"
        );
        thread::sleep(Duration::from_millis(500));
    };
    drop(leak);
    drop(noise_loop);
    let moved = doc["moved"].as_array().expect("listed above");
    let top = &moved[0];
    assert!(
        names_port(top["label"].as_str().unwrap_or_default(), service_port),
        "the service's own port must lead: {doc:#}"
    );
    assert_ne!(top["relation"], "node_wide", "{doc:#}");
    assert!(
        top["relation_text"]
            .as_str()
            .is_some_and(|t| t.contains("listening port (orders)")),
        "{top:#}"
    );
    // The other program's port: below every related series, and marked node-wide.
    let other = &moved[noisy];
    assert_eq!(other["relation"], "node_wide", "{other:#}");
    assert!(
        other["relation_text"]
            .as_str()
            .is_some_and(|t| t.starts_with(&format!("node-wide: port {noise_port}"))),
        "{other:#}"
    );
    let last_related = moved
        .iter()
        .rposition(|m| m["relation"] != "node_wide")
        .expect("the service's port is related");
    assert!(related <= last_related && noisy > last_related, "{doc:#}");
    // It moved more than the service's port did: only the relation puts it below.
    let change = |m: &Value| m["change"].as_f64().unwrap_or_default();
    assert!(
        change(other) > change(&moved[related]),
        "the churn was meant to be the bigger move: {doc:#}"
    );
    drop(live);
}
