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
//! Rotations handled, at any rate and any number of them between two commits: rename +
//! create (the renamed file is read to its end by its open descriptor; after a restart it is
//! found by its inode in the same directory, whatever its new name), copytruncate (the copy
//! is recognised by its first bytes and read from the old offset), delete + recreate,
//! truncation in place. After a restart, a file of the same directory that no glob matches
//! (any name but a compressed one), that the state does not know and that was born after
//! the scan preceding the stored state is a generation created and rotated away since: it is
//! read from its beginning to its end. While running, the same holds for a generation that
//! came and left a globbed name between two scans (made, copytruncated and renamed away
//! within one `glob_interval_ms`): a file of a glob's directory born since the previous scan
//! whose name is a globbed name, a separator (`.`, `-`, `_`) and anything (`app.log.3`,
//! `app.log-20261206`, `app.log.2026-12-06`, `app.log.old`), and that is no byte copy of a
//! file being read, is read from its beginning; other files born there (`notes.txt`,
//! `other.1`, `app.logs.1`) are not. By name and birth alone such a generation cannot be told
//! from a new file named like one (`app.log.bak` written by hand beside the log): that one is
//! read too. A generation the state names that
//! is gone (deleted, or compressed) with lines not yet read is counted in
//! [`TailStats::lost_files`] and logged: those lines cannot be read by anyone.
//!
//! Files let go (read to the end after leaving the globs or becoming unreadable, then idle
//! for `rotated_grace_ms`) are remembered with their offset for [`REMEMBER_RELEASED`] (at
//! most [`MAX_REMEMBERED`] of them, in the state): one that comes back resumes there instead
//! of being read again.
//!
//! Runs of NUL bytes (the hole copytruncate leaves before a writer without `O_APPEND`) are
//! skipped and counted ([`TailStats::nul_skipped_bytes`]); the lines after them are read.
//! A source whose directory cannot be read, or one of whose files cannot be opened, says so
//! in [`TailStats::sources`], and is looked at again on a timer of its own (1 s, doubling up
//! to 30 s while it stays unreadable), not only when a file-system event comes: its becoming
//! readable may raise none (an ACL or mode changed on a directory above, a symbolic link's
//! target, a mount).

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

pub use ack::{AckToken, Batch, MAX_REMEMBERED, REMEMBER_RELEASED};
pub use checkpointer::{FileCheckpoint, TailState};
pub use config::{LogSource, StartAt, TailConfig};
pub use error::TailError;
pub use replay::{replay_file, ReplaySummary};
pub use stats::{FileStats, SourceStats, TailStats};
pub use tailer::Tailer;
pub use watcher::{spawn, TailerHandle};
