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
//! A report that only tells an HTTP error status ([`crate::root::reports_http_status`]: the
//! message-less error span `HTTP 502 from GET /x`, a caller's `unexpected status 502 Bad
//! Gateway`) is how a failure echoes up the call chain, whatever its pattern: in a trace whose
//! failure is known (the first report that is not a status report), it is folded into that
//! failure, adding where it was seen. One that arrives before its trace's failure (logs and
//! spans reach the agent by different paths) counts until the failure arrives and is then
//! taken back ([`Retraction`]: its root's count, per-minute and per-second counts and sources;
//! its sample and services stay, as only their hashes are kept here). A status report in a
//! trace with no other failure is the only word of that failure and counts. Without this,
//! the echoes were patterns of their own with one count per failed request, ranked beside the
//! fault's pattern in every failing fault of the Go lab (issue #11).
//!
//! [`RecentTraces`] remembers the recent (pattern, trace) pairs and traces. Bound: at most `capacity`
//! pairs; the oldest pair (by first report) leaves first. A report arriving after its pair left
//! counts again, so the bound must cover the delay between a failure's first and last report
//! (see `ClusteringConfig::recent_traces`). Memory per pair: the key, one byte of sources and
//! [`SERVICES_PER_OCCURRENCE`] service hashes; per trace (as many, the oldest leaving first):
//! its failure's pattern and at most [`PROVISIONAL_PER_TRACE`] status occurrences.

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
    /// A status report folded into its trace's failure: that failure's pattern and root
    /// (the occurrence the sources and services are added to).
    pub folded_into: Option<(ClusterId, RootRef)>,
    /// The report has no (readable) trace id: an occurrence of its own, one per record.
    pub untraced: bool,
    /// A failure of its own (counted) in a trace that had already failed with another
    /// pattern: that pattern. The failed request is counted in both patterns, so whoever
    /// adds the two up (an incident holding both) subtracts it once.
    pub failed_before_in: Option<ClusterId>,
}

/// A root as the engine numbers it, with the numbering's generation: roots are renumbered
/// when some are evicted, and a reference from before that must not touch another root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct RootRef {
    pub root: u32,
    pub generation: u64,
}

/// What kind of failure report an event is (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReportKind {
    /// A failure told by its own error text.
    Failure,
    /// Only an HTTP error status a request got ([`crate::root::reports_http_status`]).
    Status,
}

/// A status report that was counted as an occurrence before its trace's failure arrived,
/// to be taken back from its root: counted at `time_unix_nanos`, seen in `sources`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retraction {
    pub root: RootRef,
    pub time_unix_nanos: i64,
    pub sources: u8,
    /// The sources that were new to the failure's occurrence.
    pub new_failure_sources: u8,
}

/// Status occurrences remembered per trace for a later retraction; more (a chain of more
/// than four services each counting the echo before the failure arrived) stay counted.
const PROVISIONAL_PER_TRACE: usize = 4;

#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    sources: u8,
    services: [u64; SERVICES_PER_OCCURRENCE],
    service_count: u8,
}

#[derive(Debug, Clone, Copy)]
struct Provisional {
    cluster: ClusterId,
    root: RootRef,
    time_unix_nanos: i64,
}

/// What is known of one trace: the pattern of its first failure, and the status reports
/// counted before it.
#[derive(Debug, Clone, Default)]
struct TraceFailures {
    failure: Option<(ClusterId, RootRef)>,
    provisional: Vec<Provisional>,
}

/// The recent (pattern, trace) pairs and traces; see the module documentation for the bound
/// and eviction.
#[derive(Debug, Clone, Default)]
pub(crate) struct RecentTraces {
    capacity: usize,
    seen: HashMap<(ClusterId, u128), Seen>,
    order: VecDeque<(ClusterId, u128)>,
    traces: HashMap<u128, TraceFailures>,
    trace_order: VecDeque<u128>,
    /// Pairs that left because the bound was reached.
    pub(crate) evicted: u64,
}

/// Sources in `bits` (as [`EventSource::bit`] sets them).
pub(crate) fn sources_of(bits: u8) -> impl Iterator<Item = EventSource> {
    EventSource::ALL
        .into_iter()
        .filter(move |s| bits & s.bit() != 0)
}

impl RecentTraces {
    pub(crate) fn new(capacity: usize) -> Self {
        RecentTraces {
            capacity,
            ..RecentTraces::default()
        }
    }

    /// Notes one failure report placed in pattern `cluster` (see [`report_kind`]).
    #[cfg(test)]
    pub(crate) fn report(
        &mut self,
        cluster: ClusterId,
        trace_id: Option<&str>,
        source: EventSource,
        service: Option<&str>,
    ) -> Report {
        let root = RootRef::default();
        self.report_kind(
            cluster,
            trace_id,
            source,
            service,
            (ReportKind::Failure, root, 0),
            &mut Vec::new(),
        )
    }

    /// Notes one report placed in pattern `cluster`, of root `what.1`, at time `what.2`. A
    /// report without a (readable) trace id is an occurrence of its own. A status report in
    /// a trace whose failure is known is folded into that failure; one that came first counts
    /// until the failure arrives, and is then pushed to `retractions` for the caller to take
    /// back from its root.
    pub(crate) fn report_kind(
        &mut self,
        cluster: ClusterId,
        trace_id: Option<&str>,
        source: EventSource,
        service: Option<&str>,
        what: (ReportKind, RootRef, i64),
        retractions: &mut Vec<Retraction>,
    ) -> Report {
        let trace = trace_id.and_then(|t| u128::from_str_radix(t, 16).ok());
        let Some(trace) = trace.filter(|_| self.capacity > 0) else {
            return Report {
                first: true,
                new_source: true,
                new_service: true,
                untraced: trace.is_none(),
                folded_into: None,
                failed_before_in: None,
            };
        };
        let service_hash = service.map(|s| xxh3_64(s.as_bytes()));
        let (kind, root, time_unix_nanos) = what;
        let failure = self.traces.get(&trace).and_then(|t| t.failure);
        match (kind, failure) {
            (ReportKind::Status, Some((failed, failed_root))) if failed != cluster => {
                let mut report = self.note((failed, trace), source.bit(), service_hash);
                report.first = false;
                report.folded_into = Some((failed, failed_root));
                report
            }
            (ReportKind::Status, _) => {
                let report = self.note((cluster, trace), source.bit(), service_hash);
                if report.first && failure.is_none() {
                    let state = self.trace_state(trace);
                    if state.provisional.len() < PROVISIONAL_PER_TRACE {
                        state.provisional.push(Provisional {
                            cluster,
                            root,
                            time_unix_nanos,
                        });
                    }
                }
                report
            }
            (ReportKind::Failure, _) => {
                let mut report = self.note((cluster, trace), source.bit(), service_hash);
                if report.first {
                    report.failed_before_in = failure
                        .map(|(failed, _)| failed)
                        .filter(|&failed| failed != cluster);
                }
                if failure.is_none() {
                    let state = self.trace_state(trace);
                    state.failure = Some((cluster, root));
                    let provisional = std::mem::take(&mut state.provisional);
                    for p in provisional {
                        // The echo's pair goes: its later reports fold into the failure.
                        let Some(seen) = self.seen.remove(&(p.cluster, trace)) else {
                            continue;
                        };
                        let into = self.seen.entry((cluster, trace)).or_default();
                        let new_failure_sources = seen.sources & !into.sources;
                        into.sources |= seen.sources;
                        retractions.push(Retraction {
                            root: p.root,
                            time_unix_nanos: p.time_unix_nanos,
                            sources: seen.sources,
                            new_failure_sources,
                        });
                    }
                }
                report
            }
        }
    }

    /// The state of `trace`, made (evicting the oldest beyond the bound) when new.
    fn trace_state(&mut self, trace: u128) -> &mut TraceFailures {
        if !self.traces.contains_key(&trace) {
            while self.traces.len() >= self.capacity {
                let Some(oldest) = self.trace_order.pop_front() else {
                    break;
                };
                self.traces.remove(&oldest);
            }
            self.trace_order.push_back(trace);
        }
        self.traces.entry(trace).or_default()
    }

    /// Adds one report to the occurrence `key`, making it when new.
    fn note(&mut self, key: (ClusterId, u128), source: u8, service_hash: Option<u64>) -> Report {
        if let Some(seen) = self.seen.get_mut(&key) {
            let new_source = seen.sources & source == 0;
            seen.sources |= source;
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
                untraced: false,
                folded_into: None,
                failed_before_in: None,
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
            sources: source,
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
            untraced: false,
            folded_into: None,
            failed_before_in: None,
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
                new_service: true,
                untraced: false,
                folded_into: None,
                failed_before_in: None,
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
        // Another pattern in the same trace is an occurrence of its own, in a request that
        // had already failed with A: once, however many reports it has.
        let other = recent.report(B, Some(TRACE), EventSource::Span, None);
        assert!(other.first);
        assert_eq!(other.failed_before_in, Some(A));
        let again = recent.report(B, Some(TRACE), EventSource::FileLog, None);
        assert_eq!(again.failed_before_in, None);
        // Reports without a trace, or with an unreadable one, count one each.
        let untraced = recent.report(A, None, EventSource::FileLog, None);
        assert!(untraced.first && untraced.untraced);
        assert!(recent.report(A, None, EventSource::FileLog, None).first);
        assert!(!other.untraced);
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
