//! `GET /api/v1/clusters/{id}/moved`: what on the node moved with one error pattern (the
//! method is `faultline_diagnosis::moved`'s; the answer comes through
//! [`crate::model::DiagnosisView`]).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;

use crate::model::MovedWithIt;
use crate::{ApiError, ErrorBody, Shared};

/// Which node counters moved around the pattern's onset, with the evidence.
#[utoipa::path(
    get,
    path = "/api/v1/clusters/{id}/moved",
    tag = "clusters",
    params(("id" = String, Path, description = "Stable cluster id, or the id of one of its \
templates; a merged or renamed (retired) id answers with the pattern that holds it now, under \
its current id", max_length = 256)),
    responses(
        (status = 200, description = "The counters that moved with the pattern (possibly none, \
or not enough history to tell; see `verdict`)", body = MovedWithIt),
        (status = 400, description = "`id` is not valid UTF-8 text", body = ErrorBody),
        (status = 404, description = "No cluster or template has this id", body = ErrorBody),
        (status = 503, description = "The stores are not attached", body = ErrorBody),
    )
)]
pub(crate) async fn get(
    State(shared): State<Shared>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<MovedWithIt>, ApiError> {
    let Path(id) = path.map_err(|err| ApiError::bad_parameter("id", err.body_text()))?;
    let views = shared.views()?;
    if id.len() > 256 {
        return Err(ApiError::not_found("no cluster has this id"));
    }
    let views = views.clone();
    let answer = tokio::task::spawn_blocking(move || views.diagnosis.moved(&id).ok_or(id))
        .await
        .map_err(|err| ApiError::internal(format!("the diagnosis failed: {err}")))?;
    answer
        .map(Json)
        .map_err(|id| ApiError::not_found(format!("no cluster has the id {id:?}")))
}
