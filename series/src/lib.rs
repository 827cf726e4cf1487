//! faultline-series: the one vocabulary of the node's counter series.
//!
//! A counter series is named in many places: the counter store keys its history by it, the
//! diagnosis judges it, the API and `/metrics` render it and the dashboard labels it. This
//! crate is the one definition all of them share, so the names cannot disagree: the TCP
//! [`SocketState`] (with its kernel number, the name `ss` prints, the API name and the
//! Prometheus label), the [`PortSide`] of a port group, and the typed [`SeriesKey`] that
//! identifies one series. Nothing builds a series name as a string to parse it back later: a
//! key is a value, and each rendering ([`SeriesKey::label`], serde for the API) is derived
//! from it here.
//!
//! This crate owns names only. It holds no values, reads nothing and depends on no other crate
//! of the workspace; `faultline-ingest`, `faultline-diagnosis` and `faultline-web` depend on it.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The name the agent's own process is counted under (a [`SeriesKey::Process`] target).
pub const AGENT_PROCESS: &str = "faultline";

/// The state of one TCP socket, as the kernel numbers it (`include/net/tcp_states.h`).
///
/// Serialised for the API in snake case (`time_wait`); [`SocketState::ss_name`] is what
/// `ss -tan` prints and what the dashboard shows; [`SocketState::label`] is the upper-case
/// name used as a Prometheus label value.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SocketState {
    /// Data flows both ways.
    Established,
    /// Client side: SYN sent, waiting for SYN-ACK (slow or unreachable peer).
    SynSent,
    /// Server side: SYN received, handshake not finished (SYN flood, full accept queue).
    SynRecv,
    /// We closed first, FIN sent, waiting for its ACK.
    FinWait1,
    /// We closed first, our FIN is acknowledged, waiting for the peer's FIN.
    FinWait2,
    /// We closed first and the connection is done; kept 60 s (TIME_WAIT storm).
    TimeWait,
    /// Closed (unused by Linux for live TCP sockets; `ss` prints it as `UNCONN`).
    Close,
    /// The peer closed and we have not (CLOSE_WAIT leak: a missing `Close()`).
    CloseWait,
    /// The peer closed, then we did; waiting for the last ACK.
    LastAck,
    /// A listening socket.
    Listen,
    /// Both sides closed at the same time.
    Closing,
}

impl SocketState {
    /// Every state, in the kernel's order; the index of a state in this array is
    /// [`SocketState::index`].
    pub const ALL: [SocketState; 11] = [
        SocketState::Established,
        SocketState::SynSent,
        SocketState::SynRecv,
        SocketState::FinWait1,
        SocketState::FinWait2,
        SocketState::TimeWait,
        SocketState::Close,
        SocketState::CloseWait,
        SocketState::LastAck,
        SocketState::Listen,
        SocketState::Closing,
    ];

    /// The state for a kernel `TCP_*` number (1..=12), `None` for anything else.
    /// `TCP_NEW_SYN_RECV` (12, a request socket) is shown by `ss` as SYN-RECV and folded into
    /// [`SocketState::SynRecv`] the same way.
    pub fn from_kernel(code: u8) -> Option<SocketState> {
        match code {
            1..=11 => Some(Self::ALL[usize::from(code) - 1]),
            12 => Some(SocketState::SynRecv),
            _ => None,
        }
    }

    /// The kernel `TCP_*` number of this state (1..=11).
    pub fn kernel_code(self) -> u8 {
        // `index` is at most 10, so the sum always fits.
        self.index() as u8 + 1
    }

    /// The position of this state in [`SocketState::ALL`] (0..=10).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The name `ss -tan` prints (`ESTAB`, `TIME-WAIT`, `UNCONN` for CLOSE, ...); the
    /// dashboard and every evidence sentence use it, so what a person reads matches what
    /// `ss` shows them.
    pub fn ss_name(self) -> &'static str {
        match self {
            SocketState::Established => "ESTAB",
            SocketState::SynSent => "SYN-SENT",
            SocketState::SynRecv => "SYN-RECV",
            SocketState::FinWait1 => "FIN-WAIT-1",
            SocketState::FinWait2 => "FIN-WAIT-2",
            SocketState::TimeWait => "TIME-WAIT",
            SocketState::Close => "UNCONN",
            SocketState::CloseWait => "CLOSE-WAIT",
            SocketState::LastAck => "LAST-ACK",
            SocketState::Listen => "LISTEN",
            SocketState::Closing => "CLOSING",
        }
    }

    /// The state for a name printed by `ss -tan`, `None` if unknown.
    pub fn from_ss_name(name: &str) -> Option<SocketState> {
        Self::ALL.into_iter().find(|s| s.ss_name() == name)
    }

    /// The conventional upper-case name (`ESTABLISHED`, `TIME_WAIT`, ...): the Prometheus
    /// label value of `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            SocketState::Established => "ESTABLISHED",
            SocketState::SynSent => "SYN_SENT",
            SocketState::SynRecv => "SYN_RECV",
            SocketState::FinWait1 => "FIN_WAIT1",
            SocketState::FinWait2 => "FIN_WAIT2",
            SocketState::TimeWait => "TIME_WAIT",
            SocketState::Close => "CLOSE",
            SocketState::CloseWait => "CLOSE_WAIT",
            SocketState::LastAck => "LAST_ACK",
            SocketState::Listen => "LISTEN",
            SocketState::Closing => "CLOSING",
        }
    }

    /// The API (serde) name: `time_wait`, `close_wait`, ...
    pub fn api_name(self) -> &'static str {
        match self {
            SocketState::Established => "established",
            SocketState::SynSent => "syn_sent",
            SocketState::SynRecv => "syn_recv",
            SocketState::FinWait1 => "fin_wait1",
            SocketState::FinWait2 => "fin_wait2",
            SocketState::TimeWait => "time_wait",
            SocketState::Close => "close",
            SocketState::CloseWait => "close_wait",
            SocketState::LastAck => "last_ack",
            SocketState::Listen => "listen",
            SocketState::Closing => "closing",
        }
    }
}

impl fmt::Display for SocketState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.ss_name())
    }
}

/// Which end of its connections a port group's port is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PortSide {
    /// A port this node listens on: the sockets are inbound connections to a local service.
    Local,
    /// A peer's port: the sockets are this node's outbound connections to it (e.g. a
    /// database on 5432, or a local service's callers seen from the client side).
    Remote,
}

impl PortSide {
    /// The side's short name (`in` for local, `out` for remote), as `/metrics` labels it.
    pub fn direction(self) -> &'static str {
        match self {
            PortSide::Local => "in",
            PortSide::Remote => "out",
        }
    }

    /// The API (serde) name: `local` or `remote`; also the `side` label of `/metrics`.
    pub fn api_name(self) -> &'static str {
        match self {
            PortSide::Local => "local",
            PortSide::Remote => "remote",
        }
    }
}

/// A per-process counter.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ProcessMetric {
    /// Open file descriptors (sockets included).
    OpenFds,
    /// Threads.
    Threads,
    /// Resident memory in bytes.
    RssBytes,
}

/// A counter of the agent's own tokio runtime.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeMetric {
    /// Tasks spawned and not yet finished.
    AliveTasks,
    /// Tasks waiting in the global queue.
    GlobalQueueDepth,
    /// Share of worker time spent busy (0..=1).
    BusyRatio,
    /// How old the socket counts of a sample are (ms): 0 when the sockets were counted for
    /// it, else the time since the census it repeats (the census runs less often than every
    /// sample when it would cost more than its CPU budget). Tells when a socket count was
    /// really taken, so a change between two counts is measured over the time between them.
    SocketCensusAge,
}

/// Which family a counter series belongs to: what the diagnosis weighs and the dashboard
/// groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CounterKind {
    /// TCP sockets in one state on one port.
    Sockets,
    /// TCP sockets of the whole node (by state, or the ports beyond the top N).
    NodeSockets,
    /// A `/proc/net/sockstat` field.
    Sockstat,
    /// A protocol counter rate (per second).
    ProtocolRate,
    /// Open file descriptors of a watched process.
    ProcessFds,
    /// Threads of a watched process.
    ProcessThreads,
    /// Resident memory of a watched process.
    ProcessMemory,
    /// Goroutine-style task count of a target.
    Tasks,
    /// Connections waiting in a listening port's accept queue (a slow or stuck `accept()`).
    AcceptQueue,
    /// The agent's own runtime.
    Runtime,
    /// Requests or failed requests of a service per second, from its spans and access lines.
    ServiceTraffic,
}

impl CounterKind {
    /// Every kind, in declaration order.
    pub const ALL: [CounterKind; 11] = [
        CounterKind::Sockets,
        CounterKind::NodeSockets,
        CounterKind::Sockstat,
        CounterKind::ProtocolRate,
        CounterKind::ProcessFds,
        CounterKind::ProcessThreads,
        CounterKind::ProcessMemory,
        CounterKind::Tasks,
        CounterKind::AcceptQueue,
        CounterKind::Runtime,
        CounterKind::ServiceTraffic,
    ];

    /// The name the API (serde) and `/metrics` use: `sockets`, `accept_queue`, ...
    pub fn api_name(self) -> &'static str {
        match self {
            CounterKind::Sockets => "sockets",
            CounterKind::NodeSockets => "node_sockets",
            CounterKind::Sockstat => "sockstat",
            CounterKind::ProtocolRate => "protocol_rate",
            CounterKind::ProcessFds => "process_fds",
            CounterKind::ProcessThreads => "process_threads",
            CounterKind::ProcessMemory => "process_memory",
            CounterKind::Tasks => "tasks",
            CounterKind::AcceptQueue => "accept_queue",
            CounterKind::Runtime => "runtime",
            CounterKind::ServiceTraffic => "service_traffic",
        }
    }

    /// Whether series of this kind move with any traffic on the node rather than with one
    /// service (sockstat totals, protocol rates, node-wide socket totals): the diagnosis ranks
    /// them below series that say where.
    pub fn is_node_wide(self) -> bool {
        matches!(
            self,
            CounterKind::Sockstat | CounterKind::ProtocolRate | CounterKind::NodeSockets
        )
    }
}

/// A service's traffic figure, built from its spans and access lines.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TrafficMetric {
    /// Requests served per second (server spans and access lines).
    Requests,
    /// Requests that failed per second (error server spans, 5xx access lines).
    Errors,
}

/// The identity of one counter series: the key the counter store's history is kept under,
/// the diagnosis judges and the API names. Two series are the same series exactly when their
/// keys are equal.
///
/// Serialised for the API as an object tagged by `series`, e.g.
/// `{"series":"port_state","port":8080,"side":"local","state":"time_wait"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(tag = "series", rename_all = "snake_case")]
pub enum SeriesKey {
    /// All TCP sockets of the node in one state.
    NodeState {
        /// The state.
        state: SocketState,
    },
    /// Sockets of one port group in one state (kept for the top N port groups).
    PortState {
        /// The port.
        port: u16,
        /// Whether it is a local listening port or a peer's.
        side: PortSide,
        /// The state.
        state: SocketState,
    },
    /// All sockets of one port group.
    PortTotal {
        /// The port.
        port: u16,
        /// Whether it is a local listening port or a peer's.
        side: PortSide,
    },
    /// All sockets of the port groups beyond the top N, summed.
    OtherPortsTotal,
    /// Connections waiting in the accept queues of one listening port, summed over its
    /// addresses.
    ListenQueue {
        /// The listening port.
        port: u16,
    },
    /// A `/proc/net/sockstat{,6}` field, e.g. `TCP tw`.
    Sockstat {
        /// The field as the kernel file names it (protocol and key, space-separated).
        key: String,
    },
    /// The per-second rate of a kernel protocol counter, e.g. `TcpExt ListenOverflows`.
    ProtocolRate {
        /// The counter as `/proc/net/snmp` / `netstat` name it (group and name,
        /// space-separated).
        key: String,
    },
    /// A counter of one watched process target.
    Process {
        /// The target's name.
        name: String,
        /// Which counter.
        metric: ProcessMetric,
    },
    /// A goroutine-style task count of one target, from one source.
    Task {
        /// The target's name (`[[tasks]] name`, or the service of OTLP runtime metrics).
        target: String,
        /// Where the count comes from: `pprof`, `expvar`, `prometheus`, `http` or `otlp`.
        source: String,
    },
    /// A counter of the agent's own runtime.
    Runtime {
        /// Which counter.
        metric: RuntimeMetric,
    },
    /// Requests or failed requests per second of one service, from its SERVER spans and
    /// access lines: each point is the mean over the five whole seconds before it (a
    /// second's count is Poisson noise; the mean of five lets a fall from 20/s to none stand
    /// out, see the diagnosis' noise floor).
    ServiceTraffic {
        /// The service.
        service: String,
        /// Requests or failures.
        metric: TrafficMetric,
    },
}

impl SeriesKey {
    /// The family of this series.
    pub fn kind(&self) -> CounterKind {
        match self {
            SeriesKey::NodeState { .. } | SeriesKey::OtherPortsTotal => CounterKind::NodeSockets,
            SeriesKey::PortState { .. } | SeriesKey::PortTotal { .. } => CounterKind::Sockets,
            SeriesKey::ListenQueue { .. } => CounterKind::AcceptQueue,
            SeriesKey::Sockstat { .. } => CounterKind::Sockstat,
            SeriesKey::ProtocolRate { .. } => CounterKind::ProtocolRate,
            SeriesKey::Process { metric, .. } => match metric {
                ProcessMetric::OpenFds => CounterKind::ProcessFds,
                ProcessMetric::Threads => CounterKind::ProcessThreads,
                ProcessMetric::RssBytes => CounterKind::ProcessMemory,
            },
            SeriesKey::Task { .. } => CounterKind::Tasks,
            SeriesKey::Runtime { .. } => CounterKind::Runtime,
            SeriesKey::ServiceTraffic { .. } => CounterKind::ServiceTraffic,
        }
    }

    /// Whether the series is a rate per second (its minute point is a mean) rather than a
    /// level (its minute point is a peak).
    pub fn is_rate(&self) -> bool {
        matches!(
            self,
            SeriesKey::ProtocolRate { .. }
                | SeriesKey::ServiceTraffic { .. }
                | SeriesKey::Runtime {
                    metric: RuntimeMetric::BusyRatio
                }
        )
    }

    /// The unit of its values as a person reads it: `sockets`, `/s`, `fds`, `bytes`, ...
    pub fn unit(&self) -> &'static str {
        match self {
            SeriesKey::NodeState { .. }
            | SeriesKey::PortState { .. }
            | SeriesKey::PortTotal { .. }
            | SeriesKey::OtherPortsTotal => "sockets",
            SeriesKey::ListenQueue { .. } => "connections",
            SeriesKey::Sockstat { key } => {
                if key.ends_with(" mem") {
                    "pages"
                } else {
                    "sockets"
                }
            }
            SeriesKey::ProtocolRate { .. } | SeriesKey::ServiceTraffic { .. } => "/s",
            SeriesKey::Process { metric, .. } => match metric {
                ProcessMetric::OpenFds => "fds",
                ProcessMetric::Threads => "threads",
                ProcessMetric::RssBytes => "bytes",
            },
            SeriesKey::Task { .. } => "tasks",
            SeriesKey::Runtime { metric } => match metric {
                RuntimeMetric::AliveTasks | RuntimeMetric::GlobalQueueDepth => "tasks",
                RuntimeMetric::BusyRatio => "ratio",
                RuntimeMetric::SocketCensusAge => "ms",
            },
        }
    }

    /// The port this series is about, if any (port groups and accept queues).
    pub fn port(&self) -> Option<u16> {
        match self {
            SeriesKey::PortState { port, .. }
            | SeriesKey::PortTotal { port, .. }
            | SeriesKey::ListenQueue { port } => Some(*port),
            _ => None,
        }
    }

    /// The name a person reads on the dashboard and in evidence sentences:
    /// `TIME-WAIT :8080` for a local listening port, `TIME-WAIT →:8080` for a peer's port,
    /// `listen queue :8080` (its accept queue), `goroutines user-svc`, `user-svc open fds`, ...
    pub fn label(&self) -> String {
        match self {
            SeriesKey::NodeState { state } => format!("{} (all ports)", state.ss_name()),
            SeriesKey::PortState { port, side, state } => {
                format!("{} {}", state.ss_name(), port_label(*port, *side))
            }
            SeriesKey::PortTotal { port, side } => format!("sockets {}", port_label(*port, *side)),
            SeriesKey::OtherPortsTotal => "sockets (other ports)".to_owned(),
            SeriesKey::ListenQueue { port } => format!("listen queue :{port}"),
            SeriesKey::Sockstat { key } => format!("sockstat {key}"),
            SeriesKey::ProtocolRate { key } => key.clone(),
            SeriesKey::Process { name, metric } => match metric {
                ProcessMetric::OpenFds => format!("{name} open fds"),
                ProcessMetric::Threads => format!("{name} threads"),
                ProcessMetric::RssBytes => format!("{name} memory"),
            },
            SeriesKey::Task { target, source } => {
                if source == "otlp" || source.is_empty() {
                    format!("goroutines {target}")
                } else {
                    format!("goroutines {target} ({source})")
                }
            }
            SeriesKey::Runtime { metric } => match metric {
                RuntimeMetric::AliveTasks => "faultline alive tasks".to_owned(),
                RuntimeMetric::GlobalQueueDepth => "faultline global queue".to_owned(),
                RuntimeMetric::BusyRatio => "faultline busy ratio".to_owned(),
                RuntimeMetric::SocketCensusAge => "faultline socket census age".to_owned(),
            },
            SeriesKey::ServiceTraffic { service, metric } => match metric {
                TrafficMetric::Requests => format!("{service} request rate"),
                TrafficMetric::Errors => format!("{service} error rate"),
            },
        }
    }
}

impl fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// `:8080` for a local port, `→:8080` for a peer's.
fn port_label(port: u16, side: PortSide) -> String {
    match side {
        PortSide::Local => format!(":{port}"),
        PortSide::Remote => format!("→:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_codes_and_ss_names_round_trip() {
        for state in SocketState::ALL {
            assert_eq!(SocketState::from_kernel(state.kernel_code()), Some(state));
            assert_eq!(SocketState::from_ss_name(state.ss_name()), Some(state));
        }
        assert_eq!(SocketState::from_kernel(12), Some(SocketState::SynRecv));
        assert_eq!(SocketState::from_kernel(0), None);
        assert_eq!(SocketState::from_kernel(13), None);
    }

    #[test]
    fn the_api_name_is_the_serde_name() {
        for state in SocketState::ALL {
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.api_name()));
        }
        for side in [PortSide::Local, PortSide::Remote] {
            let json = serde_json::to_string(&side).unwrap();
            assert_eq!(json, format!("\"{}\"", side.api_name()));
        }
        for kind in CounterKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.api_name()));
        }
        // ALL lists each kind once (api_name's match is exhaustive, so a new kind must be
        // named there; this catches one left out of ALL only by its count).
        let names: std::collections::BTreeSet<_> =
            CounterKind::ALL.iter().map(|k| k.api_name()).collect();
        assert_eq!(names.len(), CounterKind::ALL.len());
    }

    #[test]
    fn keys_render_as_the_dashboard_names_them_and_serialise_tagged() {
        let key = SeriesKey::PortState {
            port: 8080,
            side: PortSide::Remote,
            state: SocketState::TimeWait,
        };
        assert_eq!(key.label(), "TIME-WAIT →:8080");
        assert_eq!(key.kind(), CounterKind::Sockets);
        assert_eq!(key.unit(), "sockets");
        assert_eq!(
            serde_json::to_value(&key).unwrap(),
            serde_json::json!({"series": "port_state", "port": 8080, "side": "remote", "state": "time_wait"})
        );
        let back: SeriesKey = serde_json::from_value(serde_json::to_value(&key).unwrap()).unwrap();
        assert_eq!(back, key);
        let rate = SeriesKey::ProtocolRate {
            key: "TcpExt ListenOverflows".into(),
        };
        assert!(rate.is_rate() && rate.kind().is_node_wide());
        assert_eq!(rate.unit(), "/s");
    }
}
