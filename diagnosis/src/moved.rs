//! "What moved with it": which node counters changed level around the onset of an error
//! pattern, and by how much, when and in step with what.
//!
//! Pure functions: [`what_moved`] takes a pattern's activity ([`PatternActivity`]: onset,
//! occurrence counts) and the node's counter history ([`CounterHistory`], typed keys) and
//! returns a [`MovedWithIt`]; it reads no clock and no store, so the same inputs always give
//! the same answer. The statistics (baseline, band, change point, Spearman) are shared with
//! the counter anomalies in [`crate::baseline`]; the onset comes from [`crate::onset`].
//!
//! Series judged: sockets per port and state, `sockstat` fields, protocol rates, open fds and
//! threads of watched processes, accept queues and task counts. Node-wide socket totals,
//! memory and the agent's own runtime are left out: the first retell the ports, and the
//! agent's work follows the error rate whatever the cause, so it would always "move with" a
//! pattern.
//!
//! The method, for a pattern with onset T (when it started emerging, else first seen):
//!
//! 1. **Windows.** The *search window* runs from [`MAX_LEAD_MS`] before T to [`MAX_LAG_MS`]
//!    after it; a change outside it is not "with" the pattern. The *baseline window* is the
//!    [`BASELINE_MS`] that end where the search window starts. When the history starts later
//!    (the agent just started), the search window's start moves later so that the baseline
//!    keeps [`MIN_BASELINE_POINTS`]; when that would pass T, there is not enough history.
//! 2. **Baseline.** Per series: median level `m` and noise `σ` ([`crate::baseline`]).
//! 3. **Change point.** The first sample in the search window where the series leaves its
//!    band and stays out, having been inside it before ([`judge`]). A series already out of
//!    its band when the window opens moved earlier and is not attributed.
//! 4. **Size.** `score = |after − m| / σ ≥ MIN_SCORE` in the direction it left the band, and,
//!    for levels (not rates), a change of at least [`MIN_LEVEL_CHANGE`]. The sentence says
//!    where it got to: the 95th percentile after the change (5th for a fall).
//! 5. **Effects start while the errors happen.** A change after T counts only when the pattern
//!    occurred within [`EFFECT_SLACK_MS`] before it.
//! 6. **Co-movement.** Spearman correlation ρ of the series with the pattern's rate (trailing
//!    [`RATE_SMOOTH_POINTS`]-sample sum) from the search window's start to [`AFTER_MS`] after T;
//!    `in_step = max(0, ρ × sign(change))` (a fall is in step when the errors rise).
//! 7. **Rank.** `log10(1 + score) × log10(1 + |after − m|) × 1/(1 + |lead| / LEAD_HALF_WEIGHT_MS)
//!    × (0.5 + 0.5·in_step) × scope` (`in_step` counts as 0.5 when ρ is unknown; `scope` is
//!    [`NODE_WIDE_WEIGHT`] for node-wide series — sockstat and protocol rates — else 1): the size on log scales, in
//!    noise units and in sockets (or fds, tasks, /s), because a jump of 4,000 and one of 40 can
//!    both matter but a port that went from 0 to 40 sockets matters less than 500 more sockets
//!    in use, however quiet its baseline; halved at 15 s from the onset, halved again for a
//!    series that does not move in step with the errors, and halved for a node-wide total. The
//!    first [`MAX_MOVED`] are returned, each with a sentence of evidence, at most
//!    [`MAX_NODE_WIDE`] of them node-wide totals once a port, process or task moved: a socket
//!    storm on one port also moves every sockstat total, and four copies of its story would push
//!    the next real lead off the list.
//! 8. **Relation first.** Candidates are ordered by how they relate to the pattern before
//!    their rank ([`MovedRelation`]): the culprit's own series (its listening ports, the ports
//!    it calls, its processes, goroutines and traffic), then those of the other services the
//!    pattern was seen in and their peers' (callers and callees) together, by rank, then the
//!    rest of the node — a port of another program, a node-wide total — however large its
//!    move (other programs' churn outranked the fault's own port on a shared node). The
//!    relation is stated on each candidate ("culprit's listening port (orders)", "caller's
//!    peer port (gateway)", "node-wide: ..."). Before the relation, the timing: a move that began more than [`EARLIER_MS`] before the
//!    onset and had reached its level by then is an *earlier* change (`earlier`), listed after
//!    every series that moved with the errors, whatever its relation — one still moving into
//!    the onset (a leak's ramp up to the first error) is not.
//! 9. **Caveats.** A baseline that overlaps the series' first appearance (its port group's, for
//!    sockets) or a start of its service ([`ServiceStart`]) holds a start-up, not a usual
//!    level: the candidate says so, its confidence is low and its rank halved. A series whose
//!    samples start late (a rate's first sample is always unknown; a task target that answered
//!    late) is judged from its first samples when they make a baseline before the onset,
//!    never dropped for one missing point; the series that still cannot be judged are listed
//!    with the reason.

use faultline_series::{
    CounterKind, PortSide, ProcessMetric, SeriesKey, SocketState, TrafficMetric,
};
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::activity::PatternActivity;
use crate::anomaly::{ServiceStart, MIN_QUEUE_CHANGE};
use crate::baseline::{
    baseline_points, counts_per_point, judge_means, median, spearman, trailing_sum, Axis, Move,
    Windows,
};
pub use crate::baseline::{
    AFTER_MS, BAND_Z, BASELINE_MS, MAX_LAG_MS, MAX_LEAD_MS, MIN_BASELINE_POINTS, MIN_SCORE,
    PERSIST, SETTLE_POINTS, SETTLE_SHARE,
};
use crate::history::{CounterHistory, Series};
use crate::incident::{Incident, Relation, ServiceFacts};
use crate::onset::{occurrences_on_axis, pattern_onset, Onset, OnsetSource};
use crate::text::{clock, number};

/// The verdict of "what moved with it".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MovedVerdict {
    /// At least one counter moved around the pattern's onset; see `moved`.
    Moved,
    /// The counters were examined and none moved around the onset.
    NothingMoved,
    /// The counters' history does not cover the onset well enough to tell (the agent just
    /// started, or the pattern began before the 1 s history); `summary` says which.
    NotEnoughHistory,
}

/// One counter that moved with a pattern, with the figures behind the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MovedCounter {
    /// Which series this is (the one identity the counters API, `/metrics` and the
    /// diagnosis share).
    pub key: SeriesKey,
    /// The counter's family.
    pub kind: CounterKind,
    /// Readable name, e.g. `TIME-WAIT →:8080` (a peer's port) or `CLOSE-WAIT :8080` (a local
    /// listening port): the key's label.
    pub label: String,
    /// Unit of the levels (`sockets`, `/s`, `fds`, ...).
    pub unit: String,
    /// For sockets: the port.
    pub port: Option<u16>,
    /// For sockets: which end the port is.
    pub side: Option<PortSide>,
    /// For sockets: the TCP state.
    pub state: Option<SocketState>,
    /// Usual level before the onset: median of the baseline window.
    pub before: f64,
    /// Level after the change: median from the change over the after window (what `score`
    /// measures).
    pub after: f64,
    /// Where it got to: the 95th percentile of the after window (5th for a fall); the
    /// evidence sentence quotes it, so a ramp is shown at its height, not its middle.
    pub reached: f64,
    /// `after - before` (the evidence quotes `reached - before`).
    pub change: f64,
    /// How far the level moved, in units of the series' own noise (see the method in
    /// `MovedWithIt`); at least the threshold for every listed counter.
    pub score: f64,
    /// When the series left its usual range (Unix ms, a sample time).
    pub changed_at_unix_ms: i64,
    /// `changed_at_unix_ms - onset_unix_ms`: negative when the counter moved before the
    /// pattern began.
    pub lead_ms: i64,
    /// Spearman rank correlation of the counter with the pattern's rate around the onset
    /// (−1..1), `None` when either is constant there.
    pub co_movement: Option<f64>,
    /// Ranking weight (higher first): combines `score`, the size of `change`, the distance
    /// from the onset and `co_movement`.
    pub rank: f64,
    /// The evidence in one sentence, e.g. "TIME-WAIT →:8080 rose 12 → 4,310 (+4,298) from
    /// 20:41:03 UTC, 2 s before the first error".
    pub evidence: String,
    /// How the series relates to the pattern; the list is ordered by it first.
    pub relation: MovedRelation,
    /// The relation in words: "culprit's listening port (orders)", "caller's peer port
    /// (gateway)", "node-wide: port 41234 is not a port of this pattern's services or their
    /// peers".
    pub relation_text: String,
    /// Low when a caveat applies.
    pub confidence: MovedConfidence,
    /// An earlier change: it began more than [`EARLIER_MS`] before the onset and had reached
    /// its level by then, so it did not move *with* the errors. Listed after every counter
    /// that did, whatever its relation: a precursor, or something that happened before.
    pub earlier: bool,
    /// One of the incident's own counters (in an incident's answer: see
    /// `what_moved_with_incident`), listed first: what made it an incident. Always `false` in
    /// a pattern's answer.
    #[serde(default)]
    pub own: bool,
    /// Why the move may not be what it seems, in sentences: its baseline overlaps the
    /// series' first appearance or its service's start.
    pub caveats: Vec<String>,
    /// The series on the document's axis (`history_start_unix_ms`, `step_ms`).
    pub history: Series,
}

/// How a moved counter relates to the pattern, most related first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MovedRelation {
    /// The pattern's culprit's own: its listening ports (either side), the ports it calls,
    /// its accept queue, processes, goroutines and traffic.
    Culprit,
    /// The own series of another service the pattern was seen in (a caller that logs its
    /// callee's failure).
    Service,
    /// A peer's: the series of a caller or callee of the culprit or of the pattern's services.
    Peer,
    /// The rest of the node: a total that moves with any traffic, or a port, process or
    /// target of no service of the pattern nor of their peers.
    NodeWide,
}

/// How far a moved counter can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MovedConfidence {
    /// Its baseline is a usual level.
    High,
    /// A caveat applies (see `caveats`): its baseline holds a start-up.
    Low,
}

/// A counter series "what moved" could not judge, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MovedUnjudged {
    /// The series.
    pub key: SeriesKey,
    /// Its name as the dashboard shows it.
    pub label: String,
    /// Why, in one sentence ("12 of the 30 baseline points needed are known: first seen at
    /// 20:41:03 UTC").
    pub reason: String,
}

/// What "what moved" knows of a pattern beyond its activity: whose it is. Empty, every
/// candidate is node-wide and the order is by rank alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct PatternContext<'a> {
    /// The services the pattern was seen in.
    pub services: &'a [String],
    /// Where its failures live, when attributed.
    pub culprit: Option<&'a str>,
    /// What is known of the node's services: listening ports, callers and callees, called
    /// ports, processes and task targets.
    pub facts: &'a [ServiceFacts],
    /// The services that (re)started while the agent watched.
    pub starts: &'a [ServiceStart],
    /// The agent's own listening ports (its web and OTLP listeners): their sockets are its
    /// own traffic (API polls, OTLP posts), listed as unjudged with that reason, never ranked
    /// as another program's move.
    pub agent_ports: &'a [u16],
}

/// What on the node moved with one pattern: the answer of
/// `GET /api/v1/clusters/{id}/moved`.
///
/// Method: the onset T is when the pattern started emerging (else its first occurrence).
/// Every counter series gets a baseline (median and noise) from the 5 minutes that end where
/// the search window starts; the search window runs from 60 s before T to 60 s after it. A
/// series moved when, inside the search window, it leaves its baseline band (3 × noise) for
/// at least 3 samples (and 8 of the next 10) after being inside it for the 3 before, and the
/// median level from there (over at most 2 minutes) sits at least 6 × noise from the baseline
/// median (and, for levels rather than rates, at least 20 from it). Noise is the larger of
/// the baseline's scaled MAD and a Poisson floor √(median + 1). A change after T counts only
/// while the pattern still occurs. The thresholds and why are in the `moved` module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MovedWithIt {
    /// The pattern; empty in an incident's answer (`incident_id`).
    pub cluster_id: String,
    /// The incident, when the answer is an incident's (one of counters only, which has no
    /// pattern to compare the counters with): the counters are compared around its onset,
    /// ranked by relation to its culprit, its own counters first. Absent in a pattern's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    /// Moved, nothing moved, or not enough history to tell.
    pub verdict: MovedVerdict,
    /// The answer in one or two sentences.
    pub summary: String,
    /// The onset T the counters were compared around (Unix ms).
    pub onset_unix_ms: i64,
    /// Where T came from.
    pub onset_source: OnsetSource,
    /// How precisely T is known (ms): the sampling step with per-second occurrence counts,
    /// 60 000 when only per-minute counts were available.
    pub onset_precision_ms: i64,
    /// Start of the baseline window (Unix ms), when the history has one.
    pub baseline_start_unix_ms: Option<i64>,
    /// Start of the search window (Unix ms); the baseline ends here.
    pub search_start_unix_ms: Option<i64>,
    /// End of the search window (Unix ms).
    pub search_end_unix_ms: Option<i64>,
    /// Time of the first point of `pattern` and of every `history` (Unix ms).
    pub history_start_unix_ms: i64,
    /// Time between points (ms, >= 1).
    pub step_ms: i64,
    /// The pattern's occurrences per step on the same axis (per-minute counts spread evenly
    /// when no per-second counts exist).
    pub pattern: Series,
    /// Counter series examined.
    pub series_examined: u64,
    /// Counter series that had too little history in the baseline window to be judged.
    pub series_skipped: u64,
    /// The counters that moved: related to the pattern first (see `relation`), most telling
    /// first within a relation (at most a handful).
    pub moved: Vec<MovedCounter>,
    /// The series that could not be judged, and why (at most [`MAX_UNJUDGED`]).
    #[serde(default)]
    pub unjudged: Vec<MovedUnjudged>,
    /// Unjudged series left out of `unjudged` by its bound.
    #[serde(default)]
    pub unjudged_omitted: u64,
}

/// Smallest change of a level (sockets, fds, threads, tasks, sockstat fields) that counts as a
/// move, whatever its score. Seen on a real node during a quiet minute: client ports of other
/// programs appearing with 6 to 14 TIME-WAIT sockets each, each a "move" from 0 by the Poisson
/// floor alone. Twenty is above that churn and below the smallest leak worth a page (a
/// CLOSE-WAIT leak passes it within a minute or two). Rates (/s) have no such floor: 6 listen
/// overflows a second from none is news.
pub const MIN_LEVEL_CHANGE: f64 = 20.0;
/// A change after the onset counts only if the pattern occurred within this long before it:
/// an effect of the errors starts while they happen; a counter that jumps once they stopped
/// is what happened next (seen on a real node: a TIME-WAIT storm 27 s after a 10-second burst
/// of unrelated EOFs). Ten seconds, like [`RATE_SMOOTH_POINTS`]: one burst's log lines spread
/// over seconds, and a level reacts within a few samples.
pub const EFFECT_SLACK_MS: i64 = 10_000;
/// Rank weight of node-wide totals (sockstat fields, protocol rates) against per-port,
/// per-process and per-target series: they move with any traffic on the node, and when a
/// port's series moved too, the port says where (seen on a real node: segment rates
/// outranked the TIME-WAIT of the port the storm was on).
pub const NODE_WIDE_WEIGHT: f64 = 0.5;
/// A move that began more than this long before the onset and had reached its level by then
/// is an earlier change, listed after those that moved with the errors (see step 8). Seen on
/// the Go lab after a redeploy: the edge's TIME-WAIT and CLOSE-WAIT from the traffic driver's
/// reconnections rose 25–48 s before the first error and sat there, and were listed first
/// (as the reporting service's, or the culprit's, listening port) above the culprit's own
/// request rate and the resets that moved within a second of it. Fifteen seconds, like
/// [`LEAD_HALF_WEIGHT_MS`]: a cause seen on the sockets (a pool running dry, a storm)
/// leads the first error line by seconds.
pub const EARLIER_MS: i64 = 15_000;
/// Share of a move made from [`EARLIER_MS`] before the onset to [`STILL_MOVING_AFTER_MS`]
/// after it for a move begun earlier to count as moving with the errors: a leak's ramp
/// climbing to the fd limit where the first error comes, or a level that stepped early and
/// moved again with the fault. A step that settled 30 s before makes none of it there; a
/// steady ramp begun at the search window's start (60 s before) makes a third of it.
pub const STILL_MOVING_SHARE: f64 = 0.2;
/// How long after the onset a move begun earlier is still looked at for moving with the
/// errors: [`EFFECT_SLACK_MS`], within which an effect of them shows on a level.
pub const STILL_MOVING_AFTER_MS: i64 = EFFECT_SLACK_MS;
/// Span over which a level at a moment is read (the median of its known points): five
/// samples at 1 s, through a census' one-sample dips.
const LEVEL_SPAN_MS: i64 = 4_000;
/// Distance from the onset at which the rank weight halves (see step 7).
pub const LEAD_HALF_WEIGHT_MS: f64 = 15_000.0;
/// Samples summed into the pattern's rate for the co-movement: log lines of one burst spread
/// over seconds while level counters (TIME-WAIT lasts 60 s) integrate them.
pub const RATE_SMOOTH_POINTS: usize = 10;
/// Most counters returned: the answer is a short list a person reads in an outage.
pub const MAX_MOVED: usize = 6;
/// Most node-wide totals (sockstat, protocol rates) in the answer when a more specific series
/// moved too (see step 7).
pub const MAX_NODE_WIDE: usize = 2;
/// Points of context shown in the charts before the search window (2 min at 1 s).
const CHART_CONTEXT_MS: i64 = 2 * 60_000;
/// Most unjudged series listed (the rest are counted).
pub const MAX_UNJUDGED: usize = 50;
/// Rank weight of a candidate with a caveat (its baseline holds a start-up): below a move of
/// the same relation and size whose baseline is a usual level.
pub const CAVEAT_WEIGHT: f64 = 0.5;
/// Points after the history's start within which a series' first sample is the agent's
/// start, not the series' appearance: a rate's first sample is always unknown (it needs two
/// readings), a process or task target is read a sample or two late.
pub const APPEARANCE_SLACK_POINTS: usize = 3;

/// One counter series to judge, with its identity.
struct Candidate<'a> {
    key: &'a SeriesKey,
    points: &'a [Option<f64>],
}

impl Candidate<'_> {
    /// Gaps before the first known point read as 0: the store starts a port-state series at
    /// its first socket (the state had no socket yet).
    fn zero_before_first(&self) -> bool {
        matches!(self.key, SeriesKey::PortState { .. })
    }
}

/// Whether "what moved" judges a series of this key (see the module documentation).
fn judged(key: &SeriesKey) -> bool {
    match key {
        SeriesKey::PortState { .. }
        | SeriesKey::Sockstat { .. }
        | SeriesKey::ProtocolRate { .. }
        | SeriesKey::ListenQueue { .. }
        | SeriesKey::Task { .. } => true,
        SeriesKey::Process { metric, .. } => {
            matches!(metric, ProcessMetric::OpenFds | ProcessMetric::Threads)
        }
        SeriesKey::ServiceTraffic { .. } => true,
        SeriesKey::NodeState { .. }
        | SeriesKey::PortTotal { .. }
        | SeriesKey::OtherPortsTotal
        | SeriesKey::Runtime { .. } => false,
    }
}

/// Answers "what moved with it" for one pattern (see the module documentation).
///
/// The pattern's per-second counts give the onset and its rate to the second; without them
/// its per-minute counts are used and the timing is only known to the minute.
pub fn what_moved(activity: &PatternActivity, counters: &CounterHistory) -> MovedWithIt {
    what_moved_for(activity, counters, &PatternContext::default())
}

/// [`what_moved`] with what is known of the pattern's services: the candidates are ordered by
/// their relation to it first (see the module documentation).
pub fn what_moved_for(
    activity: &PatternActivity,
    counters: &CounterHistory,
    context: &PatternContext<'_>,
) -> MovedWithIt {
    let axis = axis_of(counters);
    let pattern = occurrences_on_axis(axis, &activity.per_minute, activity.per_second.as_ref());
    let onset = pattern_onset(activity, axis, &pattern);
    let began = match onset.source {
        OnsetSource::Emergence if onset.surge => "the surge began",
        _ => "the first error",
    };
    let precise = activity
        .per_second
        .as_ref()
        .is_some_and(|s| !s.counts.is_empty());
    let subject = Subject {
        cluster_id: activity.id.clone(),
        incident_id: None,
        onset,
        began: began.to_owned(),
        what: "the pattern",
        precise,
        reference: trailing_sum(&pattern, RATE_SMOOTH_POINTS),
        reference_name: "the error rate".to_owned(),
        reference_key: None,
        going_on: &|t| occurred_near(&pattern, axis, t),
        own: &[],
        shown: &pattern,
    };
    answer(axis, &subject, counters, context)
}

/// "What moved with it" for an incident: around its onset, ranked by relation to its culprit
/// and the services that saw its failures, its own counters first (they are what made it an
/// incident; its node-wide totals excepted). Meant for an incident of counters only (a
/// TIME-WAIT storm, a CLOSE-WAIT leak before any error), which has no pattern to compare the
/// counters with: co-movement is measured against its lead counter (its first counter that is
/// not merely beside the fault), and a change after its onset counts while the incident was
/// still active. An incident with patterns is better answered by its first pattern's
/// [`what_moved_for`] (its errors' rate is the fault's own clock).
pub fn what_moved_with_incident(
    incident: &Incident,
    counters: &CounterHistory,
    context: &PatternContext<'_>,
) -> MovedWithIt {
    let axis = axis_of(counters);
    let lead = incident
        .counters
        .iter()
        .find(|k| !k.supporting)
        .or(incident.counters.first());
    let reference = lead
        .and_then(|k| counters.series.iter().find(|s| s.key == k.anomaly.key))
        .map(|s| {
            let points = filled(
                &Candidate {
                    key: &s.key,
                    points: &s.points,
                },
                axis.len,
            );
            carried(&points)
        })
        .unwrap_or_else(|| vec![0.0; axis.len]);
    // Its node-wide totals (which move with any traffic) are listed as such, not as its own.
    let own: Vec<SeriesKey> = incident
        .counters
        .iter()
        .filter(|k| k.relation != Relation::NodeWide)
        .map(|k| k.anomaly.key.clone())
        .collect();
    let last_active = incident.last_active_unix_ms;
    let subject = Subject {
        cluster_id: String::new(),
        incident_id: Some(incident.id.clone()),
        onset: Onset {
            unix_ms: incident.onset_unix_ms,
            source: OnsetSource::Incident,
            precision_ms: axis.step,
            surge: false,
        },
        began: "the incident's onset".to_owned(),
        what: "the incident",
        precise: true,
        reference,
        reference_name: lead.map_or_else(
            || "the incident's counters".to_owned(),
            |k| format!("{}, the incident's lead counter", k.anomaly.label),
        ),
        reference_key: lead.map(|k| k.anomaly.key.clone()),
        going_on: &|t| t <= last_active + EFFECT_SLACK_MS,
        own: &own,
        shown: &[],
    };
    answer(axis, &subject, counters, context)
}

/// The regular axis of a counter history.
fn axis_of(counters: &CounterHistory) -> Axis {
    Axis {
        start: counters.start_unix_ms,
        step: counters.step_ms.max(1),
        len: counters.len(),
    }
}

/// Each unknown point as the last known one before it (the first known one before any):
/// a level series to rank against, where a census' missing read is no change.
fn carried(points: &[Option<f64>]) -> Vec<f64> {
    let first = points.iter().flatten().next().copied().unwrap_or(0.0);
    let mut last = first;
    points
        .iter()
        .map(|p| {
            if let Some(v) = p {
                last = *v;
            }
            last
        })
        .collect()
}

/// What one answer is about: a pattern, or an incident of counters only.
struct Subject<'a> {
    /// The pattern's id (empty for an incident).
    cluster_id: String,
    /// The incident's id, for an incident.
    incident_id: Option<String>,
    /// Its onset.
    onset: Onset,
    /// The onset in the evidence's words ("the first error", "the incident's onset").
    began: String,
    /// The subject in the summary's words ("the pattern").
    what: &'static str,
    /// Whether its timing is known to the sample (else to the minute).
    precise: bool,
    /// The series on the axis co-movement is measured against (a pattern's smoothed rate, an
    /// incident's lead counter).
    reference: Vec<f64>,
    /// `reference` in the evidence's words ("the error rate").
    reference_name: String,
    /// The series `reference` is, when it is one of the counters (an incident's lead).
    reference_key: Option<SeriesKey>,
    /// Whether the subject was still going on in the [`EFFECT_SLACK_MS`] up to a time: a
    /// change after the onset counts only then.
    going_on: &'a dyn Fn(i64) -> bool,
    /// The subject's own series (an incident's counters): listed first when they moved.
    own: &'a [SeriesKey],
    /// What the charts show beside each counter (a pattern's occurrences per point).
    shown: &'a [f64],
}

/// The answer about `subject` (see the module documentation).
fn answer(
    axis: Axis,
    subject: &Subject<'_>,
    counters: &CounterHistory,
    context: &PatternContext<'_>,
) -> MovedWithIt {
    let onset_at = subject.onset;
    let onset = onset_at.unix_ms;
    let what = subject.what;
    let mut doc = MovedWithIt {
        cluster_id: subject.cluster_id.clone(),
        incident_id: subject.incident_id.clone(),
        verdict: MovedVerdict::NotEnoughHistory,
        summary: String::new(),
        onset_unix_ms: onset,
        onset_source: onset_at.source,
        onset_precision_ms: onset_at.precision_ms,
        baseline_start_unix_ms: None,
        search_start_unix_ms: None,
        search_end_unix_ms: None,
        history_start_unix_ms: axis.start,
        step_ms: axis.step,
        pattern: Series::default(),
        series_examined: 0,
        series_skipped: 0,
        moved: Vec::new(),
        unjudged: Vec::new(),
        unjudged_omitted: 0,
    };
    let began = subject.began.as_str();
    let precise = subject.precise;
    if axis.len == 0 {
        doc.summary = "Not enough history: no counter samples yet.".into();
        return doc;
    }
    let Some(windows) = Windows::around(axis, onset) else {
        doc.summary = if onset < axis.start + MIN_BASELINE_POINTS as i64 * axis.step {
            format!(
                "Not enough history: {what} began at {}, but the counters' 1 s history \
                 starts at {} and needs {} s before the onset as a baseline.",
                clock(onset),
                clock(axis.start),
                MIN_BASELINE_POINTS as i64 * axis.step / 1000
            )
        } else {
            format!(
                "Not enough history yet: {what} began at {}, after the latest counter \
                 sample ({}).",
                clock(onset),
                clock(axis.end())
            )
        };
        return doc;
    };
    doc.baseline_start_unix_ms = Some(windows.baseline_start);
    doc.search_start_unix_ms = Some(windows.search_start);
    doc.search_end_unix_ms = Some(windows.search_end);

    let rate = &subject.reference;
    let corr_from = axis.at_or_after(windows.search_start);
    let corr_to = axis.at_or_after(onset + AFTER_MS + 1).min(axis.len);

    // Where each port first showed: a port-state series starts at its state's first socket
    // (or when its group joined the ports counted one by one), its port group may be older,
    // and a port listened on before it was counted one by one is no new port.
    let mut port_first: BTreeMap<u16, usize> = BTreeMap::new();
    for s in &counters.series {
        if let SeriesKey::PortState { port, .. } | SeriesKey::ListenQueue { port } = s.key {
            if let Some(first) = s.points.iter().position(Option::is_some) {
                let e = port_first.entry(port).or_insert(first);
                *e = (*e).min(first);
            }
        }
    }
    let candidates = counters
        .series
        .iter()
        .filter(|s| judged(&s.key))
        .map(|s| Candidate {
            key: &s.key,
            points: &s.points,
        });
    let mut moved = Vec::new();
    let mut unjudged = Vec::new();
    for c in candidates {
        doc.series_examined += 1;
        if let Some(port) = c.key.port().filter(|p| context.agent_ports.contains(p)) {
            doc.series_skipped += 1;
            unjudged.push(MovedUnjudged {
                key: c.key.clone(),
                label: c.key.label(),
                reason: format!(
                    "port {port} is this agent's own listener (its web or OTLP port): its \
                     sockets are the agent's own traffic"
                ),
            });
            continue;
        }
        let points = filled(&c, axis.len);
        // Rates (/s) have no floor on the size of a change; levels do, an accept queue the
        // detector's: its backlog may be 8 (the Go lab's listen-overflow filled one 0 → 9,
        // its incident's top counter, and "what moved" never listed it, 20 being out of reach).
        let min_change = if c.key.is_rate() {
            0.0
        } else if matches!(c.key, SeriesKey::ListenQueue { .. }) {
            MIN_QUEUE_CHANGE
        } else {
            MIN_LEVEL_CHANGE
        };
        let appeared = match *c.key {
            SeriesKey::PortState { port, .. } => port_first.get(&port).copied(),
            _ => c.points.iter().position(Option::is_some),
        };
        // A service (re)started inside the baseline: its series' usual level is the one since
        // its start, not a mix of its old process, its downtime and its new one. Seen on the
        // Go lab's crash after a redeploy 60 s before it: the killed callee's request rate,
        // 60/s → 0 at the first refused call, was judged against a baseline that was mostly
        // the redeploy's downtime (0/s), and was no move.
        let restarted = context
            .starts
            .iter()
            .filter(|s| s.covers(c.key))
            .map(|s| s.at_unix_ms)
            .filter(|&at| at > windows.baseline_start && at <= onset)
            .max();
        let since_start = restarted
            .and_then(|at| windows_from(axis, &windows, &points, onset, axis.at_or_after(at)));
        let Some(w) = since_start.or_else(|| series_windows(axis, &windows, &points, onset)) else {
            doc.series_skipped += 1;
            unjudged.push(MovedUnjudged {
                key: c.key.clone(),
                label: c.key.label(),
                reason: unjudged_reason(axis, &windows, &points, appeared),
            });
            continue;
        };
        let search_known = {
            let from = axis.at_or_after(w.search_start);
            let to = axis.at_or_after(w.search_end + 1).min(points.len());
            points[from.min(to)..to].iter().flatten().count()
        };
        if search_known == 0 {
            doc.series_skipped += 1;
            unjudged.push(MovedUnjudged {
                key: c.key.clone(),
                label: c.key.label(),
                reason: format!(
                    "no sample from {} to {}: its source did not answer around the onset",
                    clock(w.search_start),
                    clock(w.search_end)
                ),
            });
            continue;
        }
        let Some(m) = judge_means(axis, &w, &points, true, min_change, counts_per_point(c.key))
        else {
            // No level after it to judge: a series whose samples stop near the onset (a
            // process killed, a listener closed, a target down) is the strongest move of all
            // and must not vanish from the answer. Seen on the Go lab's crash: the killed
            // callee's open fds stopped at the first refused call and were listed nowhere.
            if let Some(reason) = gone_reason(axis, &w, &points, onset, began) {
                doc.series_skipped += 1;
                unjudged.push(MovedUnjudged {
                    key: c.key.clone(),
                    label: c.key.label(),
                    reason,
                });
            }
            continue;
        };
        let lead_ms = m.changed_at - onset;
        if lead_ms > 0 && !(subject.going_on)(m.changed_at) {
            // Changed after the errors had stopped: something that happened next, not an
            // effect of them.
            continue;
        }
        // The reference itself (an incident's lead counter) moves in step with itself.
        let rho = if subject.reference_key.as_ref() == Some(c.key) {
            None
        } else {
            spearman(&points[corr_from..corr_to], &rate[corr_from..corr_to])
        };
        let timing = 1.0 / (1.0 + lead_ms.abs() as f64 / LEAD_HALF_WEIGHT_MS);
        // In step means rising with the errors for a rise, falling as they rise for a fall.
        let in_step = rho.map_or(0.5, |r| (r * m.change.signum()).max(0.0));
        let kind = c.key.kind();
        let scope = if kind.is_node_wide() {
            NODE_WIDE_WEIGHT
        } else {
            1.0
        };
        let caveats = caveats(c.key, axis, &w, appeared, m.changed_at, context.starts);
        let trust = if caveats.is_empty() {
            1.0
        } else {
            CAVEAT_WEIGHT
        };
        let rank = (1.0 + m.score).log10()
            * (1.0 + m.change.abs()).log10()
            * timing
            * (0.5 + 0.5 * in_step)
            * scope
            * trust;
        let socket = match *c.key {
            SeriesKey::PortState { port, side, state } => Some((port, side, state)),
            _ => None,
        };
        let (relation, relation_text) = relation(c.key, context);
        let earlier = earlier_change(axis, &points, &m, onset);
        moved.push(MovedCounter {
            key: c.key.clone(),
            kind,
            evidence: evidence(c.key, &m, lead_ms, rho, began, &subject.reference_name),
            label: c.key.label(),
            unit: c.key.unit().to_owned(),
            port: socket.map(|s| s.0),
            side: socket.map(|s| s.1),
            state: socket.map(|s| s.2),
            before: m.before,
            after: m.after,
            reached: m.reached,
            change: m.change,
            score: m.score,
            changed_at_unix_ms: m.changed_at,
            lead_ms,
            co_movement: rho,
            rank,
            relation,
            relation_text,
            confidence: if caveats.is_empty() {
                MovedConfidence::High
            } else {
                MovedConfidence::Low
            },
            caveats,
            earlier,
            own: subject.own.contains(c.key),
            history: Series {
                points,
                delta_1m: None,
            },
        });
    }
    moved.sort_by(|a, b| {
        b.own
            .cmp(&a.own)
            .then(a.earlier.cmp(&b.earlier))
            .then(tier(a).cmp(&tier(b)))
            .then(b.rank.total_cmp(&a.rank))
            .then_with(|| a.label.cmp(&b.label))
    });
    let node_wide = |m: &MovedCounter| m.kind.is_node_wide();
    if moved.iter().any(|m| !node_wide(m)) {
        let mut kept_node_wide = 0;
        moved.retain(|m| {
            if !node_wide(m) {
                return true;
            }
            kept_node_wide += 1;
            kept_node_wide <= MAX_NODE_WIDE
        });
    }
    moved.truncate(MAX_MOVED);

    // The charts show the search window with some context before it, not the whole ring.
    let from = axis.at_or_after(windows.search_start - CHART_CONTEXT_MS);
    doc.history_start_unix_ms = axis.time(from);
    doc.pattern = Series {
        points: subject
            .shown
            .get(from..)
            .unwrap_or_default()
            .iter()
            .map(|&v| Some(v))
            .collect(),
        delta_1m: None,
    };
    for m in &mut moved {
        m.history.points.drain(..from);
    }
    let window_text = format!(
        "within {} s before and {} s after {began}",
        (onset - windows.search_start) / 1000,
        (windows.search_end - onset) / 1000
    );
    doc.summary = if moved.is_empty() {
        doc.verdict = MovedVerdict::NothingMoved;
        format!(
            "Nothing moved: none of the {} counter series changed level {window_text} (by \
             {MIN_SCORE}× its noise and, for levels, {MIN_LEVEL_CHANGE} or more; after the \
             onset, only while the errors went on).",
            doc.series_examined - doc.series_skipped
        )
    } else {
        doc.verdict = MovedVerdict::Moved;
        let earlier = moved.iter().filter(|m| m.earlier).count();
        let last = match earlier {
            0 => String::new(),
            n if n == moved.len() => format!(
                " All of them changed more than {} s before {began} and had settled by then: \
                 earlier changes, not moves with the errors.",
                EARLIER_MS / 1000
            ),
            n => format!(
                " {n} of them changed more than {} s before {began} and had settled by then: \
                 listed last, as earlier changes.",
                EARLIER_MS / 1000
            ),
        };
        format!(
            "{} of {} counter series moved {window_text}; the most telling first.{last}",
            moved.len(),
            doc.series_examined - doc.series_skipped
        )
    };
    if !precise {
        doc.summary.push_str(&format!(
            " Timing is known to the minute only: no per-second counts of {what}."
        ));
    }
    doc.moved = moved;
    doc.unjudged_omitted = unjudged.len().saturating_sub(MAX_UNJUDGED) as u64;
    unjudged.truncate(MAX_UNJUDGED);
    doc.unjudged = unjudged;
    doc
}

/// Whether move `m` of `points` is an earlier change (see [`EARLIER_MS`]): it began more
/// than that before `onset`, and of the way it had gone from its usual level by
/// [`STILL_MOVING_AFTER_MS`] after the onset, less than [`STILL_MOVING_SHARE`] was made from
/// [`EARLIER_MS`] before the onset on — a step that settled long before, not a ramp still
/// climbing into the errors nor a level that moved again with them. A level that cannot be
/// read before the onset (no samples) counts as settled: the change is only known to have
/// begun long before.
fn earlier_change(axis: Axis, points: &[Option<f64>], m: &Move, onset: i64) -> bool {
    if m.changed_at >= onset - EARLIER_MS {
        return false;
    }
    let level = |t: i64| {
        let from = axis.at_or_after(t - LEVEL_SPAN_MS);
        let to = axis.at_or_after(t + 1).min(points.len());
        let mut known: Vec<f64> = points[from.min(to)..to].iter().flatten().copied().collect();
        (!known.is_empty()).then(|| median(&mut known))
    };
    let Some(then) = level(onset - EARLIER_MS) else {
        return true;
    };
    let Some(latest) = level(onset + STILL_MOVING_AFTER_MS).or_else(|| level(onset)) else {
        return true;
    };
    let sign = m.change.signum();
    let recent = (latest - then) * sign;
    let whole = (latest - m.before) * sign;
    recent < STILL_MOVING_SHARE * whole
}

/// Where a candidate is listed (lower first): the culprit's own series, then those of the
/// services around it — the other services the pattern was seen in (its callers, reporting its
/// failures) and their peers alike, by rank — then the rest of the node. The failure rate of
/// the pattern's own services retells the pattern (its failures counted by request) and comes
/// after the services' other series, which say more (a callee's requests stopping when its
/// caller's lookups fail). Seen on the Go lab's dns fault: the edge's TIME-WAIT, a moving sum
/// still climbing from the chain's redeploy (rank 0.69, 18 s before the first error), was
/// listed above the silence of the culprit's callee (rank 1.85, 2 s after it) for being the
/// series of a service the pattern was seen in.
fn tier(m: &MovedCounter) -> u8 {
    let own_failures = matches!(
        m.key,
        SeriesKey::ServiceTraffic {
            metric: TrafficMetric::Errors,
            ..
        }
    ) && matches!(m.relation, MovedRelation::Culprit | MovedRelation::Service);
    match m.relation {
        _ if own_failures => 2,
        MovedRelation::Culprit => 0,
        MovedRelation::Service | MovedRelation::Peer => 1,
        MovedRelation::NodeWide => 3,
    }
}

/// The windows one series is judged in: the document's, or, for a series with too few known
/// points in that baseline (a rate's first sample is unknown; a target answered late or
/// failed for a while), a search window that starts once its baseline holds
/// [`MIN_BASELINE_POINTS`] known points, as long as that is before the onset. `None` when it
/// cannot hold them.
fn series_windows(
    axis: Axis,
    windows: &Windows,
    points: &[Option<f64>],
    onset: i64,
) -> Option<Windows> {
    if baseline_points(axis, windows, points) >= MIN_BASELINE_POINTS {
        return Some(*windows);
    }
    windows_from(
        axis,
        windows,
        points,
        onset,
        axis.at_or_after(windows.baseline_start),
    )
}

/// The windows of a series whose baseline starts at point `from`: it holds the first
/// [`MIN_BASELINE_POINTS`] known points from there, and the search starts after them. `None`
/// when that passes the onset.
fn windows_from(
    axis: Axis,
    windows: &Windows,
    points: &[Option<f64>],
    onset: i64,
    from: usize,
) -> Option<Windows> {
    let mut known = points
        .iter()
        .enumerate()
        .skip(from)
        .filter(|(_, v)| v.is_some())
        .map(|(i, _)| i);
    let first = known.next()?;
    // The point after the minimum's last: where the search can start.
    let search = known.nth(MIN_BASELINE_POINTS - 1)?;
    let search_start = axis.time(search);
    (search_start <= onset).then_some(Windows {
        baseline_start: axis.time(first).max(search_start - BASELINE_MS),
        search_start,
        ..*windows
    })
}

/// Why a series whose samples stop inside the search window, with none since, cannot be
/// judged (see its caller): `None` when it has samples to its end, or none in the window.
fn gone_reason(
    axis: Axis,
    w: &Windows,
    points: &[Option<f64>],
    onset: i64,
    began: &str,
) -> Option<String> {
    let from = axis.at_or_after(w.search_start);
    let last = points.iter().rposition(Option::is_some)?;
    // At least two missing points: one is a slow read.
    if last < from || last + 2 >= points.len() {
        return None;
    }
    let since = axis.time(last + 1);
    let secs = (since - onset).abs() / 1000;
    let side = if since < onset { "before" } else { "after" };
    Some(format!(
        "no sample since {}, {secs} s {side} {began}: its source stopped answering (a process \
         gone, a listener closed, a target down), so no level after it can be judged",
        clock(since)
    ))
}

/// Why a series has no baseline, in one sentence.
fn unjudged_reason(
    axis: Axis,
    windows: &Windows,
    points: &[Option<f64>],
    appeared: Option<usize>,
) -> String {
    let known = baseline_points(axis, windows, points);
    let first = match appeared {
        Some(i) => format!("; first seen at {}", clock(axis.time(i))),
        None => "; no sample at all".to_owned(),
    };
    format!(
        "{known} of the {MIN_BASELINE_POINTS} baseline points needed are known from {} to {}, \
         and not enough later ones before the onset{first}",
        clock(windows.baseline_start),
        clock(windows.search_start)
    )
}

/// The caveats of a move (see the module documentation): its baseline overlaps the series'
/// first appearance (`appeared`, a point index) or a start of its service.
fn caveats(
    key: &SeriesKey,
    axis: Axis,
    w: &Windows,
    appeared: Option<usize>,
    changed_at: i64,
    starts: &[ServiceStart],
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(i) = appeared.filter(|&i| i > APPEARANCE_SLACK_POINTS) {
        let at = axis.time(i);
        let what = match key {
            SeriesKey::PortState { port, side, .. } => match side {
                PortSide::Local => format!("port :{port}"),
                PortSide::Remote => format!("port →:{port}"),
            },
            _ => "the series".to_owned(),
        };
        if at >= w.baseline_start && at <= changed_at {
            let secs = (changed_at - at) / 1000;
            out.push(if at < w.search_start {
                format!(
                    "{what} was first seen at {}, {secs} s before it moved, inside its baseline: \
                     its usual level may be its start-up",
                    clock(at)
                )
            } else {
                format!(
                    "{what} was first seen at {}, {secs} s before it moved: it has no usual level \
                     before that, and a new series' start looks like a move",
                    clock(at)
                )
            });
        }
    }
    for s in starts.iter().filter(|s| s.covers(key)) {
        // Its stop (the old process gone) shows before its start: a move between the two is
        // the restart's too.
        let stopped = s.stopped_unix_ms.unwrap_or(s.at_unix_ms).min(s.at_unix_ms);
        if s.at_unix_ms < w.baseline_start || stopped > changed_at {
            continue;
        }
        out.push(if s.at_unix_ms <= changed_at {
            format!(
                "{} (re)started at {}, {} s before it moved: its start-up is in the baseline or \
                 is what moved",
                s.service,
                clock(s.at_unix_ms),
                (changed_at - s.at_unix_ms) / 1000
            )
        } else {
            format!(
                "{} stopped at {} and started again at {}: what moved is its restart",
                s.service,
                clock(stopped),
                clock(s.at_unix_ms)
            )
        });
    }
    out
}

/// How `key` relates to the pattern of `context`, in words (see [`MovedRelation`]).
fn relation(key: &SeriesKey, context: &PatternContext<'_>) -> (MovedRelation, String) {
    if key.kind().is_node_wide() {
        return (
            MovedRelation::NodeWide,
            "node-wide total: moves with any traffic on the node".to_owned(),
        );
    }
    let facts = |name: &str| context.facts.iter().find(|f| f.service == name);
    let culprit_facts = context.culprit.and_then(facts);
    // The pattern's services, the culprit first, each with the word for its role.
    let mut subjects: Vec<(&str, MovedRelation, &str)> = Vec::new();
    if let Some(c) = context.culprit {
        subjects.push((c, MovedRelation::Culprit, "culprit"));
    }
    for s in context.services {
        if context.culprit == Some(s.as_str()) {
            continue;
        }
        let role = match culprit_facts {
            Some(f) if f.callers.contains(s) => "caller",
            Some(f) if f.callees.contains(s) => "callee",
            _ => "service",
        };
        subjects.push((s.as_str(), MovedRelation::Service, role));
    }
    for &(subject, relation, role) in &subjects {
        if let Some(how) = belongs(key, subject, facts(subject)) {
            return (relation, format!("{role}'s {how} ({subject})"));
        }
    }
    for &(subject, _, _) in &subjects {
        let Some(f) = facts(subject) else {
            continue;
        };
        let peers = f
            .callers
            .iter()
            .map(|p| (p, "caller"))
            .chain(f.callees.iter().map(|p| (p, "callee")));
        for (peer, role) in peers {
            if let Some(how) = belongs(key, peer, facts(peer)) {
                return (
                    MovedRelation::Peer,
                    format!("{role}'s {how} ({peer}, a {role} of {subject})"),
                );
            }
        }
    }
    // Further along the calls: a caller's caller waits on the culprit too (its goroutines,
    // its clients' connections), a callee's callee sees its requests stop. Nearest first.
    for &(subject, _, _) in &subjects {
        for (svc, via, up) in further_peers(subject, context.facts) {
            if let Some(how) = belongs(key, &svc, facts(&svc)) {
                let text = if up {
                    format!("upstream caller's {how} ({svc}, calls {subject} through {via})")
                } else {
                    format!("downstream callee's {how} ({svc}, called by {subject} through {via})")
                };
                return (MovedRelation::Peer, text);
            }
        }
    }
    let why = match key.port() {
        Some(p) => {
            format!("node-wide: port {p} is not a port of this pattern's services or their peers")
        }
        None => "node-wide: not a series of this pattern's services or their peers".to_owned(),
    };
    (MovedRelation::NodeWide, why)
}

/// The services two or more calls away from `subject` (its callers' callers upwards, its
/// callees' callees downwards), nearest first, each with the service next to `subject` it is
/// reached through and whether it is upstream. Bounded by the services known: each is
/// visited once per direction.
fn further_peers(subject: &str, facts: &[ServiceFacts]) -> Vec<(String, String, bool)> {
    let next = |name: &str, up: bool| -> Vec<String> {
        facts
            .iter()
            .find(|f| f.service == name)
            .map(|f| {
                if up {
                    f.callers.clone()
                } else {
                    f.callees.clone()
                }
            })
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for up in [true, false] {
        let first = next(subject, up);
        let mut seen: Vec<String> = vec![subject.to_owned()];
        seen.extend(first.iter().cloned());
        // (service, the peer of `subject` it is reached through)
        let mut frontier: Vec<(String, String)> =
            first.iter().map(|p| (p.clone(), p.clone())).collect();
        while !frontier.is_empty() {
            let mut further = Vec::new();
            for (at, via) in &frontier {
                for n in next(at, up) {
                    if !seen.contains(&n) {
                        seen.push(n.clone());
                        out.push((n.clone(), via.clone(), up));
                        further.push((n, via.clone()));
                    }
                }
            }
            frontier = further;
        }
    }
    out
}

/// How `key` belongs to `service` (with what is known of it), if it does: "listening port",
/// "peer port" (a port its calls go to), "accept queue", "goroutines", "process", "request
/// rate", "error rate".
fn belongs(key: &SeriesKey, service: &str, facts: Option<&ServiceFacts>) -> Option<&'static str> {
    match key {
        SeriesKey::PortState { port, side, .. } | SeriesKey::PortTotal { port, side } => {
            let f = facts?;
            if f.listen_ports.contains(port) {
                Some("listening port")
            } else if *side == PortSide::Remote && f.called_ports.contains(port) {
                Some("peer port")
            } else {
                None
            }
        }
        SeriesKey::ListenQueue { port } => {
            facts?.listen_ports.contains(port).then_some("listen queue")
        }
        SeriesKey::Task { target, .. } => (target == service
            || facts.is_some_and(|f| f.task_targets.contains(target)))
        .then_some("goroutines"),
        SeriesKey::Process { name, .. } => (name == service
            || facts.is_some_and(|f| f.processes.contains(name)))
        .then_some("process"),
        SeriesKey::ServiceTraffic { service: s, metric } => {
            (s == service).then_some(match metric {
                TrafficMetric::Requests => "request rate",
                TrafficMetric::Errors => "error rate",
            })
        }
        _ => None,
    }
}

/// The points of a candidate padded to the axis length; a socket series' gaps before its first
/// known point are 0 (the store starts a port-state series at its first socket).
fn filled(c: &Candidate<'_>, len: usize) -> Vec<Option<f64>> {
    let mut points: Vec<Option<f64>> = c.points.iter().copied().take(len).collect();
    // Series shorter than the axis end early: the missing points are its latest samples' gaps.
    points.resize(len, None);
    if c.zero_before_first() {
        if let Some(first) = points.iter().position(Option::is_some) {
            for p in &mut points[..first] {
                *p = Some(0.0);
            }
        }
    }
    points
}

/// Whether the pattern occurred in the [`EFFECT_SLACK_MS`] up to `t` (inclusive).
fn occurred_near(pattern: &[f64], axis: Axis, t: i64) -> bool {
    let from = axis.at_or_after(t - EFFECT_SLACK_MS);
    let to = axis.at_or_after(t + 1).min(pattern.len());
    pattern[from.min(to)..to].iter().any(|&c| c > 0.0)
}

/// The sentence of evidence for one moved counter.
fn evidence(
    key: &SeriesKey,
    m: &Move,
    lead_ms: i64,
    rho: Option<f64>,
    began: &str,
    reference: &str,
) -> String {
    let verb = if m.change > 0.0 { "rose" } else { "fell" };
    let secs = (lead_ms as f64 / 1000.0).round() as i64;
    let when = match secs {
        0 => format!("within a second of {began}"),
        s if s < 0 => format!("{} s before {began}", -s),
        s => format!("{s} s after {began}"),
    };
    // Rates and memory pages say their unit; sockets, fds, threads and tasks are plain
    // counts the label already names.
    let unit = match key.unit() {
        "/s" => "/s",
        "pages" => " pages",
        _ => "",
    };
    let mut text = format!(
        "{} {verb} {}{unit} → {}{unit} ({}) from {}, {when}",
        key.label(),
        number(m.before),
        number(m.reached),
        signed(m.reached - m.before),
        clock(m.changed_at),
    );
    if let Some(r) = rho {
        let how = if r >= 0.7 {
            "in step with"
        } else if r >= 0.3 {
            "loosely with"
        } else if r > -0.3 {
            "not in step with"
        } else {
            "against"
        };
        text.push_str(&format!("; moves {how} {reference} (ρ {r:.2})"));
    }
    text
}

fn signed(v: f64) -> String {
    if v > 0.0 {
        format!("+{}", number(v))
    } else {
        number(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activity::{Emerging, EmergingKind, MinuteCounts, SecondCounts};
    use crate::history::CounterSeries;
    use crate::testing::Noise;

    /// 2026-11-25T20:30:00Z: the start of the synthetic 15-minute history.
    const START: i64 = 1_795_638_600_000;
    const LEN: usize = 900;
    /// The onset: ten minutes into the history.
    const ONSET: i64 = START + 600_000;

    fn at(i: usize) -> i64 {
        START + i as i64 * 1000
    }

    /// Points on the 15-minute axis.
    type Points = Vec<Option<f64>>;

    /// `before` until `change_at` (a time), then `after`.
    fn step(before: f64, after: f64, change_at: i64) -> Points {
        (0..LEN)
            .map(|i| Some(if at(i) < change_at { before } else { after }))
            .collect()
    }

    fn socket(port: u16, side: PortSide, state: SocketState, points: Points) -> CounterSeries {
        CounterSeries {
            key: SeriesKey::PortState { port, side, state },
            points,
        }
    }

    /// A `sockstat` field.
    fn named(name: &str, points: Points) -> CounterSeries {
        CounterSeries {
            key: SeriesKey::Sockstat { key: name.into() },
            points,
        }
    }

    /// A protocol counter rate.
    fn rate(name: &str, points: Points) -> CounterSeries {
        CounterSeries {
            key: SeriesKey::ProtocolRate { key: name.into() },
            points,
        }
    }

    fn snapshot(sockets: Vec<CounterSeries>, sockstat: Vec<CounterSeries>) -> CounterHistory {
        CounterHistory {
            start_unix_ms: START,
            step_ms: 1000,
            series: sockets.into_iter().chain(sockstat).collect(),
            ..CounterHistory::default()
        }
    }

    /// A new pattern first seen at `first_seen`, without occurrence counts yet.
    fn new_pattern(first_seen: i64) -> PatternActivity {
        PatternActivity {
            id: "00000000000000aa".into(),
            first_seen_unix_ms: first_seen,
            emerging: Some(Emerging {
                kind: EmergingKind::New,
                since_unix_ms: first_seen,
            }),
            per_minute: MinuteCounts::default(),
            per_second: None,
        }
    }

    /// `pattern` with these per-second counts.
    fn with_seconds(pattern: &PatternActivity, seconds: SecondCounts) -> PatternActivity {
        PatternActivity {
            per_second: Some(seconds),
            ..pattern.clone()
        }
    }

    /// `rate` occurrences per second from `from` to the end of the history.
    fn occurrences(from: i64, rate: u64) -> SecondCounts {
        SecondCounts {
            start_unix_ms: START,
            counts: (0..LEN)
                .map(|i| if at(i) >= from { rate } else { 0 })
                .collect(),
        }
    }

    fn run(pattern: &PatternActivity, counters: &CounterHistory, from: i64) -> MovedWithIt {
        what_moved(&with_seconds(pattern, occurrences(from, 50)), counters)
    }

    /// Stationary noise around `level`, ± `spread`.
    fn noisy(seed: u64, level: f64, spread: f64) -> Points {
        let mut noise = Noise(seed);
        (0..LEN)
            .map(|_| Some((level + spread * (2.0 * noise.next() - 1.0)).round()))
            .collect()
    }

    #[test]
    fn a_time_wait_step_before_the_first_error_ranks_first_with_its_evidence() {
        // Several ports and leads, so that no fixed answer passes.
        for (port, lead_s, side) in [
            (8080u16, -2i64, PortSide::Remote),
            (5432, -9, PortSide::Local),
            (9090, 4, PortSide::Remote),
        ] {
            let change = ONSET + lead_s * 1000;
            let counters = snapshot(
                vec![
                    socket(
                        port,
                        side,
                        SocketState::TimeWait,
                        step(12.0, 4310.0, change),
                    ),
                    // An effect 25 s later, smaller: moved, but ranks lower.
                    socket(
                        8081,
                        PortSide::Local,
                        SocketState::CloseWait,
                        step(3.0, 60.0, ONSET + 25_000),
                    ),
                    // Moved three minutes before the onset: outside the window.
                    socket(
                        6379,
                        PortSide::Remote,
                        SocketState::Established,
                        step(40.0, 400.0, ONSET - 180_000),
                    ),
                ],
                vec![named("TCP inuse", noisy(7, 200.0, 60.0))],
            );
            let doc = run(&new_pattern(ONSET), &counters, ONSET);
            assert_eq!(doc.verdict, MovedVerdict::Moved, "{}", doc.summary);
            let labels: Vec<&str> = doc.moved.iter().map(|m| m.label.as_str()).collect();
            let want = SeriesKey::PortState {
                port,
                side,
                state: SocketState::TimeWait,
            }
            .label();
            assert_eq!(labels, [want.as_str(), "CLOSE-WAIT :8081"], "{doc:#?}");
            let top = &doc.moved[0];
            assert_eq!(top.lead_ms, lead_s * 1000);
            assert_eq!(top.changed_at_unix_ms, change);
            assert_eq!((top.before, top.after, top.change), (12.0, 4310.0, 4298.0));
            assert_eq!(top.port, Some(port));
            let when = if lead_s < 0 {
                format!("{} s before the first error", -lead_s)
            } else {
                format!("{lead_s} s after the first error")
            };
            assert!(
                top.evidence.contains("rose 12 → 4,310 (+4,298)") && top.evidence.contains(&when),
                "{}",
                top.evidence
            );
            assert_eq!(doc.moved[1].lead_ms, 25_000);
            assert!(top.co_movement.is_some_and(|r| r > 0.7), "{top:?}");
            // The charts' axis lines up with the pattern's.
            assert_eq!(doc.pattern.points.len(), top.history.points.len());
        }
    }

    /// Flat at 40 with a 5-second burst to 450 every 30 s (a cron job, a health checker):
    /// it leaves its band often, but its level does not move.
    fn bursty(phase: usize) -> Points {
        (0..LEN)
            .map(|i| Some(if (i + phase) % 30 < 5 { 450.0 } else { 40.0 }))
            .collect()
    }

    #[test]
    fn a_noisy_but_stationary_series_does_not_move() {
        for seed in 1..20 {
            let counters = snapshot(
                vec![socket(
                    8080,
                    PortSide::Local,
                    SocketState::Established,
                    noisy(seed, 500.0, 150.0),
                )],
                vec![
                    named("TCP inuse", noisy(seed + 100, 200.0, 60.0)),
                    named("TCP tw", noisy(seed + 200, 3.0, 3.0)),
                    named("TCP orphan", bursty(seed as usize)),
                ],
            );
            let doc = run(&new_pattern(ONSET), &counters, ONSET);
            assert_eq!(doc.verdict, MovedVerdict::NothingMoved, "{doc:#?}");
            assert!(doc.summary.starts_with("Nothing moved"), "{}", doc.summary);
            assert_eq!(doc.series_examined, 4);
        }
    }

    #[test]
    fn a_series_that_moved_long_before_the_onset_is_not_attributed() {
        // High since before the history began (an hour ago), and one that stepped 90 s before.
        let counters = snapshot(
            vec![
                socket(
                    8080,
                    PortSide::Local,
                    SocketState::CloseWait,
                    step(0.0, 900.0, START - 3_600_000),
                ),
                socket(
                    5432,
                    PortSide::Remote,
                    SocketState::TimeWait,
                    step(10.0, 2000.0, ONSET - 90_000),
                ),
            ],
            vec![],
        );
        let doc = run(&new_pattern(ONSET), &counters, ONSET);
        assert_eq!(doc.verdict, MovedVerdict::NothingMoved, "{doc:#?}");
        // The same step 30 s before the onset is attributed.
        let counters = snapshot(
            vec![socket(
                5432,
                PortSide::Remote,
                SocketState::TimeWait,
                step(10.0, 2000.0, ONSET - 30_000),
            )],
            vec![],
        );
        let doc = run(&new_pattern(ONSET), &counters, ONSET);
        assert_eq!(doc.moved.len(), 1);
        assert_eq!(doc.moved[0].lead_ms, -30_000);
    }

    #[test]
    fn a_port_that_pops_up_with_a_few_sockets_ranks_below_a_big_move() {
        // After a real node: another client's port appeared with a few dozen TIME-WAIT sockets
        // at the onset, while 500 more connections were established 7 s before it.
        let counters = snapshot(
            vec![
                socket(
                    43853,
                    PortSide::Remote,
                    SocketState::TimeWait,
                    step(0.0, 40.0, ONSET),
                ),
                socket(
                    8080,
                    PortSide::Local,
                    SocketState::Established,
                    step(6.0, 517.0, ONSET - 7_000),
                ),
            ],
            vec![],
        );
        let doc = run(&new_pattern(ONSET), &counters, ONSET);
        let labels: Vec<&str> = doc.moved.iter().map(|m| m.label.as_str()).collect();
        assert_eq!(labels, ["ESTAB :8080", "TIME-WAIT →:43853"], "{doc:#?}");
    }

    /// What moved with a new pattern at [`ONSET`] that gateway reported and whose culprit is
    /// orders, on [`chain`]'s services.
    fn run_for_orders(counters: &CounterHistory) -> MovedWithIt {
        let facts = chain();
        let services = vec!["gateway".to_owned()];
        let context = PatternContext {
            services: &services,
            culprit: Some("orders"),
            facts: &facts,
            starts: &[],
            agent_ports: &[],
        };
        run_for(&new_pattern(ONSET), counters, ONSET, &context)
    }

    fn run_for(
        pattern: &PatternActivity,
        counters: &CounterHistory,
        from: i64,
        context: &PatternContext<'_>,
    ) -> MovedWithIt {
        what_moved_for(
            &with_seconds(pattern, occurrences(from, 50)),
            counters,
            context,
        )
    }

    /// gateway (:9000) calls orders (:8080) and a port nobody listens on (:7070); orders
    /// calls ledger (:7000).
    fn chain() -> Vec<ServiceFacts> {
        vec![
            ServiceFacts {
                service: "gateway".into(),
                listen_ports: vec![9000],
                callees: vec!["orders".into()],
                called_ports: vec![8080, 7070],
                ..ServiceFacts::default()
            },
            ServiceFacts {
                service: "orders".into(),
                listen_ports: vec![8080],
                callers: vec!["gateway".into()],
                callees: vec!["ledger".into()],
                task_targets: vec!["orders-pprof".into()],
                ..ServiceFacts::default()
            },
            ServiceFacts {
                service: "ledger".into(),
                listen_ports: vec![7000],
                callers: vec!["orders".into()],
                ..ServiceFacts::default()
            },
        ]
    }

    /// The agent's own listener moved (a script polling its API with a connection per
    /// request): listed as unjudged with that reason, never as another program's move.
    #[test]
    fn the_agents_own_port_is_unjudged_as_its_own() {
        let counters = snapshot(
            vec![socket(
                41000,
                PortSide::Local,
                SocketState::TimeWait,
                step(0.0, 5_000.0, ONSET),
            )],
            Vec::new(),
        );
        let doc = run(&new_pattern(ONSET), &counters, ONSET);
        assert_eq!(doc.moved[0].label, "TIME-WAIT :41000", "{doc:#?}");
        let context = PatternContext {
            agent_ports: &[41000],
            ..PatternContext::default()
        };
        let doc = run_for(&new_pattern(ONSET), &counters, ONSET, &context);
        assert!(
            doc.moved.iter().all(|m| m.key.port() != Some(41000)),
            "{doc:#?}"
        );
        let own = doc
            .unjudged
            .iter()
            .find(|u| u.label == "TIME-WAIT :41000")
            .expect("listed as unjudged");
        assert!(
            own.reason.contains("this agent's own listener"),
            "{}",
            own.reason
        );
    }

    /// A series two calls away from the culprit is related, not node-wide: the caller's
    /// caller's port holds its clients' waiting connections when the culprit hangs, the
    /// callee's callee's requests stop when the culprit cannot call. Another program's
    /// port stays node-wide.
    #[test]
    fn a_series_two_calls_from_the_culprit_is_a_peers_and_says_through_whom() {
        let counters = snapshot(
            vec![
                // gateway's listening port (gateway → orders → ledger).
                socket(
                    9000,
                    PortSide::Local,
                    SocketState::TimeWait,
                    step(0.0, 80.0, ONSET),
                ),
                // Another program's churn, bigger.
                socket(
                    41000,
                    PortSide::Local,
                    SocketState::TimeWait,
                    step(0.0, 5_000.0, ONSET),
                ),
            ],
            Vec::new(),
        );
        let facts = chain();
        let context = PatternContext {
            services: &[],
            culprit: Some("ledger"),
            facts: &facts,
            starts: &[],
            agent_ports: &[],
        };
        let doc = run_for(&new_pattern(ONSET), &counters, ONSET, &context);
        let got: Vec<(&str, MovedRelation, &str)> = doc
            .moved
            .iter()
            .map(|m| (m.label.as_str(), m.relation, m.relation_text.as_str()))
            .collect();
        assert_eq!(
            got[0],
            (
                "TIME-WAIT :9000",
                MovedRelation::Peer,
                "upstream caller's listening port (gateway, calls ledger through orders)"
            ),
            "{got:#?}"
        );
        assert_eq!(got[1].0, "TIME-WAIT :41000");
        assert_eq!(got[1].1, MovedRelation::NodeWide);

        // Downwards: the gateway fails its own calls; ledger, two calls below, goes quiet.
        let counters = snapshot(
            vec![socket(
                7000,
                PortSide::Local,
                SocketState::Established,
                step(40.0, 0.0, ONSET),
            )],
            Vec::new(),
        );
        let context = PatternContext {
            culprit: Some("gateway"),
            ..context
        };
        let doc = run_for(&new_pattern(ONSET), &counters, ONSET, &context);
        let first = doc.moved.first().expect("ledger's port moved");
        assert_eq!(
            (first.relation, first.relation_text.as_str()),
            (
                MovedRelation::Peer,
                "downstream callee's listening port (ledger, called by gateway through orders)"
            ),
            "{doc:#?}"
        );
    }

    #[test]
    fn the_patterns_own_series_rank_before_a_bigger_move_of_another_programs_port() {
        let counters = snapshot(
            vec![
                // The culprit's listening port.
                socket(
                    8080,
                    PortSide::Local,
                    SocketState::CloseWait,
                    step(2.0, 60.0, ONSET - 1_000),
                ),
                // The port the caller (where the pattern was seen) calls.
                socket(
                    7070,
                    PortSide::Remote,
                    SocketState::TimeWait,
                    step(0.0, 100.0, ONSET),
                ),
                // The culprit's callee's listening port.
                socket(
                    7000,
                    PortSide::Local,
                    SocketState::Established,
                    step(10.0, 200.0, ONSET + 2_000),
                ),
                // Another program's churn, far bigger, at the same moment.
                socket(
                    41000,
                    PortSide::Local,
                    SocketState::TimeWait,
                    step(0.0, 5_000.0, ONSET),
                ),
            ],
            vec![CounterSeries {
                key: SeriesKey::Task {
                    target: "orders-pprof".into(),
                    source: "pprof".into(),
                },
                points: step(20.0, 300.0, ONSET + 1_000),
            }],
        );
        // Without knowing whose the series are, size wins: the other program's port first.
        let doc = run(&new_pattern(ONSET), &counters, ONSET);
        assert_eq!(doc.moved[0].label, "TIME-WAIT :41000", "{doc:#?}");
        assert!(doc
            .moved
            .iter()
            .all(|m| m.relation == MovedRelation::NodeWide));

        let doc = run_for_orders(&counters);
        let got: Vec<(&str, MovedRelation, &str)> = doc
            .moved
            .iter()
            .map(|m| (m.label.as_str(), m.relation, m.relation_text.as_str()))
            .collect();
        assert_eq!(got.len(), 5, "{got:#?}");
        assert_eq!(got[0].1, MovedRelation::Culprit, "{got:#?}");
        assert_eq!(got[1].1, MovedRelation::Culprit, "{got:#?}");
        let culprit: Vec<&str> = got[..2].iter().map(|g| g.2).collect();
        assert!(
            culprit.contains(&"culprit's listening port (orders)")
                && culprit.contains(&"culprit's goroutines (orders)"),
            "{got:#?}"
        );
        assert_eq!(
            got[2],
            (
                "TIME-WAIT →:7070",
                MovedRelation::Service,
                "caller's peer port (gateway)"
            )
        );
        assert_eq!(
            got[3],
            (
                "ESTAB :7000",
                MovedRelation::Peer,
                "callee's listening port (ledger, a callee of orders)"
            )
        );
        assert_eq!(got[4].0, "TIME-WAIT :41000");
        assert_eq!(got[4].1, MovedRelation::NodeWide);
        assert!(got[4].2.starts_with("node-wide: port 41000"), "{got:#?}");
    }

    #[test]
    fn a_change_that_settled_long_before_the_first_error_is_listed_last_as_earlier() {
        // After the Go lab's redeploys: the reporting edge's TIME-WAIT from the traffic
        // driver's reconnections rose 36 s before the first error and sat there; the culprit's
        // own CLOSE-WAIT, its callee's ESTAB and the node's resets moved within seconds of it.
        // Several leads, so that no fixed answer passes.
        for early_s in [20i64, 36, 55] {
            let counters = snapshot(
                vec![
                    // The reporting service's listening port, early and settled: bigger than
                    // every timely move.
                    socket(
                        9000,
                        PortSide::Local,
                        SocketState::TimeWait,
                        step(0.0, 900.0, ONSET - early_s * 1000),
                    ),
                    // The culprit's own port, at the first error.
                    socket(
                        8080,
                        PortSide::Local,
                        SocketState::CloseWait,
                        step(0.0, 60.0, ONSET + 1_000),
                    ),
                    // Its callee's, two seconds later.
                    socket(
                        7000,
                        PortSide::Local,
                        SocketState::Established,
                        step(10.0, 200.0, ONSET + 2_000),
                    ),
                ],
                vec![rate("Tcp EstabResets", step(0.0, 40.0, ONSET))],
            );
            let doc = run_for_orders(&counters);
            let got: Vec<(&str, MovedRelation, bool)> = doc
                .moved
                .iter()
                .map(|m| (m.label.as_str(), m.relation, m.earlier))
                .collect();
            assert_eq!(
                got,
                [
                    ("CLOSE-WAIT :8080", MovedRelation::Culprit, false),
                    ("ESTAB :7000", MovedRelation::Peer, false),
                    ("Tcp EstabResets", MovedRelation::NodeWide, false),
                    ("TIME-WAIT :9000", MovedRelation::Service, true),
                ],
                "{early_s} s: {doc:#?}"
            );
            assert_eq!(doc.moved[3].lead_ms, -early_s * 1000);
            assert!(
                doc.summary
                    .contains("1 of them changed more than 15 s before the first error"),
                "{}",
                doc.summary
            );
        }
    }

    #[test]
    fn a_culprits_ramp_begun_before_the_first_error_and_still_climbing_is_not_earlier() {
        // A leak's CLOSE-WAIT climbing 2 a second from 40 s before the first error (when its
        // holder runs out of fds) to 30 s after: it moves into the errors, and leads.
        let ramp: Points = (0..LEN)
            .map(|i| {
                let t = (at(i) - (ONSET - 40_000)).clamp(0, 70_000);
                Some(2.0 * t as f64 / 1000.0)
            })
            .collect();
        let counters = snapshot(
            vec![
                socket(8080, PortSide::Local, SocketState::CloseWait, ramp),
                socket(
                    9000,
                    PortSide::Local,
                    SocketState::TimeWait,
                    step(0.0, 300.0, ONSET - 40_000),
                ),
            ],
            vec![],
        );
        let doc = run_for_orders(&counters);
        let got: Vec<(&str, bool)> = doc
            .moved
            .iter()
            .map(|m| (m.label.as_str(), m.earlier))
            .collect();
        assert_eq!(
            got,
            [("CLOSE-WAIT :8080", false), ("TIME-WAIT :9000", true)],
            "{doc:#?}"
        );
        assert!(doc.moved[0].lead_ms < -EARLIER_MS, "{doc:#?}");
    }

    /// The Go lab's dns fault (`testdata/go-lab-dns-edge-time-wait.json`, recorded counters):
    /// carts' lookups of ledger-api fail, so ledger-api's requests stop 2 s after the first
    /// error, while the edge's TIME-WAIT (storefront's listening port; the pattern was seen in
    /// storefront too) still climbs from the chain's redeploy, from before it. The callee's
    /// silence says where the calls no longer go; it is listed first, the edge's climb after
    /// it (before: first, for being a series of a service the pattern was seen in).
    #[test]
    fn a_callees_silence_ranks_above_a_reporting_callers_slow_climb_begun_earlier() {
        let rec = crate::testing::Recorded::parse(include_str!(
            "../testdata/go-lab-dns-edge-time-wait.json"
        ));
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("../testdata/go-lab-dns-edge-time-wait.json"))
                .expect("JSON");
        let traffic = |service: &str, metric| SeriesKey::ServiceTraffic {
            service: service.into(),
            metric,
        };
        let series = [
            (
                SeriesKey::PortState {
                    port: 51291,
                    side: PortSide::Local,
                    state: SocketState::TimeWait,
                },
                rec.points("time_wait_edge"),
            ),
            (
                traffic("ledger-api", TrafficMetric::Requests),
                rec.points("ledger_requests"),
            ),
            (
                traffic("carts", TrafficMetric::Errors),
                rec.points("carts_errors"),
            ),
            (
                traffic("storefront", TrafficMetric::Errors),
                rec.points("storefront_errors"),
            ),
        ];
        let last = series[0].1.len() - 1;
        let counters = rec.history_until(&series, last);
        let onset = fixture["onset_unix_ms"].as_i64().expect("onset");
        let pattern = PatternActivity {
            id: "c639d62f19d896c7".into(),
            first_seen_unix_ms: onset,
            emerging: Some(Emerging {
                kind: EmergingKind::New,
                since_unix_ms: onset,
            }),
            per_minute: MinuteCounts::default(),
            per_second: Some(SecondCounts {
                start_unix_ms: fixture["pattern_start_unix_ms"].as_i64().expect("start"),
                counts: rec
                    .points("pattern")
                    .iter()
                    .map(|c| c.unwrap_or(0.0) as u64)
                    .collect(),
            }),
        };
        let facts = vec![
            ServiceFacts {
                service: "storefront".into(),
                listen_ports: vec![51291],
                callees: vec!["carts".into()],
                called_ports: vec![44779],
                ..ServiceFacts::default()
            },
            ServiceFacts {
                service: "carts".into(),
                listen_ports: vec![44779],
                callers: vec!["storefront".into()],
                callees: vec!["ledger-api".into()],
                called_ports: vec![40611],
                ..ServiceFacts::default()
            },
            ServiceFacts {
                service: "ledger-api".into(),
                listen_ports: vec![40611],
                callers: vec!["carts".into()],
                ..ServiceFacts::default()
            },
        ];
        let services = vec!["carts".to_owned(), "storefront".to_owned()];
        let at = |point: &str| rec.start + rec.index(point) as i64 * 1000;
        let starts: Vec<ServiceStart> = [
            ("storefront", 51291),
            ("carts", 44779),
            ("ledger-api", 40611),
        ]
        .into_iter()
        .map(|(service, port)| ServiceStart {
            service: service.into(),
            at_unix_ms: at("restart_point"),
            stopped_unix_ms: Some(at("stopped_point")),
            ports: vec![port],
            task_targets: vec![],
            processes: vec![],
        })
        .collect();
        let context = PatternContext {
            services: &services,
            culprit: Some("carts"),
            facts: &facts,
            starts: &starts,
            agent_ports: &[],
        };
        let doc = what_moved_for(&pattern, &counters, &context);
        let got: Vec<(&str, MovedRelation, bool)> = doc
            .moved
            .iter()
            .map(|m| (m.label.as_str(), m.relation, m.earlier))
            .collect();
        assert_eq!(
            got[..2],
            [
                ("ledger-api request rate", MovedRelation::Peer, false),
                ("TIME-WAIT :51291", MovedRelation::Service, false),
            ],
            "{doc:#?}"
        );
        assert!(doc.moved[1].lead_ms < 0, "{doc:#?}");
        // The failure rates retell the pattern: after both.
        let rest: Vec<&str> = got[2..].iter().map(|g| g.0).collect();
        assert_eq!(
            rest,
            ["carts error rate", "storefront error rate"],
            "{doc:#?}"
        );
    }

    /// The Go lab's listen-overflow: the callee's accept queue (backlog 8) filled 0 → 9 at
    /// the fault, the incident's top counter, and "what moved" never listed it: a level had to
    /// move by 20, more than the queue can hold. It takes the detector's floor for a queue.
    #[test]
    fn a_small_accept_queue_that_fills_is_the_culprits_move() {
        let counters = snapshot(
            vec![socket(
                8080,
                PortSide::Remote,
                SocketState::SynSent,
                step(0.0, 30.0, ONSET),
            )],
            vec![CounterSeries {
                key: SeriesKey::ListenQueue { port: 8080 },
                points: step(0.0, 9.0, ONSET - 1_000),
            }],
        );
        let doc = run_for_orders(&counters);
        let queue = doc
            .moved
            .iter()
            .find(|m| m.key == SeriesKey::ListenQueue { port: 8080 })
            .unwrap_or_else(|| panic!("{doc:#?}"));
        assert_eq!(queue.relation, MovedRelation::Culprit);
        assert_eq!(queue.relation_text, "culprit's listen queue (orders)");
        assert!(
            queue.evidence.starts_with("listen queue :8080 rose 0 → 9"),
            "{}",
            queue.evidence
        );
        // A queue that holds a few more for a moment is no move.
        let counters = snapshot(
            vec![],
            vec![CounterSeries {
                key: SeriesKey::ListenQueue { port: 8080 },
                points: step(0.0, 3.0, ONSET - 1_000),
            }],
        );
        let doc = run_for_orders(&counters);
        assert_eq!(doc.verdict, MovedVerdict::NothingMoved, "{doc:#?}");
    }

    #[test]
    fn a_baseline_over_a_first_appearance_or_a_service_start_is_a_caveat() {
        // Goroutines of a target first read 90 s before the onset (its service had just
        // started): a baseline of exactly the minimum, all of it inside the baseline window.
        let mut late: Points = step(50.0, 400.0, ONSET);
        for p in &mut late[..510] {
            *p = None;
        }
        // The same move on two ports, one of a service that restarted 100 s before.
        let counters = snapshot(
            vec![
                socket(
                    8080,
                    PortSide::Local,
                    SocketState::Established,
                    step(10.0, 200.0, ONSET),
                ),
                socket(
                    9090,
                    PortSide::Local,
                    SocketState::Established,
                    step(10.0, 200.0, ONSET),
                ),
                socket(
                    7070,
                    PortSide::Local,
                    SocketState::Established,
                    step(10.0, 200.0, ONSET),
                ),
            ],
            vec![CounterSeries {
                key: SeriesKey::Task {
                    target: "orders".into(),
                    source: "pprof".into(),
                },
                points: late,
            }],
        );
        // And one of a service that stopped just before the move and whose new process was
        // found after it: what moved is its restart.
        let starts = [
            ServiceStart {
                service: "orders".into(),
                at_unix_ms: ONSET - 100_000,
                stopped_unix_ms: Some(ONSET - 101_000),
                ports: vec![8080],
                task_targets: vec![],
                processes: vec![],
            },
            ServiceStart {
                service: "ledger".into(),
                at_unix_ms: ONSET + 20_000,
                stopped_unix_ms: Some(ONSET - 2_000),
                ports: vec![7070],
                ..ServiceStart::default()
            },
        ];
        let context = PatternContext {
            starts: &starts,
            ..PatternContext::default()
        };
        let doc = run_for(&new_pattern(ONSET), &counters, ONSET, &context);
        let by = |label: &str| {
            doc.moved
                .iter()
                .find(|m| m.label == label)
                .unwrap_or_else(|| panic!("{label} not listed: {doc:#?}"))
        };
        let clean = by("ESTAB :9090");
        assert_eq!(clean.confidence, MovedConfidence::High);
        assert!(clean.caveats.is_empty());
        let restarted = by("ESTAB :8080");
        assert_eq!(restarted.confidence, MovedConfidence::Low);
        assert!(
            restarted.caveats[0].starts_with("orders (re)started at"),
            "{:?}",
            restarted.caveats
        );
        let stopped = by("ESTAB :7070");
        assert_eq!(stopped.confidence, MovedConfidence::Low);
        assert!(
            stopped.caveats[0].starts_with("ledger stopped at")
                && stopped.caveats[0].ends_with("what moved is its restart"),
            "{:?}",
            stopped.caveats
        );
        // Same move, same relation: the one with a usual baseline ranks first.
        assert!(clean.rank > restarted.rank);
        let labels: Vec<&str> = doc.moved.iter().map(|m| m.label.as_str()).collect();
        assert!(
            labels.iter().position(|l| *l == "ESTAB :9090")
                < labels.iter().position(|l| *l == "ESTAB :8080")
        );
        let young = by("goroutines orders (pprof)");
        assert_eq!(young.confidence, MovedConfidence::Low);
        assert!(
            young.caveats[0].contains("inside its baseline"),
            "{:?}",
            young.caveats
        );
    }

    #[test]
    fn a_rate_whose_first_sample_is_unknown_is_judged_and_what_cannot_be_judged_is_listed() {
        // The agent started 45 s before the onset. A rate's first sample is always unknown
        // (it needs two readings): 29 known points where the baseline window holds 30.
        let onset = START + 45_000;
        let mut resets: Points = step(0.0, 12.0, onset);
        resets[0] = None;
        // A task target that answered only 10 s before the onset.
        let mut tasks: Points = step(30.0, 30.0, onset);
        for p in &mut tasks[..35] {
            *p = None;
        }
        let counters = snapshot(
            vec![],
            vec![
                rate("Tcp EstabResets", resets),
                CounterSeries {
                    key: SeriesKey::Task {
                        target: "orders".into(),
                        source: "pprof".into(),
                    },
                    points: tasks,
                },
            ],
        );
        let doc = run(&new_pattern(onset), &counters, onset);
        assert_eq!(doc.moved.len(), 1, "{doc:#?}");
        assert_eq!(doc.moved[0].label, "Tcp EstabResets");
        assert_eq!(doc.moved[0].lead_ms, 0);
        assert_eq!(doc.series_skipped, 1);
        assert_eq!(doc.unjudged.len(), 1, "{doc:#?}");
        assert_eq!(doc.unjudged[0].label, "goroutines orders (pprof)");
        assert!(
            doc.unjudged[0]
                .reason
                .starts_with("0 of the 30 baseline points needed are known"),
            "{}",
            doc.unjudged[0].reason
        );
    }

    /// Seen on the Go lab's crash: the killed callee's open fds stopped at the first refused
    /// call; with no level after it to judge, the series was listed nowhere.
    #[test]
    fn a_series_whose_samples_stop_at_the_onset_is_listed_as_gone_not_dropped() {
        let onset = START + 400_000;
        let fds_key = SeriesKey::Process {
            name: "stock".into(),
            metric: ProcessMetric::OpenFds,
        };
        let mut fds: Points = step(12.0, 12.0, onset);
        let cut = ((onset - START) / 1000) as usize;
        for p in &mut fds[cut..] {
            *p = None;
        }
        let counters = snapshot(
            vec![],
            vec![CounterSeries {
                key: fds_key.clone(),
                points: fds,
            }],
        );
        let doc = run(&new_pattern(onset), &counters, onset);
        assert!(doc.moved.is_empty(), "{doc:#?}");
        assert_eq!(doc.unjudged.len(), 1, "{doc:#?}");
        assert_eq!(doc.unjudged[0].key, fds_key);
        assert!(
            doc.unjudged[0].reason.starts_with(&format!(
                "no sample since {}, 0 s after the first error: its source stopped answering",
                clock(onset)
            )),
            "{}",
            doc.unjudged[0].reason
        );
    }

    #[test]
    fn a_callees_request_rate_falling_is_judged_on_its_five_second_means() {
        // About 20 requests a second (± 8), none from the onset: its caller's lookups fail.
        let mut noise = Noise(5);
        let counts: Vec<u32> = (0..LEN)
            .map(|i| {
                if at(i) >= ONSET {
                    0
                } else {
                    (20.0 + 8.0 * (2.0 * noise.next() - 1.0)).round() as u32
                }
            })
            .collect();
        let key = SeriesKey::ServiceTraffic {
            service: "ledger".into(),
            metric: TrafficMetric::Requests,
        };
        // The culprit's own failures: every request it gets fails from the onset.
        let failures: Vec<u32> = (0..LEN)
            .map(|i| if at(i) >= ONSET { 20 } else { 0 })
            .collect();
        let first_request = START / 1000;
        let counters = snapshot(
            vec![],
            vec![
                CounterSeries {
                    key: SeriesKey::ServiceTraffic {
                        service: "orders".into(),
                        metric: TrafficMetric::Errors,
                    },
                    points: crate::history::traffic_points_from(
                        START / 1000,
                        &failures,
                        first_request,
                        START,
                        1000,
                        LEN,
                    ),
                },
                CounterSeries {
                    key,
                    points: crate::history::traffic_points(START / 1000, &counts, START, 1000, LEN),
                },
            ],
        );
        let facts = chain();
        let services = vec!["orders".to_owned()];
        let context = PatternContext {
            services: &services,
            culprit: Some("orders"),
            facts: &facts,
            starts: &[],
            agent_ports: &[],
        };
        let doc = run_for(&new_pattern(ONSET), &counters, ONSET, &context);
        assert_eq!(doc.moved.len(), 2, "{doc:#?}");
        // The culprit's failures retell the pattern: after its callee's silence.
        assert_eq!(doc.moved[1].label, "orders error rate");
        assert_eq!(doc.moved[1].relation, MovedRelation::Culprit);
        let m = &doc.moved[0];
        assert_eq!(m.label, "ledger request rate");
        assert_eq!(m.relation, MovedRelation::Peer);
        assert_eq!(
            m.relation_text,
            "callee's request rate (ledger, a callee of orders)"
        );
        assert!(m.evidence.contains(" fell "), "{}", m.evidence);
        assert!(m.evidence.contains("→ 0/s"), "{}", m.evidence);
    }

    /// Seen on the Go lab's crash after a redeploy 60 s before it: the killed callee's
    /// request rate, 60/s → 0 at the first refused call, was judged against a baseline that
    /// was mostly the redeploy's downtime (0/s), and was no move. Its baseline starts at its
    /// restart.
    #[test]
    fn a_series_of_a_service_restarted_inside_the_baseline_is_judged_from_its_start() {
        // As in the lab: ledger first served 60/s 140 s before the onset (a first deploy),
        // stopped 100 s before it, started again 60 s before it, served 60/s, and gets
        // nothing from the onset.
        let (first, stopped, started) = (ONSET - 140_000, ONSET - 100_000, ONSET - 60_000);
        let mut noise = Noise(7);
        let counts: Vec<u32> = (0..LEN)
            .map(|i| {
                let t = at(i);
                if t < first || t >= ONSET || (stopped..started).contains(&t) {
                    0
                } else {
                    (60.0 + 6.0 * (2.0 * noise.next() - 1.0)).round() as u32
                }
            })
            .collect();
        let key = SeriesKey::ServiceTraffic {
            service: "ledger".into(),
            metric: TrafficMetric::Requests,
        };
        let counters = snapshot(
            vec![],
            vec![CounterSeries {
                key: key.clone(),
                points: crate::history::traffic_points_from(
                    START / 1000,
                    &counts,
                    first / 1000,
                    START,
                    1000,
                    LEN,
                ),
            }],
        );
        let facts = chain();
        let services = vec!["orders".to_owned()];
        let starts = [ServiceStart {
            service: "ledger".into(),
            at_unix_ms: started,
            stopped_unix_ms: Some(stopped),
            ports: vec![7000],
            ..ServiceStart::default()
        }];
        let judged = |starts: &[ServiceStart]| {
            let context = PatternContext {
                services: &services,
                culprit: Some("ledger"),
                facts: &facts,
                starts,
                agent_ports: &[],
            };
            run_for(&new_pattern(ONSET), &counters, ONSET, &context)
        };
        let doc = judged(&starts);
        let m = doc
            .moved
            .iter()
            .find(|m| m.key == key)
            .unwrap_or_else(|| panic!("{doc:#?}"));
        assert_eq!(m.relation, MovedRelation::Culprit);
        assert!(m.evidence.contains(" fell "), "{}", m.evidence);
        assert!(
            m.caveats.iter().any(|c| c.contains("(re)started at")),
            "{:?}",
            m.caveats
        );
    }

    #[test]
    fn a_ramp_is_reported_at_the_height_it_reached() {
        // TIME-WAIT climbing 25 a second from the onset on, for the rest of the history.
        let ramp: Points = (0..LEN)
            .map(|i| Some(40.0 + 25.0 * (at(i) - ONSET).max(0) as f64 / 1000.0))
            .collect();
        let counters = snapshot(
            vec![socket(8080, PortSide::Local, SocketState::TimeWait, ramp)],
            vec![],
        );
        let doc = run(&new_pattern(ONSET), &counters, ONSET);
        let m = &doc.moved[0];
        // Left its band (40 ± 3·√41 ≈ ±19) on the first sample past +19: the second one.
        assert_eq!(m.lead_ms, 1_000);
        // The median of the two minutes after is mid-ramp; the sentence quotes the height.
        assert!((m.after - 1_565.0).abs() <= 25.0, "{m:?}");
        assert!(m.reached > 2_900.0 && m.reached <= 3_065.0, "{m:?}");
        assert!(m.evidence.contains("rose 40 → "), "{}", m.evidence);
    }

    #[test]
    fn ports_that_come_and_go_with_a_few_sockets_are_not_a_move() {
        // Other programs' client ports popping up with a handful of TIME-WAIT sockets at the
        // onset (seen on a real node while the errors had nothing to do with sockets).
        let counters = snapshot(
            [
                (40269u16, 10.0, 0),
                (38871, 11.0, -2_000),
                (43391, 6.0, 6_000),
            ]
            .into_iter()
            .map(|(port, n, lead)| {
                socket(
                    port,
                    PortSide::Remote,
                    SocketState::TimeWait,
                    step(0.0, n, ONSET + lead),
                )
            })
            .collect(),
            vec![],
        );
        let doc = run(&new_pattern(ONSET), &counters, ONSET);
        assert_eq!(doc.verdict, MovedVerdict::NothingMoved, "{doc:#?}");
        // A rate has no such floor: listen overflows from none to 8 a second is news.
        let mut counters = counters;
        counters.series.push(rate(
            "TcpExt ListenOverflows",
            step(0.0, 8.0, ONSET - 1_000),
        ));
        let doc = run(&new_pattern(ONSET), &counters, ONSET);
        assert_eq!(doc.moved.len(), 1, "{doc:#?}");
        assert_eq!(doc.moved[0].label, "TcpExt ListenOverflows");
    }

    #[test]
    fn a_storm_after_a_short_burst_of_other_errors_is_not_their_effect() {
        // Ten seconds of EOFs at the onset, then a TIME-WAIT storm 27 s later (a real node).
        let counters = snapshot(
            vec![socket(
                37405,
                PortSide::Remote,
                SocketState::TimeWait,
                step(0.0, 13_000.0, ONSET + 27_000),
            )],
            vec![],
        );
        let mut seconds = occurrences(ONSET, 4);
        for c in &mut seconds.counts[610..] {
            *c = 0;
        }
        let doc = what_moved(
            &with_seconds(&new_pattern(ONSET), seconds.clone()),
            &counters,
        );
        assert_eq!(doc.verdict, MovedVerdict::NothingMoved, "{doc:#?}");
        // While the errors go on, the same storm is attributed, 27 s after.
        let doc = run(&new_pattern(ONSET), &counters, ONSET);
        assert_eq!(doc.moved.len(), 1, "{doc:#?}");
        assert_eq!(doc.moved[0].lead_ms, 27_000);
        // A short burst right after a step that stays: the step is still what moved with it.
        let counters = snapshot(
            vec![socket(
                8080,
                PortSide::Remote,
                SocketState::TimeWait,
                step(12.0, 4_310.0, ONSET - 2_000),
            )],
            vec![],
        );
        let doc = what_moved(
            &with_seconds(&new_pattern(ONSET), seconds.clone()),
            &counters,
        );
        assert_eq!(doc.moved.len(), 1, "{doc:#?}");
    }

    #[test]
    fn a_port_ranks_above_the_node_wide_totals_that_moved_with_it() {
        let counters = snapshot(
            vec![socket(
                37405,
                PortSide::Remote,
                SocketState::TimeWait,
                step(0.0, 13_196.0, ONSET - 1_000),
            )],
            vec![
                named("TCP tw", step(0.0, 13_394.0, ONSET - 1_000)),
                rate("Tcp InSegs", step(0.0, 17_417.0, ONSET - 1_000)),
            ],
        );
        let doc = run(&new_pattern(ONSET), &counters, ONSET);
        let labels: Vec<&str> = doc.moved.iter().map(|m| m.label.as_str()).collect();
        assert_eq!(labels[0], "TIME-WAIT →:37405", "{labels:?}");
        assert_eq!(labels.len(), 3);
    }

    #[test]
    fn a_bump_before_a_storm_does_not_date_the_storm() {
        // Segment rates: noisy around 230/s with a 3-second bump 24 s before the onset, then
        // the storm 5 s before it (the shape seen on a real node).
        let mut series = noisy(3, 230.0, 20.0);
        for p in &mut series[576..579] {
            *p = Some(600.0);
        }
        for p in &mut series[595..] {
            *p = Some(12_900.0);
        }
        let counters = snapshot(vec![], vec![named("Tcp OutSegs", series)]);
        let doc = run(&new_pattern(ONSET), &counters, ONSET);
        assert_eq!(doc.moved.len(), 1, "{doc:#?}");
        assert_eq!(doc.moved[0].lead_ms, -5_000, "{:?}", doc.moved[0].evidence);
    }

    #[test]
    fn a_blip_is_not_a_move_and_a_fall_is() {
        let mut blip = step(20.0, 20.0, ONSET);
        for p in &mut blip[600..602] {
            *p = Some(5000.0);
        }
        let counters = snapshot(
            vec![
                socket(80, PortSide::Local, SocketState::Established, blip),
                socket(
                    443,
                    PortSide::Local,
                    SocketState::Established,
                    step(800.0, 100.0, ONSET + 3000),
                ),
            ],
            vec![],
        );
        let doc = run(&new_pattern(ONSET), &counters, ONSET);
        assert_eq!(doc.moved.len(), 1, "{doc:#?}");
        assert_eq!(doc.moved[0].label, "ESTAB :443");
        assert!(doc.moved[0].evidence.contains("fell 800 → 100 (-700)"));
    }

    #[test]
    fn empty_or_short_history_says_so() {
        let empty = CounterHistory::default();
        let doc = run(&new_pattern(ONSET), &empty, ONSET);
        assert_eq!(doc.verdict, MovedVerdict::NotEnoughHistory);
        assert!(
            doc.summary.contains("no counter samples"),
            "{}",
            doc.summary
        );

        let tw = || {
            snapshot(
                vec![socket(
                    8080,
                    PortSide::Remote,
                    SocketState::TimeWait,
                    step(12.0, 4310.0, START + 20_000),
                )],
                vec![],
            )
        };
        // Began 20 s after the history did: less than the 30 s baseline.
        let doc = run(&new_pattern(START + 20_000), &tw(), START + 20_000);
        assert_eq!(doc.verdict, MovedVerdict::NotEnoughHistory, "{doc:#?}");
        assert!(doc.summary.contains("needs 30 s"), "{}", doc.summary);
        assert!(doc.moved.is_empty());

        // Began an hour before the history: older than the ring.
        let doc = run(&new_pattern(START - 3_600_000), &tw(), START - 3_600_000);
        assert_eq!(doc.verdict, MovedVerdict::NotEnoughHistory);

        // Began after the latest sample.
        let later = at(LEN - 1) + 5_000;
        let doc = run(&new_pattern(later), &tw(), later);
        assert_eq!(doc.verdict, MovedVerdict::NotEnoughHistory);
        assert!(doc.summary.contains("after the latest"), "{}", doc.summary);

        // The agent started 45 s before the onset: the lead window shrinks, the move is found.
        let onset = START + 45_000;
        let counters = snapshot(
            vec![socket(
                8080,
                PortSide::Remote,
                SocketState::TimeWait,
                step(12.0, 4310.0, onset - 2_000),
            )],
            vec![],
        );
        let doc = run(&new_pattern(onset), &counters, onset);
        assert_eq!(doc.verdict, MovedVerdict::Moved, "{doc:#?}");
        assert_eq!(doc.search_start_unix_ms, Some(START + 30_000));
        assert_eq!(doc.moved[0].lead_ms, -2_000);
    }

    #[test]
    fn a_socket_series_that_starts_mid_history_counts_from_zero() {
        // The store starts a port-state series at its first socket: gaps before read as 0.
        let mut points = step(0.0, 300.0, ONSET - 1_000);
        for p in &mut points[..599] {
            *p = None;
        }
        let counters = snapshot(
            vec![socket(
                41234,
                PortSide::Local,
                SocketState::TimeWait,
                points,
            )],
            vec![],
        );
        let doc = run(&new_pattern(ONSET), &counters, ONSET);
        assert_eq!(doc.moved.len(), 1, "{doc:#?}");
        assert!(doc.moved[0]
            .evidence
            .starts_with("TIME-WAIT :41234 rose 0 → 300"));
    }

    #[test]
    fn a_surge_onset_is_placed_to_the_second_and_minute_counts_are_a_fallback() {
        // The store says the surge began at the minute; the per-second counts say 20:40:17.
        let minute = ONSET;
        let burst = ONSET + 17_000;
        let mut summary = new_pattern(START);
        summary.emerging = Some(Emerging {
            kind: EmergingKind::Surge,
            since_unix_ms: minute,
        });
        let mut seconds = occurrences(burst, 40);
        for c in &mut seconds.counts[..600] {
            *c = 1;
        }
        let counters = snapshot(
            vec![socket(
                8080,
                PortSide::Remote,
                SocketState::TimeWait,
                step(12.0, 4310.0, burst - 3_000),
            )],
            vec![],
        );
        let doc = what_moved(&with_seconds(&summary, seconds), &counters);
        assert_eq!(doc.onset_unix_ms, burst, "{doc:#?}");
        assert_eq!(doc.moved[0].lead_ms, -3_000);
        assert!(doc.moved[0].evidence.contains("3 s before the surge began"));

        // Only per-minute counts: the onset stays at the minute, and the answer says so.
        let per_minute = MinuteCounts {
            start_unix_ms: START,
            counts: (0..15).map(|m| if m >= 10 { 2400 } else { 60 }).collect(),
        };
        let minutes_only = PatternActivity {
            per_minute,
            ..summary.clone()
        };
        let doc = what_moved(&minutes_only, &counters);
        assert_eq!(doc.onset_unix_ms, minute);
        assert_eq!(doc.onset_precision_ms, 60_000);
        assert!(
            doc.summary.contains("known to the minute"),
            "{}",
            doc.summary
        );
        assert_eq!(doc.moved[0].lead_ms, 14_000);
    }

    #[test]
    fn a_storm_on_one_port_is_not_retold_by_every_node_wide_total() {
        let counters = snapshot(
            vec![socket(
                18080,
                PortSide::Local,
                SocketState::CloseWait,
                step(0.0, 15_000.0, ONSET - 1_000),
            )],
            ["TCP inuse", "TCP alloc", "sockets used", "TCP mem"]
                .iter()
                .map(|n| named(n, step(10.0, 15_010.0, ONSET - 1_000)))
                .collect(),
        );
        let doc = run(&new_pattern(ONSET), &counters, ONSET);
        assert_eq!(doc.moved[0].label, "CLOSE-WAIT :18080", "{doc:#?}");
        let node_wide = doc
            .moved
            .iter()
            .filter(|m| m.kind == CounterKind::Sockstat)
            .count();
        assert_eq!(node_wide, MAX_NODE_WIDE, "{doc:#?}");
        // Alone, the totals are the answer: all of them.
        let totals_only = snapshot(vec![], counters.series[1..].to_vec());
        let doc = run(&new_pattern(ONSET), &totals_only, ONSET);
        assert_eq!(doc.moved.len(), 4, "{doc:#?}");
    }

    #[test]
    fn every_family_of_counters_is_examined() {
        let process = |metric, points| CounterSeries {
            key: SeriesKey::Process {
                name: "orders".into(),
                metric,
            },
            points,
        };
        let counters = snapshot(
            vec![],
            vec![
                named("TCP tw", step(5.0, 3000.0, ONSET)),
                rate("TcpExt ListenOverflows", step(0.0, 250.0, ONSET + 1_000)),
                process(ProcessMetric::OpenFds, step(100.0, 100.0, ONSET)),
                process(ProcessMetric::Threads, step(12.0, 12.0, ONSET)),
                CounterSeries {
                    key: SeriesKey::Task {
                        target: "orders".into(),
                        source: "pprof".into(),
                    },
                    points: step(80.0, 5000.0, ONSET + 10_000),
                },
                // A listener whose service stopped accepting (one history per port, whatever
                // its addresses).
                CounterSeries {
                    key: SeriesKey::ListenQueue { port: 8080 },
                    points: step(0.0, 128.0, ONSET - 2_000),
                },
                // Not judged: node-wide totals retell the ports, memory and the agent's own
                // runtime follow the error rate whatever the cause.
                CounterSeries {
                    key: SeriesKey::NodeState {
                        state: SocketState::TimeWait,
                    },
                    points: step(5.0, 3000.0, ONSET),
                },
                process(ProcessMetric::RssBytes, step(1e6, 9e6, ONSET)),
                CounterSeries {
                    key: SeriesKey::Runtime {
                        metric: faultline_series::RuntimeMetric::AliveTasks,
                    },
                    points: step(40.0, 4000.0, ONSET),
                },
            ],
        );
        let doc = run(&new_pattern(ONSET), &counters, ONSET);
        assert_eq!(doc.series_examined, 6);
        let mut kinds: Vec<CounterKind> = doc.moved.iter().map(|m| m.kind).collect();
        kinds.sort_by_key(|k| format!("{k:?}"));
        assert_eq!(
            kinds,
            [
                CounterKind::AcceptQueue,
                CounterKind::ProtocolRate,
                CounterKind::Sockstat,
                CounterKind::Tasks
            ]
        );
        let queue = doc
            .moved
            .iter()
            .find(|m| m.kind == CounterKind::AcceptQueue);
        assert!(
            queue.is_some_and(|m| m.evidence.starts_with("listen queue :8080 rose 0 → 128")),
            "{doc:#?}"
        );
        let rate = doc
            .moved
            .iter()
            .find(|m| m.kind == CounterKind::ProtocolRate);
        assert!(
            rate.is_some_and(|m| m.evidence.contains("0/s → 250/s")),
            "{doc:#?}"
        );
    }
}
