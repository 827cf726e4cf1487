//! The tailer as a tokio task: file-system events wake it, a poll interval is the fallback
//! when events do not arrive (NFS, some overlay set-ups, a full inotify queue), a bounded
//! channel carries the batches, and a cancellation token stops it.
//!
//! Backpressure: the task awaits room in the channel before it reads more, so when the
//! pipeline is slower than the writers the unread data stays in the files (the file is the
//! buffer) and memory stays bounded by the channel capacity times the batch size. The lag
//! (bytes behind, per file) is in [`TailerHandle::stats`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::Watcher;
use parking_lot::Mutex;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::ack::{Batch, Book};
use super::checkpointer::TailState;
use super::config::{LogSource, TailConfig};
use super::stats::TailStats;
use super::tailer::Tailer;
use super::TailError;

/// A running tailer.
#[derive(Debug)]
pub struct TailerHandle {
    book: Arc<Mutex<Book>>,
    task: JoinHandle<Result<(), TailError>>,
}

impl TailerHandle {
    /// Per-file and total statistics (offsets, lag, lines, truncated lines, binary files).
    pub fn stats(&self) -> TailStats {
        self.book.lock().stats()
    }

    /// The acknowledged state, to be stored with the consumer's own state for exactly-once.
    pub fn checkpoint_state(&self) -> TailState {
        self.book.lock().state()
    }

    /// Waits for the task to end (after cancellation or when the receiver is dropped).
    pub async fn join(self) -> Result<(), TailError> {
        self.task
            .await
            .map_err(|e| TailError::Worker(e.to_string()))?
    }
}

/// Starts tailing `sources` as a tokio task. `initial` is the [`TailState`] the consumer
/// stored with its own state (`None` on the very first start). Batches go to `batches`; each
/// must be acknowledged once processed, and the consumer stores
/// [`TailerHandle::checkpoint_state`] with the state derived from the acknowledged batches
/// (exactly-once, see the `tail` module docs). The task stops when `cancel` fires or the
/// receiver is dropped.
pub async fn spawn(
    config: TailConfig,
    sources: Vec<LogSource>,
    initial: Option<TailState>,
    batches: mpsc::Sender<Batch>,
    cancel: CancellationToken,
) -> Result<TailerHandle, TailError> {
    let tailer =
        tokio::task::spawn_blocking(move || Tailer::new(config, sources, initial, Instant::now()))
            .await
            .map_err(|e| TailError::Worker(e.to_string()))??;
    let book = tailer.book();
    let task = tokio::spawn(run(tailer, batches, cancel));
    Ok(TailerHandle { book, task })
}

/// How long the loop waits after a file-system event before reading, so that a burst of
/// writes is read in one go.
const EVENT_COALESCE: Duration = Duration::from_millis(20);

async fn run(
    tailer: Tailer,
    batches: mpsc::Sender<Batch>,
    cancel: CancellationToken,
) -> Result<(), TailError> {
    let poll_interval = Duration::from_millis(tailer.config_poll_interval_ms().max(1));
    let wake = Arc::new(Notify::new());
    let rescan = Arc::new(AtomicBool::new(false));
    let _watcher = watch(&tailer, Arc::clone(&wake), Arc::clone(&rescan));
    let mut tailer = Some(tailer);
    loop {
        if cancel.is_cancelled() {
            break;
        }
        let Some(mut t) = tailer.take() else { break };
        let rescan_now = rescan.swap(false, Ordering::Relaxed);
        let (t, batch, backlog) = tokio::task::spawn_blocking(move || {
            if rescan_now {
                t.request_rescan();
            }
            let batch = t.poll(Instant::now());
            let backlog = t.has_backlog();
            (t, batch, backlog)
        })
        .await
        .map_err(|e| TailError::Worker(e.to_string()))?;
        tailer = Some(t);
        if let Some(batch) = batch {
            tokio::select! {
                _ = cancel.cancelled() => break,
                sent = batches.send(batch) => if sent.is_err() { break },
            }
        }
        if !backlog {
            // Caught up: sleep until a file changes or the poll interval passes. Events come
            // in bursts (one per write), so after an event the loop waits a little to read a
            // burst in one go instead of once per write.
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(poll_interval) => {}
                _ = wake.notified() => {
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(EVENT_COALESCE) => {}
                    }
                }
            }
        }
    }
    Ok(())
}

/// Watches the globs' directories; any event wakes the loop, creations and renames also ask
/// for a rescan. Returns `None` when no watch could be set (polling still works).
fn watch(
    tailer: &Tailer,
    wake: Arc<Notify>,
    rescan: Arc<AtomicBool>,
) -> Option<notify::RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        use notify::event::ModifyKind;
        use notify::EventKind;
        let Ok(event) = event else {
            wake.notify_one();
            return;
        };
        match event.kind {
            // Opening and reading a file are events too, and the tailer's own reads would
            // wake it again and again: only changes matter.
            EventKind::Access(_) => return,
            EventKind::Modify(ModifyKind::Data(_)) | EventKind::Modify(ModifyKind::Metadata(_)) => {
            }
            _ => rescan.store(true, Ordering::Relaxed),
        }
        wake.notify_one();
    })
    .map_err(|e| tracing::warn!(error = %e, "no file-system events; polling only"))
    .ok()?;
    for dir in tailer.watch_dirs() {
        if let Err(e) = watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch directory; polling it");
        }
    }
    Some(watcher)
}
