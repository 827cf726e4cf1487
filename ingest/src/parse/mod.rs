//! Line parsing: one raw log line in, one [`LogRecord`] out, whatever the logger.
//!
//! The format is detected per line, from its first bytes, so one file may mix them:
//! JSON (zap, logrus, slog), logfmt (logrus text, slog text), Gin's request log and its
//! `Error #01:` lines, Go's stdlib `log` prefix, nginx access and error logs, and plain text;
//! behind a syslog (RFC 3164, RFC 5424, rsyslog's RFC 3339 form) or klog header, any of those.
//! Each format parser fills a draft with what its format says; one shared finishing pass then
//! does what holds for all of them: the first line of a multi-line message is kept as the
//! message and the rest becomes the `stack` attribute, a Go panic's value becomes the error,
//! trace and span ids written inside the text are picked up, and free text without a level is
//! read as an error when it uses Go's error vocabulary.
//!
//! The contract: [`parse_line`] never fails and never panics; anything unreadable is plain
//! text. [`LogRecord::cluster_text`] is the error field when there is one, else the message.
//! Multi-line records (Go panics, Java and Python traces) are glued together before parsing by
//! [`Multiline`].

mod fields;
mod gin;
mod json;
mod logfmt;
mod multiline;
mod nginx;
mod stack;
mod stdlog;
mod syslog;
mod text;
pub mod time;

use std::time::{SystemTime, UNIX_EPOCH};

pub use multiline::{Multiline, MultilineRecord};
pub use stack::top_application_frame;

use crate::record::{Level, LogRecord, Origin};
use fields::Draft;

/// Options of the line parser.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// The zone, as seconds east of UTC, of timestamps that do not name one (Go's `log`
    /// package, Gin, nginx's error log write local wall-clock time). Default 0: UTC.
    pub naive_utc_offset_secs: i32,
}

/// Times before this (2000-01-01T00:00:00Z) are not believed: they come from a clock that was
/// never set (a node booted without RTC or NTP writes 1970), a zero time printed as a Unix
/// stamp, or a counter taken for a time. Kept, such a record made its pattern "first seen in
/// 1970" and stretched every per-minute chart over fifty years.
const EARLIEST_PLAUSIBLE_NANOS: i64 = 946_684_800 * 1_000_000_000;

/// How far after its observation a record's time may lie: a writer's clock a little ahead,
/// or a zone misread by the day of slack syslog's year-less times get (see `time`). Further
/// ahead, the record's time is not believed.
const MOST_AHEAD_NANOS: i64 = 86_400 * 1_000_000_000;

/// Whether a record's own time `t` is believable when observed at `observed`; if not, the
/// record keeps only its observation time (`time_unix_nanos` is `None`), both for times in
/// the distant past and in the future. The OTLP receivers judge the times of log records and
/// error spans with it too.
pub fn plausible_time(t: i64, observed: i64) -> bool {
    // An observation clock that is itself unset (tests pass small values) cannot judge the
    // future; the past floor still holds.
    t >= EARLIEST_PLAUSIBLE_NANOS
        && (observed < EARLIEST_PLAUSIBLE_NANOS || t <= observed.saturating_add(MOST_AHEAD_NANOS))
}

/// The current time in Unix nanoseconds (0 if the clock is before 1970).
pub fn now_unix_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Parses one log line (without its line terminator) read from `origin`, observed now, with
/// the default options. Never fails: a line no format recognises is plain text.
pub fn parse_line(line: &str, origin: Origin) -> LogRecord {
    parse_line_with(line, origin, &ParseOptions::default(), now_unix_nanos())
}

/// Parses one log line with explicit options and observation time (the tailer reads the clock
/// once per batch, not once per line).
pub fn parse_line_with(
    line: &str,
    origin: Origin,
    options: &ParseOptions,
    observed_unix_nanos: i64,
) -> LogRecord {
    let offset = i64::from(options.naive_utc_offset_secs);
    let line = line.trim_end_matches(['\n', '\r']);
    let trimmed = line.trim_start();
    // A joined multi-line record: the first line says the format; the rest is a stack, a
    // traceback or Gin's error lines.
    let (head, tail) = match memchr::memchr(b'\n', trimmed.as_bytes()) {
        Some(at) if !trimmed.starts_with("[GIN]") => (&trimmed[..at], Some(&trimmed[at + 1..])),
        _ => (trimmed, None),
    };
    let head = head.trim_end_matches('\r');
    let mut draft = Draft::default();
    parse_body(head, &mut draft, offset, observed_unix_nanos);
    if let Some(tail) = tail.filter(|t| !t.trim().is_empty()) {
        match (&mut draft.message, draft.free_text) {
            (Some(message), true) => {
                message.push('\n');
                message.push_str(tail);
            }
            _ => push_stack(&mut draft.attributes, tail.to_string()),
        }
    }
    finish(draft, trimmed, origin, observed_unix_nanos)
}

/// Parses one line into `draft`: a known format, else plain text with its level markers read.
fn parse_body(line: &str, draft: &mut Draft, offset: i64, observed: i64) {
    if !detect_and_parse(line, draft, offset, observed) {
        *draft = Draft {
            message: Some(line.to_string()),
            free_text: true,
            ..Draft::default()
        };
        let (level, rest) = text::strip_markers(line, draft);
        draft.level = level;
        if level.is_some() {
            draft.message = Some(rest.to_string());
        }
    }
}

/// Tries the formats in the order their first bytes suggest. `false`: plain text.
fn detect_and_parse(line: &str, draft: &mut Draft, offset: i64, observed: i64) -> bool {
    let Some(&first) = line.as_bytes().first() else {
        return false;
    };
    // A syslog or klog header: it gives time, service and level where the service's own line,
    // parsed after it, does not.
    if let Some(header) = syslog::header(line, offset, observed) {
        match header.message {
            Some(message) => {
                // klog's pairs after its quoted message: even a single `err="..."` is a field
                // (logfmt alone wants two pairs before it calls a line logfmt).
                let _ = logfmt::parse(header.rest, draft, offset);
                draft.message = Some(message);
            }
            None => parse_body(header.rest, draft, offset, observed),
        }
        draft.time_unix_nanos = draft.time_unix_nanos.or(header.time_unix_nanos);
        if draft.service.is_none() {
            draft.service = header.service.map(str::to_string);
        }
        draft.level = draft.level.or(header.level);
        for (key, value) in header.attributes.into_iter().rev() {
            if !draft.attributes.iter().any(|(k, _)| k == key) {
                draft
                    .attributes
                    .insert(0, (key.to_string(), value.to_string()));
            }
        }
        return true;
    }
    let reset = |d: &mut Draft| *d = Draft::default();
    match first {
        b'{' => {
            if json::parse(line, draft, offset) {
                return true;
            }
            reset(draft);
        }
        b'[' => {
            if let Some(rest) = line.strip_prefix("[GIN]") {
                if gin::request_line(rest, draft, offset) {
                    return true;
                }
                reset(draft);
            } else if let Some(rest) = line.strip_prefix("[GIN-debug]") {
                return gin::debug_line(rest, draft);
            }
        }
        b'E' if line.starts_with("Error #") => {
            if gin::error_line(line, draft) {
                return true;
            }
            reset(draft);
        }
        _ => {}
    }
    if (first.is_ascii_digit() || first == b'[' || first.is_ascii_alphabetic())
        && stdlog::looks_like(line)
    {
        return stdlog::parse(line, draft, offset);
    }
    if (first.is_ascii_hexdigit() || first == b':') && nginx::access(line, draft, offset) {
        return true;
    }
    reset(draft);
    if logfmt::looks_like(line) {
        if logfmt::parse(line, draft, offset) {
            return true;
        }
        reset(draft);
    }
    false
}

/// The passes shared by every format, then the record.
fn finish(mut d: Draft, line: &str, origin: Origin, observed: i64) -> LogRecord {
    let escaped_too = d.free_text;
    let mut message = d.message.take().unwrap_or_default();
    if let Some(rest) = text::split_first_line(&mut message, escaped_too) {
        push_stack(&mut d.attributes, rest);
    }
    if let Some(error) = d.error.as_mut() {
        if let Some(rest) = text::split_first_line(error, escaped_too) {
            push_stack(&mut d.attributes, rest);
        }
    }
    if d.error.is_none() {
        if let Some((level, value)) = text::panic_value(&message) {
            d.level = Some(d.level.map_or(level, |l| l.max(level)));
            d.error = Some(value.to_string());
        }
    }
    let mut level = d.level.unwrap_or(Level::Unknown);
    // net/http's ErrorLog routed through a structured logger (zap.NewStdLog) arrives at info
    // level, but `http: TLS handshake error`, `http: Accept error` are errors.
    if level <= Level::Info && message.starts_with("http: ") && text::reads_as_error(&message) {
        level = Level::Error;
    }
    if level == Level::Unknown && d.error.is_none() && d.free_text && text::reads_as_error(&message)
    {
        level = Level::Error;
    }
    if d.trace_id.is_none() || d.span_id.is_none() {
        let (trace, span) = text::inline_ids(&message);
        if d.trace_id.is_none() {
            d.trace_id = trace;
        }
        if d.span_id.is_none() {
            d.span_id = span;
        }
    }
    if message.is_empty() && d.error.is_none() {
        message = line.to_string();
    }
    let frame = d
        .attributes
        .iter()
        .find(|(key, _)| key == STACK_ATTRIBUTE)
        .and_then(|(_, stack)| stack::top_application_frame(stack));
    if let Some(frame) = frame {
        d.attributes.push((FRAME_ATTRIBUTE.to_string(), frame));
    }
    LogRecord {
        time_unix_nanos: d.time_unix_nanos.filter(|&t| plausible_time(t, observed)),
        observed_unix_nanos: observed,
        level,
        service: d.service,
        message,
        error: d.error,
        http_status: d.http_status,
        trace_id: d.trace_id,
        span_id: d.span_id,
        attributes: d.attributes,
        origin,
        truncated: false,
    }
}

/// The attribute that holds a record's stack trace (the lines joined after its first, or a
/// logger's `stack` field).
pub const STACK_ATTRIBUTE: &str = "stack";

/// The attribute that holds the top application frame of a Go stack
/// (`main.(*service).priceOf service.go:245`; see `stack.rs` for which frame that is).
pub const FRAME_ATTRIBUTE: &str = "stack.frame";

fn push_stack(attributes: &mut Vec<(String, String)>, rest: String) {
    let key = if attributes.iter().any(|(k, _)| k == STACK_ATTRIBUTE) {
        "detail"
    } else {
        STACK_ATTRIBUTE
    };
    attributes.push((key.to_string(), rest));
}

#[cfg(test)]
mod tests;
