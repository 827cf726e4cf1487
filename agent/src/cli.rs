//! The command line: one `clap` definition read in one place.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// faultline: error patterns, call chains and socket/task counters of this node, for the
/// moment an outage starts.
#[derive(Debug, Parser)]
#[command(name = "faultline", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start here: a real outage on three small services on this machine, watched by the
    /// agent, with the dashboard to look at.
    ///
    /// Starts the agent (its own temporary data dir, free loopback OTLP ports, dashboard on
    /// --listen) and a chain of three HTTP services inside this process that log, send spans
    /// and serve task pages to it under steady traffic; after --baseline seconds it injects
    /// --scenario for real. Ctrl-C stops everything and removes every file it wrote.
    Demo(crate::demo::DemoArgs),
    /// Run the agent: tail logs, receive OTLP, cluster errors, serve the dashboard and API.
    ///
    /// With no config file and no flags it uses the embedded defaults: logs under
    /// /var/log/*.log, OTLP on 127.0.0.1:4317 (gRPC) and :4318 (HTTP), dashboard and API on
    /// http://127.0.0.1:7070, state in /var/lib/faultline (or a per-user directory when that
    /// is not writable). Flags override the config file. SIGINT/SIGTERM stop it cleanly
    /// within 5 s; a second signal stops it at once.
    Run(RunArgs),
    /// Print or check a configuration file.
    Config(ConfigArgs),
    /// Print the version.
    Version,
    /// Cluster a file of messages in batch: one template or cluster id per input line.
    Cluster(crate::cluster_cmd::ClusterArgs),
    /// Post-mortem: cluster existing log files and print the timeline of error patterns
    /// (first seen, peak, counts); --serve opens the dashboard over the result.
    Replay(crate::replay_cmd::ReplayArgs),
}

/// Who may read the dashboard and API: the flags `faultline run` and `faultline replay
/// --serve` share; each overrides the matching key of the config file.
#[derive(Debug, Clone, Args, Default)]
pub struct WebAccessArgs {
    /// Bearer token required by the dashboard and API (key `web.token`); required when the
    /// listen address is not loopback.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "FAULTLINE_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Allow a non-loopback listen address without a token (key `web.insecure`).
    #[arg(long)]
    pub insecure: bool,
}

/// Flags of `faultline run`; each overrides the matching key of the config file.
#[derive(Debug, Args, Default)]
pub struct RunArgs {
    /// TOML configuration file (see `faultline config --default`).
    #[arg(long, value_name = "FILE", env = "FAULTLINE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for checkpoints and cluster snapshots (key `data_dir`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the dashboard and API (key `web.listen`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Who may read the dashboard and API.
    #[command(flatten)]
    pub web: WebAccessArgs,
    /// Bearer token every OTLP export must carry (key `otlp.token`): exporters send it as
    /// `headers` (`authorization=Bearer <token>`).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "FAULTLINE_OTLP_TOKEN",
        hide_env_values = true
    )]
    pub otlp_token: Option<String>,
    /// Address of the OTLP gRPC receiver (key `otlp.grpc_listen`).
    #[arg(long, value_name = "ADDR")]
    pub otlp_grpc: Option<String>,
    /// Address of the OTLP HTTP receiver (key `otlp.http_listen`).
    #[arg(long, value_name = "ADDR")]
    pub otlp_http: Option<String>,
    /// A log source, GLOB or GLOB=SERVICE (repeatable); replaces the `[[logs]]` of the file.
    #[arg(long = "log", value_name = "GLOB[=SERVICE]")]
    pub logs: Vec<String>,
    /// A task counter source, NAME=URL (repeatable); replaces the `[[tasks]]` of the file.
    #[arg(long = "task", value_name = "NAME=URL")]
    pub tasks: Vec<String>,
    /// Format of the agent's own log on stderr: text or json (key `telemetry.log_format`).
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
}

/// Flags of `faultline config`.
#[derive(Debug, Args)]
#[command(arg_required_else_help = true)]
pub struct ConfigArgs {
    /// Print the default configuration, every key commented.
    #[arg(long, conflicts_with = "check")]
    pub default: bool,
    /// Validate FILE as `faultline run` would; exit 0 and print a summary when it is valid.
    #[arg(long, value_name = "FILE")]
    pub check: Option<PathBuf>,
}
