//! The agent's durable state: one file, `state.json` in the data directory, holding together
//! what must agree after a crash — the tail offsets, the cluster store and the record
//! counters derived from the same lines.
//!
//! Why one file: "no line lost, none counted twice" across `kill -9` needs the offsets and
//! the counts they produced to be committed in one step. The pipeline task takes the
//! snapshot between two batches (so every acknowledged batch is in the counts and no
//! unacknowledged one is), and this module writes it atomically: write a temporary file,
//! fsync it, rename it over the old one, fsync the directory. A crash at any point leaves
//! either the old file or the new one, never a mix; lines after the stored offsets are read
//! again at the next start and were not in the stored counts.
//!
//! The format is a versioned enum so it can change safely.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use faultline_clustering::snapshot::Snapshot as ClusterSnapshot;
use faultline_ingest::tail::TailState;
use serde::{Deserialize, Serialize};

/// File name of the state inside the data directory.
pub const STATE_FILE: &str = "state.json";

/// Record counters that must be exact across restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
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

/// The durable state, by format version.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "format")]
pub enum AgentState {
    /// Format 1.
    V1 {
        /// Acknowledged offsets of every tailed file.
        tail: TailState,
        /// The cluster store.
        clustering: ClusterSnapshot,
        /// Record counters consistent with `tail`.
        totals: RecordTotals,
    },
}

/// Reads the state, `Ok(None)` when there is none yet. A file that cannot be parsed is moved
/// aside (`state.json.unreadable-<unix time>`) so the agent can start, and the move is
/// reported in the returned note.
pub fn load(dir: &Path) -> anyhow::Result<(Option<AgentState>, Option<String>)> {
    let path = dir.join(STATE_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok((None, None)),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    match serde_json::from_slice::<AgentState>(&bytes) {
        Ok(state) => Ok((Some(state), None)),
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
pub fn store(dir: &Path, state: &AgentState) -> anyhow::Result<()> {
    let path = dir.join(STATE_FILE);
    let tmp: PathBuf = dir.join(format!(".{STATE_FILE}.tmp-{}", std::process::id()));
    {
        let file =
            File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut writer = BufWriter::new(file);
        serde_json::to_writer(&mut writer, state).context("cannot serialise the agent state")?;
        writer
            .flush()
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        // Data on disk before the rename makes it visible: otherwise a crash could leave a
        // renamed but empty file.
        writer
            .get_ref()
            .sync_all()
            .with_context(|| format!("cannot fsync {}", tmp.display()))?;
    }
    fs::rename(&tmp, &path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
    // The rename itself is durable only once the directory entry is.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot fsync {}", dir.display()))?;
    Ok(())
}
