//! Log lines: a tailed file's bytes through the tailer's line handling (split at `\n`, NUL
//! bytes skipped, lines cut at the line limit, lossy UTF-8, `\r` stripped), multi-line
//! joining ([`Multiline`]) and the line parser ([`parse_line_with`]), every physical line
//! also parsed on its own.
//!
//! Input: byte 0 picks the zone of naive timestamps, byte 1 the line limit, the rest is the
//! file. Besides not panicking, what the tailer and the store rely on must hold: records come
//! in file order without overlapping, no record is longer than the limit, a record's own time
//! is believable (after 2000, at most a day ahead of its observation) or absent, and every
//! record serialises (the API sends them as JSON).

use std::time::Instant;

use faultline_ingest::parse::{parse_line_with, Multiline, ParseOptions};
use faultline_ingest::{LogRecord, Origin};

/// Zones of naive timestamps, seconds east of UTC (the extremes, India's half hour, UTC).
const ZONES: [i32; 6] = [0, 3_600, -18_000, 19_800, 50_400, -43_200];
/// Line limits: tiny (cuts inside UTF-8 and inside JSON), small, the default, large.
const LIMITS: [usize; 4] = [16, 512, 16 * 1024, 256 * 1024];
/// The observation time of every record: 2026-01-01T00:00:00Z, fixed so runs repeat.
const OBSERVED: i64 = 1_767_225_600 * 1_000_000_000;
/// 2000-01-01T00:00:00Z: the parser believes no earlier time.
const EARLIEST: i64 = 946_684_800 * 1_000_000_000;
/// A record's time may lie at most a day after its observation.
const MOST_AHEAD: i64 = 86_400 * 1_000_000_000;

/// Runs one input. Panics (the fuzzer's finding) when an invariant above is broken.
pub fn run(data: &[u8]) {
    let (options, limit, file) = match data {
        [zone, limit, file @ ..] => (
            ParseOptions {
                naive_utc_offset_secs: ZONES[usize::from(*zone) % ZONES.len()],
            },
            LIMITS[usize::from(*limit) % LIMITS.len()],
            file,
        ),
        _ => return,
    };
    let now = Instant::now();
    let mut joiner = Multiline::new(limit);
    let mut last_end = 0u64;
    let mut fed = 0u32;
    let mut joined = 0u32;
    let mut check_record = |record: Option<faultline_ingest::parse::MultilineRecord>| {
        let Some(record) = record else {
            return;
        };
        assert!(
            record.start_offset >= last_end && record.start_offset < record.end_offset,
            "record {}..{} after one ending at {last_end}",
            record.start_offset,
            record.end_offset
        );
        assert!(
            record.text.len() <= limit,
            "a record of {} bytes passed the limit {limit}",
            record.text.len()
        );
        last_end = record.end_offset;
        joined += record.lines;
        let origin = Origin::File {
            path: "fuzz.log".into(),
            offset: record.start_offset,
        };
        check_parsed(&parse_line_with(&record.text, origin, &options, OBSERVED));
    };
    let mut start = 0usize;
    let lines = file.split_inclusive(|&b| b == b'\n');
    for raw in lines {
        let end = start + raw.len();
        let body = raw.strip_suffix(b"\n").unwrap_or(raw);
        let kept: Vec<u8> = body.iter().copied().filter(|&b| b != 0).collect();
        let cut = kept.len() > limit;
        let text = String::from_utf8_lossy(&kept[..kept.len().min(limit)]);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        check_parsed(&parse_line_with(text, Origin::OtlpLog, &options, OBSERVED));
        fed += 1;
        check_record(joiner.push(text, start as u64, end as u64, cut, now));
        start = end;
    }
    check_record(joiner.flush());
    assert!(joined <= fed, "{joined} lines joined of {fed} fed");
}

fn check_parsed(record: &LogRecord) {
    if let Some(t) = record.time_unix_nanos {
        assert!(
            (EARLIEST..=OBSERVED + MOST_AHEAD).contains(&t),
            "implausible record time {t} kept (observed {OBSERVED}): {record:?}"
        );
    }
    let _ = record.cluster_text();
    let _ = record.is_error_event();
    if let Err(err) = serde_json::to_string(record) {
        panic!("a parsed record does not serialise: {err}: {record:?}");
    }
}
