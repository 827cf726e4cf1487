//! Bounded history of every counter at two resolutions: one point per sample (1 s by default)
//! for the last 15 minutes, one point per minute for the last 24 hours.
//!
//! All series share two time axes, so a point of one series lines up with the same point of
//! every other. A series that was not sampled at some tick (a port that left the top N, a task
//! target whose scrape failed) holds a gap there — shown as `null`, never as zero. Each minute
//! point of a gauge is the *peak* of the minute, so a 5-second storm is not averaged away; a rate
//! keeps the minute's mean ([`SeriesKey::is_rate`] says which a series is).
//!
//! Series are identified by their typed [`SeriesKey`], the one vocabulary the diagnosis, the
//! API and the dashboard share: nothing here names a series with a string.
//!
//! Memory is bounded by `max_series` × (seconds + minutes) points whatever the node does: when a
//! new series would pass the bound, the series seen least recently is evicted (counted in
//! [`History::evicted`]); a series not seen for longer than both windows is dropped. A series
//! stores only the points from its first known one to its last on each axis ([`Points`]): the
//! gaps before it came and after it left are implied, not stored. So a port group that was
//! among the busiest for a minute an hour ago costs its few minute points, not 900 empty
//! sample slots and a day of empty minute slots, for the day it is kept; and a ring never
//! holds more room than its cap (it grows by doubling up to the cap, not past it, and gives
//! back room it no longer needs).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Range;

use faultline_series::SeriesKey;
use serde::{Serialize, Serializer};

use super::saved::{SavedHistory, SavedSeries};

/// One series' points on one of the shared axes, stored from its first known point to its
/// last: the axis positions before and after are gaps (`NaN`) without being stored. Axis
/// positions count the points the axis ever had (the history's sample count, or its closed
/// minutes), so a position names the same point for every series.
#[derive(Debug, Default)]
struct Points {
    values: VecDeque<f32>,
    /// The axis position just after the last stored value.
    end: u64,
}

impl Points {
    /// The axis position of the first stored value.
    fn start(&self) -> u64 {
        self.end - self.values.len() as u64
    }

    /// Sets the point at axis position `at`, after every stored one; the positions between
    /// are gaps. A value that is not finite is a gap itself: nothing is stored. At most `cap`
    /// values are kept (the oldest go), and the ring's room never grows past `cap`.
    fn push(&mut self, at: u64, value: f32, cap: usize) {
        if !value.is_finite() || at < self.end {
            return;
        }
        let gap = at - self.end;
        if self.values.is_empty() || gap >= cap as u64 {
            self.values.clear();
        } else {
            for _ in 0..gap {
                self.push_back(f32::NAN, cap);
            }
        }
        self.push_back(value, cap);
        self.end = at + 1;
    }

    fn push_back(&mut self, value: f32, cap: usize) {
        if self.values.len() >= cap {
            self.values.pop_front();
        } else if self.values.len() == self.values.capacity() {
            // Doubling as a Vec does, but never past the cap: a full ring of 900 points would
            // otherwise hold room for 1,800.
            let room = (self.values.capacity() * 2).max(4).min(cap);
            self.values.reserve_exact(room - self.values.len());
        }
        self.values.push_back(value);
    }

    /// Forgets the values before axis position `from` (the axis' oldest kept point), and
    /// gives back room that is mostly unused.
    fn trim(&mut self, from: u64) {
        let start = self.start();
        if from <= start {
            return;
        }
        let n =
            usize::try_from(from - start).map_or(self.values.len(), |n| n.min(self.values.len()));
        self.values.drain(..n);
        // Leading gaps are implied: a series' stored points start at a known one.
        while self.values.front().is_some_and(|v| !v.is_finite()) {
            self.values.pop_front();
        }
        if self.values.capacity() > 8 && self.values.len() < self.values.capacity() / 4 {
            self.values.shrink_to(self.values.len() * 2);
        }
    }

    /// The point at axis position `at` (`NaN` when none is stored there).
    fn get(&self, at: u64) -> f32 {
        at.checked_sub(self.start())
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.values.get(i))
            .copied()
            .unwrap_or(f32::NAN)
    }

    /// Whether a known point is stored at one of the axis positions `from..to`.
    fn has_point_in(&self, from: u64, to: u64) -> bool {
        let (start, end) = (self.start().max(from), self.end.min(to));
        // The first and last stored values are known points: only a gap inside the stored
        // ones can cover the whole range.
        start < end && self.range(start, end).any(f32::is_finite)
    }

    /// The points at axis positions `from..to`, gaps as `NaN`.
    fn range(&self, from: u64, to: u64) -> impl Iterator<Item = f32> + '_ {
        (from..to).map(|at| self.get(at))
    }

    /// The points at axis positions `from..to` copied in bulk, gaps as `NaN`.
    fn copy(&self, from: u64, to: u64) -> Vec<f32> {
        let len = usize::try_from(to.saturating_sub(from)).unwrap_or(0);
        let mut out = Vec::with_capacity(len);
        let (start, end) = (self.start().clamp(from, to), self.end.clamp(from, to));
        out.resize(usize::try_from(start - from).unwrap_or(0), f32::NAN);
        if start < end {
            let skip = usize::try_from(start - self.start()).unwrap_or(0);
            let take = usize::try_from(end - start).unwrap_or(0);
            let (a, b) = self.values.as_slices();
            if skip < a.len() {
                let from_a = (a.len() - skip).min(take);
                out.extend_from_slice(&a[skip..skip + from_a]);
                out.extend_from_slice(&b[..take - from_a]);
            } else {
                out.extend_from_slice(&b[skip - a.len()..skip - a.len() + take]);
            }
        }
        out.resize(len, f32::NAN);
        out
    }

    /// The points at axis positions `from..to`, gaps as `None`, read slice by slice: a
    /// snapshot of every series (12,000 on a busy node) reads them all under the store's
    /// lock, and [`Points::get`] per point took most of that.
    fn known(&self, from: u64, to: u64) -> Vec<Option<f32>> {
        let len = usize::try_from(to.saturating_sub(from)).unwrap_or(0);
        let mut out = Vec::with_capacity(len);
        let (start, end) = (self.start().clamp(from, to), self.end.clamp(from, to));
        out.resize(usize::try_from(start - from).unwrap_or(0), None);
        if start < end {
            let skip = usize::try_from(start - self.start()).unwrap_or(0);
            let take = usize::try_from(end - start).unwrap_or(0);
            let (a, b) = self.values.as_slices();
            let known = |v: &f32| v.is_finite().then_some(*v);
            if skip < a.len() {
                let from_a = (a.len() - skip).min(take);
                out.extend(a[skip..skip + from_a].iter().map(known));
                out.extend(b[..take - from_a].iter().map(known));
            } else {
                out.extend(b[skip - a.len()..skip - a.len() + take].iter().map(known));
            }
        }
        out.resize(len, None);
        out
    }

    /// Points laid on axis positions `start..` (`NaN` or `None` for a gap), as a restore
    /// gives them.
    fn from_points(start: u64, points: impl Iterator<Item = f32>) -> Points {
        let mut out = Points::default();
        for (i, v) in points.enumerate() {
            out.push(start + i as u64, v, usize::MAX);
        }
        out
    }

    /// Values stored (known points and the gaps between them).
    fn stored(&self) -> usize {
        self.values.len()
    }

    /// Room the ring holds, in points.
    fn room(&self) -> usize {
        self.values.capacity()
    }
}

/// One series' points on both axes.
#[derive(Debug)]
struct Series {
    /// A rate's minute point is the minute's mean; a level's its peak.
    rate: bool,
    seconds: Points,
    minutes: Points,
    minute_peak: f32,
    minute_sum: f64,
    minute_points: u32,
    last_seen_tick: u64,
}

impl Series {
    /// A series with no point yet.
    fn new(rate: bool) -> Series {
        Series {
            rate,
            seconds: Points::default(),
            minutes: Points::default(),
            minute_peak: f32::NAN,
            minute_sum: 0.0,
            minute_points: 0,
            last_seen_tick: 0,
        }
    }

    /// Records `value` as the point of sample number `tick` (axis position `tick - 1`); the
    /// same series twice in one sample keeps the first.
    fn put(&mut self, tick: u64, value: f64, cap: usize) {
        if self.last_seen_tick == tick {
            return;
        }
        self.last_seen_tick = tick;
        let v = value as f32;
        self.seconds.push(tick - 1, v, cap);
        if v.is_finite() {
            self.minute_peak = if self.minute_peak.is_nan() {
                v
            } else {
                self.minute_peak.max(v)
            };
            self.minute_sum += value;
            self.minute_points += 1;
        }
    }
}

/// The two-resolution history of all series.
#[derive(Debug)]
pub struct History {
    second_cap: usize,
    minute_cap: usize,
    max_series: usize,
    second_times: VecDeque<i64>,
    minute_times: VecDeque<i64>,
    current_minute: Option<i64>,
    /// Sample points recorded so far: the axis position after the newest sample point.
    tick: u64,
    /// Minutes closed so far: the axis position after the newest minute point.
    minute_tick: u64,
    series: HashMap<SeriesKey, Series>,
    evicted: u64,
    /// Changes whenever points already recorded may read otherwise, other than by the
    /// removals in `removed` (see [`History::generation`]).
    generation: u64,
    /// Series removed (evicted, dropped or forgotten), oldest first, each with the number of
    /// the first sample recorded without it: what a reader that keeps the points it read
    /// must leave out ([`History::removed_after`]). Bounded: at most `max_series` entries,
    /// none older than the sample ring.
    removed: VecDeque<(u64, SeriesKey)>,
    /// `removed` lists every removal after this sample number (earlier ones left the log).
    removed_since: u64,
}

/// What a restore keeps of a saved history ([`History::restore_bounds`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreBounds {
    /// The sample times kept (indexes into the saved ones).
    pub seconds: Range<usize>,
    /// The minutes kept.
    pub minutes: Range<usize>,
    /// At most this many series are kept: those seen most recently (the position of their
    /// last sample point among the kept ones), the first in key order among equals.
    pub max_series: usize,
}

/// The points of some series at one resolution, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryView {
    /// Seconds between points.
    pub resolution_seconds: u64,
    /// Unix time of each point, in milliseconds (for minutes: the start of the minute).
    pub times_unix_ms: Vec<i64>,
    /// Values by series, aligned with `times_unix_ms`; `null` where not sampled. A series
    /// with no point at any of these times is left out: the store keeps a series up to a day
    /// after it was last seen, and a reader that keeps the view (the diagnosis) would hold
    /// every such series as a window of `null`s (7 KB each over 15 minutes). Serialised
    /// as a list of `{"key": <SeriesKey>, "points": [...]}` (a JSON map needs string keys).
    #[serde(serialize_with = "keyed_list")]
    pub series: BTreeMap<SeriesKey, Vec<Option<f32>>>,
}

/// A [`HistoryView`] whose series are not in key order yet: what a reader copies under the
/// store's lock, put in order ([`UnsortedView::sorted`]) once the lock is released. Sorting
/// the keys of 12,000 series was a third of the counters document's time under the lock
/// (`cargo bench -p faultline --bench counters_document`).
#[derive(Debug, Clone)]
pub struct UnsortedView {
    resolution_seconds: u64,
    times_unix_ms: Vec<i64>,
    series: Vec<(SeriesKey, Vec<Option<f32>>)>,
}

impl UnsortedView {
    /// The view, its series in key order.
    pub fn sorted(self) -> HistoryView {
        let mut series = self.series;
        series.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        HistoryView {
            resolution_seconds: self.resolution_seconds,
            times_unix_ms: self.times_unix_ms,
            series: series.into_iter().collect(),
        }
    }
}

/// The sample points of some series as the history stores them: each series from its first
/// known point among the view's times to its last, the slots before and after implied gaps.
/// What a reader that keeps the whole per-sample window (the diagnosis) reads it in full as:
/// a [`HistoryView`] holds a slot for every time of every series (7.2 KB a series over 15
/// minutes), while a series of a port that came and went lives a minute or two of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KnownView {
    /// Unix time of each point, in milliseconds, oldest first.
    pub times_unix_ms: Vec<i64>,
    /// Every series with a point among the times, in no particular order.
    pub series: Vec<KnownSeries>,
}

/// One series of a [`KnownView`].
#[derive(Debug, Clone, PartialEq)]
pub struct KnownSeries {
    /// Which series.
    pub key: SeriesKey,
    /// The index among the view's times of the first value.
    pub first: usize,
    /// The points from the first known one to the last, `NaN` where not sampled.
    pub values: Vec<f32>,
}

/// Serialises a map with typed keys as a list of `{key, points}` objects.
fn keyed_list<S: Serializer>(
    series: &BTreeMap<SeriesKey, Vec<Option<f32>>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Keyed<'a> {
        key: &'a SeriesKey,
        points: &'a [Option<f32>],
    }
    serializer.collect_seq(series.iter().map(|(key, points)| Keyed { key, points }))
}

impl History {
    /// An empty history keeping `second_cap` sample points and `minute_cap` minute points of at
    /// most `max_series` series.
    pub fn new(second_cap: usize, minute_cap: usize, max_series: usize) -> History {
        History {
            second_cap: second_cap.max(1),
            minute_cap: minute_cap.max(1),
            max_series: max_series.max(1),
            second_times: VecDeque::new(),
            minute_times: VecDeque::new(),
            current_minute: None,
            tick: 0,
            minute_tick: 0,
            series: HashMap::new(),
            evicted: 0,
            generation: 0,
            removed: VecDeque::new(),
            removed_since: 0,
        }
    }

    /// Changes whenever points already recorded may read otherwise, other than by a series
    /// removed: a restore, samples absorbed. Appending a sample (new series included: gaps
    /// before their first point) and the oldest points leaving the rings do not change it. A
    /// reader that keeps the points it read and asks only for newer ones
    /// ([`History::seconds_after`]) reads them all again when it changed, and leaves out the
    /// series removed since ([`History::removed_after`]).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The series `keep` accepts that were removed (evicted, dropped or forgotten) after
    /// sample number `after` (see [`History::tick`]), or `None` when the log of removals no
    /// longer reaches back that far. A reader keeping the points it read until sample
    /// `after` leaves these series out before it adds the points recorded since
    /// ([`History::seconds_after`]): one recorded again under its key lists only its new
    /// points there. Before this log a removal changed the generation, and at the series
    /// bound, where a node's port churn evicts a series every few seconds, the diagnosis read
    /// the whole history (1,024 series × 900 points) again at nearly every pass.
    pub fn removed_after(
        &self,
        keep: impl Fn(&SeriesKey) -> bool,
        after: u64,
    ) -> Option<Vec<SeriesKey>> {
        if after < self.removed_since {
            return None;
        }
        Some(
            self.removed
                .iter()
                .rev()
                .take_while(|(at, _)| *at > after)
                .filter(|(_, key)| keep(key))
                .map(|(_, key)| key.clone())
                .collect(),
        )
    }

    /// Logs `key` as removed before sample number `at` (the `removed` log).
    fn note_removed(&mut self, at: u64, key: SeriesKey) {
        self.removed.push_back((at, key));
        self.trim_removed();
    }

    /// Keeps the log of removals within its bounds.
    fn trim_removed(&mut self) {
        let oldest_kept = self.tick.saturating_sub(self.second_cap as u64);
        while let Some(first) = self.removed.front().map(|(at, _)| *at) {
            if self.removed.len() <= self.max_series && first > oldest_kept {
                break;
            }
            self.removed.pop_front();
            self.removed_since = self.removed_since.max(first);
        }
    }

    /// Makes this history's generation differ from `other`'s (this one replaces it).
    pub fn follows(&mut self, other: &History) {
        self.generation = self.generation.max(other.generation).wrapping_add(1);
    }

    /// Number of the newest sample recorded (1 for the first; a restore numbers the restored
    /// samples from 1): the sample point `k` places before the newest is sample `tick - k`.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Sample points kept (the per-sample ring's length).
    pub fn sample_points(&self) -> usize {
        self.second_times.len()
    }

    /// Whether the series is being kept.
    pub fn contains(&self, key: &SeriesKey) -> bool {
        self.series.contains_key(key)
    }

    /// The keys of every series kept, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &SeriesKey> {
        self.series.keys()
    }

    /// Every series `keep` accepts with its highest point over both resolutions (the minute
    /// in progress included); `None` for a series with no point at all. Only the accepted
    /// series' points are read: a snapshot asks for the port groups that left the top ports,
    /// once a second, and the minute ring holds up to a day of points per series.
    pub fn peaks(
        &self,
        keep: impl Fn(&SeriesKey) -> bool,
    ) -> impl Iterator<Item = (&SeriesKey, Option<f32>)> {
        self.series
            .iter()
            .filter(move |(key, _)| keep(key))
            .map(|(key, s)| {
                let peak = s
                    .seconds
                    .values
                    .iter()
                    .chain(&s.minutes.values)
                    .chain(std::iter::once(&s.minute_peak))
                    .copied()
                    .filter(|v| v.is_finite())
                    .reduce(f32::max);
                (key, peak)
            })
    }

    /// The time of the newest sample point, if any.
    pub fn newest_sample_time(&self) -> Option<i64> {
        self.second_times.back().copied()
    }

    /// Series evicted so far to respect the bound.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The number of series kept.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether no series is kept.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Records one sample taken at `time_unix_ms`. Series absent from `values` get a gap at this
    /// point. Samples must come in time order; one older than the last is ignored.
    pub fn record(&mut self, time_unix_ms: i64, values: &[(SeriesKey, f64)]) {
        if self
            .second_times
            .back()
            .is_some_and(|&last| time_unix_ms < last)
        {
            return;
        }
        let minute = time_unix_ms.div_euclid(60_000);
        if let Some(current) = self.current_minute {
            if current != minute {
                self.close_minute(current);
            }
        }
        self.current_minute = Some(minute);
        self.tick += 1;
        push_capped(&mut self.second_times, time_unix_ms, self.second_cap);
        self.trim_removed();

        let (tick, cap) = (self.tick, self.second_cap);
        for (key, value) in values {
            // One lookup for a series already kept (all but a few of a busy node's 12,000
            // series at each sample); the key is cloned only for a new one.
            if let Some(series) = self.series.get_mut(key) {
                series.put(tick, *value, cap);
                continue;
            }
            if !self.make_room() {
                continue;
            }
            let mut series = Series::new(key.is_rate());
            series.put(tick, *value, cap);
            self.series.insert(key.clone(), series);
        }
        // One pass over every series: those not seen for longer than both windows go, the
        // others forget the points before the oldest sample kept.
        let horizon = (self.second_cap as u64).saturating_add(self.minute_cap as u64 * 60);
        let oldest = self.second_start();
        let mut gone = Vec::new();
        self.series.retain(|key, series| {
            if tick.saturating_sub(series.last_seen_tick) > horizon {
                gone.push(key.clone());
                return false;
            }
            series.seconds.trim(oldest);
            true
        });
        for key in gone {
            self.note_removed(tick, key);
        }
    }

    /// The axis position of the oldest sample point kept.
    fn second_start(&self) -> u64 {
        self.tick - self.second_times.len() as u64
    }

    /// The axis position of the oldest minute point kept.
    fn minute_start(&self) -> u64 {
        self.minute_tick - self.minute_times.len() as u64
    }

    /// Points stored over every series and both axes (known points and the gaps between a
    /// series' first and last known ones), and the room their rings hold: what the history
    /// costs, a few bytes a point.
    pub fn stored_points(&self) -> (usize, usize) {
        self.series.values().fold((0, 0), |(n, room), s| {
            (
                n + s.seconds.stored() + s.minutes.stored(),
                room + s.seconds.room() + s.minutes.room(),
            )
        })
    }

    /// Evicts the least recently seen series if the bound is reached; false when every series
    /// was seen in this very sample (the new one is then not kept).
    fn make_room(&mut self) -> bool {
        if self.series.len() < self.max_series {
            return true;
        }
        let oldest = self
            .series
            .iter()
            .filter(|(_, s)| s.last_seen_tick < self.tick)
            .min_by_key(|(_, s)| s.last_seen_tick)
            .map(|(key, _)| key.clone());
        self.evicted += 1;
        match oldest {
            Some(key) => {
                self.series.remove(&key);
                self.note_removed(self.tick, key);
                true
            }
            None => false,
        }
    }

    /// Folds the points of `minute` into one minute point per series.
    fn close_minute(&mut self, minute: i64) {
        push_capped(&mut self.minute_times, minute * 60_000, self.minute_cap);
        self.minute_tick += 1;
        let (at, oldest) = (self.minute_tick - 1, self.minute_start());
        for series in self.series.values_mut() {
            let point = if !series.rate {
                series.minute_peak
            } else if series.minute_points > 0 {
                (series.minute_sum / f64::from(series.minute_points)) as f32
            } else {
                f32::NAN
            };
            series.minutes.push(at, point, self.minute_cap);
            series.minutes.trim(oldest);
            series.minute_peak = f32::NAN;
            series.minute_sum = 0.0;
            series.minute_points = 0;
        }
    }

    /// The last `max_points` sample points of the series `keep` accepts.
    pub fn seconds(
        &self,
        keep: impl Fn(&SeriesKey) -> bool,
        max_points: usize,
        resolution_seconds: u64,
    ) -> HistoryView {
        self.view(keep, max_points, resolution_seconds, true)
            .sorted()
    }

    /// The sample points after sample number `after` (see [`History::tick`]), at most
    /// `max_points`, of the series `keep` accepts that have a point among them, each with as
    /// many points as the view's times (no series when nothing is newer). What a reader that
    /// keeps the points it read copies under the store's lock: a kept series missing here had
    /// no point since.
    pub fn seconds_after(
        &self,
        keep: impl Fn(&SeriesKey) -> bool,
        after: u64,
        max_points: usize,
        resolution_seconds: u64,
    ) -> HistoryView {
        self.seconds_after_unsorted(keep, after, max_points, resolution_seconds)
            .sorted()
    }

    /// [`History::seconds_after`] before its series are put in order (see
    /// [`UnsortedView`]).
    pub fn seconds_after_unsorted(
        &self,
        keep: impl Fn(&SeriesKey) -> bool,
        after: u64,
        max_points: usize,
        resolution_seconds: u64,
    ) -> UnsortedView {
        let newer = usize::try_from(self.tick.saturating_sub(after)).unwrap_or(usize::MAX);
        self.view(keep, newer.min(max_points), resolution_seconds, true)
    }

    /// [`History::seconds`] before its series are put in order (see [`UnsortedView`]).
    pub fn seconds_unsorted(
        &self,
        keep: impl Fn(&SeriesKey) -> bool,
        max_points: usize,
        resolution_seconds: u64,
    ) -> UnsortedView {
        self.view(keep, max_points, resolution_seconds, true)
    }

    /// The sample points of the series `keep` accepts as they are stored (see
    /// [`KnownView`]): the same points as [`History::seconds`] with every point, a copy of the
    /// stored ones only.
    pub fn seconds_known(&self, keep: impl Fn(&SeriesKey) -> bool) -> KnownView {
        let (from, to) = (self.second_start(), self.tick);
        let series = self
            .series
            .iter()
            .filter(|(key, _)| keep(key))
            .filter_map(|(key, s)| {
                let points = &s.seconds;
                let (start, end) = (points.start().max(from), points.end.min(to));
                // Stored values start and end at known points, but the window may cut them
                // inside a gap.
                let start = (start..end).find(|&at| points.get(at).is_finite())?;
                let end = (start..end).rev().find(|&at| points.get(at).is_finite())? + 1;
                Some(KnownSeries {
                    key: key.clone(),
                    first: usize::try_from(start - from).ok()?,
                    values: points.copy(start, end),
                })
            })
            .collect();
        KnownView {
            times_unix_ms: self.second_times.iter().copied().collect(),
            series,
        }
    }

    /// The last `max_points` minute points (closed minutes only) of the series `keep`
    /// accepts.
    pub fn minutes(&self, keep: impl Fn(&SeriesKey) -> bool, max_points: usize) -> HistoryView {
        self.minutes_unsorted(keep, max_points).sorted()
    }

    /// [`History::minutes`] before its series are put in order (see [`UnsortedView`]).
    pub fn minutes_unsorted(
        &self,
        keep: impl Fn(&SeriesKey) -> bool,
        max_points: usize,
    ) -> UnsortedView {
        self.view(keep, max_points, 60, false)
    }

    fn view(
        &self,
        keep: impl Fn(&SeriesKey) -> bool,
        max_points: usize,
        resolution: u64,
        seconds: bool,
    ) -> UnsortedView {
        let times = if seconds {
            &self.second_times
        } else {
            &self.minute_times
        };
        let skip = times.len().saturating_sub(max_points);
        let (from, to) = if seconds {
            (self.second_start(), self.tick)
        } else {
            (self.minute_start(), self.minute_tick)
        };
        let from = from + skip as u64;
        let series = self
            .series
            .iter()
            .filter(|(key, _)| keep(key))
            .filter_map(|(key, s)| {
                let points = if seconds { &s.seconds } else { &s.minutes };
                if !points.has_point_in(from, to) {
                    return None;
                }
                Some((key.clone(), points.known(from, to)))
            })
            .collect();
        UnsortedView {
            resolution_seconds: resolution,
            times_unix_ms: times.iter().skip(skip).copied().collect(),
            series,
        }
    }
}

impl History {
    /// The points worth keeping across a restart: the sample points taken at or after
    /// `seconds_since_unix_ms` and every closed minute, of the series `keep` accepts (see
    /// [`super::saved`]). The minute in progress is not closed: its sample points are saved,
    /// and [`History::restore`] folds them again.
    pub fn save(
        &self,
        keep: impl Fn(&SeriesKey) -> bool,
        seconds_since_unix_ms: i64,
    ) -> SavedHistory {
        let skip = self
            .second_times
            .iter()
            .take_while(|&&t| t < seconds_since_unix_ms)
            .count();
        let known = |v: f32| v.is_finite().then_some(v);
        let from = self.second_start() + skip as u64;
        let mut series: Vec<SavedSeries> = self
            .series
            .iter()
            .filter(|(key, _)| keep(key))
            .map(|(key, s)| SavedSeries {
                key: key.clone(),
                seconds: s.seconds.range(from, self.tick).map(known).collect(),
                minutes: s
                    .minutes
                    .range(self.minute_start(), self.minute_tick)
                    .map(known)
                    .collect(),
            })
            .filter(|s| s.seconds.iter().chain(&s.minutes).any(Option::is_some))
            .collect();
        series.sort_by(|a, b| a.key.cmp(&b.key));
        SavedHistory {
            second_times: self.second_times.iter().skip(skip).copied().collect(),
            minute_times: self.minute_times.iter().copied().collect(),
            series,
        }
    }

    /// What [`History::restore`] keeps of a saved history with these axes (see there): a
    /// reader of a saved history builds only that, so a large or hostile file costs no more
    /// memory than the history it restores.
    pub fn restore_bounds(
        &self,
        second_times: &[i64],
        minute_times: &[i64],
        seconds_from_unix_ms: i64,
        minutes_from_unix_ms: i64,
        now_unix_ms: i64,
    ) -> RestoreBounds {
        let window = |times: &[i64], from: i64, cap: usize| {
            let end = times.iter().take_while(|&&t| t <= now_unix_ms).count();
            let start = times[..end].iter().take_while(|&&t| t < from).count();
            start.max(end.saturating_sub(cap))..end
        };
        RestoreBounds {
            seconds: window(second_times, seconds_from_unix_ms, self.second_cap),
            minutes: window(minute_times, minutes_from_unix_ms, self.minute_cap),
            max_series: self.max_series,
        }
    }

    /// Fills an empty history with `saved` points (an agent's start), leaving out the sample
    /// points older than `seconds_from_unix_ms`, the minutes older than
    /// `minutes_from_unix_ms` and every point after `now_unix_ms` (a clock set back since: a
    /// point from the future would shut out every new sample), and keeping within the caps
    /// (the newest points, the most recently seen series). The samples recorded next follow
    /// them on the same axes, so the time the agent was down is a gap. Returns how many
    /// series, sample points and minute points were restored; refused (nothing changed) when
    /// the history already holds a sample.
    pub fn restore(
        &mut self,
        saved: SavedHistory,
        seconds_from_unix_ms: i64,
        minutes_from_unix_ms: i64,
        now_unix_ms: i64,
    ) -> Result<(usize, usize, usize), String> {
        if !self.second_times.is_empty() || !self.series.is_empty() {
            return Err("the history already holds samples".to_owned());
        }
        self.generation = self.generation.wrapping_add(1);
        let RestoreBounds {
            seconds, minutes, ..
        } = self.restore_bounds(
            &saved.second_times,
            &saved.minute_times,
            seconds_from_unix_ms,
            minutes_from_unix_ms,
            now_unix_ms,
        );
        self.second_times = saved.second_times[seconds.clone()]
            .iter()
            .copied()
            .collect();
        self.minute_times = saved.minute_times[minutes.clone()]
            .iter()
            .copied()
            .collect();
        self.tick = self.second_times.len() as u64;
        self.minute_tick = self.minute_times.len() as u64;
        let mut kept: Vec<(SeriesKey, Series)> = Vec::new();
        for s in saved.series {
            let (Some(sec), Some(min)) = (
                s.seconds.get(seconds.clone()),
                s.minutes.get(minutes.clone()),
            ) else {
                continue;
            };
            let nan = |v: &Option<f32>| v.filter(|v| v.is_finite()).unwrap_or(f32::NAN);
            let series = Series {
                rate: s.key.is_rate(),
                seconds: Points::from_points(0, sec.iter().map(nan)),
                minutes: Points::from_points(0, min.iter().map(nan)),
                minute_peak: f32::NAN,
                minute_sum: 0.0,
                minute_points: 0,
                // Seen at its last known sample point, or long before the first (minutes only).
                last_seen_tick: sec
                    .iter()
                    .rposition(Option::is_some)
                    .map_or(0, |i| i as u64 + 1),
            };
            if series.seconds.stored() + series.minutes.stored() > 0 {
                kept.push((s.key, series));
            }
        }
        kept.sort_by_key(|s| std::cmp::Reverse(s.1.last_seen_tick));
        kept.truncate(self.max_series);
        self.series = kept.into_iter().collect();
        // Minutes before the last sample's whose sample points were saved but whose minute
        // point was not (newer than the newest saved minute: a save whose minute log could
        // not be written): closed again from those points.
        if let Some(&last) = self.second_times.back() {
            let open = last.div_euclid(60_000);
            let newest = self.minute_times.back().copied();
            let mut i = 0;
            while i < self.second_times.len() {
                let minute = self.second_times[i].div_euclid(60_000);
                let end = i + self
                    .second_times
                    .range(i..)
                    .take_while(|&&t| t.div_euclid(60_000) == minute)
                    .count();
                if minute < open && newest.is_none_or(|m| m < minute * 60_000) {
                    push_capped(&mut self.minute_times, minute * 60_000, self.minute_cap);
                    self.minute_tick += 1;
                    let (at, oldest) = (self.minute_tick - 1, self.minute_start());
                    for s in self.series.values_mut() {
                        let points = s
                            .seconds
                            .range(i as u64, end as u64)
                            .filter(|v| v.is_finite());
                        let point = if s.rate {
                            let (sum, n) =
                                points.fold((0.0f64, 0u32), |(a, n), v| (a + f64::from(v), n + 1));
                            if n > 0 {
                                (sum / f64::from(n)) as f32
                            } else {
                                f32::NAN
                            }
                        } else {
                            points.reduce(f32::max).unwrap_or(f32::NAN)
                        };
                        s.minutes.push(at, point, self.minute_cap);
                        s.minutes.trim(oldest);
                    }
                }
                i = end;
            }
        }
        // The minute of the last sample is still open: its points are folded again, so the
        // minute closes with the peak of the samples before and after the restart.
        if let Some(&last) = self.second_times.back() {
            let minute = last.div_euclid(60_000);
            if self
                .minute_times
                .back()
                .is_none_or(|&m| m < minute * 60_000)
            {
                self.current_minute = Some(minute);
                let open = self
                    .second_times
                    .iter()
                    .rev()
                    .take_while(|&&t| t.div_euclid(60_000) == minute)
                    .count();
                let tick = self.tick;
                for s in self.series.values_mut() {
                    for v in s.seconds.range(tick - open as u64, tick) {
                        if v.is_finite() {
                            s.minute_peak = if s.minute_peak.is_nan() {
                                v
                            } else {
                                s.minute_peak.max(v)
                            };
                            s.minute_sum += f64::from(v);
                            s.minute_points += 1;
                        }
                    }
                }
            }
        }
        Ok((
            self.series.len(),
            self.second_times.len(),
            self.minute_times.len(),
        ))
    }

    /// Copies what a save writes, quickly (under the store's lock: bulk copies of the rings,
    /// nothing encoded or filtered): the sample points taken at or after
    /// `seconds_since_unix_ms`, and the closed minutes after `minutes_after_unix_ms` (`None`:
    /// every closed minute), of every series `keep` accepts. Points are `NaN` where a series
    /// was not sampled. See [`super::saved`] for what is kept and why.
    pub fn copy(
        &self,
        keep: impl Fn(&SeriesKey) -> bool,
        seconds_since_unix_ms: i64,
        minutes_after_unix_ms: Option<i64>,
    ) -> HistoryCopy {
        let seconds = self.second_times.len()
            - self
                .second_times
                .iter()
                .take_while(|&&t| t < seconds_since_unix_ms)
                .count();
        let minutes = match minutes_after_unix_ms {
            None => self.minute_times.len(),
            Some(after) => self
                .minute_times
                .iter()
                .rev()
                .take_while(|&&t| t > after)
                .count(),
        };
        let (tick, minute_tick) = (self.tick, self.minute_tick);
        let series = self
            .series
            .iter()
            .filter(|(key, _)| keep(key))
            .map(|(key, s)| CopiedSeries {
                key: key.clone(),
                seconds: s.seconds.copy(tick - seconds as u64, tick),
                minutes: s.minutes.copy(minute_tick - minutes as u64, minute_tick),
            })
            .collect();
        HistoryCopy {
            second_times: newest(&self.second_times, seconds),
            minute_times: newest(&self.minute_times, minutes),
            series,
        }
    }

    /// Takes in the samples of `live` (a history recorded while this one was being restored
    /// from disk, away from the store's lock): they follow this history's points on the
    /// same axes, as if recorded into it. Refused (nothing changed) when `live` has a sample
    /// older than this history's newest one: the two would not follow each other.
    pub fn absorb(&mut self, live: &History) -> Result<(), String> {
        if let (Some(&first), Some(&last)) = (live.second_times.front(), self.second_times.back()) {
            if first <= last {
                return Err(format!(
                    "the samples since the start (from {first}) do not follow the saved ones \
                     (until {last})"
                ));
            }
        }
        self.follows(live);
        let first = live.second_start();
        for (i, &time) in live.second_times.iter().enumerate() {
            let values: Vec<(SeriesKey, f64)> = live
                .series
                .iter()
                .filter_map(|(key, s)| {
                    let v = s.seconds.get(first + i as u64);
                    v.is_finite().then(|| (key.clone(), f64::from(v)))
                })
                .collect();
            self.record(time, &values);
        }
        self.evicted += live.evicted;
        Ok(())
    }

    /// Forgets every series `drop` accepts (a port whose past belongs to another process).
    pub fn forget(&mut self, drop: impl Fn(&SeriesKey) -> bool) -> usize {
        let gone: Vec<SeriesKey> = self.series.keys().filter(|k| drop(k)).cloned().collect();
        for key in &gone {
            self.series.remove(key);
            // Between two samples: a reader that read the newest one still holds it.
            self.note_removed(self.tick + 1, key.clone());
        }
        gone.len()
    }
}

impl HistoryView {
    /// The points of series `key` placed on a regular axis starting at `start_unix_ms` with one
    /// slot every `step_ms` (for documents whose series are indexed by position): each point
    /// goes to the nearest slot, slots without a point are `None`, and points outside the axis
    /// are dropped. An unknown series gives all `None`. The axis has `slots` entries.
    pub fn on_regular_axis(
        &self,
        key: &SeriesKey,
        start_unix_ms: i64,
        step_ms: i64,
        slots: usize,
    ) -> Vec<Option<f64>> {
        let mut out = vec![None; slots];
        let (Some(points), true) = (self.series.get(key), step_ms > 0) else {
            return out;
        };
        for (t, v) in self.times_unix_ms.iter().zip(points) {
            let offset = t.saturating_sub(start_unix_ms);
            if offset < -step_ms / 2 {
                continue;
            }
            let slot = (offset + step_ms / 2).div_euclid(step_ms);
            if let Some(cell) = usize::try_from(slot).ok().and_then(|i| out.get_mut(i)) {
                if let Some(v) = v {
                    *cell = Some(f64::from(*v));
                }
            }
        }
        out
    }
}

/// The newest `n` entries of `ring`, oldest first, copied in bulk; a ring shorter than `n`
/// is padded at the front.
fn newest<T: Copy + Padding>(ring: &VecDeque<T>, n: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(n);
    out.resize(n.saturating_sub(ring.len()), T::PAD);
    let skip = ring.len().saturating_sub(n);
    let (a, b) = ring.as_slices();
    if skip < a.len() {
        out.extend_from_slice(&a[skip..]);
        out.extend_from_slice(b);
    } else {
        out.extend_from_slice(&b[skip - a.len()..]);
    }
    out
}

/// What [`newest`] pads with.
trait Padding {
    const PAD: Self;
}

impl Padding for i64 {
    const PAD: i64 = i64::MIN;
}

/// What a save copies from the history under the store's lock (see [`History::copy`]).
#[derive(Debug, Clone, Default)]
pub struct HistoryCopy {
    /// Time of each copied sample point (Unix ms).
    pub second_times: Vec<i64>,
    /// Start of each copied closed minute (Unix ms).
    pub minute_times: Vec<i64>,
    /// Every kept series, aligned with both axes.
    pub series: Vec<CopiedSeries>,
}

/// One series' copied points; `NaN` where it was not sampled.
#[derive(Debug, Clone)]
pub struct CopiedSeries {
    /// Which series.
    pub key: SeriesKey,
    /// One point per copied sample time.
    pub seconds: Vec<f32>,
    /// One point per copied minute.
    pub minutes: Vec<f32>,
}

fn push_capped<T>(ring: &mut VecDeque<T>, value: T, cap: usize) {
    if ring.len() >= cap {
        ring.pop_front();
    }
    ring.push_back(value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// A level series named `name`.
    fn key(name: &str) -> SeriesKey {
        SeriesKey::Sockstat { key: name.into() }
    }

    fn gauge(name: &str, v: f64) -> (SeriesKey, f64) {
        (key(name), v)
    }

    #[test]
    fn minute_points_keep_the_peak_and_gaps_stay_gaps() {
        let mut h = History::new(900, 1440, 16);
        for s in 0..60 {
            let tw = if s == 30 { 5000.0 } else { 10.0 };
            let mut values = vec![gauge("tw", tw)];
            if s < 10 {
                values.push(gauge("task", 7.0));
            }
            h.record(s * 1000, &values);
        }
        h.record(60_000, &[gauge("tw", 1.0)]);
        let m = h.minutes(|_| true, 10);
        assert_eq!(m.times_unix_ms, vec![0]);
        assert_eq!(m.series[&key("tw")], vec![Some(5000.0)]);
        assert_eq!(m.series[&key("task")], vec![Some(7.0)]);
        let s = h.seconds(|k| k == &key("task"), 900, 1);
        assert_eq!(s.series[&key("task")].len(), 61);
        assert_eq!(s.series[&key("task")][9], Some(7.0));
        assert_eq!(s.series[&key("task")][10], None);
    }

    #[test]
    fn series_bound_evicts_least_recently_seen() {
        let mut h = History::new(10, 10, 2);
        h.record(0, &[gauge("a", 1.0), gauge("b", 1.0)]);
        h.record(1000, &[gauge("b", 1.0)]);
        h.record(2000, &[gauge("b", 1.0), gauge("c", 1.0)]);
        assert!(h.contains(&key("b")) && h.contains(&key("c")) && !h.contains(&key("a")));
        assert_eq!(h.evicted(), 1);
        // Every series seen in this sample: the newcomer is dropped, not an old one.
        h.record(3000, &[gauge("b", 1.0), gauge("c", 1.0), gauge("d", 1.0)]);
        assert!(h.contains(&key("b")) && h.contains(&key("c")) && !h.contains(&key("d")));
    }

    #[test]
    fn a_reader_of_the_new_points_is_told_when_older_ones_changed() {
        let mut h = History::new(3, 10, 2);
        h.record(0, &[gauge("a", 1.0)]);
        h.record(1000, &[gauge("a", 2.0), gauge("b", 5.0)]);
        let (generation, tick) = (h.generation(), h.tick());
        assert_eq!(tick, 2);
        // New samples, a new series and the ring wrapping change no point already read.
        h.record(2000, &[gauge("a", 3.0), gauge("b", 6.0)]);
        h.record(3000, &[gauge("a", 4.0)]);
        assert_eq!(h.generation(), generation);
        let new = h.seconds_after(|_| true, tick, usize::MAX, 1);
        assert_eq!(new.times_unix_ms, vec![2000, 3000]);
        assert_eq!(new.series[&key("a")], vec![Some(3.0), Some(4.0)]);
        assert_eq!(new.series[&key("b")], vec![Some(6.0), None]);
        let none = h.seconds_after(|_| true, h.tick(), usize::MAX, 1);
        assert!(none.times_unix_ms.is_empty() && none.series.is_empty());
        // b had no point since: not listed.
        let since = h.seconds_after(|_| true, 3, usize::MAX, 1);
        assert_eq!(since.times_unix_ms, vec![3000]);
        assert_eq!(since.series.keys().collect::<Vec<_>>(), vec![&key("a")]);
        // Behind by more than the ring: the whole ring.
        assert_eq!(
            h.seconds_after(|_| true, 0, usize::MAX, 1)
                .times_unix_ms
                .len(),
            3
        );
        // An eviction or a forgotten series does not: the reader is told which series left
        // since its last read, and leaves them out.
        h.record(4000, &[gauge("a", 5.0), gauge("c", 1.0)]);
        assert!(!h.contains(&key("b")));
        assert_eq!(h.generation(), generation);
        assert_eq!(h.removed_after(|_| true, 4), Some(vec![key("b")]));
        assert_eq!(h.removed_after(|_| true, 5), Some(vec![]));
        assert_eq!(h.forget(|k| k == &key("c")), 1);
        assert_eq!(h.generation(), generation);
        // Between two samples: a reader that read the newest sample (5) still held c.
        assert_eq!(h.removed_after(|_| true, 5), Some(vec![key("c")]));
        assert_eq!(h.removed_after(|_| true, 4), Some(vec![key("c"), key("b")]));
        assert_eq!(h.removed_after(|k| k == &key("b"), 4), Some(vec![key("b")]));
        // A restore does.
        let mut restored = History::new(3, 10, 2);
        restored.follows(&h);
        assert!(restored.generation() > h.generation());
    }

    #[test]
    fn the_log_of_removed_series_is_bounded_and_says_when_it_no_longer_reaches_back() {
        // A ring of 5 sample points, at most 2 series: a new series each sample evicts one.
        let mut h = History::new(5, 10, 2);
        for i in 0..20u8 {
            let name = format!("s{i}");
            h.record(
                i64::from(i) * 1000,
                &[gauge("steady", 1.0), gauge(&name, 1.0)],
            );
            assert!(h.removed.len() <= 2, "{:?}", h.removed);
        }
        // Sample 20 evicted s18 (seen at 19): listed for a reader of sample 19.
        assert_eq!(h.removed_after(|_| true, 19), Some(vec![key("s18")]));
        assert_eq!(
            h.removed_after(|_| true, 18),
            Some(vec![key("s18"), key("s17")])
        );
        // Removals before the two kept ones left the log: a reader that far behind reads
        // everything again.
        assert_eq!(h.removed_after(|_| true, 17), None);
        assert_eq!(h.removed_after(|_| true, 0), None);
        // The log is no older than the ring: with no removal for 5 samples, a reader of
        // sample 20 is told it no longer knows.
        for i in 20..26 {
            h.record(i * 1000, &[gauge("steady", 1.0), gauge("s19", 1.0)]);
        }
        assert!(h.removed.is_empty());
        assert_eq!(h.removed_after(|_| true, 19), None);
        assert_eq!(h.removed_after(|_| true, 26), Some(vec![]));
    }

    #[test]
    fn regular_axis_places_points_in_the_nearest_slot() {
        let mut h = History::new(100, 10, 4);
        // A skipped tick at 3000 and a late one at 4100.
        for t in [1000, 2000, 4100, 5000] {
            h.record(t, &[gauge("x", t as f64)]);
        }
        let view = h.seconds(|_| true, 100, 1);
        assert_eq!(
            view.on_regular_axis(&key("x"), 1000, 1000, 5),
            vec![Some(1000.0), Some(2000.0), None, Some(4100.0), Some(5000.0)]
        );
        assert_eq!(
            view.on_regular_axis(&key("nope"), 1000, 1000, 2),
            vec![None, None]
        );
    }

    #[test]
    fn a_series_stores_only_the_points_between_its_first_and_last_known_ones() {
        let mut h = History::new(100, 50, 8);
        for s in 0..60 {
            h.record(s * 1000, &[gauge("steady", 1.0)]);
        }
        // A port group among the busiest for five samples, late in the first minute's
        // successor, and never again.
        for s in 60..65 {
            h.record(s * 1000, &[gauge("steady", 1.0), gauge("brief", 2.0)]);
        }
        let brief = |h: &History| {
            let s = &h.series[&key("brief")];
            (s.seconds.stored(), s.minutes.stored())
        };
        // Not 60 empty slots before its first point.
        assert_eq!(brief(&h), (5, 0));
        for s in 65..120 {
            h.record(s * 1000, &[gauge("steady", 1.0)]);
        }
        // Nor one per sample since it left; the minute it was seen in is still open.
        assert_eq!(brief(&h), (5, 0));
        for s in 120..400 {
            h.record(s * 1000, &[gauge("steady", 1.0)]);
        }
        // Its sample points have left the window: only its minute point is left, although the
        // minute ring has 5 points and the series is kept for the minute window's length.
        assert!(h.contains(&key("brief")));
        assert_eq!(brief(&h), (0, 1));
        let m = h.minutes(|k| k == &key("brief"), 50);
        assert_eq!(
            m.series[&key("brief")],
            vec![None, Some(2.0), None, None, None, None]
        );
        // The per-sample view leaves it out rather than lay 100 gaps.
        let s = h.seconds(|k| k == &key("brief"), 100, 1);
        assert!(s.series.is_empty(), "{:?}", s.series);
        assert_eq!(s.times_unix_ms.len(), 100);
        // The steady series holds full rings, and no more room than its caps.
        let steady = &h.series[&key("steady")];
        assert_eq!((steady.seconds.stored(), steady.minutes.stored()), (100, 6));
        assert!(
            steady.seconds.room() <= 100,
            "room {}",
            steady.seconds.room()
        );
        assert_eq!(h.stored_points().0, 100 + 6 + 1);
    }

    #[test]
    fn rings_of_fewer_than_four_points_hold_their_points() {
        let mut h = History::new(1, 2, 4);
        for s in 0..200 {
            h.record(s * 1000, &[gauge("a", s as f64)]);
        }
        let s = h.seconds(|_| true, 10, 1);
        assert_eq!(s.series[&key("a")], vec![Some(199.0)]);
        let m = h.minutes(|_| true, 10);
        assert_eq!(m.series[&key("a")], vec![Some(119.0), Some(179.0)]);
        assert!(h.series[&key("a")].seconds.room() <= 1);
    }

    #[test]
    fn a_ring_never_holds_room_past_its_cap_and_gives_back_what_it_no_longer_needs() {
        let mut h = History::new(900, 1440, 4);
        for s in 0..3000 {
            h.record(s * 1000, &[gauge("a", 1.0), gauge("b", 1.0)]);
        }
        let room = |h: &History, name: &str| h.series[&key(name)].seconds.room();
        // A VecDeque that doubles past 900 would hold room for 1,800 points.
        assert!(room(&h, "a") <= 900, "room {}", room(&h, "a"));
        for s in 3000..4000 {
            h.record(s * 1000, &[gauge("a", 1.0)]);
        }
        assert_eq!(h.series[&key("b")].seconds.stored(), 0);
        assert!(room(&h, "b") <= 8, "room {}", room(&h, "b"));
    }

    #[test]
    fn points_copied_in_bulk_are_those_read_one_by_one() {
        let mut p = Points::default();
        // Wrap the ring around its buffer so that the stored values are in two slices.
        for at in 0..20u64 {
            let v = if at % 7 == 3 { f32::NAN } else { at as f32 };
            p.push(at, v, 12);
            p.trim(at.saturating_sub(11));
        }
        for (from, to) in [
            (0, 25),
            (8, 20),
            (10, 14),
            (15, 30),
            (0, 5),
            (21, 24),
            (8, 8),
        ] {
            let one_by_one: Vec<_> = p.range(from, to).map(f32::to_bits).collect();
            let bulk: Vec<_> = p.copy(from, to).into_iter().map(f32::to_bits).collect();
            assert_eq!(bulk, one_by_one, "{from}..{to}");
            let known: Vec<_> = p
                .range(from, to)
                .map(|v| v.is_finite().then_some(v))
                .collect();
            assert_eq!(p.known(from, to), known, "{from}..{to}");
        }
    }

    proptest! {
        /// Model test: the views give back, for every series, exactly the points recorded
        /// (a gap where a sample left it out), the peak or mean of each closed minute, and
        /// nothing older than the caps.
        #[test]
        fn views_give_back_what_was_recorded(
            steps in proptest::collection::vec(
                (1i64..40_000, proptest::collection::vec((0u8..6, 0.0f64..100.0), 0..5)),
                1..200,
            )
        ) {
            let (second_cap, minute_cap) = (30, 4);
            let mut h = History::new(second_cap, minute_cap, 16);
            let name = |n: u8| {
                let key = format!("s{n}");
                if n.is_multiple_of(2) {
                    SeriesKey::Sockstat { key }
                } else {
                    SeriesKey::ProtocolRate { key }
                }
            };
            let mut samples: Vec<(i64, BTreeMap<SeriesKey, f64>)> = Vec::new();
            let mut t = 0i64;
            for (dt, values) in steps {
                t += dt;
                let values: Vec<_> = values.into_iter().map(|(n, v)| (name(n), v)).collect();
                h.record(t, &values);
                let mut first = BTreeMap::new();
                for (k, v) in values {
                    first.entry(k).or_insert(v);
                }
                samples.push((t, first));
            }
            let s = h.seconds(|_| true, usize::MAX, 1);
            let window = &samples[samples.len().saturating_sub(second_cap)..];
            prop_assert_eq!(&s.times_unix_ms, &window.iter().map(|w| w.0).collect::<Vec<_>>());
            for (key, points) in &s.series {
                let want: Vec<_> = window.iter().map(|w| w.1.get(key).map(|v| *v as f32)).collect();
                prop_assert_eq!(points, &want, "{:?}", key);
            }
            // Listed: exactly the series with a point in the window.
            let with_points: BTreeSet<&SeriesKey> = window.iter().flat_map(|w| w.1.keys()).collect();
            prop_assert_eq!(s.series.keys().collect::<BTreeSet<_>>(), with_points);
            // As stored: the same series and points, each from its first known one to its
            // last, laid back on the times.
            let known = h.seconds_known(|_| true);
            prop_assert_eq!(&known.times_unix_ms, &s.times_unix_ms);
            prop_assert_eq!(known.series.len(), s.series.len());
            for k in &known.series {
                prop_assert!(k.values.first().is_some_and(|v| v.is_finite()), "{:?}", k);
                prop_assert!(k.values.last().is_some_and(|v| v.is_finite()), "{:?}", k);
                let mut slots = vec![None; known.times_unix_ms.len()];
                for (i, v) in k.values.iter().enumerate() {
                    slots[k.first + i] = v.is_finite().then_some(*v);
                }
                prop_assert_eq!(Some(&slots), s.series.get(&k.key), "{:?}", k.key);
            }
            // Closed minutes: every minute with a sample but the last sample's.
            let mut minutes: Vec<(i64, Vec<&BTreeMap<SeriesKey, f64>>)> = Vec::new();
            for (t, values) in &samples {
                let m = t.div_euclid(60_000) * 60_000;
                match minutes.last_mut() {
                    Some((last, v)) if *last == m => v.push(values),
                    _ => minutes.push((m, vec![values])),
                }
            }
            minutes.pop();
            let closed = &minutes[minutes.len().saturating_sub(minute_cap)..];
            let m = h.minutes(|_| true, usize::MAX);
            prop_assert_eq!(&m.times_unix_ms, &closed.iter().map(|c| c.0).collect::<Vec<_>>());
            for (key, points) in &m.series {
                let want: Vec<_> = closed
                    .iter()
                    .map(|(_, values)| {
                        let seen: Vec<f64> = values.iter().filter_map(|v| v.get(key).copied()).collect();
                        if seen.is_empty() {
                            None
                        } else if key.is_rate() {
                            Some((seen.iter().sum::<f64>() / seen.len() as f64) as f32)
                        } else {
                            seen.iter().map(|v| *v as f32).reduce(f32::max)
                        }
                    })
                    .collect();
                prop_assert_eq!(points, &want, "{:?}", key);
            }
        }

        /// Model test: whatever the sequence of samples, every series stays aligned with the
        /// time axes and within the caps.
        #[test]
        fn series_stay_aligned_and_bounded(
            steps in proptest::collection::vec(
                (1i64..90_000, proptest::collection::vec((0u8..12, 0.0f64..100.0), 0..8)),
                1..200,
            )
        ) {
            let mut h = History::new(30, 5, 6);
            let mut t = 0i64;
            for (dt, values) in steps {
                t += dt;
                let values: Vec<_> = values
                    .into_iter()
                    .map(|(n, v)| {
                        let key = format!("s{n}");
                        let key = if n % 2 == 0 {
                            SeriesKey::Sockstat { key }
                        } else {
                            SeriesKey::ProtocolRate { key }
                        };
                        (key, v)
                    })
                    .collect();
                h.record(t, &values);
                prop_assert!(h.len() <= 6);
                let s = h.seconds(|_| true, usize::MAX, 1);
                let m = h.minutes(|_| true, usize::MAX);
                prop_assert!(s.times_unix_ms.len() <= 30 && m.times_unix_ms.len() <= 5);
                for points in s.series.values() {
                    prop_assert_eq!(points.len(), s.times_unix_ms.len());
                }
                for points in m.series.values() {
                    prop_assert_eq!(points.len(), m.times_unix_ms.len());
                }
            }
        }
    }
}
