//! Culprit attribution: for one trace, or one error pattern over its traces, the service where
//! the failure *lives*, with the reasoning and the evidence.
//!
//! The service that reports an error is often not the one that failed. A caller whose callee
//! closed the connection logs `Get "http://127.0.0.1:8081/x": EOF` and records it on its CLIENT
//! span, while the callee, which closed the connection, logs nothing and leaves its SERVER span
//! unset. Blaming the reporter sends an SRE to the wrong service (issue #11). The rules:
//!
//! 1. A report whose text is a client-side transport error ([`Fault::blames_callee`]: EOF,
//!    unexpected EOF, connection reset, connection refused, timeouts, broken pipe, TLS
//!    handshake failures) points at the callee of the failing call, when the callee is known —
//!    from the CLIENT span's child SERVER span, its peer attributes (`peer.service`,
//!    `server.address`/`server.port`, `net.peer.name`/`net.peer.port`), or the `host:port` /
//!    `->ip:port` in the error text mapped to the service listening there ([`Listeners`]).
//! 2. A callee that logged or recorded its own error in the same trace is followed: the failure
//!    lives where *its* report points (it is [`CulpritRole::SelfReported`] unless its own
//!    report is again a transport error towards a further callee). Otherwise the callee is
//!    the culprit ([`CulpritRole::Callee`]): it closed, reset, refused or hung; the caller only
//!    saw the error and is listed in `seen_by`.
//! 3. A client that fails on its own is the culprit itself ([`CulpritRole::Caller`]): its name
//!    lookups fail (`no such host`, resolver timeouts), it ran out of local ports
//!    (`cannot assign requested address`, the mark of a new connection per call).
//! 4. Any other error is where it was reported ([`CulpritRole::SelfReported`]).
//! 5. A transport error whose callee cannot be identified stays with its reporter, marked
//!    `resolved: false`, and the reasoning says so: a wrong confident answer during an outage
//!    is worse than none.
//! 6. So does a failed call of no known kind (an error status: `orders answered 502`) whose
//!    callee sends spans but has neither a span nor a log in a trace that ended less than
//!    [`SPAN_GRACE_MS`] ago: the callee's own report of what failed may still be on its way,
//!    and until it arrives (or the grace passes) the call's failure is not placed on the
//!    caller that reported it.
//!
//! Execution model: pure functions over this module's own small input types (a
//! [`TraceFacts`] per trace, the node's [`Listeners`]); no clock, no store. Cost: one trace is
//! O(spans × reports) with a recursion depth of at most [`MAX_HOPS`]; a pattern's verdict is
//! a vote over the per-trace verdicts the caller gives it (the agent bounds how many).
//!
//! Files: this one holds the inputs, the verdict and the per-pattern vote; `fault` reads what
//! kind of failure an error text describes and the address it names, and `trace` walks one
//! trace to the service where its failure lives.

mod fault;
mod trace;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::hints::CulpritRole;

pub use fault::Fault;
use trace::Trace;

/// Most callee-to-callee hops followed inside one trace: deeper than any real call chain
/// reports one error through, and a bound on hostile span graphs.
pub const MAX_HOPS: usize = 16;

/// Most lines of evidence kept per verdict.
const MAX_EVIDENCE: usize = 8;

/// The role of a span in a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallKind {
    /// The server side: the span of the service handling a request.
    Server,
    /// The client side: the span of a call to another service.
    Client,
    /// Anything else (internal, producer, consumer, unspecified).
    #[default]
    Other,
}

/// Whom a CLIENT span says it called (its peer attributes), as far as it says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    /// `peer.service`.
    pub service: Option<String>,
    /// `server.address` / `net.peer.name` / `net.peer.ip`.
    pub address: Option<String>,
    /// `server.port` / `net.peer.port`.
    pub port: Option<u16>,
}

/// One span of a trace, as attribution needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallSpan {
    /// Its id (any unique text).
    pub span_id: String,
    /// Its parent's id.
    pub parent_span_id: Option<String>,
    /// The service that produced it.
    pub service: String,
    /// Its operation (span name).
    pub operation: String,
    /// Its role in the call.
    pub kind: CallKind,
    /// Status ERROR or an exception recorded on it.
    pub failed: bool,
    /// The error text it carries (exception message, else status message), if any.
    pub error: Option<String>,
    /// What a CLIENT span says of its callee.
    pub peer: Peer,
    /// The port a SERVER span says it was served on (`server.port`, `net.host.port`).
    pub listen_port: Option<u16>,
    /// Start and end (Unix nanoseconds), for how long each side waited.
    pub start_unix_nanos: i64,
    /// End (Unix nanoseconds).
    pub end_unix_nanos: i64,
    /// Error patterns (cluster ids) reported on it.
    pub patterns: Vec<String>,
}

/// One error log record of a trace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallLog {
    /// The service that wrote it.
    pub service: String,
    /// The span it was written under, if it names one.
    pub span_id: Option<String>,
    /// The error text (the error field, else the message).
    pub text: String,
    /// The error pattern (cluster id) it went to, if any.
    pub pattern: Option<String>,
}

/// What one trace shows: its spans and its error logs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceFacts {
    /// The trace id.
    pub trace_id: String,
    /// Its spans, in any order.
    pub spans: Vec<CallSpan>,
    /// Its error logs (warn and above, or with an error field), oldest first.
    pub logs: Vec<CallLog>,
    /// Whether it ended less than [`SPAN_GRACE_MS`] before it is judged: spans and logs of
    /// the services it called may still be on their way (exporters send spans in batches,
    /// log files are read as they are written).
    pub young: bool,
}

/// How long after a trace ended the spans of the services it called may still arrive:
/// OpenTelemetry's batch span processor exports every 5 s by default, the unseen lab's
/// services every 500 ms, and a loaded agent reads logs and OTLP posts seconds late.
pub const SPAN_GRACE_MS: i64 = 10_000;

/// How the service listening on a port is known, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ListenerSource {
    /// The node's socket census: the process holding the listening socket, by its command
    /// name.
    Socket,
    /// A configured process target (`[[counters.processes]]`) listening there.
    Configured,
    /// The service's own SERVER spans say they were served there.
    Spans,
}

impl ListenerSource {
    /// How the evidence says it was known.
    fn says(self) -> &'static str {
        match self {
            ListenerSource::Spans => "its SERVER spans say so",
            ListenerSource::Configured => "a configured process listening there",
            ListenerSource::Socket => "the process holding the listening socket",
        }
    }
}

/// The services listening on the node's ports (port → service), from their SERVER spans,
/// the configured process targets and the socket census. A callee that hangs or never
/// accepts sends no span: only the node knows who listens on the port its callers name.
/// Built by the caller from what it saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listeners {
    by_port: BTreeMap<u16, (String, ListenerSource)>,
    /// Services the agent receives SERVER spans from.
    span_senders: BTreeSet<String>,
}

impl Listeners {
    /// Notes that `service` sends SERVER spans: a trace that called it and holds none of its
    /// spans is waiting for them (see [`TraceFacts::young`]).
    pub fn note_span_sender(&mut self, service: impl Into<String>) {
        self.span_senders.insert(service.into());
    }

    /// Whether `service` sends SERVER spans.
    pub fn sends_spans(&self, service: &str) -> bool {
        self.span_senders.contains(service)
    }

    /// Notes that `service` serves on `port`, as its SERVER spans say (a later note for the
    /// same port wins: a restarted service may have moved).
    pub fn insert(&mut self, port: u16, service: impl Into<String>) {
        self.learn(port, service, ListenerSource::Spans);
    }

    /// Notes that `service` listens on `port`, known from `source`: it replaces what a
    /// weaker source said (spans name services as their callers' errors do; a process name
    /// is only the node's), never what a stronger one said.
    pub fn learn(&mut self, port: u16, service: impl Into<String>, source: ListenerSource) {
        if self
            .by_port
            .get(&port)
            .is_none_or(|(_, known)| *known <= source)
        {
            self.by_port.insert(port, (service.into(), source));
        }
    }

    /// The service listening on `port`, if known.
    pub fn service_on(&self, port: u16) -> Option<&str> {
        self.by_port.get(&port).map(|(s, _)| s.as_str())
    }

    /// The service listening on `port` and how that is known.
    pub fn listener(&self, port: u16) -> Option<(&str, ListenerSource)> {
        self.by_port.get(&port).map(|(s, k)| (s.as_str(), *k))
    }

    /// Every (port, service, how it is known), by port.
    pub fn iter(&self) -> impl Iterator<Item = (u16, &str, ListenerSource)> {
        self.by_port.iter().map(|(p, (s, k))| (*p, s.as_str(), *k))
    }
}

impl FromIterator<(u16, String)> for Listeners {
    fn from_iter<I: IntoIterator<Item = (u16, String)>>(iter: I) -> Self {
        let mut listeners = Listeners::default();
        for (port, service) in iter {
            listeners.insert(port, service);
        }
        listeners
    }
}

/// How the callee of a failing call was identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CalleeLink {
    /// The CLIENT span's child SERVER span belongs to it.
    ChildSpan,
    /// The CLIENT span's `peer.service`.
    PeerService,
    /// The CLIENT span's peer address and port, mapped to the service listening there.
    PeerAddress,
    /// The `host:port` in the error text, mapped to the service listening there.
    AddressInText,
}

/// The call on which a failure was seen: who called whom, and how that was known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Edge {
    /// The service that made the call (and saw the error).
    pub caller: String,
    /// The service it called.
    pub callee: String,
    /// The caller's operation (the CLIENT span's name), when known.
    pub operation: Option<String>,
    /// The `host:port` called, when known.
    pub address: Option<String>,
    /// How the callee was identified.
    pub link: CalleeLink,
}

impl fmt::Display for Edge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} → {}", self.caller, self.callee)?;
        match (&self.operation, &self.address) {
            (Some(op), Some(addr)) => write!(f, " ({op} {addr})"),
            (Some(op), None) => write!(f, " ({op})"),
            (None, Some(addr)) => write!(f, " ({addr})"),
            (None, None) => Ok(()),
        }
    }
}

/// Where a failure lives, why, and how many traces agree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Culprit {
    /// The service where the failure lives.
    pub service: String,
    /// Its role in the failing calls.
    pub role: CulpritRole,
    /// The kind of failure that decided it.
    pub fault: Fault,
    /// The services that reported the failure without being its cause.
    pub seen_by: Vec<String>,
    /// The failing call, when the failure was seen across one.
    pub edge: Option<Edge>,
    /// False when the failure is a transport error whose callee could not be identified:
    /// `service` is then only where it was seen.
    pub resolved: bool,
    /// The answer in one line, as the pages show it ([`Culprit::headline`]).
    pub headline: String,
    /// Why, in one sentence.
    pub reasoning: String,
    /// The facts it rests on (error texts, spans, attributes, durations).
    pub evidence: Vec<String>,
    /// Traces whose own verdict is this one.
    pub traces_agreeing: u64,
    /// Traces judged.
    pub traces_total: u64,
    /// In a single trace's verdict: the span where the failure lives (the callee's SERVER
    /// span, else the reporting span), when there is one.
    pub span_id: Option<String>,
}

impl Culprit {
    /// The headline: `starts in orders (seen by frontend, frontend → orders (GET
    /// 127.0.0.1:8081)) in 412 of 415 traces`.
    pub fn headline(&self) -> String {
        let mut text = format!("starts in {}", self.service);
        let mut inner = Vec::new();
        if !self.seen_by.is_empty() {
            inner.push(format!("seen by {}", self.seen_by.join(", ")));
        }
        if let Some(edge) = &self.edge {
            inner.push(edge.to_string());
        }
        if !inner.is_empty() {
            text.push_str(&format!(" ({})", inner.join(", ")));
        }
        if self.traces_total > 1 {
            text.push_str(&format!(
                " in {} of {} traces",
                self.traces_agreeing, self.traces_total
            ));
        }
        text
    }
}

/// Where the error of one trace lives: judged from the deepest failing span whose failure no
/// failing child explains (else the first error log). `None` when nothing failed.
pub fn trace_culprit(trace: &TraceFacts, listeners: &Listeners) -> Option<Culprit> {
    Trace::new(trace, listeners).verdict(None)
}

/// Where one error pattern's failure lives in one trace: judged from the pattern's own
/// reports in it (its spans, its logs), found by any of `ids` — the pattern's current id and
/// the ids it had before, since a report keeps the id its pattern had when it arrived. `None`
/// when the pattern was not reported in the trace.
pub fn pattern_culprit_in_trace(
    trace: &TraceFacts,
    ids: &[&str],
    listeners: &Listeners,
) -> Option<Culprit> {
    Trace::new(trace, listeners).verdict(Some(ids))
}

/// One verdict over many traces: the (service, role) most traces agree on, with the count.
/// The reasoning and evidence are those of the most recent agreeing verdict given first; the
/// headline says how many traces agree, and a split vote says so. Unresolved verdicts only
/// win when no trace resolved the callee.
pub fn pattern_culprit(verdicts: impl IntoIterator<Item = Culprit>) -> Option<Culprit> {
    let verdicts: Vec<Culprit> = verdicts.into_iter().collect();
    let total = verdicts.len() as u64;
    let mut votes: BTreeMap<(bool, String, String), (u64, usize)> = BTreeMap::new();
    for (i, v) in verdicts.iter().enumerate() {
        let role = format!("{:?}", v.role);
        let slot = votes
            .entry((v.resolved, v.service.clone(), role))
            .or_insert((0, i));
        slot.0 += 1;
    }
    let (&(_, _, _), &(count, first)) =
        votes
            .iter()
            .max_by_key(|((resolved, _, _), (count, first))| {
                (*resolved, *count, std::cmp::Reverse(*first))
            })?;
    let mut verdict = verdicts[first].clone();
    let mut seen_by: BTreeSet<String> = BTreeSet::new();
    for v in &verdicts {
        if v.service == verdict.service {
            seen_by.extend(v.seen_by.iter().cloned());
        }
    }
    seen_by.remove(&verdict.service);
    verdict.seen_by = seen_by.into_iter().collect();
    verdict.traces_agreeing = count;
    verdict.traces_total = total;
    verdict.span_id = None;
    if count * 2 <= total {
        let others: Vec<String> = votes
            .iter()
            .filter(|(_, (_, f))| *f != first)
            .map(|((_, service, role), (c, _))| format!("{service} ({role}) in {c}"))
            .collect();
        verdict.reasoning = format!(
            "split: {} in {count} of {total} traces, {}; {}",
            verdict.service,
            others.join(", "),
            verdict.reasoning
        );
    }
    verdict.headline = verdict.headline();
    Some(verdict)
}

#[cfg(test)]
mod tests;
