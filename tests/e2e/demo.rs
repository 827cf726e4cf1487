//! `faultline demo`: a new user's first command. Started with a short baseline, the API must
//! show the injected fault's error pattern within 60 s; after SIGINT nothing may be left:
//! no child process, no listening socket, no file in the temporary directory. On a node
//! where other programs churn sockets, the time-wait scenario (no error at all) must still be
//! an incident of its client within seconds.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{binary, http_get, wait_announced, Loop};

/// The demo's promise to a new user: the fault is on the dashboard within a minute.
const SHOWN_WITHIN: Duration = Duration::from_secs(60);

/// The baseline asked for: short, to keep the test short; the agent still sees healthy
/// traffic (about a hundred requests) before the fault.
const BASELINE_SECS: &str = "5";

/// Kills the demo if a test fails before it stopped it.
struct Demo {
    child: Option<Child>,
    out: std::path::PathBuf,
    err: std::path::PathBuf,
    _output_dir: tempfile::TempDir,
}

impl Demo {
    /// Starts `faultline demo ARGS` with `tmp` as its TMPDIR; its output goes to files of a
    /// directory of their own, so `tmp` holds only what the demo itself writes.
    fn start(tmp: &Path, args: &[&str]) -> Demo {
        let output_dir = tempfile::tempdir().expect("tempdir");
        let out = output_dir.path().join("stdout");
        let err = output_dir.path().join("stderr");
        let child = Command::new(binary())
            .arg("demo")
            .args(args)
            .env("TMPDIR", tmp)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .spawn()
            .expect("spawn faultline demo");
        Demo {
            child: Some(child),
            out,
            err,
            _output_dir: output_dir,
        }
    }

    /// The dashboard address the demo printed (it binds `127.0.0.1:0` itself).
    fn dashboard(&mut self) -> String {
        let out = self.out.clone();
        wait_announced(&out, "dashboard", SHOWN_WITHIN, || self.exited())
    }

    /// `faultline demo --scenario SCENARIO --baseline SECS` on `127.0.0.1:0`, with `tmp` as
    /// its TMPDIR, and the dashboard address it announced.
    fn scenario(tmp: &Path, scenario: &str, baseline: &str) -> (Demo, String) {
        let mut demo = Demo::start(
            tmp,
            &[
                "--scenario",
                scenario,
                "--baseline",
                baseline,
                "--listen",
                "127.0.0.1:0",
            ],
        );
        let listen = demo.dashboard();
        (demo, listen)
    }

    /// Asks `find` every `every` until it finds something; fails, with `missing()` and the
    /// demo's output, once `limit` has passed since `since` or when the demo exits first.
    fn wait_for<T>(
        &mut self,
        since: Instant,
        limit: Duration,
        every: Duration,
        missing: impl Fn() -> String,
        mut find: impl FnMut() -> Option<T>,
    ) -> T {
        loop {
            if let Some(found) = find() {
                return found;
            }
            if let Some(status) = self.exited() {
                panic!("the demo exited early with {status}\n{}", self.output());
            }
            assert!(
                since.elapsed() < limit,
                "{} within {limit:?}\n{}",
                missing(),
                self.output()
            );
            std::thread::sleep(every);
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn output(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            std::fs::read_to_string(&self.out).unwrap_or_default(),
            std::fs::read_to_string(&self.err).unwrap_or_default()
        )
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Sends SIGINT and waits for the exit status within `limit`.
    fn interrupt(&mut self, limit: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the demo did not exit within {limit:?} of SIGINT\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The JSON document at `url`, if it answers 200 with one.
fn get_json(url: &str) -> Option<serde_json::Value> {
    http_get(url)
        .ok()
        .filter(|(status, _)| *status == 200)
        .and_then(|(_, body)| serde_json::from_str(&body).ok())
}

/// How often the tests ask the demo's API.
const POLL: Duration = Duration::from_millis(250);

/// Loopback ports in LISTEN state on this machine (IPv4 and IPv6).
fn listening_ports() -> HashSet<u16> {
    let mut ports = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // fields[1] = local "ADDR:PORT" in hex, fields[3] = state (0A = LISTEN).
            if fields.len() > 3 && fields[3] == "0A" {
                if let Some(port) = fields[1].rsplit(':').next() {
                    if let Ok(port) = u16::from_str_radix(port, 16) {
                        ports.insert(port);
                    }
                }
            }
        }
    }
    ports
}

/// Processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return children;
    };
    for entry in entries.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // `pid (comm) state ppid ...`: comm may hold spaces, so read after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            children.push(child);
        }
    }
    children
}

/// The lab's API ports, read from the chain line the demo prints
/// (`chain      gateway (127.0.0.1:P) -> orders (127.0.0.1:Q) -> ...`).
fn chain_ports(stdout: &str) -> Vec<u16> {
    let Some(line) = stdout.lines().find(|l| l.trim_start().starts_with("chain")) else {
        return Vec::new();
    };
    line.split("127.0.0.1:")
        .skip(1)
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|p| p.parse().ok())
        })
        .collect()
}

#[test]
fn demo_shows_the_injected_fault_within_a_minute_and_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let (mut demo, listen) = Demo::scenario(tmp.path(), "eof", BASELINE_SECS);

    // The injected fault (inventory closes connections without answering) as the API shows
    // it: a new pattern with the HTTP client's own words, seen in orders, the caller.
    let url = format!("http://{listen}/api/v1/clusters?emerging=true");
    let injected = "connection closed before message completed";
    let pattern = demo.wait_for(
        started,
        SHOWN_WITHIN,
        POLL,
        || {
            format!(
                "no emerging '{injected}' pattern; last page: {:?}",
                http_get(&url).ok()
            )
        },
        || {
            get_json(&url)?["clusters"]
                .as_array()?
                .iter()
                .find(|c| {
                    c["canonical_template"]
                        .as_str()
                        .is_some_and(|t| t.contains(injected))
                })
                .cloned()
        },
    );
    let services: Vec<&str> = pattern["services"]
        .as_array()
        .map(|s| s.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    assert!(services.contains(&"orders"), "{pattern}");
    assert_eq!(pattern["emergence"]["kind"], "new", "{pattern}");

    // The incident the pattern belongs to, within the same minute.
    let incidents_url = format!("http://{listen}/api/v1/incidents");
    let has_fault = |i: &serde_json::Value| {
        i["patterns"]
            .as_array()
            .is_some_and(|patterns| patterns.iter().any(|p| p["id"] == pattern["id"]))
    };
    let incident = demo.wait_for(
        started,
        SHOWN_WITHIN,
        POLL,
        || {
            format!(
                "no incident with the injected pattern; last answer: {:?}",
                http_get(&incidents_url).ok()
            )
        },
        || {
            get_json(&incidents_url)?["incidents"]
                .as_array()?
                .iter()
                .find(|i| has_fault(i))
                .cloned()
        },
    );
    // The fault lives in inventory, the callee that closes; orders only saw it.
    let culprit = incident["culprit"]["service"].as_str();
    assert!(
        culprit == Some("inventory"),
        "the incident blames {culprit:?}, not inventory: {incident}"
    );
    // Gateway's own Gin line for the same failures (`Error #01: GET http://…: 502 Bad
    // Gateway`, written without a trace id) echoes them: it joins their incident, and the
    // injected fault's incident leads. It was the demo's second incident, "seen in gateway".
    let echoed = |i: &serde_json::Value| {
        i["patterns"].as_array().is_some_and(|patterns| {
            patterns.iter().any(|p| {
                p["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("Bad Gateway"))
            })
        })
    };
    demo.wait_for(
        started,
        SHOWN_WITHIN,
        POLL,
        || {
            format!(
                "gateway's 502 echo did not join the EOF's incident; last answer: {:#?}",
                get_json(&incidents_url)
            )
        },
        || {
            let document = get_json(&incidents_url)?;
            let incidents = document["incidents"].as_array()?;
            let joined = incidents
                .first()
                .is_some_and(|top| has_fault(top) && echoed(top))
                && incidents[1..].iter().all(|i| !echoed(i));
            joined.then_some(())
        },
    );

    let stdout = std::fs::read_to_string(&demo.out).unwrap_or_default();
    assert!(stdout.contains("fault injected"), "{}", demo.output());
    let mut ports = chain_ports(&stdout);
    assert_eq!(
        ports.len(),
        3,
        "the chain line names three services\n{}",
        demo.output()
    );
    let dashboard_port = listen
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in the announced address {listen}"));
    ports.push(dashboard_port);
    assert!(
        children_of(demo.pid()).is_empty(),
        "the demo started child processes: {:?}",
        children_of(demo.pid())
    );

    let status = demo.interrupt(Duration::from_secs(20));
    assert!(
        status.success(),
        "exit after SIGINT: {status}\n{}",
        demo.output()
    );
    let listening = listening_ports();
    let left: Vec<u16> = ports
        .into_iter()
        .filter(|p| listening.contains(p))
        .collect();
    assert!(
        left.is_empty(),
        "ports still listening after exit: {left:?}"
    );
    let files: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("read TMPDIR")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(
        files.is_empty(),
        "the demo left files in its temporary directory: {files:?}\n{}",
        demo.output()
    );
}

/// How long after the injection the close-wait demo's incident may take to be read as the
/// leak: its CLOSE-WAIT must first climb past where a slow callee's requests in progress
/// would level off (10 s after its first socket), then past that level by its noise; 15 s on
/// the recorded demo, the rest is room for a loaded machine.
const LEAK_READ_WITHIN: Duration = Duration::from_secs(40);

/// The close-wait demo as an SRE reads it: the incident is about inventory's CLOSE-WAIT leak
/// (its hint first, its CLOSE-WAIT the top counter, the title the leak's), not the callers'
/// timeouts, and the demo's own output says so once the agent reads it so. Before, the
/// incident said "Calls time out: the callee is slow or hangs" from its first second to its
/// last.
#[test]
fn demo_close_wait_climbs_on_the_callees_port_and_is_read_as_its_leak() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let (mut demo, listen) = Demo::scenario(tmp.path(), "close-wait", "10");
    // The callee (inventory, last in the chain) stops reading and closing what it accepts:
    // orders times out and closes, and CLOSE-WAIT climbs on inventory's port. Nothing is
    // logged by inventory; the counters are the evidence.
    let out = demo.out.clone();
    let url = format!("http://{listen}/api/v1/counters");
    let seen = demo.wait_for(
        started,
        SHOWN_WITHIN,
        POLL,
        || "CLOSE-WAIT did not climb on inventory's port".to_string(),
        || {
            let stdout = std::fs::read_to_string(&out).unwrap_or_default();
            let inventory = *chain_ports(&stdout).get(2)?;
            let close_wait = get_json(&url)?["sockets"]
                .as_array()?
                .iter()
                .filter(|s| s["port"] == inventory && s["state"] == "close_wait")
                .filter_map(|s| s["current"].as_u64())
                .max()?;
            // 20: well above what a healthy keep-alive chain ever shows (none), reached in
            // about a second at the demo's traffic.
            (close_wait >= 20).then_some(close_wait)
        },
    );
    let stdout = std::fs::read_to_string(&out).unwrap_or_default();
    let inventory = *chain_ports(&stdout).get(2).expect("inventory's port");
    let leak = format!("CLOSE-WAIT :{inventory}");
    let incidents = format!("http://{listen}/api/v1/incidents");
    let climbing = Instant::now();
    let incident = demo.wait_for(
        climbing,
        LEAK_READ_WITHIN,
        POLL,
        || {
            format!(
                "no incident led by inventory's CLOSE-WAIT leak; last answer: {:#?}",
                get_json(&incidents)
            )
        },
        || {
            get_json(&incidents)?["incidents"]
                .as_array()?
                .iter()
                .find(|i| {
                    i["hints"][0]["rule_id"] == "close-wait-leak"
                        && i["counters"][0]["anomaly"]["label"] == leak.as_str()
                })
                .cloned()
        },
    );
    eprintln!(
        "read as the leak {:?} after CLOSE-WAIT reached 20",
        climbing.elapsed()
    );
    assert_eq!(incident["culprit"]["service"], "inventory", "{incident:#}");
    let title = incident["title"].as_str().unwrap_or_default();
    assert!(
        title.starts_with("Connections pile up in CLOSE-WAIT")
            && title.contains(&format!("in inventory: {leak} ")),
        "{title}"
    );
    assert!(
        incident["hints"]
            .as_array()
            .is_some_and(|h| h.iter().any(|h| h["rule_id"] == "timeout")),
        "the callers' timeouts stay a hint: {incident:#}"
    );
    // The demo says it too, below the incident it printed when it was raised.
    let said = demo.wait_for(
        climbing,
        LEAK_READ_WITHIN + Duration::from_secs(5),
        POLL,
        || {
            format!(
                "the demo did not print the new reading\n{}",
                std::fs::read_to_string(&out).unwrap_or_default()
            )
        },
        || {
            std::fs::read_to_string(&out).ok()?.lines().find_map(|l| {
                (l.contains("reads the incident anew")
                    && l.contains("Connections pile up in CLOSE-WAIT"))
                .then(|| l.to_owned())
            })
        },
    );
    eprintln!("{said}");
    let status = demo.interrupt(Duration::from_secs(20));
    assert!(
        status.success(),
        "exit after SIGINT ({seen} CLOSE-WAIT): {status}\n{}",
        demo.output()
    );
}

#[test]
fn demo_panic_shows_the_stack_from_the_function_that_panicked() {
    // The pattern page's "Top application frame" is where an SRE looks first. The demo's
    // panic showed "No application frame found" above a stack that began in the panic hook
    // and the standard library's panic machinery.
    let tmp = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let (mut demo, listen) = Demo::scenario(tmp.path(), "panic", BASELINE_SECS);
    let incidents = format!("http://{listen}/api/v1/incidents");
    let pattern = demo.wait_for(
        started,
        SHOWN_WITHIN,
        POLL,
        || {
            format!(
                "no panic incident; last answer: {:#?}",
                get_json(&incidents)
            )
        },
        || {
            get_json(&incidents)?["incidents"]
                .as_array()?
                .iter()
                .find(|i| i["hints"][0]["rule_id"] == "panic")?["patterns"][0]["id"]
                .as_str()
                .map(str::to_owned)
        },
    );
    let url = format!("http://{listen}/api/v1/clusters/{pattern}");
    let stack = demo.wait_for(
        started,
        SHOWN_WITHIN,
        POLL,
        || format!("no stack on the panic's pattern: {:#?}", get_json(&url)),
        || {
            get_json(&url)
                .map(|d| d["stack"].clone())
                .filter(|s| !s.is_null())
        },
    );
    let frame = stack["top_frame"].as_str().unwrap_or_default();
    assert!(frame.starts_with("main.first_sku service.rs:"), "{stack:#}");
    let text = stack["text"].as_str().unwrap_or_default();
    let mut lines = text.lines();
    assert!(
        lines.next().is_some_and(|l| l.starts_with("goroutine ")),
        "{text}"
    );
    assert_eq!(lines.next(), Some("main.first_sku(...)"), "{text}");
    let status = demo.interrupt(Duration::from_secs(20));
    assert!(
        status.success(),
        "exit after SIGINT: {status}\n{}",
        demo.output()
    );
}

#[test]
fn demo_on_a_busy_port_says_so_and_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let listen = busy.local_addr().expect("addr").to_string();
    let mut demo = Demo::start(tmp.path(), &["--baseline", "1", "--listen", &listen]);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = demo.exited() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the demo did not give up on a busy port\n{}",
            demo.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(1), "{}", demo.output());
    let stderr = std::fs::read_to_string(&demo.err).unwrap_or_default();
    assert!(
        stderr.contains("cannot listen on") && stderr.contains(&listen),
        "{}",
        demo.output()
    );
    let files: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("read TMPDIR")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(files.is_empty(), "left behind: {files:?}");
}

/// Ports another program churns during the time-wait test: more than the agent's 16 busiest
/// port groups, so the demo's quiet inventory port ranks below all of them until its storm.
const CHURNED_PORTS: usize = 18;

/// How long the other program churns before the demo starts: each churned port then holds
/// some 75 TIME-WAIT sockets (5 closes a second), some 140 when the fault is injected, far
/// more than the demo's quiet ports before the storm. Not more: every agent on the node walks
/// every socket, and the e2e tests run side by side.
const CHURN_AHEAD: Duration = Duration::from_secs(15);

/// The issue asks for 10 s from the start of the counter's change; 5 s more for a test
/// machine shared with other tests (measured 8.0 s at load 54 on 2 cores).
const STORM_RAISED_WITHIN: Duration = Duration::from_secs(15);

/// Another program's socket churn on `listener`'s port, until the loop is dropped: every
/// 200 ms its client connects and closes first, so its end stays in TIME-WAIT towards the
/// port for a minute.
fn churn(listener: std::net::TcpListener) -> Loop {
    let port = listener.local_addr().expect("addr").port();
    let mut step = 0u32;
    Loop::start(move || {
        // The loop steps every 50 ms.
        step = step.wrapping_add(1);
        if !step.is_multiple_of(4) {
            return;
        }
        if let Ok(client) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            if let Ok((server, _)) = listener.accept() {
                drop(client);
                drop(server);
            }
        }
    })
}

#[test]
fn demo_time_wait_beside_other_programs_churning_sockets_is_an_incident_of_its_client() {
    // Seen on a shared machine: the agent counted only the 16 busiest port groups one by one,
    // so inventory's port began its series with the storm, without a baseline, and nothing was
    // raised in 35 s (fixed in 3c9e4e1); then, with a 10 s baseline, a storm beginning inside
    // the port's first baseline was judged against itself and raised nothing in 25 s; and
    // where the node's sockets were counted every few seconds, a storm whose latest count
    // only repeated the last one was read as over.
    let listeners: Vec<std::net::TcpListener> = (0..CHURNED_PORTS)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind churned listener"))
        .collect();
    let churned: HashSet<u16> = listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect();
    let churning: Vec<Loop> = listeners.into_iter().map(churn).collect();
    std::thread::sleep(CHURN_AHEAD);

    let tmp = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let (mut demo, listen) = Demo::scenario(tmp.path(), "time-wait", "10");
    let out = demo.out.clone();
    demo.wait_for(
        started,
        SHOWN_WITHIN,
        Duration::from_millis(100),
        || "the fault was not injected".to_string(),
        || {
            std::fs::read_to_string(&out)
                .is_ok_and(|out| out.contains("fault injected"))
                .then_some(())
        },
    );
    let injected = Instant::now();
    let stdout = std::fs::read_to_string(&demo.out).unwrap_or_default();
    let inventory = *chain_ports(&stdout)
        .get(2)
        .unwrap_or_else(|| panic!("no inventory port in the chain line\n{}", demo.output()));
    let storm = format!("TIME-WAIT →:{inventory}");

    // The storm's incident: orders (the client opening a connection per call) is where it
    // lives, with the storm hint and inventory's TIME-WAIT first.
    let url = format!("http://{listen}/api/v1/incidents");
    let incident = demo.wait_for(
        injected,
        STORM_RAISED_WITHIN,
        POLL,
        || {
            format!(
                "no incident with {storm} after the fault; last answer: {:#?}",
                get_json(&url)
            )
        },
        || {
            get_json(&url)?["incidents"]
                .as_array()?
                .iter()
                .find_map(|i| {
                    i["counters"]
                        .as_array()?
                        .iter()
                        .any(|c| c["anomaly"]["label"] == storm.as_str())
                        .then(|| i.clone())
                })
        },
    );
    let raised_after = injected.elapsed();
    assert_eq!(incident["culprit"]["service"], "orders", "{incident:#}");
    assert_eq!(
        incident["counters"][0]["anomaly"]["label"],
        storm.as_str(),
        "the storm's counter must lead: {incident:#}"
    );
    assert!(
        incident["hints"]
            .as_array()
            .is_some_and(|h| h.iter().any(|h| h["rule_id"] == "time-wait-storm")),
        "no TIME-WAIT storm hint: {incident:#}"
    );
    // The other program's churn is no incident of anyone's.
    let document = get_json(&url).unwrap_or_default();
    let blamed: Vec<&serde_json::Value> = document["incidents"]
        .as_array()
        .map(|incidents| {
            incidents
                .iter()
                .flat_map(|i| i["counters"].as_array().into_iter().flatten())
                .filter(|c| {
                    c["anomaly"]["label"].as_str().is_some_and(|label| {
                        label
                            .rsplit_once(':')
                            .and_then(|(_, port)| port.parse::<u16>().ok())
                            .is_some_and(|port| churned.contains(&port))
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(
        blamed.is_empty(),
        "the other program's churn is in an incident: {blamed:#?}"
    );
    // What moved with it: no pattern to compare the counters with, so the incident's own
    // answer, its storm first — or, with this test's 10 s baseline, said to be too short for
    // the 30 s "what moved" compares with (the demo's default baseline leaves it enough).
    let id = incident["id"].as_str().unwrap_or_default();
    let detail = get_json(&format!("{url}/{id}")).unwrap_or_default();
    let moved = &detail["moved"];
    assert_eq!(moved["incident_id"], id, "{detail:#}");
    if moved["verdict"] == "not_enough_history" {
        assert!(
            moved["summary"]
                .as_str()
                .is_some_and(|s| s.starts_with("Not enough history: the incident began at ")),
            "{moved:#}"
        );
    } else {
        assert_eq!(moved["verdict"], "moved", "{moved:#}");
        assert_eq!(moved["moved"][0]["label"], storm.as_str(), "{moved:#}");
        assert_eq!(moved["moved"][0]["own"], true, "{moved:#}");
    }
    eprintln!("the demo's TIME-WAIT storm beside churn raised {raised_after:?} after the fault");
    drop(churning);
    let status = demo.interrupt(Duration::from_secs(20));
    assert!(
        status.success(),
        "exit after SIGINT: {status}\n{}",
        demo.output()
    );
}
