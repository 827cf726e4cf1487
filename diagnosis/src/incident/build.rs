//! The incident document of one group of signals: its culprit, patterns, related counters,
//! hints, title and stable id.

use std::collections::{BTreeMap, BTreeSet};

use faultline_series::{
    CounterKind, PortSide, ProcessMetric, SeriesKey, SocketState, TrafficMetric,
};

use super::addresses::{failing_url, host_of, looked_up_host, peer_of, port_of};
use super::grouping::{Signal, SignalWhat};
use super::services::{calls, counter_culprit, listener, owner, peers, port_callers};
use super::{
    CountedAs, DiagnosisInput, Incident, IncidentCounter, IncidentCulprit, IncidentPattern, Member,
    Members, PatternInput, Relation, ServiceFacts, Span, ACTIVE_MS, MAX_COUNTERS, MAX_PATTERNS,
    MAX_TRACES,
};
use crate::anomaly::{clock, leak, CounterAnomaly};
use crate::hints::{CulpritRole, Hint, HintFacts, HintRules, HintSubject};
use crate::history::CounterHistory;
use crate::text::shorten;

/// The incident of one group, with how its title was built and its members.
/// `earlier_runs` are, by pattern id, the count and untraced records a pattern had before its
/// current run (see [`IncidentPattern::counted_before`]): its counts here are its run's.
/// `retold` are the patterns another incident held in an earlier run (see
/// [`super::IncidentTracker::update`]): one of them that shares a trace with a pattern of the
/// group that is not is an echo of that pattern's failures here ([`CountedAs::Echo`]), listed
/// after the group's own patterns and never its title. `node_wide` are counters listed beside
/// the group's (supporting), but for those whose keys are in `kept_own`: counters the incident
/// took back from its earlier updates as its own evidence (see [`IncidentCounter::supporting`]).
pub(super) fn build(
    members: &[&Signal<'_>],
    node_wide: &[&CounterAnomaly],
    kept_own: &BTreeSet<&SeriesKey>,
    input: &DiagnosisInput<'_>,
    rules: &HintRules,
    retold: &BTreeSet<&str>,
    earlier_runs: &BTreeMap<&str, (u64, u64)>,
) -> (Incident, Title, Members) {
    let now = input.now_unix_ms;
    let before = |p: &PatternInput| earlier_runs.get(p.id.as_str()).copied().unwrap_or((0, 0));
    let run = |p: &PatternInput| {
        let (count, untraced) = before(p);
        (
            p.count.saturating_sub(count),
            p.untraced.saturating_sub(untraced),
        )
    };
    let mut patterns: Vec<&PatternInput> = Vec::new();
    let mut echoes: Vec<&PatternInput> = Vec::new();
    let mut counters: Vec<&CounterAnomaly> = Vec::new();
    // The counters that are evidence beside the fault, not its own (see
    // [`IncidentCounter::supporting`]): node-wide ones always.
    let mut supporting: BTreeSet<&SeriesKey> = node_wide
        .iter()
        .map(|a| &a.key)
        .filter(|k| !kept_own.contains(k))
        .collect();
    for s in members {
        match &s.what {
            SignalWhat::Pattern(p) if s.echo => echoes.push(p),
            SignalWhat::Pattern(p) => patterns.push(p),
            SignalWhat::Counter(a) => {
                counters.push(a);
                if s.supporting {
                    supporting.insert(&a.key);
                }
            }
        }
    }
    // The incident's own patterns earliest first, then the untraced echoes of them.
    let by_onset = |a: &&PatternInput, b: &&PatternInput| {
        a.onset_unix_ms.cmp(&b.onset_unix_ms).then(a.id.cmp(&b.id))
    };
    // A pattern of an earlier run that shares a trace with a failure of this run's retells
    // that failure (by trace, its occurrences now are those failures): an echo here.
    let all = patterns.clone();
    let (again, own): (Vec<&PatternInput>, Vec<&PatternInput>) =
        all.iter().copied().partition(|p| {
            retold.contains(p.id.as_str())
                && all.iter().any(|q| {
                    q.id != p.id
                        && !retold.contains(q.id.as_str())
                        && q.trace_ids.iter().any(|t| p.trace_ids.contains(t))
                })
        });
    patterns = own;
    echoes.extend(again);
    patterns.sort_by(by_onset);
    echoes.sort_by(by_onset);
    // When some pattern was seen in traces, the failed requests are those the traces count:
    // a pattern no trace holds is a line of no request (an accept loop's, an exporter's) or
    // another word for a request already counted.
    let by_trace = patterns.iter().any(|p| !p.trace_ids.is_empty());
    let counted_as = |p: &PatternInput| {
        if echoes.iter().any(|e| e.id == p.id) {
            CountedAs::Echo
        } else if by_trace && p.trace_ids.is_empty() {
            CountedAs::Untraced
        } else {
            CountedAs::Failures
        }
    };
    patterns.extend(echoes.iter().copied());
    let (failures, untraced_records) = tally(patterns.iter().map(|p| {
        let shared: &[(String, u64)] = &p.failed_before;
        (p.id.as_str(), counted_as(p), run(p), shared)
    }));

    // The culprit: the one the members name (grouping left at most one). Its role is the
    // patterns' first: their failing calls say how the culprit failed (a caller whose
    // lookups fail), where a counter only says whose port or process it is.
    let mut culprit = IncidentCulprit {
        service: None,
        role: None,
        reasoning: Vec::new(),
        seen_in: Vec::new(),
    };
    let mut patterns_first: Vec<&&Signal<'_>> = members.iter().collect();
    patterns_first.sort_by_key(|s| !matches!(s.what, SignalWhat::Pattern(_)));
    for s in patterns_first {
        if let Some((service, role, why)) = &s.culprit {
            culprit.service.get_or_insert_with(|| service.clone());
            if culprit.role.is_none() {
                culprit.role = *role;
            }
            if !culprit.reasoning.contains(why) && culprit.reasoning.len() < 5 {
                culprit.reasoning.push(why.clone());
            }
        }
    }
    // Where its failures were seen, the culprit aside: the callers that reported them (a
    // pattern's services include a caller whose status report of the same failed request was
    // folded into it), as the patterns' own "seen by" says.
    let seen: BTreeSet<&String> = patterns
        .iter()
        .flat_map(|p| &p.services)
        .filter(|s| culprit.service.as_ref() != Some(*s))
        .collect();
    culprit.seen_in = seen.into_iter().cloned().collect();
    if culprit.service.is_none() {
        culprit.reasoning.push(if patterns.is_empty() {
            "no service is known for these counters".to_owned()
        } else {
            "the patterns' failures are not attributed to a service yet; they were seen in the \
             services listed"
                .to_owned()
        });
    }

    let named_ports: Vec<u16> = patterns
        .iter()
        .filter_map(|p| peer_of(p).as_deref().and_then(port_of))
        .collect();
    let listed_as = |a: &CounterAnomaly, supporting: bool| {
        let (relation, relation_text) = relate(
            &a.key,
            culprit.service.as_deref(),
            culprit.role,
            &named_ports,
            input.services,
        );
        IncidentCounter {
            relation,
            relation_text,
            supporting,
            // Said by the tracker (see [`super::recovery`]).
            moving_away: a.active,
            anomaly: a.clone(),
        }
    };
    let mut listed: Vec<IncidentCounter> = counters
        .iter()
        .copied()
        .chain(node_wide.iter().copied())
        .map(|a| listed_as(a, supporting.contains(&a.key)))
        .collect();
    // A callee's accept queue that the latest census shows filling while its callers fail:
    // their failures are its second witness (see [`crate::anomaly::filling_queues`]), and the
    // incident can say so from its first answer rather than after the census that shows the
    // queue full. Seen on the Go lab's listen-overflow: the queue read 4 of its backlog of 8
    // at the census before the first timeouts, 9 at the next, and the incident was titled by
    // the timeouts in between.
    if !patterns.is_empty() && culprit.role == Some(CulpritRole::Callee) {
        let own_ports = culprit
            .service
            .as_ref()
            .and_then(|c| input.services.iter().find(|s| &s.service == c))
            .map_or(&[][..], |f| f.listen_ports.as_slice());
        for a in &input.anomalies.filling_queues {
            let ours = a.key.port().is_some_and(|p| own_ports.contains(&p));
            if !ours || listed.iter().any(|c| c.anomaly.key == a.key) {
                continue;
            }
            // A filling queue is always `active` (see `filling_queues`): moving away.
            listed.push(listed_as(a, false));
        }
    }
    order_counters(&mut listed, &culprit, !patterns.is_empty(), input.services);
    let facts = culprit
        .service
        .as_ref()
        .and_then(|c| input.services.iter().find(|s| &s.service == c));

    // Dated, like it is active, by its own evidence: a pool's churn or a caller's traffic
    // that joined within the window may have moved before the fault (seen on the unseen lab:
    // a close-wait incident dated 34 s before the injection).
    let onset = members
        .iter()
        .filter(|s| !s.supporting)
        .map(|s| s.onset)
        .min()
        .or_else(|| members.iter().map(|s| s.onset).min())
        .unwrap_or(now);
    // Active only on its own evidence: its requests failing now (an echo it only lists comes
    // back with any fault below it) or its own counters still out of their range. A
    // supporting counter does not count: seen on the unseen lab, a healed close-wait
    // incident stayed active for minutes on a pool's TIME-WAIT churn and its caller's
    // traffic after its last failure.
    let last_failure = patterns
        .iter()
        .filter(|p| counted_as(p) != CountedAs::Echo)
        .map(|p| p.last_seen_unix_ms)
        .max();
    let failing = last_failure.is_some_and(|t| now - t <= ACTIVE_MS);
    let counter_active = counters
        .iter()
        .any(|a| a.active && !supporting.contains(&a.key));
    let active = failing || counter_active;
    let last_active = if counter_active {
        now
    } else {
        last_failure.unwrap_or(onset).max(onset)
    };

    let mut trace_ids: Vec<String> = Vec::new();
    for p in &patterns {
        for t in &p.trace_ids {
            if trace_ids.len() < MAX_TRACES && !trace_ids.contains(t) {
                trace_ids.push(t.clone());
            }
        }
    }

    let texts: Vec<String> = patterns.iter().map(|p| p.text.clone()).collect();
    let anomalies: Vec<CounterAnomaly> = listed.iter().map(|c| c.anomaly.clone()).collect();
    let top_port = listed.iter().find_map(|c| c.anomaly.key.port());
    let peer = patterns.iter().find_map(|p| peer_of(p));
    let host = patterns
        .iter()
        .find_map(|p| {
            p.example
                .as_deref()
                .and_then(looked_up_host)
                .or_else(|| looked_up_host(&p.text))
        })
        .or_else(|| peer.as_ref().map(|p| host_of(p).to_owned()));
    let hint_facts = HintFacts {
        service: culprit.service.clone(),
        port: facts
            .and_then(|f| f.listen_ports.first().copied())
            .or(top_port)
            .or_else(|| peer.as_deref().and_then(port_of)),
        peer: peer.clone(),
        url: patterns.iter().find_map(|p| failing_url(p)),
        host,
        pid: facts.and_then(|f| f.pid),
        goroutine_url: facts.and_then(|f| f.goroutine_url.clone()),
        top_stack: facts.and_then(|f| f.top_stack.clone()),
        pattern_id: patterns.first().map(|p| p.id.clone()),
        gone: facts
            .filter(|_| culprit.role == Some(CulpritRole::Callee))
            .and_then(|f| gone(f, onset, input.history)),
        api: input.api.map(str::to_owned),
        service_ports: input
            .services
            .iter()
            .filter_map(|s| Some((s.service.clone(), *s.listen_ports.first()?)))
            .collect(),
    };
    // A port's TIME-WAIT rise judged a pool's churn (fewer closes than one per call, see
    // [`super::MIN_STORM_RISE`]) is listed beside the fault but is no storm: no hint rests on
    // it. Seen on the Go lab's panic in its edge: the traffic driver's pool recycling its
    // connections, `TIME-WAIT :<edge> is climbing 17 → 72 in 52 s`, was hinted "A TIME-WAIT
    // storm" second, and was the incident's top counter.
    let hinted: Vec<CounterAnomaly> = anomalies
        .iter()
        .filter(|a| super::churn(a, input.services, input.history).is_none())
        .cloned()
        .collect();
    let mut accumulating = Vec::with_capacity(hinted.len());
    let mut readings = Vec::with_capacity(hinted.len());
    let mut caveats = Vec::with_capacity(hinted.len());
    let mut in_progress = Vec::new();
    for a in &hinted {
        let facts = holder_facts(a, &anomalies, input.services);
        let reading = leak::holder_reading(
            a,
            input.history,
            leak::Holder {
                requests: facts.as_ref().and_then(|f| f.requests.as_ref()),
                out_of_fds: facts.as_ref().is_some_and(|f| f.out_of_fds),
                running_out_of_fds: facts.as_ref().is_some_and(|f| {
                    f.fds
                        .iter()
                        .any(|fds| leak::exhausts_fds(a, fds, input.history))
                }),
                stopped_unix_ms: facts
                    .as_ref()
                    .and_then(|f| stopped_since(a, &f.service, input.services, input.history)),
            },
        );
        accumulating.push(reading.accumulation);
        let waiting = facts
            .as_ref()
            .and_then(|f| Unanswered::of(&f.service, reading.answers));
        readings.push(waiting.as_ref().map(|w| w.evidence(now)));
        caveats.push(waiting.map(|w| (a.key.clone(), w.caveat())));
        if let Some(f) = facts.as_ref().filter(|_| {
            reading.answers == leak::Answers::Answered
                && reading.accumulation == leak::Accumulation::TurnsOver
        }) {
            in_progress.push((a.key.clone(), in_progress_words(&f.service)));
        }
    }
    // A CLOSE-WAIT whose holder answers again, late, is what its callers gave up on, still in
    // progress: said beside its change in the incident's list, where it may well be the top
    // counter of its callers' timeouts. Seen on the Go lab: a callee answering 20 s late led
    // its timeouts with "CLOSE-WAIT :55655 rose 0 → 367 in 23 s" and nothing said it was no
    // leak once the leak's hint had gone.
    for c in &mut listed {
        if let Some((_, words)) = in_progress.iter().find(|(key, _)| key == &c.anomaly.key) {
            if !c.anomaly.evidence.contains(words.as_str()) {
                c.anomaly.evidence.push_str("; ");
                c.anomaly.evidence.push_str(words);
            }
        }
    }
    let matched = rules.matches_for(&HintSubject {
        patterns: &texts,
        anomalies: &hinted,
        accumulating: &accumulating,
        readings: &readings,
        culprit_role: culprit.role,
        facts: &hint_facts,
    });

    // The counter the leading hint rests on is the incident's top related signal (a reset
    // storm's `Tcp EstabResets`, a leak's CLOSE-WAIT on the culprit's port): on the Go lab the
    // reset fault's callers' request rates, related by service, led over the resets that
    // explain them. The others keep their order after it.
    // The error is the title when the leading hint rests on its text (or there is no
    // hint): an EOF incident stays "… EOF" while its callers' rates and sockets move under
    // it. A hint of counters alone (a leak, a storm) is titled by its counter — unless every
    // counter it rests on is only beside the fault while the incident has an error of its
    // own: seen in the demo's panic, "A service's requests fell — in orders: inventory
    // request rate fell" led the incident of orders' panic, whose callee merely stopped
    // being called.
    let beside = matched.first().is_some_and(|m| {
        !m.by_text
            && !patterns.is_empty()
            && !m.hint.series.is_empty()
            && m.hint.series.iter().all(|key| {
                listed
                    .iter()
                    .find(|c| &c.anomaly.key == key)
                    .is_some_and(|c| c.supporting)
            })
    });
    let by_text = beside || matched.first().is_none_or(|m| m.by_text);
    if let Some(lead) = matched.first() {
        lead_first(&mut listed, &lead.hint);
    }

    let first = members
        .iter()
        .min_by_key(|s| (s.supporting, s.onset))
        .map(|s| match &s.what {
            SignalWhat::Pattern(p) => p.id.clone(),
            SignalWhat::Counter(a) => a.key.label(),
        })
        .unwrap_or_default();
    let id = stable_id(&first, onset);
    let hints: Vec<Hint> = matched.into_iter().map(|m| m.hint).collect();
    // A leak read before its holder answered once may still be a slow callee: the title says
    // so beside the count it quotes (see [`Unanswered`]).
    let caveat = hints
        .first()
        .filter(|_| !by_text)
        .and_then(|h| {
            caveats
                .iter()
                .flatten()
                .find(|(key, _)| h.series.contains(key))
        })
        .cloned();
    let titled = title(
        &culprit,
        &patterns,
        &listed,
        hints.first().filter(|_| !beside),
        by_text,
        caveat,
    );

    let mut member_set = Members::new();
    for p in &patterns {
        member_set.insert(
            Member::Pattern(p.id.clone()),
            Span::Run {
                onset: p.onset_unix_ms,
                last_seen: p.last_seen_unix_ms,
            },
        );
    }
    // Only its own evidence continues it later: a supporting counter still out of its range
    // (a pool's churn, a caller's error rate) is joined by the next fault near it. Seen on
    // the unseen lab: a connection-refused fault continued the slow-callee incident healed
    // seven minutes before, through a TIME-WAIT churn both had listed, and took its onset.
    for a in &counters {
        if !supporting.contains(&a.key) {
            member_set.insert(
                Member::Series(a.key.clone()),
                Span::Change {
                    changed_at: a.changed_at_unix_ms,
                    active: a.active,
                },
            );
        }
    }
    let incident = Incident {
        id,
        title: titled.tell(&listed).unwrap_or_else(|| titled.lead.clone()),
        culprit,
        patterns: patterns
            .iter()
            .take(MAX_PATTERNS)
            .map(|p| IncidentPattern {
                id: p.id.clone(),
                text: p.text.clone(),
                services: p.services.clone(),
                culprit: p.culprit.clone(),
                onset_unix_ms: p.onset_unix_ms,
                last_seen_unix_ms: p.last_seen_unix_ms,
                count: run(p).0,
                untraced: run(p).1,
                counted_as: counted_as(p),
                counted_before: before(p),
            })
            .collect(),
        counters: listed,
        hints,
        onset_unix_ms: onset,
        last_active_unix_ms: last_active,
        active,
        // Said by the tracker once it has continued the kept incidents.
        ended_unix_ms: None,
        state: super::IncidentState::Active,
        recovering_since_unix_ms: None,
        reopened_unix_ms: None,
        failures,
        untraced_records,
        ongoing_at_start: false,
        trace_ids,
    };
    (incident, titled, member_set)
}

/// An incident's failed requests, each once, and its records not counted as failed requests
/// (see [`Incident::untraced_records`]), from each pattern's id, how it counts, its count
/// (with its records without a trace id among it) and its failures shared with patterns that
/// failed first in the same requests. A request that failed with two of the incident's
/// patterns (the dial timed out, then the retry's wait for headers did) is counted in both,
/// and taken off again here; a pattern that shares requests with itself (two patterns merged
/// since) is taken off the same way. When some of its failures are counted by trace, a
/// pattern's records without a trace id are untraced records, not failed requests: seen on
/// the unseen lab's close-wait fault, a span exporter's `otlp export: Post …: socket: too
/// many open files` lines shared the pattern of the requests that failed with it, which
/// counted 547 for 506 failed requests.
pub(super) fn tally<'a>(
    patterns: impl Iterator<Item = (&'a str, CountedAs, (u64, u64), &'a [(String, u64)])> + Clone,
) -> (u64, u64) {
    let ids: BTreeSet<&str> = patterns
        .clone()
        .filter(|(_, how, _, _)| *how == CountedAs::Failures)
        .map(|(id, _, _, _)| id)
        .collect();
    let by_trace = patterns
        .clone()
        .any(|(_, how, (count, untraced), _)| how == CountedAs::Failures && count > untraced);
    let mut failures = 0;
    let mut untraced = 0;
    for (_, how, (count, records), shared) in patterns {
        match how {
            CountedAs::Failures => {
                let shared: u64 = shared
                    .iter()
                    .filter(|(other, _)| ids.contains(other.as_str()))
                    .map(|(_, n)| n)
                    .sum();
                let records = if by_trace { records.min(count) } else { 0 };
                failures += (count - records).saturating_sub(shared);
                untraced += records;
            }
            CountedAs::Untraced => untraced += count,
            CountedAs::Echo => {}
        }
    }
    (failures, untraced)
}

/// Puts an incident's counters in the order the API and the dashboard show them, the most
/// telling first, and keeps at most [`MAX_COUNTERS`]: the culprit's own series, then its
/// peers', then the unrelated and the node-wide ones; within a relation sockets before queues,
/// fds, goroutines and traffic, a port's state before its total, the larger change first.
/// Run again when a continued incident takes back its earlier counters (they used to be
/// appended after the node-wide ones: `sockstat TCP mem` led the demo's close-wait incident).
pub(super) fn order_counters(
    listed: &mut Vec<IncidentCounter>,
    culprit: &IncidentCulprit,
    with_patterns: bool,
    services: &[ServiceFacts],
) {
    let facts = culprit
        .service
        .as_ref()
        .and_then(|c| services.iter().find(|s| &s.service == c));
    // A failure rate of a service retells the patterns' own errors when there are patterns:
    // it follows the related counters that say more (a callee's request rate falling when
    // its caller's lookups fail), before the unrelated ones.
    let class = |c: &IncidentCounter| -> u8 {
        let echo = with_patterns
            && matches!(
                c.anomaly.key,
                SeriesKey::ServiceTraffic {
                    metric: TrafficMetric::Errors,
                    ..
                }
            );
        // A culprit that fails its own calls (lookups, timeouts it sets): its listening port
        // holds its callers' connections, which follow how fast it now answers; its peers'
        // series say more (seen on the Go lab: the dns fault's caller answering at once, its
        // port's sockets climbing, led over its callee's requests stopping).
        let own_port = culprit.role == Some(CulpritRole::Caller)
            && c.relation == Relation::Culprit
            && c.anomaly
                .key
                .port()
                .is_some_and(|p| facts.is_some_and(|f| f.listen_ports.contains(&p)));
        match (c.relation, echo) {
            (Relation::Culprit, false) if !own_port => 0,
            (Relation::Peer, false) => 1,
            (Relation::Culprit | Relation::Peer, _) => 2,
            (Relation::Unrelated, _) => 3,
            (Relation::NodeWide, _) => 4,
        }
    };
    // Of one port's states, the culprit's own end says what it does (a callee's CLOSE-WAIT
    // on its listening port, a caller's TIME-WAIT towards it); the other end's mirror of it
    // (its callers' FIN-WAIT-2) follows. Seen on the e2e leak beside 32,000 sockets: both
    // first counted at 45–46 sockets, and the callers' FIN-WAIT-2 led by one socket.
    let own_end = |c: &IncidentCounter| match (culprit.role, &c.anomaly.key) {
        (Some(CulpritRole::Callee), SeriesKey::PortState { side, .. }) => *side == PortSide::Local,
        (Some(CulpritRole::Caller), SeriesKey::PortState { side, .. }) => *side == PortSide::Remote,
        _ => false,
    };
    listed.sort_by(|a, b| {
        class(a)
            .cmp(&class(b))
            .then(a.relation.cmp(&b.relation))
            .then(kind_order(&a.anomaly).cmp(&kind_order(&b.anomaly)))
            // A port's state says more than its total.
            .then(
                matches!(a.anomaly.key, SeriesKey::PortTotal { .. })
                    .cmp(&matches!(b.anomaly.key, SeriesKey::PortTotal { .. })),
            )
            .then(own_end(b).cmp(&own_end(a)))
            .then(b.anomaly.score.total_cmp(&a.anomaly.score))
            .then(a.anomaly.label.cmp(&b.anomaly.label))
    });
    listed.truncate(MAX_COUNTERS);
}

/// The counters the leading hint rests on first, the others in their order after them: the
/// incident's top related signal is what its leading hint reads (a reset storm's `Tcp
/// EstabResets`, a leak's CLOSE-WAIT on the culprit's port). Run after every
/// [`order_counters`]: on the Go lab's reset fault the incident, continued a second later,
/// was ordered again by relation and led with its callers' error rate.
pub(super) fn lead_first(listed: &mut [IncidentCounter], lead: &Hint) {
    if lead.series.is_empty() {
        return;
    }
    let rank = |c: &IncidentCounter| {
        lead.series
            .iter()
            .position(|k| *k == c.anomaly.key)
            .unwrap_or(usize::MAX)
    };
    // Stable: the rest keep their order.
    listed.sort_by_key(rank);
}

/// Order of kinds within one relation: sockets say the most about where, then queues, fds,
/// goroutines, threads, traffic.
pub(super) fn kind_order(a: &CounterAnomaly) -> u8 {
    match a.kind {
        CounterKind::Sockets => 0,
        CounterKind::AcceptQueue => 1,
        CounterKind::ProcessFds => 2,
        CounterKind::Tasks => 3,
        CounterKind::ProcessThreads => 4,
        CounterKind::ServiceTraffic => 5,
        CounterKind::ProtocolRate => 6,
        CounterKind::NodeSockets => 7,
        CounterKind::Sockstat => 8,
        CounterKind::ProcessMemory => 9,
        CounterKind::Runtime => 10,
    }
}

/// How a series relates to the culprit, in words.
/// `named` are the ports the incident's failing calls go to (from its patterns' raw
/// messages): the callee's ports, even when no span said who listens there.
pub(super) fn relate(
    key: &SeriesKey,
    culprit: Option<&str>,
    role: Option<CulpritRole>,
    named: &[u16],
    services: &[ServiceFacts],
) -> (Relation, String) {
    if key.kind().is_node_wide() {
        return (
            Relation::NodeWide,
            "node-wide: moves with any traffic on the node".into(),
        );
    }
    let peers = culprit.map(|c| peers(c, services)).unwrap_or_default();
    let owner = owner(key, services);
    // Client-side damage on a callee's port (TIME-WAIT of a connection per call) is the
    // calling culprit's own signature, not just its peer's port.
    if let (Some(o), Some(c)) = (owner.as_deref(), culprit) {
        if o != c {
            if let Some((blamed, Some(CulpritRole::Caller), why)) = counter_culprit(key, services) {
                if blamed == c {
                    return (Relation::Culprit, why);
                }
            }
        }
    }
    let calls_only = match key {
        SeriesKey::PortState { port, .. } | SeriesKey::PortTotal { port, .. } => {
            listener(*port, services).is_none()
        }
        _ => false,
    };
    let called = key
        .port()
        .map(|p| format!("connections to port {p} made by"))
        .unwrap_or_default();
    let what = match key {
        _ if calls_only => called.as_str(),
        SeriesKey::PortState {
            side: PortSide::Remote,
            ..
        }
        | SeriesKey::PortTotal {
            side: PortSide::Remote,
            ..
        } => "connections to the port of",
        SeriesKey::PortState { .. }
        | SeriesKey::PortTotal { .. }
        | SeriesKey::ListenQueue { .. } => "a listening port of",
        SeriesKey::Task { .. } => "the goroutines of",
        SeriesKey::Process { .. } => "a process of",
        _ => "the traffic of",
    };
    match (owner, culprit) {
        (Some(o), Some(c)) if o == c => (Relation::Culprit, format!("{what} {o}, the culprit")),
        (Some(o), Some(c)) if peers.contains(&o) => (
            Relation::Peer,
            format!("{what} {o}, a peer of the culprit {c}"),
        ),
        // Further up or down the calls: a caller's caller waits on the culprit too, a
        // callee's callee sees its requests stop.
        (Some(o), Some(c)) if calls(&o, c, services) => (
            Relation::Peer,
            format!("{what} {o}, which calls the culprit {c} through other services"),
        ),
        (Some(o), Some(c)) if calls(c, &o, services) => (
            Relation::Peer,
            format!("{what} {o}, which the culprit {c} calls through other services"),
        ),
        (Some(o), _) => (Relation::Unrelated, format!("{what} {o}")),
        (None, Some(c)) if key.port().is_some_and(|p| named.contains(&p)) => {
            if role == Some(CulpritRole::Callee) {
                (
                    Relation::Culprit,
                    format!("the port the failing calls go to: {c}'s, the culprit"),
                )
            } else {
                (
                    Relation::Peer,
                    "the port the failing calls go to".to_owned(),
                )
            }
        }
        (None, _) => match key.port() {
            Some(p) => (
                Relation::Unrelated,
                format!("port {p}: no known service listens there"),
            ),
            None => (Relation::Unrelated, "no known service".into()),
        },
    }
}

/// An incident's title as built: what leads it and the counter whose change it quotes. A
/// kept incident's counters are read again as their series go on; its title is told again
/// from them ([`Title::tell`]), not from the text it said before.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Title {
    /// Where and what: the hint, the culprit, the leading pattern.
    lead: String,
    /// The counter whose change follows the lead, when no pattern leads.
    quotes: Option<SeriesKey>,
    /// What the quoted counter may still be, said after its change (see [`Unanswered`]).
    caveat: Option<String>,
}

impl Title {
    /// The title in one sentence, the quoted counter's change as `counters` tell it now;
    /// `None` when it quotes a counter they do not hold.
    pub(super) fn tell(&self, counters: &[IncidentCounter]) -> Option<String> {
        let Some(key) = &self.quotes else {
            return Some(self.lead.clone());
        };
        // The change itself, and what it may still be when its holder has not answered yet
        // (see [`Unanswered`]); its other caveats ("; until 10:33 its port was not counted one
        // by one …", a share of its limit) stay with the counter in the incident's list.
        let c = counters.iter().find(|c| &c.anomaly.key == key)?;
        Some(match &self.caveat {
            Some(caveat) => format!("{}: {}; {caveat}", self.lead, c.anomaly.head()),
            None => format!("{}: {}", self.lead, c.anomaly.head()),
        })
    }
}

/// The incident in one sentence: where, what, and the leading evidence.
pub(super) fn title(
    culprit: &IncidentCulprit,
    patterns: &[&PatternInput],
    counters: &[IncidentCounter],
    hint: Option<&Hint>,
    pattern_first: bool,
    caveat: Option<(SeriesKey, String)>,
) -> Title {
    let mut lead = String::new();
    if let Some(h) = hint {
        lead.push_str(&h.title);
        lead.push_str(" — ");
    }
    match &culprit.service {
        Some(s) => lead.push_str(&format!("in {s}")),
        None if !culprit.seen_in.is_empty() => {
            lead.push_str(&format!("seen in {}", culprit.seen_in.join(", ")))
        }
        None => lead.push_str("no service known"),
    }
    let pattern = patterns
        .first()
        .filter(|_| pattern_first || counters.is_empty());
    let mut quotes = None;
    if let Some(p) = pattern {
        lead.push_str(&format!(
            ": “{}” from {}",
            shorten(&p.text, 120),
            clock(p.onset_unix_ms)
        ));
    } else if let Some(c) = counters
        .iter()
        .find(|c| c.relation != Relation::NodeWide)
        .or(counters.first())
    {
        quotes = Some(c.anomaly.key.clone());
    }
    let caveat = caveat
        .filter(|(key, _)| quotes.as_ref() == Some(key))
        .map(|(_, words)| words);
    Title {
        lead,
        quotes,
        caveat,
    }
}

/// A 16-hex-digit id from the first member and the onset second (FNV-1a): the same incident
/// gets the same id in every update and after a replay of the same data.
pub(super) fn stable_id(first: &str, onset: i64) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in first.bytes().chain(onset.div_euclid(1000).to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The service holding a port's CLOSE-WAIT sockets, and what it does (see
/// [`holder_facts`]).
struct HolderFacts {
    /// The service.
    service: String,
    /// The series of its answered requests, when the sockets are on its own side of its port.
    requests: Option<SeriesKey>,
    /// Whether it ran out of descriptors.
    out_of_fds: bool,
    /// The changes of its processes' open fds.
    fds: Vec<CounterAnomaly>,
}

/// For a port's CLOSE-WAIT count (`a`), what the service holding those sockets does (see
/// [`leak::holder_accumulation`]): on the listener's own side of the port, the listener, with
/// the series of its answered requests; on the callers' side, its single caller. It ran out of
/// descriptors when one of `anomalies` is its open fds at [`leak::LIMIT_SHARE`] of their limit
/// with `a` at least half that limit. `None` for any other series, or sockets no single known
/// service holds.
/// Points in a row a listener or a process must be missing to be gone: one missing sample
/// is a slow read, not a stop.
const GONE_POINTS: usize = 2;

/// What of a callee went away around its incident, in one sentence: its listening ports
/// nobody listened on, its watched processes that were not there (killed, crashed, being
/// restarted). Read from the counter history, where a listener's accept queue and a
/// process's fds are missing while the node's sockets were counted. Seen on the Go lab's
/// crash (the callee killed): the refused calls' hint said only `Tcp AttemptFails` rose,
/// while the agent had counted the listener and the process gone from that second on.
fn gone(f: &ServiceFacts, onset: i64, history: &CounterHistory) -> Option<String> {
    // The node's sockets were counted at a point: a missing listener there is missing.
    let counted = history.get(&SeriesKey::NodeState {
        state: SocketState::Established,
    })?;
    let from = history.point_at(onset - GONE_LEAD_MS).unwrap_or(0).max(1);
    let gap = |key: &SeriesKey| -> Option<(i64, Option<i64>)> {
        let points = &history.get(key)?.points;
        let start = (from..points.len()).find(|&k| {
            points[k - 1].is_some()
                && points[k..].iter().take(GONE_POINTS).count() == GONE_POINTS
                && points[k..]
                    .iter()
                    .take(GONE_POINTS)
                    .enumerate()
                    .all(|(i, p)| {
                        p.is_none() && counted.points.get(k + i).copied().flatten().is_some()
                    })
        })?;
        let back = (start..points.len()).find(|&k| points[k].is_some());
        Some((history.time(start), back.map(|k| history.time(k))))
    };
    let when = |(since, back): (i64, Option<i64>)| match back {
        Some(back) => format!(
            "from {} to {}",
            clock(since).trim_end_matches(" UTC"),
            clock(back)
        ),
        None => format!("since {}", clock(since)),
    };
    let mut said: Vec<String> = Vec::new();
    for &port in &f.listen_ports {
        if let Some(g) = gap(&SeriesKey::ListenQueue { port }) {
            said.push(match g.1 {
                Some(_) => format!("nothing listened on :{port} {}", when(g)),
                None => format!("nothing has listened on :{port} {}", when(g)),
            });
        }
    }
    for name in &f.processes {
        let key = SeriesKey::Process {
            name: name.clone(),
            metric: ProcessMetric::OpenFds,
        };
        if let Some(g) = gap(&key) {
            said.push(match g.1 {
                Some(_) => format!("its process {name} was gone {}", when(g)),
                None => format!("its process {name} has been gone {}", when(g)),
            });
        }
    }
    (!said.is_empty()).then(|| said.join("; "))
}

/// When a process of `service` stopped after the change of `a`: the first of [`GONE_POINTS`]
/// samples in a row without its open fds, after one with them.
fn stopped_since(
    a: &CounterAnomaly,
    service: &str,
    services: &[ServiceFacts],
    history: &CounterHistory,
) -> Option<i64> {
    let facts = services.iter().find(|s| s.service == service)?;
    let from = history.point_at(a.changed_at_unix_ms)?.max(1);
    facts
        .processes
        .iter()
        .filter_map(|name| {
            let points = &history
                .get(&SeriesKey::Process {
                    name: name.clone(),
                    metric: ProcessMetric::OpenFds,
                })?
                .points;
            (from..points.len())
                .find(|&k| {
                    points[k - 1].is_some()
                        && points.len() >= k + GONE_POINTS
                        && points[k..k + GONE_POINTS].iter().all(Option::is_none)
                })
                .map(|k| history.time(k))
        })
        .min()
}

/// How long before an incident's onset a listener or process that went away is still its
/// (a callee killed fails its callers' next calls at once; a stop begun earlier is another
/// story).
const GONE_LEAD_MS: i64 = 10_000;

fn holder_facts(
    a: &CounterAnomaly,
    anomalies: &[CounterAnomaly],
    services: &[ServiceFacts],
) -> Option<HolderFacts> {
    let SeriesKey::PortState {
        port,
        side,
        state: SocketState::CloseWait,
    } = a.key
    else {
        return None;
    };
    let holder: &str = match side {
        PortSide::Local => &listener(port, services)?.service,
        PortSide::Remote => match port_callers(port, services)[..] {
            [caller] => caller,
            _ => return None,
        },
    };
    let fds: Vec<CounterAnomaly> = anomalies
        .iter()
        .filter(|f| {
            matches!(
                &f.key,
                SeriesKey::Process { metric: ProcessMetric::OpenFds, .. }
                    if owner(&f.key, services).as_deref() == Some(holder)
            )
        })
        .cloned()
        .collect();
    let out_of_fds = fds.iter().any(|f| {
        f.limit
            .is_some_and(|l| l > 0.0 && f.latest >= leak::LIMIT_SHARE * l && a.latest >= 0.5 * l)
    });
    let requests = (side == PortSide::Local).then(|| SeriesKey::ServiceTraffic {
        service: holder.to_owned(),
        metric: TrafficMetric::Requests,
    });
    Some(HolderFacts {
        service: holder.to_owned(),
        requests,
        out_of_fds,
        fds,
    })
}

/// What a CLOSE-WAIT count is whose holder (`service`) answers the requests begun since its
/// change again, late, while it holds its level ([`leak::Answers::Answered`], turning over).
fn in_progress_words(service: &str) -> String {
    format!(
        "{service} answers the requests begun since then, late: these are requests its \
         callers gave up on, still in progress, not a leak"
    )
}

/// A CLOSE-WAIT count whose holder has answered none of the requests begun since it began to
/// climb ([`leak::Answers::Unanswered`]): what it may still be, and what will tell. Nothing
/// else does before its first late answer (see [`leak::holder_reading`]): a callee whose
/// handlers hang and one that answers later than its callers wait both leave each abandoned
/// request's socket in CLOSE-WAIT, one per call, for as long as the request is held, with a
/// goroutine and a descriptor each, and no bytes left to read; the slow one's count stops at
/// calls a second × its delay once it answers. Seen on the Go lab: a callee answering 20 s
/// after its callers' 1.7 s timeout read as "the peer closed and this side never did" from
/// 18 s to 27 s, as a callee that never answers does from 14 s on. So the leak is read with
/// both named and the observation that decides between them.
struct Unanswered<'a> {
    /// The holder.
    service: &'a str,
    /// When the count changed: the requests begun since are the ones waited for.
    since_unix_ms: i64,
    /// The most requests a second begun since that it answered.
    best: f64,
    /// Its usual requests a second.
    usual: f64,
}

impl<'a> Unanswered<'a> {
    /// The reading of a holder's `answers`, when it has answered none.
    fn of(service: &'a str, answers: leak::Answers) -> Option<Self> {
        let leak::Answers::Unanswered {
            since_unix_ms,
            best,
            usual,
        } = answers
        else {
            return None;
        };
        Some(Unanswered {
            service,
            since_unix_ms,
            best,
            usual,
        })
    }

    /// Both readings and what decides between them, for the hints that rest on the count.
    fn evidence(&self, now: i64) -> String {
        let waited = (now - self.since_unix_ms).max(0) / 1000;
        let head = format!(
            "{} has answered {} of the requests begun since {} ({waited} s; usually {:.0} a \
             second)",
            self.service,
            if self.none() {
                "none".to_owned()
            } else {
                format!("only {:.1} a second", self.best)
            },
            clock(self.since_unix_ms),
            self.usual
        );
        if self.none() {
            format!(
                "{head}: its handlers hang and never close these sockets (a leak), or it answers \
                 more than {waited} s late, past its callers' timeout; its first answer to one \
                 of them decides (a slow callee's CLOSE-WAIT then holds its level and drains as \
                 it answers)"
            )
        } else {
            format!(
                "{head}: the first late answers of a callee slower than its callers' timeout, or \
                 the requests of the few handlers that do not hang; once it answers half its \
                 usual rate and this count holds its level, they are requests in progress, not \
                 a leak"
            )
        }
    }

    /// The same in a few words, for the title beside the count's change.
    fn caveat(&self) -> String {
        if self.none() {
            format!(
                "{} has answered no request begun since then: hung, or slower than its callers \
                 wait",
                self.service
            )
        } else {
            format!(
                "{} has begun to answer the requests begun since then, few yet: slow, or partly \
                 hung",
                self.service
            )
        }
    }

    /// Whether it answered none at all (less than one every two seconds).
    fn none(&self) -> bool {
        self.best < 0.5
    }
}
