//! Shared set-up of the OTLP tests: real receivers on loopback ports, a real trace store, a
//! log queue and a task-counter sink that keeps what it gets.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use faultline_ingest::otlp::{
    log_queue, LogReceiver, OtlpConfig, OtlpOutputs, OtlpReceivers, TaskCounterSink, TaskSample,
};
use faultline_ingest::traces::{TraceStore, TraceStoreConfig};
use faultline_ingest::LogRecord;
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Keeps every task sample.
#[derive(Default)]
pub struct KeptTasks(pub Mutex<Vec<TaskSample>>);

impl TaskCounterSink for KeptTasks {
    fn record(&self, sample: TaskSample) {
        self.0.lock().push(sample);
    }
}

/// Running receivers.
pub struct Harness {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub store: Arc<TraceStore>,
    pub logs: LogReceiver,
    pub tasks: Arc<KeptTasks>,
    pub receivers: OtlpReceivers,
    pub shutdown: CancellationToken,
    pub server: JoinHandle<()>,
}

impl Harness {
    pub async fn start(config: OtlpConfig, store: TraceStoreConfig, log_capacity: usize) -> Self {
        let store = Arc::new(TraceStore::new(store));
        let (sender, logs) = log_queue(log_capacity);
        let tasks = Arc::new(KeptTasks::default());
        let receivers = OtlpReceivers::new(
            config,
            OtlpOutputs {
                store: store.clone(),
                logs: sender,
                tasks: tasks.clone(),
            },
        );
        let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
        let (grpc_listener, http_listener) = OtlpReceivers::bind(loopback, loopback)
            .await
            .expect("bind loopback");
        let grpc = grpc_listener.local_addr().expect("grpc addr");
        let http = http_listener.local_addr().expect("http addr");
        let shutdown = CancellationToken::new();
        let server = {
            let receivers = receivers.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                receivers
                    .serve(grpc_listener, http_listener, shutdown)
                    .await
                    .expect("receivers serve");
            })
        };
        Harness {
            grpc,
            http,
            store,
            logs,
            tasks,
            receivers,
            shutdown,
            server,
        }
    }

    pub async fn default() -> Self {
        Self::start(OtlpConfig::default(), TraceStoreConfig::default(), 10_000).await
    }

    /// Every record queued so far.
    pub fn drain_logs(&mut self) -> Vec<LogRecord> {
        let mut out = Vec::new();
        while let Some(batch) = self.logs.try_recv() {
            out.extend(batch.into_records());
        }
        out
    }

    /// Stops the receivers and waits until they are down (bounded).
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.server).await;
    }
}
