//! Fuzzing the line parsers with proptest: no input makes them panic, and what they return
//! keeps the contract (the cluster text is the error or the message; a record from a file
//! keeps its origin).

use std::time::{Duration, Instant};

use faultline_ingest::parse::{parse_line, Multiline};
use faultline_ingest::Origin;
use proptest::prelude::*;

/// Real line shapes, so that mutations reach deep into each format's parser.
const SEEDS: &[&str] = &[
    r#"{"level":"error","ts":1710145337.69,"msg":"x","error":"y","trace_id":"8798a302751390bcb2b359b9161260fa","status":502}"#,
    r#"time="2024-03-11T08:22:17Z" level=warning msg="a b" err="c: \"d\"" user_id=1"#,
    "time=2024-03-11T08:22:28.325Z level=ERROR msg=\"x\" error=\"y\" stack=\"goroutine 1 [running]:\\nmain()\"",
    r#"[GIN] 2024/03/11 - 08:22:18 | 503 |   47.977857ms |       127.0.0.1 | GET      "/api/v1/products"\nError #01: i/o timeout"#,
    "[GIN-debug] [ERROR] listen: accept tcp [::1]:6060: use of closed network connection",
    "[billing] 2024/03/11 08:22:24.931644 worker.go:12: ERROR: x: http: request body too large",
    r"2024/03/11 08:24:53.094446 http: panic serving 127.0.0.1:1: boom\ngoroutine 1 [running]:\n\tx.go:1",
    r#"10.0.0.1 - - [11/Mar/2024:01:22:17 -0700] "GET /a HTTP/1.1" 502 157 "-" "curl/8""#,
    r#"2024/01/02 15:04:05 [error] 1#0: *5 connect() failed, client: 1.2.3.4, request: "GET / HTTP/1.1""#,
    "panic: runtime error: index out of range [3] with length 2\n\ngoroutine 6 [running]:",
    "Error #01: Put \"https://[::1]:9434/\": net/http: TLS handshake timeout",
    "Traceback (most recent call last):\n  File \"a.py\"\nValueError: x",
    "Nov  5 20:41:03 node-7 user-svc[1234]: dial tcp 10.0.0.9:5432: connect: connection refused",
    r#"2026-11-25T20:41:03.123456+00:00 node-7 orders[7]: {"level":"error","msg":"x","error":"EOF"}"#,
    r#"<11>1 2026-11-25T20:41:03Z node-7 billing 99 - [id k="a\"]b"] x: refused"#,
    r#"E1125 20:41:03.123456    1234 reflector.go:147] "Failed to watch" err="Get \"https://h/\": EOF""#,
];

fn check(line: &str) {
    let origin = Origin::File {
        path: "f".into(),
        offset: 3,
    };
    let r = parse_line(line, origin.clone());
    assert_eq!(r.origin, origin);
    assert_eq!(r.cluster_text(), r.error.as_deref().unwrap_or(&r.message));
    let _ = r.is_errorish();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(line in "\\PC{0,300}") {
        check(&line);
    }

    #[test]
    fn mutated_real_lines_never_panic(
        seed in 0..SEEDS.len(),
        cut in 0usize..400,
        insert_at in 0usize..400,
        noise in "[\\\\\"{}\\[\\]=:|#\\n\\t é0-9a-f]{0,12}",
    ) {
        let base = SEEDS[seed];
        let mut line: String = base.chars().take(cut).collect();
        let at = line.char_indices().map(|(i, _)| i).nth(insert_at % (line.chars().count() + 1)).unwrap_or(line.len());
        line.insert_str(at, &noise);
        check(&line);
        check(&base[..base.char_indices().map(|(i, _)| i).nth(cut % base.chars().count()).unwrap_or(0)]);
    }

    #[test]
    fn multiline_offsets_cover_every_line_once(lines in prop::collection::vec(
        prop::sample::select(vec![
            "plain", "", "\tat x", "goroutine 1 [running]:", "panic: boom", "main.main()",
            "Traceback (most recent call last):", "  File \"a\"", "ValueError: v",
            "[GIN] 2024/01/02 - 15:04:05 | 500 | 1ms | ip | GET \"/\"", "Error #01: e", "Caused by: c",
        ]), 0..40)
    ) {
        let now = Instant::now();
        let mut m = Multiline::new(64);
        let mut records = Vec::new();
        let mut offset = 0u64;
        for line in &lines {
            let end = offset + line.len() as u64 + 1;
            records.extend(m.push(line, offset, end, false, now));
            offset = end;
        }
        records.extend(m.flush_stale(now + Duration::from_secs(2), Duration::from_secs(1)));
        // Records are in order, do not overlap, and every non-blank line is in one of them.
        let mut last_end = 0;
        for r in &records {
            prop_assert!(r.start_offset >= last_end && r.end_offset > r.start_offset);
            prop_assert!(r.text.len() <= 64);
            last_end = r.end_offset;
        }
        let joined: u32 = records.iter().map(|r| r.lines).sum();
        let non_blank = lines.iter().filter(|l| !l.is_empty()).count() as u32;
        prop_assert!(joined >= non_blank && joined as usize <= lines.len());
    }
}
