//! The dashboard of the real agent in a real browser (Debian's Chromium, headless, over
//! chromedriver): every page shows what the agent produced from lines written to a tailed
//! file and a trace sent by the OpenTelemetry Python SDK; a new pattern appears without a
//! reload; hostile log content renders as text. Screenshots of each page go to
//! `target/screenshots/agent-*.png` for a person to look at.

use std::fs::OpenOptions;
use std::io::Write;
use std::time::Duration;

use serde_json::{json, Value};

use crate::browser::Browser;
use crate::support::Agent;

const XSS_IMG: &str = "<img src=x onerror=alert(1)>";
const XSS_SCRIPT: &str = "</script><script>alert(1)</script>";

fn append(path: &std::path::Path, lines: &[String]) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
}

fn main_text_includes(browser: &Browser, needle: &str) -> bool {
    browser.wait_for(
        &format!(
            "return document.querySelector('main').innerText.includes({})",
            json!(needle)
        ),
        Duration::from_secs(15),
    )
}

fn no_injected_elements(browser: &Browser, page: &str) {
    let injected =
        browser.eval("return document.querySelectorAll('main img, main script, [onerror]').length");
    assert_eq!(injected, json!(0), "{page}: log content became markup");
}

#[test]
fn every_page_of_the_real_agent_shows_its_data_live_and_hostile_text_as_text() {
    let agent = Agent::start(&[]);
    let log = agent.log_path("checkout.log");
    let mut lines = Vec::new();
    for i in 0..30 {
        lines.push(format!(
            r#"{{"level":"error","msg":"charge failed","service":"checkout","error":"read tcp 10.0.0.{}:{}->10.0.9.1:443: read: connection reset by peer"}}"#,
            i % 5,
            41000 + i
        ));
    }
    for i in 0..8 {
        lines.push(format!(
            "level=error msg=\"{XSS_IMG}\" err=\"login {i} refused: {XSS_SCRIPT} {XSS_IMG}\" service=auth"
        ));
    }
    append(&log, &lines);

    let health = agent.get_json("/api/v1/health");
    let otlp_http = health["components"]["otlp_http"]["address"]
        .as_str()
        .unwrap()
        .to_owned();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/python/send_trace.py");
    let sent = std::process::Command::new("python3")
        .args([script, "--protocol", "http", "--endpoint", &otlp_http])
        .args([
            "--log-file",
            agent.log_path("payments.log").to_str().unwrap(),
        ])
        .output()
        .expect("run send_trace.py (the test command installs the OpenTelemetry SDK)");
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let trace_id = serde_json::from_slice::<Value>(&sent.stdout).unwrap()["trace_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let browser = Browser::start();
    let url = |path: &str| format!("{}{path}", agent.base);

    browser.open(&url("/"));
    assert!(
        main_text_includes(&browser, "connection reset by peer"),
        "overview: {}",
        browser.text()
    );
    assert!(
        browser.wait_for(
            "return document.getElementById('live').textContent === 'live'",
            Duration::from_secs(10)
        ),
        "the live stream did not connect"
    );
    no_injected_elements(&browser, "overview");
    browser.screenshot("agent-overview");

    // A new kind of error written now appears without a reload.
    browser.eval("window.faultlineMarker = 7; return 1");
    let quota: Vec<String> = (0..12)
        .map(|i| format!(r#"{{"level":"error","msg":"write failed","error":"write /data/part-{i}: disk quota exceeded"}}"#))
        .collect();
    append(&log, &quota);
    assert!(
        main_text_includes(&browser, "disk quota exceeded"),
        "the new pattern did not appear: {}",
        browser.text()
    );
    assert_eq!(
        browser.eval("return window.faultlineMarker"),
        json!(7),
        "the page reloaded"
    );
    browser.screenshot("agent-overview-live");

    browser.open(&url("/clusters"));
    // The list shows the masked pattern; the markup-looking part of it must be text.
    assert!(
        main_text_includes(&browser, "<img src=x onerror="),
        "{}",
        browser.text()
    );
    no_injected_elements(&browser, "clusters");
    browser.screenshot("agent-clusters");

    let rows = agent.get_json("/api/v1/clusters?q=onerror");
    let xss_cluster = rows["clusters"][0]["id"]
        .as_str()
        .expect("the hostile pattern")
        .to_owned();
    browser.open(&url(&format!("/cluster?id={xss_cluster}")));
    // The samples show the lines as written.
    assert!(main_text_includes(&browser, XSS_IMG), "{}", browser.text());
    assert!(
        main_text_includes(&browser, XSS_SCRIPT),
        "{}",
        browser.text()
    );
    no_injected_elements(&browser, "cluster");
    browser.screenshot("agent-cluster");

    browser.open(&url(&format!("/trace?id={trace_id}")));
    assert!(
        main_text_includes(&browser, "payments"),
        "{}",
        browser.text()
    );
    let origin = browser.eval("return document.querySelector('.span-row.origin') !== null");
    assert_eq!(origin, json!(true), "no error origin highlighted");
    browser.screenshot("agent-trace");

    browser.open(&url("/traces"));
    assert!(
        main_text_includes(&browser, "frontend"),
        "{}",
        browser.text()
    );
    browser.screenshot("agent-traces");

    browser.open(&url("/counters"));
    // Some port chart, not a particular state: the page shows the node's top 16 port groups,
    // and on a busy machine (or beside the counters tests' TIME_WAIT storm, which outlives its
    // test by a minute) groups with only a LISTEN socket rank below the top.
    assert!(
        main_text_includes(&browser, "Sockets, "),
        "{}",
        browser.text()
    );
    browser.screenshot("agent-counters");
}
