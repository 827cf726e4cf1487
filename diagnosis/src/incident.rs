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
//! failing calls name it), or when one pattern failed mostly in requests the other had
//! already failed (the same failures told again, as a restart cancels the requests a hung
//! service held); two different culprits are never merged, however the
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
//! it closes on its own (a callee closing without an answer) and the TIME-WAIT is its own —
//! as long as it closes as a storm does (below: else it is churn beside the failures). Node-wide series (protocol rates,
//! node totals, sockstat) name no culprit: they join every incident that started within the
//! window, marked node-wide, and never open an incident of their own. Service traffic
//! (requests, failures) joins an incident of its service or a peer within the window; alone
//! it is node activity. So is a rise of a service's goroutines that came with as many more
//! open fds (connections its callers opened: a burst of load, a stalling node), where a leak
//! adds goroutines without connections. So is a port's TIME-WAIT rising by less than
//! [`MIN_STORM_RISE`]: a pooled client's churn, where a storm closes a connection per call.
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
//! agent's own scrapes of goroutine pages. The same holds for the connections of a
//! service's clients when none of them is a known service (TIME-WAIT on its port, CLOSE-WAIT
//! or sockets towards it, with no caller's span and no service calling the port): an
//! untraced client — a load balancer, a traffic driver, a curl loop — connects as it likes,
//! and such a change names no culprit. Seen on the Go lab: the traffic driver's pool towards
//! the edge raised culprit-less incidents on a quiet node and beside the dns fault.
//!
//! Bounds: at most [`MAX_INCIDENTS`] incidents are kept (the oldest inactive ones go
//! first); each lists at most [`MAX_PATTERNS`] patterns, [`MAX_COUNTERS`] counters and
//! [`MAX_TRACES`] trace ids. Grouping is quadratic in the signals of one call, which are
//! bounded by the emerging patterns and the anomalies (one per series).
//!
//! Files: this one holds the documents and the [`IncidentTracker`] that keeps incidents
//! across updates; `grouping` decides which signals are one incident, `services` which known
//! service a series or a failing call belongs to, `build` writes one group's incident
//! (culprit, related counters, hints, title, id), and `addresses` reads the addresses and
//! host names error texts name.

mod addresses;
mod build;
mod connections;
mod grouping;
pub mod recovery;
mod services;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use faultline_series::{PortSide, SeriesKey, SocketState, TrafficMetric, AGENT_PROCESS};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::anomaly::{head, AnomalyReport, CounterAnomaly, Direction};
use crate::hints::{CulpritRole, Hint, HintRules};
use crate::history::CounterHistory;
use crate::text::number;

pub use services::{task_owner, SeriesOfInterest};

use build::{build, lead_first, order_counters, Title};
use connections::follows_connections;
use grouping::{
    group, involves, join_untraced_echoes, join_upstream_waits, same_port, Signal, SignalWhat,
};
use services::{
    calls, closing_callee, counter_culprit, downstream, listener, owner, peers, unknown_clients,
};

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
/// How long before a failure's onset a caller's counter may be dated and still be waiting on
/// it: series are sampled once a second and a change is dated where its fit begins, a second
/// or two before the first failed call is reported (seen on the Go lab's listen-overflow: the
/// edge's TIME-WAIT dated 1 s before the callee's first failure).
pub const UPSTREAM_SLACK_MS: i64 = 5_000;

/// How long before an incident's first signal a node-wide change may start and still have
/// moved with it: a change is dated where its fit begins, a census or two before the series
/// of a port it is the sum of. Before that, it moved with something else: seen on the Go
/// lab's crash, `CLOSE-WAIT (all ports) rose 2.5 → 40 in 59 s`, dated at the redeploy 49 s
/// before the callee was killed, was listed as the incident's evidence.
pub const NODE_WIDE_LEAD_MS: i64 = 15_000;

/// Whether a node-wide change at `changed_at` moved with an incident whose first signal was
/// at `onset`: from [`NODE_WIDE_LEAD_MS`] before it to [`GROUP_WINDOW_MS`] after it.
fn node_wide_near(onset: i64, changed_at: i64) -> bool {
    (onset - NODE_WIDE_LEAD_MS..=onset + GROUP_WINDOW_MS).contains(&changed_at)
}

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
    /// Of `count`, the records without a trace id (one each).
    pub untraced: u64,
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
    /// Where most of its goroutines wait, as last read from that dump ("300 of 303 goroutines
    /// wait in [chan send] at main.leak.func1 (main.go:13) ..."), when it was read.
    pub top_stack: Option<String>,
    /// Its watched processes' connections to the node's listening ports, as the newest
    /// census that read them saw them (one entry per port).
    pub connections_to: Vec<ConnectionsTo>,
}

/// A service's connections to one of the node's listening ports, read from its processes'
/// descriptors (at each socket census, and every few tens of milliseconds while a storm is
/// suspected): who opens a connection per call, where TIME-WAIT sockets belong to no process
/// and spans name a caller only when one traced service calls the port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionsTo {
    /// The listening port.
    pub port: u16,
    /// Connections held to it at the latest read.
    pub held: u32,
    /// Of those, how many the census before did not see.
    pub new: u32,
    /// Connections to it seen held and then gone over the last minute.
    pub closed_1m: u32,
    /// Of those, how many were seen at one read only (gone by the next).
    pub short_lived_1m: u32,
    /// Distinct connections to it over the last minute (held or closed).
    pub distinct_1m: u32,
    /// Reads of the service's descriptors over the last minute.
    pub reads_1m: u32,
    /// Sockets of the service (to any port, of any kind) seen at one read only over the last
    /// minute that nothing placed while they were open: the looks catch more than the dumps,
    /// kept within the CPU budget, place. The same in each of the service's entries.
    pub unplaced_short_lived_1m: u32,
    /// Sockets of the service seen at one read only over the last minute that were placed
    /// as no connection to the node's listeners (accepted, or to elsewhere). The same in each
    /// of the service's entries.
    pub elsewhere_short_lived_1m: u32,
    /// Local ports of the connections held, then of the latest closed.
    pub local_ports: Vec<u16>,
    /// When the descriptors were last read (Unix ms).
    pub counted_at_unix_ms: i64,
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
    /// The agent's own listening ports (its web and OTLP listeners): their sockets are the
    /// agent's own traffic (API polls, OTLP posts), neither a service's signal nor another
    /// program's activity. Seen on every Go lab run: the driver's polls of the API left
    /// `TIME-WAIT :<web port>` node signals.
    pub agent_ports: &'a [u16],
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
    /// The services the incident's patterns were seen in other than the culprit: the callers
    /// that reported its failures (the patterns' "seen by"). When no culprit is known, every
    /// service they were seen in, so a person knows where to look.
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
    /// Of `count`, the records without a trace id (one each): beside failures counted by
    /// trace, among the incident's `untraced_records`, not its `failures`.
    #[serde(default)]
    pub untraced: u64,
    /// How its occurrences count in the incident: among its `failures`, among its
    /// `untraced_records`, or not at all (an untraced echo of failures counted already).
    #[serde(default)]
    pub counted_as: CountedAs,
    /// The pattern's count and untraced records before this incident's run: occurrences of
    /// earlier runs, which the incidents of those runs hold. `count` and `untraced` are
    /// counted from there (the pattern's own counts are its lifetime's).
    #[serde(skip)]
    pub counted_before: (u64, u64),
}

/// How an incident's pattern counts in it (see [`Incident::failures`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CountedAs {
    /// Its occurrences are failed requests of the incident.
    #[default]
    Failures,
    /// A pattern no trace holds beside patterns counted by trace: its records are the
    /// incident's `untraced_records`.
    Untraced,
    /// An untraced echo of failures the incident counts already: not counted again.
    Echo,
}

/// A pattern's counts as the patterns answer them now (see [`Incident::recount`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PatternCounts {
    /// Occurrences counted (the pattern's `total_count`).
    pub count: u64,
    /// Of `count`, the records without a trace id (its `untraced_count`).
    pub untraced: u64,
    /// Its occurrences in traces that had already failed with another pattern, by that
    /// pattern's id.
    pub failed_before: Vec<(String, u64)>,
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
    /// Evidence beside the fault rather than the fault's own: a service's traffic, its
    /// callers' connections to it or their waits on it, a pool's TIME-WAIT churn, goroutines
    /// that followed new connections, a port no known service owns, a node-wide total. Such
    /// a counter is listed with the incident but never keeps it active: it moves with the
    /// fault and with much else (the heal itself, the next fault, load). Seen on the unseen
    /// lab: a healed close-wait incident stayed active for minutes on a pool's churn.
    #[serde(default)]
    pub supporting: bool,
    /// Whether its change is still going on: it still moves away from its usual level (a
    /// leak's count climbing, a TIME-WAIT storm still closing connections faster than
    /// before, a rate still out of its range), or it is pinned at its limit. A counter that
    /// stopped moving away no longer keeps its incident active, even while it has not come
    /// back yet (TIME-WAIT sockets stay a minute after the storm stopped).
    #[serde(default)]
    pub moving_away: bool,
    /// The anomaly.
    pub anomaly: CounterAnomaly,
}

/// Where an incident stands (see [`recovery`]).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    /// Its requests are failing or its own counters are still moving away from their usual
    /// levels.
    #[default]
    Active,
    /// Its patterns stopped failing and its counters stopped moving away: the fault looks
    /// fixed, and the incident waits to be sure (its counters coming back, or a bounded time).
    Recovering,
    /// Over.
    Ended,
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
    /// Whether it is not over yet: `true` while it is [`IncidentState::Active`] or
    /// [`IncidentState::Recovering`], `false` once it has [`IncidentState::Ended`].
    pub active: bool,
    /// Where it stands, by its own evidence (see [`recovery`]): its failures or its counters'
    /// change still going on (`active`), stopped and waiting to be sure (`recovering`), or
    /// over (`ended`).
    #[serde(default)]
    pub state: IncidentState,
    /// While it is recovering or once it has ended: when its fault stopped — its last
    /// failure, or the last time one of its own counters still moved away from its usual
    /// level, whichever is later (Unix ms). `null` while it is active.
    #[serde(default)]
    pub recovering_since_unix_ms: Option<i64>,
    /// When it ended (Unix ms): when its fault stopped, as `recovering_since_unix_ms`; `null`
    /// while it is active or recovering.
    #[serde(default)]
    pub ended_unix_ms: Option<i64>,
    /// When its fault last came back after it had ended (Unix ms): its patterns failed again
    /// in the same run (within a minute of their last failure) or its counters' change moved
    /// away again. `null` if it never did. A fault back after a longer silence, or a new
    /// change of a counter that went back, is a new incident.
    #[serde(default)]
    pub reopened_unix_ms: Option<i64>,
    /// Failed requests, each counted once: its patterns' occurrences (one per trace), less
    /// those in traces that had already failed with another of its patterns (a request that
    /// failed in two ways is in both). The untraced echoes that joined it retell these
    /// failures and add nothing. When some of its patterns were seen in traces, its patterns
    /// seen in none are not failed requests counted here but [`Incident::untraced_records`];
    /// when none of its patterns was seen in a trace, each record is the only word of its
    /// failure and counts one. 0 for an incident of counters only.
    #[serde(default)]
    pub failures: u64,
    /// Records of its patterns that no trace holds, beside patterns whose failures are
    /// counted by trace: not in [`Incident::failures`]. Such a line is no request of its own
    /// (a server's `http: Accept error: … too many open files`, a service's own exporter
    /// failing) or retells a failed request the traces already count; one each here. Seen on
    /// the unseen lab's close-wait fault: those lines made the incident's failures 916 for 848
    /// failed requests, while its traced pattern counted them exactly.
    #[serde(default)]
    pub untraced_records: u64,
    /// Whether it was already going on when this agent started: its onset is the one a previous
    /// run of the agent recorded (restarted during an outage), or, when the agent had no record
    /// of it, the agent's first look (onset unknown: some time before the start).
    #[serde(default)]
    pub ongoing_at_start: bool,
    /// Some of the traces its patterns occurred in.
    pub trace_ids: Vec<String>,
}

impl Incident {
    /// Brings its patterns' counts, failures and untraced records up to the patterns' counts
    /// now (`current`, by pattern id), with the rules it was built with. The diagnosis runs
    /// about once a second, and seconds apart on a loaded node, while a pattern's page counts
    /// every failure as it arrives: seen on the unseen lab, an incident said 462 failures of
    /// a pattern whose own count was 707 at the same moment (a ten-second-old answer at load
    /// 26). Left as it was when a pattern is not answered (renamed or evicted since) or when
    /// its patterns were cut at [`MAX_PATTERNS`] (the rest are not listed to recount).
    ///
    /// A pattern keeps the count it had here once it is no longer this incident's: the
    /// incident ended, or the pattern was last seen over [`ACTIVE_MS`] before the incident
    /// was last active. Its later occurrences are another fault's (an echo such as
    /// `metadata answered 502` comes back with every fault below it): counted here, a healed
    /// incident's failures grew with the next fault's.
    pub fn recount(&mut self, current: impl Fn(&str) -> Option<PatternCounts>) {
        if self.patterns.len() >= MAX_PATTERNS {
            return;
        }
        let Some(now): Option<Vec<PatternCounts>> =
            self.patterns.iter().map(|p| current(&p.id)).collect()
        else {
            return;
        };
        let (active, last_active) = (self.active, self.last_active_unix_ms);
        let held = |p: &IncidentPattern| active && p.last_seen_unix_ms >= last_active - ACTIVE_MS;
        // Counted from this run's start (see [`IncidentPattern::counted_before`]).
        let run = |p: &IncidentPattern, c: &PatternCounts| {
            (
                c.count.saturating_sub(p.counted_before.0),
                c.untraced.saturating_sub(p.counted_before.1),
            )
        };
        let (failures, untraced) = build::tally(self.patterns.iter().zip(&now).map(|(p, c)| {
            (
                p.id.as_str(),
                p.counted_as,
                if held(p) {
                    run(p, c)
                } else {
                    (p.count, p.untraced)
                },
                c.failed_before.as_slice(),
            )
        }));
        for (p, c) in self.patterns.iter_mut().zip(now) {
            if held(p) {
                (p.count, p.untraced) = run(p, &c);
            }
        }
        self.failures = failures;
        self.untraced_records = untraced;
    }
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
    /// Whether the latest update judged a storm from one census (see
    /// [`IncidentTracker::wants_a_census`]).
    wants_a_census: bool,
    /// Members (pattern ids and series keys) of each kept incident, by id, each with the run or
    /// change the incident last held it in, listed or not: how a new grouping finds the
    /// incident it continues.
    members: BTreeMap<String, Members>,
    /// When the own counters of each kept incident last moved away from their usual levels,
    /// by id (see [`recovery`]).
    last_moving: BTreeMap<String, i64>,
    /// How each kept incident's title was built, by id: a kept incident's title is told again
    /// from its counters as they are read again.
    titles: BTreeMap<String, Title>,
    /// The kept incidents' patterns' occurrences in traces that had already failed with
    /// another pattern (see [`PatternInput::failed_before`]), as last given: a pattern that no
    /// longer emerges is still counted once per failure in the incident that keeps it.
    failed_before: BTreeMap<String, Vec<(String, u64)>>,
}

/// A member of an incident.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Member {
    Pattern(String),
    Series(SeriesKey),
}

/// Which signal a member was when an incident held it: a pattern's run, a series' change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Span {
    /// A pattern's run: its onset and its latest occurrence then.
    Run { onset: i64, last_seen: i64 },
    /// A series' change: when it left its band, and whether it was still out of it.
    Change { changed_at: i64, active: bool },
}

/// An incident's members, each with the signal it was.
type Members = BTreeMap<Member, Span>;

/// The members `inc` lists, with what they are now: a kept incident's counters are re-read,
/// so a change that came back is no longer active.
fn listed_members(inc: &Incident) -> impl Iterator<Item = (Member, Span)> + '_ {
    let patterns = inc.patterns.iter().map(|p| {
        (
            Member::Pattern(p.id.clone()),
            Span::Run {
                onset: p.onset_unix_ms,
                last_seen: p.last_seen_unix_ms,
            },
        )
    });
    let counters = inc.counters.iter().filter(|c| !c.supporting).map(|c| {
        (
            Member::Series(c.anomaly.key.clone()),
            Span::Change {
                changed_at: c.anomaly.changed_at_unix_ms,
                active: c.anomaly.active,
            },
        )
    });
    patterns.chain(counters)
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

    /// The incidents as of the last update: active first, then those whose requests are
    /// failing now (an error pattern seen within [`ACTIVE_MS`]), then those with an error
    /// pattern whose culprit is known, then those resting on more kinds of evidence (a known culprit,
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

    /// Whether the latest update found a rise of a service port's TIME-WAIT too slow for a
    /// storm while the socket census had counted it only once since its change: that pace is
    /// a lower bound (the storm may have begun just before that census), and a fresh census
    /// tells. The agent then asks the sampler for one (`CounterStore::ask_for_census`). Seen
    /// on the unseen lab beside 25,000 other TIME-WAIT sockets, counted every 4 s: the first
    /// census after the storm's start showed "rose by 39 at 9.8 a second against 25 calls a
    /// second", and the storm was an incident only at the census after it, 7–8 s after its
    /// start.
    pub fn wants_a_census(&self) -> bool {
        self.wants_a_census
    }

    /// Groups the signals of `input` into incidents, continues the kept ones and returns
    /// them all (see [`IncidentTracker::incidents`] for the order).
    pub fn update(&mut self, input: &DiagnosisInput<'_>, rules: &HintRules) -> &[Incident] {
        let now = input.now_unix_ms;
        for p in input.patterns {
            self.failed_before
                .insert(p.id.clone(), p.failed_before.clone());
        }
        let mut signals = Vec::new();
        let mut node_wide = Vec::new();
        let mut secondary = Vec::new();
        let mut unowned = Vec::new();
        let mut untraced_clients = Vec::new();
        self.wants_a_census = false;
        for p in input.patterns {
            signals.push(Signal {
                onset: p.onset_unix_ms,
                culprit: p
                    .culprit
                    .as_ref()
                    .map(|c| (c.service.clone(), Some(c.role), c.reasoning.clone())),
                what: SignalWhat::Pattern(p),
                echo: false,
                supporting: false,
            });
        }
        for a in &input.anomalies.anomalies {
            if a.key.port().is_some_and(|p| input.agent_ports.contains(&p)) {
                continue;
            }
            // The agent's own process is the agent's business (its health says when it is in
            // trouble), not a service's signal. Seen on the demo, whose services run inside
            // the agent: the close-wait leak's fds were an incident "in faultline".
            if matches!(&a.key, SeriesKey::Process { name, .. } if name == AGENT_PROCESS) {
                continue;
            }
            if a.kind.is_node_wide() {
                node_wide.push(a);
                continue;
            }
            if owner(&a.key, input.services).is_none() {
                unowned.push(a);
                continue;
            }
            let closing = closing_callee(a, input.patterns, input.services);
            if closing.is_none() {
                if let Some(service) = unknown_clients(&a.key, input.services) {
                    untraced_clients.push((a, service));
                    continue;
                }
            }
            let culprit = closing
                .clone()
                .or_else(|| counter_culprit(&a.key, input.services));
            // A callee's own TIME-WAIT is its closing (the fault's evidence) only when it
            // closes as a storm does, a connection per call; fewer closes are its pooled
            // clients' churn beside the failures, also while they fail. Seen on the Go lab's
            // panic in the edge (recovered, answered 500, nothing closed): the traffic
            // driver's pool recycling connections raised `TIME-WAIT :<edge>` 25 → 46 in the
            // fault and 46 → 92 after the fix at about one close a second, and as the
            // incident's own counter it flapped the healed incident active ↔ recovering
            // three times and kept it from ending for over a minute.
            let churn = churn(a, input.services, input.history)
                .inspect(|churn| self.wants_a_census |= churn.wants_a_census);
            let churn_service = churn
                .is_some()
                .then(|| {
                    culprit
                        .as_ref()
                        .map(|c| c.0.clone())
                        .or_else(|| owner(&a.key, input.services))
                })
                .flatten();
            let signal = Signal {
                onset: a.changed_at_unix_ms,
                culprit,
                what: SignalWhat::Counter(a),
                echo: false,
                supporting: false,
            };
            // A service's traffic says that something changed for it, not where: its
            // requests fall when its callers cannot reach it (their lookups fail), its
            // failures rise with any fault below it. Goroutines that follow new connections
            // say that its callers opened more, not that it leaks.
            if let SeriesKey::ServiceTraffic { service, .. } = &a.key {
                secondary.push((signal, service.clone(), Secondary::Traffic));
            } else if let Some(service) = callers_connections(&a.key, input.services) {
                secondary.push((signal, service, Secondary::Callers));
            } else if let Some(service) = churn_service {
                let (why, explains) = churn.map(|c| (c.why, c.explains)).unwrap_or_default();
                secondary.push((signal, service, Secondary::Churn(why, explains)));
            } else if let Some((service, why)) =
                follows_connections(a, input.services, input.history)
            {
                secondary.push((signal, service, Secondary::Follows(why)));
            } else {
                signals.push(signal);
            }
        }
        let mut groups = group(&signals);
        join_untraced_echoes(&mut groups, &mut signals, input.services);
        join_upstream_waits(&mut groups, &mut signals, input.services, input.history);
        // Service traffic, and goroutines following connections, join a group of their
        // service or a peer that started within the window (a fall of requests, also of a
        // service further down from the culprit); alone, they are node activity: traffic
        // varies, and seen on the Go lab, a start-up's failed calls raised an incident that
        // the fault's signals then continued.
        let mut node_signals = Vec::new();
        for (s, service, follows) in secondary {
            let fall = matches!(&s.what, SignalWhat::Counter(a) if a.direction == Direction::Fall);
            let home = groups.iter().position(|g| {
                g.iter().any(|&i| {
                    let o = &signals[i];
                    (o.onset - s.onset).abs() <= GROUP_WINDOW_MS
                        && (involves(o, &service)
                            // The same port's other series: a callee known only by the port
                            // its callers call is nobody's peer by spans.
                            || same_port(o, &s)
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
                    reason: match follows {
                        Secondary::Churn(why, explains) => format!(
                            "{service}: {why}, with no error pattern or counter of it, its \
                             callers or its callees within a minute; {explains}"
                        ),
                        Secondary::Follows(why) => format!(
                            "{service}: {why}, with no error pattern or counter of it, its \
                             callers or its callees within a minute; its callers opened more \
                             connections (a burst of load, a stall of the node), and a leak adds \
                             goroutines without connections"
                        ),
                        Secondary::Callers => format!(
                            "{service}: its callers' connections to it changed with no error \
                             pattern or counter of it, its callers or its callees within a \
                             minute; callers hold more connections with more load or slower \
                             answers, so it is evidence beside a fault, not one by itself"
                        ),
                        Secondary::Traffic => format!(
                            "{service}: its traffic changed with no error pattern or counter of \
                             it, its callers or its callees within a minute; a service's traffic \
                             varies (a start-up's failed calls, a client's burst), so it is \
                             evidence beside a fault, not one by itself"
                        ),
                    },
                    anomaly: (*a).clone(),
                }),
                (home, _) => {
                    let mut s = s;
                    s.supporting = true;
                    // Joining a group, a fall of requests or goroutines following
                    // connections name no culprit of their own: the group's signals say where
                    // the fault lives.
                    if fall || follows != Secondary::Traffic {
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
        // A port no known service owns, or the connections of a service's clients none of
        // which is a known service, joins a group one of whose signals is about that port;
        // alone, it is node activity.
        let unowned = unowned
            .into_iter()
            .map(|a| (a, None))
            .chain(untraced_clients.into_iter().map(|(a, s)| (a, Some(s))));
        for (a, clients_of) in unowned {
            let s = Signal {
                onset: a.changed_at_unix_ms,
                culprit: None,
                what: SignalWhat::Counter(a),
                echo: false,
                supporting: true,
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
                    reason: match (clients_of, a.key.port()) {
                        (Some(service), Some(p)) => format!(
                            "port {p} of {service}: these are its clients' connections, and \
                             no known service calls it (no caller's span, no configured \
                             caller) — an untraced client such as a load balancer, a traffic \
                             driver or a curl loop, whose way of connecting is its own; no \
                             error pattern names the port"
                        ),
                        (_, Some(p)) => format!(
                            "port {p}: no known service listens there or calls it, and no \
                             error pattern names it — another program's activity on the node"
                        ),
                        (_, None) => "no known service owns this series".to_owned(),
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
                    .map(|&i| signals[i].onset)
                    .min()
                    .is_some_and(|onset| node_wide_near(onset, a.changed_at_unix_ms))
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

        // Patterns a kept incident held in an earlier run (they came back after a minute of
        // silence): an echo further up the chain (`metadata answered 502`, one per failed
        // request whatever failed below) is one pattern across faults, and its count holds
        // every fault's failures. By trace, its occurrences now retell the failures whose
        // traces it shares, which those patterns count; by time, those before belong to the
        // incidents that held it then (which keep the counts they had, see
        // [`Incident::recount`]). Seen on the unseen lab: after a close-wait leak, a killed
        // callee's incident was titled by the echo and would have counted its 147 earlier
        // failures as its own. It stays retold for the rest of its run: an incident that holds
        // it as an echo now (same onset: the same run) says so, whatever became of the
        // incident that held it before. Seen on the unseen lab, one agent through all faults:
        // the slow callee's incident, rebuilt from its timeout pattern (still emerging) without
        // the echo, no longer held it after one update, and the close-wait leak's incident then
        // counted the echo's 200 failures of the slow fault as its own (409 for 213 failed
        // requests).
        let retold: BTreeSet<&str> = input
            .patterns
            .iter()
            .filter(|p| {
                self.incidents.iter().any(|k| {
                    k.patterns.iter().any(|x| {
                        x.id == p.id
                            && (x.last_seen_unix_ms < p.onset_unix_ms
                                || (x.counted_as == CountedAs::Echo
                                    && x.onset_unix_ms == p.onset_unix_ms))
                    })
                })
            })
            .map(|p| p.id.as_str())
            .collect();
        // What each pattern of a run after an earlier one had counted before this run: the
        // count the incidents that held it in earlier runs kept (the latest is the largest).
        // A pattern alone in its group is counted from there, not over its lifetime. Seen on
        // the unseen lab, one agent through all faults: the gateway's echo `metadata answered
        // <num>`, back with a leaking client's failures, was an incident of its own counting
        // the slow fault's 198 failures before them too (206 for 8 failed requests).
        let earlier_runs: BTreeMap<&str, (u64, u64)> = input
            .patterns
            .iter()
            .filter_map(|p| {
                self.incidents
                    .iter()
                    .flat_map(|k| &k.patterns)
                    .filter(|x| x.id == p.id && x.last_seen_unix_ms < p.onset_unix_ms)
                    .map(|x| {
                        (
                            x.count + x.counted_before.0,
                            x.untraced + x.counted_before.1,
                        )
                    })
                    .reduce(|a, b| (a.0.max(b.0), a.1.max(b.1)))
                    .map(|before| (p.id.as_str(), before))
            })
            .collect();
        // Each fresh incident with the group and the node-wide counters it was built from: a
        // continued one is built again with the counters it takes back.
        let mut fresh: Vec<Fresh<'_, '_>> = Vec::new();
        for g in &groups {
            let members: Vec<&Signal<'_>> = g.iter().map(|&i| &signals[i]).collect();
            let onset = members.iter().map(|s| s.onset).min().unwrap_or(now);
            let extra: Vec<&CounterAnomaly> = node_wide
                .iter()
                .copied()
                .filter(|a| node_wide_near(onset, a.changed_at_unix_ms))
                .collect();
            let (inc, title, member_set) = build(
                &members,
                &extra,
                &BTreeSet::new(),
                input,
                rules,
                &retold,
                &earlier_runs,
            );
            fresh.push((inc, title, member_set, members, extra));
        }

        // Continue kept incidents: a fresh group sharing a member with a kept incident takes
        // its id and its onset.
        // A counter a fresh incident holds now is that incident's: a kept one does not take
        // it back. Seen on the e2e storm: the caller's TIME-WAIT, short of a storm at first,
        // joined the callee's incident as churn; once a storm it was its caller's incident,
        // and the callee's kept listing it, first.
        let held_now: BTreeSet<SeriesKey> = fresh
            .iter()
            .flat_map(|(inc, ..)| inc.counters.iter().map(|c| c.anomaly.key.clone()))
            .collect();
        // The patterns the fresh incidents hold now, with the earliest onset they hold them
        // from (a pattern's onset is never before its current run).
        let mut patterns_now: BTreeMap<String, i64> = BTreeMap::new();
        for p in fresh.iter().flat_map(|(inc, ..)| &inc.patterns) {
            patterns_now
                .entry(p.id.clone())
                .and_modify(|o| *o = (*o).min(p.onset_unix_ms))
                .or_insert(p.onset_unix_ms);
        }
        let mut next: Vec<Incident> = Vec::new();
        let mut next_members: BTreeMap<String, Members> = BTreeMap::new();
        let mut next_titles: BTreeMap<String, Title> = BTreeMap::new();
        let mut continued = BTreeSet::new();
        for (mut inc, mut title, members, group, extra) in fresh {
            let kept = self.incidents.iter().find(|k| {
                !continued.contains(&k.id)
                    && self
                        .members
                        .get(&k.id)
                        .is_some_and(|m| continues(m, &members, input.history.step_ms))
                    && compatible(&k.culprit, &inc.culprit)
            });
            // The same failures under another culprit: a pattern's culprit vote read again
            // after its fault stopped (its callee restarted and the listener map changed)
            // names another service for failures an incident already counts. Not a fault of
            // its own: the incident that counted them keeps them. Seen on the unseen lab (one
            // agent through all faults): the refused fault's incident "in blobstore" (870
            // failures) ended, and a second one "in metadata", same pattern, same onset, the
            // same 870 failures, appeared beside it.
            if kept.is_none() && recounted(&inc, &group, &self.incidents) {
                continue;
            }
            if let Some(k) = kept {
                // A counter that left the detector's window while still out of its range
                // stays listed; only the incident's own keep it active. It is evidence for the
                // hints like the rest: seen on the demo's close-wait, a young inventory port's
                // CLOSE-WAIT climb was found once, then kept only by the incident, which
                // showed the callers' timeout hint and not the leak's.
                let mut taken: Vec<IncidentCounter> = Vec::new();
                let mut active_again = false;
                for c in &k.counters {
                    if !held_now.contains(&c.anomaly.key) {
                        let mut c = c.clone();
                        active_again |= c.anomaly.reread(input.history) && !c.supporting;
                        taken.push(c);
                    }
                }
                if !taken.is_empty() {
                    let extra: Vec<&CounterAnomaly> = extra
                        .iter()
                        .copied()
                        .chain(taken.iter().map(|c| &c.anomaly))
                        .collect();
                    // Built beside the group, a counter is supporting; one taken back stays
                    // what it was, also for the title: seen on the demo's close-wait, the
                    // leak's CLOSE-WAIT, kept by the incident once the detector's window had
                    // passed its change, was taken for evidence beside the callers' timeouts,
                    // and the incident led by the leak's hint was titled by their text.
                    let own: BTreeSet<&SeriesKey> = taken
                        .iter()
                        .filter(|c| !c.supporting)
                        .map(|c| &c.anomaly.key)
                        .collect();
                    (inc, title, _) =
                        build(&group, &extra, &own, input, rules, &retold, &earlier_runs);
                }
                inc.id = k.id.clone();
                inc.onset_unix_ms = inc.onset_unix_ms.min(k.onset_unix_ms);
                inc.last_active_unix_ms = inc.last_active_unix_ms.max(k.last_active_unix_ms);
                if active_again {
                    inc.active = true;
                    inc.last_active_unix_ms = now;
                }
                if keep_patterns(&mut inc, k, &patterns_now, &self.failed_before, now) {
                    if let Some(t) = self.titles.get(&k.id) {
                        title = t.clone();
                    }
                }
                let with_patterns = !inc.patterns.is_empty();
                order_counters(
                    &mut inc.counters,
                    &inc.culprit,
                    with_patterns,
                    input.services,
                );
                if let Some(lead) = inc.hints.first() {
                    lead_first(&mut inc.counters, lead);
                }
                continued.insert(k.id.clone());
            }
            // What it holds now wins over what it held before.
            let mut all = self.members.get(&inc.id).cloned().unwrap_or_default();
            all.extend(members);
            next_members.insert(inc.id.clone(), all);
            next_titles.insert(inc.id.clone(), title);
            next.push(inc);
        }
        for k in &self.incidents {
            if continued.contains(&k.id) || next.iter().any(|n| n.id == k.id) {
                continue;
            }
            if now - k.last_active_unix_ms > RETAIN_MS {
                continue;
            }
            // Every member of it is held now by an incident that began within the grouping
            // window of it: it was an early reading of that incident's evidence, not an
            // incident of its own. Seen on the Go lab's listen-overflow: "Goroutines grow
            // without bound — in storefront" was raised in the pass before the callee's
            // failures were known; from the next pass on the callee's incident listed those
            // goroutines as its callers' (a member, or evidence it lists), and the side incident
            // stayed beside it until it ended.
            let absorbed = self.members.get(&k.id).is_some_and(|kept| {
                !kept.is_empty()
                    && next.iter().any(|n| {
                        let holds = |m: &Member| {
                            next_members.get(&n.id).is_some_and(|h| h.contains_key(m))
                                || match m {
                                    Member::Series(key) => {
                                        n.counters.iter().any(|c| &c.anomaly.key == key)
                                    }
                                    Member::Pattern(id) => n.patterns.iter().any(|p| &p.id == id),
                                }
                        };
                        // Its culprit waits on the other's (a caller's pile-up on its
                        // callee), or is the same: two faults are never made one.
                        let waits_on = match (&k.culprit.service, &n.culprit.service) {
                            (Some(waiting), Some(culprit)) => {
                                waiting == culprit || calls(waiting, culprit, input.services)
                            }
                            (None, _) => true,
                            (Some(_), None) => false,
                        };
                        (n.onset_unix_ms - k.onset_unix_ms).abs() <= GROUP_WINDOW_MS
                            && waits_on
                            && kept.keys().all(holds)
                    })
            });
            if absorbed {
                continue;
            }
            let mut k = k.clone();
            k.active = false;
            let mut retold = Vec::new();
            for c in &mut k.counters {
                let told = c.anomaly.evidence.clone();
                if c.anomaly.reread(input.history) && !c.supporting {
                    k.active = true;
                    k.last_active_unix_ms = now;
                }
                if c.anomaly.evidence != told {
                    retold.push((told, c.anomaly.evidence.clone()));
                }
            }
            // The title and the hints quote the counters' evidence.
            let title = self.titles.get(&k.id);
            if let Some(now) = title.and_then(|t| t.tell(&k.counters)) {
                k.title = now;
            }
            for (told, now) in retold {
                let (told, now) = (head(&told), head(&now));
                for h in &mut k.hints {
                    for e in &mut h.evidence {
                        *e = e.replace(told, now);
                    }
                }
            }
            if let Some(m) = self.members.get(&k.id) {
                next_members.insert(k.id.clone(), m.clone());
            }
            if let Some(t) = title {
                next_titles.insert(k.id.clone(), t.clone());
            }
            next.push(k);
        }
        let mut next_moving = BTreeMap::new();
        for inc in &mut next {
            let was = self.incidents.iter().find(|k| k.id == inc.id);
            let moved = recovery::settle(
                inc,
                was,
                self.last_moving.get(&inc.id).copied(),
                input.history,
                input.services,
                now,
            );
            if let Some(t) = moved {
                next_moving.insert(inc.id.clone(), t);
            }
            if let Some(m) = next_members.get_mut(&inc.id) {
                // A series it no longer lists (cut, or another incident's now) is held in
                // no change that goes on.
                for span in m.values_mut() {
                    if let Span::Change { active, .. } = span {
                        *active = false;
                    }
                }
                m.extend(listed_members(inc));
            }
        }
        next.sort_by(|a, b| {
            a.state
                .cmp(&b.state)
                .then(failing(b, now).cmp(&failing(a, now)))
                .then(placed_error(b).cmp(&placed_error(a)))
                .then(support(b).cmp(&support(a)))
                .then(b.onset_unix_ms.cmp(&a.onset_unix_ms))
                .then(a.id.cmp(&b.id))
        });
        next.truncate(MAX_INCIDENTS);
        for inc in &mut next {
            if let Some(started) = self.started_unix_ms {
                inc.ongoing_at_start = inc.onset_unix_ms < started + FIRST_LOOK_MS;
            }
        }
        next_members.retain(|id, _| next.iter().any(|n| &n.id == id));
        next_titles.retain(|id, _| next.iter().any(|n| &n.id == id));
        next_moving.retain(|id, _| next.iter().any(|n| &n.id == id));
        self.last_moving = next_moving;
        self.failed_before
            .retain(|id, _| next.iter().any(|n| n.patterns.iter().any(|p| &p.id == id)));
        self.wants_a_census |= unread_callee(&next, input.history, now);
        self.incidents = next;
        self.members = next_members;
        self.titles = next_titles;
        &self.incidents
    }
}

/// How long after a callee's first failure its sockets are asked for by a fresh census when
/// none has been taken since (see [`unread_callee`]): the incident's first answers, within the
/// 10 s its fault must be told in.
pub const UNREAD_CALLEE_MS: i64 = 10_000;

/// Whether an active incident blames a callee for failures that began after the latest socket
/// census of `history` (within [`UNREAD_CALLEE_MS`]): its accept queue, its CLOSE-WAIT and its
/// callers' connections have not been read since the fault began, and a fresh census tells
/// (a queue filling or full, see [`crate::anomaly::filling_queues`]) rather than the next one
/// the census budget allows (every 3–7 s on a busy node). Seen on the Go lab's listen-overflow:
/// the callers' first timeouts came 0.5–0.7 s after the queue filled, and the incident was
/// titled by them until a census read the queue.
fn unread_callee(incidents: &[Incident], history: &CounterHistory, now: i64) -> bool {
    let Some(last) = history.len().checked_sub(1) else {
        return false;
    };
    let census_at = history.counted_at(last);
    incidents.iter().any(|inc| {
        let first_failure = inc.patterns.iter().map(|p| p.onset_unix_ms).min();
        inc.state == IncidentState::Active
            && inc.culprit.role == Some(CulpritRole::Callee)
            && first_failure.is_some_and(|t| t > census_at && now - t <= UNREAD_CALLEE_MS)
    })
}

/// A fresh incident with how its title was built, its members, and the group and node-wide counters it was built from.
type Fresh<'s, 'a> = (
    Incident,
    Title,
    Members,
    Vec<&'s Signal<'a>>,
    Vec<&'s CounterAnomaly>,
);

/// Why a counter signal is evidence beside a fault and no incident by itself.
#[derive(Debug, Clone, PartialEq)]
enum Secondary {
    /// A service's request or failure rate.
    Traffic,
    /// Goroutines or open fds that rose with the service's connections (see
    /// [`connections`]), with the two rises in words.
    Follows(String),
    /// Sockets of a listener's callers towards its port in a state that says no more than
    /// that they hold connections (see [`callers_connections`]).
    Callers,
    /// A rise of TIME-WAIT short of a storm (see [`MIN_STORM_RISE`]), with why in words and
    /// what that says.
    Churn(String, &'static str),
}

/// The listener whose callers' sockets `key` counts, when their state says only that they
/// hold connections to it (established, opening, closing): more of them come with more load,
/// a slower answer (a callee's fault) or a caller that keeps them (the caller's), so such a
/// series names no culprit and joins an incident of the listener or a peer. TIME-WAIT and
/// CLOSE-WAIT towards a port say who misuses connections and keep their culprit. Seen on the
/// unseen lab's close-wait fault: a client that never read its callee's answers kept its
/// connections to it open, `ESTAB →:<callee>` climbed 2 → 51 before its CLOSE-WAIT did, and
/// was the first incident, blaming the callee whose port it was.
///
/// So are the established connections on the listener's own side of its port: the same
/// connections seen from the listener (seen on the unseen lab's close-wait fault, `ESTAB
/// :<callee>` 2 → 73 in 8 s led the callee's false incident beside its caller's leak).
///
/// The total of the sockets on a listener's port, on either side, is such a series too: it
/// holds every state, and a state that says who misuses connections is judged on its own
/// series. Seen on the demo's and the Go lab's close-wait faults: the callee never closed,
/// its callers' side of each connection waited in FIN-WAIT-2, and `sockets →:<callee>` was an
/// incident of its own blaming the caller, beside the callee's CLOSE-WAIT leak. Seen on the
/// unseen lab, one agent through all faults: the listener's own side, `sockets :<callee>`,
/// rose with the TIME-WAIT of its caller's storm (3 → 724) and with the FIN-WAIT-2 of its
/// caller's leak (4 → 504), and each time was an incident "in" the callee beside the caller's.
fn callers_connections(key: &SeriesKey, services: &[ServiceFacts]) -> Option<String> {
    let port = match key {
        SeriesKey::PortState {
            port,
            side: PortSide::Remote,
            state,
        } if !matches!(state, SocketState::TimeWait | SocketState::CloseWait) => port,
        SeriesKey::PortState {
            port,
            side: PortSide::Local,
            state: SocketState::Established,
        } => port,
        SeriesKey::PortTotal { port, .. } => port,
        _ => return None,
    };
    listener(*port, services).map(|s| s.service.clone())
}

/// Smallest rise of a port's TIME-WAIT count that is an incident by itself, with no error
/// near it, when the calls to the port are not counted: 200 connections closed within the
/// minute a socket stays in TIME-WAIT, 3.3 a second more than before. A storm closes a
/// connection per call, so it passes this in seconds (the storm: 12 → 2,900 in 20 s;
/// the Go lab's: thousands within a minute at 20 requests a second). A pooled client
/// recycles connections as its load varies and stays below it. Seen on the unseen lab, quiet
/// and between faults: Go's default transport keeps two idle connections per host, so four
/// concurrent requests close a few connections a second, and TIME-WAIT towards a callee
/// climbed 2 → 29, 29 → 155 and 55 → 162 with no error — each an incident "A TIME-WAIT
/// storm". A smaller rise is still evidence: it joins an incident of its service or a peer
/// within the window (an aborting callee's own TIME-WAIT). When the calls are counted, see
/// [`STORM_SHARE_OF_CALLS`].
pub const MIN_STORM_RISE: f64 = 200.0;

/// When the port's calls are counted (its listener's requests per second, from its SERVER
/// spans and access lines), a storm is told by what it is — a connection closed per call —
/// rather than by its size: TIME-WAIT climbs (over the first minute after the change, while
/// no socket has yet left the state) by at least this share of the calls a second, and by at
/// least [`MIN_STORM_CLOSES`] a second. Go's pool closing a few of 25 calls a second is no
/// storm however long it runs; seen on the unseen lab under load 21, it climbed 4 → 267 in
/// 80 s (past [`MIN_STORM_RISE`]) and was an incident "A TIME-WAIT storm" before any fault,
/// into which the real storm then folded. A storm at 25 calls a second is told after
/// [`MIN_RATE_STORM_RISE`] sockets, in two seconds, where the floor of 200 took eight.
pub const STORM_SHARE_OF_CALLS: f64 = 0.5;
/// Fewest connections closed a second more than before that are a storm (the floor's rate:
/// [`MIN_STORM_RISE`] within the minute a socket stays in TIME-WAIT).
pub const MIN_STORM_CLOSES: f64 = MIN_STORM_RISE / 60.0;
/// Smallest rise of a storm told by its rate: a few seconds of a connection per call.
pub const MIN_RATE_STORM_RISE: f64 = 50.0;

/// When the port's calls are not counted (no spans, no access lines) but a caller's own
/// sockets show it opening a connection per call ([`services::opener`]), a storm is told by
/// its pace instead of [`MIN_STORM_RISE`]: at least [`MIN_RATE_STORM_RISE`] sockets, closed
/// at least this many a second. Go's default transport closing what its two idle slots per
/// host cannot keep (the unseen lab, quiet: 4 → 267 in 80 s, 3.3 a second) stays churn; a
/// client opening a connection per call on the opener runs (outgoing-notes) closed 12–25 a
/// second, and the floor of 200 took 8–18 s to tell it.
pub const MIN_OPENER_STORM_CLOSES: f64 = 10.0;

/// Why `a` is a rise of a port's TIME-WAIT count short of a storm, a pooled client's churn
/// (see [`MIN_STORM_RISE`] and [`STORM_SHARE_OF_CALLS`]), and whether a fresh census would
/// tell more: when the pace was judged from one census since the change (only a lower bound:
/// see [`storm_rates`]), or when the count climbs at a storm's pace and only its rise is
/// still short of [`MIN_RATE_STORM_RISE`] (a census a second after the one that showed the
/// storm: see `CONFIRMING_CENSUSES_PER_GAP` in the ingest crate's sampler). `None` for a
/// storm or any other series.
fn churn(a: &CounterAnomaly, services: &[ServiceFacts], history: &CounterHistory) -> Option<Churn> {
    let SeriesKey::PortState {
        port,
        state: SocketState::TimeWait,
        ..
    } = a.key
    else {
        return None;
    };
    if a.direction != Direction::Rise {
        return None;
    }
    let rise = a.reached - a.before;
    match storm_rates(a, port, services, history) {
        Some((closes, calls, one_census)) => {
            let short = storm_shortfall(rise, closes, calls)?;
            let why = format!(
                "{} rose by {} at {} a second against {} calls a second to its port: {}",
                a.label,
                number(rise),
                number(closes),
                number(calls),
                short.text()
            );
            Some(Churn {
                why,
                explains: short.explains(),
                wants_a_census: one_census || short == StormShortfall::Rise,
            })
        }
        None if rise >= MIN_RATE_STORM_RISE
            && services::opener(port, services).is_some()
            && climb_pace(a, port, history)
                .is_some_and(|(closes, _)| closes >= MIN_OPENER_STORM_CLOSES) =>
        {
            None
        }
        None => (rise < MIN_STORM_RISE).then(|| Churn {
            why: format!(
                "{} rose by {}, less than the {} of a storm",
                a.label,
                number(rise),
                number(MIN_STORM_RISE)
            ),
            explains: POOL_CHURN,
            wants_a_census: false,
        }),
    }
}

/// A rise of a port's TIME-WAIT count short of a storm (see [`churn`]).
#[derive(Debug, Default)]
struct Churn {
    /// The rise and what it lacks, in words.
    why: String,
    /// What such a rise is, for the node signal's reason.
    explains: &'static str,
    /// Whether a fresh census would tell more.
    wants_a_census: bool,
}

/// What a pool's churn is, beside a storm.
const POOL_CHURN: &str = "a pooled client closes a few connections a second as its load \
     varies (Go's keeps two idle per host), a storm closes one per call";

/// What a TIME-WAIT rise whose calls are counted lacks to be a storm, told in this order:
/// a pace of a connection closed per call is what makes a storm, its size only how sure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StormShortfall {
    /// Fewer closes than [`STORM_SHARE_OF_CALLS`] of the calls: a pool recycling a few of
    /// its connections.
    ClosesPerCall,
    /// Closes at a storm's share of the calls, but fewer a second than [`MIN_STORM_CLOSES`]:
    /// a caller with little traffic.
    ClosesPerSecond,
    /// A storm's pace, fewer sockets yet than [`MIN_RATE_STORM_RISE`].
    Rise,
}

impl StormShortfall {
    /// What such a rise is, after the rise in the node signal's reason.
    fn explains(self) -> &'static str {
        match self {
            StormShortfall::ClosesPerCall => POOL_CHURN,
            StormShortfall::ClosesPerSecond => {
                "a caller with few calls closes few connections a second, whether it opens one \
                 per call or not"
            }
            StormShortfall::Rise => {
                "the census after this one tells whether it keeps that pace (a burst of closes \
                 stops, a storm goes on)"
            }
        }
    }

    /// What an SRE reads after the rise and its pace, in the node signal's reason.
    fn text(self) -> String {
        match self {
            StormShortfall::ClosesPerCall => "fewer closes than a storm's one per call".into(),
            StormShortfall::ClosesPerSecond => format!(
                "fewer closes a second than the {} of a storm",
                number(MIN_STORM_CLOSES)
            ),
            StormShortfall::Rise => format!(
                "a storm's pace, but fewer sockets yet than the {} a storm is told from",
                number(MIN_RATE_STORM_RISE)
            ),
        }
    }
}

/// What a TIME-WAIT `rise` climbing `closes` a second against `calls` a second to its port
/// lacks to be a storm; `None` when it is one.
fn storm_shortfall(rise: f64, closes: f64, calls: f64) -> Option<StormShortfall> {
    if closes < STORM_SHARE_OF_CALLS * calls {
        Some(StormShortfall::ClosesPerCall)
    } else if closes < MIN_STORM_CLOSES {
        Some(StormShortfall::ClosesPerSecond)
    } else if rise < MIN_RATE_STORM_RISE {
        Some(StormShortfall::Rise)
    } else {
        None
    }
}

/// How fast the TIME-WAIT count of `a` climbs after its change (sockets a second, over at
/// most the first minute: a socket stays in TIME-WAIT that long, so the climb is the close
/// rate) and the calls a second its port's listener answered over the same time, when both
/// are known, and whether the climb was measured from the count before the change over one
/// census (a lower bound of the pace).
///
/// The climb is measured from the first point after the change (a series whose port was only
/// just counted one by one starts high, and that is no climb), over the time between the
/// censuses that took the two counts ([`CounterHistory::counted_at`]), not between the
/// samples: on a busy node the socket census runs every few seconds and the samples between
/// repeat it. While one census is all there is since the change, it is measured from the
/// count before the change when the port was counted one by one there (0 if it had no socket
/// in the state): the first census that shows a storm already tells its pace, at least its
/// rise over the time since the census before (the storm may have begun later). Seen on the unseen lab beside 25,000 other
/// TIME-WAIT sockets, counted every 6.8 s: a storm at 25 calls a second showed at one census
/// as 1 → 101, measured from that census alone it climbed 0 a second for the next 5 s of
/// samples (churn), and it was an incident only at the next census, 11 s after it began.
fn storm_rates(
    a: &CounterAnomaly,
    port: u16,
    services: &[ServiceFacts],
    history: &CounterHistory,
) -> Option<(f64, f64, bool)> {
    let service = &listener(port, services)?.service;
    let (closes, one_census) = climb_pace(a, port, history)?;
    let (from, to) = storm_window(a, history)?;
    let window = |points: &[Option<f64>]| -> Vec<f64> {
        (from..=to.min(points.len().saturating_sub(1)))
            .filter_map(|i| points.get(i).copied().flatten())
            .collect()
    };
    let requests = history.get(&SeriesKey::ServiceTraffic {
        service: service.clone(),
        metric: TrafficMetric::Requests,
    })?;
    let rates = window(&requests.points);
    if rates.is_empty() {
        return None;
    }
    let calls = rates.iter().sum::<f64>() / rates.len() as f64;
    (calls > 0.0).then_some((closes, calls, one_census))
}

/// The points of the first minute after `a`'s change (a socket stays in TIME-WAIT that
/// long): the first and the last index.
fn storm_window(a: &CounterAnomaly, history: &CounterHistory) -> Option<(usize, usize)> {
    const WINDOW_MS: i64 = 60_000;
    Some((
        history.point_at(a.changed_at_unix_ms)?,
        history.point_at(a.changed_at_unix_ms + WINDOW_MS)?,
    ))
}

/// How fast the TIME-WAIT count of `a` (of `port`) climbs after its change, in sockets a
/// second, and whether that was measured over one census (see [`storm_rates`]).
fn climb_pace(a: &CounterAnomaly, port: u16, history: &CounterHistory) -> Option<(f64, bool)> {
    let (from, to) = storm_window(a, history)?;
    let window = |points: &[Option<f64>]| -> Vec<(usize, f64)> {
        (from..=to.min(points.len().saturating_sub(1)))
            .filter_map(|i| points.get(i).copied().flatten().map(|v| (i, v)))
            .collect()
    };
    let points = &history.get(&a.key)?.points;
    let counted = window(points);
    let (&first, &(i1, v1)) = (counted.first()?, counted.last()?);
    let SeriesKey::PortState { side, .. } = a.key else {
        return None;
    };
    // While the points since the change all repeat one census, from the count before it.
    let one_census = history.counted_at(i1) == history.counted_at(first.0);
    let before = one_census
        .then(|| from.checked_sub(1))
        .flatten()
        .and_then(|i| {
            let group = history.get(&SeriesKey::PortTotal { port, side });
            let port_counted = group.is_some_and(|g| g.points.get(i).copied().flatten().is_some());
            let v = points
                .get(i)
                .copied()
                .flatten()
                .or(port_counted.then_some(0.0))?;
            Some((i, v))
        });
    let (i0, v0) = before.unwrap_or(first);
    let elapsed = history.counted_at(i1) - history.counted_at(i0);
    let closes = match elapsed {
        1.. => (v1 - v0) * 1000.0 / elapsed as f64,
        // The samples since the change repeat one census: no climb seen yet.
        _ if i1 > i0 => 0.0,
        _ => return None,
    };
    Some((closes, one_census))
}

/// Keeps, in the fresh incident `inc` that continues the kept incident `k`, the patterns of
/// `k` that no fresh incident holds now in the run `k` saw (`held`: each pattern held now,
/// with its onset there): a pattern stops being diagnosed once it neither emerges nor occurs,
/// while its incident goes on through its counters (a leak's goroutines stay high after its
/// last failure). A pattern held now from a later run than `k` saw (its onset after the last
/// occurrence `k` recorded: a run starts after a minute of silence) is another fault's now
/// and stays `k`'s too, with what it counted then: an echo such as `metadata answered 502`
/// comes back with every fault below it. Seen on the unseen lab, one agent through all
/// faults: the slow callee's incident, still rebuilt from its emerging timeout pattern, let
/// its echo go when a leak brought the echo back; the leak's incident then counted the
/// echo's earlier 204 failures as its own (585 for 385 failed requests), and the next fault
/// (the callee killed) continued the slow incident through the echo, a member it no longer
/// listed (its id, its onset, its timeout pattern: 959 failures for 880).
///
/// The patterns kept keep the counts they had, and the incident's failures are counted
/// again with them (`shared`: each pattern's occurrences in traces that failed first with
/// another). When `inc` has no pattern of its own, the
/// incident keeps its title, culprit and hints too: it is still the fault those patterns
/// named. Seen on the unseen lab: a healed close-wait incident continued by its counters
/// listed no pattern and said 0 failed requests. Returns whether `inc` took `k`'s title.
fn keep_patterns(
    inc: &mut Incident,
    k: &Incident,
    held: &BTreeMap<String, i64>,
    shared: &BTreeMap<String, Vec<(String, u64)>>,
    now: i64,
) -> bool {
    let kept: Vec<IncidentPattern> = k
        .patterns
        .iter()
        .filter(|p| {
            held.get(&p.id)
                .is_none_or(|&onset| onset > p.last_seen_unix_ms)
                && !inc.patterns.iter().any(|q| q.id == p.id)
        })
        .cloned()
        .collect();
    if kept.is_empty() {
        return false;
    }
    let had_own = inc.patterns.iter().any(|p| p.counted_as != CountedAs::Echo);
    // Normally none of them occurred within the minute (it would still be diagnosed), but a
    // pattern cut from the diagnosed ones may have.
    if let Some(last) = kept
        .iter()
        .filter(|p| p.counted_as != CountedAs::Echo && now - p.last_seen_unix_ms <= ACTIVE_MS)
        .map(|p| p.last_seen_unix_ms)
        .max()
    {
        inc.active = true;
        inc.last_active_unix_ms = inc.last_active_unix_ms.max(last);
    }
    inc.patterns.extend(kept);
    // The incident's own patterns earliest first, then the echoes, as built.
    inc.patterns.sort_by(|a, b| {
        (a.counted_as == CountedAs::Echo)
            .cmp(&(b.counted_as == CountedAs::Echo))
            .then(a.onset_unix_ms.cmp(&b.onset_unix_ms))
            .then(a.id.cmp(&b.id))
    });
    inc.patterns.truncate(MAX_PATTERNS);
    (inc.failures, inc.untraced_records) = build::tally(inc.patterns.iter().map(|p| {
        (
            p.id.as_str(),
            p.counted_as,
            (p.count, p.untraced),
            shared.get(&p.id).map_or(&[][..], Vec::as_slice),
        )
    }));
    for t in &k.trace_ids {
        if inc.trace_ids.len() < MAX_TRACES && !inc.trace_ids.contains(t) {
            inc.trace_ids.push(t.clone());
        }
    }
    if !had_own {
        inc.title = k.title.clone();
        if inc.culprit.service.is_none() {
            inc.culprit = k.culprit.clone();
        }
        let mut hints = k.hints.clone();
        hints.extend(
            std::mem::take(&mut inc.hints)
                .into_iter()
                .filter(|h| !k.hints.iter().any(|x| x.rule_id == h.rule_id)),
        );
        inc.hints = hints;
    }
    !had_own
}

/// Whether an incident's requests are failing now: one of its error patterns (not an echo
/// it only lists) occurred within [`ACTIVE_MS`]. A live fault outranks an incident that
/// failed earlier and is only kept active by its counters (a port's TIME-WAIT that the heal
/// itself raised, a pool's churn still above its old level): seen on the unseen lab, a
/// killed callee's refusals were ranked below the healed close-wait leak of minutes before,
/// active through such counters, and an SRE read the ended fault first.
fn failing(i: &Incident, now: i64) -> bool {
    i.patterns
        .iter()
        .any(|p| p.counted_as != CountedAs::Echo && now - p.last_seen_unix_ms <= ACTIVE_MS)
}

/// Whether a fresh incident (with `members`) goes on with a kept incident (whose members are
/// `kept`): they share a member that is still the same signal — a pattern in the run the kept
/// incident saw (its run began no later than its last occurrence there: a run starts after a
/// minute of silence), a counter in the change it saw (still active there, or not dated
/// a step of the history (`step_ms`) or more later). A pattern or series that started again
/// after its run or change ended is a new
/// signal, grouped with what caused it now. Seen on the unseen lab: gateway's `metadata
/// answered <num>`, one per failed request whatever failed below metadata, came back with
/// each later fault and carried it into the incident of a fault healed minutes before (its
/// id, its onset), and the port of a killed callee re-opened a leak's incident through a
/// TIME-WAIT series that leak had raised.
///
/// Members are judged by the run or change each incident held them in, whether it lists
/// them or not: a counter cut at [`MAX_COUNTERS`] in both (or a pattern cut at
/// [`MAX_PATTERNS`]) is no way for a new change to carry an old incident on.
///
/// A change dated less than a step later is the same change: the history's axis is laid back
/// from its latest sample's time, which wanders by milliseconds, so the same point is dated a
/// few ms apart from one pass to the next (over 50 ms in the e2e tests under load). Seen there:
/// a leak whose change was no longer active was read 3 ms later than the pass before, took a
/// new id, and the incident followed by its id never ended; a change that starts again after
/// one ended does so points later.
fn continues(kept: &Members, members: &Members, step_ms: i64) -> bool {
    members.iter().any(|(m, now)| match (kept.get(m), now) {
        (Some(Span::Run { last_seen, .. }), Span::Run { onset, .. }) => onset <= last_seen,
        (
            Some(Span::Change {
                changed_at: was_at,
                active,
            }),
            Span::Change { changed_at, .. },
        ) => *active || *changed_at - *was_at < step_ms.max(1),
        _ => false,
    })
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

/// Whether two culprits can be the same incident's: equal, or one of them unknown.
/// Whether `inc`, built from `group`, only counts again failures a kept incident of another
/// culprit counts: all its members are patterns, and each is held by one kept incident in the
/// same run (same onset) with no failure since that incident last saw it.
fn recounted(inc: &Incident, group: &[&Signal<'_>], kept: &[Incident]) -> bool {
    !inc.patterns.is_empty()
        && group
            .iter()
            .all(|s| matches!(s.what, SignalWhat::Pattern(_)))
        && kept.iter().any(|k| {
            !compatible(&k.culprit, &inc.culprit)
                && inc.patterns.iter().all(|p| {
                    k.patterns.iter().any(|x| {
                        x.id == p.id
                            && x.onset_unix_ms == p.onset_unix_ms
                            && p.last_seen_unix_ms <= x.last_seen_unix_ms
                    })
                })
        })
}

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
