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
    let runtime = agent_runtime(settings.worker_threads)
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    runtime.block_on(run::run(settings))?;
    Ok(())
}

/// The runtime of `faultline run`: `worker_threads` workers (the `worker_threads` key, see
/// [`config::WorkerThreads`] for why one by default), blocking threads as needed.
fn agent_runtime(worker_threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads)
        .enable_all()
        .thread_name("faultline")
        .build()
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

/// The agent's heap is jemalloc, not glibc's malloc. The agent's heap is large and churns (a
/// full trace store beside short-lived spans, records and ids), which glibc serves through
/// `_int_malloc`, `malloc_consolidate` and its free lists: a fifth to a quarter of the agent's
/// CPU in perf at 1,000 lines/s + 1,000 spans/s. jemalloc (5.3.0, preloaded) took 18–20 % off
/// the agent's CPU in the same soak (BENCHMARKS.md, "Steady cost of the agent").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read once before the first allocation (jemalloc's `malloc_conf`; the
/// crate builds jemalloc with the `_rjem_` prefix); `_RJEM_MALLOC_CONF` in the environment
/// overrides them. Two arenas instead of four per CPU, and freed pages handed back after 2 s
/// instead of 10 (none kept "muzzy"): with the defaults, RSS was ~8 MiB higher in the soak,
/// tuned ~1 MiB, for the same CPU.
#[used]
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: Option<&'static u8> = Some(&JEMALLOC_OPTIONS[0]);

/// The text of [`MALLOC_CONF`], NUL-terminated for C.
const JEMALLOC_OPTIONS: &[u8] = b"narenas:2,dirty_decay_ms:2000,muzzy_decay_ms:0\0";

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    /// An option of the running allocator, by its `mallctl` name.
    fn option<T: Default>(name: &CStr) -> T {
        let mut value = T::default();
        let mut len = std::mem::size_of::<T>();
        // SAFETY: `name` is NUL-terminated, and `value` is valid for writes of `len` bytes,
        // the size of the option's type (`unsigned` and `ssize_t` for the options read below).
        let rc = unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr(),
                (&mut value as *mut T).cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        assert_eq!(rc, 0, "mallctl {name:?}");
        value
    }

    #[test]
    fn the_agent_runs_its_async_work_on_the_configured_workers_one_by_default() {
        let settings = faultline_agent::config::Config::default()
            .validate(None)
            .expect("the default configuration is valid");
        let runtime = super::agent_runtime(settings.worker_threads).expect("runtime");
        assert_eq!(runtime.metrics().num_workers(), 1);
        let runtime = super::agent_runtime(3).expect("runtime");
        assert_eq!(runtime.metrics().num_workers(), 3);
    }

    #[test]
    fn the_heap_is_jemalloc_with_the_agents_options() {
        // The binary's unit tests run with its global allocator and its options.
        assert_eq!(option::<u32>(c"opt.narenas"), 2);
        assert_eq!(option::<isize>(c"opt.dirty_decay_ms"), 2000);
        assert_eq!(option::<isize>(c"opt.muzzy_decay_ms"), 0);
    }
}
