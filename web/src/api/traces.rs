//! `GET /api/v1/traces` and `GET /api/v1/traces/{trace_id}`: call chains.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::params::{is_trace_id, Flag, Limit, Query, Text};
use crate::model::{CallChain, TraceQuery, TraceSummary};
use crate::{ApiError, ErrorBody, Shared};

/// Filters of the trace list: the query string of `GET /api/v1/traces`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TraceListParams {
    /// Only traces in which this pattern occurred: its id, an id it had before (merged or
    /// renamed away), or the id of one of its templates.
    #[param(inline)]
    cluster: Option<Text>,
    /// Only traces that went through this service.
    #[param(inline)]
    service: Option<Text>,
    /// Only traces with an error span or an error log.
    #[param(inline)]
    errors: Option<Flag>,
    /// Most traces to return (newest first).
    #[param(inline)]
    limit: Option<Limit>,
}

/// Traces per answer when `limit` is not given.
const DEFAULT_LIMIT: u64 = 50;

/// The trace list.
#[derive(Debug, Serialize, ToSchema)]
pub struct TracePage {
    /// Matching traces, newest first.
    pub traces: Vec<TraceSummary>,
}

/// Lists recent call chains.
#[utoipa::path(
    get,
    path = "/api/v1/traces",
    tag = "traces",
    params(TraceListParams),
    responses(
        (status = 200, description = "Recent traces, newest first", body = TracePage),
        (status = 400, description = "A parameter cannot be used; the message names it", body = ErrorBody),
        (status = 503, description = "The trace store is not attached", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(shared): State<Shared>,
    Query(params): Query<TraceListParams>,
) -> Result<Json<TracePage>, ApiError> {
    let trace_query = TraceQuery {
        cluster: Text::given(params.cluster),
        service: Text::given(params.service),
        errors_only: Flag::given(params.errors),
        limit: Limit::or(params.limit, DEFAULT_LIMIT),
    };
    let views = shared.views()?;
    let mut traces = views.traces.find(&trace_query);
    // The store promises this; the API guarantees it whatever the store does.
    traces.truncate(trace_query.limit);
    Ok(Json(TracePage { traces }))
}

/// One call chain: spans as a tree, logs under their spans, where the error starts.
#[utoipa::path(
    get,
    path = "/api/v1/traces/{trace_id}",
    tag = "traces",
    params(("trace_id" = String, Path, description = "32 lowercase hex digits", pattern = "^[0-9a-f]{32}$")),
    responses(
        (status = 200, description = "The call chain", body = CallChain),
        (status = 400, description = "`trace_id` is not 32 lowercase hex digits", body = ErrorBody),
        (status = 404, description = "No such trace (never seen, or evicted)", body = ErrorBody),
        (status = 503, description = "The trace store is not attached", body = ErrorBody),
    )
)]
pub(crate) async fn detail(
    State(shared): State<Shared>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<CallChain>, ApiError> {
    let Path(trace_id) =
        path.map_err(|err| ApiError::bad_parameter("trace_id", err.body_text()))?;
    if !is_trace_id(&trace_id) {
        return Err(ApiError::bad_parameter(
            "trace_id",
            "expected 32 lowercase hex digits",
        ));
    }
    let views = shared.views()?;
    views
        .traces
        .call_chain(&trace_id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no trace with the id {trace_id}")))
}
