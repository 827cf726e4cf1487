//! The counters' history across a restart: `counters.bin` and `counters-minutes.log` in the
//! data directory (see [`format`] for what each holds and how).
//!
//! Why files of their own beside `state.json`: the state file commits what must agree exactly
//! (offsets and the counts they produced) every few seconds; the counter history is a
//! baseline, larger, and losing its last seconds costs nothing but those seconds. It is
//! saved at its own low rate (`[counters] save_interval_ms`, 15 s by default, and once more
//! when the agent stops) and read once at start (see `faultline_ingest::counters::saved` for
//! what it holds and why).
//!
//! What is saved: the per-second points of the last `baseline_ms + search_ms` of the anomaly
//! detector (what it needs to judge a series again at once), the services' requests and
//! failures per second over the same window (their rates' baseline), and the minute points
//! (the counters page's 24 h view), of every series but the agent's own. Series without a
//! point in the window are left out of the recent points.
//!
//! Cost (why two files): the minute points are ~¾ of the history and change once a minute.
//! Rewritten whole at every save, a node with 4,096 ports wrote 24.55 MiB every 15 s and
//! held the counter store's lock while copying it (BENCHMARKS.md). Now a save copies the
//! recent points and only the minutes closed since the last save under the lock (bulk
//! copies), encodes and writes away from it, rewrites the small recent-points file and
//! appends the new minutes to the log (nothing at the three saves in four when no minute
//! closed). The log is rewritten whole at the first save of a run (dropping what an older run
//! left cut short) and when it holds [`COMPACT_AFTER_MINUTES`] minutes more than the ring.
//!
//! Crash safety: `counters.bin` goes through the one [`atomic_write`]; an append to the log
//! is fsynced before the save counts as done, and a record cut short by a crash ends the log
//! without costing the records before it. The log is written before `counters.bin`: a kill
//! between the two leaves a minute in the log that the older recent points do not reach,
//! which the restore takes as it is; a log that could not be written while `counters.bin`
//! was leaves minutes whose points the recent points still hold, and the restore closes them
//! again from those.
//!
//! Start: the files are read and the history rebuilt on a blocking thread, away from the
//! store's lock, while the agent already serves and samples; the rebuilt history is then put
//! in place under the lock, the samples taken meanwhile following it on the same axes (see
//! `CounterStore::adopt`). The first save waits for it, so a slow read never overwrites the
//! history with the few seconds taken since the start.
//!
//! Failures: a file that cannot be read or used (corrupt, a format this version does not
//! know, contradicting itself) is moved aside (`<name>.unreadable-<unix time>`) and the agent
//! starts without what it held. A save that fails (a full disk) is counted, shown as the
//! `counter_history` component of health and on `/metrics`, logged once when it starts
//! failing, and tried again at the next interval (with the log rewritten whole).
//!
//! Format 1 of the history (`counters.json`, JSON, rewritten whole) is still read when the
//! new files are not there (an agent upgraded in place); the first save in the new format
//! removes it.

pub mod format;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline_ingest::counters::history::HistoryCopy;
use faultline_ingest::counters::saved::{SavedHistory, SavedSeries};
use faultline_ingest::counters::{CounterStore, PreparedRestore, SavedCounters};
use faultline_ingest::traces::{SavedServiceTraffic, ServiceTraffic, TraceStore};
use faultline_series::SeriesKey;
use faultline_web::{Component, ComponentState, HealthRegistry};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::format::{Point, Record, SecondsV1, SeriesRuns};
use super::atomic::{self, atomic_write, AtomicWriteError};
use super::CommitStatus;

/// The recent points (format 2 of the history): rewritten at every save.
pub const SECONDS_FILE: &str = "counters.bin";

/// The minute points: an append-only log.
pub const MINUTES_FILE: &str = "counters-minutes.log";

/// The history in format 1 (JSON, one file), read when the files above are not there.
pub const COUNTERS_FILE: &str = "counters.json";

/// Minutes the log may hold beyond the ring before it is rewritten whole: an hour, so a
/// full day's log is rewritten once an hour, not at every save.
pub const COMPACT_AFTER_MINUTES: usize = 60;

/// Format 1's file (`counters.json`), by format version.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "format")]
enum CountersFile {
    /// Format 1.
    #[serde(rename = "1")]
    V1 {
        /// When it was written (Unix ms).
        saved_unix_ms: i64,
        /// The history and whose it was.
        counters: SavedCounters,
    },
}

/// How the saves are going: outcomes, and the size and cost of the last one that reached the
/// disk.
#[derive(Debug, Default)]
pub struct SaveStatus {
    /// Saves that reached the disk, saves that failed, and the last failure.
    pub outcomes: CommitStatus,
    /// Bytes the last save wrote (the recent points, and the minutes appended or rewritten).
    pub bytes: AtomicU64,
    /// Microseconds the last save took: copy, encoding, writes and fsyncs.
    pub micros: AtomicU64,
    /// Microseconds of the last save under the counter store's lock (the copy).
    pub locked_micros: AtomicU64,
}

/// A saved history read from disk and rebuilt, ready to be put in place ([`adopt`]).
#[derive(Debug)]
pub struct Loaded {
    prepared: PreparedRestore,
    traffic: Vec<SavedServiceTraffic>,
    saved_unix_ms: i64,
}

/// Reads the history a previous run saved in `dir` and rebuilds it for `store` as of
/// `now_unix_ms`, without taking the store's lock. Returns it (nothing saved: `None`) and
/// what to tell the user: a file that cannot be used is moved aside, so the next save starts
/// clean.
pub fn read(dir: &Path, store: &CounterStore, now_unix_ms: i64) -> (Option<Loaded>, Vec<String>) {
    let mut notes = Vec::new();
    for name in [SECONDS_FILE, MINUTES_FILE, COUNTERS_FILE] {
        match atomic::remove_stale_temps(&dir.join(name)) {
            Ok(0) => {}
            Ok(n) => notes.push(format!(
                "removed {n} leftover temporary counter history file(s) of {name}"
            )),
            Err(err) => notes.push(format!(
                "cannot remove leftover temporary counter history files: {err}"
            )),
        }
    }
    // A file that contradicts itself is set aside like a damaged one: the other's points
    // are still restored.
    let seconds = read_file(dir, SECONDS_FILE, now_unix_ms, &mut notes, |bytes| {
        format::read_checked_seconds_file(bytes)
    });
    let minutes = read_file(dir, MINUTES_FILE, now_unix_ms, &mut notes, |bytes| {
        format::read_minute_log(bytes)
    });
    let (saved, traffic, saved_unix_ms) = match (seconds, minutes) {
        (None, None) => {
            let legacy = read_file(dir, COUNTERS_FILE, now_unix_ms, &mut notes, |bytes| {
                serde_json::from_slice::<CountersFile>(bytes).map_err(|e| e.to_string())
            });
            match legacy {
                Some(CountersFile::V1 {
                    saved_unix_ms,
                    counters,
                }) => (counters, Vec::new(), saved_unix_ms),
                None => return (None, notes),
            }
        }
        (seconds, minutes) => {
            if let Some(m) = minutes.as_ref().filter(|m| m.dropped_tail_bytes > 0) {
                notes.push(format!(
                    "the last {} bytes of {} were not a whole record (a write cut short); \
                     the minutes before them are restored",
                    m.dropped_tail_bytes, MINUTES_FILE
                ));
            }
            combine(seconds, minutes.unwrap_or_default(), store, now_unix_ms)
        }
    };
    match store.prepare_restore(saved, now_unix_ms) {
        Ok(prepared) => (
            Some(Loaded {
                prepared,
                traffic,
                saved_unix_ms,
            }),
            notes,
        ),
        Err(why) => {
            notes.push(format!(
                "the saved counter history could not be used ({why}); the counters start \
                 without it"
            ));
            (None, notes)
        }
    }
}

/// Reads and decodes `dir/name`; a file that cannot be decoded is moved aside. `None`: no
/// file, or none usable.
fn read_file<T>(
    dir: &Path,
    name: &str,
    now_unix_ms: i64,
    notes: &mut Vec<String>,
    decode: impl FnOnce(&[u8]) -> Result<T, String>,
) -> Option<T> {
    let path = dir.join(name);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
        Err(err) => {
            notes.push(format!(
                "cannot read {}: {err}; the counters start without what it holds",
                path.display()
            ));
            return None;
        }
    };
    match decode(&bytes) {
        Ok(value) => Some(value),
        Err(why) => {
            set_aside(dir, name, &why, now_unix_ms, notes);
            None
        }
    }
}

/// Moves `dir/name` aside as `<name>.unreadable-<unix time>`, saying why.
fn set_aside(dir: &Path, name: &str, why: &str, now_unix_ms: i64, notes: &mut Vec<String>) {
    let path = dir.join(name);
    let secs = now_unix_ms.max(0) / 1000;
    let aside = dir.join(format!("{name}.unreadable-{secs}"));
    match fs::rename(&path, &aside) {
        Ok(()) => notes.push(format!(
            "{} could not be used ({why}); moved to {}; the counters start without what it \
             held",
            path.display(),
            aside.display()
        )),
        Err(err) => notes.push(format!(
            "{} could not be used ({why}) nor moved aside ({err}); the counters start \
             without what it held",
            path.display()
        )),
    }
}

/// The recent points and the minute log as one saved history, as much of it as a restore
/// into `store` as of `now_unix_ms` keeps (see `CounterStore::restore_bounds`): the points
/// of the kept times and minutes of the kept series only. The files are compact (a run of
/// equal points, a minute that changed nothing), so building all they describe could take
/// far more memory than the files' size; this takes at most what the store holds.
fn combine(
    seconds: Option<(SecondsV1, Vec<i64>)>,
    minutes: format::LoggedMinutes,
    store: &CounterStore,
    now_unix_ms: i64,
) -> (SavedCounters, Vec<SavedServiceTraffic>, i64) {
    let mut saved = SavedCounters::default();
    let (seconds, second_times) = match seconds {
        Some((file, times)) => (Some(file), times),
        None => (None, Vec::new()),
    };
    let minute_times = minutes.minute_times;
    let bounds = store.restore_bounds(&second_times, &minute_times, now_unix_ms);
    // Every series of either file, with its runs of sample points and its minute changes.
    let mut parts: BTreeMap<SeriesKey, Parts> = BTreeMap::new();
    let mut traffic = Vec::new();
    let mut saved_unix_ms = 0;
    if let Some(file) = seconds {
        for s in file.series {
            let Ok(key) = serde_json::from_str::<SeriesKey>(&s.key) else {
                saved.unknown_series += 1;
                continue;
            };
            parts.entry(key).or_default().0 = Some(s.runs);
        }
        saved.owners = file.owners;
        saved.targets = file.targets;
        traffic = file.traffic;
        saved_unix_ms = file.saved_unix_ms;
    }
    saved.unknown_series += minutes.unknown_series;
    for (key, changes) in minutes.series {
        parts.entry(key).or_default().1 = Some(changes);
    }
    // The series the restore keeps: with a known point in the kept times or minutes, the
    // most recently seen first (the position of the last known sample point; a series
    // with minute points only was seen before them all), the first in key order among
    // equals.
    let mut kept: Vec<(usize, SeriesKey, Parts)> = parts
        .into_iter()
        .filter_map(|(key, (runs, changes))| {
            let seen = runs
                .as_deref()
                .and_then(|r| format::last_known(r, bounds.seconds.clone()))
                .map_or(0, |i| i + 1);
            let known = seen > 0
                || changes
                    .as_deref()
                    .is_some_and(|c| format::known_minute(c, bounds.minutes.clone()));
            known.then_some((seen, key, (runs, changes)))
        })
        .collect();
    kept.sort_by_key(|k| std::cmp::Reverse(k.0));
    kept.truncate(bounds.max_series);
    let series = kept
        .into_iter()
        .map(|(_, key, (runs, changes))| SavedSeries {
            key,
            seconds: match runs {
                Some(runs) => format::expand(&runs, bounds.seconds.clone()),
                None => vec![None; bounds.seconds.len()],
            },
            minutes: match changes {
                Some(changes) => format::minute_points(&changes, bounds.minutes.clone())
                    .into_iter()
                    .map(|v| v.is_finite().then_some(v))
                    .collect(),
                None => vec![None; bounds.minutes.len()],
            },
        })
        .collect();
    saved.history = SavedHistory {
        second_times: second_times[bounds.seconds].to_vec(),
        minute_times: minute_times[bounds.minutes].to_vec(),
        series,
    };
    (saved, traffic, saved_unix_ms)
}

/// One series of the files: its runs of sample points and its minute changes.
type Parts = (Option<Vec<format::Run>>, Option<format::MinuteChanges>);

/// Puts a history read by [`read`] in place in `store` (and the services' traffic in
/// `traffic`), after the samples taken since the start. Returns what to tell the user.
pub fn adopt(
    loaded: Loaded,
    store: &CounterStore,
    traffic: Option<&ServiceTraffic>,
    now_unix_ms: i64,
) -> String {
    let Loaded {
        prepared,
        traffic: saved_traffic,
        saved_unix_ms,
    } = loaded;
    match store.adopt(prepared) {
        Ok(r) => {
            let seconds = traffic.map_or(0, |t| t.restore(saved_traffic));
            let mut note = format!(
                "restored the counter history saved {} s ago: {} series, {} sample and {} \
                 minute points, {seconds} seconds of service traffic; the time the agent was \
                 down is a gap",
                now_unix_ms.saturating_sub(saved_unix_ms).max(0) / 1000,
                r.series,
                r.sample_points,
                r.minute_points
            );
            if r.unknown_series > 0 {
                note.push_str(&format!(
                    " ({} series of a kind this version does not know left out)",
                    r.unknown_series
                ));
            }
            note
        }
        Err(why) => format!("the saved counter history was not restored: {why}"),
    }
}

/// Restores the history a previous run saved in `dir` into `store`, as of `now_unix_ms`, at
/// once ([`read`] then [`adopt`]). Returns what to tell the user. No file: nothing to say.
pub fn load(dir: &Path, store: &CounterStore, now_unix_ms: i64) -> Vec<String> {
    let (loaded, mut notes) = read(dir, store, now_unix_ms);
    if let Some(loaded) = loaded {
        notes.push(adopt(loaded, store, None, now_unix_ms));
    }
    notes
}

/// Restores the history saved in `dir` on a blocking thread (see the module documentation),
/// logging what happened. The agent starts serving and sampling meanwhile; [`run`] waits for
/// the returned task before its first save.
pub fn restore_in_background(
    dir: PathBuf,
    store: Arc<CounterStore>,
    traces: Option<Arc<TraceStore>>,
) -> JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let now = crate::persist::now_unix_ms();
        let (loaded, mut notes) = read(&dir, &store, now);
        if let Some(loaded) = loaded {
            let note = adopt(loaded, &store, traces.as_ref().map(|t| t.traffic()), now);
            notes.push(format!(
                "{note} (read in {} ms)",
                started.elapsed().as_millis()
            ));
        }
        for note in notes {
            tracing::warn!("{note}");
        }
    })
}

/// Format 1's writer (`counters.json`: the whole history as JSON, built under the store's
/// lock): what earlier versions wrote, kept to test that an upgraded agent reads it and as
/// the benchmark's baseline. Returns the bytes written.
pub fn save_format_1(
    dir: &Path,
    store: &CounterStore,
    seconds_ms: i64,
    now_unix_ms: i64,
) -> Result<usize, AtomicWriteError> {
    let path = dir.join(COUNTERS_FILE);
    let file = CountersFile::V1 {
        saved_unix_ms: now_unix_ms,
        counters: store.save(seconds_ms),
    };
    let bytes = serde_json::to_vec(&file).map_err(|e| AtomicWriteError {
        step: "serialise",
        path: path.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    atomic_write(&path, &bytes, None)?;
    Ok(bytes.len())
}

/// What the log holds, as the saver appends to it.
#[derive(Debug, Default)]
struct LogState {
    /// Each logged key's index and its last logged point.
    keys: HashMap<SeriesKey, (u32, Point)>,
    next_index: u32,
    /// The newest minute in the log.
    last_minute: Option<i64>,
    /// Minutes in the log.
    minutes: usize,
}

/// What one save wrote and how long it held the store's lock.
#[derive(Debug, Clone, Copy, Default)]
pub struct Saved {
    /// Bytes of `counters.bin`.
    pub seconds_bytes: usize,
    /// Bytes appended to the minute log, or of the log rewritten whole.
    pub minute_bytes: usize,
    /// Whether the log was rewritten whole.
    pub log_rewritten: bool,
    /// Time under the counter store's lock (the copy).
    pub locked: Duration,
}

/// Saves a store's history to a data directory, save after save (see the module
/// documentation). One saver per directory.
#[derive(Debug)]
pub struct Saver {
    dir: PathBuf,
    seconds_ms: i64,
    rewrite_at_minutes: usize,
    /// `None`: the next save rewrites the log whole (the first one, or after a failure).
    log: Option<LogState>,
    format_1_removed: bool,
}

impl Saver {
    /// A saver of the last `seconds_ms` of sample points and every minute of `store`'s
    /// ring, into `dir`.
    pub fn new(dir: &Path, store: &CounterStore, seconds_ms: i64) -> Saver {
        Saver {
            dir: dir.to_path_buf(),
            seconds_ms,
            rewrite_at_minutes: store.minute_capacity() + COMPACT_AFTER_MINUTES,
            log: None,
            format_1_removed: false,
        }
    }

    /// Saves what changed since the last save: the recent points (and the services'
    /// traffic, from `traffic`) whole, the minutes closed since appended to the log (or the
    /// log rewritten whole). A log that cannot be written does not keep the recent points
    /// from being written; the first error is returned, and the next save rewrites the log.
    pub fn save(
        &mut self,
        store: &CounterStore,
        traffic: Option<&ServiceTraffic>,
        now_unix_ms: i64,
    ) -> Result<Saved, AtomicWriteError> {
        let rewrite = self
            .log
            .as_ref()
            .is_none_or(|l| l.minutes >= self.rewrite_at_minutes);
        let after = match &self.log {
            Some(log) if !rewrite => Some(log.last_minute.unwrap_or(i64::MIN)),
            _ => None,
        };
        let started = Instant::now();
        let copy = store.copy_for_save(self.seconds_ms, after);
        let mut saved = Saved {
            locked: started.elapsed(),
            ..Saved::default()
        };
        let log_path = self.dir.join(MINUTES_FILE);
        let logged = match self.log.as_mut().filter(|_| !rewrite) {
            None => {
                self.log = None;
                let (bytes, state) = whole_log(&copy.history);
                saved.minute_bytes = bytes.len();
                saved.log_rewritten = true;
                atomic_write(&log_path, &bytes, None).map(|()| self.log = Some(state))
            }
            Some(_) if copy.history.minute_times.is_empty() => Ok(()),
            Some(state) => {
                let bytes = appended(state, &copy.history);
                saved.minute_bytes = bytes.len();
                let written = append(&log_path, &bytes);
                if written.is_err() {
                    self.log = None;
                }
                written
            }
        };

        let since_secs = copy.time_unix_ms.map_or(i64::MIN, |t| {
            t.saturating_sub(self.seconds_ms).div_euclid(1000)
        });
        let h = &copy.history;
        let file = SecondsV1 {
            saved_unix_ms: now_unix_ms,
            first_time: h.second_times.first().copied().unwrap_or(0),
            times: u32::try_from(h.second_times.len()).unwrap_or(u32::MAX),
            time_steps: format::time_steps(&h.second_times),
            series: h
                .series
                .iter()
                .filter(|s| s.seconds.iter().any(|v| v.is_finite()))
                .map(|s| SeriesRuns {
                    key: key_text(&s.key),
                    runs: format::runs(&s.seconds),
                })
                .collect(),
            owners: copy.owners,
            targets: copy.targets,
            traffic: traffic.map(|t| t.save(since_secs)).unwrap_or_default(),
        };
        let bytes = format::seconds_file(&file);
        saved.seconds_bytes = bytes.len();
        atomic_write(&self.dir.join(SECONDS_FILE), &bytes, None)?;
        logged?;
        if !self.format_1_removed {
            match fs::remove_file(self.dir.join(COUNTERS_FILE)) {
                Ok(()) => tracing::info!(
                    "the counter history is now saved as {SECONDS_FILE} and {MINUTES_FILE}; \
                     {COUNTERS_FILE} (an earlier format) removed"
                ),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => tracing::warn!("cannot remove {COUNTERS_FILE}: {err}"),
            }
            self.format_1_removed = true;
        }
        Ok(saved)
    }
}

/// The key as the API writes it (JSON).
fn key_text(key: &SeriesKey) -> String {
    serde_json::to_string(key).unwrap_or_default()
}

/// A whole log of `copy`'s minutes, and what it holds.
fn whole_log(copy: &HistoryCopy) -> (Vec<u8>, LogState) {
    let mut state = LogState::default();
    let mut out = format::log_header();
    let logged: Vec<usize> = (0..copy.series.len())
        .filter(|&i| copy.series[i].minutes.iter().any(|v| v.is_finite()))
        .collect();
    let keys = logged
        .iter()
        .map(|&i| {
            let key = &copy.series[i].key;
            state
                .keys
                .insert(key.clone(), (state.next_index, Point::Gap));
            state.next_index += 1;
            key_text(key)
        })
        .collect();
    format::frame(&Record::Keys { first: 0, keys }, &mut out);
    let mut last = vec![Point::Gap; logged.len()];
    for (m, &start_unix_ms) in copy.minute_times.iter().enumerate() {
        let mut changes = Vec::new();
        let mut prev = 0;
        for (index, &i) in logged.iter().enumerate() {
            let p = Point::of(copy.series[i].minutes.get(m).copied().unwrap_or(f32::NAN));
            if p != last[index] {
                last[index] = p;
                changes.push((index as u32 - prev, p));
                prev = index as u32;
            }
        }
        format::frame(
            &Record::Minute {
                start_unix_ms,
                changes,
            },
            &mut out,
        );
    }
    for (index, &i) in logged.iter().enumerate() {
        if let Some(entry) = state.keys.get_mut(&copy.series[i].key) {
            entry.1 = last[index];
        }
    }
    state.last_minute = copy.minute_times.last().copied();
    state.minutes = copy.minute_times.len();
    (out, state)
}

/// The records that bring a log at `state` up to `copy` (its minutes are those closed since
/// the log's newest): keys the history no longer holds forgotten, new keys defined, then one
/// record of changes per minute. `state` follows.
fn appended(state: &mut LogState, copy: &HistoryCopy) -> Vec<u8> {
    let mut out = Vec::new();
    let present: HashSet<&SeriesKey> = copy.series.iter().map(|s| &s.key).collect();
    let mut gone: Vec<u32> = Vec::new();
    state.keys.retain(|key, (index, _)| {
        let keep = present.contains(key);
        if !keep {
            gone.push(*index);
        }
        keep
    });
    if !gone.is_empty() {
        gone.sort_unstable();
        format::frame(&Record::Forget { keys: gone }, &mut out);
    }
    let first = state.next_index;
    let mut keys = Vec::new();
    for s in &copy.series {
        if !state.keys.contains_key(&s.key) && s.minutes.iter().any(|v| v.is_finite()) {
            state
                .keys
                .insert(s.key.clone(), (state.next_index, Point::Gap));
            state.next_index += 1;
            keys.push(key_text(&s.key));
        }
    }
    if !keys.is_empty() {
        format::frame(&Record::Keys { first, keys }, &mut out);
    }
    for (m, &start_unix_ms) in copy.minute_times.iter().enumerate() {
        let mut changed: Vec<(u32, Point)> = copy
            .series
            .iter()
            .filter_map(|s| {
                let (index, last) = state.keys.get_mut(&s.key)?;
                let p = Point::of(s.minutes.get(m).copied().unwrap_or(f32::NAN));
                (p != *last).then(|| {
                    *last = p;
                    (*index, p)
                })
            })
            .collect();
        changed.sort_unstable_by_key(|c| c.0);
        let mut prev = 0;
        let changes = changed
            .into_iter()
            .map(|(index, p)| {
                let gap = index - prev;
                prev = index;
                (gap, p)
            })
            .collect();
        format::frame(
            &Record::Minute {
                start_unix_ms,
                changes,
            },
            &mut out,
        );
        state.last_minute = Some(start_unix_ms);
        state.minutes += 1;
    }
    out
}

/// Appends `bytes` to the log at `path` and waits until they are on disk.
fn append(path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
    let fail = |step, source| AtomicWriteError {
        step,
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| fail("open for appending", e))?;
    file.write_all(bytes).map_err(|e| fail("append to", e))?;
    file.sync_data().map_err(|e| fail("fsync", e))
}

/// Saves the history of `store` (and the services' traffic of `traces`) to `dir` every
/// `every` until `stop`, and once more then (see the module documentation); `seconds_ms` of
/// per-sample points each time. Waits for `restored` (the start's restore) first.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    store: Arc<CounterStore>,
    traces: Option<Arc<TraceStore>>,
    dir: PathBuf,
    every: Duration,
    seconds_ms: i64,
    restored: JoinHandle<()>,
    status: Arc<SaveStatus>,
    health: HealthRegistry,
    stop: CancellationToken,
) {
    // Saving before the restore is in place would replace the saved history with the
    // seconds since the start.
    if let Err(err) = restored.await {
        tracing::warn!("the counter history's restore failed: {err}");
    }
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut saver = Some(Saver::new(&dir, &store, seconds_ms));
    let mut stopping = false;
    while !stopping {
        tokio::select! {
            _ = stop.cancelled() => stopping = true,
            _ = tick.tick() => {}
        }
        let (store, traces) = (store.clone(), traces.clone());
        let mut this = saver
            .take()
            .unwrap_or_else(|| Saver::new(&dir, &store, seconds_ms));
        let job = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let traffic = traces.as_ref().map(|t| t.traffic());
            let outcome = this.save(&store, traffic, crate::persist::now_unix_ms());
            (this, outcome, started.elapsed())
        });
        let outcome = match job.await {
            Ok((this, Ok(saved), took)) => {
                saver = Some(this);
                let bytes = saved.seconds_bytes + saved.minute_bytes;
                status.bytes.store(bytes as u64, Ordering::Relaxed);
                let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
                status.micros.store(micros(took), Ordering::Relaxed);
                status
                    .locked_micros
                    .store(micros(saved.locked), Ordering::Relaxed);
                Ok(())
            }
            Ok((this, Err(err), _)) => {
                saver = Some(this);
                Err(err.to_string())
            }
            Err(err) => Err(format!("the save task failed: {err}")),
        };
        let was_failing = status.outcomes.failure().is_some();
        match &outcome {
            Ok(()) if was_failing => tracing::info!("the counter history is saved again"),
            Err(err) if !was_failing => tracing::warn!(
                "cannot save the counter history (kept in memory, retried every {every:?}): \
                 {err}"
            ),
            _ => {}
        }
        status.outcomes.record(outcome);
        health.set("counter_history", component(&dir, every, &status));
    }
}

/// The `counter_history` component of health.
fn component(dir: &Path, every: Duration, status: &SaveStatus) -> Component {
    let path = dir.join(SECONDS_FILE);
    match status.outcomes.failure() {
        None => Component {
            state: ComponentState::Running,
            address: None,
            detail: Some(format!(
                "{} and {MINUTES_FILE} every {} s ({} bytes written, {} ms to save, {} ms of \
                 it under the counters' lock)",
                path.display(),
                every.as_secs(),
                status.bytes.load(Ordering::Relaxed),
                status.micros.load(Ordering::Relaxed) / 1000,
                status.locked_micros.load(Ordering::Relaxed) / 1000
            )),
        },
        Some(why) => Component {
            state: ComponentState::Failing,
            address: None,
            detail: Some(format!(
                "{}: not saved (kept in memory, retrying): {why}",
                path.display()
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_ingest::counters::{CountersConfig, NodeSampler, SnapshotOptions};
    use faultline_ingest::traces::RequestSource;

    /// Real node samples (the node's own sockets), every 5 s from `from` for `n` samples.
    fn sample(store: &CounterStore, sampler: &mut NodeSampler, from: i64, n: i64) {
        for i in 0..n {
            let sample = sampler.sample(from + i * 5000, None);
            store.record_port_owners(sampler.port_owners());
            store.record_sample(sample);
        }
    }

    /// A minute-aligned time a few minutes ago.
    fn minute_ago() -> i64 {
        (crate::persist::now_unix_ms() / 60_000 - 5) * 60_000
    }

    fn history(store: &CounterStore) -> faultline_ingest::counters::store::HistoryBlock {
        store.snapshot(&SnapshotOptions::default()).history.unwrap()
    }

    /// The node's LISTEN sockets: a series every node has at every sample.
    const LISTEN: SeriesKey = SeriesKey::NodeState {
        state: faultline_series::SocketState::Listen,
    };

    /// Saves and a restart: the sample points and the minute points come back as they were,
    /// with the services' traffic; the first save rewrote the minute log, the next appended
    /// only the minute closed since, and one with no closed minute wrote no minute at all.
    #[test]
    fn the_history_comes_back_through_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = CounterStore::new(&CountersConfig::default());
        let mut sampler = NodeSampler::new(&CountersConfig::default());
        let t0 = minute_ago();
        sample(&store, &mut sampler, t0, 30); // 0 s .. 145 s: two closed minutes
        let traffic = ServiceTraffic::new();
        let second = (t0 + 140_000) / 1000;
        traffic.record(
            "orders",
            second * 1_000_000_000,
            true,
            RequestSource::ServerSpan,
        );
        let mut saver = Saver::new(dir.path(), &store, 420_000);
        let first = saver.save(&store, Some(&traffic), t0 + 150_000).unwrap();
        assert!(first.log_rewritten && first.minute_bytes > 0, "{first:?}");
        let quiet = saver.save(&store, Some(&traffic), t0 + 151_000).unwrap();
        assert_eq!((quiet.log_rewritten, quiet.minute_bytes), (false, 0));
        sample(&store, &mut sampler, t0 + 150_000, 7); // 150 s .. 180 s: minute 2 closes
        let next = saver.save(&store, Some(&traffic), t0 + 181_000).unwrap();
        assert!(!next.log_rewritten && next.minute_bytes > 0, "{next:?}");
        assert!(next.minute_bytes < first.minute_bytes, "{first:?} {next:?}");

        let back = CounterStore::new(&CountersConfig::default());
        let back_traffic = ServiceTraffic::new();
        let (loaded, notes) = read(dir.path(), &back, t0 + 185_000);
        assert!(notes.is_empty(), "{notes:?}");
        let note = adopt(loaded.unwrap(), &back, Some(&back_traffic), t0 + 185_000);
        assert!(note.starts_with("restored the counter history"), "{note}");
        let (before, after) = (history(&store), history(&back));
        assert_eq!(after.minutes.times_unix_ms, [t0, t0 + 60_000, t0 + 120_000]);
        assert_eq!(after.minutes.times_unix_ms, before.minutes.times_unix_ms);
        assert_eq!(
            after.minutes.series[&LISTEN],
            before.minutes.series[&LISTEN]
        );
        assert_eq!(after.seconds.times_unix_ms, before.seconds.times_unix_ms);
        assert_eq!(
            after.seconds.series[&LISTEN],
            before.seconds.series[&LISTEN]
        );
        let orders = back_traffic.series(second, 1);
        assert_eq!((orders[0].requests[0], orders[0].failures[0]), (1, 1));
    }

    /// A kill between the two writes of a save, either way round: the minute log written and
    /// `counters.bin` not (the log reaches a minute the recent points do not), or
    /// `counters.bin` written and the log not (a log that could not be written). Both
    /// restore every minute point, each once.
    #[test]
    fn a_kill_between_the_minute_log_and_the_recent_points_loses_no_minute() {
        let store = CounterStore::new(&CountersConfig::default());
        let mut sampler = NodeSampler::new(&CountersConfig::default());
        let t0 = minute_ago();
        sample(&store, &mut sampler, t0, 20); // 0 s .. 95 s
        let (log_first, seconds_first) =
            (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut savers =
            [log_first.path(), seconds_first.path()].map(|dir| Saver::new(dir, &store, 420_000));
        for saver in &mut savers {
            saver.save(&store, None, t0 + 96_000).unwrap();
        }
        sample(&store, &mut sampler, t0 + 100_000, 6); // .. 125 s: minute 1 closes
        let expected = history(&store).minutes;
        assert_eq!(expected.times_unix_ms, [t0, t0 + 60_000]);

        // The log's append, then the kill.
        let [log_saver, seconds_saver] = &mut savers;
        let state = log_saver.log.as_mut().unwrap();
        let copy = store.copy_for_save(420_000, state.last_minute);
        append(
            &log_first.path().join(MINUTES_FILE),
            &appended(state, &copy.history),
        )
        .unwrap();
        // The log cannot be written (a directory in its place); the recent points can.
        let log = seconds_first.path().join(MINUTES_FILE);
        fs::remove_file(&log).unwrap();
        fs::create_dir(&log).unwrap();
        let err = seconds_saver.save(&store, None, t0 + 126_000).unwrap_err();
        assert_eq!(err.step, "open for appending", "{err}");
        fs::remove_dir(&log).unwrap();
        fs::write(&log, format::log_header()).unwrap();
        // The first minute's log record is gone with the file: only the recent points
        // (0 s .. 125 s) still hold it.

        for dir in [log_first.path(), seconds_first.path()] {
            let back = CounterStore::new(&CountersConfig::default());
            let notes = load(dir, &back, t0 + 130_000);
            assert!(notes[0].starts_with("restored"), "{notes:?}");
            let minutes = history(&back).minutes;
            assert_eq!(minutes.times_unix_ms, expected.times_unix_ms, "{dir:?}");
            assert_eq!(minutes.series[&LISTEN], expected.series[&LISTEN], "{dir:?}");
        }
    }

    /// A format-1 file (`counters.json`, written by earlier versions) is read when the new
    /// files are not there, and removed by the first save in the new format.
    #[test]
    fn a_format_1_file_is_read_then_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = CounterStore::new(&CountersConfig::default());
        let mut sampler = NodeSampler::new(&CountersConfig::default());
        let t0 = minute_ago();
        sample(&store, &mut sampler, t0, 15);
        save_format_1(dir.path(), &store, 420_000, t0 + 75_000).unwrap();
        let next = CounterStore::new(&CountersConfig::default());
        let notes = load(dir.path(), &next, t0 + 80_000);
        assert!(notes[0].starts_with("restored"), "{notes:?}");
        assert_eq!(
            history(&next).seconds.series[&LISTEN],
            history(&store).seconds.series[&LISTEN]
        );
        Saver::new(dir.path(), &next, 420_000)
            .save(&next, None, t0 + 81_000)
            .unwrap();
        assert!(!dir.path().join(COUNTERS_FILE).exists());
        assert!(dir.path().join(SECONDS_FILE).exists() && dir.path().join(MINUTES_FILE).exists());
    }

    /// A corrupt file, a format this version does not know and a file that contradicts
    /// itself are each moved aside; the agent starts without what it held.
    #[test]
    fn an_unusable_file_is_moved_aside_and_the_counters_start_empty() {
        let store = CounterStore::new(&CountersConfig::default());
        let mut sampler = NodeSampler::new(&CountersConfig::default());
        let t0 = minute_ago();
        sample(&store, &mut sampler, t0, 15);
        let good = tempfile::tempdir().unwrap();
        Saver::new(good.path(), &store, 420_000)
            .save(&store, None, t0 + 75_000)
            .unwrap();
        let seconds = fs::read(good.path().join(SECONDS_FILE)).unwrap();
        let minutes = fs::read(good.path().join(MINUTES_FILE)).unwrap();
        let damaged = |bytes: &[u8], at: usize| {
            let mut b = bytes.to_vec();
            b[at] ^= 0x40;
            b
        };
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                COUNTERS_FILE,
                b"{\"format\":\"1\",\"saved_unix_ms\":1,\"coun".to_vec(),
            ),
            (
                COUNTERS_FILE,
                br#"{"format":"7","saved_unix_ms":1}"#.to_vec(),
            ),
            (
                COUNTERS_FILE,
                br#"{"format":"1","saved_unix_ms":1,"counters":{"version":"1",
                "second_times":[2000,1000],"minute_times":[],"series":[],"owners":[],
                "targets":[]}}"#
                    .to_vec(),
            ),
            (SECONDS_FILE, damaged(&seconds, seconds.len() / 2)),
            (SECONDS_FILE, damaged(&seconds, 8)), // format 1 ^ 0x40: unknown
            (MINUTES_FILE, damaged(&minutes, 9)),
            (MINUTES_FILE, b"FLCTRSEC".to_vec()),
        ];
        for (name, content) in cases {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join(name), &content).unwrap();
            let store = CounterStore::new(&CountersConfig::default());
            let notes = load(dir.path(), &store, 5_000_000);
            assert_eq!(notes.len(), 1, "{name}: {notes:?}");
            assert!(notes[0].contains("moved to"), "{name}: {notes:?}");
            assert!(!dir.path().join(name).exists());
            assert!(dir.path().join(format!("{name}.unreadable-5000")).exists());
            assert!(history(&store).seconds.times_unix_ms.is_empty());
        }
    }

    /// Files cut short at any byte (a crash, a copy cut off): `counters.bin` cut short is
    /// refused and moved aside, and the minute log's minutes still come back; the log cut
    /// short gives back every minute recorded before the cut, said so, with the recent
    /// points whole.
    #[test]
    fn files_cut_short_anywhere_give_back_what_stands_before_the_cut() {
        let good = tempfile::tempdir().unwrap();
        let store = CounterStore::new(&CountersConfig::default());
        let mut sampler = NodeSampler::new(&CountersConfig::default());
        let t0 = minute_ago();
        sample(&store, &mut sampler, t0, 40); // 0 s .. 195 s: three closed minutes
        Saver::new(good.path(), &store, 420_000)
            .save(&store, None, t0 + 200_000)
            .unwrap();
        let seconds = fs::read(good.path().join(SECONDS_FILE)).unwrap();
        let minutes = fs::read(good.path().join(MINUTES_FILE)).unwrap();
        let now = t0 + 205_000;
        let load_cut = |seconds: &[u8], minutes: &[u8]| {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join(SECONDS_FILE), seconds).unwrap();
            fs::write(dir.path().join(MINUTES_FILE), minutes).unwrap();
            let back = CounterStore::new(&CountersConfig::default());
            let notes = load(dir.path(), &back, now);
            (history(&back), notes)
        };
        let whole = history(&store);
        assert_eq!(whole.minutes.times_unix_ms.len(), 3);

        // Where the log's records end.
        let mut ends = vec![format::log_header().len()];
        while let Some(&at) = ends.last().filter(|&&at| at < minutes.len()) {
            let len = u32::from_le_bytes(minutes[at..at + 4].try_into().unwrap()) as usize;
            ends.push(at + 8 + len);
        }
        assert_eq!(ends.last(), Some(&minutes.len()));
        // Every record's end and the bytes either side of it, and a byte every 1/200 of the
        // log between.
        let mut cuts: Vec<usize> = ends
            .iter()
            .flat_map(|&e| [e.saturating_sub(1), e, e + 1])
            .chain((12..minutes.len()).step_by((minutes.len() / 200).max(1)))
            .filter(|&c| (12..minutes.len()).contains(&c))
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut restored_before = 0;
        for cut in cuts {
            let (back, notes) = load_cut(&seconds, &minutes[..cut]);
            let restored = notes.iter().any(|n| n.starts_with("restored"));
            assert!(restored, "log cut at {cut}: {notes:?}");
            assert_eq!(
                notes.iter().any(|n| n.contains("not a whole record")),
                !ends.contains(&cut),
                "log cut at {cut}: {notes:?}"
            );
            // Minutes whose record was cut are closed again from the recent points: every
            // minute is back, the same as before whichever record the cut fell in.
            assert_eq!(
                back.minutes.times_unix_ms, whole.minutes.times_unix_ms,
                "cut {cut}"
            );
            assert_eq!(back.seconds.series[&LISTEN], whole.seconds.series[&LISTEN]);
            restored_before += 1;
        }
        assert!(restored_before > 0);

        let step = (seconds.len() / 47).max(1);
        for cut in (0..seconds.len()).step_by(step) {
            let (back, notes) = load_cut(&seconds[..cut], &minutes);
            assert!(
                notes.iter().any(|n| n.contains("moved to")),
                "counters.bin cut at {cut}: {notes:?}"
            );
            assert!(notes.iter().any(|n| n.starts_with("restored")), "{notes:?}");
            assert!(back.seconds.times_unix_ms.is_empty(), "cut {cut}");
            assert_eq!(back.minutes.times_unix_ms, whole.minutes.times_unix_ms);
            assert_eq!(back.minutes.series[&LISTEN], whole.minutes.series[&LISTEN]);
        }

        // A whole `counters.bin` that contradicts itself (a series' runs hold a point more
        // than its times) is set aside the same way; the log's minutes still come back.
        let mut file = format::read_seconds_file(&seconds).unwrap();
        file.series[0].runs.push((Point::Count(1), 1));
        let (back, notes) = load_cut(&format::seconds_file(&file), &minutes);
        assert!(
            notes
                .iter()
                .any(|n| n.contains("points for") && n.contains("moved to")),
            "{notes:?}"
        );
        assert_eq!(back.minutes.times_unix_ms, whole.minutes.times_unix_ms);
        assert_eq!(back.minutes.series[&LISTEN], whole.minutes.series[&LISTEN]);
    }

    /// Files whose counts are within their own size but whose points are many (runs of a
    /// point repeated over thousands of sample times, minutes that change nothing, thousands
    /// of series): the reader builds only what the store keeps (its newest sample times and
    /// minutes, at most `max_series` series, the most recently seen), not all the files
    /// describe, and what it builds is what the store restores from it.
    #[test]
    fn files_describing_more_than_the_store_keeps_are_read_within_its_bounds() {
        let key = |port: u16| SeriesKey::PortState {
            port,
            side: faultline_series::PortSide::Local,
            state: faultline_series::SocketState::CloseWait,
        };
        let (times, keys, minutes) = (5_000u32, 2_000u16, 3_000i64);
        let first_time = 1_796_000_000_000;
        let file = SecondsV1 {
            saved_unix_ms: first_time + i64::from(times) * 1000,
            first_time,
            times,
            time_steps: vec![1000; times as usize - 1],
            series: (0..keys)
                .map(|port| SeriesRuns {
                    key: key_text(&key(port)),
                    // Port p last seen at time 4,000 + p (the newest ports are the most
                    // recently seen), then gaps.
                    runs: vec![
                        (
                            Point::Count(u32::from(port)),
                            4_001 + u32::from(port) % 1_000,
                        ),
                        (Point::Gap, times - 4_001 - u32::from(port) % 1_000),
                    ],
                })
                .collect(),
            owners: Vec::new(),
            targets: Vec::new(),
            traffic: Vec::new(),
        };
        let mut log = format::log_header();
        format::frame(
            &Record::Keys {
                first: 0,
                keys: (0..keys).map(|p| key_text(&key(p))).collect(),
            },
            &mut log,
        );
        let last_minute = (first_time + i64::from(times) * 1000) / 60_000 * 60_000;
        for m in 0..minutes {
            let changes = if m == 0 {
                (0..u32::from(keys))
                    .map(|i| (u32::from(i > 0), Point::Count(1)))
                    .collect()
            } else {
                Vec::new()
            };
            format::frame(
                &Record::Minute {
                    start_unix_ms: last_minute - (minutes - 1 - m) * 60_000,
                    changes,
                },
                &mut log,
            );
        }
        let bin = format::seconds_file(&file);
        assert!(
            bin.len() + log.len() < 500_000,
            "{} + {}",
            bin.len(),
            log.len()
        );
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(SECONDS_FILE), &bin).unwrap();
        fs::write(dir.path().join(MINUTES_FILE), &log).unwrap();

        let config = CountersConfig::default();
        let store = CounterStore::new(&config);
        // One sample interval after the last sample time: the store keeps 900 of them.
        let now = file.saved_unix_ms;
        let seconds = format::read_checked_seconds_file(&bin).unwrap();
        let minutes_read = format::read_minute_log(&log).unwrap();
        let (saved, _, _) = combine(Some(seconds), minutes_read, &store, now);
        let h = &saved.history;
        assert_eq!(h.second_times.len(), config.history_seconds);
        assert_eq!(h.minute_times.len(), config.history_minutes);
        assert_eq!(h.series.len(), config.max_series);
        for s in &h.series {
            assert_eq!(s.seconds.len(), h.second_times.len());
            assert_eq!(s.minutes.len(), h.minute_times.len());
        }
        // The most recently seen: ports whose last point is among the newest times.
        assert!(h.series.iter().any(|s| s.key == key(999)));
        assert!(!h.series.iter().any(|s| s.key == key(0)));

        let notes = load(dir.path(), &store, now);
        assert!(notes[0].starts_with("restored"), "{notes:?}");
        let back = history(&store);
        assert_eq!(back.seconds.series.len(), config.max_series);
        assert_eq!(back.seconds.times_unix_ms, h.second_times);
        assert_eq!(back.minutes.times_unix_ms, h.minute_times);
    }

    /// A save that cannot reach the disk is reported, and the old files stay.
    #[test]
    fn a_failed_save_is_an_error_and_the_previous_files_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = CounterStore::new(&CountersConfig::default());
        let mut sampler = NodeSampler::new(&CountersConfig::default());
        sample(&store, &mut sampler, minute_ago(), 3);
        Saver::new(dir.path(), &store, 60_000)
            .save(&store, None, 1)
            .unwrap();
        let before = fs::read(dir.path().join(SECONDS_FILE)).unwrap();
        let gone = dir.path().join("gone");
        let err = Saver::new(&gone, &store, 60_000)
            .save(&store, None, 2)
            .unwrap_err();
        assert_eq!(err.step, "create");
        assert_eq!(fs::read(dir.path().join(SECONDS_FILE)).unwrap(), before);
    }
}
