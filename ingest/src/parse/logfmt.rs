//! key=value lines: logrus' TextFormatter, slog's TextHandler, go-kit and other logfmt.
//!
//! Values are bare words or Go-quoted strings (`strconv.Quote`: `\"`, `\\`, `\n`, `\t`,
//! `\uXXXX`, ...). A quoted value without escapes is borrowed from the line; only values with
//! escapes are copied.

use std::borrow::Cow;

use super::fields::Draft;

/// Whether `b` can be part of a key.
fn key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'@' | b'/')
}

/// Whether the line starts like logfmt: `key=` with a plain key.
pub(crate) fn looks_like(line: &str) -> bool {
    let b = line.as_bytes();
    let key_len = b.iter().take_while(|&&c| key_byte(c)).count();
    key_len > 0 && key_len <= 64 && b.get(key_len) == Some(&b'=')
}

/// Decodes a Go-quoted string body (without the quotes).
fn unquote(body: &str) -> Cow<'_, str> {
    if !body.contains('\\') {
        return Cow::Borrowed(body);
    }
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('a') => out.push('\u{7}'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('v') => out.push('\u{b}'),
            Some(esc @ ('u' | 'U' | 'x')) => {
                let width = match esc {
                    'u' => 4,
                    'U' => 8,
                    _ => 2,
                };
                let hex: String = chars.by_ref().take(width).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(decoded) => out.push(decoded),
                    None => {
                        out.push('\\');
                        out.push(esc);
                        out.push_str(&hex);
                    }
                }
            }
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

/// Parses a logfmt line into `draft`. Returns `false` when fewer than two pairs are found,
/// i.e. the line is prose that happens to start with `word=`.
pub(crate) fn parse(line: &str, draft: &mut Draft, naive_offset_secs: i64) -> bool {
    let b = line.as_bytes();
    let mut i = 0;
    let mut pairs = 0;
    let mut loose: Vec<&str> = Vec::new();
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let key_start = i;
        while i < b.len() && key_byte(b[i]) {
            i += 1;
        }
        if i == key_start || b.get(i) != Some(&b'=') {
            // A word that is not a pair: keep it as loose text.
            while i < b.len() && b[i] != b' ' {
                i += 1;
            }
            loose.push(&line[key_start..i]);
            continue;
        }
        let key = &line[key_start..i];
        i += 1;
        let value: Cow<'_, str> = if b.get(i) == Some(&b'"') {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            let end = j.min(b.len());
            i = (j + 1).min(b.len());
            unquote(&line[start..end])
        } else {
            let start = i;
            while i < b.len() && b[i] != b' ' {
                i += 1;
            }
            Cow::Borrowed(&line[start..i])
        };
        draft.field(Cow::Borrowed(key), value, naive_offset_secs);
        pairs += 1;
    }
    if pairs < 2 {
        return false;
    }
    if !loose.is_empty() {
        let text = loose.join(" ");
        match &mut draft.message {
            Some(message) => {
                message.push(' ');
                message.push_str(&text);
            }
            None => draft.message = Some(text),
        }
    }
    true
}

/// One `key=value` pair: the key as written, the value unquoted.
pub(crate) type Pair<'a> = (&'a str, Cow<'a, str>);

/// The logfmt fields a free-text message ends with, as Go services write them after a
/// stdlib `log` message (`log.Printf("%s: %v upstream=%s trace_id=%s", msg, err, ...)`):
/// returns where they start (the message is the text before, trimmed) and the pairs, or
/// `None` when the text does not end with a pair or is nothing but pairs.
///
/// A pair is `key=value` with a logfmt key and a bare or Go-quoted value; the trailing run of
/// pairs is what follows the last word that is not one. A quoted string in the message
/// (`Get "http://a/x?b=1 c=2": EOF`) is skipped whole, so the pairs inside it stay message.
/// Left in the message, the fields made every log line a template of its own kind next to the
/// same error reported without them (issue #11: `... EOF upstream=checkout trace_id=<hex>`
/// beside the span's `Get "...": EOF`).
pub(crate) fn trailing_pairs(text: &str) -> Option<(usize, Vec<Pair<'_>>)> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut run: Vec<Pair<'_>> = Vec::new();
    let mut run_start = 0;
    let mut words = false;
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        let mut k = i;
        while k < b.len() && key_byte(b[k]) {
            k += 1;
        }
        let value_at = k + 1;
        let pair = if k > start && b.get(k) == Some(&b'=') && value_at < b.len() {
            if b[value_at] == b'"' {
                let mut j = value_at + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                // A quoted value must close and end its word.
                (j < b.len() && b.get(j + 1).is_none_or(|&c| c == b' '))
                    .then(|| (j + 1, unquote(&text[value_at + 1..j])))
            } else {
                let mut j = value_at;
                while j < b.len() && b[j] != b' ' && b[j] != b'"' {
                    j += 1;
                }
                (b.get(j).is_none_or(|&c| c == b' '))
                    .then(|| (j, Cow::Borrowed(&text[value_at..j])))
            }
        } else {
            None
        };
        match pair {
            Some((end, value)) => {
                if run.is_empty() {
                    run_start = start;
                }
                run.push((&text[start..k], value));
                i = end;
            }
            None => {
                // A word of the message; a quote it opens runs to its closing quote.
                words = true;
                run.clear();
                let mut quoted = false;
                while i < b.len() && (quoted || b[i] != b' ') {
                    if quoted && b[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if b[i] == b'"' {
                        quoted = !quoted;
                    }
                    i += 1;
                }
                i = i.min(b.len());
            }
        }
    }
    (words && !run.is_empty()).then_some((run_start, run))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Level;

    #[test]
    fn logrus_text_line() {
        let line = r#"time="2024-03-11T08:22:26Z" level=error msg="bad request" error="decode: strconv.ParseUint: parsing \"18446744073709555230\": value out of range" req_id=ccdc trace_id=a0ce827c4b99d43997b8ba391bf9e310"#;
        let mut d = Draft::default();
        assert!(parse(line, &mut d, 0));
        assert_eq!(d.level, Some(Level::Error));
        assert_eq!(d.message.as_deref(), Some("bad request"));
        assert_eq!(
            d.error.as_deref(),
            Some(
                r#"decode: strconv.ParseUint: parsing "18446744073709555230": value out of range"#
            )
        );
        assert_eq!(d.attributes, [("req_id".to_string(), "ccdc".to_string())]);
        assert!(d.trace_id.is_some() && d.time_unix_nanos.is_some());
    }

    #[test]
    fn slog_text_with_escaped_stack() {
        let line = r#"time=2024-03-11T08:22:39.057Z level=ERROR msg="panic recovered" error="runtime error: index out of range [3] with length 2" stack="goroutine 1 [running]:\nmain.main()\n\tmain.go:9 +0x1d""#;
        let mut d = Draft::default();
        assert!(parse(line, &mut d, 0));
        let stack = &d.attributes.iter().find(|(k, _)| k == "stack").unwrap().1;
        assert_eq!(
            stack,
            "goroutine 1 [running]:\nmain.main()\n\tmain.go:9 +0x1d"
        );
    }

    #[test]
    fn hostile_quoting_does_not_panic() {
        for line in [
            "a=\"\\",
            "a=\"\\u12",
            "a=\"\\U0011ffff\" b=1",
            "a= b=\"",
            "a=\"é\\xé\" b=2",
        ] {
            parse(line, &mut Draft::default(), 0);
        }
        assert_eq!(unquote(r"\u00e9\x41"), "éA");
    }

    #[test]
    fn the_fields_a_message_ends_with() {
        let text = r#"upstream call failed: Get "http://127.0.0.1:41234/x?a=1 b=2": EOF upstream=checkout note="two words" trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7"#;
        let (at, pairs) = trailing_pairs(text).unwrap();
        assert_eq!(
            text[..at].trim_end(),
            r#"upstream call failed: Get "http://127.0.0.1:41234/x?a=1 b=2": EOF"#
        );
        let keys: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_ref())).collect();
        assert_eq!(
            keys,
            [
                ("upstream", "checkout"),
                ("note", "two words"),
                ("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"),
                ("span_id", "00f067aa0ba902b7"),
            ]
        );
        // Pairs inside the message are message; so is a line of pairs only, and a `=` that
        // is not a pair.
        assert_eq!(trailing_pairs("set x=1 failed: EOF"), None);
        assert_eq!(trailing_pairs("a=1 b=2"), None);
        assert_eq!(trailing_pairs(r#"failed: "x b=c""#), None);
        assert_eq!(trailing_pairs("failed: a == b"), None);
        assert_eq!(trailing_pairs("failed: x=\"open"), None);
        assert_eq!(trailing_pairs(""), None);
    }
}
