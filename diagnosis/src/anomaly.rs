//! Counter anomalies: counter series that broke from their own baseline, whether or not any
//! error pattern came with them.
//!
//! A TIME-WAIT storm, a CLOSE-WAIT leak or a goroutine leak often logs nothing for seconds or
//! minutes; the counters are the first witness. [`detect`] judges every series of a
//! [`CounterHistory`] at the end of its axis ("now") and returns the ones that broke, with the
//! series it could not judge and why. It is pure: the same history gives the same answer; the
//! caller (the agent, once a second) keeps what was raised over time
//! ([`crate::incident::IncidentTracker`]).
//!
//! The method, per series (the same statistics as "what moved"):
//!
//! 1. **Windows.** The *search window* is the last [`AnomalyConfig::search_ms`] of the
//!    history; the *baseline window* is the [`AnomalyConfig::baseline_ms`] before it (clipped
//!    at the start of the history). In a history younger than both, the search window starts
//!    after the baseline's minimum of points. A baseline with fewer than
//!    [`AnomalyConfig::min_baseline_points`] known points is not judged. A series that
//!    first appeared after the history began (a service started after the agent), or whose
//!    service (re)started while the agent watched ([`ServiceStart`]: a new process id), has
//!    its start-up there, not a usual level: its baseline starts
//!    [`AnomalyConfig::warmup_ms`] after that start, and its search window starts later
//!    when that is needed to keep the baseline's minimum; until then it is not judged, and
//!    the answer says so ("edge (re)started at 20:41:03 UTC ..."). A restarted series must
//!    also pass where it was before the restart (its clients reconnecting are no break), and
//!    a port "not counted" for less than a baseline before it was counted has no past.
//! 2. **Baseline.** Median level `m`, noise `σ = max(1.4826·MAD, √(|m|+1))`, band
//!    `m ± 3σ`, and the baseline's own extreme (its highest point for a rise). A young
//!    baseline (one that begins at such a start) that still climbs — connection pools
//!    filling, TIME-WAIT piling up through its first minute — is *warming up*: it is cut to
//!    its later half while that keeps the minimum; if it still climbs, the series is judged
//!    against that climb (its points less the fastest the baseline climbed), with no ramp
//!    test, and the evidence says so.
//! 3. **Bursts.** A baseline that left its band for [`PERSIST`] points or more in a row is
//!    *bursty* (another program's churn, a batch job): it gets no ramp test, and a step must
//!    stay out of the band longer than its longest burst (at most [`BURSTY_MAX_HOLD`]
//!    points) before it is raised.
//! 4. **Change point.** The first known point of the search window outside the band after
//!    [`PERSIST`] points inside it.
//! 5. **Two tests from the change point**, either raises:
//!    - *step*: out of the band for [`PERSIST`] points and for [`SETTLE_SHARE`] of up to
//!      [`SETTLE_POINTS`]; the median from the change point at least [`MIN_SCORE`]·σ from `m`
//!      and, for levels, at least the kind's minimum change (e.g. [`MIN_SOCKET_CHANGE`]);
//!    - *ramp* (levels only): a climb that has not settled yet — the points from the last
//!      point inside the band rise in a Mann–Kendall trend test at [`RAMP_Z`] over at least
//!      [`RAMP_MIN_POINTS`] points, the latest point is out of the band and at least the kind's
//!      ramp minimum (e.g. [`MIN_RAMP_RISE`]) above `m`. A CLOSE-WAIT leak of two sockets a
//!      second is raised about six seconds after it starts, long before its median has moved.
//!
//!    Either way the level reached must pass the baseline's own extreme: a series that
//!    already went that high in its baseline (periodic bursts of a batch job) has not broken
//!    from it. A port's TIME-WAIT count, a moving sum of the last minute's closes, must also
//!    reach [`TIME_WAIT_RATIO`] times its usual level and climb at least
//!    [`MIN_SOCKET_CHANGE`] as a ramp too (from an empty port, ten closes double nothing); a
//!    rise of CLOSE-WAIT or FIN-WAIT-2, or of a port's total, must come with the port's
//!    connections (less TIME-WAIT) growing by half as much (a pool's idle connections closed
//!    by their server change state, a leak adds connections).
//! 6. **Direction.** Rises are judged for every kind; falls only for a service's request
//!    rate (its callers stopped reaching it), never for levels: a service restart empties its
//!    sockets, goroutines and fds for a moment, which is not an incident.
//!
//! 7. **A leak that starts with its series.** A young series (its start, or the history's,
//!    inside its baseline window) that none of the above raised is judged on its shape
//!    ([`leak`]): goroutines, fds, threads or CLOSE-WAIT that climb without levelling off,
//!    fast against their service's own request rate, towards their limit or for a minute
//!    past their start-up. A new version that leaks from its first request has a baseline
//!    that is the leak, and its climb is no break from it.
//! 8. **A storm that starts with its series.** A port's TIME-WAIT count still inside its
//!    start-up or short of a baseline is judged on its climb from its first points, against
//!    zero ([`storm`]): a client that opens a connection per call from its deploy, or soon
//!    after a restart, closes tens a second where a start-up closes a few.
//!
//! The agent's own runtime is not judged: its work follows whatever the node does.
//!
//! Bounds: one pass over each series' points per call, `O(series × points)`; the answer holds
//! at most one anomaly and one unjudged entry per series.

use faultline_series::{CounterKind, SeriesKey, SocketState, TrafficMetric};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::baseline::{counts_per_point, median, poisson_floor};
use crate::history::CounterHistory;
pub(crate) use crate::text::{clock, number};

pub mod cached;
pub mod leak;
pub mod storm;

/// Samples a series must stay out of (and, before, inside) its band for a change point: one or
/// two odd samples are a blip, three at 1 s still answer within seconds. The same as "what
/// moved".
pub const PERSIST: usize = 3;
/// Points from a change point over which a step must hold (see [`SETTLE_SHARE`]); a change
/// younger than that is judged on the points there are.
pub const SETTLE_POINTS: usize = 10;
/// Share of the [`SETTLE_POINTS`] that must be out of the band: a real step may dip back once or
/// twice, a blip does not stay.
pub const SETTLE_SHARE: f64 = 0.8;
/// Half-width of the usual band in noise units: Gaussian noise leaves 3σ about once in 370
/// samples, and [`PERSIST`] samples in a row almost never.
pub const BAND_Z: f64 = 3.0;
/// Smallest shift of a step, in noise units: twice the band, so a series grazing its band
/// edge is not raised.
pub const MIN_SCORE: f64 = 6.0;
/// Smallest step of a socket count (per port, node-wide, sockstat). Seen on a real node
/// during a quiet minute: client ports of other programs appearing with 6 to 14 TIME-WAIT
/// sockets each. Twenty is above that churn and below any storm or leak worth a page.
pub const MIN_SOCKET_CHANGE: f64 = 20.0;
/// Smallest step of an accept queue: backlogs are often small (Go listens with the kernel's
/// `somaxconn`, but a lab or an old service may use 8 to 128), and a queue that holds five
/// connections nobody accepts is already a stuck `accept()`.
pub const MIN_QUEUE_CHANGE: f64 = 5.0;
/// Smallest step or ramp of a task (goroutine), fd or thread count: a Go service's goroutines
/// wobble by a few per in-flight request; a leak adds one or more per request.
pub const MIN_PROCESS_CHANGE: f64 = 20.0;
/// Smallest rise of a ramp of a socket count above its usual level: a strictly rising series of
/// at least [`RAMP_MIN_POINTS`] points that has climbed this far is not churn (churn appears
/// as a jump of a few sockets, not a steady climb). Eight keeps a leak of one socket a second
/// within about ten seconds of its start.
pub const MIN_RAMP_RISE: f64 = 8.0;
/// Smallest multiple of its usual level a port's TIME-WAIT count must reach to be raised. A
/// TIME-WAIT count is a moving sum: every connection closed first on that side stays in
/// TIME-WAIT for 60 s (Linux's fixed `TCP_TIMEWAIT_LEN`), so the count is the last minute's
/// close rate times 60, and it wanders with its clients' load and pool recycling. Seen on the
/// Go lab's quiet run: the traffic driver's TIME-WAIT towards the edge wandered 45 → 95 over
/// minutes and climbed 60 → 94 in 10 s, its keep-alive connections recycled a little faster.
/// A storm multiplies the close rate (a connection per call instead of a pool: tens to
/// thousands of times); a rise to less than twice the usual level is not one.
pub const TIME_WAIT_RATIO: f64 = 2.0;
/// Distinct socket censuses a port's TIME-WAIT count must be seen out of its band by before
/// it is raised: the one that showed the change and a later one, instead of [`PERSIST`]
/// samples. Persistence rules out a blip, and a TIME-WAIT count cannot blip (each socket
/// stays 60 s); what the second census adds is the pace of the climb, which tells a storm from
/// a pool's burst of closes ([`crate::incident`]). The samples between two censuses repeat
/// the earlier one and add nothing: on a busy node (a census every 3–6 s under its CPU budget,
/// beside 25,000 other TIME-WAIT sockets) the storm waited two more samples of the same census
/// (+2 s of the 7 s median on the unseen lab), and was then judged on that one census, its
/// pace only a lower bound.
pub const TIME_WAIT_CENSUSES: usize = 2;
/// Share of its backlog at which a listener's accept queue is full: the kernel drops the
/// connections past it and counts them (`TcpExt ListenOverflows`, `ListenDrops`). A rise to
/// a full queue while those counts climb is confirmed by the census that shows it, not by
/// [`PERSIST`] samples: the queue is read once per socket census (every 2 s or more on a busy
/// node), and the kernel's own drop count, read every second, is the second witness. Seen
/// on the Go lab's listen-overflow (a backlog of 8): the callers' first timeouts came
/// 0.5–0.7 s after the queue filled, and the incident was titled by them ("Calls time out:
/// the callee is slow or hangs") for 1–2 s until the queue's next census. The listen-overflow
/// hint matches a queue from [`FILLING_QUEUE_SHARE`] of its backlog on (`min_share_of_limit`).
pub const FULL_QUEUE_SHARE: f64 = 0.9;
/// Share of its backlog at which a listener's accept queue, up from near empty (at most
/// [`FILLING_QUEUE_FLOOR`] of it) within [`FILLING_QUEUE_MS`], is *filling*: a service that
/// accepts keeps its queue near 0 (an accept loop takes microseconds), and one that stopped
/// accepting fills it at the pace its callers connect. Seen on the Go lab's listen-overflow (a
/// backlog of 8, `testdata/go-lab-listen-overflow-edge-creep-jump.json`): the queue read 0, 4,
/// then 9 with the kernel dropping connections, one census a second apart; where the first
/// timeouts came before the census that read it full, they titled the incident ("Calls time
/// out: the callee is slow or hangs") until that census (1–2 s on the runs of the last
/// session). One census reading is no change on its own (a burst accepted a moment later reads
/// the same), so a filling queue raises nothing: it joins an incident whose callers fail at its
/// service ([`filling_queues`]).
pub const FILLING_QUEUE_SHARE: f64 = 0.5;
/// Share of its backlog a filling queue held at most at the census before its rise.
pub const FILLING_QUEUE_FLOOR: f64 = 0.25;
/// How long a rise to a filling queue may have taken: its callers' first timeouts come within
/// seconds of it (a client timeout of a second or two); a queue that sat half full for longer
/// is a level the detector judges on its own ([`PERSIST`]).
pub const FILLING_QUEUE_MS: i64 = 10_000;
/// Fewest points of a ramp, counted from the last point inside the band.
pub const RAMP_MIN_POINTS: usize = 6;
/// Points of a ramp tested at most: the latest stretch of a climb.
pub const RAMP_MAX_POINTS: usize = 15;
/// Mann–Kendall z a ramp must reach (one-sided p ≈ 0.01): six strictly rising points give
/// 2.63, six points with one tie or dip do not pass.
pub const RAMP_Z: f64 = 2.33;
/// Mann–Kendall z of a young baseline (one that starts at its series' first point or its
/// service's start) above which it is still warming up (one-sided p ≈ 0.001): the baseline
/// is cut to its later half while that keeps the minimum, else judged against its climb.
/// Seen on the Go lab: an edge service's TIME-WAIT and FIN-WAIT-2 sockets piled up for the
/// first minute after it started (its clients' connections closed and reopened), and a
/// 30-second baseline ending 45 s after the start was still climbing 44 → 76.
pub const WARMUP_Z: f64 = 3.09;
/// Quantile of a warming baseline's slopes it is judged against. Seen on the Go lab: the
/// edge's sockets climbed 0.9 a second through its 30-second baseline and 1.9 a second in the
/// 20 s after it (the traffic driver's connections still arriving); the median slope raised
/// that as a break, the 90th percentile does not, and a storm or a leak (tens to hundreds a
/// second) still outruns it within seconds.
pub const CLIMB_QUANTILE: f64 = 0.9;
/// Points of a baseline tested for a climb at most (evenly spread): the test is quadratic.
pub const TREND_POINTS: usize = 40;
/// Most points a bursty series must stay out of its band before it is raised. Seen on a
/// shared node: other programs' bursts of 1 to 40 connections leave TIME-WAIT sockets for 60 s,
/// so a burst in a baseline can last a minute; thirty points keeps the wait bounded while
/// outlasting bursts of a few seconds.
pub const BURSTY_MAX_HOLD: usize = 30;
/// Smallest usual request rate (per second) whose fall is judged: a service idle most of the
/// time has no rate to lose.
pub const MIN_FALL_BASELINE: f64 = 1.0;
/// Scale of the MAD that makes it estimate σ for Gaussian noise.
const MAD_TO_SIGMA: f64 = 1.4826;

/// How the anomaly detector reads a history. Every field has a default; the agent reads them
/// from `[diagnosis]` in its configuration (tests shorten the windows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalyConfig {
    /// Length of the baseline window (ms): five minutes makes a median and a MAD stable (300
    /// points at 1 s) and fits the 15-minute history with the search window.
    pub baseline_ms: i64,
    /// Length of the search window at the end of the history (ms): a change is raised while
    /// its start is inside it; two minutes covers the 60 s TIME-WAIT of a storm. An incident
    /// keeps the anomaly after that (see [`crate::incident`]).
    pub search_ms: i64,
    /// Fewest known baseline points for a judgement (30 s at 1 s).
    pub min_baseline_points: usize,
    /// Start-up time of a series that appeared after the history began (ms): a service that
    /// just started opens its pools and spawns its workers, which is not its usual level.
    pub warmup_ms: i64,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            baseline_ms: 5 * 60_000,
            search_ms: 2 * 60_000,
            min_baseline_points: 30,
            warmup_ms: 15_000,
        }
    }
}

/// How a series broke from its baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeShape {
    /// It moved to a new level and stayed there.
    Step,
    /// It is climbing steadily and has not settled yet.
    Ramp,
}

/// Which way a series broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Above its usual band.
    Rise,
    /// Below its usual band.
    Fall,
}

/// One counter series that broke from its own baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CounterAnomaly {
    /// The series.
    pub key: SeriesKey,
    /// Its name as the dashboard shows it (`TIME-WAIT →:8080`).
    pub label: String,
    /// Unit of the levels (`sockets`, `/s`, `fds`, ...).
    pub unit: String,
    /// Its family.
    pub kind: CounterKind,
    /// Step or ramp.
    pub shape: ChangeShape,
    /// Rise or fall.
    pub direction: Direction,
    /// Usual level: the baseline's median.
    pub before: f64,
    /// The baseline's noise σ (same unit).
    pub noise: f64,
    /// The furthest point from `before` since the change.
    pub reached: f64,
    /// The latest point.
    pub latest: f64,
    /// How far `reached` is from `before`, in noise units.
    pub score: f64,
    /// When the series left its band (Unix ms, a sample time).
    pub changed_at_unix_ms: i64,
    /// Whether the latest points are still out of the band.
    pub active: bool,
    /// The series' limit when it has one (a process's fd limit, a listener's backlog).
    pub limit: Option<f64>,
    /// The evidence in one sentence, e.g. "TIME-WAIT →:8080 rose 12 → 2,900 in 20 s (from
    /// 20:41:03 UTC)".
    pub evidence: String,
    /// What makes its usual level (`before`) uncertain, in a sentence, when something does:
    /// a port counted on its own only since some time, whose level before was known only to
    /// be at most the smallest port counted. Kept out of `evidence`, which titles and hints
    /// quote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caveat: Option<String>,
}

/// A series the detector could not judge, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Unjudged {
    /// The series.
    pub key: SeriesKey,
    /// Its name as the dashboard shows it.
    pub label: String,
    /// Why, in one sentence ("first seen at 20:41:03 UTC, inside its baseline window").
    pub reason: String,
}

/// The detector's answer for one history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AnomalyReport {
    /// Series judged.
    pub series_judged: u64,
    /// The series that broke, highest score first.
    pub anomalies: Vec<CounterAnomaly>,
    /// The series that could not be judged, and why.
    pub unjudged: Vec<Unjudged>,
    /// Series whose change one socket census alone shows so far: a port's TIME-WAIT count
    /// that left its band as a step must at the latest census, raised once a later census
    /// confirms it (see [`TIME_WAIT_CENSUSES`]). A fresh census tells sooner than the one the
    /// census' CPU budget allows next. Not part of the API's answer.
    #[serde(skip)]
    pub awaiting_census: Vec<SeriesKey>,
    /// Accept queues the latest census shows filling, not raised (see [`filling_queues`]):
    /// an incident whose callers fail at the queue's service lists them. Not part of the
    /// API's answer.
    #[serde(skip)]
    pub filling_queues: Vec<CounterAnomaly>,
}

/// The limit of one series (a process's fd limit, a listener's backlog): quoted in the
/// evidence, so "open fds rose 40 → 1,010" says "of 1,024".
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesLimit {
    /// The series.
    pub key: SeriesKey,
    /// Its limit, in the series' unit.
    pub limit: f64,
}

/// A service that (re)started while the agent watched (a new process id on its port): the
/// series it owns hold its start-up from then on, not its usual level.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceStart {
    /// The service.
    pub service: String,
    /// When it started (Unix ms): when the agent first saw its new process. Its start-up,
    /// and every baseline of its series after the restart, begin here.
    pub at_unix_ms: i64,
    /// When its old process was last seen (Unix ms), when known. Its stop (its clients'
    /// connections closed, their TIME-WAIT, its goroutines and request rate gone) shows
    /// from here, before the new process is found: the series' level before the restart
    /// is read before it.
    pub stopped_unix_ms: Option<i64>,
    /// Its listening ports: their sockets (either side) and accept queue are its.
    pub ports: Vec<u16>,
    /// Its task (goroutine) targets.
    pub task_targets: Vec<String>,
    /// Its watched processes.
    pub processes: Vec<String>,
}

impl ServiceStart {
    /// Whether `key` is one of the service's series.
    pub fn covers(&self, key: &SeriesKey) -> bool {
        match key {
            SeriesKey::PortState { port, .. }
            | SeriesKey::PortTotal { port, .. }
            | SeriesKey::ListenQueue { port } => self.ports.contains(port),
            SeriesKey::Task { target, .. } => self.task_targets.contains(target),
            SeriesKey::Process { name, .. } => self.processes.contains(name),
            SeriesKey::ServiceTraffic { service, .. } => service == &self.service,
            _ => false,
        }
    }
}

/// Why a series' baseline starts late: it appeared after the history began, or its service
/// (re)started.
enum Start<'a> {
    FirstSeen,
    Restart(&'a ServiceStart),
}

/// Judges every series of `history` at the end of its axis (see the module documentation).
/// `starts` are the services that (re)started while the agent watched: their series are
/// judged as if they had first appeared then.
pub fn detect(
    history: &CounterHistory,
    limits: &[SeriesLimit],
    starts: &[ServiceStart],
    config: &AnomalyConfig,
) -> AnomalyReport {
    let mut report = judge_series(history, limits, starts, config, None).0;
    report.filling_queues = filling_queues(history, limits, &report.anomalies);
    report
}

/// The listeners' accept queues that the latest socket census shows *filling* (see
/// [`FILLING_QUEUE_SHARE`]) and that `raised` does not hold yet, each as the anomaly it would
/// be, its evidence saying it rests on one census: "listen queue :8082 is filling: 0 → 4 of
/// its backlog of 8 at the census of 10:04:05 UTC, seen by one census only (not full yet, no
/// connection dropped yet)". Not raised by [`detect`]: one reading is no change on its own.
/// An incident whose callers fail at the queue's service lists it (their failures are its
/// second witness), so its first answer can say the queue is filling before a census shows it
/// full. Only series with a known limit (the backlog) are judged.
pub fn filling_queues(
    history: &CounterHistory,
    limits: &[SeriesLimit],
    raised: &[CounterAnomaly],
) -> Vec<CounterAnomaly> {
    let len = history.len();
    let mut out = Vec::new();
    for l in limits.iter().filter(|l| l.limit > 0.0) {
        if !matches!(l.key, SeriesKey::ListenQueue { .. }) || raised.iter().any(|a| a.key == l.key)
        {
            continue;
        }
        let Some(series) = history.get(&l.key) else {
            continue;
        };
        let known: Vec<(usize, f64)> = series
            .points
            .iter()
            .take(len)
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i, v)))
            .collect();
        let readings = per_census(history, &known);
        let Some(&(last_i, last)) = readings.last() else {
            continue;
        };
        if last < FILLING_QUEUE_SHARE * l.limit {
            continue;
        }
        // The rise: the readings above the floor up to the last, climbing (never falling
        // back), after a reading at the floor.
        let floor = FILLING_QUEUE_FLOOR * l.limit;
        let Some(before_rise) = readings.iter().rposition(|&(_, v)| v <= floor) else {
            continue;
        };
        let rise = &readings[before_rise + 1..];
        let climbing = rise.windows(2).all(|w| w[1].1 >= w[0].1);
        let Some(&(first_i, _)) = rise.first() else {
            continue;
        };
        let started = history.counted_at(first_i);
        if !climbing || history.counted_at(last_i) - started > FILLING_QUEUE_MS {
            continue;
        }
        let before = readings[before_rise].1;
        let noise = (before + 1.0).sqrt();
        let dropped = drops_counted(history, first_i);
        let label = l.key.label();
        out.push(CounterAnomaly {
            key: l.key.clone(),
            unit: l.key.unit().to_owned(),
            kind: l.key.kind(),
            shape: ChangeShape::Step,
            direction: Direction::Rise,
            before,
            noise,
            reached: last,
            latest: last,
            score: (last - before) / noise,
            changed_at_unix_ms: history.time(first_i),
            active: true,
            limit: Some(l.limit),
            evidence: format!(
                "{label} is filling: {} → {} of its backlog of {} at the census of {}, seen by \
                 {} only (not full yet; {})",
                number(before),
                number(last),
                number(l.limit),
                clock(history.counted_at(last_i)),
                match rise.len() {
                    1 => "one census".to_owned(),
                    n => format!("{n} censuses"),
                },
                if dropped {
                    "the kernel counts dropped connections already"
                } else {
                    "no connection dropped yet"
                },
            ),
            label,
            caveat: None,
        });
    }
    out
}

/// The band a series judged quiet was judged against, when its next points can be checked
/// against it instead of judging the series again (see [`cached::Detector`]): a settled
/// baseline (no start-up climb, no upper bound for a port not counted) of a series that is
/// not a young count that leaks (the leak rule judges a shape, not a band).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Band {
    /// The baseline's median.
    pub level: f64,
    /// The baseline's noise σ.
    pub noise: f64,
}

impl Band {
    /// How far `v` is from the level in noise units: outside the band above [`BAND_Z`].
    pub(crate) fn score(&self, v: f64) -> f64 {
        (v - self.level).abs() / self.noise
    }
}

/// [`detect`] on the series of `history` that `only` selects (all when `None`; `only[i]` for
/// `history.series[i]`), with, per series, the band of a series judged quiet when its next
/// points may be checked against it.
pub(crate) fn judge_series(
    history: &CounterHistory,
    limits: &[SeriesLimit],
    starts: &[ServiceStart],
    config: &AnomalyConfig,
    only: Option<&[bool]>,
) -> (AnomalyReport, Vec<Option<Band>>) {
    let mut report = AnomalyReport::default();
    let mut bands = vec![None; history.series.len()];
    let len = history.len();
    if len == 0 {
        return (report, bands);
    }
    let step = history.step_ms.max(1);
    let search_points = usize::try_from(config.search_ms / step).unwrap_or(0).max(1);
    let baseline_points = usize::try_from(config.baseline_ms / step)
        .unwrap_or(0)
        .max(1);
    let warmup_points = usize::try_from(config.warmup_ms.max(0) / step).unwrap_or(0);
    // A young history (the agent just started) keeps the baseline's minimum and searches the
    // rest, like "what moved" does.
    let split = len
        .saturating_sub(search_points)
        .max(config.min_baseline_points);
    let base_from = split.saturating_sub(baseline_points);
    // Read only when a port state's gaps need it (see [`filled`]).
    let floor = std::cell::OnceCell::new();
    let index_of = |t: i64| -> usize {
        let i = (t - history.start_unix_ms + step - 1).div_euclid(step);
        usize::try_from(i.max(0)).unwrap_or(usize::MAX)
    };
    for (index, series) in history.series.iter().enumerate() {
        if matches!(series.key, SeriesKey::Runtime { .. })
            || only.is_some_and(|o| !o.get(index).copied().unwrap_or(false))
        {
            continue;
        }
        let (points, mut bounded_until) = filled(history, &series.key, &series.points, len, &floor);
        let label = series.key.label();
        let unjudged = |reason: String| Unjudged {
            key: series.key.clone(),
            label: label.clone(),
            reason,
        };
        let Some(mut first) = points.iter().position(Option::is_some) else {
            report
                .unjudged
                .push(unjudged("no sample in the history".to_owned()));
            continue;
        };
        // An upper bound too short to be a baseline stands for no past at all: the port
        // was not counted for the agent's first seconds because its service had not started.
        // Nor is a bound a past when the port was counted one by one before this state had
        // its first socket (a service's port, counted from its start): the state was 0 from
        // then, and the bound before stands for a time the port had no service. Seen on the
        // unseen lab with the agent 150 s first: metadata's TIME-WAIT storm was judged
        // against the smallest port counted before metadata existed (221) and raised after
        // 22 s, where its own port had held no TIME-WAIT socket.
        if let Some(counted) = first_counted(history, &series.key, len) {
            let own_first = series.points.iter().take(len).position(Option::is_some);
            if counted > first
                && (counted - first < config.min_baseline_points + warmup_points
                    || own_first.is_some_and(|own| own > counted))
            {
                first = counted;
                bounded_until = bounded_until.filter(|&t| t > history.time(counted));
            }
        }
        if split >= len {
            report.unjudged.push(unjudged(format!(
                "the history holds {len} points; the baseline needs {} before the points judged",
                config.min_baseline_points
            )));
            continue;
        }
        // A series that appeared after the history began, or whose service (re)started,
        // starts its baseline after its start-up, and its search window moves later to keep
        // the baseline's minimum.
        let restart = starts
            .iter()
            .filter(|s| s.covers(&series.key))
            .map(|s| (index_of(s.at_unix_ms), s))
            .filter(|&(i, _)| i > 0 && i < len)
            .max_by_key(|&(i, _)| i);
        // A service's request rate restarts with its first request: a callee's requests
        // come through the service that restarted (its start is the edge's), and a service
        // may be found before it serves, so the rate may read 0 for a while after the
        // start, which is no usual level. Seen on the Go lab with the agent started first,
        // when the agent dated a restart where the old process was last seen: the
        // redeployed chain served again 40 s after the old one stopped, the callee's
        // baseline was those zeros, and its requests falling 19/s → 0 at the dns fault were
        // never raised (a fall from 0).
        let restart = restart.map(|(i, s)| {
            let requests = matches!(
                series.key,
                SeriesKey::ServiceTraffic {
                    metric: TrafficMetric::Requests,
                    ..
                }
            );
            let tail = &points[i..];
            let served = tail
                .iter()
                .position(|v| v.is_none_or(|v| v <= 0.0))
                .filter(|_| requests)
                .and_then(|idle| {
                    let again = tail[idle..].iter().position(|v| v.is_some_and(|v| v > 0.0));
                    again.map(|k| idle + k)
                });
            (i + served.unwrap_or(0), s)
        });
        let start = match restart {
            Some((i, s)) if i > first => Some((i, Start::Restart(s))),
            _ if first > 0 => Some((first, Start::FirstSeen)),
            _ => None,
        }
        .filter(|(i, _)| i + warmup_points > base_from);
        // The baseline's minimum is of known points: a sampler that fell behind under load
        // leaves holes, and a window of as many points as the minimum then never held it
        // until the history outgrew the search window. Seen on the unseen lab at load 58:
        // "27 of the 30 baseline points needed are known" for every series of the chain
        // when the TIME-WAIT storm began.
        let (mut from, series_split) = match &start {
            Some((i, _)) => {
                let from = i + warmup_points;
                let enough = points
                    .iter()
                    .enumerate()
                    .skip(from)
                    .filter(|(_, v)| v.is_some())
                    .nth(config.min_baseline_points.saturating_sub(1))
                    .map_or(len, |(j, _)| j + 1);
                (from, split.max(enough))
            }
            // In a young history the baseline is its first points, and ticks the sampler
            // missed (a census of 30,000 sockets overrunning its interval, mostly at the
            // agent's start) left holes there: the minimum's known points come that much
            // later. Seen on the e2e tests beside 32,000 sockets: "6 of the 10 baseline
            // points needed are known" for every series until the history outgrew the
            // search window, 30 s after the agent started, and no incident in 10 s. At most
            // as many points later as the minimum (half the ticks missed): a series with
            // longer gaps (a target that failed) stays unjudged.
            None if base_from == 0 => {
                let enough = points
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.is_some())
                    .nth(config.min_baseline_points.saturating_sub(1))
                    .map_or(len, |(j, _)| j + 1);
                let later = enough < len && enough <= split + config.min_baseline_points;
                (base_from, if later { split.max(enough) } else { split })
            }
            None => (base_from, split),
        };
        let started_text = |start: &Start<'_>, at: usize| match start {
            Start::FirstSeen => format!(
                "first seen at {}, after the agent started",
                clock(history.time(at))
            ),
            Start::Restart(s) => format!(
                "{} (re)started at {} (a new process)",
                s.service,
                clock(history.time(at))
            ),
        };
        // Why a series has no settled baseline yet ("first seen at …, after the agent
        // started"), for the unjudged reason and a young storm's evidence.
        let why_young = || {
            start
                .as_ref()
                .map(|(i, s)| started_text(s, *i))
                .unwrap_or_default()
        };
        // A TIME-WAIT storm beginning with its series (or soon after its service's start) is
        // judged on its climb from its first points, before its baseline exists.
        let young_storm = |why: &str| {
            let (i, _) = start.as_ref()?;
            storm::young_storm(history, &series.key, &points, *i, why)
        };
        let limit = limits.iter().find(|l| l.key == series.key).map(|l| l.limit);
        // A young series (or one in a history too young to reach past its baseline) may
        // hold a leak that began with it or inside its baseline: judged on its shape.
        let life = match &start {
            Some((i, s)) => Some(leak::Life {
                started: *i,
                from: if leak::kept_from_start(&series.key) {
                    *i
                } else {
                    i + warmup_points
                },
                text: started_text(s, *i),
                with_series: true,
            }),
            None if base_from == 0 => Some(leak::Life {
                started: first,
                from: first,
                text: format!("counted since {}", clock(history.time(first))),
                with_series: false,
            }),
            None => None,
        };
        let leaked = |base: &[(usize, f64)]| {
            let cx = leak::Context {
                requests: service_requests(history, &series.key, starts),
                limit,
                min_points: config.min_baseline_points,
            };
            leak::unbounded_climb(history, &series.key, &points, life.as_ref()?, &cx)
                .filter(|a| !pool_turned_over(history, a, base, len))
        };
        if series_split >= len {
            let why = why_young();
            if let Some(a) = young_storm(&why) {
                report.anomalies.push(a);
                continue;
            }
            // A leak from its start is judged on its shape before its baseline exists (the
            // leak rule needs half a baseline's points of life): waiting for the baseline
            // left a leak in a service's first 45 s unjudged.
            // Its points from where the leak rule judges it: a count no start-up keeps is
            // judged from the start itself (see [`leak::kept_from_start`]).
            let judged_from = life.as_ref().map_or(from, |l| l.from);
            let life_points: Vec<(usize, f64)> = points[judged_from.min(len)..len]
                .iter()
                .enumerate()
                .filter_map(|(j, v)| v.map(|v| (judged_from + j, v)))
                .collect();
            if let Some(a) = leaked(&life_points) {
                report.anomalies.push(a);
                continue;
            }
            report.unjudged.push(unjudged(format!(
                "{why}: its first {} s are its start-up and its baseline needs {} points after \
                 that",
                warmup_points as i64 * step / 1000,
                config.min_baseline_points,
            )));
            continue;
        }
        let known_in = |from: usize| -> Vec<(usize, f64)> {
            points[from..series_split]
                .iter()
                .enumerate()
                .filter_map(|(j, v)| v.map(|v| (from + j, v)))
                .collect()
        };
        let mut base = known_in(from);
        // A baseline with too few known points (a target that failed to answer for a
        // while; or, when the agent dated a restart where the old process was last seen,
        // the new one started later) may still hold a leak of the new one. Seen on the Go
        // lab with the agent started 120 s first: the redeployed service's baseline had 6
        // known points for two minutes, and its goroutines went 14 → 4,333.
        if base.len() < config.min_baseline_points {
            if let Some(a) = leaked(&base) {
                report.anomalies.push(a);
                continue;
            }
            let why = why_young();
            if let Some(a) = young_storm(&why) {
                report.anomalies.push(a);
                continue;
            }
            report.unjudged.push(unjudged(format!(
                "{} of the {} baseline points needed are known",
                base.len(),
                config.min_baseline_points
            )));
            continue;
        }
        // A young baseline may still hold the series' start-up: connection pools filling,
        // TIME-WAIT piling up for its first minute. Keep its settled part; a climb that is
        // still going on is judged against its own trend.
        let rule = rule(&series.key);
        let mut climb = None;
        if start.is_some() {
            while let Some(slope) = warming_up(&base, &rule) {
                if base.len() >= 2 * config.min_baseline_points {
                    from = base[base.len() / 2].0;
                    base = known_in(from);
                } else {
                    climb = Some(slope);
                    break;
                }
            }
        }
        report.series_judged += 1;
        let mut baseline = Baseline::of(
            &base,
            climb.unwrap_or(0.0),
            series_split - 1,
            counts_per_point(&series.key),
        );
        // A restarted service's series coming back to where they were before the restart
        // (its clients reconnecting) has not broken from anything. Where they were is read
        // before the old process stopped: between its stop and the new process's start the
        // series held the stop (its clients' connections closing), not its usual level.
        if let (Some((i, Start::Restart(s))), None) = (&start, climb) {
            let stopped = s.stopped_unix_ms.map_or(*i, |t| index_of(t).min(*i));
            let before = points[stopped.saturating_sub(baseline_points)..stopped]
                .iter()
                .flatten();
            baseline.highest = before.fold(baseline.highest, |m, &v| m.max(v));
        }
        // A climbing baseline is extrapolated for rises (a series still climbing as it did
        // is no break), never for falls: a request rate levelling off after its service's
        // start-up is below where its climb would have gone, and has not fallen. A fall is
        // judged from where the climb had got to: the baseline's latest third, flat. Seen on
        // the Go lab with the agent started before the chain: the edge's request rate,
        // redeployed a minute before the dns fault, "fell 29.2/s → 20.2/s" at its usual 20/s,
        // and dated the fault's incident 39 s before the fault.
        let settled = (baseline.slope != 0.0 && rule.falls).then(|| Baseline {
            rises: false,
            ..Baseline::of(
                &base[base.len() - base.len() / 3..],
                0.0,
                series_split - 1,
                counts_per_point(&series.key),
            )
        });
        let mut awaits = false;
        let judged = judge(
            history,
            &series.key,
            &points,
            series_split,
            &baseline,
            limit,
            &mut awaits,
        )
        .or_else(|| {
            let settled = settled.as_ref()?;
            judge(
                history,
                &series.key,
                &points,
                series_split,
                settled,
                limit,
                &mut awaits,
            )
        });
        if awaits && judged.is_none() {
            report.awaiting_census.push(series.key.clone());
        }
        // A storm that began inside a young series' baseline, after the series sat at its
        // floor, is no break of that baseline: read as its start-up climb, it is judged
        // against itself; with only its first seconds in the baseline, the baseline bursts
        // and no point of the search window leaves a band it was inside. Judged on its climb
        // as while too young. Seen on the demo's time-wait with a 10 s baseline beside other
        // churn: raised while too young, then never again (no incident in 25 s); or first
        // raised 16 s after the storm began.
        if judged.is_none() {
            let why = why_young();
            if let Some(a) = young_storm(&why) {
                report.anomalies.push(a);
                continue;
            }
        }
        let Some(mut a) = judged.filter(|a| !pool_turned_over(history, a, &base, len)) else {
            match leaked(&base) {
                Some(a) => report.anomalies.push(a),
                None if climb.is_none()
                    && bounded_until.is_none()
                    && (life.is_none() || !leak::leaks(&series.key)) =>
                {
                    bands[index] = Some(Band {
                        level: baseline.level,
                        noise: baseline.noise,
                    });
                }
                None => {}
            }
            continue;
        };
        // An upper bound shows no rise: another port's churn moves the smallest port
        // counted, and a change dated there came before the series' own. Seen on the Go
        // lab: a TIME-WAIT storm dated 16 s before its start, which put its incident
        // before the fault. It is dated where the port was first counted.
        if let Some(t) = bounded_until.filter(|&t| a.changed_at_unix_ms < t) {
            a.changed_at_unix_ms = t;
            let last_at = points
                .iter()
                .rposition(Option::is_some)
                .map_or(t, |i| history.time(i));
            a.tell(last_at);
        }
        if let (Some(slope), Some((i, s))) = (climb, &start) {
            a.evidence.push_str(&format!(
                "; {}, it was still climbing by {} per second and is judged against that \
                 climb",
                started_text(s, *i),
                number(slope * 1000.0 / step as f64)
            ));
        }
        // The agent counts the ports with the most sockets one by one and the rest together:
        // before this port was among them, its level is known only to be at most the
        // smallest port counted, so its usual level is an estimate (the rise may be larger).
        // Evidence is what hints quote and titles show: this belongs beside it, not in it
        // (seen in the unseen lab's time-wait hint: "until 15:23:23 UTC its port was not
        // counted one by one, so its usual level there is an upper bound").
        if let Some(t) = bounded_until {
            a.caveat = Some(format!(
                "before {} this port was not tracked on its own (only the ports with the most \
                 sockets are): its usual level is an estimate, at most the smallest tracked \
                 port's, so the rise may be larger than shown",
                clock(t)
            ));
        }
        report.anomalies.push(a);
    }
    report
        .anomalies
        .sort_by(|a, b| b.score.total_cmp(&a.score).then(a.label.cmp(&b.label)));
    (report, bands)
}

/// The requests per second of the service a series belongs to, when the history has them:
/// the service of a start that covers it, else the task target or process of the same name
/// (how the agent names them unless configured otherwise).
fn service_requests<'h>(
    history: &'h CounterHistory,
    key: &SeriesKey,
    starts: &[ServiceStart],
) -> Option<&'h [Option<f64>]> {
    let service = starts
        .iter()
        .find(|s| !s.service.is_empty() && s.covers(key))
        .map(|s| s.service.as_str())
        .or(match key {
            SeriesKey::Task { target, .. } => Some(target.as_str()),
            SeriesKey::Process { name, .. } => Some(name.as_str()),
            _ => None,
        })?;
    history
        .get(&SeriesKey::ServiceTraffic {
            service: service.to_owned(),
            metric: TrafficMetric::Requests,
        })
        .map(|s| s.points.as_slice())
}

/// Whether a rise of a port's sockets is connections changing state or closing, not
/// connections piling up: the port group's connections (its sockets less those in TIME-WAIT,
/// which are closed ones) did not grow by half as much as the series rose. Two cases:
///
/// - CLOSE-WAIT, FIN-WAIT-2 or ESTABLISHED: a server that closes idle keep-alive connections
///   moves them to FIN-WAIT-2 on its side and CLOSE-WAIT on a client that reads them only when
///   it next uses the connection, and the client's next calls replace them with established
///   ones; the states climb and fall back as the pool idles and gets busy, while the pool stays
///   the size it was. Seen on the Go lab's quiet run: the traffic driver's 48 pooled
///   connections to the edge swung between ESTABLISHED and CLOSE-WAIT (2 to 39) every few
///   minutes, and after a restart of the edge 46 came back established where 25 had been.
///   A leak keeps its dead connections and opens new ones: the group grows with it.
/// - The port group's total: its TIME-WAIT wanders with its clients' churn (see
///   [`TIME_WAIT_RATIO`]) and is judged on its own series; a total that rose by its TIME-WAIT
///   only (the same run: the edge's sockets 95 → 143 as its TIME-WAIT went 47 → 94) says
///   nothing more.
fn pool_turned_over(
    history: &CounterHistory,
    a: &CounterAnomaly,
    base: &[(usize, f64)],
    len: usize,
) -> bool {
    let (port, side) = match a.key {
        SeriesKey::PortState {
            port,
            side,
            state: SocketState::CloseWait | SocketState::FinWait2 | SocketState::Established,
        }
        | SeriesKey::PortTotal { port, side } => (port, side),
        _ => return false,
    };
    let Some(group) = history.get(&SeriesKey::PortTotal { port, side }) else {
        return false;
    };
    let closed = history.get(&SeriesKey::PortState {
        port,
        side,
        state: SocketState::TimeWait,
    });
    // Connections at point `i`: the group less its TIME-WAIT (none before its first point).
    let live = |i: usize| {
        let total = group.points.get(i).copied().flatten()?;
        let tw = closed.and_then(|s| s.points.get(i).copied().flatten());
        Some(total - tw.unwrap_or(0.0))
    };
    // Its usual size is read before the change. A young series is judged on its life, whose
    // points run up to now: read there, the group's size was its size during the climb. Seen
    // on the Go lab's close-wait brought back after a restart-heal (seed 301): the new
    // process's CLOSE-WAIT climbed 0 → 603 from 12 s after its start, and the usual size was
    // read from 15 s after the start on, inside the climb, where the group had grown by half
    // the rise already: the leak was "connections changing state" at every pass, and the
    // incident told the first occurrence's climb to the end. A change dated at the first
    // point read has its group's size there.
    let changed = history.point_at(a.changed_at_unix_ms).unwrap_or(0);
    let mut usual: Vec<f64> = base
        .iter()
        .filter(|&&(i, _)| i < changed)
        .filter_map(|&(i, _)| live(i))
        .collect();
    if usual.is_empty() {
        usual.extend(base.first().and_then(|&(i, _)| live(i)));
    }
    let Some(latest) = (0..len).rev().find_map(live) else {
        return false;
    };
    if usual.is_empty() || a.direction != Direction::Rise {
        return false;
    }
    latest - median(&mut usual) < (a.latest - a.before) / 2.0
}

/// The climb (per point) of a baseline still warming up, `None` when it is settled: a rising
/// Mann–Kendall trend at [`WARMUP_Z`] over at most [`TREND_POINTS`] evenly spread points,
/// and a rise from its first third to its last third of at least the kind's ramp minimum and
/// the Poisson floor of three units of noise. The climb is the [`CLIMB_QUANTILE`] of the
/// slopes between points at least a third of the sample apart (a Theil–Sen estimate leaning
/// to the fast side), which one odd point does not tilt.
fn warming_up(base: &[(usize, f64)], rule: &KindRule) -> Option<f64> {
    let every = base.len().div_ceil(TREND_POINTS).max(1);
    let sample: Vec<(usize, f64)> = base.iter().step_by(every).copied().collect();
    if sample.len() < RAMP_MIN_POINTS {
        return None;
    }
    let third = sample.len() / 3;
    let mut head: Vec<f64> = sample[..third].iter().map(|p| p.1).collect();
    let mut tail: Vec<f64> = sample[sample.len() - third..].iter().map(|p| p.1).collect();
    let (early, late) = (median(&mut head), median(&mut tail));
    let floor = BAND_Z * (early.abs() + 1.0).sqrt();
    let min_rise = rule.min_ramp.unwrap_or(rule.min_step).max(floor);
    if late - early < min_rise || mann_kendall_z(sample.iter().map(|p| p.1)) < WARMUP_Z {
        return None;
    }
    // The fastest it climbed: a warm-up often speeds up as its clients arrive, and a break
    // must outrun the warm-up, not its average.
    let mut slopes = Vec::with_capacity(sample.len() * sample.len() / 2);
    for (a, &(i, x)) in sample.iter().enumerate() {
        for &(j, y) in &sample[(a + third.max(1)).min(sample.len())..] {
            slopes.push((y - x) / (j - i) as f64);
        }
    }
    slopes.sort_by(f64::total_cmp);
    slopes
        .get(percentile_index(slopes.len(), CLIMB_QUANTILE))
        .copied()
        .filter(|s| *s > 0.0)
}

/// Index of the `q` quantile (nearest rank) in a sorted slice of `len > 0` values.
fn percentile_index(len: usize, q: f64) -> usize {
    ((q * len as f64).ceil() as usize).clamp(1, len.max(1)) - 1
}

/// The usual level of a series: of its points, or, for a series still climbing after its
/// start, of its points less that climb (its residuals).
#[derive(Debug, Clone, Copy)]
struct Baseline {
    level: f64,
    noise: f64,
    highest: f64,
    lowest: f64,
    /// The climb per point the level is judged against (0 for a settled series).
    slope: f64,
    /// The point the climb is measured from (the last baseline point).
    anchor: usize,
    /// Longest run of baseline points above the band: a series that already broke out for
    /// that long in its baseline is bursty.
    longest_burst: usize,
    /// Whether rises are judged against it: not against the flat stand-in of a climbing
    /// baseline that judges falls only (see [`detect`]).
    rises: bool,
}

impl Baseline {
    /// Median, noise, extremes and bursts of the known baseline points (in time order, not
    /// empty), less a climb of `slope` per point from `anchor`; each point the mean of
    /// `counts_per_point` seconds' counts (a service's traffic, see [`counts_per_point`]).
    fn of(points: &[(usize, f64)], slope: f64, anchor: usize, counts_per_point: f64) -> Baseline {
        let residual = |i: usize, v: f64| v - slope * (i as f64 - anchor as f64);
        let ordered: Vec<f64> = points.iter().map(|&(i, v)| residual(i, v)).collect();
        let mut sorted = ordered.clone();
        let level = median(&mut sorted);
        let highest = sorted.last().copied().unwrap_or(level);
        let lowest = sorted.first().copied().unwrap_or(level);
        let mut dev: Vec<f64> = sorted.iter().map(|v| (v - level).abs()).collect();
        let noise = (MAD_TO_SIGMA * median(&mut dev)).max(poisson_floor(level, counts_per_point));
        let mut b = Baseline {
            level,
            noise,
            highest,
            lowest,
            slope,
            anchor,
            longest_burst: 0,
            rises: true,
        };
        let mut run = 0;
        for &v in &ordered {
            run = if b.side(v) > 0 { run + 1 } else { 0 };
            b.longest_burst = b.longest_burst.max(run);
        }
        b
    }

    /// A point less the climb: what is compared with the level.
    fn residual(&self, i: usize, v: f64) -> f64 {
        v - self.slope * (i as f64 - self.anchor as f64)
    }

    /// Whether the baseline already broke out of its band for [`PERSIST`] points or more.
    fn bursty(&self) -> bool {
        self.longest_burst >= PERSIST
    }

    /// +1 above the band, -1 below, 0 inside.
    fn side(&self, v: f64) -> i8 {
        let band = BAND_Z * self.noise;
        if v > self.level + band {
            1
        } else if v < self.level - band {
            -1
        } else {
            0
        }
    }
}

/// What a kind of series must do to be raised: the smallest step and ramp, and whether a fall
/// is judged.
struct KindRule {
    min_step: f64,
    /// `None`: no ramp test (rates).
    min_ramp: Option<f64>,
    falls: bool,
}

fn rule(key: &SeriesKey) -> KindRule {
    let level = |min_step| KindRule {
        min_step,
        min_ramp: Some(MIN_RAMP_RISE),
        falls: false,
    };
    match key.kind() {
        CounterKind::Sockets | CounterKind::NodeSockets | CounterKind::Sockstat => {
            level(MIN_SOCKET_CHANGE)
        }
        CounterKind::AcceptQueue => KindRule {
            min_step: MIN_QUEUE_CHANGE,
            min_ramp: Some(MIN_QUEUE_CHANGE),
            falls: false,
        },
        // A process's goroutines, fds and threads follow its connections and in-flight
        // requests: a slow climb of a dozen as its callers open more keep-alive connections is
        // how it grows into its load, so a ramp must climb as far as a step.
        CounterKind::ProcessFds | CounterKind::ProcessThreads | CounterKind::Tasks => KindRule {
            min_step: MIN_PROCESS_CHANGE,
            min_ramp: Some(MIN_PROCESS_CHANGE),
            falls: false,
        },
        // Memory moves by megabytes with every allocation burst; a change of level is not an
        // incident by itself, so only a step of at least 6σ and 64 MiB counts.
        CounterKind::ProcessMemory => KindRule {
            min_step: 64.0 * 1024.0 * 1024.0,
            min_ramp: None,
            falls: false,
        },
        CounterKind::ProtocolRate | CounterKind::Runtime => KindRule {
            min_step: 0.0,
            min_ramp: None,
            falls: false,
        },
        CounterKind::ServiceTraffic => KindRule {
            min_step: 0.0,
            min_ramp: None,
            falls: matches!(
                key,
                SeriesKey::ServiceTraffic {
                    metric: TrafficMetric::Requests,
                    ..
                }
            ),
        },
    }
}

/// Steps 3 and 4 of the method on one series. Sets `awaits` when a port's TIME-WAIT count
/// would be raised but for a second census (see [`TIME_WAIT_CENSUSES`]).
fn judge(
    history: &CounterHistory,
    key: &SeriesKey,
    points: &[Option<f64>],
    split: usize,
    b: &Baseline,
    limit: Option<f64>,
    awaits: &mut bool,
) -> Option<CounterAnomaly> {
    let rule = rule(key);
    // Judged on residuals (the points less a start-up climb, the points themselves for a
    // settled series); reported in the series' own values.
    let known: Vec<(usize, f64)> = points
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i, b.residual(i, v))))
        .collect();
    let raw = |i: usize| points[i].unwrap_or(0.0);
    // A ramp is a climb out of a settled level: a series still climbing from its start, or
    // one that bursts out of its band in its baseline, has no such level.
    let ramps = b.slope == 0.0 && !b.bursty();
    // A TIME-WAIT count rises only once it at least doubled (see [`TIME_WAIT_RATIO`]) and
    // climbed as far as a step of sockets, also as a ramp: it does not leak one socket at a
    // time like CLOSE-WAIT, a storm adds tens a second. Seen on the Go lab's quiet run: the
    // edge's TIME-WAIT went 0 → 10 in 4 s as it closed the traffic driver's idle connections,
    // twice nothing and past the ramp minimum of eight.
    let time_wait = matches!(
        key,
        SeriesKey::PortState {
            state: SocketState::TimeWait,
            ..
        }
    );
    let rises = !time_wait
        || known.last().is_some_and(|&(_, latest)| {
            latest >= TIME_WAIT_RATIO * b.level && latest - b.level >= MIN_SOCKET_CHANGE
        });
    let first_search = known.partition_point(|&(i, _)| i < split);
    for k in first_search.max(PERSIST)..known.len() {
        let dir = b.side(known[k].1);
        if dir == 0
            || (dir < 0 && (!rule.falls || b.slope != 0.0))
            || (dir > 0 && (!rises || !b.rises))
        {
            continue;
        }
        if !known[k - PERSIST..k].iter().all(|&(_, x)| b.side(x) != dir) {
            continue;
        }
        let since = &known[k..];
        // A TIME-WAIT count is read once per census: the samples between two censuses
        // repeat the earlier one, and counted as readings they confirm nothing and pull the
        // level of a climb towards its first census. Seen on the unseen lab beside 25,000
        // other sockets (a census every 3 s): a storm counted 2 → 17, then 73, had the
        // median 17 of the points [17, 17, 17, 73] (no step) and was raised two samples
        // later. The change is confirmed by its second census ([`TIME_WAIT_CENSUSES`]).
        // A full accept queue with the kernel counting the connections it drops is confirmed
        // by the census that shows it (see [`FULL_QUEUE_SHARE`]).
        let full_queue = matches!(key, SeriesKey::ListenQueue { .. })
            && dir > 0
            && limit.is_some_and(|l| {
                l > 0.0
                    && since
                        .last()
                        .is_some_and(|&(i, _)| raw(i) >= FULL_QUEUE_SHARE * l)
            })
            && drops_counted(history, known[k].0);
        let (readings, persist) = if full_queue {
            (std::borrow::Cow::Owned(per_census(history, since)), 1)
        } else if time_wait {
            let readings = per_census(history, since);
            if readings.len() < TIME_WAIT_CENSUSES {
                *awaits |= is_step(since, &readings, b, dir, &rule, readings.len());
                continue;
            }
            (std::borrow::Cow::Owned(readings), TIME_WAIT_CENSUSES)
        } else {
            (std::borrow::Cow::Borrowed(since), PERSIST)
        };
        let shape = if is_step(since, &readings, b, dir, &rule, persist) {
            ChangeShape::Step
        } else if dir > 0 && ramps && is_ramp(&known[k - 1..], b, &rule) {
            ChangeShape::Ramp
        } else {
            continue;
        };
        let furthest = if dir > 0 {
            since.iter().copied().max_by(|x, y| x.1.total_cmp(&y.1))
        } else {
            since.iter().copied().min_by(|x, y| x.1.total_cmp(&y.1))
        };
        let Some((furthest_at, furthest)) = furthest else {
            continue;
        };
        let reached = raw(furthest_at);
        let latest = since.last().map_or(reached, |p| raw(p.0));
        // (A TIME-WAIT count confirmed by its second census may have fewer points since.)
        let active = known[known.len().saturating_sub(PERSIST.min(since.len()))..]
            .iter()
            .all(|&(_, x)| b.side(x) == dir);
        // A rise in two levels, a creep out of the band and then a jump, changed at the
        // jump: the creep alone was no incident, and an onset at its first departure is
        // before the fault.
        let jump = (dir > 0 && rule.min_ramp.is_some())
            .then(|| latest_jump(&known, k, b, &rule))
            .flatten();
        let crept = jump.map(|(_, before_jump)| {
            format!(
                "it had crept {} → {} from {} before it jumped",
                number(b.level),
                number(before_jump),
                clock(history.time(known[k].0))
            )
        });
        let changed_at = history.time(known[jump.map_or(k, |(j, _)| j)].0);
        let last_at = history.time(known[known.len() - 1].0);
        let direction = if dir > 0 {
            Direction::Rise
        } else {
            Direction::Fall
        };
        let label = key.label();
        let evidence = evidence(
            &label,
            key.unit(),
            b.level,
            reached,
            direction,
            shape,
            changed_at,
            last_at,
            limit,
        );
        let evidence = match crept {
            Some(crept) => format!("{evidence}; {crept}"),
            None => evidence,
        };
        return Some(CounterAnomaly {
            key: key.clone(),
            label,
            unit: key.unit().to_owned(),
            kind: key.kind(),
            shape,
            direction,
            before: b.level,
            noise: b.noise,
            reached,
            latest,
            score: (furthest - b.level).abs() / b.noise,
            changed_at_unix_ms: changed_at,
            active,
            limit,
            evidence,
            caveat: None,
        });
    }
    None
}

/// The step test: out of the band and holding (its first `persist` readings all out: see
/// [`PERSIST`] and [`TIME_WAIT_CENSUSES`]), far enough from the usual level (the median of
/// its readings), and beyond anything the baseline itself reached. `since` are the points
/// from the change, `readings` the same points or, for a count read once per census, one
/// point per census.
fn is_step(
    since: &[(usize, f64)],
    readings: &[(usize, f64)],
    b: &Baseline,
    dir: i8,
    rule: &KindRule,
    persist: usize,
) -> bool {
    if readings.len() < persist
        || readings.is_empty()
        || !readings[..persist].iter().all(|&(_, x)| b.side(x) == dir)
    {
        return false;
    }
    // A bursty series must stay out longer than its baseline's bursts did (up to
    // BURSTY_MAX_HOLD points) before it is raised; another series is judged on the points
    // there are.
    // The share out of the band allows dips, so the hold is long enough that the share
    // cannot be met by a burst as long as the longest one.
    let hold = if b.bursty() {
        ((b.longest_burst as f64 / SETTLE_SHARE).ceil() as usize + 1)
            .clamp(SETTLE_POINTS, BURSTY_MAX_HOLD)
    } else {
        SETTLE_POINTS
    };
    if b.bursty() && since.len() < hold {
        return false;
    }
    let settle = &since[..since.len().min(hold)];
    let out = settle.iter().filter(|&&(_, x)| b.side(x) == dir).count();
    if (out as f64) < SETTLE_SHARE * settle.len() as f64 {
        return false;
    }
    let mut after: Vec<f64> = readings.iter().map(|p| p.1).collect();
    let level = median(&mut after);
    let change = level - b.level;
    // A fall is raised only once it held for the whole settle window: a restart empties a
    // service's request rate for a few seconds.
    if dir < 0 && (b.level < MIN_FALL_BASELINE || since.len() < SETTLE_POINTS) {
        return false;
    }
    let beyond = if dir > 0 {
        level > b.highest
    } else {
        level < b.lowest
    };
    change.signum() as i8 == dir
        && change.abs() / b.noise >= MIN_SCORE
        && change.abs() >= rule.min_step
        && beyond
}

/// The first point of each socket census among `points` ([`CounterHistory::counted_at`]):
/// the samples between two censuses repeat the earlier one.
fn per_census(history: &CounterHistory, points: &[(usize, f64)]) -> Vec<(usize, f64)> {
    let mut readings: Vec<(usize, f64)> = Vec::new();
    let mut last = None;
    for &(i, v) in points {
        let at = history.counted_at(i);
        if last != Some(at) {
            readings.push((i, v));
            last = Some(at);
        }
    }
    readings
}

/// Whether the node counted connections dropped by a full accept queue (`ListenOverflows`
/// or `ListenDrops` above zero) at point `from` or after.
fn drops_counted(history: &CounterHistory, from: usize) -> bool {
    history.series.iter().any(|s| {
        matches!(&s.key, SeriesKey::ProtocolRate { key }
            if key.ends_with("ListenOverflows") || key.ends_with("ListenDrops"))
            && s.points.iter().skip(from).flatten().any(|&v| v > 0.0)
    })
}

/// Points on either side of a jump that [`latest_jump`] compares: as many as a step must
/// hold ([`SETTLE_POINTS`]), at least [`PERSIST`] after it.
const JUMP_WINDOW: usize = SETTLE_POINTS;

/// Where a rise that left the band at `known[k]` jumped, when it came in two levels: a creep
/// (or a slow climb) out of the band, then a sudden change to a level higher by more than
/// the creep had climbed. Returns the index in `known` of the jump's first point, with the
/// level before it; `None` when the rise is one change (a step from the band, a steady
/// climb, however fast).
///
/// The jump is where the points after it (at least [`PERSIST`], at most [`JUMP_WINDOW`])
/// are all highest above the points before it. It must be a change of its own: as large as
/// a step ([`MIN_SCORE`]·σ and the kind's smallest step), larger than the creep before it
/// above the usual level, and the points before it must hold a level (their own climb over
/// the window less than a quarter of the jump: a fast climb has no jump in it).
///
/// Seen on the Go lab's listen-overflow fault (main 1eea822): the edge's goroutines crept
/// 28.5 → 51 out of a young baseline after its redeploy, then jumped to ~105 with requests
/// waiting on the hung callee. Dated at the creep's first departure, the edge's second
/// incident "Goroutines grow without bound — in edge" began 23 s before the fault.
fn latest_jump(
    known: &[(usize, f64)],
    k: usize,
    b: &Baseline,
    rule: &KindRule,
) -> Option<(usize, f64)> {
    let min_jump = rule.min_step.max(MIN_SCORE * b.noise);
    let mut best: Option<(usize, f64, f64)> = None;
    for j in k + PERSIST..=known.len().saturating_sub(PERSIST) {
        let before = &known[j.saturating_sub(JUMP_WINDOW).max(k.saturating_sub(PERSIST))..j];
        let after = &known[j..(j + JUMP_WINDOW).min(known.len())];
        if before.len() < PERSIST {
            continue;
        }
        let top = before.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        let bottom = after.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let gap = bottom - top;
        if gap <= BAND_Z * b.noise || best.is_some_and(|(_, g, _)| gap <= g) {
            continue;
        }
        let level = median(&mut before.iter().map(|p| p.1).collect::<Vec<_>>());
        let jumped = median(&mut after.iter().map(|p| p.1).collect::<Vec<_>>()) - level;
        let crept = level - b.level;
        let climbed = slope(before) * (before.len() - 1) as f64;
        if jumped >= min_jump && jumped > crept && climbed < jumped / 4.0 {
            best = Some((j, gap, level));
        }
    }
    best.map(|(j, _, level)| (j, level))
}

/// The least-squares slope of `points` per point index (0 for fewer than two).
fn slope(points: &[(usize, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0 as f64).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for &(x, y) in points {
        sxy += (x as f64 - mx) * (y - my);
        sxx += (x as f64 - mx) * (x as f64 - mx);
    }
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}

/// The ramp test over the points from the last one inside the band (`from[0]`).
fn is_ramp(from: &[(usize, f64)], b: &Baseline, rule: &KindRule) -> bool {
    let Some(min_rise) = rule.min_ramp else {
        return false;
    };
    let ramp = &from[from.len().saturating_sub(RAMP_MAX_POINTS)..];
    if ramp.len() < RAMP_MIN_POINTS {
        return false;
    }
    let Some(&(_, latest)) = ramp.last() else {
        return false;
    };
    b.side(latest) > 0
        && latest - b.level >= min_rise
        && latest > b.highest
        && mann_kendall_z(ramp.iter().map(|p| p.1)) >= RAMP_Z
}

/// The Mann–Kendall trend statistic as a z score (no tie correction, continuity-corrected):
/// positive for a rising series.
fn mann_kendall_z(values: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.collect();
    let n = v.len();
    if n < 3 {
        return 0.0;
    }
    let mut s = 0i64;
    for i in 0..n {
        for j in i + 1..n {
            s += match v[j].total_cmp(&v[i]) {
                std::cmp::Ordering::Greater => 1,
                std::cmp::Ordering::Less => -1,
                std::cmp::Ordering::Equal => 0,
            };
        }
    }
    let n = n as f64;
    let var = n * (n - 1.0) * (2.0 * n + 5.0) / 18.0;
    let s = s as f64;
    if s > 0.0 {
        (s - 1.0) / var.sqrt()
    } else if s < 0.0 {
        (s + 1.0) / var.sqrt()
    } else {
        0.0
    }
}

/// The points of a series on the whole axis, and the time up to which its gaps were filled
/// with an upper bound (see below).
///
/// A socket state's gaps before its first point are 0 where its port group was already
/// counted: the store starts a state's series at its first socket, so "no series yet" there
/// means "no socket in that state". Where the port group was not counted, the store kept
/// only the top ports one by one: the group then had at most as many sockets as the smallest
/// group counted (`floor`), or none at all. For the states a fault piles up (TIME-WAIT,
/// CLOSE-WAIT, SYN-RECV, FIN-WAIT, LAST-ACK, CLOSING) that bound is the baseline — an
/// overestimate, so it can only hide a change, never invent one: a storm is what pushes its
/// port into the top ports, and without the bound it would be a series with no past. A
/// service starting opens ESTABLISHED and LISTEN sockets, which keep the rule for series that
/// first appear after the agent started.
fn filled(
    history: &CounterHistory,
    key: &SeriesKey,
    points: &[Option<f64>],
    len: usize,
    floor: &std::cell::OnceCell<Vec<Option<f64>>>,
) -> (Vec<Option<f64>>, Option<i64>) {
    let mut out: Vec<Option<f64>> = points.iter().copied().take(len).collect();
    out.resize(len, None);
    let mut bounded_until = None;
    if let SeriesKey::PortState { port, side, state } = key {
        let total = SeriesKey::PortTotal {
            port: *port,
            side: *side,
        };
        let group = history.get(&total);
        let piles_up = matches!(
            state,
            SocketState::TimeWait
                | SocketState::CloseWait
                | SocketState::SynRecv
                | SocketState::FinWait1
                | SocketState::FinWait2
                | SocketState::LastAck
                | SocketState::Closing
        );
        if let Some(first) = out.iter().position(Option::is_some) {
            for (i, p) in out[..first].iter_mut().enumerate() {
                let counted = group.is_some_and(|g| g.points.get(i).copied().flatten().is_some());
                if counted {
                    *p = Some(0.0);
                } else if piles_up {
                    let floor = floor.get_or_init(|| port_floor(history, len));
                    if let Some(bound) = floor.get(i).copied().flatten() {
                        *p = Some(bound);
                        bounded_until = Some(history.time(i + 1));
                    }
                }
            }
        }
    }
    (out, bounded_until)
}

/// The first point at which a series was counted for itself: for a socket state, where it or
/// its port group has a point; `None` when it never was.
fn first_counted(history: &CounterHistory, key: &SeriesKey, len: usize) -> Option<usize> {
    let own = history
        .get(key)
        .and_then(|s| s.points.iter().take(len).position(Option::is_some));
    let group = match key {
        SeriesKey::PortState { port, side, .. } => history
            .get(&SeriesKey::PortTotal {
                port: *port,
                side: *side,
            })
            .and_then(|s| s.points.iter().take(len).position(Option::is_some)),
        _ => None,
    };
    match (own, group) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Per point, the smallest port group counted one by one (its total), `None` where no group
/// was counted: the most sockets an uncounted group can have had then.
fn port_floor(history: &CounterHistory, len: usize) -> Vec<Option<f64>> {
    let mut floor: Vec<Option<f64>> = vec![None; len];
    for s in &history.series {
        if !matches!(s.key, SeriesKey::PortTotal { .. }) {
            continue;
        }
        for (f, p) in floor.iter_mut().zip(&s.points) {
            if let Some(v) = p {
                *f = Some(f.map_or(*v, |m: f64| m.min(*v)));
            }
        }
    }
    floor
}

/// The change itself in an evidence sentence, without what is said beside it (after "; ").
pub(crate) fn head(evidence: &str) -> &str {
    evidence.split("; ").next().unwrap_or(evidence)
}

impl CounterAnomaly {
    /// The change itself in its evidence (see [`head`]): what an incident's title quotes.
    pub(crate) fn head(&self) -> &str {
        head(&self.evidence)
    }

    /// Re-reads its series in `history`: its latest point, and whether it is still the change
    /// it was raised for — its latest [`PERSIST`] points out of the band it left, and no run
    /// of [`PERSIST`] points back inside that band since it changed. Returns whether it is
    /// still active; a series the history no longer holds is not, and neither is a node-wide
    /// series (it moves with anything on the node, so it never keeps an incident going by
    /// itself).
    ///
    /// A change that ended stays ended: the same series leaving its band again later is a
    /// new change, raised by the detector with its own onset and grouped with what caused
    /// it. Seen on the unseen lab (blind, 2026-12-05): a caller's error rate, listed in the
    /// incident of a callee that closed connections, went back to zero when that fault
    /// healed, rose again three minutes later because another callee was slow — and made the
    /// healed incident active again, ranked above the live one.
    pub(crate) fn reread(&mut self, history: &CounterHistory) -> bool {
        self.active = self.still_out(history) && !self.kind.is_node_wide();
        self.active
    }

    /// Re-reads its series in `history` as [`CounterAnomaly::reread`] does, and returns
    /// whether it is still the change it was raised for, a node-wide series too.
    pub(crate) fn still_out(&mut self, history: &CounterHistory) -> bool {
        let band = BAND_Z * self.noise;
        let (direction, before) = (self.direction, self.before);
        let out = |v: f64| match direction {
            Direction::Rise => v > before + band,
            Direction::Fall => v < before - band,
        };
        let Some(series) = history.get(&self.key) else {
            return false;
        };
        let changed = history.point_at(self.changed_at_unix_ms).unwrap_or(0);
        let since: Vec<f64> = series
            .points
            .iter()
            .skip(changed)
            .flatten()
            .copied()
            .collect();
        if let Some(&v) = since.last() {
            self.latest = v;
        }
        let mut inside = 0;
        let mut ended = false;
        for &v in &since {
            inside = if out(v) { 0 } else { inside + 1 };
            ended |= inside >= PERSIST;
        }
        // A TIME-WAIT count is raised once a second census confirms it, maybe with fewer
        // points than PERSIST since (see [`TIME_WAIT_CENSUSES`]).
        let needed = match self.key {
            SeriesKey::PortState {
                state: SocketState::TimeWait,
                ..
            } => PERSIST.min(since.len().max(TIME_WAIT_CENSUSES)),
            _ => PERSIST,
        };
        let latest = &since[since.len().saturating_sub(needed)..];
        let out_now = !ended && latest.len() == needed && latest.iter().all(|&v| out(v));
        // Still the change it was raised for: told up to now, a node-wide one too (it keeps
        // nothing active, but its evidence is quoted beside the others'). Seen on the demo's
        // goroutine leak, a kept counter's evidence said "rose 2 → 154 in 9 s" a minute into a
        // climb past 1,000; on the demo's time-wait, a storm's hint quoted "TIME-WAIT (all
        // ports) is climbing 40 → 351 in 8 s" beside "TIME-WAIT →:45583 is climbing 0 → 729
        // in 47 s".
        if out_now {
            let furthest = since
                .iter()
                .copied()
                .fold(self.reached, |m, v| match direction {
                    Direction::Rise => m.max(v),
                    Direction::Fall => m.min(v),
                });
            if furthest != self.reached {
                self.reached = furthest;
                let told = self.evidence.clone();
                self.retell(history, &told);
            }
        }
        out_now
    }

    /// Its evidence told again from its fields, up to its series' last point in `history`,
    /// with what `told` (an earlier telling) said beside the change (a young series' climb).
    pub(crate) fn retell(&mut self, history: &CounterHistory, told: &str) {
        let last_at = history
            .get(&self.key)
            .and_then(|s| s.points.iter().rposition(Option::is_some))
            .map_or(self.changed_at_unix_ms, |i| history.time(i));
        self.tell(last_at);
        // The share of its limit is told again from the fields; only what else was said
        // beside the change is kept. Seen on the unseen lab: "…; 0 % of its limit 20,000;
        // 0 % of its limit 20,000".
        if let Some((_, context)) = told.split_once("; ") {
            for part in context.split("; ").filter(|p| !p.contains(OF_ITS_LIMIT)) {
                self.evidence.push_str("; ");
                self.evidence.push_str(part);
            }
        }
    }

    /// Its evidence told again from its fields, its last point at `last_at`.
    pub(crate) fn tell(&mut self, last_at: i64) {
        self.evidence = evidence(
            &self.label,
            &self.unit,
            self.before,
            self.reached,
            self.direction,
            self.shape,
            self.changed_at_unix_ms,
            last_at,
            self.limit,
        );
    }
}

/// How the evidence says a series' share of its limit ("40 % of its limit 1,024").
const OF_ITS_LIMIT: &str = "% of its limit";

/// The sentence of evidence.
#[allow(clippy::too_many_arguments)]
fn evidence(
    label: &str,
    unit: &str,
    before: f64,
    reached: f64,
    direction: Direction,
    shape: ChangeShape,
    changed_at: i64,
    last_at: i64,
    limit: Option<f64>,
) -> String {
    let verb = match (direction, shape) {
        (Direction::Fall, _) => "fell",
        (Direction::Rise, ChangeShape::Step) => "rose",
        (Direction::Rise, ChangeShape::Ramp) => "is climbing",
    };
    let unit = match unit {
        "/s" => "/s",
        "pages" => " pages",
        _ => "",
    };
    let secs = ((last_at - changed_at).max(0) as f64 / 1000.0).round() as i64;
    let mut text = format!(
        "{label} {verb} {}{unit} → {}{unit} in {secs} s (from {})",
        number(before),
        number(reached),
        clock(changed_at)
    );
    if let Some(limit) = limit.filter(|l| *l > 0.0) {
        text.push_str(&format!(
            "; {} {OF_ITS_LIMIT} {}",
            (100.0 * reached / limit).round(),
            number(limit)
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::CounterSeries;
    use crate::testing::Noise;
    use faultline_series::{PortSide, ProcessMetric, SocketState};

    /// 2026-11-25T20:30:00Z.
    pub(super) const START: i64 = 1_795_638_600_000;

    fn port_state(port: u16, side: PortSide, state: SocketState) -> SeriesKey {
        SeriesKey::PortState { port, side, state }
    }

    pub(super) fn history(series: Vec<(SeriesKey, Vec<Option<f64>>)>) -> CounterHistory {
        CounterHistory {
            start_unix_ms: START,
            step_ms: 1000,
            series: series
                .into_iter()
                .map(|(key, points)| CounterSeries { key, points })
                .collect(),
            ..CounterHistory::default()
        }
    }

    /// The history cut at `end` points: what the agent sees at that second.
    pub(super) fn at(h: &CounterHistory, end: usize) -> CounterHistory {
        CounterHistory {
            series: h
                .series
                .iter()
                .map(|s| CounterSeries {
                    key: s.key.clone(),
                    points: s.points.iter().take(end).copied().collect(),
                })
                .collect(),
            ..h.clone()
        }
    }

    /// The first second (from `from`) at which the detector raises `key`, if any before `to`.
    pub(super) fn raised_at(
        h: &CounterHistory,
        key: &SeriesKey,
        from: usize,
        to: usize,
    ) -> Option<usize> {
        let config = AnomalyConfig::default();
        (from..=to).find(|&end| {
            detect(&at(h, end), &[], &[], &config)
                .anomalies
                .iter()
                .any(|a| &a.key == key)
        })
    }

    /// The first second at which the detector raises `key` for a fault that began at
    /// `began`, asserting it is at most `within` seconds after (looked for up to `to`).
    pub(super) fn raised_within(
        h: &CounterHistory,
        key: &SeriesKey,
        began: usize,
        within: usize,
        to: usize,
    ) -> usize {
        let raised = raised_at(h, key, began, to)
            .unwrap_or_else(|| panic!("began at {began} s: not raised by {to} s"));
        assert!(
            raised <= began + within,
            "began at {began} s: raised {} s after",
            raised - began
        );
        raised
    }

    /// Asserts the detector raises nothing at any second in `ends`, told of `starts`.
    pub(super) fn assert_no_break(
        h: &CounterHistory,
        ends: std::ops::RangeInclusive<usize>,
        starts: &[ServiceStart],
        config: &AnomalyConfig,
    ) {
        for end in ends {
            let report = detect(&at(h, end), &[], starts, config);
            assert!(
                report.anomalies.is_empty(),
                "at {end}: {:?}",
                report.anomalies
            );
        }
    }

    /// Noise around `level` (± `spread`), rounded like a count.
    pub(super) fn noisy(n: usize, level: f64, spread: f64, seed: u64) -> Vec<Option<f64>> {
        let mut noise = Noise(seed);
        (0..n)
            .map(|_| {
                Some(
                    (level + spread * (2.0 * noise.next() - 1.0))
                        .round()
                        .max(0.0),
                )
            })
            .collect()
    }

    #[test]
    fn a_time_wait_storm_is_raised_within_seconds_of_its_start() {
        let key = port_state(8080, PortSide::Remote, SocketState::TimeWait);
        let mut points = noisy(600, 12.0, 3.0, 7);
        let start = 420;
        for (j, p) in points[start..].iter_mut().enumerate() {
            *p = Some((12.0 + 145.0 * (j as f64 + 1.0)).min(2_900.0));
        }
        let h = history(vec![(key.clone(), points)]);
        let at_end = raised_at(&h, &key, start, 599).expect("raised");
        assert!(at_end <= start + 10, "raised {} s after", at_end - start);
        let report = detect(&at(&h, start + 20), &[], &[], &AnomalyConfig::default());
        let a = &report.anomalies[0];
        assert_eq!(a.direction, Direction::Rise);
        assert_eq!(a.changed_at_unix_ms, START + start as i64 * 1000);
        assert!(
            a.evidence
                .starts_with("TIME-WAIT →:8080 rose 12 → 2,900 in 19 s"),
            "{}",
            a.evidence
        );
        assert!(a.active);
    }

    /// A port's TIME-WAIT count at `level` with a storm of 25 closes a second from 421.5 s,
    /// counted by a socket census at `censuses` (the samples between repeat the census before
    /// them, and say how old it is).
    fn census_paced_storm(
        level: f64,
        censuses: &[usize],
        len: usize,
    ) -> (SeriesKey, CounterHistory) {
        census_paced_storm_from(421.5, level, censuses, len)
    }

    /// [`census_paced_storm`] with the storm from `from` s.
    fn census_paced_storm_from(
        from: f64,
        level: f64,
        censuses: &[usize],
        len: usize,
    ) -> (SeriesKey, CounterHistory) {
        let key = port_state(8082, PortSide::Remote, SocketState::TimeWait);
        let base = noisy(len, level, 2.0, 41);
        let census = |i: usize| {
            censuses
                .iter()
                .rev()
                .find(|&&c| c <= i)
                .copied()
                .unwrap_or(i)
        };
        let value = |i: usize| {
            let c = census(i);
            let storm = (25.0 * (c as f64 - from)).max(0.0).round();
            base[c].map(|v| v + storm)
        };
        let h = history(vec![
            (key.clone(), (0..len).map(value).collect()),
            (
                SeriesKey::Runtime {
                    metric: faultline_series::RuntimeMetric::SocketCensusAge,
                },
                (0..len)
                    .map(|i| Some(((i - census(i)) * 1000) as f64))
                    .collect(),
            ),
        ]);
        (key, h)
    }

    /// Seen on the unseen lab beside 25,000 other TIME-WAIT sockets (a census every 3–6 s
    /// under its CPU budget): the storm was raised at the third sample of the census that
    /// first showed it, the two samples after repeating that census — two seconds of waiting
    /// that confirmed nothing — and the incident then judged its pace from that one census.
    /// It is raised at the next census instead: the regular one, or one asked for at once.
    #[test]
    fn a_time_wait_storm_counted_every_few_seconds_is_confirmed_by_a_second_census() {
        let config = AnomalyConfig::default();
        let every_4_s: Vec<usize> = (0..600).step_by(4).collect();
        let (key, h) = census_paced_storm(5.0, &every_4_s, 440);
        // The census of 424 s shows 5 → 67; the samples of 425–427 s repeat it.
        for end in 425..=428 {
            let report = detect(&at(&h, end), &[], &[], &config);
            assert!(
                report.anomalies.is_empty(),
                "at {end}: {:?}",
                report.anomalies
            );
            assert_eq!(report.awaiting_census, vec![key.clone()], "at {end}");
        }
        // The census of 428 s confirms it (5 → 167), dated at the census that showed it.
        let report = detect(&at(&h, 429), &[], &[], &config);
        let a = &report.anomalies[0];
        assert_eq!((&a.key, a.changed_at_unix_ms), (&key, START + 424_000));
        assert!(a.active && report.awaiting_census.is_empty());

        // A census asked for at 425 s confirms it a second after the one that showed it.
        let mut asked = every_4_s.clone();
        asked.push(425);
        asked.sort_unstable();
        let (_, h) = census_paced_storm(5.0, &asked, 440);
        assert_eq!(raised_at(&h, &key, 420, 439), Some(426));

        // Counted every second, it is raised at its second point.
        let (_, h) = census_paced_storm(5.0, &(0..600).collect::<Vec<_>>(), 440);
        assert_eq!(raised_at(&h, &key, 420, 439), Some(424));

        // Seen on the unseen lab, a census every 3 s: the storm began just before a census
        // (5 → 20), and the next one counted 95. Its level is the median of its two
        // readings, not of the four samples [20, 20, 20, 95]: raised at that census.
        let every_3_s: Vec<usize> = (0..600).step_by(3).collect();
        let (_, h) = census_paced_storm_from(422.4, 5.0, &every_3_s, 440);
        assert_eq!(raised_at(&h, &key, 420, 439), Some(427));
    }

    /// A listener's accept queue (backlog 8) read at a socket census every 2 s, empty until
    /// the census of 424 s reads it full (`full` connections waiting); the node's
    /// `TcpExt ListenOverflows` rate, read every second, from `drops_from` s (none: never).
    fn full_accept_queue(full: f64, drops_from: Option<usize>) -> (SeriesKey, CounterHistory) {
        let key = SeriesKey::ListenQueue { port: 8080 };
        let census = |i: usize| i - i % 2;
        let h = history(vec![
            (
                key.clone(),
                (0..440)
                    .map(|i| Some(if census(i) >= 424 { full } else { 0.0 }))
                    .collect(),
            ),
            (
                SeriesKey::ProtocolRate {
                    key: "TcpExt ListenOverflows".into(),
                },
                (0..440)
                    .map(|i| {
                        Some(if drops_from.is_some_and(|d| i >= d) {
                            40.0
                        } else {
                            0.0
                        })
                    })
                    .collect(),
            ),
            (
                SeriesKey::Runtime {
                    metric: faultline_series::RuntimeMetric::SocketCensusAge,
                },
                (0..440)
                    .map(|i| Some(((i - census(i)) * 1000) as f64))
                    .collect(),
            ),
        ]);
        (key, h)
    }

    /// Seen on the Go lab's listen-overflow (backlog 8): the callers' first timeouts came
    /// 0.5–0.7 s after the queue filled, and the incident was titled by them for 1–2 s until
    /// the queue's change was confirmed by the samples after the census that showed it. A
    /// full queue while the kernel counts its drops is raised at that census.
    #[test]
    fn a_full_accept_queue_with_drops_counted_is_raised_at_the_census_that_shows_it() {
        let config = AnomalyConfig::default();
        let limits = |key: &SeriesKey| {
            [SeriesLimit {
                key: key.clone(),
                limit: 8.0,
            }]
        };
        let first = |h: &CounterHistory, key: &SeriesKey| {
            (420..440).find(|&end| {
                detect(&at(h, end), &limits(key), &[], &config)
                    .anomalies
                    .iter()
                    .any(|a| &a.key == key)
            })
        };
        // Full (9 of 8: the kernel shows one past the backlog) and dropping from 423 s.
        let (key, h) = full_accept_queue(9.0, Some(423));
        assert_eq!(first(&h, &key), Some(425), "the census of 424 s");
        let report = detect(&at(&h, 425), &limits(&key), &[], &config);
        let a = &report.anomalies[0];
        assert_eq!(a.changed_at_unix_ms, START + 424_000);
        assert!(a.evidence.contains("of its limit 8"), "{}", a.evidence);
        // No drops counted: confirmed as any series is, by the samples after it.
        let (key, h) = full_accept_queue(9.0, None);
        assert_eq!(first(&h, &key), Some(427));
        // Not full (6 of 8), drops counted elsewhere on the node: the same.
        let (key, h) = full_accept_queue(6.0, Some(423));
        assert_eq!(first(&h, &key), Some(427));
    }

    /// The census before the one that shows a listener's queue full may show it filling
    /// (the Go lab's backlog of 8 read 0, 4, then 9): one reading raises nothing, but it is a
    /// filling queue that an incident of its callers' failures can list, saying it rests on
    /// one census. A queue that sat half full for long, or that only reached a quarter, is not.
    #[test]
    fn a_queue_half_full_at_one_census_is_filling_not_raised() {
        let config = AnomalyConfig::default();
        let key = SeriesKey::ListenQueue { port: 8080 };
        let limits = [SeriesLimit {
            key: key.clone(),
            limit: 8.0,
        }];
        // Censuses every 2 s; the one of 424 s reads 4 of 8.
        let (_, h) = full_accept_queue(4.0, None);
        let report = detect(&at(&h, 425), &limits, &[], &config);
        assert!(report.anomalies.iter().all(|a| a.key != key), "{report:#?}");
        assert_eq!(report.filling_queues.len(), 1, "{report:#?}");
        let f = &report.filling_queues[0];
        assert_eq!(f.key, key);
        assert_eq!(f.changed_at_unix_ms, START + 424_000);
        assert_eq!((f.before, f.reached, f.limit), (0.0, 4.0, Some(8.0)));
        assert!(
            f.evidence.starts_with(
                "listen queue :8080 is filling: 0 → 4 of its backlog of 8 at the census of "
            ) && f
                .evidence
                .ends_with("seen by one census only (not full yet; no connection dropped yet)"),
            "{}",
            f.evidence
        );
        // The cached detector says the same.
        let report = cached::Detector::new(cached::Bounds::default()).detect(
            &at(&h, 425),
            &limits,
            &[],
            &config,
        );
        assert_eq!(report.filling_queues.len(), 1, "{report:#?}");
        // Half full since 424 s, judged at 439 s: a level for the detector, not a rise now.
        let report = detect(&at(&h, 439), &limits, &[], &config);
        assert!(report.filling_queues.is_empty(), "{report:#?}");
        // A quarter of the backlog is no filling queue.
        let (_, h) = full_accept_queue(2.0, None);
        let report = detect(&at(&h, 425), &limits, &[], &config);
        assert!(report.filling_queues.is_empty(), "{report:#?}");
        // Raised already (full, dropping): not listed again as filling.
        let (_, h) = full_accept_queue(9.0, Some(423));
        let report = detect(&at(&h, 425), &limits, &[], &config);
        assert!(report.anomalies.iter().any(|a| a.key == key));
        assert!(report.filling_queues.is_empty(), "{report:#?}");
    }

    #[test]
    fn a_close_wait_leak_is_raised_as_a_ramp_before_it_settles() {
        let key = port_state(9000, PortSide::Local, SocketState::CloseWait);
        let total = SeriesKey::PortTotal {
            port: 9000,
            side: PortSide::Local,
        };
        let start = 400;
        // The state's series starts at its first socket; the port group was there all along.
        let mut cw: Vec<Option<f64>> = vec![None; start];
        cw.extend((1..=200).map(|j| Some(j as f64)));
        // The group holds the leaked sockets beside its live connections.
        let group: Vec<Option<f64>> = noisy(600, 30.0, 4.0, 3)
            .iter()
            .zip(&cw)
            .map(|(live, leaked)| live.map(|l| l + leaked.unwrap_or(0.0)))
            .collect();
        let h = history(vec![(key.clone(), cw), (total, group)]);
        let at_end = raised_at(&h, &key, start, 599).expect("raised");
        assert!(at_end <= start + 10, "raised {} s after", at_end - start);
        let report = detect(&at(&h, at_end), &[], &[], &AnomalyConfig::default());
        let a = report.anomalies.iter().find(|a| a.key == key).unwrap();
        assert_eq!(a.shape, ChangeShape::Ramp);
        assert!(a.evidence.contains("is climbing 0 →"), "{}", a.evidence);
    }

    #[test]
    fn a_goroutine_leak_and_fds_near_their_limit_are_raised() {
        let tasks = SeriesKey::Task {
            target: "api".into(),
            source: "pprof".into(),
        };
        let fds = SeriesKey::Process {
            name: "api".into(),
            metric: ProcessMetric::OpenFds,
        };
        let mut g = noisy(600, 14.0, 3.0, 11);
        let mut f = noisy(600, 40.0, 2.0, 12);
        for j in 0..100 {
            g[500 + j] = Some(14.0 + 40.0 * j as f64);
            f[500 + j] = Some((40.0 + 10.0 * j as f64).min(1_024.0));
        }
        let h = history(vec![(tasks.clone(), g), (fds.clone(), f)]);
        let limits = [SeriesLimit {
            key: fds.clone(),
            limit: 1_024.0,
        }];
        let report = detect(&h, &limits, &[], &AnomalyConfig::default());
        let keys: Vec<&SeriesKey> = report.anomalies.iter().map(|a| &a.key).collect();
        assert!(keys.contains(&&tasks) && keys.contains(&&fds), "{keys:?}");
        let fd = report.anomalies.iter().find(|a| a.key == fds).unwrap();
        assert!(
            fd.evidence.ends_with("100 % of its limit 1,024"),
            "{}",
            fd.evidence
        );
        // Told again up to now (a kept incident's counter), its share of the limit is said
        // once, however often it is retold.
        let mut again = fd.clone();
        again.retell(&h, &fd.evidence);
        again.retell(&h, &again.evidence.clone());
        assert_eq!(
            again.evidence.matches("of its limit").count(),
            1,
            "{}",
            again.evidence
        );
    }

    /// The Go lab's dns fault, seen from the callee whose callers can no longer find it
    /// (`testdata/go-lab-dns-callee-requests.json`): the chain was redeployed 40 s after its
    /// first deploy stopped, and the agent dates a restart where the old process was last
    /// seen, so the callee's baseline was the 40 s its request rate read 0. Its requests
    /// falling 19/s → 0 at the fault were a fall from 0: never raised, and the dns hint had
    /// no callee's fall to rest on. Its baseline starts with its first request since.
    #[test]
    fn a_callees_requests_falling_after_a_redeploy_with_a_gap_are_raised() {
        let recorded = crate::testing::Recorded::parse(include_str!(
            "../testdata/go-lab-dns-callee-requests.json"
        ));
        let key = SeriesKey::ServiceTraffic {
            service: "shipping".into(),
            metric: TrafficMetric::Requests,
        };
        let h = CounterHistory {
            start_unix_ms: recorded.start,
            ..history(vec![(key.clone(), recorded.points("requests"))])
        };
        let starts = [ServiceStart {
            service: "shipping".into(),
            at_unix_ms: recorded.start + recorded.index("restart_at_ms") as i64,
            ..ServiceStart::default()
        }];
        let fault = recorded.index("fault_point");
        let raised = (fault..h.len())
            .find(|&end| {
                detect(&at(&h, end), &[], &starts, &AnomalyConfig::default())
                    .anomalies
                    .iter()
                    .any(|a| a.key == key && a.direction == Direction::Fall)
            })
            .expect("the fall is raised");
        // A fall holds for ten points before it is raised (`SETTLE_POINTS`).
        assert!(
            raised <= fault + 13,
            "raised {} s after the fault",
            raised - fault
        );
    }

    #[test]
    fn a_slow_goroutine_climb_is_no_leak_and_a_leak_is_raised_within_seconds() {
        // Seen on the Go lab's quiet run: a mid service's goroutines crept 16 → 30 over
        // 72 s two minutes after it started (more keep-alive connections from its callers),
        // a steady climb of less than a process's step minimum. A leak of that service
        // (37 → 3,746 in 30 s) passes the minimum within a second.
        let tasks = SeriesKey::Task {
            target: "checkout".into(),
            source: "pprof".into(),
        };
        let start = 400;
        let mut slow = noisy(600, 16.0, 1.0, 21);
        for (j, p) in slow[start..].iter_mut().enumerate() {
            *p = Some((16.0 + 14.0 * (j as f64 + 1.0) / 72.0).min(30.0).round());
        }
        let h = history(vec![(tasks.clone(), slow)]);
        assert_eq!(raised_at(&h, &tasks, start, 599), None);

        let mut leak = noisy(600, 37.0, 2.0, 22);
        for (j, p) in leak[start..].iter_mut().enumerate() {
            *p = Some((37.0 + 124.0 * (j as f64 + 1.0)).min(3_746.0));
        }
        let h = history(vec![(tasks.clone(), leak)]);
        let at_end = raised_at(&h, &tasks, start, 599).expect("raised");
        assert!(at_end <= start + 5, "raised {} s after", at_end - start);
    }

    #[test]
    fn time_wait_wandering_with_its_clients_churn_is_no_storm_and_a_storm_is_raised() {
        // Seen on the Go lab's quiet run: the traffic driver's TIME-WAIT towards the edge
        // climbed 60 → 94 in 10 s and stayed there (its pool recycled faster), a close rate
        // up by half; a connection per call multiplies it within seconds.
        let key = port_state(46097, PortSide::Remote, SocketState::TimeWait);
        let start = 400;
        let mut wander = noisy(600, 60.0, 4.0, 31);
        let mut storm = wander.clone();
        let mut noise = Noise(32);
        for (j, p) in wander[start..].iter_mut().enumerate() {
            let climb = (60.0 + 3.4 * (j as f64 + 1.0)).min(94.0);
            *p = Some((climb + 4.0 * (2.0 * noise.next() - 1.0)).round());
        }
        let h = history(vec![(key.clone(), wander)]);
        assert_eq!(raised_at(&h, &key, start, 599), None);

        for (j, p) in storm[start..].iter_mut().enumerate() {
            *p = Some((60.0 + 40.0 * (j as f64 + 1.0)).min(2_400.0));
        }
        let h = history(vec![(key.clone(), storm)]);
        let at_end = raised_at(&h, &key, start, 599).expect("raised");
        assert!(at_end <= start + 5, "raised {} s after", at_end - start);
    }

    #[test]
    fn ten_closes_on_an_empty_port_are_no_storm_and_a_storm_from_nothing_is_raised() {
        // Seen on the Go lab's quiet run (seed 9300): the edge's own TIME-WAIT went 0 → 10 in
        // 4 s as it closed the traffic driver's idle connections: twice nothing, and past the
        // ramp minimum of eight. A caller opening a connection per call (three calls a
        // request, twenty requests a second) leaves sixty a second.
        let key = port_state(41000, PortSide::Local, SocketState::TimeWait);
        let start = 400;
        let mut closes = vec![Some(0.0); 600];
        let mut storm = closes.clone();
        let climb = [1.0, 3.0, 4.0, 6.0, 8.0, 10.0, 10.0, 11.0, 12.0, 12.0];
        for (j, p) in closes[start..].iter_mut().enumerate() {
            *p = Some(climb.get(j).copied().unwrap_or(12.0));
        }
        let h = history(vec![(key.clone(), closes)]);
        assert_eq!(raised_at(&h, &key, start, 599), None);

        for (j, p) in storm[start..].iter_mut().enumerate() {
            *p = Some((60.0 * (j as f64 + 1.0)).min(3_600.0));
        }
        let h = history(vec![(key.clone(), storm)]);
        let at_end = raised_at(&h, &key, start, 599).expect("raised");
        assert!(at_end <= start + 5, "raised {} s after", at_end - start);
    }

    #[test]
    fn pooled_connections_closed_idle_by_their_server_are_no_close_wait_leak() {
        // Seen on the Go lab's quiet run: the edge closes the traffic driver's idle pooled
        // connections, which sit in CLOSE-WAIT on the driver's side (FIN-WAIT-2 on the
        // edge's) until reused: 13 → 39 over a minute and a half while the driver's
        // connections to the port stayed 48. A leak opens new connections beside its dead ones.
        let cw = port_state(49287, PortSide::Remote, SocketState::CloseWait);
        let estab = port_state(49287, PortSide::Remote, SocketState::Established);
        let total = SeriesKey::PortTotal {
            port: 49287,
            side: PortSide::Remote,
        };
        let start = 400;
        let (mut c, mut e, mut t) = (Vec::new(), Vec::new(), Vec::new());
        let mut noise = Noise(41);
        for i in 0..600 {
            let closed = if i < start {
                13.0 + (4.0 * noise.next()).round()
            } else {
                (13.0 + 0.3 * (i - start) as f64).min(39.0).round()
            };
            c.push(Some(closed));
            e.push(Some(48.0 - closed));
            t.push(Some(48.0));
        }
        let h = history(vec![
            (cw.clone(), c.clone()),
            (estab.clone(), e),
            (total.clone(), t.clone()),
        ]);
        assert_eq!(raised_at(&h, &cw, start, 599), None);

        // And back: the client's calls replace them with established connections, 23 → 46.
        let (mut back_c, mut back_e) = (Vec::new(), Vec::new());
        for i in 0..600 {
            let closed = if i < start {
                25.0 + (4.0 * noise.next()).round()
            } else {
                (25.0 - 0.4 * (i - start) as f64).max(2.0).round()
            };
            back_c.push(Some(closed));
            back_e.push(Some(48.0 - closed));
        }
        let h = history(vec![
            (cw.clone(), back_c),
            (estab.clone(), back_e),
            (total.clone(), t),
        ]);
        assert_eq!(raised_at(&h, &estab, start, 599), None);

        // The same CLOSE-WAIT climb with the pool growing beside it: a leak.
        let grown: Vec<Option<f64>> = c.iter().map(|v| v.map(|v| 35.0 + v)).collect();
        let h = history(vec![(cw.clone(), c), (total, grown)]);
        assert!(raised_at(&h, &cw, start, 599).is_some());
    }

    #[test]
    fn a_port_total_rising_by_its_time_wait_only_is_no_break() {
        // The same run: the edge's sockets 95 → 143 as its TIME-WAIT wandered 47 → 94 and its
        // connections stayed 48; connections piling up raise the total.
        let total = SeriesKey::PortTotal {
            port: 49287,
            side: PortSide::Local,
        };
        let tw = port_state(49287, PortSide::Local, SocketState::TimeWait);
        let start = 400;
        let mut closed = noisy(600, 47.0, 3.0, 51);
        for (j, p) in closed[start..].iter_mut().enumerate() {
            *p = Some((47.0 + 2.5 * (j as f64 + 1.0)).min(94.0));
        }
        let group: Vec<Option<f64>> = closed.iter().map(|v| v.map(|v| v + 48.0)).collect();
        let h = history(vec![(total.clone(), group), (tw.clone(), closed.clone())]);
        assert_eq!(raised_at(&h, &total, start, 599), None);

        let piling: Vec<Option<f64>> = closed
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.map(|v| {
                    v + 48.0
                        + if i >= start {
                            2.0 * (i - start) as f64
                        } else {
                            0.0
                        }
                })
            })
            .collect();
        let h = history(vec![(total.clone(), piling), (tw, closed)]);
        assert!(raised_at(&h, &total, start, 599).is_some());
    }

    #[test]
    fn background_churn_of_other_programs_raises_nothing() {
        // Ten minutes of other programs' client sockets: bursts of 6 to 14 TIME-WAIT on
        // their peers' ports every few seconds, a node-wide total that wobbles with them,
        // and a port group that appears for the first time mid-history.
        let mut noise = Noise(99);
        let mut series = Vec::new();
        for port in [443u16, 5432, 6379] {
            let points: Vec<Option<f64>> = (0..600)
                .map(|i| {
                    Some(if i % 7 < 3 {
                        (6.0 + 8.0 * noise.next()).round()
                    } else {
                        0.0
                    })
                })
                .collect();
            series.push((
                port_state(port, PortSide::Remote, SocketState::TimeWait),
                points,
            ));
        }
        series.push((
            SeriesKey::NodeState {
                state: SocketState::TimeWait,
            },
            noisy(600, 40.0, 15.0, 5),
        ));
        let mut fresh: Vec<Option<f64>> = vec![None; 560];
        fresh.extend((0..40).map(|j| Some(j.min(14) as f64)));
        series.push((
            port_state(8443, PortSide::Remote, SocketState::TimeWait),
            fresh,
        ));
        let h = history(series);
        assert_no_break(&h, 300..=600, &[], &AnomalyConfig::default());
    }

    #[test]
    fn a_periodic_burst_already_in_the_baseline_is_not_a_break() {
        // A batch job that opens 60 connections every two minutes.
        let key = port_state(5432, PortSide::Remote, SocketState::TimeWait);
        let points: Vec<Option<f64>> = (0..700)
            .map(|i| Some(if i % 120 < 20 { 60.0 } else { 2.0 }))
            .collect();
        let h = history(vec![(key.clone(), points)]);
        assert_eq!(raised_at(&h, &key, 420, 699), None);
    }

    #[test]
    fn a_service_restart_raises_nothing() {
        // The service goes away for 3 s: its goroutine scrape fails, its sockets and fds
        // drop, its request rate falls, then all come back to their usual level (goroutines
        // with a short start-up climb).
        let tasks = SeriesKey::Task {
            target: "api".into(),
            source: "pprof".into(),
        };
        let estab = port_state(8080, PortSide::Local, SocketState::Established);
        let requests = SeriesKey::ServiceTraffic {
            service: "api".into(),
            metric: TrafficMetric::Requests,
        };
        let fds = SeriesKey::Process {
            name: "api".into(),
            metric: ProcessMetric::OpenFds,
        };
        let mut g = noisy(600, 20.0, 3.0, 1);
        let mut e = noisy(600, 8.0, 2.0, 2);
        let mut r = noisy(600, 50.0, 8.0, 3);
        let mut f = noisy(600, 30.0, 2.0, 4);
        for i in 450..453 {
            g[i] = None;
            e[i] = Some(0.0);
            r[i] = Some(0.0);
            f[i] = None;
        }
        g[453] = Some(4.0);
        g[454] = Some(9.0);
        f[453] = Some(12.0);
        // The callers' pooled connections were closed by the dying process.
        let tw = port_state(8080, PortSide::Local, SocketState::TimeWait);
        let mut t: Vec<Option<f64>> = vec![Some(0.0); 600];
        for p in &mut t[450..510] {
            *p = Some(9.0);
        }
        let h = history(vec![
            (tasks, g),
            (estab, e),
            (requests, r),
            (fds, f),
            (tw, t),
        ]);
        assert_no_break(&h, 440..=600, &[], &AnomalyConfig::default());
    }

    #[test]
    fn services_started_after_the_agent_are_not_judged_on_their_start_up() {
        // The agent starts; 20 s later the services come up and their traffic climbs to its
        // usual level over 30 s. The baseline would hold that climb: not judged, and said so.
        let tasks = SeriesKey::Task {
            target: "api".into(),
            source: "pprof".into(),
        };
        let estab = port_state(8080, PortSide::Local, SocketState::Established);
        let total = SeriesKey::PortTotal {
            port: 8080,
            side: PortSide::Local,
        };
        let mut g: Vec<Option<f64>> = vec![None; 20];
        g.extend((0..400).map(|j| Some((3.0 + j as f64 * 2.0).min(60.0))));
        let mut e: Vec<Option<f64>> = vec![None; 20];
        e.extend((0..400).map(|j| Some((j as f64).min(40.0))));
        let h = history(vec![(tasks.clone(), g), (estab, e.clone()), (total, e)]);
        let config = AnomalyConfig {
            baseline_ms: 60_000,
            search_ms: 30_000,
            ..AnomalyConfig::default()
        };
        assert_no_break(&h, 1..=420, &[], &config);
        let report = detect(&at(&h, 60), &[], &[], &config);
        let why = report.unjudged.iter().find(|u| u.key == tasks).unwrap();
        assert!(
            why.reason.starts_with("first seen at 20:30:20 UTC"),
            "{}",
            why.reason
        );
    }

    /// An edge service started 2 s after the agent: its clients' connections are closed and
    /// reopened, so its TIME-WAIT sockets pile up for their first minute (0.9 a second) and
    /// then hold, beside ~25 ESTABLISHED. Then, from `storm_at` (if any), a caller opens a
    /// connection per call: 40 more TIME-WAIT a second.
    fn edge_warming_up(len: usize, storm_at: Option<usize>) -> CounterHistory {
        let tw = port_state(8080, PortSide::Local, SocketState::TimeWait);
        let estab = port_state(8080, PortSide::Local, SocketState::Established);
        let total = SeriesKey::PortTotal {
            port: 8080,
            side: PortSide::Local,
        };
        let e = noisy(len, 25.0, 4.0, 21);
        let mut t: Vec<Option<f64>> = vec![None; 2];
        let mut sum: Vec<Option<f64>> = vec![None; 2];
        for (i, estab) in e.iter().enumerate().skip(2) {
            let mut v = (0.9 * (i - 2) as f64).min(54.0).round();
            if let Some(at) = storm_at.filter(|&at| i >= at) {
                v += 40.0 * (i - at + 1) as f64;
            }
            t.push(Some(v));
            sum.push(estab.map(|x| x + v));
        }
        let mut e = e;
        e[0] = None;
        e[1] = None;
        history(vec![(tw, t), (estab, e), (total, sum)])
    }

    #[test]
    fn sockets_still_piling_up_after_a_service_started_are_warming_up_not_a_break() {
        let h = edge_warming_up(300, None);
        assert_no_break(&h, 1..=300, &[], &AnomalyConfig::default());
    }

    #[test]
    fn the_lab_edges_sockets_climbing_for_their_first_minute_are_not_a_break() {
        // Recorded on the Go lab (quiet run, seed 5500): the edge's sockets on its port from
        // its start, one point a second; the agent started a second before. Raised before
        // as "sockets :P is climbing 44.5 → 103 in 21 s", 53 s after the start.
        let recorded = [
            6, 10, 13, 14, 15, 16, 17, 19, 23, 23, 23, 24, 24, 24, 26, 27, 27, 27, 27, 27, 27, 27,
            30, 36, 38, 40, 40, 43, 43, 44, 45, 47, 48, 49, 49, 49, 49, 52, 52, 52, 52, 52, 52, 52,
            52, 54, 58, 60, 61, 66, 72, 75, 78, 78, 78, 80, 82, 84, 84, 86, 87, 88, 92, 93, 93, 93,
            93, 93, 94, 96, 97, 98, 100, 103, 103, 105,
        ];
        let total = SeriesKey::PortTotal {
            port: 8080,
            side: PortSide::Local,
        };
        let mut points: Vec<Option<f64>> = vec![None];
        points.extend(recorded.iter().map(|&v| Some(f64::from(v))));
        // Then it holds, as TIME-WAIT does once its first minute has passed.
        points.extend(noisy(120, 105.0, 4.0, 17));
        // Its TIME-WAIT sockets alone, beside another program's port counted from the
        // agent's first sample: the edge's port was "not counted" for a second, which is no
        // baseline.
        let tw = port_state(8080, PortSide::Local, SocketState::TimeWait);
        let other = SeriesKey::PortTotal {
            port: 5432,
            side: PortSide::Local,
        };
        let h = history(vec![
            (total.clone(), points.clone()),
            (tw.clone(), points),
            (other, noisy(197, 30.0, 3.0, 9)),
        ]);
        assert_eq!(raised_at(&h, &total, 1, 196), None);
        assert_eq!(raised_at(&h, &tw, 1, 196), None);
    }

    #[test]
    fn a_storm_on_a_series_still_warming_up_is_raised_within_seconds() {
        let key = port_state(8080, PortSide::Local, SocketState::TimeWait);
        let h = edge_warming_up(120, Some(60));
        let at_end = (60..120)
            .find(|&end| {
                detect(&at(&h, end), &[], &[], &AnomalyConfig::default())
                    .anomalies
                    .iter()
                    .any(|a| a.key == key)
            })
            .expect("raised");
        assert!(at_end <= 70, "raised {} s after", at_end - 60);
        let report = detect(&at(&h, at_end), &[], &[], &AnomalyConfig::default());
        let a = report.anomalies.iter().find(|a| a.key == key).unwrap();
        assert!(
            a.evidence.contains("first seen at 20:30:02 UTC")
                && a.evidence.contains("judged against that climb"),
            "{}",
            a.evidence
        );
    }

    #[test]
    fn a_restarted_service_is_warming_up_again_and_says_so() {
        // A service's port at a steady 30 ESTABLISHED; it restarts at 300 s: its clients
        // reconnect, and the old connections it closed sit in TIME-WAIT for a minute.
        let estab = port_state(8080, PortSide::Local, SocketState::Established);
        let tw = port_state(8080, PortSide::Local, SocketState::TimeWait);
        let mut e = noisy(420, 30.0, 2.0, 5);
        let mut t: Vec<Option<f64>> = vec![Some(0.0); 420];
        // Its clients come back slowly: 12 for 45 s, then back up to the usual 30.
        for i in 300..420 {
            e[i] = Some((12.0 + 0.6 * (i as f64 - 345.0).max(0.0)).min(30.0).round());
            t[i] = Some(if i < 360 { 60.0 } else { 0.0 });
        }
        let h = history(vec![(estab, e), (tw.clone(), t)]);
        let restart = ServiceStart {
            service: "api".into(),
            at_unix_ms: START + 300_000,
            ports: vec![8080],
            ..ServiceStart::default()
        };
        let raised = detect(&at(&h, 330), &[], &[], &AnomalyConfig::default());
        assert!(
            raised.anomalies.iter().any(|a| a.key == tw),
            "without the restart known, its TIME-WAIT is a break: {raised:?}"
        );
        assert_no_break(
            &h,
            290..=420,
            std::slice::from_ref(&restart),
            &AnomalyConfig::default(),
        );
        let report = detect(&at(&h, 330), &[], &[restart], &AnomalyConfig::default());
        let why = report.unjudged.iter().find(|u| u.key == tw).unwrap();
        assert!(
            why.reason.starts_with("api (re)started at 20:35:00 UTC"),
            "{}",
            why.reason
        );
    }

    #[test]
    fn a_storm_after_a_redeploy_is_judged_against_the_level_before_the_old_process_stopped() {
        // A service's port at a steady 30 ESTABLISHED and 2 TIME-WAIT. Its old process stops
        // at 300 s: its clients' connections close (60 TIME-WAIT for a minute, none left
        // ESTABLISHED); the new process is found at 370 s and its clients reconnect. From
        // 450 s a client opens a connection per call: TIME-WAIT climbs to 50 and stays.
        let estab = port_state(8080, PortSide::Local, SocketState::Established);
        let tw = port_state(8080, PortSide::Local, SocketState::TimeWait);
        let e: Vec<Option<f64>> = (0..560)
            .map(|i| Some(if (300..370).contains(&i) { 0.0 } else { 30.0 }))
            .collect();
        let t: Vec<Option<f64>> = (0..560)
            .map(|i| {
                Some(match i {
                    300..360 => 60.0,
                    360..450 => 2.0 * f64::from(i >= 370),
                    450.. => (2.0 + 4.0 * (i - 449) as f64).min(50.0),
                    _ => 2.0,
                })
            })
            .collect();
        let h = history(vec![(estab, e), (tw.clone(), t)]);
        let restart = ServiceStart {
            service: "api".into(),
            at_unix_ms: START + 370_000,
            stopped_unix_ms: Some(START + 300_000),
            ports: vec![8080],
            ..ServiceStart::default()
        };
        let config = AnomalyConfig::default();
        // From the new process's first point on, the agent knows of the restart (before,
        // the stop is a break: the service is gone).
        assert_no_break(&h, 371..=449, std::slice::from_ref(&restart), &config);
        let raised = (450..560).find(|&end| {
            detect(&at(&h, end), &[], std::slice::from_ref(&restart), &config)
                .anomalies
                .iter()
                .any(|a| a.key == tw)
        });
        let raised = raised.expect("the storm is raised");
        assert!(raised <= 460, "raised at {raised}");
    }

    /// The Go lab's listen-overflow fault seen from the chain's edge
    /// (`testdata/go-lab-listen-overflow-creep-edge.json`), judged with the restart where the
    /// agent dated it then (just after the old process was last seen, 40 s before the new
    /// one started): the young baseline is the start of the edge's creep, the creep leaves
    /// its band at point 160 and the goroutines jump with requests waiting on the hung
    /// callee at the fault (183). Dated at the creep's first departure, the edge's second
    /// incident began 23 s before the fault; the jump is the change.
    #[test]
    fn a_creep_then_a_jump_is_dated_at_the_jump() {
        let recorded = crate::testing::Recorded::parse(include_str!(
            "../testdata/go-lab-listen-overflow-creep-edge.json"
        ));
        let g = SeriesKey::Task {
            target: "edge".into(),
            source: "http".into(),
        };
        let requests = SeriesKey::ServiceTraffic {
            service: "edge".into(),
            metric: TrafficMetric::Requests,
        };
        let h = CounterHistory {
            start_unix_ms: recorded.start,
            ..history(vec![
                (g.clone(), recorded.points("goroutines")),
                (requests, recorded.points("requests")),
            ])
        };
        let starts = [ServiceStart {
            service: "edge".into(),
            at_unix_ms: recorded.start + recorded.index("restart_at_ms") as i64,
            task_targets: vec!["edge".into()],
            ..ServiceStart::default()
        }];
        let fault = recorded.index("fault_point");
        let fault_at = recorded.start + fault as i64 * 1000;
        let mut dated = Vec::new();
        for end in fault + 3..h.len() {
            let report = detect(&at(&h, end), &[], &starts, &AnomalyConfig::default());
            if let Some(a) = report.anomalies.iter().find(|a| a.key == g) {
                assert!(
                    a.changed_at_unix_ms >= fault_at,
                    "at {end}, dated {} s before the fault: {}",
                    (fault_at - a.changed_at_unix_ms) / 1000,
                    a.evidence
                );
                dated.push((end, a.evidence.clone()));
            }
        }
        // Raised, and the creep before the jump is told beside it.
        let (_, evidence) = dated.last().expect("the jump is raised");
        assert!(evidence.contains("; it had crept 28.5 → "), "{evidence}");
    }

    /// The Go lab's time-wait fault after a redeploy (`testdata/go-lab-time-wait-redeploy.json`,
    /// recorded on main 21581af): checkout-svc's own-side TIME-WAIT stepped 5 → 14 after its
    /// redeploy and held, then bff began opening a connection per call. Dated at the step, 27 s
    /// before the injection ("rose 1 → 967 … (from 06:50:41 UTC)"), the storm's pace read as
    /// a pool's churn and no incident was raised. With the restart dated at the new process's
    /// first point, and with it dated as the agent dated it then (where the creep and the jump
    /// are two levels), the storm is dated at the injection, at every second it is raised.
    #[test]
    fn a_storm_after_a_redeploys_step_is_dated_at_the_storm() {
        let r = crate::testing::Recorded::parse(include_str!(
            "../testdata/go-lab-time-wait-redeploy.json"
        ));
        let key = |side, state| SeriesKey::PortState {
            port: 53437,
            side,
            state,
        };
        let tw = key(PortSide::Local, SocketState::TimeWait);
        let named = [
            (tw.clone(), "local_time_wait"),
            (
                key(PortSide::Local, SocketState::Established),
                "local_established",
            ),
            (
                key(PortSide::Local, SocketState::FinWait1),
                "local_fin_wait1",
            ),
            (key(PortSide::Local, SocketState::Listen), "local_listen"),
            (
                key(PortSide::Remote, SocketState::Established),
                "remote_established",
            ),
            (
                key(PortSide::Remote, SocketState::TimeWait),
                "remote_time_wait",
            ),
            (
                key(PortSide::Remote, SocketState::CloseWait),
                "remote_close_wait",
            ),
            (
                SeriesKey::Runtime {
                    metric: faultline_series::RuntimeMetric::SocketCensusAge,
                },
                "census_age_ms",
            ),
        ];
        let h = CounterHistory {
            start_unix_ms: r.start,
            ..history(
                named
                    .iter()
                    .map(|(key, name)| (key.clone(), r.points(name)))
                    .collect(),
            )
        };
        let point = |name: &str| r.start + r.index(name) as i64 * 1000;
        let injected = r.index("injected_point");
        let as_dated = [
            (
                "the new process's first point",
                point("new_process_first_point"),
                Some(point("old_process_last_point") + 1),
            ),
            (
                "where the agent dated it then",
                point("restart_point"),
                None,
            ),
        ];
        for (how, at_unix_ms, stopped_unix_ms) in as_dated {
            let starts = [ServiceStart {
                service: "checkout-svc".into(),
                at_unix_ms,
                stopped_unix_ms,
                ports: vec![53437],
                ..ServiceStart::default()
            }];
            let mut raised = None;
            for end in injected..injected + 30 {
                let report = detect(&at(&h, end), &[], &starts, &AnomalyConfig::default());
                let Some(a) = report.anomalies.iter().find(|a| a.key == tw) else {
                    continue;
                };
                raised.get_or_insert(end);
                assert!(
                    a.changed_at_unix_ms >= point("injected_point") - 1000,
                    "restart at {how}, at {end}: dated {} s before the injection: {}",
                    (point("injected_point") - a.changed_at_unix_ms) / 1000,
                    a.evidence
                );
            }
            let raised = raised.unwrap_or_else(|| panic!("restart at {how}: never raised"));
            assert!(
                raised <= injected + 8,
                "restart at {how}: raised at {raised}"
            );
        }
    }

    /// A steady fast climb from a settled level (a goroutine leak of 40 a second) has no
    /// jump in it: it is dated where it left the band, at every second of its climb.
    #[test]
    fn a_fast_climb_is_dated_where_it_left_the_band() {
        let tasks = SeriesKey::Task {
            target: "checkout".into(),
            source: "pprof".into(),
        };
        let start = 400;
        let mut leak = noisy(600, 37.0, 2.0, 22);
        for (j, p) in leak[start..].iter_mut().enumerate() {
            *p = Some(37.0 + 40.0 * (j as f64 + 1.0));
        }
        // And a step straight from the band that then keeps climbing slowly.
        let mut step = noisy(600, 37.0, 2.0, 23);
        for (j, p) in step[start..].iter_mut().enumerate() {
            *p = Some(137.0 + 2.0 * j as f64);
        }
        for points in [leak, step] {
            let h = history(vec![(tasks.clone(), points)]);
            for end in start + 3..start + 110 {
                let report = detect(&at(&h, end), &[], &[], &AnomalyConfig::default());
                let a = report
                    .anomalies
                    .iter()
                    .find(|a| a.key == tasks)
                    .unwrap_or_else(|| panic!("raised at {end}"));
                assert_eq!(
                    a.changed_at_unix_ms,
                    START + start as i64 * 1000,
                    "at {end}"
                );
                assert!(!a.evidence.contains("crept"), "{}", a.evidence);
            }
        }
    }

    #[test]
    fn a_bursty_series_must_outlast_its_bursts() {
        // Bursts of 40 sockets lasting 8 s every 40 s in the baseline; then one burst of 70
        // lasting 8 s (higher, no longer: churn), and later a rise to 80 that stays.
        let key = port_state(8080, PortSide::Local, SocketState::TimeWait);
        let mut points: Vec<Option<f64>> = (0..700)
            .map(|i| Some(if i % 40 < 8 { 40.0 } else { 2.0 }))
            .collect();
        for p in &mut points[440..448] {
            *p = Some(70.0);
        }
        for p in &mut points[600..700] {
            *p = Some(80.0);
        }
        let h = history(vec![(key.clone(), points)]);
        assert_eq!(raised_at(&h, &key, 430, 590), None);
        let at_end = raised_at(&h, &key, 590, 699).expect("a rise that stays is raised");
        assert!(
            (600 + SETTLE_POINTS..=600 + BURSTY_MAX_HOLD).contains(&at_end),
            "raised at {at_end}"
        );
    }

    #[test]
    fn a_fall_of_a_request_rate_is_raised_and_a_fall_of_a_level_is_not() {
        let requests = SeriesKey::ServiceTraffic {
            service: "api".into(),
            metric: TrafficMetric::Requests,
        };
        let estab = port_state(8080, PortSide::Local, SocketState::Established);
        let mut r = noisy(600, 50.0, 8.0, 3);
        let mut e = noisy(600, 60.0, 4.0, 4);
        for i in 500..600 {
            r[i] = Some(2.0);
            e[i] = Some(0.0);
        }
        let h = history(vec![(requests.clone(), r), (estab, e)]);
        let report = detect(&h, &[], &[], &AnomalyConfig::default());
        assert_eq!(report.anomalies.len(), 1, "{:?}", report.anomalies);
        assert_eq!(report.anomalies[0].key, requests);
        assert_eq!(report.anomalies[0].direction, Direction::Fall);
    }

    #[test]
    fn a_request_rate_of_twenty_a_second_falling_to_none_is_raised_and_its_noise_is_not() {
        // Requests per second around 20 (± 8, about a Poisson count's spread), then none
        // from second 500: a callee whose caller's lookups fail. Fed as the agent feeds it:
        // five-second means.
        let mut noise = Noise(11);
        let counts: Vec<u32> = (0..600)
            .map(|i| {
                if i >= 500 {
                    0
                } else {
                    (20.0 + 8.0 * (2.0 * noise.next() - 1.0)).round() as u32
                }
            })
            .collect();
        let points = crate::history::traffic_points(START / 1000, &counts, START, 1000, 600);
        let requests = SeriesKey::ServiceTraffic {
            service: "ledger".into(),
            metric: TrafficMetric::Requests,
        };
        let h = history(vec![(requests.clone(), points)]);
        // Its noise alone raises nothing.
        assert_eq!(raised_at(&h, &requests, 360, 499), None);
        // A second's count has a Poisson floor of √21 ≈ 4.6: 20 → 0 would be 4.4σ, never a
        // step of 6σ; the mean of five has the floor of their sum, and it is raised as soon
        // as the fall held for the settle window.
        let at_end = raised_at(&h, &requests, 500, 599).expect("the fall is raised");
        assert!(at_end <= 500 + 5 + SETTLE_POINTS + 2, "raised at {at_end}");
        let report = detect(&at(&h, at_end), &[], &[], &AnomalyConfig::default());
        let a = &report.anomalies[0];
        assert_eq!(a.direction, Direction::Fall);
        assert_eq!(a.label, "ledger request rate");
    }

    #[test]
    fn a_request_rate_levelling_off_after_a_redeploy_is_no_fall_and_a_fall_after_it_is() {
        // Seen on the Go lab with the agent started before the chain: a first deploy of the
        // edge served 20/s, was stopped for 30 s and started again; its baseline (from the
        // stop the agent saw) climbed from none to 20/s, and judged against that climb, the
        // rate levelling off at 20/s "fell 29.2/s → 20.2/s". Then its callers' lookups fail.
        let stopped = 300..330;
        let fails_at = 420;
        let counts = |fail: bool| -> Vec<u32> {
            let mut noise = Noise(13);
            (0..500)
                .map(|i| {
                    if stopped.contains(&i) || (fail && i >= fails_at) {
                        0
                    } else {
                        (20.0 + 8.0 * (2.0 * noise.next() - 1.0)).round() as u32
                    }
                })
                .collect()
        };
        let requests = SeriesKey::ServiceTraffic {
            service: "edge".into(),
            metric: TrafficMetric::Requests,
        };
        let restart = ServiceStart {
            service: "edge".into(),
            at_unix_ms: START + 300_000,
            ..ServiceStart::default()
        };
        let config = AnomalyConfig::default();
        let series = |fail: bool| {
            let points =
                crate::history::traffic_points(START / 1000, &counts(fail), START, 1000, 500);
            history(vec![(requests.clone(), points)])
        };
        let level = series(false);
        assert_no_break(&level, 330..=499, std::slice::from_ref(&restart), &config);

        let fall = series(true);
        let raised = (fails_at..500).find(|&end| {
            detect(
                &at(&fall, end),
                &[],
                std::slice::from_ref(&restart),
                &config,
            )
            .anomalies
            .iter()
            .any(|a| a.key == requests && a.direction == Direction::Fall)
        });
        let at_end = raised.expect("the fall after the warm-up is raised");
        assert!(
            at_end <= fails_at + 5 + SETTLE_POINTS + 2,
            "raised at {at_end}"
        );
    }

    #[test]
    fn a_storm_on_a_port_not_counted_one_by_one_is_dated_where_it_was_first_counted() {
        // Another program's port group, the smallest counted, steps from 5 to 30 at 400
        // (its churn); the storm's port is counted one by one only from 420, at 300.
        let other = SeriesKey::PortTotal {
            port: 40000,
            side: PortSide::Remote,
        };
        let storm = port_state(8080, PortSide::Remote, SocketState::TimeWait);
        let storm_total = SeriesKey::PortTotal {
            port: 8080,
            side: PortSide::Remote,
        };
        let floor: Vec<Option<f64>> = (0..440)
            .map(|i| Some(if i < 400 { 5.0 } else { 30.0 }))
            .collect();
        let counted: Vec<Option<f64>> = (0..440).map(|i| (i >= 420).then_some(300.0)).collect();
        let h = history(vec![
            (other, floor),
            (storm.clone(), counted.clone()),
            (storm_total, counted),
        ]);
        let report = detect(&h, &[], &[], &AnomalyConfig::default());
        let a = report
            .anomalies
            .iter()
            .find(|a| a.key == storm)
            .unwrap_or_else(|| panic!("the storm is raised: {report:#?}"));
        assert_eq!(a.changed_at_unix_ms, h.time(420), "{a:#?}");
        // Said beside the evidence that hints quote, not in it.
        assert!(
            a.caveat
                .as_deref()
                .is_some_and(|c| c.contains("was not tracked on its own")),
            "{a:#?}"
        );
        assert!(!a.evidence.contains("tracked"), "{}", a.evidence);
    }

    #[test]
    fn a_storm_on_a_service_port_counted_since_its_start_is_judged_against_zero_not_a_bound() {
        // The unseen lab with the agent 150 s before the chain, beside other labs: the
        // smallest of the busiest ports churns around 220 sockets from the agent's start;
        // metadata's port is counted from its start at 150 s (a listener and two pooled
        // connections) and its TIME-WAIT storm, 25 closes a second, begins at 270 s.
        let other = SeriesKey::PortTotal {
            port: 40000,
            side: PortSide::Remote,
        };
        let group = SeriesKey::PortTotal {
            port: 8080,
            side: PortSide::Local,
        };
        let tw = port_state(8080, PortSide::Local, SocketState::TimeWait);
        let (started, storm) = (150, 270);
        let tws: Vec<Option<f64>> = (0..400)
            .map(|i| (i >= storm).then(|| 25.0 * (i - storm + 1) as f64))
            .collect();
        let counted: Vec<Option<f64>> = (0..400)
            .map(|i| (i >= started).then(|| 3.0 + tws[i].unwrap_or(0.0)))
            .collect();
        let h = history(vec![
            (other, noisy(400, 220.0, 30.0, 21)),
            (group, counted),
            (tw.clone(), tws),
        ]);
        let raised = raised_within(&h, &tw, storm, 5, 399);
        let report = detect(&at(&h, raised), &[], &[], &AnomalyConfig::default());
        let a = report.anomalies.iter().find(|a| a.key == tw).unwrap();
        assert_eq!(a.before, 0.0, "{a:#?}");
        assert_eq!(a.changed_at_unix_ms, h.time(storm));
        assert!(!a.evidence.contains("upper bound"), "{}", a.evidence);
    }

    #[test]
    fn a_storm_that_begins_inside_a_young_ports_baseline_is_raised_and_stays_raised() {
        // `faultline demo --scenario time-wait --baseline 10` beside other programs' churn.
        // The service's port is counted from its start (a listener and a pooled connection);
        // its caller's storm, 15 closes a second, begins inside the port's first baseline
        // (after its 15 s start-up, before its 30 points). Two ways it went unraised:
        // - well inside (10 storm points in the baseline): read as the port's start-up
        //   climb, the storm was judged against itself (recorded: no incident in 25 s);
        // - its first 3 points in the baseline: the baseline burst, and no point of the
        //   search window left a band it was inside (recorded: raised 16 s after it began,
        //   only once the baseline grew enough to read a climb).
        let group = SeriesKey::PortTotal {
            port: 8080,
            side: PortSide::Remote,
        };
        let tw = port_state(8080, PortSide::Remote, SocketState::TimeWait);
        let other = SeriesKey::PortTotal {
            port: 40000,
            side: PortSide::Remote,
        };
        // Counted from 150 s: start-up until 165 s, its 30 baseline points until 195 s.
        let (started, len) = (150, 260);
        for storm in [185, 192] {
            let tws: Vec<Option<f64>> = (0..len)
                .map(|i| (i >= storm).then(|| 15.0 * (i - storm + 1) as f64))
                .collect();
            let counted: Vec<Option<f64>> = (0..len)
                .map(|i| (i >= started).then(|| 2.0 + tws[i].unwrap_or(0.0)))
                .collect();
            let h = history(vec![
                (other.clone(), noisy(len, 220.0, 30.0, 21)),
                (group.clone(), counted),
                (tw.clone(), tws),
            ]);
            let raised = raised_within(&h, &tw, storm, 8, len - 1);
            // Raised at every second after, while it climbs (its incident stays active).
            for end in raised..storm + 55 {
                let report = detect(&at(&h, end), &[], &[], &AnomalyConfig::default());
                let a = report.anomalies.iter().find(|a| a.key == tw);
                let a = a.unwrap_or_else(|| panic!("storm at {storm}: not raised at {end}"));
                assert_eq!(a.before, 0.0, "storm at {storm}, at {end}: {a:#?}");
            }
        }
    }

    #[test]
    fn a_young_series_sampled_with_holes_is_judged_once_its_baseline_has_its_known_points() {
        // A service started 100 s after the agent; the sampler, behind under load, missed
        // every fifth second. Its goroutines step from 20 to 500 at 170 s. The baseline window
        // of 30 points after its start-up held 24 known ones, and stayed that way until the
        // history outgrew the search window (two minutes later).
        let key = SeriesKey::Task {
            target: "api".into(),
            source: "pprof".into(),
        };
        let points: Vec<Option<f64>> = noisy(300, 20.0, 2.0, 8)
            .into_iter()
            .enumerate()
            .map(|(i, v)| match i {
                _ if i < 100 || i % 5 == 0 => None,
                170.. => Some(500.0),
                _ => v,
            })
            .collect();
        let h = history(vec![(key.clone(), points)]);
        let raised = raised_at(&h, &key, 150, 299).expect("raised");
        assert!(raised <= 176, "raised at {raised} s, the step was at 170 s");
        let before = detect(&at(&h, 160), &[], &[], &AnomalyConfig::default());
        assert!(
            before.anomalies.is_empty() && before.unjudged.is_empty(),
            "{before:?}"
        );
    }

    #[test]
    fn a_series_with_too_few_baseline_points_is_reported_unjudged() {
        let key = SeriesKey::Task {
            target: "api".into(),
            source: "pprof".into(),
        };
        // Known at the start of the history (the agent saw it from its first sample), then
        // the target failed for most of the baseline.
        let mut points = vec![Some(10.0); 5];
        points.extend(vec![None; 300]);
        points.extend(vec![Some(5_000.0); 100]);
        let h = history(vec![(key.clone(), points)]);
        let report = detect(&h, &[], &[], &AnomalyConfig::default());
        assert!(report.anomalies.is_empty());
        assert_eq!(report.unjudged.len(), 1);
        assert!(report.unjudged[0].reason.contains("baseline points"));
    }

    #[test]
    fn a_young_history_keeps_the_baseline_minimum_and_searches_the_rest() {
        // The agent started 43 s ago: shorter than the search window alone.
        let key = port_state(8080, PortSide::Local, SocketState::CloseWait);
        let mut points = vec![Some(0.0); 35];
        points.extend((1..=8).map(|j| Some(5.0 * j as f64)));
        let h = history(vec![(key.clone(), points)]);
        let report = detect(&h, &[], &[], &AnomalyConfig::default());
        assert_eq!(report.anomalies.len(), 1, "{report:?}");
        let too_young = detect(&at(&h, 25), &[], &[], &AnomalyConfig::default());
        assert!(too_young.anomalies.is_empty());
        let h = history(vec![(key, vec![Some(0.0); 20])]);
        let report = detect(&h, &[], &[], &AnomalyConfig::default());
        assert!(
            report.unjudged[0]
                .reason
                .starts_with("the history holds 20 points"),
            "{}",
            report.unjudged[0].reason
        );
    }

    #[test]
    fn ticks_missed_at_the_agents_start_cost_a_young_baseline_no_time() {
        // The e2e tests' windows: a 10-point minimum. A sampler overrunning its interval
        // beside 30,000 sockets took a sample every other tick for the agent's first 20 s,
        // then a CLOSE-WAIT leak began.
        let config = AnomalyConfig {
            baseline_ms: 10_000,
            search_ms: 20_000,
            min_baseline_points: 10,
            warmup_ms: 2_000,
        };
        let key = port_state(8080, PortSide::Local, SocketState::CloseWait);
        let mut points: Vec<Option<f64>> = (0..20).map(|i| (i % 2 == 0).then_some(0.0)).collect();
        points.extend((1..=8).map(|j| Some(5.0 * j as f64)));
        let h = history(vec![(key.clone(), points.clone())]);
        let report = detect(&h, &[], &[], &config);
        assert_eq!(report.anomalies.len(), 1, "{report:?}");
        assert_eq!(report.anomalies[0].key, key);
        // Gaps longer than the missed ticks (a target that failed for most of the start)
        // still leave it unjudged.
        let mut failed: Vec<Option<f64>> = vec![Some(0.0); 4];
        failed.extend(vec![None; 20]);
        failed.extend((1..=8).map(|j| Some(5.0 * j as f64)));
        let h = history(vec![(key, failed)]);
        let report = detect(&h, &[], &[], &config);
        assert!(report.anomalies.is_empty(), "{report:?}");
        assert!(
            report.unjudged[0].reason.contains("baseline points needed"),
            "{report:?}"
        );
    }

    #[test]
    fn a_storm_that_pushes_its_port_into_the_top_ports_is_raised_against_the_smallest_port() {
        // The node counts its 2 busiest ports one by one (totals about 30 and 40); the storm's
        // port was not among them until its TIME-WAIT sockets pushed it in.
        let key = port_state(41011, PortSide::Remote, SocketState::TimeWait);
        let total = |port| SeriesKey::PortTotal {
            port,
            side: PortSide::Local,
        };
        let start = 400;
        let mut tw: Vec<Option<f64>> = vec![None; start];
        tw.extend((1..=60).map(|j| Some(20.0 * j as f64)));
        let h = history(vec![
            (key.clone(), tw),
            (total(5432), noisy(460, 30.0, 3.0, 1)),
            (total(6379), noisy(460, 40.0, 3.0, 2)),
        ]);
        let at_end = raised_at(&h, &key, start, 459).expect("raised");
        assert!(at_end <= start + 10, "raised {} s after", at_end - start);
        let report = detect(&at(&h, at_end), &[], &[], &AnomalyConfig::default());
        let a = report.anomalies.iter().find(|a| a.key == key).unwrap();
        assert!(a.before <= 33.0 && a.before >= 27.0, "{}", a.before);
        assert!(
            a.caveat
                .as_deref()
                .is_some_and(|c| c.contains("an estimate")),
            "{a:#?}"
        );
        // A service that starts after the agent opens ESTABLISHED sockets: no bound, no move.
        let estab = port_state(41011, PortSide::Local, SocketState::Established);
        let mut e: Vec<Option<f64>> = vec![None; start];
        e.extend(vec![Some(60.0); 60]);
        let h = history(vec![
            (estab.clone(), e),
            (total(5432), noisy(460, 30.0, 3.0, 1)),
        ]);
        assert_eq!(raised_at(&h, &estab, start, 459), None);
    }

    #[test]
    fn a_blip_is_not_a_break() {
        let key = port_state(8080, PortSide::Local, SocketState::SynRecv);
        let mut points = noisy(600, 2.0, 1.0, 8);
        for p in &mut points[500..502] {
            *p = Some(400.0);
        }
        let h = history(vec![(key.clone(), points)]);
        assert_eq!(raised_at(&h, &key, 495, 599), None);
    }

    #[test]
    fn the_trend_test_needs_a_steady_climb() {
        assert!(mann_kendall_z([1.0, 2.0, 3.0, 4.0, 5.0, 6.0].into_iter()) >= RAMP_Z);
        assert!(mann_kendall_z([1.0, 2.0, 2.0, 4.0, 3.0, 6.0].into_iter()) < RAMP_Z);
        assert!(mann_kendall_z([6.0, 5.0, 4.0, 3.0, 2.0, 1.0].into_iter()) < 0.0);
    }
}
