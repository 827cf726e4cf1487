//! `GET /metrics`: the views in the Prometheus text exposition format (0.0.4), written by
//! `prometheus-client`'s encoder, so that each agent can be scraped and fleet-wide questions
//! become `sum by (cluster_id)`.
//!
//! Execution model: one [`Metrics`] registry is built with the router. Its collectors hold the
//! views and read them at each scrape (on a blocking thread: a scrape reads every store);
//! nothing is sampled in between. What each collector exports, and its bound:
//!
//! - [`patterns`]: the error patterns, labelled by stable cluster id only (plus the canonical
//!   template as an info gauge), so they join across nodes and restarts. At most
//!   [`MetricsOptions::max_pattern_series`] patterns get series of their own, kept until the
//!   pattern is evicted; the others are summed in `cluster_id="other"`.
//! - [`node`]: the node counters, current values only (Prometheus keeps the history); it reads
//!   [`crate::model::CounterView::current`], not the history. A failing source or task target
//!   has no value sample but an `_up 0` one, never a 0 that would read as "no sockets".
//! - [`diagnosis`]: incidents by culprit and hint, counter anomalies by series kind.
//! - the stores' own counters (`faultline_store_*`), as each view reports them.

mod diagnosis;
mod node;
mod patterns;

use std::fmt;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    prometheus_text, CounterValueEncoder, DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue,
    EncodeLabelSet, EncodeMetric, GaugeValueEncoder,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::model::{StoreCounter, Views};
use crate::{ApiError, Shared};

/// How `/metrics` exports, set by the binary from its configuration (`[web]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsOptions {
    /// Most error patterns with series of their own (`web.max_pattern_series`). A pattern
    /// keeps its series until it is evicted from the cluster store; patterns beyond the bound
    /// are summed in `cluster_id="other"`. Each pattern costs four series.
    pub max_pattern_series: usize,
}

impl Default for MetricsOptions {
    /// 500 patterns: 2,000 pattern series per agent, well within what one Prometheus target
    /// should carry (the rest of `/metrics` is a few hundred series).
    fn default() -> Self {
        MetricsOptions {
            max_pattern_series: 500,
        }
    }
}

/// The registry `/metrics` encodes: one collector per source of figures.
pub(crate) struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// The collectors over `views`.
    pub(crate) fn new(views: &Views, options: MetricsOptions) -> Metrics {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(patterns::PatternCollector::new(
            views.clusters.clone(),
            options.max_pattern_series,
        )));
        registry.register_collector(Box::new(node::NodeCollector::new(views.counters.clone())));
        registry.register_collector(Box::new(diagnosis::DiagnosisCollector::new(
            views.diagnosis.clone(),
        )));
        registry.register_collector(Box::new(StoreCollector {
            views: views.clone(),
        }));
        Metrics { registry }
    }

    /// Reads every view and writes the text exposition.
    pub(crate) fn render(&self) -> Result<String, fmt::Error> {
        let mut out = String::with_capacity(64 * 1024);
        prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// The stores' own counters (evictions, drops, sizes) as `faultline_store_<name>`: a counter
/// when the name ends in `_total`, a gauge otherwise.
struct StoreCollector {
    views: Views,
}

impl fmt::Debug for StoreCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreCollector").finish_non_exhaustive()
    }
}

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let mut store: Vec<StoreCounter> = self.views.clusters.store_counters();
        store.extend(self.views.traces.store_counters());
        store.extend(self.views.counters.store_counters());
        for s in store {
            let valid = !s.name.is_empty()
                && s.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid {
                continue;
            }
            // The encoder writes a counter's `_total` itself.
            let (name, kind) = match s.name.strip_suffix("_total") {
                Some(stem) => (format!("faultline_store_{stem}"), MetricType::Counter),
                None => (format!("faultline_store_{}", s.name), MetricType::Gauge),
            };
            single(&mut encoder, &name, &s.help, kind, Value::from(s.value))?;
        }
        Ok(())
    }
}

/// A sample value: whole numbers are written as integers (`49`, not `49.0`), the rest as
/// floats (`NaN`, `+Inf` spelled Prometheus' way by the encoder).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value {
    /// A whole number.
    Int(i64),
    /// Anything else.
    Float(f64),
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        // Integers beyond 2^53 are not exact in an f64 anyway.
        if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
            Value::Int(v as i64)
        } else {
            Value::Float(v)
        }
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        i64::try_from(v).map_or(Value::Float(v as f64), Value::Int)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::from(v as u64)
    }
}

impl EncodeGaugeValue for Value {
    fn encode(&self, encoder: &mut GaugeValueEncoder) -> fmt::Result {
        match self {
            Value::Int(v) => EncodeGaugeValue::encode(v, encoder),
            Value::Float(v) => EncodeGaugeValue::encode(v, encoder),
        }
    }
}

impl EncodeCounterValue for Value {
    fn encode(&self, encoder: &mut CounterValueEncoder) -> fmt::Result {
        match *self {
            Value::Int(v) if v >= 0 => EncodeCounterValue::encode(&(v as u64), encoder),
            Value::Int(v) => EncodeCounterValue::encode(&(v as f64), encoder),
            Value::Float(v) => EncodeCounterValue::encode(&v, encoder),
        }
    }
}

/// Writes one metric family: its HELP and TYPE, then one sample per label set. `name` of a
/// counter is given without `_total` (the encoder adds it).
pub(crate) fn family<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (L, Value)>,
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        let sample = metric.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(value).encode(sample)?,
            _ => ConstGauge::new(value).encode(sample)?,
        }
    }
    Ok(())
}

/// Writes a metric of one sample without labels.
pub(crate) fn single(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    value: Value,
) -> fmt::Result {
    let metric = encoder.encode_descriptor(name, help, None, kind)?;
    match kind {
        MetricType::Counter => ConstCounter::new(value).encode(metric),
        _ => ConstGauge::new(value).encode(metric),
    }
}

/// `GET /metrics`.
pub(crate) async fn get(State(shared): State<Shared>) -> Result<Response, ApiError> {
    let metrics: Arc<Metrics> = shared.metrics()?.clone();
    let body = tokio::task::spawn_blocking(move || metrics.render())
        .await
        .map_err(|err| ApiError::internal(format!("metrics rendering failed: {err}")))?
        .map_err(|_| ApiError::internal("metrics rendering failed"))?;
    Ok(([(CONTENT_TYPE, prometheus_text::CONTENT_TYPE)], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_are_written_as_integers() {
        assert_eq!(Value::from(49.0), Value::Int(49));
        assert_eq!(Value::from(0.25), Value::Float(0.25));
        assert!(matches!(Value::from(f64::NAN), Value::Float(v) if v.is_nan()));
        assert_eq!(Value::from(u64::MAX), Value::Float(u64::MAX as f64));
    }
}
