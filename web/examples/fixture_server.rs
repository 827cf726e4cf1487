//! Serves the web surface over fixture data, for looking at the dashboard by hand and for the
//! load benchmark (`scripts/bench/web_api.sh`). Not part of the agent binary.
//!
//! Usage: `cargo run -p faultline-web --example fixture_server -- [--port P] [--clusters N]
//! [--traces M]`. Without `--clusters`/`--traces` it serves the incident fixture; with them, a
//! synthetic data set of that size (plus the incident). Prints `listening on ADDR` and serves
//! until killed.

#[path = "../tests/fixture/mod.rs"]
mod fixture;

use std::sync::Arc;

fn main() {
    let mut port = 0u16;
    let mut clusters = 0usize;
    let mut traces = 0usize;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse::<usize>().ok());
        match (args[i].as_str(), value) {
            ("--port", Some(v)) => port = u16::try_from(v).unwrap_or(0),
            ("--clusters", Some(v)) => clusters = v,
            ("--traces", Some(v)) => traces = v,
            (other, _) => {
                eprintln!("unknown or incomplete argument {other:?}");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    let store = Arc::new(fixture::FixtureStore::default());
    let now = fixture::now_ms();
    if clusters > 0 || traces > 0 {
        fixture::load_scale(&store, now, clusters, traces);
    }
    fixture::load_incident(&store, now);
    let addr = fixture::serve_on(store.views(), None, port);
    println!("listening on {addr}");
    loop {
        std::thread::park();
    }
}
