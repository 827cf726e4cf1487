//! The tailer's errors.

/// What can stop the tailer.
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
    /// The blocking worker of the tailer stopped unexpectedly.
    #[error("tailer worker stopped: {0}")]
    Worker(String),
}
