//! API errors as `{"error": {"code", "message"}}` with the status of SPEC.

use crate::grants::GrantError;
use hyper::StatusCode;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Every problem, one per entry, where there can be several (a rejected
    /// reload); sent as `error.errors` so tools need not split the message.
    pub errors: Vec<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            errors: Vec::new(),
        }
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", m)
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid bearer token (send Authorization: Bearer TOKEN)",
        )
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", m)
    }
    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body is larger than 64 KiB",
        )
    }

    pub fn with_errors(mut self, errors: Vec<String>) -> Self {
        self.errors = errors;
        self
    }

    pub fn body(&self) -> String {
        let mut e = serde_json::json!({"code": self.code, "message": self.message});
        if !self.errors.is_empty() {
            e["errors"] = serde_json::json!(self.errors);
        }
        serde_json::json!({ "error": e }).to_string()
    }
}

impl From<GrantError> for ApiError {
    fn from(e: GrantError) -> Self {
        let (status, code) = match &e {
            GrantError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
            GrantError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            GrantError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            GrantError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            GrantError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            GrantError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the daemon log",
                );
            }
        };
        ApiError::new(status, code, e.to_string())
    }
}
