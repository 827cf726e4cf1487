//! Reading free text: escaped newlines, level markers, panics and ids written inline.
//!
//! Unstructured lines (the stdlib `log` package, `fmt.Println(err)`, crash dumps) say their
//! level with markers such as `ERROR:` or `[error]`, carry ids as `trace_id=...` inside the
//! text, and, when a pipeline folded a multi-line dump onto one line, contain `\n` escapes.
//! These helpers turn that into fields so the cluster text is the error itself.

use std::sync::LazyLock;

use memchr::memmem::Finder;

use super::fields::{level_of, traceparent, Draft};
use crate::record::{Level, SpanId, TraceId};

/// Searchers built once: building a memmem searcher costs more than most searches.
pub(crate) static ESCAPED_NEWLINE: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(b"\\n"));
static HTTP_PANIC: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(b"http: panic serving "));
static PANIC_WORD: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"panic"));
static TRACE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"race"));
static SPAN: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"pan"));
/// Gin's error line marker.
pub(crate) static GIN_ERROR: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"Error #"));

/// Splits on real newlines and on the two-character escape `\n`.
pub(crate) fn split_escaped_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        let b = current.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\n' {
                rest = Some(&current[i + 1..]);
                return Some(current[..i].trim_end_matches('\r'));
            }
            if b[i] == b'\\' && b.get(i + 1) == Some(&b'n') {
                rest = Some(&current[i + 2..]);
                return Some(&current[..i]);
            }
            i += 1;
        }
        rest = None;
        Some(current)
    })
}

/// Index of the first line break (real or escaped) in `text`.
fn first_break(text: &str, escaped_too: bool) -> Option<(usize, usize)> {
    let real = memchr::memchr(b'\n', text.as_bytes()).map(|i| (i, 1));
    let escaped = if escaped_too {
        ESCAPED_NEWLINE
            .find_iter(text.as_bytes())
            .find(|&i| escaped_break_continues(&text.as_bytes()[i + 2..]))
            .map(|i| (i, 2))
    } else {
        None
    };
    match (real, escaped) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// Whether what follows an escaped `\n` in free text is a folded dump (a stack, Gin's error
/// lines) rather than an escaped newline inside a quoted value such as `parsing "568\n"`.
fn escaped_break_continues(after: &[u8]) -> bool {
    const STARTS: [&[u8]; 9] = [
        b"\\n",
        b"\\t",
        b"goroutine ",
        b"Error #",
        b"created by ",
        b"panic(",
        b"runtime/",
        b"Caused by",
        b"  File ",
    ];
    STARTS.iter().any(|s| after.starts_with(s))
}

/// Keeps the first line of a multi-line text and returns the rest (a stack dump, a
/// traceback), or `None` for single-line text. A Python traceback keeps its last line instead,
/// which is where the exception is.
pub(crate) fn split_first_line(text: &mut String, escaped_too: bool) -> Option<String> {
    let (at, width) = first_break(text, escaped_too)?;
    let rest = text[at + width..].to_string();
    if text.starts_with("Traceback (most recent call last):") {
        let lines: Vec<&str> = split_escaped_lines(&rest).collect();
        let last = lines
            .into_iter()
            .rev()
            .find(|l| !l.trim().is_empty() && !l.starts_with(' ') && !l.starts_with('\t'))
            .map(str::to_string);
        if let Some(last) = last {
            let head = std::mem::replace(text, last);
            return Some(format!("{head}\n{rest}"));
        }
    }
    text.truncate(at);
    let trimmed = text.trim_end().len();
    text.truncate(trimmed);
    (!rest.trim().is_empty()).then_some(rest)
}

/// Strips a level marker at the start of a message (`ERROR: `, `[WARN] `, `error: `) and a
/// Go `log` message prefix tag (`[billing] `, kept as the `prefix` attribute). Returns the
/// level found, if any, and the rest of the message.
pub(crate) fn strip_markers<'a>(mut text: &'a str, draft: &mut Draft) -> (Option<Level>, &'a str) {
    for _ in 0..2 {
        if let Some(inner) = text.strip_prefix('[') {
            let Some(end) = inner.find(']') else { break };
            let tag = &inner[..end];
            let after = inner[end + 1..].trim_start();
            if let Some(level) = level_of(tag).filter(|_| tag.len() >= 3) {
                return (Some(level), after);
            }
            if end > 0
                && end <= 40
                && tag
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_./:".contains(&c))
            {
                draft
                    .attributes
                    .push(("prefix".to_string(), tag.to_string()));
                text = after;
                continue;
            }
            break;
        }
        let word_len = text.bytes().take_while(u8::is_ascii_alphabetic).count();
        if (3..=8).contains(&word_len) {
            let word = &text[..word_len];
            let rest = &text[word_len..];
            let uppercase = word.bytes().all(|c| c.is_ascii_uppercase());
            if let Some(level) = level_of(word) {
                if let Some(after) = rest.strip_prefix(": ") {
                    // `error: x` from a CLI is a marker; so is `ERROR: x`. `Error #01` is not.
                    return (Some(level), after.trim_start());
                }
                if uppercase && rest.starts_with(' ') {
                    return (Some(level), rest.trim_start());
                }
            }
        }
        break;
    }
    (None, text)
}

/// Reads a Go panic or fatal error from the first line of a message: `panic: X`,
/// `http: panic serving ADDR: X`, `recovered from panic: X [recovered]`, `fatal error: X`.
/// Returns the level and the panic value.
pub(crate) fn panic_value(first_line: &str) -> Option<(Level, &str)> {
    if let Some(rest) = first_line.strip_prefix("fatal error: ") {
        return Some((Level::Fatal, rest.trim()));
    }
    let b = first_line.as_bytes();
    if let Some(at) = HTTP_PANIC.find(b) {
        let after = &first_line[at + "http: panic serving ".len()..];
        // After the client address comes `: ` and the panic value; the address may be IPv6.
        let value = after.find(": ").map(|i| &after[i + 2..])?;
        return Some((Level::Panic, trim_recovered(value)));
    }
    // `panic: X`, `recovered from panic: X`, and one word between: `panic recovered: X`,
    // `panic occurred: X`.
    for at in PANIC_WORD.find_iter(b) {
        if at > 0 && !matches!(b[at - 1], b' ' | b':' | b'[' | b'(') {
            continue;
        }
        let rest = &first_line[at + "panic".len()..];
        let value = match rest.strip_prefix(": ") {
            Some(value) => value,
            None => {
                let Some(word) = rest.strip_prefix(' ') else {
                    continue;
                };
                let len = word.bytes().take_while(u8::is_ascii_alphabetic).count();
                match word[len..].strip_prefix(": ") {
                    Some(value) if (3..=12).contains(&len) => value,
                    _ => continue,
                }
            }
        };
        let value = trim_recovered(value);
        if !value.is_empty() {
            return Some((Level::Panic, value));
        }
    }
    None
}

fn trim_recovered(value: &str) -> &str {
    let value = value.trim();
    value
        .strip_suffix("[recovered]")
        .map_or(value, str::trim_end)
}

/// Finds a trace id / span id written inside text: `trace_id=...`, `traceId: ...`,
/// `trace.id="..."`, `traceparent=00-...`.
pub(crate) fn inline_ids(text: &str) -> (Option<TraceId>, Option<SpanId>) {
    let b = text.as_bytes();
    let mut trace = None;
    let mut span = None;
    for (finder, is_trace) in [(&*TRACE, true), (&*SPAN, false)] {
        let needle = finder.needle();
        for at in finder.find_iter(b) {
            if (is_trace && trace.is_some()) || (!is_trace && span.is_some()) {
                break;
            }
            let first = if at == 0 { continue } else { b[at - 1] };
            if !matches!(first, b't' | b'T' | b's' | b'S') {
                continue;
            }
            let mut i = at + needle.len();
            if is_trace && b[i..].starts_with(b"parent") {
                i += "parent".len();
                let value = value_after(text, i, 55);
                if let Some((t, s)) = value.and_then(traceparent) {
                    trace.get_or_insert(t);
                    span.get_or_insert(s);
                }
                continue;
            }
            if matches!(b.get(i), Some(b'_' | b'.' | b'-')) {
                i += 1;
            }
            if !b
                .get(i..i + 2)
                .is_some_and(|id| id.eq_ignore_ascii_case(b"id"))
            {
                continue;
            }
            let width = if is_trace { 32 } else { 16 };
            if let Some(value) = value_after(text, i + 2, width) {
                if is_trace {
                    trace = value.parse().ok();
                } else {
                    span = value.parse().ok();
                }
            }
        }
    }
    (trace, span)
}

/// The `width` bytes after a separator (`=`, `:`, `: `, `="`) at `at`, if they are there.
fn value_after(text: &str, at: usize, width: usize) -> Option<&str> {
    let b = text.as_bytes();
    let mut i = at;
    if !matches!(b.get(i), Some(b'=' | b':')) {
        return None;
    }
    i += 1;
    while matches!(b.get(i), Some(b' ' | b'"' | b'\'')) {
        i += 1;
    }
    let value = text.get(i..i + width)?;
    // The id must end there (no longer hex run).
    if b.get(i + width).is_some_and(u8::is_ascii_hexdigit) {
        return None;
    }
    Some(value)
}

/// Words that mark a line without a level as an error. Go error strings are lowercase and
/// built from a small vocabulary (`connection refused`, `i/o timeout`, `EOF`, `invalid`,
/// `cannot`, ...), so these catch them without reading the level from nowhere.
static ERROR_WORDS: LazyLock<Option<regex::bytes::Regex>> = LazyLock::new(|| {
    regex::bytes::RegexBuilder::new(
        r"(?-u)(?i)error|fail|panic|fatal|exception|refused|reset by peer|broken|timeout|timed out|\bEOF\b|invalid|cannot|can't|unable|denied|no such|too many|too large|not found|out of range|exceeded|canceled|cancelled|unexpected|closed|unreachable|x509|\btls:|malformed|in use|unsupported|gave HTTP response|no route|overflow|mismatch|illegal|rejected|abort|nil pointer|out of memory|forbidden|unauthorized|missing|\bbad\b",
    )
    .build()
    .ok()
});

/// Whether free text without a level reads as an error.
pub(crate) fn reads_as_error(text: &str) -> bool {
    ERROR_WORDS
        .as_ref()
        .is_some_and(|re| re.is_match(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_and_real_newlines_split() {
        let parts: Vec<&str> = split_escaped_lines("a\\nb\nc\r\nd").collect();
        assert_eq!(parts, ["a", "b", "c", "d"]);
    }

    #[test]
    fn first_line_and_python_traceback() {
        let mut t = "panic: boom\\n\\ngoroutine 1 [running]:".to_string();
        assert_eq!(
            split_first_line(&mut t, true).as_deref(),
            Some("\\ngoroutine 1 [running]:")
        );
        assert_eq!(t, "panic: boom");
        let mut t = "Traceback (most recent call last):\n  File \"a.py\", line 1\nValueError: bad"
            .to_string();
        assert!(split_first_line(&mut t, true).is_some());
        assert_eq!(t, "ValueError: bad");
    }

    #[test]
    fn markers_and_prefixes() {
        let mut d = Draft::default();
        assert_eq!(
            strip_markers("[search] ERROR: x", &mut d),
            (Some(Level::Error), "x")
        );
        assert_eq!(d.attributes, [("prefix".to_string(), "search".to_string())]);
        assert_eq!(
            strip_markers("error: unexpected EOF", &mut d),
            (Some(Level::Error), "unexpected EOF")
        );
        assert_eq!(
            strip_markers("Error #01: x", &mut d),
            (None, "Error #01: x")
        );
        assert_eq!(
            strip_markers("Errors are bad", &mut d),
            (None, "Errors are bad")
        );
        assert_eq!(
            strip_markers("[WARN] disk", &mut d),
            (Some(Level::Warn), "disk")
        );
    }

    #[test]
    fn panics_of_every_shape() {
        assert_eq!(
            panic_value("http: panic serving [::1]:57234: assignment to entry in nil map"),
            Some((Level::Panic, "assignment to entry in nil map"))
        );
        assert_eq!(
            panic_value("recovered from panic: assignment to entry in nil map [recovered]"),
            Some((Level::Panic, "assignment to entry in nil map"))
        );
        assert_eq!(
            panic_value("fatal error: concurrent map writes"),
            Some((Level::Fatal, "concurrent map writes"))
        );
        assert_eq!(panic_value("nopanic: x"), None);
        assert_eq!(
            panic_value("panic recovered: assignment to entry in nil map [recovered]"),
            Some((Level::Panic, "assignment to entry in nil map"))
        );
        assert_eq!(panic_value("panicked at the disco"), None);
        assert_eq!(panic_value("don't panic about it"), None);
    }

    #[test]
    fn ids_inside_text() {
        let (t, s) = inline_ids(
            "failed trace_id=4bf92f3577b34da6a3ce929d0e0e4736 spanId: \"00f067aa0ba902b7\"",
        );
        assert_eq!(t.unwrap().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(s.unwrap().to_string(), "00f067aa0ba902b7");
        let (t, s) =
            inline_ids("traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert!(t.is_some() && s.is_some());
        assert_eq!(
            inline_ids("trace_id=4bf92f3577b34da6a3ce929d0e0e4736ff"),
            (None, None)
        );
        assert_eq!(inline_ids("race span trace"), (None, None));
    }
}
