//! The configuration file: TOML text through [`Config::parse`] and [`Config::validate`], as
//! `faultline run --config` and `faultline config --check` read it. Besides not panicking: a
//! refusal names the file it is about (the operator has to know which file to fix).
//!
//! Inputs that name paths under `/dev`, `/proc` or `/sys` are skipped: the validation reads
//! the files a configuration names (TLS certificates, CA and rules files), and an endless
//! device is the operator's choice, not input.

use std::path::Path;

use faultline_agent::config::Config;

/// Runs one input. Panics (the fuzzer's finding) when a refusal does not name its file.
pub fn run(data: &[u8]) {
    // `Config::load` reads the file as UTF-8; anything else is refused before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if ["/dev", "/proc", "/sys"].iter().any(|p| text.contains(p)) {
        return;
    }
    let path = Path::new("fuzz.toml");
    let refusal = match Config::parse(text, path) {
        Ok(config) => match config.validate(Some(path)) {
            Ok(_) => return,
            Err(err) => err.to_string(),
        },
        Err(err) => err.to_string(),
    };
    assert!(
        refusal.contains("fuzz.toml"),
        "a refusal that does not name its file: {refusal:?}"
    );
}
