//! Culprit attribution over the agent's trace store: builds the diagnosis crate's inputs
//! ([`TraceFacts`], [`Listeners`]) from stored call chains and asks it where a trace's or a
//! pattern's failure lives (`faultline_diagnosis::culprit` owns the rules).
//!
//! Cost: a trace's verdict builds its chain once; a pattern's verdict builds the chains of at
//! most `limit` of its most recent traces (the trace store lists them by start), so the
//! caller bounds the work per request.

use std::sync::Arc;

use faultline_diagnosis::culprit::{
    pattern_culprit_in_trace, trace_culprit, Culprit, ListenerSource, Listeners,
};
use faultline_ingest::counters::CounterStore;
use faultline_ingest::traces::{trace_facts, CallChain, TraceFilter, TraceStore};

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
    trace_culprit(&trace_facts(chain), listeners)
}

/// Where the failures of a pattern live, voted over its `limit` most recent traces. `ids`
/// are the pattern's current id and the ids it had before: a trace keeps the id its pattern
/// had when the trace arrived, so traces from before a rename vote too.
pub fn of_pattern(
    store: &TraceStore,
    listeners: &Listeners,
    ids: &[String],
    limit: usize,
) -> Option<Culprit> {
    let rows = store.list(&TraceFilter {
        clusters: ids.to_vec(),
        limit: Some(limit),
        ..TraceFilter::default()
    });
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let verdicts = rows.iter().filter_map(|row| {
        let chain = store.call_chain(row.trace_id)?;
        pattern_culprit_in_trace(&trace_facts(&chain), &ids, listeners)
    });
    faultline_diagnosis::culprit::pattern_culprit(verdicts)
}
