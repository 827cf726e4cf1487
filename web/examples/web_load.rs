//! Open-loop HTTP load generator for `scripts/bench/web_api.sh`: sends requests at a fixed
//! rate whatever the server's latency (so slow answers cannot hide queueing: each latency is
//! measured from the moment the request was due) and prints latency percentiles.
//!
//! Usage: `web_load BASE_URL RATE_PER_S SECONDS PATH...`; requests cycle through the paths.
//! Prints one line: `sent=N ok=N errors=N p50_ms=.. p90_ms=.. p99_ms=.. max_ms=.. achieved_rps=..`.

use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(base), Some(rate), Some(seconds)) = (
        args.first(),
        args.get(1).and_then(|r| r.parse::<u64>().ok()),
        args.get(2).and_then(|s| s.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: web_load BASE_URL RATE_PER_S SECONDS PATH...");
        std::process::exit(2);
    };
    let paths: Vec<String> = args[3..].to_vec();
    if paths.is_empty() || rate == 0 {
        eprintln!("give at least one path and a rate above 0");
        std::process::exit(2);
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client");
    let total = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Option<Duration>>();
    let start = Instant::now();
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let url = format!("{base}{}", paths[i as usize % paths.len()]);
        let client = client.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let result = match client.get(url).send().await {
                Ok(response) if response.status().is_success() => {
                    response.bytes().await.ok().map(|_| due.elapsed())
                }
                _ => None,
            };
            let _ = tx.send(result);
        });
    }
    drop(tx);
    let mut latencies = Vec::with_capacity(total as usize);
    let mut errors = 0u64;
    while let Some(result) = rx.recv().await {
        match result {
            Some(latency) => latencies.push(latency),
            None => errors += 1,
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let idx = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies[idx].as_secs_f64() * 1000.0
    };
    println!(
        "sent={total} ok={} errors={errors} p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} max_ms={:.2} achieved_rps={:.0}",
        latencies.len(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0),
        total as f64 / elapsed
    );
}
