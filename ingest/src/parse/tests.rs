//! Whole-line tests: one real line of each logger style in, the fields a user would read out.

use super::*;

fn parse(line: &str) -> LogRecord {
    parse_line(
        line,
        Origin::File {
            path: "/var/log/app.log".into(),
            offset: 0,
        },
    )
}

#[test]
fn zap_json_error_field_is_the_cluster_text() {
    let r = parse(
        r#"{"level":"error","ts":"2024-03-11T08:22:28.588Z","logger":"http","caller":"internal/app/catalog.go:94","msg":"failed to start","error":"failed to start server: listen tcp 127.0.3.251:8080: bind: address already in use","trace_id":"72444ab7ba080b68af35a2652233f056","span_id":"614a685e08135c4f","service":"catalog"}"#,
    );
    assert_eq!(r.level, Level::Error);
    assert_eq!(r.message, "failed to start");
    assert_eq!(
        r.cluster_text(),
        "failed to start server: listen tcp 127.0.3.251:8080: bind: address already in use"
    );
    assert_eq!(r.service.as_deref(), Some("catalog"));
    assert_eq!(r.span_id.unwrap().to_string(), "614a685e08135c4f");
    assert_eq!(r.time_unix_nanos, Some(1_710_145_348_588_000_000));
    assert!(r.is_errorish());
}

#[test]
fn zap_std_log_http_errors_are_errors() {
    let r = parse(
        r#"{"level":"info","ts":1710145343.0157473,"logger":"http","caller":"http/server.go:3215","msg":"http: TLS handshake error from 127.0.0.1:34802: EOF"}"#,
    );
    assert_eq!(r.level, Level::Error);
    assert_eq!(
        r.cluster_text(),
        "http: TLS handshake error from 127.0.0.1:34802: EOF"
    );
}

#[test]
fn logrus_text_err_key() {
    let r = parse(
        r#"time="2024-03-11T08:22:21Z" level=error msg="invalid input" err=EOF latency=24.062095124s method=DELETE path=/api/carts/63d2 trace_id=d1bd68819358f8056d23af1bd813b661"#,
    );
    assert_eq!(r.cluster_text(), "EOF");
    assert_eq!(r.message, "invalid input");
    assert_eq!(
        r.trace_id.unwrap().to_string(),
        "d1bd68819358f8056d23af1bd813b661"
    );
    assert_eq!(r.attributes.len(), 3);
}

#[test]
fn slog_panic_field_and_stack() {
    let r = parse(
        r#"time=2024-03-11T08:24:15.017Z level=ERROR source=/app/middleware/recover.go:63 msg="recovered from panic" panic="runtime error: invalid memory address or nil pointer dereference" status=500 stack="goroutine 11980 [running]:\nruntime/debug.Stack()""#,
    );
    assert_eq!(
        r.cluster_text(),
        "runtime error: invalid memory address or nil pointer dereference"
    );
    assert_eq!(r.http_status, Some(500));
    assert!(r.level >= Level::Error);
}

#[test]
fn stdlib_log_message_is_everything_after_the_time() {
    let r = parse(
        "2024/03/11 08:22:20.465632 query failed: lookup ip-10-150-63-108.ec2.internal on 127.0.0.53:53: no such host",
    );
    assert_eq!(
        r.cluster_text(),
        "query failed: lookup ip-10-150-63-108.ec2.internal on 127.0.0.53:53: no such host"
    );
    assert_eq!(r.time_unix_nanos, Some(1_710_145_340_465_632_000));
    assert!(
        r.is_errorish(),
        "Go error vocabulary makes a level-less line an error"
    );
}

#[test]
fn stdlib_shortfile_and_level_marker() {
    let r = parse("2024/03/11 08:22:23 worker.go:100: ERROR: cache lookup failed: i/o timeout");
    assert_eq!(r.level, Level::Error);
    assert_eq!(r.message, "cache lookup failed: i/o timeout");
}

#[test]
fn stdlib_http_panic_with_escaped_stack() {
    let r = parse(
        r"2024/03/11 08:24:53.094446 http: panic serving 127.44.56.148:46669: runtime error: invalid memory address or nil pointer dereference\ngoroutine 11960 [running]:\nnet/http.(*conn).serve.func1()\n\tnet/http/server.go:1850 +0xbf",
    );
    assert_eq!(r.level, Level::Panic);
    assert_eq!(
        r.cluster_text(),
        "runtime error: invalid memory address or nil pointer dereference"
    );
    assert!(r
        .message
        .starts_with("http: panic serving 127.44.56.148:46669"));
    let stack = &r.attributes.iter().find(|(k, _)| k == "stack").unwrap().1;
    assert!(stack.starts_with("goroutine 11960 [running]:"));
}

#[test]
fn plain_panic_and_cli_error() {
    let r = parse(
        r"panic: runtime error: index out of range [3] with length 2\n\ngoroutine 6 [running]:\nmain.main()",
    );
    assert_eq!(r.level, Level::Panic);
    assert_eq!(
        r.cluster_text(),
        "runtime error: index out of range [3] with length 2"
    );
    let r = parse("error: listen tcp 127.29.155.27:9786: bind: address already in use");
    assert_eq!(r.level, Level::Error);
    assert_eq!(
        r.cluster_text(),
        "listen tcp 127.29.155.27:9786: bind: address already in use"
    );
    let r = parse("everything is fine");
    assert_eq!(r.level, Level::Unknown);
    assert!(!r.is_errorish());
}

#[test]
fn gin_request_line_and_lone_error_line() {
    let r = parse(
        r#"[GIN] 2024/03/11 - 08:22:24 | 500 |     264.538µs |     192.0.2.135 | GET      "/checkout"\nError #01: query inventory_items: EOF"#,
    );
    assert_eq!(r.http_status, Some(500));
    assert_eq!(r.cluster_text(), "query inventory_items: EOF");
    assert!(r.is_error_event());
    // Without an error line it is a failed request, not an error event.
    let r = parse(
        r#"[GIN] 2026/12/05 - 04:27:03 | 502 |    1.227393ms |       127.0.0.1 | GET      "/internal/checkout/13306""#,
    );
    assert_eq!(r.request_failed(), Some(true));
    assert!(r.is_errorish() && !r.is_error_event());
    let r = parse(
        r#"Error #01: Put "https://[::1]:9434/products/_search": net/http: TLS handshake timeout"#,
    );
    assert_eq!(
        r.cluster_text(),
        r#"Put "https://[::1]:9434/products/_search": net/http: TLS handshake timeout"#
    );
    assert!(r.is_errorish());
}

#[test]
fn joined_multiline_records_parse_from_their_first_line() {
    let r = parse("{\"level\":\"error\",\"msg\":\"boom\"}\n\tat com.example.App.main(App.java:10)");
    assert_eq!(r.level, Level::Error);
    assert_eq!(r.message, "boom");
    assert!(r
        .attributes
        .iter()
        .any(|(k, v)| k == "stack" && v.contains("App.java")));
    let r = parse("[GIN] 2024/01/02 - 15:04:05 | 502 | 1ms | 127.0.0.1 | GET \"/a\"\nError #01: dial tcp: connection refused");
    assert_eq!(r.cluster_text(), "dial tcp: connection refused");
    let r =
        parse("Traceback (most recent call last):\n  File \"a.py\", line 1\nValueError: bad value");
    assert_eq!(r.message, "ValueError: bad value");
}

#[test]
fn trace_id_in_plain_text_and_traceparent_field() {
    let r = parse("2024/03/11 08:22:20 failed charge trace_id=4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(
        r.trace_id.unwrap().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    let r = parse(
        r#"{"msg":"x","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}"#,
    );
    assert_eq!(r.span_id.unwrap().to_string(), "00f067aa0ba902b7");
}

#[test]
fn naive_times_take_the_configured_zone() {
    let opts = ParseOptions {
        naive_utc_offset_secs: 3600,
    };
    let r = parse_line_with("2024/03/11 09:22:20 x", Origin::OtlpLog, &opts, 7);
    assert_eq!(r.time_unix_nanos, Some(1_710_145_340_000_000_000));
    assert_eq!(r.observed_unix_nanos, 7);
}

#[test]
fn empty_and_odd_lines() {
    assert_eq!(parse("").message, "");
    assert_eq!(parse("{").message, "{");
    assert_eq!(parse("   \r\n").message, "");
    assert_eq!(parse("a=1").message, "a=1");
}

#[test]
fn syslog_and_klog_headers_give_service_time_and_level() {
    // A Go service under systemd, its zap JSON line filed by rsyslog.
    let r = parse(
        r#"2026-11-25T20:41:03.123456+00:00 node-7 user-svc[1234]: {"level":"error","ts":1795639263.5,"msg":"upstream failed","error":"read tcp 10.0.0.7:4312->10.0.0.9:8080: read: connection reset by peer"}"#,
    );
    assert_eq!(r.service.as_deref(), Some("user-svc"));
    assert_eq!(r.level, Level::Error);
    assert_eq!(
        r.cluster_text(),
        "read tcp 10.0.0.7:4312->10.0.0.9:8080: read: connection reset by peer"
    );
    assert_eq!(r.time_unix_nanos, Some(1_795_639_263_500_000_000));
    assert!(r
        .attributes
        .contains(&("host".to_string(), "node-7".to_string())));

    // The classic form, with the service's free text: its own words make it an error.
    let r = parse(
        "Nov 25 20:41:03 node-7 orders[88]: dial tcp 10.0.0.9:5432: connect: connection refused",
    );
    assert_eq!(r.service.as_deref(), Some("orders"));
    assert_eq!(r.level, Level::Error);
    assert_eq!(
        r.message,
        "dial tcp 10.0.0.9:5432: connect: connection refused"
    );
    assert!(r.time_unix_nanos.is_some());

    // klog, structured.
    let r = parse(
        r#"E1125 20:41:03.123456    1234 reflector.go:147] "Failed to watch" err="Get \"https://10.96.0.1:443/api\": EOF""#,
    );
    assert_eq!(r.level, Level::Error);
    assert!(r.time_unix_nanos.is_some());
    assert!(r.cluster_text().contains("EOF"), "{r:?}");
}

#[test]
fn times_of_1970_and_of_next_year_are_not_believed() {
    let observed = 1_764_900_000_000_000_000; // 2025-12-05
    let opts = ParseOptions::default();
    let at = |line: &str| parse_line_with(line, Origin::OtlpLog, &opts, observed).time_unix_nanos;
    assert_eq!(at("1970-01-01T00:00:01Z level=error msg=boom"), None);
    assert_eq!(at(r#"{"ts":0.5,"level":"error","msg":"boom"}"#), None);
    assert_eq!(at("2026-12-05T00:00:00Z level=error msg=boom"), None);
    assert_eq!(
        at("2025-12-05T00:00:00Z level=error msg=boom"),
        Some(1_764_892_800_000_000_000)
    );
}

/// A Go service's recovered panic as its file holds it: the record, then the raw
/// `debug.Stack()` lines (function lines at column 0, tab-indented file lines).
const RAW_STACK: &str = "goroutine 26385 [running]:
runtime/debug.Stack()
\truntime/debug/stack.go:24 +0x65
main.(*service).recovery.func1.1()
\t_/srv/shop/service.go:186 +0xb1
panic({0x829760, 0xc0004c2540})
\truntime/panic.go:884 +0x212
main.(*service).priceOf(0xc000414ed0?, {0xc0004e8a50?, 0x5?})
\t_/srv/shop/service.go:245 +0xf4
github.com/gin-gonic/gin.(*Context).Next(...)
\tgithub.com/gin-gonic/gin/context.go:173
created by net/http.(*Server).Serve
\tnet/http/server.go:3089 +0x5ed";

/// Joins `lines` as the tailer does and parses each record.
fn join_and_parse(text: &str) -> Vec<LogRecord> {
    let now = std::time::Instant::now();
    let mut joiner = Multiline::new(1 << 16);
    let mut joined = Vec::new();
    let mut offset = 0u64;
    for line in text.lines() {
        let end = offset + line.len() as u64 + 1;
        joined.extend(joiner.push(line, offset, end, false, now));
        offset = end;
    }
    joined.extend(joiner.flush());
    joined.iter().map(|r| parse(&r.text)).collect()
}

#[test]
fn a_record_and_its_raw_go_stack_are_one_event_with_its_frame() {
    let json = r#"{"time":"2026-12-05T04:30:20.786Z","level":"ERROR","msg":"panic recovered","service":"pricing","err":"runtime error: index out of range [2] with length 0","trace_id":"127a78e2dee577f1b353c20e60d74235","span_id":"8e8e70cfe1db1ef8"}"#;
    let stdlog = "2026/12/05 04:30:20.786678 service.go:186: panic recovered: runtime error: index out of range [2] with length 0 trace_id=127a78e2dee577f1b353c20e60d74235 span_id=8e8e70cfe1db1ef8";
    for head in [json, stdlog] {
        let next = "2026/12/05 04:30:21.000000 service.go:90: listening";
        let records = join_and_parse(&format!("{head}\n{RAW_STACK}\n{next}\n"));
        assert_eq!(records.len(), 2, "{head}: {records:?}");
        let r = &records[0];
        assert_eq!(
            r.cluster_text(),
            "runtime error: index out of range [2] with length 0",
            "{head}"
        );
        assert_eq!(
            r.trace_id.map(|t| t.to_string()).as_deref(),
            Some("127a78e2dee577f1b353c20e60d74235")
        );
        let attribute = |key: &str| {
            r.attributes
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        assert!(
            attribute(STACK_ATTRIBUTE).is_some_and(
                |s| s.starts_with("goroutine 26385") && s.ends_with("server.go:3089 +0x5ed")
            ),
            "{head}: {r:?}"
        );
        assert_eq!(
            attribute(FRAME_ATTRIBUTE),
            Some("main.(*service).priceOf service.go:245"),
            "{head}"
        );
        assert_eq!(records[1].message, "listening");
    }
}
