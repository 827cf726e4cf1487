//! The sampler: a tokio task that reads every counter source once per interval and writes the
//! results into the [`CounterStore`].
//!
//! Each tick runs the blocking reads (netlink, /proc) on the blocking pool and records the node
//! sample as soon as they are done. Every HTTP task target is scraped by its own loop on the
//! same interval, bounded by the target's timeout, and its outcome recorded when it arrives; a
//! sample's history point carries each target's latest outcome, as it does for counts pushed
//! over OTLP. So a wedged target, even one whose timeout exceeds the interval, costs the node
//! history nothing and the other targets nothing. A tick that overruns the interval delays the
//! next one instead of piling up (missed ticks are skipped). No source failure ends a loop;
//! only the cancellation token does.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::{CountersConfig, CountersConfigError, ProcessTarget, TaskKind, TaskTarget};
use super::proc_net::{read_protocol_counters, read_sockstat};
use super::process::{read_process, ProcessWatcher};
use super::reader::SocketReader;
use super::runtime::RuntimeCounters;
use super::store::{CounterStore, NodeSample};
use super::tasks::scrape;

/// The blocking half of the sampler: everything read from the kernel.
#[derive(Debug)]
pub struct NodeSampler {
    proc_root: PathBuf,
    reader: SocketReader,
    watcher: ProcessWatcher,
    processes: Vec<ProcessTarget>,
}

impl NodeSampler {
    /// A node sampler for `config` (socket source, proc root, process targets).
    pub fn new(config: &CountersConfig) -> NodeSampler {
        NodeSampler {
            proc_root: config.proc_root.clone(),
            reader: SocketReader::new(config.socket_source, config.proc_root.clone()),
            watcher: ProcessWatcher::new(config.proc_root.clone()),
            processes: config.processes.clone(),
        }
    }

    /// Reads every node source once. Blocking: call it from a blocking thread.
    pub fn sample(&mut self, time_unix_ms: i64, runtime: Option<RuntimeCounters>) -> NodeSample {
        let sockets = self.reader.census();
        let entries = self.reader.entries();
        let processes = self
            .processes
            .iter()
            .map(|t| (t.name.clone(), self.watcher.read(t, entries)))
            .collect();
        NodeSample {
            time_unix_ms,
            sockets,
            sockstat: read_sockstat(&self.proc_root),
            protocol: read_protocol_counters(&self.proc_root),
            processes,
            // The agent's own pid is only meaningful in its own procfs.
            agent_process: read_process(Path::new("/proc"), std::process::id()).ok(),
            runtime,
            scrapes: Vec::new(),
        }
    }
}

/// Starts the sampler on the current tokio runtime. It samples immediately, then every
/// `config.interval_ms`, until `cancel` is cancelled. Fails only on an invalid config.
pub fn spawn_sampler(
    config: CountersConfig,
    store: Arc<CounterStore>,
    cancel: CancellationToken,
) -> Result<JoinHandle<()>, CountersConfigError> {
    config.validate()?;
    Ok(tokio::spawn(run_sampler(config, store, cancel)))
}

async fn run_sampler(config: CountersConfig, store: Arc<CounterStore>, cancel: CancellationToken) {
    let client = match reqwest::Client::builder().no_proxy().build() {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "cannot build the HTTP client; task targets will fail");
            None
        }
    };
    let scrapers: Vec<JoinHandle<()>> = config
        .tasks
        .iter()
        .map(|target| {
            tokio::spawn(run_scraper(
                target.clone(),
                client.clone(),
                config.interval(),
                Arc::clone(&store),
                cancel.clone(),
            ))
        })
        .collect();
    let mut node = Some(NodeSampler::new(&config));
    let mut ticker = tokio::time::interval(config.interval());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let now = unix_ms();
        let runtime = RuntimeCounters::current();
        let mut sampler = node.take().unwrap_or_else(|| NodeSampler::new(&config));
        let blocking = tokio::task::spawn_blocking(move || {
            let sample = sampler.sample(now, runtime);
            (sampler, sample)
        });
        let sampled = tokio::select! {
            _ = cancel.cancelled() => break,
            sampled = blocking => sampled,
        };
        match sampled {
            Ok((sampler, sample)) => {
                node = Some(sampler);
                store.record_sample(sample);
            }
            // A panic in a source reader loses this node sample only; a fresh reader takes over.
            Err(e) => tracing::error!(error = %e, "counter sampling failed"),
        }
    }
    for scraper in scrapers {
        let _ = scraper.await;
    }
}

/// Scrapes one task target every `interval` (a scrape that overruns delays the next one) and
/// records each outcome as it arrives.
async fn run_scraper(
    target: TaskTarget,
    client: Option<reqwest::Client>,
    interval: std::time::Duration,
    store: Arc<CounterStore>,
    cancel: CancellationToken,
) {
    let source = scrape_source(target.kind);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let result = match &client {
            Some(c) => tokio::select! {
                _ = cancel.cancelled() => break,
                r = scrape(c, &target) => r.map(|(v, _)| v).map_err(|e| e.to_string()),
            },
            None => Err("no HTTP client".to_string()),
        };
        store.record_scrape(&target.name, source, result, unix_ms());
    }
}

/// The source name a scraped target is shown under.
pub fn scrape_source(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Auto => "http",
        TaskKind::Pprof => "pprof",
        TaskKind::Expvar => "expvar",
        TaskKind::Prometheus => "prometheus",
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
