//! The dashboard: one HTML shell, a script in ES modules, one stylesheet and an icon, all
//! embedded in the binary (it works with no internet). The shell carries no data; the script
//! fetches the API and inserts every string with `textContent`, so log content can never
//! become markup, and the Content-Security-Policy forbids inline script anyway (modules from
//! this origin are what `script-src 'self'` allows).
//!
//! Pages are plain paths with their state in the query string (`/clusters?service=api&sort=rate`,
//! `/trace?id=...`, `/incident?id=...`), so a URL pasted into an incident channel opens the same view.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::Shared;

const INDEX_HTML: &str = include_str!("../assets/index.html");

const JS: &str = "text/javascript; charset=utf-8";

/// Every asset: its path under `/assets/`, its content type and its bytes. The script is ES
/// modules loaded by `app.js` (one per page plus the shared concerns, see `app.js`); a module
/// missing here fails its page's import, which the browser tests see.
const ASSETS: &[(&str, &str, &str)] = &[
    ("/assets/app.js", JS, include_str!("../assets/app.js")),
    ("/assets/api.js", JS, include_str!("../assets/api.js")),
    ("/assets/charts.js", JS, include_str!("../assets/charts.js")),
    (
        "/assets/culprit.js",
        JS,
        include_str!("../assets/culprit.js"),
    ),
    ("/assets/dom.js", JS, include_str!("../assets/dom.js")),
    ("/assets/format.js", JS, include_str!("../assets/format.js")),
    (
        "/assets/incidents.js",
        JS,
        include_str!("../assets/incidents.js"),
    ),
    ("/assets/live.js", JS, include_str!("../assets/live.js")),
    ("/assets/moved.js", JS, include_str!("../assets/moved.js")),
    (
        "/assets/widgets.js",
        JS,
        include_str!("../assets/widgets.js"),
    ),
    (
        "/assets/pages/cluster.js",
        JS,
        include_str!("../assets/pages/cluster.js"),
    ),
    (
        "/assets/pages/clusters.js",
        JS,
        include_str!("../assets/pages/clusters.js"),
    ),
    (
        "/assets/pages/counters.js",
        JS,
        include_str!("../assets/pages/counters.js"),
    ),
    (
        "/assets/pages/incident.js",
        JS,
        include_str!("../assets/pages/incident.js"),
    ),
    (
        "/assets/pages/overview.js",
        JS,
        include_str!("../assets/pages/overview.js"),
    ),
    (
        "/assets/pages/trace.js",
        JS,
        include_str!("../assets/pages/trace.js"),
    ),
    (
        "/assets/pages/traces.js",
        JS,
        include_str!("../assets/pages/traces.js"),
    ),
    (
        "/assets/app.css",
        "text/css; charset=utf-8",
        include_str!("../assets/app.css"),
    ),
    (
        "/assets/favicon.svg",
        "image/svg+xml",
        include_str!("../assets/favicon.svg"),
    ),
];

/// The dashboard's pages and assets.
pub(crate) fn routes() -> Router<Shared> {
    let pages = Router::new()
        .route("/", get(page))
        .route("/clusters", get(page))
        .route("/cluster", get(page))
        .route("/traces", get(page))
        .route("/trace", get(page))
        .route("/counters", get(page))
        .route("/incident", get(page));
    ASSETS
        .iter()
        .fold(pages, |router, &(path, content_type, body)| {
            router.route(path, get(move || asset(content_type, body)))
        })
}

async fn page() -> Response {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
        ],
        INDEX_HTML,
    )
        .into_response()
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    // `no-cache` still lets the browser keep the file; it revalidates, so an upgraded agent
    // never runs a stale script.
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")],
        body,
    )
        .into_response()
}
