//! The trace store: spans and log records joined on trace id, bounded in every direction.
//!
//! Spans (from OTLP) and log records (from tailed files and OTLP logs) arrive in any order;
//! whichever comes first creates the trace, the rest attaches to it. One mutex guards the
//! maps: every operation under it is O(items inserted) or O(one trace), except the listing.
//! A listing by error pattern reads only the traces tagged with it (an index kept with the
//! tags); other listings scan the traces' summaries and keep the `limit` most recent without
//! sorting the rest. The diagnosis lists every emerging pattern's traces each second: as
//! full scans and sorts of a full store (100,000 traces) that was 60 % of the agent's CPU at
//! 1,000 lines/s + 1,000 spans/s (issue #12). Call chains are built from a copy, after the
//! lock is released. Spans and logs are held encoded (`compact`) and decoded only for the
//! traces a reader gets.
//!
//! Eviction policy: traces are ordered by when they were last touched (a span or a log added).
//! When `max_traces`, `max_total_spans` or `max_total_logs` would be exceeded the least
//! recently touched traces go (`evicted_traces`); traces untouched for `retention_secs` expire (`expired_traces`). Spans
//! beyond `max_spans_per_trace` are refused — the caller reports them as rejected to the
//! sender — and logs beyond `max_logs_per_trace` are dropped (`dropped_logs`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::chain::{build_chain, outline, span_failed, CallChain, TraceParts};
use super::compact::{encode_log_into, encode_span_into, Names, Records};
use super::config::TraceStoreConfig;
use super::slot_index::{SlotIndex, MAX_SLOTS};
use super::span::{Span, SpanKind};
use super::traffic::{RequestSource, ServiceTraffic};
use crate::record::{LogRecord, SpanId, TraceId};

/// Counters of the trace store, for `/metrics` and the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceStoreStats {
    /// Traces held now.
    pub traces: usize,
    /// Spans held now.
    pub spans: usize,
    /// Log records held now.
    pub logs: usize,
    /// Traces evicted because `max_traces` was reached.
    pub evicted_traces: u64,
    /// Traces expired after `retention_secs` without a new span or log.
    pub expired_traces: u64,
    /// Spans refused because their trace had `max_spans_per_trace` spans.
    pub refused_spans: u64,
    /// Log records dropped because their trace had `max_logs_per_trace` logs.
    pub dropped_logs: u64,
}

/// What happened to a batch of spans given to [`TraceStore::insert_spans`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    /// Spans now in the store (a span id sent again replaces the earlier copy).
    pub stored: usize,
    /// Spans refused because their trace was full.
    pub refused: usize,
}

/// Filters of [`TraceStore::list`]. All given filters must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TraceFilter {
    /// Only traces tagged with one of these cluster ids (a pattern's current id and the ids
    /// it had before); every trace when empty.
    pub clusters: Vec<String>,
    /// Only traces with a span of this service (or a log of it).
    pub service: Option<String>,
    /// Only traces with a failed span or an error log.
    pub errors_only: bool,
    /// At most this many rows (default 100).
    pub limit: Option<usize>,
}

/// One row of the trace list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceSummary {
    /// The trace.
    pub trace_id: TraceId,
    /// Service of the root span (the earliest span when the root has not arrived).
    pub root_service: Option<String>,
    /// Operation of that span.
    pub root_operation: Option<String>,
    /// Services in call order.
    pub services: Vec<String>,
    /// Earliest start (Unix nanoseconds).
    pub start_unix_nanos: i64,
    /// Total duration (clock-skew corrected).
    pub duration_nanos: i64,
    /// Number of spans.
    pub span_count: usize,
    /// Number of log records.
    pub log_count: usize,
    /// A span failed or an error log was seen.
    pub error: bool,
    /// Failed spans plus error logs (placed under a span or not).
    pub error_count: usize,
    /// Error-pattern (cluster) ids of the trace.
    pub cluster_ids: Vec<String>,
}

/// One trace. Its spans and log records are held encoded ([`Records`]): the store keeps up to
/// `max_traces` of them, and only the few a reader asks for are decoded.
struct TraceEntry {
    trace_id: TraceId,
    seq: u64,
    touched: Instant,
    records: Records,
    spans: u32,
    logs: u32,
    /// Error-pattern tags: only traces with an error have them.
    tags: Option<Box<Tags>>,
    services: Vec<Arc<str>>,
    error: bool,
    start: i64,
}

#[derive(Default)]
struct Tags {
    cluster_ids: Vec<String>,
    span_clusters: HashMap<SpanId, Vec<String>>,
}

impl TraceEntry {
    fn new(trace_id: TraceId, seq: u64, now: Instant) -> Self {
        TraceEntry {
            trace_id,
            seq,
            touched: now,
            records: Records::default(),
            spans: 0,
            logs: 0,
            tags: None,
            services: Vec::new(),
            error: false,
            start: i64::MAX,
        }
    }

    fn note_service(&mut self, service: &str, names: &mut Names) {
        if !self.services.iter().any(|s| &**s == service) {
            self.services.push(names.shared(service));
        }
    }

    fn cluster_ids(&self) -> &[String] {
        self.tags.as_ref().map_or(&[], |t| &t.cluster_ids)
    }

    fn parts(&self, trace_id: TraceId, names: &Names) -> TraceParts {
        let (spans, logs) = self.records.decode(trace_id, names);
        TraceParts {
            trace_id,
            spans,
            logs,
            cluster_ids: self.cluster_ids().to_vec(),
            span_clusters: self
                .tags
                .as_ref()
                .map(|t| t.span_clusters.clone())
                .unwrap_or_default(),
        }
    }
}

#[derive(Default)]
struct Inner {
    /// Trace id → the trace's slot in `slots` ([`SlotIndex`]: 8-byte buckets, at most half
    /// full; a full default store's is 262,144 buckets, 2 MB). See the test
    /// `a_churning_full_store_stays_under_its_memory_ceiling`.
    index: SlotIndex,
    /// The traces, each in a slot of its own; a freed slot (`None`) is listed in `free` and
    /// taken by the next new trace. Why a slab rather than the entries boxed in the table
    /// (what it was): every new trace evicts the least recently touched one, and the order
    /// queue names a trace by its slot, so telling a stale pair from a live one reads one slot
    /// instead of probing the table (its control bytes and its bucket, two cache misses on a
    /// table of megabytes) and then following the box (a third); an evicted trace's slot is
    /// filled at once by the new one, still in the cache, with no allocation. `Inner::oldest`
    /// and `Inner::touch` were 4.6 % of the agent's CPU at 1,000 lines/s + 1,000 spans/s
    /// (perf), nearly all of it those misses. It holds at most `max_traces` slots (and never
    /// shrinks: a store that was full keeps its ~12 MB of slots once its traces expire).
    slots: Vec<Option<TraceEntry>>,
    /// Free slots of `slots`.
    free: Vec<u32>,
    /// Traces by last touch, the least recently touched first: a `(seq, slot)` pair is pushed
    /// at the back at every touch, and a trace touched again leaves its earlier pair behind,
    /// *stale* (its entry's `seq` is newer, or the slot holds another trace by then, whose
    /// `seq` is newer too). Stale pairs are skipped wherever the queue is read, dropped when
    /// they reach the front, and all at once when they would outnumber the traces (see
    /// [`Inner::touch`]). An ordered map keyed by `seq` (one removal and one insertion per
    /// touch, a descent of four levels each in a full store) was, with the table lookups
    /// around it, 4.7 % of the agent's CPU at 1,000 lines/s + 1,000 spans/s; a push and a pop
    /// are O(1) and touch one cache line.
    order: VecDeque<(u64, u32)>,
    next_seq: u64,
    spans: usize,
    logs: usize,
    /// Names shared by the encoded spans and logs.
    names: Names,
    /// Error-pattern id → the traces tagged with it (the tags of the entries, inverted), with
    /// their starts in order.
    by_cluster: HashMap<String, ClusterIndex>,
    evicted_traces: u64,
    expired_traces: u64,
    refused_spans: u64,
    dropped_logs: u64,
}

/// The traces tagged with one error pattern, and the same traces by start. The diagnosis asks
/// every second for each pattern's newest traces ([`TraceStore::tagged`]): read from the
/// ordered set, that is `limit` steps, where looking up the start of every tagged trace in the
/// trace table was a hash lookup and a cache miss per trace (5.6 % of the agent's CPU in the
/// 1,000 lines/s + 1,000 spans/s soak, with ~1,000 traces per pattern). A trace's start moves
/// when an earlier span or log arrives after the tag: [`Inner::restarted`] keeps both in step.
#[derive(Default)]
struct ClusterIndex {
    starts: HashMap<TraceId, i64>,
    /// `(start, trace)`, ascending: the newest start (then the greatest id) last.
    by_start: BTreeSet<(i64, TraceId)>,
}

impl ClusterIndex {
    /// Adds a trace, or moves it to its new start.
    fn insert(&mut self, trace_id: TraceId, start: i64) {
        if let Some(old) = self.starts.insert(trace_id, start) {
            self.by_start.remove(&(old, trace_id));
        }
        self.by_start.insert((start, trace_id));
    }

    fn remove(&mut self, trace_id: &TraceId) {
        if let Some(start) = self.starts.remove(trace_id) {
            self.by_start.remove(&(start, *trace_id));
        }
    }

    fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// The trace ids, in no order.
    fn ids(&self) -> impl Iterator<Item = &TraceId> {
        self.starts.keys()
    }

    /// `(start, trace)`, the newest start first (then by id, greatest first), as [`newest`]
    /// orders them.
    fn newest_first(&self) -> impl Iterator<Item = (i64, TraceId)> + '_ {
        self.by_start.iter().rev().copied()
    }
}

/// Stale pairs the order queue may hold beyond one per trace before it is compacted: with
/// the queue at most `2 × traces + ORDER_SLACK` long, a compaction (a pass over the queue)
/// drops at least as many pairs as there are traces, so its cost spread over the touches
/// that made them stale is O(1) each. Under the soak's load (four spans a trace, a new trace
/// per log line) a trace leaves ~0.6 stale pairs on average, and no compaction happens.
const ORDER_SLACK: usize = 1024;

impl Inner {
    /// The live traces with spans touched last, the latest first, at most `limit`, among
    /// the last `limit × RECENT_SCAN_FACTOR` touches (see [`TraceStore::recent_with_spans`]).
    /// A pair of the order queue is a live touch when its slot holds a trace touched last
    /// with its `seq` (a slot freed and taken again holds a trace with a newer one).
    fn recent_with_spans(&self, limit: usize) -> impl Iterator<Item = &TraceEntry> + '_ {
        self.order
            .iter()
            .rev()
            .filter_map(|&(seq, slot)| self.slot(slot).filter(|e| e.seq == seq))
            .take(limit.saturating_mul(RECENT_SCAN_FACTOR))
            .filter(|e| e.spans > 0)
            .take(limit)
    }

    /// The trace in `slot`, if the slot holds one.
    fn slot(&self, slot: u32) -> Option<&TraceEntry> {
        self.slots.get(slot as usize)?.as_ref()
    }

    /// The slot of a trace, by id.
    fn slot_of(&self, trace_id: &TraceId) -> Option<u32> {
        let slots = &self.slots;
        self.index.get(trace_id, |slot| {
            Some(slots.get(slot as usize)?.as_ref()?.trace_id)
        })
    }

    /// A trace by id.
    fn get(&self, trace_id: &TraceId) -> Option<&TraceEntry> {
        self.slot(self.slot_of(trace_id)?)
    }

    /// Every trace held, in no order.
    fn entries(&self) -> impl Iterator<Item = &TraceEntry> {
        self.slots.iter().flatten()
    }

    /// The slot and id of the least recently touched trace, after dropping the stale pairs in
    /// front of it.
    fn oldest(&mut self) -> Option<(u32, TraceId)> {
        while let Some(&(seq, slot)) = self.order.front() {
            if let Some(entry) = self.slot(slot).filter(|e| e.seq == seq) {
                return Some((slot, entry.trace_id));
            }
            self.order.pop_front();
        }
        None
    }

    /// Drops every stale pair of the order queue.
    fn compact_order(&mut self) {
        let slots = &self.slots;
        self.order.retain(|&(seq, slot)| {
            slots
                .get(slot as usize)
                .and_then(Option::as_ref)
                .is_some_and(|e| e.seq == seq)
        });
    }

    /// A tagged trace's start moved (an earlier span or log arrived): its place in the
    /// indexes of its patterns follows.
    fn restarted(&mut self, trace_id: TraceId) {
        let Some(slot) = self.slot_of(&trace_id) else {
            return;
        };
        let Some(entry) = self.slots.get(slot as usize).and_then(Option::as_ref) else {
            return;
        };
        for cluster in entry.cluster_ids() {
            if let Some(index) = self.by_cluster.get_mut(cluster) {
                index.insert(trace_id, entry.start);
            }
        }
    }

    /// The entry of a trace, created if new (evicting the least recently touched trace when
    /// full), and marked as just touched.
    fn touch(&mut self, trace_id: TraceId, now: Instant, max_traces: usize) -> &mut TraceEntry {
        if self.order.len() >= 2 * self.index.len() + ORDER_SLACK {
            self.compact_order();
        }
        let last = self.order.back().copied();
        let (slot, seq) = match self.slot_of(&trace_id) {
            Some(slot) => match self.slot(slot) {
                // Touched last already (the spans of one trace in a row): its pair stays.
                Some(entry) if last == Some((entry.seq, slot)) => (slot, entry.seq),
                _ => (slot, self.push_touch(slot)),
            },
            None => {
                // A slot number is a u32: more traces than that cannot be held.
                let max_traces = max_traces.clamp(1, MAX_SLOTS);
                while self.index.len() >= max_traces {
                    if !self.remove_oldest() {
                        break;
                    }
                    self.evicted_traces += 1;
                }
                let slot = match self.free.pop() {
                    Some(slot) => slot,
                    None => {
                        self.slots.push(None);
                        (self.slots.len() - 1) as u32
                    }
                };
                let seq = self.push_touch(slot);
                // The slot is in `slots`: it was free or was just made.
                self.slots[slot as usize] = Some(TraceEntry::new(trace_id, seq, now));
                self.index.insert(&trace_id, slot);
                (slot, seq)
            }
        };
        // The slot is in `slots`: it came from the index or was just made.
        let entry =
            self.slots[slot as usize].get_or_insert_with(|| TraceEntry::new(trace_id, seq, now));
        entry.seq = seq;
        entry.touched = now;
        entry
    }

    /// Puts `slot` at the back of the order queue with a new `seq`, and returns it.
    fn push_touch(&mut self, slot: u32) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.push_back((seq, slot));
        seq
    }

    /// Evicts least recently touched traces, never `keep`, until the totals fit.
    fn shed(&mut self, keep: TraceId, max_spans: usize, max_logs: usize) {
        while self.spans > max_spans || self.logs > max_logs {
            match self.oldest() {
                Some((_, oldest)) if oldest != keep => {
                    self.remove_oldest();
                    self.evicted_traces += 1;
                }
                // Only the trace being written is left: its own caps bound it.
                _ => break,
            }
        }
    }

    /// Removes the least recently touched trace; `false` when there is none.
    fn remove_oldest(&mut self) -> bool {
        let Some((slot, trace_id)) = self.oldest() else {
            return false;
        };
        self.order.pop_front();
        let slots = &self.slots;
        self.index.remove(&trace_id, |slot| {
            Some(slots.get(slot as usize)?.as_ref()?.trace_id)
        });
        let Some(entry) = self.slots.get_mut(slot as usize).and_then(Option::take) else {
            return true;
        };
        self.free.push(slot);
        self.spans -= entry.spans as usize;
        self.logs -= entry.logs as usize;
        for cluster in entry.cluster_ids() {
            if let Some(traces) = self.by_cluster.get_mut(cluster) {
                traces.remove(&trace_id);
                if traces.is_empty() {
                    self.by_cluster.remove(cluster);
                }
            }
        }
        true
    }
}

/// Port → (service, when last named, by a counter of notes).
type ListenerMap = BTreeMap<u16, (String, u64)>;

/// Most ports remembered in the listener map (port → the service whose SERVER spans say
/// they were served there); when full, the port named least recently leaves first.
pub const MAX_LISTENERS: usize = 1024;

/// [`TraceStore::recent_with_spans`] looks at most this many touches per trace asked for.
pub const RECENT_SCAN_FACTOR: usize = 16;

/// Spans and logs joined into traces; see the module documentation for bounds and eviction.
/// Cheap to share: wrap it in an `Arc`.
///
/// Besides the traces, two node-wide facts are taken from the spans as they arrive: which
/// service serves on which port (the *listeners*, from SERVER spans; culprit attribution maps
/// the `host:port` in a caller's error to its callee with them) and each service's
/// requests and failures per second ([`ServiceTraffic`]).
pub struct TraceStore {
    config: TraceStoreConfig,
    inner: Mutex<Inner>,
    listeners: Mutex<(ListenerMap, u64)>,
    traffic: ServiceTraffic,
}

impl TraceStore {
    /// An empty store with these bounds.
    pub fn new(config: TraceStoreConfig) -> Self {
        TraceStore {
            config,
            inner: Mutex::new(Inner::default()),
            listeners: Mutex::new((BTreeMap::new(), 0)),
            traffic: ServiceTraffic::new(),
        }
    }

    /// Which service serves on which port, as the SERVER spans received say (port order).
    pub fn listeners(&self) -> Vec<(u16, String)> {
        self.listeners
            .lock()
            .0
            .iter()
            .map(|(port, (service, _))| (*port, service.clone()))
            .collect()
    }

    /// Requests and failures per service and second (SERVER spans are counted as they
    /// arrive; the record pipeline adds access lines).
    pub fn traffic(&self) -> &ServiceTraffic {
        &self.traffic
    }

    fn note_server_span(&self, span: &Span) {
        if span.kind != SpanKind::Server {
            return;
        }
        let failed = span.is_error() || span.http_status().is_some_and(|s| s >= 500);
        self.traffic.record(
            &span.service,
            span.start_unix_nanos,
            failed,
            RequestSource::ServerSpan,
        );
        let Some(port) = span.served_port() else {
            return;
        };
        let mut guard = self.listeners.lock();
        let (ports, seq) = &mut *guard;
        *seq += 1;
        if !ports.contains_key(&port) && ports.len() >= MAX_LISTENERS {
            if let Some(oldest) = ports.iter().min_by_key(|(_, (_, s))| *s).map(|(p, _)| *p) {
                ports.remove(&oldest);
            }
        }
        ports.insert(port, (span.service.clone(), *seq));
    }

    /// The bounds the store was made with.
    pub fn config(&self) -> &TraceStoreConfig {
        &self.config
    }

    /// Adds spans (of any traces, in any order). A span whose id is already in its trace
    /// replaces the earlier copy, so a retried export does not double spans. Returns how many
    /// were stored and how many were refused because their trace was full.
    pub fn insert_spans(&self, spans: Vec<Span>) -> InsertOutcome {
        let now = Instant::now();
        let mut outcome = InsertOutcome::default();
        let mut inner = self.inner.lock();
        self.expire_locked(&mut inner, now);
        let max_spans = self.config.max_spans_per_trace;
        // Out of `inner` while its entries are borrowed; put back below.
        let mut names = std::mem::take(&mut inner.names);
        let mut body = Vec::with_capacity(128);
        for span in spans {
            let span_trace = span.trace_id;
            let failed = span_failed(&span);
            let start = span.start_unix_nanos;
            encode_span_into(&span, &mut names, &mut body);
            let entry = inner.touch(span_trace, now, self.config.max_traces);
            let added = if entry.records.replace_span(span.span_id, &body) {
                Some(false)
            } else if entry.spans as usize >= max_spans {
                None
            } else {
                // Counted once, when first stored: a retried export replaces, not adds.
                self.note_server_span(&span);
                entry.records.push_span(&body);
                entry.spans += 1;
                Some(true)
            };
            let mut restarted = false;
            if added.is_some() {
                entry.error |= failed;
                restarted = start < entry.start && entry.tags.is_some();
                entry.start = entry.start.min(start);
                entry.note_service(&span.service, &mut names);
            }
            if restarted {
                inner.restarted(span_trace);
            }
            match added {
                None => {
                    inner.refused_spans += 1;
                    outcome.refused += 1;
                }
                Some(new) => {
                    if new {
                        inner.spans += 1;
                        inner.shed(
                            span_trace,
                            self.config.max_total_spans,
                            self.config.max_total_logs,
                        );
                    }
                    outcome.stored += 1;
                }
            }
        }
        inner.names = names;
        outcome
    }

    /// Attaches log records to their traces (by trace id; placed under their span when they
    /// name one). A record without a trace id is ignored. Returns how many were attached.
    pub fn attach_logs(&self, records: Vec<LogRecord>) -> usize {
        let now = Instant::now();
        let mut attached = 0;
        let mut inner = self.inner.lock();
        self.expire_locked(&mut inner, now);
        let max_logs = self.config.max_logs_per_trace;
        // Out of `inner` while its entries are borrowed; put back below.
        let mut names = std::mem::take(&mut inner.names);
        let mut body = Vec::with_capacity(128);
        for record in records {
            let Some(trace_id) = record.trace_id else {
                continue;
            };
            encode_log_into(&record, &mut names, &mut body);
            let entry = inner.touch(trace_id, now, self.config.max_traces);
            if entry.logs as usize >= max_logs {
                inner.dropped_logs += 1;
                continue;
            }
            entry.error |= record.is_errorish();
            let start = record.time_unix_nanos.unwrap_or(record.observed_unix_nanos);
            let restarted = start < entry.start && entry.tags.is_some();
            entry.start = entry.start.min(start);
            if let Some(service) = &record.service {
                entry.note_service(service, &mut names);
            }
            entry.records.push_log(&body);
            entry.logs += 1;
            if restarted {
                inner.restarted(trace_id);
            }
            inner.logs += 1;
            inner.shed(
                trace_id,
                self.config.max_total_spans,
                self.config.max_total_logs,
            );
            attached += 1;
        }
        inner.names = names;
        attached
    }

    /// Attaches one log record; see [`attach_logs`](Self::attach_logs).
    pub fn attach_log(&self, record: LogRecord) -> bool {
        self.attach_logs(vec![record]) == 1
    }

    /// Tags a trace (and one of its spans, if given) with an error-pattern id, so the trace
    /// lists under the cluster and the chain shows it. Unknown traces are ignored; at most
    /// `max_clusters_per_trace` ids are kept per trace and per span.
    pub fn tag_cluster(&self, trace_id: TraceId, span_id: Option<SpanId>, cluster_id: &str) {
        let max = self.config.max_clusters_per_trace;
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let Some(entry) = inner
            .slot_of(&trace_id)
            .and_then(|slot| inner.slots.get_mut(slot as usize)?.as_mut())
        else {
            return;
        };
        let tags = entry.tags.get_or_insert_with(Box::default);
        if tags.cluster_ids.len() < max && !tags.cluster_ids.iter().any(|c| c == cluster_id) {
            tags.cluster_ids.push(cluster_id.to_owned());
            inner
                .by_cluster
                .entry(cluster_id.to_owned())
                .or_default()
                .insert(trace_id, entry.start);
        }
        if let Some(span_id) = span_id {
            // Bound the map itself too: tags for spans that never arrive cannot grow it.
            if tags.span_clusters.len() >= max * 4 && !tags.span_clusters.contains_key(&span_id) {
                return;
            }
            let ids = tags.span_clusters.entry(span_id).or_default();
            if ids.len() < max && !ids.iter().any(|c| c == cluster_id) {
                ids.push(cluster_id.to_owned());
            }
        }
    }

    /// The call chain of a trace, or `None` when the store does not hold it.
    pub fn call_chain(&self, trace_id: TraceId) -> Option<CallChain> {
        let parts = {
            let inner = self.inner.lock();
            inner.get(&trace_id)?.parts(trace_id, &inner.names)
        };
        Some(build_chain(parts, &self.listeners()))
    }

    /// Traces matching the filter, most recent start first, as summary rows.
    pub fn list(&self, filter: &TraceFilter) -> Vec<TraceSummary> {
        let limit = filter.limit.unwrap_or(100);
        let parts: Vec<TraceParts> = {
            let inner = self.inner.lock();
            let matches = |e: &TraceEntry| {
                (!filter.errors_only || e.error)
                    && filter
                        .service
                        .as_ref()
                        .is_none_or(|s| e.services.iter().any(|x| **x == **s))
                    && (filter.clusters.is_empty()
                        || e.cluster_ids().iter().any(|x| filter.clusters.contains(x)))
            };
            let mut hits: Vec<(i64, TraceId)> = if filter.clusters.is_empty() {
                inner
                    .entries()
                    .filter(|e| matches(e))
                    .map(|e| (e.start, e.trace_id))
                    .collect()
            } else {
                // A trace tagged with two of the ids is listed once.
                let tagged: HashSet<&TraceId> = filter
                    .clusters
                    .iter()
                    .filter_map(|c| inner.by_cluster.get(c))
                    .flat_map(ClusterIndex::ids)
                    .collect();
                tagged
                    .into_iter()
                    .filter_map(|id| inner.get(id))
                    .filter(|e| matches(e))
                    .map(|e| (e.start, e.trace_id))
                    .collect()
            };
            newest(&mut hits, limit);
            hits.iter()
                .filter_map(|(_, id)| inner.get(id).map(|e| e.parts(*id, &inner.names)))
                .collect()
        };
        parts.iter().map(summarise).collect()
    }

    /// The traces tagged with one of `clusters` (a pattern's ids), most recent start first
    /// (then by id), at most `limit`, with their starts: ids only, read from the index, so
    /// nothing is decoded (a [`list`](Self::list) row decodes its trace).
    ///
    /// Each id's `limit` newest are enough: a trace among the `limit` newest of all the ids is
    /// among the `limit` newest of any id it is tagged with. A trace tagged with two of the
    /// ids has the same start in both indexes and is listed once.
    pub fn tagged(&self, clusters: &[String], limit: usize) -> Vec<(i64, TraceId)> {
        let inner = self.inner.lock();
        let mut hits: Vec<(i64, TraceId)> = clusters
            .iter()
            .filter_map(|c| inner.by_cluster.get(c))
            .flat_map(|index| index.newest_first().take(limit))
            .collect();
        hits.sort_unstable();
        hits.dedup();
        newest(&mut hits, limit);
        hits
    }

    /// The traces with spans touched last (a span or a log added), the latest first, at most
    /// `limit`: what the node's services did just now, read from the eviction order without
    /// a scan. Only the last `limit × RECENT_SCAN_FACTOR` touches are looked at, so traces of
    /// logs only (most of them on a node that logs trace ids without exporting spans) can
    /// leave fewer.
    pub fn recent_with_spans(&self, limit: usize) -> Vec<TraceId> {
        let inner = self.inner.lock();
        inner.recent_with_spans(limit).map(|e| e.trace_id).collect()
    }

    /// The spans of the traces [`recent_with_spans`](Self::recent_with_spans) lists, each
    /// trace's in arrival order, decoded without their logs and without building a call
    /// chain: who calls whom and on which ports, which the diagnosis reads at every pass.
    /// Building those 30 chains a second, with every log of each and the web's rendering of
    /// them, was 2.1 % of the agent's CPU at 1,000 lines/s + 1,000 spans/s (profile of
    /// 6 December, `scripts/reliability/soak.py`).
    pub fn recent_spans(&self, limit: usize) -> Vec<Vec<Span>> {
        let inner = self.inner.lock();
        inner
            .recent_with_spans(limit)
            .map(|e| e.records.decode_spans(e.trace_id, &inner.names))
            .collect()
    }

    /// Current sizes and eviction counters.
    pub fn stats(&self) -> TraceStoreStats {
        let inner = self.inner.lock();
        TraceStoreStats {
            traces: inner.index.len(),
            spans: inner.spans,
            logs: inner.logs,
            evicted_traces: inner.evicted_traces,
            expired_traces: inner.expired_traces,
            refused_spans: inner.refused_spans,
            dropped_logs: inner.dropped_logs,
        }
    }

    /// Expires the traces not touched within `retention_secs` before `now`; returns how many.
    /// Inserts do this on their own; call it from a timer to free memory when input stops.
    pub fn expire(&self, now: Instant) -> usize {
        let mut inner = self.inner.lock();
        self.expire_locked(&mut inner, now)
    }

    fn expire_locked(&self, inner: &mut Inner, now: Instant) -> usize {
        let retention = Duration::from_secs(self.config.retention_secs);
        let mut expired = 0;
        while let Some((slot, _)) = inner.oldest() {
            let stale = inner
                .slot(slot)
                .is_none_or(|e| now.saturating_duration_since(e.touched) > retention);
            if !stale || !inner.remove_oldest() {
                break;
            }
            inner.expired_traces += 1;
            expired += 1;
        }
        expired
    }
}

/// Keeps the `limit` most recent hits, newest first (then by id, descending), without
/// sorting the rest.
fn newest(hits: &mut Vec<(i64, TraceId)>, limit: usize) {
    let newest_first = |a: &(i64, TraceId), b: &(i64, TraceId)| b.cmp(a);
    if hits.len() > limit && limit > 0 {
        hits.select_nth_unstable_by(limit - 1, newest_first);
    }
    hits.truncate(limit);
    hits.sort_unstable_by(newest_first);
}

/// A list row: what [`outline`] reads of the trace, with no call chain built (a list of 100
/// rows would otherwise assemble 100 trees and judge 100 culprits that it does not show).
fn summarise(parts: &TraceParts) -> TraceSummary {
    let outline = outline(parts);
    let (root_service, root_operation) = outline.root.unzip();
    TraceSummary {
        trace_id: parts.trace_id,
        root_service,
        root_operation,
        services: outline.services,
        start_unix_nanos: outline.start_unix_nanos,
        duration_nanos: outline.duration_nanos,
        span_count: parts.spans.len(),
        log_count: parts.logs.len(),
        error: outline.error_count > 0,
        error_count: outline.error_count,
        cluster_ids: parts.cluster_ids.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traces::span::StatusCode;

    fn span_of(trace: u64) -> Span {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&trace.to_le_bytes());
        id[8] = 1;
        Span {
            trace_id: TraceId(id),
            span_id: SpanId([1; 8]),
            parent_span_id: None,
            service: "orders".to_owned(),
            name: "GET /orders".to_owned(),
            kind: SpanKind::Server,
            start_unix_nanos: 1,
            end_unix_nanos: 2,
            status: StatusCode::Unset,
            status_message: String::new(),
            attributes: Vec::new(),
            events: Vec::new(),
        }
    }

    /// The trace table's memory is bounded by `max_traces` whatever goes through it: a
    /// store churned through twenty times its bound holds at most `max_traces` traces, an
    /// index of at most twice `max_traces` (rounded up to a power of two) 8-byte buckets, and
    /// at most `max_traces` slots, each taken again once freed. For the default bound
    /// (100,000 traces): 262,144 buckets, 2 MB of index besides the slots (~12 MB). The
    /// standard map of boxed entries took 6.6 MB of table; entries inline in it, 31.7 MB.
    #[test]
    fn a_churning_full_store_stays_under_its_memory_ceiling() {
        assert_eq!((100_000usize * 2).next_power_of_two() * 8, 2_097_152);
        let slot = std::mem::size_of::<Option<TraceEntry>>();
        assert!(slot <= 128, "a trace slot is {slot} bytes");
        let max = 1_000;
        let store = TraceStore::new(TraceStoreConfig {
            max_traces: max,
            ..TraceStoreConfig::default()
        });
        for trace in 0..20 * max as u64 {
            store.insert_spans(vec![span_of(trace)]);
            let inner = store.inner.lock();
            assert!(inner.index.len() <= max);
            assert!(inner.order.len() <= max);
            assert!(inner.slots.len() <= max, "{} slots", inner.slots.len());
            assert_eq!(inner.slots.len(), inner.index.len() + inner.free.len());
            assert!(inner.index.capacity() <= (max * 2).next_power_of_two());
        }
        assert_eq!(store.stats().traces, max);
        assert_eq!(store.stats().evicted_traces, 19 * max as u64);
        // Every held trace is found by its id.
        let inner = store.inner.lock();
        for trace in 19 * max as u64..20 * max as u64 {
            assert!(
                inner.get(&span_of(trace).trace_id).is_some(),
                "trace {trace}"
            );
        }
    }

    /// Traces touched again and again leave stale pairs in the order queue: they never make
    /// it longer than twice the traces plus `ORDER_SLACK`, and the least recently touched
    /// trace still goes first.
    #[test]
    fn retouched_traces_keep_the_order_queue_bounded_and_the_eviction_order() {
        let store = TraceStore::new(TraceStoreConfig {
            max_traces: 3,
            ..TraceStoreConfig::default()
        });
        let with_span = |trace: u64, span: u8| {
            let mut s = span_of(trace);
            s.span_id = SpanId([span; 8]);
            s
        };
        for round in 0..10_000u32 {
            // 0 and 1 alternate (each touch leaves the other's pair behind), 2 once.
            let span = (round % 200) as u8;
            store.insert_spans(vec![with_span(u64::from(round % 2), span)]);
            if round == 5_000 {
                store.insert_spans(vec![span_of(2)]);
            }
            let inner = store.inner.lock();
            assert!(
                inner.order.len() <= 2 * inner.index.len() + ORDER_SLACK,
                "{} pairs for {} traces",
                inner.order.len(),
                inner.index.len()
            );
        }
        // Trace 2, touched once at round 5,000, is the least recently touched: a new trace
        // evicts it, not 0 or 1.
        store.insert_spans(vec![span_of(3)]);
        let held: Vec<TraceId> = store.recent_with_spans(10);
        assert_eq!(
            held,
            vec![
                span_of(3).trace_id,
                span_of(1).trace_id,
                span_of(0).trace_id
            ]
        );
        assert_eq!(store.stats().evicted_traces, 1);
    }
}
