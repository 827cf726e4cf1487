//! The receivers' bearer token (`otlp.token`): with one set, a request without
//! `Authorization: Bearer <token>` (gRPC: the `authorization` metadata) is refused before its
//! body is read — HTTP 401 with `WWW-Authenticate: Bearer`, gRPC UNAUTHENTICATED — and
//! counted ([`OtlpStats::requests_unauthenticated`](super::OtlpStats)). Neither is retryable:
//! a sender with the wrong token must be reconfigured, not retried.
//!
//! Wrong tokens are not rate-limited, unlike the dashboard's: the configuration asks for at
//! least 16 characters, and a refusal costs the receiver a header comparison, so guessing at
//! the receiver's full rate (tens of thousands a second) would take centuries.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderMap;
use faultline_net::BearerToken;

use super::error::OtlpError;

/// Who may send: anyone (no token) or holders of the token. Shared by both transports.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    token: Option<BearerToken>,
    refused: AtomicU64,
}

impl Gate {
    /// A gate asking for `token` (none: every request passes).
    pub fn new(token: Option<BearerToken>) -> Gate {
        Gate {
            token,
            refused: AtomicU64::new(0),
        }
    }

    /// Lets a request through when it carries the token; counts and explains a refusal.
    pub fn admit(&self, headers: &HeaderMap) -> Result<(), OtlpError> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let why = match token.check(headers) {
            Some(true) => return Ok(()),
            Some(false) => "the bearer token is not the receiver's (otlp.token)",
            None => {
                "no bearer token: this receiver asks for `Authorization: Bearer <otlp.token>` \
                 (the exporter's `headers`)"
            }
        };
        self.refused.fetch_add(1, Ordering::Relaxed);
        Err(OtlpError::Unauthenticated(why.to_owned()))
    }

    /// Requests refused since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}
