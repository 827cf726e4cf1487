//! Incidents: the error patterns and counter anomalies that are one fault, with the service
//! where it lives, the counters related to it and the hints whose evidence matched.
//!
//! Execution model: the agent calls [`IncidentTracker::update`] about once a second with the
//! emerging patterns, the latest [`AnomalyReport`] and what it knows of the services
//! ([`ServiceFacts`]); the tracker groups them and keeps the incidents across calls so that an
//! incident keeps its id and onset while it goes on and stays listed (inactive) for
//! [`RETAIN_MS`] after it ended. It reads no clock: `now` is an argument.
//!
//! Grouping. Every pattern and counter anomaly is a *signal* with an onset and, when known, a
//! culprit (the service where the fault lives). Two signals are one incident when they start
//! within [`GROUP_WINDOW_MS`] of each other and either share a trace, name the same culprit
//! or are about the same port (two counters of it, or a counter of it and a pattern whose
//! failing calls name it); two different culprits are never merged, however the
//! signals chain. A pattern's
//! culprit is the one attributed to it (its callee for transport errors); a pattern without
//! attribution has no culprit for grouping (its services are shown instead), so an upstream
//! echo joins its origin through their shared traces. A counter anomaly's culprit comes from
//! the series: the service listening on its port (a CLOSE-WAIT leak or a full accept queue
//! is the listener's), the single caller of that service for client-side damage (a TIME-WAIT
//! storm or CLOSE-WAIT towards the port: connections opened per call or not closed), the
//! service of a task target, process or traffic series. TIME-WAIT on the listener's own side
//! (it closed first) is its single caller's too (a client with keep-alives off asks it to
//! close), unless calls to the listener fail with it as their culprit near the change: then
//! it closes on its own (a callee closing without an answer) and the TIME-WAIT is its own. Node-wide series (protocol rates,
//! node totals, sockstat) name no culprit: they join every incident that started within the
//! window, marked node-wide, and never open an incident of their own. Service traffic
//! (requests, failures) joins an incident of its service or a peer and opens one only when
//! nothing else explains it.
//!
//! Node activity is not an incident. A counter of a port no known service owns — no service
//! listens there (from spans or a configured `[[counters.processes]] listen_port`) and no
//! service's calls go there — is some other program's business on a shared node: a build,
//! a database client, a test suite churning loopback sockets. Such a series joins an
//! incident only when one of its signals names the port (a pattern whose failing calls go
//! there); alone, it is listed in [`IncidentTracker::node_signals`] with the reason, and so
//! is a node-wide series that neither joined an incident nor counts failures. Seen on the
//! Go lab's quiet run (10 minutes, no fault): all nine false incidents but one were ports of
//! other processes — two noise processes' churn of 1 to 40 loopback connections and the
//! agent's own scrapes of goroutine pages.
//!
//! Bounds: at most [`MAX_INCIDENTS`] incidents are kept (the oldest inactive ones go
//! first); each lists at most [`MAX_PATTERNS`] patterns, [`MAX_COUNTERS`] counters and
//! [`MAX_TRACES`] trace ids. Grouping is quadratic in the signals of one call, which are
//! bounded by the emerging patterns and the anomalies (one per series).

use std::collections::{BTreeMap, BTreeSet};

use faultline_series::{CounterKind, PortSide, SeriesKey, SocketState, TrafficMetric};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::anomaly::{clock, AnomalyReport, CounterAnomaly, Direction, BAND_Z, PERSIST};
use crate::hints::{CulpritRole, Hint, HintFacts, HintRules, HintSubject};
use crate::history::CounterHistory;

/// Signals that start further apart than this are not one incident: a cause shows on the
/// counters seconds to tens of seconds before the first error line, and its echoes upstream
/// follow within a request timeout; beyond a minute the link is a guess ("what moved" uses the
/// same minute).
pub const GROUP_WINDOW_MS: i64 = 60_000;
/// A pattern is active while it occurred within this long: one request timeout and the
/// patterns' per-second counting leave a live fault's last occurrence seconds old.
pub const ACTIVE_MS: i64 = 60_000;
/// An ended incident stays listed this long, so a person paged a few minutes late still sees
/// what happened.
pub const RETAIN_MS: i64 = 30 * 60_000;
/// Most incidents kept.
pub const MAX_INCIDENTS: usize = 50;
/// Most patterns listed per incident.
pub const MAX_PATTERNS: usize = 20;
/// Most counters listed per incident.
pub const MAX_COUNTERS: usize = 12;
/// Most trace ids listed per incident.
pub const MAX_TRACES: usize = 20;
/// An incident whose onset is earlier than this after the agent started was already going on
/// when it started: its first look at the logs and receivers finds the failures of an outage
/// in progress within a second or two, so its onset is not when the fault began.
pub const FIRST_LOOK_MS: i64 = 5_000;

/// Who an error pattern's failures are attributed to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PatternCulprit {
    /// The service where the failure lives.
    pub service: String,
    /// Its role in the failing calls.
    pub role: CulpritRole,
    /// Why, in a sentence ("starts in orders (seen by gateway, GET /v1/orders) in 412 of 415
    /// traces").
    pub reasoning: String,
}

/// An emerging error pattern, as the incident grouping needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct PatternInput {
    /// Stable cluster id.
    pub id: String,
    /// Its canonical template.
    pub text: String,
    /// A recent raw message of it: the template masks the addresses and names a failing
    /// call was made to, the raw message keeps them (the callee's port, a looked-up host).
    pub example: Option<String>,
    /// Services it was seen in.
    pub services: Vec<String>,
    /// Where its failures live, when attributed.
    pub culprit: Option<PatternCulprit>,
    /// When it started (emerging since, else first seen; Unix ms).
    pub onset_unix_ms: i64,
    /// Its latest occurrence (Unix ms).
    pub last_seen_unix_ms: i64,
    /// Occurrences counted.
    pub count: u64,
    /// Recent traces it occurred in.
    pub trace_ids: Vec<String>,
    /// Its occurrences in traces that had already failed with another pattern, by that
    /// pattern's id: failed requests counted in both.
    pub failed_before: Vec<(String, u64)>,
    /// Its text only reports an HTTP error status (`GET <url>: 502 Bad Gateway`, `HTTP 502
    /// from GET /x`): how a failure echoes up the call chain, not what failed.
    pub status_echo: bool,
}

/// What the agent knows about one service on the node, to relate counters to it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceFacts {
    /// The service name.
    pub service: String,
    /// Ports it listens on.
    pub listen_ports: Vec<u16>,
    /// Services that call it.
    pub callers: Vec<String>,
    /// Services it calls.
    pub callees: Vec<String>,
    /// Its task (goroutine) targets.
    pub task_targets: Vec<String>,
    /// Its watched processes.
    pub processes: Vec<String>,
    /// Ports its calls go to (the peer port of its CLIENT spans): a callee's port even when
    /// the callee sends no spans (a database, a cache), so its sockets there are the caller's.
    pub called_ports: Vec<u16>,
    /// Its process id, when known.
    pub pid: Option<u32>,
    /// Its goroutine dump with stacks (pprof `debug=2`), when known.
    pub goroutine_url: Option<String>,
}

/// Everything one update reads.
#[derive(Debug, Clone, Copy)]
pub struct DiagnosisInput<'a> {
    /// Now (Unix ms).
    pub now_unix_ms: i64,
    /// The emerging patterns.
    pub patterns: &'a [PatternInput],
    /// The counter anomalies found now.
    pub anomalies: &'a AnomalyReport,
    /// The services on the node.
    pub services: &'a [ServiceFacts],
    /// The counter history the anomalies were found in: a kept incident's counters are
    /// re-read there once the detector's window has passed their change.
    pub history: &'a CounterHistory,
    /// The agent's own API base URL, for the hints' commands.
    pub api: Option<&'a str>,
}

/// The service an incident is attributed to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IncidentCulprit {
    /// The service where the fault lives; `null` when no signal names one.
    pub service: Option<String>,
    /// Its role, when known.
    pub role: Option<CulpritRole>,
    /// Why, in sentences: the patterns' attribution and the counters' relation.
    pub reasoning: Vec<String>,
    /// When no culprit is known: the services the signals were seen in, so a person knows
    /// where to look.
    pub seen_in: Vec<String>,
}

/// A pattern of an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IncidentPattern {
    /// Cluster id.
    pub id: String,
    /// Canonical template.
    pub text: String,
    /// Services it was seen in.
    pub services: Vec<String>,
    /// Where its failures live, when attributed.
    pub culprit: Option<PatternCulprit>,
    /// When it started (Unix ms).
    pub onset_unix_ms: i64,
    /// Its latest occurrence (Unix ms).
    pub last_seen_unix_ms: i64,
    /// Occurrences counted.
    pub count: u64,
}

/// How a counter relates to an incident's culprit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// The culprit's own: its listening ports, processes, task targets, traffic.
    Culprit,
    /// A peer's of the culprit (a caller or callee), or the culprit's port seen from a peer.
    Peer,
    /// A specific series (a port, a process) of no known relation to the culprit.
    Unrelated,
    /// A node-wide total: moves with any traffic on the node.
    NodeWide,
}

/// A counter anomaly of an incident, with its relation to the culprit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IncidentCounter {
    /// How it relates.
    pub relation: Relation,
    /// The relation in words ("a listening port of orders, the culprit").
    pub relation_text: String,
    /// The anomaly.
    pub anomaly: CounterAnomaly,
}

/// One incident: what an SRE acts on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Incident {
    /// Stable id: kept while the incident goes on (16 hex digits).
    pub id: String,
    /// The incident in one sentence.
    pub title: String,
    /// Where the fault lives.
    pub culprit: IncidentCulprit,
    /// Its error patterns, earliest first.
    pub patterns: Vec<IncidentPattern>,
    /// Its counters: related to the culprit first, node-wide last.
    pub counters: Vec<IncidentCounter>,
    /// Hints whose evidence matched, the best supported first. Possibilities, not verdicts.
    pub hints: Vec<Hint>,
    /// When its earliest signal started (Unix ms).
    pub onset_unix_ms: i64,
    /// When a signal of it was last active (Unix ms).
    pub last_active_unix_ms: i64,
    /// Whether it is still going on: a pattern occurred within the last minute or a counter is
    /// still out of its usual range.
    pub active: bool,
    /// Failed requests, each counted once: its patterns' occurrences (one per trace, one per
    /// untraced record), less those in traces that had already failed with another of its
    /// patterns (a request that failed in two ways is in both). The untraced echoes that
    /// joined it retell these failures and add nothing. 0 for an incident of counters only.
    #[serde(default)]
    pub failures: u64,
    /// Whether it was already going on when this agent started: its onset is the one a previous
    /// run of the agent recorded (restarted during an outage), or, when the agent had no record
    /// of it, the agent's first look (onset unknown: some time before the start).
    #[serde(default)]
    pub ongoing_at_start: bool,
    /// Some of the traces its patterns occurred in.
    pub trace_ids: Vec<String>,
}

/// A counter anomaly that is node activity, not an incident (see the module documentation):
/// visible to a person who looks, never raised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeSignal {
    /// Why it is not an incident, in one sentence.
    pub reason: String,
    /// The anomaly.
    pub anomaly: CounterAnomaly,
}

/// Keeps the incidents across updates (see the module documentation).
#[derive(Debug, Default)]
pub struct IncidentTracker {
    incidents: Vec<Incident>,
    /// When the agent started (Unix ms), when the tracker follows a live agent.
    started_unix_ms: Option<i64>,
    /// The latest update's anomalies that are node activity.
    node_signals: Vec<NodeSignal>,
    /// Members (pattern ids and series keys) of each kept incident, by id: how a new grouping
    /// finds the incident it continues.
    members: BTreeMap<String, BTreeSet<Member>>,
}

/// A member of an incident.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Member {
    Pattern(String),
    Series(SeriesKey),
}

/// One pattern or anomaly being grouped.
struct Signal<'a> {
    onset: i64,
    culprit: Option<(String, Option<CulpritRole>, String)>,
    what: SignalWhat<'a>,
    /// An untraced echo that joined the incident of the failure it echoes (listed after the
    /// incident's own patterns).
    echo: bool,
}

enum SignalWhat<'a> {
    Pattern(&'a PatternInput),
    Counter(&'a CounterAnomaly),
}

impl IncidentTracker {
    /// An empty tracker.
    pub fn new() -> IncidentTracker {
        IncidentTracker::default()
    }

    /// A tracker of an agent started at `started_unix_ms`: an incident whose onset is before
    /// [`FIRST_LOOK_MS`] after it is marked [`Incident::ongoing_at_start`].
    pub fn started_at(started_unix_ms: i64) -> IncidentTracker {
        IncidentTracker {
            started_unix_ms: Some(started_unix_ms),
            ..IncidentTracker::default()
        }
    }

    /// The incidents as of the last update: active first, then those with an error pattern
    /// whose culprit is known, then those resting on more kinds of evidence (a known culprit,
    /// patterns, counters of the culprit, a hint), then the most recent onset first.
    pub fn incidents(&self) -> &[Incident] {
        &self.incidents
    }

    /// The latest update's counter anomalies that are node activity and no incident's, the
    /// highest score first: a port no known service owns, or a node-wide total with no
    /// incident near it.
    pub fn node_signals(&self) -> &[NodeSignal] {
        &self.node_signals
    }

    /// Groups the signals of `input` into incidents, continues the kept ones and returns
    /// them all (see [`IncidentTracker::incidents`] for the order).
    pub fn update(&mut self, input: &DiagnosisInput<'_>, rules: &HintRules) -> &[Incident] {
        let now = input.now_unix_ms;
        let mut signals = Vec::new();
        let mut node_wide = Vec::new();
        let mut secondary = Vec::new();
        let mut unowned = Vec::new();
        for p in input.patterns {
            signals.push(Signal {
                onset: p.onset_unix_ms,
                culprit: p
                    .culprit
                    .as_ref()
                    .map(|c| (c.service.clone(), Some(c.role), c.reasoning.clone())),
                what: SignalWhat::Pattern(p),
                echo: false,
            });
        }
        for a in &input.anomalies.anomalies {
            if a.kind.is_node_wide() {
                node_wide.push(a);
                continue;
            }
            if owner(&a.key, input.services).is_none() {
                unowned.push(a);
                continue;
            }
            let signal = Signal {
                onset: a.changed_at_unix_ms,
                culprit: closing_callee(a, input.patterns, input.services)
                    .or_else(|| counter_culprit(&a.key, input.services)),
                what: SignalWhat::Counter(a),
                echo: false,
            };
            // A service's traffic says that something changed for it, not where: its
            // requests fall when its callers cannot reach it (their lookups fail), its
            // failures rise with any fault below it.
            if matches!(a.key, SeriesKey::ServiceTraffic { .. }) {
                secondary.push(signal);
            } else {
                signals.push(signal);
            }
        }
        let mut groups = group(&signals);
        join_untraced_echoes(&mut groups, &mut signals, input.services);
        join_upstream_waits(&mut groups, &mut signals, input.services);
        // Service traffic joins a group of its service or a peer that started within the
        // window (a fall of requests, also of a service further down from the culprit);
        // alone, it is node activity: traffic varies, and seen on the Go lab, a start-up's
        // failed calls raised an incident that the fault's signals then continued.
        let mut node_signals = Vec::new();
        for s in secondary {
            let service = match &s.what {
                SignalWhat::Counter(a) => traffic_service(&a.key).unwrap_or_default(),
                SignalWhat::Pattern(_) => String::new(),
            };
            let fall = matches!(&s.what, SignalWhat::Counter(a) if a.direction == Direction::Fall);
            let home = groups.iter().position(|g| {
                g.iter().any(|&i| {
                    let o = &signals[i];
                    (o.onset - s.onset).abs() <= GROUP_WINDOW_MS
                        && (involves(o, &service)
                            || o.culprit.as_ref().is_some_and(|c| {
                                peers(&c.0, input.services).contains(&service)
                                    // Requests stop all the way down from a caller that
                                    // cannot reach its callee.
                                    || (fall && downstream(&c.0, input.services).contains(&service))
                            }))
                })
            });
            match (home, &s.what) {
                (None, SignalWhat::Counter(a)) => node_signals.push(NodeSignal {
                    reason: format!(
                        "{service}: its traffic changed with no error pattern or counter of it, \
                         its callers or its callees within a minute; a service's traffic varies \
                         (a start-up's failed calls, a client's burst), so it is evidence beside \
                         a fault, not one by itself"
                    ),
                    anomaly: (*a).clone(),
                }),
                (home, _) => {
                    let mut s = s;
                    // Joining a group, a fall of requests names no culprit of its own: the
                    // group's signals say where the fault lives.
                    if fall {
                        s.culprit = None;
                    }
                    signals.push(s);
                    let i = signals.len() - 1;
                    match home {
                        Some(g) => groups[g].push(i),
                        None => groups.push(vec![i]),
                    }
                }
            }
        }
        // A port no known service owns joins a group one of whose signals is about that
        // port; alone, it is node activity.
        for a in unowned {
            let s = Signal {
                onset: a.changed_at_unix_ms,
                culprit: None,
                what: SignalWhat::Counter(a),
                echo: false,
            };
            let home = groups.iter().position(|g| {
                g.iter().any(|&i| {
                    (signals[i].onset - s.onset).abs() <= GROUP_WINDOW_MS
                        && same_port(&signals[i], &s)
                })
            });
            match home {
                Some(g) => {
                    signals.push(s);
                    groups[g].push(signals.len() - 1);
                }
                None => node_signals.push(NodeSignal {
                    reason: match a.key.port() {
                        Some(p) => format!(
                            "port {p}: no known service listens there or calls it, and no \
                             error pattern names it — another program's activity on the node"
                        ),
                        None => "no known service owns this series".to_owned(),
                    },
                    anomaly: a.clone(),
                }),
            }
        }
        // Node-wide series join the incidents near them; with none near, they are node
        // activity, even those that count failures: listen drops of a service of the node
        // show on its own accept queue too (the fullest listeners are counted one by one),
        // and drops no known service's queue shows are another program's. Seen on the Go
        // lab's quiet run: another lab's listen-overflow fault on the same machine.
        for a in &node_wide {
            let near = groups.iter().any(|g| {
                g.iter()
                    .any(|&i| (signals[i].onset - a.changed_at_unix_ms).abs() <= GROUP_WINDOW_MS)
            });
            if !near {
                node_signals.push(NodeSignal {
                    reason: if counts_failures(&a.key) {
                        "node-wide failures with no known service's signal within a minute: \
                         no accept queue, port or pattern of a known service moved with it"
                    } else {
                        "node-wide: moves with any traffic on the node, and no incident \
                         started within a minute of it"
                    }
                    .to_owned(),
                    anomaly: (*a).clone(),
                });
            }
        }
        node_signals.sort_by(|a, b| {
            b.anomaly
                .score
                .total_cmp(&a.anomaly.score)
                .then(a.anomaly.label.cmp(&b.anomaly.label))
        });
        self.node_signals = node_signals;

        let mut fresh: Vec<(Incident, BTreeSet<Member>)> = Vec::new();
        for g in &groups {
            let members: Vec<&Signal<'_>> = g.iter().map(|&i| &signals[i]).collect();
            let onset = members.iter().map(|s| s.onset).min().unwrap_or(now);
            let extra: Vec<&CounterAnomaly> = node_wide
                .iter()
                .copied()
                .filter(|a| (a.changed_at_unix_ms - onset).abs() <= GROUP_WINDOW_MS)
                .collect();
            fresh.push(build(&members, &extra, input, rules));
        }

        // Continue kept incidents: a fresh group sharing a member with a kept incident takes
        // its id and its onset.
        let mut next: Vec<Incident> = Vec::new();
        let mut next_members: BTreeMap<String, BTreeSet<Member>> = BTreeMap::new();
        let mut continued = BTreeSet::new();
        for (mut inc, members) in fresh {
            let kept = self.incidents.iter().find(|k| {
                !continued.contains(&k.id)
                    && self
                        .members
                        .get(&k.id)
                        .is_some_and(|m| !m.is_disjoint(&members))
                    && compatible(&k.culprit, &inc.culprit)
            });
            if let Some(k) = kept {
                inc.id = k.id.clone();
                inc.onset_unix_ms = inc.onset_unix_ms.min(k.onset_unix_ms);
                // A counter that left the detector's window while still out of its range
                // stays listed.
                for c in &k.counters {
                    if !inc.counters.iter().any(|x| x.anomaly.key == c.anomaly.key) {
                        let mut c = c.clone();
                        if reread(&mut c.anomaly, input.history) {
                            inc.active = true;
                            inc.last_active_unix_ms = now;
                        }
                        inc.counters.push(c);
                    }
                }
                continued.insert(k.id.clone());
            }
            let mut all = members;
            if let Some(old) = self.members.get(&inc.id) {
                all.extend(old.iter().cloned());
            }
            next_members.insert(inc.id.clone(), all);
            next.push(inc);
        }
        for k in &self.incidents {
            if continued.contains(&k.id) || next.iter().any(|n| n.id == k.id) {
                continue;
            }
            if now - k.last_active_unix_ms > RETAIN_MS {
                continue;
            }
            let mut k = k.clone();
            k.active = false;
            for c in &mut k.counters {
                if reread(&mut c.anomaly, input.history) {
                    k.active = true;
                    k.last_active_unix_ms = now;
                }
            }
            if let Some(m) = self.members.get(&k.id) {
                next_members.insert(k.id.clone(), m.clone());
            }
            next.push(k);
        }
        next.sort_by(|a, b| {
            b.active
                .cmp(&a.active)
                .then(placed_error(b).cmp(&placed_error(a)))
                .then(support(b).cmp(&support(a)))
                .then(b.onset_unix_ms.cmp(&a.onset_unix_ms))
                .then(a.id.cmp(&b.id))
        });
        next.truncate(MAX_INCIDENTS);
        if let Some(started) = self.started_unix_ms {
            for inc in &mut next {
                inc.ongoing_at_start = inc.onset_unix_ms < started + FIRST_LOOK_MS;
            }
        }
        next_members.retain(|id, _| next.iter().any(|n| &n.id == id));
        self.incidents = next;
        self.members = next_members;
        &self.incidents
    }
}

/// Whether an incident has an error pattern whose culprit is known: an error the failing
/// calls reported, placed by attribution. That outranks any incident of counters alone,
/// however many kinds of evidence those gather: a counter moves with load, warm-ups and the
/// echoes of a fault elsewhere. Seen on the Go lab (panic, seed 8806): a panicking callee's
/// caller saw its own port's sockets climb 12 s later (its listening port, a hint, a culprit:
/// as much support as the panic's pattern), and as the more recent it led the list.
fn placed_error(i: &Incident) -> bool {
    i.patterns.iter().any(|p| p.culprit.is_some())
}

/// How many kinds of evidence an incident rests on: a known culprit, error patterns, counters
/// related to the culprit, a hint. An incident seen from several sides ranks above one seen
/// from a single series (a caller's fds rising because its callee hangs).
fn support(i: &Incident) -> u8 {
    u8::from(i.culprit.service.is_some())
        + u8::from(!i.patterns.is_empty())
        + u8::from(i.counters.iter().any(|c| c.relation == Relation::Culprit))
        + u8::from(!i.hints.is_empty())
}

/// Re-reads a kept anomaly's series: its latest point, and whether its latest [`PERSIST`]
/// points are still out of the band it left. Returns whether it is still active; a series
/// the history no longer holds is not.
fn reread(a: &mut CounterAnomaly, history: &CounterHistory) -> bool {
    let band = BAND_Z * a.noise;
    let latest: Vec<f64> = history
        .get(&a.key)
        .map(|s| {
            s.points
                .iter()
                .rev()
                .flatten()
                .take(PERSIST)
                .copied()
                .collect()
        })
        .unwrap_or_default();
    let out = |v: f64| match a.direction {
        Direction::Rise => v > a.before + band,
        Direction::Fall => v < a.before - band,
    };
    if let Some(&v) = latest.first() {
        a.latest = v;
    }
    a.active = latest.len() == PERSIST && latest.iter().all(|&v| out(v));
    a.active
}

/// Whether two culprits can be the same incident's: equal, or one of them unknown.
fn compatible(a: &IncidentCulprit, b: &IncidentCulprit) -> bool {
    match (&a.service, &b.service) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    }
}

/// Whether a node-wide series counts failures by itself (not traffic): an overflowing
/// accept queue shows only there when the listener is not among the top ports.
fn counts_failures(key: &SeriesKey) -> bool {
    match key {
        SeriesKey::ProtocolRate { key } => {
            let name = key.rsplit([' ', '.']).next().unwrap_or(key);
            matches!(
                name,
                "ListenOverflows" | "ListenDrops" | "TCPReqQFullDrop" | "TCPTimeWaitOverflow"
            )
        }
        _ => false,
    }
}

fn traffic_service(key: &SeriesKey) -> Option<String> {
    match key {
        SeriesKey::ServiceTraffic { service, .. } => Some(service.clone()),
        _ => None,
    }
}

/// Whether a signal is about `service` (its culprit, or a pattern seen in it).
fn involves(s: &Signal<'_>, service: &str) -> bool {
    s.culprit.as_ref().is_some_and(|c| c.0 == service)
        || match &s.what {
            SignalWhat::Pattern(p) => p.services.iter().any(|x| x == service),
            SignalWhat::Counter(a) => traffic_service(&a.key).as_deref() == Some(service),
        }
}

/// The callers and callees of `service`.
fn peers(service: &str, services: &[ServiceFacts]) -> Vec<String> {
    services
        .iter()
        .find(|s| s.service == service)
        .map(|s| s.callers.iter().chain(&s.callees).cloned().collect())
        .unwrap_or_default()
}

/// The services `service` calls, directly or through others (its callees, theirs, ...).
fn downstream(service: &str, services: &[ServiceFacts]) -> Vec<String> {
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
fn listener(port: u16, services: &[ServiceFacts]) -> Option<&ServiceFacts> {
    services.iter().find(|s| s.listen_ports.contains(&port))
}

/// The services whose calls go to `port`, by name.
fn callers_of_port(port: u16, services: &[ServiceFacts]) -> Vec<&ServiceFacts> {
    services
        .iter()
        .filter(|s| s.called_ports.contains(&port))
        .collect()
}

/// The service a task (goroutine) target is configured for: the one that claims it, else
/// the target's own name (a user names a target after what it watches).
fn task_owner<'a>(target: &'a str, services: &'a [ServiceFacts]) -> &'a str {
    services
        .iter()
        .find(|s| s.task_targets.iter().any(|t| t == target))
        .map_or(target, |s| s.service.as_str())
}

/// The service a watched process is configured for: the one that claims it, else the
/// process's own name.
fn process_owner<'a>(name: &'a str, services: &'a [ServiceFacts]) -> &'a str {
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
fn owner(key: &SeriesKey, services: &[ServiceFacts]) -> Option<String> {
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
fn closing_callee(
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

/// The culprit a counter series points at, with its role and the reasoning (see the module
/// documentation).
fn counter_culprit(
    key: &SeriesKey,
    services: &[ServiceFacts],
) -> Option<(String, Option<CulpritRole>, String)> {
    match key {
        SeriesKey::PortState { port, side, state } => {
            let Some(owner) = listener(*port, services) else {
                // A callee that sends no spans: the sockets towards its port are its
                // callers'; with one caller, a storm or a leak there is that caller's.
                let [caller] = callers_of_port(*port, services)[..] else {
                    return None;
                };
                let client_side = matches!(state, SocketState::TimeWait | SocketState::CloseWait)
                    && *side == PortSide::Remote;
                return client_side.then(|| {
                    (
                        caller.service.clone(),
                        Some(CulpritRole::Caller),
                        format!(
                            "{} is on the connections of {} to port {port}",
                            key.label(),
                            caller.service
                        ),
                    )
                });
            };
            let client_side = match state {
                SocketState::TimeWait => true,
                SocketState::CloseWait => *side == PortSide::Remote,
                _ => false,
            };
            if client_side {
                let [caller] = owner.callers.as_slice() else {
                    return None;
                };
                let why = match state {
                    SocketState::TimeWait => format!(
                        "{} on the port of {}: its caller {caller} opens a connection per call",
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
                return Some((caller.clone(), Some(CulpritRole::Caller), why));
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
            let callers: Vec<&str> = match listener(*port, services) {
                Some(owner) => owner.callers.iter().map(String::as_str).collect(),
                None => callers_of_port(*port, services)
                    .into_iter()
                    .map(|s| s.service.as_str())
                    .collect(),
            };
            let [caller] = callers[..] else {
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
fn join_untraced_echoes(
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

/// How long before a failure's onset a caller's counter may be dated and still be waiting on
/// it: series are sampled once a second and a change is dated where its fit begins, a second
/// or two before the first failed call is reported (seen on the Go lab's listen-overflow: the
/// edge's TIME-WAIT dated 1 s before the callee's first failure).
pub const UPSTREAM_SLACK_MS: i64 = 5_000;

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
/// failure. The moved counters name no culprit of their own; the incident lists them as the
/// culprit's callers' (see [`relate`]). A caller whose own fault started first keeps its
/// incident.
fn join_upstream_waits(
    groups: &mut Vec<Vec<usize>>,
    signals: &mut [Signal<'_>],
    services: &[ServiceFacts],
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
        let (first, last) = groups[from]
            .iter()
            .map(|&i| signals[i].onset)
            .fold((i64::MAX, i64::MIN), |(a, b), t| (a.min(t), b.max(t)));
        let home = groups.iter().enumerate().find_map(|(to, members)| {
            if to == from {
                return None;
            }
            let culprit =
                members
                    .iter()
                    .find_map(|&j| match (&signals[j].what, &signals[j].culprit) {
                        (SignalWhat::Pattern(_), Some((c, Some(CulpritRole::Callee), _))) => {
                            Some(c.as_str())
                        }
                        _ => None,
                    })?;
            let onset = members.iter().map(|&j| signals[j].onset).min()?;
            (culprit != waiting
                && calls(&waiting, culprit, services)
                && first >= onset - UPSTREAM_SLACK_MS
                && last <= onset + GROUP_WINDOW_MS)
                .then_some(to)
        });
        let Some(to) = home else {
            continue;
        };
        let moved = std::mem::take(&mut groups[from]);
        for &i in &moved {
            signals[i].culprit = None;
        }
        groups[to].extend(moved);
    }
    groups.retain(|g| !g.is_empty());
}

/// Whether `from` calls `to`, directly or through its callees (bounded by the services
/// known). A callee is known from spans (a SERVER span under a CLIENT span) or from the port
/// a CLIENT span called and the service listening there: a callee that closes without
/// answering sends no span while it fails.
fn calls(from: &str, to: &str, services: &[ServiceFacts]) -> bool {
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

/// Groups signals: within the window and sharing a trace or a culprit, never two culprits in
/// one group. Greedy over pairs in onset order, so the answer does not depend on input order.
fn group(signals: &[Signal<'_>]) -> Vec<Vec<usize>> {
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
                (o.onset - s.onset).abs() <= GROUP_WINDOW_MS
                    && (same_culprit(o, s) || share_trace(o, s) || same_port(o, s))
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

fn same_culprit(a: &Signal<'_>, b: &Signal<'_>) -> bool {
    matches!((&a.culprit, &b.culprit), (Some(x), Some(y)) if x.0 == y.0)
}

/// Two signals about one port: two counters of it (its states, its total, its accept queue,
/// either side), or a pattern whose failing calls name it (`http://host:PORT/...`) and a
/// counter of it — one place on the node, whoever owns it, even before a culprit is known.
fn same_port(a: &Signal<'_>, b: &Signal<'_>) -> bool {
    let port = |s: &Signal<'_>| match &s.what {
        SignalWhat::Counter(x) => x.key.port(),
        SignalWhat::Pattern(p) => peer_of(p).as_deref().and_then(port_of),
    };
    let counters =
        matches!(a.what, SignalWhat::Counter(_)) || matches!(b.what, SignalWhat::Counter(_));
    counters && port(a).is_some() && port(a) == port(b)
}

fn share_trace(a: &Signal<'_>, b: &Signal<'_>) -> bool {
    match (&a.what, &b.what) {
        (SignalWhat::Pattern(x), SignalWhat::Pattern(y)) => {
            x.trace_ids.iter().any(|t| y.trace_ids.contains(t))
        }
        _ => false,
    }
}

/// The incident of one group, with its members.
fn build(
    members: &[&Signal<'_>],
    node_wide: &[&CounterAnomaly],
    input: &DiagnosisInput<'_>,
    rules: &HintRules,
) -> (Incident, BTreeSet<Member>) {
    let now = input.now_unix_ms;
    let mut patterns: Vec<&PatternInput> = Vec::new();
    let mut echoes: Vec<&PatternInput> = Vec::new();
    let mut counters: Vec<&CounterAnomaly> = Vec::new();
    for s in members {
        match &s.what {
            SignalWhat::Pattern(p) if s.echo => echoes.push(p),
            SignalWhat::Pattern(p) => patterns.push(p),
            SignalWhat::Counter(a) => counters.push(a),
        }
    }
    // The incident's own patterns earliest first, then the untraced echoes of them.
    let by_onset = |a: &&PatternInput, b: &&PatternInput| {
        a.onset_unix_ms.cmp(&b.onset_unix_ms).then(a.id.cmp(&b.id))
    };
    patterns.sort_by(by_onset);
    echoes.sort_by(by_onset);
    let failures = failures_of(&patterns);
    patterns.extend(echoes);

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
    if culprit.service.is_none() {
        let seen: BTreeSet<&String> = patterns.iter().flat_map(|p| &p.services).collect();
        culprit.seen_in = seen.into_iter().cloned().collect();
        culprit.reasoning.push(if patterns.is_empty() {
            "no service is known for these counters".to_owned()
        } else {
            "the patterns' failures are not attributed to a service yet; they were seen in the \
             services listed"
                .to_owned()
        });
    }

    let facts = culprit
        .service
        .as_ref()
        .and_then(|c| input.services.iter().find(|s| &s.service == c));
    let named_ports: Vec<u16> = patterns
        .iter()
        .filter_map(|p| peer_of(p).as_deref().and_then(port_of))
        .collect();
    let mut listed: Vec<IncidentCounter> = counters
        .iter()
        .copied()
        .chain(node_wide.iter().copied())
        .map(|a| {
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
                anomaly: a.clone(),
            }
        })
        .collect();
    // A failure rate of a service retells the patterns' own errors when there are patterns:
    // it follows the related counters that say more (a callee's request rate falling when
    // its caller's lookups fail), before the unrelated ones.
    let with_patterns = !patterns.is_empty();
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
            .then(b.anomaly.score.total_cmp(&a.anomaly.score))
            .then(a.anomaly.label.cmp(&b.anomaly.label))
    });
    listed.truncate(MAX_COUNTERS);

    let onset = members.iter().map(|s| s.onset).min().unwrap_or(now);
    let pattern_active = patterns
        .iter()
        .map(|p| p.last_seen_unix_ms)
        .max()
        .filter(|&t| now - t <= ACTIVE_MS);
    let counter_active = counters.iter().any(|a| a.active);
    let active = pattern_active.is_some() || counter_active;
    let last_active = if counter_active {
        now
    } else {
        pattern_active.unwrap_or(onset).max(onset)
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
        host,
        pid: facts.and_then(|f| f.pid),
        goroutine_url: facts.and_then(|f| f.goroutine_url.clone()),
        pattern_id: patterns.first().map(|p| p.id.clone()),
        api: input.api.map(str::to_owned),
    };
    let hints = rules.hints_for(&HintSubject {
        patterns: &texts,
        anomalies: &anomalies,
        culprit_role: culprit.role,
        facts: &hint_facts,
    });

    // The counter the leading hint rests on is the incident's top related signal (a reset
    // storm's `Tcp EstabResets`, a leak's CLOSE-WAIT on the culprit's port): on the Go lab the
    // reset fault's callers' request rates, related by service, led over the resets that
    // explain them. The others keep their order after it.
    if let Some(hint) = hints.first() {
        let evidence = rules.evidence_counters(&hint.rule_id, &anomalies);
        if !evidence.is_empty() {
            let (mut lead, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut listed)
                .into_iter()
                .enumerate()
                .partition(|(i, _)| evidence.contains(i));
            lead.extend(rest);
            listed = lead.into_iter().map(|(_, c)| c).collect();
        }
    }

    let first = members
        .iter()
        .min_by_key(|s| s.onset)
        .map(|s| match &s.what {
            SignalWhat::Pattern(p) => p.id.clone(),
            SignalWhat::Counter(a) => a.key.label(),
        })
        .unwrap_or_default();
    let id = stable_id(&first, onset);
    let title = title(&culprit, &patterns, &listed, hints.first());

    let mut member_set = BTreeSet::new();
    for p in &patterns {
        member_set.insert(Member::Pattern(p.id.clone()));
    }
    for a in &counters {
        member_set.insert(Member::Series(a.key.clone()));
    }
    let incident = Incident {
        id,
        title,
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
                count: p.count,
            })
            .collect(),
        counters: listed,
        hints,
        onset_unix_ms: onset,
        last_active_unix_ms: last_active,
        active,
        failures,
        ongoing_at_start: false,
        trace_ids,
    };
    (incident, member_set)
}

/// Failed requests of `patterns`, each once: a request that failed with two of them (the
/// dial timed out, then the retry's wait for headers did) is counted in both patterns, and
/// taken off again here. A pattern that shares requests with itself (two patterns merged
/// since) is taken off the same way.
fn failures_of(patterns: &[&PatternInput]) -> u64 {
    let ids: BTreeSet<&str> = patterns.iter().map(|p| p.id.as_str()).collect();
    patterns
        .iter()
        .map(|p| {
            let shared: u64 = p
                .failed_before
                .iter()
                .filter(|(other, _)| ids.contains(other.as_str()))
                .map(|(_, n)| n)
                .sum();
            p.count.saturating_sub(shared)
        })
        .sum()
}

/// Order of kinds within one relation: sockets say the most about where, then queues, fds,
/// goroutines, threads, traffic.
fn kind_order(a: &CounterAnomaly) -> u8 {
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
fn relate(
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

/// The incident in one sentence: where, what, and the leading evidence.
fn title(
    culprit: &IncidentCulprit,
    patterns: &[&PatternInput],
    counters: &[IncidentCounter],
    hint: Option<&Hint>,
) -> String {
    let mut out = String::new();
    if let Some(h) = hint {
        out.push_str(&h.title);
        out.push_str(" — ");
    }
    match &culprit.service {
        Some(s) => out.push_str(&format!("in {s}")),
        None if !culprit.seen_in.is_empty() => {
            out.push_str(&format!("seen in {}", culprit.seen_in.join(", ")))
        }
        None => out.push_str("no service known"),
    }
    if let Some(c) = counters.first() {
        out.push_str(": ");
        out.push_str(&c.anomaly.evidence);
    } else if let Some(p) = patterns.first() {
        out.push_str(&format!(
            ": “{}” from {}",
            p.text.chars().take(120).collect::<String>(),
            clock(p.onset_unix_ms)
        ));
    }
    out
}

/// The `host:port` a pattern's failing calls name, from its raw example, else its template.
fn peer_of(p: &PatternInput) -> Option<String> {
    p.example
        .as_deref()
        .and_then(peer_address)
        .or_else(|| peer_address(&p.text))
}

/// The `host:port` a failing call names: `http://host:port/...`, `dial tcp host:port`,
/// `->host:port` (Go's `read tcp a->b`); or the listener a failing accept names (Go's
/// `accept tcp host:port: accept4: too many open files`), so a service's accept errors,
/// logged in no trace, join the counters of its port.
fn peer_address(text: &str) -> Option<String> {
    let candidates = [
        text.find("://").map(|i| &text[i + 3..]),
        text.find("dial tcp ").map(|i| &text[i + 9..]),
        text.find("->").map(|i| &text[i + 2..]),
        text.find("accept tcp ").map(|i| &text[i + 11..]),
    ];
    candidates.into_iter().flatten().find_map(|rest| {
        let end = rest.find(['/', '"', ' ', ')', ',']).unwrap_or(rest.len());
        let addr = rest[..end].trim_end_matches(':');
        let ok = port_of(addr).is_some() && !addr.contains('<');
        ok.then(|| addr.to_owned())
    })
}

/// The name a failed lookup asked for (`lookup NAME on ...`, `lookup NAME: ...`).
fn looked_up_host(text: &str) -> Option<String> {
    let rest = &text[text.find("lookup ")? + 7..];
    let end = rest.find([' ', ':']).unwrap_or(rest.len());
    let host = &rest[..end];
    (!host.is_empty() && !host.contains('<')).then(|| host.to_owned())
}

fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(h, _)| h)
}

fn port_of(addr: &str) -> Option<u16> {
    addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

/// A 16-hex-digit id from the first member and the onset second (FNV-1a): the same incident
/// gets the same id in every update and after a replay of the same data.
fn stable_id(first: &str, onset: i64) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in first.bytes().chain(onset.div_euclid(1000).to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anomaly::ChangeShape;

    const T0: i64 = 1_795_638_600_000;

    fn pattern(
        id: &str,
        text: &str,
        services: &[&str],
        onset: i64,
        traces: &[&str],
    ) -> PatternInput {
        PatternInput {
            id: id.into(),
            text: text.into(),
            example: None,
            services: services.iter().map(|s| s.to_string()).collect(),
            culprit: None,
            onset_unix_ms: onset,
            last_seen_unix_ms: onset + 5_000,
            count: 10,
            trace_ids: traces.iter().map(|s| s.to_string()).collect(),
            failed_before: Vec::new(),
            status_echo: false,
        }
    }

    fn blamed(mut p: PatternInput, service: &str, role: CulpritRole) -> PatternInput {
        p.culprit = Some(PatternCulprit {
            service: service.into(),
            role,
            reasoning: format!("starts in {service}"),
        });
        p
    }

    fn anomaly(key: SeriesKey, at: i64) -> CounterAnomaly {
        CounterAnomaly {
            label: key.label(),
            unit: key.unit().into(),
            kind: key.kind(),
            evidence: format!("{} rose 0 → 100 in 5 s", key.label()),
            key,
            shape: ChangeShape::Step,
            direction: Direction::Rise,
            before: 0.0,
            noise: 1.0,
            reached: 100.0,
            latest: 100.0,
            score: 100.0,
            changed_at_unix_ms: at,
            active: true,
            limit: None,
        }
    }

    fn report(anomalies: Vec<CounterAnomaly>) -> AnomalyReport {
        AnomalyReport {
            series_judged: anomalies.len() as u64,
            anomalies,
            unjudged: Vec::new(),
        }
    }

    /// gateway → orders (:8081) → stock (:8082).
    fn chain() -> Vec<ServiceFacts> {
        vec![
            ServiceFacts {
                service: "gateway".into(),
                listen_ports: vec![8080],
                callees: vec!["orders".into()],
                ..ServiceFacts::default()
            },
            ServiceFacts {
                service: "orders".into(),
                listen_ports: vec![8081],
                callers: vec!["gateway".into()],
                callees: vec!["stock".into()],
                task_targets: vec!["orders".into()],
                goroutine_url: Some("http://127.0.0.1:6061/debug/pprof/goroutine?debug=2".into()),
                ..ServiceFacts::default()
            },
            ServiceFacts {
                service: "stock".into(),
                listen_ports: vec![8082],
                callers: vec!["orders".into()],
                pid: Some(4242),
                ..ServiceFacts::default()
            },
        ]
    }

    fn run(
        tracker: &mut IncidentTracker,
        now: i64,
        patterns: &[PatternInput],
        anomalies: Vec<CounterAnomaly>,
    ) -> Vec<Incident> {
        let services = chain();
        let report = report(anomalies);
        let rules = HintRules::builtin().unwrap();
        run_with(
            tracker,
            now,
            patterns,
            report,
            &CounterHistory::default(),
            &services,
            &rules,
        )
    }

    fn run_with(
        tracker: &mut IncidentTracker,
        now: i64,
        patterns: &[PatternInput],
        report: AnomalyReport,
        history: &CounterHistory,
        services: &[ServiceFacts],
        rules: &HintRules,
    ) -> Vec<Incident> {
        tracker
            .update(
                &DiagnosisInput {
                    now_unix_ms: now,
                    patterns,
                    anomalies: &report,
                    services,
                    history,
                    api: Some("http://127.0.0.1:7070"),
                },
                rules,
            )
            .to_vec()
    }

    fn close_wait(port: u16) -> SeriesKey {
        SeriesKey::PortState {
            port,
            side: PortSide::Local,
            state: SocketState::CloseWait,
        }
    }

    #[test]
    fn a_callees_request_rate_falling_leads_its_callers_lookup_failures_and_traffic_alone_is_node_activity(
    ) {
        let t0 = 1_795_638_600_000;
        let lookups = blamed(
            pattern(
                "a",
                "dial tcp: lookup stock on 127.0.0.53:53: no such host",
                &["orders"],
                t0,
                &["t1"],
            ),
            "orders",
            CulpritRole::Caller,
        );
        let traffic = |service: &str, metric| SeriesKey::ServiceTraffic {
            service: service.into(),
            metric,
        };
        let mut fall = anomaly(traffic("stock", TrafficMetric::Requests), t0 + 8_000);
        fall.direction = Direction::Fall;
        let errors = anomaly(traffic("orders", TrafficMetric::Errors), t0 + 2_000);
        // The failing caller answers at once: its callers' connections to it churn.
        let own_port = anomaly(
            SeriesKey::PortTotal {
                port: 8081,
                side: PortSide::Local,
            },
            t0 + 3_000,
        );
        let mut tracker = IncidentTracker::new();
        let incidents = run(
            &mut tracker,
            t0 + 20_000,
            std::slice::from_ref(&lookups),
            vec![fall.clone(), errors.clone(), own_port],
        );
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        let inc = &incidents[0];
        assert_eq!(inc.culprit.service.as_deref(), Some("orders"));
        let labels: Vec<&str> = inc
            .counters
            .iter()
            .map(|c| c.anomaly.label.as_str())
            .collect();
        // The callee's requests falling says more than the culprit's failures, which retell
        // its patterns, and than its own port, which follows how fast it answers its callers.
        assert_eq!(
            labels,
            ["stock request rate", "sockets :8081", "orders error rate"],
            "{inc:#?}"
        );
        assert_eq!(inc.counters[0].relation, Relation::Peer);
        assert_eq!(inc.counters[1].relation, Relation::Culprit);

        // The caller at the top of the chain fails its lookups: requests stop all the way
        // down, and every fall joins its incident.
        let top = blamed(
            pattern(
                "b",
                "dial tcp: lookup orders on 127.0.0.53:53: no such host",
                &["gateway"],
                t0,
                &["t2"],
            ),
            "gateway",
            CulpritRole::Caller,
        );
        let mut below = anomaly(traffic("orders", TrafficMetric::Requests), t0 + 8_000);
        below.direction = Direction::Fall;
        let mut tracker = IncidentTracker::new();
        let incidents = run(
            &mut tracker,
            t0 + 20_000,
            std::slice::from_ref(&top),
            vec![fall.clone(), below],
        );
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        assert_eq!(incidents[0].culprit.service.as_deref(), Some("gateway"));
        assert_eq!(incidents[0].counters.len(), 2, "{incidents:#?}");

        // Traffic alone is no incident, whichever way it moved: node activity.
        let rise = anomaly(traffic("gateway", TrafficMetric::Requests), t0);
        let mut tracker = IncidentTracker::new();
        let incidents = run(&mut tracker, t0 + 20_000, &[], vec![rise, errors, fall]);
        assert!(incidents.is_empty(), "{incidents:#?}");
        assert_eq!(tracker.node_signals().len(), 3);
        assert!(tracker.node_signals()[0]
            .reason
            .contains("its traffic changed with no error pattern"));
    }

    #[test]
    fn eof_unexpected_eof_and_their_upstream_echo_are_one_incident_of_the_callee() {
        let eof = blamed(
            pattern(
                "a",
                "Get \"http://127.0.0.1:8082/v1/stock\": EOF",
                &["orders"],
                T0,
                &["t1", "t2"],
            ),
            "stock",
            CulpritRole::Callee,
        );
        let unexpected = blamed(
            pattern(
                "b",
                "Get \"http://127.0.0.1:8082/v1/stock\": unexpected EOF",
                &["orders"],
                T0 + 2_000,
                &["t3"],
            ),
            "stock",
            CulpritRole::Callee,
        );
        // The gateway's echo: not attributed, but in the same traces.
        let echo = pattern(
            "c",
            "upstream orders failed: 502",
            &["gateway"],
            T0 + 1_000,
            &["t2"],
        );
        let mut tracker = IncidentTracker::new();
        let incidents = run(&mut tracker, T0 + 10_000, &[eof, unexpected, echo], vec![]);
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        let inc = &incidents[0];
        assert_eq!(inc.culprit.service.as_deref(), Some("stock"));
        assert_eq!(inc.patterns.len(), 3);
        assert!(inc.active);
        assert_eq!(inc.hints[0].rule_id, "callee-closed");
        assert!(
            inc.hints[0].checks[0].command.contains(":8082"),
            "{}",
            inc.hints[0].checks[0].command
        );
    }

    #[test]
    fn two_culprits_are_never_merged_even_through_shared_traces() {
        let a = blamed(
            pattern(
                "a",
                "read: connection reset by peer",
                &["orders"],
                T0,
                &["t1"],
            ),
            "stock",
            CulpritRole::Callee,
        );
        let b = pattern(
            "b",
            "upstream failed",
            &["gateway"],
            T0 + 1_000,
            &["t1", "t2"],
        );
        let c = blamed(
            pattern(
                "c",
                "dial tcp: lookup x.invalid: no such host",
                &["gateway"],
                T0 + 2_000,
                &["t2"],
            ),
            "gateway",
            CulpritRole::Caller,
        );
        let mut tracker = IncidentTracker::new();
        let incidents = run(&mut tracker, T0 + 10_000, &[a, b, c], vec![]);
        assert_eq!(incidents.len(), 2, "{incidents:#?}");
        let culprits: BTreeSet<Option<String>> = incidents
            .iter()
            .map(|i| i.culprit.service.clone())
            .collect();
        assert!(
            culprits.contains(&Some("stock".into())) && culprits.contains(&Some("gateway".into()))
        );
    }

    #[test]
    fn signals_a_minute_apart_or_unrelated_are_separate_incidents() {
        let a = blamed(
            pattern("a", "x: EOF", &["orders"], T0, &["t1"]),
            "stock",
            CulpritRole::Callee,
        );
        let b = blamed(
            pattern("b", "y: EOF", &["orders"], T0 + 90_000, &["t9"]),
            "stock",
            CulpritRole::Callee,
        );
        let c = pattern("c", "something else", &["gateway"], T0 + 1_000, &["t5"]);
        let mut tracker = IncidentTracker::new();
        let incidents = run(&mut tracker, T0 + 95_000, &[a, b, c], vec![]);
        assert_eq!(incidents.len(), 3, "{incidents:#?}");
    }

    #[test]
    fn a_close_wait_leak_with_no_error_line_is_an_incident_of_the_listener_with_its_hint() {
        let mut tracker = IncidentTracker::new();
        let incidents = run(
            &mut tracker,
            T0 + 8_000,
            &[],
            vec![
                anomaly(close_wait(8082), T0),
                anomaly(
                    SeriesKey::ProtocolRate {
                        key: "Tcp InSegs".into(),
                    },
                    T0 + 1_000,
                ),
                anomaly(
                    SeriesKey::Process {
                        name: "stock".into(),
                        metric: faultline_series::ProcessMetric::OpenFds,
                    },
                    T0 + 2_000,
                ),
            ],
        );
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        let inc = &incidents[0];
        assert_eq!(inc.culprit.service.as_deref(), Some("stock"));
        assert_eq!(inc.culprit.role, Some(CulpritRole::Callee));
        assert_eq!(inc.counters[0].anomaly.key, close_wait(8082));
        assert_eq!(inc.counters[0].relation, Relation::Culprit);
        assert_eq!(inc.counters.last().unwrap().relation, Relation::NodeWide);
        assert_eq!(inc.hints[0].rule_id, "close-wait-leak");
        assert_eq!(
            inc.hints[0].checks[0].command,
            "ss -tanp state close-wait '( sport = :8082 or dport = :8082 )'"
        );
        assert!(inc.title.contains("CLOSE-WAIT :8082"), "{}", inc.title);
    }

    #[test]
    fn a_hung_callees_accept_errors_join_its_leak_and_make_it_the_hint() {
        // The close-wait fault: stock hangs; orders' calls time out (blamed on stock); stock
        // runs out of descriptors and logs accept errors in no trace (no culprit of their
        // own); CLOSE-WAIT piles up on its port and its fds reach their limit.
        let timeout = blamed(
            pattern(
                "p-timeout",
                "Get \"<url>\": context deadline exceeded",
                &["orders"],
                T0,
                &["t1"],
            ),
            "stock",
            CulpritRole::Callee,
        );
        let mut accept = pattern(
            "p-accept",
            "http: Accept error: accept tcp <ip:port>: accept4: too many open files; retrying in <duration>",
            &["stock"],
            T0 + 8_000,
            &[],
        );
        accept.example = Some(
            "http: Accept error: accept tcp 127.0.0.1:8082: accept4: too many open files; retrying in 5ms"
                .into(),
        );
        let mut fds = anomaly(
            SeriesKey::Process {
                name: "stock".into(),
                metric: faultline_series::ProcessMetric::OpenFds,
            },
            T0 + 1_000,
        );
        fds.limit = Some(100.0);
        let mut tracker = IncidentTracker::new();
        let incidents = run(
            &mut tracker,
            T0 + 10_000,
            &[timeout, accept],
            vec![anomaly(close_wait(8082), T0), fds],
        );
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        let inc = &incidents[0];
        assert_eq!(inc.culprit.service.as_deref(), Some("stock"));
        assert_eq!(inc.patterns.len(), 2);
        let hints: Vec<&str> = inc.hints.iter().map(|h| h.rule_id.as_str()).collect();
        assert_eq!(hints[0], "close-wait-leak", "{hints:?}");
    }

    #[test]
    fn the_counter_the_leading_hint_rests_on_is_the_top_related_signal() {
        // The reset fault on the Go lab: the callee resets, its callers' requests fail and
        // their request rates move (related by service); the node's reset rate is what the
        // connection-reset hint rests on, so it leads the incident's counters.
        let resets = blamed(
            pattern(
                "p-reset",
                "Get \"<url>\": read tcp <ip:port>-><ip:port>: read: connection reset by peer",
                &["orders"],
                T0,
                &["t1"],
            ),
            "stock",
            CulpritRole::Callee,
        );
        let mut requests = anomaly(
            SeriesKey::ServiceTraffic {
                service: "orders".into(),
                metric: TrafficMetric::Requests,
            },
            T0 + 1_000,
        );
        requests.direction = Direction::Fall;
        let estab_resets = SeriesKey::ProtocolRate {
            key: "Tcp EstabResets".into(),
        };
        let mut tracker = IncidentTracker::new();
        let incidents = run(
            &mut tracker,
            T0 + 10_000,
            &[resets],
            vec![requests, anomaly(estab_resets.clone(), T0 + 500)],
        );
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        let inc = &incidents[0];
        assert_eq!(inc.hints[0].rule_id, "connection-reset");
        assert_eq!(
            inc.counters[0].anomaly.key, estab_resets,
            "{:#?}",
            inc.counters
        );
        assert!(inc.title.contains("Tcp EstabResets"), "{}", inc.title);
    }

    #[test]
    fn a_callers_failed_lookups_keep_their_role_and_hint_beside_its_ports_counters() {
        // The dns fault: the edge's lookups fail (a pattern blamed on it, role caller) while
        // its own listening port moves (a counter that names it as a listener).
        let lookup = blamed(
            pattern(
                "p-dns",
                "Get \"<url>\": dial tcp: lookup <id> on <ip:port>: no such host",
                &["gateway"],
                T0,
                &["t1"],
            ),
            "gateway",
            CulpritRole::Caller,
        );
        let port = SeriesKey::PortTotal {
            port: 8080,
            side: PortSide::Local,
        };
        let mut tracker = IncidentTracker::new();
        let incidents = run(
            &mut tracker,
            T0 + 5_000,
            &[lookup],
            vec![anomaly(port, T0 - 1_000)],
        );
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        let inc = &incidents[0];
        assert_eq!(inc.culprit.service.as_deref(), Some("gateway"));
        assert_eq!(inc.culprit.role, Some(CulpritRole::Caller));
        assert_eq!(inc.hints[0].rule_id, "dns-failure");
    }

    #[test]
    fn a_time_wait_storm_is_blamed_on_the_single_caller() {
        let tw = SeriesKey::PortState {
            port: 8082,
            side: PortSide::Remote,
            state: SocketState::TimeWait,
        };
        // The caller's own listening port moves too (its callers wait on it): the storm
        // towards its callee is its signature and leads.
        let own = SeriesKey::PortTotal {
            port: 8081,
            side: PortSide::Local,
        };
        let mut tracker = IncidentTracker::new();
        let incidents = run(
            &mut tracker,
            T0 + 5_000,
            &[],
            vec![anomaly(own, T0 + 500), anomaly(tw.clone(), T0)],
        );
        let inc = &incidents[0];
        assert_eq!(inc.culprit.service.as_deref(), Some("orders"));
        assert_eq!(inc.culprit.role, Some(CulpritRole::Caller));
        assert_eq!(inc.counters[0].anomaly.key, tw, "{inc:#?}");
        assert_eq!(inc.counters[0].relation, Relation::Culprit);
        assert_eq!(inc.hints[0].rule_id, "time-wait-storm");
    }

    #[test]
    fn a_port_state_and_its_total_are_one_incident_led_by_the_state() {
        let tw = SeriesKey::PortState {
            port: 9999,
            side: PortSide::Remote,
            state: SocketState::TimeWait,
        };
        let total = SeriesKey::PortTotal {
            port: 9999,
            side: PortSide::Remote,
        };
        let mut big_total = anomaly(total, T0 - 1_000);
        big_total.score = 1_000.0;
        // A cache listens there, called by two services: no single caller to blame.
        let mut services = chain();
        services.push(ServiceFacts {
            service: "cache".into(),
            listen_ports: vec![9999],
            callers: vec!["orders".into(), "stock".into()],
            ..ServiceFacts::default()
        });
        let mut tracker = IncidentTracker::new();
        let incidents = run_with(
            &mut tracker,
            T0 + 5_000,
            &[],
            report(vec![big_total, anomaly(tw.clone(), T0)]),
            &CounterHistory::default(),
            &services,
            &HintRules::builtin().unwrap(),
        );
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        assert_eq!(incidents[0].counters[0].anomaly.key, tw);
        assert!(incidents[0].culprit.service.is_none());
    }

    #[test]
    fn churn_on_a_port_no_known_service_owns_is_node_activity_not_an_incident() {
        // Another program's loopback churn: its listening port and its clients' TIME-WAIT,
        // with a node-wide total moving with it, and no error pattern at all.
        let port = |state| SeriesKey::PortState {
            port: 54_689,
            side: PortSide::Local,
            state,
        };
        let total = SeriesKey::PortTotal {
            port: 54_689,
            side: PortSide::Local,
        };
        let towards = SeriesKey::PortState {
            port: 54_689,
            side: PortSide::Remote,
            state: SocketState::TimeWait,
        };
        let segs = SeriesKey::ProtocolRate {
            key: "Tcp InSegs".into(),
        };
        let mut tracker = IncidentTracker::new();
        let incidents = run(
            &mut tracker,
            T0 + 9_000,
            &[],
            vec![
                anomaly(port(SocketState::TimeWait), T0),
                anomaly(port(SocketState::CloseWait), T0 + 1_000),
                anomaly(total.clone(), T0),
                anomaly(towards, T0 + 2_000),
                anomaly(segs, T0),
            ],
        );
        assert!(incidents.is_empty(), "{incidents:#?}");
        let signals = tracker.node_signals();
        assert_eq!(signals.len(), 5, "{signals:#?}");
        let on_port = signals.iter().find(|s| s.anomaly.key == total).unwrap();
        assert!(
            on_port.reason.starts_with("port 54689: no known service"),
            "{}",
            on_port.reason
        );
        // The same storm on a port a known service listens on is an incident.
        let incidents = run(
            &mut tracker,
            T0 + 10_000,
            &[],
            vec![anomaly(
                SeriesKey::PortState {
                    port: 8082,
                    side: PortSide::Local,
                    state: SocketState::TimeWait,
                },
                T0,
            )],
        );
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        assert!(tracker.node_signals().is_empty());
    }

    #[test]
    fn time_wait_on_a_callee_that_closes_without_an_answer_is_the_callees() {
        // stock closes every call of orders without a body: orders fails with EOF, and stock
        // holds the TIME-WAIT of the connections it closed first, on its own port.
        let tw = SeriesKey::PortState {
            port: 8082,
            side: PortSide::Local,
            state: SocketState::TimeWait,
        };
        let eof = blamed(
            pattern(
                "a",
                "Get \"http://127.0.0.1:8082/v1/stock\": EOF",
                &["orders"],
                T0 + 1_500,
                &["t1"],
            ),
            "stock",
            CulpritRole::Callee,
        );
        let mut tracker = IncidentTracker::new();
        let incidents = run(
            &mut tracker,
            T0 + 5_000,
            std::slice::from_ref(&eof),
            vec![anomaly(tw.clone(), T0)],
        );
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        let inc = &incidents[0];
        assert_eq!(inc.culprit.service.as_deref(), Some("stock"));
        assert_eq!(inc.culprit.role, Some(CulpritRole::Callee));
        assert_eq!(inc.counters[0].anomaly.key, tw, "{inc:#?}");
        assert_eq!(inc.counters[0].relation, Relation::Culprit);

        // The same sockets with no failing call: its single caller asked it to close (a
        // connection per call with keep-alives off), the caller's storm.
        let mut tracker = IncidentTracker::new();
        let incidents = run(&mut tracker, T0 + 5_000, &[], vec![anomaly(tw.clone(), T0)]);
        assert_eq!(incidents[0].culprit.service.as_deref(), Some("orders"));
        assert_eq!(incidents[0].culprit.role, Some(CulpritRole::Caller));
        // A failure of the listener far from the change says nothing about it.
        let mut late = eof.clone();
        late.onset_unix_ms = T0 + GROUP_WINDOW_MS + 10_000;
        let mut tracker = IncidentTracker::new();
        let incidents = run(
            &mut tracker,
            T0 + GROUP_WINDOW_MS + 15_000,
            &[late],
            vec![anomaly(tw.clone(), T0)],
        );
        let counter = incidents
            .iter()
            .find(|i| i.counters.iter().any(|c| c.anomaly.key == tw))
            .expect("the TIME-WAIT's incident");
        assert_eq!(counter.culprit.service.as_deref(), Some("orders"));
    }

    #[test]
    fn a_time_wait_storm_towards_a_callee_with_no_spans_is_its_single_callers() {
        // orders calls a database on :5432 that sends no spans: the port is known only as
        // where orders' calls go.
        let mut services = chain();
        services[1].called_ports = vec![8082, 5432];
        let tw = SeriesKey::PortState {
            port: 5432,
            side: PortSide::Remote,
            state: SocketState::TimeWait,
        };
        let mut tracker = IncidentTracker::new();
        let incidents = run_with(
            &mut tracker,
            T0 + 5_000,
            &[],
            report(vec![anomaly(tw, T0)]),
            &CounterHistory::default(),
            &services,
            &HintRules::builtin().unwrap(),
        );
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        let inc = &incidents[0];
        assert_eq!(inc.culprit.service.as_deref(), Some("orders"));
        assert_eq!(inc.culprit.role, Some(CulpritRole::Caller));
        assert_eq!(inc.counters[0].relation, Relation::Culprit);
        assert_eq!(
            inc.counters[0].relation_text,
            "connections to port 5432 made by orders, the culprit"
        );
        assert_eq!(inc.hints[0].rule_id, "time-wait-storm");
    }

    #[test]
    fn a_pattern_naming_a_port_joins_that_ports_counters_before_any_culprit_is_known() {
        // No service facts at all: the port is all the two signals share.
        let eof = pattern(
            "a",
            "Get \"http://127.0.0.1:9999/v1/x\": EOF",
            &["web"],
            T0 + 3_000,
            &["t1"],
        );
        let other = pattern(
            "b",
            "Get \"http://127.0.0.1:9998/v1/x\": EOF",
            &["web"],
            T0 + 3_000,
            &["t2"],
        );
        let cw = SeriesKey::PortState {
            port: 9999,
            side: PortSide::Local,
            state: SocketState::CloseWait,
        };
        let mut tracker = IncidentTracker::new();
        let incidents = run(
            &mut tracker,
            T0 + 5_000,
            &[eof, other],
            vec![anomaly(cw, T0)],
        );
        assert_eq!(incidents.len(), 2, "{incidents:#?}");
        let joined = incidents.iter().find(|i| !i.counters.is_empty()).unwrap();
        assert_eq!(joined.patterns.len(), 1);
        assert_eq!(joined.patterns[0].id, "a");
    }

    #[test]
    fn the_port_the_failing_calls_go_to_is_the_callee_culprits_even_with_no_span_saying_so() {
        let mut eof = blamed(
            pattern(
                "a",
                "Get \"http://<ip:port>/v1/x\": EOF",
                &["web"],
                T0,
                &["t1"],
            ),
            "db-api",
            CulpritRole::Callee,
        );
        eof.example = Some("Get \"http://127.0.0.1:9999/v1/x\": EOF".into());
        let cw = SeriesKey::PortState {
            port: 9999,
            side: PortSide::Local,
            state: SocketState::CloseWait,
        };
        let fds = SeriesKey::Process {
            name: "db-api".into(),
            metric: faultline_series::ProcessMetric::OpenFds,
        };
        let mut tracker = IncidentTracker::new();
        let incidents = run(
            &mut tracker,
            T0 + 5_000,
            &[eof],
            vec![anomaly(fds, T0 + 1_000), anomaly(cw.clone(), T0 + 2_000)],
        );
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        assert_eq!(incidents[0].counters[0].anomaly.key, cw);
        assert_eq!(incidents[0].counters[0].relation, Relation::Culprit);
    }

    #[test]
    fn an_incident_seen_from_several_sides_ranks_above_a_lone_counter() {
        let mut timeouts = blamed(
            pattern(
                "a",
                "Get \"<url>\": context deadline exceeded",
                &["orders"],
                T0,
                &["t1"],
            ),
            "stock",
            CulpritRole::Callee,
        );
        timeouts.example =
            Some("Get \"http://127.0.0.1:8082/x\": context deadline exceeded".into());
        // orders' fds rose before stock failed: not a wait on stock, an incident of orders.
        let fds = SeriesKey::Process {
            name: "orders".into(),
            metric: faultline_series::ProcessMetric::OpenFds,
        };
        let mut tracker = IncidentTracker::new();
        let incidents = run(
            &mut tracker,
            T0 + 8_000,
            &[timeouts],
            vec![anomaly(close_wait(8082), T0), anomaly(fds, T0 - 10_000)],
        );
        assert_eq!(incidents.len(), 2, "{incidents:#?}");
        assert_eq!(incidents[0].culprit.service.as_deref(), Some("stock"));
        assert_eq!(incidents[1].culprit.service.as_deref(), Some("orders"));
    }

    /// The Go lab's panic (seed 8806): orders panics (its pattern attributed to it), and
    /// 12 s later its caller's own port shows sockets piling up. The caller's counters have a
    /// culprit, a counter of the culprit and a hint; the panic has a culprit, a pattern and a
    /// hint. The placed error leads, and the caller's socket count alone is hinted nothing
    /// that needs an error text (the lab saw "nothing accepts connections" there).
    #[test]
    fn a_placed_error_outranks_a_later_socket_count_on_a_callers_port() {
        let panic = blamed(
            pattern(
                "p",
                "runtime error: index out of range [<num>] with length <num>",
                &["orders", "gateway"],
                T0,
                &["t1"],
            ),
            "orders",
            CulpritRole::SelfReported,
        );
        let attempt_fails = SeriesKey::ProtocolRate {
            key: "Tcp AttemptFails".into(),
        };
        let mut tracker = IncidentTracker::new();
        let incidents = run(
            &mut tracker,
            T0 + 20_000,
            std::slice::from_ref(&panic),
            vec![
                anomaly(close_wait(8080), T0 + 12_000),
                anomaly(attempt_fails.clone(), T0 + 12_000),
            ],
        );
        assert_eq!(incidents.len(), 2, "{incidents:#?}");
        assert_eq!(incidents[0].culprit.service.as_deref(), Some("orders"));
        assert_eq!(incidents[0].hints[0].rule_id, "panic");
        assert_eq!(incidents[1].culprit.service.as_deref(), Some("gateway"));

        let sockets = SeriesKey::PortTotal {
            port: 8080,
            side: PortSide::Local,
        };
        let mut tracker = IncidentTracker::new();
        let incidents = run(
            &mut tracker,
            T0 + 20_000,
            &[panic],
            vec![
                anomaly(sockets, T0 + 12_000),
                anomaly(attempt_fails, T0 + 12_000),
            ],
        );
        assert_eq!(incidents[0].culprit.service.as_deref(), Some("orders"));
        let callers = &incidents[1];
        assert_eq!(callers.culprit.service.as_deref(), Some("gateway"));
        assert!(callers.hints.is_empty(), "{:#?}", callers.hints);
    }

    /// A callee that stops accepting holds its callers up: the caller's goroutines and fds
    /// pile up on the calls in flight, and the edge above it keeps its clients' connections
    /// (TIME-WAIT on its own port, dated a second before the first failure). They are the
    /// callee's incident's evidence, listed as its callers', not incidents blaming the callers
    /// (the Go lab's listen-overflow raised three). A caller whose goroutines grew before the
    /// callee failed keeps its own incident.
    #[test]
    fn a_callers_pile_up_while_its_callee_hangs_is_the_callees_incident() {
        let dial = blamed(
            pattern(
                "dial",
                "Get \"<url>\": dial tcp <ip:port>: i/o timeout",
                &["orders"],
                T0,
                &["t1"],
            ),
            "stock",
            CulpritRole::Callee,
        );
        let goroutines = SeriesKey::Task {
            target: "orders".into(),
            source: "pprof".into(),
        };
        let fds = SeriesKey::Process {
            name: "orders".into(),
            metric: faultline_series::ProcessMetric::OpenFds,
        };
        let edge_port = SeriesKey::PortState {
            port: 8080,
            side: PortSide::Local,
            state: SocketState::TimeWait,
        };
        let counters = vec![
            anomaly(SeriesKey::ListenQueue { port: 8082 }, T0 - 500),
            anomaly(goroutines.clone(), T0 + 2_000),
            anomaly(fds.clone(), T0 + 3_000),
            anomaly(edge_port.clone(), T0 - 1_000),
        ];
        let incidents = run(
            &mut IncidentTracker::new(),
            T0 + 10_000,
            &[dial.clone()],
            counters,
        );
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        let incident = &incidents[0];
        assert_eq!(incident.culprit.service.as_deref(), Some("stock"));
        let relation = |key: &SeriesKey| {
            incident
                .counters
                .iter()
                .find(|c| &c.anomaly.key == key)
                .map(|c| (c.relation, c.relation_text.clone()))
                .unwrap_or_else(|| panic!("{key:?} is not listed: {incident:#?}"))
        };
        assert_eq!(relation(&goroutines).0, Relation::Peer);
        assert_eq!(relation(&fds).0, Relation::Peer);
        let (edge, text) = relation(&edge_port);
        assert_eq!(edge, Relation::Peer, "{text}");
        assert!(
            text.contains("gateway") && text.contains("through"),
            "{text}"
        );
        assert_eq!(
            incident.counters[0].anomaly.key,
            SeriesKey::ListenQueue { port: 8082 },
            "the culprit's own counter leads"
        );

        // orders' goroutines grew 20 s before stock failed: not a wait on stock.
        let counters = vec![
            anomaly(SeriesKey::ListenQueue { port: 8082 }, T0 - 500),
            anomaly(goroutines.clone(), T0 - 20_000),
        ];
        let incidents = run(&mut IncidentTracker::new(), T0 + 10_000, &[dial], counters);
        assert_eq!(incidents.len(), 2, "{incidents:#?}");
        assert!(incidents
            .iter()
            .any(|i| i.culprit.service.as_deref() == Some("orders")));
    }

    /// A hung callee fails its callers' requests in two ways: the dial times out while its
    /// listen queue is full, the connections it queued wait for headers until the deadline.
    /// Two error kinds, two patterns, one incident that counts each failed request once: a
    /// request that failed both ways (its retry) is in both patterns' counts; the untraced
    /// echo retells failures already counted.
    #[test]
    fn an_incident_counts_each_failed_request_once_across_its_patterns() {
        let mut wait = blamed(
            pattern(
                "wait",
                "Get \"<url>\": context deadline exceeded",
                &["orders"],
                T0,
                &["t1", "t2"],
            ),
            "stock",
            CulpritRole::Callee,
        );
        wait.count = 500;
        // 7 of its requests had failed with the dial timeout first; 3 with a pattern of
        // another incident (not this one's to take off).
        wait.failed_before = vec![("dial".into(), 7), ("elsewhere".into(), 3)];
        let mut dial = blamed(
            pattern(
                "dial",
                "Get \"<url>\": dial tcp <ip:port>: i/o timeout",
                &["orders"],
                T0 + 100,
                &["t2", "t3"],
            ),
            "stock",
            CulpritRole::Callee,
        );
        dial.count = 106;
        let mut gin = pattern(
            "gin",
            "GET <url>: <num> Bad Gateway",
            &["gateway"],
            T0 - 200,
            &[],
        );
        gin.example = Some("GET http://127.0.0.1:8081/v1/orders/7: 502 Bad Gateway".into());
        gin.status_echo = true;
        gin.count = 599;
        let incidents = run(
            &mut IncidentTracker::new(),
            T0 + 5_000,
            &[wait, dial, gin],
            vec![],
        );
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        let ids: Vec<&str> = incidents[0]
            .patterns
            .iter()
            .map(|p| p.id.as_str())
            .collect();
        assert_eq!(ids, ["wait", "dial", "gin"]);
        assert_eq!(incidents[0].failures, 500 + 106 - 7);
    }

    /// The demo's EOF (its second incident): gateway's Gin line `Error #01: GET
    /// http://127.0.0.1:8081/v1/orders/7: 502 Bad Gateway` carries no trace id, so its
    /// pattern shares no trace with the EOF it echoes and has no culprit. It joins the EOF's
    /// incident (gateway calls orders, which calls the culprit stock), listed after it.
    #[test]
    fn an_untraced_echo_joins_the_incident_of_the_failure_it_echoes() {
        let eof = blamed(
            pattern(
                "eof",
                "Get \"<url>\": EOF",
                &["orders", "gateway"],
                T0,
                &["t1", "t2"],
            ),
            "stock",
            CulpritRole::Callee,
        );
        let mut gin = pattern(
            "gin",
            "GET <url>: <num> Bad Gateway",
            &["gateway"],
            T0 - 200,
            &[],
        );
        gin.example = Some("GET http://127.0.0.1:8081/v1/orders/7: 502 Bad Gateway".into());
        gin.status_echo = true;
        let mut tracker = IncidentTracker::new();
        let incidents = run(
            &mut tracker,
            T0 + 5_000,
            &[eof.clone(), gin.clone()],
            vec![],
        );
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        let ids: Vec<&str> = incidents[0]
            .patterns
            .iter()
            .map(|p| p.id.as_str())
            .collect();
        assert_eq!(ids, ["eof", "gin"]);
        assert_eq!(incidents[0].culprit.service.as_deref(), Some("stock"));
        assert_eq!(incidents[0].hints[0].rule_id, "callee-closed");

        // While the callee fails it sends no span: orders' calls to it are known by port.
        let mut services = chain();
        services[1].callees.clear();
        services[1].called_ports = vec![8082];
        services[2].callers.clear();
        let incidents = run_with(
            &mut IncidentTracker::new(),
            T0 + 5_000,
            &[eof.clone(), gin.clone()],
            report(vec![]),
            &CounterHistory::default(),
            &services,
            &HintRules::builtin().unwrap(),
        );
        assert_eq!(incidents.len(), 1, "{incidents:#?}");

        // Without the address, the status report of a service upstream of the culprit.
        let mut bare = gin.clone();
        bare.example = Some("request failed: 502 Bad Gateway".into());
        let incidents = run(
            &mut IncidentTracker::new(),
            T0 + 5_000,
            &[eof.clone(), bare],
            vec![],
        );
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        // An untraced transport error naming the callee's address joins too.
        let mut named = pattern("named", "Get \"<url>\": EOF", &["gateway"], T0, &[]);
        named.example = Some("Get \"http://127.0.0.1:8081/v1/orders/7\": EOF".into());
        let incidents = run(
            &mut IncidentTracker::new(),
            T0 + 5_000,
            &[eof.clone(), named],
            vec![],
        );
        assert_eq!(incidents.len(), 1, "{incidents:#?}");

        // Not an echo: the culprit's own status report (it calls no one below itself), a
        // message that is no status and names no address, an echo a minute and more away.
        let mut own = gin.clone();
        own.services = vec!["stock".into()];
        own.example = Some("upstream said 503 Service Unavailable".into());
        let mut other = pattern("other", "login failed", &["gateway"], T0, &[]);
        other.example = Some("login failed".into());
        let mut late = gin.clone();
        late.id = "late".into();
        late.onset_unix_ms = T0 + GROUP_WINDOW_MS + 1_000;
        late.last_seen_unix_ms = late.onset_unix_ms;
        for p in [own, other, late] {
            let incidents = run(
                &mut IncidentTracker::new(),
                T0 + GROUP_WINDOW_MS + 5_000,
                &[eof.clone(), p.clone()],
                vec![],
            );
            assert_eq!(incidents.len(), 2, "{}: {incidents:#?}", p.id);
        }
        // An echo of a service that does not call the culprit stays apart: gateway's lookups
        // fail (its own culprit), and stock's untraced 502 is not about it.
        let dns = blamed(
            pattern(
                "dns",
                "dial tcp: lookup <id>: no such host",
                &["gateway"],
                T0,
                &["t3"],
            ),
            "gateway",
            CulpritRole::Caller,
        );
        let mut stocks = gin.clone();
        stocks.services = vec!["stock".into()];
        stocks.example = Some("GET http://127.0.0.1:8082/x: 502 Bad Gateway".into());
        let incidents = run(
            &mut IncidentTracker::new(),
            T0 + 5_000,
            &[dns, stocks],
            vec![],
        );
        assert_eq!(incidents.len(), 2, "{incidents:#?}");
    }

    #[test]
    fn node_wide_series_alone_are_node_activity_and_join_a_known_services_incident() {
        let mut tracker = IncidentTracker::new();
        let segs = anomaly(
            SeriesKey::ProtocolRate {
                key: "Tcp InSegs".into(),
            },
            T0,
        );
        assert!(run(&mut tracker, T0 + 5_000, &[], vec![segs.clone()]).is_empty());
        let overflows = anomaly(
            SeriesKey::ProtocolRate {
                key: "TcpExt ListenOverflows".into(),
            },
            T0,
        );
        let incidents = run(
            &mut tracker,
            T0 + 6_000,
            &[],
            vec![segs.clone(), overflows.clone()],
        );
        assert!(incidents.is_empty(), "{incidents:#?}");
        assert_eq!(tracker.node_signals().len(), 2);
        // With a known service's accept queue filling, they are its incident.
        let queue = anomaly(SeriesKey::ListenQueue { port: 8082 }, T0 + 1_000);
        let incidents = run(&mut tracker, T0 + 7_000, &[], vec![segs, overflows, queue]);
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        assert_eq!(incidents[0].culprit.service.as_deref(), Some("stock"));
        assert_eq!(incidents[0].hints[0].rule_id, "listen-overflow");
    }

    #[test]
    fn an_incident_keeps_its_id_while_it_goes_on_and_ends_inactive() {
        let mut tracker = IncidentTracker::new();
        let p = blamed(
            pattern("a", "x: EOF", &["orders"], T0, &["t1"]),
            "stock",
            CulpritRole::Callee,
        );
        let first = run(&mut tracker, T0 + 5_000, std::slice::from_ref(&p), vec![])[0].clone();
        // A counter joins later; the id and onset stay.
        let later = run(
            &mut tracker,
            T0 + 20_000,
            std::slice::from_ref(&p),
            vec![anomaly(close_wait(8082), T0 + 15_000)],
        )[0]
        .clone();
        assert_eq!(later.id, first.id);
        assert_eq!(later.onset_unix_ms, T0);
        assert_eq!(later.counters.len(), 1);
        // The pattern stops emerging and the counter leaves the detector's window: kept,
        // inactive, with what it had.
        let ended = run(&mut tracker, T0 + 200_000, &[], vec![]);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].id, first.id);
        assert!(!ended[0].active);
        assert_eq!(ended[0].counters.len(), 1);
        // Gone after the retention.
        assert!(run(&mut tracker, T0 + 200_000 + RETAIN_MS, &[], vec![]).is_empty());
    }

    #[test]
    fn a_counter_still_out_of_its_range_keeps_the_incident_active_after_the_window() {
        let key = close_wait(8082);
        let services = chain();
        let rules = HintRules::builtin().unwrap();
        let mut tracker = IncidentTracker::new();
        let history = |last: f64| CounterHistory {
            start_unix_ms: T0,
            step_ms: 1000,
            series: vec![crate::history::CounterSeries {
                key: key.clone(),
                points: vec![Some(100.0), Some(last), Some(last), Some(last)],
            }],
        };
        let first = run_with(
            &mut tracker,
            T0 + 5_000,
            &[],
            report(vec![anomaly(key.clone(), T0)]),
            &history(100.0),
            &services,
            &rules,
        );
        let still = run_with(
            &mut tracker,
            T0 + 300_000,
            &[],
            report(vec![]),
            &history(140.0),
            &services,
            &rules,
        );
        assert_eq!(still[0].id, first[0].id);
        assert!(still[0].active);
        assert_eq!(still[0].last_active_unix_ms, T0 + 300_000);
        assert_eq!(still[0].counters[0].anomaly.latest, 140.0);
        let back = run_with(
            &mut tracker,
            T0 + 310_000,
            &[],
            report(vec![]),
            &history(1.0),
            &services,
            &rules,
        );
        assert!(!back[0].active);
    }

    #[test]
    fn the_error_rate_of_the_culprits_caller_joins_rather_than_opening_an_incident() {
        let mut tracker = IncidentTracker::new();
        let p = blamed(
            pattern("a", "x: EOF", &["orders"], T0, &["t1"]),
            "stock",
            CulpritRole::Callee,
        );
        let errors = anomaly(
            SeriesKey::ServiceTraffic {
                service: "orders".into(),
                metric: TrafficMetric::Errors,
            },
            T0 + 1_000,
        );
        let incidents = run(&mut tracker, T0 + 5_000, &[p], vec![errors]);
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        assert_eq!(incidents[0].counters[0].relation, Relation::Peer);
    }

    #[test]
    fn addresses_and_names_are_read_from_error_texts() {
        assert_eq!(
            peer_address("Get \"http://127.0.0.1:8082/v1/x\": EOF").as_deref(),
            Some("127.0.0.1:8082")
        );
        assert_eq!(
            peer_address("read tcp 127.0.0.1:5000->127.0.0.1:8082: read: connection reset by peer")
                .as_deref(),
            Some("127.0.0.1:8082")
        );
        assert_eq!(peer_address("read tcp <IP>:<NUM>-><IP>:<NUM>: x"), None);
        assert_eq!(
            peer_address("http: Accept error: accept tcp 127.0.0.1:8082: accept4: too many open files; retrying in 5ms")
                .as_deref(),
            Some("127.0.0.1:8082")
        );
        assert_eq!(
            looked_up_host("dial tcp: lookup api.invalid on 127.0.0.53:53: no such host")
                .as_deref(),
            Some("api.invalid")
        );
        assert_eq!(stable_id("a", 1_000), stable_id("a", 1_999));
        assert_ne!(stable_id("a", 1_000), stable_id("b", 1_000));
    }
}
