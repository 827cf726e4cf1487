//! The record pipeline: one task that takes every record — tailed lines and OTLP logs/error
//! spans — clusters the error-ish ones, attaches those with a trace id to their call chain,
//! acknowledges tail batches, and periodically commits the durable state.
//!
//! Execution model: the task is the only writer of the record totals and the only one that
//! acknowledges tail batches, and it takes the durable snapshot itself between two records
//! batches. That is what makes the snapshot consistent (see `persist`): every acknowledged
//! batch is in the counts, no unacknowledged one is.
//!
//! Commits: every `tail.checkpoint_interval_ms` when something changed, and at shutdown. A
//! failed commit (a full disk) leaves the state dirty, so it is retried at every tick whether
//! or not new data arrives; meanwhile the agent keeps serving from memory, and health
//! (`data_dir`) and `/metrics` (`faultline_store_state_persisting`) say that it is not
//! persisting.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_clustering::{Engine, ErrorEvent, EventSource, RecordIds};
use faultline_ingest::otlp::LogReceiver;
use faultline_ingest::tail::{Batch, TailerHandle};
use faultline_ingest::traces::{RequestSource, TraceStore};
use faultline_ingest::{LogRecord, Origin};
use faultline_web::{Change, Component, ComponentState, HealthRegistry, LiveUpdates};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::export::{Forwarding, Observed};
use crate::persist::{self, AgentState, CommitStatus, RecordTotals};
use crate::views::CLUSTER_ID_ATTRIBUTE;

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
    /// How often the state is committed when it changed (`tail.checkpoint_interval_ms`).
    pub commit_interval: Duration,
    /// Whether commits reach the disk, read by `/metrics`.
    pub status: Arc<CommitStatus>,
    /// Where the commit outcome (`data_dir`) and the log sources' state (`logs`) are shown.
    pub health: HealthRegistry,
    /// Forwarding upstream (`[export]`): tailed records and received requests go out tagged
    /// with the patterns their records were clustered into.
    pub export: Option<Arc<Forwarding>>,
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
        let mut commit_tick = tokio::time::interval(self.commit_interval.max(MIN_COMMIT_INTERVAL));
        commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        commit_tick.tick().await;
        // Commit the start positions at once: a crash before the first periodic commit must
        // not turn "files present at the first start are read from the end" into "read
        // everything" (or skip what arrived) at the next start.
        let mut dirty = !self.commit(inputs.tailer.as_deref()).await;
        self.report_sources(inputs.tailer.as_deref());
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                batch = recv_batch(&mut inputs.batches) => match batch {
                    Some(batch) => {
                        let forward = self.export.as_ref().map(|_| batch.records.clone());
                        let observed = self.process(batch.records, forward.is_some());
                        if let (Some(export), Some(records)) = (&self.export, forward) {
                            export.send_tailed(&records, &observed);
                        }
                        batch.ack.ack();
                        dirty = true;
                    }
                    None => inputs.batches = None,
                },
                logs = inputs.otlp_logs.recv() => match logs {
                    Some(logs) => {
                        let (records, forward) = logs.into_parts();
                        let exported = self.export.is_some() && forward.is_some();
                        let span_ids: Vec<_> = if exported {
                            records.iter().map(|r| r.span_id).collect()
                        } else {
                            Vec::new()
                        };
                        let observed = self.process(records, exported);
                        if let (Some(export), Some(pending)) = (&self.export, forward) {
                            export.send_received(pending, &span_ids, &observed);
                        }
                        dirty = true;
                    }
                    None => break,
                },
                _ = commit_tick.tick() => {
                    // A failed commit stays dirty: retried at the next tick, data or not.
                    if dirty {
                        dirty = !self.commit(inputs.tailer.as_deref()).await;
                    }
                    self.report_sources(inputs.tailer.as_deref());
                }
            }
        }
        self.commit(inputs.tailer.as_deref()).await;
    }

    /// Counts, clusters and attaches one batch of records; with `keep_observed` (the batch is
    /// forwarded upstream), returns the pattern of each record (`None` for those that are not
    /// error events), else nothing: without `[export]` nobody reads them, and the vector of a
    /// 1,000-line batch was an allocation of its own in every batch.
    fn process(&self, records: Vec<LogRecord>, keep_observed: bool) -> Vec<Option<Observed>> {
        let mut observed = Vec::with_capacity(if keep_observed { records.len() } else { 0 });
        if records.is_empty() {
            return observed;
        }
        let mut clustered = false;
        // Sized once (a record is ~250 bytes; growing by doubling copied them again).
        let mut to_attach = Vec::with_capacity(
            records
                .iter()
                .filter(|r| r.trace_id.is_some() && matches!(r.origin, Origin::File { .. }))
                .count(),
        );
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
                self.count_request(&record);
                if record.is_error_event() {
                    totals.error_records += 1;
                    let ids = self.observe(&record);
                    if keep_observed {
                        cluster = ids.cluster.clone();
                        observed.push(Some(ids));
                    } else {
                        cluster = ids.cluster;
                    }
                    clustered = true;
                } else if keep_observed {
                    observed.push(None);
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
        observed
    }

    /// Counts an access line (a tailed or OTLP log record with an HTTP status) in its
    /// service's requests and failures; the trace store counts SERVER spans itself and
    /// ignores a service's access lines once it sends spans.
    fn count_request(&self, record: &LogRecord) {
        let (Some(failed), Some(service)) = (record.request_failed(), record.service.as_deref())
        else {
            return;
        };
        if matches!(record.origin, Origin::OtlpSpan) {
            return;
        }
        self.traces.traffic().record(
            service,
            record.time_unix_nanos.unwrap_or(record.observed_unix_nanos),
            failed,
            RequestSource::AccessLine,
        );
    }

    /// Clusters one error-ish record; returns its cluster and template ids as shown everywhere. The engine
    /// counts a failure once per trace whatever reports it (a file line, an OTLP log, an
    /// error span), so the source goes with the event.
    fn observe(&self, record: &LogRecord) -> Observed {
        let ids = RecordIds::of(record);
        let event = ErrorEvent::from_record(
            record,
            &ids,
            record.time_unix_nanos.unwrap_or(record.observed_unix_nanos),
        );
        let source = match record.origin {
            Origin::File { .. } => EventSource::FileLog,
            Origin::OtlpLog => EventSource::OtlpLog,
            Origin::OtlpSpan => EventSource::Span,
        };
        let observation = self.engine.observe_from(&event, source);
        Observed {
            cluster: observation.cluster.map(|id| id.to_string()),
            template: observation.template.map(|id| id.to_string()),
        }
    }

    /// Commits the durable state; returns whether it reached the disk. A failure is logged
    /// once when it starts (not at every retry), counted, and shown in health.
    ///
    /// Each commit is a span of the agent's own telemetry (exported when
    /// `telemetry.otlp_endpoint` is set): how long the snapshot and the fsync took is the first
    /// thing to check when the agent itself is slow.
    #[tracing::instrument(name = "faultline.state_commit", skip_all)]
    async fn commit(&self, tailer: Option<&TailerHandle>) -> bool {
        let state = AgentState {
            tail: tailer
                .map(TailerHandle::checkpoint_state)
                .unwrap_or_default(),
            clustering: self.engine.snapshot(),
            totals: *self.totals.lock().unwrap_or_else(|e| e.into_inner()),
        };
        let dir = self.data_dir.clone();
        let outcome = match tokio::task::spawn_blocking(move || persist::store(&dir, state)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(err.to_string()),
            Err(err) => Err(format!("the commit task failed: {err}")),
        };
        let was_failing = self.status.failure().is_some();
        let ok = outcome.is_ok();
        match &outcome {
            Ok(()) if was_failing => tracing::info!("the agent state is persisted again"),
            Ok(()) => tracing::debug!("state committed"),
            Err(err) if !was_failing => tracing::warn!(
                "cannot commit the agent state (kept in memory, retried every {:?}): {err}",
                self.commit_interval.max(MIN_COMMIT_INTERVAL)
            ),
            Err(_) => {}
        }
        self.status.record(outcome);
        let dir = self.data_dir.display().to_string();
        self.health.set(
            "data_dir",
            match self.status.failure() {
                None => Component {
                    state: ComponentState::Running,
                    address: None,
                    detail: Some(dir),
                },
                Some(why) => Component {
                    state: ComponentState::Failing,
                    address: None,
                    detail: Some(format!(
                        "{dir}: state not persisted (serving from memory, retrying): {why}"
                    )),
                },
            },
        );
        ok
    }

    /// Shows each log source's state in health: a glob whose directory cannot be read, or
    /// that matches a file the agent may not open, makes `logs` failing and names the source.
    fn report_sources(&self, tailer: Option<&TailerHandle>) {
        let Some(tailer) = tailer else { return };
        let stats = tailer.stats();
        let failing: Vec<String> = stats
            .sources
            .iter()
            .filter_map(|s| s.error.as_ref().map(|e| format!("{}: {e}", s.path)))
            .collect();
        let mut detail: Vec<String> = stats.sources.iter().map(|s| s.path.clone()).collect();
        if stats.lost_files > 0 {
            // Not a failure of the agent, but lines it could not count: said where it is seen.
            detail.push(format!(
                "{} rotated file(s) were deleted or compressed before they were read to the end",
                stats.lost_files
            ));
        }
        self.health.set(
            "logs",
            if failing.is_empty() {
                Component {
                    state: ComponentState::Running,
                    address: None,
                    detail: Some(detail.join(", ")),
                }
            } else {
                Component {
                    state: ComponentState::Failing,
                    address: None,
                    detail: Some(failing.join("; ")),
                }
            },
        );
        for source in &stats.sources {
            self.health.set(
                &format!("logs {}", source.path),
                Component {
                    state: if source.error.is_some() {
                        ComponentState::Failing
                    } else {
                        ComponentState::Running
                    },
                    address: None,
                    // A glob that matches nothing is not a failure (the service may not have
                    // started), but reading nothing must be said; the dashboard's sources
                    // panel shows this text as the reason.
                    detail: Some(match &source.error {
                        Some(e) => e.clone(),
                        None if source.files == 0 => {
                            "no file matches this glob: nothing is read from it".to_owned()
                        }
                        None => format!("{} file(s)", source.files),
                    }),
                },
            );
        }
    }
}

/// The shortest commit interval honoured: each commit serialises the whole cluster store and
/// fsyncs twice (file and directory), so a configured 0 must not turn into a busy loop.
const MIN_COMMIT_INTERVAL: Duration = Duration::from_millis(100);

async fn recv_batch(batches: &mut Option<mpsc::Receiver<Batch>>) -> Option<Batch> {
    match batches {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
