//! End-to-end tests: they start the real `faultline` binary and talk to it as users do.

// Shared by every test module; not every module uses every helper.
#[allow(dead_code)]
mod support;

mod agent_lifecycle;
mod cluster_cmd;
mod config_cli;
mod pipeline;
mod replay;
