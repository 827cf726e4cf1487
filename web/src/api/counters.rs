//! `GET /api/v1/counters`: the node's socket, listen-queue, sockstat, process, task and
//! runtime counters, with the status of every source and the history at one of two
//! resolutions.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use super::params::Query;
use crate::model::{CountersSnapshot, HistoryResolution};
use crate::{ApiError, ErrorBody, Shared};

/// Options of the counters document: the query string of `GET /api/v1/counters`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CounterParams {
    /// History to include: `second` (one point per sample over the last 15 minutes; the
    /// default) or `minute` (one point per minute over the last 24 hours, each the minute's
    /// peak, or mean for rates). Current values and `delta_1m` are the same either way.
    resolution: Option<HistoryResolution>,
}

/// The latest counters, their change over the last minute, the status of every source, and
/// their history on one time axis. Built and encoded on the blocking pool: on a busy node
/// charting every port (12,000 series) the document is megabytes, and a runtime worker
/// that builds it serves nothing else meanwhile.
#[utoipa::path(
    get,
    path = "/api/v1/counters",
    tag = "counters",
    params(CounterParams),
    responses(
        (status = 200, description = "Current values, deltas, source statuses and history", body = CountersSnapshot),
        (status = 400, description = "A parameter cannot be used; the message names it", body = ErrorBody),
        (status = 503, description = "The counter sampler is not attached", body = ErrorBody),
    )
)]
pub(crate) async fn get(
    State(shared): State<Shared>,
    Query(params): Query<CounterParams>,
) -> Result<Response, ApiError> {
    let resolution = params.resolution.unwrap_or_default();
    let views = shared.views()?.clone();
    let body = tokio::task::spawn_blocking(move || views.counters.page_json(resolution))
        .await
        .map_err(|err| ApiError::internal(format!("the counters document failed: {err}")))?
        .map_err(|err| ApiError::internal(format!("the counters document failed: {err}")))?;
    Ok((
        [(CONTENT_TYPE, "application/json")],
        Bytes::from_owner(body),
    )
        .into_response())
}
