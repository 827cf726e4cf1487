//! `faultline replay` as a post-mortem: the timeline says which kind of error came first,
//! when each peaked and how many there were, in the incident's own time.

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::support::{binary, faultline, http_get, wait_announced};

#[test]
fn the_timeline_orders_patterns_by_first_seen_with_exact_peaks() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = String::new();
    // 08:00-08:09: a trickle of timeouts, 2 a minute.
    for minute in 0..10 {
        for second in [5, 35] {
            let _ = writeln!(
                log,
                "time=\"2024-03-11T08:{minute:02}:{second:02}Z\" level=error msg=\"query failed\" error=\"read tcp 10.0.0.{minute}:5432: i/o timeout\""
            );
        }
    }
    // 08:06: a storm of resets, 30 in one minute, then 3 in the next.
    for i in 0..33 {
        let (minute, second) = if i < 30 { (6, i) } else { (7, i - 30) };
        let _ = writeln!(
            log,
            "{{\"level\":\"error\",\"ts\":\"2024-03-11T08:{minute:02}:{second:02}Z\",\"msg\":\"call failed\",\"error\":\"GetUser({i}): read tcp 10.0.1.{i}:4{i:04}->10.0.2.9:8080: read: connection reset by peer\"}}"
        );
    }
    // A bare crash line without a timestamp inherits the time of the line before it.
    log.push_str("panic: runtime error: invalid memory address or nil pointer dereference\n");
    let path = dir.path().join("svc.log");
    std::fs::write(&path, log).unwrap();

    let out = faultline(&[
        "replay",
        "--json",
        "--service",
        "user-svc",
        path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(rows.len(), 3, "{rows:#?}");
    let minute = |ms: &Value| (ms.as_i64().unwrap() / 60_000) % 60;

    let timeouts = &rows[0];
    assert!(
        timeouts["pattern"]
            .as_str()
            .unwrap()
            .contains("i/o timeout"),
        "{timeouts}"
    );
    assert_eq!(timeouts["total"], 20);
    assert_eq!(timeouts["peak_per_minute"], 2);
    assert_eq!(minute(&timeouts["first_seen_unix_ms"]), 0);

    let resets = &rows[1];
    assert!(
        resets["pattern"]
            .as_str()
            .unwrap()
            .contains("connection reset by peer"),
        "{resets}"
    );
    assert_eq!(resets["total"], 33);
    assert_eq!(resets["peak_per_minute"], 30);
    assert_eq!(minute(&resets["peak_minute_unix_ms"]), 6);
    assert_eq!(resets["services"], serde_json::json!(["user-svc"]));

    let panic = &rows[2];
    assert!(
        panic["pattern"]
            .as_str()
            .unwrap()
            .contains("nil pointer dereference"),
        "{panic}"
    );
    assert_eq!(
        minute(&panic["first_seen_unix_ms"]),
        7,
        "the crash line did not inherit the previous time"
    );

    let table = faultline(&["replay", path.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("FIRST SEEN (UTC)"), "{text}");
    assert!(text.contains("2024-03-11 08:06:00"), "{text}");
    let summary = String::from_utf8_lossy(&table.stderr);
    assert!(
        summary.contains("54 lines") && summary.contains("3 patterns"),
        "{summary}"
    );
}

#[test]
fn a_missing_file_is_a_one_line_error() {
    let out = faultline(&["replay", "/nonexistent/app.log"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("/nonexistent/app.log"), "{stderr}");
}

/// Kills the child on drop, so a failed assertion leaves no server behind.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `replay --serve` runs the agent's diagnosis over the replayed time and serves its
/// incidents (it served an empty list): a storm of resets after a quiet hour of other logs is
/// one incident with its pattern, its onset at the storm and its hint.
#[test]
fn replay_serves_the_incidents_the_diagnosis_raises_over_the_replayed_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = String::new();
    // 09:00-09:59: a healthy service, one info line a minute.
    for minute in 0..60 {
        let _ = writeln!(
            log,
            "{{\"level\":\"info\",\"ts\":\"2024-03-11T09:{minute:02}:00Z\",\"msg\":\"served\",\"service\":\"checkout\"}}"
        );
    }
    // 10:00-10:03: resets, 20 a minute, then the logs end.
    for minute in 0..4 {
        for second in 0..20 {
            let _ = writeln!(
                log,
                "{{\"level\":\"error\",\"ts\":\"2024-03-11T10:{minute:02}:{:02}Z\",\"msg\":\"charge failed\",\"service\":\"checkout\",\"error\":\"read tcp 10.0.0.1:4{second:04}->10.0.9.1:443: read: connection reset by peer\"}}",
                second * 3
            );
        }
    }
    let path = dir.path().join("checkout.log");
    std::fs::write(&path, log).unwrap();

    let stderr_path = dir.path().join("replay.stderr");
    let child = std::process::Command::new(binary())
        .args([
            "replay",
            "--serve",
            "--listen",
            "127.0.0.1:0",
            path.to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("spawn faultline replay --serve");
    let mut running = Running(child);
    let limit = std::time::Duration::from_secs(60);
    let listen = wait_announced(&stderr_path, "dashboard", limit, || {
        running.0.try_wait().ok().flatten()
    });
    let url = format!("http://{listen}/api/v1/incidents");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let doc: Value = loop {
        if let Ok((200, body)) = http_get(&url) {
            break serde_json::from_str(&body).expect("incidents JSON");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "replay --serve did not answer {url}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let incidents = doc["incidents"].as_array().expect("incidents");
    assert_eq!(incidents.len(), 1, "{doc:#}");
    let incident = &incidents[0];
    assert!(
        incident["patterns"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("connection reset by peer")),
        "{incident:#}"
    );
    // Its onset is the storm's, in the logs' own time (2024-03-11T10:00:00Z).
    assert_eq!(
        incident["onset_unix_ms"],
        json!(1_710_151_200_000_i64),
        "{incident:#}"
    );
    assert!(
        incident["hints"]
            .as_array()
            .is_some_and(|h| h.iter().any(|h| h["rule_id"] == "connection-reset")),
        "{incident:#}"
    );
}

/// `replay --serve` is served with the agent's connection bounds: past `max_connections`
/// (512 by default) idle connections, one more is closed at once. Plain `axum::serve` kept
/// every connection open for as long as its peer liked.
#[test]
fn replay_serve_refuses_a_crowd_beyond_the_connection_limit() {
    use std::io::Read;
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("svc.log");
    std::fs::write(
        &path,
        "time=\"2024-03-11T08:00:05Z\" level=error msg=\"query failed\" error=\"i/o timeout\"\n",
    )
    .unwrap();
    let stderr_path = dir.path().join("replay.stderr");
    let mut replay = std::process::Command::new(crate::support::binary())
        .args([
            "replay",
            "--serve",
            "--listen",
            "127.0.0.1:0",
            path.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("spawn faultline replay --serve");
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let replay = Kill(&mut replay);
    let limit = Duration::from_secs(30);
    let listen = wait_announced(&stderr_path, "dashboard", limit, || {
        replay.0.try_wait().ok().flatten()
    });
    let base = format!("http://{listen}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while crate::support::http_get(&format!("{base}/api/v1/health"))
        .map(|(s, _)| s)
        .ok()
        != Some(200)
    {
        assert!(Instant::now() < deadline, "replay --serve never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
    let crowd: Vec<TcpStream> = (0..512)
        .map(|_| TcpStream::connect(&listen).expect("connect"))
        .collect();
    let mut one_more = TcpStream::connect(&listen).expect("connect");
    one_more
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 16];
    let read = one_more.read(&mut buf);
    assert!(
        matches!(read, Ok(0))
            || read
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the connection beyond the limit was not closed: {read:?}"
    );
    drop(crowd);
    drop(replay);
}

/// `replay --serve` takes the dashboard's token and TLS as `run` does (`--token`, `--config`
/// with `[web]` and `[web.tls]`): a post-mortem served to a team is HTTPS and asks for the
/// token; off loopback without a token, or with a token too short to resist guessing, it
/// refuses to start, as `run` does. It served plain HTTP to anyone before.
#[test]
fn replay_serve_asks_for_the_token_over_tls_as_run_does() {
    use std::time::{Duration, Instant};

    const TOKEN: &str = "replay-token-0123456789abcdef";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("svc.log");
    std::fs::write(
        &path,
        "time=\"2024-03-11T08:00:05Z\" level=error msg=\"query failed\" error=\"i/o timeout\"\n",
    )
    .unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("a self-signed certificate");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let config = dir.path().join("faultline.toml");
    std::fs::write(
        &config,
        format!(
            "[web]\nlisten = \"127.0.0.1:0\"\n[web.tls]\ncert_file = {:?}\nkey_file = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        ),
    )
    .unwrap();

    // Refused before anything is served: off loopback without a token, a short token.
    let file = path.to_str().unwrap();
    for (args, key) in [
        (vec!["--listen", "0.0.0.0:0"], "web.listen"),
        (vec!["--token", "short"], "web.token"),
    ] {
        let mut all = vec!["replay", "--serve"];
        all.extend(args.iter().copied());
        all.push(file);
        let out = std::process::Command::new(binary())
            .args(&all)
            .env_remove("FAULTLINE_TOKEN")
            .output()
            .expect("run faultline replay");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {stderr}");
        assert!(
            stderr.contains(key),
            "{all:?} does not name {key}: {stderr}"
        );
    }

    let stderr_path = dir.path().join("replay.stderr");
    let mut replay = std::process::Command::new(binary())
        .args(["replay", "--serve", "--config"])
        .arg(&config)
        .args(["--token", TOKEN, file])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("spawn faultline replay --serve");
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let replay = Kill(&mut replay);
    let listen = wait_announced(&stderr_path, "dashboard", Duration::from_secs(60), || {
        replay.0.try_wait().ok().flatten()
    });
    let announced = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        announced.contains(&format!("https://{listen}/")),
        "{announced}"
    );
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(made.cert.pem().as_bytes()).expect("pem"),
        )
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let url = format!("https://{listen}/api/v1/incidents");
    let status = |token: Option<&str>| -> Option<u16> {
        let mut request = client.get(&url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().ok().map(|r| r.status().as_u16())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while status(Some(TOKEN)) != Some(200) {
        assert!(
            Instant::now() < deadline,
            "replay --serve never answered over HTTPS with the token: {}",
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(status(None), Some(401), "without the token");
    assert_eq!(status(Some("wrong-token-0123456789abcdef")), Some(401));
    // The dashboard speaks only TLS.
    assert!(http_get(&format!("http://{listen}/api/v1/health")).is_err());
    drop(replay);
}
