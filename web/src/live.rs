//! Live updates: the stores announce changes, the dashboard hears them over Server-Sent
//! Events (`GET /api/v1/events`).
//!
//! A store calls [`LiveUpdates::notify`] whenever its data changed, as often as it likes (per
//! record is fine): a notification only bumps a version number in a `tokio::sync::watch`
//! channel, so bursts coalesce for free. Each SSE connection waits for a version change,
//! waits out the rest of a short quiet interval, and then sends one event per kind of data
//! that changed. A browser thus refetches at most a few times a second however hard the
//! incident hits, and never polls.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Serialize;
use tokio::sync::watch;

use crate::Shared;

/// Shortest time between two events of one SSE connection.
const MIN_EVENT_INTERVAL: Duration = Duration::from_millis(500);

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Clusters were created, counted or changed emergence.
    Clusters,
    /// Traces were received or completed.
    Traces,
    /// Counters were sampled.
    Counters,
}

/// Version numbers of each kind of data; each bump means "changed since".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
struct Versions {
    clusters: u64,
    traces: u64,
    counters: u64,
}

/// The change feed shared by the stores (writers) and the SSE handler (readers). Cloning it
/// gives another handle to the same feed.
#[derive(Clone)]
pub struct LiveUpdates {
    versions: watch::Sender<Versions>,
}

impl Default for LiveUpdates {
    fn default() -> Self {
        Self::new()
    }
}

impl LiveUpdates {
    /// A feed with nothing changed yet.
    pub fn new() -> Self {
        Self {
            versions: watch::Sender::new(Versions::default()),
        }
    }

    /// Announces that `change` happened. Cheap and never blocks.
    pub fn notify(&self, change: Change) {
        self.versions.send_modify(|v| match change {
            Change::Clusters => v.clusters += 1,
            Change::Traces => v.traces += 1,
            Change::Counters => v.counters += 1,
        });
    }
}

/// One event of the stream, as the OpenAPI document describes it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Describes the wire format; events are written by axum's `Event`.
pub(crate) struct LiveEvent {
    /// `hello`, `clusters`, `traces` or `counters`.
    event: String,
    /// The new version number of that kind of data.
    data: String,
}

/// `GET /api/v1/events`: the SSE stream. Events are named `clusters`, `traces`, `counters`;
/// their data is the new version number. A `hello` event opens the stream.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "live",
    responses(
        (status = 200, description = "Server-Sent Events stream; events `hello`, `clusters`, `traces`, `counters`, each with a version number as data", content_type = "text/event-stream", body = LiveEvent),
    )
)]
pub(crate) async fn events(
    State(shared): State<Shared>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = shared.live.versions.subscribe();
    let stream = futures::stream::unfold(
        (receiver, None::<Versions>, Vec::<Event>::new()),
        |(mut receiver, last, mut pending)| async move {
            if let Some(event) = pending.pop() {
                return Some((Ok(event), (receiver, last, pending)));
            }
            let Some(seen) = last else {
                let now = *receiver.borrow_and_update();
                let hello = Event::default().event("hello").data("0");
                return Some((Ok(hello), (receiver, Some(now), pending)));
            };
            // The sender lives as long as the router's state; when it is gone, the stream ends.
            receiver.changed().await.ok()?;
            // Let a burst of changes settle into one event per kind.
            tokio::time::sleep(MIN_EVENT_INTERVAL).await;
            let now = *receiver.borrow_and_update();
            for (name, old, new) in [
                ("counters", seen.counters, now.counters),
                ("traces", seen.traces, now.traces),
                ("clusters", seen.clusters, now.clusters),
            ] {
                if old != new {
                    pending.push(Event::default().event(name).data(new.to_string()));
                }
            }
            let event = pending
                .pop()
                .unwrap_or_else(|| Event::default().comment("no change"));
            Some((Ok(event), (receiver, Some(now), pending)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}
