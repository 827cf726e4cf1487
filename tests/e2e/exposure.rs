//! The agent exposed beyond loopback, through the real binary (#12's exposure): the dashboard
//! and both OTLP receivers over TLS with a certificate made here, and the OTLP receivers
//! asking for their own bearer token. The official OpenTelemetry Python SDK exports with the
//! token (accepted, the trace is stored) and without it (refused, counted, nothing stored),
//! over gRPC and HTTP; a plain-text client on a TLS port is refused and counted.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::Value;

use crate::support::{announced, binary, wait_announced};

const WEB_TOKEN: &str = "web-token-0123456789abcdef";
const OTLP_TOKEN: &str = "otlp-token-fedcba9876543210";

/// The agent process, killed when the test ends however it ends.
struct Running {
    child: Child,
    stderr: std::path::PathBuf,
}

impl Running {
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that trusts only the test's certificate authority (the self-signed certificate).
fn trusting_client(cert_pem: &str) -> Client {
    Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("pem"))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

fn send(protocol: &str, endpoint: &str, ca: &Path, token: Option<&str>) -> Value {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/python/send_with_token.py"
    );
    let mut command = Command::new("python3");
    // `requests` lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override the exporter's own
    // `certificate_file` (psf/requests#3829); some machines set them for the system CAs.
    command
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE");
    command.args([
        script,
        "--protocol",
        protocol,
        "--endpoint",
        endpoint,
        "--ca",
    ]);
    command.arg(ca);
    if let Some(token) = token {
        command.args(["--token", token]);
    }
    let out = command.output().expect("run send_with_token.py");
    assert!(
        out.status.success(),
        "send_with_token.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

fn metric(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
}

#[test]
fn tls_listeners_and_the_otlp_token_hold_against_the_python_sdk() {
    let check = Command::new("python3")
        .args(["-c", "import opentelemetry.exporter.otlp, grpc"])
        .status()
        .expect("python3");
    assert!(
        check.success(),
        "the OpenTelemetry Python SDK is missing: run ./scripts/test.sh, which installs it"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("a self-signed certificate");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, made.cert.pem()).expect("cert");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("key");
    let config = dir.path().join("faultline.toml");
    let tls = format!(
        "cert_file = {:?}\nkey_file = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    std::fs::write(
        &config,
        format!(
            "[web]\nlisten = \"127.0.0.1:0\"\ntoken = \"{WEB_TOKEN}\"\n[web.tls]\n{tls}\
             [otlp]\ngrpc_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n\
             token = \"{OTLP_TOKEN}\"\n[otlp.tls]\n{tls}"
        ),
    )
    .expect("config");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs");
    let stderr = dir.path().join("agent.stderr");
    let child = Command::new(binary())
        .arg("run")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--log")
        .arg(format!("{}/*.log", logs.display()))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("spawn faultline run");
    let mut agent = Running { child, stderr };
    // The agent binds port 0 itself and announces the addresses it got.
    let web = wait_announced(
        &agent.stderr.clone(),
        "dashboard",
        Duration::from_secs(30),
        || agent.child.try_wait().ok().flatten(),
    );
    let text = agent.stderr();
    let grpc_endpoint = announced(&text, "otlp_grpc").expect("otlp_grpc announced");
    let http_endpoint = announced(&text, "otlp_http").expect("otlp_http announced");

    let client = trusting_client(&made.cert.pem());
    let base = format!("https://{web}");
    let get = |path: &str| -> Option<(u16, String)> {
        let response = client
            .get(format!("{base}{path}"))
            .bearer_auth(WEB_TOKEN)
            .send()
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().ok()?))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while get("/api/v1/health").map(|(s, _)| s) != Some(200) {
        if let Ok(Some(status)) = agent.child.try_wait() {
            panic!("faultline exited with {status}: {}", agent.stderr());
        }
        assert!(
            Instant::now() < deadline,
            "no HTTPS health answer within 30 s: {}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The dashboard speaks only TLS: a plain-text request gets no answer, and is counted.
    assert!(crate::support::http_get(&format!("http://{web}/api/v1/health")).is_err());

    let mut stored = Vec::new();
    let mut refused = Vec::new();
    for (protocol, endpoint) in [("grpc", &grpc_endpoint), ("http", &http_endpoint)] {
        let with = send(protocol, endpoint, &cert, Some(OTLP_TOKEN));
        assert_eq!(
            with["result"], "SUCCESS",
            "{protocol} with the token: {with}"
        );
        stored.push(with["trace_id"].as_str().expect("trace id").to_owned());
        let without = send(protocol, endpoint, &cert, None);
        assert_eq!(without["result"], "FAILURE", "{protocol} without a token");
        refused.push(without["trace_id"].as_str().expect("trace id").to_owned());
        // The web token is not the OTLP token.
        let wrong = send(protocol, endpoint, &cert, Some(WEB_TOKEN));
        assert_eq!(wrong["result"], "FAILURE", "{protocol} with the web token");
        refused.push(wrong["trace_id"].as_str().expect("trace id").to_owned());
    }
    for trace_id in &stored {
        let deadline = Instant::now() + Duration::from_secs(15);
        while get(&format!("/api/v1/traces/{trace_id}")).map(|(s, _)| s) != Some(200) {
            assert!(Instant::now() < deadline, "trace {trace_id} never stored");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    for trace_id in &refused {
        let (status, _) = get(&format!("/api/v1/traces/{trace_id}")).expect("answer");
        assert_eq!(status, 404, "a refused export was stored: {trace_id}");
    }
    let (_, metrics) = get("/metrics").expect("metrics");
    assert_eq!(
        metric(
            &metrics,
            "faultline_store_otlp_requests_unauthenticated_total"
        ),
        4.0
    );
    assert!(metric(&metrics, "faultline_store_web_tls_handshakes_failed_total") >= 1.0);
}
