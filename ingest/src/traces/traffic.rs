//! Requests and failures per service and second, from SERVER spans and access lines: the
//! service's own traffic, beside which a 5xx surge or a drop in requests is a signal of its
//! own (an access line with status 500 and no error text is not an error *pattern*; it is a
//! failed request, counted here).
//!
//! A request counts once: from its SERVER span when the service sends spans, else from its
//! access line. Once a service has sent a SERVER span, its access lines are no longer counted
//! (they would count the same requests twice).
//!
//! Execution model: one mutex, taken for O(1) work per request (requests arrive mostly in
//! time order: a bump of the last second or a push) and for one read of every series.
//! Bounds: at most [`MAX_SERVICES`] services (a request of one more is counted in
//! `refused`), [`SECONDS`] seconds per service (the oldest second leaves first).

use std::collections::{BTreeMap, VecDeque};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Most services counted.
pub const MAX_SERVICES: usize = 256;

/// Seconds kept per service: as long as the node counters' full-resolution history (15 min),
/// beside which these series are read.
pub const SECONDS: usize = 900;

/// One service's requests and failures, one entry per second, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficSeries {
    /// The service.
    pub service: String,
    /// The first second (Unix seconds).
    pub start_unix_secs: i64,
    /// Requests in each second.
    pub requests: Vec<u32>,
    /// Failed requests (status ERROR or HTTP status >= 500) in each second.
    pub failures: Vec<u32>,
}

#[derive(Debug, Default)]
struct Service {
    from_spans: bool,
    seconds: VecDeque<(i64, u32, u32)>,
}

/// Where a request was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestSource {
    /// A SERVER span.
    ServerSpan,
    /// An access line (a log record with an HTTP status).
    AccessLine,
}

/// Requests and failures per service and second; see the module documentation.
#[derive(Debug, Default)]
pub struct ServiceTraffic {
    inner: Mutex<(BTreeMap<String, Service>, u64)>,
}

impl ServiceTraffic {
    /// Nothing counted yet.
    pub fn new() -> Self {
        ServiceTraffic::default()
    }

    /// Counts one request of `service` at `unix_nanos`.
    pub fn record(&self, service: &str, unix_nanos: i64, failed: bool, source: RequestSource) {
        let second = unix_nanos.div_euclid(1_000_000_000);
        let mut guard = self.inner.lock();
        let (services, refused) = &mut *guard;
        if !services.contains_key(service) && services.len() >= MAX_SERVICES {
            *refused += 1;
            return;
        }
        let entry = services.entry(service.to_owned()).or_default();
        match source {
            RequestSource::ServerSpan => entry.from_spans = true,
            RequestSource::AccessLine if entry.from_spans => return,
            RequestSource::AccessLine => {}
        }
        let failed = u32::from(failed);
        let seconds = &mut entry.seconds;
        match seconds.back_mut() {
            Some(last) if last.0 == second => {
                last.1 = last.1.saturating_add(1);
                last.2 = last.2.saturating_add(failed);
            }
            Some(last) if last.0 > second => {
                let at = seconds.partition_point(|e| e.0 < second);
                match seconds.get_mut(at) {
                    Some(slot) if slot.0 == second => {
                        slot.1 = slot.1.saturating_add(1);
                        slot.2 = slot.2.saturating_add(failed);
                    }
                    _ => seconds.insert(at, (second, 1, failed)),
                }
            }
            _ => seconds.push_back((second, 1, failed)),
        }
        while seconds.len() > SECONDS {
            seconds.pop_front();
        }
    }

    /// The services whose requests are counted from their SERVER spans: those that send
    /// spans.
    pub fn span_senders(&self) -> Vec<String> {
        self.inner
            .lock()
            .0
            .iter()
            .filter(|(_, s)| s.from_spans)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Requests refused because [`MAX_SERVICES`] services were already counted.
    pub fn refused(&self) -> u64 {
        self.inner.lock().1
    }

    /// Every service's series over the `seconds` seconds ending at `now_unix_secs`
    /// (inclusive), zeros where nothing was counted; services without a request in that span
    /// are left out.
    pub fn series(&self, now_unix_secs: i64, seconds: usize) -> Vec<TrafficSeries> {
        let seconds = seconds.clamp(1, SECONDS);
        let start = now_unix_secs - seconds as i64 + 1;
        let guard = self.inner.lock();
        guard
            .0
            .iter()
            .filter_map(|(name, service)| {
                let mut requests = vec![0u32; seconds];
                let mut failures = vec![0u32; seconds];
                let mut any = false;
                for &(sec, r, f) in &service.seconds {
                    if let Some(i) = usize::try_from(sec - start).ok().filter(|&i| i < seconds) {
                        requests[i] = r;
                        failures[i] = f;
                        any = true;
                    }
                }
                any.then(|| TrafficSeries {
                    service: name.clone(),
                    start_unix_secs: start,
                    requests,
                    failures,
                })
            })
            .collect()
    }
}

/// One service's counted seconds as saved across an agent restart (see
/// [`ServiceTraffic::save`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedServiceTraffic {
    /// The service.
    pub service: String,
    /// Whether its requests were counted from SERVER spans (its access lines are then not).
    pub from_spans: bool,
    /// (Unix second, requests, failures) of each second with a request, oldest first.
    pub seconds: Vec<(i64, u32, u32)>,
}

impl ServiceTraffic {
    /// The seconds at or after `since_unix_secs` of every service with a request in them:
    /// what a restarted agent needs as its services' baseline.
    pub fn save(&self, since_unix_secs: i64) -> Vec<SavedServiceTraffic> {
        let guard = self.inner.lock();
        guard
            .0
            .iter()
            .filter_map(|(name, service)| {
                let start = service.seconds.partition_point(|e| e.0 < since_unix_secs);
                (start < service.seconds.len()).then(|| SavedServiceTraffic {
                    service: name.clone(),
                    from_spans: service.from_spans,
                    seconds: service.seconds.range(start..).copied().collect(),
                })
            })
            .collect()
    }

    /// Takes back what [`ServiceTraffic::save`] kept, beside what was counted since the
    /// start: a second counted since is kept as counted, a saved second not counted since is
    /// added. Within the bounds ([`MAX_SERVICES`] services, the newest [`SECONDS`] seconds);
    /// returns the seconds added.
    pub fn restore(&self, saved: Vec<SavedServiceTraffic>) -> usize {
        let mut guard = self.inner.lock();
        let (services, _) = &mut *guard;
        let mut added = 0;
        for s in saved {
            if !services.contains_key(&s.service) && services.len() >= MAX_SERVICES {
                continue;
            }
            let entry = services.entry(s.service).or_default();
            entry.from_spans |= s.from_spans;
            let mut merged: Vec<(i64, u32, u32)> = Vec::with_capacity(entry.seconds.len());
            let (mut old, mut new) = (s.seconds.into_iter().peekable(), entry.seconds.drain(..));
            let mut next_new = new.next();
            loop {
                match (old.peek().copied(), next_new) {
                    (Some(o), Some(n)) if o.0 < n.0 => {
                        if merged.last().is_none_or(|l| l.0 < o.0) {
                            merged.push(o);
                            added += 1;
                        }
                        old.next();
                    }
                    (Some(o), Some(n)) => {
                        if o.0 == n.0 {
                            old.next();
                        }
                        merged.push(n);
                        next_new = new.next();
                    }
                    (Some(o), None) => {
                        if merged.last().is_none_or(|l| l.0 < o.0) {
                            merged.push(o);
                            added += 1;
                        }
                        old.next();
                    }
                    (None, Some(n)) => {
                        merged.push(n);
                        next_new = new.next();
                    }
                    (None, None) => break,
                }
            }
            drop(new);
            let skip = merged.len().saturating_sub(SECONDS);
            entry.seconds = merged.into_iter().skip(skip).collect();
        }
        added
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn requests_and_failures_per_second_with_spans_preferred_over_access_lines() {
        let traffic = ServiceTraffic::new();
        let t0 = 1_700_000_000;
        traffic.record("orders", t0 * S, false, RequestSource::AccessLine);
        traffic.record("orders", t0 * S + 5, true, RequestSource::AccessLine);
        traffic.record("orders", (t0 + 2) * S, true, RequestSource::ServerSpan);
        // From now on orders' access lines are the same requests as its spans.
        traffic.record("orders", (t0 + 2) * S, true, RequestSource::AccessLine);
        // A late request lands in its own second.
        traffic.record("orders", (t0 + 1) * S, false, RequestSource::ServerSpan);
        traffic.record("gateway", (t0 + 2) * S, false, RequestSource::ServerSpan);
        let series = traffic.series(t0 + 2, 3);
        assert_eq!(series.len(), 2);
        let orders = series
            .iter()
            .find(|s| s.service == "orders")
            .expect("orders");
        assert_eq!(orders.start_unix_secs, t0);
        assert_eq!(orders.requests, [2, 1, 1]);
        assert_eq!(orders.failures, [1, 0, 1]);
        // A window with nothing in it lists nobody.
        assert!(traffic.series(t0 + 100, 10).is_empty());
    }

    /// What a restarted agent saved comes back beside what it counted since: seconds counted
    /// since are kept as they are, saved seconds fill in before them, and a service known
    /// from spans stays so.
    #[test]
    fn saved_seconds_come_back_beside_those_counted_since_the_start() {
        let before = ServiceTraffic::new();
        let t0 = 1_700_000_000;
        for (dt, failed) in [(0, false), (0, true), (1, false), (3, false)] {
            before.record("orders", (t0 + dt) * S, failed, RequestSource::ServerSpan);
        }
        before.record("edge", t0 * S, false, RequestSource::AccessLine);
        let saved = before.save(t0 + 1);
        assert_eq!(saved.len(), 1, "edge has nothing since t0 + 1: {saved:?}");
        assert_eq!(saved[0].seconds, [(t0 + 1, 1, 0), (t0 + 3, 1, 0)]);
        assert!(saved[0].from_spans);

        let after = ServiceTraffic::new();
        after.record("orders", (t0 + 3) * S, true, RequestSource::ServerSpan);
        after.record("orders", (t0 + 4) * S, false, RequestSource::ServerSpan);
        // orders: t0 and t0 + 1 added, t0 + 3 kept as counted since; edge: t0.
        assert_eq!(after.restore(before.save(t0)), 3);
        let orders = after
            .series(t0 + 4, 5)
            .into_iter()
            .find(|s| s.service == "orders")
            .expect("orders");
        assert_eq!(orders.requests, [2, 1, 0, 1, 1]);
        assert_eq!(orders.failures, [1, 0, 0, 1, 0]);
        // The access lines of a service known from spans are still not counted.
        after.record("orders", (t0 + 4) * S, false, RequestSource::AccessLine);
        assert_eq!(after.series(t0 + 4, 1)[0].requests, [1]);
    }

    #[test]
    fn services_and_seconds_stay_bounded() {
        let traffic = ServiceTraffic::new();
        for i in 0..(MAX_SERVICES + 5) {
            traffic.record(&format!("s{i}"), 0, false, RequestSource::ServerSpan);
        }
        assert_eq!(traffic.refused(), 5);
        for sec in 0..(SECONDS as i64 + 50) {
            traffic.record("s0", sec * S, false, RequestSource::ServerSpan);
        }
        let last = SECONDS as i64 + 49;
        let s0 = traffic
            .series(last, SECONDS)
            .into_iter()
            .find(|s| s.service == "s0")
            .expect("s0");
        assert_eq!(s0.requests.iter().sum::<u32>(), SECONDS as u32);
    }
}
