//! The bearer token a listener asks for: one owner of how a presented token is compared, so
//! the dashboard and the OTLP receivers cannot disagree on it.

use std::sync::Arc;

use http::header::AUTHORIZATION;
use http::HeaderMap;

/// A secret that requests present as `Authorization: Bearer <token>` (gRPC: the
/// `authorization` metadata, which is the same HTTP/2 header). Compared in constant time.
/// Cheap to clone.
#[derive(Clone)]
pub struct BearerToken(Arc<str>);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<secret>)")
    }
}

impl BearerToken {
    /// The token. Its length rules are the configuration's business (it names the key).
    pub fn new(token: &str) -> BearerToken {
        BearerToken(token.into())
    }

    /// Whether `given` is the token, in constant time (see [`constant_time_eq`]).
    pub fn matches(&self, given: &[u8]) -> bool {
        constant_time_eq(given, self.0.as_bytes())
    }

    /// What `headers` present: `None` without an `Authorization: Bearer` header, else
    /// whether it carries the token. The scheme is matched case-insensitively (RFC 9110).
    pub fn check(&self, headers: &HeaderMap) -> Option<bool> {
        let value = headers.get(AUTHORIZATION)?.as_bytes();
        let (scheme, token) = value.split_at_checked(7)?;
        if !scheme.eq_ignore_ascii_case(b"bearer ") {
            return None;
        }
        Some(self.matches(token.trim_ascii()))
    }
}

/// Compares two byte strings in time that depends only on their lengths, so that a caller
/// cannot learn a secret's prefix (a token, a session id) from response times.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_when_every_byte_matches() {
        let token = BearerToken::new("secret");
        assert!(token.matches(b"secret"));
        assert!(!token.matches(b"secreT"));
        assert!(!token.matches(b"secret2"));
        assert!(!token.matches(b""));
    }

    #[test]
    fn the_bearer_header_is_read_with_any_case_of_its_scheme() {
        let token = BearerToken::new("0123456789abcdef");
        let mut headers = HeaderMap::new();
        assert_eq!(token.check(&headers), None);
        headers.insert(AUTHORIZATION, "Basic 0123456789abcdef".parse().unwrap());
        assert_eq!(token.check(&headers), None);
        headers.insert(AUTHORIZATION, "bearer 0123456789abcdef".parse().unwrap());
        assert_eq!(token.check(&headers), Some(true));
        headers.insert(AUTHORIZATION, "Bearer 0123456789abcdeF".parse().unwrap());
        assert_eq!(token.check(&headers), Some(false));
    }
}
