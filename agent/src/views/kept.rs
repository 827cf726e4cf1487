//! The counter store's per-sample history as a reader that comes back every second keeps it
//! (the diagnosis, through [`KeptCounters`](super::KeptCounters)): sparse, as the store keeps
//! it.
//!
//! The store holds each series from its first known point to its last (its `Points`); the
//! window's other slots are implied gaps. A copy kept dense would hold every series with a
//! point in the 15-minute window as 900 slots (7.2 KB of `Option<f32>`), and on a node whose
//! ports come and go most series live a minute or two: at the store's 1,024-series bound the
//! dense copy was 6.5 MB while the store kept ~115 points a series, and it filled for the
//! window's whole 15 minutes, the whole of the agent's RSS growth after its warm-up (heap
//! profile of the soak, 6 December: +4.2 MB of +1.9 MB live-heap growth from minute 7.4 to
//! 15.9). [`KeptHistory`] stores the same points as the store, one `f32` each with `NaN` for a
//! gap between two known ones.

use std::collections::{BTreeMap, VecDeque};

use faultline_ingest::counters::history::{HistoryView, KnownView};
use faultline_series::SeriesKey;

use super::axis::{Column, Columns};

/// One series' points, from its first known point in the window to its last: positions count
/// the window's samples since the history was last read in full, so a position names the same
/// sample for every series.
#[derive(Debug, Default)]
struct KeptPoints {
    /// `NaN` where the series was not sampled.
    values: VecDeque<f32>,
    /// The position just after the last stored value.
    end: u64,
}

impl KeptPoints {
    fn start(&self) -> u64 {
        self.end - self.values.len() as u64
    }

    /// Sets the point at position `at`, after every stored one; the positions between are
    /// gaps. A gap (`None`) stores nothing: trailing gaps are implied.
    fn push(&mut self, at: u64, value: Option<f32>, room: usize) {
        let Some(value) = value.filter(|v| v.is_finite()) else {
            return;
        };
        if self.values.is_empty() {
            self.end = at;
        }
        for _ in self.end..at {
            self.push_back(f32::NAN, room);
        }
        self.push_back(value, room);
        self.end = at + 1;
    }

    /// Room grows by doubling, as a VecDeque's own, but never past the window's `room`: a
    /// series read with the whole window's points would otherwise hold room for twice them.
    fn push_back(&mut self, value: f32, room: usize) {
        if self.values.len() == self.values.capacity() {
            let want = (self.values.capacity() * 2)
                .max(4)
                .min(room.max(self.values.len() + 1));
            self.values.reserve_exact(want - self.values.len());
        }
        self.values.push_back(value);
    }

    /// Forgets the values before position `from` (the window's oldest), then the gaps that
    /// lead the rest; gives back room that is mostly unused. False when no point is left.
    fn trim(&mut self, from: u64) -> bool {
        let cut = usize::try_from(from.saturating_sub(self.start()))
            .map_or(self.values.len(), |n| n.min(self.values.len()));
        self.values.drain(..cut);
        while self.values.front().is_some_and(|v| v.is_nan()) {
            self.values.pop_front();
        }
        if self.values.capacity() > 8 && self.values.len() < self.values.capacity() / 4 {
            self.values.shrink_to(self.values.len() * 2);
        }
        !self.values.is_empty()
    }
}

/// The store's per-sample history as last read: the window's sample times and, sparse, the
/// points of every series with a point among them (see the module doc).
#[derive(Debug, Default)]
pub(super) struct KeptHistory {
    /// Time of each sample in the window, oldest first (Unix ms).
    times_unix_ms: Vec<i64>,
    /// The position of the window's oldest sample.
    first: u64,
    series: BTreeMap<SeriesKey, KeptPoints>,
}

impl KeptHistory {
    /// The history a full read of the store gives (`view`: every series with a point in the
    /// window, as the store keeps it).
    pub(super) fn read(view: KnownView) -> KeptHistory {
        let room = view.times_unix_ms.len();
        let series = view
            .series
            .into_iter()
            .filter_map(|s| {
                let mut mine = KeptPoints::default();
                mine.values.reserve_exact(s.values.len());
                for (i, v) in s.values.into_iter().enumerate() {
                    mine.push((s.first + i) as u64, Some(v), room);
                }
                (!mine.values.is_empty()).then_some((s.key, mine))
            })
            .collect();
        KeptHistory {
            times_unix_ms: view.times_unix_ms,
            first: 0,
            series,
        }
    }

    /// This history without the series `removed` since, followed by `new` (the points
    /// recorded since, of every series that has one), cut to the `sample_points` the store
    /// keeps; false when they do not fit together (the points do not line up), and the
    /// history must be read again (it is then left as it was). As the store's view, it holds
    /// only the series with a point in the window: a series with no new point leaves once its
    /// last point left the window; a removed one recorded again under its key has gaps where
    /// the old one had points.
    pub(super) fn follow(
        &mut self,
        removed: &[SeriesKey],
        new: HistoryView,
        sample_points: usize,
    ) -> bool {
        let (old, added) = (self.times_unix_ms.len(), new.times_unix_ms.len());
        let Some(drop) = (old + added).checked_sub(sample_points) else {
            return false;
        };
        if new.series.values().any(|p| p.len() != added) {
            return false;
        }
        for key in removed {
            self.series.remove(key);
        }
        // The oldest go first, so that new points take the room the old ones leave.
        let at = self.first + old as u64;
        self.first += drop as u64;
        let first = self.first;
        self.series.retain(|_, mine| mine.trim(first));
        for (key, points) in new.series {
            let mut known = points
                .into_iter()
                .enumerate()
                .map(|(i, v)| (at + i as u64, v))
                .filter(|(at, v)| *at >= first && v.is_some())
                .peekable();
            if known.peek().is_none() {
                continue;
            }
            let mine = self.series.entry(key).or_default();
            for (at, v) in known {
                mine.push(at, v, sample_points);
            }
        }
        let cut = drop.min(old);
        self.times_unix_ms.drain(..cut);
        let need = self.times_unix_ms.len() + added - (drop - cut);
        if need > self.times_unix_ms.capacity() {
            // Doubling, but never past the store's ring (see `KeptPoints::push_back`).
            let want = need
                .max(self.times_unix_ms.len() * 2)
                .min(sample_points.max(need));
            self.times_unix_ms
                .reserve_exact(want - self.times_unix_ms.len());
        }
        self.times_unix_ms
            .extend(new.times_unix_ms.into_iter().skip(drop - cut));
        true
    }

    /// Time of each sample in the window, oldest first (Unix ms).
    pub(super) fn times_unix_ms(&self) -> &[i64] {
        &self.times_unix_ms
    }

    /// Values stored (known points and the gaps between them) and the room held for them, over
    /// every series.
    #[cfg(test)]
    pub(super) fn stored(&self) -> (usize, usize) {
        self.series.values().fold((0, 0), |(n, room), s| {
            (n + s.values.len(), room + s.values.capacity())
        })
    }

    /// Each series kept, with the values stored for it and the room held.
    #[cfg(test)]
    pub(super) fn rooms(&self) -> impl Iterator<Item = (&SeriesKey, usize, usize)> {
        self.series
            .iter()
            .map(|(key, s)| (key, s.values.len(), s.values.capacity()))
    }

    /// The series kept.
    #[cfg(test)]
    pub(super) fn keys(&self) -> impl Iterator<Item = &SeriesKey> {
        self.series.keys()
    }

    /// Room held for the sample times.
    #[cfg(test)]
    pub(super) fn times_room(&self) -> usize {
        self.times_unix_ms.capacity()
    }
}

impl Columns for KeptHistory {
    fn column(&self, key: &SeriesKey) -> Option<Column<'_>> {
        let points = self.series.get(key)?;
        let start = usize::try_from(points.start().saturating_sub(self.first)).ok()?;
        Some(Column::Sparse {
            start,
            values: &points.values,
        })
    }
}
