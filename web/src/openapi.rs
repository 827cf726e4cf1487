//! `GET /api/v1/openapi.json`: the OpenAPI 3 document, generated from the handlers'
//! annotations and the documents' types, so it cannot drift from the code.

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use utoipa::OpenApi;

use crate::api::{clusters, counters, incidents, moved, traces};
use crate::{health, live};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "faultline",
        description = "Error patterns, call chains and node counters of one faultline agent. \
Errors always have the shape {status, code, message}.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        health::get_health,
        incidents::list,
        incidents::detail,
        clusters::list,
        clusters::detail,
        moved::get,
        traces::list,
        traces::detail,
        counters::get,
        live::events,
    ),
    components(schemas(clusters::ClusterSort)),
    tags(
        (name = "incidents", description = "Faults: patterns and counter anomalies with their culprit and hints"),
        (name = "clusters", description = "Error patterns"),
        (name = "traces", description = "Call chains"),
        (name = "counters", description = "Node socket and task counters"),
        (name = "live", description = "Live updates"),
        (name = "health", description = "Readiness"),
    )
)]
struct ApiDoc;

/// The OpenAPI document as JSON text.
pub fn openapi_json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|err| {
        format!("{{\"error\": \"cannot render the OpenAPI document: {err}\"}}")
    })
}

pub(crate) async fn get() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], openapi_json())
}
