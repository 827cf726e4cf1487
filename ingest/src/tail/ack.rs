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
    /// Applies acknowledged offsets and forgets streams that were let go and are fully acked.
    pub fn ack(&mut self, marks: &[(StreamId, u64)]) {
        for &(stream, offset) in marks {
            if let Some(entry) = self.streams.get_mut(&stream) {
                entry.acked = entry.acked.max(offset);
                entry.stats.acked_offset = entry.acked;
            }
        }
        self.streams
            .retain(|_, e| e.retire_at.is_none_or(|end| e.acked < end));
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
            })
            .collect();
        files.sort_by_key(|f| (f.id, f.offset));
        TailState { files }
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
