//! Counter-only incidents through the real binary: real loopback sockets that break from
//! their baseline with no error line at all — a CLOSE-WAIT leak (a server that never closes
//! what its peers hung up) and a TIME-WAIT storm (a client that opens a connection per call)
//! on the ports of configured services (`[[counters.processes]] listen_port`) — are raised as
//! incidents through `/api/v1/incidents` within 10 s of their start, with the port's counter
//! first and the matching hint whose command names the port. The storm's client is a traced
//! service (its CLIENT span names the port). The same churn on a port no known service owns,
//! or from an untraced client of a service (a load balancer, a traffic driver), is node
//! activity: listed under `node_signals`, never an incident.
//!
//! An agent killed and restarted during an outage raises it again within 10 s, with the onset
//! its previous run recorded, marked as going on at its start: an error pattern's outage, and
//! a counter-only one (the counters' history is saved and restored).
//!
//! The agent runs with short windows (`[diagnosis.anomalies]`), as the issue allows tests to;
//! the node is shared with other tests, so the assertions look for the incident of the test's
//! own ports rather than for a node with no other incident.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Agent, Loop};

/// The issue's bound: an incident within 10 s of the start of the counter's change.
const RAISED_WITHIN: Duration = Duration::from_secs(10);

/// Starts an agent sampling every 500 ms with the product's port selection (the busiest 16
/// port groups and the services' ports: an agent beside 30,000 sockets of other programs
/// does not chart them all), a 10 s baseline of at least 10 points and diagnosis every
/// 500 ms; `services` are the `[[counters.processes]]` found by their listening port (name,
/// port). The tests run a debug build, whose socket census costs about 3 times a release
/// one's (40 ms of CPU beside 32,000 sockets, against the 12.7 ms the example configuration
/// documents): at the default 0.5 % budget it counted the sockets every 8 s, most of the
/// issue's 10 s bound; 1.5 % counts them as often as a release agent at the default.
fn start_agent(services: &[(&str, u16)]) -> (Agent, tempfile::TempDir) {
    start_agent_with(services, "")
}

/// Like [`start_agent`], with `more` appended to the configuration.
fn start_agent_with(services: &[(&str, u16)], more: &str) -> (Agent, tempfile::TempDir) {
    start_agent_full(services, "", more)
}

/// Like [`start_agent_with`], with `counters` added to the `[counters]` table.
fn start_agent_full(
    services: &[(&str, u16)],
    counters: &str,
    more: &str,
) -> (Agent, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("faultline.toml");
    let mut text = format!("[counters]\n{counters}");
    text.push_str(
        "interval_ms = 500\n\
         socket_cpu_budget_percent = 1.5\n\
         history_seconds = 120\n\
         history_minutes = 5\n\
         [diagnosis]\n\
         interval_ms = 500\n\
         [diagnosis.anomalies]\n\
         baseline_ms = 10000\n\
         search_ms = 20000\n\
         min_baseline_points = 10\n\
         warmup_ms = 2000\n",
    );
    for (name, port) in services {
        text.push_str(&format!(
            "[[counters.processes]]\nname = \"{name}\"\nlisten_port = {port}\n"
        ));
    }
    text.push_str(more);
    std::fs::write(&config, text).expect("write config");
    let agent = Agent::start(&["--config", config.to_str().expect("utf-8 path")]);
    (agent, dir)
}

/// The incident that lists a counter labelled `label`, if any.
fn incident_with(doc: &Value, label: &str) -> Option<Value> {
    doc["incidents"].as_array()?.iter().find_map(|i| {
        i["counters"]
            .as_array()?
            .iter()
            .any(|c| c["anomaly"]["label"] == label)
            .then(|| i.clone())
    })
}

/// Polls `/api/v1/incidents` until `check` accepts it or `limit` passes; the last document
/// on failure.
fn poll_incidents(
    agent: &Agent,
    limit: Duration,
    mut check: impl FnMut(&Value) -> bool,
) -> Result<Value, Value> {
    let deadline = Instant::now() + limit;
    loop {
        let doc = agent.get_json("/api/v1/incidents");
        if check(&doc) {
            return Ok(doc);
        }
        if Instant::now() >= deadline {
            return Err(doc);
        }
        // Not faster: each poll leaves a TIME-WAIT socket of its own on the node.
        thread::sleep(Duration::from_millis(250));
    }
}

/// Waits until the diagnosis has judged the series of `ports`: a run over counters that
/// already held them lists none of them as unjudged. The services' series are listed first;
/// for `others` (ports no service owns) the list must also be whole (`unjudged_omitted` 0).
/// Not a count of points: beside 30,000 sockets a debug agent misses sample ticks, and 14
/// points were not the 10 known points of a baseline (3 of 7 tests failed on "6 of the 10
/// baseline points needed are known").
fn wait_judged(agent: &Agent, services: &[u16], others: &[u16]) {
    let ports: Vec<u16> = services.iter().chain(others).copied().collect();
    agent.wait_history(&ports, 1, Duration::from_secs(60));
    let seen = agent.get_json("/api/v1/counters")["sampled_at_unix_ms"]
        .as_i64()
        .unwrap_or(i64::MAX);
    let started = Instant::now();
    poll_incidents(agent, Duration::from_secs(90), |doc| {
        let after = doc["run"]["counters_sampled_at_unix_ms"]
            .as_i64()
            .is_some_and(|t| t >= seen);
        let listed = doc["unjudged"].as_array().is_none_or(|u| {
            u.iter().any(|u| {
                let label = u["label"].as_str().unwrap_or_default();
                ports.iter().any(|&p| names_port(label, p))
            })
        });
        after && !listed && (others.is_empty() || doc["unjudged_omitted"] == 0)
    })
    .unwrap_or_else(|doc| panic!("ports {ports:?} not judged within 90 s: {doc:#}"));
    eprintln!(
        "ports {ports:?} judged {:?} after their first point",
        started.elapsed()
    );
}

/// A CLOSE-WAIT leak on `listener`, until the loop is dropped: every 50 ms a peer connects
/// and hangs up, and the server never closes its end.
fn close_wait_leak(listener: &TcpListener) -> Loop {
    let listener = listener.try_clone().expect("clone listener");
    let port = listener.local_addr().expect("addr").port();
    let mut held = Vec::new();
    Loop::start(move || {
        if let Ok(client) = TcpStream::connect(("127.0.0.1", port)) {
            if let Ok((server, _)) = listener.accept() {
                drop(client);
                held.push(server);
            }
        }
    })
}

/// A listener in a Python process of its own with three live connections to it (a port's
/// usual level) that leaks CLOSE-WAIT on request as [`close_wait_leak`] does: every 50 ms a
/// connection whose client end closes while its server end is held.
struct LeakyProcess {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    port: u16,
}

const LEAKY_PY: &str = r#"
import socket, sys, threading, time
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(1024)
port = listener.getsockname()[1]
live = []
for _ in range(3):
    client = socket.create_connection(("127.0.0.1", port))
    server, _ = listener.accept()
    live.append((client, server))
held, lock, leaking = [], threading.Lock(), threading.Event()
deadline = time.time() + 240
def leak():
    while time.time() < deadline:
        with lock:
            if leaking.is_set():
                client = socket.create_connection(("127.0.0.1", port))
                server, _ = listener.accept()
                client.close()
                held.append(server)
        time.sleep(0.05)
threading.Thread(target=leak, daemon=True).start()
print(port, flush=True)
for line in sys.stdin:
    if line.strip() == "leak":
        leaking.set()
    elif line.strip() == "stop":
        with lock:
            leaking.clear()
            for server in held:
                server.close()
            held.clear()
        print("stopped", flush=True)
"#;

impl LeakyProcess {
    fn start() -> LeakyProcess {
        use std::io::BufRead;
        let mut child = std::process::Command::new("python3")
            .args(["-c", LEAKY_PY])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs the leaky listener");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("the leaky listener's port");
        let port = line.trim().parse().expect("a port");
        LeakyProcess {
            child,
            stdin,
            stdout,
            port,
        }
    }

    fn say(&mut self, what: &str) {
        std::io::Write::write_all(&mut self.stdin, format!("{what}\n").as_bytes())
            .expect("tell the leaky listener");
    }

    /// Starts leaking.
    fn leak(&mut self) {
        self.say("leak");
    }

    /// Stops leaking and closes what it held; returns once they are closed.
    fn stop(&mut self) {
        use std::io::BufRead;
        self.say("stop");
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("the leaky listener stopped");
        assert_eq!(line.trim(), "stopped");
    }
}

impl Drop for LeakyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three live connections to `listener` (client and server ends): a port's usual level,
/// held until the pairs are dropped.
fn live_connections(listener: &TcpListener) -> Vec<(TcpStream, TcpStream)> {
    let port = listener.local_addr().expect("addr").port();
    (0..3)
        .map(|_| {
            let client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            let (server, _) = listener.accept().expect("accept");
            (client, server)
        })
        .collect()
}

/// Opens `n` connections to `port` and closes each client end first once `listener` has
/// accepted it: the clients' ends stay in TIME-WAIT towards the port.
fn open_and_close(listener: &TcpListener, port: u16, n: usize) {
    for _ in 0..n {
        let Ok(client) = TcpStream::connect(("127.0.0.1", port)) else {
            continue;
        };
        let Ok((mut server, _)) = listener.accept() else {
            continue;
        };
        drop(client);
        let _ = server.set_read_timeout(Some(Duration::from_secs(2)));
        let mut byte = [0u8; 1];
        let _ = server.read(&mut byte);
    }
}

/// Tells the agent, as traced services do, that `caller` calls `callee` on `port`: one trace
/// over OTLP/JSON with the caller's CLIENT span naming the port and the callee's SERVER span
/// under it. Without it the sockets' client is an untraced program, whose storms are node
/// activity.
fn send_call(agent: &Agent, caller: &str, callee: &str, port: u16) {
    let health = agent.get_json("/api/v1/health");
    let otlp_http = health["components"]["otlp_http"]["address"]
        .as_str()
        .expect("otlp_http address");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let trace = format!("{:032x}", now ^ u128::from(port));
    let resource = |service: &str, span: Value| {
        serde_json::json!({
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": service}}
            ]},
            "scopeSpans": [{"spans": [span]}]
        })
    };
    let span = |id: u64, parent: Option<u64>, kind: u8, port_key: &str| {
        serde_json::json!({
            "traceId": trace,
            "spanId": format!("{id:016x}"),
            "parentSpanId": parent.map(|p| format!("{p:016x}")).unwrap_or_default(),
            "name": "GET /items/:id",
            "kind": kind,
            "startTimeUnixNano": (now - 5_000_000).to_string(),
            "endTimeUnixNano": now.to_string(),
            "attributes": [{"key": port_key, "value": {"intValue": port.to_string()}}],
            "status": {}
        })
    };
    let doc = serde_json::json!({"resourceSpans": [
        resource(caller, span(1, None, 3, "server.port")),
        resource(callee, span(2, Some(1), 2, "server.port")),
    ]});
    let response = reqwest::blocking::Client::new()
        .post(format!("http://{otlp_http}/v1/traces"))
        .header("content-type", "application/json")
        .body(doc.to_string())
        .send()
        .expect("POST /v1/traces");
    assert_eq!(response.status(), 200, "the trace was refused");
}

/// Whether a counter label is about `port` (`TIME-WAIT →:P`, `sockets :P`, ...).
fn names_port(label: &str, port: u16) -> bool {
    label.ends_with(&format!(":{port}"))
}

fn hint<'a>(incident: &'a Value, rule: &str) -> Option<&'a Value> {
    incident["hints"]
        .as_array()?
        .iter()
        .find(|h| h["rule_id"] == rule)
}

#[test]
fn a_close_wait_leak_and_a_time_wait_storm_with_no_error_line_are_incidents_within_10_s() {
    // Both listeners exist before the agent starts: their port groups are part of the node
    // from its first sample, like services already running on a real node.
    let leaky = TcpListener::bind("127.0.0.1:0").expect("bind leaky listener");
    let leaky_port = leaky.local_addr().expect("addr").port();
    let storm = TcpListener::bind("127.0.0.1:0").expect("bind storm listener");
    let storm_port = storm.local_addr().expect("addr").port();
    // A few live connections on each: the usual level.
    let live = [live_connections(&leaky), live_connections(&storm)];
    let (agent, _config) = start_agent(&[("leaky", leaky_port), ("stormed", storm_port)]);
    send_call(&agent, "checkout", "stormed", storm_port);
    wait_judged(&agent, &[leaky_port, storm_port], &[]);

    let started = Instant::now();
    let leak = close_wait_leak(&leaky);
    let label = format!("CLOSE-WAIT :{leaky_port}");
    let doc = poll_incidents(&agent, RAISED_WITHIN, |doc| {
        incident_with(doc, &label).is_some()
    })
    .unwrap_or_else(|doc| panic!("no incident with {label} within 10 s: {doc:#}"));
    let raised_after = started.elapsed();
    let incident = incident_with(&doc, &label).expect("found above");
    assert_eq!(
        incident["counters"][0]["anomaly"]["label"], label,
        "the leak's counter must lead: {incident:#}"
    );
    assert_eq!(incident["active"], true);
    assert!(
        incident["patterns"]
            .as_array()
            .is_some_and(|p| p.is_empty()),
        "no error line was written: {incident:#}"
    );
    let close_wait = hint(&incident, "close-wait-leak")
        .unwrap_or_else(|| panic!("no close-wait hint: {incident:#}"));
    let command = close_wait["checks"][0]["command"]
        .as_str()
        .unwrap_or_default();
    assert!(
        command.contains(&format!("sport = :{leaky_port}")),
        "{command}"
    );
    let one = agent.get_json(&format!(
        "/api/v1/incidents/{}",
        incident["id"].as_str().unwrap_or_default()
    ));
    assert_eq!(one["id"], incident["id"]);
    drop(leak);
    eprintln!("CLOSE-WAIT leak raised {raised_after:?} after it started");

    // The storm: every 50 ms the caller opens a connection, and closes it first once the
    // server has accepted it: its end stays in TIME-WAIT towards the port.
    let started = Instant::now();
    let storm_loop = Loop::start({
        let storm = storm.try_clone().expect("clone listener");
        move || open_and_close(&storm, storm_port, 5)
    });
    let label = format!("TIME-WAIT →:{storm_port}");
    let doc = poll_incidents(&agent, RAISED_WITHIN, |doc| {
        incident_with(doc, &label).is_some()
    })
    .unwrap_or_else(|doc| panic!("no incident with {label} within 10 s: {doc:#}"));
    let raised_after = started.elapsed();
    drop(storm_loop);
    let incident = incident_with(&doc, &label).expect("found above");
    let first = incident["counters"][0]["anomaly"]["label"]
        .as_str()
        .unwrap_or_default();
    assert!(
        first.contains(&format!(":{storm_port}")),
        "the storm's port must lead: {incident:#}"
    );
    assert_eq!(incident["culprit"]["service"], "checkout", "{incident:#}");
    assert!(
        hint(&incident, "time-wait-storm").is_some(),
        "no TIME-WAIT hint: {incident:#}"
    );
    eprintln!("TIME-WAIT storm raised {raised_after:?} after it started");
    drop(live);
}

#[test]
fn churn_on_a_port_no_service_owns_and_an_untraced_clients_storm_are_no_incident_while_a_callers_storm_is(
) {
    // Another program on the node (a test suite, a build) churns loopback connections in
    // bursts on its own port; an untraced client (a load balancer, the lab's traffic driver)
    // opens a connection per request to the configured edge; a traced caller starts a
    // TIME-WAIT storm on the port of the configured service it calls. All at the same time;
    // the listeners exist before the agent starts.
    let noise = TcpListener::bind("127.0.0.1:0").expect("bind noise listener");
    let noise_port = noise.local_addr().expect("addr").port();
    let service = TcpListener::bind("127.0.0.1:0").expect("bind service listener");
    let service_port = service.local_addr().expect("addr").port();
    let edge = TcpListener::bind("127.0.0.1:0").expect("bind edge listener");
    let edge_port = edge.local_addr().expect("addr").port();
    let live = [&noise, &service, &edge].map(live_connections);
    // The other program's port is a busy one (33 connections, above the busy node's usual
    // port group), so the product's port selection charts it before its churn begins.
    let busy: Vec<_> = (0..10).flat_map(|_| live_connections(&noise)).collect();
    let (agent, _config) = start_agent(&[("orders", service_port), ("edge", edge_port)]);
    send_call(&agent, "checkout", "orders", service_port);
    wait_judged(&agent, &[service_port, edge_port], &[noise_port]);

    // Bursts of 1 to 40 connections, one burst every 20 steps (about a second).
    let noise_loop = Loop::start({
        let noise = noise.try_clone().expect("clone listener");
        let mut step = 0usize;
        move || {
            step += 1;
            if step.is_multiple_of(20) {
                open_and_close(&noise, noise_port, 1 + (step * 7) % 40);
            }
        }
    });
    let started = Instant::now();
    let storm_loop = Loop::start({
        let service = service.try_clone().expect("clone listener");
        move || open_and_close(&service, service_port, 5)
    });
    let untraced_loop = Loop::start({
        let edge = edge.try_clone().expect("clone listener");
        move || open_and_close(&edge, edge_port, 5)
    });
    // A script polling the agent's own API with a connection per request: the agent's own
    // traffic, neither an incident nor another program's node activity.
    let agent_port: u16 = agent
        .base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the agent's web port");
    let own_loop = Loop::start(move || {
        for _ in 0..5 {
            drop(TcpStream::connect(("127.0.0.1", agent_port)));
        }
    });
    let own_named = |doc: &Value| -> Option<String> {
        let incidents = doc["incidents"].as_array().cloned().unwrap_or_default();
        let counters = incidents
            .iter()
            .flat_map(|i| i["counters"].as_array().cloned().unwrap_or_default())
            .map(|c| {
                c["anomaly"]["label"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            });
        let signals = doc["node_signals"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|n| {
                n["anomaly"]["label"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            });
        counters
            .chain(signals)
            .find(|label| names_port(label, agent_port))
    };
    let storm_label = format!("TIME-WAIT →:{service_port}");
    let untraced_label = format!("TIME-WAIT →:{edge_port}");
    let mut noise_seen = false;
    let mut untraced_seen = false;
    let mut storm_raised_after = None;
    // Until the storm is an incident and the noise and the untraced client's storm were each
    // judged a break of their own (node signals): neither may be an incident's counter on the
    // way.
    let doc = poll_incidents(&agent, Duration::from_secs(40), |doc| {
        let incidents = doc["incidents"].as_array().cloned().unwrap_or_default();
        for i in &incidents {
            for c in i["counters"].as_array().cloned().unwrap_or_default() {
                let label = c["anomaly"]["label"].as_str().unwrap_or_default();
                assert!(
                    !names_port(label, noise_port),
                    "the other program's port {noise_port} became an incident: {i:#}"
                );
                assert!(
                    !names_port(label, edge_port),
                    "the untraced client's port {edge_port} became an incident: {i:#}"
                );
            }
        }
        let signal_on = |port: u16| {
            doc["node_signals"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|n| names_port(n["anomaly"]["label"].as_str().unwrap_or_default(), port))
            })
        };
        if let Some(label) = own_named(doc) {
            panic!("the agent's own port is a signal ({label}): {doc:#}");
        }
        noise_seen |= signal_on(noise_port);
        untraced_seen |= doc["node_signals"].as_array().is_some_and(|s| {
            s.iter()
                .any(|n| n["anomaly"]["label"] == untraced_label.as_str())
        });
        if storm_raised_after.is_none() && incident_with(doc, &storm_label).is_some() {
            storm_raised_after = Some(started.elapsed());
        }
        noise_seen && untraced_seen && storm_raised_after.is_some()
    })
    .unwrap_or_else(|doc| {
        panic!(
            "within 40 s: storm raised after {storm_raised_after:?}, noise seen as a node \
             signal: {noise_seen}, the untraced client's storm: {untraced_seen}: {doc:#}"
        )
    });
    // The agent's churn started with the others: a few seconds more of it, still no signal.
    let after = poll_incidents(&agent, Duration::from_secs(5), |doc| {
        own_named(doc).is_some()
    });
    if let Ok(doc) = after {
        panic!("the agent's own port is a signal: {doc:#}");
    }
    drop(own_loop);
    drop(storm_loop);
    drop(untraced_loop);
    drop(noise_loop);
    drop(busy);
    let raised_after = storm_raised_after.expect("checked above");
    assert!(
        raised_after <= RAISED_WITHIN,
        "the storm on the service's port was raised {raised_after:?} after it started"
    );
    let incident = incident_with(&doc, &storm_label).expect("raised above");
    assert_eq!(incident["culprit"]["service"], "checkout", "{incident:#}");
    assert!(
        hint(&incident, "time-wait-storm").is_some(),
        "no TIME-WAIT hint: {incident:#}"
    );
    let reason_of = |about: &dyn Fn(&str) -> bool| {
        doc["node_signals"]
            .as_array()
            .and_then(|s| {
                s.iter()
                    .find(|n| about(n["anomaly"]["label"].as_str().unwrap_or_default()))
            })
            .and_then(|n| n["reason"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let reason = reason_of(&|label| names_port(label, noise_port));
    assert!(reason.contains("no known service"), "{reason}");
    let reason = reason_of(&|label| label == untraced_label);
    assert!(
        reason.starts_with(&format!("port {edge_port} of edge: these are its clients'")),
        "{reason}"
    );
    drop(live);
}

/// The incident that lists a pattern whose text contains `needle`, if any.
fn incident_with_pattern(doc: &Value, needle: &str) -> Option<Value> {
    doc["incidents"].as_array()?.iter().find_map(|i| {
        i["patterns"]
            .as_array()?
            .iter()
            .any(|p| p["text"].as_str().is_some_and(|t| t.contains(needle)))
            .then(|| i.clone())
    })
}

/// Writes a service's failing calls to `log` every 50 ms until stopped (at most 4 minutes).
fn failing_calls(log: std::path::PathBuf) -> (Arc<AtomicBool>, thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(240);
        while !flag.load(Ordering::Relaxed) && Instant::now() < until {
            let ts = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .expect("open log");
            let line = format!(
                r#"{{"level":"error","ts":{ts:.6},"caller":"pay/charge.go:88","msg":"charge failed","service":"payments","error":"dial tcp 10.0.3.7:5432: connect: connection refused"}}"#
            );
            std::io::Write::write_all(&mut file, format!("{line}\n").as_bytes())
                .expect("write log");
            thread::sleep(Duration::from_millis(50));
        }
    });
    (stop, handle)
}

#[test]
fn an_agent_restarted_during_an_outage_raises_it_again_within_10_s() {
    // Emergence over one-minute windows, and no surge: the outage's pattern is new for its
    // first minute or two, then only its incident keeps it diagnosed.
    let (agent, config) = start_agent_with(
        &[],
        "[clustering]\nwindow_secs = 60\nbaseline_secs = 60\nsurge_min_ratio = 1000000.0\n",
    );
    let config_path = config.path().join("faultline.toml");
    let config_arg = config_path.to_str().expect("utf-8 path").to_owned();
    // The outage starts after the agent's first look, so its onset is known.
    thread::sleep(Duration::from_secs(6));
    let (stop, writer) = failing_calls(agent.log_path("payments.log"));
    let needle = "connection refused";
    let before = poll_incidents(&agent, Duration::from_secs(20), |doc| {
        incident_with_pattern(doc, needle).is_some()
    })
    .unwrap_or_else(|doc| panic!("no incident before the restart: {doc:#}"));
    let first = incident_with_pattern(&before, needle).expect("incident");
    assert_eq!(first["ongoing_at_start"], false, "{first:#}");
    // Until the pattern is no longer new (its incident still lists it).
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let page = agent.get_json("/api/v1/clusters?limit=100");
        let ours = page["clusters"].as_array().and_then(|all| {
            all.iter()
                .find(|c| {
                    c["canonical_template"]
                        .as_str()
                        .is_some_and(|t| t.contains(needle))
                })
                .cloned()
        });
        if ours.as_ref().is_some_and(|c| c["emergence"].is_null()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pattern still emerges after 150 s: {ours:#?}"
        );
        thread::sleep(Duration::from_secs(1));
    }
    let kept = agent.get_json("/api/v1/incidents");
    let onset = incident_with_pattern(&kept, needle).expect("the incident keeps its pattern")
        ["onset_unix_ms"]
        .as_i64()
        .expect("onset");

    // The agent dies with the outage going on, and comes back on the same data.
    let dir = agent.kill9();
    let agent = Agent::start_in(dir, &["--config", &config_arg]);
    let restarted = Instant::now();
    let doc = poll_incidents(&agent, RAISED_WITHIN, |doc| {
        incident_with_pattern(doc, needle).is_some()
    });
    stop.store(true, Ordering::Relaxed);
    let _ = writer.join();
    let doc = doc.unwrap_or_else(|doc| {
        panic!(
            "no incident within {RAISED_WITHIN:?} of the restart ({:?} after): {doc:#}",
            restarted.elapsed()
        )
    });
    eprintln!(
        "the outage's incident was back {:?} after the restart",
        restarted.elapsed()
    );
    let incident = incident_with_pattern(&doc, needle).expect("incident");
    assert_eq!(incident["active"], true, "{incident:#}");
    // It was going on when this agent started, with the onset the previous run recorded.
    assert_eq!(incident["ongoing_at_start"], true, "{incident:#}");
    assert_eq!(incident["onset_unix_ms"], onset, "{incident:#}");
}

/// The incident with id `id` in `doc`, if listed.
fn incident_by_id(doc: &Value, id: &str) -> Option<Value> {
    doc["incidents"]
        .as_array()?
        .iter()
        .find(|i| i["id"] == id)
        .cloned()
}

/// Faults that stop end their incidents, each within a bound, saying when: a CLOSE-WAIT leak
/// whose leaked sockets are closed (its process restarted) once its counters are back in
/// their range — seconds — and a service's failing calls, first "recovering" since their last
/// failure once they have not failed for their quiet time (`incident::recovery::QUIET_MS`
/// for a pattern failing twenty times a second), then ended. Before, an incident stayed
/// active a minute after its last failure (`incident::ACTIVE_MS`), and could stay active
/// after its fault through counters that only moved beside it (a caller's traffic, a pool's
/// churn).
#[test]
fn faults_that_stop_end_their_incidents_within_a_bound_and_say_when() {
    /// How long a pattern failing many times a second must be silent before its incident is
    /// recovering (`incident::recovery::QUIET_MS`), and recovering with nothing else out of
    /// its range before it ends (`incident::recovery::SETTLE_MS`).
    const QUIET: Duration = Duration::from_secs(10);
    const SETTLE: Duration = Duration::from_secs(5);
    /// The diagnosis' and the tailer's lag on a loaded machine.
    const SLACK: Duration = Duration::from_secs(10);
    /// A counter is back in its range after three samples (500 ms apart here) inside it; the
    /// rest is the detector's and the sampler's lag on a loaded machine.
    const COUNTERS_END_WITHIN: Duration = Duration::from_secs(20);
    // The leak's holder is a process of its own: its open fds (the leak's own counter, which
    // must be back in range before the incident ends) move with nothing else. In this test's
    // process they moved with every other test beside it (their agents' pipes and sockets):
    // seen under load, "leaky open fds rose 15 → 89" still at 88 when the CLOSE-WAIT was 0.
    let mut leaky = LeakyProcess::start();
    let port = leaky.port;
    let (agent, _config) = start_agent(&[("leaky", port)]);
    wait_judged(&agent, &[port], &[]);

    leaky.leak();
    let (stop, writer) = failing_calls(agent.log_path("payments.log"));
    let label = format!("CLOSE-WAIT :{port}");
    let needle = "connection refused";
    let doc = poll_incidents(&agent, Duration::from_secs(20), |doc| {
        incident_with(doc, &label).is_some() && incident_with_pattern(doc, needle).is_some()
    })
    .unwrap_or_else(|doc| panic!("no incidents of the leak and the failing calls: {doc:#}"));
    let leak_id = incident_with(&doc, &label).expect("found above")["id"].clone();
    let calls_id = incident_with_pattern(&doc, needle).expect("found above")["id"].clone();
    assert_ne!(leak_id, calls_id, "two faults, two incidents: {doc:#}");
    thread::sleep(Duration::from_secs(2));

    // Both faults stop.
    stop.store(true, Ordering::Relaxed);
    let _ = writer.join();
    leaky.stop();
    let healed_at = now_unix_ms();
    let healed = Instant::now();
    let ended = |doc: &Value, id: &Value| {
        incident_by_id(doc, id.as_str().unwrap_or_default()).filter(|i| i["active"] == false)
    };
    let doc = poll_incidents(&agent, COUNTERS_END_WITHIN, |doc| {
        ended(doc, &leak_id).is_some()
    })
    .unwrap_or_else(|doc| {
        panic!("the leak's incident still active {COUNTERS_END_WITHIN:?} after it stopped: {doc:#}")
    });
    eprintln!(
        "the leak's incident ended {:?} after the leak stopped",
        healed.elapsed()
    );
    let inc = ended(&doc, &leak_id).expect("found above");
    let at = inc["ended_unix_ms"].as_i64().expect("ended_unix_ms");
    assert!(
        at >= healed_at - 5_000 && at <= now_unix_ms(),
        "ended at {at}, stopped at {healed_at}: {inc:#}"
    );
    assert!(
        inc["counters"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["anomaly"]["label"] == label)),
        "{inc:#}"
    );

    // The calls stopped failing: recovering, since their last failure.
    let recovering = |doc: &Value| {
        incident_by_id(doc, calls_id.as_str().unwrap_or_default())
            .filter(|i| i["state"] == "recovering" && i["active"] == true)
    };
    let limit = QUIET + SLACK;
    let doc = poll_incidents(&agent, limit.saturating_sub(healed.elapsed()), |doc| {
        recovering(doc).is_some() || ended(doc, &calls_id).is_some()
    })
    .unwrap_or_else(|doc| {
        panic!("the failing calls' incident not recovering {limit:?} after they stopped: {doc:#}")
    });
    eprintln!(
        "the failing calls' incident was recovering {:?} after they stopped",
        healed.elapsed()
    );
    let inc = recovering(&doc).unwrap_or_else(|| {
        panic!("the failing calls' incident ended without saying it was recovering: {doc:#}")
    });
    let since = inc["recovering_since_unix_ms"]
        .as_i64()
        .expect("recovering_since_unix_ms");
    assert!(
        (healed_at - 5_000..=healed_at + 5_000).contains(&since),
        "recovering since {since}, stopped at {healed_at}: {inc:#}"
    );
    assert!(inc["ended_unix_ms"].is_null(), "{inc:#}");

    let limit = QUIET + SETTLE + SLACK;
    let doc = poll_incidents(&agent, limit.saturating_sub(healed.elapsed()), |doc| {
        ended(doc, &calls_id).is_some()
    })
    .unwrap_or_else(|doc| {
        panic!("the failing calls' incident still active {limit:?} after they stopped: {doc:#}")
    });
    eprintln!(
        "the failing calls' incident ended {:?} after they stopped",
        healed.elapsed()
    );
    let inc = ended(&doc, &calls_id).expect("found above");
    assert_eq!(inc["state"], "ended", "{inc:#}");
    assert_eq!(
        inc["recovering_since_unix_ms"], inc["ended_unix_ms"],
        "{inc:#}"
    );
    // It ended with its last failure, and keeps its pattern and its failures.
    let pattern = inc["patterns"]
        .as_array()
        .and_then(|p| {
            p.iter()
                .find(|p| p["text"].as_str().is_some_and(|t| t.contains(needle)))
        })
        .unwrap_or_else(|| panic!("the ended incident lost its pattern: {inc:#}"));
    assert_eq!(
        inc["ended_unix_ms"], pattern["last_seen_unix_ms"],
        "{inc:#}"
    );
    let at = inc["ended_unix_ms"].as_i64().expect("ended_unix_ms");
    assert!(
        (healed_at - 5_000..=healed_at + 5_000).contains(&at),
        "ended at {at}, stopped at {healed_at}: {inc:#}"
    );
    assert!(inc["failures"].as_u64().is_some_and(|n| n > 0), "{inc:#}");
}

/// The Unix time in milliseconds.
fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The counters' history survives a restart: an agent killed with SIGKILL during a CLOSE-WAIT
/// leak that logs nothing raises it again within 10 s of its restart, with an onset before the
/// restart, where its previous run dated it; the port's chart keeps its points from before,
/// and the time the agent was down is a gap. Without the saved history the restarted agent
/// had no baseline: the leak's climb was the young series' usual level, and nothing was raised.
#[test]
fn an_agent_restarted_during_a_counter_only_outage_raises_it_again_within_10_s() {
    let leaky = TcpListener::bind("127.0.0.1:0").expect("bind leaky listener");
    let port = leaky.local_addr().expect("addr").port();
    let live = live_connections(&leaky);
    // The history is saved every second (15 s by default) so the test need not wait long.
    let (agent, config) = start_agent_full(&[("leaky", port)], "save_interval_ms = 1000\n", "");
    let config_arg = config
        .path()
        .join("faultline.toml")
        .to_str()
        .expect("utf-8 path")
        .to_owned();
    wait_judged(&agent, &[port], &[]);

    let leak = close_wait_leak(&leaky);
    let label = format!("CLOSE-WAIT :{port}");
    let doc = poll_incidents(&agent, RAISED_WITHIN, |doc| {
        incident_with(doc, &label).is_some()
    })
    .unwrap_or_else(|doc| panic!("no incident with {label} within 10 s: {doc:#}"));
    let onset = incident_with(&doc, &label).expect("found above")["onset_unix_ms"]
        .as_i64()
        .expect("onset");
    // Two more saves: one of them began after the incident was raised.
    let saves = || agent.store_metric("counter_history_saves_total");
    let before = saves().expect("counter_history_saves_total on /metrics");
    crate::support::eventually(Duration::from_secs(20), "two more saves", || {
        (saves()? >= before + 2.0).then_some(())
    });

    // The agent dies with the leak going on, and comes back on the same data two seconds
    // later.
    let dir = agent.kill9();
    let killed_at = now_unix_ms();
    thread::sleep(Duration::from_secs(2));
    let restarted = Instant::now();
    let agent = Agent::start_in(dir, &["--config", &config_arg]);
    let doc = poll_incidents(&agent, RAISED_WITHIN, |doc| {
        incident_with(doc, &label).is_some()
    });
    drop(leak);
    let doc = doc.unwrap_or_else(|doc| {
        panic!(
            "no incident with {label} within {RAISED_WITHIN:?} of the restart ({:?} after); \
             stderr:\n{}\n{doc:#}",
            restarted.elapsed(),
            agent.stderr()
        )
    });
    eprintln!(
        "the leak's incident was back {:?} after the restart",
        restarted.elapsed()
    );
    assert!(
        agent.stderr().contains("restored the counter history"),
        "{}",
        agent.stderr()
    );
    let incident = incident_with(&doc, &label).expect("found above");
    assert_eq!(
        incident["counters"][0]["anomaly"]["label"], label,
        "the leak's counter must lead: {incident:#}"
    );
    assert_eq!(incident["active"], true, "{incident:#}");
    assert_eq!(incident["ongoing_at_start"], true, "{incident:#}");
    let again = incident["onset_unix_ms"].as_i64().expect("onset");
    assert!(
        again < killed_at && (again - onset).abs() <= 2_000,
        "onset {again} after the restart, {onset} before it, killed at {killed_at}: {incident:#}"
    );

    // The port's chart: its points from before the restart, none while the agent was down,
    // then the new ones (once the restarted agent has sampled).
    let (time, points) = crate::support::eventually(
        Duration::from_secs(10),
        "a CLOSE-WAIT point after the restart",
        || {
            let counters = agent.get_json("/api/v1/counters");
            let start = counters["history_start_unix_ms"].as_i64()?;
            let step = counters["step_ms"].as_i64()?;
            let points: Vec<Option<f64>> = counters["sockets"].as_array()?.iter().find(|s| {
                s["port"] == port && s["state"] == "close_wait" && s["side"] == "local"
            })?["history"]["points"]
                .as_array()?
                .iter()
                .map(Value::as_f64)
                .collect();
            let time = move |i: usize| start + i as i64 * step;
            let after =
                (0..points.len()).any(|i| time(i) > killed_at + 2_000 && points[i].is_some());
            after.then_some((time, points))
        },
    );
    let down = |i: usize| (killed_at..killed_at + 2_000).contains(&time(i));
    assert!(
        (0..points.len()).any(|i| time(i) < killed_at && points[i].is_some()),
        "no point before the restart: {points:?}"
    );
    assert!(
        (0..points.len()).all(|i| !down(i) || points[i].is_none()),
        "a point while the agent was down: {points:?}"
    );
    drop(live);
}

/// Builds `tests/go/leak` with Debian's Go (GOPATH mode, standard library only) into `dir`.
fn build_go_leak(dir: &std::path::Path) -> std::path::PathBuf {
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/go/leak/main.go");
    let out = dir.join("leak");
    let status = std::process::Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(source)
        .env("GO111MODULE", "off")
        .env("GOPATH", dir.join("gopath"))
        .status()
        .expect("run `go` (the test command installs Debian's golang-go)");
    assert!(status.success(), "go build {source} failed: {status}");
    out
}

/// A running Go leak service, killed when dropped.
struct GoService(std::process::Child);

impl Drop for GoService {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the Go leak service built at `binary` on `listen` (`127.0.0.1:0` for a free port);
/// it and the address it accepts connections on.
fn start_go_leak(binary: &std::path::Path, listen: &str) -> (GoService, String) {
    let mut child = std::process::Command::new(binary)
        .arg(listen)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the Go leak service");
    let stdout = child.stdout.take().expect("stdout");
    let service = GoService(child);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
        .expect("read the service's address");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (service, addr)
}

/// A real Go service leaking a goroutine per request: the incident's goroutine-leak hint shows
/// where the goroutines wait, read from the service's own pprof dump — the function and line
/// of the leak, not only a count that grows.
#[test]
fn a_goroutine_leak_incident_shows_where_the_goroutines_wait() {
    let build = tempfile::tempdir().expect("tempdir");
    let binary = build_go_leak(build.path());
    let (_service, addr) = start_go_leak(&binary, "127.0.0.1:0");
    let port: u16 = addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let (agent, _dir) = start_agent_with(
        &[("leaky", port)],
        &format!(
            "[[tasks]]\nname = \"leaky\"\nurl = \"http://{addr}/debug/pprof/goroutine?debug=1\"\n"
        ),
    );
    // A baseline of the goroutine count (10 points at 500 ms after a 2 s warm-up).
    crate::support::eventually(Duration::from_secs(60), "a goroutine baseline", || {
        let counters = agent.get_json("/api/v1/counters");
        let points = counters["tasks"]
            .as_array()?
            .iter()
            .find(|t| t["target"] == "leaky")?["history"]["points"]
            .as_array()?
            .iter()
            .filter(|p| p.is_number())
            .count();
        (points >= 20).then_some(())
    });
    // 20 requests a second, each leaving a goroutine blocked on a channel send.
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let url = format!("http://{addr}/leak");
    let _leak = Loop::start(move || {
        let _ = client.get(&url).send().map(|r| r.bytes());
    });
    let doc = poll_incidents(&agent, Duration::from_secs(45), |doc| {
        incident_with(doc, "goroutines leaky (http)").is_some_and(|i| {
            i["hints"][0]["evidence"].as_array().is_some_and(|e| {
                e.iter()
                    .any(|e| e.as_str().is_some_and(|s| s.contains("main.leak.func1")))
            })
        })
    })
    .unwrap_or_else(|doc| panic!("no goroutine-leak incident showing the leaking frame: {doc:#}"));
    let incident = incident_with(&doc, "goroutines leaky (http)").expect("incident");
    assert_eq!(
        incident["hints"][0]["rule_id"], "goroutine-leak",
        "{incident:#}"
    );
    let evidence: Vec<&str> = incident["hints"][0]["evidence"]
        .as_array()
        .expect("evidence")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let stack = evidence
        .iter()
        .find(|e| e.starts_with("where most goroutines wait: "))
        .unwrap_or_else(|| panic!("{evidence:?}"));
    assert!(
        stack.contains("wait in [chan send] at main.leak.func1 (main.go:"),
        "{stack}"
    );
}

/// A new version that leaks from its first request, started after the agent (as a deploy
/// is): its goroutine count climbs from its first sample, so its young baseline is the leak
/// itself, and judged against that baseline it never broke from anything (the Go lab with a
/// 40 s baseline: goroutines 11 → 5,409 and no incident). Raised on its shape, dated at the
/// service's start, with where the goroutines wait.
#[test]
fn a_service_that_leaks_from_its_first_request_is_an_incident() {
    let build = tempfile::tempdir().expect("tempdir");
    let binary = build_go_leak(build.path());
    // The port first: the agent is configured for a service that is not running yet.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let (agent, _dir) = start_agent_with(
        &[("leaky", port)],
        &format!(
            "[[tasks]]\nname = \"leaky\"\nurl = \"http://{addr}/debug/pprof/goroutine?debug=1\"\n"
        ),
    );
    // The agent (answering from here) watches the node for a few samples with nothing there.
    thread::sleep(Duration::from_secs(3));
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let (_service, _) = start_go_leak(&binary, &addr);
    // 20 requests a second from the first, each leaving a goroutine blocked on a send.
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let url = format!("http://{addr}/leak");
    let _leak = Loop::start(move || {
        let _ = client.get(&url).send().map(|r| r.bytes());
    });
    let label = "goroutines leaky (http)";
    let doc = poll_incidents(&agent, Duration::from_secs(60), |doc| {
        incident_with(doc, label).is_some()
    })
    .unwrap_or_else(|doc| panic!("no incident for a leak from the service's start: {doc:#}"));
    let incident = incident_with(&doc, label).expect("incident");
    assert_eq!(
        incident["hints"][0]["rule_id"], "goroutine-leak",
        "{incident:#}"
    );
    let counter = incident["counters"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["anomaly"]["label"] == label))
        .expect("the goroutine counter");
    let evidence = counter["anomaly"]["evidence"].as_str().unwrap_or_default();
    assert!(
        evidence.contains("first seen at") && evidence.ends_with("a leak, not a start-up"),
        "{evidence}"
    );
    // Dated where the service's goroutines were first counted, not before it started.
    let onset = incident["onset_unix_ms"].as_i64().expect("onset");
    assert!(
        onset >= started - 1_000 && onset <= started + 10_000,
        "onset {onset}, service started at {started}"
    );
}

/// A child process of the test, killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `tests/python/http_callers.py` with `args`.
fn http_callers(args: &[&str]) -> Child {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/python/http_callers.py"
    );
    Child(
        std::process::Command::new("python3")
            .arg(script)
            .args(args)
            .spawn()
            .expect("run http_callers.py"),
    )
}

/// A keep-alive server "cache" and two callers that send no spans and log nothing: orders
/// keeps one connection, checkout opens a connection per call (each lives about 5 ms: the
/// server answers after 5 ms, so a census every half second sees one about one time in five;
/// with 1 ms calls a debug agent named checkout 7–12 s after its start on a loaded node, a
/// release one in 3–4 s, see outgoing-notes). The
/// TIME-WAIT storm on cache's port is an incident within 10 s of checkout's start, named
/// after checkout from its own sockets (the looks at its descriptors between censuses), never
/// after orders, with evidence an SRE can check with `ss -tnp`.
#[test]
fn an_untraced_client_opening_a_connection_per_call_is_named_from_its_sockets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port_file = dir.path().join("port");
    let go = dir.path().join("go");
    let _server = http_callers(&["server", port_file.to_str().expect("utf-8"), "0.005"]);
    let started = Instant::now();
    let port: u16 = loop {
        if let Ok(text) = std::fs::read_to_string(&port_file) {
            break text.trim().parse().expect("a port");
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no server");
        thread::sleep(Duration::from_millis(50));
    };
    let port_arg = port.to_string();
    let orders = http_callers(&["pooled", &port_arg, "20"]);
    let checkout = http_callers(&["per-call", &port_arg, "40", go.to_str().expect("utf-8")]);
    let pid_file = |name: &str, child: &Child| {
        let path = dir.path().join(format!("{name}.pid"));
        std::fs::write(&path, child.0.id().to_string()).expect("pid file");
        path
    };
    let more = format!(
        "[[counters.processes]]\nname = \"orders\"\npid_file = \"{}\"\n\
         [[counters.processes]]\nname = \"checkout\"\npid_file = \"{}\"\n",
        pid_file("orders", &orders).display(),
        pid_file("checkout", &checkout).display(),
    );
    let (agent, _config) = start_agent_with(&[("cache", port)], &more);
    wait_judged(&agent, &[port], &[]);

    std::fs::write(&go, "").expect("go");
    let started = Instant::now();
    let label = format!("TIME-WAIT →:{port}");
    let doc = poll_incidents(&agent, Duration::from_secs(30), |doc| {
        if let Some(i) = incident_with(doc, &label) {
            assert_ne!(
                i["culprit"]["service"], "orders",
                "the pooled caller: {i:#}"
            );
            i["culprit"]["service"] == "checkout"
        } else {
            false
        }
    })
    .unwrap_or_else(|doc| panic!("no incident named after checkout within 30 s: {doc:#}"));
    let raised_after = started.elapsed();
    let incident = incident_with(&doc, &label).expect("raised above");
    assert!(
        raised_after <= RAISED_WITHIN,
        "named {raised_after:?} after checkout began: {incident:#}"
    );
    assert_eq!(incident["culprit"]["role"], "caller", "{incident:#}");
    assert!(hint(&incident, "time-wait-storm").is_some(), "{incident:#}");
    let reasoning = incident["culprit"]["reasoning"].to_string();
    let checkout_pid = checkout.0.id();
    for needle in [
        "its caller checkout opens a connection per call".to_owned(),
        format!("reads of checkout's descriptors (pid {checkout_pid})"),
        format!("orders (pid {}) held 1 connection there", orders.0.id()),
        format!("ss -tnp '( dport = :{port} )'"),
    ] {
        assert!(reasoning.contains(&needle), "{needle:?} in {reasoning}");
    }
    eprintln!("checkout named {raised_after:?} after it began");
}
