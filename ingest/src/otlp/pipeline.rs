//! What both transports do with a decoded export request: admit it (bounded concurrency),
//! convert it, reserve room downstream, then apply it — spans into the trace store, records
//! into the log queue, task counts into their sink. A request is either refused whole with a
//! retryable error before anything happened, or applied; so an acknowledged span is in the
//! store when the answer leaves.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::OtlpConfig;
use super::convert::{convert_logs, convert_metrics, convert_traces};
use super::error::OtlpError;
use super::sink::{LogQueueError, LogReservation, LogSender, TaskCounterSink};
use crate::traces::TraceStore;

/// Where the receivers deliver: the trace store, the log queue towards clustering, and the
/// task-counter sink.
#[derive(Clone)]
pub struct OtlpOutputs {
    /// Spans go here (and OTLP logs that carry a trace id are attached here too).
    pub store: Arc<TraceStore>,
    /// OTLP log records and error-span records go here, for clustering.
    pub logs: LogSender,
    /// Goroutine and thread counts go here.
    pub tasks: Arc<dyn TaskCounterSink>,
}

/// Counters of the receivers since start, for `/metrics` and the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtlpStats {
    /// Export requests answered with success (including partial success).
    pub requests_accepted: u64,
    /// Requests refused as malformed, too large or over a limit.
    pub requests_invalid: u64,
    /// Requests refused with a retryable error because the receiver was at capacity.
    pub requests_throttled: u64,
    /// Requests being read or applied right now (at most `max_concurrent_requests`).
    pub requests_in_flight: u64,
    /// Spans stored.
    pub spans_accepted: u64,
    /// Spans rejected (invalid ids, trace full) and reported as partial success.
    pub spans_rejected: u64,
    /// Log records queued for clustering.
    pub logs_accepted: u64,
    /// Log records rejected (invalid ids) and reported as partial success.
    pub logs_rejected: u64,
    /// Goroutine / thread data points passed to the task counters.
    pub task_points: u64,
    /// Other metric data points: accepted, counted here, and dropped.
    pub metric_points_dropped: u64,
}

#[derive(Default)]
struct Counters {
    requests_accepted: AtomicU64,
    requests_invalid: AtomicU64,
    requests_throttled: AtomicU64,
    spans_accepted: AtomicU64,
    spans_rejected: AtomicU64,
    logs_accepted: AtomicU64,
    logs_rejected: AtomicU64,
    task_points: AtomicU64,
    metric_points_dropped: AtomicU64,
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

/// The answer to an applied request: how many items were rejected, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Accepted {
    pub rejected: i64,
    pub message: String,
}

impl Accepted {
    fn new(rejected: usize, message: Option<String>) -> Self {
        Accepted {
            rejected: i64::try_from(rejected).unwrap_or(i64::MAX),
            message: if rejected > 0 {
                message.unwrap_or_default()
            } else {
                String::new()
            },
        }
    }
}

pub(crate) struct Pipeline {
    pub config: OtlpConfig,
    outputs: OtlpOutputs,
    requests: Arc<Semaphore>,
    max_requests: usize,
    counters: Counters,
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Pipeline {
    pub fn new(config: OtlpConfig, outputs: OtlpOutputs) -> Self {
        let permits = config
            .max_concurrent_requests
            .clamp(1, Semaphore::MAX_PERMITS);
        Pipeline {
            config,
            outputs,
            requests: Arc::new(Semaphore::new(permits)),
            max_requests: permits,
            counters: Counters::default(),
        }
    }

    fn overloaded(&self, what: &str) -> OtlpError {
        self.counters
            .requests_throttled
            .fetch_add(1, Ordering::Relaxed);
        OtlpError::Overloaded(what.to_owned(), self.config.retry_after_secs)
    }

    /// A slot for decoding one request, or the retryable error when all are busy. Taken
    /// before the body is read, so memory is bounded by slots times the size limits.
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, OtlpError> {
        self.requests
            .clone()
            .try_acquire_owned()
            .map_err(|_| self.overloaded("too many concurrent export requests"))
    }

    /// Counts a request refused before it reached `traces`/`logs`/`metrics`.
    pub fn note_invalid(&self) {
        self.counters
            .requests_invalid
            .fetch_add(1, Ordering::Relaxed);
    }

    fn reserve(&self, count: usize) -> Result<LogReservation, OtlpError> {
        self.outputs.logs.reserve(count).map_err(|e| match e {
            LogQueueError::Full => self.overloaded("the log queue towards clustering is full"),
            LogQueueError::Closed => self.overloaded("the agent is shutting down"),
        })
    }

    fn finish<T>(&self, result: Result<T, OtlpError>) -> Result<T, OtlpError> {
        match &result {
            Ok(_) => add(&self.counters.requests_accepted, 1),
            Err(e) if !e.is_retryable() => self.note_invalid(),
            Err(_) => {}
        }
        result
    }

    pub fn traces(&self, request: ExportTraceServiceRequest) -> Result<Accepted, OtlpError> {
        let result = (|| {
            let batch = convert_traces(request, &self.config, now_nanos())?;
            let reservation = self.reserve(batch.error_records.len())?;
            let outcome = self.outputs.store.insert_spans(batch.spans);
            self.outputs.logs.send(reservation, batch.error_records);
            let rejected = batch.rejected + outcome.refused;
            add(&self.counters.spans_accepted, outcome.stored);
            add(&self.counters.spans_rejected, rejected);
            let message = batch.rejection.or_else(|| {
                (outcome.refused > 0).then(|| {
                    format!(
                        "{} spans refused: their trace already holds max_spans_per_trace = {} spans",
                        outcome.refused,
                        self.outputs.store.config().max_spans_per_trace
                    )
                })
            });
            Ok(Accepted::new(rejected, message))
        })();
        self.finish(result)
    }

    pub fn logs(&self, request: ExportLogsServiceRequest) -> Result<Accepted, OtlpError> {
        let result = (|| {
            let batch = convert_logs(request, &self.config, now_nanos())?;
            let reservation = self.reserve(batch.records.len())?;
            let traced: Vec<_> = batch
                .records
                .iter()
                .filter(|r| r.trace_id.is_some())
                .cloned()
                .collect();
            self.outputs.store.attach_logs(traced);
            add(&self.counters.logs_accepted, batch.records.len());
            add(&self.counters.logs_rejected, batch.rejected);
            self.outputs.logs.send(reservation, batch.records);
            Ok(Accepted::new(batch.rejected, batch.rejection))
        })();
        self.finish(result)
    }

    pub fn metrics(&self, request: ExportMetricsServiceRequest) -> Result<Accepted, OtlpError> {
        let batch = convert_metrics(request, &self.config);
        add(&self.counters.task_points, batch.samples.len());
        add(&self.counters.metric_points_dropped, batch.ignored_points);
        for sample in batch.samples {
            self.outputs.tasks.record(sample);
        }
        self.finish(Ok(Accepted::default()))
    }

    pub fn stats(&self) -> OtlpStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        OtlpStats {
            requests_accepted: get(&c.requests_accepted),
            requests_invalid: get(&c.requests_invalid),
            requests_throttled: get(&c.requests_throttled),
            requests_in_flight: self
                .max_requests
                .saturating_sub(self.requests.available_permits())
                as u64,
            spans_accepted: get(&c.spans_accepted),
            spans_rejected: get(&c.spans_rejected),
            logs_accepted: get(&c.logs_accepted),
            logs_rejected: get(&c.logs_rejected),
            task_points: get(&c.task_points),
            metric_points_dropped: get(&c.metric_points_dropped),
        }
    }
}
