//! Node counters: the node's TCP sockets by state and port, accept queues, socket totals and
//! TCP protocol counters, per-service process counters, and goroutine-style task counters —
//! sampled continuously with history, so an SRE sees what the network and the services were
//! doing while an error pattern emerged.
//!
//! How it fits together:
//! - sources, one file each: [`netlink`] (`sock_diag`, what `ss` uses) with [`proc_tcp`]
//!   (`/proc/net/tcp{,6}`) as fallback, chosen per sample by [`reader`]; [`proc_net`]
//!   (`sockstat`, `snmp`, `netstat`); [`process`] (fds, threads, RSS); [`tasks`] (pprof, expvar,
//!   Prometheus pages); [`runtime`] (the agent's own tokio runtime);
//! - [`sockets`] turns a socket list into a [`SocketCensus`] (by state, by service port);
//!   [`owners`] finds the process holding each listening socket, and [`outgoing`] the
//!   connections each process target holds to the node's listeners;
//! - [`store`] keeps the latest values, deltas, source statuses and the bounded [`history`],
//!   which [`saved`] carries across an agent restart;
//! - [`sampler`] runs it all once per interval as a tokio task.
//!
//! To run it: build a [`CountersConfig`], share a [`CounterStore`] in an `Arc`, call
//! [`spawn_sampler`] with a cancellation token; read with [`CounterStore::snapshot`] (the
//! binary maps that snapshot onto the web model, which the API, the dashboard and `/metrics`
//! are rendered from; nothing here writes an output format). OTLP runtime metrics come in through
//! [`CounterStore::record_task`]. Nothing here stops the agent: a source that fails is shown as
//! unavailable or failing, with the reason, and the others go on.

pub mod closes;
pub mod config;
pub mod error;
pub mod history;
pub mod netlink;
pub mod outgoing;
pub mod owners;
pub mod proc_net;
pub mod proc_tcp;
pub mod process;
pub mod reader;
pub mod runtime;
pub mod sampler;
pub mod saved;
pub mod sockets;
pub mod stacks;
pub mod store;
pub mod tasks;

pub use config::{
    CountersConfig, CountersConfigError, ProcessTarget, SocketSourceChoice, TaskKind, TaskTarget,
};
pub use error::CounterError;
pub use faultline_series::{PortSide, SocketState};
pub use owners::PortOwner;
pub use reader::SocketReader;
pub use sampler::{spawn_sampler, NodeSampler};
pub use saved::SavedCounters;
pub use sockets::{PortKey, SocketCensus, SocketEntry, StateCounts};
pub use store::{
    CounterStore, CountersSnapshot, ListeningProcess, PreparedRestore, Restored, SaveCopy,
    SnapshotOptions, SourceState,
};
