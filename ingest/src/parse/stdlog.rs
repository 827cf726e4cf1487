//! Go's standard `log` package (`[prefix] 2024/03/11 08:22:20.465632 file.go:12: message`)
//! and nginx's error log, which shares its date format
//! (`2024/01/02 15:04:05 [error] 1234#0: *5 connect() failed ..., client: 1.2.3.4, ...`).
//!
//! The same reading serves the other common "timestamp, level, message" header: an ISO 8601
//! time first (`2024-03-11T08:22:17.123Z ERROR msg`, `2024-03-11 08:22:17,123 [WARN] msg`,
//! as custom Go formats, Python's logging and many others write it), optionally followed by
//! logfmt fields.

use std::borrow::Cow;

use super::fields::{classify, level_of, Draft, Field};
use super::text::strip_markers;

/// Finds the Go log date at the start of the line or after a short prefix (`log.New`'s
/// prefix, e.g. `[billing] ` or `app: `). Returns (time, prefix, rest).
fn dated(line: &str, naive_offset_secs: i64) -> Option<(i64, &str, &str)> {
    if let Some((nanos, used)) = super::time::go_log_prefix(line, naive_offset_secs) {
        return Some((nanos, "", &line[used..]));
    }
    if let Some((nanos, used)) = super::time::rfc3339_prefix(line, naive_offset_secs) {
        // Only a header when a separator follows: not `2024-03-11T08:22:17Zfoo`.
        let rest = &line[used..];
        if rest.is_empty() || rest.starts_with([' ', '\t']) {
            return Some((nanos, "", rest));
        }
    }
    let window = &line.as_bytes()[..line.len().min(48)];
    let space = window.iter().position(|&c| c == b' ')?;
    let prefix = &line[..space];
    let rest = &line[space + 1..];
    let (nanos, used) = super::time::go_log_prefix(rest, naive_offset_secs)?;
    Some((nanos, prefix, &rest[used..]))
}

/// Whether the line starts with a Go log date (possibly after a prefix).
pub(crate) fn looks_like(line: &str) -> bool {
    dated(line, 0).is_some()
}

/// Parses a Go `log` or nginx error line.
pub(crate) fn parse(line: &str, draft: &mut Draft, naive_offset_secs: i64) -> bool {
    let Some((nanos, prefix, rest)) = dated(line, naive_offset_secs) else {
        return false;
    };
    draft.time_unix_nanos = Some(nanos);
    draft.free_text = true;
    let prefix = prefix.trim();
    if !prefix.is_empty() {
        let tag = prefix
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches(':');
        draft
            .attributes
            .push(("prefix".to_string(), tag.to_string()));
    }
    let mut rest = rest.trim_start();
    if nginx_error(rest, draft) {
        return true;
    }
    // `TIME key=value ...`: the fields are the record; the header only gave the time.
    if super::logfmt::looks_like(rest) {
        let mut fields = Draft::default();
        if super::logfmt::parse(rest, &mut fields, naive_offset_secs) {
            fields.time_unix_nanos = fields.time_unix_nanos.or(Some(nanos));
            fields
                .attributes
                .extend(std::mem::take(&mut draft.attributes));
            *draft = fields;
            return true;
        }
    }
    // Lshortfile / Llongfile: `file.go:123: `.
    if let Some(colon) = rest.find(": ") {
        let caller = &rest[..colon];
        if !caller.contains(' ')
            && caller.rsplit_once(':').is_some_and(|(file, line)| {
                file.ends_with(".go")
                    && !line.is_empty()
                    && line.bytes().all(|c| c.is_ascii_digit())
            })
        {
            draft
                .attributes
                .push(("caller".to_string(), caller.to_string()));
            rest = rest[colon + 2..].trim_start();
        }
    }
    let (level, mut message) = strip_markers(rest, draft);
    draft.level = level;
    // Fields appended to the message (`... EOF upstream=checkout trace_id=...`) are fields:
    // the ids join the line to its trace, the rest are attributes, and the message is the
    // error alone, as a structured logger would have written it.
    if let Some((at, pairs)) = super::logfmt::trailing_pairs(message) {
        for (key, value) in pairs {
            match classify(key) {
                // The text before the pairs is the message; a `msg=` among them is kept.
                Some(Field::Message) => {
                    draft.attributes.push((key.to_string(), value.into_owned()))
                }
                _ => draft.field(Cow::Borrowed(key), value, naive_offset_secs),
            }
        }
        message = message[..at].trim_end();
    }
    draft.message = Some(message.to_string());
    true
}

/// nginx's error log after the date: `[level] pid#tid: *cid message, key: value, ...`.
fn nginx_error(rest: &str, draft: &mut Draft) -> bool {
    let Some(inner) = rest.strip_prefix('[') else {
        return false;
    };
    let Some(end) = inner.find("] ") else {
        return false;
    };
    let Some(level) = level_of(&inner[..end]) else {
        return false;
    };
    let after = &inner[end + 2..];
    let Some((pid, message)) = after.split_once(": ") else {
        return false;
    };
    if !pid.contains('#') || !pid.bytes().all(|c| c.is_ascii_digit() || c == b'#') {
        return false;
    }
    draft.level = Some(level);
    draft.attributes.push(("pid".to_string(), pid.to_string()));
    let mut message = message;
    if let Some(conn) = message.strip_prefix('*') {
        if let Some((id, text)) = conn.split_once(' ') {
            draft
                .attributes
                .push(("connection".to_string(), id.to_string()));
            message = text;
        }
    }
    // Context fields follow the message as `, client: x, server: y, request: "..."`.
    let (text, context) = match message.find(", client: ") {
        Some(at) => (&message[..at], &message[at + 2..]),
        None => (message, ""),
    };
    for pair in context.split(", ") {
        if let Some((k, v)) = pair.split_once(": ") {
            draft
                .attributes
                .push((k.to_string(), v.trim_matches('"').to_string()));
        }
    }
    draft.message = Some(text.to_string());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Level;

    #[test]
    fn stdlib_with_prefix_shortfile_and_marker() {
        let mut d = Draft::default();
        let line = "[payment] 2024/03/11 08:22:48 handler.go:365: ERROR: bad request: parse request: json: cannot unmarshal string";
        assert!(parse(line, &mut d, 0));
        assert_eq!(d.level, Some(Level::Error));
        assert_eq!(
            d.message.as_deref(),
            Some("bad request: parse request: json: cannot unmarshal string")
        );
        assert!(d
            .attributes
            .contains(&("prefix".to_string(), "payment".to_string())));
        assert!(d
            .attributes
            .contains(&("caller".to_string(), "handler.go:365".to_string())));
    }

    #[test]
    fn stdlib_plain_message_keeps_everything_after_the_time() {
        let mut d = Draft::default();
        let line =
            "2024/03/11 08:22:20.465632 query failed: lookup x on 127.0.0.53:53: no such host";
        assert!(parse(line, &mut d, 0));
        assert_eq!(
            d.message.as_deref(),
            Some("query failed: lookup x on 127.0.0.53:53: no such host")
        );
        assert_eq!(d.level, None);
    }

    #[test]
    fn fields_after_the_message_are_fields() {
        let mut d = Draft::default();
        let line = r#"2026/12/05 03:00:01.123456 service.go:215: upstream call failed: Get "http://127.0.0.1:41234/x": EOF upstream=checkout trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7"#;
        assert!(parse(line, &mut d, 0));
        assert_eq!(
            d.message.as_deref(),
            Some(r#"upstream call failed: Get "http://127.0.0.1:41234/x": EOF"#)
        );
        assert_eq!(
            d.trace_id.map(|t| t.to_string()).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(
            d.span_id.map(|t| t.to_string()).as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert!(d
            .attributes
            .contains(&("upstream".to_string(), "checkout".to_string())));
        assert!(d
            .attributes
            .contains(&("caller".to_string(), "service.go:215".to_string())));
        // An error field among them is the error; a message of pairs only stays as it was.
        let mut d = Draft::default();
        assert!(parse(
            "2026/12/05 03:00:01 query failed err=EOF db=orders",
            &mut d,
            0
        ));
        assert_eq!(d.message.as_deref(), Some("query failed"));
        assert_eq!(d.error.as_deref(), Some("EOF"));
    }

    #[test]
    fn iso_timestamp_level_message_headers() {
        let cases = [
            (
                "2026-11-25T19:40:01Z ERROR login failed for user bob",
                Level::Error,
                "login failed for user bob",
            ),
            (
                "2026-11-25T19:40:01.123+01:00 [WARN] slow query",
                Level::Warn,
                "slow query",
            ),
            (
                "2026-11-25 19:40:01,123 ERROR payments: charge failed: EOF",
                Level::Error,
                "payments: charge failed: EOF",
            ),
        ];
        for (line, level, message) in cases {
            let mut d = Draft::default();
            assert!(looks_like(line), "{line}");
            assert!(parse(line, &mut d, 0), "{line}");
            assert_eq!(d.level, Some(level), "{line}");
            assert_eq!(d.message.as_deref(), Some(message), "{line}");
            assert!(d.time_unix_nanos.is_some(), "{line}");
        }
        let mut d = Draft::default();
        assert!(parse(
            "2026-11-25T19:40:01Z level=error msg=\"call failed\" err=EOF",
            &mut d,
            0
        ));
        assert_eq!(d.message.as_deref(), Some("call failed"));
        assert_eq!(d.error.as_deref(), Some("EOF"));
        assert!(!looks_like("2026-11-25T19:40:01Zfoo bar"));
    }

    #[test]
    fn nginx_error_line() {
        let mut d = Draft::default();
        let line = r#"2024/01/02 15:04:05 [error] 1234#0: *5 connect() failed (111: Connection refused) while connecting to upstream, client: 10.0.0.1, server: api, request: "GET / HTTP/1.1", upstream: "http://127.0.0.1:8080/""#;
        assert!(parse(line, &mut d, 0));
        assert_eq!(d.level, Some(Level::Error));
        assert_eq!(
            d.message.as_deref(),
            Some("connect() failed (111: Connection refused) while connecting to upstream")
        );
        assert!(d
            .attributes
            .contains(&("client".to_string(), "10.0.0.1".to_string())));
    }
}
