//! Benchmark: what saving the counter history (`counters.json`, see `persist::counters`) costs
//! with 4,096 ports counted one by one, in bytes on disk and time per save, against writing
//! the same bytes alone (the atomic write with its fsyncs) in the same run; and what reading it
//! back at a start costs.
//!
//! Run with `cargo bench -p faultline --bench counter_history` (add `--profile dev` for a
//! debug build's figures). The store holds 4,096 port groups with three series each
//! (ESTABLISHED, TIME-WAIT and the port's total: 12,288 series), a full 15-minute ring at 1 s
//! and a full 24-hour ring of minutes, restored from synthetic points; a save writes the
//! default anomaly windows' 7 minutes of seconds and every minute. Two shapes of points:
//! *steady* (a level that moves every ten seconds or so, as most ports' counts do) and
//! *worst* (every point a different value: run-length encoding gains nothing). Figures are
//! medians of several runs.

use std::time::{Duration, Instant};

use faultline_agent::persist::atomic::atomic_write;
use faultline_agent::persist::counters::{load, save, COUNTERS_FILE};
use faultline_ingest::counters::saved::{SavedCounters, SavedHistory, SavedSeries};
use faultline_ingest::counters::{CounterStore, CountersConfig};
use faultline_series::{PortSide, SeriesKey, SocketState};

const RUNS: usize = 3;
const PORTS: u16 = 4096;
const SECONDS: usize = 900;
const MINUTES: usize = 1440;
/// The default anomaly windows (baseline 5 min + search 2 min).
const SAVED_MS: i64 = 7 * 60_000;

fn config() -> CountersConfig {
    CountersConfig {
        top_ports: usize::from(PORTS),
        max_series: 16_384,
        ..CountersConfig::default()
    }
}

/// A small deterministic generator (no dependency, same points every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }
}

fn points(rng: &mut Lcg, n: usize, worst: bool) -> Vec<Option<f32>> {
    let mut level = (rng.next() % 200) as f32;
    (0..n)
        .map(|_| {
            if worst {
                Some((rng.next() % 100_000) as f32)
            } else {
                if rng.next().is_multiple_of(10) {
                    level = (level + (rng.next() % 7) as f32 - 3.0).max(0.0);
                }
                Some(level)
            }
        })
        .collect()
}

fn synthetic(now: i64, worst: bool) -> SavedCounters {
    let mut rng = Lcg(7);
    let second_times: Vec<i64> = (0..SECONDS as i64)
        .map(|i| now - (SECONDS as i64 - i) * 1000)
        .collect();
    let first_minute = (now / 60_000 - MINUTES as i64) * 60_000;
    let minute_times: Vec<i64> = (0..MINUTES as i64)
        .map(|i| first_minute + i * 60_000)
        .collect();
    let mut series = Vec::new();
    for p in 0..PORTS {
        let port = 10_000 + p;
        for key in [
            SeriesKey::PortState {
                port,
                side: PortSide::Local,
                state: SocketState::Established,
            },
            SeriesKey::PortState {
                port,
                side: PortSide::Local,
                state: SocketState::TimeWait,
            },
            SeriesKey::PortTotal {
                port,
                side: PortSide::Local,
            },
        ] {
            series.push(SavedSeries {
                key,
                seconds: points(&mut rng, SECONDS, worst),
                minutes: points(&mut rng, MINUTES, worst),
            });
        }
    }
    SavedCounters {
        history: SavedHistory {
            second_times,
            minute_times,
            series,
        },
        ..SavedCounters::default()
    }
}

fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d[d.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!(
        "counter history save: {PORTS} ports x 3 series, {SECONDS} s + {MINUTES} min rings, \
         {} s of seconds saved (median of {RUNS})",
        SAVED_MS / 1000
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    for worst in [false, true] {
        let store = CounterStore::new(&config());
        let restored = store
            .restore(synthetic(now, worst), now)
            .expect("restore the synthetic history");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut saves = Vec::new();
        let mut bytes = 0;
        for _ in 0..RUNS {
            let started = Instant::now();
            bytes = save(dir.path(), &store, SAVED_MS, now).expect("save");
            saves.push(started.elapsed());
        }
        let written = std::fs::read(dir.path().join(COUNTERS_FILE)).expect("read back");
        let mut writes = Vec::new();
        for _ in 0..RUNS {
            let started = Instant::now();
            atomic_write(&dir.path().join("raw.json"), &written, None).expect("write");
            writes.push(started.elapsed());
        }
        let mut loads = Vec::new();
        for _ in 0..RUNS {
            let fresh = CounterStore::new(&config());
            let started = Instant::now();
            let notes = load(dir.path(), &fresh, now);
            loads.push(started.elapsed());
            assert!(notes.iter().any(|n| n.starts_with("restored")), "{notes:?}");
        }
        let (save, write, load) = (median(saves), median(writes), median(loads));
        println!(
            "{:>6}: {} series; file {:.2} MiB; save {:.1} ms (write alone {:.1} ms, {:.1}x); \
             load at start {:.1} ms",
            if worst { "worst" } else { "steady" },
            restored.series,
            bytes as f64 / (1024.0 * 1024.0),
            save.as_secs_f64() * 1e3,
            write.as_secs_f64() * 1e3,
            save.as_secs_f64() / write.as_secs_f64().max(1e-9),
            load.as_secs_f64() * 1e3,
        );
    }
}
