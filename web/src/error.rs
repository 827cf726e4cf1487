//! The API's one error shape.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// An error answered by the API: rendered as `{"status", "code", "message"}` with the
/// matching HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status of the answer.
    pub status: StatusCode,
    /// Stable, machine-readable code (`not_found`, `bad_parameter`, `unauthorized`, ...).
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
}

impl ApiError {
    /// 404 for an id or path that does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
        }
    }

    /// 400 for a query parameter that cannot be used; the message names the parameter.
    pub fn bad_parameter(name: &str, why: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "bad_parameter",
            message: format!("parameter `{name}`: {why}"),
        }
    }

    /// 503 when the part of the agent that would answer is not attached (yet).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: message.into(),
        }
    }

    /// 500 for a failure of the agent itself.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: message.into(),
        }
    }

    /// 405 for a known path asked with a method it does not serve.
    pub fn method_not_allowed() -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "method_not_allowed",
            message: "this path only answers GET (and HEAD)".into(),
        }
    }

    /// 403 for a request whose `Host` names neither this agent nor an allowed host (a page
    /// of another site reaching the agent through DNS rebinding).
    pub fn foreign_host(host: &str) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            code: "foreign_host",
            message: format!(
                "Host {host:?} does not name this agent: use its address or localhost, or list \
                 the name in web.allowed_hosts"
            ),
        }
    }

    /// 429 when too many wrong tokens were presented lately.
    pub fn too_many_attempts() -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "too_many_attempts",
            message: "too many wrong tokens lately: wait a second and try again".into(),
        }
    }

    /// 401 for a request without the right bearer token.
    pub fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: "a valid bearer token is required (Authorization: Bearer <token>)".into(),
        }
    }
}

/// The JSON body of every error answer (as documented in the OpenAPI document).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// HTTP status, repeated.
    #[schema(minimum = 100, maximum = 599)]
    pub status: u16,
    /// Stable, machine-readable code.
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    status: u16,
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            status: self.status.as_u16(),
            code: self.code,
            message: &self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

/// Fallback handler: every unknown path is a 404 in the API's error shape.
pub(crate) async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no such path: {}", uri.path()))
}

/// Fallback for a known path asked with an unsupported method.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
