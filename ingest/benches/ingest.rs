//! Tail + parse throughput and steady-state CPU, against the physical floor measured in the
//! same run.
//!
//! Run: `cargo bench -p faultline-ingest --bench ingest` (env `INGEST_BENCH_MB`, default 64;
//! `INGEST_BENCH_RUNS`, default 5; `INGEST_BENCH_CPU_SECS`, default 10).
//!
//! 1. A mixed corpus (zap JSON, logrus/slog logfmt, Gin with `Error #01`, stdlib `log`,
//!    plain text, a Go panic now and then) is written to a temp file.
//! 2. Baseline: `cat FILE > /dev/null` (the page-cache read floor), timed per run.
//! 3. Split only: the tailer's reader with parsing replaced by nothing but line cutting is
//!    not separable, so we time `replay_file` (read + cut + join + parse) and the tailer
//!    proper (`Tailer::poll` with batches and acks), plus `parse_line` alone on lines in
//!    memory. Medians over the runs; ratios to `cat`.
//! 4. CPU at a steady 1,000 lines/s: the async tailer with a writer thread in this process;
//!    process CPU time over the window minus the writer's own CPU time measured alone.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use faultline_ingest::parse::parse_line;
use faultline_ingest::tail::{replay_file, spawn, LogSource, StartAt, TailConfig, Tailer};
use faultline_ingest::Origin;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn corpus_line(i: u64) -> String {
    let trace = format!(
        "{:032x}",
        (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) as u128 | 1
    );
    match i % 6 {
        0 => format!(
            r#"{{"level":"error","ts":1710145337.{:06},"caller":"api/billing.go:193","msg":"request failed","trace_id":"{trace}","user_id":{},"method":"POST","path":"/invoices/{}","latency":0.23,"error":"billing handler: dial tcp 127.0.0.{}:5432: connect: connection refused"}}"#,
            i % 1_000_000, i * 7, i, i % 250
        ),
        1 => format!(
            r#"time="2024-03-11T08:22:17Z" level=warning msg="error calling notification service" err="failed to process request: read tcp 127.0.0.1:{}->127.0.0.1:9200: read: connection reset by peer" method=POST path=/api/v1/messages/{} user_id={}"#,
            30000 + i % 30000, i, i * 3
        ),
        2 => format!(
            r#"[GIN] 2024/03/11 - 08:22:18 | 503 |   47.977857ms |       127.0.0.1 | GET      "/api/v1/products/{}"\nError #01: failed to read from nats: read tcp 127.0.0.1:43602->127.0.7.248:4222: i/o timeout"#,
            i
        ),
        3 => format!("2024/03/11 08:22:20.465632 worker.go:{}: query failed: lookup db-{}.internal on 127.0.0.53:53: no such host", i % 900, i % 17),
        4 => format!("time=2024-03-11T08:22:28.325Z level=INFO msg=\"served\" method=GET path=/api/v1/me status=200 latency=467.827µs request_id={i}"),
        _ if i % 600 == 5 => "panic: runtime error: invalid memory address or nil pointer dereference\n[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x6a4f1b]\n\ngoroutine 1 [running]:\nmain.handler(0x0)\n\t/app/main.go:42 +0x1b\ncreated by main.main\n\t/app/main.go:12 +0x5c".to_string(),
        _ => format!("failed to fetch session {i}: upstream auth: context deadline exceeded"),
    }
}

fn write_corpus(path: &Path, bytes: u64) -> u64 {
    let mut w = BufWriter::new(File::create(path).unwrap());
    let (mut written, mut lines, mut i) = (0u64, 0u64, 0u64);
    while written < bytes {
        let line = corpus_line(i);
        w.write_all(line.as_bytes()).unwrap();
        w.write_all(b"\n").unwrap();
        written += line.len() as u64 + 1;
        lines += line.matches('\n').count() as u64 + 1;
        i += 1;
    }
    w.flush().unwrap();
    lines
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn cpu_seconds() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn main() {
    let mb = env_num("INGEST_BENCH_MB", 64);
    let runs = env_num("INGEST_BENCH_RUNS", 5).max(1) as usize;
    let cpu_secs = env_num("INGEST_BENCH_CPU_SECS", 10);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corpus.log");
    let lines = write_corpus(&path, mb << 20);
    let size = std::fs::metadata(&path).unwrap().len();
    let size_mb = size as f64 / (1 << 20) as f64;
    println!("corpus: {size_mb:.1} MiB, {lines} lines, {runs} runs (medians)");
    // Warm the page cache so every contender reads from memory.
    Command::new("cat").arg(&path).output().unwrap();

    let (mut cat, mut replay, mut tail) = (Vec::new(), Vec::new(), Vec::new());
    let mut records = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("cat '{}' > /dev/null", path.display()))
            .status()
            .unwrap();
        assert!(status.success());
        cat.push(t.elapsed().as_secs_f64());

        let t = Instant::now();
        let mut n = 0u64;
        replay_file(&path, &TailConfig::default(), None, |r| {
            n += 1;
            std::hint::black_box(r);
        })
        .unwrap();
        replay.push(t.elapsed().as_secs_f64());
        records = n;

        let config = TailConfig {
            start_at: StartAt::Beginning,
            max_batch_records: 4096,
            ..TailConfig::default()
        };
        let sources = vec![LogSource {
            path: path.display().to_string(),
            service: None,
        }];
        let t = Instant::now();
        let mut tailer = Tailer::new(config, sources, None, Instant::now()).unwrap();
        let mut got = 0u64;
        while let Some(batch) = tailer.poll(Instant::now()) {
            got += batch.records.len() as u64;
            batch.ack();
            if tailer.stats().lag_bytes == 0 && got >= n.saturating_sub(1) {
                // The last record waits for the multi-line timeout; the benchmark does not.
                break;
            }
        }
        tail.push(t.elapsed().as_secs_f64());
    }
    // Parse alone, lines already in memory.
    let text = std::fs::read_to_string(&path).unwrap();
    let mem_lines: Vec<&str> = text.lines().collect();
    let mut parse = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        for line in &mem_lines {
            std::hint::black_box(parse_line(
                line,
                Origin::File {
                    path: String::new(),
                    offset: 0,
                },
            ));
        }
        parse.push(t.elapsed().as_secs_f64());
    }
    let (cat, replay, tail, parse) = (median(cat), median(replay), median(tail), median(parse));
    println!(
        "{:<28} {:>9} {:>11} {:>14} {:>10}",
        "", "seconds", "MiB/s", "lines/s", "x cat"
    );
    for (name, secs) in [
        ("cat > /dev/null", cat),
        ("replay_file (read+parse)", replay),
        ("Tailer::poll + ack", tail),
        ("parse_line only (memory)", parse),
    ] {
        println!(
            "{name:<28} {secs:>9.3} {:>11.1} {:>14.0} {:>10.1}",
            size_mb / secs,
            lines as f64 / secs,
            secs / cat
        );
    }
    println!("records: {records} (multi-line panics joined)");

    // CPU at a steady 1,000 lines/s.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let steady = dir.path().join("steady");
    std::fs::create_dir_all(&steady).unwrap();
    let log = steady.join("app.log");
    let write_for = |secs: u64, path: &Path| {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        let start = Instant::now();
        let mut i = 0u64;
        while start.elapsed() < Duration::from_secs(secs) {
            // 10 lines every 10 ms.
            let mut chunk = String::new();
            for _ in 0..10 {
                chunk.push_str(&corpus_line(i));
                chunk.push('\n');
                i += 1;
            }
            f.write_all(chunk.as_bytes()).unwrap();
            let next = Duration::from_millis(10 * (i / 10));
            if let Some(wait) = next.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        i
    };
    // The writer alone, to subtract.
    let c0 = cpu_seconds();
    write_for(cpu_secs.min(5), &dir.path().join("alone.log"));
    let writer_cpu = (cpu_seconds() - c0) / cpu_secs.min(5) as f64;
    let (used, written, received) = rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let cancel = tokio_util::sync::CancellationToken::new();
        let sources = vec![LogSource {
            path: format!("{}/*.log", steady.display()),
            service: None,
        }];
        let config = TailConfig {
            start_at: StartAt::Beginning,
            ..TailConfig::default()
        };
        let handle = spawn(config, sources, None, tx, cancel.clone())
            .await
            .unwrap();
        let consumer = tokio::spawn(async move {
            let mut n = 0u64;
            while let Some(batch) = rx.recv().await {
                n += batch.records.len() as u64;
                batch.ack();
            }
            n
        });
        let c0 = cpu_seconds();
        let log2 = log.clone();
        let written = tokio::task::spawn_blocking(move || write_for(cpu_secs, &log2))
            .await
            .unwrap();
        let used = cpu_seconds() - c0;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        cancel.cancel();
        handle.join().await.unwrap();
        (used, written, consumer.await.unwrap())
    });
    let per_sec = used / cpu_secs as f64;
    println!(
        "steady 1,000 lines/s for {cpu_secs}s: {written} written, {received} received; process CPU {:.2}% of one core, writer alone {:.2}%, tailer+parser ≈ {:.2}%",
        per_sec * 100.0,
        writer_cpu * 100.0,
        (per_sec - writer_cpu).max(0.0) * 100.0
    );
}
