//! The counters' history across a restart: `counters.json` in the data directory.
//!
//! Why a file of its own beside `state.json`: the state file commits what must agree exactly
//! (offsets and the counts they produced) every few seconds; the counter history is a
//! baseline, larger, and losing its last seconds costs nothing but those seconds. It is
//! written at its own low rate (`[counters] save_interval_ms`, 15 s by default, and once more
//! when the agent stops) through the one [`atomic_write`], and read once at start, before the
//! sampler's first sample (see `faultline_ingest::counters::saved` for what it holds and why).
//!
//! What is saved: the per-second points of the last `baseline_ms + search_ms` of the anomaly
//! detector (what it needs to judge a series again at once), and the minute points (the
//! counters page's 24 h view), of every series but the agent's own.
//!
//! Failures: a file that cannot be read or used (corrupt, a format this version does not
//! know, contradicting itself) is moved aside (`counters.json.unreadable-<unix time>`) and
//! the agent starts with an empty history, as before this file existed. A save that fails (a
//! full disk) is counted, shown as the `counter_history` component of health and on
//! `/metrics`, logged once when it starts failing, and tried again at the next interval.
//!
//! Execution model: [`run`] is one tokio task; the snapshot is taken under the store's lock
//! (a copy of the points), encoding and the write run on a blocking thread.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline_ingest::counters::{CounterStore, SavedCounters};
use faultline_web::{Component, ComponentState, HealthRegistry};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::atomic::{self, atomic_write, AtomicWriteError};
use super::CommitStatus;

/// File name of the counter history inside the data directory.
pub const COUNTERS_FILE: &str = "counters.json";

/// The file's content, by format version. New versions are added as new variants.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "format")]
enum CountersFile {
    /// Format 1.
    #[serde(rename = "1")]
    V1 {
        /// When it was written (Unix ms).
        saved_unix_ms: i64,
        /// The history and whose it was.
        counters: SavedCounters,
    },
}

/// How the saves are going: outcomes, and the size and cost of the last one that reached the
/// disk.
#[derive(Debug, Default)]
pub struct SaveStatus {
    /// Saves that reached the disk, saves that failed, and the last failure.
    pub outcomes: CommitStatus,
    /// Bytes of the last file written.
    pub bytes: AtomicU64,
    /// Microseconds the last save took: copy, encoding, write and fsyncs.
    pub micros: AtomicU64,
}

/// Restores the history a previous run saved in `dir` into `store`, as of `now_unix_ms`.
/// Returns what to tell the user: what was restored, or why nothing was (a file that cannot
/// be used is moved aside so the next save starts clean). No file: nothing to say.
pub fn load(dir: &Path, store: &CounterStore, now_unix_ms: i64) -> Vec<String> {
    let path = dir.join(COUNTERS_FILE);
    let mut notes = Vec::new();
    match atomic::remove_stale_temps(&path) {
        Ok(0) => {}
        Ok(n) => notes.push(format!(
            "removed {n} leftover temporary counter history file(s)"
        )),
        Err(err) => notes.push(format!(
            "cannot remove leftover temporary counter history files: {err}"
        )),
    }
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return notes,
        Err(err) => {
            notes.push(format!(
                "cannot read {}: {err}; the counters start without their history",
                path.display()
            ));
            return notes;
        }
    };
    let why = match serde_json::from_slice::<CountersFile>(&bytes) {
        Ok(CountersFile::V1 {
            saved_unix_ms,
            counters,
        }) => match store.restore(counters, now_unix_ms) {
            Ok(r) => {
                let mut note = format!(
                    "restored the counter history saved {} s ago: {} series, {} sample and {} \
                     minute points; the time the agent was down is a gap",
                    (now_unix_ms - saved_unix_ms).max(0) / 1000,
                    r.series,
                    r.sample_points,
                    r.minute_points
                );
                if r.unknown_series > 0 {
                    note.push_str(&format!(
                        " ({} series of a kind this version does not know left out)",
                        r.unknown_series
                    ));
                }
                notes.push(note);
                return notes;
            }
            Err(why) => why,
        },
        Err(err) => err.to_string(),
    };
    let secs = now_unix_ms.max(0) / 1000;
    let aside = dir.join(format!("{COUNTERS_FILE}.unreadable-{secs}"));
    match fs::rename(&path, &aside) {
        Ok(()) => notes.push(format!(
            "{} could not be used ({why}); moved to {}; the counters start without their \
             history",
            path.display(),
            aside.display()
        )),
        Err(err) => notes.push(format!(
            "{} could not be used ({why}) nor moved aside ({err}); the counters start \
             without their history",
            path.display()
        )),
    }
    notes
}

/// Writes the history of `store` to `dir` (the per-sample points of the last `seconds_ms`,
/// every minute point), atomically. Returns the bytes written.
pub fn save(
    dir: &Path,
    store: &CounterStore,
    seconds_ms: i64,
    now_unix_ms: i64,
) -> Result<usize, AtomicWriteError> {
    let path = dir.join(COUNTERS_FILE);
    let file = CountersFile::V1 {
        saved_unix_ms: now_unix_ms,
        counters: store.save(seconds_ms),
    };
    let bytes = serde_json::to_vec(&file).map_err(|e| AtomicWriteError {
        step: "serialise",
        path: path.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    atomic_write(&path, &bytes, None)?;
    Ok(bytes.len())
}

/// Saves the history of `store` to `dir` every `every` until `stop`, and once more then
/// (see the module documentation); `seconds_ms` of per-sample points each time.
pub async fn run(
    store: Arc<CounterStore>,
    dir: PathBuf,
    every: Duration,
    seconds_ms: i64,
    status: Arc<SaveStatus>,
    health: HealthRegistry,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = false;
    while !stopping {
        tokio::select! {
            _ = stop.cancelled() => stopping = true,
            _ = tick.tick() => {}
        }
        let (store, path) = (store.clone(), dir.clone());
        let job = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let outcome = save(&path, &store, seconds_ms, crate::persist::now_unix_ms());
            (outcome, started.elapsed())
        });
        let outcome = match job.await {
            Ok((Ok(bytes), took)) => {
                status.bytes.store(bytes as u64, Ordering::Relaxed);
                let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
                status.micros.store(micros, Ordering::Relaxed);
                Ok(())
            }
            Ok((Err(err), _)) => Err(err.to_string()),
            Err(err) => Err(format!("the save task failed: {err}")),
        };
        let was_failing = status.outcomes.failure().is_some();
        match &outcome {
            Ok(()) if was_failing => tracing::info!("the counter history is saved again"),
            Err(err) if !was_failing => tracing::warn!(
                "cannot save the counter history (kept in memory, retried every {every:?}): \
                 {err}"
            ),
            _ => {}
        }
        status.outcomes.record(outcome);
        health.set("counter_history", component(&dir, every, &status));
    }
}

/// The `counter_history` component of health.
fn component(dir: &Path, every: Duration, status: &SaveStatus) -> Component {
    let path = dir.join(COUNTERS_FILE);
    match status.outcomes.failure() {
        None => Component {
            state: ComponentState::Running,
            address: None,
            detail: Some(format!(
                "{} every {} s ({} bytes, {} ms to save)",
                path.display(),
                every.as_secs(),
                status.bytes.load(Ordering::Relaxed),
                status.micros.load(Ordering::Relaxed) / 1000
            )),
        },
        Some(why) => Component {
            state: ComponentState::Failing,
            address: None,
            detail: Some(format!(
                "{}: not saved (kept in memory, retrying): {why}",
                path.display()
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_ingest::counters::{CountersConfig, SnapshotOptions};

    /// A store with ten seconds of a few series (the node's own sockets, read for real).
    fn sampled() -> CounterStore {
        let config = CountersConfig::default();
        let store = CounterStore::new(&config);
        let mut sampler = faultline_ingest::counters::NodeSampler::new(&config);
        let now = crate::persist::now_unix_ms();
        for i in 0..10 {
            let sample = sampler.sample(now - 10_000 + i * 1000, None);
            store.record_port_owners(sampler.port_owners());
            store.record_sample(sample);
        }
        store
    }

    fn points(store: &CounterStore) -> usize {
        let h = store.snapshot(&SnapshotOptions::default()).history.unwrap();
        h.seconds.times_unix_ms.len()
    }

    #[test]
    fn the_history_comes_back_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = sampled();
        let bytes = save(dir.path(), &store, 60_000, crate::persist::now_unix_ms()).unwrap();
        assert!(bytes > 0);
        let next = CounterStore::new(&CountersConfig::default());
        let notes = load(dir.path(), &next, crate::persist::now_unix_ms());
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with("restored the counter history"),
            "{notes:?}"
        );
        assert_eq!(points(&next), 10);
        let key = faultline_series::SeriesKey::NodeState {
            state: faultline_series::SocketState::Listen,
        };
        let series = |s: &CounterStore| {
            s.snapshot(&SnapshotOptions::default())
                .history
                .unwrap()
                .seconds
                .series[&key]
                .clone()
        };
        assert_eq!(series(&next), series(&store));
    }

    /// A corrupt file, a format this version does not know and a file that contradicts
    /// itself are each moved aside; the agent starts with an empty history.
    #[test]
    fn an_unusable_file_is_moved_aside_and_the_counters_start_empty() {
        for content in [
            &b"{\"format\":\"1\",\"saved_unix_ms\":1,\"coun"[..],
            br#"{"format":"7","saved_unix_ms":1}"#,
            br#"{"format":"1","saved_unix_ms":1,"counters":{"version":"1",
                "second_times":[2000,1000],"minute_times":[],"series":[],"owners":[],
                "targets":[]}}"#,
        ] {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join(COUNTERS_FILE), content).unwrap();
            let store = CounterStore::new(&CountersConfig::default());
            let notes = load(dir.path(), &store, 5_000_000);
            assert_eq!(notes.len(), 1, "{notes:?}");
            assert!(notes[0].contains("moved to"), "{notes:?}");
            assert!(!dir.path().join(COUNTERS_FILE).exists());
            assert!(dir
                .path()
                .join(format!("{COUNTERS_FILE}.unreadable-5000"))
                .exists());
            assert_eq!(points(&store), 0);
        }
    }

    /// A save that cannot reach the disk is reported, and the old file stays.
    #[test]
    fn a_failed_save_is_an_error_and_the_previous_file_stays() {
        let dir = tempfile::tempdir().unwrap();
        let store = sampled();
        save(dir.path(), &store, 60_000, 1).unwrap();
        let before = fs::read(dir.path().join(COUNTERS_FILE)).unwrap();
        let gone = dir.path().join("gone");
        let err = save(&gone, &store, 60_000, 2).unwrap_err();
        assert_eq!(err.step, "create");
        assert_eq!(fs::read(dir.path().join(COUNTERS_FILE)).unwrap(), before);
    }
}
