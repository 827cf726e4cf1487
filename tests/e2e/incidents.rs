//! Counter-only incidents through the real binary: real loopback sockets that break from
//! their baseline with no error line at all — a CLOSE-WAIT leak (a server that never closes
//! what its peers hung up) and a TIME-WAIT storm (a client that opens a connection per call)
//! — are raised as incidents through `/api/v1/incidents` within 10 s of their start, with the
//! port's counter first and the matching hint whose command names the port.
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

use crate::support::Agent;

/// The bound: an incident within 10 s of the start of the counter's change.
const RAISED_WITHIN: Duration = Duration::from_secs(10);

/// Starts an agent sampling every 500 ms, every port group shown individually, with a 10 s
/// baseline of at least 10 points and diagnosis every 500 ms.
fn start_agent() -> (Agent, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("faultline.toml");
    let text = "[counters]\n\
         interval_ms = 500\n\
         top_ports = 4096\n\
         max_series = 16384\n\
         history_seconds = 120\n\
         history_minutes = 5\n\
         [diagnosis]\n\
         interval_ms = 500\n\
         [diagnosis.anomalies]\n\
         baseline_ms = 10000\n\
         search_ms = 20000\n\
         min_baseline_points = 10\n\
         warmup_ms = 2000\n";
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

/// Waits until the counters hold a baseline for the port groups of `ports`: enough known
/// points of their ESTABLISHED sockets for the diagnosis' 10-point minimum and a few more.
fn wait_baseline(agent: &Agent, ports: &[u16]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let counters = agent.get_json("/api/v1/counters");
        let known = |port: u16| {
            counters["sockets"].as_array().and_then(|all| {
                all.iter()
                    .find(|s| {
                        s["port"] == port && s["state"] == "established" && s["side"] == "local"
                    })
                    .and_then(|s| s["history"]["points"].as_array())
                    .map(|p| p.iter().filter(|v| !v.is_null()).count())
            })
        };
        if ports.iter().all(|&p| known(p).is_some_and(|n| n >= 14)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no baseline for ports {ports:?} within 60 s: {counters:#}"
        );
        thread::sleep(Duration::from_millis(250));
    }
}

/// A background loop, stopped (and joined) on drop.
struct Loop {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Loop {
    fn start(mut step: impl FnMut() + Send + 'static) -> Loop {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = thread::spawn(move || {
            // Bounded: at most two minutes of steps whatever happens to the test.
            let until = Instant::now() + Duration::from_secs(120);
            while !flag.load(Ordering::Relaxed) && Instant::now() < until {
                step();
                thread::sleep(Duration::from_millis(50));
            }
        });
        Loop {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
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
    let mut live = Vec::new();
    for listener in [&leaky, &storm] {
        for _ in 0..3 {
            let port = listener.local_addr().expect("addr").port();
            let client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            let (server, _) = listener.accept().expect("accept");
            live.push((client, server));
        }
    }
    let (agent, _config) = start_agent();
    wait_baseline(&agent, &[leaky_port, storm_port]);

    // The leak: every 50 ms a peer connects and hangs up, and the server never closes its end.
    let started = Instant::now();
    let leak = Loop::start({
        let leaky = leaky.try_clone().expect("clone listener");
        let mut held = Vec::new();
        move || {
            if let Ok(client) = TcpStream::connect(("127.0.0.1", leaky_port)) {
                if let Ok((server, _)) = leaky.accept() {
                    drop(client);
                    held.push(server);
                }
            }
        }
    });
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

    // The storm: every 50 ms a client opens a connection, and closes it first once the
    // server has accepted it: its end stays in TIME-WAIT towards the port.
    let started = Instant::now();
    let storm_loop = Loop::start({
        let storm = storm.try_clone().expect("clone listener");
        move || {
            for _ in 0..5 {
                let Ok(client) = TcpStream::connect(("127.0.0.1", storm_port)) else {
                    continue;
                };
                let Ok((mut server, _)) = storm.accept() else {
                    continue;
                };
                drop(client);
                let _ = server.set_read_timeout(Some(Duration::from_secs(2)));
                let mut byte = [0u8; 1];
                let _ = server.read(&mut byte);
            }
        }
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
    assert!(
        hint(&incident, "time-wait-storm").is_some(),
        "no TIME-WAIT hint: {incident:#}"
    );
    eprintln!("TIME-WAIT storm raised {raised_after:?} after it started");
    drop(live);
}
