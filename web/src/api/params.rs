//! Query strings of the API: the typed extractor [`Query`] and the value types its parameter
//! structs are made of.
//!
//! Each endpoint names its parameters once, as the fields of one struct that derives both
//! `Deserialize` (what the handler receives) and utoipa's `IntoParams` (what the OpenAPI
//! document publishes). The value types below carry their own limits into both: a
//! [`Limit`], a [`Text`] or a [`Window`] validates on deserialisation and publishes the same
//! bounds in its schema (`#[param(inline)]`), so the document and the parser cannot disagree.
//!
//! Every bad value becomes the one [`ApiError`] (400, `bad_parameter`) naming the parameter;
//! nothing in a query string can make a handler panic. Unknown parameters are ignored, a known
//! one given twice is an error.

use std::borrow::Cow;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, PartialSchema, ToSchema};

use crate::ApiError;

/// The query string of a request, deserialised into the endpoint's parameter struct `P`.
///
/// Its rejection is an [`ApiError`]: `parameter `<name>`: <why>` with status 400.
#[derive(Debug)]
pub(crate) struct Query<P>(pub P);

impl<P: DeserializeOwned + IntoParams> Query<P> {
    /// Reads `query` (the part of the URI after `?`, without it).
    pub(crate) fn from_query(query: &str) -> Result<Self, ApiError> {
        // The names come from the struct itself (its published parameters), so a parameter is
        // checked for repetition without being listed a second time.
        for param in P::into_params(|| Some(ParameterIn::Query)) {
            let given = form_urlencoded::parse(query.as_bytes())
                .filter(|(name, _)| *name == param.name)
                .count();
            if given > 1 {
                return Err(ApiError::bad_parameter(&param.name, "given more than once"));
            }
        }
        let pairs = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(pairs)
            .map(Query)
            .map_err(|err| {
                let name = match err.path().to_string() {
                    path if path == "." => "query".to_owned(),
                    path => path,
                };
                ApiError::bad_parameter(&name, err.inner())
            })
    }
}

impl<S, P> FromRequestParts<S> for Query<P>
where
    S: Send + Sync,
    P: DeserializeOwned + IntoParams,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Self::from_query(parts.uri.query().unwrap_or(""))
    }
}

/// Most rows one answer can hold: the bound of every `limit`.
pub(crate) const MAX_LIMIT: u64 = 1000;

/// Rows per answer, `1..=`[`MAX_LIMIT`], written with decimal digits only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit(pub u64);

impl Limit {
    /// The value of an optional `limit`; absent gives `default`.
    pub(crate) fn or(limit: Option<Self>, default: u64) -> usize {
        limit.map_or(default, |Limit(n)| n) as usize
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        bounded_integer(deserializer, 1, MAX_LIMIT).map(Self)
    }
}

impl PartialSchema for Limit {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(1.0))
            .maximum(Some(MAX_LIMIT as f64))
            .into()
    }
}

impl ToSchema for Limit {}

/// Where a page starts: the `next_cursor` of the page before, an offset of at most nine
/// digits, published as a string (its value means nothing to a client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor(pub u64);

impl Cursor {
    /// The offset of an optional `cursor`; absent is the first page.
    pub(crate) fn offset(cursor: Option<Self>) -> usize {
        cursor.map_or(0, |Cursor(n)| n) as usize
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        bounded_integer(deserializer, 0, 999_999_999).map(Self)
    }
}

impl PartialSchema for Cursor {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9]{1,9}$"))
            .into()
    }
}

impl ToSchema for Cursor {}

/// Reads an integer in `min..=max` written with decimal digits only (no sign, no fraction).
fn bounded_integer<'de, D: Deserializer<'de>>(
    deserializer: D,
    min: u64,
    max: u64,
) -> Result<u64, D::Error> {
    let text = Cow::<str>::deserialize(deserializer)?;
    let bad = || D::Error::custom(format_args!("expected an integer in {min}..={max}"));
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match text.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(bad()),
    }
}

/// Longest free text a parameter takes, in characters.
const MAX_TEXT_CHARS: usize = 256;

/// Free text of at most [`MAX_TEXT_CHARS`] characters; empty reads as absent ([`Text::given`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Text(pub String);

impl Text {
    /// The text of an optional parameter, `None` when absent or empty.
    pub(crate) fn given(text: Option<Self>) -> Option<String> {
        text.map(|Text(t)| t).filter(|t| !t.is_empty())
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(D::Error::custom(format_args!(
                "longer than {MAX_TEXT_CHARS} characters"
            )));
        }
        Ok(Self(text))
    }
}

impl PartialSchema for Text {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(MAX_TEXT_CHARS))
            .into()
    }
}

impl ToSchema for Text {}

/// `true` or `false`, nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Flag(pub bool);

impl Flag {
    /// The value of an optional flag; absent is `false`.
    pub(crate) fn given(flag: Option<Self>) -> bool {
        flag.is_some_and(|Flag(on)| on)
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Cow::<str>::deserialize(deserializer)?.as_ref() {
            "true" => Ok(Self(true)),
            "false" => Ok(Self(false)),
            _ => Err(D::Error::custom("expected `true` or `false`")),
        }
    }
}

impl PartialSchema for Flag {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::Boolean).into()
    }
}

impl ToSchema for Flag {}

/// A time span written `<1..999999><s|m|h|d>`, such as `90s`, `15m`, `6h`, `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window(pub Duration);

/// The published form of a [`Window`]; [`Window`]'s parser accepts exactly this.
const WINDOW_PATTERN: &str = "^[1-9][0-9]{0,5}[smhd]$";

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<str>::deserialize(deserializer)?;
        parse_window(&text).map(Self).ok_or_else(|| {
            D::Error::custom(
                "expected a duration like `90s`, `15m`, `6h` or `7d` (1 to 999999 units)",
            )
        })
    }
}

impl PartialSchema for Window {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(WINDOW_PATTERN))
            .into()
    }
}

impl ToSchema for Window {}

/// Reads `<1..999999><s|m|h|d>` ([`WINDOW_PATTERN`]).
fn parse_window(value: &str) -> Option<Duration> {
    let split = value.len().checked_sub(1)?;
    let (digits, unit) = value.split_at_checked(split)?;
    if digits.is_empty()
        || digits.len() > 6
        || digits.starts_with('0')
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(amount * seconds))
}

/// Whether `id` is a trace id as the API writes them: 32 lowercase hex digits.
pub(crate) fn is_trace_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parameter struct like the endpoints' own.
    #[derive(Debug, Deserialize, IntoParams)]
    #[into_params(parameter_in = Query)]
    struct Params {
        #[param(inline)]
        window: Option<Window>,
        #[param(inline)]
        limit: Option<Limit>,
        #[param(inline)]
        emerging: Option<Flag>,
        #[param(inline)]
        q: Option<Text>,
        #[param(inline)]
        cursor: Option<Cursor>,
    }

    fn query(text: &str) -> Result<Params, ApiError> {
        Query::<Params>::from_query(text).map(|Query(p)| p)
    }

    fn urlencode(text: &str) -> String {
        text.bytes().map(|b| format!("%{b:02X}")).collect()
    }

    #[test]
    fn durations_follow_the_published_pattern() {
        let window = query("window=15m").unwrap().window.unwrap();
        assert_eq!(window.0, Duration::from_secs(900));
        for bad in [
            "0m", "15", "m", "15x", "01m", "1234567s", "-5m", "1.5h", "15\u{e9}", "",
        ] {
            let err = query(&format!("window={}", urlencode(bad))).unwrap_err();
            assert_eq!(err.code, "bad_parameter");
            assert!(err.message.contains("`window`"), "{bad}: {}", err.message);
        }
    }

    #[test]
    fn integers_are_bounded_and_plain() {
        assert_eq!(query("limit=5").unwrap().limit, Some(Limit(5)));
        assert_eq!(Limit::or(query("").unwrap().limit, 3), 3);
        for bad in [
            "0",
            "1001",
            "+5",
            "-1",
            "5.0",
            "",
            "99999999999999999999999",
        ] {
            let err = query(&format!("limit={}", urlencode(bad))).unwrap_err();
            assert_eq!(
                err.message, "parameter `limit`: expected an integer in 1..=1000",
                "{bad}"
            );
        }
        assert_eq!(Cursor::offset(query("cursor=0").unwrap().cursor), 0);
        assert_eq!(Cursor::offset(query("cursor=120").unwrap().cursor), 120);
        assert!(query("cursor=1000000000").is_err());
    }

    #[test]
    fn duplicates_and_bad_flags_are_rejected_by_name() {
        let err = query("limit=1&limit=2").unwrap_err();
        assert_eq!(err.message, "parameter `limit`: given more than once");
        let err = query("emerging=yes").unwrap_err();
        assert_eq!(
            err.message,
            "parameter `emerging`: expected `true` or `false`"
        );
        assert!(Flag::given(query("emerging=true").unwrap().emerging));
        // Unknown parameters, even repeated, are ignored.
        assert!(query("other=1&other=2").is_ok());
    }

    #[test]
    fn text_is_bounded_and_empty_is_absent() {
        assert_eq!(Text::given(query("q=").unwrap().q), None);
        assert_eq!(
            Text::given(query("q=r%C3%A9set").unwrap().q).as_deref(),
            Some("réset")
        );
        let long = "é".repeat(257);
        let err = query(&format!("q={}", urlencode(&long))).unwrap_err();
        assert_eq!(err.message, "parameter `q`: longer than 256 characters");
        assert!(query(&format!("q={}", urlencode(&long[2..]))).is_ok());
    }

    #[test]
    fn the_published_schema_carries_the_parsers_bounds() {
        let params = Params::into_params(|| Some(ParameterIn::Query));
        let doc = serde_json::to_value(&params).unwrap();
        assert_eq!(doc[0]["schema"]["pattern"], WINDOW_PATTERN);
        assert_eq!(doc[1]["schema"]["minimum"], 1.0);
        assert_eq!(doc[1]["schema"]["maximum"], 1000.0);
        assert_eq!(doc[2]["schema"]["type"], "boolean");
        assert_eq!(doc[3]["schema"]["maxLength"], 256);
        assert_eq!(doc[4]["schema"]["pattern"], "^[0-9]{1,9}$");
        assert!(doc
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["required"] == false));
    }

    #[test]
    fn trace_ids_are_lowercase_hex() {
        assert!(is_trace_id("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert!(!is_trace_id("4BF92F3577B34DA6A3CE929D0E0E4736"));
        assert!(!is_trace_id("4bf92f3577b34da6"));
        assert!(!is_trace_id("zzf92f3577b34da6a3ce929d0e0e4736"));
    }
}
