//! Goroutine-style task counts scraped from a service's debug pages.
//!
//! Three page kinds are understood: the pprof goroutine page (`debug=1`: "goroutine profile:
//! total N"; `debug=2`: one "goroutine N \[state\]:" header per goroutine), an expvar JSON page
//! (`/debug/vars`, the count under a configurable key) and Prometheus text (`go_goroutines`).
//! A scrape that times out, answers with an error status or cannot be parsed is an error with
//! the reason — the store shows it as failing, never as a count of zero.
//!
//! Bodies are read in chunks and capped: a pprof `debug=1` page is parsed from its first
//! line, which carries the total. The rest of the page is still read (up to
//! [`MAX_DRAIN_BYTES`]) so its connection goes back to the client's pool: a scrape once a second
//! that dropped its response half-read would open a new connection each time, and leave a
//! TIME-WAIT socket towards the target's port per scrape — noise on the very node the agent
//! watches. A page larger than that (a million goroutines in many stacks) costs its connection.

use std::time::Duration;

use super::config::{TaskKind, TaskTarget};

/// The most body bytes read from a task page.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// The most bytes of a pprof page read after its total, to keep its connection alive: a Go
/// service's `debug=1` page groups goroutines by stack and is a few KiB to a few hundred.
pub const MAX_DRAIN_BYTES: usize = 512 * 1024;

/// Why a task count could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScrapeError {
    /// No answer within the timeout.
    #[error("timeout after {} ms", .0.as_millis())]
    Timeout(Duration),
    /// Connection refused, reset, DNS...
    #[error("request failed: {0}")]
    Request(String),
    /// The target answered with a non-success status.
    #[error("HTTP status {0}")]
    Status(u16),
    /// The page does not contain a count.
    #[error("no task count in page: {0}")]
    Parse(String),
}

/// Reads the task count of one target.
pub async fn scrape(
    client: &reqwest::Client,
    target: &TaskTarget,
) -> Result<(f64, TaskKind), ScrapeError> {
    let timeout = target.timeout();
    match tokio::time::timeout(timeout, scrape_inner(client, target)).await {
        Ok(result) => result,
        Err(_) => Err(ScrapeError::Timeout(timeout)),
    }
}

async fn scrape_inner(
    client: &reqwest::Client,
    target: &TaskTarget,
) -> Result<(f64, TaskKind), ScrapeError> {
    let mut response = client
        .get(&target.url)
        .send()
        .await
        .map_err(|e| request_error(&e))?;
    if !response.status().is_success() {
        return Err(ScrapeError::Status(response.status().as_u16()));
    }
    let mut body: Vec<u8> = Vec::new();
    // Bytes read past the pprof total (which is on the first line): only drained.
    let mut drained: Option<usize> = None;
    loop {
        let chunk = response.chunk().await.map_err(|e| request_error(&e))?;
        let Some(chunk) = chunk else { break };
        if let Some(n) = drained.as_mut() {
            *n += chunk.len();
            if *n > MAX_DRAIN_BYTES {
                break;
            }
            continue;
        }
        let room = MAX_BODY_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if matches!(target.kind, TaskKind::Pprof | TaskKind::Auto)
            && body.starts_with(b"goroutine profile:")
        {
            if let Some(end) = body.iter().position(|&b| b == b'\n') {
                drained = Some(body.len() - end);
                body.truncate(end + 1);
                continue;
            }
        }
        if body.len() >= MAX_BODY_BYTES {
            break;
        }
    }
    let text = String::from_utf8_lossy(&body);
    parse_task_count(target.kind, &text, target.key.as_deref()).map_err(ScrapeError::Parse)
}

/// The error text of a failed request, with the cause chain (reqwest's top-level message alone
/// says little: "error sending request").
fn request_error(e: &reqwest::Error) -> ScrapeError {
    use std::error::Error as _;
    let mut message = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        message.push_str(": ");
        message.push_str(&c.to_string());
        cause = c.source();
    }
    ScrapeError::Request(message)
}

/// Finds the task count in a page of the given kind (`Auto`: told apart by the body) and
/// returns it with the kind it was read as. `key` overrides the expvar key / Prometheus name.
pub fn parse_task_count(
    kind: TaskKind,
    body: &str,
    key: Option<&str>,
) -> Result<(f64, TaskKind), String> {
    let kind = match kind {
        TaskKind::Auto => detect_kind(body),
        k => k,
    };
    let value = match kind {
        TaskKind::Pprof => parse_pprof(body),
        TaskKind::Expvar => parse_expvar(body, key.unwrap_or("goroutines")),
        TaskKind::Prometheus | TaskKind::Auto => {
            parse_prometheus(body, key.unwrap_or("go_goroutines"))
        }
    }?;
    Ok((value, kind))
}

fn detect_kind(body: &str) -> TaskKind {
    let start = body.trim_start();
    if start.starts_with("goroutine ") {
        TaskKind::Pprof
    } else if start.starts_with('{') {
        TaskKind::Expvar
    } else {
        TaskKind::Prometheus
    }
}

/// `debug=1`: "goroutine profile: total N"; `debug=2`: count the "goroutine N [" headers.
fn parse_pprof(body: &str) -> Result<f64, String> {
    let first = body.lines().next().unwrap_or("");
    if let Some(rest) = first.strip_prefix("goroutine profile: total ") {
        return rest
            .trim()
            .parse::<u64>()
            .map(|n| n as f64)
            .map_err(|_| format!("bad total in {first:?}"));
    }
    let headers = body
        .lines()
        .filter(|l| {
            l.strip_prefix("goroutine ").is_some_and(|rest| {
                let mut parts = rest.splitn(2, ' ');
                let id_ok = parts.next().is_some_and(|id| id.parse::<u64>().is_ok());
                id_ok && parts.next().is_some_and(|s| s.starts_with('['))
            })
        })
        .count();
    if headers == 0 {
        return Err("not a pprof goroutine page".into());
    }
    Ok(headers as f64)
}

/// A number in a JSON object, `key` split on dots to descend into nested objects.
fn parse_expvar(body: &str, key: &str) -> Result<f64, String> {
    let root: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("expvar page is not JSON: {e}"))?;
    let mut value = &root;
    for part in key.split('.') {
        value = value
            .get(part)
            .ok_or_else(|| format!("expvar key {key:?} not found"))?;
    }
    value
        .as_f64()
        .ok_or_else(|| format!("expvar key {key:?} is not a number"))
}

/// The first sample of metric `name` (with or without labels) in Prometheus text.
fn parse_prometheus(body: &str, name: &str) -> Result<f64, String> {
    for line in body.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let rest = if let Some(labels) = rest.strip_prefix('{') {
            match labels.find('}') {
                Some(end) => &labels[end + 1..],
                None => continue,
            }
        } else if rest.starts_with([' ', '\t']) {
            rest
        } else {
            continue; // another metric sharing the prefix (go_goroutines_total)
        };
        if let Some(v) = rest.split_ascii_whitespace().next() {
            if let Ok(v) = v.parse::<f64>() {
                if v.is_finite() {
                    return Ok(v);
                }
            }
        }
    }
    Err(format!("metric {name:?} not found"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_page_kind() {
        let pprof1 = "goroutine profile: total 1234\n5 @ 0x43 0x44\n#\t0x4 main.f+0x1\n";
        assert_eq!(
            parse_task_count(TaskKind::Auto, pprof1, None),
            Ok((1234.0, TaskKind::Pprof))
        );
        let pprof2 = "goroutine 1 [running]:\nmain.main()\n\ngoroutine 7 [chan receive, 3 minutes]:\nmain.f()\n";
        assert_eq!(
            parse_task_count(TaskKind::Pprof, pprof2, None),
            Ok((2.0, TaskKind::Pprof))
        );
        let expvar = r#"{"cmdline": ["x"], "goroutines": 42, "runtime": {"tasks": 9}}"#;
        assert_eq!(
            parse_task_count(TaskKind::Auto, expvar, None),
            Ok((42.0, TaskKind::Expvar))
        );
        assert_eq!(
            parse_task_count(TaskKind::Expvar, expvar, Some("runtime.tasks")),
            Ok((9.0, TaskKind::Expvar))
        );
        let prom = "# HELP go_goroutines Number of goroutines.\n# TYPE go_goroutines gauge\ngo_goroutines_x 1\ngo_goroutines{job=\"a\"} 17\n";
        assert_eq!(
            parse_task_count(TaskKind::Auto, prom, None),
            Ok((17.0, TaskKind::Prometheus))
        );
    }

    #[test]
    fn pages_without_a_count_are_errors_not_zero() {
        assert!(parse_task_count(TaskKind::Auto, "", None).is_err());
        assert!(parse_task_count(TaskKind::Auto, "{\"goroutines\": \"many\"}", None).is_err());
        assert!(parse_task_count(TaskKind::Pprof, "goroutine profile: total x\n", None).is_err());
        assert!(parse_task_count(TaskKind::Prometheus, "go_goroutines NaN\n", None).is_err());
        assert!(parse_task_count(TaskKind::Auto, "<html>404</html>", None).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_pages_never_panic(body in ".{0,300}", kind in 0u8..4) {
            let kind = [TaskKind::Auto, TaskKind::Pprof, TaskKind::Expvar, TaskKind::Prometheus][kind as usize];
            let _ = parse_task_count(kind, &body, None);
        }
    }
}
