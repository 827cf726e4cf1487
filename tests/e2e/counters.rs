//! Node counters through the real agent and the real kernel: a listener whose service never
//! calls `accept()` shows its accept queue against its backlog in the API and on `/metrics`, a
//! task target that does not answer is failing (never 0), and the agent counts its own process
//! and runtime.

use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::Agent;

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
