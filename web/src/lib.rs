//! faultline-web: the REST API and the dashboard of the agent.
//!
//! One axum [`Router`](axum::Router) built by [`router`]; handlers are small async functions
//! over a shared [`AppState`]. The crate reads the agent's stores only through read-only
//! views handed to it by the binary, so pages and API can be tested against fixtures. Every
//! error leaves through one type, [`ApiError`], which renders the one JSON error shape of the
//! API (`{"status": 404, "code": "not_found", "message": "..."}`).
//!
//! Access control: the listener is loopback by default. When the binary is given a token,
//! every request must carry it as `Authorization: Bearer <token>`; it is compared in constant
//! time.

mod auth;
mod error;
mod health;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;

pub use error::ApiError;
pub use health::{Component, ComponentState, Health, HealthRegistry};

/// Shared, read-only state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// What the agent runs and where it listens; served by `/api/v1/health`.
    pub health: HealthRegistry,
    /// The bearer token every request must present, if any.
    pub token: Option<Arc<str>>,
}

/// Builds the router of the whole web surface: API routes under `/api/v1`.
///
/// Unknown paths answer 404 in the API's JSON error shape.
pub fn router(state: AppState) -> Router {
    let token = state.token.clone();
    Router::new()
        .route("/api/v1/health", get(health::get_health))
        .fallback(error::not_found)
        .layer(axum::middleware::from_fn_with_state(
            token,
            auth::require_token,
        ))
        .with_state(state)
}
