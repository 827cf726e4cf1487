//! The counters in the Prometheus text exposition format, for the agent's `/metrics`.
//!
//! Rendered from a [`CountersSnapshot`] (current values only). Metric names start with
//! `faultline_`; label values (service names can come from OTLP senders) are escaped as the
//! format requires. A failing task target has no `faultline_tasks` sample, only
//! `faultline_task_up 0`, so a dashboard never plots a failure as zero goroutines.

use std::fmt::Write as _;

use super::sockets::Direction;
use super::store::{CountersSnapshot, SourceState};

/// Appends the counters of `snapshot` to `out` in Prometheus text format.
pub fn write_prometheus(snapshot: &CountersSnapshot, out: &mut String) {
    if let Some(sockets) = &snapshot.sockets {
        header(
            out,
            "faultline_tcp_sockets",
            "gauge",
            "TCP sockets by state.",
        );
        for s in &sockets.by_state {
            let _ = writeln!(
                out,
                "faultline_tcp_sockets{{state=\"{}\"}} {}",
                s.state.name(),
                s.count
            );
        }
        header(
            out,
            "faultline_tcp_port_sockets",
            "gauge",
            "TCP sockets by service port (top N, else port=\"other\"), direction and state.",
        );
        for p in &sockets.ports {
            let dir = match p.direction {
                Direction::Inbound => "inbound",
                Direction::Outbound => "outbound",
            };
            for (state, n) in &p.states {
                let _ = writeln!(
                    out,
                    "faultline_tcp_port_sockets{{port=\"{}\",direction=\"{dir}\",state=\"{}\"}} {n}",
                    p.port,
                    state.name()
                );
            }
        }
        for (state, n) in &sockets.other.states {
            let _ = writeln!(
                out,
                "faultline_tcp_port_sockets{{port=\"other\",direction=\"any\",state=\"{}\"}} {n}",
                state.name()
            );
        }
        header(
            out,
            "faultline_tcp_listen_queue",
            "gauge",
            "Accept-queue length of listening sockets.",
        );
        for l in &sockets.listeners {
            let _ = writeln!(
                out,
                "faultline_tcp_listen_queue{{local=\"{}\"}} {}",
                l.local, l.queue
            );
        }
        header(
            out,
            "faultline_tcp_listen_backlog",
            "gauge",
            "Backlog of listening sockets.",
        );
        for l in &sockets.listeners {
            if let Some(b) = l.backlog {
                let _ = writeln!(
                    out,
                    "faultline_tcp_listen_backlog{{local=\"{}\"}} {b}",
                    l.local
                );
            }
        }
    }
    if !snapshot.sockstat.is_empty() {
        header(
            out,
            "faultline_sockstat",
            "gauge",
            "/proc/net/sockstat{,6} values.",
        );
        for (key, v) in &snapshot.sockstat {
            let _ = writeln!(out, "faultline_sockstat{{key=\"{}\"}} {v}", escape(key));
        }
    }
    if !snapshot.protocol.is_empty() {
        header(
            out,
            "faultline_tcp_protocol",
            "counter",
            "/proc/net/snmp and netstat TCP counters.",
        );
        for c in &snapshot.protocol {
            let _ = writeln!(
                out,
                "faultline_tcp_protocol{{name=\"{}\"}} {}",
                escape(&c.name),
                c.total
            );
        }
    }
    header(
        out,
        "faultline_process_open_fds",
        "gauge",
        "Open file descriptors of watched processes.",
    );
    for p in &snapshot.processes {
        if let Some(c) = &p.counters {
            let name = escape(&p.name);
            let _ = writeln!(
                out,
                "faultline_process_open_fds{{target=\"{name}\"}} {}",
                c.open_fds
            );
            if let Some(l) = c.fd_limit {
                let _ = writeln!(out, "faultline_process_fd_limit{{target=\"{name}\"}} {l}");
            }
            let _ = writeln!(
                out,
                "faultline_process_threads{{target=\"{name}\"}} {}",
                c.threads
            );
            let _ = writeln!(
                out,
                "faultline_process_rss_bytes{{target=\"{name}\"}} {}",
                c.rss_bytes
            );
        }
    }
    header(
        out,
        "faultline_tasks",
        "gauge",
        "Goroutine-style task counts per target and source.",
    );
    for t in &snapshot.tasks {
        if let Some(v) = t.value {
            let _ = writeln!(
                out,
                "faultline_tasks{{target=\"{}\",source=\"{}\"}} {v}",
                escape(&t.target),
                escape(&t.source)
            );
        }
    }
    header(
        out,
        "faultline_task_up",
        "gauge",
        "1 when the task count was read, 0 when failing.",
    );
    for t in &snapshot.tasks {
        let _ = writeln!(
            out,
            "faultline_task_up{{target=\"{}\",source=\"{}\"}} {}",
            escape(&t.target),
            escape(&t.source),
            u8::from(t.value.is_some())
        );
    }
    if let Some(rt) = &snapshot.runtime {
        header(
            out,
            "faultline_runtime_alive_tasks",
            "gauge",
            "Alive tasks of the agent's runtime.",
        );
        let _ = writeln!(
            out,
            "faultline_runtime_alive_tasks {}",
            rt.counters.alive_tasks
        );
        header(
            out,
            "faultline_runtime_global_queue_depth",
            "gauge",
            "Tasks in the runtime's global queue.",
        );
        let _ = writeln!(
            out,
            "faultline_runtime_global_queue_depth {}",
            rt.counters.global_queue_depth
        );
    }
    header(
        out,
        "faultline_counter_source_up",
        "gauge",
        "1 when a counter source is available.",
    );
    for s in &snapshot.sources {
        let _ = writeln!(
            out,
            "faultline_counter_source_up{{source=\"{}\"}} {}",
            escape(&s.name),
            u8::from(s.status == SourceState::Available)
        );
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(value: &str) -> String {
    let mut s = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_hostile_label_values() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
