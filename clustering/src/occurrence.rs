//! One count per failure: the reports of one failure are folded into one occurrence.
//!
//! A failed request is usually reported several times: the callee logs it, the caller logs its
//! echo (`Get "http://…": EOF`), and each of them records an error span carrying the same text.
//! Counting every report inflated a pattern's count three to six times the failed requests
//! (issue #11). Within one trace, a pattern therefore counts once: the first report is the
//! *occurrence*, every later report of the same pattern in the same trace is one of its
//! echoes, which only adds to where the occurrence was *seen* (the sources and services that
//! reported it). Reports without a trace id cannot be joined and count one each.
//!
//! The key is the pattern (cluster) the report was placed in, not its root: a caller's log
//! line that keeps a logfmt tail (`... connection reset by peer upstream=checkout
//! trace_id=...`) has another root than its CLIENT span's text yet is the same failure in the
//! same pattern (the fault lab counted such failures twice with a root key). A DBSCAN re-run
//! that regroups roots changes the key only for traces still in flight.
//!
//! [`RecentTraces`] remembers the recent (pattern, trace) pairs. Bound: at most `capacity`
//! pairs; the oldest pair (by first report) leaves first. A report arriving after its pair left
//! counts again, so the bound must cover the delay between a failure's first and last report
//! (see `ClusteringConfig::recent_traces`). Memory per pair: the key, one byte of sources and
//! [`SERVICES_PER_OCCURRENCE`] service hashes.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::cluster::ClusterId;

/// Distinct services remembered per occurrence; a fifth service reporting the same failure in
/// one trace is counted again in the pattern's services (a call chain of more than four
/// services echoing one error is rare, and the over-count is then bounded by its length).
pub const SERVICES_PER_OCCURRENCE: usize = 4;

/// What kind of report an error event is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum EventSource {
    /// A line of a tailed log file.
    #[default]
    FileLog,
    /// An OpenTelemetry log record.
    OtlpLog,
    /// An error span (its status or an `exception` event).
    Span,
}

impl EventSource {
    /// Every source, in display order.
    pub const ALL: [EventSource; 3] = [
        EventSource::FileLog,
        EventSource::OtlpLog,
        EventSource::Span,
    ];

    fn bit(self) -> u8 {
        match self {
            EventSource::FileLog => 1,
            EventSource::OtlpLog => 2,
            EventSource::Span => 4,
        }
    }

    /// The source of a [`name`](Self::name), `None` for any other text.
    pub fn from_name(name: &str) -> Option<EventSource> {
        EventSource::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The name used in the API and in snapshots (`file_log`, `otlp_log`, `span`).
    pub fn name(self) -> &'static str {
        match self {
            EventSource::FileLog => "file_log",
            EventSource::OtlpLog => "otlp_log",
            EventSource::Span => "span",
        }
    }
}

/// What one report added to its occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Report {
    /// The report is the first of its failure: count an occurrence.
    pub first: bool,
    /// Its source had not reported this occurrence before.
    pub new_source: bool,
    /// Its service had not reported this occurrence before.
    pub new_service: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    sources: u8,
    services: [u64; SERVICES_PER_OCCURRENCE],
    service_count: u8,
}

/// The recent (root, trace) pairs; see the module documentation for the bound and eviction.
#[derive(Debug, Clone, Default)]
pub(crate) struct RecentTraces {
    capacity: usize,
    seen: HashMap<(ClusterId, u128), Seen>,
    order: VecDeque<(ClusterId, u128)>,
    /// Pairs that left because the bound was reached.
    pub(crate) evicted: u64,
}

impl RecentTraces {
    pub(crate) fn new(capacity: usize) -> Self {
        RecentTraces {
            capacity,
            ..RecentTraces::default()
        }
    }

    /// Notes one report placed in pattern `cluster`. A report without a (readable) trace id
    /// is an occurrence of its own.
    pub(crate) fn report(
        &mut self,
        cluster: ClusterId,
        trace_id: Option<&str>,
        source: EventSource,
        service: Option<&str>,
    ) -> Report {
        let trace = trace_id.and_then(|t| u128::from_str_radix(t, 16).ok());
        let Some(trace) = trace.filter(|_| self.capacity > 0) else {
            return Report {
                first: true,
                new_source: true,
                new_service: true,
            };
        };
        let service_hash = service.map(|s| xxh3_64(s.as_bytes()));
        let key = (cluster, trace);
        if let Some(seen) = self.seen.get_mut(&key) {
            let new_source = seen.sources & source.bit() == 0;
            seen.sources |= source.bit();
            let new_service = match service_hash {
                None => false,
                Some(h) => {
                    let known = &seen.services[..seen.service_count as usize];
                    if known.contains(&h) {
                        false
                    } else {
                        if (seen.service_count as usize) < SERVICES_PER_OCCURRENCE {
                            seen.services[seen.service_count as usize] = h;
                            seen.service_count += 1;
                        }
                        true
                    }
                }
            };
            return Report {
                first: false,
                new_source,
                new_service,
            };
        }
        while self.seen.len() >= self.capacity {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if self.seen.remove(&oldest).is_some() {
                self.evicted += 1;
            }
        }
        let mut seen = Seen {
            sources: source.bit(),
            ..Seen::default()
        };
        if let Some(h) = service_hash {
            seen.services[0] = h;
            seen.service_count = 1;
        }
        self.seen.insert(key, seen);
        self.order.push_back(key);
        Report {
            first: true,
            new_source: true,
            new_service: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const A: ClusterId = ClusterId(1);
    const B: ClusterId = ClusterId(2);

    #[test]
    fn echoes_in_one_trace_count_once_and_say_where_they_were_seen() {
        let mut recent = RecentTraces::new(8);
        let first = recent.report(A, Some(TRACE), EventSource::FileLog, Some("orders"));
        assert_eq!(
            first,
            Report {
                first: true,
                new_source: true,
                new_service: true
            }
        );
        // The same failure's error span in the same service: a new source only.
        let span = recent.report(A, Some(TRACE), EventSource::Span, Some("orders"));
        assert!(!span.first && span.new_source && !span.new_service);
        // The caller's log line (upper-case id as some senders write it): a new service.
        let caller = recent.report(
            A,
            Some(&TRACE.to_uppercase()),
            EventSource::FileLog,
            Some("gateway"),
        );
        assert!(!caller.first && !caller.new_source && caller.new_service);
        // Another pattern in the same trace is an occurrence of its own.
        assert!(recent.report(B, Some(TRACE), EventSource::Span, None).first);
        // Reports without a trace, or with an unreadable one, count one each.
        assert!(recent.report(A, None, EventSource::FileLog, None).first);
        assert!(recent.report(A, None, EventSource::FileLog, None).first);
        assert!(
            recent
                .report(A, Some("zz"), EventSource::FileLog, None)
                .first
        );
    }

    #[test]
    fn the_oldest_pair_leaves_first_and_is_counted() {
        let mut recent = RecentTraces::new(2);
        let traces = ["1", "2", "3"];
        for t in traces {
            assert!(recent.report(A, Some(t), EventSource::Span, None).first);
        }
        assert_eq!(recent.evicted, 1);
        // "1" left: its late echo counts again; "3" is still known.
        assert!(recent.report(A, Some("3"), EventSource::Span, None) == Report::default());
        assert!(recent.report(A, Some("1"), EventSource::Span, None).first);
    }
}
