//! Why an OTLP export was refused, and whether the sender should retry.

/// A refused export. Each variant maps to the status the OTLP specification prescribes on
/// both transports (see [`http_status`](Self::http_status) and [`grpc_code`](Self::grpc_code)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtlpError {
    /// The body could not be decoded (malformed protobuf or JSON, truncated gzip, bad ids...).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A limit was exceeded (attributes or events per span).
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// The body (compressed or decompressed) is larger than allowed.
    #[error("payload too large: {0}")]
    TooLarge(String),
    /// The content type is neither `application/x-protobuf` nor `application/json`.
    #[error("unsupported media type {0:?}: use application/x-protobuf or application/json")]
    UnsupportedMediaType(String),
    /// The content encoding is not `gzip` or `identity`.
    #[error("unsupported content encoding {0:?}: use gzip or none")]
    UnsupportedEncoding(String),
    /// The body did not arrive in time.
    #[error("request timeout: {0}")]
    SlowBody(String),
    /// The request carries no bearer token, or not the receivers' (`otlp.token`).
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The receiver is at capacity: retry after the given seconds.
    #[error("receiver overloaded ({0}), retry later")]
    Overloaded(String, u64),
}

impl OtlpError {
    /// Whether the spec lets the sender retry the same request.
    pub fn is_retryable(&self) -> bool {
        matches!(self, OtlpError::Overloaded(..))
    }

    /// Whether the request is counted as invalid: refused for what it contained, not for
    /// the receiver's load, the sender's pace or its credentials (counted on their own).
    pub fn is_invalid(&self) -> bool {
        !matches!(
            self,
            OtlpError::Overloaded(..) | OtlpError::SlowBody(_) | OtlpError::Unauthenticated(_)
        )
    }

    /// The HTTP status for this refusal.
    pub fn http_status(&self) -> u16 {
        match self {
            OtlpError::BadRequest(_) | OtlpError::LimitExceeded(_) => 400,
            OtlpError::TooLarge(_) => 413,
            OtlpError::UnsupportedMediaType(_) | OtlpError::UnsupportedEncoding(_) => 415,
            OtlpError::SlowBody(_) => 408,
            OtlpError::Unauthenticated(_) => 401,
            OtlpError::Overloaded(..) => 429,
        }
    }

    /// The gRPC status code for this refusal.
    pub fn grpc_code(&self) -> tonic::Code {
        match self {
            OtlpError::Overloaded(..) => tonic::Code::ResourceExhausted,
            OtlpError::SlowBody(_) => tonic::Code::DeadlineExceeded,
            OtlpError::Unauthenticated(_) => tonic::Code::Unauthenticated,
            _ => tonic::Code::InvalidArgument,
        }
    }

    /// Seconds to wait before a retry, for retryable refusals.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            OtlpError::Overloaded(_, secs) => Some(*secs),
            _ => None,
        }
    }
}
