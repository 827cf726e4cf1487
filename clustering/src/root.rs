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
        }
    }
}
