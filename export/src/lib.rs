//! faultline-export: forwarding OTLP upstream — to an OpenTelemetry Collector, or to another
//! agent — from a bounded buffer, with retry and backoff.
//!
//! This crate owns the way out of the agent and nothing else: the `[export]` configuration
//! ([`ExportConfig`]), the buffer and its counters ([`Exporter`], [`ExportStats`]), the
//! transports (OTLP/gRPC through the tonic clients of `opentelemetry-proto`, OTLP/HTTP with
//! protobuf bodies through reqwest; TLS with rustls; headers for auth) and the retry policy. It
//! does not decide what is forwarded or how records are enriched with their pattern ids: the
//! agent builds the [`Payload`]s (received OTLP requests as accepted, tailed log records,
//! pattern counters, incidents) and hands them over.
//!
//! # Execution model
//!
//! Push, never wait. Producers (the OTLP receivers, the record pipeline, the agent's periodic
//! pattern-counter task) call [`Exporter::reserve`] and [`Exporter::push`] (or
//! [`Exporter::offer`]): both are synchronous, take a mutex for a queue push, and never block on
//! the network or on room. A received request is handed over as the bytes it came in
//! ([`Payload::Encoded`]): the receiving path neither copies nor encodes anything to forward
//! it. One sender ([`Exporter::spawn`]), on a thread of its own at a lower priority, takes the
//! waiting payloads in order, joins consecutive payloads of one signal into one request (up to
//! `max_request_bytes`; their encodings one after the other), encodes it once, and sends one
//! request at a time. A failed request is retried — the
//! OTLP specification's retryable failures only — after an exponential backoff with jitter
//! (`initial_backoff_ms` doubling up to `max_backoff_ms`) or after the delay the upstream asked
//! for (gRPC `RetryInfo`, HTTP `Retry-After`), for at most `max_retry_ms`.
//!
//! # Bounds and delivery
//!
//! - Memory: at most `buffer_bytes` of encoded payloads are held, from the reservation (taken
//!   before anything is copied) to the upstream's answer. A payload that does not fit is dropped
//!   at once and counted (`buffer_full`): a slow or dead upstream fills the buffer and then costs
//!   the producers one failed semaphore acquisition per payload, so ingestion goes on at its own
//!   pace.
//! - Time: each request is bounded by `timeout_ms`, connection included; an upstream that accepts
//!   connections and never answers is a retryable failure every `timeout_ms`.
//! - Every item (span, log record, metric data point) handed to the exporter is counted as
//!   accepted and is, at any moment, in exactly one place ([`ExportStats`]): buffered (a gauge:
//!   from its reservation until the upstream's answer), delivered, or dropped as
//!   `buffer_full` (no room when it came), `rejected` (refused by the upstream, or rejected in
//!   a partial success), `expired` (retried for `max_retry_ms`), `shutdown` (still waiting when
//!   the agent stopped and its drain time ran out) or `lost_at_restart` (in memory when the agent
//!   was killed, counted by the agent at the next start through [`Exporter::note_lost`]).
//!   Delivery is at least once: a request that timed out after the upstream took it is sent
//!   again.

pub mod attributes;
mod bounded;
mod buffer;
mod config;
mod payload;
mod sender;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use attributes::PatternTags;
pub use bounded::read_bounded;
pub use buffer::{DropCount, DropReason, ExportStats, Reservation, UpstreamState};
pub use config::{ExportConfig, ExportConfigError, ExportSettings, Protocol};
pub use payload::{Encoded, Payload, Signal};
pub use transport::TransportError;

use buffer::Buffer;

/// A handle on the exporter's buffer. Cheap to clone; clones share the buffer and counters.
#[derive(Clone)]
pub struct Exporter {
    buffer: Arc<Buffer>,
    settings: Arc<ExportSettings>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("endpoint", &self.settings.endpoint)
            .field("protocol", &self.settings.protocol)
            .finish_non_exhaustive()
    }
}

impl Exporter {
    /// An exporter for these settings and its sender, which runs until `stop` is cancelled;
    /// then the waiting payloads get `drain` to go out and the rest is counted as dropped
    /// (`shutdown`). The returned task ends when the sender has. Must be called inside a tokio
    /// runtime. Nothing is connected yet: a dead upstream at start is a retried failure, not an
    /// error.
    ///
    /// The sender runs on a thread of its own, with its own single-threaded runtime, at a lower
    /// scheduling priority (nice +10, see [`SENDER_NICE`]): encoding, TLS and the upstream's
    /// sockets never take a worker of the agent's runtime, and when the CPU is short the
    /// kernel gives it to ingestion first. A starved sender only fills the buffer, whose
    /// overflow is counted (`buffer_full`).
    pub fn spawn(
        settings: ExportSettings,
        stop: CancellationToken,
        drain: Duration,
    ) -> Result<(Exporter, JoinHandle<()>), TransportError> {
        let buffer = Arc::new(Buffer::new(settings.buffer_bytes));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let (sender_buffer, sender_settings) = (buffer.clone(), settings.clone());
        let thread = std::thread::Builder::new()
            .name("faultline-export".into())
            .spawn(move || {
                lower_priority();
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(TransportError::Runtime(e)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    // The clients are built on the runtime that drives their connections.
                    let transport = match transport::Transport::new(&sender_settings) {
                        Ok(transport) => transport,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    sender::run(sender_buffer, transport, sender_settings, stop, drain).await;
                });
                let _ = done_tx.send(());
            })
            .map_err(TransportError::Runtime)?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(TransportError::Runtime(std::io::Error::other(
                    "the export thread stopped at start",
                )));
            }
        }
        let task = tokio::spawn(async move {
            // Sent (or dropped, if the thread panicked) when the sender is done.
            let _ = done_rx.await;
        });
        Ok((
            Exporter {
                buffer,
                settings: Arc::new(settings),
            },
            task,
        ))
    }

    /// The settings it runs on.
    pub fn settings(&self) -> &ExportSettings {
        &self.settings
    }

    /// Room for a payload of `signal` with `items` items and `bytes` encoded bytes, taken
    /// before the payload is copied or built; `None` when the buffer is full, with the items
    /// counted as dropped (`buffer_full`). Never waits.
    pub fn reserve(&self, signal: Signal, items: u64, bytes: usize) -> Option<Reservation> {
        self.buffer.reserve(signal, items, bytes)
    }

    /// Queues a payload into room reserved for it. The payload may have grown a little since
    /// the reservation (pattern attributes added); the room is not re-measured.
    pub fn push(&self, reservation: Reservation, payload: Payload) {
        self.buffer.push(reservation, payload);
    }

    /// A payload in reserved room that is not queued yet (it is on its way through the
    /// agent, to be tagged with its patterns). Dropped without [`Pending::send`], its items are
    /// counted as dropped (`shutdown`): an agent stopping with it in a queue loses it, and says
    /// so.
    pub fn pending(&self, mut reservation: Reservation, payload: Payload) -> Pending {
        // The items it holds are the payload's from now on (the receiver may have kept fewer
        // than it reserved room for).
        reservation.resize(payload.items());
        Pending {
            exporter: self.clone(),
            room: Some(reservation),
            payload,
        }
    }

    /// Reserves room for a payload and queues it; returns whether it was taken (if not, it
    /// is counted as dropped).
    pub fn offer(&self, payload: Payload) -> bool {
        if payload.is_empty() {
            return true;
        }
        match self.reserve(payload.signal(), payload.items(), payload.encoded_len()) {
            Some(room) => {
                self.push(room, payload);
                true
            }
            None => false,
        }
    }

    /// Counts `items` of `signal` as dropped for `reason` (the agent counts what a kill lost
    /// at the next start with [`DropReason::LostAtRestart`]).
    pub fn note_lost(&self, signal: Signal, reason: DropReason, items: u64) {
        self.buffer.drop_items(signal, reason, items);
    }

    /// Counters since start.
    pub fn stats(&self) -> ExportStats {
        self.buffer.stats()
    }
}

/// A payload in reserved room, on its way to the buffer (see [`Exporter::pending`]).
#[derive(Debug)]
pub struct Pending {
    exporter: Exporter,
    room: Option<Reservation>,
    payload: Payload,
}

impl Pending {
    /// The payload, to tag before it is sent.
    pub fn payload_mut(&mut self) -> &mut Payload {
        &mut self.payload
    }

    /// Queues it.
    pub fn send(mut self) {
        if let Some(room) = self.room.take() {
            let payload = std::mem::replace(&mut self.payload, Payload::Traces(Default::default()));
            self.exporter.push(room, payload);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(room) = self.room.take() {
            room.drop_for(DropReason::Shutdown);
        }
    }
}

/// The nice value of the sender's thread: above the agent's own threads (0), so that under
/// CPU contention forwarding waits and ingestion goes on (at nice +10 a thread gets about a
/// tenth of the CPU a nice-0 thread gets when both want it).
pub const SENDER_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority to [`SENDER_NICE`]. On Linux the nice
/// value is per thread (the `setpriority` man page, NOTES), so the rest of the agent keeps its
/// own. Raising one's nice value needs no privilege; a failure leaves the thread at the
/// agent's priority, which is only slower for ingestion under contention.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
        let failed = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, SENDER_NICE) != 0
        };
        if failed {
            tracing::debug!(
                "cannot lower the export thread's priority: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}
