//! faultline-ingest: everything that brings data into the agent.
//!
//! This crate owns the inputs of faultline and nothing downstream of them: tailing service log
//! files (`tail`), turning raw lines into structured log records (`parse`), receiving
//! OpenTelemetry spans, logs and metrics (`otlp`), joining spans and logs into call chains on
//! their trace id (`traces`), and sampling the node's socket and task counters (`counters`).
//! It does not cluster errors (that is `faultline-clustering`) and does not serve HTTP pages
//! (that is `faultline-web`); the `faultline` binary wires the three together.

pub mod counters;
pub mod otlp;
pub mod parse;
pub mod record;
pub mod tail;
pub mod traces;

pub use record::{Level, LogRecord, Origin, SpanId, TraceId};
