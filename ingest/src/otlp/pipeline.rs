//! What both transports do with an export request: read its body (bounded in time and in
//! bytes held per transport), admit it (bounded concurrency per transport, taken only once
//! the body is there), inflate it (bounded by one decompressed-bytes budget over both
//! transports), convert it, reserve room downstream, then apply it — spans into the trace
//! store, records into the log queue, task counts into their sink. A request is either
//! refused whole with a retryable error before anything happened, or applied; so an
//! acknowledged span is in the store when the answer leaves.
//!
//! Why the slot comes after the body: 64 stalled OTLP/HTTP uploads, each holding a slot
//! while waiting for bytes that never came, shut out every other sender of both transports
//! for as long as they stalled. Now a slow sender holds only the bytes it sent (charged to its
//! transport's budget) until the body-read timeout, and never a slot.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::BodyExt;

use faultline_export::{Encoded, Payload, Pending, Reservation, Signal};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::budget::{ByteBudget, Held};
use super::config::OtlpConfig;
use super::convert::{convert_logs, convert_metrics, convert_traces, data_points, Cut};
use super::error::OtlpError;
use super::forward::{accepted_logs, accepted_traces, logs_kept_whole, traces_kept_whole};
use super::sink::{DiscardTaskCounters, LogQueueError, LogReservation, LogSender, TaskCounterSink};
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

impl OtlpOutputs {
    /// Spans into `store`, records into `logs`, and the task counts dropped: for receivers
    /// whose OTLP metrics nobody reads (benchmarks, tests, fuzzing).
    pub fn discarding_tasks(store: Arc<TraceStore>, logs: LogSender) -> OtlpOutputs {
        OtlpOutputs {
            store,
            logs,
            tasks: Arc::new(DiscardTaskCounters),
        }
    }
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
    /// Requests refused because their body did not arrive within `body_read_timeout_ms`.
    pub requests_timed_out: u64,
    /// Requests refused because they carried no bearer token or not `otlp.token`.
    pub requests_unauthenticated: u64,
    /// Requests decoded or applied right now, both transports together (at most
    /// `max_concurrent_requests` each).
    pub requests_in_flight: u64,
    /// Body bytes held right now by requests still arriving or being decoded, both
    /// transports together (at most `max_body_bytes_in_flight` each).
    pub body_bytes_in_flight: u64,
    /// The most decompressed bytes held at once since start (at most
    /// `max_decompressed_bytes_in_flight`).
    pub decompressed_bytes_high_water: u64,
    /// Spans stored.
    pub spans_accepted: u64,
    /// Spans rejected (invalid ids, trace full) and reported as partial success.
    pub spans_rejected: u64,
    /// Log records queued for clustering.
    pub logs_accepted: u64,
    /// Log records rejected (invalid ids) and reported as partial success.
    pub logs_rejected: u64,
    /// Attributes cut off spans, events and log records over `max_attributes_per_span`
    /// (the items are kept with the first ones).
    pub attributes_dropped: u64,
    /// Events cut off spans over `max_events_per_span` (the spans are kept).
    pub events_dropped: u64,
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
    requests_timed_out: AtomicU64,
    spans_accepted: AtomicU64,
    spans_rejected: AtomicU64,
    logs_accepted: AtomicU64,
    logs_rejected: AtomicU64,
    attributes_dropped: AtomicU64,
    events_dropped: AtomicU64,
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
    /// The answer for `rejected` items, with the rejection's message, or else the warning
    /// about what was cut (the spec's partial success with 0 rejected and a message).
    fn new(rejected: usize, message: Option<String>, warning: Option<String>) -> Self {
        let message = if rejected > 0 {
            message.unwrap_or_default()
        } else {
            warning.unwrap_or_default()
        };
        Accepted {
            rejected: i64::try_from(rejected).unwrap_or(i64::MAX),
            message,
        }
    }

    /// Whether the answer carries a partial success (rejections or a warning).
    pub fn is_partial(&self) -> bool {
        self.rejected > 0 || !self.message.is_empty()
    }
}

/// The two transports. Each has its own request slots and body budget, so that a crowd of
/// slow senders on one costs the other nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// OTLP/HTTP.
    Http,
    /// OTLP/gRPC.
    Grpc,
}

/// The bounds of one transport.
struct Lane {
    slots: Arc<Semaphore>,
    max_slots: usize,
    body_bytes: ByteBudget,
}

impl Lane {
    fn new(config: &OtlpConfig) -> Self {
        let max_slots = config
            .max_concurrent_requests
            .clamp(1, Semaphore::MAX_PERMITS);
        Lane {
            slots: Arc::new(Semaphore::new(max_slots)),
            max_slots,
            body_bytes: ByteBudget::new(
                config
                    .max_body_bytes_in_flight
                    .max(config.max_message_bytes.saturating_add(GRPC_FRAME_HEADER)),
            ),
        }
    }

    fn in_flight(&self) -> usize {
        self.max_slots
            .saturating_sub(self.slots.available_permits())
    }
}

/// The 5-byte prefix of a gRPC message (compressed flag and length), counted with the
/// message against the body budget.
pub(crate) const GRPC_FRAME_HEADER: usize = 5;

/// Most bytes of an oversized or refused body read and discarded before answering: a client
/// that is still writing when the answer comes would see a broken pipe instead of the status.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// Bytes inflated per step, each step charged to the decompressed-bytes budget.
const INFLATE_STEP: usize = 64 * 1024;

pub(crate) struct Pipeline {
    pub config: OtlpConfig,
    outputs: OtlpOutputs,
    http: Lane,
    grpc: Lane,
    inflated: ByteBudget,
    counters: Counters,
}

fn too_large(limit: usize) -> OtlpError {
    OtlpError::TooLarge(format!(
        "the body is larger than max_message_bytes = {limit}"
    ))
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Pipeline {
    pub fn new(config: OtlpConfig, outputs: OtlpOutputs) -> Self {
        let inflated = ByteBudget::new(
            config
                .max_decompressed_bytes_in_flight
                .max(config.max_decompressed_bytes),
        );
        Pipeline {
            http: Lane::new(&config),
            grpc: Lane::new(&config),
            inflated,
            config,
            outputs,
            counters: Counters::default(),
        }
    }

    fn lane(&self, transport: Transport) -> &Lane {
        match transport {
            Transport::Http => &self.http,
            Transport::Grpc => &self.grpc,
        }
    }

    fn overloaded(&self, what: &str) -> OtlpError {
        self.counters
            .requests_throttled
            .fetch_add(1, Ordering::Relaxed);
        OtlpError::Overloaded(what.to_owned(), self.config.retry_after_secs)
    }

    /// A slot for decoding and applying one request of `transport`, or the retryable error
    /// when all of them are busy. Taken once the body is read, so that a slow sender holds
    /// none.
    pub fn admit(&self, transport: Transport) -> Result<OwnedSemaphorePermit, OtlpError> {
        self.lane(transport)
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| self.overloaded("too many concurrent export requests"))
    }

    /// Reads a whole body of `transport` within `body_read_timeout_ms`, holding its bytes
    /// against the transport's budget. Refuses it once it passes `limit` (413) or the budget
    /// (retryable), after discarding the rest up to [`DRAIN_LIMIT`] so that the sender can
    /// read the refusal.
    pub async fn read_body<B>(
        &self,
        transport: Transport,
        body: B,
        limit: usize,
        declared: Option<usize>,
    ) -> Result<(Vec<u8>, Held), OtlpError>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: std::fmt::Display,
    {
        let timeout = Duration::from_millis(self.config.body_read_timeout_ms);
        match tokio::time::timeout(
            timeout,
            self.read_body_within(transport, body, limit, declared),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => {
                self.counters
                    .requests_timed_out
                    .fetch_add(1, Ordering::Relaxed);
                Err(OtlpError::SlowBody(format!(
                    "the body did not arrive within body_read_timeout_ms = {}",
                    self.config.body_read_timeout_ms
                )))
            }
        }
    }

    async fn read_body_within<B>(
        &self,
        transport: Transport,
        body: B,
        limit: usize,
        declared: Option<usize>,
    ) -> Result<(Vec<u8>, Held), OtlpError>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: std::fmt::Display,
    {
        let budget = &self.lane(transport).body_bytes;
        let mut body = std::pin::pin!(body);
        let mut held = Held::default();
        let mut out = Vec::new();
        let mut refusal = declared.filter(|&n| n > limit).map(|_| too_large(limit));
        let mut drained = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame
                .map_err(|e| OtlpError::BadRequest(format!("could not read the body: {e}")))?;
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            if refusal.is_none() {
                if out.len() + chunk.len() > limit {
                    refusal = Some(too_large(limit));
                } else if budget.charge(&mut held, chunk.len()).is_err() {
                    refusal = Some(self.overloaded("too many body bytes arriving at once"));
                } else {
                    out.extend_from_slice(&chunk);
                }
                if refusal.is_some() {
                    out = Vec::new();
                    held = Held::default();
                }
            }
            if refusal.is_some() {
                drained += chunk.len();
                if drained > DRAIN_LIMIT {
                    break;
                }
            }
        }
        match refusal {
            Some(error) => Err(error),
            None => Ok((out, held)),
        }
    }

    /// Inflates a gzip body after `prefix` (a gRPC frame header, or nothing), stopping at
    /// `max_decompressed_bytes` (gzip bombs) and holding the inflated bytes against the
    /// decompressed-bytes budget of both transports.
    pub fn gunzip(&self, compressed: &[u8], prefix: &[u8]) -> Result<(Vec<u8>, Held), OtlpError> {
        let limit = self
            .config
            .max_decompressed_bytes
            .saturating_add(prefix.len());
        let mut decoder = flate2::read::MultiGzDecoder::new(compressed);
        let mut held = Held::default();
        let mut out: Vec<u8> = prefix.to_vec();
        loop {
            let start = out.len();
            if start >= limit {
                // Exactly at the limit: one more byte means too large.
                let mut probe = [0u8; 1];
                let more = decoder
                    .read(&mut probe)
                    .map_err(|e| OtlpError::BadRequest(format!("invalid gzip body: {e}")))?;
                if more > 0 {
                    return Err(OtlpError::TooLarge(format!(
                        "the body decompresses to more than max_decompressed_bytes = {}",
                        self.config.max_decompressed_bytes
                    )));
                }
                break;
            }
            let step = INFLATE_STEP.min(limit - start);
            // What the vector really holds is charged, not only what it was asked to hold.
            let capacity = out.capacity();
            out.reserve(step);
            if self
                .inflated
                .charge(&mut held, out.capacity() - capacity)
                .is_err()
            {
                return Err(self.overloaded("too many decompressed bytes held at once"));
            }
            out.resize(start + step, 0);
            let n = decoder
                .read(&mut out[start..])
                .map_err(|e| OtlpError::BadRequest(format!("invalid gzip body: {e}")))?;
            out.truncate(start + n);
            if n == 0 {
                break;
            }
        }
        Ok((out, held))
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

    fn note_cut(&self, cut: &Cut) {
        add(&self.counters.attributes_dropped, cut.attributes);
        add(&self.counters.events_dropped, cut.events);
    }

    fn finish<T>(&self, result: Result<T, OtlpError>) -> Result<T, OtlpError> {
        match &result {
            Ok(_) => add(&self.counters.requests_accepted, 1),
            Err(e) if e.is_invalid() => self.note_invalid(),
            Err(_) => {}
        }
        result
    }

    /// Whether accepted requests are forwarded upstream (`[export]`): the transports then
    /// keep a request's protobuf bytes to hand over with it.
    pub fn forwards(&self) -> bool {
        self.outputs.logs.exporter().is_some()
    }

    /// Room in the exporter's buffer and the copy of `request` to forward, when forwarding is
    /// on and it fits (when it does not, the exporter counts it as dropped; the request is
    /// applied all the same). A request the receiver keeps whole goes as the bytes it came in
    /// (`encoded`), which costs this path nothing; one it cuts (or that came as JSON) is
    /// copied, to be cut in [`pending`](Self::pending) as the receiver cut it.
    fn forward_copy<R: Message + Clone>(
        &self,
        request: &R,
        (signal, items): (Signal, impl FnOnce(&R) -> u64),
        encoded: Option<Bytes>,
        kept_whole: impl FnOnce(&R, &OtlpConfig) -> bool,
        wrap: impl FnOnce(R) -> Payload,
    ) -> Option<(Reservation, Payload)> {
        let exporter = self.outputs.logs.exporter()?;
        let items = items(request);
        if let Some(bytes) = encoded.filter(|_| kept_whole(request, &self.config)) {
            let room = exporter.reserve(signal, items, bytes.len())?;
            return Some((room, Payload::Encoded(Encoded::new(signal, bytes, items))));
        }
        let room = exporter.reserve(signal, items, request.encoded_len())?;
        Some((room, wrap(request.clone())))
    }

    /// Applies a trace request; `encoded` is its protobuf encoding as received, kept only
    /// when forwarding is on ([`forwards`](Self::forwards)).
    pub fn traces(
        &self,
        request: ExportTraceServiceRequest,
        encoded: Option<Bytes>,
    ) -> Result<Accepted, OtlpError> {
        let result = (|| {
            let copy = self.forward_copy(
                &request,
                (Signal::Traces, |r: &ExportTraceServiceRequest| {
                    r.resource_spans
                        .iter()
                        .flat_map(|r| &r.scope_spans)
                        .map(|s| s.spans.len() as u64)
                        .sum()
                }),
                encoded,
                traces_kept_whole,
                Payload::Traces,
            );
            let batch = convert_traces(request, &self.config, now_nanos())?;
            let reservation = self.reserve(batch.error_records.len())?;
            let outcome = self.outputs.store.insert_spans(batch.spans);
            let forward = self.pending(copy);
            self.outputs
                .logs
                .send(reservation, batch.error_records, forward);
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
            self.note_cut(&batch.cut);
            Ok(Accepted::new(rejected, message, batch.cut.warning))
        })();
        self.finish(result)
    }

    /// Applies a logs request; `encoded` as for [`traces`](Self::traces).
    pub fn logs(
        &self,
        request: ExportLogsServiceRequest,
        encoded: Option<Bytes>,
    ) -> Result<Accepted, OtlpError> {
        let result = (|| {
            let copy = self.forward_copy(
                &request,
                (Signal::Logs, |r: &ExportLogsServiceRequest| {
                    r.resource_logs
                        .iter()
                        .flat_map(|r| &r.scope_logs)
                        .map(|s| s.log_records.len() as u64)
                        .sum()
                }),
                encoded,
                logs_kept_whole,
                Payload::Logs,
            );
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
            let forward = self.pending(copy);
            self.outputs.logs.send(reservation, batch.records, forward);
            self.note_cut(&batch.cut);
            Ok(Accepted::new(
                batch.rejected,
                batch.rejection,
                batch.cut.warning,
            ))
        })();
        self.finish(result)
    }

    /// Applies a metrics request; `encoded` as for [`traces`](Self::traces).
    pub fn metrics(
        &self,
        request: ExportMetricsServiceRequest,
        encoded: Option<Bytes>,
    ) -> Result<Accepted, OtlpError> {
        // Every data point is accepted (see the module docs), so every one is forwarded; no
        // pattern tags to wait for, so straight into the exporter's buffer.
        let copy = self.forward_copy(
            &request,
            (Signal::Metrics, |r: &ExportMetricsServiceRequest| {
                r.resource_metrics
                    .iter()
                    .flat_map(|r| &r.scope_metrics)
                    .flat_map(|s| &s.metrics)
                    .map(|m| data_points(&m.data) as u64)
                    .sum()
            }),
            encoded,
            |_, _| true,
            Payload::Metrics,
        );
        if let (Some((room, payload)), Some(exporter)) = (copy, self.outputs.logs.exporter()) {
            exporter.push(room, payload);
        }
        let batch = convert_metrics(request, &self.config);
        add(&self.counters.task_points, batch.samples.len());
        add(&self.counters.metric_points_dropped, batch.ignored_points);
        for sample in batch.samples {
            self.outputs.tasks.record(sample);
        }
        self.finish(Ok(Accepted::default()))
    }

    /// The accepted part of a forwarded copy, ready to travel with its records.
    fn pending(&self, copy: Option<(Reservation, Payload)>) -> Option<Pending> {
        let (room, mut payload) = copy?;
        match &mut payload {
            Payload::Traces(r) => accepted_traces(r, &self.config),
            Payload::Logs(r) => accepted_logs(r, &self.config),
            // Metrics are never cut; an encoded request was kept whole.
            Payload::Metrics(_) | Payload::Encoded(_) => {}
        }
        let exporter = self.outputs.logs.exporter()?;
        Some(exporter.pending(room, payload))
    }

    pub fn stats(&self) -> OtlpStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        OtlpStats {
            requests_accepted: get(&c.requests_accepted),
            requests_invalid: get(&c.requests_invalid),
            requests_throttled: get(&c.requests_throttled),
            requests_timed_out: get(&c.requests_timed_out),
            // Counted by the token gate in front of the pipeline (`OtlpReceivers::stats`).
            requests_unauthenticated: 0,
            requests_in_flight: (self.http.in_flight() + self.grpc.in_flight()) as u64,
            body_bytes_in_flight: (self.http.body_bytes.in_use() + self.grpc.body_bytes.in_use())
                as u64,
            decompressed_bytes_high_water: self.inflated.high_water() as u64,
            spans_accepted: get(&c.spans_accepted),
            spans_rejected: get(&c.spans_rejected),
            logs_accepted: get(&c.logs_accepted),
            logs_rejected: get(&c.logs_rejected),
            attributes_dropped: get(&c.attributes_dropped),
            events_dropped: get(&c.events_dropped),
            task_points: get(&c.task_points),
            metric_points_dropped: get(&c.metric_points_dropped),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::otlp::sink::log_queue;
    use crate::traces::TraceStoreConfig;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).expect("gzip in memory");
        encoder.finish().expect("gzip in memory")
    }

    #[test]
    fn the_decompressed_bytes_budget_is_shared_by_concurrent_requests() {
        let (logs, _queue) = log_queue(16);
        let pipeline = Pipeline::new(
            OtlpConfig {
                max_decompressed_bytes: 3 * 1024 * 1024,
                max_decompressed_bytes_in_flight: 4 * 1024 * 1024,
                ..OtlpConfig::default()
            },
            OtlpOutputs::discarding_tasks(
                Arc::new(TraceStore::new(TraceStoreConfig::default())),
                logs,
            ),
        );
        let body = gzip(&vec![b'x'; 2 * 1024 * 1024]);
        let (plain, first) = pipeline.gunzip(&body, &[]).expect("within both limits");
        assert_eq!(plain.len(), 2 * 1024 * 1024);
        // Alone it would fit its own limit; next to the first, it does not fit the budget.
        let refused = pipeline.gunzip(&body, &[]).map(|_| ());
        assert!(
            matches!(&refused, Err(OtlpError::Overloaded(..))),
            "{refused:?}"
        );
        assert_eq!(pipeline.stats().requests_throttled, 1);
        drop(first);
        let (_, second) = pipeline.gunzip(&body, &[]).expect("room again");
        drop(second);
        assert!(pipeline.stats().decompressed_bytes_high_water <= 4 * 1024 * 1024);
        // A bomb is refused for its own limit, not for the budget.
        let bomb = gzip(&vec![b'x'; 3 * 1024 * 1024 + 1]);
        let refused = pipeline.gunzip(&bomb, &[]).map(|_| ());
        assert!(
            matches!(&refused, Err(OtlpError::TooLarge(_))),
            "{refused:?}"
        );
        let exact = gzip(&vec![b'x'; 3 * 1024 * 1024]);
        assert!(pipeline.gunzip(&exact, &[]).is_ok());
    }
}
