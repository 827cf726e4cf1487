//! One trace's walk: from its failing reports down the calls to the service where the
//! failure lives.

use std::collections::{BTreeMap, BTreeSet};

use super::fault::{address_in, fault_of, Fault};
use super::{
    CallKind, CallLog, CallSpan, CalleeLink, Culprit, Edge, Listeners, TraceFacts, MAX_EVIDENCE,
    MAX_HOPS,
};
use crate::hints::CulpritRole;

/// One report of a failure in a trace: a failing span or an error log.
#[derive(Debug, Clone, Copy)]
pub(super) enum Report<'a> {
    Span(usize),
    Log(&'a CallLog),
}

pub(super) struct Trace<'a> {
    facts: &'a TraceFacts,
    listeners: &'a Listeners,
    index: BTreeMap<&'a str, usize>,
    depth: Vec<usize>,
}

impl<'a> Trace<'a> {
    pub(super) fn new(facts: &'a TraceFacts, listeners: &'a Listeners) -> Self {
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

    /// The callee of the failed call behind `report` when the trace is young and that callee
    /// sends spans but has neither a span nor a log in it: its own report of what failed may
    /// still arrive (see [`TraceFacts::young`]). Seen on the unseen lab: gateway's span
    /// `metadata: unexpected status 502` arrived before metadata's log of running out of
    /// fds, its failing call to metadata said only `metadata answered 502`, and the trace was
    /// blamed on gateway — for a moment an incident "in gateway" beside metadata's.
    fn awaited(&self, report: Report<'a>, fault: Fault) -> Option<String> {
        if !self.facts.young {
            return None;
        }
        // Only a report made on the call itself: a service's own error (a panic on its
        // SERVER span) is its own, whatever else it called.
        let on = match report {
            Report::Span(i) => Some(i),
            Report::Log(log) => self.span_of(log.span_id.as_deref()),
        };
        let client = on.filter(|&i| self.span(i).kind == CallKind::Client)?;
        let (callee, server, _) = self.callee(Report::Span(client), fault, &mut Vec::new())?;
        let silent = server.is_none()
            && !self.facts.spans.iter().any(|s| s.service == callee)
            && !self.facts.logs.iter().any(|l| l.service == callee);
        (silent && self.listeners.sends_spans(&callee)).then_some(callee)
    }

    /// The callee's own report of an error in this trace, if it made one: its deepest failing
    /// span (under `server` when known), else its first error log.
    fn own_report(&self, callee: &str, server: Option<usize>) -> Option<Report<'a>> {
        let failed = self.deepest(|i| {
            let s = self.span(i);
            s.service == callee
                && s.failed
                && server.is_none_or(|root| i == root || self.is_below(i, root))
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
            if let Some(callee) = self.awaited(report, fault) {
                evidence.push(format!(
                    "{callee} sends spans, and none of it is in this trace yet"
                ));
                let mut verdict = own(
                    CulpritRole::SelfReported,
                    format!(
                        "{service} reported a failed call to {callee}, whose own spans and logs \
                         of this trace have not arrived yet: where the failure lives is judged \
                         when they do"
                    ),
                );
                verdict.resolved = false;
                return verdict;
            }
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
    /// Of the spans `keep` admits, the deepest; the earliest of equally deep ones.
    fn deepest(&self, keep: impl Fn(usize) -> bool) -> Option<usize> {
        (0..self.facts.spans.len())
            .filter(|&i| keep(i))
            .max_by_key(|&i| {
                (
                    self.depth[i],
                    std::cmp::Reverse(self.span(i).start_unix_nanos),
                )
            })
    }

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
        let deepest = self.deepest(|i| {
            let s = self.span(i);
            s.failed && self.is_below(i, anchor) && !self.children(i).any(|c| self.span(c).failed)
        });
        if let Some(i) = deepest {
            return Some(Report::Span(i));
        }
        let reporter = self.service_of(report);
        let below = self.facts.logs.iter().find(|l| {
            l.service != reporter
                && self
                    .span_of(l.span_id.as_deref())
                    .is_some_and(|s| self.is_below(s, anchor))
        });
        if let Some(log) = below {
            return Some(Report::Log(log));
        }
        // The service the failed call went to logged an error of its own in this trace but
        // sent no span of it: the failure is its. Seen on the unseen lab's close-wait fault:
        // metadata, out of fds, could no longer post its spans, but logged `socket: too many
        // open files` with the trace id; gateway's CLIENT span to metadata's port said only
        // "metadata answered 502", and the trace was blamed on gateway.
        let (callee, server, _) = self.callee(report, Fault::Other, &mut Vec::new())?;
        match self.own_report(&callee, server)? {
            Report::Log(log) => Some(Report::Log(log)),
            Report::Span(_) => None,
        }
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
    /// pattern (tagged with one of its ids); deepest span first, logs after spans.
    fn reports(&self, pattern: Option<&[&str]>) -> Vec<Report<'a>> {
        let mut spans: Vec<usize> = (0..self.facts.spans.len())
            .filter(|&i| {
                let s = self.span(i);
                match pattern {
                    Some(ids) => s.patterns.iter().any(|x| ids.contains(&x.as_str())),
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
                .filter(|l| {
                    pattern.is_none_or(|ids| l.pattern.as_deref().is_some_and(|p| ids.contains(&p)))
                })
                .map(Report::Log),
        );
        out
    }

    pub(super) fn verdict(&self, pattern: Option<&[&str]>) -> Option<Culprit> {
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

pub(super) fn clip(text: &str) -> String {
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
