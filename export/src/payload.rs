//! What is forwarded: one OTLP export request of one signal, counted in items (spans, log
//! records, metric data points) and measured in encoded bytes.
//!
//! A request is either built (a typed message: tailed records, pattern counters, a received
//! request the agent tagged or cut) or [`Payload::Encoded`]: the protobuf bytes an OTLP
//! receiver got, forwarded as they came. The second is the common case and costs the receiving
//! path nothing (no copy, no re-encoding; `Bytes` share the receiver's buffer). The sender
//! never merges messages: it concatenates their encodings, which for OTLP export requests
//! (one repeated field at the top) is the merged request.

use bytes::{Bytes, BytesMut};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric;
use prost::Message;
use serde::Serialize;

/// The three OTLP signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Spans.
    Traces,
    /// Log records.
    Logs,
    /// Metric data points.
    Metrics,
}

impl Signal {
    /// Every signal, in a fixed order (for counters).
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Logs, Signal::Metrics];

    /// `traces`, `logs` or `metrics`: the signal's name in OTLP paths and in counters.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Signal::Traces => 0,
            Signal::Logs => 1,
            Signal::Metrics => 2,
        }
    }
}

/// One export request to forward.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// Spans.
    Traces(ExportTraceServiceRequest),
    /// Log records.
    Logs(ExportLogsServiceRequest),
    /// Metrics.
    Metrics(ExportMetricsServiceRequest),
    /// A request of one signal, already encoded (see the module docs).
    Encoded(Encoded),
}

/// The protobuf encoding of an export request of one signal, with its item count (known to
/// whoever decoded it: counting again would mean decoding again).
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    signal: Signal,
    bytes: Bytes,
    items: u64,
}

impl Encoded {
    /// The encoding `bytes` of an `ExportTraceServiceRequest`, `ExportLogsServiceRequest` or
    /// `ExportMetricsServiceRequest` (by `signal`) holding `items` items.
    pub fn new(signal: Signal, bytes: Bytes, items: u64) -> Encoded {
        Encoded {
            signal,
            bytes,
            items,
        }
    }
}

impl Payload {
    /// Its signal.
    pub fn signal(&self) -> Signal {
        match self {
            Payload::Traces(_) => Signal::Traces,
            Payload::Logs(_) => Signal::Logs,
            Payload::Metrics(_) => Signal::Metrics,
            Payload::Encoded(e) => e.signal,
        }
    }

    /// Spans, log records or metric data points it holds: the unit drops and deliveries are
    /// counted in.
    pub fn items(&self) -> u64 {
        match self {
            Payload::Traces(r) => r
                .resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .map(|ss| ss.spans.len() as u64)
                .sum(),
            Payload::Logs(r) => r
                .resource_logs
                .iter()
                .flat_map(|rl| &rl.scope_logs)
                .map(|sl| sl.log_records.len() as u64)
                .sum(),
            Payload::Metrics(r) => r
                .resource_metrics
                .iter()
                .flat_map(|rm| &rm.scope_metrics)
                .flat_map(|sm| &sm.metrics)
                .map(|m| data_points(m.data.as_ref()))
                .sum(),
            Payload::Encoded(e) => e.items,
        }
    }

    /// Its size as sent (protobuf).
    pub fn encoded_len(&self) -> usize {
        match self {
            Payload::Traces(r) => r.encoded_len(),
            Payload::Logs(r) => r.encoded_len(),
            Payload::Metrics(r) => r.encoded_len(),
            Payload::Encoded(e) => e.bytes.len(),
        }
    }

    /// Whether it holds nothing to send.
    pub fn is_empty(&self) -> bool {
        match self {
            Payload::Traces(r) => r.resource_spans.is_empty(),
            Payload::Logs(r) => r.resource_logs.is_empty(),
            Payload::Metrics(r) => r.resource_metrics.is_empty(),
            Payload::Encoded(e) => e.bytes.is_empty(),
        }
    }

    /// Makes an [`Encoded`] payload a typed one (to edit it: tag its spans, say); a typed one
    /// is left as it is. Fails only on bytes that are not the signal's request.
    pub fn decode_in_place(&mut self) -> Result<(), prost::DecodeError> {
        let Payload::Encoded(e) = self else {
            return Ok(());
        };
        let bytes = e.bytes.clone();
        *self = match e.signal {
            Signal::Traces => Payload::Traces(ExportTraceServiceRequest::decode(bytes)?),
            Signal::Logs => Payload::Logs(ExportLogsServiceRequest::decode(bytes)?),
            Signal::Metrics => Payload::Metrics(ExportMetricsServiceRequest::decode(bytes)?),
        };
        Ok(())
    }

    /// Appends its encoding to `out`.
    fn encode_into(&self, out: &mut BytesMut) {
        // Encoding into a BytesMut grows it as needed: it cannot fail.
        let _ = match self {
            Payload::Traces(r) => r.encode(out),
            Payload::Logs(r) => r.encode(out),
            Payload::Metrics(r) => r.encode(out),
            Payload::Encoded(e) => {
                out.extend_from_slice(&e.bytes);
                Ok(())
            }
        };
    }
}

/// The body of one request carrying `payloads` (all of one signal): their encodings one after
/// the other, which protobuf reads as one request holding all their resources. A single
/// encoded payload is sent as it is, without a copy.
pub(crate) fn request_body<'a>(payloads: impl IntoIterator<Item = &'a Payload>) -> Bytes {
    let payloads: Vec<&Payload> = payloads.into_iter().collect();
    if let [Payload::Encoded(e)] = payloads.as_slice() {
        return e.bytes.clone();
    }
    let mut out = BytesMut::with_capacity(payloads.iter().map(|p| p.encoded_len()).sum());
    for payload in payloads {
        payload.encode_into(&mut out);
    }
    out.freeze()
}

fn data_points(data: Option<&metric::Data>) -> u64 {
    (match data {
        Some(metric::Data::Gauge(g)) => g.data_points.len(),
        Some(metric::Data::Sum(s)) => s.data_points.len(),
        Some(metric::Data::Histogram(h)) => h.data_points.len(),
        Some(metric::Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(metric::Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }) as u64
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    use super::*;

    fn traces(name: &str, spans: usize) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: (0..spans)
                        .map(|i| Span {
                            name: format!("{name}-{i}"),
                            span_id: vec![i as u8 + 1; 8],
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn a_request_of_several_payloads_is_their_merge_in_order() {
        let (a, b, c) = (traces("a", 2), traces("b", 1), traces("c", 3));
        let encoded = Payload::Encoded(Encoded::new(
            Signal::Traces,
            Bytes::from(b.encode_to_vec()),
            1,
        ));
        assert_eq!(encoded.items(), 1);
        assert_eq!(encoded.encoded_len(), b.encoded_len());
        let body = request_body([
            &Payload::Traces(a.clone()),
            &encoded,
            &Payload::Traces(c.clone()),
        ]);
        let merged = ExportTraceServiceRequest::decode(body).expect("one request");
        let mut want = a;
        want.resource_spans.extend(b.resource_spans);
        want.resource_spans.extend(c.resource_spans);
        assert_eq!(merged, want);
    }

    #[test]
    fn one_encoded_payload_is_sent_as_it_is_and_decodes_in_place() {
        let request = traces("x", 2);
        let bytes = Bytes::from(request.encode_to_vec());
        let mut payload = Payload::Encoded(Encoded::new(Signal::Traces, bytes.clone(), 2));
        let body = request_body([&payload]);
        // The same buffer, not a copy.
        assert_eq!(body.as_ptr(), bytes.as_ptr());
        payload.decode_in_place().expect("decodes");
        assert_eq!(payload, Payload::Traces(request));
        let mut wrong =
            Payload::Encoded(Encoded::new(Signal::Logs, Bytes::from_static(&[0xff]), 1));
        assert!(wrong.decode_in_place().is_err());
    }
}
