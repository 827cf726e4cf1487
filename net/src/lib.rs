//! faultline-net: how the agent's listeners (dashboard and API, OTLP/gRPC, OTLP/HTTP) accept
//! and keep connections, so that no local process can blind the agent or bloat it by opening
//! connections and leaving them idle or slow; their TLS ([`Tls`]); and how a presented bearer
//! token is compared ([`BearerToken`]). What a listener serves, and who may read it, is its
//! owner's business.
//!
//! Execution model: [`serve`] runs one accept loop per listener; each accepted connection is
//! served by hyper (HTTP/1.1 or HTTP/2, told apart by the first bytes) on its own task, over
//! any tower service (an axum router, tonic routes). The crate owns the connection bounds and
//! nothing of what is served.
//!
//! Bounds, each from [`ConnectionLimits`] and each counted in [`ConnectionStats`]:
//! - at most `max_connections` open connections; one more is accepted and closed at once
//!   (refused), so the agent never runs out of file descriptors — [`fit_to_fd_limit`] keeps
//!   the listeners' sum below the process's limit;
//! - an HTTP/1 request head must arrive within `header_read_timeout_ms` (this also bounds how
//!   long a kept-alive HTTP/1 connection waits for its next request);
//! - a connection on which no byte moved either way for `idle_timeout_ms` is closed (idle
//!   HTTP/2 connections, stalled readers and writers);
//! - with [`Tls`], a TLS handshake must finish within `header_read_timeout_ms`; a failed one
//!   closes the connection and is counted.
//!
//! Before these bounds, 19,950 idle connections took the agent's RSS from 101 MB to 981 MB,
//! never given back, and at the file-descriptor limit the web and OTLP listeners stopped
//! answering.

mod limits;
mod serve;
mod tls;
mod token;
mod watched;

pub use limits::{fit_to_fd_limit, raise_fd_limit, ConnectionLimits};
pub use serve::{serve, ConnectionCounts, ConnectionStats, PeerAddr};
pub use tls::{Tls, TlsError};
pub use token::{constant_time_eq, BearerToken};
