//! Call-chain assembly: from the spans and logs of one trace to the tree a person reads.
//!
//! The input is whatever has arrived so far, in any order and possibly hostile: parents that
//! never came (orphans), parent links that form cycles, services whose clocks disagree, trees
//! deeper than any real call. The builder never recurses deeper than [`MAX_TREE_DEPTH`]: the
//! shape is decided first with an explicit stack, and subtrees that would be deeper are shown
//! as separate roots flagged `detached`.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use faultline_diagnosis::culprit::{
    trace_culprit, CallKind, CallLog, CallSpan, Culprit, Listeners, Peer, TraceFacts,
};

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

/// Log-record attribute naming the cluster (error pattern) the pipeline assigned the record
/// to: attribution reads which pattern a log reported from it.
pub const CLUSTER_ID_ATTRIBUTE: &str = "faultline.cluster_id";

/// Where the error of a trace starts, as culprit attribution decides it
/// (`faultline_diagnosis::culprit`, the one owner of that decision for the trace page, the
/// pattern page and the incidents), placed on a span of the chain.
///
/// A failing CLIENT span whose error is a transport error caused on the callee's side (EOF,
/// reset, refused, timeout, ... — see `faultline_diagnosis::culprit::Fault`) does not start
/// the error when its callee is known: the origin is then the callee (its SERVER span when
/// it is in the trace) and the caller is among the verdict's `seen_by`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorOrigin {
    /// The span where it starts: the verdict's span (the callee's SERVER span, else the span
    /// that reported the failure).
    pub span_id: SpanId,
    /// The service where it starts (the culprit, which may differ from `span_id`'s service
    /// when the callee sent no span).
    pub service: String,
    /// The operation of `span_id`.
    pub operation: String,
    /// The error text: the span's own (first exception message, else status message), else
    /// that of the nearest failing span above it (the caller's CLIENT span of an EOF).
    pub message: Option<String>,
    /// The first exception type recorded on the span (else on that failing span above).
    pub exception_type: Option<String>,
    /// The first error log (warn and above, or with an error field) under that span.
    pub first_error_log: Option<LogRecord>,
    /// The verdict: the culprit, its role, who saw it, the failing call and the evidence.
    pub culprit: Culprit,
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
    /// Where the error starts (see [`ErrorOrigin`]), judged with the listeners the chain was
    /// built with; `None` when nothing failed or the verdict names no span of the chain.
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
    let (trace_start, trace_end) = extent(&spans, &shape, &logs);
    let services = services_in_call_order(&spans, &shape);

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

    let mut chain = CallChain {
        trace_id,
        services,
        start_unix_nanos: trace_start,
        duration_nanos: trace_end.saturating_sub(trace_start).max(0),
        span_count: spans.len(),
        roots,
        critical_path,
        error_origin: None,
        cluster_ids,
        unplaced_logs,
    };
    let listeners: Listeners = listeners.iter().cloned().collect();
    chain.error_origin =
        trace_culprit(&trace_facts(&chain), &listeners).and_then(|c| chain.origin_of(c));
    chain
}

/// The first and last instant of a trace: its spans' extent with their clock-skew shifts,
/// else (a trace of logs only) its logs'.
fn extent(spans: &[Span], shape: &Shape, logs: &[LogRecord]) -> (i64, i64) {
    if spans.is_empty() {
        let first = logs.iter().map(log_time).min().unwrap_or(0);
        let last = logs.iter().map(log_time).max().unwrap_or(first);
        return (first, last);
    }
    let adj_start = |i: usize| spans[i].start_unix_nanos.saturating_add(shape.shift[i]);
    let adj_end = |i: usize| spans[i].end_unix_nanos.saturating_add(shape.shift[i]);
    let first = (0..spans.len()).map(adj_start).min().unwrap_or(0);
    let last = (0..spans.len()).map(adj_end).max().unwrap_or(first);
    (first, last)
}

/// The services of a trace in call order: depth first through the decided shape, each once.
fn services_in_call_order(spans: &[Span], shape: &Shape) -> Vec<String> {
    let mut services: Vec<String> = Vec::new();
    let mut seen_services: HashSet<&str> = HashSet::new();
    for &(root, _) in &shape.roots {
        let mut stack = vec![root];
        while let Some(at) = stack.pop() {
            let span = &spans[at];
            if seen_services.insert(span.service.as_str()) {
                services.push(span.service.clone());
            }
            stack.extend(shape.children[at].iter().rev().copied());
        }
    }
    services
}

/// What a row of the trace list shows, read from the decided shape alone: the same root,
/// services, start and duration as the trace's [`CallChain`], without building its tree or
/// judging where its error starts (the trace list shows neither).
pub(crate) struct Outline {
    /// Service and operation of the chain's first root span.
    pub root: Option<(String, String)>,
    pub services: Vec<String>,
    pub start_unix_nanos: i64,
    pub duration_nanos: i64,
    /// Failed spans plus error logs: what [`CallChain`]'s nodes and unplaced logs hold.
    pub error_count: usize,
}

pub(crate) fn outline(parts: &TraceParts) -> Outline {
    let spans = &parts.spans;
    let shape = decide_shape(spans);
    let (start, end) = extent(spans, &shape, &parts.logs);
    let root = shape.roots.first().map(|&(i, _)| &spans[i]);
    Outline {
        root: root.map(|s| (s.service.clone(), s.name.clone())),
        services: services_in_call_order(spans, &shape),
        start_unix_nanos: start,
        duration_nanos: end.saturating_sub(start).max(0),
        error_count: spans.iter().filter(|s| span_failed(s)).count()
            + parts.logs.iter().filter(|l| l.is_errorish()).count(),
    }
}

impl CallChain {
    /// The span of this chain where `culprit` (a verdict on this trace) says the error starts,
    /// with its error text and first error log; `None` when the verdict names no span of the
    /// chain (a failure told only by logs of no span of it).
    pub fn origin_of(&self, culprit: Culprit) -> Option<ErrorOrigin> {
        let wanted = culprit.span_id.as_deref()?;
        // Depth first, each node with the error of the nearest failing span above it.
        type Inherited<'a> = Option<(Option<String>, Option<String>)>;
        let mut stack: Vec<(&ChainNode, Inherited<'_>)> =
            self.roots.iter().map(|r| (r, None)).collect();
        while let Some((node, above)) = stack.pop() {
            let own = node.failed.then(|| span_error(&node.span));
            if node.span.span_id.to_string() == wanted {
                let (message, exception_type) = match (own, above) {
                    (Some((Some(m), t)), _) => (Some(m), t),
                    (own, Some(above)) => (above.0, above.1.or(own.and_then(|o| o.1))),
                    (own, None) => own.unwrap_or((None, None)),
                };
                return Some(ErrorOrigin {
                    span_id: node.span.span_id,
                    service: culprit.service.clone(),
                    operation: node.span.name.clone(),
                    message,
                    exception_type,
                    first_error_log: first_error_log(&node.logs),
                    culprit,
                });
            }
            let inherited = own.filter(|(m, _)| m.is_some()).or(above);
            stack.extend(node.children.iter().map(|c| (c, inherited.clone())));
        }
        None
    }
}

/// A span's error text (its first exception message, else its status message) and its first
/// exception type.
fn span_error(span: &Span) -> (Option<String>, Option<String>) {
    let exception = span.events.iter().find(|e| e.is_exception());
    let message = exception
        .and_then(|e| e.attribute("exception.message"))
        .map(str::to_owned)
        .or_else(|| (!span.status_message.is_empty()).then(|| span.status_message.clone()));
    let exception_type = exception
        .and_then(|e| e.attribute("exception.type"))
        .map(str::to_owned);
    (message, exception_type)
}

/// The attribution inputs of a chain: every span, under its parent *in the chain* (a root,
/// orphan or detached subtree has none, so a hostile parent cycle reaches attribution as the
/// tree the page shows), and every error log with the pattern the pipeline gave it (logs
/// placed under a span first, then the others, each oldest first).
pub fn trace_facts(chain: &CallChain) -> TraceFacts {
    let mut facts = TraceFacts {
        trace_id: chain.trace_id.to_string(),
        spans: Vec::with_capacity(chain.span_count),
        logs: Vec::new(),
        young: false,
    };
    let mut placed: Vec<&LogRecord> = Vec::new();
    let mut stack: Vec<(&ChainNode, Option<String>)> =
        chain.roots.iter().map(|r| (r, None)).collect();
    while let Some((node, parent)) = stack.pop() {
        let span = call_span(node, parent);
        placed.extend(node.logs.iter().filter(|l| l.is_errorish()));
        stack.extend(
            node.children
                .iter()
                .map(|c| (c, Some(span.span_id.clone()))),
        );
        facts.spans.push(span);
    }
    placed.sort_by_key(|l| log_time(l));
    let mut unplaced: Vec<&LogRecord> = chain
        .unplaced_logs
        .iter()
        .filter(|l| l.is_errorish())
        .collect();
    unplaced.sort_by_key(|l| log_time(l));
    facts
        .logs
        .extend(placed.into_iter().chain(unplaced).map(call_log));
    facts
}

fn call_span(node: &ChainNode, parent_span_id: Option<String>) -> CallSpan {
    let span = &node.span;
    let (peer_service, peer_address, peer_port) = span.peer();
    CallSpan {
        span_id: span.span_id.to_string(),
        parent_span_id,
        service: span.service.clone(),
        operation: span.name.clone(),
        kind: match span.kind {
            SpanKind::Server => CallKind::Server,
            SpanKind::Client => CallKind::Client,
            _ => CallKind::Other,
        },
        failed: node.failed,
        error: span_error(span).0,
        peer: Peer {
            service: peer_service.map(str::to_owned),
            address: peer_address.map(str::to_owned),
            port: peer_port,
        },
        listen_port: span.served_port(),
        start_unix_nanos: span.start_unix_nanos,
        end_unix_nanos: span.end_unix_nanos,
        patterns: node.cluster_ids.clone(),
    }
}

fn call_log(record: &LogRecord) -> CallLog {
    CallLog {
        service: record.service.clone().unwrap_or_default(),
        span_id: record.span_id.map(|s| s.to_string()),
        text: record.cluster_text().to_owned(),
        pattern: record.attribute(CLUSTER_ID_ATTRIBUTE).map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traces::span::StatusCode;
    use faultline_diagnosis::culprit::CalleeLink;

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
        // The callee logged nothing: the text is its caller's, who saw it.
        assert_eq!(origin.message.as_deref(), Some(EOF_TEXT));
        assert_eq!(origin.culprit.seen_by, ["frontend"]);
        let edge = origin.culprit.edge.as_ref().expect("the failing call");
        assert_eq!(edge.caller, "frontend");
        assert_eq!(edge.link, CalleeLink::ChildSpan);

        // No callee span: the address in the error, mapped to its listener.
        let listeners = [(18080, "orders".to_owned())];
        let origin = chain(vec![root.clone(), call.clone()], &listeners)
            .error_origin
            .expect("an origin");
        assert_eq!(origin.service, "orders");
        assert_eq!(origin.span_id, SpanId([2; 8]));
        assert_eq!(
            origin.culprit.edge.map(|e| e.link),
            Some(CalleeLink::AddressInText)
        );

        // The callee unknown, or an error of the caller's own (a name lookup): the caller.
        let origin = chain(vec![root.clone(), call], &[])
            .error_origin
            .expect("origin");
        assert_eq!(origin.service, "frontend");
        assert!(!origin.culprit.resolved, "{origin:#?}");
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
