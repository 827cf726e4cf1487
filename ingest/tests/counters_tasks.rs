//! Goroutine counts followed from a real HTTP target served by the test: a pprof goroutine
//! page, an expvar page and a Prometheus page whose count changes during the test, a target that
//! times out and one that answers 500 — the failing ones must show as failing, never as zero.
//! Also: OTLP-pushed counts, their staleness, the agent's own process and runtime, and sources
//! that cannot be read (the sampler goes on). `/metrics` is rendered by `faultline-web` from
//! these values and tested there.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use faultline_ingest::counters::store::TaskView;
use faultline_ingest::counters::{
    spawn_sampler, CounterStore, CountersConfig, CountersSnapshot, ProcessTarget, SnapshotOptions,
    SourceState, TaskKind, TaskTarget,
};
use faultline_series::SeriesKey;
use tokio_util::sync::CancellationToken;

/// The history key of a task count.
fn task_key(target: &str, source: &str) -> SeriesKey {
    SeriesKey::Task {
        target: target.into(),
        source: source.into(),
    }
}

async fn pprof(State(n): State<Arc<AtomicU64>>) -> String {
    let n = n.load(Ordering::SeqCst);
    format!(
        "goroutine profile: total {n}\n{n} @ 0x43a1c5 0x4070bb\n#\t0x43a1c4\truntime.gopark+0xc4\n"
    )
}

async fn expvar(State(n): State<Arc<AtomicU64>>) -> String {
    let n = n.load(Ordering::SeqCst);
    format!("{{\"cmdline\": [\"/usr/bin/user-svc\"], \"goroutines\": {n}, \"memstats\": {{}}}}")
}

async fn prometheus(State(n): State<Arc<AtomicU64>>) -> String {
    let n = n.load(Ordering::SeqCst);
    format!("# HELP go_goroutines Number of goroutines that currently exist.\n# TYPE go_goroutines gauge\ngo_goroutines {n}\n")
}

async fn slow() -> String {
    tokio::time::sleep(Duration::from_secs(30)).await;
    "goroutine profile: total 1\n".into()
}

async fn broken() -> (axum::http::StatusCode, String) {
    (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom".into())
}

async fn serve(count: Arc<AtomicU64>) -> String {
    let app = Router::new()
        .route("/debug/pprof/goroutine", get(pprof))
        .route("/debug/vars", get(expvar))
        .route("/metrics", get(prometheus))
        .route("/slow", get(slow))
        .route("/broken", get(broken))
        .with_state(count);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn task<'a>(snap: &'a CountersSnapshot, target: &str) -> Option<&'a TaskView> {
    snap.tasks.iter().find(|t| t.target == target)
}

/// Polls the store until `cond` holds, at most 10 s.
async fn until(
    store: &CounterStore,
    what: &str,
    cond: impl Fn(&CountersSnapshot) -> bool,
) -> CountersSnapshot {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let snap = store.snapshot(&SnapshotOptions::default());
        if cond(&snap) {
            return snap;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}: tasks {:#?}", snap.tasks);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_a_changing_goroutine_count_and_shows_failures_as_failing() {
    let count = Arc::new(AtomicU64::new(10));
    let base = serve(count.clone()).await;
    let pid_file = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(pid_file.path(), format!("{}\n", std::process::id()))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut config = CountersConfig {
        interval_ms: 200,
        ..CountersConfig::default()
    };
    config.tasks = vec![
        TaskTarget {
            kind: TaskKind::Pprof,
            ..TaskTarget::from_url("pprof-svc", format!("{base}/debug/pprof/goroutine?debug=1"))
        },
        TaskTarget {
            kind: TaskKind::Expvar,
            ..TaskTarget::from_url("expvar-svc", format!("{base}/debug/vars"))
        },
        TaskTarget::from_url("prom-svc", format!("{base}/metrics")),
        TaskTarget {
            timeout_ms: 300,
            ..TaskTarget::from_url("slow-svc", format!("{base}/slow"))
        },
        TaskTarget::from_url("broken-svc", format!("{base}/broken")),
        // Nothing listens on port 1.
        TaskTarget::from_url("down-svc", "http://127.0.0.1:1/debug/vars"),
    ];
    config.processes = vec![ProcessTarget {
        name: "self-by-pidfile".into(),
        pid_file: Some(pid_file.path().to_path_buf()),
        process_name: None,
        listen_port: None,
    }];
    let store = Arc::new(CounterStore::new(&config));
    let cancel = CancellationToken::new();
    let handle =
        spawn_sampler(config, store.clone(), cancel.clone()).unwrap_or_else(|e| panic!("{e}"));

    let all_at = |n: f64| {
        move |s: &CountersSnapshot| {
            ["pprof-svc", "expvar-svc", "prom-svc"]
                .iter()
                .all(|t| task(s, t).and_then(|t| t.value) == Some(n))
        }
    };
    let last_pprof_point = |s: &CountersSnapshot| {
        s.history.as_ref().and_then(|h| {
            h.seconds
                .series
                .get(&task_key("pprof-svc", "pprof"))
                .and_then(|p| p.iter().flatten().last().copied())
        })
    };
    let snap = until(&store, "the first counts", |s| {
        all_at(10.0)(s) && last_pprof_point(s) == Some(10.0)
    })
    .await;
    assert_eq!(
        task(&snap, "pprof-svc").map(|t| t.source.as_str()),
        Some("pprof")
    );
    assert_eq!(
        task(&snap, "prom-svc").map(|t| t.source.as_str()),
        Some("http")
    );

    count.store(25, Ordering::SeqCst);
    // Each target is scraped on its own: wait until every one has reported since the change,
    // and a history point has been taken with the new count.
    let settled = |s: &CountersSnapshot| {
        all_at(25.0)(s)
            && ["slow-svc", "broken-svc", "down-svc"]
                .iter()
                .all(|t| task(s, t).is_some_and(|t| t.error.is_some()))
            && last_pprof_point(s) == Some(25.0)
    };
    let snap = until(&store, "the changed counts", settled).await;
    let pprof = task(&snap, "pprof-svc").unwrap_or_else(|| panic!("pprof-svc missing"));
    assert_eq!(pprof.status, SourceState::Available);

    // Failing targets: no value (not zero), a reason, status failing.
    for (target, why) in [
        ("slow-svc", "timeout"),
        ("broken-svc", "HTTP status 500"),
        ("down-svc", "request failed"),
    ] {
        let t = task(&snap, target).unwrap_or_else(|| panic!("{target} missing"));
        assert_eq!(t.value, None, "{target}");
        assert_eq!(t.status, SourceState::Failing, "{target}");
        let err = t.error.clone().unwrap_or_default();
        assert!(err.contains(why), "{target}: {err}");
    }

    // History: the good target went 10 then 25; the slow one has only gaps.
    let history = snap
        .history
        .as_ref()
        .unwrap_or_else(|| panic!("no history"));
    let points: Vec<f32> = history.seconds.series[&task_key("pprof-svc", "pprof")]
        .iter()
        .flatten()
        .copied()
        .collect();
    assert!(
        points.contains(&10.0) && points.last() == Some(&25.0),
        "{points:?}"
    );
    assert!(!history
        .seconds
        .series
        .contains_key(&task_key("slow-svc", "http")));

    // The agent itself and the pid-file target (this very process).
    let me = snap
        .processes
        .iter()
        .find(|p| p.name == "faultline")
        .and_then(|p| p.counters.clone());
    let by_pid_file = snap
        .processes
        .iter()
        .find(|p| p.name == "self-by-pidfile")
        .and_then(|p| p.counters.clone());
    assert!(me
        .as_ref()
        .is_some_and(|c| c.open_fds > 0 && c.threads > 0 && c.rss_bytes > 0));
    assert_eq!(by_pid_file.map(|c| c.pids), Some(vec![std::process::id()]));
    assert!(snap
        .runtime
        .as_ref()
        .is_some_and(|r| r.counters.workers == 2 && r.counters.alive_tasks > 0));
    assert!(snap.sockets.as_ref().is_some_and(|s| s.total > 0));
    assert!(snap
        .sources
        .iter()
        .any(|s| s.name == "sockets.netlink" && s.status == SourceState::Available));

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .unwrap_or_else(|_| panic!("sampler did not stop"))
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn otlp_counts_are_recorded_bounded_and_go_stale() {
    let config = CountersConfig {
        max_task_targets: 2,
        otlp_stale_after_ms: 2_000,
        ..CountersConfig::default()
    };
    let store = CounterStore::new(&config);
    let sec = 1_000_000_000i64;
    assert!(store.record_task("user-svc", "otlp", 120.0, 1_000 * sec));
    assert!(store.record_task("order-svc", "otlp", 7.0, 1_000 * sec));
    // A third target passes the bound: rejected and counted, not stored.
    assert!(!store.record_task("third", "otlp", 1.0, 1_000 * sec));
    // An older point arriving late does not overwrite the newer one.
    assert!(store.record_task("user-svc", "otlp", 130.0, 1_001 * sec));
    assert!(store.record_task("user-svc", "otlp", 99.0, 1_000 * sec));
    let snap = store.snapshot(&SnapshotOptions::current_only());
    assert_eq!(task(&snap, "user-svc").and_then(|t| t.value), Some(130.0));
    assert_eq!(snap.bounds.task_targets_rejected, 1);
    assert!(snap.history.is_none());

    // A node sample 10 s later: order-svc was not refreshed and goes stale (failing, no value).
    store.record_task("user-svc", "otlp", 131.0, 1_010 * sec);
    store.record_sample(empty_sample(1_010_000));
    let snap = store.snapshot(&SnapshotOptions::default());
    let order = task(&snap, "order-svc").unwrap_or_else(|| panic!("order-svc missing"));
    assert_eq!((order.value, order.status), (None, SourceState::Failing));
    assert_eq!(order.last_value, Some(7.0));
    assert!(order.error.as_deref().unwrap_or("").contains("no update"));
    assert_eq!(task(&snap, "user-svc").and_then(|t| t.value), Some(131.0));
    // NaN from a sender is a failure, not a number.
    store.record_task("user-svc", "otlp", f64::NAN, 1_011 * sec);
    let snap = store.snapshot(&SnapshotOptions::current_only());
    assert_eq!(
        task(&snap, "user-svc").map(|t| t.status),
        Some(SourceState::Failing)
    );
}

/// A sample where every node source failed as on a host without /proc.
fn empty_sample(time_unix_ms: i64) -> faultline_ingest::counters::store::NodeSample {
    use faultline_ingest::counters::reader::CensusReading;
    use faultline_ingest::counters::CounterError;
    let missing = || CounterError::Read {
        path: "/nonexistent/net/sockstat".into(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    };
    faultline_ingest::counters::store::NodeSample {
        time_unix_ms,
        sockets: CensusReading::of(Err(missing())),
        sockstat: Err(missing()),
        protocol: Err(missing()),
        processes: Vec::new(),
        agent_process: None,
        runtime: None,
        scrapes: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_proc_files_are_reported_and_sampling_goes_on() {
    let empty_proc = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = CountersConfig {
        interval_ms: 100,
        proc_root: empty_proc.path().to_path_buf(),
        processes: vec![ProcessTarget {
            name: "ghost".into(),
            pid_file: None,
            process_name: Some("no-such-process-name".into()),
            listen_port: None,
        }],
        ..CountersConfig::default()
    };
    let store = Arc::new(CounterStore::new(&config));
    let cancel = CancellationToken::new();
    let handle =
        spawn_sampler(config, store.clone(), cancel.clone()).unwrap_or_else(|e| panic!("{e}"));
    let first = until(&store, "a first sample", |s| s.time_unix_ms.is_some()).await;
    let t0 = first.time_unix_ms.unwrap_or(0);
    let snap = until(&store, "later samples", |s| {
        s.time_unix_ms.unwrap_or(0) >= t0 + 250
    })
    .await;
    let status = |name: &str| {
        snap.sources
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.status)
    };
    // Netlink does not depend on /proc: sockets are still counted.
    assert_eq!(status("sockets.netlink"), Some(SourceState::Available));
    assert!(snap.sockets.is_some());
    assert_eq!(status("sockstat"), Some(SourceState::Unavailable));
    assert_eq!(status("protocol"), Some(SourceState::Unavailable));
    assert_eq!(status("process.ghost"), Some(SourceState::Unavailable));
    assert!(snap.sockstat.is_empty() && snap.protocol.is_empty());
    cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), handle).await;

    // Forcing /proc with no /proc: sockets fail with the reason, never zero.
    let store = CounterStore::new(&CountersConfig::default());
    store.record_sample(empty_sample(1_000));
    let snap = store.snapshot(&SnapshotOptions::current_only());
    assert!(snap.sockets.is_none());
    let s = snap.sources.iter().find(|s| s.name == "sockets.proc");
    assert_eq!(s.map(|s| s.status), Some(SourceState::Failing));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wedged_target_slower_than_the_interval_costs_the_node_history_nothing() {
    let count = Arc::new(AtomicU64::new(10));
    let base = serve(count).await;
    let mut config = CountersConfig {
        interval_ms: 200,
        ..CountersConfig::default()
    };
    config.tasks = vec![
        // Answers never; its timeout is five intervals.
        TaskTarget {
            timeout_ms: 1_000,
            ..TaskTarget::from_url("wedged-svc", format!("{base}/slow"))
        },
        TaskTarget {
            kind: TaskKind::Expvar,
            ..TaskTarget::from_url("expvar-svc", format!("{base}/debug/vars"))
        },
    ];
    let store = Arc::new(CounterStore::new(&config));
    let cancel = CancellationToken::new();
    let handle =
        spawn_sampler(config, store.clone(), cancel.clone()).unwrap_or_else(|e| panic!("{e}"));
    // Long enough for the wedged target to time out twice.
    let snap = until(&store, "two timeouts and 12 samples", |s| {
        let timed_out = task(s, "wedged-svc").is_some_and(|t| t.error.is_some());
        let points = s
            .history
            .as_ref()
            .map_or(0, |h| h.seconds.times_unix_ms.len());
        timed_out && points >= 12
    })
    .await;
    cancel.cancel();
    let _ = handle.await;
    let history = snap
        .history
        .as_ref()
        .unwrap_or_else(|| panic!("no history"));
    // One node sample per interval: no tick waited for the wedged scrape.
    let times = &history.seconds.times_unix_ms;
    let gaps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|&g| g < 400),
        "node samples were held up: {gaps:?}"
    );
    // The healthy target has a value at every point since its first.
    let expvar: Vec<Option<f32>> =
        history.seconds.series[&task_key("expvar-svc", "expvar")].clone();
    let first = expvar
        .iter()
        .position(Option::is_some)
        .unwrap_or(expvar.len());
    assert!(
        expvar[first..].iter().all(Option::is_some) && expvar.len() - first >= 10,
        "{expvar:?}"
    );
    let wedged = task(&snap, "wedged-svc").unwrap_or_else(|| panic!("wedged-svc missing"));
    assert_eq!(wedged.value, None);
    assert!(wedged.error.as_deref().unwrap_or("").contains("timeout"));
}

/// A pprof `debug=1` page of `size` bytes or more, as a Go service writes it: the total on the
/// first line, then one group per distinct stack.
fn pprof_page(total: u64, size: usize) -> String {
    let mut page = format!("goroutine profile: total {total}\n");
    let mut i = 0;
    while page.len() < size {
        page.push_str(&format!(
            "1 @ 0x43a1c5 0x4070bb 0x406e5d 0x6a{i:04x}\n#\t0x43a1c4\truntime.gopark+0xc4\t\
             /usr/lib/go/src/runtime/proc.go:402\n#\t0x6a{i:04x}\tmain.worker{i}+0x3d\t\
             /srv/app/worker.go:{i}\n\n"
        ));
        i += 1;
    }
    page
}

/// Serves `page` over HTTP/1.1 keep-alive with a chunked body (as Go does for a page larger
/// than its 2 KiB buffer), counting the connections accepted and the requests answered.
async fn serve_counting(page: String) -> (String, Arc<AtomicU64>, Arc<AtomicU64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let (connections, requests) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (c, r) = (connections.clone(), requests.clone());
    let page = Arc::new(page);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            let (r, page) = (r.clone(), page.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 || head.len() > 64 * 1024 {
                        return;
                    }
                    head.extend_from_slice(&buf[..n]);
                    // One response per request head (the client sends no body).
                    while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                        head.drain(..end + 4);
                        r.fetch_add(1, Ordering::SeqCst);
                        let mut out = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; \
                            charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n"
                            .to_vec();
                        for chunk in page.as_bytes().chunks(4096) {
                            out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                            out.extend_from_slice(chunk);
                            out.extend_from_slice(b"\r\n");
                        }
                        out.extend_from_slice(b"0\r\n\r\n");
                        if stream.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), connections, requests)
}

/// A scrape once a second must not open a connection each time: every dropped connection is a
/// TIME-WAIT socket towards the target's port, on the node the agent watches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_of_a_pprof_page_reuse_one_connection() {
    let (base, connections, requests) = serve_counting(pprof_page(37, 64 * 1024)).await;
    let mut config = CountersConfig {
        interval_ms: 100,
        ..CountersConfig::default()
    };
    config.tasks = vec![TaskTarget {
        kind: TaskKind::Pprof,
        ..TaskTarget::from_url("api", format!("{base}/debug/pprof/goroutine?debug=1"))
    }];
    let store = Arc::new(CounterStore::new(&config));
    let cancel = CancellationToken::new();
    let handle =
        spawn_sampler(config, store.clone(), cancel.clone()).unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while requests.load(Ordering::SeqCst) < 8 {
        assert!(
            Instant::now() < deadline,
            "only {} scrapes in 10 s",
            requests.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let snap = until(&store, "the count", |s| {
        task(s, "api").and_then(|t| t.value) == Some(37.0)
    })
    .await;
    assert_eq!(task(&snap, "api").and_then(|t| t.error.clone()), None);
    cancel.cancel();
    let _ = handle.await;
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "{} scrapes",
        requests.load(Ordering::SeqCst)
    );
}
