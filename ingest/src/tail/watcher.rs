//! The tailer as a tokio task: file-system events (inotify) wake it and are read in batches,
//! a poll interval is the fallback where events cannot be had (a directory that cannot be
//! watched, a glob with wildcards in its directories, a time the tailer waits for), a bounded
//! channel carries the batches, and a cancellation token stops it. An idle tailer whose
//! directories are all watched sleeps until an event (with a safety look every few seconds).
//! A file system mounted over a watched directory is an event too (see [`Mounts`]).
//!
//! Why `inotify` directly and not `notify`: the same read loop (entry events within 5 ms,
//! writes batched 100 ms apart then) woken by notify's `RecommendedWatcher` — one callback per
//! event on notify's own thread — cost 2.4–2.9x the CPU of these two descriptors, for the
//! same reads and the same delays (`scripts/bench/tail_watch_ab/ab.sh`, both side by side on
//! the same three files, 60 s × 3, release, 2 vCPU EPYC VM at load 25–46): at 1,000 lines/s
//! 0.13–0.16 s of CPU a minute against 0.32–0.41 s (about 0.25 % vs 0.6 % of a core), at
//! ~4,800 lines/s 0.23–0.25 s against 0.62–0.70 s (0.4 % vs 1.1 %); median delay from write to
//! read 58–68 ms for both. See BENCHMARKS.md.
//!
//! Backpressure: the task awaits room in the channel before it reads more, so when the
//! pipeline is slower than the writers the unread data stays in the files (the file is the
//! buffer) and memory stays bounded by the channel capacity times the batch size. The lag
//! (bytes behind, per file) is in [`TailerHandle::stats`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use parking_lot::Mutex;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::mpsc;
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

/// How long the loop waits after the first write of a quiet period before it reads, so that
/// a burst of writes is read in one go.
const EVENT_COALESCE: Duration = Duration::from_millis(20);

/// How soon a directory entry that changed (a file created, renamed or deleted) is looked
/// at, and a write to a file with a blank head read: the events of one rotation (rename,
/// create, first write) come within microseconds of each other.
const ENTRY_COALESCE: Duration = Duration::from_millis(5);

/// Shortest time between two reads while writes keep coming: under a steady stream of
/// writes (one event per write) the files are read in batches of this much, not once per
/// write. The soak's 1,000 lines/s are then four reads a second; a line waits at most this
/// long (the first write after a quiet period only [`EVENT_COALESCE`]). Each read is a
/// cycle of fixed costs (every file's head and size checked, a blocking-pool round trip, a
/// batch through the record pipeline): at 100 ms, the tailer's work besides reading lines
/// was 4.4 % of the agent's profile samples in the 1,000 lines/s + 1,000 spans/s soak; see
/// BENCHMARKS.md for what 250 took off. A change of a directory entry cuts the gap short,
/// and a file with a blank head (empty when last read) has none: a file created by a
/// rotation is found, and its first lines read, within [`ENTRY_COALESCE`] of its events, so
/// that a copytruncate soon after is told from new writes. With the gap applied to those
/// too, a file created, filled and copytruncated within 100 ms was not seen (or seen empty)
/// before its truncation, and its lines, in the copy, were lost (`tail_live`'s rotation
/// test, 1 run in 2 at load 10-25).
const READ_GAP: Duration = Duration::from_millis(250);

/// How long an idle tailer sleeps when every directory it reads is watched and nothing waits
/// for a time: a safety look for writes inotify does not report (a file on NFS written by
/// another host).
const IDLE_LOOK: Duration = Duration::from_secs(5);

async fn run(
    tailer: Tailer,
    batches: mpsc::Sender<Batch>,
    cancel: CancellationToken,
) -> Result<(), TailError> {
    let time_step = Duration::from_millis(tailer.timer_step_ms());
    let mut events = FileEvents::new();
    let mut rescan_now = false;
    let mut tailer = Some(tailer);
    'run: loop {
        if cancel.is_cancelled() {
            break;
        }
        let Some(mut t) = tailer.take() else { break };
        let rescan = std::mem::take(&mut rescan_now);
        let read_at = Instant::now();
        let (t, batch, backlog, timed, blank, dirs, retry) =
            tokio::task::spawn_blocking(move || {
                if rescan {
                    t.request_rescan();
                }
                let batch = t.poll(Instant::now());
                let backlog = t.has_backlog();
                let timed = t.waits_for_time();
                let blank = t.has_blank_head();
                let dirs = t.watch_dirs();
                let retry = t.retry_in(Instant::now());
                (t, batch, backlog, timed, blank, dirs, retry)
            })
            .await
            .map_err(|e| TailError::Worker(e.to_string()))?;
        tailer = Some(t);
        let watched = events.as_mut().map(|e| e.watch(&dirs));
        if let Some(batch) = batch {
            tokio::select! {
                _ = cancel.cancelled() => break,
                sent = batches.send(batch) => if sent.is_err() { break },
            }
        }
        if backlog || watched.as_ref().is_some_and(|w| w.added) {
            continue;
        }
        let watched = watched.is_some_and(|w| w.complete);
        // Caught up: sleep until a file changes, or until a time the tailer waits for, or
        // (without events for every directory) until the poll interval passes.
        // A source that could not be read is looked at again on the tailer's own timer: its
        // becoming readable may raise no event (see `Tailer::retry_in`).
        let idle = if watched && !timed {
            IDLE_LOOK
        } else {
            time_step
        };
        let idle = retry.map_or(idle, |r| idle.min(r.max(Duration::from_millis(1))));
        let changed = async {
            match events.as_mut() {
                Some(e) => Some(e.changed().await),
                None => std::future::pending().await,
            }
        };
        let changed = tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(idle) => None,
            changed = changed => changed,
        };
        let Some(change) = changed else { continue };
        let now = Instant::now();
        let mut due = match change {
            Change::Entries => {
                rescan_now = true;
                now + ENTRY_COALESCE
            }
            // A file with a blank head is read at once (see `Tailer::has_blank_head`).
            Change::Writes if blank => now + ENTRY_COALESCE,
            Change::Writes => (now + EVENT_COALESCE).max(read_at + READ_GAP),
        };
        // Writes are not listened to until the read (their events pile up in the kernel's
        // queue, identical ones merged, and are read in one go; the descriptor is out of the
        // reactor meanwhile, see `FileEvents`); an entry that changes meanwhile brings the
        // read forward.
        if let Some(e) = events.as_mut() {
            e.ignore_writes();
        }
        loop {
            let entry = async {
                match events.as_mut() {
                    Some(e) => e.entry_changed().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => break 'run,
                _ = tokio::time::sleep_until(due.into()) => break,
                _ = entry => {
                    rescan_now = true;
                    due = due.min(Instant::now() + ENTRY_COALESCE);
                }
            }
        }
        if let Some(e) = events.as_mut() {
            // Drained first, then set again, just before the read: a write from here on is
            // either read by it or reported. Set before the drain, a write in between fired
            // the watch and the drain took its event: the writes after the read would have
            // woken nothing until the idle look.
            rescan_now |= e.drain();
            e.arm_writes();
        }
    }
    Ok(())
}

/// Changes to a directory's entries (created, renamed, deleted, permissions, the directory
/// itself gone): rare, each asks for a rescan, and is looked at within [`ENTRY_COALESCE`].
const ENTRY_EVENTS: WatchMask = WatchMask::CREATE
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::DELETE)
    .union(WatchMask::ATTRIB)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF);

/// Writes to the files of a directory: one per `write(2)`, only wake the loop, and are read
/// at most every [`READ_GAP`]. One-shot: the first write after the watch is set removes it,
/// so the writes until the next read queue nothing (see [`FileEvents`]); the watch is set
/// again just before each read ([`FileEvents::arm_writes`]).
const WRITE_EVENTS: WatchMask = WatchMask::MODIFY.union(WatchMask::ONESHOT);

/// What woke the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// A directory entry changed, or events were lost: rescan.
    Entries,
    /// Only writes.
    Writes,
}

/// What [`FileEvents::watch`] did.
struct Watched {
    /// Every directory asked for has a watch.
    complete: bool,
    /// A new watch was set: writes before it were not reported, so the files are looked at
    /// once more.
    added: bool,
}

/// File-system events of the watched directories, from two inotify descriptors read by the
/// runtime's reactor: one for entry changes, always listened to, one for writes, listened
/// to only between reads.
///
/// The kernel queued one event per `write(2)` (1,000/s at 1,000 lines/s, line-buffered
/// writers; it merges only an event identical to the last one queued); read in batches and
/// reduced to "something changed", they were still 1.9 % of the agent's CPU in the soak's
/// profile (copying and walking ~250 events per read). The writes' watches are one-shot: the
/// first write after a read wakes the loop and removes its directory's watch, the later ones
/// queue nothing, and the watch is set again before the next read (one `inotify_add_watch`
/// per directory and read). Through `notify`, each event was a separate callback on a thread of
/// its own (10 % of the agent's CPU in the soak's profile). The writes' descriptor is in the
/// reactor only while a first write is awaited: the reactor's epoll is edge-triggered, and
/// every event the kernel queues (it merges only an event identical to the last one queued,
/// so writes to three files alternately are not merged) woke a runtime worker out of
/// `epoll_wait`, whether or not anything listened: ~500 wake-ups a second of the agent's ~550
/// in the soak, for ten reads.
struct FileEvents {
    entries: Queue,
    writes: Queue,
    /// Every directory asked for last has a watch on both queues.
    complete: bool,
    /// Changes of the mount table (`None`: not available, the idle look finds them).
    mounts: Option<Mounts>,
    /// Each watched directory and what it was (device, inode) when its watch was set.
    identities: Vec<(PathBuf, Option<(u64, u64)>)>,
}

/// The mount table's changes. A file system mounted over a watched directory (or over one
/// above it) after its watch was set raises no event: the watch stays on the directory it
/// covers, and the files of the new file system (created, written) were found only at the
/// idle look, 5 s later, their writes never reported. `/proc/self/mountinfo` is "priority"
/// readable each time the mount table changes (proc(5)); a change that leaves every watched
/// directory what it was (a container's volume elsewhere) is ignored, one that does not
/// makes the watches be set again and the directories rescanned (like an entry change).
struct Mounts {
    fd: AsyncFd<std::fs::File>,
}

impl Mounts {
    fn new() -> Option<Mounts> {
        let file = std::fs::File::open("/proc/self/mountinfo").ok()?;
        // SAFETY: the `File` owns its descriptor and closes it only when dropped, with the
        // `AsyncFd` that owns it.
        match unsafe { AsyncFd::register_with_interest(file, Interest::PRIORITY) } {
            Ok(fd) => Some(Mounts { fd }),
            Err(e) => {
                let e = e.into_parts().1;
                tracing::debug!(error = %e, "cannot follow the mount table; the idle look finds mounts");
                None
            }
        }
    }
}

/// What `dir` is now: (device, inode); `None` when it cannot be looked at.
fn identity(dir: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

/// Waits until the mount table changes so that a directory of `identities` is no longer
/// what it was when watched (never, without `mounts`).
async fn moved(mounts: &mut Option<Mounts>, identities: &[(PathBuf, Option<(u64, u64)>)]) {
    let Some(mounts) = mounts.as_mut() else {
        return std::future::pending().await;
    };
    loop {
        let Ok(mut guard) = mounts.fd.ready_mut(Interest::PRIORITY).await else {
            // The reactor is gone (shutdown): nothing will come any more.
            return std::future::pending().await;
        };
        guard.clear_ready();
        if identities.iter().any(|(dir, id)| identity(dir) != *id) {
            return;
        }
    }
}

/// One inotify descriptor and its watches.
struct Queue {
    fd: Descriptor,
    mask: WatchMask,
    watches: Vec<(PathBuf, WatchDescriptor)>,
    buffer: Vec<u8>,
}

/// An inotify descriptor, in the runtime's reactor or out of it.
enum Descriptor {
    /// In the reactor: each event queued wakes it.
    Listened(AsyncFd<Inotify>),
    /// Out of it: events queue up in the kernel and wake nothing.
    Quiet(Inotify),
    /// Only while moving from one to the other.
    Moving,
}

impl Descriptor {
    fn inotify(&self) -> Option<&Inotify> {
        match self {
            Descriptor::Listened(fd) => Some(fd.get_ref()),
            Descriptor::Quiet(inotify) => Some(inotify),
            Descriptor::Moving => None,
        }
    }

    fn inotify_mut(&mut self) -> Option<&mut Inotify> {
        match self {
            Descriptor::Listened(fd) => Some(fd.get_mut()),
            Descriptor::Quiet(inotify) => Some(inotify),
            Descriptor::Moving => None,
        }
    }
}

/// Puts `inotify` in the runtime's reactor (readable); on failure it is handed back with
/// the error.
fn register(inotify: Inotify) -> Result<AsyncFd<Inotify>, (Inotify, std::io::Error)> {
    // SAFETY: the `Inotify` owns its descriptor and closes it only when dropped, which
    // happens with the `AsyncFd` that owns it (or after `into_inner` gave it back);
    // `as_raw_fd` always returns that one descriptor (the `Watches` handles borrowed in
    // `watch` only add and remove watches on it).
    unsafe { AsyncFd::register_with_interest(inotify, Interest::READABLE) }
        .map_err(|e| e.into_parts())
}

impl FileEvents {
    /// `None` (polling only, said once) where inotify or the runtime's reactor is missing.
    fn new() -> Option<FileEvents> {
        let queues = Queue::new(ENTRY_EVENTS)
            .and_then(|entries| Queue::new(WRITE_EVENTS).map(|writes| (entries, writes)));
        match queues {
            Ok((entries, writes)) => Some(FileEvents {
                entries,
                writes,
                complete: false,
                mounts: Mounts::new(),
                identities: Vec::new(),
            }),
            Err(e) => {
                tracing::warn!(error = %e, "no file-system events; polling only");
                None
            }
        }
    }

    /// Watches exactly `dirs`. Directories that cannot be watched are tried again at the
    /// next call (they are polled meanwhile).
    fn watch(&mut self, dirs: &[PathBuf]) -> Watched {
        let same = self.complete
            && self.entries.watches.len() == dirs.len()
            && self.entries.watches.iter().all(|(d, _)| dirs.contains(d));
        if same {
            return Watched {
                complete: true,
                added: false,
            };
        }
        // Looked at before the watches are set: a mount in between is then seen as a change.
        self.identities = dirs.iter().map(|d| (d.clone(), identity(d))).collect();
        let (entries_complete, entries_added) = self.entries.watch(dirs);
        let (writes_complete, writes_added) = self.writes.watch(dirs);
        self.complete = entries_complete && writes_complete;
        Watched {
            complete: self.complete,
            added: entries_added || writes_added,
        }
    }

    /// Waits for the next event of either queue.
    async fn changed(&mut self) -> Change {
        if let Err(e) = self.writes.listen() {
            // Not expected (the descriptor was in the reactor before); the loop then reads
            // at every read gap, as if a write had come.
            tracing::debug!(error = %e, "cannot listen to writes; reading at each read gap");
            return Change::Writes;
        }
        let change = tokio::select! {
            _ = self.entries.changed() => Change::Entries,
            lost = self.writes.changed() => if lost { Change::Entries } else { Change::Writes },
            () = moved(&mut self.mounts, &self.identities) => Change::Entries,
        };
        if change == Change::Entries {
            // A watched directory may be gone or replaced: the watches are set again.
            self.complete = false;
        }
        change
    }

    /// Stops listening to writes until the next [`Self::changed`]: their events queue up in
    /// the kernel, read by [`Self::drain`], and wake nothing meanwhile.
    fn ignore_writes(&mut self) {
        self.writes.quiet();
    }

    /// Waits for the next change of a directory entry (writes are not listened to).
    async fn entry_changed(&mut self) {
        tokio::select! {
            _ = self.entries.changed() => {}
            () = moved(&mut self.mounts, &self.identities) => {}
        }
        // A watched directory may be gone or replaced: the watches are set again.
        self.complete = false;
    }

    /// Sets the writes' one-shot watches again (those a write removed); a directory that
    /// cannot be watched any more makes the watches be set again after the read.
    fn arm_writes(&mut self) {
        if !self.writes.rearm() {
            self.complete = false;
        }
    }

    /// Reads every queued event of both queues without waiting; returns whether a rescan is
    /// needed (an entry changed, or events were lost).
    fn drain(&mut self) -> bool {
        let (entries, _) = self.entries.drain();
        let (_, lost) = self.writes.drain();
        let rescan = entries > 0 || lost;
        self.complete &= !rescan;
        rescan
    }
}

impl Queue {
    fn new(mask: WatchMask) -> std::io::Result<Queue> {
        let inotify = Inotify::init()?;
        let fd = register(inotify).map_err(|(_, e)| e)?;
        Ok(Queue {
            fd: Descriptor::Listened(fd),
            mask,
            watches: Vec::new(),
            buffer: vec![0; 16 * 1024],
        })
    }

    /// Takes the descriptor out of the reactor (see [`FileEvents`]); its events stay queued.
    fn quiet(&mut self) {
        self.fd = match std::mem::replace(&mut self.fd, Descriptor::Moving) {
            Descriptor::Listened(fd) => Descriptor::Quiet(fd.into_inner()),
            other => other,
        };
    }

    /// Puts the descriptor back in the reactor, where events already queued make it ready at
    /// once.
    fn listen(&mut self) -> std::io::Result<()> {
        match std::mem::replace(&mut self.fd, Descriptor::Moving) {
            Descriptor::Quiet(inotify) => match register(inotify) {
                Ok(fd) => self.fd = Descriptor::Listened(fd),
                Err((inotify, e)) => {
                    self.fd = Descriptor::Quiet(inotify);
                    return Err(e);
                }
            },
            other => self.fd = other,
        }
        Ok(())
    }

    /// Watches exactly `dirs`: whether every one has a watch, and whether a watch is new.
    fn watch(&mut self, dirs: &[PathBuf]) -> (bool, bool) {
        let Some(inotify) = self.fd.inotify() else {
            return (false, false);
        };
        let mut watches = inotify.watches();
        // Adding a watch again is cheap and returns the same descriptor for the same
        // directory; a directory deleted and created again gets a new one.
        let mut kept = Vec::with_capacity(dirs.len());
        let mut complete = true;
        for dir in dirs {
            match watches.add(dir, self.mask) {
                Ok(wd) => kept.push((dir.clone(), wd)),
                Err(e) => {
                    complete = false;
                    tracing::debug!(dir = %dir.display(), error = %e, "cannot watch directory; polling it");
                }
            }
        }
        let added = kept
            .iter()
            .any(|(_, wd)| !self.watches.iter().any(|(_, w)| w == wd));
        for (_, wd) in std::mem::replace(&mut self.watches, kept) {
            if !self.watches.iter().any(|(_, w)| *w == wd) {
                // A directory already gone took its watch with it: nothing to undo then.
                let _ = watches.remove(wd);
            }
        }
        (complete, added)
    }

    /// Sets every watch again with this queue's mask (a one-shot watch that fired is gone);
    /// returns whether every one could be set.
    fn rearm(&mut self) -> bool {
        let Some(inotify) = self.fd.inotify() else {
            return false;
        };
        let mut watches = inotify.watches();
        let mut all = true;
        for (dir, wd) in &mut self.watches {
            match watches.add(&*dir, self.mask) {
                Ok(new) => *wd = new,
                Err(e) => {
                    all = false;
                    tracing::debug!(dir = %dir.display(), error = %e, "cannot watch directory; polling it");
                }
            }
        }
        all
    }

    /// Waits for events and reads all that are queued; returns whether any was more than a
    /// write (see [`read_all`]).
    async fn changed(&mut self) -> bool {
        let Descriptor::Listened(fd) = &mut self.fd else {
            // Out of the reactor: nothing wakes this queue until it listens again.
            return std::future::pending().await;
        };
        loop {
            let Ok(mut guard) = fd.readable_mut().await else {
                // The reactor is gone (shutdown): nothing will come any more.
                return std::future::pending().await;
            };
            let (events, other) = read_all(guard.get_inner_mut(), &mut self.buffer, self.mask);
            // Read until the queue was empty: the readiness may be cleared.
            guard.clear_ready();
            if events > 0 {
                return other;
            }
        }
    }

    /// Reads every queued event without waiting: how many, and whether any was more than a
    /// write.
    fn drain(&mut self) -> (usize, bool) {
        match self.fd.inotify_mut() {
            Some(inotify) => read_all(inotify, &mut self.buffer, self.mask),
            None => (0, false),
        }
    }
}

/// Reads the queue to its end: how many events, and whether any was more than a write (an
/// entry change, a watch gone, or the queue's overflow: events were lost). On a queue of
/// one-shot watches (`mask`), the removal of a watch that fired is expected and not counted.
fn read_all(inotify: &mut Inotify, buffer: &mut [u8], mask: WatchMask) -> (usize, bool) {
    let oneshot = mask.contains(WatchMask::ONESHOT);
    let mut count = 0;
    let mut other = false;
    loop {
        match inotify.read_events(buffer) {
            Ok(events) => {
                for event in events {
                    if oneshot && event.mask == EventMask::IGNORED {
                        continue;
                    }
                    count += 1;
                    other |= event.mask != EventMask::MODIFY;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => {
                // Not expected from inotify; a rescan is the safe answer.
                tracing::debug!(error = %e, "reading file-system events");
                return (count + 1, true);
            }
        }
    }
    (count, other)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::Path;

    use super::*;

    /// `writes` lines written to two files of `dir` alternately, one `write(2)` each: events
    /// the kernel cannot merge (it merges only one identical to the last one queued).
    fn write_alternately(dir: &Path, writes: usize) {
        let open = |name: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(name))
                .unwrap()
        };
        let mut files = [open("a.log"), open("b.log")];
        for i in 0..writes {
            files[i % 2].write_all(b"a line\n").unwrap();
        }
    }

    #[tokio::test]
    async fn writes_between_two_reads_queue_nothing_and_the_next_read_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = [dir.path().to_path_buf()];
        // The files exist before the watch: their creation is an entry change.
        write_alternately(dir.path(), 0);
        let mut events = FileEvents::new().expect("inotify");
        assert!(events.watch(&dirs).complete);

        write_alternately(dir.path(), 200);
        let first = tokio::time::timeout(Duration::from_secs(5), events.changed()).await;
        assert_eq!(first, Ok(Change::Writes), "the first write wakes the loop");
        events.ignore_writes();
        // Until the read, writes are not even queued: at 1,000 lines/s the kernel queued one
        // event per write, which the loop had to copy and walk at every read.
        write_alternately(dir.path(), 200);
        let (queued, lost) = events.writes.drain();
        assert_eq!(
            (queued, lost),
            (0, false),
            "events queued while writes are ignored"
        );

        // Set again before the read (after the drain, as the loop does): a write after it is
        // reported, and the watch is kept.
        assert!(!events.drain(), "no rescan for writes");
        events.arm_writes();
        assert!(events.watch(&dirs).complete);
        write_alternately(dir.path(), 3);
        let next = tokio::time::timeout(Duration::from_secs(5), events.changed()).await;
        assert_eq!(
            next,
            Ok(Change::Writes),
            "a write after the read wakes the loop"
        );
    }
}
