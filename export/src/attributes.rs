//! The attributes faultline adds to what it forwards: the names a Collector, Loki or Tempo
//! query groups by, and the tags of one error record.

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};

/// The error pattern (cluster) of an error log or span: a content hash, equal on every node.
pub const CLUSTER_ID: &str = "faultline.cluster_id";
/// The exact masked shape (template) of an error log or span: a content hash.
pub const TEMPLATE_ID: &str = "faultline.template_id";
/// The incident the record's pattern belongs to, when the diagnosis grouped it into one.
pub const INCIDENT_ID: &str = "faultline.incident_id";
/// The service the incident (or the pattern) is blamed on, when one is known.
pub const CULPRIT: &str = "faultline.culprit";

/// What the agent knows of one error record's pattern, added to its forwarded span or log
/// record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatternTags {
    /// [`CLUSTER_ID`].
    pub cluster_id: Option<String>,
    /// [`TEMPLATE_ID`].
    pub template_id: Option<String>,
    /// [`INCIDENT_ID`].
    pub incident_id: Option<String>,
    /// [`CULPRIT`].
    pub culprit: Option<String>,
}

/// A string attribute.
pub fn string_attribute(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

impl PatternTags {
    /// Whether there is nothing to add.
    pub fn is_empty(&self) -> bool {
        self.cluster_id.is_none()
            && self.template_id.is_none()
            && self.incident_id.is_none()
            && self.culprit.is_none()
    }

    /// Sets the known tags on `attributes`. A `faultline.*` attribute a sender wrote itself is
    /// replaced: only the agent says which pattern a record belongs to.
    pub fn apply(&self, attributes: &mut Vec<KeyValue>) {
        for (key, value) in [
            (CLUSTER_ID, &self.cluster_id),
            (TEMPLATE_ID, &self.template_id),
            (INCIDENT_ID, &self.incident_id),
            (CULPRIT, &self.culprit),
        ] {
            let Some(value) = value else { continue };
            attributes.retain(|kv| kv.key != key);
            attributes.push(string_attribute(key, value.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_replace_what_a_sender_wrote() {
        let mut attributes = vec![
            string_attribute("http.route", "/x"),
            string_attribute(CLUSTER_ID, "spoofed"),
        ];
        PatternTags {
            cluster_id: Some("c1".into()),
            template_id: Some("t1".into()),
            ..PatternTags::default()
        }
        .apply(&mut attributes);
        let keys: Vec<&str> = attributes.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["http.route", CLUSTER_ID, TEMPLATE_ID]);
        assert_eq!(attributes[1], string_attribute(CLUSTER_ID, "c1"));
    }
}
