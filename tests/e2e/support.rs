//! Running the real binary: start an agent on loopback ports it picks itself (`:0`, so no
//! other process can take a port between its choice and its bind), read the dashboard address
//! it announces, wait until `/api/v1/health` answers, stop it with a signal.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_faultline")
}

/// Runs `faultline ARGS...` to completion with a deadline.
pub fn faultline(args: &[&str]) -> Output {
    let child = Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn faultline");
    wait_output(child, Duration::from_secs(60))
}

fn wait_output(mut child: Child, limit: Duration) -> Output {
    let started = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("faultline did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collect output")
}

/// The address (`127.0.0.1:PORT`) that `text` announces under `name`: the agent's start line
/// (`dashboard=http://ADDR/`, `otlp_grpc=ADDR` as text, `"dashboard":"http://ADDR/"` as
/// JSON), the demo's banner (`dashboard  http://ADDR/`) or replay's (`dashboard on
/// http://ADDR/`). `None` until it is written.
pub fn announced(text: &str, name: &str) -> Option<String> {
    text.match_indices(name).find_map(|(at, word)| {
        let rest = text[at + word.len()..].trim_start_matches([' ', '=', '"', ':']);
        let rest = rest.strip_prefix("on ").unwrap_or(rest);
        let rest = ["http://", "https://"]
            .iter()
            .find_map(|scheme| rest.strip_prefix(scheme))
            .unwrap_or(rest);
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']')))
            .unwrap_or(rest.len());
        let address = &rest[..end];
        address
            .parse::<std::net::SocketAddr>()
            .is_ok()
            .then(|| address.to_owned())
    })
}

/// Polls the file `path` (a child's output) until it announces the address `name` (see
/// [`announced`]); panics with the output when `exited` says the child is gone or `limit`
/// passes.
pub fn wait_announced(
    path: &Path,
    name: &str,
    limit: Duration,
    mut exited: impl FnMut() -> Option<ExitStatus>,
) -> String {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(address) = announced(&text, name) {
            return address;
        }
        if let Some(status) = exited() {
            panic!("faultline exited with {status} before announcing its {name}:\n{text}");
        }
        if started.elapsed() > limit {
            panic!("faultline announced no {name} within {limit:?}:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `check` every 100 ms until it returns `Some`, for at most `limit`; panics naming
/// `what` after that.
pub fn eventually<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Fails with a clear message when the OpenTelemetry Python SDK (what the scripts in
/// `tests/python` send with) is not installed.
pub fn require_python_sdk() {
    let present = Command::new("python3")
        .args([
            "-c",
            "import opentelemetry.sdk, opentelemetry.exporter.otlp",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        present,
        "the OpenTelemetry Python SDK is missing: run ./scripts/test.sh, which installs it"
    );
}

/// Sends the three-service failing trace of `tests/python/send_trace.py` over OTLP
/// (`protocol` `grpc` or `http`) to `endpoint`; its payments service also writes a JSON line
/// to `log`. Returns the trace id.
pub fn send_trace(protocol: &str, endpoint: &str, log: &Path) -> String {
    require_python_sdk();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/python/send_trace.py");
    let out = Command::new("python3")
        .args([script, "--protocol", protocol, "--endpoint", endpoint])
        .arg("--log-file")
        .arg(log)
        .output()
        .expect("run send_trace.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("send_trace.py prints JSON");
    sent["trace_id"].as_str().expect("trace_id").to_owned()
}

/// The wrapper that runs the agent as nobody (uid/gid 65534) when the tests run as root, so
/// that a `chmod 000` really hides a file (root reads through it); `dir` is handed to nobody.
/// Empty when not root: the tests' own user is hidden from such files already.
pub fn as_nobody(dir: &Path) -> Vec<&'static str> {
    // SAFETY: geteuid(2) has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        return Vec::new();
    }
    let status = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(dir)
        .status()
        .expect("chown");
    assert!(status.success(), "chown the test directory to nobody");
    vec![
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
    ]
}

/// A background loop: `step` every 50 ms (at most for two minutes, whatever happens to the
/// test), stopped and joined on drop.
pub struct Loop {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Loop {
    /// Starts the loop.
    pub fn start(mut step: impl FnMut() + Send + 'static) -> Loop {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(120);
            while !flag.load(Ordering::Relaxed) && Instant::now() < until {
                step();
                std::thread::sleep(Duration::from_millis(50));
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
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A running agent.
pub struct Agent {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// Its data directory (inside `dir`).
    pub data_dir: PathBuf,
    /// A temporary directory owned by this agent (data dir, logs, configs).
    pub dir: tempfile::TempDir,
    stderr_path: PathBuf,
}

impl Agent {
    /// Starts `faultline run` with free ports, a fresh data dir, logs tailed from
    /// `<dir>/logs/*.log`, and `extra` flags; waits until health answers.
    pub fn start(extra: &[&str]) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, extra)
    }

    /// Like [`Agent::start`] but in a directory prepared by the caller (a restart reuses it).
    pub fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Agent {
        Self::start_with(dir, extra, |_| {})
    }

    /// Like [`Agent::start_in`], with a last say on the command (environment, limits).
    pub fn start_with(
        dir: tempfile::TempDir,
        extra: &[&str],
        adjust: impl FnOnce(&mut Command),
    ) -> Agent {
        Self::start_full(dir, &[], "127.0.0.1:0", extra, adjust)
    }

    /// Like [`Agent::start_in`], with the OTLP/gRPC receiver on `otlp_grpc` (an agent
    /// restarted on the same address, as an upstream that comes back).
    pub fn start_on_grpc(dir: tempfile::TempDir, otlp_grpc: &str, extra: &[&str]) -> Agent {
        Self::start_full(dir, &[], otlp_grpc, extra, |_| {})
    }

    /// Like [`Agent::start_in`], the binary started through `wrapper` (a command and its
    /// arguments that end by running the rest, such as `setpriv --reuid ... --`).
    pub fn start_wrapped(dir: tempfile::TempDir, wrapper: &[&str], extra: &[&str]) -> Agent {
        Self::start_full(dir, wrapper, "127.0.0.1:0", extra, |_| {})
    }

    fn start_full(
        dir: tempfile::TempDir,
        wrapper: &[&str],
        otlp_grpc: &str,
        extra: &[&str],
        adjust: impl FnOnce(&mut Command),
    ) -> Agent {
        let data_dir = dir.path().join("data");
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).expect("logs dir");
        let log_glob = format!("{}/*.log", logs.display());
        let mut args: Vec<String> = vec![
            "run".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--otlp-grpc".into(),
            otlp_grpc.into(),
            "--otlp-http".into(),
            "127.0.0.1:0".into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
        ];
        if !extra.contains(&"--log") {
            args.push("--log".into());
            args.push(log_glob);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let stderr_path = dir.path().join("agent.stderr");
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg(binary());
                command
            }
            None => Command::new(binary()),
        };
        command
            .args(&args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        adjust(&mut command);
        let child = command.spawn().expect("spawn faultline run");
        let mut agent = Agent {
            child: Some(child),
            base: String::new(),
            data_dir,
            dir,
            stderr_path,
        };
        let limit = Duration::from_secs(30);
        let address = wait_announced(&agent.stderr_path.clone(), "dashboard", limit, || {
            agent.child.as_mut()?.try_wait().ok().flatten()
        });
        agent.base = format!("http://{address}");
        agent.wait_healthy(limit);
        agent
    }

    /// Polls health until it answers 200 or the deadline passes (then panics with stderr).
    pub fn wait_healthy(&mut self, limit: Duration) {
        let started = Instant::now();
        loop {
            if let Ok(response) = http_get(&format!("{}/api/v1/health", self.base)) {
                // 401: up, but the agent wants a token that this poll does not carry.
                if response.0 == 200 || response.0 == 401 {
                    return;
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "faultline exited early with {status}; stderr:\n{}",
                    self.stderr()
                );
            }
            if started.elapsed() > limit {
                panic!(
                    "faultline not healthy within {limit:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// GET a path of the agent's web listener: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&format!("{}{path}", self.base)).expect("GET")
    }

    /// GET a path and parse the body as JSON, asserting 200.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
    }

    /// Waits until the counters hold at least `points` known points of the local ESTABLISHED
    /// sockets of each of `ports`: a baseline for the diagnosis (its 10-point minimum, "what
    /// moved"'s 30) and a few more. Polls every 250 ms, not faster: each poll leaves a
    /// TIME-WAIT socket of its own on the node.
    pub fn wait_history(&self, ports: &[u16], points: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let counters = self.get_json("/api/v1/counters");
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
            if ports.iter().all(|&p| known(p).is_some_and(|n| n >= points)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no history of {points} points for ports {ports:?} within {limit:?}: {counters:#}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Reads `faultline_store_<name>` from `/metrics` (`None` when absent or unreachable).
    pub fn store_metric(&self, name: &str) -> Option<f64> {
        let (status, body) = http_get(&format!("{}/metrics", self.base)).ok()?;
        if status != 200 {
            return None;
        }
        let wanted = format!("faultline_store_{name}");
        body.lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| {
                let (key, value) = line.rsplit_once(' ')?;
                (key == wanted).then(|| value.parse().ok()).flatten()
            })
    }

    /// Kills the agent with SIGKILL (no shutdown, no last commit) and returns its temporary
    /// directory for a restart.
    pub fn kill9(mut self) -> tempfile::TempDir {
        let status = self.signal_and_wait(libc::SIGKILL, Duration::from_secs(10));
        assert!(!status.success(), "the agent survived SIGKILL");
        let dir = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self.dir, dir)
    }

    /// The agent's process id.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    /// Everything the agent wrote on stderr so far.
    pub fn stderr(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.stderr_path) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// Sends `signal` and waits up to `limit` for the exit status.
    pub fn signal_and_wait(&mut self, signal: i32, limit: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, signal) };
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                panic!(
                    "faultline did not exit within {limit:?} after signal {signal}; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the agent with SIGTERM and returns its temporary directory for a restart.
    pub fn stop(mut self) -> tempfile::TempDir {
        let status = self.signal_and_wait(libc::SIGTERM, Duration::from_secs(10));
        assert!(
            status.success(),
            "exit after SIGTERM: {status}; stderr:\n{}",
            self.stderr()
        );
        let dir = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self.dir, dir)
    }

    /// The OTLP/gRPC address the agent announced at start (it binds what it was given, `:0`
    /// unless [`Agent::start_on_grpc`]).
    pub fn otlp_grpc(&self) -> String {
        announced(&self.stderr(), "otlp_grpc")
            .unwrap_or_else(|| panic!("no otlp_grpc address announced:\n{}", self.stderr()))
    }

    /// Path of a file in the tailed logs directory.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join("logs").join(name)
    }

    /// The temporary directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A blocking GET with a short timeout: (status, body).
pub fn http_get(url: &str) -> Result<(u16, String), reqwest::Error> {
    http_get_with(url, None)
}

/// A blocking GET with an optional bearer token: (status, body).
pub fn http_get_with(url: &str, token: Option<&str>) -> Result<(u16, String), reqwest::Error> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send()?;
    let status = response.status().as_u16();
    Ok((status, response.text()?))
}

#[test]
fn addresses_are_read_from_every_announcement() {
    let text =
        "2026-12-05T05:46:06Z  INFO faultline 0.1.0 running dashboard=http://127.0.0.1:42261/ \
                otlp_grpc=127.0.0.1:43299 otlp_http=127.0.0.1:45149";
    assert_eq!(
        announced(text, "dashboard").as_deref(),
        Some("127.0.0.1:42261")
    );
    assert_eq!(
        announced(text, "otlp_grpc").as_deref(),
        Some("127.0.0.1:43299")
    );
    let json = r#"{"fields":{"message":"faultline running","dashboard":"http://127.0.0.1:7/"}}"#;
    assert_eq!(announced(json, "dashboard").as_deref(), Some("127.0.0.1:7"));
    let demo = "  chain      orders -> inventory\n  dashboard  http://127.0.0.1:9090/\n";
    assert_eq!(
        announced(demo, "dashboard").as_deref(),
        Some("127.0.0.1:9090")
    );
    let tls = "running dashboard=https://127.0.0.1:6/ otlp_grpc=127.0.0.1:8";
    assert_eq!(announced(tls, "dashboard").as_deref(), Some("127.0.0.1:6"));
    let replay = "faultline replay: dashboard on http://127.0.0.1:5/ (Ctrl-C to stop)";
    assert_eq!(
        announced(replay, "dashboard").as_deref(),
        Some("127.0.0.1:5")
    );
    assert_eq!(announced("the dashboard is starting", "dashboard"), None);
    assert_eq!(announced("dashboard=http://127.0.0.1:", "dashboard"), None);
}
