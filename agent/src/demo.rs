//! `faultline demo`: the agent and a real outage on this machine, for a first look at what
//! faultline is for.
//!
//! One process, one tokio runtime: the agent (the same [`run::serve`] as `faultline run`,
//! with a configuration of its own) and the fault lab's three services ([`crate::lab`]). The
//! agent tails the lab's log files, receives its spans over OTLP and scrapes its task pages;
//! after a baseline of healthy traffic the chosen [`Scenario`] is injected and the demo says
//! when the agent flags the new error pattern.
//!
//! Everything lives in one temporary directory (the agent's data dir and the lab's logs),
//! removed at exit. The first SIGINT/SIGTERM stops the lab (its connections end, its spans are
//! flushed), then the agent, then removes the directory; a second signal removes the
//! directory and exits at once. No child process is started.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use faultline_ingest::tail::{LogSource, StartAt, TailConfig};
use tokio_util::sync::CancellationToken;

use crate::config::{
    Config, DiagnosisConfig, LogFormat, OtlpConfig, Settings, TaskSource, TelemetryConfig,
    WebConfig,
};
use faultline_diagnosis::anomaly::AnomalyConfig;
use faultline_series::SeriesKey;
use faultline_web::model::{
    ClusterSummary, CountersSnapshot, Incident, IncidentsDocument, SocketState,
};

use crate::lab::{BoundLab, Lab, Scenario, ServiceEndpoints, ServiceName, TrafficSnapshot};
use crate::{run, shutdown, telemetry};

/// How often the progress line is redrawn on a terminal (and the agent's patterns polled).
const TICK: Duration = Duration::from_secs(1);

/// How often a progress line is printed when the output is not a terminal (a log file, a
/// pipe): one line per tick would flood it.
const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// How long the agent may take to bind its listeners.
const AGENT_START_LIMIT: Duration = Duration::from_secs(20);

/// Flags of `faultline demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The fault injected after the baseline.
    #[arg(long, value_enum, default_value_t = Scenario::Eof)]
    pub scenario: Scenario,
    /// Seconds of healthy traffic before the fault, for the agent's baseline. The default
    /// leaves "what moved with it" its 30 one-second points before the first error with a few
    /// seconds to spare (at 30 it said "not enough history" on some runs and not on others).
    #[arg(long, value_name = "SECS", default_value_t = 35,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub baseline: u64,
    /// Address of the dashboard and API (loopback only: the demo has no token).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7070")]
    pub listen: String,
}

/// Runs the demo until SIGINT or SIGTERM.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    // The agent's own log would bury the demo's lines: warnings and errors only.
    let _telemetry = telemetry::init(LogFormat::Text, "warn", None)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("faultline-demo")
        .build()
        .context("cannot start the async runtime")?;
    let dir = tempfile::Builder::new()
        .prefix("faultline-demo-")
        .tempdir()
        .context("cannot create the demo's temporary directory")?;
    let outcome = runtime.block_on(demo(args, dir.path()));
    // Tasks still parked on the runtime (none, once the lab and agent stopped) must not
    // outlive the directory they write to.
    runtime.shutdown_timeout(Duration::from_secs(2));
    let path = dir.path().to_owned();
    dir.close()
        .with_context(|| format!("cannot remove the demo's directory {}", path.display()))?;
    outcome
}

async fn demo(args: &DemoArgs, dir: &Path) -> anyhow::Result<()> {
    let forced_cleanup = dir.to_owned();
    let signal = shutdown::install(move || {
        let _ = std::fs::remove_dir_all(&forced_cleanup);
    })
    .context("cannot install the signal handlers")?;

    let lab = BoundLab::bind(&dir.join("logs")).await?;
    let endpoints = lab.endpoints();
    let settings = settings(args, dir, &endpoints)?;
    let agent_stop = CancellationToken::new();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let mut agent = tokio::spawn(run::serve(settings, agent_stop.clone(), Some(ready_tx)));
    let listening = tokio::select! {
        ready = ready_rx => ready.ok(),
        _ = tokio::time::sleep(AGENT_START_LIMIT) => None,
    };
    let Some(listening) = listening else {
        agent_stop.cancel();
        return match (&mut agent).await {
            Ok(Err(err)) => Err(err.context("the demo's agent did not start")),
            _ => anyhow::bail!("the demo's agent did not start within {AGENT_START_LIMIT:?}"),
        };
    };
    let lab = lab.start(listening.otlp_http)?;
    let dashboard = format!("http://{}/", listening.web);
    print_intro(args, &dashboard, &endpoints);

    let outcome = drive(args, &lab, &dashboard, &endpoints, &signal).await;
    println!();
    println!(
        "Stopping: the lab's services, then the agent; removing {}.",
        dir.display()
    );
    lab.shutdown().await;
    agent_stop.cancel();
    match agent.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => return Err(err.context("the demo's agent stopped with an error")),
        Err(err) => anyhow::bail!("the demo's agent failed: {err}"),
    }
    outcome
}

/// The agent's configuration for the demo: its own data dir, the lab's logs and task pages,
/// OTLP on free loopback ports, the lab's files read from their first line.
fn settings(
    args: &DemoArgs,
    dir: &Path,
    endpoints: &[ServiceEndpoints],
) -> anyhow::Result<Settings> {
    if let Ok(addr) = args.listen.parse::<std::net::SocketAddr>() {
        if !addr.ip().is_loopback() {
            anyhow::bail!(
                "--listen {addr}: the demo serves its dashboard on loopback only (it has no \
                 token); use `faultline run` to serve a dashboard to other machines"
            );
        }
    }
    let config = Config {
        data_dir: Some(dir.join("data")),
        web: WebConfig {
            listen: args.listen.clone(),
            ..WebConfig::default()
        },
        otlp: OtlpConfig {
            grpc_listen: "127.0.0.1:0".into(),
            http_listen: "127.0.0.1:0".into(),
            ..OtlpConfig::default()
        },
        tail: TailConfig {
            start_at: StartAt::Beginning,
            ..TailConfig::default()
        },
        telemetry: TelemetryConfig {
            log_level: "warn".into(),
            ..TelemetryConfig::default()
        },
        diagnosis: DiagnosisConfig {
            anomalies: demo_anomaly_windows(),
            ..DiagnosisConfig::default()
        },
        logs: Some(
            endpoints
                .iter()
                .map(|service| LogSource {
                    path: service.log_path.display().to_string(),
                    service: Some(service.name.to_string()),
                })
                .collect(),
        ),
        tasks: endpoints
            .iter()
            .map(|service| TaskSource {
                name: service.name.to_string(),
                url: service.task_url.clone(),
            })
            .collect(),
        ..Config::default()
    };
    let settings = config.validate(None)?;
    Ok(settings)
}

/// The anomaly detector's windows for a demo: a counter is judged against the 20 s before the
/// last 10 s (at least 10 one-second points), so a fault injected after the default 35 s
/// baseline is judged against healthy traffic only; the defaults (5 min of baseline) would
/// leave every series unjudged for the whole demo. A series that appears after the agent
/// started (the lab's ports) is judged 3 s after its first point.
fn demo_anomaly_windows() -> AnomalyConfig {
    AnomalyConfig {
        baseline_ms: 20_000,
        search_ms: 10_000,
        min_baseline_points: 10,
        warmup_ms: 3_000,
    }
}

fn print_intro(args: &DemoArgs, dashboard: &str, endpoints: &[ServiceEndpoints]) {
    let chain: Vec<String> = endpoints
        .iter()
        .map(|service| format!("{} ({})", service.name, service.api))
        .collect();
    println!("faultline demo: three services on this machine's loopback, watched by faultline.");
    println!();
    println!("  chain      {}", chain.join(" -> "));
    println!("  dashboard  {dashboard}");
    println!(
        "  scenario   {} ({})",
        args.scenario,
        args.scenario.injected()
    );
    println!();
    println!(
        "The services log (Gin, zap JSON, Go's log), send spans over OTLP and serve task pages;"
    );
    println!(
        "faultline tails, receives and scrapes them. After {} s of healthy traffic the fault is",
        args.baseline
    );
    println!("injected for real. Then look at the dashboard for:");
    println!("  {}.", args.scenario.look_at());
    println!("Ctrl-C stops everything and removes every file the demo wrote.");
    println!();
}

/// Baseline with a progress line, the injection, then progress until a signal.
async fn drive(
    args: &DemoArgs,
    lab: &Lab,
    dashboard: &str,
    endpoints: &[ServiceEndpoints],
    signal: &CancellationToken,
) -> anyhow::Result<()> {
    let inventory = endpoints
        .iter()
        .find(|service| service.name == ServiceName::Inventory)
        .map(|service| service.api)
        .context("the lab has no inventory")?;
    let terminal = std::io::stdout().is_terminal();
    let mut progress = Progress::new(terminal);
    let started = Instant::now();
    let baseline = Duration::from_secs(args.baseline);
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            _ = signal.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let elapsed = started.elapsed();
        if elapsed >= baseline {
            break;
        }
        progress.show(&format!(
            "building the baseline {:>3}/{} s  {}",
            elapsed.as_secs(),
            args.baseline,
            traffic_text(lab.traffic())
        ));
    }
    lab.inject(args.scenario);
    let injected = Instant::now();
    progress.finish();
    println!("{} fault injected: {}.", clock(), args.scenario.injected());
    println!("Watch {dashboard}");

    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(TICK)
        .build()
        .context("cannot build the demo's HTTP client")?;
    let mut announced: Vec<String> = Vec::new();
    // Each incident printed, with the hint it was printed with: an incident is printed again
    // when its leading hint changes (a hung callee's timeouts first, then, once its
    // CLOSE-WAIT has climbed past what requests in progress hold, its leak).
    let mut raised: Vec<(String, Option<String>)> = Vec::new();
    loop {
        tokio::select! {
            _ = signal.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        for pattern in emerging_patterns(&client, dashboard).await {
            if announced.contains(&pattern.id) {
                continue;
            }
            progress.finish();
            println!(
                "{} faultline flagged a new error pattern {:.1} s after the fault, in {}:",
                clock(),
                injected.elapsed().as_secs_f64(),
                if pattern.services.is_empty() {
                    "an unnamed service".to_owned()
                } else {
                    pattern.services.join(", ")
                }
            );
            println!("    {}", pattern.canonical_template);
            println!("    {dashboard}cluster?id={}", pattern.id);
            announced.push(pattern.id);
        }
        let mut elsewhere = 0;
        for incident in incidents(&client, dashboard).await {
            if !involves_lab(&incident, endpoints) {
                elsewhere += 1;
                continue;
            }
            let lead = incident.hints.first().map(|h| h.rule_id.clone());
            let printed = raised.iter_mut().find(|(id, _)| *id == incident.id);
            let again = match printed {
                Some((_, was)) if *was == lead => continue,
                Some((_, was)) => {
                    *was = lead;
                    true
                }
                None => {
                    raised.push((incident.id.clone(), lead));
                    false
                }
            };
            progress.finish();
            print_incident(&incident, injected.elapsed(), dashboard, again);
        }
        let seen = moved_counter(&client, dashboard, args.scenario, inventory)
            .await
            .map(|(what, count)| format!("  faultline sees {what}: {count}"))
            .unwrap_or_default();
        let elsewhere = match elsewhere {
            0 => String::new(),
            1 => "  (1 other incident on this node)".to_owned(),
            n => format!("  ({n} other incidents on this node)"),
        };
        progress.show(&format!(
            "fault {} active for {:>3} s  {}{seen}{elsewhere}",
            args.scenario,
            injected.elapsed().as_secs(),
            traffic_text(lab.traffic())
        ));
    }
}

/// The rows of the API's cluster page (`faultline_web::ClusterPage` is written, not read).
#[derive(Debug, serde::Deserialize)]
struct EmergingPage {
    clusters: Vec<ClusterSummary>,
}

/// The agent's emerging patterns, read through its own API as any client would; empty when
/// the API does not answer in time (the next tick asks again).
async fn emerging_patterns(client: &reqwest::Client, dashboard: &str) -> Vec<ClusterSummary> {
    let url = format!("{dashboard}api/v1/clusters?emerging=true&limit=5");
    match get_json::<EmergingPage>(client, &url).await {
        Some(page) => page.clusters,
        None => Vec::new(),
    }
}

/// The agent's incidents, as its API lists them; empty when it does not answer in time.
async fn incidents(client: &reqwest::Client, dashboard: &str) -> Vec<Incident> {
    match get_json::<IncidentsDocument>(client, &format!("{dashboard}api/v1/incidents")).await {
        Some(document) => document.incidents,
        None => Vec::new(),
    }
}

/// Whether an incident is about the demo's services: its culprit, the services it was seen
/// in or its patterns' services are the lab's, or one of its counters is a lab port's or a lab
/// task target's. The node's other incidents (other processes' sockets) are counted on the
/// progress line, not printed; the dashboard shows them all.
fn involves_lab(incident: &Incident, lab: &[ServiceEndpoints]) -> bool {
    let is_lab_service = |name: &str| lab.iter().any(|s| s.name.as_str() == name);
    let is_lab_port = |port: u16| lab.iter().any(|s| s.api.port() == port);
    let culprit = &incident.culprit;
    culprit.service.as_deref().is_some_and(is_lab_service)
        || culprit.seen_in.iter().any(|s| is_lab_service(s))
        || incident
            .patterns
            .iter()
            .any(|p| p.services.iter().any(|s| is_lab_service(s)))
        || incident.counters.iter().any(|c| match &c.anomaly.key {
            SeriesKey::PortState { port, .. }
            | SeriesKey::PortTotal { port, .. }
            | SeriesKey::ListenQueue { port } => is_lab_port(*port),
            SeriesKey::Task { target, .. } => is_lab_service(target),
            SeriesKey::ServiceTraffic { service, .. } => is_lab_service(service),
            _ => false,
        })
}

/// An incident in a few lines: what, where it lives (or where it was seen), the best hint;
/// `again` when it was printed before with another leading hint.
fn print_incident(incident: &Incident, after: Duration, dashboard: &str, again: bool) {
    println!(
        "{} faultline {} {:.1} s after the fault: {}",
        clock(),
        if again {
            "reads the incident anew"
        } else {
            "raised an incident"
        },
        after.as_secs_f64(),
        incident.title
    );
    let culprit = &incident.culprit;
    match &culprit.service {
        Some(service) => println!(
            "    culprit: {service}{}",
            culprit
                .reasoning
                .first()
                .map(|why| format!(" ({why})"))
                .unwrap_or_default()
        ),
        None => println!(
            "    no culprit named; seen in {}",
            culprit.seen_in.join(", ")
        ),
    }
    if let Some(hint) = incident.hints.first() {
        println!("    hint: {}", hint.title);
    }
    println!("    {dashboard}api/v1/incidents/{}", incident.id);
}

/// The counter the scenario moves, as the agent's API shows it now: (what, value). `None`
/// for scenarios that announce themselves with an error pattern, or while the API does not
/// answer.
async fn moved_counter(
    client: &reqwest::Client,
    dashboard: &str,
    scenario: Scenario,
    inventory: SocketAddr,
) -> Option<(String, u64)> {
    let port = inventory.port();
    let socket_state = match scenario {
        Scenario::CloseWait => Some(SocketState::CloseWait),
        Scenario::TimeWait => Some(SocketState::TimeWait),
        Scenario::GoroutineLeak => None,
        _ => return None,
    };
    let counters =
        get_json::<CountersSnapshot>(client, &format!("{dashboard}api/v1/counters")).await?;
    match socket_state {
        Some(state) => {
            // Loopback sockets are seen from both ends; either side of inventory's port counts.
            let count = counters
                .sockets
                .iter()
                .filter(|series| series.port == port && series.state == state)
                .map(|series| series.current)
                .max()?;
            Some((
                format!("{} on inventory's port {port}", state.ss_name()),
                count,
            ))
        }
        None => counters
            .tasks
            .iter()
            .find(|series| series.target == ServiceName::Inventory.as_str())
            .and_then(|series| series.current)
            .map(|count| ("inventory's tasks".to_owned(), count)),
    }
}

async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
) -> Option<T> {
    let response = client.get(url).send().await.ok()?;
    response.json::<T>().await.ok()
}

fn traffic_text(traffic: TrafficSnapshot) -> String {
    format!("{} requests, {} failed", traffic.sent, traffic.failed)
}

/// The wall-clock time of day (UTC), as the dashboard shows times.
fn clock() -> String {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    now.get(11..19).unwrap_or("").to_owned() + " UTC"
}

/// The progress line: redrawn in place on a terminal, a line every few seconds elsewhere.
struct Progress {
    terminal: bool,
    drawn: bool,
    last_plain: Option<Instant>,
}

impl Progress {
    fn new(terminal: bool) -> Self {
        Self {
            terminal,
            drawn: false,
            last_plain: None,
        }
    }

    fn show(&mut self, text: &str) {
        let mut out = std::io::stdout().lock();
        if self.terminal {
            let _ = write!(out, "\r\x1b[2K{text}");
            self.drawn = true;
        } else if self
            .last_plain
            .is_none_or(|at| at.elapsed() >= PLAIN_PROGRESS_EVERY)
        {
            let _ = writeln!(out, "{text}");
            self.last_plain = Some(Instant::now());
        }
        let _ = out.flush();
    }

    /// Ends a line drawn in place, so the next message starts on its own line.
    fn finish(&mut self) {
        if self.drawn {
            println!();
            self.drawn = false;
        }
    }
}
