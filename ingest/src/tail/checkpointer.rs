//! Checkpoints: where each file was read up to, and the versioned format they are stored in.
//!
//! The tailer does no file I/O for its checkpoints: the consumer stores
//! [`TailState`] inside its own atomic snapshot, together with the state derived from the
//! same lines (see the `tail` module docs), and passes it back at the next start. This
//! module owns only the format.
//!
//! The state serialises as a versioned enum (`{"version":"1","files":[...]}`) of structs that
//! belong to the format alone, so a change of the tailer's in-memory types ([`FileId`],
//! [`Head`]) cannot change the stored format silently, and a later format can be added
//! beside it while old files still load. An offset in it is always an *acknowledged* offset:
//! the lines before it were handed to the pipeline and the pipeline said it processed them.

use serde::{Deserialize, Serialize};

use super::fingerprint::{FileId, Head};

/// One file's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCheckpoint {
    /// Device and inode when last seen.
    pub id: FileId,
    /// Checksum of the file's first bytes.
    pub head: Head,
    /// Acknowledged byte offset: every line before it has been processed.
    pub offset: u64,
    /// The path it was last seen at (used to search its directory after a rotation).
    pub path: String,
    /// Its size when last looked at (`None` in states of older versions): tells after a
    /// restart whether a generation that is gone still had unread lines.
    pub size: Option<u64>,
    /// Set when the file was read to its end and let go (Unix seconds): it is no longer
    /// tailed, only remembered, so that it resumes at `offset` instead of being read again
    /// if it comes back (see [`REMEMBER_RELEASED`](super::REMEMBER_RELEASED)).
    pub released_unix_secs: Option<u64>,
}

/// Every file's checkpoint: what the tailer resumes from. Serialises as the versioned on-disk
/// format, so it can be stored inside another snapshot (see the module `tail` docs).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(into = "Versioned", from = "Versioned")]
pub struct TailState {
    /// One entry per file still of interest (tailed, or let go and remembered).
    pub files: Vec<FileCheckpoint>,
    /// When the scan that preceded this state began (Unix nanoseconds): a file born after it
    /// cannot be in the state, so after a crash such a file is read from its beginning even
    /// when it was renamed out of the globs meanwhile.
    pub scanned_unix_nanos: Option<i64>,
}

/// The on-disk format. New versions are added as new variants; fields added to a version
/// later are optional, so files written before them still load.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "version")]
enum Versioned {
    #[serde(rename = "1")]
    V1 {
        files: Vec<FileV1>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scanned_unix_nanos: Option<i64>,
    },
}

/// Format 1 of one file's checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileV1 {
    id: IdV1,
    head: HeadV1,
    offset: u64,
    path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    released: Option<u64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct IdV1 {
    dev: u64,
    ino: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    born: Option<u64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct HeadV1 {
    /// Written only when not 0 (a leading hole), added to format 1 later.
    #[serde(default, skip_serializing_if = "is_zero")]
    start: u64,
    len: u64,
    hash: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl From<TailState> for Versioned {
    fn from(state: TailState) -> Self {
        Versioned::V1 {
            files: state
                .files
                .into_iter()
                .map(|f| FileV1 {
                    id: IdV1 {
                        dev: f.id.dev,
                        ino: f.id.ino,
                        born: f.id.born,
                    },
                    head: HeadV1 {
                        start: f.head.start,
                        len: f.head.len,
                        hash: f.head.hash,
                    },
                    offset: f.offset,
                    path: f.path,
                    size: f.size,
                    released: f.released_unix_secs,
                })
                .collect(),
            scanned_unix_nanos: state.scanned_unix_nanos,
        }
    }
}

impl From<Versioned> for TailState {
    fn from(v: Versioned) -> Self {
        match v {
            Versioned::V1 {
                files,
                scanned_unix_nanos,
            } => TailState {
                scanned_unix_nanos,
                files: files
                    .into_iter()
                    .map(|f| FileCheckpoint {
                        id: FileId {
                            dev: f.id.dev,
                            ino: f.id.ino,
                            born: f.id.born,
                        },
                        head: Head {
                            start: f.head.start,
                            len: f.head.len,
                            hash: f.head.hash,
                        },
                        offset: f.offset,
                        path: f.path,
                        size: f.size,
                        released_unix_secs: f.released,
                    })
                    .collect(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version_tag() {
        let state = TailState {
            files: vec![FileCheckpoint {
                id: FileId {
                    dev: 1,
                    ino: 2,
                    born: Some(7),
                },
                head: Head {
                    start: 0,
                    len: 3,
                    hash: 4,
                },
                offset: 5,
                path: "/var/log/a.log".into(),
                size: None,
                released_unix_secs: None,
            }],
            scanned_unix_nanos: None,
        };
        let text = serde_json::to_string(&state).unwrap();
        assert_eq!(
            text,
            r#"{"version":"1","files":[{"id":{"dev":1,"ino":2,"born":7},"head":{"len":3,"hash":4},"offset":5,"path":"/var/log/a.log"}]}"#
        );
        assert_eq!(serde_json::from_str::<TailState>(&text).unwrap(), state);
        assert!(serde_json::from_str::<TailState>(r#"{"version":"9"}"#).is_err());
        // Fields added to format 1 later are written when set.
        let mut later = state.clone();
        later.files[0].size = Some(9);
        later.files[0].released_unix_secs = Some(11);
        later.scanned_unix_nanos = Some(12);
        let text = serde_json::to_string(&later).unwrap();
        assert!(text.contains(r#""size":9,"released":11"#), "{text}");
        assert_eq!(serde_json::from_str::<TailState>(&text).unwrap(), later);
    }
}
