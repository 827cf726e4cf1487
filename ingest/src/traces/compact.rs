//! Compact storage of the spans and log records a trace holds: one byte buffer per trace,
//! decoded back into [`Span`] and [`LogRecord`] values only when a trace is read (a call
//! chain, or the rows of a listing after its filter and limit).
//!
//! Why: the store keeps up to 100,000 traces by default, and the agent's budget is under
//! 100 MB of RSS in all (issue #12). As plain structs a span cost about 400 bytes (the struct,
//! five or six heap strings and the vector of attributes, each with the allocator's own
//! overhead) and a log record with its trace entry about 1 KB: at 1,000 lines/s + 1,000
//! spans/s the full store held about 130 MB. Encoded, a span of a few attributes takes
//! 40–80 bytes and a log line its text plus about 30, in one allocation per trace.
//!
//! The format (private to this module; nothing is persisted): a sequence of records, each a
//! kind byte, a varint length and the body. Integers are LEB128 varints (signed ones
//! zig-zagged); a string is either a reference to the [`Names`] table or the bytes inline
//! (see [`Encoder::name`]). Names — service names, span and event names, attribute keys, file
//! paths — repeat across every trace, so each is kept once in [`Names`]; values are inline.
//!
//! Decoding reads only bytes this module wrote. Should that ever go wrong (a bug), decoding
//! stops at the bad record and returns what came before it: a read never panics.

use std::collections::HashMap;
use std::sync::Arc;

use super::span::{Span, SpanEvent, SpanKind, StatusCode};
use crate::record::{Level, LogRecord, Origin, SpanId, TraceId};

/// Most distinct names kept in the table. Names of real services are few (services, their
/// operations, the attribute keys of the semantic conventions, log file paths); a sender
/// that puts ids into span names would otherwise grow the table forever. Past the bound,
/// new names are stored inline in each trace (correct, only larger).
pub const MAX_NAMES: usize = 65_536;

/// Longest name put in the table: longer ones are unlikely to repeat.
pub const MAX_NAME_BYTES: usize = 256;

/// The names table: each distinct name once, referenced by index from the encoded traces.
/// Names are never removed (an index must stay valid for every trace that holds it), which
/// is why the table is bounded by [`MAX_NAMES`].
#[derive(Debug, Default)]
pub(crate) struct Names {
    index: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

impl Names {
    /// The index of `name`, added when new and the table has room.
    fn intern(&mut self, name: &str) -> Option<u32> {
        if let Some(&i) = self.index.get(name) {
            return Some(i);
        }
        if self.names.len() >= MAX_NAMES || name.len() > MAX_NAME_BYTES {
            return None;
        }
        let i = u32::try_from(self.names.len()).ok()?;
        let name: Arc<str> = Arc::from(name);
        self.names.push(name.clone());
        self.index.insert(name, i);
        Some(i)
    }

    /// `name` as a shared string: the table's copy when it is there (or fits), else a copy
    /// of its own.
    pub(crate) fn shared(&mut self, name: &str) -> Arc<str> {
        match self.intern(name).and_then(|i| self.get(u64::from(i))) {
            Some(shared) => shared.clone(),
            None => Arc::from(name),
        }
    }

    /// The name at `i`, if any.
    fn get(&self, i: u64) -> Option<&Arc<str>> {
        self.names.get(usize::try_from(i).ok()?)
    }

    /// Names held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.names.len()
    }
}

const SPAN: u8 = 1;
const LOG: u8 = 2;

/// Appends records to a trace's buffer.
struct Encoder<'a> {
    out: &'a mut Vec<u8>,
    names: &'a mut Names,
}

impl Encoder<'_> {
    fn byte(&mut self, b: u8) {
        self.out.push(b);
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.out.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    fn signed(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }

    fn text(&mut self, s: &str) {
        self.varint(s.len() as u64);
        self.out.extend_from_slice(s.as_bytes());
    }

    /// A name: `2 × index` when it is in the table, else `2 × length + 1` and the bytes.
    fn name(&mut self, s: &str) {
        match self.names.intern(s) {
            Some(i) => self.varint(u64::from(i) << 1),
            None => {
                self.varint(((s.len() as u64) << 1) | 1);
                self.out.extend_from_slice(s.as_bytes());
            }
        }
    }

    fn attributes(&mut self, attributes: &[(String, String)]) {
        self.varint(attributes.len() as u64);
        for (key, value) in attributes {
            self.name(key);
            self.text(value);
        }
    }
}

fn kind_number(kind: SpanKind) -> u8 {
    match kind {
        SpanKind::Unspecified => 0,
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn status_number(status: StatusCode) -> u8 {
    match status {
        StatusCode::Unset => 0,
        StatusCode::Ok => 1,
        StatusCode::Error => 2,
    }
}

fn level_number(level: Level) -> u8 {
    match level {
        Level::Unknown => 0,
        Level::Trace => 1,
        Level::Debug => 2,
        Level::Info => 3,
        Level::Warn => 4,
        Level::Error => 5,
        Level::Fatal => 6,
        Level::Panic => 7,
    }
}

fn level_of(number: u8) -> Option<Level> {
    Some(match number {
        0 => Level::Unknown,
        1 => Level::Trace,
        2 => Level::Debug,
        3 => Level::Info,
        4 => Level::Warn,
        5 => Level::Error,
        6 => Level::Fatal,
        7 => Level::Panic,
        _ => return None,
    })
}

/// Encodes one span (its trace id is the trace's, not stored).
#[cfg(test)]
pub(crate) fn encode_span(span: &Span, names: &mut Names) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_span_into(span, names, &mut out);
    out
}

/// Encodes one span into `out` (cleared first): the store encodes every span of a batch into
/// one buffer, not an allocation per span.
pub(crate) fn encode_span_into(span: &Span, names: &mut Names, out: &mut Vec<u8>) {
    out.clear();
    let mut e = Encoder { out, names };
    e.out.extend_from_slice(&span.span_id.0);
    let flags = u8::from(span.parent_span_id.is_some())
        | kind_number(span.kind) << 1
        | status_number(span.status) << 4;
    e.byte(flags);
    if let Some(parent) = span.parent_span_id {
        e.out.extend_from_slice(&parent.0);
    }
    e.name(&span.service);
    e.name(&span.name);
    e.signed(span.start_unix_nanos);
    e.signed(span.end_unix_nanos.wrapping_sub(span.start_unix_nanos));
    e.text(&span.status_message);
    e.attributes(&span.attributes);
    e.varint(span.events.len() as u64);
    for event in &span.events {
        e.name(&event.name);
        e.signed(event.time_unix_nanos.wrapping_sub(span.start_unix_nanos));
        e.attributes(&event.attributes);
    }
}

/// Encodes one log record of the trace (its trace id, when it has one, is the trace's).
#[cfg(test)]
pub(crate) fn encode_log(record: &LogRecord, names: &mut Names) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_log_into(record, names, &mut out);
    out
}

/// Encodes one log record into `out` (cleared first), as [`encode_span_into`].
pub(crate) fn encode_log_into(record: &LogRecord, names: &mut Names, out: &mut Vec<u8>) {
    out.clear();
    let mut e = Encoder { out, names };
    let origin = match record.origin {
        Origin::File { .. } => 0u16,
        Origin::OtlpLog => 1,
        Origin::OtlpSpan => 2,
    };
    let flags: u16 = u16::from(record.time_unix_nanos.is_some())
        | u16::from(record.service.is_some()) << 1
        | u16::from(record.error.is_some()) << 2
        | u16::from(record.http_status.is_some()) << 3
        | u16::from(record.trace_id.is_some()) << 4
        | u16::from(record.span_id.is_some()) << 5
        | u16::from(record.truncated) << 6
        | origin << 7;
    e.varint(u64::from(flags));
    e.byte(level_number(record.level));
    e.signed(record.observed_unix_nanos);
    if let Some(time) = record.time_unix_nanos {
        e.signed(time.wrapping_sub(record.observed_unix_nanos));
    }
    if let Some(service) = &record.service {
        e.name(service);
    }
    e.text(&record.message);
    if let Some(error) = &record.error {
        e.text(error);
    }
    if let Some(status) = record.http_status {
        e.varint(u64::from(status));
    }
    if let Some(span_id) = record.span_id {
        e.out.extend_from_slice(&span_id.0);
    }
    e.attributes(&record.attributes);
    if let Origin::File { path, offset } = &record.origin {
        e.name(path);
        e.varint(*offset);
    }
}

/// The records of one trace, in arrival order: spans and log records in one buffer.
#[derive(Debug, Default)]
pub(crate) struct Records {
    bytes: Vec<u8>,
}

/// Below this size a buffer grows by exactly what is appended: most traces hold a few
/// records and arrive in one or two batches, and doubling would leave up to half of every
/// buffer unused. Larger (long-lived, busy) traces grow by doubling so that appending stays
/// amortised O(1).
const EXACT_GROWTH_BELOW: usize = 4096;

impl Records {
    fn push(&mut self, kind: u8, body: &[u8]) {
        // Kind byte and a varint of at most 10 bytes: on the stack, not an allocation per
        // record.
        let mut header = [0u8; 11];
        header[0] = kind;
        let mut len = 1;
        let mut n = body.len() as u64;
        while n >= 0x80 {
            header[len] = (n as u8) | 0x80;
            len += 1;
            n >>= 7;
        }
        header[len] = n as u8;
        len += 1;
        let header = &header[..len];
        let need = header.len() + body.len();
        if self.bytes.len() + need <= EXACT_GROWTH_BELOW {
            self.bytes.reserve_exact(need);
        }
        self.bytes.extend_from_slice(header);
        self.bytes.extend_from_slice(body);
    }

    /// Appends an encoded span.
    pub(crate) fn push_span(&mut self, body: &[u8]) {
        self.push(SPAN, body);
    }

    /// Appends an encoded log record.
    pub(crate) fn push_log(&mut self, body: &[u8]) {
        self.push(LOG, body);
    }

    /// Replaces the span with this id (the first 8 bytes of a span body) by `body`, in place;
    /// false when the trace holds no such span.
    pub(crate) fn replace_span(&mut self, span_id: SpanId, body: &[u8]) -> bool {
        let Some(range) = self
            .iter()
            .find(|r| r.kind == SPAN && r.body.get(..8) == Some(&span_id.0[..]))
            .map(|r| r.start..r.end)
        else {
            return false;
        };
        let mut replacement = Records::default();
        replacement.push(SPAN, body);
        self.bytes.splice(range, replacement.bytes);
        true
    }

    /// Whether a span with this id is held.
    #[cfg(test)]
    fn has_span(&self, span_id: SpanId) -> bool {
        self.iter()
            .any(|r| r.kind == SPAN && r.body.get(..8) == Some(&span_id.0[..]))
    }

    fn iter(&self) -> RecordIter<'_> {
        RecordIter {
            bytes: &self.bytes,
            at: 0,
        }
    }

    /// Decodes every record: the spans and the log records, each in arrival order.
    pub(crate) fn decode(&self, trace_id: TraceId, names: &Names) -> (Vec<Span>, Vec<LogRecord>) {
        let mut spans = Vec::new();
        let mut logs = Vec::new();
        for record in self.iter() {
            let mut r = Reader {
                bytes: record.body,
                at: 0,
                names,
            };
            let decoded = match record.kind {
                SPAN => r.span(trace_id).map(|s| spans.push(s)),
                LOG => r.log(trace_id).map(|l| logs.push(l)),
                _ => None,
            };
            if decoded.is_none() {
                debug_assert!(false, "undecodable record in the trace store");
                break;
            }
        }
        (spans, logs)
    }
}

impl Records {
    /// Decodes the spans only, in arrival order: what a reader of who calls whom needs,
    /// without the log records (most of a trace's bytes when its services log trace ids).
    pub(crate) fn decode_spans(&self, trace_id: TraceId, names: &Names) -> Vec<Span> {
        let mut spans = Vec::new();
        for record in self.iter().filter(|r| r.kind == SPAN) {
            let mut r = Reader {
                bytes: record.body,
                at: 0,
                names,
            };
            match r.span(trace_id) {
                Some(span) => spans.push(span),
                None => {
                    debug_assert!(false, "undecodable span in the trace store");
                    break;
                }
            }
        }
        spans
    }
}

struct RawRecord<'a> {
    kind: u8,
    body: &'a [u8],
    start: usize,
    end: usize,
}

struct RecordIter<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = RawRecord<'a>;

    fn next(&mut self) -> Option<RawRecord<'a>> {
        let start = self.at;
        let kind = *self.bytes.get(start)?;
        let mut at = start + 1;
        let mut len = 0u64;
        let mut shift = 0;
        loop {
            let b = *self.bytes.get(at)?;
            at += 1;
            len |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return None;
            }
        }
        let end = at.checked_add(usize::try_from(len).ok()?)?;
        let body = self.bytes.get(at..end)?;
        self.at = end;
        Some(RawRecord {
            kind,
            body,
            start,
            end,
        })
    }
}

/// Reads one record's body; every method answers `None` past the end or on a bad value.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    names: &'a Names,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let out: [u8; N] = self.bytes.get(self.at..self.at + N)?.try_into().ok()?;
        self.at += N;
        Some(out)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(v);
            }
            shift += 7;
            if shift > 63 {
                return None;
            }
        }
    }

    fn signed(&mut self) -> Option<i64> {
        let v = self.varint()?;
        Some(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    fn bytes_of(&mut self, len: u64) -> Option<String> {
        let len = usize::try_from(len).ok()?;
        let raw = self.bytes.get(self.at..self.at.checked_add(len)?)?;
        self.at += len;
        String::from_utf8(raw.to_vec()).ok()
    }

    fn text(&mut self) -> Option<String> {
        let len = self.varint()?;
        self.bytes_of(len)
    }

    fn name(&mut self) -> Option<String> {
        let v = self.varint()?;
        if v & 1 == 0 {
            self.names.get(v >> 1).map(|s| s.to_string())
        } else {
            self.bytes_of(v >> 1)
        }
    }

    fn attributes(&mut self) -> Option<Vec<(String, String)>> {
        let n = self.varint()?;
        // Each attribute takes at least two bytes: a count beyond that is a bad record.
        if n > (self.bytes.len() - self.at) as u64 {
            return None;
        }
        (0..n).map(|_| Some((self.name()?, self.text()?))).collect()
    }

    fn span(&mut self, trace_id: TraceId) -> Option<Span> {
        let span_id = SpanId(self.array()?);
        let flags = self.byte()?;
        let parent_span_id = if flags & 1 == 1 {
            Some(SpanId(self.array()?))
        } else {
            None
        };
        let service = self.name()?;
        let name = self.name()?;
        let start_unix_nanos = self.signed()?;
        let end_unix_nanos = start_unix_nanos.wrapping_add(self.signed()?);
        let status_message = self.text()?;
        let attributes = self.attributes()?;
        let n = self.varint()?;
        if n > (self.bytes.len() - self.at) as u64 {
            return None;
        }
        let events = (0..n)
            .map(|_| {
                Some(SpanEvent {
                    name: self.name()?,
                    time_unix_nanos: start_unix_nanos.wrapping_add(self.signed()?),
                    attributes: self.attributes()?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Span {
            trace_id,
            span_id,
            parent_span_id,
            service,
            name,
            kind: SpanKind::from_otlp(i32::from((flags >> 1) & 0b111)),
            start_unix_nanos,
            end_unix_nanos,
            status: StatusCode::from_otlp(i32::from((flags >> 4) & 0b11)),
            status_message,
            attributes,
            events,
        })
    }

    fn log(&mut self, trace_id: TraceId) -> Option<LogRecord> {
        let flags = self.varint()?;
        let has = |bit: u32| flags & (1 << bit) != 0;
        let level = level_of(self.byte()?)?;
        let observed_unix_nanos = self.signed()?;
        let time_unix_nanos = if has(0) {
            Some(observed_unix_nanos.wrapping_add(self.signed()?))
        } else {
            None
        };
        let service = if has(1) { Some(self.name()?) } else { None };
        let message = self.text()?;
        let error = if has(2) { Some(self.text()?) } else { None };
        let http_status = if has(3) {
            Some(u16::try_from(self.varint()?).ok()?)
        } else {
            None
        };
        let span_id = if has(5) {
            Some(SpanId(self.array()?))
        } else {
            None
        };
        let attributes = self.attributes()?;
        let origin = match (flags >> 7) & 0b11 {
            0 => Origin::File {
                path: self.name()?,
                offset: self.varint()?,
            },
            1 => Origin::OtlpLog,
            2 => Origin::OtlpSpan,
            _ => return None,
        };
        Some(LogRecord {
            time_unix_nanos,
            observed_unix_nanos,
            level,
            service,
            message,
            error,
            http_status,
            trace_id: has(4).then_some(trace_id),
            span_id,
            attributes,
            origin,
            truncated: has(6),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TRACE: TraceId = TraceId([7; 16]);

    fn span_strategy() -> impl Strategy<Value = Span> {
        let text = ".{0,40}";
        let attrs = prop::collection::vec((text, text), 0..4);
        (
            any::<[u8; 8]>(),
            prop::option::of(any::<[u8; 8]>()),
            (text, text, 0i32..7, 0i32..4),
            (any::<i64>(), any::<i64>(), text),
            attrs.clone(),
            prop::collection::vec((text, any::<i64>(), attrs), 0..3),
        )
            .prop_map(
                |(id, parent, (service, name, kind, status), (start, end, message), a, events)| {
                    Span {
                        trace_id: TRACE,
                        span_id: SpanId(id),
                        parent_span_id: parent.map(SpanId),
                        service,
                        name,
                        kind: SpanKind::from_otlp(kind),
                        start_unix_nanos: start,
                        end_unix_nanos: end,
                        status: StatusCode::from_otlp(status),
                        status_message: message,
                        attributes: a,
                        events: events
                            .into_iter()
                            .map(|(name, time_unix_nanos, attributes)| SpanEvent {
                                name,
                                time_unix_nanos,
                                attributes,
                            })
                            .collect(),
                    }
                },
            )
    }

    fn log_strategy() -> impl Strategy<Value = LogRecord> {
        let text = ".{0,60}";
        (
            (prop::option::of(any::<i64>()), any::<i64>(), 0u8..8),
            (
                prop::option::of(text),
                text,
                prop::option::of(text),
                prop::option::of(any::<u16>()),
            ),
            (
                any::<bool>(),
                prop::option::of(any::<[u8; 8]>()),
                any::<bool>(),
            ),
            prop::collection::vec((text, text), 0..4),
            (0u8..3, text, any::<u64>()),
        )
            .prop_map(
                |(
                    (time, observed, level),
                    (service, message, error, http_status),
                    (traced, span, truncated),
                    attributes,
                    (origin, path, offset),
                )| LogRecord {
                    time_unix_nanos: time,
                    observed_unix_nanos: observed,
                    level: level_of(level).unwrap_or_default(),
                    service,
                    message,
                    error,
                    http_status,
                    trace_id: traced.then_some(TRACE),
                    span_id: span.map(SpanId),
                    attributes,
                    origin: match origin {
                        0 => Origin::File { path, offset },
                        1 => Origin::OtlpLog,
                        _ => Origin::OtlpSpan,
                    },
                    truncated,
                },
            )
    }

    proptest! {
        /// Whatever a trace holds comes back exactly as it went in, in arrival order.
        #[test]
        fn spans_and_logs_come_back_as_they_went_in(
            spans in prop::collection::vec(span_strategy(), 0..5),
            logs in prop::collection::vec(log_strategy(), 0..5),
        ) {
            let mut names = Names::default();
            let mut records = Records::default();
            for (i, span) in spans.iter().enumerate() {
                records.push_span(&encode_span(span, &mut names));
                if let Some(log) = logs.get(i) {
                    records.push_log(&encode_log(log, &mut names));
                }
            }
            for log in logs.iter().skip(spans.len()) {
                records.push_log(&encode_log(log, &mut names));
            }
            let (back_spans, back_logs) = records.decode(TRACE, &names);
            prop_assert_eq!(back_spans, spans);
            prop_assert_eq!(back_logs, logs);
        }
    }

    fn span(id: u8, name: &str) -> Span {
        Span {
            trace_id: TRACE,
            span_id: SpanId([id; 8]),
            parent_span_id: None,
            service: "checkout".into(),
            name: name.into(),
            kind: SpanKind::Server,
            start_unix_nanos: 1_700_000_000_000_000_000,
            end_unix_nanos: 1_700_000_000_009_000_000,
            status: StatusCode::Ok,
            status_message: String::new(),
            attributes: vec![("http.response.status_code".into(), "200".into())],
            events: Vec::new(),
        }
    }

    #[test]
    fn a_span_sent_again_replaces_its_copy_in_place() {
        let mut names = Names::default();
        let mut records = Records::default();
        for (id, name) in [(1, "a"), (2, "b"), (3, "c")] {
            records.push_span(&encode_span(&span(id, name), &mut names));
        }
        let longer = span(2, "b, sent again with a longer name");
        assert!(records.replace_span(SpanId([2; 8]), &encode_span(&longer, &mut names)));
        assert!(!records.replace_span(SpanId([9; 8]), &encode_span(&span(9, "x"), &mut names)));
        assert!(records.has_span(SpanId([3; 8])));
        assert!(!records.has_span(SpanId([9; 8])));
        let (spans, _) = records.decode(TRACE, &names);
        let got: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(got, ["a", "b, sent again with a longer name", "c"]);
    }

    #[test]
    fn names_repeat_once_and_a_full_table_stores_them_inline() {
        let mut names = Names::default();
        let one = encode_span(&span(1, "GET /checkout"), &mut names);
        let two = encode_span(&span(2, "GET /checkout"), &mut names);
        assert_eq!(names.len(), 3, "service, name and attribute key, each once");
        assert_eq!(one.len(), two.len());
        assert!(one.len() < 48, "a small span takes {} bytes", one.len());
        for i in names.len()..MAX_NAMES {
            names.intern(&format!("name {i}"));
        }
        let mut records = Records::default();
        let late = span(3, "a name that came after the table was full");
        records.push_span(&encode_span(&late, &mut names));
        assert_eq!(names.len(), MAX_NAMES);
        assert_eq!(records.decode(TRACE, &names).0, vec![late]);
    }
}
