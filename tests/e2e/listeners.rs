//! The agent's listeners against a local process that opens connections and leaves them idle
//! or slow (#12): idle and slow connections are closed, a crowd beyond the connection limit is
//! refused and counted, and a crowd on one listener never blinds the others — not even at
//! the process's file-descriptor limit.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use crate::support::{http_get, Agent};

/// Listener bounds small enough for a test: 40 connections, 1 s for a request head, 1.5 s
/// idle.
const SMALL_LIMITS: &str = "[web.connections]\nmax_connections = 40\nheader_read_timeout_ms = 1000\nidle_timeout_ms = 1500\n\n[otlp.connections]\nmax_connections = 40\nheader_read_timeout_ms = 1000\nidle_timeout_ms = 1500\n";

fn start_with_config(toml: &str) -> Agent {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("faultline.toml");
    std::fs::write(&config, toml).expect("write config");
    let config = config.display().to_string();
    Agent::start_in(dir, &["--config", &config])
}

/// The address a component of the agent listens on, from `/api/v1/health`.
fn address_of(agent: &Agent, component: &str) -> SocketAddr {
    let health = agent.get_json("/api/v1/health");
    health["components"][component]["address"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address for {component} in {health}"))
}

/// Opens `n` connections and sends `prefix` on each (nothing when empty).
fn open(addr: SocketAddr, n: usize, prefix: &[u8]) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).expect("connect");
            stream
                .set_read_timeout(Some(Duration::from_millis(200)))
                .expect("read timeout");
            if !prefix.is_empty() {
                stream.write_all(prefix).expect("write");
            }
            stream
        })
        .collect()
}

/// Whether the agent closed the connection (EOF or reset); false while it is still open.
fn closed_by_agent(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            // An answer (a 408 for a slow head): read on until the close.
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Waits (bounded) until the agent closed every connection.
fn wait_all_closed(what: &str, mut streams: Vec<TcpStream>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !streams.is_empty() {
        streams.retain_mut(|s| !closed_by_agent(s));
        assert!(
            Instant::now() < deadline,
            "{} {what} connections still open after 20 s",
            streams.len()
        );
    }
}

/// The value of a sample in `/metrics`.
fn metric(agent: &Agent, name: &str) -> f64 {
    let (status, text) = agent.get("/metrics");
    assert_eq!(status, 200);
    text.lines()
        .find_map(|line| {
            let (key, value) = line.split_once(' ')?;
            (key == name).then(|| value.trim().parse().ok()).flatten()
        })
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

#[test]
fn idle_and_slow_connections_are_closed_and_a_crowd_beyond_the_limit_is_refused_and_counted() {
    let agent = start_with_config(SMALL_LIMITS);
    let web = address_of(&agent, "web");
    let otlp_http = address_of(&agent, "otlp_http");
    let otlp_grpc = address_of(&agent, "otlp_grpc");

    // 60 idle connections on a listener of 40: 20 are refused at once.
    let idle_web = open(web, 60, b"");
    let slow_head = open(otlp_http, 10, b"POST /v1/traces HTTP/1.1\r\nhost: x\r\n");
    let idle_http = open(otlp_http, 10, b"");
    let idle_grpc = open(otlp_grpc, 10, b"");
    wait_all_closed("idle web", idle_web);
    wait_all_closed("slow-head OTLP/HTTP", slow_head);
    wait_all_closed("idle OTLP/HTTP", idle_http);
    wait_all_closed("idle OTLP/gRPC", idle_grpc);

    // Served again, and the refusals and idle closes are on /metrics.
    assert!(metric(&agent, "faultline_store_web_connections_refused_total") >= 20.0);
    assert!(metric(&agent, "faultline_store_otlp_connections_idle_closed_total") >= 10.0);
    let (status, _) = http_get(&format!("http://{otlp_http}/v1/traces")).expect("OTLP answers");
    assert_eq!(status, 405, "GET on an OTLP route");
}

#[test]
fn a_crowd_at_the_fd_limit_on_the_dashboard_does_not_blind_the_otlp_listeners() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("faultline.toml");
    // Long timeouts: the crowd stays for the whole test.
    std::fs::write(
        &config,
        "[web.connections]\nheader_read_timeout_ms = 60000\nidle_timeout_ms = 60000\n",
    )
    .expect("write config");
    let config = config.display().to_string();
    let agent = Agent::start_with(dir, &["--config", &config], |command| {
        // SAFETY: setrlimit is async-signal-safe; the struct lives on this stack frame.
        unsafe {
            command.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 160,
                    rlim_max: 160,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    assert!(
        agent.stderr().contains("open-files limit is 160"),
        "the shrunk limits are said at start:\n{}",
        agent.stderr()
    );
    let web = address_of(&agent, "web");
    let otlp_http = address_of(&agent, "otlp_http");

    // More connections than the agent has file descriptors.
    let crowd = open(web, 200, b"");
    let (status, _) = http_get(&format!("http://{otlp_http}/v1/traces"))
        .expect("the OTLP listener still answers with the dashboard crowded");
    assert_eq!(status, 405);
    drop(crowd);
    let deadline = Instant::now() + Duration::from_secs(20);
    while http_get(&format!("{}/api/v1/health", agent.base)).is_err() {
        assert!(Instant::now() < deadline, "the dashboard answers again");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(metric(&agent, "faultline_store_web_connections_refused_total") >= 100.0);
}

#[test]
fn an_otlp_listener_beyond_loopback_is_warned_about_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stderr_path = dir.path().join("agent.stderr");
    let mut child = std::process::Command::new(crate::support::binary())
        .args(["run", "--listen", "127.0.0.1:0"])
        .args(["--otlp-grpc", "127.0.0.1:0", "--otlp-http", "0.0.0.0:0"])
        .args(["--data-dir", &dir.path().join("data").display().to_string()])
        .args(["--log", &format!("{}/*.log", dir.path().display())])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("spawn");
    let limit = Duration::from_secs(30);
    let address = crate::support::wait_announced(&stderr_path, "dashboard", limit, || {
        child.try_wait().ok().flatten()
    });
    let deadline = Instant::now() + limit;
    while http_get(&format!("http://{address}/api/v1/health")).is_err() {
        if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            panic!(
                "not healthy: {}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        stderr.contains("otlp.http_listen = 0.0.0.0:") && stderr.contains("not a loopback"),
        "{stderr}"
    );
    assert!(!stderr.contains("otlp.grpc_listen = "), "{stderr}");
}
