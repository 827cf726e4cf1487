//! The bounded buffer between the agent and the sender task, and the counters of what went
//! through it.
//!
//! The bound is in encoded bytes, held by a [`Reservation`] from the moment the agent decides
//! to forward something (before it copies it) until the upstream took it or it was dropped.
//! A reservation that does not fit is refused at once and counted as dropped: nothing ever
//! waits for room, so a slow or dead upstream costs the ingestion path one failed
//! `try_acquire`.
//!
//! Items are counted from the reservation on, so that every item handed to the exporter is in
//! exactly one place: delivered, dropped (by reason), or held (the buffered gauge, which
//! includes the items on their way to the queue).

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

/// Room in the buffer for one payload, taken before the payload is built or copied. Its items
/// count as accepted and buffered from then on; dropped unused, the room is given back and
/// the items are uncounted (the request they belonged to was refused, so they were never
/// accepted).
#[derive(Debug)]
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
    signal: Signal,
    items: u64,
    /// `None` once the items were handed over (queued or counted as dropped).
    counters: Option<Arc<Counters>>,
}

impl Reservation {
    /// The signal the room was taken for.
    pub fn signal(&self) -> Signal {
        self.signal
    }

    /// The items it holds become `items` (the receiver accepted fewer than it was sent).
    pub(crate) fn resize(&mut self, items: u64) {
        if let Some(c) = &self.counters {
            let i = self.signal.index();
            if items > self.items {
                add(&c.accepted[i], items - self.items);
                add(&c.held[i], items - self.items);
            } else {
                sub(&c.accepted[i], self.items - items);
                sub(&c.held[i], self.items - items);
            }
        }
        self.items = items;
    }

    /// Counts its items as dropped for `reason` and gives the room back.
    pub(crate) fn drop_for(mut self, reason: DropReason) {
        if let Some(c) = self.counters.take() {
            c.settle(self.signal, self.items, Err(reason));
        }
    }

    /// The room, its items handed over to an entry of the queue.
    fn into_entry(mut self, payload: Payload, bytes: usize) -> Entry {
        self.counters = None;
        Entry {
            signal: self.signal,
            items: self.items,
            bytes,
            payload,
            _permit: self.permit.take(),
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(c) = self.counters.take() {
            let i = self.signal.index();
            sub(&c.accepted[i], self.items);
            sub(&c.held[i], self.items);
        }
    }
}

/// A waiting payload and the room it holds.
pub(crate) struct Entry {
    pub payload: Payload,
    pub signal: Signal,
    pub items: u64,
    pub bytes: usize,
    pub _permit: Option<OwnedSemaphorePermit>,
}

/// The counters, kept so that at any moment, per signal,
/// `accepted = delivered + dropped (all reasons) + held`.
#[derive(Default, Debug)]
pub(crate) struct Counters {
    /// Items handed to the exporter, per signal: taken into the buffer or dropped at once
    /// because it was full (and what a kill lost, counted at the next start).
    accepted: [AtomicU64; 3],
    /// Items the upstream took, per signal.
    delivered: [AtomicU64; 3],
    /// Items dropped, per signal and reason.
    dropped: [[AtomicU64; 5]; 3],
    /// Items in reserved room now (on their way to the queue, waiting, or being sent).
    held: [AtomicU64; 3],
    requests: AtomicU64,
    failures: AtomicU64,
}

impl Counters {
    /// Held items leave the buffer: delivered (`Ok`) or dropped.
    fn settle(&self, signal: Signal, items: u64, outcome: Result<(), DropReason>) {
        let i = signal.index();
        match outcome {
            Ok(()) => add(&self.delivered[i], items),
            Err(reason) => add(&self.dropped[i][reason.index()], items),
        }
        sub(&self.held[i], items);
    }
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
    counters: Arc<Counters>,
    upstream: Mutex<UpstreamState>,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn sub(counter: &AtomicU64, n: u64) {
    counter.fetch_sub(n, Ordering::Relaxed);
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
            counters: Arc::new(Counters::default()),
            upstream: Mutex::new(UpstreamState::default()),
        }
    }

    /// Room for `bytes` (a payload larger than the whole buffer needs the whole, empty
    /// buffer), or `None` with `items` counted as dropped.
    pub fn reserve(&self, signal: Signal, items: u64, bytes: usize) -> Option<Reservation> {
        let i = signal.index();
        let permit = if bytes == 0 {
            None
        } else {
            let permits = u32::try_from(bytes.min(self.max_bytes)).unwrap_or(u32::MAX);
            match self.room.clone().try_acquire_many_owned(permits) {
                Ok(permit) => Some(permit),
                Err(_) => {
                    self.drop_items(signal, DropReason::BufferFull, items);
                    return None;
                }
            }
        };
        add(&self.counters.accepted[i], items);
        add(&self.counters.held[i], items);
        Some(Reservation {
            permit,
            signal,
            items,
            counters: Some(self.counters.clone()),
        })
    }

    /// Queues a payload into its reserved room. A payload of another signal than the room's
    /// is counted and queued as its own signal (the room is only bytes).
    pub fn push(&self, mut reservation: Reservation, payload: Payload) {
        let signal = payload.signal();
        if signal != reservation.signal {
            // The items move to the payload's signal.
            reservation.resize(0);
            reservation.signal = signal;
        }
        reservation.resize(payload.items());
        if payload.is_empty() {
            // Nothing to send: the reservation's items (none, or items of an empty request)
            // are uncounted.
            reservation.resize(0);
            return;
        }
        let bytes = payload.encoded_len();
        let mut queue = lock(&self.queue);
        if queue.1 {
            drop(queue);
            reservation.drop_for(DropReason::Shutdown);
            return;
        }
        queue.0.push_back(reservation.into_entry(payload, bytes));
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
                .is_none_or(|first| first.signal == next.signal);
            if !same || (!batch.is_empty() && bytes + next.bytes > max_bytes) {
                break;
            }
            let Some(entry) = queue.pop_front() else {
                break;
            };
            bytes += entry.bytes;
            batch.push(entry);
        }
        batch
    }

    /// Closes the buffer (what is pushed from now on is counted as dropped at once) and
    /// returns every waiting entry, for the final count at shutdown.
    pub fn close(&self) -> Vec<Entry> {
        let mut queue = lock(&self.queue);
        queue.1 = true;
        queue.0.drain(..).collect()
    }

    /// The items of a batch taken from the queue are done: `delivered` of them reached the
    /// upstream, the rest is dropped for `reason` (and the room is given back as the entries
    /// are dropped).
    pub fn settle(&self, batch: Vec<Entry>, delivered: u64, reason: DropReason) {
        let Some(signal) = batch.first().map(|e| e.signal) else {
            return;
        };
        let items: u64 = batch.iter().map(|e| e.items).sum();
        let delivered = delivered.min(items);
        self.counters.settle(signal, delivered, Ok(()));
        self.counters.settle(signal, items - delivered, Err(reason));
    }

    /// One request succeeded.
    pub fn succeeded(&self) {
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

    /// Counts items that never were in the buffer as accepted and dropped (refused at
    /// once, or lost by a killed agent).
    pub fn drop_items(&self, signal: Signal, reason: DropReason, items: u64) {
        add(&self.counters.accepted[signal.index()], items);
        add(
            &self.counters.dropped[signal.index()][reason.index()],
            items,
        );
    }

    pub fn stats(&self) -> ExportStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
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
        let buffered = Signal::ALL.map(|s| get(&c.held[s.index()]));
        ExportStats {
            accepted: Signal::ALL.map(|s| get(&c.accepted[s.index()])),
            delivered: Signal::ALL.map(|s| get(&c.delivered[s.index()])),
            dropped,
            requests_sent: get(&c.requests),
            request_failures: get(&c.failures),
            buffered,
            buffered_items: buffered.iter().sum(),
            buffered_bytes: (self.max_bytes - self.room.available_permits()) as u64,
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

/// Counters of the exporter since start. Per signal, `accepted` = `delivered` + the drops +
/// `buffered` at any moment (read while items move, the parts may be a request apart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportStats {
    /// Items handed to the exporter, per signal (traces, logs, metrics): taken into the
    /// buffer, or dropped at once because it was full; with what a killed agent lost, counted
    /// at the next start.
    pub accepted: [u64; 3],
    /// Items the upstream took, per signal (traces, logs, metrics).
    pub delivered: [u64; 3],
    /// Items dropped, by signal and reason (only non-zero counts).
    pub dropped: Vec<DropCount>,
    /// Requests the upstream answered with success.
    pub requests_sent: u64,
    /// Attempts that failed (each retry counts).
    pub request_failures: u64,
    /// Items in the buffer now, per signal: on their way to the queue (waiting for their
    /// pattern tags), waiting, or being sent.
    pub buffered: [u64; 3],
    /// The same, all signals together.
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

    /// Items of `signal` dropped, all reasons together.
    pub fn dropped_signal(&self, signal: Signal) -> u64 {
        self.dropped
            .iter()
            .filter(|d| d.signal == signal)
            .map(|d| d.items)
            .sum()
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

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    use super::*;

    fn traces(spans: usize) -> Payload {
        Payload::Traces(ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span::default(); spans],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        })
    }

    fn accounted(buffer: &Buffer) -> ExportStats {
        let stats = buffer.stats();
        for signal in Signal::ALL {
            let i = signal.index();
            assert_eq!(
                stats.accepted[i],
                stats.delivered[i] + stats.buffered[i] + stats.dropped_signal(signal),
                "{stats:?}"
            );
        }
        stats
    }

    #[test]
    fn every_item_is_delivered_buffered_or_dropped_at_every_step() {
        let buffer = Buffer::new(100);
        // Room refused: accepted and dropped at once.
        assert!(
            buffer.reserve(Signal::Traces, 7, 101).is_some(),
            "the whole buffer"
        );
        let stats = accounted(&buffer);
        assert_eq!(
            (stats.accepted[0], stats.buffered[0]),
            (0, 0),
            "unused room"
        );
        let held = buffer.reserve(Signal::Traces, 5, 60).expect("room");
        assert!(buffer.reserve(Signal::Traces, 4, 60).is_none());
        let stats = accounted(&buffer);
        assert_eq!(stats.accepted[0], 9);
        assert_eq!(stats.buffered[0], 5);
        assert_eq!(stats.buffered_bytes, 60);
        assert_eq!(stats.dropped_of(Signal::Traces, DropReason::BufferFull), 4);
        // The receiver kept three of the five: the other two were never accepted.
        buffer.push(held, traces(3));
        let stats = accounted(&buffer);
        assert_eq!((stats.accepted[0], stats.buffered[0]), (7, 3));
        // Another signal's payload in trace room is counted as its own signal.
        let room = buffer.reserve(Signal::Traces, 2, 10).expect("room");
        buffer.push(
            room,
            Payload::Logs(
                opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest {
                    resource_logs: vec![Default::default()],
                },
            ),
        );
        let stats = accounted(&buffer);
        assert_eq!((stats.accepted[0], stats.accepted[1]), (7, 0));
        let batch = buffer.take_batch(1000);
        assert_eq!(batch.len(), 1);
        // Two of three delivered, one rejected by the upstream.
        buffer.settle(batch, 2, DropReason::Rejected);
        let stats = accounted(&buffer);
        assert_eq!(stats.delivered[0], 2);
        assert_eq!(stats.dropped_of(Signal::Traces, DropReason::Rejected), 1);
        assert_eq!(stats.buffered[0], 0);
        // A reservation given up on the way is dropped as such.
        let room = buffer.reserve(Signal::Traces, 6, 10).expect("room");
        room.drop_for(DropReason::Shutdown);
        let stats = accounted(&buffer);
        assert_eq!(stats.dropped_of(Signal::Traces, DropReason::Shutdown), 6);
        // Only the logs request still waits.
        assert_eq!(stats.buffered_bytes, 10, "every other byte given back");
    }
}
