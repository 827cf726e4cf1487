//! Steady user traffic into the gateway: [`REQUESTS_PER_SECOND`] requests, four in five for
//! one order (the whole chain) and one in five for the order list (gateway and orders only),
//! each on its own task, at most [`MAX_IN_FLIGHT`] at once (a tick with no room is skipped and
//! counted, so a hanging chain cannot pile up tasks).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// The users' request rate: enough for a pattern within a second of a fault and for a
/// TIME_WAIT climb of hundreds within seconds, small next to a 2-core machine's budget.
pub const REQUESTS_PER_SECOND: u64 = 20;

/// Most user requests waiting for an answer at once.
const MAX_IN_FLIGHT: usize = 200;

/// How long a user waits for the gateway.
const USER_TIMEOUT: Duration = Duration::from_secs(5);

/// What the users saw so far.
#[derive(Debug, Default)]
pub struct TrafficStats {
    sent: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
}

/// A copy of [`TrafficStats`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrafficSnapshot {
    /// Requests sent to the gateway.
    pub sent: u64,
    /// Of those, answered with an error status or not answered.
    pub failed: u64,
    /// Ticks skipped because [`MAX_IN_FLIGHT`] requests were waiting.
    pub skipped: u64,
}

impl TrafficStats {
    /// The counts now.
    pub fn snapshot(&self) -> TrafficSnapshot {
        TrafficSnapshot {
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
        }
    }
}

/// Sends traffic to the gateway at `gateway` until `stop`.
pub async fn run(
    gateway: SocketAddr,
    stats: Arc<TrafficStats>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(USER_TIMEOUT)
        .build()?;
    let room = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / REQUESTS_PER_SECOND));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sequence: u64 = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        sequence += 1;
        let Ok(permit) = room.clone().try_acquire_owned() else {
            stats.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let url = if sequence.is_multiple_of(5) {
            format!("http://{gateway}/api/orders")
        } else {
            // A spread of order ids that repeats, as real users' reads do.
            format!("http://{gateway}/api/orders/{}", (sequence * 7919) % 997)
        };
        let client = client.clone();
        let stats = stats.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            stats.sent.fetch_add(1, Ordering::Relaxed);
            let ok = tokio::select! {
                _ = stop.cancelled() => return,
                answer = client.get(&url).send() => {
                    answer.is_ok_and(|response| response.status().is_success())
                }
            };
            if !ok {
                stats.failed.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}
