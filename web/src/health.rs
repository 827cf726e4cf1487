//! `GET /api/v1/health`: what the agent runs and where, served from the first moment the web
//! listener is up so that harnesses can wait for readiness.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use crate::model::IncidentsDocument;
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
    let mut health = state.health.snapshot();
    // The diagnosis' state is read at each request: a stuck or slow diagnosis cannot say so
    // itself.
    if let (Some(component), Some(views)) = (
        health.components.get_mut(DIAGNOSIS_COMPONENT),
        state.views.as_ref(),
    ) {
        let doc = views.diagnosis.incidents();
        *component =
            diagnosis_component(&doc, now_unix_ms(), (health.uptime_seconds * 1000.0) as i64);
    }
    Json(health)
}

/// The component the diagnosis loop registers (the agent's `run`; a replay has none): its
/// state is then judged from the incidents it serves.
pub const DIAGNOSIS_COMPONENT: &str = "diagnosis";

/// How old the served incidents may get, in diagnosis intervals, before the diagnosis is
/// reported failing (and never less than [`STALE_MIN_MS`]).
pub const STALE_INTERVALS: i64 = 5;
/// The least age of the served incidents reported as stale (ms).
pub const STALE_MIN_MS: i64 = 5_000;

fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The diagnosis' health from its latest document at `now`, `uptime_ms` after the start:
/// failing while the incidents served are older than [`STALE_INTERVALS`] runs (at least
/// [`STALE_MIN_MS`]): every answer is that late, and a fault that begins now shows that much
/// later.
fn diagnosis_component(doc: &IncidentsDocument, now: i64, uptime_ms: i64) -> Component {
    let run = &doc.run;
    let interval = i64::try_from(run.interval_ms).unwrap_or(i64::MAX).max(1);
    let stale_after = interval.saturating_mul(STALE_INTERVALS).max(STALE_MIN_MS);
    let secs = |ms: i64| format!("{:.1} s", ms as f64 / 1000.0);
    let (state, detail) = if doc.evaluated_at_unix_ms <= 0 {
        if uptime_ms > STALE_MIN_MS.max(stale_after) {
            (
                ComponentState::Failing,
                format!(
                    "no diagnosis run has finished in the {} since the start",
                    secs(uptime_ms)
                ),
            )
        } else {
            (ComponentState::Running, "starting".to_owned())
        }
    } else {
        let age = (now - doc.evaluated_at_unix_ms).max(0);
        let runs = format!(
            "runs every {} ms, the latest took {} ms, the slowest of the last minute {} ms",
            run.interval_ms, run.duration_ms, run.slowest_ms_1m
        );
        if age > stale_after {
            (
                ComponentState::Failing,
                format!("stale: the incidents served are {} old ({runs})", secs(age)),
            )
        } else {
            (ComponentState::Running, runs)
        }
    };
    Component {
        state,
        address: None,
        detail: Some(detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DiagnosisRun;

    #[test]
    fn a_diagnosis_that_falls_behind_is_failing_with_how_late_it_is() {
        let doc = |evaluated_at_unix_ms, duration_ms| IncidentsDocument {
            evaluated_at_unix_ms,
            run: DiagnosisRun {
                interval_ms: 1_000,
                duration_ms,
                slowest_ms_1m: duration_ms,
                runs: 10,
                ..DiagnosisRun::default()
            },
            ..IncidentsDocument::default()
        };
        let now = 1_000_000;
        let keeping_up = diagnosis_component(&doc(now - 900, 30), now, 60_000);
        assert_eq!(keeping_up.state, ComponentState::Running);
        assert!(keeping_up.detail.as_deref().unwrap().contains("took 30 ms"));
        let late = diagnosis_component(&doc(now - 12_300, 11_800), now, 60_000);
        assert_eq!(late.state, ComponentState::Failing);
        assert_eq!(
            late.detail.as_deref(),
            Some(
                "stale: the incidents served are 12.3 s old (runs every 1000 ms, the latest \
                 took 11800 ms, the slowest of the last minute 11800 ms)"
            )
        );
        // Before the first run: starting, then failing once it should have run.
        let none = IncidentsDocument::default();
        assert_eq!(
            diagnosis_component(&none, now, 2_000).state,
            ComponentState::Running
        );
        let never = diagnosis_component(&none, now, 30_000);
        assert_eq!(never.state, ComponentState::Failing);
        assert!(never.detail.unwrap().contains("30.0 s since the start"));
    }
}
