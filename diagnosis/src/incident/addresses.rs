//! The addresses and host names a pattern's error text names (the port its failing calls go
//! to, a failed lookup's host).

use super::PatternInput;

/// The `host:port` a pattern's failing calls name, from its raw example, else its template.
pub(super) fn peer_of(p: &PatternInput) -> Option<String> {
    p.example
        .as_deref()
        .and_then(peer_address)
        .or_else(|| peer_address(&p.text))
}

/// A URL a pattern's failing calls asked for, from its raw example (a template has its URL
/// masked): `Get "http://127.0.0.1:8081/blob/7": context deadline exceeded`.
pub(super) fn failing_url(p: &PatternInput) -> Option<String> {
    p.example.as_deref().and_then(url_in)
}

/// The first `http://` or `https://` URL in a text, up to a quote, space or closing bracket,
/// when it names a host with a port (not a placeholder).
pub(super) fn url_in(text: &str) -> Option<String> {
    let start = text.find("http://").or_else(|| text.find("https://"))?;
    let rest = &text[start..];
    let end = rest
        .find(['"', '\'', ' ', ')', '>', '<', '\\'])
        .unwrap_or(rest.len());
    let url = rest[..end].trim_end_matches([',', '.', ':']);
    let authority = url.split("://").nth(1)?.split(['/', '?']).next()?;
    (port_of(authority).is_some() && !url.contains('<')).then(|| url.to_owned())
}

/// The `host:port` a failing call names: `http://host:port/...`, `dial tcp host:port`,
/// `->host:port` (Go's `read tcp a->b`); or the listener a failing accept names (Go's
/// `accept tcp host:port: accept4: too many open files`), so a service's accept errors,
/// logged in no trace, join the counters of its port.
pub(super) fn peer_address(text: &str) -> Option<String> {
    let candidates = [
        text.find("://").map(|i| &text[i + 3..]),
        text.find("dial tcp ").map(|i| &text[i + 9..]),
        text.find("->").map(|i| &text[i + 2..]),
        text.find("accept tcp ").map(|i| &text[i + 11..]),
    ];
    candidates.into_iter().flatten().find_map(|rest| {
        let end = rest.find(['/', '"', ' ', ')', ',']).unwrap_or(rest.len());
        let addr = rest[..end].trim_end_matches(':');
        let ok = port_of(addr).is_some() && !addr.contains('<');
        ok.then(|| addr.to_owned())
    })
}

/// The name a failed lookup asked for, as Go names it: `lookup NAME on SERVER: ...` or
/// `lookup NAME: ...`. Other wording that merely contains the word is not a name: Rust's
/// `failed to lookup address information: ...` names none (its host is in the URL).
pub(super) fn looked_up_host(text: &str) -> Option<String> {
    text.match_indices("lookup ").find_map(|(i, _)| {
        let rest = &text[i + 7..];
        let end = rest.find([' ', ':']).unwrap_or(rest.len());
        let host = &rest[..end];
        let after = &rest[end..];
        let named = after.starts_with(':') || after.starts_with(" on ");
        (named && !host.is_empty() && !host.contains('<')).then(|| host.to_owned())
    })
}

pub(super) fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(h, _)| h)
}

pub(super) fn port_of(addr: &str) -> Option<u16> {
    addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}
