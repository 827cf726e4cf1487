//! Access control for listeners that are not loopback-only: a bearer token, presented in the
//! `Authorization` header (scripts, Prometheus) or in a cookie set by the `/login` form
//! (browsers). Both are compared in constant time. The token never travels in a URL.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

use crate::ApiError;

/// Name of the login cookie; its value is the token in hex, so any token fits a cookie.
const COOKIE_NAME: &str = "faultline_token";

/// Lets a request through when no token is configured or when it carries the token (header
/// or cookie); answers 401 otherwise: the login page for dashboard pages, the JSON error for
/// everything else. The login form and the static assets it needs are always reachable.
pub(crate) async fn require_token(
    State(token): State<Option<Arc<str>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = token else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    if path == "/login" || path.starts_with("/assets/") {
        return next.run(request).await;
    }
    if presents_token(&request, &expected) {
        return next.run(request).await;
    }
    if path.starts_with("/api/") || path == "/metrics" {
        ApiError::unauthorized().into_response()
    } else {
        login_page(StatusCode::UNAUTHORIZED, false)
    }
}

fn presents_token(request: &Request, expected: &str) -> bool {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if header.is_some_and(|given| constant_time_eq(given.as_bytes(), expected.as_bytes())) {
        return true;
    }
    let expected_hex = hex(expected.as_bytes());
    request
        .headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(name, value)| {
            name == COOKIE_NAME && constant_time_eq(value.as_bytes(), expected_hex.as_bytes())
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two byte strings in time that depends only on their lengths, so a caller cannot
/// learn a token's prefix from response times.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The login form's fields.
#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

/// `GET /login` shows the form, `POST /login` checks the token and sets the cookie.
pub(crate) fn login_routes(token: Option<Arc<str>>) -> Router {
    Router::new()
        .route(
            "/login",
            get(|| async { login_page(StatusCode::OK, false) }).post(check_login),
        )
        .with_state(token)
}

async fn check_login(
    State(token): State<Option<Arc<str>>>,
    Form(form): Form<LoginForm>,
) -> Response {
    let Some(expected) = token else {
        return (StatusCode::SEE_OTHER, [(LOCATION, "/")]).into_response();
    };
    if !constant_time_eq(form.token.as_bytes(), expected.as_bytes()) {
        return login_page(StatusCode::UNAUTHORIZED, true);
    }
    let cookie = format!(
        "{COOKIE_NAME}={}; Path=/; HttpOnly; SameSite=Strict",
        hex(expected.as_bytes())
    );
    (
        StatusCode::SEE_OTHER,
        [(LOCATION, "/".to_owned()), (SET_COOKIE, cookie)],
    )
        .into_response()
}

fn login_page(status: StatusCode, failed: bool) -> Response {
    let note = if failed {
        "<p class=\"login-error\" role=\"alert\">That token is not the agent's token.</p>"
    } else {
        ""
    };
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>faultline: sign in</title><link rel=\"stylesheet\" href=\"/assets/app.css\"></head>\
<body><main class=\"login\"><h1>faultline</h1>\
<p>This agent listens beyond loopback and asks for its token (<code>web.token</code>).</p>{note}\
<form method=\"post\" action=\"/login\"><label for=\"token\">Token</label> \
<input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" autofocus> \
<button type=\"submit\">Sign in</button></form></main></body></html>"
    );
    (status, [(CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn equal_only_when_every_byte_matches() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
