//! Benchmark: what saving the counter history costs (see `persist::counters`), format 1
//! (`counters.json`: the whole history as JSON, copied under the store's lock, rewritten at
//! every save) against the current files (`counters.bin` rewritten, the minute log appended
//! to), in the same run: bytes per save, time per save, time under the counter store's lock,
//! the longest wait of a thread taking that lock meanwhile (what the sampler would wait), and
//! what reading it back at a start costs.
//!
//! Run with `cargo bench -p faultline --bench counter_history` (add `--profile dev` for a
//! debug build's figures). Two node sizes: 4,096 port groups and 102 (the e2e's few hundred
//! series), three series each (ESTABLISHED, TIME-WAIT and the port's total), a full 15-minute
//! ring at 1 s and a full 24-hour ring of minutes, restored from synthetic points; a save
//! writes the default anomaly windows' 7 minutes of seconds and the minutes. Two shapes of
//! points: *steady* (a level that moves every ten seconds or so, as most ports' counts do)
//! and *worst* (every point a different value: run-length encoding gains nothing). The
//! current format's saves: the first of a run (the minute log rewritten whole, as at every
//! start and once an hour), a save with no minute closed since the previous one (three in
//! four at the default 15 s), and one with a minute closed (the store one minute later).
//! Figures are medians of several runs. `steady` or `worst` after `--` runs one shape only.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline_agent::persist::atomic::atomic_write;
use faultline_agent::persist::counters::{
    adopt, load, read, save_format_1, Saver, COUNTERS_FILE, MINUTES_FILE, SECONDS_FILE,
};
use faultline_ingest::counters::saved::{SavedCounters, SavedHistory, SavedSeries};
use faultline_ingest::counters::{CounterStore, CountersConfig};
use faultline_series::{PortSide, SeriesKey, SocketState};

const RUNS: usize = 3;
const SECONDS: usize = 900;
const MINUTES: usize = 1440;
/// The default anomaly windows (baseline 5 min + search 2 min).
const SAVED_MS: i64 = 7 * 60_000;

fn config(ports: u16) -> CountersConfig {
    CountersConfig {
        top_ports: usize::from(ports),
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

fn synthetic(ports: u16, now: i64, worst: bool) -> SavedCounters {
    let mut rng = Lcg(7);
    let second_times: Vec<i64> = (0..SECONDS as i64)
        .map(|i| now - (SECONDS as i64 - i) * 1000)
        .collect();
    let first_minute = (now / 60_000 - MINUTES as i64) * 60_000;
    let minute_times: Vec<i64> = (0..MINUTES as i64)
        .map(|i| first_minute + i * 60_000)
        .collect();
    let mut series = Vec::new();
    for p in 0..ports {
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

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn mib(bytes: usize) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Runs `f` while another thread takes the store's lock every 200 µs (as the sampler does
/// once a second); returns `f`'s result, its time, and the longest wait for the lock.
fn probed<T>(store: &Arc<CounterStore>, f: impl FnOnce() -> T) -> (T, Duration, Duration) {
    let done = Arc::new(AtomicBool::new(false));
    let probe = {
        let (store, done) = (store.clone(), done.clone());
        std::thread::spawn(move || {
            let mut longest = Duration::ZERO;
            while !done.load(Ordering::Relaxed) {
                let asked = Instant::now();
                let _ = store.agent_ports();
                longest = longest.max(asked.elapsed());
                std::thread::sleep(Duration::from_micros(200));
            }
            longest
        })
    };
    let started = Instant::now();
    let out = f();
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let longest = probe.join().expect("probe thread");
    (out, took, longest)
}

/// Medians of (time, longest lock wait, bytes, time under the lock) over [`RUNS`] runs.
struct Figures {
    took: Vec<Duration>,
    waited: Vec<Duration>,
    locked: Vec<Duration>,
    bytes: usize,
}

impl Figures {
    fn new() -> Figures {
        Figures {
            took: Vec::new(),
            waited: Vec::new(),
            locked: Vec::new(),
            bytes: 0,
        }
    }

    fn line(self, what: &str) -> String {
        format!(
            "  {what:<38} {:>10} per save, {:>10}; under the lock {:>10}; longest lock wait {:>10}",
            mib(self.bytes),
            ms(median(self.took)),
            if self.locked.is_empty() {
                "(all of the copy)".to_owned()
            } else {
                ms(median(self.locked))
            },
            ms(median(self.waited)),
        )
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!(
        "counter history save: 3 series per port, {SECONDS} s + {MINUTES} min rings, {} s of \
         seconds saved (median of {RUNS})",
        SAVED_MS / 1000
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    // `steady` or `worst` on the command line runs that shape only.
    let only = |shape: &str| {
        let named = |a: &String| a == "steady" || a == "worst";
        !std::env::args().any(|a| named(&a)) || std::env::args().any(|a| a == shape)
    };
    for ports in [4096u16, 102] {
        for worst in [false, true] {
            if only(if worst { "worst" } else { "steady" }) {
                bench(ports, worst, now);
            }
        }
    }
}

fn bench(ports: u16, worst: bool, now: i64) {
    let store = Arc::new(CounterStore::new(&config(ports)));
    let restored = store
        .restore(synthetic(ports, now, worst), now)
        .expect("restore the synthetic history");
    // The same node one minute later: one more closed minute.
    let later = Arc::new(CounterStore::new(&config(ports)));
    later
        .restore(synthetic(ports, now + 60_000, worst), now + 60_000)
        .expect("restore the later history");
    println!(
        "{} ports, {}: {} series",
        ports,
        if worst { "worst" } else { "steady" },
        restored.series
    );

    // Format 1.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut old = Figures::new();
    for _ in 0..RUNS {
        let (bytes, took, waited) = probed(&store, || {
            save_format_1(dir.path(), &store, SAVED_MS, now).expect("save")
        });
        old.bytes = bytes;
        old.took.push(took);
        old.waited.push(waited);
    }
    let written = std::fs::read(dir.path().join(COUNTERS_FILE)).expect("read back");
    let mut writes = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        atomic_write(&dir.path().join("raw"), &written, None).expect("write");
        writes.push(started.elapsed());
    }
    let mut old_loads = Vec::new();
    for _ in 0..RUNS {
        let fresh = CounterStore::new(&config(ports));
        let started = Instant::now();
        let notes = load(dir.path(), &fresh, now);
        old_loads.push(started.elapsed());
        assert!(notes.iter().any(|n| n.starts_with("restored")), "{notes:?}");
    }
    let old_save = median(old.took.clone());
    println!("{}", old.line("format 1 (counters.json)"));

    // The current files.
    let (mut first, mut quiet, mut minute) = (Figures::new(), Figures::new(), Figures::new());
    let mut seconds_bytes = 0;
    for _ in 0..RUNS {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut saver = Saver::new(dir.path(), &store, SAVED_MS);
        for (figures, store) in [
            (&mut first, &store),
            (&mut quiet, &store),
            (&mut minute, &later),
        ] {
            let (saved, took, waited) =
                probed(store, || saver.save(store, None, now).expect("save"));
            figures.bytes = saved.seconds_bytes + saved.minute_bytes;
            figures.took.push(took);
            figures.waited.push(waited);
            figures.locked.push(saved.locked);
            seconds_bytes = saved.seconds_bytes;
        }
    }
    let new_quiet = median(quiet.took.clone());
    println!("{}", first.line("first save (minute log rewritten)"));
    println!("{}", quiet.line("no minute closed"));
    println!("{}", minute.line("a minute closed (appended)"));

    // Reading back at a start.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut saver = Saver::new(dir.path(), &store, SAVED_MS);
    saver.save(&store, None, now).expect("save");
    let file = |name| std::fs::metadata(dir.path().join(name)).map_or(0, |m| m.len() as usize);
    let (mut reads, mut adopts) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let fresh = CounterStore::new(&config(ports));
        let started = Instant::now();
        let (loaded, notes) = read(dir.path(), &fresh, now);
        reads.push(started.elapsed());
        let started = Instant::now();
        let note = adopt(loaded.expect("loaded"), &fresh, None, now);
        adopts.push(started.elapsed());
        assert!(note.starts_with("restored"), "{notes:?} {note}");
    }
    println!(
        "  files: {SECONDS_FILE} {} (of it the recent points: every save), {MINUTES_FILE} {}",
        mib(seconds_bytes),
        mib(file(MINUTES_FILE)),
    );
    println!(
        "  load at start: format 1 {} (before serving); now {} to read and rebuild (in the \
         background) + {} under the lock to put in place",
        ms(median(old_loads)),
        ms(median(reads)),
        ms(median(adopts)),
    );
    println!(
        "  format 1's save: {:.1}x the bare write of its bytes ({}); a save with no minute \
         closed is {:.1}x faster than it",
        old_save.as_secs_f64() / median(writes.clone()).as_secs_f64().max(1e-9),
        ms(median(writes)),
        old_save.as_secs_f64() / new_quiet.as_secs_f64().max(1e-9),
    );
}
