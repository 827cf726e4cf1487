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
//!
//! Execution model: pure functions over this module's own small input types (a
//! [`TraceFacts`] per trace, the node's [`Listeners`]); no clock, no store. Cost: one trace is
//! O(spans × reports) with a recursion depth of at most [`MAX_HOPS`]; a pattern's verdict is
//! a vote over the per-trace verdicts the caller gives it (the agent bounds how many).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::hints::CulpritRole;

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
}

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
}

impl Listeners {
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

/// What kind of failure an error text describes, as far as attribution cares.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// `EOF`: the callee closed the connection before answering.
    Eof,
    /// `unexpected EOF`: the callee closed the connection in the middle of an answer.
    UnexpectedEof,
    /// `connection reset by peer`: the callee reset the connection.
    Reset,
    /// `connection refused`: nothing accepted the connection (callee down or its queue full).
    Refused,
    /// `i/o timeout`, `context deadline exceeded`, `Client.Timeout exceeded`: the callee did
    /// not answer within the caller's deadline.
    Timeout,
    /// `broken pipe`: the callee closed the connection while the caller was still writing.
    BrokenPipe,
    /// A TLS handshake or certificate failure on the call.
    Tls,
    /// `no such host`, `server misbehaving`, resolver timeouts: the caller's own name lookup.
    Dns,
    /// `cannot assign requested address`: the caller ran out of local ports (a new
    /// connection per call leaves them all in TIME-WAIT).
    LocalPorts,
    /// `context canceled`, `request canceled`: the service's own caller gave up on it (its
    /// deadline passed, or it went away), and the service's work was cancelled with it. Not
    /// a fault of the call it cancelled: the wait that ran out is upstream.
    Canceled,
    /// Any other error: it lives where it is reported.
    Other,
}

impl Fault {
    /// Whether this is a client-side transport error whose cause is on the callee's side.
    pub fn blames_callee(self) -> bool {
        matches!(
            self,
            Fault::Eof
                | Fault::UnexpectedEof
                | Fault::Reset
                | Fault::Refused
                | Fault::Timeout
                | Fault::BrokenPipe
                | Fault::Tls
        )
    }

    /// Whether this is a failure of the client itself, whatever its callee.
    pub fn blames_caller(self) -> bool {
        matches!(self, Fault::Dns | Fault::LocalPorts)
    }

    /// What the callee did, in the words of the reasoning.
    fn callee_did(self) -> &'static str {
        match self {
            Fault::Eof => "closed the connection without answering",
            Fault::UnexpectedEof => "closed the connection in the middle of its answer",
            Fault::Reset => "reset the connection",
            Fault::Refused => "refused the connection",
            Fault::Timeout => "did not answer within the caller's deadline",
            Fault::BrokenPipe => "closed the connection while the request was being written",
            Fault::Tls => "failed the TLS handshake",
            Fault::Dns | Fault::LocalPorts | Fault::Canceled | Fault::Other => "failed the call",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fault::Eof => "EOF",
            Fault::UnexpectedEof => "unexpected EOF",
            Fault::Reset => "connection reset",
            Fault::Refused => "connection refused",
            Fault::Timeout => "timeout",
            Fault::BrokenPipe => "broken pipe",
            Fault::Tls => "TLS failure",
            Fault::Dns => "name lookup failure",
            Fault::LocalPorts => "no local port left",
            Fault::Canceled => "cancellation",
            Fault::Other => "error",
        })
    }
}

/// The kind of failure `text` describes. The innermost error decides (Go wraps errors
/// outermost first), so the last matching phrase in the text wins.
pub fn fault_of(text: &str) -> Fault {
    let lower = text.to_ascii_lowercase();
    // Ordered so that a longer phrase is tried before a shorter one it contains.
    const PHRASES: &[(&str, Fault)] = &[
        ("unexpected eof", Fault::UnexpectedEof),
        ("connection reset", Fault::Reset),
        ("connection refused", Fault::Refused),
        ("broken pipe", Fault::BrokenPipe),
        ("no such host", Fault::Dns),
        ("server misbehaving", Fault::Dns),
        ("temporary failure in name resolution", Fault::Dns),
        ("cannot assign requested address", Fault::LocalPorts),
        ("i/o timeout", Fault::Timeout),
        ("deadline exceeded", Fault::Timeout),
        ("client.timeout exceeded", Fault::Timeout),
        ("timeout awaiting response headers", Fault::Timeout),
        ("context canceled", Fault::Canceled),
        ("operation was canceled", Fault::Canceled),
        ("request canceled", Fault::Canceled),
        ("tls handshake", Fault::Tls),
        ("x509:", Fault::Tls),
        // Rust's hyper/reqwest (faultline's demo lab, Rust services): the words of its own
        // errors for the same faults.
        ("connection closed before message completed", Fault::Eof),
        ("operation timed out", Fault::Timeout),
        ("dns error", Fault::Dns),
        ("failed to lookup address", Fault::Dns),
    ];
    let mut best: Option<(usize, Fault)> = None;
    for &(phrase, fault) in PHRASES {
        if let Some(at) = lower.rfind(phrase) {
            // `lookup <host> ... i/o timeout` is a resolver timeout: the name lookup failed.
            let fault = if fault == Fault::Timeout && lower[..at].contains("lookup ") {
                Fault::Dns
            } else {
                fault
            };
            if best.is_none_or(|(b, _)| at > b) {
                best = Some((at, fault));
            }
        }
    }
    if let Some(at) = eof_word(&lower) {
        if best.is_none_or(|(b, _)| at > b) {
            best = Some((at, Fault::Eof));
        }
    }
    best.map_or(Fault::Other, |(_, f)| f)
}

/// Where a bare `EOF` (not `unexpected EOF`) ends the text or an error of it.
fn eof_word(lower: &str) -> Option<usize> {
    let mut found = None;
    let mut from = 0;
    while let Some(rel) = lower[from..].find("eof") {
        let at = from + rel;
        let before = lower[..at].chars().next_back();
        let after = lower[at + 3..].chars().next();
        let word = before.is_none_or(|c| !c.is_ascii_alphanumeric())
            && after.is_none_or(|c| !c.is_ascii_alphanumeric());
        if word && !lower[..at].ends_with("unexpected ") {
            found = Some(at);
        }
        from = at + 3;
    }
    found
}

/// The `host:port` the text says it called: a URL's authority (`http://host:port/...`), a
/// `dial tcp host:port`, or the remote side of a `local->remote` pair. The last one wins
/// (the innermost error names the connection that failed).
pub fn address_in(text: &str) -> Option<(String, u16)> {
    static PATTERN: OnceLock<Option<Regex>> = OnceLock::new();
    let pattern = PATTERN
        .get_or_init(|| {
            Regex::new(
                r"(?:https?://|dial tcp6? |->)(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.\-]+):([0-9]{1,5})\b",
            )
            .ok()
        })
        .as_ref()?;
    pattern
        .captures_iter(text)
        .filter_map(|c| {
            let host = c.get(1)?.as_str().trim_matches(['[', ']']).to_owned();
            let port: u16 = c.get(2)?.as_str().parse().ok()?;
            Some((host, port))
        })
        .last()
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

/// One report of a failure in a trace: a failing span or an error log.
#[derive(Debug, Clone, Copy)]
enum Report<'a> {
    Span(usize),
    Log(&'a CallLog),
}

struct Trace<'a> {
    facts: &'a TraceFacts,
    listeners: &'a Listeners,
    index: BTreeMap<&'a str, usize>,
    depth: Vec<usize>,
}

impl<'a> Trace<'a> {
    fn new(facts: &'a TraceFacts, listeners: &'a Listeners) -> Self {
        let index: BTreeMap<&str, usize> = facts
            .spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id.as_str(), i))
            .collect();
        // Depth by walking up parents, bounded (hostile parent cycles stop at the bound).
        let depth = facts
            .spans
            .iter()
            .map(|s| {
                let mut d = 0;
                let mut at = s.parent_span_id.as_deref();
                while let Some(p) = at.and_then(|p| index.get(p)) {
                    d += 1;
                    if d > 128 {
                        break;
                    }
                    at = facts.spans[*p].parent_span_id.as_deref();
                }
                d
            })
            .collect();
        Trace {
            facts,
            listeners,
            index,
            depth,
        }
    }

    fn span(&self, i: usize) -> &'a CallSpan {
        &self.facts.spans[i]
    }

    fn span_of(&self, id: Option<&str>) -> Option<usize> {
        id.and_then(|id| self.index.get(id).copied())
    }

    fn children(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        let id = self.span(i).span_id.as_str();
        self.facts
            .spans
            .iter()
            .enumerate()
            .filter(move |(_, s)| s.parent_span_id.as_deref() == Some(id))
            .map(|(c, _)| c)
    }

    fn service_of(&self, report: Report<'a>) -> &'a str {
        match report {
            Report::Span(i) => &self.span(i).service,
            Report::Log(log) => &log.service,
        }
    }

    fn text_of(&self, report: Report<'a>) -> Option<&'a str> {
        match report {
            Report::Span(i) => self.span(i).error.as_deref(),
            Report::Log(log) => Some(log.text.as_str()),
        }
    }

    /// The CLIENT span a report was made on: the span itself or the log's span when that is a
    /// CLIENT span, else the first failing CLIENT span of its service with the same kind of
    /// fault (a handler logs, or records on its SERVER span, the error of a call it made).
    fn client_span(&self, report: Report<'a>, fault: Fault) -> Option<usize> {
        let (service, own) = match report {
            Report::Span(i) => (self.span(i).service.as_str(), Some(i)),
            Report::Log(log) => (log.service.as_str(), self.span_of(log.span_id.as_deref())),
        };
        if let Some(i) = own.filter(|&i| self.span(i).kind == CallKind::Client) {
            return Some(i);
        }
        let mut calls: Vec<usize> = (0..self.facts.spans.len())
            .filter(|&i| {
                let s = self.span(i);
                s.kind == CallKind::Client
                    && s.service == service
                    && s.failed
                    && s.error.as_deref().is_none_or(|e| fault_of(e) == fault)
            })
            .collect();
        calls.sort_by_key(|&i| self.span(i).start_unix_nanos);
        calls.first().copied()
    }

    /// The callee of the failing call behind `report`: (service, its SERVER span, edge).
    fn callee(
        &self,
        report: Report<'a>,
        fault: Fault,
        evidence: &mut Vec<String>,
    ) -> Option<(String, Option<usize>, Edge)> {
        let caller = self.service_of(report);
        let text = self.text_of(report).unwrap_or_default();
        let client = self.client_span(report, fault);
        let operation = client.map(|c| self.span(c).operation.clone());
        let edge = |callee: &str, address: Option<String>, link| Edge {
            caller: caller.to_owned(),
            callee: callee.to_owned(),
            operation: operation.clone(),
            address,
            link,
        };
        let text_address = address_in(text);
        let shown = |(host, port): &(String, u16)| format!("{host}:{port}");
        if let Some(c) = client {
            let call = self.span(c);
            if let Some(server) = self.children(c).find(|&s| {
                let s = self.span(s);
                s.kind == CallKind::Server && s.service != caller
            }) {
                let callee = &self.span(server).service;
                evidence.push(format!(
                    "{caller}'s CLIENT span {:?} has a child SERVER span {:?} of {callee}",
                    call.operation,
                    self.span(server).operation
                ));
                let address = text_address.as_ref().map(shown);
                return Some((
                    callee.clone(),
                    Some(server),
                    edge(callee, address, CalleeLink::ChildSpan),
                ));
            }
            if let Some(peer) = call.peer.service.as_deref().filter(|p| *p != caller) {
                evidence.push(format!(
                    "{caller}'s CLIENT span {:?} names peer.service={peer}",
                    call.operation
                ));
                let address = text_address.as_ref().map(shown);
                return Some((
                    peer.to_owned(),
                    None,
                    edge(peer, address, CalleeLink::PeerService),
                ));
            }
            if let Some(port) = call.peer.port {
                if let Some((callee, known)) =
                    self.listeners.listener(port).filter(|(s, _)| *s != caller)
                {
                    let host = call.peer.address.clone().unwrap_or_default();
                    evidence.push(format!(
                        "{caller}'s CLIENT span {:?} calls {host}:{port}, where {callee} \
                         listens ({})",
                        call.operation,
                        known.says()
                    ));
                    return Some((
                        callee.to_owned(),
                        None,
                        edge(
                            callee,
                            Some(format!("{host}:{port}")),
                            CalleeLink::PeerAddress,
                        ),
                    ));
                }
            }
        }
        let (host, port) = text_address?;
        let (callee, known) = self
            .listeners
            .listener(port)
            .filter(|(s, _)| *s != caller)?;
        evidence.push(format!(
            "the error names {host}:{port}, where {callee} listens ({})",
            known.says()
        ));
        Some((
            callee.to_owned(),
            None,
            edge(
                callee,
                Some(format!("{host}:{port}")),
                CalleeLink::AddressInText,
            ),
        ))
    }

    /// The callee's own report of an error in this trace, if it made one: its deepest failing
    /// span (under `server` when known), else its first error log.
    fn own_report(&self, callee: &str, server: Option<usize>) -> Option<Report<'a>> {
        let under = |i: usize| -> bool {
            let Some(root) = server else { return true };
            let mut at = Some(i);
            for _ in 0..=128 {
                match at {
                    Some(x) if x == root => return true,
                    Some(x) => at = self.span_of(self.span(x).parent_span_id.as_deref()),
                    None => return false,
                }
            }
            false
        };
        let failed = (0..self.facts.spans.len())
            .filter(|&i| {
                let s = self.span(i);
                s.service == callee && s.failed && under(i)
            })
            .max_by_key(|&i| {
                (
                    self.depth[i],
                    std::cmp::Reverse(self.span(i).start_unix_nanos),
                )
            });
        if let Some(i) = failed {
            return Some(Report::Span(i));
        }
        self.facts
            .logs
            .iter()
            .find(|l| l.service == callee)
            .map(Report::Log)
    }

    /// The verdict on one report, following callees that reported their own error.
    fn resolve(&self, report: Report<'a>, hops: usize, evidence: &mut Vec<String>) -> Culprit {
        let service = self.service_of(report).to_owned();
        let text = self.text_of(report).unwrap_or_default();
        let fault = fault_of(text);
        let where_seen = match report {
            Report::Span(i) => format!("{service}'s span {:?}", self.span(i).operation),
            Report::Log(_) => format!("{service}'s log"),
        };
        if !text.is_empty() {
            evidence.push(format!("{where_seen}: {}", clip(text)));
        }
        let span_id = match report {
            Report::Span(i) => Some(self.span(i).span_id.clone()),
            Report::Log(log) => log.span_id.clone(),
        };
        let own = |role: CulpritRole, reasoning: String| Culprit {
            service: service.clone(),
            role,
            fault,
            seen_by: Vec::new(),
            edge: None,
            resolved: true,
            headline: String::new(),
            reasoning,
            evidence: Vec::new(),
            traces_agreeing: 1,
            traces_total: 1,
            span_id: span_id.clone(),
        };
        if fault.blames_caller() {
            let why = match fault {
                Fault::Dns => "its own name lookup failed",
                _ => {
                    "it ran out of local ports (a new connection per call leaves them in TIME-WAIT)"
                }
            };
            return own(
                CulpritRole::Caller,
                format!("{service} fails on its own: {why}"),
            );
        }
        if fault == Fault::Canceled {
            if hops < MAX_HOPS {
                if let Some(verdict) = self.gave_up_on(report, hops, evidence) {
                    return verdict;
                }
            }
            let mut verdict = own(
                CulpritRole::SelfReported,
                format!(
                    "{service}'s work was cancelled (its caller gave up or went away), but no \
                     caller in this trace timed out on it: the failure shows in {service}, the \
                     wait that ran out is upstream"
                ),
            );
            verdict.resolved = false;
            return verdict;
        }
        if !fault.blames_callee() {
            return own(
                CulpritRole::SelfReported,
                format!("{service} reported the error itself ({where_seen})"),
            );
        }
        let Some((callee, server, edge)) = self.callee(report, fault, evidence) else {
            let mut verdict = own(
                CulpritRole::SelfReported,
                format!(
                    "{service} saw a {fault} on a call, but its callee is unknown (no child \
                     SERVER span, no peer attributes, no known listener on the address): the \
                     failure shows in {service}, it may live in the callee"
                ),
            );
            verdict.resolved = false;
            return verdict;
        };
        if hops < MAX_HOPS {
            if let Some(inner) = self.own_report(&callee, server) {
                evidence.push(format!(
                    "{callee} recorded an error of its own in this trace"
                ));
                let mut verdict = self.resolve(inner, hops + 1, evidence);
                if verdict.service != service && !verdict.seen_by.contains(&service) {
                    verdict.seen_by.push(service.clone());
                }
                if verdict.edge.is_none() && verdict.service == callee {
                    verdict.edge = Some(edge);
                }
                return verdict;
            }
        }
        if let Some(s) = server {
            let s = self.span(s);
            evidence.push(format!(
                "{callee}'s SERVER span {:?} has no error of its own",
                s.operation
            ));
            if fault == Fault::Timeout {
                if let Some(c) = self.client_span(report, fault) {
                    let c = self.span(c);
                    evidence.push(format!(
                        "{service} waited {} ms, {callee} ran {} ms",
                        (c.end_unix_nanos - c.start_unix_nanos).max(0) / 1_000_000,
                        (s.end_unix_nanos - s.start_unix_nanos).max(0) / 1_000_000
                    ));
                }
            }
        } else {
            evidence.push(format!("{callee} reported no error in this trace"));
        }
        Culprit {
            service: callee.clone(),
            role: CulpritRole::Callee,
            fault,
            seen_by: vec![service.clone()],
            reasoning: format!(
                "{callee} {} on calls from {service} ({edge}); {service} only saw the {fault}",
                fault.callee_did()
            ),
            edge: Some(edge),
            resolved: true,
            headline: String::new(),
            evidence: Vec::new(),
            traces_agreeing: 1,
            traces_total: 1,
            span_id: server.map(|s| self.span(s).span_id.clone()).or(span_id),
        }
    }

    /// The span a report was made on: the span itself, the log's span, else the topmost
    /// span of the log's service in the trace.
    fn anchor(&self, report: Report<'a>) -> Option<usize> {
        match report {
            Report::Span(i) => Some(i),
            Report::Log(log) => self.span_of(log.span_id.as_deref()).or_else(|| {
                (0..self.facts.spans.len())
                    .filter(|&i| self.span(i).service == log.service)
                    .min_by_key(|&i| (self.depth[i], self.span(i).start_unix_nanos))
            }),
        }
    }

    /// Whether span `i` is below span `above` (not `above` itself).
    fn is_below(&self, i: usize, above: usize) -> bool {
        let mut at = self.span_of(self.span(i).parent_span_id.as_deref());
        for _ in 0..=128 {
            match at {
                Some(x) if x == above => return true,
                Some(x) => at = self.span_of(self.span(x).parent_span_id.as_deref()),
                None => return false,
            }
        }
        false
    }

    /// The deeper failure a report echoes, if any: a service whose call failed reports it
    /// again upstream (`HTTP 502 from GET /route`, `unexpected status 502 Bad Gateway`), and
    /// the failure lives where the deepest failing span below the report's own span is (or,
    /// with no failing span below, another service's error log there). Only a report of no
    /// known kind can be an echo: a transport error, a cancellation or a failed lookup says
    /// itself what failed, and [`Trace::resolve`] follows it.
    fn echoed(&self, report: Report<'a>) -> Option<Report<'a>> {
        if self
            .text_of(report)
            .is_some_and(|t| fault_of(t) != Fault::Other)
        {
            return None;
        }
        let anchor = self.anchor(report)?;
        let deepest = (0..self.facts.spans.len())
            .filter(|&i| {
                let s = self.span(i);
                s.failed
                    && self.is_below(i, anchor)
                    && !self.children(i).any(|c| self.span(c).failed)
            })
            .max_by_key(|&i| {
                (
                    self.depth[i],
                    std::cmp::Reverse(self.span(i).start_unix_nanos),
                )
            });
        if let Some(i) = deepest {
            return Some(Report::Span(i));
        }
        let reporter = self.service_of(report);
        self.facts
            .logs
            .iter()
            .find(|l| {
                l.service != reporter
                    && self
                        .span_of(l.span_id.as_deref())
                        .is_some_and(|s| self.is_below(s, anchor))
            })
            .map(Report::Log)
    }

    /// Where a cancelled report's failure lives: the caller above the cancelled service
    /// gave up on it. When that caller timed out, the service did not answer in time — it is
    /// the culprit, unless the cancelled report is its own call that had been waiting most
    /// of that time (then the wait was in that call's callee). A caller whose call was
    /// cancelled in turn is followed upwards. `None` when no caller in the trace timed out.
    fn gave_up_on(
        &self,
        report: Report<'a>,
        hops: usize,
        evidence: &mut Vec<String>,
    ) -> Option<Culprit> {
        let service = self.service_of(report);
        let mut at = self.anchor(report)?;
        let mut call = None;
        for _ in 0..=128 {
            let parent = self.span_of(self.span(at).parent_span_id.as_deref())?;
            if self.span(parent).service != service {
                call = Some(parent);
                break;
            }
            at = parent;
        }
        let call = call?;
        let waited = self.span(call);
        let caller = waited.service.clone();
        match waited.error.as_deref().map(fault_of) {
            Some(Fault::Timeout) => {}
            Some(Fault::Canceled) if hops < MAX_HOPS => {
                return self.gave_up_on(Report::Span(call), hops + 1, evidence);
            }
            _ => return None,
        }
        let duration = |s: &CallSpan| (s.end_unix_nanos - s.start_unix_nanos).max(0);
        evidence.push(format!(
            "{caller} gave up on {service} after {} ms (timeout); {service}'s work was \
             cancelled with it",
            duration(waited) / 1_000_000
        ));
        if let Report::Span(i) = report {
            let own_call = self.span(i);
            // A call cancelled right after it started is the service's next step, not its
            // wait: the time went before it.
            if own_call.kind == CallKind::Client && duration(own_call) * 2 >= duration(waited) {
                evidence.push(format!(
                    "{service}'s own call {:?} had been waiting {} ms of it",
                    own_call.operation,
                    duration(own_call) / 1_000_000
                ));
                if let Some((callee, server, edge)) = self.callee(report, Fault::Timeout, evidence)
                {
                    return Some(Culprit {
                        reasoning: format!(
                            "{callee} did not answer within the deadline: {caller} gave up on \
                             {service} while {service} waited for {callee} ({edge})"
                        ),
                        service: callee,
                        role: CulpritRole::Callee,
                        fault: Fault::Timeout,
                        seen_by: vec![service.to_owned(), caller],
                        edge: Some(edge),
                        resolved: true,
                        headline: String::new(),
                        evidence: Vec::new(),
                        traces_agreeing: 1,
                        traces_total: 1,
                        span_id: server.map(|s| self.span(s).span_id.clone()),
                    });
                }
            }
        }
        let server = self.span(at);
        let edge = Edge {
            caller: caller.clone(),
            callee: service.to_owned(),
            operation: Some(waited.operation.clone()),
            address: waited
                .peer
                .address
                .as_ref()
                .zip(waited.peer.port)
                .map(|(host, port)| format!("{host}:{port}"))
                .or_else(|| {
                    waited
                        .error
                        .as_deref()
                        .and_then(address_in)
                        .map(|(host, port)| format!("{host}:{port}"))
                }),
            link: CalleeLink::ChildSpan,
        };
        Some(Culprit {
            service: service.to_owned(),
            role: CulpritRole::Callee,
            fault: Fault::Timeout,
            seen_by: vec![caller.clone()],
            reasoning: format!(
                "{service} did not answer within the caller's deadline on calls from {caller} \
                 ({edge}); its own work was cancelled when {caller} gave up"
            ),
            edge: Some(edge),
            resolved: true,
            headline: String::new(),
            evidence: Vec::new(),
            traces_agreeing: 1,
            traces_total: 1,
            span_id: (server.kind == CallKind::Server).then(|| server.span_id.clone()),
        })
    }

    /// Every report of the trace (failing spans, error logs), optionally only those of one
    /// pattern; deepest span first, logs after spans.
    fn reports(&self, pattern: Option<&str>) -> Vec<Report<'a>> {
        let mut spans: Vec<usize> = (0..self.facts.spans.len())
            .filter(|&i| {
                let s = self.span(i);
                match pattern {
                    Some(p) => s.patterns.iter().any(|x| x == p),
                    None => s.failed,
                }
            })
            .collect();
        spans.sort_by_key(|&i| {
            (
                std::cmp::Reverse(self.depth[i]),
                self.span(i).start_unix_nanos,
            )
        });
        let mut out: Vec<Report<'a>> = spans.into_iter().map(Report::Span).collect();
        out.extend(
            self.facts
                .logs
                .iter()
                .filter(|l| pattern.is_none_or(|p| l.pattern.as_deref() == Some(p)))
                .map(Report::Log),
        );
        out
    }

    fn verdict(&self, pattern: Option<&str>) -> Option<Culprit> {
        let reports = self.reports(pattern);
        // The report to judge: the deepest failing span whose failure no failing child
        // explains (a span of the pattern, when judging one), else the first log.
        // In a parent cycle every failing span has a failing child: take the deepest then.
        let first = reports
            .iter()
            .copied()
            .find(|r| match r {
                Report::Span(i) => !self.children(*i).any(|c| self.span(c).failed),
                Report::Log(_) => true,
            })
            .or_else(|| reports.first().copied())?;
        let mut evidence = Vec::new();
        // An echo of a deeper failure is judged where that failure is.
        let judged = match self.echoed(first) {
            Some(deeper) => {
                evidence.push(format!(
                    "{} reported a failure of a call it made: followed down to {}",
                    self.service_of(first),
                    self.service_of(deeper)
                ));
                deeper
            }
            None => first,
        };
        let mut verdict = self.resolve(judged, 0, &mut evidence);
        let reporters: BTreeSet<&str> = reports.iter().map(|r| self.service_of(*r)).collect();
        for reporter in reporters {
            if reporter != verdict.service && !verdict.seen_by.iter().any(|s| s == reporter) {
                verdict.seen_by.push(reporter.to_owned());
            }
        }
        evidence.dedup();
        evidence.truncate(MAX_EVIDENCE);
        verdict.evidence = evidence;
        verdict.headline = verdict.headline();
        Some(verdict)
    }
}

fn clip(text: &str) -> String {
    const MAX: usize = 300;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Where the error of one trace lives: judged from the deepest failing span whose failure no
/// failing child explains (else the first error log). `None` when nothing failed.
pub fn trace_culprit(trace: &TraceFacts, listeners: &Listeners) -> Option<Culprit> {
    Trace::new(trace, listeners).verdict(None)
}

/// Where one error pattern's failure lives in one trace: judged from the pattern's own
/// reports in it (its spans, its logs). `None` when the pattern was not reported in the trace.
pub fn pattern_culprit_in_trace(
    trace: &TraceFacts,
    pattern: &str,
    listeners: &Listeners,
) -> Option<Culprit> {
    Trace::new(trace, listeners).verdict(Some(pattern))
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
