//! JSON lines: zap, logrus' JSONFormatter, slog's JSONHandler, and any flat JSON object.
//!
//! The object is read with a streaming visitor that keeps the keys in the order the record
//! gave them and borrows strings that need no unescaping, so a typical zap line costs one
//! pass and a handful of small allocations. Nested objects and arrays are kept as compact JSON
//! text in an attribute.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::fields::{classify, Draft, Field};

/// One JSON value, reduced to what a log record needs: its text.
struct Text<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Text(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Text(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Text(Cow::Owned(v)))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Text(Cow::Borrowed(if v { "true" } else { "false" })))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Text(Cow::Owned(v.to_string())))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Text(Cow::Owned(v.to_string())))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Text(Cow::Owned(v.to_string())))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Text(Cow::Borrowed("")))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let value: serde_json::Value =
            de::Deserialize::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Text(Cow::Owned(value.to_string())))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let value: serde_json::Value =
            de::Deserialize::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(Text(Cow::Owned(value.to_string())))
    }
}

/// The top-level object, streamed into a [`Draft`].
struct Record<'p> {
    draft: &'p mut Draft,
    naive_offset_secs: i64,
}

impl<'de> de::DeserializeSeed<'de> for Record<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Record<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Text<'de>>()? {
            let key = key.0;
            // zap writes `ts` as a float of epoch seconds: read the number exactly as written.
            if classify(&key) == Some(Field::Time) {
                let value: serde_json::Value = map.next_value()?;
                match value {
                    serde_json::Value::Number(n) if self.draft.time_unix_nanos.is_none() => {
                        self.draft.time_unix_nanos = n.as_f64().and_then(super::time::epoch_float);
                        if self.draft.time_unix_nanos.is_none() {
                            self.draft
                                .attributes
                                .push((key.into_owned(), n.to_string()));
                        }
                    }
                    serde_json::Value::String(s) => {
                        self.draft.field(key, Cow::Owned(s), self.naive_offset_secs);
                    }
                    other => self
                        .draft
                        .attributes
                        .push((key.into_owned(), other.to_string())),
                }
                continue;
            }
            let value: Text<'de> = map.next_value()?;
            self.draft.field(key, value.0, self.naive_offset_secs);
        }
        Ok(())
    }
}

/// Parses a JSON object line into `draft`. Returns `false` (and leaves `draft` unusable) when
/// the line is not a JSON object, even after [`repair`].
pub(crate) fn parse(line: &str, draft: &mut Draft, naive_offset_secs: i64) -> bool {
    if parse_strict(line, draft, naive_offset_secs) {
        return true;
    }
    let Some(repaired) = repair(line) else {
        return false;
    };
    *draft = Draft::default();
    parse_strict(&repaired, draft, naive_offset_secs)
}

/// A flat object line made valid, for loggers that build JSON by hand: a quote inside a
/// string value that is not followed by `,"` or `}` is escaped (`"error":"Get "http://a/x":
/// EOF"` keeps its whole value), and a line cut inside a value keeps the keys and values up
/// to the cut. `None` when nothing can be salvaged (no complete key, text after the object).
fn repair(line: &str) -> Option<String> {
    let b = line.trim().as_bytes();
    let text = line.trim();
    if !b.starts_with(b"{") {
        return None;
    }
    let skip_ws = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let mut out = String::with_capacity(text.len() + 8);
    out.push('{');
    let mut i = 1;
    let mut pairs = 0;
    loop {
        i = skip_ws(i);
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(b, i + 1)?;
        let colon = skip_ws(key_end + 1);
        if b.get(colon) != Some(&b':') {
            return None;
        }
        let value = skip_ws(colon + 1);
        let pair_start = out.len();
        out.push_str(&text[i..=key_end]);
        out.push(':');
        let next = if b.get(value) == Some(&b'"') {
            // The closing quote is the first one the object can go on after.
            let mut close = None;
            let mut j = value + 1;
            while let Some(q) = string_end(b, j) {
                let after = skip_ws(q + 1);
                let goes_on = match b.get(after) {
                    Some(b',') => b.get(skip_ws(after + 1)) == Some(&b'"'),
                    Some(b'}') => skip_ws(after + 1) == b.len(),
                    _ => false,
                };
                if goes_on {
                    close = Some(q);
                    break;
                }
                j = q + 1;
            }
            let (end, cut) = match close {
                Some(q) => (q, false),
                // Cut inside the value: keep it up to its first quote or the end.
                None => (string_end(b, value + 1).unwrap_or(b.len()), true),
            };
            push_escaped(&mut out, &text[value + 1..end]);
            out.push('"');
            if cut {
                pairs += 1;
                break;
            }
            end + 1
        } else {
            // A number, literal or nested value: up to the next `,` or `}` outside brackets.
            let mut depth = 0i32;
            let mut j = value;
            while j < b.len() {
                match b[j] {
                    b'"' => j = string_end(b, j + 1)?,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' if depth > 0 => depth -= 1,
                    b',' | b'}' if depth == 0 => break,
                    _ => {}
                }
                j += 1;
            }
            if j == value || j >= b.len() {
                out.truncate(pair_start);
                break;
            }
            out.push_str(text[value..j].trim_end());
            j
        };
        pairs += 1;
        i = skip_ws(next);
        match b.get(i) {
            Some(b',') => {
                out.push(',');
                i += 1;
            }
            Some(b'}') if skip_ws(i + 1) == b.len() => break,
            _ => return None,
        }
    }
    if pairs == 0 {
        return None;
    }
    if out.ends_with(',') {
        out.pop();
    }
    out.push('}');
    Some(out)
}

/// Appends `"value` (no closing quote) with the value's unescaped quotes escaped.
fn push_escaped(out: &mut String, value: &str) {
    out.push('"');
    let mut escaped = false;
    for c in value.chars() {
        if c == '"' && !escaped {
            out.push('\\');
        }
        escaped = c == '\\' && !escaped;
        out.push(c);
    }
}

/// The index of the quote that ends the JSON string starting at `from` (after its opening
/// quote), honouring backslash escapes.
fn string_end(b: &[u8], from: usize) -> Option<usize> {
    let mut j = from;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return Some(j),
            _ => j += 1,
        }
    }
    None
}

fn parse_strict(line: &str, draft: &mut Draft, naive_offset_secs: i64) -> bool {
    let mut de = serde_json::Deserializer::from_str(line);
    let seed = Record {
        draft,
        naive_offset_secs,
    };
    de::DeserializeSeed::deserialize(seed, &mut de).is_ok() && de.end().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Level;

    #[test]
    fn zap_line_fills_the_fields_in_order() {
        let line = r#"{"level":"warn","ts":1710145337.6942563,"caller":"api/billing.go:193","msg":"request failed","trace_id":"8798a302751390bcb2b359b9161260fa","span_id":"878c92abc4c3678b","user_id":1044272,"nested":{"a":[1,2]},"error":"billing handler: http: Handler timeout"}"#;
        let mut d = Draft::default();
        assert!(parse(line, &mut d, 0));
        assert_eq!(d.level, Some(Level::Warn));
        assert_eq!(d.message.as_deref(), Some("request failed"));
        assert_eq!(
            d.error.as_deref(),
            Some("billing handler: http: Handler timeout")
        );
        assert_eq!(
            d.time_unix_nanos.map(|n| n / 1_000_000),
            Some(1_710_145_337_694)
        );
        assert_eq!(
            d.trace_id.map(|t| t.to_string()).as_deref(),
            Some("8798a302751390bcb2b359b9161260fa")
        );
        let keys: Vec<&str> = d.attributes.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["caller", "user_id", "nested"]);
        assert_eq!(d.attributes[2].1, r#"{"a":[1,2]}"#);
    }

    #[test]
    fn a_value_broken_by_an_unescaped_quote_is_salvaged() {
        let line = r#"{"level":"error","error":"Get "http://u:80/x": EOF","service":"user-svc"}"#;
        let mut d = Draft::default();
        assert!(parse(line, &mut d, 0));
        assert_eq!(d.level, Some(Level::Error));
        assert_eq!(d.error.as_deref(), Some(r#"Get "http://u:80/x": EOF"#));
        assert_eq!(d.service.as_deref(), Some("user-svc"));
        // Cut inside a value: the keys and values up to the cut.
        let mut d = Draft::default();
        assert!(parse(r#"{"level":"warn","msg":"disk "sda" is"#, &mut d, 0));
        assert_eq!(d.level, Some(Level::Warn));
        assert_eq!(d.message.as_deref(), Some("disk "));
    }

    #[test]
    fn not_an_object_is_refused() {
        for line in [
            "{",
            "[1,2]",
            r#"{"a":1} trailing"#,
            r#"{"a":}"#,
            "{\"a\":\"\\ud800\"}",
        ] {
            assert!(!parse(line, &mut Draft::default(), 0), "{line}");
        }
    }
}
