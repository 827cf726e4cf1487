//! `GET /api/v1/counters`: the node's socket, sockstat, process and task counters.

use axum::extract::State;
use axum::Json;

use crate::model::CountersSnapshot;
use crate::{ApiError, ErrorBody, Shared};

/// The latest counters and their history, on one time axis.
#[utoipa::path(
    get,
    path = "/api/v1/counters",
    tag = "counters",
    responses(
        (status = 200, description = "Current values and history", body = CountersSnapshot),
        (status = 503, description = "The counter sampler is not attached", body = ErrorBody),
    )
)]
pub(crate) async fn get(State(shared): State<Shared>) -> Result<Json<CountersSnapshot>, ApiError> {
    Ok(Json(shared.views()?.counters.snapshot()))
}
