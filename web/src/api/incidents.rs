//! `GET /api/v1/incidents` and `GET /api/v1/incidents/{id}`: what an SRE acts on — the
//! patterns and counter anomalies that are one fault, with its culprit, related counters and
//! hints. The diagnosis runs in the agent (`faultline-diagnosis`); this module only serves
//! its latest answer.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;

use crate::model::{Incident, IncidentsDocument};
use crate::{ApiError, ErrorBody, Shared};

/// The incidents, active first, then those resting on more kinds of evidence, then the most
/// recent onset first, with what the counter diagnosis could not judge.
#[utoipa::path(
    get,
    path = "/api/v1/incidents",
    tag = "incidents",
    responses(
        (status = 200, description = "The current incidents (possibly none)", body = IncidentsDocument),
        (status = 503, description = "The stores are not attached", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(shared): State<Shared>,
) -> Result<Json<IncidentsDocument>, ApiError> {
    let views = shared.views()?;
    Ok(Json(views.diagnosis.incidents().as_ref().clone()))
}

/// One incident.
#[utoipa::path(
    get,
    path = "/api/v1/incidents/{id}",
    tag = "incidents",
    params(("id" = String, Path, description = "Incident id (16 hex digits)", max_length = 256)),
    responses(
        (status = 200, description = "The incident with its culprit, patterns, counters and hints", body = Incident),
        (status = 400, description = "`id` is not valid UTF-8 text", body = ErrorBody),
        (status = 404, description = "No incident has this id (it may have ended more than 30 minutes ago)", body = ErrorBody),
        (status = 503, description = "The stores are not attached", body = ErrorBody),
    )
)]
pub(crate) async fn detail(
    State(shared): State<Shared>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Incident>, ApiError> {
    let Path(id) = path.map_err(|err| ApiError::bad_parameter("id", err.body_text()))?;
    let views = shared.views()?;
    views
        .diagnosis
        .incidents()
        .incidents
        .iter()
        .find(|i| i.id == id)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no incident has this id"))
}
