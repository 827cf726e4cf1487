//! OTLP/JSON decoding.
//!
//! `opentelemetry-proto`'s serde support already reads hex trace/span ids, 64-bit integers as
//! strings or numbers, and ignores unknown fields. What it does not do, and the OTLP/JSON
//! mapping requires, is read enums given by name (`"kind": "SPAN_KIND_SERVER"`), accept the
//! original snake_case field names next to lowerCamelCase, and accept an `arrayValue` or
//! `kvlistValue` whose empty `values` was omitted.
//!
//! Traces and logs, the signals an agent receives all the time, are read in one pass into
//! typed structs ([`super::json_typed`]). Metrics, which the agent only counts, are parsed
//! into a JSON tree (serde_json caps nesting at 128), normalised, and then typed; the tree
//! path is also the reference the typed one is tested against. The proto's serde reads a
//! metric's data and a point's value as flattened `Option`s, which turn any error inside
//! them into "absent": those are read once more on their own ([`check_metric_values`]).

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde::de::DeserializeOwned;

use super::error::OtlpError;
use super::json_typed;

/// An OTLP export request as OTLP/JSON decodes it.
pub(crate) trait JsonRequest: Sized {
    /// Decodes a whole body.
    fn from_json(body: &[u8]) -> Result<Self, OtlpError>;
}

impl JsonRequest for ExportTraceServiceRequest {
    fn from_json(body: &[u8]) -> Result<Self, OtlpError> {
        decode_typed::<json_typed::TracesJson, Self>(body)
    }
}

impl JsonRequest for ExportLogsServiceRequest {
    fn from_json(body: &[u8]) -> Result<Self, OtlpError> {
        decode_typed::<json_typed::LogsJson, Self>(body)
    }
}

impl JsonRequest for ExportMetricsServiceRequest {
    fn from_json(body: &[u8]) -> Result<Self, OtlpError> {
        let tree = parse_tree(body)?;
        let request = typed_from_tree(&tree)?;
        check_metric_values(&tree)?;
        Ok(request)
    }
}

/// Decodes `body` through the typed structs `J`. A body that is not an object goes through
/// the tree path, so that it gets the same answer (malformed, or not an object) as before.
fn decode_typed<'de, J, T>(body: &'de [u8]) -> Result<T, OtlpError>
where
    J: serde::Deserialize<'de> + Into<T>,
    T: DeserializeOwned,
{
    let first = body
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(&b'{') {
        return decode_tree(body);
    }
    // serde_json skips the strings of the fields it ignores without checking them: a body
    // that is not UTF-8 inside an unknown field was read where the tree refuses it (three
    // inputs of the fuzz corpus). Checking the whole body costs far less than parsing it.
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        Err(e) => {
            return Err(OtlpError::BadRequest(format!(
                "malformed JSON: invalid UTF-8 at byte {}",
                e.valid_up_to()
            )))
        }
    };
    // The same for a `\u` escape of half a surrogate pair: it names no Unicode character.
    if let Some(at) = lone_surrogate(text.as_bytes()) {
        return Err(OtlpError::BadRequest(format!(
            "malformed JSON: lone surrogate in a \\u escape at byte {at}"
        )));
    }
    // Read as the `str` it now is: read as bytes, serde_json checked every string it parsed
    // for UTF-8 once more (1 % of the agent's CPU at 1,000 spans/s, perf).
    match json_typed::from_str::<J>(text) {
        Ok(typed) => Ok(typed.into()),
        Err(e) if e.is_data() => Err(OtlpError::BadRequest(format!("invalid OTLP/JSON: {e}"))),
        Err(e) => Err(OtlpError::BadRequest(format!("malformed JSON: {e}"))),
    }
}

/// Where `body` holds a `\u` escape of half a UTF-16 surrogate pair (`"\ud800"` alone), if
/// anywhere. serde_json refuses one in a string it reads and skips it unchecked in a field it
/// ignores; Go's `protojson` refuses it wherever it is, and so does the agent, so that a body
/// is read the same whether it sits under a known field or an unknown one (and the same by
/// the typed path and the tree path). Only the rare `\u` sequences are looked at (memmem): it
/// costs a few microseconds on a 100 KB body. A backslash outside a string is a syntax error
/// the parser refuses anyway, so one preceded by an odd run of backslashes starts an escape.
fn lone_surrogate(body: &[u8]) -> Option<usize> {
    fn hex4(body: &[u8], at: usize) -> Option<u16> {
        let digits = std::str::from_utf8(body.get(at..at + 4)?).ok()?;
        u16::from_str_radix(digits, 16).ok()
    }
    let mut paired_until = 0;
    for at in memchr::memmem::find_iter(body, b"\\u") {
        let run = body[..=at]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count();
        if at < paired_until || run % 2 == 0 {
            continue;
        }
        match hex4(body, at + 2) {
            Some(0xD800..=0xDBFF) => {
                let low = body.get(at + 6..at + 8) == Some(b"\\u")
                    && matches!(hex4(body, at + 8), Some(0xDC00..=0xDFFF));
                if !low {
                    return Some(at);
                }
                paired_until = at + 12;
            }
            Some(0xDC00..=0xDFFF) => return Some(at),
            _ => {}
        }
    }
    None
}

/// The deepest nesting of arrays and objects serde_json reads into a tree: its parser refuses
/// the 128th bracket open at once.
const MAX_NESTING: usize = 127;

/// Whether `text` holds what a JSON tree cannot: a number beyond `f64` or nesting deeper
/// than [`MAX_NESTING`]. The tree path refuses such a body wherever the odd part sits; the
/// typed path skips it under an unknown field (serde_json's `IgnoredAny` checks only the
/// syntax, with no depth limit and without a stack), as the Collector and Go's `protojson`
/// skip an unknown field's value, and refuses it under a known one. Where the tree refuses
/// for this reason, it is no reference: [`json_paths_agree`] does not compare. One pass,
/// jumping from quote to quote inside strings (~0.6 µs per span: too dear for every request).
fn beyond_a_tree(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'"' => {
                at = string_end(bytes, at + 1);
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'-' | b'0'..=b'9' => {
                let len = bytes[at..]
                    .iter()
                    .position(|b| !matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                    .unwrap_or(bytes.len() - at);
                let number = &text[at..at + len];
                // Only an exponent or more digits than a u64 holds can leave f64's range;
                // serde_json's own reading decides, so the limit is exactly the parser's.
                if (len > 20 || number.contains(['e', 'E']))
                    && serde_json::from_str::<f64>(number).is_err()
                {
                    return true;
                }
                at += len;
                continue;
            }
            _ => {}
        }
        at += 1;
    }
    false
}

/// The end (just past the closing quote) of the string whose content starts at `at`; an
/// unterminated string ends the text.
fn string_end(bytes: &[u8], mut at: usize) -> usize {
    while let Some(rest) = bytes.get(at..) {
        let Some(found) = memchr::memchr2(b'"', b'\\', rest) else {
            break;
        };
        if rest[found] == b'"' {
            return at + found + 1;
        }
        at += found + 2;
    }
    bytes.len()
}

/// Numbers for enum names of the fields that carry OTLP enums, read by the generated
/// protobuf enums (`from_str_name`), so the names are the proto's own.
pub(super) fn enum_number(field: &str, name: &str) -> Option<i64> {
    use opentelemetry_proto::tonic::logs::v1::SeverityNumber;
    use opentelemetry_proto::tonic::metrics::v1::AggregationTemporality;
    use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode};

    let number = match field {
        "kind" => SpanKind::from_str_name(name)? as i32,
        "code" => StatusCode::from_str_name(name)? as i32,
        "aggregationTemporality" => AggregationTemporality::from_str_name(name)? as i32,
        "severityNumber" => SeverityNumber::from_str_name(name)? as i32,
        _ => return None,
    };
    Some(i64::from(number))
}

/// Whether `key` is spelled as a proto field name: lowercase words of letters and digits
/// joined by single underscores (`time_unix_nano`, `key_strindex`). Every OTLP field name is
/// spelled so, and such a name has one lowerCamelCase form, so renaming exactly these keys
/// accepts a field's proto name next to its JSON name and nothing else: `span__id`,
/// `spanId_` or `Span_id` stay unknown fields, as in Go's `protojson` and the Collector's
/// decoder, which match the two names exactly.
fn is_proto_field_name(key: &str) -> bool {
    key.split('_').all(|word| {
        word.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && word
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

fn camel_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// A parsed JSON body that keeps every object's members in body order, a key given twice
/// included. `serde_json::Value` keeps one member per key (the last) in key order, so a
/// field given twice was silently read as its last value, where the typed path (like Go's
/// `protojson`) refuses it; and an `AnyValue` naming two kinds of value read as the
/// alphabetically last one, where the typed path (like the proto's own serde) takes the last
/// in the body.
enum Tree {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Tree>),
    Object(Vec<(String, Tree)>),
}

impl<'de> serde::Deserialize<'de> for Tree {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{MapAccess, SeqAccess, Visitor};
        struct TreeVisitor;
        impl<'de> Visitor<'de> for TreeVisitor {
            type Value = Tree;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Tree, E> {
                Ok(Tree::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Tree, E> {
                Ok(Tree::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Tree, E> {
                Ok(Tree::Number(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Tree, E> {
                Ok(Tree::Number(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Tree, E> {
                // serde_json's parser never yields a non-finite number.
                Ok(serde_json::Number::from_f64(v).map_or(Tree::Null, Tree::Number))
            }
            fn visit_str<E>(self, v: &str) -> Result<Tree, E> {
                Ok(Tree::String(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Tree, E> {
                Ok(Tree::String(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Tree::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Tree::Object(members))
            }
        }
        deserializer.deserialize_any(TreeVisitor)
    }
}

impl serde::Serialize for Tree {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Tree::Null => serializer.serialize_unit(),
            Tree::Bool(b) => serializer.serialize_bool(*b),
            Tree::Number(n) => n.serialize(serializer),
            Tree::String(s) => serializer.serialize_str(s),
            Tree::Array(items) => serializer.collect_seq(items),
            Tree::Object(members) => {
                let mut map = serializer.serialize_map(Some(members.len()))?;
                for (key, value) in members {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

/// Normalises a parsed OTLP/JSON tree in place. Recursion is bounded by serde_json's nesting
/// limit on the parse.
fn normalise(tree: &mut Tree) {
    match tree {
        Tree::Array(items) => items.iter_mut().for_each(normalise),
        Tree::Object(members) => {
            for (key, v) in members.iter_mut() {
                if key.contains('_') && is_proto_field_name(key) {
                    *key = camel_case(key);
                }
                // An unknown name stays a string: the proto's serde refuses it where the field
                // is an enum, and skips it under an unknown field, as the typed path does
                // (where a `kind` sits is not known here).
                if let Tree::String(name) = v {
                    if let Some(number) = enum_number(key, name) {
                        *v = Tree::Number(number.into());
                        continue;
                    }
                }
                if key == "arrayValue" || key == "kvlistValue" {
                    if let Tree::Object(inner) = v {
                        if !inner.iter().any(|(k, _)| k == "values") {
                            inner.push(("values".to_owned(), Tree::Array(Vec::new())));
                        }
                    }
                }
                if key == "quantileValues" {
                    if let Tree::Array(quantiles) = v {
                        for quantile in quantiles {
                            if let Tree::Object(members) = quantile {
                                doubles_from_strings(members, &["quantile", "value"]);
                            }
                        }
                    }
                }
                normalise(v);
            }
            doubles_from_strings(members, &DOUBLE_FIELDS);
        }
        Tree::Null | Tree::Bool(_) | Tree::Number(_) | Tree::String(_) => {}
    }
}

/// The fields of type `double` in OTLP's messages (a number point's and an exemplar's value,
/// a histogram's or a summary's sum, min, max, bounds and zero threshold, an `AnyValue`'s
/// double); a summary's quantiles are read under `quantileValues`.
const DOUBLE_FIELDS: [&str; 7] = [
    "asDouble",
    "doubleValue",
    "sum",
    "min",
    "max",
    "zeroThreshold",
    "explicitBounds",
];

/// The JSON number a string holds whole (no space around it), as the protobuf JSON mapping
/// reads a double given as a string.
fn number_in_string(text: &str) -> Option<serde_json::Number> {
    let spaced = text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace);
    serde_json::from_str(text).ok().filter(|_| !spaced)
}

/// The double a string stands for in the protobuf JSON mapping: a JSON number in it (see
/// [`number_in_string`]) or the name of a non-finite value.
pub(super) fn double_in_string(text: &str) -> Option<f64> {
    non_finite(text).or_else(|| number_in_string(text)?.as_f64())
}

/// The value of one of the protobuf JSON mapping's names of a non-finite double.
fn non_finite(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// A double given as a string, as the protobuf JSON mapping allows ("either numbers or
/// strings are accepted"): a string holding a JSON number becomes that number (`"1.5"`,
/// `"-2e3"`; not `" 1"`, `"0x10"` or `"inf"`, which Go's `protojson` refuses too, and which
/// stay strings the proto's serde refuses). The names of the non-finite values (`"NaN"`,
/// `"Infinity"`, `"-Infinity"`) stay, for the member to be left out: no JSON number holds
/// them, and none of them is a count or a level the agent could sum or compare. A number
/// point or an exemplar without its value is counted among the points the agent ignores.
/// In an array (`explicitBounds`), each item.
fn double_from_string(v: &mut Tree) {
    match v {
        Tree::String(text) if non_finite(text).is_none() => {
            if let Some(number) = number_in_string(text) {
                *v = Tree::Number(number);
            }
        }
        Tree::Array(items) => {
            items.iter_mut().for_each(double_from_string);
            items.retain(|v| !matches!(v, Tree::String(s) if non_finite(s).is_some()));
        }
        _ => {}
    }
}

/// [`double_from_string`] on the members named in `fields`; a member left holding the name
/// of a non-finite double is left out.
fn doubles_from_strings(members: &mut Vec<(String, Tree)>, fields: &[&str]) {
    let double = |key: &str| fields.contains(&key);
    for (key, v) in members.iter_mut() {
        if double(key) {
            double_from_string(v);
        }
    }
    members.retain(|(key, v)| {
        !(double(key) && matches!(v, Tree::String(s) if non_finite(s).is_some()))
    });
}

/// Decodes an OTLP/JSON export request through a normalised JSON tree: parsed, normalised,
/// written out again and read by the proto's serde, which refuses a field given twice (two
/// members under one name, or under its lowerCamelCase name and its snake_case original)
/// as the protobuf JSON mapping's parsers do (Go's `protojson`: "duplicate field"; the
/// conformance suite's `FieldNameDuplicate*` cases), and ignores unknown fields.
pub(crate) fn decode_tree<T: DeserializeOwned>(body: &[u8]) -> Result<T, OtlpError> {
    typed_from_tree(&parse_tree(body)?)
}

/// Parses `body` into a normalised tree: a JSON object, or a `BadRequest`.
fn parse_tree(body: &[u8]) -> Result<Tree, OtlpError> {
    let mut tree: Tree = serde_json::from_slice(body)
        .map_err(|e| OtlpError::BadRequest(format!("malformed JSON: {e}")))?;
    if !matches!(tree, Tree::Object(_)) {
        return Err(OtlpError::BadRequest(
            "an OTLP/JSON request must be a JSON object".to_owned(),
        ));
    }
    normalise(&mut tree);
    Ok(tree)
}

/// Reads a normalised tree with the proto's serde.
fn typed_from_tree<T: DeserializeOwned>(tree: &Tree) -> Result<T, OtlpError> {
    let normalised = serde_json::to_vec(tree)
        .map_err(|e| OtlpError::BadRequest(format!("malformed JSON: {e}")))?;
    serde_json::from_slice(&normalised)
        .map_err(|e| OtlpError::BadRequest(format!("invalid OTLP/JSON: {}", without_position(&e))))
}

/// serde_json's message without its position, which is in the normalised text, not in the
/// body the client sent.
fn without_position(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    message
        .strip_suffix(&position)
        .unwrap_or(&message)
        .to_owned()
}

/// The metric's data fields: one of them is the metric's `data` oneof.
const METRIC_DATA: [&str; 5] = [
    "gauge",
    "sum",
    "histogram",
    "exponentialHistogram",
    "summary",
];

/// The value fields of a number data point's and of an exemplar's `value` oneof.
const POINT_VALUE: [&str; 2] = ["asDouble", "asInt"];

/// Refuses a metrics request whose data the proto's serde read as absent because it could
/// not read it. The proto reads each oneof (a metric's `data`, a number point's and an
/// exemplar's `value`) through `#[serde(flatten)] Option<_>`, and serde turns any error
/// under a flattened `Option` into `None`: a gauge whose point says `"asDouble": "abc"`, or
/// a sum with an unknown temporality name, was accepted (200) as a metric without data,
/// where the same mistake in a span or a log record is refused with 400. Each oneof field
/// present (and not `null`, which the JSON mapping reads as absent) is read once more on
/// its own, where its error surfaces; the message names where it sits in the request.
fn check_metric_values(tree: &Tree) -> Result<(), OtlpError> {
    use opentelemetry_proto::tonic::metrics::v1::{exemplar, metric, number_data_point};

    for (r, resource) in items(tree, "resourceMetrics") {
        for (s, scope) in items(resource, "scopeMetrics") {
            for (m, metric) in items(scope, "metrics") {
                let at = format!("resourceMetrics[{r}].scopeMetrics[{s}].metrics[{m}]");
                for (kind, data) in oneof_fields(metric, &METRIC_DATA) {
                    read_oneof::<metric::Data>(kind, data, &at)?;
                    for (p, point) in items(data, "dataPoints") {
                        let at = format!("{at}.{kind}.dataPoints[{p}]");
                        if matches!(kind, "gauge" | "sum") {
                            for (field, value) in oneof_fields(point, &POINT_VALUE) {
                                read_oneof::<number_data_point::Value>(field, value, &at)?;
                            }
                        }
                        for (e, exemplar) in items(point, "exemplars") {
                            let at = format!("{at}.exemplars[{e}]");
                            for (field, value) in oneof_fields(exemplar, &POINT_VALUE) {
                                read_oneof::<exemplar::Value>(field, value, &at)?;
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// The items of the array `object[key]`, numbered; none when it is absent or not an array
/// (the typed read has refused a field of the wrong type already).
fn items<'a>(object: &'a Tree, key: &'a str) -> impl Iterator<Item = (usize, &'a Tree)> {
    let members = match object {
        Tree::Object(members) => members.as_slice(),
        _ => &[],
    };
    members
        .iter()
        .filter(move |(k, _)| k == key)
        .flat_map(|(_, v)| match v {
            Tree::Array(items) => items.as_slice(),
            _ => &[],
        })
        .enumerate()
}

/// The members of `object` named in `names` whose value is not `null`.
fn oneof_fields<'a>(
    object: &'a Tree,
    names: &'a [&'a str],
) -> impl Iterator<Item = (&'a str, &'a Tree)> {
    let members = match object {
        Tree::Object(members) => members.as_slice(),
        _ => &[],
    };
    members
        .iter()
        .filter(|(k, v)| names.contains(&k.as_str()) && !matches!(v, Tree::Null))
        .map(|(k, v)| (k.as_str(), v))
}

/// Reads `{field: value}` as the oneof `T`, saying where it sits when it cannot. (A double
/// given by the mapping's name of a non-finite value was left out by [`normalise`]: the point
/// has no value, and is counted among the ignored ones.)
fn read_oneof<T: DeserializeOwned>(field: &str, value: &Tree, at: &str) -> Result<(), OtlpError> {
    /// `{field: value}`, written without copying the value.
    struct One<'a>(&'a str, &'a Tree);
    impl serde::Serialize for One<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut map = serializer.serialize_map(Some(1))?;
            map.serialize_entry(self.0, self.1)?;
            map.end()
        }
    }
    let text = serde_json::to_vec(&One(field, value))
        .map_err(|e| OtlpError::BadRequest(format!("malformed JSON: {e}")))?;
    serde_json::from_slice::<T>(&text).map(drop).map_err(|e| {
        OtlpError::BadRequest(format!(
            "invalid OTLP/JSON: {at}.{field}: {}",
            without_position(&e)
        ))
    })
}

/// Decodes `body` as the OTLP/JSON request of the OTLP/HTTP route `route` (`/v1/traces`,
/// `/v1/logs`) by both paths, the typed one the agent reads traces and logs with and the tree
/// one (the proto's own serde), and says where they part: `Ok` when both read the same request
/// or both refuse it, or when the typed path read a body no JSON tree can hold (see
/// [`beyond_a_tree`]). `/v1/metrics` and any other route have one path: `Ok`. Public for the
/// `otlp_json` fuzz target, which checks it on every input.
#[doc(hidden)]
pub fn json_paths_agree(route: &str, body: &[u8]) -> Result<(), String> {
    match route {
        "/v1/traces" => same_answer::<ExportTraceServiceRequest>(body),
        "/v1/logs" => same_answer::<ExportLogsServiceRequest>(body),
        _ => Ok(()),
    }
}

/// Whether `body` holds a string naming a non-finite double anywhere.
fn names_a_non_finite_double(body: &[u8]) -> bool {
    [&b"\"NaN\""[..], b"\"Infinity\"", b"\"-Infinity\""]
        .iter()
        .any(|name| memchr::memmem::find(body, name).is_some())
}

/// Both paths agree: the same request, or both refuse (or the tree cannot hold the body).
fn same_answer<T: JsonRequest + DeserializeOwned + PartialEq + std::fmt::Debug>(
    body: &[u8],
) -> Result<(), String> {
    let typed = T::from_json(body);
    let tree = decode_tree::<T>(body);
    match (&typed, &tree) {
        (Ok(a), Ok(b)) if a == b => Ok(()),
        (Err(_), Err(_)) => Ok(()),
        (Ok(_), Err(_)) if std::str::from_utf8(body).is_ok_and(beyond_a_tree) => Ok(()),
        // A double named "NaN", "Infinity" or "-Infinity": the typed path reads the value,
        // the tree (whose numbers are JSON's) leaves it out; and a NaN equals nothing.
        (Ok(_), Ok(_)) if names_a_non_finite_double(body) => Ok(()),
        _ => Err(format!(
            "{}: typed {:?}, tree {:?}",
            String::from_utf8_lossy(body),
            typed.map(|_| "ok").map_err(|e| e.to_string()),
            tree.map(|_| "ok").map_err(|e| e.to_string())
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_names_map_to_numbers() {
        let severity = |name| enum_number("severityNumber", name);
        assert_eq!(severity("SEVERITY_NUMBER_UNSPECIFIED"), Some(0));
        assert_eq!(severity("SEVERITY_NUMBER_ERROR"), Some(17));
        assert_eq!(severity("SEVERITY_NUMBER_ERROR3"), Some(19));
        assert_eq!(severity("SEVERITY_NUMBER_FATAL4"), Some(24));
        assert_eq!(severity("SEVERITY_NUMBER_LOUD"), None);
        assert_eq!(enum_number("kind", "SPAN_KIND_CONSUMER"), Some(5));
        assert_eq!(enum_number("code", "STATUS_CODE_ERROR"), Some(2));
        assert_eq!(
            enum_number(
                "aggregationTemporality",
                "AGGREGATION_TEMPORALITY_CUMULATIVE"
            ),
            Some(2)
        );
        assert_eq!(enum_number("kind", "SERVER"), None);
    }

    #[test]
    fn enum_names_snake_case_and_string_integers_are_read() {
        let body = br#"{"resource_spans":[{"scopeSpans":[{"spans":[{
            "traceId":"5b8efff798038103d269b633813fc60c","span_id":"eee19b7ec3c1b174",
            "name":"GET /x","kind":"SPAN_KIND_SERVER","startTimeUnixNano":"1544712660000000000",
            "endTimeUnixNano":1544712661000000000,"status":{"code":"STATUS_CODE_ERROR"},
            "attributes":[{"key":"a","value":{"intValue":"42"}},{"key":"b","value":{"arrayValue":{}}}],
            "unknownField":{"x":1}}]}]}]}"#;
        let request = ExportTraceServiceRequest::from_json(body).unwrap();
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.kind, 2);
        assert_eq!(span.status.as_ref().map(|s| s.code), Some(2));
        assert_eq!(span.span_id.len(), 8);
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.attributes.len(), 2);
    }

    #[test]
    fn unknown_enum_names_are_refused() {
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_NOPE"}]}]}]}"#;
        let result = ExportTraceServiceRequest::from_json(body);
        assert!(matches!(result, Err(OtlpError::BadRequest(m)) if m.contains("SPAN_KIND_NOPE")));
    }

    /// A field given twice is refused by both paths, under one name or two spellings, as
    /// Go's `protojson` refuses it ("duplicate field"). The tree path read the last one, so a
    /// log record naming two traces was attached to the second: the `otlp_json` fuzzer's
    /// finding, in its corpus as `disagreement-d2be2eaf…`.
    #[test]
    fn a_field_given_twice_is_refused_by_both_paths() {
        let logs: [&[u8]; 2] = [
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"5b8efff798038103d269b633813fc60c","body":{"stringValue":"x"},"traceId":"0af7651916cd43dd8448eb211c80319c"}]}]}]}"#,
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"span_id":"eee19b7ec3c1b174","spanId":"00f067aa0ba902b7"}]}]}]}"#,
        ];
        for body in logs {
            for (path, result) in [
                (
                    "typed",
                    ExportLogsServiceRequest::from_json(body).map(|_| ()),
                ),
                (
                    "tree",
                    decode_tree::<ExportLogsServiceRequest>(body).map(|_| ()),
                ),
            ] {
                assert!(
                    matches!(&result, Err(OtlpError::BadRequest(m)) if m.contains("duplicate field")),
                    "{path} path on {}: {result:?}",
                    String::from_utf8_lossy(body)
                );
            }
        }
        // The tree path's message has no position: it would be one in its normalised text.
        let tree = decode_tree::<ExportLogsServiceRequest>(logs[0]).map(|_| ());
        assert!(
            matches!(&tree, Err(OtlpError::BadRequest(m)) if !m.contains(" at line ")),
            "{tree:?}"
        );
        // Metrics go through the tree alone: the same rule.
        let metrics =
            br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"a","name":"b"}]}]}]}"#;
        assert!(ExportMetricsServiceRequest::from_json(metrics).is_err());
        // Unknown fields are skipped, given twice or not, by both paths.
        let unknown =
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"x":1,"x":2,"y_z":1,"yZ":2}]}]}]}"#;
        same_answer::<ExportLogsServiceRequest>(unknown).unwrap();
        assert!(ExportLogsServiceRequest::from_json(unknown).is_ok());
    }

    /// A metric's data, a number point's value and an exemplar's value that cannot be read
    /// are refused with a message saying where, as a span's or a log record's would be. The
    /// proto's serde reads these oneofs as `#[serde(flatten)] Option<_>`, which turned every
    /// error inside them into "no data": the request was accepted (200) with the metric kept
    /// empty.
    #[test]
    fn metric_data_that_cannot_be_read_is_refused_with_where_it_sits() {
        let metric = |inner: &str| {
            format!(
                r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"ok","gauge":{{"dataPoints":[{{"asInt":"1"}}]}}}},{{"name":"m",{inner}}}]}}]}}]}}"#
            )
        };
        let refused = [
            (
                r#""gauge":{"dataPoints":[{"asDouble":"abc"}]}"#,
                "metrics[1].gauge.dataPoints[0].asDouble",
            ),
            (
                r#""sum":{"dataPoints":[{"asInt":"12x"}],"isMonotonic":true}"#,
                "metrics[1].sum.dataPoints[0].asInt",
            ),
            (
                r#""sum":{"aggregationTemporality":"SOMETIMES","dataPoints":[]}"#,
                "metrics[1].sum",
            ),
            (
                r#""histogram":{"dataPoints":[{"count":"many"}]}"#,
                "metrics[1].histogram",
            ),
            (
                r#""summary":{"dataPoints":[{"quantileValues":7}]}"#,
                "metrics[1].summary",
            ),
            (
                r#""exponential_histogram":{"dataPoints":[{"scale":"x"}]}"#,
                "metrics[1].exponentialHistogram",
            ),
            (
                r#""gauge":{"dataPoints":[{"asDouble":1.5,"exemplars":[{"asInt":true}]}]}"#,
                "metrics[1].gauge.dataPoints[0].exemplars[0].asInt",
            ),
            (
                r#""histogram":{"dataPoints":[{"exemplars":[{"asDouble":{}}]}]}"#,
                "metrics[1].histogram.dataPoints[0].exemplars[0].asDouble",
            ),
            (
                r#""gauge":{"dataPoints":[{"asInt":"1","attributes":[{"key":"k","value":{"intValue":"zz"}}]}]}"#,
                "metrics[1].gauge",
            ),
        ];
        for (inner, at) in refused {
            let body = metric(inner);
            match ExportMetricsServiceRequest::from_json(body.as_bytes()) {
                Err(OtlpError::BadRequest(m)) => assert!(
                    m.starts_with("invalid OTLP/JSON: resourceMetrics[0].scopeMetrics[0].")
                        && m.contains(&format!("{at}: ")),
                    "{inner}: {m}"
                ),
                other => panic!("{inner}: accepted or wrong error: {other:?}"),
            }
        }
        // What is well formed is read as before: names, integers as strings, `null` for an
        // absent oneof, unknown fields beside the data.
        for inner in [
            r#""gauge":{"dataPoints":[{"asDouble":"NaN"},{"asInt":7},{"asDouble":-0.5}]}"#,
            r#""sum":{"aggregation_temporality":"AGGREGATION_TEMPORALITY_DELTA","dataPoints":[{"asInt":"-3","exemplars":[{"asDouble":2}]}]}"#,
            r#""histogram":{"dataPoints":[{"count":"3","bucketCounts":["1","2"],"explicitBounds":[0.5]}]}"#,
            r#""gauge":null,"summary":{"dataPoints":[{"quantileValues":[{"quantile":0.5,"value":1}]}]}"#,
            r#""unit":"s","futureField":{"gauge":"x"}"#,
        ] {
            let body = metric(inner);
            let request = ExportMetricsServiceRequest::from_json(body.as_bytes())
                .unwrap_or_else(|e| panic!("{inner}: {e}"));
            assert_eq!(
                request.resource_metrics[0].scope_metrics[0].metrics.len(),
                2
            );
        }
    }

    /// Doubles given as strings, as the protobuf JSON mapping allows: a JSON number in a
    /// string, or `"NaN"`, `"Infinity"`, `"-Infinity"`. A goroutine gauge whose point said
    /// `"NaN"` was read with no data at all (200): its other points, finite ones included,
    /// were lost and nothing counted them; a span with a `"NaN"` double attribute was refused
    /// whole (400). Now a span's double is read as the value it names, and a metric point's
    /// non-finite value is left out: the point is counted among the ignored ones, never
    /// stored as a count. Other strings are refused, saying where.
    #[test]
    fn doubles_given_as_strings_are_read_as_the_protobuf_json_mapping_says() {
        use opentelemetry_proto::tonic::common::v1::any_value::Value;
        let span = |value: &str| {
            format!(
                r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","attributes":[{{"key":"x","value":{{"doubleValue":{value}}}}}]}}]}}]}}]}}"#
            )
        };
        for (value, want) in [
            ("\"NaN\"", f64::NAN),
            ("\"Infinity\"", f64::INFINITY),
            ("\"-Infinity\"", f64::NEG_INFINITY),
            ("\"1.5\"", 1.5),
            ("\"-2e3\"", -2000.0),
            ("3", 3.0),
        ] {
            let body = span(value);
            let request = ExportTraceServiceRequest::from_json(body.as_bytes())
                .unwrap_or_else(|e| panic!("{value}: {e}"));
            let attribute = &request.resource_spans[0].scope_spans[0].spans[0].attributes[0];
            match attribute.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::DoubleValue(d)) => {
                    assert!(d.total_cmp(&want).is_eq(), "{value}: read {d}, want {want}");
                }
                other => panic!("{value}: read {other:?}"),
            }
            json_paths_agree("/v1/traces", body.as_bytes()).unwrap();
        }
        for value in [
            "\"nan\"",
            "\"inf\"",
            "\"+Infinity\"",
            "\" 1.5\"",
            "\"abc\"",
            "\"\"",
        ] {
            let body = span(value);
            match ExportTraceServiceRequest::from_json(body.as_bytes()) {
                Err(OtlpError::BadRequest(m)) => {
                    assert!(m.starts_with("invalid OTLP/JSON: "), "{value}: {m}")
                }
                other => panic!("{value}: accepted: {other:?}"),
            }
            json_paths_agree("/v1/traces", body.as_bytes()).unwrap();
        }

        let gauge = |points: &str| {
            format!(
                r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"users"}}}}]}},"scopeMetrics":[{{"metrics":[{{"name":"go.goroutine.count","gauge":{{"dataPoints":[{points}]}}}}]}}]}}]}}"#
            )
        };
        let body = gauge(
            r#"{"asDouble":"NaN"},{"asInt":7},{"asDouble":"Infinity"},{"asDouble":"2.5"},{"asDouble":"-Infinity","exemplars":[{"asDouble":"NaN"}]}"#,
        );
        let request = ExportMetricsServiceRequest::from_json(body.as_bytes()).unwrap();
        let batch = super::super::convert::convert_metrics(request, &Default::default());
        let values: Vec<f64> = batch.samples.iter().map(|s| s.value).collect();
        assert_eq!(values, [7.0, 2.5]);
        assert_eq!(batch.ignored_points, 3);
        // Histograms and summaries (counted, not read) keep their points.
        let body = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"h","histogram":{"dataPoints":[{"count":"2","sum":"NaN","min":"-Infinity","max":"4","explicitBounds":["1","NaN",2]}]}},{"name":"s","summary":{"dataPoints":[{"sum":"Infinity","quantileValues":[{"quantile":"0.5","value":"NaN"}]}]}}]}]}]}"#;
        let request = ExportMetricsServiceRequest::from_json(body.as_bytes()).unwrap();
        let metrics = &request.resource_metrics[0].scope_metrics[0].metrics;
        assert_eq!(super::super::convert::data_points(&metrics[0].data), 1);
        assert_eq!(super::super::convert::data_points(&metrics[1].data), 1);
        for (points, at) in [
            (r#"{"asDouble":"nan"}"#, "gauge.dataPoints[0].asDouble"),
            (r#"{"asDouble":" 2"}"#, "gauge.dataPoints[0].asDouble"),
            (
                r#"{"asInt":1,"exemplars":[{"asDouble":"inf"}]}"#,
                "gauge.dataPoints[0].exemplars[0].asDouble",
            ),
        ] {
            match ExportMetricsServiceRequest::from_json(gauge(points).as_bytes()) {
                Err(OtlpError::BadRequest(m)) => {
                    assert!(m.contains(&format!("{at}: ")), "{points}: {m}")
                }
                other => panic!("{points}: accepted: {other:?}"),
            }
        }
    }

    /// An `AnyValue` naming two kinds of value is read as the last in the body by both paths
    /// (the tree path read the alphabetically last).
    #[test]
    fn an_any_value_naming_two_kinds_is_read_as_the_last_in_the_body() {
        let body = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"text","intValue":"7","boolValue":true,"doubleValue":1.5}}]}]}]}"#;
        same_answer::<ExportLogsServiceRequest>(body).unwrap();
        let logs = ExportLogsServiceRequest::from_json(body).unwrap();
        let record = &logs.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(
            record.body.as_ref().and_then(|b| b.value.clone()),
            Some(opentelemetry_proto::tonic::common::v1::any_value::Value::DoubleValue(1.5))
        );
    }

    /// The spellings the OTLP/JSON mapping allows, each read the same by both paths.
    #[test]
    fn typed_decoding_agrees_with_the_tree_on_every_spelling() {
        let bodies: [&[u8]; 9] = [
            br#"{"resource_spans":[{"resource":{"attributes":[{"key":"service.name","value":{"string_value":"a"}}],"dropped_attributes_count":1,"entity_refs":[{"type":"t","schema_url":"u","id_keys":["k"],"description_keys":[]}]},"scope_spans":[{"scope":{"name":"s","version":"1"},"spans":[{"trace_id":"5B8EFFF798038103D269B633813FC60C","span_id":"0xeee19b7ec3c1b174","parent_span_id":"","name":"x","kind":"SPAN_KIND_CLIENT","start_time_unix_nano":1,"end_time_unix_nano":"2","flags":1,"events":[{"time_unix_nano":"3","name":"e","attributes":[]}],"links":[{"trace_id":"5b8efff798038103d269b633813fc60c","span_id":"eee19b7ec3c1b174","trace_state":"a=b"}],"status":{"code":"STATUS_CODE_OK","message":"m"},"dropped_events_count":2}]}]}]}"#,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"a","value":{"arrayValue":{}}},{"key":"b","value":{"kvlistValue":{}}},{"key":"c","value":{"intValue":-3}},{"key":"d","value":{"doubleValue":1}},{"key":"e","value":{"bytesValue":"AAEC"}},{"key":"f","value":{"boolValue":true}},{"key":"g","value":{}},{"key":"h"},{"key":"i","value":null},{"key":"j","value":{"stringValue":null,"other":[1,{"x":2}]}},{"key":"k","value":{"arrayValue":{"values":[{"arrayValue":{"values":[{"intValue":"9"}]}}]}}}]}]}]}]}"#,
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityNumber":"SEVERITY_NUMBER_WARN","severityText":"W","body":{"kvlistValue":{"values":[{"key":"msg","value":{"stringValue":"x\u00e9\n"}}]}},"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","timeUnixNano":"5","observed_time_unix_nano":6,"eventName":"n","flags":1}]}]}]}"#,
            br#"  {"resourceSpans":[],"unknown":{"a":[true,null]}}  "#,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}"#,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":-1}]}]}]}"#,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"value":{"stringValue":"no key"}}]}]}]}]}"#,
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityNumber":99999999999}]}]}]}"#,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"x"}]}]}]} trailing"#,
        ];
        for body in bodies {
            same_answer::<ExportTraceServiceRequest>(body).unwrap();
            same_answer::<ExportLogsServiceRequest>(body).unwrap();
        }
        let spans = ExportTraceServiceRequest::from_json(bodies[0]).expect("snake_case");
        let span = &spans.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!((span.kind, span.span_id.len()), (3, 8));
        assert_eq!(span.status.as_ref().map(|s| s.code), Some(1));
        let logs = ExportLogsServiceRequest::from_json(bodies[2]).expect("logs");
        assert_eq!(
            logs.resource_logs[0].scope_logs[0].log_records[0].severity_number,
            13
        );
    }

    /// Only a field's lowerCamelCase name and its proto name are read as that field, as Go's
    /// `protojson` and the Collector match them; any other spelling is an unknown field. The
    /// tree path camel-cased every key with an underscore, so it read `span__id` as `spanId`
    /// (and refused this body: `trace_Id` next to `traceId` made a field given twice) where
    /// the typed path skipped them.
    #[test]
    fn spellings_other_than_the_two_names_are_unknown_fields() {
        let body = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"span__id":"zz","spanId_":"zz","Span_id":"zz","trace_Id":"zz","traceId":"5b8efff798038103d269b633813fc60c","body":{"string__value":"a"},"severity_number":"SEVERITY_NUMBER_WARN"}]}]}]}"#;
        same_answer::<ExportLogsServiceRequest>(body).unwrap();
        let logs = ExportLogsServiceRequest::from_json(body).unwrap();
        let record = &logs.resource_logs[0].scope_logs[0].log_records[0];
        assert!(record.span_id.is_empty(), "{record:?}");
        assert_eq!(record.trace_id.len(), 16);
        assert_eq!(record.body.as_ref().map(|b| b.value.is_none()), Some(true));
        assert_eq!(record.severity_number, 13);
        for name in ["time_unix_nano", "key_strindex", "kvlist_value", "a1_b2"] {
            assert!(is_proto_field_name(name), "{name}");
        }
        for name in [
            "span__id", "spanId_", "_span_id", "Span_id", "span_Id", "span_1d",
        ] {
            assert!(!is_proto_field_name(name), "{name}");
        }
    }

    /// What an unknown field holds is skipped by both paths, enum names included: the tree
    /// path refused `"kind":"SPAN_KIND_NOPE"` anywhere, as it cannot tell where a `kind` sits.
    /// A lone surrogate escape is refused by both wherever it sits: the typed path skipped it
    /// unchecked under an unknown field. A number beyond f64 or nesting past 127 under an
    /// unknown field is skipped by the typed path (as the Collector and `protojson` do) and
    /// refused by the tree, which cannot hold it; under a known field both refuse.
    #[test]
    fn the_value_of_an_unknown_field_is_skipped_by_both_paths() {
        let deep = |depth: usize, at: &str| {
            format!(
                r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"{at}":{}{}}}]}}]}}]}}"#,
                "[".repeat(depth - 7),
                "]".repeat(depth - 7)
            )
        };
        let (deep_127, deep_128) = (deep(127, "x"), deep(128, "x"));
        let deep_known = deep(128, "attributes");
        let read: [&[u8]; 6] = [
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"x","next":{"kind":"SPAN_KIND_NOPE","code":"NOPE","severityNumber":"LOUD","aggregationTemporality":"SOMETIMES"}}]}]}]}"#,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"a","value":{"stringValue":"b","kind":"NOPE"}}]}]}]}]}"#,
            br#"{"resourceSpans":[],"x":["\ud83d\ude00","\\ud800","\\\\\ud83d\ude00","\u0041\"\\",1e300,-1E-400,123456789012345678901234567890]}"#,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"\ud83d\ude00 \u00e9 \\ud800"}]}]}]}"#,
            deep_127.as_bytes(),
            br#"{"resourceSpans":[]}   "#,
        ];
        for body in read {
            same_answer::<ExportTraceServiceRequest>(body).unwrap();
            assert!(!beyond_a_tree(std::str::from_utf8(body).unwrap()));
            assert!(
                ExportTraceServiceRequest::from_json(body).is_ok(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let refused: [&[u8]; 5] = [
            br#"{"resourceSpans":[],"x":"\ud800"}"#,
            br#"{"resourceSpans":[],"x":["a\udc00"]}"#,
            br#"{"resourceSpans":[],"x":"\\\ud800\u0041"}"#,
            br#"{"resourceSpans":[],"x":{"\uDBFF":1}}"#,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"\ud800"}]}]}]}"#,
        ];
        for body in refused {
            same_answer::<ExportTraceServiceRequest>(body).unwrap();
            assert!(
                matches!(
                    ExportTraceServiceRequest::from_json(body),
                    Err(OtlpError::BadRequest(m)) if m.contains("lone surrogate")
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // Beyond a tree: skipped under an unknown field, refused under a known one.
        let big = format!(r#"{{"resourceSpans":[],"x":1{}}}"#, "0".repeat(400));
        let beyond: [(&[u8], bool); 6] = [
            (br#"{"resourceSpans":[],"x":1e400}"#, true),
            (br#"{"resourceSpans":[],"x":[-2E+309]}"#, true),
            (big.as_bytes(), true),
            (deep_128.as_bytes(), true),
            (
                br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":1e400}]}]}]}"#,
                false,
            ),
            (deep_known.as_bytes(), false),
        ];
        for (body, read) in beyond {
            let text = std::str::from_utf8(body).unwrap();
            assert!(beyond_a_tree(text), "{text}");
            assert!(decode_tree::<ExportTraceServiceRequest>(body).is_err());
            assert_eq!(
                ExportTraceServiceRequest::from_json(body).is_ok(),
                read,
                "{text}"
            );
            same_answer::<ExportTraceServiceRequest>(body).unwrap();
        }
        // An unknown enum name where the field is an enum is still refused by both.
        let spans =
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_NOPE"}]}]}]}"#;
        assert!(decode_tree::<ExportTraceServiceRequest>(spans).is_err());
        same_answer::<ExportTraceServiceRequest>(spans).unwrap();
    }
}
