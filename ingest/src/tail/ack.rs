//! Batches and acknowledgements: how a checkpoint learns that lines were processed.
//!
//! The tailer hands records over in [`Batch`]es. Each batch carries, per file it read from,
//! the offset up to which that file is complete once the batch is processed. The consumer
//! calls [`Batch::ack`] (or [`AckToken::ack`]) after it has processed the batch; only then do
//! the offsets reach the checkpoint. A batch dropped without an ack leaves the checkpoint
//! where it was, so after a restart its lines are read and delivered again.
//!
//! Acknowledge in the order batches were received: an ack stands for everything before it in
//! the same file (offsets only move forward), exactly like a Kafka commit.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::checkpointer::{FileCheckpoint, TailState};
use super::fingerprint::{FileId, Head};
use super::stats::{FileStats, TailStats};
use crate::record::LogRecord;

/// One reading of one file: a new stream starts when a file is opened or restarts at 0 after
/// a truncation, so that late acks of the old content cannot move the new content's offset.
pub(crate) type StreamId = u64;

/// The tailer's shared book: acknowledged offsets and statistics, read by the handle.
#[derive(Debug, Default)]
pub(crate) struct Book {
    pub streams: HashMap<StreamId, StreamEntry>,
    pub totals: TailStats,
    /// Files read to their end and let go, with their final offsets, newest last: a file that
    /// comes back resumes there (bounded, see [`remember`](Self::remember)).
    pub remembered: Vec<FileCheckpoint>,
    /// When the last scan began (Unix nanoseconds).
    pub scanned_unix_nanos: Option<i64>,
}

/// How long a file that was let go is remembered: it resumes at its offset if it comes back
/// within this time (renamed back into the glob, readable again). A day covers a daily
/// logrotate cycle and an operator's "moved it away and back" during an incident.
pub const REMEMBER_RELEASED: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Most files remembered at once (the oldest are forgotten first): an entry is one line of
/// JSON in the state file (about 150 bytes with a typical path), so the bound keeps that
/// part of the state near 1.5 MB even with a rotation every ten seconds for the whole day.
pub const MAX_REMEMBERED: usize = 10_000;

fn unix_secs_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What the book knows about one stream.
#[derive(Debug, Clone)]
pub(crate) struct StreamEntry {
    pub id: FileId,
    pub head: Head,
    pub path: String,
    pub acked: u64,
    /// Set when the file was let go: the entry is removed once `acked` reaches this offset.
    pub retire_at: Option<u64>,
    pub stats: FileStats,
}

impl Book {
    /// Applies acknowledged offsets and moves streams that were let go and are fully acked to
    /// the remembered files.
    pub fn ack(&mut self, marks: &[(StreamId, u64)]) {
        for &(stream, offset) in marks {
            if let Some(entry) = self.streams.get_mut(&stream) {
                entry.acked = entry.acked.max(offset);
                entry.stats.acked_offset = entry.acked;
            }
        }
        self.retire_done();
    }

    /// Streams let go whose every line is acknowledged leave the tailed files and are
    /// remembered.
    pub fn retire_done(&mut self) {
        let done: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(_, e)| e.retire_at.is_some_and(|end| e.acked >= end))
            .map(|(&id, _)| id)
            .collect();
        if done.is_empty() {
            return;
        }
        let now = unix_secs_now();
        for id in done {
            if let Some(e) = self.streams.remove(&id) {
                self.remember(FileCheckpoint {
                    id: e.id,
                    head: e.head,
                    offset: e.acked,
                    path: e.path,
                    size: Some(e.stats.size),
                    released_unix_secs: Some(now),
                });
            }
        }
    }

    /// Remembers a file let go, replacing what was remembered of the same file, forgetting
    /// files let go longer than [`REMEMBER_RELEASED`] ago and the oldest beyond
    /// [`MAX_REMEMBERED`].
    pub fn remember(&mut self, file: FileCheckpoint) {
        self.remembered.retain(|r| r.id != file.id);
        self.remembered.push(file);
        self.forget_old(unix_secs_now());
    }

    /// Where a file let go earlier goes on, if `file` (with `id`, now `size` bytes long) is
    /// one: the same file (id and first bytes), or a byte copy of one (copytruncate's copy,
    /// same first bytes). The entry of the same file is taken out when it is resumed; a copy
    /// leaves it, since the original may come back too. With `only_if_unread`, a file with
    /// nothing after its offset is left remembered (and not counted as resumed).
    pub fn resume_remembered(
        &mut self,
        file: &std::fs::File,
        id: FileId,
        size: u64,
        only_if_unread: bool,
    ) -> Option<u64> {
        let same = self
            .remembered
            .iter()
            .position(|r| r.id == id && r.offset <= size && r.head.matches(file).unwrap_or(false));
        if let Some(i) = same {
            if only_if_unread && self.remembered[i].offset >= size {
                return Some(size);
            }
            self.totals.resumed_files += 1;
            return Some(self.remembered.remove(i).offset);
        }
        let copy = self.remembered.iter().find(|r| {
            !r.head.is_blank() && r.offset <= size && r.head.matches(file).unwrap_or(false)
        })?;
        let offset = copy.offset;
        if !(only_if_unread && offset >= size) {
            self.totals.resumed_files += 1;
        }
        Some(offset)
    }

    /// Applies the retention of remembered files.
    pub fn forget_old(&mut self, now_unix_secs: u64) {
        let oldest = now_unix_secs.saturating_sub(REMEMBER_RELEASED.as_secs());
        self.remembered
            .retain(|r| r.released_unix_secs.is_some_and(|t| t >= oldest));
        let over = self.remembered.len().saturating_sub(MAX_REMEMBERED);
        self.remembered.drain(..over);
    }

    /// The checkpoint state: every stream's acknowledged offset.
    pub fn state(&self) -> TailState {
        let mut files: Vec<FileCheckpoint> = self
            .streams
            .values()
            .map(|e| FileCheckpoint {
                id: e.id,
                head: e.head,
                offset: e.acked,
                path: e.path.clone(),
                size: Some(e.stats.size),
                released_unix_secs: None,
            })
            .collect();
        files.sort_by_key(|f| (f.id, f.offset));
        files.extend(self.remembered.iter().cloned());
        TailState {
            files,
            scanned_unix_nanos: self.scanned_unix_nanos,
        }
    }

    /// The statistics: totals plus one row per file still tracked.
    pub fn stats(&self) -> TailStats {
        let mut stats = self.totals.clone();
        stats.files = self.streams.values().map(|e| e.stats.clone()).collect();
        stats.files.sort_by(|a, b| a.path.cmp(&b.path));
        stats.lag_bytes = stats.files.iter().map(|f| f.lag_bytes).sum();
        stats
    }
}

/// The right to advance the checkpoint over one batch.
#[derive(Debug)]
#[must_use = "a batch that is never acknowledged is read again after a restart"]
pub struct AckToken {
    book: Arc<Mutex<Book>>,
    marks: Vec<(StreamId, u64)>,
}

impl AckToken {
    pub(crate) fn new(book: Arc<Mutex<Book>>, marks: Vec<(StreamId, u64)>) -> Self {
        AckToken { book, marks }
    }

    /// Marks the batch processed: its files' checkpoints advance to the batch's end.
    pub fn ack(self) {
        self.book.lock().ack(&self.marks);
    }
}

/// Records read from the tailed files, with the token that acknowledges them.
#[derive(Debug)]
pub struct Batch {
    /// The records, in file order within each file.
    pub records: Vec<LogRecord>,
    /// Acknowledges the batch.
    pub ack: AckToken,
}

impl Batch {
    /// Acknowledges the batch (see [`AckToken::ack`]).
    pub fn ack(self) {
        self.ack.ack();
    }
}
