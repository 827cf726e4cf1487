//! Which known service a series, a port or a failing call belongs to, from what the agent
//! knows of the services on the node ([`ServiceFacts`]).

use std::collections::{BTreeSet, HashSet};

use faultline_series::{PortSide, SeriesKey, SocketState, TrafficMetric};

use super::{ConnectionsTo, Incident, PatternInput, ServiceFacts, GROUP_WINDOW_MS};
use crate::anomaly::CounterAnomaly;
use crate::hints::CulpritRole;

pub(super) fn traffic_service(key: &SeriesKey) -> Option<String> {
    match key {
        SeriesKey::ServiceTraffic { service, .. } => Some(service.clone()),
        _ => None,
    }
}

/// The series a diagnosis pass judges first when more need a judgement than it makes (see
/// [`crate::anomaly::cached::Detector::detect_first`]): those a known service owns as
/// [`owner`] says — the ports it listens on and the ports its calls go to (its callees',
/// with or without spans of their own), its watched processes and task targets, its traffic
/// — the counters of the active incidents, and the node-wide totals (a few series, and a
/// reset's or an overflow's first witness). What is left is the ports of the node's other
/// programs: on a busy node hundreds of port groups, young ones every second.
#[derive(Debug, Clone, Default)]
pub struct SeriesOfInterest {
    ports: HashSet<u16>,
    keys: HashSet<SeriesKey>,
}

impl SeriesOfInterest {
    /// The series of interest of `services` and of the active ones of `incidents`.
    pub fn new(services: &[ServiceFacts], incidents: &[Incident]) -> SeriesOfInterest {
        SeriesOfInterest {
            ports: services
                .iter()
                .flat_map(|s| s.listen_ports.iter().chain(&s.called_ports))
                .copied()
                .collect(),
            keys: incidents
                .iter()
                .filter(|i| i.active)
                .flat_map(|i| i.counters.iter().map(|c| c.anomaly.key.clone()))
                .collect(),
        }
    }

    /// Whether `key` is served first. A task target or a watched process is configured by
    /// the user for a service of the node ([`owner`] names one for each), as a traffic
    /// series is its service's; a port's series are when a known service listens on the
    /// port or calls it. The agent's own runtime counters are never judged.
    pub fn contains(&self, key: &SeriesKey) -> bool {
        match key {
            SeriesKey::PortState { port, .. }
            | SeriesKey::PortTotal { port, .. }
            | SeriesKey::ListenQueue { port } => {
                self.ports.contains(port) || self.keys.contains(key)
            }
            SeriesKey::Runtime { .. } => false,
            SeriesKey::NodeState { .. }
            | SeriesKey::OtherPortsTotal
            | SeriesKey::Sockstat { .. }
            | SeriesKey::ProtocolRate { .. }
            | SeriesKey::Process { .. }
            | SeriesKey::Task { .. }
            | SeriesKey::ServiceTraffic { .. } => true,
        }
    }
}

/// The callers and callees of `service`: by spans (a SERVER span under another service's
/// CLIENT span), and by port — the service listening on a port its CLIENT spans call, the
/// services whose CLIENT spans call one of its ports. A callee that sends no spans (a
/// database, a blob store declared by its port) is known to be called only so.
pub(super) fn peers(service: &str, services: &[ServiceFacts]) -> Vec<String> {
    let Some(facts) = services.iter().find(|s| s.service == service) else {
        return Vec::new();
    };
    let mut found: Vec<String> = facts
        .callers
        .iter()
        .chain(&facts.callees)
        .cloned()
        .collect();
    let by_port = facts
        .called_ports
        .iter()
        .filter_map(|&p| listener(p, services))
        .chain(
            facts
                .listen_ports
                .iter()
                .flat_map(|&p| callers_of_port(p, services)),
        );
    for peer in by_port {
        if peer.service != service && !found.contains(&peer.service) {
            found.push(peer.service.clone());
        }
    }
    found
}

/// The services `service` calls, directly or through others (its callees, theirs, ...).
pub(super) fn downstream(service: &str, services: &[ServiceFacts]) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut todo = vec![service.to_owned()];
    while let Some(s) = todo.pop() {
        let Some(f) = services.iter().find(|x| x.service == s) else {
            continue;
        };
        // Each service is pushed once: bounded by the services known.
        for c in &f.callees {
            if c != service && !found.contains(c) {
                found.push(c.clone());
                todo.push(c.clone());
            }
        }
    }
    found
}

/// The service listening on `port`.
pub(super) fn listener(port: u16, services: &[ServiceFacts]) -> Option<&ServiceFacts> {
    services.iter().find(|s| s.listen_ports.contains(&port))
}

/// The services whose calls go to `port`, by name.
pub(super) fn callers_of_port(port: u16, services: &[ServiceFacts]) -> Vec<&ServiceFacts> {
    services
        .iter()
        .filter(|s| s.called_ports.contains(&port))
        .collect()
}

/// The callers of the service at `port`, by name: its callers from spans (a SERVER span under
/// their CLIENT span), else the services whose CLIENT spans call the port — a callee that
/// sends no spans (a database, a blob store, a service without a listener the agent knows) is
/// known to be called only that way. The listener itself is never its own caller.
pub(super) fn port_callers(port: u16, services: &[ServiceFacts]) -> Vec<&str> {
    let owner = listener(port, services);
    if let Some(owner) = owner.filter(|o| !o.callers.is_empty()) {
        return owner.callers.iter().map(String::as_str).collect();
    }
    callers_of_port(port, services)
        .into_iter()
        .map(|s| s.service.as_str())
        .filter(|c| owner.is_none_or(|o| o.service != *c))
        .collect()
}

/// The service a task (goroutine) target is configured for: the one that claims it, else
/// the target's own name (a user names a target after what it watches).
pub fn task_owner<'a>(target: &'a str, services: &'a [ServiceFacts]) -> &'a str {
    services
        .iter()
        .find(|s| s.task_targets.iter().any(|t| t == target))
        .map_or(target, |s| s.service.as_str())
}

/// The service a watched process is configured for: the one that claims it, else the
/// process's own name.
pub(super) fn process_owner<'a>(name: &'a str, services: &'a [ServiceFacts]) -> &'a str {
    services
        .iter()
        .find(|s| s.processes.iter().any(|p| p == name))
        .map_or(name, |s| s.service.as_str())
}

/// The known service a (not node-wide) series belongs to, `None` when no known service owns
/// it: a port's series belongs to the service listening there, else to the service whose
/// calls go there; a task target or a watched process is configured by the user for a
/// service of the node (named after it unless a service claims it); a traffic series is its
/// service's.
pub(super) fn owner(key: &SeriesKey, services: &[ServiceFacts]) -> Option<String> {
    match key {
        SeriesKey::PortState { port, .. }
        | SeriesKey::PortTotal { port, .. }
        | SeriesKey::ListenQueue { port } => listener(*port, services)
            .or_else(|| callers_of_port(*port, services).into_iter().next())
            .map(|s| s.service.clone()),
        SeriesKey::Task { target, .. } => Some(task_owner(target, services).to_owned()),
        SeriesKey::Process { name, .. } => Some(process_owner(name, services).to_owned()),
        SeriesKey::ServiceTraffic { service, .. } => Some(service.clone()),
        _ => None,
    }
}

/// TIME-WAIT on a listener's own side of its port: the listener closed those connections
/// first. It does so on its own (it closes after each answer, or without one) or because its
/// callers ask it to (`Connection: close` from a client with keep-alives off, which Go's
/// server honours by closing first): the sockets cannot tell which, and [`counter_culprit`]
/// names the single caller. When calls to the listener fail near the change with the
/// listener as their culprit (a callee closing without an answer: EOF), it closes on its own:
/// the TIME-WAIT is the callee's, and one incident with those failures.
pub(super) fn closing_callee(
    a: &CounterAnomaly,
    patterns: &[PatternInput],
    services: &[ServiceFacts],
) -> Option<(String, Option<CulpritRole>, String)> {
    let SeriesKey::PortState {
        port,
        side: PortSide::Local,
        state: SocketState::TimeWait,
    } = a.key
    else {
        return None;
    };
    let owner = listener(port, services)?;
    let failing = patterns.iter().find(|p| {
        (p.onset_unix_ms - a.changed_at_unix_ms).abs() <= GROUP_WINDOW_MS
            && p.culprit.as_ref().is_some_and(|c| {
                c.service == owner.service
                    && matches!(c.role, CulpritRole::Callee | CulpritRole::SelfReported)
            })
    })?;
    Some((
        owner.service.clone(),
        Some(CulpritRole::Callee),
        format!(
            "{} is on the side of {}: it closes its connections first, and calls to it fail \
             with it as their culprit ({})",
            a.label, owner.service, failing.text
        ),
    ))
}

/// The listener of a port whose series `key` is about the connections its clients make —
/// every socket state on either side and the totals, but CLOSE-WAIT on its own side (a
/// listener that never closes what its clients hung up leaks on its own; its listen queue is
/// no port series here) — when no known service is among its clients: no caller's span names
/// it and no service's calls go to its port. The clients are untraced programs (a load
/// balancer, the lab's traffic driver, a curl loop): how many connections they open, keep,
/// close and reopen is theirs, and the change names no culprit. Seen on the Go lab: the
/// traffic driver's pool towards the edge raised incidents on a quiet node (`TIME-WAIT
/// :<edge>` 0 → 10, `CLOSE-WAIT →:<edge>` 23 → 39, with no culprit) and beside the dns fault;
/// with the agent started before the chain (`--agent-lead`), the edge's own sockets climbing
/// 43 → 122 as the driver reconnected after a redeploy were an incident "in" the edge.
pub(super) fn unknown_clients(key: &SeriesKey, services: &[ServiceFacts]) -> Option<String> {
    let (port, clients_side) = match key {
        SeriesKey::PortState { port, side, state } => (
            *port,
            !(*state == SocketState::CloseWait && *side == PortSide::Local),
        ),
        SeriesKey::PortTotal { port, .. } => (*port, true),
        _ => return None,
    };
    let owner = listener(port, services)?;
    (clients_side
        && owner.callers.is_empty()
        && callers_of_port(port, services).is_empty()
        && opener(port, services).is_none())
    .then(|| owner.service.clone())
}

/// Fewest short-lived connections to a port (each seen at one read of the caller's
/// descriptors and gone by the next) a caller must show within a minute to be named as the
/// one opening a connection per call. A read catches a per-call client's connection only
/// while it is open: on loopback a millisecond or two per call, so looks every few tens of
/// milliseconds at a client making 40 calls a second catch about one in twenty-five
/// (restart-notes' opener runs: with censuses alone, 1 distinct connection in a minute). A pool shows the same
/// connections read after read and closes none, or one every so often after many reads.
pub const MIN_SHORT_LIVED_PER_MINUTE: u32 = 3;

/// Whether a caller's connections to `c.port` are a pool's: most of those it was seen
/// closing there lived across reads of its descriptors; a client opening a connection per
/// call closes each after one call, gone by the next read. A small pool under more
/// concurrent callers than it keeps idle closes the surplus after every burst, at ten and
/// more a second, and so some of its closed connections are short-lived too. Seen with a
/// real pool (Python `requests.Session`, `pool_maxsize` 2, 8 threads, 55 calls a second,
/// TIME-WAIT climbing 12.6 a second, no spans): 23 of its 194 closed connections in a minute
/// short-lived, and it was an incident "opens a connection per call" 5 s after it began;
/// a client opening one per call on the opener runs (outgoing-notes): 51–80 of 70–98 with
/// 50 ms calls, all with 1 ms calls. With spans that pool's closes were a quarter of its
/// calls: churn by [`super::STORM_SHARE_OF_CALLS`].
pub(super) fn pool_recycles(c: &ConnectionsTo) -> bool {
    2 * c.short_lived_1m < c.closed_1m
}

/// A caller's short-lived connections to `c.port` (see [`MIN_SHORT_LIVED_PER_MINUTE`]),
/// with its short-lived sockets that nothing placed in time when it placed at least one
/// there and every one it placed went there: (placed, counted).
fn short_lived_to(c: &ConnectionsTo, all: &[ConnectionsTo]) -> (u32, u32) {
    let elsewhere = c.elsewhere_short_lived_1m
        + all
            .iter()
            .filter(|o| o.port != c.port)
            .map(|o| o.short_lived_1m)
            .sum::<u32>();
    let unplaced = if c.short_lived_1m > 0 && elsewhere == 0 {
        c.unplaced_short_lived_1m
    } else {
        0
    };
    (c.short_lived_1m, c.short_lived_1m + unplaced)
}

/// The service whose processes opened and closed connections to `port` one after another,
/// read from their descriptors (see [`ConnectionsTo`]), with the evidence: the one with the
/// most short-lived connections there in the last minute (see [`short_lived_to`]), when it
/// had at least [`MIN_SHORT_LIVED_PER_MINUTE`], at least twice as many as any other caller,
/// and when they are at least half of those it was seen closing there (see
/// [`pool_recycles`]). `None` when no watched process did, or two did alike.
pub(super) fn opener(port: u16, services: &[ServiceFacts]) -> Option<(&str, String)> {
    let mut openers: Vec<(&ServiceFacts, &ConnectionsTo, u32)> = services
        .iter()
        .filter_map(|s| {
            let c = s.connections_to.iter().find(|c| c.port == port)?;
            Some((s, c, short_lived_to(c, &s.connections_to).1))
        })
        .collect();
    openers.sort_by_key(|(s, _, n)| (std::cmp::Reverse(*n), s.service.clone()));
    let (service, top, count) = openers.first()?;
    let runner_up = openers.get(1).map_or(0, |(_, _, n)| *n);
    if *count < MIN_SHORT_LIVED_PER_MINUTE || *count < 2 * runner_up || pool_recycles(top) {
        return None;
    }
    let pid = |s: &ServiceFacts| s.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
    let ports = |c: &ConnectionsTo| {
        let list: Vec<String> = c.local_ports.iter().map(u16::to_string).collect();
        let more = if (c.held + c.closed_1m) as usize > list.len() {
            ", …"
        } else {
            ""
        };
        match list.len() {
            0 => String::new(),
            1 => format!(" (local port {}{more})", list[0]),
            _ => format!(" (local ports {}{more})", list.join(", ")),
        }
    };
    let others: String = openers[1..]
        .iter()
        .map(|(s, c, _)| {
            let closed = match c.closed_1m {
                0 => "closed none".to_owned(),
                n => format!("closed {n}, {} of them short-lived", c.short_lived_1m),
            };
            format!(
                "; {}{} held {} connection{} there{} and {closed}",
                s.service,
                pid(s),
                c.held,
                if c.held == 1 { "" } else { "s" },
                ports(c),
            )
        })
        .collect();
    let unplaced = count - top.short_lived_1m;
    let unplaced = if unplaced > 0 {
        format!(
            ", and {unplaced} more short-lived socket{} of its that closed before the agent \
             could place {} (it placed none of its sockets elsewhere)",
            if unplaced == 1 { "" } else { "s" },
            if unplaced == 1 { "it" } else { "them" },
        )
    } else {
        String::new()
    };
    Some((
        service.service.as_str(),
        format!(
            "in the minute to {}, reads of {}'s descriptors{} caught it holding {} \
             {} to :{port}, {} of them gone by the next read{}{unplaced}, over {} \
             reads{others}; check: `ss -tnp '( dport = :{port} )'` run again and again shows \
             its pid now and then, beside a new local port each time",
            crate::text::clock(top.counted_at_unix_ms),
            service.service,
            pid(service),
            top.distinct_1m,
            if top.distinct_1m == 1 {
                "connection"
            } else {
                "different connections"
            },
            top.short_lived_1m,
            ports(top),
            top.reads_1m,
        ),
    ))
}

/// The culprit a counter series points at, with its role and the reasoning (see the module
/// documentation).
pub(super) fn counter_culprit(
    key: &SeriesKey,
    services: &[ServiceFacts],
) -> Option<(String, Option<CulpritRole>, String)> {
    // A TIME-WAIT storm is its connections' opener: named from the sockets themselves when
    // the censuses saw one, before any guess from spans.
    if let SeriesKey::PortState {
        port,
        state: SocketState::TimeWait,
        ..
    } = key
    {
        if let Some((caller, evidence)) = opener(*port, services) {
            let on = listener(*port, services)
                .filter(|o| o.service != caller)
                .map_or_else(
                    || format!("port {port}"),
                    |o| format!("the port of {}", o.service),
                );
            return Some((
                caller.to_owned(),
                Some(CulpritRole::Caller),
                format!(
                    "{} on {on}: its caller {caller} opens a connection per call ({evidence})",
                    key.label()
                ),
            ));
        }
    }
    match key {
        SeriesKey::PortState { port, side, state } => {
            let Some(owner) = listener(*port, services) else {
                // A callee that sends no spans: the sockets towards its port are its
                // callers'; with one caller, a storm or a leak there is that caller's.
                let [caller] = port_callers(*port, services)[..] else {
                    return None;
                };
                let client_side = matches!(state, SocketState::TimeWait | SocketState::CloseWait)
                    && *side == PortSide::Remote;
                return client_side.then(|| {
                    (
                        caller.to_owned(),
                        Some(CulpritRole::Caller),
                        format!(
                            "{} is on the connections of {caller} to port {port}",
                            key.label(),
                        ),
                    )
                });
            };
            // FIN-WAIT-2 on the listener's own side: it closed and its caller has not closed
            // its end (that end sits in CLOSE-WAIT): the caller's leak, seen from the callee.
            // Seen on the unseen lab's close-wait fault: a caller that never read its
            // callee's answers left `FIN-WAIT-2 :<callee>` climbing 0 → 500 with its own
            // `CLOSE-WAIT →:<callee>`, and that was an incident "in" the callee beside the
            // caller's leak.
            let client_side = match state {
                SocketState::TimeWait => true,
                SocketState::CloseWait => *side == PortSide::Remote,
                SocketState::FinWait2 => *side == PortSide::Local,
                _ => false,
            };
            if client_side {
                let [caller] = port_callers(*port, services)[..] else {
                    return None;
                };
                let why = match state {
                    SocketState::TimeWait => format!(
                        "{} on the port of {}: its caller {caller} opens a connection per call",
                        key.label(),
                        owner.service
                    ),
                    SocketState::FinWait2 => format!(
                        "{} on the port of {}: it closed these connections and its caller \
                         {caller} has not closed its end",
                        key.label(),
                        owner.service
                    ),
                    _ => format!(
                        "{} towards {}: its caller {caller} does not close connections {} closed",
                        key.label(),
                        owner.service,
                        owner.service
                    ),
                };
                return Some((caller.to_owned(), Some(CulpritRole::Caller), why));
            }
            Some((
                owner.service.clone(),
                Some(CulpritRole::Callee),
                format!(
                    "{} is on a listening port of {}",
                    key.label(),
                    owner.service
                ),
            ))
        }
        // The sockets towards a port are its callers': with one caller, theirs; with several,
        // nobody's in particular.
        SeriesKey::PortTotal {
            port,
            side: PortSide::Remote,
        } => {
            let [caller] = port_callers(*port, services)[..] else {
                return None;
            };
            Some((
                caller.to_owned(),
                Some(CulpritRole::Caller),
                format!("{} are the connections of {caller} to it", key.label()),
            ))
        }
        SeriesKey::PortTotal { port, .. } | SeriesKey::ListenQueue { port } => {
            let owner = listener(*port, services)?;
            Some((
                owner.service.clone(),
                Some(CulpritRole::Callee),
                format!(
                    "{} is on a listening port of {}",
                    key.label(),
                    owner.service
                ),
            ))
        }
        // A task or process target is named by the user after what it watches: without a
        // service that claims it, its name stands for the service.
        SeriesKey::Task { target, .. } => {
            let service = task_owner(target, services);
            Some((
                service.to_owned(),
                None,
                format!("{} are the goroutines of {service}", key.label()),
            ))
        }
        SeriesKey::Process { name, .. } => {
            let service = process_owner(name, services);
            Some((
                service.to_owned(),
                None,
                format!("{} is a process of {service}", key.label()),
            ))
        }
        SeriesKey::ServiceTraffic { service, metric } => Some((
            service.clone(),
            None,
            match metric {
                TrafficMetric::Requests => format!("{}'s request rate moved", service),
                TrafficMetric::Errors => format!("{}'s failed requests rose", service),
            },
        )),
        _ => None,
    }
}

/// Whether `from` calls `to`, directly or through its callees (bounded by the services
/// known). A callee is known from spans (a SERVER span under a CLIENT span) or from the port
/// a CLIENT span called and the service listening there: a callee that closes without
/// answering sends no span while it fails.
pub(super) fn calls(from: &str, to: &str, services: &[ServiceFacts]) -> bool {
    let mut seen: BTreeSet<&str> = BTreeSet::from([from]);
    let mut next = vec![from];
    while let Some(at) = next.pop() {
        let Some(facts) = services.iter().find(|s| s.service == at) else {
            continue;
        };
        let by_port = facts
            .called_ports
            .iter()
            .filter_map(|&port| listener(port, services))
            .map(|s| s.service.as_str());
        for callee in facts.callees.iter().map(String::as_str).chain(by_port) {
            if callee == to {
                return true;
            }
            if seen.insert(callee) {
                next.push(callee);
            }
        }
    }
    false
}
