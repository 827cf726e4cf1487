//! The counter history's files as the agent writes them (`counters.bin`, the recent points,
//! and `counters-minutes.log`, the minute log: `persist::counters::format`), read at a start
//! as the agent reads them ([`counters::read`], then [`counters::adopt`] with the services'
//! traffic) into a counter store with small bounds.
//!
//! The input: a flags byte (bit 0: write `counters.bin`; bit 1: write the log; bit 2: set
//! their CRC-32s right first, so that the fuzzer reaches the decoders behind checksums it
//! could not guess), the length of `counters.bin`'s part (u32, little-endian, cut to what
//! follows), that part, then the log's bytes.
//!
//! Besides not panicking, and never allocating more than libFuzzer's limit (a count or a
//! length in a file must never make the reader build more than the file's size or the
//! store's bounds allow): a file that is there is restored or refused with a note, and a
//! refused one is moved aside; the restored history keeps within the store's bounds, its
//! axes in order and every series aligned with them; a sample recorded after follows on the
//! same axes; and what this history saves in the same files loads again, unchanged.

use std::collections::BTreeMap;
use std::ops::Range;

use faultline_agent::persist::counters::{self, format, Saver, MINUTES_FILE, SECONDS_FILE};
use faultline_ingest::counters::store::HistoryBlock;
use faultline_ingest::counters::{CounterStore, CountersConfig};
use faultline_ingest::traces::ServiceTraffic;

/// "Now" of the start when the files name no plausible time of their own (2026-12-05 22:13
/// UTC). Otherwise 5 s after the newest time they name: a start soon after the save, as
/// the seeds (real files, written at any time) were.
const NOW_UNIX_MS: i64 = 1_796_500_000_000;

/// The store's bounds: small, so that real files (a default agent keeps 900 sample points,
/// 1,440 minutes and 1,024 series) are cut to them.
fn config() -> CountersConfig {
    CountersConfig {
        history_seconds: 64,
        history_minutes: 32,
        max_series: 16,
        ..CountersConfig::default()
    }
}

/// Runs one input. Panics (the fuzzer's finding) when an invariant above is broken.
pub fn run(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (len, rest) = match rest.split_first_chunk::<4>() {
        Some((len, rest)) => (u32::from_le_bytes(*len) as usize, rest),
        None => (0, rest),
    };
    let (seconds, minutes) = rest.split_at(len.min(rest.len()));
    let (mut seconds, mut minutes) = (seconds.to_vec(), minutes.to_vec());
    if flags & 4 != 0 {
        fix_checksums(&mut seconds, &mut minutes);
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let files = [
        (flags & 1 != 0, SECONDS_FILE, &seconds),
        (flags & 2 != 0, MINUTES_FILE, &minutes),
    ];
    for &(present, name, bytes) in &files {
        if present {
            std::fs::write(dir.path().join(name), bytes).expect("write a counter history file");
        }
    }
    let now = start_time(&seconds, &minutes);
    let store = CounterStore::new(&config());
    let traffic = ServiceTraffic::new();
    let (loaded, mut notes) = counters::read(dir.path(), &store, now);
    if let Some(loaded) = loaded {
        notes.push(counters::adopt(loaded, &store, Some(&traffic), now));
    }
    let restored = notes
        .iter()
        .any(|n| n.starts_with("restored the counter history"));
    if files.iter().any(|f| f.0) && !restored {
        assert!(
            !notes.is_empty(),
            "the counter history was refused silently"
        );
    }
    for note in &notes {
        if note.contains("could not be used") {
            assert!(note.contains("moved to"), "a refused file stays: {note}");
        }
    }
    for &(present, name, _) in &files {
        if present
            && notes
                .iter()
                .any(|n| n.contains(&format!("{name} could not be used")))
        {
            assert!(
                !dir.path().join(name).exists(),
                "{name} refused but not moved aside"
            );
        }
    }
    check(&store, "restored");

    // The next sample follows the restored points on the same axes.
    super::counters::sample_after_restore(&store, now + 1_000);
    let before = check(&store, "sampled after the restore");

    // What this history saves (every sample point it holds) loads again, unchanged: as much
    // of it as a restore keeps at that time (the same bounds).
    let again_dir = tempfile::tempdir().expect("a temporary directory");
    if let Err(err) =
        Saver::new(again_dir.path(), &store, i64::MAX).save(&store, Some(&traffic), now + 1_000)
    {
        panic!("the restored history cannot be saved: {err}");
    }
    let again = CounterStore::new(&config());
    let (loaded, notes) = counters::read(again_dir.path(), &again, now + 1_000);
    assert!(notes.is_empty(), "a history this version saved: {notes:?}");
    let loaded = loaded.expect("a history this version saved is read");
    let note = counters::adopt(loaded, &again, Some(&ServiceTraffic::new()), now + 1_000);
    assert!(
        note.starts_with("restored the counter history"),
        "the history saved from a restored one is refused: {note}"
    );
    let after = check(&again, "saved and restored again");
    let bounds = again.restore_bounds(
        &before.seconds.times_unix_ms,
        &before.minutes.times_unix_ms,
        now + 1_000,
    );
    for (name, b, a, kept) in [
        ("seconds", &before.seconds, &after.seconds, bounds.seconds),
        ("minutes", &before.minutes, &after.minutes, bounds.minutes),
    ] {
        assert_eq!(
            b.times_unix_ms[kept.clone()],
            a.times_unix_ms[..],
            "the {name} axis changed"
        );
        assert_eq!(
            known(&b.series, kept),
            known(&a.series, 0..a.times_unix_ms.len()),
            "the {name} points changed"
        );
    }
}

/// The points of `series` at `kept`, of the series with a known one there.
fn known<K: Ord + Clone>(
    series: &BTreeMap<K, Vec<Option<f32>>>,
    kept: Range<usize>,
) -> BTreeMap<K, Vec<Option<f32>>> {
    series
        .iter()
        .map(|(k, p)| (k.clone(), p[kept.clone()].to_vec()))
        .filter(|(_, p)| p.iter().any(Option::is_some))
        .collect()
}

/// The CRC-32s of both files set right: `counters.bin`'s last 4 bytes, and each whole
/// record's of the log.
fn fix_checksums(seconds: &mut [u8], minutes: &mut [u8]) {
    if let Some(split) = seconds.len().checked_sub(4).filter(|&n| n >= 12) {
        let crc = crc32(&seconds[..split]);
        seconds[split..].copy_from_slice(&crc.to_le_bytes());
    }
    let mut at = 12;
    while at + 8 <= minutes.len() {
        let len = u32::from_le_bytes([
            minutes[at],
            minutes[at + 1],
            minutes[at + 2],
            minutes[at + 3],
        ]) as usize;
        if len > minutes.len() - at - 8 {
            break;
        }
        let crc = crc32(&minutes[at + 8..at + 8 + len]);
        minutes[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        at += 8 + len;
    }
}

/// CRC-32 (IEEE), as the files use (crc32fast), bit by bit: the harness needs no crate more.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// 5 s after the newest time the files name (the save, the last minute), when it is
/// plausible (2020 to 2100); the fixed [`NOW_UNIX_MS`] else.
fn start_time(seconds: &[u8], minutes: &[u8]) -> i64 {
    let plausible = 1_577_836_800_000..4_102_444_800_000;
    let saved = format::read_seconds_file(seconds)
        .ok()
        .map(|s| s.saved_unix_ms);
    let minute = format::read_minute_log(minutes)
        .ok()
        .and_then(|m| m.minute_times.last().map(|t| t.saturating_add(60_000)));
    saved
        .into_iter()
        .chain(minute)
        .filter(|t| plausible.contains(t))
        .max()
        .map_or(NOW_UNIX_MS, |t| t + 5_000)
}

/// The history's axes hold ([`super::counters::check_axes`]) and so do the store's bounds.
/// Returns the history.
fn check(store: &CounterStore, when: &str) -> HistoryBlock {
    let config = config();
    let history = super::counters::check_axes(store, when);
    for (name, view, cap) in [
        ("seconds", &history.seconds, config.history_seconds),
        ("minutes", &history.minutes, config.history_minutes),
    ] {
        assert!(
            view.times_unix_ms.len() <= cap,
            "{when}: {} {name} for a bound of {cap}",
            view.times_unix_ms.len()
        );
        assert!(
            view.series.len() <= config.max_series,
            "{when}: {} series for a bound of {}",
            view.series.len(),
            config.max_series
        );
    }
    history
}
