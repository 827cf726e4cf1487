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
//! The format is a versioned enum of structs of its own ([`StateFile`]); the parts that
//! libraries own (tail offsets, cluster store) are their own versioned values, so a change
//! of an in-memory type never changes the file silently.

pub mod atomic;

use std::fs;
use std::path::Path;

use anyhow::Context;
use faultline_clustering::snapshot::Snapshot as ClusterSnapshot;
use faultline_ingest::tail::TailState;
use serde::{Deserialize, Serialize};

use self::atomic::atomic_write;

/// File name of the state inside the data directory.
pub const STATE_FILE: &str = "state.json";

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

/// Reads the state, `Ok(None)` when there is none yet. A file that cannot be parsed is moved
/// aside (`state.json.unreadable-<unix time>`) so the agent can start, and the move is
/// reported in the returned note. Temporary files a crashed run left behind are removed.
pub fn load(dir: &Path) -> anyhow::Result<(Option<AgentState>, Option<String>)> {
    let path = dir.join(STATE_FILE);
    if let Err(err) = atomic::remove_stale_temps(&path) {
        tracing::warn!("cannot remove leftover temporary state files: {err}");
    }
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok((None, None)),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    match serde_json::from_slice::<StateFile>(&bytes) {
        Ok(state) => Ok((Some(state.into()), None)),
        Err(err) => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let aside = dir.join(format!("{STATE_FILE}.unreadable-{secs}"));
            fs::rename(&path, &aside)
                .with_context(|| format!("cannot move the unreadable {} aside", path.display()))?;
            let note = format!(
                "{} could not be read ({err}); moved to {} and starting with empty state",
                path.display(),
                aside.display()
            );
            Ok((None, Some(note)))
        }
    }
}

/// Writes the state atomically (see the module documentation).
pub fn store(dir: &Path, state: AgentState) -> anyhow::Result<()> {
    let bytes =
        serde_json::to_vec(&StateFile::from(state)).context("cannot serialise the agent state")?;
    atomic_write(&dir.join(STATE_FILE), &bytes)?;
    Ok(())
}
