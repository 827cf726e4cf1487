//! Query-string parsing shared by the API handlers: every bad value becomes a 400 that names
//! the parameter, and nothing in a query string can make a handler panic.

use std::time::Duration;

use axum::extract::Query;
use axum::http::Uri;

use crate::ApiError;

/// The query string of a request as (name, value) pairs, checked for duplicates of the
/// parameters the handler knows (`known`); unknown parameters are ignored.
pub(crate) struct QueryPairs {
    pairs: Vec<(String, String)>,
}

impl QueryPairs {
    /// Decodes the query string of `uri`.
    pub(crate) fn parse(uri: &Uri, known: &[&str]) -> Result<Self, ApiError> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|err| ApiError::bad_parameter("query", err.body_text()))?;
        for name in known {
            if pairs.iter().filter(|(key, _)| key == name).count() > 1 {
                return Err(ApiError::bad_parameter(name, "given more than once"));
            }
        }
        Ok(Self { pairs })
    }

    /// The raw value of `name`, if present.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// A free-text value of at most `max_len` characters; empty counts as absent.
    pub(crate) fn text(&self, name: &str, max_len: usize) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(value) if value.chars().count() > max_len => Err(ApiError::bad_parameter(
                name,
                format!("longer than {max_len} characters"),
            )),
            Some(value) => Ok(Some(value.to_owned())),
        }
    }

    /// `true` or `false`; absent gives `default`.
    pub(crate) fn flag(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(_) => Err(ApiError::bad_parameter(name, "expected `true` or `false`")),
        }
    }

    /// An integer in `min..=max` written with decimal digits only; absent gives `default`.
    pub(crate) fn integer(
        &self,
        name: &str,
        min: u64,
        max: u64,
        default: u64,
    ) -> Result<u64, ApiError> {
        let Some(value) = self.get(name) else {
            return Ok(default);
        };
        let bad = || ApiError::bad_parameter(name, format!("expected an integer in {min}..={max}"));
        if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        match value.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(bad()),
        }
    }

    /// A duration such as `90s`, `15m`, `6h`, `7d`; absent gives `None`.
    pub(crate) fn duration(&self, name: &str) -> Result<Option<Duration>, ApiError> {
        self.get(name).map(|v| parse_duration(name, v)).transpose()
    }
}

/// Reads `<1..999999><s|m|h|d>`, the format the OpenAPI document publishes as the pattern
/// `^[1-9][0-9]{0,5}[smhd]$`.
fn parse_duration(name: &str, value: &str) -> Result<Duration, ApiError> {
    let bad = || {
        ApiError::bad_parameter(
            name,
            "expected a duration like `90s`, `15m`, `6h` or `7d` (1 to 999999 units)",
        )
    };
    let split = value.len().checked_sub(1).ok_or_else(bad)?;
    let (digits, unit) = value.split_at_checked(split).ok_or_else(bad)?;
    if digits.is_empty()
        || digits.len() > 6
        || digits.starts_with('0')
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let amount: u64 = digits.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(amount * seconds))
}

/// Whether `id` is a trace id as the API writes them: 32 lowercase hex digits.
pub(crate) fn is_trace_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(text: &str) -> QueryPairs {
        let uri: Uri = format!("/x?{text}").parse().unwrap();
        QueryPairs::parse(&uri, &["limit", "window", "emerging"]).unwrap()
    }

    #[test]
    fn durations_follow_the_published_pattern() {
        let q = query("window=15m");
        assert_eq!(
            q.duration("window").unwrap(),
            Some(Duration::from_secs(900))
        );
        for bad in [
            "0m", "15", "m", "15x", "01m", "1234567s", "-5m", "1.5h", "15\u{e9}",
        ] {
            let q = query(&format!("window={}", urlencode(bad)));
            let err = q.duration("window").unwrap_err();
            assert!(err.message.contains("`window`"), "{bad}: {}", err.message);
        }
    }

    #[test]
    fn integers_are_bounded_and_plain() {
        assert_eq!(query("limit=5").integer("limit", 1, 10, 3).unwrap(), 5);
        assert_eq!(query("").integer("limit", 1, 10, 3).unwrap(), 3);
        for bad in ["0", "11", "+5", "-1", "5.0", "", "99999999999999999999999"] {
            let q = query(&format!("limit={}", urlencode(bad)));
            assert!(q.integer("limit", 1, 10, 3).is_err(), "{bad}");
        }
    }

    #[test]
    fn duplicates_and_bad_flags_are_rejected_by_name() {
        let uri: Uri = "/x?limit=1&limit=2".parse().unwrap();
        let err = QueryPairs::parse(&uri, &["limit"]).err().unwrap();
        assert!(err.message.contains("`limit`"));
        let err = query("emerging=yes").flag("emerging", false).unwrap_err();
        assert!(err.message.contains("`emerging`"));
    }

    #[test]
    fn trace_ids_are_lowercase_hex() {
        assert!(is_trace_id("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert!(!is_trace_id("4BF92F3577B34DA6A3CE929D0E0E4736"));
        assert!(!is_trace_id("4bf92f3577b34da6"));
        assert!(!is_trace_id("zzf92f3577b34da6a3ce929d0e0e4736"));
    }

    fn urlencode(text: &str) -> String {
        text.bytes().map(|b| format!("%{b:02X}")).collect()
    }
}
