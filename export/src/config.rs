//! `[export]`: where and how to forward upstream, and the bounds of the buffer.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// `[export]` as written in the agent's configuration file. Every key has a default; an empty
/// `otlp_endpoint` turns forwarding off.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportConfig {
    /// The upstream OTLP receiver (an OpenTelemetry Collector, another agent):
    /// `http://host:4317` for gRPC, `http://host:4318` for HTTP/protobuf (the signal's path,
    /// `/v1/traces`, is appended as the OTLP exporters do); `https://` for TLS. Empty: off.
    pub otlp_endpoint: String,
    /// `grpc` or `http/protobuf` (the names of `OTEL_EXPORTER_OTLP_PROTOCOL`).
    pub protocol: String,
    /// Headers sent with every request (gRPC metadata), e.g. `authorization = "Bearer ..."`.
    pub headers: BTreeMap<String, String>,
    /// A PEM file with the CA certificate(s) the upstream's certificate is checked against
    /// (`https://` only). Unset: the public web roots.
    pub ca_file: Option<PathBuf>,
    /// Milliseconds one request may take, connection included, before it counts as failed
    /// (and is retried).
    pub timeout_ms: u64,
    /// Encoded bytes held for forwarding at once: requests on their way from the receivers,
    /// waiting, and being sent. What does not fit is dropped and counted, never waited for.
    pub buffer_bytes: usize,
    /// Consecutive waiting items of one signal are merged into one request up to this many
    /// encoded bytes (a larger single item is sent alone).
    pub max_request_bytes: usize,
    /// First wait after a failed request; doubled after each failure, with jitter.
    pub initial_backoff_ms: u64,
    /// Longest wait between two attempts (a longer `Retry-After` / `RetryInfo` is honoured).
    pub max_backoff_ms: u64,
    /// How long one request is retried before it is dropped and counted (`expired`).
    pub max_retry_ms: u64,
    /// How often the pattern counters (and incidents that changed) are sent.
    pub interval_ms: u64,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            otlp_endpoint: String::new(),
            protocol: "grpc".into(),
            headers: BTreeMap::new(),
            ca_file: None,
            // The OpenTelemetry SDK exporters' default request timeout.
            timeout_ms: 10_000,
            // Sixteen of the largest requests the receivers accept (4 MiB each).
            buffer_bytes: 64 * 1024 * 1024,
            max_request_bytes: 1024 * 1024,
            initial_backoff_ms: 500,
            max_backoff_ms: 30_000,
            // Five minutes: a Collector restart or a short network partition is ridden out;
            // beyond that, newer data is worth more than old.
            max_retry_ms: 300_000,
            interval_ms: 10_000,
        }
    }
}

/// The wire protocol towards the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    HttpProtobuf,
}

/// A validated `[export]`: forwarding is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSettings {
    /// The endpoint, without a trailing `/`.
    pub endpoint: String,
    /// The protocol.
    pub protocol: Protocol,
    /// Headers of every request (names lower-cased).
    pub headers: Vec<(String, String)>,
    /// The CA certificates in PEM, when `ca_file` is set.
    pub ca_pem: Option<Vec<u8>>,
    /// Request timeout.
    pub timeout: Duration,
    /// Bytes held at once.
    pub buffer_bytes: usize,
    /// Merge bound of one request.
    pub max_request_bytes: usize,
    /// First backoff.
    pub initial_backoff: Duration,
    /// Longest backoff.
    pub max_backoff: Duration,
    /// Retry horizon of one request.
    pub max_retry: Duration,
    /// Period of the pattern counters and incidents.
    pub interval: Duration,
}

/// A key of `[export]` with a value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("export.{key} = {value}: {why}")]
pub struct ExportConfigError {
    /// The key under `[export]`.
    pub key: String,
    /// The value as written (secrets are not repeated).
    pub value: String,
    /// What is wrong with it.
    pub why: String,
}

impl ExportConfig {
    /// Checks every key; `Ok(None)` when forwarding is off. Reads `ca_file`.
    pub fn validate(&self) -> Result<Option<ExportSettings>, ExportConfigError> {
        let invalid = |key: &str, value: &str, why: &str| ExportConfigError {
            key: key.to_owned(),
            value: format!("{value:?}"),
            why: why.to_owned(),
        };
        let endpoint = self.otlp_endpoint.trim().trim_end_matches('/');
        if endpoint.is_empty() {
            return Ok(None);
        }
        let Some(rest) = endpoint
            .strip_prefix("http://")
            .or_else(|| endpoint.strip_prefix("https://"))
        else {
            return Err(invalid(
                "otlp_endpoint",
                endpoint,
                "must start with http:// or https:// (https for TLS)",
            ));
        };
        if rest.is_empty() || rest.starts_with('/') || rest.contains(char::is_whitespace) {
            return Err(invalid(
                "otlp_endpoint",
                endpoint,
                "must name a host, like http://collector:4317",
            ));
        }
        let protocol = match self.protocol.as_str() {
            "grpc" => Protocol::Grpc,
            "http/protobuf" => Protocol::HttpProtobuf,
            other => {
                return Err(invalid(
                    "protocol",
                    other,
                    "must be \"grpc\" or \"http/protobuf\"",
                ))
            }
        };
        if protocol == Protocol::Grpc && rest.contains('/') {
            return Err(invalid(
                "otlp_endpoint",
                endpoint,
                "a gRPC endpoint has no path: use http://host:port",
            ));
        }
        let mut headers = Vec::new();
        for (name, value) in &self.headers {
            let lower = name.to_ascii_lowercase();
            let valid_name = !lower.is_empty()
                && lower
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !valid_name {
                return Err(invalid(
                    &format!("headers.{name}"),
                    "<value>",
                    "a header name is letters, digits, '-', '_' or '.'",
                ));
            }
            if value.bytes().any(|b| b < 0x20 || b == 0x7f) {
                // The value is not repeated: it is usually a credential.
                return Err(invalid(
                    &format!("headers.{name}"),
                    "<value>",
                    "a header value cannot hold control characters",
                ));
            }
            headers.push((lower, value.clone()));
        }
        let ca_pem = match &self.ca_file {
            None => None,
            Some(path) => {
                let shown = path.display().to_string();
                if !endpoint.starts_with("https://") {
                    return Err(invalid(
                        "ca_file",
                        &shown,
                        "is only used with an https:// otlp_endpoint",
                    ));
                }
                let pem = crate::read_bounded(path, MAX_CA_FILE_BYTES)
                    .map_err(|e| invalid("ca_file", &shown, &format!("cannot be read: {e}")))?;
                if !pem
                    .windows(b"-----BEGIN CERTIFICATE-----".len())
                    .any(|w| w == b"-----BEGIN CERTIFICATE-----")
                {
                    return Err(invalid(
                        "ca_file",
                        &shown,
                        "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    ));
                }
                Some(pem)
            }
        };
        for (key, value) in [
            ("timeout_ms", self.timeout_ms),
            ("buffer_bytes", self.buffer_bytes as u64),
            ("max_request_bytes", self.max_request_bytes as u64),
            ("initial_backoff_ms", self.initial_backoff_ms),
            ("max_backoff_ms", self.max_backoff_ms),
            ("interval_ms", self.interval_ms),
        ] {
            if value == 0 {
                return Err(invalid(key, "0", "must be at least 1"));
            }
        }
        if self.max_backoff_ms < self.initial_backoff_ms {
            return Err(invalid(
                "max_backoff_ms",
                &self.max_backoff_ms.to_string(),
                "must be at least initial_backoff_ms",
            ));
        }
        Ok(Some(ExportSettings {
            endpoint: endpoint.to_owned(),
            protocol,
            headers,
            ca_pem,
            timeout: Duration::from_millis(self.timeout_ms),
            buffer_bytes: self.buffer_bytes,
            max_request_bytes: self.max_request_bytes,
            initial_backoff: Duration::from_millis(self.initial_backoff_ms),
            max_backoff: Duration::from_millis(self.max_backoff_ms),
            max_retry: Duration::from_millis(self.max_retry_ms),
            interval: Duration::from_millis(self.interval_ms),
        }))
    }
}

/// Most bytes of a CA bundle: far above any real bundle.
const MAX_CA_FILE_BYTES: u64 = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    fn with(endpoint: &str, protocol: &str) -> ExportConfig {
        ExportConfig {
            otlp_endpoint: endpoint.into(),
            protocol: protocol.into(),
            ..ExportConfig::default()
        }
    }

    #[test]
    fn an_empty_endpoint_is_off_and_a_bad_one_names_the_key() {
        assert_eq!(ExportConfig::default().validate(), Ok(None));
        let err = with("collector:4317", "grpc").validate().unwrap_err();
        assert_eq!(err.key, "otlp_endpoint");
        let err = with("http://c:4317", "http/json").validate().unwrap_err();
        assert_eq!(err.key, "protocol");
        let err = with("http://c:4317/v1", "grpc").validate().unwrap_err();
        assert_eq!(err.key, "otlp_endpoint");
        let ok = with("https://c:4318/", "http/protobuf")
            .validate()
            .expect("valid")
            .expect("on");
        assert_eq!(ok.endpoint, "https://c:4318");
        assert_eq!(ok.protocol, Protocol::HttpProtobuf);
    }

    #[test]
    fn a_header_with_a_newline_is_refused_without_repeating_it() {
        let mut config = with("http://c:4317", "grpc");
        config
            .headers
            .insert("Authorization".into(), "Bearer x\r\nX-Evil: 1".into());
        let err = config.validate().unwrap_err();
        assert_eq!(err.key, "headers.Authorization");
        assert!(!err.to_string().contains("Bearer"), "{err}");
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = std::env::temp_dir().join(format!("faultline-export-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("ca.pem");
        std::fs::write(&path, "not a certificate").expect("write");
        let mut config = with("https://c:4317", "grpc");
        config.ca_file = Some(path.clone());
        let err = config.validate().unwrap_err();
        assert_eq!(err.key, "ca_file");
        assert!(err.why.contains("no PEM certificate"), "{err}");
        config.otlp_endpoint = "http://c:4317".into();
        assert_eq!(config.validate().unwrap_err().key, "ca_file");
        let _ = std::fs::remove_dir_all(dir);
    }
}
