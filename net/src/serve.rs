//! The accept loop: bounded connections, each served by hyper on its own task, and a
//! graceful stop.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::limits::ConnectionLimits;
use crate::tls::Tls;
use crate::watched::Watched;

/// Counters of one listener since start. Shared (`Arc`) between the accept loop and whoever
/// reports them.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    pub(crate) open: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    pub(crate) closed_idle: AtomicU64,
    tls_failed: AtomicU64,
}

/// A snapshot of [`ConnectionStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionCounts {
    /// Connections open now.
    pub open: u64,
    /// Connections accepted and served since start.
    pub accepted: u64,
    /// Connections closed at once because `max_connections` were open.
    pub refused: u64,
    /// Connections closed because nothing moved for `idle_timeout_ms`.
    pub closed_idle: u64,
    /// Connections closed because their TLS handshake failed or did not finish within
    /// `header_read_timeout_ms` (a plain-text client on a TLS listener, an untrusted
    /// certificate, a stalled handshake).
    pub tls_failed: u64,
}

impl ConnectionCounts {
    /// The sum of two listeners' counts.
    pub fn plus(self, other: ConnectionCounts) -> ConnectionCounts {
        ConnectionCounts {
            open: self.open + other.open,
            accepted: self.accepted + other.accepted,
            refused: self.refused + other.refused,
            closed_idle: self.closed_idle + other.closed_idle,
            tls_failed: self.tls_failed + other.tls_failed,
        }
    }
}

impl ConnectionStats {
    /// The counters now.
    pub fn counts(&self) -> ConnectionCounts {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ConnectionCounts {
            open: get(&self.open),
            accepted: get(&self.accepted),
            refused: get(&self.refused),
            closed_idle: get(&self.closed_idle),
            tls_failed: get(&self.tls_failed),
        }
    }
}

/// The peer's address, put in every request's extensions (rate limits per client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Pause after an accept error, so that a process out of file descriptors does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Serves `service` on `listener` within `limits` until `shutdown` is cancelled, then stops
/// accepting, lets the requests in flight finish and returns (the caller bounds how long it
/// waits). With `tls`, every connection is a TLS connection: its handshake must finish within
/// `header_read_timeout_ms`, and one that fails is closed and counted
/// ([`ConnectionCounts::tls_failed`]). Accept errors (out of file descriptors, a connection
/// reset before it was accepted) are logged and the loop goes on: a listener never stops by
/// itself.
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    tls: Option<Tls>,
    limits: &ConnectionLimits,
    stats: Arc<ConnectionStats>,
    shutdown: CancellationToken,
) where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let slots = Arc::new(Semaphore::new(
        limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let idle = Duration::from_millis(limits.idle_timeout_ms.max(1));
    let handshake_timeout = Duration::from_millis(limits.header_read_timeout_ms.max(1));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms.max(1)));
    // The adaptive HTTP/2 window lets a 4 MiB OTLP export flow without a window-update round
    // trip every 64 KiB.
    builder
        .http2()
        .timer(TokioTimer::new())
        .adaptive_window(true);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let mut last_error_logged: Option<tokio::time::Instant> = None;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                let now = tokio::time::Instant::now();
                if last_error_logged.is_none_or(|at| now - at > Duration::from_secs(10)) {
                    last_error_logged = Some(now);
                    tracing::warn!(
                        "cannot accept a connection on {:?}: {err}",
                        listener.local_addr().ok()
                    );
                }
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        // Loopback senders wait for each answer: Nagle's algorithm would hold small answers
        // back for a delayed ACK.
        let _ = stream.set_nodelay(true);
        let io = Watched::new(stream, idle, slot, stats.clone());
        let service = service
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(PeerAddr(peer));
                request
            });
        let service = TowerToHyperService::new(service);
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            // A connection's error (reset, idle, malformed request) is the peer's business.
            match tls {
                None => {
                    let connection = builder
                        .serve_connection_with_upgrades(TokioIo::new(io), service)
                        .into_owned();
                    let _ = watcher.watch(connection).await;
                }
                Some(tls) => {
                    let handshake = tls.acceptor().accept(io);
                    let Ok(Ok(stream)) = tokio::time::timeout(handshake_timeout, handshake).await
                    else {
                        stats.tls_failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    };
                    let connection = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned();
                    let _ = watcher.watch(connection).await;
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
