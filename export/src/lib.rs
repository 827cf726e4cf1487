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
//! the network or on room. One sender task ([`Exporter::spawn`]) takes the waiting payloads in
//! order, merges consecutive payloads of one signal into one request (up to
//! `max_request_bytes`), and sends one request at a time. A failed request is retried — the
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
//! - Every item (span, log record, metric data point) taken into the buffer ends up counted
//!   exactly once: delivered, or dropped as `rejected` (refused by the upstream, or rejected in
//!   a partial success), `expired` (retried for `max_retry_ms`), `shutdown` (still waiting when
//!   the agent stopped and its drain time ran out) or `lost_at_restart` (in memory when the agent
//!   was killed, counted by the agent at the next start through [`Exporter::note_lost`]).
//!   Delivery is at least once: a request that timed out after the upstream took it is sent
//!   again.

pub mod attributes;
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
pub use buffer::{DropCount, DropReason, ExportStats, Reservation, UpstreamState};
pub use config::{ExportConfig, ExportConfigError, ExportSettings, Protocol};
pub use payload::{Payload, Signal};
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
    /// An exporter for these settings and its sender task, which runs until `stop` is
    /// cancelled; then the waiting payloads get `drain` to go out and the rest is counted as
    /// dropped (`shutdown`). Must be called inside a tokio runtime. Nothing is connected yet:
    /// a dead upstream at start is a retried failure, not an error.
    pub fn spawn(
        settings: ExportSettings,
        stop: CancellationToken,
        drain: Duration,
    ) -> Result<(Exporter, JoinHandle<()>), TransportError> {
        let transport = transport::Transport::new(&settings)?;
        let buffer = Arc::new(Buffer::new(settings.buffer_bytes));
        let task = tokio::spawn(sender::run(
            buffer.clone(),
            transport,
            settings.clone(),
            stop,
            drain,
        ));
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
    pub fn pending(&self, reservation: Reservation, payload: Payload) -> Pending {
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
        if self.room.take().is_some() {
            self.exporter.note_lost(
                self.payload.signal(),
                DropReason::Shutdown,
                self.payload.items(),
            );
        }
    }
}
