//! nginx's (and Apache's) access log in the combined format:
//! `10.0.0.1 - user [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" 502 157 "ref" "agent"`.

use super::fields::Draft;
use crate::record::Level;

/// Reads a double-quoted field at the start of `text`: its body and the rest after it.
fn quoted(text: &str) -> Option<(&str, &str)> {
    let body = text.strip_prefix('"')?;
    let b = body.as_bytes();
    let mut j = 0;
    while j < b.len() && b[j] != b'"' {
        j += if b[j] == b'\\' { 2 } else { 1 };
    }
    let end = j.min(b.len());
    Some((&body[..end], body.get(end + 1..).unwrap_or("").trim_start()))
}

/// Parses a combined-format access line. Returns `false` if it is not one.
pub(crate) fn access(line: &str, draft: &mut Draft, naive_offset_secs: i64) -> bool {
    let mut fields = line.splitn(3, ' ');
    let (Some(addr), Some(_ident), Some(rest)) = (fields.next(), fields.next(), fields.next())
    else {
        return false;
    };
    if addr.is_empty()
        || !addr
            .bytes()
            .all(|c| c.is_ascii_hexdigit() || b".:".contains(&c))
    {
        return false;
    }
    let Some((user, rest)) = rest.split_once(" [") else {
        return false;
    };
    let Some((time, rest)) = rest.split_once("] ") else {
        return false;
    };
    let Some((request, rest)) = quoted(rest) else {
        return false;
    };
    let mut tail = rest.splitn(3, ' ');
    let Some(status) = tail.next().and_then(|s| s.parse::<u16>().ok()) else {
        return false;
    };
    let bytes = tail.next().unwrap_or("");
    let mut rest = tail.next().unwrap_or("");
    draft.time_unix_nanos = super::time::common_log(time, naive_offset_secs);
    draft.http_status = Some(status);
    draft.level = Some(if status >= 500 {
        Level::Error
    } else {
        Level::Info
    });
    draft
        .attributes
        .push(("client_ip".to_string(), addr.to_string()));
    if user != "-" {
        draft
            .attributes
            .push(("user".to_string(), user.to_string()));
    }
    draft
        .attributes
        .push(("body_bytes".to_string(), bytes.to_string()));
    for key in ["referer", "user_agent"] {
        match quoted(rest) {
            Some((value, after)) => {
                draft.attributes.push((key.to_string(), value.to_string()));
                rest = after;
            }
            None => break,
        }
    }
    let mut parts = request.split(' ');
    if let (Some(method), Some(path)) = (parts.next(), parts.next()) {
        draft
            .attributes
            .push(("method".to_string(), method.to_string()));
        draft
            .attributes
            .push(("path".to_string(), path.to_string()));
    }
    draft.message = Some(request.to_string());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_line() {
        let mut d = Draft::default();
        let line = r#"10.0.0.1 - - [11/Mar/2024:01:22:17 -0700] "GET /api/v1/users/1 HTTP/1.1" 502 157 "-" "curl/8.5.0""#;
        assert!(access(line, &mut d, 0));
        assert_eq!(d.http_status, Some(502));
        assert_eq!(d.level, Some(Level::Error));
        assert_eq!(d.message.as_deref(), Some("GET /api/v1/users/1 HTTP/1.1"));
        assert_eq!(d.time_unix_nanos, Some(1_710_145_337_000_000_000));
        assert!(d
            .attributes
            .contains(&("user_agent".to_string(), "curl/8.5.0".to_string())));
    }

    #[test]
    fn not_access_lines() {
        for line in ["hello world", "1.2.3.4 - - [bad", "2024/03/11 08:22:20 x"] {
            assert!(!access(line, &mut Draft::default(), 0), "{line}");
        }
    }
}
