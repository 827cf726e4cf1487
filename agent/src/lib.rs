//! faultline's node agent as a library: the command line, configuration and the wiring of the
//! ingest, clustering, diagnosis and web crates into one agent. The `faultline` binary
//! (`main.rs`) is its command line; the library exists so that the fuzz targets (`fuzz/`)
//! reach the agent's own readers of untrusted input — the configuration file
//! ([`config::Config::parse`]) and the state file ([`persist::load`]) — through the functions
//! the binary uses.
//!
//! Execution model: `faultline run` builds [`config::Settings`] from the file and the flags,
//! then [`run::run`] binds the listeners, restores the state and drives the tailer, the OTLP
//! receivers, the pipeline into clustering, the diagnosis loop and the web server until a
//! signal; every other subcommand is one module (`demo`, `cluster_cmd`, `replay_cmd`).

pub mod cli;
pub mod cluster_cmd;
pub mod config;
mod culprits;
pub mod demo;
mod diagnosis;
mod export;
mod lab;
mod listeners;
mod memory;
pub mod persist;
mod pipeline;
pub mod replay_cmd;
pub mod run;
mod shutdown;
mod stacks;
pub mod telemetry;
mod views;

pub use views::counter_view;
