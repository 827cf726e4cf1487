//! The dashboard in a real headless Chromium, driven over WebDriver (chromedriver from
//! Debian's `chromium-driver`): every page loads with data, hostile log content renders as
//! text, a new emerging pattern appears without a reload, and a screenshot of each page is
//! written to `target/screenshots/` for a person to look at.

mod fixture;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use faultline_web::model::{
    Check, ClusterView, CountedAs, CountersSnapshot, Culprit, CulpritRole, DiagnosisView,
    EmergenceKind, IncidentPattern, IncidentState, PortSide, Relation, SecondCounts, Series,
    SocketSeries, SocketSource, SocketState, SourceState, SourceStatus, TraceView, ValueCount,
};
use fixture::browser::Browser;
use fixture::*;
use serde_json::json;

fn incident_server() -> (SocketAddr, Arc<FixtureStore>, Incident) {
    let store = Arc::new(FixtureStore::default());
    let incident = load_incident(&store, now_ms());
    let addr = serve(store.views(), None);
    (addr, store, incident)
}

/// Asserts that no hostile string became markup: no element it would create exists, no
/// alert fired, and the text itself is visible as text.
fn assert_hostile_text_is_text(browser: &Browser, page: &str) {
    let injected =
        browser.eval("return document.querySelectorAll('main img, main script, [onerror]').length");
    assert_eq!(
        injected,
        json!(0),
        "{page}: markup from log content was rendered"
    );
    // An alert would leave a prompt open; WebDriver reports it on the next command.
    browser.eval("return 1");
}

#[test]
fn every_page_shows_live_data_and_hostile_log_content_as_text() {
    let (addr, _store, incident) = incident_server();
    let browser = Browser::start();
    let url = |path: &str| format!("http://{addr}{path}");

    browser.open(&url("/"));
    let text = browser.text();
    assert!(text.to_lowercase().contains("error patterns now"), "{text}");
    assert!(text.contains("read tcp <IP>:<NUM>-><IP>:<NUM>: read: connection reset by peer"));
    assert!(text.contains("new pattern: first seen 4 min ago"));
    assert!(
        text.contains(XSS_IMG),
        "the hostile template must show as text"
    );
    assert!(text.contains(XSS_SCRIPT));
    assert!(
        text.contains("TIME-WAIT :8080"),
        "moving sockets missing: {text}"
    );
    assert!(
        text.contains("user-svc 1810"),
        "goroutine counter missing: {text}"
    );
    assert_hostile_text_is_text(&browser, "overview");
    // The overview leads with the incidents: the culprit, its counters, the hint and its
    // command; hostile text in an incident is text too.
    let first = browser.eval(
        "const i = document.querySelector('main > section#incidents .incident'); \
         return i ? i.textContent : ''",
    );
    let first = first.as_str().unwrap_or_default();
    for want in [
        "Culprit: user-svc",
        "CLOSE-WAIT :8081 is climbing 0 → 412",
        XSS_IMG,
        "Connections pile up in CLOSE-WAIT",
        "ss -tanp state close-wait '( sport = :8081 or dport = :8081 )'",
    ] {
        assert!(
            first.contains(want),
            "{want:?} not in the first incident: {first}"
        );
    }
    // Hovering one chart shows the same moment on every chart of the page.
    let shown = browser.eval(
        "const svg = document.querySelector('svg.chart'); const b = svg.getBoundingClientRect(); \
         svg.dispatchEvent(new PointerEvent('pointermove', {clientX: b.right - 20, clientY: b.top + 20})); \
         return [document.querySelectorAll('svg.chart').length, \
                 document.querySelectorAll('svg.chart text.hover[visibility=visible]').length]",
    );
    assert_eq!(shown[0], shown[1], "crosshair not on every chart: {shown}");
    // Three node charts plus one per counter that moved with the top pattern.
    let moved_charts = browser.eval("return document.querySelectorAll('#moved svg.chart').length");
    assert!(moved_charts.as_u64().unwrap() >= 1, "{moved_charts}");
    assert_eq!(shown[0].as_u64(), moved_charts.as_u64().map(|n| n + 3));
    browser.screenshot("overview");

    browser.open(&url("/clusters"));
    let text = browser.text();
    assert!(text.contains("4 patterns match."), "{text}");
    assert!(text.contains("dial tcp <IP>:<NUM>: connect: connection refused"));
    assert_hostile_text_is_text(&browser, "clusters");
    browser.screenshot("clusters");

    browser.open(&url("/clusters?q=reset&sort=rate"));
    assert!(browser.text().contains("1 pattern match."));

    browser.open(&url(&format!("/cluster?id={}", incident.reset_cluster)));
    let text = browser.text();
    assert!(
        text.contains("10.0.3.17:5432"),
        "parameter values missing: {text}"
    );
    assert!(text.contains("Occurrences per minute"));
    assert!(text.contains("handler failed:"), "templates missing");
    assert_hostile_text_is_text(&browser, "cluster");
    browser.screenshot("cluster");

    browser.open(&url(&format!("/cluster?id={}", incident.xss_cluster)));
    let text = browser.text();
    assert!(text.contains(&format!("login failed for user {XSS_IMG}")));
    // The pattern's stack, with its top application frame.
    assert!(text.to_lowercase().contains("stack (latest)"), "{text}");
    assert!(text.contains("/src/auth/login.go:42"), "{text}");
    assert!(
        text.contains(&format!("main.login {XSS_IMG} login.go:42")),
        "{text}"
    );
    assert_hostile_text_is_text(&browser, "hostile cluster");

    browser.open(&url(&format!("/trace?id={}", incident.error_trace)));
    let text = browser.text();
    assert!(text.contains("error starts here"), "{text}");
    assert!(text.contains("SELECT users"));
    assert!(text.contains(&format!("user agent {XSS_SCRIPT}")));
    // The trace's patterns are named by their templates, not by bare ids.
    assert!(
        text.to_lowercase().contains("error patterns in this trace"),
        "{text}"
    );
    assert_eq!(
        browser.eval("return document.querySelectorAll('.trace-patterns li .template').length"),
        json!(2),
        "{text}"
    );
    let origin = browser.eval("return document.querySelector('.span-row.origin').id");
    assert_eq!(origin, json!("span-a000000000000004"));
    assert_hostile_text_is_text(&browser, "trace");
    browser.screenshot("trace");

    browser.open(&url("/traces?errors=true"));
    assert_eq!(
        browser.eval("return document.querySelectorAll('main tbody tr').length"),
        json!(1)
    );
    browser.screenshot("traces");

    browser.open(&url("/counters"));
    let text = browser.text();
    assert!(text.contains("Sockets, local :8080"), "{text}");
    assert!(text.contains("CLOSE-WAIT"));
    assert!(text.contains("user-svc [4242] fds"));
    assert_hostile_text_is_text(&browser, "counters");
    browser.screenshot("counters");

    // The dark theme, chosen with the theme button, survives navigation.
    browser.eval("document.getElementById('theme').click(); return 1");
    let theme = browser.eval("return document.documentElement.dataset.theme");
    browser.open(&url("/"));
    assert_eq!(
        browser.eval("return document.documentElement.dataset.theme"),
        theme
    );
    browser.screenshot(&format!("overview-{}", theme.as_str().unwrap_or("theme")));
}

#[test]
fn what_moved_with_it_shows_the_counter_the_data_moved_and_follows_it_live() {
    let now = now_ms();
    let onset = now - 5 * 60_000;
    // A port no code could guess: it comes from the clock.
    let port = 20_000 + (now % 10_000) as u16;
    let store = Arc::new(FixtureStore::default());
    let id = "0000000000c0ffee";
    let template = "read tcp <IP>:<NUM>-><IP>:<NUM>: read: connection reset by peer";
    store.put_cluster(new_pattern_at(now, id, template, onset, |i| {
        if i >= 54 {
            1200
        } else {
            0
        }
    }));
    let from = now - 899_000;
    store.put_per_second(
        id,
        SecondCounts {
            start_unix_ms: from - from.rem_euclid(1000),
            counts: (0..900)
                .map(|i| if from + i * 1000 >= onset { 20 } else { 0 })
                .collect(),
        },
    );
    store.set_counters(time_wait_storm(now, port, onset - 3_000));
    // A quiet pattern from long before the counters' history.
    store.put_cluster(cluster(
        now,
        "00000000000001d1",
        "dial tcp <IP>:<NUM>: connect: connection refused",
        &["orders"],
        None,
        |i| if i < 5 { 3 } else { 0 },
        &[],
        &[],
    ));
    let addr = serve(store.views(), None);
    let browser = Browser::start();

    browser.open(&format!("http://{addr}/"));
    let evidence = browser
        .eval("return [...document.querySelectorAll('#moved .evidence')].map(e => e.textContent)");
    let evidence = evidence.as_array().unwrap();
    assert_eq!(evidence.len(), 1, "{evidence:?}");
    let first = evidence[0].as_str().unwrap();
    assert!(
        first.starts_with(&format!(
            "TIME-WAIT →:{port} rose 12 → 4,310 (+4,298) from "
        )) && first.contains("3 s before the first error"),
        "{first}"
    );
    let panel = browser.eval("return document.getElementById('moved').innerText");
    assert!(panel.as_str().unwrap().contains(template), "{panel}");
    assert!(!browser.text().contains("will appear here"));
    // Its chart: the counter's line, the pattern's occurrences and the onset marker.
    let chart = browser.eval(
        "const c = document.querySelector('#moved svg.moved-chart');          return [c.querySelectorAll('path.counter').length, c.querySelectorAll('rect.occ').length > 0,                  c.querySelectorAll('line.onset').length]",
    );
    assert_eq!(chart, json!([1, true, 1]));
    assert_hostile_text_is_text(&browser, "overview with moved");
    browser.screenshot("overview-moved");

    // The pattern's own page shows the same answer.
    browser.open(&format!("http://{addr}/cluster?id={id}"));
    assert!(browser.wait_for(
        &format!(
            "const e = document.querySelector('#moved .evidence'); return !!e && e.textContent === {}",
            json!(first)
        ),
        Duration::from_secs(10)
    ));
    browser.screenshot("cluster-moved");

    // The counters settle back to flat: live, without a reload, the panel says nothing moved.
    store.set_counters(time_wait_storm(now_ms(), port, now + 3_600_000));
    assert!(
        browser.wait_for(
            "const v = document.querySelector('#moved [data-verdict]');              return !!v && v.dataset.verdict === 'nothing_moved' && v.textContent.startsWith('Nothing moved')",
            Duration::from_secs(10)
        ),
        "{}",
        browser.text()
    );

    // A pattern older than the counters' history: the panel says so instead of guessing.
    browser.open(&format!("http://{addr}/cluster?id=00000000000001d1"));
    assert!(browser.wait_for(
        "const v = document.querySelector('#moved [data-verdict]');          return !!v && v.dataset.verdict === 'not_enough_history' && v.textContent.includes('Not enough history')",
        Duration::from_secs(10)
    ));
}

#[test]
fn a_new_emerging_pattern_appears_without_a_reload() {
    let (addr, store, _) = incident_server();
    let browser = Browser::start();
    browser.open(&format!("http://{addr}/"));
    assert!(browser.wait_for(
        "return document.getElementById('live').textContent === 'live'",
        Duration::from_secs(10)
    ));
    // A reload would drop this marker.
    browser.eval("window.faultlineMarker = 42; return 1");
    let template = "write tcp <IP>:<NUM>-><IP>:<NUM>: write: broken pipe";
    assert!(!browser.text().contains(template));

    let mut emerging = cluster(
        now_ms(),
        "b10cbe11ab0d7e57",
        template,
        &["cart-svc"],
        Some((EmergenceKind::New, "new pattern: first seen just now", 20.0)),
        |i| if i == 59 { 90 } else { 0 },
        &["write tcp 10.0.1.5:40100->10.0.2.9:6379: write: broken pipe"],
        &[],
    );
    emerging.summary.rate_per_minute = 90.0;
    store.put_cluster(emerging);

    assert!(
        browser.wait_for(
            &format!(
                "return document.querySelector('main').innerText.includes({})",
                json!(template)
            ),
            Duration::from_secs(10)
        ),
        "the new pattern did not appear"
    );
    assert_eq!(browser.eval("return window.faultlineMarker"), json!(42));
    // Emerging patterns are ranked by score: the new one (20.0) comes first.
    let first = browser.eval("return document.querySelector('.pattern .template').textContent");
    assert_eq!(first, json!(template));
    browser.screenshot("overview-live-update");
}

#[test]
fn many_tabs_of_one_agent_share_one_live_stream() {
    // Browsers give a host about six HTTP/1.1 connections; if every tab held its own event
    // stream, the seventh tab could not even fetch its data.
    let (addr, store, _) = incident_server();
    let browser = Browser::start();
    for tab in 0..8 {
        if tab > 0 {
            browser.new_tab();
        }
        browser.open(&format!("http://{addr}/clusters"));
        assert!(
            browser.wait_for(
                "return document.getElementById('live').textContent === 'live'",
                Duration::from_secs(15)
            ),
            "tab {tab} never heard the live stream"
        );
    }
    // The last tab (a follower or the leader) still gets updates.
    store.put_cluster(cluster(
        now_ms(),
        "7ab5000000000008",
        "tls: handshake timeout after <NUM>s",
        &["edge"],
        None,
        |_| 2,
        &[],
        &[],
    ));
    assert!(browser.wait_for(
        "return document.querySelector('main').innerText.includes('tls: handshake timeout')",
        Duration::from_secs(10)
    ));
}

#[test]
fn counters_page_charts_the_traffic_of_every_service() {
    let (addr, _store, _) = incident_server();
    let browser = Browser::start();
    let url = |path: &str| format!("http://{addr}{path}");

    browser.open(&url("/counters"));
    // Two charts (requests, failures), one line and one legend entry per service in each.
    let charts = browser.eval(
        "return [...document.querySelectorAll('#traffic .chartbox')].map((c) => [c.querySelector('h3').textContent, c.querySelectorAll('svg path').length, [...c.querySelectorAll('.legend li')].map((li) => li.firstChild.textContent)])",
    );
    assert_eq!(
        charts,
        json!([
            ["Requests per second", 2, ["checkout", XSS_SCRIPT]],
            ["Failed requests per second", 2, ["checkout", XSS_SCRIPT]]
        ])
    );
    // The failures of `checkout` climb: its latest rate and its change are in the legend.
    let failing = browser.eval(
        "return document.querySelectorAll('#traffic .chartbox')[1].querySelector('.legend li').textContent",
    );
    assert_eq!(failing, json!("checkout 11.8 +11.8"));
    assert_hostile_text_is_text(&browser, "counters traffic");
    browser.screenshot("counters-traffic");

    // Per minute there is no traffic history, and the page says why.
    browser.open(&url("/counters?resolution=minute"));
    let text = browser.eval("return document.querySelector('#traffic').textContent");
    assert!(
        text.as_str()
            .is_some_and(|t| t.contains("Kept per second for 15 minutes only")),
        "{text}"
    );
}

#[test]
fn counters_page_shows_accept_queues_sources_and_failures_as_such() {
    let (addr, store, _) = incident_server();
    let browser = Browser::start();
    let url = |path: &str| format!("http://{addr}{path}");

    browser.open(&url("/counters"));
    let text = browser.text().to_lowercase();
    // The listener at its backlog is marked; the one with room is not.
    assert!(
        text.contains("listen sockets: accept queue vs backlog"),
        "{text}"
    );
    let marked = browser.eval(
        "return [...document.querySelectorAll('tr.listener')].map((r) => [r.cells[0].textContent.trim(), r.className])",
    );
    assert_eq!(
        marked,
        json!([
            ["0.0.0.0:8080 full: connections dropped", "listener full"],
            ["[::]:8080", "listener"],
            ["127.0.0.1:6060", "listener"]
        ])
    );
    assert!(text.contains("+ 2 more listening sockets"));
    // Totals by state and the ports beyond the top ones.
    assert!(text.contains("sockets by state"));
    assert!(text.contains("time-wait\t1227\t+300"), "{text}");
    assert!(text.contains("other ports (37 port groups beyond the top ones): 61 sockets"));
    // Sources: the unavailable one says so and why, hostile text as text.
    assert!(text.contains(&format!(
        "unavailable sockstat: cannot read /proc/net/sockstat: permission denied {XSS_IMG}"
    )));
    // Processes: fds against the limit, RSS; the unreadable one says why.
    assert!(text.contains("252 / 1024"), "{text}");
    assert!(text.contains("281 mib"));
    assert!(text.contains(&format!("unavailable no process named {XSS_IMG}")));
    // Tasks: the failing target is failing, with its last value; the agent watches itself.
    assert!(text.contains(&format!(
        "failing payments-svc (expvar): timeout after 2 s {XSS_SCRIPT}"
    )));
    assert!(text.contains("last read 2 min ago: 96"), "{text}");
    assert!(text.contains("faultline (tokio tasks)"));
    assert!(text.contains("faultline itself (tokio runtime)"));
    assert!(text.contains(XSS_IMG));
    assert_hostile_text_is_text(&browser, "counters");
    browser.screenshot("counters-full");

    browser.open(&url("/counters?resolution=minute"));
    let text = browser.text().to_lowercase();
    assert!(
        text.contains("one point per minute (the minute's peak)"),
        "{text}"
    );
    browser.screenshot("counters-minute");

    // The socket source fails: no socket figures at all (no zeros), and why.
    let mut broken = counters(now_ms(), 120);
    broken.sockets.clear();
    broken.listeners.clear();
    broken.socket_totals = None;
    broken.sources[0] = SourceStatus {
        name: "sockets.netlink".into(),
        status: SourceState::Failing,
        reason: Some(format!("netlink sock_diag: permission denied {XSS_SCRIPT}")),
    };
    browser.open(&url("/counters"));
    assert!(browser.wait_for(
        "return document.getElementById('live').textContent === 'live'",
        Duration::from_secs(10)
    ));
    store.set_counters(broken);
    assert!(
        browser.wait_for(
            "return document.querySelector('main').innerText.includes('No socket source can be read')",
            Duration::from_secs(10)
        ),
        "{}",
        browser.text()
    );
    let text = browser.text().to_lowercase();
    assert!(text.contains(&format!(
        "failing sockets.netlink: netlink sock_diag: permission denied {XSS_SCRIPT}"
    )));
    assert!(!text.contains("accept queue\t"), "{text}");
    assert_hostile_text_is_text(&browser, "counters without sockets");
    browser.screenshot("counters-socket-source-failing");

    // /proc fallback: backlogs are unknown, and said to be.
    let mut proc_only = counters(now_ms(), 120);
    if let Some(totals) = proc_only.socket_totals.as_mut() {
        totals.source = SocketSource::Proc;
    }
    for l in &mut proc_only.listeners {
        l.backlog = None;
        l.fill = None;
    }
    store.set_counters(proc_only);
    assert!(browser.wait_for(
        "return document.querySelector('main').innerText.includes('Counted by /proc/net/tcp')",
        Duration::from_secs(10)
    ));
    let unknown = browser.eval(
        "return [...document.querySelectorAll('tr.listener')].map((r) => r.cells[2].textContent)",
    );
    assert_eq!(unknown, json!(["unknown", "unknown", "unknown"]));
}

/// A socket series over the `points` samples of `snap` (5 s apart), moving linearly from
/// `from` to `to`.
fn socket_ramp(
    snap: &CountersSnapshot,
    port: u16,
    side: PortSide,
    state: SocketState,
    from: f64,
    to: f64,
) -> SocketSeries {
    let n = ((snap.sampled_at_unix_ms - snap.history_start_unix_ms) / snap.step_ms + 1) as usize;
    let points: Vec<Option<f64>> = (0..n)
        .map(|i| Some(from + (to - from) * i as f64 / (n - 1).max(1) as f64))
        .collect();
    SocketSeries::new(
        port,
        side,
        state,
        to as u64,
        Series {
            points,
            delta_1m: None,
        },
    )
}

#[test]
fn the_overview_reads_the_first_incident_with_its_ports_on_a_young_agents_axis() {
    let now = now_ms();
    let store = Arc::new(FixtureStore::default());
    load_incident(&store, now);
    // Three active incidents: the fixture's two and a copy of the first under another id.
    let mut doc = (*DiagnosisView::incidents(&*store)).clone();
    let mut third = doc.incidents[0].clone();
    third.id = "00000000000000a3".into();
    doc.incidents.push(third);
    for inc in &mut doc.incidents {
        inc.active = true;
    }
    // Lines no trace holds (a server's accept errors) are listed apart from the requests, and
    // an echo of the failures is not counted again (the API recounts from the patterns).
    let base = doc.incidents[0].patterns[0].clone();
    let eof = "a17b22c9e0f35d88";
    let untraced = ClusterView::detail(&*store, eof)
        .expect("the fixture's EOF pattern")
        .summary
        .total_count;
    for (id, counted_as) in [
        (eof, CountedAs::Untraced),
        ("5c0de11a9b7f2e34", CountedAs::Echo),
    ] {
        doc.incidents[0].patterns.push(IncidentPattern {
            id: id.into(),
            counted_as,
            ..base.clone()
        });
    }
    store.set_incidents(doc.clone());
    // Five minutes of counters (the agent is young): the incident's CLOSE-WAIT :8081 rises by
    // 40, other programs' ports by far more, and a previous run's port drains to 0.
    let mut snap = counters(now, 60);
    let mut extra = vec![socket_ramp(
        &snap,
        8081,
        PortSide::Local,
        SocketState::CloseWait,
        0.0,
        40.0,
    )];
    for (i, port) in [41001u16, 41002, 41003, 41004].into_iter().enumerate() {
        let to = 3000.0 - 400.0 * i as f64;
        extra.push(socket_ramp(
            &snap,
            port,
            PortSide::Remote,
            SocketState::TimeWait,
            0.0,
            to,
        ));
    }
    extra.push(socket_ramp(
        &snap,
        22187,
        PortSide::Local,
        SocketState::TimeWait,
        9000.0,
        0.0,
    ));
    snap.sockets.extend(extra);
    store.set_counters(snap);
    let addr = serve(store.views(), None);
    let browser = Browser::start();
    browser.open(&format!("http://{addr}/"));

    // The first incident is read in full; the others are one line each (headline, culprit,
    // onset), the change on a line of its own.
    let cards = browser.eval(
        "return [...document.querySelectorAll('#incidents details.incident')].map((d) => \
         [d.open, d.querySelector('.headline').textContent, \
          (d.querySelector('.title-rest') || {textContent: ''}).textContent])",
    );
    let cards = cards.as_array().unwrap();
    assert_eq!(cards.len(), 3, "{cards:?}");
    let opened: Vec<bool> = cards.iter().map(|c| c[0] == json!(true)).collect();
    assert_eq!(opened, [true, false, false]);
    for (card, inc) in cards.iter().zip(&doc.incidents) {
        let (headline, rest) = match inc.hints.first() {
            Some(h) if inc.title.starts_with(&format!("{} — ", h.title)) => (
                h.title.clone(),
                inc.title[h.title.len() + " — ".len()..].to_owned(),
            ),
            _ => (inc.title.clone(), String::new()),
        };
        assert_eq!(card[1], json!(headline), "{card}");
        assert_eq!(card[2], json!(rest), "{card}");
    }
    assert!(
        cards[0][2].as_str().unwrap().starts_with("in user-svc"),
        "{cards:?}"
    );
    let failures = browser.eval(
        "return document.querySelector('#incidents details.incident [data-failures]').textContent",
    );
    assert!(
        failures.as_str().unwrap_or_default().ends_with(&format!(
            "; {untraced} lines no trace holds, not counted as requests"
        )),
        "{failures}"
    );
    let pattern = browser.eval(
        "return [...document.querySelector('#incidents details.incident').querySelectorAll('.incident-pattern')]          .map((p) => p.textContent)",
    );
    let pattern: Vec<&str> = pattern
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(pattern.len(), 3, "{pattern:?}");
    assert!(!pattern[0].contains("(lines no trace") && !pattern[0].contains("(an echo"));
    assert!(
        pattern[1].contains(" lines (no trace holds them: not counted as requests) · since"),
        "{pattern:?}"
    );
    assert!(
        pattern[2].contains(" failures (an echo of the failures above: not counted again) · since"),
        "{pattern:?}"
    );

    // A card someone opened stays open through live updates (the cards are rebuilt).
    browser.eval(
        "const d = document.querySelectorAll('#incidents details.incident')[1]; \
         d.querySelector('summary').click(); d.dataset.mark = '1'; return 1",
    );
    store.put_cluster(cluster(
        now_ms(),
        "7ab5000000000009",
        "tls: handshake timeout after <NUM>s",
        &["edge"],
        None,
        |_| 2,
        &[],
        &[],
    ));
    assert!(browser.wait_for(
        "return !document.querySelector('#incidents [data-mark]')",
        Duration::from_secs(10)
    ));
    let opened = browser.eval(
        "return [...document.querySelectorAll('#incidents details.incident')].map((d) => d.open)",
    );
    assert_eq!(opened, json!([true, true, false]));

    // The node chart leads with the incident's own port, named with its culprit; a drained
    // port of a previous run is not shown while other series rose.
    let legend = browser.eval(
        "return [...document.querySelectorAll('section[aria-labelledby=h-node] .chartbox')[0] \
         .querySelectorAll('.legend li')].map((li) => li.textContent)",
    );
    let legend: Vec<String> = legend
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(legend.len(), 4, "{legend:?}");
    assert!(
        legend[0].starts_with("CLOSE-WAIT :8081 (user-svc) 40"),
        "{legend:?}"
    );
    assert!(!legend.iter().any(|l| l.contains(":22187")), "{legend:?}");

    // The agent started just now: the axis spans its data, not a 30-minute window with the
    // data at its right edge.
    let note = browser.eval("return document.querySelector('.axisnote').textContent");
    assert!(
        note.as_str().unwrap().contains("since the agent started"),
        "{note}"
    );
    let first_x = browser.eval(
        "return parseFloat(document.querySelector('section[aria-labelledby=h-node] svg.chart path') \
         .getAttribute('d').slice(1))",
    );
    assert!(
        first_x.as_f64().unwrap() < 100.0,
        "the data starts at x = {first_x} of 600"
    );
    assert_hostile_text_is_text(&browser, "overview with three incidents");
    browser.screenshot("overview-three-incidents");

    // A chosen window is kept as chosen.
    browser.open(&format!("http://{addr}/?window=30m"));
    let note = browser.eval("return document.querySelector('.axisnote').textContent");
    assert!(note.as_str().unwrap().contains("the last 30m"), "{note}");
}

#[test]
fn what_moved_says_it_is_comparing_while_its_answer_is_computed() {
    let (addr, store, _) = incident_server();
    // The agent's answer takes seconds on a loaded node.
    store.set_moved_delay(Duration::from_secs(4));
    let browser = Browser::start();
    browser.goto(&format!("http://{addr}/"));
    assert!(browser.wait_for(
        "return !!document.querySelector('#now .pattern')",
        Duration::from_secs(10)
    ));
    // A NEW pattern is listed: its neighbour box says what it is doing, not nothing.
    let moved = browser.eval("return document.querySelector('#moved').innerText");
    let moved = moved.as_str().unwrap_or_default();
    assert!(
        moved.contains("Comparing the node's counters with the top incident or error pattern"),
        "{moved:?}"
    );
    // Then the answer replaces it.
    assert!(browser.wait_for(
        "return !!document.querySelector('#moved [data-verdict]') \
         && !document.querySelector('#moved [data-loading]')",
        Duration::from_secs(15)
    ));
}

#[test]
fn the_pattern_page_says_its_templates_count_reports_and_who_reported_it() {
    let now = now_ms();
    let store = Arc::new(FixtureStore::default());
    // The callee wrote both templates (a log line and its client span per failure); the
    // caller only echoed the failure in its traces.
    let mut detail = cluster(
        now,
        "00000000000f0a11",
        "Get <url>: context deadline exceeded",
        &["billing", "edge-svc"],
        None,
        |i| if i >= 55 { 180 } else { 0 },
        &[],
        &[],
    );
    let total = detail.summary.total_count;
    for t in &mut detail.templates {
        t.count = total;
        t.services = vec!["billing".into()];
    }
    detail.reports = 2 * total;
    detail.service_occurrences = vec![
        ValueCount {
            value: "billing".into(),
            count: total,
        },
        ValueCount {
            value: "edge-svc".into(),
            count: total - 12,
        },
    ];
    store.put_cluster(detail);
    let addr = serve(store.views(), None);
    let browser = Browser::start();
    browser.open(&format!("http://{addr}/cluster?id=00000000000f0a11"));
    let heads = browser
        .eval("return [...document.querySelectorAll('#templates th')].map((th) => th.textContent)");
    assert_eq!(heads, json!(["Template", "Reports", "Written by"]));
    let note =
        browser.eval("return document.querySelector('#templates [data-reports]').textContent");
    assert_eq!(
        note,
        json!(format!(
            "Reports are log records and error spans: {} reports of {} failures (a failure is counted once per trace however many records report it).",
            2 * total,
            total
        ))
    );
    let services = browser.eval("return document.querySelector('.services-stat').innerText");
    let services = services.as_str().unwrap_or_default().replace('\n', " ");
    assert!(
        services.contains(&format!("billing {total}"))
            && services.contains(&format!("edge-svc {}", total - 12)),
        "{services}"
    );
    browser.screenshot("cluster-reports");
}

#[test]
fn a_check_that_wants_the_pid_of_a_process_that_is_down_says_so() {
    let now = now_ms();
    let store = Arc::new(FixtureStore::default());
    load_incident(&store, now);
    // The culprit's process is watched but no longer runs (killed, as a refused callee is):
    // its pid is unknown, and the check of the connection-refused rule cannot name it.
    let mut doc = (*DiagnosisView::incidents(&*store)).clone();
    let check = Check {
        what: "Whether the callee's process is alive".into(),
        command: "ps -o pid,lstart,cmd -p <pid>".into(),
        complete: false,
    };
    doc.incidents[0].hints[0].checks.push(check.clone());
    // The hostile incident has no culprit: its message stays the generic one.
    let hints = doc.incidents[0].hints.clone();
    let hostile = doc
        .incidents
        .iter_mut()
        .find(|i| i.culprit.service.is_none())
        .expect("the fixture's incident with no culprit");
    hostile.active = true;
    hostile.hints = hints;
    store.set_incidents(doc);
    let mut snap = counters(now, 60);
    let user = snap
        .processes
        .iter_mut()
        .find(|p| p.name == "user-svc")
        .expect("the fixture watches user-svc");
    user.current = None;
    user.pid = 0;
    user.error = Some(format!("no process matches listen port 8081 {XSS_IMG}"));
    store.set_counters(snap);
    let addr = serve(store.views(), None);
    let browser = Browser::start();
    browser.open(&format!("http://{addr}/"));
    let said = browser.eval(
        "return [...document.querySelectorAll('#incidents .unfilled')].map((n) => n.textContent)",
    );
    let said: Vec<&str> = said
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        said.contains(&format!(
            "faultline watches the process of user-svc and finds none running now (no process matches listen port 8081 {XSS_IMG}): it may be down. Once it runs again, fill in its pid."
        ).as_str()),
        "{said:?}"
    );
    assert!(
        said.contains(&"Fill in the <pid> part: the incident does not say it."),
        "{said:?}"
    );
    assert_hostile_text_is_text(&browser, "overview with a process down");
}

#[test]
fn the_trace_page_does_not_say_the_error_starts_in_the_caller_when_its_callee_is_the_culprit() {
    let (addr, store, incident) = incident_server();
    // The callee that starts it closed without a word and could post no span (out of fds):
    // the first error span is its caller's.
    let mut chain = TraceView::call_chain(&*store, &incident.error_trace).expect("fixture trace");
    let origin = chain
        .spans
        .iter()
        .find(|s| Some(&s.span_id) == chain.error_origin_span_id.as_ref())
        .expect("the fixture trace has an error origin")
        .service
        .clone();
    chain.culprit = Some(Culprit {
        service: format!("profiles-api {XSS_IMG}"),
        role: CulpritRole::Callee,
        fault: faultline_diagnosis::culprit::Fault::Timeout,
        seen_by: vec![origin.clone(), "edge".into()],
        edge: None,
        resolved: true,
        headline: String::new(),
        reasoning: format!("profiles-api {XSS_IMG} did not answer within the caller's deadline"),
        evidence: vec![format!("{origin}'s span: context deadline exceeded")],
        traces_agreeing: 1,
        traces_total: 1,
        span_id: None,
    });
    chain.trace_id = "0000000000000000000000000000c0de".into();
    store.put_chain(chain);
    let browser = Browser::start();
    browser.open(&format!(
        "http://{addr}/trace?id=0000000000000000000000000000c0de"
    ));
    let tag =
        browser.eval("return document.querySelector('.span-row.origin .origin-tag').textContent");
    assert_eq!(
        tag,
        json!(format!(
            "◀ first seen here — starts in profiles-api {XSS_IMG} (no span in this trace)"
        ))
    );
    // The callers that saw it are a list, not one run-together name.
    let line =
        browser.eval("return document.querySelector('.culprit-panel p.culprit').textContent");
    assert!(
        line.as_str()
            .unwrap_or_default()
            .contains(&format!("(seen by {origin}, edge")),
        "{line}"
    );
    assert_hostile_text_is_text(&browser, "trace with a callee culprit");
}

#[test]
fn the_counters_page_leads_with_the_ports_of_the_active_incident() {
    let now = now_ms();
    let store = Arc::new(FixtureStore::default());
    load_incident(&store, now);
    let mut snap = counters(now, 60);
    // The incident's port comes last in the snapshot, as a port no one sorted would.
    let cw = socket_ramp(
        &snap,
        8081,
        PortSide::Local,
        SocketState::CloseWait,
        0.0,
        412.0,
    );
    snap.sockets.push(cw);
    store.set_counters(snap);
    let addr = serve(store.views(), None);
    let browser = Browser::start();
    browser.open(&format!("http://{addr}/counters"));
    let titles = browser.eval(
        "return [...document.querySelectorAll('.chartbox h3')].map((h) => h.textContent) \
         .filter((t) => t.startsWith('Sockets, '))",
    );
    let titles = titles.as_array().unwrap();
    assert_eq!(
        titles.first(),
        Some(&json!(
            "Sockets, local :8081 — user-svc, culprit of an active incident"
        )),
        "{titles:?}"
    );
    assert!(
        titles.contains(&json!("Sockets, local :8080")),
        "{titles:?}"
    );
}

#[test]
fn counts_say_which_lines_no_trace_holds_counters_their_caveat_and_an_ended_incident_when() {
    let now = now_ms();
    let store = Arc::new(FixtureStore::default());
    let fixture = load_incident(&store, now);
    // 41 of the reset pattern's occurrences are lines with no trace id (an exporter's own
    // failures sharing the pattern of the requests that failed with them).
    let mut reset = ClusterView::detail(&*store, &fixture.reset_cluster).expect("reset pattern");
    reset.summary.untraced_count = 41;
    let total = reset.summary.total_count;
    store.put_cluster(reset);
    let mut doc = (*DiagnosisView::incidents(&*store)).clone();
    let caveat = format!(
        "before 10:31 this port was not tracked on its own {XSS_IMG}: its usual level is an estimate"
    );
    // The card lists its related counters first (the node-wide ones fold into a line).
    let related = doc.incidents[0]
        .counters
        .iter_mut()
        .find(|c| c.relation != Relation::NodeWide)
        .expect("a counter related to the culprit");
    related.anomaly.caveat = Some(caveat.clone());
    // Re-read after the detector's window: its evidence quotes where it had got to then.
    related.anomaly.latest = related.anomaly.reached + 569.0;
    let latest = related.anomaly.latest;
    related.supporting = true;
    let ended = now - 90_000;
    doc.incidents[1].active = false;
    doc.incidents[1].last_active_unix_ms = ended;
    doc.incidents[1].ended_unix_ms = Some(ended);
    store.set_incidents(doc.clone());
    let addr = serve(store.views(), None);
    let browser = Browser::start();
    browser.open(&format!("http://{addr}/"));

    let card = "document.querySelector('#incidents details.incident')";
    let counted = browser.eval(&format!(
        "return {card}.querySelector('[data-pattern-untraced]').textContent"
    ));
    assert_eq!(
        counted,
        json!(format!("{} failures + 41 lines no trace holds", total - 41))
    );
    let apart = browser.eval(&format!(
        "return {card}.querySelector('[data-untraced]').textContent"
    ));
    assert_eq!(
        apart,
        json!("; 41 lines no trace holds, not counted as requests")
    );
    let counter = browser.eval(&format!(
        "return {card}.querySelector('.counter').textContent"
    ));
    let counter = counter.as_str().unwrap_or_default();
    assert!(
        counter.contains(&format!(") · now {latest} — a listening port"))
            && counter.contains(&format!("Caveat: {caveat}"))
            && counter.contains("beside the fault: it does not keep the incident active"),
        "{counter}"
    );
    let when = browser.eval(
        "return [...document.querySelectorAll('#incidents details.incident')]\
         .map((d) => (d.querySelector('[data-ended]') || {dataset: {}}).dataset.ended || null)",
    );
    assert_eq!(when, json!([null, ended.to_string()]), "{when}");
    let glance = browser.eval(
        "return document.querySelectorAll('#incidents details.incident')[1]\
         .querySelector('.glance').textContent",
    );
    assert!(
        glance.as_str().unwrap_or_default().contains(" · ended "),
        "{glance}"
    );
    assert_hostile_text_is_text(&browser, "overview with a caveat");
    browser.screenshot("overview-untraced-caveat-ended");

    // The pattern's own page and the pattern list say it too.
    browser.open(&format!(
        "http://{addr}/cluster?id={}",
        fixture.reset_cluster
    ));
    let stat = browser.eval(
        "return [...document.querySelectorAll('.stats [data-untraced] span')]\
         .map((s) => s.textContent)",
    );
    assert_eq!(
        stat,
        json!(["Without a trace", "41", format!(" of {total}")])
    );
    browser.open(&format!("http://{addr}/clusters"));
    let row = browser.eval("return document.querySelector('td [data-untraced]').textContent");
    assert_eq!(row, json!("41 no trace"));
}

/// An SRE who just rolled back reads within seconds that the fault stopped: the overview
/// leads with the incident recovering since when, its card says so, and a counter that no
/// longer moves away says that too; an incident that came back after it had ended says when.
#[test]
fn a_recovering_incident_says_since_when_on_the_overview() {
    let now = now_ms();
    let store = Arc::new(FixtureStore::default());
    load_incident(&store, now);
    let mut doc = (*DiagnosisView::incidents(&*store)).clone();
    let stopped = now - 8_000;
    for inc in &mut doc.incidents {
        inc.active = true;
        inc.state = IncidentState::Recovering;
        inc.recovering_since_unix_ms = Some(stopped - 60_000);
        inc.ended_unix_ms = None;
    }
    doc.incidents[0].recovering_since_unix_ms = Some(stopped);
    doc.incidents[0].reopened_unix_ms = Some(now - 120_000);
    let own = doc.incidents[0]
        .counters
        .iter_mut()
        .find(|c| !c.supporting)
        .expect("an own counter");
    own.moving_away = false;
    own.anomaly.active = true;
    store.set_incidents(doc.clone());
    let addr = serve(store.views(), None);
    let browser = Browser::start();
    browser.open(&format!("http://{addr}/"));

    let lead = browser.eval("return document.querySelector('#incidents .lead').textContent");
    let lead = lead.as_str().unwrap_or_default();
    assert!(
        lead.starts_with(&format!(
            "{} incidents are recovering: their failures stopped",
            doc.incidents.len()
        )),
        "{lead}"
    );
    let states = browser.eval(
        "return [...document.querySelectorAll('#incidents details.incident')]\
         .map((d) => d.dataset.state)",
    );
    assert_eq!(
        states,
        json!(vec!["recovering"; doc.incidents.len()]),
        "{states}"
    );
    let card = "document.querySelector('#incidents details.incident')";
    let since = browser.eval(&format!(
        "return {card}.querySelector('[data-recovering-since]').dataset.recoveringSince"
    ));
    assert_eq!(since, json!(stopped.to_string()));
    let badge = browser.eval(&format!(
        "return {card}.querySelector('.badge[data-state]').textContent"
    ));
    assert_eq!(badge, json!("recovering"));
    let reopened = browser.eval(&format!(
        "return {card}.querySelector('[data-reopened]').textContent"
    ));
    assert!(
        reopened
            .as_str()
            .unwrap_or_default()
            .contains("its fault came back after it had ended"),
        "{reopened}"
    );
    let still = browser.eval(&format!(
        "return {card}.querySelectorAll('[data-still]').length"
    ));
    assert_eq!(still, json!(1));
    assert_hostile_text_is_text(&browser, "overview recovering");
    browser.screenshot("overview-recovering");
}

/// A counter-only incident (a TIME-WAIT storm: orders opens a connection per call to stock,
/// nothing fails) as the diagnosis makes it, over counters where the storm is the only change.
fn counter_only_incident(
    store: &FixtureStore,
    now: i64,
    port: u16,
    onset: i64,
) -> faultline_web::model::Incident {
    use faultline_diagnosis::anomaly::AnomalyReport;
    use faultline_diagnosis::hints::HintRules;
    use faultline_diagnosis::incident::{DiagnosisInput, IncidentTracker, ServiceFacts};
    use faultline_diagnosis::CounterHistory;
    use faultline_series::SeriesKey;

    let key = SeriesKey::PortState {
        port,
        side: PortSide::Remote,
        state: SocketState::TimeWait,
    };
    let report = AnomalyReport {
        series_judged: 3,
        anomalies: vec![faultline_web::model::CounterAnomaly {
            label: key.label(),
            unit: key.unit().into(),
            kind: key.kind(),
            evidence: format!("TIME-WAIT →:{port} rose 12 → 4,310 in 3 s"),
            key,
            shape: faultline_web::model::ChangeShape::Step,
            direction: faultline_web::model::Direction::Rise,
            before: 12.0,
            noise: 3.5,
            reached: 4310.0,
            latest: 4310.0,
            score: 1200.0,
            changed_at_unix_ms: onset,
            active: true,
            limit: None,
            caveat: None,
        }],
        ..AnomalyReport::default()
    };
    let services = vec![
        ServiceFacts {
            service: "orders".into(),
            listen_ports: vec![8081],
            callees: vec!["stock".into()],
            called_ports: vec![port],
            ..ServiceFacts::default()
        },
        ServiceFacts {
            service: "stock".into(),
            listen_ports: vec![port],
            callers: vec!["orders".into()],
            ..ServiceFacts::default()
        },
    ];
    let rules = HintRules::builtin().expect("the shipped rules load");
    let incidents = IncidentTracker::new()
        .update(
            &DiagnosisInput {
                now_unix_ms: now,
                patterns: &[],
                anomalies: &report,
                services: &services,
                history: &CounterHistory::default(),
                api: Some("http://127.0.0.1:7070"),
                agent_ports: &[],
            },
            &rules,
        )
        .to_vec();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    store.set_incidents(faultline_web::model::IncidentsDocument {
        evaluated_at_unix_ms: now,
        series_judged: report.series_judged,
        incidents: incidents.clone(),
        ..Default::default()
    });
    incidents.into_iter().next().unwrap()
}

/// An incident of counters only has no error pattern to compare the counters with: the
/// overview said "No error pattern yet: nothing to compare the counters with" beside its
/// storm. Now its "what moved" answer is on the overview and on its own page, its own counter
/// first, charted around its onset (no error bars), and `/api/v1/incidents/{id}` carries it.
#[test]
fn a_counter_only_incident_shows_what_moved_with_it_on_the_overview_and_its_page() {
    let now = now_ms();
    let onset = now - 5 * 60_000;
    // A port no code could guess: it comes from the clock.
    let port = 20_000 + (now % 10_000) as u16;
    let store = Arc::new(FixtureStore::default());
    store.set_counters(time_wait_storm(now, port, onset));
    let incident = counter_only_incident(&store, now, port, onset);
    assert!(incident.patterns.is_empty());
    let addr = serve(store.views(), None);

    let detail: serde_json::Value =
        reqwest::blocking::get(format!("http://{addr}/api/v1/incidents/{}", incident.id))
            .unwrap()
            .json()
            .unwrap();
    assert_eq!(detail["id"], json!(incident.id));
    assert_eq!(detail["moved"]["incident_id"], json!(incident.id));
    assert_eq!(detail["moved"]["verdict"], json!("moved"), "{detail:#}");
    assert_eq!(
        detail["moved"]["moved"][0]["own"],
        json!(true),
        "{detail:#}"
    );

    let browser = Browser::start();
    browser.open(&format!("http://{addr}/"));
    assert!(
        browser.wait_for(
            "return !!document.querySelector('#moved .moved-incident') \
             && !!document.querySelector('#moved .evidence')",
            Duration::from_secs(10)
        ),
        "{}",
        browser.text()
    );
    let panel = browser.eval("return document.getElementById('moved').innerText");
    let panel = panel.as_str().unwrap_or_default();
    assert!(!panel.contains("nothing to compare"), "{panel}");
    let head =
        browser.eval("return document.querySelector('#moved .moved-incident').dataset.incident");
    assert_eq!(head, json!(incident.id));
    let first = browser.eval(
        "const i = document.querySelector('#moved .moved-item'); \
         return [i.querySelector('.evidence').textContent, !!i.querySelector('.moved-own')]",
    );
    let evidence = first[0].as_str().unwrap_or_default().to_owned();
    assert!(
        evidence.starts_with(&format!(
            "TIME-WAIT →:{port} rose 12 → 4,310 (+4,298) from "
        )) && evidence.contains("the incident's onset"),
        "{evidence}"
    );
    assert_eq!(
        first[1],
        json!(true),
        "the incident's own counter is tagged"
    );
    let chart = browser.eval(
        "const c = document.querySelector('#moved svg.moved-chart'); \
         return [c.querySelectorAll('path.counter').length, c.querySelectorAll('rect.occ').length, \
                 c.querySelector('text.onset-label').textContent.startsWith('onset ')]",
    );
    assert_eq!(chart, json!([1, 0, true]));
    browser.screenshot("overview-moved-counter-only");

    // Its card links to its page, which shows the card open and the same answer.
    let href = browser.eval(&format!(
        "return document.querySelector('#incident-{} a[href^=\"/incident?\"]').getAttribute('href')",
        incident.id
    ));
    assert_eq!(href, json!(format!("/incident?id={}", incident.id)));
    browser.open(&format!("http://{addr}/incident?id={}", incident.id));
    assert!(
        browser.wait_for(
            &format!(
                "const e = document.querySelector('#moved .evidence'); \
                 return !!e && e.textContent === {} \
                 && document.querySelector('#incident details.incident').open",
                json!(evidence)
            ),
            Duration::from_secs(10)
        ),
        "{}",
        browser.text()
    );
    browser.screenshot("incident-page-counter-only");
}

/// A watched process that exited keeps its past on the fds chart: it was labelled
/// `<name> [0] fds` (the API's pid is 0 when the target cannot be read, no process id).
#[test]
fn an_exited_process_keeps_its_past_under_its_name_not_pid_zero() {
    let now = now_ms();
    let store = Arc::new(FixtureStore::default());
    let mut snap = counters(now, 60);
    let gone = snap
        .processes
        .iter_mut()
        .find(|p| p.current.is_none())
        .expect("the fixture's process that cannot be read");
    gone.name = "stock".into();
    gone.error = Some("no process named stock".into());
    // Read until 20 samples ago, then gone.
    let n = gone.fds.points.len();
    gone.fds.points = (0..n).map(|i| (i + 20 < n).then_some(40.0)).collect();
    gone.threads.points = (0..n).map(|i| (i + 20 < n).then_some(9.0)).collect();
    store.set_counters(snap);
    let addr = serve(store.views(), None);
    let browser = Browser::start();
    browser.open(&format!("http://{addr}/counters"));
    let legend = browser.eval(
        "return [...document.querySelectorAll('.chartbox')] \
         .filter((c) => c.querySelector('h3').textContent === 'File descriptors and threads') \
         .flatMap((c) => [...c.querySelectorAll('.legend li')].map((li) => li.firstChild.textContent))",
    );
    let legend: Vec<String> = serde_json::from_value(legend).unwrap();
    assert!(
        legend.contains(&"stock fds (not read now)".to_owned())
            && legend.contains(&"stock threads (not read now)".to_owned()),
        "{legend:?}"
    );
    assert!(legend.iter().all(|l| !l.contains("[0]")), "{legend:?}");
    // A process read now keeps its pid.
    assert!(legend.iter().any(|l| l.ends_with("] fds")), "{legend:?}");
}
