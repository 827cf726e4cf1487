//! `GET /api/v1/incidents` and `GET /api/v1/incidents/{id}`: what an SRE acts on — the
//! patterns and counter anomalies that are one fault, with its culprit, related counters and
//! hints. The diagnosis runs in the agent (`faultline-diagnosis`); this module serves its
//! latest answer, with the patterns' counts as the patterns answer them now
//! ([`Incident::recount`]): the diagnosis runs about once a second, the pattern pages count
//! every failure as it arrives, and the two must agree at the same moment.

use std::collections::HashMap;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;

use crate::model::{Incident, IncidentDetail, IncidentsDocument, PatternCounts, Views};
use crate::{ApiError, ErrorBody, Shared};

/// Brings `incidents`' pattern counts up to the patterns' (see the module documentation),
/// asking the clusters for those patterns only.
fn recount(views: &Views, incidents: &mut [Incident]) {
    let mut ids: Vec<&str> = Vec::new();
    for p in incidents.iter().flat_map(|i| &i.patterns) {
        if !ids.contains(&p.id.as_str()) {
            ids.push(&p.id);
        }
    }
    if ids.is_empty() {
        return;
    }
    let counts = views.clusters.pattern_counts(&ids);
    let by_id: HashMap<String, PatternCounts> = ids
        .iter()
        .zip(counts)
        .filter_map(|(id, c)| Some((id.to_string(), c?)))
        .collect();
    for incident in incidents {
        incident.recount(|id| by_id.get(id).cloned());
    }
}

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
    let mut doc = views.diagnosis.incidents().as_ref().clone();
    recount(views, &mut doc.incidents);
    Ok(Json(doc))
}

/// One incident, with what moved with it (computed on each request, as a pattern's "what
/// moved": it reads every counter series).
#[utoipa::path(
    get,
    path = "/api/v1/incidents/{id}",
    tag = "incidents",
    params(("id" = String, Path, description = "Incident id (16 hex digits)", max_length = 256)),
    responses(
        (status = 200, description = "The incident with its culprit, patterns, counters, hints \
and what moved with it", body = IncidentDetail),
        (status = 400, description = "`id` is not valid UTF-8 text", body = ErrorBody),
        (status = 404, description = "No incident has this id (it may have ended more than 30 minutes ago)", body = ErrorBody),
        (status = 503, description = "The stores are not attached", body = ErrorBody),
    )
)]
pub(crate) async fn detail(
    State(shared): State<Shared>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<IncidentDetail>, ApiError> {
    let Path(id) = path.map_err(|err| ApiError::bad_parameter("id", err.body_text()))?;
    let views = shared.views()?;
    let mut incident = views
        .diagnosis
        .incidents()
        .incidents
        .iter()
        .find(|i| i.id == id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("no incident has this id"))?;
    recount(views, std::slice::from_mut(&mut incident));
    let views = views.clone();
    let detail = tokio::task::spawn_blocking(move || {
        let moved = views.diagnosis.incident_moved(&incident);
        IncidentDetail { incident, moved }
    })
    .await
    .map_err(|err| ApiError::internal(format!("the diagnosis failed: {err}")))?;
    Ok(Json(detail))
}
