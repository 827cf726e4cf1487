//! `GET /api/v1/health`: what the agent runs and where, served from the first moment the web
//! listener is up so that harnesses can wait for readiness.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use crate::Shared;

/// State of one part of the agent as shown by the health endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ComponentState {
    /// Configured and working.
    Running,
    /// Not configured, or switched off.
    Disabled,
    /// Configured but failing; the component's `detail` says why.
    Failing,
}

/// One part of the agent (web, log tailing, OTLP gRPC, ...).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Component {
    /// Its state.
    pub state: ComponentState,
    /// The address it is bound to, when it listens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// A short human explanation (what it watches, why it fails).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The health document.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `"ok"` while the agent answers.
    pub status: &'static str,
    /// The agent's version.
    pub version: &'static str,
    /// Seconds since the agent started.
    pub uptime_seconds: f64,
    /// Unix time (seconds) at which the agent started.
    pub started_at_unix: u64,
    /// Every part of the agent by name.
    pub components: BTreeMap<String, Component>,
}

/// The agent's list of components, written by the binary as parts start, read by the health
/// handler.
#[derive(Clone)]
pub struct HealthRegistry {
    started: Instant,
    started_unix: u64,
    components: Arc<RwLock<BTreeMap<String, Component>>>,
}

impl Default for HealthRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthRegistry {
    /// A registry whose uptime counts from now.
    pub fn new() -> Self {
        let started_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Self {
            started: Instant::now(),
            started_unix,
            components: Arc::default(),
        }
    }

    /// Records (or replaces) the state of the component `name`.
    pub fn set(&self, name: &str, component: Component) {
        let mut components = self.components.write().unwrap_or_else(|e| e.into_inner());
        components.insert(name.to_owned(), component);
    }

    /// The current health document.
    pub fn snapshot(&self) -> Health {
        let components = self
            .components
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Health {
            status: "ok",
            version: env!("CARGO_PKG_VERSION"),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            started_at_unix: self.started_unix,
            components,
        }
    }
}

/// What the agent runs and where; answers as soon as the web listener is up.
#[utoipa::path(
    get,
    path = "/api/v1/health",
    tag = "health",
    responses((status = 200, description = "The agent is up", body = Health))
)]
pub(crate) async fn get_health(State(state): State<Shared>) -> Json<Health> {
    Json(state.health.snapshot())
}
