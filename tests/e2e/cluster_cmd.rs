//! `faultline cluster`: one id per input line, same order, whatever the input holds.

use std::process::Command;

fn cluster(input: &[u8], args: &[&str]) -> (Vec<String>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let inp = dir.path().join("in.log");
    let out = dir.path().join("out.txt");
    std::fs::write(&inp, input).expect("write input");
    let result = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("cluster")
        .arg("--input")
        .arg(&inp)
        .arg("--output")
        .arg(&out)
        .args(args)
        .output()
        .expect("run faultline");
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    assert!(
        result.status.success(),
        "faultline cluster failed: {stderr}"
    );
    let ids = std::fs::read_to_string(&out)
        .expect("output written")
        .lines()
        .map(str::to_string)
        .collect();
    (ids, stderr)
}

#[test]
fn one_id_per_line_for_hostile_input() {
    let mut input = Vec::new();
    input.extend_from_slice(b"read tcp 10.0.0.1:5->10.0.0.2:80: read: connection reset by peer\n");
    input.extend_from_slice(b"\n");
    input.extend_from_slice(&[0xff, 0xfe, 0x00, 0x80, b'\n']);
    input.extend(std::iter::repeat_n(b'a', 1 << 20));
    input.push(b'\n');
    input.extend_from_slice(b"read tcp 10.9.9.9:7->10.0.0.3:81: read: connection reset by peer\n");
    input.extend_from_slice(b"no newline at the end");
    let (ids, stderr) = cluster(&input, &["--level", "template"]);
    assert_eq!(ids.len(), 6, "{ids:?}");
    assert_eq!(ids[0], ids[4], "same shape, same template");
    assert_ne!(ids[0], ids[3]);
    assert!(ids.iter().all(|id| id.len() == 16), "{ids:?}");
    assert!(stderr.contains("6 lines"), "summary: {stderr}");
}

#[test]
fn logger_style_and_wrappers_do_not_split_a_cluster() {
    let lines = [
        r#"time="2024-03-11T08:22:21Z" level=error msg="invalid input" err=EOF method=GET"#,
        r#"{"level":"error","ts":1710145337.69,"msg":"request failed","error":"GetUser(42): Get \"http://u:80/users/42\": EOF"}"#,
        "2024/03/11 08:22:22 http: TLS handshake error from 127.0.0.1:36788: EOF",
        r#"{"level":"error","ts":1710145337.69,"msg":"request failed","error":"read body: unexpected EOF"}"#,
        "2024/03/11 08:22:23 worker.go:100: ERROR: cache: read tcp 127.0.0.1:42412->127.0.0.1:6379: i/o timeout",
    ];
    let (ids, _) = cluster(lines.join("\n").as_bytes(), &["--parse"]);
    assert_eq!(ids.len(), 5);
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[0], ids[2]);
    assert_ne!(ids[0], ids[3], "EOF and unexpected EOF are different kinds");
    assert_ne!(ids[0], ids[4]);
}

/// Issue #15: hand-rolled JSON loggers write a quote inside a value unescaped
/// (`"error":"Get "http://…": EOF"`). Such a line is salvaged: its error joins the pattern of
/// the same error written correctly, and broken lines of different errors stay apart (they
/// were once one pattern of the whole line, `{\"<*>\"}`).
#[test]
fn json_lines_broken_by_an_unescaped_quote_keep_their_error() {
    let lines = [
        r#"{"level":"error","msg":"request failed","service":"user-svc","error":"Get \"http://u:80/users/42\": EOF"}"#,
        r#"{"level":"error","msg":"request failed","service":"user-svc","error":"Get "http://u:80/users/43": EOF"}"#,
        r#"{"level":"error","msg":"request failed","service":"order-svc","error":"Post "http://o:80/orders/7": context deadline exceeded"}"#,
        r#"{"level":"error","msg":"request failed","service":"order-svc","error":"Post \"http://o:80/orders/8\": context deadline exceeded"}"#,
        r#"{"level":"error","msg":"query failed","service":"order-svc","error":"pq: relation "orders" does not exist"}"#,
    ];
    let (ids, _) = cluster(lines.join("\n").as_bytes(), &["--parse"]);
    assert_eq!(ids.len(), 5);
    assert_eq!(ids[0], ids[1], "a broken line joins its error's pattern");
    assert_eq!(ids[2], ids[3], "a broken line joins its error's pattern");
    assert_ne!(
        ids[1], ids[2],
        "broken lines of different errors stay apart"
    );
    assert_ne!(
        ids[2], ids[4],
        "broken lines of different errors stay apart"
    );
    assert_ne!(
        ids[1], ids[4],
        "broken lines of different errors stay apart"
    );
}

#[test]
fn a_missing_input_is_a_clear_error() {
    let result = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "cluster",
            "--input",
            "/nonexistent/in",
            "--output",
            "/tmp/never",
        ])
        .output()
        .expect("run faultline");
    assert_eq!(result.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&result.stderr).contains("cannot open the input"));
}

#[test]
fn every_bound_that_applies_is_said_and_more_than_5000_roots_are_clustered() {
    // 6,000 kinds of error with nothing in common, then two wordings of one more kind: the
    // pair is one cluster although it comes after the first 5,000 roots (the bound batch
    // mode had before), and no bound applies.
    let mut input = String::new();
    for i in 0..6_000u32 {
        let word: String = format!("{i:x}")
            .chars()
            .map(|c| (b'g' + c as u8 % 16) as char)
            .collect();
        input.push_str(&format!("failure: zz{word} kind{word}\n"));
    }
    input.push_str("mount: disk quota exceeded for volume\n");
    input.push_str("write: disk quota exceeded for volume now\n");
    let (ids, stderr) = cluster(input.as_bytes(), &[]);
    assert_eq!(ids.len(), 6_002);
    assert_eq!(ids[6_000], ids[6_001], "{stderr}");
    assert!(!stderr.contains("bound applied"), "{stderr}");

    // A line past 64 KiB and more shapes than --max-shapes allows: both said.
    let mut input = Vec::new();
    input.extend(std::iter::repeat_n(b'a', 100_000));
    input.extend_from_slice(b"\nalpha failed\nbeta failed\ngamma failed\nalpha failed\n");
    let (ids, stderr) = cluster(&input, &["--max-shapes", "2"]);
    assert_eq!(ids.len(), 5);
    assert_eq!(ids[3], "ffffffffffffffff", "past the shape bound: other");
    assert_eq!(ids[1], ids[4]);
    assert!(
        stderr.contains("bound applied: 1 lines longer than 65536 bytes"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bound applied: 2 lines of new shapes past the first 2 distinct shapes"),
        "{stderr}"
    );
}
