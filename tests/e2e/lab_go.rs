//! The fault lab with real Go/Gin services (issue #11), short form: `scripts/lab/run.py` builds
//! `lab/go` with Debian's Go and Gin, starts this binary with a config of the lab's log files,
//! pprof pages and listening ports, starts a chain of three Go services (names, ports, routes
//! and logger styles drawn from a seed that changes every run) with steady traffic, waits a short baseline,
//! injects a fault and polls the API. The driver reports raw measurements (its own count of
//! failed requests, when each pattern was first listed, the trace pages); the assertions are
//! here.
//!
//! The lab runs once per test binary (two faults, the first healed and brought back once while
//! its incident recovers: about a minute and a half) and the tests share its results. Tests marked `#[ignore]` state what issue #11 still has to fix; the stream fixing it
//! removes the mark when its change lands.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support;

/// Faults of the short form: a silent callee (the caller's EOF is the only error) and a
/// panicking one (a JSON record followed by its raw Go stack).
const FAULTS: [&str; 2] = ["eof", "panic"];
/// The driver's whole run: two faults of ~25 s each, ~25 s more for the first to heal and
/// come back, plus a Go build (cached after the first).
const LAB_DEADLINE: Duration = Duration::from_secs(480);
/// The bound: the pattern is listed within 10 s of the first failed request.
const ANSWER_SECS: f64 = 10.0;

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Runs the lab once and returns one result object per fault, in `FAULTS` order.
fn lab() -> &'static Vec<Value> {
    static RESULTS: OnceLock<Vec<Value>> = OnceLock::new();
    RESULTS.get_or_init(|| {
        let out_dir = tempfile::tempdir().expect("tempdir");
        let json_out = out_dir.path().join("lab.json");
        // A new chain every run, as the issue asks; every result carries its seed, and
        // `scripts/lab/run.py --seed N` draws the same chain again.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos() % 1_000_000);
        eprintln!("lab seed {seed}");
        let mut command = Command::new("python3");
        command
            .arg(repo().join("scripts/lab/run.py"))
            .args(["--binary", support::binary()])
            .args([
                "--baseline",
                "5",
                "--observe",
                "15",
                // The first fault healed, and injected again once its incident says it
                // recovers: a fault that comes back must be answered as the first was.
                "--recur",
                "recovering",
                "--recur-only",
                FAULTS[0],
                "--seed",
                &seed.to_string(),
            ])
            .arg("--json-out")
            .arg(&json_out)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for fault in FAULTS {
            command.args(["--fault", fault]);
        }
        let child = command
            .spawn()
            .expect("run scripts/lab/run.py (python3 is installed by scripts/test.sh)");
        let output = wait(child, LAB_DEADLINE);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "the lab failed ({}); scripts/test.sh installs golang-go and \
             golang-github-gin-gonic-gin-dev.\nstdout:\n{stdout}\nstderr:\n{stderr}",
            output.status
        );
        let text = std::fs::read_to_string(&json_out)
            .unwrap_or_else(|e| panic!("lab results {}: {e}\n{stderr}", json_out.display()));
        let results: Vec<Value> = serde_json::from_str(&text).expect("lab results are JSON");
        assert_eq!(results.len(), FAULTS.len(), "{stdout}\n{stderr}");
        eprintln!("{stdout}");
        results
    })
}

fn wait(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let started = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if started.elapsed() > limit {
            // The driver stops its processes on SIGTERM.
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            std::thread::sleep(Duration::from_secs(10));
            let _ = child.kill();
            let output = child.wait_with_output().expect("collect output");
            panic!(
                "the lab did not finish within {limit:?}:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    child.wait_with_output().expect("collect output")
}

fn failed_requests(result: &Value) -> u64 {
    result["requests"]["after_failed"].as_u64().unwrap_or(0)
}

#[test]
fn lab_go_faults_become_a_pattern_within_ten_seconds_of_onset() {
    for result in lab() {
        let fault = result["fault"].as_str().unwrap_or("?");
        assert_eq!(
            result["requests"]["baseline_failed"], 0,
            "{fault}: requests failed before the fault: {result}"
        );
        assert!(
            failed_requests(result) > 0,
            "{fault}: the fault failed no request: {result}"
        );
        assert!(
            result["dropped_spans"]
                .as_array()
                .is_some_and(|d| d.is_empty()),
            "{fault}: spans were dropped: {result}"
        );
        let pattern = &result["fault_pattern"];
        assert!(
            pattern.is_object(),
            "{fault}: no pattern carries the fault's Go error: {result}"
        );
        let seen = result["fault_pattern_seen_secs"]
            .as_f64()
            .unwrap_or_else(|| panic!("{fault}: pattern never listed while polling: {result}"));
        assert!(
            seen <= ANSWER_SECS,
            "{fault}: pattern listed {seen} s after onset: {result}"
        );
    }
}

/// One count per failure: the fault's pattern counts the failed requests (within 1%), and so
/// do all the new patterns carrying the fault's error together. A caller logging with the
/// standard `log` package (Gin style) used to put its line (with its `upstream=… trace_id=…`
/// tail) and its CLIENT span in two patterns, one count each per failure (the lab's run 3:
/// eof 609 + 609 for 609 failed requests).
#[test]
fn lab_go_pattern_counts_equal_failed_requests() {
    for result in lab() {
        let fault = result["fault"].as_str().unwrap_or("?");
        let failed = failed_requests(result) as f64;
        let count = result["fault_pattern"]["total_count"]
            .as_f64()
            .unwrap_or_else(|| panic!("{fault}: no fault pattern: {result}"));
        assert!(
            failed > 0.0 && (count - failed).abs() <= failed * 0.01,
            "{fault}: pattern counts {count}, the driver counted {failed} failed requests: {}",
            result["fault_pattern"]
        );
        let all = result["fault_patterns_total"].as_f64().unwrap_or(0.0);
        assert!(
            (all - failed).abs() <= failed * 0.01,
            "{fault}: the patterns carrying the fault's error count {all} together for {failed} \
             failed requests: {}",
            result["emerging_patterns"]
        );
    }
}

/// No noise pattern outranks the fault: the top emerging pattern at the end of the
/// observation carries the fault's own error. The 5xx echoes of the failure up the chain (the
/// message-less error spans, Gin's request lines, the callers' `unexpected status 502`) once
/// made patterns of their own with one count per failure each and ranked beside or above it.
#[test]
fn lab_go_the_fault_pattern_ranks_first() {
    for result in lab() {
        let fault = result["fault"].as_str().unwrap_or("?");
        let text = match fault {
            "eof" => "EOF",
            "panic" => "index out of range",
            other => panic!("no error text known for {other}"),
        };
        let top = result["top_pattern"]["template"]
            .as_str()
            .unwrap_or_default();
        assert!(
            top.contains(text),
            "{fault}: the top pattern is {top:?}, not the fault's; emerging: {}",
            result["emerging_patterns"]
        );
    }
}

/// A recovered panic's record and its raw `debug.Stack()` lines are one event: the panic's
/// pattern shows the stack, and its top application frame is the function that panicked
/// (the lab's `priceOf`), not the recovery handler that printed the stack.
#[test]
fn lab_go_panic_pattern_shows_the_frame_that_panicked() {
    let panic = lab()
        .iter()
        .find(|r| r["fault"] == "panic")
        .expect("the panic fault ran");
    let frame = panic["fault_pattern"]["stack_frame"]
        .as_str()
        .unwrap_or_default();
    assert!(
        frame.contains("priceOf") && frame.contains("service.go:"),
        "top frame {frame:?}: {}",
        panic["fault_pattern"]
    );
}

/// For a callee that drops connections silently (its SERVER span has no error; the caller's
/// CLIENT span has `EOF`) and for a panicking one (a caller logs the unexpected status), the
/// trace page's culprit is the faulty service, not the caller that saw the error.
#[test]
fn lab_go_trace_page_says_the_error_starts_in_the_faulty_service() {
    for result in lab() {
        let fault = result["fault"].as_str().unwrap_or("?");
        let origins = result["trace_origins"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(!origins.is_empty(), "{fault}: no trace page read: {result}");
        for origin in &origins {
            // The trace page's culprit when it has one, else the service of its error origin.
            let says = if origin["culprit"].is_string() {
                &origin["culprit"]
            } else {
                &origin["service"]
            };
            assert_eq!(
                says, &result["expected_culprit"],
                "{fault}: trace page says the error starts in {origin}"
            );
        }
    }
}

/// The top incident leads with the fault's hint within 10 s of onset (the first failed
/// request), and names the faulty service: judged at the first poll that shows it, not at the
/// end of the observation.
#[test]
fn lab_go_the_faults_incident_leads_with_its_hint_within_ten_seconds() {
    for result in lab() {
        let fault = result["fault"].as_str().unwrap_or("?");
        let verdict = &result["verdict"];
        assert_eq!(
            verdict["culprit_ok"], true,
            "{fault}: culprit {}: {}",
            verdict["culprit_named"], result["top_incident"]
        );
        let secs = result["hint_first_secs"].as_f64().unwrap_or_else(|| {
            panic!(
                "{fault}: the top incident never led with {}: {}",
                result["expected_hint"], result["top_incident"]
            )
        });
        assert!(
            secs <= ANSWER_SECS,
            "{fault}: {} led the top incident {secs} s after onset: {}",
            result["expected_hint"],
            result["top_incident"]
        );
    }
}

/// A fault that comes back while its incident recovers (healed, then injected again) is
/// answered as the first was: within 10 s of its first failed request the same incident is
/// active again, listed first, with the same culprit, led by the fault's hint.
#[test]
fn lab_go_a_fault_that_comes_back_is_answered_as_the_first_within_ten_seconds() {
    let result = &lab()[0];
    {
        let fault = result["fault"].as_str().unwrap_or("?");
        let again = &result["recurrence"];
        assert_eq!(
            again["state_reached"], true,
            "{fault}: its incident never said it recovered after the heal: {}",
            result["heal"]
        );
        let answer = &again["incident"];
        let secs = again["answer_secs"]
            .as_f64()
            .unwrap_or_else(|| panic!("{fault}: the fault came back unanswered: {again}"));
        assert!(
            secs <= ANSWER_SECS,
            "{fault}: answered {secs} s after it came back: {again}"
        );
        assert_eq!(answer["how"], "active again", "{fault}: {again}");
        assert_eq!(answer["listed_first"], true, "{fault}: {again}");
        assert_eq!(
            answer["culprit"], result["expected_culprit"],
            "{fault}: {again}"
        );
        let hint = again["hint_first_secs"].as_f64().unwrap_or_else(|| {
            panic!(
                "{fault}: never led by {} when it came back: {again}",
                result["expected_hint"]
            )
        });
        assert!(
            hint <= ANSWER_SECS,
            "{fault}: led by {} {hint} s after it came back: {again}",
            result["expected_hint"]
        );
    }
}
