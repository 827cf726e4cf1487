//! Checkpoints: where each file was read up to, on disk.
//!
//! The state is a versioned enum (`{"version":1,...}`) so a later format can be added beside
//! it and old files still load. An offset in it is always an *acknowledged* offset: the lines
//! before it were handed to the pipeline and the pipeline said it processed them.
//!
//! Writing is atomic: the new state goes to a temporary file in the same directory, which is
//! fsynced, then renamed over the old file, then the directory is fsynced. `rename(2)` within
//! one file system replaces the name atomically, so after a crash at any instant the file
//! holds either the complete old state or the complete new one, never a torn mix; the first
//! fsync makes sure the renamed file has its data (otherwise a crash could leave the new name
//! pointing to an empty file), the directory fsync makes the rename itself durable.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::fingerprint::{FileId, Head};
use super::TailError;

/// One file's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCheckpoint {
    /// Device and inode when last seen.
    pub id: FileId,
    /// Checksum of the file's first bytes.
    pub head: Head,
    /// Acknowledged byte offset: every line before it has been processed.
    pub offset: u64,
    /// The path it was last seen at (used to search its directory after a rotation).
    pub path: String,
}

/// Every file's checkpoint: what the tailer resumes from. Serialises as the versioned on-disk
/// format, so it can be stored inside another snapshot (see the module `tail` docs).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(into = "Versioned", from = "Versioned")]
pub struct TailState {
    /// One entry per file still of interest.
    pub files: Vec<FileCheckpoint>,
}

/// The on-disk format. New versions are added as new variants.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "version")]
enum Versioned {
    #[serde(rename = "1")]
    V1 { files: Vec<FileCheckpoint> },
}

impl From<TailState> for Versioned {
    fn from(state: TailState) -> Self {
        Versioned::V1 { files: state.files }
    }
}

impl From<Versioned> for TailState {
    fn from(v: Versioned) -> Self {
        match v {
            Versioned::V1 { files } => TailState { files },
        }
    }
}

/// Reads the state at `path`; `Ok(None)` when there is no file yet (the very first start).
pub fn load(path: &Path) -> Result<Option<TailState>, TailError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(TailError::Checkpoint {
                path: path.into(),
                source,
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| TailError::CorruptCheckpoint {
            path: path.into(),
            message: e.to_string(),
        })
}

/// Writes `state` to `path` atomically (see the module docs for why this survives a crash).
pub fn store(path: &Path, state: &TailState) -> Result<(), TailError> {
    let err = |source| TailError::Checkpoint {
        path: path.into(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(err)?;
    let bytes = serde_json::to_vec(state)
        .map_err(|e| err(io::Error::new(io::ErrorKind::InvalidData, e)))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut file = File::create(&tmp).map_err(err)?;
        file.write_all(&bytes).map_err(err)?;
        file.sync_all().map_err(err)?;
    }
    fs::rename(&tmp, path).map_err(err)?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version_tag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/tail.json");
        assert_eq!(load(&path).unwrap(), None);
        let state = TailState {
            files: vec![FileCheckpoint {
                id: FileId {
                    dev: 1,
                    ino: 2,
                    born: Some(7),
                },
                head: Head { len: 3, hash: 4 },
                offset: 5,
                path: "/var/log/a.log".into(),
            }],
        };
        store(&path, &state).unwrap();
        assert_eq!(load(&path).unwrap(), Some(state.clone()));
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(r#"{"version":"1""#), "{text}");
        fs::write(&path, b"{\"version\":\"9\"}").unwrap();
        assert!(matches!(
            load(&path),
            Err(TailError::CorruptCheckpoint { .. })
        ));
    }
}
