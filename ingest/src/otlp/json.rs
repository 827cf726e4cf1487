//! OTLP/JSON decoding.
//!
//! `opentelemetry-proto`'s serde support already reads hex trace/span ids, 64-bit integers as
//! strings or numbers, and ignores unknown fields. What it does not do, and the OTLP/JSON
//! mapping requires, is read enums given by name (`"kind": "SPAN_KIND_SERVER"`), accept the
//! original snake_case field names next to lowerCamelCase, and accept an `arrayValue` or
//! `kvlistValue` whose empty `values` was omitted. The body is therefore parsed into a JSON
//! tree (serde_json caps nesting at 128), normalised, and then typed.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::OtlpError;

/// Numbers for enum names of the fields that carry OTLP enums.
fn enum_number(field: &str, name: &str) -> Option<i64> {
    let table: &[(&str, i64)] = match field {
        "kind" => &[
            ("SPAN_KIND_UNSPECIFIED", 0),
            ("SPAN_KIND_INTERNAL", 1),
            ("SPAN_KIND_SERVER", 2),
            ("SPAN_KIND_CLIENT", 3),
            ("SPAN_KIND_PRODUCER", 4),
            ("SPAN_KIND_CONSUMER", 5),
        ],
        "code" => &[
            ("STATUS_CODE_UNSET", 0),
            ("STATUS_CODE_OK", 1),
            ("STATUS_CODE_ERROR", 2),
        ],
        "aggregationTemporality" => &[
            ("AGGREGATION_TEMPORALITY_UNSPECIFIED", 0),
            ("AGGREGATION_TEMPORALITY_DELTA", 1),
            ("AGGREGATION_TEMPORALITY_CUMULATIVE", 2),
        ],
        "severityNumber" => {
            return severity_number(name);
        }
        _ => return None,
    };
    table.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
}

fn severity_number(name: &str) -> Option<i64> {
    if name == "SEVERITY_NUMBER_UNSPECIFIED" {
        return Some(0);
    }
    let rest = name.strip_prefix("SEVERITY_NUMBER_")?;
    let (level, step) = match rest.char_indices().last() {
        Some((i, c @ '2'..='4')) => (&rest[..i], i64::from(c as u8 - b'1')),
        _ => (rest, 0),
    };
    let base = match level {
        "TRACE" => 1,
        "DEBUG" => 5,
        "INFO" => 9,
        "WARN" => 13,
        "ERROR" => 17,
        "FATAL" => 21,
        _ => return None,
    };
    Some(base + step)
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

/// Normalises a parsed OTLP/JSON tree in place. Recursion is bounded by serde_json's nesting
/// limit on the parse.
fn normalise(value: &mut Value) -> Result<(), OtlpError> {
    match value {
        Value::Array(items) => items.iter_mut().try_for_each(normalise),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('_')) {
                let old = std::mem::take(map);
                let mut renamed = Map::with_capacity(old.len());
                for (key, v) in old {
                    let key = if key.contains('_') {
                        camel_case(&key)
                    } else {
                        key
                    };
                    renamed.insert(key, v);
                }
                *map = renamed;
            }
            for (key, v) in map.iter_mut() {
                if let Value::String(name) = v {
                    if matches!(
                        key.as_str(),
                        "kind" | "code" | "severityNumber" | "aggregationTemporality"
                    ) {
                        let number = enum_number(key, name).ok_or_else(|| {
                            OtlpError::BadRequest(format!(
                                "unknown enum value {name:?} for {key:?}"
                            ))
                        })?;
                        *v = Value::from(number);
                        continue;
                    }
                }
                if key == "arrayValue" || key == "kvlistValue" {
                    if let Value::Object(inner) = v {
                        inner
                            .entry("values")
                            .or_insert_with(|| Value::Array(Vec::new()));
                    }
                }
                normalise(v)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Decodes an OTLP/JSON export request.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, OtlpError> {
    let mut tree: Value = serde_json::from_slice(body)
        .map_err(|e| OtlpError::BadRequest(format!("malformed JSON: {e}")))?;
    if !tree.is_object() {
        return Err(OtlpError::BadRequest(
            "an OTLP/JSON request must be a JSON object".to_owned(),
        ));
    }
    normalise(&mut tree)?;
    serde_json::from_value(tree)
        .map_err(|e| OtlpError::BadRequest(format!("invalid OTLP/JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

    #[test]
    fn severity_names_map_to_numbers() {
        assert_eq!(severity_number("SEVERITY_NUMBER_ERROR"), Some(17));
        assert_eq!(severity_number("SEVERITY_NUMBER_ERROR3"), Some(19));
        assert_eq!(severity_number("SEVERITY_NUMBER_FATAL4"), Some(24));
        assert_eq!(severity_number("SEVERITY_NUMBER_LOUD"), None);
    }

    #[test]
    fn enum_names_snake_case_and_string_integers_are_read() {
        let body = br#"{"resource_spans":[{"scopeSpans":[{"spans":[{
            "traceId":"5b8efff798038103d269b633813fc60c","span_id":"eee19b7ec3c1b174",
            "name":"GET /x","kind":"SPAN_KIND_SERVER","startTimeUnixNano":"1544712660000000000",
            "endTimeUnixNano":1544712661000000000,"status":{"code":"STATUS_CODE_ERROR"},
            "attributes":[{"key":"a","value":{"intValue":"42"}},{"key":"b","value":{"arrayValue":{}}}],
            "unknownField":{"x":1}}]}]}]}"#;
        let request: ExportTraceServiceRequest = decode(body).unwrap();
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
        let result: Result<ExportTraceServiceRequest, _> = decode(body);
        assert!(matches!(result, Err(OtlpError::BadRequest(m)) if m.contains("SPAN_KIND_NOPE")));
    }
}
