//! What is forwarded: one OTLP export request of one signal, counted in items (spans, log
//! records, metric data points) and measured in encoded bytes.

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
}

impl Payload {
    /// Its signal.
    pub fn signal(&self) -> Signal {
        match self {
            Payload::Traces(_) => Signal::Traces,
            Payload::Logs(_) => Signal::Logs,
            Payload::Metrics(_) => Signal::Metrics,
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
        }
    }

    /// Its size as sent (protobuf).
    pub fn encoded_len(&self) -> usize {
        match self {
            Payload::Traces(r) => r.encoded_len(),
            Payload::Logs(r) => r.encoded_len(),
            Payload::Metrics(r) => r.encoded_len(),
        }
    }

    /// Whether it holds nothing to send.
    pub fn is_empty(&self) -> bool {
        match self {
            Payload::Traces(r) => r.resource_spans.is_empty(),
            Payload::Logs(r) => r.resource_logs.is_empty(),
            Payload::Metrics(r) => r.resource_metrics.is_empty(),
        }
    }

    /// Appends `other` to this request when both are of the same signal (the resources of
    /// both, one after the other); gives `other` back otherwise.
    pub(crate) fn merge(&mut self, other: Payload) -> Result<(), Payload> {
        match (self, other) {
            (Payload::Traces(a), Payload::Traces(b)) => a.resource_spans.extend(b.resource_spans),
            (Payload::Logs(a), Payload::Logs(b)) => a.resource_logs.extend(b.resource_logs),
            (Payload::Metrics(a), Payload::Metrics(b)) => {
                a.resource_metrics.extend(b.resource_metrics)
            }
            (_, other) => return Err(other),
        }
        Ok(())
    }
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
