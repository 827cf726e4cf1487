//! Gin's request log (`[GIN] 2024/01/02 - 15:04:05 | 500 | 1.2ms | 127.0.0.1 | GET "/users/1"`),
//! its `Error #01: ...` lines and its `[GIN-debug]` lines.
//!
//! Gin writes the request line and then the handler's errors (`c.Errors`), one `Error #NN:`
//! line each. In a file they are separate lines that the multi-line joiner glues back; some
//! pipelines escape them as a literal `\n` on one line. Both forms give the first error as the
//! record's error field, which is the text worth clustering.

use std::borrow::Cow;

use super::fields::{level_of, Draft};
use crate::record::Level;

/// Removes ANSI colour sequences (`ESC [ ... m`), which Gin writes when it thinks it is on a
/// terminal.
fn strip_ansi(line: &str) -> Cow<'_, str> {
    if !line.contains('\u{1b}') {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Reads `Error #01: a` / `Error #02: b` lines (separated by real or escaped newlines): the
/// first error becomes the error field, all of them the `gin.errors` attribute. Only a newline
/// followed by `Error #` separates errors, so an escaped `\n` inside an error text stays.
fn errors(text: &str, draft: &mut Draft) {
    let b = text.as_bytes();
    let mut starts: Vec<usize> = super::text::GIN_ERROR
        .find_iter(b)
        .filter(|&i| {
            i == 0
                || b[i - 1] == b'\n'
                || (i >= 2 && &b[i - 2..i] == b"\\n")
                || b[..i].iter().all(|c| c.is_ascii_whitespace())
        })
        .collect();
    starts.push(b.len());
    let mut all: Vec<&str> = Vec::new();
    for pair in starts.windows(2) {
        let chunk = &text[pair[0]..pair[1]];
        let chunk = chunk.trim_end().trim_end_matches("\\n").trim_end();
        let rest = &chunk["Error #".len()..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if let Some(msg) = rest[digits..].strip_prefix(": ") {
            all.push(msg.trim());
        }
    }
    if let Some(first) = all.first() {
        draft.error = Some((*first).to_string());
    }
    if all.len() > 1 {
        draft
            .attributes
            .push(("gin.errors".to_string(), all.join("; ")));
    }
}

/// Parses an `Error #01: ...` line on its own.
pub(crate) fn error_line(line: &str, draft: &mut Draft) -> bool {
    errors(line, draft);
    if draft.error.is_none() {
        return false;
    }
    draft.level = Some(Level::Error);
    draft.message = draft.error.clone();
    true
}

/// Parses a `[GIN-debug] ...` line: `[WARNING]` / `[ERROR]` markers give the level.
pub(crate) fn debug_line(rest: &str, draft: &mut Draft) -> bool {
    let rest = rest.trim_start();
    let mut level = Level::Debug;
    let mut message = rest;
    if let Some(inner) = rest.strip_prefix('[') {
        if let Some(end) = inner.find(']') {
            if let Some(l) = level_of(&inner[..end]) {
                level = l;
                message = inner[end + 1..].trim_start();
            }
        }
    }
    draft.level = Some(level);
    draft.message = Some(message.to_string());
    draft.free_text = true;
    true
}

/// Parses a `[GIN] ...` request line (after the `[GIN]` tag).
pub(crate) fn request_line(rest: &str, draft: &mut Draft, naive_offset_secs: i64) -> bool {
    let clean = strip_ansi(rest);
    let mut parts = clean.splitn(5, '|');
    let (Some(date), Some(status), Some(latency), Some(client), Some(request)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let Ok(status) = status.trim().parse::<u16>() else {
        return false;
    };
    draft.time_unix_nanos = super::time::gin(date.trim(), naive_offset_secs);
    draft.http_status = Some(status);
    // Gin writes no level. A failed request is read as a warning, as zap's and slog's request
    // loggers write it: the request line says that a request failed, not why, so without an
    // `Error #NN:` line it is traffic (counted in the service's failure rate), not an error
    // event. Read as an error it became a `GET <path>` pattern with one count per failed
    // request, beside the failure's own pattern, in every failing fault of the lab (issue
    // #11). Its `Error #NN:` lines, when there are any, make it an error event.
    draft.level = Some(if status >= 500 {
        Level::Warn
    } else {
        Level::Info
    });
    draft
        .attributes
        .push(("latency".to_string(), latency.trim().to_string()));
    draft
        .attributes
        .push(("client_ip".to_string(), client.trim().to_string()));
    let request = request.trim_start();
    let method_len = request
        .bytes()
        .take_while(|c| c.is_ascii_alphabetic())
        .count();
    let method = &request[..method_len];
    let after_method = request[method_len..].trim_start();
    // The path is printed with Go's %#v: a quoted string with Go escapes.
    let (path, tail) = match after_method.strip_prefix('"') {
        Some(body) => {
            let b = body.as_bytes();
            let mut j = 0;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            let end = j.min(b.len());
            (&body[..end], body.get(end + 1..).unwrap_or(""))
        }
        None => {
            let end = after_method
                .find(char::is_whitespace)
                .unwrap_or(after_method.len());
            (&after_method[..end], &after_method[end..])
        }
    };
    draft
        .attributes
        .push(("method".to_string(), method.to_string()));
    draft
        .attributes
        .push(("path".to_string(), path.to_string()));
    draft.message = Some(format!("{method} {path}"));
    errors(tail, draft);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_line_with_escaped_error() {
        let line = r#" 2024/03/11 - 08:22:18 | 503 |   47.977857ms |       127.0.0.1 | GET      "/api/v1/products"\nError #01: failed to read from nats: read tcp 127.0.0.1:43602->127.0.7.248:4222: i/o timeout"#;
        let mut d = Draft::default();
        assert!(request_line(line, &mut d, 0));
        assert_eq!(d.http_status, Some(503));
        assert_eq!(
            d.error.as_deref(),
            Some(
                "failed to read from nats: read tcp 127.0.0.1:43602->127.0.7.248:4222: i/o timeout"
            )
        );
        assert_eq!(d.message.as_deref(), Some("GET /api/v1/products"));
        assert!(d.time_unix_nanos.is_some());
    }

    #[test]
    fn coloured_line_with_real_newlines_and_two_errors() {
        let line = " 2024/01/02 - 15:04:05 |\u{1b}[97;41m 500 \u{1b}[0m|     1.2ms |       127.0.0.1 |\u{1b}[97;44m GET     \u{1b}[0m \"/users/1\"\nError #01: first\nError #02: second\n";
        let mut d = Draft::default();
        assert!(request_line(line, &mut d, 0));
        assert_eq!(d.http_status, Some(500));
        assert_eq!(d.error.as_deref(), Some("first"));
        assert!(d
            .attributes
            .contains(&("gin.errors".to_string(), "first; second".to_string())));
    }

    #[test]
    fn debug_error_marker() {
        let mut d = Draft::default();
        debug_line(
            " [ERROR] listen: accept tcp [::1]:6060: use of closed network connection",
            &mut d,
        );
        assert_eq!(d.level, Some(Level::Error));
        assert_eq!(
            d.message.as_deref(),
            Some("listen: accept tcp [::1]:6060: use of closed network connection")
        );
    }
}
