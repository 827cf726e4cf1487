//! Grouping: which signals (patterns and counter anomalies) are one incident.

use std::collections::BTreeSet;

use super::addresses::{peer_of, port_of};
use super::services::{calls, listener, owner, traffic_service};
use super::{PatternInput, ServiceFacts, GROUP_WINDOW_MS, UPSTREAM_SLACK_MS};
use faultline_series::{ProcessMetric, SeriesKey, SocketState};

use crate::anomaly::{CounterAnomaly, Direction};
use crate::hints::CulpritRole;
use crate::history::CounterHistory;

/// One pattern or anomaly being grouped.
pub(super) struct Signal<'a> {
    pub(super) onset: i64,
    pub(super) culprit: Option<(String, Option<CulpritRole>, String)>,
    pub(super) what: SignalWhat<'a>,
    /// An untraced echo that joined the incident of the failure it echoes (listed after the
    /// incident's own patterns).
    pub(super) echo: bool,
    /// Evidence beside a fault that joined its group (a service's traffic, its callers'
    /// connections or their waits, a pool's churn, a port no known service owns): listed
    /// with the incident, never what keeps it active (see [`super::IncidentCounter::supporting`]).
    pub(super) supporting: bool,
}

pub(super) enum SignalWhat<'a> {
    Pattern(&'a PatternInput),
    Counter(&'a CounterAnomaly),
}

/// Whether a signal is about `service` (its culprit, or a pattern seen in it).
pub(super) fn involves(s: &Signal<'_>, service: &str) -> bool {
    s.culprit.as_ref().is_some_and(|c| c.0 == service)
        || match &s.what {
            SignalWhat::Pattern(p) => p.services.iter().any(|x| x == service),
            SignalWhat::Counter(a) => traffic_service(&a.key).as_deref() == Some(service),
        }
}

/// Moves each untraced echo into the incident of the failure it echoes.
///
/// A caller that reports its callee's failure without a trace id (Gin's own `Error #01: GET
/// http://127.0.0.1:8081/v1/orders/7: 502 Bad Gateway` line under its access line) shares no
/// trace with the failure and has no culprit: its pattern was an incident of its own, "seen
/// in" the echoing service (the demo's second incident, beside the EOF it echoed). Records
/// without a trace id count one each, but such a pattern is one more view of a known failure
/// when, within the window, an incident with a culprit is downstream of it: the address its
/// message names is the culprit's or a service that calls the culprit, or it only reports an
/// HTTP error status and a service it was seen in calls the culprit. With several such
/// incidents, the one whose onset is nearest. A pattern with a culprit or a trace is never
/// moved, nor one whose group already has a culprit.
pub(super) fn join_untraced_echoes(
    groups: &mut Vec<Vec<usize>>,
    signals: &mut [Signal<'_>],
    services: &[ServiceFacts],
) {
    let culprit_of = |g: &[usize], signals: &[Signal<'_>]| -> Option<String> {
        g.iter()
            .find_map(|&j| signals[j].culprit.as_ref().map(|c| c.0.clone()))
    };
    for i in 0..signals.len() {
        let SignalWhat::Pattern(p) = signals[i].what else {
            continue;
        };
        if p.culprit.is_some() || !p.trace_ids.is_empty() {
            continue;
        }
        let Some(from) = groups.iter().position(|g| g.contains(&i)) else {
            continue;
        };
        if culprit_of(&groups[from], signals).is_some() {
            continue;
        }
        let named = peer_of(p)
            .as_deref()
            .and_then(port_of)
            .and_then(|port| listener(port, services))
            .map(|s| s.service.clone());
        let echoes = |culprit: &str| {
            named
                .as_deref()
                .is_some_and(|n| n == culprit || calls(n, culprit, services))
                || (p.status_echo && p.services.iter().any(|s| calls(s, culprit, services)))
        };
        let home = groups
            .iter()
            .enumerate()
            .filter(|(g, _)| *g != from)
            .filter_map(|(g, members)| {
                let culprit = culprit_of(members, signals)?;
                let nearest = members
                    .iter()
                    .map(|&j| (signals[j].onset - signals[i].onset).abs())
                    .min()?;
                (nearest <= GROUP_WINDOW_MS && echoes(&culprit)).then_some((nearest, g))
            })
            .min();
        let Some((_, to)) = home else {
            continue;
        };
        groups[from].retain(|&j| j != i);
        groups[to].push(i);
        signals[i].echo = true;
    }
    groups.retain(|g| !g.is_empty());
}

/// Moves the counters of a service that waits on a failing callee into the callee's incident.
///
/// A callee that hangs, closes or resets holds its callers up: their goroutines and open
/// fds pile up on the calls in flight, their own listening ports keep their clients' waiting
/// connections. Each caller's counters name the caller (its goroutines, its process), so they
/// grouped into an incident of their own blaming the caller, beside the callee's (seen on
/// the Go lab's listen-overflow: "goroutines grow without bound — in orders-svc" and in the
/// edge above it, while the callee's listen queue overflowed). A group is moved when all of
/// it is counters of one service that calls, directly or through others, the culprit of a
/// group holding an error pattern placed on that culprit as a callee (its callers' calls
/// fail on it: they wait on it; a service that fails fast with its own error holds nobody
/// up), and every counter starts between [`UPSTREAM_SLACK_MS`]
/// before that group's onset and [`GROUP_WINDOW_MS`] after it: consequences follow the
/// failure. A counter dated earlier, at a slow creep, whose pace jumped with the failure
/// counts as starting with it (see [`jumped_with`]). The moved counters name no culprit of
/// their own; the incident lists them as the culprit's callers' (see [`relate`]). A caller
/// whose own fault started first keeps its incident.
pub(super) fn join_upstream_waits(
    groups: &mut Vec<Vec<usize>>,
    signals: &mut [Signal<'_>],
    services: &[ServiceFacts],
    history: &CounterHistory,
) {
    for from in 0..groups.len() {
        let mut owners = groups[from].iter().map(|&i| match &signals[i].what {
            SignalWhat::Counter(a) => owner(&a.key, services),
            SignalWhat::Pattern(_) => None,
        });
        let Some(Some(waiting)) = owners.next() else {
            continue;
        };
        if !owners.all(|o| o.as_deref() == Some(waiting.as_str())) {
            continue;
        }
        let last = groups[from]
            .iter()
            .map(|&i| signals[i].onset)
            .fold(i64::MIN, i64::max);
        let home = groups.iter().enumerate().find_map(|(to, members)| {
            if to == from {
                return None;
            }
            let placed =
                members
                    .iter()
                    .find_map(|&j| match (&signals[j].what, &signals[j].culprit) {
                        (SignalWhat::Pattern(_), Some((c, Some(CulpritRole::Callee), _))) => {
                            Some(c.as_str())
                        }
                        _ => None,
                    });
            let onset = members.iter().map(|&j| signals[j].onset).min()?;
            let (culprit, within) = match placed {
                Some(c) => (c, GROUP_WINDOW_MS),
                // Before any failed call is known: a callee holding its requests, and the
                // caller's wait beginning with it.
                None => (
                    holding(members, signals)?,
                    if waits(&groups[from], signals) {
                        UPSTREAM_SLACK_MS
                    } else {
                        return None;
                    },
                ),
            };
            let follows = groups[from].iter().all(|&i| {
                signals[i].onset >= onset - UPSTREAM_SLACK_MS
                    || matches!(signals[i].what,
                        SignalWhat::Counter(a) if jumped_with(a, onset - UPSTREAM_SLACK_MS, history))
            });
            (culprit != waiting
                && calls(&waiting, culprit, services)
                && follows
                && last <= onset + within)
                .then_some(to)
        });
        let Some(to) = home else {
            continue;
        };
        let moved = std::mem::take(&mut groups[from]);
        for &i in &moved {
            signals[i].culprit = None;
            // Waits on the callee end when it answers again: evidence of its fault, not a
            // fault that goes on by itself.
            signals[i].supporting = true;
        }
        groups[to].extend(moved);
    }
    groups.retain(|g| !g.is_empty());
}

/// The culprit of a group of counters alone (no failed call known yet) that holds work: one
/// of them is a rise of its culprit's goroutines or threads. A hung callee's goroutines climb
/// with its requests in flight within a second of the fault, before its callers' first
/// timeout; so do its callers', waiting on it.
fn holding<'a>(members: &[usize], signals: &'a [Signal<'_>]) -> Option<&'a str> {
    let culprit = members.iter().find_map(|&j| signals[j].culprit.as_ref())?;
    let counters_only = members.iter().all(|&j| {
        matches!(signals[j].what, SignalWhat::Counter(_))
            && signals[j].culprit.as_ref().is_none_or(|c| c.0 == culprit.0)
    });
    let holds = members.iter().any(|&j| match signals[j].what {
        SignalWhat::Counter(a) => a.direction == Direction::Rise && works(&a.key),
        SignalWhat::Pattern(_) => false,
    });
    (counters_only && holds).then_some(culprit.0.as_str())
}

/// Whether a group of one service's counters is its requests waiting: all rises, at least one
/// of its goroutines or threads, and no TIME-WAIT (connections it closed itself: its own churn,
/// never a wait).
fn waits(members: &[usize], signals: &[Signal<'_>]) -> bool {
    let counters = || {
        members.iter().filter_map(|&i| match signals[i].what {
            SignalWhat::Counter(a) => Some(a),
            SignalWhat::Pattern(_) => None,
        })
    };
    counters().count() == members.len()
        && counters().all(|a| {
            a.direction == Direction::Rise
                && !matches!(
                    a.key,
                    SeriesKey::PortState {
                        state: SocketState::TimeWait,
                        ..
                    }
                )
        })
        && counters().any(|a| works(&a.key))
}

/// Whether a series counts a service's work in progress: its goroutines or its threads.
fn works(key: &SeriesKey) -> bool {
    matches!(
        key,
        SeriesKey::Task { .. }
            | SeriesKey::Process {
                metric: ProcessMetric::Threads,
                ..
            }
    )
}

/// How much faster than before it a change dated before `at` moved from `at` on, for it to be
/// a change of its own that began there (see [`jumped_with`]).
const JUMP_PACE: f64 = 2.0;

/// Whether the change of `a`, dated before `at`, moved from `at` on at least [`JUMP_PACE`]
/// times its pace between its date and `at`, in its direction: a creep that a jump joined.
/// The detector dates such a change where its fit begins, at the creep, until it has seen
/// enough of the jump to date it there (see `anomaly`'s creep then jump). Seen on the Go
/// lab's listen-overflow: the edge's goroutines and fds crept with its clients' pool (21 →
/// 53 in 20 s) before its callee's callee stopped accepting, then jumped to 125 within two
/// seconds of its first failed call; the first pass dated them 12 s before the failure and
/// raised "Goroutines grow without bound — in gateway" beside the callee's incident.
fn jumped_with(a: &CounterAnomaly, at: i64, history: &CounterHistory) -> bool {
    let Some(series) = history.get(&a.key) else {
        return false;
    };
    let known = |from: usize, to: usize| {
        (from..to.min(series.points.len())).find_map(|i| series.points[i].map(|v| (i, v)))
    };
    let (Some(changed), Some(split)) =
        (history.point_at(a.changed_at_unix_ms), history.point_at(at))
    else {
        return false;
    };
    let sign = match a.direction {
        Direction::Rise => 1.0,
        Direction::Fall => -1.0,
    };
    let (Some((i0, v0)), Some((i1, v1))) =
        (known(changed, split + 1), known(split, series.points.len()))
    else {
        return false;
    };
    if i1 <= i0 {
        return false;
    }
    let before = sign * (v1 - v0) / (i1 - i0) as f64;
    // Its fastest pace from `at` to a later point: a jump that levelled off (or crept on
    // after it) is still the jump.
    let after = series
        .points
        .iter()
        .enumerate()
        .skip(i1 + 1)
        .filter_map(|(i, v)| v.map(|v| sign * (v - v1) / (i - i1) as f64))
        .fold(f64::NEG_INFINITY, f64::max);
    after > 0.0 && after >= JUMP_PACE * before.max(0.0)
}

/// Groups signals: within the window and sharing a trace or a culprit, never two culprits in
/// one group. Greedy over pairs in onset order, so the answer does not depend on input order.
pub(super) fn group(signals: &[Signal<'_>]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..signals.len()).collect();
    order.sort_by_key(|&i| (signals[i].onset, i));
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for &i in &order {
        let s = &signals[i];
        let mut joined: Option<usize> = None;
        for (g, members) in groups.iter_mut().enumerate() {
            let culprits: BTreeSet<&str> = members
                .iter()
                .filter_map(|&j| signals[j].culprit.as_ref().map(|c| c.0.as_str()))
                .collect();
            if let Some(c) = &s.culprit {
                if culprits.iter().any(|x| *x != c.0) {
                    continue;
                }
            }
            let linked = members.iter().any(|&j| {
                let o = &signals[j];
                ((o.onset - s.onset).abs() <= GROUP_WINDOW_MS
                    && (same_culprit(o, s) || share_trace(o, s) || same_port(o, s)))
                    || failed_after(o, s)
                    || failed_after(s, o)
            });
            if linked {
                members.push(i);
                joined = Some(g);
                break;
            }
        }
        if joined.is_none() {
            groups.push(vec![i]);
        }
    }
    groups
}

/// Whether pattern `then` failed mostly in requests that had already failed with pattern
/// `first` (its [`PatternInput::failed_before`]), starting while `first` went on or within the
/// grouping window of it: the same failed requests told a second time, by another service or
/// at another moment of them, whatever the traces each lists (a few recent ones) say. Seen on
/// the Go lab's close-wait leak healed by a restart: the 245 requests the leaking service had
/// left hanging were cancelled as it stopped (`Get "<url>": context canceled`, 37 s after the
/// leak began, in traces its callers' timeouts had failed), and were an incident of their own
/// with no culprit beside the leak's.
fn failed_after(first: &Signal<'_>, then: &Signal<'_>) -> bool {
    let (SignalWhat::Pattern(first), SignalWhat::Pattern(then)) = (&first.what, &then.what) else {
        return false;
    };
    let traced = then.count.saturating_sub(then.untraced);
    let shared = then
        .failed_before
        .iter()
        .find(|(id, _)| *id == first.id)
        .map_or(0, |&(_, n)| n);
    shared > 0
        && 2 * shared >= traced
        && then.onset_unix_ms >= first.onset_unix_ms - GROUP_WINDOW_MS
        && then.onset_unix_ms <= first.last_seen_unix_ms + GROUP_WINDOW_MS
}

pub(super) fn same_culprit(a: &Signal<'_>, b: &Signal<'_>) -> bool {
    matches!((&a.culprit, &b.culprit), (Some(x), Some(y)) if x.0 == y.0)
}

/// Two signals about one port: two counters of it (its states, its total, its accept queue,
/// either side), or a pattern whose failing calls name it (`http://host:PORT/...`) and a
/// counter of it — one place on the node, whoever owns it, even before a culprit is known.
pub(super) fn same_port(a: &Signal<'_>, b: &Signal<'_>) -> bool {
    let port = |s: &Signal<'_>| match &s.what {
        SignalWhat::Counter(x) => x.key.port(),
        SignalWhat::Pattern(p) => peer_of(p).as_deref().and_then(port_of),
    };
    let counters =
        matches!(a.what, SignalWhat::Counter(_)) || matches!(b.what, SignalWhat::Counter(_));
    counters && port(a).is_some() && port(a) == port(b)
}

pub(super) fn share_trace(a: &Signal<'_>, b: &Signal<'_>) -> bool {
    match (&a.what, &b.what) {
        (SignalWhat::Pattern(x), SignalWhat::Pattern(y)) => {
            x.trace_ids.iter().any(|t| y.trace_ids.contains(t))
        }
        _ => false,
    }
}
