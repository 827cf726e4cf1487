//! CPU cost of the span and trace-id path at the soak's load: OTLP/JSON export requests as
//! `scripts/reliability/soak.py` sends them (traces of four spans over three services, one
//! attribute each, 2 % failing, 100 spans a request) through the receivers' HTTP router
//! (decode, convert, store insert; no socket), and tailed log records carrying trace ids the
//! store has never seen (two of every three soak lines) attached to the store, both into a
//! store already full at its default bounds (100,000 traces), so every new trace evicts one.
//!
//! What it prints is CPU time of this thread per 1,000 spans and per 1,000 records: at the
//! soak's 1,000 spans/s and ~667 trace-id lines/s, "µs per 1,000" is directly µs of CPU per
//! second of soak, i.e. 10,000 µs per 1,000 = 1 % of a core. Every figure is the median of
//! RUNS runs (the machine is shared and noisy). To compare two versions, build this bench on
//! both and run them alternately (the source uses only public API that both have).
//!
//! Run: `cargo bench -p faultline-ingest --bench trace_path` (env `TRACE_PATH_RUNS`,
//! default 7).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use faultline_ingest::otlp::{log_queue, OtlpConfig, OtlpOutputs, OtlpReceivers};
use faultline_ingest::traces::{TraceStore, TraceStoreConfig};
use faultline_ingest::{Level, LogRecord, Origin, TraceId};
use tower::ServiceExt;

const SPANS_PER_REQUEST: usize = 100;
const REQUESTS_PER_RUN: usize = 200; // 20,000 spans
const RECORDS_PER_RUN: usize = 20_000;

/// A small, fast, deterministic generator (xorshift*), so both builds see the same input.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn span_json(
    trace: &str,
    id: &str,
    parent: Option<&str>,
    name: &str,
    kind: u8,
    (start, end): (u64, u64),
    failed: bool,
) -> serde_json::Value {
    let mut span = serde_json::json!({
        "traceId": trace,
        "spanId": id,
        "name": name,
        "kind": kind,
        "startTimeUnixNano": start.to_string(),
        "endTimeUnixNano": end.to_string(),
        "attributes": [
            {"key": "http.response.status_code",
             "value": {"intValue": if failed { "502" } else { "200" }}}
        ],
        "status": if failed {
            serde_json::json!({"code": 2,
                "message": "upstream orders closed the connection: EOF after 412ms (order 51234)"})
        } else {
            serde_json::json!({"code": 1})
        },
    });
    if let Some(parent) = parent {
        span["parentSpanId"] = parent.into();
    }
    span
}

/// One export request as the soak's generator writes it.
fn request_body(rng: &mut Rng, now: u64) -> Vec<u8> {
    let services = ["checkout", "orders", "inventory"];
    let mut by_service: Vec<Vec<serde_json::Value>> = vec![Vec::new(); 3];
    for _ in 0..SPANS_PER_REQUEST / 4 {
        let trace = format!("{:016x}{:016x}", rng.next(), rng.next());
        let ids: Vec<String> = (0..4).map(|_| format!("{:016x}", rng.next())).collect();
        let failed = rng.next().is_multiple_of(50);
        let ms = 1_000_000;
        by_service[0].push(span_json(
            &trace,
            &ids[0],
            None,
            "GET /checkout",
            2,
            (now - 9 * ms, now),
            failed,
        ));
        by_service[0].push(span_json(
            &trace,
            &ids[1],
            Some(&ids[0]),
            "POST orders",
            3,
            (now - 8 * ms, now - ms),
            failed,
        ));
        by_service[1].push(span_json(
            &trace,
            &ids[2],
            Some(&ids[1]),
            "POST /orders",
            2,
            (now - 7 * ms, now - 2 * ms),
            failed,
        ));
        by_service[2].push(span_json(
            &trace,
            &ids[3],
            Some(&ids[2]),
            "SELECT stock",
            3,
            (now - 6 * ms, now - 3 * ms),
            failed,
        ));
    }
    let resource_spans: Vec<serde_json::Value> = services
        .iter()
        .zip(by_service)
        .map(|(service, spans)| {
            serde_json::json!({
                "resource": {"attributes": [
                    {"key": "service.name", "value": {"stringValue": service}}
                ]},
                "scopeSpans": [{"spans": spans}],
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "resourceSpans": resource_spans })).unwrap()
}

/// A tailed line as the pipeline hands it to the store: a logfmt/JSON line with a trace id
/// of its own (no span of it ever arrives).
fn record(rng: &mut Rng, now: i64) -> LogRecord {
    let trace = loop {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&rng.next().to_le_bytes());
        id[8..].copy_from_slice(&rng.next().to_le_bytes());
        if let Some(id) = TraceId::from_bytes(&id) {
            break id;
        }
    };
    let error = rng.next().is_multiple_of(20);
    LogRecord {
        time_unix_nanos: Some(now),
        observed_unix_nanos: now,
        level: if error { Level::Error } else { Level::Info },
        service: Some("orders".to_owned()),
        message: format!(
            "GET /api/orders/{} 200 {}ms",
            rng.next() % 90_000 + 10_000,
            rng.next() % 900
        ),
        error: None,
        http_status: None,
        trace_id: Some(trace),
        span_id: None,
        attributes: Vec::new(),
        origin: Origin::File {
            path: "/var/log/app/orders.log".to_owned(),
            offset: rng.next() % 1_000_000_000,
        },
        truncated: false,
    }
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to write.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::var("TRACE_PATH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = Arc::new(TraceStore::new(TraceStoreConfig::default()));
    let (logs, mut queue) = log_queue(1_000_000);
    let receivers = OtlpReceivers::new(
        OtlpConfig::default(),
        OtlpOutputs::discarding_tasks(store.clone(), logs),
    );
    let router = receivers.http_router();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut bodies = || -> Vec<Vec<u8>> {
        (0..REQUESTS_PER_RUN)
            .map(|_| request_body(&mut rng, now))
            .collect()
    };

    let mut post = |body: Vec<u8>| {
        let request = Request::post("/v1/traces")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let response = runtime.block_on(router.clone().oneshot(request)).unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        while queue.try_recv().is_some() {}
    };

    // Fill the store to its bound (100,000 traces) with the same mix, so each run churns.
    let mut filler = Rng(7);
    while store.stats().traces < store.config().max_traces {
        let records: Vec<LogRecord> = (0..10_000)
            .map(|_| record(&mut filler, now as i64))
            .collect();
        store.attach_logs(records);
    }
    for body in bodies() {
        post(body);
    }

    let mut spans_us = Vec::new();
    let mut records_us = Vec::new();
    for run in 0..runs {
        // New traces in every run (made before the clock starts), as in the soak.
        let run_bodies = bodies();
        let t0 = thread_cpu();
        for body in run_bodies {
            post(body);
        }
        let spans = (thread_cpu() - t0).as_secs_f64() * 1e6;
        let mut records_rng = Rng(1_000 + run as u64);
        let batches: Vec<Vec<LogRecord>> = (0..RECORDS_PER_RUN / 100)
            .map(|_| {
                (0..100)
                    .map(|_| record(&mut records_rng, now as i64))
                    .collect()
            })
            .collect();
        let t0 = thread_cpu();
        for batch in batches {
            store.attach_logs(batch);
        }
        let records = (thread_cpu() - t0).as_secs_f64() * 1e6;
        let per_spans = spans / (REQUESTS_PER_RUN * SPANS_PER_REQUEST) as f64 * 1_000.0;
        let per_records = records / RECORDS_PER_RUN as f64 * 1_000.0;
        println!("run {run}: {per_spans:8.0} µs per 1,000 spans (JSON → store), {per_records:8.0} µs per 1,000 trace-id records");
        spans_us.push(per_spans);
        records_us.push(per_records);
    }
    let stats = store.stats();
    println!(
        "median of {runs}: {:.0} µs CPU per 1,000 spans (OTLP/JSON → store), {:.0} µs per 1,000 trace-id log records (attach); store {} traces, {} evicted",
        median(spans_us),
        median(records_us),
        stats.traces,
        stats.evicted_traces
    );
}
