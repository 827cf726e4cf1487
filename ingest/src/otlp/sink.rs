//! Where the receivers hand their data: the log queue (records for clustering) and the task
//! counter sink (goroutine and thread counts). Spans go straight into the
//! [`TraceStore`](crate::traces::TraceStore).
//!
//! The log queue is bounded in records, not in batches: a batch holds semaphore permits for
//! its records until the consumer drops it, so a slow consumer makes the receivers answer
//! "retry later" instead of growing memory.

use std::sync::Arc;

use faultline_export::{Exporter, Pending};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::record::LogRecord;

/// Which task counter a metric carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskMetric {
    /// Live goroutines (`go.goroutine.count`, `process.runtime.go.goroutines`, ...).
    Goroutines,
    /// OS threads (`go.thread.count`, `process.thread.count`, ...).
    Threads,
}

impl TaskMetric {
    /// The task counter an OTLP metric name carries, if any.
    pub fn from_name(name: &str) -> Option<TaskMetric> {
        match name {
            "go.goroutine.count"
            | "process.runtime.go.goroutines"
            | "runtime.go.goroutines"
            | "go_goroutines" => Some(TaskMetric::Goroutines),
            "go.thread.count"
            | "go.os.thread.count"
            | "process.thread.count"
            | "process.runtime.go.threads"
            | "go_threads" => Some(TaskMetric::Threads),
            _ => None,
        }
    }
}

/// One goroutine or thread count received over OTLP metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSample {
    /// The target the count belongs to: the resource's `service.name`.
    pub target: String,
    /// Which counter.
    pub metric: TaskMetric,
    /// The metric's name as sent.
    pub name: String,
    /// The count.
    pub value: f64,
    /// When it was measured (Unix nanoseconds).
    pub time_unix_nanos: i64,
}

/// Receives task-counter samples. Implementations must not block (they run on the
/// receivers' tasks); the counters store keeps its own bounds.
pub trait TaskCounterSink: Send + Sync + 'static {
    /// Takes one sample.
    fn record(&self, sample: TaskSample);
}

/// A sink that forgets every sample (for when no counter store is wired).
#[derive(Debug, Clone, Copy, Default)]
pub struct DiscardTaskCounters;

impl TaskCounterSink for DiscardTaskCounters {
    fn record(&self, _sample: TaskSample) {}
}

/// Samples go into a bounded channel; when it is full the sample is dropped (counters are
/// periodic, the next sample replaces it).
impl TaskCounterSink for mpsc::Sender<TaskSample> {
    fn record(&self, sample: TaskSample) {
        let _ = self.try_send(sample);
    }
}

/// A batch of log records from one OTLP request, in the order received, and the request
/// itself as accepted when `[export]` forwards it (to be tagged with the records' patterns
/// once they are clustered). Holds its share of the queue's capacity until dropped.
#[derive(Debug)]
pub struct LogBatch {
    records: Vec<LogRecord>,
    forward: Option<Pending>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl LogBatch {
    /// The records.
    pub fn records(&self) -> &[LogRecord] {
        &self.records
    }

    /// The records, giving back the batch's queue capacity now. A request to forward that
    /// came with them is counted as dropped: use [`into_parts`](Self::into_parts) to send it.
    pub fn into_records(self) -> Vec<LogRecord> {
        self.records
    }

    /// The records and the request to forward upstream, if `[export]` is on: its log records
    /// are one per record, in the same order; its error spans have the records' span ids.
    pub fn into_parts(self) -> (Vec<LogRecord>, Option<Pending>) {
        (self.records, self.forward)
    }
}

/// The sending half of the log queue (held by the receivers).
#[derive(Debug, Clone)]
pub struct LogSender {
    tx: mpsc::UnboundedSender<LogBatch>,
    capacity: Arc<Semaphore>,
    max: usize,
    exporter: Option<Exporter>,
}

/// The receiving half of the log queue: the agent drains it into clustering.
#[derive(Debug)]
pub struct LogReceiver {
    rx: mpsc::UnboundedReceiver<LogBatch>,
}

/// Why a batch did not enter the log queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LogQueueError {
    /// The queue has no room for the batch now.
    #[error("the log queue is full")]
    Full,
    /// The receiving half was dropped.
    #[error("the log queue is closed")]
    Closed,
}

/// A log queue holding at most `capacity` records (at least one).
pub fn log_queue(capacity: usize) -> (LogSender, LogReceiver) {
    let max = capacity.clamp(1, Semaphore::MAX_PERMITS);
    let (tx, rx) = mpsc::unbounded_channel();
    (
        LogSender {
            tx,
            capacity: Arc::new(Semaphore::new(max)),
            max,
            exporter: None,
        },
        LogReceiver { rx },
    )
}

/// Room in the queue for a batch, reserved before the request's other effects so a refusal
/// leaves nothing behind.
#[derive(Debug)]
pub(crate) struct LogReservation {
    permit: Option<OwnedSemaphorePermit>,
}

impl LogSender {
    /// The same queue, with what the receivers accept also forwarded upstream through
    /// `exporter` (`[export]`): trace and log requests travel with their records, so that the
    /// pipeline tags them with their patterns before they go; metrics go straight to it.
    pub fn forwarding(mut self, exporter: Exporter) -> Self {
        self.exporter = Some(exporter);
        self
    }

    /// The exporter, when forwarding is on.
    pub(crate) fn exporter(&self) -> Option<&Exporter> {
        self.exporter.as_ref()
    }

    /// Reserves room for `count` records, or fails at once when there is none. A batch larger
    /// than the whole queue needs the whole (empty) queue.
    pub(crate) fn reserve(&self, count: usize) -> Result<LogReservation, LogQueueError> {
        if count == 0 {
            return Ok(LogReservation { permit: None });
        }
        if self.tx.is_closed() {
            return Err(LogQueueError::Closed);
        }
        let permits = u32::try_from(count.min(self.max)).unwrap_or(u32::MAX);
        match self.capacity.clone().try_acquire_many_owned(permits) {
            Ok(permit) => Ok(LogReservation {
                permit: Some(permit),
            }),
            Err(_) => Err(LogQueueError::Full),
        }
    }

    /// Sends records into reserved room, with the request to forward if there is one.
    pub(crate) fn send(
        &self,
        reservation: LogReservation,
        records: Vec<LogRecord>,
        forward: Option<Pending>,
    ) {
        if records.is_empty() && forward.is_none() {
            return;
        }
        // A closed receiver means the agent is shutting down: nothing is left to feed (a
        // request to forward is counted as dropped when the batch is).
        let _ = self.tx.send(LogBatch {
            records,
            forward,
            _permit: reservation.permit,
        });
    }

    /// Sends records if there is room now (for callers outside the receivers, e.g. tests).
    pub fn try_send(&self, records: Vec<LogRecord>) -> Result<(), LogQueueError> {
        let reservation = self.reserve(records.len())?;
        self.send(reservation, records, None);
        Ok(())
    }

    /// Records that can enter the queue now.
    pub fn available(&self) -> usize {
        self.capacity.available_permits()
    }
}

impl LogReceiver {
    /// The next batch; `None` once every sender is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<LogBatch> {
        self.rx.recv().await
    }

    /// The next batch if one is waiting.
    pub fn try_recv(&mut self) -> Option<LogBatch> {
        self.rx.try_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Level, Origin};

    fn record(n: i64) -> LogRecord {
        LogRecord {
            time_unix_nanos: Some(n),
            observed_unix_nanos: n,
            level: Level::Error,
            service: None,
            message: format!("m{n}"),
            error: None,
            http_status: None,
            trace_id: None,
            span_id: None,
            attributes: Vec::new(),
            origin: Origin::OtlpLog,
            truncated: false,
        }
    }

    #[test]
    fn a_full_queue_refuses_until_drained() {
        let (tx, mut rx) = log_queue(3);
        assert_eq!(tx.try_send(vec![record(1), record(2)]), Ok(()));
        assert_eq!(
            tx.try_send(vec![record(3), record(4)]),
            Err(LogQueueError::Full)
        );
        assert_eq!(tx.try_send(vec![record(3)]), Ok(()));
        let first = rx
            .try_recv()
            .map(LogBatch::into_records)
            .unwrap_or_default();
        assert_eq!(first.len(), 2);
        assert_eq!(tx.try_send(vec![record(4), record(5)]), Ok(()));
        // A batch bigger than the queue gets in only when the queue is empty.
        assert_eq!(
            tx.try_send((0..10).map(record).collect()),
            Err(LogQueueError::Full)
        );
        drop(rx.try_recv());
        drop(rx.try_recv());
        assert_eq!(tx.try_send((0..10).map(record).collect()), Ok(()));
    }
}
