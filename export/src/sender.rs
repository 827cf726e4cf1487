//! The sender task: takes batches from the buffer, sends them one at a time, retries the
//! retryable failures with exponential backoff (or the delay the upstream asked for), and
//! counts every item as delivered or dropped.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::buffer::{Buffer, DropReason};
use crate::config::ExportSettings;
use crate::payload::{request_body, Signal};
use crate::transport::{Failure, Transport};

/// Runs until `stop`, then gives the waiting items `drain` to get out and counts the rest as
/// dropped (`shutdown`).
pub(crate) async fn run(
    buffer: std::sync::Arc<Buffer>,
    transport: Transport,
    settings: ExportSettings,
    stop: CancellationToken,
    drain: Duration,
) {
    let mut deadline: Option<Instant> = None;
    loop {
        if deadline.is_none() && stop.is_cancelled() {
            deadline = Some(Instant::now() + drain);
        }
        let batch = buffer.take_batch(settings.max_request_bytes);
        let Some(signal) = batch.first().map(|e| e.signal) else {
            if deadline.is_some() {
                break;
            }
            tokio::select! {
                _ = stop.cancelled() => {
                    deadline = Some(Instant::now() + drain);
                }
                _ = buffer.notify.notified() => {}
            }
            continue;
        };
        // Encoded once per batch, whatever the retries.
        let body = request_body(batch.iter().map(|e| &e.payload));
        let outcome = send_with_retry(
            &buffer,
            &transport,
            &settings,
            (signal, &body),
            (&stop, drain),
            &mut deadline,
        )
        .await;
        drop(body);
        match outcome {
            Outcome::Delivered { rejected } => {
                let items: u64 = batch.iter().map(|e| e.items).sum();
                buffer.settle(batch, items.saturating_sub(rejected), DropReason::Rejected);
            }
            Outcome::Dropped(reason) => buffer.settle(batch, 0, reason),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
    }
    for entry in buffer.close() {
        buffer.settle(vec![entry], 0, DropReason::Shutdown);
    }
}

enum Outcome {
    Delivered { rejected: u64 },
    Dropped(DropReason),
}

async fn send_with_retry(
    buffer: &Buffer,
    transport: &Transport,
    settings: &ExportSettings,
    (signal, body): (Signal, &Bytes),
    (stop, drain): (&CancellationToken, Duration),
    deadline: &mut Option<Instant>,
) -> Outcome {
    let started = Instant::now();
    let mut backoff = settings.initial_backoff;
    loop {
        let send = transport.send(signal, body.clone());
        tokio::pin!(send);
        let attempt = loop {
            tokio::select! {
                result = &mut send => break Some(result),
                _ = stop.cancelled(), if deadline.is_none() => {
                    *deadline = Some(Instant::now() + drain);
                }
                // At the drain deadline an attempt still waiting on a silent upstream is
                // given up.
                _ = sleep_until(*deadline) => break None,
            }
        };
        let failure = match attempt {
            Some(Ok(delivered)) => {
                buffer.succeeded();
                if delivered.rejected > 0 {
                    tracing::warn!(
                        "the upstream rejected {} of the forwarded {}: {}",
                        delivered.rejected,
                        signal.as_str(),
                        delivered.message
                    );
                }
                return Outcome::Delivered {
                    rejected: delivered.rejected,
                };
            }
            Some(Err(failure)) => failure,
            None => return Outcome::Dropped(DropReason::Shutdown),
        };
        let (after, why) = match failure {
            Failure::Permanent { why } => {
                buffer.failed(&why);
                tracing::warn!("forwarding refused by the upstream, dropped: {why}");
                return Outcome::Dropped(DropReason::Rejected);
            }
            Failure::Retryable { after, why } => (after, why),
        };
        buffer.failed(&why);
        tracing::debug!("forwarding failed, retrying: {why}");
        if started.elapsed() >= settings.max_retry {
            tracing::warn!(
                "forwarding gave up after {:?} of retries: {why}",
                settings.max_retry
            );
            return Outcome::Dropped(DropReason::Expired);
        }
        let wait = after
            .unwrap_or_else(|| jitter(backoff))
            .min(settings.max_retry);
        backoff = (backoff * 2).min(settings.max_backoff);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled(), if deadline.is_none() => {
                *deadline = Some(Instant::now() + drain);
            }
            _ = sleep_until(*deadline) => return Outcome::Dropped(DropReason::Shutdown),
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// `base` less up to half of it, at random: agents that lost the same upstream at the same
/// moment do not all come back at the same moment.
fn jitter(base: Duration) -> Duration {
    let r = getrandom::u64().unwrap_or(0) % 1000;
    base - base / 2 * (r as u32) / 1000
}
