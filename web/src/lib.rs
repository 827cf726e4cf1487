//! faultline-web: the REST API, the live-update stream and the dashboard of the agent.
//!
//! One axum [`Router`](axum::Router), built by [`router`] (health only) or
//! [`router_with_views`] (everything); handlers are small async functions over a shared
//! state. The crate reads the agent's stores only through the read-only views of [`model`]
//! ([`ClusterView`], [`TraceView`], [`CounterView`]) that the binary implements over the real
//! stores, so pages and API are tested against fixtures and the stores can change without
//! touching this crate. Stores announce changes on [`LiveUpdates`]; the dashboard hears them
//! over Server-Sent Events instead of polling.
//!
//! What is served:
//! - the JSON API under `/api/v1` (incidents, clusters and what moved with each, traces,
//!   counters, health, SSE events) and its
//!   OpenAPI 3 document at `/api/v1/openapi.json`, generated from the handlers' annotations
//!   (utoipa) so it cannot drift from the code;
//! - `/metrics` in Prometheus text format (`prometheus-client`), pattern series bounded by
//!   [`MetricsOptions`];
//! - the dashboard (`/`, `/clusters`, `/cluster?id=`, `/traces`, `/trace?id=`, `/counters`):
//!   one HTML shell, one script and one stylesheet embedded in the binary, no inline script,
//!   a strict Content-Security-Policy, and every string from logs or spans inserted as text.
//!
//! Every error leaves through one type, [`ApiError`], which renders the one JSON error shape
//! (`{"status": 404, "code": "not_found", "message": "..."}`).
//!
//! Access control ([`Access`]): the listener is loopback by default, and without a token only
//! requests whose `Host` names this agent are served (DNS rebinding). When the binary is given
//! a token, every request must carry it, as `Authorization: Bearer <token>` or as the session
//! cookie set by the `/login` form; wrong tokens are rate-limited and counted.

mod api;
mod auth;
mod dashboard;
mod error;
mod health;
pub mod live;
mod metrics;
pub mod model;
mod openapi;

use std::sync::Arc;

use axum::http::header::{
    CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::HeaderValue;
use axum::routing::get;
use axum::Router;
use tower_http::compression::CompressionLayer;
use tower_http::set_header::SetResponseHeaderLayer;

pub use api::clusters::ClusterPage;
pub use api::traces::TracePage;
pub use auth::{Access, AccessCounts};
pub use error::{ApiError, ErrorBody};
pub use health::{Component, ComponentState, Health, HealthRegistry, DIAGNOSIS_COMPONENT};
pub use live::{Change, LiveUpdates};
pub use metrics::MetricsOptions;
pub use model::{ClusterView, CounterView, DiagnosisView, TraceView, Views};
pub use openapi::openapi_json;

/// Shared, read-only state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// What the agent runs and where it listens; served by `/api/v1/health`.
    pub health: HealthRegistry,
    /// Who may read: the token (if any), sessions, allowed hosts; see [`Access`].
    pub access: Arc<Access>,
    /// How `/metrics` exports (the bound on pattern series).
    pub metrics: MetricsOptions,
}

/// What the handlers share: the binary's [`AppState`] plus the views, when attached.
#[derive(Clone)]
pub(crate) struct Shared {
    health: HealthRegistry,
    views: Option<Views>,
    metrics: Option<Arc<metrics::Metrics>>,
    live: LiveUpdates,
}

impl Shared {
    /// The views, or 503 when the router was built without them.
    fn views(&self) -> Result<&Views, ApiError> {
        self.views
            .as_ref()
            .ok_or_else(|| ApiError::unavailable("the agent's stores are not attached yet"))
    }

    /// The `/metrics` registry over the views, or 503 like [`Shared::views`].
    fn metrics(&self) -> Result<&Arc<metrics::Metrics>, ApiError> {
        self.metrics
            .as_ref()
            .ok_or_else(|| ApiError::unavailable("the agent's stores are not attached yet"))
    }
}

/// The Content-Security-Policy of every answer: scripts, styles and connections from this
/// origin only, no inline script or style, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Builds the router with the health endpoint and the dashboard only: the data endpoints
/// answer 503 until the binary attaches the stores with [`router_with_views`].
///
/// Unknown paths answer 404 in the API's JSON error shape.
pub fn router(state: AppState) -> Router {
    build(state, None)
}

/// Builds the router of the whole web surface over the agent's stores.
pub fn router_with_views(state: AppState, views: Views) -> Router {
    build(state, Some(views))
}

fn build(state: AppState, views: Option<Views>) -> Router {
    let live = views.as_ref().map(|v| v.live.clone()).unwrap_or_default();
    let metrics = views
        .as_ref()
        .map(|v| Arc::new(metrics::Metrics::new(v, state.metrics)));
    let shared = Shared {
        health: state.health,
        views,
        metrics,
        live,
    };
    Router::new()
        .route("/api/v1/health", get(health::get_health))
        .route("/api/v1/clusters", get(api::clusters::list))
        .route("/api/v1/clusters/{id}", get(api::clusters::detail))
        .route("/api/v1/clusters/{id}/moved", get(api::moved::get))
        .route("/api/v1/traces", get(api::traces::list))
        .route("/api/v1/traces/{trace_id}", get(api::traces::detail))
        .route("/api/v1/counters", get(api::counters::get))
        .route("/api/v1/incidents", get(api::incidents::list))
        .route("/api/v1/incidents/{id}", get(api::incidents::detail))
        .route("/api/v1/events", get(live::events))
        .route("/api/v1/openapi.json", get(openapi::get))
        .route("/metrics", get(metrics::get))
        .merge(dashboard::routes())
        .method_not_allowed_fallback(error::method_not_allowed)
        .fallback(error::not_found)
        .with_state(shared)
        .merge(auth::login_routes(state.access.clone()))
        .layer(axum::middleware::from_fn_with_state(
            state.access,
            auth::require_access,
        ))
        .layer(CompressionLayer::new())
        .layer(SetResponseHeaderLayer::overriding(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
}
