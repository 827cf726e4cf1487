//! `GET /api/v1/traces` and `GET /api/v1/traces/{trace_id}`: call chains.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::Json;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::params::{is_trace_id, QueryPairs};
use crate::model::{CallChain, TraceQuery, TraceSummary};
use crate::{ApiError, ErrorBody, Shared};

/// Filters of the trace list (documentation of the query string).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Only describes the query string; the handler parses it by hand.
pub(crate) struct TraceListParams {
    /// Only traces in which this cluster occurred.
    #[param(max_length = 256)]
    cluster: Option<String>,
    /// Only traces that went through this service.
    #[param(max_length = 256)]
    service: Option<String>,
    /// Only traces with an error span or an error log.
    errors: Option<bool>,
    /// Most traces to return (newest first).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u64>,
}

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
    uri: Uri,
) -> Result<Json<TracePage>, ApiError> {
    let query = QueryPairs::parse(&uri, &["cluster", "service", "errors", "limit"])?;
    let trace_query = TraceQuery {
        cluster: query.text("cluster", 256)?,
        service: query.text("service", 256)?,
        errors_only: query.flag("errors", false)?,
        limit: query.integer("limit", 1, 1000, 50)? as usize,
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
