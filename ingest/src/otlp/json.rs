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

/// Numbers for enum names of the fields that carry OTLP enums, read by the generated
/// protobuf enums (`from_str_name`), so the names are the proto's own.
fn enum_number(field: &str, name: &str) -> Option<i64> {
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
