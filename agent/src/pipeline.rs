//! The record pipeline: one task that takes every record — tailed lines and OTLP logs/error
//! spans — clusters the error-ish ones, attaches those with a trace id to their call chain,
//! acknowledges tail batches, and periodically commits the durable state.
//!
//! Execution model: the task is the only writer of the record totals and the only one that
//! acknowledges tail batches, and it takes the durable snapshot itself between two records
//! batches. That is what makes the snapshot consistent (see `persist`): every acknowledged
//! batch is in the counts, no unacknowledged one is.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_clustering::{Engine, ErrorEvent, EventSource};
use faultline_ingest::otlp::LogReceiver;
use faultline_ingest::tail::{Batch, TailerHandle};
use faultline_ingest::traces::TraceStore;
use faultline_ingest::{Level, LogRecord, Origin};
use faultline_web::{Change, LiveUpdates};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::persist::{self, AgentState, RecordTotals};
use crate::views::CLUSTER_ID_ATTRIBUTE;

/// How often the durable state is committed while running (and once more at shutdown).
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(5);

/// What the pipeline writes into.
pub struct Pipeline {
    /// The cluster store.
    pub engine: Arc<Engine>,
    /// The call chains.
    pub traces: Arc<TraceStore>,
    /// Change feed of the dashboard.
    pub live: LiveUpdates,
    /// Exact record counters, read by `/metrics`.
    pub totals: Arc<Mutex<RecordTotals>>,
    /// Where the durable state goes.
    pub data_dir: PathBuf,
}

/// The pipeline's inputs.
pub struct Inputs {
    /// Batches from the tailer (absent when no log source is configured).
    pub batches: Option<mpsc::Receiver<Batch>>,
    /// The tailer, whose acknowledged offsets go into the snapshot.
    pub tailer: Option<Arc<TailerHandle>>,
    /// OTLP log records and error spans.
    pub otlp_logs: LogReceiver,
}

impl Pipeline {
    /// Runs until `stop` is cancelled, then commits the state one last time.
    pub async fn run(self, mut inputs: Inputs, stop: CancellationToken) {
        let mut snapshot_tick = tokio::time::interval(SNAPSHOT_INTERVAL);
        snapshot_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        snapshot_tick.tick().await;
        // Commit the start positions at once: a crash before the first periodic commit must
        // not turn "files present at the first start are read from the end" into "read
        // everything" (or skip what arrived) at the next start.
        self.commit(inputs.tailer.as_deref()).await;
        let mut dirty = false;
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                batch = recv_batch(&mut inputs.batches) => match batch {
                    Some(batch) => {
                        self.process(batch.records);
                        batch.ack.ack();
                        dirty = true;
                    }
                    None => inputs.batches = None,
                },
                logs = inputs.otlp_logs.recv() => match logs {
                    Some(logs) => {
                        self.process(logs.into_records());
                        dirty = true;
                    }
                    None => break,
                },
                _ = snapshot_tick.tick() => {
                    if dirty {
                        self.commit(inputs.tailer.as_deref()).await;
                        dirty = false;
                    }
                }
            }
        }
        self.commit(inputs.tailer.as_deref()).await;
    }

    /// Counts, clusters and attaches one batch of records.
    fn process(&self, records: Vec<LogRecord>) {
        if records.is_empty() {
            return;
        }
        let mut clustered = false;
        let mut to_attach = Vec::new();
        let mut tags = Vec::new();
        {
            let mut totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
            for record in records {
                let from_file = matches!(record.origin, Origin::File { .. });
                if from_file {
                    totals.file_records += 1;
                } else {
                    totals.otlp_records += 1;
                }
                if record.truncated {
                    totals.truncated_records += 1;
                }
                let mut cluster = None;
                if record.is_errorish() {
                    totals.error_records += 1;
                    cluster = self.observe(&record);
                    clustered = true;
                }
                if let Some(trace_id) = record.trace_id {
                    let mut record = record;
                    if let Some(cluster) = cluster {
                        // The chain view shows each log's pattern from this attribute.
                        record
                            .attributes
                            .push((CLUSTER_ID_ATTRIBUTE.to_owned(), cluster.clone()));
                        tags.push((trace_id, record.span_id, cluster));
                    }
                    // OTLP logs are attached by the receiver itself; error spans are spans.
                    if from_file {
                        to_attach.push(record);
                    }
                }
            }
        }
        let traced = !to_attach.is_empty() || !tags.is_empty();
        if !to_attach.is_empty() {
            self.traces.attach_logs(to_attach);
        }
        for (trace_id, span_id, cluster) in tags {
            self.traces.tag_cluster(trace_id, span_id, &cluster);
        }
        if clustered {
            self.live.notify(Change::Clusters);
        }
        if traced {
            self.live.notify(Change::Traces);
        }
    }

    /// Clusters one error-ish record; returns its cluster id as shown everywhere. The engine
    /// counts a failure once per trace whatever reports it (a file line, an OTLP log, an
    /// error span), so the source goes with the event.
    fn observe(&self, record: &LogRecord) -> Option<String> {
        let trace_id = record.trace_id.map(|id| id.to_string());
        let span_id = record.span_id.map(|id| id.to_string());
        let event = ErrorEvent {
            text: record.cluster_text(),
            service: record.service.as_deref(),
            severity: level_name(record.level, record.http_status),
            trace_id: trace_id.as_deref(),
            span_id: span_id.as_deref(),
            time_unix_nanos: record.time_unix_nanos.unwrap_or(record.observed_unix_nanos),
        };
        let source = match record.origin {
            Origin::File { .. } => EventSource::FileLog,
            Origin::OtlpLog => EventSource::OtlpLog,
            Origin::OtlpSpan => EventSource::Span,
        };
        self.engine
            .observe_from(&event, source)
            .cluster
            .map(|id| id.to_string())
    }

    /// Commits the durable state; a failure is logged and retried at the next tick.
    ///
    /// Each commit is a span of the agent's own telemetry (exported when
    /// `telemetry.otlp_endpoint` is set): how long the snapshot and the fsync took is the first
    /// thing to check when the agent itself is slow.
    #[tracing::instrument(name = "faultline.state_commit", skip_all)]
    async fn commit(&self, tailer: Option<&TailerHandle>) {
        let state = AgentState {
            tail: tailer
                .map(TailerHandle::checkpoint_state)
                .unwrap_or_default(),
            clustering: self.engine.snapshot(),
            totals: *self.totals.lock().unwrap_or_else(|e| e.into_inner()),
        };
        let dir = self.data_dir.clone();
        match tokio::task::spawn_blocking(move || persist::store(&dir, state)).await {
            Ok(Ok(())) => tracing::debug!("state committed"),
            Ok(Err(err)) => tracing::warn!("cannot commit the agent state: {err:#}"),
            Err(err) => tracing::warn!("state commit task failed: {err}"),
        }
    }
}

async fn recv_batch(batches: &mut Option<mpsc::Receiver<Batch>>) -> Option<Batch> {
    match batches {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The severity the engine records: the level, or `error` for a 5xx request log without one.
pub fn level_name(level: Level, http_status: Option<u16>) -> &'static str {
    match level {
        Level::Panic => "panic",
        Level::Fatal => "fatal",
        Level::Error => "error",
        Level::Warn => "warn",
        Level::Info | Level::Debug | Level::Trace | Level::Unknown
            if http_status.is_some_and(|s| s >= 500) =>
        {
            "error"
        }
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
        Level::Unknown => "error",
    }
}
