//! Typed configuration: the TOML file, the flags that override it, and the validation that
//! turns both into [`Settings`] the agent can run on.
//!
//! Every key has a default, so `faultline run` works with no file at all. Unknown keys are an
//! error that names the key; every validation message names the key and the file it came from.

use std::fs;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use faultline_clustering::ClusteringConfig;
use faultline_diagnosis::anomaly::AnomalyConfig;
use faultline_diagnosis::hints::HintRules;
use faultline_export::{ExportConfig, ExportSettings};
use faultline_ingest::counters::{CountersConfig, TaskTarget};
use faultline_ingest::otlp::OtlpConfig as OtlpLimits;
use faultline_ingest::tail::{LogSource, TailConfig};
use faultline_ingest::traces::TraceStoreConfig;
use faultline_net::{ConnectionLimits, Tls};
use serde::Deserialize;
use thiserror::Error;

use crate::cli::{RunArgs, WebAccessArgs};
use crate::diagnosis::DiagnosisSettings;
use crate::listeners::ListenerLimits;

/// The annotated example configuration, printed by `faultline config --default`.
pub const EXAMPLE: &str = include_str!("../faultline.example.toml");

/// The system-wide data directory used when `data_dir` is not set.
pub const SYSTEM_DATA_DIR: &str = "/var/lib/faultline";

/// Fewest characters of `web.token` and `otlp.token`: 16 random hex digits are 64 bits,
/// beyond guessing at the login's rate limit. A 1-character token was accepted before.
pub const MIN_TOKEN_CHARS: usize = 16;

/// Checks a token's length; the error is the value to show (never the secret itself) and why.
fn check_token(token: &str) -> Result<(), (String, String)> {
    if token.trim().is_empty() {
        return Err((String::new(), "the token is empty".into()));
    }
    let length = token.chars().count();
    if length < MIN_TOKEN_CHARS {
        return Err((
            format!("<{length} characters>"),
            format!(
                "is too short to resist guessing: use at least {MIN_TOKEN_CHARS} characters \
                 (e.g. `openssl rand -hex 16`)"
            ),
        ));
    }
    Ok(())
}

/// The log glob tailed when no `[[logs]]` table and no `--log` flag is given.
pub const DEFAULT_LOG_GLOB: &str = "/var/log/*.log";

/// A configuration that cannot be used; the message names the key and the file.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema (unknown key, wrong type).
    #[error("config file {path}{location}: {message}")]
    Parse {
        path: PathBuf,
        location: String,
        message: String,
    },
    /// A key has a value that cannot be used.
    #[error("{key} = {value}: {why}{origin}")]
    Invalid {
        key: String,
        value: String,
        why: String,
        origin: String,
    },
}

/// The file as written: every section optional.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Checkpoints and snapshots; `None` means the system directory with a per-user fallback.
    pub data_dir: Option<PathBuf>,
    /// Threads that run the agent's async work (OTLP requests, the record pipeline, the web).
    pub worker_threads: WorkerThreads,
    /// `[web]`
    pub web: WebConfig,
    /// `[otlp]`
    pub otlp: OtlpConfig,
    /// `[[logs]]`; `None` (no table at all) means the default glob.
    pub logs: Option<Vec<LogSource>>,
    /// `[[tasks]]`
    pub tasks: Vec<TaskSource>,
    /// `[telemetry]`
    pub telemetry: TelemetryConfig,
    /// `[tail]`: how log files are followed.
    pub tail: TailConfig,
    /// `[clustering]`: error patterns and emergence.
    pub clustering: ClusteringConfig,
    /// `[traces]`: bounds of the trace store.
    pub traces: TraceStoreConfig,
    /// `[counters]`: the node counter sampler (`[[tasks]]` are added to its task targets).
    pub counters: CountersConfig,
    /// `[diagnosis]`: counter anomalies, incidents and hint rules.
    pub diagnosis: DiagnosisConfig,
    /// `[export]`: forwarding upstream over OTLP (off while `otlp_endpoint` is empty).
    pub export: ExportConfig,
}

/// `worker_threads`: how many threads run the agent's async work (tokio's worker threads).
/// Blocking and periodic work (the diagnosis pass, the socket census, file reads, commits)
/// runs on threads of its own whatever this says.
///
/// One by default. The agent's steady work is a few hundred small wake-ups a second (an OTLP
/// request, a batch of lines, a timer); with a worker per CPU, each task a worker woke could
/// wake another worker to steal it, and that one often found nothing: at 1,000 lines/s +
/// 1,000 spans/s two workers on a 2-vCPU node took ~80 slices of CPU a second between them
/// against ~48 for one, and the agent's CPU was 5 % lower with one (BENCHMARKS.md, "Steady
/// cost"). More workers decode OTLP on more cores at once: raise it on a node that receives
/// tens of thousands of spans a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct WorkerThreads(pub usize);

impl Default for WorkerThreads {
    fn default() -> Self {
        WorkerThreads(1)
    }
}

/// Most `worker_threads` accepted: far above any node's cores, a bound on a typo.
const MAX_WORKER_THREADS: usize = 1024;

/// `[diagnosis]`: how often the diagnosis runs, the anomaly detector's windows and the user's
/// hint rules.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiagnosisConfig {
    /// A hint rules file that extends (or, rule by rule, replaces) the shipped rules.
    pub rules: Option<PathBuf>,
    /// Time between diagnosis runs (ms): once a second raises an anomaly within a second of
    /// the sample that shows it.
    pub interval_ms: u64,
    /// `[diagnosis.anomalies]`: the detector's windows.
    pub anomalies: AnomalyConfig,
}

impl Default for DiagnosisConfig {
    fn default() -> Self {
        DiagnosisConfig {
            rules: None,
            interval_ms: 1_000,
            anomalies: AnomalyConfig::default(),
        }
    }
}

/// `[web]`: the dashboard and API listener.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Listen address.
    pub listen: String,
    /// Bearer token; required when `listen` is not loopback (unless `insecure`).
    pub token: Option<String>,
    /// Allow a non-loopback listener without a token.
    pub insecure: bool,
    /// Host names, besides IP literals and `localhost`, that browsers may use to reach the
    /// dashboard when no token is set (DNS rebinding defence).
    pub allowed_hosts: Vec<String>,
    /// `[web.connections]`: connection count and timeouts of the listener.
    pub connections: ConnectionLimits,
    /// `[web.tls]`: serve HTTPS with this certificate; none: plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Most error patterns with series of their own on `/metrics`; the rest are summed in
    /// `cluster_id="other"`.
    pub max_pattern_series: usize,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7070".into(),
            token: None,
            insecure: false,
            allowed_hosts: Vec::new(),
            connections: ConnectionLimits::default(),
            tls: None,
            max_pattern_series: faultline_web::MetricsOptions::default().max_pattern_series,
        }
    }
}

/// `[web.tls]`, `[otlp.tls]`: a listener's certificate and key, PEM files read at start.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// The certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// `[otlp]`: the OpenTelemetry receivers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// gRPC receiver address.
    pub grpc_listen: String,
    /// HTTP receiver address.
    pub http_listen: String,
    /// Bearer token every export must carry (`Authorization: Bearer`, gRPC metadata
    /// `authorization`); none: anyone who reaches the receivers may send.
    pub token: Option<String>,
    /// `[otlp.tls]`: serve both receivers over TLS with this certificate.
    pub tls: Option<TlsFiles>,
    /// `[otlp.limits]`: message sizes, attribute counts, queue bounds.
    pub limits: OtlpLimits,
    /// `[otlp.connections]`: connection count and timeouts of each OTLP listener.
    pub connections: ConnectionLimits,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            grpc_listen: "127.0.0.1:4317".into(),
            http_listen: "127.0.0.1:4318".into(),
            token: None,
            tls: None,
            limits: OtlpLimits::default(),
            connections: ConnectionLimits::default(),
        }
    }
}

/// One `[[tasks]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSource {
    /// The name shown for the counter.
    pub name: String,
    /// A pprof goroutine page, an expvar page or a Prometheus text page.
    pub url: String,
}

/// `[telemetry]`: the agent's own logs and spans.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// `text` or `json`.
    pub log_format: String,
    /// EnvFilter directives.
    pub log_level: String,
    /// OTLP/gRPC endpoint for the agent's own spans; empty: off.
    pub otlp_endpoint: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_format: "text".into(),
            log_level: "info".into(),
            otlp_endpoint: String::new(),
        }
    }
}

/// Format of the agent's own log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A validated configuration, ready to run on.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The data directory (exists and is writable once [`Settings::prepare_data_dir`] ran).
    pub data_dir: DataDir,
    /// `worker_threads`, checked (at least one).
    pub worker_threads: usize,
    /// Dashboard and API address.
    pub web_listen: SocketAddr,
    /// Bearer token of the dashboard and API.
    pub web_token: Option<String>,
    /// `web.allowed_hosts`.
    pub web_allowed_hosts: Vec<String>,
    /// `[web.tls]`, read and checked.
    pub web_tls: Option<Tls>,
    /// Bearer token of the OTLP receivers.
    pub otlp_token: Option<String>,
    /// `[otlp.tls]`, read and checked.
    pub otlp_tls: Option<Tls>,
    /// `web.max_pattern_series`, as `/metrics` takes it.
    pub web_metrics: faultline_web::MetricsOptions,
    /// OTLP gRPC receiver address.
    pub otlp_grpc: SocketAddr,
    /// OTLP HTTP receiver address.
    pub otlp_http: SocketAddr,
    /// Log sources.
    pub logs: Vec<LogSource>,
    /// Task counter sources.
    pub tasks: Vec<TaskSource>,
    /// The agent's own log format.
    pub log_format: LogFormat,
    /// The agent's own log level directives.
    pub log_level: String,
    /// Where to export the agent's own spans.
    pub otlp_endpoint: Option<String>,
    /// OTLP receiver limits.
    pub otlp_limits: OtlpLimits,
    /// Connection bounds of the three listeners.
    pub listeners: ListenerLimits,
    /// Tailer knobs.
    pub tail: TailConfig,
    /// Clustering knobs.
    pub clustering: ClusteringConfig,
    /// Trace store bounds.
    pub traces: TraceStoreConfig,
    /// Counter sampler, with the `[[tasks]]` targets included.
    pub counters: CountersConfig,
    /// The diagnosis loop, its windows and the hint rules in force.
    pub diagnosis: DiagnosisSettings,
    /// Forwarding upstream, when `export.otlp_endpoint` is set.
    pub export: Option<ExportSettings>,
}

/// Where state goes, and whether it was chosen by the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataDir {
    /// Set by `data_dir` or `--data-dir`: must be usable, or the agent refuses to start.
    Configured(PathBuf),
    /// Not set: the system directory, or a per-user one when that is not writable.
    Default,
}

/// The most a config file or a file it names (rules) may hold: far above any real one, and
/// a bound, so that a path such as `/dev/zero` or a FIFO fails at start instead of hanging it
/// or filling memory.
pub const MAX_CONFIG_FILE_BYTES: u64 = 4 << 20;

/// Reads a small UTF-8 file a person wrote, refusing one larger than
/// [`MAX_CONFIG_FILE_BYTES`] (read no further than that, so an endless file ends too).
pub fn read_small_text(path: &Path) -> std::io::Result<String> {
    let bytes = faultline_export::read_bounded(path, MAX_CONFIG_FILE_BYTES)?;
    String::from_utf8(bytes)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "is not UTF-8 text"))
}

impl Config {
    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = read_small_text(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let describe = |err: &toml::de::Error, key: Option<String>| {
            let location = err
                .span()
                .map(|span| {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    format!(", line {line}")
                })
                .unwrap_or_default();
            let message = err.message().trim().replace('\n', " ");
            let message = match key {
                Some(key) if !key.is_empty() && key != "." => format!("{key}: {message}"),
                _ => message,
            };
            ConfigError::Parse {
                path: path.to_owned(),
                location,
                message,
            }
        };
        let deserializer = toml::Deserializer::parse(text).map_err(|err| describe(&err, None))?;
        // serde_path_to_error tracks which key was being read, so type errors name it
        // (`otlp.grpc_listen: invalid type: integer ...`), not only unknown keys.
        serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let key = err.path().to_string();
            describe(err.inner(), Some(key))
        })
    }

    /// Applies the flags of `faultline run` over the file's values.
    pub fn apply_flags(&mut self, args: &RunArgs) -> Result<(), ConfigError> {
        if let Some(dir) = &args.data_dir {
            self.data_dir = Some(dir.clone());
        }
        self.apply_web_flags(args.listen.as_deref(), &args.web);
        if let Some(token) = &args.otlp_token {
            self.otlp.token = Some(token.clone());
        }
        if let Some(addr) = &args.otlp_grpc {
            self.otlp.grpc_listen = addr.clone();
        }
        if let Some(addr) = &args.otlp_http {
            self.otlp.http_listen = addr.clone();
        }
        if !args.logs.is_empty() {
            self.logs = Some(args.logs.iter().map(|spec| parse_log_flag(spec)).collect());
        }
        if !args.tasks.is_empty() {
            let tasks = args.tasks.iter().map(|spec| parse_task_flag(spec));
            self.tasks = tasks.collect::<Result<_, _>>()?;
        }
        if let Some(format) = &args.log_format {
            self.telemetry.log_format = format.clone();
        }
        Ok(())
    }

    /// Applies the dashboard's flags (`--listen`, `--token`, `--insecure`) over the file's
    /// values: those of `faultline run` and `faultline replay --serve`.
    pub fn apply_web_flags(&mut self, listen: Option<&str>, access: &WebAccessArgs) {
        if let Some(listen) = listen {
            self.web.listen = listen.to_owned();
        }
        if let Some(token) = &access.token {
            self.web.token = Some(token.clone());
        }
        if access.insecure {
            self.web.insecure = true;
        }
    }

    /// Checks every key; `origin` (the file, if any) is named in messages.
    pub fn validate(&self, origin: Option<&Path>) -> Result<Settings, ConfigError> {
        let origin = origin
            .map(|p| format!(" (in {})", p.display()))
            .unwrap_or_default();
        let invalid = |key: &str, value: &str, why: String| ConfigError::Invalid {
            key: key.to_owned(),
            value: format!("{value:?}"),
            why,
            origin: origin.clone(),
        };

        let web_listen = parse_listen(&self.web.listen)
            .map_err(|why| invalid("web.listen", &self.web.listen, why))?;
        let otlp_grpc = parse_listen(&self.otlp.grpc_listen)
            .map_err(|why| invalid("otlp.grpc_listen", &self.otlp.grpc_listen, why))?;
        let otlp_http = parse_listen(&self.otlp.http_listen)
            .map_err(|why| invalid("otlp.http_listen", &self.otlp.http_listen, why))?;

        for (key, token) in [
            ("web.token", &self.web.token),
            ("otlp.token", &self.otlp.token),
        ] {
            if let Some(token) = token {
                check_token(token).map_err(|(value, why)| invalid(key, &value, why))?;
            }
        }
        let load_tls = |key: &str, files: &Option<TlsFiles>| -> Result<Option<Tls>, ConfigError> {
            let Some(files) = files else { return Ok(None) };
            Tls::from_pem_files(&files.cert_file, &files.key_file)
                .map(Some)
                .map_err(|err| {
                    invalid(key, &files.cert_file.display().to_string(), err.to_string())
                })
        };
        let web_tls = load_tls("web.tls.cert_file", &self.web.tls)?;
        let otlp_tls = load_tls("otlp.tls.cert_file", &self.otlp.tls)?;
        for (i, host) in self.web.allowed_hosts.iter().enumerate() {
            let name = host.trim();
            if name.is_empty() || name.contains([':', '/', ' ']) {
                return Err(invalid(
                    &format!("web.allowed_hosts[{i}]"),
                    host,
                    "must be a host name without port or scheme, like \"agent.internal\"".into(),
                ));
            }
        }
        if !web_listen.ip().is_loopback() && self.web.token.is_none() && !self.web.insecure {
            return Err(invalid(
                "web.listen",
                &self.web.listen,
                "is not a loopback address: set web.token (or --token) so that only holders of \
                 the token can read the dashboard, or set web.insecure = true (--insecure) to \
                 serve it to anyone who can reach it"
                    .into(),
            ));
        }
        for (section, limits) in [
            ("web.connections", &self.web.connections),
            ("otlp.connections", &self.otlp.connections),
        ] {
            for (key, value) in [
                ("max_connections", limits.max_connections as u64),
                ("header_read_timeout_ms", limits.header_read_timeout_ms),
                ("idle_timeout_ms", limits.idle_timeout_ms),
            ] {
                if value == 0 {
                    return Err(invalid(
                        &format!("{section}.{key}"),
                        "0",
                        "must be at least 1".into(),
                    ));
                }
            }
        }
        let mut listeners = [
            ("web.listen", web_listen),
            ("otlp.grpc_listen", otlp_grpc),
            ("otlp.http_listen", otlp_http),
        ];
        listeners.sort_by_key(|(_, addr)| *addr);
        for pair in listeners.windows(2) {
            let ((key_a, a), (key_b, b)) = (pair[0], pair[1]);
            if a == b && a.port() != 0 {
                return Err(invalid(
                    key_b,
                    &b.to_string(),
                    format!("is the same address as {key_a}"),
                ));
            }
        }

        let logs = self.logs.clone().unwrap_or_else(|| {
            vec![LogSource {
                path: DEFAULT_LOG_GLOB.into(),
                service: None,
            }]
        });
        for (i, source) in logs.iter().enumerate() {
            if source.path.trim().is_empty() {
                return Err(invalid(
                    &format!("logs[{i}].path"),
                    &source.path,
                    "is empty".into(),
                ));
            }
        }
        for (i, task) in self.tasks.iter().enumerate() {
            if task.name.trim().is_empty() {
                return Err(invalid(
                    &format!("tasks[{i}].name"),
                    &task.name,
                    "is empty".into(),
                ));
            }
            check_http_url(&task.url)
                .map_err(|why| invalid(&format!("tasks[{i}].url"), &task.url, why))?;
        }

        let log_format = match self.telemetry.log_format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "telemetry.log_format",
                    other,
                    "must be \"text\" or \"json\"".into(),
                ))
            }
        };
        let otlp_endpoint = match self.telemetry.otlp_endpoint.trim() {
            "" => None,
            url => {
                check_http_url(url).map_err(|why| invalid("telemetry.otlp_endpoint", url, why))?;
                Some(url.to_owned())
            }
        };

        let mut counters = self.counters.clone();
        counters.tasks.extend(
            self.tasks
                .iter()
                .map(|task| TaskTarget::from_url(task.name.clone(), task.url.clone())),
        );
        counters.validate().map_err(|err| ConfigError::Invalid {
            key: format!("counters.{}", err.key),
            value: err.value.clone(),
            why: err.why.clone(),
            origin: origin.clone(),
        })?;

        let diagnosis = self.diagnosis_settings(&invalid)?;
        let export = self.export.validate().map_err(|err| ConfigError::Invalid {
            key: format!("export.{}", err.key),
            value: err.value.clone(),
            why: err.why.clone(),
            origin: origin.clone(),
        })?;

        let worker_threads = self.worker_threads.0;
        if !(1..=MAX_WORKER_THREADS).contains(&worker_threads) {
            return Err(invalid(
                "worker_threads",
                &worker_threads.to_string(),
                format!("must be between 1 and {MAX_WORKER_THREADS}"),
            ));
        }

        let data_dir = match &self.data_dir {
            Some(dir) => {
                check_dir_usable(dir)
                    .map_err(|why| invalid("data_dir", &dir.display().to_string(), why))?;
                DataDir::Configured(dir.clone())
            }
            None => DataDir::Default,
        };

        Ok(Settings {
            data_dir,
            worker_threads,
            web_listen,
            web_token: self.web.token.clone(),
            web_allowed_hosts: self.web.allowed_hosts.clone(),
            web_tls,
            otlp_token: self.otlp.token.clone(),
            otlp_tls,
            web_metrics: faultline_web::MetricsOptions {
                max_pattern_series: self.web.max_pattern_series,
            },
            otlp_grpc,
            otlp_http,
            logs,
            tasks: self.tasks.clone(),
            log_format,
            log_level: self.telemetry.log_level.clone(),
            otlp_endpoint,
            otlp_limits: self.otlp.limits.clone(),
            listeners: ListenerLimits {
                web: self.web.connections.clone(),
                otlp_grpc: self.otlp.connections.clone(),
                otlp_http: self.otlp.connections.clone(),
            },
            tail: self.tail.clone(),
            clustering: self.clustering.clone(),
            traces: self.traces.clone(),
            counters,
            diagnosis,
            export,
        })
    }

    /// `[diagnosis]` checked: a positive interval, sane windows, and the user's rules file read
    /// and compiled (a bad rule is an error at start that names it).
    fn diagnosis_settings(
        &self,
        invalid: &dyn Fn(&str, &str, String) -> ConfigError,
    ) -> Result<DiagnosisSettings, ConfigError> {
        let d = &self.diagnosis;
        if d.interval_ms == 0 {
            return Err(invalid(
                "diagnosis.interval_ms",
                "0",
                "must be at least 1".into(),
            ));
        }
        let a = &d.anomalies;
        for (key, value) in [
            ("diagnosis.anomalies.baseline_ms", a.baseline_ms),
            ("diagnosis.anomalies.search_ms", a.search_ms),
        ] {
            if value <= 0 {
                return Err(invalid(key, &value.to_string(), "must be positive".into()));
            }
        }
        if a.warmup_ms < 0 {
            return Err(invalid(
                "diagnosis.anomalies.warmup_ms",
                &a.warmup_ms.to_string(),
                "must not be negative".into(),
            ));
        }
        if a.min_baseline_points < 3 {
            return Err(invalid(
                "diagnosis.anomalies.min_baseline_points",
                &a.min_baseline_points.to_string(),
                "must be at least 3: a median and a MAD need points".into(),
            ));
        }
        let rules = match &d.rules {
            None => HintRules::builtin(),
            Some(path) => {
                let shown = path.display().to_string();
                let text = read_small_text(path).map_err(|err| {
                    invalid("diagnosis.rules", &shown, format!("cannot be read: {err}"))
                })?;
                HintRules::with_user_rules(&text, &shown)
            }
        }
        .map_err(|err| {
            let path = d.rules.as_ref().map(|p| p.display().to_string());
            invalid(
                "diagnosis.rules",
                &path.unwrap_or_default(),
                err.to_string(),
            )
        })?;
        Ok(DiagnosisSettings {
            interval: std::time::Duration::from_millis(d.interval_ms),
            anomalies: a.clone(),
            rules,
        })
    }
}

impl Settings {
    /// Creates the data directory and returns it. A configured directory must be usable; the
    /// default one falls back to a per-user directory, returned with a note saying why.
    pub fn prepare_data_dir(&self) -> Result<(PathBuf, Option<String>), ConfigError> {
        match &self.data_dir {
            DataDir::Configured(dir) => {
                ensure_writable_dir(dir).map_err(|why| ConfigError::Invalid {
                    key: "data_dir".into(),
                    value: format!("{:?}", dir.display().to_string()),
                    why,
                    origin: String::new(),
                })?;
                Ok((dir.clone(), None))
            }
            DataDir::Default => default_data_dir(Path::new(SYSTEM_DATA_DIR), user_data_dir()),
        }
    }
}

/// The system directory when it is usable, else `fallback` with a note saying why.
fn default_data_dir(
    system: &Path,
    fallback: Option<PathBuf>,
) -> Result<(PathBuf, Option<String>), ConfigError> {
    let why_not = match ensure_writable_dir(system) {
        Ok(()) => return Ok((system.to_owned(), None)),
        Err(why) => why,
    };
    let fallback = fallback.ok_or_else(|| ConfigError::Invalid {
        key: "data_dir".into(),
        value: format!("{:?}", system.display().to_string()),
        why: format!(
            "{why_not}, and neither XDG_STATE_HOME nor HOME is set: set data_dir or --data-dir"
        ),
        origin: String::new(),
    })?;
    ensure_writable_dir(&fallback).map_err(|why| ConfigError::Invalid {
        key: "data_dir".into(),
        value: format!("{:?}", fallback.display().to_string()),
        why: format!(
            "{why} (fallback, because {} {why_not}): set data_dir or --data-dir",
            system.display()
        ),
        origin: String::new(),
    })?;
    let note = format!(
        "{} {why_not}; keeping state in {} instead (set data_dir to choose)",
        system.display(),
        fallback.display()
    );
    Ok((fallback, Some(note)))
}

fn user_data_dir() -> Option<PathBuf> {
    let nonempty = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    nonempty("XDG_STATE_HOME")
        .or_else(|| nonempty("HOME").map(|home| home.join(".local/state")))
        .map(|base| base.join("faultline"))
}

/// Creates `dir` if needed and proves it writable by writing and removing a probe file.
///
/// A full file system (or quota) passes: the directory is the right one and will take the
/// state once space frees up; meanwhile the agent serves from memory and health says it is
/// not persisting. Refusing to start would blind the node exactly when a runaway log filled
/// the disk.
fn ensure_writable_dir(dir: &Path) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot be created: {e}"))?;
    let probe = dir.join(format!(".faultline-probe-{}", std::process::id()));
    let written = fs::File::create(&probe).and_then(|mut f| f.write_all(b"probe"));
    let _ = fs::remove_file(&probe);
    match written {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) => Ok(()),
        other => other.map_err(|e| format!("is not writable: {e}")),
    }
}

/// Checks, without creating anything, that `dir` is a writable directory or could be created.
fn check_dir_usable(dir: &Path) -> Result<(), String> {
    let mut existing = dir;
    while !existing.exists() {
        match existing.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => existing = parent,
            _ => return Ok(()),
        }
    }
    let meta = fs::metadata(existing).map_err(|e| format!("cannot be read: {e}"))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", existing.display()));
    }
    if !is_writable(existing) {
        return Err(format!(
            "{} is not writable by this user",
            existing.display()
        ));
    }
    Ok(())
}

fn is_writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call.
    unsafe { libc::access(c_path.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

/// Parses `HOST:PORT` (IPv6 in brackets) with messages a person can act on.
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| "expected IP:PORT, e.g. 127.0.0.1:7070 or [::1]:7070".to_owned())?;
    let port: u32 = port
        .parse()
        .map_err(|_| format!("port {port:?} is not a number"))?;
    if port > u32::from(u16::MAX) {
        return Err(format!("port {port} is out of range (0-65535)"));
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = match host {
        "localhost" => IpAddr::from([127, 0, 0, 1]),
        _ => host
            .parse()
            .map_err(|_| format!("{host:?} is not an IP address"))?,
    };
    Ok(SocketAddr::new(ip, port as u16))
}

fn check_http_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| "must start with http:// or https://".to_owned())?;
    if rest.split(['/', '?']).next().unwrap_or("").is_empty() {
        return Err("has no host".into());
    }
    Ok(())
}

fn parse_log_flag(spec: &str) -> LogSource {
    match spec.rsplit_once('=') {
        Some((path, service)) if !service.is_empty() && !service.contains('/') => LogSource {
            path: path.to_owned(),
            service: Some(service.to_owned()),
        },
        _ => LogSource {
            path: spec.to_owned(),
            service: None,
        },
    }
}

fn parse_task_flag(spec: &str) -> Result<TaskSource, ConfigError> {
    match spec.split_once('=') {
        Some((name, url)) if !name.is_empty() => Ok(TaskSource {
            name: name.to_owned(),
            url: url.to_owned(),
        }),
        _ => Err(ConfigError::Invalid {
            key: "--task".into(),
            value: format!("{spec:?}"),
            why: "expected NAME=URL".into(),
            origin: String::new(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn the_example_file_is_the_default() {
        assert_eq!(parse(EXAMPLE).expect("example parses"), Config::default());
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = parse("[web]\nlisten = \"127.0.0.1:7070\"\nlisen = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lisen"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("test.toml"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (
                "[web]\nlisten = \"127.0.0.1:70000\"",
                "web.listen",
                "out of range",
            ),
            (
                "[otlp]\ngrpc_listen = \"nope\"",
                "otlp.grpc_listen",
                "IP:PORT",
            ),
            (
                "[web]\nlisten = \"0.0.0.0:7070\"",
                "web.listen",
                "web.token",
            ),
            ("[web]\ntoken = \" \"", "web.token", "empty"),
            (
                "[otlp]\ntoken = \"short-secret\"",
                "otlp.token",
                "at least 16",
            ),
            (
                "[otlp.tls]\ncert_file = \"/nonexistent/cert.pem\"\nkey_file = \"k.pem\"",
                "otlp.tls.cert_file",
                "/nonexistent/cert.pem",
            ),
            (
                "[[tasks]]\nname = \"a\"\nurl = \"ftp://x\"",
                "tasks[0].url",
                "http://",
            ),
            (
                "[export]\notlp_endpoint = \"collector:4317\"",
                "export.otlp_endpoint",
                "http://",
            ),
            (
                "[export]\notlp_endpoint = \"http://c:4318\"\nprotocol = \"http/json\"",
                "export.protocol",
                "http/protobuf",
            ),
            (
                "[telemetry]\nlog_format = \"xml\"",
                "telemetry.log_format",
                "json",
            ),
            (
                "[otlp]\nhttp_listen = \"127.0.0.1:7070\"",
                "otlp.http_listen",
                "same address",
            ),
        ];
        for (text, key, why) in cases {
            let err = parse(text)
                .unwrap()
                .validate(Some(Path::new("f.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(key), "{text}: {err}");
            assert!(err.contains(why), "{text}: {err}");
            assert!(err.contains("f.toml"), "{text}: {err}");
        }
    }

    #[test]
    fn a_device_or_a_huge_file_named_as_config_or_rules_is_refused_not_read_forever() {
        // /dev/zero never ends: read unbounded, the agent would hang at start.
        let err = Config::load(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");
        let err = parse("[diagnosis]\nrules = \"/dev/zero\"\n")
            .unwrap()
            .validate(None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.toml");
        let file = fs::File::create(&big).unwrap();
        file.set_len(MAX_CONFIG_FILE_BYTES + 1).unwrap();
        let err = Config::load(&big).unwrap_err().to_string();
        assert!(err.contains("larger than 4 MiB"), "{err}");
    }

    #[test]
    fn user_hint_rules_are_loaded_and_a_bad_one_stops_the_start_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.toml");
        fs::write(
            &good,
            "version = 1\n[[rule]]\nid = \"quota\"\ntitle = \"Quota\"\n\
             [rule.recognised_by]\npattern = ['quota exceeded']\n",
        )
        .unwrap();
        let text = format!("[diagnosis]\nrules = {:?}\n", good.display().to_string());
        let settings = parse(&text).unwrap().validate(None).unwrap();
        let builtin = HintRules::builtin().unwrap().len();
        assert_eq!(settings.diagnosis.rules.len(), builtin + 1);

        let bad = dir.path().join("bad.toml");
        fs::write(
            &bad,
            "version = 1\n[[rule]]\nid = \"mine\"\ntitle = \"t\"\n\
             [rule.recognised_by]\npattern = ['(']\n",
        )
        .unwrap();
        let text = format!("[diagnosis]\nrules = {:?}\n", bad.display().to_string());
        let err = parse(&text)
            .unwrap()
            .validate(None)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("diagnosis.rules"), "{err}");
        assert!(err.contains("rule `mine`"), "{err}");

        let missing = "[diagnosis]\nrules = \"/nonexistent/hints.toml\"\n";
        let err = parse(missing)
            .unwrap()
            .validate(None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot be read"), "{err}");
        let err = parse("[diagnosis.anomalies]\nsearch_ms = 0\n")
            .unwrap()
            .validate(None)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("diagnosis.anomalies.search_ms"), "{err}");
    }

    #[test]
    fn worker_threads_default_to_one_and_a_bad_count_is_refused_by_name() {
        let settings = Config::default().validate(None).unwrap();
        assert_eq!(settings.worker_threads, 1);
        let four = parse("worker_threads = 4\n")
            .unwrap()
            .validate(None)
            .unwrap();
        assert_eq!(four.worker_threads, 4);
        for bad in ["0", "100000"] {
            let err = parse(&format!("worker_threads = {bad}\n"))
                .unwrap()
                .validate(None)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("worker_threads = "), "{err}");
        }
        assert!(parse("worker_threads = -1\n").is_err());
    }

    #[test]
    fn non_loopback_listen_is_allowed_with_a_token_or_insecure() {
        let with_token =
            parse("[web]\nlisten = \"0.0.0.0:7070\"\ntoken = \"s3cret-token-of-length\"").unwrap();
        assert!(with_token.validate(None).is_ok());
        let insecure = parse("[web]\nlisten = \"[::]:7070\"\ninsecure = true").unwrap();
        assert!(insecure.validate(None).is_ok());
    }

    #[test]
    fn flags_override_the_file() {
        let mut config =
            parse("[web]\nlisten = \"127.0.0.1:1\"\n[[logs]]\npath = \"/a/*.log\"").unwrap();
        let args = RunArgs {
            listen: Some("127.0.0.1:2".into()),
            logs: vec!["/b/*.log=billing".into(), "/c/x.log".into()],
            tasks: vec!["api=http://127.0.0.1:6060/debug/vars".into()],
            ..RunArgs::default()
        };
        config.apply_flags(&args).unwrap();
        let settings = config.validate(None).unwrap();
        assert_eq!(settings.web_listen.port(), 2);
        assert_eq!(
            settings.logs[0],
            LogSource {
                path: "/b/*.log".into(),
                service: Some("billing".into())
            }
        );
        assert_eq!(
            settings.logs[1],
            LogSource {
                path: "/c/x.log".into(),
                service: None
            }
        );
        assert_eq!(settings.tasks[0].name, "api");
    }

    #[test]
    fn no_logs_table_means_the_default_glob() {
        let settings = Config::default().validate(None).unwrap();
        assert_eq!(
            settings.logs,
            vec![LogSource {
                path: DEFAULT_LOG_GLOB.into(),
                service: None
            }]
        );
        let explicit_none = parse("logs = []").unwrap().validate(None).unwrap();
        assert!(explicit_none.logs.is_empty());
    }

    #[test]
    fn an_unwritable_system_data_dir_falls_back_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-dir");
        fs::write(&blocker, "x").unwrap();
        let system = blocker.join("faultline");
        let fallback = dir.path().join("state/faultline");
        let (chosen, note) = default_data_dir(&system, Some(fallback.clone())).unwrap();
        assert_eq!(chosen, fallback);
        assert!(fallback.is_dir());
        let note = note.expect("a note saying why");
        assert!(
            note.contains("cannot be created") && note.contains("state/faultline"),
            "{note}"
        );

        let (chosen, note) = default_data_dir(&fallback, None).unwrap();
        assert_eq!((chosen, note), (fallback, None));
        let err = default_data_dir(&system, None).unwrap_err().to_string();
        assert!(err.starts_with("data_dir") && err.contains("HOME"), "{err}");
    }

    #[test]
    fn ipv6_and_localhost_listen_addresses() {
        assert_eq!(
            parse_listen("[::1]:7070").unwrap(),
            "[::1]:7070".parse().unwrap()
        );
        assert_eq!(
            parse_listen("localhost:80").unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
    }
}
