//! Configuration of the counter sampler: interval, history sizes, socket source, task targets
//! and process targets.
//!
//! Every key has a default, unknown keys are an error (`deny_unknown_fields`), and
//! [`CountersConfig::validate`] names the bad key. The agent embeds [`CountersConfig`] as a
//! `[counters]` table; the top-level `[[tasks]]` tables (name + url) map onto
//! [`TaskTarget::from_url`].

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

/// A configuration value that cannot be used; the message names the key.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("counters.{key} = {value}: {why}")]
pub struct CountersConfigError {
    /// The key, relative to `[counters]` (`tasks[2].timeout_ms`).
    pub key: String,
    /// The offending value.
    pub value: String,
    /// What is wrong with it.
    pub why: String,
}

/// Which socket source to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SocketSourceChoice {
    /// Netlink `sock_diag`, falling back to `/proc/net/tcp{,6}` when it is refused.
    #[default]
    Auto,
    /// Netlink only; the sockets are shown as failing when it is refused.
    Netlink,
    /// `/proc/net/tcp{,6}` only.
    Proc,
}

/// `[counters]`: the node counter sampler.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CountersConfig {
    /// Sampling interval in milliseconds (default 1000, at least 100).
    pub interval_ms: u64,
    /// How many port groups are kept individually; the rest are summed as "other" (default 16).
    /// The services' own ports (`[[counters.processes]] listen_port`, the ports their spans
    /// name) are kept individually beyond them.
    pub top_ports: usize,
    /// Samples kept at full resolution (default 900: 15 min at 1 s).
    pub history_seconds: usize,
    /// One-minute points kept (default 1440: 24 h).
    pub history_minutes: usize,
    /// Upper bound on the number of history series, whatever the number of ports, targets and
    /// processes (default 1024). A series stores only its points from the first known one to
    /// the last, at most about 9 KiB at the default history sizes (a series sampled for the
    /// whole 15 minutes and 24 hours); a port group that was busy for a minute costs a few
    /// bytes once its sample points have left the 15 minutes, for the day it is kept. A series
    /// not seen for 15 minutes + 24 hours is dropped.
    pub max_series: usize,
    /// Upper bound on task counters (scraped targets plus OTLP senders; default 256).
    pub max_task_targets: usize,
    /// How often the agent saves the history to its data directory, so that a restarted agent
    /// still has the counters' baselines (default 15000 ms; at least 1000; 0: never saved).
    /// A restart loses at most this much of the history.
    pub save_interval_ms: u64,
    /// A task count received through OTLP and not refreshed for this long is shown as failing
    /// (default 60000 ms).
    pub otlp_stale_after_ms: u64,
    /// Socket source.
    pub socket_source: SocketSourceChoice,
    /// Most of one core, in percent, the socket census may use on average (default 0.5; 0: no
    /// limit). A census costs CPU in proportion to the node's sockets, nearly all of it in the
    /// kernel's netlink dump (about 0.35 ms per 1,000 sockets, plus 1.5 ms for the walk of
    /// the established-socket hash table itself, empty or not); when one costs more than this
    /// share of the interval, the census runs only as often as the budget allows, the samples
    /// between repeat the last census, and the socket source's status says how often it is
    /// counted. At 0.5 % a census runs every second up to about 15,000 sockets; at 25,000
    /// sockets (a TIME-WAIT storm on a busy node) every ~2 s, at 100,000 every ~8 s. The
    /// earlier default, 2 %, was twice the agent's whole budget (1 % of a core) and kept a
    /// census a second up to ~80,000 sockets; a storm's young TIME-WAIT series is judged on
    /// fresh censuses only (a repeated count is no climb), so a slower census delays that
    /// judgement by about one census interval.
    pub socket_cpu_budget_percent: f64,
    /// Where procfs is mounted (default `/proc`; a host's `/proc` inside a container).
    pub proc_root: PathBuf,
    /// `[[counters.tasks]]`: goroutine-style task counters to scrape.
    pub tasks: Vec<TaskTarget>,
    /// `[[counters.processes]]`: services whose fds, threads and RSS are followed.
    pub processes: Vec<ProcessTarget>,
}

impl Default for CountersConfig {
    fn default() -> Self {
        CountersConfig {
            interval_ms: 1000,
            top_ports: 16,
            history_seconds: 900,
            history_minutes: 1440,
            max_series: 1024,
            max_task_targets: 256,
            save_interval_ms: 15_000,
            otlp_stale_after_ms: 60_000,
            socket_source: SocketSourceChoice::Auto,
            socket_cpu_budget_percent: 0.5,
            proc_root: PathBuf::from("/proc"),
            tasks: Vec::new(),
            processes: Vec::new(),
        }
    }
}

impl CountersConfig {
    /// The sampling interval.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    /// Checks every value; the error names the first bad key.
    pub fn validate(&self) -> Result<(), CountersConfigError> {
        let bad = |key: &str, value: String, why: &str| {
            Err(CountersConfigError {
                key: key.into(),
                value,
                why: why.into(),
            })
        };
        if self.interval_ms < 100 {
            return bad(
                "interval_ms",
                self.interval_ms.to_string(),
                "must be at least 100",
            );
        }
        if (1..1000).contains(&self.save_interval_ms) {
            return bad(
                "save_interval_ms",
                self.save_interval_ms.to_string(),
                "must be 0 (never saved) or at least 1000",
            );
        }
        if !(0.0..=100.0).contains(&self.socket_cpu_budget_percent) {
            return bad(
                "socket_cpu_budget_percent",
                self.socket_cpu_budget_percent.to_string(),
                "must be between 0 (no limit) and 100",
            );
        }
        for (key, v) in [
            ("top_ports", self.top_ports),
            ("history_seconds", self.history_seconds),
            ("history_minutes", self.history_minutes),
            ("max_series", self.max_series),
            ("max_task_targets", self.max_task_targets),
        ] {
            if v == 0 {
                return bad(key, v.to_string(), "must be at least 1");
            }
        }
        if self.tasks.len() > self.max_task_targets {
            return bad(
                "tasks",
                format!("{} targets", self.tasks.len()),
                "more targets than max_task_targets",
            );
        }
        for (i, t) in self.tasks.iter().enumerate() {
            if t.name.is_empty() {
                return bad(
                    &format!("tasks[{i}].name"),
                    "\"\"".into(),
                    "must not be empty",
                );
            }
            if !(t.url.starts_with("http://") || t.url.starts_with("https://")) {
                return bad(
                    &format!("tasks[{i}].url"),
                    t.url.clone(),
                    "must be an http(s) URL",
                );
            }
            if t.timeout_ms == 0 {
                return bad(
                    &format!("tasks[{i}].timeout_ms"),
                    "0".into(),
                    "must be at least 1",
                );
            }
        }
        for (i, p) in self.processes.iter().enumerate() {
            let set = [
                p.pid_file.is_some(),
                p.process_name.is_some(),
                p.listen_port.is_some(),
            ]
            .iter()
            .filter(|&&b| b)
            .count();
            if set != 1 {
                return bad(
                    &format!("processes[{i}]"),
                    p.name.clone(),
                    "set exactly one of pid_file, process_name, listen_port",
                );
            }
        }
        Ok(())
    }
}

/// What a task target's page is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Told apart by the body: a pprof goroutine page, a JSON expvar page, else Prometheus text.
    #[default]
    Auto,
    /// `/debug/pprof/goroutine?debug=1` ("goroutine profile: total N"; `debug=2` also works).
    Pprof,
    /// `/debug/vars`: a JSON object; the count is under `key` (default `goroutines`). Go's
    /// expvar does not publish the goroutine count by itself; services usually add
    /// `expvar.Publish("goroutines", expvar.Func(func() any { return runtime.NumGoroutine() }))`.
    Expvar,
    /// Prometheus text; the count is the metric named `key` (default `go_goroutines`).
    Prometheus,
}

/// One `[[counters.tasks]]` table: a page that tells a service's goroutine count.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskTarget {
    /// The name shown for the counter (usually the service).
    pub name: String,
    /// The page to scrape.
    pub url: String,
    /// What the page is.
    #[serde(default)]
    pub kind: TaskKind,
    /// expvar key (dots descend into objects) or Prometheus metric name; default per kind.
    #[serde(default)]
    pub key: Option<String>,
    /// Scrape timeout in milliseconds (default 800); a timeout shows the target as failing.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    800
}

impl TaskTarget {
    /// A target with defaults for everything but the name and URL, as `[[tasks]]` and
    /// `--task NAME=URL` give them.
    pub fn from_url(name: impl Into<String>, url: impl Into<String>) -> TaskTarget {
        TaskTarget {
            name: name.into(),
            url: url.into(),
            kind: TaskKind::Auto,
            key: None,
            timeout_ms: default_timeout_ms(),
        }
    }

    /// The scrape timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// One `[[counters.processes]]` table: a service process found by exactly one of pid file,
/// process name or listening port.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessTarget {
    /// The name shown.
    pub name: String,
    /// A file holding the pid.
    #[serde(default)]
    pub pid_file: Option<PathBuf>,
    /// The process name (`comm`, or the file name of `argv[0]`); all matches are summed.
    #[serde(default)]
    pub process_name: Option<String>,
    /// A TCP port the process listens on.
    #[serde(default)]
    pub listen_port: Option<u16>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_keys_are_named() {
        assert!(CountersConfig::default().validate().is_ok());
        let cfg: CountersConfig = toml_like(r#"{"interval_ms": 50}"#);
        let err = cfg
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("counters.interval_ms"), "{err}");
        let cfg: CountersConfig = toml_like(
            r#"{"processes": [{"name": "api", "pid_file": "/run/a.pid", "listen_port": 80}]}"#,
        );
        let err = cfg
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("processes[0]"), "{err}");
        assert!(serde_json::from_str::<CountersConfig>(r#"{"intervall_ms": 5}"#).is_err());
    }

    fn toml_like(json: &str) -> CountersConfig {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("test config {json}: {e}"))
    }
}
