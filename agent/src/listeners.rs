//! The connection bounds of the agent's three listeners (dashboard and API, OTLP/gRPC,
//! OTLP/HTTP), fitted to the process's file-descriptor limit at start, and their counters for
//! `/metrics`. Serving itself is `faultline_net::serve`.

use std::net::SocketAddr;

use faultline_ingest::otlp::OtlpReceivers;
use faultline_net::{ConnectionCounts, ConnectionLimits};
use faultline_web::model::StoreCounter;
use faultline_web::AccessCounts;

/// Connection bounds of each listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerLimits {
    /// `[web.connections]`.
    pub web: ConnectionLimits,
    /// `[otlp.connections]`, for the gRPC listener.
    pub otlp_grpc: ConnectionLimits,
    /// `[otlp.connections]`, for the HTTP listener.
    pub otlp_http: ConnectionLimits,
}

impl ListenerLimits {
    /// Raises the soft file-descriptor limit to the hard one, then shrinks the listeners'
    /// `max_connections` so that together they stay below half of it: at the fd limit every
    /// listener stops answering, so a crowd of connections to one must be refused first.
    /// Returns a note for the log when they had to be shrunk.
    pub fn fit_to_fd_limit(&mut self) -> Option<String> {
        let fd_limit = faultline_net::raise_fd_limit()?;
        let asked = (self.web.max_connections, self.otlp_grpc.max_connections);
        let shrunk = faultline_net::fit_to_fd_limit(
            &mut [&mut self.web, &mut self.otlp_grpc, &mut self.otlp_http],
            fd_limit,
        );
        shrunk.then(|| {
            format!(
                "the open-files limit is {fd_limit}: serving at most {} connections on the \
                 dashboard (web.connections.max_connections = {}) and {} on each OTLP \
                 listener (otlp.connections.max_connections = {}); raise the limit \
                 (LimitNOFILE=) to allow more",
                self.web.max_connections, asked.0, self.otlp_grpc.max_connections, asked.1
            )
        })
    }
}

/// The connection counters of the web listener and of both OTLP listeners, as `/metrics`
/// rows.
pub fn connection_counters(web: ConnectionCounts, otlp: &OtlpReceivers) -> Vec<StoreCounter> {
    let counter = |name: &str, help: &str, value: u64| StoreCounter {
        name: name.into(),
        help: help.into(),
        value: value as f64,
    };
    let mut rows = Vec::new();
    for (listener, counts) in [("web", web), ("otlp", otlp.connections())] {
        rows.push(counter(
            &format!("{listener}_connections_open"),
            "Connections open now.",
            counts.open,
        ));
        rows.push(counter(
            &format!("{listener}_connections_refused_total"),
            "Connections closed at once because max_connections were open.",
            counts.refused,
        ));
        rows.push(counter(
            &format!("{listener}_connections_idle_closed_total"),
            "Connections closed because nothing moved for idle_timeout_ms.",
            counts.closed_idle,
        ));
        rows.push(counter(
            &format!("{listener}_tls_handshakes_failed_total"),
            "Connections closed because their TLS handshake failed or stalled.",
            counts.tls_failed,
        ));
    }
    rows
}

/// The web listener's access refusals, as `/metrics` rows.
pub fn access_counters(counts: AccessCounts) -> Vec<StoreCounter> {
    let counter = |name: &str, help: &str, value: u64| StoreCounter {
        name: name.into(),
        help: help.into(),
        value: value as f64,
    };
    vec![
        counter(
            "web_wrong_credentials_total",
            "Requests and logins with a wrong token or an unknown session.",
            counts.wrong_credentials,
        ),
        counter(
            "web_credentials_throttled_total",
            "Requests and logins refused by the rate limit of wrong tokens.",
            counts.throttled,
        ),
        counter(
            "web_foreign_hosts_total",
            "Requests refused for a Host header that does not name this agent.",
            counts.foreign_hosts,
        ),
    ]
}

/// Says at start, once per listener, what an OTLP receiver bound beyond loopback exposes, so
/// that an exposed receiver is a choice and not an accident: without `otlp.token` it takes
/// spans and logs from every host of the network; with a token but without `[otlp.tls]` the
/// token crosses the network in clear text.
pub fn warn_if_exposed(grpc: SocketAddr, http: SocketAddr, token: bool, tls: bool) {
    for (key, addr) in [("otlp.grpc_listen", grpc), ("otlp.http_listen", http)] {
        if addr.ip().is_loopback() {
            continue;
        }
        if !token {
            tracing::warn!(
                "{key} = {addr} is not a loopback address: any host that reaches it can send \
                 spans and logs to this agent (otlp.token is not set); set otlp.token, bind \
                 127.0.0.1 unless the senders run elsewhere, and firewall the port"
            );
        } else if !tls {
            tracing::warn!(
                "{key} = {addr} is not a loopback address and [otlp.tls] is not set: the \
                 senders' token crosses the network in clear text"
            );
        }
    }
}
