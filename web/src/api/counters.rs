//! `GET /api/v1/counters`: the node's socket, listen-queue, sockstat, process, task and
//! runtime counters, with the status of every source and the history at one of two
//! resolutions.

use axum::extract::State;
use axum::http::Uri;
use axum::Json;
use utoipa::IntoParams;

use super::params::QueryPairs;
use crate::model::{CountersSnapshot, HistoryResolution};
use crate::{ApiError, ErrorBody, Shared};

/// Options of the counters document (documentation of the query string).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Only describes the query string; the handler parses it by hand.
pub(crate) struct CounterParams {
    /// History to include: `second` (one point per sample over the last 15 minutes; the
    /// default) or `minute` (one point per minute over the last 24 hours, each the minute's
    /// peak, or mean for rates). Current values and `delta_1m` are the same either way.
    resolution: Option<HistoryResolution>,
}

/// Reads `resolution`; absent is [`HistoryResolution::Second`].
fn resolution(query: &QueryPairs) -> Result<HistoryResolution, ApiError> {
    match query.get("resolution") {
        None | Some("second") => Ok(HistoryResolution::Second),
        Some("minute") => Ok(HistoryResolution::Minute),
        Some(_) => Err(ApiError::bad_parameter(
            "resolution",
            "expected `second` or `minute`",
        )),
    }
}

/// The latest counters, their change over the last minute, the status of every source, and
/// their history on one time axis.
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
    uri: Uri,
) -> Result<Json<CountersSnapshot>, ApiError> {
    let query = QueryPairs::parse(&uri, &["resolution"])?;
    let resolution = resolution(&query)?;
    let views = shared.views()?;
    Ok(Json(views.counters.snapshot_at_resolution(resolution)))
}
