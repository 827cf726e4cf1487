//! The tailer's errors.

use std::path::PathBuf;

/// What can stop the tailer or its checkpointing.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// A source's glob cannot be read.
    #[error("logs path {pattern:?} is not a valid glob: {message}")]
    BadGlob {
        /// The glob as configured.
        pattern: String,
        /// Why it is invalid.
        message: String,
    },
    /// The checkpoint file cannot be read or written.
    #[error("checkpoint file {path}: {source}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The checkpoint file exists but is not a checkpoint this version can read.
    #[error("checkpoint file {path} cannot be read: {message}")]
    CorruptCheckpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// The decoding error.
        message: String,
    },
    /// The blocking worker of the tailer stopped unexpectedly.
    #[error("tailer worker stopped: {0}")]
    Worker(String),
}
