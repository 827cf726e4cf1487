//! The two files of the counter history and how their bytes are laid out.
//!
//! - `counters.bin`, the recent points: the per-sample points of the anomaly detector's
//!   windows (7 minutes by default), who held each listening port and each process target's
//!   ids, and the services' requests and failures per second. Small, rewritten whole through
//!   [`super::atomic_write`] at every save.
//! - `counters-minutes.log`, the minute points (the counters page's 24 h view, ~¾ of the
//!   history): an append-only log. A save appends only the minutes closed since the previous
//!   one, as the points that changed since the minute before (a counter holding still costs
//!   nothing), and fsyncs; the log is rewritten whole (compacted, through `atomic_write`) at
//!   the first save of a run and once it holds an hour more than the ring.
//!
//! Why binary: the history is numbers, and most of them small counts. Encoded with bincode's
//! variable-length integers, a count below 128 is one byte and a run of equal points two or
//! three, where JSON spent a dozen and the parsing time that goes with them (the JSON file of
//! a node with 4,096 ports was 24.55 MiB and took 16 s to load in a debug build, see
//! BENCHMARKS.md). Series keys are stored once per file, as the API writes them (JSON text),
//! so a key this version does not know costs that series only.
//!
//! Both files start with a magic of 8 bytes and a format version (u32, little-endian); a
//! version this code does not know is refused, and the file set aside. `counters.bin` ends
//! with a CRC-32 of everything before it; each log record is framed as its length and CRC-32
//! (u32 each, little-endian) then its bytes. A log record cut short or damaged (a machine
//! crash during an append) ends the log there: the records before it stand, and the next
//! rewrite drops the rest.
//!
//! Bounds: a length, a count or an index in a file never makes the reader allocate more than
//! the file's own size describes (bincode is given the record's length as its limit, and
//! indexes are checked against the keys defined). Points are described compactly (a run of
//! a point repeated up to 2^32 times, a minute that changes nothing costs a few bytes), so
//! they are built only for the sample times, minutes and series the counter store keeps
//! ([`expand`] and [`minute_points`] of a window; see `combine`): a file of 400 KB
//! describing 2,000 series over 5,000 sample times and 3,000 minutes no longer builds the
//! 128 MB of them, only the store's 1,024 × (900 + 1,440) points.

use std::collections::HashMap;
use std::ops::Range;

use bincode::Options;
use faultline_ingest::counters::saved::{SavedOwner, SavedTarget};
use faultline_ingest::traces::SavedServiceTraffic;
use faultline_series::SeriesKey;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// First bytes of `counters.bin`.
pub const SECONDS_MAGIC: &[u8; 8] = b"FLCTRSEC";
/// First bytes of `counters-minutes.log`.
pub const MINUTES_MAGIC: &[u8; 8] = b"FLCTRMIN";
/// The format version this code writes and reads, in both files.
pub const VERSION: u32 = 1;
/// Magic and version.
const HEADER: usize = 12;

/// One point: a gap, a whole count (most counters: one or a few bytes), or any other value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Point {
    /// Not sampled.
    Gap,
    /// A whole number from 0 to 2^24 (every such number is exact in an `f32`).
    Count(u32),
    /// Any other finite value.
    Value(f32),
}

impl Point {
    /// The point of `v` (`NaN`: a gap).
    pub fn of(v: f32) -> Point {
        if !v.is_finite() {
            Point::Gap
        } else if (0.0..=16_777_216.0).contains(&v) && v.fract() == 0.0 {
            Point::Count(v as u32)
        } else {
            Point::Value(v)
        }
    }

    /// Its value (`NaN`: a gap; a non-finite value read from a file is a gap too).
    pub fn value(self) -> f32 {
        match self {
            Point::Gap => f32::NAN,
            Point::Count(n) => n as f32,
            Point::Value(v) if v.is_finite() => v,
            Point::Value(_) => f32::NAN,
        }
    }
}

/// `repeat` equal points.
pub type Run = (Point, u32);

/// `points` as runs of equal points.
pub fn runs(points: &[f32]) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    for &v in points {
        let p = Point::of(v);
        match out.last_mut() {
            Some((q, n)) if *q == p && *n < u32::MAX => *n += 1,
            _ => out.push((p, 1)),
        }
    }
    out
}

/// Checks that `runs` describe exactly `len` points.
pub fn check_runs(runs: &[Run], len: usize) -> Result<(), String> {
    let total: u64 = runs.iter().map(|&(_, n)| u64::from(n)).sum();
    if total != len as u64 {
        return Err(format!("{total} points for {len} times"));
    }
    Ok(())
}

/// The points of `runs` at the positions `window` (checked with [`check_runs`] first): only
/// those are built, so a run repeated a billion times costs what the window holds.
pub fn expand(runs: &[Run], window: Range<usize>) -> Vec<Option<f32>> {
    let mut out = Vec::with_capacity(window.len());
    let mut at = 0usize;
    for &(p, n) in runs {
        let end = at.saturating_add(n as usize);
        let (from, to) = (at.max(window.start), end.min(window.end));
        if from < to {
            let v = p.value();
            out.extend(std::iter::repeat_n(v.is_finite().then_some(v), to - from));
        }
        if end >= window.end {
            break;
        }
        at = end;
    }
    out
}

/// Where the last known (finite) point of `runs` within `window` is, counted from the
/// window's start.
pub fn last_known(runs: &[Run], window: Range<usize>) -> Option<usize> {
    let mut at = 0usize;
    let mut last = None;
    for &(p, n) in runs {
        let end = at.saturating_add(n as usize);
        let (from, to) = (at.max(window.start), end.min(window.end));
        if from < to && p.value().is_finite() {
            last = Some(to - 1 - window.start);
        }
        if end >= window.end {
            break;
        }
        at = end;
    }
    last
}

/// One series' minute points in a log: (minute index, value) of each change, by increasing
/// index; a point holds until the next change (`NaN`: a gap).
pub type MinuteChanges = Vec<(u32, f32)>;

/// The points of `changes` at the minutes `window` (`NaN`: a gap).
pub fn minute_points(changes: &[(u32, f32)], window: Range<usize>) -> Vec<f32> {
    let mut out = Vec::with_capacity(window.len());
    let mut value = f32::NAN;
    let mut changes = changes.iter().peekable();
    for m in window {
        while let Some(&(_, v)) = changes.next_if(|c| c.0 as usize <= m) {
            value = v;
        }
        out.push(value);
    }
    out
}

/// Whether `changes` hold a known (finite) point among the minutes `window`.
pub fn known_minute(changes: &[(u32, f32)], window: Range<usize>) -> bool {
    let before = changes.partition_point(|c| (c.0 as usize) <= window.start);
    let at_start = before
        .checked_sub(1)
        .is_some_and(|i| changes[i].1.is_finite());
    at_start
        || changes[before..]
            .iter()
            .take_while(|c| (c.0 as usize) < window.end)
            .any(|c| c.1.is_finite())
}

/// `counters.bin`, format 1.
#[derive(Debug, Serialize, Deserialize)]
pub struct SecondsV1 {
    /// When it was written (Unix ms).
    pub saved_unix_ms: i64,
    /// The first sample time (Unix ms); meaningless without `time_steps`' points.
    pub first_time: i64,
    /// The number of sample times.
    pub times: u32,
    /// Milliseconds from each sample time to the next (`times - 1` of them).
    pub time_steps: Vec<u64>,
    /// Each series with a point among these times.
    pub series: Vec<SeriesRuns>,
    /// Who held each listening port.
    pub owners: Vec<SavedOwner>,
    /// The process ids of each process target.
    pub targets: Vec<SavedTarget>,
    /// The services' requests and failures per second over the same window.
    pub traffic: Vec<SavedServiceTraffic>,
}

/// One series' sample points in `counters.bin`.
#[derive(Debug, Serialize, Deserialize)]
pub struct SeriesRuns {
    /// Its key as the API writes it (JSON).
    pub key: String,
    /// Its points, one per sample time, as runs.
    pub runs: Vec<Run>,
}

impl SecondsV1 {
    /// The sample times.
    pub fn sample_times(&self) -> Result<Vec<i64>, String> {
        if self.times as usize != self.time_steps.len() + usize::from(self.times > 0) {
            return Err(format!(
                "{} sample times but {} steps between them",
                self.times,
                self.time_steps.len()
            ));
        }
        let mut out = Vec::with_capacity(self.times as usize);
        if self.times > 0 {
            out.push(self.first_time);
        }
        let mut t = self.first_time;
        for &step in &self.time_steps {
            t = i64::try_from(step)
                .ok()
                .and_then(|s| t.checked_add(s))
                .ok_or("its sample times overflow")?;
            out.push(t);
        }
        Ok(out)
    }
}

/// `counters.bin` read and checked: its sample times (in order) and each series' runs
/// covering exactly them.
pub fn read_checked_seconds_file(bytes: &[u8]) -> Result<(SecondsV1, Vec<i64>), String> {
    let file = read_seconds_file(bytes)?;
    let times = file.sample_times()?;
    if let Some(w) = times.windows(2).find(|w| w[1] < w[0]) {
        return Err(format!(
            "its sample times go backwards ({} then {})",
            w[0], w[1]
        ));
    }
    for s in &file.series {
        check_runs(&s.runs, times.len()).map_err(|e| format!("{}: {e}", s.key))?;
    }
    Ok((file, times))
}

/// The steps between `times` (which must not go backwards: the history's axis never does).
pub fn time_steps(times: &[i64]) -> Vec<u64> {
    times
        .windows(2)
        .map(|w| u64::try_from(w[1].saturating_sub(w[0])).unwrap_or(0))
        .collect()
}

/// One record of `counters-minutes.log`, format 1.
#[derive(Debug, Serialize, Deserialize)]
pub enum Record {
    /// Keys `first`, `first + 1`, ... are these series (JSON as the API writes them).
    Keys {
        /// The index of the first.
        first: u32,
        /// The keys.
        keys: Vec<String>,
    },
    /// The minute starting at `start_unix_ms` closed: the points that differ from the
    /// minute before (a key's point before its first change is a gap), as (index gap from
    /// the previous change, point), by increasing index.
    Minute {
        /// Start of the minute (Unix ms); later than the previous minute's.
        start_unix_ms: i64,
        /// The changes.
        changes: Vec<(u32, Point)>,
    },
    /// These keys' past is forgotten (the history dropped them: another process's port, a
    /// series evicted or gone for a day); they are gaps until they change again.
    Forget {
        /// Their indexes.
        keys: Vec<u32>,
    },
}

fn options() -> impl Options {
    bincode::DefaultOptions::new()
}

fn encode<T: Serialize>(value: &T, out: &mut Vec<u8>) {
    // Serialising plain data into a Vec cannot fail (no I/O, no limit, no map with
    // non-string keys in JSON sense): an error here is a bug, kept out of the file.
    if let Err(err) = options().serialize_into(&mut *out, value) {
        tracing::error!("cannot encode the counter history: {err}");
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    options()
        .with_limit(bytes.len() as u64)
        .deserialize(bytes)
        .map_err(|e| e.to_string())
}

fn header(magic: &[u8; 8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 << 16);
    out.extend_from_slice(magic);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out
}

fn check_header<'a>(magic: &[u8; 8], bytes: &'a [u8]) -> Result<&'a [u8], String> {
    if bytes.len() < HEADER || &bytes[..8] != magic {
        return Err("not a faultline counter history file".to_owned());
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != VERSION {
        return Err(format!(
            "format {version}, this version reads format {VERSION}"
        ));
    }
    Ok(&bytes[HEADER..])
}

/// The bytes of `counters.bin` holding `file`.
pub fn seconds_file(file: &SecondsV1) -> Vec<u8> {
    let mut out = header(SECONDS_MAGIC);
    encode(file, &mut out);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// What `counters.bin`'s bytes hold.
pub fn read_seconds_file(bytes: &[u8]) -> Result<SecondsV1, String> {
    let body = check_header(SECONDS_MAGIC, bytes)?;
    let Some(split) = bytes.len().checked_sub(4).filter(|&n| n >= HEADER) else {
        return Err("cut short".to_owned());
    };
    let (content, crc) = bytes.split_at(split);
    if crc32fast::hash(content).to_le_bytes() != crc {
        return Err("its checksum does not match its content (damaged)".to_owned());
    }
    decode(&body[..body.len() - 4])
}

/// The first bytes of a minute log.
pub fn log_header() -> Vec<u8> {
    header(MINUTES_MAGIC)
}

/// Appends `record` to `out`, framed.
pub fn frame(record: &Record, out: &mut Vec<u8>) {
    let at = out.len();
    out.extend_from_slice(&[0; 8]);
    encode(record, out);
    let len = u32::try_from(out.len() - at - 8).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(&out[at + 8..]);
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    out[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The minute points a log holds.
#[derive(Debug, Default)]
pub struct LoggedMinutes {
    /// Start of each minute (Unix ms), oldest first.
    pub minute_times: Vec<i64>,
    /// Each series with a known point, as its changes (see [`minute_points`]): as many as
    /// the log holds, never more (a point repeated over many minutes is built only for the
    /// minutes a restore keeps).
    pub series: Vec<(SeriesKey, MinuteChanges)>,
    /// Series under keys this version does not know, left out.
    pub unknown_series: usize,
    /// Bytes at the end that are not whole records (a write cut short), left out.
    pub dropped_tail_bytes: usize,
}

/// One key's points while a log is read.
struct Slot {
    key: SeriesKey,
    /// (minute index, value) of each change, in order.
    changes: Vec<(u32, f32)>,
    retired: bool,
}

/// Reads a minute log: every whole record in order, until the end or the first record that
/// is cut short or damaged. Refused as a whole (`Err`): another file, an unknown format, or
/// records that contradict each other (minutes going backwards, an undefined index).
pub fn read_minute_log(bytes: &[u8]) -> Result<LoggedMinutes, String> {
    let mut rest = check_header(MINUTES_MAGIC, bytes)?;
    let mut out = LoggedMinutes::default();
    let mut slots: Vec<Slot> = Vec::new();
    // Index in the file -> slot (None: a key this version does not know).
    let mut index: Vec<Option<usize>> = Vec::new();
    let mut slot_of: HashMap<SeriesKey, usize> = HashMap::new();
    while !rest.is_empty() {
        let whole = rest.len() >= 8 && {
            let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
            len <= rest.len() - 8 && crc32fast::hash(&rest[8..8 + len]) == crc
        };
        if !whole {
            out.dropped_tail_bytes = rest.len();
            break;
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let record: Record = decode(&rest[8..8 + len])?;
        rest = &rest[8 + len..];
        match record {
            Record::Keys { first, keys } => {
                if first as usize != index.len() {
                    return Err(format!(
                        "keys from index {first} where {} were defined",
                        index.len()
                    ));
                }
                for text in keys {
                    let Ok(key) = serde_json::from_str::<SeriesKey>(&text) else {
                        out.unknown_series += 1;
                        index.push(None);
                        continue;
                    };
                    // A key defined again: its earlier index was forgotten.
                    if let Some(old) = slot_of.insert(key.clone(), slots.len()) {
                        slots[old].retired = true;
                    }
                    index.push(Some(slots.len()));
                    slots.push(Slot {
                        key,
                        changes: Vec::new(),
                        retired: false,
                    });
                }
            }
            Record::Minute {
                start_unix_ms,
                changes,
            } => {
                if out.minute_times.last().is_some_and(|&t| t >= start_unix_ms) {
                    return Err(format!("its minutes go backwards at {start_unix_ms}"));
                }
                let m = u32::try_from(out.minute_times.len()).unwrap_or(u32::MAX);
                out.minute_times.push(start_unix_ms);
                let mut at: Option<usize> = None;
                for (gap, point) in changes {
                    let i = match at {
                        None => Some(gap as usize),
                        Some(prev) => prev.checked_add(gap as usize).filter(|_| gap > 0),
                    };
                    let Some(slot) = i.and_then(|i| index.get(i)) else {
                        return Err(format!("a change of an undefined key at minute {m}"));
                    };
                    at = i;
                    if let Some(slot) = slot {
                        slots[*slot].changes.push((m, point.value()));
                    }
                }
            }
            Record::Forget { keys } => {
                for i in keys {
                    let Some(slot) = index.get(i as usize) else {
                        return Err(format!("an undefined key {i} forgotten"));
                    };
                    if let Some(slot) = slot {
                        slots[*slot].changes.clear();
                    }
                }
            }
        }
    }
    for slot in slots {
        if slot.retired || !slot.changes.iter().any(|c| c.1.is_finite()) {
            continue;
        }
        out.series.push((slot.key, slot.changes));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_series::{PortSide, SocketState};

    fn key(port: u16) -> String {
        serde_json::to_string(&SeriesKey::PortState {
            port,
            side: PortSide::Local,
            state: SocketState::CloseWait,
        })
        .unwrap()
    }

    #[test]
    fn points_round_trip_and_counts_are_small() {
        for v in [0.0, 1.0, 127.0, 16_777_216.0, 2.5, -3.0, 1e30, f32::NAN] {
            let p = Point::of(v);
            assert!(p.value() == v || (v.is_nan() && p.value().is_nan()), "{v}");
        }
        let mut out = Vec::new();
        encode(&runs(&[3.0, 3.0, 3.0, f32::NAN, 4.5]), &mut out);
        // The number of runs, then each run: tag, value (none for a gap), repeat.
        assert_eq!(out.len(), 1 + 3 + 2 + 6);
        let r = runs(&[3.0, 3.0, f32::NAN, 4.5]);
        check_runs(&r, 4).unwrap();
        assert_eq!(expand(&r, 0..4), [Some(3.0), Some(3.0), None, Some(4.5)]);
        assert_eq!(expand(&r, 1..3), [Some(3.0), None]);
        assert_eq!(last_known(&r, 0..4), Some(3));
        assert_eq!(last_known(&r, 0..3), Some(1));
        assert_eq!(last_known(&r, 2..3), None);
        assert!(check_runs(&[(Point::Count(1), u32::MAX)], 2).is_err());
        assert!(check_runs(&r, 5).is_err());
        // A run of four billion points costs the window only.
        let long = [(Point::Count(1), u32::MAX), (Point::Gap, u32::MAX)];
        assert_eq!(
            expand(&long, 4_294_967_294..4_294_967_297),
            [Some(1.0), None, None]
        );
        assert_eq!(last_known(&long, 4_294_967_200..4_294_967_297), Some(94));
    }

    #[test]
    fn minute_changes_give_the_points_of_a_window() {
        let changes = [(1, 3.0), (3, f32::NAN), (5, 7.0)];
        let p = minute_points(&changes, 0..7);
        assert!(p[0].is_nan() && p[3].is_nan() && p[4].is_nan());
        assert_eq!((p[1], p[2], p[5], p[6]), (3.0, 3.0, 7.0, 7.0));
        assert_eq!(minute_points(&changes, 2..3), [3.0]);
        assert!(known_minute(&changes, 2..3), "3.0 holds from minute 1");
        assert!(!known_minute(&changes, 3..5));
        assert!(known_minute(&changes, 3..6));
        assert!(!known_minute(&changes, 0..1));
        assert!(known_minute(&changes, 9..10));
    }

    /// A log of two keys over three minutes, a forgotten key, and a record cut short at the
    /// end: the records before it stand.
    #[test]
    fn a_minute_log_reads_back_with_its_tail_cut_short() {
        let mut log = log_header();
        frame(
            &Record::Keys {
                first: 0,
                keys: vec![key(80), key(81), "{\"series\":\"quantum\"}".into()],
            },
            &mut log,
        );
        let minute = |t, changes: Vec<(u32, Point)>, log: &mut Vec<u8>| {
            frame(
                &Record::Minute {
                    start_unix_ms: t,
                    changes,
                },
                log,
            )
        };
        minute(
            60_000,
            vec![
                (0, Point::Count(3)),
                (1, Point::Count(7)),
                (1, Point::Count(9)),
            ],
            &mut log,
        );
        minute(120_000, vec![(1, Point::Value(7.5))], &mut log);
        frame(&Record::Forget { keys: vec![0] }, &mut log);
        minute(180_000, vec![(1, Point::Gap)], &mut log);
        let whole = log.len();
        minute(240_000, vec![(0, Point::Count(4))], &mut log);
        log.truncate(log.len() - 2);

        let read = read_minute_log(&log).unwrap();
        assert_eq!(read.minute_times, [60_000, 120_000, 180_000]);
        assert_eq!(read.unknown_series, 1);
        assert_eq!(read.dropped_tail_bytes, log.len() - whole);
        let points: HashMap<String, Vec<f32>> = read
            .series
            .into_iter()
            .map(|(k, c)| (serde_json::to_string(&k).unwrap(), minute_points(&c, 0..3)))
            .collect();
        assert_eq!(points.len(), 1, "80 was forgotten");
        let p81 = &points[&key(81)];
        assert_eq!(&p81[..2], [7.0, 7.5]);
        assert!(p81[2].is_nan());
    }

    #[test]
    fn a_file_of_another_kind_or_version_or_damaged_is_refused() {
        let file = SecondsV1 {
            saved_unix_ms: 1,
            first_time: 1000,
            times: 2,
            time_steps: vec![1000],
            series: vec![SeriesRuns {
                key: key(80),
                runs: vec![(Point::Count(2), 2)],
            }],
            owners: Vec::new(),
            targets: Vec::new(),
            traffic: Vec::new(),
        };
        let bytes = seconds_file(&file);
        let back = read_seconds_file(&bytes).unwrap();
        assert_eq!(back.sample_times().unwrap(), [1000, 2000]);
        let mut damaged = bytes.clone();
        damaged[HEADER + 3] ^= 1;
        assert!(read_seconds_file(&damaged)
            .unwrap_err()
            .contains("checksum"));
        let mut newer = bytes.clone();
        newer[8] = 2;
        assert!(read_seconds_file(&newer).unwrap_err().contains("format 2"));
        assert!(read_minute_log(&bytes).is_err());
        assert!(read_seconds_file(b"{\"format\":\"1\"}").is_err());
        // Minutes going backwards contradict each other.
        let mut log = log_header();
        for t in [120_000, 60_000] {
            frame(
                &Record::Minute {
                    start_unix_ms: t,
                    changes: Vec::new(),
                },
                &mut log,
            );
        }
        assert!(read_minute_log(&log).unwrap_err().contains("backwards"));
    }
}
