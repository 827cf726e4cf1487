//! The agent's durable state: one file, `state.json` in the data directory, holding together
//! what must agree after a crash — the tail offsets, the cluster store and the record
//! counters derived from the same lines.
//!
//! Why one file: "no line lost, none counted twice" across `kill -9` needs the offsets and
//! the counts they produced to be committed in one step. The pipeline task takes the
//! snapshot between two batches (so every acknowledged batch is in the counts and no
//! unacknowledged one is), and [`atomic::atomic_write`] replaces the file: a crash at any
//! point leaves either the old file or the new one, never a mix; lines after the stored
//! offsets are read again at the next start and were not in the stored counts.
//!
//! Two generations are kept (`state.json` and `state.prev.json`): a current file that is
//! found unreadable or inconsistent at start is set aside and the previous one used, so a
//! broken file costs the lines since the previous commit (read again), not every count.
//!
//! The format is a versioned enum of structs of its own ([`StateFile`]); the parts that
//! libraries own (tail offsets, cluster store) are their own versioned values, so a change
//! of an in-memory type never changes the file silently.
//!
//! Beside it, [`counters`] keeps the counters' history (`counters.bin` and
//! `counters-minutes.log`) across a restart, at a rate of its own: a baseline, not something
//! that must agree with the counts.

pub mod atomic;
pub mod counters;

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use anyhow::Context;
use faultline_clustering::snapshot::Snapshot as ClusterSnapshot;
use faultline_clustering::{ClusteringConfig, Engine};
use faultline_ingest::tail::TailState;
use serde::{Deserialize, Serialize};

use self::atomic::atomic_write;

/// File name of the state inside the data directory.
pub const STATE_FILE: &str = "state.json";

/// File name of the previous generation: the state before the last commit, used when the
/// current file cannot be (a disk error, a bad edit, a bug of an older version).
pub const PREVIOUS_FILE: &str = "state.prev.json";

/// Record counters that must be exact across restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordTotals {
    /// Records read from tailed files.
    pub file_records: u64,
    /// OTLP log records and error spans taken from the receivers.
    pub otlp_records: u64,
    /// Records of either origin judged error-ish and clustered.
    pub error_records: u64,
    /// Records cut because their line was longer than `tail.max_line_bytes`.
    pub truncated_records: u64,
}

/// The durable state, as the agent uses it.
#[derive(Debug)]
pub struct AgentState {
    /// Acknowledged offsets of every tailed file.
    pub tail: TailState,
    /// The cluster store.
    pub clustering: ClusterSnapshot,
    /// Record counters consistent with `tail`.
    pub totals: RecordTotals,
}

/// The file's content, by format version. New versions are added as new variants; old ones
/// keep loading.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "format")]
enum StateFile {
    /// Format 1.
    V1 {
        tail: TailState,
        clustering: ClusterSnapshot,
        totals: TotalsV1,
    },
}

/// Format 1 of the record counters.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct TotalsV1 {
    file_records: u64,
    otlp_records: u64,
    error_records: u64,
    truncated_records: u64,
}

impl From<StateFile> for AgentState {
    fn from(file: StateFile) -> Self {
        match file {
            StateFile::V1 {
                tail,
                clustering,
                totals,
            } => AgentState {
                tail,
                clustering,
                totals: RecordTotals {
                    file_records: totals.file_records,
                    otlp_records: totals.otlp_records,
                    error_records: totals.error_records,
                    truncated_records: totals.truncated_records,
                },
            },
        }
    }
}

impl From<AgentState> for StateFile {
    fn from(state: AgentState) -> Self {
        let t = state.totals;
        StateFile::V1 {
            tail: state.tail,
            clustering: state.clustering,
            totals: TotalsV1 {
                file_records: t.file_records,
                otlp_records: t.otlp_records,
                error_records: t.error_records,
                truncated_records: t.truncated_records,
            },
        }
    }
}

/// How a stored state is judged before it is used: the caller builds what it needs from it
/// (the cluster store, ...) and says why it cannot, so that a file that parses but contradicts
/// itself is set aside like one that does not parse.
pub type Accept<'a, T> = dyn FnMut(AgentState) -> Result<T, String> + 'a;

/// Reads the newest usable state: `state.json`, else the previous generation
/// `state.prev.json`; `Ok(None)` when there is none (the very first start). A file that
/// cannot be parsed, or that `accept` refuses, is moved aside
/// (`<name>.unreadable-<unix time>`) so the agent can start, and every move is reported in
/// the returned notes. Temporary files a crashed run left behind are removed.
pub fn load<T>(dir: &Path, accept: &mut Accept<'_, T>) -> anyhow::Result<(Option<T>, Vec<String>)> {
    let mut notes = Vec::new();
    let path = dir.join(STATE_FILE);
    match atomic::remove_stale_temps(&path) {
        Ok(0) => {}
        Ok(n) => notes.push(format!("removed {n} leftover temporary state file(s)")),
        Err(err) => notes.push(format!(
            "cannot remove leftover temporary state files: {err}"
        )),
    }
    for name in [STATE_FILE, PREVIOUS_FILE] {
        let path = dir.join(name);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
        };
        let why = match serde_json::from_slice::<StateFile>(&bytes) {
            Ok(state) => match accept(state.into()) {
                Ok(value) => {
                    if name == PREVIOUS_FILE {
                        notes.push(format!(
                            "starting from the previous generation {}: lines read since it \
                             was written are read again",
                            path.display()
                        ));
                    }
                    return Ok((Some(value), notes));
                }
                Err(why) => why,
            },
            Err(err) => err.to_string(),
        };
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let aside = dir.join(format!("{name}.unreadable-{secs}"));
        fs::rename(&path, &aside)
            .with_context(|| format!("cannot move the unreadable {} aside", path.display()))?;
        notes.push(format!(
            "{} could not be used ({why}); moved to {}",
            path.display(),
            aside.display()
        ));
    }
    if !notes.is_empty() {
        notes.push("no usable state: starting as on a first start".into());
    }
    Ok((None, notes))
}

/// Judges a stored state as a start does and builds what the agent resumes from: the tail
/// offsets, the cluster store and the record totals. Refused (with the reason, for
/// [`load`] to set the file aside) when its totals contradict each other or its cluster
/// store cannot be restored.
pub fn restore(
    state: AgentState,
    clustering: &ClusteringConfig,
) -> Result<(TailState, Engine, RecordTotals), String> {
    let t = state.totals;
    let records = t.file_records.saturating_add(t.otlp_records);
    if t.error_records > records || t.truncated_records > records {
        return Err(format!(
            "its record totals contradict each other ({} error and {} truncated records of \
             {records})",
            t.error_records, t.truncated_records
        ));
    }
    let engine = Engine::from_snapshot(state.clustering, clustering.clone())
        .map_err(|e| format!("its cluster store cannot be restored: {e}"))?;
    Ok((state.tail, engine, state.totals))
}

/// Writes the state atomically (see the module documentation), keeping the generation it
/// replaces as `state.prev.json`.
pub fn store(dir: &Path, state: AgentState) -> Result<(), atomic::AtomicWriteError> {
    let bytes =
        serde_json::to_vec(&StateFile::from(state)).map_err(|e| atomic::AtomicWriteError {
            step: "serialise",
            path: dir.join(STATE_FILE),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?;
    atomic_write(
        &dir.join(STATE_FILE),
        &bytes,
        Some(&dir.join(PREVIOUS_FILE)),
    )
}

/// The wall clock in Unix milliseconds (0 before 1970).
pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Whether the state reaches the disk: written by the pipeline at every commit, read by
/// health and `/metrics`.
#[derive(Debug, Default)]
pub struct CommitStatus {
    /// Commits that reached the disk.
    pub commits: AtomicU64,
    /// Commits that failed (each retried at the next tick).
    pub failures: AtomicU64,
    /// The last commit failed: state is kept in memory only until a commit succeeds.
    pub failing: AtomicBool,
    /// The last failure, in words.
    pub last_error: Mutex<Option<String>>,
}

impl CommitStatus {
    /// Records the outcome of one commit.
    pub fn record(&self, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                self.failing.store(false, Ordering::Relaxed);
            }
            Err(why) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                self.failing.store(true, Ordering::Relaxed);
                *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
            }
        }
    }

    /// The last failure while the state is failing to persist, `None` while it persists.
    pub fn failure(&self) -> Option<String> {
        if !self.failing.load(Ordering::Relaxed) {
            return None;
        }
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(file_records: u64) -> AgentState {
        AgentState {
            tail: TailState::default(),
            clustering: faultline_clustering::Engine::new(Default::default()).snapshot(),
            totals: RecordTotals {
                file_records,
                ..RecordTotals::default()
            },
        }
    }

    fn accept_all(state: AgentState) -> Result<AgentState, String> {
        Ok(state)
    }

    #[test]
    fn a_refused_current_state_falls_back_to_the_previous_generation() {
        let dir = tempfile::tempdir().unwrap();
        store(dir.path(), state(1)).unwrap();
        store(dir.path(), state(2)).unwrap();
        let (loaded, notes) = load(dir.path(), &mut accept_all).unwrap();
        assert_eq!(loaded.unwrap().totals.file_records, 2);
        assert!(notes.is_empty(), "{notes:?}");
        // Valid JSON, refused by its reader (inconsistent content): set aside, the previous
        // generation is used.
        let mut refuse_two = |s: AgentState| {
            if s.totals.file_records == 2 {
                Err("contradicts itself".to_string())
            } else {
                Ok(s)
            }
        };
        let (loaded, notes) = load(dir.path(), &mut refuse_two).unwrap();
        assert_eq!(loaded.unwrap().totals.file_records, 1);
        assert!(notes[0].contains("contradicts itself"), "{notes:?}");
        assert!(notes[1].contains("previous generation"), "{notes:?}");
        let aside = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("state.json.unreadable-")
            })
            .count();
        assert_eq!(aside, 1);
    }

    #[test]
    fn unparsable_files_are_set_aside_and_the_agent_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(STATE_FILE), b"{\"format\":\"V1\"").unwrap();
        fs::write(dir.path().join(PREVIOUS_FILE), b"[]").unwrap();
        fs::write(dir.path().join(".state.json.tmp-1-2"), b"partial").unwrap();
        let (loaded, notes) = load(dir.path(), &mut accept_all).unwrap();
        assert!(loaded.is_none());
        assert_eq!(notes.len(), 4, "{notes:?}");
        assert!(!dir.path().join(".state.json.tmp-1-2").exists());
        assert!(!dir.path().join(STATE_FILE).exists());
    }
}
