//! The root of an error message: the innermost Go error, where the root kind lives.
//!
//! Go code wraps errors with `fmt.Errorf("doing x: %w", err)`, so the root kind is the text
//! after the last `: ` that is not inside a quoted value (`Get "http://a:80/x": EOF` → `EOF`;
//! `strconv.Atoi: parsing "": invalid syntax` → `invalid syntax`). Only the first line counts
//! (a stack trace follows a panic message, written with real or escaped `\n`); a Gin error
//! line (`Error #01: ...`) counts from its error. Quoted values are masked as one value here
//! (`malformed HTTP response "-ERR"` and `"+OK"` are one kind), then the usual masking
//! applies. Segments that are only a value (an address) are skipped. An error that ends in a
//! quoted error chain, as gRPC writes its transport errors
//! (`rpc error: code = Unavailable desc = "transport: ...: connect: connection refused"`), has
//! its root inside the quotes.

use crate::mask::{MaskedLine, WILDCARD};

/// The masked innermost error of `message` (never empty for a non-blank message).
pub fn root_signature(message: &str) -> String {
    let gin_error = message.find("Error #").and_then(|at| {
        message[at..]
            .find(": ")
            .map(|colon| &message[at + colon + 2..])
    });
    let body = first_line(gin_error.unwrap_or(message));
    if let Some(inner) = trailing_quoted_error(body) {
        return root_signature(&inner);
    }
    let quoted = mask_quotes(body);
    let mut masked = MaskedLine::new();
    let mut last = String::new();
    for segment in split_segments(&quoted) {
        masked.mask(segment);
        let text = masked.text.trim();
        if !text.is_empty() && text != WILDCARD && text != "\"<*>\"" {
            last.clear();
            last.push_str(text);
        }
    }
    if last.is_empty() {
        masked.mask(&quoted);
        last = masked.text.clone();
    }
    last
}

/// The first line of `message`: up to the first real or escaped (`\\n`) line break that is
/// not inside a double-quoted value (`parsing "492\\n": invalid syntax` is one line). When
/// quotes do not balance, the first break of any kind ends the line.
fn first_line(message: &str) -> &str {
    let b = message.as_bytes();
    let mut in_quote = false;
    let mut any_break: Option<usize> = None;
    let mut end: Option<usize> = None;
    let mut i = 0;
    while i < b.len() {
        let is_break = b[i] == b'\n' || (b[i] == b'\\' && b.get(i + 1) == Some(&b'n'));
        if is_break {
            any_break.get_or_insert(i);
            if !in_quote {
                end = Some(i);
                break;
            }
        }
        if b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == b'"' {
            in_quote = !in_quote;
        }
        i += 1;
    }
    let end = match end {
        Some(e) => e,
        None if in_quote => any_break.unwrap_or(b.len()),
        None => b.len(),
    };
    let line = message[..end].trim();
    if line.is_empty() {
        message.trim()
    } else {
        line
    }
}

/// The content of a double-quoted value that ends `text`, when it is itself an error chain
/// (it has a `: ` in it): `desc = "transport: Error while dialing: dial tcp ...: connection
/// refused"`. Escapes are undone (`\"` → `"`). `None` for `Get "http://a/x"`, a value.
fn trailing_quoted_error(text: &str) -> Option<String> {
    let body = text.trim_end().strip_suffix('"')?;
    let b = body.as_bytes();
    // Walk back to the opening quote, skipping escaped quotes.
    let mut i = b.len();
    let open = loop {
        let at = body[..i].rfind('"')?;
        let backslashes = b[..at].iter().rev().take_while(|&&c| c == b'\\').count();
        if backslashes % 2 == 0 {
            break at;
        }
        i = at;
    };
    let inner = &body[open + 1..];
    if !inner.contains(": ") {
        return None;
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Replaces `"..."` (with backslash escapes) by `"<*>"` and one-character `'x'` by `'<*>'`.
fn mask_quotes(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                if j < b.len() {
                    out.push_str(&text[copied..i]);
                    out.push_str("\"<*>\"");
                    i = j + 1;
                    copied = i;
                    continue;
                }
            }
            b'\'' => {
                // A quoted character: 'x', '\'' or one multi-byte character.
                let rest = &text[i + 1..];
                let mut chars = rest.char_indices();
                if let Some((_, c)) = chars.next() {
                    let mut end = c.len_utf8();
                    if c == '\\' {
                        if let Some((_, e)) = chars.next() {
                            end += e.len_utf8();
                        }
                    }
                    if rest[end..].starts_with('\'') {
                        out.push_str(&text[copied..i]);
                        out.push_str("'<*>'");
                        i += 1 + end + 1;
                        copied = i;
                        continue;
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

fn split_segments(text: &str) -> impl Iterator<Item = &str> {
    text.split(": ")
}

/// Whether the innermost error of `message` only reports an HTTP error status that a
/// request got (`HTTP 502 from GET /v1/orders/:id`, `GET http://a/x: unexpected status 502
/// Bad Gateway`, `status code 503`): a 4xx/5xx code after `HTTP`, `status` or `code`, or
/// followed by its reason phrase (RFC 9110, section 15).
///
/// Such a report says *that* a call failed, not why: it is how a failure echoes up the call
/// chain (the callee answers 502 after its own transport error; every caller then logs and
/// records the 502). Counted as failures of their own, these echoes became patterns with one
/// count per failed request beside the failure's own pattern, in every failing fault of the
/// Go lab (issue #11); the occurrence counting folds them into the failure of their trace
/// (see [`crate::occurrence`]). Only the innermost error counts: `retry after HTTP 503:
/// dial tcp ...: connection refused` is a refused connection.
pub fn reports_http_status(message: &str) -> bool {
    let line = first_line(message);
    let quoted = mask_quotes(line);
    let Some(root) = split_segments(&quoted)
        .filter(|s| s.bytes().any(|b| b.is_ascii_alphabetic()))
        .last()
    else {
        return false;
    };
    let words: Vec<&str> = root
        .split_ascii_whitespace()
        .map(|w| w.trim_matches(|c: char| c.is_ascii_punctuation() && c != '='))
        .collect();
    words.iter().enumerate().any(|(i, word)| {
        // `status=502`, `code:502` are one word.
        let (key, code) = match word.split_once(['=', ':']) {
            Some((k, v)) => (Some(k), v),
            None => (i.checked_sub(1).map(|p| words[p]), *word),
        };
        let is_code = code.len() == 3 && code.parse::<u16>().is_ok_and(|c| (400..600).contains(&c));
        is_code
            && (key.is_some_and(|k| {
                ["http", "status", "code", "status_code", "statuscode"]
                    .iter()
                    .any(|name| k.eq_ignore_ascii_case(name))
            }) || starts_with_reason_phrase(&words[i + 1..]))
    })
}

/// Whether `words` start with the reason phrase of a 4xx or 5xx status (RFC 9110, section 15;
/// compared without case).
fn starts_with_reason_phrase(words: &[&str]) -> bool {
    const PHRASES: [&str; 29] = [
        "bad request",
        "unauthorized",
        "payment required",
        "forbidden",
        "not found",
        "method not allowed",
        "not acceptable",
        "proxy authentication required",
        "request timeout",
        "conflict",
        "gone",
        "length required",
        "precondition failed",
        "content too large",
        "payload too large",
        "uri too long",
        "unsupported media type",
        "range not satisfiable",
        "expectation failed",
        "misdirected request",
        "unprocessable content",
        "unprocessable entity",
        "upgrade required",
        "too many requests",
        "internal server error",
        "not implemented",
        "bad gateway",
        "service unavailable",
        "gateway timeout",
    ];
    PHRASES.iter().any(|phrase| {
        let mut given = words.iter();
        phrase
            .split(' ')
            .all(|p| given.next().is_some_and(|w| w.eq_ignore_ascii_case(p)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn innermost_error_after_wrapping() {
        assert_eq!(
            root_signature("failed to call user service: Get \"http://a:80/x\": EOF"),
            "EOF"
        );
        assert_eq!(
            root_signature("GetUser(42): read tcp 1.2.3.4:5->6.7.8.9:10: i/o timeout"),
            "i/o timeout"
        );
        assert_eq!(
            root_signature("strconv.Atoi: parsing \"a: b\": invalid syntax"),
            "invalid syntax"
        );
        assert_eq!(
            root_signature("invalid character '\"' after object key:value pair"),
            "invalid character '<*>' after object key:value pair"
        );
    }

    #[test]
    fn grpc_transport_errors_root_inside_their_quoted_desc() {
        assert_eq!(
            root_signature("rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial tcp 10.0.0.9:50051: connect: connection refused\""),
            "connection refused"
        );
        assert_eq!(
            root_signature("rpc error: code = Unavailable desc = \"transport: authentication handshake failed: x509: certificate signed by unknown authority\""),
            root_signature("tls: x509: certificate signed by unknown authority"),
        );
        // A quoted value that is not an error chain stays a value.
        assert_eq!(
            root_signature("malformed HTTP response \"-ERR\""),
            root_signature("malformed HTTP response \"+OK\"")
        );
        assert_eq!(
            root_signature("redis: \"quoted \\\" escape: inside\""),
            "inside"
        );
    }

    #[test]
    fn a_line_break_inside_quotes_does_not_end_the_line() {
        assert_eq!(
            root_signature("strconv.Atoi: parsing \"255\\n\": invalid syntax"),
            "invalid syntax"
        );
        assert_eq!(
            root_signature("strconv.Atoi: parsing \"255\n\": invalid syntax"),
            "invalid syntax"
        );
    }

    #[test]
    fn stack_traces_and_gin_lines() {
        assert_eq!(
            root_signature("http: panic serving 1.2.3.4:5: runtime error: index out of range [3] with length 2\\ngoroutine 7 [running]:"),
            "index out of range [<*>] with length <*>"
        );
        assert_eq!(
            root_signature("Error #01: payment: Get \"http://p/x\": dial tcp 1.2.3.4:80: connect: connection refused"),
            "connection refused"
        );
    }

    #[test]
    fn http_status_reports_are_told_from_failures() {
        for echo in [
            "HTTP 502 from GET /v1/orders/:id",
            "GET http://127.0.0.1:41234/users/7: unexpected status 502 Bad Gateway",
            "GET http://127.0.0.1:1/v1/orders/7: 500 Internal Server Error",
            "call inventory: status code 503",
            "upstream answered status=504",
            "request failed with HTTP 429",
        ] {
            assert!(reports_http_status(echo), "{echo}");
        }
        for failure in [
            "upstream call failed: Get \"http://127.0.0.1:41234/x\": EOF",
            "retry after HTTP 503: dial tcp 10.0.0.1:80: connect: connection refused",
            "exit status 2",
            "read 502 bytes: unexpected EOF",
            "runtime error: index out of range [500] with length 3",
            "HTTP 200 from GET /x",
            "",
            "502",
        ] {
            assert!(!reports_http_status(failure), "{failure}");
        }
    }

    #[test]
    fn hostile_input_does_not_panic() {
        for m in [
            "",
            ":",
            ": : :",
            "\"",
            "'",
            "'\\",
            "\"\\",
            "é'",
            "Error #",
            "\\n\\n",
            "'é'",
            "\"a: b\\\"",
            "x \\\"\"",
            "\"\"",
            "\": \"",
        ] {
            let _ = root_signature(m);
            let _ = reports_http_status(m);
        }
    }
}
