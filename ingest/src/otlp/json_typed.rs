//! OTLP/JSON traces and logs read in one pass, straight from the body into typed structs.
//!
//! Why not `opentelemetry-proto`'s serde types through a `serde_json::Value` tree (what
//! [`super::json`] still does for metrics): the tree allocates every key and string once, the
//! normalisation rebuilds every map holding a snake_case key, and the proto's `AnyValue`
//! (`#[serde(flatten)]`) buffers each attribute value once more. On the soak's load (1,000
//! spans/s as OTLP/JSON) that decode was 22 % of the agent's CPU (perf, cost-notes).
//!
//! The structs below mirror the proto messages field for field and read exactly what the tree
//! path reads: lowerCamelCase names and their snake_case originals, enums as numbers or by
//! their proto names (an unknown name is refused, naming it), 64-bit integers as strings or
//! numbers, ids as hex (`const_hex`, as the proto's serde), `bytesValue` as base64, an
//! `arrayValue`/`kvlistValue` whose empty `values` was omitted, unknown fields ignored, and
//! `serde_json`'s nesting limit (128). Strings the proto keeps are read into owned `String`s
//! once; strings only looked at (ids, numbers, enum names, base64) are borrowed from the body
//! when it holds them unescaped. Each struct is then moved into its proto message.
//!
//! Both paths refuse a field given twice (under the same name, or as both `spanId` and
//! `span_id`), as the protobuf JSON mapping's parsers do (Go's `protojson`: "duplicate
//! field"), and both read an `AnyValue` naming two kinds of value as the last one in the body
//! (the proto's own serde rule). Both read a snake_case key only when it is a field's proto
//! name (`span_id`; `span__id` is an unknown field), and both skip what an unknown field holds
//! (an unknown enum name under it is not refused), as the OTLP/JSON mapping asks of unknown
//! fields; a lone surrogate escape is refused wherever it sits (checked before this parse,
//! which skips unknown fields unchecked: see `json::decode_typed`). A number beyond `f64` or
//! nesting past 127 under an unknown field is skipped here, as the Collector does, where the
//! tree path, which must hold every value, refuses it. The `otlp_json` fuzz target checks on
//! every input that the two paths agree (`json::json_paths_agree`).

use std::borrow::Cow;
use std::fmt;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use super::json::enum_number;

/// Reads a whole body, already known to be UTF-8, as `T` (trailing characters refused, as
/// `serde_json::from_str`).
pub(crate) fn from_str<'de, T: Deserialize<'de>>(body: &'de str) -> serde_json::Result<T> {
    let mut reader = serde_json::Deserializer::from_str(body);
    let value = T::deserialize(&mut reader)?;
    reader.end()?;
    Ok(value)
}

// ------------------------------------------------------------------ scalar readers

/// A JSON string, borrowed from the body when it has no escapes.
struct Text<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// Hex-encoded bytes (trace and span ids), decoded as the proto's serde decodes them.
fn hex<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    let text = Text::deserialize(deserializer)?;
    const_hex::decode(text.0.as_ref()).map_err(de::Error::custom)
}

/// A `fixed64` time: a number, or a string holding one.
fn u64_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct U64Visitor;
    impl Visitor<'_> for U64Visitor {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a u64 integer or a string containing a u64 integer")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v)
                .map_err(|_| E::custom(format!("i64 value {v} is out of range for u64")))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            v.parse::<u64>().map_err(E::custom)
        }
    }
    deserializer.deserialize_any(U64Visitor)
}

/// An OTLP enum of field `field`: its number, or its proto name.
struct EnumVisitor(&'static str);

impl Visitor<'_> for EnumVisitor {
    type Value = i32;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an enum number or name for {:?}", self.0)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i32, E> {
        i32::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &"an i32"))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i32, E> {
        i32::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &"an i32"))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<i32, E> {
        enum_number(self.0, v)
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| E::custom(format!("unknown enum value {v:?} for {:?}", self.0)))
    }
}

fn span_kind<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
    deserializer.deserialize_any(EnumVisitor("kind"))
}

fn status_code<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
    deserializer.deserialize_any(EnumVisitor("code"))
}

fn severity_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
    deserializer.deserialize_any(EnumVisitor("severityNumber"))
}

// ------------------------------------------------------------------ common

/// `AnyValue`: an object with at most one known value key (the last one wins), unknown keys
/// ignored, `null` values skipped — the proto serde's own rules, without its `flatten` buffer.
struct AnyValueJson(AnyValue);

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum AnyValueKey {
    #[serde(alias = "string_value")]
    StringValue,
    #[serde(alias = "bool_value")]
    BoolValue,
    #[serde(alias = "int_value")]
    IntValue,
    #[serde(alias = "double_value")]
    DoubleValue,
    #[serde(alias = "array_value")]
    ArrayValue,
    #[serde(alias = "kvlist_value")]
    KvlistValue,
    #[serde(alias = "bytes_value")]
    BytesValue,
    #[serde(other)]
    Other,
}

/// `intValue`: a number or a string holding an i64.
struct IntValue(i64);

impl<'de> Deserialize<'de> for IntValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IntVisitor;
        impl Visitor<'_> for IntVisitor {
            type Value = IntValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an i64 or a string containing one")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntValue, E> {
                Ok(IntValue(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntValue, E> {
                i64::try_from(v)
                    .map(IntValue)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IntValue, E> {
                v.parse::<i64>().map(IntValue).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(IntVisitor)
    }
}

/// `doubleValue`: a number, or a string as the protobuf JSON mapping allows: one holding a
/// JSON number (`"1.5"`), or the name of a non-finite value (`"NaN"`, `"Infinity"`,
/// `"-Infinity"`), read as that value (an attribute's text, never summed). Other strings
/// (`"abc"`, `"inf"`, `" 1"`) are refused, as by Go's `protojson`.
struct DoubleValue(f64);

impl<'de> Deserialize<'de> for DoubleValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DoubleVisitor;
        impl Visitor<'_> for DoubleVisitor {
            type Value = DoubleValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a number, a string holding one, or \"NaN\", \"Infinity\", \"-Infinity\"",
                )
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<DoubleValue, E> {
                Ok(DoubleValue(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DoubleValue, E> {
                Ok(DoubleValue(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DoubleValue, E> {
                Ok(DoubleValue(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DoubleValue, E> {
                super::json::double_in_string(v)
                    .map(DoubleValue)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        deserializer.deserialize_any(DoubleVisitor)
    }
}

impl<'de> Deserialize<'de> for AnyValueJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AnyValueVisitor;
        impl<'de> Visitor<'de> for AnyValueVisitor {
            type Value = AnyValueJson;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object for AnyValue")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyValueJson, A::Error> {
                use any_value::Value;
                let mut value = None;
                while let Some(key) = map.next_key::<AnyValueKey>()? {
                    let next = match key {
                        AnyValueKey::StringValue => {
                            map.next_value::<Option<String>>()?.map(Value::StringValue)
                        }
                        AnyValueKey::BoolValue => {
                            map.next_value::<Option<bool>>()?.map(Value::BoolValue)
                        }
                        AnyValueKey::IntValue => map
                            .next_value::<Option<IntValue>>()?
                            .map(|i| Value::IntValue(i.0)),
                        AnyValueKey::DoubleValue => map
                            .next_value::<Option<DoubleValue>>()?
                            .map(|d| Value::DoubleValue(d.0)),
                        AnyValueKey::ArrayValue => map
                            .next_value::<Option<ArrayValueJson>>()?
                            .map(|a| Value::ArrayValue(a.into())),
                        AnyValueKey::KvlistValue => map
                            .next_value::<Option<KeyValueListJson>>()?
                            .map(|l| Value::KvlistValue(l.into())),
                        AnyValueKey::BytesValue => match map.next_value::<Option<Text>>()? {
                            Some(text) => {
                                use base64::Engine;
                                let bytes = base64::engine::general_purpose::STANDARD
                                    .decode(text.0.as_bytes())
                                    .map_err(de::Error::custom)?;
                                Some(Value::BytesValue(bytes))
                            }
                            None => None,
                        },
                        AnyValueKey::Other => {
                            map.next_value::<IgnoredAny>()?;
                            None
                        }
                    };
                    if next.is_some() {
                        value = next;
                    }
                }
                Ok(AnyValueJson(AnyValue { value }))
            }
        }
        deserializer.deserialize_map(AnyValueVisitor)
    }
}

/// `arrayValue`: `values` may be omitted when empty (the tree path adds it).
#[derive(Deserialize)]
struct ArrayValueJson {
    #[serde(default)]
    values: Vec<AnyValueJson>,
}

impl From<ArrayValueJson> for ArrayValue {
    fn from(a: ArrayValueJson) -> Self {
        ArrayValue {
            values: a.values.into_iter().map(|v| v.0).collect(),
        }
    }
}

/// `kvlistValue`: `values` may be omitted when empty.
#[derive(Deserialize)]
struct KeyValueListJson {
    #[serde(default)]
    values: Vec<KeyValueJson>,
}

impl From<KeyValueListJson> for KeyValueList {
    fn from(l: KeyValueListJson) -> Self {
        KeyValueList {
            values: attributes(l.values),
        }
    }
}

/// `KeyValue`: `key` is required (no container default in the proto's serde).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyValueJson {
    key: String,
    value: Option<AnyValueJson>,
    #[serde(default, alias = "key_strindex")]
    key_strindex: i32,
}

fn attributes(list: Vec<KeyValueJson>) -> Vec<KeyValue> {
    list.into_iter()
        .map(|kv| KeyValue {
            key: kv.key,
            value: kv.value.map(|v| v.0),
            key_strindex: kv.key_strindex,
        })
        .collect()
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ScopeJson {
    name: String,
    version: String,
    attributes: Vec<KeyValueJson>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: u32,
}

impl From<ScopeJson> for InstrumentationScope {
    fn from(s: ScopeJson) -> Self {
        InstrumentationScope {
            name: s.name,
            version: s.version,
            attributes: attributes(s.attributes),
            dropped_attributes_count: s.dropped_attributes_count,
        }
    }
}

/// `EntityRef`: every field required (no container default in the proto's serde).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntityRefJson {
    #[serde(alias = "schema_url")]
    schema_url: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(alias = "id_keys")]
    id_keys: Vec<String>,
    #[serde(alias = "description_keys")]
    description_keys: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ResourceJson {
    attributes: Vec<KeyValueJson>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: u32,
    #[serde(alias = "entity_refs")]
    entity_refs: Vec<EntityRefJson>,
}

impl From<ResourceJson> for Resource {
    fn from(r: ResourceJson) -> Self {
        Resource {
            attributes: attributes(r.attributes),
            dropped_attributes_count: r.dropped_attributes_count,
            entity_refs: r
                .entity_refs
                .into_iter()
                .map(|e| EntityRef {
                    schema_url: e.schema_url,
                    r#type: e.kind,
                    id_keys: e.id_keys,
                    description_keys: e.description_keys,
                })
                .collect(),
        }
    }
}

// ------------------------------------------------------------------ traces

/// `ExportTraceServiceRequest`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct TracesJson {
    #[serde(alias = "resource_spans")]
    resource_spans: Vec<ResourceSpansJson>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ResourceSpansJson {
    resource: Option<ResourceJson>,
    #[serde(alias = "scope_spans")]
    scope_spans: Vec<ScopeSpansJson>,
    #[serde(alias = "schema_url")]
    schema_url: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ScopeSpansJson {
    scope: Option<ScopeJson>,
    spans: Vec<SpanJson>,
    #[serde(alias = "schema_url")]
    schema_url: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct SpanJson {
    #[serde(alias = "trace_id", deserialize_with = "hex")]
    trace_id: Vec<u8>,
    #[serde(alias = "span_id", deserialize_with = "hex")]
    span_id: Vec<u8>,
    #[serde(alias = "trace_state")]
    trace_state: String,
    #[serde(alias = "parent_span_id", deserialize_with = "hex")]
    parent_span_id: Vec<u8>,
    flags: u32,
    name: String,
    #[serde(deserialize_with = "span_kind")]
    kind: i32,
    #[serde(alias = "start_time_unix_nano", deserialize_with = "u64_text")]
    start_time_unix_nano: u64,
    #[serde(alias = "end_time_unix_nano", deserialize_with = "u64_text")]
    end_time_unix_nano: u64,
    attributes: Vec<KeyValueJson>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: u32,
    events: Vec<EventJson>,
    #[serde(alias = "dropped_events_count")]
    dropped_events_count: u32,
    links: Vec<LinkJson>,
    #[serde(alias = "dropped_links_count")]
    dropped_links_count: u32,
    status: Option<StatusJson>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct EventJson {
    #[serde(alias = "time_unix_nano", deserialize_with = "u64_text")]
    time_unix_nano: u64,
    name: String,
    attributes: Vec<KeyValueJson>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: u32,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct LinkJson {
    #[serde(alias = "trace_id", deserialize_with = "hex")]
    trace_id: Vec<u8>,
    #[serde(alias = "span_id", deserialize_with = "hex")]
    span_id: Vec<u8>,
    #[serde(alias = "trace_state")]
    trace_state: String,
    attributes: Vec<KeyValueJson>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: u32,
    flags: u32,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct StatusJson {
    message: String,
    #[serde(deserialize_with = "status_code")]
    code: i32,
}

impl From<TracesJson> for ExportTraceServiceRequest {
    fn from(t: TracesJson) -> Self {
        ExportTraceServiceRequest {
            resource_spans: t
                .resource_spans
                .into_iter()
                .map(|r| ResourceSpans {
                    resource: r.resource.map(Resource::from),
                    scope_spans: r
                        .scope_spans
                        .into_iter()
                        .map(|s| ScopeSpans {
                            scope: s.scope.map(InstrumentationScope::from),
                            spans: s.spans.into_iter().map(Span::from).collect(),
                            schema_url: s.schema_url,
                        })
                        .collect(),
                    schema_url: r.schema_url,
                })
                .collect(),
        }
    }
}

impl From<SpanJson> for Span {
    fn from(s: SpanJson) -> Self {
        Span {
            trace_id: s.trace_id,
            span_id: s.span_id,
            trace_state: s.trace_state,
            parent_span_id: s.parent_span_id,
            flags: s.flags,
            name: s.name,
            kind: s.kind,
            start_time_unix_nano: s.start_time_unix_nano,
            end_time_unix_nano: s.end_time_unix_nano,
            attributes: attributes(s.attributes),
            dropped_attributes_count: s.dropped_attributes_count,
            events: s
                .events
                .into_iter()
                .map(|e| span::Event {
                    time_unix_nano: e.time_unix_nano,
                    name: e.name,
                    attributes: attributes(e.attributes),
                    dropped_attributes_count: e.dropped_attributes_count,
                })
                .collect(),
            dropped_events_count: s.dropped_events_count,
            links: s
                .links
                .into_iter()
                .map(|l| span::Link {
                    trace_id: l.trace_id,
                    span_id: l.span_id,
                    trace_state: l.trace_state,
                    attributes: attributes(l.attributes),
                    dropped_attributes_count: l.dropped_attributes_count,
                    flags: l.flags,
                })
                .collect(),
            dropped_links_count: s.dropped_links_count,
            status: s.status.map(|st| Status {
                message: st.message,
                code: st.code,
            }),
        }
    }
}

// ------------------------------------------------------------------ logs

/// `ExportLogsServiceRequest`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct LogsJson {
    #[serde(alias = "resource_logs")]
    resource_logs: Vec<ResourceLogsJson>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ResourceLogsJson {
    resource: Option<ResourceJson>,
    #[serde(alias = "scope_logs")]
    scope_logs: Vec<ScopeLogsJson>,
    #[serde(alias = "schema_url")]
    schema_url: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ScopeLogsJson {
    scope: Option<ScopeJson>,
    #[serde(alias = "log_records")]
    log_records: Vec<LogRecordJson>,
    #[serde(alias = "schema_url")]
    schema_url: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct LogRecordJson {
    #[serde(alias = "time_unix_nano", deserialize_with = "u64_text")]
    time_unix_nano: u64,
    #[serde(alias = "observed_time_unix_nano", deserialize_with = "u64_text")]
    observed_time_unix_nano: u64,
    #[serde(alias = "severity_number", deserialize_with = "severity_number")]
    severity_number: i32,
    #[serde(alias = "severity_text")]
    severity_text: String,
    body: Option<AnyValueJson>,
    attributes: Vec<KeyValueJson>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: u32,
    flags: u32,
    #[serde(alias = "trace_id", deserialize_with = "hex")]
    trace_id: Vec<u8>,
    #[serde(alias = "span_id", deserialize_with = "hex")]
    span_id: Vec<u8>,
    #[serde(alias = "event_name")]
    event_name: String,
}

impl From<LogsJson> for ExportLogsServiceRequest {
    fn from(l: LogsJson) -> Self {
        ExportLogsServiceRequest {
            resource_logs: l
                .resource_logs
                .into_iter()
                .map(|r| ResourceLogs {
                    resource: r.resource.map(Resource::from),
                    scope_logs: r
                        .scope_logs
                        .into_iter()
                        .map(|s| ScopeLogs {
                            scope: s.scope.map(InstrumentationScope::from),
                            log_records: s
                                .log_records
                                .into_iter()
                                .map(|g| LogRecord {
                                    time_unix_nano: g.time_unix_nano,
                                    observed_time_unix_nano: g.observed_time_unix_nano,
                                    severity_number: g.severity_number,
                                    severity_text: g.severity_text,
                                    body: g.body.map(|b| b.0),
                                    attributes: attributes(g.attributes),
                                    dropped_attributes_count: g.dropped_attributes_count,
                                    flags: g.flags,
                                    trace_id: g.trace_id,
                                    span_id: g.span_id,
                                    event_name: g.event_name,
                                })
                                .collect(),
                            schema_url: s.schema_url,
                        })
                        .collect(),
                    schema_url: r.schema_url,
                })
                .collect(),
        }
    }
}
