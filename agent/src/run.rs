//! `faultline run`: starts every part of the agent, waits for a signal, stops them in order.
//!
//! Start order: durable state, stores, then the inputs (tailer, OTLP receivers, counter
//! sampler) and the pipeline between them, then the web listener. Stop order on the first
//! signal: every part is cancelled at once; the pipeline commits the durable state a last
//! time; the whole stop is bounded by [`SHUTDOWN_GRACE`].

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use faultline_clustering::Engine;
use faultline_ingest::counters::{spawn_sampler, CounterStore};
use faultline_ingest::otlp::{log_queue, OtlpOutputs, OtlpReceivers, TaskCounterSink, TaskSample};
use faultline_ingest::tail;
use faultline_ingest::traces::TraceStore;
use faultline_net::{BearerToken, ConnectionStats};
use faultline_web::model::StoreCounter;
use faultline_web::{
    Access, AppState, Change, Component, ComponentState, HealthRegistry, LiveUpdates,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::persist::{self, AgentState, CommitStatus, RecordTotals};
use crate::pipeline::{Inputs, Pipeline};
use crate::{diagnosis, export, listeners, shutdown, views};

/// How long the parts get to stop and flush after the first signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long the exporter gets, within [`SHUTDOWN_GRACE`], to forward what is waiting when
/// the agent stops; the rest is counted as dropped (`shutdown`).
const EXPORT_DRAIN: Duration = Duration::from_secs(2);

/// How often background upkeep runs: DBSCAN re-runs over new templates, trace expiry.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);

/// Tail batches waiting for the pipeline; a full channel slows the tailer down (the files
/// are the buffer).
const TAIL_CHANNEL_BATCHES: usize = 8;

/// Where a started agent listens, for a caller that started it in-process (`faultline demo`).
#[derive(Debug, Clone, Copy)]
pub struct Listening {
    /// The dashboard and API.
    pub web: std::net::SocketAddr,
    /// The OTLP/HTTP receiver.
    pub otlp_http: std::net::SocketAddr,
}

/// Runs the agent until SIGINT or SIGTERM.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let stop = shutdown::install(|| {}).context("cannot install the signal handlers")?;
    serve(settings, stop, None).await
}

/// Runs the agent until `stop` is cancelled; once every listener is bound, sends where they
/// listen to `ready`.
pub async fn serve(
    settings: Settings,
    stop: CancellationToken,
    ready: Option<tokio::sync::oneshot::Sender<Listening>>,
) -> anyhow::Result<()> {
    let (data_dir, fallback_note) = settings.prepare_data_dir()?;
    if let Some(note) = fallback_note {
        tracing::warn!("{note}");
    }
    let health = HealthRegistry::new();
    let clustering_config = settings.clustering.clone();
    let (restored, restore_notes) = persist::load(&data_dir, &mut |state: AgentState| {
        persist::restore(state, &clustering_config)
    })?;
    for note in restore_notes {
        tracing::warn!("{note}");
    }
    let (tail_state, engine, totals) = match restored {
        Some((tail, engine, totals)) => (Some(tail), engine, totals),
        None => (
            None,
            Engine::new(settings.clustering.clone()),
            RecordTotals::default(),
        ),
    };
    if let Some(migration) = engine.migration() {
        tracing::warn!("{migration}");
    }
    let engine = Arc::new(engine);
    let totals = Arc::new(Mutex::new(totals));
    let traces = Arc::new(TraceStore::new(settings.traces.clone()));
    let counters = Arc::new(CounterStore::new(&settings.counters));
    // The counters' history a previous run saved, read and rebuilt in the background: the
    // samples taken meanwhile follow it (see `persist::counters`).
    let history_restored = persist::counters::restore_in_background(
        data_dir.clone(),
        counters.clone(),
        Some(traces.clone()),
    );
    let live = LiveUpdates::new();
    let mut tasks: Vec<(&'static str, JoinHandle<()>)> = Vec::new();

    // Logs.
    let (batches, tailer) = if settings.logs.is_empty() {
        health.set(
            "logs",
            component(
                ComponentState::Disabled,
                None,
                "no [[logs]] source configured",
            ),
        );
        (None, None)
    } else {
        let (tx, rx) = tokio::sync::mpsc::channel(TAIL_CHANNEL_BATCHES);
        let handle = tail::spawn(
            settings.tail.clone(),
            settings.logs.clone(),
            tail_state,
            tx,
            stop.child_token(),
        )
        .await
        .context("cannot start tailing the log sources ([[logs]] / --log)")?;
        let globs: Vec<&str> = settings.logs.iter().map(|s| s.path.as_str()).collect();
        health.set(
            "logs",
            component(ComponentState::Running, None, &globs.join(", ")),
        );
        (Some(rx), Some(Arc::new(handle)))
    };

    let mut listener_limits = settings.listeners.clone();
    if let Some(note) = listener_limits.fit_to_fd_limit() {
        tracing::warn!("{note}");
    }

    // Forwarding upstream ([export]), before the inputs that feed it.
    let board = Arc::new(diagnosis::IncidentBoard::default());
    let forwarding = match &settings.export {
        None => None,
        Some(export) => {
            let (exporter, sender) =
                faultline_export::Exporter::spawn(export.clone(), stop.child_token(), EXPORT_DRAIN)
                    .context("cannot set up forwarding (export.otlp_endpoint)")?;
            export::count_lost_at_restart(&exporter, &data_dir);
            let forwarding = Arc::new(export::Forwarding::new(exporter, board.clone()));
            tasks.push((
                "export",
                tokio::spawn(export::report(
                    forwarding.clone(),
                    engine.clone(),
                    data_dir.clone(),
                    health.clone(),
                    sender,
                    stop.child_token(),
                )),
            ));
            Some(forwarding)
        }
    };

    // OTLP.
    let (log_tx, log_rx) = log_queue(settings.otlp_limits.log_queue_records);
    let log_tx = match &forwarding {
        Some(f) => log_tx.forwarding(f.exporter().clone()),
        None => log_tx,
    };
    let receivers = OtlpReceivers::new(
        settings.otlp_limits.clone(),
        OtlpOutputs {
            store: traces.clone(),
            logs: log_tx,
            tasks: Arc::new(TaskCounters(counters.clone())),
        },
    )
    .with_connection_limits(
        listener_limits.otlp_grpc.clone(),
        listener_limits.otlp_http.clone(),
    )
    .with_token(settings.otlp_token.as_deref().map(BearerToken::new))
    .with_tls(settings.otlp_tls.clone());
    let (grpc_listener, http_listener) =
        OtlpReceivers::bind(settings.otlp_grpc, settings.otlp_http)
            .await
            .context("check otlp.grpc_listen / otlp.http_listen (--otlp-grpc / --otlp-http)")?;
    let grpc_addr = grpc_listener
        .local_addr()
        .context("OTLP gRPC listener address")?;
    let http_addr = http_listener
        .local_addr()
        .context("OTLP HTTP listener address")?;
    listeners::warn_if_exposed(
        grpc_addr,
        http_addr,
        settings.otlp_token.is_some(),
        settings.otlp_tls.is_some(),
    );
    health.set(
        "otlp_grpc",
        component(
            ComponentState::Running,
            Some(grpc_addr.to_string()),
            "traces, logs, metrics",
        ),
    );
    health.set(
        "otlp_http",
        component(
            ComponentState::Running,
            Some(http_addr.to_string()),
            "/v1/traces, /v1/logs, /v1/metrics",
        ),
    );
    let otlp_stop = stop.child_token();
    let serving = receivers.clone();
    tasks.push((
        "otlp",
        tokio::spawn(async move {
            if let Err(err) = serving.serve(grpc_listener, http_listener, otlp_stop).await {
                tracing::error!("OTLP receivers stopped: {err}");
            }
        }),
    ));

    // Node counters.
    let sampler = spawn_sampler(
        settings.counters.clone(),
        counters.clone(),
        stop.child_token(),
    )
    .context("cannot start the counter sampler ([counters])")?;
    tasks.push(("counters", sampler));
    let history_saves = Arc::new(persist::counters::SaveStatus::default());
    if settings.counters.save_interval_ms > 0 {
        // What the anomaly detector needs to judge a series again at once after a restart.
        let anomalies = &settings.diagnosis.anomalies;
        tasks.push((
            "counter history",
            tokio::spawn(persist::counters::run(
                counters.clone(),
                Some(traces.clone()),
                data_dir.clone(),
                Duration::from_millis(settings.counters.save_interval_ms),
                anomalies.baseline_ms.saturating_add(anomalies.search_ms),
                history_restored,
                history_saves.clone(),
                health.clone(),
                stop.child_token(),
            )),
        ));
    }
    health.set(
        "counters",
        component(
            ComponentState::Running,
            None,
            &format!(
                "every {} ms, {} task target(s)",
                settings.counters.interval_ms,
                settings.counters.tasks.len()
            ),
        ),
    );

    // The pipeline between inputs and stores.
    let commit_status = Arc::new(CommitStatus::default());
    let pipeline = Pipeline {
        engine: engine.clone(),
        traces: traces.clone(),
        live: live.clone(),
        totals: totals.clone(),
        data_dir: data_dir.clone(),
        commit_interval: Duration::from_millis(settings.tail.checkpoint_interval_ms),
        status: commit_status.clone(),
        health: health.clone(),
        export: forwarding.clone(),
    };
    let inputs = Inputs {
        batches,
        tailer: tailer.clone(),
        otlp_logs: log_rx,
    };
    let pipeline_task = tokio::spawn(pipeline.run(inputs, stop.child_token()));
    tasks.push((
        "maintenance",
        tokio::spawn(maintain(
            engine.clone(),
            traces.clone(),
            live.clone(),
            stop.child_token(),
        )),
    ));
    health.set(
        "clustering",
        component(
            ComponentState::Running,
            None,
            "TF-IDF + DBSCAN error patterns",
        ),
    );

    // Web.
    let listener = TcpListener::bind(settings.web_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (web.listen / --listen): is another process using it?",
                settings.web_listen
            )
        })?;
    let web_addr = listener
        .local_addr()
        .context("cannot read the web listener's address")?;
    // The agent's own listeners: its API polls and OTLP posts are its own traffic, not
    // another program's on the node.
    counters.set_agent_ports([web_addr.port(), grpc_addr.port(), http_addr.port()]);
    health.set(
        "web",
        component(
            ComponentState::Running,
            Some(web_addr.to_string()),
            "dashboard and REST API",
        ),
    );
    let web_scheme = if settings.web_tls.is_some() {
        "https"
    } else {
        "http"
    };
    let web_connections = Arc::new(ConnectionStats::default());
    let access = Access::new(settings.web_token.as_deref(), &settings.web_allowed_hosts);
    let pipeline_counters = {
        let totals = totals.clone();
        let tailer = tailer.clone();
        let receivers = receivers.clone();
        let status = commit_status.clone();
        let web_connections = web_connections.clone();
        let access = access.clone();
        Arc::new(move || {
            let mut rows = agent_counters(&totals, &status, tailer.as_deref(), &receivers);
            rows.extend(history_counters(&history_saves));
            rows.extend(listeners::connection_counters(
                web_connections.counts(),
                &receivers,
            ));
            rows.extend(listeners::access_counters(access.counts()));
            if let Some(forwarding) = &forwarding {
                rows.extend(export::counters(&forwarding.exporter().stats()));
            }
            rows
        })
    };
    // Counter anomalies and incidents, once a second over the same views the web reads; the
    // board also holds what the loop learnt of the services, for "what moved".
    let views = views::build(
        engine.clone(),
        traces.clone(),
        counters.clone(),
        live.clone(),
        pipeline_counters,
        board.clone(),
    );
    // Where a leaking service's goroutines wait, read while an incident counts them.
    let stacks = Arc::new(crate::stacks::StackBoard::default());
    tasks.push((
        "goroutine stacks",
        tokio::spawn(crate::stacks::run(
            board.clone(),
            stacks.clone(),
            stop.child_token(),
        )),
    ));
    // Its state is judged at each health request from the incidents it serves (stale when
    // they are old).
    health.set(
        faultline_web::DIAGNOSIS_COMPONENT,
        component(ComponentState::Running, None, "starting"),
    );
    tasks.push((
        "diagnosis",
        tokio::spawn(diagnosis::run(
            views.clone(),
            board,
            settings.diagnosis.clone(),
            diagnosis::ConfiguredFacts {
                listeners: Some(crate::culprits::NodeListeners {
                    traces: traces.clone(),
                    counters: counters.clone(),
                }),
                traces: Some(diagnosis::Traffic(traces.clone())),
                counters: Some(counters.clone()),
                stacks,
                ..diagnosis::ConfiguredFacts::from_tasks(
                    settings
                        .tasks
                        .iter()
                        .map(|t| (t.name.as_str(), t.url.as_str())),
                )
                .with_listeners(
                    settings
                        .counters
                        .processes
                        .iter()
                        .filter_map(|p| p.listen_port.map(|port| (p.name.as_str(), port))),
                )
            },
            format!("{web_scheme}://{web_addr}"),
            Some(data_dir.clone()),
            stop.child_token(),
        )),
    ));
    let state = AppState {
        health,
        access: access.clone(),
        metrics: settings.web_metrics,
    };
    let app = faultline_web::router_with_views(state, views);
    let web_stop = stop.clone();
    let web_tls = settings.web_tls.clone();
    tasks.push((
        "web",
        tokio::spawn(async move {
            faultline_net::serve(
                listener,
                app,
                web_tls,
                &listener_limits.web,
                web_connections,
                web_stop,
            )
            .await;
        }),
    ));
    tracing::info!(
        dashboard = %format!("{web_scheme}://{web_addr}/"),
        otlp_grpc = %grpc_addr,
        otlp_http = %http_addr,
        data_dir = %data_dir.display(),
        "faultline {} running",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(ready) = ready {
        // A caller that went away no longer needs the addresses; the agent runs on.
        let _ = ready.send(Listening {
            web: web_addr,
            otlp_http: http_addr,
        });
    }

    stop.cancelled().await;
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    if tokio::time::timeout_at(deadline, pipeline_task)
        .await
        .is_err()
    {
        tracing::warn!("the pipeline did not commit its state within {SHUTDOWN_GRACE:?}");
    }
    for (name, task) in tasks {
        if tokio::time::timeout_at(deadline, task).await.is_err() {
            tracing::warn!("{name} did not stop within {SHUTDOWN_GRACE:?}; leaving anyway");
        }
    }
    if let Some(tailer) = tailer.and_then(|t| Arc::try_unwrap(t).ok()) {
        if let Ok(Err(err)) = tokio::time::timeout_at(deadline, tailer.join()).await {
            tracing::warn!("tailer stopped with an error: {err}");
        }
    }
    tracing::info!("stopped");
    Ok(())
}

fn component(state: ComponentState, address: Option<String>, detail: &str) -> Component {
    Component {
        state,
        address,
        detail: Some(detail.to_owned()),
    }
}

/// Background upkeep until `stop`: DBSCAN over new templates (off the async threads, it can
/// take a while), freed heap pages handed back (`memory`), trace expiry, and the live feed's
/// counter ticks.
async fn maintain(
    engine: Arc<Engine>,
    traces: Arc<TraceStore>,
    live: LiveUpdates,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(MAINTENANCE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_traces = None;
    let mut released = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let engine = engine.clone();
        let release = released.elapsed() >= crate::memory::RELEASE_EVERY;
        if release {
            released = std::time::Instant::now();
        }
        let work = move || {
            engine.maintain();
            if release {
                crate::memory::release_freed();
            }
        };
        if let Err(err) = tokio::task::spawn_blocking(work).await {
            tracing::warn!("cluster maintenance failed: {err}");
        }
        traces.expire(std::time::Instant::now());
        let stats = traces.stats();
        let seen = (stats.traces, stats.spans);
        if last_traces != Some(seen) {
            last_traces = Some(seen);
            live.notify(Change::Traces);
        }
        live.notify(Change::Counters);
    }
}

/// Goroutine and thread counts received over OTLP go to the counter store, stamped with the
/// time they arrived. The store judges freshness by that time (a count not refreshed within
/// `otlp_stale_after_ms` fails), and only the agent's own clock can say how long a sender has
/// been silent: by the point's own timestamp, a sender whose clock ran an hour behind was
/// flagged stale at every tick (no history point ever), and one an hour ahead never went stale
/// after it stopped and shut out its own correctly stamped points for that hour.
struct TaskCounters(Arc<CounterStore>);

impl TaskCounterSink for TaskCounters {
    fn record(&self, sample: TaskSample) {
        let received_unix_nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(sample.time_unix_nanos);
        self.0.record_task(
            &sample.target,
            &sample.name,
            sample.value,
            received_unix_nanos,
        );
    }
}

/// The counter history's saves for `/metrics`: outcomes, size and cost of the last one.
fn history_counters(saves: &persist::counters::SaveStatus) -> Vec<StoreCounter> {
    let counter = |name: &str, help: &str, value: f64| StoreCounter {
        name: name.into(),
        help: help.into(),
        value,
    };
    let outcomes = &saves.outcomes;
    vec![
        counter(
            "counter_history_saves_total",
            "Saves of the counter history (counters.bin, counters-minutes.log) that reached \
             the disk.",
            outcomes.commits.load(Ordering::Relaxed) as f64,
        ),
        counter(
            "counter_history_save_failures_total",
            "Saves of the counter history that failed (retried at the next interval).",
            outcomes.failures.load(Ordering::Relaxed) as f64,
        ),
        counter(
            "counter_history_saved_bytes",
            "Bytes the last save of the counter history wrote.",
            saves.bytes.load(Ordering::Relaxed) as f64,
        ),
        counter(
            "counter_history_save_seconds",
            "Time the last save of the counter history took (copy, encoding, write, fsync).",
            saves.micros.load(Ordering::Relaxed) as f64 / 1e6,
        ),
        counter(
            "counter_history_save_locked_seconds",
            "Time the last save of the counter history held the counter store's lock (the \
             copy; the sampler waits meanwhile).",
            saves.locked_micros.load(Ordering::Relaxed) as f64 / 1e6,
        ),
    ]
}

/// The agent's own counters for `/metrics`: exact record totals, tailer lag, OTLP outcomes.
fn agent_counters(
    totals: &Mutex<RecordTotals>,
    status: &CommitStatus,
    tailer: Option<&tail::TailerHandle>,
    receivers: &OtlpReceivers,
) -> Vec<StoreCounter> {
    let totals = *totals.lock().unwrap_or_else(|e| e.into_inner());
    let counter = |name: &str, help: &str, value: u64| StoreCounter {
        name: name.into(),
        help: help.into(),
        value: value as f64,
    };
    let mut rows = vec![
        counter(
            "log_records_total",
            "Records read from tailed log files.",
            totals.file_records,
        ),
        counter(
            "otlp_records_total",
            "OTLP log records and error spans taken from the receivers.",
            totals.otlp_records,
        ),
        counter(
            "error_records_total",
            "Records judged error-ish and clustered.",
            totals.error_records,
        ),
        counter(
            "truncated_records_total",
            "Records cut at tail.max_line_bytes.",
            totals.truncated_records,
        ),
        counter(
            "state_commits_total",
            "Commits of the durable state that reached the disk.",
            status.commits.load(Ordering::Relaxed),
        ),
        counter(
            "state_commit_failures_total",
            "Commits of the durable state that failed (retried on a timer).",
            status.failures.load(Ordering::Relaxed),
        ),
        counter(
            "state_persisting",
            "1 while the durable state reaches the disk, 0 while commits fail.",
            u64::from(status.failure().is_none()),
        ),
    ];
    if let Some(tailer) = tailer {
        let stats = tailer.stats();
        rows.push(counter(
            "tail_files",
            "Files being tailed.",
            stats.files.len() as u64,
        ));
        rows.push(counter(
            "tail_lag_bytes",
            "Bytes written to tailed files and not yet read.",
            stats.lag_bytes,
        ));
        rows.push(counter(
            "tail_rotations_total",
            "Rotations and truncations followed.",
            stats.rotations + stats.truncations,
        ));
        rows.push(counter(
            "tail_binary_files_total",
            "Files skipped because they turned binary.",
            stats.binary_files,
        ));
        rows.push(counter(
            "tail_read_errors_total",
            "Errors reading tailed files.",
            stats.read_errors,
        ));
        rows.push(counter(
            "tail_nul_bytes_skipped_total",
            "NUL bytes skipped in tailed files (copytruncate holes); the lines after them are read.",
            stats.nul_skipped_bytes,
        ));
        rows.push(counter(
            "tail_lost_files_total",
            "Rotated files gone (deleted or compressed) before they were read to their end.",
            stats.lost_files,
        ));
        rows.push(counter(
            "tail_resumed_files_total",
            "Files that came back into the globs and resumed at their remembered offset.",
            stats.resumed_files,
        ));
        rows.push(counter(
            "tail_adopted_files_total",
            "Files renamed out of the globs while the agent was down, found and read to their end.",
            stats.adopted_files,
        ));
        rows.push(counter(
            "tail_unreadable_sources",
            "Log sources whose directory or a matched file cannot be read.",
            stats.sources.iter().filter(|s| s.error.is_some()).count() as u64,
        ));
    }
    let otlp = receivers.stats();
    rows.push(counter(
        "otlp_requests_throttled_total",
        "OTLP requests answered with a retryable error (at capacity).",
        otlp.requests_throttled,
    ));
    rows.push(counter(
        "otlp_requests_timed_out_total",
        "OTLP requests whose body did not arrive within otlp.limits.body_read_timeout_ms.",
        otlp.requests_timed_out,
    ));
    rows.push(counter(
        "otlp_requests_unauthenticated_total",
        "OTLP requests refused for a missing or wrong bearer token (otlp.token).",
        otlp.requests_unauthenticated,
    ));
    rows.push(counter(
        "otlp_decompressed_bytes_high_water",
        "Most decompressed OTLP bytes held at once since start.",
        otlp.decompressed_bytes_high_water,
    ));
    rows.push(counter(
        "otlp_requests_invalid_total",
        "OTLP requests refused as malformed or over a limit.",
        otlp.requests_invalid,
    ));
    rows.push(counter(
        "otlp_spans_accepted_total",
        "Spans accepted by the OTLP receivers.",
        otlp.spans_accepted,
    ));
    rows.push(counter(
        "otlp_attributes_dropped_total",
        "Attributes cut off OTLP spans, events and logs over otlp.limits.max_attributes_per_span.",
        otlp.attributes_dropped,
    ));
    rows.push(counter(
        "otlp_metric_points_dropped_total",
        "OTLP metric points accepted but not used.",
        otlp.metric_points_dropped,
    ));
    rows
}
