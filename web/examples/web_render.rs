//! Time to first render of the dashboard in headless Chromium, for
//! `scripts/bench/web_render.sh`: opens each page `RUNS` times over fixture data and prints the
//! median time from navigation start until the page has drawn its data (the page's
//! `data-ready-ms`), and the median DOMContentLoaded time as a baseline.
//!
//! Usage: `web_render [RUNS]` (default 7). Needs chromium and chromedriver.

#[path = "../tests/fixture/mod.rs"]
mod fixture;

use std::sync::Arc;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(7);
    let store = Arc::new(fixture::FixtureStore::default());
    let now = fixture::now_ms();
    fixture::load_scale(&store, now, 10_000, 100_000);
    let incident = fixture::load_incident(&store, now);
    let addr = fixture::serve(store.views(), None);
    let browser = fixture::browser::Browser::start();
    let pages = [
        ("overview", "/".to_owned()),
        ("clusters", "/clusters".to_owned()),
        ("cluster", format!("/cluster?id={}", incident.reset_cluster)),
        ("trace", format!("/trace?id={}", incident.error_trace)),
        ("counters", "/counters".to_owned()),
    ];
    // One warm-up visit so that the first measured run does not pay for the browser start.
    browser.open(&format!("http://{addr}/"));
    for (name, path) in pages {
        let mut ready = Vec::new();
        let mut dom = Vec::new();
        for _ in 0..runs {
            browser.open(&format!("http://{addr}{path}"));
            let ms = browser.eval("return Number(document.body.dataset.readyMs)");
            let dcl = browser.eval(
                "const n = performance.getEntriesByType('navigation')[0]; return n.domContentLoadedEventEnd",
            );
            ready.push(ms.as_f64().unwrap_or(f64::NAN));
            dom.push(dcl.as_f64().unwrap_or(f64::NAN));
        }
        println!(
            "page={name} runs={runs} first_render_median_ms={:.0} dom_content_loaded_median_ms={:.0} first_render_max_ms={:.0}",
            median(ready.clone()),
            median(dom),
            ready.iter().copied().fold(f64::NAN, f64::max)
        );
    }
}
