//! Errors of the control plane, each mapping to one API status.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// 400: the input is malformed or breaks the policy (duration, reason).
    #[error("{0}")]
    Invalid(String),
    /// 403: the caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    /// 409: the object is in the wrong state.
    #[error("{0}")]
    Conflict(String),
    /// 503: the store cannot be reached; jitgate fails closed.
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for GrantError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(w) => GrantError::NotFound(w),
            StoreError::Conflict(m) => GrantError::Conflict(m),
            StoreError::Unavailable(m) => {
                tracing::warn!(error = %m, "store unavailable");
                GrantError::Unavailable(
                    "the store is unavailable; access changes are refused until it returns (fail closed)".into(),
                )
            }
            StoreError::DiskFull(m) => {
                tracing::warn!(error = %m, "store disk full");
                GrantError::Unavailable(
                    "the store's disk is full; access changes are refused until space is freed (fail closed)".into(),
                )
            }
            StoreError::Constraint(m) | StoreError::Corrupt(m) => GrantError::Internal(m),
            StoreError::Database(m) => GrantError::Internal(m),
        }
    }
}
