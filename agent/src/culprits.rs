//! Culprit attribution over the agent's trace store: builds the diagnosis crate's inputs
//! ([`TraceFacts`], [`Listeners`]) from stored call chains and asks it where a trace's or a
//! pattern's failure lives (`faultline_diagnosis::culprit` owns the rules).
//!
//! Cost: a trace's verdict builds its chain once; a pattern's verdict builds the chains of at
//! most `limit` of its most recent traces (the trace store lists them by start), so the
//! caller bounds the work per request.

use std::sync::Arc;

use faultline_diagnosis::culprit::{
    pattern_culprit_in_trace, trace_culprit, CallKind, CallLog, CallSpan, Culprit, ListenerSource,
    Listeners, Peer, TraceFacts,
};
use faultline_ingest::counters::CounterStore;
use faultline_ingest::traces::{CallChain, ChainNode, SpanKind, TraceFilter, TraceStore};
use faultline_ingest::LogRecord;

use crate::views::CLUSTER_ID_ATTRIBUTE;

/// Traces a pattern's verdict reads at most: enough for a vote that means something
/// ("412 of 415"), few enough that building their chains stays in the milliseconds.
pub const PATTERN_TRACES: usize = 200;

/// Who listens on the node's ports: the services' SERVER spans first, then the configured
/// process targets, then the processes holding the listening sockets (a callee that hangs
/// or never accepts sends no span; only the node knows whose port its callers name).
pub fn listeners(traces: &TraceStore, counters: &CounterStore) -> Listeners {
    let mut listeners = Listeners::default();
    for p in counters.listening_processes() {
        let source = if p.configured {
            ListenerSource::Configured
        } else {
            ListenerSource::Socket
        };
        listeners.learn(p.port, p.name, source);
    }
    for (port, service) in traces.listeners() {
        listeners.insert(port, service);
    }
    listeners
}

/// The stores that know who listens on the node's ports, for readers that have no view of
/// them (the diagnosis loop reads the web's views).
#[derive(Clone)]
pub struct NodeListeners {
    /// The trace store (SERVER spans' ports).
    pub traces: Arc<TraceStore>,
    /// The counter store (configured process targets, listening sockets).
    pub counters: Arc<CounterStore>,
}

impl NodeListeners {
    /// Who listens where now (see [`listeners`]).
    pub fn read(&self) -> Listeners {
        listeners(&self.traces, &self.counters)
    }
}

impl std::fmt::Debug for NodeListeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeListeners")
    }
}

/// Where the error of `chain` lives, `None` when nothing in it failed.
pub fn of_trace(chain: &CallChain, listeners: &Listeners) -> Option<Culprit> {
    trace_culprit(&facts(chain), listeners)
}

/// Where the failures of pattern `cluster` live, voted over its `limit` most recent traces.
pub fn of_pattern(
    store: &TraceStore,
    listeners: &Listeners,
    cluster: &str,
    limit: usize,
) -> Option<Culprit> {
    let rows = store.list(&TraceFilter {
        clusters: vec![cluster.to_owned()],
        limit: Some(limit),
        ..TraceFilter::default()
    });
    let verdicts = rows.iter().filter_map(|row| {
        let chain = store.call_chain(row.trace_id)?;
        pattern_culprit_in_trace(&facts(&chain), cluster, listeners)
    });
    faultline_diagnosis::culprit::pattern_culprit(verdicts)
}

/// The attribution inputs of one stored chain: every span, and every error log (placed or
/// not) with the pattern the pipeline gave it.
pub fn facts(chain: &CallChain) -> TraceFacts {
    let mut facts = TraceFacts {
        trace_id: chain.trace_id.to_string(),
        spans: Vec::with_capacity(chain.span_count),
        logs: Vec::new(),
    };
    let mut stack: Vec<&ChainNode> = chain.roots.iter().collect();
    while let Some(node) = stack.pop() {
        facts.spans.push(call_span(node));
        facts.logs.extend(node.logs.iter().filter_map(call_log));
        stack.extend(node.children.iter());
    }
    facts
        .logs
        .extend(chain.unplaced_logs.iter().filter_map(call_log));
    facts
}

fn call_span(node: &ChainNode) -> CallSpan {
    let span = &node.span;
    let exception = span
        .events
        .iter()
        .filter(|e| e.is_exception())
        .find_map(|e| e.attribute("exception.message"));
    let error = exception
        .map(str::to_owned)
        .or_else(|| (!span.status_message.is_empty()).then(|| span.status_message.clone()));
    let (peer_service, peer_address, peer_port) = span.peer();
    CallSpan {
        span_id: span.span_id.to_string(),
        parent_span_id: span.parent_span_id.map(|p| p.to_string()),
        service: span.service.clone(),
        operation: span.name.clone(),
        kind: match span.kind {
            SpanKind::Server => CallKind::Server,
            SpanKind::Client => CallKind::Client,
            _ => CallKind::Other,
        },
        failed: node.failed,
        error,
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

fn call_log(record: &LogRecord) -> Option<CallLog> {
    if !record.is_errorish() {
        return None;
    }
    Some(CallLog {
        service: record.service.clone().unwrap_or_default(),
        span_id: record.span_id.map(|s| s.to_string()),
        text: record.cluster_text().to_owned(),
        pattern: record
            .attributes
            .iter()
            .find(|(k, _)| k == CLUSTER_ID_ATTRIBUTE)
            .map(|(_, v)| v.clone()),
    })
}
