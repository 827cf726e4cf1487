//! The `faultline` binary: the command line over the agent's library (`faultline_agent`,
//! `lib.rs`).
//!
//! Errors end here: each is printed as one line saying what failed and what to do, with exit
//! status 2 for a configuration the agent refuses and 1 for anything else.

use std::process::ExitCode;

use clap::Parser;

use faultline_agent::cli::{Cli, Command, ConfigArgs, RunArgs};
use faultline_agent::config::{self, Config, ConfigError};
use faultline_agent::{cluster_cmd, demo, replay_cmd, run, telemetry};

/// An error at the binary's edge, with the exit status it deserves.
enum Failure {
    Config(ConfigError),
    Other(anyhow::Error),
}

impl From<ConfigError> for Failure {
    fn from(err: ConfigError) -> Self {
        Failure::Config(err)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(err: anyhow::Error) -> Self {
        match err.downcast::<ConfigError>() {
            Ok(config) => Failure::Config(config),
            Err(other) => Failure::Other(other),
        }
    }
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(args) => run_agent(args),
        Command::Demo(args) => demo::run(&args).map_err(Failure::from),
        Command::Config(args) => config_command(args),
        Command::Cluster(args) => cluster_cmd::run(&args).map_err(Failure::from),
        Command::Replay(args) => replay_cmd::run(&args).map_err(Failure::from),
        Command::Version => {
            println!("faultline {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(err)) => {
            eprintln!("faultline: invalid configuration: {err}");
            ExitCode::from(2)
        }
        Err(Failure::Other(err)) => {
            // `{:#}` joins the context chain on one line: "what failed: why".
            eprintln!("faultline: error: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn load_config(args: &RunArgs) -> Result<config::Settings, Failure> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    config.apply_flags(args)?;
    Ok(config.validate(args.config.as_deref())?)
}

fn run_agent(args: RunArgs) -> Result<(), Failure> {
    let settings = load_config(&args)?;
    let _telemetry = telemetry::init(
        settings.log_format,
        &settings.log_level,
        settings.otlp_endpoint.as_deref(),
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("faultline")
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    runtime.block_on(run::run(settings))?;
    Ok(())
}

fn config_command(args: ConfigArgs) -> Result<(), Failure> {
    if args.default {
        print!("{}", config::EXAMPLE);
        return Ok(());
    }
    if let Some(path) = args.check {
        let settings = Config::load(&path)?.validate(Some(&path))?;
        println!(
            "{}: valid (web {}, otlp grpc {}, otlp http {}, {} log source(s), {} task source(s))",
            path.display(),
            settings.web_listen,
            settings.otlp_grpc,
            settings.otlp_http,
            settings.logs.len(),
            settings.tasks.len()
        );
    }
    Ok(())
}

/// Caps glibc's malloc at two arenas, unless `MALLOC_ARENA_MAX` says otherwise. By default glibc
/// gives each thread that allocates concurrently an arena of its own (up to 8 per core), and
/// freed memory stays in them: under 1,000 lines/s + 1,000 spans/s, heaptrack saw a live heap
/// of 65 MB after 7 minutes while RSS was 136 MB; with two arenas (set by the environment
/// variable) the 5-minute soak peaked at 86.7 MiB instead of 101.2 MiB, CPU 6.2% vs 5.8% of a
/// core (`scripts/reliability/soak.py --minutes 5 --warmup 2 --lines 1000 --spans 1000`).
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a tunable of the allocator; it is called before any other
        // thread exists, and a refused value (return 0) leaves glibc's default in place.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
