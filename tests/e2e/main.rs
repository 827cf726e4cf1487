//! End-to-end tests: they start the real `faultline` binary and talk to it as users do.

// Shared by every test module; not every module uses every helper.
#[allow(dead_code)]
mod support;

// The WebDriver client of the web crate's browser tests, shared rather than written twice.
#[allow(dead_code)]
#[path = "../../web/tests/fixture/browser.rs"]
mod browser;

mod access;
mod agent_lifecycle;
mod cluster_cmd;
mod config_cli;
mod counters;
mod culprit;
mod dashboard;
mod demo;
mod export;
mod exposure;
mod incidents;
mod lab_go;
mod listeners;
mod moved;
mod pipeline;
mod reliability;
mod replay;
