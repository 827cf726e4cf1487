//! The node counters of the real agent, as an SRE reads them during an outage: through
//! `GET /api/v1/counters` and the dashboard (counters page, overview chart).
//!
//! - Goroutine counts pushed by the official OpenTelemetry Python SDK over OTLP gRPC and HTTP
//!   (`tests/python/send_goroutines.py`): a leak (40 → 900) is followed by the API and shown by
//!   both pages; when the senders stop, the targets turn failing after `otlp_stale_after_ms`
//!   instead of showing a count. Senders whose clocks are an hour off (raw OTLP/HTTP JSON) are
//!   followed and go stale by the agent's clock.
//! - Goroutine counts scraped from `[[tasks]]` pages served by the test (a pprof goroutine page
//!   and an expvar page whose counts change, a target that accepts and never answers, and the
//!   pprof page wedging after the leak): failing targets show a timeout, never 0 or an old
//!   count.
//! - Sockets of real loopback connections (a TIME_WAIT storm, CLOSE_WAIT, ESTABLISHED pairs):
//!   the API's per-port, per-state counts of the test's own ports equal `ss -tan`'s, and the
//!   counters page shows them. The storm's TIME_WAIT sockets outlive the test by a minute.
//!
//! - A listener that never calls `accept()`: its accept queue against its backlog in the API
//!   and on `/metrics`; a `--task` target that does not answer is down; the agent's runtime.
//!
//! The sampler ticks on its own clock and the senders export on theirs, so every check polls
//! with a deadline until the expected state is there, and fails with what it saw last.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::browser::Browser;
use crate::support::Agent;

/// Generous for a loaded 2-core CI machine; the checks usually pass within a few seconds.
const DEADLINE: Duration = Duration::from_secs(30);

/// How long a pushed value lives without refresh in these tests' agent.
const STALE_AFTER_MS: u64 = 2500;

/// Starts an agent with a config file: the sampler every `interval_ms`, pushed values that go
/// stale quickly, and `extra` appended (e.g. `[[tasks]]` tables). Ports are charted as the
/// product charts them (the busiest and the services' own): a test that counts its own ports
/// declares them as process targets (`listen_port`), kept beyond the busiest whatever the
/// machine's other sockets. (Charting every port made each document of a busy node 12,000
/// series, past the client's timeout in a debug agent.)
fn start_agent(interval_ms: u64, extra: &str) -> (Agent, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("faultline.toml");
    let text = format!(
        "[counters]\n\
         interval_ms = {interval_ms}\n\
         history_seconds = 120\n\
         history_minutes = 5\n\
         otlp_stale_after_ms = {STALE_AFTER_MS}\n\
         {extra}"
    );
    std::fs::write(&config, text).expect("write config");
    let agent = Agent::start(&["--config", config.to_str().expect("utf-8 path")]);
    (agent, dir)
}

/// Polls `check` until it returns `Ok`, or panics after `limit` with the last `Err` (what was
/// seen instead).
fn eventually<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match check() {
            Ok(value) => return value,
            Err(seen) if Instant::now() >= deadline => {
                panic!("{what}: not within {limit:?}; last seen:\n{seen}")
            }
            // Not faster: each poll of the API leaves a TIME_WAIT socket on the node.
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// The task entry of `target` in `/api/v1/counters`.
fn task<'a>(counters: &'a Value, target: &str) -> Option<&'a Value> {
    counters["tasks"]
        .as_array()?
        .iter()
        .find(|t| t["target"] == json!(target))
}

/// Waits until the API shows `target` with the count `value` and no error.
fn wait_task_value(agent: &Agent, target: &str, value: u64) {
    eventually(&format!("API task {target} = {value}"), DEADLINE, || {
        let counters = agent.get_json("/api/v1/counters");
        match task(&counters, target) {
            Some(t) if t["current"] == json!(value) && t["error"].is_null() => Ok(()),
            _ => Err(serde_json::to_string_pretty(&counters["tasks"]).unwrap_or_default()),
        }
    })
}

/// Waits until the API shows `target` failing: no count, and an error whose text contains
/// `reason`. Returns the error text.
fn wait_task_failing(agent: &Agent, target: &str, reason: &str) -> String {
    eventually(
        &format!("API task {target} failing with {reason:?}"),
        DEADLINE,
        || {
            let counters = agent.get_json("/api/v1/counters");
            match task(&counters, target) {
                Some(t) if t["current"].is_null() => match t["error"].as_str() {
                    Some(e) if e.contains(reason) => Ok(e.to_owned()),
                    _ => Err(t.to_string()),
                },
                _ => Err(serde_json::to_string_pretty(&counters["tasks"]).unwrap_or_default()),
            }
        },
    )
}

/// The legend of the chart titled `title` on the open page: `(item text, shown value)` per
/// series.
fn legend(browser: &Browser, title: &str) -> Vec<(String, String)> {
    let items = browser.eval(&format!(
        "const box = [...document.querySelectorAll('main .chartbox')]
             .find((b) => b.querySelector('h3') && b.querySelector('h3').textContent === {});
         if (!box) return [];
         return [...box.querySelectorAll('.legend li')].map((li) =>
             [li.innerText, li.querySelector('.val') ? li.querySelector('.val').textContent : '']);",
        json!(title)
    ));
    items
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|pair| {
                    let part = |i: usize| pair[i].as_str().unwrap_or_default().to_owned();
                    (part(0), part(1))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the legend of chart `title` has an item for `target` (its text starts with the
/// target name) that satisfies `ok`; returns that item's text and value.
fn wait_legend(
    browser: &Browser,
    title: &str,
    target: &str,
    ok: impl Fn(&str, &str) -> bool,
) -> (String, String) {
    eventually(&format!("legend of {title:?}: {target}"), DEADLINE, || {
        let items = legend(browser, title);
        items
            .iter()
            .find(|(text, value)| {
                text.strip_prefix(target)
                    .is_some_and(|rest| rest.starts_with([' ', '\n']))
                    && ok(text, value)
            })
            .cloned()
            .ok_or_else(|| format!("{items:#?}\npage:\n{}", browser.text()))
    })
}

// ---------------------------------------------------------------------------------------------
// Goroutines over OTLP
// ---------------------------------------------------------------------------------------------

/// `send_goroutines.py` running: a service exporting its goroutine gauge.
struct GoroutineSender {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<std::process::ChildStdout>,
}

impl GoroutineSender {
    fn start(protocol: &str, endpoint: &str, service: &str, metric: &str) -> GoroutineSender {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/python/send_goroutines.py"
        );
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--protocol", protocol, "--endpoint", endpoint])
            .args(["--service", service, "--metric", metric])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run send_goroutines.py (the test command installs the OpenTelemetry SDK)");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut sender = GoroutineSender {
            child,
            stdin,
            stdout,
        };
        sender.expect_line("ready");
        sender
    }

    /// Reads the script's next line; it must be `expected` (the script acknowledges each step).
    fn expect_line(&mut self, expected: &str) {
        let mut line = String::new();
        let read = self
            .stdout
            .read_line(&mut line)
            .expect("read sender stdout");
        assert!(
            read > 0 && line.trim() == expected,
            "send_goroutines.py: expected {expected:?}, got {line:?} (exited: {:?})",
            self.child.try_wait()
        );
    }

    /// The service's goroutine count is now `value`.
    fn set(&mut self, value: u64) {
        let stdin = self.stdin.as_mut().expect("sender still running");
        writeln!(stdin, "{value}").expect("write to sender");
        stdin.flush().expect("flush sender stdin");
        self.expect_line(&format!("value {value}"));
    }

    /// The service goes away: the script flushes a last export and exits.
    fn stop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self.child.try_wait().expect("try_wait sender") {
                Some(status) => {
                    assert!(status.success(), "send_goroutines.py exited with {status}");
                    return;
                }
                None if Instant::now() >= deadline => panic!("send_goroutines.py did not exit"),
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Drop for GoroutineSender {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn goroutine_leak_sent_over_otlp_grpc_and_http_is_followed_and_fails_when_the_sender_stops() {
    let (agent, _config) = start_agent(500, "");
    let health = agent.get_json("/api/v1/health");
    let address = |component: &str| {
        health["components"][component]["address"]
            .as_str()
            .unwrap_or_else(|| panic!("no {component} address in health: {health}"))
            .to_owned()
    };
    // Two services, one per transport and per accepted metric name; each service is a target.
    let mut senders = [
        GoroutineSender::start(
            "grpc",
            &address("otlp_grpc"),
            "orders-grpc",
            "go.goroutine.count",
        ),
        GoroutineSender::start(
            "http",
            &address("otlp_http"),
            "payments-http",
            "process.runtime.go.goroutines",
        ),
    ];
    let targets = ["orders-grpc", "payments-http"];

    for sender in &mut senders {
        sender.set(40);
    }
    for target in targets {
        wait_task_value(&agent, target, 40);
    }

    let browser = Browser::start();
    browser.open(&format!("{}/counters", agent.base));
    // The page tells the sampling interval as configured (it said "1 s" for 500 ms).
    assert!(
        browser.text().contains("Sampled every 500 ms"),
        "{}",
        browser.text()
    );

    // The leak: the API and then the page (live, no reload) follow the new value.
    for sender in &mut senders {
        sender.set(900);
    }
    for target in targets {
        wait_task_value(&agent, target, 900);
        wait_legend(&browser, "Tasks per target", target, |text, value| {
            value == "900" && !text.contains("failing")
        });
    }
    browser.screenshot("agent-counters-goroutines-otlp");

    browser.open(&format!("{}/", agent.base));
    for target in targets {
        wait_legend(&browser, "Goroutines / tasks", target, |_, value| {
            value == "900"
        });
    }

    // The services go away: after otlp_stale_after_ms the targets fail, with a reason; the
    // count is gone (null), neither 0 nor the last value.
    for sender in &mut senders {
        sender.stop();
    }
    for target in targets {
        wait_task_failing(&agent, target, "no update");
    }
    // Both pages say so: failing with the reason, and no count ("–").
    for (page, chart) in [
        ("/counters", "Tasks per target"),
        ("/", "Goroutines / tasks"),
    ] {
        browser.open(&format!("{}{page}", agent.base));
        for target in targets {
            let (text, value) = wait_legend(&browser, chart, target, |text, _| {
                text.contains("failing") && text.contains("no update")
            });
            assert_eq!(value, "–", "{page}: a stale target shows a count: {text}");
        }
    }
    browser.open(&format!("{}/counters", agent.base));
    browser.screenshot("agent-counters-goroutines-stale");
}

/// Posts one OTLP/HTTP (JSON) metrics export: `service`'s goroutine gauge at `value`, stamped
/// `time_unix_nanos` by the sender's clock.
fn post_goroutines(endpoint: &str, service: &str, value: u64, time_unix_nanos: i128) {
    let body = json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeMetrics": [{"metrics": [{
            "name": "go.goroutine.count",
            "gauge": {"dataPoints": [{"asInt": value.to_string(), "timeUnixNano": time_unix_nanos.to_string()}]}
        }]}]
    }]});
    let response = reqwest::blocking::Client::new()
        .post(format!("http://{endpoint}/v1/metrics"))
        .header("content-type", "application/json")
        .timeout(Duration::from_secs(5))
        .body(body.to_string())
        .send()
        .expect("POST /v1/metrics");
    assert!(
        response.status().is_success(),
        "POST /v1/metrics: {}",
        response.status()
    );
}

fn unix_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

#[test]
fn otlp_counts_of_senders_with_skewed_clocks_are_followed_and_go_stale_on_the_agents_clock() {
    let (agent, _config) = start_agent(500, "");
    let health = agent.get_json("/api/v1/health");
    let endpoint = health["components"]["otlp_http"]["address"]
        .as_str()
        .unwrap_or_else(|| panic!("no otlp_http address in health: {health}"))
        .to_owned();
    let hour: i128 = 3_600_000_000_000;

    // A service whose clock is an hour behind, sending every 100 ms: its count is followed
    // (a point in the per-tick history), not flagged "no update for 3600 s" at every tick.
    let behind = "clock-behind";
    let ahead = "clock-ahead";
    eventually("history of the late-clocked sender", DEADLINE, || {
        post_goroutines(&endpoint, behind, 70, unix_nanos() - hour);
        post_goroutines(&endpoint, ahead, 50, unix_nanos() + hour);
        let counters = agent.get_json("/api/v1/counters");
        let t = task(&counters, behind).ok_or_else(|| counters["tasks"].to_string())?;
        let points = t["history"]["points"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if points.iter().any(|p| p.as_f64() == Some(70.0)) {
            Ok(())
        } else {
            Err(t.to_string())
        }
    });
    wait_task_value(&agent, ahead, 50);

    // The clock of the second one is fixed: its correct points are taken, not held off for
    // an hour behind its earlier future-stamped one.
    eventually(
        "value of the sender whose clock was fixed",
        DEADLINE,
        || {
            post_goroutines(&endpoint, ahead, 60, unix_nanos());
            let counters = agent.get_json("/api/v1/counters");
            match task(&counters, ahead) {
                Some(t) if t["current"] == json!(60) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    );
    post_goroutines(&endpoint, ahead, 61, unix_nanos() + hour);

    // Both stop sending: both go stale after otlp_stale_after_ms of silence on the agent's clock.
    for target in [behind, ahead] {
        wait_task_failing(&agent, target, "no update");
    }
}

// ---------------------------------------------------------------------------------------------
// Scraped goroutine pages
// ---------------------------------------------------------------------------------------------

/// A loopback HTTP server in a thread, stopped (and joined) on drop. `serve` gets each
/// accepted connection.
struct TestServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    fn start(serve: impl Fn(TcpStream, &AtomicBool) + Send + 'static) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind test server");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let port = listener.local_addr().expect("server address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            // Bounded even if the test forgets to stop it.
            let deadline = Instant::now() + Duration::from_secs(120);
            while !flag.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        serve(stream, &flag);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        TestServer {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads an HTTP request head and returns its path (with query).
fn request_path(stream: &mut TcpStream) -> Option<String> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    head.lines()
        .next()?
        .split_whitespace()
        .nth(1)
        .map(str::to_owned)
}

/// A Go service's debug pages: the pprof goroutine page reports `pprof`, `/debug/vars`
/// reports `expvar` (as `expvar.Publish("goroutines", ...)` does). Once `wedge` is set, the
/// pprof page stops answering (requests are held open), as a service drowning in goroutines
/// does.
fn debug_pages(
    pprof: Arc<AtomicU64>,
    expvar: Arc<AtomicU64>,
    wedge: Arc<AtomicBool>,
) -> TestServer {
    let held = std::sync::Mutex::new(Vec::new());
    TestServer::start(move |mut stream, _| {
        let Some(path) = request_path(&mut stream) else {
            return;
        };
        let pprof_page = path.starts_with("/debug/pprof/goroutine");
        if pprof_page && wedge.load(Ordering::SeqCst) {
            if let Ok(mut held) = held.lock() {
                held.push(stream);
            }
            return;
        }
        let (status, body) = if pprof_page {
            let total = pprof.load(Ordering::SeqCst);
            (
                "200 OK",
                format!(
                    "goroutine profile: total {total}\n\
                     {total} @ 0x43a2b6 0x4071e5 0x406f8b 0x6b1c25 0x46f801\n\
                     #\t0x6b1c24\tmain.handleConn+0x44\t/src/server.go:88\n\n"
                ),
            )
        } else if path == "/debug/vars" {
            let count = expvar.load(Ordering::SeqCst);
            (
                "200 OK",
                format!(
                    r#"{{"cmdline": ["/usr/local/bin/billing"], "goroutines": {count}, "memstats": {{"Alloc": 1048576, "NumGC": 12}}}}"#
                ),
            )
        } else {
            ("404 Not Found", "404 page not found\n".to_owned())
        };
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    })
}

/// A service that accepts connections and never answers (a wedged debug handler). Connections
/// are held until the server stops.
fn wedged_server() -> TestServer {
    let held = std::sync::Mutex::new(Vec::new());
    TestServer::start(move |stream, _| {
        if let Ok(mut held) = held.lock() {
            held.push(stream);
        }
    })
}

#[test]
fn scraped_goroutine_pages_are_followed_and_a_wedged_target_fails_with_a_timeout() {
    let pprof = Arc::new(AtomicU64::new(12));
    let expvar = Arc::new(AtomicU64::new(7));
    let wedge = Arc::new(AtomicBool::new(false));
    let pages = debug_pages(pprof.clone(), expvar.clone(), wedge.clone());
    let wedged = wedged_server();
    // The default interval: with a wedged target every tick waits for its timeout (800 ms).
    let (agent, _config) = start_agent(1000, &format!(
        "\n[[tasks]]\nname = \"user-svc\"\nurl = \"http://127.0.0.1:{pages}/debug/pprof/goroutine?debug=1\"\n\
         \n[[tasks]]\nname = \"billing\"\nurl = \"http://127.0.0.1:{pages}/debug/vars\"\n\
         \n[[tasks]]\nname = \"wedged\"\nurl = \"http://127.0.0.1:{wedged}/debug/pprof/goroutine?debug=1\"\n",
        pages = pages.port,
        wedged = wedged.port,
    ));

    wait_task_value(&agent, "user-svc", 12);
    wait_task_value(&agent, "billing", 7);
    // Accepted, then nothing: a timeout with its reason, never a count of 0.
    let error = wait_task_failing(&agent, "wedged", "timeout");
    assert!(error.contains("timeout after"), "{error}");

    let browser = Browser::start();
    browser.open(&format!("{}/counters", agent.base));
    wait_legend(&browser, "Tasks per target", "user-svc", |_, value| {
        value == "12"
    });

    // Both services leak goroutines; the API and the page (live) follow.
    pprof.store(1500, Ordering::SeqCst);
    expvar.store(640, Ordering::SeqCst);
    wait_task_value(&agent, "user-svc", 1500);
    wait_task_value(&agent, "billing", 640);
    wait_legend(&browser, "Tasks per target", "user-svc", |text, value| {
        value == "1500" && !text.contains("failing")
    });
    wait_legend(&browser, "Tasks per target", "billing", |text, value| {
        value == "640" && !text.contains("failing")
    });
    let (text, value) = wait_legend(&browser, "Tasks per target", "wedged", |text, _| {
        text.contains("failing") && text.contains("timeout")
    });
    assert_eq!(value, "–", "a wedged target shows a count: {text}");
    browser.screenshot("agent-counters-goroutines-scraped");

    // The leaking service stops answering its debug page: failing with a timeout, its count
    // gone from the API and the page (neither 0 nor the last 1500); the other target goes on.
    wedge.store(true, Ordering::SeqCst);
    wait_task_failing(&agent, "user-svc", "timeout");
    let (text, value) = wait_legend(&browser, "Tasks per target", "user-svc", |text, _| {
        text.contains("failing") && text.contains("timeout")
    });
    assert_eq!(
        value, "–",
        "a target that stopped answering shows a count: {text}"
    );
    expvar.store(641, Ordering::SeqCst);
    wait_task_value(&agent, "billing", 641);
    let counters = agent.get_json("/api/v1/counters");
    let wedged_task = task(&counters, "wedged").expect("wedged target listed");
    assert!(wedged_task["current"].is_null(), "{wedged_task}");
}

// ---------------------------------------------------------------------------------------------
// Sockets against ss
// ---------------------------------------------------------------------------------------------

/// `(port, side, state)` → count: sides in the API's names (`local`/`remote`), states as `ss`
/// prints them (`TIME-WAIT`, ...), which the API renders as each series' `state_name`.
type PortStates = BTreeMap<(u16, String, String), u64>;

/// The API's counts for `ports`, non-zero ones only.
fn api_sockets(counters: &Value, ports: &[u16]) -> PortStates {
    let mut out = PortStates::new();
    for s in counters["sockets"].as_array().into_iter().flatten() {
        let port = s["port"].as_u64().and_then(|p| u16::try_from(p).ok());
        let (Some(port), Some(side), Some(state), Some(current)) = (
            port,
            s["side"].as_str(),
            s["state_name"].as_str(),
            s["current"].as_u64(),
        ) else {
            continue;
        };
        if ports.contains(&port) && current > 0 {
            *out.entry((port, side.to_owned(), state.to_owned()))
                .or_default() += current;
        }
    }
    out
}

/// `ss -tan`'s counts for `ports`: a socket whose local port is one of them is on the `local`
/// side of it, one whose peer port is, on the `remote` side.
fn ss_sockets(ports: &[u16]) -> PortStates {
    let out = Command::new("ss")
        .arg("-tan")
        .output()
        .unwrap_or_else(|e| panic!("cannot run ss (install iproute2): {e}"));
    assert!(out.status.success(), "ss -tan failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    // `127.0.0.1:8080`, `[::1]:8080`; a listener's peer is `0.0.0.0:*` (no port: 0).
    let port_of = |address: &str| match address.rsplit(':').next() {
        Some("*") => Some(0),
        Some(port) => port.parse::<u16>().ok(),
        None => None,
    };
    let mut counts = PortStates::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(state), Some(local), Some(peer)) = (
            fields.first().copied(),
            fields.get(3).and_then(|a| port_of(a)),
            fields.get(4).and_then(|a| port_of(a)),
        ) else {
            continue;
        };
        let key = if ports.contains(&local) {
            (local, "local")
        } else if ports.contains(&peer) {
            (peer, "remote")
        } else {
            continue;
        };
        *counts
            .entry((key.0, key.1.to_owned(), state.to_owned()))
            .or_default() += 1;
    }
    counts
}

fn count(states: &PortStates, port: u16, side: &str, state: &str) -> u64 {
    states
        .get(&(port, side.to_owned(), state.to_owned()))
        .copied()
        .unwrap_or(0)
}

#[test]
fn socket_counts_per_port_and_state_equal_ss_for_a_time_wait_storm_close_wait_and_established() {
    // A service on an ephemeral-range port called by short connections that the client closes
    // first: the client ends leave TIME_WAIT behind (a TIME_WAIT storm towards the port).
    let storm = TcpListener::bind("127.0.0.1:0").expect("bind storm listener");
    let storm_port = storm.local_addr().expect("addr").port();
    // A service that leaks (below).
    let leaky = TcpListener::bind("127.0.0.1:0").expect("bind leaky listener");
    let leaky_port = leaky.local_addr().expect("addr").port();
    // The two services are declared as an SRE declares a node's services.
    let (agent, _config) = start_agent(
        500,
        &format!(
            "\n[[counters.processes]]\nname = \"storm-svc\"\nlisten_port = {storm_port}\n\
             \n[[counters.processes]]\nname = \"leaky-svc\"\nlisten_port = {leaky_port}\n"
        ),
    );

    const STORM: usize = 300;
    for _ in 0..STORM {
        let client = TcpStream::connect(("127.0.0.1", storm_port)).expect("connect");
        let (mut server, _) = storm.accept().expect("accept");
        drop(client);
        server
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        // The peer's FIN arrives: read returns 0; then this end closes too.
        let mut byte = [0u8; 1];
        let _ = server.read(&mut byte);
    }

    // A service that leaks: its peers hang up, it never closes (CLOSE_WAIT on the server side,
    // FIN_WAIT2 on the client side), and a few live connections (ESTABLISHED on both sides).
    const CLOSE_WAIT: usize = 12;
    const ESTABLISHED: usize = 5;
    let mut held = Vec::new();
    for _ in 0..CLOSE_WAIT {
        let client = TcpStream::connect(("127.0.0.1", leaky_port)).expect("connect");
        let (server, _) = leaky.accept().expect("accept");
        drop(client);
        held.push(server);
    }
    let mut pairs = Vec::new();
    for _ in 0..ESTABLISHED {
        let client = TcpStream::connect(("127.0.0.1", leaky_port)).expect("connect");
        let (server, _) = leaky.accept().expect("accept");
        pairs.push((client, server));
    }

    // The agent samples on its own tick: poll until its view and ss's (taken just after) agree.
    let ports = [storm_port, leaky_port];
    let (api, ss) = eventually(
        "API sockets equal ss -tan for the test's ports",
        DEADLINE,
        || {
            let api = api_sockets(&agent.get_json("/api/v1/counters"), &ports);
            let ss = ss_sockets(&ports);
            if api == ss {
                Ok((api, ss))
            } else {
                Err(format!("API: {api:#?}\nss -tan: {ss:#?}"))
            }
        },
    );

    // The agreed view is the one the connections above produce.
    assert_eq!(count(&api, storm_port, "local", "LISTEN"), 1, "{api:#?}");
    let time_wait = count(&api, storm_port, "remote", "TIME-WAIT");
    // Loopback may reuse a TIME_WAIT pair for a later connection, so not every one is left.
    assert!(
        time_wait >= STORM as u64 / 2,
        "TIME_WAIT storm not visible: {time_wait} of {STORM}; {api:#?}"
    );
    assert_eq!(
        count(&api, leaky_port, "local", "CLOSE-WAIT"),
        CLOSE_WAIT as u64,
        "{api:#?}"
    );
    assert_eq!(
        count(&api, leaky_port, "remote", "FIN-WAIT-2"),
        CLOSE_WAIT as u64,
        "{api:#?}"
    );
    for side in ["local", "remote"] {
        assert_eq!(
            count(&api, leaky_port, side, "ESTAB"),
            ESTABLISHED as u64,
            "{api:#?}"
        );
    }
    assert_eq!(api, ss);

    // The counters page shows the same counts under the same ports.
    let browser = Browser::start();
    browser.open(&format!("{}/counters", agent.base));
    let shown = [
        (
            format!("Sockets, remote →:{storm_port}"),
            "TIME-WAIT",
            time_wait,
        ),
        (
            format!("Sockets, local :{leaky_port}"),
            "CLOSE-WAIT",
            CLOSE_WAIT as u64,
        ),
        (
            format!("Sockets, remote →:{leaky_port}"),
            "FIN-WAIT-2",
            CLOSE_WAIT as u64,
        ),
        (
            format!("Sockets, local :{leaky_port}"),
            "ESTAB",
            ESTABLISHED as u64,
        ),
    ];
    for (chart, state, expected) in &shown {
        wait_legend(&browser, chart, state, |_, value| {
            value == expected.to_string()
        });
    }
    browser.screenshot("agent-counters-sockets");

    // Keep every socket (and both listeners) open until the comparison is done.
    drop(pairs);
    drop(held);
    drop(leaky);
    drop(storm);
}

// A listener that never accepts, a failing target and the agent itself (accept queue vs
// backlog in the API and on /metrics).

/// Connections left waiting in the test listener's accept queue.
const WAITING: u64 = 5;

#[test]
fn a_slow_accepting_listener_a_failing_target_and_the_agent_itself_are_shown() {
    // Bound but never accepted: the kernel completes the handshakes and queues them.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    let _clients: Vec<TcpStream> = (0..WAITING)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect();
    let agent = Agent::start(&["--task", "down-svc=http://127.0.0.1:1/debug/vars"]);

    let ours = |c: &Value| -> Option<Value> {
        c["listeners"]
            .as_array()?
            .iter()
            .find(|l| l["port"] == port)
            .cloned()
    };
    let started = Instant::now();
    let (counters, listen) = loop {
        let c = agent.get_json("/api/v1/counters");
        let failing = c["tasks"].as_array().is_some_and(|t| {
            t.iter()
                .any(|t| t["target"] == "down-svc" && t["error"].is_string())
        });
        if let Some(l) = ours(&c).filter(|l| l["queue"] == WAITING) {
            if failing && !c["runtime"].is_null() {
                break (c, l);
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "counters never showed the queue, the failing target and the runtime: {c:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };

    // Netlink gives the backlog; /proc/net/tcp cannot, and then it is null, not 0.
    let source = counters["socket_totals"]["source"].as_str().unwrap_or("");
    match source {
        "netlink" => assert!(
            listen["backlog"].as_u64().is_some_and(|b| b > 0),
            "{listen}"
        ),
        "proc" => assert!(listen["backlog"].is_null(), "{listen}"),
        other => panic!("unexpected socket source {other:?}"),
    }
    assert!(counters["sources"]
        .as_array()
        .is_some_and(|s| s.iter().any(|s| s["name"] == "sockets.netlink")));

    let target = counters["tasks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["target"] == "down-svc"))
        .expect("down-svc listed");
    assert!(target["current"].is_null(), "{target}");

    let me = &counters["processes"][0];
    assert_eq!(me["name"], "faultline");
    assert!(
        me["current"]["open_fds"].as_u64().is_some_and(|n| n > 0),
        "{me}"
    );
    assert!(
        me["current"]["rss_bytes"].as_u64().is_some_and(|n| n > 0),
        "{me}"
    );
    assert!(counters["runtime"]["alive_tasks"]["current"]
        .as_u64()
        .is_some_and(|n| n > 0));

    let (status, metrics) = agent.get("/metrics");
    assert_eq!(status, 200);
    let queue_line =
        format!("faultline_tcp_listen_queue{{address=\"127.0.0.1\",port=\"{port}\"}} {WAITING}\n");
    assert!(
        metrics.contains(&queue_line),
        "{queue_line} missing:\n{metrics}"
    );
    assert!(metrics.contains("faultline_task_up{target=\"down-svc\"} 0\n"));
    assert!(!metrics.contains("faultline_tasks{target=\"down-svc\""));
    assert!(metrics.contains("faultline_runtime_alive_tasks "));
    assert!(metrics.contains("faultline_counter_source_up{source=\"sockets.netlink\"}"));
    // The counter store's own bounds are visible too.
    assert!(metrics.contains("faultline_store_counter_series_evicted_total 0\n"));
    assert!(metrics.contains("faultline_store_counter_task_targets 1\n"));

    let minutes = agent.get_json("/api/v1/counters?resolution=minute");
    assert_eq!(minutes["resolution"], "minute");
    assert_eq!(minutes["step_ms"], 60_000);
    let (status, body) = agent.get("/api/v1/counters?resolution=hour");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("`resolution`"), "{body}");
    drop(listener);
}
