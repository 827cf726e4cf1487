//! Where a leaking service's goroutines wait: its goroutine dump read while an incident counts
//! them climbing.
//!
//! The task sampler reads only a goroutine *count* once a second (the first line of a pprof
//! `debug=1` page, cheap on purpose). When an active incident lists a rising goroutine count,
//! this task reads that service's dump with stacks (pprof `debug=2`, the `goroutine_url` of
//! its facts) and keeps the largest group of goroutines sharing a stack
//! ([`faultline_ingest::counters::stacks::top_stack`]); the next diagnosis shows it as
//! evidence of the goroutine-leak hint: "950 of 958 goroutines wait in [chan send] at
//! main.leak.func1 (main.go:13)".
//!
//! Execution model: one tokio task, waking every [`CHECK_EVERY`]; a dump is read at most once
//! per [`READ_EVERY`] per service, with a [`READ_TIMEOUT`] and at most [`MAX_DUMP_BYTES`] of
//! body (a larger dump is parsed as far as it was read, and the answer says it was cut). A dump
//! that cannot be read leaves the last one in place and is logged once per failure streak.
//! Entries older than [`KEEP_FOR`] are dropped.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use faultline_diagnosis::incident::task_owner;
use faultline_ingest::counters::stacks::top_stack;
use faultline_series::SeriesKey;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::diagnosis::IncidentBoard;

/// How often the incidents are looked at.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);
/// The least time between two reads of one service's dump.
pub const READ_EVERY: Duration = Duration::from_secs(15);
/// How long a read may take.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The most bytes of a dump read (a `debug=2` dump of 100,000 goroutines is ~30 MiB).
pub const MAX_DUMP_BYTES: usize = 8 * 1024 * 1024;
/// How long a stack read stays shown.
pub const KEEP_FOR: Duration = Duration::from_secs(600);

/// The latest top stack per service, read by the diagnosis.
#[derive(Debug, Default)]
pub struct StackBoard {
    latest: RwLock<BTreeMap<String, (Instant, String)>>,
}

impl StackBoard {
    /// The description of where the service's goroutines waited when last read, with the time
    /// it was read; none when it was not read (or too long ago).
    pub fn get(&self, service: &str) -> Option<String> {
        let latest = self.latest.read().unwrap_or_else(|p| p.into_inner());
        latest
            .get(service)
            .filter(|(at, _)| at.elapsed() < KEEP_FOR)
            .map(|(_, text)| text.clone())
    }

    fn set(&self, service: &str, text: String) {
        let mut latest = self.latest.write().unwrap_or_else(|p| p.into_inner());
        latest.retain(|_, (at, _)| at.elapsed() < KEEP_FOR);
        latest.insert(service.to_owned(), (Instant::now(), text));
    }
}

/// The services whose goroutine count rises in an active incident, with their dump URL.
pub fn wanted(board: &IncidentBoard) -> Vec<(String, String)> {
    let doc = board.incidents();
    let facts = board.facts();
    let mut out: Vec<(String, String)> = Vec::new();
    for inc in doc.incidents.iter().filter(|i| i.active) {
        for c in inc.counters.iter().filter(|c| c.anomaly.active) {
            let SeriesKey::Task { target, .. } = &c.anomaly.key else {
                continue;
            };
            let name = task_owner(target, &facts.services);
            let service = facts.services.iter().find(|s| s.service == name);
            if let Some((name, url)) =
                service.and_then(|s| s.goroutine_url.as_ref().map(|u| (&s.service, u)))
            {
                if !out.iter().any(|(n, _)| n == name) {
                    out.push((name.clone(), url.clone()));
                }
            }
        }
    }
    out
}

/// Reads the dumps the incidents want until `stop`.
pub async fn run(board: Arc<IncidentBoard>, stacks: Arc<StackBoard>, stop: CancellationToken) {
    let client = match reqwest::Client::builder()
        .no_proxy()
        .timeout(READ_TIMEOUT)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot build the HTTP client; goroutine stacks will not be read");
            return;
        }
    };
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_read: BTreeMap<String, Instant> = BTreeMap::new();
    let mut failing: BTreeMap<String, bool> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        for (service, url) in wanted(&board) {
            if last_read
                .get(&service)
                .is_some_and(|at| at.elapsed() < READ_EVERY)
            {
                continue;
            }
            last_read.insert(service.clone(), Instant::now());
            let read = tokio::select! {
                _ = stop.cancelled() => return,
                r = read_dump(&client, &url) => r,
            };
            match read {
                Ok((page, cut)) => {
                    failing.remove(&service);
                    if let Some(top) = top_stack(&page) {
                        let at = faultline_diagnosis::clock(unix_ms());
                        let cut = if cut {
                            format!(", the first {} MiB of it", MAX_DUMP_BYTES >> 20)
                        } else {
                            String::new()
                        };
                        stacks.set(
                            &service,
                            format!("{} (goroutine dump read at {at}{cut})", top.describe()),
                        );
                    }
                }
                Err(e) => {
                    if !failing.insert(service.clone(), true).unwrap_or(false) {
                        tracing::warn!(%service, %url, error = %e, "cannot read the goroutine dump");
                    }
                }
            }
        }
        last_read.retain(|_, at| at.elapsed() < KEEP_FOR);
    }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The dump's text, at most [`MAX_DUMP_BYTES`] of it, and whether it was cut there.
async fn read_dump(client: &reqwest::Client, url: &str) -> Result<(String, bool), String> {
    let mut response = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP status {}", response.status().as_u16()));
    }
    let mut body: Vec<u8> = Vec::new();
    let mut cut = false;
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        let room = MAX_DUMP_BYTES.saturating_sub(body.len());
        cut = chunk.len() > room;
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if cut {
            break;
        }
    }
    Ok((String::from_utf8_lossy(&body).into_owned(), cut))
}
