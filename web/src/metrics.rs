//! `GET /metrics`: the views in Prometheus text exposition format (0.0.4), so that each agent
//! can be scraped and fleet-wide questions become `sum by (cluster_id)`.
//!
//! Cluster series are labelled by the stable cluster id only (plus the canonical template as
//! an info metric), so they join across nodes and restarts.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use crate::model::{PortSide, SocketState, StoreCounter, Views};
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

    let counters = views.counters.snapshot();
    header(
        &mut out,
        "faultline_tcp_sockets",
        "gauge",
        "TCP sockets per port and state.",
    );
    for s in &counters.sockets {
        let _ = writeln!(
            out,
            "faultline_tcp_sockets{{port=\"{}\",side=\"{}\",state=\"{}\"}} {}",
            s.port,
            side_name(s.side),
            state_name(s.state),
            s.current
        );
    }
    header(
        &mut out,
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
        &mut out,
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
        &mut out,
        "faultline_process_fds",
        "gauge",
        "Open file descriptors of watched processes.",
    );
    for p in &counters.processes {
        if let Some(Some(v)) = p.fds.points.last() {
            let _ = writeln!(
                out,
                "faultline_process_fds{{pid=\"{}\",name=\"{}\"}} {}",
                p.pid,
                escape(&p.name),
                number(*v)
            );
        }
    }
    header(
        &mut out,
        "faultline_process_threads",
        "gauge",
        "Threads of watched processes.",
    );
    for p in &counters.processes {
        if let Some(Some(v)) = p.threads.points.last() {
            let _ = writeln!(
                out,
                "faultline_process_threads{{pid=\"{}\",name=\"{}\"}} {}",
                p.pid,
                escape(&p.name),
                number(*v)
            );
        }
    }
    header(
        &mut out,
        "faultline_tasks",
        "gauge",
        "Goroutine-style task count per target.",
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

    let mut store: Vec<StoreCounter> = views.clusters.store_counters();
    store.extend(views.traces.store_counters());
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

fn side_name(side: PortSide) -> &'static str {
    match side {
        PortSide::Local => "local",
        PortSide::Remote => "remote",
    }
}

/// The state's name as in the API (snake case).
pub(crate) fn state_name(state: SocketState) -> &'static str {
    match state {
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
