//! "What moved with it": which node counters changed level around the onset of an error
//! pattern, and by how much, when and in step with what.
//!
//! Pure functions over the view documents: [`what_moved`] takes a pattern's summary, its
//! occurrence counts and the counters' snapshot and returns a [`MovedWithIt`]; it reads no
//! clock and no store, so the same inputs always give the same answer.
//!
//! The method, for a pattern with onset T (when it started emerging, else first seen):
//!
//! 1. **Windows.** The *search window* runs from [`MAX_LEAD_MS`] before T to [`MAX_LAG_MS`]
//!    after it; a change outside it is not "with" the pattern. The *baseline window* is the
//!    [`BASELINE_MS`] that end where the search window starts. When the history starts later
//!    (the agent just started), the search window's start moves later so that the baseline
//!    keeps [`MIN_BASELINE_POINTS`]; when that would pass T, there is not enough history.
//! 2. **Baseline.** Per series: median level `m` and noise `σ = max(1.4826·MAD, √(|m|+1))`.
//!    The MAD makes a series that wobbles wide; the Poisson floor keeps a flat series (MAD 0)
//!    from turning a change of one socket into a move: every series here is a count or a count
//!    per second.
//! 3. **Change point.** The first sample in the search window where the series leaves the band
//!    `m ± BAND_Z·σ` and stays out for [`PERSIST`] samples, having been inside it for the
//!    [`PERSIST`] samples before, and where the change holds: at least [`SETTLE_SHARE`] of the
//!    [`SETTLE_POINTS`] samples from there on are out of the band. A series already out of its band when the window opens moved
//!    earlier and is not attributed.
//! 4. **Size.** The level after the change is the median from the change point over at most
//!    [`AFTER_MS`]; `score = |after − m| / σ`. The series moved when `score ≥ MIN_SCORE` in the
//!    direction it left the band, and, for levels (not rates), by at least
//!    [`MIN_LEVEL_CHANGE`]. The sentence says where it got to: the 95th percentile of
//!    that window (5th for a fall), which a ramp reaches and a single odd sample does not set.
//! 5. **Effects start while the errors happen.** A change after T counts only when the pattern
//!    occurred within [`EFFECT_SLACK_MS`] before it.
//! 6. **Co-movement.** Spearman correlation ρ of the series with the pattern's rate (trailing
//!    [`RATE_SMOOTH_POINTS`]-sample sum) from the search window's start to [`AFTER_MS`] after T;
//!    `in_step = max(0, ρ × sign(change))` (a fall is in step when the errors rise).
//! 7. **Rank.** `log10(1 + score) × log10(1 + |after − m|) × 1/(1 + |lead| / LEAD_HALF_WEIGHT_MS)
//!    × (0.5 + 0.5·in_step) × scope` (`in_step` counts as 0.5 when ρ is unknown; `scope` is
//!    [`NODE_WIDE_WEIGHT`] for sockstat and protocol rates, else 1): the size on log scales, in
//!    noise units and in sockets (or fds, tasks, /s), because a jump of 4,000 and one of 40 can
//!    both matter but a port that went from 0 to 40 sockets matters less than 500 more sockets
//!    in use, however quiet its baseline; halved at 15 s from the onset, halved again for a
//!    series that does not move in step with the errors, and halved for a node-wide total. The
//!    first [`MAX_MOVED`] are returned, each with a sentence of evidence, at most
//!    [`MAX_NODE_WIDE`] of them node-wide totals once a port, process or task moved: a socket
//!    storm on one port also moves every sockstat total, and four copies of its story would push
//!    the next real lead off the list.

use crate::model::{
    ClusterSummary, CounterKind, CountersSnapshot, MinuteCounts, MovedCounter, MovedVerdict,
    MovedWithIt, OnsetSource, PortSide, SecondCounts, Series, SeriesKey, SocketState,
};

/// How long the usual level of a series is measured over: long enough that a median and a
/// MAD are stable (300 samples at 1 s), short enough to fit the 15-minute history twice over.
pub const BASELINE_MS: i64 = 5 * 60_000;
/// How long before the onset a change still counts as moving with the pattern. Causes (a
/// connection storm, a pool running dry) show on the sockets seconds to tens of seconds before
/// the first error line; beyond a minute the link is a guess.
pub const MAX_LEAD_MS: i64 = 60_000;
/// How long after the onset a change still counts: effects (CLOSE-WAIT piling up, goroutines
/// blocking, fds growing) follow within tens of seconds.
pub const MAX_LAG_MS: i64 = 60_000;
/// The level after a change is measured over at most this long: two minutes holds the
/// 60-second TIME-WAIT of a storm and is short enough that a later, unrelated change does not
/// dominate the median.
pub const AFTER_MS: i64 = 2 * 60_000;
/// Fewest baseline samples for a median and MAD worth the name (30 s at 1 s).
pub const MIN_BASELINE_POINTS: usize = 30;
/// Samples a series must stay out of (and before, inside) its band for a change point: one or
/// two odd samples are a blip, not a move; three at 1 s still answers within seconds.
pub const PERSIST: usize = 3;
/// Samples from a change point over which the change must hold: at least
/// [`SETTLE_SHARE`] of them out of the band. Seen on a real node: a 3-second bump of segment
/// rates 20 s before a storm passed [`PERSIST`], and the storm after it made the median
/// shift, so the move was dated to the bump. Ten samples (10 s) still answer within seconds;
/// a change younger than that is judged on the samples there are.
pub const SETTLE_POINTS: usize = 10;
/// Share of the [`SETTLE_POINTS`] samples that must be out of the band (8 of 10): a real step
/// may dip back once or twice, a blip does not stay.
pub const SETTLE_SHARE: f64 = 0.8;
/// Half-width of the usual band in noise units: for Gaussian-like noise 3σ is left by about
/// 1 sample in 370, and [`PERSIST`] samples in a row almost never.
pub const BAND_Z: f64 = 3.0;
/// Smallest shift of the level (in noise units) that counts as a move: twice the band, so a
/// series that just grazes its band edge is not reported; a flat 12 sockets must pass 33.
pub const MIN_SCORE: f64 = 6.0;
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
/// Scale of the MAD that makes it estimate σ for Gaussian noise.
const MAD_TO_SIGMA: f64 = 1.4826;
/// Fewest paired points for a correlation.
const MIN_CORRELATION_POINTS: usize = 10;
/// Points of context shown in the charts before the search window (2 min at 1 s).
const CHART_CONTEXT_MS: i64 = 2 * 60_000;

/// One counter series to judge, with its identity.
struct Candidate<'a> {
    kind: CounterKind,
    label: String,
    unit: String,
    socket: Option<(u16, PortSide, SocketState)>,
    points: &'a [Option<f64>],
    /// Gaps before the first known point read as 0 (sockets: the state had no socket yet).
    zero_before_first: bool,
}

/// The time axis of the counters' history.
#[derive(Clone, Copy)]
struct Axis {
    start: i64,
    step: i64,
    len: usize,
}

impl Axis {
    fn time(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }

    fn end(&self) -> i64 {
        self.time(self.len.saturating_sub(1))
    }

    /// Index of the first point at or after `t` (may be `len`).
    fn at_or_after(&self, t: i64) -> usize {
        if t <= self.start {
            return 0;
        }
        let i = (t - self.start + self.step - 1) / self.step;
        usize::try_from(i).unwrap_or(usize::MAX).min(self.len)
    }
}

/// Answers "what moved with it" for one pattern (see the module documentation).
///
/// `per_second` gives the onset and the pattern's rate to the second; without it the
/// per-minute `per_minute` counts are used and the timing is only known to the minute.
pub fn what_moved(
    summary: &ClusterSummary,
    per_minute: &MinuteCounts,
    per_second: Option<&SecondCounts>,
    counters: &CountersSnapshot,
) -> MovedWithIt {
    let axis = Axis {
        start: counters.history_start_unix_ms,
        step: counters.step_ms.max(1),
        len: history_len(counters),
    };
    let pattern = pattern_on_axis(axis, per_minute, per_second);
    let (mut onset, source) = match &summary.emergence {
        Some(e) => (e.since_unix_ms, OnsetSource::Emergence),
        None => (summary.first_seen_unix_ms, OnsetSource::FirstSeen),
    };
    let precise = per_second.is_some_and(|s| !s.counts.is_empty());
    // A surge's start is only known to the minute by the store; with per-second counts the
    // pattern's own change point (found like a counter's) places it to the second.
    let surge = summary
        .emergence
        .as_ref()
        .is_some_and(|e| e.kind == crate::model::EmergenceKind::Surge);
    if surge && precise && axis.len > 0 {
        let known: Vec<Option<f64>> = pattern.iter().copied().map(Some).collect();
        if let Some(windows) = Windows::around(axis, onset) {
            if let Some(m) = judge(axis, &windows, &known, false, 0.0) {
                if m.change > 0.0 {
                    onset = m.changed_at;
                }
            }
        }
    }
    let mut doc = MovedWithIt {
        cluster_id: summary.id.clone(),
        verdict: MovedVerdict::NotEnoughHistory,
        summary: String::new(),
        onset_unix_ms: onset,
        onset_source: source,
        onset_precision_ms: if precise { axis.step } else { 60_000 },
        baseline_start_unix_ms: None,
        search_start_unix_ms: None,
        search_end_unix_ms: None,
        history_start_unix_ms: axis.start,
        step_ms: axis.step,
        pattern: Series::default(),
        series_examined: 0,
        series_skipped: 0,
        moved: Vec::new(),
    };
    let began = match source {
        OnsetSource::Emergence if surge => "the surge began",
        _ => "the first error",
    };
    if axis.len == 0 {
        doc.summary = "Not enough history: no counter samples yet.".into();
        return doc;
    }
    let Some(windows) = Windows::around(axis, onset) else {
        doc.summary = if onset < axis.start + MIN_BASELINE_POINTS as i64 * axis.step {
            format!(
                "Not enough history: the pattern began at {}, but the counters' 1 s history \
                 starts at {} and needs {} s before the onset as a baseline.",
                clock(onset),
                clock(axis.start),
                MIN_BASELINE_POINTS as i64 * axis.step / 1000
            )
        } else {
            format!(
                "Not enough history yet: the pattern began at {}, after the latest counter \
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

    let rate = trailing_sum(&pattern, RATE_SMOOTH_POINTS);
    let corr_from = axis.at_or_after(windows.search_start);
    let corr_to = axis.at_or_after(onset + AFTER_MS + 1).min(axis.len);

    let candidates = candidates(counters);
    let mut moved = Vec::new();
    for c in &candidates {
        doc.series_examined += 1;
        let points = filled(c, axis.len);
        let min_change = if c.unit == "/s" {
            0.0
        } else {
            MIN_LEVEL_CHANGE
        };
        let Some(m) = judge(axis, &windows, &points, true, min_change) else {
            if baseline_points(axis, &windows, &points) < MIN_BASELINE_POINTS {
                doc.series_skipped += 1;
            }
            continue;
        };
        let lead_ms = m.changed_at - onset;
        if lead_ms > 0 && !occurred_near(&pattern, axis, m.changed_at) {
            // Changed after the errors had stopped: something that happened next, not an
            // effect of them.
            continue;
        }
        let rho = spearman(&points[corr_from..corr_to], &rate[corr_from..corr_to]);
        let timing = 1.0 / (1.0 + lead_ms.abs() as f64 / LEAD_HALF_WEIGHT_MS);
        // In step means rising with the errors for a rise, falling as they rise for a fall.
        let in_step = rho.map_or(0.5, |r| (r * m.change.signum()).max(0.0));
        let scope = match c.kind {
            CounterKind::Sockstat | CounterKind::ProtocolRate => NODE_WIDE_WEIGHT,
            _ => 1.0,
        };
        let rank = (1.0 + m.score).log10()
            * (1.0 + m.change.abs()).log10()
            * timing
            * (0.5 + 0.5 * in_step)
            * scope;
        moved.push(MovedCounter {
            kind: c.kind,
            evidence: evidence(c, &m, lead_ms, rho, began),
            label: c.label.clone(),
            unit: c.unit.clone(),
            port: c.socket.map(|s| s.0),
            side: c.socket.map(|s| s.1),
            state: c.socket.map(|s| s.2),
            before: m.before,
            after: m.after,
            reached: m.reached,
            change: m.change,
            score: m.score,
            changed_at_unix_ms: m.changed_at,
            lead_ms,
            co_movement: rho,
            rank,
            history: Series {
                points,
                delta_1m: None,
            },
        });
    }
    moved.sort_by(|a, b| {
        b.rank
            .total_cmp(&a.rank)
            .then_with(|| a.label.cmp(&b.label))
    });
    let node_wide =
        |m: &MovedCounter| matches!(m.kind, CounterKind::Sockstat | CounterKind::ProtocolRate);
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
        points: pattern[from..].iter().map(|&v| Some(v)).collect(),
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
        format!(
            "{} of {} counter series moved {window_text}; the most telling first.",
            moved.len(),
            doc.series_examined - doc.series_skipped
        )
    };
    if !precise {
        doc.summary
            .push_str(" Timing is known to the minute only: no per-second counts of this pattern.");
    }
    doc.moved = moved;
    doc
}

/// Length of the common axis: the longest series (they are all laid on it).
fn history_len(s: &CountersSnapshot) -> usize {
    let socks = s.sockets.iter().map(|x| x.history.points.len());
    let named = s
        .sockstat
        .iter()
        .chain(&s.protocol_rates)
        .map(|x| x.history.points.len());
    let procs = s
        .processes
        .iter()
        .flat_map(|p| [p.fds.points.len(), p.threads.points.len()]);
    let tasks = s.tasks.iter().map(|t| t.history.points.len());
    let queues = s.listeners.iter().map(|l| l.history.points.len());
    socks
        .chain(named)
        .chain(procs)
        .chain(tasks)
        .chain(queues)
        .max()
        .unwrap_or(0)
}

/// The search and baseline windows around an onset.
struct Windows {
    baseline_start: i64,
    search_start: i64,
    search_end: i64,
    /// The level after a change is measured up to here at most (also bounded by the change).
    after_end: i64,
}

impl Windows {
    /// `None` when the history holds no baseline before the onset or ends before it.
    fn around(axis: Axis, onset: i64) -> Option<Windows> {
        let earliest = axis.start + MIN_BASELINE_POINTS as i64 * axis.step;
        let search_start = (onset - MAX_LEAD_MS).max(earliest);
        if search_start > onset || axis.end() < onset {
            return None;
        }
        Some(Windows {
            baseline_start: (search_start - BASELINE_MS).max(axis.start),
            search_start,
            search_end: (onset + MAX_LAG_MS).min(axis.end()),
            after_end: axis.end(),
        })
    }
}

/// The verdict on one series.
#[derive(Debug)]
struct Move {
    before: f64,
    after: f64,
    reached: f64,
    change: f64,
    score: f64,
    changed_at: i64,
}

fn baseline_points(axis: Axis, w: &Windows, points: &[Option<f64>]) -> usize {
    let from = axis.at_or_after(w.baseline_start);
    let to = axis.at_or_after(w.search_start).min(points.len());
    points[from.min(to)..to].iter().flatten().count()
}

/// Steps 2 to 4 of the method on one series; `None` when it did not move (or cannot be
/// judged). `need_baseline` is false for the pattern's own rate, whose seconds without events
/// are zeros, not gaps.
fn judge(
    axis: Axis,
    w: &Windows,
    points: &[Option<f64>],
    need_baseline: bool,
    min_change: f64,
) -> Option<Move> {
    let from = axis.at_or_after(w.baseline_start);
    let split = axis.at_or_after(w.search_start).min(points.len());
    let mut base: Vec<f64> = points[from.min(split)..split]
        .iter()
        .flatten()
        .copied()
        .collect();
    if base.len() < MIN_BASELINE_POINTS && (need_baseline || base.is_empty()) {
        return None;
    }
    let level = median(&mut base);
    let mut dev: Vec<f64> = base.iter().map(|v| (v - level).abs()).collect();
    let noise = (MAD_TO_SIGMA * median(&mut dev)).max((level.abs() + 1.0).sqrt());
    let band = BAND_Z * noise;
    let side = |v: f64| -> i8 {
        if v > level + band {
            1
        } else if v < level - band {
            -1
        } else {
            0
        }
    };

    // Known points (index, value) from PERSIST before the search window to the end.
    let known: Vec<(usize, f64)> = points
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i, v)))
        .collect();
    let search_end = axis.at_or_after(w.search_end + 1);
    for k in 0..known.len() {
        let (i, v) = known[k];
        if i < split || i >= search_end {
            continue;
        }
        let dir = side(v);
        if dir == 0 || k < PERSIST || k + PERSIST > known.len() {
            continue;
        }
        let stays_out = known[k..k + PERSIST].iter().all(|&(_, x)| side(x) == dir);
        let was_in = known[k - PERSIST..k].iter().all(|&(_, x)| side(x) != dir);
        let settle = &known[k..(k + SETTLE_POINTS).min(known.len())];
        let out = settle.iter().filter(|&&(_, x)| side(x) == dir).count();
        let holds = out as f64 >= SETTLE_SHARE * settle.len() as f64;
        if !stays_out || !was_in || !holds {
            continue;
        }
        let changed_at = axis.time(i);
        let after_end = axis.at_or_after((changed_at + AFTER_MS).min(w.after_end) + 1);
        let mut after: Vec<f64> = known[k..]
            .iter()
            .take_while(|&&(j, _)| j < after_end)
            .map(|&(_, x)| x)
            .collect();
        let after_level = median(&mut after);
        // `after` is sorted now: where the series got to is near its top (bottom for a fall).
        let reached = after[percentile_index(after.len(), if dir > 0 { 0.95 } else { 0.05 })];
        let change = after_level - level;
        let score = change.abs() / noise;
        if score >= MIN_SCORE && change.signum() as i8 == dir && change.abs() >= min_change {
            return Some(Move {
                before: level,
                after: after_level,
                reached,
                change,
                score,
                changed_at,
            });
        }
    }
    None
}

/// Index of the `q` quantile (nearest rank) in a sorted slice of `len` values (`len > 0`).
fn percentile_index(len: usize, q: f64) -> usize {
    ((q * len as f64).ceil() as usize).clamp(1, len.max(1)) - 1
}

/// Median of `values` (sorted in place); 0 for none.
fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Every counter series of the snapshot, named as the dashboard names them.
fn candidates(s: &CountersSnapshot) -> Vec<Candidate<'_>> {
    let mut out = Vec::new();
    for x in &s.sockets {
        out.push(Candidate {
            kind: CounterKind::Sockets,
            label: SeriesKey::PortState {
                port: x.port,
                side: x.side,
                state: x.state,
            }
            .label(),
            unit: "sockets".into(),
            socket: Some((x.port, x.side, x.state)),
            points: &x.history.points,
            zero_before_first: true,
        });
    }
    for (list, kind, prefix) in [
        (&s.sockstat, CounterKind::Sockstat, "sockstat "),
        (&s.protocol_rates, CounterKind::ProtocolRate, ""),
    ] {
        for x in list {
            out.push(Candidate {
                kind,
                label: format!("{prefix}{}", x.name),
                unit: x.unit.clone(),
                socket: None,
                points: &x.history.points,
                zero_before_first: false,
            });
        }
    }
    for p in &s.processes {
        out.push(Candidate {
            kind: CounterKind::ProcessFds,
            label: format!("{} [{}] open fds", p.name, p.pid),
            unit: "fds".into(),
            socket: None,
            points: &p.fds.points,
            zero_before_first: false,
        });
        out.push(Candidate {
            kind: CounterKind::ProcessThreads,
            label: format!("{} [{}] threads", p.name, p.pid),
            unit: "threads".into(),
            socket: None,
            points: &p.threads.points,
            zero_before_first: false,
        });
    }
    // The agent's own runtime is left out on purpose: its work follows the error rate
    // whatever the cause, so it would always "move with" a pattern.
    let mut queue_ports = std::collections::BTreeSet::new();
    for l in &s.listeners {
        // Listeners sharing a port share one history: one candidate per port.
        if queue_ports.insert(l.port) {
            out.push(Candidate {
                kind: CounterKind::AcceptQueue,
                label: format!("accept queue :{}", l.port),
                unit: "connections".into(),
                socket: None,
                points: &l.history.points,
                zero_before_first: false,
            });
        }
    }
    for t in &s.tasks {
        out.push(Candidate {
            kind: CounterKind::Tasks,
            label: format!("goroutines {}", t.target),
            unit: "tasks".into(),
            socket: None,
            points: &t.history.points,
            zero_before_first: false,
        });
    }
    out
}

/// The points of a candidate padded to the axis length; a socket series' gaps before its first
/// known point are 0 (the store starts a port-state series at its first socket).
fn filled(c: &Candidate<'_>, len: usize) -> Vec<Option<f64>> {
    let mut points: Vec<Option<f64>> = c.points.iter().copied().take(len).collect();
    // Series shorter than the axis end early: the missing points are its latest samples' gaps.
    points.resize(len, None);
    if c.zero_before_first {
        if let Some(first) = points.iter().position(Option::is_some) {
            for p in &mut points[..first] {
                *p = Some(0.0);
            }
        }
    }
    points
}

/// The pattern's occurrences per axis step: per-second counts when known (a second goes to
/// the first sample at or after its start), else each minute's count spread evenly.
fn pattern_on_axis(
    axis: Axis,
    per_minute: &MinuteCounts,
    per_second: Option<&SecondCounts>,
) -> Vec<f64> {
    let mut out = vec![0.0; axis.len];
    match per_second.filter(|s| !s.counts.is_empty()) {
        Some(s) => {
            for (k, &c) in s.counts.iter().enumerate() {
                let t = s.start_unix_ms + k as i64 * 1000;
                let i = axis.at_or_after(t);
                if let Some(slot) = out.get_mut(i) {
                    *slot += c as f64;
                }
            }
        }
        None => {
            let per_step = axis.step as f64 / 60_000.0;
            for (i, slot) in out.iter_mut().enumerate() {
                let t = axis.time(i);
                let m = (t - per_minute.start_unix_ms).div_euclid(60_000);
                if let Some(&c) = usize::try_from(m)
                    .ok()
                    .and_then(|m| per_minute.counts.get(m))
                {
                    *slot = c as f64 * per_step;
                }
            }
        }
    }
    out
}

/// Whether the pattern occurred in the [`EFFECT_SLACK_MS`] up to `t` (inclusive).
fn occurred_near(pattern: &[f64], axis: Axis, t: i64) -> bool {
    let from = axis.at_or_after(t - EFFECT_SLACK_MS);
    let to = axis.at_or_after(t + 1).min(pattern.len());
    pattern[from.min(to)..to].iter().any(|&c| c > 0.0)
}

/// Sum of each point and the `n - 1` before it.
fn trailing_sum(values: &[f64], n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(values.len());
    let mut sum = 0.0;
    for (i, v) in values.iter().enumerate() {
        sum += v;
        if i >= n {
            sum -= values[i - n];
        }
        out.push(sum);
    }
    out
}

/// Spearman rank correlation over the points where `a` is known; `None` with too few points
/// or when either side is constant.
fn spearman(a: &[Option<f64>], b: &[f64]) -> Option<f64> {
    let pairs: Vec<(f64, f64)> = a
        .iter()
        .zip(b)
        .filter_map(|(x, &y)| x.map(|x| (x, y)))
        .collect();
    if pairs.len() < MIN_CORRELATION_POINTS {
        return None;
    }
    let ra = ranks(pairs.iter().map(|p| p.0).collect());
    let rb = ranks(pairs.iter().map(|p| p.1).collect());
    pearson(&ra, &rb)
}

/// Ranks with ties given their mean rank.
fn ranks(values: Vec<f64>) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let mut out = vec![0.0; values.len()];
    let mut k = 0;
    while k < order.len() {
        let mut end = k;
        while end + 1 < order.len() && values[order[end + 1]] == values[order[k]] {
            end += 1;
        }
        let mean = (k + end) as f64 / 2.0;
        for &i in &order[k..=end] {
            out[i] = mean;
        }
        k = end + 1;
    }
    out
}

fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    (saa > 0.0 && sbb > 0.0).then(|| (sab / (saa * sbb).sqrt()).clamp(-1.0, 1.0))
}

/// The sentence of evidence for one moved counter.
fn evidence(c: &Candidate<'_>, m: &Move, lead_ms: i64, rho: Option<f64>, began: &str) -> String {
    let verb = if m.change > 0.0 { "rose" } else { "fell" };
    let secs = (lead_ms as f64 / 1000.0).round() as i64;
    let when = match secs {
        0 => format!("within a second of {began}"),
        s if s < 0 => format!("{} s before {began}", -s),
        s => format!("{s} s after {began}"),
    };
    // Rates and memory pages say their unit; sockets, fds, threads and tasks are plain
    // counts the label already names.
    let unit = match c.unit.as_str() {
        "/s" => "/s",
        "pages" => " pages",
        _ => "",
    };
    let mut text = format!(
        "{} {verb} {}{unit} → {}{unit} ({}) from {}, {when}",
        c.label,
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
        text.push_str(&format!("; moves {how} the error rate (ρ {r:.2})"));
    }
    text
}

/// A level for a sentence: whole numbers (and anything from 100 up, where a decimal is noise)
/// with thousands separators, smaller fractions to one decimal.
fn number(v: f64) -> String {
    let whole = (v - v.round()).abs() < 1e-9 || v.abs() >= 100.0;
    if whole && v.abs() < 1e15 {
        let n = v.round() as i64;
        let digits = n.unsigned_abs().to_string();
        let mut out = String::new();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(ch);
        }
        if n < 0 {
            format!("-{out}")
        } else {
            out
        }
    } else {
        format!("{v:.1}")
    }
}

fn signed(v: f64) -> String {
    if v > 0.0 {
        format!("+{}", number(v))
    } else {
        number(v)
    }
}

/// `HH:MM:SS UTC` of a Unix time in ms.
fn clock(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000).rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        Emergence, EmergenceKind, ListenQueue, NamedSeries, PortSide, ProcessSeries, SocketSeries,
        TaskSeries,
    };

    /// 2026-11-25T20:30:00Z: the start of the synthetic 15-minute history.
    const START: i64 = 1_795_638_600_000;
    const LEN: usize = 900;
    /// The onset: ten minutes into the history.
    const ONSET: i64 = START + 600_000;

    /// A deterministic noise source (xorshift), so a failure reproduces.
    struct Noise(u64);
    impl Noise {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % 10_000) as f64 / 10_000.0
        }
    }

    fn at(i: usize) -> i64 {
        START + i as i64 * 1000
    }

    /// `before` until `change_at` (a time), then `after`.
    fn step(before: f64, after: f64, change_at: i64) -> Series {
        Series {
            delta_1m: None,
            points: (0..LEN)
                .map(|i| Some(if at(i) < change_at { before } else { after }))
                .collect(),
        }
    }

    fn socket(port: u16, side: PortSide, state: SocketState, history: Series) -> SocketSeries {
        let current = history.points.last().copied().flatten().unwrap_or(0.0) as u64;
        SocketSeries::new(port, side, state, current, history)
    }

    fn named(name: &str, history: Series) -> NamedSeries {
        NamedSeries {
            total: None,
            name: name.into(),
            unit: "sockets".into(),
            current: None,
            history,
        }
    }

    fn snapshot(sockets: Vec<SocketSeries>, sockstat: Vec<NamedSeries>) -> CountersSnapshot {
        CountersSnapshot {
            sampled_at_unix_ms: at(LEN - 1),
            history_start_unix_ms: START,
            step_ms: 1000,
            sockets,
            sockstat,
            ..CountersSnapshot::default()
        }
    }

    fn new_pattern(first_seen: i64) -> ClusterSummary {
        ClusterSummary {
            id: "00000000000000aa".into(),
            canonical_template: "read: connection reset by peer".into(),
            services: vec!["orders".into()],
            first_seen_unix_ms: first_seen,
            last_seen_unix_ms: at(LEN - 1),
            total_count: 1000,
            rate_per_minute: 3000.0,
            template_count: 1,
            emergence: Some(Emergence {
                kind: EmergenceKind::New,
                reason: "new".into(),
                score: 10.0,
                since_unix_ms: first_seen,
            }),
            sparkline: MinuteCounts::default(),
            culprit: None,
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

    fn run(summary: &ClusterSummary, counters: &CountersSnapshot, from: i64) -> MovedWithIt {
        let seconds = occurrences(from, 50);
        what_moved(summary, &MinuteCounts::default(), Some(&seconds), counters)
    }

    /// Stationary noise around `level`, ± `spread`.
    fn noisy(seed: u64, level: f64, spread: f64) -> Series {
        let mut noise = Noise(seed);
        Series {
            delta_1m: None,
            points: (0..LEN)
                .map(|_| Some((level + spread * (2.0 * noise.next() - 1.0)).round()))
                .collect(),
        }
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
    fn bursty(phase: usize) -> Series {
        Series {
            delta_1m: None,
            points: (0..LEN)
                .map(|i| Some(if (i + phase) % 30 < 5 { 450.0 } else { 40.0 }))
                .collect(),
        }
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

    #[test]
    fn a_ramp_is_reported_at_the_height_it_reached() {
        // TIME-WAIT climbing 25 a second from the onset on, for the rest of the history.
        let ramp = Series {
            delta_1m: None,
            points: (0..LEN)
                .map(|i| Some(40.0 + 25.0 * (at(i) - ONSET).max(0) as f64 / 1000.0))
                .collect(),
        };
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
        counters.protocol_rates = vec![NamedSeries {
            total: None,
            name: "TcpExt ListenOverflows".into(),
            unit: "/s".into(),
            current: None,
            history: step(0.0, 8.0, ONSET - 1_000),
        }];
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
            &new_pattern(ONSET),
            &MinuteCounts::default(),
            Some(&seconds),
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
            &new_pattern(ONSET),
            &MinuteCounts::default(),
            Some(&seconds),
            &counters,
        );
        assert_eq!(doc.moved.len(), 1, "{doc:#?}");
    }

    #[test]
    fn a_port_ranks_above_the_node_wide_totals_that_moved_with_it() {
        let counters = CountersSnapshot {
            protocol_rates: vec![NamedSeries {
                total: None,
                name: "Tcp InSegs".into(),
                unit: "/s".into(),
                current: None,
                history: step(0.0, 17_417.0, ONSET - 1_000),
            }],
            ..snapshot(
                vec![socket(
                    37405,
                    PortSide::Remote,
                    SocketState::TimeWait,
                    step(0.0, 13_196.0, ONSET - 1_000),
                )],
                vec![named("TCP tw", step(0.0, 13_394.0, ONSET - 1_000))],
            )
        };
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
        for p in &mut series.points[576..579] {
            *p = Some(600.0);
        }
        for p in &mut series.points[595..] {
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
        for i in 600..602 {
            blip.points[i] = Some(5000.0);
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
        let empty = CountersSnapshot::default();
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
        let mut points = step(0.0, 300.0, ONSET - 1_000).points;
        for p in &mut points[..599] {
            *p = None;
        }
        let counters = snapshot(
            vec![socket(
                41234,
                PortSide::Local,
                SocketState::TimeWait,
                Series {
                    points,
                    delta_1m: None,
                },
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
        summary.emergence = Some(Emergence {
            kind: EmergenceKind::Surge,
            reason: "surge".into(),
            score: 8.0,
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
        let doc = what_moved(
            &summary,
            &MinuteCounts::default(),
            Some(&seconds),
            &counters,
        );
        assert_eq!(doc.onset_unix_ms, burst, "{doc:#?}");
        assert_eq!(doc.moved[0].lead_ms, -3_000);
        assert!(doc.moved[0].evidence.contains("3 s before the surge began"));

        // Only per-minute counts: the onset stays at the minute, and the answer says so.
        let per_minute = MinuteCounts {
            start_unix_ms: START,
            counts: (0..15).map(|m| if m >= 10 { 2400 } else { 60 }).collect(),
        };
        let doc = what_moved(&summary, &per_minute, None, &counters);
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
        let totals_only = snapshot(vec![], counters.sockstat.clone());
        let doc = run(&new_pattern(ONSET), &totals_only, ONSET);
        assert_eq!(doc.moved.len(), 4, "{doc:#?}");
    }

    #[test]
    fn every_family_of_counters_is_examined() {
        let mut counters = snapshot(vec![], vec![named("TCP tw", step(5.0, 3000.0, ONSET))]);
        counters.protocol_rates = vec![NamedSeries {
            total: None,
            name: "TcpExt ListenOverflows".into(),
            unit: "/s".into(),
            current: None,
            history: step(0.0, 250.0, ONSET + 1_000),
        }];
        counters.processes = vec![ProcessSeries {
            pid: 42,
            name: "orders".into(),
            fds: step(100.0, 100.0, ONSET),
            threads: step(12.0, 12.0, ONSET),
            rss_bytes: Series::default(),
            current: None,
            error: None,
        }];
        counters.tasks = vec![TaskSeries {
            target: "orders".into(),
            current: None,
            history: step(80.0, 5000.0, ONSET + 10_000),
            error: None,
            source: "pprof".into(),
            last_success_unix_ms: None,
            last_value: None,
        }];
        // A listener whose service stopped accepting: two addresses, one history per port.
        let queue = ListenQueue {
            address: "0.0.0.0".into(),
            port: 8080,
            queue: 128,
            backlog: Some(128),
            fill: Some(1.0),
            history: step(0.0, 128.0, ONSET - 2_000),
        };
        counters.listeners = vec![
            queue.clone(),
            ListenQueue {
                address: "::".into(),
                ..queue
            },
        ];
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
            queue.is_some_and(|m| m.evidence.starts_with("accept queue :8080 rose 0 → 128")),
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
