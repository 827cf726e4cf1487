//! Set-up shared by the integration tests of `faultline-ingest`. A directory module, so Cargo
//! does not build it as a test binary of its own; each test file that needs it says
//! `mod support;`, and uses what it needs (the rest is unused in that binary, hence the
//! `dead_code` allowance).

#![allow(dead_code)]

pub mod otlp;
