//! The statistics every judgement of a counter series shares: its usual level and noise over a
//! baseline window, the band around it, the change point where it leaves that band and stays
//! out, and rank correlation with another series.
//!
//! "What moved with it" ([`crate::moved`]) and the counter anomalies build on these, so a
//! series that "moved with" a pattern and a series that "broke from its baseline" are judged by
//! the same numbers. Everything here is a pure function over points on one regular time axis
//! ([`Axis`]); a missing point (`None`) is a gap, never a zero. Costs are linear in the points
//! examined, plus one sort of the baseline and of the level after a change.
//!
//! The method, for a series with a baseline window and a search window:
//!
//! - **Baseline.** Median level `m` and noise `σ = max(1.4826·MAD, √(|m|+1))`. The MAD makes
//!   a series that wobbles wide; the Poisson floor keeps a flat series (MAD 0) from turning a
//!   change of one socket into a move: every series here is a count or a count per second.
//! - **Change point.** The first sample in the search window where the series leaves the band
//!   `m ± BAND_Z·σ` and stays out for [`PERSIST`] samples, having been inside it for the
//!   [`PERSIST`] samples before, and where the change holds: at least [`SETTLE_SHARE`] of the
//!   [`SETTLE_POINTS`] samples from there on are out of the band. A series already out of its
//!   band when the window opens moved earlier and is not dated inside it.
//! - **Size.** The level after the change is the median from the change point over at most
//!   [`AFTER_MS`]; `score = |after − m| / σ`. It is a move when `score ≥ MIN_SCORE` in the
//!   direction it left the band and the change is at least the caller's minimum. Where it got
//!   to is the 95th percentile of that window (5th for a fall), which a ramp reaches and a
//!   single odd sample does not set.

use faultline_series::SeriesKey;

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
/// Scale of the MAD that makes it estimate σ for Gaussian noise.
pub const MAD_TO_SIGMA: f64 = 1.4826;
/// Fewest paired points for a correlation.
pub const MIN_CORRELATION_POINTS: usize = 10;

/// Seconds a service's traffic point averages (see
/// [`faultline_series::SeriesKey::ServiceTraffic`]): one second of a 20/s service is Poisson
/// noise of ±4.6, so a fall to none is only 4.4σ and never a move; the mean of five has the
/// noise of the five seconds' sum, and the same fall is about 10σ. Five seconds keeps a fall
/// visible within seconds.
pub const TRAFFIC_MEAN_SECONDS: usize = 5;

/// How many seconds' counts one point of `key` averages: [`TRAFFIC_MEAN_SECONDS`] for a
/// service's traffic, else 1 (a count, or a per-second rate over one interval).
pub fn counts_per_point(key: &SeriesKey) -> f64 {
    match key {
        SeriesKey::ServiceTraffic { .. } => TRAFFIC_MEAN_SECONDS as f64,
        _ => 1.0,
    }
}

/// The Poisson floor of the noise of a level `level` whose points average `counts_per_point`
/// counts: `√((|level| + 1) / n)`.
pub fn poisson_floor(level: f64, counts_per_point: f64) -> f64 {
    ((level.abs() + 1.0) / counts_per_point.max(1.0)).sqrt()
}

/// A regular time axis: point `i` is at `start + i * step` (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Axis {
    /// Time of the first point (Unix ms).
    pub start: i64,
    /// Time between points (ms, >= 1).
    pub step: i64,
    /// Number of points.
    pub len: usize,
}

impl Axis {
    /// Time of point `i` (Unix ms).
    pub fn time(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }

    /// Time of the last point (the first when empty).
    pub fn end(&self) -> i64 {
        self.time(self.len.saturating_sub(1))
    }

    /// Index of the first point at or after `t` (may be `len`).
    pub fn at_or_after(&self, t: i64) -> usize {
        if t <= self.start {
            return 0;
        }
        let i = (t - self.start + self.step - 1) / self.step;
        usize::try_from(i).unwrap_or(usize::MAX).min(self.len)
    }
}

/// The baseline and search windows around an onset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// Start of the baseline window (Unix ms); it ends at `search_start`.
    pub baseline_start: i64,
    /// Start of the search window (Unix ms).
    pub search_start: i64,
    /// End of the search window (Unix ms).
    pub search_end: i64,
    /// The level after a change is measured up to here at most (also bounded by the change).
    pub after_end: i64,
}

impl Windows {
    /// The search window from [`MAX_LEAD_MS`] before `onset` to [`MAX_LAG_MS`] after it, with
    /// the [`BASELINE_MS`] before it as the baseline. When the history starts later, the
    /// search window starts later so that the baseline keeps [`MIN_BASELINE_POINTS`]; `None`
    /// when that would pass the onset or the history ends before it.
    pub fn around(axis: Axis, onset: i64) -> Option<Windows> {
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

/// The usual level of a series and its noise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baseline {
    /// Median of the baseline points.
    pub level: f64,
    /// The larger of the scaled MAD and the Poisson floor `√(|level| + 1)`.
    pub noise: f64,
}

impl Baseline {
    /// The baseline of `values` (reordered in place); level 0 and noise 1 for none.
    pub fn of(values: &mut [f64]) -> Baseline {
        Baseline::of_means(values, 1.0)
    }

    /// The baseline of `values` that are each the mean of `counts_per_point` seconds' counts
    /// (see [`counts_per_point`]): their Poisson floor is `√((|m|+1)/n)`.
    pub fn of_means(values: &mut [f64], counts_per_point: f64) -> Baseline {
        let level = median(values);
        let mut dev: Vec<f64> = values.iter().map(|v| (v - level).abs()).collect();
        let noise = (MAD_TO_SIGMA * median(&mut dev)).max(poisson_floor(level, counts_per_point));
        Baseline { level, noise }
    }

    /// Half-width of the usual band: [`BAND_Z`] × noise.
    pub fn band(&self) -> f64 {
        BAND_Z * self.noise
    }

    /// 1 above the band, -1 below it, 0 inside.
    pub fn side(&self, v: f64) -> i8 {
        let band = self.band();
        if v > self.level + band {
            1
        } else if v < self.level - band {
            -1
        } else {
            0
        }
    }
}

/// A change of level found by [`judge`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Move {
    /// The baseline level.
    pub before: f64,
    /// Median level from the change over at most [`AFTER_MS`].
    pub after: f64,
    /// Where it got to: the 95th percentile of that window (5th for a fall).
    pub reached: f64,
    /// `after - before`.
    pub change: f64,
    /// `|change|` in noise units.
    pub score: f64,
    /// When the series left its band (Unix ms, a point's time).
    pub changed_at: i64,
}

/// Known points of the baseline window of `w`.
pub fn baseline_points(axis: Axis, w: &Windows, points: &[Option<f64>]) -> usize {
    let from = axis.at_or_after(w.baseline_start);
    let to = axis.at_or_after(w.search_start).min(points.len());
    points[from.min(to)..to].iter().flatten().count()
}

/// The first change point of `points` in the search window of `w` that is a move of at least
/// `min_change` (see the module documentation); `None` when the series did not move (or
/// cannot be judged). `need_baseline` is false for a pattern's own rate, whose seconds
/// without events are zeros, not gaps: any baseline point then suffices.
pub fn judge(
    axis: Axis,
    w: &Windows,
    points: &[Option<f64>],
    need_baseline: bool,
    min_change: f64,
) -> Option<Move> {
    judge_means(axis, w, points, need_baseline, min_change, 1.0)
}

/// [`judge`] for a series whose points are each the mean of `counts_per_point` seconds'
/// counts (a service's traffic): its noise floor is that of the mean.
pub fn judge_means(
    axis: Axis,
    w: &Windows,
    points: &[Option<f64>],
    need_baseline: bool,
    min_change: f64,
    counts_per_point: f64,
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
    let baseline = Baseline::of_means(&mut base, counts_per_point);
    let (level, noise) = (baseline.level, baseline.noise);
    let side = |v: f64| baseline.side(v);

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
pub fn percentile_index(len: usize, q: f64) -> usize {
    ((q * len as f64).ceil() as usize).clamp(1, len.max(1)) - 1
}

/// Median of `values` (sorted in place); 0 for none.
pub fn median(values: &mut [f64]) -> f64 {
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

/// Sum of each point and the `n - 1` before it.
pub fn trailing_sum(values: &[f64], n: usize) -> Vec<f64> {
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

/// Spearman rank correlation over the points where `a` is known; `None` with fewer than
/// [`MIN_CORRELATION_POINTS`] points or when either side is constant.
pub fn spearman(a: &[Option<f64>], b: &[f64]) -> Option<f64> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_series_gets_the_poisson_floor_and_ranks_ties_evenly() {
        let b = Baseline::of(&mut [12.0; 40]);
        assert_eq!(b.level, 12.0);
        assert!((b.noise - 13f64.sqrt()).abs() < 1e-12);
        assert_eq!((b.side(12.0 + b.band() + 0.1), b.side(12.0)), (1, 0));
        assert_eq!(ranks(vec![3.0, 1.0, 3.0]), [1.5, 0.0, 1.5]);
        let up: Vec<Option<f64>> = (0..12).map(|i| Some(f64::from(i))).collect();
        let rate: Vec<f64> = (0..12).map(|i| f64::from(i * i)).collect();
        assert_eq!(spearman(&up, &rate), Some(1.0));
        assert_eq!(spearman(&up[..5], &rate[..5]), None);
    }

    #[test]
    fn a_step_is_dated_to_its_first_sample_out_of_the_band() {
        let axis = Axis {
            start: 0,
            step: 1_000,
            len: 400,
        };
        let points: Vec<Option<f64>> = (0..400)
            .map(|i| Some(if i < 350 { 10.0 } else { 500.0 }))
            .collect();
        let w = Windows::around(axis, 350_000).expect("history around the onset");
        assert_eq!(baseline_points(axis, &w, &points), 290);
        let m = judge(axis, &w, &points, true, 0.0).expect("a move");
        assert_eq!((m.changed_at, m.before, m.after), (350_000, 10.0, 500.0));
        assert!(judge(axis, &w, &points, true, 1_000.0).is_none());
    }
}
