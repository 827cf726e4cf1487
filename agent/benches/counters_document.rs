//! Benchmark: the counters document and the sampler on a busy node that charts every port
//! (BENCHMARKS.md, "The counters document and the sampler on a busy node").
//!
//! The node: 3,000 listening ports, each with its listener, a few TIME-WAIT sockets of its
//! callers and an established connection, counted by the store as the e2e agents of
//! `counters::` once did (`top_ports = 4096`, `max_series = 16384`, `history_seconds = 120`):
//! about 12,000 series. The TIME-WAIT counts of a tenth of the ports change from one sample to
//! the next, as on a churning node.
//!
//! What is measured, as thread CPU time (the machine is shared; wall time is its weather):
//! - `record_sample`: what one sample costs the sampler under the store's lock, with the
//!   rings full (median of the last samples);
//! - one `GET /api/v1/counters`, by phase: the store's snapshot (the whole call: its series
//!   are copied under the store's lock and put in key order after it is released), the web
//!   model ([`CounterView::page`] less the snapshot), the JSON encoding, and the bytes;
//! - the encoded document as the router serves it ([`CounterView::page_json`]): the first
//!   read after a sample, and a read in the same sample (every open dashboard reads the
//!   document at each sample).
//!
//! Run with `cargo bench -p faultline --bench counters_document` (add `--profile dev` for a
//! debug build's figures, the e2e agents' build).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use faultline_ingest::counters::reader::CensusReading;
use faultline_ingest::counters::sampler::thread_cpu;
use faultline_ingest::counters::sockets::{
    Family, SocketCensus, SocketEntry, SocketSource, DEFAULT_EPHEMERAL_PORTS,
};
use faultline_ingest::counters::store::NodeSample;
use faultline_ingest::counters::{CounterStore, CountersConfig, SnapshotOptions};
use faultline_ingest::traces::{TraceStore, TraceStoreConfig};
use faultline_series::SocketState;
use faultline_web::model::HistoryResolution;

/// Listening ports of the node.
const PORTS: u32 = 3_000;
/// Samples recorded before measuring (the 120-point rings full).
const WARM: i64 = 130;
/// Samples and documents measured.
const RUNS: usize = 9;
const T0: i64 = 1_700_000_000_000;

fn entry(state: SocketState, local: &str, remote: &str) -> SocketEntry {
    let addr = |s: &str| s.parse::<SocketAddr>().expect("a literal address");
    SocketEntry {
        family: Family::Ipv4,
        state,
        local: addr(local),
        remote: addr(remote),
        recv_queue: 0,
        send_queue: Some(0),
        inode: 0,
    }
}

/// The node's sockets at sample `i`: a tenth of the ports' TIME-WAIT counts move each sample.
fn census(i: i64) -> SocketCensus {
    let mut entries = Vec::new();
    for p in 0..PORTS {
        let port = 10_000 + p;
        entries.push(entry(
            SocketState::Listen,
            &format!("127.0.0.1:{port}"),
            "0.0.0.0:0",
        ));
        let time_wait = 4 + u32::from((i64::from(p) + i) % 10 == 0) * ((i % 3) as u32);
        for k in 0..time_wait {
            let remote = format!("127.0.0.1:{}", 40_000 + (p * 7 + k) % 20_000);
            entries.push(entry(
                SocketState::TimeWait,
                &remote,
                &format!("127.0.0.1:{port}"),
            ));
        }
        entries.push(entry(
            SocketState::Established,
            &format!("127.0.0.1:{port}"),
            "127.0.0.1:39999",
        ));
    }
    SocketCensus::from_entries(SocketSource::Netlink, &entries, &DEFAULT_EPHEMERAL_PORTS)
}

fn sample(i: i64, census: SocketCensus) -> NodeSample {
    NodeSample {
        time_unix_ms: T0 + i * 1_000,
        sockets: CensusReading::of(Ok(census)),
        sockstat: Ok(BTreeMap::from([("TCP inuse".to_string(), i % 9)])),
        protocol: Ok(BTreeMap::from([("Tcp EstabResets".to_string(), i * 2)])),
        processes: Vec::new(),
        agent_process: None,
        runtime: None,
        scrapes: Vec::new(),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn range(v: &[f64]) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(0.0, f64::max);
    format!("{lo:.1}–{hi:.1}")
}

fn main() {
    let config = CountersConfig {
        top_ports: 4096,
        max_series: 16_384,
        history_seconds: 120,
        ..CountersConfig::default()
    };
    let store = Arc::new(CounterStore::new(&config));
    let traces = Arc::new(TraceStore::new(TraceStoreConfig::default()));
    let view = faultline_agent::counter_view(Arc::clone(&store), traces);
    // Three censuses in turn: counting the sockets is the census worker's work, not the
    // store's, and stays out of the figures.
    let censuses: Vec<SocketCensus> = (0..3).map(census).collect();
    let next = |i: i64| sample(i, censuses[(i % 3) as usize].clone());
    for i in 0..WARM {
        store.record_sample(next(i));
    }

    let mut record = Vec::new();
    let mut snapshot = Vec::new();
    let mut model = Vec::new();
    let mut encode = Vec::new();
    let mut first_read = Vec::new();
    let mut again = Vec::new();
    let mut bytes = 0;
    let options = SnapshotOptions::default();
    for run in 0..RUNS {
        let i = WARM + run as i64;
        let s = next(i);
        let c0 = thread_cpu();
        store.record_sample(s);
        record.push(ms(thread_cpu() - c0));

        let c0 = thread_cpu();
        let snap = store.snapshot(&options);
        snapshot.push(ms(thread_cpu() - c0));
        drop(snap);
        let c0 = thread_cpu();
        let page = view.page(HistoryResolution::Second);
        let page_cpu = ms(thread_cpu() - c0);
        model.push((page_cpu - snapshot[run]).max(0.0));
        let c0 = thread_cpu();
        let json = serde_json::to_vec(&page).expect("the document encodes");
        encode.push(ms(thread_cpu() - c0));
        bytes = json.len();

        let c0 = thread_cpu();
        let served = view
            .page_json(HistoryResolution::Second)
            .expect("the document encodes");
        first_read.push(ms(thread_cpu() - c0));
        let c0 = thread_cpu();
        let served_again = view
            .page_json(HistoryResolution::Second)
            .expect("the document encodes");
        again.push(ms(thread_cpu() - c0));
        assert_eq!(served.len(), served_again.len());
    }
    let series = store
        .snapshot(&SnapshotOptions::current_only())
        .bounds
        .series;
    println!(
        "counters document: {PORTS} listening ports, {series} series × 120 points, {bytes} bytes; \
         thread CPU ms, median (range) of {RUNS}"
    );
    for (name, v) in [
        ("record_sample (under the store's lock)", &record),
        (
            "store snapshot (copied under the lock, sorted after)",
            &snapshot,
        ),
        ("web model", &model),
        ("JSON encoding", &encode),
        ("served document, first read after a sample", &first_read),
        ("served document, again in the same sample", &again),
    ] {
        println!("  {name:<46} {:>8.2}  ({})", median(v.clone()), range(v));
    }
}
