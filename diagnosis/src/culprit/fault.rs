//! What kind of failure an error text describes ([`Fault`]), and the address it names.

use std::fmt;
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What kind of failure an error text describes, as far as attribution cares.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// `EOF`: the callee closed the connection before answering.
    Eof,
    /// `unexpected EOF`: the callee closed the connection in the middle of an answer.
    UnexpectedEof,
    /// `connection reset by peer`: the callee reset the connection.
    Reset,
    /// `connection refused`: nothing accepted the connection (callee down or its queue full).
    Refused,
    /// `i/o timeout`, `context deadline exceeded`, `Client.Timeout exceeded`: the callee did
    /// not answer within the caller's deadline.
    Timeout,
    /// `broken pipe`: the callee closed the connection while the caller was still writing.
    BrokenPipe,
    /// A TLS handshake or certificate failure on the call.
    Tls,
    /// `no such host`, `server misbehaving`, resolver timeouts: the caller's own name lookup.
    Dns,
    /// `cannot assign requested address`: the caller ran out of local ports (a new
    /// connection per call leaves them all in TIME-WAIT).
    LocalPorts,
    /// `context canceled`, `request canceled`: the service's own caller gave up on it (its
    /// deadline passed, or it went away), and the service's work was cancelled with it. Not
    /// a fault of the call it cancelled: the wait that ran out is upstream.
    Canceled,
    /// Any other error: it lives where it is reported.
    Other,
}

impl Fault {
    /// Whether this is a client-side transport error whose cause is on the callee's side.
    pub fn blames_callee(self) -> bool {
        matches!(
            self,
            Fault::Eof
                | Fault::UnexpectedEof
                | Fault::Reset
                | Fault::Refused
                | Fault::Timeout
                | Fault::BrokenPipe
                | Fault::Tls
        )
    }

    /// Whether this is a failure of the client itself, whatever its callee.
    pub fn blames_caller(self) -> bool {
        matches!(self, Fault::Dns | Fault::LocalPorts)
    }

    /// What the callee did, in the words of the reasoning.
    pub(super) fn callee_did(self) -> &'static str {
        match self {
            Fault::Eof => "closed the connection without answering",
            Fault::UnexpectedEof => "closed the connection in the middle of its answer",
            Fault::Reset => "reset the connection",
            Fault::Refused => "refused the connection",
            Fault::Timeout => "did not answer within the caller's deadline",
            Fault::BrokenPipe => "closed the connection while the request was being written",
            Fault::Tls => "failed the TLS handshake",
            Fault::Dns | Fault::LocalPorts | Fault::Canceled | Fault::Other => "failed the call",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fault::Eof => "EOF",
            Fault::UnexpectedEof => "unexpected EOF",
            Fault::Reset => "connection reset",
            Fault::Refused => "connection refused",
            Fault::Timeout => "timeout",
            Fault::BrokenPipe => "broken pipe",
            Fault::Tls => "TLS failure",
            Fault::Dns => "name lookup failure",
            Fault::LocalPorts => "no local port left",
            Fault::Canceled => "cancellation",
            Fault::Other => "error",
        })
    }
}

/// The kind of failure `text` describes. The innermost error decides (Go wraps errors
/// outermost first), so the last matching phrase in the text wins.
pub fn fault_of(text: &str) -> Fault {
    let lower = text.to_ascii_lowercase();
    // Ordered so that a longer phrase is tried before a shorter one it contains.
    const PHRASES: &[(&str, Fault)] = &[
        ("unexpected eof", Fault::UnexpectedEof),
        ("connection reset", Fault::Reset),
        ("connection refused", Fault::Refused),
        ("broken pipe", Fault::BrokenPipe),
        ("no such host", Fault::Dns),
        ("server misbehaving", Fault::Dns),
        ("temporary failure in name resolution", Fault::Dns),
        ("cannot assign requested address", Fault::LocalPorts),
        ("i/o timeout", Fault::Timeout),
        ("deadline exceeded", Fault::Timeout),
        ("client.timeout exceeded", Fault::Timeout),
        ("timeout awaiting response headers", Fault::Timeout),
        ("context canceled", Fault::Canceled),
        ("operation was canceled", Fault::Canceled),
        ("request canceled", Fault::Canceled),
        ("tls handshake", Fault::Tls),
        ("x509:", Fault::Tls),
        // Rust's hyper/reqwest (faultline's demo lab, Rust services): the words of its own
        // errors for the same faults.
        ("connection closed before message completed", Fault::Eof),
        ("operation timed out", Fault::Timeout),
        ("dns error", Fault::Dns),
        ("failed to lookup address", Fault::Dns),
    ];
    let mut best: Option<(usize, Fault)> = None;
    for &(phrase, fault) in PHRASES {
        if let Some(at) = lower.rfind(phrase) {
            // `lookup <host> ... i/o timeout` is a resolver timeout: the name lookup failed.
            let fault = if fault == Fault::Timeout && lower[..at].contains("lookup ") {
                Fault::Dns
            } else {
                fault
            };
            if best.is_none_or(|(b, _)| at > b) {
                best = Some((at, fault));
            }
        }
    }
    if let Some(at) = eof_word(&lower) {
        if best.is_none_or(|(b, _)| at > b) {
            best = Some((at, Fault::Eof));
        }
    }
    best.map_or(Fault::Other, |(_, f)| f)
}

/// Where a bare `EOF` (not `unexpected EOF`) ends the text or an error of it.
pub(super) fn eof_word(lower: &str) -> Option<usize> {
    let mut found = None;
    let mut from = 0;
    while let Some(rel) = lower[from..].find("eof") {
        let at = from + rel;
        let before = lower[..at].chars().next_back();
        let after = lower[at + 3..].chars().next();
        let word = before.is_none_or(|c| !c.is_ascii_alphanumeric())
            && after.is_none_or(|c| !c.is_ascii_alphanumeric());
        if word && !lower[..at].ends_with("unexpected ") {
            found = Some(at);
        }
        from = at + 3;
    }
    found
}

/// The `host:port` the text says it called: a URL's authority (`http://host:port/...`), a
/// `dial tcp host:port`, or the remote side of a `local->remote` pair. The last one wins
/// (the innermost error names the connection that failed).
pub fn address_in(text: &str) -> Option<(String, u16)> {
    static PATTERN: OnceLock<Option<Regex>> = OnceLock::new();
    let pattern = PATTERN
        .get_or_init(|| {
            Regex::new(
                r"(?:https?://|dial tcp6? |->)(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.\-]+):([0-9]{1,5})\b",
            )
            .ok()
        })
        .as_ref()?;
    pattern
        .captures_iter(text)
        .filter_map(|c| {
            let host = c.get(1)?.as_str().trim_matches(['[', ']']).to_owned();
            let port: u16 = c.get(2)?.as_str().parse().ok()?;
            Some((host, port))
        })
        .last()
}
