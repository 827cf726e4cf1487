//! Snapshots of the engine's state on disk: versioned, written atomically.
//!
//! The file is JSON of a versioned enum ([`Snapshot::V1`]), so a later format can be added as
//! `V2` and old files still read. Writing goes to a temporary file in the same directory,
//! which is fsynced, then renamed over the old snapshot, then the directory is fsynced: a
//! crash at any point leaves either the complete old snapshot or the complete new one,
//! never a torn file, because rename within one file system is atomic and the data reached
//! the disk before the rename did.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cluster::RootIndex;
use crate::engine::{EngineCounters, KeyStats, RootStats};

/// A snapshot file's content.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "version")]
pub enum Snapshot {
    /// Format 1.
    V1(SnapshotV1),
}

/// Format 1: template keys with their counters, roots with their statistics and cluster
/// labels.
#[derive(Debug, Serialize, Deserialize)]
pub struct SnapshotV1 {
    pub(crate) keys: Vec<KeySnapshot>,
    pub(crate) roots: Vec<RootSnapshot>,
    pub(crate) canonical: Vec<RootIndex>,
    pub(crate) counters: EngineCounters,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct KeySnapshot {
    pub(crate) shape: String,
    pub(crate) stats: KeyStats,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RootSnapshot {
    pub(crate) text: String,
    pub(crate) label: u32,
    pub(crate) stats: RootStats,
}

/// Why a snapshot could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The file system refused.
    #[error("snapshot {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a snapshot this version can read.
    #[error("snapshot is not readable: {0}")]
    Format(#[from] serde_json::Error),
    /// The file reads but contradicts itself.
    #[error("snapshot is corrupt: {0}")]
    Corrupt(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `snapshot` to `path` atomically (see the module documentation).
pub fn write_atomic(path: &Path, snapshot: &Snapshot) -> Result<(), SnapshotError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let file = File::create(&tmp).map_err(io(&tmp))?;
        let mut w = BufWriter::new(file);
        serde_json::to_writer(&mut w, snapshot)?;
        w.flush().map_err(io(&tmp))?;
        w.get_ref().sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io(path))?;
    // The rename is durable only once the directory entry is on disk.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads a snapshot written by [`write_atomic`].
pub fn read(path: &Path) -> Result<Snapshot, SnapshotError> {
    let bytes = fs::read(path).map_err(io(path))?;
    Ok(serde_json::from_slice(&bytes)?)
}
