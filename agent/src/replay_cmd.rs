//! `faultline replay`: the post-mortem. Runs the agent's ingest (the tailer's line limits,
//! multi-line joining and parser) and clustering over files that already exist, prints the
//! timeline of error patterns — when each kind of error first appeared, when it peaked, how
//! many — and with `--serve` opens the dashboard over the result.
//!
//! With `--serve`, the agent's diagnosis runs over the replayed time as it would have live:
//! the replay's clock steps from the first error to the end of the logs (one step a minute,
//! the granularity of emergence; at most [`MAX_DIAGNOSIS_STEPS`] steps), the same incident
//! tracker is fed at each step, and the dashboard serves every incident the steps raised
//! (those still going on at the end first, then the ones that ended, latest onset first).
//!
//! Times are the records' own timestamps (the time the service logged them), so the timeline
//! is the incident's, not the replay's. A record without a timestamp (a bare error, a crash
//! dump) takes the time of the record before it in the same file, else the time it was read.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;
use clap::Args;
use faultline_clustering::{ClusterQuery, ClusteringConfig, Engine, ErrorEvent, RecordIds};
use faultline_diagnosis::anomaly::AnomalyConfig;
use faultline_diagnosis::hints::HintRules;
use faultline_diagnosis::incident::{Incident, IncidentState};
use faultline_ingest::counters::{CounterStore, CountersConfig};
use faultline_ingest::tail::{replay_file, TailConfig};
use faultline_ingest::traces::{TraceStore, TraceStoreConfig};
use faultline_web::model::IncidentsDocument;
use faultline_web::{AppState, Component, ComponentState, HealthRegistry, LiveUpdates};

use crate::cli::WebAccessArgs;
use crate::config::{Config, ConfigError, Settings};
use crate::diagnosis::{self, ConfiguredFacts, DiagnosisSettings};

const NANOS_PER_MINUTE: i64 = 60_000_000_000;

/// Most diagnosis steps over a replay: a day of logs at one step a minute. Each step reads
/// every pattern's summary once (milliseconds); longer logs take longer steps.
const MAX_DIAGNOSIS_STEPS: i64 = 1_440;

/// Flags of `faultline replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Log files to read, whole, in the order given (rotated files first for a timeline in
    /// order; the timeline is sorted by time anyway).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The service of every record (else taken from the records).
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// After the timeline, serve the dashboard and API over the result until Ctrl-C.
    #[arg(long)]
    pub serve: bool,
    /// Address of the dashboard with --serve (key `web.listen`; default 127.0.0.1:7070).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// With --serve: a configuration file whose `[web]` section (token, TLS, allowed hosts,
    /// connection limits) the dashboard is served with, as `faultline run` serves it.
    #[arg(long, value_name = "FILE", requires = "serve")]
    pub config: Option<PathBuf>,
    /// Who may read the dashboard and API with --serve.
    #[command(flatten)]
    pub web: WebAccessArgs,
    /// Print the timeline as JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One pattern's line of the timeline.
#[derive(Debug, serde::Serialize)]
struct TimelineRow {
    cluster_id: String,
    pattern: String,
    first_seen_unix_ms: i64,
    last_seen_unix_ms: i64,
    peak_minute_unix_ms: i64,
    peak_per_minute: u64,
    total: u64,
    services: Vec<String>,
}

/// The settings `--serve` serves the dashboard with: the `[web]` keys of `--config` (or the
/// defaults) under `--listen`, `--token` and `--insecure`, checked as `faultline run` checks
/// them (a token of at least 16 characters, a token or `--insecure` off loopback, readable
/// TLS files), so a post-mortem is exposed no more than the live agent.
fn serve_settings(args: &ReplayArgs) -> Result<Settings, ConfigError> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    config.apply_web_flags(args.listen.as_deref(), &args.web);
    config.validate(args.config.as_deref())
}

/// Runs the command.
pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    // Checked before the files are read: a bad token or certificate is said at once, not
    // after minutes of replay.
    let settings = args.serve.then(|| serve_settings(args)).transpose()?;
    let engine = Arc::new(Engine::new(ClusteringConfig::default()));
    let traces = Arc::new(TraceStore::new(TraceStoreConfig::default()));
    let tail = TailConfig::default();
    // (template id, minute) -> events: exact peaks whatever the engine's history length.
    // Keyed by template, whose id never changes, because a template's cluster can change
    // while DBSCAN settles; the final clusters sum their templates.
    let mut minutes: HashMap<(String, i64), u64> = HashMap::new();
    let (mut lines, mut records, mut errors, mut truncated) = (0u64, 0u64, 0u64, 0u64);
    let mut latest = i64::MIN;
    let mut first_error = i64::MAX;
    for path in &args.files {
        let mut traced = Vec::new();
        let mut last_time = None;
        let summary = replay_file(path, &tail, args.service.as_deref(), |record| {
            let time = record
                .time_unix_nanos
                .or(last_time)
                .unwrap_or(record.observed_unix_nanos);
            last_time = Some(time);
            latest = latest.max(time);
            if !record.is_error_event() {
                return;
            }
            errors += 1;
            first_error = first_error.min(time);
            let ids = RecordIds::of(&record);
            let observed = engine.observe(&ErrorEvent::from_record(&record, &ids, time));
            if let Some(template) = observed.template {
                *minutes
                    .entry((template.to_string(), time.div_euclid(NANOS_PER_MINUTE)))
                    .or_default() += 1;
            }
            if record.trace_id.is_some() {
                traced.push(record);
            }
        })
        .with_context(|| format!("cannot read {}", path.display()))?;
        if summary.binary {
            eprintln!(
                "faultline: {} turned binary; the rest of it was skipped",
                path.display()
            );
        }
        lines += summary.lines;
        records += summary.records;
        truncated += summary.truncated_lines;
        traces.attach_logs(traced);
    }
    engine.maintain();

    let rows = timeline(&engine, &minutes);
    print_timeline(
        &rows,
        args.json,
        (args.files.len(), lines, records, errors, truncated),
    )?;
    if let Some(settings) = settings {
        // "Now" of the dashboard is the end of the replayed logs, so windows and emergence
        // describe the incident rather than the hours since.
        let now = if latest == i64::MIN {
            faultline_ingest::parse::now_unix_nanos()
        } else {
            latest
        };
        serve(&settings, engine, traces, (first_error.min(now), now))?;
    }
    Ok(())
}

fn timeline(engine: &Engine, minutes: &HashMap<(String, i64), u64>) -> Vec<TimelineRow> {
    let mut by_template: HashMap<&str, Vec<(i64, u64)>> = HashMap::new();
    for ((template, minute), count) in minutes {
        by_template
            .entry(template.as_str())
            .or_default()
            .push((*minute, *count));
    }
    let query = ClusterQuery {
        now_unix_nanos: i64::MAX,
        ..ClusterQuery::default()
    };
    let mut rows: Vec<TimelineRow> = engine
        .clusters(&query)
        .into_iter()
        .map(|summary| {
            let mut per_minute: HashMap<i64, u64> = HashMap::new();
            if let Some(detail) = engine.cluster(summary.id, i64::MAX) {
                for template in &detail.templates {
                    for (minute, count) in by_template
                        .get(template.id.to_string().as_str())
                        .into_iter()
                        .flatten()
                    {
                        *per_minute.entry(*minute).or_default() += count;
                    }
                }
            }
            let (peak_minute, peak) = per_minute
                .into_iter()
                .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
                .unwrap_or((0, 0));
            TimelineRow {
                cluster_id: summary.id.to_string(),
                pattern: summary.name,
                first_seen_unix_ms: summary.first_seen_unix_nanos / 1_000_000,
                last_seen_unix_ms: summary.last_seen_unix_nanos / 1_000_000,
                peak_minute_unix_ms: peak_minute * 60_000,
                peak_per_minute: peak,
                total: summary.count,
                services: summary.services,
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        a.first_seen_unix_ms
            .cmp(&b.first_seen_unix_ms)
            .then(b.total.cmp(&a.total))
    });
    rows
}

fn utc(unix_ms: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(unix_ms.max(0) as u64);
    humantime::format_rfc3339_seconds(time)
        .to_string()
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_owned()
}

fn print_timeline(
    rows: &[TimelineRow],
    json: bool,
    totals: (usize, u64, u64, u64, u64),
) -> anyhow::Result<()> {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let (files, lines, records, errors, truncated) = totals;
    if json {
        for row in rows {
            serde_json::to_writer(&mut out, row)?;
            writeln!(out)?;
        }
    } else {
        writeln!(
            out,
            "{:<19}  {:<19}  {:>8}  {:<5}  {:>8}  {:<16}  PATTERN",
            "FIRST SEEN (UTC)", "LAST SEEN", "PEAK/MIN", "AT", "TOTAL", "ID"
        )?;
        for row in rows {
            let services = if row.services.is_empty() {
                String::new()
            } else {
                format!("  [{}]", row.services.join(", "))
            };
            let pattern = terminal_text(&row.pattern, 160);
            writeln!(
                out,
                "{:<19}  {:<19}  {:>8}  {:<5}  {:>8}  {:<16}  {pattern}{services}",
                utc(row.first_seen_unix_ms),
                utc(row.last_seen_unix_ms),
                row.peak_per_minute,
                &utc(row.peak_minute_unix_ms)[11..16],
                row.total,
                row.cluster_id,
            )?;
        }
    }
    eprintln!(
        "faultline replay: {files} file(s), {lines} lines, {records} records, {errors} error records, {} patterns{}",
        rows.len(),
        if truncated > 0 { format!(", {truncated} lines cut at {} bytes", TailConfig::default().max_line_bytes) } else { String::new() }
    );
    Ok(())
}

/// Log content as it may be printed to a terminal, at most `max` characters: control
/// characters (an escape sequence, a carriage return that hides what came before) and the
/// bidirectional overrides that reorder what is shown are escaped; everything else is shown
/// as it is. Escaping every quote and non-ASCII letter printed `Get \"<url>\"` and
/// `invalid character \u{ef}` for what the log says.
fn terminal_text(text: &str, max: usize) -> String {
    let hostile = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    let mut out = String::new();
    for c in text.chars().take(max) {
        if hostile(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The incidents the agent's diagnosis raises over the replayed time `span` (Unix ns, first
/// error to end), with `api` the dashboard's base URL for the hints' commands.
fn replay_incidents(
    engine: &Arc<Engine>,
    traces: &Arc<TraceStore>,
    counters: &Arc<CounterStore>,
    span: (i64, i64),
    api: &str,
) -> anyhow::Result<IncidentsDocument> {
    let settings = DiagnosisSettings {
        interval: Duration::from_secs(1),
        anomalies: AnomalyConfig::default(),
        rules: HintRules::builtin().context("the shipped hint rules")?,
    };
    let facts = ConfiguredFacts::default();
    let (first, last) = span;
    let step = NANOS_PER_MINUTE.max((last - first) / MAX_DIAGNOSIS_STEPS + 1);
    let mut kept = diagnosis::Kept::default();
    let mut raised: BTreeMap<String, Incident> = BTreeMap::new();
    let mut at = first;
    loop {
        let now = at.min(last);
        // Views of their own per step: the pattern rows they cache are judged at their clock.
        let views = crate::views::build_with_clock(
            engine.clone(),
            traces.clone(),
            counters.clone(),
            LiveUpdates::new(),
            Arc::new(Vec::new),
            Arc::new(move || now),
        );
        let doc = diagnosis::diagnose(&views, &mut kept, &settings, &facts, api, now / 1_000_000);
        for incident in &doc.incidents {
            raised.insert(incident.id.clone(), incident.clone());
        }
        if now >= last {
            // Incidents that left the tracker before the end ended there.
            let mut ended: Vec<Incident> = raised
                .into_values()
                .filter(|i| !doc.incidents.iter().any(|k| k.id == i.id))
                .map(|mut i| {
                    i.active = false;
                    i.state = IncidentState::Ended;
                    i.ended_unix_ms.get_or_insert(i.last_active_unix_ms);
                    i
                })
                .collect();
            ended.sort_by_key(|i| std::cmp::Reverse(i.onset_unix_ms));
            let mut doc = doc;
            doc.incidents.extend(ended);
            return Ok(doc);
        }
        at = at.saturating_add(step);
    }
}

fn serve(
    settings: &Settings,
    engine: Arc<Engine>,
    traces: Arc<TraceStore>,
    span: (i64, i64),
) -> anyhow::Result<()> {
    let now = span.1;
    let listen = settings.web_listen;
    let scheme = if settings.web_tls.is_some() {
        "https"
    } else {
        "http"
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let stop = crate::shutdown::install(|| {}).context("cannot install the signal handlers")?;
        let health = HealthRegistry::new();
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| {
                format!("cannot listen on {listen} (--listen): is another process using it?")
            })?;
        let addr = listener.local_addr().context("listener address")?;
        health.set(
            "web",
            Component {
                state: ComponentState::Running,
                address: Some(addr.to_string()),
                detail: Some("replay".into()),
            },
        );
        health.set(
            "counters",
            Component {
                state: ComponentState::Disabled,
                address: None,
                detail: Some("replay: no live node counters".into()),
            },
        );
        let counters = Arc::new(CounterStore::new(&CountersConfig::default()));
        let incidents = tokio::task::block_in_place(|| {
            replay_incidents(
                &engine,
                &traces,
                &counters,
                span,
                &format!("{scheme}://{addr}"),
            )
        })?;
        let no_counters: Arc<dyn Fn() -> Vec<faultline_web::model::StoreCounter> + Send + Sync> =
            Arc::new(Vec::new);
        let board = Arc::new(diagnosis::IncidentBoard::default());
        board.set(incidents);
        let views = crate::views::build_with_board(
            engine,
            traces,
            counters,
            LiveUpdates::new(),
            no_counters,
            Arc::new(move || now),
            board,
        );
        let app = faultline_web::router_with_views(
            AppState {
                health,
                access: faultline_web::Access::new(
                    settings.web_token.as_deref(),
                    &settings.web_allowed_hosts,
                ),
                metrics: settings.web_metrics,
            },
            views,
        );
        eprintln!("faultline replay: dashboard on {scheme}://{addr}/ (Ctrl-C to stop)");
        // The same connection bounds as the agent's dashboard: a replay served to a team
        // during a post-mortem must not be blinded by idle or slow connections either.
        let mut limits = settings.listeners.web.clone();
        if let Some(fd_limit) = faultline_net::raise_fd_limit() {
            faultline_net::fit_to_fd_limit(&mut [&mut limits], fd_limit);
        }
        let connections = Arc::new(faultline_net::ConnectionStats::default());
        let tls = settings.web_tls.clone();
        faultline_net::serve(listener, app, tls, &limits, connections, stop).await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::terminal_text;

    #[test]
    fn log_text_is_printed_as_written_except_what_would_drive_the_terminal() {
        assert_eq!(
            terminal_text("Get \"<url>\": invalid character 'ï' (took 888µs)", 160),
            "Get \"<url>\": invalid character 'ï' (took 888µs)"
        );
        assert_eq!(
            terminal_text("a\u{1b}[2Jb\rc\u{202e}d", 160),
            "a\\u{1b}[2Jb\\rc\\u{202e}d"
        );
        assert_eq!(terminal_text("abcdef", 3), "abc");
    }
}
