//! Call-chain assembly: from the spans and logs of one trace to the tree a person reads.
//!
//! The input is whatever has arrived so far, in any order and possibly hostile: parents that
//! never came (orphans), parent links that form cycles, services whose clocks disagree, trees
//! deeper than any real call. The builder never recurses deeper than [`MAX_TREE_DEPTH`]: the
//! shape is decided first with an explicit stack, and subtrees that would be deeper are shown
//! as separate roots flagged `detached`.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use faultline_diagnosis::culprit::{address_in, fault_of};

use super::span::{Span, SpanKind};
use crate::record::{LogRecord, SpanId, TraceId};

/// Deepest nesting a call chain shows; deeper spans start a new, `detached` root.
pub const MAX_TREE_DEPTH: usize = 128;

/// One span in a call chain, with its logs and children.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainNode {
    /// The span itself (service, operation, kind, times, status, attributes, events).
    #[serde(flatten)]
    pub span: Span,
    /// Duration in nanoseconds.
    pub duration_nanos: i64,
    /// Start relative to the start of the trace, after clock-skew correction (for layout).
    pub offset_nanos: i64,
    /// The shift applied to this span's times for layout because its service's clock
    /// disagreed with its parent's (zero when none was needed).
    pub clock_skew_nanos: i64,
    /// The span failed (status ERROR or an `exception` event).
    pub failed: bool,
    /// The span names a parent that is not in the trace (not received, or evicted).
    pub orphan: bool,
    /// The span was cut from its parent because the tree was deeper than [`MAX_TREE_DEPTH`],
    /// or its parent links formed a cycle.
    pub detached: bool,
    /// Log records of this span, oldest first.
    pub logs: Vec<LogRecord>,
    /// Error-pattern (cluster) ids seen on this span.
    pub cluster_ids: Vec<String>,
    /// Child spans, by (corrected) start time.
    pub children: Vec<ChainNode>,
}

/// The caller that saw a failure which starts in its callee.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeenBy {
    /// The caller's failing CLIENT span.
    pub span_id: SpanId,
    /// The caller.
    pub service: String,
    /// The CLIENT span's operation.
    pub operation: String,
    /// How the callee was known: `child_span`, `peer_service`, `peer_address` or
    /// `address_in_text`.
    pub link: String,
}

/// Where the error of a trace starts.
///
/// A failing CLIENT span whose error is a transport error caused on the callee's side (EOF,
/// reset, refused, timeout, ... — see `faultline_diagnosis::culprit::Fault`) does not start
/// the error when its callee is known: the origin is then the callee (its SERVER span when
/// it is in the trace) and the caller is [`seen_by`](Self::seen_by).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorOrigin {
    /// The span where it starts: the callee's SERVER span, else the failing span.
    pub span_id: SpanId,
    /// The service where it starts.
    pub service: String,
    /// The operation of `span_id`.
    pub operation: String,
    /// The error text: the first exception message, else the status message.
    pub message: Option<String>,
    /// The first exception type recorded on the span.
    pub exception_type: Option<String>,
    /// The first error log (warn and above, or with an error field) under that span.
    pub first_error_log: Option<LogRecord>,
    /// The caller that saw it, when the error starts in the callee of a failing call.
    pub seen_by: Option<SeenBy>,
}

/// A trace as a call chain: the span tree with logs under their spans, plus what an SRE asks
/// first (which services, how long, where the time went, where the error starts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallChain {
    /// The trace.
    pub trace_id: TraceId,
    /// Services in call order (depth-first through the tree, children by start time).
    pub services: Vec<String>,
    /// Earliest start (Unix nanoseconds) over spans, else over logs.
    pub start_unix_nanos: i64,
    /// From the earliest corrected start to the latest corrected end.
    pub duration_nanos: i64,
    /// Number of spans.
    pub span_count: usize,
    /// Roots of the tree: the real root first, then orphans and detached subtrees.
    pub roots: Vec<ChainNode>,
    /// Span ids from the root down the chain of last-finishing children: what the end of the
    /// trace waited on.
    pub critical_path: Vec<SpanId>,
    /// The deepest failing span whose failure no failing child explains, with its first error
    /// log; `None` when nothing failed.
    pub error_origin: Option<ErrorOrigin>,
    /// Error-pattern (cluster) ids of the trace's errors.
    pub cluster_ids: Vec<String>,
    /// Logs of the trace whose span is not in the trace (or that name no span), oldest first.
    pub unplaced_logs: Vec<LogRecord>,
}

/// Everything the store holds about one trace, copied out so the chain is built unlocked.
pub(crate) struct TraceParts {
    pub trace_id: TraceId,
    pub spans: Vec<Span>,
    pub logs: Vec<LogRecord>,
    pub cluster_ids: Vec<String>,
    pub span_clusters: HashMap<SpanId, Vec<String>>,
}

/// Whether a span failed: status ERROR, or an `exception` event recorded on it.
pub(crate) fn span_failed(span: &Span) -> bool {
    span.is_error() || span.events.iter().any(|e| e.is_exception())
}

fn log_time(log: &LogRecord) -> i64 {
    log.time_unix_nanos.unwrap_or(log.observed_unix_nanos)
}

/// The decided shape of the tree: who hangs under whom, and each span's layout shift.
struct Shape {
    roots: Vec<(usize, RootKind)>,
    children: Vec<Vec<usize>>,
    depth: Vec<usize>,
    shift: Vec<i64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RootKind {
    Root,
    Orphan,
    Detached,
}

/// Layout shift of a child so that it sits inside its parent, when its clock disagrees.
///
/// Only a span of another service is moved (within one process the clock is shared, so a child
/// outside its parent is real, e.g. async work). The child is centred in the parent, the
/// usual assumption that request and response latency are equal.
fn skew_shift(parent: &Span, parent_shift: i64, child: &Span) -> i64 {
    let p_start = parent.start_unix_nanos.saturating_add(parent_shift);
    let p_end = parent.end_unix_nanos.saturating_add(parent_shift);
    let c_start = child.start_unix_nanos.saturating_add(parent_shift);
    let c_end = child.end_unix_nanos.saturating_add(parent_shift);
    if child.service == parent.service || (c_start >= p_start && c_end <= p_end) {
        return parent_shift;
    }
    let slack = parent
        .duration_nanos()
        .saturating_sub(child.duration_nanos())
        .max(0);
    let target = p_start.saturating_add(slack / 2);
    parent_shift.saturating_add(target.saturating_sub(c_start))
}

fn decide_shape(spans: &[Span]) -> Shape {
    let n = spans.len();
    let index: HashMap<SpanId, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id, i))
        .collect();
    let mut by_start: Vec<usize> = (0..n).collect();
    by_start.sort_by_key(|&i| (spans[i].start_unix_nanos, spans[i].span_id));

    let mut wanted_children: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut candidates: Vec<(usize, RootKind)> = Vec::new();
    for &i in &by_start {
        match spans[i].parent_span_id {
            None => candidates.push((i, RootKind::Root)),
            Some(parent) => match index.get(&parent) {
                Some(&p) if p != i => wanted_children[p].push(i),
                // Its own parent: a cycle of one, shown as detached below.
                Some(_) => {}
                None => candidates.push((i, RootKind::Orphan)),
            },
        }
    }
    // Real roots first, then orphans; each group by start time (already sorted).
    candidates.sort_by_key(|&(_, kind)| kind != RootKind::Root);

    let mut shape = Shape {
        roots: Vec::new(),
        children: vec![Vec::new(); n],
        depth: vec![0; n],
        shift: vec![0; n],
    };
    let mut visited = vec![false; n];
    let mut pending: Vec<(usize, RootKind)> = candidates;
    // Spans in a parent cycle are reachable from no root: they come last, as detached roots.
    pending.extend(by_start.iter().map(|&i| (i, RootKind::Detached)));
    let mut next = 0;
    while next < pending.len() {
        let (root, kind) = pending[next];
        next += 1;
        if visited[root] {
            continue;
        }
        visited[root] = true;
        shape.roots.push((root, kind));
        let mut stack = vec![root];
        while let Some(at) = stack.pop() {
            for &child in &wanted_children[at] {
                if visited[child] {
                    continue;
                }
                if shape.depth[at] + 1 >= MAX_TREE_DEPTH {
                    pending.push((child, RootKind::Detached));
                    continue;
                }
                visited[child] = true;
                shape.depth[child] = shape.depth[at] + 1;
                shape.shift[child] = skew_shift(&spans[at], shape.shift[at], &spans[child]);
                shape.children[at].push(child);
                stack.push(child);
            }
        }
    }
    for list in &mut shape.children {
        list.sort_by_key(|&c| {
            (
                spans[c].start_unix_nanos.saturating_add(shape.shift[c]),
                spans[c].span_id,
            )
        });
    }
    shape
}

struct Builder<'a> {
    spans: &'a [Span],
    shape: &'a Shape,
    logs_by_span: HashMap<SpanId, Vec<LogRecord>>,
    span_clusters: &'a HashMap<SpanId, Vec<String>>,
    trace_start: i64,
}

impl Builder<'_> {
    /// Recursion is bounded by [`MAX_TREE_DEPTH`] through the decided shape.
    fn node(&mut self, i: usize, kind: Option<RootKind>) -> ChainNode {
        let span = &self.spans[i];
        let shift = self.shape.shift[i];
        let children = self.shape.children[i]
            .iter()
            .map(|&c| self.node(c, None))
            .collect();
        ChainNode {
            span: span.clone(),
            duration_nanos: span.duration_nanos(),
            offset_nanos: span
                .start_unix_nanos
                .saturating_add(shift)
                .saturating_sub(self.trace_start),
            clock_skew_nanos: shift,
            failed: span_failed(span),
            orphan: kind == Some(RootKind::Orphan),
            detached: kind == Some(RootKind::Detached),
            logs: self.logs_by_span.remove(&span.span_id).unwrap_or_default(),
            cluster_ids: self
                .span_clusters
                .get(&span.span_id)
                .cloned()
                .unwrap_or_default(),
            children,
        }
    }
}

fn first_error_log(logs: &[LogRecord]) -> Option<LogRecord> {
    logs.iter()
        .filter(|l| l.is_errorish())
        .min_by_key(|l| log_time(l))
        .cloned()
}

/// The callee of a failing CLIENT span whose error is a transport error caused on the
/// callee's side: (its SERVER span in the trace, if any; its service; how it was known).
fn known_callee(
    spans: &[Span],
    shape: &Shape,
    client: usize,
    text: &str,
    listeners: &[(u16, String)],
) -> Option<(Option<usize>, String, &'static str)> {
    let span = &spans[client];
    if span.kind != SpanKind::Client || !fault_of(text).blames_callee() {
        return None;
    }
    if let Some(&server) = shape.children[client]
        .iter()
        .find(|&&c| spans[c].kind == SpanKind::Server && spans[c].service != span.service)
    {
        return Some((Some(server), spans[server].service.clone(), "child_span"));
    }
    let listening = |port: u16| {
        listeners
            .binary_search_by_key(&port, |(p, _)| *p)
            .ok()
            .map(|i| listeners[i].1.clone())
            .filter(|s| *s != span.service)
    };
    let (peer_service, _, peer_port) = span.peer();
    if let Some(peer) = peer_service.filter(|p| *p != span.service) {
        return Some((None, peer.to_owned(), "peer_service"));
    }
    if let Some(service) = peer_port.and_then(listening) {
        return Some((None, service, "peer_address"));
    }
    let (_, port) = address_in(text)?;
    listening(port).map(|service| (None, service, "address_in_text"))
}

/// Builds the call chain of one trace; `listeners` (port → service, sorted by port) maps the
/// address a failing call names to its callee.
pub(crate) fn build_chain(parts: TraceParts, listeners: &[(u16, String)]) -> CallChain {
    let TraceParts {
        trace_id,
        spans,
        mut logs,
        cluster_ids,
        span_clusters,
    } = parts;
    let shape = decide_shape(&spans);
    let adj_start = |i: usize| spans[i].start_unix_nanos.saturating_add(shape.shift[i]);
    let adj_end = |i: usize| spans[i].end_unix_nanos.saturating_add(shape.shift[i]);

    logs.sort_by_key(log_time);
    let (trace_start, trace_end) = if spans.is_empty() {
        let first = logs.first().map(log_time).unwrap_or(0);
        let last = logs.last().map(log_time).unwrap_or(first);
        (first, last)
    } else {
        let first = (0..spans.len()).map(adj_start).min().unwrap_or(0);
        let last = (0..spans.len()).map(adj_end).max().unwrap_or(first);
        (first, last)
    };

    // Walk the decided shape once, depth first, for services, error origin and critical path.
    let mut services: Vec<String> = Vec::new();
    let mut seen_services: HashSet<&str> = HashSet::new();
    let mut origin: Option<(usize, usize, i64)> = None; // (span, depth, corrected start)
    for &(root, _) in &shape.roots {
        let mut stack = vec![root];
        while let Some(at) = stack.pop() {
            let span = &spans[at];
            if seen_services.insert(span.service.as_str()) {
                services.push(span.service.clone());
            }
            let failed = span_failed(span);
            let explained = shape.children[at].iter().any(|&c| span_failed(&spans[c]));
            if failed && !explained {
                let candidate = (at, shape.depth[at], adj_start(at));
                let better = match origin {
                    None => true,
                    Some((_, depth, start)) => {
                        candidate.1 > depth || (candidate.1 == depth && candidate.2 < start)
                    }
                };
                if better {
                    origin = Some(candidate);
                }
            }
            stack.extend(shape.children[at].iter().rev().copied());
        }
    }

    let mut critical_path = Vec::new();
    if let Some(&(root, _)) = shape.roots.first() {
        let mut at = root;
        critical_path.push(spans[at].span_id);
        while let Some(&last) = shape.children[at]
            .iter()
            .max_by_key(|&&c| (adj_end(c), std::cmp::Reverse(adj_start(c))))
        {
            at = last;
            critical_path.push(spans[at].span_id);
        }
    }

    let known: HashSet<SpanId> = spans.iter().map(|s| s.span_id).collect();
    let mut logs_by_span: HashMap<SpanId, Vec<LogRecord>> = HashMap::new();
    let mut unplaced_logs = Vec::new();
    for log in logs {
        match log.span_id {
            Some(id) if known.contains(&id) => logs_by_span.entry(id).or_default().push(log),
            _ => unplaced_logs.push(log),
        }
    }

    // Without a failing span, the deepest span holding an error log is where the error shows.
    if origin.is_none() {
        for (i, span) in spans.iter().enumerate() {
            let has_error_log = logs_by_span
                .get(&span.span_id)
                .is_some_and(|l| l.iter().any(LogRecord::is_errorish));
            if has_error_log {
                let candidate = (i, shape.depth[i], adj_start(i));
                if origin.is_none_or(|(_, d, s)| {
                    candidate.1 > d || (candidate.1 == d && candidate.2 < s)
                }) {
                    origin = Some(candidate);
                }
            }
        }
    }
    let error_origin = origin.map(|(i, _, _)| {
        let span = &spans[i];
        let exception = span.events.iter().find(|e| e.is_exception());
        let message = exception
            .and_then(|e| e.attribute("exception.message"))
            .map(str::to_owned)
            .or_else(|| (!span.status_message.is_empty()).then(|| span.status_message.clone()));
        let exception_type = exception
            .and_then(|e| e.attribute("exception.type"))
            .map(str::to_owned);
        let callee = message
            .as_deref()
            .and_then(|text| known_callee(&spans, &shape, i, text, listeners));
        match callee {
            Some((server, service, link)) => {
                let at = server.map_or(span, |s| &spans[s]);
                ErrorOrigin {
                    span_id: at.span_id,
                    service,
                    operation: at.name.clone(),
                    message,
                    exception_type,
                    first_error_log: logs_by_span
                        .get(&at.span_id)
                        .and_then(|l| first_error_log(l)),
                    seen_by: Some(SeenBy {
                        span_id: span.span_id,
                        service: span.service.clone(),
                        operation: span.name.clone(),
                        link: link.to_owned(),
                    }),
                }
            }
            None => ErrorOrigin {
                span_id: span.span_id,
                service: span.service.clone(),
                operation: span.name.clone(),
                message,
                exception_type,
                first_error_log: logs_by_span
                    .get(&span.span_id)
                    .and_then(|l| first_error_log(l)),
                seen_by: None,
            },
        }
    });

    let mut builder = Builder {
        spans: &spans,
        shape: &shape,
        logs_by_span,
        span_clusters: &span_clusters,
        trace_start,
    };
    let roots = shape
        .roots
        .iter()
        .map(|&(i, kind)| builder.node(i, Some(kind)))
        .collect();

    CallChain {
        trace_id,
        services,
        start_unix_nanos: trace_start,
        duration_nanos: trace_end.saturating_sub(trace_start).max(0),
        span_count: spans.len(),
        roots,
        critical_path,
        error_origin,
        cluster_ids,
        unplaced_logs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traces::span::StatusCode;

    fn span(id: u8, parent: Option<u8>, service: &str, kind: SpanKind) -> Span {
        Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([id; 8]),
            parent_span_id: parent.map(|p| SpanId([p; 8])),
            service: service.to_owned(),
            name: format!("op{id}"),
            kind,
            start_unix_nanos: i64::from(id),
            end_unix_nanos: 100,
            status: StatusCode::Unset,
            status_message: String::new(),
            attributes: Vec::new(),
            events: Vec::new(),
        }
    }

    fn failing(mut span: Span, message: &str) -> Span {
        span.status = StatusCode::Error;
        span.status_message = message.to_owned();
        span
    }

    fn chain(spans: Vec<Span>, listeners: &[(u16, String)]) -> CallChain {
        build_chain(
            TraceParts {
                trace_id: TraceId([1; 16]),
                spans,
                logs: Vec::new(),
                cluster_ids: Vec::new(),
                span_clusters: HashMap::new(),
            },
            listeners,
        )
    }

    const EOF_TEXT: &str = r#"Get "http://127.0.0.1:18080/x": EOF"#;

    #[test]
    fn a_callers_transport_error_starts_in_its_known_callee() {
        let root = span(1, None, "frontend", SpanKind::Server);
        let call = failing(span(2, Some(1), "frontend", SpanKind::Client), EOF_TEXT);
        let callee = span(3, Some(2), "orders", SpanKind::Server);
        let origin = chain(vec![root.clone(), call.clone(), callee], &[])
            .error_origin
            .expect("an origin");
        assert_eq!(origin.service, "orders");
        assert_eq!(origin.span_id, SpanId([3; 8]));
        let seen = origin.seen_by.expect("seen by the caller");
        assert_eq!(
            (seen.service.as_str(), seen.span_id),
            ("frontend", SpanId([2; 8]))
        );
        assert_eq!(seen.link, "child_span");

        // No callee span: the address in the error, mapped to its listener.
        let listeners = [(18080, "orders".to_owned())];
        let origin = chain(vec![root.clone(), call.clone()], &listeners)
            .error_origin
            .expect("an origin");
        assert_eq!(origin.service, "orders");
        assert_eq!(origin.span_id, SpanId([2; 8]));
        assert_eq!(
            origin.seen_by.map(|s| s.link).as_deref(),
            Some("address_in_text")
        );

        // The callee unknown, or an error of the caller's own (a name lookup): the caller.
        let origin = chain(vec![root.clone(), call], &[])
            .error_origin
            .expect("origin");
        assert_eq!(
            (origin.service.as_str(), origin.seen_by),
            ("frontend", None)
        );
        let lookup = failing(
            span(2, Some(1), "frontend", SpanKind::Client),
            "dial tcp: lookup orders: no such host",
        );
        let callee = span(3, Some(2), "orders", SpanKind::Server);
        let origin = chain(vec![root, lookup, callee], &listeners)
            .error_origin
            .expect("origin");
        assert_eq!(origin.service, "frontend");
    }
}
