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
//! path is also the reference the typed one is tested against.

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
        decode_tree(body)
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
    // Read as the `str` it now is: read as bytes, serde_json checked every string it parsed
    // for UTF-8 once more (1 % of the agent's CPU at 1,000 spans/s, perf).
    match json_typed::from_str::<J>(text) {
        Ok(typed) => Ok(typed.into()),
        Err(e) if e.is_data() => Err(OtlpError::BadRequest(format!("invalid OTLP/JSON: {e}"))),
        Err(e) => Err(OtlpError::BadRequest(format!("malformed JSON: {e}"))),
    }
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
fn normalise(tree: &mut Tree) -> Result<(), OtlpError> {
    match tree {
        Tree::Array(items) => items.iter_mut().try_for_each(normalise),
        Tree::Object(members) => {
            for (key, v) in members.iter_mut() {
                if key.contains('_') {
                    *key = camel_case(key);
                }
                if let Tree::String(name) = v {
                    if matches!(
                        key.as_str(),
                        "kind" | "code" | "severityNumber" | "aggregationTemporality"
                    ) {
                        let number = enum_number(key, name).ok_or_else(|| {
                            OtlpError::BadRequest(format!(
                                "unknown enum value {name:?} for {key:?}"
                            ))
                        })?;
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
                normalise(v)?;
            }
            Ok(())
        }
        Tree::Null | Tree::Bool(_) | Tree::Number(_) | Tree::String(_) => Ok(()),
    }
}

/// Decodes an OTLP/JSON export request through a normalised JSON tree: parsed, normalised,
/// written out again and read by the proto's serde, which refuses a field given twice (two
/// members under one name, or under its lowerCamelCase name and its snake_case original)
/// as the protobuf JSON mapping's parsers do (Go's `protojson`: "duplicate field"; the
/// conformance suite's `FieldNameDuplicate*` cases), and ignores unknown fields.
pub(crate) fn decode_tree<T: DeserializeOwned>(body: &[u8]) -> Result<T, OtlpError> {
    let mut tree: Tree = serde_json::from_slice(body)
        .map_err(|e| OtlpError::BadRequest(format!("malformed JSON: {e}")))?;
    if !matches!(tree, Tree::Object(_)) {
        return Err(OtlpError::BadRequest(
            "an OTLP/JSON request must be a JSON object".to_owned(),
        ));
    }
    normalise(&mut tree)?;
    let normalised = serde_json::to_vec(&tree)
        .map_err(|e| OtlpError::BadRequest(format!("malformed JSON: {e}")))?;
    serde_json::from_slice(&normalised).map_err(|e| {
        // The position is in the normalised text, not in the body the client sent.
        let message = e.to_string();
        let position = format!(" at line {} column {}", e.line(), e.column());
        let message = message.strip_suffix(&position).unwrap_or(&message);
        OtlpError::BadRequest(format!("invalid OTLP/JSON: {message}"))
    })
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

    /// Both paths agree: the same request, or both refuse.
    fn same_answer<T: JsonRequest + DeserializeOwned + PartialEq + std::fmt::Debug>(
        body: &[u8],
    ) -> Result<(), String> {
        let typed = T::from_json(body);
        let tree = decode_tree::<T>(body);
        match (&typed, &tree) {
            (Ok(a), Ok(b)) if a == b => Ok(()),
            (Err(_), Err(_)) => Ok(()),
            _ => Err(format!(
                "{}: typed {:?}, tree {:?}",
                String::from_utf8_lossy(body),
                typed.map(|_| "ok").map_err(|e| e.to_string()),
                tree.map(|_| "ok").map_err(|e| e.to_string())
            )),
        }
    }

    /// Every trace or log input the fuzzer kept (`fuzz/corpus/otlp_json`, byte 0 is the
    /// harness's selector) decodes to the same request, or is refused, by the typed path and
    /// the tree path.
    #[test]
    fn typed_decoding_agrees_with_the_tree_on_the_fuzz_corpus() {
        let folder = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fuzz/corpus/otlp_json"
        ));
        let entries = std::fs::read_dir(folder)
            .unwrap_or_else(|e| panic!("the corpus {} is missing: {e}", folder.display()));
        let mut seen = 0;
        let mut accepted = 0;
        let mut differ = Vec::new();
        for entry in entries {
            let path = entry.expect("a corpus entry").path();
            let data = std::fs::read(&path).expect("a corpus file");
            let Some((&selector, body)) = data.split_first() else {
                continue;
            };
            seen += 1;
            // Each input goes to one signal's route (the harness's selector): compared there.
            // Sent to another signal's route its content is unknown fields, which the typed
            // path skips unchecked (see `json_typed`).
            let result = match selector % 3 {
                0 => {
                    accepted += usize::from(ExportTraceServiceRequest::from_json(body).is_ok());
                    same_answer::<ExportTraceServiceRequest>(body)
                }
                1 => {
                    accepted += usize::from(ExportLogsServiceRequest::from_json(body).is_ok());
                    same_answer::<ExportLogsServiceRequest>(body)
                }
                _ => Ok(()),
            };
            if let Err(e) = result {
                differ.push(format!("{}: {e}", path.display()));
            }
        }
        assert!(
            seen > 100,
            "only {seen} corpus files in {}",
            folder.display()
        );
        assert!(accepted > 10, "only {accepted} corpus inputs decode at all");
        assert!(
            differ.is_empty(),
            "{} differ:\n{}",
            differ.len(),
            differ.join("\n")
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
}
