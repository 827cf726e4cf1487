//! File tailing: follow service log files through rotation, truncation and restarts, and hand
//! their records over without losing or repeating a line.
//!
//! The pieces, one per file: [`config`] (sources and knobs), [`fingerprint`] (which file is
//! this, whatever its name), [`checkpointer`] (the versioned format of the offsets), `file`
//! (reading one file into lines and records), [`ack`] (batches and their acknowledgement),
//! [`stats`], `tailer` (the synchronous state machine), [`watcher`] (the async task with
//! file-system events and a polling fallback) and [`replay`] (whole files once, for
//! `faultline replay`).
//!
//! # Delivery guarantee
//!
//! Offsets reach [`TailerHandle::checkpoint_state`] only when the consumer acknowledges the
//! batch that carried the lines before them ([`Batch::ack`]). The tailer writes no file of its
//! own: **exactly once** needs the consumer's state and the offsets to be committed together,
//! so after acknowledging every batch it processed, the consumer stores
//! [`TailerHandle::checkpoint_state`] inside the same atomic snapshot as the state derived
//! from those batches (counts, clusters), and passes the stored state to [`spawn`] at the
//! next start. Then every line is counted once: lines after the snapshot are read again and
//! were not in the snapshot's counts; lines before it are not read again.
//!
//! Lines that were never read cannot be delivered: a file written and deleted (or truncated)
//! before the tailer saw its content, or the part of a file that copytruncate's copy misses
//! because the writer wrote between the copy and the truncation.
//!
//! A last line without its newline is not handed over while the file is live (the writer
//! may be in the middle of it); it is when the file is let go (rotated away and drained) or
//! its content is truncated away.
//!
//! Rotations handled: rename + create (the renamed file is read to its end, also after a
//! restart, by finding its inode in the same directory), copytruncate (the copy is recognised
//! by its first bytes and read from the old offset), delete + recreate, truncation in place.

pub mod ack;
pub mod checkpointer;
pub mod config;
mod error;
mod file;
pub mod fingerprint;
pub mod replay;
pub mod stats;
mod tailer;
pub mod watcher;

pub use ack::{AckToken, Batch};
pub use checkpointer::{FileCheckpoint, TailState};
pub use config::{LogSource, StartAt, TailConfig};
pub use error::TailError;
pub use replay::{replay_file, ReplaySummary};
pub use stats::{FileStats, TailStats};
pub use tailer::Tailer;
pub use watcher::{spawn, TailerHandle};
