//! Runs schemathesis (PyPI, pinned in `scripts/requirements-test.txt`) against the live router
//! over fixture views: it reads `/api/v1/openapi.json`, generates valid and invalid requests
//! for every operation, and checks that no answer is a server error, breaks its documented
//! schema or status codes, or accepts what the schema forbids.

mod fixture;

use std::process::Command;
use std::sync::Arc;

use fixture::*;

#[test]
fn schemathesis_finds_nothing_in_the_api() {
    let store = Arc::new(FixtureStore::default());
    load_incident(&store, now_ms());
    let addr = serve(store.views(), None);
    let reports = tempfile::tempdir().unwrap();
    let output = Command::new("st")
        .args([
            "run",
            &format!("http://{addr}/api/v1/openapi.json"),
            "--max-examples",
            "25",
            "--seed",
            "20261125",
            "--generation-deterministic",
            "--request-timeout",
            "10",
            "--workers",
            "2",
            "--report-dir",
        ])
        .arg(reports.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("schemathesis (`st`) not found: pip install -r scripts/requirements-test.txt");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("No issues found"), "{stdout}");
}
