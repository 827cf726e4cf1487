//! The fault lab's in-process part: three HTTP services in this binary, on loopback with real
//! sockets, for `faultline demo` to break in front of the agent.
//!
//! `gateway → orders → inventory`: axum servers calling each other with reqwest, each writing
//! its own log file in its own style (Gin's request log, zap's JSON with trace ids, Go's
//! `log`), exporting its spans over OTLP/HTTP to the agent with W3C `traceparent` between
//! them, serving a goroutine-style task page on a debug listener of its own (as `net/http/pprof`
//! on a side port), and receiving steady traffic. One [`Scenario`] is injected for real when
//! asked: connections closed or reset by the callee, connections it never closes, a client
//! that opens a connection per call, leaked tasks, a panic, an unresolvable name.
//!
//! Execution model: [`BoundLab::bind`] binds every listener and creates the log files (so the
//! agent's configuration can name them before anything runs); [`BoundLab::start`] spawns the
//! servers and the traffic on the current tokio runtime; [`Lab::shutdown`] stops them, waits
//! for every connection to end and flushes the spans. Bounds: traffic at
//! [`traffic::REQUESTS_PER_SECOND`] with at most a few hundred requests in flight; held
//! connections and leaked tasks are capped (see [`conn`] and [`service`]); each service's span
//! queue is the SDK's bounded default.

mod conn;
mod logger;
mod scenario;
mod service;
mod spans;
mod tasks;
mod traffic;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use scenario::{Scenario, ServiceName};
pub use traffic::TrafficSnapshot;

use conn::{ConnMode, FaultListener, Peer};
use logger::Logger;
use service::{ActiveFault, Service};
use spans::ServiceTracer;
use traffic::TrafficStats;

/// How long [`Lab::shutdown`] waits for the servers to finish their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// A service whose listeners are bound and whose log file exists, not yet serving.
struct BoundService {
    name: ServiceName,
    api: TcpListener,
    api_addr: SocketAddr,
    debug: TcpListener,
    debug_addr: SocketAddr,
    log: Logger,
}

/// The lab with every listener bound and every log file created, not yet running.
pub struct BoundLab {
    services: Vec<BoundService>,
}

/// What the agent must be told about one lab service.
#[derive(Debug, Clone)]
pub struct ServiceEndpoints {
    /// The service.
    pub name: ServiceName,
    /// Its API address.
    pub api: SocketAddr,
    /// Its goroutine-style task page.
    pub task_url: String,
    /// Its log file.
    pub log_path: PathBuf,
}

impl BoundLab {
    /// Binds each service's API and debug listeners on free loopback ports and creates its
    /// log file under `log_dir`.
    pub async fn bind(log_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(log_dir)
            .with_context(|| format!("cannot create the lab's log folder {}", log_dir.display()))?;
        let mut services = Vec::new();
        for name in ServiceName::ALL {
            let api = bind_loopback(name, "API").await?;
            let debug = bind_loopback(name, "debug").await?;
            let log = Logger::create(&log_dir.join(format!("{name}.log")))?;
            services.push(BoundService {
                name,
                api_addr: api.local_addr()?,
                api,
                debug_addr: debug.local_addr()?,
                debug,
                log,
            });
        }
        Ok(Self { services })
    }

    /// Each service's addresses, task page and log file, callers first.
    pub fn endpoints(&self) -> Vec<ServiceEndpoints> {
        self.services
            .iter()
            .map(|service| ServiceEndpoints {
                name: service.name,
                api: service.api_addr,
                task_url: format!(
                    "http://{}/debug/pprof/goroutine?debug=1",
                    service.debug_addr
                ),
                log_path: service.log.path().to_owned(),
            })
            .collect()
    }

    /// Starts the servers and the traffic; spans go to the agent's OTLP/HTTP receiver at
    /// `otlp_http`. Must be called on a tokio runtime.
    pub fn start(self, otlp_http: SocketAddr) -> anyhow::Result<Lab> {
        service::install_panic_hook();
        let stop = CancellationToken::new();
        let fault: ActiveFault = Arc::default();
        let addresses: Vec<(ServiceName, SocketAddr)> =
            self.services.iter().map(|s| (s.name, s.api_addr)).collect();
        let address_of = |wanted: ServiceName| {
            addresses
                .iter()
                .find(|(name, _)| *name == wanted)
                .map(|(_, addr)| *addr)
        };
        let callee_of = |name: ServiceName| match name {
            ServiceName::Gateway => Some(ServiceName::Orders),
            ServiceName::Orders => Some(ServiceName::Inventory),
            ServiceName::Inventory => None,
        };
        let gateway = address_of(ServiceName::Gateway).context("the lab has no gateway")?;
        let mut services = Vec::new();
        let mut servers = Vec::new();
        for bound in self.services {
            let callee = callee_of(bound.name)
                .and_then(|callee| address_of(callee).map(|addr| (callee, addr)));
            let tracer = ServiceTracer::new(bound.name.as_str(), otlp_http)?;
            let service = Arc::new(Service::new(
                bound.name,
                bound.api_addr,
                callee,
                bound.log,
                tracer,
                fault.clone(),
                stop.clone(),
            )?);
            service.log_start(bound.debug_addr);
            let api = FaultListener::new(
                bound.api,
                service.conn.clone(),
                service.tasks.clone(),
                stop.clone(),
            );
            let app = service
                .router()
                .into_make_service_with_connect_info::<Peer>();
            let api_stop = stop.clone();
            servers.push(tokio::spawn(async move {
                let _ = axum::serve(api, app)
                    .with_graceful_shutdown(api_stop.cancelled_owned())
                    .await;
            }));
            let debug_app = service::debug_router(bound.name, service.tasks.clone());
            let debug_stop = stop.clone();
            let debug = bound.debug;
            servers.push(tokio::spawn(async move {
                let _ = axum::serve(debug, debug_app)
                    .with_graceful_shutdown(debug_stop.cancelled_owned())
                    .await;
            }));
            services.push(service);
        }
        let stats = Arc::new(TrafficStats::default());
        let traffic = tokio::spawn(traffic::run(gateway, stats.clone(), stop.clone()));
        Ok(Lab {
            services,
            servers,
            traffic,
            stats,
            fault,
            stop,
        })
    }
}

async fn bind_loopback(name: ServiceName, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind("127.0.0.1:0")
        .await
        .with_context(|| format!("cannot bind a loopback port for {name}'s {what} listener"))
}

/// The running lab.
pub struct Lab {
    services: Vec<Arc<Service>>,
    servers: Vec<JoinHandle<()>>,
    traffic: JoinHandle<anyhow::Result<()>>,
    stats: Arc<TrafficStats>,
    fault: ActiveFault,
    stop: CancellationToken,
}

impl Lab {
    /// Injects `scenario` for real, from now until the lab stops. Only the first injection
    /// counts: a lab carries one fault, so what the agent finds has one cause.
    pub fn inject(&self, scenario: Scenario) {
        if self.fault.set(scenario).is_err() {
            return;
        }
        let mode = match scenario {
            Scenario::Eof => ConnMode::CloseWithoutResponse,
            Scenario::Reset => ConnMode::Reset,
            Scenario::CloseWait => ConnMode::Hold,
            _ => return,
        };
        if let Some(culprit) = self.service(scenario.culprit()) {
            culprit.conn.set(mode);
        }
    }

    /// What the users saw so far.
    pub fn traffic(&self) -> TrafficSnapshot {
        self.stats.snapshot()
    }

    fn service(&self, name: ServiceName) -> Option<&Arc<Service>> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Stops the traffic and the servers (every connection, held ones included, ends), waits
    /// for them up to a grace period, and flushes each service's spans to the agent.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        if let Ok(Ok(Err(err))) = tokio::time::timeout_at(deadline, self.traffic).await {
            tracing::debug!("lab traffic stopped with an error: {err:#}");
        }
        for server in self.servers {
            if tokio::time::timeout_at(deadline, server).await.is_err() {
                tracing::warn!("a lab server did not stop within {SHUTDOWN_GRACE:?}");
            }
        }
        let services = self.services;
        let flushed = tokio::task::spawn_blocking(move || {
            for service in &services {
                service.shutdown_spans();
            }
        });
        if tokio::time::timeout(SHUTDOWN_GRACE, flushed).await.is_err() {
            tracing::warn!("the lab's spans were not flushed within {SHUTDOWN_GRACE:?}");
        }
    }
}
