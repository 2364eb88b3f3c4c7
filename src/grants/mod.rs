//! Requests, approvals, grants and locks: the control plane's rules on top of
//! the store, and the timers that end grants at their exact end instant.

mod admission;
mod ending;
mod error;
mod extend;
mod front;
mod open;
mod policy;
mod refusal;
mod requests;
mod review;
mod schedule;
mod service;
mod start;
mod timers;

/// The records the control plane answers with.
pub use crate::store::{
    GrantFilter, GrantRecord, GrantState, RequestFilter, RequestRecord, RequestState,
};
pub use admission::Admitted;
pub use error::GrantError;
pub use policy::{check_approver, evaluate_request, is_policy_approver, may_oversee, Caller, Via};
pub use refusal::{Blame, Refusal};
pub use requests::Ask;
pub use service::{
    Grants, IssuedSecret, LockResult, RevokeResult, TerminateResult, MAX_SECRETS_PER_GRANT,
};
