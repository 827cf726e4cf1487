//! What one scan of the tailer costs (expanding the globs, a stat of each file, and the listing
//! of each glob's directory for generations that came and left a globbed name between two
//! scans), on a log directory as logrotate leaves it.
//!
//! Run: `cargo bench -p faultline-ingest --bench tail_scan` (env `TAIL_SCAN_POLLS`, default
//! 20,000).
//!
//! The directory: three live logs (`a.log`, `b.log`, `c.log`, the glob `*.log`), and for each
//! `GENERATIONS` (0, then 30: `rotate 30`) old generations named like them (`a.log.1` …, born
//! before the tailer started: they pass the name test and cost a stat each, no open) and as
//! many compressed ones (`a.log.31.gz` …), plus two unrelated files. The tailer polls with
//! `glob_interval_ms = 0`, so every poll scans; nothing is written, so a poll is a scan. The
//! directory listing a scan adds for generations is timed alone beside it (`read_dir` of the
//! directory and the names collected; the stats of the generation-named files after it).
//! Reported: CPU time (getrusage) and wall time per scan, medians of 5 runs.

use std::fs;
use std::path::Path;
use std::time::Instant;

use faultline_ingest::tail::{LogSource, StartAt, TailConfig, Tailer};

fn cpu_secs() -> f64 {
    // SAFETY: an all-zero rusage is a valid value of the plain C struct getrusage fills.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn directory(dir: &Path, generations: usize) {
    for log in ["a", "b", "c"] {
        let line = format!("level=info msg=\"served\" svc={log}\n");
        fs::write(dir.join(format!("{log}.log")), line.repeat(100)).unwrap();
        for g in 1..=generations {
            fs::write(dir.join(format!("{log}.log.{g}")), &line).unwrap();
            fs::write(dir.join(format!("{log}.log.{}.gz", g + generations)), "x").unwrap();
        }
    }
    fs::write(dir.join("notes.txt"), "n\n").unwrap();
    fs::write(dir.join("app.pid"), "1\n").unwrap();
}

/// CPU and wall seconds per scan over `polls` scans.
fn scans(dir: &Path, polls: usize) -> (f64, f64) {
    let config = TailConfig {
        start_at: StartAt::End,
        glob_interval_ms: 0,
        ..TailConfig::default()
    };
    let sources = vec![LogSource {
        path: format!("{}/*.log", dir.display()),
        service: None,
    }];
    let mut tailer = Tailer::new(config, sources, None, Instant::now()).unwrap();
    // The first poll reads nothing more (started at the end) and records the scan's time.
    while tailer.poll(Instant::now()).is_some() {}
    let (cpu, wall) = (cpu_secs(), Instant::now());
    for _ in 0..polls {
        std::hint::black_box(tailer.poll(Instant::now()));
    }
    (
        (cpu_secs() - cpu) / polls as f64,
        wall.elapsed().as_secs_f64() / polls as f64,
    )
}

/// CPU and wall seconds per listing of `dir` (names collected, as the generation scan lists).
fn listings(dir: &Path, polls: usize) -> (f64, f64) {
    let (cpu, wall) = (cpu_secs(), Instant::now());
    for _ in 0..polls {
        let names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        std::hint::black_box(names);
    }
    (
        (cpu_secs() - cpu) / polls as f64,
        wall.elapsed().as_secs_f64() / polls as f64,
    )
}

fn main() {
    let polls = std::env::var("TAIL_SCAN_POLLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000usize);
    println!(
        "{:<34} {:>14} {:>14} {:>16}",
        "", "CPU µs/scan", "wall µs/scan", "% core at 1/s"
    );
    for generations in [0, 30] {
        let dir = tempfile::tempdir().unwrap();
        directory(dir.path(), generations);
        let entries = fs::read_dir(dir.path()).unwrap().count();
        let (mut scan, mut list) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
        for _ in 0..5 {
            let (c, w) = scans(dir.path(), polls);
            scan.0.push(c);
            scan.1.push(w);
            let (c, w) = listings(dir.path(), polls);
            list.0.push(c);
            list.1.push(w);
        }
        for (name, (cpu, wall)) in [
            (format!("scan, {entries} entries"), scan),
            ("  its generation listing alone".to_string(), list),
        ] {
            let (cpu, wall) = (median(cpu), median(wall));
            println!(
                "{name:<34} {:>14.1} {:>14.1} {:>16.4}",
                cpu * 1e6,
                wall * 1e6,
                cpu * 100.0
            );
        }
    }
}
