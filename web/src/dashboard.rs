//! The dashboard: one HTML shell, one script, one stylesheet and an icon, all embedded in the
//! binary (it works with no internet). The shell carries no data; the script fetches the API
//! and inserts every string with `textContent`, so log content can never become markup, and
//! the Content-Security-Policy forbids inline script anyway.
//!
//! Pages are plain paths with their state in the query string (`/clusters?service=api&sort=rate`,
//! `/trace?id=...`), so a URL pasted into an incident channel opens the same view.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::Shared;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");
const FAVICON_SVG: &str = include_str!("../assets/favicon.svg");

/// The dashboard's pages and assets.
pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/", get(page))
        .route("/clusters", get(page))
        .route("/cluster", get(page))
        .route("/traces", get(page))
        .route("/trace", get(page))
        .route("/counters", get(page))
        .route(
            "/assets/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
        .route(
            "/assets/app.css",
            get(|| asset("text/css; charset=utf-8", APP_CSS)),
        )
        .route(
            "/assets/favicon.svg",
            get(|| asset("image/svg+xml", FAVICON_SVG)),
        )
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
