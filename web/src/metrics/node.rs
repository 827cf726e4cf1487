//! The node counters on `/metrics`: current values only, read through
//! [`CounterView::current`] (no history is laid out for a scrape).
//!
//! A value a failing source would have given has no sample at all: a task target that does
//! not answer is `faultline_task_up 0` without a `faultline_tasks` sample, a source that cannot
//! be read is `faultline_counter_source_up 0`, so a graph never shows a failure as 0.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::{family, single, Value};
use crate::model::{CounterView, ProcessNow, SourceState};

/// Reads one value of a process reading (`None`: no sample, e.g. no fd limit).
type ProcessValue = fn(&ProcessNow) -> Option<u64>;

/// The node counters, read from the counter store at each scrape.
pub(super) struct NodeCollector {
    counters: Arc<dyn CounterView>,
}

impl NodeCollector {
    /// The collector over `counters`.
    pub(super) fn new(counters: Arc<dyn CounterView>) -> NodeCollector {
        NodeCollector { counters }
    }
}

impl fmt::Debug for NodeCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeCollector").finish_non_exhaustive()
    }
}

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let counters = self.counters.current();
        let e = &mut encoder;
        let gauge = MetricType::Gauge;

        let mut sockets: Vec<([(&str, String); 3], Value)> = counters
            .sockets
            .iter()
            .map(|s| {
                let labels = [
                    ("port", s.port.to_string()),
                    ("side", s.side.api_name().to_owned()),
                    ("state", s.state.api_name().to_owned()),
                ];
                (labels, Value::from(s.current))
            })
            .collect();
        if let Some(totals) = &counters.socket_totals {
            sockets.extend(totals.other_ports.by_state.iter().map(|s| {
                let labels = [
                    ("port", "other".to_owned()),
                    ("side", "any".to_owned()),
                    ("state", s.state.api_name().to_owned()),
                ];
                (labels, Value::from(s.count))
            }));
        }
        family(
            e,
            "faultline_tcp_sockets",
            "TCP sockets per service port and state; port=\"other\" sums the ports beyond the top N.",
            gauge,
            sockets,
        )?;
        if let Some(totals) = &counters.socket_totals {
            family(
                e,
                "faultline_tcp_state_sockets",
                "TCP sockets of the node by state, all ports.",
                gauge,
                totals
                    .by_state
                    .iter()
                    .map(|s| ([("state", s.state.api_name())], Value::from(s.current))),
            )?;
        }
        let listener = |address: &str, port: u16| {
            [("address", address.to_owned()), ("port", port.to_string())]
        };
        family(
            e,
            "faultline_tcp_listen_queue",
            "Connections waiting for accept() on a listening socket.",
            gauge,
            counters
                .listeners
                .iter()
                .map(|l| (listener(&l.address, l.port), Value::from(l.queue))),
        )?;
        family(
            e,
            "faultline_tcp_listen_backlog",
            "Backlog of a listening socket (absent when the socket source cannot tell).",
            gauge,
            counters
                .listeners
                .iter()
                .filter_map(|l| Some((listener(&l.address, l.port), Value::from(l.backlog?)))),
        )?;
        family(
            e,
            "faultline_sockstat",
            "Fields of /proc/net/sockstat.",
            gauge,
            counters
                .sockstat
                .iter()
                .filter_map(|s| Some(([("name", s.name.as_str())], Value::from(s.current?)))),
        )?;
        family(
            e,
            "faultline_protocol_rate",
            "Protocol counter rates, per second.",
            gauge,
            counters
                .protocol_rates
                .iter()
                .filter_map(|s| Some(([("name", s.name.as_str())], Value::from(s.current?)))),
        )?;
        family(
            e,
            "faultline_protocol",
            "Running totals of the kernel's TCP protocol counters (/proc/net/snmp, netstat).",
            MetricType::Counter,
            counters
                .protocol_rates
                .iter()
                .filter_map(|s| Some(([("name", s.name.as_str())], Value::from(s.total?)))),
        )?;

        let processes: Vec<([(&str, String); 2], &ProcessNow)> = counters
            .processes
            .iter()
            .filter_map(|p| {
                let labels = [("pid", p.pid.to_string()), ("name", p.name.clone())];
                Some((labels, p.current.as_ref()?))
            })
            .collect();
        let process_gauges: [(&str, &str, ProcessValue); 4] = [
            (
                "faultline_process_fds",
                "Open file descriptors of watched processes.",
                |p| Some(p.open_fds),
            ),
            (
                "faultline_process_fd_limit",
                "Soft limit on open files of watched processes (absent when unlimited).",
                |p| p.fd_limit,
            ),
            (
                "faultline_process_threads",
                "Threads of watched processes.",
                |p| Some(p.threads),
            ),
            (
                "faultline_process_rss_bytes",
                "Resident memory of watched processes, in bytes.",
                |p| Some(p.rss_bytes),
            ),
        ];
        for (name, help, value) in process_gauges {
            family(
                e,
                name,
                help,
                gauge,
                processes
                    .iter()
                    .filter_map(|(labels, now)| Some((labels.clone(), Value::from(value(now)?)))),
            )?;
        }

        family(
            e,
            "faultline_tasks",
            "Goroutine-style task count per target (absent while the target fails).",
            gauge,
            counters
                .tasks
                .iter()
                .filter_map(|t| Some(([("target", t.target.as_str())], Value::from(t.current?)))),
        )?;
        family(
            e,
            "faultline_task_up",
            "1 when the target's task count was read at the latest sample, 0 when it fails.",
            gauge,
            counters.tasks.iter().map(|t| {
                let up = u64::from(t.current.is_some());
                ([("target", t.target.as_str())], Value::from(up))
            }),
        )?;
        family(
            e,
            "faultline_counter_source_up",
            "1 when a node counter source was read at the latest sample, 0 when unavailable or failing.",
            gauge,
            counters.sources.iter().map(|s| {
                let up = u64::from(s.status == SourceState::Available);
                ([("source", s.name.as_str())], Value::from(up))
            }),
        )?;

        if let Some(rt) = &counters.runtime {
            single(
                e,
                "faultline_runtime_workers",
                "Worker threads of the agent's tokio runtime.",
                gauge,
                Value::from(rt.workers),
            )?;
            single(
                e,
                "faultline_runtime_alive_tasks",
                "Alive tasks of the agent's tokio runtime.",
                gauge,
                Value::from(rt.alive_tasks.current),
            )?;
            single(
                e,
                "faultline_runtime_global_queue_depth",
                "Tasks waiting in the agent's runtime global queue.",
                gauge,
                Value::from(rt.global_queue_depth.current),
            )?;
            if let Some(busy) = rt.busy_ratio {
                single(
                    e,
                    "faultline_runtime_busy_ratio",
                    "Fraction of the agent's runtime worker time spent busy over the last interval.",
                    gauge,
                    Value::Float(busy),
                )?;
            }
        }
        Ok(())
    }
}
