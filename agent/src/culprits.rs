//! Culprit attribution over the agent's trace store: builds the diagnosis crate's inputs
//! ([`TraceFacts`], [`Listeners`]) from stored call chains and asks it where a trace's or a
//! pattern's failure lives (`faultline_diagnosis::culprit` owns the rules).
//!
//! Cost: a trace's verdict builds its chain once; a pattern's verdict builds the chains of at
//! most `limit` of its most recent traces (read from the trace store's index by start), so
//! the caller bounds the work per request.

use std::sync::Arc;

use faultline_diagnosis::culprit::{
    pattern_culprit_in_trace, trace_culprit, Culprit, ListenerSource, Listeners,
};
use faultline_diagnosis::onset::QUIET_GAP_SECONDS;
use faultline_ingest::counters::CounterStore;
use faultline_ingest::traces::{trace_facts, CallChain, TraceStore};

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
    for service in traces.traffic().span_senders() {
        listeners.note_span_sender(service);
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

/// Where the failures of a pattern live, voted over its `limit` most recent traces that
/// started at or after `since_unix_nanos` (every recent trace when `None`); judged at
/// `now_unix_nanos` when given, a trace that ended less than
/// [`faultline_diagnosis::culprit::SPAN_GRACE_MS`] before is young (its callees' spans may
/// still arrive, see [`faultline_diagnosis::culprit::TraceFacts::young`]). `ids` are the
/// pattern's current id and the ids it had before: a trace keeps the id its pattern had when
/// the trace arrived, so traces from before a rename vote too.
///
/// `since` is where the pattern's current run began (see [`run_start_nanos`]): the same text
/// after a minute of silence is another fault's, and its traces of the run before say where
/// *that* fault lived. Seen on the unseen lab, one agent through all faults: the gateway's
/// echo `metadata answered <num>` came back with a client leaking connections to the blob
/// store, was voted over its 200 latest traces (mostly the slow blob store's of the fault
/// before), got culprit blobstore, and was a false incident "in blobstore" beside the
/// leaking client's.
pub fn of_pattern(
    store: &TraceStore,
    listeners: &Listeners,
    ids: &[String],
    limit: usize,
    since_unix_nanos: Option<i64>,
    now_unix_nanos: Option<i64>,
) -> Option<Culprit> {
    let grace = faultline_diagnosis::culprit::SPAN_GRACE_MS.saturating_mul(1_000_000);
    // Newest start first: the `limit` newest of those since the run began are among the
    // `limit` newest of all.
    let traces = store.tagged(ids, limit);
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let verdicts = traces
        .iter()
        .filter(|(start, _)| since_unix_nanos.is_none_or(|since| *start >= since))
        .filter_map(|(_, trace)| {
            let chain = store.call_chain(*trace)?;
            let mut facts = trace_facts(&chain);
            let ended = chain.start_unix_nanos.saturating_add(chain.duration_nanos);
            facts.young = now_unix_nanos.is_some_and(|now| now.saturating_sub(ended) < grace);
            pattern_culprit_in_trace(&facts, &ids, listeners)
        });
    faultline_diagnosis::culprit::pattern_culprit(verdicts)
}

/// How long before its pattern's first occurrence of a run a trace of that run may have
/// started: a request that failed after waiting (a timeout, a slow callee) started that much
/// earlier. Half the silence that ends a run, so a trace of the run before (its occurrences a
/// minute of silence before this run's first) never passes for this run's.
pub const RUN_TRACE_SLACK_MS: i64 = QUIET_GAP_SECONDS as i64 * 1000 / 2;

/// The earliest trace start (Unix nanoseconds) that belongs to the current run of a pattern
/// whose run began at `run_start_unix_ms` (see
/// [`faultline_diagnosis::onset::current_run_start`]), for [`of_pattern`]; `None` (every
/// trace) when the start of the run is not known.
pub fn run_start_nanos(run_start_unix_ms: Option<i64>) -> Option<i64> {
    run_start_unix_ms.map(|ms| (ms - RUN_TRACE_SLACK_MS).saturating_mul(1_000_000))
}
