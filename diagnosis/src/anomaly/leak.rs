//! A leak that starts with its series: a count that climbs steadily, without levelling off,
//! from a service's start (or from inside a baseline too young to hold anything else).
//!
//! The baseline rules of [`super::detect`] judge a young series against its own start-up: a
//! baseline that still climbs is judged against that climb, and a change inside the
//! baseline is no change point of the search window. A new version that leaks from its
//! first request (or from a request a few seconds before the baseline ends) therefore never
//! broke from anything: seen on the Go lab with a 40 s baseline, goroutines 11 → 5,409 and
//! no incident. A leak is judged here on its shape instead, over the series' *life* (its
//! points since its start-up, [`super::AnomalyConfig::warmup_ms`] after it started):
//!
//! 1. **A climb out of its lowest level.** The life's lowest point and the noise of its
//!    points about their local trend (first differences, so a steady climb is not noise)
//!    give a floor band; the climb starts at the last point inside it.
//! 2. **Still climbing.** Its latest [`RAMP_MAX_POINTS`] points rise in a Mann–Kendall
//!    trend at [`RAMP_Z`], the latest point is the highest within the noise, and it rose at
//!    least the kind's ramp minimum above the floor.
//! 3. **Not levelling off.** A start-up (a pool filling, workers spawning) climbs and then
//!    settles: its latest slope falls well below its slope when the climb began. A leak
//!    keeps its pace: the latest slope is at least [`LEAK_PACE`] of the first third's.
//! 4. **Why it is no start-up.** One of: the climb is at least [`LEAK_PER_REQUEST`] of a
//!    unit per request of the series' service (its own request rate: a warm-up adds
//!    connections and workers, which serve many requests each; a leak leaves something
//!    behind per request); an fd count at [`LIMIT_SHARE`] of its limit or reaching it
//!    within [`LIMIT_HORIZON_S`] at its pace; a listener's own CLOSE-WAIT, which no
//!    start-up keeps (judged from its start, see [`kept_from_start`]); or, for goroutines
//!    and CLOSE-WAIT whose
//!    service's request rate is unknown or low, a climb that has lasted twice a
//!    baseline's minimum of points ([`super::AnomalyConfig::min_baseline_points`], a minute
//!    by default) after the start-up already had its [`super::AnomalyConfig::warmup_ms`].
//!    A slow start-up still climbing then has slowed below [`LEAK_PACE`]: a pool filling
//!    with a time constant of 30 s, judged from 15 s after its start, climbs a minute later
//!    at a quarter of its pace over the climb's first third. An fd or thread count climbing slowly far from its limit
//!    follows its connections and workers as often as it leaks: it needs one of the first
//!    two reasons.
//!
//! Only counts that leak are judged so: goroutines (tasks), open fds, threads and a port's
//! CLOSE-WAIT sockets. A goroutine climb that comes with as many new connections is sorted
//! out by the incident grouping (`follows_connections`), as for any other goroutine rise.

use faultline_series::{PortSide, ProcessMetric, SeriesKey, SocketState};

use super::{
    evidence, mann_kendall_z, number, rule, ChangeShape, CounterAnomaly, Direction, BAND_Z,
    MAD_TO_SIGMA, MIN_FALL_BASELINE, PERSIST, RAMP_MAX_POINTS, RAMP_MIN_POINTS, RAMP_Z,
    TREND_POINTS,
};
use crate::baseline::{median, poisson_floor};
use crate::history::{CounterHistory, CounterSeries};

/// Share of the pace of a climb's first third its latest points must keep: a start-up that is
/// settling slows down (a pool filling as `1 - e^(-t/τ)` climbs at 0.37 of its pace a τ
/// later), a leak holds its pace or speeds up.
pub const LEAK_PACE: f64 = 0.5;
/// Units per request of the series' service above which a climb is a leak as soon as it is a
/// ramp: a keep-alive connection (and its goroutine and fd) serves many requests, so a
/// warm-up adds far less than one per request (the Go lab's edge: 1.9 sockets a second at 20
/// requests a second, 0.1 per request); the lab's goroutine leak adds 8 per request, a
/// CLOSE-WAIT leak one per request.
pub const LEAK_PER_REQUEST: f64 = 0.5;
/// Share of its limit at which a climbing fd count is raised as soon as it is a ramp: from
/// there a service is seconds from `too many open files`.
pub const LIMIT_SHARE: f64 = 0.8;
/// Seconds to its limit, at its pace, below which a climbing fd count is raised as soon as it
/// is a ramp: a leak of a connection per request reaches a soft limit of 1,024 within a
/// minute at 20 requests a second; a warm-up's connections (a few a second at most) are
/// many minutes from it.
pub const LIMIT_HORIZON_S: f64 = 120.0;

/// Longest a count may take to level off after its change and still be a population that
/// turns over rather than one that accumulates (see [`accumulation`]): sockets of requests in
/// progress level off within a request's time (the unseen lab's slow blob store: 2.5 s per
/// answer, its CLOSE-WAIT at ~40 within 3 s), a leak climbs for as long as it goes on, or
/// until a limit stops it (the unseen lab's close-wait leak: 20 s to 512 fds).
pub const TURNOVER_SETTLE_MS: i64 = 10_000;

/// How long a count must have held its level, within its noise, to be told as one that
/// turns over (see [`accumulation`]): a leak sampled every few seconds by a loaded agent
/// shows flat stretches of a sample or two, never eight seconds of one.
pub const TURNOVER_HOLD_MS: i64 = 8_000;

/// Whether a rising count keeps what it gains, as far as its points since its change can
/// tell (see [`accumulation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accumulation {
    /// It climbed on past [`TURNOVER_SETTLE_MS`] after its change, beyond the level it had
    /// reached by then (or levelled only after such a climb, at a limit): what enters stays.
    Accumulates,
    /// It levelled off within [`TURNOVER_SETTLE_MS`] of its change and has held that level for
    /// [`TURNOVER_HOLD_MS`]: as many leave the state as enter it.
    TurnsOver,
    /// Not told apart yet: younger than [`TURNOVER_SETTLE_MS`], or neither climbing on nor
    /// holding a level. Both shapes start alike: a callee that answers 2 s past its callers'
    /// timeout holds their closed connections in CLOSE-WAIT, one more per call, for 2 s
    /// before the first one leaves; a callee that never answers holds them the same way.
    Undecided,
}

/// Whether the rising count of `a` accumulates, as a leak's does, or turns over, as the
/// sockets of requests in progress do, judged on its points since its change.
///
/// Little's law: a population whose members each stay `W` seconds, entered at a steady
/// pace, climbs for `W` seconds and then holds its level (pace × `W`); one whose members
/// never leave climbs on. The sockets of requests in progress stay for a request's time:
/// [`TURNOVER_SETTLE_MS`] bounds it. So a count that levelled off within that bound and has
/// held its level since, for [`TURNOVER_HOLD_MS`] at least, turns over (seen on the unseen
/// lab: a blob store answering after 2.5 s, past its caller's 800 ms wait, held its callers'
/// abandoned connections in CLOSE-WAIT while its handlers slept — a few dozen, level — and
/// was hinted "the peer closed and this side never did"); a count that is, after that bound,
/// above the highest level it held within it by more than its noise accumulates. Before
/// that bound nothing tells the two apart: [`Accumulation::Undecided`]. A fall, or a series
/// the history no longer holds, is undecided too.
pub fn accumulation(a: &CounterAnomaly, history: &CounterHistory) -> Accumulation {
    if a.direction != Direction::Rise {
        return Accumulation::Undecided;
    }
    let Some(series) = history.get(&a.key) else {
        return Accumulation::Undecided;
    };
    let step = history.step_ms.max(1);
    let changed = history.point_at(a.changed_at_unix_ms).unwrap_or(0);
    let from = climb_start(&series.points, changed, step);
    let since: Vec<(usize, f64)> = series
        .points
        .iter()
        .enumerate()
        .skip(from)
        .filter_map(|(i, v)| v.map(|v| (i, v)))
        .collect();
    if turns_over(a, &since, from, step) {
        Accumulation::TurnsOver
    } else if climbs_past_settling(&since, from, step) {
        Accumulation::Accumulates
    } else {
        Accumulation::Undecided
    }
}

/// What the service holding a port's CLOSE-WAIT sockets does, beside their count (see
/// [`holder_accumulation`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Holder<'a> {
    /// Its requests per second (its SERVER spans and access lines, each counted in the
    /// second it began once it was answered), when the sockets are on its own side of its
    /// listening port.
    pub requests: Option<&'a SeriesKey>,
    /// Whether its open fds are at their limit now ([`LIMIT_SHARE`] of it at least) and the
    /// count is at least half that limit: most of its descriptors are these sockets.
    pub out_of_fds: bool,
    /// Whether its open fds climb toward their limit with these sockets, to reach it within
    /// [`EXHAUSTION_HORIZON_MS`] at their pace (see [`exhausts_fds`]).
    pub running_out_of_fds: bool,
    /// When its process stopped (was gone from the samples) after the count's change, if it
    /// did: killed, crashed or restarted.
    pub stopped_unix_ms: Option<i64>,
}

/// How soon a holder's open fds, at their pace, must reach their limit for its rising
/// CLOSE-WAIT count to be read as accumulating before [`TURNOVER_SETTLE_MS`] (see
/// [`exhausts_fds`]). Seen on the Go lab's hung callee (256 fds, 20 requests a second): its
/// fds climbed 15 → 256 in 12 s, a descriptor per CLOSE-WAIT socket, and its accepts failed
/// with `too many open files` from 10 s after its callers' first timeout; the leak's hint
/// waited for that error text and led 11.4–11.9 s after the onset, behind "Calls time out".
/// A slow callee's sockets in progress level off at calls a second × its delay: one that
/// levels below the limit is far from it at the pace of its climb (1,024 fds at 20 calls a
/// second: 50 s), one that does not runs out of descriptors as a leak does.
pub const EXHAUSTION_HORIZON_MS: i64 = 20_000;

/// Share of its holder's fd climb a CLOSE-WAIT count must have climbed to be what fills its
/// descriptor table (see [`exhausts_fds`]): each socket held in CLOSE-WAIT holds a
/// descriptor; the rest are the connections not closed by their callers yet and files.
pub const FD_SHARE: f64 = 0.5;

/// Share of its usual requests a second at which a listener answers the requests that began
/// after a change (see [`holder_accumulation`]): a slow callee answers them all, late; a hung
/// one none.
pub const ANSWERING_SHARE: f64 = 0.5;

/// How long after a change the requests that began are read for answers (see
/// [`holder_accumulation`]): a point of the request rate is the mean of the five seconds
/// before it, so the first five after the change still hold requests that began before it.
pub const ANSWERING_AFTER_MS: i64 = 5_000;

/// What the service holding a port's CLOSE-WAIT sockets did with the requests that began after
/// the count's change (see [`holder_reading`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Answers {
    /// Not known: no request series of the holder, or a usual rate below one a second.
    Unknown,
    /// Not known yet: no point of its request series [`ANSWERING_AFTER_MS`] after the change.
    Pending,
    /// It answered them at [`ANSWERING_SHARE`] of its usual rate at least, in some second.
    Answered,
    /// It has answered none of them at that rate yet: at most `best` a second, against a
    /// usual `usual`. A hung callee and one slower than the time since the change read so.
    Unanswered {
        /// When the count changed: the requests begun since are the ones waited for.
        since_unix_ms: i64,
        /// The most requests a second begun since that it answered.
        best: f64,
        /// Its usual requests a second (the median of the minute before the change).
        usual: f64,
    },
}

/// [`holder_accumulation`], with what the holder's answers said.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HolderReading {
    /// Whether the count keeps what it gains, told with its holder.
    pub accumulation: Accumulation,
    /// What the holder did with the requests begun since the change.
    pub answers: Answers,
}

/// [`accumulation`] of a port's CLOSE-WAIT count, told with what the service holding the
/// sockets does (`holder`): [`holder_reading`] without the answers.
pub fn holder_accumulation(
    a: &CounterAnomaly,
    history: &CounterHistory,
    holder: Holder<'_>,
) -> Accumulation {
    holder_reading(a, history, holder).accumulation
}

/// [`accumulation`] of a port's CLOSE-WAIT count, told with what the service holding the
/// sockets does (`holder`). Its own points cannot tell a callee that answers long past its
/// callers' timeout from one that never answers until the count levels off: by Little's law,
/// the two climb alike for as long as a request is held. Two facts of the holder tell them
/// apart once they differ:
///
/// - **It answers the requests that began after the change** (a listener holding its own
///   side: [`Holder::requests`] at [`ANSWERING_SHARE`] of its usual rate somewhere from
///   [`ANSWERING_AFTER_MS`] after the change on) and the count has held its level for
///   [`TURNOVER_HOLD_MS`] with fds to spare: the sockets leave as its requests complete. It
///   turns over, however long it climbed first. Requests are counted in the second they
///   began, once answered: a callee answering D s late shows its last D seconds empty and
///   those before full, a hung one every second since its change empty. Seen on the Go lab:
///   a callee answering 16 s after its caller's 1.2 s timeout climbed 0 → 285 for 15 s, held
///   there, and past [`TURNOVER_SETTLE_MS`] read as a leak to the end of its fault. A holder
///   whose count still climbs while it answers leaks what it answers (a connection per
///   request never closed): judged on the count alone.
/// - **It ran out of descriptors** ([`Holder::out_of_fds`]): a count that levelled off was
///   stopped by the limit, not by sockets leaving. It accumulates. A client that never
///   closes its callee's closed connections holds each in CLOSE-WAIT with a descriptor until
///   they run out; seen on the unseen lab at 70 requests a second, metadata's count reached
///   500 within 8 s of its first socket at 512 fds, held there, and read as turning over:
///   the leak hint moved to another port's count (gateway's calls stuck behind it).
///
/// - **Its sockets run it out of descriptors** ([`Holder::out_of_fds`] pinned at the limit,
///   or [`Holder::running_out_of_fds`]: its fds, climbing with the count, reach their limit
///   within [`EXHAUSTION_HORIZON_MS`] at their pace, and it has answered none of the requests
///   begun since the change, or has no answers to read): the count accumulates from then on,
///   however young. Sockets that exhaust their holder's descriptors are its fault whether its
///   handlers hang or answer late; the reading ([`Answers::Unanswered`]) still names both.
///   Seen on the Go lab's hung callee (256 fds): the count was undecided for its first 10 s,
///   the callers' timeouts led, and the leak's hint took the lead only when the callee's own
///   `too many open files` joined the incident, 11.4–11.9 s after the first timeout.
///
/// A holder that answers nothing begun since the change, with fds to spare, is as its count
/// alone says: before the count outlasts a request's time nothing tells a hung callee from a
/// slow one, and after it a callee that has not answered once is hung as far as its callers
/// know. [`HolderReading::answers`] says so ([`Answers::Unanswered`]), for a reading that names
/// both and what will decide.
///
/// A count back inside the band it left ended its change (as `CounterAnomaly::reread` reads
/// it): it is judged as it stood when it came back, not on the level it came back to, and what its
/// holder answers since is no longer read ([`Answers::Unknown`]). Seen on the Go lab's
/// close-wait leak healed by a restart: CLOSE-WAIT went from 700 to 0 with the old process,
/// the new one answered its requests, and 8 s of 0 read as a count that held its level while
/// its holder answered — sockets that turn over. The leak hint left the recovering incident
/// ("The process ran out of file descriptors" led it), and when the same leak came back 11 s
/// later the incident was active again without it.
///
/// A holder whose process stopped since the change (killed, crashed, restarted:
/// [`Holder::stopped_unix_ms`]) took the sockets with it: the change is judged as it stood
/// when it stopped, and what a new process answers is no answer to the requests the old one
/// held. Seen on the Go lab's close-wait leak healed by a restart: the count fell 670 → 245 →
/// 0 over the restart while the new process answered, and for the two passes before the
/// count was back in its band it read as a slow callee's requests draining as they are
/// answered ("requests its callers gave up on, still in progress, not a leak"), a sentence the
/// incident's kept counter then carried; in the live run the leak's hint left the incident.
pub fn holder_reading(
    a: &CounterAnomaly,
    history: &CounterHistory,
    holder: Holder<'_>,
) -> HolderReading {
    let stopped = holder
        .stopped_unix_ms
        .filter(|&t| t > a.changed_at_unix_ms)
        .and_then(|t| history.point_at(t));
    let end = match (ended_at(a, history), stopped) {
        (Some(ended), Some(stopped)) => Some(ended.min(stopped)),
        (ended, stopped) => ended.or(stopped),
    };
    match end {
        Some(end) => {
            let keys = [Some(&a.key), holder.requests];
            let then = CounterHistory {
                start_unix_ms: history.start_unix_ms,
                step_ms: history.step_ms,
                series: keys
                    .into_iter()
                    .flatten()
                    .filter_map(|key| history.get(key))
                    .map(|s| CounterSeries {
                        key: s.key.clone(),
                        points: s.points[..end.min(s.points.len())].to_vec(),
                    })
                    .collect(),
                ..CounterHistory::default()
            };
            HolderReading {
                answers: Answers::Unknown,
                ..judged_with_holder(a, &then, holder)
            }
        }
        None => judged_with_holder(a, history, holder),
    }
}

/// Where the change of `a` ended, when it did: the first of [`PERSIST`] known points in a row
/// back inside the band it left, as [`CounterAnomaly::reread`] reads an end.
fn ended_at(a: &CounterAnomaly, history: &CounterHistory) -> Option<usize> {
    let band = BAND_Z * a.noise;
    let inside = |v: f64| match a.direction {
        Direction::Rise => v <= a.before + band,
        Direction::Fall => v >= a.before - band,
    };
    let points = &history.get(&a.key)?.points;
    let changed = history.point_at(a.changed_at_unix_ms).unwrap_or(0);
    let mut run: Option<(usize, usize)> = None;
    for (i, v) in points.iter().enumerate().skip(changed) {
        let Some(v) = *v else { continue };
        run = match (inside(v), run) {
            (false, _) => None,
            (true, Some((first, n))) => Some((first, n + 1)),
            (true, None) => Some((i, 1)),
        };
        if let Some((first, n)) = run {
            if n >= PERSIST {
                return Some(first);
            }
        }
    }
    None
}

/// [`holder_reading`] of a change that goes on (or as it stood when it ended).
fn judged_with_holder(
    a: &CounterAnomaly,
    history: &CounterHistory,
    holder: Holder<'_>,
) -> HolderReading {
    let alone = accumulation(a, history);
    let answers = holder
        .requests
        .map_or(Answers::Unknown, |key| answers(a, key, history));
    let accumulation = if holder.out_of_fds {
        Accumulation::Accumulates
    } else if answers == Answers::Answered && holds(a, history) {
        Accumulation::TurnsOver
    } else if holder.running_out_of_fds
        && alone == Accumulation::Undecided
        && answers != Answers::Pending
    {
        Accumulation::Accumulates
    } else {
        alone
    };
    HolderReading {
        accumulation,
        answers,
    }
}

/// Whether the rising CLOSE-WAIT count `count` is what exhausts its holder's descriptors
/// (`fds`, the holder's open-fds change, with its limit): the fds rise toward their limit and
/// reach it within [`EXHAUSTION_HORIZON_MS`] at their pace over their points since their
/// change (at most [`RAMP_MAX_POINTS`] of them, three at least), and the count has climbed at
/// least [`FD_SHARE`] of their climb by its last census. Sockets that run their holder out of descriptors are
/// its fault whatever else they are: a leak, or requests held longer than the table allows.
pub fn exhausts_fds(
    count: &CounterAnomaly,
    fds: &CounterAnomaly,
    history: &CounterHistory,
) -> bool {
    let Some(limit) = fds.limit.filter(|l| *l > 0.0) else {
        return false;
    };
    let Some(series) = history.get(&fds.key) else {
        return false;
    };
    // The count is as its last census found it (every few seconds on a busy node), the fds
    // as sampled: compared as they stood at that census.
    let last = history.len().saturating_sub(1);
    let census = history
        .point_at(history.counted_at(last))
        .unwrap_or(last)
        .min(last);
    let fds_then = series.points[..series.points.len().min(census + 1)]
        .iter()
        .rev()
        .find_map(|v| *v)
        .unwrap_or(fds.latest);
    if count.direction != Direction::Rise
        || fds.direction != Direction::Rise
        || count.latest - count.before < FD_SHARE * (fds_then - fds.before)
    {
        return false;
    }
    if fds.latest >= LIMIT_SHARE * limit {
        return true;
    }
    let step = history.step_ms.max(1);
    let changed = history.point_at(fds.changed_at_unix_ms).unwrap_or(0);
    let since: Vec<(usize, f64)> = series
        .points
        .iter()
        .enumerate()
        .skip(changed)
        .filter_map(|(i, v)| v.map(|v| (i, v)))
        .collect();
    if since.len() < 3 {
        return false;
    }
    let recent = &since[since.len().saturating_sub(RAMP_MAX_POINTS)..];
    let per_ms = theil_sen(recent) / step as f64;
    per_ms > 0.0 && (limit - fds.latest) / per_ms <= EXHAUSTION_HORIZON_MS as f64
}

/// Whether the service of `requests` answered requests that began after the change of `a`
/// at [`ANSWERING_SHARE`] of its usual rate (the median of the minute before the change):
/// a point at that rate from [`ANSWERING_AFTER_MS`] after the change on. Unknown when its
/// usual rate is unknown or too low to tell (below one a second); pending while no such
/// point is known.
fn answers(a: &CounterAnomaly, requests: &SeriesKey, history: &CounterHistory) -> Answers {
    let Some(series) = history.get(requests) else {
        return Answers::Unknown;
    };
    let points = &series.points;
    let step = history.step_ms.max(1);
    let Some(changed) = history.point_at(a.changed_at_unix_ms) else {
        return Answers::Unknown;
    };
    let changed = changed.min(points.len());
    let lookback = usize::try_from(60_000 / step).unwrap_or(0);
    let mut before: Vec<f64> = points[changed.saturating_sub(lookback)..changed]
        .iter()
        .flatten()
        .copied()
        .collect();
    if before.is_empty() {
        return Answers::Unknown;
    }
    let usual = median(&mut before);
    if usual < 1.0 {
        return Answers::Unknown;
    }
    let after = changed + usize::try_from(ANSWERING_AFTER_MS / step).unwrap_or(0);
    let Some(best) = points
        .get(after..)
        .into_iter()
        .flatten()
        .flatten()
        .copied()
        .reduce(f64::max)
    else {
        return Answers::Pending;
    };
    if best >= ANSWERING_SHARE * usual {
        Answers::Answered
    } else {
        Answers::Unanswered {
            since_unix_ms: a.changed_at_unix_ms,
            best,
            usual,
        }
    }
}

/// Whether the count of `a` has held its level over the last [`TURNOVER_HOLD_MS`], as
/// [`turns_over`] reads a level held — its points within a band of a socket count's noise at
/// that level, with no rising trend (a leak of a socket every few seconds climbs within the
/// band but in a trend) — or fell by more than that band, with no rising trend: sockets that
/// leave as their requests are answered. Seen on the Go lab: a callee answering 20 s late,
/// its traffic stopped, drained its CLOSE-WAIT 366 → 0 in 20 s as its last requests were
/// answered; read on the hold alone, the draining count fell back on its climb past
/// [`TURNOVER_SETTLE_MS`] and the leak led again.
fn holds(a: &CounterAnomaly, history: &CounterHistory) -> bool {
    let Some(series) = history.get(&a.key) else {
        return false;
    };
    let step = history.step_ms.max(1);
    let hold = usize::try_from(TURNOVER_HOLD_MS / step)
        .unwrap_or(0)
        .max(RAMP_MIN_POINTS);
    if series.points.len() < hold {
        return false;
    }
    let tail: Vec<f64> = series.points[series.points.len() - hold..]
        .iter()
        .flatten()
        .copied()
        .collect();
    if tail.len() < RAMP_MIN_POINTS {
        return false;
    }
    let mut sorted = tail.clone();
    let level = median(&mut sorted);
    let band = BAND_Z * a.noise.max(poisson_floor(level, 1.0));
    let (low, high) = tail
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    let drains =
        matches!((tail.first(), tail.last()), (Some(&first), Some(&last)) if last + band < first);
    (high - low <= band || drains) && mann_kendall_z(tail.iter().copied()) < RAMP_Z
}

/// Where the climb that reached `changed` began: the first of the points before it that
/// never fell on the way up and stayed above the lowest point of the minute before. A change
/// is read again as it goes on, and a later reading may date it later: seen on the demo's
/// close-wait, the leak rule read the CLOSE-WAIT climbing 16 a second "from" 14 s after its
/// first socket (where its judged points began), and the leak, 22 s old, looked 7 s old —
/// too young to tell from a slow callee's requests in progress.
fn climb_start(points: &[Option<f64>], changed: usize, step: i64) -> usize {
    // A series the kept history holds no point of any more (its points aged out of the
    // window): nothing climbed. Indexing it panicked the diagnosis pass (a 30-minute soak).
    if points.is_empty() {
        return 0;
    }
    let changed = changed.min(points.len().saturating_sub(1));
    let lookback = usize::try_from(60_000 / step).unwrap_or(0);
    let low = changed.saturating_sub(lookback);
    let floor = points[low..=changed]
        .iter()
        .flatten()
        .fold(f64::INFINITY, |a, &b| a.min(b));
    let mut i = changed;
    while i > low {
        match (points[i - 1], points[i]) {
            (Some(before), Some(at)) if before <= at && before > floor => i -= 1,
            _ => break,
        }
    }
    i
}

/// Whether `since` (the known points from the change at index `from` on) levelled off within
/// [`TURNOVER_SETTLE_MS`] and has held its level since, for [`TURNOVER_HOLD_MS`] at least.
fn turns_over(a: &CounterAnomaly, since: &[(usize, f64)], from: usize, step: i64) -> bool {
    let hold = usize::try_from(TURNOVER_HOLD_MS / step)
        .unwrap_or(0)
        .max(RAMP_MIN_POINTS);
    let Some(&(last, _)) = since.last() else {
        return false;
    };
    let tail: Vec<f64> = since
        .iter()
        .filter(|&&(i, _)| i + hold > last)
        .map(|p| p.1)
        .collect();
    if tail.len() < RAMP_MIN_POINTS || last + 1 < from + hold {
        return false;
    }
    let mut sorted = tail.clone();
    let level = median(&mut sorted);
    let band = BAND_Z * a.noise.max(poisson_floor(level, 1.0));
    let (low, high) = tail
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    if high - low > band || mann_kendall_z(tail.iter().copied()) >= RAMP_Z {
        return false;
    }
    // The first point at the level it holds, and every point held there since.
    let Some(settled) = since.iter().position(|&(_, v)| v >= level - band) else {
        return false;
    };
    let held = since[settled..]
        .iter()
        .all(|&(_, v)| (v - level).abs() <= band);
    let took = (since[settled].0 - from) as i64 * step;
    held && took <= TURNOVER_SETTLE_MS
}

/// Whether `since` is, more than [`TURNOVER_SETTLE_MS`] after the change at index `from`,
/// above the highest level it held within that time by more than its noise: the level a
/// population that turns over would have stopped at. Levels are held two points in a row
/// ([`held_top`]), so a one-sample spike neither sets the level nor passes it.
fn climbs_past_settling(since: &[(usize, f64)], from: usize, step: i64) -> bool {
    let settle = usize::try_from(TURNOVER_SETTLE_MS / step).unwrap_or(0);
    let (within, after) = since.split_at(since.partition_point(|&(i, _)| i <= from + settle));
    if within.is_empty() || after.len() < 2 {
        return false;
    }
    let settled = held_top(within);
    let now = after[after.len() - 2].1.min(after[after.len() - 1].1);
    // Sockets that come and go one by one vary about their level like a Poisson count. The
    // anomaly's own noise is not this level's: a leak read on its shape measures it about
    // its climb (59 for the demo's CLOSE-WAIT climbing 16 a second).
    now > settled + BAND_Z * poisson_floor(settled, 1.0)
}

/// Whether a series is a listener's own CLOSE-WAIT count: sockets its callers closed that it
/// has not. A start-up opens connections and starts workers; it keeps no socket its peer
/// closed. So such a count climbing steadily from a service's (re)start is a leak whatever
/// the service's request rate, and is judged from the start itself, with no start-up
/// ([`super::AnomalyConfig::warmup_ms`]) left out. Seen on the Go lab's close-wait leak
/// healed by a restart and brought back 10 s later: the new process's CLOSE-WAIT climbed
/// 0 → 606 at 20 a second, judged only from 15 s after the restart and then on a climb of a
/// minute (its hung handlers answer nothing: no request rate to weigh it against), so it
/// was no change of its own for 30–75 s, and the incident ended once the callers' traffic
/// stopped while the 606 sockets were still held.
pub(super) fn kept_from_start(key: &SeriesKey) -> bool {
    matches!(
        key,
        SeriesKey::PortState {
            side: PortSide::Local,
            state: SocketState::CloseWait,
            ..
        }
    )
}

/// Whether a series is a count that leaks.
pub(super) fn leaks(key: &SeriesKey) -> bool {
    matches!(
        key,
        SeriesKey::Task { .. }
            | SeriesKey::Process {
                metric: ProcessMetric::OpenFds | ProcessMetric::Threads,
                ..
            }
            | SeriesKey::PortState {
                state: SocketState::CloseWait,
                ..
            }
    )
}

/// Where a series' life starts and how the evidence says it.
pub(super) struct Life {
    /// The series' start (first point, or its service's restart): a climb already going at
    /// the first point judged is dated here.
    pub started: usize,
    /// The first point judged: after the start-up.
    pub from: usize,
    /// "first seen at 20:30:02 UTC, after the agent started", "api (re)started at ...".
    pub text: String,
    /// Whether it began with the series (its first sample after the agent started, or its
    /// service's restart), not with the agent's own history, too young for a baseline: a
    /// count no start-up keeps ([`kept_from_start`]) is then a leak on its shape alone.
    pub with_series: bool,
}

/// What the shape test needs besides the series.
pub(super) struct Context<'a> {
    /// The series' service's requests per second on the same axis, when known.
    pub requests: Option<&'a [Option<f64>]>,
    /// The series' limit (a process's fd limit).
    pub limit: Option<f64>,
    /// A baseline's fewest points: half of them are the fewest points of life judged, twice
    /// them the fewest of a climb raised on its duration alone.
    pub min_points: usize,
}

/// The leak of `points` over its `life`, if its shape is one (see the module documentation).
pub(super) fn unbounded_climb(
    history: &CounterHistory,
    key: &SeriesKey,
    points: &[Option<f64>],
    life: &Life,
    cx: &Context<'_>,
) -> Option<CounterAnomaly> {
    if !leaks(key) {
        return None;
    }
    let known: Vec<(usize, f64)> = points
        .iter()
        .enumerate()
        .skip(life.from)
        .filter_map(|(i, v)| v.map(|v| (i, v)))
        .collect();
    // Half a baseline's points of life: enough for the floor, its noise and a climb of
    // [`RAMP_MAX_POINTS`]; a climb raised on its duration alone needs twice a baseline's
    // (below). With the whole minimum, a leak from a service's start waited 45 s (15 s of
    // start-up, then 30 points) whatever its pace.
    if known.len() < (cx.min_points / 2).max(RAMP_MIN_POINTS + 1) {
        return None;
    }
    let lowest = known.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let noise = step_noise(&known).max(poisson_floor(lowest, 1.0));
    let (climb, recent) = climb_out_of(&known, lowest + BAND_Z * noise)?;
    // A climb that sped up is judged from where it did: the part before is its start-up
    // (or the slower climb of its connections), not the change.
    let (climb, recent, floor, sped_up) = match pace_change(climb, noise) {
        PaceChange::Kept => (climb, recent, lowest, false),
        PaceChange::Jumping => return None,
        PaceChange::SpedUp(at) => {
            // Its shape is told from enough points for its thirds to be compared: a jump of
            // requests waiting on a hung callee climbs for two seconds and then holds, and
            // six points of it read as a climb at its pace (the Go lab's listen-overflow: the
            // edge's goroutines 46 → 169 in 6 s, raised as a leak for one second). A leak is
            // raised by the step test from its third point meanwhile.
            let climb = &climb[at - 1..];
            if climb.len() < 2 * RAMP_MIN_POINTS {
                return None;
            }
            let recent = &climb[climb.len().saturating_sub(RAMP_MAX_POINTS)..];
            (climb, recent, climb[0].1, true)
        }
    };
    let &(last_i, latest) = climb.last()?;
    let reached = held_top(climb);
    let min_rise = rule(key).min_ramp.unwrap_or(0.0);
    if mann_kendall_z(recent.iter().map(|p| p.1)) < RAMP_Z
        || latest - floor < min_rise
        || latest < reached - BAND_Z * noise
    {
        return None;
    }
    let pace = theil_sen(recent);
    if pace <= 0.0 || pace < LEAK_PACE * theil_sen(&climb[..climb.len() / 3]) {
        return None;
    }
    let step = history.step_ms.max(1) as f64;
    let per_second = pace * 1000.0 / step;
    let rate = cx.requests.and_then(|r| {
        let mut known: Vec<f64> = recent
            .iter()
            .filter_map(|&(i, _)| r.get(i).copied().flatten())
            .collect();
        (!known.is_empty()).then(|| median(&mut known))
    });
    // A service hardly called (its callers restarting, the node stalling) has no pace of
    // requests to judge against: a few connections would be many per request.
    let per_request = rate
        .filter(|r| *r >= MIN_FALL_BASELINE)
        .map(|r| per_second / r);
    // At its pace, seconds left before the limit.
    let near_limit = cx.limit.filter(|l| {
        *l > 0.0 && (latest >= LIMIT_SHARE * l || (l - latest) / per_second <= LIMIT_HORIZON_S)
    });
    let why = if let Some(p) = per_request.filter(|p| *p >= LEAK_PER_REQUEST) {
        format!(
            "{} per request of its service's {}/s",
            number(p),
            number(rate.unwrap_or(0.0))
        )
    } else if near_limit.is_some() {
        "near its limit".to_owned()
    } else if life.with_series && kept_from_start(key) {
        "sockets its peers closed, kept: a start-up holds none".to_owned()
    } else if climb.len() >= 2 * cx.min_points && !matches!(key, SeriesKey::Process { .. }) {
        format!(
            "for {} s",
            ((last_i - climb[0].0) as f64 * step / 1000.0).round()
        )
    } else {
        return None;
    };
    // A series that climbed at the same pace from its start to where the climb left its
    // floor band climbed through its start-up: the climb began with it.
    let before_climb: Vec<(usize, f64)> = points[life.started..=climb[0].0]
        .iter()
        .enumerate()
        .filter_map(|(j, v)| v.map(|v| (life.started + j, v)))
        .collect();
    // Otherwise it climbed from where it left its floor band (the climb's first point),
    // not from the life's lowest point: seen on the Go lab's healthy edge, whose goroutines
    // dipped to 28 for a second minutes before a wobble back to the mid-50s, the evidence
    // said "28 → 62" where the points the climb rests on went 44 → 56.
    let (changed, before) = match before_climb.first() {
        Some(&(i, v)) if !sped_up && v < lowest && theil_sen(&before_climb) >= LEAK_PACE * pace => {
            (i, v)
        }
        _ => (climb[1].0, climb[0].1),
    };
    let why = format!(
        "{}, it has climbed {} a second without levelling off ({why}): a leak, not a start-up",
        life.text,
        number(per_second)
    );
    let climbed = Climb {
        before,
        noise,
        reached,
        latest,
        changed,
        last: last_i,
        limit: cx.limit,
    };
    Some(climbed.anomaly(history, key, &why))
}

/// Known points of a series, by index.
type Points<'a> = &'a [(usize, f64)];

/// Fewest points of either part of a climb that [`pace_change`] splits: a line through fewer
/// fits anything.
const SPLIT_MIN_POINTS: usize = 3;

/// How many times as fast as the part of a climb before it its latest part must climb to be
/// a change of its own ([`pace_change`]): a leak that began with its series keeps its pace
/// (the two parts of a noisy steady climb differ by tens of percent), a leak that began after
/// a start-up outruns it by tens to hundreds of times (the Go lab: 0.7 → 160 goroutines a
/// second).
pub const SPEED_UP: f64 = 4.0;

/// Whether a climb kept its pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PaceChange {
    /// One climb from its first point.
    Kept,
    /// Its latest part, from this index of the climb on, climbs at least [`SPEED_UP`] times
    /// as fast as the part before it.
    SpedUp(usize),
    /// Its latest one or two points jumped out of the line of the points before them: a
    /// change too young to tell its pace (the step test of [`super::detect`] reads a jump
    /// from its third point; the shape is judged again at the next pass).
    Jumping,
}

/// Whether `climb` kept its pace, sped up (and from where), or is jumping right now.
///
/// Each split is judged against the points just before it (at most [`RAMP_MAX_POINTS`]), not
/// against the whole climb: a start-up climbs fast, then holds, and what comes after the hold
/// is measured against the hold. A split is a speed-up when the part after it climbs at
/// least [`SPEED_UP`] times as fast as the points before it and gets higher than they got;
/// of those, the one whose two straight lines fit best is taken (least squares, every split
/// tried once: `O(points)` with running sums).
///
/// Seen on the Go lab with the agent started 120 s before the chain, twice: the redeployed
/// edge's goroutines crept 20 → 60 over the minute after its start (the traffic driver's
/// keep-alive connections, a goroutine each), then the goroutine-leak fault added 160 a
/// second. Read as one climb from where it left its floor, with the fault's first two points
/// on top, the incident said "climbing 20 → 283 in 58 s (from 02:16:42 UTC)", 56 s before
/// the fault. And with a callee leaking CLOSE-WAIT, the edge's goroutines (17 → 55 in its
/// first minute, then level) jumped to ~133 requests waiting and held there: a second
/// incident, "Goroutines grow without bound — in bff-v2 … climbing 27 → 135 in 69 s".
pub(super) fn pace_change(climb: Points<'_>, noise: f64) -> PaceChange {
    let n = climb.len();
    if n < SPLIT_MIN_POINTS + 1 {
        return PaceChange::Kept;
    }
    // Running sums of the points before each split, x counted from the climb's first point
    // (so the squares stay small).
    let x0 = climb[0].0;
    let mut sums = Vec::with_capacity(n + 1);
    let mut acc = Sums::default();
    sums.push(acc);
    for &(i, y) in climb {
        acc.add((i - x0) as f64, y);
        sums.push(acc);
    }
    // The points just before index `c` of the climb.
    let window = |c: usize| sums[c].minus(&sums[c.saturating_sub(RAMP_MAX_POINTS)]);
    let window_top = |c: usize| highest(&climb[c.saturating_sub(RAMP_MAX_POINTS)..c]);
    // The latest one or two points far above the line of the points before them.
    for k in 1..SPLIT_MIN_POINTS {
        if n < k + SPLIT_MIN_POINTS {
            break;
        }
        let before = window(n - k);
        let spread = (before.residual() / (before.n - 2.0).max(1.0)).sqrt();
        let band = BAND_Z * spread.max(noise);
        let top = window_top(n - k) + BAND_Z * noise;
        if climb[n - k..]
            .iter()
            .all(|&(i, y)| y > top && y > before.at((i - x0) as f64) + band)
        {
            return PaceChange::Jumping;
        }
    }
    let best = (SPLIT_MIN_POINTS..=n.saturating_sub(SPLIT_MIN_POINTS))
        .filter_map(|c| {
            let (before, after) = (window(c), acc.minus(&sums[c]));
            let (slower, faster) = (before.slope(), after.slope());
            // A faster part that got no higher than the points before it is a recovery
            // from a dip (the Go lab's healthy edge: 54 → 45 → 53 in a minute of wobble).
            let outran = highest(&climb[c..]) > window_top(c) + BAND_Z * noise;
            (outran && faster > 0.0 && faster >= SPEED_UP * slower.max(0.0))
                .then(|| (c, before.residual() + after.residual()))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1));
    match best {
        Some((c, _)) => PaceChange::SpedUp(c),
        None => PaceChange::Kept,
    }
}

/// The highest value of `points`.
fn highest(points: Points<'_>) -> f64 {
    points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max)
}

/// Running sums of a least-squares line.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    n: f64,
    x: f64,
    y: f64,
    xx: f64,
    xy: f64,
    yy: f64,
}

impl Sums {
    fn add(&mut self, x: f64, y: f64) {
        self.n += 1.0;
        self.x += x;
        self.y += y;
        self.xx += x * x;
        self.xy += x * y;
        self.yy += y * y;
    }

    fn minus(&self, o: &Sums) -> Sums {
        Sums {
            n: self.n - o.n,
            x: self.x - o.x,
            y: self.y - o.y,
            xx: self.xx - o.xx,
            xy: self.xy - o.xy,
            yy: self.yy - o.yy,
        }
    }

    /// Σ(x − x̄)², Σ(x − x̄)(y − ȳ), Σ(y − ȳ)².
    fn centred(&self) -> (f64, f64, f64) {
        if self.n <= 0.0 {
            return (0.0, 0.0, 0.0);
        }
        (
            self.xx - self.x * self.x / self.n,
            self.xy - self.x * self.y / self.n,
            self.yy - self.y * self.y / self.n,
        )
    }

    /// The least-squares slope (0 for points at one x).
    fn slope(&self) -> f64 {
        let (sxx, sxy, _) = self.centred();
        if sxx > 0.0 {
            sxy / sxx
        } else {
            0.0
        }
    }

    /// The least-squares line's value at `x`.
    fn at(&self, x: f64) -> f64 {
        if self.n <= 0.0 {
            return 0.0;
        }
        self.y / self.n + self.slope() * (x - self.x / self.n)
    }

    /// The sum of squared residuals about the least-squares line.
    fn residual(&self) -> f64 {
        let (sxx, sxy, syy) = self.centred();
        let explained = if sxx > 0.0 { sxy * sxy / sxx } else { 0.0 };
        (syy - explained).max(0.0)
    }
}

/// The highest level a climb held: its latest point, or a level two points in a row reached,
/// whichever is higher. A one-sample spike is no level the series held (a burst of requests
/// for a second): quoted as where the climb got to, it made a wobble read as a climb to the
/// spike (the Go lab's healthy edge: goroutines at 54 on either side of a 62).
fn held_top(climb: Points<'_>) -> f64 {
    climb
        .windows(2)
        .map(|w| w[0].1.min(w[1].1))
        .chain(climb.last().map(|p| p.1))
        .fold(f64::NEG_INFINITY, f64::max)
}

/// The known points from the last one inside the floor band (at most `floor_top`) on — a
/// climb out of the floor — and its most recent [`RAMP_MAX_POINTS`]; `None` when it holds
/// fewer than [`RAMP_MIN_POINTS`] or no point is in the band.
pub(super) fn climb_out_of(
    known: &[(usize, f64)],
    floor_top: f64,
) -> Option<(Points<'_>, Points<'_>)> {
    let climb_from = known.iter().rposition(|&(_, v)| v <= floor_top)?;
    let climb = &known[climb_from..];
    if climb.len() < RAMP_MIN_POINTS {
        return None;
    }
    Some((climb, &climb[climb.len().saturating_sub(RAMP_MAX_POINTS)..]))
}

/// A rise judged on its shape rather than against a baseline (a young series' leak or
/// TIME-WAIT storm): where it started and got to, between which points.
pub(super) struct Climb {
    /// The level it climbed from.
    pub(super) before: f64,
    /// The noise its score is measured in.
    pub(super) noise: f64,
    /// Where it got to (the evidence quotes it).
    pub(super) reached: f64,
    /// Its latest point.
    pub(super) latest: f64,
    /// The index of the point it is dated at.
    pub(super) changed: usize,
    /// The index of its latest point.
    pub(super) last: usize,
    /// The series' limit, when it has one.
    pub(super) limit: Option<f64>,
}

impl Climb {
    /// The anomaly: a rising ramp, its evidence sentence followed by `why` it was judged on
    /// its shape.
    pub(super) fn anomaly(
        &self,
        history: &CounterHistory,
        key: &SeriesKey,
        why: &str,
    ) -> CounterAnomaly {
        let changed_at = history.time(self.changed);
        let label = key.label();
        let mut text = evidence(
            &label,
            key.unit(),
            self.before,
            self.reached,
            Direction::Rise,
            ChangeShape::Ramp,
            changed_at,
            history.time(self.last),
            self.limit,
        );
        text.push_str("; ");
        text.push_str(why);
        CounterAnomaly {
            key: key.clone(),
            label,
            unit: key.unit().to_owned(),
            kind: key.kind(),
            shape: ChangeShape::Ramp,
            direction: Direction::Rise,
            before: self.before,
            noise: self.noise,
            reached: self.reached,
            latest: self.latest,
            score: (self.reached - self.before) / self.noise,
            changed_at_unix_ms: changed_at,
            active: true,
            limit: self.limit,
            evidence: text,
            caveat: None,
        }
    }
}

/// The noise of points about their local trend: the MAD of their first differences (which a
/// steady climb shifts but does not widen), scaled to a σ of one point.
fn step_noise(points: &[(usize, f64)]) -> f64 {
    let mut diffs: Vec<f64> = points.windows(2).map(|w| w[1].1 - w[0].1).collect();
    let centre = median(&mut diffs);
    let mut spread: Vec<f64> = diffs.iter().map(|d| (d - centre).abs()).collect();
    MAD_TO_SIGMA * median(&mut spread) / std::f64::consts::SQRT_2
}

/// The Theil–Sen slope (per point) of at most [`TREND_POINTS`] evenly spread points: the
/// median of the slopes between every two of them, which a few odd points do not tilt.
pub(super) fn theil_sen(points: &[(usize, f64)]) -> f64 {
    let every = points.len().div_ceil(TREND_POINTS).max(1);
    let sample: Vec<(usize, f64)> = points.iter().step_by(every).copied().collect();
    let mut slopes = Vec::with_capacity(sample.len() * sample.len() / 2);
    for (a, &(i, x)) in sample.iter().enumerate() {
        for &(j, y) in &sample[a + 1..] {
            if j > i {
                slopes.push((y - x) / (j - i) as f64);
            }
        }
    }
    median(&mut slopes)
}

#[cfg(test)]
mod tests {
    use faultline_series::TrafficMetric;

    use super::super::tests::{assert_no_break, at, history, noisy, raised_at, START};
    use super::super::{detect, AnomalyConfig, SeriesLimit, ServiceStart};
    use super::*;

    /// A series whose points all aged out of the kept history has no climb: the pass read
    /// `points[0..=0]` of it and panicked ("range end index 0 out of range for slice of
    /// length 0"; the diagnosis restarted empty, 15.5 minutes into a soak).
    #[test]
    fn a_series_with_no_points_left_has_no_climb() {
        assert_eq!(climb_start(&[], 0, 1_000), 0);
        assert_eq!(climb_start(&[], 7, 1_000), 0);
    }

    fn goroutines(target: &str) -> SeriesKey {
        SeriesKey::Task {
            target: target.into(),
            source: "pprof".into(),
        }
    }

    fn requests(service: &str) -> SeriesKey {
        SeriesKey::ServiceTraffic {
            service: service.into(),
            metric: TrafficMetric::Requests,
        }
    }

    fn fds(name: &str) -> SeriesKey {
        SeriesKey::Process {
            name: name.into(),
            metric: ProcessMetric::OpenFds,
        }
    }

    /// A series absent for the agent's first `from` seconds, then `f(seconds since)` rounded
    /// like a count, plus noise of ± `spread`.
    fn from_start(
        len: usize,
        from: usize,
        spread: f64,
        seed: u64,
        f: impl Fn(f64) -> f64,
    ) -> Vec<Option<f64>> {
        let jitter = noisy(len, spread, spread, seed);
        (0..len)
            .map(|i| {
                (i >= from).then(|| {
                    let j = jitter[i].unwrap_or(spread) - spread;
                    (f((i - from) as f64) + j).round().max(0.0)
                })
            })
            .collect()
    }

    /// A pool of `size` (goroutines, connections) filling from `level` with a time constant
    /// of `tau` seconds, as [`from_start`] series: `(len, from, spread, seed)` as there.
    fn pool(
        (len, from, spread, seed): (usize, usize, f64, u64),
        level: f64,
        size: f64,
        tau: f64,
    ) -> Vec<Option<f64>> {
        from_start(len, from, spread, seed, |t| {
            level + size * (1.0 - (-t / tau).exp())
        })
    }

    #[test]
    fn a_goroutine_leak_from_the_first_request_is_raised_and_dated_at_the_start() {
        // A new version started 2 s after the agent leaks one goroutine per request from its
        // first one, at 10 requests a second. Its baseline (15 s after the start, 30 points)
        // is the leak itself: before, it was judged against its own climb and never raised.
        let g = goroutines("api");
        let h = history(vec![
            (g.clone(), from_start(300, 2, 2.0, 1, |t| 12.0 + 10.0 * t)),
            (requests("api"), from_start(300, 3, 1.0, 2, |_| 10.0)),
        ]);
        let raised = raised_at(&h, &g, 1, 299).expect("raised");
        // Its 15 s start-up, then half a baseline's 30 points (the whole 30 before: 47 s).
        assert!(raised <= 33, "raised at {raised} s");
        // It stays raised while it climbs.
        for end in [raised, 120, 299] {
            let report = detect(&at(&h, end), &[], &[], &AnomalyConfig::default());
            let a = report
                .anomalies
                .iter()
                .find(|a| a.key == g)
                .expect("raised");
            assert_eq!(a.changed_at_unix_ms, START + 2_000, "at {end}");
            assert_eq!(a.shape, ChangeShape::Ramp);
            assert!(
                a.evidence.contains("first seen at 20:30:02 UTC")
                    && a.evidence.contains(" per request of its service's 10/s")
                    && a.evidence.ends_with("a leak, not a start-up"),
                "{}",
                a.evidence
            );
        }
        // With no request rate known, it is raised once it has climbed for a minute past its
        // start-up.
        let alone = history(vec![(
            g.clone(),
            from_start(300, 2, 2.0, 1, |t| 12.0 + 10.0 * t),
        )]);
        let raised = raised_at(&alone, &g, 1, 299).expect("raised");
        assert!((60..=80).contains(&raised), "raised at {raised} s");
    }

    /// The Go lab's healthy edge (`testdata/go-lab-healthy-edge.json`, a lived-in run): its
    /// goroutines dipped to 28 for a second at 292 s and wobbled back to the mid-50s, with a
    /// one-second spike to 62 at 362 s. The leak rule reads a climb there at 396 s (the
    /// grouping then finds it follows the connections); its evidence quoted "28 → 62", from
    /// the life's lowest point to the spike. It quotes the climb it rests on: from the point
    /// where it left its floor band (44, a minute before) to a level held for two seconds.
    #[test]
    fn a_climb_is_quoted_from_where_it_left_its_floor_to_a_level_it_held() {
        let recorded = crate::testing::Recorded::parse(include_str!(
            "../../testdata/go-lab-healthy-edge.json"
        ));
        let points = |name: &str| recorded.points(name);
        let (start, restart) = (recorded.start, recorded.restart.expect("restart_point"));
        let g = SeriesKey::Task {
            target: "edge-svc".into(),
            source: "http".into(),
        };
        let h = CounterHistory {
            start_unix_ms: start,
            ..history(vec![
                (g.clone(), points("goroutines")),
                (requests("edge-svc"), points("requests")),
            ])
        };
        let starts = [ServiceStart {
            service: "edge-svc".into(),
            at_unix_ms: start + restart * 1000,
            task_targets: vec!["edge-svc".into()],
            ..ServiceStart::default()
        }];
        let report = detect(&at(&h, 396), &[], &starts, &AnomalyConfig::default());
        let a = report
            .anomalies
            .iter()
            .find(|a| a.key == g)
            .expect("the leak rule reads a climb at 396 s");
        assert_eq!((a.before, a.reached), (44.0, 56.0), "{}", a.evidence);
        assert!(
            a.evidence
                .starts_with("goroutines edge-svc (http) is climbing 44 → 56 in 58 s"),
            "{}",
            a.evidence
        );
    }

    /// The Go lab's close-wait fault seen from the chain's edge
    /// (`testdata/go-lab-close-wait-edge.json`): its goroutines crept 17 → 55 in the minute
    /// after its redeploy and held ~50; with its callee hung, its requests waited for their
    /// timeout and its goroutines jumped to ~133 and held there. The leak rule read creep and
    /// jump as one climb since the restart and raised it as a leak, dated 56 s before the
    /// fault ("climbing 27 → 133 in 66 s … a leak, not a start-up"): a second incident,
    /// "Goroutines grow without bound — in bff-v2", beside the callee's. The jump is judged
    /// on its own: it levels off at once, no leak.
    #[test]
    fn requests_waiting_on_a_hung_callee_after_a_creep_are_no_leak() {
        let recorded = crate::testing::Recorded::parse(include_str!(
            "../../testdata/go-lab-close-wait-edge.json"
        ));
        assert_no_leak_after_the_fault(&recorded, "bff-v2");
    }

    /// The same from the listen-overflow fault (`testdata/go-lab-listen-overflow-edge.json`):
    /// the edge's goroutines jumped 46 → 166 and held. Set apart from the creep before it,
    /// six points of the jump still read as a climb of 15 a second "without levelling off";
    /// its shape is told once it has twice a ramp's fewest points.
    #[test]
    fn requests_waiting_on_a_callee_that_stopped_accepting_are_no_leak() {
        let recorded = crate::testing::Recorded::parse(include_str!(
            "../../testdata/go-lab-listen-overflow-edge.json"
        ));
        assert_no_leak_after_the_fault(&recorded, "api");
    }

    /// Judges a recorded edge's goroutines at every second of the 30 after its fault, with
    /// its restart where the agent dated it, and fails on a leak read by the leak rule.
    fn assert_no_leak_after_the_fault(recorded: &crate::testing::Recorded, service: &str) {
        let g = SeriesKey::Task {
            target: service.into(),
            source: "http".into(),
        };
        let h = CounterHistory {
            start_unix_ms: recorded.start,
            ..history(vec![
                (g.clone(), recorded.points("goroutines")),
                (requests(service), recorded.points("requests")),
            ])
        };
        let starts = [ServiceStart {
            service: service.into(),
            at_unix_ms: recorded.start + recorded.index("restart_at_ms") as i64,
            task_targets: vec![service.into()],
            ..ServiceStart::default()
        }];
        let fault = recorded.index("fault_point");
        for end in fault..fault + 30 {
            let report = detect(&at(&h, end), &[], &starts, &AnomalyConfig::default());
            if let Some(a) = report.anomalies.iter().find(|a| a.key == g) {
                assert!(
                    !a.evidence.ends_with("a leak, not a start-up"),
                    "at {end}: {}",
                    a.evidence
                );
            }
        }
    }

    /// The e2e CLOSE-WAIT leak (a peer connects and hangs up every 50 ms, the server never
    /// closes) read by a loaded agent whose socket census comes every 3 s: flat for three
    /// samples, then 60 more. Once raised, it never turns over: a tail of a few equal samples
    /// is no level held (the first version of the turnover test judged six points within the
    /// Poisson band of their median, and dropped the leak's hint). It is undecided for its
    /// first [`TURNOVER_SETTLE_MS`], as a slow callee's requests in progress would be, and
    /// accumulates from the first census that shows it past the level it held by then.
    #[test]
    fn a_leak_sampled_every_few_seconds_accumulates() {
        let cw = SeriesKey::PortState {
            port: 8080,
            side: faultline_series::PortSide::Local,
            state: SocketState::CloseWait,
        };
        let points: Vec<Option<f64>> = (0..160)
            .map(|i| {
                Some(if i < 100 {
                    0.0
                } else {
                    (20 * ((i - 100) / 3 * 3)) as f64
                })
            })
            .collect();
        let h = history(vec![(cw.clone(), points)]);
        let mut judged = 0;
        let mut decided = None;
        for end in 100..=160 {
            let cut = at(&h, end);
            let report = detect(&cut, &[], &[], &AnomalyConfig::default());
            if let Some(a) = report.anomalies.iter().find(|a| a.key == cw) {
                judged += 1;
                let changed = (a.changed_at_unix_ms - START) / 1000;
                let verdict = accumulation(a, &cut);
                assert_ne!(verdict, Accumulation::TurnsOver, "at {end}: {}", a.evidence);
                if end as i64 <= changed + TURNOVER_SETTLE_MS / 1000 {
                    assert_eq!(verdict, Accumulation::Undecided, "at {end}");
                } else if decided.is_some() {
                    assert_eq!(verdict, Accumulation::Accumulates, "at {end}");
                } else if verdict == Accumulation::Accumulates {
                    decided = Some(end as i64 - changed);
                }
            }
        }
        assert!(judged > 40, "raised at {judged} seconds only");
        // Past 10 s at 20 a second (200), its band at that level is ±43: the census 3 s on.
        let decided = decided.expect("it accumulates once past its settling time");
        assert!(decided <= 16, "decided {decided} s after its change");
    }

    #[test]
    fn a_leak_that_began_inside_a_young_baseline_is_raised_within_seconds() {
        // The Go lab with a 40 s baseline: the chain started 1 s after the agent, the
        // goroutine-leak fault (8 goroutines per request, 20 requests a second) injected
        // 40 s later, five seconds before the young baseline ends; before, goroutines
        // 11 → 5,409 and no incident.
        let g = goroutines("storefront");
        let leak_at = 41;
        let h = history(vec![
            (
                g.clone(),
                from_start(200, 1, 2.0, 3, |t| {
                    11.0 + 160.0 * (t + 1.0 - leak_at as f64).max(0.0)
                }),
            ),
            (requests("storefront"), from_start(200, 2, 2.0, 4, |_| 20.0)),
        ]);
        let raised = raised_at(&h, &g, 1, 199).expect("raised");
        assert!(
            (leak_at..=leak_at + 10).contains(&raised),
            "raised at {raised} s, the leak began at {leak_at} s"
        );
        let report = detect(&at(&h, raised), &[], &[], &AnomalyConfig::default());
        let a = report.anomalies.iter().find(|a| a.key == g).unwrap();
        let dated = (a.changed_at_unix_ms - START) / 1000;
        assert!(
            (leak_at as i64..=leak_at as i64 + 2).contains(&dated),
            "dated at {dated} s: {}",
            a.evidence
        );
    }

    #[test]
    fn fds_climbing_from_the_start_to_their_limit_are_raised_before_they_reach_it() {
        // A service that leaks a connection per hung request from its start, with a soft
        // limit of 256 fds, its requests hanging (no request rate to compare with).
        let f = fds("pricing");
        let h = history(vec![(
            f.clone(),
            from_start(200, 2, 1.0, 5, |t| (25.0 + 4.0 * t).min(256.0)),
        )]);
        let limits = [SeriesLimit {
            key: f.clone(),
            limit: 256.0,
        }];
        let raised = (1..200)
            .find(|&end| {
                detect(&at(&h, end), &limits, &[], &AnomalyConfig::default())
                    .anomalies
                    .iter()
                    .any(|a| a.key == f)
            })
            .expect("raised");
        // 80 % of 256 is reached 46 s after the start; at its pace the limit is a minute
        // away from the first point judged: its 15 s start-up, then 15 points.
        assert!(raised <= 33, "raised at {raised} s");
    }

    #[test]
    fn a_leak_of_a_redeployed_service_is_raised_though_its_baseline_is_short() {
        // The Go lab with the agent started 120 s first: a first deploy from 40 s to 80 s,
        // the redeploy at 120 s, the goroutine-leak fault 40 s later. The restart is dated
        // where the old process was last seen (81 s), so the baseline after its start-up
        // holds only the redeploy's first points; goroutines 14 → 4,333 and no incident.
        let g = goroutines("checkout-api");
        let leak_at = 160;
        let points: Vec<Option<f64>> = (0..260)
            .map(|i| match i {
                40..=80 => Some(14.0),
                120..=124 => Some(4.0 + 2.0 * (i - 120) as f64),
                125.. => Some(14.0 + 160.0 * (i as f64 + 1.0 - leak_at as f64).max(0.0)),
                _ => None,
            })
            .collect();
        let rate: Vec<Option<f64>> = (0..260)
            .map(|i| (40..=80).contains(&i) || i >= 121)
            .map(|up| up.then_some(20.0))
            .collect();
        let h = history(vec![(g.clone(), points), (requests("checkout-api"), rate)]);
        let restart = ServiceStart {
            service: "checkout-api".into(),
            at_unix_ms: START + 81_000,
            task_targets: vec!["checkout-api".into()],
            ..ServiceStart::default()
        };
        let raised = (leak_at - 20..260)
            .find(|&end| {
                detect(
                    &at(&h, end),
                    &[],
                    std::slice::from_ref(&restart),
                    &AnomalyConfig::default(),
                )
                .anomalies
                .iter()
                .any(|a| a.key == g)
            })
            .expect("raised");
        assert!(
            (leak_at..=leak_at + 10).contains(&raised),
            "raised at {raised} s, the leak began at {leak_at} s"
        );
    }

    #[test]
    fn a_climb_of_a_service_hardly_called_is_not_judged_per_request() {
        // A worker pool of 45 filling one a second for 45 s from its start, while its
        // callers send a request every three seconds: 3 goroutines "per request", which is
        // no pace of requests at all. It settles before it has climbed for a minute.
        let h = history(vec![
            (
                goroutines("reports"),
                from_start(200, 2, 1.0, 11, |t| 10.0 + t.min(45.0)),
            ),
            (
                requests("reports"),
                (0..200).map(|i| (i >= 2).then_some(0.3)).collect(),
            ),
        ]);
        assert_no_break(&h, 1..=200, &[], &AnomalyConfig::default());
    }

    #[test]
    fn pools_filling_for_few_requests_after_a_start_raise_nothing_on_half_a_baseline() {
        // The worst cases for judging a young series per request: pools far larger than the
        // requests that fill them, still filling when the first 15 points after the start-up
        // are judged. `reports`: 100 workers (a goroutine each) with a time constant of 10 s
        // at 4 requests a second, 2.5 a request at first; `export`: 60 connections (an fd
        // each) at 2 requests a second, time constant 15 s; `cache`: CLOSE-WAIT of a
        // client pool that recycles 40 connections over 20 s from its start.
        let cw = SeriesKey::PortState {
            port: 6379,
            side: faultline_series::PortSide::Remote,
            state: SocketState::CloseWait,
        };
        let h = history(vec![
            (
                goroutines("reports"),
                pool((300, 3, 2.0, 21), 8.0, 100.0, 10.0),
            ),
            (requests("reports"), from_start(300, 3, 1.0, 22, |_| 4.0)),
            (fds("export"), pool((300, 2, 1.0, 23), 12.0, 60.0, 15.0)),
            (requests("export"), from_start(300, 2, 0.5, 24, |_| 2.0)),
            (cw, pool((300, 2, 1.0, 25), 0.0, 40.0, 20.0)),
        ]);
        assert_no_break(&h, 1..=300, &[], &AnomalyConfig::default());
    }

    #[test]
    fn a_pool_warming_up_to_a_plateau_raises_nothing() {
        // Two services started 3 s after the agent, at their usual traffic at once. `api`
        // fills a pool of 50 connections (a goroutine and an fd each) with a time constant
        // of 6 s; `batch` fills a pool of 200 workers slowly (time constant 30 s, still
        // climbing two minutes after its start) at 40 requests a second.
        let h = history(vec![
            (goroutines("api"), pool((400, 3, 2.0, 6), 4.0, 50.0, 6.0)),
            (fds("api"), pool((400, 3, 1.0, 7), 10.0, 50.0, 6.0)),
            (requests("api"), from_start(400, 3, 2.0, 8, |_| 20.0)),
            (
                goroutines("batch"),
                pool((400, 3, 2.0, 9), 10.0, 200.0, 30.0),
            ),
            (requests("batch"), from_start(400, 3, 3.0, 10, |_| 40.0)),
        ]);
        assert_no_break(&h, 1..=400, &[], &AnomalyConfig::default());
    }
}
