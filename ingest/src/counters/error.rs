//! Why a counter source could not be read.
//!
//! None of these stop the agent: the sampler records them as the status of the source
//! ([`super::store::SourceStatus`]) and goes on with the next source or the next tick.

use std::path::PathBuf;

use thiserror::Error;

/// A counter source that failed for this sample.
#[derive(Debug, Error)]
pub enum CounterError {
    /// The netlink `sock_diag` socket could not be opened or answered with an error.
    #[error("netlink sock_diag: {0}")]
    Netlink(#[source] std::io::Error),
    /// The kernel sent a netlink message that does not decode.
    #[error("netlink sock_diag: malformed answer: {0}")]
    NetlinkMalformed(String),
    /// A file under /proc could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The reason.
        #[source]
        source: std::io::Error,
    },
    /// A file under /proc does not have the expected layout.
    #[error("{path}: unexpected format: {why}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What did not fit.
        why: String,
    },
    /// A process target matches no running process.
    #[error("no process matches {0}")]
    NoProcess(String),
    /// A task target could not be scraped.
    #[error("{0}")]
    Scrape(String),
    /// A sampler task stopped unexpectedly.
    #[error("sampler worker failed: {0}")]
    Worker(String),
}
