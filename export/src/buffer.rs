//! The bounded buffer between the agent and the sender task, and the counters of what went
//! through it.
//!
//! The bound is in encoded bytes, held by a [`Reservation`] from the moment the agent decides
//! to forward something (before it copies it) until the upstream took it or it was dropped.
//! A reservation that does not fit is refused at once and counted as dropped: nothing ever
//! waits for room, so a slow or dead upstream costs the ingestion path one failed
//! `try_acquire`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::payload::{Payload, Signal};

/// Why items were dropped instead of delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// The buffer was full when they arrived (the upstream is slow or down).
    BufferFull,
    /// The upstream refused them for good (HTTP 4xx, gRPC INVALID_ARGUMENT, ...) or
    /// rejected them in a partial success.
    Rejected,
    /// They were retried for `max_retry_ms` without success.
    Expired,
    /// The agent stopped before they could be sent.
    Shutdown,
    /// They were in the buffer when the agent was killed: found at the next start.
    LostAtRestart,
}

impl DropReason {
    /// Every reason, in a fixed order.
    pub const ALL: [DropReason; 5] = [
        DropReason::BufferFull,
        DropReason::Rejected,
        DropReason::Expired,
        DropReason::Shutdown,
        DropReason::LostAtRestart,
    ];

    /// The reason's name in counters and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::BufferFull => "buffer_full",
            DropReason::Rejected => "rejected",
            DropReason::Expired => "expired",
            DropReason::Shutdown => "shutdown",
            DropReason::LostAtRestart => "lost_at_restart",
        }
    }

    fn index(self) -> usize {
        match self {
            DropReason::BufferFull => 0,
            DropReason::Rejected => 1,
            DropReason::Expired => 2,
            DropReason::Shutdown => 3,
            DropReason::LostAtRestart => 4,
        }
    }
}

/// Room in the buffer for one payload, taken before the payload is built or copied. Dropped
/// unused, the room is given back and nothing is counted.
#[derive(Debug)]
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
    signal: Signal,
}

impl Reservation {
    /// The signal the room was taken for.
    pub fn signal(&self) -> Signal {
        self.signal
    }
}

/// A waiting payload and the room it holds.
pub(crate) struct Entry {
    pub payload: Payload,
    pub items: u64,
    pub bytes: usize,
    pub _permit: Option<OwnedSemaphorePermit>,
}

#[derive(Default)]
struct Counters {
    /// Items accepted into the buffer, per signal.
    accepted: [AtomicU64; 3],
    /// Items the upstream took, per signal.
    delivered: [AtomicU64; 3],
    /// Items dropped, per signal and reason.
    dropped: [[AtomicU64; 5]; 3],
    requests: AtomicU64,
    failures: AtomicU64,
}

/// What the upstream connection looks like now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UpstreamState {
    /// The last request succeeded (`false` before the first one and after a failure).
    pub up: bool,
    /// The last failure, if the last request failed.
    pub last_error: Option<String>,
}

/// The buffer, shared by the [`Exporter`](crate::Exporter) handles and the sender task.
pub(crate) struct Buffer {
    /// The waiting entries, and whether the sender has stopped (then nothing more is queued:
    /// it is counted as dropped at once).
    queue: Mutex<(VecDeque<Entry>, bool)>,
    pub notify: Notify,
    room: Arc<Semaphore>,
    max_bytes: usize,
    counters: Counters,
    in_flight: Mutex<(u64, usize)>,
    upstream: Mutex<UpstreamState>,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded values are plain counters and a queue; a panic elsewhere leaves them usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Buffer {
    pub fn new(max_bytes: usize) -> Buffer {
        let max_bytes = max_bytes.clamp(1, Semaphore::MAX_PERMITS);
        Buffer {
            queue: Mutex::new((VecDeque::new(), false)),
            notify: Notify::new(),
            room: Arc::new(Semaphore::new(max_bytes)),
            max_bytes,
            counters: Counters::default(),
            in_flight: Mutex::new((0, 0)),
            upstream: Mutex::new(UpstreamState::default()),
        }
    }

    /// Room for `bytes` (a payload larger than the whole buffer needs the whole, empty
    /// buffer), or `None` with `items` counted as dropped.
    pub fn reserve(&self, signal: Signal, items: u64, bytes: usize) -> Option<Reservation> {
        if bytes == 0 {
            return Some(Reservation {
                permit: None,
                signal,
            });
        }
        let permits = u32::try_from(bytes.min(self.max_bytes)).unwrap_or(u32::MAX);
        match self.room.clone().try_acquire_many_owned(permits) {
            Ok(permit) => Some(Reservation {
                permit: Some(permit),
                signal,
            }),
            Err(_) => {
                self.drop_items(signal, DropReason::BufferFull, items);
                None
            }
        }
    }

    /// Queues a payload into its reserved room. A payload of another signal than the room's
    /// is queued all the same (the room is only bytes).
    pub fn push(&self, reservation: Reservation, payload: Payload) {
        if payload.is_empty() {
            return;
        }
        let items = payload.items();
        let bytes = payload.encoded_len();
        let signal = payload.signal();
        add(&self.counters.accepted[signal.index()], items);
        let mut queue = lock(&self.queue);
        if queue.1 {
            drop(queue);
            self.drop_items(signal, DropReason::Shutdown, items);
            return;
        }
        queue.0.push_back(Entry {
            payload,
            items,
            bytes,
            _permit: reservation.permit,
        });
        drop(queue);
        self.notify.notify_one();
    }

    /// The first waiting entry and the following ones of the same signal, while their bytes
    /// stay within `max_bytes` (the first is taken whatever its size).
    pub fn take_batch(&self, max_bytes: usize) -> Vec<Entry> {
        let mut guard = lock(&self.queue);
        let queue = &mut guard.0;
        let mut batch: Vec<Entry> = Vec::new();
        let mut bytes = 0usize;
        while let Some(next) = queue.front() {
            let same = batch
                .first()
                .is_none_or(|first| first.payload.signal() == next.payload.signal());
            if !same || (!batch.is_empty() && bytes + next.bytes > max_bytes) {
                break;
            }
            let Some(entry) = queue.pop_front() else {
                break;
            };
            bytes += entry.bytes;
            batch.push(entry);
        }
        let items = batch.iter().map(|e| e.items).sum();
        *lock(&self.in_flight) = (items, bytes);
        batch
    }

    /// The batch taken last is done (delivered or dropped).
    pub fn batch_done(&self) {
        *lock(&self.in_flight) = (0, 0);
    }

    /// Closes the buffer (what is pushed from now on is counted as dropped at once) and
    /// returns every waiting entry, for the final count at shutdown.
    pub fn close(&self) -> Vec<Entry> {
        let mut queue = lock(&self.queue);
        queue.1 = true;
        queue.0.drain(..).collect()
    }

    pub fn delivered(&self, signal: Signal, items: u64) {
        add(&self.counters.delivered[signal.index()], items);
        add(&self.counters.requests, 1);
        *lock(&self.upstream) = UpstreamState {
            up: true,
            last_error: None,
        };
    }

    pub fn failed(&self, why: &str) {
        add(&self.counters.failures, 1);
        *lock(&self.upstream) = UpstreamState {
            up: false,
            last_error: Some(why.to_owned()),
        };
    }

    pub fn drop_items(&self, signal: Signal, reason: DropReason, items: u64) {
        add(
            &self.counters.dropped[signal.index()][reason.index()],
            items,
        );
    }

    /// Items waiting or being sent, and their bytes.
    pub fn held(&self) -> (u64, usize) {
        let queue = lock(&self.queue);
        let (items, bytes) = *lock(&self.in_flight);
        (
            items + queue.0.iter().map(|e| e.items).sum::<u64>(),
            bytes + queue.0.iter().map(|e| e.bytes).sum::<usize>(),
        )
    }

    pub fn stats(&self) -> ExportStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (buffered_items, buffered_bytes) = self.held();
        let mut dropped = Vec::new();
        for signal in Signal::ALL {
            for reason in DropReason::ALL {
                let n = get(&c.dropped[signal.index()][reason.index()]);
                if n > 0 {
                    dropped.push(DropCount {
                        signal,
                        reason,
                        items: n,
                    });
                }
            }
        }
        ExportStats {
            accepted: Signal::ALL.map(|s| get(&c.accepted[s.index()])),
            delivered: Signal::ALL.map(|s| get(&c.delivered[s.index()])),
            dropped,
            requests_sent: get(&c.requests),
            request_failures: get(&c.failures),
            buffered_items,
            buffered_bytes: buffered_bytes as u64,
            buffer_capacity_bytes: self.max_bytes as u64,
            upstream: lock(&self.upstream).clone(),
        }
    }
}

/// Items of one signal dropped for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DropCount {
    /// The signal.
    pub signal: Signal,
    /// Why.
    pub reason: DropReason,
    /// Spans, log records or data points.
    pub items: u64,
}

/// Counters of the exporter since start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportStats {
    /// Items taken into the buffer, per signal (traces, logs, metrics).
    pub accepted: [u64; 3],
    /// Items the upstream took, per signal (traces, logs, metrics).
    pub delivered: [u64; 3],
    /// Items dropped, by signal and reason (only non-zero counts).
    pub dropped: Vec<DropCount>,
    /// Requests the upstream answered with success.
    pub requests_sent: u64,
    /// Attempts that failed (each retry counts).
    pub request_failures: u64,
    /// Items waiting or being sent now.
    pub buffered_items: u64,
    /// Their encoded bytes.
    pub buffered_bytes: u64,
    /// The buffer's bound (`export.buffer_bytes`).
    pub buffer_capacity_bytes: u64,
    /// The upstream's state.
    pub upstream: UpstreamState,
}

impl ExportStats {
    /// Items dropped, all signals and reasons together.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(|d| d.items).sum()
    }

    /// Items of `signal` dropped for `reason`.
    pub fn dropped_of(&self, signal: Signal, reason: DropReason) -> u64 {
        self.dropped
            .iter()
            .filter(|d| d.signal == signal && d.reason == reason)
            .map(|d| d.items)
            .sum()
    }
}
