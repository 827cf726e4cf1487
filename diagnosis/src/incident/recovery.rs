//! Where an incident stands: its fault still going on ([`IncidentState::Active`]), stopped and
//! waiting to be sure ([`IncidentState::Recovering`], with since when), or over
//! ([`IncidentState::Ended`]).
//!
//! Execution model: [`super::IncidentTracker::update`] calls [`settle`] once per incident per
//! update, after it has built, continued or kept it, with what the incident was at the update
//! before and when its own counters last moved away. It reads no clock.
//!
//! The question an SRE asks after a rollback is not "are the counters back in their band" —
//! TIME-WAIT sockets stay a minute after a storm stopped, leaked goroutines stay until the
//! process restarts — but "did the fault stop": the errors stopped and the counters stopped
//! moving away from their usual levels. So:
//!
//! - **Active** while one of its own patterns (not an echo it only lists) failed within its
//!   quiet time ([`quiet`]: three of its usual gaps between failures, at least [`QUIET_MS`]),
//!   or one of its own counters (not a supporting one) moved away from its usual level within
//!   [`HOLD_MS`]. A counter *moves away* ([`moving_away`]) while it is still out of its range
//!   and: a level stayed above all it had reached before over the last [`MOVE_WINDOW_MS`],
//!   by more than a wobble (a leak's count, not its wobble at the top); a port's
//!   TIME-WAIT count is fed by more closes a second than before, by half its storm's pace at
//!   least ([`time_wait_closes`]: the count is the last minute's closes, so its climb alone
//!   says nothing once a storm has run a minute, and its fall says nothing for a minute after
//!   it stopped; a count that did not climb is read over the last seconds and over
//!   [`DRAIN_WINDOW_MS`], both for a storm to start moving again, either for one going on to
//!   keep moving); a rate or a fall is
//!   still out of its range; or a level is pinned at its limit (a full accept queue, fds at
//!   their limit: the fault is still there).
//! - **Recovering** from then on, with `recovering_since_unix_ms` the time the fault stopped:
//!   its last failure or the last time its counters moved away.
//! - **Ended** once it has recovered [`SETTLE_MS`] beyond its quiet time with its own counters
//!   back in their range, or [`MAX_RECOVERY_MS`] beyond it with counters that have stopped but
//!   not come back (a storm's TIME-WAIT draining, goroutines a leak left behind) — never while
//!   one of its own counters is a listener's CLOSE-WAIT still out of its range: those sockets
//!   are the leak itself, held until their process closes them or stops.
//!
//! **A fault that comes back.** While the incident is recovering, a new failure of its
//! patterns or a counter moving away again makes it active again: the same incident. Once it
//! has ended, the same is true within the run its signals belong to — a pattern failing again
//! within a minute of its last failure ([`super::ACTIVE_MS`]: the same run), a counter's
//! change moving away again before it came back — and the incident is *reopened*
//! (`reopened_unix_ms`), with its id, onset and counts. A pattern back after a minute of
//! silence, or a counter's new change after it came back, is a new signal and a new incident
//! (see `continues` in [`super`]): a fault that recurs minutes after a fix is a new page, as
//! Alertmanager fires a resolved alert anew.

use faultline_series::{CounterKind, PortSide, SeriesKey, SocketState};

use super::connections::beyond_connections;
use super::{
    CountedAs, Incident, IncidentPattern, IncidentState, ServiceFacts, ACTIVE_MS, MIN_STORM_CLOSES,
};
use crate::anomaly::{CounterAnomaly, Direction, BAND_Z, PERSIST};
use crate::history::CounterHistory;

/// Shortest silence of a pattern that says its failures stopped. Its occurrences are dated
/// when they happened and arrive later: Go's lab services post spans every 250 ms, an
/// OpenTelemetry SDK's batch processor every 5 s by default, and the diagnosis runs about
/// once a second (seconds apart on a loaded node). Ten seconds outlasts those and still tells
/// an SRE within seconds of a rollback that the errors stopped.
pub const QUIET_MS: i64 = 10_000;
/// A pattern's failures stopped when it has been silent for this many of its usual gaps
/// (its run's duration over its count), at least [`QUIET_MS`], at most [`ACTIVE_MS`]: a
/// pattern failing once every 8 s is not over after 10 s of silence.
pub const QUIET_GAPS: i64 = 3;
/// How long an incident's own counters must have stopped moving away before it is
/// recovering: the movement itself is measured over [`MOVE_WINDOW_MS`], so a leak of one
/// socket every two seconds or a census repeated for a few seconds does not flap.
pub const HOLD_MS: i64 = 3_000;
/// How far back a counter's movement is measured: five samples, and at least one census
/// before the last even on a busy node (censuses a few seconds apart: see
/// [`CounterHistory::counted_at`]).
pub const MOVE_WINDOW_MS: i64 = 5_000;
/// How long an incident whose counters are back in their range stays recovering beyond its
/// quiet time before it ends: long enough that a fault which flaps comes back into the same
/// incident, short enough that "over" follows a fix within seconds.
pub const SETTLE_MS: i64 = 5_000;
/// How long an incident whose counters stopped moving but have not come back stays
/// recovering beyond its quiet time before it ends: the bound on "stopped for a while". A
/// storm's TIME-WAIT drains for a minute after the storm stopped, leaked goroutines stay
/// until their process restarts; neither is a fault still going on.
pub const MAX_RECOVERY_MS: i64 = 20_000;
/// Smallest climb of a socket count over [`MOVE_WINDOW_MS`], above all it had reached
/// before, that is still moving away (beside the series' own noise): a leak of one socket
/// every two seconds climbs 2 to 3 in that window.
pub const MIN_CLIMB: f64 = 2.0;
/// The same for a goroutine, fd or thread count, which moves by a few with each connection
/// opened or closed: seen on the Go lab's goroutine leak, healed, the leaked 8,511 moved to
/// 8,517 for ten seconds and back with the callers' keep-alive connections. Ten within five
/// seconds is a leak of two a second or more; slower leaks take their time to be raised
/// too (the detector's ramp needs [`crate::anomaly::MIN_PROCESS_CHANGE`]).
pub const MIN_PROCESS_CLIMB: f64 = 10.0;
/// Share of its limit at which a level is pinned there (see [`moving_away`]).
pub const PINNED_SHARE: f64 = 0.95;
/// How long a TIME-WAIT socket lives: Linux's fixed `TCP_TIMEWAIT_LEN`.
pub const TIME_WAIT_LEN_MS: i64 = 60_000;
/// How late the kernel may reap a TIME-WAIT socket past its minute: its timer sits in a
/// timer-wheel level whose granularity is 2 s at HZ 250 and 4 s at HZ 1000, so a storm's
/// sockets leave in batches up to that late. Seen on the unseen lab (abort, healed): a storm
/// of 26 closes a second begun at 14:47:01 drained from 14:48:03 by 52 every 2 s; read as
/// leaving at exactly a minute, the draining count was 8.6 closes a second of storm 34 s
/// after the heal (its pace 16/s) and the incident went active again.
pub const REAP_SLACKS_MS: [i64; 3] = [0, 2_000, 4_000];
/// How far back a TIME-WAIT count that did not climb is read for its closes (see
/// [`REAP_SLACKS_MS`]): three of the coarsest reaping batches, so that one batch more or less
/// in the window is a third of a batch a second, well under half a storm's pace.
pub const DRAIN_WINDOW_MS: i64 = 12_000;
/// Points since a series' last known point after which it is gone (its port no longer
/// counted, its process gone): nothing there moves.
const STALE_POINTS: usize = 10;

/// Says where `inc` stands now (see the module documentation): sets its state, `active`,
/// `last_active_unix_ms`, `recovering_since_unix_ms`, `ended_unix_ms`, `reopened_unix_ms`
/// and each counter's `moving_away`. `was` is the incident as the update before left it (same
/// id), `last_moving` when its own counters last moved away (as this returned then). Returns
/// when its own counters last moved away now, `None` when it has none.
pub(super) fn settle(
    inc: &mut Incident,
    was: Option<&Incident>,
    last_moving: Option<i64>,
    history: &CounterHistory,
    services: &[ServiceFacts],
    now: i64,
) -> Option<i64> {
    let mut own_counters = false;
    let mut moving = false;
    let mut back = true;
    let mut held = false;
    for c in &mut inc.counters {
        let gone = stale(&c.anomaly, history);
        // Whether this counter was moving away at the update before: a storm going on is
        // judged leniently (either window), a stopped one strictly (both), see `moving_away`.
        let was_moving = was.is_some_and(|w| {
            w.counters
                .iter()
                .any(|o| o.anomaly.key == c.anomaly.key && o.moving_away)
        });
        c.moving_away = !gone
            && c.anomaly.active
            && moving_away(&c.anomaly, history, services, was_moving).unwrap_or(c.anomaly.active);
        if !c.supporting {
            own_counters = true;
            moving |= c.moving_away;
            back &= gone || !c.anomaly.active;
            held |= !gone && holds_closed_sockets(&c.anomaly, history);
        }
    }
    let own: Vec<&IncidentPattern> = inc
        .patterns
        .iter()
        .filter(|p| p.counted_as != CountedAs::Echo)
        .collect();
    let failing = own.iter().any(|p| now - p.last_seen_unix_ms < quiet(p));
    let last_failure = own.iter().map(|p| p.last_seen_unix_ms).max();
    // A counter first seen here was raised as a break just now: it moved.
    let last_moving = own_counters.then(|| {
        if moving {
            now
        } else {
            last_moving.unwrap_or(now)
        }
    });
    let stopped = last_failure
        .into_iter()
        .chain(last_moving)
        .max()
        .unwrap_or(inc.onset_unix_ms)
        .max(inc.onset_unix_ms);
    let wait = own
        .iter()
        .map(|p| quiet(p))
        .chain(own_counters.then_some(HOLD_MS))
        .max()
        .unwrap_or(0);
    let was_state = was.map(|w| w.state);
    let mut state = if failing || last_moving.is_some_and(|t| now - t < HOLD_MS) {
        IncidentState::Active
    } else if !held && now - stopped >= wait + if back { SETTLE_MS } else { MAX_RECOVERY_MS } {
        IncidentState::Ended
    } else {
        IncidentState::Recovering
    };
    // Over is over unless the fault comes back.
    if was_state == Some(IncidentState::Ended) && state == IncidentState::Recovering {
        state = IncidentState::Ended;
    }
    inc.reopened_unix_ms = was.and_then(|w| w.reopened_unix_ms);
    if was_state == Some(IncidentState::Ended) && state == IncidentState::Active {
        inc.reopened_unix_ms = Some(now);
    }
    inc.state = state;
    inc.active = state != IncidentState::Ended;
    inc.last_active_unix_ms = stopped;
    inc.recovering_since_unix_ms = (state != IncidentState::Active).then_some(stopped);
    inc.ended_unix_ms = (state == IncidentState::Ended).then_some(stopped);
    last_moving
}

/// Whether `a` is a rise of a listener's own CLOSE-WAIT sockets whose latest [`PERSIST`] known
/// points in `history` are still out of the band it left: connections its callers
/// closed that it still holds, each with its descriptor (a server reads its callers' close at
/// once unless its handler hangs or leaks the connection; a client's pool may keep closed
/// idle connections until it next uses them, so the callers' side is not read so). Unlike a storm's TIME-WAIT, which the
/// kernel frees within a minute, or goroutines a leak left blocked, they are the fault itself
/// for as long as they are out of their range: the process keeps them until it closes them or
/// stops, and a holder out of descriptors refuses every new connection meanwhile. Seen on the
/// Go lab's close-wait leak brought back after a restart: the callers' traffic stopped, the
/// callee still held 606 sockets with its fds at their limit, and the incident ended.
fn holds_closed_sockets(a: &CounterAnomaly, history: &CounterHistory) -> bool {
    a.direction == Direction::Rise
        && matches!(
            a.key,
            SeriesKey::PortState {
                side: PortSide::Local,
                state: SocketState::CloseWait,
                ..
            }
        )
        && history.get(&a.key).is_some_and(|series| {
            let band = BAND_Z * a.noise;
            let latest: Vec<f64> = series
                .points
                .iter()
                .rev()
                .flatten()
                .take(PERSIST)
                .copied()
                .collect();
            latest.len() == PERSIST && latest.iter().all(|&v| v > a.before + band)
        })
}

/// How long pattern `p` must be silent before its failures have stopped (see [`QUIET_GAPS`]).
pub(super) fn quiet(p: &IncidentPattern) -> i64 {
    let gap = match p.count {
        0 | 1 => 0,
        n => (p.last_seen_unix_ms - p.onset_unix_ms).max(0) / i64::try_from(n - 1).unwrap_or(1),
    };
    gap.saturating_mul(QUIET_GAPS).clamp(QUIET_MS, ACTIVE_MS)
}

/// Whether the series of `a` has had no known point for [`STALE_POINTS`] (or has none).
fn stale(a: &CounterAnomaly, history: &CounterHistory) -> bool {
    let Some(series) = history.get(&a.key) else {
        return false;
    };
    series
        .points
        .iter()
        .rposition(Option::is_some)
        .is_none_or(|i| history.len().saturating_sub(1) - i.min(history.len()) > STALE_POINTS)
}

/// Whether the change of `a` is still going on at the end of `history` (see the module
/// documentation); `None` when the history cannot tell (no such series, too short).
pub(super) fn moving_away(
    a: &CounterAnomaly,
    history: &CounterHistory,
    services: &[ServiceFacts],
    was_moving: bool,
) -> Option<bool> {
    // A rate is a change already: out of its range, it is still going on.
    if a.direction == Direction::Fall || a.key.is_rate() {
        return Some(a.active);
    }
    if a.limit
        .is_some_and(|l| l > 0.0 && a.latest >= PINNED_SHARE * l)
    {
        return Some(true);
    }
    let series = history.get(&a.key)?;
    // Socket counts change only from one census to the next: measured between censuses.
    let census = matches!(
        a.key,
        SeriesKey::PortState { .. }
            | SeriesKey::PortTotal { .. }
            | SeriesKey::ListenQueue { .. }
            | SeriesKey::NodeState { .. }
            | SeriesKey::OtherPortsTotal
    );
    let at = |i: usize| {
        if census {
            history.counted_at(i)
        } else {
            history.time(i)
        }
    };
    let last = series.points.iter().rposition(Option::is_some)?;
    // The count as it stood at `t`: on the line between the last count taken by then and the
    // next one. The counts are taken at censuses seconds apart on a busy node; the last one
    // alone is seconds old, and seconds of a storm are tens of closes (see `time_wait_closes`).
    let value_at = |t: i64| -> Option<f64> {
        let i = history.point_at(t)?.min(last);
        let known = |j: usize| series.points[j].map(|v| (at(j), v));
        // A census taken by `t` may be filed under a later point (the census repeats).
        let mut before = None;
        let mut after = None;
        for (c, v) in (i..=last).filter_map(known) {
            if c <= t {
                before = Some((c, v));
            } else {
                after = Some((c, v));
                break;
            }
        }
        let (c0, v0) = before.or_else(|| (0..i).rev().find_map(known))?;
        Some(match after {
            Some((c1, v1)) if c1 > c0 && t > c0 => {
                v0 + (v1 - v0) * (t - c0) as f64 / (c1 - c0) as f64
            }
            _ => v0,
        })
    };
    let c1 = at(last);
    let c0 = at(history.point_at(c1 - MOVE_WINDOW_MS)?);
    if c1 <= c0 {
        return None;
    }
    if matches!(
        a.key,
        SeriesKey::PortState {
            state: SocketState::TimeWait,
            ..
        }
    ) {
        // Still a storm: half a storm's floor, and half the pace this one had at least (its
        // rise over the minute its sockets live). What a healed storm's count is misread by
        // is a share of its own pace, not of the floor's.
        let usual = a.before * 1000.0 / TIME_WAIT_LEN_MS as f64;
        let pace = (a.reached - a.before) * 1000.0 / TIME_WAIT_LEN_MS as f64;
        let least = (MIN_STORM_CLOSES / 2.0).max(pace / 2.0);
        // Closes a second beyond the usual over (from, c1]: the least that any of `slacks`
        // explains.
        let excess = |from: i64, slacks: &[i64]| {
            let closes = slacks
                .iter()
                .filter_map(|&slack| {
                    time_wait_closes(&value_at, from, c1, a.changed_at_unix_ms, a.before, slack)
                })
                .reduce(f64::min)?;
            Some(closes * 1000.0 / (c1 - from) as f64 - usual)
        };
        let short = c1 - MOVE_WINDOW_MS;
        if value_at(c1)? > value_at(short)? {
            return Some(excess(short, &[0])? >= least);
        }
        // A count that did not climb is flat at a storm's top or draining after it: its
        // sockets leave in the kernel's reaping batches, up to a batch late, so its closes
        // are the least any such lateness explains — over the last seconds, and over a window
        // of several batches, where one batch more or less is not half a storm's pace. A
        // storm still going on closes at its pace over both.
        // Only within the storm's first two minutes: later the closes telescope back to the
        // window of its start, which a lateness would cut.
        let slacks: &[i64] = if c1 - a.changed_at_unix_ms < 2 * TIME_WAIT_LEN_MS {
            &REAP_SLACKS_MS
        } else {
            &[0]
        };
        // A storm that was going on stays so while either window keeps half its pace: its
        // pace dips with its callers' load for seconds (seen on the unseen lab's abort held
        // 202 s, load 17: the count fell 1,476 → 1,390 in 10 s at 2:35 into the storm, the
        // last 5 s read 11.4–12.2 closes a second against 12.7, the last 12 s 13.2–15.1, and
        // the running storm read recovering for 3 s). A healed one falls under half its pace
        // over 12 s within 6 s of the heal, so it still stops within seconds.
        let recent = excess(short, slacks)? >= least;
        let drain = excess(c1 - DRAIN_WINDOW_MS, slacks).is_none_or(|e| e >= least);
        return Some(if was_moving {
            recent || drain
        } else {
            recent && drain
        });
    }
    // Above all it had reached before, the whole window long, and by more than a wobble: a
    // count that keeps climbing leaves its past behind, one that wobbles at its new level
    // (connections opened and closed at a leak's top) falls back into it or moves by a few.
    // Seen on the Go lab's goroutine leak, healed: 8,511 ↔ 8,517 for minutes; read as a rise
    // over 5 s beyond the baseline's σ of 3.6, each wobble was a climb and the incident
    // flapped active ↔ recovering every 16 s.
    let i0 = history.point_at(c0)?.min(last);
    let from = history.point_at(a.changed_at_unix_ms).unwrap_or(0).min(i0);
    // A goroutine or fd count moves with its service's connections too (one goroutine per
    // connection served, two per one held): what a leak adds is the rest. Seen on the Go
    // lab's goroutine leak in its edge, healed: 4,269 → 4,286 as the driver's keep-alive pool
    // grew 7 → 24 connections 20 s after the heal, 10 above all it had reached, and the
    // incident went active again.
    let beyond = matches!(a.kind, CounterKind::Tasks | CounterKind::ProcessFds)
        .then(|| beyond_connections(a, services, history))
        .flatten();
    let points = beyond.as_deref().unwrap_or(&series.points);
    let known = |points: &[Option<f64>]| points.iter().flatten().copied().collect::<Vec<f64>>();
    let before = known(points.get(from..=i0)?).into_iter().reduce(f64::max)?;
    let window = known(points.get(i0 + 1..=last)?);
    let (Some(lowest), Some(highest)) = (
        window.iter().copied().reduce(f64::min),
        window.iter().copied().reduce(f64::max),
    ) else {
        return Some(false);
    };
    let least = match a.kind {
        CounterKind::Tasks | CounterKind::ProcessFds | CounterKind::ProcessThreads => {
            MIN_PROCESS_CLIMB
        }
        _ => MIN_CLIMB,
    };
    Some(lowest > before && highest - before >= a.noise.max(least))
}

/// Connections closed into TIME-WAIT within `(from, to]` (Unix ms), read from the count
/// `value_at` gives: every socket stays [`TIME_WAIT_LEN_MS`], so the count's change over a
/// window is the closes in it less those a minute before, which left it. Those are read the
/// same way a minute earlier, back to the change at `changed_at`, before which the port
/// closed at its usual pace (`usual`, its usual count, over a minute). Seen on the unseen
/// lab: the storm's count stopped climbing within one census of the heal and stayed flat
/// for the minute its sockets lived, and so does a storm that runs on past its first
/// minute; only the closes tell the two apart. The sockets that left were closed a minute
/// and `slack` ms before (see [`REAP_SLACKS_MS`]). `value_at` must read the count at the
/// instant asked, not at the last census before it: a window a minute back read at censuses
/// seconds off its ends is seconds of the storm's closes off (seen on the unseen lab at load
/// 13: a storm healed in its first minute went active again 22 s and 40 s after the heal,
/// and ended 70 s after it instead of ~25 s).
pub(super) fn time_wait_closes(
    value_at: &impl Fn(i64) -> Option<f64>,
    from: i64,
    to: i64,
    changed_at: i64,
    usual: f64,
    slack: i64,
) -> Option<f64> {
    let (mut from, mut to) = (from, to);
    let mut closes = 0.0;
    let mut first = true;
    while to > changed_at {
        match (value_at(from), value_at(to)) {
            (Some(a), Some(b)) => closes += b - a,
            // Not counted a minute before: from there on, the usual pace.
            _ if !first => break,
            _ => return None,
        }
        first = false;
        from -= TIME_WAIT_LEN_MS + slack;
        to -= TIME_WAIT_LEN_MS + slack;
    }
    Some(closes + usual * (to - from) as f64 / TIME_WAIT_LEN_MS as f64)
}
