//! `GET /metrics`: the views in Prometheus text exposition format (0.0.4), so that each agent
//! can be scraped and fleet-wide questions become `sum by (cluster_id)`.
//!
//! This is the agent's one Prometheus writer: clusters, node counters and store counters all
//! come from the web model's documents, so `/metrics` and the JSON API cannot disagree.
//!
//! Cluster series are labelled by the stable cluster id only (plus the canonical template as
//! an info metric), so they join across nodes and restarts. Counter series carry current
//! values only (Prometheus keeps the history); a failing source or task target has no value
//! sample but an `_up 0` one, never a 0 that would read as "no sockets" or "no goroutines".

use std::fmt::Write;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use crate::model::{CountersSnapshot, ProcessNow, SourceState, StoreCounter, Views};
use crate::{ApiError, Shared};

/// Content type of the text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders every metric the views offer.
pub(crate) fn render(views: &Views) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let clusters = views.clusters.summaries();

    header(
        &mut out,
        "faultline_cluster_events_total",
        "counter",
        "Occurrences of each error pattern.",
    );
    for c in clusters.iter() {
        let _ = writeln!(
            out,
            "faultline_cluster_events_total{{cluster_id=\"{}\"}} {}",
            escape(&c.id),
            c.total_count
        );
    }
    header(
        &mut out,
        "faultline_cluster_rate_per_minute",
        "gauge",
        "Current rate of each error pattern, per minute.",
    );
    for c in clusters.iter() {
        let _ = writeln!(
            out,
            "faultline_cluster_rate_per_minute{{cluster_id=\"{}\"}} {}",
            escape(&c.id),
            number(c.rate_per_minute)
        );
    }
    header(
        &mut out,
        "faultline_cluster_emerging",
        "gauge",
        "1 while the error pattern is emerging (new or surging).",
    );
    for c in clusters.iter() {
        let _ = writeln!(
            out,
            "faultline_cluster_emerging{{cluster_id=\"{}\"}} {}",
            escape(&c.id),
            u8::from(c.emergence.is_some())
        );
    }
    header(
        &mut out,
        "faultline_cluster_info",
        "gauge",
        "Canonical template of each error pattern (always 1).",
    );
    for c in clusters.iter() {
        let _ = writeln!(
            out,
            "faultline_cluster_info{{cluster_id=\"{}\",template=\"{}\"}} 1",
            escape(&c.id),
            escape(&truncate(&c.canonical_template, 200))
        );
    }
    header(
        &mut out,
        "faultline_clusters",
        "gauge",
        "Error patterns known to the agent.",
    );
    let _ = writeln!(out, "faultline_clusters {}", clusters.len());

    write_counters(&views.counters.snapshot(), &mut out);

    let mut store: Vec<StoreCounter> = views.clusters.store_counters();
    store.extend(views.traces.store_counters());
    store.extend(views.counters.store_counters());
    for s in store {
        if s.name.is_empty()
            || !s
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            continue;
        }
        let name = format!("faultline_store_{}", s.name);
        let kind = if s.name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        header(&mut out, &name, kind, &s.help);
        let _ = writeln!(out, "{name} {}", number(s.value));
    }
    out
}

/// Reads one value of a process reading (`None`: no sample, e.g. no fd limit).
type ProcessValue = fn(&ProcessNow) -> Option<u64>;

/// Appends the node counters of `counters` (current values only).
///
/// A value a failing source would have given has no sample at all: a task target that does
/// not answer is `faultline_task_up 0` without a `faultline_tasks` sample, a source that
/// cannot be read is `faultline_counter_source_up 0`, so a graph never shows a failure as 0.
fn write_counters(counters: &CountersSnapshot, out: &mut String) {
    header(
        out,
        "faultline_tcp_sockets",
        "gauge",
        "TCP sockets per service port and state; port=\"other\" sums the ports beyond the top N.",
    );
    for s in &counters.sockets {
        let _ = writeln!(
            out,
            "faultline_tcp_sockets{{port=\"{}\",side=\"{}\",state=\"{}\"}} {}",
            s.port,
            s.side.api_name(),
            s.state.api_name(),
            s.current
        );
    }
    if let Some(totals) = &counters.socket_totals {
        for s in &totals.other_ports.by_state {
            let _ = writeln!(
                out,
                "faultline_tcp_sockets{{port=\"other\",side=\"any\",state=\"{}\"}} {}",
                s.state.api_name(),
                s.count
            );
        }
        header(
            out,
            "faultline_tcp_state_sockets",
            "gauge",
            "TCP sockets of the node by state, all ports.",
        );
        for s in &totals.by_state {
            let _ = writeln!(
                out,
                "faultline_tcp_state_sockets{{state=\"{}\"}} {}",
                s.state.api_name(),
                s.current
            );
        }
    }
    header(
        out,
        "faultline_tcp_listen_queue",
        "gauge",
        "Connections waiting for accept() on a listening socket.",
    );
    for l in &counters.listeners {
        let _ = writeln!(
            out,
            "faultline_tcp_listen_queue{{address=\"{}\",port=\"{}\"}} {}",
            escape(&l.address),
            l.port,
            l.queue
        );
    }
    header(
        out,
        "faultline_tcp_listen_backlog",
        "gauge",
        "Backlog of a listening socket (absent when the socket source cannot tell).",
    );
    for l in &counters.listeners {
        if let Some(backlog) = l.backlog {
            let _ = writeln!(
                out,
                "faultline_tcp_listen_backlog{{address=\"{}\",port=\"{}\"}} {backlog}",
                escape(&l.address),
                l.port
            );
        }
    }
    header(
        out,
        "faultline_sockstat",
        "gauge",
        "Fields of /proc/net/sockstat.",
    );
    for s in &counters.sockstat {
        if let Some(v) = s.current {
            let _ = writeln!(
                out,
                "faultline_sockstat{{name=\"{}\"}} {}",
                escape(&s.name),
                number(v)
            );
        }
    }
    header(
        out,
        "faultline_protocol_rate",
        "gauge",
        "Protocol counter rates, per second.",
    );
    for s in &counters.protocol_rates {
        if let Some(v) = s.current {
            let _ = writeln!(
                out,
                "faultline_protocol_rate{{name=\"{}\"}} {}",
                escape(&s.name),
                number(v)
            );
        }
    }
    header(
        out,
        "faultline_protocol_total",
        "counter",
        "Running totals of the kernel's TCP protocol counters (/proc/net/snmp, netstat).",
    );
    for s in &counters.protocol_rates {
        if let Some(total) = s.total {
            let _ = writeln!(
                out,
                "faultline_protocol_total{{name=\"{}\"}} {total}",
                escape(&s.name)
            );
        }
    }
    let processes: Vec<(String, &ProcessNow)> = counters
        .processes
        .iter()
        .filter_map(|p| {
            let labels = format!("pid=\"{}\",name=\"{}\"", p.pid, escape(&p.name));
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
        header(out, name, "gauge", help);
        for (labels, now) in &processes {
            if let Some(v) = value(now) {
                let _ = writeln!(out, "{name}{{{labels}}} {v}");
            }
        }
    }
    header(
        out,
        "faultline_tasks",
        "gauge",
        "Goroutine-style task count per target (absent while the target fails).",
    );
    for t in &counters.tasks {
        if let Some(v) = t.current {
            let _ = writeln!(
                out,
                "faultline_tasks{{target=\"{}\"}} {}",
                escape(&t.target),
                v
            );
        }
    }
    header(
        out,
        "faultline_task_up",
        "gauge",
        "1 when the target's task count was read at the latest sample, 0 when it fails.",
    );
    for t in &counters.tasks {
        let _ = writeln!(
            out,
            "faultline_task_up{{target=\"{}\"}} {}",
            escape(&t.target),
            u8::from(t.current.is_some())
        );
    }
    header(
        out,
        "faultline_counter_source_up",
        "gauge",
        "1 when a node counter source was read at the latest sample, 0 when unavailable or failing.",
    );
    for s in &counters.sources {
        let _ = writeln!(
            out,
            "faultline_counter_source_up{{source=\"{}\"}} {}",
            escape(&s.name),
            u8::from(s.status == SourceState::Available)
        );
    }
    if let Some(rt) = &counters.runtime {
        let gauges = [
            (
                "faultline_runtime_workers",
                "Worker threads of the agent's tokio runtime.",
                rt.workers.to_string(),
            ),
            (
                "faultline_runtime_alive_tasks",
                "Alive tasks of the agent's tokio runtime.",
                rt.alive_tasks.current.to_string(),
            ),
            (
                "faultline_runtime_global_queue_depth",
                "Tasks waiting in the agent's runtime global queue.",
                rt.global_queue_depth.current.to_string(),
            ),
        ];
        for (name, help, value) in gauges {
            header(out, name, "gauge", help);
            let _ = writeln!(out, "{name} {value}");
        }
        if let Some(busy) = rt.busy_ratio {
            header(
                out,
                "faultline_runtime_busy_ratio",
                "gauge",
                "Fraction of the agent's runtime worker time spent busy over the last interval.",
            );
            let _ = writeln!(out, "faultline_runtime_busy_ratio {}", number(busy));
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Escapes a label value: backslash, double quote and line feed.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            _ => out.push(ch),
        }
    }
    out
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

/// A sample value as Prometheus reads it (`NaN`, `+Inf`, `-Inf` spelled its way).
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        v.to_string()
    }
}

/// `GET /metrics`.
pub(crate) async fn get(State(shared): State<Shared>) -> Result<Response, ApiError> {
    let views = shared.views()?.clone();
    let body = tokio::task::spawn_blocking(move || render(&views))
        .await
        .map_err(|err| ApiError::internal(format!("metrics rendering failed: {err}")))?;
    Ok(([(CONTENT_TYPE, TEXT_FORMAT)], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_cannot_break_the_format() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(1.5), "1.5");
    }
}
