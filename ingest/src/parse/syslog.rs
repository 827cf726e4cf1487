//! Headers that a system logger or klog puts in front of a service's own line.
//!
//! A Go service run by systemd writes to the journal, and rsyslog puts the journal into
//! `/var/log/syslog` as `Nov 25 20:41:03 node-7 user-svc[1234]: <the service's line>` (RFC 3164),
//! or on newer Debian `2026-11-25T20:41:03.123456+00:00 node-7 user-svc[1234]: ...`; a
//! forwarder may write RFC 5424 (`<11>1 2026-11-25T20:41:03Z node-7 user-svc 1234 - - ...`).
//! Kubernetes components and many operators log with klog:
//! `E1125 20:41:03.123456    1234 server.go:123] ...`. The header says when, which service
//! (the syslog tag or app name) and how bad (the syslog severity, klog's letter); the rest is
//! the service's own line, in any format the other readers know.

use super::fields::level_of;
use crate::record::Level;

/// What a header says, and the service's line after it.
#[derive(Debug, Default)]
pub(crate) struct Header<'a> {
    pub time_unix_nanos: Option<i64>,
    /// The syslog tag / RFC 5424 app name.
    pub service: Option<&'a str>,
    pub level: Option<Level>,
    /// `host`, `pid`, `caller` (klog) as the header gives them.
    pub attributes: Vec<(&'static str, &'a str)>,
    /// klog's structured form (`] "Failed to watch" err="EOF"`): the quoted message, with
    /// `rest` then holding only its `key=value` pairs.
    pub message: Option<String>,
    /// The service's own line.
    pub rest: &'a str,
}

/// Reads a syslog or klog header at the start of `line`; `None` when there is none.
pub(crate) fn header(line: &str, naive_offset_secs: i64, observed: i64) -> Option<Header<'_>> {
    let first = *line.as_bytes().first()?;
    match first {
        b'<' => with_priority(line, naive_offset_secs, observed),
        b'I' | b'W' | b'E' | b'F' => klog(line, naive_offset_secs, observed)
            .or_else(|| bsd(line, None, naive_offset_secs, observed)),
        b'0'..=b'9' => rfc3339_bsd(line, naive_offset_secs),
        _ => bsd(line, None, naive_offset_secs, observed),
    }
}

/// The level of a syslog severity (the priority's low three bits), for warnings and worse.
///
/// Notice, info and debug give none: journald files everything a service prints as info
/// unless told otherwise, so an info severity says nothing about a line that reads
/// `dial tcp ...: connection refused`; without a level the line's own words decide.
fn severity_level(priority: u32) -> Option<Level> {
    match priority & 7 {
        0..=2 => Some(Level::Fatal),
        3 => Some(Level::Error),
        4 => Some(Level::Warn),
        _ => None,
    }
}

/// `<PRI>` then RFC 5424 (`1 TIMESTAMP HOST APP PROCID MSGID SD MSG`) or RFC 3164.
fn with_priority(line: &str, offset: i64, observed: i64) -> Option<Header<'_>> {
    // `<0>` .. `<191>`: at most three digits.
    let close = line.bytes().take(5).position(|c| c == b'>')?;
    let digits = &line[1..close];
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let priority: u32 = digits.parse().ok().filter(|&p| p <= 191)?;
    let level = severity_level(priority);
    let after = &line[close + 1..];
    if let Some(rest) = after.strip_prefix("1 ") {
        let mut header = rfc5424(rest, offset)?;
        header.level = level;
        return Some(header);
    }
    let mut header = bsd(after, level, offset, observed)
        .or_else(|| rfc3339_bsd(after, offset))
        .unwrap_or(Header {
            rest: after,
            ..Header::default()
        });
    header.level = level;
    Some(header)
}

/// The next space-separated field of `text` and what follows its space.
fn field(text: &str) -> Option<(&str, &str)> {
    let (value, rest) = text.split_once(' ')?;
    (!value.is_empty()).then_some((value, rest))
}

/// RFC 5424 after `<PRI>1 `: `TIMESTAMP HOST APP PROCID MSGID SD [MSG]`, `-` for a nil value.
fn rfc5424(text: &str, offset: i64) -> Option<Header<'_>> {
    let (stamp, rest) = field(text)?;
    let time_unix_nanos = if stamp == "-" {
        None
    } else {
        let (nanos, used) = super::time::rfc3339_prefix(stamp, offset)?;
        if used != stamp.len() {
            return None;
        }
        Some(nanos)
    };
    let (host, rest) = field(rest)?;
    let (app, rest) = field(rest)?;
    let (pid, rest) = field(rest)?;
    let (_msgid, rest) = field(rest)?;
    let rest = skip_structured_data(rest)?;
    let nil = |v: &str| v != "-";
    let mut attributes = Vec::new();
    if nil(host) {
        attributes.push(("host", host));
    }
    if nil(pid) {
        attributes.push(("pid", pid));
    }
    Some(Header {
        time_unix_nanos,
        service: Some(app).filter(|a| nil(a)),
        level: None,
        attributes,
        message: None,
        rest: rest.trim_start_matches('\u{feff}'),
    })
}

/// Skips RFC 5424 structured data (`-` or `[id k="v" ...]...`) and the space after it.
fn skip_structured_data(text: &str) -> Option<&str> {
    if let Some(rest) = text.strip_prefix('-') {
        return Some(rest.strip_prefix(' ').unwrap_or(rest));
    }
    let b = text.as_bytes();
    let mut i = 0;
    while b.get(i) == Some(&b'[') {
        let mut in_quotes = false;
        i += 1;
        loop {
            match b.get(i)? {
                b'\\' => i += 1,
                b'"' => in_quotes = !in_quotes,
                b']' if !in_quotes => break,
                _ => {}
            }
            i += 1;
        }
        i += 1;
    }
    let rest = text.get(i..)?;
    Some(rest.strip_prefix(' ').unwrap_or(rest))
}

/// RFC 3164 `Mmm dd hh:mm:ss HOST [TAG[PID]:] MSG`.
fn bsd(line: &str, level: Option<Level>, offset: i64, observed: i64) -> Option<Header<'_>> {
    let (nanos, used) = super::time::syslog_prefix(line, offset, observed)?;
    let rest = line[used..].strip_prefix(' ')?;
    let (host, rest) = field(rest)?;
    let mut header = tagged(rest).unwrap_or(Header {
        rest,
        ..Header::default()
    });
    header.attributes.insert(0, ("host", host));
    header.time_unix_nanos = Some(nanos);
    header.level = level;
    Some(header)
}

/// rsyslog's high-precision form: `2026-11-25T20:41:03.123456+00:00 HOST TAG[PID]: MSG`.
///
/// An ISO time followed by two words is also how many services' own lines start
/// (`TIME LEVEL component: msg`, `TIME server listening: ...`), so this form needs the exact
/// stamp rsyslog writes (microseconds and a numeric zone, `2026-11-25T20:41:03.123456+00:00`,
/// where Go's own RFC 3339 writes `Z`), a host name that is not a level word, and a tag.
fn rfc3339_bsd(line: &str, offset: i64) -> Option<Header<'_>> {
    let (nanos, used) = super::time::rfc3339_prefix(line, offset)?;
    let stamp = line.as_bytes().get(..used)?;
    let rsyslog_precise =
        used == 32 && stamp[19] == b'.' && matches!(stamp[26], b'+' | b'-') && stamp[29] == b':';
    if !rsyslog_precise {
        return None;
    }
    let rest = line[used..].strip_prefix(' ')?;
    let (host, rest) = field(rest)?;
    let host_name = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_');
    if level_of(host).is_some() || !host.bytes().all(host_name) {
        return None;
    }
    let mut header = tagged(rest)?;
    header.attributes.insert(0, ("host", host));
    header.time_unix_nanos = Some(nanos);
    Some(header)
}

/// `TAG[PID]: MSG` or `TAG: MSG`, the tag a program name (letters, digits, `-_./@`).
fn tagged(text: &str) -> Option<Header<'_>> {
    let colon = text.get(..text.len().min(64))?.find(": ").or_else(|| {
        // A tag with an empty message: `user-svc[12]:` at the end of the line.
        text.ends_with(':').then(|| text.len() - 1)
    })?;
    let tag = &text[..colon];
    let (name, pid) = match tag.strip_suffix(']').and_then(|t| t.split_once('[')) {
        Some((name, pid)) if pid.bytes().all(|c| c.is_ascii_digit()) && !pid.is_empty() => {
            (name, Some(pid))
        }
        Some(_) => return None,
        None => (tag, None),
    };
    let program_name =
        |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'/' | b'@');
    if name.is_empty() || !name.bytes().all(program_name) {
        return None;
    }
    let mut attributes = Vec::new();
    if let Some(pid) = pid {
        attributes.push(("pid", pid));
    }
    Some(Header {
        service: Some(name.rsplit('/').next().unwrap_or(name)),
        attributes,
        rest: text.get(colon + 2..).unwrap_or(""),
        ..Header::default()
    })
}

/// klog: `Lmmdd hh:mm:ss.uuuuuu threadid file:line] MSG`.
fn klog(line: &str, offset: i64, observed: i64) -> Option<Header<'_>> {
    let level = match line.as_bytes()[0] {
        b'I' => Level::Info,
        b'W' => Level::Warn,
        b'E' => Level::Error,
        _ => Level::Fatal,
    };
    let (nanos, used) = super::time::klog_prefix(&line[1..], offset, observed)?;
    let rest = line[1 + used..].trim_start_matches(' ');
    let (thread, rest) = field(rest)?;
    if !thread.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (caller, rest) = rest
        .split_once("] ")
        .or_else(|| Some((rest.strip_suffix(']')?, "")))?;
    if caller.contains(' ') || !caller.contains(':') {
        return None;
    }
    let (message, rest) = match quoted(rest) {
        Some((message, after)) if after.is_empty() || after.starts_with(' ') => {
            (Some(message), after.trim_start())
        }
        _ => (None, rest),
    };
    Some(Header {
        time_unix_nanos: Some(nanos),
        service: None,
        level: Some(level),
        attributes: vec![("caller", caller)],
        message,
        rest,
    })
}

/// A Go-quoted string (`%q`) at the start of `text`: its value and what follows the quote.
fn quoted(text: &str) -> Option<(String, &str)> {
    let body = text.strip_prefix('"')?;
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &body[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOV_25_2026: i64 = 1_795_564_800 * 1_000_000_000;

    #[test]
    fn every_header_form() {
        let observed = NOV_25_2026 + 86_400 * 1_000_000_000;
        let h = header(
            "Nov 25 20:41:03 node-7 user-svc[1234]: dial tcp: EOF",
            0,
            observed,
        )
        .unwrap();
        assert_eq!(h.service, Some("user-svc"));
        assert_eq!(h.rest, "dial tcp: EOF");
        assert_eq!(
            h.time_unix_nanos,
            Some(NOV_25_2026 + 74_463 * 1_000_000_000)
        );
        assert_eq!(h.attributes, vec![("host", "node-7"), ("pid", "1234")]);

        let h = header(
            "2026-11-25T20:41:03.500000+00:00 node-7 orders: {\"level\":\"error\"}",
            0,
            observed,
        )
        .unwrap();
        assert_eq!(
            (h.service, h.rest),
            (Some("orders"), "{\"level\":\"error\"}")
        );

        let h = header(
            "<11>1 2026-11-25T20:41:03Z node-7 billing 99 - [a b=\"]\"] x: refused",
            0,
            observed,
        )
        .unwrap();
        assert_eq!(
            (h.service, h.level, h.rest),
            (Some("billing"), Some(Level::Error), "x: refused")
        );

        let h = header("<28>Nov 25 20:41:03 node-7 kernel: oops", 0, observed).unwrap();
        assert_eq!(
            (h.service, h.level, h.rest),
            (Some("kernel"), Some(Level::Warn), "oops")
        );
        let h = header("<30>Nov 25 20:41:03 node-7 user-svc[9]: EOF", 0, observed).unwrap();
        assert_eq!((h.service, h.level), (Some("user-svc"), None));

        let h = header(
            "E1125 20:41:03.123456    1234 server.go:123] \"watch failed\" err=\"EOF\"",
            0,
            observed,
        )
        .unwrap();
        assert_eq!(h.level, Some(Level::Error));
        assert_eq!(h.message.as_deref(), Some("watch failed"));
        assert_eq!(h.rest, "err=\"EOF\"");
        assert_eq!(h.attributes, vec![("caller", "server.go:123")]);
    }

    #[test]
    fn lines_that_only_look_like_headers_are_left_alone() {
        let observed = NOV_25_2026;
        for line in [
            "2026-11-25T20:41:03Z ERROR payments: charge failed",
            "2026-11-25 20:41:03 api-1 payments: no zone, so not syslog",
            "2026-11-25T20:41:03.123456Z server listening: Go writes Z, rsyslog an offset",
            "2026-11-25T20:41:03.123456+00:00 [error] x: not a host name",
            "Error #01: EOF",
            "Information: something",
            "E1125 is not a klog line",
            "<abc> not a priority",
            "<999>1 x",
            "Nov 25 20:41:03",
        ] {
            assert!(header(line, 0, observed).is_none(), "{line}");
        }
        for len in 0..40 {
            let line = &"<11>1 2026-11-25T20:41:03Z node-7 billing 99 - [a b=\"]\"] x"[..len];
            let _ = header(line, 0, observed);
        }
    }
}
