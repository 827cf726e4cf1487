//! Shared set-up of the OTLP tests: real receivers on loopback ports, a real trace store, a
//! log queue and a task-counter sink that keeps what it gets.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use faultline_ingest::otlp::{
    log_queue, LogReceiver, OtlpConfig, OtlpOutputs, OtlpReceivers, TaskCounterSink, TaskSample,
};
use faultline_ingest::traces::{TraceStore, TraceStoreConfig};
use faultline_ingest::LogRecord;
use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
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
        Self::start_with(config, store, log_capacity, None).await
    }

    /// Receivers forwarding what they accept through `exporter` when given (`[export]`).
    pub async fn start_with(
        config: OtlpConfig,
        store: TraceStoreConfig,
        log_capacity: usize,
        exporter: Option<faultline_export::Exporter>,
    ) -> Self {
        let store = Arc::new(TraceStore::new(store));
        let (sender, logs) = log_queue(log_capacity);
        let sender = match exporter {
            Some(exporter) => sender.forwarding(exporter),
            None => sender,
        };
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

pub fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

pub fn span(trace: u8, id: u8, attributes: usize) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        name: format!("op-{id}"),
        kind: 2,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_100_000_000,
        attributes: (0..attributes).map(|i| kv(&format!("k{i}"), "v")).collect(),
        ..Default::default()
    }
}

pub fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "svc")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip in memory");
    encoder.finish().expect("gzip in memory")
}

pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

pub async fn post(
    harness: &Harness,
    path: &str,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> Reply {
    let client = reqwest::Client::new();
    let mut builder = client
        .post(format!("http://{}{path}", harness.http))
        .header("content-type", content_type)
        .body(body);
    if let Some(encoding) = encoding {
        builder = builder.header("content-encoding", encoding);
    }
    let response = builder.send().await.expect("receiver answers");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Reply {
        status: response.status().as_u16(),
        content_type: header("content-type").unwrap_or_default(),
        retry_after: header("retry-after"),
        body: response
            .bytes()
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default(),
    }
}

/// `google.rpc.Status` as OTLP/HTTP error bodies carry it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}
